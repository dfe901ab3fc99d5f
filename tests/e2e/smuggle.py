#!/usr/bin/python3
"""Request smuggling through a proxy: generated Transfer-Encoding and Content-Length mutations.

Each case is sent raw on a fresh connection: an attack request /attack-N whose body, read another
way, holds a second request /smuggled-N. Then, on the same connection if it is still open, a
benign /follow-N, and on a second connection a victim /victim-N (it may ride the same pooled
upstream connection). A case passes when:
  - the attack is refused (4xx/5xx from the proxy, the connection then closed) or answered by the
    app as one request (200 naming /attack-N);
  - the follow-up gets its own answer, or the proxy refuses what the attack left on the connection
    (4xx, closed), and the victim gets its own answer (the body names its path);
and, at the end, the app's own counters (/__stats through the proxy) show exactly the attacks it
answered, and a /smuggled-N only where the proxy framed the attack's body so that those bytes
were the sender's own next request, answered to the sender in order: the app saw exactly the
requests the proxy forwarded, and every answer reached the client that asked.

usage: smuggle.py HOST PORT LABEL [guarded]   (as the app, inside a pod's network namespace)
  guarded: the port's authorization allows only /attack-*, /follow-*, /victim-* and /__stats, so
  any /smuggled- path reaching the app is a bypass, even as the sender's own pipelined request.
Prints one line per failed case, then 'LABEL: N cases, R refused, A answered, D desyncs,
S smuggled requests reached the app'; exits 1 when D or S is not 0 or a case failed.
Every socket has a 30 s timeout; the number of cases is fixed.
"""
import json
import re
import socket
import sys

TIMEOUT = 30


def connect(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect((host, int(port)))
    return s


def more(s):
    """The next bytes, or None when the connection ended (EOF, reset or the timeout)."""
    try:
        return s.recv(65536) or None
    except (ConnectionResetError, socket.timeout):
        return None


def read_response(s, buf):
    """(status, headers, body, rest) of one response, or None when the connection ended first."""
    while b"\r\n\r\n" not in buf:
        d = more(s)
        if d is None:
            return None
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0") or 0)
    while len(buf) < n:
        d = more(s)
        if d is None:
            return None
        buf += d
    return status, hdrs, buf[:n], buf[n:]


def closed(s):
    """True when the peer closed (EOF or reset) within the timeout."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def request(host, port, path):
    s = connect(host, port)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n" % path.encode())
        return read_response(s, b"")
    finally:
        s.close()


def mutations():
    """(name, header lines) pairs: how Transfer-Encoding and Content-Length are written."""
    names = ["Transfer-Encoding", "transfer-encoding", "TRANSFER-ENCODING", "Transfer-Encoding ",
             "Transfer-Encoding\t", " Transfer-Encoding", "\tTransfer-Encoding", "Transfer_Encoding",
             "Transfer-Encoding\x00", "X-Pad: 1\r\n Transfer-Encoding", "Transfer-\x00Encoding",
             "Transfer-Encodin", "Content-Encoding"]
    values = ["chunked", " chunked", "chunked ", "\tchunked", "chunked\t", "xchunked", "chunkedx",
              "chunked, identity", "identity, chunked", "chunked,chunked", '"chunked"', "chunk", "CHUNKED",
              "Chunked", "chunked\x0b", "\x0bchunked", "chunked\x0c", "chunked;q=1", "gzip, chunked",
              "ch\x00unked", "chunked\xff", "chunked\r\n x", "identity", ""]
    out = []
    for n in names:
        for v in values:
            out.append(("te:%r=%r" % (n, v), ["%s: %s" % (n, v)]))
    # Two fields, either order, and Content-Length beside a well-written or a mangled one.
    for v in values[:12]:
        out.append(("te2:%r" % v, ["Transfer-Encoding: chunked", "Transfer-Encoding: %s" % v]))
        out.append(("te2r:%r" % v, ["Transfer-Encoding: %s" % v, "Transfer-Encoding: chunked"]))
    for n in names[:8]:
        for v in values[:8]:
            out.append(("cl+te:%r=%r" % (n, v), ["Content-Length: {CL}", "%s: %s" % (n, v)]))
            out.append(("te+cl:%r=%r" % (n, v), ["%s: %s" % (n, v), "Content-Length: {CL}"]))
    for cl in ["{CL}", " {CL}", "{CL} ", "+{CL}", "0{CL}", "{CL}, {CL}", "{CL}\x00", "0x{CL}", "{CL}.0", "-1"]:
        out.append(("cl:%r" % cl, ["Content-Length: %s" % cl, "Transfer-Encoding: chunked"]))
        out.append(("cl-only:%r" % cl, ["Content-Length: %s" % cl]))
    out.append(("cl-twice", ["Content-Length: 5", "Content-Length: {CL}"]))
    for c in ["content-length", "transfer-encoding", "host", "keep-alive, Content-Length", "Transfer-Encoding, close"]:
        out.append(("connection:%r" % c, ["Connection: %s" % c, "Content-Length: {CL}"]))
    # The same framings with a body that is a request by itself.
    out += [("bare-" + n, f) for n, f in list(out) if n.startswith(("connection:", "cl-only:", "cl-twice", "cl+te:",
                                                                    "te+cl:"))]
    return out


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "guarded"):
        print(__doc__)
        return 2
    host, port, label = argv[:3]
    guarded = len(argv) == 4
    cases = mutations()
    refused = answered = desyncs = failed = 0
    expected_attacks, answered_to_sender = set(), set()
    for i, (name, fields) in enumerate(cases):
        tag = "%s-%d" % (label, i)
        smuggled = b"GET /smuggled-%s HTTP/1.1\r\nHost: b\r\n\r\n" % tag.encode()
        # A chunked reader ends the body at "0\r\n\r\n"; a length reader that lost its length
        # (Connection: content-length) reads the body itself as the next request.
        body = smuggled if name.startswith("bare-") else b"0\r\n\r\n" + smuggled
        head = "POST /attack-%s HTTP/1.1\r\nHost: b\r\n" % tag
        head += "".join(f.replace("{CL}", str(len(body))) + "\r\n" for f in fields) + "\r\n"
        own = {"/attack-" + tag, "/smuggled-" + tag, "/follow-" + tag}
        problems = []
        s = connect(host, port)
        try:
            s.sendall(head.encode("latin-1") + body)
            r = read_response(s, b"")
            if r is None:
                refused += 1  # closed without an answer: refused
            elif r[0] == 200 and path_of(r[2]) == "/attack-" + tag:
                answered += 1
                expected_attacks.add("/attack-" + tag)
                # The bytes after the attack's body, framed as the proxy framed it, may be the
                # sender's own pipelined request: its answer comes back here, in order. Then the
                # follow-up's; or the proxy refuses what is left (4xx, no path) and closes.
                s.sendall(b"GET /follow-%s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n" % tag.encode())
                rest = r[3]
                while True:
                    f = read_response(s, rest)
                    if f is None:
                        break
                    p = path_of(f[2])
                    if p is None and f[0] >= 400:
                        break
                    if p not in own:
                        problems.append("the sender got the answer of %s" % p)
                        desyncs += 1
                        break
                    answered_to_sender.add(p)
                    if p == "/follow-" + tag:
                        break
                    rest = f[3]
            elif r[0] >= 400 and path_of(r[2]) is None:
                refused += 1
                if r[1].get("connection", "").lower() != "close" or not closed(s):
                    problems.append("refused with %d but the connection stayed open" % r[0])
            else:
                problems.append("attack answered %d: %r" % (r[0], r[2][:80]))
        except (ConnectionResetError, BrokenPipeError):
            refused += 1
        finally:
            s.close()
        v = request(host, port, "/victim-%s" % tag)
        if v is None or v[0] != 200 or path_of(v[2]) != "/victim-" + tag:
            problems.append("the victim got %r" % (((v[0], v[2][:80]) if v else "no answer"),))
            desyncs += 1
        if problems:
            failed += 1
            print("FAIL %s [%s]: %s" % (label, name, "; ".join(problems)))
    # What the app saw: every attack it answered and no other; a smuggled request only as the
    # sender's own pipelined request, answered to the sender. Anything else reached it unseen.
    st = request(host, port, "/__stats")
    paths = json.loads(st[2])["paths"] if st and st[0] == 200 else None
    if paths is None:
        print("FAIL %s: /__stats unreadable" % label)
        return 1
    attacks_seen = {p for p in paths if p.startswith("/attack-%s-" % label)}
    # On a guarded port authorization allows only the suite's own paths: any /smuggled- the app
    # saw, even the sender's own pipelined one, passed authorization: a bypass.
    unseen = sorted(p for p in paths if p.startswith("/smuggled-%s-" % label) and
                    (guarded or p not in answered_to_sender))
    pipelined = sum(1 for p in paths if p.startswith("/smuggled-%s-" % label) and p in answered_to_sender)
    if attacks_seen != expected_attacks:
        failed += 1
        print("FAIL %s: the app saw attacks it did not answer %s, or missed %s" %
              (label, sorted(attacks_seen - expected_attacks)[:5], sorted(expected_attacks - attacks_seen)[:5]))
    for p in unseen[:10]:
        print("FAIL %s: %s reached the app, its answer not the sender's" % (label, p))
    print("%s: %d cases, %d refused, %d answered (%d with a pipelined request after a well-framed body), "
          "%d desyncs, %d smuggled requests reached the app" %
          (label, len(cases), refused, answered, pipelined, desyncs, len(unseen)))
    return 1 if failed or desyncs or unseen else 0


def path_of(body):
    """The path the test app names in its answer ("hello from b path=/x"), or None."""
    m = re.search(rb"path=(\S+)", body)
    return m.group(1).decode("latin-1") if m else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
