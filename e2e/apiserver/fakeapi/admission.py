"""Mutating admission webhooks, called as kube-apiserver's MutatingAdmissionWebhook plugin calls
them: matched by rules, namespaceSelector and objectSelector, an AdmissionReview v1 POSTed over
HTTPS verified with the caBundle (server name <service>.<namespace>.svc for service references),
the JSONPatch applied, failurePolicy honoured, warnings passed on."""
import base64
import binascii
import http.client
import json
import socket
import ssl
import threading
import urllib.parse
import uuid

from . import patch as pt
from .errors import ApiError, internal
from .selectors import label_selector_matches

MWC_KEY = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")


class CallError(Exception):
    pass


class Admission:
    def __init__(self, store, overrides=None, log=None):
        self.store = store
        self.overrides = dict(overrides or {})     # "ns/name" or "*" -> base URL
        self.lock = threading.Lock()
        self.log = log or (lambda *a: None)
        self.calls = 0

    def set_overrides(self, overrides):
        with self.lock:
            self.overrides = dict(overrides)

    # ------------------------------------------------------------------ matching

    @staticmethod
    def _rule_matches(rule, rt, version, op, sub):
        ops = rule.get("operations") or []
        if "*" not in ops and op not in ops:
            return False
        groups = rule.get("apiGroups") or []
        if "*" not in groups and rt.group not in groups:
            return False
        versions = rule.get("apiVersions") or []
        if "*" not in versions and version not in versions:
            return False
        resource = rt.plural + ("/" + sub if sub else "")
        ok = False
        for r in rule.get("resources") or []:
            if r == resource or r == "*/*" or (r == "*" and not sub) or \
                    (sub and r == rt.plural + "/*") or (sub and r == "*/" + sub):
                ok = True
        if not ok:
            return False
        scope = rule.get("scope", "*")
        if scope == "Namespaced" and not rt.namespaced:
            return False
        if scope == "Cluster" and rt.namespaced:
            return False
        return True

    def _namespace_labels(self, rt, obj):
        if rt.key == ("", "namespaces"):
            return (obj.get("metadata") or {}).get("labels") or {}, True
        if not rt.namespaced:
            return None, False
        ns = self.store.find(self.store.types[("", "namespaces")], "", obj["metadata"].get("namespace"))
        return ((ns or {}).get("metadata") or {}).get("labels") or {}, True

    def _matching(self, req, op, obj, old):
        rt = req.rt
        with self.store.lock:
            mwcs = sorted(self.store.objects.get(MWC_KEY, {}).values(), key=lambda o: o["metadata"]["name"])
        out = []
        for cfg in mwcs:
            for wh in cfg.get("webhooks") or []:
                if not any(self._rule_matches(r, rt, req.version, op, req.subresource) for r in wh.get("rules") or []):
                    continue
                labels, check = self._namespace_labels(rt, obj)
                if check and not label_selector_matches(wh.get("namespaceSelector"), labels):
                    continue
                osel = wh.get("objectSelector")
                if not (label_selector_matches(osel, obj["metadata"].get("labels")) or
                        (old is not None and label_selector_matches(osel, old["metadata"].get("labels")))):
                    continue
                out.append((cfg, wh))
        return out

    # ------------------------------------------------------------------ calling

    def _target(self, wh):
        cc = wh.get("clientConfig") or {}
        if cc.get("url"):
            u = urllib.parse.urlsplit(cc["url"])
            return cc["url"], u.hostname
        svc = cc.get("service") or {}
        key = "%s/%s" % (svc.get("namespace"), svc.get("name"))
        with self.lock:
            base = self.overrides.get(key) or self.overrides.get("*")
        server_name = "%s.%s.svc" % (svc.get("name"), svc.get("namespace"))
        path = svc.get("path") or "/"
        if not base:
            raise CallError('failed to call webhook: Post "https://%s:%s%s": service "%s" is not reachable from '
                            "the test API server (give --webhook-url-override)" % (server_name, svc.get("port", 443),
                                                                                   path, key))
        u = urllib.parse.urlsplit(base)
        if u.path in ("", "/"):
            base = base.rstrip("/") + path
        return base, server_name

    def _post(self, wh, review):
        url, server_name = self._target(wh)
        timeout = float(wh.get("timeoutSeconds") or 10)
        u = urllib.parse.urlsplit(url)
        full = "%s?timeout=%ds" % (u.path or "/", int(timeout)) if not u.query else "%s?%s" % (u.path, u.query)
        shown = 'Post "%s://%s%s"' % (u.scheme, u.netloc, full)
        if u.scheme != "https":
            raise CallError("failed to call webhook: %s: unsupported protocol scheme" % shown)
        ctx = ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ca = (wh.get("clientConfig") or {}).get("caBundle")
        if ca:
            try:
                pem = base64.b64decode(ca).decode()
                ctx = ssl.create_default_context(cadata=pem)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            except (binascii.Error, ValueError, ssl.SSLError) as e:
                raise CallError("failed to call webhook: could not get REST client: unable to load root "
                                "certificates: %s" % e)
        body = json.dumps(review).encode()
        try:
            sock = socket.create_connection((u.hostname, u.port or 443), timeout=timeout)
            try:
                tls = ctx.wrap_socket(sock, server_hostname=server_name)
            except Exception:
                sock.close()
                raise
            conn = http.client.HTTPConnection(u.hostname, u.port or 443, timeout=timeout)
            conn.sock = tls
            conn.request("POST", full, body=body, headers={
                "Content-Type": "application/json", "Accept": "application/json, */*",
                "User-Agent": "kube-apiserver-admission"})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except ssl.SSLCertVerificationError as e:
            raise CallError("failed to call webhook: %s: tls: failed to verify certificate: %s" % (shown, e.verify_message))
        except socket.timeout:
            raise CallError("failed to call webhook: %s: context deadline exceeded" % shown)
        except (OSError, http.client.HTTPException) as e:
            raise CallError("failed to call webhook: %s: %s" % (shown, e))
        if resp.status != 200:
            raise CallError("failed to call webhook: the server responded with the status code %d but did not return "
                            "an AdmissionReview: %s" % (resp.status, data[:200].decode("utf-8", "replace")))
        try:
            out = json.loads(data)
        except ValueError as e:
            raise CallError("received invalid webhook response: %s" % e)
        return out

    def mutate(self, req, op, obj, old):
        """Returns (object, warnings); raises ApiError to reject."""
        hooks = self._matching(req, op, obj, old)
        warnings = []
        rt = req.rt
        for cfg, wh in hooks:
            name = wh.get("name")
            uid = str(uuid.uuid4())
            gvk = {"group": rt.group, "version": req.version, "kind": rt.kind}
            gvr = {"group": rt.group, "version": req.version, "resource": rt.plural}
            request = {"uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
                       "name": obj["metadata"].get("name") or "", "operation": op,
                       "userInfo": {"username": req.user, "groups": ["system:masters", "system:authenticated"]},
                       "object": obj, "oldObject": old, "dryRun": req.dry_run,
                       "options": {"kind": "CreateOptions" if op == "CREATE" else "UpdateOptions",
                                   "apiVersion": "meta.k8s.io/v1"}}
            if rt.namespaced:
                request["namespace"] = obj["metadata"].get("namespace")
            if req.subresource:
                request["subResource"] = req.subresource
                request["requestSubResource"] = req.subresource
            review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
            self.calls += 1
            try:
                out = self._post(wh, review)
                if out.get("apiVersion") != "admission.k8s.io/v1" or out.get("kind") != "AdmissionReview":
                    raise CallError("received invalid webhook response: expected webhook response of "
                                    "admission.k8s.io/v1, Kind=AdmissionReview, got %s, Kind=%s"
                                    % (out.get("apiVersion"), out.get("kind")))
                resp = out.get("response")
                if not isinstance(resp, dict):
                    raise CallError("received invalid webhook response: webhook response was absent")
                if resp.get("uid") != uid:
                    raise CallError("received invalid webhook response: expected response.uid=%q, got %q"
                                    .replace("%q", '"%s"') % (uid, resp.get("uid")))
            except CallError as e:
                msg = 'failed calling webhook "%s": %s' % (name, e)
                self.log("admission: %s (failurePolicy %s)" % (msg, wh.get("failurePolicy", "Fail")))
                if wh.get("failurePolicy", "Fail") == "Ignore":
                    continue
                raise internal(msg, [msg])
            for w in resp.get("warnings") or []:
                warnings.append(w)
            if not resp.get("allowed"):
                st = resp.get("status") or {}
                deny = 'admission webhook "%s" denied the request' % name
                if st.get("message"):
                    message = "%s: %s" % (deny, st["message"])
                elif st.get("reason"):
                    message = "%s: %s" % (deny, st["reason"])
                else:
                    message = deny + " without explanation"
                raise ApiError(st.get("code") or 403, st.get("reason") or "", message, st.get("details"))
            if resp.get("patch"):
                if resp.get("patchType") != "JSONPatch":
                    raise internal('received invalid webhook response: webhook "%s" returned a patch with '
                                   'patchType "%s"' % (name, resp.get("patchType")))
                try:
                    ops = json.loads(base64.b64decode(resp["patch"]))
                    obj = pt.json_patch(obj, ops)
                except (ValueError, binascii.Error, pt.PatchError) as e:
                    raise internal("JSONPatch from webhook %s: %s" % (name, e))
                if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
                    raise internal("webhook %s returned a patch that does not produce an object" % name)
        return obj, warnings
