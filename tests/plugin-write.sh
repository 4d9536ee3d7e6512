#!/usr/bin/env bash
# nbd-proxy plugin: writes, FUA, write zeroes (with and without MAY_TRIM),
# trim and flush from qemu-io arrive upstream as the same commands with
# the same flags as when qemu-io talks to the upstream directly (nbdkit's
# log filter records both), and leave the same data.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires qemu-io qemu-img
requires_nbdkit_filter log
tmpdir_setup

# Two identical upstreams: one behind the proxy, one used directly.
start_nbdkit upa --filter=log memory 8M logfile="$tmpdir/a.log"
start_nbdkit upb --filter=log memory 8M logfile="$tmpdir/b.log"
upa="nbd+unix:///?socket=$tmpdir/upa.sock"
upb="nbd+unix:///?socket=$tmpdir/upb.sock"
# connections=1: one upstream connection, so the log is one ordered list.
start_proxy px socket="$tmpdir/upa.sock" connections=1

commands=(-c 'write -P 0x11 0 64k' -c 'write -f -P 0x22 64k 4k'
          -c 'write -z 128k 64k' -c 'write -z -u 192k 64k'
          -c 'write -z -f 256k 8k' -c 'discard 320k 64k' -c 'flush'
          -c 'write -P 0x33 8000k 192k' -c 'discard 8100k 4k'
          -c 'write -P 0x44 1000k 1')
check "qemu-io writes through the proxy" \
  qemu-io -f raw "${commands[@]}" "$(proxy_uri px)"
check "qemu-io writes directly" qemu-io -f raw "${commands[@]}" "$upb"

# The write-side commands as the upstream saw them, without ids and times.
commands_seen ()
{
  sed -n 's/^.* \(Write\|Zero\|Trim\|Flush\|Cache\) id=[0-9]*\(.*\) \.\.\.$/\1\2/p' \
    "$1"
}
got=$(commands_seen "$tmpdir/a.log")
want=$(commands_seen "$tmpdir/b.log")
same "the upstream sees the same commands and flags" "$got" "$want"
for what in "Write.*fua=1" "Zero.*trim=0" "Zero.*trim=1" "Zero.*fua=1" \
            "Trim" "Flush"; do
  if echo "$got" | grep -q "$what"; then
    tap_result "ok" "the upstream saw $what"
  else
    tap_result "not ok" "the upstream saw $what"
  fi
done
check "the data upstream is the same" \
  qemu-img compare -f raw -F raw "$upa" "$upb"
check "and reads back through the proxy" \
  qemu-img compare -f raw -F raw "$(proxy_uri px)" "$upb"
same "qemu-img map through the proxy equals the upstream's" \
  "$(qemu-img map -f raw --output=json "$(proxy_uri px)")" \
  "$(qemu-img map -f raw --output=json "$upa")"

stop_proxy px
tap_done
