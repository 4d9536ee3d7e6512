#!/bin/sh
# Fuzz the handshake and reply parsers (fuzz-server-stream.c) with
# libFuzzer for $NBDC_FUZZ_SECONDS seconds, from the unit-split streams
# and the target's block status streams.
# Off unless NBDC_FUZZ_SECONDS is set (build.sh test sets it for one pass);
# skipped without clang's libFuzzer.

. "${srcdir:-.}/functions.sh"
[ -n "${NBDC_FUZZ_SECONDS:-}" ] || skip_all "NBDC_FUZZ_SECONDS not set"
requires clang
tmpdir_setup

fuzzer=$tmpdir/fuzz-server-stream
# The library's TLS transport (crypto.c) links GnuTLS.
gnutls=$(pkg-config --cflags --libs gnutls) ||
  { tap_result "not ok" "pkg-config finds gnutls"; tap_done; exit 0; }
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined \
     -I"$top_srcdir/include" -I"$top_srcdir/client" -I"$top_builddir" \
     "$top_srcdir/tests/fuzz-server-stream.c" "$top_srcdir"/client/*.c \
     $gnutls -o "$fuzzer" 2>"$tmpdir/cc.log"; then
  grep -q 'fuzzer' "$tmpdir/cc.log" &&
    skip_all "clang cannot link libFuzzer (libclang-rt-dev missing)"
  tap_result "not ok" "the fuzz target builds"
  sed 's/^/# /' "$tmpdir/cc.log"
  tap_done; exit 0
fi
tap_result "ok" "the fuzz target builds"

mkdir "$tmpdir/corpus"
"${builddir:-.}/unit-split" --dump "$tmpdir/corpus" ||
  { tap_result "not ok" "seed corpus"; tap_done; exit 0; }
# The block status streams: the target's own seeds.
clang -g -O1 -DWRITE_SEEDS \
  -I"$top_srcdir/include" -I"$top_srcdir/client" -I"$top_builddir" \
  "$top_srcdir/tests/fuzz-server-stream.c" "$top_srcdir"/client/*.c \
  $gnutls -o "$tmpdir/fuzz-seeds" 2>"$tmpdir/cc.log" &&
  "$tmpdir/fuzz-seeds" "$tmpdir/corpus" ||
  { tap_result "not ok" "block status seeds"; sed 's/^/# /' "$tmpdir/cc.log"
    tap_done; exit 0; }

# One more seed in opt mode (OPT_MODE in the length): a server that
# answers LIST, LIST_META_CONTEXT, INFO and GO (each after
# SET_META_CONTEXT), so that mutations start inside the option replies.
byte () { printf "\\$(printf %03o $(($1 & 255)))"; }
be16 () { byte $(($1 >> 8)); byte $1; }
be32 () { be16 $(($1 >> 16)); be16 $1; }
reply () {                      # OPTION TYPE [PAYLOAD-FILE]
  printf '\000\003\350\211\004\125\145\251'
  be32 "$1"; be32 "$2"
  if [ -n "${3:-}" ]; then be32 "$(wc -c <"$3")"; cat "$3"; else be32 0; fi
}
{ printf 'NBDMAGICIHAVEOPT'; be16 3; reply 8 1
  { be32 4; printf 'diska disk'; } >"$tmpdir/server"
  { be32 1; printf 'base:allocation'; } >"$tmpdir/context"
  { be16 0; be32 0; be32 1048576; be16 3; } >"$tmpdir/info"
  reply 3 2 "$tmpdir/server"; reply 3 1
  reply 9 4 "$tmpdir/context"; reply 9 1
  for option in 6 7; do
    reply 10 4 "$tmpdir/context"; reply 10 1
    reply $option 3 "$tmpdir/info"; reply $option 1
  done
} >"$tmpdir/opt-stream"
{ be16 $((0x4000 | $(wc -c <"$tmpdir/opt-stream")))
  cat "$tmpdir/opt-stream"; } >"$tmpdir/corpus/opt-mode"

if (cd "$tmpdir" && timeout $((NBDC_FUZZ_SECONDS + 120)) "$fuzzer" \
      -max_total_time="$NBDC_FUZZ_SECONDS" -max_len=8192 -timeout=10 \
      -print_final_stats=1 corpus >"$tmpdir/fuzz.log" 2>&1); then
  tap_result "ok" "$NBDC_FUZZ_SECONDS s of fuzzing: no crash, hang or leak"
  grep -E 'stat::number_of_executed_units|cov:' "$tmpdir/fuzz.log" |
    tail -n 2 | sed 's/^/# /'
else
  tap_result "not ok" "$NBDC_FUZZ_SECONDS s of fuzzing: no crash, hang or leak"
  tail -n 60 "$tmpdir/fuzz.log" | sed 's/^/# /'
  for crash in "$tmpdir"/crash-* "$tmpdir"/timeout-* "$tmpdir"/leak-*; do
    [ -f "$crash" ] && echo "# input: $(od -An -tx1 "$crash" | tr -d '\n' | head -c 600)"
  done
fi
tap_done
