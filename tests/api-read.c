/* nbd-proxy tests: reads against real servers.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-read MODE SOCKET [FILE|DIR]
 *
 *   pattern SOCK       nbdkit pattern 1M
 *   nosr SOCK          nbdkit pattern 1M, structured replies not requested
 *   data SOCK          nbdkit data (DATA_SPEC in api-read.sh) size=16384
 *   memory SOCK        nbdkit memory 1M, blocksize-policy minimum 512
 *   sparse SOCK FILE   qemu-nbd -r on sparse FILE (make_sparse_file)
 *   simple SOCK FILE   nbd-server on FILE, export "export"
 *   error SOCK         nbdkit --filter=error pattern 1M error-pread-rate=1
 *                      error-pread=EIO
 *   delay SOCK         nbdkit --filter=delay pattern 1M delay-read=10ms
 *   order SOCK DIR     nbdkit sh: the read of block i waits for the file
 *                      DIR/EXPORT/release-i (see api-read.sh)
 *
 * The rules checked are those of nbd_pread(3), nbd_pread_structured(3),
 * nbd_aio_pread_structured(3) and nbd_aio_command_completed(3).
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <libnbd.h>

#include "api-tap.h"

#define MiB (1024 * 1024)
#define MAX_CHUNKS 256

static unsigned char *image;            /* what the export holds */
static uint64_t image_size;
static bool image_has_holes;            /* the file system reports holes */

struct chunk {
  uint64_t offset;
  size_t count;
  unsigned status;
  int error_in;
  const void *subbuf;
};

/* Everything the callbacks of one read saw. */
struct read_record {
  struct chunk chunks[MAX_CHUNKS];
  size_t nr_chunks;
  int completions;
  int completion_error;
  bool chunk_after_completion;
  int chunk_frees;
  int completion_frees;
};

static int
noop_chunk (void *user_data, const void *subbuf, size_t count,
            uint64_t offset, unsigned status, int *error)
{
  return 0;
}
#define NOOP_CHUNK ((nbd_chunk_callback) { .callback = noop_chunk })

static int
record_chunk (void *user_data, const void *subbuf, size_t count,
              uint64_t offset, unsigned status, int *error)
{
  struct read_record *rec = user_data;

  if (rec->completions > 0)
    rec->chunk_after_completion = true;
  if (rec->nr_chunks < MAX_CHUNKS) {
    rec->chunks[rec->nr_chunks].offset = offset;
    rec->chunks[rec->nr_chunks].count = count;
    rec->chunks[rec->nr_chunks].status = status;
    rec->chunks[rec->nr_chunks].error_in = *error;
    rec->chunks[rec->nr_chunks].subbuf = subbuf;
  }
  rec->nr_chunks++;
  return 0;
}

static int
record_completion (void *user_data, int *error)
{
  struct read_record *rec = user_data;

  rec->completions++;
  rec->completion_error = *error;
  return 0;
}

static void
free_chunk (void *user_data)
{
  struct read_record *rec = user_data;

  rec->chunk_frees++;
}

static void
free_completion (void *user_data)
{
  struct read_record *rec = user_data;

  rec->completion_frees++;
}

static size_t
count_status (const struct read_record *rec, unsigned status)
{
  size_t i, n = 0;

  for (i = 0; i < rec->nr_chunks && i < MAX_CHUNKS; i++)
    if (rec->chunks[i].status == status)
      n++;
  return n;
}

/* nbd_pread_structured(3): subbuf lies inside buf at offset - request
 * offset; DATA chunks carry the data, HOLE chunks read as zero; a
 * successful read is covered by its chunks without overlap.
 */
static bool
check_chunks (const char *what, const struct read_record *rec,
              const unsigned char *buf, size_t count, uint64_t offset,
              bool success)
{
  unsigned char *covered;
  size_t i, j;
  bool ok = true;

  if (rec->nr_chunks > MAX_CHUNKS) {
    tap_diag ("%s: %zu chunks, only %d checked", what, rec->nr_chunks,
              MAX_CHUNKS);
  }
  covered = calloc (count, 1);
  if (covered == NULL)
    abort ();
  for (i = 0; i < rec->nr_chunks && i < MAX_CHUNKS; i++) {
    const struct chunk *c = &rec->chunks[i];
    uint64_t rel = c->offset - offset;

    if (c->status == LIBNBD_READ_ERROR)
      continue;
    if (c->status != LIBNBD_READ_DATA && c->status != LIBNBD_READ_HOLE) {
      tap_diag ("%s: chunk %zu has status %u", what, i, c->status);
      ok = false;
      continue;
    }
    if (c->offset < offset || c->count > count || rel > count - c->count) {
      tap_diag ("%s: chunk %zu [%" PRIu64 ", +%zu) outside the request",
                what, i, c->offset, c->count);
      ok = false;
      continue;
    }
    if ((const unsigned char *) c->subbuf != buf + rel) {
      tap_diag ("%s: chunk %zu subbuf is not buf + %" PRIu64, what, i, rel);
      ok = false;
    }
    for (j = 0; j < c->count; j++) {
      if (covered[rel + j]) {
        tap_diag ("%s: chunk %zu overlaps at %" PRIu64, what, i,
                  c->offset + j);
        ok = false;
        break;
      }
      covered[rel + j] = 1;
    }
    for (j = 0; j < c->count; j++) {
      unsigned char want = c->status == LIBNBD_READ_HOLE ? 0 :
        image[c->offset + j];
      if (buf[rel + j] != want) {
        tap_diag ("%s: chunk %zu status %u byte at %" PRIu64
                  " is 0x%02x, expected 0x%02x", what, i, c->status,
                  c->offset + j, buf[rel + j], want);
        ok = false;
        break;
      }
      if (c->status == LIBNBD_READ_HOLE && image[c->offset + j] != 0) {
        tap_diag ("%s: hole chunk %zu over non-zero data at %" PRIu64,
                  what, i, c->offset + j);
        ok = false;
        break;
      }
    }
  }
  if (success && rec->nr_chunks <= MAX_CHUNKS) {
    for (j = 0; j < count; j++) {
      if (!covered[j]) {
        tap_diag ("%s: byte at %" PRIu64 " not covered by any chunk",
                  what, offset + j);
        ok = false;
        break;
      }
    }
  }
  free (covered);
  return ok;
}

/* One nbd_aio_pread_structured(3) with chunk and completion callbacks,
 * retired with nbd_aio_command_completed(3).  Checks the generic rules and
 * leaves what the callbacks saw in *rec.  Returns the buffer (caller
 * frees).
 */
static unsigned char *
aio_read (struct nbd_handle *h, const char *what, size_t count,
          uint64_t offset, uint32_t flags, int expected_errno,
          struct read_record *rec)
{
  unsigned char *buf = malloc (count);
  int64_t cookie;
  int r;

  if (buf == NULL)
    abort ();
  memset (buf, 0xa5, count);
  memset (rec, 0, sizeof *rec);
  cookie = nbd_aio_pread_structured (h, buf, count, offset,
    (nbd_chunk_callback) { .callback = record_chunk, .user_data = rec,
                           .free = free_chunk },
    (nbd_completion_callback) { .callback = record_completion,
                                .user_data = rec,
                                .free = free_completion },
    flags);
  if (!tap_ok (cookie >= 1, "%s: nbd_aio_pread_structured returns a "
               "cookie >= 1", what)) {
    tap_diag ("%s", nbd_get_error ());
    return buf;
  }
  r = wait_for_cookie (h, cookie);
  if (expected_errno == 0) {
    if (!tap_ok (r == 1, "%s: nbd_aio_command_completed returns 1", what))
      tap_diag ("returned %d: %s", r, nbd_get_error ());
  }
  else {
    if (tap_ok (r == -1, "%s: nbd_aio_command_completed returns -1", what))
      tap_error_is ("nbd_aio_command_completed", expected_errno, what);
  }
  tap_ok (rec->completions == 1 &&
          rec->completion_error == expected_errno,
          "%s: completion callback called once with *error %s",
          what, errno_name (expected_errno));
  if (rec->completions != 1 || rec->completion_error != expected_errno)
    tap_diag ("%d calls, *error %s", rec->completions,
              errno_name (rec->completion_error));
  tap_ok (!rec->chunk_after_completion,
          "%s: no chunk callback after the completion callback", what);
  tap_ok (rec->chunk_frees == 1 && rec->completion_frees == 1,
          "%s: each .free called once after retirement", what);
  tap_ok (check_chunks (what, rec, buf, count, offset,
                        expected_errno == 0),
          "%s: chunks lie in the buffer, do not overlap%s, and hold the "
          "export's bytes", what,
          expected_errno == 0 ? ", cover the request" : "");
  if (expected_errno == 0)
    tap_ok (memcmp (buf, image + offset, count) == 0,
            "%s: buffer holds the export's bytes", what);
  return buf;
}

/* nbd_pread(3). */
static void
sync_read (struct nbd_handle *h, const char *what, size_t count,
           uint64_t offset)
{
  unsigned char *buf = malloc (count);

  if (buf == NULL)
    abort ();
  if (tap_ok (nbd_pread (h, buf, count, offset, 0) == 0,
              "%s: nbd_pread %zu bytes at %" PRIu64, what, count, offset))
    tap_ok (memcmp (buf, image + offset, count) == 0,
            "%s: nbd_pread data correct", what);
  else
    tap_diag ("%s", nbd_get_error ());
  free (buf);
}

static struct nbd_handle *
connect_socket (const char *sock, const char *export, bool structured)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL)
    tap_bail ("nbd_create");
  nbd_set_request_structured_replies (h, structured);
  if (export)
    nbd_set_export_name (h, export);
  if (nbd_connect_unix (h, sock) == -1)
    tap_bail ("nbd_connect_unix %s", sock);
  if (!tap_ok (nbd_get_size (h) == (int64_t) image_size,
               "nbd_get_size(3) is %" PRIu64, image_size))
    exit (EXIT_FAILURE);
  return h;
}

static void
finish (struct nbd_handle *h)
{
  tap_ok (nbd_aio_in_flight (h) == 0, "nothing left in flight");
  tap_ok (nbd_shutdown (h, 0) == 0, "nbd_shutdown(3)");
  nbd_close (h);
}

static const struct { uint64_t offset; size_t count; } reads[] = {
  { 0, 4096 },
  { 8, 8 },
  { 12345, 100000 },              /* unaligned */
  { MiB - 8, 8 },                 /* the last word */
  { 0, MiB },                     /* everything */
};

static void
read_all_shapes (struct nbd_handle *h, const char *name)
{
  struct read_record rec;
  char what[256];
  size_t i;

  for (i = 0; i < sizeof reads / sizeof reads[0]; i++) {
    if (reads[i].offset + reads[i].count > image_size)
      continue;
    snprintf (what, sizeof what, "%s %zu@%" PRIu64, name, reads[i].count,
              reads[i].offset);
    sync_read (h, what, reads[i].count, reads[i].offset);
    free (aio_read (h, what, reads[i].count, reads[i].offset, 0, 0, &rec));
  }
}

static void
make_pattern_image (void)
{
  uint64_t i;

  image_size = MiB;
  image = malloc (image_size);
  if (image == NULL)
    abort ();
  for (i = 0; i < image_size; i++)
    image[i] = pattern_byte (i);
}

/* Bounds, zero size and flags: nbd_set_strict_mode(3). */
static void
test_strict (struct nbd_handle *h)
{
  unsigned char buf[16];
  int64_t cookie;

  tap_ok (nbd_get_strict_mode (h) == LIBNBD_STRICT_MASK,
          "nbd_get_strict_mode(3) defaults to all checks");
  tap_ok (nbd_aio_pread_structured (h, buf, 8, image_size - 4,
                                    NOOP_CHUNK,
                                    NBD_NULL_COMPLETION, 0) == -1,
          "read past the end fails before queuing (STRICT_BOUNDS)");
  tap_error_is ("nbd_aio_pread_structured", EINVAL, "read past the end");
  tap_ok (nbd_aio_pread (h, buf, 0, 0, NBD_NULL_COMPLETION, 0) == -1,
          "zero-length read fails (STRICT_ZERO_SIZE)");
  tap_error_is ("nbd_aio_pread", EINVAL, "zero-length read");
  tap_ok (nbd_pread (h, buf, 8, 0, 0x40) == -1,
          "unknown flag fails (STRICT_FLAGS)");
  tap_error_is ("nbd_pread", EINVAL, "unknown flag");
  tap_ok (nbd_pread (h, buf, 8, 0, LIBNBD_CMD_FLAG_FUA) == -1,
          "FUA on a read fails (STRICT_FLAGS)");
  tap_error_is ("nbd_pread", EINVAL, "FUA on a read");
  /* nbd_pread(3): "The flags parameter must be 0"; DF belongs to
   * nbd_pread_structured(3) only, even when the server can DF.
   */
  tap_ok (nbd_pread (h, buf, 8, 0, LIBNBD_CMD_FLAG_DF) == -1,
          "DF on nbd_pread fails (flags must be 0)");
  tap_error_is ("nbd_pread", EINVAL, "DF on nbd_pread");
  tap_ok (nbd_aio_pread (h, buf, 8, 0, NBD_NULL_COMPLETION,
                         LIBNBD_CMD_FLAG_DF) == -1,
          "DF on nbd_aio_pread fails (flags must be 0)");
  tap_error_is ("nbd_aio_pread", EINVAL, "DF on nbd_aio_pread");

  /* Without STRICT_BOUNDS the server decides: nbdkit says EINVAL. */
  nbd_set_strict_mode (h, LIBNBD_STRICT_MASK & ~LIBNBD_STRICT_BOUNDS);
  cookie = nbd_aio_pread (h, buf, 8, image_size - 4, NBD_NULL_COMPLETION,
                          0);
  if (tap_ok (cookie >= 1,
              "read past the end is sent without STRICT_BOUNDS")) {
    tap_ok (wait_for_cookie (h, cookie) == -1,
            "the server fails the read past the end");
    tap_error_is ("nbd_aio_command_completed", EINVAL,
                  "server refuses read past the end");
  }
  nbd_set_strict_mode (h, LIBNBD_STRICT_MASK);
  tap_ok (nbd_aio_is_ready (h) == 1,
          "the handle is still ready after the failed reads");
}

static void
mode_pattern (const char *sock)
{
  struct nbd_handle *h;
  struct read_record rec;
  unsigned char buf[4096];

  make_pattern_image ();
  h = connect_socket (sock, NULL, true);
  tap_ok (nbd_get_structured_replies_negotiated (h) == 1,
          "structured replies negotiated with nbdkit");
  read_all_shapes (h, "pattern");

  /* nbd_pread_structured(3): with DF the server sends one fragment. */
  if (nbd_can_df (h) == 1) {
    free (aio_read (h, "pattern DF", 65536, 4096, LIBNBD_CMD_FLAG_DF, 0,
                    &rec));
    tap_ok (rec.nr_chunks == 1 && count_status (&rec, LIBNBD_READ_DATA) == 1,
            "pattern DF: a single DATA chunk");
  }
  else
    tap_skip ("server cannot DF", "pattern DF read");

  /* nbd_set_pread_initialize(3) false: the read still fills buf. */
  tap_ok (nbd_get_pread_initialize (h) == 1,
          "nbd_get_pread_initialize(3) defaults to true");
  nbd_set_pread_initialize (h, false);
  memset (buf, 0xa5, sizeof buf);
  tap_ok (nbd_pread (h, buf, sizeof buf, 4096, 0) == 0 &&
          pattern_mismatch (buf, sizeof buf, 4096) == -1,
          "pread with pread_initialize false returns the pattern");
  nbd_set_pread_initialize (h, true);

  test_strict (h);
  finish (h);
}

/* nbd_pread_structured(3): "Simple replies: one DATA call for the whole
 * buffer".
 */
static void
check_simple_reply (struct nbd_handle *h, const char *name, size_t count,
                    uint64_t offset)
{
  struct read_record rec;
  unsigned char *buf;
  char what[256];

  snprintf (what, sizeof what, "%s %zu@%" PRIu64, name, count, offset);
  buf = aio_read (h, what, count, offset, 0, 0, &rec);
  tap_ok (rec.nr_chunks == 1 && rec.chunks[0].status == LIBNBD_READ_DATA &&
          rec.chunks[0].offset == offset && rec.chunks[0].count == count &&
          rec.chunks[0].subbuf == buf,
          "%s: simple reply gives one DATA chunk for the whole buffer",
          what);
  free (buf);
}

static void
mode_nosr (const char *sock)
{
  struct nbd_handle *h;
  unsigned char buf[64];

  make_pattern_image ();
  h = connect_socket (sock, NULL, false);
  tap_ok (nbd_get_structured_replies_negotiated (h) == 0,
          "structured replies not negotiated when not requested");
  read_all_shapes (h, "pattern (simple replies)");
  check_simple_reply (h, "pattern (simple replies)", 400000, 1000);
  tap_ok (nbd_pread_structured (h, buf, sizeof buf, 0,
                                NOOP_CHUNK,
                                LIBNBD_CMD_FLAG_DF) == -1,
          "DF without structured replies fails (STRICT_FLAGS)");
  tap_error_is ("nbd_pread_structured", EINVAL, "DF without support");
  finish (h);
}

/* The bytes of DATA_SPEC in api-read.sh. */
static void
make_data_image (void)
{
  uint64_t i;

  image_size = 16384;
  image = calloc (image_size, 1);
  if (image == NULL)
    abort ();
  image[0] = 0x11; image[1] = 0x22; image[2] = 0x33; image[3] = 0x44;
  image[510] = 0x55; image[511] = 0xaa;
  for (i = 0; i < 1024; i++)
    image[4096 + i] = "\xde\xad\xbe\xef"[i & 3];
  image[16383] = 0x99;
}

static void
mode_data (const char *sock)
{
  struct nbd_handle *h;
  struct read_record rec;

  make_data_image ();
  h = connect_socket (sock, NULL, true);
  free (aio_read (h, "data 16384@0", 16384, 0, 0, 0, &rec));
  free (aio_read (h, "data 600@4000", 600, 4000, 0, 0, &rec));
  free (aio_read (h, "data 2@510", 2, 510, 0, 0, &rec));
  free (aio_read (h, "data 1@16383", 1, 16383, 0, 0, &rec));
  sync_read (h, "data", 16384, 0);
  sync_read (h, "data", 7, 8190);
  finish (h);
}

static void
mode_memory (const char *sock)
{
  struct nbd_handle *h;
  struct read_record rec;
  unsigned char buf[512];

  image_size = MiB;
  image = calloc (image_size, 1);
  if (image == NULL)
    abort ();
  h = connect_socket (sock, NULL, true);
  free (aio_read (h, "memory 65536@0", 65536, 0, 0, 0, &rec));
  free (aio_read (h, "memory 512@1048064", 512, MiB - 512, 0, 0, &rec));
  sync_read (h, "memory", MiB, 0);

  /* nbd_set_strict_mode(3) STRICT_ALIGN: the server's minimum block size
   * (512 here) applies before anything is sent.
   */
  tap_ok (nbd_aio_pread (h, buf, 1, 1, NBD_NULL_COMPLETION, 0) == -1,
          "unaligned read fails before queuing (STRICT_ALIGN)");
  tap_error_is ("nbd_aio_pread", EINVAL, "unaligned read");
  tap_ok (nbd_pread (h, buf, 511, 512, 0) == -1,
          "read of a length not a multiple of the minimum fails");
  tap_error_is ("nbd_pread", EINVAL, "unaligned length");
  finish (h);
}

static void
load_file (const char *file)
{
  int fd = open (file, O_RDONLY);
  struct stat st;
  off_t hole;
  size_t done = 0;

  if (fd == -1 || fstat (fd, &st) == -1) {
    perror (file);
    exit (EXIT_FAILURE);
  }
  image_size = st.st_size;
  image = malloc (image_size);
  if (image == NULL)
    abort ();
  while (done < image_size) {
    ssize_t r = pread (fd, image + done, image_size - done, done);
    if (r <= 0) {
      perror (file);
      exit (EXIT_FAILURE);
    }
    done += r;
  }
  hole = lseek (fd, 0, SEEK_HOLE);
  image_has_holes = hole != -1 && (uint64_t) hole < image_size;
  close (fd);
}

/* qemu-nbd serves a sparse file: nbd_pread_structured(3) LIBNBD_READ_HOLE
 * "subbuf represents a hole, and contains count NUL bytes".
 */
static void
mode_sparse (const char *sock, const char *file)
{
  struct nbd_handle *h;
  struct read_record rec;
  unsigned char *buf;
  size_t i;

  load_file (file);
  h = connect_socket (sock, NULL, true);
  tap_ok (nbd_get_structured_replies_negotiated (h) == 1,
          "structured replies negotiated with qemu-nbd");
  read_all_shapes (h, "sparse");

  /* Without pre-zeroing, holes must still read as zero. */
  nbd_set_pread_initialize (h, false);
  buf = aio_read (h, "sparse 400000@1000 no initialize", 400000, 1000, 0, 0,
                  &rec);
  if (image_has_holes) {
    tap_ok (count_status (&rec, LIBNBD_READ_HOLE) >= 1,
            "sparse: qemu-nbd sends HOLE chunks for the holes");
    tap_ok (count_status (&rec, LIBNBD_READ_DATA) >= 1,
            "sparse: and DATA chunks for the data");
    for (i = 0; i < rec.nr_chunks && i < MAX_CHUNKS; i++)
      tap_diag ("chunk status %u offset %" PRIu64 " count %zu",
                rec.chunks[i].status, rec.chunks[i].offset,
                rec.chunks[i].count);
  }
  else {
    tap_skip ("file system reports no holes", "sparse: HOLE chunks");
    tap_skip ("file system reports no holes", "sparse: DATA chunks");
  }
  free (buf);
  nbd_set_pread_initialize (h, true);

  /* DF: one fragment, holes included as data. */
  if (nbd_can_df (h) == 1) {
    free (aio_read (h, "sparse DF", 400000, 1000, LIBNBD_CMD_FLAG_DF, 0,
                    &rec));
    tap_ok (count_status (&rec, LIBNBD_READ_DATA) <= 1,
            "sparse DF: at most one DATA chunk");
  }
  else
    tap_skip ("server cannot DF", "sparse DF read");
  finish (h);
}

/* nbd-server speaks simple replies only. */
static void
mode_simple (const char *sock, const char *file)
{
  struct nbd_handle *h;
  unsigned char buf[64];

  load_file (file);
  h = connect_socket (sock, "export", true);
  tap_ok (nbd_get_structured_replies_negotiated (h) == 0,
          "nbd-server: structured replies not negotiated");
  tap_ok (nbd_can_df (h) == 0, "nbd-server: nbd_can_df(3) false");
  read_all_shapes (h, "nbd-server");
  check_simple_reply (h, "nbd-server", 400000, 1000);
  check_simple_reply (h, "nbd-server", 1, MiB - 1);
  tap_ok (nbd_pread_structured (h, buf, sizeof buf, 0,
                                NOOP_CHUNK,
                                LIBNBD_CMD_FLAG_DF) == -1,
          "nbd-server: DF fails before queuing (STRICT_FLAGS)");
  tap_error_is ("nbd_pread_structured", EINVAL, "DF on nbd-server");
  finish (h);
}

/* Every read fails with EIO on the server. */
static void
mode_error (const char *sock)
{
  struct nbd_handle *h;
  struct read_record rec;
  unsigned char buf[4096];
  size_t i;

  make_pattern_image ();
  h = connect_socket (sock, NULL, true);

  tap_ok (nbd_pread (h, buf, sizeof buf, 0, 0) == -1,
          "nbd_pread(3) fails when the server fails the read");
  tap_error_is ("nbd_pread", EIO, "server EIO");

  free (aio_read (h, "error 4096@0", 4096, 0, 0, EIO, &rec));
  tap_ok (count_status (&rec, LIBNBD_READ_DATA) == 0 &&
          count_status (&rec, LIBNBD_READ_HOLE) == 0,
          "error: no DATA or HOLE chunk for a failed read");
  for (i = 0; i < rec.nr_chunks && i < MAX_CHUNKS; i++) {
    if (rec.chunks[i].status == LIBNBD_READ_ERROR)
      tap_ok (rec.chunks[i].error_in == EIO && rec.chunks[i].count == 0,
              "error: LIBNBD_READ_ERROR chunk has *error EIO, count 0");
  }
  tap_diag ("error: %zu chunk callbacks (nbdkit sends an ERROR chunk "
            "without offset, which libnbd does not pass on)",
            rec.nr_chunks);

  tap_ok (nbd_pread_structured (h, buf, sizeof buf, 0, NOOP_CHUNK, 0) == -1,
          "nbd_pread_structured(3) fails with the server's error");
  tap_error_is ("nbd_pread_structured", EIO, "server EIO, structured");
  tap_ok (nbd_aio_is_ready (h) == 1,
          "a failed command leaves the handle ready");
  finish (h);
}

/* Many reads in flight at once. */
#define NR_DELAYED 64

struct delayed {
  int index;
  int *order;
  int *nr_done;
  int completions;
  int error;
};

static int
delayed_complete (void *user_data, int *error)
{
  struct delayed *d = user_data;

  d->completions++;
  d->error = *error;
  d->order[(*d->nr_done)++] = d->index;
  return 0;
}

static void
mode_delay (const char *sock)
{
  struct nbd_handle *h;
  static unsigned char bufs[NR_DELAYED][4096];
  struct delayed d[NR_DELAYED];
  int64_t cookies[NR_DELAYED];
  int order[NR_DELAYED];
  int nr_done = 0, retired = 0, i, prev_in_flight;
  bool cookies_ok = true, monotonic = true, retire_ok = true;
  bool data_ok = true, once_ok = true, peek_ok = true;

  make_pattern_image ();
  h = connect_socket (sock, NULL, true);
  for (i = 0; i < NR_DELAYED; i++) {
    d[i] = (struct delayed) { .index = i, .order = order,
                              .nr_done = &nr_done };
    cookies[i] = nbd_aio_pread (h, bufs[i], sizeof bufs[i],
                                (uint64_t) i * 16384 + i,
                                (nbd_completion_callback) {
                                  .callback = delayed_complete,
                                  .user_data = &d[i] }, 0);
    if (cookies[i] < 1 || (i > 0 && cookies[i] <= cookies[i - 1]))
      cookies_ok = false;
  }
  tap_ok (cookies_ok, "%d cookies are >= 1 and increasing", NR_DELAYED);
  prev_in_flight = nbd_aio_in_flight (h);
  tap_ok (prev_in_flight > 0 && prev_in_flight <= NR_DELAYED,
          "nbd_aio_in_flight(3) counts the outstanding reads (%d)",
          prev_in_flight);

  /* nbd_aio_peek_command_completed(3): the cookie of a finished command,
   * 0 while there are commands in flight and none has finished.
   */
  while (retired < NR_DELAYED) {
    int64_t peek = nbd_aio_peek_command_completed (h);
    int in_flight;

    if (peek > 0) {
      int r = nbd_aio_command_completed (h, peek);
      if (r != 1) {
        tap_diag ("command_completed (%" PRId64 ") = %d: %s", peek, r,
                  nbd_get_error ());
        retire_ok = false;
        break;
      }
      retired++;
      continue;
    }
    if (peek != 0) {
      tap_diag ("peek returned %" PRId64 ": %s", peek, nbd_get_error ());
      peek_ok = false;
      break;
    }
    if (nbd_poll (h, -1) == -1) {
      tap_diag ("nbd_poll: %s", nbd_get_error ());
      break;
    }
    in_flight = nbd_aio_in_flight (h);
    if (in_flight > prev_in_flight)
      monotonic = false;
    prev_in_flight = in_flight;
  }
  tap_ok (peek_ok && retire_ok && retired == NR_DELAYED,
          "every cookie from nbd_aio_peek_command_completed(3) retires with "
          "nbd_aio_command_completed(3) == 1");
  tap_ok (monotonic, "nbd_aio_in_flight(3) never grows while draining");
  tap_ok (nbd_aio_in_flight (h) == 0, "nbd_aio_in_flight(3) ends at 0");
  tap_ok (nbd_aio_peek_command_completed (h) == -1,
          "nbd_aio_peek_command_completed(3) is -1 with nothing in flight");
  for (i = 0; i < NR_DELAYED; i++) {
    if (d[i].completions != 1 || d[i].error != 0)
      once_ok = false;
    if (pattern_mismatch (bufs[i], sizeof bufs[i],
                          (uint64_t) i * 16384 + i) != -1)
      data_ok = false;
  }
  tap_ok (once_ok, "each completion callback ran once with *error 0");
  tap_ok (data_ok, "all %d buffers hold the pattern", NR_DELAYED);
  for (i = 1; i < nr_done; i++)
    if (order[i] < order[i - 1])
      break;
  tap_diag ("completions %s in issue order", i < nr_done ? "not" : "were");
  finish (h);
}

/* Replies in reverse order: the server holds the read of block i until
 * release-i exists; the client releases block NR_ORDERED-1 itself, and
 * every completion releases the block before it.
 */
#define NR_ORDERED 12

struct ordered {
  const char *dir;
  int index;
  int *order;
  int *nr_done;
  int completions;
  int error;
};

static void
release (const char *dir, int index)
{
  char path[4096];
  int fd;

  snprintf (path, sizeof path, "%s/release-%d", dir, index);
  fd = open (path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0)
    close (fd);
}

static int
ordered_complete (void *user_data, int *error)
{
  struct ordered *o = user_data;

  o->completions++;
  o->error = *error;
  o->order[(*o->nr_done)++] = o->index;
  if (o->index > 0)
    release (o->dir, o->index - 1);
  return 0;
}

static void
mode_order (const char *sock, const char *basedir)
{
  struct nbd_handle *h;
  static unsigned char bufs[NR_ORDERED][4096];
  struct ordered o[NR_ORDERED];
  int64_t cookies[NR_ORDERED];
  int order[NR_ORDERED];
  char export[64], dir[4096];
  int nr_done = 0, i, j, r;
  bool data_ok = true, reversed = true, all_ok = true;

  image_size = NR_ORDERED * 4096;
  image = malloc (image_size);
  if (image == NULL)
    abort ();
  for (i = 0; i < NR_ORDERED; i++)
    memset (image + i * 4096, i + 1, 4096);
  /* The export name is the directory of this run's release files. */
  snprintf (export, sizeof export, "run-%ld", (long) getpid ());
  snprintf (dir, sizeof dir, "%s/%s", basedir, export);
  if (mkdir (dir, 0755) == -1 && errno != EEXIST) {
    perror (dir);
    exit (EXIT_FAILURE);
  }
  h = connect_socket (sock, export, true);

  for (i = 0; i < NR_ORDERED; i++) {
    o[i] = (struct ordered) { .dir = dir, .index = i, .order = order,
                              .nr_done = &nr_done };
    cookies[i] = nbd_aio_pread (h, bufs[i], 4096, (uint64_t) i * 4096,
                                (nbd_completion_callback) {
                                  .callback = ordered_complete,
                                  .user_data = &o[i] }, 0);
    if (cookies[i] < 1)
      tap_bail ("nbd_aio_pread %d", i);
  }
  /* Nothing can finish before the release: these counts are exact. */
  tap_ok (nbd_aio_in_flight (h) == NR_ORDERED,
          "nbd_aio_in_flight(3) is %d with every reply held back",
          NR_ORDERED);
  nbd_poll (h, 0);
  tap_ok (nbd_aio_peek_command_completed (h) == 0,
          "nbd_aio_peek_command_completed(3) is 0 while commands are in "
          "flight and none finished");
  tap_ok (nbd_aio_command_completed (h, cookies[0]) == 0,
          "nbd_aio_command_completed(3) is 0 for a command in flight");

  release (dir, NR_ORDERED - 1);
  if (!drain (h))
    tap_diag ("nbd_poll: %s", nbd_get_error ());
  tap_ok (nr_done == NR_ORDERED, "all %d completions ran", NR_ORDERED);
  for (i = 0; i < nr_done; i++)
    if (order[i] != NR_ORDERED - 1 - i)
      reversed = false;
  tap_ok (reversed, "replies arriving in reverse order complete in "
          "reverse order");
  for (i = 0; i < NR_ORDERED; i++) {
    if (o[i].completions != 1 || o[i].error != 0)
      all_ok = false;
    for (j = 0; j < 4096; j++)
      if (bufs[i][j] != i + 1)
        data_ok = false;
  }
  tap_ok (all_ok, "each completion ran once with *error 0");
  tap_ok (data_ok, "each reply landed in its own buffer");
  for (i = NR_ORDERED - 1; i >= 0; i--) {
    r = nbd_aio_command_completed (h, cookies[i]);
    if (r != 1)
      all_ok = false;
  }
  tap_ok (all_ok, "out-of-order commands retire with "
          "nbd_aio_command_completed(3) == 1");
  finish (h);
}

int
main (int argc, char *argv[])
{
  const char *mode;

  tap_init ();
  if (argc < 3) {
    fprintf (stderr, "usage: %s MODE SOCKET [FILE|DIR]\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  mode = argv[1];
  if (strcmp (mode, "pattern") == 0)
    mode_pattern (argv[2]);
  else if (strcmp (mode, "nosr") == 0)
    mode_nosr (argv[2]);
  else if (strcmp (mode, "data") == 0)
    mode_data (argv[2]);
  else if (strcmp (mode, "memory") == 0)
    mode_memory (argv[2]);
  else if (strcmp (mode, "sparse") == 0 && argc == 4)
    mode_sparse (argv[2], argv[3]);
  else if (strcmp (mode, "simple") == 0 && argc == 4)
    mode_simple (argv[2], argv[3]);
  else if (strcmp (mode, "error") == 0)
    mode_error (argv[2]);
  else if (strcmp (mode, "delay") == 0)
    mode_delay (argv[2]);
  else if (strcmp (mode, "order") == 0 && argc == 4)
    mode_order (argv[2], argv[3]);
  else {
    fprintf (stderr, "%s: bad mode or arguments\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  free (image);
  return EXIT_SUCCESS;
}
