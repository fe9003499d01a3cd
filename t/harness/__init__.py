"""Real-peer test harness for ngx_wgconn.

Network namespaces joined by veth pairs (netns), WireGuard peers with a TUN
device (wgpeer), services on the peer's overlay addresses (services,
peer_services), nginx instances (nginx) and a two-node topology that ties
them together (overlay).  Stdlib only; needs root, iproute2, wireguard-tools.

Naming: every namespace, veth and WireGuard interface the harness creates
starts with ``wgc``; underlay subnets are 10.99.N.0/24.  WireGuard TUN
devices are named wgc<N><a|b>, never wg0: wireguard-go's UAPI socket
(/var/run/wireguard/<if>.sock) is shared by all namespaces.

Running (as root):
    bash scripts/test-deps.sh                 # packages + current wireguard-go
    python3 -m pytest -q t/                   # everything (~10 min)
    python3 -m pytest -q t/ -m "not slow"     # without 256 MiB / rekey runs
    WGC_IMPLS=debian python3 -m pytest -q t/test_harness.py
    WGC_DEBUG=1 (nginx debug log), WGC_KEEP=1 (keep /tmp/wgc-* work dirs)

Leftover namespaces of a crashed run are removed at the start of the next
session (netns.cleanup_stale); `python3 -c "import sys; sys.path.insert(0,
't'); from harness import netns; netns.cleanup_stale(force=True)"` removes
all wgc* namespaces by hand.
"""
