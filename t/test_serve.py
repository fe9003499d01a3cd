"""nginx serving on its own overlay address ("wgconn_listen"), and the
ingress chain both ways.

Topology (harness.overlay): nginx in ns wgcN-a is the node (100.64.0.1,
fd7a:115c:a1e0::1); wireguard-go runs in ns wgcN-b as the peer (100.64.0.2,
fd7a:115c:a1e0::2).  Clients run on the peer and talk to the node's overlay
address; nginx's backends are services on ns A's loopback (HTTP 9000, TCP
and UDP echo 9007).
"""

import os
import re
import time

import pytest

from harness import netns as nsmod
from harness.nginx import (assert_engine_gives_back, build_conf, line_of,
                           wait_log)
from harness.overlay import NODE_V4, NODE_V6, PEER_V4, PEER_V6
from harness.wgpeer import genkey
from harness.services import (PeerServices, curl, expected_sha256,
                              http_load, load_while_reloading,
                              make_self_signed, nsclient,
                              tcp_echo, udp_echo, upload_sha256, url_host,
                              write_pattern_file)

pytestmark = pytest.mark.nginx_module

BACKEND_HTTP = 9000
BACKEND_ECHO = 9007
INGRESS_PORT = 8080      # loopback -> peer (the outbound half of the chain)
CLOSED_PORT = 7999

HTTP_BLOCK = """
client_max_body_size 0;
log_format peer '$remote_addr $remote_port $wgconn_peer_name '
                '$wgconn_peer_key $server_addr $server_port $status';
map $wgconn_peer_name $greeting { peerb "hello b"; default "who?"; }
server {
    wgconn_listen 80;
    access_log logs/peer.log peer;
    proxy_read_timeout 120s;
    location / {
        add_header X-Peer $wgconn_peer_name;
        add_header X-Key $wgconn_peer_key;
        return 200 "hi $remote_addr $wgconn_peer_name\\n";
    }
    location = /small { return 200 "ok\\n"; }
    # "return" runs before the access phase: ask a backend instead
    location /allowed { allow %(peer4)s; allow %(peer6)s; deny all;
                        proxy_pass http://127.0.0.1:%(backend)d/small; }
    location /denied  { deny %(peer4)s; deny %(peer6)s; allow all;
                        proxy_pass http://127.0.0.1:%(backend)d/small; }
    location /backend/ {
        proxy_pass http://127.0.0.1:%(backend)d/;
        proxy_request_buffering off;
    }
}
server {
    wgconn_listen 443 ssl;
    server_name a.wgc.test;
    ssl_certificate %(cert_a)s;
    ssl_certificate_key %(key_a)s;
    return 200 "tls a $ssl_server_name $wgconn_peer_name\\n";
}
server {
    wgconn_listen 8443 ssl http2;
    ssl_certificate %(cert_a)s;
    ssl_certificate_key %(key_a)s;
    return 200 "$server_protocol $remote_addr $wgconn_peer_name $greeting\\n";
}
server {
    wgconn_listen 443 ssl;
    server_name b.wgc.test;
    ssl_certificate %(cert_b)s;
    ssl_certificate_key %(key_b)s;
    return 200 "tls b $ssl_server_name $wgconn_peer_name\\n";
}
server {
    listen 127.0.0.1:%(ingress)d;
    wgconn_listen %(ingress)d;            # the same server on both
    location / { proxy_pass http://%(peer4)s:80; }
    location = /wgconn { wgconn_status; }
}
"""

STREAM_BLOCK = """
server { wgconn_listen 7000; proxy_pass 127.0.0.1:%(echo)d; }
server { wgconn_listen 7000 udp; proxy_pass 127.0.0.1:%(echo)d;
         proxy_timeout 5s; }
server { wgconn_listen 7001;
         return "$remote_addr $wgconn_peer_name $wgconn_peer_key\\n"; }
"""


def certs(workdir):
    out = {}
    for name in ("a", "b"):
        d = os.path.join(workdir, "cert-" + name)
        cert, key = os.path.join(d, "peer.crt"), os.path.join(d, "peer.key")
        if not os.path.exists(key):
            os.makedirs(d, exist_ok=True)
            cert, key = make_self_signed(
                d, cn="%s.wgc.test" % name,
                sans=("DNS:%s.wgc.test" % name,))
        out["cert_" + name], out["key_" + name] = cert, key
    return out


def serve_conf(ov, workers=1, http=HTTP_BLOCK, stream=STREAM_BLOCK,
               **wgconn):
    params = dict(peer4=PEER_V4, peer6=PEER_V6, backend=BACKEND_HTTP,
                  echo=BACKEND_ECHO, ingress=INGRESS_PORT)
    params.update(certs(ov.workdir))
    return build_conf(wgconn=ov.wgconn_block(**wgconn),
                      http=http % params, stream=stream % params,
                      main="worker_rlimit_nofile 8192;", workers=workers)


def start_served(ov, daemon=False):
    backend = PeerServices(ov.ns_a, ov.workdir, tls=False,
                           http_port=BACKEND_HTTP,
                           echo_port=BACKEND_ECHO).start()
    n = ov.nginx(serve_conf(ov, workers=2))
    rc, out = n.test()
    assert rc == 0, out
    n.start(wait_ports=[INGRESS_PORT], daemon=daemon)
    wait_log(n, r"serving overlay tcp port 80", timeout=10)
    return backend, n


@pytest.fixture
def served(overlay, nginx_module):
    """nginx serving on the overlay, backends on ns A's loopback."""
    backend, n = start_served(overlay)
    yield overlay, n
    backend.stop()
    bad = n.alerts()
    assert not bad, "nginx alerts:\n" + "\n".join(bad[-20:])


def node_url(path, host=NODE_V4, scheme="http"):
    return "%s://%s%s" % (scheme, url_host(host), path)


# -- http -----------------------------------------------------------------

@pytest.mark.parametrize("node,peer", [(NODE_V4, PEER_V4),
                                       (NODE_V6, PEER_V6)], ids=["v4", "v6"])
def test_curl_from_peer_sees_overlay_identity(served, node, peer):
    ov, n = served
    cp = curl(ov.ns_b, node_url("/", node), "-i", timeout=30, check=False)
    assert cp.returncode == 0, (cp.stderr, ov.diagnostics())
    assert cp.stdout.endswith("hi %s peerb\n" % peer), cp.stdout
    assert re.search(r"(?im)^X-Peer: peerb\r?$", cp.stdout), cp.stdout
    assert "X-Key: %s" % ov.peer_pub in cp.stdout, cp.stdout

    # the access log has the overlay peer, its key and the node's address
    def logged():
        try:
            with open(os.path.join(n.prefix, "logs", "peer.log")) as f:
                return [ln.split() for ln in f if ln.startswith(peer + " ")]
        except OSError:
            return []
    nsmod.wait_until(logged, 5, what="access log line")
    f = logged()[-1]
    assert f[0] == peer and 1024 <= int(f[1]) <= 65535
    assert f[2:7] == ["peerb", ov.peer_pub, node, "80", "200"], f


def test_allow_deny_by_overlay_address(served):
    ov, n = served
    for node in (NODE_V4, NODE_V6):
        cp = curl(ov.ns_b, node_url("/allowed", node), "-w", " %{http_code}",
                  check=False)
        assert cp.stdout == "ok\n 200", (cp.stdout, cp.stderr)
        cp = curl(ov.ns_b, node_url("/denied", node), "-o", "/dev/null",
                  "-w", "%{http_code}", check=False)
        assert cp.stdout == "403", (cp.stdout, cp.stderr)


def test_tls_with_sni_on_overlay_listener(served):
    ov, n = served
    cert = certs(ov.workdir)
    for name in ("a", "b"):
        host = "%s.wgc.test" % name
        for node in (NODE_V4, NODE_V6):
            cp = curl(ov.ns_b, "https://%s/" % host, "--resolve",
                      "%s:443:%s" % (host, node), "--cacert",
                      cert["cert_" + name], timeout=30, check=False)
            assert cp.returncode == 0, (cp.stderr, ov.diagnostics())
            assert cp.stdout == "tls %s %s peerb\n" % (name, host), cp.stdout


def test_http2_and_map_on_overlay_listener(served):
    ov, n = served
    cert = certs(ov.workdir)
    for node, peer in ((NODE_V4, PEER_V4), (NODE_V6, PEER_V6)):
        # HTTP/2 streams run on copies of the connection: the identity
        # must follow them, and map sees it like any variable
        cp = curl(ov.ns_b, "https://a.wgc.test:8443/", "--http2",
                  "--resolve", "a.wgc.test:8443:%s" % node, "--cacert",
                  cert["cert_a"], timeout=30, check=False)
        assert cp.returncode == 0, (cp.stderr, ov.diagnostics())
        assert cp.stdout == "HTTP/2.0 %s peerb hello b\n" % peer, cp.stdout


def test_upload_256m_from_peer(served, tmp_path):
    ov, n = served
    size = 256 << 20
    path = write_pattern_file(str(tmp_path / "up.bin"), size)
    try:
        digest, got = upload_sha256(ov.ns_b, node_url("/backend/sha256"),
                                    path, timeout=300)
    finally:
        os.unlink(path)
    assert got == size, ov.diagnostics()
    assert digest == expected_sha256(size)


def test_1000_concurrent_connections_from_peer(served):
    ov, n = served
    r = nsclient(ov.ns_b, "conns", NODE_V4, "80", "--count", "1000",
                 "--path", "/small", "--expect", "ok\n", timeout=90)
    assert r["ok"], (r, ov.diagnostics())
    # and the node keeps serving afterwards
    r = http_load(ov.ns_b, NODE_V4, 80, count=200, concurrency=20)
    assert r["ok"], (r, n.log_tail(3000))


# -- stream -----------------------------------------------------------------

@pytest.mark.parametrize("node", [NODE_V4, NODE_V6], ids=["v4", "v6"])
def test_stream_tcp_and_udp_from_peer(served, node):
    ov, n = served
    r = tcp_echo(ov.ns_b, node, 7000, nbytes=8 << 20, timeout=60)
    assert r["ok"], (r, ov.diagnostics())
    # clients from several source ports: sessions of their own, all open
    for _ in range(4):
        r = udp_echo(ov.ns_b, node, 7000, count=20, size=1000)
        assert r["ok"], (r, ov.diagnostics())


def test_stream_variables(served):
    ov, n = served
    for node, peer in ((NODE_V4, PEER_V4), (NODE_V6, PEER_V6)):
        r = nsclient(ov.ns_b, "tcp-read", node, "7001", timeout=10)
        assert r.get("data") == "%s peerb %s\n" % (peer, ov.peer_pub), r


# -- a correct host -----------------------------------------------------------

@pytest.mark.parametrize("node", [NODE_V4, NODE_V6], ids=["v4", "v6"])
def test_closed_ports_and_ping(served, node):
    ov, n = served
    r = nsclient(ov.ns_b, "tcp-connect", node, str(CLOSED_PORT), timeout=10)
    assert r["result"] == "refused", r
    r = nsclient(ov.ns_b, "udp-probe", node, str(CLOSED_PORT), timeout=5)
    assert r["result"] == "refused", r
    # a served TCP port is not open to UDP, and the other way round
    r = nsclient(ov.ns_b, "udp-probe", node, "80", timeout=5)
    assert r["result"] == "refused", r
    r = nsclient(ov.ns_b, "tcp-connect", node, "7001", timeout=10)
    assert r["result"] == "connected", r
    assert nsmod.ping(ov.ns_b, node, count=2)


# -- the ingress chain, both ways ---------------------------------------------

def test_ingress_chain_both_ways(served):
    ov, n = served
    # loopback client -> nginx -> the peer's service over the overlay
    cp = curl(ov.ns_a, "http://127.0.0.1:%d/" % INGRESS_PORT, check=False)
    assert cp.returncode == 0 and cp.stdout == "hello from peer\n", \
        (cp.stderr, ov.diagnostics())
    # overlay peer -> nginx's overlay listener -> a loopback backend
    cp = curl(ov.ns_b, node_url("/backend/"), check=False)
    assert cp.returncode == 0 and cp.stdout == "hello from peer\n", \
        (cp.stderr, ov.diagnostics())
    # a server with "listen" and "wgconn_listen" answers on both, and
    # can take a peer's request back into the overlay
    cp = curl(ov.ns_b, "http://%s:%d/" % (NODE_V4, INGRESS_PORT),
              check=False)
    assert cp.returncode == 0 and cp.stdout == "hello from peer\n", \
        (cp.stderr, ov.diagnostics())


# -- configuration --------------------------------------------------------------

def test_reload_changes_overlay_ports(served):
    ov, n = served
    extra = "server { wgconn_listen 7002; return \"new\\n\"; }\n"
    conf = serve_conf(ov, workers=2, stream=STREAM_BLOCK + extra)
    conf = conf.replace("server { wgconn_listen 7001;", "server { listen "
                        "127.0.0.1:7001;")
    n.write_conf(conf)
    n.reload()
    wait_log(n, r"serving overlay tcp port 7002", timeout=10)
    r = nsclient(ov.ns_b, "tcp-read", NODE_V4, "7002", timeout=10)
    assert r.get("data") == "new\n", r
    wait_log(n, r"no longer serving overlay tcp port 7001", timeout=10)
    r = nsclient(ov.ns_b, "tcp-connect", NODE_V4, "7001", timeout=10)
    assert r["result"] == "refused", r
    r = http_load(ov.ns_b, NODE_V4, 80, count=100, concurrency=10)
    assert r["ok"], r


def test_reload_under_inbound_load(served):
    ov, n = served

    def load():
        r = load_while_reloading(n, ov.ns_b, NODE_V4, 80)
        assert r["ok"], (r, ov.diagnostics())

    # and every accepted flow handed to a worker is given back
    assert_engine_gives_back(n, load, workers=2)


@pytest.mark.parametrize("daemon", [False, True], ids=["fg", "daemon"])
def test_engine_process_restarted_after_it_dies(overlay, nginx_module,
                                                daemon):
    ov = overlay
    backend, n = start_served(ov, daemon=daemon)
    try:
        old = n.engine()
        assert old, n.children()
        os.kill(old, 9)
        # the lifeline's end of file signals the master, whose reload
        # starts a new engine; both directions work again.  A daemon's
        # first engine was forked before nginx daemonized: the signal must
        # reach the master all the same
        nsmod.wait_until(lambda: n.engine() not in (None, old), 20,
                         what="a new engine process")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            a = curl(ov.ns_a, "http://127.0.0.1:%d/" % INGRESS_PORT,
                     timeout=5, check=False)
            b = curl(ov.ns_b, node_url("/small"), timeout=5, check=False)
            if a.stdout == "hello from peer\n" and b.stdout == "ok\n":
                break
            time.sleep(0.5)
        assert a.stdout == "hello from peer\n", (a.stderr, ov.diagnostics())
        assert b.stdout == "ok\n", (b.stderr, ov.diagnostics())
        assert n.log_grep(r"starting a new one")
    finally:
        n.stop()
        backend.stop()


def status(ov):
    return curl(ov.ns_a, "http://127.0.0.1:%d/wgconn" % INGRESS_PORT,
                check=False).stdout


def test_status_counts_overlay_listeners(served):
    ov, n = served
    for _ in range(3):
        assert curl(ov.ns_b, node_url("/small"), check=False).stdout == "ok\n"

    def counted():
        m = re.search(r"(?m)^listen: tcp 80 accepted (\d+) dropped 0$",
                      status(ov))
        return m and int(m.group(1)) >= 3
    nsmod.wait_until(counted, 5, what="listener counters in the status")
    st = status(ov)
    assert "listen: udp 7000 accepted" in st, st
    assert "listen: tcp 443 accepted" in st, st


def test_reload_applies_peer_changes_live(served):
    ov, n = served
    engine = n.engine()
    assert curl(ov.ns_b, node_url("/"), check=False).stdout == \
        "hi %s peerb\n" % PEER_V4
    hs = ov.peer.latest_handshake(ov.node_pub)
    assert hs > 0

    # renamed, and a second peer: applied by the running engine, the
    # session with the first peer carries on (no new handshake)
    _, other = genkey()
    extra = "peer %s { allowed_ips 100.64.0.9/32; name other; }" % other
    n.write_conf(serve_conf(ov, workers=2, name="renamed",
                            extra_node=extra))
    n.reload()
    wait_log(n, r"configuration applied: 2 peers, 1 added, 0 removed")
    assert n.engine() == engine
    assert curl(ov.ns_b, node_url("/"), check=False).stdout == \
        "hi %s renamed\n" % PEER_V4
    st = status(ov)
    assert "peer: renamed" in st and "peer: other" in st, st
    assert ov.peer.latest_handshake(ov.node_pub) == hs

    # the peer removed: nothing routes to it, nothing is accepted from it
    n.write_conf(serve_conf(ov, workers=2, peer_pub=other,
                            allowed_ips=["100.64.0.9/32"], endpoint=False,
                            name="other"))
    n.reload()
    wait_log(n, r"configuration applied: 1 peers, 0 added, 1 removed")
    cp = curl(ov.ns_a, "http://127.0.0.1:%d/" % INGRESS_PORT, timeout=10,
              check=False)
    assert "hello from peer" not in cp.stdout
    r = nsclient(ov.ns_b, "tcp-connect", NODE_V4, "80", timeout=3)
    assert r["result"] != "connected", r

    # and back
    n.write_conf(serve_conf(ov, workers=2))
    n.reload()
    wait_log(n, r"configuration applied: 1 peers, 1 added, 1 removed")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        cp = curl(ov.ns_b, node_url("/"), timeout=5, check=False)
        if cp.stdout == "hi %s peerb\n" % PEER_V4:
            break
        time.sleep(0.5)
    assert cp.stdout == "hi %s peerb\n" % PEER_V4, (cp.stderr,
                                                     ov.diagnostics())
    assert n.engine() == engine


def test_reload_with_new_port_starts_new_engine(served):
    ov, n = served
    engine = n.engine()
    n.write_conf(serve_conf(ov, workers=2, listen_port=51821))
    n.reload()
    wait_log(n, r"starting a new engine process")
    nsmod.wait_until(lambda: n.engine() not in (None, engine), 10,
                     what="the new engine")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        a = curl(ov.ns_a, "http://127.0.0.1:%d/" % INGRESS_PORT, timeout=5,
                 check=False)
        if a.stdout == "hello from peer\n":
            break
        time.sleep(0.5)
    assert a.stdout == "hello from peer\n", (a.stderr, ov.diagnostics())
    assert ov.peer.endpoint_of(ov.node_pub).endswith(":51821")
    b = curl(ov.ns_b, node_url("/small"), timeout=10, check=False)
    assert b.stdout == "ok\n", (b.stderr, ov.diagnostics())


def test_config_errors(overlay, nginx_module):
    ov = overlay
    cases = [
        ("server { wgconn_listen 0; return 200; }", "",
         'invalid port "0" in "wgconn_listen"'),
        ("server { wgconn_listen 80 backlog=10; return 200; }", "",
         'invalid parameter "backlog=10" of "wgconn_listen"'),
        ("", "server { wgconn_listen 53 udp; return x; }\n"
             "server { wgconn_listen 53 udp; return y; }",
         'duplicate "wgconn_listen 53 udp"'),
    ]
    for http, stream, message in cases:
        conf = build_conf(wgconn=ov.wgconn_block(), http=http, stream=stream)
        n = ov.nginx(conf)
        rc, out = n.test()
        assert rc != 0 and message in out, out
        needle = "wgconn_listen 53 udp; return y" if stream and http == "" \
            else "wgconn_listen"
        assert "nginx.conf:%d" % line_of(conf, needle) in out, out
    # no node to listen on
    conf = build_conf(http="server { wgconn_listen 80; return 200; }")
    n = ov.nginx(conf)
    rc, out = n.test()
    assert rc != 0 and 'needs a "wgconn" block' in out, out
    assert "nginx.conf:%d" % line_of(conf, "wgconn_listen") in out, out
