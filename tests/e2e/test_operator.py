#!/usr/bin/python3
"""Control-plane end-to-end test: the real pillion-operator against a Kubernetes API.

usage: test_operator.py BIN_DIR SOURCE_DIR

Without KUBECONFIG it starts the test double (e2e/apiserver) on loopback; the scenarios use
only the Kubernetes API, except the fault injection ones, which need the double's /_fake/ API
and are reported as not run (never as passed) against a real cluster.
Every wait is bounded; every process started is stopped by its PID.
"""
import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubeapi import Api  # noqa: E402
from harness import remove_workdir, start_fake_api, stop_all, wait  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
PY = "/usr/bin/python3"
FAILS = []
CHECKS = 0
NOT_RUN = []


def check(name, ok, detail=""):
    global CHECKS
    CHECKS += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok or not detail else f": {detail}"), flush=True)
    if not ok:
        FAILS.append(name)


def pod(ns, name, sa, labels, pid, ip):
    # The nodeSelector matches no node: on a real cluster the pod stays unscheduled, so no kubelet
    # overwrites the status this suite writes, and deleting it is immediate.
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": {"pillion.dev/id": pid}},
            "spec": {"serviceAccountName": sa, "nodeSelector": {"pillion.dev/e2e": "no-such-node"},
                     "containers": [{"name": "app", "image": "registry.invalid/app:1",
                                     "ports": [{"name": "http", "containerPort": 8080}]}]},
            "_ip": ip}


def main():
    tmp = tempfile.mkdtemp(prefix="pillion-op-e2e.")
    procs = []
    run = secrets.token_hex(3)
    real = "KUBECONFIG" in os.environ
    SYS = None
    SHOP, OTHER = f"pe2e-{run}-shop", f"pe2e-{run}-other"
    api = None
    nonlocal_mwc = [None]  # the webhook configuration made, for the cleanup
    try:
        kc = os.environ["KUBECONFIG"].split(":")[0] if real else start_fake_api(SRC, tmp, procs)
        api = Api(kc, tmp)
        fake = api.req("GET", "/_fake/state")[0] == 200
        # Fresh namespaces per run, so a real cluster can run the suite again and again. On the
        # double the control plane lives in the install's own namespace (the RBAC check binds to it).
        SYS = "pillion-system" if fake else f"pe2e-{run}-system"
        # Multiplies every bound (and the few settle pauses before negative checks): generous, as
        # a busy machine or a real cluster's garbage collector and watches are slower.
        T = 3.0 if fake else 5.0
        print(f"API server {api.url} ({'test double' if fake else 'a real cluster'}); namespaces {SYS}, {SHOP}, {OTHER}")

        def sa(ns, name):
            api.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                                   "metadata": {"name": name, "namespace": ns}})

        for ns in (SYS, SHOP, OTHER):
            api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for ns, name in ((SHOP, "web"), (SHOP, "frontend"), (OTHER, "client")):
            sa(ns, name)
        svc = api.create(f"/api/v1/namespaces/{SHOP}/services", {"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "web", "namespace": SHOP},
                         "spec": {"selector": {"app": "web"},
                                  "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
        web_ip = svc["spec"]["clusterIP"]
        pods = [pod(SHOP, "web-0", "web", {"app": "web"}, "w0", "198.18.2.2"),
                pod(SHOP, "web-1", "web", {"app": "web"}, "w1", "198.18.2.3"),
                pod(SHOP, "frontend-0", "frontend", {"app": "frontend"}, "f0", "198.18.1.2"),
                pod(OTHER, "client-0", "client", {"app": "client"}, "c0", "198.18.3.2")]

        def make_pod(p):
            ip = p.pop("_ip")
            ns = p["metadata"]["namespace"]
            api.create(f"/api/v1/namespaces/{ns}/pods", p)
            # The kubelet's part: the pod runs and has an IP.
            code, out = api.merge_patch(f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}/status",
                                        {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
            if code != 200:
                raise SystemExit(f"pod status: {code} {out}")

        for p in pods:
            make_pod(p)

        # The webhook's configuration, created before the operator starts, its caBundle empty in one
        # entry and wrong in the other. On a real cluster it gets a name of its own and can never
        # break anything: no namespace has the label it selects, and a failed call is ignored.
        WHC = "pillion-webhook" if fake else f"pe2e-{run}-webhook"
        nonlocal_mwc[0] = WHC
        MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
        api.create(MWC, webhook_configuration(WHC, SYS, run))
        # A short certificate lifetime on the double, so that its renewal (at 2/3: 20 s) is seen.
        wh_flags = ["--webhook-config-name", WHC] + (["--webhook-cert-ttl", "30s"] if fake else [])

        def start_operator(tag, port=25441):
            log = open(os.path.join(tmp, f"operator-{tag}.log"), "a")
            o = subprocess.Popen([os.path.join(BIN, "pillion-operator"), "--kubeconfig", kc, "--namespace", SYS,
                                  "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
                                  "--identity", f"operator-{tag}"] + wh_flags, stdout=log, stderr=subprocess.STDOUT)
            procs.append(o)
            return o

        op = start_operator("a")

        def metric(port, name):
            total = 0.0
            for line in get_url(f"http://127.0.0.1:{port}/metrics")[1].splitlines():
                if line.startswith(name):
                    total += float(line.rsplit(" ", 1)[1])
            return total

        def cm(ns, name):
            return api.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")

        def secret(ns, name):
            return api.get(f"/api/v1/namespaces/{ns}/secrets/{name}")

        def spiffe(ns, sa_):
            return f"spiffe://cluster.local/ns/{ns}/sa/{sa_}"

        def mesh_pods(ns):
            m = cm(ns, "pillion-mesh")
            return [p for p in json.loads(m["data"]["mesh.json"])["pods"] if p["namespace"] in (SHOP, OTHER)] if m else None

        # --- pods created -> their objects appear, owned by them, with the right content ---
        got = wait(lambda: all(cm(p["metadata"]["namespace"], "pillion-" + p["metadata"]["annotations"]["pillion.dev/id"]) for p in pods), 30 * T)
        check("each injected pod gets ConfigMap pillion-<id>", bool(got))
        web0 = api.get(f"/api/v1/namespaces/{SHOP}/pods/web-0")
        c = cm(SHOP, "pillion-w0")
        cfg = json.loads(c["data"]["proxy.json"]) if c else {}
        check("... owned by the pod (controller ownerReference with its uid)",
              c and c["metadata"]["ownerReferences"][0]["uid"] == web0["metadata"]["uid"]
              and c["metadata"]["ownerReferences"][0].get("controller") is True)
        check("... holding the rendered config for that pod",
              cfg.get("kind") == "ProxyConfig" and cfg["pod"]["name"] == "web-0"
              and cfg["identity"]["spiffeId"] == spiffe(SHOP, "web"))
        check("... and its content hash as an annotation",
              c and c["metadata"]["annotations"]["pillion.dev/content-hash"] == cfg.get("hash"))
        s = wait(lambda: secret(SHOP, "pillion-w0-tls"), 20 * T)
        pem = base64.b64decode(s["data"]["tls.crt"]) if s else b""
        san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem, capture_output=True).stdout.decode()
        check("each pod gets Secret pillion-<id>-tls with a certificate for its SPIFFE ID",
              "URI:" + spiffe(SHOP, "web") in san, san)
        ca = api.get(f"/api/v1/namespaces/{SYS}/secrets/pillion-ca")
        check("the mesh CA was created in the control-plane namespace", ca is not None)
        check("... the leaf's key matches its certificate", s is not None and key_matches(s))
        cafile = os.path.join(tmp, "ca.pem")
        open(cafile, "wb").write(base64.b64decode(s["data"]["ca.crt"]) if s else b"")
        leaf = os.path.join(tmp, "leaf.pem")
        open(leaf, "wb").write(pem)
        v = subprocess.run(["openssl", "verify", "-CAfile", cafile, leaf], capture_output=True)
        check("... signed by the mesh CA whose bundle the Secret carries", v.returncode == 0, v.stderr.decode())
        m = wait(lambda: cm(SHOP, "pillion-mesh"), 20 * T)
        mesh = json.loads(m["data"]["mesh.json"]) if m else {}
        svc_ids = [x for x in mesh.get("services", []) if x["name"] == "web" and x["namespace"] == SHOP]
        check("namespace shop gets pillion-mesh listing Service web and its identity",
              svc_ids and svc_ids[0]["addresses"] == [web_ip] and svc_ids[0]["identities"] == [spiffe(SHOP, "web")], svc_ids)
        check("... and every meshed pod with its IP", len(mesh_pods(SHOP) or []) == 4)
        check("namespace other gets its own pillion-mesh", wait(lambda: cm(OTHER, "pillion-mesh"), 10 * T) is not None)
        sys_uid = api.get(f"/api/v1/namespaces/{SYS}")["metadata"]["uid"]
        owned = wait(lambda: [r for r in (cm(SHOP, "pillion-mesh") or {}).get("metadata", {}).get("ownerReferences", [])
                              if r.get("kind") == "Namespace" and r.get("name") == SYS and r.get("uid") == sys_uid], 20 * T)
        check("pillion-mesh is owned by the control plane's Namespace (deleting the install removes it)", bool(owned),
              cm(SHOP, "pillion-mesh")["metadata"].get("ownerReferences"))
        # A pod of web without the proxy (the namespace leaving the mesh, say): an endpoint all the
        # same, which callers dial in plaintext, as it is not among the meshed pods.
        plain = pod(SHOP, "web-plain", "web", {"app": "web"}, "", "198.18.2.50")
        del plain["metadata"]["annotations"]
        make_pod(plain)
        api.merge_patch(f"/api/v1/namespaces/{SHOP}/pods/web-plain/status",
                        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})

        def web_endpoints():
            m = cm(SHOP, "pillion-mesh")
            svc_ = [x for x in json.loads(m["data"]["mesh.json"])["services"] if x["name"] == "web"] if m else []
            return [a for e in (svc_[0].get("endpoints", []) if svc_ else []) for a in e["addresses"]]

        got = wait(lambda: "198.18.2.50" in web_endpoints(), 20 * T)
        check("a ready pod of a meshed Service without the proxy is listed as its endpoint, not as a meshed pod",
              bool(got) and "198.18.2.50" not in [a for p_ in mesh_pods(SHOP) for a in p_["addresses"]], web_endpoints())
        api.delete(f"/api/v1/namespaces/{SHOP}/pods/web-plain")
        check("... and leaves it when deleted", bool(wait(lambda: "198.18.2.50" not in web_endpoints(), 20 * T)))

        # --- the pod annotation that makes a real kubelet project the volumes now ---
        def short(h):
            return (h or "").split(":", 1)[-1][:12]

        def projected(ns, name):
            """What pod ns/name must say once the operator refreshed it, or None while a piece is missing."""
            p = api.get(f"/api/v1/namespaces/{ns}/pods/{name}")
            pid = p["metadata"]["annotations"]["pillion.dev/id"] if p else None
            c, m, t = cm(ns, f"pillion-{pid}"), cm(ns, "pillion-mesh"), secret(ns, f"pillion-{pid}-tls")
            if not (c and m and t):
                return None
            return "config=%s,mesh=%s,cert=%d" % (short(c["metadata"]["annotations"]["pillion.dev/content-hash"]),
                                                  short(m["metadata"]["annotations"]["pillion.dev/content-hash"]),
                                                  cert_not_after(t))

        def annotated(ns, name):
            p = api.get(f"/api/v1/namespaces/{ns}/pods/{name}")
            return ((p or {}).get("metadata", {}).get("annotations") or {}).get("pillion.dev/config-hash")

        def refreshed(ns, names):
            return all(annotated(ns, n) is not None and annotated(ns, n) == projected(ns, n) for n in names)

        got = wait(lambda: refreshed(SHOP, ["web-0", "web-1", "frontend-0"]) and refreshed(OTHER, ["client-0"]), 20 * T)
        check("each pod's pillion.dev/config-hash names the config, mesh directory and certificate it mounts",
              bool(got), [(annotated(SHOP, "web-0"), projected(SHOP, "web-0"))])
        pod_rv = api.get(f"/api/v1/namespaces/{SHOP}/pods/web-0")["metadata"]["resourceVersion"]
        mf = [f for f in api.get(f"/api/v1/namespaces/{SHOP}/pods/web-0")["metadata"].get("managedFields", [])
              if f.get("manager") == "pillion-operator"]
        check("... set by the operator (its field manager)", bool(mf), mf)
        time.sleep(1.0 * T)
        check("... and not patched again while nothing changed",
              api.get(f"/api/v1/namespaces/{SHOP}/pods/web-0")["metadata"]["resourceVersion"] == pod_rv)
        old_mesh = short(cm(SHOP, "pillion-mesh")["metadata"]["annotations"]["pillion.dev/content-hash"])
        make_pod(pod(SHOP, "web-9", "web", {"app": "web"}, "w9", "198.18.2.9"))
        got = wait(lambda: short(cm(SHOP, "pillion-mesh")["metadata"]["annotations"]["pillion.dev/content-hash"]) != old_mesh
                   and refreshed(SHOP, ["web-0", "web-1", "frontend-0", "web-9"]), 20 * T)
        check("a pod joining the namespace: every pod of it is refreshed with the new mesh directory's hash",
              bool(got), [annotated(SHOP, n) for n in ("web-0", "web-9")])
        api.delete(f"/api/v1/namespaces/{SHOP}/pods/web-9")
        wait(lambda: len(mesh_pods(SHOP) or []) == 4 and refreshed(SHOP, ["web-0"]), 20 * T)

        # --- the admission webhook's serving certificate and its configuration's caBundle ---
        WH_NAMES = [f"pillion-webhook.{SYS}.svc", f"pillion-webhook.{SYS}.svc.cluster.local", f"pillion-webhook.{SYS}",
                    "pillion-webhook"]
        ws = wait(lambda: secret(SYS, "pillion-webhook-tls"), 20 * T)
        wsan = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=cert_of(ws) if ws else b"",
                              capture_output=True).stdout.decode()
        dns = sorted(x.strip()[4:] for x in wsan.split("\n", 1)[-1].split(",") if x.strip().startswith("DNS:"))
        check("the operator creates Secret pillion-webhook-tls (kubernetes.io/tls) with the webhook Service's DNS names",
              bool(ws) and ws.get("type") == "kubernetes.io/tls" and dns == sorted(WH_NAMES), wsan)
        bundle = base64.b64decode(s["data"]["ca.crt"]) if s else b""
        v = verify_server(tmp, ws) if ws else None
        check("... a TLS server certificate (openssl verify -purpose sslserver) from the mesh CA, ca.crt the mesh bundle",
              bool(ws) and base64.b64decode(ws["data"]["ca.crt"]) == bundle and v.returncode == 0,
              v.stdout.decode() + v.stderr.decode() if v else "no Secret")
        check("... whose key matches it", bool(ws) and key_matches(ws))

        def ca_bundles():
            return [w["clientConfig"].get("caBundle") for w in (api.get(f"{MWC}/{WHC}") or {}).get("webhooks", [])]

        want_bundle = ws["data"]["ca.crt"] if ws else None
        got = wait(lambda: ca_bundles() == [want_bundle, want_bundle], 20 * T)
        check("every webhook of the MutatingWebhookConfiguration gets the mesh bundle as its caBundle", bool(got),
              [(b or "")[:16] for b in ca_bundles()])
        code, out = api.req("PATCH", f"{MWC}/{WHC}", [{"op": "replace", "path": "/webhooks/1/clientConfig/caBundle",
                                                       "value": base64.b64encode(b"stale").decode()}],
                            "application/json-patch+json")
        got = wait(lambda: ca_bundles() == [want_bundle, want_bundle], 20 * T)
        check("a caBundle reset (as a kubectl apply of the configuration would) is healed",
              code == 200 and bool(got), (code, [(b or "")[:16] for b in ca_bundles()]))
        api.delete(f"{MWC}/{WHC}")
        time.sleep(0.5 * T)
        api.create(MWC, webhook_configuration(WHC, SYS, run))
        got = wait(lambda: ca_bundles() == [want_bundle, want_bundle], 20 * T)
        check("a configuration deleted and created again while the operator runs gets its caBundle", bool(got))
        def expiry_reported():
            # (read around a renewal that may land between the two reads)
            x = secret(SYS, "pillion-webhook-tls")
            return x and abs(metric(25441, "pillion_operator_webhook_certificate_expiration_timestamp_seconds")
                             - cert_not_after(x)) <= 1
        check("/metrics reports the webhook certificate's expiry time", bool(wait(expiry_reported, 20 * T)),
              metric(25441, "pillion_operator_webhook_certificate_expiration_timestamp_seconds"))
        api.delete(f"/api/v1/namespaces/{SYS}/secrets/pillion-webhook-tls")
        healed = wait(lambda: secret(SYS, "pillion-webhook-tls"), 20 * T)
        check("a deleted webhook Secret is issued again", bool(healed) and key_matches(healed)
              and verify_server(tmp, healed).returncode == 0)
        if fake:
            # --webhook-cert-ttl 30s: renewed at 2/3 of its life, 20 s after it was issued.
            serial_w = cert_serial(healed) if healed else None
            renewed = wait(lambda: (lambda x: x if x and cert_serial(x) != serial_w else None)(
                secret(SYS, "pillion-webhook-tls")), 90)
            check("the webhook certificate is reissued when its renewal is due (2/3 of --webhook-cert-ttl)",
                  bool(renewed) and verify_server(tmp, renewed).returncode == 0 and key_matches(renewed)
                  and cert_not_after(renewed) > cert_not_after(healed))
            check("... and the caBundle, the same mesh bundle, is left as it is", ca_bundles() == [want_bundle, want_bundle])
        else:
            NOT_RUN.append("webhook certificate renewal (run against the test double only, with --webhook-cert-ttl 30s)")

        # --- a policy change rewrites only the ConfigMaps it affects ---
        def rv(ns, name):
            o = cm(ns, name)
            return o["metadata"]["resourceVersion"] if o else None

        before = {k: rv(*k) for k in ((SHOP, "pillion-w0"), (SHOP, "pillion-w1"), (SHOP, "pillion-f0"), (OTHER, "pillion-c0"))}
        TP = f"/apis/pillion.dev/v1alpha1/namespaces/{SHOP}/trafficpolicies"
        api.create(TP, {
            "apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": "web", "namespace": SHOP},
            "spec": {"targetRef": {"name": "web"}, "exportTo": ["."],
                     "authorization": {"rules": [{"name": "frontend", "from": {"identities": [spiffe(SHOP, "frontend")]}}]}}})
        changed = wait(lambda: rv(SHOP, "pillion-w0") != before[(SHOP, "pillion-w0")]
                       and rv(SHOP, "pillion-f0") != before[(SHOP, "pillion-f0")], 20 * T)
        check("a new TrafficPolicy rewrites the configs of the pods it applies to", bool(changed))
        time.sleep(1.0 * T)
        check("... and not those of pods it does not reach (exportTo: [.], another namespace)",
              rv(OTHER, "pillion-c0") == before[(OTHER, "pillion-c0")])
        check("... and refreshes those pods (config hash in their annotation)",
              bool(wait(lambda: refreshed(SHOP, ["web-0", "web-1", "frontend-0"]), 20 * T)), annotated(SHOP, "web-0"))
        w0 = json.loads(cm(SHOP, "pillion-w0")["data"]["proxy.json"])
        check("... the target's pods carry the authorization rule",
              any(r.get("name") == "frontend" for i in w0["inbound"] for r in i.get("authorization", {}).get("rules", [])))

        def cond(kind, ns, name, ctype):
            o = api.get(f"/apis/pillion.dev/v1alpha1/namespaces/{ns}/{kind}/{name}")
            for c in (o or {}).get("status", {}).get("conditions", []):
                if c["type"] == ctype:
                    return c
            return None

        acc = wait(lambda: cond("trafficpolicies", SHOP, "web", "Accepted"), 20 * T)
        check("status: Accepted=True with observedGeneration", acc and acc["status"] == "True"
              and acc.get("observedGeneration") == 1, acc)
        if fake:
            # The pods run nothing here: the double answers pods/proxy for them. First web-0's proxy
            # says it runs an old config, web-1's does not answer: Programmed stays False, naming them.
            api.req("POST", "/_fake/config", {"podAnswers": {
                f"{SHOP}/web-0:15420/status": {"body": {"ready": True, "config": {"hash": "sha256:" + "0" * 64}}},
                f"{SHOP}/web-1:15420/status": {"status": 503, "body": {"kind": "Status"}}}})
            pend = wait(lambda: (lambda c: c if c and c["status"] == "False" and "web-0" in c["message"]
                                 and "web-1" in c["message"] else None)(
                cond("trafficpolicies", SHOP, "web", "Programmed")), 20 * T)
            check("status: Programmed=False while a selected pod's proxy runs an older config or does not answer, naming them",
                  bool(pend) and pend["reason"] == "Pending", cond("trafficpolicies", SHOP, "web", "Programmed"))
            api.req("POST", "/_fake/config", {"podAnswers": {
                f"{SHOP}/frontend-0:15420/status": {"body": {"ready": True, "config": {
                    "hash": cm(SHOP, "pillion-f0")["metadata"]["annotations"]["pillion.dev/content-hash"]},
                    "mesh": {"hash": cm(SHOP, "pillion-mesh")["metadata"]["annotations"]["pillion.dev/mesh-hash"]}}}}})
            ps = subprocess.run([os.path.join(BIN, "pillionctl"), "status", "--kubeconfig", kc, "-n", SHOP],
                                capture_output=True, text=True, timeout=60)
            rows = {ln.split()[1]: ln.split()[2] for ln in ps.stdout.splitlines()[1:] if len(ln.split()) > 2}
            check("pillionctl status: STALE for a proxy on an older config, NOT READY for one that does not "
                  "answer, SYNCED for one on the current config and directory; exit 1",
                  ps.returncode == 1 and rows.get("web-0") == "STALE" and rows.get("web-1") == "NOT"
                  and rows.get("frontend-0") == "SYNCED", ps.stdout + ps.stderr)
            h0 = cm(SHOP, "pillion-w0")["metadata"]["annotations"]["pillion.dev/content-hash"]
            h1 = cm(SHOP, "pillion-w1")["metadata"]["annotations"]["pillion.dev/content-hash"]
            # web-1 runs a proxy of the previous release: no /status (404), its /config has the hash.
            api.req("POST", "/_fake/config", {"podAnswers": {
                f"{SHOP}/web-0:15420/status": {"body": {"ready": True, "config": {"hash": h0}}},
                f"{SHOP}/web-1:15420/status": {"status": 404, "body": "not found"},
                f"{SHOP}/web-1:15420/config": {"body": {"ready": True, "config": {"kind": "ProxyConfig", "hash": h1}}}},
                "podAutoStatus": True})
        prog = wait(lambda: (lambda c: c if c and c["status"] == "True" else None)(
            cond("trafficpolicies", SHOP, "web", "Programmed")), 20 * T)
        if fake:
            check("status: Programmed=True once every selected pod's proxy reports the current config (n/n pods; "
                  "an older proxy without /status through its /config)",
                  prog and prog["message"].split("/")[0] == prog["message"].split("/")[1].split()[0], prog)
        else:
            NOT_RUN.append("Programmed=True (needs running proxies; the suite's pods are unscheduled)")
        if fake:
            # From here on the pods' proxies apply what they are given at once.
            api.req("POST", "/_fake/config", {"podAnswers": None})

        # --- a pod whose proxy reads its namespace's outbound.json (--outbound, as injected) ---
        ob = pod(SHOP, "outb-0", "frontend", {"app": "outb"}, "ob0", "198.18.2.61")
        ob["spec"]["containers"].append({"name": "pillion-proxy", "image": "registry.invalid/proxy:1", "args": [
            "--config", "/etc/pillion/config/proxy.json", "--mesh", "/etc/pillion/mesh/mesh.json",
            "--outbound", "/etc/pillion/mesh/outbound.json"]})
        make_pod(ob)
        oc = wait(lambda: cm(SHOP, "pillion-ob0"), 20 * T)
        ocfg = json.loads(oc["data"]["proxy.json"]) if oc else {}
        fcfg = json.loads(cm(SHOP, "pillion-f0")["data"]["proxy.json"])
        check("a pod whose proxy takes --outbound gets a config without the client-side policies",
              bool(oc) and "outbound" not in ocfg and ocfg.get("kind") == "ProxyConfig", ocfg.keys())
        m = cm(SHOP, "pillion-mesh")
        ann = m["metadata"]["annotations"]
        out = json.loads(m["data"]["outbound.json"])
        check("... they are in pillion-mesh's outbound.json, the same as in the config of a pod without --outbound",
              out.get("kind") == "OutboundPolicies" and out.get("outbound") == fcfg["outbound"]
              and any(o_["policy"] == f"{SHOP}/web" for o_ in out["outbound"]))
        both = "sha256:" + hashlib.sha256((ann["pillion.dev/mesh-hash"] + "+" + ann["pillion.dev/outbound-hash"]).encode()).hexdigest()
        check("... pillion-mesh's content hash covers both files; mesh-hash and outbound-hash name each",
              ann["pillion.dev/content-hash"] == both and ann["pillion.dev/outbound-hash"] == out["hash"]
              and ann["pillion.dev/mesh-hash"] == json.loads(m["data"]["mesh.json"])["hash"], ann)
        n_before = int(prog["message"].split("/")[0]) if prog else -1
        prog2 = wait(lambda: (lambda c: c if c and c["status"] == "True" and c["message"].startswith(f"{n_before + 1}/") else None)(
            cond("trafficpolicies", SHOP, "web", "Programmed")), 20 * T)
        check("Programmed counts the new pod as a client of web (through the outbound.json its proxy reports)",
              bool(prog2), cond("trafficpolicies", SHOP, "web", "Programmed"))
        # A client-side change: pillion-mesh rewritten once for the namespace, the pod refreshed, its own
        # ConfigMap left alone.
        rv_ob = rv(SHOP, "pillion-ob0")
        oh0 = ann["pillion.dev/outbound-hash"]
        api.merge_patch(TP + "/web", {"spec": {"routes": [{"name": "slow", "timeout": "7s"}]}})
        got = wait(lambda: cm(SHOP, "pillion-mesh")["metadata"]["annotations"].get("pillion.dev/outbound-hash") != oh0
                   and "7000" in cm(SHOP, "pillion-mesh")["data"]["outbound.json"], 20 * T)
        check("a client-side policy change rewrites outbound.json in pillion-mesh", bool(got))
        check("... and refreshes the pod (its annotation names the new pillion-mesh); its ConfigMap is not rewritten",
              bool(wait(lambda: refreshed(SHOP, ["outb-0"]), 20 * T)) and rv(SHOP, "pillion-ob0") == rv_ob,
              (annotated(SHOP, "outb-0"), projected(SHOP, "outb-0")))
        if fake:
            prog3 = wait(lambda: (lambda c: c if c and c["status"] == "True" and c.get("observedGeneration") == 2 else None)(
                cond("trafficpolicies", SHOP, "web", "Programmed")), 20 * T)
            check("... Programmed again once its proxy reports the new outbound.json", bool(prog3),
                  cond("trafficpolicies", SHOP, "web", "Programmed"))
        api.delete(f"/api/v1/namespaces/{SHOP}/pods/outb-0")
        wait(lambda: cm(SHOP, "pillion-ob0") is None, 20 * T)
        api.create(TP, invalid_policy(SHOP))
        acc = wait(lambda: cond("trafficpolicies", SHOP, "zero", "Accepted"), 20 * T)
        check("an invalid policy (passes the schema, fails the operator's rules) gets Accepted=False with the field path",
              acc and acc["status"] == "False" and "spec.routes[0].backends" in acc["message"], acc)
        rr = cond("trafficpolicies", SHOP, "web", "ResolvedRefs")
        check("ResolvedRefs=True on a policy whose Services exist", rr and rr["status"] == "True"
              and rr["reason"] == "ResolvedRefs", rr)
        # A typo'd target: accepted (the Service may come later), but ResolvedRefs says what is missing.
        api.create(TP, {"apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy",
                        "metadata": {"name": "typo", "namespace": SHOP}, "spec": {"targetRef": {"name": "wbe"}}})
        rr = wait(lambda: (lambda c: c if c and c["status"] == "False" else None)(
            cond("trafficpolicies", SHOP, "typo", "ResolvedRefs")), 20 * T)
        check("a policy whose target Service does not exist: ResolvedRefs=False, BackendNotFound, naming it",
              rr and rr["reason"] == "BackendNotFound" and f"Service {SHOP}/wbe not found" in rr["message"], rr)
        api.create(f"/api/v1/namespaces/{SHOP}/services", {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "wbe", "namespace": SHOP},
                   "spec": {"selector": {"app": "nothing"}, "ports": [{"name": "http", "port": 80}]}})
        rr = wait(lambda: (lambda c: c if c and c["status"] == "True" else None)(
            cond("trafficpolicies", SHOP, "typo", "ResolvedRefs")), 20 * T)
        check("... True once that Service is created", bool(rr), cond("trafficpolicies", SHOP, "typo", "ResolvedRefs"))
        api.delete(f"{TP}/typo")
        api.delete(f"/api/v1/namespaces/{SHOP}/services/wbe")

        def events(ns):
            return api.get(f"/api/v1/namespaces/{ns}/events")["items"]

        evs = wait(lambda: [e for e in events(SHOP) if e.get("reason") == "Invalid" and e["involvedObject"]["name"] == "zero"], 20 * T)
        check("... and a Warning Event naming the error", bool(evs) and "spec.routes[0].backends" in evs[0]["message"], evs)
        evs = [e for e in events(SHOP) if e.get("reason") == "CertificateIssued"]
        check("issuing a certificate posts a Normal Event on the pod", any(e["involvedObject"]["kind"] == "Pod" for e in evs))

        # --- healing and garbage collection ---
        api.delete(f"/api/v1/namespaces/{SHOP}/configmaps/pillion-w1")
        check("a deleted ConfigMap is recreated", wait(lambda: cm(SHOP, "pillion-w1"), 20 * T) is not None)
        api.delete(f"/api/v1/namespaces/{SHOP}/pods/web-1")
        check("a deleted pod's ConfigMap and Secret go with it",
              wait(lambda: cm(SHOP, "pillion-w1") is None and secret(SHOP, "pillion-w1-tls") is None, 30 * T) is not None)
        check("... and the mesh directory drops it", bool(wait(lambda: len(mesh_pods(SHOP) or []) == 3, 20 * T)))

        # --- certificate rotation before expiry ---
        api.create(f"/apis/pillion.dev/v1alpha1/namespaces/{OTHER}/meshidentities", {
            "apiVersion": "pillion.dev/v1alpha1", "kind": "MeshIdentity", "metadata": {"name": "short", "namespace": OTHER},
            "spec": {"certificate": {"ttl": "10m", "renewBefore": "9m57s"}}})
        first = wait(lambda: (lambda s: s and cert_ttl(s) <= 600 and s)(secret(OTHER, "pillion-c0-tls")), 20 * T)
        serial1 = cert_serial(first) if first else None
        rotated = wait(lambda: (lambda s: s if s and cert_serial(s) != serial1 else None)(secret(OTHER, "pillion-c0-tls")), 20 * T)
        check("a certificate inside its renewBefore window is reissued", bool(first) and bool(rotated))
        check("... with a key that matches it", bool(rotated) and key_matches(rotated))

        # --- API server faults: cut watches, 410 bursts, a restart; the state converges ---
        if fake:
            api.req("POST", "/_fake/faults", {"cutWatches": {"midLine": True}, "expireWatches": 3})
            time.sleep(0.5)
            make_pod(pod(SHOP, "web-2", "web", {"app": "web"}, "w2", "198.18.2.4"))
            check("after watches were cut mid-line and answered 410, a new pod still gets its objects",
                  wait(lambda: cm(SHOP, "pillion-w2") and secret(SHOP, "pillion-w2-tls"), 30 * T) is not None)
            api.req("POST", "/_fake/faults", {"requests": [{"prefix": f"/api/v1/namespaces/{SHOP}/configmaps", "method": "PATCH",
                                                           "status": 500, "count": 2}]})
            api.merge_patch(f"/api/v1/namespaces/{SHOP}/pods/web-2", {"metadata": {"labels": {"app": "web", "v": "2"}}})
            api.delete(f"/api/v1/namespaces/{SHOP}/configmaps/pillion-w2")
            check("a write that fails with 500 is retried with backoff until it lands",
                  wait(lambda: cm(SHOP, "pillion-w2"), 30 * T) is not None)

            # API Priority and Fairness pushing back: 429s with Retry-After are waited out, not failures.
            api.req("POST", "/_fake/faults", {"requests": [{"path": f"/api/v1/namespaces/{SHOP}/configmaps", "prefix": True,
                                                           "method": "PATCH", "status": 429, "retryAfter": 1, "count": 3}]})
            make_pod(pod(SHOP, "web-4", "web", {"app": "web"}, "w4", "198.18.2.6"))
            check("a burst of 429s with Retry-After delays a write but it lands",
                  wait(lambda: cm(SHOP, "pillion-w4"), 30 * T) is not None)
            check("... and /metrics counts the 429 answers",
                  metric(25441, 'pillion_operator_api_requests_total{verb="PATCH",code="429"}') >= 3)

            # The API server restarts: every connection drops, it refuses connections for 2 s, and
            # its watch history is gone (a resume gets 410), as after an etcd compaction.
            # (Summed over resources: a watch already at the newest version when the history is
            # dropped resumes without a 410, as on a real API server; the pods' may be that one.)
            def relist_count():
                return sum(float(ln.rsplit(" ", 1)[1]) for ln in get_url("http://127.0.0.1:25441/metrics")[1].splitlines()
                           if ln.startswith("pillion_operator_watch_total{") and 'event="relist"' in ln)
            relists = relist_count()
            api.req("POST", "/_fake/restart", {"downSeconds": 2, "compact": True})
            time.sleep(2.5)
            make_pod(pod(SHOP, "web-3", "web", {"app": "web"}, "w3", "198.18.2.5"))
            code, _ = api.merge_patch(f"{TP}/web", {"spec": {"routes": [{"name": "all", "timeout": "3s",
                                                                             "backends": [{"name": "web"}]}]}})
            check("after an API server restart, a new pod gets its objects",
                  wait(lambda: cm(SHOP, "pillion-w3") and secret(SHOP, "pillion-w3-tls"), 40 * T) is not None)
            check("... and a policy change made after it reaches the target's pods",
                  wait(lambda: '"timeoutMs":3000' in json.dumps(
                      json.loads(cm(SHOP, "pillion-f0")["data"]["proxy.json"]), separators=(",", ":")), 30 * T) is not None,
                  (code, cm(SHOP, "pillion-f0")["data"]["proxy.json"]))
            check("... after a relist (the watch history was compacted)", relist_count() > relists)
        else:
            NOT_RUN.append("API server faults (need the test double's /_fake/ API)")

        # --- the operator killed mid-reconcile and restarted: converges, nothing lost or duplicated ---
        serials = {n: cert_serial(secret(SHOP, f"pillion-{n}-tls")) for n in ("w0", "f0")}
        batch = [f"b{i}" for i in range(24)]
        PASS = 6  # the batch's Secret writes that land before the kill
        secret_writes = f"/api/v1/namespaces/{SHOP}/secrets/"
        if fake:
            # On the double the kill comes mid-way by construction, not by relative speed: the first
            # PASS Secret writes in the namespace go through (a rule that changes nothing), every
            # later one is held for 120 s and then fails, so it never lands. Killed once a write
            # is held, the operator is mid-reconcile with exactly PASS of the batch's Secrets written.
            api.req("POST", "/_fake/faults", {"requests": [
                {"path": secret_writes, "prefix": True, "method": "PATCH", "status": 200, "count": PASS},
                {"path": secret_writes, "prefix": True, "method": "PATCH", "status": 503, "delaySeconds": 120,
                 "count": 100000}]})

            def holding():
                rules = api.req("GET", "/_fake/faults")[1]["rules"]
                return len(rules) == 1 and rules[0]["count"] < 100000
        for i, b in enumerate(batch):
            make_pod(pod(SHOP, f"batch-{i}", "web", {"app": "batch"}, b, f"198.18.4.{i + 2}"))
        if fake:
            midway = wait(holding, 30 * T)
            # The writes let through have landed (each answered before the held one was asked).
            wait(lambda: sum(1 for b in batch if secret(SHOP, f"pillion-{b}-tls")) >= PASS, 30 * T)
        else:
            midway = wait(lambda: any(cm(SHOP, f"pillion-{b}") for b in batch), 30 * T)
        op.send_signal(signal.SIGKILL)
        op.wait(timeout=30)
        if fake:
            api.req("POST", "/_fake/faults", {"clear": True})
        done_before = [b for b in batch if secret(SHOP, f"pillion-{b}-tls")]
        print(f"note: operator killed with {len(done_before)} of {len(batch)} new pods' Secrets written")
        serials.update({b: cert_serial(secret(SHOP, f"pillion-{b}-tls")) for b in done_before})
        op = start_operator("a")  # the same replica restarted: it still holds the Lease
        all_done = wait(lambda: all(cm(SHOP, f"pillion-{b}") and secret(SHOP, f"pillion-{b}-tls") for b in batch), 60 * T)
        check("operator killed mid-reconcile and restarted: every pod gets its ConfigMap and Secret", bool(all_done))
        if fake:
            check("... the kill really came mid-way (a Secret write held, the first ones written)",
                  bool(midway) and 0 < len(done_before) < len(batch), len(done_before))
        else:
            NOT_RUN.append("a kill mid-way by construction (needs the double's fault injection)")
        time.sleep(1.0 * T)
        kept = {n: cert_serial(secret(SHOP, f"pillion-{n}-tls")) for n in serials}
        check("... certificates written before the kill are kept, not reissued", kept == serials,
              [n for n in serials if kept[n] != serials[n]])
        check("... every key matches its certificate", all(key_matches(secret(SHOP, f"pillion-{b}-tls")) for b in batch))
        managed = [o for o in api.get(f"/api/v1/namespaces/{SHOP}/configmaps")["items"]
                   if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "pillion-operator"]
        ids = [p["metadata"]["annotations"]["pillion.dev/id"] for p in api.get(f"/api/v1/namespaces/{SHOP}/pods")["items"]]
        check("... exactly one ConfigMap per pod plus the mesh directory, no strays",
              sorted(o["metadata"]["name"] for o in managed) == sorted(["pillion-mesh"] + [f"pillion-{i}" for i in ids]),
              sorted(o["metadata"]["name"] for o in managed))
        for i in range(len(batch)):
            api.delete(f"/api/v1/namespaces/{SHOP}/pods/batch-{i}")
        check("... and the batch's objects go when its pods are deleted",
              wait(lambda: not any(cm(SHOP, f"pillion-{b}") or secret(SHOP, f"pillion-{b}-tls") for b in batch), 30 * T) is not None)

        # --- a second replica waits with a warm cache; the leader killed, it takes over, rewriting nothing ---
        time.sleep(1.5 * T)
        standby = start_operator("b", 25442)
        # Ready as a standby once its caches are warm; until then it answers nothing or 503.
        wait(lambda: (lambda r: r[0] == 200 and "standby" in r[1])(get_url("http://127.0.0.1:25442/readyz")), 60 * T)
        code, body = get_url("http://127.0.0.1:25442/readyz")
        m2 = wait(lambda: (lambda t: t if "pillion_operator_leader " in t else None)(
            get_url("http://127.0.0.1:25442/metrics")[1]), 30 * T) or ""
        check("a second replica does not lead or write while the first holds the lease",
              "pillion_operator_leader 0" in m2 and 'pillion_operator_writes_total{kind="configmap"} 0' in m2,
              [l for l in m2.splitlines() if "leader " in l])
        check("... yet is Ready with warm caches (so a rollout of 2 replicas completes)",
              code == 200 and "standby" in body, (code, body))

        def managed_rvs():
            return {(o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                    for o in api.get(f"/api/v1/namespaces/{SHOP}/configmaps")["items"]
                    if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "pillion-operator"}

        snapshot = managed_rvs()
        op.send_signal(signal.SIGKILL)
        op.wait(timeout=10)
        op = standby
        ready = wait(lambda: "ready: leader" in get_url("http://127.0.0.1:25442/readyz")[1], 40 * T)
        check("when the leader dies, the standby takes the lease once it expires", bool(ready))
        time.sleep(3)
        after = managed_rvs()
        check("... and rewrites no unchanged ConfigMap (content hashes)", snapshot == after,
              {k: (snapshot.get(k), after.get(k)) for k in set(snapshot) | set(after) if snapshot.get(k) != after.get(k)})
        metrics = get_url("http://127.0.0.1:25442/metrics")[1]
        check("the new leader is still running", op.poll() is None, f"exit code {op.poll()}")
        check("/metrics reports reconciles, watch activity and API requests by verb and code",
              "pillion_operator_reconciles_total{result=\"ok\"}" in metrics and "pillion_operator_watch_total" in metrics
              and 'pillion_operator_api_requests_total{verb="LIST",code="200"}' in metrics, metrics[-600:])
        op.send_signal(signal.SIGTERM)
        check("SIGTERM: the operator exits 0", op.wait(timeout=60) == 0)
        lease = api.get(f"/apis/coordination.k8s.io/v1/namespaces/{SYS}/leases/pillion-operator") or {}
        check("... and hands the Lease back, so the next leader need not wait for it to expire",
              lease.get("spec", {}).get("holderIdentity") == "", lease.get("spec"))

        if fake:
            # Every request the operator made is one the install's RBAC grants.
            reqs = os.path.join(tmp, "requests.json")
            json.dump(api.get("/_fake/requests"), open(reqs, "w"))
            r = subprocess.run([PY, os.path.join(SRC, "tests/e2e/rbac_check.py"), os.path.join(SRC, "manifests"),
                                "pillion-system/pillion-operator", reqs, "pillion-operator"], capture_output=True, text=True)
            check("the manifests' RBAC grants every request the operator made", r.returncode == 0,
                  "\n" + "\n".join(l for l in r.stdout.splitlines() if "DENIED" in l) + r.stderr)
        else:
            NOT_RUN.append("RBAC coverage (needs the test double's request log)")
    except BaseException:
        FAILS.append("exception")
        raise
    finally:
        stop_all(procs)
        if real and api and nonlocal_mwc[0]:
            api.delete(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{nonlocal_mwc[0]}")
        if real and api:
            for ns in (SHOP, OTHER) + ((SYS,) if (SYS or "").startswith("pe2e-") else ()):
                api.delete(f"/api/v1/namespaces/{ns}")
        remove_workdir(tmp, show_logs=bool(FAILS))
    for n in NOT_RUN:
        print(f"not run: {n}")
    print(f"{CHECKS} checks, {len(FAILS)} failed, {len(NOT_RUN)} scenario(s) not run")
    sys.exit(1 if FAILS else 0)


def get_url(u):
    try:
        with urllib.request.urlopen(u, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


def invalid_policy(ns):
    return {"apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": "zero", "namespace": ns},
            "spec": {"targetRef": {"name": "web"}, "routes": [{"name": "all", "backends": [{"name": "web", "weight": 0}]}]}}


def key_matches(s):
    def pub(cmd, data):
        return subprocess.run(["openssl"] + cmd, input=data, capture_output=True).stdout
    crt, key = base64.b64decode(s["data"]["tls.crt"]), base64.b64decode(s["data"]["tls.key"])
    a = pub(["x509", "-noout", "-pubkey"], crt)
    return bool(a) and a == pub(["pkey", "-pubout"], key)


def webhook_configuration(name, sys_ns, run):
    """A configuration like the install's, that matches no namespace (a label none has) and ignores failures."""
    def hook(hname, bundle):
        cc = {"service": {"name": "pillion-webhook", "namespace": sys_ns, "path": "/mutate", "port": 443}}
        if bundle is not None:
            cc["caBundle"] = bundle
        return {"name": hname, "clientConfig": cc,
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                           "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"pillion.dev/e2e-no-such-label": run}},
                "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 5}
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [hook("inject.pillion.dev", None),
                         hook("inject2.pillion.dev", base64.b64encode(b"not the mesh bundle").decode())]}


def verify_server(tmp, s):
    """openssl verify -purpose sslserver of the Secret's tls.crt against its ca.crt."""
    ca, crt = os.path.join(tmp, "wh-ca.pem"), os.path.join(tmp, "wh.pem")
    open(ca, "wb").write(base64.b64decode(s["data"]["ca.crt"]))
    open(crt, "wb").write(cert_of(s))
    return subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-CAfile", ca, crt], capture_output=True)


def cert_not_after(s):
    import calendar
    import datetime
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=cert_of(s), capture_output=True).stdout.decode()
    t = datetime.datetime.strptime(" ".join(out.strip().split("=", 1)[1].split()), "%b %d %H:%M:%S %Y GMT")
    return calendar.timegm(t.timetuple())


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


if __name__ == "__main__":
    main()
