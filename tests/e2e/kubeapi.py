"""A small Kubernetes API client for the e2e suites: reads a kubeconfig (python3-yaml), speaks JSON.

It understands what kind, k3s and kubeadm write: server, certificate-authority(-data),
insecure-skip-tls-verify, token / tokenFile, client-certificate(-data) and client-key(-data).
Exec and auth-provider plugins are refused with a message naming the user entry.
"""
import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request

import yaml


class KubeconfigError(Exception):
    pass


def _named(entries, name, what):
    for e in entries or []:
        if e.get("name") == name:
            return e.get(what) or {}
    raise KubeconfigError(f"kubeconfig: no {what} named {name!r}")


def _material(entry, key, base_dir, tmp):
    """The path of a PEM given as KEY-data (written to TMP) or as KEY (a file, relative to the kubeconfig)."""
    data = entry.get(key + "-data")
    if data:
        fd, path = tempfile.mkstemp(dir=tmp, suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(data))
        return path
    path = entry.get(key)
    if path:
        return path if os.path.isabs(path) else os.path.join(base_dir, path)
    return None


class Api:
    def __init__(self, kubeconfig, tmp, context=None):
        with open(kubeconfig) as f:
            kc = yaml.safe_load(f) or {}
        base_dir = os.path.dirname(os.path.abspath(kubeconfig))
        ctx_name = context or kc.get("current-context")
        if not ctx_name:
            raise KubeconfigError("kubeconfig: no current-context")
        ctx = _named(kc.get("contexts"), ctx_name, "context")
        cluster = _named(kc.get("clusters"), ctx.get("cluster"), "cluster")
        user = _named(kc.get("users"), ctx.get("user"), "user") if ctx.get("user") else {}
        if "exec" in user or "auth-provider" in user:
            raise KubeconfigError(f"kubeconfig: user {ctx.get('user')!r} uses an exec/auth-provider plugin; "
                                  "use a token or client certificate")
        self.url = cluster["server"].rstrip("/")
        self.token = user.get("token")
        if not self.token and user.get("tokenFile"):
            with open(user["tokenFile"]) as f:
                self.token = f.read().strip()
        self.ctx = None
        if self.url.startswith("https:"):
            if cluster.get("insecure-skip-tls-verify"):
                self.ctx = ssl._create_unverified_context()
            else:
                self.ctx = ssl.create_default_context(cafile=_material(cluster, "certificate-authority", base_dir, tmp))
            cert = _material(user, "client-certificate", base_dir, tmp)
            if cert:
                self.ctx.load_cert_chain(cert, _material(user, "client-key", base_dir, tmp))

    def req(self, method, path, body=None, ctype="application/json", timeout=15):
        """(HTTP status, decoded JSON or None). Transport errors raise."""
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.url + path, data=data, method=method)
        if self.token:
            r.add_header("Authorization", "Bearer " + self.token)
        r.add_header("Accept", "application/json")
        if data is not None:
            r.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(r, timeout=timeout, context=self.ctx) as resp:
                raw = resp.read()
                code = resp.status
        except urllib.error.HTTPError as e:
            raw, code = e.read(), e.code
        try:
            return code, json.loads(raw or b"null")
        except ValueError:
            return code, None

    def create(self, path, obj, exist_ok=False):
        code, out = self.req("POST", path, obj)
        if code == 409 and exist_ok:
            return self.get(path + "/" + obj["metadata"]["name"])
        if code not in (200, 201):
            raise SystemExit(f"create {path}: {code} {out}")
        return out

    def get(self, path):
        code, out = self.req("GET", path)
        return out if code == 200 else None

    def merge_patch(self, path, patch):
        return self.req("PATCH", path, patch, "application/merge-patch+json")

    def apply(self, path, obj, manager):
        """Server-side apply of obj into collection path, as kubectl apply --server-side --force-conflicts
        (or a GitOps tool) does: (HTTP status, decoded JSON)."""
        return self.req("PATCH", f"{path}/{obj['metadata']['name']}?fieldManager={manager}&force=true", obj,
                        "application/apply-patch+yaml")

    def delete(self, path):
        return self.req("DELETE", path)[0]
