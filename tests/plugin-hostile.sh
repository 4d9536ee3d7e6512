#!/usr/bin/env bash
# nbd-proxy plugin with a misbehaving upstream (bad-server --serve-many:
# one upstream connection misbehaves, the others answer correctly).  For
# each fault: the host request it hits fails with the right errno and
# never with wrong data; another host connection is served exactly while
# the first stays open; the first connection goes on working when the
# fault was the command's alone, or fails with EIO when it broke the
# upstream connection; and the proxy survives and exits cleanly.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires qemu-io nbdcopy nbdinfo mkfifo cmp
tmpdir_setup

bad_server=${builddir:-.}/bad-server
[ -x "$bad_server" ] || skip_all "bad-server not built"

# bad-server's export holds in every 8-byte word its own offset, as
# nbdkit's pattern plugin does.
start_nbdkit pattern pattern 1M
nbdcopy "nbd+unix:///?socket=$tmpdir/pattern.sock" "$tmpdir/expected.img"

# start_bad NAME SCENARIO: bad-server serving $tmpdir/NAME.sock.
start_bad ()
{
  rm -f "$tmpdir/$1.sock" "$tmpdir/$1.marker"
  "$bad_server" --socket "$tmpdir/$1.sock" --serve-many "$tmpdir/$1.marker" \
    "$2" 2>"$tmpdir/$1.bad.log" &
  add_pid $!
  bad_pid=$!
  wait_for_socket "$tmpdir/$1.sock" $bad_pid ||
    _server_failed "bad-server $2" "$tmpdir/$1.bad.log"
}

# fault_seen NAME SCENARIO: the fault happened upstream (the test would
# otherwise prove nothing).
fault_seen ()
{
  if [ -e "$tmpdir/$1.marker" ]; then
    tap_result "ok" "$2: the upstream misbehaved"
  else
    tap_result "not ok" "$2: the upstream misbehaved"
  fi
}

proxy_alive ()
{
  if kill -0 "$proxy_pid" 2>/dev/null; then
    tap_result "ok" "$1: the proxy survives"
  else
    tap_result "not ok" "$1: the proxy survives"
  fi
}

# expect NAME TEXT ANSWER: a TAP line for a qemu-io answer starting with
# TEXT.
expect ()
{
  case $3 in
    "$2"*) tap_result "ok" "$1" ;;
    *) tap_result "not ok" "$1"
       printf '%s\n' "$3" | sed 's/^/# /' | head -n 10 ;;
  esac
}

EIO_TEXT="read failed: Input/output error"

# read_fault SCENARIO FIRST AFTER: the first read of a host connection
# meets SCENARIO and qemu-io says FIRST; the second read on it says AFTER.
n=0
read_fault ()
{
  n=$((n + 1))
  name=r$n
  start_bad "$name" "$1"
  start_proxy "px$name" socket="$tmpdir/$name.sock"
  session "$name" 9 "$(proxy_uri "px$name")"
  expect "$1: the request fails: $2" "$2" "$(ask 9 "$name" "read 65536 65536")"
  fault_seen "$name" "$1"
  nbdcopy "$(proxy_uri "px$name")" "$tmpdir/$name.img" 2>"$tmpdir/copy.err"
  if cmp -s "$tmpdir/$name.img" "$tmpdir/expected.img"; then
    tap_result "ok" "$1: another host connection reads the export exactly"
  else
    tap_result "not ok" "$1: another host connection reads the export exactly"
    sed 's/^/# /' "$tmpdir/copy.err"
  fi
  expect "$1: then the first connection: $3" "$3" \
    "$(ask 9 "$name" "read 0 65536")"
  proxy_alive "$1"
  echo quit >&9
  exec 9>&-
  stop_proxy "px$name"
}

ok_read="read 65536/65536 bytes at offset 0"

# Command-level faults: the read fails (EIO for what was a protocol
# violation inside the reply; the server's errno for its error), the
# connection goes on.  Replies that would hand back wrong data (chunks
# outside the request, overlapping, not covering it) fail it, never
# reach the host as data.
read_fault error-eio "$EIO_TEXT" "$ok_read"
read_fault error-eperm "read failed: Operation not permitted" "$ok_read"
read_fault error-enospc "read failed: No space left on device" "$ok_read"
read_fault chunk-outside "$EIO_TEXT" "$ok_read"
read_fault chunk-overlap "$EIO_TEXT" "$ok_read"
read_fault short-coverage "$EIO_TEXT" "$ok_read"
read_fault chunk-past-end "$EIO_TEXT" "$ok_read"
read_fault hole-outside "$EIO_TEXT" "$ok_read"

# Faults that break the upstream connection: EIO now and after (the dead
# handle is not replaced: that is reconnecting's work).
read_fault bad-magic "$EIO_TEXT" "$EIO_TEXT"
read_fault unknown-cookie "$EIO_TEXT" "$EIO_TEXT"
read_fault close-mid-data "$EIO_TEXT" "$EIO_TEXT"
read_fault huge-length "$EIO_TEXT" "$EIO_TEXT"
read_fault structured-when-simple "$EIO_TEXT" "$EIO_TEXT"

# Block status: the first map fails, a map on another host connection
# equals the upstream's own, the next one on the first works.
name=bs
start_bad "$name" bs-unknown-context
start_proxy "px$name" socket="$tmpdir/$name.sock"
if nbdinfo --map "$(proxy_uri "px$name")" >"$tmpdir/map1" 2>&1; then
  tap_result "not ok" "bs-unknown-context: the map fails"
  sed 's/^/# /' "$tmpdir/map1"
else
  tap_result "ok" "bs-unknown-context: the map fails"
fi
fault_seen "$name" bs-unknown-context
nbdinfo --map "nbd+unix:///?socket=$tmpdir/$name.sock" >"$tmpdir/map.want" 2>&1
nbdinfo --map "$(proxy_uri "px$name")" >"$tmpdir/map.got" 2>&1
same "bs-unknown-context: another host connection maps as the upstream" \
  "$(cat "$tmpdir/map.got")" "$(cat "$tmpdir/map.want")"
proxy_alive bs-unknown-context
stop_proxy "px$name"

# Success without a base:allocation chunk, or with two (nbd_block_status(3)
# allows both): the proxy answers "data" for what the upstream did not
# say clearly, the answer that is always true, rather than failing.
for sc in bs-none-only bs-two-chunks; do
  n=$((n + 1))
  name=bs$n                     # a shell name: start_proxy makes a variable
  start_bad "$name" "$sc"
  start_proxy "px$name" socket="$tmpdir/$name.sock"
  if nbdinfo --map "$(proxy_uri "px$name")" >"$tmpdir/map1" 2>&1; then
    same "$sc: the map says data" "$(awk '{ print $1, $2, $3 }' "$tmpdir/map1")" \
      "0 1048576 0"
  else
    tap_result "not ok" "$sc: the map says data"
    sed 's/^/# /' "$tmpdir/map1"
  fi
  fault_seen "$name" "$sc"
  proxy_alive "$sc"
  stop_proxy "px$name"
done

# Writes: the server's error reaches the host, the next write lands.
name=w
start_bad "$name" write-error-chunk
start_proxy "px$name" socket="$tmpdir/$name.sock"
session "$name" 8 "$(proxy_uri "px$name")" rw
expect "write-error-chunk: the write fails with EIO" \
  "write failed: Input/output error" "$(ask 8 "$name" "write -P 1 0 4096")"
fault_seen "$name" write-error-chunk
expect "write-error-chunk: the next write works" \
  "wrote 4096/4096 bytes at offset 4096" \
  "$(ask 8 "$name" "write -P 1 4096 4096")"
proxy_alive write-error-chunk
echo quit >&8
exec 8>&-
stop_proxy "px$name"

# A handshake fault hits every upstream connection: start-up fails with
# one line.
start_bad hs close-in-greeting
fails "close-in-greeting: the proxy refuses to start" \
  "cannot connect to upstream" socket="$tmpdir/hs.sock"

tap_done
