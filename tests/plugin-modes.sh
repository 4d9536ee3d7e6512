#!/usr/bin/env bash
# nbd-proxy plugin: the ways to reach the upstream that the other tests
# use only in failure cases.  command= (with arg=) runs the upstream as a
# child on stdin/stdout; socket-fd= takes a connected socket from nbdkit's
# parent; hostname= and port= over TCP; shared=true makes the upstream
# connections once, for every host connection.  Each serves the
# upstream's data exactly, to several host connections.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires nbdcopy md5sum
requires_nbdkit_filter log
tmpdir_setup

start_nbdkit pat pattern 3M
want=$(checksum "nbd+unix:///?socket=$tmpdir/pat.sock")

# serves NAME: two host connections at once read the whole export exactly.
serves ()
{
  _uri=$(proxy_uri "$1")
  nbdcopy "$_uri" - 2>/dev/null | md5sum | cut -d' ' -f1 >"$tmpdir/$1.sum1" &
  _c=$!
  _s2=$(checksum "$_uri")
  wait $_c
  same "$1: serves the upstream's data" "$(cat "$tmpdir/$1.sum1")" "$want"
  same "$1: to a second host connection at the same time" "$_s2" "$want"
}

# --- command= and arg=: an nbdkit of its own on stdin/stdout (-s).
start_proxy cmd command=nbdkit arg=-s arg=--exit-with-parent arg=pattern \
  arg=3M
serves cmd
# The child's pid is the proxy's only child nbdkit.
if pgrep -P "$(cat "$tmpdir/cmd.pid")" -f 'nbdkit -s' >/dev/null; then
  tap_result "ok" "cmd: the upstream runs as the proxy's child"
else
  tap_result "not ok" "cmd: the upstream runs as the proxy's child"
fi
stop_proxy cmd

# --- hostname= and port=, and socket-fd= on a TCP connection the shell
# opens (bash's /dev/tcp).
if start_nbdkit_tcp tcp pattern 3M; then
  start_proxy tcp hostname=127.0.0.1 port="$tcp_port"
  serves tcp
  stop_proxy tcp
  if exec 5<>"/dev/tcp/127.0.0.1/$tcp_port"; then
    start_proxy fd socket-fd=5
    exec 5>&-                   # the proxy holds the only copy
    serves fd
    stop_proxy fd
  else
    tap_result "ok" "socket-fd # SKIP bash cannot open /dev/tcp"
  fi
else
  tap_result "ok" "hostname= and socket-fd= # SKIP no free TCP port"
fi

# --- shared=true: the upstream connections are made once, at start-up
# (connections=2 of them: pattern advertises multi-conn), and every host
# connection uses them; nbdcopy makes several host connections itself.
start_nbdkit logged --filter=log pattern 3M logfile="$tmpdir/logged.log"
start_proxy shared socket="$tmpdir/logged.sock" shared=true connections=2
serves shared
serves shared
stop_proxy shared
same "shared: the upstream saw two connections, whatever the clients" \
  "$(grep -c ' Connect ' "$tmpdir/logged.log")" 2

tap_done
