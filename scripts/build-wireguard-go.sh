#!/usr/bin/env bash
# Build the current wireguard-go from the Go module proxy into build/bin.
#
#   golang.zx2c4.com/wireguard has no tagged releases: @latest resolves to
#   the newest pseudo-version of the default branch.  Its module root is
#   package main, so `go install` produces build/bin/wireguard; we also
#   link it as build/bin/wireguard-go-current so it cannot be confused with
#   Debian's /usr/bin/wireguard-go.
#
# Idempotent: skips the build when the binary exists (FORCE=1 rebuilds).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bin="$top/build/bin"
mkdir -p "$bin"
if [ -x "$bin/wireguard-go-current" ] && [ -z "${FORCE:-}" ]; then
    echo "build-wireguard-go: $bin/wireguard-go-current exists"
    exit 0
fi
if ! command -v go >/dev/null; then
    for d in /usr/local/go/bin /usr/lib/go/bin; do
        [ -x "$d/go" ] && PATH="$d:$PATH" && break
    done
fi
command -v go >/dev/null || { echo "build-wireguard-go: no go toolchain" >&2; exit 1; }
ver=${WIREGUARD_GO_VERSION:-latest}
GOBIN="$bin" GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
    timeout 600 go install "golang.zx2c4.com/wireguard@$ver"
ln -sf wireguard "$bin/wireguard-go-current"
# record which version we got (go version -m reads the build info)
go version -m "$bin/wireguard" | sed -n '1,3p' > "$bin/wireguard-go-current.version" || true
"$bin/wireguard" --version || true
