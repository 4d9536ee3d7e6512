/* nbd-proxy tests: NBD URIs and the ways to connect (issue 12).
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-uri MEMSOCK STRICTSOCK TCPPORT|- V6PORT|-
 *
 * MEMSOCK:    nbdkit memory 1M, on a path with a space in it
 * STRICTSOCK: nbdkit --filter=exportname memory 1M exportname-strict=true
 *             exportname="a b/c"
 * TCPPORT:    nbdkit memory 1M on 127.0.0.1:TCPPORT, or "-" to skip
 * V6PORT:     nbdkit memory 1M on [::1]:V6PORT, or "-" to skip
 *
 * The rules come from nbd_connect_uri(3), nbd_get_uri(3) and the NBD URI
 * specification (doc/uri.md); where they leave the errno open the check
 * encodes what libnbd 1.14.2 does.
 */

#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libnbd.h>

#include "api-tap.h"

static const char *mem_sock, *strict_sock, *tcp_port, *v6_port;

/* Percent-encode everything but unreserved characters and '/'. */
static char *
encode (const char *s)
{
  char *out = malloc (strlen (s) * 3 + 1), *p = out;

  if (out == NULL)
    tap_bail ("malloc");
  for (; *s; s++) {
    if (strchr ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789-._~/", *s))
      *p++ = *s;
    else
      p += sprintf (p, "%%%02X", (unsigned char) *s);
  }
  *p = '\0';
  return out;
}

static char *
format (const char *fs, ...) TAP_PRINTF (1, 2);

static char *
format (const char *fs, ...)
{
  va_list args;
  char *s;

  va_start (args, fs);
  if (vasprintf (&s, fs, args) == -1)
    tap_bail ("vasprintf");
  va_end (args);
  return s;
}

/* nbd_connect_uri (URI) on a new handle succeeds; returns the handle. */
static struct nbd_handle *
uri_connects (const char *uri, const char *what)
{
  struct nbd_handle *h = tap_create ();

  if (!tap_ok (nbd_connect_uri (h, uri) == 0, "%s: nbd_connect_uri %s",
               what, uri)) {
    tap_diag ("error: %s", nbd_get_error ());
    nbd_close (h);
    return NULL;
  }
  return h;
}

/* nbd_connect_uri (URI) fails with ERR, and the handle did not connect. */
static void
uri_fails (const char *uri, int err, const char *what)
{
  struct nbd_handle *h = tap_create ();

  if (!tap_ok (nbd_connect_uri (h, uri) == -1,
               "%s: nbd_connect_uri fails", what))
    tap_diag ("uri: %s", uri);
  tap_error_is ("nbd_connect_uri", err, what);
  tap_ok (nbd_aio_is_ready (h) == 0, "%s: the handle is not ready", what);
  nbd_close (h);
}

static void
test_unix_uris (void)
{
  char *sock = encode (mem_sock), *ssock = encode (strict_sock);
  char *uri, *long_name;
  struct nbd_handle *h;

  /* doc/uri.md: the socket= value is percent-decoded. */
  uri = format ("nbd+unix:///?socket=%s", sock);
  if ((h = uri_connects (uri, "a percent-encoded socket path")) != NULL) {
    tap_ok (nbd_get_size (h) == 1024 * 1024,
            "nbd_connect_uri(3): connected to the decoded socket");
    char *got = nbd_get_uri (h);

    tap_ok (got != NULL && strncmp (got, "nbd+unix:///?socket=", 20) == 0,
            "nbd_get_uri(3) of a Unix socket connection is "
            "nbd+unix:///?socket=...");
    free (got);
    nbd_close (h);
  }
  free (uri);

  /* The export name is the path without its '/', percent-decoded
   * (nbdkit's exportname-strict refuses any other name).
   */
  uri = format ("nbd+unix:///a%%20b%%2Fc?socket=%s", ssock);
  if ((h = uri_connects (uri, "a percent-encoded export name")) != NULL) {
    tap_check_string (nbd_get_export_name (h), "a b/c",
                  "nbd_get_export_name(3) after nbd_connect_uri");
    nbd_close (h);
  }
  free (uri);
  uri = format ("nbd+unix:///a%%20b/c?socket=%s", ssock);
  if ((h = uri_connects (uri, "'/' in the export path")) != NULL)
    nbd_close (h);
  free (uri);
  uri = format ("nbd+unix:///other?socket=%s", ssock);
  uri_fails (uri, -1, "an export the strict server does not have");
  free (uri);

  /* Unknown query parameters are ignored; several are separated by '&'. */
  uri = format ("nbd+unix:///?foo=bar&socket=%s&baz", sock);
  if ((h = uri_connects (uri, "unknown query parameters")) != NULL)
    nbd_close (h);
  free (uri);

  uri = format ("nbd+unix:///?socket=%s&tls-psk-file=/etc/passwd", sock);
  uri_fails (uri, EPERM,
             "nbd_connect_uri(3): tls-psk-file= is local file access");
  free (uri);

  uri_fails ("nbd+unix:///export", EINVAL,
             "nbd+unix without socket=");
  uri = format ("nbd://localhost/?socket=%s", sock);
  uri_fails (uri, EINVAL, "socket= with the nbd: scheme");
  free (uri);
  uri_fails ("nbd+unix:///?socket=%zz", EINVAL,
             "bad percent-encoding %zz in socket=");
  uri = format ("nbd+unix:///%%zz?socket=%s", sock);
  uri_fails (uri, EINVAL, "bad percent-encoding %zz in the export");
  free (uri);
  /* libnbd 1.14 takes %00 as the end of the export name and connects to
   * another export than the URI names; libnbdc refuses it (libnbdc(3),
   * "OTHER DIFFERENCES").
   */
  uri = format ("nbd+unix:///a%%00b?socket=%s", sock);
#ifdef LIBNBDC
  uri_fails (uri, EINVAL, "%00 in the export name (libnbdc refuses it)");
#else
  h = tap_create ();
  if (!tap_ok (nbd_connect_uri (h, uri) == 0,
               "%%00 in the export name: libnbd connects, the name ends "
               "there"))
    tap_diag ("error: %s", nbd_get_error ());
  else
    tap_check_string (nbd_get_export_name (h), "a",
                  "the export name of nbd+unix:///a%00b");
  nbd_close (h);
#endif
  free (uri);
  uri = format ("nbd+unix:///a%%?socket=%s", sock);
  uri_fails (uri, EINVAL, "a truncated % in the export name");
  free (uri);
  uri = format ("nbd+unix:///x?socket=%s#frag", sock);
  h = tap_create ();
  if (!tap_ok (nbd_connect_uri (h, uri) == 0,
               "a #fragment is ignored (libnbd)"))
    tap_diag ("error: %s", nbd_get_error ());
  nbd_close (h);
  free (uri);

  long_name = malloc (5001);
  if (long_name == NULL)
    tap_bail ("malloc");
  memset (long_name, 'e', 5000);
  long_name[5000] = '\0';
  uri = format ("nbd+unix:///%s?socket=%s", long_name, sock);
  uri_fails (uri, -1, "an export name over 4096 bytes");
  free (uri);
  free (long_name);

  /* nbd+unix ignores a host (libnbd). */
  uri = format ("nbd+unix://somehost/?socket=%s", sock);
  if ((h = uri_connects (uri, "nbd+unix with a host")) != NULL)
    nbd_close (h);
  free (uri);

  /* nbd+vsock: the CID and port are numbers. */
  uri_fails ("nbd+vsock://abc/", EINVAL, "nbd+vsock with a bad CID");
  uri_fails ("nbd+vsock://1:abc/", EINVAL, "nbd+vsock with a bad port");
  /* Nothing listens at CID 1 port 12345 (or there is no vsock): libnbd
   * leaves the handle DEAD after a failed connect(2), as for Unix sockets.
   */
  h = tap_create ();
  tap_ok (nbd_connect_uri (h, "nbd+vsock://1:12345/") == -1,
          "nbd+vsock://1:12345/ with nothing listening fails");
  tap_ok (nbd_aio_is_dead (h) == 1,
          "a failed vsock connect leaves the handle DEAD");
  nbd_close (h);

  /* An empty port after ':' is a parse error in libnbd. */
  h = tap_create ();
  tap_ok (nbd_connect_uri (h, "nbd://127.0.0.1:/") == -1 &&
          nbd_get_errno () == EINVAL,
          "nbd://127.0.0.1:/ (empty port) fails with EINVAL");
  nbd_close (h);

  uri_fails ("not a uri", EINVAL, "no scheme");
  uri_fails ("http://localhost/", EINVAL, "an unknown scheme");
  uri_fails ("NBD://localhost/", EINVAL, "an upper case scheme");

  h = tap_create ();
  tap_ok (nbd_supports_uri (h) == 1, "nbd_supports_uri(3) 1");
  if (nbd_supports_tls (h))
    tap_skip ("this library has TLS", "nbds:// fails with ENOTSUP");
  else
    uri_fails ("nbds+unix:///?socket=/nonexistent", ENOTSUP,
               "libnbdc(3) OTHER DIFFERENCES: nbds:// without TLS");
  nbd_close (h);
  free (sock);
  free (ssock);
}

static void
test_tcp (void)
{
  struct nbd_handle *h;
  char *uri;

  if (strcmp (tcp_port, "-") == 0) {
    tap_skip ("no TCP server", "TCP URIs");
    return;
  }
  uri = format ("nbd://127.0.0.1:%s/", tcp_port);
  if ((h = uri_connects (uri, "nbd://127.0.0.1:PORT/")) != NULL) {
    tap_check_string (nbd_get_uri (h), uri, "nbd_get_uri(3) of a TCP URI");
    nbd_close (h);
  }
  free (uri);
  uri = format ("nbd://user@localhost:%s/x", tcp_port);
  if ((h = uri_connects (uri, "a user@ part and a host name")) != NULL) {
    tap_check_string (nbd_get_export_name (h), "x",
                  "the export name of nbd://user@localhost:PORT/x");
    nbd_close (h);
  }
  free (uri);

  uri_fails ("nbd://[::1/", EINVAL, "an unterminated [ in the host");
  uri_fails ("nbd://[::1]x:10809/", EINVAL, "junk after ] in the host");

  /* nbd_connect_tcp(3) and the URI it leaves (nbd_get_uri(3)). */
  h = tap_create ();
  if (!tap_ok (nbd_connect_tcp (h, "127.0.0.1", tcp_port) == 0,
               "nbd_connect_tcp(3) to 127.0.0.1"))
    tap_diag ("error: %s", nbd_get_error ());
  uri = format ("nbd://127.0.0.1:%s/", tcp_port);
  tap_check_string (nbd_get_uri (h), uri, "nbd_get_uri(3) after nbd_connect_tcp");
  free (uri);
  nbd_close (h);

  /* nbd_aio_connect_tcp(3) then nbd_poll(3) until connected. */
  h = tap_create ();
  tap_ok (nbd_aio_connect_tcp (h, "localhost", tcp_port) == 0,
          "nbd_aio_connect_tcp(3) starts");
  while (nbd_aio_is_connecting (h))
    if (nbd_poll (h, -1) == -1)
      break;
  tap_ok (nbd_aio_is_ready (h) == 1,
          "nbd_aio_connect_tcp(3): nbd_poll drives it to READY");
  nbd_close (h);

  /* nbd_aio_connect(3) with a struct sockaddr_in. */
  {
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_port = htons (atoi (tcp_port)) };

    inet_pton (AF_INET, "127.0.0.1", &sin.sin_addr);
    h = tap_create ();
    tap_ok (nbd_aio_connect (h, (struct sockaddr *) &sin, sizeof sin) == 0,
            "nbd_aio_connect(3) with an IPv4 address");
    while (nbd_aio_is_connecting (h))
      if (nbd_poll (h, -1) == -1)
        break;
    tap_ok (nbd_aio_is_ready (h) == 1, "nbd_aio_connect(3) reaches READY");
    uri = format ("nbd://127.0.0.1:%s/", tcp_port);
    tap_check_string (nbd_get_uri (h), uri,
                  "nbd_get_uri(3) after nbd_aio_connect (IPv4)");
    free (uri);
    nbd_close (h);
  }

  h = tap_create ();
  tap_ok (nbd_connect_tcp (h, "nonexistent.invalid", "10809") == -1,
          "nbd_connect_tcp(3) to a name that does not resolve fails");
  tap_error_is ("nbd_connect_tcp", -1, "an unresolvable host");
  tap_ok (nbd_aio_is_created (h) == 1,
          "an unresolvable host leaves the handle newly created");
  nbd_close (h);
}

static void
test_ipv6 (void)
{
  struct nbd_handle *h;
  char *uri;

  if (strcmp (v6_port, "-") == 0) {
    tap_skip ("no IPv6 server on ::1", "IPv6 URIs");
    return;
  }
  uri = format ("nbd://[::1]:%s/", v6_port);
  if ((h = uri_connects (uri, "an IPv6 literal host")) != NULL) {
    tap_check_string (nbd_get_uri (h), uri, "nbd_get_uri(3) of an IPv6 URI");
    nbd_close (h);
  }
  free (uri);

  {
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6,
                                 .sin6_port = htons (atoi (v6_port)) };

    sin6.sin6_addr = in6addr_loopback;
    h = tap_create ();
    tap_ok (nbd_aio_connect (h, (struct sockaddr *) &sin6, sizeof sin6) == 0,
            "nbd_aio_connect(3) with an IPv6 address");
    while (nbd_aio_is_connecting (h))
      if (nbd_poll (h, -1) == -1)
        break;
    tap_ok (nbd_aio_is_ready (h) == 1,
            "nbd_aio_connect(3) IPv6 reaches READY");
    uri = format ("nbd://[::1]:%s/", v6_port);
    tap_check_string (nbd_get_uri (h), uri,
                  "nbd_get_uri(3) after nbd_aio_connect (IPv6)");
    free (uri);
    nbd_close (h);
  }
}

static void
test_sockets (void)
{
  struct nbd_handle *h;
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd;
  char long_path[200];

  h = tap_create ();
  free (nbd_get_uri (h));
  tap_ok (nbd_get_uri (h) == NULL, "nbd_get_uri(3) of a new handle is NULL");
  nbd_close (h);

  /* nbd_connect_socket(3) with a socket already connected to nbdkit. */
  fd = socket (AF_UNIX, SOCK_STREAM, 0);
  strncpy (sun.sun_path, mem_sock, sizeof sun.sun_path - 1);
  if (fd == -1 || connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1)
    tap_bail ("connect %s", mem_sock);
  h = tap_create ();
  if (!tap_ok (nbd_connect_socket (h, fd) == 0,
               "nbd_connect_socket(3) with a connected socket"))
    tap_diag ("error: %s", nbd_get_error ());
  tap_ok (nbd_get_size (h) == 1024 * 1024,
          "nbd_connect_socket(3): the handshake ran on it");
  nbd_close (h);

  h = tap_create ();
  tap_ok (nbd_aio_connect_socket (h, -1) == -1,
          "nbd_aio_connect_socket(3) with fd -1 fails");
  tap_error_is ("nbd_aio_connect_socket", -1, "fd -1");
  nbd_close (h);

  memset (long_path, 'p', sizeof long_path - 1);
  long_path[sizeof long_path - 1] = '\0';
  h = tap_create ();
  tap_ok (nbd_connect_unix (h, long_path) == -1,
          "nbd_connect_unix(3) with a path longer than sun_path fails");
  tap_error_is ("nbd_connect_unix", -1, "a too long socket path");
  nbd_close (h);

  h = tap_create ();
  {
    char *empty[] = { NULL };

    tap_ok (nbd_connect_command (h, empty) == -1,
            "nbd_connect_command(3) with an empty argv fails");
    tap_error_is ("nbd_connect_command", EINVAL, "an empty argv");
  }
  nbd_close (h);

  /* A second connect on a connected handle (libnbd(3): a handle connects
   * once).
   */
  h = tap_create ();
  if (nbd_connect_unix (h, mem_sock) == -1)
    tap_bail ("nbd_connect_unix");
  tap_ok (nbd_connect_unix (h, mem_sock) == -1,
          "nbd_connect_unix(3) on a connected handle fails");
  tap_error_is ("nbd_connect_unix", EINVAL, "a second connect");
  nbd_close (h);
}

int
main (int argc, char *argv[])
{
  tap_init ();
  if (argc != 5) {
    fprintf (stderr, "usage: %s MEMSOCK STRICTSOCK TCPPORT|- V6PORT|-\n",
             argv[0]);
    exit (EXIT_FAILURE);
  }
  mem_sock = argv[1];
  strict_sock = argv[2];
  tcp_port = argv[3];
  v6_port = argv[4];
  signal (SIGPIPE, SIG_IGN);

  test_unix_uris ();
  test_tcp ();
  test_ipv6 ();
  test_sockets ();
  exit (tap_failures ? EXIT_FAILURE : EXIT_SUCCESS);
}
