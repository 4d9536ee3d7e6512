/* nbd-commands: run NBD commands given on the command line against one
 * export and print each one's outcome, for comparing a server reached
 * directly with the same server through nbd-proxy (plugin-commands.sh).
 * Built against libnbd itself: the host client is the reference client.
 *
 * Usage: nbd-commands URI COMMAND...
 *
 * Each COMMAND is NAME:OFFSET:COUNT[:FLAGS] (FLAGS: f FUA, z FAST_ZERO,
 * h NO_HOLE, 1 REQ_ONE), or flush[:f], or can:WHAT (fua, flush, trim,
 * zero, fast_zero, cache, multi_conn, df, meta_context).  NAME is one of
 * read, write (bytes 0x5a), zero, trim, cache, extents.  Each prints one
 * line: the command, then "ok" (for read with a hash of the bytes; for
 * extents, the extents come before it), or the errno's name, or for can:
 * the answer.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

static const char *
errno_name (int err)
{
  switch (err) {
  case 0: return "0";
  case EPERM: return "EPERM";
  case EIO: return "EIO";
  case ENOMEM: return "ENOMEM";
  case EINVAL: return "EINVAL";
  case ENOSPC: return "ENOSPC";
  case EOVERFLOW: return "EOVERFLOW";
  case ENOTSUP: return "ENOTSUP";
  case ESHUTDOWN: return "ESHUTDOWN";
  case EROFS: return "EROFS";
  default: return "other";
  }
}

static uint32_t
parse_flags (const char *s)
{
  uint32_t f = 0;

  for (; s && *s; s++)
    switch (*s) {
    case 'f': f |= LIBNBD_CMD_FLAG_FUA; break;
    case 'z': f |= LIBNBD_CMD_FLAG_FAST_ZERO; break;
    case 'h': f |= LIBNBD_CMD_FLAG_NO_HOLE; break;
    case '1': f |= LIBNBD_CMD_FLAG_REQ_ONE; break;
    default:
      fprintf (stderr, "nbd-commands: unknown flag %c\n", *s);
      exit (EXIT_FAILURE);
    }
  return f;
}

static int
print_extents (void *user_data, const char *metacontext, uint64_t offset,
               uint32_t *entries, size_t nr_entries, int *error)
{
  size_t i;

  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (i = 0; i + 1 < nr_entries; i += 2)
    printf (" %" PRIu32 "/%" PRIu32, entries[i], entries[i + 1]);
  return 0;
}

static int
can (struct nbd_handle *h, const char *what)
{
  if (strcmp (what, "fua") == 0) return nbd_can_fua (h);
  if (strcmp (what, "flush") == 0) return nbd_can_flush (h);
  if (strcmp (what, "trim") == 0) return nbd_can_trim (h);
  if (strcmp (what, "zero") == 0) return nbd_can_zero (h);
  if (strcmp (what, "fast_zero") == 0) return nbd_can_fast_zero (h);
  if (strcmp (what, "cache") == 0) return nbd_can_cache (h);
  if (strcmp (what, "multi_conn") == 0) return nbd_can_multi_conn (h);
  if (strcmp (what, "df") == 0) return nbd_can_df (h);
  if (strcmp (what, "meta_context") == 0)
    return nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);
  fprintf (stderr, "nbd-commands: unknown can:%s\n", what);
  exit (EXIT_FAILURE);
}

int
main (int argc, char *argv[])
{
  struct nbd_handle *h;
  int i, status = EXIT_SUCCESS;

  if (argc < 2) {
    fprintf (stderr, "usage: nbd-commands URI COMMAND...\n");
    return EXIT_FAILURE;
  }
  h = nbd_create ();
  if (h == NULL ||
      nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
      nbd_connect_uri (h, argv[1]) == -1) {
    fprintf (stderr, "nbd-commands: %s\n", nbd_get_error ());
    return EXIT_FAILURE;
  }

  for (i = 2; i < argc; i++) {
    char *copy = strdup (argv[i]), *save = NULL;
    const char *name = strtok_r (copy, ":", &save);
    const char *a = strtok_r (NULL, ":", &save);
    const char *b = strtok_r (NULL, ":", &save);
    const char *c = strtok_r (NULL, ":", &save);
    uint64_t offset = a ? strtoull (a, NULL, 0) : 0;
    uint64_t count = b ? strtoull (b, NULL, 0) : 0;
    uint32_t flags = parse_flags (c);
    unsigned char *buf = NULL;
    int r;

    printf ("%s", argv[i]);
    if (strcmp (name, "can") == 0) {
      r = can (h, a);
      if (r == -1)
        printf (" %s\n", errno_name (nbd_get_errno ()));
      else
        printf (" %d\n", r);
      free (copy);
      continue;
    }
    if (strcmp (name, "read") == 0 || strcmp (name, "write") == 0) {
      buf = malloc (count ? count : 1);
      if (buf == NULL) {
        perror ("malloc");
        return EXIT_FAILURE;
      }
      memset (buf, 0x5a, count);
    }
    if (strcmp (name, "read") == 0)
      r = nbd_pread (h, buf, count, offset, flags);
    else if (strcmp (name, "write") == 0)
      r = nbd_pwrite (h, buf, count, offset, flags);
    else if (strcmp (name, "zero") == 0)
      r = nbd_zero (h, count, offset, flags);
    else if (strcmp (name, "trim") == 0)
      r = nbd_trim (h, count, offset, flags);
    else if (strcmp (name, "cache") == 0)
      r = nbd_cache (h, count, offset, flags);
    else if (strcmp (name, "flush") == 0)
      r = nbd_flush (h, parse_flags (a));
    else if (strcmp (name, "extents") == 0)
      r = nbd_block_status (h, count, offset,
                            (nbd_extent_callback) {
                              .callback = print_extents }, flags);
    else {
      fprintf (stderr, "nbd-commands: unknown command %s\n", name);
      return EXIT_FAILURE;
    }
    if (r == -1)
      printf (" %s\n", errno_name (nbd_get_errno ()));
    else if (strcmp (name, "read") == 0) {
      uint64_t sum = 0, j;

      for (j = 0; j < count; j++)
        sum = sum * 31 + buf[j];
      printf (" ok %016" PRIx64 "\n", sum);
    }
    else
      printf (" ok\n");
    if (nbd_aio_is_dead (h)) {
      printf ("handle dead: %s\n", nbd_get_error ());
      status = EXIT_FAILURE;
      break;
    }
    free (buf);
    free (copy);
  }
  nbd_shutdown (h, 0);
  nbd_close (h);
  return status;
}
