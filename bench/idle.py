#!/usr/bin/python3
"""Opens N keep-alive HTTP connections, one request each, then holds them idle until told to stop.

usage: idle.py HOST PORT N READY_FILE STOP_FILE MAX_SECONDS
Writes "ready <open> <failed>" to READY_FILE once every connection had its answer, then waits
until STOP_FILE exists or MAX_SECONDS pass (bounded), and closes everything.
"""
import os
import socket
import sys
import time


def main(host, port, n, ready, stop, max_s):
    end = time.time() + max_s
    req = ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode()
    socks, failed = [], 0
    for _ in range(n):
        if time.time() > end:
            break
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    raise EOFError
                buf += d
            head, body = buf.split(b"\r\n\r\n", 1)
            clen = 0
            for ln in head.split(b"\r\n")[1:]:
                k, _, v = ln.partition(b":")
                if k.strip().lower() == b"content-length":
                    clen = int(v)
            while len(body) < clen:
                d = s.recv(65536)
                if not d:
                    raise EOFError
                body += d
            if not head.startswith(b"HTTP/1.1 200"):
                raise ValueError(head[:40])
            socks.append(s)
        except (OSError, EOFError, ValueError):
            failed += 1
    with open(ready + ".tmp", "w") as f:
        f.write("ready open=%d failed=%d\n" % (len(socks), failed))
    os.rename(ready + ".tmp", ready)
    while time.time() < end and not os.path.exists(stop):
        time.sleep(0.2)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) != 6:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(a[0], int(a[1]), int(a[2]), a[3], a[4], float(a[5])))
