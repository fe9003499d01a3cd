#!/usr/bin/env python3
"""Services on a WireGuard peer, run inside its namespace (stdlib only).

    ip netns exec wgc0-b python3 peer_services.py --ready-file F [--tls-cert C --tls-key K]

Binds every service on the wildcard address (IPv6 socket with V6ONLY off,
so IPv4 and IPv6, the overlay addresses included):

  HTTP/1.1 on 80 (threaded, keep-alive)
    GET  /               "hello from peer\\n"
    GET  /small          "ok\\n" (keep-alive friendly, tiny)
    GET  /bytes/N        N deterministic pseudo-random bytes, streamed, with
                         Content-Length (see pattern_block / expected_sha256)
    POST|PUT /sha256     streams the body (Content-Length or chunked), returns
                         "<hex sha256> <length>\\n"
    GET  /ws             WebSocket echo (RFC 6455 server side)
    GET  /headers        the request line and headers as seen by the peer
  HTTPS on 443 with the same handlers (if --tls-cert/--tls-key are given)
  TCP echo on 7, UDP echo on 7

The module is also imported by the harness for pattern_block and
expected_sha256, so it must stay importable without side effects.
"""

import argparse
import base64
import hashlib
import http.server
import os
import select
import socket
import socketserver
import ssl
import struct
import sys
import threading

BLOCK_SIZE = 1 << 20
DEFAULT_SEED = b"ngx_wgconn"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_blocks = {}


def pattern_block(seed=DEFAULT_SEED):
    """1 MiB of pseudo-random bytes: SHA-256 in counter mode over seed."""
    b = _blocks.get(seed)
    if b is None:
        parts = []
        for i in range(BLOCK_SIZE // 32):
            parts.append(hashlib.sha256(seed + i.to_bytes(4, "big")).digest())
        b = _blocks[seed] = b"".join(parts)
    return b


def pattern_chunks(n, seed=DEFAULT_SEED):
    """Yields the first n bytes of the pattern (the block repeated)."""
    blk = pattern_block(seed)
    mv = memoryview(blk)
    while n > 0:
        k = min(n, BLOCK_SIZE)
        yield mv[:k]
        n -= k


def expected_sha256(n, seed=DEFAULT_SEED):
    h = hashlib.sha256()
    for c in pattern_chunks(n, seed):
        h.update(c)
    return h.hexdigest()


def write_pattern_file(path, n, seed=DEFAULT_SEED):
    with open(path, "wb") as f:
        for c in pattern_chunks(n, seed):
            f.write(c)
    return path


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wgc-peer/1"
    # big writes go straight to the socket
    wbufsize = 0

    def log_message(self, fmt, *args):
        if os.environ.get("WGC_SERVICES_LOG"):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _send(self, code, body, ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            return self._send(200, "hello from peer\n")
        if path == "/small":
            return self._send(200, "ok\n")
        if path == "/headers":
            lines = [self.requestline] + ["%s: %s" % kv
                                          for kv in self.headers.items()]
            lines.append("peer: %s" % self.client_address[0])
            return self._send(200, "\n".join(lines) + "\n")
        if path.startswith("/bytes/"):
            try:
                n = int(path[len("/bytes/"):])
                if n < 0:
                    raise ValueError
            except ValueError:
                return self._send(400, "bad length\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command != "HEAD":
                for c in pattern_chunks(n):
                    self.wfile.write(c)
            return None
        if path == "/ws":
            return self._websocket()
        return self._send(404, "not found\n")

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    return
                left = size
                while left:
                    d = self.rfile.read(min(left, BLOCK_SIZE))
                    if not d:
                        raise ConnectionError("eof in chunk")
                    left -= len(d)
                    yield d
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length", "0") or 0)
            while left:
                d = self.rfile.read1(min(left, BLOCK_SIZE)) \
                    if hasattr(self.rfile, "read1") \
                    else self.rfile.read(min(left, BLOCK_SIZE))
                if not d:
                    raise ConnectionError("eof in body")
                left -= len(d)
                yield d

    def _sha256(self):
        if self.path.split("?", 1)[0] != "/sha256":
            for _ in self._read_body():
                pass
            return self._send(404, "not found\n")
        h = hashlib.sha256()
        n = 0
        for d in self._read_body():
            h.update(d)
            n += len(d)
        return self._send(200, "%s %d\n" % (h.hexdigest(), n))

    do_POST = _sha256
    do_PUT = _sha256

    # -- WebSocket echo (RFC 6455, server side) ----------------------
    def _websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if (self.headers.get("Upgrade", "").lower() != "websocket"
                or not key):
            return self._send(400, "websocket upgrade expected\n")
        accept = base64.b64encode(
            hashlib.sha1((key.strip() + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        rf, wf = self.rfile, self.wfile
        while True:
            hdr = rf.read(2)
            if len(hdr) < 2:
                return None
            fin_op, ln = hdr[0], hdr[1]
            opcode = fin_op & 0x0F
            masked = ln & 0x80
            ln &= 0x7F
            if ln == 126:
                ln = struct.unpack("!H", rf.read(2))[0]
            elif ln == 127:
                ln = struct.unpack("!Q", rf.read(8))[0]
            mask = rf.read(4) if masked else b"\0\0\0\0"
            payload = rf.read(ln)
            if len(payload) < ln:
                return None
            if masked:
                payload = ws_mask(payload, mask)
            if opcode == 0x8:            # close: echo it and stop
                wf.write(ws_frame(0x8, payload[:125]))
                return None
            if opcode == 0x9:            # ping -> pong
                wf.write(ws_frame(0xA, payload))
                continue
            if opcode == 0xA:
                continue
            wf.write(ws_frame(opcode, payload, fin=bool(fin_op & 0x80)))


def ws_mask(data, mask):
    n = len(data)
    m = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ m).to_bytes(n, "big")


def ws_frame(opcode, payload, fin=True, mask=None):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        h = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        h = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        return h + mask + ws_mask(payload, mask)
    return h + payload


class DualStackHTTPServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class TLSHTTPServer(DualStackHTTPServer):
    def __init__(self, addr, handler, ctx):
        self.ctx = ctx
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        return sock, addr

    def finish_request(self, request, client_address):
        # handshake in the worker thread, not the accept loop
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


class EchoTCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        while True:
            try:
                d = s.recv(1 << 16)
            except OSError:
                return
            if not d:
                return
            s.sendall(d)


class DualStackTCPServer(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def udp_echo(port, stop):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("::", port))
    while not stop.is_set():
        r, _, _ = select.select([s], [], [], 0.5)
        if not r:
            continue
        try:
            d, a = s.recvfrom(65535)
            s.sendto(d, a)
        except OSError:
            pass


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--https-port", type=int, default=443)
    ap.add_argument("--echo-port", type=int, default=7)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--ready-file")
    a = ap.parse_args(argv)

    pattern_block()   # precompute before announcing readiness
    stop = threading.Event()
    servers = []
    httpd = DualStackHTTPServer(("::", a.http_port), Handler)
    servers.append(httpd)
    if a.tls_cert and a.tls_key:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        servers.append(TLSHTTPServer(("::", a.https_port), Handler, ctx))
    servers.append(DualStackTCPServer(("::", a.echo_port), EchoTCPHandler))
    threads = [threading.Thread(target=s.serve_forever, daemon=True)
               for s in servers]
    threads.append(threading.Thread(target=udp_echo,
                                    args=(a.echo_port, stop), daemon=True))
    for t in threads:
        t.start()
    if a.ready_file:
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(os.getpid()))
        os.rename(tmp, a.ready_file)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    stop.set()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
