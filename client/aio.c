/* libnbdc: the state machine driver and the nbd_aio_* entry points.  The
 * library starts no threads: a host event loop drives a handle with
 * nbd_aio_get_fd, nbd_aio_get_direction and nbd_aio_notify_read/write, and
 * nbd_poll is that loop in its simplest form.
 */

#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Close the connection; if another thread is waiting on the socket, shut
 * it down instead, which wakes that thread, and let it close (poll_once).
 */
static void
close_connection (struct nbd_handle *h)
{
  if (h->transport == NULL)
    return;
  if (h->polling && h->fd >= 0)
    shutdown (h->fd, SHUT_RDWR);
  else
    h->transport->close (h);
  pthread_cond_broadcast (&h->progress);
}

/* The connection is unusable: every command fails, the socket is closed. */
void
set_dead (struct nbd_handle *h, int errnum, const char *fs, ...)
{
  char *reason = NULL;
  va_list args;

  va_start (args, fs);
  if (vasprintf (&reason, fs, args) == -1)
    reason = NULL;
  va_end (args);
  set_error (errnum, "%s", reason ? reason : strerror (errnum));
  if (h->state == STATE_DEAD || h->state == STATE_CLOSED) {
    free (reason);
    return;
  }
  debug (h, "handle dead: %s", reason ? reason : strerror (errnum));
  free (h->dead_reason);
  h->dead_reason = reason;
  h->state = STATE_DEAD;
  close_connection (h);
  commands_abort_all (h);
}

/* The server closed the connection after our NBD_CMD_DISC. */
void
set_closed (struct nbd_handle *h)
{
  debug (h, "connection closed");
  h->state = STATE_CLOSED;
  close_connection (h);
  commands_abort_all (h);
}

/* Advance the state machine as far as it goes without blocking.  Returns 0,
 * or -1 if the handle died here (the error is set).
 */
int
run_machine (struct nbd_handle *h)
{
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
      if (commands_send (h) == IO_ERROR) {
        set_dead (h, errno, "send: %s", strerror (errno));
        return -1;
      }
      reply_step (h);           /* likewise, or the closed state */
      break;
    default:
      return 0;
    }
    if (h->state == STATE_DEAD)
      return -1;
    if (h->state == before)
      return 0;
  }
}

/* What the state machine waits for. */
unsigned
direction (const struct nbd_handle *h)
{
  switch (h->state) {
  case STATE_CONNECTING:
    return LIBNBD_AIO_DIRECTION_WRITE;
  case STATE_HANDSHAKE:
    return h->ooff < h->olen ? LIBNBD_AIO_DIRECTION_WRITE
      : LIBNBD_AIO_DIRECTION_READ;
  case STATE_READY:
    return LIBNBD_AIO_DIRECTION_READ |
      (h->queue.head ? LIBNBD_AIO_DIRECTION_WRITE : 0);
  default:
    return 0;
  }
}

/* Another thread is waiting on the socket: wait for it to make progress
 * (it may read the reply this thread waits for) instead of polling too,
 * which could sleep on a socket whose data the other thread took.
 */
static int
wait_for_poller (struct nbd_handle *h, int timeout)
{
  struct timespec deadline;
  int r;

  if (timeout < 0) {
    pthread_cond_wait (&h->progress, &h->lock);
    return 1;
  }
  clock_gettime (CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout / 1000;
  deadline.tv_nsec += (timeout % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  r = pthread_cond_timedwait (&h->progress, &h->lock, &deadline);
  return r == ETIMEDOUT ? 0 : 1;
}

/* Wait up to timeout ms for the socket, then advance.  Called with the lock
 * held; drops it while blocked so other threads can queue commands.  One
 * thread at a time waits on the socket (the leader) and handles whatever
 * arrives, for every thread; the others wait for it to make progress.
 */
int
poll_once (struct nbd_handle *h, int timeout)
{
  struct pollfd fds;
  unsigned dir = direction (h);
  int r;

  if (dir == 0 || h->fd < 0) {
    set_error (EINVAL, "invalid state: %s: nothing to wait for",
               state_name (h));
    return -1;
  }
  if (h->polling)
    return wait_for_poller (h, timeout);
  if (h->transport && h->transport->pending (h))
    r = 1;
  else {
    fds.fd = h->fd;
    fds.events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
      (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
    fds.revents = 0;
    h->polling = true;
    unlock_handle (h);
    do
      r = poll (&fds, 1, timeout);
    while (r == -1 && errno == EINTR);
    lock_handle (h);
    h->polling = false;
    if (h->state == STATE_DEAD || h->state == STATE_CLOSED) {
      /* It died while we waited: ours to close (close_connection). */
      h->transport->close (h);
      pthread_cond_broadcast (&h->progress);
      set_error (ENOTCONN, "the connection %s while waiting",
                 h->state == STATE_DEAD ? "died" : "closed");
      return -1;
    }
    if (r == -1) {
      set_error (errno, "poll: %s", strerror (errno));
      pthread_cond_broadcast (&h->progress);
      return -1;
    }
  }
  if (r > 0)
    r = run_machine (h) == -1 ? -1 : 1;
  pthread_cond_broadcast (&h->progress);
  return r;
}

int
nbd_poll (struct nbd_handle *h, int timeout)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = poll_once (h, timeout);
  unlock_handle (h);
  return r;
}

int
nbd_aio_get_fd (struct nbd_handle *h)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = h->fd;
  if (r < 0)
    set_error (EINVAL, "invalid state: %s: the handle has no socket",
               state_name (h));
  unlock_handle (h);
  return r;
}

unsigned
nbd_aio_get_direction (struct nbd_handle *h)
{
  unsigned r;

  lock_handle (h);
  r = direction (h);
  unlock_handle (h);
  return r;
}

static int
notify (struct nbd_handle *h)
{
  int r;

  lock_handle (h);
  r = run_machine (h);
  unlock_handle (h);
  return r;
}

int
nbd_aio_notify_read (struct nbd_handle *h)
{
  ENTER ();
  return notify (h);
}

int
nbd_aio_notify_write (struct nbd_handle *h)
{
  ENTER ();
  return notify (h);
}

/* ----- Issuing commands. ----- */

static int
check_ready (struct nbd_handle *h)
{
  if (h->state == STATE_READY && !h->disconnect_queued)
    return 0;
  if (h->state == STATE_DEAD)
    set_error (ENOTCONN, "invalid state: DEAD: the connection died: %s",
               h->dead_reason ? h->dead_reason : "unknown reason");
  else if (h->state == STATE_READY)
    set_error (EINVAL, "invalid state: the handle is disconnecting");
  else
    set_error (h->state == STATE_CREATED ? ENOTCONN : EINVAL,
               "invalid state: %s: the handle must be connected with the "
               "server", state_name (h));
  return -1;
}

/* The checks libnbd makes before sending (nbd_set_strict_mode(3)). */
static int
check_request (struct nbd_handle *h, uint32_t flags, uint32_t allowed_flags,
               uint64_t offset, size_t count)
{
  uint64_t end;

  if (check_ready (h) == -1)
    return -1;
  if (count > MAX_REQUEST_SIZE) {
    set_error (ERANGE, "count: request too large: maximum is %d bytes",
               MAX_REQUEST_SIZE);
    return -1;
  }
  if (flags & ~LIBNBD_CMD_FLAG_MASK ||
      ((h->strict & LIBNBD_STRICT_FLAGS) && (flags & ~allowed_flags))) {
    set_error (EINVAL, "flags: invalid flags 0x%" PRIx32 " for this command",
               flags);
    return -1;
  }
  if ((h->strict & LIBNBD_STRICT_COMMANDS) && (flags & LIBNBD_CMD_FLAG_DF) &&
      !(h->eflags & NBD_FLAG_SEND_DF && h->sr_negotiated)) {
    set_error (EINVAL, "server does not support the DF flag");
    return -1;
  }
  if ((h->strict & LIBNBD_STRICT_ZERO_SIZE) && count == 0) {
    set_error (EINVAL, "count cannot be 0");
    return -1;
  }
  if ((h->strict & LIBNBD_STRICT_BOUNDS) &&
      (__builtin_add_overflow (offset, count, &end) ||
       end > h->exportsize)) {
    set_error (EINVAL, "request out of bounds: offset %" PRIu64 " + count "
               "%zu is beyond the export size %" PRIu64, offset, count,
               h->exportsize);
    return -1;
  }
  if ((h->strict & LIBNBD_STRICT_ALIGN) && h->block_minimum &&
      ((offset | count) & (h->block_minimum - 1))) {
    set_error (EINVAL, "request is unaligned: the server's minimum block "
               "size is %" PRIu32, h->block_minimum);
    return -1;
  }
  return 0;
}

/* The core of every read call (nbd_aio_pread*, and nbd_pread* through
 * sync.c); called locked.
 * The callbacks are owned from here on: freed exactly once on every path.
 */
int64_t
aio_pread (struct nbd_handle *h, void *buf, size_t count, uint64_t offset,
           nbd_chunk_callback *chunk, nbd_completion_callback *completion,
           uint32_t flags)
{
  /* DF belongs to the structured forms only (nbd_pread(3)). */
  uint32_t allowed = chunk ? LIBNBD_CMD_FLAG_DF : 0;
  struct command *cmd;

  if (check_request (h, flags, allowed, offset, count) == -1) {
    free_callbacks (chunk, completion);
    return -1;
  }
  cmd = command_new (h, NBD_CMD_READ, flags, offset, count, buf, chunk,
                     completion);
  if (cmd == NULL)
    return -1;
  if (h->pread_initialize)
    memset (buf, 0, count);
  return command_submit (h, cmd);
}

int64_t
nbd_aio_pread (struct nbd_handle *h, void *buf, size_t count,
               uint64_t offset, nbd_completion_callback completion,
               uint32_t flags)
{
  int64_t r;

  ENTER ();
  lock_handle (h);
  r = aio_pread (h, buf, count, offset, NULL, &completion, flags);
  unlock_handle (h);
  return r;
}

int64_t
nbd_aio_pread_structured (struct nbd_handle *h, void *buf, size_t count,
                          uint64_t offset, nbd_chunk_callback chunk,
                          nbd_completion_callback completion, uint32_t flags)
{
  int64_t r;

  ENTER ();
  lock_handle (h);
  r = aio_pread (h, buf, count, offset, &chunk, &completion, flags);
  unlock_handle (h);
  return r;
}

/* Queue NBD_CMD_DISC; with LIBNBD_SHUTDOWN_ABANDON_PENDING, commands not
 * yet sent are dropped (they fail) instead of going out first.
 */
int
aio_disconnect (struct nbd_handle *h, uint32_t flags)
{
  struct command *cmd;

  if (flags & ~LIBNBD_SHUTDOWN_MASK) {
    set_error (EINVAL, "flags: invalid shutdown flags 0x%" PRIx32, flags);
    return -1;
  }
  if (check_ready (h) == -1)
    return -1;
  if (flags & LIBNBD_SHUTDOWN_ABANDON_PENDING) {
    struct command *next;

    /* The head may be partly sent: it must go out whole. */
    cmd = h->queue.head;
    if (cmd && h->send_off)
      cmd = cmd->next;
    for (; cmd; cmd = next) {
      next = cmd->next;
      command_fail (cmd, ESHUTDOWN, "command abandoned by nbd_shutdown");
      command_complete (h, cmd);
    }
  }
  cmd = command_new (h, NBD_CMD_DISC, 0, 0, 0, NULL, NULL, NULL);
  if (cmd == NULL)
    return -1;
  h->disconnect_queued = true;
  command_submit (h, cmd);
  return 0;
}

int
nbd_aio_disconnect (struct nbd_handle *h, uint32_t flags)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = aio_disconnect (h, flags);
  unlock_handle (h);
  return r;
}

/* ----- Completed commands. ----- */

/* Retire a finished command and report its result (1 or -1 with error). */
int
command_result (struct nbd_handle *h, struct command *cmd)
{
  int error = cmd->error;

  if (error)
    set_error (error, "%s", cmd->error_msg ? cmd->error_msg
               : strerror (error));
  command_retire (h, cmd);
  return error ? -1 : 1;
}

int
nbd_aio_command_completed (struct nbd_handle *h, uint64_t cookie)
{
  struct command *cmd;
  int r;

  ENTER ();
  lock_handle (h);
  cmd = command_lookup (h, cookie);
  if (cmd == NULL) {
    set_error (EINVAL, "cookie %" PRIu64 " is not a command in flight or "
               "awaiting retirement", cookie);
    r = -1;
  }
  else if (cmd->state != CMD_DONE)
    r = 0;
  else
    r = command_result (h, cmd);
  unlock_handle (h);
  return r;
}

int64_t
nbd_aio_peek_command_completed (struct nbd_handle *h)
{
  int64_t r;

  ENTER ();
  lock_handle (h);
  if (h->done.head)
    r = h->done.head->cookie;
  else if (h->queue.len || h->inflight.len)
    r = 0;
  else {
    set_error (EINVAL, "no commands are in flight");
    r = -1;
  }
  unlock_handle (h);
  return r;
}

int
nbd_aio_in_flight (struct nbd_handle *h)
{
  int r;

  lock_handle (h);
  r = h->queue.len + h->inflight.len;
  /* NBD_CMD_DISC is not a command the caller issued. */
  if (h->disconnect_queued && h->queue.tail &&
      h->queue.tail->type == NBD_CMD_DISC)
    r--;
  unlock_handle (h);
  return r;
}
