#!/usr/bin/python3
"""HTTP/1.1 test peer for the proxy's component and e2e tests: a server that misbehaves on command.

serve --listen ADDR:PORT [--name NAME] [--ready-file PATH]   ADDR is IPv4 or [IPv6]; runs until SIGTERM/SIGINT
selftest                                                     raw-socket checks against an in-process server

Commands come from the query string (combinable): status=NNN fail=K failstatus=NNN delay=MS delayfirst=K
reset=1 resetfirst=K hang=1 close=1 chunked=N body=SIZE echo=1 noclen=1 expect=reject
failpeer=NAME (only the server of that --name answers failstatus, default 500). forge=1 adds the
proxy's own verdict field (pillion-proxy-error: connect failure), which an app must not get past its proxy.
Special paths: /__stats (JSON counters) and /__reset (clear counters); neither is counted.
"""
import hashlib
import http
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

IDLE = 65.0          # bound on every blocking socket operation
HANG_MAX = 60.0      # hang=1 keeps the socket open at most this long
MAX_HEAD = 64 * 1024
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequest(Exception):
    pass


class Conn:
    """Buffered reader over a socket; EOFError when the peer closes before enough bytes arrived."""

    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def read_until(self, delim, limit):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise BadRequest("line or head too long")
            self.fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def drain(self, n, sink):
        """Pass the next n bytes to sink without holding them all in memory."""
        while n > 0:
            if not self.buf:
                self.fill()
            piece = bytes(self.buf[:n])
            del self.buf[:len(piece)]
            sink(piece)
            n -= len(piece)

    def read_chunked(self, sink):
        """Decode a chunked body into sink; returns (body length, trailers)."""
        total = 0
        while True:
            size = self.read_until(b"\r\n", 4096).split(b";", 1)[0].strip(b" \t")
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size):
                raise BadRequest("bad chunk size")
            size = int(size, 16)
            if size == 0:
                break
            self.drain(size, sink)
            total += size
            if self.read_exact(2) != b"\r\n":
                raise BadRequest("chunk not followed by CRLF")
        trailers = []
        while True:
            line = self.read_until(b"\r\n", MAX_HEAD)
            if not line:
                return total, trailers
            trailers.append(parse_field(line))


def parse_field(line):
    name, sep, value = line.partition(b":")
    if not sep or not TOKEN.fullmatch(name) or re.search(rb"[\r\n\0]", value):
        raise BadRequest("bad header line")  # also rejects obs-fold and "name :"
    return name.decode("latin-1"), value.strip(b" \t").decode("latin-1")


def parse_head(head):
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not re.fullmatch(rb"[\x21-\x7e]+", parts[1]) \
            or not re.fullmatch(rb"HTTP/1\.[01]", parts[2]):
        raise BadRequest("bad request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    return method, target, version, [parse_field(line) for line in lines[1:]]


def header(headers, name):
    """All values of a header, comma-joined (None when absent)."""
    vals = [v for n, v in headers if n.lower() == name]
    return ", ".join(vals) if vals else None


def tokens(value):
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def num(q, name, default=None):
    try:
        return int(q[name]) if name in q else default
    except ValueError:
        raise BadRequest(f"{name} is not a number")


class State:
    """Counters shared by all connections."""

    def __init__(self):
        self.lock = threading.Lock()
        self.clear()

    def clear(self):
        with self.lock:
            self.requests, self.connections, self.paths = 0, 0, {}

    def accepted(self):
        with self.lock:
            self.connections += 1

    def count(self, key):
        with self.lock:
            self.requests += 1
            self.paths[key] = self.paths.get(key, 0) + 1
            return self.paths[key]

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "connections": self.connections, "paths": dict(self.paths)}


def phrase(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def graceful_close(sock):
    """Half-close, then read briefly so unread client bytes do not turn our close into an RST."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            if not sock.recv(65536):
                break
    except OSError:
        pass
    sock.close()


class Peer:
    def __init__(self, host, port, name):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.name, self.state, self.stop = name, State(), threading.Event()

    def serve_forever(self):
        self.lsock.settimeout(0.5)
        while not self.stop.is_set():
            try:
                sock, addr = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                time.sleep(0.1)  # e.g. EMFILE; keep serving
                continue
            self.state.accepted()
            # Head and body leave in separate writes: without this, Nagle's algorithm holds the body
            # until the proxy's delayed ACK (40 ms a request).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.handle, args=(sock, addr), daemon=True).start()
        self.lsock.close()

    def handle(self, sock, addr):
        sock.settimeout(IDLE)
        conn, nreq = Conn(sock), 0
        try:
            while True:
                try:
                    head = conn.read_until(b"\r\n\r\n", MAX_HEAD).lstrip(b"\r\n")
                    if not head:
                        continue  # stray empty lines between requests
                    nreq += 1
                    keep = self.request(conn, parse_head(head), nreq, addr[1])
                except BadRequest as e:
                    self.send(sock, 400, [("Connection", "close")], [f"bad request: {e}\n".encode()], "clen")
                    keep = False
                if not keep:
                    break
            graceful_close(sock)
        except (EOFError, OSError):
            sock.close()

    def request(self, conn, req, nreq, port):
        """Serve one request; returns True to keep the connection for the next one."""
        method, target, version, headers = req
        sock = conn.sock
        url = urlsplit(target)
        key = target if target.startswith("/") else (url.path or "/") + ("?" + url.query if url.query else "")
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        conn_tokens = tokens(header(headers, "connection"))
        keep = "close" not in conn_tokens if version == "HTTP/1.1" else "keep-alive" in conn_tokens

        # Body framing: chunked, or Content-Length (must agree), never both.
        te, cl = header(headers, "transfer-encoding"), header(headers, "content-length")
        if te is not None and (cl is not None or te.strip().lower() != "chunked"):
            raise BadRequest("unsupported transfer-encoding framing")
        clen = 0
        if cl is not None:
            lengths = {v.strip() for v in cl.split(",")}  # repeated values must agree
            if len(lengths) != 1 or not re.fullmatch(r"[0-9]{1,18}", next(iter(lengths))):
                raise BadRequest("bad content-length")
            clen = int(lengths.pop())
        if (te or clen) and "100-continue" in tokens(header(headers, "expect")):
            if q.get("expect") == "reject":
                self.send(sock, 417, [("Connection", "close")], [b"expectation rejected\n"], "clen")
                return False
            sock.sendall(CONTINUE)
        digest = hashlib.sha256()
        body_len, trailers = conn.read_chunked(digest.update) if te else (clen, [])
        if not te:
            conn.drain(clen, digest.update)

        base = [("x-peer", self.name), ("x-conn-requests", str(nreq)), ("x-peer-port", str(port))]
        if not keep:
            base.append(("Connection", "close"))
        elif version == "HTTP/1.0":
            base.append(("Connection", "keep-alive"))
        if url.path in ("/__stats", "/__reset"):
            if url.path == "/__reset":
                self.state.clear()
            data = json.dumps(self.state.snapshot() if url.path == "/__stats" else {"reset": True}).encode()
            self.send(sock, 200, base + [("x-request-count", "0"), ("Content-Type", "application/json")],
                      [data], "clen", method)
            return keep
        count = self.state.count(key)
        base.insert(1, ("x-request-count", str(count)))

        if q.get("reset") == "1" or count <= num(q, "resetfirst", 0):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST, no response
            raise EOFError
        if q.get("hang") == "1":
            deadline = time.monotonic() + HANG_MAX
            while time.monotonic() < deadline:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                if not sock.recv(65536):
                    break
            raise EOFError
        if "delay" in q and count <= num(q, "delayfirst", count):
            time.sleep(num(q, "delay") / 1000)

        upgrade = header(headers, "upgrade")
        if upgrade and "upgrade" in conn_tokens:
            base = [h for h in base if h[0] != "Connection"] + [("Upgrade", upgrade), ("Connection", "Upgrade")]
            self.send(sock, 101, base, [], "none")
            self.echo(conn)
            raise EOFError  # echo() closed the socket

        status = num(q, "status", 200)
        if "fail" in q and count <= num(q, "fail"):
            status = num(q, "failstatus", 503)
        if q.get("failpeer") == self.name:
            status = num(q, "failstatus", 500)
        if 102 <= status < 200:  # interim responses (?interims=N of them, 1 by default), then a normal 200
            for _ in range(num(q, "interims", 1)):
                sock.sendall(f"HTTP/1.1 {status} {phrase(status)}\r\nx-peer: {self.name}\r\n\r\n".encode())
            status = 200
        ctype, length = "text/plain", None
        if "chunked" in q:
            mode, body = "chunked", [f"chunk-{i}\n".encode() for i in range(num(q, "chunked"))]
        else:
            mode = "close" if q.get("noclen") == "1" else "clen"
            if q.get("echo") == "1":
                ctype, body = "application/json", [json.dumps({
                    "method": method, "target": target, "version": version, "headers": [list(h) for h in headers],
                    "body_len": body_len, "body_sha256": digest.hexdigest(), "peer": self.name,
                    "trailers": [list(t) for t in trailers]}).encode()]
            elif "body" in q:
                size = num(q, "body")
                length, body = size, (b"x" * min(65536, size - off) for off in range(0, size, 65536))
            else:
                body = [f"hello from {self.name} path={key}\n".encode()]
        if q.get("close") == "1" and keep:
            keep = False
            base = [h for h in base if h[0] != "Connection"] + [("Connection", "close")]
        if mode == "close":
            keep = False  # the close ends the body; no Connection: close header unless close=1
        forged = [("pillion-proxy-error", "connect failure")] if q.get("forge") == "1" else []
        self.send(sock, status, base + [("Content-Type", ctype)] + forged, body, mode, method, length)
        return keep

    def send(self, sock, status, headers, body, mode, method="GET", length=None):
        """mode: clen (add Content-Length), chunked, close (read-until-close), none (headers as given)."""
        nobody = method == "HEAD" or status < 200 or status in (204, 304)
        if mode == "clen" and status >= 200 and status != 204:
            length = sum(map(len, body)) if length is None else length
            headers = headers + [("Content-Length", str(length))]
        elif mode == "chunked" and status >= 200 and status != 204:
            headers = headers + [("Transfer-Encoding", "chunked")]
        lines = [f"HTTP/1.1 {status} {phrase(status)}"] + [f"{n}: {v}" for n, v in headers]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if nobody:
            return
        for piece in body:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if mode == "chunked" else piece)
        if mode == "chunked":
            sock.sendall(b"0\r\n\r\n")

    @staticmethod
    def echo(conn):
        """Raw echo after 101: return every byte, half-close when the client half-closes."""
        sock = conn.sock
        if conn.buf:
            sock.sendall(bytes(conn.buf))
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        sock.close()


def parse_listen(s):
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", s)
    if not m:
        sys.exit(f"bad --listen {s!r}: want ADDR:PORT or [IPV6]:PORT")
    return (m[1], int(m[2])) if m[1] else (m[3], int(m[4]))


def serve(args):
    opts = {"--listen": None, "--name": "peer", "--ready-file": None}
    for flag, value in zip(args[::2], args[1::2]):
        if flag not in opts:
            sys.exit(f"unknown option {flag}")
        opts[flag] = value
    if not opts["--listen"] or len(args) % 2:
        sys.exit(__doc__)
    peer = Peer(*parse_listen(opts["--listen"]), opts["--name"])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: peer.stop.set())
    if opts["--ready-file"]:
        tmp = opts["--ready-file"] + ".tmp"
        with open(tmp, "w") as f:
            f.write("ready\n")
        os.replace(tmp, opts["--ready-file"])
    peer.serve_forever()
    sys.exit(0)


# ---------------------------------------------------------------- selftest

class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = Conn(self.sock)

    def get(self, target, extra="", method="GET", body=b"", version="HTTP/1.1"):
        self.sock.sendall(f"{method} {target} {version}\r\nHost: t\r\n{extra}\r\n".encode() + body)
        return self.response(method)

    def response(self, method="GET"):
        lines = self.conn.read_until(b"\r\n\r\n", MAX_HEAD).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        h = {n.strip().lower(): v.strip() for n, _, v in (ln.partition(":") for ln in lines[1:])}
        parts = []
        if method == "HEAD" or status < 200 or status in (204, 304):
            pass
        elif h.get("transfer-encoding") == "chunked":
            self.conn.read_chunked(parts.append)
        elif "content-length" in h:
            parts.append(self.conn.read_exact(int(h["content-length"])))
        else:
            parts.append(self.rest())
        return status, h, b"".join(parts)

    def rest(self):
        try:
            while True:
                self.conn.fill()
        except EOFError:
            return bytes(self.conn.buf)


def selftest():
    peer = Peer("127.0.0.1", 0, "selftest")
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    port, passed = peer.port, [0]

    def check(what, cond):
        if not cond:
            print(f"selftest: FAILED: {what}")
            sys.exit(1)
        passed[0] += 1

    c = Client(port)
    r1, r2 = c.get("/ka"), c.get("/ka")
    check("keep-alive x-conn-requests 1,2", (r1[1]["x-conn-requests"], r2[1]["x-conn-requests"]) == ("1", "2"))
    check("x-request-count per path", (r1[1]["x-request-count"], r2[1]["x-request-count"]) == ("1", "2"))
    check("x-peer and x-peer-port", r1[1]["x-peer"] == "selftest" and
          r1[1]["x-peer-port"] == str(c.sock.getsockname()[1]))
    check("default body", r1[2] == b"hello from selftest path=/ka\n")
    c.sock.sendall(b"GET /p1 HTTP/1.1\r\nHost: t\r\n\r\nGET /p2 HTTP/1.1\r\nHost: t\r\n\r\n")
    check("pipelined in order", c.response()[2].endswith(b"/p1\n") and c.response()[2].endswith(b"/p2\n"))

    got = [Client(port).get("/f?fail=2") for _ in range(3)]
    check("fail=2 statuses", [r[0] for r in got] == [503, 503, 200])
    check("fail=2 counts", [r[1]["x-request-count"] for r in got] == ["1", "2", "3"])

    s, h, body = Client(port).get("/c?chunked=3")
    check("chunked=3", h.get("transfer-encoding") == "chunked" and body == b"chunk-0\nchunk-1\nchunk-2\n")
    s, h, body = Client(port).get("/b?body=100000")
    check("body=100000", s == 200 and body == b"x" * 100000)

    c = Client(port)
    s, h, body = c.get("/e?echo=1", "Transfer-Encoding: chunked\r\n", "POST",
                       b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    e = json.loads(body)
    check("echo chunked body_len", e["body_len"] == 11 and
          e["body_sha256"] == hashlib.sha256(b"hello world").hexdigest())
    check("echo headers in order", e["headers"][0] == ["Host", "t"] and e["method"] == "POST")
    check("keep-alive after chunked request", c.get("/after")[1]["x-conn-requests"] == "2")

    c = Client(port)
    c.sock.sendall(b"PUT /x?echo=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    check("100 Continue first", c.conn.read_exact(len(CONTINUE)) == CONTINUE)
    c.sock.sendall(b"abcd")
    check("body after 100", json.loads(c.response()[2])["body_len"] == 4)
    c = Client(port)
    s, h, _ = c.get("/x?expect=reject", "Content-Length: 4\r\nExpect: 100-continue\r\n", "PUT")
    check("expect=reject 417 close", s == 417 and h.get("connection") == "close" and c.rest() == b"")

    c = Client(port)
    c.sock.sendall(b"GET /r?reset=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    try:
        data = c.sock.recv(100)
    except ConnectionResetError:
        data = b""
    check("reset=1", data == b"")
    c = Client(port)
    c.sock.sendall(b"GET /h?hang=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    c.sock.settimeout(0.3)
    try:
        c.sock.recv(100)
        check("hang=1 never answers", False)
    except socket.timeout:
        check("hang=1 never answers", True)
    t0 = time.monotonic()
    Client(port).get("/d?delay=200&delayfirst=1")
    check("delay holds the response", time.monotonic() - t0 >= 0.2)
    # delayfirst=1: only the first request of a path waits. The first one here waits 60 s in the
    # background; once the server has counted it, the second must come back well inside that.
    first = Client(port)
    first.sock.sendall(b"GET /d2?delay=60000&delayfirst=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    deadline = time.monotonic() + 30
    while peer.state.snapshot()["paths"].get("/d2?delay=60000&delayfirst=1") != 1:
        check("the delayed request reaches the server within 30 s", time.monotonic() < deadline)
        time.sleep(0.01)
    t1 = time.monotonic()
    r = Client(port).get("/d2?delay=60000&delayfirst=1")
    check("delayfirst: the second request is not delayed", r[1]["x-request-count"] == "2" and time.monotonic() - t1 < 30)
    first.sock.close()

    c = Client(port)
    s, h, _ = c.get("/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\n")
    check("101 upgrade", s == 101 and h.get("upgrade") == "websocket")
    c.sock.sendall(b"ping")
    check("upgrade echo", c.conn.read_exact(4) == b"ping")
    c.sock.shutdown(socket.SHUT_WR)
    check("upgrade half-close", c.rest() == b"")

    c = Client(port)
    c.sock.sendall(b"GARBAGE\r\n\r\n")
    s, h, _ = c.response()
    check("malformed 400 close", s == 400 and h.get("connection") == "close" and c.rest() == b"")
    c = Client(port)
    s, h, body = c.get("/n?noclen=1")
    check("noclen read-until-close", s == 200 and "content-length" not in h and body.endswith(b"noclen=1\n"))
    c = Client(port)
    s, h, _ = c.get("/old", version="HTTP/1.0")
    check("HTTP/1.0 closes", h.get("connection") == "close" and c.rest() == b"")

    Client(port).get("/__reset")
    a, b = Client(port), Client(port)
    a.get("/s"), a.get("/s"), b.get("/s?x=1")
    st = json.loads(b.get("/__stats")[2])
    check("/__stats counts", st == {"requests": 3, "connections": 2, "paths": {"/s": 2, "/s?x=1": 1}})

    print(f"selftest: {passed[0]} checks passed")
    sys.exit(0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    elif sys.argv[1:] == ["selftest"]:
        selftest()
    else:
        sys.exit(__doc__)
