/* nbd-proxy tests: TAP output and small helpers for the API tests.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * The API tests are written to the libnbd 1.14 C API and built twice, once
 * against libnbdc and once against libnbd (the reference).  They print
 * unnumbered TAP lines ("ok - ...", "not ok - ..."); the shell script that
 * runs them counts the lines and prints the plan (tests/functions.sh).
 */

#ifndef API_TAP_H
#define API_TAP_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <libnbd.h>

#define TAP_UNUSED __attribute__ ((__unused__))
#define TAP_PRINTF(a, b) __attribute__ ((__format__ (__printf__, a, b)))

static int tap_failures;
static bool tap_last_ok;                /* result of the last tap_ok */

/* Call first: TAP lines must reach the log even if the program crashes. */
static TAP_UNUSED void
tap_init (void)
{
  setvbuf (stdout, NULL, _IOLBF, 0);
}

static TAP_UNUSED TAP_PRINTF (2, 3) bool
tap_ok (bool ok, const char *fmt, ...)
{
  va_list args;

  printf ("%s - ", ok ? "ok" : "not ok");
  va_start (args, fmt);
  vprintf (fmt, args);
  va_end (args);
  printf ("\n");
  if (!ok)
    tap_failures++;
  tap_last_ok = ok;
  return ok;
}

static TAP_UNUSED TAP_PRINTF (2, 3) void
tap_skip (const char *reason, const char *fmt, ...)
{
  va_list args;

  printf ("ok - ");
  va_start (args, fmt);
  vprintf (fmt, args);
  va_end (args);
  printf (" # SKIP %s\n", reason);
}

static TAP_UNUSED TAP_PRINTF (1, 2) void
tap_diag (const char *fmt, ...)
{
  va_list args;

  printf ("# ");
  va_start (args, fmt);
  vprintf (fmt, args);
  va_end (args);
  printf ("\n");
}

/* A fatal setup failure: report it and stop. */
static TAP_UNUSED TAP_PRINTF (1, 2) void
tap_bail (const char *fmt, ...)
{
  va_list args;

  printf ("not ok - ");
  va_start (args, fmt);
  vprintf (fmt, args);
  va_end (args);
  printf (" (error: %s)\n", nbd_get_error () ? nbd_get_error () : "none");
  exit (EXIT_FAILURE);
}

/* nbd_create, or stop the test. */
static TAP_UNUSED struct nbd_handle *
tap_create (void)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL)
    tap_bail ("nbd_create");
  return h;
}

/* nbd_connect_unix to SOCK on a new handle, or stop the test. */
static TAP_UNUSED struct nbd_handle *
tap_connect_unix (const char *sock)
{
  struct nbd_handle *h = tap_create ();

  if (nbd_connect_unix (h, sock) == -1)
    tap_bail ("nbd_connect_unix %s", sock);
  return h;
}

/* GOT (which the caller owns) is the string EXPECTED; frees GOT. */
static TAP_UNUSED void
tap_check_string (char *got, const char *expected, const char *what)
{
  if (!tap_ok (got != NULL && strcmp (got, expected) == 0,
               "%s is \"%s\"", what, expected))
    tap_diag ("got %s%s%s (error: %s)", got ? "\"" : "",
              got ? got : "NULL", got ? "\"" : "",
              got ? "-" : nbd_get_error ());
  free (got);
}

/* The symbolic name of an errno value, for messages and transcripts. */
static TAP_UNUSED const char *
errno_name (int err)
{
  static char other[32];

  switch (err) {
  case 0: return "0";
  case EPERM: return "EPERM";
  case ENOENT: return "ENOENT";
  case EIO: return "EIO";
  case E2BIG: return "E2BIG";
  case EBADF: return "EBADF";
  case ENOMEM: return "ENOMEM";
  case EFAULT: return "EFAULT";
  case EBUSY: return "EBUSY";
  case EINVAL: return "EINVAL";
  case ENOSPC: return "ENOSPC";
  case EPIPE: return "EPIPE";
  case ERANGE: return "ERANGE";
  case ENOTSUP: return "ENOTSUP";
  case EPROTO: return "EPROTO";
  case EOVERFLOW: return "EOVERFLOW";
  case ECONNRESET: return "ECONNRESET";
  case ECONNREFUSED: return "ECONNREFUSED";
  case ENOTCONN: return "ENOTCONN";
  case ESHUTDOWN: return "ESHUTDOWN";
  case ETIMEDOUT: return "ETIMEDOUT";
  case EAGAIN: return "EAGAIN";
  case ENOTSOCK: return "ENOTSOCK";
  case EISCONN: return "EISCONN";
  case EALREADY: return "EALREADY";
  case EINPROGRESS: return "EINPROGRESS";
  default:
    snprintf (other, sizeof other, "errno %d", err);
    return other;
  }
}

/* libnbd(3) "ERROR HANDLING": after a failing call nbd_get_error () holds
 * a message starting with the name of the call, and nbd_get_errno () the
 * errno (0 when there is none).  Checks the prefix only: the rest of the
 * text is the library's own.  Pass expected_errno -1 to accept any.
 *
 * Call it right after the tap_ok that checked that the call failed: when
 * that check did not pass, the error state is stale and this check fails
 * too rather than looking at it.
 */
static TAP_UNUSED bool
tap_error_is (const char *call, int expected_errno, const char *what)
{
  const char *msg;
  int err;
  size_t len = strlen (call);
  bool prefix_ok;
  bool errno_ok;

  if (!tap_last_ok) {
    tap_ok (false, "%s: error of %s (the call did not fail)", what, call);
    tap_last_ok = false;
    return false;
  }
  msg = nbd_get_error ();
  err = nbd_get_errno ();
  prefix_ok = msg != NULL && strncmp (msg, call, len) == 0 &&
    msg[len] == ':';
  errno_ok = expected_errno == -1 || err == expected_errno;
  if (!tap_ok (prefix_ok && errno_ok,
               "%s: error starts with \"%s:\"%s%s", what, call,
               expected_errno == -1 ? "" : " and errno is ",
               expected_errno == -1 ? "" : errno_name (expected_errno))) {
    tap_diag ("error: %s", msg ? msg : "(null)");
    tap_diag ("errno: %s", errno_name (err));
    return false;
  }
  return true;
}

/* CALL returned R: -1, with errno ERR and an error message naming CALL. */
static TAP_UNUSED void
tap_check_fails (long long r, const char *call, int err, const char *what)
{
  if (!tap_ok (r == -1, "%s: %s returns -1", what, call))
    tap_diag ("got %lld", r);
  tap_error_is (call, err, what);
}

/* CALL returned GOT (freed here): NULL, with errno ERR. */
static TAP_UNUSED void
tap_check_null (void *got, const char *call, int err, const char *what)
{
  if (!tap_ok (got == NULL, "%s: %s returns NULL", what, call))
    tap_diag ("got a value");
  free (got);
  tap_error_is (call, err, what);
}

/* The byte at OFFSET of nbdkit-pattern-plugin(1): each 8-byte word holds
 * its own offset, big-endian.
 */
static TAP_UNUSED unsigned char
pattern_byte (uint64_t offset)
{
  uint64_t word = offset & ~UINT64_C (7);

  return (word >> (8 * (7 - (offset & 7)))) & 0xff;
}

/* Index of the first byte of BUF (at image offset OFFSET) that differs
 * from the pattern, or -1.
 */
static TAP_UNUSED int64_t
pattern_mismatch (const unsigned char *buf, size_t count, uint64_t offset)
{
  size_t i;

  for (i = 0; i < count; i++)
    if (buf[i] != pattern_byte (offset + i))
      return i;
  return -1;
}

/* FNV-1a, to summarise data in transcripts. */
static TAP_UNUSED uint32_t
checksum (const void *buf, size_t count)
{
  const unsigned char *p = buf;
  uint32_t h = 2166136261u;
  size_t i;

  for (i = 0; i < count; i++) {
    h ^= p[i];
    h *= 16777619u;
  }
  return h;
}

/* Drive H until COOKIE completes; returns nbd_aio_command_completed's
 * final value (1 or -1), or -2 if polling failed first.
 */
static TAP_UNUSED int
wait_for_cookie (struct nbd_handle *h, int64_t cookie)
{
  int r;

  while ((r = nbd_aio_command_completed (h, cookie)) == 0) {
    if (nbd_poll (h, -1) == -1) {
      /* The connection may have died and failed the command. */
      r = nbd_aio_command_completed (h, cookie);
      return r != 0 ? r : -2;
    }
  }
  return r;
}

/* Drive H until nothing is in flight; false if polling failed. */
static TAP_UNUSED bool
drain (struct nbd_handle *h)
{
  while (nbd_aio_in_flight (h) > 0) {
    if (nbd_poll (h, -1) == -1)
      return nbd_aio_in_flight (h) <= 0;
  }
  return true;
}

/* The pid in a server's pid file (nbdkit -P), or -1. */
static TAP_UNUSED pid_t
read_pidfile (const char *file)
{
  FILE *fp = fopen (file, "r");
  int pid = -1;

  if (fp == NULL)
    return -1;
  if (fscanf (fp, "%d", &pid) != 1)
    pid = -1;
  fclose (fp);
  return pid;
}

#endif /* API_TAP_H */
