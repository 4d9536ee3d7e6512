#!/usr/bin/env bash
# nbd-proxy plugin: the upstream dies.
#  1. The whole upstream is killed while host requests wait on it (nbdkit
#     --filter=delay): each gets EIO promptly, the proxy survives, a new
#     host connection fails fast, and once an upstream is back new host
#     connections are served again.
#  2. One upstream connection dies (nbd-server forks one process per
#     connection; one is killed): that host connection's requests fail
#     with EIO, now and later, while another host connection keeps working.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires qemu-io mkfifo pgrep timeout
requires_nbdkit_filter delay
tmpdir_setup

slow=${NBDC_SLOWDOWN:-1}

# --- 1. the whole upstream dies with requests waiting.
start_nbdkit up --filter=delay pattern 1M rdelay=20
up_pid=$server_pid
start_proxy px socket="$tmpdir/up.sock"
px=$(proxy_uri px)
# A host connection that stays open holds the pool through the death.
session holder 9 "$px"
ask 9 holder "read 0 512" >/dev/null

for i in 1 2 3; do
  timeout $((60 * slow)) qemu-io -f raw -r -c "read 0 4096" "$px" \
    >"$tmpdir/wait$i.out" 2>&1 &
  eval "client$i=\$!"
done
sleep $((2 * slow))             # the reads are waiting upstream
t0=$(date +%s)
kill -9 $up_pid
for i in 1 2 3; do
  eval "wait \$client$i"
done
elapsed=$(( $(date +%s) - t0 ))
for i in 1 2 3; do
  if grep -q "read failed: Input/output error" "$tmpdir/wait$i.out"; then
    tap_result "ok" "waiting request $i fails with EIO"
  else
    tap_result "not ok" "waiting request $i fails with EIO"
    sed 's/^/# /' "$tmpdir/wait$i.out"
  fi
done
if [ $elapsed -le $((5 * slow)) ]; then
  tap_result "ok" "the waiting requests failed promptly ($elapsed s)"
else
  tap_result "not ok" "the waiting requests failed promptly ($elapsed s)"
fi
if kill -0 "$proxy_pid" 2>/dev/null; then
  tap_result "ok" "the proxy survives the upstream's death"
else
  tap_result "not ok" "the proxy survives the upstream's death"
fi
# The host connection that was open through the death fails fast too.
t0=$(date +%s)
answer=$(ask 9 holder "read 0 512")
elapsed=$(( $(date +%s) - t0 ))
case $answer in
  "read failed: Input/output error"*)
    tap_result "ok" "the open host connection's next read fails with EIO" ;;
  *) tap_result "not ok" "the open host connection's next read fails with EIO"
     printf '%s\n' "$answer" | sed 's/^/# /' ;;
esac
[ $elapsed -le $((5 * slow)) ] &&
  tap_result "ok" "and fails fast ($elapsed s)" ||
  tap_result "not ok" "and fails fast ($elapsed s)"
# Only the first upstream connection has seen the death (small requests
# keep to it); the others are dead too, unknown to the proxy.  A new host
# connection must not be given that pool, which the holder keeps: even a
# request-free one fails.
if timeout $((30 * slow)) nbdinfo --size "$px" >"$tmpdir/size.out" 2>&1
then
  tap_result "not ok" "a new host connection is not given the dead pool"
else
  tap_result "ok" "a new host connection is not given the dead pool"
fi
t0=$(date +%s)
if timeout $((30 * slow)) qemu-io -f raw -r -c "read 0 512" "$px" \
     >"$tmpdir/new.out" 2>&1; then
  tap_result "not ok" "a new host connection fails while the upstream is gone"
else
  tap_result "ok" "a new host connection fails while the upstream is gone"
fi
elapsed=$(( $(date +%s) - t0 ))
[ $elapsed -le $((5 * slow)) ] &&
  tap_result "ok" "and fails fast ($elapsed s)" ||
  tap_result "not ok" "and fails fast ($elapsed s)"
rm -f "$tmpdir/up.sock" "$tmpdir/up.pid"
start_nbdkit up pattern 1M
check "with the upstream back, new host connections are served" \
  qemu-io -f raw -r -c "read -P 0 0 8" "$px"
# quit, not EOF: servers started since hold the fifo open too.
echo quit >&9
exec 9>&-
stop_proxy px

# --- 2. one upstream connection dies.
if ! command -v nbd-server >/dev/null; then
  tap_result "ok" "one upstream connection dies # SKIP nbd-server missing"
  tap_done; exit 0
fi
make_sparse_file "$tmpdir/disk.img"
start_nbd_server ns "$tmpdir/disk.img"
ns_pid=$server_pid
# nbd-server advertises multi-conn: connections=1 gives each host
# connection an upstream connection of its own.
start_proxy px2 "uri=nbd+unix:///export?socket=$tmpdir/ns.sock" connections=1
px2=$(proxy_uri px2)

# show FILE: as TAP comments (a session's output ends without a newline).
show ()
{
  { cat "$1"; echo; } | sed 's/^/# /'
}
children ()
{
  pgrep -P "$ns_pid" | sort
}

before=$(children)
session a 7 "$px2"
ask 7 a "read 0 256" >/dev/null
sleep 0.5
child_a=$(comm -13 <(echo "$before") <(children) | head -n 1)
session b 8 "$px2"
ask 8 b "read 0 256" >/dev/null
if [ -z "$child_a" ]; then
  tap_result "not ok" "found host connection a's nbd-server process"
  tap_done; exit 0
fi
kill -9 "$child_a"
sleep 0.5
case $(ask 7 a "read 0 512") in
  *"read failed: Input/output error"*)
    tap_result "ok" "a's upstream died: a's read fails with EIO" ;;
  *) tap_result "not ok" "a's upstream died: a's read fails with EIO"
     show "$tmpdir/a.out" ;;
esac
case $(ask 7 a "read 4096 512") in
  *"read failed: Input/output error"*)
    tap_result "ok" "a's later reads fail with EIO too" ;;
  *) tap_result "not ok" "a's later reads fail with EIO too"
     show "$tmpdir/a.out" ;;
esac
case $(ask 8 b "read 0 256") in
  *"read 256/256 bytes"*)
    tap_result "ok" "host connection b keeps working" ;;
  *) tap_result "not ok" "host connection b keeps working"
     show "$tmpdir/b.out" ;;
esac
check "a new host connection is served" \
  qemu-io -f raw -r -c "read 0 256" "$px2"
echo quit >&7; echo quit >&8
exec 7>&- 8>&-
stop_proxy px2

# --- 3. one connection of a shared pool dies: requests go to the others.
start_proxy px3 "uri=nbd+unix:///export?socket=$tmpdir/ns.sock" connections=2
px2=$(proxy_uri px3)
before=$(children)
session c 9 "$px2"
ask 9 c "read 0 256" >/dev/null
sleep 0.5
pool=$(comm -13 <(echo "$before") <(children))
same "a pool of connections=2 upstream connections" \
  "$(echo "$pool" | wc -l)" 2
kill -9 $(echo "$pool" | head -n 1)
sleep 0.5
failed=0
for i in 1 2 3 4 5 6; do
  case $(ask 9 c "read 0 256") in
    *"read 256/256 bytes"*) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
if [ $failed -le 1 ]; then
  tap_result "ok" "after one failure at most, reads use the live connection ($failed failed)"
else
  tap_result "not ok" "after one failure at most, reads use the live connection ($failed failed)"
  show "$tmpdir/c.out"
fi
echo quit >&9
exec 9>&-
stop_proxy px3
tap_done
