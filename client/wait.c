/* libnbdc: threads waiting on a handle.  One thread at a time polls the
 * socket for replies (the leader, machine.c); the others sleep here and
 * are woken one by one: a thread when the command it waits for completes,
 * one successor when the leader leaves, and the threads waiting for any
 * progress (nbd_poll) after each round.  No broadcast: with many threads
 * on one handle, a reply wakes only the thread it is for (no thundering
 * herd).
 *
 * Three rules keep a wake cheap:
 * - A wake decided under the handle lock is only recorded; the sleepers
 *   are woken once the lock is dropped (unlock_and_wake), so a woken
 *   thread does not run into the lock its waker still holds.
 * - The completing thread retires a blocking call's command for its
 *   waiter and hands it the result (hand_result), so the woken thread
 *   returns without taking the lock again.
 * - All the threads a round woke are woken by one futex call: they sleep
 *   on one word of the handle (h->wake_seq, an event count), each
 *   selecting its wakes by a bit of its own (w->bit, FUTEX_WAIT_BITSET).
 *   Threads that share a bit (more than 32 threads) may wake for nothing,
 *   look at their state and sleep again.
 */

#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

/* Each thread sleeps on its own waiter. */
static __thread struct waiter self;

/* The bit of the next thread that waits. */
static unsigned next_bit;

/* w->state: the waiter ... */
enum {
  WAITER_WAITING,               /* is registered, not yet asleep */
  WAITER_SLEEPING,              /* sleeps on h->wake_seq (needs a wake) */
  WAITER_WOKEN,                 /* must take the lock and look again */
  WAITER_DONE,                  /* has its command's result, no lock */
};

/* Sleep while *word == val, until a wake for one of the bits or the
 * absolute CLOCK_MONOTONIC deadline (NULL: none).  Returns 0, or -1 with
 * errno (ETIMEDOUT, EAGAIN, EINTR).
 */
static int
futex_wait (uint32_t *word, uint32_t val, const struct timespec *deadline,
            uint32_t bits)
{
  return syscall (SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, val, deadline,
                  NULL, bits);
}

/* Wake every thread sleeping on word for one of the bits. */
static void
futex_wake (uint32_t *word, uint32_t bits)
{
  syscall (SYS_futex, word, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL,
           bits);
}

static void
unlink_waiter (struct nbd_handle *h, struct waiter *w)
{
  if (w->prev)
    w->prev->next = w->next;
  else
    h->waiters = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    h->waiters_tail = w->prev;
  w->prev = w->next = NULL;
}

/* End w's wait with state to (WOKEN or DONE).  Called locked, on a waiter
 * still in h->waiters; it leaves the list and, if it sleeps, is woken
 * when the lock is dropped.
 */
static void
wake (struct nbd_handle *h, struct waiter *w, uint32_t to)
{
  uint32_t old = __atomic_exchange_n (&w->state, to, __ATOMIC_RELEASE);

  unlink_waiter (h, w);
  if (to == WAITER_WOKEN && w->cmd) {
    if (w->cmd->waiter == w)
      w->cmd->waiter = NULL;
    h->relockers++;
  }
  if (old == WAITER_SLEEPING)
    h->wake_bits |= w->bit;
}

/* Drop the lock, then wake the threads woken under it.  The event count
 * moves first, so a thread that saw its state unchanged does not go to
 * sleep on the old count after this wake.
 */
void
unlock_and_wake (struct nbd_handle *h)
{
  uint32_t bits = h->wake_bits;

  h->wake_bits = 0;
  __atomic_add_fetch (&h->wake_seq, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&h->lock);
  futex_wake (&h->wake_seq, bits);
}

/* The command completed but cannot be handed over (its completion
 * callback retired it, or another call did): wake the thread waiting for
 * it, if one is, to look again under the lock.
 */
void
wake_command_waiter (struct nbd_handle *h, struct command *cmd)
{
  if (cmd->waiter)
    wake (h, cmd->waiter, WAITER_WOKEN);
}

/* The command of w, a blocking call, completed and was retired: w gets
 * its result, error (0: success) and message (malloc'd or NULL, now w's),
 * and returns without the lock.
 */
void
hand_result (struct nbd_handle *h, struct waiter *w, int error, char *msg)
{
  w->error = error;
  w->error_msg = msg;
  wake (h, w, WAITER_DONE);
}

/* Report the result handed to this thread: 0, or -1 with the error set
 * here, in the thread that waited (errors are thread-local).
 */
int
take_result (void)
{
  int error = self.error;
  char *msg = self.error_msg;

  self.error_msg = NULL;
  if (error)
    set_error (error, "%s", msg ? msg : strerror (error));
  free (msg);
  return error ? -1 : 0;
}

/* A round of the leader ended: wake the threads waiting for any progress. */
void
wake_progress_waiters (struct nbd_handle *h)
{
  struct waiter *w, *next;

  for (w = h->waiters; w; w = next) {
    next = w->next;
    if (w->cmd == NULL)
      wake (h, w, WAITER_WOKEN);
  }
}

/* A thread stops polling: if nobody polls for replies now, or a request
 * waits to be sent and nobody polls to send it, make sure a thread comes
 * to take that over: one on its way into a blocking call (it will poll),
 * one already woken to look again, or else the thread that has waited
 * longest for a command (the others follow in turn).
 * Threads waiting for any progress poll again by themselves.  Returns
 * false if the socket needs a thread and none was asleep.
 */
bool
wake_successor (struct nbd_handle *h)
{
  if (h->polling &&
      (h->queue.head == NULL || h->polling_out || h->write_polling))
    return true;
  if (h->relockers > 0 || __atomic_load_n (&h->entering, __ATOMIC_RELAXED))
    return true;
  for (struct waiter *w = h->waiters; w; w = w->next)
    if (w->cmd) {
      wake (h, w, WAITER_WOKEN);
      return true;
    }
  return false;
}

/* The connection is gone: every waiting thread must see it. */
void
wake_all_waiters (struct nbd_handle *h)
{
  while (h->waiters)
    wake (h, h->waiters, WAITER_WOKEN);
}

/* Sleep until woken or timeout ms pass (< 0: no limit), waiting for cmd
 * to complete or, with cmd NULL, for any progress.  Called with the lock
 * held, which is released while asleep.  Returns 1 if woken, 0 on timeout
 * (locked again in both cases), or 2 if cmd completed and its result was
 * handed to this thread (take_result): then the lock is not held.
 */
int
wait_for_wakeup (struct nbd_handle *h, struct command *cmd, int timeout)
{
  struct waiter *w = &self;
  struct timespec deadline;
  uint32_t seq, state;

  if (w->bit == 0)
    w->bit = 1u << (__atomic_fetch_add (&next_bit, 1, __ATOMIC_RELAXED) % 32);
  if (timeout >= 0) {
    clock_gettime (CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout / 1000;
    deadline.tv_nsec += (timeout % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  w->cmd = cmd;
  __atomic_store_n (&w->state, WAITER_WAITING, __ATOMIC_RELAXED);
  if (cmd)
    cmd->waiter = w;
  /* Append: the longest waiting thread is the next leader. */
  w->next = NULL;
  w->prev = h->waiters_tail;
  if (h->waiters_tail)
    h->waiters_tail->next = w;
  else
    h->waiters = w;
  h->waiters_tail = w;
  unlock_handle (h);

  for (;;) {
    /* The count before the state: a wake after this read moves it. */
    seq = __atomic_load_n (&h->wake_seq, __ATOMIC_ACQUIRE);
    state = __atomic_load_n (&w->state, __ATOMIC_ACQUIRE);
    if (state == WAITER_WAITING) {
      /* Tell wakers a futex wake is needed from now on. */
      __atomic_compare_exchange_n (&w->state, &state, WAITER_SLEEPING,
                                   false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE);
      continue;
    }
    if (state != WAITER_SLEEPING)
      break;
    if (futex_wait (&h->wake_seq, seq, timeout >= 0 ? &deadline : NULL,
                    w->bit) == -1 &&
        errno == ETIMEDOUT)
      break;
  }
  if (state == WAITER_DONE)
    return 2;

  lock_handle (h);
  state = __atomic_load_n (&w->state, __ATOMIC_ACQUIRE);
  switch (state) {
  case WAITER_DONE:             /* handed over while this timed out */
    unlock_handle (h);
    return 2;
  case WAITER_WOKEN:
    if (cmd)
      h->relockers--;
    return 1;
  default:                      /* timed out */
    unlink_waiter (h, w);
    if (cmd && cmd->waiter == w)
      cmd->waiter = NULL;
    return 0;
  }
}
