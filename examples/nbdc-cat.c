/* nbdc-cat: read a whole NBD export with nbd_aio_pread_structured, driven
 * by the program's own poll(2) loop (nbd_aio_get_fd, nbd_aio_get_direction,
 * nbd_aio_notify_read/write), the way a host event loop embeds libnbdc.
 *
 *   nbdc-cat [-o FILE] [-q DEPTH] [URI]
 *
 * With no URI it runs an embedded upstream, "nbdkit -s pattern size=64M",
 * through nbd_connect_command (gone again when the handle closes), and
 * checks the pattern it reads.  It prints what the handshake learned and a
 * summary of the chunks; -o writes the export's contents to FILE.
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#define MAX_DEPTH 64
#define REQUEST_SIZE (1024 * 1024)

struct slot {
  char *buf;
  uint64_t offset;
  size_t count;
  int64_t cookie;               /* 0: free */
};

static uint64_t data_chunks, hole_chunks, data_bytes, hole_bytes;

static int
chunk_seen (void *user_data, const void *subbuf, size_t count,
            uint64_t offset, unsigned status, int *error)
{
  if (status == LIBNBD_READ_DATA) {
    data_chunks++;
    data_bytes += count;
  }
  else if (status == LIBNBD_READ_HOLE) {
    hole_chunks++;
    hole_bytes += count;
  }
  return 0;
}

static void
die (const char *what)
{
  fprintf (stderr, "nbdc-cat: %s: %s\n", what, nbd_get_error ());
  exit (EXIT_FAILURE);
}

/* One turn of the host event loop. */
static void
wait_and_notify (struct nbd_handle *h)
{
  struct pollfd fds = { .fd = nbd_aio_get_fd (h) };
  unsigned dir = nbd_aio_get_direction (h);

  if (fds.fd == -1)
    die ("nbd_aio_get_fd");
  if (dir & LIBNBD_AIO_DIRECTION_READ)
    fds.events |= POLLIN;
  if (dir & LIBNBD_AIO_DIRECTION_WRITE)
    fds.events |= POLLOUT;
  if (poll (&fds, 1, -1) == -1) {
    perror ("poll");
    exit (EXIT_FAILURE);
  }
  if ((fds.revents & (POLLIN | POLLHUP | POLLERR)) &&
      nbd_aio_notify_read (h) == -1)
    die ("nbd_aio_notify_read");
  if ((fds.revents & POLLOUT) && nbd_aio_notify_write (h) == -1)
    die ("nbd_aio_notify_write");
}

/* The pattern plugin: each 8-byte big-endian word holds its own offset. */
static uint64_t
check_pattern (const char *buf, uint64_t offset, size_t count)
{
  uint64_t bad = 0;

  for (size_t i = 0; i + 8 <= count; i += 8) {
    uint64_t v;

    memcpy (&v, buf + i, 8);
    if (be64toh (v) != offset + i)
      bad++;
  }
  return bad;
}

int
main (int argc, char *argv[])
{
  char *default_upstream[] = {
    "nbdkit", "-s", "--exit-with-parent", "pattern", "size=64M", NULL
  };
  struct slot slots[MAX_DEPTH] = { 0 };
  const char *output = NULL;
  struct nbd_handle *h;
  struct timespec t0, t1;
  uint64_t size, next = 0, bad = 0, done = 0;
  int depth = 8, out_fd = -1, c;
  char *s;

  while ((c = getopt (argc, argv, "o:q:")) != -1) {
    switch (c) {
    case 'o': output = optarg; break;
    case 'q': depth = atoi (optarg); break;
    default:
      fprintf (stderr, "usage: nbdc-cat [-o FILE] [-q DEPTH] [URI]\n");
      exit (EXIT_FAILURE);
    }
  }
  if (depth < 1 || depth > MAX_DEPTH) {
    fprintf (stderr, "nbdc-cat: -q must be 1..%d\n", MAX_DEPTH);
    exit (EXIT_FAILURE);
  }

  h = nbd_create ();
  if (h == NULL)
    die ("nbd_create");
  if (optind < argc) {
    if (nbd_connect_uri (h, argv[optind]) == -1)
      die (argv[optind]);
  }
  else {
    printf ("no URI given: reading an embedded upstream: "
            "nbdkit -s pattern size=64M\n");
    if (nbd_connect_command (h, default_upstream) == -1)
      die ("nbdkit");
  }

  size = nbd_get_size (h);
  printf ("protocol: %s, structured replies: %s\n", nbd_get_protocol (h),
          nbd_get_structured_replies_negotiated (h) ? "yes" : "no");
  printf ("size: %" PRIu64 " bytes%s%s%s\n", size,
          nbd_is_read_only (h) ? ", read-only" : "",
          nbd_can_df (h) ? ", can DF" : "",
          nbd_can_multi_conn (h) ? ", multi-conn" : "");
  if ((s = nbd_get_uri (h)) != NULL) {
    printf ("uri: %s\n", s);
    free (s);
  }
  if (nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED) > 0)
    printf ("block sizes: minimum %" PRId64 ", preferred %" PRId64
            ", maximum %" PRId64 "\n",
            nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM),
            nbd_get_block_size (h, LIBNBD_SIZE_PREFERRED),
            nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM));

  if (output) {
    out_fd = open (output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd == -1) {
      perror (output);
      exit (EXIT_FAILURE);
    }
  }
  for (int i = 0; i < depth; i++)
    if ((slots[i].buf = malloc (REQUEST_SIZE)) == NULL) {
      perror ("malloc");
      exit (EXIT_FAILURE);
    }

  clock_gettime (CLOCK_MONOTONIC, &t0);
  while (done < size) {
    /* Keep the queue full. */
    for (int i = 0; i < depth && next < size; i++) {
      if (slots[i].cookie)
        continue;
      slots[i].offset = next;
      slots[i].count = size - next < REQUEST_SIZE ? size - next
        : REQUEST_SIZE;
      slots[i].cookie = nbd_aio_pread_structured (
        h, slots[i].buf, slots[i].count, slots[i].offset,
        (nbd_chunk_callback) { .callback = chunk_seen },
        NBD_NULL_COMPLETION, 0);
      if (slots[i].cookie == -1)
        die ("nbd_aio_pread_structured");
      next += slots[i].count;
    }
    wait_and_notify (h);
    /* Retire what finished. */
    for (int i = 0; i < depth; i++) {
      int r;

      if (!slots[i].cookie)
        continue;
      r = nbd_aio_command_completed (h, slots[i].cookie);
      if (r == -1)
        die ("read");
      if (r == 0)
        continue;
      if (optind >= argc)
        bad += check_pattern (slots[i].buf, slots[i].offset, slots[i].count);
      if (out_fd >= 0 &&
          pwrite (out_fd, slots[i].buf, slots[i].count, slots[i].offset)
          != (ssize_t) slots[i].count) {
        perror (output);
        exit (EXIT_FAILURE);
      }
      done += slots[i].count;
      slots[i].cookie = 0;
    }
  }
  clock_gettime (CLOCK_MONOTONIC, &t1);

  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf ("read %" PRIu64 " bytes in %.3f s (%.1f MiB/s), queue depth %d: "
          "%" PRIu64 " data chunks (%" PRIu64 " bytes), %" PRIu64
          " hole chunks (%" PRIu64 " bytes)\n", done, secs,
          secs > 0 ? done / secs / 1048576 : 0.0, depth, data_chunks,
          data_bytes, hole_chunks, hole_bytes);
  if (optind >= argc)
    printf ("pattern check: %s\n", bad ? "FAILED" : "ok");

  if (nbd_shutdown (h, 0) == -1)
    die ("nbd_shutdown");
  nbd_close (h);
  for (int i = 0; i < depth; i++)
    free (slots[i].buf);
  if (out_fd >= 0 && close (out_fd) == -1) {
    perror (output);
    exit (EXIT_FAILURE);
  }
  return bad ? EXIT_FAILURE : EXIT_SUCCESS;
}
