#!/usr/bin/env bash
# nbd-proxy plugin: nbdkit filters stacked on the proxy.  --filter=cow
# makes a read-only upstream writable in the proxy alone; --filter=cache
# serves the upstream's data.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires qemu-io qemu-img nbdcopy
requires_nbdkit_filter cow
requires_nbdkit_filter cache
tmpdir_setup

start_nbdkit up -r sparse-random 16M seed=99
up="nbd+unix:///?socket=$tmpdir/up.sock"
before=$(checksum "$up")

start_proxy cache --filter=cache -- socket="$tmpdir/up.sock"
check "--filter=cache: qemu-img compare with the upstream" \
  qemu-img compare -f raw -F raw "$(proxy_uri cache)" "$up"
same "--filter=cache: a second read is the same" \
  "$(checksum "$(proxy_uri cache)")" "$before"

start_proxy cow --filter=cow -- socket="$tmpdir/up.sock"
cow=$(proxy_uri cow)
check "--filter=cow: write through the proxy" \
  qemu-io -f raw -c 'write -P 0x5a 1M 64k' -c 'write -P 0xa5 15M 4k' "$cow"
check "--filter=cow: the write reads back" \
  qemu-io -f raw -r -c 'read -P 0x5a 1M 64k' -c 'read -P 0xa5 15M 4k' "$cow"
# Outside the written ranges, still the upstream's data.
check "--filter=cow: the rest is the upstream's" \
  qemu-io -f raw -r -c 'read -v 0 16' "$cow"
same "--filter=cow: the upstream did not change" "$(checksum "$up")" \
  "$before"
nbdcopy "$up" "$tmpdir/expect.img"
qemu-io -f raw -c 'write -P 0x5a 1M 64k' -c 'write -P 0xa5 15M 4k' \
  "$tmpdir/expect.img" >/dev/null
check "--filter=cow: the whole export is upstream + writes" \
  qemu-img compare -f raw -F raw "$cow" "$tmpdir/expect.img"

stop_proxy cache
stop_proxy cow
tap_done
