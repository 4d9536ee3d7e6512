#!/usr/bin/env bash
# Dependencies point down (shared/DESIGN.md): no two files of client/ call
# each other, directly or through others.  From the symbols each object
# file defines and uses (nm), build the graph "file -> file it calls" and
# check it has no loop (tsort); print the layers, top to bottom.

. "${srcdir:-.}/functions.sh"
requires nm tsort awk

objdir=$top_builddir/client/.libs
ls "$objdir"/libnbdc_la-*.o >/dev/null 2>&1 || objdir=$top_builddir/client
ls "$objdir"/libnbdc_la-*.o >/dev/null 2>&1 ||
  skip_all "no object files of libnbdc in $objdir"
tmpdir_setup

for o in "$objdir"/libnbdc_la-*.o; do
  f=${o##*/libnbdc_la-}; f=${f%.o}
  nm "$o" | awk -v f="$f" '$1 == "U" { print f, "U", $2 }
                           NF == 3 && $2 ~ /^[TDBR]$/ { print f, "D", $3 }'
done >"$tmpdir/symbols"

# Pairs "caller callee" for symbols defined in another file.
awk '$2 == "D" { owner[$3] = $1 }
     $2 == "U" { use[++n] = $1 " " $3 }
     END { for (i = 1; i <= n; i++) {
             split (use[i], p, " ")
             if ((p[2] in owner) && owner[p[2]] != p[1])
               print p[1], owner[p[2]]
           } }' "$tmpdir/symbols" | sort -u >"$tmpdir/edges"

if [ ! -s "$tmpdir/edges" ]; then
  tap_result "not ok" "client/ files call each other (no calls found: nm?)"
  tap_done
  exit 0
fi
if tsort "$tmpdir/edges" >"$tmpdir/order" 2>"$tmpdir/loops"; then
  tap_result "ok" "no call cycle between the files of client/"
  echo "# top to bottom: $(tr '\n' ' ' <"$tmpdir/order")"
else
  tap_result "not ok" "no call cycle between the files of client/"
  sed 's/^/# /' "$tmpdir/loops"
  sed 's/^/# calls: /' "$tmpdir/edges"
fi
tap_done
