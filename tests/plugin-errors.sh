#!/usr/bin/env bash
# nbd-proxy plugin: an error the upstream returns reaches the host client
# unchanged (nbdkit --filter=error upstream; qemu-io prints the errno), and
# the proxy keeps serving once the upstream stops failing.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires qemu-io
requires_nbdkit_filter error
tmpdir_setup

# The message qemu-io prints for a read (errors end with the strerror).
read_result ()
{
  qemu-io -f raw -r -c 'read 4096 4096' "$1" 2>&1 | head -n 1 |
    sed 's/ *([0-9.]* [KMG]*i*B\/sec.*//'
}

touch "$tmpdir/fail"
for err in EIO EPERM ENOMEM EINVAL ENOSPC ESHUTDOWN; do
  # Reads fail with $err while $tmpdir/fail exists.
  start_nbdkit "up$err" --filter=error pattern 1M error-pread="$err" \
    error-pread-rate=1 error-pread-file="$tmpdir/fail"
  start_proxy "px$err" socket="$tmpdir/up$err.sock"
  want=$(read_result "nbd+unix:///?socket=$tmpdir/up$err.sock")
  got=$(read_result "$(proxy_uri "px$err")")
  case $want in
    *"read failed"*) same "upstream $err: the client sees the same error" \
                       "$got" "$want" ;;
    *) tap_result "not ok" "upstream $err: the error filter failed the read"
       echo "# $want" ;;
  esac
done

rm -f "$tmpdir/fail"
got=$(read_result "$(proxy_uri pxEIO)")
case $got in
  "read 4096/4096 bytes at offset 4096") tap_result "ok" "reads work again" ;;
  *) tap_result "not ok" "reads work again"; echo "# $got" ;;
esac

for err in EIO EPERM ENOMEM EINVAL ENOSPC ESHUTDOWN; do
  stop_proxy "px$err"
done
tap_done
