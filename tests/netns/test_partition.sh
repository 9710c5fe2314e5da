#!/usr/bin/env bash
# A worker host cut off mid-run, with Linux network namespaces: the scheduler (and the client)
# in namespace S, workers a and b in namespaces A and B, each joined to S by a veth pair; S
# routes between them. Mid-run, a's link goes down: the scheduler must declare a dead within
# its death timeout, move a's work and recompute a's data on b, and the client must get every
# result right. Then the link comes back: a must reconnect and register again.
#   test_partition.sh BUILD_DIR
# Needs root (ip netns); exits 77 (ctest: skipped) with the reason when it cannot run.
set -euo pipefail
build=$1
bin=$build/bin
tag=tp$$
S=$tag-s A=$tag-a B=$tag-b
work=$(mktemp -d /tmp/tern-netns-XXXXXX)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "$S" "$A" "$B"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2; exit 1; }

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! ip netns add "$S" 2>/dev/null; then
  echo "SKIP: network namespaces need root and iproute2 (ip netns add failed)"
  exit 77
fi
ip netns add "$A"
ip netns add "$B"
for ns in "$S" "$A" "$B"; do ip -n "$ns" link set lo up; done
ip link add "$tag-sa" netns "$S" type veth peer name "$tag-as" netns "$A"
ip link add "$tag-sb" netns "$S" type veth peer name "$tag-bs" netns "$B"
ip -n "$S" addr add 10.231.1.1/24 dev "$tag-sa"
ip -n "$S" addr add 10.231.2.1/24 dev "$tag-sb"
ip -n "$A" addr add 10.231.1.2/24 dev "$tag-as"
ip -n "$B" addr add 10.231.2.2/24 dev "$tag-bs"
for l in "$S $tag-sa" "$S $tag-sb" "$A $tag-as" "$B $tag-bs"; do
  set -- $l; ip -n "$1" link set "$2" up
done
ip -n "$A" route add default via 10.231.1.1
ip -n "$B" route add default via 10.231.2.1
ip netns exec "$S" sysctl -qw net.ipv4.ip_forward=1

sched=tcp://10.231.1.1:7786
death_ms=2000
ip netns exec "$S" "$bin/tern-scheduler" --listen "$sched" --heartbeat-ms 200 \
   --death-timeout-ms $death_ms >"$work/scheduler.log" 2>&1 &
pids+=($!)
for i in $(seq 100); do grep -q "listening" "$work/scheduler.log" && break; sleep 0.05; done
ip netns exec "$A" "$bin/tern-worker" --scheduler "$sched" --name a --nthreads 2 \
   --listen tcp://10.231.1.2:0 >"$work/a.log" 2>&1 &
pids+=($!)
ip netns exec "$B" "$bin/tern-worker" --scheduler "$sched" --name b --nthreads 2 \
   --listen tcp://10.231.2.2:0 >"$work/b.log" 2>&1 &
pids+=($!)

nworkers() {
  # one "nthreads" per worker in the status map
  { ip netns exec "$S" "$bin/tern" --scheduler "$sched" status --json 2>/dev/null || true; } |
    grep -o '"nthreads"' | wc -l
}
wait_workers() { # n timeout_s
  local end=$((SECONDS + $2))
  while [ "$(nworkers)" != "$1" ]; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.1
  done
}
wait_workers 2 20 || fail "the two workers did not register"

# 240 tasks of 25 ms on 4 threads: about 1.5 s of work, chains of 4 crossing workers.
coproc CLIENT { ip netns exec "$S" "$build/tests/netns_partition_client" "$sched" \
  "$build/lib/tern/plugins/faultplug.so" 240 2>"$work/client.log"; }
client_pid=$CLIENT_PID
pids+=("$client_pid")
read -r -t 30 line <&"${CLIENT[0]}" || fail "the client did not submit"
[ "$line" = submitted ] || fail "client said: $line"
sleep 0.4

# Cut a off: its side of the link goes down (its packets and the scheduler's are lost).
t0=$(date +%s%N)
ip -n "$A" link set "$tag-as" down
wait_workers 1 $((death_ms / 1000 + 5)) || fail "a was not declared dead"
detect_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "a declared dead after $detect_ms ms (death timeout $death_ms ms)"
[ $detect_ms -le $((death_ms + 1500)) ] || fail "detection took $detect_ms ms"

read -r -t 120 line <&"${CLIENT[0]}" || fail "the client did not finish"
echo "client: $line"
[[ "$line" == "ok 240 results" ]] || fail "client said: $line"
wait "$client_pid" || fail "the client failed"
grep -q "worker a left: no heartbeat" "$work/scheduler.log" || fail "no heartbeat-timeout line"

# Bring a back: it notices it was dropped, reconnects and registers again.
t1=$(date +%s%N)
ip -n "$A" link set "$tag-as" up
ip -n "$A" route add default via 10.231.1.1 2>/dev/null || true
wait_workers 2 30 || fail "a did not rejoin"
echo "a rejoined after $(( ($(date +%s%N) - t1) / 1000000 )) ms"
out=$(ip netns exec "$S" "$bin/tern" --scheduler "$sched" call faultplug:mix 3 0)
[ "$out" = "$((3 * 1000003))" ] || fail "a call after the rejoin gave $out"
echo "partition test: ok"
