#!/usr/bin/env bash
# Build nginx from Debian's source package with ngx_wgconn linked in
# statically (--add-module), proving the same `config` serves both builds.
# Result: build/nginx-static/objs/nginx
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
b=$top/build
dst=$b/nginx-static

if [ ! -d "$b/src/nginx" ]; then
    rm -rf "$b/src/nginx.tmp"
    mkdir -p "$b/src/nginx.tmp"
    # the newest version's source may be missing from a mirror (security
    # archive): take the newest one that downloads
    (cd "$b/src/nginx.tmp"
     for v in $(apt-cache showsrc nginx | awk '/^Version:/ {print $2}' \
                | sort -rV); do
         apt-get source -qq "nginx=$v" >/dev/null 2>&1 && exit 0
     done
     echo "build-static: no nginx source package could be fetched" >&2
     exit 1)
    mv "$b/src/nginx.tmp"/nginx-1.* "$b/src/nginx"
    rm -rf "$b/src/nginx.tmp"
fi

rm -rf "$dst"
cp -a "$b/src/nginx" "$dst"
cd "$dst"
./configure --with-compat --with-http_ssl_module --with-stream \
    --with-stream_ssl_module --with-threads \
    --with-cc-opt="-O2 -g -Wall -Wextra -Wno-unused-parameter" \
    --add-module="$top" >"$b/configure-static.log" 2>&1 \
    || { tail -30 "$b/configure-static.log"; exit 1; }
make -s -j"$(nproc)" >"$b/make-static.log" 2>&1 \
    || { tail -40 "$b/make-static.log"; exit 1; }
grep -A3 -i 'warning' "$b/make-static.log" | grep -v '^--$' | head -40 || true
./objs/nginx -V 2>&1 | grep -q -- "--add-module=$top"
echo "static build: $dst/objs/nginx"
