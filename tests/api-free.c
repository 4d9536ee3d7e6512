/* nbd-proxy tests: every callback's .free runs exactly once, on every path.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-free PATSOCK ERRSOCK
 *
 * PATSOCK: nbdkit pattern 1M
 * ERRSOCK: nbdkit --filter=error pattern 1M error-pread-rate=1
 *          error-pread=EIO
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

int
main (int argc, char *argv[])
{
  tap_init ();
  if (argc != 3) {
    fprintf (stderr, "usage: %s PATSOCK ERRSOCK\n", argv[0]);
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
  return EXIT_SUCCESS;
}
