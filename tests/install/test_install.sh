#!/usr/bin/env bash
# Installs the SDK into a scratch prefix, builds samples/out_of_tree_plugin out of tree with
# find_package(tern) (and with pkg-config), checks that the loader accepts the result, then
# uploads it to a real scheduler and worker and calls it by symbol with the tern CLI.
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
cmake -S "$src/samples/out_of_tree_plugin" -B "$work/hello" -G Ninja \
      -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/hello" >/dev/null
# The README's one-line build with pkg-config works too.
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$(find "$work/prefix" -name tern.pc)")
# shellcheck disable=SC2046
cc -shared -fPIC -o "$work/hello-pc.so" "$src/samples/out_of_tree_plugin/hello.c" \
   $(pkg-config --cflags --libs tern)
for so in "$work/hello/hello.so" "$work/hello-pc.so"; do
  out=$("$build/bin/tern-plugin-info" "$so" greet world)
  echo "$out"
  grep -q '^plugin  hello 1.0.0' <<<"$out"
  grep -q '^result  "hello, world"' <<<"$out"
done
# And a bad call explains itself.
if "$build/bin/tern-plugin-info" "$work/hello-pc.so" greet 42 2>"$work/err"; then
  echo "greet(42) should fail" >&2; exit 1
fi
grep -q 'name must be text' "$work/err"

# Upload to a cluster and call it by symbol.
"$build/bin/tern-scheduler" --listen tcp://127.0.0.1:0 --address-file "$work/addr" \
  --exit-with-parent --quiet &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
addr=$(cat "$work/addr")
"$build/bin/tern-worker" --scheduler "$addr" --name oot --exit-with-parent --quiet 2>/dev/null &
pids+=($!)
for _ in $(seq 200); do
  "$build/bin/tern" --scheduler "$addr" status 2>/dev/null | grep -q oot && break
  sleep 0.05
done
"$build/bin/tern" --scheduler "$addr" upload "$work/hello/hello.so" | tee "$work/up"
grep -q hello "$work/up"
out=$("$build/bin/tern" --scheduler "$addr" call hello:greet '"cluster"')
echo "$out"
[ "$out" = '"hello, cluster"' ]
