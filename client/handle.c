/* libnbdc: handle creation and destruction, settings, and the getters of
 * what the handshake learned.
 */

#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

static atomic_uint handle_serial;

struct nbd_handle *
nbd_create (void)
{
  struct nbd_handle *h;
  const char *s;

  ENTER ();
  h = calloc (1, sizeof *h);
  if (h == NULL)
    goto err;
  h->fd = -1;
  h->wakefd = -1;
  h->next_cookie = 1;
  h->request_sr = true;
  h->pread_initialize = true;
  h->handshake_flags = LIBNBD_HANDSHAKE_FLAG_MASK;
  h->strict = LIBNBD_STRICT_MASK;
  h->tls_verify_peer = true;
  h->uri_allow_transports = LIBNBD_ALLOW_TRANSPORT_MASK;
  h->uri_allow_tls = LIBNBD_TLS_ALLOW;
  h->export_name = strdup ("");
  h->inbuf = malloc (INBUF_SIZE);
  h->hash_size = 64;
  h->hash = calloc (h->hash_size, sizeof *h->hash);
  if (asprintf (&h->hname, "nbd%u", atomic_fetch_add (&handle_serial, 1) + 1)
      == -1)
    h->hname = NULL;
  if (!h->export_name || !h->inbuf || !h->hash || !h->hname)
    goto err;
  if (pthread_mutex_init (&h->lock, NULL) != 0)
    goto err;
  s = getenv ("LIBNBD_DEBUG");
  h->debug = s && strcmp (s, "1") == 0;
  return h;

 err:
  set_error (errno ? errno : ENOMEM, "cannot allocate the handle");
  if (h) {
    free (h->export_name);
    free (h->inbuf);
    free (h->hash);
    free (h->hname);
    free (h);
  }
  return NULL;
}

static void
free_string_list (char **list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (list[i]);
  free (list);
}

/* Destroy the handle.  Commands still queued or in flight are dropped: their
 * completion callbacks are not called, but every .free runs exactly once.
 */
void
nbd_close (struct nbd_handle *h)
{
  if (h == NULL)
    return;
  ENTER ();
  commands_free_all (h);
  if (h->debug_callback.free)
    h->debug_callback.free (h->debug_callback.user_data);
  if (h->transport)
    h->transport->close (h);
  else if (h->fd >= 0)
    close (h->fd);
  if (h->wakefd >= 0)
    close (h->wakefd);
  if (h->pid > 0)
    waitpid (h->pid, NULL, 0);
  if (h->addrinfo)
    freeaddrinfo (h->addrinfo);
  option_forget (h);
  free (h->opt_error);
  free_negotiated (h);
  free_string_list (h->request_meta, h->nr_request_meta);
  free (h->hash);
  free (h->inbuf);
  free (h->extents);
  free (h->obuf);
  free (h->uri);
  free (h->dead_reason);
  free (h->export_name);
  free (h->hname);
  free (h->tls_certificates);
  free (h->tls_username);
  free (h->tls_psk_file);
  free (h->tls_hostname);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

const char *
nbd_get_version (struct nbd_handle *h)
{
  /* The libnbd API level implemented, as a dotted triple that programs
   * comparing versions understand; libnbdc's own version is in nbdc.pc.
   */
  return "1.14.0";
}

/* Settings that only make sense before connecting. */
int
check_created (struct nbd_handle *h)
{
  if (h->state != STATE_CREATED) {
    set_error (EINVAL, "invalid state: %s: the handle must be newly created",
               state_name (h));
    return -1;
  }
  return 0;
}

/* Settings that opt mode may still change between options (the man
 * pages' "newly created, or negotiating").
 */
static int
check_created_or_negotiating (struct nbd_handle *h)
{
  if (h->state != STATE_CREATED && h->state != STATE_NEGOTIATING) {
    set_error (EINVAL, "invalid state: %s: the handle must be newly "
               "created, or negotiating", state_name (h));
    return -1;
  }
  return 0;
}

int
nbd_set_debug (struct nbd_handle *h, bool debug)
{
  ENTER ();
  lock_handle (h);
  h->debug = debug;
  unlock_handle (h);
  return 0;
}

int
nbd_get_debug (struct nbd_handle *h)
{
  return h->debug;
}

int
nbd_set_debug_callback (struct nbd_handle *h, nbd_debug_callback cb)
{
  ENTER ();
  lock_handle (h);
  if (h->debug_callback.free)
    h->debug_callback.free (h->debug_callback.user_data);
  h->debug_callback = cb;
  unlock_handle (h);
  return 0;
}

int
nbd_clear_debug_callback (struct nbd_handle *h)
{
  return nbd_set_debug_callback (h, (nbd_debug_callback) { .callback = NULL });
}

int
nbd_set_handle_name (struct nbd_handle *h, const char *name)
{
  char *copy;

  ENTER ();
  CHECK_NOT_NULL (name, -1);
  copy = strdup (name);
  if (copy == NULL) {
    set_error (errno, "strdup");
    return -1;
  }
  lock_handle (h);
  free (h->hname);
  h->hname = copy;
  unlock_handle (h);
  return 0;
}

/* Copy a string for the caller, who frees it. */
static char *
copy_string (struct nbd_handle *h, const char *s)
{
  char *copy;

  copy = strdup (s);
  if (copy == NULL)
    set_error (errno, "strdup");
  return copy;
}

char *
nbd_get_handle_name (struct nbd_handle *h)
{
  char *r;

  ENTER ();
  lock_handle (h);
  r = copy_string (h, h->hname);
  unlock_handle (h);
  return r;
}

uintptr_t
nbd_set_private_data (struct nbd_handle *h, uintptr_t data)
{
  uintptr_t old = h->private_data;

  h->private_data = data;
  return old;
}

uintptr_t
nbd_get_private_data (struct nbd_handle *h)
{
  return h->private_data;
}

int
nbd_set_export_name (struct nbd_handle *h, const char *name)
{
  char *copy;
  int r = -1;

  ENTER ();
  CHECK_NOT_NULL (name, -1);
  if (strlen (name) > NBD_MAX_STRING) {
    set_error (ENAMETOOLONG, "export name too long");
    return -1;
  }
  lock_handle (h);
  if (check_created_or_negotiating (h) == -1)
    goto out;
  copy = strdup (name);
  if (copy == NULL) {
    set_error (errno, "strdup");
    goto out;
  }
  free (h->export_name);
  h->export_name = copy;
  r = 0;
 out:
  unlock_handle (h);
  return r;
}

char *
nbd_get_export_name (struct nbd_handle *h)
{
  char *r;

  ENTER ();
  lock_handle (h);
  r = copy_string (h, h->export_name);
  unlock_handle (h);
  return r;
}

/* Boolean settings allowed only before connecting. */
int
set_created_bool (struct nbd_handle *h, bool *field, bool value)
{
  int r;

  lock_handle (h);
  r = check_created (h);
  if (r == 0)
    *field = value;
  unlock_handle (h);
  return r;
}

int
nbd_set_full_info (struct nbd_handle *h, bool request)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = check_created_or_negotiating (h);
  if (r == 0)
    h->full_info = request;
  unlock_handle (h);
  return r;
}

int
nbd_get_full_info (struct nbd_handle *h)
{
  return h->full_info;
}

/* nbd_set_opt_mode(3): stop in the negotiating state after connecting. */
int
nbd_set_opt_mode (struct nbd_handle *h, bool enable)
{
  ENTER ();
  return set_created_bool (h, &h->opt_mode, enable);
}

int
nbd_get_opt_mode (struct nbd_handle *h)
{
  return h->opt_mode;
}

int
nbd_set_request_structured_replies (struct nbd_handle *h, bool request)
{
  ENTER ();
  return set_created_bool (h, &h->request_sr, request);
}

int
nbd_get_request_structured_replies (struct nbd_handle *h)
{
  return h->request_sr;
}

int
nbd_get_structured_replies_negotiated (struct nbd_handle *h)
{
  return h->sr_negotiated;
}

int
nbd_set_pread_initialize (struct nbd_handle *h, bool request)
{
  h->pread_initialize = request;
  return 0;
}

int
nbd_get_pread_initialize (struct nbd_handle *h)
{
  return h->pread_initialize;
}

int
nbd_set_handshake_flags (struct nbd_handle *h, uint32_t flags)
{
  int r;

  ENTER ();
  if (flags & ~LIBNBD_HANDSHAKE_FLAG_MASK) {
    set_error (EINVAL, "flags: unknown handshake flags 0x%x", flags);
    return -1;
  }
  lock_handle (h);
  r = check_created (h);
  if (r == 0)
    h->handshake_flags = flags;
  unlock_handle (h);
  return r;
}

uint32_t
nbd_get_handshake_flags (struct nbd_handle *h)
{
  return h->handshake_flags;
}

int
nbd_set_strict_mode (struct nbd_handle *h, uint32_t flags)
{
  ENTER ();
  if (flags & ~LIBNBD_STRICT_MASK) {
    set_error (EINVAL, "flags: unknown strict flags 0x%x", flags);
    return -1;
  }
  lock_handle (h);
  h->strict = flags;
  unlock_handle (h);
  return 0;
}

uint32_t
nbd_get_strict_mode (struct nbd_handle *h)
{
  return h->strict;
}

int
nbd_add_meta_context (struct nbd_handle *h, const char *name)
{
  char **list, *copy;
  int r = -1;

  ENTER ();
  CHECK_NOT_NULL (name, -1);
  if (strlen (name) > NBD_MAX_STRING) {
    set_error (ENAMETOOLONG, "meta context name too long");
    return -1;
  }
  lock_handle (h);
  if (check_created_or_negotiating (h) == -1)
    goto out;
  if (h->nr_request_meta >= MAX_META_CONTEXTS) {
    set_error (ERANGE, "too many meta contexts");
    goto out;
  }
  copy = strdup (name);
  list = realloc (h->request_meta,
                  (h->nr_request_meta + 1) * sizeof *list);
  if (copy == NULL || list == NULL) {
    free (copy);
    set_error (ENOMEM, "cannot add meta context");
    goto out;
  }
  h->request_meta = list;
  list[h->nr_request_meta++] = copy;
  r = 0;
 out:
  unlock_handle (h);
  return r;
}

ssize_t
nbd_get_nr_meta_contexts (struct nbd_handle *h)
{
  return h->nr_request_meta;
}

char *
nbd_get_meta_context (struct nbd_handle *h, size_t i)
{
  char *r = NULL;

  ENTER ();
  lock_handle (h);
  if (i >= h->nr_request_meta)
    set_error (EINVAL, "meta context request out of range");
  else
    r = copy_string (h, h->request_meta[i]);
  unlock_handle (h);
  return r;
}

int
nbd_clear_meta_contexts (struct nbd_handle *h)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = check_created_or_negotiating (h);
  if (r == 0) {
    free_string_list (h->request_meta, h->nr_request_meta);
    h->request_meta = NULL;
    h->nr_request_meta = 0;
  }
  unlock_handle (h);
  return r;
}

int
nbd_supports_tls (struct nbd_handle *h)
{
  return 1;                     /* GnuTLS (crypto.c) */
}

int
nbd_supports_uri (struct nbd_handle *h)
{
  return 1;
}

int
nbd_kill_subprocess (struct nbd_handle *h, int signum)
{
  int r = -1;

  ENTER ();
  if (signum < 0) {
    set_error (EINVAL, "signum: invalid signal number %d", signum);
    return -1;
  }
  /* Only the signal, as in libnbd: the subprocess may wait for the
   * connection to close before it exits, so nbd_close reaps it.
   */
  lock_handle (h);
  if (h->pid <= 0)
    set_error (ESRCH, "no subprocess exists");
  else if (kill (h->pid, signum ? signum : SIGTERM) == -1)
    set_error (errno, "kill");
  else
    r = 0;
  unlock_handle (h);
  return r;
}

/* ----- What the handshake learned. ----- */

/* The handle talked to the server and waits for nothing: negotiating (opt
 * mode), connected, or cleanly closed.
 */
static bool
past_greeting (const struct nbd_handle *h)
{
  return h->state == STATE_NEGOTIATING || h->state == STATE_READY ||
    h->state == STATE_CLOSED;
}

/* These getters need to know the export: connected (or connected once and
 * cleanly shut down), or, in opt mode, after a successful nbd_opt_info.
 * As libnbd, negotiating without that is EINVAL.
 */
static int
check_negotiated (struct nbd_handle *h)
{
  if (!past_greeting (h)) {
    set_state_error (h);
    return -1;
  }
  if (!h->negotiated) {
    set_error (EINVAL, "the server has not described the export yet (use "
               "nbd_opt_info or nbd_opt_go)");
    return -1;
  }
  return 0;
}

int64_t
nbd_get_size (struct nbd_handle *h)
{
  int64_t r;

  ENTER ();
  lock_handle (h);
  r = check_negotiated (h) == -1 ? -1 : (int64_t) h->exportsize;
  unlock_handle (h);
  return r;
}

/* One transmission flag as a boolean, or -1. */
static int
get_eflag (struct nbd_handle *h, uint16_t flag)
{
  int r;

  lock_handle (h);
  r = check_negotiated (h) == -1 ? -1 : (h->eflags & flag) != 0;
  unlock_handle (h);
  return r;
}

#define EFLAG_GETTER(fn, flag)                  \
  int                                           \
  fn (struct nbd_handle *h)                     \
  {                                             \
    ENTER ();                                   \
    return get_eflag (h, flag);                 \
  }

EFLAG_GETTER (nbd_is_read_only, NBD_FLAG_READ_ONLY)
EFLAG_GETTER (nbd_can_flush, NBD_FLAG_SEND_FLUSH)
EFLAG_GETTER (nbd_can_fua, NBD_FLAG_SEND_FUA)
EFLAG_GETTER (nbd_is_rotational, NBD_FLAG_ROTATIONAL)
EFLAG_GETTER (nbd_can_trim, NBD_FLAG_SEND_TRIM)
EFLAG_GETTER (nbd_can_zero, NBD_FLAG_SEND_WRITE_ZEROES)
EFLAG_GETTER (nbd_can_multi_conn, NBD_FLAG_CAN_MULTI_CONN)
EFLAG_GETTER (nbd_can_cache, NBD_FLAG_SEND_CACHE)

/* As libnbd: fast zero needs WRITE_ZEROES, DF needs structured replies. */
int
nbd_can_fast_zero (struct nbd_handle *h)
{
  const uint16_t both = NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
  int r;

  ENTER ();
  lock_handle (h);
  r = check_negotiated (h) == -1 ? -1 : (h->eflags & both) == both;
  unlock_handle (h);
  return r;
}

int
nbd_can_df (struct nbd_handle *h)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = check_negotiated (h) == -1 ? -1 : can_df (h);
  unlock_handle (h);
  return r;
}

int
nbd_can_meta_context (struct nbd_handle *h, const char *name)
{
  int r;

  ENTER ();
  CHECK_NOT_NULL (name, -1);
  lock_handle (h);
  r = check_negotiated (h);
  if (r == 0) {
    for (size_t i = 0; i < h->nr_meta; i++)
      if (strcmp (h->meta[i].name, name) == 0) {
        r = 1;
        break;
      }
  }
  unlock_handle (h);
  return r;
}

int64_t
nbd_get_block_size (struct nbd_handle *h, int size_type)
{
  int64_t r = -1;

  ENTER ();
  lock_handle (h);
  if (check_negotiated (h) == -1)
    goto out;
  switch (size_type) {
  case LIBNBD_SIZE_MINIMUM: r = h->block_minimum; break;
  case LIBNBD_SIZE_PREFERRED: r = h->block_preferred; break;
  case LIBNBD_SIZE_MAXIMUM: r = h->block_maximum; break;
  default:
    set_error (EINVAL, "size_type: unknown size type %d", size_type);
  }
 out:
  unlock_handle (h);
  return r;
}

const char *
nbd_get_protocol (struct nbd_handle *h)
{
  const char *r;

  ENTER ();
  lock_handle (h);
  if (!past_greeting (h) || h->protocol == NULL) {
    set_state_error (h);
    r = NULL;
  }
  else
    r = h->protocol;
  unlock_handle (h);
  return r;
}

/* A string the server may have sent in NBD_INFO_NAME/DESCRIPTION. */
static char *
get_advertised (struct nbd_handle *h, const char *value, const char *what)
{
  char *r = NULL;

  if (check_negotiated (h) == -1)
    return NULL;
  if (value == NULL)
    set_error (ENOTSUP, "server did not advertise %s", what);
  else
    r = copy_string (h, value);
  return r;
}

char *
nbd_get_canonical_export_name (struct nbd_handle *h)
{
  char *r;

  ENTER ();
  lock_handle (h);
  r = get_advertised (h, h->canonical_name, "a canonical name");
  unlock_handle (h);
  return r;
}

char *
nbd_get_export_description (struct nbd_handle *h)
{
  char *r;

  ENTER ();
  lock_handle (h);
  r = get_advertised (h, h->description, "a description");
  unlock_handle (h);
  return r;
}

/* ----- States. ----- */

const char *
nbd_connection_state (struct nbd_handle *h)
{
  static const char *const text[] = {
    [STATE_CREATED] = "CREATED: Handle has been created",
    [STATE_CONNECTING] = "CONNECT: Connecting to the server",
    [STATE_HANDSHAKE] = "HANDSHAKE: Connection is negotiating options",
    [STATE_NEGOTIATING] =
      "NEGOTIATING: Connection is ready to negotiate an NBD option",
    [STATE_READY] = "READY: Connection is ready to process NBD commands",
    [STATE_DEAD] = "DEAD: Connection is in an unrecoverable error state",
    [STATE_CLOSED] = "CLOSED: Connection is closed",
  };

  if (is_processing (h))
    return "PROCESSING: Connection is processing NBD commands";
  return text[h->state];
}

int
nbd_aio_is_created (struct nbd_handle *h)
{
  return h->state == STATE_CREATED;
}

int
nbd_aio_is_connecting (struct nbd_handle *h)
{
  return h->state == STATE_CONNECTING || h->state == STATE_HANDSHAKE;
}

/* Opt mode, between options (an option in progress is "connecting"). */
int
nbd_aio_is_negotiating (struct nbd_handle *h)
{
  return h->state == STATE_NEGOTIATING;
}

int
nbd_aio_is_ready (struct nbd_handle *h)
{
  int r;

  lock_handle (h);
  r = h->state == STATE_READY && !is_processing (h);
  unlock_handle (h);
  return r;
}

int
nbd_aio_is_processing (struct nbd_handle *h)
{
  int r;

  lock_handle (h);
  r = is_processing (h);
  unlock_handle (h);
  return r;
}

int
nbd_aio_is_dead (struct nbd_handle *h)
{
  return h->state == STATE_DEAD;
}

int
nbd_aio_is_closed (struct nbd_handle *h)
{
  return h->state == STATE_CLOSED;
}
