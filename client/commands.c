/* libnbdc: commands.  A command is queued, then in flight once its request
 * is sent, then done once its reply is complete, then retired.  Cookies
 * count from 1; a hash indexed by cookie finds a command in O(1).
 */

#include "internal.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
list_append (struct cmd_list *list, struct command *cmd)
{
  cmd->next = NULL;
  cmd->prev = list->tail;
  if (list->tail)
    list->tail->next = cmd;
  else
    list->head = cmd;
  list->tail = cmd;
  list->len++;
}

static void
list_remove (struct cmd_list *list, struct command *cmd)
{
  if (cmd->prev)
    cmd->prev->next = cmd->next;
  else
    list->head = cmd->next;
  if (cmd->next)
    cmd->next->prev = cmd->prev;
  else
    list->tail = cmd->prev;
  cmd->prev = cmd->next = NULL;
  list->len--;
}

static struct cmd_list *
list_of (struct nbd_handle *h, struct command *cmd)
{
  switch (cmd->state) {
  case CMD_QUEUED: return &h->queue;
  case CMD_IN_FLIGHT: return &h->inflight;
  case CMD_DONE: return &h->done;
  }
  abort ();
}

/* ----- The cookie index. ----- */

static size_t
hash_slot (const struct nbd_handle *h, uint64_t cookie)
{
  return cookie & (h->hash_size - 1); /* cookies are sequential */
}

static void
hash_grow (struct nbd_handle *h)
{
  size_t new_size = h->hash_size * 2;
  struct command **new_hash = calloc (new_size, sizeof *new_hash);

  if (new_hash == NULL)
    return;                     /* longer chains, still correct */
  for (size_t i = 0; i < h->hash_size; i++) {
    struct command *cmd = h->hash[i], *next;

    for (; cmd; cmd = next) {
      size_t slot = cmd->cookie & (new_size - 1);

      next = cmd->hash_next;
      cmd->hash_next = new_hash[slot];
      new_hash[slot] = cmd;
    }
  }
  free (h->hash);
  h->hash = new_hash;
  h->hash_size = new_size;
}

static void
hash_insert (struct nbd_handle *h, struct command *cmd)
{
  size_t slot;

  if (h->hash_count >= h->hash_size)
    hash_grow (h);
  slot = hash_slot (h, cmd->cookie);
  cmd->hash_next = h->hash[slot];
  h->hash[slot] = cmd;
  h->hash_count++;
}

static void
hash_remove (struct nbd_handle *h, struct command *cmd)
{
  struct command **p = &h->hash[hash_slot (h, cmd->cookie)];

  for (; *p; p = &(*p)->hash_next)
    if (*p == cmd) {
      *p = cmd->hash_next;
      h->hash_count--;
      return;
    }
}

struct command *
command_lookup (struct nbd_handle *h, uint64_t cookie)
{
  struct command *cmd = h->hash[hash_slot (h, cookie)];

  for (; cmd; cmd = cmd->hash_next)
    if (cmd->cookie == cookie)
      return cmd;
  return NULL;
}

/* ----- Life cycle. ----- */

/* Call each callback's .free once, chunk or extent before completion
 * (libnbd(3) "Callback lifetimes"), and forget them.
 */
void
free_callbacks (struct callbacks *cb)
{
  if (cb->chunk.free)
    cb->chunk.free (cb->chunk.user_data);
  if (cb->extent.free)
    cb->extent.free (cb->extent.user_data);
  if (cb->completion.free)
    cb->completion.free (cb->completion.user_data);
  memset (cb, 0, sizeof *cb);
}

/* Does this run under a tool that finds use after free?  Then commands
 * are not reused, so that the tool sees every one freed.
 */
#if defined (__SANITIZE_ADDRESS__)       /* GCC */
#define FREE_CHECKER() true
#elif defined (__has_feature)           /* clang */
#if __has_feature (address_sanitizer)
#define FREE_CHECKER() true
#endif
#endif
#if !defined (FREE_CHECKER) && defined (__has_include)
#if __has_include (<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define FREE_CHECKER() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef FREE_CHECKER
#define FREE_CHECKER() false
#endif

/* Make a command; it owns the callbacks from here on, even on failure.
 * Called locked: a spare one is reused when the handle has one.
 */
struct command *
command_new (struct nbd_handle *h, uint16_t type, uint16_t flags,
             uint64_t offset, uint32_t count, void *data,
             struct callbacks *cb)
{
  struct command *cmd = h->spare;

  if (cmd) {
    h->spare = cmd->next;
    h->nr_spare--;
    memset (cmd, 0, sizeof *cmd);
  }
  else {
    cmd = calloc (1, sizeof *cmd);
    if (cmd == NULL) {
      set_error (errno, "calloc");
      free_callbacks (cb);
      return NULL;
    }
  }
  cmd->type = type;
  cmd->flags = flags;
  cmd->offset = offset;
  cmd->count = count;
  cmd->data = data;
  cmd->cb = *cb;
  cmd->ranges = &cmd->first_range;
  cmd->ranges_alloc = 1;
  return cmd;
}

/* Called locked.  The command is kept for reuse, up to
 * KEEP_SPARE_COMMANDS of them, or freed.
 */
static void
command_free (struct nbd_handle *h, struct command *cmd)
{
  if (cmd->ranges != &cmd->first_range)
    free (cmd->ranges);
  free (cmd->error_msg);
  if (h->nr_spare < KEEP_SPARE_COMMANDS && !FREE_CHECKER ()) {
    cmd->next = h->spare;
    h->spare = cmd;
    h->nr_spare++;
  }
  else
    free (cmd);
}

/* Give the command a cookie and queue it (machine.c sends it). */
int64_t
command_submit (struct nbd_handle *h, struct command *cmd)
{
  int64_t cookie = h->next_cookie++;

  cmd->cookie = cookie;
  cmd->request.magic = htobe32 (NBD_REQUEST_MAGIC);
  cmd->request.flags = htobe16 (cmd->flags);
  cmd->request.type = htobe16 (cmd->type);
  cmd->request.cookie = htobe64 (cmd->cookie);
  cmd->request.offset = htobe64 (cmd->offset);
  cmd->request.count = htobe32 (cmd->count);
  cmd->state = CMD_QUEUED;
  if (cmd->type != NBD_CMD_DISC)
    hash_insert (h, cmd);
  list_append (&h->queue, cmd);
  debug (h, "queued %s cookie %" PRIu64 " offset %" PRIu64 " count %" PRIu32,
         cmd->type == NBD_CMD_DISC ? "disconnect" : "command",
         cmd->cookie, cmd->offset, cmd->count);
  return cookie;
}

/* Record the first error of a command, and why. */
void
command_fail (struct command *cmd, int errnum, const char *fs, ...)
{
  va_list args;

  if (cmd->error)
    return;
  cmd->error = errnum;
  va_start (args, fs);
  if (vasprintf (&cmd->error_msg, fs, args) == -1)
    cmd->error_msg = NULL;
  va_end (args);
}

/* The reply is complete (or can never come): run the completion callback
 * and keep the command for nbd_aio_command_completed, unless the callback
 * retired it by returning 1.  The callbacks are freed at retirement, not
 * here (libnbd(3) "Callback lifetimes"): until then the caller may still
 * use what its .free would release, such as the read buffer.
 */
void
command_complete (struct nbd_handle *h, struct command *cmd)
{
  int r = 0;

  list_remove (list_of (h, cmd), cmd);
  cmd->state = CMD_DONE;
  h->completions++;
  if (cmd->type == NBD_CMD_READ && h->sr_negotiated && cmd->error == 0 &&
      cmd->covered != cmd->count)
    command_fail (cmd, EPROTO, "server violated the protocol: read reply "
                  "covers %" PRIu64 " of %" PRIu32 " bytes (a successful "
                  "read must cover the whole request)",
                  cmd->covered, cmd->count);
  if (cmd->cb.completion.callback) {
    int error = cmd->error;

    /* A -1 fails the command with the error the callback stored; with
     * none stored it changes nothing (as in libnbd 1.14).
     */
    r = cmd->cb.completion.callback (cmd->cb.completion.user_data, &error);
    if (r == -1 && error)
      cmd->error = error;
  }
  debug (h, "cookie %" PRIu64 " completed: %s", cmd->cookie,
         cmd->error ? strerror (cmd->error) : "success");
  list_append (&h->done, cmd);
  if (r == 1)
    command_retire (h, cmd);
  else if (cmd->waiter) {
    /* A blocking call waits for it: retire it here and hand the result
     * over, so that thread returns without taking the lock.
     */
    struct waiter *w = cmd->waiter;
    int error = cmd->error;
    char *msg = cmd->error_msg;

    cmd->waiter = NULL;
    cmd->error_msg = NULL;
    command_retire (h, cmd);
    hand_result (h, w, error, msg);
  }
}

/* Forget a finished command: its callbacks are freed now.  A thread still
 * waiting for it is woken to find it gone.
 */
void
command_retire (struct nbd_handle *h, struct command *cmd)
{
  wake_command_waiter (h, cmd);
  list_remove (&h->done, cmd);
  hash_remove (h, cmd);
  free_callbacks (&cmd->cb);
  command_free (h, cmd);
}

/* Retire a finished command and report its result (1, or -1 with its
 * error set).
 */
int
command_result (struct nbd_handle *h, struct command *cmd)
{
  int error = cmd->error;
  char *msg = cmd->error_msg;

  /* Retire first: a .free that runs now cannot clobber the error. */
  cmd->error_msg = NULL;
  command_retire (h, cmd);
  if (error)
    set_error (error, "%s", msg ? msg : strerror (error));
  free (msg);
  return error ? -1 : 1;
}

/* The connection is gone: every queued and in-flight command fails. */
void
commands_abort_all (struct nbd_handle *h)
{
  h->rcmd = NULL;
  h->send_off = 0;
  while (h->queue.head || h->inflight.head) {
    struct command *cmd = h->inflight.head ? h->inflight.head
      : h->queue.head;

    if (cmd->type == NBD_CMD_DISC) {
      list_remove (&h->queue, cmd);
      command_free (h, cmd);
      continue;
    }
    /* As libnbd: ESHUTDOWN once we asked to disconnect, else ENOTCONN. */
    if (h->state == STATE_CLOSED && h->disconnect_queued)
      command_fail (cmd, ESHUTDOWN, "the connection was closed after "
                    "nbd_shutdown or nbd_aio_disconnect");
    else
      command_fail (cmd, ENOTCONN, "%s", h->dead_reason ? h->dead_reason
                    : "the server closed the connection");
    command_complete (h, cmd);
  }
}

/* nbd_close: drop every command; callbacks are freed but not called. */
void
commands_free_all (struct nbd_handle *h)
{
  struct cmd_list *lists[] = { &h->queue, &h->inflight, &h->done };

  for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
    while (lists[i]->head) {
      struct command *cmd = lists[i]->head;

      list_remove (lists[i], cmd);
      free_callbacks (&cmd->cb);
      command_free (h, cmd);
    }
  h->hash_count = 0;
  memset (h->hash, 0, h->hash_size * sizeof *h->hash);
  while (h->spare) {
    struct command *cmd = h->spare;

    h->spare = cmd->next;
    free (cmd);
  }
  h->nr_spare = 0;
}

/* Send queued requests, many per sendmsg.  A command moves in flight once
 * all its bytes are out; NBD_CMD_DISC has no reply and is dropped.
 */
int
commands_send (struct nbd_handle *h)
{
  enum { MAX_IOV = 64 };

  while (h->queue.head) {
    struct iovec iov[MAX_IOV];
    struct command *cmd;
    size_t skip = h->send_off;
    ssize_t r;
    int n = 0;

    for (cmd = h->queue.head; cmd && n < MAX_IOV - 1; cmd = cmd->next) {
      iov[n].iov_base = &cmd->request;
      iov[n].iov_len = sizeof cmd->request;
      n++;
      if (cmd->type == NBD_CMD_WRITE) {
        iov[n].iov_base = cmd->data;
        iov[n].iov_len = cmd->count;
        n++;
      }
    }
    /* Skip what was sent before. */
    int first = 0;
    while (skip >= iov[first].iov_len) {
      skip -= iov[first].iov_len;
      first++;
    }
    iov[first].iov_base = (char *) iov[first].iov_base + skip;
    iov[first].iov_len -= skip;

    r = h->transport->sendv (h, &iov[first], n - first);
    if (r <= 0)                 /* 0 cannot happen: try again later */
      return io_result (r) == IO_ERROR ? IO_ERROR : IO_AGAIN;
    /* Account the bytes sent to the commands they belong to. */
    size_t sent = h->send_off + r;
    while ((cmd = h->queue.head) != NULL) {
      size_t len = sizeof cmd->request +
        (cmd->type == NBD_CMD_WRITE ? cmd->count : 0);

      if (sent < len)
        break;
      sent -= len;
      list_remove (&h->queue, cmd);
      if (cmd->type == NBD_CMD_DISC) {
        command_free (h, cmd);
        if (h->transport->shut_writes (h) == -1)
          debug (h, "shutdown: %m");
        continue;
      }
      cmd->state = CMD_IN_FLIGHT;
      list_append (&h->inflight, cmd);
    }
    h->send_off = sent;
  }
  return IO_DONE;
}

/* Note that [start, end) of a read was covered by a data or hole chunk.
 * Returns -1 if it overlaps what earlier chunks covered (the spec forbids
 * overlapping chunks), -2 if the reply is too fragmented to track.  The
 * ranges stay sorted and adjacent ranges merge, so a server sending in
 * order costs O(1) per chunk.
 */
int
ranges_add (struct command *cmd, uint64_t start, uint64_t end)
{
  struct range *r = cmd->ranges;
  size_t n = cmd->nr_ranges, lo = 0, hi = n;

  while (lo < hi) {             /* first range starting at or after start */
    size_t mid = lo + (hi - lo) / 2;

    if (r[mid].start < start)
      lo = mid + 1;
    else
      hi = mid;
  }
  if ((lo > 0 && r[lo - 1].end > start) || (lo < n && r[lo].start < end))
    return -1;

  bool join_left = lo > 0 && r[lo - 1].end == start;
  bool join_right = lo < n && r[lo].start == end;

  if (join_left && join_right) {
    r[lo - 1].end = r[lo].end;
    memmove (&r[lo], &r[lo + 1], (n - lo - 1) * sizeof *r);
    cmd->nr_ranges--;
  }
  else if (join_left)
    r[lo - 1].end = end;
  else if (join_right)
    r[lo].start = start;
  else {
    if (n == cmd->ranges_alloc) {
      size_t alloc = n * 2;
      struct range *p;

      if (alloc > MAX_RANGES)
        return -2;
      if (r == &cmd->first_range) {
        p = malloc (alloc * sizeof *p);
        if (p)
          memcpy (p, r, n * sizeof *p);
      }
      else
        p = realloc (r, alloc * sizeof *p);
      if (p == NULL)
        return -2;
      cmd->ranges = r = p;
      cmd->ranges_alloc = alloc;
    }
    memmove (&r[lo + 1], &r[lo], (n - lo) * sizeof *r);
    r[lo].start = start;
    r[lo].end = end;
    cmd->nr_ranges++;
  }
  cmd->covered += end - start;
  return 0;
}
