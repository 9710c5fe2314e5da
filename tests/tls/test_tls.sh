#!/usr/bin/env bash
# tls+tcp:// end to end: a scheduler presenting a self-signed certificate, a worker and a
# client that verify it; a client without the CA, or with the wrong one, is refused promptly.
# Then a whole cluster on TLS with a test CA (scripts/make-test-certs.sh), separate key files,
# the workers' data servers on tls+tcp:// too, client certificates required everywhere
# (--tls-verify-clients) and a cluster token: a client with all of it works (a large result
# comes from a worker's data server over TLS, and chains of tasks split across the two workers
# move data between them over TLS); one without a client certificate is refused.
#   test_tls.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
unset TERN_TOKEN_FILE TERN_TLS_CERT TERN_TLS_KEY
work=$(mktemp -d /tmp/tern-tls-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
mkcert() { # name -> name.pem (cert), name-both.pem (cert + key)
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$1.key" -out "$1.pem" 2>/dev/null
  cat "$1.pem" "$1.key" > "$1-both.pem"
}
mkcert good
mkcert other

"$build/bin/tern-scheduler" --listen tls+tcp://localhost:0 --tls-cert good-both.pem \
  --address-file addr --http none --exit-with-parent --quiet &
pids+=($!)
for _ in $(seq 200); do [ -s addr ] && break; sleep 0.05; done
addr=$(cat addr)
case "$addr" in tls+tcp://localhost:[0-9]*) ;; *) echo "bad bound address '$addr'" >&2; exit 1 ;; esac
"$build/bin/tern-worker" --scheduler "$addr" --tls-ca good.pem --name tls-w --exit-with-parent \
  --quiet 2>/dev/null &
pids+=($!)

# The seed's inc over TLS.
TERN_TLS_CA=good.pem timeout 30 "$build/bin/hello" "$addr" "$build/lib/tern/plugins/seed.so" \
  | tee out
grep -q 'y.result() = 3' out

# No CA configured: a clear error, at once.
if timeout 10 env -u TERN_TLS_CA "$build/bin/hello" "$addr" 2>err; then
  echo "a client without a CA must be refused" >&2; exit 1
fi
grep -q 'TERN_TLS_CA' err

# A CA that did not sign the scheduler's certificate: refused, not hung.
start=$(date +%s)
if TERN_TLS_CA=other.pem timeout 30 "$build/bin/hello" "$addr" 2>err; then
  echo "a client trusting the wrong CA must be refused" >&2; exit 1
fi
[ $(( $(date +%s) - start )) -lt 15 ] || { echo "refusal took too long" >&2; exit 1; }
cat err
grep -q "TLS handshake" err

# ---- every link on TLS, mutual TLS and a token
"$scripts/make-test-certs.sh" pki >/dev/null
head -c 32 /dev/urandom | base64 > token
tls=(--tls-ca pki/ca.pem --tls-cert pki/server.pem --tls-key pki/server.key --tls-verify-clients
     --token-file token)
"$build/bin/tern-scheduler" --listen tls+tcp://localhost:0 "${tls[@]}" --address-file addr2 \
  --http none --exit-with-parent --quiet &
pids+=($!)
for _ in $(seq 200); do [ -s addr2 ] && break; sleep 0.05; done
addr2=$(cat addr2)
for w in m1 m2; do
  "$build/bin/tern-worker" --scheduler "$addr2" --listen tls+tcp://localhost:0 "${tls[@]}" \
    --name "$w" --exit-with-parent --quiet 2>"$w.log" &
  pids+=($!)
done
export TERN_TLS_CA=pki/ca.pem TERN_TOKEN_FILE=token
client=(env TERN_TLS_CERT=pki/client.pem TERN_TLS_KEY=pki/client.key)
for _ in $(seq 200); do
  n=$("${client[@]}" timeout 10 "$build/bin/tern" --scheduler "$addr2" status --json 2>/dev/null \
      | grep -o '"tls+tcp://localhost:[0-9]*"' | wc -l || true)
  [ "$n" -ge 2 ] && break
  sleep 0.05
done
[ "$n" -ge 2 ] || { echo "the TLS workers did not join: $(cat m1.log m2.log)" >&2; exit 1; }
# 20000 doubles: 160 KB, above the inline limit, so the client fetches it from the worker
"${client[@]}" timeout 30 "$build/bin/tern" --scheduler "$addr2" call arrays:zeros 20000 > big
[ "$(grep -o '0' big | wc -l)" -ge 20000 ] || { echo "bad result: $(head -c 200 big)" >&2; exit 1; }
# chains split across the two workers: worker-to-worker fetches over TLS with the token
"${client[@]}" timeout 60 "$build/tests/security_hostile" "$addr2" token \
  "$build/lib/tern/plugins/testplug.so" 2
# no client certificate: refused by the scheduler's TLS, promptly
start=$(date +%s)
if timeout 30 "$build/bin/tern" --scheduler "$addr2" status 2>err; then
  echo "a client without a certificate was let in" >&2; exit 1
fi
[ $(( $(date +%s) - start )) -lt 15 ] || { echo "refusal took too long" >&2; exit 1; }
cat err
grep -q "client certificate" err
echo "tls: ok"
