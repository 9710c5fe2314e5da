#!/usr/bin/env bash
# Makes a throwaway certificate authority and certificates for trying tls+tcp:// (tests and
# docs/security.md). NOT for production: the CA key sits next to the certificates, unprotected.
#   scripts/make-test-certs.sh DIR [HOST...]      (default host: localhost)
# Writes into DIR:
#   ca.pem ca.key                 the CA (give ca.pem to --tls-ca / TERN_TLS_CA)
#   server.pem server.key         for listeners (--tls-cert/--tls-key): the scheduler and
#                                 workers; subjectAltName = the HOSTs, 127.0.0.1 and ::1
#   client.pem client.key         a client certificate, for --tls-verify-clients
#   server-both.pem               certificate and key in one file (--tls-cert alone)
set -euo pipefail
dir=${1:?usage: make-test-certs.sh DIR [HOST...]}
shift
hosts=("$@")
[ ${#hosts[@]} -gt 0 ] || hosts=(localhost)
mkdir -p "$dir"
cd "$dir"
san="IP:127.0.0.1,IP:::1"
for h in "${hosts[@]}"; do san="DNS:$h,$san"; done
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=tern test CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
issue() { # name CN extensions
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server "${hosts[0]}" "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth"
issue client "tern client" "extendedKeyUsage=clientAuth"
cat server.pem server.key > server-both.pem
chmod 600 ./*.key server-both.pem
echo "made ca.pem, server.pem/.key, client.pem/.key, server-both.pem in $(pwd)"
