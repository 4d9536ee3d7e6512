/* libnbdc: the thread-local error (nbd_get_error, nbd_get_errno) and debug
 * messages.  Every failing public call leaves "function: what" here.
 */

#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct last_error {
  const char *context;          /* the public function being run */
  int errnum;
  char *msg;
};

static pthread_key_t error_key;
static pthread_once_t error_key_once = PTHREAD_ONCE_INIT;
static bool error_key_made;

static void
free_last_error (void *p)
{
  struct last_error *e = p;

  if (e) {
    free (e->msg);
    free (e);
  }
}

static void
make_error_key (void)
{
  error_key_made = pthread_key_create (&error_key, free_last_error) == 0;
}

/* When the library is unloaded (a plugin dlclosed by nbdkit, say) the key
 * must go with it: a thread exiting later would otherwise run a destructor
 * that is no longer mapped.  The errors of threads still alive are lost.
 */
static void __attribute__ ((__destructor__))
delete_error_key (void)
{
  if (error_key_made) {
    free_last_error (pthread_getspecific (error_key));
    pthread_setspecific (error_key, NULL);
    pthread_key_delete (error_key);
    error_key_made = false;
  }
}

static struct last_error *
get_last_error (void)
{
  struct last_error *e;

  pthread_once (&error_key_once, make_error_key);
  e = pthread_getspecific (error_key);
  if (e == NULL) {
    e = calloc (1, sizeof *e);
    if (e == NULL)
      return NULL;
    if (pthread_setspecific (error_key, e) != 0) {
      free (e);
      return NULL;
    }
  }
  return e;
}

void
set_error_context (const char *context)
{
  struct last_error *e = get_last_error ();

  if (e)
    e->context = context;
}

void
set_error (int errnum, const char *fs, ...)
{
  struct last_error *e = get_last_error ();
  char *what = NULL, *msg = NULL;
  va_list args;

  if (e == NULL)
    return;
  va_start (args, fs);
  if (vasprintf (&what, fs, args) == -1)
    what = NULL;
  va_end (args);
  if (what == NULL ||
      asprintf (&msg, "%s: %s", e->context ? e->context : "libnbdc",
                what) == -1)
    msg = NULL;
  free (what);
  free (e->msg);
  e->msg = msg;
  e->errnum = errnum;
}

const char *
nbd_get_error (void)
{
  struct last_error *e = get_last_error ();

  return e ? e->msg : NULL;
}

int
nbd_get_errno (void)
{
  struct last_error *e = get_last_error ();

  return e ? e->errnum : 0;
}

/* Debug messages go to the debug callback, or to stderr; only when debug is
 * on.  The library writes nothing to stderr otherwise.
 */
void
debug (struct nbd_handle *h, const char *fs, ...)
{
  struct last_error *e;
  const char *context;
  char *msg;
  va_list args;
  int saved_errno = errno;

  if (!h->debug)
    return;
  e = get_last_error ();
  context = e && e->context ? e->context : "libnbdc";
  va_start (args, fs);
  if (vasprintf (&msg, fs, args) == -1)
    msg = NULL;
  va_end (args);
  if (msg) {
    if (h->debug_callback.callback)
      h->debug_callback.callback (h->debug_callback.user_data, context, msg);
    else
      fprintf (stderr, "libnbdc: debug: %s: %s: %s\n", h->hname, context,
               msg);
    free (msg);
  }
  errno = saved_errno;
}

/* Copy a server's message of len bytes into dst (NBD_MAX_STRING + 1
 * bytes): cut at NBD_MAX_STRING, unprintable bytes shown as '?'.
 */
void
printable_message (char *dst, const char *src, size_t len)
{
  if (len > NBD_MAX_STRING)
    len = NBD_MAX_STRING;
  for (size_t i = 0; i < len; i++)
    dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
  dst[len] = '\0';
}

/* Map an error number from the wire (NBD spec "Error values") to errno.
 * Values the spec does not define become EINVAL, as libnbd does.
 */
int
errno_from_wire (uint32_t error)
{
  switch (error) {
  case NBD_EPERM: return EPERM;
  case NBD_EIO: return EIO;
  case NBD_ENOMEM: return ENOMEM;
  case NBD_EINVAL: return EINVAL;
  case NBD_ENOSPC: return ENOSPC;
  case NBD_EOVERFLOW: return EOVERFLOW;
  case NBD_ENOTSUP: return ENOTSUP;
  case NBD_ESHUTDOWN: return ESHUTDOWN;
  default: return EINVAL;
  }
}
