/* libnbdc: the handshake (NBD spec "Handshake phase").  Oldstyle, newstyle
 * and fixed newstyle servers; options STRUCTURED_REPLY, SET_META_CONTEXT,
 * GO (with INFO requests) and the EXPORT_NAME fallback.  Each phase runs
 * when its whole input is buffered; nothing here blocks.
 *
 * TLS (nbd_set_tls(3)): on a fixed newstyle server NBD_OPT_STARTTLS goes
 * first; after its ACK the TLS handshake runs (crypto.c) and the options
 * start over inside TLS.  Under LIBNBD_TLS_REQUIRE nothing falls back to
 * plaintext.
 *
 * Opt mode (nbd_set_opt_mode(3)): after STRUCTURED_REPLY the handle waits
 * in STATE_NEGOTIATING, and each nbd_opt_* call (opt.c) runs one option
 * here: LIST, LIST_META_CONTEXT, INFO or GO (each after SET_META_CONTEXT
 * when contexts are requested, as libnbd 1.14 does), or ABORT.  The
 * option ends in option_done, which calls its completion callback; a
 * refused option returns to STATE_NEGOTIATING.
 */

#include "internal.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIOLATION "server violated the protocol in the handshake: "

static int
queue32 (struct nbd_handle *h, uint32_t v)
{
  v = htobe32 (v);
  return output_queue (h, &v, sizeof v);
}

static int
queue16 (struct nbd_handle *h, uint16_t v)
{
  v = htobe16 (v);
  return output_queue (h, &v, sizeof v);
}

/* Queue an option header; its data follows with queue*. */
static int
queue_option (struct nbd_handle *h, uint32_t option, uint32_t len)
{
  struct nbd_new_option opt = {
    .version = htobe64 (NBD_NEW_VERSION),
    .option = htobe32 (option),
    .optlen = htobe32 (len),
  };

  h->opt_current = option;
  return output_queue (h, &opt, sizeof opt);
}

static const char *
option_name (uint32_t option)
{
  switch (option) {
  case NBD_OPT_EXPORT_NAME: return "NBD_OPT_EXPORT_NAME";
  case NBD_OPT_ABORT: return "NBD_OPT_ABORT";
  case NBD_OPT_LIST: return "NBD_OPT_LIST";
  case NBD_OPT_INFO: return "NBD_OPT_INFO";
  case NBD_OPT_GO: return "NBD_OPT_GO";
  case NBD_OPT_LIST_META_CONTEXT: return "NBD_OPT_LIST_META_CONTEXT";
  case NBD_OPT_STRUCTURED_REPLY: return "NBD_OPT_STRUCTURED_REPLY";
  case NBD_OPT_SET_META_CONTEXT: return "NBD_OPT_SET_META_CONTEXT";
  case NBD_OPT_STARTTLS: return "NBD_OPT_STARTTLS";
  default: return "option";
  }
}

static const char *
reply_error_name (uint32_t reply)
{
  switch (reply) {
  case NBD_REP_ERR_UNSUP: return "unsupported";
  case NBD_REP_ERR_POLICY: return "forbidden by policy";
  case NBD_REP_ERR_INVALID: return "invalid";
  case NBD_REP_ERR_PLATFORM: return "not supported on this platform";
  case NBD_REP_ERR_TLS_REQD: return "TLS required";
  case NBD_REP_ERR_UNKNOWN: return "unknown export";
  case NBD_REP_ERR_SHUTDOWN: return "server shutting down";
  case NBD_REP_ERR_BLOCK_SIZE_REQD: return "block size negotiation required";
  case NBD_REP_ERR_TOO_BIG: return "request too big";
  default: return "unknown error";
  }
}

/* Copy a string from the server, refusing what the spec forbids. */
static char *
server_string (struct nbd_handle *h, const char *p, size_t len,
               const char *what)
{
  char *s;

  if (len > NBD_MAX_STRING) {
    set_dead (h, EPROTO, VIOLATION "%s of %zu bytes (the limit is %d)",
              what, len, NBD_MAX_STRING);
    return NULL;
  }
  if (memchr (p, '\0', len)) {
    set_dead (h, EPROTO, VIOLATION "%s contains a NUL byte", what);
    return NULL;
  }
  s = strndup (p, len);
  if (s == NULL)
    set_dead (h, ENOMEM, "strndup: %s", strerror (ENOMEM));
  return s;
}

/* An NBD_REP_META_CONTEXT reply to option: a context id (4 bytes) and a
 * name.  Returns the name, or NULL with the handle dead.
 */
static char *
context_name (struct nbd_handle *h, uint32_t type, const char *data,
              uint32_t len, const char *option)
{
  if (type != NBD_REP_META_CONTEXT || len < 4) {
    set_dead (h, EPROTO, VIOLATION "unexpected reply type %" PRIu32
              " of %" PRIu32 " bytes to %s", type, len, option);
    return NULL;
  }
  return server_string (h, data + 4, len - 4, "meta context name");
}

/* Forget what a previous handshake learned (also at nbd_close). */
void
free_negotiated (struct nbd_handle *h)
{
  free (h->canonical_name);
  free (h->description);
  h->canonical_name = h->description = NULL;
  for (size_t i = 0; i < h->nr_meta; i++)
    free (h->meta[i].name);
  free (h->meta);
  h->meta = NULL;
  h->nr_meta = 0;
}

/* Forget what INFO or GO told about an export: a new INFO, GO or
 * LIST_META_CONTEXT starts afresh, and a refused one leaves nothing (as
 * in libnbd 1.14, nbd_get_size then fails until the next success).
 */
static void
forget_export (struct nbd_handle *h)
{
  free_negotiated (h);
  h->negotiated = false;
  h->exportsize = 0;
  h->eflags = 0;
  h->block_minimum = h->block_preferred = h->block_maximum = 0;
}

/* End the nbd_opt_* option in progress (if any) with error err (0:
 * success): its completion callback runs once, then every .free, the
 * list or context callback's first (as in libnbd).  The callback's
 * return value is ignored: an option is always retired at once
 * (nbd_aio_opt_go(3)).
 */
static void
option_done (struct nbd_handle *h, int err)
{
  nbd_completion_callback completion = h->opt_completion;

  if (h->opt_issued == 0)
    return;
  h->opt_completion.callback = NULL;
  if (completion.callback)
    completion.callback (completion.user_data, &err);
  h->opt_completion = completion;
  option_forget (h);
}

/* Drop the option in progress without calling its completion callback
 * (nbd_close, or a blocking nbd_opt_* call that stops waiting): every
 * .free runs once.
 */
void
option_forget (struct nbd_handle *h)
{
  nbd_list_callback list = h->opt_list;
  nbd_context_callback context = h->opt_context;
  nbd_completion_callback completion = h->opt_completion;

  h->opt_issued = 0;
  memset (&h->opt_list, 0, sizeof h->opt_list);
  memset (&h->opt_context, 0, sizeof h->opt_context);
  memset (&h->opt_completion, 0, sizeof h->opt_completion);
  if (list.free)
    list.free (list.user_data);
  if (context.free)
    context.free (context.user_data);
  if (completion.free)
    completion.free (completion.user_data);
}

/* Back to STATE_NEGOTIATING (opt mode), the option in progress ended
 * with err; msg says why it failed.
 */
static int
option_end (struct nbd_handle *h, int err, const char *msg)
{
  free (h->opt_error);
  h->opt_error = NULL;
  if (err && msg && (h->opt_error = strdup (msg)) == NULL)
    debug (h, "out of memory keeping an option's error");
  h->state = STATE_NEGOTIATING;
  option_done (h, err);
  return 0;
}

/* Record the size and flags of the export (NBD_INFO_EXPORT, or the reply
 * to EXPORT_NAME).
 */
static int
accept_export (struct nbd_handle *h, uint64_t size, uint16_t eflags)
{
  if (size > INT64_MAX) {
    set_dead (h, EPROTO, VIOLATION "export size %" PRIu64 " is too large",
              size);
    return -1;
  }
  if (!(eflags & NBD_FLAG_HAS_FLAGS)) {
    debug (h, "server did not set NBD_FLAG_HAS_FLAGS: ignoring its flags");
    eflags = 0;
  }
  h->exportsize = size;
  h->eflags = eflags;
  h->negotiated = true;
  return 0;
}

/* Transmission begins. */
static int
finish_handshake (struct nbd_handle *h, uint64_t size, uint16_t eflags)
{
  if (accept_export (h, size, eflags) == -1)
    return -1;
  h->state = STATE_READY;
  free (h->obuf);
  h->obuf = NULL;
  h->olen = h->ooff = 0;
  debug (h, "connected: %s, size %" PRIu64 ", flags 0x%x%s", h->protocol,
         h->exportsize, h->eflags,
         h->sr_negotiated ? ", structured replies" : "");
  option_done (h, 0);
  return 0;
}

/* Opt mode: stop and wait for the caller's nbd_opt_* calls. */
static int
enter_negotiating (struct nbd_handle *h)
{
  debug (h, "%s server: waiting for nbd_opt_* calls", h->protocol);
  h->state = STATE_NEGOTIATING;
  return 0;
}

static int
send_export_name (struct nbd_handle *h)
{
  size_t len = strlen (h->export_name);

  h->phase = PHASE_EXPORT_NAME;
  if (queue_option (h, NBD_OPT_EXPORT_NAME, len) == -1 ||
      output_queue (h, h->export_name, len) == -1)
    return -1;
  return 0;
}

/* NBD_OPT_GO (NBD_OPT_INFO for nbd_opt_info) with INFO requests: block
 * sizes always, the canonical name and description when full info was
 * asked for (as libnbd does).
 */
static int
send_go (struct nbd_handle *h)
{
  uint16_t infos[3];
  size_t n = 0, len = strlen (h->export_name);
  uint32_t option = h->opt_issued == NBD_OPT_INFO ? NBD_OPT_INFO
    : NBD_OPT_GO;

  infos[n++] = NBD_INFO_BLOCK_SIZE;
  if (h->full_info) {
    infos[n++] = NBD_INFO_NAME;
    infos[n++] = NBD_INFO_DESCRIPTION;
  }
  h->phase = PHASE_OPT_GO;
  h->have_info_export = false;
  if (queue_option (h, option, 4 + len + 2 + 2 * n) == -1 ||
      queue32 (h, len) == -1 ||
      output_queue (h, h->export_name, len) == -1 ||
      queue16 (h, n) == -1)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (queue16 (h, infos[i]) == -1)
      return -1;
  return 0;
}

/* NBD_OPT_SET_META_CONTEXT or NBD_OPT_LIST_META_CONTEXT for the export,
 * the handle's requested contexts as queries (none: LIST asks for all).
 */
static int
send_meta_context (struct nbd_handle *h, uint32_t option)
{
  size_t len, nlen = strlen (h->export_name);

  len = 4 + nlen + 4;
  for (size_t i = 0; i < h->nr_request_meta; i++)
    len += 4 + strlen (h->request_meta[i]);
  h->phase = option == NBD_OPT_SET_META_CONTEXT
    ? PHASE_OPT_SET_META_CONTEXT : PHASE_OPT_LIST_META_CONTEXT;
  if (queue_option (h, option, len) == -1 ||
      queue32 (h, nlen) == -1 ||
      output_queue (h, h->export_name, nlen) == -1 ||
      queue32 (h, h->nr_request_meta) == -1)
    return -1;
  for (size_t i = 0; i < h->nr_request_meta; i++) {
    size_t qlen = strlen (h->request_meta[i]);

    if (queue32 (h, qlen) == -1 ||
        output_queue (h, h->request_meta[i], qlen) == -1)
      return -1;
  }
  return 0;
}

/* Ask for meta contexts (they need structured replies), then go (or
 * INFO).
 */
static int
meta_then_go (struct nbd_handle *h)
{
  if (!h->sr_negotiated || h->nr_request_meta == 0)
    return send_go (h);
  return send_meta_context (h, NBD_OPT_SET_META_CONTEXT);
}

/* After structured replies: in opt mode wait for the caller, else go on
 * to meta contexts and GO.
 */
static int
after_structured_reply (struct nbd_handle *h)
{
  if (h->opt_mode)
    return enter_negotiating (h);
  return meta_then_go (h);
}

static int
start_options (struct nbd_handle *h)
{
  if (h->request_sr) {
    h->phase = PHASE_OPT_STRUCTURED_REPLY;
    return queue_option (h, NBD_OPT_STRUCTURED_REPLY, 0);
  }
  return after_structured_reply (h);
}

/* The greeting's 16 bytes: NBDMAGIC, then IHAVEOPT or the oldstyle magic. */
static int
greeting (struct nbd_handle *h, const char *p)
{
  uint64_t magic = get64 (p), version = get64 (p + 8);

  if (magic != NBD_INIT_PASSWD) {
    set_dead (h, EPROTO, "server did not send the NBD greeting: bad magic "
              "0x%016" PRIx64 " (is it an NBD server?)", magic);
    return -1;
  }
  if (version == NBD_NEW_VERSION)
    h->phase = PHASE_GFLAGS;
  else if (version == NBD_OLD_VERSION)
    h->phase = PHASE_OLDSTYLE;
  else {
    set_dead (h, EPROTO, VIOLATION "unknown handshake version 0x%016"
              PRIx64, version);
    return -1;
  }
  return 0;
}

/* The text of an error reply: "what: error name[: server's message]". */
static char *
refusal (const char *what, uint32_t type, const char *data, uint32_t len)
{
  char msg[NBD_MAX_STRING + 1];
  char *s;

  printable_message (msg, data, len);
  if (asprintf (&s, "%s: %s%s%s", what, reply_error_name (type),
                len ? ": " : "", msg) == -1)
    s = NULL;
  return s;
}

/* TLS is required, but the server cannot start it. */
static int
tls_unavailable (struct nbd_handle *h, const char *why)
{
  set_dead (h, ENOTSUP, "TLS is required, but %s", why);
  return -1;
}

/* NBD_OPT_STARTTLS, before any other option (NBD spec "STARTTLS"). */
static int
send_starttls (struct nbd_handle *h)
{
  h->phase = PHASE_OPT_STARTTLS;
  return queue_option (h, NBD_OPT_STARTTLS, 0);
}

static int
oldstyle (struct nbd_handle *h, const char *p)
{
  if (h->tls == LIBNBD_TLS_REQUIRE)
    return tls_unavailable (h, "the server uses the oldstyle protocol, "
                            "which has no TLS");
  h->protocol = "oldstyle";
  if (get16 (p + 8) != 0)
    debug (h, "oldstyle server set upper flag bits: ignored");
  return finish_handshake (h, get64 (p), get16 (p + 10));
}

static int
gflags (struct nbd_handle *h, const char *p)
{
  uint32_t cflags;
  bool fixed;

  h->gflags = get16 (p);
  cflags = h->gflags & h->handshake_flags &
    (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  fixed = cflags & NBD_FLAG_C_FIXED_NEWSTYLE;
  h->fixed_newstyle = fixed;
  h->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;
  h->protocol = fixed ? "newstyle-fixed" : "newstyle";
  if (queue32 (h, cflags) == -1)
    return -1;
  if (fixed && h->tls != LIBNBD_TLS_DISABLE)
    return send_starttls (h);
  if (h->tls == LIBNBD_TLS_REQUIRE)
    return tls_unavailable (h, "the server is not fixed newstyle, so it "
                            "cannot start TLS");
  /* Without fixed newstyle the only safe option is EXPORT_NAME; opt
   * mode still stops (nbd_opt_go then sends EXPORT_NAME), as libnbd.
   */
  if (fixed)
    return start_options (h);
  return h->opt_mode ? enter_negotiating (h) : send_export_name (h);
}

static int
export_name_reply (struct nbd_handle *h, const char *p)
{
  return finish_handshake (h, get64 (p), get16 (p + 8));
}

/* The reply to NBD_OPT_STARTTLS.  ACK: the TLS handshake starts at the
 * very next byte, so anything the server sent after the ACK is plaintext
 * injected ahead of TLS and fails the connection.  An error: without TLS
 * if allowed (LIBNBD_TLS_ALLOW), else the end.
 */
static int
reply_starttls (struct nbd_handle *h, uint32_t type, const char *data,
                uint32_t len)
{
  size_t reply = sizeof (struct nbd_fixed_new_option_reply) + len;

  if (type == NBD_REP_ACK) {
    if (input_available (h) > reply) {
      set_dead (h, EPROTO, VIOLATION "%zu bytes after the NBD_OPT_STARTTLS "
                "reply, before the TLS handshake (plaintext injection)",
                input_available (h) - reply);
      return -1;
    }
    h->phase = PHASE_TLS_HANDSHAKE;
    return tls_start (h);
  }
  if (!NBD_REP_IS_ERR (type)) {
    set_dead (h, EPROTO, VIOLATION "unexpected reply type %" PRIu32
              " to NBD_OPT_STARTTLS", type);
    return -1;
  }
  if (h->tls == LIBNBD_TLS_REQUIRE) {
    char *msg = refusal ("the server refused NBD_OPT_STARTTLS", type, data,
                         len);

    tls_unavailable (h, msg ? msg : "the server refused NBD_OPT_STARTTLS");
    free (msg);
    return -1;
  }
  debug (h, "server refused TLS (%s): going on without it",
         reply_error_name (type));
  return start_options (h);
}

/* The TLS session is up: the options start over inside it. */
static int
tls_handshake_phase (struct nbd_handle *h)
{
  int r = tls_handshake (h);

  if (r != IO_DONE)
    return r;
  h->tls_negotiated = true;
  return start_options (h) == -1 ? IO_ERROR : IO_DONE;
}

/* Replies to NBD_OPT_STRUCTURED_REPLY: ACK, or an error (simple replies). */
static int
reply_structured_reply (struct nbd_handle *h, uint32_t type,
                        const char *data, uint32_t len)
{
  if (type == NBD_REP_ACK)
    h->sr_negotiated = true;
  else if (NBD_REP_IS_ERR (type))
    debug (h, "server refused structured replies: %s",
           reply_error_name (type));
  else {
    set_dead (h, EPROTO, VIOLATION "unexpected reply type %" PRIu32
              " to NBD_OPT_STRUCTURED_REPLY", type);
    return -1;
  }
  return after_structured_reply (h);
}

/* Replies to NBD_OPT_SET_META_CONTEXT: a context id per context the server
 * selected, then ACK.  A selected name may differ from the query that
 * chose it (a query can match several); it is kept as the server names
 * it, as libnbd keeps it.
 */
static int
reply_set_meta_context (struct nbd_handle *h, uint32_t type,
                        const char *data, uint32_t len)
{
  struct meta_context *meta;
  char *name;

  if (type == NBD_REP_ACK)
    return send_go (h);
  if (NBD_REP_IS_ERR (type)) {
    debug (h, "server refused meta contexts: %s", reply_error_name (type));
    free_negotiated (h);
    return send_go (h);
  }
  name = context_name (h, type, data, len, "NBD_OPT_SET_META_CONTEXT");
  if (name == NULL)
    return -1;
  if (h->nr_meta >= MAX_META_CONTEXTS ||
      (meta = realloc (h->meta, (h->nr_meta + 1) * sizeof *meta)) == NULL) {
    set_dead (h, EPROTO, VIOLATION "too many meta contexts");
    free (name);
    return -1;
  }
  h->meta = meta;
  meta[h->nr_meta].name = name;
  meta[h->nr_meta].id = get32 (data);
  h->nr_meta++;
  return 0;
}

static bool
is_power_of_2 (uint32_t v)
{
  return v && !(v & (v - 1));
}

/* NBD_INFO_BLOCK_SIZE (NBD spec "Block size constraints"): minimum a
 * power of 2 up to 64 KiB, preferred a power of 2 at least the minimum
 * and 512, maximum at least the preferred size and a multiple of the
 * minimum (or 0xffffffff).  Sizes that break these rules are ignored, as
 * libnbd 1.14 ignores them: the getters then return 0.
 */
static void
info_block_size (struct nbd_handle *h, const char *p)
{
  uint32_t min = get32 (p), pref = get32 (p + 4), max = get32 (p + 8);

  if (!is_power_of_2 (min) || min > 64 * 1024 || !is_power_of_2 (pref) ||
      pref < min || pref < 512 || max < pref ||
      (max != UINT32_MAX && max % min)) {
    debug (h, "ignoring invalid block sizes from the server: minimum %"
           PRIu32 ", preferred %" PRIu32 ", maximum %" PRIu32,
           min, pref, max);
    return;
  }
  h->block_minimum = min;
  h->block_preferred = pref;
  h->block_maximum = max;
}

static int
reply_info (struct nbd_handle *h, const char *data, uint32_t len)
{
  uint16_t info;
  char **field;

  if (len < 2) {
    set_dead (h, EPROTO, VIOLATION "NBD_REP_INFO of %" PRIu32 " bytes", len);
    return -1;
  }
  info = get16 (data);
  switch (info) {
  case NBD_INFO_EXPORT:
    if (len != 12)
      break;
    h->have_info_export = true;
    h->exportsize = get64 (data + 2);
    h->eflags = get16 (data + 10);
    return 0;
  case NBD_INFO_BLOCK_SIZE:
    if (len != 14)
      break;
    info_block_size (h, data + 2);
    return 0;
  case NBD_INFO_NAME:
  case NBD_INFO_DESCRIPTION:
    field = info == NBD_INFO_NAME ? &h->canonical_name : &h->description;
    free (*field);
    *field = server_string (h, data + 2, len - 2, info == NBD_INFO_NAME
                            ? "export name" : "export description");
    return *field ? 0 : -1;
  default:
    debug (h, "ignoring unknown NBD_INFO type %" PRIu16, info);
    return 0;
  }
  set_dead (h, EPROTO, VIOLATION "NBD_INFO type %" PRIu16 " of %" PRIu32
            " bytes", info, len);
  return -1;
}

/* The errno of a refused NBD_OPT_GO or NBD_OPT_INFO: libnbd's where it
 * sets one.  Where libnbd 1.14 leaves errno 0, nbd_connect_* says EPERM
 * (ERR_POLICY) or EINVAL, and nbd_opt_go/nbd_opt_info say ENOTSUP, the
 * errno libnbd gives those in opt mode.
 */
static int
go_error_errno (uint32_t type, bool opt_mode)
{
  switch (type) {
  case NBD_REP_ERR_UNKNOWN: return ENOENT;
  case NBD_REP_ERR_TLS_REQD: return ENOTSUP;
  case NBD_REP_ERR_PLATFORM: return ENOTSUP;
  case NBD_REP_ERR_SHUTDOWN: return ESHUTDOWN;
  case NBD_REP_ERR_INVALID:
  case NBD_REP_ERR_TOO_BIG:
  case NBD_REP_ERR_BLOCK_SIZE_REQD: return EINVAL;
  case NBD_REP_ERR_POLICY: return opt_mode ? ENOTSUP : EPERM;
  default: return opt_mode ? ENOTSUP : EINVAL;
  }
}

/* NBD_REP_ACK of GO or INFO: the export's size and flags came. */
static int
go_acknowledged (struct nbd_handle *h)
{
  if (!h->have_info_export) {
    set_dead (h, EPROTO, VIOLATION "%s succeeded without NBD_INFO_EXPORT",
              option_name (h->opt_current));
    return -1;
  }
  if (h->opt_current == NBD_OPT_GO)
    return finish_handshake (h, h->exportsize, h->eflags);
  if (accept_export (h, h->exportsize, h->eflags) == -1)
    return -1;
  debug (h, "export \"%s\": size %" PRIu64 ", flags 0x%x", h->export_name,
         h->exportsize, h->eflags);
  return option_end (h, 0, NULL);
}

/* Replies to NBD_OPT_GO and NBD_OPT_INFO: INFO replies, then ACK (and for
 * GO transmission); or an error.
 */
static int
reply_go (struct nbd_handle *h, uint32_t type, const char *data,
          uint32_t len)
{
  bool go = h->opt_current == NBD_OPT_GO;
  char *why;
  int err;

  if (type == NBD_REP_INFO)
    return reply_info (h, data, len);
  if (type == NBD_REP_ACK)
    return go_acknowledged (h);
  /* A server that predates GO: EXPORT_NAME instead (nbd_opt_info fails). */
  if (type == NBD_REP_ERR_UNSUP && go) {
    debug (h, "server does not support NBD_OPT_GO: using EXPORT_NAME");
    free_negotiated (h);
    return send_export_name (h);
  }
  if (!NBD_REP_IS_ERR (type)) {
    set_dead (h, EPROTO, VIOLATION "unexpected reply type %" PRIu32
              " to %s", type, option_name (h->opt_current));
    return -1;
  }
  if (asprintf (&why, "server refused export \"%s\"", h->export_name) == -1)
    return -1;
  err = go_error_errno (type, h->opt_issued != 0);
  if (h->opt_issued == 0) {
    char *msg = refusal (why, type, data, len);

    set_dead (h, err, "%s", msg ? msg : why);
    free (msg);
    free (why);
    return -1;
  }
  /* Opt mode: the server is still negotiating (nbd_opt_go(3)); what an
   * earlier INFO told was forgotten when this option started.
   */
  {
    char *msg = refusal (why, type, data, len);

    debug (h, "%s: %s", option_name (h->opt_current), msg ? msg : why);
    option_end (h, err, msg ? msg : why);
    free (msg);
  }
  free (why);
  return 0;
}

/* Replies to NBD_OPT_LIST: an NBD_REP_SERVER per export (name length (4),
 * name, description: the rest), then ACK; or an error, perhaps after some
 * exports.  Every export reaches the list callback.
 */
static int
reply_list (struct nbd_handle *h, uint32_t type, const char *data,
            uint32_t len)
{
  uint32_t nlen;
  char *name, *description;

  if (type == NBD_REP_ACK)
    return option_end (h, 0, NULL);
  if (NBD_REP_IS_ERR (type)) {
    char *msg = refusal ("server refused NBD_OPT_LIST", type, data, len);

    /* libnbd 1.14 fails a refused LIST with ENOTSUP, whatever the error. */
    option_end (h, ENOTSUP, msg);
    free (msg);
    return 0;
  }
  if (type != NBD_REP_SERVER) {
    set_dead (h, EPROTO, VIOLATION "unexpected reply type %" PRIu32
              " to NBD_OPT_LIST", type);
    return -1;
  }
  if (len < 4) {
    set_dead (h, EPROTO, VIOLATION "NBD_REP_SERVER of %" PRIu32 " bytes "
              "(no room for the name length)", len);
    return -1;
  }
  nlen = get32 (data);
  if (nlen > len - 4) {
    set_dead (h, EPROTO, VIOLATION "NBD_REP_SERVER name of %" PRIu32
              " bytes in a payload of %" PRIu32, nlen, len);
    return -1;
  }
  name = server_string (h, data + 4, nlen, "export name");
  if (name == NULL)
    return -1;
  description = server_string (h, data + 4 + nlen, len - 4 - nlen,
                               "export description");
  if (description == NULL) {
    free (name);
    return -1;
  }
  if (h->opt_list.callback)
    h->opt_list.callback (h->opt_list.user_data, name, description);
  free (name);
  free (description);
  return 0;
}

/* Replies to NBD_OPT_LIST_META_CONTEXT: an NBD_REP_META_CONTEXT (context
 * id (4), name) per context, then ACK; or an error.
 */
static int
reply_list_meta_context (struct nbd_handle *h, uint32_t type,
                         const char *data, uint32_t len)
{
  char *name;

  if (type == NBD_REP_ACK)
    return option_end (h, 0, NULL);
  if (NBD_REP_IS_ERR (type)) {
    char *msg = refusal ("server refused NBD_OPT_LIST_META_CONTEXT", type,
                         data, len);

    /* As libnbd 1.14: ENOTSUP, whatever the error. */
    option_end (h, ENOTSUP, msg);
    free (msg);
    return 0;
  }
  name = context_name (h, type, data, len, "NBD_OPT_LIST_META_CONTEXT");
  if (name == NULL)
    return -1;
  if (h->opt_context.callback)
    h->opt_context.callback (h->opt_context.user_data, name);
  free (name);
  return 0;
}

/* Buffer one whole option reply.  Returns IO_DONE with *type, *data, *len
 * set (the caller consumes 20 + len bytes), or another IO_ result.
 */
static int
read_option_reply (struct nbd_handle *h, uint32_t *type, const char **data,
                   uint32_t *len)
{
  const char *p;
  int r = input_fill (h, sizeof (struct nbd_fixed_new_option_reply));

  if (r != IO_DONE)
    return r;
  p = input_peek (h);
  if (get64 (p) != NBD_OPT_REPLY_MAGIC) {
    set_dead (h, EPROTO, VIOLATION "bad option reply magic 0x%016" PRIx64,
              get64 (p));
    return IO_ERROR;
  }
  if (get32 (p + 8) != h->opt_current) {
    set_dead (h, EPROTO, VIOLATION "reply to option %" PRIu32 " while "
              "waiting for %s", get32 (p + 8), option_name (h->opt_current));
    return IO_ERROR;
  }
  *type = get32 (p + 12);
  *len = get32 (p + 16);
  if (*len > MAX_OPTION_REPLY) {
    set_dead (h, EPROTO, VIOLATION "option reply of %" PRIu32 " bytes to %s "
              "(the limit is %d)", *len, option_name (h->opt_current),
              MAX_OPTION_REPLY);
    return IO_ERROR;
  }
  if (*type == NBD_REP_ACK && *len != 0) {
    set_dead (h, EPROTO, VIOLATION "NBD_REP_ACK to %s with a payload of %"
              PRIu32 " bytes", option_name (h->opt_current), *len);
    return IO_ERROR;
  }
  r = input_fill (h, sizeof (struct nbd_fixed_new_option_reply) + *len);
  if (r != IO_DONE)
    return r;
  *data = input_peek (h) + sizeof (struct nbd_fixed_new_option_reply);
  return IO_DONE;
}

/* How many bytes the current phase needs before it can run. */
static size_t
phase_needs (const struct nbd_handle *h)
{
  switch (h->phase) {
  case PHASE_GREETING: return 16;
  case PHASE_OLDSTYLE: return sizeof (struct nbd_old_handshake);
  case PHASE_GFLAGS: return 2;
  case PHASE_EXPORT_NAME:
    return sizeof (struct nbd_export_name_reply) - (h->no_zeroes ? 124 : 0);
  default: return 0;            /* option replies size themselves */
  }
}

static int
run_phase (struct nbd_handle *h)
{
  size_t need = phase_needs (h);
  int r;

  /* NBD_OPT_ABORT is sent: close without waiting for its ACK (the spec
   * lets the client), as libnbd does.
   */
  if (h->phase == PHASE_OPT_ABORT) {
    set_closed (h);
    return IO_DONE;
  }
  if (h->phase == PHASE_TLS_HANDSHAKE)
    return tls_handshake_phase (h);
  if (need) {
    const char *p;

    r = input_fill (h, need);
    if (r != IO_DONE)
      return r;
    p = input_peek (h);
    switch (h->phase) {
    case PHASE_GREETING: r = greeting (h, p); break;
    case PHASE_OLDSTYLE: r = oldstyle (h, p); break;
    case PHASE_GFLAGS: r = gflags (h, p); break;
    default: r = export_name_reply (h, p); break;
    }
    if (h->state != STATE_DEAD)
      input_consume (h, need);
  }
  else {
    uint32_t type, len;
    const char *data;

    r = read_option_reply (h, &type, &data, &len);
    if (r != IO_DONE)
      return r;
    switch (h->phase) {
    case PHASE_OPT_STARTTLS:
      r = reply_starttls (h, type, data, len);
      break;
    case PHASE_OPT_STRUCTURED_REPLY:
      r = reply_structured_reply (h, type, data, len);
      break;
    case PHASE_OPT_SET_META_CONTEXT:
      r = reply_set_meta_context (h, type, data, len);
      break;
    case PHASE_OPT_LIST:
      r = reply_list (h, type, data, len);
      break;
    case PHASE_OPT_LIST_META_CONTEXT:
      r = reply_list_meta_context (h, type, data, len);
      break;
    default:
      r = reply_go (h, type, data, len);
      break;
    }
    if (h->state != STATE_DEAD)
      input_consume (h, sizeof (struct nbd_fixed_new_option_reply) + len);
  }
  if (r == -1 && h->state != STATE_DEAD)
    set_dead (h, ENOMEM, "out of memory in the handshake");
  return r == -1 ? IO_ERROR : IO_DONE;
}

/* Run the handshake as far as it goes. */
static int
handshake_run (struct nbd_handle *h)
{
  while (h->state == STATE_HANDSHAKE) {
    int r = output_flush (h);

    if (r == IO_DONE)
      r = run_phase (h);
    switch (r) {
    case IO_DONE:
      continue;
    case IO_AGAIN:
      return IO_AGAIN;
    case IO_EOF:
      set_dead (h, ECONNRESET, "server closed the connection during the "
                "handshake%s", h->phase == PHASE_EXPORT_NAME
                ? " (it may not have the export requested)" : "");
      return -1;
    default:
      if (h->state != STATE_DEAD)
        set_dead (h, errno, "handshake: %s", io_error_text (h));
      return -1;
    }
  }
  /* Opt mode: the client flags may still wait to go out with the first
   * option; send them now if the socket takes them.
   */
  if (h->state == STATE_NEGOTIATING && output_flush (h) == IO_ERROR) {
    set_dead (h, errno, "handshake: %s", io_error_text (h));
    return -1;
  }
  return h->state == STATE_DEAD ? -1 : IO_DONE;
}

/* Advance the handshake.  Returns IO_AGAIN when it waits for the socket,
 * IO_DONE when it stopped (transmission began, opt mode waits for the
 * caller, or nbd_opt_abort closed the connection), -1 when the handle
 * died: then the option in progress fails with ENOTCONN, as in libnbd.
 */
int
handshake_step (struct nbd_handle *h)
{
  int r = handshake_run (h);

  if (r == -1)
    option_done (h, ENOTCONN);
  return r;
}

/* Start the option of an nbd_opt_* call (opt.c); the handle is
 * negotiating.  The callbacks are owned from here on, freed exactly once
 * on every path.  Returns 0, or -1 (the error set) if the option cannot
 * be sent at all: as in libnbd, only GO and ABORT work without fixed
 * newstyle (GO becomes EXPORT_NAME), and LIST_META_CONTEXT needs
 * structured replies.  The caller then runs the machine.
 */
int
option_issue (struct nbd_handle *h, uint32_t option, nbd_list_callback *list,
              nbd_context_callback *context,
              nbd_completion_callback *completion)
{
  int r;

  if (list)
    h->opt_list = *list;
  if (context)
    h->opt_context = *context;
  if (completion)
    h->opt_completion = *completion;
  h->opt_issued = option;

  if (option != NBD_OPT_GO && option != NBD_OPT_ABORT &&
      !h->fixed_newstyle) {
    set_error (ENOTSUP, "server is not using fixed newstyle protocol");
    option_forget (h);
    return -1;
  }
  if (option == NBD_OPT_LIST_META_CONTEXT && !h->sr_negotiated) {
    set_error (ENOTSUP, "server lacks structured replies");
    option_forget (h);
    return -1;
  }

  h->state = STATE_HANDSHAKE;
  switch (option) {
  case NBD_OPT_ABORT:
    h->opt_issued = 0;          /* nothing to complete */
    h->phase = PHASE_OPT_ABORT;
    r = queue_option (h, NBD_OPT_ABORT, 0);
    break;
  case NBD_OPT_LIST:
    h->phase = PHASE_OPT_LIST;
    r = queue_option (h, NBD_OPT_LIST, 0);
    break;
  case NBD_OPT_LIST_META_CONTEXT:
    /* As libnbd 1.14, this forgets what an earlier INFO told. */
    forget_export (h);
    r = send_meta_context (h, NBD_OPT_LIST_META_CONTEXT);
    break;
  default:                      /* INFO, GO */
    forget_export (h);
    r = h->fixed_newstyle ? meta_then_go (h) : send_export_name (h);
    break;
  }
  if (r == -1) {
    set_dead (h, ENOMEM, "out of memory queuing %s", option_name (option));
    option_done (h, ENOTCONN);
  }
  return r;
}
