/* nbd-proxy tests: handle settings, what the handshake learned, and the
 * state queries, call by call (issue 12).
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-settings MEMSOCK ROSOCK INFOSOCK
 *
 * MEMSOCK:  nbdkit memory 1M
 * ROSOCK:   nbdkit -r memory 1M
 * INFOSOCK: nbdkit --filter=exportname --filter=blocksize-policy memory 1M
 *           default-export=canon exportdesc=fixed:"a description"
 *           blocksize-minimum=512 blocksize-preferred=4096
 *           blocksize-maximum=65536
 *
 * Each check names the libnbd 1.14 man page that states the rule; where
 * the page leaves a detail open (which errno), the check encodes what
 * libnbd 1.14.2 does.
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <libnbd.h>

#include "api-tap.h"

static const char *mem_sock, *ro_sock, *info_sock;

/* ---- Debug: nbd_set_debug(3), nbd_set_debug_callback(3). ---- */

struct debug_log {
  int messages;
  int frees;
  bool context_ok;      /* every message came with a non-empty context */
};

static int
debug_cb (void *user_data, const char *context, const char *msg)
{
  struct debug_log *log = user_data;

  log->messages++;
  if (context == NULL || *context == '\0' || msg == NULL)
    log->context_ok = false;
  return 0;
}

static void
debug_free (void *user_data)
{
  struct debug_log *log = user_data;

  log->frees++;
}

static nbd_debug_callback
debug_callback (struct debug_log *log)
{
  log->context_ok = true;
  return (nbd_debug_callback) { .callback = debug_cb, .user_data = log,
                                .free = debug_free };
}

/* Run a connect with stderr sent to a temporary file; returns what was
 * written there (caller frees).
 */
static char *
stderr_of_connect (struct nbd_handle *h, const char *sock)
{
  char path[] = "/tmp/api-settings.XXXXXX";
  int fd = mkstemp (path), saved;
  char *buf;
  ssize_t n;

  if (fd == -1)
    tap_bail ("mkstemp");
  unlink (path);
  fflush (stderr);
  saved = dup (2);
  dup2 (fd, 2);
  if (nbd_connect_unix (h, sock) == -1)
    tap_diag ("connect failed: %s", nbd_get_error ());
  nbd_shutdown (h, 0);
  fflush (stderr);
  dup2 (saved, 2);
  close (saved);
  buf = calloc (1, 65536);
  if (buf == NULL)
    tap_bail ("calloc");
  n = pread (fd, buf, 65535, 0);
  if (n < 0)
    n = 0;
  buf[n] = '\0';
  close (fd);
  return buf;
}

static void
test_debug (void)
{
  struct nbd_handle *h;
  struct debug_log first = { 0 }, second = { 0 }, third = { 0 };
  char *out;

  unsetenv ("LIBNBD_DEBUG");
  h = tap_create ();
  tap_ok (nbd_get_debug (h) == 0,
          "nbd_get_debug(3): debug is off by default without LIBNBD_DEBUG");
  tap_ok (nbd_set_debug (h, true) == 0 && nbd_get_debug (h) == 1,
          "nbd_set_debug(3): nbd_get_debug returns the new setting");
  tap_ok (nbd_set_debug (h, false) == 0 && nbd_get_debug (h) == 0,
          "nbd_set_debug(3): debug can be turned off again");
  nbd_close (h);

  setenv ("LIBNBD_DEBUG", "1", 1);
  h = tap_create ();
  tap_ok (nbd_get_debug (h) == 1,
          "libnbd(3) ENVIRONMENT: LIBNBD_DEBUG=1 turns debug on in new "
          "handles");
  unsetenv ("LIBNBD_DEBUG");

  /* With a callback, messages go to it, with the function as context. */
  tap_ok (nbd_set_debug_callback (h, debug_callback (&first)) == 0,
          "nbd_set_debug_callback(3) succeeds");
  if (nbd_connect_unix (h, mem_sock) == -1)
    tap_bail ("nbd_connect_unix");
  if (!tap_ok (first.messages > 0 && first.context_ok,
               "nbd_set_debug_callback(3): the callback receives debug "
               "messages, each with a context"))
    tap_diag ("%d messages", first.messages);
  tap_ok (first.frees == 0,
          "nbd_set_debug_callback(3): .free has not run while the callback "
          "is set");
  nbd_set_debug_callback (h, debug_callback (&second));
  tap_ok (first.frees == 1 && second.frees == 0,
          "nbd_set_debug_callback(3): replacing the callback runs the old "
          "one's .free once");
  tap_ok (nbd_clear_debug_callback (h) == 0 && second.frees == 1,
          "nbd_clear_debug_callback(3): runs the callback's .free once");
  first.messages = second.messages = 0;
  nbd_set_debug_callback (h, debug_callback (&third));
  nbd_set_debug (h, false);
  third.messages = 0;           /* libnbd logs the nbd_set_debug call */
  {
    char buf[512];

    nbd_pread (h, buf, sizeof buf, 0, 0);
  }
  tap_ok (third.messages == 0,
          "nbd_set_debug(3): no debug messages while debug is off");
  nbd_close (h);
  tap_ok (first.frees == 1 && second.frees == 1 && third.frees == 1 &&
          first.messages == 0 && second.messages == 0,
          "nbd_close(3): frees the debug callback once; replaced ones get "
          "no more messages");

  /* Without a callback, debug messages go to stderr, naming the handle. */
  h = tap_create ();
  nbd_set_handle_name (h, "settings-debug-handle");
  nbd_set_debug (h, true);
  out = stderr_of_connect (h, mem_sock);
  if (!tap_ok (strstr (out, "settings-debug-handle") != NULL,
               "libnbd(3) DEBUGGING: without a callback, debug messages go "
               "to stderr with the handle name"))
    tap_diag ("stderr: %.200s", out);
  free (out);
  nbd_close (h);

  h = tap_create ();
  out = stderr_of_connect (h, mem_sock);
  if (!tap_ok (*out == '\0',
               "libnbd(3) DEBUGGING: nothing is written to stderr with "
               "debug off"))
    tap_diag ("stderr: %.200s", out);
  free (out);
  nbd_close (h);
}

/* ---- nbd_set_handle_name(3), nbd_set_private_data(3). ---- */

static void
test_names (void)
{
  struct nbd_handle *h = tap_create ();
  char *name = nbd_get_handle_name (h);

  if (!tap_ok (name != NULL && strncmp (name, "nbd", 3) == 0,
               "nbd_get_handle_name(3): a new handle has a name starting "
               "with \"nbd\""))
    tap_diag ("got %s", name ? name : "NULL");
  free (name);
  tap_ok (nbd_set_handle_name (h, "my handle") == 0,
          "nbd_set_handle_name(3) succeeds");
  tap_check_string (nbd_get_handle_name (h), "my handle",
                "nbd_get_handle_name(3) after nbd_set_handle_name");

  tap_ok (nbd_get_private_data (h) == 0,
          "nbd_get_private_data(3): 0 in a new handle");
  tap_ok (nbd_set_private_data (h, 42) == 0,
          "nbd_set_private_data(3) returns the old value (0)");
  tap_ok (nbd_set_private_data (h, 7) == 42 && nbd_get_private_data (h) == 7,
          "nbd_set_private_data(3) returns the old value, "
          "nbd_get_private_data the new one");

  tap_check_string (nbd_get_export_name (h), "",
                "nbd_get_export_name(3) of a new handle");
  tap_ok (nbd_set_export_name (h, "some export") == 0,
          "nbd_set_export_name(3) succeeds on a new handle");
  tap_check_string (nbd_get_export_name (h), "some export",
                "nbd_get_export_name(3) after nbd_set_export_name");
  nbd_close (h);
}

/* ---- nbd_get_canonical_export_name(3), nbd_get_export_description(3),
 * nbd_get_block_size(3) against the exportname and blocksize-policy
 * filters.
 */
static void
test_full_info (void)
{
  struct nbd_handle *h = tap_create ();

  tap_ok (nbd_get_full_info (h) == 0,
          "nbd_get_full_info(3): off by default");
  tap_ok (nbd_set_full_info (h, true) == 0 && nbd_get_full_info (h) == 1,
          "nbd_set_full_info(3): nbd_get_full_info returns the setting");
  if (nbd_connect_unix (h, info_sock) == -1)
    tap_bail ("nbd_connect_unix %s", info_sock);
  tap_check_string (nbd_get_canonical_export_name (h), "canon",
                "nbd_get_canonical_export_name(3) with full info "
                "(nbdkit default-export=canon)");
  tap_check_string (nbd_get_export_description (h), "a description",
                "nbd_get_export_description(3) with full info "
                "(nbdkit exportdesc=fixed:)");
  tap_ok (nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM) == 512,
          "nbd_get_block_size(3) MINIMUM is the server's 512");
  tap_ok (nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED) == 4096,
          "nbd_get_block_size(3) PREFERRED is the server's 4096");
  tap_ok (nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM) == 65536,
          "nbd_get_block_size(3) MAXIMUM is the server's 65536");
  tap_check_fails (nbd_get_block_size (h, 99), "nbd_get_block_size", EINVAL,
               "nbd_get_block_size(3) with an unknown size type");
  tap_ok (nbd_set_full_info (h, false) == -1,
          "nbd_set_full_info(3): refused once connected");
  tap_error_is ("nbd_set_full_info", EINVAL, "nbd_set_full_info connected");
  nbd_close (h);

  /* Without full info libnbd does not ask for the description. */
  h = tap_connect_unix (info_sock);
  tap_check_null (nbd_get_export_description (h), "nbd_get_export_description",
              ENOTSUP, "nbd_get_export_description(3) without full info");
  nbd_close (h);
}

/* ---- Handshake settings: structured replies, handshake flags. ---- */

static void
test_handshake_settings (void)
{
  struct nbd_handle *h = tap_create ();
  const char *proto;

  tap_ok (nbd_get_request_structured_replies (h) == 1,
          "nbd_get_request_structured_replies(3): on by default");
  tap_ok (nbd_set_request_structured_replies (h, false) == 0 &&
          nbd_get_request_structured_replies (h) == 0,
          "nbd_set_request_structured_replies(3): the getter returns the "
          "setting");
  tap_ok (nbd_get_handshake_flags (h) ==
          (LIBNBD_HANDSHAKE_FLAG_FIXED_NEWSTYLE |
           LIBNBD_HANDSHAKE_FLAG_NO_ZEROES),
          "nbd_get_handshake_flags(3): both flags by default");
  tap_check_fails (nbd_set_handshake_flags (h, 0x80000000),
               "nbd_set_handshake_flags", EINVAL,
               "nbd_set_handshake_flags(3) with an unknown flag");
  if (nbd_connect_unix (h, mem_sock) == -1)
    tap_bail ("nbd_connect_unix");
  tap_ok (nbd_get_structured_replies_negotiated (h) == 0,
          "nbd_get_structured_replies_negotiated(3): 0 when not requested");
  tap_ok (nbd_can_df (h) == 0,
          "nbd_can_df(3): 0 without structured replies");
  proto = nbd_get_protocol (h);
  if (!tap_ok (proto != NULL && strcmp (proto, "newstyle-fixed") == 0,
               "nbd_get_protocol(3): \"newstyle-fixed\" with nbdkit"))
    tap_diag ("got %s", proto ? proto : "NULL");
  tap_check_fails (nbd_set_request_structured_replies (h, true),
               "nbd_set_request_structured_replies", EINVAL,
               "nbd_set_request_structured_replies(3) once connected");
  tap_check_fails (nbd_set_handshake_flags (h, 0), "nbd_set_handshake_flags",
               EINVAL, "nbd_set_handshake_flags(3) once connected");
  nbd_close (h);

  /* Flags 0: plain newstyle (no fixed newstyle, so no options at all). */
  h = tap_create ();
  tap_ok (nbd_set_handshake_flags (h, 0) == 0 &&
          nbd_get_handshake_flags (h) == 0,
          "nbd_set_handshake_flags(3): 0 is accepted and read back");
  if (!tap_ok (nbd_connect_unix (h, mem_sock) == 0,
               "nbd_set_handshake_flags(3): flags 0 connects to nbdkit"))
    tap_diag ("error: %s", nbd_get_error ());
  proto = nbd_get_protocol (h);
  if (!tap_ok (proto != NULL && strcmp (proto, "newstyle") == 0,
               "nbd_get_protocol(3): \"newstyle\" without "
               "FIXED_NEWSTYLE"))
    tap_diag ("got %s", proto ? proto : "NULL");
  tap_ok (nbd_get_size (h) == 1024 * 1024,
          "nbd_get_size(3) after a plain newstyle handshake");
  tap_ok (nbd_get_structured_replies_negotiated (h) == 0,
          "plain newstyle negotiates no structured replies");
  nbd_close (h);

  /* Strict mode. */
  h = tap_create ();
  tap_ok (nbd_get_strict_mode (h) != 0,
          "nbd_get_strict_mode(3): some checks on by default");
  tap_ok (nbd_set_strict_mode (h, 0) == 0 && nbd_get_strict_mode (h) == 0,
          "nbd_set_strict_mode(3): 0 read back");
  tap_ok (nbd_set_strict_mode (h, LIBNBD_STRICT_BOUNDS) == 0 &&
          nbd_get_strict_mode (h) == LIBNBD_STRICT_BOUNDS,
          "nbd_set_strict_mode(3): BOUNDS read back");
  tap_check_fails (nbd_set_strict_mode (h, 0x40000000), "nbd_set_strict_mode",
               EINVAL, "nbd_set_strict_mode(3) with an unknown flag");
  tap_ok (nbd_get_pread_initialize (h) == 1,
          "nbd_get_pread_initialize(3): on by default");
  tap_ok (nbd_set_pread_initialize (h, false) == 0 &&
          nbd_get_pread_initialize (h) == 0,
          "nbd_set_pread_initialize(3): read back");
  nbd_close (h);
}

/* ---- Meta contexts: nbd_add_meta_context(3) and friends. ---- */

static void
test_meta_contexts (void)
{
  struct nbd_handle *h = tap_create ();

  tap_ok (nbd_get_nr_meta_contexts (h) == 0,
          "nbd_get_nr_meta_contexts(3): 0 in a new handle");
  tap_ok (nbd_add_meta_context (h, "x-unknown:ctx") == 0 &&
          nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0,
          "nbd_add_meta_context(3) twice");
  tap_ok (nbd_get_nr_meta_contexts (h) == 2,
          "nbd_get_nr_meta_contexts(3) counts them");
  tap_check_string (nbd_get_meta_context (h, 0), "x-unknown:ctx",
                "nbd_get_meta_context(3) 0");
  tap_check_string (nbd_get_meta_context (h, 1), LIBNBD_CONTEXT_BASE_ALLOCATION,
                "nbd_get_meta_context(3) 1");
  tap_check_null (nbd_get_meta_context (h, 2), "nbd_get_meta_context", EINVAL,
              "nbd_get_meta_context(3) out of range");
  tap_ok (nbd_clear_meta_contexts (h) == 0 &&
          nbd_get_nr_meta_contexts (h) == 0,
          "nbd_clear_meta_contexts(3) empties the list");
  nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);
  nbd_add_meta_context (h, "x-unknown:ctx");
  if (nbd_connect_unix (h, mem_sock) == -1)
    tap_bail ("nbd_connect_unix");
  tap_ok (nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1,
          "nbd_can_meta_context(3): base:allocation negotiated with "
          "nbdkit");
  tap_ok (nbd_can_meta_context (h, "x-unknown:ctx") == 0,
          "nbd_can_meta_context(3): an unknown context is not");
  tap_check_fails (nbd_add_meta_context (h, "late:ctx"), "nbd_add_meta_context",
               EINVAL, "nbd_add_meta_context(3) once connected");
  tap_check_fails (nbd_clear_meta_contexts (h), "nbd_clear_meta_contexts",
               EINVAL, "nbd_clear_meta_contexts(3) once connected");
  nbd_close (h);
}

/* ---- Export flags: nbd_is_read_only(3), nbd_can_*(3). ---- */

static void
test_flags (void)
{
  struct nbd_handle *h = tap_create ();

  tap_check_fails (nbd_get_size (h), "nbd_get_size", -1,
               "nbd_get_size(3) before connecting");
  tap_check_fails (nbd_is_read_only (h), "nbd_is_read_only", -1,
               "nbd_is_read_only(3) before connecting");
  tap_ok (nbd_get_protocol (h) == NULL,
          "nbd_get_protocol(3): NULL before connecting");
  nbd_close (h);

  h = tap_connect_unix (mem_sock);
  tap_ok (nbd_is_read_only (h) == 0, "nbd_is_read_only(3) 0: memory");
  tap_ok (nbd_is_rotational (h) == 0, "nbd_is_rotational(3) 0: memory");
  tap_ok (nbd_can_flush (h) == 1, "nbd_can_flush(3) 1: memory");
  tap_ok (nbd_can_fua (h) == 1, "nbd_can_fua(3) 1: memory");
  tap_ok (nbd_can_trim (h) == 1, "nbd_can_trim(3) 1: memory");
  tap_ok (nbd_can_zero (h) == 1, "nbd_can_zero(3) 1: memory");
  tap_ok (nbd_can_fast_zero (h) == 1, "nbd_can_fast_zero(3) 1: memory");
  tap_ok (nbd_can_df (h) == 1, "nbd_can_df(3) 1: memory");
  tap_ok (nbd_can_multi_conn (h) == 1, "nbd_can_multi_conn(3) 1: memory");
  tap_ok (nbd_can_cache (h) == 1, "nbd_can_cache(3) 1: memory");
  nbd_shutdown (h, 0);
  tap_ok (nbd_get_size (h) == 1024 * 1024,
          "nbd_get_size(3) still answers after nbd_shutdown");
  nbd_close (h);

  h = tap_connect_unix (ro_sock);
  tap_ok (nbd_is_read_only (h) == 1, "nbd_is_read_only(3) 1: nbdkit -r");
  tap_ok (nbd_can_trim (h) == 0, "nbd_can_trim(3) 0: nbdkit -r");
  tap_ok (nbd_can_zero (h) == 0, "nbd_can_zero(3) 0: nbdkit -r");
  tap_ok (nbd_can_fast_zero (h) == 0, "nbd_can_fast_zero(3) 0: nbdkit -r");
  nbd_close (h);
}

/* ---- nbd_connection_state(3), nbd_aio_is_*(3), nbd_aio_get_fd(3),
 * nbd_aio_get_direction(3), nbd_poll(3) in each state.
 */
static bool
state_is (struct nbd_handle *h, const char *prefix)
{
  const char *s = nbd_connection_state (h);

  if (s == NULL || strncmp (s, prefix, strlen (prefix)) != 0) {
    tap_diag ("state: %s", s ? s : "NULL");
    return false;
  }
  return true;
}

/* A handle in the middle of the handshake: connected to a listening
 * socket that nobody answers, so the greeting never comes (a real server
 * may finish the whole handshake inside nbd_aio_connect_unix).
 */
static void
test_negotiating (void)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  char dir[] = "/tmp/api-settings.XXXXXX", buf[512];
  struct nbd_handle *h;
  int lfd;

  if (mkdtemp (dir) == NULL)
    tap_bail ("mkdtemp");
  snprintf (addr.sun_path, sizeof addr.sun_path, "%s/silent.sock", dir);
  lfd = socket (AF_UNIX, SOCK_STREAM, 0);
  if (lfd == -1 || bind (lfd, (struct sockaddr *) &addr, sizeof addr) == -1 ||
      listen (lfd, 1) == -1)
    tap_bail ("a listening Unix socket");
  h = tap_create ();
  tap_ok (nbd_aio_connect_unix (h, addr.sun_path) == 0 &&
          nbd_aio_is_connecting (h) == 1 && nbd_aio_is_created (h) == 0 &&
          nbd_aio_is_ready (h) == 0,
          "nbd_aio_is_connecting(3) after nbd_aio_connect_unix, waiting "
          "for the greeting");
  /* Commands and what the handshake learns need a connected handle: in
   * the middle of the handshake they fail with EINVAL (libnbd(3)).
   */
  tap_check_fails (nbd_pread (h, buf, sizeof buf, 0, 0), "nbd_pread", EINVAL,
                   "nbd_pread(3) during the handshake");
  tap_check_fails (nbd_get_size (h), "nbd_get_size", EINVAL,
                   "nbd_get_size(3) during the handshake");
  /* The state alone refuses it: without strict mode no other check
   * (bounds against an export size not known yet) can.
   */
  if (nbd_set_strict_mode (h, 0) == -1)
    tap_bail ("nbd_set_strict_mode");
  tap_check_fails (nbd_aio_pread (h, buf, sizeof buf, 0,
                                  NBD_NULL_COMPLETION, 0),
                   "nbd_aio_pread", EINVAL,
                   "nbd_aio_pread(3) during the handshake, strict mode off");
  tap_ok (nbd_aio_get_fd (h) >= 0,
          "nbd_aio_get_fd(3): a descriptor while connecting");
  tap_ok (nbd_aio_get_direction (h) != 0,
          "nbd_aio_get_direction(3): something to wait for while "
          "connecting");
  nbd_close (h);
  close (lfd);
  unlink (addr.sun_path);
  rmdir (dir);
}

static void
test_states (void)
{
  struct nbd_handle *h = tap_create ();
  char buf[512];
  int64_t cookie;

  tap_ok (nbd_connection_state (h) != NULL && nbd_aio_is_created (h) == 1 &&
          nbd_aio_is_connecting (h) == 0 && nbd_aio_is_ready (h) == 0 &&
          nbd_aio_is_processing (h) == 0 && nbd_aio_is_dead (h) == 0 &&
          nbd_aio_is_closed (h) == 0 && nbd_aio_is_negotiating (h) == 0,
          "nbd_aio_is_created(3) and no other nbd_aio_is_* on a new "
          "handle");
  tap_check_fails (nbd_aio_get_fd (h), "nbd_aio_get_fd", EINVAL,
               "nbd_aio_get_fd(3) before connecting");
  tap_ok (nbd_aio_get_direction (h) == 0,
          "nbd_aio_get_direction(3): 0 before connecting");
  tap_check_fails (nbd_poll (h, 0), "nbd_poll", EINVAL,
               "nbd_poll(3) on a handle with nothing to wait for");

  test_negotiating ();

  if (nbd_aio_connect_unix (h, mem_sock) == -1)
    tap_bail ("nbd_aio_connect_unix");
  while (nbd_aio_is_connecting (h))
    if (nbd_poll (h, -1) == -1)
      tap_bail ("nbd_poll while connecting");
  tap_ok (state_is (h, "READY") && nbd_aio_is_ready (h) == 1 &&
          nbd_aio_is_processing (h) == 0,
          "nbd_connection_state(3) READY after the handshake");
  tap_ok (nbd_aio_get_direction (h) == LIBNBD_AIO_DIRECTION_READ,
          "nbd_aio_get_direction(3): READ on an idle ready handle");
  tap_ok (nbd_poll (h, 0) == 0,
          "nbd_poll(3) with timeout 0 on an idle handle returns 0");

  /* nbd_aio_is_ready(3): "the connection is idle or waiting for a
   * reply"; a small request is sent at once, so the handle waits for the
   * reply and is READY, not processing.
   */
  cookie = nbd_aio_pread (h, buf, sizeof buf, 0, NBD_NULL_COMPLETION, 0);
  tap_ok (cookie > 0 && nbd_aio_is_ready (h) == 1 &&
          nbd_aio_is_processing (h) == 0,
          "nbd_aio_is_ready(3): ready, not processing, while waiting for "
          "the reply to a sent read");
  tap_ok (nbd_aio_in_flight (h) == 1,
          "nbd_aio_in_flight(3): the read is in flight");
  tap_ok (wait_for_cookie (h, cookie) == 1, "the read completes");
  tap_ok (state_is (h, "READY"), "READY again when nothing is in flight");

  nbd_shutdown (h, 0);
  tap_ok (state_is (h, "CLOSED") && nbd_aio_is_closed (h) == 1 &&
          nbd_aio_is_ready (h) == 0 && nbd_aio_is_dead (h) == 0,
          "nbd_connection_state(3) CLOSED after nbd_shutdown");
  tap_ok (nbd_aio_get_direction (h) == 0,
          "nbd_aio_get_direction(3): 0 once closed");
  tap_check_fails (nbd_poll (h, 0), "nbd_poll", EINVAL,
               "nbd_poll(3) on a closed handle");
  nbd_close (h);
}

/* A TCP connect that is still in progress: the server's listen backlog
 * is full, so the kernel leaves the SYN unanswered.  The handle waits to
 * write, and a command fails with EINVAL.  Skipped if the connect does
 * not stay in progress.
 */
static void
test_connect_in_progress (void)
{
  struct sockaddr_in addr = { .sin_family = AF_INET };
  socklen_t len = sizeof addr;
  struct nbd_handle *h;
  int lfd, fill[4];
  char port[16], buf[512];

  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  lfd = socket (AF_INET, SOCK_STREAM, 0);
  if (lfd == -1 || bind (lfd, (struct sockaddr *) &addr, sizeof addr) == -1 ||
      listen (lfd, 0) == -1 ||
      getsockname (lfd, (struct sockaddr *) &addr, &len) == -1)
    tap_bail ("a listening socket");
  for (int i = 0; i < 4; i++) {
    fill[i] = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect (fill[i], (struct sockaddr *) &addr, sizeof addr);
  }
  usleep (100000);              /* the kernel has queued or dropped them */
  snprintf (port, sizeof port, "%d", ntohs (addr.sin_port));
  h = tap_create ();
  if (nbd_aio_connect_tcp (h, "127.0.0.1", port) == -1 ||
      nbd_aio_get_direction (h) != LIBNBD_AIO_DIRECTION_WRITE)
    tap_skip ("the connect did not stay in progress",
              "commands while a TCP connect is in progress");
  else {
    tap_ok (nbd_aio_is_connecting (h) == 1,
            "nbd_aio_is_connecting(3) while connect(2) is in progress");
    tap_check_fails (nbd_pread (h, buf, sizeof buf, 0, 0), "nbd_pread", EINVAL,
                 "nbd_pread(3) while connect(2) is in progress");
  }
  nbd_close (h);
  for (int i = 0; i < 4; i++)
    close (fill[i]);
  close (lfd);
}

/* ---- nbd_connect_command(3), nbd_kill_subprocess(3). ---- */

static void
test_subprocess (void)
{
  struct nbd_handle *h = tap_create ();
  char *argv[] = { "nbdkit", "-s", "--exit-with-parent", "memory", "1M",
                   NULL };
  char *missing[] = { "/nonexistent/nbd-server-xyz", NULL };

  tap_check_fails (nbd_kill_subprocess (h, 0), "nbd_kill_subprocess", ESRCH,
               "nbd_kill_subprocess(3) without a subprocess");
  if (!tap_ok (nbd_connect_command (h, argv) == 0,
               "nbd_connect_command(3) runs nbdkit -s"))
    tap_diag ("error: %s", nbd_get_error ());
  tap_ok (nbd_get_size (h) == 1024 * 1024,
          "nbd_connect_command(3): the export is the subprocess's");
  tap_check_fails (nbd_kill_subprocess (h, -1), "nbd_kill_subprocess", EINVAL,
               "nbd_kill_subprocess(3) with a negative signal");
  tap_ok (nbd_kill_subprocess (h, 0) == 0,
          "nbd_kill_subprocess(3) 0 kills it (SIGTERM)");
  /* It only sends the signal (the subprocess may wait for the socket to
   * close before it exits): a second call succeeds too.
   */
  tap_ok (nbd_kill_subprocess (h, 0) == 0,
          "nbd_kill_subprocess(3) twice: 0 again");
  nbd_close (h);

  h = tap_create ();
  tap_ok (nbd_connect_command (h, missing) == -1,
          "nbd_connect_command(3) of a program that does not exist fails");
  tap_error_is ("nbd_connect_command", -1,
                "nbd_connect_command of a missing program");
  tap_ok (nbd_aio_is_dead (h) == 1,
          "the handle is DEAD after the failed command");
  nbd_close (h);
}

int
main (int argc, char *argv[])
{
  tap_init ();
  if (argc != 4) {
    fprintf (stderr, "usage: %s MEMSOCK ROSOCK INFOSOCK\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  mem_sock = argv[1];
  ro_sock = argv[2];
  info_sock = argv[3];
  signal (SIGPIPE, SIG_IGN);

  test_debug ();
  test_names ();
  test_full_info ();
  test_handshake_settings ();
  test_meta_contexts ();
  test_flags ();
  test_states ();
  test_connect_in_progress ();
  test_subprocess ();
  exit (tap_failures ? EXIT_FAILURE : EXIT_SUCCESS);
}
