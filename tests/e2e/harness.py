"""Shared by the control-plane suites and the demo: the test API server, process stop, work directory.

Every process started is stopped by its PID; every wait is bounded.
"""
import os
import secrets
import signal
import subprocess
import time

PY = "/usr/bin/python3"


def wait(fn, timeout=20.0, interval=0.1):
    """Polls fn until it returns something truthy (returned) or timeout seconds pass (None)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = fn()
        except Exception:  # a transient error while polling is retried
            v = None
        if v:
            return v
        time.sleep(interval)
    return None


def start_fake_api(src, tmp, procs, crds=True):
    """Starts the test double (e2e/apiserver) over HTTPS with a bearer token on loopback and
    returns the kubeconfig it wrote. With crds, the CRDs of crds/ are installed at start."""
    key, crt = os.path.join(tmp, "api.key"), os.path.join(tmp, "api.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-keyout", key, "-out", crt, "-subj", "/CN=fake-apiserver",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    ready, kc = os.path.join(tmp, "ready.json"), os.path.join(tmp, "kubeconfig")
    api_log = open(os.path.join(tmp, "api.log"), "w")
    args = [PY, os.path.join(src, "e2e/apiserver/fake_apiserver.py"), "--port", "0", "--tls-port", "0",
            "--tls-cert", crt, "--tls-key", key, "--token", secrets.token_hex(16),
            "--kubeconfig-out", kc, "--ready-file", ready, "--bookmark-interval", "1"]
    if crds:
        args += ["--crds", os.path.join(src, "crds")]
    procs.append(subprocess.Popen(args, stdout=api_log, stderr=subprocess.STDOUT))
    if not wait(lambda: os.path.exists(ready) and os.path.getsize(ready) > 0, 20):
        raise SystemExit("the test API server did not start")
    return kc


def stop_all(procs, timeout=10):
    """Stops every process started, newest first, by its PID: SIGTERM, then SIGKILL after timeout."""
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def remove_workdir(tmp, show_logs):
    """Prints the tail of every *.log in tmp (when a check failed), then removes it."""
    if show_logs:
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".log"):
                print(f"--- {f} (last lines)")
                print("".join(open(os.path.join(tmp, f), errors="replace").readlines()[-15:]))
    subprocess.run(["rm", "-rf", tmp])
