/* libnbdc: the one private header.
 *
 * Architecture (see ../../shared/DESIGN.md):
 * - Public entry points (nbd_* in the .c files) check arguments, set the
 *   thread-local error context, take h->lock and call an unlocked core.
 * - The connection is an explicit state machine (enum state); in the
 *   handshake a phase (enum phase) says what the next complete input means.
 *   Nothing blocks: every step advances as far as it can and reports whether
 *   it needs the socket readable or writable.  I/O resumes from cursors.
 * - Bytes move through a transport table: a plain socket (transport.c),
 *   or TLS once the server acknowledged STARTTLS (crypto.c).
 * - Commands: cookie-indexed hash for O(1) lookup, lists for the send queue,
 *   the commands in flight and the completed-but-not-retired ones.
 */

#ifndef NBDC_INTERNAL_H
#define NBDC_INTERNAL_H

#include <config.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Everything the public header declares is exported; everything else in the
 * library is hidden (-fvisibility=hidden plus the version script).
 */
/* The library checks its pointer arguments itself (NULL gets EFAULT), so
 * it must not let the compiler assume they are non-NULL.
 */
#define LIBNBD_ATTRIBUTE_NONNULL(...)

#pragma GCC visibility push(default)
#include "libnbd.h"
#pragma GCC visibility pop

#include "protocol.h"

/* libnbd refuses reads larger than this (ERANGE); so do we. */
#define MAX_REQUEST_SIZE (64 * 1024 * 1024)

/* Input buffer: handshake replies and reply headers are read through it;
 * read data beyond what one recv brought in goes straight to the caller.
 */
#define INBUF_SIZE (64 * 1024)

/* A data chunk this large switches reply headers to small reads (see
 * fill_size in transport.c); a smaller one switches back.
 */
#define LARGE_READ (INBUF_SIZE / 2)

/* Largest option reply payload accepted in the handshake: two strings of
 * NBD_MAX_STRING plus their framing.
 */
#define MAX_OPTION_REPLY (2 * NBD_MAX_STRING + 64)

/* Largest payload of an error chunk: error, length, message, offset. */
#define MAX_ERROR_CHUNK (6 + NBD_MAX_STRING + 8)

/* A command tracks at most this many disjoint ranges of its reply; a server
 * that fragments a read more than this fails the read.
 */
#define MAX_RANGES 4096

#define MAX_META_CONTEXTS 256

/* Largest block status chunk accepted: a context id and 2^20 descriptors,
 * the most the NBD spec lets a server send in one chunk.  A larger chunk
 * fails its command and is skipped, so memory stays bounded.
 */
#define MAX_EXTENTS (1 << 20)
#define MAX_BLOCK_STATUS_CHUNK (4 + 8 * MAX_EXTENTS)

/* A block status buffer up to this size is kept for the next reply. */
#define KEEP_EXTENTS_BUFFER (64 * 1024)
/* Retired commands a handle keeps for the next ones (commands.c), so that
 * a steady stream of requests allocates nothing.
 */
#define KEEP_SPARE_COMMANDS 64

enum state {
  STATE_CREATED,
  STATE_CONNECTING,             /* non-blocking connect(2) in progress */
  STATE_HANDSHAKE,              /* option negotiation, see enum phase */
  STATE_NEGOTIATING,            /* opt mode: waiting for an nbd_opt_* call */
  STATE_READY,                  /* transmission; "processing" if busy */
  STATE_DEAD,
  STATE_CLOSED,                 /* clean disconnect finished */
};

enum phase {
  PHASE_GREETING,               /* NBDMAGIC + version magic */
  PHASE_OLDSTYLE,               /* the rest of an oldstyle greeting */
  PHASE_GFLAGS,                 /* newstyle handshake flags */
  PHASE_OPT_STARTTLS,           /* reply to NBD_OPT_STARTTLS */
  PHASE_TLS_HANDSHAKE,          /* the TLS handshake (crypto.c) */
  PHASE_OPT_STRUCTURED_REPLY,   /* replies to the options sent ... */
  PHASE_OPT_SET_META_CONTEXT,
  PHASE_OPT_GO,                 /* ... NBD_OPT_GO or NBD_OPT_INFO */
  PHASE_OPT_LIST,
  PHASE_OPT_LIST_META_CONTEXT,
  PHASE_OPT_ABORT,              /* close once NBD_OPT_ABORT is sent */
  PHASE_EXPORT_NAME,            /* reply to NBD_OPT_EXPORT_NAME */
};

enum reply_phase {
  RP_HEADER,                    /* reading a reply or chunk header */
  RP_DATA,                      /* reading read data into the buffer */
  RP_PAYLOAD,                   /* buffering a small chunk payload */
  RP_EXTENTS,                   /* reading a block status payload */
  RP_DISCARD,                   /* skipping a payload we refused */
};

/* The transport: how bytes reach the server (plain socket or TLS). */
struct transport {
  const char *name;
  /* Like recv(2)/sendmsg(2): > 0 bytes, 0 EOF, -1 with errno (EAGAIN ...). */
  ssize_t (*recv) (struct nbd_handle *h, void *buf, size_t len);
  ssize_t (*sendv) (struct nbd_handle *h, const struct iovec *iov, int n);
  /* True if bytes are already decrypted and waiting (TLS). */
  bool (*pending) (struct nbd_handle *h);
  /* True if the transport must write before it can read on (TLS). */
  bool (*wants_write) (const struct nbd_handle *h);
  int (*shut_writes) (struct nbd_handle *h);
  void (*close) (struct nbd_handle *h);
  /* The text of the last failure, or NULL: then errno says it all. */
  const char *(*error) (struct nbd_handle *h);
};

extern const struct transport plain_transport;
extern const struct transport tls_transport;

struct range {
  uint64_t start, end;          /* [start, end) */
};

enum cmd_state { CMD_QUEUED, CMD_IN_FLIGHT, CMD_DONE };

/* A command's callbacks; each unused one has .callback == NULL. */
struct callbacks {
  nbd_chunk_callback chunk;     /* structured reads */
  nbd_extent_callback extent;   /* block status */
  nbd_completion_callback completion;
};

struct command {
  struct command *prev, *next;  /* in one of h->queue, inflight, done */
  struct command *hash_next;    /* chain in h->hash */
  enum cmd_state state;
  uint64_t cookie;
  uint16_t type, flags;
  uint64_t offset;
  uint32_t count;
  void *data;                   /* read buffer or write payload */
  struct nbd_request request;   /* the request, already in wire order */
  struct callbacks cb;
  struct waiter *waiter;        /* the thread waiting for it, if any */
  int error;                    /* first error seen, 0 = success */
  char *error_msg;              /* why, when the library decided */
  unsigned content_chunks;      /* data and hole chunks seen (DF rule) */
  uint64_t covered;             /* bytes covered by data + hole chunks */
  struct range first_range;     /* ranges[] when nr_ranges <= 1 */
  struct range *ranges;
  size_t nr_ranges, ranges_alloc;
};

/* A thread sleeping on the handle (wait.c). */
struct waiter {
  uint32_t state;               /* WAITER_* in wait.c */
  uint32_t bit;                 /* its wakes on h->wake_seq */
  struct waiter *prev, *next;   /* in h->waiters */
  struct command *cmd;          /* what it waits for; NULL: any progress */
  int error;                    /* the result handed over (hand_result) */
  char *error_msg;
};

struct cmd_list {
  struct command *head, *tail;
  size_t len;
};

struct meta_context {
  char *name;
  uint32_t id;
};

struct nbd_handle {
  pthread_mutex_t lock;
  bool polling;                 /* a thread polls for replies (leader) */
  bool polling_out;             /* ... and for POLLOUT too */
  bool write_polling;           /* a thread polls only to send more */
  int wakefd;                   /* eventfd that ends that poll, or -1 */
  struct waiter *waiters, *waiters_tail;  /* threads asleep (wait.c) */
  uint32_t wake_seq;            /* futex word the waiters sleep on */
  uint32_t wake_bits;           /* to wake once the lock is dropped */
  unsigned relockers;           /* command waiters woken to look again */
  unsigned entering;            /* threads on their way into a blocking
                                   command call (atomic) */
  char *hname;
  uintptr_t private_data;

  /* Settings. */
  bool debug;
  nbd_debug_callback debug_callback;
  char *export_name;
  bool request_sr;
  bool full_info;
  bool opt_mode;                /* stop in STATE_NEGOTIATING */
  bool pread_initialize;
  uint32_t handshake_flags;
  uint32_t strict;
  char **request_meta;          /* contexts to ask for */
  size_t nr_request_meta;
  int tls;                      /* LIBNBD_TLS_* */
  char *tls_certificates;       /* directory, or NULL: the defaults */
  bool tls_verify_peer;
  char *tls_username;           /* NULL: the login name */
  char *tls_psk_file;
  uint32_t uri_allow_transports;
  int uri_allow_tls;
  bool uri_allow_local_file;

  /* Connection. */
  enum state state;
  enum phase phase;
  int fd;
  const struct transport *transport;
  struct tls_session *tls_session;  /* crypto.c, once STARTTLS succeeded */
  char *tls_hostname;           /* TCP host name, checked in the cert */
  bool tls_negotiated;
  pid_t pid;                    /* nbd_connect_command child */
  struct addrinfo *addrinfo, *next_addr;  /* TCP addresses to try */
  const char *uri_scheme;       /* nbd_get_uri: "nbd", "nbd+unix"... */
  char *uri;                    /* ... and authority/export[?socket=] */
  char *dead_reason;            /* why the handle died */
  int dead_errno;               /* ... and its errno */
  bool disconnect_queued;       /* NBD_CMD_DISC is queued or sent */

  /* Output: handshake bytes (obuf) or queued requests. */
  char *obuf;
  size_t olen, ooff;
  size_t send_off;              /* bytes of the queue head already sent */

  /* Input buffer: [in_start, in_end) are unparsed bytes. */
  char *inbuf;
  size_t in_start, in_end;

  /* Handshake progress. */
  uint32_t opt_current;         /* option whose replies we are reading */
  bool have_info_export;        /* NBD_INFO_EXPORT arrived for OPT_GO */

  /* Opt mode: the nbd_opt_* option in progress (0: none) and what it
   * owns until it ends (handshake.c, option_done).
   */
  uint32_t opt_issued;
  nbd_list_callback opt_list;
  nbd_context_callback opt_context;
  nbd_completion_callback opt_completion;
  char *opt_error;              /* why the last option failed */

  /* What the handshake learned. */
  const char *protocol;
  uint16_t gflags;
  bool fixed_newstyle;
  bool sr_negotiated;
  bool no_zeroes;
  bool negotiated;              /* size and flags are known (after GO, or
                                   INFO in opt mode) */
  uint64_t exportsize;
  uint16_t eflags;
  uint32_t block_minimum, block_preferred, block_maximum;
  char *canonical_name;
  char *description;
  struct meta_context *meta;
  size_t nr_meta;

  /* Commands. */
  uint64_t next_cookie;
  struct cmd_list queue;        /* waiting to be sent, in order */
  struct cmd_list inflight;     /* sent, waiting for the reply */
  struct cmd_list done;         /* finished, not retired */
  uint64_t completions;         /* commands completed, ever */
  struct command **hash;
  size_t hash_size;             /* power of 2 */
  size_t hash_count;
  struct command *spare;        /* retired commands kept for reuse */
  unsigned nr_spare;

  /* Reply being parsed. */
  enum reply_phase rphase;
  struct command *rcmd;         /* command the current reply belongs to */
  bool rsimple;
  uint16_t rflags, rtype;
  uint32_t rlength;             /* structured: payload length */
  uint32_t rneed;               /* payload: bytes to buffer first */
  char *rstart;                 /* data: where this chunk's data begins */
  uint64_t roffset;             /* data: absolute offset of the chunk */
  char *rdest;                  /* data: where the next byte goes */
  bool large_reads;             /* the last data payload was LARGE_READ+ */
  size_t rleft;                 /* data / discard: bytes still to come */
  char *extents;                /* block status payload buffer */
  size_t extents_alloc;
  unsigned recv_budget;         /* recv calls left in this run (machine.c) */
};

/* How the files depend on each other, top to bottom; each calls only
 * files below it (shared/DESIGN.md, "Dependencies point down"):
 *
 *   entry points   handle.c  connect.c  aio.c  sync.c  opt.c
 *   driver         machine.c
 *   phases         socket.c  handshake.c  reply.c   (and uri.c, a parser)
 *   commands       commands.c
 *   below all      state.c  transport.c  errors.c  wait.c  protocol.h
 */

/* errors.c */
extern void set_error_context (const char *context);
extern void set_error (int errnum, const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 2, 3)));
extern void debug (struct nbd_handle *h, const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 2, 3)));
extern int errno_from_wire (uint32_t error);
extern void printable_message (char *dst, const char *src, size_t len);

/* Entry prologue: set the error context to the function's name. */
#define ENTER() set_error_context (__func__)

/* A pointer argument libnbd checks: NULL fails the call with EFAULT. */
#define CHECK_NOT_NULL(arg, ret)                                        \
  do {                                                                  \
    if ((arg) == NULL) {                                                \
      set_error (EFAULT, "%s: parameter must not be NULL", #arg);       \
      return ret;                                                       \
    }                                                                   \
  } while (0)

static inline void
lock_handle (struct nbd_handle *h)
{
  pthread_mutex_lock (&h->lock);
}

extern void unlock_and_wake (struct nbd_handle *h);

/* Wakes decided under the lock happen once it is dropped (wait.c). */
static inline void
unlock_handle (struct nbd_handle *h)
{
  if (h->wake_bits)
    unlock_and_wake (h);
  else
    pthread_mutex_unlock (&h->lock);
}

/* The server accepts DF (it needs structured replies). */
static inline bool
can_df (const struct nbd_handle *h)
{
  return h->sr_negotiated && (h->eflags & NBD_FLAG_SEND_DF);
}

/* transport.c: results of the I/O helpers. */
#define IO_DONE 1
#define IO_AGAIN 0
#define IO_ERROR (-1)
#define IO_EOF (-2)

extern int io_result (ssize_t r);
extern int input_fill (struct nbd_handle *h, size_t need);
extern int output_flush (struct nbd_handle *h);
extern int output_queue (struct nbd_handle *h, const void *buf, size_t len);
extern size_t input_available (const struct nbd_handle *h);
extern const char *input_peek (const struct nbd_handle *h);
extern void input_consume (struct nbd_handle *h, size_t n);
extern int input_read_into (struct nbd_handle *h, char **dest, size_t *left);
extern int input_discard (struct nbd_handle *h, size_t *left);
extern const char *io_error_text (struct nbd_handle *h);

/* wait.c */
extern void wake_command_waiter (struct nbd_handle *h, struct command *cmd);
extern void hand_result (struct nbd_handle *h, struct waiter *w, int error,
                         char *msg);
extern int take_result (void);
extern void wake_progress_waiters (struct nbd_handle *h);
extern bool wake_successor (struct nbd_handle *h);
extern void wake_all_waiters (struct nbd_handle *h);
extern int wait_for_wakeup (struct nbd_handle *h, struct command *cmd,
                            int timeout);

/* state.c */
extern void set_dead (struct nbd_handle *h, int errnum, const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 3, 4)));
extern void set_closed (struct nbd_handle *h);
extern bool is_processing (const struct nbd_handle *h);
extern const char *state_name (const struct nbd_handle *h);
extern void set_state_error (const struct nbd_handle *h);

/* commands.c */
extern struct command *command_new (struct nbd_handle *h, uint16_t type,
                                    uint16_t flags, uint64_t offset,
                                    uint32_t count, void *data,
                                    struct callbacks *cb);
extern int64_t command_submit (struct nbd_handle *h, struct command *cmd);
extern struct command *command_lookup (struct nbd_handle *h, uint64_t cookie);
extern void command_fail (struct command *cmd, int errnum,
                          const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 3, 4)));
extern void command_complete (struct nbd_handle *h, struct command *cmd);
extern void command_retire (struct nbd_handle *h, struct command *cmd);
extern int command_result (struct nbd_handle *h, struct command *cmd);
extern void commands_abort_all (struct nbd_handle *h);
extern void commands_free_all (struct nbd_handle *h);
extern int commands_send (struct nbd_handle *h);
extern void free_callbacks (struct callbacks *cb);
extern int ranges_add (struct command *cmd, uint64_t start, uint64_t end);

/* uri.c */
enum uri_transport { URI_TCP, URI_UNIX, URI_VSOCK };

struct nbd_uri {
  const char *scheme;           /* "nbds+unix", ... (static) */
  enum uri_transport transport;
  bool tls;
  char *host;                   /* TCP host ("localhost" by default) */
  char *port_name;              /* TCP service ("10809" by default) */
  uint32_t cid, port;           /* vsock */
  char *export;
  char *socket;                 /* Unix socket path */
  char *user;                   /* TLS user name (userinfo) */
  char *tls_certificates;       /* query parameters naming local files */
  char *tls_psk_file;
};

extern int uri_parse (struct nbd_handle *h, struct nbd_uri *u,
                      const char *str);
extern void uri_free (struct nbd_uri *u);
extern char *uri_encode (const char *s, bool path);

/* socket.c */
extern int start_connect_socket (struct nbd_handle *h, int fd);
extern int try_connect (struct nbd_handle *h, const struct sockaddr *addr,
                        socklen_t len);
extern int connect_next_address (struct nbd_handle *h, int error);
extern int connect_step (struct nbd_handle *h);

/* handle.c */
extern int check_created (struct nbd_handle *h);
extern int set_created_bool (struct nbd_handle *h, bool *field, bool value);

/* crypto.c */
extern int tls_start (struct nbd_handle *h);
extern int tls_handshake (struct nbd_handle *h);
extern char *tls_user_name (struct nbd_handle *h);
extern int tls_poll_timeout (const struct nbd_handle *h, int timeout);
extern bool tls_handshake_expired (struct nbd_handle *h);

/* handshake.c */
extern int handshake_step (struct nbd_handle *h);
extern void free_negotiated (struct nbd_handle *h);
extern int option_issue (struct nbd_handle *h, uint32_t option,
                         nbd_list_callback *list,
                         nbd_context_callback *context,
                         nbd_completion_callback *completion);
extern void option_forget (struct nbd_handle *h);

/* reply.c */
extern int reply_step (struct nbd_handle *h);

/* machine.c */
extern int run_machine (struct nbd_handle *h);
extern int64_t issue_command (struct nbd_handle *h, struct command *cmd);
extern unsigned direction (const struct nbd_handle *h);
extern int poll_once (struct nbd_handle *h, int timeout,
                      struct command *cmd);
extern void leave_socket (struct nbd_handle *h);

/* aio.c */
extern int64_t aio_pread (struct nbd_handle *h, void *buf, size_t count,
                          uint64_t offset, struct callbacks *cb,
                          uint32_t flags, bool structured);
extern int64_t aio_pwrite (struct nbd_handle *h, const void *buf,
                           size_t count, uint64_t offset,
                           struct callbacks *cb, uint32_t flags);
extern int64_t aio_flush (struct nbd_handle *h, struct callbacks *cb,
                          uint32_t flags);
extern int64_t aio_trim (struct nbd_handle *h, uint64_t count,
                         uint64_t offset, struct callbacks *cb,
                         uint32_t flags);
extern int64_t aio_cache (struct nbd_handle *h, uint64_t count,
                          uint64_t offset, struct callbacks *cb,
                          uint32_t flags);
extern int64_t aio_zero (struct nbd_handle *h, uint64_t count,
                         uint64_t offset, struct callbacks *cb,
                         uint32_t flags);
extern int64_t aio_block_status (struct nbd_handle *h, uint64_t count,
                                 uint64_t offset, struct callbacks *cb,
                                 uint32_t flags);
extern int aio_disconnect (struct nbd_handle *h, uint32_t flags);

/* sync.c */
extern int wait_for_connected (struct nbd_handle *h);
extern int wait_for_command (struct nbd_handle *h, int64_t cookie,
                             bool *locked);

#endif /* NBDC_INTERNAL_H */
