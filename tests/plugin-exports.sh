#!/usr/bin/env bash
# nbd-proxy plugin: several upstream exports.  With no export configured
# the name a client asks for goes upstream, so each export is selectable
# by name through one proxy; export= or a URI path pins one export for
# every client; the export list is the upstream's (once libnbdc has
# nbd_opt_list).

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/plugin-functions.sh"

requires_proxy
requires nbd-server nbdinfo nbdcopy md5sum
requires_nbdkit_filter exportname
tmpdir_setup

head -c 1M /dev/urandom >"$tmpdir/a.img"
head -c 2M /dev/urandom >"$tmpdir/b.img"
cat >"$tmpdir/ns.conf" <<EOC
[generic]
  unixsock = $tmpdir/ns.sock
  allowlist = true
[alpha]
  exportname = $tmpdir/a.img
  readonly = true
[beta]
  exportname = $tmpdir/b.img
  readonly = true
EOC
nbd-server -C "$tmpdir/ns.conf" -p "$tmpdir/ns.pid" >"$tmpdir/ns.log" 2>&1 ||
  _server_failed nbd-server "$tmpdir/ns.log"
i=0
while [ ! -s "$tmpdir/ns.pid" ] || [ ! -S "$tmpdir/ns.sock" ]; do
  i=$((i + 1)); [ $i -lt 600 ] || _server_failed nbd-server "$tmpdir/ns.log"
  sleep 0.1
done
add_pid "$(cat "$tmpdir/ns.pid")"

sum () { md5sum <"$1" | cut -d' ' -f1; }

start_proxy dyn socket="$tmpdir/ns.sock"
same "export alpha by name" "$(checksum "$(proxy_uri dyn alpha)")" \
  "$(sum "$tmpdir/a.img")"
same "export beta by name" "$(checksum "$(proxy_uri dyn beta)")" \
  "$(sum "$tmpdir/b.img")"
same "export beta's size" "$(nbdinfo --size "$(proxy_uri dyn beta)")" 2097152
if nbdinfo --size "$(proxy_uri dyn gamma)" >/dev/null 2>&1; then
  tap_result "not ok" "an export the upstream lacks is refused"
else
  tap_result "ok" "an export the upstream lacks is refused"
fi

if proxy_has libnbdc_dynamic_list=1; then
  same "the export list is the upstream's" \
    "$(nbdinfo --list --json "$(proxy_uri dyn)" |
       sed -n 's/.*"export-name": "\(.*\)".*/\1/p' | sort | tr '\n' ' ')" \
    "alpha beta "
else
  tap_result "ok" "the export list is the upstream's # SKIP libnbdc has no nbd_opt_list yet"
fi

# export= pins one export: the client's name is ignored.
start_proxy pinned socket="$tmpdir/ns.sock" export=beta
same "export=beta serves beta whatever the client asks" \
  "$(checksum "$(proxy_uri pinned alpha)")" "$(sum "$tmpdir/b.img")"
start_proxy pinuri "uri=nbd+unix:///alpha?socket=$tmpdir/ns.sock"
same "a URI path pins its export" \
  "$(checksum "$(proxy_uri pinuri)")" "$(sum "$tmpdir/a.img")"
# dynamic-export=true with a URI: the URI's path is a default only.
start_proxy dynuri "uri=nbd+unix:///alpha?socket=$tmpdir/ns.sock" \
  dynamic-export=true
same "dynamic-export=true: the client's name replaces the URI's" \
  "$(checksum "$(proxy_uri dynuri beta)")" "$(sum "$tmpdir/b.img")"

# The default export ("") keeps the name the upstream gives it
# (NBD_INFO_NAME), as nbdkit's nbd plugin shows it.
start_nbdkit named --filter=exportname memory 1M default-export=foo \
  exportname-list=explicit exportname=foo exportname=bar
start_proxy dynnamed socket="$tmpdir/named.sock"
export_name () { nbdinfo --json "$1" | sed -n 's/.*"export-name": "\(.*\)".*/\1/p'; }
same "the default export is named as upstream" \
  "$(export_name "$(proxy_uri dynnamed)")" \
  "$(export_name "nbd+unix:///?socket=$tmpdir/named.sock")"
same "and that name is foo" "$(export_name "$(proxy_uri dynnamed)")" foo

for p in dyn pinned pinuri dynuri dynnamed; do stop_proxy $p; done
tap_done
