#!/usr/bin/env python3
"""Small network clients run inside a namespace; print one JSON line.

    nsclient.py [--timeout S] tcp-echo HOST PORT [--bytes N]
    nsclient.py [--timeout S] udp-echo HOST PORT [--count N] [--size B]
    nsclient.py [--timeout S] ws-echo HOST PORT [--path P] [--count N] [--size B]
    nsclient.py [--timeout S] tcp-connect HOST PORT
    nsclient.py [--timeout S] http-load HOST PORT [--path P] [--count N]
                [--concurrency C] [--req-timeout S] [--expect BODY]
    nsclient.py [--timeout S] churn HOST PORT [--count N] [--concurrency C]
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_services import WS_GUID, pattern_chunks, ws_frame, ws_mask  # noqa


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def tcp_echo(a):
    """--streams N sessions at once; --hold S: each reads nothing for S
    seconds, while it sends what the buffers on the way take."""
    if a.streams == 1:
        return tcp_echo_one(a)
    results = [None] * a.streams

    def one(i):
        try:
            results[i] = tcp_echo_one(a)
        except OSError as e:
            results[i] = {"ok": False, "errors": [repr(e)]}
    threads = [threading.Thread(target=one, args=(i,), daemon=True)
               for i in range(a.streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.timeout + 5)
    good = sum(1 for r in results if r and r["ok"])
    return {"ok": good == a.streams, "streams": a.streams, "good": good,
            "failed": [r for r in results if not (r and r["ok"])][:3]}


def tcp_echo_one(a):
    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    s.settimeout(a.timeout)
    sent_h = hashlib.sha256()
    err = []

    def sender():
        try:
            for c in pattern_chunks(a.bytes):
                sent_h.update(c)
                s.sendall(c)
            if a.half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(repr(e))
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    time.sleep(a.hold)
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    # without half-close, stop once everything came back: a proxy in
    # between (nginx stream without proxy_half_close) would otherwise end
    # the whole session on our FIN before the echo drained
    try:
        while n < a.bytes or a.half_close:
            d = s.recv(1 << 20)
            if not d:
                break
            h.update(d)
            n += len(d)
    except OSError as e:
        err.append(repr(e))
    t.join(a.timeout)
    s.close()
    dt = time.monotonic() - t0
    return {"ok": n == a.bytes and h.hexdigest() == sent_h.hexdigest()
            and not err, "sent": a.bytes, "received": n,
            "errors": err, "seconds": round(dt, 3)}


def udp_payload(i, size):
    return struct.pack("!I", i) + bytes([(i + j) & 0xFF
                                         for j in range(max(0, size - 4))])


def udp_echo(a):
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.connect((a.host, a.port))
    got = set()
    bad = 0
    deadline = time.monotonic() + a.timeout
    pending = list(range(a.count))
    rounds = 0
    while pending and time.monotonic() < deadline:
        rounds += 1
        for i in pending:
            msg = udp_payload(i, a.size)
            try:
                s.send(msg)
            except OSError:
                pass
        t_end = min(deadline, time.monotonic() + 1.0)
        while time.monotonic() < t_end and len(got) < a.count:
            try:
                d = s.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                time.sleep(0.1)
                continue
            i = struct.unpack("!I", d[:4])[0]
            if d == udp_payload(i, a.size):
                got.add(i)
            else:
                bad += 1
        pending = [i for i in range(a.count) if i not in got]
    return {"ok": not pending and not bad, "sent": a.count,
            "received": len(got), "bad": bad, "rounds": rounds}


def ws_echo(a):
    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    s.settimeout(a.timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    host = "[%s]" % a.host if ":" in a.host else a.host
    req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" % (a.path, host, a.port, key))
    s.sendall(req.encode())
    f = s.makefile("rb")
    status = f.readline().decode(errors="replace").strip()
    headers = {}
    while True:
        ln = f.readline()
        if ln in (b"\r\n", b"\n", b""):
            break
        k, _, v = ln.decode(errors="replace").partition(":")
        headers[k.strip().lower()] = v.strip()
    want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode())
                            .digest()).decode()
    if " 101 " not in status + " " or headers.get("sec-websocket-accept") \
            != want:
        return {"ok": False, "status": status, "headers": headers}
    good = 0
    for i in range(a.count):
        payload = bytes([(i * 7 + j) & 0xFF for j in range(a.size)])
        s.sendall(ws_frame(0x2, payload, mask=os.urandom(4)))
        hdr = f.read(2)
        ln = hdr[1] & 0x7F
        if ln == 126:
            ln = struct.unpack("!H", f.read(2))[0]
        elif ln == 127:
            ln = struct.unpack("!Q", f.read(8))[0]
        if hdr[1] & 0x80:
            m = f.read(4)
            data = ws_mask(f.read(ln), m)
        else:
            data = f.read(ln)
        if (hdr[0] & 0x0F) == 0x2 and data == payload:
            good += 1
    s.sendall(ws_frame(0x8, struct.pack("!H", 1000), mask=os.urandom(4)))
    s.close()
    return {"ok": good == a.count, "status": status, "echoed": good,
            "sent": a.count}


def http_load(a):
    """a.count GETs of a.path over a.concurrency threads, each thread on
    its own keep-alive connection (reconnecting after errors)."""
    import http.client
    lock = threading.Lock()
    st = {"ok": 0, "failed": 0, "errors": {}, "retried_stale": 0}
    todo = iter(range(a.count))
    deadline = time.monotonic() + a.timeout
    expect = a.expect.encode() if a.expect else None

    # A server may close an idle keep-alive connection (graceful shutdown
    # of old workers on reload) just as a request goes out on it: like
    # every HTTP client, retry such an idempotent request once on a new
    # connection (RFC 9112, 9.3.1). A new connection that fails is not
    # retried.
    stale = (http.client.RemoteDisconnected, ConnectionResetError,
             BrokenPipeError)

    def one(conn):
        conn.request("GET", a.path)
        r = conn.getresponse()
        body = r.read()
        good = r.status == 200 and (expect is None or body == expect)
        close = r.getheader("Connection", "").lower() == "close"
        return good, (None if good else "status %d" % r.status), close

    def worker():
        conn, used = None, 0
        while time.monotonic() < deadline:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            for attempt in (0, 1):
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(
                            a.host, a.port, timeout=a.req_timeout)
                        used = 0
                    good, err, close = one(conn)
                    used += 1
                    if close:
                        conn.close()
                        conn = None
                    break
                except Exception as e:  # noqa: BLE001 - counted
                    good, err = False, type(e).__name__
                    reused = used > 0
                    if conn is not None:
                        conn.close()
                    conn = None
                    if not (reused and isinstance(e, stale)):
                        break
                    with lock:
                        st["retried_stale"] += 1
            with lock:
                if good:
                    st["ok"] += 1
                else:
                    st["failed"] += 1
                    st["errors"][err] = st["errors"].get(err, 0) + 1
        if conn is not None:
            conn.close()
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, daemon=True)
          for _ in range(a.concurrency)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.1, deadline - time.monotonic() + 1))
    dt = time.monotonic() - t0
    done = st["ok"] + st["failed"]
    return {"ok": st["failed"] == 0 and done == a.count,
            "requests": a.count, "succeeded": st["ok"],
            "failed": st["failed"], "not_done": a.count - done,
            "errors": st["errors"], "retried_stale": st["retried_stale"],
            "seconds": round(dt, 3),
            "rps": round(done / dt, 1) if dt else 0}


def tcp_connect(a):
    t0 = time.monotonic()
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        s.close()
        res = "connected"
    except ConnectionRefusedError:
        res = "refused"
    except socket.timeout:
        res = "timeout"
    except OSError as e:
        res = "error: %s" % e
    return {"ok": res == "connected", "result": res,
            "seconds": round(time.monotonic() - t0, 3)}


def udp_probe(a):
    """One datagram to a port: "reply", "refused" (ICMP port unreachable
    on the connected socket) or "timeout"."""
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    s.connect((a.host, a.port))
    s.send(b"probe")
    try:
        s.recv(2048)
        res = "reply"
    except ConnectionRefusedError:
        res = "refused"
    except socket.timeout:
        res = "timeout"
    finally:
        s.close()
    return {"ok": True, "result": res}


def tcp_read(a):
    """Connect and read until EOF (a server that speaks first)."""
    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return {"ok": True, "data": data.decode(errors="replace")}


def conns(a):
    """a.count TCP connections open at once, then one HTTP/1.0 GET of
    a.path on each, all answered while every connection stays open.
    --hold S: read nothing for S seconds after sending (with --rcvbuf, a
    small receive buffer, the sender stalls at once); --sha256: the body
    of every answer must have it."""
    import resource
    import selectors
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    deadline = time.monotonic() + a.timeout
    sel = selectors.DefaultSelector()
    socks, connected = [], 0
    for _ in range(a.count):
        s = socket.socket(family(a.host), socket.SOCK_STREAM)
        if a.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
        s.setblocking(False)
        s.connect_ex((a.host, a.port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    while connected < a.count and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            sel.unregister(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected += 1
    req = ("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % a.path).encode()
    bufs = {}
    for s in socks:
        try:
            s.send(req)
            bufs[s] = bytearray()
            sel.register(s, selectors.EVENT_READ)
        except OSError:
            pass
    time.sleep(a.hold)
    done = 0
    while len(bufs) > done and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if d:
                bufs[s] += d
                continue
            sel.unregister(s)
            done += 1
    def body_ok(b):
        if a.sha256 is None:
            return True
        return hashlib.sha256(b[b.find(b"\r\n\r\n") + 4:]).hexdigest() \
            == a.sha256
    good = sum(1 for b in bufs.values()
               if b.startswith(b"HTTP/1.1 200")
               and (a.expect is None or b.endswith(a.expect.encode()))
               and body_ok(b))
    for s in socks:
        s.close()
    return {"ok": connected == a.count and good == a.count,
            "connected": connected, "answered": good, "count": a.count}


def churn(a):
    """a.count short TCP connections to an echo service, a.concurrency at
    a time: connect, send a byte, read it back, close first.  One thread
    and non-blocking sockets, so that the rate is the server's."""
    import selectors
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + a.timeout
    st = {"started": 0, "ok": 0, "failed": 0}
    errors = {}

    def start():
        s = socket.socket(family(a.host), socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((a.host, a.port))
        st["started"] += 1
        sel.register(s, selectors.EVENT_WRITE, "connecting")

    def end(s, err):
        sel.unregister(s)
        s.close()
        if err is None:
            st["ok"] += 1
        else:
            st["failed"] += 1
            errors[err] = errors.get(err, 0) + 1
        if st["started"] < a.count:
            start()

    t0 = time.monotonic()
    for _ in range(min(a.concurrency, a.count)):
        start()
    while st["ok"] + st["failed"] < st["started"] \
            and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                if key.data == "connecting":
                    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if e:
                        end(s, os.strerror(e))
                        continue
                    s.send(b"x")
                    sel.modify(s, selectors.EVENT_READ, "reading")
                elif s.recv(16) == b"x":
                    end(s, None)
                else:
                    end(s, "no echo")
            except OSError as e:
                end(s, type(e).__name__)
    dt = time.monotonic() - t0
    return {"ok": st["ok"] == a.count, "count": a.count,
            "succeeded": st["ok"], "failed": st["failed"],
            "not_done": a.count - st["ok"] - st["failed"], "errors": errors,
            "seconds": round(dt, 3),
            "rate": round(st["ok"] / dt, 1) if dt else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("cmd", choices=["tcp-echo", "udp-echo", "ws-echo",
                                    "tcp-connect", "http-load", "udp-probe",
                                    "conns", "tcp-read", "churn"])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--bytes", type=int, default=1 << 20)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--path", default="/ws")
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--half-close", action="store_true",
                    help="tcp-echo: shutdown(SHUT_WR) after sending, "
                         "read until EOF")
    ap.add_argument("--req-timeout", type=float, default=10.0)
    ap.add_argument("--expect", default=None)
    ap.add_argument("--sha256", default=None)
    ap.add_argument("--hold", type=float, default=0.0)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--rcvbuf", type=int, default=0)
    a = ap.parse_args()
    fn = {"tcp-echo": tcp_echo, "udp-echo": udp_echo, "ws-echo": ws_echo,
          "tcp-connect": tcp_connect, "http-load": http_load,
          "udp-probe": udp_probe, "conns": conns,
          "tcp-read": tcp_read, "churn": churn}[a.cmd]
    try:
        r = fn(a)
    except Exception as e:  # noqa: BLE001 - reported as JSON
        r = {"ok": False, "error": repr(e)}
    print(json.dumps(r))
    return 0 if r.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
