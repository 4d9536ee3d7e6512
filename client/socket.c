/* libnbdc: the connecting phase.  Non-blocking connect(2) to each TCP
 * address in turn, or to one Unix/vsock address; once connected, the
 * handshake starts.  connect.c sets these up; machine.c drives them.
 */

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

/* Start the handshake on a connected socket. */
int
start_connect_socket (struct nbd_handle *h, int fd)
{
  int flags = fcntl (fd, F_GETFL);

  if (flags == -1 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) == -1) {
    set_error (errno, "fcntl: %s", strerror (errno));
    return -1;
  }
  h->fd = fd;
  h->transport = &plain_transport;
  h->state = STATE_HANDSHAKE;
  h->phase = PHASE_GREETING;
  return 0;
}

/* No TCP address took the connection: as with libnbd the handle stays
 * newly created, so the caller may try again.
 */
static int
connect_failed (struct nbd_handle *h, int error)
{
  set_error (error, "connect: %s", strerror (error));
  if (h->fd >= 0)
    close (h->fd);
  h->fd = -1;
  h->transport = NULL;
  if (h->addrinfo)
    freeaddrinfo (h->addrinfo);
  h->addrinfo = h->next_addr = NULL;
  free (h->uri);
  h->uri = NULL;
  h->state = STATE_CREATED;
  return -1;
}

/* Try to connect fd to addr.  Returns 1 connected, 0 in progress, -1. */
int
try_connect (struct nbd_handle *h, const struct sockaddr *addr,
             socklen_t len)
{
  int fd = socket (addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
                   SOCK_CLOEXEC, 0);

  if (fd == -1)
    return -1;
  if (connect (fd, addr, len) == 0) {
    h->fd = fd;
    return 1;
  }
  if (errno == EINPROGRESS) {
    h->fd = fd;
    return 0;
  }
  int saved = errno;
  close (fd);
  errno = saved;
  return -1;
}

/* Try the next TCP address, after one failed. */
int
connect_next_address (struct nbd_handle *h, int error)
{
  while (h->next_addr) {
    struct addrinfo *a = h->next_addr;
    int r;

    h->next_addr = a->ai_next;
    r = try_connect (h, a->ai_addr, a->ai_addrlen);
    if (r == 1)
      return start_connect_socket (h, h->fd);
    if (r == 0) {
      h->state = STATE_CONNECTING;
      return 0;
    }
    error = errno;
  }
  return connect_failed (h, error);
}

/* The socket became writable: did the connect succeed? */
int
connect_step (struct nbd_handle *h)
{
  int error = 0;
  socklen_t len = sizeof error;

  if (getsockopt (h->fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
    error = errno;
  if (error == 0)
    return start_connect_socket (h, h->fd);
  if (error == EINPROGRESS || error == EAGAIN)
    return 0;
  if (h->addrinfo == NULL) {
    /* One address (Unix, vsock, nbd_aio_connect): as libnbd, a connect
     * that fails leaves the handle dead; only TCP tries the next address
     * and, with none left, leaves it newly created.
     */
    set_dead (h, error, "connect: %s", strerror (error));
    return -1;
  }
  close (h->fd);
  h->fd = -1;
  return connect_next_address (h, error);
}

