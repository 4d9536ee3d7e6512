/* libnbdc: the connection's fate.  Marking a handle dead or closed, and
 * naming its state.  Everything above may call these; they call only the
 * transport and errors layers.  Failing the commands of a handle that
 * died is the driver's job (machine.c), which sees every state change.
 */

#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Close the connection; if another thread is polling the socket, shut it
 * down instead, which wakes that thread, and let it close (poll_once).
 */
static void
close_connection (struct nbd_handle *h)
{
  if (h->transport == NULL)
    return;
  if ((h->polling || h->write_polling) && h->fd >= 0)
    shutdown (h->fd, SHUT_RDWR);
  else
    h->transport->close (h);
  wake_all_waiters (h);
}

/* The connection is unusable: record why and close the socket.  The error
 * is set for the call that found out.
 */
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
  h->dead_errno = errnum;
  h->state = STATE_DEAD;
  close_connection (h);
}

/* The server closed the connection cleanly, between replies. */
void
set_closed (struct nbd_handle *h)
{
  debug (h, "connection closed");
  h->state = STATE_CLOSED;
  close_connection (h);
}

/* As in libnbd, "processing" means in the middle of writing a request or
 * reading a reply; a connection merely waiting for replies to commands in
 * flight is "ready" (nbd_aio_is_processing(3)).
 */
bool
is_processing (const struct nbd_handle *h)
{
  return h->state == STATE_READY &&
    (h->queue.len || h->rphase != RP_HEADER || input_available (h) > 0);
}

/* The error of a call that needs a connected handle, with libnbd's errno:
 * ENOTCONN on a handle never connected, EINVAL in any other state.
 */
void
set_state_error (const struct nbd_handle *h)
{
  set_error (h->state == STATE_CREATED ? ENOTCONN : EINVAL,
             "invalid state: %s: the handle must be connected with the "
             "server", state_name (h));
}

const char *
state_name (const struct nbd_handle *h)
{
  switch (h->state) {
  case STATE_CREATED: return "CREATED";
  case STATE_CONNECTING: return "CONNECT";
  case STATE_HANDSHAKE: return "HANDSHAKE";
  case STATE_NEGOTIATING: return "NEGOTIATING";
  case STATE_READY: return is_processing (h) ? "PROCESSING" : "READY";
  case STATE_DEAD: return "DEAD";
  case STATE_CLOSED: return "CLOSED";
  }
  return "UNKNOWN";
}
