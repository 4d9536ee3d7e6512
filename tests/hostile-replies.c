/* hostile-replies: what the client library does with a misbehaving server.
 *
 * Usage: hostile-replies [--same-as-libnbd] BAD-SERVER [SCENARIO...]
 *
 * For each scenario of bad-server (see bad-server --list) it connects with
 * nbd_aio_connect_command, issues nbd_aio_pread_structured and drives the
 * handle with nbd_poll, giving up after a bounded idle time so that a hang
 * is a failure.  Each expectation names the one outcome the strict reply
 * validation of libnbdc(3) promises:
 *
 *   works        connect, read and verify the data;
 *   fails-usable the read fails with errno E (the server's error, or
 *                EPROTO for a broken rule), the handle stays usable and a
 *                second read returns the right data;
 *   dies         the handle dies: nbd_poll fails with errno E (EPROTO for
 *                a protocol violation, ECONNRESET for EOF inside a reply),
 *                the read fails with ENOTCONN, nbd_aio_is_dead is true and
 *                a new command fails with EINVAL;
 *   works-then-dies  the read completes with the right data, then the
 *                handle dies in the same nbd_poll, as in dies (errno E);
 *                the read is still retired as a success;
 *   closes       the server closed between replies: the handle is CLOSED
 *                (not dead), nbd_poll did not fail, the read fails with
 *                ENOTCONN and a new command fails with EINVAL;
 *   no-connect   the connection fails with errno E and an error message,
 *                the handle is dead and a read on it then fails at once
 *                with EINVAL;
 *   times-out    a server that stops answering: the connection fails
 *                with errno E (ETIMEDOUT; libnbd 1.14: 0, after GnuTLS's
 *                40 s handshake timeout), not before STALL_SECONDS and
 *                within STALL_LIMIT; the handle is dead.
 *
 * Rows with .tls set TLS (ALLOW or REQUIRE) with a PSK before connecting
 * (bad-server's STARTTLS scenarios: PROTOCOL.md, "STARTTLS"); a handle
 * that connects must say nbd_get_tls_negotiated 0, as bad-server never
 * speaks TLS.
 *
 * A row with .command issues nbd_aio_block_status or nbd_aio_pwrite
 * instead of the first read, with the same outcomes (a block status
 * refused before it is sent counts as fails-usable); the extent callback
 * must see exactly the extents the row lists.
 *
 * Connected handles also report the block sizes the server sent
 * (nbd_get_block_size), and the meta context it selected when the
 * expectation asks for one before connecting (nbd_can_meta_context).
 *
 * Rows with an option call (opt) connect in opt mode instead and issue
 * that nbd_aio_opt_* call; the outcome is then the option's:
 *
 *   works        it succeeds (a list: with opt_count replies), the handle
 *                negotiates again, nbd_opt_go works and a read too;
 *   fails-usable the call fails with errno E (at once, or in its
 *                completion), the handle negotiates again and nbd_opt_go
 *                then works and reads (or, with go_fails, fails the same
 *                way, the server refusing GO too);
 *   dies         the handle dies with errno E (EPROTO, ECONNRESET), the
 *                completion callback runs with ENOTCONN (as libnbd 1.14),
 *                and nbd_opt_go then fails with EINVAL.
 *
 * and, for every scenario: each callback's .free runs exactly once and no
 * callback runs after it, the completion callback runs once, the chunk
 * callback sees only ranges inside the request and correct contents, no
 * byte outside the caller's buffer is written, and wrong data is never
 * returned as success.  Two TAP lines per scenario: outcome, then hygiene.
 *
 * It tests libnbdc's strict behaviour; libnbd 1.14 is more lenient in some
 * scenarios.  Built against libnbd and run with --same-as-libnbd, it runs
 * only the expectations where libnbdc promises libnbd's behaviour: libnbd
 * is the oracle for those.  Where libnbd leaves errno 0 (libnbd_errno_0),
 * that build accepts 0 for the connect or nbd_poll errno, never for the
 * read's.
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
#include <time.h>
#include <unistd.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <libnbd.h>

#define READ_OFFSET       65536
#define READ_COUNT        16384
#define SECOND_OFFSET     131072
#define SECOND_COUNT      4096
#define EXPORT_SIZE       (1024 * 1024) /* bad-server's */
#define MANY_READS        20000  /* in flight at once: see many-in-flight */
#define MANY_MAX_COUNT    700    /* their lengths: 1 to this */
#define MANY_SOCKET_BUFFER 16384 /* SO_SNDBUF, SO_RCVBUF: sends block early */
#define MANY_SEGMENT      100    /* TCP_MAXSEG: sends are cut anywhere */
#define GUARD             64     /* canary bytes either side of a buffer */
#define CANARY            0xa5
#define POLL_TIMEOUT_MS   1000
#define MAX_IDLE_MS       20000  /* no event for so long: a hang */
#define MAX_POLLS         1000000 /* events without completion: a loop */
#define BOUNDED_POLL_MS   100    /* nbd_poll timeout of bounded_poll rows */
#define BOUNDED_POLL_LIMIT 1.0   /* seconds, times $NBDC_SLOWDOWN */
#define STALL_SECONDS     3.0    /* ... and these too */
#define STALL_LIMIT       60.0
#define TLS_USERNAME      "alice"

enum outcome { WORKS, FAILS_USABLE, DIES, WORKS_THEN_DIES, CLOSES,
               NO_CONNECT, TIMES_OUT };

/* The option call of an opt-mode row (nbd_set_opt_mode(3)). */
enum opt_call { OPT_NONE, OPT_LIST, OPT_LIST_META, OPT_INFO };

static const char *
outcome_name (enum outcome outcome)
{
  switch (outcome) {
  case WORKS: return "works";
  case FAILS_USABLE: return "fails, handle usable";
  case DIES: return "handle dies";
  case WORKS_THEN_DIES: return "read works, then the handle dies";
  case CLOSES: return "handle closed";
  case NO_CONNECT: return "connect fails";
  case TIMES_OUT: return "connect times out";
  }
  abort ();
}

/* Block status and writes: a row with .command issues that command first,
 * instead of the read (run_command).  bad-server answers block status as
 * its scenario says; these are the requests it expects.
 */
#define BS_OFFSET         65536
#define BS_COUNT          65536
#define WRITE_OFFSET      65536
#define WRITE_COUNT       4096
#define BIG_EXPORT_SIZE   (8 * 1024 * 1024) /* bad-server's SC_BIG_EXPORT */
#define MANY_EXTENTS      (1 << 20)  /* the spec's advice: at most this many
                                        descriptors in a chunk */
#define HEAP_BOUND        (1024 * 1024) /* heap growth allowed while a
                                           rejected 8 MiB chunk arrives */
#define BASE_ALLOCATION   "base:allocation"
#define DIRTY_BITMAP      "qemu:dirty-bitmap:x"

enum command_type { BLOCK_STATUS, WRITE };

/* One call of the extent callback, as it must be. */
struct extent_call {
  const char *context;
  size_t n;                     /* descriptors */
  const uint32_t *entries;      /* 2n words, (length, flags) in host byte
                                   order; NULL: n descriptors of 1 byte,
                                   descriptor i with flags i & 3 */
  int error;                    /* *error on entry */
};

struct command_expectation {
  enum command_type type;
  uint64_t offset, count;
  uint32_t flags;
  bool no_strict_bounds;        /* LIBNBD_STRICT_BOUNDS off */
  const char *extra_context;    /* nbd_add_meta_context this one too */
  bool refused;                 /* the call itself fails with the row's
                                   errno, and nothing reaches the server */
  bool heap_bounded;            /* the heap grows by less than HEAP_BOUND */
  unsigned calls;               /* the extent callback calls, in order */
  struct extent_call call[2];
};

#define BS(...)                                                         \
  .meta_request = BASE_ALLOCATION, .meta_selected = BASE_ALLOCATION,    \
  .command = &(const struct command_expectation) { BLOCK_STATUS, __VA_ARGS__ }
#define EXTENTS(...) ((const uint32_t []) { __VA_ARGS__ })
/* bad-server's correct reply to a request of BS_COUNT bytes. */
#define GOOD_EXTENTS                                                    \
  EXTENTS (4096, LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO, 8192, 0,        \
           512, LIBNBD_STATE_ZERO, BS_COUNT - 12800, LIBNBD_STATE_HOLE)
/* ... and its first extent, all of a REQ_ONE reply. */
#define FIRST_GOOD_EXTENT                                               \
  EXTENTS (4096, LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO)
#define WRITE_COMMAND                                                   \
  .command = &(const struct command_expectation) {                      \
    WRITE, WRITE_OFFSET, WRITE_COUNT }

struct expectation {
  const char *scenario;
  bool trickle;                 /* bad-server --trickle */
  uint32_t flags;               /* command flags of the first read */
  enum outcome outcome;
  int error;                    /* errno of the read (FAILS_USABLE) or of
                                   the failed nbd_poll (DIES,
                                   WORKS_THEN_DIES) */
  int error_chunks;             /* LIBNBD_READ_ERROR calls: 0, 1 (at
                                   ERROR_OFFSET) or ANY */
  const char *rule;
  bool bounded_poll;            /* every nbd_poll (h, BOUNDED_POLL_MS)
                                   returns within BOUNDED_POLL_LIMIT */
  unsigned reads;               /* if > 1: this many reads in flight at
                                   once instead of the first read */
  bool abandon;                 /* ... then at once nbd_shutdown with
                                   LIBNBD_SHUTDOWN_ABANDON_PENDING */
  bool same_as_libnbd;          /* libnbd 1.14 does exactly this ... */
  bool libnbd_errno_0;          /* ... but leaves the errno of the failed
                                   connect (NO_CONNECT) or nbd_poll (DIES,
                                   WORKS_THEN_DIES) 0 */
  uint32_t block_size[3];       /* nbd_get_block_size: MINIMUM, PREFERRED,
                                   MAXIMUM (0: none) */
  const char *meta_request;     /* nbd_add_meta_context before connecting */
  const char *meta_selected;    /* the context nbd_can_meta_context then
                                   reports (NULL: none) */
  const struct command_expectation *command; /* first command, if not a
                                                read */
  enum opt_call opt;            /* opt mode: the option call, instead of
                                   the first read */
  int opt_count;                /* exports or contexts the list call
                                   passes to its callback */
  bool go_fails;                /* opt: the server refuses GO as well */
  bool sync;                    /* opt: the blocking call (nbd_opt_*) */
  int tls;                      /* nbd_set_tls to this (ALLOW, REQUIRE)
                                   with a PSK file and user "alice";
                                   0: not called (TLS disabled) */
  const char *message;          /* opt, dies: libnbdc's error names the
                                   rule with this text */
};

#define DF LIBNBD_CMD_FLAG_DF
#define ANY (-1)

/* bad-server's error-offset-eio reports its error here. */
#define ERROR_OFFSET (READ_OFFSET + 8)

/* The rules come from the NBD protocol specification (doc/proto.md,
 * "Structured reply types" and NBD_CMD_READ).
 */
/* A row lists the first seven fields; the ones after them are named where
 * a row needs them and zero elsewhere.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
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
  { "df-without-structured", false, 0, WORKS, 0, ANY,
    "DF needs structured replies: nbd_can_df is 0 without them",
    .same_as_libnbd = true },
  { "good-no-go", false, 0, WORKS, 0, ANY,
    "GO refused: fall back to EXPORT_NAME",
    .same_as_libnbd = true },
  { "oldstyle", false, 0, WORKS, 0, ANY, "oldstyle handshake",
    .same_as_libnbd = true },
  { "none-not-alone", false, 0, WORKS, 0, ANY,
    "NONE is always acceptable as the final chunk",
    .same_as_libnbd = true },
  { "many-in-flight", false, 0, WORKS, 0, ANY,
    "20000 reads in flight, sent in part, answered out of order",
    .reads = MANY_READS },
  { "many-in-flight-simple", false, 0, WORKS, 0, ANY,
    "20000 reads in flight, simple replies packed back to back",
    .reads = MANY_READS },
  /* nbd_shutdown(3): with LIBNBD_SHUTDOWN_ABANDON_PENDING the commands
   * not yet sent fail (ENOTCONN, as libnbd fails them), the others
   * complete, then the handle is closed.
   */
  { "many-in-flight", false, 0, CLOSES, ENOTCONN, ANY,
    "nbd_shutdown (ABANDON_PENDING) fails the reads not yet sent",
    .reads = MANY_READS, .abandon = true },
  { "fragmented", false, 0, WORKS, 0, ANY,
    "data chunks leaving gaps that later chunks fill",
    .same_as_libnbd = true },
  { "fragmented-max", false, 0, WORKS, 0, ANY,
    "a read in 8192 chunks, 4096 gaps at most",
    .same_as_libnbd = true },

  /* The server closed cleanly between replies: in-flight commands fail,
   * but nothing was violated (libnbd 1.14: CLOSED, nbd_poll succeeds).
   */
  { "close-before-reply", false, 0, CLOSES, 0, ANY,
    "EOF with a command in flight fails it",
    .same_as_libnbd = true },

  /* The stream cannot be trusted any more: EOF inside a reply, a bad
   * magic, a cookie not in flight, a length nothing can hold, the wrong
   * kind of reply.  And what the spec answers with "the client MUST
   * initiate a hard disconnect": an unknown or unexpected non-error chunk
   * type, an error message length past the payload, inconsistent contents
   * (a payload length wrong for the type, a zero hole size, NONE without
   * DONE).  libnbd 1.14 kills the handle in all of these too, but its
   * nbd_poll leaves errno 0.
   */
  { "close-mid-data", false, 0, DIES, ECONNRESET, ANY,
    "EOF inside a chunk fails the command",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "close-mid-data", true, 0, DIES, ECONNRESET, ANY,
    "EOF inside a chunk fails the command",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "bad-magic", false, 0, DIES, EPROTO, ANY,
    "a reply with a wrong magic kills the handle",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "unknown-cookie", false, 0, DIES, EPROTO, ANY,
    "a reply to a cookie not in flight kills the handle",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  /* The read got its DONE chunk, and one more chunk for it is read in
   * the same nbd_poll, before the caller can retire it: the cookie is
   * known but not in flight.  libnbd 1.14 reads one reply per nbd_poll:
   * the caller retires the read first, and the chunk kills the handle at
   * the next nbd_poll, as in unknown-cookie.
   */
  { "chunk-after-done", false, 0, WORKS_THEN_DIES, EPROTO, ANY,
    "a chunk for a command already done kills the handle" },
  { "huge-length", false, 0, DIES, EPROTO, ANY,
    "a data payload longer than the request kills the handle",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "huge-length", true, 0, DIES, EPROTO, ANY,
    "a data payload longer than the request kills the handle",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "structured-when-simple", false, 0, DIES, EPROTO, ANY,
    "no structured chunk unless structured replies were negotiated",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "unknown-chunk-type", false, 0, DIES, EPROTO, ANY,
    "an unknown non-error chunk type: hard disconnect",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "block-status-for-read", false, 0, DIES, EPROTO, ANY,
    "an unexpected non-error chunk type: hard disconnect",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "data-empty", false, 0, DIES, EPROTO, ANY,
    "a data chunk payload is at least 9 bytes" },
  { "hole-bad-length", false, 0, DIES, EPROTO, ANY,
    "a hole chunk payload is exactly 12 bytes",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "hole-zero", false, 0, DIES, EPROTO, ANY,
    "a hole size must be non-zero" },
  { "none-without-done", false, 0, DIES, EPROTO, ANY,
    "a NONE chunk always has the DONE flag",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "error-bad-length", false, 0, DIES, EPROTO, ANY,
    "an error message longer than the payload: hard disconnect",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "error-long-message", false, 0, DIES, EPROTO, ANY,
    "error messages are at most 4096 bytes",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "error-message-4100", false, 0, DIES, EPROTO, ANY,
    "error messages are at most 4096 bytes, even when they fit",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "simple-data-when-structured", false, 0, DIES, EPROTO, ANY,
    "with structured replies, no simple reply to a READ",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "simple-error-when-structured", false, 0, DIES, EPROTO, ANY,
    "with structured replies, no simple reply to a READ, even an error",
    .same_as_libnbd = true, .libnbd_errno_0 = true },

  /* Command-level rule breaks, for which the spec lets the client choose
   * ("MAY initiate a hard disconnect"): the stream is intact, so the read
   * fails with EPROTO and the handle stays usable.  libnbd 1.14 is more
   * lenient (df-*: success) or harsher (chunk-outside: the handle dies).
   */
  { "chunk-outside", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a data chunk must lie inside the request" },
  { "chunk-past-end", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a data chunk must lie inside the request" },
  { "hole-outside", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a hole chunk must lie inside the request" },
  { "chunk-overlap", false, 0, FAILS_USABLE, EPROTO, ANY,
    "data chunks must not overlap" },
  { "chunk-overlap", true, 0, FAILS_USABLE, EPROTO, ANY,
    "data chunks must not overlap" },
  { "overlap-sums-to-length", false, 0, FAILS_USABLE, EPROTO, ANY,
    "success needs the whole request covered, not a byte count" },
  /* The lower chunk comes second and overlaps the first: libnbd 1.14
   * counts bytes only, and returns success with 8 bytes never written.
   */
  /* More disjoint pieces than libnbdc tracks (MAX_RANGES, 4096): libnbd
   * 1.14 counts bytes only and accepts them.
   */
  { "fragmented-overlap", false, 0, FAILS_USABLE, EPROTO, 0,
    "a chunk must not overlap one received 31 chunks earlier" },
  { "too-fragmented", false, 0, FAILS_USABLE, EPROTO, 0,
    "a read in more than 4096 disjoint pieces is refused" },
  { "chunk-overlap-right", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a data chunk must not overlap an earlier one at a higher offset" },
  { "hole-overlap-right", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a hole chunk must not overlap an earlier one at a higher offset" },
  { "data-hole-overlap", false, 0, FAILS_USABLE, EPROTO, ANY,
    "data and hole chunks must not overlap" },
  { "short-coverage", false, 0, FAILS_USABLE, EPROTO, ANY,
    "success needs the whole request covered" },
  { "df-two-data", false, DF, FAILS_USABLE, EPROTO, ANY,
    "with DF, at most one content chunk" },
  { "df-hole-and-data", false, DF, FAILS_USABLE, EPROTO, ANY,
    "with DF, at most one content chunk, even a hole and data" },
  { "df-two-holes", false, DF, FAILS_USABLE, EPROTO, ANY,
    "with DF, at most one content chunk, even two holes" },
  { "error-offset-outside", false, 0, FAILS_USABLE, EPROTO, ANY,
    "an ERROR_OFFSET offset must lie inside the request" },

  /* Errors: the read fails with the server's errno and the handle stays
   * usable.  LIBNBD_READ_ERROR reaches the chunk callback only for an
   * error with an offset (nbd_pread_structured(3)).  An error value of 0
   * breaks the spec but not the stream: EINVAL, as in libnbd 1.14.
   */
  { "error-eio", false, 0, FAILS_USABLE, EIO, 0,
    "an error chunk fails the command with its errno",
    .same_as_libnbd = true },
  { "error-eio", true, 0, FAILS_USABLE, EIO, 0,
    "an error chunk fails the command with its errno",
    .same_as_libnbd = true },
  { "error-eperm", false, 0, FAILS_USABLE, EPERM, 0,
    "the spec's error values map to errno",
    .same_as_libnbd = true },
  { "error-enomem", false, 0, FAILS_USABLE, ENOMEM, 0,
    "the spec's error values map to errno",
    .same_as_libnbd = true },
  { "error-einval", false, 0, FAILS_USABLE, EINVAL, 0,
    "the spec's error values map to errno",
    .same_as_libnbd = true },
  { "error-enospc", false, 0, FAILS_USABLE, ENOSPC, 0,
    "the spec's error values map to errno",
    .same_as_libnbd = true },
  { "error-eoverflow", false, 0, FAILS_USABLE, EOVERFLOW, 0,
    "the spec's error values map to errno",
    .same_as_libnbd = true },
  { "error-enotsup", false, 0, FAILS_USABLE, ENOTSUP, 0,
    "the spec's error values map to errno",
    .same_as_libnbd = true },
  { "error-eshutdown", false, 0, FAILS_USABLE, ESHUTDOWN, 0,
    "the spec's error values map to errno",
    .same_as_libnbd = true },
  { "error-undefined", false, 0, FAILS_USABLE, EINVAL, 0,
    "an error value the spec does not define is EINVAL",
    .same_as_libnbd = true },
  { "unknown-error-type", false, 0, FAILS_USABLE, EPERM, 0,
    "an unknown error chunk type is treated as its error",
    .same_as_libnbd = true },
  { "unknown-error-type", true, 0, FAILS_USABLE, EPERM, 0,
    "an unknown error chunk type is treated as its error",
    .same_as_libnbd = true },
  { "error-offset-eio", false, 0, FAILS_USABLE, EIO, 1,
    "an ERROR_OFFSET chunk reaches the chunk callback as READ_ERROR",
    .same_as_libnbd = true },
  { "error-zero", false, 0, FAILS_USABLE, EINVAL, 0,
    "an error chunk's error must be non-zero: EINVAL",
    .same_as_libnbd = true },
  { "error-stream", false, 0, FAILS_USABLE, EIO, 0,
    "a server streaming chunks cannot hold nbd_poll past its timeout",
    .bounded_poll = true },

  /* Block status (NBD spec, NBD_CMD_BLOCK_STATUS and BLOCK_STATUS chunks;
   * ../../shared/PROTOCOL.md section 4).  The extent callback must see
   * exactly what the server sent, in host byte order, and only extents of
   * non-zero length that start inside the request and lie inside the
   * export (libnbdc cuts one crossing the export end).  libnbd 1.14 checks
   * no extent and ignores chunks for unknown context ids: it differs in
   * the rows not marked same-as-libnbd.
   */
  { "bs-good", false, 0, WORKS, 0, ANY,
    "block status extents reach the callback exactly",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, .calls = 1,
        .call = { { BASE_ALLOCATION, 4, GOOD_EXTENTS } }) },
  { "bs-good", true, 0, WORKS, 0, ANY,
    "block status extents reach the callback exactly",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, .calls = 1,
        .call = { { BASE_ALLOCATION, 4, GOOD_EXTENTS } }) },
  { "bs-good", false, 0, WORKS, 0, ANY,
    "REQ_ONE: one extent",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, LIBNBD_CMD_FLAG_REQ_ONE, .calls = 1,
        .call = { { BASE_ALLOCATION, 1,
                    FIRST_GOOD_EXTENT } }) },
  { "bs-good", false, 0, WORKS, 0, ANY,
    "two contexts: one callback each, with its name",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, .extra_context = DIRTY_BITMAP, .calls = 2,
        .call = { { BASE_ALLOCATION, 4, GOOD_EXTENTS },
                  { DIRTY_BITMAP, 2,
                    EXTENTS (BS_COUNT / 2, 1, BS_COUNT / 2, 0) } }) },
  { "bs-last-past-request", false, 0, WORKS, 0, ANY,
    "the last extent may run past the request end",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, .calls = 1,
        .call = { { BASE_ALLOCATION, 2,
                    EXTENTS (4096, 0, BS_COUNT, LIBNBD_STATE_HOLE) } }) },
  { "bs-short", false, 0, WORKS, 0, ANY,
    "extents may stop short of the request end",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, .calls = 1,
        .call = { { BASE_ALLOCATION, 1,
                    FIRST_GOOD_EXTENT } }) },
  { "bs-max-extents", false, 0, WORKS, 0, ANY,
    "a chunk of 2^20 descriptors is taken whole",
    .same_as_libnbd = true,
    BS (0, 4 * 1024 * 1024, .calls = 1,
        .call = { { BASE_ALLOCATION, MANY_EXTENTS, NULL } }) },
  { "bs-cut-at-end", false, 0, WORKS, 0, ANY,
    "an extent crossing the export end is cut there",
    BS (EXPORT_SIZE - 8192, 8192, .calls = 1,
        .call = { { BASE_ALLOCATION, 2,
                    EXTENTS (4096, 0, 4096, LIBNBD_STATE_HOLE) } }) },
  /* The server selected no context: refused before sending (bad-server
   * would close), ENOTSUP as in libnbd.
   */
  { "bs-no-context", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "no block status without a negotiated context",
    .same_as_libnbd = true,
    .meta_request = BASE_ALLOCATION,
    .command = &(const struct command_expectation) {
      BLOCK_STATUS, BS_OFFSET, BS_COUNT, .refused = true } },
  { "bs-zero-length", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a block status descriptor has a non-zero length",
    BS (BS_OFFSET, BS_COUNT) },
  { "bs-past-export-end", false, 0, FAILS_USABLE, EPROTO, ANY,
    "no extent starts at or past the export end",
    BS (EXPORT_SIZE - 4096, 8192, .no_strict_bounds = true) },
  { "bs-past-request", false, 0, FAILS_USABLE, EPROTO, ANY,
    "only the last extent may reach the request end",
    BS (BS_OFFSET, BS_COUNT) },
  { "bs-unknown-context", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a BLOCK_STATUS chunk names a selected context",
    BS (BS_OFFSET, BS_COUNT) },
  { "bs-req-one-two", false, 0, FAILS_USABLE, EPROTO, ANY,
    "REQ_ONE: one descriptor",
    BS (BS_OFFSET, BS_COUNT, LIBNBD_CMD_FLAG_REQ_ONE) },
  { "bs-req-one-long", false, 0, FAILS_USABLE, EPROTO, ANY,
    "REQ_ONE: no longer than the request",
    BS (BS_OFFSET, BS_COUNT, LIBNBD_CMD_FLAG_REQ_ONE) },
  { "bs-too-many-extents", false, 0, FAILS_USABLE, EPROTO, ANY,
    "over 2^20 descriptors: refused, never held in memory",
    BS (0, 4 * 1024 * 1024, .heap_bounded = true) },
  /* The stream stays in step: the correct chunk after the bad one reaches
   * the callback, which sees the error.
   */
  { "bs-no-descriptors", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a BLOCK_STATUS payload holds at least one descriptor",
    BS (BS_OFFSET, BS_COUNT, .calls = 1,
        .call = { { BASE_ALLOCATION, 4, GOOD_EXTENTS, EPROTO } }) },
  { "bs-bad-length", false, 0, FAILS_USABLE, EPROTO, ANY,
    "a BLOCK_STATUS payload is 4 + 8n bytes",
    BS (BS_OFFSET, BS_COUNT) },
  { "bs-simple-reply", false, 0, FAILS_USABLE, EPROTO, ANY,
    "block status succeeds only with BLOCK_STATUS chunks",
    BS (BS_OFFSET, BS_COUNT) },
  { "bs-simple-error", false, 0, FAILS_USABLE, EIO, ANY,
    "a simple error reply to block status fails it with its errno",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT) },
  { "bs-error-chunk", false, 0, FAILS_USABLE, EIO, ANY,
    "an error chunk fails block status with its errno",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT) },
  { "bs-extents-then-error", false, 0, FAILS_USABLE, EIO, ANY,
    "extents, then an error chunk: the command fails",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, .calls = 1,
        .call = { { BASE_ALLOCATION, 1, EXTENTS (BS_COUNT, 0) } }) },
  /* The spec asks for one chunk per context; nbd_block_status(3) says the
   * callback may be called more often or not at all, and libnbd 1.14
   * passes either on: so does libnbdc (the caller, e.g. nbd-proxy, copes).
   */
  { "bs-none-only", false, 0, WORKS, 0, ANY,
    "success without a BLOCK_STATUS chunk: no callback",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, .calls = 0) },
  { "bs-two-chunks", false, 0, WORKS, 0, ANY,
    "two chunks for one context: the callback sees both",
    .same_as_libnbd = true,
    BS (BS_OFFSET, BS_COUNT, .calls = 2,
        .call = { { BASE_ALLOCATION, 1, EXTENTS (BS_COUNT, 0) },
                  { BASE_ALLOCATION, 1,
                    EXTENTS (BS_COUNT,
                             LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO) } }) },
  { "bs-data-chunk", false, 0, DIES, EPROTO, ANY,
    "a data chunk in reply to block status: hard disconnect",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    BS (BS_OFFSET, BS_COUNT) },
  { "bs-chunk-for-read", false, 0, DIES, EPROTO, ANY,
    "a BLOCK_STATUS chunk in reply to a read: hard disconnect",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .meta_request = BASE_ALLOCATION, .meta_selected = BASE_ALLOCATION },

  /* Writes (NBD spec, "Structured reply types": a write takes NONE or
   * error chunks, or a simple reply).
   */
  { "write-good", false, 0, WORKS, 0, ANY,
    "a write answered with NONE",
    .same_as_libnbd = true, WRITE_COMMAND },
  { "write-simple-reply", false, 0, WORKS, 0, ANY,
    "a simple reply to a write is allowed with structured replies",
    .same_as_libnbd = true, WRITE_COMMAND },
  { "write-error-chunk", false, 0, FAILS_USABLE, EIO, ANY,
    "an error chunk fails a write with its errno",
    .same_as_libnbd = true, WRITE_COMMAND },
  { "write-data-chunk", false, 0, DIES, EPROTO, ANY,
    "a data chunk in reply to a write: hard disconnect",
    .same_as_libnbd = true, .libnbd_errno_0 = true, WRITE_COMMAND },

  /* EOF during the handshake: ECONNRESET (libnbd 1.14: errno 0). */
  { "close-in-greeting", false, 0, NO_CONNECT, ECONNRESET, ANY,
    "EOF in the greeting fails the connection",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "close-in-option-reply", false, 0, NO_CONNECT, ECONNRESET, ANY,
    "EOF inside an option reply fails the connection",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "close-after-export-name", false, 0, NO_CONNECT, ECONNRESET, ANY,
    "a server closes on EXPORT_NAME of an unknown export",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "close-in-handshake", false, 0, NO_CONNECT, ECONNRESET, ANY,
    "EOF in the handshake fails the connection",
    .same_as_libnbd = true, .libnbd_errno_0 = true },

  /* Handshake violations: EPROTO (libnbd 1.14: errno 0). */
  { "oversized-option-reply", false, 0, NO_CONNECT, EPROTO, ANY,
    "never read an option reply payload the server claims is huge",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "bad-option-magic", false, 0, NO_CONNECT, EPROTO, ANY,
    "an option reply with a wrong magic drops the connection",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "wrong-option-echoed", false, 0, NO_CONNECT, EPROTO, ANY,
    "an option reply for another option drops the connection",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "info-name-too-long", false, 0, NO_CONNECT, EPROTO, ANY,
    "handshake strings are at most 4096 bytes",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "info-name-too-long", true, 0, NO_CONNECT, EPROTO, ANY,
    "handshake strings are at most 4096 bytes",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "missing-info-export", false, 0, NO_CONNECT, EPROTO, ANY,
    "GO must send NBD_INFO_EXPORT before its ACK" },
  { "bad-greeting-magic", false, 0, NO_CONNECT, EPROTO, ANY,
    "a greeting starts with NBDMAGIC",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "unknown-version-magic", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBDMAGIC is followed by IHAVEOPT or the oldstyle magic",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "structured-reply-server", false, 0, NO_CONNECT, EPROTO, ANY,
    "STRUCTURED_REPLY takes ACK or an error, not SERVER",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "structured-reply-ack-data", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_REP_ACK has no payload",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "go-ack-data", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_REP_ACK has no payload",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "info-export-short", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_INFO_EXPORT is 12 bytes long",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "info-export-long", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_INFO_EXPORT is 12 bytes long",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "info-block-size-short", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_INFO_BLOCK_SIZE is 14 bytes long",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "info-empty", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_REP_INFO holds at least an info type",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "info-one-byte", false, 0, NO_CONNECT, EPROTO, ANY,
    "NBD_REP_INFO holds at least an info type",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "meta-context-short", false, 0, NO_CONNECT, EPROTO, ANY,
    "a META_CONTEXT reply holds an id and a name",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .meta_request = "base:allocation" },
  /* libnbd 1.14 accepts a size above INT64_MAX; libnbdc does not. */
  { "huge-size", false, 0, NO_CONNECT, EPROTO, ANY,
    "an export size above INT64_MAX is refused" },
  { "huge-size-no-go", false, 0, NO_CONNECT, EPROTO, ANY,
    "an export size above INT64_MAX is refused" },
  { "huge-size-oldstyle", false, 0, NO_CONNECT, EPROTO, ANY,
    "an export size above INT64_MAX is refused" },

  /* Handshakes a client must accept. */
  { "plain-newstyle", false, 0, WORKS, 0, ANY,
    "without FIXED_NEWSTYLE, only EXPORT_NAME",
    .same_as_libnbd = true },
  { "no-zeroes-not-offered", false, 0, WORKS, 0, ANY,
    "without NO_ZEROES, 124 zeroes follow the EXPORT_NAME reply",
    .same_as_libnbd = true },
  { "info-unknown-type", false, 0, WORKS, 0, ANY,
    "an unknown info type is ignored",
    .same_as_libnbd = true },

  /* GO refused with an error other than ERR_UNSUP: no connection, the
   * errno from the error (ERR_INVALID and unknown errors: EINVAL).
   * libnbd 1.14 leaves errno 0 for ERR_POLICY, ERR_PLATFORM and unknown
   * errors.
   */
  { "go-err-policy", false, 0, NO_CONNECT, EPERM, ANY,
    "GO refused with ERR_POLICY: EPERM",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "go-err-policy-message", false, 0, NO_CONNECT, EPERM, ANY,
    "GO refused with ERR_POLICY: EPERM",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "go-err-invalid", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused with ERR_INVALID: EINVAL",
    .same_as_libnbd = true },
  { "go-err-invalid-message", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused with ERR_INVALID: EINVAL",
    .same_as_libnbd = true },
  { "go-err-platform", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "GO refused with ERR_PLATFORM: ENOTSUP",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "go-err-platform-message", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "GO refused with ERR_PLATFORM: ENOTSUP",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "go-err-tls-reqd", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "GO refused with ERR_TLS_REQD: ENOTSUP",
    .same_as_libnbd = true },
  { "go-err-tls-reqd-message", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "GO refused with ERR_TLS_REQD: ENOTSUP",
    .same_as_libnbd = true },
  { "go-err-unknown", false, 0, NO_CONNECT, ENOENT, ANY,
    "GO refused with ERR_UNKNOWN: ENOENT",
    .same_as_libnbd = true },
  { "go-err-unknown-message", false, 0, NO_CONNECT, ENOENT, ANY,
    "GO refused with ERR_UNKNOWN: ENOENT",
    .same_as_libnbd = true },
  { "go-err-shutdown", false, 0, NO_CONNECT, ESHUTDOWN, ANY,
    "GO refused with ERR_SHUTDOWN: ESHUTDOWN",
    .same_as_libnbd = true },
  { "go-err-shutdown-message", false, 0, NO_CONNECT, ESHUTDOWN, ANY,
    "GO refused with ERR_SHUTDOWN: ESHUTDOWN",
    .same_as_libnbd = true },
  { "go-err-block-size-reqd", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused with ERR_BLOCK_SIZE_REQD: EINVAL",
    .same_as_libnbd = true },
  { "go-err-block-size-reqd-message", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused with ERR_BLOCK_SIZE_REQD: EINVAL",
    .same_as_libnbd = true },
  { "go-err-too-big", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused with ERR_TOO_BIG: EINVAL",
    .same_as_libnbd = true },
  { "go-err-too-big-message", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused with ERR_TOO_BIG: EINVAL",
    .same_as_libnbd = true },
  { "go-err-0x63", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused with an unknown error: EINVAL",
    .same_as_libnbd = true, .libnbd_errno_0 = true },
  { "go-err-0x63-message", false, 0, NO_CONNECT, EINVAL, ANY,
    "GO refused with an unknown error: EINVAL",
    .same_as_libnbd = true, .libnbd_errno_0 = true },

  /* NBD_INFO_BLOCK_SIZE: invalid sizes are ignored (getters 0), as
   * libnbd 1.14 ignores them.
   */
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
  { "block-maximum-not-multiple", false, 0, WORKS, 0, ANY,
    "a maximum not a multiple of the minimum is ignored, as libnbd does",
    .same_as_libnbd = true },
  { "block-unlimited", false, 0, WORKS, 0, ANY,
    "valid block sizes are reported",
    .same_as_libnbd = true,
    .block_size = { 1, 4096, UINT32_C (0xffffffff) } },
  { "block-1m", false, 0, WORKS, 0, ANY,
    "valid block sizes are reported",
    .same_as_libnbd = true,
    .block_size = { 512, 4096, 1 << 20 } },

  /* SET_META_CONTEXT. */
  { "meta-context", false, 0, WORKS, 0, ANY,
    "the context the server selects is reported",
    .same_as_libnbd = true, .meta_request = "base:allocation",
    .meta_selected = "base:allocation" },
  { "meta-context-other-name", false, 0, WORKS, 0, ANY,
    "a selected context named differently from its query is kept",
    .same_as_libnbd = true, .meta_request = "base:allocation",
    .meta_selected = "base:allocation:extra" },
  { "meta-context-error", false, 0, WORKS, 0, ANY,
    "SET_META_CONTEXT refused: no context",
    .same_as_libnbd = true, .meta_request = "base:allocation" },

  /* Option mode (nbd_set_opt_mode(3)): what the nbd_aio_opt_* calls do
   * with each reply.  libnbd 1.14 fails a refused LIST or
   * LIST_META_CONTEXT with ENOTSUP whatever the error, and a refused INFO
   * with the errno of the GO table, ENOTSUP where that is 0.
   */
  { "good", false, 0, WORKS, 0, ANY,
    "nbd_opt_list: every export reaches the list callback",
    .same_as_libnbd = true, .opt = OPT_LIST, .opt_count = 2 },
  { "good", true, 0, WORKS, 0, ANY,
    "nbd_opt_list: every export reaches the list callback",
    .same_as_libnbd = true, .opt = OPT_LIST, .opt_count = 2 },
  { "good", false, 0, WORKS, 0, ANY,
    "nbd_opt_list_meta_context: every context reaches the callback",
    .same_as_libnbd = true, .opt = OPT_LIST_META, .opt_count = 1 },
  { "good", true, 0, WORKS, 0, ANY,
    "nbd_opt_list_meta_context: every context reaches the callback",
    .same_as_libnbd = true, .opt = OPT_LIST_META, .opt_count = 1 },
  { "good", false, 0, WORKS, 0, ANY,
    "nbd_opt_info, then nbd_opt_go",
    .same_as_libnbd = true, .opt = OPT_INFO },
  { "good", true, 0, WORKS, 0, ANY,
    "nbd_opt_info, then nbd_opt_go",
    .same_as_libnbd = true, .opt = OPT_INFO },
  { "good", false, 0, WORKS, 0, ANY,
    "nbd_opt_list returns the number of exports",
    .same_as_libnbd = true, .opt = OPT_LIST, .opt_count = 2, .sync = true },
  { "good", false, 0, WORKS, 0, ANY,
    "nbd_opt_list_meta_context returns the number of contexts",
    .same_as_libnbd = true, .opt = OPT_LIST_META, .opt_count = 1,
    .sync = true },
  { "list-error-after-one", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "nbd_opt_list fails after partial results: ENOTSUP",
    .same_as_libnbd = true, .opt = OPT_LIST, .opt_count = 1, .sync = true },
  { "go-err-unknown", false, 0, FAILS_USABLE, ENOENT, ANY,
    "nbd_opt_info refused with ERR_UNKNOWN: ENOENT",
    .same_as_libnbd = true, .opt = OPT_INFO, .go_fails = true,
    .sync = true },
  /* A blocking call on a handle that dies fails with the reason. */
  { "list-info-reply", false, 0, DIES, EPROTO, ANY,
    "nbd_opt_list: LIST takes NBD_REP_SERVER, ACK or an error",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST,
    .sync = true, .message = "unexpected reply type 3 to NBD_OPT_LIST" },
  { "meta-list-short", false, 0, DIES, EPROTO, ANY,
    "nbd_opt_list_meta_context: a META_CONTEXT reply holds an id",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST_META,
    .sync = true, .message = "of 3 bytes to NBD_OPT_LIST_META_CONTEXT" },
  { "list-many", false, 0, WORKS, 0, ANY,
    "a list of 10000 exports, each to the callback",
    .same_as_libnbd = true, .opt = OPT_LIST, .opt_count = 10000 },
  { "list-error-after-one", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "LIST may fail after partial results: ENOTSUP",
    .same_as_libnbd = true, .opt = OPT_LIST, .opt_count = 1 },
  { "meta-list-error", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "a refused LIST_META_CONTEXT: ENOTSUP",
    .same_as_libnbd = true, .opt = OPT_LIST_META },
  { "good-no-go", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "INFO refused with ERR_UNSUP: ENOTSUP; GO then uses EXPORT_NAME",
    .same_as_libnbd = true, .opt = OPT_INFO },
  { "go-err-unknown", false, 0, FAILS_USABLE, ENOENT, ANY,
    "INFO refused with ERR_UNKNOWN: ENOENT, still negotiating",
    .same_as_libnbd = true, .opt = OPT_INFO, .go_fails = true },
  { "go-err-invalid-message", false, 0, FAILS_USABLE, EINVAL, ANY,
    "INFO refused with ERR_INVALID: EINVAL, still negotiating",
    .same_as_libnbd = true, .opt = OPT_INFO, .go_fails = true },
  { "go-err-policy", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "INFO refused with ERR_POLICY: ENOTSUP in opt mode",
    .same_as_libnbd = true, .opt = OPT_INFO, .go_fails = true },
  { "go-err-0x63", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "INFO refused with an unknown error: ENOTSUP in opt mode",
    .same_as_libnbd = true, .opt = OPT_INFO, .go_fails = true },
  { "plain-newstyle", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "LIST needs fixed newstyle; GO then uses EXPORT_NAME",
    .same_as_libnbd = true, .opt = OPT_LIST },
  { "good-simple", false, 0, FAILS_USABLE, ENOTSUP, ANY,
    "LIST_META_CONTEXT needs structured replies",
    .same_as_libnbd = true, .opt = OPT_LIST_META },
  { "list-name-beyond-payload", false, 0, DIES, EPROTO, ANY,
    "an NBD_REP_SERVER name ends inside its payload",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST,
    .message = "name of 100 bytes in a payload of 8" },
  /* libnbd 1.14.2 reads past the payload here and crashes. */
  { "list-short", false, 0, DIES, EPROTO, ANY,
    "an NBD_REP_SERVER holds at least a name length",
    .opt = OPT_LIST, .message = "no room for the name length" },
  { "list-short", true, 0, DIES, EPROTO, ANY,
    "an NBD_REP_SERVER holds at least a name length",
    .opt = OPT_LIST, .message = "no room for the name length" },
  { "list-name-too-long", false, 0, DIES, EPROTO, ANY,
    "handshake strings are at most 4096 bytes",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST },
  { "list-oversized", false, 0, DIES, EPROTO, ANY,
    "never read an option reply payload the server claims is huge",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST },
  { "list-info-reply", false, 0, DIES, EPROTO, ANY,
    "LIST takes NBD_REP_SERVER, ACK or an error",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST },
  { "list-unknown-reply", false, 0, DIES, EPROTO, ANY,
    "an unknown non-error reply type drops the connection",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST },
  { "list-close", false, 0, DIES, ECONNRESET, ANY,
    "EOF during LIST fails the option",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST },
  { "meta-list-short", false, 0, DIES, EPROTO, ANY,
    "a META_CONTEXT reply holds an id and a name",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST_META },
  { "meta-list-short", true, 0, DIES, EPROTO, ANY,
    "a META_CONTEXT reply holds an id and a name",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST_META },
  { "meta-list-name-too-long", false, 0, DIES, EPROTO, ANY,
    "handshake strings are at most 4096 bytes",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST_META },
  { "meta-list-server-reply", false, 0, DIES, EPROTO, ANY,
    "LIST_META_CONTEXT takes META_CONTEXT, ACK or an error",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_LIST_META },
  { "info-name-too-long", false, 0, DIES, EPROTO, ANY,
    "handshake strings are at most 4096 bytes (INFO)",
    .same_as_libnbd = true, .libnbd_errno_0 = true, .opt = OPT_INFO },
  /* libnbd 1.14 accepts this INFO (and reports size 0). */
  { "missing-info-export", false, 0, DIES, EPROTO, ANY,
    "INFO must send NBD_INFO_EXPORT before its ACK",
    .opt = OPT_INFO },
  /* STARTTLS (PROTOCOL.md, "STARTTLS"; the NBD spec, "TLS support").
   * Under REQUIRE an error reply, a server that cannot take options
   * (no FIXED_NEWSTYLE, oldstyle) or a failed TLS handshake is fatal:
   * never fall back to plaintext.  Under ALLOW an error reply means
   * plaintext; after an ACK there is no way back.  Bytes the server sends
   * after its ACK and before TLS must not be taken as the server's (a
   * plaintext injection): they break the handshake.  libnbd 1.14 leaves
   * errno 0 for GnuTLS errors.
   */
  { "starttls-err-unsup", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "REQUIRE: STARTTLS refused (ERR_UNSUP), no plaintext fallback",
    .same_as_libnbd = true, .tls = LIBNBD_TLS_REQUIRE },
  { "starttls-err-policy", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "REQUIRE: STARTTLS refused (ERR_POLICY), no plaintext fallback",
    .same_as_libnbd = true, .tls = LIBNBD_TLS_REQUIRE },
  { "starttls-err-unsup", false, 0, WORKS, 0, ANY,
    "ALLOW: STARTTLS refused (ERR_UNSUP), go on in plaintext",
    .same_as_libnbd = true, .tls = LIBNBD_TLS_ALLOW },
  { "starttls-err-policy", false, 0, WORKS, 0, ANY,
    "ALLOW: STARTTLS refused (ERR_POLICY), go on in plaintext",
    .same_as_libnbd = true, .tls = LIBNBD_TLS_ALLOW },
  { "starttls-err-unsup", true, 0, WORKS, 0, ANY,
    "ALLOW: STARTTLS refused (ERR_UNSUP), go on in plaintext",
    .same_as_libnbd = true, .tls = LIBNBD_TLS_ALLOW },
  { "starttls-inject", false, 0, NO_CONNECT, EPROTO, ANY,
    "plaintext after the STARTTLS ACK breaks TLS; no plaintext GO follows",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .tls = LIBNBD_TLS_REQUIRE },
  { "starttls-inject", false, 0, NO_CONNECT, EPROTO, ANY,
    "ALLOW: no plaintext fallback after the STARTTLS ACK",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .tls = LIBNBD_TLS_ALLOW },
  { "starttls-close-in-tls", false, 0, NO_CONNECT, ECONNRESET, ANY,
    "EOF in the TLS handshake fails the connection",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .tls = LIBNBD_TLS_REQUIRE },
  { "starttls-close-in-tls", false, 0, NO_CONNECT, ECONNRESET, ANY,
    "ALLOW: EOF in the TLS handshake, no plaintext fallback",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .tls = LIBNBD_TLS_ALLOW },
  /* libnbd 1.14 blocks inside one nbd_poll for GnuTLS's 40 s handshake
   * timeout, then fails (errno 0).
   */
  { "starttls-hang-in-tls", false, 0, TIMES_OUT, ETIMEDOUT, ANY,
    "a server silent in the TLS handshake: not waited for forever",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .tls = LIBNBD_TLS_REQUIRE },
  { "starttls-garbage", false, 0, NO_CONNECT, EPROTO, ANY,
    "a ServerHello of garbage fails the handshake",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .tls = LIBNBD_TLS_REQUIRE },
  { "starttls-garbage", false, 0, NO_CONNECT, EPROTO, ANY,
    "ALLOW: a ServerHello of garbage, no plaintext fallback",
    .same_as_libnbd = true, .libnbd_errno_0 = true,
    .tls = LIBNBD_TLS_ALLOW },
  { "plain-newstyle", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "REQUIRE: a server without FIXED_NEWSTYLE cannot do STARTTLS",
    .same_as_libnbd = true, .tls = LIBNBD_TLS_REQUIRE },
  { "plain-newstyle", false, 0, WORKS, 0, ANY,
    "ALLOW: a server without FIXED_NEWSTYLE: plaintext",
    .same_as_libnbd = true, .tls = LIBNBD_TLS_ALLOW },
  { "oldstyle", false, 0, NO_CONNECT, ENOTSUP, ANY,
    "REQUIRE: an oldstyle server cannot do STARTTLS",
    .same_as_libnbd = true, .tls = LIBNBD_TLS_REQUIRE },

  /* libnbd 1.14 keeps every context; libnbdc at most 256. */
  { "meta-context-too-many", false, 0, NO_CONNECT, EPROTO, ANY,
    "at most 256 meta contexts are kept",
    .meta_request = "base:allocation" },
};
#pragma GCC diagnostic pop

#define NR_EXPECTATIONS (sizeof expectations / sizeof expectations[0])

/* What nbd_poll said while the handle was driven. */
struct poll_log {
  char *message;                /* error of a failed nbd_poll, or NULL */
  int error;                    /* its errno */
  double slowest;               /* seconds the longest nbd_poll took */
};

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
  struct poll_log poll;
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

/* The TLS calls the .tls rows need. */
#if defined (LIBNBD_HAVE_NBD_SET_TLS) &&                \
  defined (LIBNBD_HAVE_NBD_SET_TLS_PSK_FILE) &&         \
  defined (LIBNBD_HAVE_NBD_SET_TLS_USERNAME) &&         \
  defined (LIBNBD_HAVE_NBD_GET_TLS_NEGOTIATED)
#define HAVE_TLS_API 1
#endif

static char psk_file[] = "/tmp/hostile-replies-psk-XXXXXX";

static unsigned tests;
static unsigned failures;
static unsigned slowdown = 1;   /* $NBDC_SLOWDOWN: 10 under valgrind */
static bool only_same_as_libnbd; /* --same-as-libnbd */

/* Built against libnbd 1.14 rather than libnbdc. */
#ifdef LIBNBDC
#define AGAINST_LIBNBD false
#else
#define AGAINST_LIBNBD true
#endif

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

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Drive the handle with nbd_poll (h, timeout_ms) until done() or it dies,
 * fails or hangs.  Returns false on a hang, with the error of a failed
 * nbd_poll and the longest time one took in *log.
 */
static bool
drive (struct nbd_handle *h, bool (*done) (struct nbd_handle *, void *),
       void *arg, int timeout_ms, struct poll_log *log)
{
  unsigned idle = 0, polls = 0;

  while (!done (h, arg)) {
    double start;
    int r;

    if (nbd_aio_is_dead (h) || nbd_aio_is_closed (h))
      return true;
    if (++polls > MAX_POLLS)
      return false;
    start = now ();
    r = nbd_poll (h, timeout_ms);
    if (now () - start > log->slowest)
      log->slowest = now () - start;
    if (r == -1) {
      if (log->message == NULL) {
        log->message = copy_error ();
        log->error = nbd_get_errno ();
      }
      return true;
    }
    if (r == 0 && ++idle >= (unsigned) (MAX_IDLE_MS / timeout_ms))
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

/* Start the server command on one end of a TCP loopback connection with
 * small socket buffers and segments and connect h to the other: requests
 * then fill the socket early and a sendmsg goes out in part, cut anywhere
 * (a Unix socket takes each small sendmsg whole or not at all, and so does
 * TCP mostly, unless its segments are short).  Returns the server's pid,
 * or -1.
 */
static pid_t
connect_tcp (struct nbd_handle *h, char **argv)
{
  struct sockaddr_in addr = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof addr;
  int size = MANY_SOCKET_BUFFER, segment = MANY_SEGMENT;
  int listener, client = -1, server = -1;
  pid_t pid = -1;

  listener = socket (AF_INET, SOCK_STREAM, 0);
  if (listener == -1 ||
      setsockopt (listener, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) ||
      bind (listener, (struct sockaddr *) &addr, sizeof addr) == -1 ||
      listen (listener, 1) == -1 ||
      getsockname (listener, (struct sockaddr *) &addr, &len) == -1 ||
      (client = socket (AF_INET, SOCK_STREAM, 0)) == -1 ||
      setsockopt (client, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) ||
      setsockopt (client, IPPROTO_TCP, TCP_MAXSEG, &segment,
                  sizeof segment) ||
      connect (client, (struct sockaddr *) &addr, sizeof addr) == -1 ||
      (server = accept (listener, NULL, NULL)) == -1 ||
      (pid = fork ()) == -1) {
    perror ("connect_tcp");
    exit (EXIT_FAILURE);
  }
  if (pid == 0) {
    dup2 (server, STDIN_FILENO);
    dup2 (server, STDOUT_FILENO);
    close (server);
    close (client);
    close (listener);
    execv (argv[0], argv);
    _exit (127);
  }
  close (server);
  close (listener);
  if (nbd_aio_connect_socket (h, client) == -1)
    return -1;
  return pid;
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
issue_read (struct nbd_handle *h, struct read_state *rs, uint64_t offset,
            size_t count, uint32_t flags)
{
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
  }
}

/* Retire a read that completed (or find that it did not). */
static void
retire_read (struct nbd_handle *h, struct read_state *rs)
{
  int r;

  r = nbd_aio_command_completed (h, rs->cookie);
  rs->result = r;
  if (r == -1) {
    rs->error = nbd_get_errno ();
    rs->message = copy_error ();
  }
}

static void
do_read (struct nbd_handle *h, struct read_state *rs, uint64_t offset,
         size_t count, uint32_t flags, int timeout_ms)
{
  issue_read (h, rs, offset, count, flags);
  if (rs->cookie == -1)
    return;
  rs->hung = !drive (h, read_done, rs, timeout_ms, &rs->poll);
  retire_read (h, rs);
}

/* A failed read must leave an error message (nbd_get_error). */
static bool
has_message (const struct read_state *rs)
{
  return (rs->message && rs->message[0]) ||
    (rs->poll.message && rs->poll.message[0]);
}

static bool
read_verified (const struct read_state *rs)
{
  return rs->result == 1 && is_pattern (rs->buf, rs->count, rs->offset);
}

/* A second, ordinary read on a handle that survived. */
static void
second_read (struct nbd_handle *h, struct read_state *rs)
{
  do_read (h, rs, SECOND_OFFSET, SECOND_COUNT, 0,
               POLL_TIMEOUT_MS);
  if (!read_verified (rs))
    printf ("# second read: result %d: %s\n", rs->result,
            rs->message ? rs->message : "wrong data");
}

/* Many reads in flight at once. */
struct many_reads {
  struct read_state *reads;
  unsigned n;
  int shutdown;                 /* nbd_shutdown's result (abandon) */
  struct poll_log poll;
  bool hung;
};

static bool
nothing_in_flight (struct nbd_handle *h, void *arg)
{
  return nbd_aio_in_flight (h) == 0;
}

/* Issue n reads of 1 to MANY_MAX_COUNT bytes all over the export before
 * any reply can come, so that the cookie table grows and the requests
 * fill the socket (see connect_tcp), wait for all of them (or, with
 * abandon, call nbd_shutdown (h, LIBNBD_SHUTDOWN_ABANDON_PENDING)) and
 * retire each.
 */
static void
do_many_reads (struct nbd_handle *h, struct many_reads *m, unsigned n,
               bool abandon)
{
  unsigned i;

  m->reads = calloc (n, sizeof *m->reads);
  if (m->reads == NULL) {
    perror ("calloc");
    exit (EXIT_FAILURE);
  }
  m->n = n;
  for (i = 0; i < n; i++)
    issue_read (h, &m->reads[i],
                i * UINT64_C (104729) % (EXPORT_SIZE - MANY_MAX_COUNT),
                1 + i * 7919u % MANY_MAX_COUNT, 0);
  if (abandon) {
    m->shutdown = nbd_shutdown (h, LIBNBD_SHUTDOWN_ABANDON_PENDING);
    if (m->shutdown == -1) {
      m->poll.message = copy_error ();
      m->poll.error = nbd_get_errno ();
    }
  }
  else
    m->hung = !drive (h, nothing_in_flight, NULL, POLL_TIMEOUT_MS,
                      &m->poll);
  for (i = 0; i < n; i++)
    if (m->reads[i].cookie != -1)
      retire_read (h, &m->reads[i]);
}

/* Did every read complete once, successfully, with the right data? */
static bool
many_verified (const struct many_reads *m)
{
  unsigned i, failed = 0;

  for (i = 0; i < m->n; i++)
    if (!read_verified (&m->reads[i]))
      failed++;
  if (failed || m->hung || m->poll.message)
    printf ("# %u of %u reads failed%s%s%s\n", failed, m->n,
            m->hung ? ", hung" : "", m->poll.message ? ": " : "",
            m->poll.message ? m->poll.message : "");
  for (i = 0; i < m->n && failed; i++)
    if (!read_verified (&m->reads[i])) {
      printf ("# first failed: read %u [%" PRIu64 ", +%zu): %s\n", i,
              m->reads[i].offset, m->reads[i].count,
              m->reads[i].message ? m->reads[i].message : "wrong data");
      break;
    }
  return failed == 0 && !m->hung && m->poll.message == NULL;
}

/* After nbd_shutdown (ABANDON_PENDING): did it succeed and leave the
 * handle closed, did every read either return the right data or fail
 * with ENOTCONN, and was at least one abandoned before it was sent?
 */
static bool
many_abandoned (struct nbd_handle *h, const struct many_reads *m)
{
  unsigned i, done = 0, abandoned = 0, other = 0;

  for (i = 0; i < m->n; i++) {
    const struct read_state *rs = &m->reads[i];

    if (read_verified (rs))
      done++;
    else if (rs->result == -1 && rs->error == ENOTCONN &&
             rs->completion_error == ENOTCONN &&
             (AGAINST_LIBNBD || strstr (rs->message, "abandoned")))
      abandoned++;
    else if (other++ == 0)
      printf ("# read %u [%" PRIu64 ", +%zu): result %d, errno %d: %s\n",
              i, rs->offset, rs->count, rs->result, rs->error,
              rs->message ? rs->message : "wrong data");
  }
  printf ("# nbd_shutdown returned %d%s%s, handle %s: %u reads done, "
          "%u abandoned, %u neither\n", m->shutdown,
          m->poll.message ? ": " : "",
          m->poll.message ? m->poll.message : "",
          nbd_connection_state (h), done, abandoned, other);
  return m->shutdown == 0 && nbd_aio_is_closed (h) && abandoned > 0 &&
    other == 0;
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

/* Is error the errno expected of a failed connect (NO_CONNECT) or
 * nbd_poll (DIES, WORKS_THEN_DIES)?  libnbd 1.14 leaves 0 in the rows that
 * say so.
 */
static bool
errno_is (const struct expectation *e, int error)
{
  return error == e->error ||
    (AGAINST_LIBNBD && e->libnbd_errno_0 && error == 0);
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

#ifdef HAVE_TLS_API
  /* bad-server speaks no TLS. */
  if (e->tls && nbd_get_tls_negotiated (h) != 0) {
    printf ("# %s: nbd_get_tls_negotiated is %d\n", name,
            nbd_get_tls_negotiated (h));
    ok = false;
  }
#endif
  /* nbd_can_df(3): DF works only with structured replies. */
  if (nbd_can_df (h) == 1 && nbd_get_structured_replies_negotiated (h) != 1) {
    printf ("# %s: nbd_can_df is 1 without structured replies\n", name);
    ok = false;
  }
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
  if (rs->poll.message)
    printf ("#   nbd_poll errno %s: %s\n", strerror (rs->poll.error),
            rs->poll.message);
  if (rs->result == 1 && !read_verified (rs))
    printf ("# %s: WRONG DATA returned as success\n", name);
  printf ("# %s: the longest nbd_poll took %.3f s\n", name,
          rs->poll.slowest);
}

/* Did the handle die while the first read was driven: nbd_poll failed
 * with the expected errno and a message, and a new command (second) was
 * refused?
 */
static bool
poll_died (struct nbd_handle *h, const struct expectation *e,
           const struct poll_log *poll, const struct read_state *second)
{
  return nbd_aio_is_dead (h) &&
    poll->message != NULL && poll->message[0] != '\0' &&
    errno_is (e, poll->error) &&
    second->cookie == -1 && second->error == EINVAL;
}

static bool
handle_died (struct nbd_handle *h, const struct expectation *e,
             const struct read_state *first,
             const struct read_state *second)
{
  return poll_died (h, e, &first->poll, second);
}

/* Did the first read end as expected?  second: a second read on a
 * handle that survived, or the attempt to issue one on a handle that did
 * not.
 */
static bool
outcome_met (struct nbd_handle *h, const struct expectation *e,
             const struct read_state *first,
             const struct read_state *second)
{
  if (first->hung)
    return false;
  if (e->bounded_poll && first->poll.slowest > BOUNDED_POLL_LIMIT * slowdown)
    return false;

  switch (e->outcome) {
  case WORKS:
    return read_verified (first) && read_verified (second);
  case FAILS_USABLE:
    if (first->result != -1 || first->error != e->error ||
        first->completion_error != e->error || !has_message (first) ||
        first->poll.message != NULL || !read_verified (second))
      return false;
    if (e->error_chunks == 1)
      return first->error_chunk_calls == 1 &&
        first->error_chunk_offset == ERROR_OFFSET &&
        first->error_chunk_errno == e->error;
    if (e->error_chunks == 0)
      return first->error_chunk_calls == 0;
    return true;
  case DIES:
    return first->result == -1 && first->error == ENOTCONN &&
      first->completion_error == ENOTCONN && handle_died (h, e, first, second);
  case WORKS_THEN_DIES:
    return read_verified (first) && first->completion_error == 0 &&
      handle_died (h, e, first, second);
  case CLOSES:
    return first->result == -1 && first->error == ENOTCONN &&
      first->completion_error == ENOTCONN && nbd_aio_is_closed (h) &&
      first->poll.message == NULL &&
      second->cookie == -1 && second->error == EINVAL;
  case NO_CONNECT:
  case TIMES_OUT:
    break;
  }
  abort ();
}

/* What a new command on a dead or closed handle did. */
static void
report_new_command (const char *name, const struct read_state *rs)
{
  if (rs->cookie == -1)
    printf ("# %s: a new command fails: %s\n", name, strerror (rs->error));
  else
    printf ("# %s: a new command was accepted\n", name);
}

static const char *
many_hygiene (const struct many_reads *m)
{
  const char *problem = NULL;
  unsigned i;

  for (i = 0; i < m->n && problem == NULL; i++)
    problem = hygiene (&m->reads[i]);
  return problem;
}

static void
free_read (struct read_state *rs)
{
  free (rs->alloc);
  free (rs->message);
  free (rs->poll.message);
}

/* ----- Block status and writes: rows with .command ----- */

/* The first command and everything its callbacks saw. */
struct command_state {
  const struct command_expectation *c;
  uint64_t export_size;
  unsigned char *buf;           /* the write's data */
  int64_t cookie;
  int result;                   /* 1 ok, -1 failed, 0 never completed */
  int error;
  char *message;
  struct poll_log poll;
  bool hung;
  unsigned extent_calls, completion_calls;
  unsigned extent_frees, completion_frees;
  int completion_error;
  bool callback_after_free;
  bool extent_after_completion;
  bool extent_out_of_range;
  char mismatch[160];           /* how the extents differ from those
                                   expected ("": they do not) */
  size_t heap_base, heap_peak;
};

/* Bytes of heap in use (glibc), to see that a chunk the library refuses
 * is never held; 0 where it cannot be known (and under valgrind, whose
 * allocator glibc does not see: the check then proves nothing).
 */
static size_t
heap_in_use (void)
{
#ifdef __GLIBC__
#if __GLIBC_PREREQ (2, 33)
  struct mallinfo2 mi = mallinfo2 ();

  return mi.uordblks + mi.hblkhd;
#endif
#endif
  return 0;
}

static void
sample_heap (struct command_state *cs)
{
  size_t heap = heap_in_use ();

  if (heap > cs->heap_peak)
    cs->heap_peak = heap;
}

/* What the extent callback got, against the row's extent_call. */
static void
check_extent_call (struct command_state *cs, unsigned call,
                   const char *metacontext, const uint32_t *entries,
                   size_t n, int error)
{
  const struct command_expectation *c = cs->c;
  const struct extent_call *x = &c->call[call];
  size_t i;

  if (call >= c->calls) {
    snprintf (cs->mismatch, sizeof cs->mismatch,
              "extent callback called more than %u times", c->calls);
    return;
  }
  if (strcmp (metacontext, x->context) != 0) {
    snprintf (cs->mismatch, sizeof cs->mismatch,
              "call %u: context %s, expected %s", call, metacontext,
              x->context);
    return;
  }
  if (n != x->n || error != x->error) {
    snprintf (cs->mismatch, sizeof cs->mismatch,
              "call %u: %zu descriptors with *error %d, expected %zu with "
              "%d", call, n, error, x->n, x->error);
    return;
  }
  for (i = 0; i < n; i++) {
    uint32_t length = x->entries ? x->entries[2 * i] : 1;
    uint32_t flags = x->entries ? x->entries[2 * i + 1] : i & 3;

    if (entries[2 * i] != length || entries[2 * i + 1] != flags) {
      snprintf (cs->mismatch, sizeof cs->mismatch,
                "call %u: descriptor %zu is (%" PRIu32 ", %" PRIu32 "), "
                "expected (%" PRIu32 ", %" PRIu32 ")", call, i,
                entries[2 * i], entries[2 * i + 1], length, flags);
      return;
    }
  }
}

static int
extent_callback (void *user_data, const char *metacontext, uint64_t offset,
                 uint32_t *entries, size_t nr_entries, int *error)
{
  struct command_state *cs = user_data;
  const struct command_expectation *c = cs->c;
  uint64_t pos = offset, request_end = c->offset + c->count;
  size_t i, n = nr_entries / 2;
  unsigned call = cs->extent_calls++;

  sample_heap (cs);
  if (cs->extent_frees > 0)
    cs->callback_after_free = true;
  if (cs->completion_calls > 0)
    cs->extent_after_completion = true;

  /* nbd_block_status(3) and the NBD spec: extents from the request
   * offset on, pairs of words, each of non-zero length, all but the last
   * ending inside the request; with REQ_ONE one, no longer than the
   * request.  libnbdc's own rule: inside the export.
   */
  if (offset != c->offset || nr_entries == 0 || nr_entries % 2 != 0 ||
      ((c->flags & LIBNBD_CMD_FLAG_REQ_ONE) &&
       (n != 1 || entries[0] > c->count)))
    cs->extent_out_of_range = true;
  for (i = 0; i < n; i++) {
    if (entries[2 * i] == 0 || pos >= request_end ||
        pos >= cs->export_size || entries[2 * i] > cs->export_size - pos)
      cs->extent_out_of_range = true;
    pos += entries[2 * i];
  }

  if (cs->mismatch[0] == '\0')
    check_extent_call (cs, call, metacontext, entries, n, *error);
  return 0;
}

static int
command_completion (void *user_data, int *error)
{
  struct command_state *cs = user_data;

  cs->completion_calls++;
  cs->completion_error = *error;
  if (cs->completion_frees > 0)
    cs->callback_after_free = true;
  return 0;
}

static void
extent_free (void *user_data)
{
  ((struct command_state *) user_data)->extent_frees++;
}

static void
command_completion_free (void *user_data)
{
  ((struct command_state *) user_data)->completion_frees++;
}

static bool
command_done (struct nbd_handle *h, void *arg)
{
  struct command_state *cs = arg;

  sample_heap (cs);
  return cs->completion_calls > 0;
}

/* Before connecting: the other context, the strict mode. */
static void
command_setup (struct nbd_handle *h, const struct command_expectation *c)
{
  if (c->extra_context && nbd_add_meta_context (h, c->extra_context) == -1) {
    fprintf (stderr, "nbd_add_meta_context: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  if (c->no_strict_bounds &&
      nbd_set_strict_mode (h, nbd_get_strict_mode (h) &
                           ~LIBNBD_STRICT_BOUNDS) == -1) {
    fprintf (stderr, "nbd_set_strict_mode: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
}

/* Issue the row's command, wait for it and retire it. */
static void
do_command (struct nbd_handle *h, struct command_state *cs,
            const struct command_expectation *c)
{
  nbd_extent_callback extent = {
    .callback = extent_callback, .user_data = cs, .free = extent_free,
  };
  nbd_completion_callback completion = {
    .callback = command_completion, .user_data = cs,
    .free = command_completion_free,
  };

  cs->c = c;
  cs->export_size = nbd_get_size (h);
  cs->heap_base = cs->heap_peak = heap_in_use ();
  if (c->type == BLOCK_STATUS)
    cs->cookie = nbd_aio_block_status (h, c->count, c->offset, extent,
                                       completion, c->flags);
  else {
    cs->extent_frees = 1;       /* there is no extent callback */
    cs->buf = malloc (c->count);
    if (cs->buf == NULL) {
      perror ("malloc");
      exit (EXIT_FAILURE);
    }
    memset (cs->buf, CANARY, c->count);
    cs->cookie = nbd_aio_pwrite (h, cs->buf, c->count, c->offset,
                                 completion, c->flags);
  }
  if (cs->cookie == -1) {
    cs->result = -1;
    cs->error = nbd_get_errno ();
    cs->message = copy_error ();
    return;
  }
  cs->hung = !drive (h, command_done, cs, POLL_TIMEOUT_MS, &cs->poll);
  cs->result = nbd_aio_command_completed (h, cs->cookie);
  if (cs->result == -1) {
    cs->error = nbd_get_errno ();
    cs->message = copy_error ();
  }
}

static void
report_command (struct nbd_handle *h, const char *name,
                const struct command_state *cs)
{
  printf ("# %s: %s %s%s, handle %s, %u extent calls\n", name,
          cs->c->type == BLOCK_STATUS ? "block status" : "write",
          cs->hung ? "hung" :
          cs->result == 1 ? "succeeded" :
          cs->result == -1 ? "failed: " : "never completed",
          cs->result == -1 ? strerror (cs->error) : "",
          nbd_aio_is_dead (h) ? "dead" : nbd_aio_is_closed (h) ? "closed" :
          nbd_aio_is_ready (h) ? "ready" : nbd_connection_state (h),
          cs->extent_calls);
  if (cs->message)
    printf ("#   %s\n", cs->message);
  if (cs->poll.message)
    printf ("#   nbd_poll errno %s: %s\n", strerror (cs->poll.error),
            cs->poll.message);
  if (cs->mismatch[0])
    printf ("#   extents: %s\n", cs->mismatch);
  if (cs->c->heap_bounded)
    printf ("#   heap grew by %zu bytes at most\n",
            cs->heap_peak - cs->heap_base);
}

/* Did the command end as the row says?  second: as for outcome_met. */
static bool
command_outcome_met (struct nbd_handle *h, const struct expectation *e,
                     const struct command_state *cs,
                     const struct read_state *second)
{
  const struct command_expectation *c = e->command;
  bool extents_ok = cs->extent_calls == c->calls && cs->mismatch[0] == '\0';
  bool message = cs->message && cs->message[0];

  if (cs->hung ||
      (c->heap_bounded && cs->heap_peak - cs->heap_base >= HEAP_BOUND))
    return false;
  if (c->refused)
    return e->outcome == FAILS_USABLE && cs->cookie == -1 &&
      cs->error == e->error && message && read_verified (second);
  switch (e->outcome) {
  case WORKS:
    return cs->result == 1 && cs->completion_error == 0 && extents_ok &&
      read_verified (second);
  case FAILS_USABLE:
    return cs->result == -1 && cs->error == e->error &&
      cs->completion_error == e->error && message &&
      cs->poll.message == NULL && extents_ok && read_verified (second);
  case DIES:
    return cs->result == -1 && cs->error == ENOTCONN &&
      cs->completion_error == ENOTCONN && extents_ok &&
      poll_died (h, e, &cs->poll, second);
  default:
    return false;
  }
}

static void
run_command (struct nbd_handle *h, const struct expectation *e,
             const char *name, bool learned, struct command_state *cs,
             struct read_state *second)
{
  do_command (h, cs, e->command);
  report_command (h, name, cs);
  if (nbd_aio_is_ready (h))
    second_read (h, second);
  else if (!cs->hung) {
    do_read (h, second, SECOND_OFFSET, SECOND_COUNT, 0, POLL_TIMEOUT_MS);
    report_new_command (name, second);
  }
  tap (learned && command_outcome_met (h, e, cs, second), "%s: %s (%s)",
       name, outcome_name (e->outcome), e->rule);
}

/* As hygiene, for the command of a .command row. */
static const char *
command_hygiene (const struct command_state *cs)
{
  if (cs->c == NULL)
    return NULL;
  if (cs->extent_frees != 1)
    return "extent .free not called exactly once";
  if (cs->completion_frees != 1)
    return "completion .free not called exactly once";
  if (cs->callback_after_free)
    return "a callback ran after its .free";
  if (cs->cookie != -1 && cs->completion_calls != 1)
    return "completion callback not called exactly once";
  if (cs->cookie == -1 && (cs->completion_calls || cs->extent_calls))
    return "callbacks called for a command that was never issued";
  if (cs->extent_after_completion)
    return "extent callback after the completion callback";
  if (cs->extent_out_of_range)
    return "extent callback saw an extent of length 0, or outside the "
      "request or the export";
  if (cs->result == 1 && cs->completion_error != 0)
    return "success although the completion callback saw an error";
  return NULL;
}

/* " (REQ_ONE)", " (+ context)": what tells rows of a scenario apart. */
static const char *
command_suffix (const struct expectation *e)
{
  static char suffix[128];

  if (e->command == NULL)
    return "";
  snprintf (suffix, sizeof suffix, "%s%s%s",
            e->command->flags & LIBNBD_CMD_FLAG_REQ_ONE ? " (REQ_ONE)" : "",
            e->command->extra_context ? " (+ " : "",
            e->command->extra_context ? e->command->extra_context : "");
  if (e->command->extra_context)
    strcat (suffix, ")");
  return suffix;
}

/* What the callbacks of one nbd_aio_opt_* call saw. */
struct opt_state {
  int issued;                   /* the call's result */
  int issue_error;
  int entry_calls, entry_frees;
  int completion_calls, completion_frees;
  int completion_error;
  bool call_after_free;
  struct poll_log poll;
  bool hung;
};

static int
opt_list_entry (void *user_data, const char *name, const char *description)
{
  struct opt_state *os = user_data;

  os->entry_calls++;
  if (os->entry_frees || os->completion_calls)
    os->call_after_free = true;
  return 0;
}

static int
opt_context_entry (void *user_data, const char *name)
{
  return opt_list_entry (user_data, name, "");
}

static void
opt_entry_free (void *user_data)
{
  struct opt_state *os = user_data;

  os->entry_frees++;
}

static int
opt_completion (void *user_data, int *error)
{
  struct opt_state *os = user_data;

  os->completion_calls++;
  os->completion_error = *error;
  if (os->completion_frees)
    os->call_after_free = true;
  return 0;
}

static void
opt_completion_free (void *user_data)
{
  struct opt_state *os = user_data;

  os->completion_frees++;
}

static bool
option_done (struct nbd_handle *h, void *arg)
{
  struct opt_state *os = arg;

  return os->completion_calls > 0 || !nbd_aio_is_connecting (h);
}

/* Issue the row's option call and drive it to its end.  A handle that
 * dies inside the call itself leaves its error for nbd_get_error (the
 * call succeeded: the option was queued).
 */
static void
do_option (struct nbd_handle *h, const struct expectation *e,
           struct opt_state *os)
{
  nbd_completion_callback completion = {
    .callback = opt_completion, .user_data = os,
    .free = opt_completion_free,
  };
  nbd_list_callback list = {
    .callback = opt_list_entry, .user_data = os, .free = opt_entry_free,
  };
  nbd_context_callback context = {
    .callback = opt_context_entry, .user_data = os, .free = opt_entry_free,
  };

  if (e->sync) {
    /* The blocking call: it returns what the option gave. */
    os->completion_frees = 1;   /* no completion callback */
    if (e->opt == OPT_LIST)
      os->issued = nbd_opt_list (h, list);
    else if (e->opt == OPT_LIST_META)
      os->issued = nbd_opt_list_meta_context (h, context);
    else {
      os->entry_frees = 1;
      os->issued = nbd_opt_info (h);
    }
    if (os->issued == -1) {
      os->issue_error = nbd_get_errno ();
      os->poll.message = copy_error ();
    }
    return;
  }
  switch (e->opt) {
  case OPT_LIST:
    os->issued = nbd_aio_opt_list (h,
      (nbd_list_callback) { .callback = opt_list_entry, .user_data = os,
                            .free = opt_entry_free }, completion);
    break;
  case OPT_LIST_META:
    os->issued = nbd_aio_opt_list_meta_context (h,
      (nbd_context_callback) { .callback = opt_context_entry,
                               .user_data = os, .free = opt_entry_free },
      completion);
    break;
  default:
    os->entry_frees = 1;        /* no list callback */
    os->issued = nbd_aio_opt_info (h, completion);
    break;
  }
  if (os->issued == -1) {
    os->issue_error = nbd_get_errno ();
    os->poll.message = copy_error ();
    return;
  }
  if (nbd_aio_is_dead (h)) {
    os->poll.message = copy_error ();
    os->poll.error = nbd_get_errno ();
    return;
  }
  os->hung = !drive (h, option_done, os, POLL_TIMEOUT_MS, &os->poll);
}

/* Did the option end as the row expects? */
static bool
option_outcome_met (struct nbd_handle *h, const struct expectation *e,
                    const struct opt_state *os)
{
  bool counted = e->opt == OPT_INFO || os->entry_calls == e->opt_count;
  bool named = AGAINST_LIBNBD || e->message == NULL ||
    (os->poll.message && strstr (os->poll.message, e->message));

  if (os->hung)
    return false;
  if (e->sync) {
    int expected = e->opt == OPT_INFO ? 0 : e->opt_count;

    switch (e->outcome) {
    case WORKS:
      return os->issued == expected && counted &&
        nbd_aio_is_negotiating (h) == 1;
    case FAILS_USABLE:
      return os->issued == -1 && os->issue_error == e->error && counted &&
        nbd_aio_is_negotiating (h) == 1;
    case DIES:
      /* libnbd 1.14 says ENOTCONN if the handle died before the call
       * waited, the errno of the failed poll (0) if while it waited.
       */
      return os->issued == -1 && nbd_aio_is_dead (h) && named &&
        os->poll.message && os->poll.message[0] &&
        (errno_is (e, os->issue_error) ||
         (AGAINST_LIBNBD && os->issue_error == ENOTCONN));
    default:
      abort ();
    }
  }
  switch (e->outcome) {
  case WORKS:
    return os->issued == 0 && os->completion_calls == 1 &&
      os->completion_error == 0 && counted &&
      nbd_aio_is_negotiating (h) == 1;
  case FAILS_USABLE:
    if (os->issued == -1)
      return os->issue_error == e->error && os->entry_calls == 0 &&
        os->completion_calls == 0 && nbd_aio_is_negotiating (h) == 1;
    return os->completion_calls == 1 && os->completion_error == e->error &&
      counted && nbd_aio_is_negotiating (h) == 1;
  case DIES:
    return os->issued == 0 && nbd_aio_is_dead (h) &&
      os->completion_calls == 1 && os->completion_error == ENOTCONN &&
      os->poll.message != NULL && errno_is (e, os->poll.error) && named;
  default:
    abort ();
  }
}

/* An opt-mode row: connect in opt mode, run the option, then see whether
 * the handle goes on as the outcome says.
 */
static void
run_opt (const char *server, const struct expectation *e)
{
  struct nbd_handle *h;
  struct opt_state os = { 0 };
  struct read_state second = { 0 };
  struct poll_log connect_log = { 0 };
  const char *argv[4];
  const char *call = e->opt == OPT_LIST ? "list"
    : e->opt == OPT_LIST_META ? "list_meta_context" : "info";
  char name[128];
  const char *problem = NULL;
  bool ok, hung;
  int argc = 0;

  snprintf (name, sizeof name, "%s%s (nbd_%sopt_%s)", e->scenario,
            e->trickle ? " (trickle)" : "", e->sync ? "" : "aio_", call);
  argv[argc++] = server;
  if (e->trickle)
    argv[argc++] = "--trickle";
  argv[argc++] = e->scenario;
  argv[argc] = NULL;

  h = nbd_create ();
  if (h == NULL || nbd_set_opt_mode (h, true) == -1) {
    fprintf (stderr, "nbd_create: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  hung = nbd_aio_connect_command (h, (char **) argv) == -1 ||
    !drive (h, connect_done, NULL, POLL_TIMEOUT_MS, &connect_log);
  if (hung || !nbd_aio_is_negotiating (h)) {
    printf ("# %s: connect did not stop negotiating (%s): %s\n", name,
            nbd_connection_state (h),
            connect_log.message ? connect_log.message : "");
    tap (false, "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
    free (connect_log.message);
    nbd_close (h);
    return;
  }

  do_option (h, e, &os);
  printf ("# %s: call %d (%s), %d replies, completion %d (%s), handle %s\n",
          name, os.issued, strerror (os.issue_error), os.entry_calls,
          os.completion_calls, strerror (os.completion_error),
          nbd_connection_state (h));
  if (os.poll.message)
    printf ("#   errno %s: %s\n", strerror (os.poll.error), os.poll.message);
  ok = option_outcome_met (h, e, &os);

  /* What the handle does next: GO (and a read), or nothing if dead. */
  if (e->outcome == DIES) {
    int r = nbd_opt_go (h);

    ok = ok && r == -1 && nbd_get_errno () == EINVAL;
  }
  else if (e->go_fails) {
    int r = nbd_opt_go (h);

    ok = ok && r == -1 && nbd_get_errno () == e->error &&
      nbd_aio_is_negotiating (h) == 1;
  }
  else if (nbd_opt_go (h) == -1) {
    printf ("# %s: nbd_opt_go: %s\n", name, nbd_get_error ());
    ok = false;
  }
  else {
    second_read (h, &second);
    ok = ok && read_verified (&second);
  }
  tap (ok, "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
  nbd_close (h);

  if (os.entry_frees != 1)
    problem = "list or context .free not called exactly once";
  else if (os.completion_frees != 1)
    problem = "completion .free not called exactly once";
  else if (os.call_after_free)
    problem = "a callback ran after its .free or the completion";
  else if (os.issued == -1 && !e->sync &&
           (os.completion_calls || os.entry_calls))
    problem = "callbacks called for an option that was never issued";
  else if (os.issued != -1 && !e->sync && os.completion_calls != 1)
    problem = "completion callback not called exactly once";
  else
    problem = hygiene (&second);
  tap (problem == NULL, "%s: callbacks and .free%s%s", name,
       problem ? ": " : "", problem ? problem : "");
  free (os.poll.message);
  free (connect_log.message);
  free_read (&second);
}

/* A .tls row: TLS on h as the row says, with the PSK of psk_file. */
static bool
tls_setup (struct nbd_handle *h, const struct expectation *e)
{
#ifdef HAVE_TLS_API
  if (nbd_set_tls (h, e->tls) == -1 ||
      nbd_set_tls_psk_file (h, psk_file) == -1 ||
      nbd_set_tls_username (h, TLS_USERNAME) == -1) {
    printf ("# TLS settings: %s\n", nbd_get_error ());
    return false;
  }
  return true;
#else
  printf ("# this library has no TLS calls (nbd_set_tls ...)\n");
  return false;
#endif
}

/* A PSK file for user TLS_USERNAME (the key does not matter: bad-server
 * never gets that far).
 */
static void
make_psk_file (void)
{
  static const char line[] = TLS_USERNAME ":"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
  int fd = mkstemp (psk_file);

  if (fd == -1 || write (fd, line, strlen (line)) != (ssize_t) strlen (line)
      || close (fd) == -1) {
    perror (psk_file);
    exit (EXIT_FAILURE);
  }
}

static void
remove_psk_file (void)
{
  unlink (psk_file);
}

/* A TIMES_OUT row: drive the connection (nbd_poll with a short timeout,
 * however long the library blocks in it) until it ends or STALL_LIMIT
 * passes; it must fail with the row's errno, and not at once.
 */
static bool
times_out (struct nbd_handle *h, const struct expectation *e,
           const char *name)
{
  double start = now ();
  char *message = NULL;
  int error = 0;
  bool ok;

  while (nbd_aio_is_connecting (h) &&
         now () - start < STALL_LIMIT * slowdown) {
    if (nbd_poll (h, BOUNDED_POLL_MS) == -1) {
      message = copy_error ();
      error = nbd_get_errno ();
      break;
    }
  }
  printf ("# %s: after %.1f s: handle %s, errno %s: %s\n", name,
          now () - start, nbd_connection_state (h), strerror (error),
          message ? message : "(no error)");
  ok = nbd_aio_is_dead (h) && message != NULL && message[0] != '\0' &&
    errno_is (e, error) && now () - start >= STALL_SECONDS;
  free (message);
  return ok;
}

static void
run (const char *server, const struct expectation *e)
{
  struct nbd_handle *h;
  struct read_state first = { 0 }, second = { 0 };
  struct many_reads many = { 0 };
  struct command_state command = { 0 };
  struct poll_log connect_log = { 0 };
  char *argv[4];
  char *connect_message = NULL;
  char name[256];
  const char *problem;
  bool connected, hung;
  pid_t server_pid = 0;
  int argc = 0, connect_error = 0;

  if (e->opt != OPT_NONE) {
    run_opt (server, e);
    return;
  }
  snprintf (name, sizeof name, "%s%s%s%s%s%s", e->scenario,
            e->trickle ? " (trickle)" : "", e->flags & DF ? " (DF)" : "",
            e->abandon ? " (abandon)" : "", command_suffix (e),
            e->tls == LIBNBD_TLS_REQUIRE ? " (TLS require)" :
            e->tls == LIBNBD_TLS_ALLOW ? " (TLS allow)" : "");
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
  if (e->command)
    command_setup (h, e->command);
  if (e->tls && !tls_setup (h, e)) {
    tap (false, "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
    tap (false, "%s: callbacks, .free and buffer bounds: not run", name);
    nbd_close (h);
    return;
  }
  if (e->outcome == TIMES_OUT) {
    bool ok = nbd_aio_connect_command (h, argv) == 0 &&
      times_out (h, e, name);

    tap (ok, "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
    nbd_close (h);
    tap (true, "%s: callbacks, .free and buffer bounds: nothing issued",
         name);
    return;
  }

  if (e->reads > 1 ? (server_pid = connect_tcp (h, argv)) == -1
      : nbd_aio_connect_command (h, argv) == -1) {
    connect_error = nbd_get_errno ();
    connect_message = copy_error ();
    hung = false;
  }
  else {
    hung = !drive (h, connect_done, NULL, POLL_TIMEOUT_MS, &connect_log);
    connect_error = connect_log.error;
    connect_message = connect_log.message;
  }
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
    do_read (h, &first, READ_OFFSET, READ_COUNT, e->flags, POLL_TIMEOUT_MS);
    report_new_command (name, &first);
    tap (e->outcome == NO_CONNECT && connect_message[0] != '\0' &&
         errno_is (e, connect_error) && nbd_aio_is_dead (h) &&
         first.cookie == -1 && first.error == EINVAL,
         "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
  }
  else if (e->outcome == NO_CONNECT) {
    printf ("# %s: connected\n", name);
    tap (false, "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
  }
  else if (e->command)
    run_command (h, e, name, handshake_learned (h, e, name), &command,
                 &second);
  else if (e->reads > 1) {
    bool learned = handshake_learned (h, e, name);

    do_many_reads (h, &many, e->reads, e->abandon);
    if (e->abandon)
      tap (learned && many_abandoned (h, &many), "%s: %s (%s)", name,
           outcome_name (e->outcome), e->rule);
    else {
      second_read (h, &second);
      tap (learned && many_verified (&many) && read_verified (&second),
           "%s: %s (%s)", name, outcome_name (e->outcome), e->rule);
    }
  }
  else {
    bool learned = handshake_learned (h, e, name);

    do_read (h, &first, READ_OFFSET, READ_COUNT, e->flags,
             e->bounded_poll ? BOUNDED_POLL_MS : POLL_TIMEOUT_MS);
    report_read (h, name, &first);
    if (nbd_aio_is_ready (h))
      second_read (h, &second);
    else if (!first.hung) {
      /* A dead or closed handle refuses new commands (EINVAL). */
      do_read (h, &second, SECOND_OFFSET, SECOND_COUNT, 0,
               POLL_TIMEOUT_MS);
      report_new_command (name, &second);
    }
    tap (learned && outcome_met (h, e, &first, &second), "%s: %s (%s)",
         name, outcome_name (e->outcome), e->rule);
  }

  nbd_close (h);
  if (server_pid > 0)
    waitpid (server_pid, NULL, 0);

  problem = hygiene (&first);
  if (problem == NULL)
    problem = hygiene (&second);
  if (problem == NULL)
    problem = many_hygiene (&many);
  if (problem == NULL)
    problem = command_hygiene (&command);
  tap (problem == NULL, "%s: callbacks, .free and buffer bounds%s%s", name,
       problem ? ": " : "", problem ? problem : "");

  free_read (&first);
  free_read (&second);
  for (unsigned i = 0; i < many.n; i++)
    free_read (&many.reads[i]);
  free (many.reads);
  free (many.poll.message);
  free (command.buf);
  free (command.message);
  free (command.poll.message);
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
  make_psk_file ();
  atexit (remove_psk_file);
  if (getenv ("NBDC_SLOWDOWN") && atoi (getenv ("NBDC_SLOWDOWN")) > 1)
    slowdown = atoi (getenv ("NBDC_SLOWDOWN"));

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
