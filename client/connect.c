/* libnbdc: making the connection: Unix, TCP and vsock sockets, a socket the
 * caller already has, or a command whose stdin/stdout is the socket.  Every
 * nbd_aio_connect_* form starts a non-blocking connect and the handshake;
 * the nbd_connect_* forms then wait until the handle is ready.
 */

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#ifdef HAVE_LINUX_VM_SOCKETS_H
#include <linux/vm_sockets.h>
#endif

int
check_can_connect (struct nbd_handle *h)
{
  if (h->state != STATE_CREATED) {
    set_error (EINVAL, "invalid state: %s: the handle must be newly created "
               "(it connects only once)", state_name (h));
    return -1;
  }
  return 0;
}

/* Percent-encode s for a URI; in a path, '/' stays as it is. */
char *
uri_encode (const char *s, bool path)
{
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc (strlen (s) * 3 + 1), *p = out;

  if (out == NULL)
    return NULL;
  for (; *s; s++) {
    unsigned char c = *s;

    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr ("-._~", c) || (path && c == '/'))
      *p++ = c;
    else {
      *p++ = '%';
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
    }
  }
  *p = '\0';
  return out;
}

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
static int
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

static int
aio_connect_sockaddr (struct nbd_handle *h, const struct sockaddr *addr,
                      socklen_t len)
{
  int r = try_connect (h, addr, len);

  if (r == -1) {
    /* As libnbd: a refused Unix/vsock connect leaves the handle dead, an
     * exhausted list of TCP addresses leaves it newly created.
     */
    set_dead (h, errno, "connect: %s", strerror (errno));
    return -1;
  }
  h->transport = &plain_transport;
  if (r == 0) {
    h->state = STATE_CONNECTING;
    return 0;
  }
  if (start_connect_socket (h, h->fd) == -1)
    return -1;
  return run_machine (h);
}

/* Try the next TCP address, after one failed. */
static int
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
  close (h->fd);
  h->fd = -1;
  return connect_next_address (h, error);
}

int
aio_connect_unix (struct nbd_handle *h, const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  char *export = NULL, *sock = NULL;

  if (strlen (path) >= sizeof addr.sun_path) {
    set_error (ENAMETOOLONG, "socket path too long: %s", path);
    return -1;
  }
  strcpy (addr.sun_path, path);
  export = uri_encode (h->export_name, true);
  sock = uri_encode (path, true);
  free (h->uri);
  if (!export || !sock ||
      asprintf (&h->uri, "nbd+unix:///%s?socket=%s", export, sock) == -1)
    h->uri = NULL;
  free (export);
  free (sock);
  return aio_connect_sockaddr (h, (struct sockaddr *) &addr, sizeof addr);
}

int
aio_connect_tcp (struct nbd_handle *h, const char *host, const char *port)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_ADDRCONFIG,
  };
  char *export;
  int r;

  r = getaddrinfo (host, port, &hints, &h->addrinfo);
  if (r != 0) {
    set_dead (h, r == EAI_SYSTEM ? errno : ENXIO, "getaddrinfo: %s:%s: %s",
              host, port, r == EAI_SYSTEM ? strerror (errno)
              : gai_strerror (r));
    return -1;
  }
  export = uri_encode (h->export_name, true);
  free (h->uri);
  if (export == NULL ||
      asprintf (&h->uri, "nbd://%s%s%s%s:%s/%s", "",
                strchr (host, ':') ? "[" : "", host,
                strchr (host, ':') ? "]" : "", port, export) == -1)
    h->uri = NULL;
  free (export);
  h->next_addr = h->addrinfo;
  h->transport = &plain_transport;
  if (connect_next_address (h, ENXIO) == -1)
    return -1;
  return h->state == STATE_HANDSHAKE ? run_machine (h) : 0;
}

int
aio_connect_vsock (struct nbd_handle *h, uint32_t cid, uint32_t port)
{
#ifdef HAVE_LINUX_VM_SOCKETS_H
  struct sockaddr_vm addr = {
    .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port,
  };
  char *export = uri_encode (h->export_name, true);

  free (h->uri);
  if (export == NULL ||
      asprintf (&h->uri, "nbd+vsock://%" PRIu32 ":%" PRIu32 "/%s", cid,
                port, export) == -1)
    h->uri = NULL;
  free (export);
  return aio_connect_sockaddr (h, (struct sockaddr *) &addr, sizeof addr);
#else
  set_error (ENOTSUP, "vsock is not supported on this platform");
  return -1;
#endif
}

static int
aio_connect_command (struct nbd_handle *h, char **argv)
{
  int sv[2];
  pid_t pid;

  if (argv[0] == NULL) {
    set_error (EINVAL, "argv: the command is empty");
    return -1;
  }
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
    set_error (errno, "socketpair: %s", strerror (errno));
    return -1;
  }
  pid = fork ();
  if (pid == -1) {
    set_error (errno, "fork: %s", strerror (errno));
    close (sv[0]);
    close (sv[1]);
    return -1;
  }
  if (pid == 0) {               /* child: stdin and stdout are the socket */
    sigset_t all;

    sigemptyset (&all);
    sigprocmask (SIG_SETMASK, &all, NULL);
    signal (SIGPIPE, SIG_DFL);
    if (dup2 (sv[1], 0) == -1 || dup2 (sv[1], 1) == -1)
      _exit (126);
    execvp (argv[0], argv);
    perror (argv[0]);
    _exit (errno == ENOENT ? 127 : 126);
  }
  close (sv[1]);
  h->pid = pid;
  if (start_connect_socket (h, sv[0]) == -1) {
    close (sv[0]);
    return -1;
  }
  return run_machine (h);
}

/* Public entry points: aio forms start, sync forms also wait. */

#define CONNECT_PAIR(name, params, args)                                  \
  int                                                                     \
  nbd_aio_connect_##name params                                           \
  {                                                                       \
    int r;                                                                \
                                                                          \
    ENTER ();                                                             \
    lock_handle (h);                                                      \
    r = check_can_connect (h);                                            \
    if (r == 0)                                                           \
      r = aio_connect_##name args;                                        \
    unlock_handle (h);                                                    \
    return r;                                                             \
  }                                                                       \
                                                                          \
  int                                                                     \
  nbd_connect_##name params                                               \
  {                                                                       \
    int r;                                                                \
                                                                          \
    ENTER ();                                                             \
    lock_handle (h);                                                      \
    r = check_can_connect (h);                                            \
    if (r == 0)                                                           \
      r = aio_connect_##name args;                                        \
    if (r == 0)                                                           \
      r = wait_for_connected (h);                                         \
    unlock_handle (h);                                                    \
    return r;                                                             \
  }

CONNECT_PAIR (unix, (struct nbd_handle *h, const char *path), (h, path))
CONNECT_PAIR (tcp, (struct nbd_handle *h, const char *host, const char *port),
              (h, host, port))
CONNECT_PAIR (vsock, (struct nbd_handle *h, uint32_t cid, uint32_t port),
              (h, cid, port))
CONNECT_PAIR (command, (struct nbd_handle *h, char **argv), (h, argv))
CONNECT_PAIR (socket, (struct nbd_handle *h, int sock), (h, sock))
CONNECT_PAIR (uri, (struct nbd_handle *h, const char *uri), (h, uri))

int
aio_connect_socket (struct nbd_handle *h, int sock)
{
  if (sock < 0) {
    set_error (EBADF, "sock: invalid file descriptor %d", sock);
    return -1;
  }
  if (start_connect_socket (h, sock) == -1)
    return -1;
  return run_machine (h);
}

int
nbd_aio_connect (struct nbd_handle *h, const struct sockaddr *addr,
                 socklen_t len)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = check_can_connect (h);
  if (r == 0)
    r = aio_connect_sockaddr (h, addr, len);
  unlock_handle (h);
  return r;
}

char *
nbd_get_uri (struct nbd_handle *h)
{
  char *r = NULL;

  ENTER ();
  lock_handle (h);
  if (h->uri == NULL)
    set_error (EINVAL, "cannot construct a URI for this connection");
  else if ((r = strdup (h->uri)) == NULL)
    set_error (errno, "strdup");
  unlock_handle (h);
  return r;
}
