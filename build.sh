#!/usr/bin/env bash
# nbd-proxy: set up, build, run and test, on a fresh Debian machine as root.
#
#   ./build.sh run [URI]   build, then serve URI through the proxy plugin
#                          on a Unix socket until Ctrl-C (no URI: an
#                          embedded nbdkit memory upstream)
#   ./build.sh test        build, run the whole suite (plain, under
#                          valgrind, then built with
#                          -fsanitize=address,undefined); ends with
#                          "N passed, N failed, N skipped"
#   ./build.sh serve [URI] what run does after building, with the build
#                          in $NBD_PROXY_BUILD (default _build): for the
#                          test of run (tests/build-run.sh)
#
# Both install missing Debian packages, and reuse earlier builds.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

run_packages=(autoconf automake libtool pkg-config gcc make
              libgnutls28-dev nbdkit nbdkit-plugin-dev)
test_packages=("${run_packages[@]}" libnbd-dev libnbd-bin qemu-utils
               nbd-server gnutls-bin valgrind clang libclang-rt-14-dev
               gcovr fio libglib2.0-dev)

install_packages () {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "build.sh: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: need root to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# What configure found depends on the installed packages (libnbd-dev turns
# on the differential tests): a tree configured under another set is
# configured again.  The stamp is the name and version of each package.
packages_stamp () {
  dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' \
    "${test_packages[@]}" 2>/dev/null || true
}

# build DIR [configure args...]
build () {
  local dir=$1; shift
  if [ ! -x configure ] || [ configure.ac -nt configure ]; then
    autoreconf -fi
  fi
  mkdir -p "$dir"
  packages_stamp >"$dir/packages.new"
  if [ ! -f "$dir/Makefile" ] || [ ! -x "$dir/config.status" ]; then
    (cd "$dir" && ../configure --enable-werror "$@")
  elif ! cmp -s "$dir/packages.new" "$dir/packages.stamp"; then
    echo "build.sh: packages changed since $dir was configured: reconfiguring"
    (cd "$dir" && ./config.status --recheck && ./config.status)
  fi
  mv "$dir/packages.new" "$dir/packages.stamp"
  make -C "$dir" -j"$jobs" >/dev/null
}

# Count TAP results in a build tree: prints "pass fail skip".
count_results () {
  local pass=0 fail=0 skip=0 f
  while IFS= read -r f; do
    pass=$((pass + $(grep -c '^:test-result: \(PASS\|XFAIL\)' "$f" || true)))
    fail=$((fail + $(grep -c '^:test-result: \(FAIL\|XPASS\|ERROR\)' "$f" || true)))
    skip=$((skip + $(grep -c '^:test-result: SKIP' "$f" || true)))
  done < <(find "$1" -name '*.trs')
  echo "$pass $fail $skip"
}

# check DIR LABEL: make check, report, remember the counts.
total_pass=0 total_fail=0 total_skip=0 status=0
check () {
  local dir=$1 label=$2 rc=0 p f s
  echo "=== $label: make check"
  find "$dir" -name '*.trs' -delete
  make -C "$dir" -j"$jobs" check || rc=$?
  read -r p f s < <(count_results "$dir")
  echo "=== $label: $p passed, $f failed, $s skipped"
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1     # make check failed without a failing test: count it
  fi
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
    status=1
    grep -E '^(FAIL|ERROR)' "$dir/tests/test-suite.log" 2>/dev/null || true
    find "$dir/tests" -name '*.log' ! -name test-suite.log -exec \
      grep -l '^not ok\|^Bail out' {} + 2>/dev/null | while read -r log; do
        echo "--- $log"; tail -n 40 "$log"; done || true
  fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  total_skip=$((total_skip + s))
}

# serve [URI]: nbdkit with the plugin in front of URI (or of an embedded
# upstream) on a Unix socket; read a little through it; say how to connect;
# serve until Ctrl-C.
serve () {
  local bdir=${NBD_PROXY_BUILD:-$top/_build}
  local plugin=$bdir/plugin/.libs/nbd-proxy.so tmp upstream sock
  local uri proxy_pid up_pid=
  if [ ! -f "$plugin" ]; then
    echo "build.sh: the plugin was not built (is nbdkit-plugin-dev installed?)" >&2
    exit 1
  fi
  tmp=$(mktemp -d /tmp/nbd-proxy.XXXXXX)
  sock=$tmp/nbd-proxy.sock
  trap 'kill $proxy_pid $up_pid 2>/dev/null; wait; rm -rf "$tmp"; exit 0' \
    INT TERM
  if [ $# -eq 0 ]; then
    # A writable 1 GiB disk in memory with a greeting at its start.
    upstream="nbd+unix:///?socket=$tmp/upstream.sock"
    nbdkit --exit-with-parent -f -U "$tmp/upstream.sock" \
      -P "$tmp/upstream.pid" data data='"Hello from nbd-proxy!" 10' \
      size=1G &
    up_pid=$!
    while [ ! -s "$tmp/upstream.pid" ]; do sleep 0.1; done
    echo "upstream: nbdkit data (1 GiB, in memory) at $upstream"
  else
    upstream=$1
    echo "upstream: $upstream"
  fi
  nbdkit --exit-with-parent -f -U "$sock" -P "$tmp/proxy.pid" \
    "$plugin" uri="$upstream" &
  proxy_pid=$!
  while [ ! -s "$tmp/proxy.pid" ]; do
    kill -0 $proxy_pid 2>/dev/null || { rm -rf "$tmp"; exit 1; }
    sleep 0.1
  done
  uri="nbd+unix:///?socket=$sock"
  echo "nbd-proxy serves it at $uri"
  echo "the first 64 bytes, read through the proxy by examples/nbdc-cat:"
  # nbdc-cat reads whole exports: a second nbdkit cuts this one to 64
  # bytes (--filter=truncate over the plugin again) for it.
  nbdkit -U - --filter=truncate "$plugin" uri="$uri" truncate=64 \
    --run "'$bdir/examples/nbdc-cat' -o '$tmp/first' \"\$uri\"" \
    >/dev/null && od -A d -c "$tmp/first" | sed 's/^/  /'
  cat <<EOT

Connect to it with, for example:
  nbdinfo '$uri'
  qemu-img info '$uri'
  qemu-system-x86_64 -m 1G -drive file='$uri',format=raw,if=virtio
  nbdkit ... nbd-proxy: see docs/nbdkit-nbd-proxy-plugin.1
Serving until Ctrl-C.
EOT
  wait $proxy_pid
  kill $up_pid 2>/dev/null
  wait
  rm -rf "$tmp"
}

cmd=${1:-}
case "$cmd" in
  run)
    install_packages "${run_packages[@]}"
    build _build
    shift
    serve "$@"
    ;;
  serve)
    shift
    serve "$@"
    ;;
  test)
    install_packages "${test_packages[@]}"
    build _build
    NBDC_FUZZ_SECONDS=${NBDC_FUZZ_SECONDS:-60} check _build "plain build"
    NBDC_VALGRIND="valgrind --quiet --error-exitcode=97 --leak-check=full \
--show-leak-kinds=definite --errors-for-leak-kinds=definite" \
    NBDC_SLOWDOWN=10 \
      check _build "valgrind"
    build _build-sanitize \
      CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      check _build-sanitize "address+undefined sanitizers"
    echo "$total_pass passed, $total_fail failed, $total_skip skipped"
    exit $status
    ;;
  *)
    echo "usage: $0 run [URI] | test | serve [URI]" >&2
    exit 2
    ;;
esac
