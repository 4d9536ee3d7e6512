# Helpers for the nbd-proxy plugin tests: sourced after functions.sh.
#
#   requires_proxy                      # skip unless the plugin was built
#   start_proxy px uri=nbd+unix:///?socket=$tmpdir/up.sock
#   proxy_uri px                        # nbd+unix:///?socket=$tmpdir/px.sock
#   stop_proxy px                       # SIGTERM; fails the test if nbdkit
#                                       # (or valgrind) exited with an error
#
# Under the valgrind pass ($NBDC_VALGRIND) the proxy's nbdkit runs under
# valgrind, the plugin kept loaded at exit (NBDKIT_VALGRIND=1) so leaks
# show where they come from.  In the sanitizer build the plugin needs its
# runtime first in the process: nbdkit runs with LD_PRELOAD of the
# libasan/libubsan the plugin links (and without LeakSanitizer, which
# cannot tell nbdkit's exit-time leaks from the plugin's).

plugin=${top_builddir:-..}/plugin/.libs/nbd-proxy.so

requires_proxy ()
{
  requires nbdkit
  [ -f "$plugin" ] || skip_all "plugin not built (no nbdkit-plugin.h?)"
  _proxy_preload=$(ldd "$plugin" 2>/dev/null |
    awk '/lib(asan|ubsan)\.so/ { print $3 }' | tr '\n' ':')
}

# Replace this (sub)shell by nbdkit, run as the pass needs it.
proxy_exec_nbdkit ()
{
  if [ -n "$NBDC_VALGRIND" ]; then
    NBDKIT_VALGRIND=1 exec $NBDC_VALGRIND \
      --suppressions="${srcdir:-.}/plugin-valgrind.supp" nbdkit "$@"
  elif [ -n "$_proxy_preload" ]; then
    # LeakSanitizer would see nbdkit's own leaks at exit too, and cannot
    # be limited to the plugin: leaks are the valgrind pass's job here.
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
      LD_PRELOAD="$_proxy_preload" exec nbdkit "$@"
  else
    exec nbdkit "$@"
  fi
}

# nbdkit with the plugin in the foreground (for start-up checks).
proxy_nbdkit ()
{
  ( proxy_exec_nbdkit "$@" )
}

# proxy_has KEY=VALUE: does --dump-plugin say so?  (has_pwrite=1 tells
# whether libnbdc had nbd_pwrite when the plugin was built.)
proxy_has ()
{
  LD_PRELOAD="$_proxy_preload" nbdkit --dump-plugin "$plugin" 2>/dev/null |
    grep -qx "$1"
}

# requires_proxy_has KEY=VALUE FUNCTION: skip the file unless the plugin
# was built with the libnbdc FUNCTION behind that callback.
requires_proxy_has ()
{
  proxy_has "$1" ||
    skip_all "libnbdc has no $2 yet (plugin built without it)"
}

# start_proxy NAME [NBDKIT-OPTIONS...] -- [PLUGIN-KEYS...]
# or start_proxy NAME [PLUGIN-KEYS...] (no nbdkit options).
# Serves on $tmpdir/NAME.sock; sets proxy_pid.  Bails out if nbdkit does
# not come up.
start_proxy ()
{
  _name=$1; shift
  _opts=
  case " $* " in
    *" -- "*)
      while [ "$1" != "--" ]; do _opts="$_opts $1"; shift; done
      shift ;;
  esac
  rm -f "$tmpdir/$_name.sock" "$tmpdir/$_name.pid"
  proxy_exec_nbdkit --exit-with-parent -f -U "$tmpdir/$_name.sock" \
    -P "$tmpdir/$_name.pid" $_opts "$plugin" "$@" \
    >"$tmpdir/$_name.log" 2>&1 &
  proxy_pid=$!
  add_pid $proxy_pid
  eval "_proxy_pid_$_name=$proxy_pid"
  _proxies="$_proxies $_name"
  wait_for_socket "$tmpdir/$_name.sock" $proxy_pid "$tmpdir/$_name.pid" ||
    _server_failed "nbdkit nbd-proxy $*" "$tmpdir/$_name.log"
}

proxy_uri ()
{
  echo "nbd+unix:///${2:-}?socket=$tmpdir/$1.sock"
}

# stop_proxy NAME: SIGTERM, wait; a TAP line saying whether nbdkit (and
# valgrind, or the sanitizers) exited cleanly.  With the sanitizer runtime
# preloaded nbdkit can deadlock inside exit() (p11-kit's destructor calls
# freelocale, which waits for glibc's locale lock; not the plugin): there,
# a proxy still alive 5 s after SIGTERM whose log has no sanitizer report
# is killed and passes, with a note.
stop_proxy ()
{
  _proxies=$(echo " $_proxies " | sed "s/ $1 / /")
  eval "_p=\$_proxy_pid_$1"
  kill -TERM "$_p" 2>/dev/null
  _note=
  if [ -n "$_proxy_preload" ]; then
    _i=0
    while kill -0 "$_p" 2>/dev/null && [ $_i -lt 50 ]; do
      sleep 0.1; _i=$((_i + 1))
    done
    if kill -0 "$_p" 2>/dev/null &&
       ! grep -q 'Sanitizer\|runtime error:' "$tmpdir/$1.log"; then
      kill -9 "$_p" 2>/dev/null
      wait "$_p" 2>/dev/null
      tap_result "ok" "proxy $1 exits cleanly (hung in exit() under ASan: killed)"
      return
    fi
  fi
  wait "$_p"
  _st=$?
  if [ $_st -eq 0 ]; then
    tap_result "ok" "proxy $1 exits cleanly"
  else
    tap_result "not ok" "proxy $1 exits cleanly (status $_st)"
    sed 's/^/# /' "$tmpdir/$1.log" | tail -n 40
  fi
}

# stop_proxies: stop_proxy every proxy still running (tap_done calls it).
stop_proxies ()
{
  for _px in $_proxies; do
    stop_proxy "$_px"
  done
}

# session NAME FD URI [rw]: a qemu-io on URI (read-only unless rw) reading
# commands from $tmpdir/NAME.in, which the shell writes through FD.
session ()
{
  mkfifo "$tmpdir/$1.in"
  _ro=-r
  [ "${4:-}" = rw ] && _ro=
  qemu-io -f raw $_ro "$3" <"$tmpdir/$1.in" >"$tmpdir/$1.out" 2>&1 &
  add_pid $!
  eval "exec ${2}>\"\$tmpdir/\$1.in\""
  # Its first prompt, so that ask counts prompts from a known start.
  _i=0
  while ! grep -q 'qemu-io>' "$tmpdir/$1.out" 2>/dev/null &&
        [ $_i -lt $((300 * ${NBDC_SLOWDOWN:-1})) ]; do
    sleep 0.1; _i=$((_i + 1))
  done
}
# ask FD NAME COMMAND: run COMMAND in the session; wait for its answer.
ask ()
{
  _n=$(grep -c 'qemu-io>' "$tmpdir/$2.out" 2>/dev/null)
  echo "$3" >&"$1"
  _i=0
  while [ $_i -lt $((300 * ${NBDC_SLOWDOWN:-1})) ]; do
    [ "$(grep -o 'qemu-io>' "$tmpdir/$2.out" | wc -l)" -gt "$_n" ] && break
    sleep 0.1; _i=$((_i + 1))
  done
  # The answer: what came after the prompt that preceded the command.
  awk -v n=$((_n + 1)) 'BEGIN { RS = "qemu-io> " } NR == n' \
    "$tmpdir/$2.out"
}

# check NAME COMMAND...: a TAP line for the command's success.
check ()
{
  _desc=$1; shift
  if "$@" >"$tmpdir/check.out" 2>&1; then
    tap_result "ok" "$_desc"
  else
    tap_result "not ok" "$_desc"
    sed 's/^/# /' "$tmpdir/check.out" | tail -n 20
  fi
}

# same NAME A B: a TAP line for two strings being equal.
same ()
{
  if [ "$2" = "$3" ]; then
    tap_result "ok" "$1"
  else
    tap_result "not ok" "$1"
    echo "# got:      $2" | head -n 20
    echo "# expected: $3" | head -n 20
  fi
}

# checksum URI: md5 of the whole export, read by nbdcopy.
checksum ()
{
  nbdcopy "$1" - | md5sum | cut -d' ' -f1
}

# fails DESCRIPTION EXPECTED-TEXT KEYS...: nbdkit refuses to start, with
# one error line containing EXPECTED-TEXT.
#
# In the sanitizer build nbdkit (with libasan preloaded) can deadlock in
# exit(), in p11-kit's destructor (freelocale waits for the locale lock),
# after a message that used strerror: there, once the error line is out
# and nbdkit has not exited 3 s later, it is killed and counts as exited.
fails ()
{
  _desc=$1; _want=$2; shift 2
  ( proxy_exec_nbdkit -f -U "$tmpdir/never.sock" "$plugin" "$@" ) \
    >"$tmpdir/fail.out" 2>&1 &
  _fp=$!
  _i=0 _st=
  while [ $_i -lt 600 ]; do
    if ! kill -0 $_fp 2>/dev/null; then
      wait $_fp; _st=$?; break
    fi
    if [ -n "$_proxy_preload" ] && [ $_i -ge 30 ] &&
       grep -q 'error:' "$tmpdir/fail.out"; then
      kill -9 $_fp 2>/dev/null; wait $_fp 2>/dev/null; _st=1
      echo "# nbdkit hung in exit (sanitizer build): killed" >>"$tmpdir/fail.out"
      break
    fi
    sleep 0.1; _i=$((_i + 1))
  done
  [ -n "$_st" ] || { kill -9 $_fp; wait $_fp 2>/dev/null; _st=124; }
  _errors=$(grep -c 'error:' "$tmpdir/fail.out")
  # Refused, not crashed: valgrind's error status (97 in build.sh) or a
  # sanitizer report is a failure of its own.
  if [ $_st -ne 0 ] && [ $_st -ne 124 ] && [ $_st -ne 97 ] &&
     [ "$_errors" -eq 1 ] && grep -q -- "$_want" "$tmpdir/fail.out" &&
     ! grep -q 'Sanitizer\|runtime error:\|^==[0-9]*== ' "$tmpdir/fail.out"
  then
    tap_result "ok" "$_desc"
  else
    tap_result "not ok" "$_desc (status $_st)"
    sed 's/^/# /' "$tmpdir/fail.out" | tail -n 20
  fi
}
