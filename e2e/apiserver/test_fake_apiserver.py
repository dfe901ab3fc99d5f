#!/usr/bin/python3
"""Self-test of the fake API server (a test double of kube-apiserver 1.26): every semantic the
operator and webhook rely on, over real HTTP on loopback.  Standard library only, plus the openssl
CLI for certificates.  Every server it starts is a child process stopped by its PID.

    python3 e2e/apiserver/test_fake_apiserver.py        # < 60 s
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(HERE, "fake_apiserver.py")
TOKEN = "test-token-123"
PY = sys.executable or "/usr/bin/python3"

WEBHOOK = r'''
import base64, http.server, json, ssl, sys
port_file, cert, key, log = sys.argv[1:5]

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "name": req.get("name"), "namespace": req.get("namespace"),
                                "operation": req.get("operation"),
                                "generateName": req["object"]["metadata"].get("generateName"),
                                "uidSet": "uid" in req["object"]["metadata"],
                                "volumes": [v["name"] for v in req["object"]["spec"].get("volumes", [])]}) + "\n")
        ann = req["object"]["metadata"].get("annotations") or {}
        resp = {"uid": req["uid"], "allowed": True}
        if ann.get("test/deny"):
            resp = {"uid": req["uid"], "allowed": False, "status": {"code": 403, "message": "pods are not welcome"}}
        elif ann.get("test/bad-uid"):
            resp["uid"] = "not-the-uid"
        else:
            ops = []
            if not ann:
                ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
            ops.append({"op": "add", "path": "/metadata/annotations/pillion.dev~1id", "value": "0123abcd"})
            ops.append({"op": "add", "path": "/spec/containers/-",
                        "value": {"name": "pillion-proxy", "image": "pillion/proxy:test"}})
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
            resp["warnings"] = ["injected by the test webhook"]
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os; os.replace(port_file + ".tmp", port_file)
srv.serve_forever()
'''


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def wait_for(fn, timeout=30.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def openssl_cert(d, name, cn, san):
    cert, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + san], check=True, capture_output=True)
    return cert, key


class Proc:
    """A child server, stopped by its PID."""

    def __init__(self, args, ready_file, timeout=60):
        self.log_path = ready_file + ".log"
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log)
        self.ready_file = ready_file
        wait_for(lambda: os.path.exists(ready_file) or self.p.poll() is not None, timeout, what="server start")
        if self.p.poll() is not None:
            self.log.close()
            raise RuntimeError("server exited: %s" % read(self.log_path))

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        self.log.close()
        if os.environ.get("FAKEAPI_TEST_LOG"):
            sys.stderr.write(read(self.log_path))


def start_server(tmp, *extra, name="api"):
    ready = os.path.join(tmp, name + ".ready")
    if os.path.exists(ready):
        os.unlink(ready)
    proc = Proc([PY, SERVER, "--port", "0", "--token", TOKEN, "--crds", os.path.join(REPO, "crds"),
                 "--ready-file", ready] + list(extra), ready)
    return proc, json.loads(read(ready))


class Client:
    def __init__(self, url, token=TOKEN, ctx=None):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.tls = u.hostname, u.port, u.scheme == "https"
        self.token, self.ctx = token, ctx
        self.conn = None

    def _conn(self):
        if self.conn is None:
            if self.tls:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return self.conn

    def req(self, method, path, body=None, ctype="application/json", headers=None, raw=False):
        h = {"Accept": "application/json", "User-Agent": "selftest/1.0"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            data = data.encode() if isinstance(data, str) else data
            h["Content-Type"] = ctype
        h.update(headers or {})
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=h)
                r = c.getresponse()
                payload = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                c.close()
                self.conn = None
                if attempt:
                    raise
        if raw:
            return r.status, r, payload
        try:
            return r.status, r, json.loads(payload) if payload else None
        except ValueError:
            return r.status, r, payload

    def __del__(self):
        self.close()

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def ok(self, method, path, body=None, ctype="application/json", want=(200, 201)):
        code, _, obj = self.req(method, path, body, ctype)
        if code not in (want if isinstance(want, tuple) else (want,)):
            raise AssertionError("%s %s -> %d %s" % (method, path, code, obj))
        return obj


class RawWatch:
    """A watch read straight off the socket, chunk by chunk, so that a cut mid-line is visible."""

    def __init__(self, url, path, ctx=None):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=30)
        if ctx is not None:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=u.hostname)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nUser-Agent: selftest\r\n\r\n"
                           % (path, TOKEN)).encode())
        self.buf = b""
        self.data = b""       # de-chunked payload not yet split into lines
        self.ended = None     # "clean" (terminating chunk) or "eof" (closed without one)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip() for ln in lines[1:]}

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def _dechunk(self):
        while self.ended is None:
            if b"\r\n" not in self.buf:
                return
            size_line, rest = self.buf.split(b"\r\n", 1)
            n = int(size_line, 16)
            if n == 0:
                self.ended = "clean"
                return
            if len(rest) < n + 2:
                return
            self.data += rest[:n]
            self.buf = rest[n + 2:]

    def next(self, timeout=30.0):
        """The next event, or None when the stream ended (self.ended says how)."""
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            if b"\n" in self.data:
                line, self.data = self.data.split(b"\n", 1)
                return json.loads(line)
            if self.ended:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no watch event within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                self._fill()
            except EOFError:
                self.ended = "eof"
                return None

    def events_until(self, pred, timeout=30.0):
        out = []
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.01, deadline - time.monotonic()))
            if ev is None:
                return out
            out.append(ev)
            if pred(ev):
                return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def cm(name, labels=None, data=None, owner=None):
    o = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {"k": "v"}}
    if labels:
        o["metadata"]["labels"] = labels
    if owner:
        o["metadata"]["ownerReferences"] = [owner]
    return o


def pod(name=None, generate=None, labels=None, annotations=None):
    meta = {}
    if name:
        meta["name"] = name
    if generate:
        meta["generateName"] = generate
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}


def tp(name, port=80, **spec):
    s = {"targetRef": {"name": "web", "port": port}}
    s.update(spec)
    return {"apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": name}, "spec": s}


class FakeApiServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fakeapi-test-")
        cls.proc, info = start_server(cls.tmp, "--bookmark-interval", "0.3", "--history-size", "50")
        cls.url = info["url"]
        cls.c = Client(cls.url)
        cls.nsn = 0

    @classmethod
    def tearDownClass(cls):
        cls.proc.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ns(self, labels=None):
        type(self).nsn += 1
        name = "t%d-%s" % (self.nsn, self._testMethodName.replace("_", "-")[5:30].strip("-"))
        meta = {"name": name}
        if labels:
            meta["labels"] = labels
        self.c.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
        return name

    def fault(self, body):
        return self.c.ok("POST", "/_fake/faults", body)

    def assertStatus(self, obj, code, reason):
        self.assertEqual(obj["kind"], "Status", obj)
        self.assertEqual(obj["apiVersion"], "v1")
        self.assertEqual(obj["status"], "Failure")
        self.assertEqual(obj["code"], code, obj)
        self.assertEqual(obj["reason"], reason, obj)
        self.assertTrue(obj.get("message"))

    # ------------------------------------------------------------------ basics

    def test_auth_health_discovery_keepalive(self):
        code, _, body = Client(self.url, token=None).req("GET", "/api/v1/namespaces")
        self.assertEqual(code, 401)
        self.assertStatus(body, 401, "Unauthorized")
        code, _, _ = Client(self.url, token="wrong").req("GET", "/api/v1/namespaces")
        self.assertEqual(code, 401)
        code, _, body = Client(self.url, token=None).req("GET", "/healthz", raw=True)
        self.assertEqual((code, body), (200, b"ok"))
        c = Client(self.url)
        c.ok("GET", "/version")
        sock = c.conn.sock
        self.assertIsNotNone(sock, "connection kept alive")
        groups = c.ok("GET", "/apis")
        self.assertIn("pillion.dev", [g["name"] for g in groups["groups"]])
        self.assertIs(c.conn.sock, sock, "same connection reused (HTTP/1.1 keep-alive)")
        res = c.ok("GET", "/apis/pillion.dev/v1alpha1")
        self.assertIn("trafficpolicies/status", [r["name"] for r in res["resources"]])
        code, _, body = c.req("GET", "/apis/nope.io/v1/things")
        self.assertStatus(body, 404, "NotFound")
        # the bootstrap of a fresh cluster
        self.assertEqual(c.ok("GET", "/api/v1/namespaces/default/services/kubernetes")["spec"]["clusterIP"],
                         "10.96.0.1")
        self.assertEqual(c.ok("GET", "/api/v1/namespaces/default")["metadata"]["labels"],
                         {"kubernetes.io/metadata.name": "default"})

    def test_crud_metadata_and_errors(self):
        ns = self.ns()
        c = self.c
        base = "/api/v1/namespaces/%s/configmaps" % ns
        o = c.ok("POST", base, cm("a"), want=201)
        m = o["metadata"]
        self.assertEqual(m["namespace"], ns)
        self.assertRegex(m["uid"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertTrue(m["resourceVersion"].isdigit())
        self.assertRegex(m["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertNotIn("generation", m, "ConfigMaps have no generation in 1.26")
        self.assertEqual(m["managedFields"][0]["manager"], "selftest")
        code, _, body = c.req("POST", base, cm("a"))
        self.assertEqual(code, 409)
        self.assertStatus(body, 409, "AlreadyExists")
        self.assertEqual(body["message"], 'configmaps "a" already exists')
        self.assertEqual(body["details"], {"name": "a", "kind": "configmaps"})
        code, _, body = c.req("GET", base + "/nope")
        self.assertStatus(body, 404, "NotFound")
        self.assertEqual(body["message"], 'configmaps "nope" not found')
        code, _, body = c.req("POST", base, cm("Bad_Name"))
        self.assertStatus(body, 422, "Invalid")
        self.assertEqual(body["details"]["causes"][0]["field"], "metadata.name")
        code, _, body = c.req("POST", base, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
        self.assertStatus(body, 422, "Invalid")
        code, _, body = c.req("POST", "/api/v1/namespaces/does-not-exist/configmaps", cm("x"))
        self.assertStatus(body, 404, "NotFound")
        self.assertEqual(body["message"], 'namespaces "does-not-exist" not found')
        code, _, body = c.req("POST", "/api/v1/namespaces/%s/configmaps" % ns,
                              dict(cm("x"), metadata={"name": "x", "namespace": "other"}))
        self.assertStatus(body, 400, "BadRequest")
        g = c.ok("POST", base, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}})
        self.assertRegex(g["metadata"]["name"], r"^gen-[a-z0-9]{5}$")
        # PUT: optimistic concurrency
        o2 = dict(o, data={"k": "v2"})
        new = c.ok("PUT", base + "/a", o2)
        self.assertGreater(int(new["metadata"]["resourceVersion"]), int(m["resourceVersion"]))
        code, _, body = c.req("PUT", base + "/a", dict(o, data={"k": "v3"}))   # stale resourceVersion
        self.assertEqual(code, 409)
        self.assertStatus(body, 409, "Conflict")
        self.assertIn("the object has been modified", body["message"])
        same = c.ok("PUT", base + "/a", new)                     # no-op update: nothing written
        self.assertEqual(same["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"])
        code, _, body = c.req("PUT", base + "/zzz", cm("zzz"))
        self.assertStatus(body, 404, "NotFound")
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
                 "spec": {"holderIdentity": "op-1", "leaseDurationSeconds": 15}}
        code, _, body = c.req("PUT", "/apis/coordination.k8s.io/v1/namespaces/%s/leases/leader" % ns, lease)
        self.assertEqual(code, 201, "leases allow create on update")
        # Secret: stringData folded into data; invalid base64 refused
        s = c.ok("POST", "/api/v1/namespaces/%s/secrets" % ns, {"apiVersion": "v1", "kind": "Secret",
                 "metadata": {"name": "s"}, "stringData": {"a": "hello"}})
        self.assertEqual(s["data"], {"a": base64.b64encode(b"hello").decode()})
        self.assertEqual(s["type"], "Opaque")
        self.assertNotIn("stringData", s)
        code, _, body = c.req("POST", "/api/v1/namespaces/%s/secrets" % ns, {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "t"}, "data": {"a": "!!notbase64"}})
        self.assertEqual(code, 400)
        # Events accepted
        c.ok("POST", "/api/v1/namespaces/%s/events" % ns, {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}, "reason": "Applied",
            "message": "ok", "type": "Normal", "involvedObject": {"kind": "ConfigMap", "name": "a", "namespace": ns}})
        # DELETE returns the object; preconditions
        code, _, body = c.req("DELETE", base + "/a", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                      "preconditions": {"uid": "wrong"}})
        self.assertStatus(body, 409, "Conflict")
        d = c.ok("DELETE", base + "/a")
        self.assertEqual(d["metadata"]["name"], "a")
        self.assertEqual(c.req("GET", base + "/a")[0], 404)
        # Services get a cluster IP, kept across updates that omit it
        svc = c.ok("POST", "/api/v1/namespaces/%s/services" % ns, {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        ip = svc["spec"]["clusterIP"]
        self.assertRegex(ip, r"^10\.96\.\d+\.\d+$")
        self.assertEqual(svc["spec"]["ports"][0], {"port": 80, "protocol": "TCP", "targetPort": 80})
        put = dict(svc)
        put["spec"] = {k: v for k, v in svc["spec"].items() if k not in ("clusterIP", "clusterIPs")}
        self.assertEqual(c.ok("PUT", "/api/v1/namespaces/%s/services/web" % ns, put)["spec"]["clusterIP"], ip)

    def test_pod_defaults_and_status_subresource(self):
        ns = self.ns()
        c = self.c
        p = c.ok("POST", "/api/v1/namespaces/%s/pods" % ns, pod("p", labels={"app": "web"}))
        self.assertEqual(p["status"], {"phase": "Pending", "qosClass": "BestEffort"})
        self.assertEqual(p["spec"]["serviceAccountName"], "default")
        self.assertTrue(any(v["name"].startswith("kube-api-access-") for v in p["spec"]["volumes"]))
        self.assertEqual(p["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent")
        self.assertNotIn("generation", p["metadata"])
        # the main resource ignores status; /status changes only status (a fake kubelet uses it)
        p["status"] = {"phase": "Running", "podIP": "10.244.0.7"}
        p2 = c.ok("PUT", "/api/v1/namespaces/%s/pods/p" % ns, p)
        self.assertEqual(p2["status"]["phase"], "Pending")
        st = c.ok("PATCH", "/api/v1/namespaces/%s/pods/p/status" % ns,
                  {"status": {"phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}]}},
                  ctype="application/merge-patch+json")
        self.assertEqual(st["status"]["podIP"], "10.244.0.7")
        # pod spec is immutable except images
        code, _, body = c.req("PATCH", "/api/v1/namespaces/%s/pods/p" % ns,
                              {"spec": {"restartPolicy": "Never"}}, ctype="application/merge-patch+json")
        self.assertStatus(body, 422, "Invalid")
        sel = c.ok("GET", "/api/v1/namespaces/%s/pods?fieldSelector=status.phase%%3DRunning" % ns)
        self.assertEqual([i["metadata"]["name"] for i in sel["items"]], ["p"])

    # ------------------------------------------------------------------ list

    def test_list_selectors_and_pagination(self):
        ns = self.ns()
        c = self.c
        base = "/api/v1/namespaces/%s/configmaps" % ns
        for i, (env, tier) in enumerate([("prod", "web"), ("prod", None), ("dev", "web"), ("qa", "db"), (None, None)]):
            labels = {k: v for k, v in (("env", env), ("tier", tier)) if v}
            c.ok("POST", base, cm("c%d" % i, labels=labels or None))

        def names(q):
            out = c.ok("GET", base + "?" + urllib.parse.urlencode(q))
            return [i["metadata"]["name"] for i in out["items"]]
        self.assertEqual(names({"labelSelector": "env=prod"}), ["c0", "c1"])
        self.assertEqual(names({"labelSelector": "env==prod,tier=web"}), ["c0"])
        self.assertEqual(names({"labelSelector": "env!=prod"}), ["c2", "c3", "c4", "kube-root-ca.crt"])
        self.assertEqual(names({"labelSelector": "env in (dev, qa)"}), ["c2", "c3"])
        self.assertEqual(names({"labelSelector": "env notin (dev,qa),env"}), ["c0", "c1"])
        self.assertEqual(names({"labelSelector": "tier"}), ["c0", "c2", "c3"])
        self.assertEqual(names({"labelSelector": "!tier,env"}), ["c1"])
        self.assertEqual(names({"fieldSelector": "metadata.name=c3"}), ["c3"])
        self.assertEqual(names({"fieldSelector": "metadata.name!=c3,metadata.namespace=%s" % ns,
                                "labelSelector": "env"}), ["c0", "c1", "c2"])
        code, _, body = c.req("GET", base + "?labelSelector=" + urllib.parse.quote("env in (a"))
        self.assertStatus(body, 400, "BadRequest")
        code, _, body = c.req("GET", base + "?fieldSelector=spec.foo%3Dx")
        self.assertStatus(body, 400, "BadRequest")
        full = c.ok("GET", base)
        self.assertNotIn("kind", full["items"][0], "built-in list items carry no kind, as in kube-apiserver")
        # pages: a consistent snapshot at the first page's resourceVersion
        p1 = c.ok("GET", base + "?limit=2")
        self.assertEqual([i["metadata"]["name"] for i in p1["items"]], ["c0", "c1"])
        self.assertEqual(p1["metadata"]["remainingItemCount"], 4)
        c.ok("POST", base, cm("c15"))                              # sorts between c1 and c2
        c.ok("DELETE", base + "/c3")
        p2 = c.ok("GET", base + "?limit=2&continue=" + p1["metadata"]["continue"])
        self.assertEqual([i["metadata"]["name"] for i in p2["items"]], ["c2", "c3"])
        self.assertEqual(p2["metadata"]["resourceVersion"], p1["metadata"]["resourceVersion"])
        p3 = c.ok("GET", base + "?limit=2&continue=" + p2["metadata"]["continue"])
        self.assertEqual([i["metadata"]["name"] for i in p3["items"]], ["c4", "kube-root-ca.crt"])
        self.assertNotIn("continue", p3["metadata"])
        # cluster-wide list spans namespaces
        allcm = c.ok("GET", "/api/v1/configmaps?labelSelector=env%3Dprod")
        self.assertEqual({i["metadata"]["namespace"] for i in allcm["items"]}, {ns})
        # a continue token older than the history -> 410 Expired
        q1 = c.ok("GET", base + "?limit=1")
        c.ok("POST", base, cm("before-compaction"))
        self.fault({"compact": True})
        c.ok("POST", base, cm("after-compaction"))
        code, _, body = c.req("GET", base + "?limit=1&continue=" + q1["metadata"]["continue"])
        self.assertEqual(code, 410)
        self.assertStatus(body, 410, "Expired")

    # ------------------------------------------------------------------ custom resources

    def test_crd_generation_status_schema(self):
        ns = self.ns()
        c = self.c
        base = "/apis/pillion.dev/v1alpha1/namespaces/%s/trafficpolicies" % ns
        o = c.ok("POST", base, dict(tp("web"), status={"conditions": []}))
        self.assertEqual(o["metadata"]["generation"], 1)
        self.assertEqual(o["kind"], "TrafficPolicy")
        self.assertNotIn("status", o, "status is dropped on create when the status subresource is on")
        self.assertEqual(o["spec"]["exportTo"], ["*"], "schema default applied")
        self.assertEqual(o["spec"]["targetRef"]["kind"], "Service", "nested default applied")
        # metadata change: no bump
        o["metadata"]["labels"] = {"a": "b"}
        o = c.ok("PUT", base + "/web", o)
        self.assertEqual(o["metadata"]["generation"], 1)
        # spec change: bump
        o["spec"]["targetRef"]["port"] = 8080
        o = c.ok("PUT", base + "/web", o)
        self.assertEqual(o["metadata"]["generation"], 2)
        # status through the main resource: ignored, no bump
        o["status"] = {"observedGeneration": 2}
        o2 = c.ok("PUT", base + "/web", o)
        self.assertNotIn("status", o2)
        self.assertEqual(o2["metadata"]["generation"], 2)
        # status through /status: written, no bump; spec changes there are ignored
        o2["status"] = {"observedGeneration": 2, "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Valid", "message": "ok",
             "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 2}]}
        o2["spec"]["targetRef"]["port"] = 9
        o3 = c.ok("PUT", base + "/web/status", o2)
        self.assertEqual(o3["status"]["observedGeneration"], 2)
        self.assertEqual(o3["spec"]["targetRef"]["port"], 8080)
        self.assertEqual(o3["metadata"]["generation"], 2)
        # PUT without resourceVersion is refused for custom resources
        o4 = json.loads(json.dumps(o3))
        del o4["metadata"]["resourceVersion"]
        code, _, body = c.req("PUT", base + "/web", o4)
        self.assertStatus(body, 422, "Invalid")
        # schema: validation and pruning
        code, _, body = c.req("POST", base, tp("bad", port=70000))
        self.assertStatus(body, 422, "Invalid")
        self.assertEqual(body["details"]["causes"][0]["field"], "spec.targetRef.port")
        self.assertIn('TrafficPolicy.pillion.dev "bad" is invalid', body["message"])
        pr = c.ok("POST", base, tp("pruned", unknownField=1))
        self.assertNotIn("unknownField", pr["spec"])
        code, _, body = c.req("POST", base, {"apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy",
                                             "metadata": {"name": "no-target"}, "spec": {}})
        self.assertStatus(body, 422, "Invalid")
        # strategic merge patch is not for custom resources
        code, _, body = c.req("PATCH", base + "/web", {"spec": {}}, ctype="application/strategic-merge-patch+json")
        self.assertEqual(code, 415)
        # a CRD created at run time is served, and its deletion removes its objects
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "kind": "Widget"},
                        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
        got = c.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        self.assertEqual({x["type"] for x in got["status"]["conditions"]}, {"NamesAccepted", "Established"})
        w = c.ok("POST", "/apis/example.com/v1/namespaces/%s/widgets" % ns,
                 {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": 1},
                  "status": {"y": 2}})
        self.assertEqual(w["status"], {"y": 2}, "no status subresource: status is an ordinary field")
        w["status"] = {"y": 3}
        w = c.ok("PUT", "/apis/example.com/v1/namespaces/%s/widgets/w" % ns, w)
        self.assertEqual(w["metadata"]["generation"], 2, "no status subresource: status changes bump generation")
        code, _, _ = c.req("GET", "/apis/example.com/v1/namespaces/%s/widgets/w/status" % ns)
        self.assertEqual(code, 404)
        c.ok("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        self.assertEqual(c.req("GET", "/apis/example.com/v1/namespaces/%s/widgets" % ns)[0], 404)

    # ------------------------------------------------------------------ patches

    def test_merge_and_json_patch(self):
        ns = self.ns()
        c = self.c
        base = "/api/v1/namespaces/%s/configmaps" % ns
        o = c.ok("POST", base, cm("m", labels={"a": "1"}, data={"x": "1", "y": "2"}))
        p = c.ok("PATCH", base + "/m", {"metadata": {"labels": {"b": "2", "a": None}}, "data": {"y": None, "z": "3"}},
                 ctype="application/merge-patch+json")
        self.assertEqual(p["metadata"]["labels"], {"b": "2"})
        self.assertEqual(p["data"], {"x": "1", "z": "3"})
        code, _, body = c.req("PATCH", base + "/m", {"metadata": {"resourceVersion": o["metadata"]["resourceVersion"]},
                                                     "data": {"q": "1"}}, ctype="application/merge-patch+json")
        self.assertStatus(body, 409, "Conflict")
        ops = [{"op": "test", "path": "/data/x", "value": "1"},
               {"op": "add", "path": "/metadata/annotations", "value": {}},
               {"op": "add", "path": "/metadata/annotations/pillion.dev~1id", "value": "abc"},
               {"op": "replace", "path": "/data/x", "value": "10"},
               {"op": "remove", "path": "/data/z"},
               {"op": "copy", "from": "/data/x", "path": "/data/w"},
               {"op": "move", "from": "/data/w", "path": "/data/v"}]
        j = c.ok("PATCH", base + "/m", ops, ctype="application/json-patch+json")
        self.assertEqual(j["metadata"]["annotations"], {"pillion.dev/id": "abc"})
        self.assertEqual(j["data"], {"x": "10", "v": "10"})
        code, _, body = c.req("PATCH", base + "/m", [{"op": "test", "path": "/data/x", "value": "nope"}],
                              ctype="application/json-patch+json")
        self.assertEqual(code, 422)
        code, _, body = c.req("PATCH", base + "/m", [{"op": "remove", "path": "/data/absent"}],
                              ctype="application/json-patch+json")
        self.assertEqual(code, 422)
        code, _, body = c.req("PATCH", base + "/m", {"data": {}}, ctype="text/plain")
        self.assertEqual(code, 415)
        code, _, body = c.req("PATCH", base + "/none", {"data": {}}, ctype="application/merge-patch+json")
        self.assertStatus(body, 404, "NotFound")

    def test_server_side_apply(self):
        ns = self.ns()
        c = self.c
        path = "/api/v1/namespaces/%s/configmaps/pillion-abc" % ns
        doc = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pillion-abc\n  labels: {app: web}\n"
               "data:\n  proxy.json: '{}'\n  extra: e\n")
        code, _, body = c.req("PATCH", path, doc, ctype="application/apply-patch+yaml")
        self.assertStatus(body, 422, "Invalid")          # fieldManager is required
        code, _, o = c.req("PATCH", path + "?fieldManager=pillion-operator", doc, ctype="application/apply-patch+yaml")
        self.assertEqual(code, 201, o)
        mf = o["metadata"]["managedFields"]
        self.assertEqual([(e["manager"], e["operation"]) for e in mf], [("pillion-operator", "Apply")])
        self.assertEqual(mf[0]["fieldsV1"]["f:data"], {"f:extra": {}, "f:proxy.json": {}})
        rv = o["metadata"]["resourceVersion"]
        code, _, o = c.req("PATCH", path + "?fieldManager=pillion-operator", doc, ctype="application/apply-patch+yaml")
        self.assertEqual((code, o["metadata"]["resourceVersion"]), (200, rv), "a no-op apply writes nothing")
        # another writer takes a field with an update
        c.ok("PATCH", path + "?fieldManager=kubectl-edit", {"data": {"extra": "changed"}},
             ctype="application/merge-patch+json")
        # re-applying the old value conflicts with the field's new owner...
        code, _, body = c.req("PATCH", path + "?fieldManager=pillion-operator", doc,
                              ctype="application/apply-patch+yaml")
        self.assertEqual(code, 409, body)
        self.assertStatus(body, 409, "Conflict")
        self.assertEqual(body["details"]["causes"][0]["reason"], "FieldManagerConflict")
        self.assertEqual(body["details"]["causes"][0]["field"], ".data.extra")
        self.assertIn('conflict with "kubectl-edit"', body["message"])
        # ...a field applied with the same value as its other owner is shared, not a conflict
        code, _, o = c.req("PATCH", path + "?fieldManager=other", "apiVersion: v1\nkind: ConfigMap\nmetadata: "
                           "{name: pillion-abc}\ndata: {proxy.json: '{}'}\n", ctype="application/apply-patch+yaml")
        self.assertEqual(code, 200, o)
        # force takes ownership
        code, _, o = c.req("PATCH", path + "?fieldManager=pillion-operator&force=true", doc,
                           ctype="application/apply-patch+yaml")
        self.assertEqual(code, 200, o)
        self.assertEqual(o["data"]["extra"], "e")
        owners = {e["manager"]: e["fieldsV1"] for e in o["metadata"]["managedFields"]}
        self.assertNotIn("kubectl-edit", owners, "kubectl-edit lost its only field")
        # fields the manager stops applying are removed (unless someone else owns them)
        doc2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pillion-abc\ndata:\n  proxy.json: '{}'\n"
        o = c.ok("PATCH", path + "?fieldManager=pillion-operator", doc2, ctype="application/apply-patch+yaml")
        self.assertEqual(o["data"], {"proxy.json": "{}"})
        self.assertNotIn("app", (o["metadata"].get("labels") or {}))
        doc3 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pillion-abc\ndata: {}\n"
        o = c.ok("PATCH", path + "?fieldManager=pillion-operator", doc3, ctype="application/apply-patch+yaml")
        self.assertEqual(o["data"], {"proxy.json": "{}"}, "still owned by 'other'")
        code, _, body = c.req("PATCH", path + "?fieldManager=x&force=true", {"data": {}},
                              ctype="application/merge-patch+json")
        self.assertStatus(body, 422, "Invalid")          # force only for apply
        # apply to a custom resource's status subresource, list-map conditions merged by type
        base = "/apis/pillion.dev/v1alpha1/namespaces/%s/trafficpolicies" % ns
        c.ok("POST", base, tp("web"))
        st = ("apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nstatus:\n"
              "  observedGeneration: 1\n  conditions:\n  - {type: Accepted, status: 'True', reason: Valid, "
              "message: ok, lastTransitionTime: '2024-01-01T00:00:00Z'}\n")
        o = c.ok("PATCH", base + "/web/status?fieldManager=pillion-operator&force=true", st,
                 ctype="application/apply-patch+yaml")
        self.assertEqual(o["status"]["conditions"][0]["type"], "Accepted")
        self.assertEqual(o["metadata"]["generation"], 1)
        self.assertIn(("pillion-operator", "Apply", "status"), [(e["manager"], e["operation"], e.get("subresource"))
                                                                for e in o["metadata"]["managedFields"]])
        # an apply of the main resource cannot change status
        o = c.ok("PATCH", base + "/web?fieldManager=pillion-operator&force=true",
                 "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\n"
                 "spec: {targetRef: {name: web, port: 81}}\nstatus: {observedGeneration: 99}\n",
                 ctype="application/apply-patch+yaml")
        self.assertEqual(o["status"]["observedGeneration"], 1)
        self.assertEqual(o["metadata"]["generation"], 2)

    # ------------------------------------------------------------------ watch

    def test_watch_semantics(self):
        ns = self.ns()
        c = self.c
        base = "/api/v1/namespaces/%s/configmaps" % ns
        c.ok("POST", base, cm("w0", labels={"w": "yes"}))
        # resourceVersion unset: synthetic ADDED for what exists, then changes
        w = RawWatch(self.url, base + "?watch=true&labelSelector=w%3Dyes")
        self.assertEqual(w.status, 200)
        self.assertEqual(w.headers.get("transfer-encoding"), "chunked")
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "w0"))
        self.assertEqual(ev["object"]["kind"], "ConfigMap", "watch events carry kind")
        o1 = c.ok("POST", base, cm("w1", labels={"w": "yes"}))
        c.ok("POST", base, cm("unlabelled"))
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "w1"))
        # leaving the selector is a DELETED event, entering it an ADDED one
        c.ok("PATCH", base + "/w1", {"metadata": {"labels": {"w": "no"}}}, ctype="application/merge-patch+json")
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("DELETED", "w1"))
        c.ok("PATCH", base + "/unlabelled", {"metadata": {"labels": {"w": "yes"}}},
             ctype="application/merge-patch+json")
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "unlabelled"))
        w.close()
        # a given resourceVersion: exactly the events after it, in order
        w = RawWatch(self.url, base + "?watch=1&resourceVersion=%s" % o1["metadata"]["resourceVersion"])
        evs = [w.next() for _ in range(3)]
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                         [("ADDED", "unlabelled"), ("MODIFIED", "w1"), ("MODIFIED", "unlabelled")])
        c.ok("DELETE", base + "/w0")
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("DELETED", "w0"))
        self.assertGreater(int(ev["object"]["metadata"]["resourceVersion"]), int(evs[-1]["object"]["metadata"]
                                                                                 ["resourceVersion"]))
        w.close()
        # bookmarks (every 0.3 s in this test server) and timeoutSeconds: a clean end with a final bookmark
        rv = c.ok("GET", base)["metadata"]["resourceVersion"]
        t0 = time.monotonic()
        w = RawWatch(self.url, base + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=3&resourceVersion=" + rv)
        evs = []
        while True:
            ev = w.next(30)
            if ev is None:
                break
            evs.append(ev)
        self.assertEqual(w.ended, "clean")
        self.assertGreaterEqual(len(evs), 2)
        self.assertTrue(all(e["type"] == "BOOKMARK" for e in evs))
        self.assertEqual(evs[-1]["object"]["metadata"]["resourceVersion"], c.ok("GET", base)["metadata"]
                         ["resourceVersion"])
        self.assertEqual(evs[0]["object"]["kind"], "ConfigMap")
        self.assertLess(time.monotonic() - t0, 30, "timeoutSeconds=3 ends the watch")
        w.close()
        # single-object watch through the name's path
        w = RawWatch(self.url, base + "/w1?watch=true")
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "w1"))
        w.close()

    def test_watch_too_old_and_expire_fault(self):
        ns = self.ns()
        c = self.c
        base = "/api/v1/namespaces/%s/configmaps" % ns
        first = c.ok("POST", base, cm("old"))
        c.ok("POST", base, cm("older"))       # history compacted at a later revision than 'first'
        self.fault({"compact": True})
        c.ok("POST", base, cm("new"))
        w = RawWatch(self.url, base + "?watch=true&resourceVersion=" + first["metadata"]["resourceVersion"])
        self.assertEqual(w.status, 200, "a too-old watch is answered 200 and then an ERROR event")
        ev = w.next()
        self.assertEqual(ev["type"], "ERROR")
        self.assertStatus(ev["object"], 410, "Expired")
        self.assertIsNone(w.next())
        self.assertEqual(w.ended, "clean")
        w.close()
        # the history window: more events than --history-size (50) pushes an RV out
        rv = c.ok("GET", base)["metadata"]["resourceVersion"]
        for i in range(55):
            c.ok("PATCH", base + "/new", {"data": {"i": str(i)}}, ctype="application/merge-patch+json")
        w = RawWatch(self.url, base + "?watch=true&resourceVersion=" + rv)
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["code"]), ("ERROR", 410))
        w.close()
        # a future resourceVersion: 504 after a wait, as the watch cache answers
        # (skipped: takes 3 s) -- the fault: next N watches expire
        self.fault({"expireWatches": 2})
        for _ in range(2):
            w = RawWatch(self.url, base + "?watch=true")
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["code"], ev["object"]["reason"]), ("ERROR", 410, "Expired"))
            w.close()
        w = RawWatch(self.url, base + "?watch=true")
        self.assertEqual(w.next()["type"], "ADDED")
        w.close()

    def test_watch_cut_mid_line_and_restart(self):
        ns = self.ns()
        c = self.c
        base = "/api/v1/namespaces/%s/configmaps" % ns
        c.ok("POST", base, cm("x"))
        w = RawWatch(self.url, base + "?watch=true&fieldSelector=metadata.name%3Dx")
        self.assertEqual(w.next()["type"], "ADDED")
        wait_for(lambda: any(x["path"].startswith(base) for x in c.ok("GET", "/_fake/watches")["watches"]),
                 what="watch registered")
        out = self.fault({"cutWatches": {"midLine": True, "path": base}})
        self.assertEqual(out["watchesCut"], 1)
        self.assertIsNone(w.next())
        self.assertEqual(w.ended, "eof", "closed without the terminating chunk")
        self.assertTrue(w.data and not w.data.endswith(b"\n"), "half a line was sent: %r" % w.data)
        with self.assertRaises(ValueError):
            json.loads(w.data)
        w.close()
        # cut on the next event: that event is lost to this stream, and a resumed watch gets it
        w = RawWatch(self.url, base + "?watch=true&fieldSelector=metadata.name%3Dx")
        last = w.next()
        wait_for(lambda: any(x["path"].startswith(base) for x in c.ok("GET", "/_fake/watches")["watches"]),
                 what="watch registered")
        self.fault({"cutWatches": {"midLine": True, "onNextEvent": True, "path": base}})
        c.ok("PATCH", base + "/x", {"data": {"k": "after"}}, ctype="application/merge-patch+json")
        self.assertIsNone(w.next())
        self.assertEqual(w.ended, "eof")
        self.assertIn(b'"type":"MODIFIED"', w.data)
        w.close()
        w = RawWatch(self.url, base + "?watch=true&resourceVersion=" + last["object"]["metadata"]["resourceVersion"])
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["data"]["k"]), ("MODIFIED", "after"))
        # restart: every connection dropped (watches and idle keep-alives), data kept, old RVs expired
        keep = Client(self.url)
        keep.ok("GET", base)
        wait_for(lambda: any(x["path"].startswith(base) for x in c.ok("GET", "/_fake/watches")["watches"]),
                 what="watch registered")
        c.ok("PATCH", base + "/x", {"data": {"k": "later"}}, ctype="application/merge-patch+json")
        self.assertEqual(w.next()["object"]["data"]["k"], "later")
        admin = Client(self.url)
        r = admin.ok("POST", "/_fake/restart", {})
        self.assertGreaterEqual(r["watchesCut"], 1)
        self.assertIsNone(w.next())
        self.assertEqual(w.ended, "eof")
        w.close()
        self.assertEqual(keep.ok("GET", base + "/x")["data"]["k"], "later", "data kept; client reconnected")
        w = RawWatch(self.url, base + "?watch=true&resourceVersion=" + ev["object"]["metadata"]["resourceVersion"])
        self.assertEqual(w.next()["object"]["code"], 410)
        w.close()

    # ------------------------------------------------------------------ faults and counters

    def test_request_faults_and_counters(self):
        ns = self.ns()
        c = self.c
        base = "/api/v1/namespaces/%s/configmaps" % ns
        c.ok("DELETE", "/_fake/requests")
        self.fault({"requests": [{"path": base, "method": "GET", "count": 1, "status": 429, "retryAfter": 2},
                                 {"path": base, "method": "GET", "count": 1, "status": 500},
                                 {"path": base, "method": "GET", "count": 1, "malformed": True}]})
        code, r, body = c.req("GET", base)
        self.assertEqual((code, r.getheader("Retry-After")), (429, "2"))
        self.assertStatus(body, 429, "TooManyRequests")
        self.assertEqual(body["details"]["retryAfterSeconds"], 2)
        code, _, body = c.req("GET", base)
        self.assertStatus(body, 500, "InternalError")
        code, r, body = c.req("GET", base, raw=True)
        self.assertEqual(code, 200)
        with self.assertRaises(ValueError):
            json.loads(body)
        self.assertEqual(c.req("GET", base)[0], 200, "the faults are used up")
        self.fault({"requests": [{"path": "/api/v1/namespaces/%s/" % ns, "prefix": True, "verb": "create",
                                  "count": 2, "status": 503}]})
        self.assertEqual(c.req("POST", base, cm("f1"))[0], 503)
        self.assertEqual(c.req("POST", base, cm("f1"))[0], 503)
        self.assertEqual(c.req("POST", base, cm("f1"))[0], 201)
        counts = c.ok("GET", "/_fake/requests")
        self.assertEqual(counts["byVerb"]["list"], 4)
        self.assertEqual(counts["byResource"]["create configmaps"], 3)
        self.assertEqual(counts["byPath"]["GET " + base], 4)

    def test_request_counts_by_agent(self):
        ns = self.ns()
        c = self.c
        base = "/api/v1/namespaces/%s/configmaps" % ns
        op = {"User-Agent": "pillion-operator/0.1"}
        c.ok("DELETE", "/_fake/requests")
        c.ok("POST", base, cm("a1"))
        # Only watch, fieldSelector and force stay in the key: they change how kube-apiserver authorizes it.
        self.assertEqual(c.req("GET", base + "?limit=5&labelSelector=app%3Dweb", headers=op)[0], 200)
        self.assertEqual(c.req("GET", base + "?limit=5", headers=op)[0], 200)
        self.assertEqual(c.req("GET", base + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=1", headers=op)[0], 200)
        self.assertEqual(c.req("GET", base + "?fieldSelector=metadata.name%3Da1&limit=1", headers=op)[0], 200)
        code, _, o = c.req("PATCH", base + "/a2?fieldManager=pillion-operator&force=true",
                           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a2}\n",
                           ctype="application/apply-patch+yaml", headers=op)
        self.assertEqual(code, 201, o)
        self.assertEqual(c.req("DELETE", base + "/a2", headers=op)[0], 200)
        self.assertEqual(c.req("GET", base + "/a1", headers={"User-Agent": ""})[0], 200)
        counts = c.ok("GET", "/_fake/requests")
        self.assertEqual(counts["byAgent"], {
            "selftest/1.0": {"POST " + base: 1},
            "pillion-operator/0.1": {"GET " + base: 2, "GET " + base + "?watch=1": 1,
                                     "GET " + base + "?fieldSelector=metadata.name%3Da1": 1,
                                     "PATCH " + base + "/a2?force=true": 1, "DELETE " + base + "/a2": 1},
            "unknown": {"GET " + base + "/a1": 1}})
        # the other fields are as before
        self.assertEqual(counts["total"], 8)
        self.assertEqual(counts["byVerb"], {"create": 1, "list": 3, "watch": 1, "patch": 1, "delete": 1, "get": 1})
        self.assertEqual(counts["byPath"]["GET " + base], 4)
        c.ok("DELETE", "/_fake/requests")
        self.assertEqual(c.ok("GET", "/_fake/requests")["byAgent"], {})

    # ------------------------------------------------------------------ garbage collection

    def test_garbage_collection_and_namespace_deletion(self):
        ns = self.ns()
        c = self.c
        p = c.ok("POST", "/api/v1/namespaces/%s/pods" % ns, pod("p"))
        ref = {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": p["metadata"]["uid"], "controller": True,
               "blockOwnerDeletion": True}
        base = "/api/v1/namespaces/%s" % ns
        c.ok("POST", base + "/configmaps", cm("pillion-1", owner=ref))
        c.ok("POST", base + "/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "pillion-1-tls", "ownerReferences": [ref]}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": "", "tls.key": ""}})
        got = c.ok("GET", base + "/configmaps/pillion-1")
        self.assertEqual(got["metadata"]["ownerReferences"], [ref], "ownerReferences preserved")
        c.ok("DELETE", base + "/pods/p")
        wait_for(lambda: c.req("GET", base + "/configmaps/pillion-1")[0] == 404 and
                 c.req("GET", base + "/secrets/pillion-1-tls")[0] == 404, what="GC of the pod's objects")
        # an owner that does not exist: the dependent is collected
        ghost = dict(ref, uid="00000000-0000-4000-8000-000000000000")
        c.ok("POST", base + "/configmaps", cm("dangling", owner=ghost))
        wait_for(lambda: c.req("GET", base + "/configmaps/dangling")[0] == 404, what="GC of a dangling dependent")
        # Orphan propagation keeps the dependent and drops the reference
        p = c.ok("POST", base + "/pods", pod("q"))
        ref2 = dict(ref, name="q", uid=p["metadata"]["uid"])
        c.ok("POST", base + "/configmaps", cm("kept", owner=ref2))
        c.ok("DELETE", base + "/pods/q?propagationPolicy=Orphan")
        wait_for(lambda: "ownerReferences" not in c.ok("GET", base + "/configmaps/kept")["metadata"],
                 what="the orphaned dependent's reference dropped")
        kept = c.ok("GET", base + "/configmaps/kept")
        self.assertNotIn("ownerReferences", kept["metadata"])
        # Foreground: dependents are gone by the time the owner is
        p = c.ok("POST", base + "/pods", pod("r"))
        c.ok("POST", base + "/configmaps", cm("fg", owner=dict(ref, name="r", uid=p["metadata"]["uid"])))
        c.ok("DELETE", base + "/pods/r", {"kind": "DeleteOptions", "apiVersion": "v1",
                                          "propagationPolicy": "Foreground"})
        self.assertEqual(c.req("GET", base + "/configmaps/fg")[0], 404)
        # namespace deletion: Terminating, no new content, then everything gone
        d = c.ok("DELETE", "/api/v1/namespaces/" + ns)
        self.assertEqual(d["status"]["phase"], "Terminating")
        self.assertIn("deletionTimestamp", d["metadata"])
        code, _, body = c.req("POST", base + "/configmaps", cm("late"))
        if code != 404:        # the namespace controller may already have finished
            self.assertStatus(body, 403, "Forbidden")
        wait_for(lambda: c.req("GET", "/api/v1/namespaces/" + ns)[0] == 404, what="namespace removal")
        self.assertEqual(c.ok("GET", "/api/v1/configmaps?fieldSelector=metadata.namespace%3D" + ns)["items"], [])

    # ------------------------------------------------------------------ mutating webhook

    def test_mutating_webhook(self):
        c = self.c
        tmp = self.tmp
        cert, key = openssl_cert(tmp, "hook", "pillion-webhook.pillion-system.svc",
                                 "DNS:pillion-webhook.pillion-system.svc")
        other_cert, _ = openssl_cert(tmp, "other", "someone-else", "DNS:someone-else")
        port_file, log = os.path.join(tmp, "hook.port"), os.path.join(tmp, "hook.log")
        script = os.path.join(tmp, "webhook.py")
        with open(script, "w") as f:
            f.write(WEBHOOK)
        hook = subprocess.Popen([PY, script, port_file, cert, key, log], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: os.path.exists(port_file), what="webhook start")
            port = int(read(port_file))
            ca = base64.b64encode(read(cert, "rb")).decode()
            c.ok("POST", "/_fake/config", {"webhookURLOverrides": {
                "pillion-system/pillion-webhook": "https://127.0.0.1:%d" % port,
                "pillion-system/down": "https://127.0.0.1:1"}})

            def mwc(name, policy="Fail", svc="pillion-webhook", ca_bundle=ca):
                return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                        "metadata": {"name": name}, "webhooks": [{
                            "name": "%s.pillion.dev" % name, "admissionReviewVersions": ["v1"],
                            "sideEffects": "None", "failurePolicy": policy, "timeoutSeconds": 5,
                            "clientConfig": {"service": {"namespace": "pillion-system", "name": svc,
                                                         "path": "/mutate"}, "caBundle": ca_bundle},
                            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                       "resources": ["pods"]}],
                            "namespaceSelector": {"matchLabels": {"pillion.dev/inject": "enabled"}},
                            "objectSelector": {"matchExpressions": [{"key": "pillion.dev/skip",
                                                                     "operator": "DoesNotExist"}]}}]}
            mwcs = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
            code, _, body = c.req("POST", mwcs, dict(mwc("x"), webhooks=[{"name": "short"}]))
            self.assertStatus(body, 422, "Invalid")
            got = c.ok("POST", mwcs, mwc("pillion"))
            self.assertEqual(got["webhooks"][0]["clientConfig"]["service"]["port"], 443)
            meshed = self.ns(labels={"pillion.dev/inject": "enabled"})
            plain = self.ns()
            # a matching pod, created with generateName: mutated, warning passed on
            code, r, p = c.req("POST", "/api/v1/namespaces/%s/pods" % meshed, pod(generate="web-"))
            self.assertEqual(code, 201, p)
            self.assertEqual(p["metadata"]["annotations"]["pillion.dev/id"], "0123abcd")
            self.assertEqual([x["name"] for x in p["spec"]["containers"]], ["app", "pillion-proxy"])
            self.assertEqual(p["spec"]["containers"][1]["imagePullPolicy"], "IfNotPresent",
                             "defaults applied to what the webhook added")
            self.assertIn('299 - "injected by the test webhook"', r.getheader("Warning") or "")
            seen = [json.loads(x) for x in read(log).splitlines()]
            self.assertEqual(seen[-1]["path"], "/mutate?timeout=5s")
            self.assertEqual((seen[-1]["name"], seen[-1]["generateName"], seen[-1]["namespace"],
                              seen[-1]["operation"], seen[-1]["uidSet"]), ("", "web-", meshed, "CREATE", False))
            self.assertTrue(any(v.startswith("kube-api-access-") for v in seen[-1]["volumes"]),
                            "the ServiceAccount admission plugin runs before webhooks")
            # not selected: unlabeled namespace, or objectSelector excludes it
            n = len(seen)
            p = c.ok("POST", "/api/v1/namespaces/%s/pods" % plain, pod("p"))
            self.assertNotIn("annotations", p["metadata"])
            p = c.ok("POST", "/api/v1/namespaces/%s/pods" % meshed, pod("skip", labels={"pillion.dev/skip": "1"}))
            self.assertNotIn("annotations", p["metadata"])
            self.assertEqual(len(read(log).splitlines()), n, "webhook not called")
            # the webhook denies
            code, _, body = c.req("POST", "/api/v1/namespaces/%s/pods" % meshed,
                                  pod("deny", annotations={"test/deny": "1"}))
            self.assertEqual(code, 403)
            self.assertEqual(body["message"], 'admission webhook "pillion.pillion.dev" denied the request: '
                                              "pods are not welcome")
            # a bad answer (wrong uid) under failurePolicy Fail: rejected with a Status saying why
            code, _, body = c.req("POST", "/api/v1/namespaces/%s/pods" % meshed,
                                  pod("baduid", annotations={"test/bad-uid": "1"}))
            self.assertStatus(body, 500, "InternalError")
            self.assertIn('failed calling webhook "pillion.pillion.dev"', body["message"])
            # a caBundle that does not verify the webhook's certificate
            wrong = base64.b64encode(read(other_cert, "rb")).decode()
            cur = c.ok("GET", mwcs + "/pillion")
            cur["webhooks"][0]["clientConfig"]["caBundle"] = wrong
            c.ok("PUT", mwcs + "/pillion", cur)
            code, _, body = c.req("POST", "/api/v1/namespaces/%s/pods" % meshed, pod("badca"))
            self.assertStatus(body, 500, "InternalError")
            self.assertIn("certificate", body["message"])
            # ... with failurePolicy Ignore the pod is created unmutated
            cur = c.ok("GET", mwcs + "/pillion")
            cur["webhooks"][0]["failurePolicy"] = "Ignore"
            c.ok("PUT", mwcs + "/pillion", cur)
            p = c.ok("POST", "/api/v1/namespaces/%s/pods" % meshed, pod("ignored"))
            self.assertEqual([x["name"] for x in p["spec"]["containers"]], ["app"])
            c.ok("DELETE", mwcs + "/pillion")
            # the webhook is down: Fail rejects, Ignore admits
            c.ok("POST", mwcs, mwc("down", svc="down"))
            code, _, body = c.req("POST", "/api/v1/namespaces/%s/pods" % meshed, pod("down1"))
            self.assertStatus(body, 500, "InternalError")
            self.assertIn("failed to call webhook", body["message"])
            cur = c.ok("GET", mwcs + "/down")
            cur["webhooks"][0]["failurePolicy"] = "Ignore"
            c.ok("PUT", mwcs + "/down", cur)
            self.assertEqual(c.req("POST", "/api/v1/namespaces/%s/pods" % meshed, pod("down2"))[0], 201)
            c.ok("DELETE", mwcs + "/down")
        finally:
            os.kill(hook.pid, signal.SIGTERM)
            hook.wait(5)


class SeparateServersTest(unittest.TestCase):
    """Servers with their own flags: HTTPS with a CA, and a real restart through --state-file."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fakeapi-test2-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_https_and_kubeconfig(self):
        cert, key = openssl_cert(self.tmp, "api", "fake-apiserver", "IP:127.0.0.1,DNS:localhost")
        kc = os.path.join(self.tmp, "kubeconfig")
        proc, info = start_server(self.tmp, "--tls-port", "0", "--tls-cert", cert, "--tls-key", key,
                                  "--kubeconfig-out", kc, name="tls")
        self.procs.append(proc)
        ctx = ssl.create_default_context(cafile=cert)
        c = Client(info["tlsURL"], ctx=ctx)
        self.assertEqual(c.ok("GET", "/api/v1/namespaces/default")["metadata"]["name"], "default")
        w = RawWatch(info["tlsURL"], "/api/v1/namespaces?watch=1", ctx=ctx)
        self.assertEqual(w.next()["type"], "ADDED")
        w.close()
        with self.assertRaises(ssl.SSLCertVerificationError):
            Client(info["tlsURL"], ctx=ssl.create_default_context()).req("GET", "/version")
        cfg = json.loads(read(kc))
        self.assertEqual(cfg["clusters"][0]["cluster"]["server"], info["tlsURL"])
        self.assertEqual(base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]),
                         read(cert, "rb"))
        self.assertEqual(cfg["users"][0]["user"]["token"], TOKEN)

    def test_state_file_restart(self):
        sf = os.path.join(self.tmp, "state.json")
        proc, info = start_server(self.tmp, "--state-file", sf, name="s1")
        c = Client(info["url"])
        c.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keep"}})
        p = c.ok("POST", "/api/v1/namespaces/keep/pods", pod("p"))
        o = c.ok("POST", "/api/v1/namespaces/keep/configmaps", cm("c", owner={
            "apiVersion": "v1", "kind": "Pod", "name": "p", "uid": p["metadata"]["uid"]}))
        proc.stop()
        proc, info = start_server(self.tmp, "--state-file", sf, name="s2")
        self.procs.append(proc)
        c = Client(info["url"])
        got = c.ok("GET", "/api/v1/namespaces/keep/configmaps/c")
        self.assertEqual(got["metadata"]["uid"], o["metadata"]["uid"])
        self.assertEqual(got["metadata"]["resourceVersion"], o["metadata"]["resourceVersion"])
        w = RawWatch(info["url"], "/api/v1/namespaces/keep/configmaps?watch=1&resourceVersion="
                     + p["metadata"]["resourceVersion"])
        self.assertEqual(w.next()["object"]["code"], 410, "the restarted server's history starts now")
        w.close()
        n = c.ok("POST", "/api/v1/namespaces/keep/configmaps", cm("d"))
        self.assertGreater(int(n["metadata"]["resourceVersion"]), int(o["metadata"]["resourceVersion"]))
        c.ok("DELETE", "/api/v1/namespaces/keep/pods/p")     # GC still knows the owner
        wait_for(lambda: c.req("GET", "/api/v1/namespaces/keep/configmaps/c")[0] == 404, what="GC after restart")


if __name__ == "__main__":
    t0 = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2)
    print("elapsed %.1fs" % (time.monotonic() - t0))
    sys.exit(0 if prog.result.wasSuccessful() else 1)
