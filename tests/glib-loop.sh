#!/usr/bin/env bash
# examples/glib-loop, a GLib main loop driving a handle through
# nbd_aio_get_fd, nbd_aio_get_direction and nbd_aio_notify_read/write
# alone: it writes nbdkit-pattern-plugin(1)'s data over an export, flushes,
# reads it back and checks it.  Here it runs against nbdkit memory (plain,
# and behind a delay filter so big writes stall in the socket and are sent
# in pieces), and another tool (nbdcopy) reads the export back to see that
# the data landed.  Against a server that fails writes, or drops them, it
# must fail.

. "${srcdir:-.}/functions.sh"

prog=${top_builddir:-..}/examples/glib-loop
[ -x "$prog" ] || skip_all "$prog not built (no GLib)"
requires nbdkit nbdcopy cmp timeout
requires_nbdkit_plugin memory
requires_nbdkit_plugin pattern
requires_nbdkit_plugin null
requires_nbdkit_filter delay
requires_nbdkit_filter error
tmpdir_setup

uri ()
{
  echo "nbd+unix:///?socket=$tmpdir/$1.sock"
}

# run_loop NAME ARGS...: run glib-loop (under $NBDC_VALGRIND if set);
# sets loop_status, keeps its output in $tmpdir/NAME.out.
run_loop ()
{
  _n=$1; shift
  timeout $((120 * ${NBDC_SLOWDOWN:-1})) $NBDC_VALGRIND "$prog" "$@" \
    >"$tmpdir/$_n.out" 2>&1
  loop_status=$?
  sed 's/^/# /' "$tmpdir/$_n.out"
}

# same_as_pattern NAME SIZE: the export holds nbdkit pattern's data.
same_as_pattern ()
{
  rm -f "$tmpdir/got.img"
  nbdcopy "$(uri "$1")" "$tmpdir/got.img" &&
    cmp "$tmpdir/got.img" "$tmpdir/pattern-$2.img"
}

start_nbdkit pat64 pattern 64M
start_nbdkit pat16 pattern 16M
nbdcopy "$(uri pat64)" "$tmpdir/pattern-64M.img" &&
  nbdcopy "$(uri pat16)" "$tmpdir/pattern-16M.img" ||
  { echo "Bail out! nbdcopy cannot read nbdkit pattern"; exit 1; }

start_nbdkit mem memory 64M
run_loop mem "$(uri mem)"
[ $loop_status -eq 0 ] &&
  tap_result "ok" "memory 64M: 256 KiB requests, 16 in flight" ||
  tap_result "not ok" "memory 64M: exit status $loop_status"
same_as_pattern mem 64M &&
  tap_result "ok" "memory 64M: nbdcopy reads back what was written" ||
  tap_result "not ok" "memory 64M: nbdcopy reads back what was written"

# 4 MiB writes, 8 in flight, and each takes the server 20 ms: sendmsg
# fills the socket, the loop follows the direction to POLLOUT.
start_nbdkit slow --filter=delay memory 16M delay-write=20ms
run_loop slow -b 4M -q 8 "$(uri slow)"
[ $loop_status -eq 0 ] &&
  tap_result "ok" "delayed writes: 4 MiB requests, 8 in flight" ||
  tap_result "not ok" "delayed writes: exit status $loop_status"
same_as_pattern slow 16M &&
  tap_result "ok" "delayed writes: nbdcopy reads back what was written" ||
  tap_result "not ok" "delayed writes: nbdcopy reads back what was written"

# Over TLS (PSK), the same delayed 4 MiB writes: GnuTLS meets a full
# socket in the middle of a record, and reads of whole records that the
# loop's poll cannot see once decrypted.
if command -v psktool >/dev/null &&
   psktool -u alice -p "$tmpdir/keys.psk" >/dev/null 2>&1; then
  tls="nbds+unix://alice@/?socket=$tmpdir/tls.sock&tls-psk-file=$tmpdir/keys.psk"
  start_nbdkit tls --tls=require --tls-psk="$tmpdir/keys.psk" \
    --filter=delay memory 16M delay-write=20ms
  run_loop tls -b 4M -q 8 "$tls"
  [ $loop_status -eq 0 ] &&
    tap_result "ok" "TLS, delayed writes: 4 MiB requests, 8 in flight" ||
    tap_result "not ok" "TLS, delayed writes: exit status $loop_status"
  rm -f "$tmpdir/got.img"
  nbdcopy "$tls" "$tmpdir/got.img" &&
    cmp "$tmpdir/got.img" "$tmpdir/pattern-16M.img" &&
    tap_result "ok" "TLS: nbdcopy reads back what was written" ||
    tap_result "not ok" "TLS: nbdcopy reads back what was written"
  run_loop tlssmall -b 4k -q 64 "$tls"
  [ $loop_status -eq 0 ] &&
    tap_result "ok" "TLS: 4 KiB requests, 64 in flight" ||
    tap_result "not ok" "TLS: 4 KiB requests: exit status $loop_status"
  # With debug on, the handshake is told but no key material is.
  LIBNBD_DEBUG=1 run_loop tlsdebug -b 64k -q 2 "$tls" >/dev/null
  key=$(cut -d: -f2 "$tmpdir/keys.psk")
  grep -q 'TLS session up' "$tmpdir/tlsdebug.out" &&
    ! grep -qi "$key" "$tmpdir/tlsdebug.out" &&
    ! grep -qi "${key:0:16}" "$tmpdir/tlsdebug.out" &&
    tap_result "ok" "TLS with debug on: no key material in the messages" ||
    tap_result "not ok" "TLS with debug on: no key material in the messages"
else
  tap_result "ok" "TLS runs # SKIP psktool cannot make a key"
fi

# Odd sizes: requests that straddle the pattern's words, one in flight.
start_nbdkit odd memory 1000003
run_loop odd -b 65531 -q 1 "$(uri odd)"
[ $loop_status -eq 0 ] &&
  tap_result "ok" "unaligned: 65531-byte requests on a 1000003-byte export" ||
  tap_result "not ok" "unaligned: exit status $loop_status"

# The checks can fail: a server that fails writes, one that drops them.
start_nbdkit err --filter=error memory 16M error-pwrite=EIO \
  error-pwrite-rate=1
run_loop err "$(uri err)"
[ $loop_status -eq 1 ] &&
  grep -q 'write at offset.*failed' "$tmpdir/err.out" &&
  tap_result "ok" "failing writes: glib-loop exits 1" ||
  tap_result "not ok" "failing writes: exit status $loop_status"
start_nbdkit null null 16M
run_loop null "$(uri null)"
[ $loop_status -eq 1 ] && grep -q 'differ from' "$tmpdir/null.out" &&
  tap_result "ok" "dropped writes: glib-loop sees the wrong data, exits 1" ||
  tap_result "not ok" "dropped writes: exit status $loop_status"
tap_done
