#!/usr/bin/env bash
# nbd-proxy tests: TLS with X.509 certificates and PSK (api-tls.c) against
# nbdkit on Unix sockets and TCP, and qemu-nbd (optional); the keys and
# certificates are made here (tls-functions.sh).

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/tls-functions.sh"

requires nbdkit timeout od
requires_tls_tools
requires_nbdkit_plugin memory
api_prog api-tls
tmpdir_setup
make_tls_keys

# nbdkit built without GnuTLS cannot serve TLS: skip.
nbdkit --dump-config 2>/dev/null | grep -q '^tls=yes' ||
  skip_all "nbdkit has no TLS"

start_nbdkit x509 --tls=require --tls-certificates="$tls/server" memory 64M
start_nbdkit x509-peer --tls=require --tls-certificates="$tls/server" \
  --tls-verify-peer memory 64M
start_nbdkit psk --tls=require --tls-psk="$tls/keys.psk" memory 64M
start_nbdkit plain --tls=off memory 64M
for name in expired untrusted wronghost; do
  start_nbdkit $name --tls=require --tls-certificates="$tls/$name" \
    memory 64M
done
for name in x509 expired untrusted wronghost; do
  dir=$name
  [ $name = x509 ] && dir=server
  start_nbdkit_tls_tcp tcp-$name --tls=require \
    --tls-certificates="$tls/$dir" memory 64M
  echo "$tcp_port" >"$tmpdir/tcp-$name.port"
done

# qemu-nbd: X.509 and PSK, if this build can (else api-tls skips them).
if command -v qemu-nbd >/dev/null 2>&1 &&
   truncate -s 64M "$tmpdir/qemu-x509.img" "$tmpdir/qemu-psk.img"; then
  for kind in x509 psk; do
    creds_dir=$tls/server
    [ $kind = psk ] && creds_dir=$tls/qemu-psk
    qemu-nbd -k "$tmpdir/qemu-$kind.sock" --pid-file="$tmpdir/qemu-$kind.pid" \
      -f raw -t \
      --object tls-creds-$kind,id=tls0,endpoint=server,dir="$creds_dir" \
      --tls-creds tls0 "$tmpdir/qemu-$kind.img" \
      >"$tmpdir/qemu-$kind.log" 2>&1 &
    server_pid=$!
    add_pid $server_pid
    if ! wait_for_socket "$tmpdir/qemu-$kind.sock" $server_pid \
         "$tmpdir/qemu-$kind.pid"; then
      echo "# qemu-nbd cannot serve TLS ($kind):"
      sed 's/^/# /' "$tmpdir/qemu-$kind.log"
      rm -f "$tmpdir/qemu-$kind.sock"
    fi
  done
fi

tap_run "TLS" "$prog" "$tmpdir"
tap_done
