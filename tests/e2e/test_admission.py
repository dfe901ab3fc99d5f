#!/usr/bin/python3
"""The whole control plane end to end: the API test double calls the real pillion-webhook (with the
MutatingWebhookConfiguration of manifests/, the serving certificate the real pillion-operator
issued and the caBundle it wrote), pods are injected at creation, the operator writes their objects,
policy applied as a GitOps tool does reaches them, and the webhook down behaves as failurePolicy says.

usage: test_admission.py BIN_DIR SOURCE_DIR

Needs the double (its /_fake/config points the webhook Service at loopback); on a real cluster the
webhook runs as manifests/ deploy it, so this suite is for the double only and says so.
Every wait is bounded; every process started is stopped by its PID.
"""
import base64
import copy
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubeapi import Api  # noqa: E402
from harness import remove_workdir, start_fake_api, stop_all, wait  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
FAILS, CHECKS = [], [0]


def check(name, ok, detail=""):
    CHECKS[0] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok or not detail else f": {detail}"), flush=True)
    if not ok:
        FAILS.append(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manifest(kind, name):
    for d in yaml.safe_load_all(open(os.path.join(SRC, "manifests/base/webhook.yaml"))):
        if d and d.get("kind") == kind and d["metadata"]["name"] == name:
            return d
    raise SystemExit(f"manifests/base/webhook.yaml has no {kind} {name}")


def main():
    if "KUBECONFIG" in os.environ:
        print("not run: this suite drives the test double (on a cluster, the webhook runs as manifests/ deploy it)")
        print("0 checks, 0 failed, 1 scenario(s) not run")
        sys.exit(0)
    tmp = tempfile.mkdtemp(prefix="pillion-adm-e2e.")
    procs = []
    try:
        kc = start_fake_api(SRC, tmp, procs)
        api = Api(kc, tmp)
        SYS, APP, PLAIN = "pillion-system", f"adm-{secrets.token_hex(2)}", "plain"
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYS}})
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": APP, "labels": {"pillion.dev/inject": "enabled"}}})
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLAIN}})
        MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
        api.create(MWC, manifest("MutatingWebhookConfiguration", "pillion-webhook"))

        olog = open(os.path.join(tmp, "operator.log"), "w")
        op = subprocess.Popen([os.path.join(BIN, "pillion-operator"), "--kubeconfig", kc, "--namespace", SYS,
                               "--metrics-port", "25451", "--metrics-address", "127.0.0.1", "--identity", "adm"],
                              stdout=olog, stderr=subprocess.STDOUT)
        procs.append(op)
        # The kubelet's part: the Secret the operator wrote, projected as files.
        s = wait(lambda: api.get(f"/api/v1/namespaces/{SYS}/secrets/pillion-webhook-tls"), 90)
        check("the operator issues the webhook's serving certificate", s is not None)
        wdir = os.path.join(tmp, "webhook")
        os.makedirs(wdir)
        for k in ("tls.crt", "tls.key"):
            open(os.path.join(wdir, k), "wb").write(base64.b64decode(s["data"][k]))
        bundle = wait(lambda: all(w["clientConfig"].get("caBundle") for w in api.get(f"{MWC}/pillion-webhook")["webhooks"]), 90)
        check("... and fills the install's MutatingWebhookConfiguration caBundle", bool(bundle))

        port = free_port()
        wlog = open(os.path.join(tmp, "webhook.log"), "w")

        def start_webhook():
            w = subprocess.Popen([os.path.join(BIN, "pillion-webhook"), "--listen-address", "127.0.0.1", "--port", str(port),
                                  "--tls-cert", os.path.join(wdir, "tls.crt"), "--tls-key", os.path.join(wdir, "tls.key"),
                                  "--proxy-image", "pillion/proxy:e2e", "--init-image", "pillion/init:e2e"],
                                 stdout=wlog, stderr=subprocess.STDOUT)
            procs.append(w)
            return w

        wh = start_webhook()
        # The pods run nothing: the double answers their proxies' GET /status as proxies that apply
        # their ConfigMap at once (Programmed counts proxies).
        api.req("POST", "/_fake/config", {"webhookURLOverrides": {f"{SYS}/pillion-webhook": f"https://127.0.0.1:{port}"},
                                          "podAutoStatus": True})

        def ready():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        check("pillion-webhook serves with the operator's certificate", bool(wait(ready, 90)))
        for ns in (APP, PLAIN):
            api.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                                   "metadata": {"name": "web", "namespace": ns}})
        api.create(f"/api/v1/namespaces/{APP}/services", {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web", "namespace": APP},
                   "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})

        def template(labels, annotations=None):
            return {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": "web-", "labels": labels, "annotations": annotations or {}},
                    "spec": {"serviceAccountName": "web", "nodeSelector": {"pillion.dev/e2e": "no-such-node"},
                             "containers": [{"name": "app", "image": "registry.invalid/web:1",
                                             "ports": [{"name": "http", "containerPort": 8080}]}]}}

        # --- a Deployment-like flow: pods from a template with generateName ---
        made = []
        for i in range(3):
            code, p = api.req("POST", f"/api/v1/namespaces/{APP}/pods", template({"app": "web"}))
            made.append(p if code in (200, 201) else None)
        names = [c["name"] for c in (made[0] or {}).get("spec", {}).get("containers", [])]
        inits = [c["name"] for c in (made[0] or {}).get("spec", {}).get("initContainers", [])]
        check("a pod created in a labelled namespace comes back injected (init container, proxy, volumes)",
              all(made) and "pillion-init" in inits and ("pillion-proxy" in names or "pillion-proxy" in inits)
              and {"pillion-config", "pillion-mesh", "pillion-tls"} <= {v["name"] for v in made[0]["spec"].get("volumes", [])},
              (names, inits))
        ids = [p["metadata"]["annotations"].get("pillion.dev/id", "") for p in made if p]
        check("... each with its own 128-bit pillion.dev/id", len(set(ids)) == 3 and all(len(i) == 32 for i in ids), ids)
        proxy = next((c for c in made[0]["spec"].get("containers", []) + made[0]["spec"].get("initContainers", [])
                      if c["name"] == "pillion-proxy"), {}) if made[0] else {}
        check("... the proxy runs as 1407, non-root, read-only, without capabilities",
              proxy.get("securityContext", {}).get("runAsUser") == 1407
              and proxy["securityContext"].get("readOnlyRootFilesystem") is True
              and proxy["securityContext"].get("capabilities", {}).get("drop") == ["ALL"], proxy.get("securityContext"))
        for p in made:
            if p:
                ip = "198.18.7.%d" % (10 + made.index(p))
                api.merge_patch(f"/api/v1/namespaces/{APP}/pods/{p['metadata']['name']}/status",
                                {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})

        def cm(ns, name):
            return api.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")

        got = wait(lambda: all(cm(APP, f"pillion-{i}") and api.get(f"/api/v1/namespaces/{APP}/secrets/pillion-{i}-tls")
                               for i in ids), 90)
        check("the operator writes each injected pod's ConfigMap and Secret, named by the id the webhook gave",
              bool(got))
        code, p = api.req("POST", f"/api/v1/namespaces/{PLAIN}/pods", template({"app": "web"}))
        check("a pod in a namespace without the label is not sent to the webhook",
              code == 201 and "pillion.dev/id" not in p["metadata"].get("annotations", {}), (code, p.get("metadata")))
        code, p = api.req("POST", f"/api/v1/namespaces/{APP}/pods",
                          template({"app": "batch"}, {"pillion.dev/inject": "disabled"}))
        check("a pod annotated pillion.dev/inject: disabled is left alone",
              code == 201 and not any(c["name"] == "pillion-proxy" for c in p["spec"]["containers"]), code)

        # --- policy in git: applied, changed, re-applied ---
        TP = f"/apis/pillion.dev/v1alpha1/namespaces/{APP}/trafficpolicies"
        pol = {"apiVersion": "pillion.dev/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": "web", "namespace": APP},
               "spec": {"targetRef": {"name": "web"},
                        "authorization": {"rules": [{"name": "same-ns", "from": {"namespaces": [APP]}}]}}}

        def apply(obj):
            return api.apply(TP, obj, "argocd")[0]

        before = cm(APP, f"pillion-{ids[0]}")["metadata"]["annotations"]["pillion.dev/content-hash"]
        check("a TrafficPolicy applied with server-side apply (as Argo CD does) is accepted", apply(pol) in (200, 201))

        def programmed():
            o = api.get(f"{TP}/web") or {}
            c = [x for x in o.get("status", {}).get("conditions", []) if x["type"] == "Programmed"]
            return c and c[0]["status"] == "True" and o["status"].get("observedGeneration") == o["metadata"]["generation"] and c[0]
        c1 = wait(programmed, 90)
        after = cm(APP, f"pillion-{ids[0]}")["metadata"]["annotations"]["pillion.dev/content-hash"]
        check("... reaches the pods' ConfigMaps and the policy becomes Programmed (3/3 pods)",
              bool(c1) and c1["message"].startswith("3/3 pods") and after != before, c1)
        pol2 = copy.deepcopy(pol)
        pol2["spec"]["authorization"]["rules"][0]["name"] = "same-namespace"
        apply(pol2)
        c2 = wait(lambda: programmed() and cm(APP, f"pillion-{ids[0]}")["metadata"]["annotations"][
            "pillion.dev/content-hash"] != after and "same-namespace" in cm(APP, f"pillion-{ids[0]}")["data"]["proxy.json"], 90)
        check("a changed and re-applied policy reaches them again", bool(c2))
        rv = api.get(f"{TP}/web")["metadata"]["resourceVersion"]
        apply(pol2)
        check("re-applying the same policy changes nothing", api.get(f"{TP}/web")["metadata"]["resourceVersion"] == rv)

        # --- pods deleted: their objects go ---
        api.delete(f"/api/v1/namespaces/{APP}/pods/{made[2]['metadata']['name']}")
        check("a deleted pod's ConfigMap and Secret go with it",
              wait(lambda: cm(APP, f"pillion-{ids[2]}") is None
                   and api.get(f"/api/v1/namespaces/{APP}/secrets/pillion-{ids[2]}-tls") is None, 90) is not None)

        # --- the webhook down: failurePolicy Fail holds pods back; system namespaces are unaffected ---
        wh.send_signal(signal.SIGTERM)
        check("the webhook exits 0 on SIGTERM", wh.wait(timeout=60) == 0)
        code, out = api.req("POST", f"/api/v1/namespaces/{APP}/pods", template({"app": "web"}))
        check("with the webhook down, a pod in a labelled namespace is refused (failurePolicy: Fail), not created unmeshed",
              code >= 400 and "failed calling webhook" in (out or {}).get("message", ""), (code, (out or {}).get("message")))
        code, _ = api.req("POST", f"/api/v1/namespaces/{SYS}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "sys-"},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/c:1"}]}})
        check("... while pillion-system (excluded by the namespaceSelector) still creates pods", code == 201, code)
        wh = start_webhook()
        check("with the webhook back, the same pod is created injected", bool(wait(lambda: (lambda r: r[0] == 201 and r[1])(
            api.req("POST", f"/api/v1/namespaces/{APP}/pods", template({"app": "web"}))), 90)))

        # --- pillionctl check against the running install ---
        def pctl_check():
            r = subprocess.run([os.path.join(BIN, "pillionctl"), "check", "--kubeconfig", kc, "--namespace", SYS],
                               capture_output=True, text=True, timeout=60)
            return r.returncode, r.stdout + r.stderr

        rc, out = pctl_check()
        lines = out.splitlines()
        check("pillionctl check on a healthy install exits 0", rc == 0, out)
        check("... lists both CRDs as served",
              all(any(ln.startswith("ok   CRD " + c) for ln in lines)
                  for c in ("trafficpolicies.pillion.dev", "meshidentities.pillion.dev")), out)
        check("... finds the caBundle verifies the webhook's serving certificate",
              any(ln.startswith("ok   webhook ") and "caBundle verifies" in ln for ln in lines), out)
        check("... says it cannot verify the Deployments (the double serves no apps/v1) instead of failing",
              any(ln.startswith("warn deployments") for ln in lines), out)
        # A pod made before its namespace was labelled never met the webhook: check must name it.
        LATE = f"late-{secrets.token_hex(2)}"
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LATE}})
        api.create(f"/api/v1/namespaces/{LATE}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                                 "metadata": {"name": "web", "namespace": LATE}})
        code, p = api.req("POST", f"/api/v1/namespaces/{LATE}/pods", template({"app": "web"}))
        late = p["metadata"]["name"] if code == 201 else "?"
        api.merge_patch(f"/api/v1/namespaces/{LATE}", {"metadata": {"labels": {"pillion.dev/inject": "enabled"}}})
        rc, out = pctl_check()
        check("pillionctl check exits 1 and names a pod of a labelled namespace that has no proxy",
              code == 201 and rc == 1 and any(ln.startswith("FAIL pod " + f"{LATE}/{late}") for ln in out.splitlines()),
              (code, rc, out))
        api.delete(f"/api/v1/namespaces/{LATE}/pods/{late}")
        # An injected pod whose identity Secret is gone (older than the 60 s grace: fail; younger: warn).
        # The operator would re-issue it at once, so it is stopped first.
        op.send_signal(signal.SIGTERM)
        op.wait(timeout=60)
        gone = f"pillion-{ids[0]}-tls"
        api.delete(f"/api/v1/namespaces/{APP}/secrets/{gone}")
        rc, out = pctl_check()
        flagged = [ln for ln in out.splitlines() if gone in ln]
        check("pillionctl check reports an injected pod whose Secret is missing",
              flagged and (flagged[0].startswith("FAIL") and rc == 1 or flagged[0].startswith("warn")), (rc, out))
    except BaseException:
        FAILS.append("exception")
        raise
    finally:
        stop_all(procs, timeout=15)
        remove_workdir(tmp, show_logs=bool(FAILS))
    print(f"{CHECKS[0]} checks, {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
