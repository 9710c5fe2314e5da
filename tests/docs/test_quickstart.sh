#!/usr/bin/env bash
# docs/quickstart.md works as written: the files it shows (marked <!-- file: NAME -->) are
# written into a fresh project directory and the shell blocks marked <!-- step --> run in
# order, with HOME set to a scratch directory (so the install goes to a scratch prefix) and
# "build" in the first step meaning this build tree.
#   test_quickstart.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d /tmp/tern-quickstart-XXXXXX)
cleanup() { # the steps' daemons run with --exit-with-parent: they go with the steps' shell
  local rc=$?
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
mkdir -p "$work/home" "$work/tree" "$work/project"
ln -s "$(cd "$build" && pwd)" "$work/tree/build"
python3 - "$src/docs/quickstart.md" "$work" <<'PY'
import os, re, sys
doc, work = sys.argv[1], sys.argv[2]
text = open(doc, encoding="utf-8").read()
blocks = re.finditer(r"<!-- (file: (\S+)|step) -->\n```\w*\n(.*?)```", text, re.S)
steps = []
for m in blocks:
    if m.group(2):
        open(os.path.join(work, "project", m.group(2)), "w").write(m.group(3))
    else:
        steps.append(m.group(3))
if len(steps) < 3:
    sys.exit("quickstart.md: expected at least 3 <!-- step --> blocks, found %d" % len(steps))
with open(os.path.join(work, "steps.sh"), "w") as f:
    f.write("set -euo pipefail\n")
    f.write("cd %s/tree\n" % work)          # step 1 runs beside the build tree
    for i, step in enumerate(steps):
        f.write("echo '--- step %d'\n%s\n" % (i + 1, step))
        if i == 0:
            f.write("cd %s/project\n" % work)   # the rest in the project directory
PY
[ -s "$work/project/kernels.c" ] && [ -s "$work/project/main.c" ] && [ -s "$work/project/CMakeLists.txt" ] ||
  { echo "FAIL: quickstart.md lost its files" >&2; exit 1; }
HOME=$work/home timeout 300 bash "$work/steps.sh" 2>&1 | tee "$work/out"
grep -Eq '^[0-9]+ of 100000 elements of 2 \* \(x0 \+ \.\.\. \+ x7\) are above 8$' "$work/out" ||
  { echo "FAIL: the program printed no count" >&2; exit 1; }
[ "$(grep -c 'are above 8' "$work/out")" = 2 ] || { echo "FAIL: the program did not run twice" >&2; exit 1; }
grep -qx '{"f64": \[10, 20, 30\]}' "$work/out" || { echo "FAIL: tern call kernels:scale" >&2; exit 1; }
grep -qx '2' "$work/out" || { echo "FAIL: tern call kernels:count" >&2; exit 1; }
echo "quickstart: ok"
