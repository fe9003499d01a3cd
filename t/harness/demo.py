"""`make demo`: nginx with ngx_wgconn on this machine, proxying into a
WireGuard peer (Debian's wireguard-go on a TUN device) that lives in a
network namespace of its own.

    root namespace   nginx  http://127.0.0.1:8080/  -> proxy_pass 100.64.0.2
                     veth wgcdemo-va 10.99.250.1/24, UDP 51820 (WireGuard)
    ns wgcdemo-b     veth wgcdemo-vb 10.99.250.2/24, wireguard-go 100.64.0.2
                     HTTP on :80 (/, /bytes/N, /sha256), TCP/UDP echo on :7

Runs until Ctrl-C, then removes all of it.  --check sets everything up,
fetches the page through the overlay, and exits (used by the tests).
"""

import argparse
import os
import signal
import subprocess
import sys
import shutil
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from harness import netns as nsmod  # noqa: E402
from harness.nginx import MODULE, Nginx, build_conf  # noqa: E402
from harness.services import PeerServices  # noqa: E402
from harness.wgpeer import WgPeer, genkey, write_key  # noqa: E402

NS = "wgcdemo-b"
VETH_HOST, VETH_NS = "wgcdemo-va", "wgcdemo-vb"
HOST_IP, PEER_IP = "10.99.250.1", "10.99.250.2"
NODE = ["100.64.0.1/32", "fd7a:115c:a1e0::1/128"]
PEER = ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"]
PORT = 8080


def http_conf():
    return """
server {
    listen 127.0.0.1:%d;
    location / {
        proxy_pass http://100.64.0.2:80;
        proxy_set_header Host $host;
    }
}
""" % PORT


def stream_conf():
    return """
server { listen 127.0.0.1:7007;     proxy_pass 100.64.0.2:7; }
server { listen 127.0.0.1:7007 udp; proxy_pass 100.64.0.2:7; }
"""


def wgconn_conf(key_file, peer_pub):
    return """
wgconn {
    private_key_file  %s;
    address           %s;
    listen_port       51820;
    mtu               1280;
    peer %s {
        allowed_ips           %s;
        endpoint              %s:51820;
        persistent_keepalive  25;
        name                  demo-peer;
    }
}
""" % (key_file, " ".join(NODE), peer_pub, " ".join(PEER), PEER_IP)


def teardown():
    nsmod.delete_netns(NS)
    nsmod.ip("link", "del", VETH_HOST, check=False)


def setup_network():
    teardown()
    nsmod.create_netns(NS)
    nsmod.ip("link", "add", VETH_HOST, "type", "veth", "peer", "name",
             VETH_NS, "netns", NS)
    nsmod.ip("addr", "add", HOST_IP + "/24", "dev", VETH_HOST)
    nsmod.ip("link", "set", VETH_HOST, "up")
    nsmod.ip("addr", "add", PEER_IP + "/24", "dev", VETH_NS, netns=NS)
    nsmod.ip("link", "set", VETH_NS, "up", netns=NS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true",
                    help="set up, fetch the page once, tear down")
    args = ap.parse_args()

    if not os.path.exists(MODULE):
        sys.exit("demo: %s is missing: run make" % MODULE)

    work = tempfile.mkdtemp(prefix="wgc-demo-")
    os.chmod(work, 0o755)
    node_priv, node_pub = genkey()
    key_file = os.path.join(work, "node.key")
    write_key(key_file, node_priv)

    peer = services = n = None
    rc = 0
    try:
        setup_network()
        peer = WgPeer(NS, "wgcdemob", work, impl="debian", listen_port=51820,
                      addresses=PEER, mtu=1280)
        peer.add_peer(node_pub, NODE, endpoint=HOST_IP + ":51820")
        peer.start()
        services = PeerServices(NS, work, tls=False).start()

        n = Nginx(os.path.join(work, "nginx"), netns=None,
                  conf=build_conf(wgconn=wgconn_conf(key_file,
                                                     peer.public_key),
                                  http=http_conf(), stream=stream_conf(),
                                  workers=2))
        n.start(wait_ports=[PORT])

        url = "http://127.0.0.1:%d/" % PORT
        body = subprocess.run(["curl", "-sS", "-m", "30", url],
                              stdout=subprocess.PIPE, text=True).stdout
        print()
        print("ngx_wgconn demo: nginx is a WireGuard node (100.64.0.1); "
              "the peer 100.64.0.2 runs wireguard-go in namespace %s."
              % NS)
        print("  open    %s   (the peer answered: %r)" % (url, body))
        print("  also    curl %sbytes/10485760 | sha256sum" % url)
        print("          echo hi | nc -q1 127.0.0.1 7007      "
              "(TCP echo on the peer)")
        print("  logs    %s (removed when the demo stops)" % n.error_log)
        if args.check:
            rc = 0 if body == "hello from peer\n" else 1
            return rc
        print("Ctrl-C stops the demo and removes the namespace.")
        signal.sigwait([signal.SIGINT, signal.SIGTERM])
    finally:
        for obj in (n, services, peer):
            if obj is not None:
                try:
                    obj.stop()
                except Exception:  # noqa: BLE001 - best effort
                    pass
        teardown()
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    # sigwait() takes the signals that stop the demo
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])
    sys.exit(main())
