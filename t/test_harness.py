"""Self-tests of the harness, no nginx module: two real wireguard-go peers.

ns A runs wireguard-go with the node's key and addresses (standing in for
nginx), ns B the peer of the chosen implementation with its services.
"""

import pytest

from harness import netns as nsmod
from harness.overlay import Overlay
from harness.services import (curl, curl_sha256, expected_sha256, tcp_echo,
                              udp_echo, url_host, ws_echo)


@pytest.fixture
def two_peers(overlay):
    overlay.start_node_peer()
    return overlay


def test_netns_pair_and_cleanup(root_env):
    with nsmod.Pair() as p:
        assert p.ns_a.startswith("wgc") and p.ns_b.startswith("wgc")
        assert p.addr_a.startswith("10.99.")
        assert nsmod.ping(p.ns_a, p.addr_b, count=2) == 2
        names = (p.ns_a, p.ns_b)
    left = nsmod.list_netns()
    assert not any(n in left for n in names)


def test_cleanup_stale_removes_dead_owner(root_env, tmp_path):
    p = nsmod.Pair().up()
    try:
        # pretend the owner crashed: a pid that cannot exist
        for ns in (p.ns_a, p.ns_b):
            with open(nsmod._owner_file(ns), "w") as f:
                f.write("999999999")
        removed = nsmod.cleanup_stale()
        assert p.ns_a in removed and p.ns_b in removed
        assert p.ns_a not in nsmod.list_netns()
    finally:
        p.down()


def test_ping_across(two_peers):
    ov = two_peers
    assert nsmod.ping(ov.ns_a, ov.peer_v4, count=3) == 3, ov.diagnostics()
    assert nsmod.ping(ov.ns_b, ov.node_v4, count=3) == 3, ov.diagnostics()
    assert nsmod.ping(ov.ns_a, ov.peer_v6, count=3) == 3, ov.diagnostics()
    assert nsmod.ping(ov.ns_a, ov.peer_v4, count=3, size=1200) == 3
    hs = ov.peer.latest_handshake(ov.node_pub)
    assert hs > 0, ov.diagnostics()


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_http_hello_and_download(two_peers, family):
    ov = two_peers
    host = url_host(ov.peer_v4 if family == "v4" else ov.peer_v6)
    cp = curl(ov.ns_a, "http://%s/" % host, timeout=20)
    assert cp.stdout == "hello from peer\n", ov.diagnostics()
    n = 1 << 20
    digest, got, rc, err = curl_sha256(ov.ns_a, "http://%s/bytes/%d"
                                       % (host, n), timeout=30)
    assert rc == 0, err
    assert got == n
    assert digest == expected_sha256(n)


def test_upload_sha256(two_peers, tmp_path):
    from harness.services import upload_sha256, write_pattern_file
    ov = two_peers
    n = 8 << 20
    path = write_pattern_file(str(tmp_path / "up.bin"), n)
    digest, got = upload_sha256(ov.ns_a, "http://%s/sha256" % ov.peer_v4,
                                path, timeout=60)
    assert got == n
    assert digest == expected_sha256(n)


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_tcp_and_udp_echo(two_peers, family):
    ov = two_peers
    host = ov.peer_v4 if family == "v4" else ov.peer_v6
    r = tcp_echo(ov.ns_a, host, 7, nbytes=4 << 20, timeout=30)
    assert r["ok"], (r, ov.diagnostics())
    r = udp_echo(ov.ns_a, host, 7, count=50, size=1000, timeout=15)
    assert r["ok"], (r, ov.diagnostics())


def test_websocket_echo(two_peers):
    ov = two_peers
    r = ws_echo(ov.ns_a, ov.peer_v4, 80, messages=5, size=70000)
    assert r["ok"], r


def test_tls_service(two_peers):
    ov = two_peers
    cp = curl(ov.ns_a, "https://%s/" % ov.peer_v4, "--cacert",
              ov.services.cert, timeout=20)
    assert cp.stdout == "hello from peer\n"


def test_handshake_from_peer_side(overlay_factory):
    """The node knows no endpoint: only the peer can initiate."""
    ov = overlay_factory(peer_knows_node_endpoint=True, peer_keepalive=1)
    ov.start_node_peer(node_knows_peer_endpoint=False)
    hs = ov.node_peer.wait_handshake(ov.peer_pub, timeout=15)
    assert hs > 0
    assert ov.node_peer.endpoint_of(ov.peer_pub) == ov.peer_endpoint
    assert nsmod.ping(ov.ns_a, ov.peer_v4, count=2) == 2


def test_handshake_from_node_side(overlay_factory):
    """The peer knows no endpoint: the node initiates, the peer learns it."""
    ov = overlay_factory(peer_knows_node_endpoint=False)
    ov.start_node_peer(node_knows_peer_endpoint=True)
    assert ov.peer.endpoint_of(ov.node_pub) is None
    assert nsmod.ping(ov.ns_a, ov.peer_v4, count=2) == 2, ov.diagnostics()
    assert ov.peer.endpoint_of(ov.node_pub) == ov.node_endpoint


def test_peer_restart_recovers(two_peers):
    ov = two_peers
    assert nsmod.ping(ov.ns_a, ov.peer_v4, count=2) == 2
    before = ov.peer.show()["peers"][ov.node_pub]["rx_bytes"]
    ov.restart_peer()
    after = ov.peer.show()["peers"][ov.node_pub]["rx_bytes"]
    assert after < before or after == 0   # a fresh process, fresh counters
    # the node still holds the old session: it re-handshakes on its own
    # after 15 s (+ jitter) without a reply; the SYN retransmitted at
    # 31 s then gets through
    cp = curl(ov.ns_a, "http://%s/" % ov.peer_v4, timeout=60,
              connect_timeout=50)
    assert cp.stdout == "hello from peer\n", ov.diagnostics()


def test_overlay_wgconn_block_renders(root_env, tmp_path):
    ov = Overlay(workdir=str(tmp_path))
    ov.pair.index = 7
    ov.pair.ns_a, ov.pair.ns_b = "wgc7-a", "wgc7-b"

    class P:
        public_key = "B" * 43 + "="
    ov.peer = P()
    text = ov.wgconn_block()
    assert "private_key_file  %s;" % ov.node_key_file in text
    assert "address           100.64.0.1/32 fd7a:115c:a1e0::1/128;" in text
    assert "endpoint              10.99.7.2:51820;" in text
    assert "peer %s {" % P.public_key in text
    import os
    import stat
    assert stat.S_IMODE(os.stat(ov.node_key_file).st_mode) == 0o600


def test_http_load_client(two_peers):
    from harness.services import http_load
    ov = two_peers
    r = http_load(ov.ns_a, ov.peer_v4, 80, path="/small", count=300,
                  concurrency=50, timeout=60)
    assert r["ok"], r
