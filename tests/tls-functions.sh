# Shared helpers for TLS tests: sourced after functions.sh, never run.
#
#   . "${srcdir:-.}/functions.sh"
#   . "${srcdir:-.}/tls-functions.sh"
#   requires_tls_tools
#   tmpdir_setup
#   make_tls_keys                       # sets $tls
#
# make_tls_keys makes, with certtool(1) and psktool(1), under $tls
# ($tmpdir/tls):
#
#   ca/          the test CA: ca-cert.pem, ca-key.pem
#   server/      what nbdkit --tls-certificates and qemu-nbd's
#                tls-creds-x509 dir= expect: ca-cert.pem, server-cert.pem
#                (CN localhost, DNS localhost, IP 127.0.0.1), server-key.pem
#   client/      what nbd_set_tls_certificates(3) expects: ca-cert.pem,
#                client-cert.pem, client-key.pem (signed by the CA)
#   client-nocert/  ca-cert.pem only: verifies the server, no client cert
#   expired/     a server dir whose certificate (signed by the CA) expired
#                in 2002
#   untrusted/   a server dir of a second CA: its ca-cert.pem, and a
#                server certificate for localhost signed by it
#   wronghost/   a server dir whose certificate (signed by the CA) is for
#                wrong.invalid only: no localhost, no 127.0.0.1
#   keys.psk     PSK file: user alice
#   other.psk    user alice, another key
#   bob.psk      user bob (the servers know no bob)
#   qemu-psk/    keys.psk (alice) in a dir, for qemu-nbd's tls-creds-psk
#
# Keys are ECDSA P-256: generated in milliseconds.  The files are made
# once per script (a second call returns at once).  All certificates but
# the expired one are valid from an hour ago for two days.

tls=

# Skip the file unless certtool and psktool are there.
requires_tls_tools ()
{
  requires certtool psktool
}

# _tls_key FILE: a new ECDSA P-256 private key.
_tls_key ()
{
  certtool --generate-privkey --key-type=ecdsa --bits=256 \
    --outfile "$1" >/dev/null 2>&1
}

# _tls_ca DIR CN: a self-signed CA in DIR (ca-cert.pem, ca-key.pem).
_tls_ca ()
{
  mkdir -p "$1" &&
  _tls_key "$1/ca-key.pem" &&
  cat >"$1/ca.info" <<EOF &&
cn = "$2"
ca
cert_signing_key
expiration_days = 2
EOF
  certtool --generate-self-signed --load-privkey "$1/ca-key.pem" \
    --template "$1/ca.info" --outfile "$1/ca-cert.pem" >/dev/null 2>&1
}

# _tls_cert CADIR OUT-CERT OUT-KEY TEMPLATE-LINES: a certificate signed
# by the CA in CADIR, from a certtool template given as text.
_tls_cert ()
{
  _tls_key "$3" &&
  printf '%s\n' "$4" >"$3.info" &&
  certtool --generate-certificate --load-privkey "$3" \
    --load-ca-certificate "$1/ca-cert.pem" \
    --load-ca-privkey "$1/ca-key.pem" \
    --template "$3.info" --outfile "$2" >/dev/null 2>&1 &&
  rm -f "$3.info"
}

# The template of a server certificate for localhost and 127.0.0.1.
_tls_localhost='organization = "nbd-proxy tests"
cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
tls_www_server
encryption_key
signing_key
expiration_days = 2'

# _tls_server_dir DIR CADIR TEMPLATE: a server dir (ca-cert.pem,
# server-cert.pem, server-key.pem) with a certificate from CADIR's CA.
_tls_server_dir ()
{
  mkdir -p "$1" &&
  cp "$2/ca-cert.pem" "$1/ca-cert.pem" &&
  _tls_cert "$2" "$1/server-cert.pem" "$1/server-key.pem" "$3"
}

# make_tls_keys: make everything above under $tmpdir/tls; sets $tls.
# Bails out if a tool fails.
make_tls_keys ()
{
  tls=$tmpdir/tls
  [ -s "$tls/done" ] && return 0
  mkdir -p "$tls" &&
  _tls_ca "$tls/ca" "nbd-proxy test CA" &&
  _tls_server_dir "$tls/server" "$tls/ca" "$_tls_localhost" &&
  mkdir -p "$tls/client" &&
  cp "$tls/ca/ca-cert.pem" "$tls/client/ca-cert.pem" &&
  _tls_cert "$tls/ca" "$tls/client/client-cert.pem" \
    "$tls/client/client-key.pem" 'cn = "alice"
tls_www_client
encryption_key
signing_key
expiration_days = 2' &&
  mkdir -p "$tls/client-nocert" &&
  cp "$tls/ca/ca-cert.pem" "$tls/client-nocert/ca-cert.pem" &&
  _tls_server_dir "$tls/expired" "$tls/ca" 'cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
tls_www_server
encryption_key
signing_key
activation_date = "2001-01-01 00:00:00 UTC"
expiration_date = "2002-01-01 00:00:00 UTC"' &&
  _tls_ca "$tls/ca2" "nbd-proxy untrusted CA" &&
  _tls_server_dir "$tls/untrusted" "$tls/ca2" "$_tls_localhost" &&
  _tls_server_dir "$tls/wronghost" "$tls/ca" 'cn = "wrong.invalid"
dns_name = "wrong.invalid"
tls_www_server
encryption_key
signing_key
expiration_days = 2' &&
  psktool -u alice -p "$tls/keys.psk" >/dev/null 2>&1 &&
  psktool -u alice -p "$tls/other.psk" >/dev/null 2>&1 &&
  psktool -u bob -p "$tls/bob.psk" >/dev/null 2>&1 &&
  mkdir -p "$tls/qemu-psk" &&
  cp "$tls/keys.psk" "$tls/qemu-psk/keys.psk" &&
  ! cmp -s "$tls/keys.psk" "$tls/other.psk" &&
  echo done >"$tls/done" ||
    { echo "Bail out! could not make TLS keys and certificates"; exit 1; }
}

# start_nbdkit_tls_tcp NAME [NBDKIT-ARGS...]: start_nbdkit_tcp (see
# functions.sh), bailing out if no port could be had.
start_nbdkit_tls_tcp ()
{
  start_nbdkit_tcp "$@" ||
    _server_failed "nbdkit on TCP $*" "$tmpdir/$1.log"
}
