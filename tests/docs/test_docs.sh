#!/usr/bin/env bash
# The API reference builds from the public headers (the `docs` target, Doxygen) and documents
# the client calls with their contracts.
#   test_docs.sh BUILD_DIR
set -euo pipefail
build=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v doxygen >/dev/null || fail "doxygen is not installed (scripts/deps.sh installs it)"
[ -f "$build/Doxyfile.docs" ] ||
  fail "no docs target in $build: it was configured before doxygen was installed; re-run cmake"
mkdir -p "$build/docs/api" # doxygen makes only the last directory of the path
doxygen "$build/Doxyfile.docs" >/dev/null 2>"$build/doxygen.log" || fail "doxygen failed: $(cat "$build/doxygen.log")"
html=$build/docs/api/html
[ -s "$html/index.html" ] || fail "no $html/index.html"
for want in 'Shows the progress of n futures' 'Connects to a scheduler' 'Submits one call of'; do
  grep -rqF "$want" "$html/tern_8h.html" || fail "tern.h's reference lacks: $want"
done
grep -rqF 'TERN_TASK' "$html/plugin_8h.html" || fail "no plugin.h reference"
echo "docs: $html/index.html"
