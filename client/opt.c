/* libnbdc: the option-mode entry points, nbd_opt_* and nbd_aio_opt_*
 * (nbd_set_opt_mode(3)).  Each starts one option on a negotiating handle
 * (handshake.c runs it); the aio forms return at once and report through
 * the completion callback, the blocking forms wait for the option to end
 * and return what it gave.
 */

#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* nbd_opt_*(3) "HANDLE STATE": the handle must be negotiating.  As in
 * libnbd, a handle never connected fails with ENOTCONN, others EINVAL.
 */
static int
check_negotiating (struct nbd_handle *h)
{
  if (h->state == STATE_NEGOTIATING)
    return 0;
  set_error (h->state == STATE_CREATED ? ENOTCONN : EINVAL,
             "invalid state: %s: the handle must be negotiating",
             state_name (h));
  return -1;
}

/* Free callbacks an nbd_*opt_* call was given and never used: the list or
 * context callback's first, as libnbd frees them.
 */
static void
free_unused (nbd_list_callback *list, nbd_context_callback *context,
             nbd_completion_callback *completion)
{
  if (list && list->free)
    list->free (list->user_data);
  if (context && context->free)
    context->free (context->user_data);
  if (completion && completion->free)
    completion->free (completion->user_data);
}

/* The core of every nbd_aio_opt_* call; called locked.  The callbacks are
 * owned from here on.  Like libnbd, the call succeeds once the option is
 * queued: a connection that dies at once fails the option through its
 * completion callback (ENOTCONN) and the state.
 */
static int
aio_opt (struct nbd_handle *h, uint32_t option, nbd_list_callback *list,
         nbd_context_callback *context, nbd_completion_callback *completion)
{
  if (check_negotiating (h) == -1) {
    free_unused (list, context, completion);
    return -1;
  }
  if (option_issue (h, option, list, context, completion) == -1)
    return -1;
  if (run_machine (h) == -1)
    debug (h, "option queued, but the connection died: %s",
           h->dead_reason ? h->dead_reason : "unknown reason");
  return 0;
}

/* What a blocking nbd_opt_* call learns from its option. */
struct opt_wait {
  bool done;
  int error;
  int count;                    /* exports or contexts listed */
  nbd_list_callback list;       /* the caller's */
  nbd_context_callback context;
};

static int
opt_wait_complete (void *user_data, int *error)
{
  struct opt_wait *w = user_data;

  w->done = true;
  w->error = *error;
  return 1;
}

/* Wait for the option to end; called locked.  Returns 0 when it ended
 * (w->error says how), -1 if waiting failed (the error set): then the
 * option, if still in progress, forgets the caller's callbacks (their
 * .free runs), since they live on this call's stack.
 */
static int
wait_for_option (struct nbd_handle *h, struct opt_wait *w)
{
  while (!w->done && h->state == STATE_HANDSHAKE)
    if (poll_once (h, -1, NULL) == -1)
      break;
  leave_socket (h);
  if (w->done)
    return 0;
  if (h->opt_issued)
    option_forget (h);
  if (h->state != STATE_DEAD)
    set_error (EINVAL, "the option did not complete (state %s)",
               state_name (h));
  return -1;
}

/* Start a blocking option and wait for it: 0 and w->error, or -1. */
static int
sync_opt (struct nbd_handle *h, uint32_t option, nbd_list_callback *list,
          nbd_context_callback *context, struct opt_wait *w)
{
  nbd_completion_callback completion = {
    .callback = opt_wait_complete, .user_data = w,
  };

  if (aio_opt (h, option, list, context, &completion) == -1)
    return -1;
  if (wait_for_option (h, w) == -1)
    return -1;
  if (h->state == STATE_DEAD) {
    /* The connection died with the option: say why, not ENOTCONN. */
    set_error (h->dead_errno, "%s", h->dead_reason ? h->dead_reason
               : "the connection died");
    return -1;
  }
  if (w->error) {
    set_error (w->error, "%s", h->opt_error ? h->opt_error
               : strerror (w->error));
    return -1;
  }
  return 0;
}

/* The list and context callbacks of the blocking calls: count each reply
 * and pass it on; .free passes on to the caller's .free.
 */
static void
count_reply (struct opt_wait *w)
{
  if (w->count < INT_MAX)
    w->count++;
}

static int
sync_list_entry (void *user_data, const char *name, const char *description)
{
  struct opt_wait *w = user_data;

  count_reply (w);
  if (w->list.callback)
    w->list.callback (w->list.user_data, name, description);
  return 0;
}

static void
sync_list_free (void *user_data)
{
  struct opt_wait *w = user_data;

  if (w->list.free)
    w->list.free (w->list.user_data);
}

static int
sync_context_entry (void *user_data, const char *name)
{
  struct opt_wait *w = user_data;

  count_reply (w);
  if (w->context.callback)
    w->context.callback (w->context.user_data, name);
  return 0;
}

static void
sync_context_free (void *user_data)
{
  struct opt_wait *w = user_data;

  if (w->context.free)
    w->context.free (w->context.user_data);
}

/* ----- Blocking calls. ----- */

int
nbd_opt_go (struct nbd_handle *h)
{
  struct opt_wait w = { 0 };
  int r;

  ENTER ();
  lock_handle (h);
  r = sync_opt (h, NBD_OPT_GO, NULL, NULL, &w);
  unlock_handle (h);
  return r;
}

int
nbd_opt_info (struct nbd_handle *h)
{
  struct opt_wait w = { 0 };
  int r;

  ENTER ();
  lock_handle (h);
  r = sync_opt (h, NBD_OPT_INFO, NULL, NULL, &w);
  unlock_handle (h);
  return r;
}

/* nbd_opt_abort(3): the connection is closed once ABORT is sent. */
int
nbd_opt_abort (struct nbd_handle *h)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = aio_opt (h, NBD_OPT_ABORT, NULL, NULL, NULL);
  while (r == 0 && h->state == STATE_HANDSHAKE)
    r = poll_once (h, -1, NULL) == -1 ? -1 : 0;
  leave_socket (h);
  if (r == 0 && h->state != STATE_CLOSED) {
    set_error (ENOTCONN, "the connection %s before NBD_OPT_ABORT was sent",
               h->state == STATE_DEAD ? "died" : "ended");
    r = -1;
  }
  unlock_handle (h);
  return r;
}

/* nbd_opt_list(3): the number of exports the server listed. */
int
nbd_opt_list (struct nbd_handle *h, nbd_list_callback list)
{
  struct opt_wait w = { .list = list };
  nbd_list_callback wrapper = {
    .callback = sync_list_entry, .user_data = &w, .free = sync_list_free,
  };
  int r;

  ENTER ();
  lock_handle (h);
  r = sync_opt (h, NBD_OPT_LIST, &wrapper, NULL, &w);
  unlock_handle (h);
  return r == -1 ? -1 : w.count;
}

/* nbd_opt_list_meta_context(3): the number of contexts listed. */
int
nbd_opt_list_meta_context (struct nbd_handle *h,
                           nbd_context_callback context)
{
  struct opt_wait w = { .context = context };
  nbd_context_callback wrapper = {
    .callback = sync_context_entry, .user_data = &w,
    .free = sync_context_free,
  };
  int r;

  ENTER ();
  lock_handle (h);
  r = sync_opt (h, NBD_OPT_LIST_META_CONTEXT, NULL, &wrapper, &w);
  unlock_handle (h);
  return r == -1 ? -1 : w.count;
}

/* ----- Asynchronous calls. ----- */

int
nbd_aio_opt_go (struct nbd_handle *h, nbd_completion_callback completion)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = aio_opt (h, NBD_OPT_GO, NULL, NULL, &completion);
  unlock_handle (h);
  return r;
}

int
nbd_aio_opt_info (struct nbd_handle *h, nbd_completion_callback completion)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = aio_opt (h, NBD_OPT_INFO, NULL, NULL, &completion);
  unlock_handle (h);
  return r;
}

int
nbd_aio_opt_abort (struct nbd_handle *h)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = aio_opt (h, NBD_OPT_ABORT, NULL, NULL, NULL);
  unlock_handle (h);
  return r;
}

int
nbd_aio_opt_list (struct nbd_handle *h, nbd_list_callback list,
                  nbd_completion_callback completion)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = aio_opt (h, NBD_OPT_LIST, &list, NULL, &completion);
  unlock_handle (h);
  return r;
}

int
nbd_aio_opt_list_meta_context (struct nbd_handle *h,
                               nbd_context_callback context,
                               nbd_completion_callback completion)
{
  int r;

  ENTER ();
  lock_handle (h);
  r = aio_opt (h, NBD_OPT_LIST_META_CONTEXT, NULL, &context, &completion);
  unlock_handle (h);
  return r;
}
