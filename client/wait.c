/* libnbdc: threads waiting on a handle.  One thread at a time polls the
 * socket for replies (the leader, machine.c); the others sleep here, each
 * on its own condition variable, and are woken one by one: a thread when
 * the command it waits for completes, one successor when the leader
 * leaves, and the threads waiting for any progress (nbd_poll) after each
 * round.  No broadcast: with many threads on one handle, a reply wakes
 * only the thread it is for (no thundering herd).
 */

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* Each thread sleeps on its own waiter, made once per thread. */
static __thread struct waiter self;
static __thread bool self_ready;

static int
init_waiter (struct waiter *w)
{
  pthread_condattr_t attr;
  int r;

  if (pthread_condattr_init (&attr) != 0)
    return -1;
  r = pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  if (r == 0)
    r = pthread_cond_init (&w->cond, &attr);
  pthread_condattr_destroy (&attr);
  return r == 0 ? 0 : -1;
}

static void
wake (struct waiter *w)
{
  if (!w->woken) {
    w->woken = true;
    pthread_cond_signal (&w->cond);
  }
}

/* The command completed: wake the thread waiting for it, if one is. */
void
wake_command_waiter (struct command *cmd)
{
  if (cmd->waiter) {
    wake (cmd->waiter);
    cmd->waiter = NULL;
  }
}

/* A round of the leader ended: wake the threads waiting for any progress. */
void
wake_progress_waiters (struct nbd_handle *h)
{
  for (struct waiter *w = h->waiters; w; w = w->next)
    if (w->cmd == NULL)
      wake (w);
}

/* A thread stops polling: if nobody polls for replies now, or a request
 * waits to be sent and nobody polls to send it, wake the thread that has
 * waited longest for a command to take that over (the others follow in
 * turn).  Threads waiting for any progress poll again by themselves.
 * Returns false if the socket needs a thread and none was asleep.
 */
bool
wake_successor (struct nbd_handle *h)
{
  if (h->polling &&
      (h->queue.head == NULL || h->polling_out || h->write_polling))
    return true;
  for (struct waiter *w = h->waiters; w; w = w->next)
    if (w->cmd) {
      wake (w);
      return true;
    }
  return false;
}

/* The connection is gone: every waiting thread must see it. */
void
wake_all_waiters (struct nbd_handle *h)
{
  for (struct waiter *w = h->waiters; w; w = w->next)
    wake (w);
}

/* Sleep until woken or timeout ms pass (< 0: no limit), waiting for cmd
 * to complete or, with cmd NULL, for any progress.  Called with the lock
 * held, which is released while asleep.  Returns 1 if woken, 0 on timeout,
 * -1 if this thread cannot wait (the error is set).
 */
int
wait_for_wakeup (struct nbd_handle *h, struct command *cmd, int timeout)
{
  struct waiter *w = &self;
  struct timespec deadline;
  int r = 0;

  if (!self_ready) {
    if (init_waiter (w) == -1) {
      set_error (ENOMEM, "cannot make a condition variable");
      return -1;
    }
    self_ready = true;
  }
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
  w->woken = false;
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

  while (!w->woken && r == 0) {
    if (timeout < 0)
      pthread_cond_wait (&w->cond, &h->lock);
    else
      r = pthread_cond_timedwait (&w->cond, &h->lock, &deadline);
  }

  if (w->prev)
    w->prev->next = w->next;
  else
    h->waiters = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    h->waiters_tail = w->prev;
  if (cmd && cmd->waiter == w)
    cmd->waiter = NULL;
  return w->woken ? 1 : 0;
}
