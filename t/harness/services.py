"""Start peer_services.py inside a namespace; clients that run in one.

Clients (curl, the TCP/UDP/WebSocket client in nsclient.py, ping) are
executed through ``ip netns exec`` so they use that namespace's routes.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

from .netns import (HarnessError, run, stop_process, wait_listening,
                    wait_until)
from .peer_services import (expected_sha256, pattern_chunks,  # noqa: F401
                            write_pattern_file)

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_SERVICES = os.path.join(HERE, "peer_services.py")
NSCLIENT = os.path.join(HERE, "nsclient.py")
PYTHON = sys.executable or "python3"


def make_self_signed(workdir, cn="peer.wgc.test",
                     sans=("DNS:peer.wgc.test", "IP:100.64.0.2",
                           "IP:fd7a:115c:a1e0::2")):
    """Self-signed cert + key via `openssl req`; returns (cert, key)."""
    cert = os.path.join(workdir, "peer.crt")
    key = os.path.join(workdir, "peer.key")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=%s" % cn, "-addext",
         "subjectAltName=%s" % ",".join(sans),
         "-keyout", key, "-out", cert], timeout=30)
    os.chmod(key, 0o600)
    return cert, key


class PeerServices:
    """peer_services.py running inside netns (ports 80, 443, 7 tcp+udp)."""

    def __init__(self, netns, workdir, tls=True, http_port=80,
                 https_port=443, echo_port=7):
        self.netns = netns
        self.workdir = workdir
        self.tls = tls
        self.http_port = http_port
        self.https_port = https_port
        self.echo_port = echo_port
        self.proc = None
        self.cert = self.key = None
        self.log_path = os.path.join(workdir, "services-%s.log" % netns)

    def start(self, timeout=15.0):
        ready = os.path.join(self.workdir, "services-%s.ready" % self.netns)
        if os.path.exists(ready):
            os.unlink(ready)
        argv = [PYTHON, PEER_SERVICES, "--ready-file", ready,
                "--http-port", str(self.http_port),
                "--https-port", str(self.https_port),
                "--echo-port", str(self.echo_port)]
        if self.tls:
            self.cert, self.key = make_self_signed(self.workdir)
            argv += ["--tls-cert", self.cert, "--tls-key", self.key]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns] + argv, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("peer services exited %s: %s"
                                   % (self.proc.returncode, self.log_tail()))
            return os.path.exists(ready)
        try:
            wait_until(up, timeout, what="peer services ready")
            wait_listening(self.netns, self.http_port, "tcp", timeout)
            wait_listening(self.netns, self.echo_port, "udp", timeout)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self, timeout=5.0):
        if self.proc is None:
            return
        stop_process(self.proc, timeout)
        self.proc = None

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""


def url_host(addr):
    return "[%s]" % addr if ":" in addr else addr


def curl(netns, url, *args, timeout=30.0, check=True, data_file=None,
         connect_timeout=10):
    """curl inside netns; returns CompletedProcess (text)."""
    argv = ["curl", "-sS", "--max-time", str(int(timeout)),
            "--connect-timeout", str(min(connect_timeout, int(timeout)))]
    if data_file:
        argv += ["-T", data_file]
    argv += list(args) + [url]
    return run(argv, netns=netns, timeout=timeout + 10, check=check)


def curl_sha256(netns, url, *args, timeout=120.0):
    """Download url with curl inside netns, hashing the body as it streams.

    Returns (hexdigest, nbytes, curl_rc, curl_stderr).
    """
    argv = ["ip", "netns", "exec", netns, "curl", "-sS", "--fail",
            "--max-time", str(int(timeout)), "--connect-timeout", "10",
            "-o", "-"] + list(args) + [url]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    h = hashlib.sha256()
    n = 0
    deadline = time.monotonic() + timeout + 10
    try:
        while True:
            d = p.stdout.read1(1 << 20) if hasattr(p.stdout, "read1") \
                else p.stdout.read(1 << 20)
            if not d:
                break
            h.update(d)
            n += len(d)
            if time.monotonic() > deadline:
                p.kill()
                raise HarnessError("download %s exceeded %ss" % (url, timeout))
        rc = p.wait(timeout=15)
        err = p.stderr.read().decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        p.stdout.close()
        p.stderr.close()
    return h.hexdigest(), n, rc, err


def upload_sha256(netns, url, path, timeout=120.0, method="PUT"):
    """Upload file at path (Content-Length) with curl; returns (hex, n)."""
    args = ["--fail", "-X", method, "-H", "Expect:"]
    cp = curl(netns, url, *args, timeout=timeout, data_file=path)
    parts = cp.stdout.split()
    if len(parts) != 2:
        raise HarnessError("unexpected /sha256 reply: %r" % cp.stdout)
    return parts[0], int(parts[1])


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            d = f.read(1 << 20)
            if not d:
                break
            h.update(d)
    return h.hexdigest()


def nsclient(netns, *args, timeout=30.0):
    """Run nsclient.py inside netns; returns its JSON result (a dict)."""
    cp = run([PYTHON, NSCLIENT, "--timeout", str(timeout)] + list(args),
             netns=netns, timeout=timeout + 10, check=False)
    try:
        return json.loads(cp.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise HarnessError("nsclient %s: rc %d\nstdout: %s\nstderr: %s"
                           % (" ".join(args), cp.returncode, cp.stdout,
                              cp.stderr))


def tcp_echo(netns, host, port=7, nbytes=1 << 20, timeout=30.0,
             half_close=False):
    """Send nbytes to a TCP echo service; result["ok"] if they came back
    identical.  half_close: shut down our sending side and read to EOF."""
    extra = ["--half-close"] if half_close else []
    return nsclient(netns, "tcp-echo", host, str(port), "--bytes",
                    str(nbytes), *extra, timeout=timeout)


def udp_echo(netns, host, port=7, count=20, size=512, timeout=10.0):
    r = nsclient(netns, "udp-echo", host, str(port), "--count", str(count),
                 "--size", str(size), timeout=timeout)
    return r


def ws_echo(netns, host, port=80, path="/ws", messages=5, size=1000,
            timeout=20.0):
    return nsclient(netns, "ws-echo", host, str(port), "--path", path,
                    "--count", str(messages), "--size", str(size),
                    timeout=timeout)


def http_load_args(host, port, path="/small", count=200, concurrency=50,
                   req_timeout=10.0, expect="ok\n"):
    a = ["http-load", host, str(port), "--path", path, "--count", str(count),
         "--concurrency", str(concurrency), "--req-timeout", str(req_timeout)]
    if expect is not None:
        a += ["--expect", expect]
    return a


def http_load(netns, host, port, timeout=60.0, **kw):
    """Concurrent GETs from inside netns; returns the nsclient result."""
    return nsclient(netns, *http_load_args(host, port, **kw), timeout=timeout)


def http_load_background(netns, host, port, timeout=60.0, **kw):
    """Start http-load in the background; returns a Popen whose stdout's
    last line is the JSON result (see finish_background)."""
    argv = ["ip", "netns", "exec", netns, PYTHON, NSCLIENT, "--timeout",
            str(timeout)] + http_load_args(host, port, **kw)
    return subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def load_while_reloading(nginx, netns, host, port, count=3000, reloads=3,
                         between=None):
    """Concurrent GETs of /small while nginx reloads `reloads` times, one a
    second, or each after between() instead of the second's wait; returns
    the http-load result."""
    p = http_load_background(netns, host, port, path="/small", count=count,
                             concurrency=20, req_timeout=10, timeout=60)
    try:
        for _ in range(reloads):
            if between is None:
                time.sleep(1.0)
            else:
                between()
            nginx.reload(timeout=20)
    finally:
        r = finish_background(p, timeout=70)
    return r


def finish_background(p, timeout):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=5)
        raise HarnessError("background client timed out: %s" % err)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise HarnessError("background client: %r %r" % (out, err))
