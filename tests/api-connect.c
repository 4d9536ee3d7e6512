/* nbd-proxy tests: connecting, and what the handshake learned.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: api-connect MEMSOCK PATSOCK TCPPORT|-
 *
 * MEMSOCK: nbdkit --filter=exportname --filter=blocksize-policy memory 1M
 *          default-export=mydisk exportdesc=fixed:'A test disk'
 *          blocksize-minimum=512 blocksize-preferred=4096
 *          blocksize-maximum=1M
 * PATSOCK: nbdkit pattern 1M
 * TCPPORT: nbdkit pattern 1M on 127.0.0.1:TCPPORT, or "-" to skip.
 * nbd_connect_command runs "nbdkit -s pattern 1M" from $PATH.
 *
 * Each check names the libnbd 1.14 man page that states the rule.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <libnbd.h>

#include "api-tap.h"

#define MiB (1024 * 1024)

/* nbd_aio_is_*(3): exactly the named predicate holds. */
static void
check_state (struct nbd_handle *h, const char *expected, const char *when)
{
  struct { const char *name; int value; } states[] = {
    { "created", nbd_aio_is_created (h) },
    { "connecting", nbd_aio_is_connecting (h) },
    { "negotiating", nbd_aio_is_negotiating (h) },
    { "ready", nbd_aio_is_ready (h) },
    { "processing", nbd_aio_is_processing (h) },
    { "dead", nbd_aio_is_dead (h) },
    { "closed", nbd_aio_is_closed (h) },
  };
  size_t i;
  bool ok = true;

  for (i = 0; i < sizeof states / sizeof states[0]; i++) {
    bool want = strcmp (states[i].name, expected) == 0;
    if (states[i].value != want)
      ok = false;
  }
  if (!tap_ok (ok, "nbd_aio_is_*(3) %s: only nbd_aio_is_%s is true",
               when, expected)) {
    for (i = 0; i < sizeof states / sizeof states[0]; i++)
      tap_diag ("nbd_aio_is_%s = %d", states[i].name, states[i].value);
  }
}

/* Before connecting: libnbd(3) "HANDLE STATE" rules. */
static void
test_fresh_handle (void)
{
  struct nbd_handle *h = tap_create ();
  char buf[512];

  check_state (h, "created", "after nbd_create");
  tap_ok (nbd_supports_uri (h) == 1, "nbd_supports_uri(3) is true");
  tap_ok (nbd_get_size (h) == -1,
          "nbd_get_size(3) fails before connecting (handle state)");
  tap_error_is ("nbd_get_size", -1, "nbd_get_size before connecting");
  tap_ok (nbd_get_protocol (h) == NULL,
          "nbd_get_protocol(3) fails before connecting");
  tap_ok (nbd_pread (h, buf, sizeof buf, 0, 0) == -1,
          "nbd_pread(3) fails before connecting");
  tap_error_is ("nbd_pread", -1, "nbd_pread before connecting");
  tap_ok (nbd_shutdown (h, 0) == -1,
          "nbd_shutdown(3) fails before connecting");
  tap_error_is ("nbd_shutdown", -1, "nbd_shutdown before connecting");
  check_state (h, "created", "after calls that failed");
  nbd_close (h);
}

/* nbd_connect_unix(3) to a writable memory disk, with full info. */
static void
test_unix_full_info (const char *sock)
{
  struct nbd_handle *h = tap_create ();
  char uri[4096];
  char buf[512];

  tap_ok (nbd_set_full_info (h, true) == 0 && nbd_get_full_info (h) == 1,
          "nbd_set_full_info(3) true, nbd_get_full_info(3) reads it back");
  if (!tap_ok (nbd_connect_unix (h, sock) == 0,
               "nbd_connect_unix(3) to nbdkit memory")) {
    tap_diag ("%s", nbd_get_error ());
    nbd_close (h);
    return;
  }
  check_state (h, "ready", "after nbd_connect_unix");
  tap_ok (nbd_get_size (h) == MiB, "nbd_get_size(3) is 1 MiB");
  tap_ok (nbd_is_read_only (h) == 0, "nbd_is_read_only(3) false (memory)");
  tap_ok (nbd_can_flush (h) == 1, "nbd_can_flush(3) true (memory)");
  tap_ok (nbd_can_fua (h) == 1, "nbd_can_fua(3) true (memory)");
  tap_ok (nbd_can_trim (h) == 1, "nbd_can_trim(3) true (memory)");
  tap_ok (nbd_can_zero (h) == 1, "nbd_can_zero(3) true (memory)");
  tap_ok (nbd_can_fast_zero (h) == 1, "nbd_can_fast_zero(3) true (memory)");
  tap_ok (nbd_can_df (h) == 1,
          "nbd_can_df(3) true (structured replies from nbdkit)");
  tap_ok (nbd_can_multi_conn (h) == 1,
          "nbd_can_multi_conn(3) true (memory)");
  tap_ok (nbd_can_cache (h) == 1, "nbd_can_cache(3) true (nbdkit)");
  tap_ok (nbd_is_rotational (h) == 0, "nbd_is_rotational(3) false");
  tap_ok (nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0,
          "nbd_can_meta_context(3) false for a context not requested");
  tap_check_string (nbd_get_protocol (h) ? strdup (nbd_get_protocol (h)) : NULL,
                "newstyle-fixed", "nbd_get_protocol(3)");
  tap_ok (nbd_get_structured_replies_negotiated (h) == 1,
          "nbd_get_structured_replies_negotiated(3) true with nbdkit");
  tap_ok (nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM) == 512,
          "nbd_get_block_size(3) minimum 512 (blocksize-policy)");
  tap_ok (nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED) == 4096,
          "nbd_get_block_size(3) preferred 4096");
  tap_ok (nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM) == MiB,
          "nbd_get_block_size(3) maximum 1 MiB");
  tap_check_string (nbd_get_canonical_export_name (h), "mydisk",
                "nbd_get_canonical_export_name(3) with full info");
  tap_check_string (nbd_get_export_description (h), "A test disk",
                "nbd_get_export_description(3) with full info");
  tap_check_string (nbd_get_export_name (h), "",
                "nbd_get_export_name(3) (what was asked)");
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
  tap_check_string (nbd_get_uri (h), uri, "nbd_get_uri(3) after connect_unix");

  /* nbd_connect_unix(3) HANDLE STATE: must be newly created. */
  tap_ok (nbd_connect_unix (h, sock) == -1,
          "nbd_connect_unix(3) on a connected handle fails");
  tap_error_is ("nbd_connect_unix", -1, "second nbd_connect_unix");
  check_state (h, "ready", "after the refused second connect");

  tap_ok (nbd_pread (h, buf, sizeof buf, 0, 0) == 0,
          "nbd_pread(3) works on the connected handle");
  tap_ok (nbd_aio_in_flight (h) == 0,
          "nbd_aio_in_flight(3) is 0 when idle");
  tap_ok (nbd_aio_get_fd (h) >= 0, "nbd_aio_get_fd(3) is a descriptor");
  tap_ok (nbd_aio_get_direction (h) == LIBNBD_AIO_DIRECTION_READ,
          "nbd_aio_get_direction(3) is READ when idle");

  tap_ok (nbd_shutdown (h, 0) == 0, "nbd_shutdown(3)");
  check_state (h, "closed", "after nbd_shutdown");
  tap_ok (nbd_get_size (h) == MiB,
          "nbd_get_size(3) still answers after shutdown (handle state)");
  tap_ok (nbd_pread (h, buf, sizeof buf, 0, 0) == -1,
          "nbd_pread(3) fails after shutdown");
  tap_error_is ("nbd_pread", -1, "nbd_pread after shutdown");
  tap_ok (nbd_shutdown (h, 0) == -1, "a second nbd_shutdown(3) fails");
  tap_error_is ("nbd_shutdown", -1, "second nbd_shutdown");
  nbd_close (h);
}

/* nbd_connect_uri(3) with nbd+unix and an export name. */
static void
test_uri (const char *memsock, const char *patsock)
{
  struct nbd_handle *h;
  char uri[4096];

  h = tap_create ();
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", patsock);
  if (tap_ok (nbd_connect_uri (h, uri) == 0,
              "nbd_connect_uri(3) %s", uri)) {
    check_state (h, "ready", "after nbd_connect_uri");
    tap_ok (nbd_get_size (h) == MiB, "nbd_get_size(3) is 1 MiB (pattern)");
    tap_ok (nbd_is_read_only (h) == 1,
            "nbd_is_read_only(3) true (pattern is read-only)");
    tap_ok (nbd_can_flush (h) == 0, "nbd_can_flush(3) false (pattern)");
    tap_ok (nbd_can_trim (h) == 0, "nbd_can_trim(3) false (pattern)");
    tap_ok (nbd_can_zero (h) == 0, "nbd_can_zero(3) false (pattern)");
    tap_ok (nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM) == 0,
            "nbd_get_block_size(3) 0 when the server sent none");
    tap_check_string (nbd_get_uri (h), uri, "nbd_get_uri(3) after connect_uri");
    nbd_shutdown (h, 0);
  }
  else
    tap_diag ("%s", nbd_get_error ());
  nbd_close (h);

  /* The export name is the URI path, percent-decoded (nbd_connect_uri(3)),
   * and nbd_get_uri(3) encodes it again.
   */
  h = tap_create ();
  nbd_set_full_info (h, true);
  snprintf (uri, sizeof uri, "nbd+unix:///foo%%20bar?socket=%s", memsock);
  if (tap_ok (nbd_connect_uri (h, uri) == 0,
              "nbd_connect_uri(3) with export name \"foo bar\"")) {
    tap_check_string (nbd_get_export_name (h), "foo bar",
                  "nbd_get_export_name(3) from the URI");
    tap_check_string (nbd_get_canonical_export_name (h), "foo bar",
                  "nbd_get_canonical_export_name(3) for a named export");
    tap_check_string (nbd_get_uri (h), uri, "nbd_get_uri(3) round trip");
    nbd_shutdown (h, 0);
  }
  else
    tap_diag ("%s", nbd_get_error ());
  nbd_close (h);

  /* Errors. */
  h = tap_create ();
  tap_ok (nbd_connect_uri (h, "http://example.com/") == -1,
          "nbd_connect_uri(3) refuses an unknown scheme");
  tap_error_is ("nbd_connect_uri", EINVAL, "unknown URI scheme");
  nbd_close (h);

  h = tap_create ();
  tap_ok (nbd_connect_uri (h, "nbd+unix:///") == -1,
          "nbd_connect_uri(3) refuses nbd+unix without socket=");
  tap_error_is ("nbd_connect_uri", EINVAL, "nbd+unix without socket");
  nbd_close (h);
}

static void
test_unix_errors (const char *patsock)
{
  struct nbd_handle *h;

  h = tap_create ();
  tap_ok (nbd_connect_unix (h, "/nonexistent/nbdc-test.sock") == -1,
          "nbd_connect_unix(3) to a missing socket fails");
  tap_error_is ("nbd_connect_unix", ENOENT, "missing socket");
  tap_ok (nbd_aio_is_dead (h) == 1,
          "nbd_aio_is_dead(3) after a failed connect");
  tap_ok (nbd_connect_unix (h, patsock) == -1,
          "a dead handle cannot connect again");
  nbd_close (h);

  /* nbd_set_request_structured_replies(3) false: simple replies only. */
  h = tap_create ();
  tap_ok (nbd_get_request_structured_replies (h) == 1,
          "nbd_get_request_structured_replies(3) defaults to true");
  nbd_set_request_structured_replies (h, false);
  if (tap_ok (nbd_connect_unix (h, patsock) == 0,
              "connect without requesting structured replies")) {
    tap_ok (nbd_get_structured_replies_negotiated (h) == 0,
            "nbd_get_structured_replies_negotiated(3) false when not "
            "requested");
    tap_ok (nbd_can_df (h) == 0,
            "nbd_can_df(3) false without structured replies");
    nbd_shutdown (h, 0);
  }
  nbd_close (h);
}

/* nbd_aio_connect_unix(3) / nbd_aio_connect_uri(3): connecting covers the
 * handshake, which needs the server's answers, so the handle is still
 * connecting when the call returns; nbd_poll(3) finishes it.
 */
static void
test_aio_connect (const char *sock)
{
  struct nbd_handle *h;
  char uri[4096];
  int i;

  for (i = 0; i < 2; i++) {
    const char *how = i == 0 ? "nbd_aio_connect_unix" : "nbd_aio_connect_uri";
    int r;

    h = tap_create ();
    if (i == 0)
      r = nbd_aio_connect_unix (h, sock);
    else {
      snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
      r = nbd_aio_connect_uri (h, uri);
    }
    if (!tap_ok (r == 0, "%s(3) starts connecting", how)) {
      tap_diag ("%s", nbd_get_error ());
      nbd_close (h);
      continue;
    }
    /* A fast server on the other core may finish the whole handshake
     * within the call: ready is as right as connecting then.
     */
    check_state (h, nbd_aio_is_ready (h) ? "ready" : "connecting",
                 "right after nbd_aio_connect");
    tap_ok (nbd_aio_get_direction (h) != 0,
            "nbd_aio_get_direction(3) is not 0 while connecting");
    while (nbd_aio_is_connecting (h)) {
      if (nbd_poll (h, -1) == -1) {
        tap_diag ("nbd_poll: %s", nbd_get_error ());
        break;
      }
    }
    check_state (h, "ready", "once nbd_poll has finished the handshake");
    tap_ok (nbd_get_size (h) == MiB, "nbd_get_size(3) after %s", how);
    nbd_shutdown (h, 0);
    nbd_close (h);
  }
}

/* nbd_connect_tcp(3) and nbd:// URIs. */
static void
test_tcp (const char *port)
{
  struct nbd_handle *h;
  char uri[256];

  if (strcmp (port, "-") == 0) {
    tap_skip ("no free TCP port", "nbd_connect_tcp(3)");
    tap_skip ("no free TCP port", "nbd_connect_uri(3) nbd://");
    return;
  }
  snprintf (uri, sizeof uri, "nbd://127.0.0.1:%s/", port);

  h = tap_create ();
  if (tap_ok (nbd_connect_tcp (h, "127.0.0.1", port) == 0,
              "nbd_connect_tcp(3) 127.0.0.1 port %s", port)) {
    check_state (h, "ready", "after nbd_connect_tcp");
    tap_ok (nbd_get_size (h) == MiB, "nbd_get_size(3) over TCP");
    tap_check_string (nbd_get_uri (h), uri, "nbd_get_uri(3) after connect_tcp");
    tap_ok (nbd_shutdown (h, 0) == 0, "nbd_shutdown(3) over TCP");
  }
  else
    tap_diag ("%s", nbd_get_error ());
  nbd_close (h);

  /* nbd_get_uri(3) with TLS settings: the user name and the TLS files
   * when set; nbds only when TLS is required or was negotiated (this
   * server has no TLS: LIBNBD_TLS_ALLOW goes on in plaintext).
   */
  h = tap_create ();
  if (nbd_set_tls (h, LIBNBD_TLS_ALLOW) == -1 ||
      nbd_set_tls_username (h, "al ice") == -1 ||
      nbd_set_tls_certificates (h, "/tmp/a b") == -1 ||
      nbd_set_tls_psk_file (h, "/nonexistent.psk") == -1)
    tap_diag ("%s", nbd_get_error ());
  if (tap_ok (nbd_connect_tcp (h, "127.0.0.1", port) == 0,
              "LIBNBD_TLS_ALLOW, server without TLS: connects")) {
    char want[512];

    tap_ok (nbd_get_tls_negotiated (h) == 0,
            "nbd_get_tls_negotiated(3) is false in plaintext");
    snprintf (want, sizeof want, "nbd://al%%20ice@127.0.0.1:%s/"
              "?tls-certificates=/tmp/a b&tls-psk-file=/nonexistent.psk",
              port);
    tap_check_string (nbd_get_uri (h), want,
                      "nbd_get_uri(3) names the TLS user and files");
    nbd_shutdown (h, 0);
  }
  else
    tap_diag ("%s", nbd_get_error ());
  nbd_close (h);
  h = tap_create ();
  nbd_set_tls (h, LIBNBD_TLS_REQUIRE);
  tap_ok (nbd_connect_tcp (h, "127.0.0.1", port) == -1 &&
          nbd_get_errno () == ENOTSUP,
          "LIBNBD_TLS_REQUIRE, server without TLS: ENOTSUP");
  tap_ok (nbd_get_tls_negotiated (h) == -1 && nbd_get_errno () == EINVAL,
          "nbd_get_tls_negotiated(3) on the dead handle: EINVAL");
  snprintf (uri, sizeof uri, "nbds://127.0.0.1:%s/", port);
  tap_check_string (nbd_get_uri (h), uri,
                    "nbd_get_uri(3) says nbds when TLS is required");
  nbd_close (h);
  snprintf (uri, sizeof uri, "nbd://127.0.0.1:%s/", port);

  h = tap_create ();
  if (tap_ok (nbd_connect_uri (h, uri) == 0, "nbd_connect_uri(3) %s", uri)) {
    tap_ok (nbd_get_size (h) == MiB, "nbd_get_size(3) over nbd://");
    nbd_shutdown (h, 0);
  }
  else
    tap_diag ("%s", nbd_get_error ());
  nbd_close (h);

  h = tap_create ();
  tap_ok (nbd_connect_tcp (h, "127.0.0.1", "1") == -1,
          "nbd_connect_tcp(3) to a closed port fails");
  tap_error_is ("nbd_connect_tcp", ECONNREFUSED, "closed TCP port");
  nbd_close (h);
}

/* nbd_connect_command(3): the server on a socketpair. */
static void
test_command (void)
{
  struct nbd_handle *h = tap_create ();
  char *argv[] = { "nbdkit", "-s", "--exit-with-parent", "pattern", "1M",
                   NULL };
  char *uri;
  unsigned char buf[4096];

  if (!tap_ok (nbd_connect_command (h, argv) == 0,
               "nbd_connect_command(3) nbdkit -s pattern 1M")) {
    tap_diag ("%s", nbd_get_error ());
    nbd_close (h);
    return;
  }
  check_state (h, "ready", "after nbd_connect_command");
  tap_ok (nbd_get_size (h) == MiB, "nbd_get_size(3) over a socketpair");
  tap_check_string (nbd_get_protocol (h) ? strdup (nbd_get_protocol (h)) : NULL,
                "newstyle-fixed", "nbd_get_protocol(3) (command)");
  tap_ok (nbd_pread (h, buf, sizeof buf, 8192, 0) == 0 &&
          pattern_mismatch (buf, sizeof buf, 8192) == -1,
          "nbd_pread(3) over a socketpair returns the pattern");
  /* nbd_get_uri(3): "not enough information" for a command. */
  uri = nbd_get_uri (h);
  tap_ok (uri == NULL, "nbd_get_uri(3) has no URI for connect_command");
  free (uri);
  tap_ok (nbd_shutdown (h, 0) == 0, "nbd_shutdown(3) (command)");
  check_state (h, "closed", "after nbd_shutdown (command)");
  nbd_close (h);
}

int
main (int argc, char *argv[])
{
  tap_init ();
  if (argc != 4) {
    fprintf (stderr, "usage: %s MEMSOCK PATSOCK TCPPORT|-\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  test_fresh_handle ();
  test_unix_full_info (argv[1]);
  test_uri (argv[1], argv[2]);
  test_unix_errors (argv[2]);
  test_aio_connect (argv[2]);
  test_tcp (argv[3]);
  test_command ();
  return EXIT_SUCCESS;
}
