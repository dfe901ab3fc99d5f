#!/usr/bin/python3
"""How many meshed pods one mesh directory (ConfigMap pillion-mesh) holds, and what it costs a proxy.

usage: bench/mesh_capacity.py [--bin build/bin] [--pods 1000,10000,50000] [--out FILE]

For each size N it writes N pods (100 per Service, 1,000 per namespace, each with an address in
198.18.0.0/15 handed out node by node as a CNI does, ReplicaSet-style names), renders namespace
ns-0's directory with the real renderer (`pillionctl render --mesh`), and reports:

- its bytes as the operator writes them (canonical JSON) and gzipped at level 9, as the operator
  writes one larger than --mesh-compress-above (mesh.json.gz in binaryData): the ConfigMap
  limit is 1 MiB (1,048,576 bytes) for data and binaryData together;
- what a pillion-proxy holds for it: VmRSS of a proxy started with that directory, once it
  logged "mesh loaded", minus VmRSS of the same proxy with a one-pod directory, and the
  time the load took (the log's timestamps), for mesh.json and for mesh.json.gz.

Processes it starts are stopped by PID; the temporary directory is removed at the end.
"""
import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from operator_scale import free_port, mem_kb  # noqa: E402

PER_SVC, PER_NS, PER_NODE = 100, 1000, 110
ALPHA = "bcdfghjklmnpqrstvwxz2456789"


def objects(n, rnd):
    """YAML (JSON documents are YAML) for n pods, their Services and ServiceAccounts."""
    docs, order = [], list(range(n))
    rnd.shuffle(order)  # the scheduler spreads a ReplicaSet's pods over nodes
    ip = {}
    for k, i in enumerate(order):
        node = k // PER_NODE  # one /24 per node, as a CNI's host-local ranges
        a = (node // 256, node % 256) if node < 512 else (0, 0)
        ip[i] = "198.%d.%d.%d" % (18 + a[0], a[1], 2 + k % PER_NODE)
    for s in range((n + PER_SVC - 1) // PER_SVC):
        ns, name = "ns-%d" % (s * PER_SVC // PER_NS), "svc-%d" % s
        rs = "".join(rnd.choice("0123456789abcdef") for _ in range(9))
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                     "spec": {"selector": {"app": name}, "clusterIP": "198.19.%d.%d" % (200 + s // 250, s % 250 + 1),
                              "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        for j in range(PER_SVC):
            i = s * PER_SVC + j
            if i >= n:
                break
            pn = "%s-%s-%s" % (name, rs, "".join(rnd.choice(ALPHA) for _ in range(5)))
            docs.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": pn, "namespace": ns, "labels": {"app": name},
                                      "annotations": {"pillion.dev/id": "%032x" % (i + 1)}},
                         "spec": {"serviceAccountName": name,
                                  "containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]},
                         "status": {"phase": "Running", "podIP": ip[i], "podIPs": [{"ip": ip[i]}],
                                    "conditions": [{"type": "Ready", "status": "True"}]}})
    return "".join("---\n" + json.dumps(d) + "\n" for d in docs)


def proxy_rss(binp, cfg, meshdir, log):
    """VmRSS and VmHWM (KiB) of a proxy once it loaded meshdir/mesh.json(.gz), and the load's duration (s)."""
    ports = [str(free_port()) for _ in range(3)]
    tls = os.path.join(meshdir, "no-tls")
    os.makedirs(tls, exist_ok=True)
    with open(log, "w") as f:
        p = subprocess.Popen([os.path.join(binp, "pillion-proxy"), "--config", cfg, "--mesh",
                              os.path.join(meshdir, "mesh.json"), "--tls-dir", tls, "--outbound-port", ports[0],
                              "--inbound-port", ports[1], "--admin-port", ports[2], "--admin-address", "127.0.0.1",
                              "--log-level", "info"], stdout=subprocess.DEVNULL, stderr=f)
    try:
        end = time.monotonic() + 300
        while time.monotonic() < end:
            text = open(log).read()
            if "\"mesh loaded" in text or "\"mesh refused" in text:
                break
            if p.poll() is not None:
                raise RuntimeError("pillion-proxy exited: " + text[-500:])
            time.sleep(0.05)
        else:
            raise RuntimeError("pillion-proxy did not load the directory in 300 s")
        if "\"mesh refused" in open(log).read():
            raise RuntimeError("pillion-proxy refused the directory: " + open(log).read()[-500:])
        time.sleep(0.5)
        m = mem_kb(p.pid)
        rss, hwm = m.get("VmRSS", 0), m.get("VmHWM", 0)
        # The load time: from the proxy's first log line to "mesh loaded".
        ts = [json.loads(line)["ts"] for line in open(log) if line.startswith("{")]
        loaded = [json.loads(line)["ts"] for line in open(log) if "\"mesh loaded" in line]
        t = lambda s: time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + s[19:-1])
        return rss, hwm, (t(loaded[0]) - t(ts[0])) if ts and loaded else float("nan")
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(here), "build", "bin"))
    ap.add_argument("--pods", default="1000,10000,50000")
    ap.add_argument("--out", help="also write the Markdown table here")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pillion-mesh-cap.")
    rows = []
    try:
        rnd = random.Random(7)
        # The baseline: a proxy with a directory of one pod.
        sizes = [1] + [int(x) for x in a.pods.split(",")]
        base = None
        for n in sizes:
            d = os.path.join(tmp, str(n))
            os.makedirs(d)
            objs = os.path.join(d, "objects.yaml")
            open(objs, "w").write(objects(n, rnd))
            t0 = time.monotonic()
            r = subprocess.run([os.path.join(a.bin, "pillionctl"), "render", "--mesh", "ns-0", "-f", objs],
                               capture_output=True, text=True)
            render_s = time.monotonic() - t0
            if r.returncode != 0:
                raise SystemExit("pillionctl render --mesh: " + r.stderr[-500:])
            doc = json.loads(r.stdout)
            canon = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
            gz = gzip.compress(canon, 9)
            # A config for the proxy: the first pod's, rendered from the same objects.
            first = json.loads(open(objs).read().split("---\n")[2])  # [1] is the first Service
            podf = os.path.join(d, "pod.json")
            json.dump(first, open(podf, "w"))
            cfg = os.path.join(d, "proxy.json")
            r = subprocess.run([os.path.join(a.bin, "pillionctl"), "render", "--pod", podf, "-f", objs],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit("pillionctl render --pod: " + r.stderr[-500:])
            open(cfg, "w").write(r.stdout)
            plain_dir, gz_dir = os.path.join(d, "plain"), os.path.join(d, "gz")
            os.makedirs(plain_dir)
            os.makedirs(gz_dir)
            open(os.path.join(plain_dir, "mesh.json"), "wb").write(canon)
            open(os.path.join(gz_dir, "mesh.json.gz"), "wb").write(gz)
            rss_plain, hwm_plain, t_plain = proxy_rss(a.bin, cfg, plain_dir, os.path.join(d, "proxy-plain.log"))
            rss_gz, hwm_gz, t_gz = proxy_rss(a.bin, cfg, gz_dir, os.path.join(d, "proxy-gz.log"))
            if n == 1:
                base = rss_plain
                continue
            rows.append((n, len(doc["pods"]), len(doc["services"]), len(canon), len(gz), rss_plain - base,
                         rss_gz - base, max(hwm_plain, hwm_gz) - base, t_plain, t_gz))
            print("%d pods: %d B JSON, %d B gzipped (%.1f B/pod), proxy +%d KiB (gz +%d KiB, peak +%d KiB), "
                  "load %.2f s (gz %.2f s)" % (n, len(canon), len(gz), len(gz) / n, rss_plain - base, rss_gz - base,
                                              max(hwm_plain, hwm_gz) - base, t_plain, t_gz), flush=True)
        lines = ["| meshed pods | Services | mesh.json | gzipped (mesh.json.gz) | per pod, gzipped | fits 1 MiB | "
                 "proxy RSS added (plain / gz) | peak while loading | proxy load time (plain / gz) |",
                 "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
        for n, np_, ns_, lj, lg, rp, rg, pk, tp, tg in rows:
            lines.append("| %s | %s | %.2f MiB | %.0f KiB | %.1f B | %s | %.1f / %.1f MiB | +%.0f MiB | %.2f / %.2f s |" % (
                format(np_, ","), format(ns_, ","), lj / 1048576, lg / 1024, lg / n,
                "yes" if lg <= 1048576 else "**no**", rp / 1024, rg / 1024, pk / 1024, tp, tg))
        table = "\n".join(lines)
        print()
        print(table)
        print("\nbaseline: a proxy with a one-pod directory, %.1f MiB RSS" % (base / 1024))
        if a.out:
            open(a.out, "w").write(table + "\n")
        return 0 if all(r[4] <= 1048576 for r in rows) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
