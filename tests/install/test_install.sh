#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds tests/install/consumer.c
# against it through pkg-config (shared and static) and through find_package
# (kvattn::kvattn and kvattn::kvattn_static), and runs each program.
# usage: test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER
set -euo pipefail
build=$1 src=$2 cc=$3
cflags=${CONSUMER_CFLAGS:-} # the sanitizer build's flags, which its library needs in the program too
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null

lib=$(dirname "$(find "$tmp/prefix" -name kvattn.pc)")/..
test -x "$tmp/prefix/bin/kvattn" || { echo "FAIL: bin/kvattn not installed"; exit 1; }
test -f "$tmp/prefix/include/kvattn.h" || { echo "FAIL: include/kvattn.h not installed"; exit 1; }
test -f "$lib/libkvattn.a" || { echo "FAIL: libkvattn.a not installed"; exit 1; }
soname=$(objdump -p "$lib/libkvattn.so" | awk '/SONAME/ {print $2}')
[ "$soname" = libkvattn.so.0 ] || { echo "FAIL: SONAME '$soname', expected libkvattn.so.0"; exit 1; }
test -L "$lib/libkvattn.so" && test -e "$lib/libkvattn.so.0" || { echo "FAIL: versioned library links missing"; exit 1; }

export PKG_CONFIG_PATH="$lib/pkgconfig"
"$cc" $cflags -o "$tmp/pc_shared" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs kvattn) -Wl,-rpath,"$lib"
"$tmp/pc_shared"
"$cc" $cflags -o "$tmp/pc_static" "$src/tests/install/consumer.c" $(pkg-config --cflags kvattn) "$lib/libkvattn.a" \
  $(pkg-config --static --libs-only-other --libs-only-l kvattn | sed 's/-lkvattn//')
if ldd "$tmp/pc_static" | grep -q libkvattn; then echo "FAIL: the static program loads libkvattn.so"; exit 1; fi
"$tmp/pc_static"

CC="$cc" cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_C_FLAGS="$cflags" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer_shared"
"$tmp/consumer/consumer_static"
echo "install: pkg-config and find_package, shared and static: 4 programs ran"
