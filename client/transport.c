/* libnbdc: the plain transport (TLS, the other one, is in crypto.c) and
 * the buffered input and output every state uses.  Results of the I/O
 * helpers: 1 done, 0 would block, -1 error (errno set), -2 end of file.
 */

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

static ssize_t
plain_recv (struct nbd_handle *h, void *buf, size_t len)
{
  return recv (h->fd, buf, len, 0);
}

static ssize_t
plain_sendv (struct nbd_handle *h, const struct iovec *iov, int n)
{
  struct msghdr msg = { .msg_iov = (struct iovec *) iov, .msg_iovlen = n };

  return sendmsg (h->fd, &msg, MSG_NOSIGNAL);
}

static bool
plain_pending (struct nbd_handle *h)
{
  return false;
}

static bool
plain_wants_write (const struct nbd_handle *h)
{
  return false;
}

static int
plain_shut_writes (struct nbd_handle *h)
{
  return shutdown (h->fd, SHUT_WR);
}

static void
plain_close (struct nbd_handle *h)
{
  if (h->fd >= 0)
    close (h->fd);
  h->fd = -1;
}

const struct transport plain_transport = {
  .name = "plain",
  .recv = plain_recv,
  .sendv = plain_sendv,
  .pending = plain_pending,
  .wants_write = plain_wants_write,
  .shut_writes = plain_shut_writes,
  .close = plain_close,
  .error = NULL,
};

/* The text of the failure of the last transport call (errno is set). */
const char *
io_error_text (struct nbd_handle *h)
{
  const char *text = h->transport && h->transport->error
    ? h->transport->error (h) : NULL;

  return text ? text : strerror (errno);
}

/* One recv through the transport, within the budget of this run of the
 * machine (machine.c): past it, "would block", though the socket may still
 * hold bytes; it then polls readable and the next run goes on.  Bytes the
 * transport already holds (a TLS record decrypted in part) are read even
 * past the budget: poll(2) cannot see them.
 */
static ssize_t
budget_recv (struct nbd_handle *h, void *buf, size_t len)
{
  if (h->recv_budget == 0 && !h->transport->pending (h)) {
    errno = EAGAIN;
    return -1;
  }
  if (h->recv_budget > 0)
    h->recv_budget--;
  return h->transport->recv (h, buf, len);
}

/* Classify the result of a recv/send. */
int
io_result (ssize_t r)
{
  if (r > 0)
    return IO_DONE;
  if (r == 0)
    return IO_EOF;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    return IO_AGAIN;
  return IO_ERROR;
}

size_t
input_available (const struct nbd_handle *h)
{
  return h->in_end - h->in_start;
}

const char *
input_peek (const struct nbd_handle *h)
{
  return h->inbuf + h->in_start;
}

void
input_consume (struct nbd_handle *h, size_t n)
{
  h->in_start += n;
  if (h->in_start == h->in_end)
    h->in_start = h->in_end = 0;
}

/* How much to ask the transport for when the input buffer must grow to
 * need bytes.  Small replies: as much as fits, so one recv brings many.
 * Large reads: one header, so the data that follows goes straight to the
 * caller's buffer instead of through ours.
 */
static size_t
fill_size (const struct nbd_handle *h, size_t need)
{
  /* A whole header, with the offset of a data chunk: then the data is
   * read to the start of its place, aligned as the caller's buffer is.
   */
  size_t header = h->sr_negotiated
    ? sizeof (struct nbd_structured_reply) + 8
    : sizeof (struct nbd_simple_reply);
  size_t space = INBUF_SIZE - h->in_end;
  size_t want = (need > header ? need : header) - input_available (h);

  return h->large_reads && h->rphase == RP_HEADER && want < space
    ? want : space;
}

/* Make at least need (<= INBUF_SIZE) bytes available in the input buffer,
 * reading as much as the socket has so that several replies can come in one
 * recv.
 */
int
input_fill (struct nbd_handle *h, size_t need)
{
  while (input_available (h) < need) {
    ssize_t r;
    int res;

    if (INBUF_SIZE - h->in_start < need) {
      memmove (h->inbuf, h->inbuf + h->in_start, input_available (h));
      h->in_end -= h->in_start;
      h->in_start = 0;
    }
    r = budget_recv (h, h->inbuf + h->in_end, fill_size (h, need));
    res = io_result (r);
    if (res != IO_DONE)
      return res;
    h->in_end += r;
  }
  return IO_DONE;
}

/* Move *left bytes into *dest: first what the input buffer holds, then
 * straight from the transport into the destination (no extra copy).
 */
int
input_read_into (struct nbd_handle *h, char **dest, size_t *left)
{
  size_t n = input_available (h);

  if (n > *left)
    n = *left;
  if (n) {
    memcpy (*dest, input_peek (h), n);
    input_consume (h, n);
    *dest += n;
    *left -= n;
  }
  while (*left > 0) {
    ssize_t r = budget_recv (h, *dest, *left);
    int res = io_result (r);

    if (res != IO_DONE)
      return res;
    *dest += r;
    *left -= r;
  }
  return IO_DONE;
}

/* Skip *left bytes of input. */
int
input_discard (struct nbd_handle *h, size_t *left)
{
  while (*left > 0) {
    size_t n;
    int res;

    if (input_available (h) == 0) {
      res = input_fill (h, 1);
      if (res != IO_DONE)
        return res;
    }
    n = input_available (h);
    if (n > *left)
      n = *left;
    input_consume (h, n);
    *left -= n;
  }
  return IO_DONE;
}

/* Append bytes to the handshake output buffer. */
int
output_queue (struct nbd_handle *h, const void *buf, size_t len)
{
  char *p = realloc (h->obuf, h->olen + len);

  if (p == NULL) {
    set_error (errno, "realloc");
    return -1;
  }
  memcpy (p + h->olen, buf, len);
  h->obuf = p;
  h->olen += len;
  return 0;
}

/* Send what the handshake queued. */
int
output_flush (struct nbd_handle *h)
{
  while (h->ooff < h->olen) {
    struct iovec iov = {
      .iov_base = h->obuf + h->ooff, .iov_len = h->olen - h->ooff
    };
    ssize_t r = h->transport->sendv (h, &iov, 1);
    int res = io_result (r);

    if (res == IO_EOF)          /* send never returns 0 for len > 0 */
      res = IO_AGAIN;
    if (res != IO_DONE)
      return res;
    h->ooff += r;
  }
  h->ooff = h->olen = 0;
  return IO_DONE;
}
