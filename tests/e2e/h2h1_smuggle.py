#!/usr/bin/python3
"""Smuggling through HTTP/2 to HTTP/1.1 translation: raw HTTP/2 requests marked as carried HTTP/1
(pillion-orig-proto) to a proxy whose app speaks HTTP/1 (tests/e2e/http_peer.py).

Each case goes on a fresh connection (the attacker may be a mesh peer: --tls CERT KEY CA makes it
one, with the pillion/1 ALPN). A refusal case holds bytes that, if they reached the HTTP/1 app as
written, would make it read a second request /smuggled-N, or split the head: it passes when the
proxy refuses it (RST_STREAM, or a 4xx/5xx of the proxy's own), or when the app answered the
attack's head as the one request it is (the head may go on before the body breaks its framing,
which the proxy then refuses). An answer case must be answered by
the app as exactly one request, seen as the echo shows (target, framing, fields, body). After each
case a victim request /victim-N?echo=1 on another connection must get its own answer: an app
connection left holding half a request must never be reused. At the end the app's counters
(/__stats) must name no /smuggled path.

usage: h2h1_smuggle.py HOST PORT AUTHORITY [--tls CERT KEY CA]
Prints one line per failed case, then one JSON object {cases, refused, answered, failed}; exits 1
on any failure. Every socket has a 20 s timeout; the number of cases is fixed.
"""
import json
import socket
import ssl
import struct
import sys

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TIMEOUT = 20
MARK = ("pillion-orig-proto", "HTTP/1.1")


def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload


class Conn:
    def __init__(self, host, port, tls):
        raw = socket.create_connection((host, port), timeout=TIMEOUT)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False  # SPIFFE IDs are URI SANs; the chain is still verified
            ctx.load_verify_locations(tls[2])
            ctx.load_cert_chain(tls[0], tls[1])
            ctx.set_alpn_protocols(["pillion/1"])
            raw = ctx.wrap_socket(raw)
        self.s = raw
        self.buf = b""
        self.dec = hpack.Decoder()
        self.enc = hpack.Encoder()
        self.s.sendall(PREFACE + frame(4, 0, 0))

    def send_head(self, sid, fields, end):
        # Raw bytes on purpose: the encoder must not clean what an attacker would send.
        block = self.enc.encode([(n.encode("latin-1"), v.encode("latin-1")) for n, v in fields], huffman=False)
        self.s.sendall(frame(1, 4 | (1 if end else 0), sid, block))

    def send_data(self, sid, data, end):
        self.s.sendall(frame(0, 1 if end else 0, sid, data))

    def result(self, sid):
        """Reads until stream sid ends: ("reset", code) or (status, fields, body), or ("closed",)."""
        fields, body = None, b""
        while True:
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                t, fl, s = self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7fffffff
                p = self.buf[9:9 + n]
                self.buf = self.buf[9 + n:]
                if t == 4 and not fl & 1:
                    self.s.sendall(frame(4, 1, 0))
                if t == 7:
                    return ("goaway", struct.unpack(">I", p[4:8])[0])
                if s != sid:
                    continue
                if t == 3:
                    return ("reset", struct.unpack(">I", p)[0])
                if t == 1:
                    pad = p[0] if fl & 8 else 0
                    blk = p[(1 if fl & 8 else 0) + (5 if fl & 0x20 else 0):len(p) - pad]
                    hs = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                          for k, v in self.dec.decode(blk)]
                    if fields is None:
                        fields = hs
                    if fl & 1:
                        return (int(dict(fields)[":status"]), fields, body)
                if t == 0:
                    body += p
                    self.s.sendall(frame(8, 0, 0, struct.pack(">I", len(p))) if p else b"")
                    if fl & 1:
                        return (int(dict(fields)[":status"]), fields, body)
            try:
                d = self.s.recv(65536)
            except (socket.timeout, OSError):
                return ("closed",)
            if not d:
                return ("closed",)
            self.buf += d

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def base(path, auth, method="POST"):
    return [(":method", method), (":scheme", "http"), (":authority", auth), (":path", path)]


def refusal_cases(auth):
    """(name, head fields, body pieces or None, END_STREAM on the head)."""
    sm = lambda n: "GET /smuggled-%d HTTP/1.1\r\nhost: %s\r\n\r\n" % (n, auth)
    b = lambda n, **kw: base("/attack-%d" % n, auth, **kw) + [MARK]
    return [
        ("CRLF in a value", b(1) + [("x-a", "1\r\n\r\n" + sm(1))], None, True),
        ("LF in a value", b(2) + [("x-a", "1\n\n" + sm(2))], None, True),
        ("NUL in a value", b(3) + [("x-a", "1\0" + sm(3))], None, True),
        ("CRLF in a name", b(4) + [("x-a\r\n\r\n" + sm(4).split("\r\n")[0] + "\r\nx", "1")], None, True),
        ("uppercase name", b(5) + [("X-Up", "1")], None, True),
        ("space in :path", base("/attack-6 HTTP/1.1\r\nx: /smuggled-6", auth) + [MARK], None, True),
        ("CRLF in :path", base("/attack-7 HTTP/1.1\r\n\r\n" + sm(7).rstrip(), auth) + [MARK], None, True),
        ("transfer-encoding chunked", b(8) + [("transfer-encoding", "chunked")],
         [("0\r\n\r\n" + sm(8)).encode()], False),
        ("body longer than content-length", b(9) + [("content-length", "3")], [("abc" + sm(9)).encode()], False),
        ("body shorter than content-length", b(10) + [("content-length", "100")], [b"abc"], False),
        ("content-length 0 then a body", b(11) + [("content-length", "0")], [sm(11).encode()], False),
        ("two content-lengths", b(12) + [("content-length", "3"), ("content-length", "40")],
         [("abc" + sm(12)).encode()], False),
        ("userinfo in :authority", base("/attack-13", "evil@" + auth) + [MARK], None, True),
        ("host differs from :authority", b(14) + [("host", "other")], None, True),
        ("connection field", b(15) + [("connection", "close")], None, True),
        ("upgrade field", b(16) + [("upgrade", "websocket")], None, True),
        ("unknown pseudo-field", b(17) + [(":protocol", "websocket")], None, True),
        ("pillion-orig-proto of another protocol", base("/attack-18", auth) + [("pillion-orig-proto", "HTTP/9")],
         None, True),
        ("space before a value", b(19) + [("x-a", " 1")], None, True),
        ("absolute :path", base("http://evil/smuggled-20", auth) + [MARK], None, True),
    ]


def answer_cases(auth):
    """(name, head, body pieces, END_STREAM on the head, check(echo) -> problem or None)."""
    sm = "0\r\n\r\nGET /smuggled-a1 HTTP/1.1\r\nhost: %s\r\n\r\n" % auth
    h = lambda e, n: [v for k, v in e["headers"] if k.lower() == n]
    return [
        ("a body with no length goes chunked, its bytes only data",
         base("/attack-a1?echo=1", auth) + [MARK], [sm.encode()], False,
         lambda e: None if e["body_len"] == len(sm) and h(e, "transfer-encoding") == ["chunked"] else
         "body_len %s, te %s" % (e["body_len"], h(e, "transfer-encoding"))),
        ("cookie crumbs joined into one field",
         base("/attack-a2?echo=1", auth, "GET") + [MARK, ("cookie", "a=1"), ("cookie", "b=2")], None, True,
         lambda e: None if h(e, "cookie") == ["a=1; b=2"] else "cookie %s" % h(e, "cookie")),
        ("a body of its content-length, the marker gone, HTTP/1.1",
         base("/attack-a3?echo=1", auth) + [MARK, ("content-length", "5")], [b"hello"], False,
         lambda e: None if (e["body_len"] == 5 and e["version"] == "HTTP/1.1" and not h(e, "pillion-orig-proto")
                            and h(e, "host") == [auth]) else "echo %s" % e),
    ]


def echo(body):
    """The app's echo of a request, or {} when the body is not one (another request's answer)."""
    try:
        e = json.loads(body)
        return e if isinstance(e, dict) else {}
    except ValueError:
        return {}


def run_case(host, port, tls, head, pieces, end):
    c = Conn(host, port, tls)
    try:
        c.send_head(1, head, end)
        for i, p in enumerate(pieces or []):
            c.send_data(1, p, i == len(pieces) - 1)
        return c.result(1)
    except OSError:
        return ("closed",)
    finally:
        c.close()


def get(host, port, tls, auth, path):
    return run_case(host, port, tls, base(path, auth, "GET") + [MARK], None, True)


def main():
    a = sys.argv[1:]
    if len(a) not in (3, 7) or (len(a) == 7 and a[3] != "--tls"):
        sys.exit(__doc__)
    host, port, auth = a[0], int(a[1]), a[2]
    tls = a[4:7] if len(a) == 7 else None
    failed, refused, answered, one = [], 0, 0, 0

    def victim(n):
        r = get(host, port, tls, auth, "/victim-%d?echo=1" % n)
        if r[0] != 200 or echo(r[2]).get("target") != "/victim-%d?echo=1" % n:
            failed.append("victim after case %d: %s" % (n, r[:1] + (r[2][:200],) if len(r) > 2 else r))

    for n, (name, head, pieces, end) in enumerate(refusal_cases(auth), 1):
        r = run_case(host, port, tls, head, pieces, end)
        own = len(r) > 1 and isinstance(r[1], list) and any(k == "pillion-proxy-error" for k, _ in r[1])
        if r[0] in ("reset", "goaway", "closed") or (isinstance(r[0], int) and r[0] >= 400 and own):
            refused += 1
        elif r[0] == 200 and r[2] == ("hello from web path=/attack-%d\n" % n).encode():
            # A proxy that sends the head on at once may get the app's answer to it before it sees
            # the body break its framing: fine when the app read that one request only (the
            # counters at the end show whether the rest reached it).
            one += 1
        else:
            failed.append("%d %s: not refused: %s" % (n, name, r[:1] + (r[2][:200],) if len(r) > 2 else r))
        victim(n)
    for n, (name, head, pieces, end, check) in enumerate(answer_cases(auth), 101):
        r = run_case(host, port, tls, head, pieces, end)
        e = echo(r[2]) if r[0] == 200 else {}
        problem = (check(e) if e else "not an echo: %s" % (r[:1] + (r[2][:200],),)) if r[0] == 200 else \
            "status %s" % (r[:1],)
        if problem:
            failed.append("%d %s: %s" % (n, name, problem))
        else:
            answered += 1
        victim(n)
    st = get(host, port, tls, auth, "/__stats")
    if st[0] != 200:
        failed.append("/__stats: %s" % (st[:1],))
    else:
        paths = echo(st[2]).get("paths", {"(no counters)": 1, "smuggled?": 1})
        bad = [p for p in paths if "smuggled" in p]
        if bad:
            failed.append("smuggled requests reached the app: %s" % bad)
    for f in failed:
        print("FAIL", f)
    print(json.dumps({"cases": len(refusal_cases(auth)) + len(answer_cases(auth)), "refused": refused,
                      "answered": answered, "answered_as_one": one, "failed": len(failed)}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
