#!/usr/bin/env bash
# tls+tcp:// end to end: a scheduler presenting a self-signed certificate, a worker and a
# client that verify it; a client without the CA, or with the wrong one, is refused promptly.
#   test_tls.sh BUILD_DIR
set -euo pipefail
build=$1
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
  --address-file addr --exit-with-parent --quiet &
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
echo "tls: ok"
