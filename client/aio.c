/* libnbdc: the nbd_aio_* entry points.  The library starts no threads: a
 * host event loop drives a handle with nbd_aio_get_fd,
 * nbd_aio_get_direction and nbd_aio_notify_read/write (machine.c does the
 * work), and nbd_poll is that loop in its simplest form.
 */

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
nbd_poll (struct nbd_handle *h, int timeout)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = poll_once (h, timeout, NULL);
  leave_socket (h);
  unlock_handle (h);
  return r;
}

int
nbd_aio_get_fd (struct nbd_handle *h)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = h->fd;
  if (r < 0)
    set_error (EINVAL, "invalid state: %s: the handle has no socket",
               state_name (h));
  unlock_handle (h);
  return r;
}

unsigned
nbd_aio_get_direction (struct nbd_handle *h)
{
  unsigned r;

  lock_handle (h);
  r = direction (h);
  unlock_handle (h);
  return r;
}

/* The host says the socket is ready for what direction (3) asked for; in
 * a state that waits for no such event the call is refused, as in libnbd.
 */
static int
notify (struct nbd_handle *h, unsigned event)
{
  int r = -1;

  lock_handle (h);
  if (!(direction (h) & event))
    set_error (EINVAL, "invalid state: %s: the handle is not waiting to %s",
               state_name (h),
               event == LIBNBD_AIO_DIRECTION_READ ? "read" : "write");
  else
    r = run_machine (h);
  unlock_handle (h);
  return r;
}

int
nbd_aio_notify_read (struct nbd_handle *h)
{
  ENTER ();
  return notify (h, LIBNBD_AIO_DIRECTION_READ);
}

int
nbd_aio_notify_write (struct nbd_handle *h)
{
  ENTER ();
  return notify (h, LIBNBD_AIO_DIRECTION_WRITE);
}

/* ----- Issuing commands. ----- */

static int
check_ready (struct nbd_handle *h)
{
  if (h->state == STATE_READY && !h->disconnect_queued)
    return 0;
  if (h->state == STATE_READY)
    set_error (EINVAL, "invalid state: the handle is disconnecting");
  else if (h->state == STATE_DEAD)
    set_error (EINVAL, "invalid state: DEAD: the connection died: %s",
               h->dead_reason ? h->dead_reason : "unknown reason");
  else
    set_state_error (h);
  return -1;
}

/* Commands that change the export: refused on a read-only one, and
 * ENOSPC past its end.
 */
static bool
changes_data (uint16_t type)
{
  return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
    type == NBD_CMD_WRITE_ZEROES;
}

/* The commands a server may refuse to support (nbd_set_strict_mode(3),
 * LIBNBD_STRICT_COMMANDS): refused locally with libnbd's errno.
 */
static int
check_capability (struct nbd_handle *h, uint16_t type, uint32_t flags)
{
  const char *what = NULL;

  switch (type) {
  case NBD_CMD_FLUSH:
    if (!(h->eflags & NBD_FLAG_SEND_FLUSH))
      what = "flush operations";
    break;
  case NBD_CMD_TRIM:
    if (!(h->eflags & NBD_FLAG_SEND_TRIM))
      what = "trim operations";
    break;
  case NBD_CMD_CACHE:
    if (!(h->eflags & NBD_FLAG_SEND_CACHE))
      what = "cache operations";
    break;
  case NBD_CMD_WRITE_ZEROES:
    if (!(h->eflags & NBD_FLAG_SEND_WRITE_ZEROES))
      what = "zero operations";
    break;
  case NBD_CMD_BLOCK_STATUS:
    if (h->nr_meta == 0) {
      set_error (ENOTSUP, "did not negotiate any metadata contexts: call "
                 "nbd_add_meta_context before connecting, or the server "
                 "does not support them");
      return -1;
    }
    break;
  }
  if (what == NULL && (h->eflags & NBD_FLAG_READ_ONLY) &&
      changes_data (type)) {
    set_error (EPERM, "server does not support write operations");
    return -1;
  }
  if (what == NULL && (flags & LIBNBD_CMD_FLAG_FUA) &&
      !(h->eflags & NBD_FLAG_SEND_FUA))
    what = "the FUA flag";
  if (what == NULL && (flags & LIBNBD_CMD_FLAG_FAST_ZERO) &&
      !(h->eflags & NBD_FLAG_SEND_FAST_ZERO))
    what = "the fast zero flag";
  if (what == NULL && (flags & LIBNBD_CMD_FLAG_DF) && !can_df (h))
    what = "the DF flag";
  if (what) {
    set_error (EINVAL, "server does not support %s", what);
    return -1;
  }
  return 0;
}

/* The checks libnbd makes before sending (nbd_set_strict_mode(3)), and the
 * server's maximum payload under LIBNBD_STRICT_BOUNDS (NBD spec "Block
 * size constraints": a client MUST NOT send a larger payload).
 */
static int
check_request (struct nbd_handle *h, uint16_t type, uint32_t flags,
               uint32_t allowed_flags, uint64_t offset, uint64_t count)
{
  bool payload = type == NBD_CMD_READ || type == NBD_CMD_WRITE;
  bool writes = changes_data (type);
  uint64_t end;

  if (check_ready (h) == -1)
    return -1;
  /* Without LIBNBD_STRICT_FLAGS, unknown flags go to the server, which
   * judges them; the wire has room for 16 bits.
   */
  if (flags > UINT16_MAX ||
      ((h->strict & LIBNBD_STRICT_FLAGS) && (flags & ~allowed_flags))) {
    set_error (EINVAL, "flags: invalid flags 0x%" PRIx32 " for this command",
               flags);
    return -1;
  }
  if ((h->strict & LIBNBD_STRICT_COMMANDS) &&
      check_capability (h, type, flags) == -1)
    return -1;
  if (type == NBD_CMD_FLUSH)
    return 0;                   /* no range */
  if ((h->strict & LIBNBD_STRICT_ZERO_SIZE) && count == 0) {
    set_error (EINVAL, "count cannot be 0");
    return -1;
  }
  /* Out of bounds, a write-type command fails with ENOSPC (the errno the
   * NBD spec gives a server for it), any other with EINVAL, as in libnbd.
   */
  if ((h->strict & LIBNBD_STRICT_BOUNDS) &&
      (__builtin_add_overflow (offset, count, &end) ||
       end > h->exportsize)) {
    set_error (writes ? ENOSPC : EINVAL, "request out of bounds: offset %"
               PRIu64 " + count %" PRIu64 " is beyond the export size %"
               PRIu64, offset, count, h->exportsize);
    return -1;
  }
  if (payload && count > MAX_REQUEST_SIZE) {
    set_error (ERANGE, "count: request too large: maximum is %d bytes",
               MAX_REQUEST_SIZE);
    return -1;
  }
  if (count > UINT32_MAX) {
    set_error (ERANGE, "count: request too large: the protocol's limit "
               "is 4 GiB - 1");
    return -1;
  }
  if ((h->strict & LIBNBD_STRICT_BOUNDS) && payload && h->block_maximum &&
      count > h->block_maximum) {
    set_error (EINVAL, "count: request too large: the server's maximum "
               "payload is %" PRIu32 " bytes", h->block_maximum);
    return -1;
  }
  if ((h->strict & LIBNBD_STRICT_ALIGN) && h->block_minimum &&
      ((offset | count) & (h->block_minimum - 1))) {
    set_error (EINVAL, "request is unaligned: the server's minimum block "
               "size is %" PRIu32, h->block_minimum);
    return -1;
  }
  return 0;
}

/* Check, queue and send a command; called locked.  The callbacks are owned
 * from here on: freed exactly once on every path.
 */
static int64_t
aio_command (struct nbd_handle *h, uint16_t type, uint32_t flags,
             uint32_t allowed_flags, uint64_t offset, uint64_t count,
             void *data, struct callbacks *cb)
{
  struct command *cmd;

  if (check_request (h, type, flags, allowed_flags, offset, count) == -1) {
    free_callbacks (cb);
    return -1;
  }
  cmd = command_new (h, type, flags, offset, count, data, cb);
  if (cmd == NULL)
    return -1;
  return issue_command (h, cmd);
}

/* The core of every read call (nbd_aio_pread*, and nbd_pread* through
 * sync.c); called locked.
 */
int64_t
aio_pread (struct nbd_handle *h, void *buf, size_t count, uint64_t offset,
           struct callbacks *cb, uint32_t flags, bool structured)
{
  /* DF belongs to the structured forms only (nbd_pread(3)). */
  uint32_t allowed = structured ? LIBNBD_CMD_FLAG_DF : 0;

  if (buf == NULL) {
    set_error (EFAULT, "buf: the buffer must not be NULL");
    free_callbacks (cb);
    return -1;
  }
  /* Before any other check, so that a failed call never leaves stale
   * bytes for a caller who ignores the error (CVE-2022-0485).
   */
  if (h->pread_initialize)
    memset (buf, 0, count);
  if (structured && cb->chunk.callback == NULL) {
    set_error (EFAULT, "chunk_callback: the callback must not be NULL");
    free_callbacks (cb);
    return -1;
  }
  return aio_command (h, NBD_CMD_READ, flags, allowed, offset, count, buf,
                      cb);
}

int64_t
aio_pwrite (struct nbd_handle *h, const void *buf, size_t count,
            uint64_t offset, struct callbacks *cb, uint32_t flags)
{
  if (buf == NULL) {
    set_error (EFAULT, "buf: the buffer must not be NULL");
    free_callbacks (cb);
    return -1;
  }
  /* The request goes out from the caller's buffer, never written to. */
  return aio_command (h, NBD_CMD_WRITE, flags, LIBNBD_CMD_FLAG_FUA, offset,
                      count, (void *) buf, cb);
}

int64_t
aio_flush (struct nbd_handle *h, struct callbacks *cb, uint32_t flags)
{
  return aio_command (h, NBD_CMD_FLUSH, flags, 0, 0, 0, NULL, cb);
}

int64_t
aio_trim (struct nbd_handle *h, uint64_t count, uint64_t offset,
          struct callbacks *cb, uint32_t flags)
{
  return aio_command (h, NBD_CMD_TRIM, flags, LIBNBD_CMD_FLAG_FUA, offset,
                      count, NULL, cb);
}

int64_t
aio_cache (struct nbd_handle *h, uint64_t count, uint64_t offset,
           struct callbacks *cb, uint32_t flags)
{
  return aio_command (h, NBD_CMD_CACHE, flags, 0, offset, count, NULL, cb);
}

int64_t
aio_zero (struct nbd_handle *h, uint64_t count, uint64_t offset,
          struct callbacks *cb, uint32_t flags)
{
  return aio_command (h, NBD_CMD_WRITE_ZEROES, flags,
                      LIBNBD_CMD_FLAG_FUA | LIBNBD_CMD_FLAG_NO_HOLE |
                      LIBNBD_CMD_FLAG_FAST_ZERO, offset, count, NULL, cb);
}

int64_t
aio_block_status (struct nbd_handle *h, uint64_t count, uint64_t offset,
                  struct callbacks *cb, uint32_t flags)
{
  if (cb->extent.callback == NULL) {
    set_error (EFAULT, "extent_callback: the callback must not be NULL");
    free_callbacks (cb);
    return -1;
  }
  return aio_command (h, NBD_CMD_BLOCK_STATUS, flags,
                      LIBNBD_CMD_FLAG_REQ_ONE, offset, count, NULL, cb);
}

int64_t
nbd_aio_pread (struct nbd_handle *h, void *buf, size_t count,
               uint64_t offset, nbd_completion_callback completion,
               uint32_t flags)
{
  struct callbacks cb = { .completion = completion };
  int64_t r;

  ENTER ();
  lock_handle (h);
  r = aio_pread (h, buf, count, offset, &cb, flags, false);
  unlock_handle (h);
  return r;
}

int64_t
nbd_aio_pread_structured (struct nbd_handle *h, void *buf, size_t count,
                          uint64_t offset, nbd_chunk_callback chunk,
                          nbd_completion_callback completion, uint32_t flags)
{
  struct callbacks cb = { .chunk = chunk, .completion = completion };
  int64_t r;

  ENTER ();
  lock_handle (h);
  r = aio_pread (h, buf, count, offset, &cb, flags, true);
  unlock_handle (h);
  return r;
}

int64_t
nbd_aio_pwrite (struct nbd_handle *h, const void *buf, size_t count,
                uint64_t offset, nbd_completion_callback completion,
                uint32_t flags)
{
  struct callbacks cb = { .completion = completion };
  int64_t r;

  ENTER ();
  lock_handle (h);
  r = aio_pwrite (h, buf, count, offset, &cb, flags);
  unlock_handle (h);
  return r;
}

int64_t
nbd_aio_flush (struct nbd_handle *h, nbd_completion_callback completion,
               uint32_t flags)
{
  struct callbacks cb = { .completion = completion };
  int64_t r;

  ENTER ();
  lock_handle (h);
  r = aio_flush (h, &cb, flags);
  unlock_handle (h);
  return r;
}

/* nbd_aio_trim, nbd_aio_cache, nbd_aio_zero: a range and a completion. */
#define AIO_RANGE_COMMAND(name)                                         \
  int64_t                                                               \
  nbd_aio_##name (struct nbd_handle *h, uint64_t count, uint64_t offset, \
                  nbd_completion_callback completion, uint32_t flags)   \
  {                                                                     \
    struct callbacks cb = { .completion = completion };                 \
    int64_t r;                                                          \
                                                                        \
    ENTER ();                                                           \
    lock_handle (h);                                                    \
    r = aio_##name (h, count, offset, &cb, flags);                      \
    unlock_handle (h);                                                  \
    return r;                                                           \
  }

AIO_RANGE_COMMAND (trim)
AIO_RANGE_COMMAND (cache)
AIO_RANGE_COMMAND (zero)

int64_t
nbd_aio_block_status (struct nbd_handle *h, uint64_t count, uint64_t offset,
                      nbd_extent_callback extent,
                      nbd_completion_callback completion, uint32_t flags)
{
  struct callbacks cb = { .extent = extent, .completion = completion };
  int64_t r;

  ENTER ();
  lock_handle (h);
  r = aio_block_status (h, count, offset, &cb, flags);
  unlock_handle (h);
  return r;
}

/* Queue NBD_CMD_DISC; with LIBNBD_SHUTDOWN_ABANDON_PENDING, commands not
 * yet sent are dropped (they fail) instead of going out first.
 */
int
aio_disconnect (struct nbd_handle *h, uint32_t flags)
{
  struct command *cmd;

  if (flags & ~LIBNBD_SHUTDOWN_MASK) {
    set_error (EINVAL, "flags: invalid shutdown flags 0x%" PRIx32, flags);
    return -1;
  }
  if (check_ready (h) == -1)
    return -1;
  if (flags & LIBNBD_SHUTDOWN_ABANDON_PENDING) {
    struct command *next;

    /* The head may be partly sent: it must go out whole. */
    cmd = h->queue.head;
    if (cmd && h->send_off)
      cmd = cmd->next;
    for (; cmd; cmd = next) {
      next = cmd->next;
      /* ENOTCONN, the errno libnbd gives them. */
      command_fail (cmd, ENOTCONN, "command abandoned by nbd_shutdown "
                    "before it was sent");
      command_complete (h, cmd);
    }
  }
  cmd = command_new (h, NBD_CMD_DISC, 0, 0, 0, NULL,
                     &(struct callbacks) { 0 });
  if (cmd == NULL)
    return -1;
  h->disconnect_queued = true;
  issue_command (h, cmd);
  return 0;
}

/* nbd_aio_disconnect(3): its flags must be 0 (LIBNBD_SHUTDOWN_ABANDON_PENDING
 * belongs to nbd_shutdown).
 */
int
nbd_aio_disconnect (struct nbd_handle *h, uint32_t flags)
{
  int r;

  ENTER ();
  if (flags != 0) {
    set_error (EINVAL, "flags: invalid flags 0x%" PRIx32 " (must be 0)",
               flags);
    return -1;
  }
  lock_handle (h);
  r = aio_disconnect (h, flags);
  unlock_handle (h);
  return r;
}

/* ----- Completed commands. ----- */

/* nbd_aio_command_completed(3): 0 while the command is in flight, and for
 * a cookie that is not known (never issued, or already retired), as in
 * libnbd; 1 or -1 (with its error) once it finished, retiring it.
 */
int
nbd_aio_command_completed (struct nbd_handle *h, uint64_t cookie)
{
  struct command *cmd;
  int r = 0;

  ENTER ();
  if (cookie == 0) {
    set_error (EINVAL, "cookie: 0 is never a command's cookie");
    return -1;
  }
  lock_handle (h);
  cmd = command_lookup (h, cookie);
  if (cmd && cmd->state == CMD_DONE)
    r = command_result (h, cmd);
  unlock_handle (h);
  return r;
}

int64_t
nbd_aio_peek_command_completed (struct nbd_handle *h)
{
  int64_t r;

  ENTER ();
  lock_handle (h);
  if (h->done.head)
    r = h->done.head->cookie;
  else if (h->queue.len || h->inflight.len)
    r = 0;
  else {
    set_error (EINVAL, "no commands are in flight");
    r = -1;
  }
  unlock_handle (h);
  return r;
}

/* Commands issued and not finished.  As libnbd counts it, NBD_CMD_DISC is
 * one of them from nbd_aio_disconnect until the connection closes (once
 * sent it is on no list: it has no reply).
 */
int
nbd_aio_in_flight (struct nbd_handle *h)
{
  int r;

  ENTER ();
  lock_handle (h);
  if (h->state == STATE_CREATED || h->state == STATE_CONNECTING ||
      h->state == STATE_HANDSHAKE || h->state == STATE_NEGOTIATING) {
    set_state_error (h);
    unlock_handle (h);
    return -1;
  }
  r = h->queue.len + h->inflight.len;
  if (h->disconnect_queued && h->state == STATE_READY &&
      !(h->queue.tail && h->queue.tail->type == NBD_CMD_DISC))
    r++;
  unlock_handle (h);
  return r;
}
