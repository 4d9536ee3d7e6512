#!/usr/bin/env bash
# nbd-proxy tests: NBD URIs and the ways to connect (api-uri.c).

. "${srcdir:-.}/functions.sh"

requires nbdkit timeout od
requires_nbdkit_plugin memory
requires_nbdkit_filter exportname
api_prog api-uri
tmpdir_setup

# A space in the path: socket= must be percent-decoded.
start_nbdkit "mem space" memory 1M
start_nbdkit strict --filter=exportname memory 1M exportname-strict=true \
  exportname="a b/c"
start_nbdkit_tcp tcp memory 1M || tcp_port=-
v4_port=$tcp_port

# The same on ::1, if this host has IPv6 loopback.
v6_port=-
for _try in 1 2 3 4 5; do
  _port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000 ))
  nbdkit --exit-with-parent -f -i ::1 -p $_port -P "$tmpdir/v6.pid" \
    memory 1M >"$tmpdir/v6.log" 2>&1 &
  _pid=$!
  _i=0
  while [ $_i -lt 100 ] && kill -0 $_pid 2>/dev/null &&
        [ ! -s "$tmpdir/v6.pid" ]; do
    sleep 0.1
    _i=$((_i + 1))
  done
  if [ -s "$tmpdir/v6.pid" ]; then
    add_pid $_pid
    v6_port=$_port
    break
  fi
  kill $_pid 2>/dev/null
  wait $_pid 2>/dev/null
done

tap_run "uri" "$prog" "$tmpdir/mem space.sock" "$tmpdir/strict.sock" \
  "$v4_port" "$v6_port"
tap_done
