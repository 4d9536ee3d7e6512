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
 * With BLOCK_STATUS_MODE set in the length word (L is then its low 15
 * bits) the handle asks for base:allocation before connecting, and the
 * commands are two block status requests (cookie 1: 64 KiB at 0; 2: 4 KiB
 * at 8192 with REQ_ONE) and the DF read of cookie 3.  Every extent the
 * callback sees must start inside the request (only the last may run
 * past its end), lie inside the export and have a length; with REQ_ONE
 * there is one, no longer than the request; none comes after the
 * completion or the .free.
 * With OPT_MODE set in the length word (L is then its low 14 bits), the
 * handle is in opt mode: once negotiating it runs nbd_aio_opt_list,
 * nbd_aio_opt_list_meta_context (base:allocation), nbd_aio_opt_info and
 * nbd_aio_opt_go in turn, whichever the state allows, so that the option
 * replies are fuzzed too; each option's callbacks follow the same rules
 * (list and context callbacks see strings of at most 4096 bytes, never
 * after the completion).
 *
 * Built and run by tests/fuzz.sh (clang with libFuzzer); the seed
 * corpus is the streams of unit-split ("unit-split --dump DIR") and the
 * block status streams this file writes when built with -DWRITE_SEEDS
 * (a plain program: "fuzz-seeds DIR").
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
#define BLOCK_STATUS_MODE 0x8000 /* in the length word */
#define OPT_MODE 0x4000          /* likewise */

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

/* A block status request and what its callbacks saw. */
struct status {
  uint64_t offset;
  uint32_t count, flags;
  uint64_t export_size;
  int extent_frees, completion_frees, completions;
};

static int
on_extent (void *user_data, const char *metacontext, uint64_t offset,
           uint32_t *entries, size_t nr_entries, int *error)
{
  struct status *s = user_data;
  uint64_t pos = offset, end = s->offset + s->count;

  assert (s->extent_frees == 0);
  assert (s->completions == 0);
  assert (metacontext != NULL);
  assert (offset == s->offset);
  assert (nr_entries > 0 && nr_entries % 2 == 0);
  if (s->flags & LIBNBD_CMD_FLAG_REQ_ONE)
    assert (nr_entries == 2 && entries[0] <= s->count);
  for (size_t i = 0; i < nr_entries; i += 2) {
    assert (entries[i] > 0);
    assert (pos < end);
    assert (pos < s->export_size && entries[i] <= s->export_size - pos);
    pos += entries[i];
  }
  return 0;
}

static int
on_status_complete (void *user_data, int *error)
{
  struct status *s = user_data;

  assert (s->completion_frees == 0);
  s->completions++;
  return 0;
}

static void
free_extent (void *user_data)
{
  ((struct status *) user_data)->extent_frees++;
}

static void
free_status_completion (void *user_data)
{
  ((struct status *) user_data)->completion_frees++;
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

/* The callbacks of one option (opt mode). */
struct option {
  int entries, entry_frees, completions, completion_frees;
};

static void
check_entry (struct option *o, const char *name)
{
  assert (o->entry_frees == 0 && o->completions == 0);
  assert (strlen (name) <= 4096);
  o->entries++;
}

static int
on_list (void *user_data, const char *name, const char *description)
{
  check_entry (user_data, name);
  assert (strlen (description) <= 4096);
  return 0;
}

static int
on_context (void *user_data, const char *name)
{
  check_entry (user_data, name);
  return 0;
}

static void
free_entry (void *user_data)
{
  ((struct option *) user_data)->entry_frees++;
}

static int
on_option_complete (void *user_data, int *error)
{
  struct option *o = user_data;

  assert (o->completion_frees == 0);
  o->completions++;
  return 0;
}

static void
free_option_completion (void *user_data)
{
  ((struct option *) user_data)->completion_frees++;
}

#define NR_OPTIONS 4

/* Option i of the opt-mode sequence: LIST, LIST_META_CONTEXT, INFO, GO. */
static void
issue_option (struct nbd_handle *h, int i, struct option *o)
{
  nbd_completion_callback completion = {
    .callback = on_option_complete, .user_data = o,
    .free = free_option_completion,
  };
  nbd_list_callback list = {
    .callback = on_list, .user_data = o, .free = free_entry,
  };
  nbd_context_callback context = {
    .callback = on_context, .user_data = o, .free = free_entry,
  };

  switch (i) {
  case 0:
    nbd_aio_opt_list (h, list, completion);
    break;
  case 1:
    nbd_aio_opt_list_meta_context (h, context, completion);
    break;
  case 2:
    o->entry_frees = 1;         /* there is no list callback */
    nbd_aio_opt_info (h, completion);
    break;
  default:
    o->entry_frees = 1;
    nbd_aio_opt_go (h, completion);
    break;
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct option options[NR_OPTIONS] = { 0 };
  int next_option = 0;
  struct read reads[3] = {
    { .structured = true, .offset = 0, .count = 4096 },
    { .structured = false, .offset = 8192, .count = 4096 },
    { .structured = true, .offset = 12288, .count = 512 },
  };
  struct status statuses[2] = {
    { .offset = 0, .count = 65536 },
    { .offset = 8192, .count = 4096, .flags = LIBNBD_CMD_FLAG_REQ_ONE },
  };
  struct nbd_handle *h;
  bool issued = false, block_status = false;
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
  if (size >= 2 && (data[0] << 8 & BLOCK_STATUS_MODE)) {
    block_status = true;
    nbd_add_meta_context (h, "base:allocation");
  }
  if (size >= 2 && (data[0] << 8 & OPT_MODE)) {
    nbd_set_opt_mode (h, true);
    nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);
  }
  nbd_aio_connect_socket (h, sv[0]);

  /* The handshake first, so that the reads can go out before the replies
   * come (replies to nothing would only kill the handle).
   */
  if (size < 2)
    fed = size;
  else {
    size_t len = ((data[0] << 8) | data[1]) &
      ~(BLOCK_STATUS_MODE | OPT_MODE);

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
      for (int i = 0; block_status && i < 2; i++) {
        nbd_extent_callback extent = {
          .callback = on_extent, .user_data = &statuses[i],
          .free = free_extent,
        };
        nbd_completion_callback completion = {
          .callback = on_status_complete, .user_data = &statuses[i],
          .free = free_status_completion,
        };

        statuses[i].export_size = nbd_get_size (h);
        nbd_aio_block_status (h, statuses[i].count, statuses[i].offset,
                              extent, completion, statuses[i].flags);
        reads[i].chunk_frees = reads[i].completion_frees = 1; /* unused */
      }
      for (int i = block_status ? 2 : 0; i < 3; i++) {
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
    if (nbd_aio_is_negotiating (h)) {
      if (next_option == NR_OPTIONS)
        break;                  /* every option failed: enough */
      issue_option (h, next_option, &options[next_option]);
      next_option++;
      continue;
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
  for (int i = 0; issued && block_status && i < 2; i++) {
    assert (statuses[i].extent_frees == 1);
    assert (statuses[i].completion_frees == 1);
    assert (statuses[i].completions <= 1);
  }
  for (int i = 0; i < next_option; i++) {
    assert (options[i].entry_frees == 1);
    assert (options[i].completion_frees == 1);
    assert (options[i].completions <= 1);
  }
  return 0;
}

#ifdef WRITE_SEEDS
/* fuzz-seeds DIR: write block status streams as seeds (see the top). */

#include <endian.h>

struct seed {
  unsigned char buf[4096];
  size_t len;
};

static void
put (struct seed *s, const void *p, size_t n)
{
  assert (s->len + n <= sizeof s->buf);
  memcpy (s->buf + s->len, p, n);
  s->len += n;
}

static void put16 (struct seed *s, uint16_t v) { v = htobe16 (v); put (s, &v, 2); }
static void put32 (struct seed *s, uint32_t v) { v = htobe32 (v); put (s, &v, 4); }
static void put64 (struct seed *s, uint64_t v) { v = htobe64 (v); put (s, &v, 8); }

static void
opt_reply (struct seed *s, uint32_t opt, uint32_t type, uint32_t len)
{
  put64 (s, 0x0003e889045565a9);
  put32 (s, opt);
  put32 (s, type);
  put32 (s, len);
}

static void
chunk (struct seed *s, uint16_t flags, uint16_t type, uint64_t cookie,
       uint32_t len)
{
  put32 (s, 0x668e33ef);
  put16 (s, flags);
  put16 (s, type);
  put64 (s, cookie);
  put32 (s, len);
}

/* The length word, then a fixed newstyle handshake: structured replies,
 * base:allocation as context 5, GO with an export of size bytes.
 */
static void
handshake (struct seed *s, uint64_t size)
{
  size_t start;

  put16 (s, 0);                 /* the length word, filled in below */
  start = s->len;
  put64 (s, 0x4e42444d41474943);
  put64 (s, 0x49484156454F5054);
  put16 (s, 3);
  opt_reply (s, 8, 1, 0);                       /* STRUCTURED_REPLY: ACK */
  opt_reply (s, 10, 4, 4 + 15);                 /* META_CONTEXT */
  put32 (s, 5);
  put (s, "base:allocation", 15);
  opt_reply (s, 10, 1, 0);                      /* ACK */
  opt_reply (s, 7, 3, 12);                      /* GO: INFO_EXPORT */
  put16 (s, 0); put64 (s, size); put16 (s, 1 | 2 | 128);
  opt_reply (s, 7, 1, 0);                       /* ACK */
  s->buf[0] = (BLOCK_STATUS_MODE | (s->len - start)) >> 8;
  s->buf[1] = (s->len - start) & 0xff;
}

static void
extents (struct seed *s, uint16_t flags, uint64_t cookie, size_t n,
         const uint32_t *e)
{
  chunk (s, flags, 5, cookie, 4 + 8 * n);
  put32 (s, 5);
  for (size_t i = 0; i < 2 * n; i++)
    put32 (s, e[i]);
}

static void
data_chunk (struct seed *s, uint64_t cookie, uint64_t offset, uint32_t n)
{
  chunk (s, 1, 1, cookie, 8 + n);
  put64 (s, offset);
  for (uint32_t i = 0; i < n; i++)
    put (s, "x", 1);
}

static void
write_seed (const char *dir, const char *name, const struct seed *s)
{
  char path[4096];
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  fp = fopen (path, "w");
  if (fp == NULL || fwrite (s->buf, 1, s->len, fp) != s->len ||
      fclose (fp) != 0) {
    perror (path);
    exit (EXIT_FAILURE);
  }
}

int
main (int argc, char *argv[])
{
  struct seed s;

  if (argc != 2) {
    fprintf (stderr, "usage: %s DIR\n", argv[0]);
    exit (EXIT_FAILURE);
  }

  /* Correct replies, one chunk each. */
  s.len = 0;
  handshake (&s, 1024 * 1024);
  extents (&s, 1, 1, 2, (const uint32_t []) { 4096, 3, 61440, 0 });
  extents (&s, 1, 2, 1, (const uint32_t []) { 4096, 1 });
  data_chunk (&s, 3, 12288, 512);
  write_seed (argv[1], "block-status", &s);

  /* Extents then NONE; an EIO error chunk; the read. */
  s.len = 0;
  handshake (&s, 1024 * 1024);
  extents (&s, 0, 1, 1, (const uint32_t []) { 4096, 3 });
  chunk (&s, 1, 0, 1, 0);
  chunk (&s, 1, 0x8001, 2, 4 + 2 + 3);
  put32 (&s, 5); put16 (&s, 3); put (&s, "eio", 3);
  data_chunk (&s, 3, 12288, 512);
  write_seed (argv[1], "block-status-none-error", &s);

  /* An export of 10 KiB: extents crossing its end, cut there. */
  s.len = 0;
  handshake (&s, 10240);
  extents (&s, 1, 1, 2, (const uint32_t []) { 8192, 0, 8192, 1 });
  extents (&s, 1, 2, 1, (const uint32_t []) { 4096, 2 });
  chunk (&s, 1, 0x8001, 3, 4 + 2);
  put32 (&s, 22); put16 (&s, 0);
  write_seed (argv[1], "block-status-export-end", &s);

  /* A server bug to start from: two descriptors for REQ_ONE. */
  s.len = 0;
  handshake (&s, 1024 * 1024);
  extents (&s, 1, 1, 3, (const uint32_t []) { 4096, 0, 2048, 1, 8192, 2 });
  extents (&s, 1, 2, 2, (const uint32_t []) { 1024, 0, 1024, 1 });
  data_chunk (&s, 3, 12288, 512);
  write_seed (argv[1], "block-status-req-one-two", &s);
  return 0;
}
#endif /* WRITE_SEEDS */
