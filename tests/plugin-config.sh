#!/usr/bin/env bash
# nbd-proxy plugin: --dump-plugin, the exported symbols, and start-up
# failures: every bad configuration stops nbdkit with one clear line.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires nm ldd timeout
tmpdir_setup

dump=$(proxy_nbdkit --dump-plugin "$plugin" 2>&1)
for line in name=nbd-proxy "version=$(sed -n 's/^PACKAGE_VERSION = //p' \
    "$top_builddir/Makefile")" thread_model=parallel magic_config_key=uri \
    libnbdc_uri=1 libnbdc_tls=1; do
  case "$dump" in
    *"$line"*) tap_result "ok" "--dump-plugin: $line" ;;
    *) tap_result "not ok" "--dump-plugin: $line"
       echo "$dump" | sed 's/^/# /' ;;
  esac
done
keys=$(echo "$dump" | sed -n 's/^nbd_proxy_keys=//p')
same "--dump-plugin lists every key" "$keys" \
  "uri,socket,hostname,port,vsock,command,arg,socket-fd,export,dynamic-export,retry,shared,tls,tls-certificates,tls-verify,tls-username,tls-psk,connections"
help=$(proxy_nbdkit "$plugin" --help 2>&1)
for key in ${keys//,/ }; do
  case "$help" in
    *"$key="*) ;;
    *) tap_result "not ok" "--help documents $key="; continue ;;
  esac
done
tap_result "ok" "--help runs"

exported=$(nm -D --defined-only "$plugin" | awk '{ print $3 }' | sort)
same "the plugin exports plugin_init only" "$exported" "plugin_init"
if ldd "$plugin" | grep -q 'libnbd\.so'; then
  tap_result "not ok" "the plugin does not link libnbd"
else
  tap_result "ok" "the plugin does not link libnbd"
fi

fails "no upstream" "no upstream" export=x
fails "two upstreams" "second upstream" socket=/a hostname=b
fails "unknown key" "unknown parameter 'bogus'" socket=/a bogus=1
fails "connections=0" "connections=0" socket=/a connections=0
fails "connections=65" "connections=65" socket=/a connections=65
fails "connections=x" "connections" socket=/a connections=x
fails "retry=-1" "retry" socket=/a retry=-1
fails "shared=maybe" "maybe" socket=/a shared=maybe
fails "not an NBD URI" "not an NBD URI" uri=http://example.com/
fails "export= with uri=" "put the export name in the URI" \
  "uri=nbd+unix:///a?socket=/x" export=b
fails "dynamic-export with export=" "dynamic-export" socket=/a export=x \
  dynamic-export=true
fails "dynamic-export with shared" "shared" socket=/a shared=true \
  dynamic-export=true
fails "shared=false with socket-fd" "shared=false" socket-fd=0 shared=false
fails "port= without a host" "port=" socket=/a port=1
fails "arg= without command=" "arg=" socket=/a arg=x
fails "tls-certificates not a directory" "not a directory" socket=/a \
  tls-certificates=/nonexistent
fails "tls-psk missing" "tls-psk" socket=/a tls-psk=/nonexistent
fails "tls-certificates with tls-psk" "exclude each other" socket=/a \
  tls-certificates=/ tls-psk=/dev/null
fails "unreachable socket" "cannot connect to upstream" \
  socket=$tmpdir/nothing.sock export=x
fails "unreachable socket, dynamic export" "cannot connect to upstream" \
  socket=$tmpdir/nothing.sock
fails "unreachable URI" "cannot connect to upstream" \
  "uri=nbd+unix:///?socket=$tmpdir/nothing.sock"
fails "unreachable, shared" "cannot connect to upstream" \
  socket=$tmpdir/nothing.sock shared=true

start=$(date +%s)
fails "unreachable after retry=2" "after 2 retries" \
  socket=$tmpdir/nothing.sock export=x retry=2
elapsed=$(( $(date +%s) - start ))
if [ $elapsed -ge 2 ]; then
  tap_result "ok" "retry=2 waits a second between attempts"
else
  tap_result "not ok" "retry=2 waits a second between attempts ($elapsed s)"
fi

# The upstream coming up during the retries is found.
( sleep 1.5; exec nbdkit --exit-with-parent -f -U "$tmpdir/late.sock" \
    pattern 1M ) &
add_pid $!
start_proxy pxlate socket="$tmpdir/late.sock" export= retry=5
check "an upstream that comes up during retry= is found" \
  nbdinfo --size "$(proxy_uri pxlate)"
stop_proxy pxlate

# The same with dynamic exports, where start-up probes in opt mode.
fails "unreachable after retry=1, dynamic export" "after 1 retry:" \
  socket=$tmpdir/nothing.sock retry=1
( sleep 1.5; exec nbdkit --exit-with-parent -f -U "$tmpdir/late2.sock" \
    pattern 1M ) &
add_pid $!
start_proxy pxlate2 socket="$tmpdir/late2.sock" retry=5
check "dynamic export: an upstream that comes up during retry= is found" \
  nbdinfo --size "$(proxy_uri pxlate2)"
stop_proxy pxlate2

tap_done
