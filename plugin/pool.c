/* nbd-proxy: upstream handles and who shares them.
 *
 * A host connection (nbdkit's open) gets a pool of slots, each slot one
 * upstream handle.  When the upstream advertises multi-conn, host
 * connections asking for the same export share one pool of connections=N
 * handles and each request goes to a live slot (pool_get): the
 * protocol's multi-conn promise (a flush on one connection covers writes
 * completed on all, and they see each other's writes) makes that safe.
 * Without multi-conn a host connection gets a private pool of one handle,
 * so each host connection's writes and flushes stay on one upstream
 * connection.  In shared mode (shared=true, command=, socket-fd=) one pool
 * made at start-up serves everyone.  Which slot a request takes: see
 * pool_get.
 *
 * Requests run on nbdkit's threads with libnbdc's blocking calls (threads
 * of one handle take turns reading the socket), so nothing here allocates
 * per request: pool_get and pool_put are two atomic operations.
 *
 * A dead slot (its handle failed at the transport or protocol level) is
 * marked; requests skip it and, when no slot lives, fail at once with EIO.
 * Replacing a dead handle later (reconnect) swaps slot->nbd once the
 * slot's busy count is zero; the slot, not the handle, is what requests
 * hold, for that reason.
 */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "proxy.h"

struct pool {
  struct pool *next;            /* in the list of shared pools */
  char *export;                 /* which export its handles are on */
  unsigned refs;                /* host connections (under pools_lock) */
  bool listed;                  /* in the list, shareable */
  atomic_uint next_slot;        /* where the next search starts */
  unsigned nr_slots;
  struct slot slots[];
};

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool *pools;          /* multi-conn pools, by export */
static struct pool *shared_pool;    /* shared mode */

static struct pool *
pool_new (const char *export, unsigned nr_slots)
{
  struct pool *pool = calloc (1, sizeof *pool +
                              nr_slots * sizeof pool->slots[0]);

  if (pool == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  pool->export = strdup (export);
  if (pool->export == NULL) {
    nbdkit_error ("strdup: %m");
    free (pool);
    return NULL;
  }
  pool->refs = 1;
  return pool;
}

static void
pool_free (struct pool *pool)
{
  unsigned i;

  for (i = 0; i < pool->nr_slots; i++)
    upstream_close (pool->slots[i].nbd);
  free (pool->export);
  free (pool);
}

static void
pool_add (struct pool *pool, struct nbd_handle *nbd)
{
  struct slot *slot = &pool->slots[pool->nr_slots++];

  slot->nbd = nbd;
  atomic_init (&slot->dead, false);
  atomic_init (&slot->busy, 0);
}

/* No handle of the pool has died.  A slot is marked dead only when a
 * request on it fails, so a pool with one dead slot may hold more dead
 * handles nobody has tried yet (the upstream went away): such a pool is
 * not given to new host connections.
 */
static bool
pool_healthy (struct pool *pool)
{
  unsigned i;

  for (i = 0; i < pool->nr_slots; i++)
    if (atomic_load (&pool->slots[i].dead))
      return false;
  return true;
}

/* Fill a pool whose first handle is nbd: connections=N in all when the
 * upstream can multi-conn, else just that one.  A handle that fails to
 * connect leaves the pool smaller, not broken.
 */
static struct pool *
pool_build (const char *export, struct nbd_handle *nbd, bool may_share)
{
  unsigned n = 1, i;
  struct pool *pool;

  if (may_share && nbd_can_multi_conn (nbd) == 1)
    n = config.connections;
  pool = pool_new (export, n);
  if (pool == NULL)
    return NULL;
  pool_add (pool, nbd);
  for (i = 1; i < n; i++) {
    struct nbd_handle *more = upstream_connect (export);

    if (more == NULL) {
      nbdkit_debug ("pool for \"%s\": %u of %u upstream connections",
                    export, pool->nr_slots, n);
      break;
    }
    pool_add (pool, more);
  }
  return pool;
}

/* Shared mode: connect the one pool every host connection uses. */
int
pool_start_shared (void)
{
  struct nbd_handle *nbd;

  if (!config.shared)
    return 0;
  nbd = upstream_connect (config.export);
  if (nbd == NULL)
    return -1;
  /* command= and socket-fd= have one upstream connection only. */
  shared_pool = pool_build (config.export, nbd,
                            config.mode != MODE_COMMAND &&
                            config.mode != MODE_SOCKET_FD);
  if (shared_pool == NULL) {
    upstream_close (nbd);
    return -1;
  }
  return 0;
}

void
pool_stop_shared (void)
{
  if (shared_pool)
    pool_free (shared_pool);
  shared_pool = NULL;
}

/* A healthy multi-conn pool for export, with a reference taken; or NULL. */
static struct pool *
pool_find_locked (const char *export)
{
  struct pool **p;

  for (p = &pools; *p; p = &(*p)->next) {
    if (strcmp ((*p)->export, export) != 0)
      continue;
    if (pool_healthy (*p)) {
      (*p)->refs++;
      return *p;
    }
    /* A handle died: new host connections get a new pool (and fail now
     * if the upstream is gone); the old one goes when its last host
     * connection does.
     */
    (*p)->listed = false;
    *p = (*p)->next;
    break;
  }
  return NULL;
}

/* The pool for a new host connection asking for export. */
struct pool *
pool_open (const char *export)
{
  struct nbd_handle *nbd;
  struct pool *pool;

  if (config.shared) {
    pthread_mutex_lock (&pools_lock);
    shared_pool->refs++;
    pthread_mutex_unlock (&pools_lock);
    return shared_pool;
  }

  pthread_mutex_lock (&pools_lock);
  pool = pool_find_locked (export);
  pthread_mutex_unlock (&pools_lock);
  if (pool)
    return pool;

  /* The first handle says whether the upstream can multi-conn. */
  nbd = upstream_connect (export);
  if (nbd == NULL)
    return NULL;
  if (nbd_can_multi_conn (nbd) != 1 || config.connections == 1) {
    pool = pool_build (export, nbd, false);
    if (pool == NULL)
      upstream_close (nbd);
    return pool;
  }

  /* Build the shareable pool under the lock, so that host connections
   * arriving together make one pool, not several.
   */
  pthread_mutex_lock (&pools_lock);
  pool = pool_find_locked (export);
  if (pool)
    upstream_close (nbd);       /* another connection built it first */
  else {
    pool = pool_build (export, nbd, true);
    if (pool == NULL)
      upstream_close (nbd);
    else {
      pool->listed = true;
      pool->next = pools;
      pools = pool;
    }
  }
  pthread_mutex_unlock (&pools_lock);
  return pool;
}

void
pool_close (struct pool *pool)
{
  struct pool **p;
  bool last;

  pthread_mutex_lock (&pools_lock);
  last = --pool->refs == 0 && pool != shared_pool;
  if (last && pool->listed)
    for (p = &pools; *p; p = &(*p)->next)
      if (*p == pool) {
        *p = pool->next;
        break;
      }
  pthread_mutex_unlock (&pools_lock);
  if (last)
    pool_free (pool);
}

/* The handle whose answers (size, flags, block sizes) the pool reports:
 * the first live one.
 */
struct nbd_handle *
pool_info_handle (struct pool *pool)
{
  unsigned i;

  for (i = 0; i < pool->nr_slots; i++)
    if (!atomic_load (&pool->slots[i].dead))
      return pool->slots[i].nbd;
  return pool->slots[0].nbd;
}

/* Take a live slot for one request: the least busy, searching from a
 * rotating start so that ties spread.  NULL with EIO set if none lives.
 */
/* The least busy live slot of slots [first, first + n), the search
 * starting at a rotating place so equal slots share the load; NULL if all
 * are dead.
 */
static struct slot *
least_busy (struct pool *pool, unsigned first, unsigned n)
{
  unsigned start, i, best_busy = 0;
  struct slot *best = NULL;

  start = n == 1 ? 0 : atomic_fetch_add (&pool->next_slot, 1) % n;
  for (i = 0; i < n; i++) {
    struct slot *slot = &pool->slots[first + (start + i) % n];
    unsigned busy;

    if (atomic_load (&slot->dead))
      continue;
    busy = atomic_load (&slot->busy);
    if (best == NULL || busy < best_busy) {
      best = slot;
      best_busy = busy;
      if (busy == 0)
        break;
    }
  }
  return best;
}

/* A slot for a request carrying payload bytes of data (read or write; 0
 * for the others).  With several slots, small requests keep to the first
 * and large ones spread over the rest: many small requests on one socket
 * come and go in batches (one poll, one recv for many replies, on both
 * sides), where spreading them costs a poll round and a wake each; large
 * transfers gain from several sockets, and never hold up the small ones.
 * A class whose slots are all dead uses the other's.
 */
struct slot *
pool_get (struct pool *pool, uint64_t payload)
{
  unsigned n = pool->nr_slots;
  bool large = payload >= LARGE_REQUEST && n > 1;
  struct slot *slot;

  slot = large ? least_busy (pool, 1, n - 1) : least_busy (pool, 0, 1);
  if (slot == NULL)
    slot = least_busy (pool, 0, n);
  if (slot == NULL) {
    nbdkit_error ("the upstream connection is gone");
    nbdkit_set_error (EIO);
    return NULL;
  }
  atomic_fetch_add (&slot->busy, 1);
  return slot;
}

void
pool_put (struct slot *slot)
{
  atomic_fetch_sub (&slot->busy, 1);
}

/* A request on slot failed: report it to nbdkit with the upstream's errno
 * (the NBD error the server sent, unchanged), or EIO when the failure was
 * the connection's (then the slot is dead: later requests avoid it).
 * Returns -1 for the callback to return.
 */
int
upstream_failed (struct slot *slot, const char *what)
{
  int err = nbd_get_errno ();
  const char *message = nbd_get_error ();

  if (nbd_aio_is_dead (slot->nbd) || nbd_aio_is_closed (slot->nbd)) {
    if (!atomic_exchange (&slot->dead, true))
      nbdkit_error ("upstream connection lost: %s",
                    message ? message : "unknown error");
    err = EIO;
  }
  else {
    switch (err) {
    case EPERM: case EIO: case ENOMEM: case EINVAL: case ENOSPC:
    case EOVERFLOW: case ENOTSUP: case ESHUTDOWN: case EROFS:
    case EFBIG: case EDQUOT:
      break;
    default:                    /* not an NBD error: local to libnbdc */
      err = EIO;
    }
    nbdkit_error ("%s: %s", what, message ? message : strerror (err));
  }
  nbdkit_set_error (err);
  return -1;
}
