#!/usr/bin/env bash
# Security end to end, on loopback with real processes:
#  - safe defaults: a daemon refuses a non-loopback address without a token (or client TLS)
#    unless --insecure, which warns; a too-short token file is refused;
#  - a cluster token: a client and workers with it work; a client or worker without it, or
#    with another one, is refused promptly with a clear message;
#  - --allow-upload no refuses uploads, --allow-upload local accepts a local client's;
#  - tests/security_hostile: random, truncated, oversized, out-of-order, wrong-version and
#    wrong-token messages on the scheduler's and both workers' ports, and malformed, oversized,
#    slow and abandoned HTTP requests on the scheduler's dashboard port, while a client with the
#    token runs a workload and checks every result; the scheduler's resident memory must not
#    grow without bound meanwhile.
#   test_auth.sh BUILD_DIR [HOSTILE_SECONDS]
set -euo pipefail
build=$(cd "$1" && pwd)
seconds=${2:-6}
bin=$build/bin
plugins=$build/lib/tern/plugins
work=$(mktemp -d /tmp/tern-sec-XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" != 0 ]; then
    for f in "$work"/*.log; do echo "--- $f" >&2; cat "$f" >&2 || true; done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
unset TERN_TOKEN_FILE TERN_TLS_CA TERN_TLS_CERT TERN_TLS_KEY
cd "$work"
head -c 32 /dev/urandom | base64 > good.token
head -c 32 /dev/urandom | base64 > other.token
echo short > short.token
chmod 600 ./*.token

wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; fail "no $1"; }

# ---- safe defaults
if timeout 10 "$bin/tern-scheduler" --listen tcp://0.0.0.0:0 2>err.log; then
  fail "scheduler started on 0.0.0.0 without protection"
fi
grep -q "refusing to listen" err.log || fail "no clear refusal: $(cat err.log)"
if timeout 10 "$bin/tern-worker" --scheduler tcp://127.0.0.1:1 --listen tcp://0.0.0.0:0 \
  2>err.log; then
  fail "worker served data on 0.0.0.0 without protection"
fi
grep -q "refusing to listen" err.log || fail "no clear refusal: $(cat err.log)"
# the dashboard has no login: a non-loopback --http is refused even with a token
if timeout 10 "$bin/tern-scheduler" --listen tcp://127.0.0.1:0 --token-file good.token \
  --http 0.0.0.0:0 2>err.log; then
  fail "scheduler served the dashboard on 0.0.0.0 without --insecure"
fi
grep -q "refusing to serve the dashboard" err.log || fail "no clear dashboard refusal: $(cat err.log)"
if timeout 10 "$bin/tern-scheduler" --token-file short.token 2>err.log; then
  fail "a 5-byte token was accepted"
fi
grep -q "must be 16" err.log || fail "no clear token-length message: $(cat err.log)"
"$bin/tern-scheduler" --listen tcp://0.0.0.0:0 --insecure --address-file insecure.addr \
  --http 0.0.0.0:0 --exit-with-parent --no-preload 2>insecure.log &
pids+=($!)
wait_file insecure.addr
grep -q "WARNING: --insecure: listening" insecure.log || fail "--insecure did not warn"
grep -q "WARNING: --insecure: dashboard" insecure.log || fail "--insecure did not warn of the dashboard"
# a token makes a non-loopback address acceptable
"$bin/tern-scheduler" --listen tcp://0.0.0.0:0 --token-file good.token \
  --address-file any.addr --http none --exit-with-parent --no-preload 2>any.log &
pids+=($!)
wait_file any.addr

# ---- a cluster with a token (and the dashboard on a port the kernel picks: the scheduler
# reports the bound address in its status, which is how security_hostile finds it)
"$bin/tern-scheduler" --listen tcp://127.0.0.1:0 --token-file good.token --address-file addr \
  --http 127.0.0.1:0 --exit-with-parent 2>scheduler.log &
pids+=($!)
wait_file addr
addr=$(cat addr)
for w in w1 w2; do
  TERN_TOKEN_FILE=good.token "$bin/tern-worker" --scheduler "$addr" --name "$w" \
    --exit-with-parent 2>"$w.log" &
  pids+=($!)
done
for _ in $(seq 200); do
  n=$(TERN_TOKEN_FILE=good.token timeout 10 "$bin/tern" --scheduler "$addr" status --json 2>/dev/null \
      | grep -c '"name"' || true)
  [ "$n" -ge 2 ] && break
  sleep 0.05
done
[ "$n" -ge 2 ] || fail "the workers with the token did not join"

TERN_TOKEN_FILE=good.token timeout 30 "$bin/hello" "$addr" "$plugins/seed.so" > out
grep -q 'y.result() = 3' out || fail "hello with the token: $(cat out)"

start=$(date +%s)
if timeout 20 "$bin/hello" "$addr" "$plugins/seed.so" 2>err.log; then
  fail "a client without the token was let in"
fi
grep -q "requires a token" err.log || fail "no clear refusal: $(cat err.log)"
grep -q "authentication failed" err.log || fail "no TERN_EAUTH: $(cat err.log)"
if TERN_TOKEN_FILE=other.token timeout 20 "$bin/hello" "$addr" "$plugins/seed.so" 2>err.log; then
  fail "a client with another token was let in"
fi
grep -q "could not prove" err.log || fail "no clear refusal: $(cat err.log)"
if timeout 20 "$bin/tern-worker" --scheduler "$addr" --name intruder 2>err.log; then
  fail "a worker without the token ran"
fi
grep -q "requires a token" err.log || fail "worker: no clear refusal: $(cat err.log)"
if timeout 20 "$bin/tern-worker" --scheduler "$addr" --name intruder2 --token-file other.token \
  2>err.log; then
  fail "a worker with another token ran"
fi
grep -q "could not prove" err.log || fail "worker: no clear refusal: $(cat err.log)"
[ $(( $(date +%s) - start )) -lt 30 ] || fail "refusals took too long"
n=$(TERN_TOKEN_FILE=good.token "$bin/tern" --scheduler "$addr" status --json | grep -c '"name"' || true)
[ "$n" = 2 ] || fail "$n workers registered, want 2 (no intruder)"

# ---- hostile traffic on every port while a client works
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
rss0=$(rss_kb "${pids[2]}")
timeout 120 "$build/tests/security_hostile" "$addr" good.token "$plugins/testplug.so" "$seconds" \
  | tee hostile.out
grep -q "no dashboard" hostile.out && fail "security_hostile found no dashboard to attack"
# Bounded memory: the attack sends hundreds of 1 MiB requests to the dashboard; anything kept
# per request would show here. Sanitizer builds keep freed memory in quarantine (ASan: up to
# 256 MiB), so their bound is larger.
rss1=$(rss_kb "${pids[2]}")
limit=$((256 * 1024))
grep -q '^TERN_SANITIZE:[A-Z]*=..*' "$build/CMakeCache.txt" 2>/dev/null && limit=$((1024 * 1024))
echo "scheduler RSS ${rss0} kB before the hostile run, ${rss1} kB after (bound: +${limit} kB)"
[ $((rss1 - rss0)) -lt "$limit" ] || fail "the scheduler grew by $((rss1 - rss0)) kB"
# The scheduler and both workers survived it and shut down cleanly (under the sanitizer build,
# a leak or error found at exit makes the status non-zero).
for i in 2 3 4; do
  kill -0 "${pids[$i]}" || fail "daemon ${pids[$i]} died under hostile traffic"
done
for i in 3 4 2; do
  kill -TERM "${pids[$i]}"
  rc=0
  wait "${pids[$i]}" || rc=$?
  [ "$rc" = 0 ] || fail "daemon ${pids[$i]} exited with status $rc after the hostile run"
done

# ---- --allow-upload no
"$bin/tern-scheduler" --listen tcp://127.0.0.1:0 --token-file good.token --allow-upload no \
  --address-file noup.addr --http none --exit-with-parent 2>noup.log &
pids+=($!)
wait_file noup.addr
if TERN_TOKEN_FILE=good.token timeout 20 "$bin/tern" --scheduler "$(cat noup.addr)" \
  upload "$plugins/seed.so" 2>err.log; then
  fail "--allow-upload no accepted an upload"
fi
grep -q "upload is disabled" err.log || fail "no clear upload refusal: $(cat err.log)"
# --allow-upload local: a client on this machine (loopback TCP) may upload
"$bin/tern-scheduler" --listen tcp://127.0.0.1:0 --token-file good.token --allow-upload local \
  --address-file localup.addr --http none --exit-with-parent 2>localup.log &
pids+=($!)
wait_file localup.addr
TERN_TOKEN_FILE=good.token timeout 20 "$bin/tern" --scheduler "$(cat localup.addr)" \
  upload "$plugins/seed.so" > out || fail "--allow-upload local refused a local client"
grep -q seed out || fail "upload printed $(cat out)"
echo "security: ok"
