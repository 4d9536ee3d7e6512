#!/bin/sh
# Line coverage of client/ by the test suite ("make coverage").
#
#   tests/coverage.sh [BUILDDIR [MIN_TOTAL [MIN_FILE]]]
#
# Builds the tree in BUILDDIR (default _build-coverage in the source tree)
# with CFLAGS="-O0 -g --coverage", runs make check there (no valgrind, no
# fuzzing), prints the line coverage of each file of client/ and of client/
# as a whole, with gcovr or else lcov, and fails unless the whole is at
# least MIN_TOTAL % (default 90) and each client/*.c at least MIN_FILE %
# (default 85).  Not run by CI.

set -u
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/_build-coverage}
min_total=${2:-90}
min_file=${3:-85}
make=${MAKE:-make}

if [ -f "$top/config.status" ]; then
  echo "coverage: $top is configured in place; coverage needs a build" \
    "directory of its own (make distclean there, then build in _build)" >&2
  exit 1
fi
mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || exit 1

echo "=== coverage: building in $dir"
if [ ! -f "$dir/Makefile" ]; then
  (cd "$dir" && "$top/configure" --enable-werror --disable-static \
     CFLAGS="-O0 -g --coverage") >"$dir/configure.out" 2>&1 || {
    cat "$dir/configure.out"; echo "coverage: configure failed" >&2; exit 1; }
fi
"$make" -C "$dir" >/dev/null || { echo "coverage: build failed" >&2; exit 1; }

# Counts of this run only.
find "$dir" -name '*.gcda' -exec rm -f {} +
echo "=== coverage: make check"
check=0
env -u NBDC_VALGRIND -u NBDC_FUZZ_SECONDS -u NBDC_SLOWDOWN \
  "$make" -C "$dir" check >"$dir/check.out" 2>&1 || check=$?
grep -E '^# (TOTAL|PASS|SKIP|FAIL|XPASS|ERROR):' "$dir/check.out"

# "FILE LINES COVERED" for each source file of client/.
counts=$dir/coverage.counts
if command -v gcovr >/dev/null 2>&1; then
  tool=gcovr
  (cd "$dir" && gcovr --root "$top" --filter "$top/client/" --csv - client \
     2>"$dir/gcovr.err") |
    awk -F, 'NR > 1 { print $1, $2, $3 }' >"$counts"
elif command -v lcov >/dev/null 2>&1; then
  tool=lcov
  lcov --quiet --capture --directory "$dir/client" \
    --output-file "$dir/coverage.info" 2>"$dir/lcov.err"
  # A header compiled into several objects comes once per object: a line
  # counts as covered if any of them ran it.
  awk -F'[:,]' -v top="$top/" '
    /^SF:/ { file = substr ($0, 4) }
    /^DA:/ && index (file, top "client/") == 1 {
      key = substr (file, length (top) + 1) " " $2
      lines[key] = 1
      if ($3 > 0) hit[key] = 1
    }
    END {
      for (key in lines) {
        split (key, a, " ")
        total[a[1]]++
        if (key in hit) covered[a[1]]++
      }
      for (f in total) print f, total[f], covered[f] + 0
    }' "$dir/coverage.info" | sort >"$counts"
else
  echo "coverage: neither gcovr nor lcov is installed" >&2
  exit 1
fi
if [ ! -s "$counts" ]; then
  echo "coverage: $tool found no coverage data for client/" >&2
  exit 1
fi

echo "=== coverage: lines of client/ run by make check ($tool)"
awk -v min_total="$min_total" -v min_file="$min_file" '
  function row(name, t, c, min, checked) {
    printf "%-22s %6d %8d %7.1f%%%s\n", name, t, c, t ? 100 * c / t : 100,
      checked && c * 100 < min * t ? "   under " min "%" : ""
    return checked && c * 100 < min * t
  }
  BEGIN { printf "%-22s %6s %8s %8s\n", "file", "lines", "covered", "cover" }
  {
    low_files += row($1, $2, $3, min_file, $1 ~ /\.c$/)
    lines += $2; covered += $3
  }
  END {
    low_total = row("client/ total", lines, covered, min_total, 1)
    if (low_total)
      printf "FAIL: client/ total under %d%%\n", min_total
    if (low_files)
      printf "FAIL: %d of client/*.c under %d%%\n", low_files, min_file
    if (!low_total && !low_files)
      printf "OK: client/ at least %d%%, each client/*.c at least %d%%\n",
        min_total, min_file
    exit low_total || low_files
  }' "$counts"
status=$?

if [ "$check" -ne 0 ]; then
  echo "FAIL: make check failed (see $dir/check.out): coverage is partial"
  status=1
fi
exit "$status"
