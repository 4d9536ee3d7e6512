#!/usr/bin/env bash
# nbd-proxy tests: differential test.  diff-transcript.c, built against
# libnbd and against libnbdc, runs the same scenarios on the same servers;
# the transcripts must be identical.  One TAP line per server and scenario.

. "${srcdir:-.}/functions.sh"

requires nbdkit diff timeout truncate od
requires_nbdkit_plugin pattern
requires_nbdkit_plugin memory
requires_nbdkit_plugin data
requires_nbdkit_filter error
requires_nbdkit_filter exportname
requires_nbdkit_filter blocksize-policy
ref="${builddir:-.}/diff-transcript-libnbd"
new="${builddir:-.}/diff-transcript-nbdc"
[ -x "$ref" ] || skip_all "$ref not built (libnbd-dev missing?)"
[ -x "$new" ] || skip_all "$new not built"
tmpdir_setup

start_nbdkit pat pattern 1M
start_nbdkit mem --filter=exportname --filter=blocksize-policy memory 1M \
  default-export=mydisk exportdesc=fixed:'A test disk' \
  blocksize-minimum=512 blocksize-preferred=4096 blocksize-maximum=1M
start_nbdkit data data \
  '0x11 0x22 0x33 0x44 @510 0x55 0xaa @4096 ( 0xde 0xad 0xbe 0xef ) * 256' \
  size=16384
start_nbdkit err --filter=error pattern 1M error-pread-rate=1 error-pread=EIO
# Writable exports for the command set: every feature; some missing
# (zero, cache, FUA); flush, trim and zero missing (eval); read-only.
start_nbdkit wmem --filter=blocksize-policy memory 8M \
  blocksize-minimum=512 blocksize-preferred=4096 blocksize-maximum=1M
start_nbdkit poor --filter=nozero --filter=nocache --filter=fua memory 8M \
  zeromode=none cachemode=none
start_nbdkit nofl eval get_size='echo 8388608' \
  pread='head -c $3 /dev/zero' can_write='exit 0' pwrite='cat >/dev/null' \
  can_flush='exit 3' can_trim='exit 3' can_zero='exit 3'
start_nbdkit ro -r memory 8M
start_nbdkit sparse sparse-random 16M seed=42
if command -v qemu-nbd >/dev/null 2>&1 &&
   make_sparse_file "$tmpdir/sparse.img"; then
  start_qemu_nbd qemu "$tmpdir/sparse.img"
  truncate -s 8M "$tmpdir/qw.img"
  start_qemu_nbd_opts qw "$tmpdir/qw.img" -f raw --discard=unmap
  qemu-img create -q -f qcow2 "$tmpdir/q.qcow2" 8M
  qemu-io -f qcow2 -c "write -P 0x11 64k 64k" -c "write -z 512k 64k" \
    "$tmpdir/q.qcow2" >/dev/null
  start_qemu_nbd_opts qcow "$tmpdir/q.qcow2" -f qcow2 -A
  have_qemu=true
else
  have_qemu=false
fi
if command -v nbd-server >/dev/null 2>&1 &&
   make_sparse_file "$tmpdir/disk.img"; then
  start_nbd_server nbdsrv "$tmpdir/disk.img"
  truncate -s 8M "$tmpdir/wdisk.img"
  start_nbd_server nbdw "$tmpdir/wdisk.img" false
  have_nbd_server=true
else
  have_nbd_server=false
fi
start_nbdkit_tcp tcp pattern 1M || tcp_port=

unix_uri ()
{
  echo "nbd+unix:///$2?socket=$tmpdir/$1.sock"
}

# compare NAME SCENARIO URI: run both builds, diff the transcripts.
compare ()
{
  _name=$1; _scenario=$2; _uri=$3
  _a="$tmpdir/$_name-$_scenario.libnbd"
  _b="$tmpdir/$_name-$_scenario.nbdc"
  timeout 60 "$ref" "$_scenario" "$_uri" $extents_contexts >"$_a" 2>"$_a.err"
  echo "exit status $?" >>"$_a"
  timeout $((60 * ${NBDC_SLOWDOWN:-1})) $NBDC_VALGRIND "$new" "$_scenario" \
    "$_uri" $extents_contexts >"$_b" 2>"$_b.err"
  echo "exit status $?" >>"$_b"
  if ! grep -q '^exit status 0$' "$_a"; then
    tap_result "not ok" "$_name $_scenario: the libnbd transcript failed"
    sed 's/^/# /' "$_a" "$_a.err" | tail -20
  elif diff -u "$_a" "$_b" >"$tmpdir/diff"; then
    tap_result "ok" "$_name $_scenario: libnbdc transcript = libnbd's"
  else
    tap_result "not ok" "$_name $_scenario: transcripts differ"
    sed 's/^/# /' "$tmpdir/diff" | head -60
  fi
}

skip_scenario ()
{
  tap_result "ok" "$1 $2 # SKIP $3"
}

for s in info reads nosr cberr prequeue; do
  compare pattern $s "$(unix_uri pat)"
done
for s in info reads prequeue; do
  compare memory $s "$(unix_uri mem)"
done
compare memory-named info "$(unix_uri mem 'foo%20bar')"
compare data reads "$(unix_uri data)"
for s in reads cberr; do
  compare error $s "$(unix_uri err)"
done
for s in info reads nosr cberr; do
  if $have_qemu; then
    compare qemu-nbd $s "$(unix_uri qemu)"
  else
    skip_scenario qemu-nbd $s "qemu-nbd not available"
  fi
done
for s in info reads cberr prequeue; do
  if $have_nbd_server; then
    compare nbd-server $s "$(unix_uri nbdsrv export)"
  else
    skip_scenario nbd-server $s "nbd-server not available"
  fi
done
if [ -n "$tcp_port" ]; then
  compare tcp info "nbd://127.0.0.1:$tcp_port/"
else
  skip_scenario tcp info "no free TCP port"
fi
for s in commands commands-nostrict; do
  compare memory $s "$(unix_uri wmem)"
  compare no-zero-cache-fua $s "$(unix_uri poor)"
  compare no-flush-trim-zero $s "$(unix_uri nofl)"
  compare read-only $s "$(unix_uri ro)"
  compare pattern $s "$(unix_uri pat)"
  if $have_qemu; then
    compare qemu-nbd $s "$(unix_uri qw)"
  else
    skip_scenario qemu-nbd $s "qemu-nbd not available"
  fi
  if $have_nbd_server; then
    compare nbd-server $s "$(unix_uri nbdw export)"
  else
    skip_scenario nbd-server $s "nbd-server not available"
  fi
done
for t in "memory wmem base:allocation" "sparse-random sparse base:allocation" \
         "pattern pat base:allocation" "no-context wmem nonexistent:ctx" \
         "qemu-nbd qcow base:allocation,qemu:allocation-depth" \
         "qemu-nbd-depth qcow qemu:allocation-depth" \
         "nbd-server nbdw base:allocation export"; do
  set -- $t
  case $2 in
    qcow) $have_qemu || { skip_scenario "$1" extents "no qemu-nbd"; continue; } ;;
    nbdw) $have_nbd_server ||
            { skip_scenario "$1" extents "no nbd-server"; continue; } ;;
  esac
  extents_contexts=$3 compare "$1" extents "$(unix_uri "$2" "${4:-}")"
done
compare connect-failures connfail -
tap_done
