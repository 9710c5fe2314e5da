#!/usr/bin/env bash
# The systemd units in docs/operations.md are valid: extracted from the doc, pointed at this
# build's programs, and checked with `systemd-analyze verify` (skipped, exit 77, where
# systemd-analyze is not installed).
#   test_systemd_units.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
work=$(mktemp -d /tmp/tern-units-XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$src/docs/operations.md" "$work" "$(cd "$build/bin" && pwd)" <<'PY'
import re, sys
doc, work, bindir = sys.argv[1:]
text = open(doc, encoding="utf-8").read()
units = re.findall(r"`/etc/systemd/system/([^`]+)`[^\n]*\n(?:[^\n]*\n)*?```ini\n(.*?)```", text, re.S)
names = [n for n, _ in units]
if sorted(names) != ["tern-scheduler.service", "tern-worker@.service"]:
    sys.exit("operations.md: expected the scheduler unit and the worker template, found %s" % names)
for name, body in units:
    body = body.replace("/opt/tern/bin", bindir)
    if name.endswith("@.service"):
        name = name.replace("@.service", "@1.service")
    open(f"{work}/{name}", "w").write(body)
PY
cd "$work"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no tern-scheduler.service tern-worker@1.service 2>&1 || true)
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "FAIL: systemd-analyze verify complains about the units in docs/operations.md" >&2
  exit 1
fi
echo "systemd units: ok"
