/* fuzz-server-stream: libFuzzer target.  The input is a 2-byte big-endian
 * length L, then everything a server says from the greeting on; it reaches
 * a handle through a socketpair, the first L bytes (the handshake) before
 * the reads are issued, the rest after.
 * When the handshake succeeds three reads are issued, as unit-split does
 * (cookie 1: structured 4 KiB at 0; 2: plain 4 KiB at 8192; 3: structured
 * 512 bytes at 12288, DF when the server allows it), so the fuzzer can
 * reach the reply parser from the seeds.  The handle must never crash,
 * hang, or break the callback rules: every .free exactly once, completion
 * at most once, no chunk outside the request, and a read reported
 * successful only if its chunks covered each byte of the request exactly
 * once and the buffer holds what they delivered (data as passed to the
 * chunk callback, zeroes for holes).
 *
 * Built and run by tests/fuzz.sh (clang with libFuzzer); the seed
 * corpus is the streams of unit-split ("unit-split --dump DIR").
 */

#undef NDEBUG                  /* the checks are asserts */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <libnbd.h>

#define MAX_INPUT 60000         /* fits the socket buffer: written at once */

struct read {
  bool structured;
  char buf[4096];
  uint64_t offset;
  size_t count;
  unsigned char times_covered[4096]; /* chunk callbacks per byte */
  char delivered[4096];         /* what they showed for each byte */
  int chunk_frees, completion_frees, completions;
};

static int
on_chunk (void *user_data, const void *subbuf, size_t count,
          uint64_t offset, unsigned status, int *error)
{
  struct read *r = user_data;
  const char *p = subbuf;

  /* A chunk always lies inside the request and inside the buffer. */
  assert (r->chunk_frees == 0);
  assert (r->completions == 0);
  assert (offset >= r->offset && offset - r->offset <= r->count &&
          count <= r->count - (offset - r->offset));
  if (status == LIBNBD_READ_ERROR) {
    assert (count == 0 && offset - r->offset < r->count);
    return 0;
  }
  assert (status == LIBNBD_READ_DATA || status == LIBNBD_READ_HOLE);
  assert (p == r->buf + (offset - r->offset));
  for (size_t i = 0; i < count; i++) {
    size_t at = offset - r->offset + i;

    assert (status == LIBNBD_READ_DATA || p[i] == 0);
    if (r->times_covered[at] < 255)
      r->times_covered[at]++;
    r->delivered[at] = p[i];
  }
  return 0;
}

static int
on_complete (void *user_data, int *error)
{
  struct read *r = user_data;

  assert (r->completion_frees == 0);
  r->completions++;
  /* Success means the chunks covered each byte once (no overlap, no
   * gap) and nothing changed what they delivered.
   */
  if (*error == 0 && r->structured) {
    for (size_t i = 0; i < r->count; i++)
      assert (r->times_covered[i] == 1);
    assert (memcmp (r->buf, r->delivered, r->count) == 0);
  }
  return 0;
}

static void
free_chunk (void *user_data)
{
  ((struct read *) user_data)->chunk_frees++;
}

static void
free_completion (void *user_data)
{
  ((struct read *) user_data)->completion_frees++;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct read reads[3] = {
    { .structured = true, .offset = 0, .count = 4096 },
    { .structured = false, .offset = 8192, .count = 4096 },
    { .structured = true, .offset = 12288, .count = 512 },
  };
  struct nbd_handle *h;
  bool issued = false;
  int sv[2];

  size_t fed = 0;
  bool eof = false;
  char sink[4096];

  if (size > MAX_INPUT)
    return -1;
  if (socketpair (AF_UNIX, SOCK_STREAM, 0, sv) == -1)
    abort ();
  h = nbd_create ();
  if (h == NULL)
    abort ();
  nbd_set_strict_mode (h, 0);
  nbd_aio_connect_socket (h, sv[0]);

  /* The handshake first, so that the reads can go out before the replies
   * come (replies to nothing would only kill the handle).
   */
  if (size < 2)
    fed = size;
  else {
    size_t len = (data[0] << 8) | data[1];

    data += 2;
    size -= 2;
    fed = len < size ? len : size;
    if (fed)
      (void) send (sv[1], data, fed, MSG_NOSIGNAL);
  }
  for (int i = 0; i < 100 && nbd_aio_is_connecting (h); i++) {
    while (recv (sv[1], sink, sizeof sink, MSG_DONTWAIT) > 0)
      ;
    if (nbd_poll (h, 0) != 1)
      break;                    /* nothing more to do with these bytes */
  }

  /* The input is finite and ends in EOF, so the handle must reach a final
   * state; a bound on the steps turns a hang into a crash.
   */
  for (int steps = 0; ; steps++) {
    assert (steps < 100000);
    if (!issued && nbd_aio_is_ready (h)) {
      issued = true;
      for (int i = 0; i < 3; i++) {
        nbd_chunk_callback chunk = {
          .callback = on_chunk, .user_data = &reads[i], .free = free_chunk,
        };
        nbd_completion_callback completion = {
          .callback = on_complete, .user_data = &reads[i],
          .free = free_completion,
        };

        if (!reads[i].structured) {
          nbd_aio_pread (h, reads[i].buf, reads[i].count, reads[i].offset,
                         completion, 0);
          reads[i].chunk_frees = 1;     /* there is no chunk callback */
        }
        else
          nbd_aio_pread_structured (h, reads[i].buf, reads[i].count,
                                    reads[i].offset, chunk, completion,
                                    i == 2 && nbd_can_df (h) == 1
                                    ? LIBNBD_CMD_FLAG_DF : 0);
      }
    }
    if (!eof) {
      /* The rest of what the server says, then end of file. */
      if (fed < size)
        (void) send (sv[1], data + fed, size - fed, MSG_NOSIGNAL);
      shutdown (sv[1], SHUT_WR);
      eof = true;
    }
    if (nbd_aio_is_dead (h) || nbd_aio_is_closed (h) ||
        nbd_aio_is_created (h))
      break;
    if (issued && nbd_aio_in_flight (h) == 0)
      break;
    if (nbd_poll (h, 1000) == -1 && !nbd_aio_is_dead (h) &&
        !nbd_aio_is_closed (h))
      abort ();                 /* poll failed on a live handle */
  }
  nbd_close (h);
  close (sv[1]);

  for (int i = 0; issued && i < 3; i++) {
    assert (reads[i].chunk_frees == 1);
    assert (reads[i].completion_frees == 1);
    assert (reads[i].completions <= 1);
  }
  return 0;
}
