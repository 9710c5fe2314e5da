#!/usr/bin/env bash
# Installs the SDK into a scratch prefix, builds samples/out_of_tree_plugin out of tree with
# find_package(tern), and checks that the loader accepts the result and runs its task.
#   test_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d /tmp/tern-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
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
