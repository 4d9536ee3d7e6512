/* nbdbench: read and write throughput, latency and client CPU cost of an
 * NBD client library.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 * Written to the libnbd API only, so the same source builds against libnbd
 * (bench-libnbd) and against libnbdc (bench-nbdc).  It keeps QD reads (or
 * writes, --op=write) in flight on one handle, driven by its own poll(2)
 * loop through nbd_aio_get_fd, nbd_aio_get_direction and
 * nbd_aio_notify_read/write, the way a host event loop embeds the library.
 * Data is checked against "nbdkit pattern" (each 8-byte big-endian word
 * holds its own offset); writes put that pattern on a writable export
 * (nbdkit memory) and --verify reads each write back.
 *
 * Output: one line of key=value pairs; see bench/README.md.
 */

#ifdef HAVE_CONFIG_H
#include <config.h>
#elif !defined (_GNU_SOURCE)
#define _GNU_SOURCE 1           /* built by hand, outside automake */
#endif

#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>

#include <libnbd.h>

#ifdef LIBNBDC
#define LIBRARY_NAME "libnbdc"
#else
#define LIBRARY_NAME "libnbd"
#endif

/* Give up when no reply arrives for this long with commands in flight. */
#define STALL_LIMIT_SECONDS 60

enum check { CHECK_NONE, CHECK_SPOT, CHECK_FULL };
enum phase { PHASE_WARMUP, PHASE_TIMED, PHASE_DRAIN };

struct options {
  const char *uri;
  uint64_t block_size;
  unsigned queue_depth;
  bool random;
  double seconds;               /* 0: no time limit */
  uint64_t total_bytes;         /* 0: no byte limit */
  double warmup;
  enum check check;
  bool structured;
  bool write;                   /* --op=write */
  bool initialize;
  uint64_t seed;
};

struct bench;

/* One buffer, and the read that fills it or the write that sends it. */
struct slot {
  struct bench *bench;
  char *buf;
  uint64_t offset;
  uint64_t issued_ns;
  bool reading_back;            /* --op=write --verify: the second half */
};

struct bench {
  struct options opt;
  struct nbd_handle *nbd;
  uint64_t nr_blocks;           /* aligned blocks in the export */
  uint64_t next_block;          /* sequential pattern */
  uint64_t rng;

  struct slot *slots;
  struct slot **free_slots;     /* stack of idle slots */
  unsigned nr_free;
  struct slot **read_back;      /* written, to read back (--verify) */
  unsigned nr_read_back;

  enum phase phase;
  uint64_t issued_bytes;        /* issued in the timed phase */

  /* Completions counted in the timed and drain phases. */
  uint64_t ops;
  uint64_t bytes;
  uint64_t latency_ns;

  uint64_t io_errors;           /* any phase */
  uint64_t bad_data;            /* any phase */
  bool reported;                /* first failure printed */
};

static uint64_t
now_ns (void)
{
  struct timespec ts;

  if (clock_gettime (CLOCK_MONOTONIC, &ts) == -1) {
    perror ("clock_gettime");
    exit (EXIT_FAILURE);
  }
  return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

/* User plus system CPU time of this process, in nanoseconds. */
static uint64_t
cpu_ns (void)
{
  struct rusage ru;

  if (getrusage (RUSAGE_SELF, &ru) == -1) {
    perror ("getrusage");
    exit (EXIT_FAILURE);
  }
  return ((uint64_t) ru.ru_utime.tv_sec + (uint64_t) ru.ru_stime.tv_sec)
    * 1000000000
    + ((uint64_t) ru.ru_utime.tv_usec + (uint64_t) ru.ru_stime.tv_usec)
    * 1000;
}

/* splitmix64: small, fast, good enough to pick offsets. */
static uint64_t
next_random (uint64_t *state)
{
  uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* The byte "nbdkit pattern" serves at absolute offset OFFSET. */
static unsigned char
pattern_byte (uint64_t offset)
{
  uint64_t word = offset & ~UINT64_C (7);

  return (word >> (8 * (7 - (offset & 7)))) & 0xff;
}

/* Check COUNT bytes at BUF against the pattern at OFFSET.  Returns true if
 * they match, else false and the first bad offset in *BAD.
 */
static bool
pattern_check (const char *buf, size_t count, uint64_t offset, uint64_t *bad)
{
  size_t i = 0;

  /* Bytes up to the first word boundary, whole words, then the tail. */
  for (; i < count && ((offset + i) & 7) != 0; i++) {
    if ((unsigned char) buf[i] != pattern_byte (offset + i))
      goto mismatch;
  }
  for (; i + 8 <= count; i += 8) {
    uint64_t word;

    memcpy (&word, buf + i, 8);
    if (be64toh (word) != offset + i)
      break;
  }
  for (; i < count; i++) {
    if ((unsigned char) buf[i] != pattern_byte (offset + i))
      goto mismatch;
  }
  return true;

 mismatch:
  *bad = offset + i;
  return false;
}

/* Cheap check done on every read unless --check=none: the first and the
 * last aligned word of the buffer.
 */
static bool
pattern_spot_check (const char *buf, size_t count, uint64_t offset,
                    uint64_t *bad)
{
  size_t first = (8 - (offset & 7)) & 7;
  size_t last;

  if (count < first + 8)
    return pattern_check (buf, count, offset, bad);
  last = first + (count - first) / 8 * 8 - 8;
  return pattern_check (buf + first, 8, offset + first, bad) &&
    pattern_check (buf + last, 8, offset + last, bad);
}

static void
report_bad_data (struct bench *b, uint64_t offset, const char *what)
{
  b->bad_data++;
  if (!b->reported) {
    b->reported = true;
    fprintf (stderr,
             "nbdbench: %s: data at offset %" PRIu64 " is not the "
             "nbdkit pattern (use --check=none for other exports)\n",
             what, offset);
  }
}

static void
report_io_error (struct bench *b, uint64_t offset, int error,
                 const char *what)
{
  b->io_errors++;
  if (!b->reported) {
    b->reported = true;
    fprintf (stderr, "nbdbench: %s at offset %" PRIu64 " failed: %s\n",
             what, offset, strerror (error));
  }
}

/* Chunk callback of nbd_aio_pread_structured: the chunk must lie in the
 * request and SUBBUF must point at its place in the caller's buffer
 * (nbd_pread_structured(3)); with --check=full the data is checked here.
 */
static int
read_chunk (void *user_data, const void *subbuf, size_t count,
            uint64_t offset, unsigned status, int *error)
{
  struct slot *slot = user_data;
  struct bench *b = slot->bench;
  const char *p = subbuf;
  uint64_t bad;

  if (b->opt.check == CHECK_NONE)
    return 0;
  if (status == LIBNBD_READ_ERROR)
    return 0;
  if (offset < slot->offset ||
      count > b->opt.block_size ||
      offset - slot->offset > b->opt.block_size - count ||
      p != slot->buf + (offset - slot->offset)) {
    report_bad_data (b, offset, "chunk outside the request");
    return 0;
  }
  if (b->opt.check == CHECK_FULL) {
    if (status != LIBNBD_READ_DATA)
      report_bad_data (b, offset, "hole chunk");
    else if (!pattern_check (p, count, offset, &bad))
      report_bad_data (b, bad, "data chunk");
  }
  return 0;
}

static int
read_complete (void *user_data, int *error)
{
  struct slot *slot = user_data;
  struct bench *b = slot->bench;
  uint64_t bad;

  if (*error != 0)
    report_io_error (b, slot->offset, *error,
                     slot->reading_back ? "read back" : "read");
  else if (b->opt.check == CHECK_FULL) {
    if (!pattern_check (slot->buf, b->opt.block_size, slot->offset, &bad))
      report_bad_data (b, bad, "read");
  }
  else if (b->opt.check == CHECK_SPOT) {
    if (!pattern_spot_check (slot->buf, b->opt.block_size, slot->offset,
                             &bad))
      report_bad_data (b, bad, "read");
  }

  /* A read back completes a write that was counted already. */
  if (b->phase != PHASE_WARMUP && !slot->reading_back) {
    b->ops++;
    b->bytes += b->opt.block_size;
    b->latency_ns += now_ns () - slot->issued_ns;
  }
  slot->reading_back = false;
  b->free_slots[b->nr_free++] = slot;
  return 1;                     /* retire the command */
}

static int
write_complete (void *user_data, int *error)
{
  struct slot *slot = user_data;
  struct bench *b = slot->bench;

  if (*error != 0)
    report_io_error (b, slot->offset, *error, "write");
  if (b->phase != PHASE_WARMUP) {
    b->ops++;
    b->bytes += b->opt.block_size;
    b->latency_ns += now_ns () - slot->issued_ns;
  }
  if (b->opt.check == CHECK_FULL && *error == 0) {
    /* Read it back (issued from the main loop: a callback must not call
     * into the handle).
     */
    slot->reading_back = true;
    b->read_back[b->nr_read_back++] = slot;
  }
  else
    b->free_slots[b->nr_free++] = slot;
  return 1;
}

static uint64_t
next_offset (struct bench *b)
{
  uint64_t block;

  if (b->opt.random)
    block = next_random (&b->rng) % b->nr_blocks;
  else {
    block = b->next_block++;
    if (b->next_block == b->nr_blocks)
      b->next_block = 0;
  }
  return block * b->opt.block_size;
}

static void
die_nbd (void)
{
  fprintf (stderr, "nbdbench: %s\n", nbd_get_error ());
  exit (EXIT_FAILURE);
}

/* Fill BUF with the pattern at OFFSET. */
static void
pattern_fill (char *buf, size_t count, uint64_t offset)
{
  size_t i = 0;

  for (; i < count && ((offset + i) & 7) != 0; i++)
    buf[i] = pattern_byte (offset + i);
  for (; i + 8 <= count; i += 8) {
    uint64_t word = htobe64 (offset + i);

    memcpy (buf + i, &word, 8);
  }
  for (; i < count; i++)
    buf[i] = pattern_byte (offset + i);
}

/* Read into SLOT at its offset. */
static void
issue_read_into (struct bench *b, struct slot *slot)
{
  nbd_completion_callback complete = {
    .callback = read_complete, .user_data = slot,
  };
  int64_t cookie;

  if (b->opt.check == CHECK_FULL)
    memset (slot->buf, 0xff, b->opt.block_size);
  slot->issued_ns = now_ns ();
  if (b->opt.structured) {
    nbd_chunk_callback chunk = {
      .callback = read_chunk, .user_data = slot,
    };
    cookie = nbd_aio_pread_structured (b->nbd, slot->buf, b->opt.block_size,
                                       slot->offset, chunk, complete, 0);
  }
  else
    cookie = nbd_aio_pread (b->nbd, slot->buf, b->opt.block_size,
                            slot->offset, complete, 0);
  if (cookie == -1)
    die_nbd ();
}

/* Write SLOT's buffer at its offset.  Only --verify writes the pattern
 * for each offset (and reads it back); timed runs send the buffer as it
 * is, so the cost measured is the library's, not the pattern's.
 */
static void
issue_write_from (struct bench *b, struct slot *slot)
{
  nbd_completion_callback complete = {
    .callback = write_complete, .user_data = slot,
  };

  if (b->opt.check == CHECK_FULL)
    pattern_fill (slot->buf, b->opt.block_size, slot->offset);
  slot->issued_ns = now_ns ();
  if (nbd_aio_pwrite (b->nbd, slot->buf, b->opt.block_size, slot->offset,
                      complete, 0) == -1)
    die_nbd ();
}

static void
issue_one (struct bench *b)
{
  struct slot *slot = b->free_slots[--b->nr_free];

  slot->offset = next_offset (b);
  slot->reading_back = false;
  if (b->opt.write)
    issue_write_from (b, slot);
  else
    issue_read_into (b, slot);
  if (b->phase == PHASE_TIMED)
    b->issued_bytes += b->opt.block_size;
}

/* Wait for the socket once and tell the handle what happened. */
static void
poll_once (struct bench *b, unsigned *stalled)
{
  struct pollfd pfd;
  unsigned dir;
  int r;

  pfd.fd = nbd_aio_get_fd (b->nbd);
  if (pfd.fd == -1)
    die_nbd ();
  dir = nbd_aio_get_direction (b->nbd);
  pfd.events = 0;
  if (dir & LIBNBD_AIO_DIRECTION_READ)
    pfd.events |= POLLIN;
  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    pfd.events |= POLLOUT;
  pfd.revents = 0;

  r = poll (&pfd, 1, 1000);
  if (r == -1) {
    if (errno == EINTR)
      return;
    perror ("poll");
    exit (EXIT_FAILURE);
  }
  if (r == 0) {
    if (++*stalled >= STALL_LIMIT_SECONDS) {
      fprintf (stderr, "nbdbench: no progress for %d seconds (state %s)\n",
               STALL_LIMIT_SECONDS, nbd_connection_state (b->nbd));
      exit (EXIT_FAILURE);
    }
    return;
  }
  *stalled = 0;

  if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
      (dir & LIBNBD_AIO_DIRECTION_READ) != 0) {
    if (nbd_aio_notify_read (b->nbd) == -1)
      die_nbd ();
  }
  else if ((pfd.revents & (POLLOUT | POLLERR)) != 0 &&
           (dir & LIBNBD_AIO_DIRECTION_WRITE) != 0) {
    if (nbd_aio_notify_write (b->nbd) == -1)
      die_nbd ();
  }
  else if ((pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
    fprintf (stderr, "nbdbench: unexpected poll events 0x%x\n",
             (unsigned) pfd.revents);
    exit (EXIT_FAILURE);
  }
}

static void
usage (FILE *fp, int status)
{
  fprintf (fp,
"Usage: nbdbench [OPTIONS] URI\n"
"Random or sequential reads from (or writes to) an NBD export, QD\n"
"commands in flight.\n"
"\n"
"  -o, --op=OP             read (default) or write\n"
"  -b, --block-size=SIZE   bytes per command (default 4096; k/m/g)\n"
"  -q, --queue-depth=N     commands in flight (default 1)\n"
"  -p, --pattern=P         random (default) or sequential; aligned to SIZE\n"
"  -t, --seconds=S         timed phase length (default 3, or none with -n)\n"
"  -n, --bytes=TOTAL       stop after reading TOTAL bytes (k/m/g suffixes)\n"
"  -w, --warmup=S          untimed reads first (default 1)\n"
"      --verify            same as --check=full\n"
"      --check=C           none, spot (default: first and last word of\n"
"                          every read) or full (every byte, and every\n"
"                          chunk; buffers are poisoned before each read;\n"
"                          writes send the pattern and are read back)\n"
"      --api=A             structured (default: nbd_aio_pread_structured)\n"
"                          or pread (nbd_aio_pread)\n"
"      --initialize        keep the library's pread buffer initialization\n"
"                          (turned off by default, as nbd-proxy does)\n"
"      --seed=N            random offsets seed (default 1)\n"
"  -h, --help\n"
"\n"
"The data is checked against nbdkit pattern: each 8-byte big-endian\n"
"word holds its own offset; writes need a writable export (nbdkit\n"
"memory).  Prints one line of key=value results.\n");
  exit (status);
}

/* Parse a byte count with an optional binary suffix. */
static uint64_t
parse_size (const char *what, const char *arg)
{
  char *end;
  unsigned long long n;
  unsigned shift = 0;

  errno = 0;
  n = strtoull (arg, &end, 10);
  if (errno != 0 || end == arg || arg[0] == '-')
    goto bad;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  default: goto bad;
  }
  if (*end != '\0' || n > (UINT64_MAX >> shift))
    goto bad;
  return (uint64_t) n << shift;

 bad:
  fprintf (stderr, "nbdbench: bad %s: %s\n", what, arg);
  exit (EXIT_FAILURE);
}

static double
parse_seconds (const char *what, const char *arg)
{
  char *end;
  double s;

  errno = 0;
  s = strtod (arg, &end);
  if (errno != 0 || end == arg || *end != '\0' || !(s >= 0 && s < 1e6)) {
    fprintf (stderr, "nbdbench: bad %s: %s\n", what, arg);
    exit (EXIT_FAILURE);
  }
  return s;
}

static void
parse_options (int argc, char *argv[], struct options *opt)
{
  enum { OPT_VERIFY = 256, OPT_CHECK, OPT_API, OPT_INITIALIZE, OPT_SEED };
  static const struct option long_options[] = {
    { "op",          required_argument, NULL, 'o' },
    { "block-size",  required_argument, NULL, 'b' },
    { "queue-depth", required_argument, NULL, 'q' },
    { "pattern",     required_argument, NULL, 'p' },
    { "seconds",     required_argument, NULL, 't' },
    { "bytes",       required_argument, NULL, 'n' },
    { "warmup",      required_argument, NULL, 'w' },
    { "verify",      no_argument,       NULL, OPT_VERIFY },
    { "check",       required_argument, NULL, OPT_CHECK },
    { "api",         required_argument, NULL, OPT_API },
    { "initialize",  no_argument,       NULL, OPT_INITIALIZE },
    { "seed",        required_argument, NULL, OPT_SEED },
    { "help",        no_argument,       NULL, 'h' },
    { NULL,          0,                 NULL, 0 },
  };
  bool seconds_given = false;
  uint64_t n;
  int c;

  *opt = (struct options) {
    .block_size = 4096, .queue_depth = 1, .random = true, .seconds = 3,
    .warmup = 1, .check = CHECK_SPOT, .structured = true, .seed = 1,
  };

  while ((c = getopt_long (argc, argv, "o:b:q:p:t:n:w:h", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'o':
      if (strcmp (optarg, "read") == 0)
        opt->write = false;
      else if (strcmp (optarg, "write") == 0)
        opt->write = true;
      else
        usage (stderr, EXIT_FAILURE);
      break;
    case 'b':
      opt->block_size = parse_size ("block size", optarg);
      if (opt->block_size == 0 || opt->block_size > 64 * 1024 * 1024) {
        fprintf (stderr, "nbdbench: block size must be 1 to 64M\n");
        exit (EXIT_FAILURE);
      }
      break;
    case 'q':
      n = parse_size ("queue depth", optarg);
      if (n == 0 || n > 4096) {
        fprintf (stderr, "nbdbench: queue depth must be 1 to 4096\n");
        exit (EXIT_FAILURE);
      }
      opt->queue_depth = n;
      break;
    case 'p':
      if (strcmp (optarg, "random") == 0)
        opt->random = true;
      else if (strcmp (optarg, "sequential") == 0)
        opt->random = false;
      else
        usage (stderr, EXIT_FAILURE);
      break;
    case 't':
      opt->seconds = parse_seconds ("seconds", optarg);
      seconds_given = true;
      break;
    case 'n':
      opt->total_bytes = parse_size ("total bytes", optarg);
      break;
    case 'w':
      opt->warmup = parse_seconds ("warm-up", optarg);
      break;
    case OPT_VERIFY:
      opt->check = CHECK_FULL;
      break;
    case OPT_CHECK:
      if (strcmp (optarg, "none") == 0)
        opt->check = CHECK_NONE;
      else if (strcmp (optarg, "spot") == 0)
        opt->check = CHECK_SPOT;
      else if (strcmp (optarg, "full") == 0)
        opt->check = CHECK_FULL;
      else
        usage (stderr, EXIT_FAILURE);
      break;
    case OPT_API:
      if (strcmp (optarg, "structured") == 0)
        opt->structured = true;
      else if (strcmp (optarg, "pread") == 0)
        opt->structured = false;
      else
        usage (stderr, EXIT_FAILURE);
      break;
    case OPT_INITIALIZE:
      opt->initialize = true;
      break;
    case OPT_SEED:
      opt->seed = parse_size ("seed", optarg);
      break;
    case 'h':
      usage (stdout, EXIT_SUCCESS);
      break;
    default:
      usage (stderr, EXIT_FAILURE);
    }
  }
  if (optind != argc - 1)
    usage (stderr, EXIT_FAILURE);
  opt->uri = argv[optind];

  if (opt->total_bytes > 0 && !seconds_given)
    opt->seconds = 0;
  if (opt->seconds == 0 && opt->total_bytes == 0) {
    fprintf (stderr, "nbdbench: need a time (-t) or a byte (-n) limit\n");
    exit (EXIT_FAILURE);
  }
}

static const char *
check_name (enum check check)
{
  switch (check) {
  case CHECK_NONE: return "none";
  case CHECK_SPOT: return "spot";
  case CHECK_FULL: return "full";
  }
  abort ();
}

int
main (int argc, char *argv[])
{
  struct bench b = { .phase = PHASE_WARMUP };
  uint64_t start_ns = 0, end_ns = 0, stop_ns = 0, cpu_start = 0;
  uint64_t warmup_end, elapsed_ns, cpu_used;
  unsigned stalled = 0, i;
  int64_t size;
  double seconds, mib;

  parse_options (argc, argv, &b.opt);
  b.rng = b.opt.seed;

  b.nbd = nbd_create ();
  if (b.nbd == NULL)
    die_nbd ();
  if (nbd_set_pread_initialize (b.nbd, b.opt.initialize) == -1)
    die_nbd ();
  /* The URI is the operator's: it may name a TLS PSK file. */
  if (nbd_set_uri_allow_local_file (b.nbd, true) == -1)
    die_nbd ();
  if (nbd_connect_uri (b.nbd, b.opt.uri) == -1)
    die_nbd ();
  size = nbd_get_size (b.nbd);
  if (size == -1)
    die_nbd ();
  b.nr_blocks = (uint64_t) size / b.opt.block_size;
  if (b.nr_blocks == 0) {
    fprintf (stderr, "nbdbench: export (%" PRIi64 " bytes) is smaller "
             "than one block\n", size);
    exit (EXIT_FAILURE);
  }

  b.slots = calloc (b.opt.queue_depth, sizeof *b.slots);
  b.free_slots = calloc (b.opt.queue_depth, sizeof *b.free_slots);
  b.read_back = calloc (b.opt.queue_depth, sizeof *b.read_back);
  if (b.slots == NULL || b.free_slots == NULL || b.read_back == NULL) {
    perror ("calloc");
    exit (EXIT_FAILURE);
  }
  for (i = 0; i < b.opt.queue_depth; i++) {
    void *buf;
    int err = posix_memalign (&buf, 4096, b.opt.block_size);

    if (err != 0) {
      errno = err;
      perror ("posix_memalign");
      exit (EXIT_FAILURE);
    }
    b.slots[i].bench = &b;
    b.slots[i].buf = buf;
    /* Touch the pages now, not in the timed phase.  What timed writes
     * send: not zeroes, which a server might store as holes.
     */
    memset (b.slots[i].buf, b.opt.write ? 0x5a : 0, b.opt.block_size);
    b.free_slots[b.nr_free++] = &b.slots[b.opt.queue_depth - 1 - i];
  }

  warmup_end = now_ns () + (uint64_t) (b.opt.warmup * 1e9);
  for (;;) {
    uint64_t now = now_ns ();

    if (b.phase == PHASE_WARMUP && now >= warmup_end) {
      b.phase = PHASE_TIMED;
      start_ns = now;
      cpu_start = cpu_ns ();
      stop_ns = b.opt.seconds > 0
        ? now + (uint64_t) (b.opt.seconds * 1e9) : UINT64_MAX;
    }
    if (b.phase == PHASE_TIMED &&
        (now >= stop_ns ||
         (b.opt.total_bytes > 0 && b.issued_bytes >= b.opt.total_bytes)))
      b.phase = PHASE_DRAIN;

    while (b.nr_read_back > 0)
      issue_read_into (&b, b.read_back[--b.nr_read_back]);
    if (b.phase != PHASE_DRAIN) {
      while (b.nr_free > 0 &&
             (b.opt.total_bytes == 0 || b.phase == PHASE_WARMUP ||
              b.issued_bytes < b.opt.total_bytes))
        issue_one (&b);
    }
    else if (b.nr_free == b.opt.queue_depth)
      break;

    poll_once (&b, &stalled);
  }
  end_ns = now_ns ();
  cpu_used = cpu_ns () - cpu_start;

  if (nbd_aio_in_flight (b.nbd) != 0) {
    fprintf (stderr, "nbdbench: %d commands still in flight\n",
             nbd_aio_in_flight (b.nbd));
    exit (EXIT_FAILURE);
  }
  /* The completion callbacks returned 1: nothing may await retirement. */
  if (nbd_aio_peek_command_completed (b.nbd) > 0) {
    fprintf (stderr, "nbdbench: a command was not retired by its "
             "completion callback\n");
    exit (EXIT_FAILURE);
  }
  if (nbd_shutdown (b.nbd, 0) == -1)
    die_nbd ();

  if (b.io_errors > 0 || b.bad_data > 0) {
    fprintf (stderr, "nbdbench: %" PRIu64 " failed commands, %" PRIu64
             " bad data\n", b.io_errors, b.bad_data);
    exit (EXIT_FAILURE);
  }
  if (b.ops == 0) {
    fprintf (stderr, "nbdbench: no %s completed in the timed phase\n",
             b.opt.write ? "writes" : "reads");
    exit (EXIT_FAILURE);
  }

  elapsed_ns = end_ns - start_ns;
  seconds = elapsed_ns / 1e9;
  mib = b.bytes / (1024.0 * 1024.0);
  printf ("lib=%s version=%s op=%s api=%s bs=%" PRIu64 " qd=%u pattern=%s "
          "check=%s seconds=%.3f ops=%" PRIu64 " MiB/s=%.1f IOPS=%.0f "
          "usec/op=%.2f lat_usec=%.2f cpu_usec/op=%.2f\n",
          LIBRARY_NAME, nbd_get_version (b.nbd),
          b.opt.write ? "write" : "read",
          b.opt.structured ? "structured" : "pread",
          b.opt.block_size, b.opt.queue_depth,
          b.opt.random ? "random" : "sequential",
          check_name (b.opt.check), seconds, b.ops,
          mib / seconds, b.ops / seconds,
          elapsed_ns / 1e3 / b.ops,
          b.latency_ns / 1e3 / b.ops,
          cpu_used / 1e3 / b.ops);

  nbd_close (b.nbd);
  for (i = 0; i < b.opt.queue_depth; i++)
    free (b.slots[i].buf);
  free (b.slots);
  free (b.free_slots);
  free (b.read_back);
  return EXIT_SUCCESS;
}
