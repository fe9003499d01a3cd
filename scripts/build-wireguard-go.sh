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
# A Go that knows GOTOOLCHAIN (1.21 and later) fetches whatever newer
# toolchain the module asks for from the Go module proxy.
go_ok() {
    local v
    v=$(go env GOVERSION 2>/dev/null) || return 1
    v=${v#go}
    [ "${v%%.*}" -gt 1 ] || [ "$(echo "$v" | cut -d. -f2)" -ge 21 ]
}
for d in "" /usr/local/go/bin /usr/lib/go/bin; do
    [ -z "$d" ] || [ -x "$d/go" ] || continue
    [ -z "$d" ] || PATH="$d:$PATH"
    command -v go >/dev/null && go_ok && break
done
# Debian 12's own golang-go (1.19) is older: take bookworm-backports' from
# Debian's archive, with its source listed only for that install
if ! { command -v go >/dev/null && go_ok; }; then
    [ "$(id -u)" = 0 ] || { echo "build-wireguard-go: no Go >= 1.21 (run as root to install one)" >&2; exit 1; }
    bp=/etc/apt/sources.list.d/wgconn-backports.sources
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
        'Suites: bookworm-backports' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$bp"
    trap 'rm -f "$bp"; apt-get update -qq || true' EXIT
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -t bookworm-backports golang-go >/dev/null
    hash -r
    PATH="/usr/lib/go/bin:$PATH"
    go_ok || { echo "build-wireguard-go: no Go >= 1.21 after installing golang-go" >&2; exit 1; }
fi
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
ver=${WIREGUARD_GO_VERSION:-latest}
GOBIN="$bin" GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
    timeout 600 go install "golang.zx2c4.com/wireguard@$ver"
ln -sf wireguard "$bin/wireguard-go-current"
# record which version we got (go version -m reads the build info)
go version -m "$bin/wireguard" | sed -n '1,3p' > "$bin/wireguard-go-current.version" || true
"$bin/wireguard" --version || true
