/* libnbdc: the driver.  It runs the phases of the connection (connect.c's
 * sockets, handshake.c, then commands.c sending and reply.c reading) as far
 * as they go without blocking, waits on the socket for the blocking calls
 * (poll_once), and fails every command once the connection is gone.
 */

#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

/* How many recv calls one run of the machine may make.  A server that
 * keeps sending (a stream of chunks that never ends a reply, say) cannot
 * hold a call, or the handle lock, for longer than this; what it sent
 * stays in the socket, which polls readable again.
 */
#define RECV_BUDGET 16

/* A dead or closed connection will never answer: fail what is pending. */
static void
settle (struct nbd_handle *h)
{
  if ((h->state == STATE_DEAD || h->state == STATE_CLOSED) &&
      (h->queue.head || h->inflight.head))
    commands_abort_all (h);
}

/* Advance the state machine as far as it goes without blocking.  Returns 0,
 * or -1 if the handle died here (the error is set).
 */
int
run_machine (struct nbd_handle *h)
{
  h->recv_budget = RECV_BUDGET;
  for (;;) {
    enum state before = h->state;

    switch (h->state) {
    case STATE_CONNECTING:
      if (connect_step (h) == -1)
        return -1;              /* no address took the connection */
      break;
    case STATE_HANDSHAKE:
      handshake_step (h);       /* a failure shows as the dead state */
      break;
    case STATE_READY:
      if (commands_send (h) == IO_ERROR)
        set_dead (h, errno, "send: %s", io_error_text (h));
      else
        reply_step (h);         /* likewise, or the closed state */
      break;
    default:
      break;
    }
    settle (h);
    if (h->state == STATE_DEAD)
      return -1;
    if (h->state == before)
      return 0;
  }
}

/* Queue a new command and send it now if the socket is free; nothing is
 * read, so callbacks of other commands never run inside the call that
 * issues a command (as in libnbd), and a caller may hold its own locks
 * around nbd_aio_*.  Returns the cookie.
 */
int64_t
issue_command (struct nbd_handle *h, struct command *cmd)
{
  int64_t cookie = command_submit (h, cmd);

  if (h->queue.len == 1 && h->state == STATE_READY &&
      commands_send (h) == IO_ERROR) {
    set_dead (h, errno, "send: %s", io_error_text (h));
    settle (h);
  }
  return cookie;                /* cmd may be gone: DISC is freed once sent */
}

/* What the state machine waits for. */
unsigned
direction (const struct nbd_handle *h)
{
  switch (h->state) {
  case STATE_CONNECTING:
    return LIBNBD_AIO_DIRECTION_WRITE;
  case STATE_HANDSHAKE:
    return h->ooff < h->olen || h->transport->wants_write (h)
      ? LIBNBD_AIO_DIRECTION_WRITE : LIBNBD_AIO_DIRECTION_READ;
  case STATE_READY:
    /* TLS may have to write (a record it holds, a key update) before a
     * read can go on.
     */
    return LIBNBD_AIO_DIRECTION_READ |
      (h->queue.head || h->transport->wants_write (h)
       ? LIBNBD_AIO_DIRECTION_WRITE : 0);
  default:
    return 0;
  }
}

/* The socket closed under a thread that polled it: the last poller out
 * closes it (close_connection in state.c only shut it down).
 */
static int
poller_saw_end (struct nbd_handle *h)
{
  if (!h->polling && !h->write_polling)
    h->transport->close (h);
  wake_all_waiters (h);
  set_error (ENOTCONN, "the connection %s while waiting",
             h->state == STATE_DEAD ? "died" : "closed");
  return -1;
}

/* poll(2) on the handle's socket without the lock; with wake true, also
 * on h->wakefd, which ends the wait when read (then drained).
 */
static int
poll_unlocked (struct nbd_handle *h, short events, int timeout,
               short *revents, bool wake)
{
  struct pollfd fds[2] = {
    { .fd = h->fd, .events = events },
    { .fd = h->wakefd, .events = POLLIN },
  };
  uint64_t count;
  int r;

  unlock_handle (h);
  do
    r = poll (fds, wake ? 2 : 1, timeout);
  while (r == -1 && errno == EINTR);
  lock_handle (h);
  if (wake && (fds[1].revents & POLLIN) &&
      read (h->wakefd, &count, sizeof count) == -1)
    debug (h, "eventfd read: %m");
  *revents = fds[0].revents;
  return r;
}

/* The leader polls only for replies, but a request is waiting to be sent
 * (its sendmsg hit EAGAIN): poll for POLLOUT alongside the leader and send
 * the rest, so the request never waits for a reply that may not come.
 */
static int
poll_to_send (struct nbd_handle *h, int timeout)
{
  short revents;
  int r;

  /* The leader may leave while this thread polls for POLLOUT only; if no
   * other thread takes over, leave_socket ends this poll through the
   * eventfd, and this thread polls for replies too.
   */
  if (h->wakefd < 0) {
    h->wakefd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->wakefd < 0)
      return wait_for_wakeup (h, NULL, timeout < 0 || timeout > 10
                              ? 10 : timeout);
  }
  h->write_polling = true;
  r = poll_unlocked (h, POLLOUT, timeout, &revents, true);
  h->write_polling = false;
  if (h->state == STATE_DEAD || h->state == STATE_CLOSED)
    return poller_saw_end (h);
  if (r == -1) {
    set_error (errno, "poll: %s", strerror (errno));
    return -1;
  }
  if (r > 0 && (revents & (POLLOUT | POLLERR | POLLHUP)) &&
      h->state == STATE_READY && commands_send (h) == IO_ERROR) {
    set_dead (h, errno, "send: %s", io_error_text (h));
    settle (h);
    return -1;
  }
  return r > 0;
}

/* Wait up to timeout ms for the socket, then advance.  Called with the lock
 * held; drops it while blocked so other threads can queue commands.  One
 * thread at a time polls for replies (the leader) and handles whatever
 * arrives, for every thread; the others sleep (wait.c) until their command
 * completes, or, with cmd NULL, until the leader made progress.  A thread
 * whose request cannot be sent while the leader polls only for replies
 * polls to send it (poll_to_send).
 * Returns 1 if something happened, 0 on timeout, -1 on error.
 */
int
poll_once (struct nbd_handle *h, int timeout, struct command *cmd)
{
  unsigned dir = direction (h);
  short events, revents;
  int r;

  if (dir == 0 || h->fd < 0) {
    set_error (EINVAL, "invalid state: %s: nothing to wait for",
               state_name (h));
    return -1;
  }
  if (h->polling) {
    if ((dir & LIBNBD_AIO_DIRECTION_WRITE) && !h->polling_out &&
        !h->write_polling)
      return poll_to_send (h, timeout);
    return wait_for_wakeup (h, cmd, timeout);
  }
  if (h->transport && h->transport->pending (h))
    r = 1;
  else {
    events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
      (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
    h->polling = true;
    h->polling_out = events & POLLOUT;
    r = poll_unlocked (h, events, tls_poll_timeout (h, timeout), &revents,
                       false);
    h->polling = false;
    if (h->state == STATE_DEAD || h->state == STATE_CLOSED)
      return poller_saw_end (h);
    if (r == -1) {
      set_error (errno, "poll: %s", strerror (errno));
      wake_progress_waiters (h);
      return -1;
    }
  }
  if (r > 0)
    r = run_machine (h) == -1 ? -1 : 1;
  else if (r == 0 && tls_handshake_expired (h)) {
    settle (h);
    r = -1;
  }
  wake_progress_waiters (h);
  return r;
}

/* This thread stops waiting on the handle: if it led, another thread
 * takes over.
 */
void
leave_socket (struct nbd_handle *h)
{
  uint64_t one = 1;

  if (!wake_successor (h) && h->write_polling && !h->polling &&
      write (h->wakefd, &one, sizeof one) == -1)
    debug (h, "eventfd write: %m");
}
