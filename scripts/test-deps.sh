#!/usr/bin/env bash
# What the real-peer tests in t/ need, on Debian 12 (run as root).
# Idempotent: installs only missing packages; apt-get update only when the
# package lists are empty.  Then builds the current wireguard-go from the Go
# module proxy (skipped, with a note, when no Go toolchain is available; the
# tests then skip the "current" implementation with that reason).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(wireguard-go wireguard-tools iproute2 iputils-ping curl openssl
      nginx-light libnginx-mod-stream ca-certificates python3
      clang libclang-rt-14-dev nftables)
# pytest: the python3 the Makefile calls must be able to import it
if ! python3 -c 'import pytest' 2>/dev/null; then
    pkgs+=(python3-pytest)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# nginx or nginx-light (or nginx-full...) all provide /usr/sbin/nginx
if command -v nginx >/dev/null; then
    missing=("${missing[@]/nginx-light}")
fi
missing=($(printf '%s\n' "${missing[@]}" | sed '/^$/d'))

if [ ${#missing[@]} -gt 0 ]; then
    if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$')" ]; then
        apt-get update
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${missing[@]}"
fi

if ! python3 -c 'import pytest' 2>/dev/null; then
    echo "test-deps: python3 cannot import pytest (python3 is $(command -v python3))" >&2
    exit 1
fi

# current wireguard-go (Go module proxy); the script installs a Go that can
# build it when the machine has none
bash "$top/scripts/build-wireguard-go.sh" \
    || echo "test-deps: building the current wireguard-go failed; those tests will skip" >&2
