#!/usr/bin/python3
"""Scale benchmark of pillion-operator (issue 4): N injected pods, M TrafficPolicies.

    /usr/bin/python3 bench/operator_scale.py --pods 1000 --policies 50 --namespaces 10

It starts the API server test double (e2e/apiserver/fake_apiserver.py) on loopback, fills it
*before* the operator starts (namespaces, ServiceAccounts, one Service and one TrafficPolicy
per "app", pods spread over the apps, each Running with a 198.18.0.0/15 address, as a kubelet
would report), then starts the real pillion-operator and measures:

  1. initial convergence: every pod has ConfigMap pillion-<id> and Secret pillion-<id>-tls,
     every namespace its pillion-mesh, every policy Programmed=True for its generation;
  2. a policy change (one TrafficPolicy's route timeout: the client side, so every pod the
     policy is exported to): time until every affected ConfigMap is rewritten, how many changed;
  3. a second policy change (one policy's authorization rule: the server side, so only the
     target Service's pods);
  4. pod churn: C pods deleted and C new ones created.

For each phase: wall time, the API requests the operator made (the double's /_fake/requests
per-User-Agent counts; cross-checked with the operator's pillion_operator_api_requests_total and
with the double's total minus the benchmark's own requests, which it counts itself), the
operator's writes and reconciles (its /metrics), its CPU time (utime+stime from /proc/PID/stat)
and the API server's, and the operator's RSS (VmRSS, VmHWM). See bench/operator_scale.md. The benchmark observes objects through three watches (one
request each), not by polling, so it adds almost no requests; it does add the cost of
serializing every ConfigMap/Secret/policy event once more in the API server.

Everything it starts is stopped by PID (SIGTERM, then SIGKILL after 10 s) in a finally block;
every wait is bounded (--timeout) and reported as "did not converge" rather than hanging.
Logs (operator JSON log, API server log, a 1 s CPU/RSS/progress timeline) are kept in
--log-dir (a new temporary directory by default) and the operator log is summarised.
"""
import argparse
import collections
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

PY = "/usr/bin/python3"
TOKEN = "bench-t0k"
AGENT = "pillion-bench/1"        # our User-Agent; the operator's is pillion-operator/...
MANAGED = "app.kubernetes.io/managed-by=pillion-operator"
HASH = "pillion.dev/content-hash"
REFRESH = "pillion.dev/config-hash"
# The proxy container as the webhook injects it: --outbound makes the operator write the client-side
# policies once per namespace (outbound.json of pillion-mesh) instead of into every pod's config.
PROXY_ARGS = ["--config", "/etc/pillion/config/proxy.json", "--mesh", "/etc/pillion/mesh/mesh.json",
              "--outbound", "/etc/pillion/mesh/outbound.json", "--tls-dir", "/etc/pillion/tls"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
T_START = time.monotonic()


def log(msg):
    print("[%7.1fs] %s" % (time.monotonic() - T_START, msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the API client (keep-alive, counted)

def classify(method, path):
    """The double's verb and resource for a request (fakeapi/server.py), to subtract our own requests."""
    u = urllib.parse.urlsplit(path)
    q = urllib.parse.parse_qs(u.query)
    segs = [s for s in u.path.split("/") if s]
    rest = segs[2:] if segs and segs[0] == "api" else segs[3:]
    watching = False
    if rest and rest[0] == "watch":
        watching, rest = True, rest[1:]
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        rest = rest[2:]
    res = rest[0] if rest else "?"
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    watching = watching or (q.get("watch") or [""])[-1] in ("true", "1")
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method)
    if method == "GET":
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    return "%s %s" % (verb, res + ("/" + sub if sub else ""))


class Api:
    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.token = u.hostname, u.port, token
        self.local = threading.local()
        self.lock = threading.Lock()
        self.mine = collections.Counter()   # our own API requests, by "verb resource"

    def count(self, method, path):
        if not path.startswith("/_fake/"):
            with self.lock:
                self.mine[classify(method, path)] += 1

    def mine_snapshot(self):
        with self.lock:
            return collections.Counter(self.mine)

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.local.conn = c
        return c

    def req(self, method, path, body=None, ctype="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Authorization": "Bearer " + self.token, "User-Agent": AGENT}
        if data is not None:
            hdrs["Content-Type"] = ctype
        for attempt in range(3):
            c = self.conn()
            self.count(method, path)
            try:
                c.request(method, path, body=data, headers=hdrs)
                r = c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (OSError, http.client.HTTPException):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def create(self, path, obj):
        code, out = self.req("POST", path, obj)
        if code not in (200, 201):
            raise RuntimeError("create %s: %s %s" % (path, code, out))
        return out

    def must(self, method, path, body=None, ctype="application/json"):
        code, out = self.req(method, path, body, ctype)
        if code >= 300:
            raise RuntimeError("%s %s: %s %s" % (method, path, code, out))
        return out


# ---------------------------------------------------------------- watches: what the operator wrote, when

class Obj:
    __slots__ = ("rv", "hash", "data", "writes", "t", "gen", "conds", "labels")


class Watcher(threading.Thread):
    """One watch, resumed from the last resourceVersion; keeps the latest object per (ns, name) and
    the monotonic time of each event's arrival."""

    def __init__(self, api, name, path, query="", keep_data=False, hash_key=None):
        super().__init__(daemon=True, name="watch-" + name)
        self.api, self.label, self.path, self.query, self.keep_data = api, name, path, query, keep_data
        self.hash_key = hash_key or HASH
        self.objs = {}
        self.lock = threading.Lock()
        self.events = 0
        self.last_event_t = 0.0
        self.ready = threading.Event()
        self.stop_flag = False
        self.rv = None
        self.sock = None
        self.errors = []

    def run(self):
        while not self.stop_flag:
            if self.rv is None:
                try:
                    self.relist()
                except (OSError, http.client.HTTPException, ValueError) as e:
                    self.errors.append(repr(e))
                    time.sleep(1)
                    continue
            q = "watch=1&allowWatchBookmarks=true&timeoutSeconds=3600"
            if self.query:
                q += "&" + self.query
            if self.rv:
                q += "&resourceVersion=" + self.rv
            path = self.path + "?" + q
            c = http.client.HTTPConnection(self.api.host, self.api.port, timeout=60)
            try:
                self.api.count("GET", path)
                c.request("GET", path, headers={"Authorization": "Bearer " + self.api.token, "User-Agent": AGENT})
                r = c.getresponse()
                self.sock = c.sock
                if r.status != 200:
                    self.errors.append("HTTP %d" % r.status)
                    r.read()
                    time.sleep(1)
                    continue
                self.ready.set()
                while not self.stop_flag:
                    line = r.readline()
                    if not line:
                        break
                    self.handle(json.loads(line), time.monotonic())
            except (OSError, http.client.HTTPException, ValueError, EOFError) as e:
                if not self.stop_flag:
                    self.errors.append(repr(e))
                    time.sleep(0.5)
            finally:
                c.close()

    def handle(self, ev, t):
        typ, o = ev.get("type"), ev.get("object") or {}
        md = o.get("metadata") or {}
        if typ == "BOOKMARK":
            self.rv = md.get("resourceVersion") or self.rv
            return
        if typ == "ERROR":
            self.errors.append("ERROR event: %s" % o.get("message"))
            self.rv = None   # relist, then watch again
            raise EOFError("watch expired")
        key = (md.get("namespace"), md.get("name"))
        with self.lock:
            self.rv = md.get("resourceVersion") or self.rv
            self.events += 1
            self.last_event_t = t
            if typ == "DELETED":
                self.objs.pop(key, None)
                return
            self.objs[key] = self.record(self.objs.get(key), o, md, t)

    def record(self, old, o, md, t):
        """A new immutable record per event, so that snapshots keep their values."""
        x = Obj()
        x.rv = md.get("resourceVersion")
        x.hash = (md.get("annotations") or {}).get(self.hash_key)
        x.t = t if old is None or old.hash != x.hash else old.t    # time of the last content change
        x.writes = (old.writes if old else 0) + 1
        x.labels = md.get("labels") or {}
        x.data = o.get("data") if self.keep_data else None
        x.gen = md.get("generation")
        st = o.get("status") or {}
        x.conds = {c.get("type"): c for c in st.get("conditions") or []} if isinstance(st, dict) else {}
        return x

    def relist(self):
        """A LIST (one request) replacing the state, and the resourceVersion to watch from."""
        path = self.path + ("?" + self.query if self.query else "")
        code, out = self.api.req("GET", path)
        if code != 200:
            raise OSError("list %s: HTTP %s" % (self.label, code))
        t = time.monotonic()
        with self.lock:
            objs = {}
            for o in out.get("items") or []:
                md = o.get("metadata") or {}
                key = (md.get("namespace"), md.get("name"))
                objs[key] = self.record(self.objs.get(key), o, md, t)
            self.objs = objs
            self.rv = out["metadata"]["resourceVersion"]

    def snapshot(self):
        with self.lock:
            return dict(self.objs)

    def stop(self):
        self.stop_flag = True
        try:
            if self.sock:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ---------------------------------------------------------------- processes: CPU, RSS, metrics

def cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return float("nan")


def mem_kb(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "Threads:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def scrape(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
    except (OSError, http.client.HTTPException):
        return {}
    m = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                m[k] = float(v)
            except ValueError:
                pass
    return m


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stop_proc(p, name):
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log("%s (pid %d) did not stop on SIGTERM within 10 s: SIGKILL" % (name, p.pid))
        p.kill()
        p.wait(timeout=10)


# ---------------------------------------------------------------- the objects

def pod_ip(j):
    # 198.18.1.10 .. 198.19.255.209: 200 addresses per /24, RFC 2544 benchmarking range
    a = j // 200 + 1
    return "198.%d.%d.%d" % (18 + a // 256, a % 256, j % 200 + 10)


def svc_ip(i):
    return "198.19.250.%d" % (i + 1) if i < 250 else "198.19.251.%d" % (i - 249)


def make_policy(ns, app, export_to, timeout="5s", methods=("GET", "POST")):
    return {"apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy",
            "metadata": {"name": app, "namespace": ns},
            "spec": {"targetRef": {"kind": "Service", "name": app, "port": 80},
                     "exportTo": [export_to],
                     "routes": [{"name": "default", "timeout": timeout,
                                 "retries": {"attempts": 2, "perTryTimeout": "1s", "retryOn": ["5xx", "connect-failure"]}}],
                     "authorization": {"rules": [{"name": "callers", "from": {"namespaces": [ns]},
                                                  "to": {"paths": ["/api/*"], "methods": list(methods)}}]}}}


class Layout:
    """Who is where: app i (Service + ServiceAccount + TrafficPolicy) in namespace i % K; pod j in app j % M."""

    def __init__(self, pods, policies, namespaces, legacy=False):
        self.M, self.K, self.legacy = policies, namespaces, legacy
        self.pods = {}       # (ns, name) -> (id, app, ip)
        self.next_index = 0
        for _ in range(pods):
            self.add_pod(self.next_index % self.M)

    def ns(self, i):
        return "bench-%d" % (i % self.K)

    def app(self, i):
        return "app-%d" % i

    def add_pod(self, app_index):
        j = self.next_index
        self.next_index += 1
        key = (self.ns(app_index), "%s-p%d" % (self.app(app_index), j))
        self.pods[key] = ("b%d" % j, app_index, pod_ip(j))
        return key

    def pod_obj(self, key):
        ns, name = key
        pid, ai, _ = self.pods[key]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": self.app(ai)},
                             "annotations": {"pillion.dev/id": pid}},
                "spec": {"serviceAccountName": self.app(ai),
                         "containers": [{"name": "app", "image": "app", "ports": [{"name": "http", "containerPort": 8080}]}]
                         + ([] if self.legacy else [{"name": "pillion-proxy", "image": "proxy", "args": PROXY_ARGS}])}}


def create_pod(api, lay, key):
    ns, name = key
    api.create("/api/v1/namespaces/%s/pods" % ns, lay.pod_obj(key))
    ip = lay.pods[key][2]
    # The kubelet's part: the pod runs and has an IP.
    api.must("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (ns, name),
             {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}, "application/merge-patch+json")


def populate(api, lay, export_to, threads):
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pillion-system"}})
    for k in range(lay.K):
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": lay.ns(k)}})

    def app_objs(i):
        ns, app = lay.ns(i), lay.app(i)
        api.create("/api/v1/namespaces/%s/serviceaccounts" % ns,
                   {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": app, "namespace": ns}})
        api.create("/api/v1/namespaces/%s/services" % ns, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": ns},
            "spec": {"clusterIP": svc_ip(i), "selector": {"app": app},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
        api.create("/apis/pillion.dev/v1alpha1/namespaces/%s/trafficpolicies" % ns, make_policy(ns, app, export_to))

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(app_objs, range(lay.M)))
        list(ex.map(lambda k: create_pod(api, lay, k), list(lay.pods)))


# ---------------------------------------------------------------- the benchmark

class Bench:
    def __init__(self, a):
        self.a = a
        self.procs = []
        self.fake = self.op = None
        self.watchers = []
        self.rows = []        # (phase, dict)
        self.notes = []
        self.samples_stop = False

    # --- helpers
    def fake_counts(self):
        code, out = self.api.req("GET", "/_fake/requests")
        return out if code == 200 else {}

    def reset_counts(self):
        self.api.req("DELETE", "/_fake/requests")

    def op_requests(self, counts, mine_before):
        """The operator's requests since the reset: the double's per-User-Agent counts when it has them
        (byAgent), else its totals minus the benchmark's own requests (counted here). Both totals returned."""
        mine = self.api.mine_snapshot() - mine_before
        by_res = collections.Counter(counts.get("byResource") or {})
        by_res.subtract(mine)
        by_res = +by_res
        subtracted = sum(by_res.values())
        agents = counts.get("byAgent")
        self.op_paths = collections.Counter()
        if agents is not None:
            by_res = collections.Counter()
            for agent, paths in agents.items():
                if agent.startswith("pillion-operator"):
                    for k, v in paths.items():
                        method, path = k.split(" ", 1)
                        by_res[classify(method, path)] += v
                        self.op_paths[k] += v
        by_verb = collections.Counter()
        for k, v in by_res.items():
            by_verb[k.split(" ", 1)[0]] += v
        return sum(by_res.values()), by_verb, by_res, sum(mine.values()), subtracted, agents is not None

    def begin(self):
        """Start of a measured interval: counters reset, CPU noted."""
        self.reset_counts()
        return {"t": time.monotonic(), "mine": self.api.mine_snapshot(), "op_cpu": cpu_s(self.op.pid) if self.op else 0.0,
                "fake_cpu": cpu_s(self.fake.pid), "self_cpu": self_cpu(), "metrics": scrape(self.mport) if self.op else {}}

    def end(self, b, phase, t_done, extra):
        counts = self.fake_counts()
        total, by_verb, by_res, mine, subtracted, by_agent = self.op_requests(counts, b["mine"])
        m = scrape(self.mport)
        bm = b["metrics"]
        d = lambda k: m.get(k, 0) - bm.get(k, 0)
        mem = mem_kb(self.op.pid)
        row = {"time": (t_done - b["t"]) if t_done else None,
               "wall": time.monotonic() - b["t"],
               "requests": total, "by_verb": by_verb, "by_res": by_res, "mine": mine,
               "requests_subtracted": subtracted, "by_agent": by_agent,
               "op_cpu": cpu_s(self.op.pid) - b["op_cpu"], "fake_cpu": cpu_s(self.fake.pid) - b["fake_cpu"],
               "self_cpu": self_cpu() - b["self_cpu"],
               "rss_kb": mem.get("VmRSS"), "hwm_kb": mem.get("VmHWM"), "threads": mem.get("Threads"),
               "w_cm": d('pillion_operator_writes_total{kind="configmap"}'),
               "w_secret": d('pillion_operator_writes_total{kind="secret"}'),
               "w_mesh": d('pillion_operator_writes_total{kind="mesh"}'),
               "w_status": d('pillion_operator_writes_total{kind="status"}'),
               "certs": d("pillion_operator_certificates_issued_total"),
               "rec_ok": d('pillion_operator_reconciles_total{result="ok"}'),
               "rec_err": d('pillion_operator_reconciles_total{result="error"}'),
               "rec_s": d("pillion_operator_reconcile_duration_seconds_sum") or d("pillion_operator_reconcile_seconds_total"),
               "rec_slow": d('pillion_operator_reconcile_duration_seconds_bucket{le="+Inf"}')
               - d('pillion_operator_reconcile_duration_seconds_bucket{le="0.25"}'),
               "relists": sum(v - bm.get(k, 0) for k, v in m.items() if 'event="relist"' in k),
               "watch_errors": sum(v - bm.get(k, 0) for k, v in m.items()
                                   if k.startswith("pillion_operator_watch_total") and 'event="error"' in k),
               "api_metric": (sum(v - bm.get(k, 0) for k, v in m.items() if k.startswith("pillion_operator_api_requests_total{"))
                              if any(k.startswith("pillion_operator_api_requests_total{") for k in m) else None),
               "api_metric_non2xx": {re.sub(r'.*verb="([^"]*)",code="([^"]*)".*', r"\1 \2", k): v - bm.get(k, 0)
                                     for k, v in m.items() if k.startswith("pillion_operator_api_requests_total{")
                                     and not re.search(r'code="2\d\d"', k) and v - bm.get(k, 0) > 0}}
        row.update(extra)
        self.rows.append((phase, row))
        with open(os.path.join(self.tmp, "phases.txt"), "a") as f:
            f.write("%.3f %.3f %s\n" % (b["t"], time.monotonic(), phase))
        log("%s: %s in %s; operator API requests %d (%s); operator CPU %.1f s, API server CPU %.1f s, RSS %s KiB" % (
            phase, "converged" if t_done else "DID NOT CONVERGE", fmt_s(row["time"]) if t_done else fmt_s(row["wall"]),
            total, ", ".join("%s %d" % kv for kv in by_verb.most_common()), row["op_cpu"], row["fake_cpu"], row["rss_kb"]))
        return row

    def wait(self, what, cond, timeout=None, period=0.2):
        """Poll cond() (in-memory state only: no API requests) until true; its time, or None after the bound."""
        end = time.monotonic() + (timeout or self.a.timeout)
        last_log = time.monotonic()
        while time.monotonic() < end:
            if self.op is not None and self.op.poll() is not None:
                self.notes.append("the operator exited (code %s) while waiting for %s" % (self.op.returncode, what))
                log(self.notes[-1])
                return None
            ok = cond()
            if ok:
                return time.monotonic()
            if time.monotonic() - last_log >= 15:
                last_log = time.monotonic()
                log("waiting for %s: %s" % (what, self.progress()))
            time.sleep(period)
        log("%s: did not converge within %d s: %s" % (what, timeout or self.a.timeout, self.progress()))
        return None

    def quiet(self, seconds, timeout=60):
        """Until no ConfigMap/Secret event arrived for `seconds` (bounded)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            last = max(self.w_cm.last_event_t, self.w_sec.last_event_t, self.w_tp.last_event_t)
            if time.monotonic() - last >= seconds:
                return True
            time.sleep(0.2)
        return False

    def progress(self):
        cms, secs, tps = self.w_cm.snapshot(), self.w_sec.snapshot(), self.w_tp.snapshot()
        prog = sum(1 for o in tps.values() if programmed(o))
        m = scrape(self.mport) if self.op else {}
        return "%d ConfigMaps, %d Secrets, %d/%d policies Programmed; queue %s ready / %s delayed; operator CPU %.1f s" % (
            len(cms), len(secs), prog, len(tps), fmt_n(m.get('pillion_operator_queue_depth{state="ready"}')),
            fmt_n(m.get('pillion_operator_queue_depth{state="delayed"}')), cpu_s(self.op.pid) if self.op else 0)

    def sampler(self, path):
        with open(path, "w") as f:
            f.write("t_s,operator_cpu_s,apiserver_cpu_s,bench_cpu_s,operator_rss_kb,configmaps,secrets,programmed,queue_ready,reconciles_ok\n")
            while not self.samples_stop:
                if self.op and self.op.poll() is None:
                    m = scrape(self.mport)
                    tps = self.w_tp.snapshot()
                    f.write("%.1f,%.2f,%.2f,%.2f,%s,%d,%d,%d,%s,%s\n" % (
                        time.monotonic() - T_START, cpu_s(self.op.pid), cpu_s(self.fake.pid), self_cpu(),
                        mem_kb(self.op.pid).get("VmRSS"), len(self.w_cm.objs), len(self.w_sec.objs),
                        sum(1 for o in tps.values() if programmed(o)),
                        fmt_n(m.get('pillion_operator_queue_depth{state="ready"}')),
                        fmt_n(m.get('pillion_operator_reconciles_total{result="ok"}'))))
                    f.flush()
                time.sleep(1)

    # --- the run
    def run(self):
        a = self.a
        self.tmp = a.log_dir or tempfile.mkdtemp(prefix="pillion-op-scale.")
        os.makedirs(self.tmp, exist_ok=True)
        log("logs in %s" % self.tmp)
        ready = os.path.join(self.tmp, "ready.json")
        kc = os.path.join(self.tmp, "kubeconfig")
        cmd = [PY, os.path.join(a.src, "e2e/apiserver/fake_apiserver.py"), "--port", "0", "--token", TOKEN,
               "--crds", os.path.join(a.src, "crds"), "--kubeconfig-out", kc, "--ready-file", ready,
               "--bookmark-interval", "5", "--history-size", str(a.history_size)]
        self.fake = subprocess.Popen(cmd, stdout=open(os.path.join(self.tmp, "apiserver.log"), "w"), stderr=subprocess.STDOUT)
        self.procs.append(("API server", self.fake))
        end = time.monotonic() + 30
        while not (os.path.exists(ready) and os.path.getsize(ready) > 0):
            if time.monotonic() > end or self.fake.poll() is not None:
                raise RuntimeError("the API server test double did not start (see %s/apiserver.log)" % self.tmp)
            time.sleep(0.1)
        url = json.load(open(ready))["url"]
        self.api = Api(url, TOKEN)
        # The pods run nothing: the double answers their proxies' GET /status as proxies that apply
        # their ConfigMap at once, so Programmed (which counts proxies) can converge.
        self.api.req("POST", "/_fake/config", {"podAutoStatus": True})

        lay = Layout(a.pods, a.policies, a.namespaces, a.legacy_pods)
        self.lay = lay
        t = time.monotonic()
        c0 = cpu_s(self.fake.pid)
        populate(self.api, lay, a.export_to, a.threads)
        log("populated %d namespaces, %d Services/ServiceAccounts/TrafficPolicies, %d pods in %.1f s (API server CPU %.1f s)"
            % (a.namespaces, a.policies, a.pods, time.monotonic() - t, cpu_s(self.fake.pid) - c0))

        self.w_cm = Watcher(self.api, "configmaps", "/api/v1/configmaps", "labelSelector=" + urllib.parse.quote(MANAGED), True)
        self.w_sec = Watcher(self.api, "secrets", "/api/v1/secrets", "labelSelector=" + urllib.parse.quote(MANAGED))
        self.w_tp = Watcher(self.api, "trafficpolicies", "/apis/pillion.dev/v1alpha1/trafficpolicies")
        # Pods, for the refresh the operator writes on each (pillion.dev/config-hash): a change has
        # reached a pod once its kubelet is told to project it.
        self.w_pod = Watcher(self.api, "pods", "/api/v1/pods", "", False, REFRESH)
        self.watchers = [self.w_cm, self.w_sec, self.w_tp, self.w_pod]
        for w in self.watchers:
            w.start()
        for w in self.watchers:
            if not w.ready.wait(20):
                raise RuntimeError("watch %s did not start: %s" % (w.label, w.errors))
        time.sleep(0.5)   # the synthetic ADDED events of the existing policies

        # ---- 1. initial convergence
        self.mport = free_port()
        op_cmd = [os.path.join(a.bin, "pillion-operator"), "--kubeconfig", kc, "--namespace", "pillion-system",
                  "--metrics-port", str(self.mport), "--metrics-address", "127.0.0.1", "--identity", "bench"] + a.operator_arg
        b = self.begin()
        self.op = subprocess.Popen(op_cmd, stdout=open(os.path.join(self.tmp, "operator.log"), "w"), stderr=subprocess.STDOUT)
        self.procs.append(("operator", self.op))
        log("started %s (pid %d)" % (" ".join(op_cmd), self.op.pid))
        threading.Thread(target=self.sampler, args=(os.path.join(self.tmp, "timeline.csv"),), daemon=True).start()
        if a.perf:
            # Sampled with CLOCK_MONOTONIC timestamps: phases.txt gives each phase's window for perf report --time.
            self.perf = subprocess.Popen(["perf", "record", "-q", "-F", str(a.perf_freq), "--call-graph", "dwarf,%d" % a.perf_stack,
                                          "-k", "CLOCK_MONOTONIC", "-p", str(self.op.pid), "-o", a.perf],
                                         stdout=open(os.path.join(self.tmp, "perf.log"), "w"), stderr=subprocess.STDOUT)
            self.procs.append(("perf", self.perf))

        namespaces = {lay.ns(k) for k in range(lay.K)} & {k[0] for k in lay.pods}
        marks = {}

        def converged():
            cms, secs, tps = self.w_cm.snapshot(), self.w_sec.snapshot(), self.w_tp.snapshot()
            c1 = all((ns, "pillion-" + p[0]) in cms for (ns, _), p in lay.pods.items()) and \
                all((ns, "pillion-mesh") in cms for ns in namespaces)
            c2 = all((ns, "pillion-%s-tls" % p[0]) in secs for (ns, _), p in lay.pods.items())
            c3 = len(tps) == lay.M and all(programmed(o) for o in tps.values())
            now = time.monotonic()
            for k, ok in (("configmaps", c1), ("secrets", c2), ("programmed", c3)):
                if ok and k not in marks:
                    marks[k] = now
            return c1 and c2 and c3

        t_done = self.wait("initial convergence", converged)
        m = scrape(self.mport)
        extra = {"detail": "ConfigMaps complete at %s, Secrets at %s, all policies Programmed at %s" % tuple(
            fmt_s(marks[k] - b["t"]) if k in marks else "never" for k in ("configmaps", "secrets", "programmed")),
                 "cm_changed": len(self.w_cm.objs), "cm_expected": len(lay.pods) + len(namespaces)}
        cms = self.w_cm.snapshot()
        px = [len(o.data.get("proxy.json", "")) for k, o in cms.items() if k[1] != "pillion-mesh" and o.data]
        mx = [len(o.data.get("mesh.json", "")) for k, o in cms.items() if k[1] == "pillion-mesh" and o.data]
        if px:
            extra["detail"] += "; proxy.json %.1f KiB on average (%.1f MiB in all), mesh.json %.0f KiB per namespace" % (
                sum(px) / len(px) / 1024, sum(px) / 1048576, (sum(mx) / len(mx) / 1024) if mx else 0)
        ready_line = next((l for l in open(os.path.join(self.tmp, "operator.log"), errors="replace")
                           if "reconciling" in l), None)
        extra["ready_ts"] = json.loads(ready_line)["ts"] if ready_line and ready_line.startswith("{") else None
        row1 = self.end(b, "initial convergence", t_done, extra)
        self.quiet(a.settle, timeout=a.timeout)
        # Quiescent: work done after "converged" (late status writes, events) shows up here.
        b_idle = self.begin()
        time.sleep(a.idle)
        self.end(b_idle, "idle %d s after convergence" % a.idle, time.monotonic(), {})
        if not t_done:
            self.notes.append("stopped after the initial phase: it did not converge")
            return

        # ---- 2. policy change: the client side (route timeout) of app-0's policy
        self.policy_change("policy change: timeout of 1 policy (client side)", 0, "outbound",
                           {"spec": {"routes": [{"name": "default", "timeout": "7s",
                                                 "retries": {"attempts": 2, "perTryTimeout": "1s",
                                                             "retryOn": ["5xx", "connect-failure"]}}]}})
        # ---- 3. policy change: the server side (authorization) of app-1's policy
        if lay.M > 1:
            ns1 = lay.ns(1)
            self.policy_change("policy change: authorization of 1 policy (server side)", 1, "inbound",
                               {"spec": {"authorization": {"rules": [{"name": "callers", "from": {"namespaces": [ns1]},
                                                                      "to": {"paths": ["/api/*"],
                                                                             "methods": ["GET", "POST", "PUT"]}}]}}})
        # ---- 4. churn
        self.churn(a.churn)

    def policy_change(self, phase, app_index, side, patch):
        lay, a = self.lay, self.a
        ns, name = lay.ns(app_index), lay.app(app_index)
        ref = "%s/%s" % (ns, name)
        self.quiet(a.settle, timeout=a.timeout)
        before = self.w_cm.snapshot()
        tp_before = self.w_tp.snapshot().get((ns, name))
        gen0 = tp_before.gen if tp_before else None
        # Expected: the ConfigMaps whose content names the policy on that side (a pod's proxy.json,
        # or a namespace's outbound.json), and the pods that mount one of them, whose refresh
        # annotation must change.
        expected, pods_expected, ns_outbound = set(), set(), set()
        for key, o in before.items():
            if not o.data:
                continue
            if key[1] == "pillion-mesh":
                out = json.loads(o.data.get("outbound.json") or "{}")
                if side == "outbound" and any(x.get("policy") == ref for x in out.get("outbound") or []):
                    expected.add(key)
                    ns_outbound.add(key[0])
                continue
            cfg = json.loads(o.data.get("proxy.json", "{}"))
            if any(x.get("policy") == ref for x in cfg.get(side) or []):
                expected.add(key)
                pods_expected.add((key[0], o.labels.get("pillion.dev/pod")))
        pods_before = self.w_pod.snapshot()
        for (pns, pname), (pid, _, _) in lay.pods.items():
            if pns in ns_outbound and not lay.legacy:
                pods_expected.add((pns, pname))
        log("%s: %s; %d ConfigMaps reference it on the %s side; %d pods to refresh" % (
            phase, ref, len(expected), side, len(pods_expected)))
        b = self.begin()
        self.api.must("PATCH", "/apis/pillion.dev/v1alpha1/namespaces/%s/trafficpolicies/%s" % (ns, name), patch,
                      "application/merge-patch+json")

        others_unprogrammed = set()

        def watch_others():
            for k, o in self.w_tp.snapshot().items():
                if k != (ns, name) and not programmed(o):
                    others_unprogrammed.add(k)

        def rewritten():
            watch_others()
            cms, pods = self.w_cm.snapshot(), self.w_pod.snapshot()
            return all(k in cms and cms[k].hash != before[k].hash for k in expected) and all(
                k in pods and k in pods_before and pods[k].hash != pods_before[k].hash for k in pods_expected)

        t_seen = self.wait(phase, rewritten)
        t_done = None
        if t_seen:
            cms, pods = self.w_cm.snapshot(), self.w_pod.snapshot()
            t_done = max([cms[k].t for k in expected] + [pods[k].t for k in pods_expected] or [b["t"]])
        t_prog = self.wait("%s: Programmed" % phase, lambda: watch_others() or (
            lambda o: o is not None and o.gen != gen0 and programmed(o))(self.w_tp.snapshot().get((ns, name))))
        self.quiet(a.settle, timeout=a.timeout)
        after = self.w_cm.snapshot()
        changed = {k for k in after if k not in before or after[k].hash != before[k].hash}
        rewrites = sum(after[k].writes - (before[k].writes if k in before else 0) for k in after)
        unexpected = changed - expected
        extra = {"cm_expected": len(expected), "cm_changed": len(changed),
                 "cm_unexpected": len(unexpected), "cm_writes_seen": rewrites,
                 "detail": "%d of %d expected ConfigMaps rewritten; %d others changed%s; %d ConfigMap write events; "
                           "policy Programmed after %s; %d other (unchanged) policies seen not Programmed meanwhile" % (
                               len(changed & expected), len(expected), len(unexpected),
                               (" (%s)" % ", ".join(sorted("/".join(k) for k in unexpected)[:5])) if unexpected else "",
                               rewrites, fmt_s(t_prog - b["t"]) if t_prog else "never", len(others_unprogrammed))}
        if len(changed & expected) != len(expected):
            extra["detail"] += "; missing: %s" % ", ".join(sorted("/".join(k) for k in expected - changed)[:5])
        pods_after = self.w_pod.snapshot()
        refreshed = sum(1 for k in pods_expected if k in pods_after and k in pods_before
                        and pods_after[k].hash != pods_before[k].hash)
        extra["detail"] += "; %d of %d pods refreshed (their pillion.dev/config-hash changed)" % (
            refreshed, len(pods_expected))
        row = self.end(b, phase, t_done, extra)
        if row["by_agent"]:
            own = other = 0
            others = set()
            for k, v in self.op_paths.items():
                m = re.match(r"PATCH /apis/pillion\.dev/v1alpha1/namespaces/([^/]+)/trafficpolicies/([^/?]+)/status", k)
                if m:
                    if (m.group(1), m.group(2)) == (ns, name):
                        own += v
                    else:
                        other += v
                        others.add(m.group(2))
            row["detail"] += "; status writes: %d to the changed policy, %d to %d other policies" % (own, other, len(others))

    def churn(self, n):
        lay, a = self.lay, self.a
        if n <= 0:
            return
        self.quiet(a.settle, timeout=a.timeout)
        keys = list(lay.pods)
        step = max(1, len(keys) // n)
        victims = keys[::step][:n]
        gone = {k: lay.pods.pop(k) for k in victims}
        new = [lay.add_pod(gone[k][1]) for k in victims]
        before = self.w_cm.snapshot()
        namespaces = {k[0] for k in lay.pods}
        all_pods = set(lay.pods)
        phase = "pod churn: %d deleted + %d created" % (n, n)
        log(phase)
        b = self.begin()

        def work(op):
            kind, key = op
            if kind == "del":
                self.api.req("DELETE", "/api/v1/namespaces/%s/pods/%s" % key)
            else:
                create_pod(self.api, lay, key)

        with ThreadPoolExecutor(a.threads) as ex:
            list(ex.map(work, [("del", k) for k in victims] + [("new", k) for k in new]))
        t_submitted = time.monotonic()

        def mesh_ok(o):
            try:
                d = json.loads(o.data["mesh.json"])
            except (TypeError, KeyError, ValueError):
                return False
            return {(p["namespace"], p["name"]) for p in d.get("pods", [])} == all_pods

        def converged():
            cms, secs, tps = self.w_cm.snapshot(), self.w_sec.snapshot(), self.w_tp.snapshot()
            for (ns, _), p in gone.items():
                if (ns, "pillion-" + p[0]) in cms or (ns, "pillion-%s-tls" % p[0]) in secs:
                    return False
            for k in new:
                p = lay.pods[k]
                if (k[0], "pillion-" + p[0]) not in cms or (k[0], "pillion-%s-tls" % p[0]) not in secs:
                    return False
            return all((ns, "pillion-mesh") in cms and mesh_ok(cms[(ns, "pillion-mesh")]) for ns in namespaces) and \
                all(programmed(o) for o in tps.values())

        t_done = self.wait(phase, converged)
        self.quiet(a.settle, timeout=a.timeout)
        after = self.w_cm.snapshot()
        others = {k for k in after if k in before and k[1] != "pillion-mesh" and after[k].hash != before[k].hash}
        mesh_writes = sum(after[k].writes - before[k].writes for k in after if k[1] == "pillion-mesh" and k in before)
        extra = {"cm_expected": n + len(namespaces), "cm_changed": len({k for k in after if k not in before}) + len(
            {k for k in after if k[1] == "pillion-mesh" and k in before and after[k].hash != before[k].hash}) + len(others),
                 "cm_unexpected": len(others),
                 "detail": "API calls of the benchmark took %s; %d pillion-mesh write events (%d namespaces); "
                           "%d existing pods' ConfigMaps changed" % (fmt_s(t_submitted - b["t"]), mesh_writes,
                                                                     len(namespaces), len(others))}
        self.end(b, phase, t_done, extra)

    def cleanup(self):
        self.samples_stop = True
        for w in self.watchers:
            w.stop()
        for name, p in reversed(self.procs):
            try:
                if name == "perf" and p.poll() is None:
                    p.send_signal(signal.SIGINT)   # perf record writes its file on SIGINT
                    try:
                        p.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        pass
                stop_proc(p, name)
            except Exception as e:   # keep stopping the others
                log("stopping %s: %r" % (name, e))


def programmed(o):
    c = (o.conds or {}).get("Programmed")
    return bool(c) and c.get("status") == "True" and c.get("observedGeneration") == o.gen


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def fmt_s(x):
    return "n/a" if x is None else ("%.2f s" % x if x < 10 else "%.1f s" % x)


def fmt_n(x):
    return "-" if x is None else "%d" % x


# ---------------------------------------------------------------- report

def build_info(args):
    """Which operator was measured: the binary's hash and mtime, the source tree's commit and local changes."""
    import hashlib
    exe = os.path.join(args.bin, "pillion-operator")
    try:
        digest = hashlib.sha256(open(exe, "rb").read()).hexdigest()[:12]
        mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(exe)))
    except OSError:
        digest, mtime = "?", "?"
    def git(*a):
        try:
            return subprocess.run(["git", "-C", args.src] + list(a), capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "operator", "lib")
    return "pillion-operator sha256 %s (built %s), source %s%s" % (
        digest, mtime, head, ", with local changes in operator/ or lib/" if dirty else "")


def report(bench, args, elapsed):
    out = []
    P = out.append
    P("### pillion-operator at scale: %d pods, %d TrafficPolicies, %d namespaces (exportTo: [\"%s\"])" % (
        args.pods, args.policies, args.namespaces, args.export_to))
    P("")
    P("`%s`" % " ".join(["bench/operator_scale.py"] + sys.argv[1:]))
    P("")
    P(bench.build or build_info(args))
    P("")
    P("| phase | converged in | operator API requests | by verb | ConfigMaps changed (expected) | operator CPU | API server CPU | operator RSS / peak |")
    P("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for phase, r in bench.rows:
        conv = fmt_s(r["time"]) if r["time"] is not None else "**did not converge** (%s)" % fmt_s(r["wall"])
        if phase.startswith("idle"):
            conv = "-"
        verbs = ", ".join("%s %d" % kv for kv in sorted(r["by_verb"].items(), key=lambda kv: -kv[1]))
        cm = "%d (%d)" % (r["cm_changed"], r["cm_expected"]) if "cm_changed" in r else "-"
        if r.get("cm_unexpected"):
            cm += ", **%d unexpected**" % r["cm_unexpected"]
        P("| %s | %s | %d | %s | %s | %.1f s | %.1f s | %.1f / %.1f MiB |" % (
            phase, conv, r["requests"], verbs or "-", cm, r["op_cpu"], r["fake_cpu"],
            (r["rss_kb"] or 0) / 1024, (r["hwm_kb"] or 0) / 1024))
    P("")
    P("| phase | operator writes (ConfigMap / Secret / mesh / status) | certificates | reconciles ok / error (> 0.25 s) | reconcile time (sum over workers) | requests: operator's /metrics; double minus bench | requests by resource (top) |")
    P("| --- | --- | --- | --- | --- | --- | --- |")
    for phase, r in bench.rows:
        top = ", ".join("%s %d" % kv for kv in r["by_res"].most_common(6))
        non2xx = ", ".join("%s %d" % kv for kv in sorted(r["api_metric_non2xx"].items()))
        P("| %s | %d / %d / %d / %d | %d | %d / %d (%d) | %.1f s | %s; %d | %s |" % (
            phase, r["w_cm"], r["w_secret"], r["w_mesh"], r["w_status"], r["certs"], r["rec_ok"], r["rec_err"],
            r["rec_slow"], r["rec_s"], fmt_n(r["api_metric"]) + (" (not 2xx: %s)" % non2xx if non2xx else ""),
            r["requests_subtracted"], top))
    P("")
    for phase, r in bench.rows:
        if r.get("detail"):
            P("- %s: %s." % (phase, r["detail"]))
    if bench.rows and bench.rows[0][1]["by_agent"]:
        P("- Operator API requests: the double's `/_fake/requests` byAgent counts for User-Agent pillion-operator/*; "
          "cross-checked against the operator's own `pillion_operator_api_requests_total` and against the double's "
          "total minus the benchmark's own requests (its three watches and the changes it makes).")
    else:
        P("- Operator API requests: the double's `/_fake/requests` total minus the benchmark's own requests "
          "(this double has no per-User-Agent counts).")
    P("- CPU: utime+stime from /proc/PID/stat over the phase; 'API server' is the Python test double "
      "(one process, GIL: at most about 1 core). Machine: %d CPUs. Total run %.0f s." % (os.cpu_count(), elapsed))
    if args.perf:
        P("- perf record was attached to the operator (%d Hz, DWARF call graphs): its overhead is in these figures." % args.perf_freq)
    for n in bench.notes:
        P("- note: %s" % n)
    return "\n".join(out)


def summarise_log(path):
    if not os.path.exists(path):
        return "no operator log"
    levels = collections.Counter()
    groups = collections.Counter()
    examples = {}
    with open(path, errors="replace") as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                levels["(not JSON)"] += 1
                groups[("(not JSON)", line.strip()[:100])] += 1
                continue
            lv = d.get("level", "?")
            levels[lv] += 1
            if lv in ("warn", "error"):
                g = re.sub(r"\d+(\.\d+)?", "N", d.get("msg", ""))
                g = re.sub(r"(app|bench|pillion)-[-a-zN]*", "<name>", g)
                groups[(lv, g)] += 1
                examples[(lv, g)] = d.get("msg", "")   # the last one of the group
    out = ["operator log: " + ", ".join("%s %d" % kv for kv in levels.most_common())]
    for (lv, g), n in groups.most_common(12):
        out.append("  %5d x %s: %s" % (n, lv, examples.get((lv, g), g)[:300]))
    return "\n".join(out)


def main():
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the API server and operator.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--policies", type=int, default=50, help="Services, ServiceAccounts and TrafficPolicies (one each per app)")
    p.add_argument("--namespaces", type=int, default=10)
    p.add_argument("--bin", default=os.path.join(os.path.dirname(here), "build", "bin"))
    p.add_argument("--src", default=os.path.dirname(here), help="source tree (e2e/apiserver, crds)")
    p.add_argument("--export-to", default="*", help='every policy\'s spec.exportTo (default "*", the CRD default; "." = own namespace)')
    p.add_argument("--legacy-pods", action="store_true",
                   help="pods as injected before --outbound: every pod's config carries the client-side policies")
    p.add_argument("--churn", type=int, default=50, help="pods deleted and created in the churn phase (0: skip)")
    p.add_argument("--timeout", type=float, default=300, help="bound of every wait, seconds")
    p.add_argument("--settle", type=float, default=3, help="seconds without ConfigMap/Secret/policy events = quiet")
    p.add_argument("--idle", type=int, default=10, help="seconds measured idle after the initial convergence")
    p.add_argument("--threads", type=int, default=8, help="client threads populating the API server")
    p.add_argument("--history-size", type=int, default=1000, help="the double's event history per resource")
    p.add_argument("--log-dir", help="keep logs here (default: a new temporary directory)")
    p.add_argument("--out", help="also write the Markdown report to this file")
    p.add_argument("--perf", metavar="FILE", help="also sample the operator with perf record (DWARF call graphs) into FILE")
    p.add_argument("--perf-freq", type=int, default=49)
    p.add_argument("--perf-stack", type=int, default=32768, help="bytes of stack copied per sample (deep JSON recursion needs a lot)")
    p.add_argument("--operator-arg", action="append", default=[], help="extra pillion-operator flag (repeatable), e.g. --operator-arg=--qps=100")
    a = p.parse_args()
    if a.pods < 1 or a.policies < 1 or a.namespaces < 1 or a.pods > 50000 or a.policies > 500:
        p.error("need 1 <= pods <= 50000, 1 <= policies <= 500, namespaces >= 1")
    a.bin, a.src = os.path.abspath(a.bin), os.path.abspath(a.src)
    if not os.access(os.path.join(a.bin, "pillion-operator"), os.X_OK):
        p.error("no pillion-operator in %s (cmake --build build)" % a.bin)

    bench = Bench(a)
    bench.build = build_info(a)   # before the run: another build may replace the binary meanwhile
    rc = 0
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.notes.append("interrupted")
        rc = 130
    except Exception as e:
        bench.notes.append("failed: %r" % e)
        log("failed: %r" % e)
        rc = 1
    finally:
        bench.cleanup()
    md = report(bench, a, time.monotonic() - T_START)
    print(md)
    if getattr(bench, "tmp", None):
        print()
        print(summarise_log(os.path.join(bench.tmp, "operator.log")))
        api_log = os.path.join(bench.tmp, "apiserver.log")
        if os.path.exists(api_log):
            tb = sum(1 for l in open(api_log, errors="replace") if l.startswith("Traceback"))
            print("API server log: %d lines, %d tracebacks" % (sum(1 for _ in open(api_log, errors="replace")), tb))
        print("logs: %s (operator.log, apiserver.log, timeline.csv)" % bench.tmp)
    if a.out:
        with open(a.out, "w") as f:
            f.write(md + "\n")
    if any(r["time"] is None and not ph.startswith("idle") for ph, r in bench.rows):
        rc = rc or 2
    sys.exit(rc)


if __name__ == "__main__":
    main()
