#!/bin/sh
# run-bench.sh [BUILDDIR]: libnbdc against libnbd on one upstream.
# Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
#
# Starts one "nbdkit pattern" on a Unix socket in a temporary directory,
# checks every data byte once with each build (--verify), then runs
# bench-nbdc and bench-libnbd from BUILDDIR in turn for each case and
# prints the medians side by side.  See bench/README.md.
#
# BUILDDIR defaults to $BENCH_BUILDDIR, else ../_build/bench next to this
# script.  Settings (environment):
#   BENCH_SECONDS=3         timed phase of each run
#   BENCH_WARMUP=1          untimed warm-up of each run
#   BENCH_REPS=3            runs per build and case (median is reported)
#   BENCH_CASES="4k:1 4k:32 1m:8"   BLOCKSIZE:QUEUEDEPTH, random reads
#   BENCH_PATTERN=random    or sequential
#   BENCH_SIZE=1G           size of the pattern export
#   BENCH_VERIFY_SECONDS=1  length of each verification run
#   BENCH_ARGS=             more nbdbench options for the timed runs
#   BENCH_NBDC, BENCH_LIBNBD        the programs (default: in BUILDDIR)
#   NBDKIT=nbdkit
# Either program may be missing (then its columns read "-"), not both.

set -eu

srcdir=$(cd "$(dirname "$0")" && pwd)
builddir=${1:-${BENCH_BUILDDIR:-$srcdir/../_build/bench}}
seconds=${BENCH_SECONDS:-3}
warmup=${BENCH_WARMUP:-1}
reps=${BENCH_REPS:-3}
cases=${BENCH_CASES:-4k:1 4k:32 1m:8}
pattern=${BENCH_PATTERN:-random}
size=${BENCH_SIZE:-1G}
verify_seconds=${BENCH_VERIFY_SECONDS:-1}
extra_args=${BENCH_ARGS:-}
nbdkit=${NBDKIT:-nbdkit}
nbdc=${BENCH_NBDC:-$builddir/bench-nbdc}
libnbd=${BENCH_LIBNBD:-$builddir/bench-libnbd}

die ()
{
  echo "run-bench.sh: $*" >&2
  exit 1
}

case $reps in
  ''|*[!0-9]*|0) die "BENCH_REPS must be a positive integer" ;;
esac

# Which builds are there, and under which name each must report itself.
builds=
if test -x "$nbdc"; then builds="$builds libnbdc"; fi
if test -x "$libnbd"; then builds="$builds libnbd"; fi
test -n "$builds" ||
  die "neither $nbdc nor $libnbd exists; build them with make -C bench"
if ! command -v "$nbdkit" >/dev/null 2>&1; then
  echo "run-bench.sh: $nbdkit not found, cannot run" >&2
  exit 77
fi

program ()
{
  case $1 in
    libnbdc) echo "$nbdc" ;;
    libnbd) echo "$libnbd" ;;
  esac
}

# A run that hangs must not hang the benchmark.
run_timeout=
if command -v timeout >/dev/null 2>&1; then
  run_timeout="timeout 300"
fi

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/nbdbench.XXXXXX")
nbdkit_pid=
cleanup ()
{
  if test -n "$nbdkit_pid"; then
    kill "$nbdkit_pid" 2>/dev/null || :
    wait "$nbdkit_pid" 2>/dev/null || :
  fi
  rm -rf "$tmpdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

sock=$tmpdir/sock
uri="nbd+unix:///?socket=$sock"
"$nbdkit" -f --exit-with-parent -U "$sock" -P "$tmpdir/pid" \
          pattern size="$size" &
nbdkit_pid=$!
# nbdkit writes its pid file once it listens.
i=0
while ! test -s "$tmpdir/pid"; do
  kill -0 "$nbdkit_pid" 2>/dev/null || die "nbdkit failed to start"
  i=$((i + 1))
  test $i -le 300 || die "nbdkit did not start within 30 seconds"
  sleep 0.1
done

# run_one BUILD ARGS...: run one build, check it is the library it claims
# to be, print its result line.
run_one ()
{
  build=$1
  shift
  line=$($run_timeout "$(program "$build")" "$@" "$uri") ||
    die "$build failed: $(program "$build") $* $uri"
  case $line in
    "lib=$build "*) ;;
    *) die "$(program "$build") is not built against $build: $line" ;;
  esac
  echo "$line"
}

# field LINE KEY: the value of KEY= in a result line.
field ()
{
  echo "$1" | tr ' ' '\n' | sed -n "s|^$2=||p"
}

echo "upstream: $nbdkit pattern size=$size ($("$nbdkit" --version))"
echo "builds:  $builds (from $builddir)"
for build in $builds; do
  line=$(run_one "$build" -t 0.1 -w 0 --check=none)
  echo "  $build: $(program "$build") version $(field "$line" version)"
done

echo
echo "verification: every byte of each read, $verify_seconds s per case"
for c in $cases; do
  bs=${c%%:*}
  qd=${c#*:}
  for build in $builds; do
    line=$(run_one "$build" --verify -p "$pattern" -b "$bs" -q "$qd" \
                   -t "$verify_seconds" -w 0)
    echo "  ok $build bs=$bs qd=$qd ops=$(field "$line" ops)"
  done
done
# Unaligned sizes and offsets too, sequentially.
for build in $builds; do
  line=$(run_one "$build" --verify -p sequential -b 1000 -q 4 -n 4M -w 0)
  echo "  ok $build bs=1000 qd=4 sequential ops=$(field "$line" ops)"
done

echo
echo "timed: $reps x $seconds s per build and case (+$warmup s warm-up)," \
     "$pattern reads"
results=$tmpdir/results
: > "$results"
for c in $cases; do
  bs=${c%%:*}
  qd=${c#*:}
  r=1
  while test $r -le "$reps"; do
    # Alternate which build goes first, so drift favours neither.
    order=$builds
    if test $((r % 2)) -eq 0; then
      order=
      for build in $builds; do order="$build $order"; done
    fi
    for build in $order; do
      # shellcheck disable=SC2086 # BENCH_ARGS is a list of options
      line=$(run_one "$build" -p "$pattern" -b "$bs" -q "$qd" \
                     -t "$seconds" -w "$warmup" $extra_args)
      echo "  $line"
      echo "$c $build $(field "$line" MiB/s) $(field "$line" cpu_usec/op)" \
           "$(field "$line" lat_usec)" >> "$results"
    done
    r=$((r + 1))
  done
done

# median CASE BUILD COLUMN FORMAT: median of one column of the results,
# or "-".
median ()
{
  awk -v c="$1" -v b="$2" -v col="$3" '$1 == c && $2 == b { print $col }' \
      "$results" |
    sort -g |
    awk -v fmt="$4" '{ v[NR] = $1 }
         END {
           if (NR == 0) print "-";
           else if (NR % 2) printf fmt "\n", v[(NR + 1) / 2];
           else printf fmt "\n", (v[NR / 2] + v[NR / 2 + 1]) / 2;
         }'
}

# ratio A B: A/B to two decimals, or "-".
ratio ()
{
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || b + 0 == 0) print "-";
    else printf "%.2f\n", a / b;
  }'
}

echo
echo "medians of $reps; ratio = libnbdc / libnbd" \
     "(throughput: >1 is faster; CPU and latency: <1 is cheaper)"
printf '%-12s %9s %9s %6s   %8s %8s %6s   %8s %8s %6s\n' \
       "" "MiB/s" "MiB/s" "" "cpu us" "cpu us" "" "lat us" "lat us" ""
printf '%-12s %9s %9s %6s   %8s %8s %6s   %8s %8s %6s\n' \
       "case" "libnbdc" "libnbd" "ratio" "libnbdc" "libnbd" "ratio" \
       "libnbdc" "libnbd" "ratio"
for c in $cases; do
  bs=${c%%:*}
  qd=${c#*:}
  n_mib=$(median "$c" libnbdc 3 %.1f)
  l_mib=$(median "$c" libnbd 3 %.1f)
  n_cpu=$(median "$c" libnbdc 4 %.2f)
  l_cpu=$(median "$c" libnbd 4 %.2f)
  n_lat=$(median "$c" libnbdc 5 %.1f)
  l_lat=$(median "$c" libnbd 5 %.1f)
  printf '%-12s %9s %9s %6s   %8s %8s %6s   %8s %8s %6s\n' \
         "$bs QD$qd" "$n_mib" "$l_mib" "$(ratio "$n_mib" "$l_mib")" \
         "$n_cpu" "$l_cpu" "$(ratio "$n_cpu" "$l_cpu")" \
         "$n_lat" "$l_lat" "$(ratio "$n_lat" "$l_lat")"
done
