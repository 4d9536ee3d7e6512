/* nbd-proxy: an nbdkit plugin that re-serves an export of another NBD
 * server through libnbdc.  Every callback forwards to the upstream and
 * mirrors its answer; see docs/nbdkit-nbd-proxy-plugin.1.
 */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "proxy.h"

/* Requests of one host connection run in parallel too. */
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static void
proxy_unload (void)
{
  pool_stop_shared ();
  proxy_config_unload ();
}

static void
proxy_dump_plugin (void)
{
  struct nbd_handle *nbd = nbd_create ();

  if (nbd) {
    printf ("libnbdc_version=%s\n", nbd_get_version (nbd));
    printf ("libnbdc_uri=%d\n", nbd_supports_uri (nbd) == 1);
    printf ("libnbdc_tls=%d\n", nbd_supports_tls (nbd) == 1);
    nbd_close (nbd);
  }
#ifdef LIBNBD_HAVE_NBD_CONNECT_VSOCK
  printf ("libnbdc_vsock=1\n");
#endif
  printf ("libnbdc_dynamic_list=1\n");
  printf ("nbd_proxy_connections_default=%d\n", PROXY_CONNECTIONS_DEFAULT);
  proxy_dump_keys ();
}

/* Before nbdkit forks: check that the upstream answers. */
static int
proxy_get_ready (void)
{
  return upstream_probe ();
}

/* After the fork: the shared connection (command= must be our child). */
static int
proxy_after_fork (void)
{
  return pool_start_shared ();
}

static int
proxy_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  return upstream_list_exports (exports);
}

static const char *
proxy_default_export (int readonly, int is_tls)
{
  /* Dynamic: the name the upstream gives its default export. */
  return config.dynamic_export ? upstream_default_export () : config.export;
}

static void *
proxy_open (int readonly)
{
  const char *export = config.export;

  if (config.dynamic_export) {
    export = nbdkit_export_name ();
    if (export == NULL)
      export = "";
  }
  return pool_open (export);
}

static void
proxy_close (void *handle)
{
  pool_close (handle);
}

/* A question about the export, answered by the upstream's handshake. */
#define INFO(h) pool_info_handle ((struct pool *) (h))

static int
info_failed (const char *what)
{
  nbdkit_error ("%s: %s", what, nbd_get_error ());
  nbdkit_set_error (EIO);
  return -1;
}

static int64_t
proxy_get_size (void *handle)
{
  int64_t size = nbd_get_size (INFO (handle));

  return size == -1 ? info_failed ("get_size") : size;
}

static const char *
proxy_export_description (void *handle)
{
  char *description = nbd_get_export_description (INFO (handle));
  const char *r;

  if (description == NULL)
    return NULL;                /* none: not an error */
  r = nbdkit_strdup_intern (description);
  free (description);
  return r;
}

static int
proxy_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                  uint32_t *maximum)
{
  struct nbd_handle *nbd = INFO (handle);
  int64_t min = nbd_get_block_size (nbd, LIBNBD_SIZE_MINIMUM);
  int64_t pref = nbd_get_block_size (nbd, LIBNBD_SIZE_PREFERRED);
  int64_t max = nbd_get_block_size (nbd, LIBNBD_SIZE_MAXIMUM);

  if (min == -1 || pref == -1 || max == -1)
    return info_failed ("block_size");
  /* All three or nothing: the upstream advertised none, or libnbdc
   * ignored an advertisement that broke the rules.
   */
  if (min == 0 || pref == 0 || max == 0)
    min = pref = max = 0;
  *minimum = min;
  *preferred = pref;
  *maximum = max;
  return 0;
}

/* can_* answers: 1, 0, or -1 on error. */
static int
flag_answer (int r, const char *what)
{
  return r == -1 ? info_failed (what) : r;
}

static int
proxy_can_write (void *handle)
{
  int r = nbd_is_read_only (INFO (handle));

  return r == -1 ? info_failed ("can_write") : !r;
}

static int
proxy_can_flush (void *handle)
{
  return flag_answer (nbd_can_flush (INFO (handle)), "can_flush");
}

static int
proxy_is_rotational (void *handle)
{
  return flag_answer (nbd_is_rotational (INFO (handle)), "is_rotational");
}

static int
proxy_can_trim (void *handle)
{
  return flag_answer (nbd_can_trim (INFO (handle)), "can_trim");
}

static int
proxy_can_zero (void *handle)
{
  return flag_answer (nbd_can_zero (INFO (handle)), "can_zero");
}

static int
proxy_can_fast_zero (void *handle)
{
  return flag_answer (nbd_can_fast_zero (INFO (handle)), "can_fast_zero");
}

static int
proxy_can_fua (void *handle)
{
  int r = nbd_can_fua (INFO (handle));

  if (r == -1)
    return info_failed ("can_fua");
  return r ? NBDKIT_FUA_NATIVE : NBDKIT_FUA_NONE;
}

static int
proxy_can_multi_conn (void *handle)
{
  return flag_answer (nbd_can_multi_conn (INFO (handle)), "can_multi_conn");
}

static int
proxy_can_cache (void *handle)
{
  int r = nbd_can_cache (INFO (handle));

  if (r == -1)
    return info_failed ("can_cache");
  return r ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE;
}

static int
proxy_can_extents (void *handle)
{
  int r = nbd_can_meta_context (INFO (handle),
                                LIBNBD_CONTEXT_BASE_ALLOCATION);

  return flag_answer (r, "can_extents");
}

/* Structured reads land in nbdkit's buffer; libnbdc zeroes holes and
 * fails the read on error chunks, so each chunk needs nothing more.
 */
static int
read_chunk (void *user_data, const void *subbuf, size_t count,
            uint64_t offset, unsigned status, int *error)
{
  return 0;
}

static int
proxy_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
             uint32_t flags)
{
  struct slot *slot = pool_get (handle, count);
  int r;

  if (slot == NULL)
    return -1;
  r = nbd_pread_structured (slot->nbd, buf, count, offset,
                            (nbd_chunk_callback) { .callback = read_chunk },
                            0);
  if (r == -1)
    upstream_failed (slot, "pread");
  pool_put (slot);
  return r;
}

static int
proxy_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  struct slot *slot = pool_get (handle, count);
  int r;

  if (slot == NULL)
    return -1;
  r = nbd_pwrite (slot->nbd, buf, count, offset,
                  flags & NBDKIT_FLAG_FUA ? LIBNBD_CMD_FLAG_FUA : 0);
  if (r == -1)
    upstream_failed (slot, "pwrite");
  pool_put (slot);
  return r;
}

static int
proxy_flush (void *handle, uint32_t flags)
{
  struct slot *slot = pool_get (handle, 0);
  int r;

  if (slot == NULL)
    return -1;
  r = nbd_flush (slot->nbd, 0);
  if (r == -1)
    upstream_failed (slot, "flush");
  pool_put (slot);
  return r;
}

static int
proxy_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct slot *slot = pool_get (handle, 0);
  int r;

  if (slot == NULL)
    return -1;
  r = nbd_trim (slot->nbd, count, offset,
                flags & NBDKIT_FLAG_FUA ? LIBNBD_CMD_FLAG_FUA : 0);
  if (r == -1)
    upstream_failed (slot, "trim");
  pool_put (slot);
  return r;
}

static int
proxy_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct slot *slot = pool_get (handle, 0);
  uint32_t f = 0;
  int r;

  if (slot == NULL)
    return -1;
  if (flags & NBDKIT_FLAG_FUA)
    f |= LIBNBD_CMD_FLAG_FUA;
  if (!(flags & NBDKIT_FLAG_MAY_TRIM))
    f |= LIBNBD_CMD_FLAG_NO_HOLE;
  if (flags & NBDKIT_FLAG_FAST_ZERO)
    f |= LIBNBD_CMD_FLAG_FAST_ZERO;
  r = nbd_zero (slot->nbd, count, offset, f);
  if (r == -1)
    upstream_failed (slot, "zero");
  pool_put (slot);
  return r;
}

static int
proxy_cache (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct slot *slot = pool_get (handle, 0);
  int r;

  if (slot == NULL)
    return -1;
  r = nbd_cache (slot->nbd, count, offset, 0);
  if (r == -1)
    upstream_failed (slot, "cache");
  pool_put (slot);
  return r;
}

/* What the extent callback fills in. */
struct extents_reply {
  struct nbdkit_extents *extents;
  bool seen;                    /* a base:allocation chunk came */
};

/* Each base:allocation descriptor (length, flags) becomes an nbdkit
 * extent; nbdkit drops what lies outside the request.  The NBD spec
 * allows one chunk per context; libnbd's (and libnbdc's) callback may see
 * more from a buggy server: the first is taken, the rest ignored.
 */
static int
add_extents (void *user_data, const char *metacontext, uint64_t offset,
             uint32_t *entries, size_t nr_entries, int *error)
{
  struct extents_reply *reply = user_data;
  size_t i;

  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  if (reply->seen) {
    nbdkit_debug ("upstream sent another base:allocation chunk: ignored");
    return 0;
  }
  reply->seen = true;
  for (i = 0; i + 1 < nr_entries; i += 2) {
    uint32_t type = entries[i + 1] & (LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);

    if (nbdkit_add_extent (reply->extents, offset, entries[i], type) == -1) {
      *error = errno ? errno : EIO;
      return -1;
    }
    offset += entries[i];
  }
  return 0;
}

static int
proxy_extents (void *handle, uint32_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_extents *extents)
{
  struct slot *slot = pool_get (handle, 0);
  struct extents_reply reply = { .extents = extents };
  int r;

  if (slot == NULL)
    return -1;
  r = nbd_block_status (slot->nbd, count, offset,
                        (nbd_extent_callback) { .callback = add_extents,
                                                .user_data = &reply },
                        flags & NBDKIT_FLAG_REQ_ONE ?
                        LIBNBD_CMD_FLAG_REQ_ONE : 0);
  if (r == -1)
    upstream_failed (slot, "extents");
  pool_put (slot);
  /* Success without a base:allocation chunk (a server that could not say,
   * see nbd_block_status(3)): allocated data, the answer that is always
   * true.
   */
  if (r == 0 && !reply.seen) {
    nbdkit_debug ("upstream sent no base:allocation extents: data");
    r = nbdkit_add_extent (extents, offset, count, 0);
  }
  return r;
}

#define PROXY_CONFIG_HELP \
  "[uri=]URI             Upstream NBD URI (nbd://, nbd+unix://, ...).\n" \
  "socket=PATH           Upstream Unix socket.\n" \
  "hostname=HOST         Upstream TCP host,\n" \
  "port=PORT              and port (default 10809; also for vsock=).\n" \
  "vsock=CID             Upstream vsock CID.\n" \
  "command=CMD [arg=ARG]...  Run an NBD server on stdin/stdout (shared).\n" \
  "socket-fd=FD          Upstream over an inherited socket (shared).\n" \
  "export=NAME           Upstream export (default: what the client asks).\n" \
  "dynamic-export=BOOL   Pass the client's export name upstream.\n" \
  "retry=N               Retry connecting N times, 1 s apart.\n" \
  "shared=BOOL           One upstream for all clients, made at start.\n" \
  "connections=N         Upstream pool size when it can multi-conn " \
  "(default 4).\n" \
  "tls=off|on|require    TLS to the upstream.\n" \
  "tls-certificates=DIR  X.509 client certificates.\n" \
  "tls-verify=BOOL       Verify the server's certificate (default true).\n" \
  "tls-username=NAME     TLS user name.\n" \
  "tls-psk=FILE          TLS pre-shared keys."

static struct nbdkit_plugin plugin = {
  .name               = "nbd-proxy",
  .longname           = "nbd-proxy (libnbdc)",
  .version            = PACKAGE_VERSION,
  .description        = "Re-serve an export of another NBD server",
  .unload             = proxy_unload,
  .config             = proxy_config_key,
  .config_complete    = proxy_config_complete,
  .config_help        = PROXY_CONFIG_HELP,
  .magic_config_key   = "uri",
  .dump_plugin        = proxy_dump_plugin,
  .get_ready          = proxy_get_ready,
  .after_fork         = proxy_after_fork,
  .list_exports       = proxy_list_exports,
  .default_export     = proxy_default_export,
  .open               = proxy_open,
  .close              = proxy_close,
  .export_description = proxy_export_description,
  .get_size           = proxy_get_size,
  .block_size         = proxy_block_size,
  .can_write          = proxy_can_write,
  .can_flush          = proxy_can_flush,
  .is_rotational      = proxy_is_rotational,
  .can_trim           = proxy_can_trim,
  .can_zero           = proxy_can_zero,
  .can_fast_zero      = proxy_can_fast_zero,
  .can_fua            = proxy_can_fua,
  .can_multi_conn     = proxy_can_multi_conn,
  .can_extents        = proxy_can_extents,
  .can_cache          = proxy_can_cache,
  .pread              = proxy_pread,
  .pwrite             = proxy_pwrite,
  .flush              = proxy_flush,
  .trim               = proxy_trim,
  .zero               = proxy_zero,
  .cache              = proxy_cache,
  .extents            = proxy_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
