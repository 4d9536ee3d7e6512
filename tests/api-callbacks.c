/* nbd-proxy tests: the rules of chunk and completion callbacks, cookies.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-callbacks SPARSESOCK|- PATSOCK
 *
 * SPARSESOCK: qemu-nbd -r on the file of make_sparse_file (functions.sh):
 *             a read of 400000 bytes at 1000 comes back in several chunks
 *             (data, hole, data, hole); "-" when qemu-nbd is missing, and
 *             the multi-chunk checks are skipped.
 * PATSOCK:    nbdkit pattern 1M.
 *
 * Rules: nbd_pread_structured(3) (a chunk callback returning -1 fails the
 * command with *error, or EPROTO when *error is 0; later chunks are still
 * delivered and see the error on entry; the first error wins),
 * nbd_aio_pread(3) / nbd_aio_command_completed(3) (a completion callback
 * returning 1 retires the command), libnbd(3) "Cookies".
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>

#include <libnbd.h>

#include "api-tap.h"

#define MAX_SEEN 64

/* What the callbacks of one command saw, and how the chunk callback
 * should fail: at call number fail_at[k] (0-based) return -1 with *error
 * set to fail_with[k].
 */
struct seen {
  int nr_chunks;
  int error_in[MAX_SEEN];
  unsigned status[MAX_SEEN];
  int fail_at[2];
  int fail_with[2];
  int completions;
  int completion_error;
  int completion_return;
  int order;                    /* sequence number of the completion */
  int chunk_order[MAX_SEEN];
};

static int sequence;

static void
seen_init (struct seen *s)
{
  memset (s, 0, sizeof *s);
  s->fail_at[0] = s->fail_at[1] = -1;
}

static int
chunk_cb (void *user_data, const void *subbuf, size_t count,
          uint64_t offset, unsigned status, int *error)
{
  struct seen *s = user_data;
  int n = s->nr_chunks++;
  int k;

  if (n < MAX_SEEN) {
    s->error_in[n] = *error;
    s->status[n] = status;
    s->chunk_order[n] = ++sequence;
  }
  for (k = 0; k < 2; k++) {
    if (s->fail_at[k] == n) {
      *error = s->fail_with[k];
      return -1;
    }
  }
  return 0;
}

static int
completion_cb (void *user_data, int *error)
{
  struct seen *s = user_data;

  s->completions++;
  s->completion_error = *error;
  s->order = ++sequence;
  return s->completion_return;
}

/* Issue one structured read of COUNT bytes at OFFSET, wait, and return
 * nbd_aio_command_completed's answer (errno in *err).
 */
static int
run_read (struct nbd_handle *h, struct seen *s, size_t count,
          uint64_t offset, int *err)
{
  static unsigned char buf[1024 * 1024];
  int64_t cookie;
  int r;

  cookie = nbd_aio_pread_structured (h, buf, count, offset,
    (nbd_chunk_callback) { .callback = chunk_cb, .user_data = s },
    (nbd_completion_callback) { .callback = completion_cb,
                                .user_data = s },
    0);
  if (cookie < 1)
    tap_bail ("nbd_aio_pread_structured");
  r = wait_for_cookie (h, cookie);
  *err = r == -1 ? nbd_get_errno () : 0;
  return r;
}

/* Chunk callback failures.  MULTI: the read has several chunks. */
static void
test_chunk_errors (struct nbd_handle *h, const char *server, bool multi,
                   size_t count, uint64_t offset)
{
  struct seen s;
  int r, err, i;
  bool ok;

  /* Baseline. */
  seen_init (&s);
  r = run_read (h, &s, count, offset, &err);
  tap_ok (r == 1 && s.completions == 1 && s.completion_error == 0,
          "%s: a read whose callbacks succeed completes", server);
  if (multi && s.nr_chunks < 3) {
    /* qemu-nbd splits reads at holes the file system reports. */
    tap_diag ("%s: the read came in %d chunks; is the file sparse?",
              server, s.nr_chunks);
    multi = false;
  }
  ok = true;
  for (i = 0; i < s.nr_chunks && i < MAX_SEEN; i++)
    if (s.chunk_order[i] > s.order)
      ok = false;
  tap_ok (ok, "%s: every chunk callback runs before the completion "
          "callback", server);

  /* Fail the first chunk with EPERM. */
  seen_init (&s);
  s.fail_at[0] = 0;
  s.fail_with[0] = EPERM;
  r = run_read (h, &s, count, offset, &err);
  tap_ok (r == -1 && err == EPERM,
          "%s: chunk callback -1 with *error EPERM fails the command with "
          "EPERM", server);
  tap_ok (s.completions == 1 && s.completion_error == EPERM,
          "%s: the completion callback sees *error EPERM", server);
  if (multi) {
    ok = s.nr_chunks >= 3;
    for (i = 1; i < s.nr_chunks && i < MAX_SEEN; i++)
      if (s.error_in[i] != EPERM)
        ok = false;
    tap_ok (ok, "%s: later chunks are still delivered, *error EPERM on "
            "entry", server);
  }
  else
    tap_skip ("single-chunk replies", "%s: later chunks see the error",
              server);

  /* Fail with *error left 0: EPROTO. */
  seen_init (&s);
  s.fail_at[0] = 0;
  s.fail_with[0] = 0;
  r = run_read (h, &s, count, offset, &err);
  tap_ok (r == -1 && err == EPROTO,
          "%s: chunk callback -1 with *error 0 fails the command with "
          "EPROTO", server);
  if (r != -1 || err != EPROTO)
    tap_diag ("r = %d, errno %s", r, errno_name (err));
  tap_ok (s.completions == 1 && s.completion_error == EPROTO,
          "%s: the completion callback sees *error EPROTO", server);
  if (multi) {
    ok = true;
    for (i = 1; i < s.nr_chunks && i < MAX_SEEN; i++)
      if (s.error_in[i] != EPROTO)
        ok = false;
    tap_ok (ok, "%s: later chunks see *error EPROTO", server);
  }
  else
    tap_skip ("single-chunk replies", "%s: later chunks see EPROTO",
              server);

  if (!multi) {
    tap_skip ("single-chunk replies", "%s: failing a later chunk", server);
    tap_skip ("single-chunk replies", "%s: the first error wins", server);
    return;
  }

  /* Fail the second chunk: the first saw no error. */
  seen_init (&s);
  s.fail_at[0] = 1;
  s.fail_with[0] = ENOSPC;
  r = run_read (h, &s, count, offset, &err);
  ok = r == -1 && err == ENOSPC && s.error_in[0] == 0 &&
    s.error_in[1] == 0;
  for (i = 2; i < s.nr_chunks && i < MAX_SEEN; i++)
    if (s.error_in[i] != ENOSPC)
      ok = false;
  tap_ok (ok, "%s: failing the second chunk: chunks before it see 0, "
          "after it ENOSPC, the command fails with ENOSPC", server);

  /* Two failures: "no earlier error has been detected" - the first wins. */
  seen_init (&s);
  s.fail_at[0] = 0;
  s.fail_with[0] = EPERM;
  s.fail_at[1] = 1;
  s.fail_with[1] = ENOSPC;
  r = run_read (h, &s, count, offset, &err);
  tap_ok (r == -1 && err == EPERM && s.completion_error == EPERM &&
          s.nr_chunks >= 3 && s.error_in[2] == EPERM,
          "%s: after two failing chunks the first error (EPERM) stands",
          server);
}

/* nbd_pread_structured(3), the blocking form. */
static void
test_sync_chunk_error (struct nbd_handle *h, const char *server)
{
  static unsigned char buf[65536];
  struct seen s;

  seen_init (&s);
  s.fail_at[0] = 0;
  s.fail_with[0] = EPERM;
  tap_ok (nbd_pread_structured (h, buf, sizeof buf, 0,
                                (nbd_chunk_callback) {
                                  .callback = chunk_cb, .user_data = &s },
                                0) == -1,
          "%s: nbd_pread_structured fails when the chunk callback fails",
          server);
  tap_error_is ("nbd_pread_structured", EPERM, "chunk callback EPERM");
  tap_ok (nbd_aio_is_ready (h) == 1,
          "%s: a callback failure leaves the handle ready", server);
}

/* Completion callback returning 1: the command retires itself. */
static void
test_auto_retire (struct nbd_handle *h)
{
  static unsigned char buf[3][4096];
  struct seen s[3];
  int64_t cookie[3];
  int i;

  for (i = 0; i < 3; i++) {
    seen_init (&s[i]);
    s[i].completion_return = i == 1 ? 0 : 1;
    cookie[i] = nbd_aio_pread (h, buf[i], sizeof buf[i], i * 4096,
                               (nbd_completion_callback) {
                                 .callback = completion_cb,
                                 .user_data = &s[i] }, 0);
    if (cookie[i] < 1)
      tap_bail ("nbd_aio_pread");
  }
  if (!drain (h))
    tap_diag ("nbd_poll: %s", nbd_get_error ());
  tap_ok (s[0].completions == 1 && s[1].completions == 1 &&
          s[2].completions == 1,
          "each completion callback ran once");
  tap_ok (nbd_aio_in_flight (h) == 0, "nothing in flight afterwards");
  /* Only the command whose callback returned 0 waits for retirement. */
  tap_ok (nbd_aio_peek_command_completed (h) == cookie[1],
          "nbd_aio_peek_command_completed(3) sees only the command whose "
          "completion returned 0");
  tap_ok (nbd_aio_command_completed (h, cookie[1]) == 1,
          "that command retires with nbd_aio_command_completed(3) == 1");
  tap_ok (nbd_aio_command_completed (h, cookie[0]) != 1 &&
          nbd_aio_command_completed (h, cookie[2]) != 1,
          "commands whose completion returned 1 are already retired "
          "(nbd_aio_command_completed(3) never says 1 for them)");
  tap_ok (nbd_aio_command_completed (h, cookie[1]) != 1,
          "a retired command is not reported twice");
  tap_ok (nbd_aio_peek_command_completed (h) == -1,
          "nbd_aio_peek_command_completed(3) is -1 when nothing is left");
  tap_ok (pattern_mismatch (buf[0], 4096, 0) == -1 &&
          pattern_mismatch (buf[1], 4096, 4096) == -1 &&
          pattern_mismatch (buf[2], 4096, 8192) == -1,
          "auto-retired reads still filled their buffers");
}

/* libnbd(3) "Cookies": >= 1, unique, increasing. */
static void
test_cookies (struct nbd_handle *h)
{
  static unsigned char buf[16][512];
  int64_t cookie[16], failed;
  int i;
  bool ok = true;

  for (i = 0; i < 8; i++) {
    cookie[i] = nbd_aio_pread (h, buf[i], 512, i * 512,
                               NBD_NULL_COMPLETION, 0);
    if (cookie[i] < 1 || (i > 0 && cookie[i] <= cookie[i - 1]))
      ok = false;
  }
  tap_ok (ok, "cookies of 8 reads in flight are >= 1 and increasing");
  failed = nbd_aio_pread (h, buf[8], 512, 1024 * 1024, NBD_NULL_COMPLETION,
                          0);
  tap_ok (failed == -1, "a read past the end returns -1, not a cookie");
  if (!drain (h))
    tap_diag ("nbd_poll: %s", nbd_get_error ());
  for (i = 0; i < 8; i++)
    if (nbd_aio_command_completed (h, cookie[i]) != 1)
      ok = false;
  tap_ok (ok, "each of them retires once with 1");
  for (i = 8; i < 16; i++) {
    cookie[i] = nbd_aio_pread (h, buf[i], 512, 0, NBD_NULL_COMPLETION, 0);
    if (cookie[i] <= cookie[i - 1])
      ok = false;
  }
  tap_ok (ok, "cookies keep increasing after commands retire (no reuse)");
  drain (h);
  for (i = 8; i < 16; i++)
    nbd_aio_command_completed (h, cookie[i]);
}

/* libnbd runs callbacks from nbd_poll(3) and nbd_aio_notify_read(3), never
 * from the nbd_aio_* call that issues a command: with a reply already
 * waiting on the socket, issuing a second read must not dispatch the first
 * one's callbacks (a caller may still be recording the cookie it is about
 * to receive).  Returns false if the first reply was handled before the
 * second read could be issued, so there was nothing to check.
 */
static bool
no_dispatch_on_issue (struct nbd_handle *h)
{
  static unsigned char buf[2][4096];
  struct seen s[2];
  struct pollfd pfd;
  int64_t cookie[2];
  int i, r;

  for (i = 0; i < 2; i++)
    seen_init (&s[i]);
  cookie[0] = nbd_aio_pread (h, buf[0], 4096, 0,
                             (nbd_completion_callback) {
                               .callback = completion_cb,
                               .user_data = &s[0] }, 0);
  if (cookie[0] < 1)
    tap_bail ("nbd_aio_pread");
  if (s[0].completions != 0) {
    tap_diag ("issue: the completion ran inside its own nbd_aio_pread");
    drain (h);
    nbd_aio_command_completed (h, cookie[0]);
    return false;
  }
  /* Wait until the reply is on the socket, without processing it. */
  pfd.fd = nbd_aio_get_fd (h);
  pfd.events = POLLIN;
  r = poll (&pfd, 1, 30000);
  if (r != 1) {
    drain (h);
    nbd_aio_command_completed (h, cookie[0]);
    return false;
  }
  cookie[1] = nbd_aio_pread (h, buf[1], 4096, 4096,
                             (nbd_completion_callback) {
                               .callback = completion_cb,
                               .user_data = &s[1] }, 0);
  tap_ok (s[0].completions == 0 && s[1].completions == 0,
          "issue: callbacks of a waiting reply do not run inside "
          "nbd_aio_pread (only nbd_poll / nbd_aio_notify_read run them)");
  drain (h);
  tap_ok (s[0].completions == 1 && s[1].completions == 1,
          "issue: both complete from nbd_poll");
  for (i = 0; i < 2; i++)
    nbd_aio_command_completed (h, cookie[i]);
  return true;
}

static void
test_no_dispatch_on_issue (struct nbd_handle *h)
{
  int tries;

  for (tries = 0; tries < 20; tries++)
    if (no_dispatch_on_issue (h))
      return;
  tap_ok (false, "issue: every reply was handled inside the nbd_aio_pread "
          "that issued it (20 tries)");
  tap_skip ("see above", "issue: both complete from nbd_poll");
}

int
main (int argc, char *argv[])
{
  struct nbd_handle *h;

  tap_init ();
  if (argc != 3) {
    fprintf (stderr, "usage: %s SPARSESOCK|- PATSOCK\n", argv[0]);
    exit (EXIT_FAILURE);
  }

  if (strcmp (argv[1], "-") != 0) {
    h = tap_connect_unix (argv[1]);
    test_chunk_errors (h, "qemu-nbd", true, 400000, 1000);
    test_sync_chunk_error (h, "qemu-nbd");
    nbd_shutdown (h, 0);
    nbd_close (h);
  }
  else
    tap_skip ("qemu-nbd not installed", "multi-chunk callback rules");

  h = tap_connect_unix (argv[2]);
  test_chunk_errors (h, "nbdkit", false, 65536, 0);
  test_sync_chunk_error (h, "nbdkit");
  test_auto_retire (h);
  test_cookies (h);
  test_no_dispatch_on_issue (h);
  tap_ok (nbd_shutdown (h, 0) == 0, "nbd_shutdown(3)");
  nbd_close (h);
  return EXIT_SUCCESS;
}
