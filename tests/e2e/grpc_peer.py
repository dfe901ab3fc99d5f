#!/usr/bin/python3
"""A gRPC server and client for the HTTP/2 end-to-end test (python3-grpcio, raw bytes: no stubs).

serve --listen ADDR --name NAME --ready-file F --state-dir DIR
    pillion.test.Echo: Unary (answers "NAME:<request>"), Server (n answers), Big (n answers of 64 KiB), Client (counts the
    requests), Bidi (echoes each), Fail (UNAVAILABLE while the key's count is below the number
    asked for: "key:n"), Slow and Sleep (sleep the milliseconds asked for); and
    grpc.health.v1.Health/Check: SERVING for "" and pillion.test.Echo, NOT_SERVING for
    pillion.test.Down, NOT_FOUND otherwise.
call TARGET OP ...   prints one JSON object on stdout
    unary N [metadata k=v]   N unary calls on one channel: answers per server name, and codes
    server N                 one server-streaming call of N answers
    big N                    N calls of Big answered with 64 KiB each
    client N                 one client-streaming call of N requests
    bidi N                   one bidi call of N messages, each answered before the next goes
    fail KEY N               one Fail call (UNAVAILABLE the first N times for KEY)
    slow MS TIMEOUT_S        one Slow call with a deadline
    method NAME              one unary call of /pillion.test.Echo/NAME (authorization tests)
"""
import argparse
import fcntl
import os
import json
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "pillion.test.Echo"


def serve(args):
    name = args.name.encode()
    lock = threading.Lock()

    def unary(req, ctx):
        return name + b":" + req

    def server_stream(req, ctx):
        for i in range(int(req)):
            yield name + b":" + str(i).encode()

    chunk = b"x" * 65536

    def big(req, ctx):
        for _ in range(int(req)):
            yield chunk

    def client_stream(reqs, ctx):
        n = sum(1 for _ in reqs)
        return name + b":" + str(n).encode()

    def bidi(reqs, ctx):
        for r in reqs:
            yield name + b":" + r

    def fail(req, ctx):
        key, n = req.decode().split(":")
        # The count is shared by every server of the run (a retry may go to another pod).
        with lock, open(os.path.join(args.state_dir, "fail-" + key), "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write("x")
            f.flush()
            count = os.path.getsize(f.name)
        if count <= int(n):
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "failing %s (%d of %s)" % (key, count, n))
        return name + b":" + str(count).encode()

    def slow(req, ctx):
        # A marker a test waits for: the call reached the server.
        with open(os.path.join(args.state_dir, "sleeping-" + req.decode()), "w") as f:
            f.write(args.name)
        time.sleep(int(req) / 1000.0)
        return name + b":slept"

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Server": grpc.unary_stream_rpc_method_handler(server_stream),
        "Big": grpc.unary_stream_rpc_method_handler(big),
        "Client": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Sleep": grpc.unary_unary_rpc_method_handler(slow),
        "Admin": grpc.unary_unary_rpc_method_handler(unary),
    }
    def health(req, ctx):
        # grpc.health.v1.Health/Check by hand: HealthCheckRequest{service = 1} in,
        # HealthCheckResponse{status = 1} out (SERVING 1, NOT_SERVING 2); unknown: NOT_FOUND.
        svc = req[2:2 + req[1]].decode() if len(req) >= 2 and req[0] == 0x0A else ""
        if svc in ("", SERVICE):
            return b"\x08\x01"
        if svc == "pillion.test.Down":
            return b"\x08\x02"
        ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service " + svc)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),
                                     grpc.method_handlers_generic_handler(
                                         "grpc.health.v1.Health",
                                         {"Check": grpc.unary_unary_rpc_method_handler(health)})))
    if server.add_insecure_port(args.listen) == 0:
        sys.exit("cannot listen on %s" % args.listen)
    server.start()
    with open(args.ready_file, "w") as f:
        f.write("ready\n")
    server.wait_for_termination()


def code_name(e):
    return e.code().name if isinstance(e, grpc.RpcError) else type(e).__name__


def call(args):
    # One channel: every call of a run rides one HTTP/2 connection to the proxy.
    ch = grpc.insecure_channel(args.target, options=[("grpc.enable_retries", 0)])
    grpc.channel_ready_future(ch).result(timeout=30)
    op, rest = args.op, args.args
    out = {}
    path = "/%s/" % SERVICE
    if op == "unary":
        n = int(rest[0])
        md = [tuple(kv.split("=", 1)) for kv in rest[1:]]
        f = ch.unary_unary(path + "Unary")
        for i in range(n):
            try:
                r = f(b"x", timeout=30, metadata=md or None)
                k = r.decode().split(":")[0]
            except grpc.RpcError as e:
                k = "error:" + code_name(e)
            out[k] = out.get(k, 0) + 1
    elif op == "server":
        n = int(rest[0])
        got = [r.decode() for r in ch.unary_stream(path + "Server")(str(n).encode(), timeout=60)]
        out = {"answers": len(got), "last": got[-1] if got else None}
    elif op == "big":
        # N calls answered with one 64 KiB message each, on one channel: 64 KiB x N through the
        # same proxy connections, more than their windows.
        n = int(rest[0])
        f = ch.unary_stream(path + "Big")
        got = 0
        for i in range(n):
            got += sum(len(r) for r in f(b"1", timeout=30))
        out = {"calls": n, "bytes": got}
    elif op == "client":
        n = int(rest[0])
        r = ch.stream_unary(path + "Client")(iter([b"m"] * n), timeout=60)
        out = {"answer": r.decode()}
    elif op == "bidi":
        n = int(rest[0])
        q = []
        cond = threading.Condition()
        state = {"sent": 0}

        def gen():
            for i in range(n):
                with cond:
                    # Each message goes only after the previous one was answered: a proxy that
                    # buffered the stream instead of passing frames on would stall here.
                    if not cond.wait_for(lambda: len(q) >= i, timeout=30):
                        return
                state["sent"] += 1
                yield str(i).encode()

        for r in ch.stream_stream(path + "Bidi")(gen(), timeout=60):
            with cond:
                q.append(r.decode())
                cond.notify_all()
        out = {"answers": len(q), "last": q[-1] if q else None}
    elif op in ("fail", "slow", "method"):
        try:
            if op == "fail":
                r = ch.unary_unary(path + "Fail")(("%s:%s" % (rest[0], rest[1])).encode(), timeout=30)
            elif op == "slow":
                r = ch.unary_unary(path + "Slow")(rest[0].encode(), timeout=float(rest[1]))
            else:
                r = ch.unary_unary(path + rest[0])(b"x", timeout=30)
            out = {"code": "OK", "answer": r.decode()}
        except grpc.RpcError as e:
            md = dict(e.trailing_metadata() or ())
            out = {"code": code_name(e), "details": e.details(), "proxy_error": md.get("pillion-proxy-error")}
    else:
        sys.exit("unknown op " + op)
    ch.close()
    print(json.dumps(out, sort_keys=True))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--ready-file", required=True)
    s.add_argument("--state-dir", required=True)
    c = sub.add_parser("call")
    c.add_argument("target")
    c.add_argument("op")
    c.add_argument("args", nargs="*")
    args = ap.parse_args()
    serve(args) if args.cmd == "serve" else call(args)


if __name__ == "__main__":
    main()
