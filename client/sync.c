/* libnbdc: the blocking API, built on the aio core plus poll_once. */

#include "internal.h"

#include <errno.h>

/* Wait for the handshake to finish (in opt mode: to stop for nbd_opt_*
 * calls).  Called locked.
 */
int
wait_for_connected (struct nbd_handle *h)
{
  while (h->state == STATE_CONNECTING || h->state == STATE_HANDSHAKE)
    if (poll_once (h, -1, NULL) == -1)
      break;
  leave_socket (h);
  return h->state == STATE_READY || h->state == STATE_NEGOTIATING ? 0 : -1;
}

/* Wait for one command, retire it and return 0 or -1.  Called locked;
 * *locked turns false if the result was handed over to this thread while
 * it slept (wait.c), which then returns without the lock.
 */
int
wait_for_command (struct nbd_handle *h, int64_t cookie, bool *locked)
{
  int r;

  for (;;) {
    struct command *cmd = command_lookup (h, cookie);

    if (cmd == NULL) {
      set_error (EINVAL, "command %" PRId64 " disappeared", cookie);
      r = -1;
      break;
    }
    if (cmd->state == CMD_DONE) {
      r = command_result (h, cmd) == 1 ? 0 : -1;
      break;
    }
    r = poll_once (h, -1, cmd);
    if (r == 2) {
      *locked = false;
      return take_result ();
    }
    if (r == -1) {
      /* A dead handle has failed the command: report that instead. */
      cmd = command_lookup (h, cookie);
      if (cmd == NULL || cmd->state != CMD_DONE) {
        r = -1;
        break;
      }
    }
  }
  leave_socket (h);
  return r;
}

/* Lock the handle for a blocking command call.  Until the thread holds
 * the lock it counts in h->entering: a leader that leaves meanwhile need
 * not wake a successor, as this thread will poll (or, if it issues
 * nothing, call leave_socket) in its turn.
 */
static void
lock_for_command (struct nbd_handle *h)
{
  __atomic_add_fetch (&h->entering, 1, __ATOMIC_RELAXED);
  lock_handle (h);
  __atomic_sub_fetch (&h->entering, 1, __ATOMIC_RELAXED);
}

/* Finish a blocking command call: wait for the command the aio core
 * issued (cookie, or -1 if it refused) and unlock.
 */
static int
finish_sync (struct nbd_handle *h, int64_t cookie)
{
  bool locked = true;
  int r;

  if (cookie == -1) {
    leave_socket (h);
    r = -1;
  }
  else
    r = wait_for_command (h, cookie, &locked);
  if (locked)
    unlock_handle (h);
  return r;
}

int
nbd_pread (struct nbd_handle *h, void *buf, size_t count, uint64_t offset,
           uint32_t flags)
{
  struct callbacks cb = { .chunk.callback = NULL };

  ENTER ();
  lock_for_command (h);
  return finish_sync (h, aio_pread (h, buf, count, offset, &cb, flags,
                                    false));
}

int
nbd_pread_structured (struct nbd_handle *h, void *buf, size_t count,
                      uint64_t offset, nbd_chunk_callback chunk,
                      uint32_t flags)
{
  struct callbacks cb = { .chunk = chunk };

  ENTER ();
  lock_for_command (h);
  return finish_sync (h, aio_pread (h, buf, count, offset, &cb, flags,
                                    true));
}

int
nbd_pwrite (struct nbd_handle *h, const void *buf, size_t count,
            uint64_t offset, uint32_t flags)
{
  struct callbacks cb = { .chunk.callback = NULL };

  ENTER ();
  lock_for_command (h);
  return finish_sync (h, aio_pwrite (h, buf, count, offset, &cb, flags));
}

int
nbd_flush (struct nbd_handle *h, uint32_t flags)
{
  struct callbacks cb = { .chunk.callback = NULL };

  ENTER ();
  lock_for_command (h);
  return finish_sync (h, aio_flush (h, &cb, flags));
}

/* nbd_trim, nbd_cache, nbd_zero: a range, no callback. */
#define SYNC_RANGE_COMMAND(name)                                        \
  int                                                                   \
  nbd_##name (struct nbd_handle *h, uint64_t count, uint64_t offset,    \
              uint32_t flags)                                           \
  {                                                                     \
    struct callbacks cb = { .chunk.callback = NULL };                   \
                                                                        \
    ENTER ();                                                           \
    lock_for_command (h);                                               \
    return finish_sync (h, aio_##name (h, count, offset, &cb, flags));  \
  }

SYNC_RANGE_COMMAND (trim)
SYNC_RANGE_COMMAND (cache)
SYNC_RANGE_COMMAND (zero)

int
nbd_block_status (struct nbd_handle *h, uint64_t count, uint64_t offset,
                  nbd_extent_callback extent, uint32_t flags)
{
  struct callbacks cb = { .extent = extent };

  ENTER ();
  lock_for_command (h);
  return finish_sync (h, aio_block_status (h, count, offset, &cb, flags));
}

/* nbd_shutdown(3): disconnect (unless nbd_aio_disconnect already asked
 * to) and wait until the server closed the connection.
 */
int
nbd_shutdown (struct nbd_handle *h, uint32_t flags)
{
  int r = 0;

  ENTER ();
  lock_handle (h);
  if (!h->disconnect_queued || h->state != STATE_READY ||
      (flags & ~LIBNBD_SHUTDOWN_MASK))
    r = aio_disconnect (h, flags);
  if (r == 0) {
    while (h->state == STATE_READY)
      if (poll_once (h, -1, NULL) == -1)
        break;
    leave_socket (h);
    r = h->state == STATE_CLOSED ? 0 : -1;
  }
  unlock_handle (h);
  return r;
}
