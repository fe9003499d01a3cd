#!/usr/bin/env bash
# Build build/ngx_wgconn_module.so as a dynamic module for Debian's nginx:
# a copy of nginx-dev's tree configured with the flags Debian's binary was
# built with (conf_flags), plus --with-stream=dynamic so that the stream
# half compiles; only the module target is built.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
b=$top/build
ngx=$b/nginx-src

if [ ! -f "$ngx/objs/Makefile" ] || [ "$top/config" -nt "$ngx/objs/Makefile" ]
then
    rm -rf "$ngx"
    cp -a /usr/share/nginx/src "$ngx"
    # shellcheck disable=SC1091
    . "$ngx/conf_flags"
    (cd "$ngx" && ./configure "${NGX_CONF_FLAGS[@]}" \
        --with-stream=dynamic --with-stream_ssl_module \
        --with-cc-opt="-g -O2 -fPIC -Wall -Wextra -Wno-unused-parameter" \
        --add-dynamic-module="$top" >"$b/configure.log" 2>&1) \
        || { tail -30 "$b/configure.log"; exit 1; }
fi

# configure creates the object directory; a partly cleaned tree lacks it
mkdir -p "$ngx/objs/addon/src"

# the glue includes lwIP's headers, which nginx's Makefile does not track
if [ "$b/lwip/liblwip.a" -nt "$ngx/objs/ngx_wgconn_module.so" ]; then
    find "$ngx/objs" -path "*/addon/*" -name "*.o" -delete
fi

make -s -C "$ngx" -f objs/Makefile objs/ngx_wgconn_module.so \
    >"$b/make.log" 2>&1 || { cat "$b/make.log"; exit 1; }
# the build is kept warning-free: show any warning the compiler printed
grep -A3 -i 'warning' "$b/make.log" || true
# replace, never overwrite in place: a running nginx maps the old file
cp "$ngx/objs/ngx_wgconn_module.so" "$b/ngx_wgconn_module.so.tmp.$$"
mv -f "$b/ngx_wgconn_module.so.tmp.$$" "$b/ngx_wgconn_module.so"
