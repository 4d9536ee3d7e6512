#!/usr/bin/env bash
# nbd-proxy plugin: what the proxy says about an export (size, flags,
# block sizes, description) is what the upstream says, per nbdinfo; a
# read-only upstream stays read-only.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires nbdinfo qemu-io
tmpdir_setup

# The fields of nbdinfo --json that describe the export, one per line.
info ()
{
  nbdinfo --json "$1" | sed -n \
    's/^\t*"\(export-name\|description\|export-size\|is_rotational\|is_read_only\|can_[a-z_]*\|block_size_[a-z]*\)": \(.*\),\{0,1\}$/\1=\2/p' |
    sed 's/,$//' | grep -v '^can_df=\|^export-size='
  # Not from --json: libnbd's NBD_OPT_INFO to nbd-server 3.24 reads 0.
  echo "size=$(nbdinfo --size "$1")"
}

# compare NAME UPSTREAM-URI PROXY-URI
compare ()
{
  _up=$(info "$2")
  _px=$(info "$3")
  [ -n "$_up" ] || { tap_result "not ok" "$1: nbdinfo upstream"; return; }
  _ro=$(echo "$_up" | sed -n 's/^is_read_only=//p')
  echo "$_up" | while IFS='=' read -r _k _v; do
    _pv=$(echo "$_px" | sed -n "s/^$_k=//p")
    case $_ro,$_k in
      # Write flags of a read-only export mean nothing: nbdkit clears them.
      true,can_zero|true,can_fast_zero|true,can_trim|true,can_fua) continue ;;
      # nbdkit advertises write zeroes even when the plugin cannot (it
      # writes zero buffers instead).
      false,can_zero) _v=true ;;
    esac
    [ "$_pv" = "$_v" ] && echo "ok" || echo "bad $_k: $_pv, upstream $_v"
  done >"$tmpdir/compare.out"
  if grep -q '^bad' "$tmpdir/compare.out"; then
    tap_result "not ok" "$1: nbdinfo of the proxy equals the upstream's"
    grep '^bad' "$tmpdir/compare.out" | sed 's/^/# /'
  else
    tap_result "ok" "$1: nbdinfo of the proxy equals the upstream's ($(grep -c '^ok' "$tmpdir/compare.out") fields)"
  fi
}

# run NAME [NBDKIT-ARGS...]: an upstream, a proxy in front, compare.
run ()
{
  _run=$1; shift
  start_nbdkit "up$_run" "$@"
  start_proxy "px$_run" socket="$tmpdir/up$_run.sock"
  compare "$_run" "nbd+unix:///?socket=$tmpdir/up$_run.sock" \
    "$(proxy_uri "px$_run")"
}

run memory memory 3M
run readonly -r memory 1M
run blocksizes --filter=blocksize-policy pattern 5M \
  blocksize-minimum=4096 blocksize-preferred=65536 blocksize-maximum=1M
run nozero --filter=nozero --filter=nocache --filter=noextents memory 2M \
  cachemode=none
run description --filter=exportname memory 1M exportdesc=fixed:"a disk"
if nbdkit eval --version >/dev/null 2>&1; then
  run rotational eval get_size='echo 1M' is_rotational='exit 0' \
    can_multi_conn='exit 3' pread='head -c $3 /dev/zero'
  # Writable, but without flush, trim, FUA, cache or extents.
  run bare eval get_size='echo 1M' pread='head -c $3 /dev/zero' \
    pwrite='cat >/dev/null'
else
  tap_result "ok" "rotational # SKIP nbdkit eval plugin missing"
fi
if command -v qemu-nbd >/dev/null; then
  truncate -s 3M "$tmpdir/q.img"
  qemu-nbd -k "$tmpdir/q.sock" --pid-file="$tmpdir/q.pid" -f raw -t -e 4 \
    "$tmpdir/q.img" >"$tmpdir/q.log" 2>&1 &
  add_pid $!
  wait_for_socket "$tmpdir/q.sock" $! "$tmpdir/q.pid" ||
    _server_failed qemu-nbd "$tmpdir/q.log"
  start_proxy pxq socket="$tmpdir/q.sock"
  compare "qemu-nbd" "nbd+unix:///?socket=$tmpdir/q.sock" "$(proxy_uri pxq)"
fi
if command -v nbd-server >/dev/null; then
  truncate -s 2M "$tmpdir/n.img"
  start_nbd_server nbdsrv "$tmpdir/n.img"
  start_proxy pxn "uri=nbd+unix:///export?socket=$tmpdir/nbdsrv.sock"
  compare "nbd-server" "nbd+unix:///export?socket=$tmpdir/nbdsrv.sock" \
    "$(proxy_uri pxn)"
fi

# A read-only upstream stays read-only, whatever the client tries: the
# write is refused for being read-only (EPERM at open, not a connection
# error), and the upstream's data is unchanged.
uri=$(proxy_uri pxreadonly)
check "read-only upstream: nbdinfo --is readonly" nbdinfo --is readonly "$uri"
before=$(checksum "nbd+unix:///?socket=$tmpdir/upreadonly.sock")
qemu-io -f raw -c 'write -P 1 0 4096' "$uri" >"$tmpdir/w.out" 2>&1
if grep -q 'Permission denied\|read-only' "$tmpdir/w.out" &&
   ! grep -q '^wrote' "$tmpdir/w.out"; then
  tap_result "ok" "read-only upstream: qemu-io write refused as read-only"
else
  tap_result "not ok" "read-only upstream: qemu-io write refused as read-only"
  sed 's/^/# /' "$tmpdir/w.out"
fi
same "read-only upstream: its data unchanged" \
  "$(checksum "nbd+unix:///?socket=$tmpdir/upreadonly.sock")" "$before"

for p in memory readonly blocksizes nozero description; do
  stop_proxy px$p
done
tap_done
