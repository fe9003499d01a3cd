"""A two-node WireGuard topology for the tests.

    ns wgcN-a  10.99.N.1  the "node": nginx with ngx_wgconn, or (harness
                          self-tests) a second wireguard-go peer
    ns wgcN-b  10.99.N.2  the peer: wireguard-go on a TUN device wgcNb with
                          100.64.0.2/32 + fd7a:115c:a1e0::2/128, MTU 1280,
                          routes to the node's overlay addresses, and the
                          services of peer_services.py

Overlay.wgconn_block() renders the nginx `wgconn {}` block for the node.
"""

import os
import shutil
import tempfile

from . import netns as nsmod
from .nginx import Nginx
from .services import PeerServices
from .wgpeer import WgPeer, genkey, write_key

NODE_V4, NODE_V6 = "100.64.0.1", "fd7a:115c:a1e0::1"
PEER_V4, PEER_V6 = "100.64.0.2", "fd7a:115c:a1e0::2"
WG_PORT = 51820
MTU = 1280


class Overlay:
    def __init__(self, impl="debian", workdir=None, services=True, tls=True,
                 peer_knows_node_endpoint=True, peer_keepalive=None):
        self.impl = impl
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="wgc-")
        os.chmod(self.workdir, 0o755)
        self.pair = nsmod.Pair()
        self.want_services = services
        self.tls = tls
        self.peer_knows_node_endpoint = peer_knows_node_endpoint
        self.peer_keepalive = peer_keepalive
        self.node_priv, self.node_pub = genkey()
        self.node_key_file = os.path.join(self.workdir, "node.key")
        write_key(self.node_key_file, self.node_priv)
        self.peer = None
        self.node_peer = None       # wireguard-go in ns A (self-tests)
        self.services = None
        self.nginxes = []
        self.node_addresses = [NODE_V4 + "/32", NODE_V6 + "/128"]
        self.peer_addresses = [PEER_V4 + "/32", PEER_V6 + "/128"]

    # -- addresses -----------------------------------------------------
    @property
    def ns_a(self):
        return self.pair.ns_a

    @property
    def ns_b(self):
        return self.pair.ns_b

    @property
    def node_underlay(self):
        return self.pair.addr_a

    @property
    def peer_underlay(self):
        return self.pair.addr_b

    @property
    def node_endpoint(self):
        return "%s:%d" % (self.pair.addr_a, WG_PORT)

    @property
    def peer_endpoint(self):
        return "%s:%d" % (self.pair.addr_b, WG_PORT)

    @property
    def peer_pub(self):
        return self.peer.public_key

    node_v4, node_v6, peer_v4, peer_v6 = NODE_V4, NODE_V6, PEER_V4, PEER_V6

    # -- lifecycle -----------------------------------------------------
    def up(self):
        try:
            self.pair.up()
            n = self.pair.index
            self.peer = WgPeer(self.ns_b, "wgc%db" % n, self.workdir,
                               impl=self.impl, listen_port=WG_PORT,
                               addresses=self.peer_addresses, mtu=MTU)
            self.peer.add_peer(
                self.node_pub, self.node_addresses,
                endpoint=(self.node_endpoint
                          if self.peer_knows_node_endpoint else None),
                keepalive=self.peer_keepalive)
            self.peer.start()
            if self.want_services:
                self.services = PeerServices(self.ns_b, self.workdir,
                                             tls=self.tls).start()
        except Exception:
            self.down()
            raise
        return self

    def start_node_peer(self, impl=None, node_knows_peer_endpoint=True,
                        keepalive=None):
        """wireguard-go in ns A with the node's key and addresses.

        Stands in for nginx in the harness self-tests.
        """
        n = self.pair.index
        self.node_peer = WgPeer(self.ns_a, "wgc%da" % n, self.workdir,
                                impl=impl or self.impl,
                                private_key=self.node_priv,
                                listen_port=WG_PORT,
                                addresses=self.node_addresses, mtu=MTU)
        self.node_peer.add_peer(
            self.peer_pub, self.peer_addresses,
            endpoint=self.peer_endpoint if node_knows_peer_endpoint else None,
            keepalive=keepalive)
        self.node_peer.start()
        return self.node_peer

    def set_peer_view_of_node(self, endpoint=True, keepalive=None):
        """Reconfigure the peer's entry for the node (remove + re-add)."""
        self.peer.replace_peer(
            self.node_pub, allowed_ips=self.node_addresses,
            endpoint=self.node_endpoint if endpoint else None,
            keepalive=keepalive)

    def restart_peer(self, down_for=0.0):
        """Restart wireguard-go on the peer (same static key, new sessions)."""
        return self.peer.restart(down_for=down_for)

    def nginx(self, conf=None, name=None):
        """An Nginx in ns A with its own prefix under the workdir."""
        prefix = os.path.join(self.workdir, name or "nginx%d"
                              % len(self.nginxes))
        n = Nginx(prefix, netns=self.ns_a, conf=conf)
        self.nginxes.append(n)
        return n

    def down(self):
        for n in self.nginxes:
            try:
                n.stop()
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        for obj in (self.services, self.node_peer, self.peer):
            if obj is not None:
                try:
                    obj.stop()
                except Exception:  # noqa: BLE001
                    pass
        self.pair.down()
        if self.own_workdir and not os.environ.get("WGC_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()

    # -- nginx configuration ------------------------------------------
    def wgconn_block(self, endpoint=True, keepalive=25, name="peerb",
                     listen_port=WG_PORT, key_file=None, extra_node="",
                     extra_peer="", peer_pub=None, allowed_ips=None,
                     address=None, mtu=MTU):
        """The nginx `wgconn {}` block for the node side."""
        allowed = allowed_ips or self.peer_addresses
        lines = [
            "wgconn {",
            "    private_key_file  %s;" % (key_file or self.node_key_file),
            "    address           %s;" % (address or
                                            " ".join(self.node_addresses)),
            "    listen_port       %d;" % listen_port,
            "    mtu               %d;" % mtu,
        ]
        if extra_node:
            lines += ["    " + ln for ln in extra_node.strip().splitlines()]
        lines.append("    peer %s {" % (peer_pub or self.peer_pub))
        lines.append("        allowed_ips           %s;" % " ".join(allowed))
        if endpoint:
            lines.append("        endpoint              %s;"
                         % self.peer_endpoint)
        if keepalive:
            lines.append("        persistent_keepalive  %d;" % keepalive)
        if name:
            lines.append("        name                  %s;" % name)
        if extra_peer:
            lines += ["        " + ln
                      for ln in extra_peer.strip().splitlines()]
        lines += ["    }", "}"]
        return "\n".join(lines) + "\n"

    def diagnostics(self):
        """Text for assertion messages: wg show, logs."""
        out = ["== wg show (peer, %s)" % self.impl,
               self.peer.show_text() if self.peer else "",
               "== peer log", self.peer.log_tail(1500) if self.peer else ""]
        if self.node_peer:
            out += ["== wg show (node)", self.node_peer.show_text()]
        for n in self.nginxes:
            out += ["== nginx error.log (%s)" % n.prefix, n.log_tail(3000)]
        if self.services:
            out += ["== services log", self.services.log_tail(1500)]
        return "\n".join(out)
