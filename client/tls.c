/* libnbdc: the TLS settings (nbd_set_tls(3) and its family) and what an
 * NBD URI may ask for (nbd_set_uri_allow_*).  Every setter works only on
 * a newly created handle, as in libnbd; crypto.c uses the settings when
 * the server accepts STARTTLS.
 */

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Replace a string setting of a newly created handle. */
static int
set_created_string (struct nbd_handle *h, char **field, const char *value)
{
  char *copy;
  int r;

  lock_handle (h);
  r = check_created (h);
  if (r == 0) {
    copy = strdup (value);
    if (copy == NULL) {
      set_error (errno, "strdup: %s", strerror (errno));
      r = -1;
    }
    else {
      free (*field);
      *field = copy;
    }
  }
  unlock_handle (h);
  return r;
}

/* A LIBNBD_TLS_* setting of a newly created handle. */
static int
set_created_tls (struct nbd_handle *h, int *field, int tls)
{
  int r = -1;

  if (tls < LIBNBD_TLS_DISABLE || tls > LIBNBD_TLS_REQUIRE) {
    set_error (EINVAL, "tls: invalid value for parameter: %d", tls);
    return -1;
  }
  lock_handle (h);
  if (check_created (h) == 0) {
    *field = tls;
    r = 0;
  }
  unlock_handle (h);
  return r;
}

int
nbd_set_tls (struct nbd_handle *h, int tls)
{
  ENTER ();
  return set_created_tls (h, &h->tls, tls);
}

int
nbd_get_tls (struct nbd_handle *h)
{
  return h->tls;
}

/* Known once the handshake got past STARTTLS (or went without it); as in
 * libnbd, a dead handle is EINVAL.
 */
int
nbd_get_tls_negotiated (struct nbd_handle *h)
{
  int r;

  ENTER ();
  lock_handle (h);
  if (h->state == STATE_NEGOTIATING || h->state == STATE_READY ||
      h->state == STATE_CLOSED)
    r = h->tls_negotiated;
  else {
    set_state_error (h);
    r = -1;
  }
  unlock_handle (h);
  return r;
}

int
nbd_set_tls_certificates (struct nbd_handle *h, const char *dir)
{
  ENTER ();
  CHECK_NOT_NULL (dir, -1);
  return set_created_string (h, &h->tls_certificates, dir);
}

int
nbd_set_tls_verify_peer (struct nbd_handle *h, bool verify)
{
  ENTER ();
  return set_created_bool (h, &h->tls_verify_peer, verify);
}

int
nbd_get_tls_verify_peer (struct nbd_handle *h)
{
  return h->tls_verify_peer;
}

int
nbd_set_tls_username (struct nbd_handle *h, const char *username)
{
  ENTER ();
  CHECK_NOT_NULL (username, -1);
  return set_created_string (h, &h->tls_username, username);
}

char *
nbd_get_tls_username (struct nbd_handle *h)
{
  char *r;

  ENTER ();
  lock_handle (h);
  r = tls_user_name (h);
  unlock_handle (h);
  return r;
}

int
nbd_set_tls_psk_file (struct nbd_handle *h, const char *filename)
{
  ENTER ();
  CHECK_NOT_NULL (filename, -1);
  return set_created_string (h, &h->tls_psk_file, filename);
}

int
nbd_set_uri_allow_transports (struct nbd_handle *h, uint32_t mask)
{
  int r = -1;

  ENTER ();
  if (mask & ~LIBNBD_ALLOW_TRANSPORT_MASK) {
    set_error (EINVAL, "mask: invalid value for flag: 0x%" PRIx32,
               mask & ~LIBNBD_ALLOW_TRANSPORT_MASK);
    return -1;
  }
  lock_handle (h);
  if (check_created (h) == 0) {
    h->uri_allow_transports = mask;
    r = 0;
  }
  unlock_handle (h);
  return r;
}

int
nbd_set_uri_allow_tls (struct nbd_handle *h, int tls)
{
  ENTER ();
  return set_created_tls (h, &h->uri_allow_tls, tls);
}

int
nbd_set_uri_allow_local_file (struct nbd_handle *h, bool allow)
{
  ENTER ();
  return set_created_bool (h, &h->uri_allow_local_file, allow);
}
