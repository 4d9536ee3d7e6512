#!/bin/sh
# run-proxy-bench.sh [BUILDDIR]: nbd-proxy.so against nbdkit's nbd plugin
# and a direct connection, in one run, with one client.
# Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
#
# Starts one upstream for reads ("nbdkit pattern") and one for writes
# ("nbdkit memory"), and in front of each an nbdkit with its nbd plugin
# (the anchor) and an nbdkit with nbd-proxy.so, all on Unix sockets.  For
# each case the same client (nbdbench, built on libnbd when there, else on
# libnbdc) runs against the three targets in turn, alternating their order
# from one repetition to the next; the table shows medians, the ratio of
# each proxy's throughput to the direct connection's, and the CPU time the
# proxy process spent per request (from /proc/PID/stat).  Then nbdcopy
# copies the whole read export to null: through each target, as many
# times, in rotating order.
#
# Settings (environment): BENCH_SECONDS=3, BENCH_REPS=3, BENCH_SIZE=1G,
# BENCH_CASES="read:1m:8:sequential read:4k:1:random read:4k:32:random
# write:4k:32:random", BENCH_CLIENT (an nbdbench program), BENCH_PLUGIN
# (nbd-proxy.so), BENCH_PROXY_ARGS (more plugin parameters, such as
# connections=1), BENCH_NBDCOPY=1 (0: no nbdcopy rows), NBDKIT=nbdkit.

set -eu

srcdir=$(cd "$(dirname "$0")" && pwd)
builddir=${1:-${BENCH_BUILDDIR:-$srcdir/../_build/bench}}
seconds=${BENCH_SECONDS:-3}
reps=${BENCH_REPS:-3}
size=${BENCH_SIZE:-1G}
cases=${BENCH_CASES:-read:1m:8:sequential read:4k:1:random read:4k:32:random write:4k:32:random}
nbdkit=${NBDKIT:-nbdkit}
plugin=${BENCH_PLUGIN:-$builddir/../plugin/.libs/nbd-proxy.so}
client=${BENCH_CLIENT:-}
if [ -z "$client" ]; then
  client=$builddir/bench-libnbd
  [ -x "$client" ] || client=$builddir/bench-nbdc
fi

skip ()
{
  echo "run-proxy-bench.sh: $*, cannot run" >&2
  exit 77
}
command -v "$nbdkit" >/dev/null 2>&1 || skip "$nbdkit not found"
[ -x "$client" ] || skip "no nbdbench program ($client)"
[ -f "$plugin" ] || skip "no plugin ($plugin)"
"$nbdkit" nbd --version >/dev/null 2>&1 || skip "nbdkit has no nbd plugin"

tmp=$(mktemp -d)
cleanup ()
{
  for p in "$tmp"/*.pid; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# serve NAME NBDKIT-ARGS...: nbdkit on $tmp/NAME.sock, pid in NAME.pid.
serve ()
{
  _name=$1; shift
  "$nbdkit" -U "$tmp/$_name.sock" -P "$tmp/$_name.pid" "$@"
  _i=0
  while [ ! -S "$tmp/$_name.sock" ] && [ $_i -lt 100 ]; do
    sleep 0.1; _i=$((_i + 1))
  done
}
serve up pattern "$size"
serve upw memory "$size"
serve anchor nbd socket="$tmp/up.sock"
serve anchorw nbd socket="$tmp/upw.sock"
# shellcheck disable=SC2086 # BENCH_PROXY_ARGS: words
serve proxy "$plugin" socket="$tmp/up.sock" ${BENCH_PROXY_ARGS:-}
# shellcheck disable=SC2086
serve proxyw "$plugin" socket="$tmp/upw.sock" ${BENCH_PROXY_ARGS:-}

ticks=$(getconf CLK_TCK)
# cpu NAME: CPU seconds (user + system) of the nbdkit serving NAME.
cpu ()
{
  awk -v t="$ticks" '{ printf "%.6f\n", ($14 + $15) / t }' \
    "/proc/$(cat "$tmp/$1.pid")/stat"
}

# field KEY LINE
field ()
{
  echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

median ()
{
  sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# run TARGET OP BS QD PATTERN: one timed run; appends IOPS and proxy CPU
# microseconds per request to $tmp/TARGET.iops and TARGET.cpu.
run ()
{
  _t=$1; _op=$2; _srv=$1
  [ "$_op" = write ] && _srv=${1}w
  [ "$_t" = direct ] && _srv=up && [ "$_op" = write ] && _srv=upw
  _c0=$(cpu "$_srv")
  _line=$("$client" --op="$_op" -b "$3" -q "$4" -p "$5" -t "$seconds" \
            -w 1 --check=none "nbd+unix:///?socket=$tmp/$_srv.sock")
  _c1=$(cpu "$_srv")
  _ops=$(field ops "$_line")
  field IOPS "$_line" >>"$tmp/$_t.iops"
  awk -v a="$_c0" -v b="$_c1" -v n="$_ops" \
    'BEGIN { printf "%.2f\n", (b - a) * 1e6 / n }' >>"$tmp/$_t.cpu"
}

echo "client: $(basename "$client"); upstream: nbdkit pattern/memory" \
  "$size; ${seconds} s x $reps runs, medians"
printf '%-24s %10s %9s %9s %9s %9s %9s %9s\n' case direct anchor-x \
  proxy-x up-cpu anc-cpu prx-cpu prx/anc
for c in $cases; do
  IFS=: read -r op bs qd pattern <<EOF
$c
EOF
  rm -f "$tmp"/*.iops "$tmp"/*.cpu
  r=0
  while [ $r -lt "$reps" ]; do
    if [ $((r % 2)) -eq 0 ]; then order="direct anchor proxy"
    else order="proxy anchor direct"; fi
    for t in $order; do run "$t" "$op" "$bs" "$qd" "$pattern"; done
    r=$((r + 1))
  done
  d=$(median "$tmp/direct.iops"); a=$(median "$tmp/anchor.iops")
  p=$(median "$tmp/proxy.iops")
  ac=$(median "$tmp/anchor.cpu"); pc=$(median "$tmp/proxy.cpu")
  dc=$(median "$tmp/direct.cpu")
  printf '%-24s %10s %9s %9s %9s %9s %9s %9s\n' \
    "$op $bs QD$qd $pattern" "$d" \
    "$(awk -v x="$a" -v y="$d" 'BEGIN { printf "%.2f", x / y }')" \
    "$(awk -v x="$p" -v y="$d" 'BEGIN { printf "%.2f", x / y }')" \
    "$dc" "$ac" "$pc" \
    "$(awk -v x="$pc" -v y="$ac" 'BEGIN { printf "%.2f", x / y }')"
done
echo "(direct: IOPS; -x: IOPS relative to direct; -cpu: microseconds of"
echo " CPU per request in the upstream nbdkit / the anchor's / the proxy's"
echo " process)"

if [ "${BENCH_NBDCOPY:-1}" = 1 ] && command -v nbdcopy >/dev/null 2>&1; then
  # BENCH_REPS copies through each target, the order rotating from one
  # repetition to the next; medians.
  order="direct anchor proxy"
  for rep in $(seq "$reps"); do
    for t in $order; do
      srv=$t; [ "$t" = direct ] && srv=up
      s0=$(date +%s.%N); c0=$(cpu "$srv")
      nbdcopy "nbd+unix:///?socket=$tmp/$srv.sock" null:
      s1=$(date +%s.%N); c1=$(cpu "$srv")
      echo "$t $s0 $s1 $c0 $c1"
    done
    set -- $order; order="$2 $3 $1"
  done | awk -v reps="$reps" '
    function median (a, n,    i, j, x) {
      for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
          x = a[j]; a[j] = a[j - 1]; a[j - 1] = x
        }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { n[$1]++; el[$1, n[$1]] = $3 - $2; c[$1, n[$1]] = $5 - $4 }
    END {
      split ("direct anchor proxy", names, " ")
      for (k = 1; k <= 3; k++) {
        t = names[k]
        for (i = 1; i <= n[t]; i++) { e[i] = el[t, i]; u[i] = c[t, i] }
        me[t] = median (e, n[t]); mc[t] = median (u, n[t])
      }
      for (k = 1; k <= 3; k++) {
        t = names[k]
        printf "nbdcopy to null: %-7s %7.2f s  x%.2f of direct  " \
               "process CPU %.2f s  (median of %d)\n", t, me[t],
               me["direct"] / me[t], mc[t], reps
      }
    }'
fi
