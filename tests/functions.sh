# Shared helpers for shell tests: sourced, never run.
#
# A test script does:
#
#   . "${srcdir:-.}/functions.sh"
#   requires nbdkit
#   tmpdir_setup
#   start_nbdkit pat pattern 1M         # serves $tmpdir/pat.sock
#   api_prog api-read                   # sets $prog
#   tap_run "pattern reads" "$prog" pattern "$tmpdir/pat.sock"
#   tap_done
#
# Output is TAP for automake's tap-driver.sh.  Test programs print
# unnumbered "ok - ..." / "not ok - ..." lines; tap_run passes them on and
# counts them, and tap_done prints the plan at the end.  A test that cannot
# run prints "1..0 # SKIP reason" and exits 77 (tests/run-test turns that
# into a skip for tap-driver.sh).
#
# Servers are started in the background on Unix sockets in $tmpdir, waited
# for, and killed by pid when the script exits.

tmpdir=
_pids=
_tap_count=0
_tap_started=false

# Print "1..0 # SKIP reason" and exit 77: the whole file is skipped.
skip_all ()
{
  if $_tap_started; then
    # Too late for a skip plan: record why the rest did not run.
    tap_result "ok" "remaining tests # SKIP $*"
    tap_done
  else
    echo "1..0 # SKIP $*"
  fi
  exit 77
}

# requires CMD...: skip the whole file unless every CMD is available.
requires ()
{
  for _cmd in "$@"; do
    command -v "$_cmd" >/dev/null 2>&1 || skip_all "$_cmd not installed"
  done
}

# requires_nbdkit_plugin NAME / requires_nbdkit_filter NAME
requires_nbdkit_plugin ()
{
  nbdkit "$1" --version >/dev/null 2>&1 ||
    skip_all "nbdkit $1 plugin not installed"
}

requires_nbdkit_filter ()
{
  nbdkit --filter="$1" null --version >/dev/null 2>&1 ||
    skip_all "nbdkit $1 filter not installed"
}

# Kill every server this script started, then remove the temp dir.
_cleanup ()
{
  _status=$?
  for _p in $_pids; do
    kill "$_p" 2>/dev/null
  done
  # Give them a moment to go, then make sure.
  for _p in $_pids; do
    _i=0
    while kill -0 "$_p" 2>/dev/null && [ $_i -lt 50 ]; do
      sleep 0.1
      _i=$((_i + 1))
    done
    kill -9 "$_p" 2>/dev/null
  done
  if [ -n "$tmpdir" ] && [ -d "$tmpdir" ]; then
    rm -rf "$tmpdir"
  fi
  exit $_status
}

# Make $tmpdir (removed, with all servers killed, when the script exits).
tmpdir_setup ()
{
  tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/nbdc-test.XXXXXXXXXX") ||
    { echo "Bail out! mktemp failed"; exit 1; }
  trap _cleanup EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Remember a pid to kill at exit.
add_pid ()
{
  _pids="$_pids $1"
}

# wait_for_socket SOCK [PID [PIDFILE]]: wait up to 60 s for SOCK (and
# PIDFILE, which servers write once they accept connections) to appear;
# fail early if PID dies first.
wait_for_socket ()
{
  _i=0
  while [ $_i -lt 600 ]; do
    if [ -S "$1" ] && { [ -z "$3" ] || [ -s "$3" ]; }; then
      return 0
    fi
    if [ -n "$2" ] && ! kill -0 "$2" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
    _i=$((_i + 1))
  done
  return 1
}

# start_nbdkit NAME [NBDKIT-ARGS...]: run nbdkit on $tmpdir/NAME.sock.
# Sets server_pid.  Bails out if the server does not come up.
start_nbdkit ()
{
  _name=$1; shift
  nbdkit --exit-with-parent -f -U "$tmpdir/$_name.sock" \
    -P "$tmpdir/$_name.pid" "$@" >"$tmpdir/$_name.log" 2>&1 &
  server_pid=$!
  add_pid $server_pid
  wait_for_socket "$tmpdir/$_name.sock" $server_pid "$tmpdir/$_name.pid" ||
    _server_failed "nbdkit $*" "$tmpdir/$_name.log"
}

# start_nbdkit_tcp NAME [NBDKIT-ARGS...]: run nbdkit on 127.0.0.1 at a
# free port, trying a few random ports.  Sets server_pid and tcp_port;
# returns 1 (tcp_port empty) if no port could be had.
start_nbdkit_tcp ()
{
  _name=$1; shift
  tcp_port=
  for _try in 1 2 3 4 5 6 7 8 9 10; do
    _port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000 ))
    rm -f "$tmpdir/$_name.pid"
    nbdkit --exit-with-parent -f -i 127.0.0.1 -p $_port \
      -P "$tmpdir/$_name.pid" "$@" >"$tmpdir/$_name.log" 2>&1 &
    server_pid=$!
    # nbdkit writes its pid file once it listens; it exits if the
    # port is taken.
    _i=0
    while [ $_i -lt 600 ]; do
      if [ -s "$tmpdir/$_name.pid" ]; then
        add_pid $server_pid
        tcp_port=$_port
        return 0
      fi
      kill -0 $server_pid 2>/dev/null || break
      sleep 0.1
      _i=$((_i + 1))
    done
    kill $server_pid 2>/dev/null
    wait $server_pid 2>/dev/null
  done
  return 1
}

# start_qemu_nbd NAME FILE [QEMU-NBD-ARGS...]: serve raw FILE read-only
# on $tmpdir/NAME.sock, persistent (many clients in turn).
start_qemu_nbd ()
{
  _name=$1; _file=$2; shift 2
  start_qemu_nbd_opts "$_name" "$_file" -f raw -r "$@"
}

# start_qemu_nbd_opts NAME FILE OPTIONS...: qemu-nbd with only these
# options (format, read-only ...) on $tmpdir/NAME.sock.
start_qemu_nbd_opts ()
{
  _name=$1; _file=$2; shift 2
  qemu-nbd -k "$tmpdir/$_name.sock" --pid-file="$tmpdir/$_name.pid" \
    -t "$@" "$_file" >"$tmpdir/$_name.log" 2>&1 &
  server_pid=$!
  add_pid $server_pid
  wait_for_socket "$tmpdir/$_name.sock" $server_pid "$tmpdir/$_name.pid" ||
    _server_failed "qemu-nbd $*" "$tmpdir/$_name.log"
}

# start_nbd_server NAME FILE [READONLY]: serve FILE (read-only unless
# READONLY is false) as export "export" on
# $tmpdir/NAME.sock.  nbd-server always daemonizes (-d serves a single
# connection), so its pid comes from the pid file.
start_nbd_server ()
{
  _name=$1; _file=$2; _readonly=${3:-true}
  cat >"$tmpdir/$_name.conf" <<EOF
[generic]
  unixsock = $tmpdir/$_name.sock
  allowlist = true
[export]
  exportname = $_file
  readonly = $_readonly
EOF
  nbd-server -C "$tmpdir/$_name.conf" -p "$tmpdir/$_name.pid" \
    >"$tmpdir/$_name.log" 2>&1 ||
    _server_failed "nbd-server" "$tmpdir/$_name.log"
  _i=0
  while [ $_i -lt 600 ]; do
    if [ -s "$tmpdir/$_name.pid" ] && [ -S "$tmpdir/$_name.sock" ]; then
      server_pid=$(cat "$tmpdir/$_name.pid")
      add_pid $server_pid
      return 0
    fi
    sleep 0.1
    _i=$((_i + 1))
  done
  _server_failed "nbd-server" "$tmpdir/$_name.log"
}

_server_failed ()
{
  echo "# server did not start: $1"
  sed 's/^/# /' "$2" 2>/dev/null
  echo "Bail out! could not start $1"
  exit 1
}

# make_sparse_file FILE: 1 MiB with data at [0, 64K), [256K, 320K) and
# [1M-4K, 1M); holes elsewhere.  The byte at offset o is (o * 7 + 3) & 255:
# a 256-byte period, so every range is the same block repeated.
make_sparse_file ()
{
  rm -f "$1" "$1.blk"
  truncate -s 1M "$1" || return 1
  _fmt=
  _i=0
  while [ $_i -lt 256 ]; do
    _fmt="$_fmt\\$(printf %03o $(( (_i * 7 + 3) % 256 )))"
    _i=$((_i + 1))
  done
  printf "$_fmt" >"$1.blk"
  _i=0
  while [ $_i -lt 8 ]; do            # 256 << 8 = 64 KiB
    cat "$1.blk" "$1.blk" >"$1.tmp" && mv "$1.tmp" "$1.blk"
    _i=$((_i + 1))
  done
  for _range in 0:65536 262144:65536 1044480:4096; do
    _off=${_range%:*}
    _len=${_range#*:}
    head -c $_len "$1.blk" |
      dd of="$1" bs=4096 seek=$((_off / 4096)) conv=notrunc status=none ||
      return 1
  done
  rm -f "$1.blk"
}

# api_prog NAME: set $prog to the build of NAME under test: NAME-nbdc
# (libnbdc, the default) or NAME-libnbd with API_VARIANT=libnbd.  Skips
# the file when that build does not exist.
api_prog ()
{
  prog="${builddir:-.}/$1-${API_VARIANT:-nbdc}"
  [ -x "$prog" ] || skip_all "$prog not built"
}

# tap_result "ok"|"not ok" DESCRIPTION
tap_result ()
{
  _tap_started=true
  _tap_count=$((_tap_count + 1))
  echo "$1 - $2"
}

# tap_run DESCRIPTION PROGRAM [ARGS...]: run a program printing unnumbered
# TAP lines; pass them on and count them.  A crash, a timeout or a run that
# reports nothing is a failure of its own.  $NBDC_VALGRIND, when set, is the
# valgrind command line to run the program under (build.sh test sets it).
tap_run ()
{
  _desc=$1; shift
  _tap_started=true
  _out="$tmpdir/tap-run.out"
  timeout $((120 * ${NBDC_SLOWDOWN:-1})) $NBDC_VALGRIND "$@" >"$_out"
  _st=$?
  cat "$_out"
  _n=$(grep -cE '^(not )?ok( |$)' "$_out")
  _tap_count=$((_tap_count + _n))
  if [ $_st -ne 0 ]; then
    tap_result "not ok" "$_desc: $1 exited with status $_st"
  elif [ "$_n" -eq 0 ]; then
    tap_result "not ok" "$_desc: $1 reported no results"
  fi
}

# Print the plan (at the end: TAP allows it there).
tap_done ()
{
  # Proxies a plugin test left running are stopped, so that every one
  # gets its exit checked (valgrind, sanitizers).
  if type stop_proxies >/dev/null 2>&1; then
    stop_proxies
  fi
  echo "1..$_tap_count"
}
