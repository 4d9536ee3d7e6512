/* nbd-proxy tests: a deterministic transcript of the libnbd API, to compare
 * libnbdc with libnbd (diff-transcript.sh builds this file against both and
 * runs them on the same servers).
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Usage: diff-transcript SCENARIO URI [CONTEXTS]
 *
 *   info      settings defaults, connection state, size, flags, protocol,
 *             block sizes, names (default settings, then full info)
 *   reads     structured reads: chunk sequence (status, offset, count,
 *             *error on entry, checksum), completion, retirement, cookies
 *   nosr      the same reads without structured replies
 *   cberr     chunk callbacks returning -1
 *   prequeue  calls refused before queuing: return values, errno names
 *   commands  pwrite, zero, trim, flush, cache (sync and aio) with their
 *             flags, read back; refusals under the default strict mode
 *   commands-nostrict  the same with strict mode 0: the server judges
 *   extents   block status (SCENARIO URI CONTEXT,CONTEXT...): the extent
 *             callback's calls, REQ_ONE, refusals
 *   connfail  connection failures (URI is ignored: fixed bad targets)
 *
 * The transcript leaves out what libnbdc may do differently on purpose:
 * error message texts, nbd_connection_state(3) strings,
 * nbd_aio_command_completed(3) on unknown cookies, and
 * nbd_aio_is_processing(3) while commands are in flight.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdarg.h>

#include <libnbd.h>

#include "api-tap.h"

#define MiB (1024 * 1024)

static const char *
state_of (struct nbd_handle *h)
{
  static char buf[128];

  snprintf (buf, sizeof buf, "%s%s%s%s%s%s%s",
            nbd_aio_is_created (h) ? " created" : "",
            nbd_aio_is_connecting (h) ? " connecting" : "",
            nbd_aio_is_negotiating (h) ? " negotiating" : "",
            nbd_aio_is_ready (h) ? " ready" : "",
            nbd_aio_is_processing (h) ? " processing" : "",
            nbd_aio_is_dead (h) ? " dead" : "",
            nbd_aio_is_closed (h) ? " closed" : "");
  return buf[0] ? buf + 1 : "(none)";
}

/* A return value, with the errno name when it is -1. */
static void
result (const char *what, int64_t r)
{
  if (r == -1)
    printf ("%s: -1 %s\n", what, errno_name (nbd_get_errno ()));
  else
    printf ("%s: %" PRId64 "\n", what, r);
}

static void
string_result (const char *what, char *s)
{
  if (s == NULL)
    printf ("%s: NULL %s\n", what, errno_name (nbd_get_errno ()));
  else
    printf ("%s: \"%s\"\n", what, s);
  free (s);
}

static struct nbd_handle *
create (void)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL) {
    printf ("nbd_create: NULL %s\n", errno_name (nbd_get_errno ()));
    exit (EXIT_FAILURE);
  }
  return h;
}

static struct nbd_handle *
connect_uri (const char *uri, bool structured)
{
  struct nbd_handle *h = create ();

  nbd_set_request_structured_replies (h, structured);
  result ("connect", nbd_connect_uri (h, uri));
  printf ("state: %s\n", state_of (h));
  if (!nbd_aio_is_ready (h))
    exit (EXIT_FAILURE);
  return h;
}

static void
print_info (struct nbd_handle *h)
{
  const char *proto;

  result ("size", nbd_get_size (h));
  result ("is_read_only", nbd_is_read_only (h));
  result ("can_flush", nbd_can_flush (h));
  result ("can_fua", nbd_can_fua (h));
  result ("can_trim", nbd_can_trim (h));
  result ("can_zero", nbd_can_zero (h));
  result ("can_fast_zero", nbd_can_fast_zero (h));
  result ("can_df", nbd_can_df (h));
  result ("can_multi_conn", nbd_can_multi_conn (h));
  result ("can_cache", nbd_can_cache (h));
  result ("is_rotational", nbd_is_rotational (h));
  result ("can_meta_context base:allocation",
          nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION));
  proto = nbd_get_protocol (h);
  printf ("protocol: %s\n", proto ? proto : "NULL");
  result ("structured_replies_negotiated",
          nbd_get_structured_replies_negotiated (h));
  result ("block_size minimum", nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM));
  result ("block_size preferred",
          nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED));
  result ("block_size maximum", nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM));
  string_result ("canonical_export_name", nbd_get_canonical_export_name (h));
  string_result ("export_description", nbd_get_export_description (h));
  string_result ("export_name", nbd_get_export_name (h));
  string_result ("uri", nbd_get_uri (h));
  result ("in_flight", nbd_aio_in_flight (h));
  result ("direction", nbd_aio_get_direction (h));
}

static void
scenario_info (const char *uri)
{
  struct nbd_handle *h;
  int full;

  h = create ();
  printf ("state: %s\n", state_of (h));
  result ("get_handshake_flags", nbd_get_handshake_flags (h));
  result ("get_strict_mode", nbd_get_strict_mode (h));
  result ("get_request_structured_replies",
          nbd_get_request_structured_replies (h));
  result ("get_full_info", nbd_get_full_info (h));
  result ("get_pread_initialize", nbd_get_pread_initialize (h));
  result ("get_debug", nbd_get_debug (h));
  result ("supports_uri", nbd_supports_uri (h));
  result ("get_nr_meta_contexts", nbd_get_nr_meta_contexts (h));
  nbd_close (h);

  for (full = 0; full <= 1; full++) {
    printf ("-- full_info %d\n", full);
    h = create ();
    nbd_set_full_info (h, full);
    result ("connect", nbd_connect_uri (h, uri));
    printf ("state: %s\n", state_of (h));
    if (!nbd_aio_is_ready (h))
      exit (EXIT_FAILURE);
    print_info (h);
    result ("shutdown", nbd_shutdown (h, 0));
    printf ("state: %s\n", state_of (h));
    result ("size after shutdown", nbd_get_size (h));
    result ("in_flight after shutdown", nbd_aio_in_flight (h));
    nbd_close (h);
  }
}

/* Chunk and completion events of one read, printed as they happen. */
struct events {
  const unsigned char *buf;
  uint64_t offset;
  int fail_at[2];
  int fail_with[2];
  int n;
};

static const char *
status_name (unsigned status)
{
  switch (status) {
  case LIBNBD_READ_DATA: return "DATA";
  case LIBNBD_READ_HOLE: return "HOLE";
  case LIBNBD_READ_ERROR: return "ERROR";
  default: return "?";
  }
}

/* Callback events are collected here and printed after the call that
 * issued the command returns: whether a reply is processed inside that
 * call or in a later nbd_poll is timing, not behaviour (api-callbacks.c
 * checks the rule about it deterministically).
 */
static char events_text[65536];
static size_t events_len;

static TAP_PRINTF (1, 2) void
event (const char *fmt, ...)
{
  va_list args;
  int r;

  va_start (args, fmt);
  r = vsnprintf (events_text + events_len,
                 sizeof events_text - events_len, fmt, args);
  va_end (args);
  if (r > 0)
    events_len += r;
  if (events_len >= sizeof events_text)
    abort ();
}

static void
flush_events (void)
{
  fputs (events_text, stdout);
  events_len = 0;
  events_text[0] = '\0';
}

static int
print_chunk (void *user_data, const void *subbuf, size_t count,
             uint64_t offset, unsigned status, int *error)
{
  struct events *ev = user_data;
  int n = ev->n++;
  int k;

  event ("  chunk %s offset %" PRIu64 " count %zu error %s",
         status_name (status), offset, count, errno_name (*error));
  if (status != LIBNBD_READ_ERROR) {
    event (" at buf+%td sum %08" PRIx32,
           (const unsigned char *) subbuf - ev->buf,
           checksum (subbuf, count));
  }
  for (k = 0; k < 2; k++) {
    if (ev->fail_at[k] == n) {
      *error = ev->fail_with[k];
      event (" -> -1 %s\n", errno_name (*error));
      return -1;
    }
  }
  event ("\n");
  return 0;
}

static int
print_completion (void *user_data, int *error)
{
  event ("  completion error %s\n", errno_name (*error));
  return 0;
}

static void
one_read (struct nbd_handle *h, size_t count, uint64_t offset,
          uint32_t flags, struct events *ev)
{
  unsigned char *buf = malloc (count);
  int64_t cookie;
  int r;

  if (buf == NULL)
    abort ();
  memset (buf, 0xa5, count);
  ev->buf = buf;
  ev->offset = offset;
  ev->n = 0;
  printf ("read %zu at %" PRIu64 " flags 0x%" PRIx32 "\n", count, offset,
          flags);
  cookie = nbd_aio_pread_structured (h, buf, count, offset,
    (nbd_chunk_callback) { .callback = print_chunk, .user_data = ev },
    (nbd_completion_callback) { .callback = print_completion }, flags);
  result ("  cookie", cookie);
  if (cookie >= 1) {
    r = wait_for_cookie (h, cookie);
    flush_events ();
    result ("  completed", r);
    if (r == 1)
      printf ("  buffer sum %08" PRIx32 "\n", checksum (buf, count));
  }
  free (buf);
}

static void
plain_events (struct events *ev)
{
  memset (ev, 0, sizeof *ev);
  ev->fail_at[0] = ev->fail_at[1] = -1;
}

static const struct { uint64_t offset; size_t count; } reads[] = {
  { 0, 4096 },
  { 8, 8 },
  { 12345, 100000 },
  { 1000, 400000 },
  { 0, MiB },
};

static void
do_reads (struct nbd_handle *h)
{
  int64_t size = nbd_get_size (h);
  struct events ev;
  unsigned char *buf;
  size_t i, count;
  int r;

  for (i = 0; i < sizeof reads / sizeof reads[0]; i++) {
    if (reads[i].offset + reads[i].count > (uint64_t) size)
      continue;
    plain_events (&ev);
    one_read (h, reads[i].count, reads[i].offset, 0, &ev);
  }
  /* The last bytes of the export. */
  plain_events (&ev);
  one_read (h, 8, size - 8, 0, &ev);
  if (nbd_can_df (h) == 1 && size >= 401000) {
    plain_events (&ev);
    one_read (h, 400000, 1000, LIBNBD_CMD_FLAG_DF, &ev);
  }
  /* nbd_pread. */
  count = size < 65536 ? size : 65536;
  buf = malloc (count);
  if (buf == NULL)
    abort ();
  printf ("pread %zu at 0\n", count);
  r = nbd_pread (h, buf, count, 0, 0);
  result ("  result", r);
  if (r == 0)
    printf ("  buffer sum %08" PRIx32 "\n", checksum (buf, count));
  /* A read in flight whose request is fully sent: libnbd calls that
   * "ready" (waiting), not "processing" (nbd_aio_is_processing(3)).
   */
  {
    char small[512];
    int64_t cookie = nbd_aio_pread (h, small, sizeof small, 0,
                                    NBD_NULL_COMPLETION, 0);

    result ("aio_pread in flight", cookie > 0);
    result ("in_flight", nbd_aio_in_flight (h));
    printf ("state with a read in flight: %s\n", state_of (h));
    while (cookie > 0 && (r = nbd_aio_command_completed (h, cookie)) == 0)
      if (nbd_poll (h, -1) == -1)
        break;
    result ("  completed", r);
  }
  free (buf);
  result ("in_flight", nbd_aio_in_flight (h));
  printf ("state: %s\n", state_of (h));
}

static void
scenario_reads (const char *uri, bool structured)
{
  struct nbd_handle *h = connect_uri (uri, structured);

  result ("structured_replies_negotiated",
          nbd_get_structured_replies_negotiated (h));
  do_reads (h);
  result ("shutdown", nbd_shutdown (h, 0));
  printf ("state: %s\n", state_of (h));
  nbd_close (h);
}

static void
scenario_cberr (const char *uri)
{
  struct nbd_handle *h = connect_uri (uri, true);
  int64_t size = nbd_get_size (h);
  size_t count = size >= 401000 ? 400000 : 4096;
  uint64_t offset = size >= 401000 ? 1000 : 0;
  struct events ev;

  printf ("-- first chunk fails with EPERM\n");
  plain_events (&ev);
  ev.fail_at[0] = 0;
  ev.fail_with[0] = EPERM;
  one_read (h, count, offset, 0, &ev);

  printf ("-- first chunk fails with *error 0\n");
  plain_events (&ev);
  ev.fail_at[0] = 0;
  one_read (h, count, offset, 0, &ev);

  printf ("-- second chunk fails with ENOSPC\n");
  plain_events (&ev);
  ev.fail_at[0] = 1;
  ev.fail_with[0] = ENOSPC;
  one_read (h, count, offset, 0, &ev);

  printf ("-- first EPERM, second ENOSPC\n");
  plain_events (&ev);
  ev.fail_at[0] = 0;
  ev.fail_with[0] = EPERM;
  ev.fail_at[1] = 1;
  ev.fail_with[1] = ENOSPC;
  one_read (h, count, offset, 0, &ev);

  printf ("-- a clean read afterwards\n");
  plain_events (&ev);
  one_read (h, count, offset, 0, &ev);
  printf ("state: %s\n", state_of (h));
  result ("shutdown", nbd_shutdown (h, 0));
  nbd_close (h);
}

static int
noop_chunk (void *user_data, const void *subbuf, size_t count,
            uint64_t offset, unsigned status, int *error)
{
  return 0;
}

static void
scenario_prequeue (const char *uri)
{
  struct nbd_handle *h;
  static unsigned char buf[8192];
  nbd_chunk_callback noop = { .callback = noop_chunk };
  int64_t size, cookie;

  printf ("-- not connected\n");
  h = create ();
  result ("get_size", nbd_get_size (h));
  result ("pread", nbd_pread (h, buf, 512, 0, 0));
  result ("aio_pread", nbd_aio_pread (h, buf, 512, 0, NBD_NULL_COMPLETION,
                                      0));
  result ("shutdown", nbd_shutdown (h, 0));
  printf ("state: %s\n", state_of (h));
  nbd_close (h);

  printf ("-- connected\n");
  h = connect_uri (uri, true);
  size = nbd_get_size (h);
  result ("connect again", nbd_connect_uri (h, uri));
  printf ("state: %s\n", state_of (h));
  result ("past the end", nbd_aio_pread (h, buf, 512, size,
                                         NBD_NULL_COMPLETION, 0));
  result ("straddling the end", nbd_aio_pread (h, buf, 8, size - 4,
                                               NBD_NULL_COMPLETION, 0));
  result ("zero length", nbd_aio_pread (h, buf, 0, 0, NBD_NULL_COMPLETION,
                                        0));
  result ("flag 0x40", nbd_aio_pread (h, buf, 512, 0, NBD_NULL_COMPLETION,
                                      0x40));
  result ("FUA", nbd_aio_pread (h, buf, 512, 0, NBD_NULL_COMPLETION,
                                LIBNBD_CMD_FLAG_FUA));
  result ("DF on aio_pread", nbd_aio_pread (h, buf, 512, 0,
                                            NBD_NULL_COMPLETION,
                                            LIBNBD_CMD_FLAG_DF));
  result ("DF on pread_structured",
          nbd_pread_structured (h, buf, 512, 0, noop, LIBNBD_CMD_FLAG_DF));
  result ("unaligned 1 at 1", cookie = nbd_aio_pread (h, buf, 1, 1,
                                                      NBD_NULL_COMPLETION,
                                                      0));
  if (cookie >= 1)
    result ("  completed", wait_for_cookie (h, cookie));
  result ("sync past the end", nbd_pread (h, buf, 512, size, 0));
  result ("sync zero length", nbd_pread (h, buf, 0, 0, 0));
  /* Cookies keep counting from where they were. */
  cookie = nbd_aio_pread (h, buf, 512, 0, NBD_NULL_COMPLETION, 0);
  result ("next cookie", cookie);
  result ("  completed", wait_for_cookie (h, cookie));

  printf ("-- strict mode 0\n");
  result ("set_strict_mode", nbd_set_strict_mode (h, 0));
  result ("get_strict_mode", nbd_get_strict_mode (h));
  cookie = nbd_aio_pread (h, buf, 8, size - 4, NBD_NULL_COMPLETION, 0);
  result ("straddling the end", cookie);
  if (cookie >= 1)
    result ("  completed", wait_for_cookie (h, cookie));
  printf ("state: %s\n", state_of (h));
  result ("set_strict_mode", nbd_set_strict_mode (h, LIBNBD_STRICT_MASK));

  printf ("-- after shutdown\n");
  result ("shutdown", nbd_shutdown (h, 0));
  printf ("state: %s\n", state_of (h));
  result ("pread", nbd_pread (h, buf, 512, 0, 0));
  result ("aio_pread", nbd_aio_pread (h, buf, 512, 0, NBD_NULL_COMPLETION,
                                      0));
  result ("shutdown again", nbd_shutdown (h, 0));
  result ("get_size", nbd_get_size (h));
  nbd_close (h);
}

/* ----- The command set: writes, zero, trim, flush, cache. ----- */

static int
print_extents (void *user_data, const char *metacontext, uint64_t offset,
               uint32_t *entries, size_t nr_entries, int *error)
{
  event ("  extents %s offset %" PRIu64 " error %s:", metacontext, offset,
         errno_name (*error));
  for (size_t i = 0; i + 1 < nr_entries; i += 2)
    event (" %" PRIu32 "/%" PRIu32, entries[i], entries[i + 1]);
  event ("\n");
  return 0;
}

/* A region's checksum read back with nbd_pread. */
static void
print_region (struct nbd_handle *h, const char *what, size_t count,
              uint64_t offset)
{
  unsigned char *buf = malloc (count);

  if (buf == NULL)
    abort ();
  if (nbd_pread (h, buf, count, offset, 0) == -1)
    printf ("  %s: read -1 %s\n", what, errno_name (nbd_get_errno ()));
  else
    printf ("  %s: sum %08" PRIx32 "\n", what, checksum (buf, count));
  free (buf);
}

/* Wait for an aio command and print how it ended. */
static void
aio_result (struct nbd_handle *h, const char *what, int64_t cookie)
{
  result (what, cookie >= 1 ? 1 : cookie);
  if (cookie >= 1) {
    result ("  completed", wait_for_cookie (h, cookie));
    flush_events ();
  }
}

/* Each command with each flag it may carry, sync then aio; what each
 * wrote is read back.  On a read-only or feature-poor export the same
 * calls show the refusals (strict mode, then the server's own errors with
 * strict mode off).
 */
static void
do_commands (struct nbd_handle *h)
{
  static unsigned char data[MiB + 4096];
  nbd_completion_callback done = { .callback = print_completion };
  nbd_extent_callback ext = { .callback = print_extents };
  int64_t size = nbd_get_size (h);

  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (i * 7 + i / 4096) & 0xff;
  if (size < 2 * MiB)
    return;
  result ("pwrite 4096 at 0", nbd_pwrite (h, data, 4096, 0, 0));
  result ("pwrite FUA 512 at 4096",
          nbd_pwrite (h, data + 1, 512, 4096, LIBNBD_CMD_FLAG_FUA));
  result ("pwrite 1M at 1M", nbd_pwrite (h, data + 3, MiB, MiB, 0));
  print_region (h, "[0, 8192)", 8192, 0);
  print_region (h, "[1M, 2M)", MiB, MiB);
  result ("flush", nbd_flush (h, 0));
  result ("flush FUA", nbd_flush (h, LIBNBD_CMD_FLAG_FUA));
  result ("zero 4096 at 0", nbd_zero (h, 4096, 0, 0));
  result ("zero NO_HOLE 512 at 4096",
          nbd_zero (h, 512, 4096, LIBNBD_CMD_FLAG_NO_HOLE));
  result ("zero FUA 64K at 1M",
          nbd_zero (h, 65536, MiB, LIBNBD_CMD_FLAG_FUA));
  result ("zero FAST_ZERO 64K at 1M+64K",
          nbd_zero (h, 65536, MiB + 65536, LIBNBD_CMD_FLAG_FAST_ZERO));
  print_region (h, "[0, 8192) after zero", 8192, 0);
  print_region (h, "[1M, 2M) after zero", MiB, MiB);
  result ("trim 64K at 1M+128K", nbd_trim (h, 65536, MiB + 131072, 0));
  result ("trim FUA 64K at 1M+192K",
          nbd_trim (h, 65536, MiB + 196608, LIBNBD_CMD_FLAG_FUA));
  result ("cache 1M at 0", nbd_cache (h, MiB, 0, 0));
  result ("cache past the end", nbd_cache (h, 4096, size, 0));
  result ("pwrite past the end", nbd_pwrite (h, data, 512, size, 0));
  result ("zero past the end", nbd_zero (h, 512, size, 0));
  result ("trim past the end", nbd_trim (h, 512, size, 0));
  result ("trim straddling the end", nbd_trim (h, 1024, size - 512, 0));
  result ("block_status past the end",
          nbd_block_status (h, 512, size, ext, 0));
  result ("trim zero length", nbd_trim (h, 0, 0, 0));
  result ("trim zero length past the end", nbd_trim (h, 0, size + 512, 0));
  result ("pwrite unaligned past the end", nbd_pwrite (h, data, 1, size, 0));
  result ("zero unaligned zero length", nbd_zero (h, 0, 1, 0));
  result ("zero zero length", nbd_zero (h, 0, 0, 0));
  result ("pwrite zero length", nbd_pwrite (h, data, 0, 0, 0));
  result ("pwrite flag DF", nbd_pwrite (h, data, 512, 0, LIBNBD_CMD_FLAG_DF));
  result ("trim flag NO_HOLE",
          nbd_trim (h, 512, 0, LIBNBD_CMD_FLAG_NO_HOLE));
  result ("flush flag FUA|0x40", nbd_flush (h, 0x40));
  result ("cache flag FUA", nbd_cache (h, 512, 0, LIBNBD_CMD_FLAG_FUA));
  result ("zero flag REQ_ONE",
          nbd_zero (h, 512, 0, LIBNBD_CMD_FLAG_REQ_ONE));
  result ("pwrite unaligned 1 at 1", nbd_pwrite (h, data, 1, 1, 0));
  result ("zero unaligned 1 at 1", nbd_zero (h, 1, 1, 0));
  result ("pwrite 64M+1", nbd_pwrite (h, data, 64 * MiB + 1, 0, 0));
  result ("zero 4G", nbd_zero (h, UINT64_C (1) << 32, 0, 0));
  result ("block_status without a context",
          nbd_block_status (h, 512, 0, ext, 0));
  result ("block_status NULL callback",
          nbd_block_status (h, 512, 0, (nbd_extent_callback) {
              .callback = NULL }, 0));
  result ("pread_structured NULL callback",
          nbd_pread_structured (h, data, 512, 0, (nbd_chunk_callback) {
              .callback = NULL }, 0));

  aio_result (h, "aio_pwrite 8192 at 8192",
              nbd_aio_pwrite (h, data + 5, 8192, 8192, done, 0));
  aio_result (h, "aio_zero 4096 at 12288",
              nbd_aio_zero (h, 4096, 12288, done, 0));
  aio_result (h, "aio_trim 4096 at 8192",
              nbd_aio_trim (h, 4096, 8192, done, 0));
  aio_result (h, "aio_flush", nbd_aio_flush (h, done, 0));
  aio_result (h, "aio_cache 4096 at 0",
              nbd_aio_cache (h, 4096, 0, done, 0));
  print_region (h, "[12288, 16384) after aio", 4096, 12288);
}

static void
scenario_commands (const char *uri, uint32_t strict)
{
  struct nbd_handle *h = connect_uri (uri, true);

  result ("set_strict_mode", nbd_set_strict_mode (h, strict));
  print_info (h);
  do_commands (h);
  result ("shutdown", nbd_shutdown (h, 0));
  nbd_close (h);
}

/* ----- Block status. ----- */

static void
scenario_extents (const char *uri, const char *contexts)
{
  struct nbd_handle *h = create ();
  nbd_extent_callback ext = { .callback = print_extents };
  nbd_completion_callback done = { .callback = print_completion };
  char *list = strdup (contexts), *name, *save = NULL;
  int64_t size;

  for (name = strtok_r (list, ",", &save); name;
       name = strtok_r (NULL, ",", &save))
    result (name, nbd_add_meta_context (h, name));
  free (list);
  result ("connect", nbd_connect_uri (h, uri));
  if (!nbd_aio_is_ready (h))
    exit (EXIT_FAILURE);
  result ("get_nr_meta_contexts", nbd_get_nr_meta_contexts (h));
  result ("can_meta_context base:allocation",
          nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION));
  size = nbd_get_size (h);
  result ("size", size);
  if (nbd_is_read_only (h) == 0 && size >= 2 * MiB) {
    static unsigned char data[65536];

    memset (data, 0x5a, sizeof data);
    result ("pwrite 64K at 64K", nbd_pwrite (h, data, 65536, 65536, 0));
    result ("zero NO_HOLE 64K at 256K",
            nbd_zero (h, 65536, 262144, LIBNBD_CMD_FLAG_NO_HOLE));
    result ("trim 64K at 64K+32K", nbd_trim (h, 32768, 98304, 0));
  }
  static const struct { uint64_t offset, count; uint32_t flags; } q[] = {
    { 0, 1024 * 1024, 0 },
    { 0, 1024 * 1024, LIBNBD_CMD_FLAG_REQ_ONE },
    { 65536, 4096, 0 },
    { 65536 + 512, 100000, 0 },
    { 98304, 65536, LIBNBD_CMD_FLAG_REQ_ONE },
  };
  for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
    if (q[i].offset + q[i].count > (uint64_t) size)
      continue;
    printf ("block_status %" PRIu64 " at %" PRIu64 " flags 0x%" PRIx32 "\n",
            q[i].count, q[i].offset, q[i].flags);
    result ("  sync", nbd_block_status (h, q[i].count, q[i].offset, ext,
                                        q[i].flags));
    flush_events ();
    aio_result (h, "  aio",
                nbd_aio_block_status (h, q[i].count, q[i].offset, ext, done,
                                      q[i].flags));
  }
  result ("whole export", nbd_block_status (h, size, 0, ext, 0));
  flush_events ();
  result ("past the end", nbd_block_status (h, 512, size, ext, 0));
  result ("zero length", nbd_block_status (h, 0, 0, ext, 0));
  result ("flag FUA", nbd_block_status (h, 512, 0, ext,
                                        LIBNBD_CMD_FLAG_FUA));
  result ("shutdown", nbd_shutdown (h, 0));
  nbd_close (h);
}

static void
connfail (const char *what, struct nbd_handle *h, int r)
{
  result (what, r);
  printf ("state: %s\n", state_of (h));
  nbd_close (h);
}

static void
scenario_connfail (void)
{
  struct nbd_handle *h;

  h = create ();
  connfail ("connect_unix missing socket",
            h, nbd_connect_unix (h, "/nonexistent/nbdc-test.sock"));
  h = create ();
  connfail ("connect_uri missing socket", h,
            nbd_connect_uri (h,
                             "nbd+unix:///?socket=/nonexistent/x.sock"));
  h = create ();
  connfail ("connect_uri http", h, nbd_connect_uri (h, "http://x/"));
  h = create ();
  connfail ("connect_uri no socket", h, nbd_connect_uri (h, "nbd+unix:///"));
  h = create ();
  connfail ("connect_tcp closed port", h,
            nbd_connect_tcp (h, "127.0.0.1", "1"));
  h = create ();
  connfail ("connect_uri closed port", h,
            nbd_connect_uri (h, "nbd://127.0.0.1:1/"));
}

int
main (int argc, char *argv[])
{
  const char *scenario;

  if (argc != 3 && argc != 4) {
    fprintf (stderr, "usage: %s SCENARIO URI [CONTEXTS]\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  setvbuf (stdout, NULL, _IOLBF, 0);
  scenario = argv[1];
  if (strcmp (scenario, "info") == 0)
    scenario_info (argv[2]);
  else if (strcmp (scenario, "reads") == 0)
    scenario_reads (argv[2], true);
  else if (strcmp (scenario, "nosr") == 0)
    scenario_reads (argv[2], false);
  else if (strcmp (scenario, "cberr") == 0)
    scenario_cberr (argv[2]);
  else if (strcmp (scenario, "prequeue") == 0)
    scenario_prequeue (argv[2]);
  else if (strcmp (scenario, "commands") == 0)
    scenario_commands (argv[2], LIBNBD_STRICT_MASK);
  else if (strcmp (scenario, "commands-nostrict") == 0)
    scenario_commands (argv[2], 0);
  else if (strcmp (scenario, "extents") == 0 && argc >= 4)
    scenario_extents (argv[2], argv[3]);
  else if (strcmp (scenario, "connfail") == 0)
    scenario_connfail ();
  else {
    fprintf (stderr, "%s: unknown scenario %s\n", argv[0], scenario);
    exit (EXIT_FAILURE);
  }
  return EXIT_SUCCESS;
}
