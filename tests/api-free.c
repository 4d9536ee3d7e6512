/* nbd-proxy tests: every callback's .free runs exactly once, on every path.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-free PATSOCK ERRSOCK MEMSOCK
 *
 * PATSOCK: nbdkit pattern 1M
 * ERRSOCK: nbdkit --filter=error pattern 1M error-pread-rate=1
 *          error-pread=EIO
 * MEMSOCK: nbdkit --filter=error memory 1M error-trim-rate=1
 *          error-trim=EIO error-extents-rate=... (see api-free.sh)
 * The paths with commands in flight run "nbdkit -s --filter=delay pattern
 * 1M" from $PATH through nbd_connect_command(3).
 *
 * Rule (libnbd(3) "Callbacks with .free"): the library calls .free exactly
 * once, after the last .callback, whether the command succeeds, fails on
 * the server, is failed by a callback, is refused before it is queued (then
 * .callback never runs), dies with the connection, or is dropped by
 * nbd_close(3) (then the completion callback never runs).
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>

#include <libnbd.h>

#include "api-tap.h"

static int free_sequence;

/* Counters for one callback. */
struct counter {
  int calls;
  int frees;
  int freed_at;                 /* free_sequence when freed */
  int calls_after_free;
  int error;                    /* *error seen by the last call */
  int ret;                      /* what .callback returns */
};

/* Was each of the n chunk and completion callbacks freed exactly once? */
static bool
freed_once (const struct counter *ch, const struct counter *co, int n)
{
  for (int i = 0; i < n; i++)
    if (ch[i].frees != 1 || co[i].frees != 1)
      return false;
  return true;
}

static int
chunk_cb (void *user_data, const void *subbuf, size_t count,
          uint64_t offset, unsigned status, int *error)
{
  struct counter *c = user_data;

  c->calls++;
  if (c->frees)
    c->calls_after_free++;
  c->error = *error;
  if (c->ret == -1)
    *error = EPERM;
  return c->ret;
}

static int
completion_cb (void *user_data, int *error)
{
  struct counter *c = user_data;

  c->calls++;
  if (c->frees)
    c->calls_after_free++;
  c->error = *error;
  return c->ret;
}

static void
free_cb (void *user_data)
{
  struct counter *c = user_data;

  c->frees++;
  c->freed_at = ++free_sequence;
}

static int
debug_cb (void *user_data, const char *context, const char *msg)
{
  return 0;
}

static nbd_chunk_callback
chunk (struct counter *c)
{
  return (nbd_chunk_callback) { .callback = chunk_cb, .user_data = c,
                                .free = free_cb };
}

static nbd_completion_callback
completion (struct counter *c)
{
  return (nbd_completion_callback) { .callback = completion_cb,
                                     .user_data = c, .free = free_cb };
}

/* Delays every read by SECONDS (a string nbdkit understands). */
static struct nbd_handle *
connect_delayed (const char *delay)
{
  struct nbd_handle *h = tap_create ();
  char arg[64];
  char *argv[] = { "nbdkit", "-s", "--exit-with-parent", "--filter=delay",
                   "pattern", "1M", arg, NULL };

  snprintf (arg, sizeof arg, "delay-read=%s", delay);
  if (nbd_connect_command (h, argv) == -1)
    tap_bail ("nbd_connect_command nbdkit --filter=delay");
  return h;
}

static void
check_once (const char *what, const struct counter *c, bool want_called)
{
  bool ok = c->frees == 1 && c->calls_after_free == 0 &&
    (want_called ? c->calls >= 1 : c->calls == 0);

  if (!tap_ok (ok, "%s: .free once%s", what,
               want_called ? ", after the calls" : ", .callback never"))
    tap_diag ("calls %d, frees %d, calls after free %d", c->calls, c->frees,
              c->calls_after_free);
}

/* Success, retired by nbd_aio_command_completed(3). */
static void
test_success (const char *sock)
{
  struct nbd_handle *h = tap_connect_unix (sock);
  static unsigned char buf[65536];
  struct counter ch = { 0 }, co = { 0 }, co2 = { 0 }, co3 = { 0 };
  struct counter co4, sc = { 0 };
  int64_t cookie;

  cookie = nbd_aio_pread_structured (h, buf, sizeof buf, 0, chunk (&ch),
                                     completion (&co), 0);
  tap_ok (wait_for_cookie (h, cookie) == 1, "success: read completes");
  tap_ok (co.calls == 1 && co.error == 0,
          "success: completion called once with *error 0");
  check_once ("success: chunk", &ch, true);
  check_once ("success: completion", &co, true);
  tap_ok (ch.freed_at < co.freed_at,
          "success: the chunk .free runs before the completion .free");

  /* Completion returning 1: retired by the library. */
  co2.ret = 1;
  cookie = nbd_aio_pread (h, buf, 4096, 0, completion (&co2), 0);
  tap_ok (cookie >= 1, "auto-retire: nbd_aio_pread queued");
  drain (h);
  check_once ("auto-retire: completion", &co2, true);

  /* nbd_aio_pread with a completion only. */
  cookie = nbd_aio_pread (h, buf, 4096, 4096, completion (&co3), 0);
  tap_ok (wait_for_cookie (h, cookie) == 1, "aio_pread: read completes");
  check_once ("aio_pread: completion", &co3, true);

  /* libnbd(3) "Callbacks with .callback=NULL and .free!=NULL": never
   * called, still freed once.
   */
  memset (&co4, 0, sizeof co4);
  cookie = nbd_aio_pread (h, buf, 4096, 0,
                          (nbd_completion_callback) { .user_data = &co4,
                                                      .free = free_cb }, 0);
  tap_ok (wait_for_cookie (h, cookie) == 1,
          "NULL .callback: read completes");
  check_once ("NULL .callback with .free: completion", &co4, false);

  /* The blocking form. */
  tap_ok (nbd_pread_structured (h, buf, 4096, 0, chunk (&sc), 0) == 0,
          "nbd_pread_structured succeeds");
  check_once ("nbd_pread_structured: chunk", &sc, true);

  nbd_shutdown (h, 0);
  nbd_close (h);
  tap_ok (ch.frees == 1 && co.frees == 1 && co2.frees == 1 &&
          co3.frees == 1 && co4.frees == 1 && sc.frees == 1,
          "nbd_close(3) frees nothing a second time");
}

/* The server fails the read. */
static void
test_server_error (const char *sock)
{
  struct nbd_handle *h = tap_connect_unix (sock);
  static unsigned char buf[4096];
  struct counter ch = { 0 }, co = { 0 }, sc = { 0 };
  int64_t cookie;

  cookie = nbd_aio_pread_structured (h, buf, sizeof buf, 0, chunk (&ch),
                                     completion (&co), 0);
  tap_ok (wait_for_cookie (h, cookie) == -1 && nbd_get_errno () == EIO,
          "server error: read fails with EIO");
  tap_ok (co.calls == 1 && co.error == EIO,
          "server error: completion called once with *error EIO");
  tap_ok (ch.frees == 1 && ch.calls_after_free == 0,
          "server error: chunk .free once");
  check_once ("server error: completion", &co, true);

  tap_ok (nbd_pread_structured (h, buf, sizeof buf, 0, chunk (&sc), 0) == -1,
          "server error: nbd_pread_structured fails");
  tap_ok (sc.frees == 1, "server error: nbd_pread_structured chunk .free "
          "once");
  nbd_shutdown (h, 0);
  nbd_close (h);
  tap_ok (ch.frees == 1 && co.frees == 1 && sc.frees == 1,
          "server error: nothing freed twice by nbd_close(3)");
}

/* The chunk callback fails the command. */
static void
test_chunk_error (const char *sock)
{
  struct nbd_handle *h = tap_connect_unix (sock);
  static unsigned char buf[4096];
  struct counter ch = { .ret = -1 }, co = { 0 };
  int64_t cookie;

  cookie = nbd_aio_pread_structured (h, buf, sizeof buf, 0, chunk (&ch),
                                     completion (&co), 0);
  tap_ok (wait_for_cookie (h, cookie) == -1 && nbd_get_errno () == EPERM,
          "chunk error: read fails with EPERM");
  check_once ("chunk error: chunk", &ch, true);
  check_once ("chunk error: completion", &co, true);
  nbd_shutdown (h, 0);
  nbd_close (h);
}

/* Calls refused before anything is queued. */
static void
refused (struct nbd_handle *h, const char *what, const char *call,
         size_t count, uint64_t offset, uint32_t flags, bool use_chunk,
         bool sync)
{
  static unsigned char small[8192];
  unsigned char *buf = count <= sizeof small ? small : malloc (count);
  struct counter ch = { 0 }, co = { 0 };
  int64_t r;

  if (buf == NULL)
    abort ();

  if (sync)
    r = nbd_pread_structured (h, buf, count, offset, chunk (&ch), flags);
  else if (use_chunk)
    r = nbd_aio_pread_structured (h, buf, count, offset, chunk (&ch),
                                  completion (&co), flags);
  else
    r = nbd_aio_pread (h, buf, count, offset, completion (&co), flags);
  tap_ok (r == -1, "%s: %s fails", what, call);
  tap_error_is (call, -1, what);
  if (use_chunk || sync)
    check_once (what, &ch, false);
  if (!sync)
    check_once (what, &co, false);
  if (buf != small)
    free (buf);
}

static char *big_argv[] = { "nbdkit", "-s", "--exit-with-parent", "pattern",
                            "1G", NULL };

static void
test_refused (const char *sock)
{
  struct nbd_handle *h = tap_create ();

  /* Not connected. */
  refused (h, "not connected", "nbd_aio_pread_structured", 512, 0, 0, true,
           false);
  refused (h, "not connected", "nbd_aio_pread", 512, 0, 0, false, false);
  refused (h, "not connected", "nbd_pread_structured", 512, 0, 0, true,
           true);
  nbd_close (h);

  h = tap_connect_unix (sock);
  refused (h, "past the end", "nbd_aio_pread_structured", 512, 1024 * 1024,
           0, true, false);
  refused (h, "past the end", "nbd_aio_pread", 8, 1024 * 1024 - 4, 0, false,
           false);
  refused (h, "zero length", "nbd_aio_pread_structured", 0, 0, 0, true,
           false);
  refused (h, "unknown flag", "nbd_aio_pread_structured", 512, 0, 0x40,
           true, false);
  refused (h, "unknown flag", "nbd_pread_structured", 512, 0, 0x40, true,
           true);
  nbd_shutdown (h, 0);
  nbd_close (h);

  /* nbd_pread_structured(3): at most 64 MiB per read (ERANGE). */
  h = tap_create ();
  if (nbd_connect_command (h, big_argv) == -1)
    tap_bail ("nbd_connect_command nbdkit pattern 1G");
  refused (h, "64 MiB + 1", "nbd_aio_pread_structured", 64 * 1024 * 1024 + 1,
           0, 0, true, false);
  tap_ok (nbd_get_errno () == ERANGE, "64 MiB + 1: errno is ERANGE");
  nbd_close (h);

  h = tap_connect_unix (sock);

  /* After shutdown. */
  nbd_shutdown (h, 0);
  refused (h, "after shutdown", "nbd_aio_pread_structured", 512, 0, 0, true,
           false);
  nbd_close (h);
}

/* Issue four 4 KiB reads with counted callbacks. */
static void
four_reads (struct nbd_handle *h, unsigned char (*buf)[4096],
            struct counter *ch, struct counter *co, int64_t *cookie)
{
  for (int i = 0; i < 4; i++)
    cookie[i] = nbd_aio_pread_structured (h, buf[i], 4096, i * 4096,
                                          chunk (&ch[i]), completion (&co[i]),
                                          0);
}

/* The server dies with commands in flight. */
static void
test_server_death (void)
{
  struct nbd_handle *h = connect_delayed ("30");
  static unsigned char buf[4][4096];
  struct counter ch[4] = { { 0 } }, co[4] = { { 0 } };
  int64_t cookie[4];
  bool ok;
  int i;

  four_reads (h, buf, ch, co, cookie);
  tap_ok (nbd_aio_in_flight (h) == 4, "death: 4 reads in flight");
  nbd_poll (h, 0);
  tap_ok (nbd_kill_subprocess (h, SIGKILL) == 0,
          "death: nbd_kill_subprocess(3) kills the server");
  /* The connection is gone: a reset kills the handle, an end of file
   * between replies closes it (both in libnbd; which one comes depends on
   * whether the server had unread bytes when it died).
   */
  for (i = 0; i < 100 && nbd_aio_in_flight (h) > 0; i++)
    nbd_poll (h, 1000);
  tap_ok (nbd_aio_in_flight (h) <= 0, "death: nothing left in flight");
  tap_ok (nbd_aio_is_dead (h) == 1 || nbd_aio_is_closed (h) == 1,
          "death: the handle is dead or closed");
  ok = true;
  for (i = 0; i < 4; i++)
    if (co[i].calls != 1 || co[i].error == 0 || ch[i].calls != 0)
      ok = false;
  tap_ok (ok, "death: each completion called once with an error, no chunk "
          "callbacks");
  ok = true;
  for (i = 0; i < 4; i++)
    if (nbd_aio_command_completed (h, cookie[i]) != -1)
      ok = false;
  tap_ok (ok, "death: each command retires with -1");
  tap_ok (freed_once (ch, co, 4), "death: each .free called once");

  refused (h, "dead handle", "nbd_aio_pread_structured", 512, 0, 0, true,
           false);
  nbd_close (h);
  tap_ok (freed_once (ch, co, 4),
          "death: nbd_close(3) frees nothing twice");
}

/* nbd_close(3) with commands in flight: their frees run, their completion
 * callbacks do not.
 */
static void
test_close_in_flight (void)
{
  struct nbd_handle *h = connect_delayed ("30");
  static unsigned char buf[4][4096];
  struct counter ch[4] = { { 0 } }, co[4] = { { 0 } };
  int64_t cookie[4];
  bool ok;
  int i;

  four_reads (h, buf, ch, co, cookie);
  tap_ok (nbd_aio_in_flight (h) == 4, "close: 4 reads in flight");
  nbd_poll (h, 0);
  nbd_close (h);
  tap_ok (freed_once (ch, co, 4),
          "close: each .free called once by nbd_close(3)");
  ok = true;
  for (i = 0; i < 4; i++)
    if (co[i].calls != 0 || ch[i].calls != 0)
      ok = false;
  tap_ok (ok, "close: no callback runs for a command dropped by close");
}

/* nbd_shutdown(3) with commands in flight: they finish (nbdkit may fail
 * them with ESHUTDOWN) and each callback is freed once.
 */
static void
test_shutdown_in_flight (void)
{
  struct nbd_handle *h = connect_delayed ("200ms");
  static unsigned char buf[4][4096];
  struct counter ch[4] = { { 0 } }, co[4] = { { 0 } };
  int64_t cookie[4];
  bool ok;
  int i;

  four_reads (h, buf, ch, co, cookie);
  tap_ok (nbd_shutdown (h, 0) == 0,
          "shutdown: nbd_shutdown(3) with reads in flight");
  tap_ok (nbd_aio_in_flight (h) == 0, "shutdown: nothing left in flight");
  ok = true;
  for (i = 0; i < 4; i++)
    if (co[i].calls != 1)
      ok = false;
  tap_ok (ok, "shutdown: each completion called once");
  ok = true;
  for (i = 0; i < 4; i++)
    if (nbd_aio_command_completed (h, cookie[i]) == 0)
      ok = false;
  tap_ok (ok, "shutdown: each command retires (1 or -1)");
  ok = true;
  for (i = 0; i < 4; i++)
    if (ch[i].frees != 1 || co[i].frees != 1 ||
        ch[i].calls_after_free || co[i].calls_after_free)
      ok = false;
  tap_ok (ok, "shutdown: each .free called once, after the calls");
  nbd_close (h);
}

/* nbd_set_debug_callback(3): replacing or clearing frees the old one. */
static void
test_debug_callback (void)
{
  struct nbd_handle *h = tap_create ();
  struct counter d1 = { 0 }, d2 = { 0 }, d3 = { 0 };

  nbd_set_debug_callback (h, (nbd_debug_callback) {
      .callback = debug_cb, .user_data = &d1, .free = free_cb });
  nbd_set_debug_callback (h, (nbd_debug_callback) {
      .callback = debug_cb, .user_data = &d2, .free = free_cb });
  tap_ok (d1.frees == 1 && d2.frees == 0,
          "debug: replacing the debug callback frees the old one");
  nbd_clear_debug_callback (h);
  tap_ok (d2.frees == 1, "debug: nbd_clear_debug_callback(3) frees it");
  nbd_set_debug_callback (h, (nbd_debug_callback) {
      .callback = debug_cb, .user_data = &d3, .free = free_cb });
  nbd_close (h);
  tap_ok (d1.frees == 1 && d2.frees == 1 && d3.frees == 1,
          "debug: nbd_close(3) frees the one installed, once each");
}

/* ----- The other commands: completion and extent callbacks. ----- */

static int
extent_cb (void *user_data, const char *metacontext, uint64_t offset,
           uint32_t *entries, size_t nr_entries, int *error)
{
  struct counter *c = user_data;

  c->calls++;
  if (c->frees)
    c->calls_after_free++;
  c->error = *error;
  if (c->ret == -1)
    *error = EPERM;
  return c->ret;
}

static nbd_extent_callback
extent (struct counter *c)
{
  return (nbd_extent_callback) { .callback = extent_cb, .user_data = c,
                                 .free = free_cb };
}

enum command { PWRITE, FLUSH, TRIM, CACHE, ZERO, BLOCK_STATUS, NR_COMMANDS };
static const char *command_name[] = {
  "nbd_aio_pwrite", "nbd_aio_flush", "nbd_aio_trim", "nbd_aio_cache",
  "nbd_aio_zero", "nbd_aio_block_status",
};

/* Issue one command with counted callbacks (ex is for block status). */
static int64_t
issue (struct nbd_handle *h, enum command c, uint64_t count,
       uint64_t offset, struct counter *co, struct counter *ex)
{
  static unsigned char buf[65536];

  switch (c) {
  case PWRITE:
    return nbd_aio_pwrite (h, buf, count, offset, completion (co), 0);
  case FLUSH:
    return nbd_aio_flush (h, completion (co), 0);
  case TRIM:
    return nbd_aio_trim (h, count, offset, completion (co), 0);
  case CACHE:
    return nbd_aio_cache (h, count, offset, completion (co), 0);
  case ZERO:
    return nbd_aio_zero (h, count, offset, completion (co), 0);
  case BLOCK_STATUS:
    return nbd_aio_block_status (h, count, offset, extent (ex),
                                 completion (co), 0);
  default:
    abort ();
  }
}

static struct nbd_handle *
connect_with_context (const char *sock)
{
  struct nbd_handle *h = tap_create ();

  nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);
  if (nbd_connect_unix (h, sock) == -1)
    tap_bail ("nbd_connect_unix %s", sock);
  return h;
}

/* Every command: success, a server error (trim and block status fail on
 * MEMSOCK), refused before queuing (zero length; not connected), an extent
 * callback failing the command, dropped by close.
 */
static void
test_commands (const char *sock)
{
  struct nbd_handle *h = connect_with_context (sock);
  struct counter co[NR_COMMANDS] = { { 0 } }, ex[NR_COMMANDS] = { { 0 } };
  char what[128];
  int64_t cookie;

  for (int c = 0; c < NR_COMMANDS; c++) {
    bool fails = c == TRIM || c == BLOCK_STATUS;

    cookie = issue (h, c, 4096, 0, &co[c], &ex[c]);
    snprintf (what, sizeof what, "%s %s", command_name[c],
              fails ? "server error" : "success");
    tap_ok (cookie >= 1 && wait_for_cookie (h, cookie) == (fails ? -1 : 1),
            "%s: the command %s", what, fails ? "fails" : "succeeds");
    check_once (what, &co[c], true);
    if (c == BLOCK_STATUS)
      check_once ("nbd_aio_block_status server error: extent", &ex[c],
                  false);
  }

  for (int c = 0; c < NR_COMMANDS; c++) {
    struct counter co0 = { 0 }, ex0 = { 0 };

    if (c == FLUSH)
      continue;                 /* no count */
    snprintf (what, sizeof what, "%s zero length refused", command_name[c]);
    tap_ok (issue (h, c, 0, 0, &co0, &ex0) == -1, "%s", what);
    check_once (what, &co0, false);
    if (c == BLOCK_STATUS)
      check_once ("nbd_aio_block_status refused: extent", &ex0, false);
  }
  {
    struct counter co0 = { 0 };

    tap_ok (nbd_aio_block_status (h, 512, 0, (nbd_extent_callback) {
                .callback = NULL }, completion (&co0), 0) == -1 &&
            nbd_get_errno () == EFAULT,
            "nbd_aio_block_status NULL extent callback: EFAULT");
    check_once ("NULL extent callback: completion", &co0, false);
  }
  nbd_shutdown (h, 0);
  nbd_close (h);
  for (int c = 0; c < NR_COMMANDS; c++)
    if (co[c].frees != 1 || ex[c].frees != (c == BLOCK_STATUS))
      tap_ok (false, "%s: nbd_close(3) freed something twice",
              command_name[c]);

  h = tap_create ();
  for (int c = 0; c < NR_COMMANDS; c++) {
    struct counter co0 = { 0 }, ex0 = { 0 };

    snprintf (what, sizeof what, "%s not connected", command_name[c]);
    tap_ok (issue (h, c, 512, 0, &co0, &ex0) == -1, "%s: refused", what);
    check_once (what, &co0, false);
    if (c == BLOCK_STATUS)
      check_once ("nbd_aio_block_status not connected: extent", &ex0,
                  false);
  }
  nbd_close (h);
}

/* Block status over a healthy export, with the extent callback
 * succeeding, then failing the command.
 */
static void
test_extents (const char *sock)
{
  struct nbd_handle *h = connect_with_context (sock);
  struct counter co = { 0 }, ex = { 0 };
  struct counter co2 = { 0 }, ex2 = { .ret = -1 };
  int64_t cookie;

  cookie = issue (h, BLOCK_STATUS, 65536, 0, &co, &ex);
  tap_ok (wait_for_cookie (h, cookie) == 1, "extents: block status works");
  check_once ("extents: extent callback", &ex, true);
  check_once ("extents: completion", &co, true);
  tap_ok (ex.freed_at < co.freed_at, "extents: extent freed before "
          "completion");
  cookie = issue (h, BLOCK_STATUS, 65536, 0, &co2, &ex2);
  tap_ok (wait_for_cookie (h, cookie) == -1 && nbd_get_errno () == EPERM,
          "extents: an extent callback returning -1 fails the command "
          "with its error");
  tap_ok (co2.calls == 1 && co2.error == EPERM,
          "extents: the completion sees that error");
  check_once ("extents: failing extent callback", &ex2, true);
  check_once ("extents: completion after a failing extent callback", &co2,
              true);
  nbd_shutdown (h, 0);
  nbd_close (h);
}

/* Writes in flight when nbd_close(3) drops them. */
static void
test_close_writes (void)
{
  struct nbd_handle *h = tap_create ();
  char *argv[] = { "nbdkit", "-s", "--exit-with-parent", "--filter=delay",
                   "memory", "1M", "delay-write=30", "delay-zero=30",
                   "delay-trim=30", NULL };
  struct counter co[NR_COMMANDS] = { { 0 } }, ex[NR_COMMANDS] = { { 0 } };
  bool ok = true;

  if (nbd_connect_command (h, argv) == -1)
    tap_bail ("nbd_connect_command nbdkit --filter=delay memory");
  /* The delay filter holds these three (it cannot delay a flush). */
  static const enum command held[] = { PWRITE, TRIM, ZERO };

  for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
    issue (h, held[i], 4096, 0, &co[held[i]], &ex[held[i]]);
  nbd_poll (h, 0);
  nbd_close (h);
  for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
    if (co[held[i]].frees != 1 || co[held[i]].calls != 0)
      ok = false;
  tap_ok (ok, "close: write, trim, zero in flight: each .free once, "
          "no completion");
}

int
main (int argc, char *argv[])
{
  tap_init ();
  if (argc != 4) {
    fprintf (stderr, "usage: %s PATSOCK ERRSOCK MEMSOCK\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  test_success (argv[1]);
  test_server_error (argv[2]);
  test_chunk_error (argv[1]);
  test_refused (argv[1]);
  test_server_death ();
  test_close_in_flight ();
  test_shutdown_in_flight ();
  test_debug_callback ();
  test_commands (argv[3]);
  test_extents (argv[1]);
  test_close_writes ();
  return EXIT_SUCCESS;
}
