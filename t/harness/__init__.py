"""Real-peer test harness for ngx_wgconn.

Network namespaces joined by veth pairs (netns), WireGuard peers with a TUN
device (wgpeer), services on the peer's overlay addresses (services,
peer_services), nginx instances (nginx) and a two-node topology that ties
them together (overlay).  Stdlib only; needs root, iproute2, wireguard-tools.

Naming: every namespace, veth and WireGuard interface the harness creates
starts with ``wgc``; underlay subnets are 10.99.N.0/24.
"""
