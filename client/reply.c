/* libnbdc: the reply parser.  Simple replies and structured reply chunks are
 * read and validated here (NBD spec "Transmission phase" and
 * ../../shared/PROTOCOL.md section 3).
 *
 * Two kinds of violation:
 * - the byte stream can no longer be trusted (bad magic, unknown cookie, an
 *   impossible length, a chunk type we cannot size): the handle dies and
 *   every command fails;
 * - the stream is intact but the reply breaks a rule for its command (a
 *   chunk outside the request, overlap, a missing piece): that command fails
 *   with EPROTO and a message naming the rule; the payload is skipped.
 */

#include "internal.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *
chunk_type_name (uint16_t type)
{
  switch (type) {
  case NBD_REPLY_TYPE_NONE: return "NONE";
  case NBD_REPLY_TYPE_OFFSET_DATA: return "OFFSET_DATA";
  case NBD_REPLY_TYPE_OFFSET_HOLE: return "OFFSET_HOLE";
  case NBD_REPLY_TYPE_BLOCK_STATUS: return "BLOCK_STATUS";
  case NBD_REPLY_TYPE_ERROR: return "ERROR";
  case NBD_REPLY_TYPE_ERROR_OFFSET: return "ERROR_OFFSET";
  default: return "unknown";
  }
}

/* Call the chunk callback; a callback returning -1 fails the command with
 * the errno it stored (EPROTO if none), unless an error came first.
 */
static void
call_chunk (struct command *cmd, const void *subbuf, size_t count,
            uint64_t offset, unsigned status, int server_error)
{
  int error;

  if (cmd->cb.chunk.callback == NULL)
    return;
  error = status == LIBNBD_READ_ERROR ? server_error : cmd->error;
  if (cmd->cb.chunk.callback (cmd->cb.chunk.user_data, subbuf, count, offset,
                           status, &error) == -1)
    command_fail (cmd, error ? error : EPROTO, "chunk callback failed: %s",
                  strerror (error ? error : EPROTO));
}

static void
next_reply (struct nbd_handle *h)
{
  h->rphase = RP_HEADER;
  h->rcmd = NULL;
}

/* A chunk is fully handled: complete the command on its last chunk. */
static void
chunk_done (struct nbd_handle *h)
{
  struct command *cmd = h->rcmd;

  if (h->rflags & NBD_REPLY_FLAG_DONE)
    command_complete (h, cmd);
  next_reply (h);
}

/* Fail the command for breaking a rule, skip the rest of the payload. */
static void
reject_chunk (struct nbd_handle *h, size_t left)
{
  h->rleft = left;
  h->rphase = RP_DISCARD;
}

#define VIOLATION "server violated the protocol: "

/* Is [offset, offset + len) inside the request? */
static bool
inside_request (const struct command *cmd, uint64_t offset, uint64_t len)
{
  uint64_t end;

  return offset >= cmd->offset &&
    !__builtin_add_overflow (offset, len, &end) &&
    end <= cmd->offset + cmd->count;
}

/* Check a data or hole chunk's range and record it. */
static bool
accept_range (struct command *cmd, uint16_t type, uint64_t offset,
              uint64_t len)
{
  int r;

  if (!inside_request (cmd, offset, len)) {
    command_fail (cmd, EPROTO, VIOLATION "%s chunk [%" PRIu64 ", +%" PRIu64
                  ") lies outside the request [%" PRIu64 ", +%" PRIu32 ")",
                  chunk_type_name (type), offset, len, cmd->offset,
                  cmd->count);
    return false;
  }
  /* NBD spec, NBD_CMD_FLAG_DF: the server sends the data in one chunk, so
   * one content chunk (data, or a hole) in all.
   */
  if ((cmd->flags & NBD_CMD_FLAG_DF) && cmd->content_chunks > 0) {
    command_fail (cmd, EPROTO, VIOLATION "more than one data or hole chunk "
                  "although the read asked for DF (don't fragment)");
    return false;
  }
  r = ranges_add (cmd, offset, offset + len);
  if (r == -1) {
    command_fail (cmd, EPROTO, VIOLATION "%s chunk [%" PRIu64 ", +%" PRIu64
                  ") overlaps an earlier chunk", chunk_type_name (type),
                  offset, len);
    return false;
  }
  if (r == -2) {
    command_fail (cmd, EPROTO, VIOLATION "read reply fragmented into more "
                  "than %d pieces", MAX_RANGES);
    return false;
  }
  cmd->content_chunks++;
  return true;
}

/* The 16 byte simple reply header is in the input buffer. */
static int
simple_reply (struct nbd_handle *h)
{
  const char *p = input_peek (h);
  uint32_t error = get32 (p + 4);
  uint64_t cookie = get64 (p + 8);
  struct command *cmd = command_lookup (h, cookie);

  if (cmd == NULL || cmd->state != CMD_IN_FLIGHT) {
    set_dead (h, EPROTO, VIOLATION "simple reply for unknown cookie %"
              PRIu64, cookie);
    return -1;
  }
  if (cmd->type == NBD_CMD_READ && h->sr_negotiated) {
    set_dead (h, EPROTO, VIOLATION "simple reply to a read although "
              "structured replies were negotiated");
    return -1;
  }
  input_consume (h, sizeof (struct nbd_simple_reply));
  h->rcmd = cmd;
  /* NBD spec, NBD_CMD_BLOCK_STATUS: success comes in BLOCK_STATUS chunks.
   * No payload follows a simple reply, so only the command fails.
   */
  if (cmd->type == NBD_CMD_BLOCK_STATUS && error == 0)
    command_fail (cmd, EPROTO, VIOLATION "simple reply without an error "
                  "to a block status request");
  if (error) {
    command_fail (cmd, errno_from_wire (error),
                  "server replied with error %" PRIu32 " (%s)", error,
                  strerror (errno_from_wire (error)));
    command_complete (h, cmd);
    next_reply (h);
    return 0;
  }
  if (cmd->type == NBD_CMD_READ) {
    h->rsimple = true;
    h->rstart = h->rdest = cmd->data;
    h->rleft = cmd->count;
    h->roffset = cmd->offset;
    h->rphase = RP_DATA;
    return 0;
  }
  command_complete (h, cmd);
  next_reply (h);
  return 0;
}

/* A BLOCK_STATUS chunk of length bytes follows: read it whole into the
 * handle's extents buffer, or skip it if it cannot be a valid chunk or is
 * too large to hold (the stream stays in step: its length is known).
 */
static int
start_extents (struct nbd_handle *h, uint32_t length)
{
  struct command *cmd = h->rcmd;

  if (length < 12 || (length - 4) % 8 != 0) {
    command_fail (cmd, EPROTO, VIOLATION "BLOCK_STATUS chunk with a payload "
                  "of %" PRIu32 " bytes (a context id and 8 bytes per "
                  "descriptor, at least one)", length);
    reject_chunk (h, length);
    return 0;
  }
  if (length > MAX_BLOCK_STATUS_CHUNK) {
    command_fail (cmd, EPROTO, VIOLATION "BLOCK_STATUS chunk with %" PRIu32
                  " descriptors (the limit is %d)", (length - 4) / 8,
                  MAX_EXTENTS);
    reject_chunk (h, length);
    return 0;
  }
  if (h->extents_alloc < length) {
    char *p = realloc (h->extents, length);

    if (p == NULL) {
      command_fail (cmd, ENOMEM, "cannot hold a BLOCK_STATUS chunk of %"
                    PRIu32 " bytes", length);
      reject_chunk (h, length);
      return 0;
    }
    h->extents = p;
    h->extents_alloc = length;
  }
  h->rdest = h->extents;
  h->rleft = length;
  h->rphase = RP_EXTENTS;
  return 0;
}

static const char *
meta_context_name (const struct nbd_handle *h, uint32_t id)
{
  for (size_t i = 0; i < h->nr_meta; i++)
    if (h->meta[i].id == id)
      return h->meta[i].name;
  return NULL;
}

/* Check the descriptors of a block status chunk (NBD spec,
 * NBD_REPLY_TYPE_BLOCK_STATUS, and ../../shared/PROTOCOL.md section 4),
 * converting them to host order in place.  An extent crossing the end of
 * the export is cut there.  Returns false with the command failed.
 */
static bool
check_extents (struct nbd_handle *h, struct command *cmd, uint32_t *entries,
               size_t n)
{
  uint64_t pos = cmd->offset, request_end;

  if (__builtin_add_overflow (cmd->offset, cmd->count, &request_end))
    request_end = UINT64_MAX;

  if ((cmd->flags & LIBNBD_CMD_FLAG_REQ_ONE) && n != 1) {
    command_fail (cmd, EPROTO, VIOLATION "%zu descriptors in a BLOCK_STATUS "
                  "chunk although the request asked for one (REQ_ONE)", n);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t len = be32toh (entries[2 * i]);

    entries[2 * i] = len;
    entries[2 * i + 1] = be32toh (entries[2 * i + 1]);
    if (len == 0) {
      command_fail (cmd, EPROTO, VIOLATION "block status descriptor %zu has "
                    "length 0", i);
      return false;
    }
    if (pos >= h->exportsize) {
      command_fail (cmd, EPROTO, VIOLATION "block status descriptor %zu "
                    "starts at %" PRIu64 ", at or past the end of the "
                    "export (%" PRIu64 ")", i, pos, h->exportsize);
      return false;
    }
    if ((cmd->flags & LIBNBD_CMD_FLAG_REQ_ONE) && len > cmd->count) {
      command_fail (cmd, EPROTO, VIOLATION "block status descriptor of %"
                    PRIu32 " bytes for a REQ_ONE request of %" PRIu32,
                    len, cmd->count);
      return false;
    }
    if (pos >= request_end) {
      command_fail (cmd, EPROTO, VIOLATION "block status descriptor %zu "
                    "starts at %" PRIu64 ", past the request [%" PRIu64
                    ", +%" PRIu32 ")", i, pos, cmd->offset, cmd->count);
      return false;
    }
    if (len > h->exportsize - pos) {
      debug (h, "block status extent cut at the end of the export");
      entries[2 * i] = len = h->exportsize - pos;
    }
    pos += len;
  }
  return true;
}

/* A whole BLOCK_STATUS chunk is in h->extents: check it and pass it to the
 * extent callback (with the error seen so far; -1 fails the command).
 */
static void
extents_chunk (struct nbd_handle *h)
{
  struct command *cmd = h->rcmd;
  uint32_t id = get32 (h->extents);
  uint32_t *entries = (uint32_t *) (h->extents + 4);
  size_t n = (h->rlength - 4) / 8;
  const char *name = meta_context_name (h, id);
  int error;

  if (name == NULL)
    command_fail (cmd, EPROTO, VIOLATION "BLOCK_STATUS chunk for context id "
                  "%" PRIu32 ", which was not negotiated", id);
  else if (check_extents (h, cmd, entries, n) &&
           cmd->cb.extent.callback) {
    error = cmd->error;
    if (cmd->cb.extent.callback (cmd->cb.extent.user_data, name,
                                 cmd->offset, entries, 2 * n, &error) == -1)
      command_fail (cmd, error ? error : EPROTO, "extent callback failed: "
                    "%s", strerror (error ? error : EPROTO));
  }
  if (h->extents_alloc > KEEP_EXTENTS_BUFFER) {
    free (h->extents);
    h->extents = NULL;
    h->extents_alloc = 0;
  }
}

/* The 20 byte structured reply header is in the input buffer. */
static int
structured_reply (struct nbd_handle *h)
{
  const char *p = input_peek (h);
  uint16_t flags = get16 (p + 4);
  uint16_t type = get16 (p + 6);
  uint64_t cookie = get64 (p + 8);
  uint32_t length = get32 (p + 16);
  struct command *cmd;

  if (!h->sr_negotiated) {
    set_dead (h, EPROTO, VIOLATION "structured reply chunk although "
              "structured replies were not negotiated");
    return -1;
  }
  cmd = command_lookup (h, cookie);
  if (cmd == NULL || cmd->state != CMD_IN_FLIGHT) {
    set_dead (h, EPROTO, VIOLATION "%s chunk for unknown cookie %" PRIu64,
              chunk_type_name (type), cookie);
    return -1;
  }
  input_consume (h, sizeof (struct nbd_structured_reply));
  h->rcmd = cmd;
  h->rsimple = false;
  h->rflags = flags;
  h->rtype = type;
  h->rlength = length;

  /* NBD spec, "Structured reply types": a chunk of an unexpected type or
   * with inconsistent contents calls for a hard disconnect; an error chunk
   * only errors the reply, unless its message does not fit.
   */
  switch (type) {
  case NBD_REPLY_TYPE_NONE:
    if (length != 0 || !(flags & NBD_REPLY_FLAG_DONE)) {
      set_dead (h, EPROTO, VIOLATION "NONE chunk %s", length != 0
                ? "with a payload" : "without the DONE flag");
      return -1;
    }
    chunk_done (h);
    return 0;

  case NBD_REPLY_TYPE_OFFSET_DATA:
  case NBD_REPLY_TYPE_OFFSET_HOLE:
    if (cmd->type != NBD_CMD_READ) {
      set_dead (h, EPROTO, VIOLATION "%s chunk in reply to a command that "
                "is not a read", chunk_type_name (type));
      return -1;
    }
    if (type == NBD_REPLY_TYPE_OFFSET_DATA &&
        (length < 9 || length - 8 > cmd->count)) {
      set_dead (h, EPROTO, VIOLATION "OFFSET_DATA chunk with %" PRIu32
                " bytes of data for a read of %" PRIu32 " bytes",
                length < 8 ? 0 : length - 8, cmd->count);
      return -1;
    }
    if (type == NBD_REPLY_TYPE_OFFSET_HOLE && length != 12) {
      set_dead (h, EPROTO, VIOLATION "OFFSET_HOLE chunk with a payload of %"
                PRIu32 " bytes (it must be 12)", length);
      return -1;
    }
    h->rneed = type == NBD_REPLY_TYPE_OFFSET_DATA ? 8 : 12;
    h->rphase = RP_PAYLOAD;
    return 0;

  case NBD_REPLY_TYPE_BLOCK_STATUS:
    if (cmd->type != NBD_CMD_BLOCK_STATUS) {
      set_dead (h, EPROTO, VIOLATION "BLOCK_STATUS chunk in reply to a "
                "command that is not block status");
      return -1;
    }
    return start_extents (h, length);

  default:
    if (!NBD_REPLY_TYPE_IS_ERR (type)) {
      set_dead (h, EPROTO, VIOLATION "unknown chunk type %" PRIu16, type);
      return -1;
    }
    if (length < sizeof (struct nbd_chunk_error) ||
        length > MAX_ERROR_CHUNK) {
      set_dead (h, EPROTO, VIOLATION "%s chunk with a payload of %" PRIu32
                " bytes", chunk_type_name (type), length);
      return -1;
    }
    h->rneed = length;
    h->rphase = RP_PAYLOAD;
    return 0;
  }
}

/* An error chunk's whole payload is in the input buffer.  Returns -1 if
 * the handle died.
 */
static int
error_chunk (struct nbd_handle *h)
{
  struct command *cmd = h->rcmd;
  const char *p = input_peek (h);
  uint32_t error = get32 (p);
  uint16_t msglen = get16 (p + 4);
  const char *msg = p + 6;
  uint32_t expected = 6 + msglen;
  uint64_t offset = 0;
  int errnum;

  if (h->rtype == NBD_REPLY_TYPE_ERROR_OFFSET)
    expected += 8;
  if (msglen > NBD_MAX_STRING) {
    set_dead (h, EPROTO, VIOLATION "%s chunk with a message of %" PRIu16
              " bytes (the limit is %d)", chunk_type_name (h->rtype), msglen,
              NBD_MAX_STRING);
    return -1;
  }
  if (expected > h->rlength) {
    set_dead (h, EPROTO, VIOLATION "%s chunk: message of %" PRIu16 " bytes "
              "does not fit its payload of %" PRIu32 " bytes",
              chunk_type_name (h->rtype), msglen, h->rlength);
    return -1;
  }
  if (expected != h->rlength && (h->rtype == NBD_REPLY_TYPE_ERROR ||
                                 h->rtype == NBD_REPLY_TYPE_ERROR_OFFSET)) {
    command_fail (cmd, EPROTO, VIOLATION "%s chunk: %" PRIu32 " bytes of "
                  "payload after its fields", chunk_type_name (h->rtype),
                  h->rlength - expected);
    return 0;
  }
  if (error == 0) {             /* the stream is intact: as libnbd */
    command_fail (cmd, EINVAL, VIOLATION "%s chunk with error value 0",
                  chunk_type_name (h->rtype));
    return 0;
  }
  errnum = errno_from_wire (error);
  if (h->rtype == NBD_REPLY_TYPE_ERROR_OFFSET) {
    offset = get64 (msg + msglen);
    if (!inside_request (cmd, offset, 1)) {
      command_fail (cmd, EPROTO, VIOLATION "ERROR_OFFSET chunk at offset %"
                    PRIu64 " outside the request [%" PRIu64 ", +%" PRIu32
                    ")", offset, cmd->offset, cmd->count);
      return 0;
    }
    if (cmd->type == NBD_CMD_READ)
      call_chunk (cmd, (char *) cmd->data + (offset - cmd->offset), 0,
                  offset, LIBNBD_READ_ERROR, errnum);
  }
  /* Keep the server's message, made printable. */
  char text[NBD_MAX_STRING + 1];
  printable_message (text, msg, msglen);
  command_fail (cmd, errnum, "server replied with error: %s%s%s",
                strerror (errnum), msglen ? ": " : "", text);
  return 0;
}

/* A small chunk payload (rneed bytes) is in the input buffer.  Returns -1
 * if the handle died.
 */
static int
chunk_payload (struct nbd_handle *h)
{
  struct command *cmd = h->rcmd;
  const char *p = input_peek (h);

  switch (h->rtype) {
  case NBD_REPLY_TYPE_OFFSET_DATA: {
    uint64_t offset = get64 (p);
    uint32_t len = h->rlength - 8;

    input_consume (h, 8);
    if (!accept_range (cmd, h->rtype, offset, len)) {
      reject_chunk (h, len);
      return 0;
    }
    h->roffset = offset;
    h->rstart = h->rdest = (char *) cmd->data + (offset - cmd->offset);
    h->rleft = len;
    h->rphase = RP_DATA;
    return 0;
  }
  case NBD_REPLY_TYPE_OFFSET_HOLE: {
    uint64_t offset = get64 (p);
    uint32_t len = get32 (p + 8);

    input_consume (h, 12);
    if (len == 0) {
      set_dead (h, EPROTO, VIOLATION "OFFSET_HOLE chunk of length 0");
      return -1;
    }
    if (accept_range (cmd, h->rtype, offset, len)) {
      char *dest = (char *) cmd->data + (offset - cmd->offset);

      memset (dest, 0, len);
      call_chunk (cmd, dest, len, offset, LIBNBD_READ_HOLE, 0);
    }
    chunk_done (h);
    return 0;
  }
  default:
    if (error_chunk (h) == -1)
      return -1;
    input_consume (h, h->rlength);
    chunk_done (h);
    return 0;
  }
}

/* Read and handle replies until the socket has no more input, or until a
 * command completed and nothing more is buffered: then the caller gets
 * control back to issue more commands while the server works (the socket
 * still shows readable for whatever else is coming).  Returns IO_AGAIN, or
 * -1 when the handle died or closed.
 */
int
reply_step (struct nbd_handle *h)
{
  uint64_t completions = h->completions;

  for (;;) {
    int r = IO_DONE;

    if (h->completions != completions && h->rphase == RP_HEADER &&
        input_available (h) == 0)
      return IO_AGAIN;

    switch (h->rphase) {
    case RP_HEADER: {
      uint32_t magic;

      r = input_fill (h, 4);
      if (r != IO_DONE)
        break;
      magic = get32 (input_peek (h));
      if (magic == NBD_SIMPLE_REPLY_MAGIC) {
        r = input_fill (h, sizeof (struct nbd_simple_reply));
        if (r == IO_DONE && simple_reply (h) == -1)
          return -1;
      }
      else if (magic == NBD_STRUCTURED_REPLY_MAGIC) {
        r = input_fill (h, sizeof (struct nbd_structured_reply));
        if (r == IO_DONE && structured_reply (h) == -1)
          return -1;
      }
      else {
        set_dead (h, EPROTO, VIOLATION "bad reply magic 0x%08" PRIx32,
                  magic);
        return -1;
      }
      break;
    }

    case RP_DATA:
      r = input_read_into (h, &h->rdest, &h->rleft);
      if (r != IO_DONE)
        break;
      h->large_reads = h->rdest - h->rstart >= LARGE_READ;
      call_chunk (h->rcmd, h->rstart, h->rdest - h->rstart, h->roffset,
                  LIBNBD_READ_DATA, 0);
      if (h->rsimple) {
        h->rcmd->covered = h->rcmd->count;
        command_complete (h, h->rcmd);
        next_reply (h);
      }
      else
        chunk_done (h);
      break;

    case RP_EXTENTS:
      r = input_read_into (h, &h->rdest, &h->rleft);
      if (r == IO_DONE) {
        extents_chunk (h);
        chunk_done (h);
      }
      break;

    case RP_PAYLOAD:
      r = input_fill (h, h->rneed);
      if (r == IO_DONE && chunk_payload (h) == -1)
        return -1;
      break;

    case RP_DISCARD:
      r = input_discard (h, &h->rleft);
      if (r == IO_DONE)
        chunk_done (h);
      break;
    }

    switch (r) {
    case IO_DONE:
      continue;
    case IO_AGAIN:
      return IO_AGAIN;
    case IO_EOF:
      /* Between replies the server may close (after NBD_CMD_DISC, or
       * going away): the handle is closed, as in libnbd, and whatever is
       * in flight fails.  In the middle of a reply it died.
       */
      if (h->rphase == RP_HEADER && input_available (h) == 0) {
        set_closed (h);
        return -1;
      }
      set_dead (h, ECONNRESET, "server closed the connection in the middle "
                "of a reply");
      return -1;
    default:
      set_dead (h, errno, "recv: %s", io_error_text (h));
      return -1;
    }
  }
}
