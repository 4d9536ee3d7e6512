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
 * Then a handle dies while another thread waits on it: thread A waits in
 * a blocking nbd_pread (or in its own nbd_poll loop) for a read that
 * nbdkit --filter=delay holds for 10 s; the main thread kills the server
 * (kill -9).  Thread A must return with an error within a few seconds.
 *
 * And while thread A leads (waits on the socket for its read, which a
 * server delays by 2 s), a follower's nbd_poll keeps its own timeout, and
 * a send that fails in another thread kills the handle and wakes A.
 * A follower gets its own result and error; 40 threads share a handle.
 *
 * Usage: api-threads SOCKET [DLYSOCK1 DLYPID1 DLYSOCK2 DLYPID2 DLYSOCK3]
 * (nbdkit pattern; two nbdkit --filter=delay pattern 1M delay-read=10,
 * each killed by this test; one nbdkit sh that holds each read 2 s).
 */

#include <config.h>

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <libnbd.h>

#include "api-tap.h"

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
      /* Another thread's nbd_poll may complete this command between the
       * check and this thread's nbd_poll, and then nothing more may come:
       * threads that share a handle poll with a timeout and check again.
       */
      while ((r = nbd_aio_command_completed (h, cookie)) == 0)
        if (nbd_poll (h, 100) == -1)
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

/* The thread waiting on a handle whose server dies. */
struct waiter {
  struct nbd_handle *h;
  bool use_poll;
  int result;
  char error[256];
  volatile bool done;
};

static void *
wait_on_dying (void *arg)
{
  struct waiter *w = arg;
  static char buf[512];
  const char *msg;

  if (!w->use_poll)
    w->result = nbd_pread (w->h, buf, sizeof buf, 0, 0);
  else {
    int64_t cookie = nbd_aio_pread (w->h, buf, sizeof buf, 0,
                                    NBD_NULL_COMPLETION, 0);
    int r = -1;

    if (cookie >= 1)
      while ((r = nbd_aio_command_completed (w->h, cookie)) == 0)
        if (nbd_poll (w->h, -1) == -1) {
          r = nbd_aio_command_completed (w->h, cookie);
          if (r == 0)
            r = -2;
          break;
        }
    w->result = r;
  }
  msg = nbd_get_error ();
  snprintf (w->error, sizeof w->error, "%s", msg ? msg : "");
  __atomic_store_n (&w->done, true, __ATOMIC_SEQ_CST);
  return NULL;
}


/* libnbd(3): when a handle dies its in-flight commands fail; a thread
 * blocked on it must wake up, not wait for the server's 10 s delay.
 */
static void
test_dying_handle (const char *sock, const char *pidfile, bool use_poll)
{
  const char *how = use_poll ? "an nbd_poll loop" : "a blocking nbd_pread";
  struct waiter w = { .use_poll = use_poll };
  pthread_t thread;
  pid_t pid;
  time_t start;

  w.h = nbd_create ();
  if (w.h == NULL || nbd_connect_unix (w.h, sock) == -1) {
    printf ("not ok - %s: connect: %s\n", how, nbd_get_error ());
    return;
  }
  pthread_create (&thread, NULL, wait_on_dying, &w);
  usleep (500000);              /* thread A is now waiting for the reply */
  pid = read_pidfile (pidfile);
  if (pid <= 1 || kill (pid, SIGKILL) == -1) {
    printf ("not ok - %s: kill -9 the server (pid file %s)\n", how,
            pidfile);
    return;
  }
  start = time (NULL);
  while (!__atomic_load_n (&w.done, __ATOMIC_SEQ_CST) &&
         time (NULL) - start < 5)
    usleep (10000);
  if (!__atomic_load_n (&w.done, __ATOMIC_SEQ_CST)) {
    /* Thread A hangs: report it and leave; it cannot be joined. */
    printf ("not ok - a thread waiting in %s returns within 5 s when the "
            "server is killed\n", how);
    fflush (stdout);
    _exit (0);
  }
  pthread_join (thread, NULL);
  printf ("ok - a thread waiting in %s returns within 5 s when the server "
          "is killed\n", how);
  printf ("%s - and its read failed\n", w.result == -1 ? "ok" : "not ok");
  if (w.result != -1)
    printf ("# result %d\n", w.result);
  else
    printf ("# error: %s\n", w.error);
  nbd_close (w.h);
}

/* Bounds of time are multiplied by $NBDC_SLOWDOWN (10 under valgrind). */
static double
slowdown (void)
{
  const char *s = getenv ("NBDC_SLOWDOWN");

  return s && atoi (s) > 0 ? atoi (s) : 1;
}

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Thread A reads through a server that holds every read for 2 s. */
static struct waiter *
start_leader (const char *sock, pthread_t *thread)
{
  static struct waiter w;

  w = (struct waiter) { .use_poll = false };
  w.h = nbd_create ();
  if (w.h == NULL || nbd_connect_unix (w.h, sock) == -1) {
    printf ("not ok - connect %s: %s\n", sock, nbd_get_error ());
    return NULL;
  }
  pthread_create (thread, NULL, wait_on_dying, &w);
  usleep (300000);              /* A now leads: it waits on the socket */
  return &w;
}

/* nbd_poll(3): a timeout bounds the wait.  A thread that is not the one
 * waiting on the socket waits for that thread, and still only as long as
 * its timeout says.
 */
static void
test_follower_timeout (const char *sock)
{
  pthread_t thread;
  struct waiter *w = start_leader (sock, &thread);
  double start;
  int r;

  if (w == NULL)
    return;
  start = now ();
  r = nbd_poll (w->h, 100);
  printf ("%s - nbd_poll (h, 100) while another thread waits on the "
          "socket returns 0 within 1 s\n",
          r == 0 && now () - start < slowdown () ? "ok" : "not ok");
  printf ("# returned %d after %.3f s\n", r, now () - start);
  pthread_join (thread, NULL);
  printf ("%s - and the other thread's read succeeds\n",
          w->result == 0 ? "ok" : "not ok");
  nbd_close (w->h);
}

/* A send that fails in one thread kills the handle; the thread waiting on
 * the socket wakes up at once and fails its read with the rest.  (The
 * socket's write side is shut down to make the send fail.)
 */
static void
test_send_fails_while_polling (const char *sock)
{
  pthread_t thread;
  struct waiter *w = start_leader (sock, &thread);
  static char buf[512];
  double start;

  if (w == NULL)
    return;
  start = now ();
  shutdown (nbd_aio_get_fd (w->h), SHUT_WR);
  nbd_aio_pread (w->h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0);
  pthread_join (thread, NULL);
  printf ("%s - a failed send in another thread wakes the waiting thread "
          "within 1 s\n", now () - start < slowdown () ? "ok" : "not ok");
  printf ("%s - its read fails and the handle is dead\n",
          w->result == -1 && nbd_aio_is_dead (w->h) ? "ok" : "not ok");
  printf ("# result %d, error: %s\n", w->result, w->error);
  nbd_close (w->h);
}

/* A thread whose write the socket takes only in part, while another thread
 * polls for replies, polls to send it; if that other thread then leaves
 * with nobody to take over, the writing thread must start reading replies
 * itself: a server blocked on a reply nobody reads never reads the rest of
 * the write.  The server ("nbdkit -t 1 --filter=delay memory delay-read=2")
 * handles one request at a time: the leader's small read (2 s), then an
 * 8 MiB read no thread waits for (2 s, then its reply fills the socket),
 * then the 8 MiB write.
 */
struct orphan {
  struct nbd_handle *h;
  uint64_t offset;
  int result;
  bool done;
};

static void *
small_read (void *arg)
{
  struct orphan *o = arg;
  static char buf[512];

  o->result = nbd_pread (o->h, buf, sizeof buf, 0, 0);
  return NULL;
}

static void *
big_write (void *arg)
{
  struct orphan *o = arg;
  static char buf[8 << 20];

  memset (buf, 0x5a, sizeof buf);
  o->result = nbd_pwrite (o->h, buf, sizeof buf, 16 << 20, 0);
  __atomic_store_n (&o->done, true, __ATOMIC_SEQ_CST);
  return NULL;
}

static void
test_orphaned_writer (const char *sock)
{
  struct nbd_handle *handle = nbd_create ();
  static char big[8 << 20];
  struct orphan leader = { 0 }, writer = { 0 };
  pthread_t tl, tw;
  int64_t cookie;
  double start;

  if (handle == NULL || nbd_connect_unix (handle, sock) == -1) {
    printf ("not ok - connect %s: %s\n", sock, nbd_get_error ());
    return;
  }
  leader.h = writer.h = handle;
  pthread_create (&tl, NULL, small_read, &leader);
  usleep (200000);              /* the leader polls for its reply */
  cookie = nbd_aio_pread (handle, big, sizeof big, 0, NBD_NULL_COMPLETION,
                          0);
  pthread_create (&tw, NULL, big_write, &writer);
  start = now ();
  while (!__atomic_load_n (&writer.done, __ATOMIC_SEQ_CST) &&
         now () - start < 30 * slowdown ())
    usleep (10000);
  printf ("%s - a partly sent write goes out after the thread polling for "
          "replies left (within %.0f s)\n",
          writer.done ? "ok" : "not ok", 30 * slowdown ());
  if (!writer.done)             /* unstick it: the handle dies */
    shutdown (nbd_aio_get_fd (handle), SHUT_RDWR);
  pthread_join (tw, NULL);
  pthread_join (tl, NULL);
  printf ("%s - the leader's read, the write and the unwaited read "
          "succeed\n", leader.result == 0 && writer.result == 0 &&
          nbd_aio_command_completed (handle, cookie) == 1 ? "ok" : "not ok");
  nbd_close (handle);
}

/* A thread waiting for its command sleeps until that command completes,
 * not until the thread polling the socket leaves: the server
 * (slow-at-0.sh) holds reads at offset 0 for 2 s and answers others at
 * once.  The leader reads offset 0; a second thread's read of offset 4096
 * completes while the leader still waits, and must return then.
 */
static void *
read_at (void *arg)
{
  struct orphan *o = arg;
  char buf[512];

  o->result = nbd_pread (o->h, buf, sizeof buf, o->offset, 0);
  __atomic_store_n (&o->done, true, __ATOMIC_SEQ_CST);
  return NULL;
}

static void
test_follower_woken_by_its_reply (const char *sock)
{
  struct nbd_handle *handle = nbd_create ();
  struct orphan leader = { .offset = 0 }, follower = { .offset = 4096 };
  pthread_t tl, tf;
  double start, took = -1;

  if (handle == NULL || nbd_connect_unix (handle, sock) == -1) {
    printf ("not ok - connect %s: %s\n", sock, nbd_get_error ());
    return;
  }
  leader.h = follower.h = handle;
  pthread_create (&tl, NULL, read_at, &leader);
  usleep (200000);              /* the leader polls for its reply */
  start = now ();
  pthread_create (&tf, NULL, read_at, &follower);
  while (!__atomic_load_n (&follower.done, __ATOMIC_SEQ_CST) &&
         now () - start < 10 * slowdown ())
    usleep (1000);
  took = now () - start;
  printf ("%s - a thread whose reply the polling thread read returns at "
          "once, not when that thread leaves\n",
          follower.done && took < 1.5 * slowdown () &&
          !__atomic_load_n (&leader.done, __ATOMIC_SEQ_CST)
          ? "ok" : "not ok");
  printf ("# follower returned after %.3f s\n", took);
  pthread_join (tf, NULL);
  pthread_join (tl, NULL);
  printf ("%s - both reads succeed\n",
          leader.result == 0 && follower.result == 0 ? "ok" : "not ok");
  nbd_close (handle);
}

/* A blocking call whose command another thread completed reports that
 * command's own result, in its own thread (nbd_get_errno(3) and
 * nbd_get_error(3) are thread-local), and the .free of its callback has
 * run, once, when it returns.  The server (slow-at-0.sh) holds reads at
 * offset 0 for 2 s and fails reads at offset 8192 with EIO: the leader
 * reads offset 0, the main thread reads offset 8192 meanwhile.
 */
static unsigned chunk_frees;

static int
ignore_chunk (void *user_data, const void *subbuf, size_t count,
              uint64_t offset, unsigned status, int *error)
{
  return 0;
}

static void
count_free (void *user_data)
{
  __atomic_add_fetch (&chunk_frees, 1, __ATOMIC_SEQ_CST);
}

static void
test_follower_gets_its_error (const char *sock)
{
  struct nbd_handle *handle = nbd_create ();
  struct orphan leader = { .offset = 0 };
  pthread_t tl;
  char buf[512];
  const char *msg;
  int r, errnum;
  bool leader_done;

  if (handle == NULL || nbd_connect_unix (handle, sock) == -1) {
    printf ("not ok - connect %s: %s\n", sock, nbd_get_error ());
    return;
  }
  leader.h = handle;
  pthread_create (&tl, NULL, read_at, &leader);
  usleep (200000);              /* the leader polls for its reply */
  r = nbd_pread_structured (handle, buf, sizeof buf, 8192,
                            (nbd_chunk_callback) {
                              .callback = ignore_chunk,
                              .free = count_free },
                            0);
  errnum = nbd_get_errno ();
  msg = nbd_get_error ();
  leader_done = __atomic_load_n (&leader.done, __ATOMIC_SEQ_CST);
  printf ("%s - a follower's read that the server failed returns -1 with "
          "EIO while the leader still waits\n",
          r == -1 && errnum == EIO && !leader_done ? "ok" : "not ok");
  printf ("# returned %d, errno %d, leader done: %d\n", r, errnum,
          leader_done);
  printf ("%s - and nbd_get_error in its thread names its call\n",
          msg && strncmp (msg, "nbd_pread_structured: ", 22) == 0
          ? "ok" : "not ok");
  printf ("# error: %s\n", msg ? msg : "(none)");
  printf ("%s - and its chunk callback's .free ran once before it "
          "returned\n", chunk_frees == 1 ? "ok" : "not ok");
  pthread_join (tl, NULL);
  printf ("%s - the leader's read succeeds\n",
          leader.result == 0 ? "ok" : "not ok");
  nbd_close (handle);
}

/* More threads on one handle than a futex bitset has bits (libnbdc's
 * waiters share them beyond 32): every blocking read still returns its
 * own data, none hangs.
 */
#define MANY_THREADS 40
#define MANY_READS 50

static void *
run_blocking (void *arg)
{
  struct worker *w = arg;
  char buf[4096];
  unsigned seed = w->id * 7919 + 1;

  for (int i = 0; i < MANY_READS; i++) {
    uint64_t offset = (rand_r (&seed) % (size / sizeof buf)) * sizeof buf;

    if (nbd_pread (h, buf, sizeof buf, offset, 0) == -1) {
      fprintf (stderr, "thread %d: nbd_pread: %s\n", w->id,
               nbd_get_error ());
      w->failures++;
    }
    else if (!check_pattern (buf, offset, sizeof buf))
      w->bad_data++;
  }
  return NULL;
}

static void
test_many_threads (const char *sock)
{
  static pthread_t threads[MANY_THREADS];
  static struct worker workers[MANY_THREADS];
  unsigned bad = 0, failures = 0;

  h = nbd_create ();
  if (h == NULL || nbd_connect_unix (h, sock) == -1) {
    printf ("not ok - connect: %s\n", nbd_get_error ());
    return;
  }
  size = nbd_get_size (h);
  for (int i = 0; i < MANY_THREADS; i++) {
    workers[i] = (struct worker) { .id = i };
    pthread_create (&threads[i], NULL, run_blocking, &workers[i]);
  }
  for (int i = 0; i < MANY_THREADS; i++) {
    pthread_join (threads[i], NULL);
    bad += workers[i].bad_data;
    failures += workers[i].failures;
  }
  printf ("%s - %d threads x %d blocking reads on one handle: all "
          "finished, none failed, all data right\n",
          failures == 0 && bad == 0 ? "ok" : "not ok", MANY_THREADS,
          MANY_READS);
  nbd_shutdown (h, 0);
  nbd_close (h);
}

int
main (int argc, char *argv[])
{
  pthread_t threads[THREADS];
  struct worker workers[THREADS];
  unsigned bad = 0, failures = 0;

  setvbuf (stdout, NULL, _IOLBF, 0);
  if (argc != 2 && argc != 9) {
    fprintf (stderr, "usage: %s SOCKET [DLYSOCK1 DLYPID1 DLYSOCK2 "
             "DLYPID2 DLYSOCK3 ONESOCK SLOW0SOCK]\n", argv[0]);
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
  test_many_threads (argv[1]);
  if (argc == 9) {
    test_dying_handle (argv[2], argv[3], false);
    test_dying_handle (argv[4], argv[5], true);
    test_follower_timeout (argv[6]);
    test_send_fails_while_polling (argv[6]);
    test_orphaned_writer (argv[7]);
    test_follower_woken_by_its_reply (argv[8]);
    test_follower_gets_its_error (argv[8]);
  }
  return 0;
}
