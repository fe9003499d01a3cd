"""A real WireGuard peer (wireguard-go with a TUN device) in a namespace.

Implementations:
  debian   Debian's wireguard-go package (/usr/bin/wireguard-go)
  current  the newest wireguard-go from the Go module proxy, built by
           scripts/build-wireguard-go.sh into build/bin/wireguard-go-current

The UAPI socket of wireguard-go lives in /var/run/wireguard/<ifname>.sock,
which is *not* per network namespace (``ip netns exec`` only remounts
/sys), so interface names must be unique across namespaces: this module
uses ``wgc<N><side>`` (e.g. wgc3b) instead of a shared ``wg0``.
"""

import os
import subprocess
import time

from .netns import HarnessError, ip, run, stop_process, wait_until

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_BIN = os.path.join(TOP, "build", "bin")

IMPLS = {
    "debian": "/usr/bin/wireguard-go",
    "current": os.path.join(BUILD_BIN, "wireguard-go-current"),
}

_build_result = {}


def impl_binary(impl, build=True):
    """Path of the implementation's binary; raises HarnessError if absent.

    For "current", runs scripts/build-wireguard-go.sh once per process if
    the binary is missing and build is true.
    """
    if impl not in IMPLS:
        raise HarnessError("unknown wireguard implementation %r" % impl)
    path = IMPLS[impl]
    if os.access(path, os.X_OK):
        return path
    if impl == "current" and build:
        if "current" not in _build_result:
            cp = run(["bash", os.path.join(TOP, "scripts",
                                           "build-wireguard-go.sh")],
                     check=False, timeout=900)
            _build_result["current"] = cp
        cp = _build_result["current"]
        if os.access(path, os.X_OK):
            return path
        raise HarnessError("current wireguard-go could not be built "
                           "(scripts/build-wireguard-go.sh exit %d): %s"
                           % (cp.returncode, (cp.stderr or "")[-800:]))
    raise HarnessError("%s wireguard-go not found at %s" % (impl, path))


def impl_version(impl):
    try:
        cp = run([impl_binary(impl, build=False), "--version"], check=False,
                 timeout=10)
        return cp.stdout.splitlines()[0].strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def genkey():
    """Returns (private, public) base64 keys from wg genkey / wg pubkey."""
    priv = run(["wg", "genkey"], timeout=10).stdout.strip()
    pub = pubkey(priv)
    return priv, pub


def pubkey(priv):
    return run(["wg", "pubkey"], input=priv + "\n", timeout=10).stdout.strip()


def genpsk():
    return run(["wg", "genpsk"], timeout=10).stdout.strip()


def write_key(path, key, mode=0o600):
    """Write a key file (base64 + newline) with the given mode (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, (key + "\n").encode())
    finally:
        os.close(fd)
    os.chmod(path, mode)   # umask and pre-existing files
    return path


class PeerConf:
    """One [Peer] of a WgPeer."""

    def __init__(self, public_key, allowed_ips, endpoint=None,
                 keepalive=None, psk_file=None):
        self.public_key = public_key
        self.allowed_ips = list(allowed_ips)
        self.endpoint = endpoint
        self.keepalive = keepalive
        self.psk_file = psk_file

    def wg_args(self):
        a = ["peer", self.public_key,
             "allowed-ips", ",".join(self.allowed_ips)]
        if self.endpoint:
            a += ["endpoint", self.endpoint]
        if self.keepalive:
            a += ["persistent-keepalive", str(self.keepalive)]
        if self.psk_file:
            a += ["preshared-key", self.psk_file]
        return a


class WgPeer:
    """wireguard-go with a TUN device, configured by wg and ip, in netns."""

    def __init__(self, netns, ifname, workdir, impl="debian",
                 private_key=None, listen_port=51820,
                 addresses=("100.64.0.2/32", "fd7a:115c:a1e0::2/128"),
                 mtu=1280):
        if len(ifname) > 15:
            raise HarnessError("interface name too long: %s" % ifname)
        self.netns = netns
        self.ifname = ifname
        self.workdir = workdir
        self.impl = impl
        self.binary = impl_binary(impl)
        if private_key is None:
            private_key, _ = genkey()
        self.private_key = private_key
        self.public_key = pubkey(private_key)
        self.listen_port = listen_port
        self.addresses = list(addresses)
        self.mtu = mtu
        self.peers = {}
        self.proc = None
        self.log_path = os.path.join(workdir, "%s.log" % ifname)
        self.key_path = os.path.join(workdir, "%s.key" % ifname)
        self.starts = 0

    # -- lifecycle ---------------------------------------------------
    def start(self, timeout=15.0):
        # wireguard-go creates its UAPI socket, then watches it with
        # inotify; a start whose socket was gone in between ("Failed to
        # listen on uapi socket: no such file or directory", seen only in
        # containers under load) is tried again, twice at most
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except HarnessError:
                this_start = self.log_tail().rsplit("==== start", 1)[-1]
                if attempt == 2 or "uapi socket" not in this_start:
                    raise

    def _start_once(self, timeout):
        os.makedirs("/var/run/wireguard", exist_ok=True)
        sock = "/var/run/wireguard/%s.sock" % self.ifname
        if os.path.exists(sock):
            os.unlink(sock)   # stale, from a killed run of the same name
        write_key(self.key_path, self.private_key)
        env = dict(os.environ)
        env["WG_PROCESS_FOREGROUND"] = "1"
        env["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"] = "1"
        env["LOG_LEVEL"] = os.environ.get("WGC_WG_LOG_LEVEL", "error")
        self.starts += 1
        log = open(self.log_path, "a")
        log.write("==== start %d (%s)\n" % (self.starts, self.binary))
        log.flush()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, self.binary, "-f",
             self.ifname],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError("%s exited %s: %s" % (
                    self.binary, self.proc.returncode, self.log_tail()))
            return run(["wg", "show", self.ifname], netns=self.netns,
                       check=False, timeout=5).returncode == 0
        try:
            wait_until(ready, timeout, what="%s UAPI" % self.ifname)
            self._configure()
        except Exception:
            self.stop()
            raise
        return self

    def _configure(self):
        run(["wg", "set", self.ifname, "private-key", self.key_path,
             "listen-port", str(self.listen_port)], netns=self.netns)
        for a in self.addresses:
            ip("addr", "add", a, "dev", self.ifname, netns=self.netns)
        ip("link", "set", self.ifname, "mtu", str(self.mtu), "up",
           netns=self.netns)
        for pc in self.peers.values():
            self._apply_peer(pc)

    def _apply_peer(self, pc):
        run(["wg", "set", self.ifname] + pc.wg_args(), netns=self.netns)
        for cidr in pc.allowed_ips:
            if cidr in self._own_prefixes():
                continue
            v = "-6" if ":" in cidr else "-4"
            ip(v, "route", "replace", cidr, "dev", self.ifname,
               netns=self.netns)

    def _own_prefixes(self):
        return set(self.addresses)

    def stop(self, timeout=5.0):
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        self.proc = None
        # the TUN device goes with the process; wait for it to be gone
        try:
            wait_until(lambda: ip("link", "show", self.ifname,
                                  netns=self.netns,
                                  check=False).returncode != 0,
                       timeout, what="%s removed" % self.ifname)
        except HarnessError:
            ip("link", "del", self.ifname, netns=self.netns, check=False)

    def restart(self, new_static_key=False, down_for=0.0):
        """Stop and start again: all session (ephemeral) keys are new.

        With new_static_key the peer also gets a new identity (callers must
        then update the other side).  Returns the (possibly new) public key.
        """
        self.stop()
        if down_for:
            time.sleep(down_for)
        if new_static_key:
            self.private_key, self.public_key = genkey()
        self.start()
        return self.public_key

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    # -- peers -------------------------------------------------------
    def add_peer(self, public_key, allowed_ips, endpoint=None,
                 keepalive=None, psk_file=None):
        pc = PeerConf(public_key, allowed_ips, endpoint, keepalive, psk_file)
        self.peers[public_key] = pc
        if self.running:
            self._apply_peer(pc)
        return pc

    def remove_peer(self, public_key):
        pc = self.peers.pop(public_key, None)
        if pc and self.running:
            run(["wg", "set", self.ifname, "peer", public_key, "remove"],
                netns=self.netns)
            for cidr in pc.allowed_ips:
                v = "-6" if ":" in cidr else "-4"
                ip(v, "route", "del", cidr, "dev", self.ifname,
                   netns=self.netns, check=False)

    def replace_peer(self, public_key, **kw):
        """Remove and re-add (wg cannot unset an endpoint in place)."""
        old = self.peers.get(public_key)
        allowed = kw.pop("allowed_ips", old.allowed_ips if old else [])
        self.remove_peer(public_key)
        return self.add_peer(public_key, allowed, **kw)

    # -- status ------------------------------------------------------
    def show(self):
        """Parsed `wg show IF dump`: {"interface": {...}, "peers": {pub: {...}}}."""
        out = run(["wg", "show", self.ifname, "dump"], netns=self.netns,
                  timeout=10).stdout
        lines = [ln.split("\t") for ln in out.splitlines() if ln.strip()]
        res = {"interface": {}, "peers": {}}
        if lines:
            f = lines[0]
            res["interface"] = {"public_key": f[1], "listen_port": int(f[2]),
                                "fwmark": f[3]}
        for f in lines[1:]:
            res["peers"][f[0]] = {
                "preshared_key": f[1] != "(none)",
                "endpoint": None if f[2] == "(none)" else f[2],
                "allowed_ips": [] if f[3] == "(none)" else f[3].split(","),
                "latest_handshake": int(f[4]),
                "rx_bytes": int(f[5]),
                "tx_bytes": int(f[6]),
                "keepalive": 0 if f[7] == "off" else int(f[7]),
            }
        return res

    def show_text(self):
        return run(["wg", "show", self.ifname], netns=self.netns,
                   check=False, timeout=10).stdout

    def latest_handshake(self, public_key):
        """Unix time of the latest handshake with the peer, 0 if none."""
        p = self.show()["peers"].get(public_key)
        return p["latest_handshake"] if p else 0

    def endpoint_of(self, public_key):
        p = self.show()["peers"].get(public_key)
        return p["endpoint"] if p else None

    def wait_handshake(self, public_key, after=0, timeout=20.0):
        return wait_until(
            lambda: (self.latest_handshake(public_key) > after
                     and self.latest_handshake(public_key)),
            timeout, interval=0.1,
            what="handshake of %s with %s" % (self.ifname, public_key[:8]))
