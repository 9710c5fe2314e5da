#!/usr/bin/env bash
# Installs tern into a scratch prefix (cmake --install), checks what is there (headers,
# libtern with its SONAME, the daemons, the CLI, the arrays plugin, the CMake package and
# tern.pc), builds samples/out_of_tree_plugin out of tree with find_package(tern) and
# tern_add_plugin(name SOURCES ...) (and with pkg-config), checks that the loader accepts the
# result, then starts the INSTALLED scheduler and worker, uploads the plugin with the
# installed tern CLI and calls it by symbol. Nothing from the build tree runs after install.
#   test_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d /tmp/tern-install-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
p=$work/prefix
for f in include/tern/tern.h include/tern/plugin.h include/tern/value.h lib/pkgconfig/tern.pc \
         lib/cmake/tern/tern-config.cmake lib/cmake/tern/TernPlugin.cmake \
         lib/tern/plugins/arrays.so bin/tern-scheduler bin/tern-worker bin/tern bin/tern-plugin-info; do
  [ -e "$p/$f" ] || { echo "not installed: $f" >&2; exit 1; }
done
soname=$(readelf -d "$p/lib/libtern.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = libtern.so.0 ] || { echo "libtern SONAME is '$soname', want libtern.so.0" >&2; exit 1; }
[ -L "$p/lib/libtern.so" ] && [ -e "$p/lib/libtern.so.0" ] || { echo "libtern.so symlinks missing" >&2; exit 1; }
grep -q 'tern_add_plugin(hello SOURCES hello.c)' "$src/samples/out_of_tree_plugin/CMakeLists.txt"
# The installed programs answer --help and find the installed libtern (RUNPATH), with no
# build tree on the library path.
for exe in tern-scheduler tern-worker tern tern-plugin-info; do
  env -u LD_LIBRARY_PATH "$p/bin/$exe" --help >/dev/null || { echo "installed $exe --help failed" >&2; exit 1; }
done
cmake -S "$src/samples/out_of_tree_plugin" -B "$work/hello" -G Ninja \
      -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/hello" >/dev/null
# The README's one-line build with pkg-config works too.
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$(find "$work/prefix" -name tern.pc)")
# shellcheck disable=SC2046
cc -shared -fPIC -o "$work/hello-pc.so" "$src/samples/out_of_tree_plugin/hello.c" \
   $(pkg-config --cflags --libs tern)
readelf -d "$work/hello/hello.so" | grep -q 'NEEDED.*\[libtern.so.0\]' ||
  { echo "hello.so does not link libtern.so.0" >&2; exit 1; }
for so in "$work/hello/hello.so" "$work/hello-pc.so"; do
  out=$("$p/bin/tern-plugin-info" "$so" greet world)
  echo "$out"
  grep -q '^plugin  hello 1.0.0' <<<"$out"
  grep -q '^result  "hello, world"' <<<"$out"
done
# And a bad call explains itself.
if "$p/bin/tern-plugin-info" "$work/hello-pc.so" greet 42 2>"$work/err"; then
  echo "greet(42) should fail" >&2; exit 1
fi
grep -q 'name must be text' "$work/err"

# Upload to a cluster and call it by symbol.
"$p/bin/tern-scheduler" --listen tcp://127.0.0.1:0 --address-file "$work/addr" --http none \
  --exit-with-parent --quiet &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
addr=$(cat "$work/addr")
"$p/bin/tern-worker" --scheduler "$addr" --name oot --exit-with-parent --quiet 2>/dev/null &
pids+=($!)
for _ in $(seq 200); do
  "$p/bin/tern" --scheduler "$addr" status 2>/dev/null | grep -q oot && break
  sleep 0.05
done
"$p/bin/tern" --scheduler "$addr" upload "$work/hello/hello.so" | tee "$work/up"
grep -q hello "$work/up"
out=$("$p/bin/tern" --scheduler "$addr" call hello:greet '"cluster"')
echo "$out"
[ "$out" = '"hello, cluster"' ]
# The installed scheduler found and preloaded the installed arrays plugin.
out=$("$p/bin/tern" --scheduler "$addr" call arrays:sum '{"f64": [1, 2, 3.5]}')
echo "$out"
[ "$out" = 6.5 ]
