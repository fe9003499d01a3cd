#!/usr/bin/env bash
# ngx_wgconn benchmark: one run, this machine, network namespaces + veth.
#
#   bash bench/run.sh            (as root; `make bench` builds the module first)
#
# Topology (N = first free index; everything lives in namespaces this script
# creates, named wgbN-*, underlay 10.97.N.0/24; cleaned up on exit):
#
#   ns wgbN-n  10.97.N.1   nginx (+ clients iperf3/wrk on its loopback)
#   ns wgbN-p  10.97.N.2   the peer: wireguard-go TUN 100.64.0.2 (MTU 1280),
#                          iperf3 -s on :5201, a plain nginx on :80 that
#                          answers `return 200 "ok"`
#
# Rows:
#   plain        nginx proxying over the veth to 10.97.N.2, no encryption
#   wg-debian    nginx -> TUN of Debian's wireguard-go in wgbN-n -> peer
#                (Debian's wireguard-go)
#   ours-debian  nginx + ngx_wgconn -> peer (Debian's wireguard-go)
#   wg-current   as wg-debian with the current wireguard-go on both sides
#   ours-current nginx + ngx_wgconn -> peer (current wireguard-go)
#   ours-ours    nginx + ngx_wgconn -> peer: a second nginx + ngx_wgconn
#                answering on its overlay address, no TUN device and no
#                wireguard-go (outbound tests only; iperf3 reaches the peer's
#                server through that nginx's stream proxy)
#
# Tests per row, outbound (clients on the node's loopback, nginx proxies
# into the overlay): iperf3 through nginx `stream { proxy_pass PEER:5201; }`,
# 1 and 4 streams, upload (client -> peer) and download (-R); wrk against
# nginx `proxy_pass http://PEER:80` (small response), requests/s + latency,
# through an upstream with keepalive (rps) and without, nginx's default, a
# new connection to the peer for every request (rpsc).
# Inbound (clients on the peer, nginx serves on the node's overlay address:
# `wgconn_listen` for ours, a `listen` on the TUN address for wg-*, on the
# veth address for plain): iperf3 through nginx `stream` to an iperf3 server
# on the node's loopback (iup1: peer -> node, idown1: node -> peer), and
# wrk against an nginx server that answers `return 200` itself (irps).
#
# Layouts (BENCH_LAYOUTS, default "split shared"): in "split" the node's
# processes (nginx, the engine, its clients, the node's wireguard-go in the
# wg-* rows) run on the first half of the CPUs and the peer's (wireguard-go,
# its nginx and iperf3, the inbound clients) on the other half, as two hosts
# would; in "shared" all of them share all CPUs, so the peer's wireguard-go
# competes with the node under test for the same cores.
#
# Environment: BENCH_SECONDS (per test, default 5), BENCH_WORKERS (nginx
# worker_processes, default 1), BENCH_CONNS (wrk connections, default 64),
# BENCH_ROWS (default "plain wg-debian ours-debian wg-current ours-current
# ours-ours"),
# BENCH_TESTS (default "up1 down1 up4 down4 rps rpsc iup1 idown1 irps"), BENCH_OUT (also write
# the table there), BENCH_KEEP=1 (keep the work directory with the logs),
# BENCH_HOOK (a command run in the background before each row's tests, with
# NS_N, NS_P, WORK, N, ROW and LAYOUT set: tcpdump, nstat, perf),
# BENCH_ROUNDS (default 1: run all layouts and rows that many times over;
# the tables then give each cell's median, and each ratio as the median of
# the ratios within a round with their range below it, since this
# machine's speed drifts over minutes and rows of one round ran close
# together).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
T=${BENCH_SECONDS:-5}
WORKERS=${BENCH_WORKERS:-1}
CONNS=${BENCH_CONNS:-64}
ROUNDS=${BENCH_ROUNDS:-1}
ROWS=${BENCH_ROWS:-"plain wg-debian ours-debian wg-current ours-current ours-ours"}
LAYOUTS=${BENCH_LAYOUTS:-"split shared"}
TESTS=${BENCH_TESTS:-"up1 down1 up4 down4 rps rpsc iup1 idown1 irps"}
MODULE=${WGC_MODULE:-$top/build/ngx_wgconn_module.so}
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
WG_DEBIAN=/usr/bin/wireguard-go
WG_CURRENT=$top/build/bin/wireguard-go-current
MTU=1280
NODE_OV=100.64.0.1
PEER_OV=100.64.0.2

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces, TUN devices)"
[ -e /dev/net/tun ] || die "no /dev/net/tun"

# -- tools -------------------------------------------------------------------
need=()
for t in iperf3 wrk nginx wg ip python3; do
    command -v "$t" >/dev/null || need+=("$t")
done
[ -x $WG_DEBIAN ] || need+=(wireguard-go)
if [ ${#need[@]} -gt 0 ]; then
    pkgs=()
    for t in "${need[@]}"; do
        case $t in
            wg) pkgs+=(wireguard-tools) ;;
            ip) pkgs+=(iproute2) ;;
            *) pkgs+=("$t") ;;
        esac
    done
    log "installing ${pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${pkgs[@]}" >/dev/null
fi
[ -f "$MODULE" ] || { log "building the module"; make -C "$top" module >/dev/null; }
if [[ " $ROWS " == *current* ]] && [ ! -x "$WG_CURRENT" ]; then
    bash "$top/scripts/build-wireguard-go.sh" >/dev/null 2>&1 \
        || { log "current wireguard-go unavailable: skipping its rows"
             ROWS=$(echo "$ROWS" | tr ' ' '\n' | grep -v current | tr '\n' ' '); }
fi
stream_load=""
if nginx -V 2>&1 | grep -q -- '--with-stream=dynamic' && [ -f $STREAM_MODULE ]; then
    stream_load="load_module $STREAM_MODULE;"
fi

# -- namespaces ----------------------------------------------------------------
exec 9>/run/wgb-bench.lock
flock 9
N=
for i in $(seq 0 249); do
    if ! ip netns list | grep -q "^wgb$i-"; then N=$i; break; fi
done
[ -n "$N" ] || die "no free wgb namespace index"
NS_N=wgb$N-n
NS_P=wgb$N-p
U_N=10.97.$N.1
U_P=10.97.$N.2
WORK=$(mktemp -d /tmp/wgb-XXXXXX)
chmod 755 "$WORK"
# a private copy: a rebuild during the run must not change the mapped file
cp "$MODULE" "$WORK/ngx_wgconn_module.so"
MODULE=$WORK/ngx_wgconn_module.so
pids=()
autogroup=

cleanup() {
    set +e
    [ -n "$autogroup" ] && sysctl -qw kernel.sched_autogroup_enabled="$autogroup"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for ns in $NS_N $NS_P; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    done
    sleep 0.3
    for ns in $NS_N $NS_P; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    rm -f /var/run/wireguard/wgb${N}n.sock /var/run/wireguard/wgb${N}p.sock
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# With autogroup scheduling each session shares the CPU as one group, so
# results would depend on which process happens to lead a session (a
# daemonized nginx master does, the engine does, wrk and the peers share
# this script's): off for the run, as for services in their own cgroups.
autogroup=$(sysctl -n kernel.sched_autogroup_enabled 2>/dev/null || true)
[ -n "$autogroup" ] && sysctl -qw kernel.sched_autogroup_enabled=0

ip netns add $NS_N
ip netns add $NS_P
flock -u 9
ip -n $NS_N link set lo up
ip -n $NS_P link set lo up
ip link add wgb$N-vn netns $NS_N type veth peer name wgb$N-vp netns $NS_P
ip -n $NS_N addr add $U_N/24 dev wgb$N-vn
ip -n $NS_P addr add $U_P/24 dev wgb$N-vp
ip -n $NS_N link set wgb$N-vn up
ip -n $NS_P link set wgb$N-vp up

wait_for() {  # tries cmd...
    local n=$1; shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

# the CPUs of a namespace's processes in the current layout
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || LAYOUTS=shared
cpus() {  # ns
    local a=0 b=$((NCPU - 1))
    if [ "$LAYOUT" = split ]; then
        if [ "$1" = "$NS_N" ]; then b=$((NCPU / 2 - 1)); else a=$((NCPU / 2)); fi
    fi
    if [ $a = $b ]; then echo $a; else echo $a-$b; fi
}
nsx() {  # ns command...: run in the namespace, on its CPUs
    local ns=$1; shift
    ip netns exec "$ns" taskset -c "$(cpus "$ns")" "$@"
}
pin_all() {  # what already runs in the namespaces, every thread
    local ns p
    for ns in $NS_N $NS_P; do
        for p in $(ip netns pids "$ns"); do
            taskset -a -p -c "$(cpus "$ns")" "$p" >/dev/null 2>&1 || true
        done
    done
}
LAYOUT=shared

(umask 077; wg genkey > "$WORK/node.key"; wg genkey > "$WORK/peer.key")
NODE_PUB=$(wg pubkey < "$WORK/node.key")
PEER_PUB=$(wg pubkey < "$WORK/peer.key")

# -- peer services -------------------------------------------------------------
# what every nginx of the run has in its http block: no logging, temporary
# files under its prefix, and keepalive connections never closed for a count
HTTP_COMMON='    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;
    keepalive_requests 1000000;'
mkdir -p "$WORK/peer-nginx/logs" "$WORK/peer-nginx/tmp"
cat > "$WORK/peer-nginx/nginx.conf" <<EOF
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
$HTTP_COMMON
    server { listen 80 reuseport; location / { return 200 "ok\n"; } }
}
EOF
ip netns exec $NS_P nginx -p "$WORK/peer-nginx" -c nginx.conf
ip netns exec $NS_P iperf3 -s -D -p 5201 --logfile "$WORK/iperf3-s.log"
wait_for 50 ip netns exec $NS_P bash -c 'exec 3<>/dev/tcp/127.0.0.1/5201' \
    || die "iperf3 server did not start"
# the inbound tests' backend, on the node's loopback
ip netns exec $NS_N iperf3 -s -D -B 127.0.0.1 -p 5301 \
    --logfile "$WORK/iperf3-node.log"
wait_for 50 ip netns exec $NS_N bash -c 'exec 3<>/dev/tcp/127.0.0.1/5301' \
    || die "iperf3 server (node) did not start"

declare -A wgpid
# -- wireguard-go --------------------------------------------------------------
wg_start() {  # ns ifname binary addr key peerpub peeraddr peerendpoint
    local ns=$1 ifn=$2 bin=$3 addr=$4 key=$5 ppub=$6 paddr=$7 pep=$8 try said
    # wireguard-go creates its UAPI socket and then watches it; a start
    # that lost it in between ("uapi socket" in its log) is tried again,
    # as t/harness/wgpeer.py does
    for try in 1 2 3; do
        rm -f /var/run/wireguard/$ifn.sock
        echo "==== start $try" >>"$WORK/$ifn.log"
        WG_PROCESS_FOREGROUND=1 LOG_LEVEL=error \
        WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
            nsx "$ns" "$bin" -f "$ifn" >>"$WORK/$ifn.log" 2>&1 &
        pids+=($!)
        wgpid[$ifn]=$!
        wait_for 100 ip netns exec "$ns" wg show "$ifn" && break
        wg_stop "$ns" "$ifn"
        said=$(sed -n "/^==== start $try\$/,\$p" "$WORK/$ifn.log")
        log "$bin did not start (try $try): $(tail -3 <<<"$said")"
        [ $try != 3 ] && [[ $said == *"uapi socket"* ]] \
            || die "$bin did not start"
    done
    ip netns exec "$ns" wg set "$ifn" private-key "$key" listen-port 51820 \
        peer "$ppub" allowed-ips "$paddr/32" endpoint "$pep:51820"
    ip -n "$ns" addr add "$addr/32" dev "$ifn"
    ip -n "$ns" link set "$ifn" mtu $MTU up
    ip -n "$ns" route replace "$paddr/32" dev "$ifn"
}

wg_stop() {  # ns ifname
    kill "${wgpid[$2]}" 2>/dev/null || true
    wait "${wgpid[$2]}" 2>/dev/null || true
    wait_for 50 bash -c "! ip -n $1 link show $2" || ip -n "$1" link del "$2" 2>/dev/null || true
}

# -- nginx under test ----------------------------------------------------------
node_nginx_start() {  # row upstream-address
    local row=$1 up=$2 d=$WORK/node-nginx-$1 wgconn="" load=""
    local in_http="listen $U_N:8081" in_stream="listen $U_N:5202"
    mkdir -p "$d/logs" "$d/tmp"
    chmod 755 "$d"
    if [[ $row == wg-* ]]; then
        in_http="listen $NODE_OV:8081"
        in_stream="listen $NODE_OV:5202"
    fi
    if [[ $row == ours-* ]]; then
        in_http="wgconn_listen 8081"
        in_stream="wgconn_listen 5202"
        load="load_module $MODULE;"
        wgconn="wgconn {
    private_key_file $WORK/node.key;
    address $NODE_OV/32;
    listen_port 51820;
    mtu $MTU;
    peer $PEER_PUB { allowed_ips $PEER_OV/32; endpoint $U_P:51820; name peer; }
}"
    fi
    cat > "$d/nginx.conf" <<EOF
$stream_load
$load
worker_processes $WORKERS;
${BENCH_NGINX_MAIN:-}
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 8192; }
$wgconn
http {
$HTTP_COMMON
    upstream peer_http { server $up:80; keepalive 64; }
    server {
        listen 127.0.0.1:8080;
        location / {
            proxy_pass http://peer_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /close {
            proxy_pass http://$up:80;
        }
    }
    server { $in_http; location / { return 200 "ok\n"; } }
}
stream {
    server { listen 127.0.0.1:5201; proxy_pass $up:5201; }
    server { $in_stream; proxy_pass 127.0.0.1:5301; }
}
EOF
    nsx $NS_N nginx -p "$d" -c nginx.conf \
        || die "nginx ($row) failed to start: $(tail -5 "$d/logs/error.log")"
    wait_for 50 ip netns exec $NS_N bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' \
        || die "nginx ($row) not listening"
}

node_nginx_stop() { nginx_stop "$WORK/node-nginx-$1"; }

nginx_stop() {  # prefix
    local d=$1 pid
    pid=$(cat "$d/logs/nginx.pid" 2>/dev/null) || return 0
    kill -QUIT "$pid" 2>/dev/null || true
    wait_for 100 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
}

# -- measurements --------------------------------------------------------------
iperf() {  # streams reverse -> Mbit/s (one retry after a failed run)
    local v
    v=$(iperf_once "$@")
    if [ "$v" = 0 ]; then
        log "$ROW: iperf3 -P $1 $2 failed ($(grep -o '"error":.*' \
            "$WORK/iperf-$LAYOUT-$ROW-$CLI_IPERF-$1$2.json" | head -1)), retrying"
        v=$(iperf_once "$@")
    fi
    echo "$v"
}

# the client side: outbound tests run on the node's loopback, inbound ones
# on the peer against the node's address (CLI_NS, CLI_HOST, CLI_IPERF,
# CLI_HTTP)
client_out() { CLI_NS=$NS_N CLI_HOST=127.0.0.1 CLI_IPERF=5201 CLI_HTTP=8080; }
client_in() {
    CLI_NS=$NS_P CLI_HOST=$NODE_OV CLI_IPERF=5202 CLI_HTTP=8081
    [ "$ROW" = plain ] && CLI_HOST=$U_N
    return 0
}

iperf_once() {
    local out
    out=$(nsx $CLI_NS timeout $((T + 20)) iperf3 -c $CLI_HOST \
          -p $CLI_IPERF -t "$T" -O 1 -P "$1" $2 -J 2>&1) || true
    echo "$out" > "$WORK/iperf-$LAYOUT-$ROW-$CLI_IPERF-$1$2.json"
    python3 -c '
import json, sys
try:
    j = json.loads(sys.stdin.read())
    print("%.0f" % (j["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception:
    print(0)' <<<"$out"
}

warm() {  # one request, and wait for the overlay to carry it
    wait_for 100 ip netns exec $NS_N bash -c \
        'exec 3<>/dev/tcp/127.0.0.1/8080; printf "GET / HTTP/1.0\r\n\r\n" >&3; grep -q "^ok" <&3'
}

# CPU time of every process in the two namespaces (all threads), and the
# machine's idle time, in clock ticks: one line each, "ns ticks cmdline"
cpu_snap() {  # file
    python3 - "$1" $NS_N $(ip netns pids $NS_N) -- $NS_P $(ip netns pids $NS_P) <<'PY'
import glob, sys
out, ns, lines = open(sys.argv[1], "w"), None, []
args = sys.argv[2:]
for i, w in enumerate(args):
    if i == 0 or args[i - 1] == "--":
        ns = w
        continue
    if w == "--":
        continue
    t = 0
    try:
        for f in glob.glob("/proc/%s/task/*/stat" % w):
            v = open(f).read().rsplit(")", 1)[1].split()
            t += int(v[11]) + int(v[12])
        cmd = open("/proc/%s/cmdline" % w).read().replace("\0", " ")
    except OSError:
        continue
    lines.append("%s %d %s %s" % (ns, t, w, cmd))
v = open("/proc/stat").readline().split()
lines.append("idle %d" % (int(v[4]) + int(v[5])))
lines.append("time %s" % open("/proc/uptime").read().split()[0])
out.write("\n".join(lines) + "\n")
PY
}

# the network counters of both namespaces' kernels, around a bulk test
net_snap() {  # file
    local ns
    for ns in $NS_N $NS_P; do
        ip netns exec $ns nstat -asz 2>/dev/null \
            | awk -v ns=$ns 'NR > 1 { print ns, $1, $2 }'
    done > "$1"
}

# what the test lost, from net_snap before it: datagrams the UDP sockets
# received and dropped for a full buffer (the WireGuard sockets: ours,
# wireguard-go's), and TCP segments the kernel resent (the peer's, and the
# node's in the wg-* rows; lwIP's: the `tcp resent` line of wgconn_status),
# and how busy each CPU was (in the split layout: which side sets the pace)
net_loss() {  # -> "udp in/dropped node=N/N peer=N/N; tcp resent node=N peer=N; busy cpu0=N% ..."
    net_snap "$WORK/net.b"
    python3 - "$WORK/net.a" "$WORK/net.b" $NS_N "$WORK/busy.a" "$WORK/busy.b" <<'PY'
import sys
def load(f):
    return {(w[0], w[1]): int(w[2]) for w in (l.split() for l in open(f))}
def cpus(f):
    return {w[0]: [int(x) for x in w[1:]] for w in (l.split() for l in open(f))}
a, b, ns_n = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
ca, cb = cpus(sys.argv[4]), cpus(sys.argv[5])
def d(side, k):
    return sum(v - a.get(key, 0) for key, v in b.items()
               if key[1] == k and (key[0] == ns_n) == (side == "node"))
def busy(c):
    t = [y - x for x, y in zip(ca[c], cb[c])]
    return 100.0 * (1 - (t[3] + t[4]) / sum(t)) if sum(t) else 0
print("udp in/dropped node=%d/%d peer=%d/%d; tcp resent node=%d peer=%d;"
      " busy %s" % (
    d("node", "UdpInDatagrams"), d("node", "UdpRcvbufErrors"),
    d("peer", "UdpInDatagrams"), d("peer", "UdpRcvbufErrors"),
    d("node", "TcpRetransSegs"), d("peer", "TcpRetransSegs"),
    " ".join("%s=%.0f%%" % (c, busy(c)) for c in sorted(cb) if c in ca)))
PY
}

# what a request costs each process (us of CPU), from two snapshots taken
# inside the wrk run: "nginx=13.3 engine=8.1 wrk=8.0 ... idle=3.1"
cpu_per_request() {  # a b rps
    python3 - "$@" "$NS_N" "$(getconf CLK_TCK)" <<'PY'
import sys
a, b, rps, ns_n, hz = sys.argv[1:6]
def load(f):
    d = {}
    for l in open(f):
        w = l.split()
        if w[0] in ("idle", "time"):
            d[w[0]] = (w[0], float(w[1]))
            continue
        ns, t, cmd = w[0], int(w[1]), " ".join(w[3:])
        side = "node" if ns == ns_n else "peer"
        if "wgconn engine" in cmd:
            k = "engine" if side == "node" else "peer-engine"
        elif "nginx" in cmd:
            k = side + "-nginx"
        elif "wireguard-go" in cmd:
            k = side + "-wg"
        elif cmd.startswith("wrk"):
            k = "wrk"
        else:
            continue
        d[(w[2], cmd)] = (k, t)
    return d
da, db = load(a), load(b)
per = {}
for key, (k, t) in db.items():
    if key in da and k != "time":
        per[k] = per.get(k, 0) + t - da[key][1]
secs = db["time"][1] - da["time"][1]
rps, hz = float(rps), float(hz)
if rps > 0:
    order = ["node-nginx", "engine", "node-wg", "wrk", "peer-wg",
             "peer-engine", "peer-nginx", "idle"]
    print(" ".join("%s=%.1f" % (k, per[k] / hz / secs / rps * 1e6)
                   for k in order if k in per))
PY
}

# the peer's share of a request bounds the ratio to plain whatever the
# node does: "bound 0.65, node adds 10.1, 0.6x allows 2.8"
node_bound() {  # "plain cpu" "ours cpu"
    python3 - "$@" <<'PY'
import sys
def load(s):
    return {k: float(v) for k, v in (w.split("=") for w in s.split())}
p, o = load(sys.argv[1]), load(sys.argv[2])
node = ("node-nginx", "engine", "idle")
p_all, o_all = sum(p.values()), sum(o.values())
p_node = sum(p.get(k, 0) for k in node)
o_node = sum(o.get(k, 0) for k in node)
rest = o_all - o_node
print("bound %.2f, node adds %.1f, 0.6x allows %.1f"
      % (p_all / (rest + p_node), o_node - p_node,
         p_all / 0.6 - rest - p_node))
PY
}

# two snapshots inside a test of T seconds starting now, in the background
# ($! is its pid): after skip seconds and a second before the end
snap_inside() {  # skip command file-a file-b
    local w=$((T > 3 ? T - 2 : 1))
    (sleep "$1"; $2 "$3"; sleep $w; $2 "$4") &
}

# every CPU's time counters, for net_loss's "busy"
cpu_lines() {  # file
    grep '^cpu[0-9]' /proc/stat > "$1"
}

wrk_run() {  # [path] -> "rps p50ms p99ms"; the CPU per request in $WORK/cpu-*
    local out sampler path=${1:-/}
    snap_inside 1 cpu_snap "$WORK/cpu.a" "$WORK/cpu.b"
    sampler=$!
    out=$(nsx $CLI_NS timeout $((T + 20)) wrk -t 2 -c "$CONNS" \
          -d "${T}s" --latency http://$CLI_HOST:$CLI_HTTP$path 2>&1) \
        || { wait $sampler; echo "0 - -"; return; }
    wait $sampler
    python3 -c '
import re, sys
s = sys.stdin.read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    f = float(m.group(1))
    return f / 1000 if m.group(2) == "us" else f * 1000 if m.group(2) == "s" else f
rps = re.search(r"Requests/sec:\s+([\d.]+)", s)
p50 = re.search(r"\s50%\s+(\S+)", s)
p99 = re.search(r"\s99%\s+(\S+)", s)
err = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", s)
print("%.0f %.2f %.2f" % (float(rps.group(1)) if rps else 0,
      ms(p50.group(1)) if p50 else 0, ms(p99.group(1)) if p99 else 0))
' <<<"$out"
}

declare -A R

# a bulk test of measure()'s row: Mbit/s in R[row,test], what it lost in
# R[row,l-test]
bulk() {  # test streams reverse
    local sampler
    net_snap "$WORK/net.a"
    # past the second iperf3 omits (-O 1)
    snap_inside 2 cpu_lines "$WORK/busy.a" "$WORK/busy.b"
    sampler=$!
    R[$row,$1]=$(iperf "$2" "$3")
    wait $sampler
    R[$row,l-$1]=$(net_loss)
}

measure() {  # row
    local row=$ROUND/$LAYOUT/$1
    ROW=$1
    pin_all
    warm || log "$row: warm-up request failed"
    if [ -n "${BENCH_HOOK:-}" ]; then
        NS_N=$NS_N NS_P=$NS_P WORK=$WORK N=$N ROW=$1 LAYOUT=$LAYOUT \
            bash -c "$BENCH_HOOK" &
        pids+=($!)
        sleep 0.5
    fi
    for t in $TESTS; do
        # the inbound clients need a TUN device on the peer
        [[ $t == i* && $1 == ours-ours ]] && continue
        client_out
        [[ $t == i* ]] && client_in
        case $t in
            up1) bulk up1 1 "" ;;
            down1) bulk down1 1 -R ;;
            up4) bulk up4 4 "" ;;
            down4) bulk down4 4 -R ;;
            rps) read -r R[$row,rps] R[$row,p50] R[$row,p99] <<<"$(wrk_run)"
                 R[$row,cpu]=$(cpu_per_request "$WORK/cpu.a" "$WORK/cpu.b" \
                               "${R[$row,rps]}") ;;
            rpsc) read -r R[$row,rpsc] R[$row,cp50] R[$row,cp99] \
                      <<<"$(wrk_run /close)"
                  R[$row,ccpu]=$(cpu_per_request "$WORK/cpu.a" "$WORK/cpu.b" \
                                 "${R[$row,rpsc]}") ;;
            iup1) bulk iup1 1 "" ;;
            idown1) bulk idown1 1 -R ;;
            irps) read -r R[$row,irps] R[$row,ip50] R[$row,ip99] <<<"$(wrk_run)"
                  R[$row,icpu]=$(cpu_per_request "$WORK/cpu.a" "$WORK/cpu.b" \
                                 "${R[$row,irps]}") ;;
        esac
    done
    log "$row: up1 ${R[$row,up1]:--} down1 ${R[$row,down1]:--}" \
        "up4 ${R[$row,up4]:--} down4 ${R[$row,down4]:--} Mbit/s;" \
        "${R[$row,rps]:--} req/s p50 ${R[$row,p50]:--} ms p99 ${R[$row,p99]:--} ms;" \
        "new connections: ${R[$row,rpsc]:--} req/s;" \
        "inbound: up1 ${R[$row,iup1]:--} down1 ${R[$row,idown1]:--} Mbit/s" \
        "${R[$row,irps]:--} req/s p50 ${R[$row,ip50]:--} ms"
}

# the peer as an nginx of its own with ngx_wgconn (row ours-ours): it
# answers on its overlay address itself, as the peer's plain nginx does
# behind the TUN device, and passes iperf3 on to the server on its loopback
peer_ours_start() {
    local d=$WORK/peer-ours
    mkdir -p "$d/logs" "$d/tmp"
    chmod 755 "$d"
    cat > "$d/nginx.conf" <<EOF
$stream_load
load_module $MODULE;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 8192; }
wgconn {
    private_key_file $WORK/peer.key;
    address $PEER_OV/32;
    listen_port 51820;
    mtu $MTU;
    peer $NODE_PUB { allowed_ips $NODE_OV/32; endpoint $U_N:51820; name node; }
}
http {
$HTTP_COMMON
    server { wgconn_listen 80; location / { return 200 "ok\n"; } }
}
stream {
    server { wgconn_listen 5201; proxy_pass 127.0.0.1:5201; }
}
EOF
    nsx $NS_P nginx -p "$d" -c nginx.conf \
        || die "the peer's nginx (ours) failed to start: $(tail -5 "$d/logs/error.log")"
}

peer_impl=
peer_stop() {
    case $peer_impl in
        "") ;;
        ours) nginx_stop "$WORK/peer-ours" ;;
        *) wg_stop $NS_P wgb${N}p ;;
    esac
    peer_impl=
}

peer_set() {  # debian|current|ours
    [ "$peer_impl" = "$1" ] && return
    peer_stop
    if [ "$1" = ours ]; then
        peer_ours_start
    else
        local bin=$WG_DEBIAN
        [ "$1" = current ] && bin=$WG_CURRENT
        wg_start $NS_P wgb${N}p $bin $PEER_OV "$WORK/peer.key" "$NODE_PUB" \
            $NODE_OV $U_N
    fi
    peer_impl=$1
}

log "namespaces $NS_N/$NS_P, ${T}s per test, $WORKERS nginx worker(s), rows: $ROWS, layouts: $LAYOUTS, rounds: $ROUNDS"
for ROUND in $(seq "$ROUNDS"); do
for LAYOUT in $LAYOUTS; do
# a peer started in the other layout keeps the CPU count its runtime saw
peer_stop
for row in $ROWS; do
    case $row in
        plain)
            node_nginx_start plain $U_P
            measure plain
            node_nginx_stop plain ;;
        wg-debian|wg-current)
            impl=${row#wg-}
            bin=$WG_DEBIAN; [ $impl = current ] && bin=$WG_CURRENT
            peer_set $impl
            wg_start $NS_N wgb${N}n $bin $NODE_OV "$WORK/node.key" "$PEER_PUB" \
                $PEER_OV $U_P
            node_nginx_start $row $PEER_OV
            measure $row
            node_nginx_stop $row
            wg_stop $NS_N wgb${N}n ;;
        ours-debian|ours-current|ours-ours)
            peer_set ${row#ours-}
            node_nginx_start $row $PEER_OV
            measure $row
            node_nginx_stop $row ;;
        *) die "unknown row $row" ;;
    esac
done
done
done

# -- table ---------------------------------------------------------------------
# the rounds' values of one cell, "-" where a round has none
cells() {  # row col
    local r
    for r in $(seq "$ROUNDS"); do printf '%s ' "${R[$r/$LAYOUT/$1,$2]:--}"; done
}

table() {  # cols...
    local row c
    printf '%-13s' row
    for c in "$@"; do printf ' %9s' "$c"; done
    echo
    for row in $ROWS; do
        printf '%-13s' "$row"
        for c in "$@"; do
            median "$(cells "$row" "$c")"
        done
        echo
    done
    echo
    echo "ratios (ours / baseline; latency: baseline / ours, higher is better)"
    for pair in "ours-debian wg-debian" "ours-current wg-current" \
                "ours-debian plain" "ours-current plain" "ours-ours plain"; do
        set -- $pair "$@"
        local a=$1 b=$2 line range=
        shift 2
        [[ " $ROWS " == *" $a "* && " $ROWS " == *" $b "* ]] || continue
        printf '%-13s' "/$b"
        for c in "$@"; do
            line=$(ratio "$(cells "$a" "$c")" "$(cells "$b" "$c")" \
                   $([[ $c == p* || $c == ip* ]] && echo 1 || echo 0))
            printf '%s' "${line%|*}"
            range+=${line#*|}
        done
        echo "   ($a)"
        if [ "$ROUNDS" -gt 1 ]; then printf '%-13s%s\n' "  range" "$range"; fi
    done
}

# a cell: the median of its rounds
median() {  # "values"
    python3 -c '
import sys, statistics
v = [float(x) for x in sys.argv[1].split() if x != "-"]
print(" %9s" % (("%.2f" % statistics.median(v)).rstrip("0").rstrip(".")
                if v else "-"), end="")' "$1"
}

# "median|min-max" of the ratios of two rows' cells, round by round
ratio() {  # "a values" "b values" inverse
    python3 -c '
import sys, statistics
a, b, inv = sys.argv[1].split(), sys.argv[2].split(), sys.argv[3] == "1"
r = []
for x, y in zip(a, b):
    try:
        x, y = float(x), float(y)
        r.append(y / x if inv else x / y)
    except (ValueError, ZeroDivisionError):
        pass
if r:
    print(" %9.2f| %9s" % (statistics.median(r),
                           "%.2f-%.2f" % (min(r), max(r))), end="")
else:
    print(" %9s| %9s" % ("-", "-"), end="")' "$1" "$2" "$3"
}

bound_table() {
    local r row k t lines=
    for r in $(seq "$ROUNDS"); do
        if [ "$ROUNDS" -gt 1 ]; then lines+="round $r"$'\n'; fi
        for row in $ROWS; do
            [[ $row == ours-* ]] || continue
            k=$r/$LAYOUT/$row
            for t in cpu ccpu; do
                [ -n "${R[$k,$t]:-}" ] && [ -n "${R[$r/$LAYOUT/plain,$t]:-}" ] \
                    || continue
                lines+=$(printf '%-13s %-5s %s' "$row" \
                         "$([ $t = cpu ] && echo rps: || echo rpsc:)" \
                         "$(node_bound "${R[$r/$LAYOUT/plain,$t]}" "${R[$k,$t]}")")
                lines+=$'\n'
            done
        done
    done
    [[ $lines == *bound* ]] || return 0
    echo "the ratio to plain if the node (its nginx, the engine, idle)"
    echo "cost what plain's does and the rest (wrk, the peer) as measured;"
    echo "and what the node's overlay may add per request for 0.6x (us)"
    printf '%s\n' "$lines"
}

tables() {
    local r k row t
    for LAYOUT in $LAYOUTS; do
        if [ "$LAYOUT" = split ]; then
            echo "== layout split: node on CPUs $(cpus "$NS_N"), peer on CPUs $(cpus "$NS_P")"
        else
            echo "== layout shared: node and peer on all $NCPU CPUs"
        fi
        echo
        echo "outbound: clients on the node's loopback -> nginx -> the peer"
        echo "(Mbit/s: up1 down1 up4 down4; req/s: rps, and rpsc with a new"
        echo "connection to the peer for each request; ms: p50 p99 of rps)"
        table up1 down1 up4 down4 rps p50 p99 rpsc
        echo
        echo "inbound: clients on the peer -> nginx on the node's address"
        echo "(Mbit/s: iup1 = peer -> node, idown1 = node -> peer; req/s: irps; ms: ip50 ip99)"
        table iup1 idown1 irps ip50 ip99
        echo
        echo "CPU per request (us; idle: what the CPUs left unused) in the"
        echo "small-response tests, outbound (rps, rpsc) and inbound (irps)"
        for r in $(seq "$ROUNDS"); do
            if [ "$ROUNDS" -gt 1 ]; then echo "round $r"; fi
            for row in $ROWS; do
                k=$r/$LAYOUT/$row
                [ -n "${R[$k,cpu]:-}${R[$k,ccpu]:-}${R[$k,icpu]:-}" ] || continue
                printf '%-13s rps:  %s\n' "$row" "${R[$k,cpu]:--}"
                printf '%-13s rpsc: %s\n' "" "${R[$k,ccpu]:--}"
                printf '%-13s irps: %s\n' "" "${R[$k,icpu]:--}"
            done
        done
        echo
        # with both sides on the same CPUs, a request's CPU in all sets
        # the rate; in the split layout the busier side's does
        [ "$LAYOUT" = shared ] && bound_table
        echo "losses in the bulk tests (datagrams the WireGuard sockets"
        echo "received and dropped; segments the kernels' TCP resent)"
        for r in $(seq "$ROUNDS"); do
            if [ "$ROUNDS" -gt 1 ]; then echo "round $r"; fi
            for row in $ROWS; do
                k=$r/$LAYOUT/$row
                for t in up1 down1 up4 down4 iup1 idown1; do
                    [ -n "${R[$k,l-$t]:-}" ] || continue
                    printf '%-13s %-7s %s\n' "$row" "$t:" "${R[$k,l-$t]}"
                done
            done
        done
        echo
    done
}

echo
echo "ngx_wgconn bench: $(nproc) cores, $(uname -r), ${T}s per test," \
     "$WORKERS nginx worker(s), wrk -c $CONNS"
echo "wireguard-go: debian $($WG_DEBIAN --version 2>/dev/null | head -1 | awk '{print $2}')," \
     "current $([ -x "$WG_CURRENT" ] && $WG_CURRENT --version 2>/dev/null | head -1 | awk '{print $2}')"
echo
tables | tee ${BENCH_OUT:-/dev/null}
