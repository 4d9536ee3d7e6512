/* libnbdc: the blocking API, built on the aio core plus poll_once. */

#include "internal.h"

#include <errno.h>

/* Wait for the handshake to finish.  Called locked. */
int
wait_for_connected (struct nbd_handle *h)
{
  while (h->state == STATE_CONNECTING || h->state == STATE_HANDSHAKE)
    if (poll_once (h, -1) == -1)
      break;
  return h->state == STATE_READY ? 0 : -1;
}

/* Wait for one command, retire it and return 0 or -1.  Called locked. */
int
wait_for_command (struct nbd_handle *h, int64_t cookie)
{
  for (;;) {
    struct command *cmd = command_lookup (h, cookie);

    if (cmd == NULL) {
      set_error (EINVAL, "command %" PRId64 " disappeared", cookie);
      return -1;
    }
    if (cmd->state == CMD_DONE)
      return command_result (h, cmd) == 1 ? 0 : -1;
    if (poll_once (h, -1) == -1) {
      /* A dead handle has failed the command: report that instead. */
      cmd = command_lookup (h, cookie);
      if (cmd == NULL || cmd->state != CMD_DONE)
        return -1;
    }
  }
}

/* Core of nbd_pread_structured and nbd_pread. */
static int
sync_pread (struct nbd_handle *h, void *buf, size_t count, uint64_t offset,
            nbd_chunk_callback *chunk, uint32_t flags)
{
  int64_t cookie;
  int r;

  lock_handle (h);
  cookie = aio_pread (h, buf, count, offset, chunk, NULL, flags);
  r = cookie == -1 ? -1 : wait_for_command (h, cookie);
  unlock_handle (h);
  return r;
}

int
nbd_pread (struct nbd_handle *h, void *buf, size_t count, uint64_t offset,
           uint32_t flags)
{
  ENTER ();
  return sync_pread (h, buf, count, offset, NULL, flags);
}

int
nbd_pread_structured (struct nbd_handle *h, void *buf, size_t count,
                      uint64_t offset, nbd_chunk_callback chunk,
                      uint32_t flags)
{
  ENTER ();
  return sync_pread (h, buf, count, offset, &chunk, flags);
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
      if (poll_once (h, -1) == -1)
        break;
    r = h->state == STATE_CLOSED ? 0 : -1;
  }
  unlock_handle (h);
  return r;
}
