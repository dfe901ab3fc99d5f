#!/usr/bin/python3
"""Real TCP peers for the relay checks: a server that misbehaves on command, and the client side.

server PORT            command server (first line: HALF n | RESET | SLOW n secs | GREET is port+1)
client HOST PORT TEST  TEST: half | reset | backpressure | greet; prints what happened, exit 0 on success
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time


def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            break
        buf += c
    return buf.decode().strip()


def recv_all(s, limit=1 << 31):
    h, n = hashlib.sha256(), 0
    while n < limit:
        b = s.recv(65536)
        if not b:
            break
        h.update(b)
        n += len(b)
    return n, h.hexdigest()


def handle(c):
    try:
        cmd = recv_line(c).split()
        if not cmd:
            return
        if cmd[0] == "HALF":
            # Read until the client's FIN, answer with what arrived, then send n bytes and close.
            n, digest = recv_all(c)
            c.sendall(f"{n} {digest}\n".encode())
            c.sendall(bytes(int(cmd[1])))
        elif cmd[0] == "RESET":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif cmd[0] == "SLOW":
            time.sleep(float(cmd[2]))
            n, digest = recv_all(c, int(cmd[1]))
            c.sendall(f"{n} {digest}\n".encode())
    finally:
        c.close()


def greet(c):
    c.sendall(b"220 hello, I speak first\r\n")
    c.close()


def serve(port, fn):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()


def client(host, port, test):
    s = socket.create_connection((host, port), timeout=20)
    if test == "half":
        data = os.urandom(1 << 20)
        s.sendall(b"HALF 1048576\n" + data)
        s.shutdown(socket.SHUT_WR)
        line = recv_line(s)
        want = f"{len(data)} {hashlib.sha256(data).hexdigest()}"
        n, _ = recv_all(s)
        ok = line == want and n == 1 << 20
        print(f"half-close: server got {line.split()[0] if line else '?'} bytes intact={line == want}, then sent {n} bytes after our FIN")
        return ok
    if test == "reset":
        s.sendall(b"RESET\n")
        try:
            while s.recv(65536):
                pass
            print("reset: got a clean end of stream, not a reset")
            return False
        except ConnectionResetError:
            print("reset: the client saw the server's reset")
            return True
    if test == "backpressure":
        total = 64 << 20
        s.sendall(b"SLOW %d 3\n" % total)
        chunk = bytes(1 << 20)
        h = hashlib.sha256()
        t0 = time.monotonic()
        for _ in range(total >> 20):
            s.sendall(chunk)
            h.update(chunk)
        line = recv_line(s)
        ok = line == f"{total} {h.hexdigest()}"
        print(f"backpressure: 64 MiB to a server that read nothing for 3 s: intact={ok} in {time.monotonic() - t0:.1f} s")
        return ok
    if test == "greet":
        line = recv_line(s)
        print(f"greet: server-speaks-first got {line!r}")
        return line.startswith("220")
    raise SystemExit(f"unknown test {test}")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        port = int(sys.argv[2])
        threading.Thread(target=serve, args=(port + 1, greet), daemon=True).start()
        serve(port, handle)
    else:
        sys.exit(0 if client(sys.argv[2], int(sys.argv[3]), sys.argv[4]) else 1)
