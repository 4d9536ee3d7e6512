/* nbd-proxy tests: a steady stream of requests allocates nothing.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * nbd-proxy forwards every host request through libnbdc, so the library's
 * request path is the proxy's hot path.  This program counts the calls to
 * malloc, calloc and realloc (it defines them, over glibc's) while one
 * handle runs many requests of every kind, blocking and aio, from one
 * thread and from four: after a warm-up the count must stay 0.  libnbdc
 * only (libnbd allocates per command); skipped under valgrind and the
 * sanitizers, which bring their own malloc (and under which libnbdc does
 * not reuse commands, so that they see every use after free).
 *
 * Usage: api-alloc SOCKET (an nbdkit memory export of 64 MiB)
 */

#include <config.h>

#include <pthread.h>
#include <stdatomic.h>

#include "api-tap.h"

/* AddressSanitizer: GCC says __SANITIZE_ADDRESS__, clang __has_feature. */
#if defined (__SANITIZE_ADDRESS__)
#define WITH_ASAN 1
#elif defined (__has_feature)
#if __has_feature (address_sanitizer)
#define WITH_ASAN 1
#endif
#endif

#if defined (WITH_ASAN)
#define UNDER_CHECKER() true
#elif defined (__has_include)
#if __has_include (<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_CHECKER() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_CHECKER
#define UNDER_CHECKER() false
#endif

static atomic_bool counting;
static atomic_ulong allocations;

/* AddressSanitizer replaces malloc itself, before main: defining it here
 * too breaks its start-up.
 */
#ifndef WITH_ASAN
extern void *__libc_malloc (size_t);
extern void *__libc_calloc (size_t, size_t);
extern void *__libc_realloc (void *, size_t);

void *
malloc (size_t n)
{
  if (atomic_load_explicit (&counting, memory_order_relaxed))
    atomic_fetch_add (&allocations, 1);
  return __libc_malloc (n);
}

void *
calloc (size_t n, size_t size)
{
  if (atomic_load_explicit (&counting, memory_order_relaxed))
    atomic_fetch_add (&allocations, 1);
  return __libc_calloc (n, size);
}

void *
realloc (void *p, size_t n)
{
  if (atomic_load_explicit (&counting, memory_order_relaxed))
    atomic_fetch_add (&allocations, 1);
  return __libc_realloc (p, n);
}
#endif

#define BLOCK 4096
#define EXPORT (64 * 1024 * 1024)

static int
chunk (void *user_data, const void *subbuf, size_t count, uint64_t offset,
       unsigned status, int *error)
{
  return 0;
}

static int
extent (void *user_data, const char *metacontext, uint64_t offset,
        uint32_t *entries, size_t nr_entries, int *error)
{
  return 0;
}

/* One round of every request kind; false if one failed. */
static bool
round_of_requests (struct nbd_handle *h, char *buf, unsigned i)
{
  uint64_t off = (uint64_t) (i * 7919 % (EXPORT / BLOCK)) * BLOCK;
  int64_t cookies[8];
  int n = 0;

  if (nbd_pwrite (h, buf, BLOCK, off, 0) == -1 ||
      nbd_pread (h, buf, BLOCK, off, 0) == -1 ||
      nbd_pread_structured (h, buf, BLOCK, off,
                            (nbd_chunk_callback) { .callback = chunk },
                            0) == -1 ||
      nbd_zero (h, BLOCK, off, 0) == -1 ||
      nbd_trim (h, BLOCK, off, 0) == -1 ||
      nbd_block_status (h, 16 * BLOCK, off,
                        (nbd_extent_callback) { .callback = extent },
                        0) == -1 ||
      nbd_flush (h, 0) == -1)
    return false;
  /* Several in flight at once, with the aio calls. */
  while (n < 8) {
    int64_t c = nbd_aio_pread (h, buf + n * BLOCK, BLOCK,
                               off + n * BLOCK, NBD_NULL_COMPLETION, 0);
    if (c == -1)
      return false;
    cookies[n++] = c;
  }
  for (int j = 0; j < n; j++) {
    int r;

    while ((r = nbd_aio_command_completed (h, cookies[j])) == 0)
      if (nbd_poll (h, -1) == -1)
        return false;
    if (r == -1)
      return false;
  }
  return true;
}

struct worker {
  struct nbd_handle *h;
  char buf[8 * BLOCK];
  unsigned first, rounds;
  bool ok;
};

static void *
work (void *arg)
{
  struct worker *w = arg;

  w->ok = true;
  for (unsigned i = 0; i < w->rounds && w->ok; i++) {
    uint64_t off = (uint64_t) ((w->first + i) * 7919 % (EXPORT / BLOCK))
      * BLOCK;
    w->ok = nbd_pread (w->h, w->buf, BLOCK, off, 0) != -1 &&
      nbd_pwrite (w->h, w->buf, BLOCK, off, 0) != -1;
  }
  return NULL;
}

/* nthreads threads doing rounds blocking reads and writes each. */
static bool
threads (struct nbd_handle *h, unsigned nthreads, unsigned rounds)
{
  static struct worker workers[4];
  pthread_t tids[4];
  bool ok = true;

  for (unsigned t = 0; t < nthreads; t++) {
    workers[t].h = h;
    workers[t].first = t * 100003;
    workers[t].rounds = rounds;
    if (pthread_create (&tids[t], NULL, work, &workers[t]) != 0)
      tap_bail ("pthread_create");
  }
  for (unsigned t = 0; t < nthreads; t++) {
    pthread_join (tids[t], NULL);
    ok &= workers[t].ok;
  }
  return ok;
}

int
main (int argc, char *argv[])
{
  static char buf[8 * BLOCK];
  struct nbd_handle *h;
  unsigned long n;
  bool ok = true;

  tap_init ();
  if (argc != 2) {
    fprintf (stderr, "usage: %s SOCKET\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  if (UNDER_CHECKER ()) {
    tap_skip ("valgrind or a sanitizer owns malloc here",
              "requests allocate nothing");
    return 0;
  }
  h = tap_create ();
  if (nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
      nbd_connect_unix (h, argv[1]) == -1)
    tap_bail ("connect: %s", nbd_get_error ());

  /* Warm-up: buffers grow to their size, spare commands are made. */
  for (unsigned i = 0; i < 100 && ok; i++)
    ok = round_of_requests (h, buf, i);
  tap_ok (ok, "warm-up: every request succeeds");

  atomic_store (&allocations, 0);
  atomic_store (&counting, true);
  for (unsigned i = 100; i < 1100 && ok; i++)
    ok = round_of_requests (h, buf, i);
  atomic_store (&counting, false);
  n = atomic_load (&allocations);
  tap_ok (ok, "1000 rounds of 15 requests of every kind succeed");
  if (!tap_ok (n == 0, "one thread, blocking and aio: no allocation "
               "(%lu seen)", n))
    tap_diag ("malloc, calloc or realloc was called on the request path");

  /* Threads taking turns on the socket (leader and followers). */
  ok = threads (h, 4, 200);
  tap_ok (ok, "warm-up with 4 threads succeeds");
  atomic_store (&allocations, 0);
  atomic_store (&counting, true);
  ok = threads (h, 4, 2000);
  atomic_store (&counting, false);
  n = atomic_load (&allocations);
  tap_ok (ok, "4 threads x 2000 reads and writes succeed");
  /* pthread_create allocates the threads' stacks and TLS itself. */
  tap_ok (n <= 4 * 4, "4 threads sharing the handle: no allocation per "
          "request (%lu seen for 16000 requests, threads included)", n);

  nbd_shutdown (h, 0);
  nbd_close (h);
  return tap_failures ? 1 : 0;
}
