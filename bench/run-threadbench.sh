#!/bin/sh
# run-threadbench.sh [BUILDDIR]: N threads calling nbd_pread(3) on one
# shared handle, against one thread keeping N nbd_aio_pread(3) in flight,
# for libnbdc and libnbd, on one "nbdkit pattern".
# Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
#
# Settings (environment): BENCH_SECONDS=3, BENCH_REPS=3 (median),
# BENCH_THREADS="16 32", BENCH_SIZE=1G, NBDKIT=nbdkit.
# Prints per library and N: iops and CPU per read of both modes, and the
# ratio threads/aio (1.0: sharing a handle between threads costs nothing).

set -eu

srcdir=$(cd "$(dirname "$0")" && pwd)
builddir=${1:-${BENCH_BUILDDIR:-$srcdir/../_build/bench}}
seconds=${BENCH_SECONDS:-3}
reps=${BENCH_REPS:-3}
threads=${BENCH_THREADS:-16 32}
size=${BENCH_SIZE:-1G}
nbdkit=${NBDKIT:-nbdkit}

if ! command -v "$nbdkit" >/dev/null 2>&1; then
  echo "run-threadbench.sh: $nbdkit not found, cannot run" >&2
  exit 77
fi
tmp=$(mktemp -d)
trap '[ -f "$tmp/pid" ] && kill "$(cat "$tmp/pid")" 2>/dev/null; rm -rf "$tmp"' EXIT
"$nbdkit" -U "$tmp/sock" -P "$tmp/pid" pattern "$size"
i=0
while [ ! -S "$tmp/sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
uri="nbd+unix:///?socket=$tmp/sock"

# median FILE: the median of the numbers in FILE.
median ()
{
  sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# field LINE KEY
field ()
{
  echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

printf '%-8s %4s %12s %10s %12s %10s %8s %8s\n' library N threads-iops \
  cpu-us/op aio-iops cpu-us/op ratio cpu-x
for n in $threads; do
  for lib in nbdc libnbd; do
    prog=$builddir/threadbench-$lib
    [ -x "$prog" ] || continue
    : >"$tmp/ti"; : >"$tmp/tc"; : >"$tmp/ai"; : >"$tmp/ac"
    r=0
    while [ $r -lt "$reps" ]; do
      line=$("$prog" "$uri" threads "$n" "$seconds")
      field "$line" iops >>"$tmp/ti"; field "$line" cpu_us_per_op >>"$tmp/tc"
      line=$("$prog" "$uri" aio "$n" "$seconds")
      field "$line" iops >>"$tmp/ai"; field "$line" cpu_us_per_op >>"$tmp/ac"
      r=$((r + 1))
    done
    ti=$(median "$tmp/ti"); tc=$(median "$tmp/tc")
    ai=$(median "$tmp/ai"); ac=$(median "$tmp/ac")
    printf '%-8s %4s %12s %10s %12s %10s %8s %8s\n' "$lib" "$n" "$ti" "$tc" \
      "$ai" "$ac" "$(awk -v a="$ti" -v b="$ai" 'BEGIN { printf "%.2f", a / b }')" \
      "$(awk -v a="$tc" -v b="$ac" 'BEGIN { printf "%.2f", a / b }')"
  done
done
