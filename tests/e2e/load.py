#!/usr/bin/python3
"""Bounded HTTP load for the e2e tests: N requests (new connection each, or keep-alive), body checked.

usage: load.py URL COUNT MAX_SECONDS EXPECT_SUBSTRING [--keepalive]
Prints "ok=N failed=M" and the first errors; exits 1 when any request failed.
"""
import http.client
import sys
import time
import urllib.parse


def main():
    url, count, max_s, expect = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4].encode()
    keepalive = "--keepalive" in sys.argv[5:]
    u = urllib.parse.urlsplit(url)
    ok = failed = 0
    errors = []
    deadline = time.monotonic() + max_s
    conn = None
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            if conn is None or not keepalive:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
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
    print(f"ok={ok} failed={failed}")
    for e in errors[:5]:
        print("  error:", e)
    sys.exit(1 if failed or ok == 0 else 0)


main()
