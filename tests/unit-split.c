/* unit-split: the handshake and reply parsers must not care how the bytes
 * arrive.  A scripted server stream is fed to a handle over a socketpair
 * whole, one byte at a time, and split in two at every offset; every way
 * must give the same transcript (what the handshake learned, every chunk
 * callback, every result), and the transcript must be the expected one.
 * Written to the libnbd API: built against libnbdc and, as a cross-check of
 * the streams, against libnbd.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <libnbd.h>

/* ----- Building server streams. ----- */

struct stream {
  unsigned char buf[16384];
  size_t len;
  size_t handshake_len;         /* replies start here */
};

static void
put (struct stream *s, const void *p, size_t n)
{
  memcpy (s->buf + s->len, p, n);
  s->len += n;
}

static void put8 (struct stream *s, uint8_t v) { put (s, &v, 1); }
static void put16 (struct stream *s, uint16_t v) { v = htobe16 (v); put (s, &v, 2); }
static void put32 (struct stream *s, uint32_t v) { v = htobe32 (v); put (s, &v, 4); }
static void put64 (struct stream *s, uint64_t v) { v = htobe64 (v); put (s, &v, 8); }

static void
opt_reply (struct stream *s, uint32_t opt, uint32_t type, uint32_t len)
{
  put64 (s, 0x0003e889045565a9);
  put32 (s, opt);
  put32 (s, type);
  put32 (s, len);
}

static void
chunk (struct stream *s, uint16_t flags, uint16_t type, uint64_t cookie,
       uint32_t len)
{
  put32 (s, 0x668e33ef);
  put16 (s, flags);
  put16 (s, type);
  put64 (s, cookie);
  put32 (s, len);
}

static void
newstyle_greeting (struct stream *s, uint16_t gflags)
{
  put64 (s, 0x4e42444d41474943);
  put64 (s, 0x49484156454F5054);
  put16 (s, gflags);
}

#define SIZE (1024 * 1024)
#define EFLAGS (1 | 2 | 128)            /* HAS_FLAGS, READ_ONLY, SEND_DF */

/* The data of the export: zero in [1000, 4000) (a hole in the structured
 * stream), elsewhere byte i is i*7+3 mod 256.
 */
static uint8_t
byte_at (uint64_t off)
{
  return off >= 1000 && off < 4000 ? 0 : (off * 7 + 3) & 0xff;
}

static void
data (struct stream *s, uint64_t off, size_t n)
{
  for (size_t i = 0; i < n; i++)
    put8 (s, byte_at (off + i));
}

/* Fixed newstyle, structured replies, GO with block sizes; then the reads
 * of run_reads: cookie 1 as data + hole + data, cookie 2 as an
 * ERROR_OFFSET, cookie 3 as one data chunk with DF.
 */
static void
stream_structured (struct stream *s)
{
  newstyle_greeting (s, 3);
  opt_reply (s, 8, 1, 0);                       /* STRUCTURED_REPLY: ACK */
  opt_reply (s, 7, 3, 12);                      /* GO: INFO_EXPORT */
  put16 (s, 0); put64 (s, SIZE); put16 (s, EFLAGS);
  opt_reply (s, 7, 3, 14);                      /* INFO_BLOCK_SIZE */
  put16 (s, 3); put32 (s, 1); put32 (s, 4096); put32 (s, 32 << 20);
  opt_reply (s, 7, 1, 0);                       /* ACK */
  s->handshake_len = s->len;

  chunk (s, 0, 1, 1, 8 + 1000);                 /* data [0, 1000) */
  put64 (s, 0); data (s, 0, 1000);
  chunk (s, 0, 2, 1, 12);                       /* hole [1000, 4000) */
  put64 (s, 1000); put32 (s, 3000);
  chunk (s, 1, 1, 1, 8 + 96);                   /* data [4000, 4096) */
  put64 (s, 4000); data (s, 4000, 96);

  chunk (s, 1, 0x8002, 2, 4 + 2 + 5 + 8);       /* ERROR_OFFSET, EIO */
  put32 (s, 5); put16 (s, 5); put (s, "oops!", 5); put64 (s, 8192 + 10);

  chunk (s, 1, 1, 3, 8 + 512);                  /* DF read, one chunk */
  put64 (s, 12288); data (s, 12288, 512);
}

/* Fixed newstyle without NO_ZEROES; the server refuses structured replies
 * and NBD_OPT_GO, so the client falls back to EXPORT_NAME and simple
 * replies: cookie 1 data, cookie 2 an EIO error, cookie 3 data.
 */
static void
stream_simple (struct stream *s)
{
  newstyle_greeting (s, 1);
  opt_reply (s, 8, 0x80000001, 0);              /* ERR_UNSUP */
  opt_reply (s, 7, 0x80000001, 3);              /* ERR_UNSUP, message */
  put (s, "no!", 3);
  put64 (s, SIZE); put16 (s, EFLAGS & ~128);    /* EXPORT_NAME reply */
  for (int i = 0; i < 124; i++)
    put8 (s, 0);
  s->handshake_len = s->len;

  put32 (s, 0x67446698); put32 (s, 0); put64 (s, 1); data (s, 0, 4096);
  put32 (s, 0x67446698); put32 (s, 5); put64 (s, 2);
  put32 (s, 0x67446698); put32 (s, 0); put64 (s, 3); data (s, 12288, 512);
}

/* An oldstyle server. */
static void
stream_oldstyle (struct stream *s)
{
  put64 (s, 0x4e42444d41474943);
  put64 (s, 0x00420281861253);
  put64 (s, SIZE); put32 (s, EFLAGS & ~128);
  for (int i = 0; i < 124; i++)
    put8 (s, 0);
  s->handshake_len = s->len;

  put32 (s, 0x67446698); put32 (s, 0); put64 (s, 1); data (s, 0, 4096);
  put32 (s, 0x67446698); put32 (s, 5); put64 (s, 2);
  put32 (s, 0x67446698); put32 (s, 0); put64 (s, 3); data (s, 12288, 512);
}

/* ----- The client side, recording a transcript. ----- */

struct transcript {
  char text[8192];
  size_t len;
};

static void
say (struct transcript *t, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  t->len += vsnprintf (t->text + t->len, sizeof t->text - t->len, fs, args);
  va_end (args);
  if (t->len >= sizeof t->text)
    t->len = sizeof t->text - 1;
}

struct read {
  struct transcript *t;
  char buf[4096];
  uint64_t offset;
  int frees;
};

static int
on_chunk (void *user_data, const void *subbuf, size_t count,
          uint64_t offset, unsigned status, int *error)
{
  struct read *r = user_data;
  const uint8_t *p = subbuf;
  bool ok = true;

  for (size_t i = 0; status != LIBNBD_READ_ERROR && i < count; i++)
    if (p[i] != byte_at (offset + i))
      ok = false;
  say (r->t, "chunk %u off=%" PRIu64 " count=%zu error=%d%s\n", status,
       offset, count, *error, ok ? "" : " BAD-DATA");
  return 0;
}

static void
free_read (void *user_data)
{
  ((struct read *) user_data)->frees++;
}

/* Feed stream bytes [from, to) in pieces of at most step bytes, driving
 * the handle after each; drain what the client sends.
 */
static bool
feed (struct nbd_handle *h, int server, const struct stream *s,
      size_t from, size_t to, size_t step)
{
  char sink[65536];

  while (from < to) {
    size_t n = to - from < step ? to - from : step;

    if (write (server, s->buf + from, n) != (ssize_t) n)
      return false;
    from += n;
    while (recv (server, sink, sizeof sink, MSG_DONTWAIT) > 0)
      ;
    if (nbd_aio_notify_read (h) == -1 && !nbd_aio_is_dead (h))
      return false;
    if (nbd_aio_get_direction (h) & LIBNBD_AIO_DIRECTION_WRITE)
      nbd_aio_notify_write (h);
  }
  while (recv (server, sink, sizeof sink, MSG_DONTWAIT) > 0)
    ;
  return true;
}

/* Run the stream split at the given points (sorted, each < len). */
static void
run (const struct stream *s, const size_t *splits, size_t nsplits,
     size_t step, struct transcript *t)
{
  struct nbd_handle *h = nbd_create ();
  struct read reads[3] = {
    { .t = t, .offset = 0 }, { .t = t, .offset = 8192 },
    { .t = t, .offset = 12288 },
  };
  const size_t counts[3] = { 4096, 4096, 512 };
  int64_t cookies[3] = { 0 };
  size_t points[16], n = 0, from = 0;
  int sv[2];

  t->len = 0;
  t->text[0] = '\0';
  if (h == NULL || socketpair (AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
    say (t, "setup failed\n");
    return;
  }
  /* Pieces end at every split and at the end of the handshake. */
  for (size_t i = 0; i < nsplits; i++)
    if (splits[i] < s->handshake_len)
      points[n++] = splits[i];
  points[n++] = s->handshake_len;
  for (size_t i = 0; i < nsplits; i++)
    if (splits[i] > s->handshake_len)
      points[n++] = splits[i];
  points[n++] = s->len;

  nbd_set_strict_mode (h, 0);
  if (nbd_aio_connect_socket (h, sv[0]) == -1)
    say (t, "connect: %s\n", nbd_get_error ());
  for (size_t i = 0; i < n; i++) {
    if (!feed (h, sv[1], s, from, points[i], step))
      say (t, "feed failed\n");
    from = points[i];
    if (from == s->handshake_len) {
      say (t, "ready=%d size=%" PRId64 " ro=%d df=%d sr=%d proto=%s "
           "min=%" PRId64 " pref=%" PRId64 " max=%" PRId64 "\n",
           nbd_aio_is_ready (h), nbd_get_size (h), nbd_is_read_only (h),
           nbd_can_df (h), nbd_get_structured_replies_negotiated (h),
           nbd_get_protocol (h),
           nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM),
           nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED),
           nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM));
      for (int j = 0; j < 3; j++) {
        cookies[j] = nbd_aio_pread_structured (
          h, reads[j].buf, counts[j], reads[j].offset,
          (nbd_chunk_callback) { .callback = on_chunk,
                                 .user_data = &reads[j],
                                 .free = free_read },
          NBD_NULL_COMPLETION,
          j == 2 && nbd_can_df (h) == 1 ? LIBNBD_CMD_FLAG_DF : 0);
        say (t, "cookie %" PRId64 "\n", cookies[j]);
      }
    }
  }
  /* libnbd may stop after each chunk: let it drain the socket. */
  for (int i = 0; i < 1000 && nbd_aio_in_flight (h) > 0; i++)
    if (nbd_poll (h, 1000) == -1)
      break;
  for (int j = 0; j < 3; j++) {
    int r = nbd_aio_command_completed (h, cookies[j]);
    bool ok = true;

    for (size_t i = 0; r == 1 && i < counts[j]; i++)
      if ((uint8_t) reads[j].buf[i] != byte_at (reads[j].offset + i))
        ok = false;
    say (t, "read %d: %d errno=%d data=%s frees=%d\n", j, r,
         r == -1 ? nbd_get_errno () : 0, ok ? "ok" : "BAD", reads[j].frees);
  }
  say (t, "dead=%d\n", nbd_aio_is_dead (h));
  nbd_close (h);
  close (sv[1]);
}

static int test_num;

static void
check_all_splits (const char *name, void (*build) (struct stream *),
                  const char *expected)
{
  static struct stream s;
  struct transcript whole, other;
  size_t failures = 0, first_bad = 0;

  memset (&s, 0, sizeof s);
  build (&s);
  run (&s, NULL, 0, SIZE_MAX, &whole);
  printf ("%s %d - %s: whole stream gives the expected transcript\n",
          strcmp (whole.text, expected) == 0 ? "ok" : "not ok", ++test_num,
          name);
  if (strcmp (whole.text, expected) != 0)
    printf ("# got:\n%s# expected:\n%s", whole.text, expected);

  run (&s, NULL, 0, 1, &other);
  printf ("%s %d - %s: one byte at a time gives the same transcript\n",
          strcmp (whole.text, other.text) == 0 ? "ok" : "not ok",
          ++test_num, name);
  if (strcmp (whole.text, other.text) != 0)
    printf ("# got:\n%s", other.text);

  for (size_t k = 1; k < s.len; k++) {
    run (&s, &k, 1, SIZE_MAX, &other);
    if (strcmp (whole.text, other.text) != 0 && failures++ == 0)
      first_bad = k;
  }
  printf ("%s %d - %s: split at each of %zu offsets gives the same "
          "transcript\n", failures == 0 ? "ok" : "not ok", ++test_num, name,
          s.len - 1);
  if (failures)
    printf ("# %zu splits differ, the first at offset %zu\n", failures,
            first_bad);
}

/* A seed for the fuzzer only: the structured handshake, then cookie 1
 * answered by an ERROR chunk of the largest payload accepted, whose
 * message is exactly the 4096-byte limit followed by 8 stray bytes, so
 * that one mutation of the message length probes both sides of the limit.
 */
static void
stream_long_error (struct stream *s)
{
  struct stream full;

  memset (&full, 0, sizeof full);
  stream_structured (&full);
  put (s, full.buf, full.handshake_len);
  s->handshake_len = s->len;
  chunk (s, 1, 0x8001, 1, 6 + 4096 + 8);
  put32 (s, 5); put16 (s, 4096);
  for (int i = 0; i < 4096 + 8; i++)
    put8 (s, 'm');
}

/* unit-split --dump DIR: write the streams as files, the seeds of
 * fuzz-server-stream: each prefixed by its handshake length (2 bytes BE).
 */
static int
dump (const char *dir)
{
  static struct stream s;
  void (*builders[]) (struct stream *) = {
    stream_structured, stream_simple, stream_oldstyle, stream_long_error,
  };

  for (size_t i = 0; i < sizeof builders / sizeof builders[0]; i++) {
    char path[4096];
    FILE *fp;

    memset (&s, 0, sizeof s);
    builders[i] (&s);
    snprintf (path, sizeof path, "%s/stream-%zu", dir, i);
    fp = fopen (path, "w");
    if (fp == NULL || fputc (s.handshake_len >> 8, fp) == EOF ||
        fputc (s.handshake_len & 0xff, fp) == EOF ||
        fwrite (s.buf, 1, s.len, fp) != s.len || fclose (fp) != 0) {
      perror (path);
      return 1;
    }
  }
  return 0;
}

int
main (int argc, char *argv[])
{
  if (argc == 3 && strcmp (argv[1], "--dump") == 0)
    return dump (argv[2]);
  printf ("1..9\n");
  check_all_splits ("structured", stream_structured,
    "ready=1 size=1048576 ro=1 df=1 sr=1 proto=newstyle-fixed "
    "min=1 pref=4096 max=33554432\n"
    "cookie 1\ncookie 2\ncookie 3\n"
    "chunk 1 off=0 count=1000 error=0\n"
    "chunk 2 off=1000 count=3000 error=0\n"
    "chunk 1 off=4000 count=96 error=0\n"
    "chunk 3 off=8202 count=0 error=5\n"
    "chunk 1 off=12288 count=512 error=0\n"
    "read 0: 1 errno=0 data=ok frees=1\n"
    "read 1: -1 errno=5 data=ok frees=1\n"
    "read 2: 1 errno=0 data=ok frees=1\n"
    "dead=0\n");
  check_all_splits ("simple", stream_simple,
    "ready=1 size=1048576 ro=1 df=0 sr=0 proto=newstyle-fixed "
    "min=0 pref=0 max=0\n"
    "cookie 1\ncookie 2\ncookie 3\n"
    "chunk 1 off=0 count=4096 error=0\n"
    "chunk 1 off=12288 count=512 error=0\n"
    "read 0: 1 errno=0 data=ok frees=1\n"
    "read 1: -1 errno=5 data=ok frees=1\n"
    "read 2: 1 errno=0 data=ok frees=1\n"
    "dead=0\n");
  check_all_splits ("oldstyle", stream_oldstyle,
    "ready=1 size=1048576 ro=1 df=0 sr=0 proto=oldstyle "
    "min=0 pref=0 max=0\n"
    "cookie 1\ncookie 2\ncookie 3\n"
    "chunk 1 off=0 count=4096 error=0\n"
    "chunk 1 off=12288 count=512 error=0\n"
    "read 0: 1 errno=0 data=ok frees=1\n"
    "read 1: -1 errno=5 data=ok frees=1\n"
    "read 2: 1 errno=0 data=ok frees=1\n"
    "dead=0\n");
  return 0;
}
