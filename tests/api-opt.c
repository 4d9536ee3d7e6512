/* nbd-proxy tests: option mode, nbd_set_opt_mode(3) and the nbd_opt_* and
 * nbd_aio_opt_* calls, against real servers.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-opt DIRSOCK MEMSOCK QEMUSOCK NBDSRVSOCK OLDSOCK
 *
 * DIRSOCK:    nbdkit file dir=DIR, DIR holding a (1 MiB), b (2 MiB) and
 *             c (3 MiB): three exports
 * MEMSOCK:    nbdkit --filter=exportname memory 1M default-export=canon
 *             exportdesc=fixed:"a description"
 * QEMUSOCK:   qemu-nbd -A -x qexp -D "qemu desc" (1 MiB), or "-"
 * NBDSRVSOCK: nbd-server, allowlist = true, one export "export" (1 MiB),
 *             or "-"
 * OLDSOCK:    nbdkit --oldstyle memory 1M
 *
 * Each check names the libnbd 1.14 man page that states the rule; where
 * the page leaves a detail open (which errno, what a call forgets), the
 * check encodes what libnbd 1.14.2 does, so the libnbd build of this
 * program passes the same checks.
 */

#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "api-tap.h"

#define MiB (1024 * 1024)
#define MAX_NAMES 16

static const char *dir_sock, *mem_sock, *qemu_sock, *nbdsrv_sock, *old_sock;

/* What the callbacks of one call saw. */
struct cb_log {
  int calls;                    /* list or context callback */
  int frees;                    /* ... and its .free */
  int completion_calls, completion_frees;
  int completion_error;
  bool call_after_free;
  char order[8];                /* .free order: 'l' list/context, 'c' */
  int nr_names;
  char names[MAX_NAMES][64];
  char descriptions[MAX_NAMES][64];
};

static void
log_free (struct cb_log *log, char which)
{
  size_t n = strlen (log->order);

  if (n < sizeof log->order - 1)
    log->order[n] = which;
}

static void
log_name (struct cb_log *log, const char *name, const char *description)
{
  log->calls++;
  if (log->frees)
    log->call_after_free = true;
  if (log->nr_names < MAX_NAMES) {
    snprintf (log->names[log->nr_names], 64, "%s", name);
    snprintf (log->descriptions[log->nr_names], 64, "%s", description);
    log->nr_names++;
  }
}

static int
list_entry (void *user_data, const char *name, const char *description)
{
  log_name (user_data, name, description);
  return 0;
}

static int
context_entry (void *user_data, const char *name)
{
  log_name (user_data, name, "");
  return 0;
}

static void
entry_free (void *user_data)
{
  struct cb_log *log = user_data;

  log->frees++;
  log_free (log, 'l');
}

static int
completion (void *user_data, int *error)
{
  struct cb_log *log = user_data;

  log->completion_calls++;
  log->completion_error = *error;
  if (log->completion_frees)
    log->call_after_free = true;
  return 0;
}

static void
completion_free (void *user_data)
{
  struct cb_log *log = user_data;

  log->completion_frees++;
  log_free (log, 'c');
}

static nbd_list_callback
list_cb (struct cb_log *log)
{
  return (nbd_list_callback) { .callback = list_entry, .user_data = log,
                               .free = entry_free };
}

static nbd_context_callback
context_cb (struct cb_log *log)
{
  return (nbd_context_callback) { .callback = context_entry,
                                  .user_data = log, .free = entry_free };
}

static nbd_completion_callback
completion_cb (struct cb_log *log)
{
  return (nbd_completion_callback) { .callback = completion,
                                     .user_data = log,
                                     .free = completion_free };
}

static bool
has_name (const struct cb_log *log, const char *name,
          const char *description)
{
  for (int i = 0; i < log->nr_names; i++)
    if (strcmp (log->names[i], name) == 0 &&
        (description == NULL ||
         strcmp (log->descriptions[i], description) == 0))
      return true;
  return false;
}

static void
diag_names (const struct cb_log *log)
{
  for (int i = 0; i < log->nr_names; i++)
    tap_diag ("  \"%s\" \"%s\"", log->names[i], log->descriptions[i]);
}

/* A new handle in opt mode, connected to SOCK: negotiating. */
static struct nbd_handle *
opt_connect (const char *sock)
{
  struct nbd_handle *h = tap_create ();

  if (nbd_set_opt_mode (h, true) == -1 || nbd_connect_unix (h, sock) == -1)
    tap_bail ("opt mode connect to %s", sock);
  return h;
}

/* nbd_aio_opt_*(3): "wait for nbd_aio_is_connecting(3) to return false". */
static bool
wait_option (struct nbd_handle *h)
{
  while (nbd_aio_is_connecting (h))
    if (nbd_poll (h, -1) == -1)
      return false;
  return true;
}

/* The exactly-once rules for a call that took a list or context
 * callback and a completion callback (libnbd(3) "Callback lifetimes").
 */
static void
check_frees (const struct cb_log *log, bool completed, const char *what)
{
  if (!tap_ok (log->frees == 1 && log->completion_frees == 1 &&
               strcmp (log->order, "lc") == 0 && !log->call_after_free &&
               log->completion_calls == (completed ? 1 : 0),
               "%s: completion called %s, each .free once (list or "
               "context first), no call after .free", what,
               completed ? "once" : "never"))
    tap_diag ("frees %d, completion calls %d frees %d, order \"%s\"",
              log->frees, log->completion_calls, log->completion_frees,
              log->order);
}

/* ---- Calls on a handle that is not negotiating. ---- */

static void
test_created (void)
{
  struct nbd_handle *h = tap_create ();
  struct cb_log a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };

  tap_ok (nbd_get_opt_mode (h) == 0,
          "nbd_get_opt_mode(3): option mode is off by default");
  tap_ok (nbd_aio_is_negotiating (h) == 0,
          "nbd_aio_is_negotiating(3): false on a new handle");
  tap_check_fails (nbd_opt_go (h), "nbd_opt_go", ENOTCONN,
                   "nbd_opt_go(3) on a new handle");
  tap_check_fails (nbd_opt_info (h), "nbd_opt_info", ENOTCONN,
                   "nbd_opt_info(3) on a new handle");
  tap_check_fails (nbd_opt_abort (h), "nbd_opt_abort", ENOTCONN,
                   "nbd_opt_abort(3) on a new handle");
  tap_check_fails (nbd_aio_opt_abort (h), "nbd_aio_opt_abort", ENOTCONN,
                   "nbd_aio_opt_abort(3) on a new handle");

  tap_check_fails (nbd_opt_list (h, list_cb (&a)), "nbd_opt_list", ENOTCONN,
                   "nbd_opt_list(3) on a new handle");
  tap_ok (a.calls == 0 && a.frees == 1,
          "nbd_opt_list(3) refused: .free runs once, the callback never");
  tap_check_fails (nbd_aio_opt_list (h, list_cb (&b), completion_cb (&b)),
                   "nbd_aio_opt_list", ENOTCONN,
                   "nbd_aio_opt_list(3) on a new handle");
  check_frees (&b, false, "nbd_aio_opt_list(3) refused");
  tap_check_fails (nbd_opt_list_meta_context (h, context_cb (&c)),
                   "nbd_opt_list_meta_context", ENOTCONN,
                   "nbd_opt_list_meta_context(3) on a new handle");
  tap_ok (c.calls == 0 && c.frees == 1,
          "nbd_opt_list_meta_context(3) refused: .free runs once");
  tap_check_fails (nbd_aio_opt_list_meta_context (h, context_cb (&d),
                                                  completion_cb (&d)),
                   "nbd_aio_opt_list_meta_context", ENOTCONN,
                   "nbd_aio_opt_list_meta_context(3) on a new handle");
  check_frees (&d, false, "nbd_aio_opt_list_meta_context(3) refused");
  e.frees = 1;                  /* no list callback: only completion */
  strcpy (e.order, "l");
  tap_check_fails (nbd_aio_opt_go (h, completion_cb (&e)),
                   "nbd_aio_opt_go", ENOTCONN,
                   "nbd_aio_opt_go(3) on a new handle");
  check_frees (&e, false, "nbd_aio_opt_go(3) refused");

  tap_ok (nbd_set_opt_mode (h, true) == 0 && nbd_get_opt_mode (h) == 1,
          "nbd_set_opt_mode(3): nbd_get_opt_mode returns the new setting");
  tap_ok (nbd_set_opt_mode (h, false) == 0 && nbd_get_opt_mode (h) == 0,
          "nbd_set_opt_mode(3): it can be turned off again");
  nbd_close (h);
}

/* ---- The negotiating state (nbd_aio_is_negotiating(3)). ---- */

static void
test_negotiating (void)
{
  struct nbd_handle *h = opt_connect (mem_sock);
  char buf[512];
  const char *s;

  tap_ok (nbd_aio_is_negotiating (h) == 1 && nbd_aio_is_connecting (h) == 0
          && nbd_aio_is_ready (h) == 0,
          "nbd_set_opt_mode(3): nbd_connect_unix stops in the negotiating "
          "state");
  s = nbd_connection_state (h);
  if (!tap_ok (s && strncmp (s, "NEGOTIATING:", 12) == 0,
               "nbd_connection_state(3) says NEGOTIATING"))
    tap_diag ("got %s", s ? s : "NULL");
  tap_ok (nbd_aio_get_direction (h) == 0,
          "nbd_aio_get_direction(3): nothing to wait for while negotiating");
  tap_check_fails (nbd_poll (h, 0), "nbd_poll", EINVAL,
                   "nbd_poll(3) while negotiating");
  tap_check_fails (nbd_aio_in_flight (h), "nbd_aio_in_flight", EINVAL,
                   "nbd_aio_in_flight(3) while negotiating");
  tap_check_fails (nbd_get_size (h), "nbd_get_size", EINVAL,
                   "nbd_get_size(3) before nbd_opt_info");
  tap_check_fails (nbd_is_read_only (h), "nbd_is_read_only", EINVAL,
                   "nbd_is_read_only(3) before nbd_opt_info");
  tap_check_fails (nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION),
                   "nbd_can_meta_context", EINVAL,
                   "nbd_can_meta_context(3) before nbd_opt_info");
  s = nbd_get_protocol (h);
  tap_ok (s && strcmp (s, "newstyle-fixed") == 0,
          "nbd_get_protocol(3) works while negotiating");
  tap_ok (nbd_get_structured_replies_negotiated (h) == 1,
          "nbd_get_structured_replies_negotiated(3): negotiated before "
          "the handle stops");
  tap_check_fails (nbd_pread (h, buf, sizeof buf, 0, 0), "nbd_pread", EINVAL,
                   "nbd_pread(3) while negotiating");
  tap_check_fails (nbd_shutdown (h, 0), "nbd_shutdown", EINVAL,
                   "nbd_shutdown(3) while negotiating");

  /* Settings: which ones the negotiating state still takes. */
  tap_check_fails (nbd_set_opt_mode (h, false), "nbd_set_opt_mode", EINVAL,
                   "nbd_set_opt_mode(3) while negotiating");
  tap_check_fails (nbd_set_request_structured_replies (h, false),
                   "nbd_set_request_structured_replies", EINVAL,
                   "nbd_set_request_structured_replies(3) while negotiating");
  tap_check_fails (nbd_set_handshake_flags (h, 0), "nbd_set_handshake_flags",
                   EINVAL, "nbd_set_handshake_flags(3) while negotiating");
  tap_ok (nbd_set_full_info (h, true) == 0 && nbd_get_full_info (h) == 1,
          "nbd_set_full_info(3) works while negotiating");
  tap_ok (nbd_set_export_name (h, "x") == 0,
          "nbd_set_export_name(3) works while negotiating");
  tap_check_string (nbd_get_export_name (h), "x",
                    "nbd_get_export_name(3) after it");
  tap_ok (nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0 &&
          nbd_clear_meta_contexts (h) == 0,
          "nbd_add_meta_context(3), nbd_clear_meta_contexts(3) work while "
          "negotiating");

  /* nbd_opt_abort(3): the connection ends. */
  tap_ok (nbd_opt_abort (h) == 0, "nbd_opt_abort(3) succeeds");
  tap_ok (nbd_aio_is_closed (h) == 1,
          "nbd_opt_abort(3): the handle is closed");
  tap_check_fails (nbd_opt_abort (h), "nbd_opt_abort", EINVAL,
                   "nbd_opt_abort(3) once closed");
  tap_check_fails (nbd_opt_go (h), "nbd_opt_go", EINVAL,
                   "nbd_opt_go(3) once closed");
  tap_check_fails (nbd_get_size (h), "nbd_get_size", EINVAL,
                   "nbd_get_size(3) after an abort with no nbd_opt_info");
  nbd_close (h);

  /* nbd_aio_opt_abort(3), then a closed handle. */
  h = opt_connect (mem_sock);
  tap_ok (nbd_aio_opt_abort (h) == 0 && wait_option (h) &&
          nbd_aio_is_closed (h) == 1,
          "nbd_aio_opt_abort(3): the handle ends closed");
  nbd_close (h);
}

/* ---- nbdkit file dir=: three exports. ---- */

static const struct {
  const char *name;
  int64_t size;
} dir_exports[] = { { "a", 1 * MiB }, { "b", 2 * MiB }, { "c", 3 * MiB } };
#define NR_DIR_EXPORTS 3

static void
test_dir (void)
{
  struct nbd_handle *h = opt_connect (dir_sock);
  struct cb_log log = { 0 }, alog = { 0 }, go = { 0 };
  char buf[512];
  int n, i;

  /* nbd_opt_list(3): "returns the number of exports". */
  n = nbd_opt_list (h, list_cb (&log));
  if (!tap_ok (n == NR_DIR_EXPORTS && log.calls == NR_DIR_EXPORTS,
               "nbd_opt_list(3) returns the number of exports (3), one "
               "callback each"))
    tap_diag ("returned %d (%s), %d calls", n,
              n == -1 ? nbd_get_error () : "-", log.calls);
  for (i = 0; i < NR_DIR_EXPORTS; i++)
    if (!tap_ok (has_name (&log, dir_exports[i].name, ""),
                 "nbd_opt_list(3) lists export \"%s\", with an empty "
                 "description", dir_exports[i].name))
      diag_names (&log);
  tap_ok (log.frees == 1 && !log.call_after_free,
          "nbd_opt_list(3): .free runs once, after the last call");
  tap_ok (nbd_aio_is_negotiating (h) == 1,
          "nbd_opt_list(3): the handle is negotiating again");

  /* nbd_opt_info(3) on each export, by name. */
  for (i = 0; i < NR_DIR_EXPORTS; i++) {
    int64_t size;

    nbd_set_export_name (h, dir_exports[i].name);
    tap_ok (nbd_opt_info (h) == 0 && (size = nbd_get_size (h)) ==
            dir_exports[i].size && nbd_aio_is_negotiating (h) == 1,
            "nbd_opt_info(3) on \"%s\": nbd_get_size is %" PRIi64 ", still "
            "negotiating", dir_exports[i].name, dir_exports[i].size);
  }
  /* libnbd 1.14 keeps the last answer when the name changes ... */
  nbd_set_export_name (h, "nonexistent");
  tap_ok (nbd_get_size (h) == 3 * MiB,
          "nbd_set_export_name(3) does not forget what nbd_opt_info told");
  /* ... and forgets it when an INFO or GO is refused. */
  tap_check_fails (nbd_opt_info (h), "nbd_opt_info", ENOENT,
                   "nbd_opt_info(3) on an export the server does not have");
  tap_check_fails (nbd_get_size (h), "nbd_get_size", EINVAL,
                   "nbd_get_size(3) after a refused nbd_opt_info");
  tap_check_fails (nbd_opt_go (h), "nbd_opt_go", ENOENT,
                   "nbd_opt_go(3) on an export the server does not have");
  tap_ok (nbd_aio_is_negotiating (h) == 1,
          "nbd_set_opt_mode(3): a failed nbd_opt_go returns to the "
          "negotiating state");

  /* nbd_set_export_name(3) between nbd_opt_info(3) and nbd_opt_go(3). */
  nbd_set_export_name (h, "a");
  nbd_opt_info (h);
  nbd_set_export_name (h, "b");
  tap_ok (nbd_opt_go (h) == 0 && nbd_aio_is_ready (h) == 1 &&
          nbd_get_size (h) == 2 * MiB,
          "nbd_opt_go(3) serves the export named last (\"b\"), not the "
          "one of nbd_opt_info");
  tap_ok (nbd_pread (h, buf, sizeof buf, 0, 0) == 0,
          "nbd_opt_go(3): the handle then reads");
  tap_check_fails (nbd_opt_go (h), "nbd_opt_go", EINVAL,
                   "nbd_opt_go(3) once ready");
  tap_check_fails (nbd_opt_list (h, list_cb (&alog)), "nbd_opt_list", EINVAL,
                   "nbd_opt_list(3) once ready");
  tap_ok (alog.frees == 1 && alog.calls == 0,
          "nbd_opt_list(3) refused once ready: .free runs once");
  tap_check_fails (nbd_set_export_name (h, "c"), "nbd_set_export_name",
                   EINVAL, "nbd_set_export_name(3) once ready");
  nbd_shutdown (h, 0);
  nbd_close (h);

  /* Select each export with nbd_aio_opt_go(3). */
  for (i = 0; i < NR_DIR_EXPORTS; i++) {
    struct cb_log g = { .frees = 1, .order = "l" };

    h = opt_connect (dir_sock);
    nbd_set_export_name (h, dir_exports[i].name);
    tap_ok (nbd_aio_opt_go (h, completion_cb (&g)) == 0 && wait_option (h)
            && g.completion_error == 0 && nbd_aio_is_ready (h) == 1 &&
            nbd_get_size (h) == dir_exports[i].size,
            "nbd_aio_opt_go(3) on \"%s\": completion with error 0, ready, "
            "size %" PRIi64, dir_exports[i].name, dir_exports[i].size);
    check_frees (&g, true, "nbd_aio_opt_go(3)");
    nbd_shutdown (h, 0);
    nbd_close (h);
  }

  /* nbd_aio_opt_list(3), and a failed nbd_aio_opt_go(3). */
  h = opt_connect (dir_sock);
  memset (&alog, 0, sizeof alog);
  tap_ok (nbd_aio_opt_list (h, list_cb (&alog), completion_cb (&alog)) == 0
          && wait_option (h) && alog.completion_error == 0 &&
          alog.calls == NR_DIR_EXPORTS,
          "nbd_aio_opt_list(3): three exports, completion with error 0");
  check_frees (&alog, true, "nbd_aio_opt_list(3)");
  go.frees = 1;
  strcpy (go.order, "l");
  nbd_set_export_name (h, "nonexistent");
  tap_ok (nbd_aio_opt_go (h, completion_cb (&go)) == 0 && wait_option (h) &&
          go.completion_error == ENOENT && nbd_aio_is_negotiating (h) == 1,
          "nbd_aio_opt_go(3): a refused GO reaches the completion callback "
          "(ENOENT) and the handle is negotiating again");
  check_frees (&go, true, "nbd_aio_opt_go(3) refused");
  nbd_close (h);
}

/* ---- nbdkit memory: full info and meta contexts. ---- */

static void
test_memory (void)
{
  struct nbd_handle *h = opt_connect (mem_sock);
  struct cb_log all = { 0 }, one = { 0 }, info = { .frees = 1, .order = "l" };
  char buf[512];
  int n;

  /* nbd_set_full_info(3) in the negotiating state applies to INFO. */
  nbd_set_full_info (h, true);
  tap_ok (nbd_opt_info (h) == 0 && nbd_get_size (h) == 1 * MiB,
          "nbd_opt_info(3): nbd_get_size reports the export while "
          "negotiating");
  tap_ok (nbd_is_read_only (h) == 0 && nbd_can_flush (h) == 1,
          "nbd_opt_info(3): the export's flags are known while negotiating");
  tap_check_string (nbd_get_canonical_export_name (h), "canon",
                    "nbd_set_full_info(3): NBD_INFO_NAME with nbd_opt_info");
  tap_check_string (nbd_get_export_description (h), "a description",
                    "nbd_set_full_info(3): NBD_INFO_DESCRIPTION with "
                    "nbd_opt_info");

  /* nbd_opt_list_meta_context(3): no query asks for every context. */
  n = nbd_opt_list_meta_context (h, context_cb (&all));
  if (!tap_ok (n >= 1 && n == all.calls &&
               has_name (&all, LIBNBD_CONTEXT_BASE_ALLOCATION, NULL),
               "nbd_opt_list_meta_context(3) without a query lists "
               "base:allocation and returns the count"))
    tap_diag ("returned %d, %d calls", n, all.calls);
  tap_ok (all.frees == 1 && !all.call_after_free,
          "nbd_opt_list_meta_context(3): .free runs once, after the calls");
  /* libnbd 1.14 forgets an earlier INFO here. */
  tap_check_fails (nbd_get_size (h), "nbd_get_size", EINVAL,
                   "nbd_get_size(3) after nbd_opt_list_meta_context");

  nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);
  nbd_add_meta_context (h, "nosuch:context");
  n = nbd_opt_list_meta_context (h, context_cb (&one));
  tap_ok (n == 1 && one.calls == 1 &&
          has_name (&one, LIBNBD_CONTEXT_BASE_ALLOCATION, NULL),
          "nbd_opt_list_meta_context(3): the requested contexts are the "
          "queries (base:allocation and one unknown: 1 reply)");

  tap_ok (nbd_opt_info (h) == 0 &&
          nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1,
          "nbd_opt_info(3) sets the requested meta contexts (as libnbd "
          "1.14): nbd_can_meta_context is 1");
  nbd_clear_meta_contexts (h);
  tap_ok (nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1,
          "nbd_clear_meta_contexts(3) leaves what the server selected");
  tap_ok (nbd_opt_info (h) == 0 &&
          nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0,
          "nbd_opt_info(3) with no context requested: "
          "nbd_can_meta_context is 0");

  nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);
  tap_ok (nbd_aio_opt_info (h, completion_cb (&info)) == 0 &&
          wait_option (h) && info.completion_error == 0 &&
          nbd_get_size (h) == 1 * MiB,
          "nbd_aio_opt_info(3): completion with error 0, the size known");
  check_frees (&info, true, "nbd_aio_opt_info(3)");
  tap_ok (nbd_opt_go (h) == 0 && nbd_aio_is_ready (h) == 1 &&
          nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1,
          "nbd_opt_go(3) sets the requested meta context");
  tap_check_string (nbd_get_export_description (h), "a description",
                    "nbd_set_full_info(3): the description after "
                    "nbd_opt_go");
  tap_ok (nbd_pread (h, buf, sizeof buf, 0, 0) == 0,
          "nbd_opt_go(3): the handle then reads");
  nbd_shutdown (h, 0);
  nbd_close (h);
}

/* ---- qemu-nbd: a named export and qemu's own meta context. ---- */

static void
test_qemu (void)
{
  struct nbd_handle *h;
  struct cb_log list = { 0 }, all = { 0 }, qemu = { 0 };
  int n;

  if (strcmp (qemu_sock, "-") == 0) {
    tap_skip ("qemu-nbd not installed", "qemu-nbd in option mode");
    return;
  }
  h = opt_connect (qemu_sock);
  n = nbd_opt_list (h, list_cb (&list));
  if (!tap_ok (n == 1 && has_name (&list, "qexp", "qemu desc"),
               "nbd_opt_list(3): qemu-nbd's export and its description "
               "(-D)"))
    diag_names (&list);
  tap_check_fails (nbd_opt_info (h), "nbd_opt_info", ENOENT,
                   "nbd_opt_info(3) on the default export qemu-nbd -x "
                   "does not have");
  nbd_set_export_name (h, "qexp");
  n = nbd_opt_list_meta_context (h, context_cb (&all));
  if (!tap_ok (n == 2 && has_name (&all, LIBNBD_CONTEXT_BASE_ALLOCATION, NULL)
               && has_name (&all, "qemu:allocation-depth", NULL),
               "nbd_opt_list_meta_context(3): qemu-nbd -A lists "
               "base:allocation and qemu:allocation-depth"))
    diag_names (&all);
  nbd_add_meta_context (h, "qemu:");
  n = nbd_opt_list_meta_context (h, context_cb (&qemu));
  if (!tap_ok (n == 1 && has_name (&qemu, "qemu:allocation-depth", NULL),
               "nbd_opt_list_meta_context(3): the query \"qemu:\" lists "
               "qemu:allocation-depth only"))
    diag_names (&qemu);
  nbd_clear_meta_contexts (h);
  nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);
  nbd_add_meta_context (h, "qemu:allocation-depth");
  tap_ok (nbd_opt_go (h) == 0 && nbd_get_size (h) == 1 * MiB &&
          nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1 &&
          nbd_can_meta_context (h, "qemu:allocation-depth") == 1,
          "nbd_opt_go(3) on qemu-nbd sets both contexts");
  nbd_shutdown (h, 0);
  nbd_close (h);
}

/* ---- nbd-server: LIST without structured replies. ---- */

static void
test_nbd_server (void)
{
  struct nbd_handle *h;
  struct cb_log list = { 0 }, ctx = { 0 };
  int n;

  if (strcmp (nbdsrv_sock, "-") == 0) {
    tap_skip ("nbd-server not installed", "nbd-server in option mode");
    return;
  }
  h = opt_connect (nbdsrv_sock);
  tap_ok (nbd_get_structured_replies_negotiated (h) == 0,
          "nbd-server has no structured replies");
  n = nbd_opt_list (h, list_cb (&list));
  if (!tap_ok (n == 1 && has_name (&list, "export", ""),
               "nbd_opt_list(3): nbd-server (allowlist = true) lists its "
               "export"))
    diag_names (&list);
  tap_check_fails (nbd_opt_list_meta_context (h, context_cb (&ctx)),
                   "nbd_opt_list_meta_context", ENOTSUP,
                   "nbd_opt_list_meta_context(3) without structured "
                   "replies");
  tap_ok (ctx.frees == 1 && ctx.calls == 0,
          "nbd_opt_list_meta_context(3) refused: .free runs once");
  nbd_set_export_name (h, "export");
  tap_ok (nbd_opt_go (h) == 0 && nbd_get_size (h) == 1 * MiB,
          "nbd_opt_go(3) on nbd-server");
  nbd_shutdown (h, 0);
  nbd_close (h);
}

/* ---- Servers that cannot negotiate options. ---- */

static void
test_oldstyle (void)
{
  struct nbd_handle *h = opt_connect (old_sock);
  struct cb_log log = { 0 };

  tap_ok (nbd_aio_is_ready (h) == 1 && nbd_aio_is_negotiating (h) == 0,
          "nbd_set_opt_mode(3): an oldstyle server goes straight to ready");
  tap_check_fails (nbd_opt_list (h, list_cb (&log)), "nbd_opt_list", EINVAL,
                   "nbd_opt_list(3) on an oldstyle connection");
  nbd_shutdown (h, 0);
  nbd_close (h);
}

/* Without fixed newstyle only GO (as EXPORT_NAME) and ABORT work. */
static void
test_not_fixed (void)
{
  struct nbd_handle *h = tap_create ();
  struct cb_log list = { 0 }, ctx = { 0 };
  const char *s;

  nbd_set_opt_mode (h, true);
  nbd_set_handshake_flags (h, 0);
  if (nbd_connect_unix (h, mem_sock) == -1)
    tap_bail ("connect without fixed newstyle");
  s = nbd_get_protocol (h);
  tap_ok (nbd_aio_is_negotiating (h) == 1 && s &&
          strcmp (s, "newstyle") == 0,
          "nbd_set_opt_mode(3): plain newstyle stops negotiating too");
  tap_check_fails (nbd_opt_list (h, list_cb (&list)), "nbd_opt_list",
                   ENOTSUP, "nbd_opt_list(3) without fixed newstyle");
  tap_ok (list.frees == 1 && list.calls == 0,
          "nbd_opt_list(3) refused: .free runs once");
  tap_check_fails (nbd_opt_info (h), "nbd_opt_info", ENOTSUP,
                   "nbd_opt_info(3) without fixed newstyle");
  tap_check_fails (nbd_opt_list_meta_context (h, context_cb (&ctx)),
                   "nbd_opt_list_meta_context", ENOTSUP,
                   "nbd_opt_list_meta_context(3) without fixed newstyle");
  tap_ok (nbd_opt_go (h) == 0 && nbd_aio_is_ready (h) == 1 &&
          nbd_get_size (h) == 1 * MiB,
          "nbd_opt_go(3) without fixed newstyle (NBD_OPT_EXPORT_NAME)");
  nbd_shutdown (h, 0);
  nbd_close (h);
}

/* Meta contexts need structured replies. */
static void
test_no_structured_replies (void)
{
  struct nbd_handle *h = tap_create ();
  struct cb_log ctx = { 0 };

  nbd_set_opt_mode (h, true);
  nbd_set_request_structured_replies (h, false);
  nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);
  if (nbd_connect_unix (h, mem_sock) == -1)
    tap_bail ("connect without structured replies");
  tap_check_fails (nbd_aio_opt_list_meta_context (h, context_cb (&ctx),
                                                  completion_cb (&ctx)),
                   "nbd_aio_opt_list_meta_context", ENOTSUP,
                   "nbd_aio_opt_list_meta_context(3) without structured "
                   "replies");
  check_frees (&ctx, false, "nbd_aio_opt_list_meta_context(3) refused");
  tap_ok (nbd_opt_go (h) == 0 &&
          nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0,
          "nbd_opt_go(3) without structured replies sets no context");
  nbd_shutdown (h, 0);
  nbd_close (h);
}

int
main (int argc, char *argv[])
{
  tap_init ();
  if (argc != 6) {
    fprintf (stderr, "usage: %s DIRSOCK MEMSOCK QEMUSOCK NBDSRVSOCK "
             "OLDSOCK\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  dir_sock = argv[1];
  mem_sock = argv[2];
  qemu_sock = argv[3];
  nbdsrv_sock = argv[4];
  old_sock = argv[5];
  signal (SIGPIPE, SIG_IGN);

  test_created ();
  test_negotiating ();
  test_dir ();
  test_memory ();
  test_qemu ();
  test_nbd_server ();
  test_oldstyle ();
  test_not_fixed ();
  test_no_structured_replies ();
  exit (tap_failures ? EXIT_FAILURE : EXIT_SUCCESS);
}
