/* libnbdc: the nbd_connect_* and nbd_aio_connect_* entry points: Unix,
 * TCP and vsock sockets, an NBD URI, a socket the caller already has, or a
 * command whose stdin/stdout is the socket.  Every nbd_aio_connect_* form
 * starts a non-blocking connect (socket.c) and the handshake; the
 * nbd_connect_* forms then wait until the handle is ready (sync.c).
 */

#include "internal.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
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

/* Remember the URI that describes this connection, for nbd_get_uri:
 * the scheme without TLS ("nbd", "nbd+unix", "nbd+vsock") and the rest,
 * authority/export[?socket=PATH], the export percent-encoded.
 */
static void
set_uri (struct nbd_handle *h, const char *scheme, const char *authority,
         const char *socket)
{
  char *export = uri_encode (h->export_name, true);
  char *sock = socket ? uri_encode (socket, true) : NULL;

  free (h->uri);
  h->uri_scheme = scheme;
  if (export == NULL || (socket && sock == NULL) ||
      asprintf (&h->uri, "%s/%s%s%s", authority, export,
                sock ? "?socket=" : "", sock ? sock : "") == -1)
    h->uri = NULL;
  free (export);
  free (sock);
}

/* The URI of a connection to a socket address (as libnbd writes it). */
static void
set_uri_from_sockaddr (struct nbd_handle *h, const struct sockaddr *addr,
                       socklen_t len)
{
  char host[INET6_ADDRSTRLEN], authority[INET6_ADDRSTRLEN + 32];

  switch (addr->sa_family) {
  case AF_UNIX: {
    const struct sockaddr_un *sun = (const struct sockaddr_un *) addr;
    size_t n = len > offsetof (struct sockaddr_un, sun_path)
      ? len - offsetof (struct sockaddr_un, sun_path) : 0;
    char path[sizeof sun->sun_path + 1];

    if (n > sizeof sun->sun_path)
      n = sizeof sun->sun_path;
    memcpy (path, sun->sun_path, n);
    path[n] = '\0';
    set_uri (h, "nbd+unix", "", path);
    return;
  }
  case AF_INET: {
    const struct sockaddr_in *sin = (const struct sockaddr_in *) addr;

    inet_ntop (AF_INET, &sin->sin_addr, host, sizeof host);
    snprintf (authority, sizeof authority, "%s:%u", host,
              ntohs (sin->sin_port));
    set_uri (h, "nbd", authority, NULL);
    return;
  }
  case AF_INET6: {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) addr;

    inet_ntop (AF_INET6, &sin6->sin6_addr, host, sizeof host);
    snprintf (authority, sizeof authority, "[%s]:%u", host,
              ntohs (sin6->sin6_port));
    set_uri (h, "nbd", authority, NULL);
    return;
  }
#ifdef HAVE_LINUX_VM_SOCKETS_H
  case AF_VSOCK: {
    const struct sockaddr_vm *svm = (const struct sockaddr_vm *) addr;

    snprintf (authority, sizeof authority, "%u:%u", svm->svm_cid,
              svm->svm_port);
    set_uri (h, "nbd+vsock", authority, NULL);
    return;
  }
#endif
  default:
    free (h->uri);
    h->uri = NULL;
  }
}

static int
aio_connect_sockaddr (struct nbd_handle *h, const struct sockaddr *addr,
                      socklen_t len)
{
  int r;

  set_uri_from_sockaddr (h, addr, len);
  r = try_connect (h, addr, len);
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

static int
aio_connect_unix (struct nbd_handle *h, const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  CHECK_NOT_NULL (path, -1);
  if (strlen (path) >= sizeof addr.sun_path) {
    set_error (ENAMETOOLONG, "socket path too long: %s", path);
    return -1;
  }
  strcpy (addr.sun_path, path);
  return aio_connect_sockaddr (h, (struct sockaddr *) &addr, sizeof addr);
}

static int
aio_connect_tcp (struct nbd_handle *h, const char *host, const char *port)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_ADDRCONFIG,
  };
  char *authority;
  int r;

  CHECK_NOT_NULL (host, -1);
  CHECK_NOT_NULL (port, -1);
  r = getaddrinfo (host, port, &hints, &h->addrinfo);
  if (r != 0) {
    /* As libnbd: the handle stays newly created, errno 0 (a resolver
     * failure is no errno) unless the system said why.
     */
    h->addrinfo = NULL;
    set_error (r == EAI_SYSTEM ? errno : 0, "getaddrinfo: %s:%s: %s",
               host, port, r == EAI_SYSTEM ? strerror (errno)
               : gai_strerror (r));
    return -1;
  }
  if (asprintf (&authority, "%s%s%s:%s", strchr (host, ':') ? "[" : "",
                host, strchr (host, ':') ? "]" : "", port) == -1)
    authority = NULL;
  set_uri (h, "nbd", authority ? authority : "", NULL);
  free (authority);
  free (h->tls_hostname);
  h->tls_hostname = strdup (host);      /* checked in the certificate */
  h->next_addr = h->addrinfo;
  h->transport = &plain_transport;
  if (connect_next_address (h, ENXIO) == -1)
    return -1;
  return h->state == STATE_HANDSHAKE ? run_machine (h) : 0;
}

static int
aio_connect_vsock (struct nbd_handle *h, uint32_t cid, uint32_t port)
{
#ifdef HAVE_LINUX_VM_SOCKETS_H
  struct sockaddr_vm addr = {
    .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port,
  };

  return aio_connect_sockaddr (h, (struct sockaddr *) &addr, sizeof addr);
#else
  set_error (ENOTSUP, "vsock is not supported on this platform");
  return -1;
#endif
}

/* What the handle lets a URI ask for (nbd_set_uri_allow_tls(3),
 * nbd_set_uri_allow_transports(3), nbd_set_uri_allow_local_file(3)),
 * checked in libnbd's order.
 */
static int
uri_permitted (struct nbd_handle *h, const struct nbd_uri *u)
{
  static const uint32_t transport_bit[] = {
    [URI_TCP] = LIBNBD_ALLOW_TRANSPORT_TCP,
    [URI_UNIX] = LIBNBD_ALLOW_TRANSPORT_UNIX,
    [URI_VSOCK] = LIBNBD_ALLOW_TRANSPORT_VSOCK,
  };

  if ((u->tls && h->uri_allow_tls == LIBNBD_TLS_DISABLE) ||
      (!u->tls && h->uri_allow_tls == LIBNBD_TLS_REQUIRE)) {
    set_error (EPERM, "URI TLS setting %s is not permitted", u->scheme);
    return -1;
  }
  if (!(h->uri_allow_transports & transport_bit[u->transport])) {
    set_error (EPERM, "URI transport %s is not permitted", u->scheme);
    return -1;
  }
  if (!h->uri_allow_local_file && (u->tls_certificates || u->tls_psk_file)) {
    set_error (EPERM, "local file access (%s) is not allowed, call "
               "nbd_set_uri_allow_local_file to enable this",
               u->tls_certificates ? "tls-certificates" : "tls-psk-file");
    return -1;
  }
  return 0;
}

/* Move a string the URI gave into a setting of the handle. */
static void
take_string (char **setting, char **from_uri)
{
  if (*from_uri) {
    free (*setting);
    *setting = *from_uri;
    *from_uri = NULL;
  }
}

/* Parse an NBD URI (uri.c), take its export name and TLS settings (nbds
 * requires TLS; nbd leaves the setting as it was), and connect.
 */
static int
aio_connect_uri (struct nbd_handle *h, const char *str)
{
  struct nbd_uri u = { 0 };
  int r = -1;

  CHECK_NOT_NULL (str, -1);
  if (uri_parse (h, &u, str) == -1 || uri_permitted (h, &u) == -1)
    goto out;
  if (u.tls)
    h->tls = LIBNBD_TLS_REQUIRE;
  take_string (&h->tls_username, &u.user);
  take_string (&h->tls_certificates, &u.tls_certificates);
  take_string (&h->tls_psk_file, &u.tls_psk_file);
  take_string (&h->export_name, &u.export);
  switch (u.transport) {
  case URI_UNIX:
    r = aio_connect_unix (h, u.socket);
    break;
  case URI_TCP:
    r = aio_connect_tcp (h, u.host, u.port_name);
    break;
  case URI_VSOCK:
    r = aio_connect_vsock (h, u.cid, u.port);
    break;
  }
 out:
  uri_free (&u);
  return r;
}

static int
aio_connect_command (struct nbd_handle *h, char **argv)
{
  int sv[2];
  pid_t pid;

  CHECK_NOT_NULL (argv, -1);
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

static int
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
nbd_aio_connect (struct nbd_handle *h, const struct sockaddr *addr,
                 socklen_t len)
{
  int r;

  ENTER ();
  CHECK_NOT_NULL (addr, -1);
  lock_handle (h);
  r = check_can_connect (h);
  if (r == 0)
    r = aio_connect_sockaddr (h, addr, len);
  unlock_handle (h);
  return r;
}

/* The URI with the TLS settings, as libnbd writes it: nbds when TLS is
 * required or was negotiated, the TLS user name and the TLS files when
 * they were set.
 */
static char *
uri_of_connection (struct nbd_handle *h)
{
  bool tls = h->tls == LIBNBD_TLS_REQUIRE || h->tls_negotiated;
  char *user = h->tls_username ? uri_encode (h->tls_username, false) : NULL;
  char sep = strchr (h->uri, '?') ? '&' : '?';
  char *r = NULL;
  size_t len;
  FILE *f;

  if (h->tls_username && user == NULL)
    return NULL;
  f = open_memstream (&r, &len);
  if (f == NULL) {
    free (user);
    return NULL;
  }
  fprintf (f, "nbd%s%s://%s%s%s", tls ? "s" : "", h->uri_scheme + 3,
           user ? user : "", user ? "@" : "", h->uri);
  if (h->tls_certificates) {
    fprintf (f, "%ctls-certificates=%s", sep, h->tls_certificates);
    sep = '&';
  }
  if (h->tls_psk_file)
    fprintf (f, "%ctls-psk-file=%s", sep, h->tls_psk_file);
  if (fclose (f) != 0) {
    free (r);
    r = NULL;
  }
  free (user);
  return r;
}

char *
nbd_get_uri (struct nbd_handle *h)
{
  char *r = NULL;

  ENTER ();
  lock_handle (h);
  if (h->state == STATE_CREATED)
    set_error (ENOTCONN, "invalid state: %s: the handle must be connecting, "
               "connected, or closed", state_name (h));
  else if (h->uri == NULL)
    set_error (EINVAL, "cannot construct a URI for this connection");
  else if ((r = uri_of_connection (h)) == NULL)
    set_error (errno, "cannot construct the URI: %s", strerror (errno));
  unlock_handle (h);
  return r;
}
