#!/bin/sh
# A program written for libnbd builds unchanged against an installed libnbdc
# (make install DESTDIR=..., pkg-config nbdc), links no libnbd, and behaves
# as the same source built against libnbd.  The program is examples/
# nbdc-cat.c, which includes only <libnbd.h> and system headers.

. "${srcdir:-.}/functions.sh"
requires cc pkg-config ldd nbdkit
tmpdir_setup

root=$tmpdir/root
make=${MAKE:-make}
for dir in include client; do
  "$make" -s -C "$top_builddir/$dir" install DESTDIR="$root" \
    >"$tmpdir/install.log" 2>&1 || {
      tap_result "not ok" "make install DESTDIR=... in $dir"
      sed 's/^/# /' "$tmpdir/install.log"
      tap_done; exit 0; }
done
tap_result "ok" "make install DESTDIR=... installs the header and library"

pcdir=$(find "$root" -name nbdc.pc -printf '%h\n' | head -n 1)
header=$(find "$root" -path '*/nbdc/libnbd.h' | head -n 1)
if [ -n "$pcdir" ] && [ -n "$header" ]; then
  tap_result "ok" "nbdc.pc and nbdc/libnbd.h are installed"
else
  tap_result "not ok" "nbdc.pc and nbdc/libnbd.h are installed"
  tap_done; exit 0
fi

export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$root"
libdir=$(find "$root" -name libnbdc.so -printf '%h\n' | head -n 1)
src=$top_srcdir/examples/nbdc-cat.c
# CFLAGS: the build's own (the sanitizer build needs its runtime linked).
if cc $CFLAGS -o "$tmpdir/cat-nbdc" "$src" $(pkg-config --cflags --libs nbdc) \
     2>"$tmpdir/cc.log"; then
  tap_result "ok" "cc prog.c \$(pkg-config --cflags --libs nbdc) builds"
else
  tap_result "not ok" "cc prog.c \$(pkg-config --cflags --libs nbdc) builds"
  sed 's/^/# /' "$tmpdir/cc.log"
  tap_done; exit 0
fi

deps=$(LD_LIBRARY_PATH=$libdir ldd "$tmpdir/cat-nbdc")
if echo "$deps" | grep -q "libnbdc\.so.*$libdir" &&
   ! echo "$deps" | grep -q 'libnbd\.so'; then
  tap_result "ok" "ldd: the program uses the installed libnbdc, no libnbd"
else
  tap_result "not ok" "ldd: the program uses the installed libnbdc, no libnbd"
  echo "$deps" | sed 's/^/# /'
fi
if LD_LIBRARY_PATH=$libdir ldd "$libdir/libnbdc.so" | grep -q 'libnbd\.so'
then
  tap_result "not ok" "ldd: libnbdc.so does not link libnbd"
else
  tap_result "ok" "ldd: libnbdc.so does not link libnbd"
fi

# Timings differ from run to run; everything else must not.
untimed () { sed 's/ in [0-9.]* s ([0-9.]* MiB\/s)//'; }

LD_LIBRARY_PATH=$libdir timeout 120 "$tmpdir/cat-nbdc" >"$tmpdir/out.nbdc" \
  2>&1
st=$?
if [ $st -eq 0 ] && grep -q '^pattern check: ok' "$tmpdir/out.nbdc"; then
  tap_result "ok" "the installed build reads and checks nbdkit pattern"
else
  tap_result "not ok" "the installed build reads and checks nbdkit pattern"
  sed 's/^/# /' "$tmpdir/out.nbdc"
fi

if pkg-config --exists libnbd 2>/dev/null ||
   PKG_CONFIG_SYSROOT_DIR= PKG_CONFIG_PATH= pkg-config --exists libnbd; then
  if cc $CFLAGS -o "$tmpdir/cat-libnbd" "$src" \
       $(PKG_CONFIG_SYSROOT_DIR= PKG_CONFIG_PATH= \
         pkg-config --cflags --libs libnbd) 2>"$tmpdir/cc.log" &&
     timeout 120 "$tmpdir/cat-libnbd" >"$tmpdir/out.libnbd" 2>&1; then
    if untimed <"$tmpdir/out.nbdc" | diff -u - \
         "$(untimed <"$tmpdir/out.libnbd" >"$tmpdir/out.libnbd.u" &&
            echo "$tmpdir/out.libnbd.u")" >"$tmpdir/diff"; then
      tap_result "ok" "the same source against libnbd prints the same"
    else
      tap_result "not ok" "the same source against libnbd prints the same"
      sed 's/^/# /' "$tmpdir/diff"
    fi
  else
    tap_result "not ok" "the same source builds and runs against libnbd"
    sed 's/^/# /' "$tmpdir/cc.log" "$tmpdir/out.libnbd" 2>/dev/null
  fi
else
  tap_result "ok" "the same source against libnbd # SKIP libnbd not found"
fi
# The plugin: installed where nbdkit looks for "nbdkit nbd-proxy" (its
# plugin directory, as nbdkit-NAME-plugin.so), and loadable from there.
plugin_src=$top_builddir/plugin/.libs/nbd-proxy.so
# (PKG_CONFIG_SYSROOT_DIR and _PATH point at the DESTDIR for nbdc.pc.)
plugindir=$(PKG_CONFIG_SYSROOT_DIR= PKG_CONFIG_PATH= \
  pkg-config --variable=plugindir nbdkit 2>/dev/null)
if [ ! -f "$plugin_src" ] || [ -z "$plugindir" ]; then
  tap_result "ok" "the plugin installs # SKIP plugin not built or no nbdkit.pc"
elif "$make" -s -C "$top_builddir/plugin" install DESTDIR="$root" \
       >"$tmpdir/install.log" 2>&1; then
  installed=$root$plugindir/nbdkit-nbd-proxy-plugin.so
  if [ -f "$installed" ]; then
    tap_result "ok" "make install puts nbdkit-nbd-proxy-plugin.so in nbdkit's plugindir"
  else
    tap_result "not ok" "make install puts nbdkit-nbd-proxy-plugin.so in nbdkit's plugindir"
    find "$root" -name "*.so" | sed "s/^/# /"
  fi
  # The sanitizer build's plugin needs its runtime preloaded into nbdkit.
  preload=$(ldd "$installed" 2>/dev/null |
    awk '/lib(asan|ubsan)\.so/ { print $3 }' | tr '\n' ':')
  if timeout 60 env LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 \
       nbdkit --dump-plugin "$installed" 2>&1 | grep -qx "name=nbd-proxy"
  then
    tap_result "ok" "the installed plugin loads and is called nbd-proxy"
  else
    tap_result "not ok" "the installed plugin loads and is called nbd-proxy"
  fi
else
  tap_result "not ok" "make install DESTDIR=... in plugin"
  sed 's/^/# /' "$tmpdir/install.log"
fi
tap_done
