#!/usr/bin/env bash
# Mutation testing of client/ ("make check-mutants"; by hand, not in CI).
#
#   tests/mutants.sh [NAME...]      run the mutants named (default: all)
#   tests/mutants.sh --check        only check that each mutant applies
#   tests/mutants.sh --list         list the mutants
#
# Each mutant below is a small deliberate bug: an exact text (one or more
# lines) that must occur exactly once in client/*.c and client/*.h taken
# together (so it still applies after a function moves to another file),
# and its replacement.  In a copy of the source tree (with any uncommitted
# changes) each mutant is applied alone, the tree rebuilt and make check
# run.  The mutant is "killed" if a test fails, "survived" if the suite
# still passes; a text found zero or several times "did not apply" (update
# it), and a mutant that does not compile "did not build".  Exits 1
# unless every mutant run was killed.
#
# Environment: MUTANTS_KEEP=1 keeps the copy (its path is printed);
# NBDC_TEST_TIMEOUT bounds each test (default here 120 s: a mutant may
# hang).  The suite runs without valgrind or fuzzing.
set -u

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

names=() finds=() replaces=() whys=()
# mutant NAME WHAT FIND REPLACE
mutant () {
  names+=("$1"); whys+=("$2"); finds+=("$3"); replaces+=("$4")
}

mutant hash-rehash \
  "the cookie table's rehash puts commands in the wrong slot" \
  'size_t slot = cmd->cookie & (new_size - 1);' \
  'size_t slot = cmd->cookie & (h->hash_size - 1);'
mutant partial-send-offset \
  "a partly sent request resumes from the wrong offset" \
  'size_t sent = h->send_off + r;' \
  'size_t sent = r;'
mutant inbuf-compaction \
  "input-buffer compaction moves the wrong bytes" \
  'memmove (h->inbuf, h->inbuf + h->in_start, input_available (h));' \
  'memmove (h->inbuf, h->inbuf, input_available (h));'
mutant completion-minus-one \
  "a completion callback's -1 is ignored" \
  'if (r == -1 && error)' \
  'if (0)'
mutant greeting-magic \
  "the greeting's NBDMAGIC is not checked" \
  'if (magic != NBD_INIT_PASSWD) {' \
  'if (0) {'
mutant block-size-pref-min \
  "block sizes with preferred < minimum are accepted" \
  'pref < min ||' \
  ''
mutant error-message-4100 \
  "an error chunk message over 4096 bytes is accepted" \
  'if (msglen > NBD_MAX_STRING) {' \
  'if (msglen > NBD_MAX_STRING + 4) {'
mutant error-value-zero \
  "an error chunk with error value 0 is ignored as if it were no error" \
  'if (error == 0) {' \
  'if (error == 0)
    return 0;
  if (0) {'
mutant simple-error-read-sr \
  "a simple error reply to a read after structured replies is accepted" \
  'if (cmd->type == NBD_CMD_READ && h->sr_negotiated) {' \
  'if (cmd->type == NBD_CMD_READ && h->sr_negotiated && !error) {'
mutant dead-errno \
  "in-flight commands of a dead handle fail with EIO, not ENOTCONN" \
  'command_fail (cmd, ENOTCONN, "%s", h->dead_reason' \
  'command_fail (cmd, EIO, "%s", h->dead_reason'
mutant df-two-content-chunks \
  "a DF read answered with two data or hole chunks is accepted" \
  'cmd->content_chunks > 0) {' \
  'cmd->content_chunks > 1) {'
mutant range-overlap-right \
  "a chunk overlapping a later-offset chunk is accepted" \
  '|| (lo < n && r[lo].start < end))' \
  ')'
mutant read-not-covered \
  "a structured read reply that covers only part of the request succeeds" \
  'cmd->covered != cmd->count)' \
  'cmd->covered > cmd->count)'
mutant chunk-for-done-command \
  "a structured chunk for a command already completed is accepted" \
  'cmd = command_lookup (h, cookie);
  if (cmd == NULL || cmd->state != CMD_IN_FLIGHT) {' \
  'cmd = command_lookup (h, cookie);
  if (cmd == NULL) {'
mutant hole-length-zero \
  "an OFFSET_HOLE chunk of length 0 is accepted" \
  '    input_consume (h, 12);
    if (len == 0) {' \
  '    input_consume (h, 12);
    if (0) {'
mutant ranges-skip-memmove \
  "a read's range inserted before others overwrites one of them" \
  '    memmove (&r[lo + 1], &r[lo], (n - lo) * sizeof *r);
    r[lo].start = start;' \
  '    r[lo].start = start;'
mutant ranges-grow-lost \
  "a read's ranges are lost when their array grows" \
  'p = realloc (r, alloc * sizeof *p);' \
  'p = malloc (alloc * sizeof *p);'
mutant ranges-unbounded \
  "a read reply fragmented into more than MAX_RANGES pieces is accepted" \
  '      if (alloc > MAX_RANGES)
        return -2;
' \
  ''
mutant abandon-nothing \
  "nbd_shutdown (LIBNBD_SHUTDOWN_ABANDON_PENDING) abandons nothing" \
  'if (flags & LIBNBD_SHUTDOWN_ABANDON_PENDING) {' \
  'if (0 && flags & LIBNBD_SHUTDOWN_ABANDON_PENDING) {'
mutant abandon-partly-sent \
  "nbd_shutdown (ABANDON_PENDING) abandons a partly sent request" \
  '    if (cmd && h->send_off)
      cmd = cmd->next;' \
  ''
mutant chunk-callback-minus-one \
  "a chunk callback's -1 is ignored" \
  'status, &error) == -1)' \
  'status, &error) == -2)'

# The fixes of issue 12, each with the test that must catch it.
mutant recv-unbounded \
  "a run of the machine reads as long as the server sends" \
  'if (h->recv_budget == 0 && !h->transport->pending (h)) {' \
  'if (0) {'
mutant free-at-completion \
  "callbacks are freed when the command completes, not when retired" \
  '  list_append (&h->done, cmd);
  if (r == 1)' \
  '  free_callbacks (&cmd->cb);
  list_append (&h->done, cmd);
  if (r == 1)'
mutant pread-initialize-late \
  "a refused read leaves the buffer's old bytes" \
  'if (h->pread_initialize)
    memset (buf, 0, count);' \
  'if (h->pread_initialize && h->state == STATE_READY)
    memset (buf, 0, count);'
mutant eof-between-replies-dead \
  "a clean end of file between replies kills the handle" \
  'if (h->rphase == RP_HEADER && input_available (h) == 0) {
        set_closed (h);' \
  'if (0) {
        set_closed (h);'
mutant dead-command-enotconn \
  "a command on a dead handle fails with ENOTCONN, not EINVAL" \
  'set_error (EINVAL, "invalid state: DEAD' \
  'set_error (ENOTCONN, "invalid state: DEAD'
mutant block-size-max-below-pref \
  "a maximum block size below the preferred one is reported" \
  'pref < min || pref < 512 || max < pref ||' \
  'pref < min || pref < 512 ||'
mutant ack-with-payload \
  "an NBD_REP_ACK with a payload is accepted" \
  'if (*type == NBD_REP_ACK && *len != 0) {' \
  'if (0) {'
mutant notify-any-state \
  "nbd_aio_notify_* runs in a state that waits for no such event" \
  'if (!(direction (h) & event))' \
  'if (0)'
mutant strict-flags-off-refused \
  "without LIBNBD_STRICT_FLAGS unknown flags are still refused" \
  'if (flags > UINT16_MAX ||' \
  'if (flags > 0xff ||'
mutant can-df-without-sr \
  "DF is allowed without structured replies" \
  'return h->sr_negotiated && (h->eflags & NBD_FLAG_SEND_DF);' \
  'return (h->eflags & NBD_FLAG_SEND_DF) != 0;'
mutant in-flight-disc-sent \
  "a sent NBD_CMD_DISC is not counted in flight" \
  '!(h->queue.tail && h->queue.tail->type == NBD_CMD_DISC))
    r++;' \
  '!(h->queue.tail && h->queue.tail->type == NBD_CMD_DISC))
    r += 0;'
mutant getaddrinfo-dead \
  "a failed getaddrinfo kills the handle" \
  'set_error (r == EAI_SYSTEM ? errno : 0,' \
  'set_dead (h, r == EAI_SYSTEM ? errno : ENXIO,'
mutant null-not-checked \
  "a NULL pointer argument is not refused" \
  'if ((arg) == NULL) {' \
  'if (0) {'
mutant go-shutdown-errno \
  "NBD_OPT_GO refused by a server shutting down gives EINVAL" \
  'case NBD_REP_ERR_SHUTDOWN: return ESHUTDOWN;' \
  'case NBD_REP_ERR_SHUTDOWN: return EINVAL;'
mutant uri-sockaddr-port \
  "nbd_get_uri after nbd_aio_connect gives the port in network order" \
  'ntohs (sin->sin_port));' \
  'sin->sin_port);'
mutant uri-scheme-any-case \
  "an upper-case URI scheme is accepted" \
  'strncmp (schemes[i].name, s, len) == 0) {' \
  'strncasecmp (schemes[i].name, s, len) == 0) {'
mutant max-payload-unchecked \
  "a read above the server's maximum payload is sent" \
  'if ((h->strict & LIBNBD_STRICT_BOUNDS) && payload && h->block_maximum &&' \
  'if (0 && payload && h->block_maximum &&'
mutant vsock-default-cid \
  "nbd+vsock:/// uses another CID than 2" \
  'u->cid = 2;' \
  'u->cid = 1;'
mutant async-unix-connect-created \
  "a failed non-blocking Unix/vsock connect leaves the handle created" \
  'if (h->addrinfo == NULL) {
    /* One address' \
  'if (0) {
    /* One address'
mutant wire-enospc \
  "the wire error 28 is reported as EIO" \
  'case NBD_ENOSPC: return ENOSPC;' \
  'case NBD_ENOSPC: return EIO;'
mutant follower-no-timeout \
  "a thread waiting for the polling thread ignores its timeout" \
  'if (futex_wait (&h->wake_seq, seq, timeout >= 0 ? &deadline : NULL,' \
  'if (futex_wait (&h->wake_seq, seq, NULL,'
mutant dead-poller-not-woken \
  "a handle that dies does not wake the thread waiting on its socket" \
  '    shutdown (h->fd, SHUT_RDWR);' \
  '    (void) 0;'
mutant command-during-handshake \
  "a command is accepted in the middle of the handshake" \
  'if (h->state == STATE_READY && !h->disconnect_queued)' \
  'if ((h->state == STATE_READY || h->state == STATE_HANDSHAKE) &&
      !h->disconnect_queued)'
mutant unknown-cookie-error \
  "nbd_aio_command_completed of an unknown cookie fails" \
  '  if (cmd && cmd->state == CMD_DONE)
    r = command_result (h, cmd);' \
  '  if (cmd && cmd->state == CMD_DONE)
    r = command_result (h, cmd);
  else if (cmd == NULL)
    r = -1;'
mutant completion-wakes-nobody \
  "a thread waiting for its command sleeps until the polling thread leaves" \
  '    hand_result (h, w, error, msg);' \
  '    (void) w; (void) error; free (msg);'
mutant orphaned-writer \
  "a thread polling only to send is not told when the leader leaves" \
  'if (!wake_successor (h) && h->write_polling && !h->polling &&' \
  'if (!wake_successor (h) && h->write_polling && !h->polling && 0 &&'
mutant write-out-of-bounds-einval \
  "a write past the end fails with EINVAL, not libnbd's ENOSPC" \
  'set_error (writes ? ENOSPC : EINVAL, "request out of bounds: offset %"' \
  'set_error (EINVAL, "request out of bounds: offset %"'
mutant zero-size-after-bounds \
  "a zero-length request past the end fails as out of bounds" \
  '  if ((h->strict & LIBNBD_STRICT_ZERO_SIZE) && count == 0) {' \
  '  if ((h->strict & LIBNBD_STRICT_ZERO_SIZE) && count == 0 &&
      offset <= h->exportsize) {'
mutant extent-not-freed \
  "an extent callback is never freed" \
  '  if (cb->extent.free)
    cb->extent.free (cb->extent.user_data);' \
  ''
mutant block-status-no-context-check \
  "block status without a negotiated context is sent" \
  '    if (h->nr_meta == 0) {' \
  '    if (0) {'
mutant flush-unadvertised \
  "a flush the server did not advertise is sent under strict mode" \
  '    if (!(h->eflags & NBD_FLAG_SEND_FLUSH))' \
  '    if (0)'

# Block status reply validation (hostile-replies bs-* rows, and the fuzz
# target's extent checks).
mutant bs-zero-length \
  "a block status descriptor of length 0 reaches the extent callback" \
  '    if (len == 0) {
      command_fail (cmd, EPROTO, VIOLATION "block status descriptor' \
  '    if (0) {
      command_fail (cmd, EPROTO, VIOLATION "block status descriptor'
mutant bs-no-cut-at-export-end \
  "an extent crossing the export end is passed on uncut" \
  'entries[2 * i] = len = h->exportsize - pos;' \
  '(void) 0;'
mutant bs-past-request-end \
  "a block status descriptor starting past the request end is accepted" \
  '    if (pos >= request_end) {' \
  '    if (0) {'
mutant bs-unknown-context \
  "a BLOCK_STATUS chunk for an unknown context id is ignored (libnbd)" \
  '  if (name == NULL)
    command_fail (cmd, EPROTO,' \
  '  if (name == NULL)
    (void) 0;
  else if (0)
    command_fail (cmd, EPROTO,'
mutant bs-req-one-count \
  "a REQ_ONE block status answered with two descriptors is accepted" \
  'if ((cmd->flags & LIBNBD_CMD_FLAG_REQ_ONE) && n != 1) {' \
  'if (0) {'
mutant bs-descriptor-cap \
  "a BLOCK_STATUS chunk over 2^20 descriptors is accepted" \
  'if (length > MAX_BLOCK_STATUS_CHUNK) {' \
  'if (length > MAX_BLOCK_STATUS_CHUNK + 8) {'
mutant bs-simple-reply-success \
  "a simple reply without error to block status succeeds" \
  'if (cmd->type == NBD_CMD_BLOCK_STATUS && error == 0)' \
  'if (0)'

# Option mode (client/handshake.c, client/opt.c).
mutant opt-is-negotiating \
  "nbd_aio_is_negotiating is never true" \
  'return h->state == STATE_NEGOTIATING;' \
  'return 0;'
mutant opt-connect-stops \
  "nbd_connect_* in opt mode goes on to GO" \
  '  if (h->opt_mode)
    return enter_negotiating (h);' \
  ''
mutant opt-list-name-bound \
  "an NBD_REP_SERVER name length past its payload is accepted" \
  'if (nlen > len - 4) {' \
  'if (0) {'
mutant opt-list-short \
  "an NBD_REP_SERVER too short for a name length is read" \
  '  if (len < 4) {
    set_dead (h, EPROTO, VIOLATION "NBD_REP_SERVER of' \
  '  if (0) {
    set_dead (h, EPROTO, VIOLATION "NBD_REP_SERVER of'
mutant opt-completion-not-called \
  "an option's completion callback never runs" \
  '  if (completion.callback)
    completion.callback (completion.user_data, &err);' \
  ''
mutant opt-free-order \
  "an option's completion .free runs before its list .free" \
  '  if (list.free)
    list.free (list.user_data);
  if (context.free)
    context.free (context.user_data);
  if (completion.free)
    completion.free (completion.user_data);' \
  '  if (completion.free)
    completion.free (completion.user_data);
  if (list.free)
    list.free (list.user_data);
  if (context.free)
    context.free (context.user_data);'
mutant opt-list-errno \
  "a refused LIST fails with EPERM, not ENOTSUP" \
  'LIST with ENOTSUP, whatever the error. */
    option_end (h, ENOTSUP, msg);' \
  'LIST with ENOTSUP, whatever the error. */
    option_end (h, EPERM, msg);'
mutant opt-dead-completion \
  "an option of a dead handle completes with EIO, not ENOTCONN" \
  '  if (r == -1)
    option_done (h, ENOTCONN);' \
  '  if (r == -1)
    option_done (h, EIO);'
mutant opt-info-no-meta \
  "nbd_opt_info and nbd_opt_go skip SET_META_CONTEXT" \
  'r = h->fixed_newstyle ? meta_then_go (h) : send_export_name (h);' \
  'r = h->fixed_newstyle ? send_go (h) : send_export_name (h);'
mutant opt-list-meta-keeps \
  "nbd_opt_list_meta_context keeps what an earlier INFO told" \
  'told. */
    forget_export (h);' \
  'told. */'
mutant opt-settings-negotiating \
  "nbd_set_export_name and co. are refused while negotiating" \
  'if (h->state != STATE_CREATED && h->state != STATE_NEGOTIATING) {' \
  'if (h->state != STATE_CREATED) {'
mutant opt-go-errno-policy \
  "in opt mode a GO or INFO refused by policy fails with EPERM" \
  'case NBD_REP_ERR_POLICY: return opt_mode ? ENOTSUP : EPERM;' \
  'case NBD_REP_ERR_POLICY: return EPERM;'
mutant opt-full-info \
  "NBD_INFO_NAME and NBD_INFO_DESCRIPTION are never requested" \
  'if (h->full_info) {' \
  'if (0) {'
mutant opt-not-fixed \
  "LIST, INFO and LIST_META_CONTEXT are sent without fixed newstyle" \
  '      !h->fixed_newstyle) {' \
  '      0) {'
mutant opt-abort-waits \
  "NBD_OPT_ABORT waits for a reply instead of closing" \
  'if (h->phase == PHASE_OPT_ABORT) {' \
  'if (0) {'
mutant opt-sync-count \
  "nbd_opt_list counts no export" \
  '  count_reply (w);
  if (w->list.callback)' \
  '  if (w->list.callback)'
mutant opt-sync-dead-error \
  "a blocking nbd_opt_* on a dead handle reports the option's ENOTSUP" \
  '  if (h->state == STATE_DEAD) {
    /* The connection died with the option' \
  '  if (0) {
    /* The connection died with the option'

mutant tls-injection-ignored \
  "bytes after the STARTTLS ACK are not taken for plaintext injection" \
  'if (input_available (h) > reply) {' \
  'if (0) {'
mutant tls-require-falls-back \
  "LIBNBD_TLS_REQUIRE goes on in plaintext when STARTTLS is refused" \
  '  if (h->tls == LIBNBD_TLS_REQUIRE) {
    char *msg = refusal' \
  '  if (0) {
    char *msg = refusal'
mutant tls-starttls-not-sent \
  "a fixed newstyle server is never asked for STARTTLS" \
  '  if (fixed && h->tls != LIBNBD_TLS_DISABLE)
    return send_starttls (h);' \
  '  if (0)
    return send_starttls (h);'
mutant tls-no-verify \
  "the server's certificate is never verified" \
  '  if (h->tls_verify_peer)
    gnutls_session_set_verify_cert' \
  '  if (0)
    gnutls_session_set_verify_cert'
mutant tls-no-deadline \
  "a TLS handshake left half way is waited for forever" \
  'else if (r == 0 && tls_handshake_expired (h)) {' \
  'else if (0) {'
mutant tls-logname-ignored \
  "the default TLS user is not \$LOGNAME" \
  'if (logname && *logname)' \
  'if (0)'
mutant tls-uri-scheme \
  "nbd_get_uri says nbds only once TLS was negotiated" \
  'bool tls = h->tls == LIBNBD_TLS_REQUIRE || h->tls_negotiated;' \
  'bool tls = h->tls_negotiated;'
mutant spare-command-stale \
  "a reused command keeps the state of the one before" \
  '    h->nr_spare--;
    memset (cmd, 0, sizeof *cmd);' \
  '    h->nr_spare--;'
mutant spare-commands-one \
  "a handle keeps one spare command: requests allocate again" \
  '#define KEEP_SPARE_COMMANDS 64' \
  '#define KEEP_SPARE_COMMANDS 1'

# Occurrences of the literal text $FIND in file $1.
occurrences () {
  awk 'BEGIN { RS = "\001" }
       { s = $0; n = 0
         while ((i = index (s, ENVIRON["FIND"])) > 0) {
           n++; s = substr (s, i + length (ENVIRON["FIND"]))
         }
         print n }' "$1"
}

# Replace the first $FIND in file $1 by $REPLACE.
substitute () {
  awk 'BEGIN { RS = "\001" }
       { i = index ($0, ENVIRON["FIND"])
         printf "%s%s%s", substr ($0, 1, i - 1), ENVIRON["REPLACE"],
           substr ($0, i + length (ENVIRON["FIND"])) }' "$1" >"$1.mutant" &&
    mv "$1.mutant" "$1"
}

# locate I SRC: the one file of SRC/client holding mutant I's text, or
# fail saying how many times it occurs.
locate () {
  local f n total=0 found=
  for f in "$2"/client/*.c "$2"/client/*.h; do
    n=$(FIND=${finds[$1]} occurrences "$f")
    [ "$n" -gt 0 ] && found=$f
    total=$((total + n))
  done
  if [ "$total" -ne 1 ]; then
    echo "found $total times in client/*.[ch]"
    return 1
  fi
  echo "$found"
}

# The mutants to run, by index.
selected=()
case ${1:-} in
  --list)
    for i in "${!names[@]}"; do
      printf '%-26s %s\n' "${names[$i]}" "${whys[$i]}"
    done
    exit 0 ;;
  --check) check_only=1; shift ;;
  *) check_only= ;;
esac
if [ $# -eq 0 ]; then
  selected=("${!names[@]}")
else
  for name; do
    for i in "${!names[@]}"; do
      [ "${names[$i]}" = "$name" ] && { selected+=("$i"); continue 2; }
    done
    echo "mutants.sh: no mutant named $name (see --list)" >&2
    exit 2
  done
fi

killed=0 survived=0 broken=0
report () {                     # report STATE NAME DETAIL
  printf '%-14s %-26s %s\n' "$1" "$2" "$3"
}

if [ -n "$check_only" ]; then
  for i in "${selected[@]}"; do
    if where=$(locate "$i" "$top"); then
      report applies "${names[$i]}" "${where#$top/}"
    else
      report "DID NOT APPLY" "${names[$i]}" "$where"
      broken=$((broken + 1))
    fi
  done
  echo "${#selected[@]} mutants, $broken did not apply"
  [ "$broken" -eq 0 ]
  exit
fi

# A copy of the source tree: what git tracks or would track, as it is in
# the working tree (uncommitted changes included); no build directories.
work=$(mktemp -d "${TMPDIR:-/tmp}/nbdc-mutants.XXXXXX") || exit 1
if [ -n "${MUTANTS_KEEP:-}" ]; then
  echo "mutants.sh: working in $work (kept)"
else
  trap 'rm -rf "$work"' EXIT
fi
src=$work/src
mkdir "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$top" && git ls-files -co --exclude-standard -z |
     tar --null -T - --ignore-failed-read -cf - 2>/dev/null) |
    tar -C "$src" -xf -
else
  tar -C "$top" --exclude='./_build*' --exclude=./.git -cf - . |
    tar -C "$src" -xf -
fi

unset NBDC_FUZZ_SECONDS NBDC_VALGRIND NBDC_SLOWDOWN
export NBDC_TEST_TIMEOUT=${NBDC_TEST_TIMEOUT:-120}
build=$src/_build
log=$work/log

echo "mutants.sh: building the copy"
# Without --enable-werror: a mutant may leave a variable unused.
if ! (cd "$src" && autoreconf -fi && mkdir _build && cd _build &&
        ../configure && make -j"$jobs") >"$log" 2>&1; then
  tail -n 40 "$log"
  echo "mutants.sh: the unmutated copy does not build" >&2
  exit 1
fi

# run_suite: make check in the copy; prints the test files that failed.
run_suite () {
  find "$build" -name '*.trs' -delete
  make -C "$build" -j"$jobs" check >"$log" 2>&1
  grep -l '^:test-result: \(FAIL\|XPASS\|ERROR\)' "$build"/tests/*.trs \
    2>/dev/null | sed 's,.*/,,; s,\.trs$,,' | paste -sd ' ' -
}

echo "mutants.sh: make check without mutants"
failed=$(run_suite)
if [ -n "$failed" ] || ! grep -q '^# FAIL: *0$' "$log"; then
  echo "mutants.sh: the suite fails without mutants (${failed:-make check" \
    "failed}); nothing to learn" >&2
  exit 1
fi

for i in "${selected[@]}"; do
  name=${names[$i]}
  if ! file=$(locate "$i" "$src"); then
    report "DID NOT APPLY" "$name" "$file: update its text in tests/mutants.sh"
    broken=$((broken + 1))
    continue
  fi
  cp -p "$file" "$work/original"
  FIND=${finds[$i]} REPLACE=${replaces[$i]} substitute "$file"
  if ! make -C "$build" -j"$jobs" >"$log" 2>&1; then
    report "DID NOT BUILD" "$name" "${file#$src/}: see its text"
    broken=$((broken + 1))
  else
    failed=$(run_suite)
    if [ -n "$failed" ]; then
      report killed "$name" "${file#$src/}: $failed"
      killed=$((killed + 1))
    elif grep -q '^# FAIL: *0$' "$log"; then
      report SURVIVED "$name" "${file#$src/}: ${whys[$i]}"
      survived=$((survived + 1))
    else
      report killed "$name" "${file#$src/}: make check failed"
      killed=$((killed + 1))
    fi
  fi
  cp "$work/original" "$file"
  touch "$file"                 # newer than the mutant's objects
done

echo "${#selected[@]} mutants: $killed killed, $survived survived," \
  "$broken did not apply or build"
[ "$survived" -eq 0 ] && [ "$broken" -eq 0 ]
