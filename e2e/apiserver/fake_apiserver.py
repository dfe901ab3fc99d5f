#!/usr/bin/python3
"""fake_apiserver: a test double of the Kubernetes API server (behaving like kube-apiserver 1.26
for the operations Pillion's operator and webhook use), for CI.  It is NOT a Kubernetes: there
is no scheduler, kubelet, or etcd.  See e2e/README.md.

    python3 e2e/apiserver/fake_apiserver.py --port 18080 --token secret --crds crds/
"""
import argparse
import glob
import json
import os
import signal
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakeapi.admission import Admission            # noqa: E402
from fakeapi.api import Api, Request              # noqa: E402
from fakeapi.errors import ApiError               # noqa: E402
from fakeapi.server import Server, State          # noqa: E402
from fakeapi.store import Store                   # noqa: E402

try:
    import yaml
except ImportError:
    yaml = None


def log(msg):
    sys.stderr.write("fake-apiserver: %s\n" % msg)
    sys.stderr.flush()


def parse_overrides(values):
    out = {}
    for v in values or []:
        if "=" in v and not v.startswith("http"):
            k, url = v.split("=", 1)
            out[k] = url
        else:
            out["*"] = v
    return out


def bootstrap(api, store):
    """What a fresh cluster has: the four system namespaces and the kubernetes Service."""
    ns_rt = store.types[("", "namespaces")]
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        api.create(Request(ns_rt, "v1", None, user_agent="kube-apiserver"),
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    svc_rt = store.types[("", "services")]
    api.create(Request(svc_rt, "v1", "default", user_agent="kube-apiserver"), {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                      "targetPort": 6443}]}})


def load_crds(api, store, paths):
    crd_rt = store.types[("apiextensions.k8s.io", "customresourcedefinitions")]
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(glob.glob(os.path.join(p, "*.yaml")) + glob.glob(os.path.join(p, "*.yml"))
                            + glob.glob(os.path.join(p, "*.json")))
        else:
            files.append(p)
    for f in files:
        with open(f) as fh:
            text = fh.read()
        docs = list(yaml.safe_load_all(text)) if yaml else [json.loads(text)]
        for d in docs:
            if not d or d.get("kind") != "CustomResourceDefinition":
                continue
            try:
                api.create(Request(crd_rt, "v1", None, user_agent="kubectl"), d)
                log("loaded CRD %s from %s" % (d["metadata"]["name"], f))
            except ApiError as e:
                if e.code != 409:
                    raise


def write_kubeconfig(path, url, token, ca_file):
    import base64
    cluster = {"server": url}
    if ca_file:
        with open(ca_file, "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    user = {"token": token} if token else {}
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
           "clusters": [{"name": "fake", "cluster": cluster}],
           "users": [{"name": "fake", "user": user}],
           "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}]}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=1)   # JSON is YAML: kubectl and libyaml read it
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Test double of the Kubernetes API server (1.26 semantics) for CI.")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=None, help="plain HTTP port (0 = pick one)")
    ap.add_argument("--tls-port", type=int, default=None, help="HTTPS port (0 = pick one); needs --tls-cert/--tls-key")
    ap.add_argument("--tls-cert", help="PEM certificate (chain) for HTTPS")
    ap.add_argument("--tls-key", help="PEM private key for HTTPS")
    ap.add_argument("--tls-ca", help="CA to put in --kubeconfig-out (default: --tls-cert, for a self-signed cert)")
    ap.add_argument("--client-ca", help="accept TLS client certificates signed by this CA as authenticated")
    ap.add_argument("--token", default=os.environ.get("FAKE_APISERVER_TOKEN"),
                    help="bearer token every request must carry (401 otherwise); no check when unset")
    ap.add_argument("--crds", action="append", default=[], help="CRD file or directory to create at start")
    ap.add_argument("--history-size", type=int, default=1000,
                    help="events kept per resource for watch resumption (default 1000)")
    ap.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between watch BOOKMARKs")
    ap.add_argument("--webhook-url-override", action="append", default=[],
                    help="[NAMESPACE/SERVICE=]https://HOST:PORT: where to send webhook calls for a service "
                         "reference (TLS still verified for SERVICE.NAMESPACE.svc); repeatable")
    ap.add_argument("--state-file", help="load objects from this file at start, save them on exit and every second")
    ap.add_argument("--kubeconfig-out", help="write a kubeconfig for this server here")
    ap.add_argument("--ready-file", help="write {\"url\":...} JSON here once listening")
    ap.add_argument("--gc-delay", type=float, default=0.05, help="garbage collector delay in seconds")
    ap.add_argument("--verbose", "-v", action="store_true", help="log every request")
    args = ap.parse_args(argv)

    if args.port is None and args.tls_port is None:
        ap.error("give --port and/or --tls-port")
    if args.tls_port is not None and not (args.tls_cert and args.tls_key):
        ap.error("--tls-port needs --tls-cert and --tls-key")

    store = Store(history_size=args.history_size, gc_delay=args.gc_delay, log=log)
    admission = Admission(store, parse_overrides(args.webhook_url_override), log=log)
    api = Api(store, admission, log=log)
    if args.state_file and os.path.exists(args.state_file):
        store.load(args.state_file)
        log("state loaded from %s at resourceVersion %d" % (args.state_file, store.rv))
    else:
        bootstrap(api, store)
    if args.crds:
        load_crds(api, store, args.crds)

    state = State(store, api, admission, token=args.token, verbose=args.verbose,
                  bookmark_interval=args.bookmark_interval, log=log)
    servers = []
    urls = {}
    if args.port is not None:
        s = Server((args.host, args.port), state)
        servers.append(s)
        urls["url"] = "http://%s:%d" % (args.host, s.server_address[1])
    if args.tls_port is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.load_verify_locations(args.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        s = Server((args.host, args.tls_port), state, ctx)
        servers.append(s)
        urls["tlsURL"] = "https://%s:%d" % (args.host, s.server_address[1])
    state.servers = servers
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    if args.kubeconfig_out:
        if "tlsURL" in urls:
            write_kubeconfig(args.kubeconfig_out, urls["tlsURL"], args.token, args.tls_ca or args.tls_cert)
        else:
            write_kubeconfig(args.kubeconfig_out, urls["url"], args.token, None)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(urls, pid=os.getpid()), f)
        os.replace(tmp, args.ready_file)
    for k, v in urls.items():
        print("fake-apiserver: listening on %s" % v, flush=True)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    while not stop.wait(1.0):
        if args.state_file and store.dirty:
            store.save(args.state_file)
    store.stopping.set()
    for s in servers:
        s.shutdown()
        s.server_close()
    state.drop_connections()
    if args.state_file:
        store.save(args.state_file)
        log("state saved to %s" % args.state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
