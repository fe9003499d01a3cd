#!/usr/bin/env bash
# Install what building the module needs on Debian 12, from Debian's archive
# only, and unpack lwIP's Debian source package into build/src.  Idempotent.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
src=$top/build/src

need=(gcc make patch pkg-config dpkg-dev nginx nginx-dev libnginx-mod-stream
      libssl-dev libsodium-dev libjansson-dev)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
        || missing+=("$p")
done

# deb-src entries for the archives the machine already uses, so that
# `apt-get source` finds lwip (and nginx for the static build check)
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ \
   && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' \
            /etc/apt/sources.list.d/debian.sources \
            > /etc/apt/sources.list.d/wgconn-src.sources
    else
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
            > /etc/apt/sources.list.d/wgconn-src.list
    fi
    rm -f "$top/build/.apt-updated"
fi

mkdir -p "$top/build"
if [ ${#missing[@]} -gt 0 ] || [ ! -e "$top/build/.apt-updated" ]; then
    apt-get update -qq
    touch "$top/build/.apt-updated"
fi
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"
fi

# lwIP: Debian's source package with Debian's patches, then ours
# (patches/lwip-*.patch); re-extracted whenever our patches change
stamp=$(cat "$top"/patches/lwip-*.patch 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$src/lwip/.wgconn-patches" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$src/lwip" "$src/lwip.tmp" "$top/build/lwip"
    mkdir -p "$src/lwip.tmp"
    (cd "$src/lwip.tmp" && apt-get source -qq --download-only lwip \
        && dpkg-source -x lwip_*.dsc lwip >/dev/null 2>&1)
    for p in "$top"/patches/lwip-*.patch; do
        [ -e "$p" ] || continue
        patch -s -d "$src/lwip.tmp/lwip" -p1 < "$p"
    done
    echo "$stamp" > "$src/lwip.tmp/lwip/.wgconn-patches"
    mv "$src/lwip.tmp/lwip" "$src/lwip"
    rm -rf "$src/lwip.tmp"
fi
grep -q 'LWIP_VERSION_REVISION *3' "$src/lwip/src/include/lwip/init.h" \
    || { echo "deps: expected lwIP 2.1.3 in $src/lwip" >&2; exit 1; }
