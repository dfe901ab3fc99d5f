"""HTTP(S) front end: routing of the Kubernetes REST paths, bearer-token (or client certificate)
authentication, chunked watch streams with bookmarks, discovery, and the /_fake/ admin API for
fault injection and request counts."""
import collections
import hmac
import http.server
import json
import random
import socket
import ssl
import subprocess
import threading
import time
import traceback
import urllib.parse

from .api import Request

try:
    import yaml
except ImportError:
    yaml = None
from .errors import ApiError, bad_request, expired, method_not_allowed, status_object

NOT_FOUND = status_object(404, "NotFound", "the server could not find the requested resource", {})
MAX_BODY = 3 * 1024 * 1024


def dumps(o):
    return json.dumps(o, separators=(",", ":")).encode()


class Faults:
    """Pending injected faults."""

    def __init__(self):
        self.lock = threading.Lock()
        self.expire_watches = 0
        self.rules = []

    def add_rule(self, r):
        if not r.get("path"):
            raise bad_request("fault rule needs a path")
        rule = {"path": r["path"], "prefix": bool(r.get("prefix", r["path"].endswith("*"))),
                "method": (r.get("method") or "").upper() or None, "verb": r.get("verb"),
                "count": int(r.get("count", 1)), "status": int(r.get("status", 500)),
                "retryAfter": int(r.get("retryAfter", 1)), "malformed": bool(r.get("malformed")),
                "delaySeconds": float(r.get("delaySeconds", 0))}
        rule["path"] = rule["path"].rstrip("*")
        with self.lock:
            self.rules.append(rule)

    def take(self, method, verb, path):
        with self.lock:
            for r in self.rules:
                if r["method"] and r["method"] != method:
                    continue
                if r["verb"] and r["verb"] != verb:
                    continue
                if not (path.startswith(r["path"]) if r["prefix"] else path == r["path"]):
                    continue
                r["count"] -= 1
                if r["count"] <= 0:
                    self.rules.remove(r)
                return dict(r)
        return None

    def take_expired_watch(self):
        with self.lock:
            if self.expire_watches > 0:
                self.expire_watches -= 1
                return True
        return False

    def describe(self):
        with self.lock:
            return {"expireWatches": self.expire_watches, "rules": [dict(r) for r in self.rules]}


class State:
    """Everything the handlers of every listener share."""

    def __init__(self, store, api, admission, token=None, verbose=False, bookmark_interval=5.0,
                 log=None):
        self.store, self.api, self.admission = store, api, admission
        self.token = token
        self.verbose = verbose
        self.bookmark_interval = bookmark_interval
        self.log = log or (lambda *a: None)
        self.faults = Faults()
        self.counts_lock = threading.Lock()
        self.reset_counts()
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.down_until = 0.0
        self.servers = []
        # pods/proxy: how the "API server" reaches pod IPs. None: directly; a network namespace
        # name: through it (`ip netns exec NS curl`), as the demo's node routes to its pods.
        self.pod_netns = None
        # Canned answers of pods/proxy by "ns/name:port/path" ({"status", "body"}), for a suite
        # with pods that run nothing (the operator's): the kubelet's and the pod's part, played.
        self.pod_answers = {}
        # With podAutoStatus, GET .../proxy/status of an injected pod that has no canned answer
        # says it runs its ConfigMap pillion-<id>'s current content hash (and, started with
        # --outbound, pillion-mesh's outbound.json): a proxy that applies at once what it is given
        # (the scale benchmark's pods run nothing).
        self.pod_auto_status = False

    def reset_counts(self):
        with self.counts_lock:
            self.total = 0
            self.by_verb = collections.Counter()
            self.by_resource = collections.Counter()
            self.by_path = collections.Counter()
            self.by_code = collections.Counter()
            self.by_agent = collections.defaultdict(collections.Counter)

    # The query parameters kept in byAgent's keys: those that change how kube-apiserver authorizes
    # the request (watch: the verb; fieldSelector=metadata.name=...: the name a list or watch is
    # checked against) or what a PATCH may do (force is accepted only on a server-side apply, which
    # creates an absent object and is then also checked for create). Every other parameter
    # (resourceVersion, continue, timeoutSeconds, ...) would only multiply the keys.
    AGENT_QUERY_KEYS = ("watch", "fieldSelector", "force")

    def count(self, method, verb, resource, path, query=None, agent=""):
        kept = [(k, v) for k in self.AGENT_QUERY_KEYS for v in (query or {}).get(k, [])]
        key = "%s %s" % (method, path) + ("?" + urllib.parse.urlencode(kept) if kept else "")
        with self.counts_lock:
            self.total += 1
            self.by_verb[verb] += 1
            self.by_resource["%s %s" % (verb, resource)] += 1
            self.by_path["%s %s" % (method, path)] += 1
            self.by_agent[agent or "unknown"][key] += 1

    def drop_connections(self, except_sock=None):
        with self.conns_lock:
            socks = list(self.conns)
        n = 0
        for s in socks:
            if s is except_sock:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
                n += 1
            except OSError:
                pass
        return n


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, addr, state, tls_context=None):
        self.state = state
        self.tls_context = tls_context
        super().__init__(addr, Handler)
        if tls_context is not None:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def verify_request(self, request, client_address):
        return time.monotonic() >= self.state.down_until

    def handle_error(self, request, client_address):
        if self.state.verbose:
            super().handle_error(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver/1.26"
    sys_version = ""

    # ------------------------------------------------------------------ plumbing

    def setup(self):
        super().setup()
        st = self.server.state
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                self.close_connection = True
                raise
            self.request.settimeout(None)
        with st.conns_lock:
            st.conns.add(self.request)

    def finish(self):
        st = self.server.state
        with st.conns_lock:
            st.conns.discard(self.request)
        try:
            super().finish()
        except OSError:
            pass

    def handle(self):
        try:
            super().handle()
        except (OSError, ssl.SSLError):
            pass

    def log_message(self, fmt, *args):
        if self.server.state.verbose:
            self.server.state.log("%s %s" % (self.client_address[0], fmt % args))

    def send_json(self, code, obj, headers=None):
        body = dumps(obj)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for x in v:
                    self.send_header(k, x)
            else:
                self.send_header(k, v)
        # headers and body in one write
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def send_text(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_status(self, err):
        st = err.status()
        headers = dict(err.headers)
        self.send_json(err.code, st, headers)

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = b""
            while True:
                line = self.rfile.readline(65537)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(n)
                self.rfile.readline(3)
                if len(out) > MAX_BODY:
                    raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
            return out
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    # ------------------------------------------------------------------ dispatch

    def authenticated(self):
        st = self.server.state
        if not st.token:
            return True
        if isinstance(self.request, ssl.SSLSocket) and self.request.getpeercert():
            return True
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), st.token.encode()):
            return True
        return False

    def dispatch(self):
        st = self.server.state
        try:
            u = urllib.parse.urlsplit(self.path)
            path = u.path
            query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
            try:
                body = self.read_body()
            except ApiError as e:
                return self.send_error_status(e)
            if path in ("/healthz", "/readyz", "/livez"):
                return self.send_text(200, "ok")
            if not self.authenticated():
                return self.send_json(401, status_object(401, "Unauthorized", "Unauthorized"))
            if path.startswith("/_fake/"):
                return self.admin(path, query, body)
            segs = [urllib.parse.unquote(s) for s in path.strip("/").split("/") if s != ""]
            return self.api(segs, path, query, body)
        except ApiError as e:
            return self.send_error_status(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:
            st.log("internal error on %s %s: %s" % (self.command, self.path, traceback.format_exc()))
            try:
                self.send_json(500, status_object(500, "InternalError", "Internal error occurred: %r" % e))
            except OSError:
                self.close_connection = True

    # ------------------------------------------------------------------ discovery

    def discovery(self, segs):
        store = self.server.state.store
        with store.lock:
            types = list(store.types.values())
        host = self.headers.get("Host") or "127.0.0.1"
        if segs == ["api"]:
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        if segs == ["version"]:
            return self.send_json(200, {"major": "1", "minor": "26", "gitVersion": "v1.26.15-pillion-fake",
                                        "gitCommit": "0000000000000000000000000000000000000000",
                                        "gitTreeState": "clean", "buildDate": "2024-01-01T00:00:00Z",
                                        "goVersion": "go1.21", "compiler": "gc", "platform": "linux/amd64"})
        groups = collections.OrderedDict()
        for rt in sorted(types, key=lambda t: (t.group != "", t.group)):
            if rt.group:
                groups.setdefault(rt.group, [])
                for v in rt.versions:
                    if v not in groups[rt.group]:
                        groups[rt.group].append(v)

        def group_obj(g):
            vs = groups[g]
            return {"name": g, "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": "%s/%s" % (g, vs[0]), "version": vs[0]}}
        if segs == ["apis"]:
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                        "groups": [group_obj(g) for g in groups]})
        if len(segs) == 2 and segs[0] == "apis" and segs[1] in groups:
            o = group_obj(segs[1])
            o.update({"kind": "APIGroup", "apiVersion": "v1"})
            return self.send_json(200, o)
        if segs == ["api", "v1"] or (len(segs) == 3 and segs[0] == "apis"):
            group, version = ("", "v1") if segs[0] == "api" else (segs[1], segs[2])
            rs = []
            for rt in types:
                if rt.group != group or version not in rt.versions:
                    continue
                verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
                r = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                     "verbs": verbs}
                if rt.short_names:
                    r["shortNames"] = rt.short_names
                if rt.categories:
                    r["categories"] = rt.categories
                rs.append(r)
                if rt.status:
                    rs.append({"name": rt.plural + "/status", "singularName": "", "namespaced": rt.namespaced,
                               "kind": rt.kind, "verbs": ["get", "patch", "update"]})
            if not rs:
                return self.send_json(404, NOT_FOUND)
            gv = "%s/%s" % (group, version) if group else version
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                        "resources": rs})
        return self.send_json(404, NOT_FOUND)

    # ------------------------------------------------------------------ pods/proxy

    def pod_proxy(self, ns, target, subpath, path, query):
        """GET /api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH: the pod's answer, relayed (as
        kube-apiserver does: it dials the pod IP), or 503 when the pod cannot be reached."""
        st = self.server.state
        if self.command not in ("GET", "HEAD"):
            raise method_not_allowed()
        st.count(self.command, "get", "pods/proxy", path, query, self.headers.get("User-Agent") or "")
        name, _, port = target.partition(":")
        rt = st.store.lookup("", "v1", "pods")
        pod = st.store.find(rt, ns, name)
        if pod is None:
            return self.send_json(404, status_object(404, "NotFound", 'pods "%s" not found' % name,
                                                     {"name": name, "kind": "pods"}))
        canned = st.pod_answers.get("%s/%s:%s%s" % (ns, name, port, subpath))
        if canned is not None:
            body = canned.get("body", "")
            body = body if isinstance(body, str) else json.dumps(body)
            return self.send_raw(int(canned.get("status", 200)), body.encode(), "application/json")
        if st.pod_auto_status and subpath == "/status":
            pid = ((pod.get("metadata") or {}).get("annotations") or {}).get("pillion.dev/id")
            cm = st.store.find(st.store.lookup("", "v1", "configmaps"), ns, "pillion-%s" % pid) if pid else None
            h = ((cm or {}).get("metadata", {}).get("annotations") or {}).get("pillion.dev/content-hash")
            if h:
                body = {"ready": True, "reason": "ready", "config": {"hash": h}}
                # A proxy started with --outbound runs its namespace's outbound.json too (pillion-mesh).
                spec = pod.get("spec") or {}
                if any(c.get("name") == "pillion-proxy" and "--outbound" in (c.get("args") or [])
                       for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])):
                    mesh = st.store.find(st.store.lookup("", "v1", "configmaps"), ns, "pillion-mesh")
                    oh = ((mesh or {}).get("metadata", {}).get("annotations") or {}).get("pillion.dev/outbound-hash")
                    body["outbound"] = {"source": "mesh" if oh else "config", "hash": oh}
                return self.send_raw(200, json.dumps(body).encode(), "application/json")
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or not port.isdigit():
            return self.send_json(503, status_object(503, "ServiceUnavailable", "pod %s has no IP or no port given" % name))
        url = "http://%s:%s%s" % ("[%s]" % ip if ":" in ip else ip, port, subpath)
        cmd = ["curl", "-sS", "--max-time", "3", "-o", "-", "-w", "\n%{http_code}", url]
        if st.pod_netns:
            cmd = ["ip", "netns", "exec", st.pod_netns] + cmd
        r = subprocess.run(cmd, capture_output=True, timeout=10)
        out, _, code = r.stdout.rpartition(b"\n")
        if r.returncode != 0 or not code.strip().isdigit():
            return self.send_json(503, status_object(503, "ServiceUnavailable",
                                                     "error trying to reach service: %s" % r.stderr.decode(errors="replace").strip()))
        return self.send_raw(int(code), out, "application/json")

    def send_raw(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # ------------------------------------------------------------------ the REST API

    def api(self, segs, path, query, body):
        st = self.server.state
        store = st.store
        if not segs or segs[0] not in ("api", "apis") or (segs[0] == "api" and len(segs) < 3) or \
                (segs[0] == "apis" and len(segs) < 4):
            if segs and segs[0] in ("api", "apis", "version"):
                return self.discovery(segs)
            return self.send_json(404, NOT_FOUND)
        if segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        else:
            group, version, rest = segs[1], segs[2], segs[3:]
        watch_prefix = False
        if rest and rest[0] == "watch":
            watch_prefix, rest = True, rest[1:]
        if not rest:
            return self.send_json(404, NOT_FOUND)
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = store.lookup(group, version, rest[2])
            if inner is not None and inner.namespaced:
                ns, rest = rest[1], rest[2:]
        if group == "" and len(rest) >= 3 and rest[0] == "pods" and rest[2] == "proxy" and ns is not None:
            return self.pod_proxy(ns, rest[1], "/" + "/".join(rest[3:]), path, query)
        if len(rest) > 3:
            return self.send_json(404, NOT_FOUND)
        rt = store.lookup(group, version, rest[0])
        if rt is None:
            return self.send_json(404, NOT_FOUND)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (sub is not None and (sub != "status" or not rt.status)) or (ns is not None and not rt.namespaced) or \
                (rt.namespaced and ns is None and name is not None):
            return self.send_json(404, NOT_FOUND)
        m = self.command
        watching = watch_prefix or (query.get("watch") or [""])[-1] in ("true", "1")
        if m in ("GET", "HEAD"):
            verb = "watch" if watching else ("get" if name is not None else "list")
        elif m == "POST":
            verb = "create"
        elif m == "PUT":
            verb = "update"
        elif m == "PATCH":
            verb = "patch"
        elif m == "DELETE":
            verb = "delete" if name is not None else "deletecollection"
        else:
            raise method_not_allowed()
        st.count(m, verb, rt.plural + ("/" + sub if sub else ""), path, query, self.headers.get("User-Agent") or "")
        rule = st.faults.take(m, verb, path)
        if rule is not None:
            if rule["delaySeconds"]:
                time.sleep(rule["delaySeconds"])
            if rule["malformed"]:
                return self.send_malformed(verb == "watch")
            if rule["status"] == 429:
                return self.send_json(429, status_object(429, "TooManyRequests",
                                                         "Too many requests, please try again later.",
                                                         {"retryAfterSeconds": rule["retryAfter"]}),
                                      {"Retry-After": str(rule["retryAfter"])})
            if rule["status"] >= 400:
                reasons = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout", 409: "Conflict",
                           404: "NotFound", 403: "Forbidden", 410: "Expired"}
                return self.send_json(rule["status"], status_object(
                    rule["status"], reasons.get(rule["status"], "InternalError"),
                    "Internal error occurred: injected fault" if rule["status"] == 500 else "injected fault",
                    {"causes": [{"message": "injected fault"}]} if rule["status"] == 500 else {}))
        req = Request(rt, version, ns, name, sub, query, self.headers.get("User-Agent") or "")
        api = st.api
        if verb == "watch":
            return self.watch(req)
        if verb == "get":
            obj = store.get(rt, ns, name)
            return self.send_json(200, api.output(rt, obj, version))
        if verb == "list":
            items, rv, token, remaining = api.list(req)
            meta = {"resourceVersion": str(rv)}
            if token:
                meta["continue"] = token
                meta["remainingItemCount"] = remaining
            return self.send_json(200, {"kind": rt.kind + "List", "apiVersion": rt.api_version(version),
                                        "metadata": meta,
                                        "items": [api.output(rt, o, version, in_list=True) for o in items]})
        if verb in ("create", "update") and rt.namespaced and ns is None:
            raise method_not_allowed()
        if verb == "create":
            if name is not None:
                raise method_not_allowed()
            obj = api.create(req, self.json_body(body, rt))
            return self.send_json(201, api.output(rt, obj, version), self.warning_headers(req))
        if verb == "update":
            obj, code = api.update(req, self.json_body(body, rt))
            return self.send_json(code, api.output(rt, obj, version), self.warning_headers(req))
        if verb == "patch":
            obj, code = api.patch(req, self.headers.get("Content-Type"), body)
            return self.send_json(code, api.output(rt, obj, version), self.warning_headers(req))
        if verb == "delete":
            opts = self.json_body(body, rt) if body.strip() else {}
            obj = api.delete(req, opts)
            return self.send_json(200, api.output(rt, obj, version))
        if verb == "deletecollection":
            opts = self.json_body(body, rt) if body.strip() else {}
            items = api.delete_collection(req, opts)
            return self.send_json(200, {"kind": rt.kind + "List", "apiVersion": rt.api_version(version),
                                        "metadata": {"resourceVersion": str(store.rv)},
                                        "items": [api.output(rt, o, version, in_list=True) for o in items]})
        raise method_not_allowed()

    def json_body(self, body, rt):
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml") and yaml is not None:
            try:
                return yaml.safe_load(body.decode("utf-8"))
            except Exception as e:
                raise bad_request("error decoding YAML: %s" % e)
        if ctype not in ("application/json", "*/*", ""):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json, application/yaml (this test double "
                           "does not speak %s)" % ctype, {})
        try:
            return json.loads(body or b"null")
        except ValueError as e:
            raise bad_request("the object provided is unrecognized (must be of type %s): couldn't get version/kind; "
                              "json parse error: %s" % (rt.kind, e))

    @staticmethod
    def warning_headers(req):
        if not req.warnings:
            return None
        return {"Warning": ['299 - "%s"' % w.replace("\\", "\\\\").replace('"', '\\"') for w in req.warnings]}

    def send_malformed(self, streaming):
        if streaming:
            self.start_stream()
            self.write_chunk(b'this is not json {"type":"ADDED"\n')
            self.end_stream()
            return
        body = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Fail<html>'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # ------------------------------------------------------------------ watch

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def abort(self):
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def watch(self, req):
        st = self.server.state
        store, api, rt = st.store, st.api, req.rt
        q = req.q
        rv = q("resourceVersion")
        try:
            since = None if rv in (None, "", "0") else int(rv)
        except ValueError:
            raise bad_request('invalid resource version "%s"' % rv)
        bookmarks = q("allowWatchBookmarks") in ("true", "1")
        try:
            timeout = float(q("timeoutSeconds")) if q("timeoutSeconds") else random.uniform(1800, 3600)
        except ValueError:
            raise bad_request("invalid timeoutSeconds")
        matches = api.matcher(req)
        if since is not None and since > store.rv:
            deadline = time.monotonic() + 3
            while store.rv < since and time.monotonic() < deadline:
                time.sleep(0.05)
            if store.rv < since:
                raise ApiError(504, "Timeout", "Too large resource version: %d, current: %d" % (since, store.rv),
                               {"causes": [{"reason": "ResourceVersionTooLarge",
                                            "message": "Too large resource version"}], "retryAfterSeconds": 1})
        if st.faults.take_expired_watch():
            err = expired("too old resource version: %s (%d)" % (rv or "0", store.rv))
            w = None
        else:
            w, err = store.watch(rt, req.namespace, matches, since)
        self.start_stream()
        if err is not None:
            self.write_chunk(dumps({"type": "ERROR", "object": err.status()}) + b"\n")
            self.end_stream()
            return
        w.handler = self
        w.path = self.path
        version = req.version

        def bookmark(rv_):
            meta = {"resourceVersion": str(rv_)}
            if not rt.is_cr():
                meta["creationTimestamp"] = None
            return dumps({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(version),
                                                         "metadata": meta}}) + b"\n"
        deadline = time.monotonic() + timeout
        next_bm = time.monotonic() + st.bookmark_interval
        half_next = False
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    with store.lock:
                        pending = []
                        while not w.q.empty():
                            pending.append(w.q.get_nowait())
                        final_rv = store.rv
                    for item in pending:
                        if item[0] in ("ADDED", "MODIFIED", "DELETED"):
                            self.write_chunk(dumps({"type": item[0], "object": api.output(rt, item[1], version)})
                                             + b"\n")
                    if bookmarks:
                        self.write_chunk(bookmark(final_rv))
                    self.end_stream()
                    return
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bm - now))
                try:
                    item = w.q.get(timeout=max(wait, 0.001))
                except Exception:
                    if bookmarks and time.monotonic() >= next_bm:
                        with store.lock:
                            w.q.put(("BOOKMARK", store.rv))
                        next_bm = time.monotonic() + st.bookmark_interval
                    continue
                kind = item[0]
                if kind == "BOOKMARK":
                    self.write_chunk(bookmark(item[1]))
                elif kind == "CUT":
                    mode = item[1]
                    if mode == "midline":
                        line = bookmark(store.rv)
                        self.write_chunk(line[:len(line) // 2])
                        return self.abort()
                    if mode == "midline-next":
                        half_next = True
                        continue
                    if mode == "clean":
                        self.end_stream()
                        return
                    return self.abort()
                else:
                    line = dumps({"type": kind, "object": api.output(rt, item[1], version)}) + b"\n"
                    if half_next:
                        self.write_chunk(line[:len(line) // 2])
                        return self.abort()
                    self.write_chunk(line)
        except (OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            store.unwatch(w)

    # ------------------------------------------------------------------ admin

    def admin(self, path, query, body):
        st = self.server.state
        store = st.store
        try:
            req = json.loads(body) if body.strip() else {}
        except ValueError as e:
            raise bad_request("admin body is not JSON: %s" % e)
        m = self.command
        if path == "/_fake/faults" and m == "GET":
            return self.send_json(200, st.faults.describe())
        if path == "/_fake/faults" and m in ("POST", "PUT"):
            out = {}
            if req.get("clear"):
                with st.faults.lock:
                    st.faults.rules.clear()
                    st.faults.expire_watches = 0
            if "expireWatches" in req:
                with st.faults.lock:
                    st.faults.expire_watches += int(req["expireWatches"])
            for r in req.get("requests") or []:
                st.faults.add_rule(r)
            if req.get("compact"):
                store.compact()
                out["compactedAt"] = str(store.rv)
            cw = req.get("cutWatches")
            if cw:
                cw = cw if isinstance(cw, dict) else {}
                mode = "abort"
                if cw.get("midLine"):
                    mode = "midline-next" if cw.get("onNextEvent") else "midline"
                elif cw.get("clean"):
                    mode = "clean"
                prefix = cw.get("path") or ""
                out["watchesCut"] = store.broadcast(("CUT", mode), lambda w: getattr(w, "path", "").startswith(prefix))
            out.update(st.faults.describe())
            return self.send_json(200, out)
        if path == "/_fake/restart" and m == "POST":
            down = float(req.get("downSeconds", 0))
            if req.get("compact", True):
                store.compact()
            if down:
                st.down_until = time.monotonic() + down
            n = store.broadcast(("CUT", "abort"))
            self.send_json(200, {"watchesCut": n, "downSeconds": down, "resourceVersion": str(store.rv)},
                           {"Connection": "close"})
            self.close_connection = True
            st.drop_connections(except_sock=self.request)
            return
        if path == "/_fake/requests":
            if m == "DELETE":
                st.reset_counts()
                return self.send_json(200, {"reset": True})
            with st.counts_lock:
                # byAgent: User-Agent -> {"METHOD path[?watch=..&fieldSelector=..&force=..]": count}
                # (see State.count), what tests/e2e/rbac_check.py checks against the RBAC.
                return self.send_json(200, {"total": st.total, "byVerb": dict(st.by_verb),
                                            "byResource": dict(st.by_resource), "byPath": dict(st.by_path),
                                            "byAgent": {a: dict(c) for a, c in st.by_agent.items()}})
        if path == "/_fake/watches" and m == "GET":
            with store.lock:
                ws = [{"resource": w.rt.group_resource(), "namespace": w.namespace, "path": w.path}
                      for w in store.watchers if hasattr(w, "path")]
            return self.send_json(200, {"count": len(ws), "watches": ws})
        if path == "/_fake/config" and m in ("POST", "PUT"):
            if "webhookURLOverrides" in req:
                st.admission.set_overrides(req["webhookURLOverrides"])
            if "bookmarkIntervalSeconds" in req:
                st.bookmark_interval = float(req["bookmarkIntervalSeconds"])
            if "podNetns" in req:
                st.pod_netns = req["podNetns"] or None
            if "podAnswers" in req:
                if req["podAnswers"] is None:
                    st.pod_answers.clear()
                else:
                    st.pod_answers.update(req["podAnswers"])
            if "podAutoStatus" in req:
                st.pod_auto_status = bool(req["podAutoStatus"])
            return self.send_json(200, {"webhookURLOverrides": st.admission.overrides,
                                        "bookmarkIntervalSeconds": st.bookmark_interval})
        if path == "/_fake/state" and m == "GET":
            with store.lock:
                return self.send_json(200, {"resourceVersion": str(store.rv), "counts": {
                    "%s" % (st_.group_resource()): len(store.objects.get(k, {})) for k, st_ in store.types.items()},
                    "webhookCalls": st.admission.calls})
        return self.send_json(404, NOT_FOUND)
