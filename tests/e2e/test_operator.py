#!/usr/bin/python3
"""Control-plane end-to-end test: the real pillion-operator against a Kubernetes API.

usage: test_operator.py BIN_DIR SOURCE_DIR

Without KUBECONFIG it starts the test double (e2e/apiserver) on loopback; the scenarios use
only the Kubernetes API, except the fault injection ones, which need the double's /_fake/ API
and are reported as not run (never as passed) against a real cluster.
Every wait is bounded; every process started is stopped by its PID.
"""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN, SRC = sys.argv[1], sys.argv[2]
PY = "/usr/bin/python3"
FAILS = []
CHECKS = 0


def check(name, ok, detail=""):
    global CHECKS
    CHECKS += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok or not detail else f": {detail}"), flush=True)
    if not ok:
        FAILS.append(name)


class Api:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def req(self, method, path, body=None, ctype="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.url + path, data=data, method=method)
        r.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            r.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(r, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def create(self, path, obj):
        code, out = self.req("POST", path, obj)
        if code not in (200, 201):
            raise SystemExit(f"create {path}: {code} {out}")
        return out

    def get(self, path):
        code, out = self.req("GET", path)
        return out if code == 200 else None


def wait(what, fn, timeout=20.0):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
        except Exception:  # a transient error while polling is retried
            last = None
        if last:
            return last
        time.sleep(0.1)
    return None


def pod(ns, name, sa, labels, pid, ip):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": {"pillion.dev/id": pid}},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "app",
                                                                  "ports": [{"name": "http", "containerPort": 8080}]}]},
            "_ip": ip}


def main():
    tmp = tempfile.mkdtemp(prefix="pillion-op-e2e.")
    procs = []
    fake = "KUBECONFIG" not in os.environ
    try:
        if fake:
            ready = os.path.join(tmp, "ready.json")
            kc = os.path.join(tmp, "kubeconfig")
            api_log = open(os.path.join(tmp, "api.log"), "w")
            p = subprocess.Popen([PY, os.path.join(SRC, "e2e/apiserver/fake_apiserver.py"), "--port", "0", "--token", "t0k",
                                  "--crds", os.path.join(SRC, "crds"), "--kubeconfig-out", kc, "--ready-file", ready,
                                  "--bookmark-interval", "1"], stdout=api_log, stderr=subprocess.STDOUT)
            procs.append(p)
            if not wait("api server", lambda: os.path.exists(ready) and os.path.getsize(ready) > 0, 20):
                raise SystemExit("the test API server did not start")
            url = json.load(open(ready))["url"]
            api = Api(url, "t0k")
        else:
            raise SystemExit("a real cluster: run the suite with the manifests installed (see e2e/README.md)")

        def sa(ns, name):
            api.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                                   "metadata": {"name": name, "namespace": ns}})

        for ns in ("pillion-system", "shop", "other"):
            api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for ns, name in (("shop", "web"), ("shop", "frontend"), ("other", "client")):
            sa(ns, name)
        api.create("/api/v1/namespaces/shop/services", {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"clusterIP": "198.18.10.20", "selector": {"app": "web"},
                            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
        pods = [pod("shop", "web-0", "web", {"app": "web"}, "w0", "198.18.2.2"),
                pod("shop", "web-1", "web", {"app": "web"}, "w1", "198.18.2.3"),
                pod("shop", "frontend-0", "frontend", {"app": "frontend"}, "f0", "198.18.1.2"),
                pod("other", "client-0", "client", {"app": "client"}, "c0", "198.18.3.2")]

        def make_pod(p):
            ip = p.pop("_ip")
            ns = p["metadata"]["namespace"]
            api.create(f"/api/v1/namespaces/{ns}/pods", p)
            # The kubelet's part: the pod runs and has an IP.
            api.req("PATCH", f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}/status",
                    {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}, "application/merge-patch+json")

        for p in pods:
            make_pod(p)

        def start_operator(tag, port=25441):
            log = open(os.path.join(tmp, f"operator-{tag}.log"), "w")
            o = subprocess.Popen([os.path.join(BIN, "pillion-operator"), "--kubeconfig", kc, "--namespace", "pillion-system",
                                  "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
                                  "--identity", f"operator-{tag}"], stdout=log, stderr=subprocess.STDOUT)
            procs.append(o)
            return o

        op = start_operator("a")

        def cm(ns, name):
            return api.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")

        def secret(ns, name):
            return api.get(f"/api/v1/namespaces/{ns}/secrets/{name}")

        # --- pods created -> their objects appear, owned by them, with the right content ---
        got = wait("configmaps", lambda: all(cm(p["metadata"]["namespace"], "pillion-" + p["metadata"]["annotations"]["pillion.dev/id"]) for p in pods), 30)
        check("each injected pod gets ConfigMap pillion-<id>", bool(got))
        web0 = api.get("/api/v1/namespaces/shop/pods/web-0")
        c = cm("shop", "pillion-w0")
        cfg = json.loads(c["data"]["proxy.json"]) if c else {}
        check("... owned by the pod (controller ownerReference with its uid)",
              c and c["metadata"]["ownerReferences"][0]["uid"] == web0["metadata"]["uid"]
              and c["metadata"]["ownerReferences"][0].get("controller") is True)
        check("... holding the rendered config for that pod",
              cfg.get("kind") == "ProxyConfig" and cfg["pod"]["name"] == "web-0"
              and cfg["identity"]["spiffeId"] == "spiffe://cluster.local/ns/shop/sa/web")
        check("... and its content hash as an annotation",
              c and c["metadata"]["annotations"]["pillion.dev/content-hash"] == cfg.get("hash"))
        s = wait("secret", lambda: secret("shop", "pillion-w0-tls"), 20)
        pem = base64.b64decode(s["data"]["tls.crt"]) if s else b""
        san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem, capture_output=True).stdout.decode()
        check("each pod gets Secret pillion-<id>-tls with a certificate for its SPIFFE ID",
              "URI:spiffe://cluster.local/ns/shop/sa/web" in san, san)
        ca = api.get("/api/v1/namespaces/pillion-system/secrets/pillion-ca")
        check("the mesh CA was created in the control-plane namespace", ca is not None)
        cafile = os.path.join(tmp, "ca.pem")
        open(cafile, "wb").write(base64.b64decode(s["data"]["ca.crt"]) if s else b"")
        leaf = os.path.join(tmp, "leaf.pem")
        open(leaf, "wb").write(pem)
        v = subprocess.run(["openssl", "verify", "-CAfile", cafile, leaf], capture_output=True)
        check("... signed by the mesh CA whose bundle the Secret carries", v.returncode == 0, v.stderr.decode())
        m = wait("mesh", lambda: cm("shop", "pillion-mesh"), 20)
        mesh = json.loads(m["data"]["mesh.json"]) if m else {}
        svc_ids = [x for x in mesh.get("services", []) if x["name"] == "web"]
        check("namespace shop gets pillion-mesh listing Service web and its identity",
              svc_ids and svc_ids[0]["addresses"] == ["198.18.10.20"]
              and svc_ids[0]["identities"] == ["spiffe://cluster.local/ns/shop/sa/web"])
        check("... and every meshed pod with its IP", len(mesh.get("pods", [])) == 4)
        check("namespace other gets its own pillion-mesh", wait("mesh other", lambda: cm("other", "pillion-mesh"), 10) is not None)

        # --- a policy change rewrites only the ConfigMaps it affects ---
        def rv(ns, name):
            o = cm(ns, name)
            return o["metadata"]["resourceVersion"] if o else None

        before = {k: rv(*k) for k in (("shop", "pillion-w0"), ("shop", "pillion-w1"), ("shop", "pillion-f0"), ("other", "pillion-c0"))}
        api.create("/apis/pillion.dev/v1alpha1/namespaces/shop/trafficpolicies", {
            "apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"targetRef": {"name": "web"}, "exportTo": ["."], "timeout": "2s",
                     "authorization": {"rules": [{"name": "frontend", "from": {"identities": ["spiffe://cluster.local/ns/shop/sa/frontend"]}}]}}})
        changed = wait("policy applied", lambda: rv("shop", "pillion-w0") != before[("shop", "pillion-w0")]
                       and rv("shop", "pillion-f0") != before[("shop", "pillion-f0")], 20)
        check("a new TrafficPolicy rewrites the configs of the pods it applies to", bool(changed))
        time.sleep(1.0)
        check("... and not those of pods it does not reach (exportTo: [.], another namespace)",
              rv("other", "pillion-c0") == before[("other", "pillion-c0")])
        w0 = json.loads(cm("shop", "pillion-w0")["data"]["proxy.json"])
        check("... the target's pods carry the authorization rule",
              any(r.get("name") == "frontend" for i in w0["inbound"] for r in i.get("authorization", {}).get("rules", [])))

        def cond(kind, ns, name, ctype):
            o = api.get(f"/apis/pillion.dev/v1alpha1/namespaces/{ns}/{kind}/{name}")
            for c in (o or {}).get("status", {}).get("conditions", []):
                if c["type"] == ctype:
                    return c
            return None

        acc = wait("accepted", lambda: cond("trafficpolicies", "shop", "web", "Accepted"), 20)
        check("status: Accepted=True with observedGeneration", acc and acc["status"] == "True"
              and acc.get("observedGeneration") == 1, acc)
        prog = wait("programmed", lambda: (lambda c: c if c and c["status"] == "True" else None)(
            cond("trafficpolicies", "shop", "web", "Programmed")), 20)
        check("status: Programmed=True counting the pods (n/n pods)", prog and prog["message"].endswith("pods")
              and prog["message"].split("/")[0] == prog["message"].split("/")[1].split()[0], prog)
        bad = yaml_free_invalid_policy()
        api.create("/apis/pillion.dev/v1alpha1/namespaces/shop/trafficpolicies", bad)
        acc = wait("rejected", lambda: cond("trafficpolicies", "shop", "zero", "Accepted"), 20)
        check("an invalid policy (passes the schema, fails the operator's rules) gets Accepted=False with the field path",
              acc and acc["status"] == "False" and "spec.routes[0].backends" in acc["message"], acc)

        evs = wait("events", lambda: [e for e in api.get("/api/v1/namespaces/shop/events")["items"]
                                      if e.get("reason") == "Invalid" and e["involvedObject"]["name"] == "zero"], 20)
        check("... and a Warning Event naming the error", bool(evs) and "spec.routes[0].backends" in evs[0]["message"], evs)
        evs = [e for e in api.get("/api/v1/namespaces/shop/events")["items"] if e.get("reason") == "CertificateIssued"]
        check("issuing a certificate posts a Normal Event on the pod", any(e["involvedObject"]["kind"] == "Pod" for e in evs))

        # --- healing and garbage collection ---
        api.req("DELETE", "/api/v1/namespaces/shop/configmaps/pillion-w1")
        check("a deleted ConfigMap is recreated", wait("heal", lambda: cm("shop", "pillion-w1"), 20) is not None)
        api.req("DELETE", "/api/v1/namespaces/shop/pods/web-1")
        check("a deleted pod's ConfigMap and Secret go with it",
              wait("gc", lambda: cm("shop", "pillion-w1") is None and secret("shop", "pillion-w1-tls") is None, 20) is not None)
        gone = wait("mesh update", lambda: (lambda m: m and len(json.loads(m["data"]["mesh.json"])["pods"]) == 3)(cm("shop", "pillion-mesh")), 20)
        check("... and the mesh directory drops it", bool(gone))

        # --- certificate rotation before expiry ---
        api.create("/apis/pillion.dev/v1alpha1/namespaces/other/meshidentities", {
            "apiVersion": "pillion.dev/v1alpha1", "kind": "MeshIdentity", "metadata": {"name": "short", "namespace": "other"},
            "spec": {"certificate": {"ttl": "10m", "renewBefore": "9m57s"}}})
        first = wait("short cert", lambda: (lambda s: s and cert_ttl(s) <= 600 and s)(secret("other", "pillion-c0-tls")), 20)
        serial1 = cert_serial(first) if first else None
        rotated = wait("rotation", lambda: (lambda s: s and cert_serial(s) != serial1)(secret("other", "pillion-c0-tls")), 20)
        check("a certificate inside its renewBefore window is reissued", bool(first) and bool(rotated))

        # --- API server faults: cut watches, 410 bursts; the state converges ---
        code, _ = api.req("POST", "/_fake/faults", {"cutWatches": {"midLine": True}, "expireWatches": 3})
        if code == 200:
            time.sleep(0.5)
            p = pod("shop", "web-2", "web", {"app": "web"}, "w2", "198.18.2.4")
            make_pod(p)
            check("after watches were cut mid-line and answered 410, a new pod still gets its objects",
                  wait("after faults", lambda: cm("shop", "pillion-w2") and secret("shop", "pillion-w2-tls"), 30) is not None)
            api.req("POST", "/_fake/faults", {"requests": [{"prefix": "/api/v1/namespaces/shop/configmaps", "method": "PATCH",
                                                           "status": 500, "count": 2}]})
            api.req("PATCH", "/api/v1/namespaces/shop/pods/web-2", {"metadata": {"labels": {"app": "web", "v": "2"}}},
                    "application/merge-patch+json")
            api.req("DELETE", "/api/v1/namespaces/shop/configmaps/pillion-w2")
            check("a write that fails with 500 is retried with backoff until it lands",
                  wait("retry", lambda: cm("shop", "pillion-w2"), 30) is not None)
        else:
            print("note: fault injection not run (no test double)")

        # --- a second replica waits with a warm cache; the leader killed, it takes over, rewriting nothing ---
        time.sleep(1.5)
        standby = start_operator("b", 25442)

        def get_url(u):
            try:
                with urllib.request.urlopen(u, timeout=2) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, ""
            except (urllib.error.URLError, OSError):
                return 0, ""

        time.sleep(3)
        code, _ = get_url("http://127.0.0.1:25442/readyz")
        _, m2 = get_url("http://127.0.0.1:25442/metrics")
        check("a second replica does not lead while the first holds the lease",
              code == 503 and "pillion_operator_leader 0" in m2 and 'pillion_operator_writes_total{kind="configmap"} 0' in m2,
              (code, [l for l in m2.splitlines() if "leader " in l]))
        snapshot = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                    for o in api.get("/api/v1/configmaps")["items"] if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "pillion-operator"
                    and o["metadata"]["namespace"] != "other"}
        op.send_signal(signal.SIGKILL)
        op.wait(timeout=10)
        op = standby
        ready = wait("ready", lambda: get_url("http://127.0.0.1:25442/readyz")[0] == 200, 40)
        check("when the leader dies, the standby takes the lease once it expires", bool(ready))
        time.sleep(3)
        after = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                 for o in api.get("/api/v1/configmaps")["items"] if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "pillion-operator"
                 and o["metadata"]["namespace"] != "other"}
        check("... and rewrites no unchanged ConfigMap (content hashes)", snapshot == after,
              {k: (snapshot.get(k), after.get(k)) for k in set(snapshot) | set(after) if snapshot.get(k) != after.get(k)})
        metrics = get_url("http://127.0.0.1:25442/metrics")[1]
        check("the new leader is still running", op.poll() is None, f"exit code {op.poll()}")
        check("/metrics reports reconciles and watch activity",
              "pillion_operator_reconciles_total{result=\"ok\"}" in metrics and "pillion_operator_watch_total" in metrics)
    except BaseException:
        FAILS.append("exception")
        raise
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if FAILS:
            for f in sorted(os.listdir(tmp)):
                if f.endswith(".log"):
                    print(f"--- {f} (last lines)")
                    print("".join(open(os.path.join(tmp, f), errors="replace").readlines()[-15:]))
        subprocess.run(["rm", "-rf", tmp])
    print(f"{CHECKS} checks, {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)


def yaml_free_invalid_policy():
    return {"apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": "zero", "namespace": "shop"},
            "spec": {"targetRef": {"name": "web"}, "routes": [{"name": "all", "backends": [{"name": "web", "weight": 0}]}]}}


def cert_of(s):
    return base64.b64decode(s["data"]["tls.crt"])


def cert_serial(s):
    return subprocess.run(["openssl", "x509", "-noout", "-serial"], input=cert_of(s), capture_output=True).stdout


def cert_ttl(s):
    import datetime
    lines = subprocess.run(["openssl", "x509", "-noout", "-startdate", "-enddate"], input=cert_of(s),
                           capture_output=True).stdout.decode().splitlines()
    t = [datetime.datetime.strptime(" ".join(line.split("=", 1)[1].split()), "%b %d %H:%M:%S %Y GMT") for line in lines]
    # notBefore is backdated for clock skew
    return (t[1] - t[0]).total_seconds() - 300


main()
