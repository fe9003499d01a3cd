"""Network namespaces and veth pairs (iproute2), with bounded waits.

Every namespace created here is named ``wgc<N>-<x>`` and registered in
REGISTRY with the pid of the process that owns it, so a later run can
remove leftovers of a crashed run (owner dead) without touching a
concurrent live run.  Underlay subnets are 10.99.N.0/24 (another engineer's
tests use ``wgt-`` and 10.98.x).
"""

import os
import re
import signal
import subprocess
import time

PREFIX = "wgc"
REGISTRY = "/run/wgc-harness"
DEFAULT_TIMEOUT = 30.0
MAX_INDEX = 250


class HarnessError(RuntimeError):
    pass


def run(argv, netns=None, timeout=DEFAULT_TIMEOUT, check=True, input=None,
        capture=True, env=None):
    """Run argv (optionally inside netns) with a hard timeout.

    Returns a CompletedProcess with text stdout/stderr.  On check and a
    non-zero exit raises HarnessError carrying the output.
    """
    if netns:
        argv = ["ip", "netns", "exec", netns] + list(argv)
    try:
        cp = subprocess.run(
            argv, input=input, timeout=timeout, env=env,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True)
    except subprocess.TimeoutExpired as e:
        raise HarnessError("timeout after %.0fs: %s\nstdout: %s\nstderr: %s"
                           % (timeout, " ".join(argv), e.stdout, e.stderr))
    if check and cp.returncode != 0:
        raise HarnessError("exit %d: %s\nstdout: %s\nstderr: %s"
                           % (cp.returncode, " ".join(argv), cp.stdout,
                              cp.stderr))
    return cp


def ip(*args, netns=None, check=True, timeout=DEFAULT_TIMEOUT):
    argv = ["ip"]
    if netns:
        argv += ["-n", netns]
    return run(argv + list(args), check=check, timeout=timeout)


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until truthy or timeout; returns pred's value or raises."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %.1fs waiting for %s%s"
                               % (timeout, what,
                                  (": %r" % last_exc) if last_exc else ""))
        time.sleep(interval)


def list_netns():
    cp = run(["ip", "netns", "list"], check=False)
    names = []
    for line in cp.stdout.splitlines():
        if line.strip():
            names.append(line.split()[0])
    return names


def ns_pids(name):
    cp = run(["ip", "netns", "pids", name], check=False, timeout=10)
    return [int(p) for p in cp.stdout.split() if p.isdigit()]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(proc, timeout=5.0):
    """SIGTERM a Popen we started, SIGKILL it if it is still there after
    timeout; reaps it either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def kill_pids(pids, timeout=5.0):
    """SIGTERM the given pids, then SIGKILL whatever is left after timeout."""
    pids = [p for p in pids if p != os.getpid()]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in pids if pid_alive(p) and not _is_zombie(p)]
        if not pids:
            return
        time.sleep(0.05)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _owner_file(name):
    return os.path.join(REGISTRY, name + ".owner")


def delete_netns(name, timeout=10.0):
    """Kill every process inside the namespace, then delete it."""
    if name in list_netns():
        kill_pids(ns_pids(name), timeout=timeout / 2)
        run(["ip", "netns", "del", name], check=False, timeout=timeout)
    try:
        os.unlink(_owner_file(name))
    except FileNotFoundError:
        pass
    # a SIGKILLed wireguard-go leaves its UAPI socket behind
    for sock in _uapi_sockets_of(name):
        try:
            os.unlink(sock)
        except OSError:
            pass


def _uapi_sockets_of(name):
    m = re.match(r"^%s(\d+)-([a-z])$" % PREFIX, name)
    if not m:
        return []
    d = "/var/run/wireguard"
    tag = "%s%s%s" % (PREFIX, m.group(1), m.group(2))
    try:
        return [os.path.join(d, f) for f in os.listdir(d)
                if f.startswith(tag) and f.endswith(".sock")]
    except FileNotFoundError:
        return []


def cleanup_stale(force=False):
    """Remove wgc* namespaces left by dead runs (or all of them if force)."""
    removed = []
    for name in list_netns():
        if not name.startswith(PREFIX):
            continue
        owner = None
        try:
            with open(_owner_file(name)) as f:
                owner = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
        if force or not owner or not pid_alive(owner):
            delete_netns(name)
            removed.append(name)
    if os.path.isdir(REGISTRY):
        for f in os.listdir(REGISTRY):
            if f.endswith(".owner") and f[:-6] not in list_netns():
                try:
                    os.unlink(os.path.join(REGISTRY, f))
                except OSError:
                    pass
    return removed


def create_netns(name):
    if not name.startswith(PREFIX):
        raise HarnessError("namespace %r must start with %r" % (name, PREFIX))
    os.makedirs(REGISTRY, exist_ok=True)
    with open(_owner_file(name), "w") as f:
        f.write(str(os.getpid()))
    run(["ip", "netns", "add", name])
    ip("link", "set", "lo", "up", netns=name)


class Pair:
    """Two namespaces wgcN-a / wgcN-b joined by a veth pair.

    a: 10.99.N.1/24 (and fd99:N::1/64) on interface wgcN-va
    b: 10.99.N.2/24 (and fd99:N::2/64) on interface wgcN-vb
    """

    def __init__(self, index=None):
        self.index = index
        self.ns_a = self.ns_b = None
        self.created = []

    def _pick_index(self):
        existing = set(list_netns())
        os.makedirs(REGISTRY, exist_ok=True)
        for n in range(MAX_INDEX):
            a, b = "%s%d-a" % (PREFIX, n), "%s%d-b" % (PREFIX, n)
            if a in existing or b in existing:
                continue
            # claim the index atomically against a concurrent run
            try:
                fd = os.open(os.path.join(REGISTRY, "%d.claim" % n),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                claim = os.path.join(REGISTRY, "%d.claim" % n)
                try:
                    with open(claim) as f:
                        pid = int(f.read().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid_alive(pid):
                    continue
                os.unlink(claim)
                fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                             0o644)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return n
        raise HarnessError("no free wgc namespace index")

    @property
    def subnet(self):
        return "10.99.%d.0/24" % self.index

    @property
    def addr_a(self):
        return "10.99.%d.1" % self.index

    @property
    def addr_b(self):
        return "10.99.%d.2" % self.index

    @property
    def addr6_a(self):
        return "fd99:%x::1" % self.index

    @property
    def addr6_b(self):
        return "fd99:%x::2" % self.index

    @property
    def veth_a(self):
        return "%s%d-va" % (PREFIX, self.index)

    @property
    def veth_b(self):
        return "%s%d-vb" % (PREFIX, self.index)

    def up(self):
        if self.index is None:
            self.index = self._pick_index()
        n = self.index
        self.ns_a, self.ns_b = "%s%d-a" % (PREFIX, n), "%s%d-b" % (PREFIX, n)
        try:
            for ns in (self.ns_a, self.ns_b):
                delete_netns(ns)          # leftovers with the same name
                create_netns(ns)
                self.created.append(ns)
            ip("link", "add", self.veth_a, "netns", self.ns_a, "type", "veth",
               "peer", "name", self.veth_b, "netns", self.ns_b)
            for ns, dev, a4, a6 in ((self.ns_a, self.veth_a, self.addr_a,
                                     self.addr6_a),
                                    (self.ns_b, self.veth_b, self.addr_b,
                                     self.addr6_b)):
                ip("addr", "add", a4 + "/24", "dev", dev, netns=ns)
                ip("-6", "addr", "add", a6 + "/64", "dev", dev, "nodad",
                   netns=ns)
                ip("link", "set", dev, "up", netns=ns)
            wait_until(lambda: self._veth_ready(), 10, what="veth up")
        except Exception:
            self.down()
            raise
        return self

    def _veth_ready(self):
        for ns, dev in ((self.ns_a, self.veth_a), (self.ns_b, self.veth_b)):
            out = ip("-o", "link", "show", dev, netns=ns).stdout
            if "LOWER_UP" not in out:
                return False
        return True

    def down(self):
        for ns in reversed(self.created):
            delete_netns(ns)
        self.created = []
        if self.index is not None:
            try:
                os.unlink(os.path.join(REGISTRY, "%d.claim" % self.index))
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()


def listening(netns, port, proto="tcp"):
    """True if something listens on port (tcp or udp) inside netns."""
    flag = "-Hltn" if proto == "tcp" else "-Hlun"
    cp = run(["ss", flag, "sport", "= :%d" % port], netns=netns, check=False,
             timeout=10)
    return bool(cp.stdout.strip())


def wait_listening(netns, port, proto="tcp", timeout=10.0):
    return wait_until(lambda: listening(netns, port, proto), timeout,
                      what="%s port %d listening in %s"
                      % (proto, port, netns or "root ns"))


def ping(netns, addr, count=3, timeout=10.0, size=None, interval=0.2):
    """Ping addr from netns; returns the number of replies received."""
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval),
            "-W", "2", "-w", str(int(timeout))]
    if ":" in addr:
        argv.insert(1, "-6")
    if size is not None:
        argv += ["-s", str(size)]
    cp = run(argv + [addr], netns=netns, check=False, timeout=timeout + 5)
    m = re.search(r"(\d+) received", cp.stdout)
    return int(m.group(1)) if m else 0
