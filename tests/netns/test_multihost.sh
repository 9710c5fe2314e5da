#!/usr/bin/env bash
# docs/operations.md "Quick start on several hosts", run as written on three hosts made of Linux
# network namespaces: head (10.232.0.5), node1 and node2, on one bridge, each with its own
# hostname (unshare --uts) and /etc/hosts (ip netns exec mounts /etc/netns/NAME/hosts). The
# doc's shell block is split at its "# head", "# node1, node2" and "# anywhere" comments; each
# part runs on its hosts with these substitutions only: /opt/tern -> this build tree (same
# bin/ layout as an installed prefix), /etc/tern/token -> a scratch token, build/kernels.so ->
# the faultplug test plugin, ./myjob -> the tree_reduce sample.
#   test_multihost.sh SOURCE_DIR BUILD_DIR
# Needs root (ip netns); exits 77 (ctest: skipped) with the reason when it cannot run.
set -euo pipefail
src=$1 build=$(cd "$2" && pwd)
tag=mh$$
hosts=(head node1 node2)
declare -A addr=([head]=10.232.0.5 [node1]=10.232.0.11 [node2]=10.232.0.12)
work=$(mktemp -d /tmp/tern-multihost-XXXXXX)
pids=()

# Every process inside the three hosts: the doc's parts run their daemons under shells that
# `ip netns exec ... unshare ... bash` starts, which outlive the background jobs in pids.
netns_pids() {
  for h in "${hosts[@]}"; do ip netns pids "$tag-$h" 2>/dev/null || true; done
}
cleanup() {
  netns_pids | xargs -r kill 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for i in $(seq 50); do [ -z "$(netns_pids)" ] && break; sleep 0.1; done
  netns_pids | xargs -r kill -9 2>/dev/null || true
  for h in "${hosts[@]}"; do
    ip netns del "$tag-$h" 2>/dev/null || true
    rm -rf "/etc/netns/$tag-$h"
  done
  rmdir /etc/netns 2>/dev/null || true
  ip link del "$tag-br" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2; exit 1; }

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v unshare >/dev/null ||
   ! ip netns add "$tag-head" 2>/dev/null; then
  echo "SKIP: network namespaces need root, iproute2 and unshare (ip netns add failed)"
  exit 77
fi

# The doc's block, split into its parts.
python3 - "$src/docs/operations.md" "$work" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
sec = text.split("## Quick start on several hosts", 1)[1]
block = re.search(r"```sh\n(.*?)```", sec, re.S).group(1)
parts = {"common": [], "head": [], "nodes": [], "client": []}
cur = "common"
for line in block.splitlines():
    if line.startswith("# head"): cur = "head"
    elif line.startswith("# node1, node2"): cur = "nodes"
    elif line.startswith("# anywhere"): cur = "client"
    parts[cur].append(line)
for name, lines in parts.items():
    body = "\n".join(lines)
    if name != "common" and not body.strip():
        sys.exit("operations.md: the multi-host block has no '%s' part" % name)
    open("%s/%s.sh" % (sys.argv[2], name), "w").write(body + "\n")
PY
for f in "$work"/*.sh; do
  sed -i -e "s#/opt/tern#$build#g" -e "s#/etc/tern/token#$work/token#g" \
         -e "s#build/kernels.so#$build/lib/tern/plugins/faultplug.so#g" \
         -e "s#\./myjob#$build/bin/tree_reduce#g" "$f"
done
head -c 32 /dev/urandom | base64 > "$work/token"
chmod 600 "$work/token"

# Three hosts on one bridge (in the root namespace), each knowing the others by name.
ip link add "$tag-br" type bridge
ip link set "$tag-br" up
for h in "${hosts[@]}"; do
  ns=$tag-$h
  [ "$h" = head ] || ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$tag-${h}v" type veth peer name eth0 netns "$ns"
  ip link set "$tag-${h}v" master "$tag-br" up
  ip -n "$ns" addr add "${addr[$h]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  mkdir -p "/etc/netns/$ns"
  { echo "127.0.0.1 localhost"; for o in "${hosts[@]}"; do echo "${addr[$o]} $o"; done; } \
    > "/etc/netns/$ns/hosts"
done

# on HOST, run PART of the doc (after its common lines), with HOST as the hostname
on() { # host part log [background]
  ip netns exec "$tag-$1" unshare --uts bash -c "hostname $1; set -euo pipefail; cd $work
    source $work/common.sh; source $work/$2.sh" >"$work/$3.log" 2>&1
}
on head head scheduler 2>/dev/null & pids+=($!)
for i in $(seq 100); do grep -q "listening" "$work/scheduler.log" && break; sleep 0.05; done
grep -q "listening" "$work/scheduler.log" || fail "the scheduler on head did not start"
on node1 nodes node1 2>/dev/null & pids+=($!)
on node2 nodes node2 2>/dev/null & pids+=($!)

status() {
  ip netns exec "$tag-$1" env TERN_TOKEN_FILE="$work/token" \
    "$build/bin/tern" --scheduler tcp://head:7786 status --json 2>/dev/null || true
}
end=$((SECONDS + 30))
until [ "$(status node1 | grep -o '"nthreads"' | wc -l)" = 2 ]; do
  [ $SECONDS -lt $end ] || fail "the workers on node1 and node2 did not register"
  sleep 0.1
done
status head | grep -q '"node1"' || fail "worker node1 is not named after its host"
status head | grep -q '"node2"' || fail "worker node2 is not named after its host"

# The client part from node2: status, upload, the job (tree reduction across both nodes).
timeout 120 ip netns exec "$tag-node2" bash -c "set -euo pipefail; cd $work
  source $work/common.sh; source $work/client.sh" >"$work/client.log" 2>&1 ||
  fail "the client part of the quick start failed"
cat "$work/client.log"
grep -q "node1" "$work/client.log" || fail "tern status did not list node1"
grep -Eq "^check +ok:" "$work/client.log" || fail "the tree reduction did not check out"
# The uploaded plugin runs on both hosts: a call that each worker can take.
out=$(ip netns exec "$tag-head" env TERN_TOKEN_FILE="$work/token" \
      "$build/bin/tern" --scheduler tcp://head:7786 call faultplug:mix 3 0)
[ "$out" = "$((3 * 1000003))" ] || fail "faultplug:mix after the upload gave $out"
# Without the token the scheduler refuses a client from another host.
if ip netns exec "$tag-node1" env -u TERN_TOKEN_FILE "$build/bin/tern" \
     --scheduler tcp://head:7786 status >"$work/notoken.log" 2>&1; then
  fail "a client without the token was let in"
fi
# --allow-upload local, which only a second host can test: refused from node1, accepted on head.
ip netns exec "$tag-head" env TERN_TOKEN_FILE="$work/token" "$build/bin/tern-scheduler" \
  --listen tcp://0.0.0.0:7796 --allow-upload local --http none >"$work/local-only.log" 2>&1 &
pids+=($!)
for i in $(seq 100); do grep -q "listening" "$work/local-only.log" && break; sleep 0.05; done
if ip netns exec "$tag-node1" env TERN_TOKEN_FILE="$work/token" "$build/bin/tern" \
     --scheduler tcp://head:7796 upload "$build/lib/tern/plugins/faultplug.so" \
     >"$work/remote-upload.log" 2>&1; then
  fail "--allow-upload local accepted an upload from another host"
fi
grep -q "only from clients on its own machine" "$work/remote-upload.log" ||
  fail "no clear refusal of a remote upload: $(cat "$work/remote-upload.log")"
ip netns exec "$tag-head" env TERN_TOKEN_FILE="$work/token" "$build/bin/tern" \
  --scheduler tcp://127.0.0.1:7796 upload "$build/lib/tern/plugins/faultplug.so" \
  >"$work/local-upload.log" 2>&1 || fail "--allow-upload local refused a client on its host"
echo "multi-host quick start: ok"
