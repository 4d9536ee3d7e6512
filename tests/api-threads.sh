#!/bin/sh
# One handle, several threads issuing blocking and polled reads; then a
# handle dying while another thread waits on it.
. "${srcdir:-.}/functions.sh"
requires nbdkit timeout
requires_nbdkit_filter delay
requires_nbdkit_plugin sh
api_prog api-threads
tmpdir_setup
start_nbdkit pat pattern 64M
# Each killed (kill -9) by the test while a thread waits for a read.
start_nbdkit dly1 --filter=delay pattern 1M delay-read=10
start_nbdkit dly2 --filter=delay pattern 1M delay-read=10
# Holds every read 2 s in a subprocess, which a client's end of file does
# not cut short (the delay filter's sleep would be): so only the library
# can wake a thread waiting on this socket early.
cat >"$tmpdir/slow.sh" <<'EOF2'
#!/bin/sh
case "$1" in
  thread_model) echo parallel ;;
  get_size) echo 1048576 ;;
  pread) sleep 2; head -c "$3" /dev/zero ;;
  *) exit 2 ;;
esac
EOF2
chmod +x "$tmpdir/slow.sh"
start_nbdkit dly3 sh "$tmpdir/slow.sh"
start_nbdkit one -t 1 --filter=delay memory 64M delay-read=2
cat >"$tmpdir/slow-at-0.sh" <<'EOF2'
#!/bin/sh
case "$1" in
  thread_model) echo parallel ;;
  get_size) echo 1048576 ;;
  pread)
    case "$4" in
      0) sleep 2 ;;
      8192) echo "EIO injected by the test" >&2; exit 1 ;;
    esac
    head -c "$3" /dev/zero ;;
  *) exit 2 ;;
esac
EOF2
chmod +x "$tmpdir/slow-at-0.sh"
start_nbdkit slow0 sh "$tmpdir/slow-at-0.sh"
tap_run "threads" "$prog" "$tmpdir/pat.sock" \
  "$tmpdir/dly1.sock" "$tmpdir/dly1.pid" "$tmpdir/dly2.sock" "$tmpdir/dly2.pid" \
  "$tmpdir/dly3.sock" "$tmpdir/one.sock" "$tmpdir/slow0.sock"
tap_done
