#!/usr/bin/env bash
# Installs the Debian packages tern needs, if any are missing.
#   scripts/deps.sh [extra packages...]
# As root it runs apt-get; otherwise it prints the exact apt-get line and fails.
set -euo pipefail

packages=(cmake ninja-build gcc make pkg-config
          libnng-dev libcbor-dev libopenblas-dev libcriterion-dev libmbedtls-dev uthash-dev libgenht1-dev
          openssl libjansson-dev iproute2 python3 chromium doxygen
          "$@")

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing packages: ${missing[*]} (and no apt-get here: tern targets Debian 12)" >&2
  exit 1
fi
line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages. Run as root:" >&2
  echo "  apt-get update && $line" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
