/* glib-loop: write an NBD export and read it back through a GLib main
 * loop, the way QEMU embeds an NBD client in its AioContext.
 * Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
 *
 *   glib-loop [-b SIZE] [-q DEPTH] URI
 *
 * One GSource drives the handle with nbd_aio_get_fd,
 * nbd_aio_get_direction and nbd_aio_notify_read/write alone: no threads,
 * no nbd_poll.  Its prepare asks the handle which direction it waits for
 * and follows it with g_source_modify_unix_fd; check sees what poll
 * returned; dispatch notifies the handle and then runs the program's own
 * step, which moves through the phases:
 *
 *   handshake (nbd_aio_connect_uri, until nbd_aio_is_ready)
 *   write     the whole export, DEPTH nbd_aio_pwrite in flight
 *   flush     nbd_aio_flush
 *   read      the whole export back, DEPTH nbd_aio_pread, each checked
 *   close     nbd_aio_disconnect, until nbd_aio_is_closed: quit the loop
 *
 * The data is that of nbdkit-pattern-plugin(1): each 8-byte big-endian
 * word holds its own offset, so another tool can check what landed.
 * Completion callbacks only record results: libnbd callbacks must not
 * call back into the handle, so new commands are issued from the step.
 * Exits 0 when every command succeeded and every byte read back matched.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include <libnbd.h>

#define MAX_DEPTH 256

enum phase { PHASE_HANDSHAKE, PHASE_WRITE, PHASE_FLUSH, PHASE_READ,
             PHASE_CLOSE, PHASE_DONE };

struct job;

/* One buffer and the command using it. */
struct slot {
  struct job *job;
  char *buf;
  uint64_t offset;
  size_t count;
  bool busy;
};

struct job {
  struct nbd_handle *nbd;
  GMainLoop *loop;
  enum phase phase;
  uint64_t size;
  size_t block_size;
  unsigned depth;
  struct slot *slots;
  unsigned busy;                /* commands in flight */
  uint64_t next;                /* next offset to issue in this phase */
  bool flush_done;
  int first_error;              /* errno of the first failed command */
  uint64_t bad_bytes;           /* read back wrong */
  uint64_t commands, dispatches;
  bool failed;
};

/* ----- The GSource: a handle in a GLib main loop. ----- */

typedef gboolean (*NbdSourceFunc) (struct nbd_handle *nbd,
                                   gpointer user_data);

struct nbd_source {
  GSource source;
  struct nbd_handle *nbd;
  int fd;                       /* -1: no socket watched */
  gpointer tag;                 /* of g_source_add_unix_fd */
  unsigned direction;           /* what the last prepare asked for */
  GIOCondition events;          /* the fd is watched for */
  bool kick;                    /* dispatch without waiting */
};

static GIOCondition
direction_to_condition (unsigned dir)
{
  GIOCondition cond = 0;

  if (dir & LIBNBD_AIO_DIRECTION_READ)
    cond |= G_IO_IN;
  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    cond |= G_IO_OUT;
  return cond;
}

/* Before each poll: watch the handle's socket (it may change while
 * connecting, and goes away when the handle closes) for the direction
 * the handle waits for now.  A handle that is dead or closed waits for
 * nothing: dispatch it at once so the program sees that.
 */
static gboolean
nbd_source_prepare (GSource *source, gint *timeout)
{
  struct nbd_source *s = (struct nbd_source *) source;
  struct nbd_handle *nbd = s->nbd;
  GIOCondition events;
  int fd = -1;

  *timeout = -1;
  if (s->kick)
    return TRUE;
  if (nbd_aio_is_dead (nbd) || nbd_aio_is_closed (nbd))
    s->direction = 0;
  else {
    fd = nbd_aio_get_fd (nbd);
    s->direction = nbd_aio_get_direction (nbd);
  }
  if (fd != s->fd && s->tag) {
    g_source_remove_unix_fd (source, s->tag);
    s->tag = NULL;
  }
  s->fd = fd;
  if (fd == -1)
    return s->direction == 0;
  /* Only on a change: g_source_modify_unix_fd wakes the context up, and
   * doing that in every prepare would make the loop spin.
   */
  events = direction_to_condition (s->direction);
  if (s->tag == NULL)
    s->tag = g_source_add_unix_fd (source, fd, events);
  else if (events != s->events)
    g_source_modify_unix_fd (source, s->tag, events);
  s->events = events;
  return FALSE;
}

static gboolean
nbd_source_check (GSource *source)
{
  struct nbd_source *s = (struct nbd_source *) source;

  if (s->kick)
    return TRUE;
  if (s->tag == NULL)
    return s->direction == 0;
  return g_source_query_unix_fd (source, s->tag) != 0;
}

/* Tell the handle what the socket is ready for, then run the program's
 * step.  A notify that fails kills the handle; the step sees that.
 */
static gboolean
nbd_source_dispatch (GSource *source, GSourceFunc callback,
                     gpointer user_data)
{
  struct nbd_source *s = (struct nbd_source *) source;
  NbdSourceFunc step = (NbdSourceFunc) (void *) callback;
  GIOCondition revents = s->tag && !s->kick
    ? g_source_query_unix_fd (source, s->tag) : 0;

  s->kick = false;

  if ((revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)) &&
      (s->direction & LIBNBD_AIO_DIRECTION_READ))
    nbd_aio_notify_read (s->nbd);
  /* The read may have changed what the handle waits for. */
  if ((revents & (G_IO_OUT | G_IO_ERR)) &&
      (nbd_aio_get_direction (s->nbd) & LIBNBD_AIO_DIRECTION_WRITE))
    nbd_aio_notify_write (s->nbd);
  if (step == NULL)
    return G_SOURCE_CONTINUE;
  return step (s->nbd, user_data);
}

static GSourceFuncs nbd_source_funcs = {
  .prepare = nbd_source_prepare,
  .check = nbd_source_check,
  .dispatch = nbd_source_dispatch,
};

static GSource *
nbd_source_new (struct nbd_handle *nbd)
{
  GSource *source = g_source_new (&nbd_source_funcs,
                                  sizeof (struct nbd_source));
  struct nbd_source *s = (struct nbd_source *) source;

  s->nbd = nbd;
  s->fd = -1;
  /* The call that started the handle may have advanced it as far as it
   * goes (a local server can finish the handshake inside
   * nbd_aio_connect_uri): the first dispatch comes without waiting.
   */
  s->kick = true;
  g_source_set_name (source, "nbd");
  return source;
}

/* ----- The program: phases driven from the source's dispatch. ----- */

/* nbdkit-pattern-plugin(1): each 8-byte big-endian word holds its own
 * offset; OFFSET may be unaligned.
 */
static unsigned char
pattern_byte (uint64_t offset)
{
  uint64_t word = offset & ~UINT64_C (7);

  return (word >> (8 * (7 - (offset & 7)))) & 0xff;
}

/* Whole words where the buffer is aligned to the pattern's words; any
 * bytes before and after, one at a time.
 */
static void
fill_pattern (char *buf, size_t count, uint64_t offset)
{
  size_t i = 0;

  for (; i < count && ((offset + i) & 7); i++)
    buf[i] = pattern_byte (offset + i);
  for (; i + 8 <= count; i += 8) {
    uint64_t word = htobe64 (offset + i);

    memcpy (buf + i, &word, 8);
  }
  for (; i < count; i++)
    buf[i] = pattern_byte (offset + i);
}

/* How many bytes of BUF differ from the pattern (words that match are
 * compared whole).
 */
static uint64_t
count_mismatches (const char *buf, size_t count, uint64_t offset)
{
  uint64_t bad = 0;
  size_t i = 0;

  for (; i < count; i++) {
    uint64_t word;

    if (((offset + i) & 7) == 0 && i + 8 <= count) {
      memcpy (&word, buf + i, 8);
      if (be64toh (word) == offset + i) {
        i += 7;
        continue;
      }
    }
    if ((unsigned char) buf[i] != pattern_byte (offset + i))
      bad++;
  }
  return bad;
}

static void
record_error (struct job *job, int error, const char *what,
              uint64_t offset)
{
  if (job->first_error == 0) {
    job->first_error = error;
    fprintf (stderr, "glib-loop: %s at offset %" PRIu64 " failed: %s\n",
             what, offset, strerror (error));
  }
}

static int
write_done (void *user_data, int *error)
{
  struct slot *slot = user_data;

  if (*error)
    record_error (slot->job, *error, "write", slot->offset);
  slot->busy = false;
  slot->job->busy--;
  return 1;                     /* retire the command */
}

static int
read_done (void *user_data, int *error)
{
  struct slot *slot = user_data;
  struct job *job = slot->job;

  if (*error)
    record_error (job, *error, "read", slot->offset);
  else {
    uint64_t bad = count_mismatches (slot->buf, slot->count, slot->offset);

    if (bad && job->bad_bytes == 0)
      fprintf (stderr, "glib-loop: read at offset %" PRIu64 ": %" PRIu64
               " bytes differ from what was written\n", slot->offset, bad);
    job->bad_bytes += bad;
  }
  slot->busy = false;
  job->busy--;
  return 1;
}

static int
flush_done (void *user_data, int *error)
{
  struct job *job = user_data;

  if (*error)
    record_error (job, *error, "flush", 0);
  job->flush_done = true;
  job->busy--;
  return 1;
}

static void
fail (struct job *job, const char *what)
{
  fprintf (stderr, "glib-loop: %s: %s\n", what, nbd_get_error ());
  job->failed = true;
  g_main_loop_quit (job->loop);
}

/* Keep DEPTH writes or reads in flight until the export is covered. */
static bool
issue_io (struct job *job)
{
  for (unsigned i = 0; i < job->depth && job->next < job->size; i++) {
    struct slot *slot = &job->slots[i];
    int64_t cookie;

    if (slot->busy)
      continue;
    slot->offset = job->next;
    slot->count = MIN (job->block_size, job->size - job->next);
    if (job->phase == PHASE_WRITE) {
      fill_pattern (slot->buf, slot->count, slot->offset);
      cookie = nbd_aio_pwrite (job->nbd, slot->buf, slot->count,
                               slot->offset,
                               (nbd_completion_callback) {
                                 .callback = write_done,
                                 .user_data = slot },
                               0);
    }
    else {
      memset (slot->buf, 0xa5, slot->count);    /* no stale pass */
      cookie = nbd_aio_pread (job->nbd, slot->buf, slot->count,
                              slot->offset,
                              (nbd_completion_callback) {
                                .callback = read_done,
                                .user_data = slot },
                              0);
    }
    if (cookie == -1) {
      fail (job, job->phase == PHASE_WRITE ? "nbd_aio_pwrite"
            : "nbd_aio_pread");
      return false;
    }
    slot->busy = true;
    job->busy++;
    job->commands++;
    job->next += slot->count;
  }
  return true;
}

static void
start_phase (struct job *job, enum phase phase)
{
  job->phase = phase;
  job->next = 0;
}

/* The source's callback: after each dispatch, move the job on. */
static gboolean
step (struct nbd_handle *nbd, gpointer user_data)
{
  struct job *job = user_data;

  job->dispatches++;
  if (job->phase != PHASE_CLOSE && nbd_aio_is_dead (nbd)) {
    fail (job, "the connection died");
    return G_SOURCE_REMOVE;
  }
  switch (job->phase) {
  case PHASE_HANDSHAKE:
    if (!nbd_aio_is_ready (nbd))
      break;
    if (nbd_is_read_only (nbd) == 1) {
      fprintf (stderr, "glib-loop: the export is read-only\n");
      job->failed = true;
      g_main_loop_quit (job->loop);
      return G_SOURCE_REMOVE;
    }
    if (nbd_get_size (nbd) <= 0) {
      fail (job, "nbd_get_size");
      return G_SOURCE_REMOVE;
    }
    job->size = nbd_get_size (nbd);
    start_phase (job, PHASE_WRITE);
    /* fall through */
  case PHASE_WRITE:
  case PHASE_READ:
    if (!issue_io (job))
      return G_SOURCE_REMOVE;
    if (job->busy > 0 || job->next < job->size)
      break;
    if (job->phase == PHASE_READ) {
      start_phase (job, PHASE_CLOSE);
      if (nbd_aio_disconnect (nbd, 0) == -1) {
        fail (job, "nbd_aio_disconnect");
        return G_SOURCE_REMOVE;
      }
      break;
    }
    start_phase (job, PHASE_FLUSH);
    if (nbd_can_flush (nbd) == 1) {
      if (nbd_aio_flush (nbd, (nbd_completion_callback) {
                           .callback = flush_done, .user_data = job },
                         0) == -1) {
        fail (job, "nbd_aio_flush");
        return G_SOURCE_REMOVE;
      }
      job->busy++;
      job->commands++;
      break;
    }
    job->flush_done = true;
    /* fall through */
  case PHASE_FLUSH:
    if (!job->flush_done)
      break;
    start_phase (job, PHASE_READ);
    if (!issue_io (job))
      return G_SOURCE_REMOVE;
    break;
  case PHASE_CLOSE:
    if (nbd_aio_is_closed (nbd) || nbd_aio_is_dead (nbd)) {
      job->phase = PHASE_DONE;
      g_main_loop_quit (job->loop);
      return G_SOURCE_REMOVE;
    }
    break;
  case PHASE_DONE:
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static size_t
parse_size (const char *arg)
{
  char *end;
  unsigned long long n;

  errno = 0;
  n = strtoull (arg, &end, 10);
  if (*end == 'k' || *end == 'K')
    n *= 1024, end++;
  else if (*end == 'm' || *end == 'M')
    n *= 1024 * 1024, end++;
  if (errno || end == arg || *end || n == 0 || n > 32 * 1024 * 1024) {
    fprintf (stderr, "glib-loop: bad size: %s\n", arg);
    exit (EXIT_FAILURE);
  }
  return n;
}

int
main (int argc, char *argv[])
{
  struct job job = { .block_size = 256 * 1024, .depth = 16 };
  GSource *source;
  gint64 start;
  double secs;
  int c;

  while ((c = getopt (argc, argv, "b:q:")) != -1) {
    switch (c) {
    case 'b': job.block_size = parse_size (optarg); break;
    case 'q': job.depth = atoi (optarg); break;
    default: goto usage;
    }
  }
  if (optind != argc - 1)
    goto usage;
  if (job.depth < 1 || job.depth > MAX_DEPTH) {
    fprintf (stderr, "glib-loop: -q must be 1..%d\n", MAX_DEPTH);
    exit (EXIT_FAILURE);
  }

  job.slots = g_new0 (struct slot, job.depth);
  for (unsigned i = 0; i < job.depth; i++) {
    job.slots[i].job = &job;
    job.slots[i].buf = g_malloc (job.block_size);
  }
  job.nbd = nbd_create ();
  if (job.nbd == NULL) {
    fprintf (stderr, "glib-loop: nbd_create: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  job.loop = g_main_loop_new (NULL, FALSE);
  start = g_get_monotonic_time ();

  /* The URI is the user's own: it may name a TLS PSK file or
   * certificates directory (nbds://...?tls-psk-file=...).
   */
  if (nbd_set_uri_allow_local_file (job.nbd, true) == -1) {
    fprintf (stderr, "glib-loop: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  /* Starts connecting; the handshake (TLS included) runs in the loop. */
  if (nbd_aio_connect_uri (job.nbd, argv[optind]) == -1) {
    fprintf (stderr, "glib-loop: %s: %s\n", argv[optind], nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  source = nbd_source_new (job.nbd);
  g_source_set_callback (source, (GSourceFunc) (void *) step, &job, NULL);
  g_source_attach (source, NULL);

  g_main_loop_run (job.loop);

  g_source_destroy (source);
  g_source_unref (source);
  g_main_loop_unref (job.loop);

  secs = (g_get_monotonic_time () - start) / 1e6;
  printf ("glib-loop: %" PRIu64 " bytes written and read back in %.3f s: "
          "%" PRIu64 " commands, %" PRIu64 " dispatches, queue depth %u, "
          "%zu-byte requests\n", job.size, secs, job.commands,
          job.dispatches, job.depth, job.block_size);
  if (job.phase != PHASE_DONE)
    job.failed = true;
  if (job.first_error || job.bad_bytes)
    job.failed = true;
  printf ("glib-loop: %s\n", job.failed ? "FAILED" : "ok");

  nbd_close (job.nbd);
  for (unsigned i = 0; i < job.depth; i++)
    g_free (job.slots[i].buf);
  g_free (job.slots);
  return job.failed ? EXIT_FAILURE : EXIT_SUCCESS;

 usage:
  fprintf (stderr, "usage: glib-loop [-b SIZE] [-q DEPTH] URI\n");
  exit (EXIT_FAILURE);
}
