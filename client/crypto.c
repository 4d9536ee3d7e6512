/* libnbdc: TLS with GnuTLS, the second entry of the transport table.
 *
 * After the server acknowledges NBD_OPT_STARTTLS (handshake.c), tls_start
 * makes the credentials (a PSK file, or X.509 certificates with peer
 * verification), switches the handle to tls_transport and the handshake
 * then runs tls_handshake until the session is up.  Everything here is
 * non-blocking like the rest of the library: GnuTLS reads and writes the
 * socket through pull/push functions of our own (MSG_NOSIGNAL: no
 * SIGPIPE), returns GNUTLS_E_AGAIN where a socket call would block, and
 * says which direction it waits for.
 *
 * Key material never reaches a debug message; the PSK file is read once,
 * when TLS starts, and its buffer wiped after use.
 */

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <time.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* The largest PSK file read; psktool writes one short line per user. */
#define MAX_PSK_FILE (1024 * 1024)

/* A TLS handshake the server has not finished after this long fails
 * (GnuTLS's own default, which libnbd 1.14 ends up with); the environment
 * variable LIBNBDC_TLS_HANDSHAKE_TIMEOUT (seconds) changes it.
 */
#define TLS_HANDSHAKE_TIMEOUT 40

/* Most plaintext that fits in one TLS record: small writes (requests)
 * are gathered into one record up to this.
 */
#define MAX_RECORD 16384

struct tls_session {
  gnutls_session_t session;
  gnutls_certificate_credentials_t x509;
  gnutls_psk_client_credentials_t psk;
  size_t send_pending;          /* bytes of a record GnuTLS still holds */
  bool recv_wants_write;        /* a read waits for the socket to drain */
  struct timespec deadline;     /* of the handshake (CLOCK_MONOTONIC) */
  char gather[MAX_RECORD];      /* small iovecs gathered into one record */
  char error[256];              /* the text of the last failure */
};

/* Remember why the transport failed; errno says what kind of failure. */
static ssize_t
tls_failed (struct tls_session *t, int errnum, int err)
{
  snprintf (t->error, sizeof t->error, "TLS: %s", gnutls_strerror (err));
  errno = errnum;
  return -1;
}

/* GnuTLS's socket I/O: errno reaches GnuTLS as it is (EAGAIN: again). */
static ssize_t
tls_pull (gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
  struct nbd_handle *h = ptr;

  return recv (h->fd, buf, len, 0);
}

static ssize_t
tls_vec_push (gnutls_transport_ptr_t ptr, const giovec_t *iov, int n)
{
  struct nbd_handle *h = ptr;
  struct msghdr msg = { .msg_iov = (struct iovec *) iov, .msg_iovlen = n };

  return sendmsg (h->fd, &msg, MSG_NOSIGNAL);
}

static int
tls_pull_timeout (gnutls_transport_ptr_t ptr, unsigned ms)
{
  struct nbd_handle *h = ptr;
  struct pollfd fd = { .fd = h->fd, .events = POLLIN };

  return poll (&fd, 1, ms);
}

/* Records come one per call: a record holds at most 16 KiB, and what the
 * caller has no room for stays pending in GnuTLS (tls_pending).
 */
static ssize_t
tls_recv (struct nbd_handle *h, void *buf, size_t len)
{
  struct tls_session *t = h->tls_session;

  for (;;) {
    ssize_t r = gnutls_record_recv (t->session, buf, len);

    if (r >= 0) {
      t->recv_wants_write = false;
      return r;
    }
    switch (r) {
    case GNUTLS_E_AGAIN:
      t->recv_wants_write = gnutls_record_get_direction (t->session) == 1;
      errno = EAGAIN;
      return -1;
    case GNUTLS_E_INTERRUPTED:
      continue;
    case GNUTLS_E_WARNING_ALERT_RECEIVED:
    case GNUTLS_E_REHANDSHAKE:
      /* A warning, or a TLS 1.2 renegotiation request, which a client may
       * ignore (RFC 5246 7.4.1.1): the session goes on as it was.  "Would
       * block" rather than reading on, so a server sending nothing else
       * cannot hold this call (the recv budget counts calls).
       */
      debug (h, "ignoring a TLS %s from the server",
             r == GNUTLS_E_REHANDSHAKE ? "renegotiation request"
             : "warning alert");
      t->recv_wants_write = false;
      errno = EINTR;
      return -1;
    case GNUTLS_E_PREMATURE_TERMINATION:
      /* The server closed without close_notify: an end of file.  A reply
       * cut short by it still fails where the reply parser sees it.
       */
      return 0;
    case GNUTLS_E_FATAL_ALERT_RECEIVED:
      snprintf (t->error, sizeof t->error, "TLS: the server sent the "
                "alert \"%s\"", gnutls_alert_get_name
                (gnutls_alert_get (t->session)));
      errno = ECONNRESET;
      return -1;
    default:
      return tls_failed (t, EIO, r);
    }
  }
}

/* Send one record.  Small iovecs (requests) are gathered into one record;
 * a large buffer (write data) goes as it is, one record per call.  After
 * GNUTLS_E_AGAIN GnuTLS holds the encrypted record: the next call sends
 * that first and reports its bytes, which are the first bytes the caller
 * passes again (the send queue resumes where it stopped).
 */
static ssize_t
tls_sendv (struct nbd_handle *h, const struct iovec *iov, int n)
{
  struct tls_session *t = h->tls_session;
  const void *data = iov[0].iov_base;
  size_t len = iov[0].iov_len;
  ssize_t r;

  if (t->send_pending) {
    data = NULL;
    len = 0;
  }
  else if (len < MAX_RECORD && n > 1) {
    len = 0;
    for (int i = 0; i < n && len < MAX_RECORD; i++) {
      size_t part = iov[i].iov_len;

      if (part > MAX_RECORD - len)
        part = MAX_RECORD - len;
      memcpy (t->gather + len, iov[i].iov_base, part);
      len += part;
    }
    data = t->gather;
  }
  do
    r = gnutls_record_send (t->session, data, len);
  while (r == GNUTLS_E_INTERRUPTED && t->send_pending == 0);
  if (r >= 0) {
    t->send_pending = 0;
    return r;
  }
  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
    if (t->send_pending == 0)
      t->send_pending = len;
    errno = EAGAIN;
    return -1;
  }
  return tls_failed (t, r == GNUTLS_E_PUSH_ERROR ? EPIPE : EIO, r);
}

static bool
tls_pending (struct nbd_handle *h)
{
  struct tls_session *t = h->tls_session;

  return t && gnutls_record_check_pending (t->session) > 0;
}

static bool
tls_wants_write (const struct nbd_handle *h)
{
  const struct tls_session *t = h->tls_session;

  return t && (t->recv_wants_write || t->send_pending);
}

/* After NBD_CMD_DISC: close_notify, then no more writes (best effort: the
 * alert is small and the socket just took the request).
 */
static int
tls_shut_writes (struct nbd_handle *h)
{
  int r = gnutls_bye (h->tls_session->session, GNUTLS_SHUT_WR);

  if (r != GNUTLS_E_SUCCESS)
    debug (h, "gnutls_bye: %s", gnutls_strerror (r));
  return shutdown (h->fd, SHUT_WR);
}

static void
tls_free (struct tls_session *t)
{
  if (t == NULL)
    return;
  if (t->session)
    gnutls_deinit (t->session);
  if (t->x509)
    gnutls_certificate_free_credentials (t->x509);
  if (t->psk)
    gnutls_psk_free_client_credentials (t->psk);
  free (t);
}

static void
tls_close (struct nbd_handle *h)
{
  tls_free (h->tls_session);
  h->tls_session = NULL;
  if (h->fd >= 0)
    close (h->fd);
  h->fd = -1;
}

static const char *
tls_error (struct nbd_handle *h)
{
  struct tls_session *t = h->tls_session;

  return t && t->error[0] ? t->error : NULL;
}

const struct transport tls_transport = {
  .name = "tls",
  .recv = tls_recv,
  .sendv = tls_sendv,
  .pending = tls_pending,
  .wants_write = tls_wants_write,
  .shut_writes = tls_shut_writes,
  .close = tls_close,
  .error = tls_error,
};

/* The TLS user name: the one set, else $LOGNAME, else the login name (as
 * libnbd).
 */
char *
tls_user_name (struct nbd_handle *h)
{
  const char *logname = getenv ("LOGNAME");
  char name[256];
  int err;

  if (h->tls_username)
    return strdup (h->tls_username);
  if (logname && *logname)
    return strdup (logname);
  err = getlogin_r (name, sizeof name);
  if (err) {
    set_error (err, "getlogin_r: %s", strerror (err));
    return NULL;
  }
  return strdup (name);
}

/* Read the whole PSK file (psktool format: "user:hexkey" lines). */
static char *
read_psk_file (struct nbd_handle *h, size_t *size)
{
  int fd = open (h->tls_psk_file, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf = NULL;
  ssize_t r = -1;

  if (fd == -1 || fstat (fd, &st) == -1)
    goto err;
  if (st.st_size > MAX_PSK_FILE) {
    errno = EFBIG;
    goto err;
  }
  buf = malloc (st.st_size + 1);
  if (buf == NULL)
    goto err;
  r = read (fd, buf, st.st_size);
  if (r == -1)
    goto err;
  close (fd);
  buf[r] = '\0';
  *size = st.st_size + 1;
  return buf;

 err:
  set_dead (h, errno, "TLS PSK file %s: %s", h->tls_psk_file,
            strerror (errno));
  if (fd >= 0)
    close (fd);
  free (buf);
  return NULL;
}

/* PSK credentials for the handle's user from its PSK file. */
static int
set_psk_credentials (struct nbd_handle *h, struct tls_session *t)
{
  char *user = tls_user_name (h), *buf = NULL, *line, *save = NULL;
  size_t size = 0, ulen;
  int r = -1, err;

  if (user == NULL) {
    set_dead (h, errno ? errno : ENOMEM, "TLS: no user name for the PSK "
              "file (nbd_set_tls_username(3))");
    return -1;
  }
  buf = read_psk_file (h, &size);
  if (buf == NULL)
    goto out;
  ulen = strlen (user);
  for (line = strtok_r (buf, "\r\n", &save); line;
       line = strtok_r (NULL, "\r\n", &save))
    if (strncmp (line, user, ulen) == 0 && line[ulen] == ':')
      break;
  if (line == NULL) {
    set_dead (h, EINVAL, "TLS: user \"%s\" not found in the PSK file %s",
              user, h->tls_psk_file);
    goto out;
  }
  {
    gnutls_datum_t key = {
      .data = (unsigned char *) line + ulen + 1,
      .size = strlen (line + ulen + 1),
    };

    err = gnutls_psk_allocate_client_credentials (&t->psk);
    if (err == GNUTLS_E_SUCCESS)
      err = gnutls_psk_set_client_credentials (t->psk, user, &key,
                                               GNUTLS_PSK_KEY_HEX);
  }
  if (err != GNUTLS_E_SUCCESS) {
    set_dead (h, EINVAL, "TLS: the key of \"%s\" in the PSK file %s: %s",
              user, h->tls_psk_file, gnutls_strerror (err));
    goto out;
  }
  err = gnutls_credentials_set (t->session, GNUTLS_CRD_PSK, t->psk);
  if (err == GNUTLS_E_SUCCESS)
    err = gnutls_priority_set_direct (t->session,
                                      "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK",
                                      NULL);
  if (err != GNUTLS_E_SUCCESS) {
    set_dead (h, EIO, "TLS: PSK credentials: %s", gnutls_strerror (err));
    goto out;
  }
  debug (h, "TLS: PSK as user \"%s\"", user);
  r = 0;
 out:
  if (buf)
    explicit_bzero (buf, size);
  free (buf);
  free (user);
  return r;
}

static bool
is_directory (const char *path)
{
  struct stat st;

  return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

/* The certificates directory: the one set, else libnbd's defaults (for
 * root /etc/pki/libnbd, else ~/.pki/libnbd or ~/.config/pki/libnbd);
 * NULL: none, the system's trusted CAs.  The result is to be freed.
 */
static char *
certificates_directory (struct nbd_handle *h)
{
  const char *home = getenv ("HOME");
  char *dir;

  if (h->tls_certificates)
    return strdup (h->tls_certificates);
  if (geteuid () == 0)
    return is_directory ("/etc/pki/libnbd") ? strdup ("/etc/pki/libnbd")
      : NULL;
  if (home == NULL)
    return NULL;
  for (int i = 0; i < 2; i++) {
    if (asprintf (&dir, "%s/%s", home,
                  i == 0 ? ".pki/libnbd" : ".config/pki/libnbd") == -1)
      return NULL;
    if (is_directory (dir))
      return dir;
    free (dir);
  }
  return NULL;
}

/* Does dir/name exist?  Returns its path (to be freed) or NULL. */
static char *
cert_file (const char *dir, const char *name)
{
  char *path;

  if (dir == NULL)
    return NULL;
  if (asprintf (&path, "%s/%s", dir, name) == -1)
    return NULL;
  if (access (path, R_OK) == 0)
    return path;
  free (path);
  return NULL;
}

/* Load the CA, CRL and client certificate of dir (NULL: none, only the
 * system's CAs) into t->x509.
 */
static int
load_certificates (struct nbd_handle *h, struct tls_session *t,
                   const char *dir)
{
  char *ca = cert_file (dir, "ca-cert.pem");
  char *crl = cert_file (dir, "ca-crl.pem");
  char *cert = cert_file (dir, "client-cert.pem");
  char *key = cert_file (dir, "client-key.pem");
  const char *what = NULL;
  int err = GNUTLS_E_SUCCESS;

  if (ca) {
    err = gnutls_certificate_set_x509_trust_file (t->x509, ca,
                                                  GNUTLS_X509_FMT_PEM);
    what = ca;
  }
  else
    err = gnutls_certificate_set_x509_system_trust (t->x509);
  if (err >= 0 && crl) {
    err = gnutls_certificate_set_x509_crl_file (t->x509, crl,
                                                GNUTLS_X509_FMT_PEM);
    what = crl;
  }
  if (err >= 0 && cert && key) {
    err = gnutls_certificate_set_x509_key_file (t->x509, cert, key,
                                                GNUTLS_X509_FMT_PEM);
    what = cert;
  }
  if (err < 0)
    set_dead (h, EIO, "TLS: %s: %s", what ? what : "system trust store",
              gnutls_strerror (err));
  else
    debug (h, "TLS: certificates from %s%s", dir ? dir : "the system",
           cert && key ? " (with a client certificate)" : "");
  free (ca);
  free (crl);
  free (cert);
  free (key);
  return err < 0 ? -1 : 0;
}

/* X.509 credentials; the server's certificate is checked against the
 * trusted CAs and, over TCP, the host name (nbd_set_tls_verify_peer(3)).
 */
static int
set_x509_credentials (struct nbd_handle *h, struct tls_session *t)
{
  char *dir = certificates_directory (h);
  int err, r;

  err = gnutls_certificate_allocate_credentials (&t->x509);
  if (err != GNUTLS_E_SUCCESS) {
    set_dead (h, ENOMEM, "TLS: %s", gnutls_strerror (err));
    free (dir);
    return -1;
  }
  r = load_certificates (h, t, dir);
  free (dir);
  if (r == -1)
    return -1;
  err = gnutls_credentials_set (t->session, GNUTLS_CRD_CERTIFICATE, t->x509);
  if (err == GNUTLS_E_SUCCESS)
    err = gnutls_set_default_priority (t->session);
  if (err != GNUTLS_E_SUCCESS) {
    set_dead (h, EIO, "TLS: X.509 credentials: %s", gnutls_strerror (err));
    return -1;
  }
  if (h->tls_verify_peer)
    gnutls_session_set_verify_cert (t->session, h->tls_hostname, 0);
  return 0;
}

/* A host name that is not an address literal goes out as SNI. */
static void
set_server_name (struct nbd_handle *h, struct tls_session *t)
{
  unsigned char addr[sizeof (struct in6_addr)];
  const char *host = h->tls_hostname;

  if (host && *host && inet_pton (AF_INET, host, addr) != 1 &&
      inet_pton (AF_INET6, host, addr) != 1 &&
      gnutls_server_name_set (t->session, GNUTLS_NAME_DNS, host,
                              strlen (host)) != GNUTLS_E_SUCCESS)
    debug (h, "TLS: cannot send the server name %s", host);
}

static int
handshake_timeout (void)
{
  const char *s = getenv ("LIBNBDC_TLS_HANDSHAKE_TIMEOUT");
  int v = s ? atoi (s) : 0;

  return v > 0 ? v : TLS_HANDSHAKE_TIMEOUT;
}

/* The server acknowledged NBD_OPT_STARTTLS: set up the session and switch
 * the handle to the TLS transport.  Returns 0, or -1 with the handle dead.
 */
int
tls_start (struct nbd_handle *h)
{
  struct tls_session *t = calloc (1, sizeof *t);
  int err;

  if (t == NULL) {
    set_dead (h, errno, "TLS: %s", strerror (errno));
    return -1;
  }
  err = gnutls_init (&t->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
  if (err != GNUTLS_E_SUCCESS) {
    set_dead (h, ENOMEM, "TLS: gnutls_init: %s", gnutls_strerror (err));
    tls_free (t);
    return -1;
  }
  if ((h->tls_psk_file ? set_psk_credentials (h, t)
       : set_x509_credentials (h, t)) == -1) {
    tls_free (t);
    return -1;
  }
  set_server_name (h, t);
  gnutls_transport_set_ptr (t->session, h);
  gnutls_transport_set_pull_function (t->session, tls_pull);
  gnutls_transport_set_pull_timeout_function (t->session, tls_pull_timeout);
  gnutls_transport_set_vec_push_function (t->session, tls_vec_push);
  clock_gettime (CLOCK_MONOTONIC, &t->deadline);
  t->deadline.tv_sec += handshake_timeout ();
  h->tls_session = t;
  h->transport = &tls_transport;
  return 0;
}

/* Milliseconds left until the TLS handshake's deadline, or -1 when no
 * handshake is running.
 */
static int64_t
handshake_ms_left (const struct nbd_handle *h)
{
  struct timespec now;
  int64_t ms;

  if (h->tls_session == NULL || h->state != STATE_HANDSHAKE ||
      h->phase != PHASE_TLS_HANDSHAKE)
    return -1;
  clock_gettime (CLOCK_MONOTONIC, &now);
  ms = (h->tls_session->deadline.tv_sec - now.tv_sec) * 1000 +
    (h->tls_session->deadline.tv_nsec - now.tv_nsec) / 1000000;
  return ms < 0 ? 0 : ms;
}

/* A poll timeout (ms, < 0: none) cut to the handshake's deadline. */
int
tls_poll_timeout (const struct nbd_handle *h, int timeout)
{
  int64_t left = handshake_ms_left (h);

  if (left >= 0 && (timeout < 0 || left < timeout))
    return left;
  return timeout;
}

/* After a poll that timed out: if the handshake's deadline passed, the
 * connection fails (ETIMEDOUT) and this returns true.
 */
bool
tls_handshake_expired (struct nbd_handle *h)
{
  if (handshake_ms_left (h) != 0)
    return false;
  set_dead (h, ETIMEDOUT, "TLS handshake: the server did not finish it "
            "within %d seconds", handshake_timeout ());
  return true;
}

/* Why the server's certificate was refused, in words. */
static void
verify_failed (struct nbd_handle *h, struct tls_session *t)
{
  unsigned status = gnutls_session_get_verify_cert_status (t->session);
  gnutls_datum_t out = { 0 };

  if (gnutls_certificate_verification_status_print
      (status, GNUTLS_CRT_X509, &out, 0) < 0)
    out.data = NULL;
  set_dead (h, EPERM, "TLS: the server's certificate was refused: %s",
            out.data ? (char *) out.data : "verification failed");
  gnutls_free (out.data);
}

/* Advance the TLS handshake: IO_DONE when the session is up, IO_AGAIN
 * when it waits for the socket, IO_ERROR with the handle dead.
 */
int
tls_handshake (struct nbd_handle *h)
{
  struct tls_session *t = h->tls_session;
  int err = gnutls_handshake (t->session);
  char *desc;

  switch (err) {
  case GNUTLS_E_SUCCESS:
    break;
  case GNUTLS_E_AGAIN:
  case GNUTLS_E_INTERRUPTED:
    t->recv_wants_write = gnutls_record_get_direction (t->session) == 1;
    return IO_AGAIN;
  case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
    verify_failed (h, t);
    return IO_ERROR;
  case GNUTLS_E_FATAL_ALERT_RECEIVED:
    set_dead (h, ECONNRESET, "TLS handshake: the server sent the alert "
              "\"%s\"", gnutls_alert_get_name (gnutls_alert_get
                                              (t->session)));
    return IO_ERROR;
  case GNUTLS_E_PREMATURE_TERMINATION:
  case GNUTLS_E_PULL_ERROR:
  case GNUTLS_E_PUSH_ERROR:
    set_dead (h, ECONNRESET, "TLS handshake: the server closed the "
              "connection (%s)", gnutls_strerror (err));
    return IO_ERROR;
  case GNUTLS_E_MEMORY_ERROR:
    set_dead (h, ENOMEM, "TLS handshake: %s", gnutls_strerror (err));
    return IO_ERROR;
  default:
    /* What the server sent is not a TLS handshake we accept. */
    set_dead (h, EPROTO, "TLS handshake: %s", gnutls_strerror (err));
    return IO_ERROR;
  }
  t->recv_wants_write = false;
  desc = gnutls_session_get_desc (t->session);
  debug (h, "TLS session up: %s", desc ? desc : "?");
  gnutls_free (desc);
  return IO_DONE;
}
