#!/usr/bin/python3
"""Opens C HTTP/2 (h2c) connections of S streams each and holds the streams open and idle.

usage: h2idle.py HOST PORT C S READY_FILE STOP_FILE MAX_SECONDS
Each stream is a GET whose head ends without END_STREAM: the request is never complete, so no
server answers it and every proxy on the way holds the stream. Writes "ready <streams> <failed>"
to READY_FILE once every stream was sent and the connections answered nothing but SETTINGS,
WINDOW_UPDATE or PING, then waits until STOP_FILE exists or MAX_SECONDS pass, and closes all.
"""
import os
import socket
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload


def lit(n, v):
    n, v = n.encode(), v.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def main(host, port, c, s, ready, stop, max_s):
    end = time.time() + max_s
    block = lit(":method", "GET") + lit(":scheme", "http") + lit(":authority", host) + lit(":path", "/index.html")
    conns, opened, failed = [], 0, 0
    for _ in range(c):
        try:
            k = socket.create_connection((host, port), timeout=10)
            k.sendall(PREFACE + frame(4, 0, 0))
            k.settimeout(0.5)
            try:
                k.recv(65536)  # the server's SETTINGS (and window updates)
            except socket.timeout:
                pass
            k.sendall(frame(4, 1, 0))
            # HEADERS with END_HEADERS only: the request stays open.
            k.sendall(b"".join(frame(1, 4, 1 + 2 * i, block) for i in range(s)))
            conns.append(k)
            opened += s
        except OSError:
            failed += s
    # Anything but a RST_STREAM or GOAWAY is fine; those would mean the streams are not held.
    time.sleep(1)
    for k in conns:
        k.setblocking(False)
        try:
            d = k.recv(1 << 20)
            i = 0
            while i + 9 <= len(d):
                n, t = int.from_bytes(d[i:i + 3], "big"), d[i + 3]
                if t in (3, 7):
                    failed += 1
                i += 9 + n
        except (BlockingIOError, OSError):
            pass
    with open(ready, "w") as f:
        f.write("ready %d %d\n" % (opened, failed))
    while time.time() < end and not os.path.exists(stop):
        time.sleep(0.2)
    for k in conns:
        k.close()


if __name__ == "__main__":
    a = sys.argv
    main(a[1], int(a[2]), int(a[3]), int(a[4]), a[5], a[6], float(a[7]))
