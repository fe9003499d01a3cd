#!/bin/bash
# Interop proof: the wg core (through t/tools/wgping) against wireguard-go,
# in two network namespaces joined by a veth pair.  Only addresses inside
# these namespaces are used.  Idempotent; cleans up on exit.
#
#   wgt-a: veth 10.98.0.1/24, wgping on UDP 51821, overlay 100.64.0.1
#   wgt-b: veth 10.98.0.2/24, wireguard-go wgt0 on UDP 51820, 100.64.0.2/32

set -u

TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/wgt-interop.XXXXXX)
WGPING=$WORK/wgping
NSA=wgt-a
NSB=wgt-b
PASS=0
FAIL=0
WGGO_PID=

cleanup() {
    if [ -n "$WGGO_PID" ]; then
        kill "$WGGO_PID" 2>/dev/null
        wait "$WGGO_PID" 2>/dev/null
    fi
    ip netns del $NSA 2>/dev/null
    ip netns del $NSB 2>/dev/null
    rm -f /var/run/wireguard/wgt0.sock
    rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${WGT_KEEP:-}" ] && trap "cat $WORK/p1.log $WORK/wggo.log; cleanup" EXIT

ok()   { echo "ok   - $1"; PASS=$((PASS + 1)); }
fail() { echo "FAIL - $1"; FAIL=$((FAIL + 1)); }
check() { if eval "$2"; then ok "$1"; else fail "$1"; fi; }

for tool in wireguard-go wg ip ping; do
    if ! command -v $tool >/dev/null; then
        echo "missing $tool (apt-get install -y --no-install-recommends" \
             "wireguard-go wireguard-tools iproute2 iputils-ping)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

gcc -Wall -Wextra -std=gnu99 -O2 -I"$TOP/src" -o "$WGPING" \
    "$TOP/t/tools/wgping.c" "$TOP"/src/wg_*.c -lcrypto -lsodium || {
    echo "0 passed, 1 failed"; exit 1; }

ip netns del $NSA 2>/dev/null
ip netns del $NSB 2>/dev/null
ip netns add $NSA
ip netns add $NSB
ip link add wgt-va netns $NSA type veth peer name wgt-vb netns $NSB
ip -n $NSA addr add 10.98.0.1/24 dev wgt-va
ip -n $NSB addr add 10.98.0.2/24 dev wgt-vb
ip -n $NSA link set lo up
ip -n $NSB link set lo up
ip -n $NSA link set wgt-va up
ip -n $NSB link set wgt-vb up

A_PRIV=$(wg genkey)
A_PUB=$(echo "$A_PRIV" | wg pubkey)
B_PRIV=$(wg genkey)
B_PUB=$(echo "$B_PRIV" | wg pubkey)
echo "$B_PRIV" > "$WORK/b.key"

mkdir -p /var/run/wireguard
rm -f /var/run/wireguard/wgt0.sock
ip netns exec $NSB env WG_PROCESS_FOREGROUND=1 \
    WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
    wireguard-go -f wgt0 > "$WORK/wggo.log" 2>&1 &
WGGO_PID=$!

for i in $(seq 50); do
    ip netns exec $NSB wg show wgt0 >/dev/null 2>&1 && break
    sleep 0.1
done

ip netns exec $NSB wg set wgt0 private-key "$WORK/b.key" listen-port 51820 \
    peer "$A_PUB" allowed-ips 100.64.0.1/32 endpoint 10.98.0.1:51821
ip -n $NSB addr add 100.64.0.2/32 dev wgt0
ip -n $NSB link set wgt0 mtu 1420 up
ip -n $NSB route add 100.64.0.1/32 dev wgt0

# 1. wireguard-go initiates: wgping knows no endpoint and must learn it
timeout 30 ip netns exec $NSA "$WGPING" -k "$A_PRIV" -l 51821 \
    -p "$B_PUB" -a 100.64.0.2/32 -o 100.64.0.1 -d 6 \
    > "$WORK/a1.log" 2>&1 &
A1=$!
sleep 0.5

ip netns exec $NSB ping -c 5 -i 0.2 -W 3 100.64.0.1 > "$WORK/p1.log" 2>&1
check "wireguard-go initiates, ping -c 5 100.64.0.1 gets 5 replies" \
    "grep -q ' 5 received' '$WORK/p1.log'"

ip netns exec $NSB ping -c 3 -i 0.2 -W 3 -s 1200 100.64.0.1 \
    > "$WORK/p2.log" 2>&1
check "ping -s 1200 (1228-byte IP packets) gets 3 replies" \
    "grep -q ' 3 received' '$WORK/p2.log'"

ip netns exec $NSB ping -c 3 -i 0.2 -W 3 -s 1392 100.64.0.1 \
    > "$WORK/p3.log" 2>&1
check "ping -s 1392 (full 1420 MTU) gets 3 replies" \
    "grep -q ' 3 received' '$WORK/p3.log'"

wait $A1 2>/dev/null
cat "$WORK/a1.log"

check "wgping learned the endpoint from the initiation (roaming)" \
    "grep -q 'event: endpoint changed' '$WORK/a1.log'"
check "wgping did not initiate in the first run" \
    "! grep -q 'event: handshake sent' '$WORK/a1.log'"
check "wgping confirmed the session on first data (responder)" \
    "grep -q 'event: handshake done' '$WORK/a1.log'"

# 2. wgping initiates with a fresh state and pings wireguard-go's address
timeout 30 ip netns exec $NSA "$WGPING" -k "$A_PRIV" -l 51821 \
    -p "$B_PUB" -a 100.64.0.2/32 -o 100.64.0.1 -e 10.98.0.2:51820 \
    -t 100.64.0.2 -c 5 -i 200 -d 15 > "$WORK/a2.log" 2>&1
RC=$?
cat "$WORK/a2.log"
check "wgping initiates the handshake" \
    "grep -q 'event: handshake sent' '$WORK/a2.log' \
     && grep -q 'event: handshake done' '$WORK/a2.log'"
check "wgping -> wireguard-go: 5 echo replies" \
    "[ $RC -eq 0 ] && grep -q '5 sent, 5 received' '$WORK/a2.log'"

timeout 30 ip netns exec $NSA "$WGPING" -k "$A_PRIV" -l 51821 \
    -p "$B_PUB" -a 100.64.0.2/32 -o 100.64.0.1 -e 10.98.0.2:51820 \
    -t 100.64.0.2 -c 3 -s 1200 -i 200 -d 15 > "$WORK/a3.log" 2>&1
RC=$?
check "wgping -> wireguard-go: 3 replies of 1200 bytes" \
    "[ $RC -eq 0 ] && grep -q '3 sent, 3 received' '$WORK/a3.log'"

# 3. a preshared key: set on both sides it works, missing on one it fails
PSK=$(wg genpsk)
echo "$PSK" > "$WORK/psk"
ip netns exec $NSB wg set wgt0 peer "$A_PUB" preshared-key "$WORK/psk"

timeout 30 ip netns exec $NSA "$WGPING" -k "$A_PRIV" -l 51821 \
    -p "$B_PUB" -a 100.64.0.2/32 -o 100.64.0.1 -e 10.98.0.2:51820 \
    -t 100.64.0.2 -c 3 -i 200 -d 15 -P "$PSK" > "$WORK/a4.log" 2>&1
RC=$?
check "with a preshared key on both sides: 3 replies" \
    "[ $RC -eq 0 ] && grep -q '3 sent, 3 received' '$WORK/a4.log'"

timeout 30 ip netns exec $NSA "$WGPING" -k "$A_PRIV" -l 51821 \
    -p "$B_PUB" -a 100.64.0.2/32 -o 100.64.0.1 -e 10.98.0.2:51820 \
    -t 100.64.0.2 -c 1 -i 200 -d 3 > "$WORK/a5.log" 2>&1
check "preshared key missing on our side: no session" \
    "grep -q '1 sent, 0 received' '$WORK/a5.log' \
     && grep -q 'drops handshake invalid' '$WORK/a5.log' \
     && ! grep -q 'event: handshake done' '$WORK/a5.log'"

HS=$(ip netns exec $NSB wg show wgt0 latest-handshakes | awk '{print $2}')
check "wireguard-go reports a recent handshake" "[ '${HS:-0}' -gt 0 ]"
ip netns exec $NSB wg show wgt0

echo "$PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]
