/* api-threads: one handle shared by several threads, each issuing blocking
 * reads (nbd_pread) and aio reads completed by its own nbd_poll loop, as
 * libnbd allows (the handle has its own lock).  Every read returns the
 * right data and no thread waits forever for a reply another thread read.
 *
 * libnbd 1.14 fails this: a thread can go to sleep in poll(2) after
 * another thread took its reply off the socket, and hang (in about a third
 * of the rounds here).  libnbdc lets one thread at a time wait on the
 * socket; the others wait for it to make progress.  A hang shows as the
 * test's timeout.
 *
 * Usage: api-threads SOCKET (nbdkit pattern).
 */

#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#define ROUNDS 10
#define THREADS 4
#define READS_PER_THREAD 200

static struct nbd_handle *h;
static int64_t size;

struct worker {
  int id;
  unsigned bad_data, failures;
};

static bool
check_pattern (const char *buf, uint64_t offset, size_t count)
{
  for (size_t i = 0; i + 8 <= count; i += 8) {
    uint64_t v;

    memcpy (&v, buf + i, 8);
    if (be64toh (v) != offset + i)
      return false;
  }
  return true;
}

static void *
run (void *arg)
{
  struct worker *w = arg;
  char buf[8192];
  unsigned seed = w->id * 7919 + 1;

  for (int i = 0; i < READS_PER_THREAD; i++) {
    uint64_t offset = (rand_r (&seed) % (size / 8192)) * 8192;

    if (i % 2 == 0) {
      if (nbd_pread (h, buf, sizeof buf, offset, 0) == -1) {
        fprintf (stderr, "thread %d: nbd_pread: %s\n", w->id,
                 nbd_get_error ());
        w->failures++;
        continue;
      }
    }
    else {
      int64_t cookie = nbd_aio_pread (h, buf, sizeof buf, offset,
                                      NBD_NULL_COMPLETION, 0);
      int r;

      if (cookie == -1) {
        w->failures++;
        continue;
      }
      while ((r = nbd_aio_command_completed (h, cookie)) == 0)
        if (nbd_poll (h, -1) == -1)
          break;
      if (r != 1) {
        fprintf (stderr, "thread %d: aio read: %s\n", w->id,
                 nbd_get_error ());
        w->failures++;
        continue;
      }
    }
    if (!check_pattern (buf, offset, sizeof buf))
      w->bad_data++;
  }
  return NULL;
}

int
main (int argc, char *argv[])
{
  pthread_t threads[THREADS];
  struct worker workers[THREADS];
  unsigned bad = 0, failures = 0;

  if (argc != 2) {
    fprintf (stderr, "usage: %s SOCKET\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  for (int round = 0; round < ROUNDS; round++) {
    h = nbd_create ();
    if (h == NULL || nbd_connect_unix (h, argv[1]) == -1) {
      printf ("not ok - connect: %s\n", nbd_get_error ());
      return 0;
    }
    size = nbd_get_size (h);
    for (int i = 0; i < THREADS; i++) {
      workers[i] = (struct worker) { .id = round * THREADS + i };
      pthread_create (&threads[i], NULL, run, &workers[i]);
    }
    for (int i = 0; i < THREADS; i++) {
      pthread_join (threads[i], NULL);
      bad += workers[i].bad_data;
      failures += workers[i].failures;
    }
    if (nbd_aio_in_flight (h) != 0)
      failures++;
    nbd_shutdown (h, 0);
    nbd_close (h);
  }
  printf ("%s - %d rounds of %d threads x %d reads on one handle: all "
          "finished, none failed\n", failures ? "not ok" : "ok", ROUNDS,
          THREADS, READS_PER_THREAD);
  printf ("%s - every read returned the pattern\n", bad ? "not ok" : "ok");
  return 0;
}
