"""Two nginx nodes with ngx_wgconn and nothing else: our WireGuard against
our WireGuard, lwIP against lwIP, each node both a client and a server of
the other.

    ns wgcN-a  10.99.N.1  nginx "nodea": 100.64.0.1, fd7a:115c:a1e0::1
    ns wgcN-b  10.99.N.2  nginx "nodeb": 100.64.0.2, fd7a:115c:a1e0::2

Each node proxies 127.0.0.1:8080 (http) and 127.0.0.1:7000 (stream, TCP
and UDP) to the other's overlay address, and serves on its own overlay
address (`wgconn_listen`) what a backend on its loopback offers (HTTP 9000,
echo 9007).  Only the initiating node is given the other's endpoint, so
the first packet decides who starts the handshake; the responder learns
the initiator's endpoint from it.
"""

import os
import shutil
import tempfile
import threading

import pytest

from harness import netns as nsmod
from harness.nginx import Nginx, build_conf, wait_log
from harness.overlay import MTU, NODE_V4, NODE_V6, PEER_V4, PEER_V6, WG_PORT
from harness.services import (PeerServices, curl, curl_sha256,
                              expected_sha256, http_load, tcp_echo,
                              udp_echo, upload_sha256, url_host,
                              write_pattern_file)
from harness.wgpeer import genkey, write_key

pytestmark = pytest.mark.nginx_module

BACKEND_HTTP = 9000
BACKEND_ECHO = 9007
PROXY_HTTP = 8080
PROXY_STREAM = 7000

HTTP_BLOCK = """
client_max_body_size 0;
server {
    listen 127.0.0.1:%(proxy)d;
    proxy_read_timeout 200s;
    location / {
        proxy_pass http://%(other4)s:80;
        proxy_request_buffering off;
        proxy_buffering off;
    }
    location /v6/ { proxy_pass http://[%(other6)s]:80/; }
    location = /wgconn { wgconn_status; }
}
server {
    wgconn_listen 80;
    proxy_read_timeout 200s;
    location = /who { return 200 "$remote_addr $wgconn_peer_name\\n"; }
    location / {
        proxy_pass http://127.0.0.1:%(backend)d;
        proxy_request_buffering off;
        proxy_buffering off;
    }
}
"""

STREAM_BLOCK = """
server { listen 127.0.0.1:%(sproxy)d; proxy_pass %(other4)s:7000; }
server { listen 127.0.0.1:%(sproxy)d udp; proxy_pass %(other4)s:7000;
         proxy_timeout 5s; }
server { wgconn_listen 7000; proxy_pass 127.0.0.1:%(echo)d; }
server { wgconn_listen 7000 udp; proxy_pass 127.0.0.1:%(echo)d;
         proxy_timeout 5s; }
"""


class Node:
    def __init__(self, name, ns, underlay, v4, v6, workdir):
        self.name, self.ns, self.underlay = name, ns, underlay
        self.v4, self.v6 = v4, v6
        self.priv, self.pub = genkey()
        self.key_file = write_key(os.path.join(workdir, name + ".key"),
                                  self.priv)
        self.nginx = Nginx(os.path.join(workdir, name), netns=ns)
        self.backend = PeerServices(ns, workdir, tls=False,
                                    http_port=BACKEND_HTTP,
                                    echo_port=BACKEND_ECHO)

    def conf(self, other, endpoint, workers=2):
        wg = "\n".join([
            "wgconn {",
            "    private_key_file  %s;" % self.key_file,
            "    address           %s/32 %s/128;" % (self.v4, self.v6),
            "    listen_port       %d;" % WG_PORT,
            "    mtu               %d;" % MTU,
            "    peer %s {" % other.pub,
            "        allowed_ips   %s/32 %s/128;" % (other.v4, other.v6),
            ("        endpoint      %s:%d;" % (other.underlay, WG_PORT)
             if endpoint else ""),
            "        name          %s;" % other.name,
            "    }",
            "}"])
        params = dict(proxy=PROXY_HTTP, sproxy=PROXY_STREAM,
                      backend=BACKEND_HTTP, echo=BACKEND_ECHO,
                      other4=other.v4, other6=other.v6)
        return build_conf(wgconn=wg, http=HTTP_BLOCK % params,
                          stream=STREAM_BLOCK % params, workers=workers)

    def status(self):
        return curl(self.ns, "http://127.0.0.1:%d/wgconn" % PROXY_HTTP,
                    timeout=10).stdout

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (PROXY_HTTP, path)


class Nodes:
    """The pair of namespaces with a node in each; `initiator` names the
    node given the other's endpoint."""

    def __init__(self, workdir, initiator="a"):
        self.pair = nsmod.Pair()
        self.workdir = workdir
        self.initiator = initiator
        self.a = self.b = None

    def up(self):
        try:
            self.pair.up()
            self.a = Node("nodea", self.pair.ns_a, self.pair.addr_a,
                          NODE_V4, NODE_V6, self.workdir)
            self.b = Node("nodeb", self.pair.ns_b, self.pair.addr_b,
                          PEER_V4, PEER_V6, self.workdir)
            for me, other in ((self.a, self.b), (self.b, self.a)):
                me.backend.start()
                me.nginx.write_conf(me.conf(
                    other, endpoint=(me.name[-1] == self.initiator)))
                rc, out = me.nginx.test()
                assert rc == 0, out
                me.nginx.start(wait_ports=[PROXY_HTTP])
                wait_log(me.nginx, r"serving overlay tcp port 80",
                         timeout=10)
        except Exception:
            self.down()
            raise
        return self

    def down(self):
        for node in (self.a, self.b):
            if node is None:
                continue
            for obj in (node.nginx, node.backend):
                try:
                    obj.stop()
                except Exception:  # noqa: BLE001 - best effort cleanup
                    pass
        self.pair.down()

    def diagnostics(self):
        out = []
        for node in (self.a, self.b):
            out += ["== %s error.log" % node.name, node.nginx.log_tail(3000)]
            try:
                out += ["== %s status" % node.name, node.status()]
            except Exception as e:  # noqa: BLE001
                out.append("(no status: %s)" % e)
        return "\n".join(out)

    def assert_clean(self):
        for node in (self.a, self.b):
            bad = node.nginx.alerts()
            assert not bad, "%s alerts:\n%s" % (node.name,
                                                "\n".join(bad[-20:]))


@pytest.fixture
def nodes(root_env, nginx_module, tmp_workdir):
    n = Nodes(tmp_workdir).up()
    try:
        yield n
        n.assert_clean()
    finally:
        n.down()


@pytest.fixture
def tmp_workdir(request):
    d = tempfile.mkdtemp(prefix="wgc-")
    os.chmod(d, 0o755)
    yield d
    failed = getattr(request.node, "rep_call", None)
    if os.environ.get("WGC_KEEP") == "1" or (
            failed is not None and failed.failed
            and os.environ.get("WGC_KEEP") == "failed"):
        return
    shutil.rmtree(d, ignore_errors=True)


def in_parallel(calls, timeout):
    """Run each (function, node) at once, each in a thread of its own."""
    threads = [threading.Thread(target=f, args=(node,)) for f, node in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def hello(ns, node, path="/", timeout=30):
    cp = curl(ns, node.url(path), timeout=timeout, check=False)
    return cp.returncode, cp.stdout, cp.stderr


@pytest.mark.parametrize("initiator", ["a", "b"])
def test_handshake_from_either_node(root_env, nginx_module, tmp_workdir,
                                    initiator):
    n = Nodes(tmp_workdir, initiator=initiator).up()
    try:
        first, second = (n.a, n.b) if initiator == "a" else (n.b, n.a)
        assert "endpoint none" in second.status(), second.status()
        # the first request goes out of the node that knows the endpoint
        rc, out, err = hello(first.ns, first, "/who")
        assert rc == 0 and out == "%s %s\n" % (first.v4, first.name), \
            (out, err, n.diagnostics())
        # the other learned the endpoint from the initiation, and the
        # overlay now carries requests its way too
        st = second.status()
        assert "key %s endpoint %s:%d" % (first.pub, first.underlay,
                                          WG_PORT) in st, st
        rc, out, err = hello(second.ns, second, "/who")
        assert rc == 0 and out == "%s %s\n" % (second.v4, second.name), \
            (out, err, n.diagnostics())
        for node in (first, second):
            assert "session yes" in node.status()
        n.assert_clean()
    finally:
        n.down()


def test_ipv6_and_identity(nodes):
    for me, other in ((nodes.a, nodes.b), (nodes.b, nodes.a)):
        rc, out, err = hello(me.ns, me, "/v6/who")
        assert rc == 0 and out == "%s %s\n" % (me.v6, me.name), \
            (out, err, nodes.diagnostics())
        rc, out, err = hello(me.ns, me, "/")
        assert rc == 0 and out == "hello from peer\n", (out, err)


def test_transfers_both_ways_at_once(nodes, tmp_path):
    """64 MiB down and 64 MiB up through each node, all four at once: each
    engine sends and receives bulk data on the same session."""
    size = 64 << 20
    path = write_pattern_file(str(tmp_path / "up.bin"), size)
    results = {}

    def down(node):
        results["down", node.name] = curl_sha256(
            node.ns, node.url("/bytes/%d" % size), timeout=240)

    def up(node):
        results["up", node.name] = upload_sha256(
            node.ns, node.url("/sha256"), path, timeout=240)

    try:
        in_parallel([(f, node) for f in (down, up)
                     for node in (nodes.a, nodes.b)], 300)
    finally:
        os.unlink(path)
    want = expected_sha256(size)
    for node in (nodes.a, nodes.b):
        digest, got, rc, err = results["down", node.name]
        assert rc == 0 and got == size and digest == want, \
            (node.name, got, err, nodes.diagnostics())
        assert results["up", node.name] == (want, size), nodes.diagnostics()


def test_stream_tcp_and_udp(nodes):
    for me in (nodes.a, nodes.b):
        r = tcp_echo(me.ns, "127.0.0.1", PROXY_STREAM, nbytes=8 << 20,
                     timeout=60)
        assert r["ok"], (r, nodes.diagnostics())
        r = udp_echo(me.ns, "127.0.0.1", PROXY_STREAM, count=20, size=1000)
        assert r["ok"], (r, nodes.diagnostics())


def test_concurrent_requests_both_ways(nodes):
    results = {}

    def load(node):
        results[node.name] = http_load(node.ns, "127.0.0.1", PROXY_HTTP,
                                       count=400, concurrency=100,
                                       timeout=90)
    in_parallel([(load, nodes.a), (load, nodes.b)], 120)
    for name, r in results.items():
        assert r["ok"], (name, r, nodes.diagnostics())
    assert len(results) == 2


def test_node_restart_recovers(nodes):
    """One node restarts (new sessions, the same key): the other, still
    holding the old session, takes the new handshake and carries on."""
    rc, out, _ = hello(nodes.a.ns, nodes.a)
    assert rc == 0
    nodes.b.nginx.stop()
    nodes.b.nginx.start(wait_ports=[PROXY_HTTP])
    # a's session is dead at b: a starts a new handshake once its packets
    # have gone unanswered for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s);
    # b has no endpoint for a and can only answer
    for me in (nodes.a, nodes.b):
        rc, out, err = hello(me.ns, me, "/who", timeout=60)
        assert rc == 0 and out == "%s %s\n" % (me.v4, me.name), \
            (me.name, out, err, nodes.diagnostics())


def test_transfer_spanning_rekey_both_ways(nodes):
    """Data both ways for longer than REKEY_AFTER_TIME (120 s): the
    initiator of the session rekeys it under traffic and neither side
    loses a byte."""
    size = 136 << 20         # at 1 MiB/s each way: ~136 s
    results = {}

    def down(node):
        results[node.name] = curl_sha256(
            node.ns, node.url("/bytes/%d" % size), "--limit-rate", "1M",
            timeout=220)

    in_parallel([(down, nodes.a), (down, nodes.b)], 240)
    want = expected_sha256(size)
    for node in (nodes.a, nodes.b):
        digest, got, rc, err = results[node.name]
        assert rc == 0 and got == size and digest == want, \
            (node.name, got, err, nodes.diagnostics())
    # a handshake younger than the transfer: the session was rekeyed
    st = nodes.a.status()
    ago = [int(w.split()[0]) for w in st.split("handshake ")[1:]]
    assert ago and ago[0] < 100, st
