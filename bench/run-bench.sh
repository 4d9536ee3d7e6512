#!/bin/sh
# run-bench.sh [BUILDDIR]: libnbdc against libnbd on one upstream.
# Copyright (c) 2026, the nbd-proxy authors.  BSD-3-Clause.
#
# Starts one "nbdkit pattern" (reads) and one "nbdkit memory" (writes) on
# Unix sockets in a temporary directory, checks every data byte once with
# each build (--verify; writes are read back), then runs bench-nbdc and
# bench-libnbd from BUILDDIR in turn for each case and prints the medians
# side by side.  See bench/README.md.
#
# BUILDDIR defaults to $BENCH_BUILDDIR, else ../_build/bench next to this
# script.  Settings (environment):
#   BENCH_SECONDS=3         timed phase of each run
#   BENCH_WARMUP=1          untimed warm-up of each run
#   BENCH_REPS=3            runs per build and case (median is reported)
#   BENCH_CASES="4k:1 4k:32 1m:8 4k:32:randwrite 1m:8:write"
#                           BLOCKSIZE:QUEUEDEPTH[:KIND], KIND one of
#                           read, randread, write, randwrite (as fio);
#                           none: reads in BENCH_PATTERN
#   BENCH_PATTERN=random    or sequential (cases without a KIND)
#   BENCH_SIZE=1G           size of each export
#   BENCH_VERIFY_SECONDS=1  length of each verification run
#   BENCH_ARGS=             more nbdbench options for the timed runs
#   BENCH_TLS=              psk: both upstreams require TLS with a PSK
#                           (psktool), and both builds connect over it
#   BENCH_NBDC, BENCH_LIBNBD        the programs (default: in BUILDDIR)
#   NBDKIT=nbdkit
# Either program may be missing (then its columns read "-"), not both.

set -eu

srcdir=$(cd "$(dirname "$0")" && pwd)
builddir=${1:-${BENCH_BUILDDIR:-$srcdir/../_build/bench}}
seconds=${BENCH_SECONDS:-3}
warmup=${BENCH_WARMUP:-1}
reps=${BENCH_REPS:-3}
cases=${BENCH_CASES:-4k:1 4k:32 1m:8 4k:32:randwrite 1m:8:write}
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
nbdkit_pids=
cleanup ()
{
  for pid in $nbdkit_pids; do
    kill "$pid" 2>/dev/null || :
    wait "$pid" 2>/dev/null || :
  done
  rm -rf "$tmpdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# start_nbdkit NAME PLUGIN ARGS...: serve on $tmpdir/NAME.
start_nbdkit ()
{
  name=$1
  shift
  "$nbdkit" -f --exit-with-parent -U "$tmpdir/$name" \
            -P "$tmpdir/$name.pid" "$@" &
  pid=$!
  nbdkit_pids="$nbdkit_pids $pid"
  # nbdkit writes its pid file once it listens.
  i=0
  while ! test -s "$tmpdir/$name.pid"; do
    kill -0 "$pid" 2>/dev/null || die "nbdkit $* failed to start"
    i=$((i + 1))
    test $i -le 300 || die "nbdkit $* did not start within 30 seconds"
    sleep 0.1
  done
}

tls=${BENCH_TLS:-}
case $tls in
  '')
    start_nbdkit pattern pattern size="$size"
    start_nbdkit memory memory size="$size"
    read_uri="nbd+unix:///?socket=$tmpdir/pattern"
    write_uri="nbd+unix:///?socket=$tmpdir/memory" ;;
  psk)
    psktool -u bench -p "$tmpdir/keys.psk" >/dev/null ||
      die "psktool failed (package gnutls-bin)"
    start_nbdkit pattern --tls=require --tls-psk="$tmpdir/keys.psk" \
                 pattern size="$size"
    start_nbdkit memory --tls=require --tls-psk="$tmpdir/keys.psk" \
                 memory size="$size"
    query="tls-psk-file=$tmpdir/keys.psk"
    read_uri="nbds+unix://bench@/?socket=$tmpdir/pattern&$query"
    write_uri="nbds+unix://bench@/?socket=$tmpdir/memory&$query" ;;
  *) die "BENCH_TLS=$tls: only psk is known" ;;
esac

# run_one BUILD URI ARGS...: run one build, check it is the library it
# claims to be, print its result line.
run_one ()
{
  build=$1
  uri=$2
  shift 2
  line=$($run_timeout "$(program "$build")" "$@" "$uri") ||
    die "$build failed: $(program "$build") $* $uri"
  case $line in
    "lib=$build "*) ;;
    *) die "$(program "$build") is not built against $build: $line" ;;
  esac
  echo "$line"
}

# parse_case CASE: set bs, qd, op, pat and uri from BLOCKSIZE:QD[:KIND].
parse_case ()
{
  bs=${1%%:*}
  qd=${1#*:}
  kind=
  case $qd in
    *:*) kind=${qd#*:}; qd=${qd%%:*} ;;
  esac
  case $kind in
    '') op=read; pat=$pattern ;;
    read) op=read; pat=sequential ;;
    randread) op=read; pat=random ;;
    write) op=write; pat=sequential ;;
    randwrite) op=write; pat=random ;;
    *) die "case $1: unknown kind $kind" ;;
  esac
  if test $op = write; then uri=$write_uri; else uri=$read_uri; fi
}

# The case's name in the table.
case_label ()
{
  parse_case "$1"
  if test -n "$kind"; then echo "$bs QD$qd $kind"; else echo "$bs QD$qd"; fi
}

# field LINE KEY: the value of KEY= in a result line.
field ()
{
  echo "$1" | tr ' ' '\n' | sed -n "s|^$2=||p"
}

echo "upstream: $nbdkit pattern size=$size (reads)," \
     "$nbdkit memory size=$size (writes) ($("$nbdkit" --version))" \
     "${tls:+over TLS ($tls)}"
echo "builds:  $builds (from $builddir)"
for build in $builds; do
  line=$(run_one "$build" "$read_uri" -t 0.1 -w 0 --check=none)
  echo "  $build: $(program "$build") version $(field "$line" version)"
done

echo
echo "verification: every byte of each read, every write read back," \
     "$verify_seconds s per case"
for c in $cases; do
  parse_case "$c"
  for build in $builds; do
    line=$(run_one "$build" "$uri" --verify -o $op -p "$pat" -b "$bs" \
                   -q "$qd" -t "$verify_seconds" -w 0)
    echo "  ok $build $op bs=$bs qd=$qd $pat ops=$(field "$line" ops)"
  done
done
# Unaligned sizes and offsets too, sequentially.
for build in $builds; do
  for op in read write; do
    uri=$read_uri
    test $op = read || uri=$write_uri
    line=$(run_one "$build" "$uri" --verify -o $op -p sequential -b 1000 \
                   -q 4 -n 4M -w 0)
    echo "  ok $build $op bs=1000 qd=4 sequential ops=$(field "$line" ops)"
  done
done
# Timed writes must not pay for nbdkit memory allocating its pages: fill
# the whole export once.
build=${builds# }
build=${build%% *}
run_one "$build" "$write_uri" -o write -p sequential -b 1m -q 8 -n "$size" \
        -w 0 --check=none >/dev/null
echo "  (write export filled once by $build)"

echo
echo "timed: $reps x $seconds s per build and case (+$warmup s warm-up)"
results=$tmpdir/results
: > "$results"
for c in $cases; do
  parse_case "$c"
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
      line=$(run_one "$build" "$uri" -o $op -p "$pat" -b "$bs" -q "$qd" \
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
row='%-18s %9s %9s %6s   %8s %8s %6s   %8s %8s %6s\n'
# shellcheck disable=SC2059 # the format is a variable on purpose
printf "$row" "" "MiB/s" "MiB/s" "" "cpu us" "cpu us" "" "lat us" \
       "lat us" ""
# shellcheck disable=SC2059
printf "$row" "case" "libnbdc" "libnbd" "ratio" "libnbdc" "libnbd" \
       "ratio" "libnbdc" "libnbd" "ratio"
for c in $cases; do
  n_mib=$(median "$c" libnbdc 3 %.1f)
  l_mib=$(median "$c" libnbd 3 %.1f)
  n_cpu=$(median "$c" libnbdc 4 %.2f)
  l_cpu=$(median "$c" libnbd 4 %.2f)
  n_lat=$(median "$c" libnbdc 5 %.1f)
  l_lat=$(median "$c" libnbd 5 %.1f)
  # shellcheck disable=SC2059
  printf "$row" \
         "$(case_label "$c")" "$n_mib" "$l_mib" "$(ratio "$n_mib" "$l_mib")" \
         "$n_cpu" "$l_cpu" "$(ratio "$n_cpu" "$l_cpu")" \
         "$n_lat" "$l_lat" "$(ratio "$n_lat" "$l_lat")"
done
