/* hostile-replies: what the client library does with a misbehaving server.
 *
 * Usage: hostile-replies [--same-as-libnbd] BAD-SERVER [SCENARIO...]
 *
 * For each scenario of bad-server (see bad-server --list) it connects with
 * nbd_aio_connect_command, issues nbd_aio_pread_structured and drives the
 * handle with nbd_poll, giving up after a bounded idle time so that a hang
 * is a failure.  It checks the outcome the strict reply validation of
 * libnbdc(3) promises:
 *
 *   works        connect, read and verify the data;
 *   fails-errno  the read fails with the server's error, the handle stays
 *                usable and a second read returns the right data;
 *   fails-dead   the read fails and the handle is dead or closed (the
 *                stream cannot be trusted any more);
 *   fails        the read fails; the handle may die, or stay usable and
 *                then a second read returns the right data;
 *   no-connect   the connection fails with an error message and the errno
 *                the expectation names, the handle is dead, and a read on it
 *                then fails at once with EINVAL.
 *
 * Connected handles also report the block sizes the server sent
 * (nbd_get_block_size), and the meta context it selected when the
 * expectation asks for one before connecting (nbd_can_meta_context).
 *
 * and, for every scenario: each callback's .free runs exactly once and no
 * callback runs after it, the completion callback runs once, the chunk
 * callback sees only ranges inside the request and correct contents, no
 * byte outside the caller's buffer is written, and wrong data is never
 * returned as success.  Two TAP lines per scenario: outcome, then hygiene.
 *
 * It tests libnbdc's strict behaviour; libnbd 1.14 is more lenient in some
 * scenarios.  Built against libnbd and run with --same-as-libnbd, it runs
 * only the expectations where libnbdc promises exactly libnbd's behaviour:
 * libnbd is the oracle for those.
 */

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#define READ_OFFSET       65536
#define READ_COUNT        16384
#define SECOND_OFFSET     131072
#define SECOND_COUNT      4096
#define GUARD             64     /* canary bytes either side of a buffer */
#define CANARY            0xa5
#define POLL_TIMEOUT_MS   1000
#define MAX_IDLE_POLLS    20     /* seconds without any event: a hang */
#define MAX_POLLS         100000 /* events without completion: a loop */

enum outcome { WORKS, FAILS_ERRNO, FAILS_DEAD, FAILS, NO_CONNECT };

static const char *
outcome_name (enum outcome outcome)
{
  switch (outcome) {
  case WORKS: return "works";
  case FAILS_ERRNO: return "fails with the server's error, handle usable";
  case FAILS_DEAD: return "fails, handle dead";
  case FAILS: return "fails";
  case NO_CONNECT: return "connect fails";
  }
  abort ();
}

struct expectation {
  const char *scenario;
  bool trickle;                 /* bad-server --trickle */
  uint32_t flags;               /* command flags of the first read */
  enum outcome outcome;
  int error;                    /* errno for FAILS_ERRNO and NO_CONNECT */
  int error_chunks;             /* LIBNBD_READ_ERROR calls: 0, 1 (at
                                   ERROR_OFFSET) or ANY */
  const char *rule;
  bool same_as_libnbd;          /* libnbd 1.14 does exactly this */
  uint32_t block_size[3];       /* nbd_get_block_size: MINIMUM, PREFERRED,
                                   MAXIMUM (0: none) */
  const char *meta_request;     /* nbd_add_meta_context before connecting */
  const char *meta_selected;    /* the context nbd_can_meta_context then
                                   reports (NULL: none) */
};

#define DF LIBNBD_CMD_FLAG_DF
#define ANY (-1)

/* bad-server's error-offset-eio reports its error here. */
#define ERROR_OFFSET (READ_OFFSET + 8)

/* The rules come from the NBD protocol specification (doc/proto.md,
 * "Structured reply types" and NBD_CMD_READ).
 */
static const struct expectation expectations[] = {
  /* Correct servers. */
  { "good", false, 0, WORKS, 0, ANY,
    "data chunks in any order fill the buffer",
    .same_as_libnbd = true },
  { "good", false, DF, WORKS, 0, ANY, "DF read with one data chunk",
    .same_as_libnbd = true },
  { "good", true, 0, WORKS, 0, ANY, "replies split at every byte",
    .same_as_libnbd = true },
  { "good-simple", false, 0, WORKS, 0, ANY,
    "structured replies refused: simple replies",
    .same_as_libnbd = true },
  { "good-no-go", false, 0, WORKS, 0, ANY,
    "GO refused: fall back to EXPORT_NAME",
    .same_as_libnbd = true },
  { "oldstyle", false, 0, WORKS, 0, ANY, "oldstyle handshake",
    .same_as_libnbd = true },
  { "none-not-alone", false, 0, WORKS, 0, ANY,
    "NONE is always acceptable as the final chunk",
    .same_as_libnbd = true },

  /* The stream cannot be trusted any more: EOF, a bad magic, a cookie not
   * in flight, a length nothing can hold, the wrong kind of reply.  And
   * what the spec answers with "the client MUST initiate a hard
   * disconnect": an unknown or unexpected non-error chunk type, an error
   * message length past the payload, inconsistent contents (a payload
   * length wrong for the type, a zero hole size, NONE without DONE).
   */
  { "close-before-reply", false, 0, FAILS_DEAD, 0, ANY,
    "EOF with a command in flight fails it",
    .same_as_libnbd = true },
  { "close-mid-data", false, 0, FAILS_DEAD, 0, ANY,
    "EOF inside a chunk fails the command",
    .same_as_libnbd = true },
  { "close-mid-data", true, 0, FAILS_DEAD, 0, ANY,
    "EOF inside a chunk fails the command",
    .same_as_libnbd = true },
  { "bad-magic", false, 0, FAILS_DEAD, 0, ANY,
    "a reply with a wrong magic kills the handle",
    .same_as_libnbd = true },
  { "unknown-cookie", false, 0, FAILS_DEAD, 0, ANY,
    "a reply to a cookie not in flight kills the handle",
    .same_as_libnbd = true },
  { "huge-length", false, 0, FAILS_DEAD, 0, ANY,
    "a data payload longer than the request kills the handle",
    .same_as_libnbd = true },
  { "huge-length", true, 0, FAILS_DEAD, 0, ANY,
    "a data payload longer than the request kills the handle",
    .same_as_libnbd = true },
  { "structured-when-simple", false, 0, FAILS_DEAD, 0, ANY,
    "no structured chunk unless structured replies were negotiated",
    .same_as_libnbd = true },
  { "unknown-chunk-type", false, 0, FAILS_DEAD, 0, ANY,
    "an unknown non-error chunk type: hard disconnect",
    .same_as_libnbd = true },
  { "block-status-for-read", false, 0, FAILS_DEAD, 0, ANY,
    "an unexpected non-error chunk type: hard disconnect",
    .same_as_libnbd = true },
  { "data-empty", false, 0, FAILS_DEAD, 0, ANY,
    "a data chunk payload is at least 9 bytes" },
  { "hole-bad-length", false, 0, FAILS_DEAD, 0, ANY,
    "a hole chunk payload is exactly 12 bytes",
    .same_as_libnbd = true },
  { "hole-zero", false, 0, FAILS_DEAD, 0, ANY,
    "a hole size must be non-zero" },
  { "none-without-done", false, 0, FAILS_DEAD, 0, ANY,
    "a NONE chunk always has the DONE flag",
    .same_as_libnbd = true },
  { "error-bad-length", false, 0, FAILS_DEAD, 0, ANY,
    "an error message longer than the payload: hard disconnect",
    .same_as_libnbd = true },

  /* Invalid chunks, for which the spec lets the client choose ("MAY
   * initiate a hard disconnect"): the read fails; the handle may die, or
   * stay usable and then must read correctly.  error-zero and
   * error-long-message are error chunks with a bad field: the reply is an
   * error anyway, so they are here too (libnbd 1.14 keeps the handle after
   * error-zero).  A simple reply to a READ after structured replies were
   * negotiated is forbidden even for an error.
   */
  { "chunk-outside", false, 0, FAILS, 0, ANY,
    "a data chunk must lie inside the request" },
  { "chunk-past-end", false, 0, FAILS, 0, ANY,
    "a data chunk must lie inside the request" },
  { "hole-outside", false, 0, FAILS, 0, ANY,
    "a hole chunk must lie inside the request" },
  { "chunk-overlap", false, 0, FAILS, 0, ANY,
    "data chunks must not overlap" },
  { "chunk-overlap", true, 0, FAILS, 0, ANY,
    "data chunks must not overlap" },
  { "overlap-sums-to-length", false, 0, FAILS, 0, ANY,
    "success needs the whole request covered, not a byte count" },
  { "data-hole-overlap", false, 0, FAILS, 0, ANY,
    "data and hole chunks must not overlap" },
  { "short-coverage", false, 0, FAILS, 0, ANY,
    "success needs the whole request covered" },
  { "df-two-data", false, DF, FAILS, 0, ANY,
    "with DF, at most one data chunk" },
  { "error-zero", false, 0, FAILS, 0, ANY,
    "an error chunk's error must be non-zero" },
  { "error-long-message", false, 0, FAILS, 0, ANY,
    "error messages are at most 4096 bytes" },
  { "error-message-4100", false, 0, FAILS, 0, ANY,
    "error messages are at most 4096 bytes, even when they fit" },
  { "error-offset-outside", false, 0, FAILS, 0, ANY,
    "an ERROR_OFFSET offset must lie inside the request" },
  { "simple-data-when-structured", false, 0, FAILS, 0, ANY,
    "with structured replies, no simple reply to a READ" },
  { "simple-error-when-structured", false, 0, FAILS, 0, ANY,
    "with structured replies, no simple reply to a READ, even an error" },

  /* Well-formed errors: the read fails with the server's errno and the
   * handle stays usable.  LIBNBD_READ_ERROR reaches the chunk callback
   * only for an error with an offset (nbd_pread_structured(3)).
   */
  { "error-eio", false, 0, FAILS_ERRNO, EIO, 0,
    "an error chunk fails the command with its errno",
    .same_as_libnbd = true },
  { "error-eio", true, 0, FAILS_ERRNO, EIO, 0,
    "an error chunk fails the command with its errno",
    .same_as_libnbd = true },
  { "unknown-error-type", false, 0, FAILS_ERRNO, EPERM, 0,
    "an unknown error chunk type is treated as its error",
    .same_as_libnbd = true },
  { "unknown-error-type", true, 0, FAILS_ERRNO, EPERM, 0,
    "an unknown error chunk type is treated as its error",
    .same_as_libnbd = true },
  { "error-offset-eio", false, 0, FAILS_ERRNO, EIO, 1,
    "an ERROR_OFFSET chunk reaches the chunk callback as READ_ERROR",
    .same_as_libnbd = true },

  /* Handshake violations: the connection fails with a message. */
  { "oversized-option-reply", false, 0, NO_CONNECT, EPROTO, ANY,
    "never read an option reply payload the server claims is huge",
    .same_as_libnbd = true },
  { "bad-option-magic", false, 0, NO_CONNECT, EPROTO, ANY,
    "an option reply with a wrong magic drops the connection",
    .same_as_libnbd = true },
  { "wrong-option-echoed", false, 0, NO_CONNECT, EPROTO, ANY,
    "an option reply for another option drops the connection",
    .same_as_libnbd = true },
  { "info-name-too-long", false, 0, NO_CONNECT, EPROTO, ANY,
    "handshake strings are at most 4096 bytes",
    .same_as_libnbd = true },
  { "info-name-too-long", true, 0, NO_CONNECT, EPROTO, ANY,
    "handshake strings are at most 4096 bytes",
    .same_as_libnbd = true },
  { "missing-info-export", false, 0, NO_CONNECT, EPROTO, ANY,
    "GO must send NBD_INFO_EXPORT before its ACK" },
  { "close-in-handshake", false, 0, NO_CONNECT, EPROTO, ANY,
    "EOF in the handshake fails the connection",
    .same_as_libnbd = true },
  { "bad-greeting-magic", false, 0, NO_CONNECT, EPROTO, ANY,
    "a greeting starts with NBDMAGIC",
    .same_as_libnbd = true },
  { "unknown-version-magic", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBDMAGIC is followed by IHAVEOPT or the oldstyle magic",
    .same_as_libnbd = true },
  { "close-in-greeting", false, 0, NO_CONNECT, EPROTO, ANY,
    "EOF in the greeting fails the connection",
    .same_as_libnbd = true },
  { "close-in-option-reply", false, 0, NO_CONNECT, EPROTO, ANY,
    "EOF inside an option reply fails the connection",
    .same_as_libnbd = true },
  { "close-after-export-name", false, 0, NO_CONNECT, EPROTO, ANY,
    "a server closes on EXPORT_NAME of an unknown export",
    .same_as_libnbd = true },
  { "plain-newstyle", false, 0, WORKS, 0, ANY,
    "without FIXED_NEWSTYLE, only EXPORT_NAME",
    .same_as_libnbd = true },
  { "no-zeroes-not-offered", false, 0, WORKS, 0, ANY,
    "without NO_ZEROES, 124 zeroes follow the EXPORT_NAME reply",
    .same_as_libnbd = true },
  { "go-err-policy", false, 0, NO_CONNECT, EPROTO, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-policy-message", false, 0, NO_CONNECT, EPROTO, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-invalid", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-invalid-message", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-platform", false, 0, NO_CONNECT, EPROTO, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-platform-message", false, 0, NO_CONNECT, EPROTO, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-tls-reqd", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-tls-reqd-message", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-unknown", false, 0, NO_CONNECT, ENOENT, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-unknown-message", false, 0, NO_CONNECT, ENOENT, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-shutdown", false, 0, NO_CONNECT, ESHUTDOWN, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-shutdown-message", false, 0, NO_CONNECT, ESHUTDOWN, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-block-size-reqd", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-block-size-reqd-message", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-too-big", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-too-big-message", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-0x63", false, 0, NO_CONNECT, EPROTO, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "go-err-0x63-message", false, 0, NO_CONNECT, EPROTO, ANY,
    "GO refused (not ERR_UNSUP): no connection",
    .same_as_libnbd = true },
  { "structured-reply-server", false, 0, NO_CONNECT, EPROTO, ANY,
    "STRUCTURED_REPLY takes ACK or an error, not SERVER",
    .same_as_libnbd = true },
  { "structured-reply-ack-data", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_REP_ACK has no payload",
    .same_as_libnbd = true },
  { "go-ack-data", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_REP_ACK has no payload",
    .same_as_libnbd = true },
  { "info-export-short", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_INFO_EXPORT is 12 bytes long",
    .same_as_libnbd = true },
  { "info-export-long", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_INFO_EXPORT is 12 bytes long",
    .same_as_libnbd = true },
  { "info-block-size-short", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_INFO_BLOCK_SIZE is 14 bytes long",
    .same_as_libnbd = true },
  { "info-empty", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_REP_INFO holds at least an info type",
    .same_as_libnbd = true },
  { "info-one-byte", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_REP_INFO holds at least an info type",
    .same_as_libnbd = true },
  { "info-unknown-type", false, 0, WORKS, 0, ANY,
    "an unknown info type is ignored",
    .same_as_libnbd = true },
  { "huge-size", false, 0, NO_CONNECT, EPROTO, ANY,
    "an export size above INT64_MAX is refused",
    .same_as_libnbd = false },
  { "huge-size-no-go", false, 0, NO_CONNECT, EPROTO, ANY,
    "an export size above INT64_MAX is refused",
    .same_as_libnbd = false },
  { "huge-size-oldstyle", false, 0, NO_CONNECT, EPROTO, ANY,
    "an export size above INT64_MAX is refused",
    .same_as_libnbd = false },
  { "block-minimum-not-power-of-2", false, 0, WORKS, 0, ANY,
    "invalid block sizes are ignored, as libnbd does",
    .same_as_libnbd = true },
  { "block-minimum-too-big", false, 0, WORKS, 0, ANY,
    "invalid block sizes are ignored, as libnbd does",
    .same_as_libnbd = true },
  { "block-preferred-not-power-of-2", false, 0, WORKS, 0, ANY,
    "invalid block sizes are ignored, as libnbd does",
    .same_as_libnbd = true },
  { "block-preferred-below-minimum", false, 0, WORKS, 0, ANY,
    "invalid block sizes are ignored, as libnbd does",
    .same_as_libnbd = true },
  { "block-preferred-below-512", false, 0, WORKS, 0, ANY,
    "invalid block sizes are ignored, as libnbd does",
    .same_as_libnbd = true },
  { "block-maximum-below-preferred", false, 0, WORKS, 0, ANY,
    "invalid block sizes are ignored, as libnbd does",
    .same_as_libnbd = true },
  { "block-unlimited", false, 0, WORKS, 0, ANY,
    "valid block sizes are reported",
    .same_as_libnbd = true,
    .block_size = { 1, 4096, UINT32_C (0xffffffff) } },
  { "block-1m", false, 0, WORKS, 0, ANY,
    "valid block sizes are reported",
    .same_as_libnbd = true,
    .block_size = { 512, 4096, 1 << 20 } },
  { "block-maximum-not-multiple", false, 0, WORKS, 0, ANY,
    "a maximum not a multiple of the minimum is ignored, as libnbd does",
    .same_as_libnbd = true },
  { "meta-context", false, 0, WORKS, 0, ANY,
    "the context the server selects is reported",
    .same_as_libnbd = true, .meta_request = "base:allocation",
    .meta_selected = "base:allocation" },
  { "meta-context-other-name", false, 0, WORKS, 0, ANY,
    "the context the server selects is reported",
    .same_as_libnbd = true, .meta_request = "base:allocation",
    .meta_selected = "base:allocation:extra" },
  { "meta-context-error", false, 0, WORKS, 0, ANY,
    "SET_META_CONTEXT refused: no context",
    .same_as_libnbd = true, .meta_request = "base:allocation" },
  { "meta-context-short", false, 0, NO_CONNECT, EPROTO, ANY,
    "a META_CONTEXT reply holds an id and a name",
    .same_as_libnbd = true, .meta_request = "base:allocation" },
};

#define NR_EXPECTATIONS (sizeof expectations / sizeof expectations[0])

/* One read and everything its callbacks saw. */
struct read_state {
  uint64_t offset;
  size_t count;
  unsigned char *alloc;         /* buffer with GUARD bytes either side */
  unsigned char *buf;
  int64_t cookie;
  int result;                   /* 1 ok, -1 failed, 0 never completed */
  int error;                    /* errno of a failure */
  char *message;                /* error message of a failure */
  char *poll_message;           /* error of a failed nbd_poll, if any */
  bool hung;
  unsigned chunk_calls, completion_calls;
  unsigned chunk_frees, completion_frees;
  int completion_error;
  bool callback_after_free;
  bool chunk_after_completion;
  bool chunk_out_of_range;
  bool chunk_bad_content;
  bool chunk_bad_status;
  unsigned error_chunk_calls;
  uint64_t error_chunk_offset;
  int error_chunk_errno;
};

static unsigned tests;
static unsigned failures;
static bool only_same_as_libnbd;  /* --same-as-libnbd */

static void
tap (bool ok, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static void
tap (bool ok, const char *fmt, ...)
{
  va_list args;

  tests++;
  if (!ok)
    failures++;
  printf ("%s %u - ", ok ? "ok" : "not ok", tests);
  va_start (args, fmt);
  vprintf (fmt, args);
  va_end (args);
  printf ("\n");
  fflush (stdout);
}

static unsigned char
pattern_byte (uint64_t offset)
{
  return (offset & ~UINT64_C (7)) >> (8 * (7 - (offset & 7)));
}

static bool
is_pattern (const unsigned char *buf, size_t count, uint64_t offset)
{
  size_t i;

  for (i = 0; i < count; i++)
    if (buf[i] != pattern_byte (offset + i))
      return false;
  return true;
}

static bool
is_filled (const unsigned char *buf, size_t count, unsigned char byte)
{
  size_t i;

  for (i = 0; i < count; i++)
    if (buf[i] != byte)
      return false;
  return true;
}

static char *
copy_error (void)
{
  const char *msg = nbd_get_error ();

  return strdup (msg ? msg : "");
}

static int
chunk_callback (void *user_data, const void *subbuf, size_t count,
                uint64_t offset, unsigned status, int *error)
{
  struct read_state *rs = user_data;

  rs->chunk_calls++;
  if (rs->chunk_frees > 0)
    rs->callback_after_free = true;
  if (rs->completion_calls > 0)
    rs->chunk_after_completion = true;

  switch (status) {
  case LIBNBD_READ_DATA:
  case LIBNBD_READ_HOLE:
    if (offset < rs->offset || count > rs->count ||
        offset - rs->offset > rs->count - count) {
      rs->chunk_out_of_range = true;
      break;
    }
    /* bad-server's data is always right for the offset it claims. */
    if (status == LIBNBD_READ_DATA ?
        !is_pattern (subbuf, count, offset) : !is_filled (subbuf, count, 0))
      rs->chunk_bad_content = true;
    break;
  case LIBNBD_READ_ERROR:
    /* nbd_pread_structured(3): count is 0, the offset is the error's. */
    rs->error_chunk_calls++;
    rs->error_chunk_offset = offset;
    rs->error_chunk_errno = *error;
    if (count != 0 || offset < rs->offset ||
        offset - rs->offset >= rs->count)
      rs->chunk_out_of_range = true;
    break;
  default:
    rs->chunk_bad_status = true;
  }
  return 0;
}

static int
completion_callback (void *user_data, int *error)
{
  struct read_state *rs = user_data;

  rs->completion_calls++;
  rs->completion_error = *error;
  if (rs->completion_frees > 0)
    rs->callback_after_free = true;
  return 0;                     /* retire with nbd_aio_command_completed */
}

static void
chunk_free (void *user_data)
{
  struct read_state *rs = user_data;

  rs->chunk_frees++;
}

static void
completion_free (void *user_data)
{
  struct read_state *rs = user_data;

  rs->completion_frees++;
}

/* Drive the handle until done() or it dies, fails or hangs.  Returns
 * false on a hang, with the error of a failed nbd_poll in *message (and
 * its errno in *error, unless error is NULL).
 */
static bool
drive (struct nbd_handle *h, bool (*done) (struct nbd_handle *, void *),
       void *arg, char **message, int *error)
{
  unsigned idle = 0, polls = 0;

  while (!done (h, arg)) {
    int r;

    if (nbd_aio_is_dead (h) || nbd_aio_is_closed (h))
      return true;
    if (++polls > MAX_POLLS)
      return false;
    r = nbd_poll (h, POLL_TIMEOUT_MS);
    if (r == -1) {
      if (*message == NULL) {
        if (error)
          *error = nbd_get_errno ();
        *message = copy_error ();
      }
      return true;
    }
    if (r == 0 && ++idle >= MAX_IDLE_POLLS)
      return false;
  }
  return true;
}

static bool
read_done (struct nbd_handle *h, void *arg)
{
  struct read_state *rs = arg;

  return rs->completion_calls > 0;
}

static bool
connect_done (struct nbd_handle *h, void *arg)
{
  return !nbd_aio_is_created (h) && !nbd_aio_is_connecting (h);
}

/* Issue one read and wait for it; the buffer stays allocated until the
 * handle is closed, as the library may write into it until then.
 */
static void
do_read (struct nbd_handle *h, struct read_state *rs, uint64_t offset,
         size_t count, uint32_t flags)
{
  int r;

  rs->offset = offset;
  rs->count = count;
  rs->alloc = malloc (count + 2 * GUARD);
  if (rs->alloc == NULL) {
    perror ("malloc");
    exit (EXIT_FAILURE);
  }
  memset (rs->alloc, CANARY, count + 2 * GUARD);
  rs->buf = rs->alloc + GUARD;

  rs->cookie = nbd_aio_pread_structured (h, rs->buf, count, offset,
    (nbd_chunk_callback) { .callback = chunk_callback, .user_data = rs,
                           .free = chunk_free },
    (nbd_completion_callback) { .callback = completion_callback,
                                .user_data = rs, .free = completion_free },
    flags);
  if (rs->cookie == -1) {
    rs->result = -1;
    rs->error = nbd_get_errno ();
    rs->message = copy_error ();
    return;
  }

  rs->hung = !drive (h, read_done, rs, &rs->poll_message, NULL);
  r = nbd_aio_command_completed (h, rs->cookie);
  rs->result = r;
  if (r == -1) {
    rs->error = nbd_get_errno ();
    rs->message = copy_error ();
  }
}

/* A failed read must leave an error message (nbd_get_error). */
static bool
has_message (const struct read_state *rs)
{
  return (rs->message && rs->message[0]) ||
    (rs->poll_message && rs->poll_message[0]);
}

static bool
read_verified (const struct read_state *rs)
{
  return rs->result == 1 && is_pattern (rs->buf, rs->count, rs->offset);
}

/* Does a second, ordinary read work on a handle that survived? */
static bool
second_read_works (struct nbd_handle *h, struct read_state *rs)
{
  do_read (h, rs, SECOND_OFFSET, SECOND_COUNT, 0);
  if (!read_verified (rs))
    printf ("# second read: result %d: %s\n", rs->result,
            rs->message ? rs->message : "wrong data");
  return read_verified (rs);
}

/* Everything the library must get right whatever the outcome: returns a
 * description of the first problem, or NULL.
 */
static const char *
hygiene (const struct read_state *rs)
{
  if (rs->alloc == NULL)
    return NULL;
  if (rs->chunk_frees != 1)
    return "chunk .free not called exactly once";
  if (rs->completion_frees != 1)
    return "completion .free not called exactly once";
  if (rs->callback_after_free)
    return "a callback ran after its .free";
  if (rs->cookie != -1 && rs->completion_calls != 1)
    return "completion callback not called exactly once";
  if (rs->cookie == -1 && (rs->completion_calls || rs->chunk_calls))
    return "callbacks called for a command that was never issued";
  if (rs->chunk_after_completion)
    return "chunk callback after the completion callback";
  if (rs->chunk_out_of_range)
    return "chunk callback saw a range outside the request";
  if (rs->chunk_bad_content)
    return "chunk callback saw wrong contents";
  if (rs->chunk_bad_status)
    return "chunk callback saw an unknown status";
  if (!is_filled (rs->alloc, GUARD, CANARY) ||
      !is_filled (rs->buf + rs->count, GUARD, CANARY))
    return "bytes outside the buffer were written";
  if (rs->result == 1 && rs->completion_error != 0)
    return "success although the completion callback saw an error";
  if (rs->result == 1 && !is_pattern (rs->buf, rs->count, rs->offset))
    return "wrong data returned as success";
  return NULL;
}

/* The errno of a failed connect.  libnbd 1.14 leaves errno 0 for the
 * protocol violations it finds in the handshake, where libnbdc says EPROTO.
 */
static bool
connect_errno_ok (const struct expectation *e, int error)
{
  return error == e->error ||
    (only_same_as_libnbd && e->error == EPROTO && error == 0);
}

/* Did the handshake leave what the server sent: its block sizes and,
 * when one was requested, the meta context it selected?
 */
static bool
handshake_learned (struct nbd_handle *h, const struct expectation *e,
                   const char *name)
{
  static const int sizes[3] = {
    LIBNBD_SIZE_MINIMUM, LIBNBD_SIZE_PREFERRED, LIBNBD_SIZE_MAXIMUM
  };
  bool ok = true;
  int i;

  for (i = 0; i < 3; i++) {
    int64_t r = nbd_get_block_size (h, sizes[i]);

    if (r != e->block_size[i]) {
      printf ("# %s: nbd_get_block_size (%d) = %" PRIi64 ", expected %"
              PRIu32 "\n", name, sizes[i], r, e->block_size[i]);
      ok = false;
    }
  }
  if (e->meta_request) {
    bool requested_selected = e->meta_selected &&
      strcmp (e->meta_selected, e->meta_request) == 0;
    int r = nbd_can_meta_context (h, e->meta_request);

    if (r != requested_selected) {
      printf ("# %s: nbd_can_meta_context (%s) = %d, expected %d\n", name,
              e->meta_request, r, requested_selected);
      ok = false;
    }
    if (e->meta_selected && !requested_selected &&
        (r = nbd_can_meta_context (h, e->meta_selected)) != 1) {
      printf ("# %s: nbd_can_meta_context (%s) = %d, expected 1\n", name,
              e->meta_selected, r);
      ok = false;
    }
  }
  return ok;
}

/* Diagnostics: what happened to the first read. */
static void
report_read (struct nbd_handle *h, const char *name,
             const struct read_state *rs)
{
  printf ("# %s: read %s%s, handle %s\n", name,
          rs->hung ? "hung" :
          rs->result == 1 ? "succeeded" :
          rs->result == -1 ? "failed: " : "never completed",
          rs->result == -1 ? strerror (rs->error) : "",
          nbd_aio_is_dead (h) ? "dead" : nbd_aio_is_closed (h) ? "closed" :
          nbd_aio_is_ready (h) ? "ready" : nbd_connection_state (h));
  if (rs->message)
    printf ("#   %s\n", rs->message);
  if (rs->poll_message)
    printf ("#   %s\n", rs->poll_message);
  if (rs->result == 1 && !read_verified (rs))
    printf ("# %s: WRONG DATA returned as success\n", name);
}

/* Did the first read end as expected?  dead: the handle is dead or
 * closed; second_ok: a second read on the surviving handle worked.
 */
static bool
outcome_met (const struct expectation *e, const struct read_state *first,
             bool dead, bool second_ok)
{
  if (first->hung)
    return false;

  switch (e->outcome) {
  case WORKS:
    return read_verified (first) && second_ok;
  case FAILS_ERRNO:
    if (first->result != -1 || first->error != e->error ||
        first->completion_error != e->error || !second_ok)
      return false;
    if (e->error_chunks == 1)
      return first->error_chunk_calls == 1 &&
        first->error_chunk_offset == ERROR_OFFSET &&
        first->error_chunk_errno == e->error;
    if (e->error_chunks == 0)
      return first->error_chunk_calls == 0;
    return true;
  case FAILS_DEAD:
    return first->result == -1 && dead && has_message (first);
  case FAILS:
    return first->result == -1 && has_message (first) &&
      (dead || second_ok);
  case NO_CONNECT:
    break;
  }
  abort ();
}

static void
free_read (struct read_state *rs)
{
  free (rs->alloc);
  free (rs->message);
  free (rs->poll_message);
}

static void
run (const char *server, const struct expectation *e)
{
  struct nbd_handle *h;
  struct read_state first = { 0 }, second = { 0 };
  char *argv[4];
  char *connect_message = NULL;
  char name[128];
  const char *problem;
  bool connected, hung, dead, learned, second_ok = false;
  int argc = 0, connect_error = 0;

  snprintf (name, sizeof name, "%s%s%s", e->scenario,
            e->trickle ? " (trickle)" : "", e->flags & DF ? " (DF)" : "");
  argv[argc++] = (char *) server;
  if (e->trickle)
    argv[argc++] = (char *) "--trickle";
  argv[argc++] = (char *) e->scenario;
  argv[argc] = NULL;

  h = nbd_create ();
  if (h == NULL) {
    fprintf (stderr, "nbd_create: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }

  if (e->meta_request && nbd_add_meta_context (h, e->meta_request) == -1) {
    fprintf (stderr, "nbd_add_meta_context: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }

  if (nbd_aio_connect_command (h, argv) == -1) {
    connect_error = nbd_get_errno ();
    connect_message = copy_error ();
    hung = false;
  }
  else
    hung = !drive (h, connect_done, NULL, &connect_message, &connect_error);
  connected = nbd_aio_is_ready (h);
  if (!connected && !connect_message)
    connect_message = strdup ("");

  if (hung) {
    printf ("# %s: connect did not finish\n", name);
    tap (false, "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
  }
  else if (!connected) {
    printf ("# %s: connect failed (errno %d, %s), handle %s: %s\n", name,
            connect_error, strerror (connect_error),
            nbd_connection_state (h), connect_message);
    /* A dead handle refuses new commands (nbd_aio_is_dead(3)). */
    do_read (h, &first, READ_OFFSET, READ_COUNT, e->flags);
    if (first.cookie != -1 || first.error != EINVAL)
      printf ("# %s: read after the failed connect: %s\n", name,
              first.cookie != -1 ? "issued" : strerror (first.error));
    tap (e->outcome == NO_CONNECT && connect_message[0] != '\0' &&
         connect_errno_ok (e, connect_error) && nbd_aio_is_dead (h) &&
         first.cookie == -1 && first.error == EINVAL,
         "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
  }
  else if (e->outcome == NO_CONNECT) {
    printf ("# %s: connected\n", name);
    tap (false, "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
  }
  else {
    learned = handshake_learned (h, e, name);
    do_read (h, &first, READ_OFFSET, READ_COUNT, e->flags);
    dead = nbd_aio_is_dead (h) || nbd_aio_is_closed (h);
    report_read (h, name, &first);
    if (!dead && nbd_aio_is_ready (h))
      second_ok = second_read_works (h, &second);
    tap (learned && outcome_met (e, &first, dead, second_ok), "%s: %s (%s)",
         name, outcome_name (e->outcome), e->rule);
  }

  nbd_close (h);

  problem = hygiene (&first);
  if (problem == NULL)
    problem = hygiene (&second);
  tap (problem == NULL, "%s: callbacks, .free and buffer bounds%s%s", name,
       problem ? ": " : "", problem ? problem : "");

  free_read (&first);
  free_read (&second);
  free (connect_message);
}

/* Every scenario the server offers must have an expectation here. */
static void
check_coverage (const char *server)
{
  char command[4096], line[1024];
  FILE *fp;
  size_t i;
  bool all = true;
  unsigned n = 0;

  snprintf (command, sizeof command, "'%s' --list", server);
  fp = popen (command, "r");
  if (fp == NULL) {
    perror ("popen");
    exit (EXIT_FAILURE);
  }
  while (fgets (line, sizeof line, fp)) {
    bool found = false;

    line[strcspn (line, "\t\n")] = '\0';
    n++;
    for (i = 0; i < NR_EXPECTATIONS; i++)
      if (strcmp (line, expectations[i].scenario) == 0)
        found = true;
    if (!found) {
      printf ("# no expectation for bad-server scenario %s\n", line);
      all = false;
    }
  }
  if (pclose (fp) != 0)
    all = false;
  tap (all && n > 0, "every bad-server scenario (%u) is tested", n);
}

int
main (int argc, char *argv[])
{
  const char *server;
  size_t i;
  int j, first = 1;

  if (argc > 1 && strcmp (argv[1], "--same-as-libnbd") == 0) {
    only_same_as_libnbd = true;
    first++;
  }
  if (argc <= first) {
    fprintf (stderr,
             "usage: %s [--same-as-libnbd] BAD-SERVER [SCENARIO...]\n",
             argv[0]);
    exit (EXIT_FAILURE);
  }
  server = argv[first++];

  if (argc == first)
    check_coverage (server);
  for (i = 0; i < NR_EXPECTATIONS; i++) {
    bool wanted = argc == first;

    for (j = first; j < argc; j++)
      if (strcmp (argv[j], expectations[i].scenario) == 0)
        wanted = true;
    if (only_same_as_libnbd && !expectations[i].same_as_libnbd)
      wanted = false;
    if (wanted)
      run (server, &expectations[i]);
  }
  printf ("1..%u\n", tests);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
