#!/usr/bin/env bash
# nbd-proxy plugin: every command with every flag a host client can give,
# sent by libnbd (nbd-commands) to an upstream directly and through the
# proxy: the same outcomes, and the upstream sees the same commands and
# flags (nbdkit's log filter).  Also what qemu-io cannot send: cache and
# fast zero, REQ_ONE; a fast zero the upstream refuses; and each command's
# upstream error reaching the host client unchanged.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires_nbdkit_filter log
requires_nbdkit_filter error
requires_nbdkit_filter nozero
tmpdir_setup

nbd_commands=${builddir:-.}/nbd-commands
[ -x "$nbd_commands" ] || skip_all "nbd-commands not built (libnbd-dev missing)"

# run_both NAME NBDKIT-ARGS... -- COMMANDS...: an upstream behind the proxy
# and its twin used directly; the same commands on each; a TAP line for
# equal outcomes.  Leaves the logs in $tmpdir/NAME-{px,up}.log.
n=0
run_both ()
{
  _rb=$1; shift
  _args=()
  while [ "$1" != "--" ]; do _args+=("$1"); shift; done
  shift
  n=$((n + 1))
  start_nbdkit "a$n" --filter=log "${_args[@]}" logfile="$tmpdir/$_rb-px.log"
  start_nbdkit "b$n" --filter=log "${_args[@]}" logfile="$tmpdir/$_rb-up.log"
  # connections=1: one upstream connection, the log one ordered list.
  start_proxy "px$n" socket="$tmpdir/a$n.sock" connections=1
  "$nbd_commands" "$(proxy_uri "px$n")" "$@" >"$tmpdir/$_rb-px.out" 2>&1
  "$nbd_commands" "nbd+unix:///?socket=$tmpdir/b$n.sock" "$@" \
    >"$tmpdir/$_rb-up.out" 2>&1
  if cmp -s "$tmpdir/$_rb-px.out" "$tmpdir/$_rb-up.out"; then
    tap_result "ok" "$_rb: the same outcomes through the proxy"
  else
    tap_result "not ok" "$_rb: the same outcomes through the proxy"
    diff "$tmpdir/$_rb-up.out" "$tmpdir/$_rb-px.out" | sed 's/^/# /'
  fi
  stop_proxy "px$n"
}

# outcome NAME COMMAND WANT: the line nbd-commands printed for COMMAND
# through the proxy ends in WANT.
outcome ()
{
  _line=$(grep -m1 -F -- "$2 " "$tmpdir/$1-px.out")
  same "$1: $2 gives $3" "${_line##* }" "$3"
}

# The commands as the upstream saw them, without ids and times.
commands_seen ()
{
  sed -n 's/^.* \(Read\|Write\|Zero\|Trim\|Flush\|Cache\|Extents\) id=[0-9]*\(.*\) \.\.\.$/\1\2/p' \
    "$1"
}

# --- Everything a writable memory disk takes.
run_both all memory 1M -- \
  can:fua can:flush can:trim can:zero can:fast_zero can:cache can:df \
  can:multi_conn can:meta_context \
  write:0:65536 write:65536:4096:f zero:131072:65536 zero:196608:65536:h \
  zero:262144:65536:z zero:327680:4096:f zero:331776:4096:fhz \
  trim:393216:65536 trim:458752:4096:f cache:0:262144 flush \
  read:0:524288 extents:0:1048576 extents:0:1048576:1
got=$(commands_seen "$tmpdir/all-px.log")
same "all: the upstream sees the same commands and flags" "$got" \
  "$(commands_seen "$tmpdir/all-up.log")"
for what in "Write.*fua=1" "Zero.*fast=1" "Zero.*trim=0" "Zero.*trim=1" \
            "Zero.*fua=1" "Trim.*fua=1" "Cache" "Flush" "Extents.*req_one=1"; do
  if echo "$got" | grep -q "$what"; then
    tap_result "ok" "all: the upstream saw $what"
  else
    tap_result "not ok" "all: the upstream saw $what"
  fi
done
outcome all cache:0:262144 ok
outcome all zero:262144:65536:z ok

# --- A fast zero the upstream refuses: ENOTSUP, not a slow zero.
run_both fastzero --filter=nozero memory 1M zeromode=notrim \
  fastzeromode=slow -- can:fast_zero zero:0:65536:z zero:0:65536 \
  zero:65536:4096:z
outcome fastzero can:fast_zero 1
outcome fastzero zero:0:65536:z ENOTSUP
same "fastzero: the upstream saw the fast zero" \
  "$(commands_seen "$tmpdir/fastzero-px.log" | grep -c 'Zero.*fast=1')" 2

# --- Each command's upstream error reaches the host unchanged.
run_both errors --filter=error memory 1M \
  error-pwrite=ENOSPC error-pwrite-rate=1 error-zero=EPERM error-zero-rate=1 \
  error-trim=EINVAL error-trim-rate=1 error-cache=ENOMEM error-cache-rate=1 \
  error-extents=ESHUTDOWN error-extents-rate=1 -- \
  write:0:4096 write:0:4096:f zero:0:4096 trim:0:4096 cache:0:4096 \
  extents:0:65536 read:0:4096
outcome errors write:0:4096 ENOSPC
outcome errors zero:0:4096 EPERM
outcome errors trim:0:4096 EINVAL
outcome errors cache:0:4096 ENOMEM
outcome errors extents:0:65536 ESHUTDOWN

tap_done
