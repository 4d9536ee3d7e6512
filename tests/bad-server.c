/* bad-server: a deliberately misbehaving NBD server, for tests only.
 *
 * Usage: bad-server [--socket PATH [--serve-many MARKER]] [--trickle] SCENARIO
 *        bad-server --list
 *
 * It serves a read-only 1 MiB export in which every 8-byte big-endian word
 * holds its own offset.  It speaks a correct fixed-newstyle handshake (or
 * oldstyle), then misbehaves as the SCENARIO says: either during the
 * handshake, or in its reply to the first READ request (or the first
 * BLOCK_STATUS or WRITE: command_fault).  Later requests are answered
 * correctly, so a client that survives a command-level error can check
 * that its handle still works.  To a client in opt mode it also answers
 * NBD_OPT_LIST (two exports) and NBD_OPT_LIST_META_CONTEXT
 * (base:allocation), correctly or as the scenario says.
 *
 * Without --socket it talks on stdin/stdout, which is what
 * nbd_connect_command gives it.  With --socket it listens on a Unix socket,
 * serves one client and exits; so it does under systemd socket activation
 * (nbdinfo -- [ bad-server good ]).  --trickle writes everything one byte
 * at a time, so the client sees every header split at every offset.  It
 * exits when the client goes away (EOF or a failed write), and in any case
 * after a minute.
 *
 * With --serve-many (a proxy as the client) it serves every client of
 * PATH, each in a process of its own, for ten minutes at most.  Only one
 * of them misbehaves in transmission: the first to reach the fault
 * creates the file MARKER, the others find it and answer correctly.  So a
 * proxy's other upstream connections stay good, and the test sees that
 * the fault happened.  Handshake faults hit every client.
 *
 * To add a scenario: write a read_fault or command_fault function (or
 * pick a handshake_fault), add a row to the scenarios table, and add what a
 * client must do to the expectations of hostile-replies.c (it checks that
 * every scenario has one).
 */

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Wire constants, as named by the NBD protocol specification. */
#define NBD_MAGIC                   UINT64_C (0x4e42444d41474943)
#define NBD_OPTS_MAGIC              UINT64_C (0x49484156454f5054)
#define NBD_OLDSTYLE_MAGIC          UINT64_C (0x00420281861253)
#define NBD_REP_MAGIC               UINT64_C (0x0003e889045565a9)
#define NBD_REQUEST_MAGIC           UINT32_C (0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC      UINT32_C (0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC  UINT32_C (0x668e33ef)

#define NBD_FLAG_FIXED_NEWSTYLE     (1 << 0)
#define NBD_FLAG_NO_ZEROES          (1 << 1)
#define NBD_FLAG_C_NO_ZEROES        (1 << 1)

#define NBD_OPT_EXPORT_NAME         1
#define NBD_OPT_ABORT               2
#define NBD_OPT_LIST                3
#define NBD_OPT_STARTTLS            5
#define NBD_OPT_INFO                6
#define NBD_OPT_GO                  7
#define NBD_OPT_STRUCTURED_REPLY    8
#define NBD_OPT_LIST_META_CONTEXT   9
#define NBD_OPT_SET_META_CONTEXT    10

#define NBD_REP_ACK                 1
#define NBD_REP_SERVER              2
#define NBD_REP_INFO                3
#define NBD_REP_META_CONTEXT        4
#define NBD_REP_ERR_UNSUP           (UINT32_C (1) << 31 | 1)
#define NBD_REP_ERR_POLICY          (UINT32_C (1) << 31 | 2)
#define NBD_REP_ERR_INVALID         (UINT32_C (1) << 31 | 3)
#define NBD_REP_ERR_PLATFORM        (UINT32_C (1) << 31 | 4)
#define NBD_REP_ERR_TLS_REQD        (UINT32_C (1) << 31 | 5)
#define NBD_REP_ERR_UNKNOWN         (UINT32_C (1) << 31 | 6)
#define NBD_REP_ERR_SHUTDOWN        (UINT32_C (1) << 31 | 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (UINT32_C (1) << 31 | 8)
#define NBD_REP_ERR_TOO_BIG         (UINT32_C (1) << 31 | 9)

#define NBD_INFO_EXPORT             0
#define NBD_INFO_NAME               1
#define NBD_INFO_BLOCK_SIZE         3

#define NBD_FLAG_HAS_FLAGS          (1 << 0)
#define NBD_FLAG_READ_ONLY          (1 << 1)
#define NBD_FLAG_SEND_FLUSH         (1 << 2)
#define NBD_FLAG_SEND_DF            (1 << 7)

#define NBD_CMD_READ                0
#define NBD_CMD_WRITE               1
#define NBD_CMD_DISC                2
#define NBD_CMD_FLUSH               3
#define NBD_CMD_FLAG_DF             (1 << 2)

#define NBD_REPLY_FLAG_DONE         (1 << 0)
#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_OFFSET_HOLE  2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR        (1 << 15 | 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET (1 << 15 | 2)

/* Error values on the wire. */
#define NBD_EPERM                   1
#define NBD_EIO                     5
#define NBD_EINVAL                  22

#define EXPORT_SIZE                 (1024 * 1024)
#define MAX_OPTION_LENGTH           65536
#define SAFETY_TIMEOUT_SECONDS      60
#define SERVE_MANY_TIMEOUT_SECONDS  600 /* the listener of --serve-many */
#define ERROR_STREAM_SECONDS        4   /* times $NBDC_SLOWDOWN */
#define BATCH_DELAY_MS              1500
#define BATCH_MAX                   1000
#define LIST_MANY                   10000
#define META_CONTEXTS_TOO_MANY      300

struct request {
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint32_t count;
};

/* Misbehaviours during the handshake. */
enum handshake_fault {
  HS_NONE,
  HS_CLOSE,                     /* close after the first option header */
  HS_OVERSIZED_REPLY,           /* INFO reply to GO claiming 1 GiB */
  HS_BAD_OPTION_MAGIC,          /* first option reply has a wrong magic */
  HS_WRONG_OPTION_ECHOED,       /* first option reply echoes another option */
  HS_INFO_NAME_TOO_LONG,        /* NBD_INFO_NAME of 5000 bytes */
  HS_MISSING_INFO_EXPORT,       /* GO acknowledged without NBD_INFO_EXPORT */
  HS_BAD_GREETING_MAGIC,        /* greeting does not start with NBDMAGIC */
  HS_UNKNOWN_VERSION_MAGIC,     /* neither IHAVEOPT nor oldstyle */
  HS_CLOSE_IN_GREETING,         /* close after 12 bytes of the greeting */
  HS_CLOSE_IN_OPTION_REPLY,     /* close inside the first option reply */
  HS_CLOSE_AFTER_EXPORT_NAME,   /* close on EXPORT_NAME: no such export */
  HS_PLAIN_NEWSTYLE,            /* no FIXED_NEWSTYLE: EXPORT_NAME or EOF */
  HS_NO_ZEROES_NOT_OFFERED,     /* fixed newstyle without NO_ZEROES */
  HS_STRUCTURED_REPLY_SERVER,   /* NBD_REP_SERVER to STRUCTURED_REPLY */
  HS_DF_WITHOUT_SR,             /* SEND_DF although structured replies
                                   were refused (SC_SIMPLE) */
  HS_STRUCTURED_REPLY_ACK_DATA, /* ACK with a payload to STRUCTURED_REPLY */
  HS_GO_ACK_DATA,               /* ACK with a payload to GO */
  HS_INFO_EXPORT_SHORT,         /* NBD_INFO_EXPORT of length 11 */
  HS_INFO_EXPORT_LONG,          /* NBD_INFO_EXPORT of length 13 */
  HS_INFO_BLOCK_SIZE_SHORT,     /* NBD_INFO_BLOCK_SIZE of length 13 */
  HS_INFO_EMPTY,                /* NBD_REP_INFO of length 0 */
  HS_INFO_ONE_BYTE,             /* NBD_REP_INFO of length 1 */
  HS_INFO_UNKNOWN_TYPE,         /* NBD_REP_INFO of info type 99 */
  HS_HUGE_SIZE,                 /* export size 2^63 */
  HS_BLOCK_MINIMUM_NOT_POWER_OF_2, /* the block sizes of block_sizes[] */
  HS_BLOCK_MINIMUM_TOO_BIG,
  HS_BLOCK_PREFERRED_NOT_POWER_OF_2,
  HS_BLOCK_PREFERRED_BELOW_MINIMUM,
  HS_BLOCK_PREFERRED_BELOW_512,
  HS_BLOCK_MAXIMUM_BELOW_PREFERRED,
  HS_BLOCK_UNLIMITED,
  HS_BLOCK_1M,
  HS_BLOCK_MAXIMUM_NOT_MULTIPLE,
  HS_META_CONTEXT,              /* SET_META_CONTEXT selects base:allocation */
  HS_META_CONTEXT_OTHER_NAME,   /* ... base:allocation:extra instead */
  HS_META_CONTEXT_ERROR,        /* SET_META_CONTEXT refused (ERR_POLICY) */
  HS_META_CONTEXT_SHORT,        /* a META_CONTEXT reply of 3 bytes */
  HS_META_CONTEXT_TOO_MANY,     /* SET_META_CONTEXT selects 300 contexts */
  /* Replies to NBD_OPT_LIST (opt mode; by default two exports). */
  HS_LIST_NAME_BEYOND_PAYLOAD,  /* NBD_REP_SERVER: name length 100 of 4 */
  HS_LIST_SHORT,                /* NBD_REP_SERVER of 3 bytes */
  HS_LIST_NAME_TOO_LONG,        /* NBD_REP_SERVER with a 5000-byte name */
  HS_LIST_OVERSIZED,            /* NBD_REP_SERVER claiming 1 GiB */
  HS_LIST_INFO_REPLY,           /* NBD_REP_INFO in reply to LIST */
  HS_LIST_UNKNOWN_REPLY,        /* non-error reply type 0x63 to LIST */
  HS_LIST_ERROR_AFTER_ONE,      /* one export, then NBD_REP_ERR_POLICY */
  HS_LIST_MANY,                 /* LIST_MANY exports */
  HS_LIST_CLOSE,                /* close on LIST */
  /* Replies to NBD_OPT_LIST_META_CONTEXT (by default base:allocation). */
  HS_META_LIST_SHORT,           /* a META_CONTEXT reply of 3 bytes */
  HS_META_LIST_NAME_TOO_LONG,   /* a context name of 5000 bytes */
  HS_META_LIST_SERVER_REPLY,    /* NBD_REP_SERVER in reply to it */
  HS_META_LIST_ERROR,           /* NBD_REP_ERR_UNSUP */
  /* Replies to NBD_OPT_STARTTLS (by default NBD_REP_ERR_UNSUP: no TLS
   * here).  After an ACK the server speaks no TLS: it reads the client's
   * first TLS record (its ClientHello) and misbehaves.  A client that
   * sends a plaintext option instead is served in plaintext, as a server
   * that stripped TLS would: the connection then works, and a row that
   * expects it to fail catches the downgrade.
   */
  HS_STARTTLS_ERR_UNSUP,        /* NBD_REP_ERR_UNSUP, said explicitly */
  HS_STARTTLS_ERR_POLICY,       /* NBD_REP_ERR_POLICY */
  HS_STARTTLS_INJECT,           /* ACK, and plaintext right behind it */
  HS_STARTTLS_CLOSE_IN_TLS,     /* ACK, read the ClientHello, close */
  HS_STARTTLS_HANG_IN_TLS,      /* ACK, read the ClientHello, say nothing */
  HS_STARTTLS_GARBAGE,          /* ACK, read the ClientHello, answer with
                                   a ServerHello of garbage */
};

/* NBD_INFO_BLOCK_SIZE (minimum, preferred, maximum) of the HS_BLOCK_*
 * faults; the spec's rules in the NBD_INFO_BLOCK_SIZE section.
 */
static const struct {
  enum handshake_fault fault;
  uint32_t minimum, preferred, maximum;
} block_sizes[] = {
  { HS_BLOCK_MINIMUM_NOT_POWER_OF_2, 768, 4096, 1 << 20 },
  { HS_BLOCK_MINIMUM_TOO_BIG, 1 << 17, 1 << 17, 1 << 20 },
  { HS_BLOCK_PREFERRED_NOT_POWER_OF_2, 512, 6144, 1 << 20 },
  { HS_BLOCK_PREFERRED_BELOW_MINIMUM, 4096, 2048, 1 << 20 },
  { HS_BLOCK_PREFERRED_BELOW_512, 1, 256, 1 << 20 },
  { HS_BLOCK_MAXIMUM_BELOW_PREFERRED, 512, 4096, 2048 },
  { HS_BLOCK_UNLIMITED, 1, 4096, UINT32_C (0xffffffff) },
  { HS_BLOCK_1M, 512, 4096, 1 << 20 },
  { HS_BLOCK_MAXIMUM_NOT_MULTIPLE, 512, 4096, 1000000 },
};

/* Scenario flags. */
#define SC_SIMPLE   (1 << 0)    /* refuse structured replies (ERR_UNSUP) */
#define SC_OLDSTYLE (1 << 1)    /* oldstyle handshake */
#define SC_NO_GO    (1 << 2)    /* refuse GO/INFO: client uses EXPORT_NAME */
#define SC_MESSAGE  (1 << 3)    /* the error of SC_GO_ERROR has a message */
#define SC_BATCH    (1 << 4)    /* read no request for BATCH_DELAY_MS, then
                                   answer in batches, newest first */
/* Refuse GO/INFO with the error reply type whose low byte is that of
 * error (NBD_REP_ERR_*, or an unknown one).
 */
#define SC_GO_ERROR(error) (((error) & 0xff) << 8)
#define SC_GO_ERROR_MASK   SC_GO_ERROR (0xff)

/* Block status and writes: the scenarios whose fault is in the reply to
 * the first NBD_CMD_BLOCK_STATUS or NBD_CMD_WRITE (command_fault).
 */
#define NBD_CMD_BLOCK_STATUS        7
#define NBD_CMD_FLAG_REQ_ONE        (1 << 3)
#define NBD_STATE_HOLE              1
#define NBD_STATE_ZERO              2
#define BASE_ALLOCATION             "base:allocation"
#define DIRTY_BITMAP                "qemu:dirty-bitmap:x"
#define BASE_ALLOCATION_ID          17  /* context ids no client guesses */
#define DIRTY_BITMAP_ID             42
#define UNKNOWN_CONTEXT_ID          99
#define BIG_EXPORT_SIZE             (8 * 1024 * 1024)
#define MANY_EXTENTS                (1 << 20) /* the spec's advice: at
                                                 most this many */
#define SC_META       (1 << 16)     /* SET_META_CONTEXT selects
                                       BASE_ALLOCATION and DIRTY_BITMAP
                                       when the client asks for them */
#define SC_BIG_EXPORT (1 << 17)     /* an export of BIG_EXPORT_SIZE */
#define SC_WRITABLE   (1 << 18)     /* not read-only: writes succeed */

struct scenario {
  const char *name;
  const char *description;
  unsigned flags;
  enum handshake_fault handshake_fault;
  void (*read_fault) (const struct request *req); /* first READ; or NULL */
  void (*command_fault) (const struct request *req); /* first BLOCK_STATUS
                                                         or WRITE; or NULL */
};

static const struct scenario *scenario;
static int in_fd = STDIN_FILENO, out_fd = STDOUT_FILENO;
static bool trickle;
static const char *fault_marker; /* --serve-many: who may misbehave */
static bool structured_replies;
static bool no_zeroes;
static bool holding;            /* SC_BATCH: flush_out keeps the output */
static unsigned option_replies_sent;

/* Output is assembled here, then written with flush_out. */
static unsigned char *out_buf;
static size_t out_len, out_cap;

static void
fail (const char *msg)
{
  fprintf (stderr, "bad-server: %s\n", msg);
  exit (EXIT_FAILURE);
}

/* May this process misbehave in transmission?  Always, unless
 * --serve-many: then only the first process to create the marker file.
 */
static bool
claim_fault (void)
{
  int fd;

  if (fault_marker == NULL)
    return true;
  fd = open (fault_marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd == -1) {
    if (errno != EEXIST)
      fail ("cannot create the --serve-many marker");
    return false;
  }
  close (fd);
  return true;
}

static void
write_all (const void *buf, size_t len)
{
  const unsigned char *p = buf;

  while (len > 0) {
    ssize_t r = write (out_fd, p, trickle ? 1 : len);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      exit (EXIT_SUCCESS);      /* the client went away */
    }
    p += r;
    len -= r;
  }
}

/* Bytes read ahead, which read_all returns first (unread). */
static unsigned char pushback[16];
static size_t pushback_len;

static void
unread (const void *buf, size_t len)
{
  if (len > sizeof pushback - pushback_len)
    abort ();
  memmove (pushback + len, pushback, pushback_len);
  memcpy (pushback, buf, len);
  pushback_len += len;
}

/* Read exactly len bytes; exit quietly if the client goes away. */
static void
read_all (void *buf, size_t len)
{
  unsigned char *p = buf;

  if (pushback_len > 0) {
    size_t n = len < pushback_len ? len : pushback_len;

    memcpy (p, pushback, n);
    memmove (pushback, pushback + n, pushback_len - n);
    pushback_len -= n;
    p += n;
    len -= n;
  }
  while (len > 0) {
    ssize_t r = read (in_fd, p, len);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      exit (EXIT_SUCCESS);
    p += r;
    len -= r;
  }
}

/* After a misbehaviour that leaves nothing sensible to do: wait for the
 * client to hang up.
 */
static void
wait_for_eof (void)
{
  char buf[4096];

  for (;;) {
    ssize_t r = read (in_fd, buf, sizeof buf);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      exit (EXIT_SUCCESS);
  }
}

static void
put (const void *data, size_t len)
{
  if (out_len + len > out_cap) {
    size_t cap = out_cap ? out_cap : 4096;
    while (cap < out_len + len)
      cap *= 2;
    out_buf = realloc (out_buf, cap);
    if (out_buf == NULL)
      fail ("out of memory");
    out_cap = cap;
  }
  memcpy (out_buf + out_len, data, len);
  out_len += len;
}

static void
put_be (uint64_t value, size_t bytes)
{
  unsigned char b[8];
  size_t i;

  for (i = 0; i < bytes; i++)
    b[i] = value >> (8 * (bytes - 1 - i));
  put (b, bytes);
}

static void
put_be16 (uint16_t value)
{
  put_be (value, 2);
}

static void
put_be32 (uint32_t value)
{
  put_be (value, 4);
}

static void
put_be64 (uint64_t value)
{
  put_be (value, 8);
}

static void
put_fill (int byte, size_t len)
{
  unsigned char b[256];

  memset (b, byte, sizeof b);
  while (len > 0) {
    size_t n = len < sizeof b ? len : sizeof b;
    put (b, n);
    len -= n;
  }
}

/* The export's content: each 8-byte big-endian word holds its offset. */
static void
put_pattern (uint64_t offset, uint32_t count)
{
  uint64_t o;

  for (o = offset; o < offset + count; o++) {
    unsigned char b = (o & ~UINT64_C (7)) >> (8 * (7 - (o & 7)));
    put (&b, 1);
  }
}

static void
flush_out (void)
{
  if (holding)
    return;
  write_all (out_buf, out_len);
  out_len = 0;
}

static uint64_t
get_be (const unsigned char *p, size_t bytes)
{
  uint64_t v = 0;
  size_t i;

  for (i = 0; i < bytes; i++)
    v = v << 8 | p[i];
  return v;
}

/* Handshake. */

static uint64_t
export_size (void)
{
  if (scenario->handshake_fault == HS_HUGE_SIZE)
    return UINT64_C (1) << 63;
  if (scenario->flags & SC_BIG_EXPORT)
    return BIG_EXPORT_SIZE;
  return EXPORT_SIZE;
}

static uint16_t
transmission_flags (void)
{
  uint16_t flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY |
    NBD_FLAG_SEND_FLUSH;

  if (structured_replies || scenario->handshake_fault == HS_DF_WITHOUT_SR)
    flags |= NBD_FLAG_SEND_DF;
  if (scenario->flags & SC_WRITABLE)
    flags &= ~NBD_FLAG_READ_ONLY;
  return flags;
}

static void
option_reply (uint32_t option, uint32_t type, uint32_t length)
{
  uint64_t magic = NBD_REP_MAGIC;

  if (option_replies_sent++ == 0) {
    if (scenario->handshake_fault == HS_BAD_OPTION_MAGIC)
      magic ^= 0x0101;
    else if (scenario->handshake_fault == HS_WRONG_OPTION_ECHOED)
      option += 100;
    else if (scenario->handshake_fault == HS_CLOSE_IN_OPTION_REPLY) {
      put_be64 (magic);
      put_be32 (option);
      flush_out ();
      exit (EXIT_SUCCESS);
    }
  }
  put_be64 (magic);
  put_be32 (option);
  put_be32 (type);
  put_be32 (length);
}

/* NBD_REP_ACK, with a stray payload if the scenario says so. */
static void
reply_ack (uint32_t option)
{
  if ((scenario->handshake_fault == HS_STRUCTURED_REPLY_ACK_DATA &&
       option == NBD_OPT_STRUCTURED_REPLY) ||
      (scenario->handshake_fault == HS_GO_ACK_DATA &&
       option == NBD_OPT_GO)) {
    option_reply (option, NBD_REP_ACK, 4);
    put_be32 (0);
  }
  else
    option_reply (option, NBD_REP_ACK, 0);
}

/* Reply to NBD_OPT_STRUCTURED_REPLY. */
static void
reply_structured_reply (uint32_t option)
{
  if (scenario->flags & SC_SIMPLE)
    option_reply (option, NBD_REP_ERR_UNSUP, 0);
  else if (scenario->handshake_fault == HS_STRUCTURED_REPLY_SERVER) {
    option_reply (option, NBD_REP_SERVER, 4 + 4);
    put_be32 (4);
    put ("disk", 4);
  }
  else {
    reply_ack (option);
    structured_replies = true;
  }
  flush_out ();
}

/* SC_META: the contexts selected for this session. */
static bool base_allocation_selected, dirty_bitmap_selected;

/* SC_META: answer NBD_OPT_SET_META_CONTEXT as a correct server does: a
 * META_CONTEXT reply for each query it knows (BASE_ALLOCATION,
 * DIRTY_BITMAP), then ACK.  The data: export name length (4), name,
 * number of queries (4), each query's length (4) and text.
 */
static void
select_contexts (uint32_t option, const unsigned char *data,
                 uint32_t length)
{
  uint32_t pos, name_length, nr_queries, query_length, i;

  if (length < 8 || (name_length = get_be (data, 4)) > length - 8)
    goto invalid;
  pos = 4 + name_length;
  nr_queries = get_be (data + pos, 4);
  pos += 4;
  for (i = 0; i < nr_queries; i++) {
    const char *query;

    if (length - pos < 4 ||
        (query_length = get_be (data + pos, 4)) > length - pos - 4)
      goto invalid;
    query = (const char *) data + pos + 4;
    pos += 4 + query_length;
    if (query_length == strlen (BASE_ALLOCATION) &&
        memcmp (query, BASE_ALLOCATION, query_length) == 0) {
      option_reply (option, NBD_REP_META_CONTEXT,
                    4 + strlen (BASE_ALLOCATION));
      put_be32 (BASE_ALLOCATION_ID);
      put (BASE_ALLOCATION, strlen (BASE_ALLOCATION));
      base_allocation_selected = true;
    }
    else if (query_length == strlen (DIRTY_BITMAP) &&
             memcmp (query, DIRTY_BITMAP, query_length) == 0) {
      option_reply (option, NBD_REP_META_CONTEXT, 4 + strlen (DIRTY_BITMAP));
      put_be32 (DIRTY_BITMAP_ID);
      put (DIRTY_BITMAP, strlen (DIRTY_BITMAP));
      dirty_bitmap_selected = true;
    }
  }
  if (pos != length)
    goto invalid;
  option_reply (option, NBD_REP_ACK, 0);
  flush_out ();
  return;

 invalid:
  out_len = 0;                  /* no META_CONTEXT reply before an error */
  base_allocation_selected = dirty_bitmap_selected = false;
  option_reply (option, NBD_REP_ERR_INVALID, 0);
  flush_out ();
}

/* Reply to NBD_OPT_SET_META_CONTEXT: no context, unless the scenario
 * selects one whatever the client asked for (or, SC_META, what it asked
 * for).
 */
static void
reply_meta_context (uint32_t option, const unsigned char *data,
                    uint32_t length)
{
  const char *name = NULL;

  if (scenario->flags & SC_META) {
    select_contexts (option, data, length);
    return;
  }

  switch (scenario->handshake_fault) {
  case HS_META_CONTEXT:
    name = "base:allocation";
    break;
  case HS_META_CONTEXT_OTHER_NAME:
    name = "base:allocation:extra";
    break;
  case HS_META_CONTEXT_ERROR:
    option_reply (option, NBD_REP_ERR_POLICY, 0);
    flush_out ();
    return;
  case HS_META_CONTEXT_SHORT:
    option_reply (option, NBD_REP_META_CONTEXT, 3);
    put_fill (0, 3);
    break;
  case HS_META_CONTEXT_TOO_MANY:
    for (int i = 0; i < META_CONTEXTS_TOO_MANY; i++) {
      char ctx[32];

      snprintf (ctx, sizeof ctx, "base:allocation:%d", i);
      option_reply (option, NBD_REP_META_CONTEXT, 4 + strlen (ctx));
      put_be32 (i + 1);
      put (ctx, strlen (ctx));
    }
    break;
  default:
    break;
  }
  if (name) {
    option_reply (option, NBD_REP_META_CONTEXT, 4 + strlen (name));
    put_be32 (1);
    put (name, strlen (name));
  }
  option_reply (option, NBD_REP_ACK, 0);
  flush_out ();
}

static void info_export (uint32_t option);

/* One NBD_REP_SERVER: name length, name, description. */
static void
reply_server (uint32_t option, const char *name, const char *description)
{
  option_reply (option, NBD_REP_SERVER,
                4 + strlen (name) + strlen (description));
  put_be32 (strlen (name));
  put (name, strlen (name));
  put (description, strlen (description));
}

/* Reply to NBD_OPT_LIST: two exports, or what the scenario says. */
static void
reply_list (uint32_t option)
{
  switch (scenario->handshake_fault) {
  case HS_LIST_NAME_BEYOND_PAYLOAD:
    option_reply (option, NBD_REP_SERVER, 4 + 4);
    put_be32 (100);
    put ("disk", 4);
    break;
  case HS_LIST_SHORT:
    option_reply (option, NBD_REP_SERVER, 3);
    put_fill (0, 3);
    break;
  case HS_LIST_NAME_TOO_LONG:
    option_reply (option, NBD_REP_SERVER, 4 + 5000);
    put_be32 (5000);
    put_fill ('x', 5000);
    break;
  case HS_LIST_OVERSIZED:
    option_reply (option, NBD_REP_SERVER, UINT32_C (1) << 30);
    put_be32 (4);
    put ("disk", 4);
    flush_out ();
    wait_for_eof ();
    break;
  case HS_LIST_INFO_REPLY:
    info_export (option);
    break;
  case HS_LIST_UNKNOWN_REPLY:
    option_reply (option, 0x63, 0);
    break;
  case HS_LIST_ERROR_AFTER_ONE:
    reply_server (option, "disk", "the whole export");
    option_reply (option, NBD_REP_ERR_POLICY, 0);
    flush_out ();
    return;
  case HS_LIST_MANY:
    for (int i = 0; i < LIST_MANY; i++) {
      char name[32];

      snprintf (name, sizeof name, "export-%d", i);
      reply_server (option, name, "");
    }
    break;
  case HS_LIST_CLOSE:
    exit (EXIT_SUCCESS);
  default:
    reply_server (option, "disk", "the whole export");
    reply_server (option, "spare", "");
    break;
  }
  option_reply (option, NBD_REP_ACK, 0);
  flush_out ();
}

/* Reply to NBD_OPT_LIST_META_CONTEXT: base:allocation, whatever the
 * queries, or what the scenario says.
 */
static void
reply_list_meta_context (uint32_t option)
{
  const char *name = "base:allocation";

  switch (scenario->handshake_fault) {
  case HS_META_LIST_SHORT:
    option_reply (option, NBD_REP_META_CONTEXT, 3);
    put_fill (0, 3);
    break;
  case HS_META_LIST_NAME_TOO_LONG:
    option_reply (option, NBD_REP_META_CONTEXT, 4 + 5000);
    put_be32 (0);
    put_fill ('m', 5000);
    break;
  case HS_META_LIST_SERVER_REPLY:
    reply_server (option, "disk", "");
    break;
  case HS_META_LIST_ERROR:
    option_reply (option, NBD_REP_ERR_UNSUP, 0);
    flush_out ();
    return;
  default:
    option_reply (option, NBD_REP_META_CONTEXT, 4 + strlen (name));
    put_be32 (0);
    put (name, strlen (name));
    break;
  }
  option_reply (option, NBD_REP_ACK, 0);
  flush_out ();
}

/* Refuse GO or INFO as the SC_GO_ERROR flags say. */
static void
refuse_info (uint32_t option)
{
  const char *msg = "bad-server: GO refused";
  uint32_t error = UINT32_C (1) << 31 |
    (scenario->flags & SC_GO_ERROR_MASK) >> 8;

  if (scenario->flags & SC_MESSAGE) {
    option_reply (option, error, strlen (msg));
    put (msg, strlen (msg));
  }
  else
    option_reply (option, error, 0);
  flush_out ();
}

/* NBD_INFO_EXPORT, or one of a wrong length. */
static void
info_export (uint32_t option)
{
  uint32_t length = 12;

  if (scenario->handshake_fault == HS_INFO_EXPORT_SHORT)
    length = 11;
  else if (scenario->handshake_fault == HS_INFO_EXPORT_LONG)
    length = 13;
  option_reply (option, NBD_REP_INFO, length);
  put_be16 (NBD_INFO_EXPORT);
  put_be64 (export_size ());
  if (length == 11)
    put_be (transmission_flags () >> 8, 1);
  else
    put_be16 (transmission_flags ());
  if (length == 13)
    put_fill (0, 1);
}

/* The INFO replies of the scenario that come before NBD_INFO_EXPORT. */
static void
extra_info (uint32_t option)
{
  size_t i;

  for (i = 0; i < sizeof block_sizes / sizeof block_sizes[0]; i++)
    if (block_sizes[i].fault == scenario->handshake_fault) {
      option_reply (option, NBD_REP_INFO, 14);
      put_be16 (NBD_INFO_BLOCK_SIZE);
      put_be32 (block_sizes[i].minimum);
      put_be32 (block_sizes[i].preferred);
      put_be32 (block_sizes[i].maximum);
    }

  switch (scenario->handshake_fault) {
  case HS_INFO_BLOCK_SIZE_SHORT:
    option_reply (option, NBD_REP_INFO, 13);
    put_be16 (NBD_INFO_BLOCK_SIZE);
    put_be32 (512);
    put_be32 (4096);
    put_fill (0, 3);            /* maximum cut short */
    break;
  case HS_INFO_EMPTY:
    option_reply (option, NBD_REP_INFO, 0);
    break;
  case HS_INFO_ONE_BYTE:
    option_reply (option, NBD_REP_INFO, 1);
    put_fill (0, 1);
    break;
  case HS_INFO_UNKNOWN_TYPE:
    option_reply (option, NBD_REP_INFO, 2 + 6);
    put_be16 (99);
    put_fill ('u', 6);
    break;
  default:
    break;
  }
}

/* Reply to NBD_OPT_INFO or NBD_OPT_GO; returns false if it was refused. */
static bool
reply_info (uint32_t option, const unsigned char *data, uint32_t length)
{
  uint32_t name_length, nr_requests;

  if (scenario->flags & SC_NO_GO) {
    option_reply (option, NBD_REP_ERR_UNSUP, 0);
    flush_out ();
    return false;
  }
  if (scenario->flags & SC_GO_ERROR_MASK) {
    refuse_info (option);
    return false;
  }

  /* name length (4), name, number of requests (2), requests (2 each) */
  if (length < 6 || (name_length = get_be (data, 4)) > length - 6)
    goto invalid;
  nr_requests = get_be (data + 4 + name_length, 2);
  if (6 + name_length + 2 * nr_requests != length)
    goto invalid;

  switch (scenario->handshake_fault) {
  case HS_OVERSIZED_REPLY:
    option_reply (option, NBD_REP_INFO, UINT32_C (1) << 30);
    put_be16 (NBD_INFO_NAME);
    put_fill ('x', 4096);
    flush_out ();
    wait_for_eof ();
    break;
  case HS_INFO_NAME_TOO_LONG:
    option_reply (option, NBD_REP_INFO, 2 + 5000);
    put_be16 (NBD_INFO_NAME);
    put_fill ('x', 5000);
    break;
  default:
    break;
  }

  extra_info (option);
  if (scenario->handshake_fault != HS_MISSING_INFO_EXPORT)
    info_export (option);
  reply_ack (option);
  flush_out ();
  return true;

 invalid:
  option_reply (option, NBD_REP_ERR_INVALID, 0);
  flush_out ();
  return false;
}

/* After a STARTTLS ACK: read the client's first TLS record (5-byte
 * header: content type 22, handshake, then version and length).  Returns
 * false if the client sent a plaintext option instead (put back for the
 * option loop to serve: the downgrade a client must never make).
 */
static bool
read_client_hello (void)
{
  unsigned char header[5];
  unsigned char *record;
  size_t length;

  read_all (header, sizeof header);
  if (get_be (header, 5) == NBD_OPTS_MAGIC >> 24) {
    fprintf (stderr, "bad-server: a plaintext option after STARTTLS\n");
    unread (header, sizeof header);
    return false;
  }
  if (header[0] != 22)
    fail ("the client's first bytes after STARTTLS are no TLS handshake");
  length = get_be (header + 3, 2);
  record = malloc (length);
  if (record == NULL)
    fail ("out of memory");
  read_all (record, length);
  free (record);
  return true;
}

/* Reply to NBD_OPT_STARTTLS as the scenario says.  Returns when the
 * option loop goes on in plaintext.
 */
static void
reply_starttls (uint32_t option)
{
  static const unsigned char garbage[] = "this is not a TLS record";

  switch (scenario->handshake_fault) {
  case HS_STARTTLS_ERR_POLICY:
    option_reply (option, NBD_REP_ERR_POLICY, 0);
    flush_out ();
    return;
  case HS_STARTTLS_INJECT:
    /* An NBD_REP_ACK to the GO the client has not sent yet. */
    option_reply (option, NBD_REP_ACK, 0);
    option_reply (NBD_OPT_GO, NBD_REP_ACK, 0);
    flush_out ();
    break;
  case HS_STARTTLS_CLOSE_IN_TLS:
  case HS_STARTTLS_HANG_IN_TLS:
  case HS_STARTTLS_GARBAGE:
    option_reply (option, NBD_REP_ACK, 0);
    flush_out ();
    break;
  default:                      /* HS_STARTTLS_ERR_UNSUP, and the rest */
    option_reply (option, NBD_REP_ERR_UNSUP, 0);
    flush_out ();
    return;
  }

  if (!read_client_hello ())
    return;
  switch (scenario->handshake_fault) {
  case HS_STARTTLS_CLOSE_IN_TLS:
    exit (EXIT_SUCCESS);
  case HS_STARTTLS_GARBAGE:
    /* A handshake record holding a whole ServerHello of garbage. */
    put_be (22, 1);             /* content type: handshake */
    put_be16 (0x0303);          /* TLS 1.2 */
    put_be16 (4 + sizeof garbage);
    put_be (2, 1);              /* handshake type: ServerHello */
    put_be (sizeof garbage, 3);
    put (garbage, sizeof garbage);
    flush_out ();
    break;
  default:
    break;
  }
  wait_for_eof ();
}

static void
handshake_oldstyle (void)
{
  put_be64 (NBD_MAGIC);
  put_be64 (NBD_OLDSTYLE_MAGIC);
  put_be64 (export_size ());
  put_be32 (transmission_flags ());
  put_fill (0, 124);
  flush_out ();
}

/* A greeting that goes wrong: a bad magic, or EOF in the middle. */
static void
bad_greeting (void)
{
  switch (scenario->handshake_fault) {
  case HS_BAD_GREETING_MAGIC:
    put ("NBDMAGIX", 8);
    put_be64 (NBD_OPTS_MAGIC);
    put_be16 (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    break;
  case HS_UNKNOWN_VERSION_MAGIC:
    put_be64 (NBD_MAGIC);
    put ("IHAVEOPU", 8);
    put_be16 (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    break;
  case HS_CLOSE_IN_GREETING:
    put_be64 (NBD_MAGIC);
    put ("IHAV", 4);
    flush_out ();
    exit (EXIT_SUCCESS);
  default:
    return;
  }
  flush_out ();
  wait_for_eof ();
}

static uint16_t
handshake_flags (void)
{
  switch (scenario->handshake_fault) {
  case HS_PLAIN_NEWSTYLE:
    return 0;
  case HS_NO_ZEROES_NOT_OFFERED:
    return NBD_FLAG_FIXED_NEWSTYLE;
  default:
    return NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES;
  }
}

static void
handshake_newstyle (void)
{
  unsigned char buf[16];
  unsigned char *data;
  uint32_t option, length, client_flags;

  bad_greeting ();
  put_be64 (NBD_MAGIC);
  put_be64 (NBD_OPTS_MAGIC);
  put_be16 (handshake_flags ());
  flush_out ();

  /* The client sets only flags the server offered. */
  read_all (buf, 4);
  client_flags = get_be (buf, 4);
  if (client_flags & ~handshake_flags ())
    fail ("client flags the server did not offer");
  no_zeroes = client_flags & NBD_FLAG_C_NO_ZEROES;

  for (;;) {
    read_all (buf, 16);
    if (scenario->handshake_fault == HS_CLOSE)
      exit (EXIT_SUCCESS);
    if (get_be (buf, 8) != NBD_OPTS_MAGIC)
      fail ("bad option magic from client");
    option = get_be (buf + 8, 4);
    length = get_be (buf + 12, 4);
    if (length > MAX_OPTION_LENGTH)
      fail ("option too long");
    data = malloc (length + 1);
    if (data == NULL)
      fail ("out of memory");
    read_all (data, length);

    /* A plain newstyle server knows no other option: it hangs up. */
    if (scenario->handshake_fault == HS_PLAIN_NEWSTYLE &&
        option != NBD_OPT_EXPORT_NAME)
      exit (EXIT_SUCCESS);

    switch (option) {
    case NBD_OPT_EXPORT_NAME:
      free (data);
      if (scenario->handshake_fault == HS_CLOSE_AFTER_EXPORT_NAME)
        exit (EXIT_SUCCESS);
      put_be64 (export_size ());
      put_be16 (transmission_flags ());
      if (!no_zeroes)
        put_fill (0, 124);
      flush_out ();
      return;
    case NBD_OPT_ABORT:
      option_reply (option, NBD_REP_ACK, 0);
      flush_out ();
      exit (EXIT_SUCCESS);
    case NBD_OPT_STARTTLS:
      reply_starttls (option);
      break;
    case NBD_OPT_STRUCTURED_REPLY:
      reply_structured_reply (option);
      break;
    case NBD_OPT_SET_META_CONTEXT:
      reply_meta_context (option, data, length);
      break;
    case NBD_OPT_LIST:
      reply_list (option);
      break;
    case NBD_OPT_LIST_META_CONTEXT:
      reply_list_meta_context (option);
      break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
      if (reply_info (option, data, length) && option == NBD_OPT_GO) {
        free (data);
        return;
      }
      break;
    default:
      option_reply (option, NBD_REP_ERR_UNSUP, 0);
      flush_out ();
    }
    free (data);
  }
}

/* Reply pieces for transmission. */

static void
simple_reply (uint32_t error, uint64_t cookie)
{
  put_be32 (NBD_SIMPLE_REPLY_MAGIC);
  put_be32 (error);
  put_be64 (cookie);
}

static void
chunk_header (uint16_t flags, uint16_t type, uint64_t cookie,
              uint32_t length)
{
  put_be32 (NBD_STRUCTURED_REPLY_MAGIC);
  put_be16 (flags);
  put_be16 (type);
  put_be64 (cookie);
  put_be32 (length);
}

static void
data_chunk (uint16_t flags, uint64_t cookie, uint64_t offset, uint32_t count)
{
  chunk_header (flags, NBD_REPLY_TYPE_OFFSET_DATA, cookie, 8 + count);
  put_be64 (offset);
  put_pattern (offset, count);
}

static void
hole_chunk (uint16_t flags, uint64_t cookie, uint64_t offset, uint32_t count)
{
  chunk_header (flags, NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12);
  put_be64 (offset);
  put_be32 (count);
}

static void
none_chunk (uint16_t flags, uint64_t cookie)
{
  chunk_header (flags, NBD_REPLY_TYPE_NONE, cookie, 0);
}

static void
error_chunk (uint16_t flags, uint16_t type, uint64_t cookie, uint32_t error,
             const char *msg)
{
  chunk_header (flags, type, cookie, 6 + strlen (msg));
  put_be32 (error);
  put_be16 (strlen (msg));
  put (msg, strlen (msg));
}

/* Correct replies. */

static void
reply_error (const struct request *req, uint32_t error)
{
  if (structured_replies)
    error_chunk (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
                 error, "bad-server: request refused");
  else
    simple_reply (error, req->cookie);
  flush_out ();
}

/* Without DF, the data goes in two chunks, the second half first, so that
 * clients are seen to place chunks by their offset.
 */
static void
reply_read (const struct request *req)
{
  uint32_t half = req->count / 2;

  if (!structured_replies) {
    simple_reply (0, req->cookie);
    put_pattern (req->offset, req->count);
  }
  else if (req->count == 0)
    none_chunk (NBD_REPLY_FLAG_DONE, req->cookie);
  else if (req->count < 16 || (req->flags & NBD_CMD_FLAG_DF))
    data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  else {
    data_chunk (0, req->cookie, req->offset + half, req->count - half);
    data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, half);
  }
  flush_out ();
}

/* Misbehaviours on the first READ.  They assume a request of at least 32
 * bytes at an offset of at least 8, as the tests send.
 */

static void
close_before_reply (const struct request *req)
{
  exit (EXIT_SUCCESS);
}

static void
close_mid_data (const struct request *req)
{
  if (structured_replies) {
    chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                  req->cookie, 8 + req->count);
    put_be64 (req->offset);
  }
  else
    simple_reply (0, req->cookie);
  put_pattern (req->offset, req->count / 2);
  flush_out ();
  exit (EXIT_SUCCESS);
}

static void
bad_magic (const struct request *req)
{
  put_be32 (0xdeadbeef);
  put_be16 (NBD_REPLY_FLAG_DONE);
  put_be16 (NBD_REPLY_TYPE_OFFSET_DATA);
  put_be64 (req->cookie);
  put_be32 (8 + req->count);
  put_be64 (req->offset);
  put_pattern (req->offset, req->count);
  flush_out ();
}

static void
unknown_cookie (const struct request *req)
{
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie + 1000000, req->offset,
              req->count);
  flush_out ();
}

/* The read answered in full, then, in the same write, one more chunk for
 * its cookie: a hole over the whole request, with DONE.  The client reads
 * both before its caller can retire the read, so the cookie is known but
 * no longer in flight.  The reply is small enough to arrive at once.
 */
static void
chunk_after_done (const struct request *req)
{
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  hole_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  flush_out ();
}

static void
chunk_outside (const struct request *req)
{
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset - 8, req->count);
  flush_out ();
}

static void
chunk_past_end (const struct request *req)
{
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset + 8, req->count);
  flush_out ();
}

static void
hole_outside (const struct request *req)
{
  hole_chunk (0, req->cookie, req->offset + req->count, 4096);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  flush_out ();
}

static void
chunk_overlap (const struct request *req)
{
  uint32_t half = req->count / 2;

  data_chunk (0, req->cookie, req->offset, half + 8);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset + half,
              req->count - half);
  flush_out ();
}

/* The lengths add up to the request, but the last 8 bytes are missing. */
static void
overlap_sums_to_length (const struct request *req)
{
  uint32_t half = req->count / 2;

  data_chunk (0, req->cookie, req->offset, half + 8);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset + half,
              req->count - half - 8);
  flush_out ();
}

/* The upper chunk first, then a lower one running 8 bytes into it: the
 * lengths add up to the request, but its last 8 bytes are missing.  A
 * client that checks an overlap only against chunks at lower offsets
 * returns them unwritten.
 */
static void
chunk_overlap_right (const struct request *req)
{
  uint32_t half = req->count / 2;

  data_chunk (0, req->cookie, req->offset + half, req->count - half - 8);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, half + 8);
  flush_out ();
}

/* As chunk-overlap-right, with a hole for the lower part: a lenient
 * client zeroes 8 bytes of data and leaves the last 8 unwritten.
 */
static void
hole_overlap_right (const struct request *req)
{
  uint32_t half = req->count / 2;

  data_chunk (0, req->cookie, req->offset + half, req->count - half - 8);
  hole_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, half + 8);
  flush_out ();
}

/* A hole over the first 8 bytes of data: a lenient client returns zeros. */
static void
data_hole_overlap (const struct request *req)
{
  data_chunk (0, req->cookie, req->offset, req->count);
  hole_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, 8);
  flush_out ();
}

static void
short_coverage (const struct request *req)
{
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset,
              req->count / 2);
  flush_out ();
}

static void
two_data_chunks (const struct request *req)
{
  uint32_t half = req->count / 2;

  data_chunk (0, req->cookie, req->offset + half, req->count - half);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, half);
  flush_out ();
}

/* With DF the server may send one content chunk only: a hole and data,
 * or two holes, break that even though they cover the request.
 */
static void
df_hole_and_data (const struct request *req)
{
  uint32_t half = req->count / 2;

  hole_chunk (0, req->cookie, req->offset, half);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset + half,
              req->count - half);
  flush_out ();
}

static void
df_two_holes (const struct request *req)
{
  uint32_t half = req->count / 2;

  hole_chunk (0, req->cookie, req->offset + half, req->count - half);
  hole_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, half);
  flush_out ();
}

static void
none_not_alone (const struct request *req)
{
  data_chunk (0, req->cookie, req->offset, req->count);
  none_chunk (NBD_REPLY_FLAG_DONE, req->cookie);
  flush_out ();
}

static void
none_without_done (const struct request *req)
{
  none_chunk (0, req->cookie);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  flush_out ();
}

/* The message length (20) runs past the payload (6 + 10). */
static void
error_bad_length (const struct request *req)
{
  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
                6 + 10);
  put_be32 (NBD_EIO);
  put_be16 (20);
  put ("0123456789", 10);
  flush_out ();
}

static void
error_zero (const struct request *req)
{
  error_chunk (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie, 0,
               "error chunk with error 0");
  flush_out ();
}

static void
error_eio (const struct request *req)
{
  error_chunk (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
               NBD_EIO, "bad-server: hostile EIO");
  flush_out ();
}

/* The other error values of the spec ("Error values"), and one it does
 * not define, which a client treats as EINVAL.
 */
#define ERROR_VALUE_FAULT(fn, value)                                    \
  static void                                                           \
  fn (const struct request *req)                                        \
  {                                                                     \
    error_chunk (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie, \
                 value, "bad-server: error " #value);                   \
    flush_out ();                                                       \
  }

ERROR_VALUE_FAULT (error_eperm, 1)
ERROR_VALUE_FAULT (error_enomem, 12)
ERROR_VALUE_FAULT (error_einval, 22)
ERROR_VALUE_FAULT (error_enospc, 28)
ERROR_VALUE_FAULT (error_eoverflow, 75)
ERROR_VALUE_FAULT (error_enotsup, 95)
ERROR_VALUE_FAULT (error_eshutdown, 108)
ERROR_VALUE_FAULT (error_undefined, 99)

static void
error_long_message (const struct request *req)
{
  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
                6 + 5000);
  put_be32 (NBD_EIO);
  put_be16 (5000);
  put_fill ('m', 5000);
  flush_out ();
}

/* A message just over the 4096-byte limit that still fits the payload. */
static void
error_message_4100 (const struct request *req)
{
  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
                6 + 4100);
  put_be32 (NBD_EIO);
  put_be16 (4100);
  put_fill ('m', 4100);
  flush_out ();
}

/* Correct: data for the whole request, then an error inside it. */
static void
error_offset_eio (const struct request *req)
{
  const char *msg = "bad-server: hostile EIO at an offset";

  data_chunk (0, req->cookie, req->offset, req->count);
  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR_OFFSET,
                req->cookie, 6 + strlen (msg) + 8);
  put_be32 (NBD_EIO);
  put_be16 (strlen (msg));
  put (msg, strlen (msg));
  put_be64 (req->offset + 8);
  flush_out ();
}

static void
error_offset_outside (const struct request *req)
{
  const char *msg = "error offset outside the request";

  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR_OFFSET,
                req->cookie, 6 + strlen (msg) + 8);
  put_be32 (NBD_EIO);
  put_be16 (strlen (msg));
  put (msg, strlen (msg));
  put_be64 (req->offset + req->count + 4096);
  flush_out ();
}

/* Seconds since an arbitrary fixed point. */
static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Error chunks without DONE as fast as the client takes them, for a few
 * seconds (longer under valgrind: $NBDC_SLOWDOWN), then one with DONE.
 * Each is well-formed; together they try to keep the client in nbd_poll.
 */
static void
error_stream (const struct request *req)
{
  const char *slowdown = getenv ("NBDC_SLOWDOWN");
  double end = now () + ERROR_STREAM_SECONDS *
    (slowdown && atoi (slowdown) > 1 ? atoi (slowdown) : 1);
  int sndbuf = 4 * 1024 * 1024;
  unsigned i;

  /* Short chunks, built once and written again and again into a large
   * socket buffer, so that the socket stays full however fast the client
   * reads.
   */
  (void) setsockopt (out_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  for (i = 0; i < 65536; i++)
    error_chunk (0, NBD_REPLY_TYPE_ERROR, req->cookie, NBD_EIO, "");
  while (now () < end)
    write_all (out_buf, out_len);
  out_len = 0;
  error_chunk (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
               NBD_EIO, "bad-server: the last error");
  flush_out ();
}

static void
unknown_chunk_type (const struct request *req)
{
  chunk_header (0, 77, req->cookie, 8);
  put_be64 (0);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  flush_out ();
}

static void
unknown_error_type (const struct request *req)
{
  error_chunk (NBD_REPLY_FLAG_DONE, 1 << 15 | 77, req->cookie, NBD_EPERM,
               "bad-server: unknown error type 0x804d");
  flush_out ();
}

static void
huge_length (const struct request *req)
{
  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                req->cookie, UINT32_C (0xffffffff));
  put_be64 (req->offset);
  put_pattern (req->offset, req->count);
  flush_out ();
}

static void
data_empty (const struct request *req)
{
  chunk_header (0, NBD_REPLY_TYPE_OFFSET_DATA, req->cookie, 8);
  put_be64 (req->offset);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  flush_out ();
}

/* A hole over the whole request, with 4 stray bytes in the payload. */
static void
hole_bad_length (const struct request *req)
{
  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_HOLE,
                req->cookie, 16);
  put_be64 (req->offset);
  put_be32 (req->count);
  put_be32 (0);
  flush_out ();
}

static void
hole_zero (const struct request *req)
{
  hole_chunk (0, req->cookie, req->offset, 0);
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  flush_out ();
}

static void
block_status_for_read (const struct request *req)
{
  chunk_header (0, NBD_REPLY_TYPE_BLOCK_STATUS, req->cookie, 12);
  put_be32 (1);                 /* context id */
  put_be32 (req->count);        /* extent length */
  put_be32 (0);                 /* status flags */
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  flush_out ();
}

static void
simple_data_when_structured (const struct request *req)
{
  simple_reply (0, req->cookie);
  put_pattern (req->offset, req->count);
  flush_out ();
}

static void
simple_error_when_structured (const struct request *req)
{
  simple_reply (NBD_EIO, req->cookie);
  flush_out ();
}

static void
structured_when_simple (const struct request *req)
{
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, req->count);
  flush_out ();
}

/* The read in pieces of piece bytes, as data chunks: every other piece
 * from the last downwards (each before all the others, with a gap after
 * it), then the rest from the first upwards, each closing a gap.  The
 * client's record of what the chunks covered grows to half the pieces,
 * then merges back into one range.
 */
static void
fragment (const struct request *req, uint32_t piece)
{
  uint32_t n = req->count / piece, i;

  for (i = (n - 1) & ~UINT32_C (1); ; i -= 2) {
    data_chunk (0, req->cookie, req->offset + (uint64_t) i * piece, piece);
    if (i == 0)
      break;
  }
  for (i = 1; i < n; i += 2)
    data_chunk (i + 2 >= n ? NBD_REPLY_FLAG_DONE : 0, req->cookie,
                req->offset + (uint64_t) i * piece, piece);
  flush_out ();
}

/* 64 pieces: up to 32 disjoint ranges. */
static void
fragmented (const struct request *req)
{
  fragment (req, req->count / 64);
}

/* As fragmented, but once the 32 even pieces are in, piece 61 comes 8
 * bytes late, running into piece 62 (the first one sent, which the client
 * has moved and copied as its record grew); piece 61's first 8 bytes
 * never come.  The lengths add up to the request.
 */
static void
fragmented_overlap (const struct request *req)
{
  uint32_t piece = req->count / 64, i;

  for (i = 62; ; i -= 2) {
    data_chunk (0, req->cookie, req->offset + i * piece, piece);
    if (i == 0)
      break;
  }
  data_chunk (0, req->cookie, req->offset + 61 * piece + 8, piece);
  for (i = 1; i < 64; i += 2)
    if (i != 61)
      data_chunk (i == 63 ? NBD_REPLY_FLAG_DONE : 0, req->cookie,
                  req->offset + i * piece, piece);
  flush_out ();
}

/* 2-byte pieces of the 16 KiB read: 4096 disjoint ranges, the most a
 * client tracks (libnbdc's MAX_RANGES).
 */
static void
fragmented_max (const struct request *req)
{
  fragment (req, 2);
}

/* 1-byte pieces: 8192 disjoint ranges, more than a client tracks. */
static void
too_fragmented (const struct request *req)
{
  fragment (req, 1);
}

/* ----- Block status and writes (SC_META, SC_WRITABLE) ----- */

/* A BLOCK_STATUS chunk: a context id and n descriptors, each a length and
 * status flags (entries[2 * i], entries[2 * i + 1]).
 */
static void
extents_chunk (uint16_t flags, uint64_t cookie, uint32_t context_id,
               size_t n, const uint32_t *entries)
{
  size_t i;

  chunk_header (flags, NBD_REPLY_TYPE_BLOCK_STATUS, cookie, 4 + 8 * n);
  put_be32 (context_id);
  for (i = 0; i < 2 * n; i++)
    put_be32 (entries[i]);
}

/* A correct reply: for base:allocation four descriptors of lengths no
 * byte swap leaves alike, the last running to the request end (one with
 * REQ_ONE, cut at the request end); for the dirty bitmap two halves.  One
 * chunk per selected context, DONE on the last.
 */
static void
reply_block_status (const struct request *req)
{
  uint32_t base[8] = {
    4096, NBD_STATE_HOLE | NBD_STATE_ZERO,
    8192, 0,
    512, NBD_STATE_ZERO,
    0, NBD_STATE_HOLE,          /* the rest of the request */
  };
  uint32_t dirty[4] = {
    req->count / 2, 1,
    req->count - req->count / 2, 0,
  };
  size_t n = 4;

  if (req->count <= 4096 + 8192 + 512 ||
      (req->flags & NBD_CMD_FLAG_REQ_ONE)) {
    base[0] = req->count < 4096 ? req->count : 4096;
    n = 1;
  }
  else
    base[6] = req->count - (4096 + 8192 + 512);
  if (base_allocation_selected)
    extents_chunk (dirty_bitmap_selected ? 0 : NBD_REPLY_FLAG_DONE,
                   req->cookie, BASE_ALLOCATION_ID, n, base);
  if (dirty_bitmap_selected)
    extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, DIRTY_BITMAP_ID,
                   req->flags & NBD_CMD_FLAG_REQ_ONE ? 1 : 2, dirty);
  flush_out ();
}

static void
answer_block_status (const struct request *req)
{
  static bool first = true;

  /* NBD spec, NBD_CMD_BLOCK_STATUS: a client MUST NOT send it unless a
   * context was selected.  Close, so that the test sees the handle go.
   */
  if (!base_allocation_selected && !dirty_bitmap_selected)
    exit (EXIT_SUCCESS);
  if (first && scenario->command_fault && claim_fault ())
    scenario->command_fault (req);
  else
    reply_block_status (req);
  first = false;
}

/* A write's payload has been read. */
static void
answer_write (const struct request *req)
{
  static bool first = true;

  if (first && scenario->command_fault && claim_fault ())
    scenario->command_fault (req);
  else if (structured_replies) {
    none_chunk (NBD_REPLY_FLAG_DONE, req->cookie);
    flush_out ();
  }
  else {
    simple_reply (0, req->cookie);
    flush_out ();
  }
  first = false;
}

/* Misbehaviours on the first BLOCK_STATUS.  Offsets are relative to the
 * request, which the tests send as hostile-replies.c says.
 */

/* A descriptor of length 0 between two good ones. */
static void
bs_zero_length (const struct request *req)
{
  const uint32_t e[] = { 4096, 0, 0, 0, 8192, NBD_STATE_HOLE };

  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, BASE_ALLOCATION_ID, 3, e);
  flush_out ();
}

/* For a request of the last 8 KiB: 4 KiB, then 8 KiB crossing the end of
 * the export.  The spec says nothing of the export end; the client cuts
 * the extent there.  Then NONE with DONE.
 */
static void
bs_cut_at_end (const struct request *req)
{
  const uint32_t e[] = { 4096, 0, 8192, NBD_STATE_HOLE };

  extents_chunk (0, req->cookie, BASE_ALLOCATION_ID, 2, e);
  none_chunk (NBD_REPLY_FLAG_DONE, req->cookie);
  flush_out ();
}

/* For a request running past the end of the export (the client lifted
 * LIBNBD_STRICT_BOUNDS): 4 KiB up to the end, then 4 KiB starting there,
 * inside the request.
 */
static void
bs_past_export_end (const struct request *req)
{
  const uint32_t e[] = { 4096, 0, 4096, NBD_STATE_HOLE };

  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, BASE_ALLOCATION_ID, 2, e);
  flush_out ();
}

/* The first descriptor covers the request; a second one follows. */
static void
bs_past_request (const struct request *req)
{
  const uint32_t e[] = { req->count, 0, 4096, NBD_STATE_HOLE };

  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, BASE_ALLOCATION_ID, 2, e);
  flush_out ();
}

/* Correct: the last descriptor runs 4 KiB past the request end. */
static void
bs_last_past_request (const struct request *req)
{
  const uint32_t e[] = { 4096, 0, req->count, NBD_STATE_HOLE };

  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, BASE_ALLOCATION_ID, 2, e);
  flush_out ();
}

/* Correct: one descriptor for the first 4 KiB of the request only. */
static void
bs_short (const struct request *req)
{
  const uint32_t e[] = { 4096, NBD_STATE_HOLE | NBD_STATE_ZERO };

  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, BASE_ALLOCATION_ID, 1, e);
  flush_out ();
}

static void
bs_unknown_context (const struct request *req)
{
  const uint32_t e[] = { req->count, 0 };

  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, UNKNOWN_CONTEXT_ID, 1, e);
  flush_out ();
}

/* Two descriptors although the request (REQ_ONE) asked for one. */
static void
bs_req_one_two (const struct request *req)
{
  const uint32_t e[] = { 4096, 0, 4096, NBD_STATE_HOLE };

  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, BASE_ALLOCATION_ID, 2, e);
  flush_out ();
}

/* One descriptor, 4 KiB longer than the (REQ_ONE) request. */
static void
bs_req_one_long (const struct request *req)
{
  const uint32_t e[] = { req->count + 4096, 0 };

  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, BASE_ALLOCATION_ID, 1, e);
  flush_out ();
}

/* n descriptors of 1 byte, status flags i & 3, in one chunk. */
static void
many_extents (const struct request *req, uint32_t n)
{
  uint32_t i;

  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
                req->cookie, 4 + UINT32_C (8) * n);
  put_be32 (BASE_ALLOCATION_ID);
  for (i = 0; i < n; i++) {
    put_be32 (1);
    put_be32 (i & 3);
  }
  flush_out ();
}

/* 2^20 descriptors: the most a client must take (a chunk of 8 MiB + 4). */
static void
bs_max_extents (const struct request *req)
{
  many_extents (req, MANY_EXTENTS);
}

/* One more than that: valid but for the client's cap. */
static void
bs_too_many_extents (const struct request *req)
{
  many_extents (req, MANY_EXTENTS + 1);
}

/* A payload of the context id alone, then a correct chunk. */
static void
bs_no_descriptors (const struct request *req)
{
  chunk_header (0, NBD_REPLY_TYPE_BLOCK_STATUS, req->cookie, 4);
  put_be32 (BASE_ALLOCATION_ID);
  reply_block_status (req);
}

/* A payload of 4 + 8 + 3 bytes: a descriptor and 3 stray bytes. */
static void
bs_bad_length (const struct request *req)
{
  chunk_header (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
                req->cookie, 4 + 8 + 3);
  put_be32 (BASE_ALLOCATION_ID);
  put_be32 (req->count);
  put_be32 (0);
  put_fill (0, 3);
  flush_out ();
}

/* OFFSET_DATA in reply to a block status request. */
static void
bs_data_chunk (const struct request *req)
{
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, 512);
  flush_out ();
}

/* A simple reply with no error although structured replies are on: block
 * status succeeds only with BLOCK_STATUS chunks.
 */
static void
bs_simple_reply (const struct request *req)
{
  simple_reply (0, req->cookie);
  flush_out ();
}

static void
bs_simple_error (const struct request *req)
{
  simple_reply (NBD_EIO, req->cookie);
  flush_out ();
}

static void
bs_error_chunk (const struct request *req)
{
  error_chunk (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
               NBD_EIO, "bad-server: block status EIO");
  flush_out ();
}

/* Success with no BLOCK_STATUS chunk at all: only NONE. */
static void
bs_none_only (const struct request *req)
{
  none_chunk (NBD_REPLY_FLAG_DONE, req->cookie);
  flush_out ();
}

/* Two base:allocation chunks for one request: data, then hole. */
static void
bs_two_chunks (const struct request *req)
{
  const uint32_t data[] = { req->count, 0 };
  const uint32_t hole[] = { req->count, NBD_STATE_HOLE | NBD_STATE_ZERO };

  extents_chunk (0, req->cookie, BASE_ALLOCATION_ID, 1, data);
  extents_chunk (NBD_REPLY_FLAG_DONE, req->cookie, BASE_ALLOCATION_ID, 1,
                 hole);
  flush_out ();
}

/* The base:allocation chunk, then an ERROR chunk with DONE. */
static void
bs_extents_then_error (const struct request *req)
{
  const uint32_t e[] = { req->count, 0 };

  extents_chunk (0, req->cookie, BASE_ALLOCATION_ID, 1, e);
  error_chunk (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
               NBD_EIO, "bad-server: EIO after the extents");
  flush_out ();
}

/* Misbehaviours on the first WRITE (SC_WRITABLE). */

static void
write_error_chunk (const struct request *req)
{
  error_chunk (NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->cookie,
               NBD_EIO, "bad-server: write EIO");
  flush_out ();
}

/* Allowed: a simple reply to a write, with structured replies on. */
static void
write_simple_reply (const struct request *req)
{
  simple_reply (0, req->cookie);
  flush_out ();
}

static void
write_data_chunk (const struct request *req)
{
  data_chunk (NBD_REPLY_FLAG_DONE, req->cookie, req->offset, 512);
  flush_out ();
}

/* Rows list the first five fields; command_fault is named where a row
 * needs it.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct scenario scenarios[] = {
  /* name, description, flags, handshake fault, first READ fault */
  { "good",
    "correct structured replies (two data chunks, or one with DF)",
    0, HS_NONE, NULL },
  { "good-simple",
    "refuses structured replies, correct simple replies",
    SC_SIMPLE, HS_NONE, NULL },
  { "df-without-structured",
    "refuses structured replies but advertises SEND_DF",
    SC_SIMPLE, HS_DF_WITHOUT_SR, NULL },
  { "good-no-go",
    "refuses GO, so the client must use EXPORT_NAME",
    SC_NO_GO, HS_NONE, NULL },
  { "oldstyle",
    "a correct oldstyle server",
    SC_OLDSTYLE, HS_NONE, NULL },
  { "close-before-reply",
    "closes after reading the READ request",
    0, HS_NONE, close_before_reply },
  { "close-mid-data",
    "sends half the data, then closes",
    0, HS_NONE, close_mid_data },
  { "bad-magic",
    "reply with a wrong magic",
    0, HS_NONE, bad_magic },
  { "unknown-cookie",
    "reply to a cookie never sent",
    0, HS_NONE, unknown_cookie },
  { "chunk-after-done",
    "the data with DONE, then a hole chunk with DONE for the same cookie",
    0, HS_NONE, chunk_after_done },
  { "chunk-outside",
    "data chunk starting before the request",
    0, HS_NONE, chunk_outside },
  { "chunk-past-end",
    "data chunk running past the request end",
    0, HS_NONE, chunk_past_end },
  { "hole-outside",
    "hole chunk after the request end",
    0, HS_NONE, hole_outside },
  { "chunk-overlap",
    "two overlapping data chunks covering the request",
    0, HS_NONE, chunk_overlap },
  { "overlap-sums-to-length",
    "overlapping data chunks adding up to the request length, "
    "leaving its last 8 bytes uncovered",
    0, HS_NONE, overlap_sums_to_length },
  { "chunk-overlap-right",
    "data for the upper half but its last 8 bytes, then data for the lower "
    "half and 8 bytes more", 0, HS_NONE, chunk_overlap_right },
  { "hole-overlap-right",
    "data for the upper half but its last 8 bytes, then a hole for the "
    "lower half and 8 bytes more", 0, HS_NONE, hole_overlap_right },
  { "data-hole-overlap",
    "a hole chunk over part of a data chunk",
    0, HS_NONE, data_hole_overlap },
  { "short-coverage",
    "chunks cover half the request, then DONE",
    0, HS_NONE, short_coverage },
  { "df-two-data",
    "two data chunks although the client sent DF",
    0, HS_NONE, two_data_chunks },
  { "df-hole-and-data",
    "a hole chunk and a data chunk although the client sent DF",
    0, HS_NONE, df_hole_and_data },
  { "df-two-holes",
    "two hole chunks although the client sent DF",
    0, HS_NONE, df_two_holes },
  { "none-not-alone",
    "a data chunk, then a NONE chunk with DONE",
    0, HS_NONE, none_not_alone },
  { "none-without-done",
    "a NONE chunk without DONE, then the data",
    0, HS_NONE, none_without_done },
  { "error-bad-length",
    "error message length runs past the payload",
    0, HS_NONE, error_bad_length },
  { "error-zero",
    "error chunk with error value 0",
    0, HS_NONE, error_zero },
  { "error-eio",
    "a well-formed EIO error chunk",
    0, HS_NONE, error_eio },
  { "error-eperm", "an error chunk with error 1 (EPERM)",
    0, HS_NONE, error_eperm },
  { "error-enomem", "an error chunk with error 12 (ENOMEM)",
    0, HS_NONE, error_enomem },
  { "error-einval", "an error chunk with error 22 (EINVAL)",
    0, HS_NONE, error_einval },
  { "error-enospc", "an error chunk with error 28 (ENOSPC)",
    0, HS_NONE, error_enospc },
  { "error-eoverflow", "an error chunk with error 75 (EOVERFLOW)",
    0, HS_NONE, error_eoverflow },
  { "error-enotsup", "an error chunk with error 95 (ENOTSUP)",
    0, HS_NONE, error_enotsup },
  { "error-eshutdown", "an error chunk with error 108 (ESHUTDOWN)",
    0, HS_NONE, error_eshutdown },
  { "error-undefined", "an error chunk with error 99, which the spec "
    "does not define", 0, HS_NONE, error_undefined },
  { "error-long-message",
    "error chunk with a 5000-byte message",
    0, HS_NONE, error_long_message },
  { "error-message-4100",
    "error chunk with a 4100-byte message that fits its payload",
    0, HS_NONE, error_message_4100 },
  { "error-offset-eio",
    "data, then a well-formed ERROR_OFFSET (EIO) inside the request",
    0, HS_NONE, error_offset_eio },
  { "error-offset-outside",
    "ERROR_OFFSET with an offset outside the request",
    0, HS_NONE, error_offset_outside },
  { "error-stream",
    "EIO error chunks without DONE for seconds, then one with DONE",
    0, HS_NONE, error_stream },
  { "unknown-chunk-type",
    "a chunk of non-error type 77, then the data",
    0, HS_NONE, unknown_chunk_type },
  { "unknown-error-type",
    "a well-formed error chunk of type 0x804d (EPERM)",
    0, HS_NONE, unknown_error_type },
  { "huge-length",
    "data chunk with payload length 0xffffffff",
    0, HS_NONE, huge_length },
  { "data-empty",
    "data chunk with no data (payload length 8)",
    0, HS_NONE, data_empty },
  { "hole-bad-length",
    "hole chunk with payload length 16",
    0, HS_NONE, hole_bad_length },
  { "hole-zero",
    "hole chunk of length 0, then the data",
    0, HS_NONE, hole_zero },
  { "block-status-for-read",
    "a BLOCK_STATUS chunk, then the data",
    0, HS_NONE, block_status_for_read },
  { "simple-data-when-structured",
    "simple reply with data although structured replies are on",
    0, HS_NONE, simple_data_when_structured },
  { "simple-error-when-structured",
    "simple EIO reply with structured replies on (allowed)",
    0, HS_NONE, simple_error_when_structured },
  { "structured-when-simple",
    "structured chunk although structured replies were refused",
    SC_SIMPLE, HS_NONE, structured_when_simple },
  { "fragmented",
    "64 data chunks, every other one first: gaps filled later",
    0, HS_NONE, fragmented },
  { "fragmented-overlap",
    "as fragmented, one chunk overlapping the first one sent",
    0, HS_NONE, fragmented_overlap },
  { "fragmented-max",
    "2-byte data chunks, every other one first: 4096 gaps",
    0, HS_NONE, fragmented_max },
  { "too-fragmented",
    "1-byte data chunks, every other one first: 8192 gaps",
    0, HS_NONE, too_fragmented },
  { "many-in-flight",
    "reads nothing for 1.5 s, then answers in batches, newest first",
    SC_BATCH, HS_NONE, NULL },
  { "many-in-flight-simple",
    "as many-in-flight, with simple replies",
    SC_BATCH | SC_SIMPLE, HS_NONE, NULL },

  /* Block status (SC_META: base:allocation and a dirty bitmap when
   * asked for) and writes (SC_WRITABLE): the fault is in the reply to the
   * first BLOCK_STATUS or WRITE.
   */
  { "bs-good",
    "correct block status: one chunk per context, 4 descriptors",
    SC_META, HS_NONE, NULL },
  { "bs-no-context",
    "selects no meta context; closes on a BLOCK_STATUS request",
    0, HS_NONE, NULL },
  { "bs-zero-length",
    "a block status descriptor of length 0",
    SC_META, HS_NONE, .command_fault = bs_zero_length },
  { "bs-cut-at-end",
    "a descriptor crossing the end of the export, then NONE",
    SC_META, HS_NONE, .command_fault = bs_cut_at_end },
  { "bs-past-export-end",
    "a descriptor starting at the end of the export, inside the request",
    SC_META, HS_NONE, .command_fault = bs_past_export_end },
  { "bs-past-request",
    "a descriptor starting at the end of the request",
    SC_META, HS_NONE, .command_fault = bs_past_request },
  { "bs-last-past-request",
    "the last descriptor running past the end of the request",
    SC_META, HS_NONE, .command_fault = bs_last_past_request },
  { "bs-short",
    "descriptors covering only the start of the request",
    SC_META, HS_NONE, .command_fault = bs_short },
  { "bs-unknown-context",
    "a BLOCK_STATUS chunk for a context id never selected",
    SC_META, HS_NONE, .command_fault = bs_unknown_context },
  { "bs-req-one-two",
    "two descriptors for a REQ_ONE request",
    SC_META, HS_NONE, .command_fault = bs_req_one_two },
  { "bs-req-one-long",
    "one descriptor longer than a REQ_ONE request",
    SC_META, HS_NONE, .command_fault = bs_req_one_long },
  { "bs-max-extents",
    "2^20 descriptors of 1 byte in one chunk (8 MiB export)",
    SC_META | SC_BIG_EXPORT, HS_NONE, .command_fault = bs_max_extents },
  { "bs-too-many-extents",
    "2^20 + 1 descriptors of 1 byte in one chunk (8 MiB export)",
    SC_META | SC_BIG_EXPORT, HS_NONE,
    .command_fault = bs_too_many_extents },
  { "bs-no-descriptors",
    "a BLOCK_STATUS payload of 4 bytes, then a correct chunk",
    SC_META, HS_NONE, .command_fault = bs_no_descriptors },
  { "bs-bad-length",
    "a BLOCK_STATUS payload of 15 bytes",
    SC_META, HS_NONE, .command_fault = bs_bad_length },
  { "bs-data-chunk",
    "an OFFSET_DATA chunk in reply to block status",
    SC_META, HS_NONE, .command_fault = bs_data_chunk },
  { "bs-simple-reply",
    "a simple reply without error to block status, structured replies on",
    SC_META, HS_NONE, .command_fault = bs_simple_reply },
  { "bs-simple-error",
    "a simple EIO reply to block status, structured replies on",
    SC_META, HS_NONE, .command_fault = bs_simple_error },
  { "bs-error-chunk",
    "an EIO error chunk in reply to block status",
    SC_META, HS_NONE, .command_fault = bs_error_chunk },
  { "bs-extents-then-error",
    "a correct BLOCK_STATUS chunk, then an EIO error chunk",
    SC_META, HS_NONE, .command_fault = bs_extents_then_error },
  { "bs-none-only",
    "success without a BLOCK_STATUS chunk: NONE only",
    SC_META, HS_NONE, .command_fault = bs_none_only },
  { "bs-two-chunks",
    "two base:allocation chunks for one request (data, then hole)",
    SC_META, HS_NONE, .command_fault = bs_two_chunks },
  { "bs-chunk-for-read",
    "base:allocation selected; a BLOCK_STATUS chunk in reply to a read",
    SC_META, HS_NONE, block_status_for_read },
  { "write-good",
    "a writable export: writes answered with NONE",
    SC_WRITABLE, HS_NONE, NULL },
  { "write-error-chunk",
    "an EIO error chunk in reply to a write",
    SC_WRITABLE, HS_NONE, .command_fault = write_error_chunk },
  { "write-simple-reply",
    "a simple reply to a write, structured replies on (allowed)",
    SC_WRITABLE, HS_NONE, .command_fault = write_simple_reply },
  { "write-data-chunk",
    "an OFFSET_DATA chunk in reply to a write",
    SC_WRITABLE, HS_NONE, .command_fault = write_data_chunk },
  { "oversized-option-reply",
    "INFO reply to GO claiming 1 GiB",
    0, HS_OVERSIZED_REPLY, NULL },
  { "bad-option-magic",
    "first option reply with a wrong magic",
    0, HS_BAD_OPTION_MAGIC, NULL },
  { "wrong-option-echoed",
    "first option reply echoes another option",
    0, HS_WRONG_OPTION_ECHOED, NULL },
  { "info-name-too-long",
    "NBD_INFO_NAME of 5000 bytes",
    0, HS_INFO_NAME_TOO_LONG, NULL },
  { "missing-info-export",
    "GO acknowledged without NBD_INFO_EXPORT",
    0, HS_MISSING_INFO_EXPORT, NULL },
  { "close-in-handshake",
    "closes after the first option request",
    0, HS_CLOSE, NULL },
  { "bad-greeting-magic",
    "greeting starts NBDMAGIX",
    0, HS_BAD_GREETING_MAGIC, NULL },
  { "unknown-version-magic",
    "NBDMAGIC, then neither IHAVEOPT nor oldstyle",
    0, HS_UNKNOWN_VERSION_MAGIC, NULL },
  { "close-in-greeting",
    "closes after 12 bytes of the greeting",
    0, HS_CLOSE_IN_GREETING, NULL },
  { "close-in-option-reply",
    "closes after 12 bytes of the first option reply",
    0, HS_CLOSE_IN_OPTION_REPLY, NULL },
  { "close-after-export-name",
    "refuses GO, then closes on EXPORT_NAME (no such export)",
    SC_NO_GO, HS_CLOSE_AFTER_EXPORT_NAME, NULL },
  { "plain-newstyle",
    "newstyle without FIXED_NEWSTYLE: closes on any option but EXPORT_NAME",
    0, HS_PLAIN_NEWSTYLE, NULL },
  { "no-zeroes-not-offered",
    "refuses GO, no NO_ZEROES: 124 zeroes after EXPORT_NAME",
    SC_NO_GO, HS_NO_ZEROES_NOT_OFFERED, NULL },
  { "go-err-policy",
    "refuses GO with NBD_REP_ERR_POLICY",
    SC_GO_ERROR (NBD_REP_ERR_POLICY), HS_NONE, NULL },
  { "go-err-policy-message",
    "refuses GO with NBD_REP_ERR_POLICY and a message",
    SC_GO_ERROR (NBD_REP_ERR_POLICY) | SC_MESSAGE, HS_NONE, NULL },
  { "go-err-invalid",
    "refuses GO with NBD_REP_ERR_INVALID",
    SC_GO_ERROR (NBD_REP_ERR_INVALID), HS_NONE, NULL },
  { "go-err-invalid-message",
    "refuses GO with NBD_REP_ERR_INVALID and a message",
    SC_GO_ERROR (NBD_REP_ERR_INVALID) | SC_MESSAGE, HS_NONE, NULL },
  { "go-err-platform",
    "refuses GO with NBD_REP_ERR_PLATFORM",
    SC_GO_ERROR (NBD_REP_ERR_PLATFORM), HS_NONE, NULL },
  { "go-err-platform-message",
    "refuses GO with NBD_REP_ERR_PLATFORM and a message",
    SC_GO_ERROR (NBD_REP_ERR_PLATFORM) | SC_MESSAGE, HS_NONE, NULL },
  { "go-err-tls-reqd",
    "refuses GO with NBD_REP_ERR_TLS_REQD",
    SC_GO_ERROR (NBD_REP_ERR_TLS_REQD), HS_NONE, NULL },
  { "go-err-tls-reqd-message",
    "refuses GO with NBD_REP_ERR_TLS_REQD and a message",
    SC_GO_ERROR (NBD_REP_ERR_TLS_REQD) | SC_MESSAGE, HS_NONE, NULL },
  { "go-err-unknown",
    "refuses GO with NBD_REP_ERR_UNKNOWN",
    SC_GO_ERROR (NBD_REP_ERR_UNKNOWN), HS_NONE, NULL },
  { "go-err-unknown-message",
    "refuses GO with NBD_REP_ERR_UNKNOWN and a message",
    SC_GO_ERROR (NBD_REP_ERR_UNKNOWN) | SC_MESSAGE, HS_NONE, NULL },
  { "go-err-shutdown",
    "refuses GO with NBD_REP_ERR_SHUTDOWN",
    SC_GO_ERROR (NBD_REP_ERR_SHUTDOWN), HS_NONE, NULL },
  { "go-err-shutdown-message",
    "refuses GO with NBD_REP_ERR_SHUTDOWN and a message",
    SC_GO_ERROR (NBD_REP_ERR_SHUTDOWN) | SC_MESSAGE, HS_NONE, NULL },
  { "go-err-block-size-reqd",
    "refuses GO with NBD_REP_ERR_BLOCK_SIZE_REQD",
    SC_GO_ERROR (NBD_REP_ERR_BLOCK_SIZE_REQD), HS_NONE, NULL },
  { "go-err-block-size-reqd-message",
    "refuses GO with NBD_REP_ERR_BLOCK_SIZE_REQD and a message",
    SC_GO_ERROR (NBD_REP_ERR_BLOCK_SIZE_REQD) | SC_MESSAGE, HS_NONE, NULL },
  { "go-err-too-big",
    "refuses GO with NBD_REP_ERR_TOO_BIG",
    SC_GO_ERROR (NBD_REP_ERR_TOO_BIG), HS_NONE, NULL },
  { "go-err-too-big-message",
    "refuses GO with NBD_REP_ERR_TOO_BIG and a message",
    SC_GO_ERROR (NBD_REP_ERR_TOO_BIG) | SC_MESSAGE, HS_NONE, NULL },
  { "go-err-0x63",
    "refuses GO with the unknown error 0x80000063",
    SC_GO_ERROR (0x63), HS_NONE, NULL },
  { "go-err-0x63-message",
    "refuses GO with the unknown error 0x80000063 and a message",
    SC_GO_ERROR (0x63) | SC_MESSAGE, HS_NONE, NULL },
  { "structured-reply-server",
    "NBD_REP_SERVER in reply to STRUCTURED_REPLY",
    0, HS_STRUCTURED_REPLY_SERVER, NULL },
  { "structured-reply-ack-data",
    "ACK with a 4-byte payload to STRUCTURED_REPLY",
    0, HS_STRUCTURED_REPLY_ACK_DATA, NULL },
  { "go-ack-data",
    "ACK with a 4-byte payload to GO",
    0, HS_GO_ACK_DATA, NULL },
  { "info-export-short",
    "NBD_INFO_EXPORT of length 11",
    0, HS_INFO_EXPORT_SHORT, NULL },
  { "info-export-long",
    "NBD_INFO_EXPORT of length 13",
    0, HS_INFO_EXPORT_LONG, NULL },
  { "info-block-size-short",
    "NBD_INFO_BLOCK_SIZE of length 13",
    0, HS_INFO_BLOCK_SIZE_SHORT, NULL },
  { "info-empty",
    "NBD_REP_INFO of length 0",
    0, HS_INFO_EMPTY, NULL },
  { "info-one-byte",
    "NBD_REP_INFO of length 1",
    0, HS_INFO_ONE_BYTE, NULL },
  { "info-unknown-type",
    "NBD_REP_INFO of unknown info type 99",
    0, HS_INFO_UNKNOWN_TYPE, NULL },
  { "huge-size",
    "NBD_INFO_EXPORT with size 2^63",
    0, HS_HUGE_SIZE, NULL },
  { "huge-size-no-go",
    "refuses GO, EXPORT_NAME reply with size 2^63",
    SC_NO_GO, HS_HUGE_SIZE, NULL },
  { "huge-size-oldstyle",
    "oldstyle with size 2^63",
    SC_OLDSTYLE, HS_HUGE_SIZE, NULL },
  { "block-minimum-not-power-of-2",
    "block sizes 768, 4096, 1M",
    0, HS_BLOCK_MINIMUM_NOT_POWER_OF_2, NULL },
  { "block-minimum-too-big",
    "block sizes 128K, 128K, 1M",
    0, HS_BLOCK_MINIMUM_TOO_BIG, NULL },
  { "block-preferred-not-power-of-2",
    "block sizes 512, 6144, 1M",
    0, HS_BLOCK_PREFERRED_NOT_POWER_OF_2, NULL },
  { "block-preferred-below-minimum",
    "block sizes 4096, 2048, 1M",
    0, HS_BLOCK_PREFERRED_BELOW_MINIMUM, NULL },
  { "block-preferred-below-512",
    "block sizes 1, 256, 1M",
    0, HS_BLOCK_PREFERRED_BELOW_512, NULL },
  { "block-maximum-below-preferred",
    "block sizes 512, 4096, 2048",
    0, HS_BLOCK_MAXIMUM_BELOW_PREFERRED, NULL },
  { "block-unlimited",
    "block sizes 1, 4096, 0xffffffff",
    0, HS_BLOCK_UNLIMITED, NULL },
  { "block-1m",
    "block sizes 512, 4096, 1M",
    0, HS_BLOCK_1M, NULL },
  { "block-maximum-not-multiple",
    "block sizes 512, 4096, 1000000",
    0, HS_BLOCK_MAXIMUM_NOT_MULTIPLE, NULL },
  { "meta-context",
    "SET_META_CONTEXT selects base:allocation",
    0, HS_META_CONTEXT, NULL },
  { "meta-context-other-name",
    "SET_META_CONTEXT selects base:allocation:extra",
    0, HS_META_CONTEXT_OTHER_NAME, NULL },
  { "meta-context-error",
    "SET_META_CONTEXT refused with ERR_POLICY",
    0, HS_META_CONTEXT_ERROR, NULL },
  { "meta-context-short",
    "a META_CONTEXT reply of 3 bytes",
    0, HS_META_CONTEXT_SHORT, NULL },
  { "meta-context-too-many",
    "SET_META_CONTEXT selects 300 contexts",
    0, HS_META_CONTEXT_TOO_MANY, NULL },
  { "list-name-beyond-payload",
    "NBD_REP_SERVER whose name length (100) runs past its payload",
    0, HS_LIST_NAME_BEYOND_PAYLOAD, NULL },
  { "list-short",
    "NBD_REP_SERVER of 3 bytes (no room for the name length)",
    0, HS_LIST_SHORT, NULL },
  { "list-name-too-long",
    "NBD_REP_SERVER with an export name of 5000 bytes",
    0, HS_LIST_NAME_TOO_LONG, NULL },
  { "list-oversized",
    "NBD_REP_SERVER claiming a payload of 1 GiB",
    0, HS_LIST_OVERSIZED, NULL },
  { "list-info-reply",
    "NBD_REP_INFO in reply to LIST",
    0, HS_LIST_INFO_REPLY, NULL },
  { "list-unknown-reply",
    "the unknown non-error reply type 0x63 to LIST",
    0, HS_LIST_UNKNOWN_REPLY, NULL },
  { "list-error-after-one",
    "LIST: one export, then NBD_REP_ERR_POLICY",
    0, HS_LIST_ERROR_AFTER_ONE, NULL },
  { "list-many",
    "LIST: 10000 exports",
    0, HS_LIST_MANY, NULL },
  { "list-close",
    "closes on LIST",
    0, HS_LIST_CLOSE, NULL },
  { "meta-list-short",
    "a META_CONTEXT reply of 3 bytes to LIST_META_CONTEXT",
    0, HS_META_LIST_SHORT, NULL },
  { "meta-list-name-too-long",
    "LIST_META_CONTEXT: a context name of 5000 bytes",
    0, HS_META_LIST_NAME_TOO_LONG, NULL },
  { "meta-list-server-reply",
    "NBD_REP_SERVER in reply to LIST_META_CONTEXT",
    0, HS_META_LIST_SERVER_REPLY, NULL },
  { "meta-list-error",
    "LIST_META_CONTEXT refused with NBD_REP_ERR_UNSUP",
    0, HS_META_LIST_ERROR, NULL },
  { "starttls-err-unsup",
    "refuses STARTTLS with NBD_REP_ERR_UNSUP",
    0, HS_STARTTLS_ERR_UNSUP, NULL },
  { "starttls-err-policy",
    "refuses STARTTLS with NBD_REP_ERR_POLICY",
    0, HS_STARTTLS_ERR_POLICY, NULL },
  { "starttls-inject",
    "ACKs STARTTLS with plaintext (a GO ACK) right behind the ACK",
    0, HS_STARTTLS_INJECT, NULL },
  { "starttls-close-in-tls",
    "ACKs STARTTLS, reads the ClientHello and closes",
    0, HS_STARTTLS_CLOSE_IN_TLS, NULL },
  { "starttls-hang-in-tls",
    "ACKs STARTTLS, reads the ClientHello and sends nothing more",
    0, HS_STARTTLS_HANG_IN_TLS, NULL },
  { "starttls-garbage",
    "ACKs STARTTLS, reads the ClientHello, answers a garbage ServerHello",
    0, HS_STARTTLS_GARBAGE, NULL },
};

#pragma GCC diagnostic pop

#define NR_SCENARIOS (sizeof scenarios / sizeof scenarios[0])

static void
read_request (struct request *req)
{
  unsigned char buf[28];

  read_all (buf, sizeof buf);
  if (get_be (buf, 4) != NBD_REQUEST_MAGIC)
    fail ("bad request magic from client");
  req->flags = get_be (buf + 4, 2);
  req->type = get_be (buf + 6, 2);
  req->cookie = get_be (buf + 8, 8);
  req->offset = get_be (buf + 16, 8);
  req->count = get_be (buf + 24, 4);
}

static void
answer_request (const struct request *req)
{
  static bool first_read = true;

  switch (req->type) {
  case NBD_CMD_READ:
    if (req->offset > export_size () ||
        req->count > export_size () - req->offset)
      reply_error (req, NBD_EINVAL);
    else if (first_read && scenario->read_fault && claim_fault ()) {
      first_read = false;
      scenario->read_fault (req);
    }
    else {
      first_read = false;
      reply_read (req);
    }
    break;
  case NBD_CMD_DISC:
    exit (EXIT_SUCCESS);
  case NBD_CMD_FLUSH:
    simple_reply (0, req->cookie);
    flush_out ();
    break;
  case NBD_CMD_WRITE:
    if (req->count > EXPORT_SIZE)
      fail ("write too large");
    else {
      unsigned char *payload = malloc (req->count);
      if (payload == NULL)
        fail ("out of memory");
      read_all (payload, req->count);
      free (payload);
    }
    if (scenario->flags & SC_WRITABLE)
      answer_write (req);
    else
      reply_error (req, NBD_EPERM);
    break;
  case NBD_CMD_BLOCK_STATUS:
    answer_block_status (req);
    break;
  default:
    reply_error (req, NBD_EINVAL);
  }
}

static bool
input_ready (void)
{
  struct pollfd pfd = { .fd = in_fd, .events = POLLIN };

  return poll (&pfd, 1, 0) == 1;
}

/* SC_BATCH: let the client queue requests until its sends block, then
 * answer every READ that has arrived (up to BATCH_MAX) newest first, the
 * replies back to back in one write; a request of another type ends a
 * batch and is answered after it.
 */
static void
serve_batches (void)
{
  static struct request batch[BATCH_MAX];
  size_t n, i;

  usleep (BATCH_DELAY_MS * 1000);
  for (;;) {
    n = 0;
    do
      read_request (&batch[n++]);
    while (batch[n - 1].type == NBD_CMD_READ && n < BATCH_MAX &&
           input_ready ());

    holding = true;
    for (i = n; i-- > 0; )
      if (batch[i].type == NBD_CMD_READ)
        answer_request (&batch[i]);
    holding = false;
    flush_out ();
    if (batch[n - 1].type != NBD_CMD_READ)
      answer_request (&batch[n - 1]);
  }
}

/* Transmission: answer requests until the client disconnects. */
static void
serve (void)
{
  struct request req;

  if (scenario->flags & SC_BATCH)
    serve_batches ();
  for (;;) {
    read_request (&req);
    answer_request (&req);
  }
}

/* Serve one client of a listening socket: ours on PATH if given, else
 * one passed by systemd socket activation (as nbdinfo -- [ CMD ] does).
 * Returns false if there is no listening socket.
 */
static bool
accept_one (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  const char *pid = getenv ("LISTEN_PID"), *fds = getenv ("LISTEN_FDS");
  int sock, conn;

  if (path == NULL) {
    if (pid == NULL || fds == NULL || atoi (pid) != getpid () ||
        atoi (fds) != 1)
      return false;
    sock = 3;
  }
  else {
    if (strlen (path) >= sizeof addr.sun_path)
      fail ("socket path too long");
    strcpy (addr.sun_path, path);
    sock = socket (AF_UNIX, SOCK_STREAM, 0);
    if (sock == -1 ||
        bind (sock, (struct sockaddr *) &addr, sizeof addr) == -1 ||
        listen (sock, 1) == -1) {
      perror ("bad-server: socket");
      exit (EXIT_FAILURE);
    }
  }
  for (;;) {
    conn = accept (sock, NULL, NULL);
    if (conn == -1) {
      if (errno == EINTR)
        continue;
      perror ("bad-server: accept");
      exit (EXIT_FAILURE);
    }
    if (fault_marker == NULL)
      break;
    /* --serve-many: a child serves this client, the parent waits for
     * the next (children are reaped by SIGCHLD's SIG_IGN).
     */
    switch (fork ()) {
    case -1:
      perror ("bad-server: fork");
      exit (EXIT_FAILURE);
    case 0:
      alarm (SAFETY_TIMEOUT_SECONDS);
      goto serve_this;
    default:
      close (conn);
    }
  }
 serve_this:
  close (sock);
  if (path && fault_marker == NULL)
    unlink (path);
  in_fd = out_fd = conn;
  return true;
}

static void
usage (void)
{
  fprintf (stderr,
           "usage: bad-server [--socket PATH [--serve-many MARKER]] "
           "[--trickle] SCENARIO\n"
           "       bad-server --list\n");
  exit (EXIT_FAILURE);
}

int
main (int argc, char *argv[])
{
  const char *socket_path = NULL;
  int i;
  size_t j;

  if (argc == 2 && strcmp (argv[1], "--list") == 0) {
    for (j = 0; j < NR_SCENARIOS; j++)
      printf ("%s\t%s\n", scenarios[j].name, scenarios[j].description);
    return EXIT_SUCCESS;
  }
  for (i = 1; i < argc - 1; i++) {
    if (strcmp (argv[i], "--socket") == 0 && i + 1 < argc - 1)
      socket_path = argv[++i];
    else if (strcmp (argv[i], "--serve-many") == 0 && i + 1 < argc - 1)
      fault_marker = argv[++i];
    else if (strcmp (argv[i], "--trickle") == 0)
      trickle = true;
    else
      usage ();
  }
  if (argc < 2 || argv[argc - 1][0] == '-')
    usage ();

  for (j = 0; j < NR_SCENARIOS; j++)
    if (strcmp (argv[argc - 1], scenarios[j].name) == 0)
      scenario = &scenarios[j];
  if (scenario == NULL) {
    fprintf (stderr, "bad-server: unknown scenario: %s\n", argv[argc - 1]);
    return EXIT_FAILURE;
  }

  if (fault_marker && socket_path == NULL)
    usage ();

  signal (SIGPIPE, SIG_IGN);
  if (fault_marker) {
    signal (SIGCHLD, SIG_IGN);
    alarm (SERVE_MANY_TIMEOUT_SECONDS);
  }
  else
    alarm (SAFETY_TIMEOUT_SECONDS);
  accept_one (socket_path);

  if (scenario->flags & SC_OLDSTYLE)
    handshake_oldstyle ();
  else
    handshake_newstyle ();
  serve ();
  return EXIT_SUCCESS;
}
