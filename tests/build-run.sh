#!/usr/bin/env bash
# The README's run command: build.sh run, after its packages and build
# (build.sh serve, with this build tree).  With no URI it serves an
# embedded upstream through the proxy, shows a read through it, says how
# to connect, serves until stopped, and cleans up; with a URI it proxies
# that.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires nbdinfo nbdcopy timeout
tmpdir_setup
# The sanitizer build's plugin needs its runtime preloaded into nbdkit,
# which build.sh does not do: the plain and valgrind passes cover run.
[ -z "$_proxy_preload" ] || skip_all "sanitizer build: run serves the plain build"
[ -x "${top_builddir:-..}/examples/nbdc-cat" ] || skip_all "examples not built"

build_sh=$(cd "${srcdir:-.}/.." && pwd)/build.sh
build_dir=$(cd "${top_builddir:-..}" && pwd)

# run_serve NAME [URI]: build.sh serve in the background, output in
# $tmpdir/NAME.out; waits until it says it serves.  Sets serve_pid.
run_serve ()
{
  _out=$tmpdir/$1.out; shift
  NBD_PROXY_BUILD=$build_dir "$build_sh" serve "$@" >"$_out" 2>&1 &
  serve_pid=$!
  add_pid $serve_pid
  _i=0
  while ! grep -q "Serving until Ctrl-C" "$_out" && [ $_i -lt 600 ]; do
    kill -0 $serve_pid 2>/dev/null || break
    sleep 0.1; _i=$((_i + 1))
  done
  sed 's/^/# /' "$_out"
}

# stop_serve NAME: SIGTERM (a background job ignores SIGINT; the script
# traps both the same way); it exits 0 and leaves nothing behind.
stop_serve ()
{
  _dir=$(sed -n 's|^nbd-proxy serves it at nbd+unix:///?socket=\(.*\)/nbd-proxy.sock$|\1|p' \
           "$tmpdir/$1.out")
  kill -TERM $serve_pid
  timeout 30 tail --pid=$serve_pid -f /dev/null
  wait $serve_pid
  _st=$?
  same "$1: stops with status 0 on SIGTERM" "$_st" 0
  if [ -n "$_dir" ] && [ ! -e "$_dir" ]; then
    tap_result "ok" "$1: its temporary directory is gone"
  else
    tap_result "not ok" "$1: its temporary directory is gone ($_dir)"
  fi
  if [ -n "$_dir" ] && pgrep -f -- "$_dir" >/dev/null; then
    tap_result "not ok" "$1: no nbdkit of it is left"
    pgrep -af -- "$_dir" | sed 's/^/# /'
  else
    tap_result "ok" "$1: no nbdkit of it is left"
  fi
}

# --- No URI: the embedded upstream.
run_serve embedded
uri=$(sed -n 's/^nbd-proxy serves it at \(.*\)$/\1/p' "$tmpdir/embedded.out")
case $uri in
  nbd+unix:///\?socket=*) tap_result "ok" "embedded: says where it serves" ;;
  *) tap_result "not ok" "embedded: says where it serves" ;;
esac
same "embedded: a 1 GiB export" "$(nbdinfo --size "$uri" 2>&1)" 1073741824
greeting=$(nbdcopy "$uri" - 2>/dev/null | head -c 21)
same "embedded: the greeting reads through the proxy" "$greeting" \
  "Hello from nbd-proxy!"
# The read it shows, done by examples/nbdc-cat through the proxy.
if grep -q "H   e   l   l   o" "$tmpdir/embedded.out"; then
  tap_result "ok" "embedded: shows a read through the proxy"
else
  tap_result "not ok" "embedded: shows a read through the proxy"
fi
for how in "nbdinfo '$uri'" "qemu-img info '$uri'" \
           "qemu-system-x86_64 -m 1G -drive file='$uri',format=raw"; do
  if grep -qF -- "$how" "$tmpdir/embedded.out"; then
    tap_result "ok" "embedded: says how to connect: ${how%% *}"
  else
    tap_result "not ok" "embedded: says how to connect: ${how%% *}"
  fi
done
echo "written through the proxy" |
  nbdcopy - "$uri" 2>"$tmpdir/w.err" || sed 's/^/# /' "$tmpdir/w.err"
same "embedded: writable" "$(nbdcopy "$uri" - 2>/dev/null | head -c 25)" \
  "written through the proxy"
stop_serve embedded

# --- A URI: that upstream, proxied.
start_nbdkit up pattern 1M
run_serve given "nbd+unix:///?socket=$tmpdir/up.sock"
uri=$(sed -n 's/^nbd-proxy serves it at \(.*\)$/\1/p' "$tmpdir/given.out")
if [ -n "$uri" ] &&
   [ "$(nbdcopy "$uri" - 2>/dev/null | md5sum)" = \
     "$(nbdcopy "nbd+unix:///?socket=$tmpdir/up.sock" - | md5sum)" ]; then
  tap_result "ok" "URI: serves that upstream's data"
else
  tap_result "not ok" "URI: serves that upstream's data"
fi
stop_serve given

tap_done
