#!/usr/bin/python3
"""Bounded HTTP load for the e2e tests: N requests (new connection each, or keep-alive), body checked.

usage: load.py URL COUNT MAX_SECONDS EXPECT_SUBSTRING [--keepalive] [--rate R] [--timeout S]
--rate: at most R requests a second (each sent at its scheduled time, or at once when late);
--timeout: a request not answered within S seconds (30) fails, as an app's client would give up.
Prints "ok=N failed=M max=Xs" and the first errors; exits 1 when any request failed.
"""
import http.client
import sys
import time
import urllib.parse


def main():
    url, count, max_s, expect = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4].encode()
    rest = sys.argv[5:]
    keepalive = "--keepalive" in rest
    rate = float(rest[rest.index("--rate") + 1]) if "--rate" in rest else 0.0
    timeout = float(rest[rest.index("--timeout") + 1]) if "--timeout" in rest else 30.0
    start, worst = time.monotonic(), 0.0
    u = urllib.parse.urlsplit(url)
    ok = failed = 0
    errors = []
    deadline = time.monotonic() + max_s
    conn = None
    for i in range(count):
        if time.monotonic() > deadline:
            break
        if rate > 0 and start + i / rate > time.monotonic():
            time.sleep(start + i / rate - time.monotonic())
        t0 = time.monotonic()
        try:
            if conn is None or not keepalive:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
            conn.request("GET", u.path)
            r = conn.getresponse()
            body = r.read()
            if r.status == 200 and expect in body:
                ok += 1
            else:
                failed += 1
                errors.append(f"status {r.status}")
            if not keepalive:
                conn.close()
        except Exception as e:  # every failure is counted, none is retried
            failed += 1
            errors.append(repr(e))
            conn = None
        worst = max(worst, time.monotonic() - t0)
    print(f"ok={ok} failed={failed} max={worst:.2f}s")
    for e in errors[:5]:
        print("  error:", e)
    sys.exit(1 if failed or ok == 0 else 0)


main()
