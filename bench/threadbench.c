/* threadbench: many threads sharing one handle, against one thread keeping
 * as many commands in flight.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: threadbench URI MODE N SECONDS [BLOCKSIZE]
 *
 *   MODE threads  N threads each call nbd_pread(3) in a loop on one shared
 *                 handle (how an nbdkit plugin's worker threads use an
 *                 upstream handle: the library's waiting threads take turns
 *                 at the socket)
 *   MODE aio      one thread keeps N nbd_aio_pread(3) in flight with
 *                 nbd_poll(3)
 *
 * Random aligned reads of BLOCKSIZE (default 4096) bytes.  Written to the
 * libnbd API, built against libnbd and libnbdc.  Prints one line:
 *   library=... mode=... n=... ops=... seconds=... iops=... cpu_us_per_op=...
 */

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <libnbd.h>

#ifdef LIBNBDC
#define LIBRARY_NAME "libnbdc"
#else
#define LIBRARY_NAME "libnbd"
#endif

#define MAX_N 256

static struct nbd_handle *h;
static uint64_t blocks;
static size_t block_size = 4096;
static atomic_bool stop;
static atomic_uint_fast64_t ops;

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* xorshift64*: a cheap per-thread random offset. */
static uint64_t
next_offset (uint64_t *state)
{
  uint64_t x = *state;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return (x * UINT64_C (2685821657736338717)) % blocks * block_size;
}

static void *
reader (void *arg)
{
  uint64_t state = (uintptr_t) arg * 7919 + 1;
  char *buf = malloc (block_size);

  if (buf == NULL)
    abort ();
  while (!atomic_load (&stop)) {
    if (nbd_pread (h, buf, block_size, next_offset (&state), 0) == -1) {
      fprintf (stderr, "nbd_pread: %s\n", nbd_get_error ());
      exit (EXIT_FAILURE);
    }
    atomic_fetch_add (&ops, 1);
  }
  free (buf);
  return NULL;
}

struct slot {
  char *buf;
  uint64_t *state;
};

static int
done_cb (void *user_data, int *error)
{
  if (*error) {
    fprintf (stderr, "read failed: %s\n", strerror (*error));
    exit (EXIT_FAILURE);
  }
  atomic_fetch_add (&ops, 1);
  return 1;                     /* retire */
}

static void
issue (struct slot *s)
{
  if (nbd_aio_pread (h, s->buf, block_size, next_offset (s->state),
                     (nbd_completion_callback) { .callback = done_cb },
                     0) == -1) {
    fprintf (stderr, "nbd_aio_pread: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
}

static void
run_aio (unsigned n, double seconds)
{
  static struct slot slots[MAX_N];
  uint64_t state = 1;
  double end = now () + seconds;

  for (unsigned i = 0; i < n; i++) {
    slots[i].buf = malloc (block_size);
    slots[i].state = &state;
    issue (&slots[i]);
  }
  /* Keep n in flight: each completion is replaced by a new read. */
  while (now () < end) {
    int in_flight;

    if (nbd_poll (h, -1) == -1) {
      fprintf (stderr, "nbd_poll: %s\n", nbd_get_error ());
      exit (EXIT_FAILURE);
    }
    in_flight = nbd_aio_in_flight (h);
    for (int i = in_flight; i < (int) n; i++)
      issue (&slots[i]);
  }
  while (nbd_aio_in_flight (h) > 0)
    nbd_poll (h, -1);
  for (unsigned i = 0; i < n; i++)
    free (slots[i].buf);
}

int
main (int argc, char *argv[])
{
  static pthread_t tids[MAX_N];
  const char *mode;
  unsigned n;
  double seconds, t0, c0, t1, c1;
  int64_t size;

  if (argc < 5 || argc > 6) {
    fprintf (stderr, "usage: %s URI threads|aio N SECONDS [BLOCKSIZE]\n",
             argv[0]);
    exit (EXIT_FAILURE);
  }
  mode = argv[2];
  n = atoi (argv[3]);
  seconds = atof (argv[4]);
  if (argc == 6)
    block_size = strtoull (argv[5], NULL, 0);
  if (n < 1 || n > MAX_N || seconds <= 0 || block_size == 0) {
    fprintf (stderr, "%s: bad arguments\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  h = nbd_create ();
  if (h == NULL || nbd_connect_uri (h, argv[1]) == -1) {
    fprintf (stderr, "%s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  nbd_set_pread_initialize (h, false);
  size = nbd_get_size (h);
  blocks = size / block_size;
  if (blocks == 0) {
    fprintf (stderr, "%s: export too small\n", argv[0]);
    exit (EXIT_FAILURE);
  }

  t0 = now ();
  c0 = cpu_seconds ();
  if (strcmp (mode, "threads") == 0) {
    for (unsigned i = 0; i < n; i++)
      pthread_create (&tids[i], NULL, reader, (void *) (uintptr_t) i);
    while (now () - t0 < seconds) {
      struct timespec ts = { 0, 10000000 };
      nanosleep (&ts, NULL);
    }
    atomic_store (&stop, true);
    for (unsigned i = 0; i < n; i++)
      pthread_join (tids[i], NULL);
  }
  else if (strcmp (mode, "aio") == 0)
    run_aio (n, seconds);
  else {
    fprintf (stderr, "%s: unknown mode %s\n", argv[0], mode);
    exit (EXIT_FAILURE);
  }
  t1 = now ();
  c1 = cpu_seconds ();
  printf ("library=%s mode=%s n=%u ops=%" PRIu64 " seconds=%.3f iops=%.0f "
          "cpu_us_per_op=%.2f\n", LIBRARY_NAME, mode, n,
          (uint64_t) atomic_load (&ops), t1 - t0,
          atomic_load (&ops) / (t1 - t0),
          (c1 - c0) * 1e6 / (atomic_load (&ops) ? atomic_load (&ops) : 1));
  nbd_shutdown (h, 0);
  nbd_close (h);
  return EXIT_SUCCESS;
}
