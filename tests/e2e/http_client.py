#!/usr/bin/python3
"""HTTP client for the L7 end-to-end tests: raw bytes, keep-alive loops, concurrency, upgrades.

Every loop is bounded in count and time. Run inside a pod's network namespace as the app.
usage:
  http_client.py raw HOST PORT 'escaped request' [--timeout S] [--split N:S]
                                                                    prints what came back; --split: N bytes,
                                                                    a pause of S seconds, then the rest
  http_client.py peers HOST PORT PATH N [HEADER:VALUE...]           {"peer": count} over one keep-alive connection
  http_client.py statuses HOST PORT PATH N [HEADER]                 N requests back to back from one process (one
                                                                    keep-alive connection while the server keeps it):
                                                                    a line "STATUS header=VALUE" each
  http_client.py concurrent HOST PORT PATH N                         N requests at once, prints their statuses
  http_client.py upgrade HOST PORT                                    101, then bytes echoed through the tunnel
  http_client.py hold HOST PORT PATH SECONDS STOP_FILE                one request, the connection held idle until
                                                                    STOP_FILE exists (at most SECONDS), then another
  http_client.py load HOST PORT PATH SECONDS [MAX [STOP_FILE]]        keep-alive loop: ok=N failed=M; ends early
                                                                    once STOP_FILE exists
"""
import codecs
import json
import os
import socket
import sys
import threading
import time


def connect(host, port, timeout=30):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, int(port)))
    return s


def read_response(s, buf=b""):
    """One response from s (Content-Length, chunked or until close): (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed inside the head")
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    if status < 200:
        return read_response(s, buf)
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(buf) < n:
            d = s.recv(65536)
            if not d:
                raise EOFError("closed inside the body")
            buf += d
        return status, hdrs, buf[:n], buf[n:]
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += s.recv(65536)
            line, buf = buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            while len(buf) < size + 2:
                buf += s.recv(65536)
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                return status, hdrs, body, buf
    body = buf
    while True:
        d = s.recv(65536)
        if not d:
            return status, hdrs, body, b""
        body += d


def request(host, path, extra=()):
    h = "".join("%s\r\n" % e for e in extra)
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, h)).encode()


def cmd_raw(host, port, req, timeout=30.0, split=None):
    s = connect(host, port, timeout)
    data = codecs.decode(req, "unicode_escape").encode("latin-1")
    if split:  # the first N bytes, a pause, then the rest (a slow first request)
        n, pause = split
        s.sendall(data[:n])
        time.sleep(pause)
        data = data[n:]
    s.sendall(data)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    sys.stdout.write(out.decode("latin-1"))


def cmd_peers(host, port, path, n, extra):
    s = connect(host, port)
    counts, rest = {}, b""
    for _ in range(n):
        s.sendall(request(host, path, extra))
        st, h, _, rest = read_response(s, rest)
        key = "%s:%d" % (h.get("x-peer", "?"), st)
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps(counts, sort_keys=True))


def cmd_statuses(host, port, path, n, header):
    s, rest = None, b""
    for _ in range(n):
        if s is None:
            s, rest = connect(host, port), b""
        s.sendall(request(host, path))
        st, h, _, rest = read_response(s, rest)
        print("%d %s=%s" % (st, header, h.get(header.lower(), "-")))
        if h.get("connection", "").lower() == "close":
            s.close()
            s = None


def cmd_concurrent(host, port, path, n):
    out = [None] * n

    def one(i):
        try:
            s = connect(host, port, 30)
            s.sendall(request(host, path))
            st, h, _, _ = read_response(s)
            out[i] = "%d:%s" % (st, h.get("pillion-proxy-error", "-"))
        except Exception as e:  # noqa: BLE001 - the test reports it
            out[i] = "error:%s" % type(e).__name__

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
        time.sleep(0.05)  # in order: the first ones take the connection and the pending slot
    for t in ts:
        t.join(60)
    print(" ".join(sorted(str(o) for o in out)))


def cmd_upgrade(host, port):
    s = connect(host, port)
    s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" % host).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            print("closed before 101")
            return 1
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        print("no 101: %r" % head[:200])
        return 1
    msg = b"frame-" * 20000
    got = rest
    s.sendall(msg)
    while len(got) < len(msg):
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.shutdown(socket.SHUT_WR)
    print("echoed %d of %d bytes intact=%s" % (len(got), len(msg), got == msg))
    return 0 if got == msg else 1


def cmd_load(host, port, path, secs, cap, stop_file=None):
    ok = failed = 0
    end = time.monotonic() + secs
    s, rest = None, b""
    while time.monotonic() < end and ok + failed < cap and not (stop_file and os.path.exists(stop_file)):
        try:
            if s is None:
                s, rest = connect(host, port), b""
            s.sendall(request(host, path))
            st, h, _, rest = read_response(s, rest)
            if st == 200:
                ok += 1
            else:
                failed += 1
                sys.stderr.write("status %d %s\n" % (st, h.get("pillion-proxy-error", "")))
            if h.get("connection", "").lower() == "close":
                s.close()
                s = None
        except Exception as e:  # noqa: BLE001
            failed += 1
            sys.stderr.write("error %r\n" % e)
            s = None
    print("ok=%d failed=%d" % (ok, failed))
    return 0 if failed == 0 and ok > 0 else 1


def cmd_hold(host, port, path, secs, stop_file):
    """One request, then the connection held idle until stop_file exists (at most secs), then a
    second request on it: "first STATUS" and "second STATUS"."""
    s = connect(host, port)
    s.sendall(request(host, path))
    st, _, _, rest = read_response(s)
    print("first %d" % st, flush=True)
    end = time.monotonic() + secs
    while time.monotonic() < end and not os.path.exists(stop_file):
        time.sleep(0.1)
    s.sendall(request(host, path))
    st2, _, _, _ = read_response(s, rest)
    print("second %d" % st2, flush=True)
    s.close()
    return 0 if st == 200 and st2 == 200 else 1


def main(a):
    if len(a) < 3:
        print(__doc__)
        return 2
    c, host, port = a[0], a[1], a[2]
    if c == "raw":
        opts = dict(zip(a[4::2], a[5::2]))
        t = float(opts.get("--timeout", 30.0))
        split = opts.get("--split")
        cmd_raw(host, port, a[3], t, (int(split.split(":")[0]), float(split.split(":")[1])) if split else None)
        return 0
    if c == "peers":
        cmd_peers(host, port, a[3], int(a[4]), a[5:])
        return 0
    if c == "statuses":
        cmd_statuses(host, port, a[3], int(a[4]), a[5] if len(a) > 5 else "retry-after")
        return 0
    if c == "concurrent":
        cmd_concurrent(host, port, a[3], int(a[4]))
        return 0
    if c == "upgrade":
        return cmd_upgrade(host, port)
    if c == "hold":
        return cmd_hold(host, port, a[3], float(a[4]), a[5])
    if c == "load":
        return cmd_load(host, port, a[3], float(a[4]), int(a[5]) if len(a) > 5 else 100000, a[6] if len(a) > 6 else None)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
