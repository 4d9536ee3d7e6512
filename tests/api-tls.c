/* nbd-proxy tests: TLS (issue 15): X.509 and PSK against nbdkit and
 * qemu-nbd, the TLS settings and what a failed TLS connection does.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-tls DIR
 *
 * DIR is the test's temp dir (api-tls.sh): DIR/tls holds the keys and
 * certificates of tls-functions.sh, DIR/NAME.sock the Unix sockets and
 * DIR/NAME.port the TCP ports (on 127.0.0.1) of these servers:
 *
 *   x509        nbdkit --tls=require --tls-certificates=tls/server
 *   x509-peer   the same with --tls-verify-peer (wants a client cert)
 *   psk         nbdkit --tls=require --tls-psk=tls/keys.psk
 *   plain       nbdkit --tls=off
 *   expired, untrusted, wronghost
 *               nbdkit --tls=require --tls-certificates=tls/NAME
 *   tcp-x509, tcp-expired, tcp-untrusted, tcp-wronghost (ports)
 *               the same on TCP
 *   qemu-x509, qemu-psk (optional)
 *               qemu-nbd --tls-creds of tls-creds-x509 (dir=tls/server)
 *               and tls-creds-psk (dir=tls/qemu-psk)
 *
 * All serve a writable memory disk of 64 MiB.  Each check prints its
 * outcome in its TAP line: "connects, TLS negotiated N" or "fails with
 * ERRNO", so the transcripts of the two builds can be diffed.  The errnos
 * are what libnbd 1.14.2 gives (nbd_set_tls(3) and friends leave them
 * open); the libnbd build of this program is the oracle for them.
 *
 * What libnbd 1.14 verifies: nbd_set_tls_verify_peer(3) "defaults to true
 * when connecting to TCP servers using TLS certificate authentication,
 * and false otherwise": over a Unix socket there is no host name, and
 * libnbd checks neither the certificate chain nor its dates.  The checks
 * of untrusted, expired and misnamed certificates therefore run over TCP,
 * and the Unix socket runs record that libnbd connects.
 */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>

#include "api-tap.h"

#if defined (LIBNBD_HAVE_NBD_SET_TLS) && defined (LIBNBD_HAVE_NBD_GET_TLS) && \
  defined (LIBNBD_HAVE_NBD_SET_TLS_CERTIFICATES) &&                       \
  defined (LIBNBD_HAVE_NBD_SET_TLS_PSK_FILE) &&                           \
  defined (LIBNBD_HAVE_NBD_SET_TLS_USERNAME) &&                           \
  defined (LIBNBD_HAVE_NBD_GET_TLS_USERNAME) &&                           \
  defined (LIBNBD_HAVE_NBD_SET_TLS_VERIFY_PEER) &&                        \
  defined (LIBNBD_HAVE_NBD_GET_TLS_VERIFY_PEER) &&                        \
  defined (LIBNBD_HAVE_NBD_GET_TLS_NEGOTIATED)
#define HAVE_TLS_API 1
#endif

#ifdef HAVE_TLS_API

#define DISK_SIZE (64 * 1024 * 1024)
#define IO_SIZE 65536
#define CONNECTS 0              /* the expected errno of a connection that
                                   works */
/* The expected errno of a failure where libnbd 1.14 leaves errno 0 (most
 * GnuTLS errors): the libnbd build must see 0, libnbdc must set one
 * (libnbdc(3): every failure sets an errno), whichever.
 */
#define ERRNO_0 (-2)

#ifdef LIBNBDC
#define AGAINST_LIBNBD false
#else
#define AGAINST_LIBNBD true
#endif

/* libnbd 1.14 checks the server's certificate only when it has a host
 * name (TCP); over a Unix socket it accepts any certificate.  libnbdc
 * checks the chain and the dates there too (no host name to match):
 * the expectation of those checks.
 */
#ifdef LIBNBDC
#define UNIX_UNVERIFIABLE ERRNO_0
#define UNIX_NEGOTIATED 0
#else
#define UNIX_UNVERIFIABLE CONNECTS
#define UNIX_NEGOTIATED 1
#endif

/* A certificates dir that does not exist: libnbd 1.14 connects, even
 * over TCP, without checking the server's certificate at all; libnbdc
 * fails (it cannot verify anything).
 */
#ifdef LIBNBDC
#define MISSING_DIR ERRNO_0
#define MISSING_DIR_NEGOTIATED 0
#else
#define MISSING_DIR CONNECTS
#define MISSING_DIR_NEGOTIATED 1
#endif

/* $LOGNAME for the test: the default TLS username. */
#define TEST_LOGNAME "nbdc-test-user"

static const char *dir;
static uint64_t next_offset;    /* each round trip writes elsewhere */

/* DIR/NAME formatted, kept until free_paths. */
static char *paths[256];
static size_t nr_paths;

static const char *
path (const char *fmt, ...) TAP_PRINTF (1, 2);

static const char *
path (const char *fmt, ...)
{
  char name[1024];
  va_list args;

  va_start (args, fmt);
  vsnprintf (name, sizeof name, fmt, args);
  va_end (args);
  if (nr_paths == sizeof paths / sizeof paths[0] ||
      asprintf (&paths[nr_paths], "%s/%s", dir, name) == -1)
    tap_bail ("path: out of room");
  return paths[nr_paths++];
}

static void
free_paths (void)
{
  while (nr_paths > 0)
    free (paths[--nr_paths]);
}

/* The TCP port of server NAME (DIR/NAME.port), or NULL. */
static const char *
port_of (const char *name)
{
  static char port[16];
  FILE *fp = fopen (path ("%s.port", name), "r");
  bool ok;

  if (fp == NULL)
    return NULL;
  ok = fscanf (fp, "%15s", port) == 1;
  fclose (fp);
  return ok ? port : NULL;
}

static bool
exists (const char *file)
{
  return access (file, F_OK) == 0;
}

/* A write and a read back of IO_SIZE bytes through the connection. */
static bool
round_trip (struct nbd_handle *h)
{
  static unsigned char out[IO_SIZE], in[IO_SIZE];
  uint64_t offset = next_offset;
  size_t i;

  next_offset = (next_offset + IO_SIZE) % DISK_SIZE;
  for (i = 0; i < sizeof out; i++)
    out[i] = (offset + i * 13) & 0xff;
  memset (in, 0, sizeof in);
  if (nbd_pwrite (h, out, sizeof out, offset, 0) == -1 ||
      nbd_pread (h, in, sizeof in, offset, 0) == -1) {
    tap_diag ("round trip: %s", nbd_get_error ());
    return false;
  }
  return memcmp (in, out, sizeof in) == 0;
}

/* CALL returned R on H.  EXPECTED is CONNECTS (then NEGOTIATED is what
 * nbd_get_tls_negotiated must say, and data must go through) or the
 * errno the connection fails with.  Closes H.
 */
static void
check_connect (struct nbd_handle *h, int r, const char *call, int expected,
               int negotiated, const char *what)
{
  if (expected == CONNECTS) {
    if (!tap_ok (r == 0, "%s: connects, TLS negotiated %d", what,
                 negotiated)) {
      tap_diag ("%s failed: errno %s: %s", call,
                errno_name (nbd_get_errno ()), nbd_get_error ());
      nbd_close (h);
      return;
    }
    if (!tap_ok (nbd_get_tls_negotiated (h) == negotiated,
                 "%s: nbd_get_tls_negotiated is %d", what, negotiated))
      tap_diag ("got %d", nbd_get_tls_negotiated (h));
    tap_ok (round_trip (h), "%s: a write reads back", what);
  }
  else if (expected == ERRNO_0) {
    int err = nbd_get_errno ();
    const char *msg = nbd_get_error ();

    if (!tap_ok (r == -1, "%s: fails (errno: libnbd 1.14 leaves 0)", what))
      tap_diag ("%s connected, TLS negotiated %d", call,
                nbd_get_tls_negotiated (h));
    else {
      tap_diag ("errno %s: %s", errno_name (err), msg ? msg : "(null)");
      tap_ok (msg != NULL && strncmp (msg, call, strlen (call)) == 0 &&
              msg[strlen (call)] == ':' &&
              (AGAINST_LIBNBD ? err == 0 : err != 0),
              "%s: error starts with \"%s:\" (errno: 0 in libnbd, set in "
              "libnbdc)", what, call);
    }
  }
  else {
    if (!tap_ok (r == -1, "%s: fails with %s", what,
                 errno_name (expected)))
      tap_diag ("%s connected, TLS negotiated %d", call,
                nbd_get_tls_negotiated (h));
    else
      tap_error_is (call, expected, what);
    tap_ok (nbd_aio_is_ready (h) == 0, "%s: the handle is not ready",
            what);
  }
  nbd_close (h);
}

/* nbd_connect_uri (URI) on H, with local files allowed unless
 * NO_LOCAL_FILE; the outcome as check_connect.
 */
static void
uri_check (struct nbd_handle *h, const char *uri, bool local_file,
           int expected, int negotiated, const char *what)
{
  tap_diag ("%s: %s", what, uri);
  if (local_file && nbd_set_uri_allow_local_file (h, true) == -1)
    tap_bail ("nbd_set_uri_allow_local_file");
  check_connect (h, nbd_connect_uri (h, uri), "nbd_connect_uri", expected,
                 negotiated, what);
}

/* A handle set up for TLS with the API: TLS mode, then the credentials
 * (NULL: not set).
 */
static struct nbd_handle *
tls_handle (int tls, const char *certificates, const char *psk_file,
            const char *username)
{
  struct nbd_handle *h = tap_create ();

  if (nbd_set_tls (h, tls) == -1 ||
      (certificates && nbd_set_tls_certificates (h, certificates) == -1) ||
      (psk_file && nbd_set_tls_psk_file (h, psk_file) == -1) ||
      (username && nbd_set_tls_username (h, username) == -1))
    tap_bail ("setting up TLS");
  return h;
}

static void
unix_check (struct nbd_handle *h, const char *server, int expected,
            int negotiated, const char *what)
{
  check_connect (h, nbd_connect_unix (h, path ("%s.sock", server)),
                 "nbd_connect_unix", expected, negotiated, what);
}

/* nbd_connect_tcp to HOST and the port of SERVER. */
static void
tcp_check (struct nbd_handle *h, const char *host, const char *server,
           int expected, int negotiated, const char *what)
{
  const char *port = port_of (server);

  if (port == NULL) {
    tap_skip ("no TCP server", "%s", what);
    nbd_close (h);
    return;
  }
  check_connect (h, nbd_connect_tcp (h, host, port), "nbd_connect_tcp",
                 expected, negotiated, what);
}

/* The settings: defaults and round trips (nbd_set_tls(3) and friends). */
static void
test_settings (void)
{
  struct nbd_handle *h = tap_create ();
  tap_ok (nbd_supports_tls (h) == 1, "nbd_supports_tls(3) is 1");
  tap_ok (nbd_get_tls (h) == LIBNBD_TLS_DISABLE,
          "nbd_get_tls(3) defaults to LIBNBD_TLS_DISABLE");
  tap_ok (nbd_get_tls_verify_peer (h) == 1,
          "nbd_get_tls_verify_peer(3) defaults to true");
  /* nbd_set_tls_username(3): "If not set then the local username is
   * used": libnbd 1.14 returns $LOGNAME (main sets it), else what
   * getlogin_r(3) says.
   */
  tap_check_string (nbd_get_tls_username (h), TEST_LOGNAME,
                    "nbd_get_tls_username(3) defaults to $LOGNAME");

  tap_ok (nbd_set_tls (h, LIBNBD_TLS_ALLOW) == 0 &&
          nbd_get_tls (h) == LIBNBD_TLS_ALLOW,
          "nbd_set_tls (ALLOW): nbd_get_tls is ALLOW");
  tap_ok (nbd_set_tls (h, LIBNBD_TLS_REQUIRE) == 0 &&
          nbd_get_tls (h) == LIBNBD_TLS_REQUIRE,
          "nbd_set_tls (REQUIRE): nbd_get_tls is REQUIRE");
  tap_check_fails (nbd_set_tls (h, 3), "nbd_set_tls", EINVAL,
                   "nbd_set_tls (3)");
  tap_ok (nbd_get_tls (h) == LIBNBD_TLS_REQUIRE,
          "a refused nbd_set_tls leaves the setting");
  tap_ok (nbd_set_tls (h, LIBNBD_TLS_DISABLE) == 0 &&
          nbd_get_tls (h) == LIBNBD_TLS_DISABLE,
          "nbd_set_tls (DISABLE): nbd_get_tls is DISABLE");
  tap_ok (nbd_set_tls_verify_peer (h, false) == 0 &&
          nbd_get_tls_verify_peer (h) == 0,
          "nbd_set_tls_verify_peer (false): nbd_get_tls_verify_peer is 0");
  tap_ok (nbd_set_tls_verify_peer (h, true) == 0 &&
          nbd_get_tls_verify_peer (h) == 1,
          "nbd_set_tls_verify_peer (true): nbd_get_tls_verify_peer is 1");
  tap_ok (nbd_set_tls_username (h, "alice") == 0,
          "nbd_set_tls_username (alice)");
  tap_check_string (nbd_get_tls_username (h), "alice",
                    "nbd_get_tls_username after it");
  /* The files are read when connecting, not when set. */
  tap_ok (nbd_set_tls_certificates (h, "/nonexistent") == 0,
          "nbd_set_tls_certificates of a missing dir succeeds");
  tap_ok (nbd_set_tls_psk_file (h, "/nonexistent") == 0,
          "nbd_set_tls_psk_file of a missing file succeeds");
  /* nbd_get_tls_negotiated(3) before connecting. */
  tap_ok (nbd_get_tls_negotiated (h) == -1,
          "nbd_get_tls_negotiated before connecting fails");
  tap_error_is ("nbd_get_tls_negotiated", -1,
                "nbd_get_tls_negotiated before connecting");
  nbd_close (h);
}

/* nbd_connect_uri(3) with nbds: URIs and their TLS query parameters. */
static void
test_uris (void)
{
  const char *psk_sock = path ("psk.sock");
  const char *x509_sock = path ("x509.sock");
  char uri[8192];
  struct nbd_handle *h;
  char *s;

  snprintf (uri, sizeof uri,
            "nbds+unix://alice@/?socket=%s&tls-psk-file=%s",
            psk_sock, path ("tls/keys.psk"));
  h = tap_create ();
  tap_diag ("URI, PSK: %s", uri);
  if (nbd_set_uri_allow_local_file (h, true) == -1)
    tap_bail ("nbd_set_uri_allow_local_file");
  if (tap_ok (nbd_connect_uri (h, uri) == 0,
              "URI, PSK, user alice from the userinfo: connects, "
              "TLS negotiated 1")) {
    tap_ok (nbd_get_tls_negotiated (h) == 1,
            "URI, PSK: nbd_get_tls_negotiated is 1");
    tap_ok (nbd_get_tls (h) == LIBNBD_TLS_REQUIRE,
            "URI, PSK: nbds: set LIBNBD_TLS_REQUIRE");
    tap_check_string (nbd_get_tls_username (h), "alice",
                      "URI, PSK: nbd_get_tls_username");
    tap_ok (round_trip (h), "URI, PSK: a write reads back");
    s = nbd_get_uri (h);
    if (!tap_ok (s && strncmp (s, "nbds+unix://", 12) == 0,
                 "URI, PSK: nbd_get_uri(3) starts nbds+unix://"))
      tap_diag ("got %s", s ? s : nbd_get_error ());
    free (s);
  }
  else
    tap_diag ("error: %s", nbd_get_error ());
  nbd_close (h);

  snprintf (uri, sizeof uri, "nbds+unix:///?socket=%s&tls-certificates=%s",
            x509_sock, path ("tls/client"));
  uri_check (tap_create (), uri, true, CONNECTS, 1, "URI, X.509");

  /* The username comes from the userinfo only; without one, what was
   * set before stays.
   */
  snprintf (uri, sizeof uri, "nbds+unix:///?socket=%s&tls-psk-file=%s",
            psk_sock, path ("tls/keys.psk"));
  h = tap_create ();
  if (nbd_set_tls_username (h, "alice") == -1)
    tap_bail ("nbd_set_tls_username");
  uri_check (h, uri, true, CONNECTS, 1,
             "URI, PSK, no userinfo, nbd_set_tls_username (alice)");

  /* nbd_connect_uri(3): tls-psk-file= and tls-certificates= are local
   * file access, refused unless nbd_set_uri_allow_local_file.
   */
  snprintf (uri, sizeof uri,
            "nbds+unix://alice@/?socket=%s&tls-psk-file=%s",
            psk_sock, path ("tls/keys.psk"));
  uri_check (tap_create (), uri, false, EPERM, 0,
             "URI, tls-psk-file= without nbd_set_uri_allow_local_file");
  snprintf (uri, sizeof uri, "nbds+unix:///?socket=%s&tls-certificates=%s",
            x509_sock, path ("tls/client"));
  uri_check (tap_create (), uri, false, EPERM, 0,
             "URI, tls-certificates= without nbd_set_uri_allow_local_file");

  /* nbd_set_uri_allow_tls(3): DISABLE refuses nbds:, REQUIRE refuses
   * nbd:.
   */
  snprintf (uri, sizeof uri,
            "nbds+unix://alice@/?socket=%s&tls-psk-file=%s",
            psk_sock, path ("tls/keys.psk"));
  h = tap_create ();
  if (nbd_set_uri_allow_tls (h, LIBNBD_TLS_DISABLE) == -1)
    tap_bail ("nbd_set_uri_allow_tls");
  uri_check (h, uri, true, EPERM, 0,
             "URI, nbds: with nbd_set_uri_allow_tls (DISABLE)");
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", path ("plain.sock"));
  h = tap_create ();
  if (nbd_set_uri_allow_tls (h, LIBNBD_TLS_REQUIRE) == -1)
    tap_bail ("nbd_set_uri_allow_tls");
  uri_check (h, uri, true, EPERM, 0,
             "URI, nbd: with nbd_set_uri_allow_tls (REQUIRE)");

  /* nbd: leaves the handle's TLS setting as it was: REQUIRE set before
   * still makes a TLS connection, the psk file of the query is used.
   */
  snprintf (uri, sizeof uri,
            "nbd+unix://alice@/?socket=%s&tls-psk-file=%s",
            psk_sock, path ("tls/keys.psk"));
  h = tap_create ();
  if (nbd_set_tls (h, LIBNBD_TLS_REQUIRE) == -1)
    tap_bail ("nbd_set_tls");
  uri_check (h, uri, true, CONNECTS, 1,
             "URI, nbd: on a handle set to REQUIRE");
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", psk_sock);
  uri_check (tap_create (), uri, true, ENOTSUP, 0,
             "URI, nbd: (TLS off) to a server that requires TLS");

  /* Wrong credentials in the URI. */
  snprintf (uri, sizeof uri,
            "nbds+unix://alice@/?socket=%s&tls-psk-file=%s",
            psk_sock, path ("tls/other.psk"));
  uri_check (tap_create (), uri, true, ERRNO_0, 0, "URI, wrong PSK");
  snprintf (uri, sizeof uri, "nbds+unix:///?socket=%s", path ("plain.sock"));
  uri_check (tap_create (), uri, true, ENOTSUP, 0,
             "URI, nbds: to a server without TLS");
}

/* The API form: nbd_set_tls, then credentials, then nbd_connect_*. */
static void
test_psk (void)
{
  const char *keys = path ("tls/keys.psk");

  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL, keys, "alice"), "psk",
              CONNECTS, 1, "PSK, REQUIRE");
  unix_check (tls_handle (LIBNBD_TLS_ALLOW, NULL, keys, "alice"), "psk",
              CONNECTS, 1, "PSK, ALLOW, to a TLS server");
  unix_check (tls_handle (LIBNBD_TLS_ALLOW, NULL, keys, "alice"), "plain",
              CONNECTS, 0, "PSK, ALLOW, to a server without TLS");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL, keys, "alice"), "plain",
              ENOTSUP, 0, "PSK, REQUIRE, to a server without TLS");
  unix_check (tls_handle (LIBNBD_TLS_DISABLE, NULL, keys, "alice"), "psk",
              ENOTSUP, 0, "TLS disabled, to a server that requires TLS");

  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL,
                          path ("tls/other.psk"), "alice"), "psk",
              ERRNO_0, 0, "PSK, wrong key for alice");
  unix_check (tls_handle (LIBNBD_TLS_ALLOW, NULL,
                          path ("tls/other.psk"), "alice"), "psk",
              ERRNO_0, 0, "PSK, ALLOW, wrong key: no plaintext fallback");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL,
                          path ("tls/bob.psk"), "bob"), "psk",
              ERRNO_0, 0, "PSK, user bob unknown to the server");
  /* The client's own file has no key for the user it is told to be. */
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL, keys, "carol"), "psk",
              EINVAL, 0, "PSK, user carol not in the client's file");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL,
                          path ("tls/nonexistent.psk"), "alice"), "psk",
              ENOENT, 0, "PSK, the file does not exist");
  /* PSK and certificates are different mechanisms. */
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL, keys, "alice"), "x509",
              ERRNO_0, 0, "PSK client, X.509 server");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, path ("tls/client"), NULL,
                          NULL), "psk",
              ERRNO_0, 0, "X.509 client, PSK server");
}

static void
test_x509 (void)
{
  const char *client = path ("tls/client");
  const char *nocert = path ("tls/client-nocert");
  struct nbd_handle *h;

  h = tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL);
  if (nbd_set_tls_verify_peer (h, true) == -1)
    tap_bail ("nbd_set_tls_verify_peer");
  unix_check (h, "x509", CONNECTS, 1, "X.509, REQUIRE, verify peer");
  unix_check (tls_handle (LIBNBD_TLS_ALLOW, client, NULL, NULL), "x509",
              CONNECTS, 1, "X.509, ALLOW, to a TLS server");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
              "x509-peer", CONNECTS, 1,
              "X.509 with a client certificate, server verifies it");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, nocert, NULL, NULL),
              "x509-peer", ERRNO_0, 0,
              "X.509 without a client certificate, server wants one");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, path ("tls/nonexistent"),
                          NULL, NULL), "x509",
              MISSING_DIR, MISSING_DIR_NEGOTIATED,
              "X.509, Unix socket, the certificates dir does not exist");

  /* Over a Unix socket libnbd 1.14 verifies nothing (see the top);
   * libnbdc checks the chain and the dates.
   */
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
              "untrusted", UNIX_UNVERIFIABLE, UNIX_NEGOTIATED,
              "X.509, Unix socket, untrusted CA");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
              "expired", UNIX_UNVERIFIABLE, UNIX_NEGOTIATED,
              "X.509, Unix socket, expired certificate");
  /* No host name to compare: a certificate for another name is fine. */
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
              "wronghost", CONNECTS, 1,
              "X.509, Unix socket, certificate for wrong.invalid");
  h = tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL);
  if (nbd_set_tls_verify_peer (h, false) == -1)
    tap_bail ("nbd_set_tls_verify_peer");
  unix_check (h, "untrusted", CONNECTS, 1,
              "X.509, Unix socket, untrusted CA, verify peer off");

  /* TCP: the certificate is verified against the host name. */
  tcp_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
             "localhost", "tcp-x509", CONNECTS, 1, "X.509, TCP localhost");
  tcp_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
             "127.0.0.1", "tcp-x509", CONNECTS, 1,
             "X.509, TCP 127.0.0.1 (an IP address in the certificate)");
  tcp_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
             "localhost", "tcp-untrusted", ERRNO_0, 0,
             "X.509, TCP, untrusted CA");
  tcp_check (tls_handle (LIBNBD_TLS_ALLOW, client, NULL, NULL),
             "localhost", "tcp-untrusted", ERRNO_0, 0,
             "X.509, TCP, ALLOW, untrusted CA: no plaintext fallback");
  tcp_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
             "localhost", "tcp-expired", ERRNO_0, 0,
             "X.509, TCP, expired certificate");
  tcp_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
             "localhost", "tcp-wronghost", ERRNO_0, 0,
             "X.509, TCP localhost, certificate for wrong.invalid");
  tcp_check (tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL),
             "127.0.0.1", "tcp-wronghost", ERRNO_0, 0,
             "X.509, TCP 127.0.0.1, certificate for wrong.invalid");
  tcp_check (tls_handle (LIBNBD_TLS_REQUIRE, path ("tls/nonexistent"),
                         NULL, NULL), "localhost", "tcp-x509", MISSING_DIR,
             MISSING_DIR_NEGOTIATED,
             "X.509, TCP, the certificates dir does not exist");
  h = tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL);
  if (nbd_set_tls_verify_peer (h, false) == -1)
    tap_bail ("nbd_set_tls_verify_peer");
  tcp_check (h, "localhost", "tcp-untrusted", CONNECTS, 1,
             "X.509, TCP, untrusted CA, verify peer off");
  h = tls_handle (LIBNBD_TLS_REQUIRE, client, NULL, NULL);
  if (nbd_set_tls_verify_peer (h, false) == -1)
    tap_bail ("nbd_set_tls_verify_peer");
  tcp_check (h, "localhost", "tcp-wronghost", CONNECTS, 1,
             "X.509, TCP, another host's name, verify peer off");
}

/* nbds://HOST:PORT/?tls-certificates=CLIENT to the TCP port of SERVER. */
static void
tcp_uri_check (const char *host, const char *server, int expected,
               int negotiated, const char *what)
{
  const char *port = port_of (server);
  char uri[8192];

  if (port == NULL) {
    tap_skip ("no TCP server", "%s", what);
    return;
  }
  snprintf (uri, sizeof uri, "nbds://%s:%s/?tls-certificates=%s", host,
            port, path ("tls/client"));
  uri_check (tap_create (), uri, true, expected, negotiated, what);
}

/* The same over nbd_connect_uri(3) with nbds:// TCP URIs. */
static void
test_tcp_uris (void)
{
  tcp_uri_check ("localhost", "tcp-x509", CONNECTS, 1,
                 "URI, X.509, TCP localhost");
  tcp_uri_check ("127.0.0.1", "tcp-x509", CONNECTS, 1,
                 "URI, X.509, TCP 127.0.0.1");
  tcp_uri_check ("localhost", "tcp-untrusted", ERRNO_0, 0,
                 "URI, X.509, TCP, untrusted CA");
  tcp_uri_check ("localhost", "tcp-expired", ERRNO_0, 0,
                 "URI, X.509, TCP, expired certificate");
  tcp_uri_check ("localhost", "tcp-wronghost", ERRNO_0, 0,
                 "URI, X.509, TCP localhost, certificate for wrong.invalid");
}

/* qemu-nbd's TLS (tls-creds-x509, tls-creds-psk). */
static void
test_qemu (void)
{
  char uri[8192];

  if (!exists (path ("qemu-x509.sock"))) {
    tap_skip ("qemu-nbd has no TLS here", "qemu-nbd, X.509");
    return;
  }
  snprintf (uri, sizeof uri, "nbds+unix:///?socket=%s&tls-certificates=%s",
            path ("qemu-x509.sock"), path ("tls/client"));
  uri_check (tap_create (), uri, true, CONNECTS, 1, "qemu-nbd, X.509, URI");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, path ("tls/client"), NULL,
                          NULL), "qemu-x509", CONNECTS, 1,
              "qemu-nbd, X.509, API");
  unix_check (tls_handle (LIBNBD_TLS_DISABLE, NULL, NULL, NULL),
              "qemu-x509", ENOTSUP, 0,
              "qemu-nbd, TLS disabled, to a server that requires TLS");
  if (!exists (path ("qemu-psk.sock"))) {
    tap_skip ("qemu-nbd has no PSK here", "qemu-nbd, PSK");
    return;
  }
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL, path ("tls/keys.psk"),
                          "alice"), "qemu-psk", CONNECTS, 1,
              "qemu-nbd, PSK");
  snprintf (uri, sizeof uri,
            "nbds+unix://alice@/?socket=%s&tls-psk-file=%s",
            path ("qemu-psk.sock"), path ("tls/keys.psk"));
  uri_check (tap_create (), uri, true, CONNECTS, 1, "qemu-nbd, PSK, URI");
  unix_check (tls_handle (LIBNBD_TLS_REQUIRE, NULL, path ("tls/other.psk"),
                          "alice"), "qemu-psk", ERRNO_0, 0,
              "qemu-nbd, wrong PSK");
}

int
main (int argc, char *argv[])
{
  tap_init ();
  if (argc != 2) {
    fprintf (stderr, "usage: %s DIR\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  dir = argv[1];
  if (setenv ("LOGNAME", TEST_LOGNAME, 1) == -1)
    tap_bail ("setenv");
  test_settings ();
  test_uris ();
  test_psk ();
  test_x509 ();
  test_tcp_uris ();
  test_qemu ();
  free_paths ();
  return 0;
}

#else /* !HAVE_TLS_API */

int
main (void)
{
  tap_init ();
  tap_ok (false, "this library has the TLS API (LIBNBD_HAVE_NBD_SET_TLS "
          "and the other TLS calls)");
  return 0;
}

#endif
