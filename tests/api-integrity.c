/* nbd-proxy tests: data integrity with several threads on one handle.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-integrity mixed SOCKET TRIM [SEED]
 *        api-integrity bigwrites SOCKET
 *
 * SOCKET is a Unix socket, or an NBD URI (anything with "://"), which may
 * name local files (nbds+unix://alice@/?socket=S&tls-psk-file=F: the
 * same through TLS).
 *
 * mixed: THREADS threads share one handle.  Each owns a region of the
 * export and keeps DEPTH aio commands in flight there (THREADS x DEPTH in
 * all): random pwrite (some with FUA), pread, zero (plain, NO_HOLE,
 * FAST_ZERO), trim, flush and cache, whichever the server offers.  The
 * commands a thread has in flight never overlap, so their order on the
 * server does not matter (the NBD spec lets it reorder them), and each
 * completion is checked against an in-memory model of the disk: a read
 * must return the model's bytes.  Then the same again with the blocking
 * calls (nbd_pwrite, nbd_pread, ...) from the threads at once, and a full
 * read of the export compared with the model.
 *
 * A byte of the model is either known or unknown.  TRIM says what a trim
 * leaves: "zero" for nbdkit memory (its trim frees or zeroes the pages:
 * nbdkit-memory-plugin(1)), "unknown" for servers that may keep the data
 * (qemu-nbd: without --discard=unmap it ignores trims, with it the hole
 * punched depends on the file system).  A write zeroes with FAST_ZERO
 * that fails with ENOTSUP leaves the region unknown too; any other
 * failure is a failure of the test.
 *
 * bigwrites: THREADS threads each issue blocking 4 MiB writes at once to
 * their own region of a server that reads one request at a time and
 * holds each write (nbdkit --threads=1 --filter=delay memory): a request
 * whose sendmsg hits EAGAIN while another thread waits for replies must
 * still get out.  All must complete (within a time limit: a hang fails),
 * and the data must read back.
 *
 * Every check of data can fail: at the end the model is changed in one
 * byte on purpose, and the comparison must see exactly that byte.
 * The seed (SEED, default 1) is printed; it fixes each thread's random
 * stream (which ranges are free of commands in flight, and so the exact
 * sequence, still depends on timing).
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#include "api-tap.h"

#define THREADS 4
#define DEPTH 8                 /* aio commands in flight per thread */
#define AIO_OPS 1500            /* per thread */
#define SYNC_OPS 300            /* per thread */
#define MAX_COUNT (64 * 1024)   /* largest random command */
#define POLL_MS 50
#define BIG_WRITE (4 * 1024 * 1024)
#define BIG_WRITES 2            /* per thread */
#define BIG_EXPORT (THREADS * BIG_WRITES * BIG_WRITE)

enum op_type { OP_WRITE, OP_READ, OP_ZERO, OP_TRIM, OP_FLUSH, OP_CACHE,
               NR_OP_TYPES };

static const char *op_names[] = {
  "pwrite", "pread", "zero", "trim", "flush", "cache",
};

static struct nbd_handle *h;

/* The model: what the export holds, where known. */
static uint64_t disk_size;
static unsigned char *model;
static unsigned char *known;
static bool trim_zeroes;

/* What the server offers. */
static bool can_fua, can_trim, can_zero, can_fast_zero, can_flush,
  can_cache;

struct op {
  enum op_type type;
  uint64_t offset, count;
  uint32_t flags;
  unsigned char *buf;
  int error;
  int done;                     /* set by the completion callback */
  bool busy;
};

struct worker {
  int id;
  uint64_t rng;
  uint64_t base, len;           /* the region it owns */
  struct op ops[DEPTH];
  unsigned issued[NR_OP_TYPES];
  unsigned failures;            /* commands that failed */
  uint64_t bad_bytes;           /* read back differently from the model */
  bool reported;
};

/* splitmix64 */
static uint64_t
next_random (uint64_t *state)
{
  uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static void
fill_random (uint64_t *rng, unsigned char *buf, uint64_t count)
{
  for (uint64_t i = 0; i < count; i += 8) {
    uint64_t r = next_random (rng);

    memcpy (buf + i, &r, count - i < 8 ? count - i : 8);
  }
}

/* Bytes of BUF (the export at OFFSET) that differ from the known bytes
 * of the model; the first one in *FIRST.
 */
static uint64_t
compare_with_model (const unsigned char *buf, uint64_t offset,
                    uint64_t count, uint64_t *first)
{
  uint64_t bad = 0;

  for (uint64_t i = 0; i < count; i++)
    if (known[offset + i] && buf[i] != model[offset + i]) {
      if (bad++ == 0)
        *first = offset + i;
    }
  return bad;
}

static void
model_set (uint64_t offset, uint64_t count, const unsigned char *data)
{
  if (data)
    memcpy (model + offset, data, count);
  else
    memset (model + offset, 0, count);
  memset (known + offset, 1, count);
}

static void
model_forget (uint64_t offset, uint64_t count)
{
  memset (known + offset, 0, count);
}

static void
worker_fail (struct worker *w, const struct op *op, const char *what)
{
  if (!w->reported) {
    w->reported = true;
    tap_diag ("thread %d: %s %s offset %" PRIu64 " count %" PRIu64
              " flags 0x%" PRIx32 ": %s", w->id, what, op_names[op->type],
              op->offset, op->count, op->flags, strerror (op->error));
  }
}

/* The command finished with op->error: check it, bring the model up to
 * date.
 */
static void
op_finished (struct worker *w, struct op *op)
{
  uint64_t first = 0, bad;

  if (op->error) {
    if (op->type == OP_ZERO && (op->flags & LIBNBD_CMD_FLAG_FAST_ZERO) &&
        op->error == ENOTSUP) {
      model_forget (op->offset, op->count);
      return;
    }
    w->failures++;
    worker_fail (w, op, "failed:");
    if (op->type == OP_WRITE || op->type == OP_ZERO || op->type == OP_TRIM)
      model_forget (op->offset, op->count);
    return;
  }
  switch (op->type) {
  case OP_WRITE:
    model_set (op->offset, op->count, op->buf);
    break;
  case OP_ZERO:
    model_set (op->offset, op->count, NULL);
    break;
  case OP_TRIM:
    if (trim_zeroes)
      model_set (op->offset, op->count, NULL);
    else
      model_forget (op->offset, op->count);
    break;
  case OP_READ:
    bad = compare_with_model (op->buf, op->offset, op->count, &first);
    if (bad) {
      if (w->bad_bytes == 0)
        tap_diag ("thread %d: pread offset %" PRIu64 " count %" PRIu64
                  ": %" PRIu64 " bytes differ from the model, the first "
                  "at %" PRIu64 " (0x%02x, model 0x%02x)", w->id,
                  op->offset, op->count, bad, first,
                  op->buf[first - op->offset], model[first]);
      w->bad_bytes += bad;
    }
    break;
  default:
    break;
  }
}

static bool
overlaps_busy (const struct worker *w, uint64_t offset, uint64_t count)
{
  for (int i = 0; i < DEPTH; i++) {
    const struct op *op = &w->ops[i];

    if (op->busy && op->count && offset < op->offset + op->count &&
        op->offset < offset + count)
      return true;
  }
  return false;
}

/* Choose the next command of thread W: a type the server offers, a
 * range in W's region clear of the commands W has in flight.  Returns
 * false if no free range was found this time.
 */
static bool
choose_op (struct worker *w, struct op *op)
{
  unsigned r = next_random (&w->rng) % 100;

  op->flags = 0;
  op->count = 0;
  op->offset = 0;
  if (r < 35)
    op->type = OP_WRITE;
  else if (r < 65)
    op->type = OP_READ;
  else if (r < 78)
    op->type = can_zero ? OP_ZERO : OP_WRITE;
  else if (r < 88)
    op->type = can_trim ? OP_TRIM : OP_READ;
  else if (r < 93)
    op->type = can_flush ? OP_FLUSH : OP_READ;
  else
    op->type = can_cache ? OP_CACHE : OP_READ;
  if (op->type == OP_FLUSH)
    return true;

  for (int tries = 0; tries < 20; tries++) {
    uint64_t count, offset;

    /* Half sector-aligned, half anywhere. */
    if (next_random (&w->rng) & 1) {
      count = (1 + next_random (&w->rng) % (MAX_COUNT / 512)) * 512;
      if (count > w->len)
        count = w->len;
      offset = w->base +
        (next_random (&w->rng) % ((w->len - count) / 512 + 1)) * 512;
    }
    else {
      count = 1 + next_random (&w->rng) % MAX_COUNT;
      if (count > w->len)
        count = w->len;
      offset = w->base + next_random (&w->rng) % (w->len - count + 1);
    }
    if (!overlaps_busy (w, offset, count)) {
      op->offset = offset;
      op->count = count;
      break;
    }
  }
  if (op->count == 0)
    return false;

  switch (op->type) {
  case OP_WRITE:
    fill_random (&w->rng, op->buf, op->count);
    if (can_fua && next_random (&w->rng) % 4 == 0)
      op->flags = LIBNBD_CMD_FLAG_FUA;
    break;
  case OP_ZERO:
    switch (next_random (&w->rng) % 4) {
    case 0: break;
    case 1: op->flags = LIBNBD_CMD_FLAG_NO_HOLE; break;
    case 2:
      if (can_fast_zero)
        op->flags = LIBNBD_CMD_FLAG_FAST_ZERO;
      break;
    case 3:
      op->flags = LIBNBD_CMD_FLAG_NO_HOLE |
        (can_fast_zero ? LIBNBD_CMD_FLAG_FAST_ZERO : 0);
      break;
    }
    break;
  case OP_READ:
    memset (op->buf, 0xa5, op->count);      /* nothing stale passes */
    break;
  default:
    break;
  }
  return true;
}

static int
op_complete (void *user_data, int *error)
{
  struct op *op = user_data;

  op->error = *error;
  __atomic_store_n (&op->done, 1, __ATOMIC_RELEASE);
  return 1;                     /* retire the command */
}

static int64_t
issue_aio (struct op *op)
{
  nbd_completion_callback cb = { .callback = op_complete, .user_data = op };

  op->done = 0;
  op->error = 0;
  switch (op->type) {
  case OP_WRITE:
    return nbd_aio_pwrite (h, op->buf, op->count, op->offset, cb,
                           op->flags);
  case OP_READ:
    return nbd_aio_pread (h, op->buf, op->count, op->offset, cb, 0);
  case OP_ZERO:
    return nbd_aio_zero (h, op->count, op->offset, cb, op->flags);
  case OP_TRIM:
    return nbd_aio_trim (h, op->count, op->offset, cb, 0);
  case OP_FLUSH:
    return nbd_aio_flush (h, cb, 0);
  case OP_CACHE:
    return nbd_aio_cache (h, op->count, op->offset, cb, 0);
  default:
    abort ();
  }
}

static int
issue_sync (struct op *op)
{
  switch (op->type) {
  case OP_WRITE:
    return nbd_pwrite (h, op->buf, op->count, op->offset, op->flags);
  case OP_READ:
    return nbd_pread (h, op->buf, op->count, op->offset, 0);
  case OP_ZERO:
    return nbd_zero (h, op->count, op->offset, op->flags);
  case OP_TRIM:
    return nbd_trim (h, op->count, op->offset, 0);
  case OP_FLUSH:
    return nbd_flush (h, 0);
  case OP_CACHE:
    return nbd_cache (h, op->count, op->offset, 0);
  default:
    abort ();
  }
}

/* DEPTH aio commands in flight until AIO_OPS were issued and finished.
 * Threads that share a handle poll with a timeout: another thread's
 * nbd_poll may complete this thread's commands (api-threads.c).
 */
static void *
run_aio (void *arg)
{
  struct worker *w = arg;
  unsigned left = AIO_OPS, in_flight = 0;

  while (left > 0 || in_flight > 0) {
    bool progress = false;

    for (int i = 0; i < DEPTH && left > 0; i++) {
      struct op *op = &w->ops[i];

      if (op->busy)
        continue;
      if (!choose_op (w, op))
        break;
      left--;
      w->issued[op->type]++;
      if (issue_aio (op) == -1) {
        op->error = nbd_get_errno () ? nbd_get_errno () : EIO;
        w->failures++;
        worker_fail (w, op, "refused:");
        tap_diag ("%s", nbd_get_error ());
        continue;
      }
      op->busy = true;
      in_flight++;
    }
    for (int i = 0; i < DEPTH; i++) {
      struct op *op = &w->ops[i];

      if (op->busy && __atomic_load_n (&op->done, __ATOMIC_ACQUIRE)) {
        op->busy = false;
        in_flight--;
        op_finished (w, op);
        progress = true;
      }
    }
    if (!progress && in_flight > 0 && nbd_poll (h, POLL_MS) == -1) {
      tap_diag ("thread %d: nbd_poll: %s", w->id, nbd_get_error ());
      w->failures++;
      break;
    }
  }
  return NULL;
}

/* SYNC_OPS blocking calls, one after another. */
static void *
run_sync (void *arg)
{
  struct worker *w = arg;
  struct op *op = &w->ops[0];

  for (unsigned n = 0; n < SYNC_OPS; n++) {
    if (!choose_op (w, op))
      continue;
    w->issued[op->type]++;
    op->error = 0;
    if (issue_sync (op) == -1)
      op->error = nbd_get_errno () ? nbd_get_errno () : EIO;
    op_finished (w, op);
  }
  return NULL;
}

/* Thread I owns the I-th part of the export; NR_BUFS of its ops have a
 * buffer of BUF_SIZE bytes.
 */
static void
workers_init (struct worker *workers, uint64_t seed, int nr_bufs,
              size_t buf_size)
{
  for (int i = 0; i < THREADS; i++) {
    struct worker *w = &workers[i];

    memset (w, 0, sizeof *w);
    w->id = i;
    w->rng = seed * 1000003 + i;
    w->len = disk_size / THREADS;
    w->base = w->len * i;
    for (int j = 0; j < nr_bufs; j++) {
      w->ops[j].buf = malloc (buf_size);
      if (w->ops[j].buf == NULL)
        tap_bail ("malloc");
    }
  }
}

static void
workers_free (struct worker *workers)
{
  for (int i = 0; i < THREADS; i++)
    for (int j = 0; j < DEPTH; j++)
      free (workers[i].ops[j].buf);
}

static void
run_threads (struct worker *workers, void *(*fn) (void *), const char *what)
{
  pthread_t threads[THREADS];
  unsigned issued[NR_OP_TYPES] = { 0 }, failures = 0;
  uint64_t bad = 0;

  for (int i = 0; i < THREADS; i++) {
    memset (workers[i].issued, 0, sizeof workers[i].issued);
    workers[i].failures = 0;
    workers[i].bad_bytes = 0;
    workers[i].reported = false;
    if (pthread_create (&threads[i], NULL, fn, &workers[i]) != 0)
      tap_bail ("pthread_create");
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join (threads[i], NULL);
    for (int t = 0; t < NR_OP_TYPES; t++)
      issued[t] += workers[i].issued[t];
    failures += workers[i].failures;
    bad += workers[i].bad_bytes;
  }
  tap_diag ("%s: %u pwrite, %u pread, %u zero, %u trim, %u flush, "
            "%u cache", what, issued[OP_WRITE], issued[OP_READ],
            issued[OP_ZERO], issued[OP_TRIM], issued[OP_FLUSH],
            issued[OP_CACHE]);
  tap_ok (failures == 0, "%s: %d threads on one handle: no command failed",
          what, THREADS);
  tap_ok (bad == 0, "%s: every read matched the model", what);
  tap_ok (nbd_aio_in_flight (h) == 0, "%s: nothing left in flight", what);
}

/* Read the whole export into a new buffer. */
static unsigned char *
read_all (void)
{
  unsigned char *buf = malloc (disk_size);

  if (buf == NULL)
    tap_bail ("malloc");
  for (uint64_t off = 0; off < disk_size; off += 1024 * 1024) {
    uint64_t n = disk_size - off < 1024 * 1024 ? disk_size - off
      : 1024 * 1024;

    if (nbd_pread (h, buf + off, n, off, 0) == -1)
      tap_bail ("nbd_pread of the whole export at %" PRIu64, off);
  }
  return buf;
}

/* The whole export against the model; then the model changed in one
 * byte on purpose must fail the same comparison in exactly that byte.
 */
static void
check_whole_export (const char *what)
{
  unsigned char *buf = read_all ();
  uint64_t first = 0, bad, unknown = 0, victim;

  for (uint64_t i = 0; i < disk_size; i++)
    unknown += !known[i];
  bad = compare_with_model (buf, 0, disk_size, &first);
  if (!tap_ok (bad == 0, "%s: the whole export matches the model", what))
    tap_diag ("%" PRIu64 " bytes differ, the first at %" PRIu64
              " (0x%02x, model 0x%02x)", bad, first, buf[first],
              model[first]);
  tap_diag ("%" PRIu64 " of %" PRIu64 " bytes unknown (trimmed)",
            unknown, disk_size);

  /* A known byte in the middle. */
  for (victim = disk_size / 2 + 12345 % (disk_size / 2);
       victim < disk_size && !known[victim]; victim++)
    ;
  if (victim == disk_size)
    for (victim = 0; victim < disk_size && !known[victim]; victim++)
      ;
  if (victim < disk_size) {
    model[victim] ^= 0x10;
    bad = compare_with_model (buf, 0, disk_size, &first);
    model[victim] ^= 0x10;
    tap_ok (bad == 1 && first == victim, "%s: a byte of the model changed "
            "on purpose (offset %" PRIu64 ") is caught", what, victim);
  }
  free (buf);
}

/* A Unix socket, or a URI with local files allowed. */
static struct nbd_handle *
connect_socket_or_uri (const char *sock)
{
  struct nbd_handle *handle;

  if (strstr (sock, "://") == NULL)
    return tap_connect_unix (sock);
  handle = tap_create ();
#ifdef LIBNBD_HAVE_NBD_SET_URI_ALLOW_LOCAL_FILE
  if (nbd_set_uri_allow_local_file (handle, true) == -1)
    tap_bail ("nbd_set_uri_allow_local_file");
#else
  tap_bail ("this library has no nbd_set_uri_allow_local_file");
#endif
  if (nbd_connect_uri (handle, sock) == -1)
    tap_bail ("nbd_connect_uri %s", sock);
#ifdef LIBNBD_HAVE_NBD_GET_TLS_NEGOTIATED
  if (strncmp (sock, "nbds", 4) == 0)
    tap_ok (nbd_get_tls_negotiated (handle) == 1, "TLS negotiated");
#endif
  return handle;
}

static void
connect_and_probe (const char *sock)
{
  unsigned char *start;

  h = connect_socket_or_uri (sock);
  disk_size = nbd_get_size (h);
  if (disk_size < THREADS * MAX_COUNT)
    tap_bail ("export too small: %" PRIu64 " bytes", disk_size);
  can_fua = nbd_can_fua (h) == 1;
  can_trim = nbd_can_trim (h) == 1;
  can_zero = nbd_can_zero (h) == 1;
  can_fast_zero = nbd_can_fast_zero (h) == 1;
  can_flush = nbd_can_flush (h) == 1;
  can_cache = nbd_can_cache (h) == 1;
  tap_diag ("export %" PRIu64 " bytes: fua %d trim %d zero %d fast_zero %d "
            "flush %d cache %d", disk_size, can_fua, can_trim, can_zero,
            can_fast_zero, can_flush, can_cache);
  tap_ok (nbd_is_read_only (h) == 0, "the export is writable");

  /* The model starts as what the export holds now. */
  known = malloc (disk_size);
  if (known == NULL)
    tap_bail ("malloc");
  memset (known, 1, disk_size);
  start = read_all ();
  model = start;
}

static void
test_mixed (const char *sock, const char *trim, uint64_t seed)
{
  struct worker workers[THREADS];

  if (strcmp (trim, "zero") == 0)
    trim_zeroes = true;
  else if (strcmp (trim, "unknown") != 0)
    tap_bail ("TRIM must be zero or unknown, not %s", trim);
  tap_diag ("seed %" PRIu64 " (api-integrity mixed SOCKET %s %" PRIu64
            " repeats the commands)", seed, trim, seed);
  connect_and_probe (sock);
  workers_init (workers, seed, DEPTH, MAX_COUNT);
  run_threads (workers, run_aio, "aio");
  check_whole_export ("after aio");
  run_threads (workers, run_sync, "blocking calls");
  check_whole_export ("after the blocking calls");
  workers_free (workers);
}

/* ----- bigwrites ----- */

static int big_threads_done;

static void *
run_big (void *arg)
{
  struct worker *w = arg;
  struct op *op = &w->ops[0];

  /* Staggered, so that later threads find the first one waiting for its
   * reply (polling only to read) while their writes do not fit.
   */
  usleep (w->id * 30000);
  for (int n = 0; n < BIG_WRITES; n++) {
    op->type = OP_WRITE;
    op->count = BIG_WRITE;
    op->offset = w->base + n * BIG_WRITE;
    op->flags = 0;
    op->error = 0;
    fill_random (&w->rng, op->buf, op->count);
    w->issued[OP_WRITE]++;
    if (nbd_pwrite (h, op->buf, op->count, op->offset, 0) == -1)
      op->error = nbd_get_errno () ? nbd_get_errno () : EIO;
    op_finished (w, op);
  }
  __atomic_add_fetch (&big_threads_done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static double
slowdown (void)
{
  const char *s = getenv ("NBDC_SLOWDOWN");

  return s && atoi (s) > 0 ? atoi (s) : 1;
}

static void
test_bigwrites (const char *sock)
{
  struct worker workers[THREADS];
  pthread_t threads[THREADS];
  unsigned failures = 0;
  double limit = 30 * slowdown ();
  time_t start;

  connect_and_probe (sock);
  if (disk_size < (uint64_t) THREADS * BIG_WRITES * BIG_WRITE)
    tap_bail ("export too small for %d x %d writes of 4 MiB", THREADS,
              BIG_WRITES);
  workers_init (workers, 1, 1, BIG_WRITE);
  start = time (NULL);
  for (int i = 0; i < THREADS; i++)
    pthread_create (&threads[i], NULL, run_big, &workers[i]);
  while (__atomic_load_n (&big_threads_done, __ATOMIC_SEQ_CST) < THREADS &&
         time (NULL) - start < limit)
    usleep (10000);
  if (__atomic_load_n (&big_threads_done, __ATOMIC_SEQ_CST) < THREADS) {
    /* Hung: report it and leave; the threads cannot be joined. */
    tap_ok (false, "%d threads x %d blocking 4 MiB writes on one handle "
            "complete within %.0f s", THREADS, BIG_WRITES, limit);
    tap_diag ("%d threads finished, %d commands in flight",
              __atomic_load_n (&big_threads_done, __ATOMIC_SEQ_CST),
              nbd_aio_in_flight (h));
    fflush (stdout);
    _exit (0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join (threads[i], NULL);
    failures += workers[i].failures;
  }
  tap_ok (true, "%d threads x %d blocking 4 MiB writes on one handle "
          "complete within %.0f s (took %ld s)", THREADS, BIG_WRITES, limit,
          (long) (time (NULL) - start));
  tap_ok (failures == 0, "and none failed");
  check_whole_export ("4 MiB writes");
  workers_free (workers);
}

int
main (int argc, char *argv[])
{
  tap_init ();
  if (argc >= 4 && argc <= 5 && strcmp (argv[1], "mixed") == 0)
    test_mixed (argv[2], argv[3],
                argc == 5 ? strtoull (argv[4], NULL, 0) : 1);
  else if (argc == 3 && strcmp (argv[1], "bigwrites") == 0)
    test_bigwrites (argv[2]);
  else {
    fprintf (stderr, "usage: %s mixed SOCKET zero|unknown [SEED]\n"
             "       %s bigwrites SOCKET\n", argv[0], argv[0]);
    exit (EXIT_FAILURE);
  }
  if (nbd_shutdown (h, 0) == -1)
    tap_ok (false, "nbd_shutdown: %s", nbd_get_error ());
  nbd_close (h);
  free (model);
  free (known);
  return 0;
}
