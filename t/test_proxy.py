"""nginx with ngx_wgconn proxying into a real WireGuard peer.

Topology (harness.overlay): nginx in ns wgcN-a is the WireGuard node
(100.64.0.1, fd7a:115c:a1e0::1, UDP 51820 on 10.99.N.1); wireguard-go (Debian's
and the current one) runs in ns wgcN-b as the peer (100.64.0.2,
fd7a:115c:a1e0::2) with HTTP on 80, HTTPS on 443 and TCP/UDP echo on 7.
Clients run inside ns A and talk to nginx on 127.0.0.1 only.
"""

import os
import re
import time

import pytest

from harness import netns as nsmod
from harness.nginx import (Nginx, assert_engine_gives_back, build_conf,
                           line_of)
from harness.services import (curl, curl_sha256, expected_sha256,
                              http_load, load_while_reloading, nsclient,
                              tcp_echo,
                              udp_echo, upload_sha256, write_pattern_file,
                              ws_echo)
from harness.wgpeer import genkey, write_key

pytestmark = pytest.mark.nginx_module

HTTP_PORT = 8080
TCP_PORT = 5007          # stream -> 100.64.0.2:7 tcp
UDP_PORT = 5007          # stream udp -> 100.64.0.2:7
TCP6_PORT = 5008         # stream -> [fd7a:115c:a1e0::2]:7
UDP6_PORT = 5008
HALF_PORT = 5009         # stream -> 100.64.0.2:7 with proxy_half_close
VAR_PORT = 5010          # stream -> a variable naming an upstream {} block

HTTP_BLOCK = """
client_max_body_size 0;
# a variable that names an upstream {} block reaches the overlay; one that
# holds an address does not (README: what is not covered)
upstream peer_http { server 100.64.0.2:80; }
map $http_x_backend $backend { default peer_http; }
server {
    listen 127.0.0.1:%(http)d;
    proxy_connect_timeout 10s;
    proxy_read_timeout 60s;
    proxy_send_timeout 60s;
    location / {
        proxy_pass http://100.64.0.2:80;
    }
    location /v6/ {
        proxy_pass http://[fd7a:115c:a1e0::2]:80/;
    }
    location = /wgconn { wgconn_status; }
    location /var/ {
        proxy_pass http://$backend/;
    }
    location /unbuffered/ {
        # the upstream transfer lasts as long as the client's
        proxy_pass http://100.64.0.2:80/;
        proxy_buffering off;
    }
    location /ws {
        proxy_pass http://100.64.0.2:80;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
    location /tls/ {
        proxy_pass https://100.64.0.2:443/;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate %(cert)s;
        proxy_ssl_name peer.wgc.test;
        proxy_ssl_server_name on;
    }
}
"""

STREAM_BLOCK = """
server { listen 127.0.0.1:%(tcp)d; proxy_pass 100.64.0.2:7;
         proxy_connect_timeout 10s; }
server { listen 127.0.0.1:%(udp)d udp; proxy_pass 100.64.0.2:7;
         proxy_timeout 5s; }
server { listen 127.0.0.1:%(tcp6)d; proxy_pass [fd7a:115c:a1e0::2]:7;
         proxy_connect_timeout 10s; }
server { listen 127.0.0.1:%(udp6)d udp; proxy_pass [fd7a:115c:a1e0::2]:7;
         proxy_timeout 5s; }
server { listen 127.0.0.1:%(half)d; proxy_pass 100.64.0.2:7;
         proxy_half_close on; proxy_connect_timeout 10s; }
upstream peer_echo { server 100.64.0.2:7; }
map $server_port $echo_backend { default peer_echo; }
server { listen 127.0.0.1:%(var)d; proxy_pass $echo_backend;
         proxy_connect_timeout 10s; }
"""


def proxy_conf(ov, endpoint=True, keepalive=25, workers=1, extra_node=""):
    cert = ov.services.cert if ov.services and ov.services.cert else "/dev/null"
    return build_conf(
        wgconn=ov.wgconn_block(endpoint=endpoint, keepalive=keepalive,
                               extra_node=extra_node),
        http=HTTP_BLOCK % {"http": HTTP_PORT, "cert": cert},
        stream=STREAM_BLOCK % {"tcp": TCP_PORT, "udp": UDP_PORT,
                               "tcp6": TCP6_PORT, "udp6": UDP6_PORT,
                               "half": HALF_PORT, "var": VAR_PORT},
        workers=workers)


def start_nginx(ov, **kw):
    n = ov.nginx(proxy_conf(ov, **kw))
    rc, out = n.test()
    assert rc == 0, out
    n.start(wait_ports=[HTTP_PORT, TCP_PORT, (UDP_PORT, "udp")])
    return n


def assert_clean(n):
    bad = n.alerts()
    assert not bad, "nginx alerts:\n" + "\n".join(bad[-20:])


def url(path):
    return "http://127.0.0.1:%d%s" % (HTTP_PORT, path)


def assert_hello(ov, path="/", timeout=30):
    """One request through nginx into the peer answers its greeting; a
    failure carries the peer's and nginx's logs (a 504 alone says nothing
    of why the overlay connection did not come up)."""
    cp = curl(ov.ns_a, url(path), timeout=timeout, check=False)
    assert cp.returncode == 0 and cp.stdout == "hello from peer\n", \
        (cp.returncode, cp.stdout[:300], cp.stderr, ov.diagnostics())


@pytest.fixture
def proxied(overlay, nginx_module):
    """nginx up in ns A, both sides know each other's endpoint."""
    n = start_nginx(overlay)
    yield overlay, n
    assert_clean(n)


# -- http ----------------------------------------------------------------

def test_get_hello(proxied):
    ov, n = proxied
    assert_hello(ov)


def test_variable_naming_an_upstream_block(proxied):
    ov, n = proxied
    assert_hello(ov, "/var/")
    r = tcp_echo(ov.ns_a, "127.0.0.1", VAR_PORT, nbytes=1 << 20, timeout=30)
    assert r["ok"], (r, ov.diagnostics())


def test_get_hello_ipv6_upstream(proxied):
    ov, n = proxied
    assert_hello(ov, "/v6/")


def test_keepalive_sequence_of_small_requests(proxied):
    ov, n = proxied
    # 50 requests on one client connection, each a new upstream connection
    urls = [url("/small")] * 50
    cp = curl(ov.ns_a, urls[0], *urls[1:], timeout=60, check=False)
    assert cp.returncode == 0 and cp.stdout == "ok\n" * 50, \
        (cp.stderr, ov.diagnostics())


def _download(ov, size, timeout):
    digest, got, rc, err = curl_sha256(ov.ns_a, url("/bytes/%d" % size),
                                       timeout=timeout)
    assert rc == 0, (err, ov.diagnostics())
    assert got == size
    assert digest == expected_sha256(size)


def test_download_64m(proxied):
    _download(proxied[0], 64 << 20, timeout=120)


@pytest.mark.slow
def test_download_256m(proxied):
    _download(proxied[0], 256 << 20, timeout=300)


def _upload(ov, tmp_path, size, timeout):
    path = write_pattern_file(str(tmp_path / "upload.bin"), size)
    try:
        digest, got = upload_sha256(ov.ns_a, url("/sha256"), path,
                                    timeout=timeout)
    finally:
        os.unlink(path)
    assert got == size, ov.diagnostics()
    assert digest == expected_sha256(size)


def test_upload_64m(proxied, tmp_path):
    _upload(proxied[0], tmp_path, 64 << 20, timeout=120)


@pytest.mark.slow
def test_upload_256m(proxied, tmp_path):
    _upload(proxied[0], tmp_path, 256 << 20, timeout=300)


def _drop_udp(ns, percent):
    """Drops percent of the datagrams arriving in ns from outside (the
    encrypted WireGuard packets), as a lossy path would."""
    nsmod.run(["nft", "add table inet wgcloss"], netns=ns)
    nsmod.run(["nft", "add chain inet wgcloss in "
               "{ type filter hook input priority 0; }"], netns=ns)
    nsmod.run(["nft", "add rule inet wgcloss in iifname != lo "
               "meta l4proto udp numgen random mod 100 < %d drop" % percent],
              netns=ns)


def test_transfer_under_loss(proxied, tmp_path):
    """3% of the datagrams lost each way: lwIP's SACK recovery and
    retransmissions carry 32 MiB down and up intact."""
    ov, n = proxied
    _drop_udp(ov.ns_a, 3)
    _drop_udp(ov.ns_b, 3)
    _download(ov, 32 << 20, timeout=120)
    _upload(ov, tmp_path, 32 << 20, timeout=120)

    # what lwIP sent again shows in the status (the upload lost ~3%)
    def resent():
        m = re.search(r"^tcp resent: (\d+) segments$", status(ov), re.M)
        return int(m.group(1)) if m else -1
    nsmod.wait_until(lambda: resent() > 0, 5, what="resent segments counted")


def test_websocket_through_proxy(proxied):
    ov, n = proxied
    r = ws_echo(ov.ns_a, "127.0.0.1", HTTP_PORT, path="/ws", messages=5,
                size=20000, timeout=30)
    assert r["ok"], (r, ov.diagnostics())


def test_proxy_ssl_to_peer(proxied):
    ov, n = proxied
    assert_hello(ov, "/tls/")


# -- stream --------------------------------------------------------------

@pytest.mark.parametrize("port", [TCP_PORT, TCP6_PORT], ids=["v4", "v6"])
def test_stream_tcp_echo(proxied, port):
    ov, n = proxied
    r = tcp_echo(ov.ns_a, "127.0.0.1", port, nbytes=8 << 20, timeout=60)
    assert r["ok"], (r, ov.diagnostics())


def test_connection_churn_keeps_ports_and_time_wait_bounded(proxied):
    """Short stream connections, each closed by nginx first (the client
    leaves): more in a row than the node has local ports, faster than
    TIME-WAIT (2 MSL, 20 s) lets them go.  Every one succeeds and TIME-WAIT
    stays at its limit (lwIP used to run out of ports after 16384 and then
    walk every pcb for every candidate port)."""
    ov, n = proxied
    r = nsclient(ov.ns_a, "churn", "127.0.0.1", str(TCP_PORT), "--count",
                 "40000", "--concurrency", "64", timeout=120)
    assert r["ok"], (r, ov.diagnostics())

    def tw():
        m = re.search(r"^tcp: (\d+) connections, (\d+) in time-wait$",
                      status(ov), re.M)
        return int(m.group(1)), int(m.group(2))
    nsmod.wait_until(lambda: tw()[1] > 0, 5, what="status refreshed")
    active, time_wait = tw()
    assert 0 < time_wait <= 4096, (active, time_wait)
    log = open(n.error_log).read()
    assert "tcp_connect() failed" not in log
    # the node still serves
    assert_hello(ov)


def memory(ov):
    """used, limit, peak, dropped, refused from the status page, once the
    engine has published again (once a second)"""
    time.sleep(1.5)
    m = re.search(r"^memory: (\d+) bytes of (\d+), peak (\d+), (\d+) "
                  r"segments dropped, (\d+) allocations refused$",
                  status(ov), re.M)
    return [int(v) for v in m.groups()]


def test_memory_limit_holds_with_stalled_readers(overlay, nginx_module):
    """32 downloads of 4 MiB whose clients read nothing for 4 s.  Without a
    limit lwIP fills each one's receive window while nginx reads nothing
    (a peak of 40 MB measured with windows of 2 MiB, 4.3 MB with windows
    sized to the path); with memory_limit 4m its heap stays below 4 MiB:
    past a connection's share the peer's segments are dropped, and it
    sends them again.  Then every download arrives whole."""
    ov = overlay
    n = start_nginx(ov, extra_node="memory_limit 4m;")
    size = 4 << 20
    r = nsclient(ov.ns_a, "conns", "127.0.0.1", str(HTTP_PORT), "--count",
                 "32", "--path", "/unbuffered/bytes/%d" % size, "--hold", "4",
                 "--rcvbuf", "4096", "--sha256", expected_sha256(size),
                 timeout=150)
    assert r["ok"], (r, ov.diagnostics())
    used, limit, peak, dropped, refused = m = memory(ov)
    assert limit == 4 << 20 and peak <= limit, m
    assert dropped > 0, m
    log = open(n.error_log).read()
    assert "tcp_write() failed" not in log
    assert_clean(n)


def test_memory_limit_holds_with_stalled_echo(overlay, nginx_module):
    """Both directions at once: 32 stream sessions to the peer's echo
    service send 4 MiB each while reading nothing for 4 s, so that data
    waits in lwIP to be sent (the peer's echo stops reading) and to be
    taken (nginx stops reading its side).  The heap stays below 8 MiB and
    every echo returns whole."""
    ov = overlay
    n = start_nginx(ov, extra_node="memory_limit 8m;")
    r = nsclient(ov.ns_a, "tcp-echo", "127.0.0.1", str(TCP_PORT),
                 "--streams", "32", "--bytes", str(4 << 20), "--hold", "4",
                 timeout=150)
    assert r["ok"], (r, ov.diagnostics())
    used, limit, peak, dropped, refused = m = memory(ov)
    assert limit == 8 << 20 and peak <= limit, m
    log = open(n.error_log).read()
    assert "tcp_write() failed" not in log
    assert_clean(n)


def test_stream_tcp_half_close(proxied):
    """Our FIN travels to the peer; the echo of everything still returns."""
    ov, n = proxied
    r = tcp_echo(ov.ns_a, "127.0.0.1", HALF_PORT, nbytes=4 << 20,
                 timeout=60, half_close=True)
    assert r["ok"], (r, ov.diagnostics())


@pytest.mark.parametrize("port", [UDP_PORT, UDP6_PORT], ids=["v4", "v6"])
def test_stream_udp_echo(proxied, port):
    ov, n = proxied
    r = udp_echo(ov.ns_a, "127.0.0.1", port, count=20, size=1000, timeout=20)
    assert r["ok"], (r, ov.diagnostics())


# -- handshakes and ICMP -------------------------------------------------

def test_handshake_initiated_by_nginx(overlay_factory, nginx_module):
    """The peer has no endpoint for nginx: nginx must initiate."""
    ov = overlay_factory(peer_knows_node_endpoint=False)
    n = start_nginx(ov, endpoint=True, keepalive=0)
    assert ov.peer.endpoint_of(ov.node_pub) is None
    assert_hello(ov)
    assert ov.peer.latest_handshake(ov.node_pub) > 0
    # the peer learned nginx's endpoint from the authenticated initiation
    assert ov.peer.endpoint_of(ov.node_pub) == ov.node_endpoint, \
        ov.diagnostics()
    assert_clean(n)


def test_handshake_initiated_by_peer(overlay_factory, nginx_module):
    """nginx has no endpoint for the peer: only the peer can initiate."""
    ov = overlay_factory(peer_knows_node_endpoint=True)
    n = start_nginx(ov, endpoint=False, keepalive=0)
    # the peer starts the handshake with its first packet (a ping)
    assert ov.peer.latest_handshake(ov.node_pub) == 0
    got = nsmod.ping(ov.ns_b, ov.node_v4, count=3, timeout=15)
    assert ov.peer.latest_handshake(ov.node_pub) > 0, ov.diagnostics()
    assert got >= 1, ov.diagnostics()
    # nginx learned the endpoint and can now proxy to the peer
    assert_hello(ov)
    assert_clean(n)


def test_handshake_peer_keepalive_without_traffic(overlay_factory,
                                                  nginx_module):
    """A persistent keepalive on the peer alone establishes the session."""
    ov = overlay_factory(peer_knows_node_endpoint=True, peer_keepalive=1)
    n = start_nginx(ov, endpoint=False, keepalive=0)
    ov.peer.wait_handshake(ov.node_pub, timeout=20)
    assert_clean(n)


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_ping_from_peer_answered(proxied, family):
    ov, n = proxied
    addr = ov.node_v4 if family == "v4" else ov.node_v6
    got = nsmod.ping(ov.ns_b, addr, count=5, timeout=15)
    assert got == 5, ov.diagnostics()
    got = nsmod.ping(ov.ns_b, addr, count=3, size=1200, timeout=15)
    assert got == 3, ov.diagnostics()


# -- nginx -t rejects bad configuration ----------------------------------

@pytest.fixture
def cfg(tmp_path, nginx_module, root_env):
    """Helpers for config-only tests (no namespaces, nothing started)."""
    class Cfg:
        node_priv, node_pub = genkey()
        peer_priv, peer_pub = genkey()
        key_file = write_key(str(tmp_path / "node.key"), node_priv)
        nginx = Nginx(str(tmp_path / "prefix"))

        def block(self, key_file=None, allowed="100.64.0.2/32",
                  peers=None):
            peers = peers or [self.peer_pub]
            lines = ["wgconn {",
                     "    private_key_file  %s;" % (key_file or self.key_file),
                     "    address           100.64.0.1/32 "
                     "fd7a:115c:a1e0::1/128;",
                     "    listen_port       51820;",
                     "    mtu               1280;"]
            for i, p in enumerate(peers):
                lines += ["    peer %s {" % p,
                          "        allowed_ips  %s;" % (
                              allowed if i == 0 else "100.64.1.%d/32" % i),
                          "        endpoint     10.99.250.2:51820;",
                          "    }"]
            lines.append("}")
            return "\n".join(lines) + "\n"

        def test(self, wgconn):
            conf = build_conf(wgconn=wgconn, http="server { listen "
                              "127.0.0.1:%d; }" % HTTP_PORT)
            self.nginx.write_conf(conf)
            rc, out = self.nginx.test(timeout=30)
            return conf, rc, out
    return Cfg()


def assert_rejected(conf, rc, out, directive, needle_line, words=()):
    assert rc != 0, "nginx -t accepted:\n" + out
    line = line_of(conf, needle_line)
    assert "nginx.conf:%d" % line in out, \
        "expected nginx.conf:%d in:\n%s" % (line, out)
    assert directive in out, "expected %r in:\n%s" % (directive, out)
    for w in words:
        assert re.search(w, out, re.I), "expected %r in:\n%s" % (w, out)


def test_config_good_is_accepted(cfg):
    conf, rc, out = cfg.test(cfg.block())
    assert rc == 0, out


def test_config_rejects_bad_key(cfg, tmp_path):
    bad = str(tmp_path / "bad.key")
    fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"this-is-not-a-wireguard-key\n")
    os.close(fd)
    conf, rc, out = cfg.test(cfg.block(key_file=bad))
    assert_rejected(conf, rc, out, "private_key_file", "private_key_file")


def test_config_rejects_short_key(cfg, tmp_path):
    short = write_key(str(tmp_path / "short.key"),
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")  # 30 bytes
    conf, rc, out = cfg.test(cfg.block(key_file=short))
    assert_rejected(conf, rc, out, "private_key_file", "private_key_file")


def test_config_rejects_loose_key_file_mode(cfg, tmp_path):
    loose = write_key(str(tmp_path / "loose.key"), cfg.node_priv, mode=0o644)
    conf, rc, out = cfg.test(cfg.block(key_file=loose))
    assert_rejected(conf, rc, out, "private_key_file", "private_key_file",
                    words=["0?644|permission|mode"])


@pytest.mark.parametrize("value", ["512k", "lots"])
def test_config_rejects_bad_memory_limit(cfg, value):
    block = cfg.block().replace("    mtu ", "    memory_limit %s;\n    mtu "
                                % value)
    conf, rc, out = cfg.test(block)
    assert_rejected(conf, rc, out, "memory_limit", "memory_limit")


def test_config_rejects_bad_peer_public_key(cfg):
    conf, rc, out = cfg.test(cfg.block(peers=["bm90LWEta2V5"]))
    assert_rejected(conf, rc, out, "peer", "peer bm90LWEta2V5")


@pytest.mark.parametrize("cidr", ["100.64.0.2/33", "100.64.0/24",
                                  "100.64.0.256/32", "fd7a::zz/128",
                                  "100.64.0.2/"])
def test_config_rejects_malformed_cidr(cfg, cidr):
    conf, rc, out = cfg.test(cfg.block(allowed=cidr))
    assert_rejected(conf, rc, out, "allowed_ips", "allowed_ips  %s" % cidr)


def test_config_rejects_duplicate_peer(cfg):
    conf, rc, out = cfg.test(cfg.block(peers=[cfg.peer_pub, cfg.peer_pub]))
    assert rc != 0, out
    lines = [i for i, ln in enumerate(conf.splitlines(), 1)
             if "peer %s {" % cfg.peer_pub in ln]
    assert len(lines) == 2
    assert "nginx.conf:%d" % lines[1] in out, out
    assert "peer" in out and "duplicate" in out.lower(), out


def test_config_rejects_overlapping_allowed_ips(cfg):
    _, other = genkey()
    block = cfg.block(peers=[cfg.peer_pub, other])
    block = block.replace("100.64.1.1/32", "100.64.0.2/32")
    conf, rc, out = cfg.test(block)
    assert rc != 0, out
    assert "allowed_ips" in out and re.search(r"nginx\.conf:\d+", out), out


# -- load, reload, peer restart, rekey -----------------------------------

def test_200_concurrent_requests_4_workers(overlay, nginx_module):
    n = start_nginx(overlay, workers=4)
    assert len(n.workers()) == 4
    r = http_load(overlay.ns_a, "127.0.0.1", HTTP_PORT, path="/small",
                  count=200, concurrency=200, req_timeout=20, timeout=90)
    assert r["ok"], (r, overlay.diagnostics())
    # spread: more than one worker served (round robin by the kernel)
    assert_clean(n)


def test_reload_under_load(overlay, nginx_module):
    ov = overlay
    n = start_nginx(ov, workers=2)
    assert_hello(ov)
    node_port_before = ov.peer.endpoint_of(ov.node_pub)
    r = load_while_reloading(n, ov.ns_a, "127.0.0.1", HTTP_PORT)
    assert r["ok"], (r, ov.diagnostics())
    # same identity and UDP port: the peer still talks to the same endpoint
    assert ov.peer.endpoint_of(ov.node_pub) == node_port_before
    assert_hello(ov)
    assert_clean(n)


def test_reloads_under_load_leak_nothing_in_the_engine(overlay,
                                                       nginx_module):
    ov = overlay
    n = start_nginx(ov, workers=2)
    assert_hello(ov)

    def sessions():
        # stream TCP and UDP between the reloads (a UDP flow ends at
        # proxy_timeout, 5 s)
        for port in (UDP_PORT, UDP6_PORT):
            r = udp_echo(ov.ns_a, "127.0.0.1", port, count=3)
            assert r["ok"], (r, ov.diagnostics())
        r = tcp_echo(ov.ns_a, "127.0.0.1", TCP_PORT, nbytes=1 << 16)
        assert r["ok"], (r, ov.diagnostics())

    def load():
        r = load_while_reloading(n, ov.ns_a, "127.0.0.1", HTTP_PORT,
                                 reloads=4, between=sessions)
        assert r["ok"], (r, ov.diagnostics())

    assert_engine_gives_back(n, load, workers=2, linger=5)
    nsmod.wait_until(lambda: re.search(r"^flows: 0$", status(ov), re.M),
                     5, interval=0.5, what="status: no flows")
    assert_clean(n)


def test_peer_restart_recovers_without_nginx_restart(proxied):
    ov, n = proxied
    assert_hello(ov)
    master = n.master_pid
    ov.restart_peer()            # same static key, all sessions gone
    deadline = time.monotonic() + 60
    last = None
    while time.monotonic() < deadline:
        last = curl(ov.ns_a, url("/"), timeout=10, check=False)
        if last.returncode == 0 and last.stdout == "hello from peer\n":
            break
        time.sleep(1)
    assert last.stdout == "hello from peer\n", (last.stderr,
                                                ov.diagnostics())
    assert n.master_pid == master and n.running
    assert ov.peer.latest_handshake(ov.node_pub) > 0


@pytest.mark.slow
def test_transfer_spanning_rekey(proxied):
    """A download running longer than REKEY_AFTER_TIME (120 s) completes
    intact: the session is rekeyed under it."""
    ov, n = proxied
    size = 160 << 20             # at 1 MiB/s: ~160 s, past 120 s with margin
    first = ov.peer.wait_handshake(ov.node_pub, timeout=20) \
        if ov.peer.latest_handshake(ov.node_pub) == 0 \
        else ov.peer.latest_handshake(ov.node_pub)
    digest, got, rc, err = curl_sha256(ov.ns_a,
                                       url("/unbuffered/bytes/%d" % size),
                                       "--limit-rate", "1M", timeout=200)
    assert rc == 0, (err, ov.diagnostics())
    assert got == size and digest == expected_sha256(size)
    assert ov.peer.latest_handshake(ov.node_pub) > first, \
        "no new handshake during the transfer:\n" + ov.diagnostics()


# -- connect failures: refused fails fast, silence hits the timeout -----

UPSTREAM_FAIL_BLOCK = """
upstream refused_then_good {
    server 100.64.0.2:81;        # nothing listens: the peer answers RST
    server 100.64.0.2:80;
}
server {
    listen 127.0.0.1:%(http)d;
    proxy_connect_timeout 2s;
    location /next/ {
        proxy_pass http://refused_then_good/;
        proxy_next_upstream error timeout;
    }
    location /refused/ {
        proxy_pass http://100.64.0.2:81/;
    }
    location /silent/ {
        proxy_pass http://100.64.9.1:80/;
    }
    location /silent-long/ {
        proxy_connect_timeout 10s;
        proxy_pass http://100.64.9.1:80/;
    }
}
"""


def silent_endpoint(ov):
    # an unused address of ns A's own subnet: nothing answers there
    return ov.node_underlay.rsplit(".", 1)[0] + ".99:51820"


def silent_peer_block(ov):
    # a second peer whose handshake is never answered
    _, silent_pub = genkey()
    return ov.wgconn_block().rstrip().rstrip("}") + """
    peer %s {
        allowed_ips  100.64.9.0/24;
        endpoint     %s;
        name         silent;
    }
}
""" % (silent_pub, silent_endpoint(ov))


@pytest.fixture
def failing(overlay, nginx_module):
    ov = overlay
    n = ov.nginx(build_conf(wgconn=silent_peer_block(ov),
                            http=UPSTREAM_FAIL_BLOCK % {"http": HTTP_PORT},
                            workers=2))
    rc, out = n.test()
    assert rc == 0, out
    n.start(wait_ports=[HTTP_PORT])
    # the overlay is up before timing anything
    assert_hello(ov, "/next/")
    yield ov, n
    assert_clean(n)


def test_refused_port_fails_fast_to_next_upstream(failing):
    """The peer's RST fails the attempt at once (ECONNREFUSED, not a
    timeout), and proxy_next_upstream takes the next server."""
    ov, n = failing
    for _ in range(4):
        cp = curl(ov.ns_a, url("/next/"), timeout=30)
        assert cp.stdout == "hello from peer\n"
    log = open(n.error_log).read()
    assert "100.64.0.2:81 over the overlay failed (111: Connection refused)" \
        in log, log[-3000:]
    assert "timed out" not in log


def test_refused_port_is_502(failing):
    ov, n = failing
    cp = curl(ov.ns_a, url("/refused/"), "-o", "/dev/null",
              "-w", "%{http_code}", timeout=30, check=False)
    assert cp.stdout == "502"
    assert "(111: Connection refused)" in open(n.error_log).read()


def test_silent_peer_hits_proxy_connect_timeout(failing):
    """A peer that never answers the handshake: nginx's own
    proxy_connect_timeout ends the attempt with 504."""
    ov, n = failing
    cp = curl(ov.ns_a, url("/silent/"), "-o", "/dev/null",
              "-w", "%{http_code}", timeout=30, check=False)
    assert cp.stdout == "504", cp.stderr
    assert "upstream timed out (110: Connection timed out) while " \
        "connecting to upstream" in open(n.error_log).read()


def test_long_proxy_connect_timeout_is_nginx_s(failing):
    """lwIP keeps resending the SYN (1, 2, 4 ... s, as Linux) for longer
    than a proxy_connect_timeout of 10 s: the timeout is nginx's, not a
    connection lwIP gave up on first."""
    ov, n = failing
    cp = curl(ov.ns_a, url("/silent-long/"), "-o", "/dev/null",
              "-w", "%{http_code}", timeout=40, check=False)
    assert cp.stdout == "504", cp.stderr
    log = open(n.error_log).read()
    assert "upstream timed out (110: Connection timed out) while " \
        "connecting to upstream" in log
    assert "100.64.9.1:80 over the overlay failed" not in log, log[-3000:]
    # the log says why: the peer's handshake went unanswered, once
    why = ('wgconn: peer "silent" has not answered a handshake in 5s '
           '(endpoint %s), retrying' % silent_endpoint(ov))
    assert log.count(why) == 1, log[-3000:]


# -- status and bad input ------------------------------------------------

STATUS_BLOCK = """
server {
    listen 127.0.0.1:%(http)d;
    location / { proxy_pass http://100.64.0.2:80; }
    location = /wgconn { wgconn_status; }
}
"""


def status(ov):
    return curl(ov.ns_a, url("/wgconn"), timeout=10).stdout


def counters(text):
    line = [ln for ln in text.splitlines() if ln.startswith("dropped:")][0]
    return dict((k, int(v)) for k, v in
                (kv.split("=") for kv in line.split()[1:]))


def test_status_shows_peer_and_garbage_is_dropped_and_counted(overlay,
                                                              nginx_module):
    ov = overlay
    n = ov.nginx(build_conf(wgconn=ov.wgconn_block(),
                            http=STATUS_BLOCK % {"http": HTTP_PORT},
                            workers=2))
    n.start(wait_ports=[HTTP_PORT])
    assert_hello(ov)

    nsmod.wait_until(lambda: "session yes" in status(ov), 10,
                     what="status shows the session")
    before = counters(status(ov))
    st = status(ov)
    assert "peer: peerb key %s endpoint %s:51820" % (ov.peer_pub,
                                                    ov.peer_underlay) in st
    assert ov.node_pub in st

    # from the peer's namespace, at the node's WireGuard port: short,
    # unknown types, a data message for no session, an initiation with a
    # bad mac1, random bytes of every WireGuard message size
    garbage = r"""
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst = (%r, 51820)
msgs = [b"", b"\x01", b"\x09\x00\x00\x00" + b"z" * 60,
        b"\x04\x00\x00\x00" + os.urandom(44),
        b"\x01\x00\x00\x00" + os.urandom(144),
        b"\x02\x00\x00\x00" + os.urandom(88),
        b"\x03\x00\x00\x00" + os.urandom(60)]
for i in range(200):
    msgs.append(os.urandom(1 + i * 7 %% 1400))
for m in msgs:
    s.sendto(m, dst)
""" % ov.node_underlay
    nsmod.run(["python3", "-c", garbage], netns=ov.ns_b, timeout=30)

    def dropped():
        return sum(counters(status(ov)).values()) - sum(before.values())

    nsmod.wait_until(lambda: dropped() >= 150, 10,
                     what="garbage counted as dropped")
    after = counters(status(ov))
    assert after["malformed"] > before["malformed"]
    assert after["mac1_invalid"] > before["mac1_invalid"]
    # the node is still fine
    assert_hello(ov)
    assert n.engine() is not None
    assert_clean(n)
    # keys never reach the log
    log = open(n.error_log).read()
    priv = open(ov.node_key_file).read().strip()
    assert priv not in log
