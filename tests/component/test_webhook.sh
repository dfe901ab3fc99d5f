#!/bin/bash
# pillion-webhook over real HTTPS on 127.0.0.1: reviews, refusals, TLS versions, a kubelet-style certificate rotation under load, SIGTERM.
# usage: test_webhook.sh PATH/TO/pillion-webhook
set -u
bin=${1:?usage: test_webhook.sh PATH/TO/pillion-webhook}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
work=$(mktemp -d)
pid=
fails=0

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok: $*"; }
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
die() {
	echo "FAIL: $*"
	echo "---- webhook log ----"
	tail -50 "$work/log" 2>/dev/null
	exit 1
}

for t in openssl curl python3; do
	command -v "$t" >/dev/null || die "$t is required"
done

# ---- a CA and two serving certificates (serials 1001, 1002), mounted like a Secret volume ----
cd "$work" || exit 1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
	-keyout ca.key -out ca.crt 2>/dev/null || die "openssl: CA"
leaf() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
		-keyout "$1.key" -out "$1.csr" 2>/dev/null &&
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$1.ext" &&
		openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "$2" -days 2 \
			-extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
leaf one 1001 || die "openssl: leaf one"
leaf two 1002 || die "openssl: leaf two"
leaf three 1003 || die "openssl: leaf three"

# The kubelet's atomic writer: files in a timestamped directory, ..data a symlink to it, and the
# visible names symlinks through ..data; an update writes a new directory and renames a new ..data
# over the old one.
mnt=$work/mnt
mkdir -p "$mnt"
publish() { # publish NAME GENERATION
	mkdir "$mnt/..gen$2" && cp "$1.crt" "$mnt/..gen$2/tls.crt" && cp "$1.key" "$mnt/..gen$2/tls.key" &&
		ln -s "..gen$2" "$mnt/..data_tmp" && mv -T "$mnt/..data_tmp" "$mnt/..data"
}
publish one 1 || die "publish"
ln -s ..data/tls.crt "$mnt/tls.crt"
ln -s ..data/tls.key "$mnt/tls.key"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=https://127.0.0.1:$port
c() { curl -sS --max-time 10 --cacert "$work/ca.crt" "$@"; }

# ---- start ----
"$bin" --check --tls-cert "$mnt/tls.crt" --tls-key "$mnt/tls.key" | grep -q "configuration OK" || die "--check"
"$bin" --listen-address 127.0.0.1 --port "$port" --tls-cert "$mnt/tls.crt" --tls-key "$mnt/tls.key" \
	--cert-check-interval 1s --kubernetes-version v1.29.3 --log-level debug >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
	c -o /dev/null "$url/healthz" 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || die "pillion-webhook exited at start"
	sleep 0.1
done
[ "$(c "$url/healthz")" = ok ] && ok "/healthz" || die "/healthz"
[ "$(c "$url/readyz")" = ok ] && ok "/readyz" || fail "/readyz"

# ---- reviews ----
cat >pod.json <<'EOF'
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002",
 "kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
 "namespace":"shop","operation":"CREATE","userInfo":{"username":"admin"},
 "object":{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-","namespace":"shop","labels":{"app":"web"}},
  "spec":{"serviceAccountName":"web","containers":[{"name":"web","image":"nginx:1.25","ports":[{"containerPort":8080}]}]}},
 "oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}}}
EOF
post() { # post FILE [curl args...] -> body in $work/out, status on stdout
	local f=$1
	shift
	c -o "$work/out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$f" "$@" "$url/mutate?timeout=10s"
}
# check FILE EXPECT: the answer in FILE is a well-formed allowed review; EXPECT is patch, completed, nopatch or warning
check() {
	python3 - "$1" "$2" <<'EOF'
import base64, json, sys
r = json.load(open(sys.argv[1]))
want = sys.argv[2]
assert r["apiVersion"] == "admission.k8s.io/v1" and r["kind"] == "AdmissionReview", r
resp = r["response"]
assert resp["allowed"] is True, resp
assert isinstance(resp["uid"], str), resp
if want in ("patch", "completed"):
    assert resp["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002", resp["uid"]
    assert resp["patchType"] == "JSONPatch", resp
    patch = json.loads(base64.b64decode(resp["patch"], validate=True))
    assert isinstance(patch, list) and patch, patch
    if want == "patch":
        assert "pillion-proxy" in json.dumps(patch), "no pillion-proxy container in the patch"
    else:  # the containers are there already: only the id and the volumes named after it
        assert "pillion-proxy" not in json.dumps(patch) and "/spec/volumes/2" in json.dumps(patch), patch
    ids = [v for op in patch if isinstance(op.get("value"), dict) for k, v in op["value"].items() if k == "pillion.dev/id"]
    ids += [op["value"] for op in patch if op.get("path") == "/metadata/annotations/pillion.dev~1id"]
    assert ids and len(ids[0]) == 32 and all(ch in "0123456789abcdef" for ch in ids[0]), ids
    print(ids[0])
else:
    assert "patch" not in resp and "patchType" not in resp, resp
    if want == "warning":
        assert resp.get("warnings"), resp
EOF
}

[ "$(post pod.json)" = 200 ] && id1=$(check out patch) && ok "Pod review: allowed, JSONPatch with pillion-proxy, uid echoed" || fail "Pod review: $(cat out)"
[ "$(post pod.json)" = 200 ] && id2=$(check out patch) && [ "$id1" != "$id2" ] && ok "a fresh pillion.dev/id per request" ||
	fail "ids not fresh: ${id1:-} ${id2:-}"

python3 -c '
import json; r = json.load(open("pod.json"))
r["request"]["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
r["request"]["object"] = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
json.dump(r, open("deploy.json", "w"))
r = json.load(open("pod.json")); del r["request"]["uid"]; json.dump(r, open("nouid.json", "w"))
r = json.load(open("pod.json")); r["request"]["object"]["spec"]["containers"] = "web"; json.dump(r, open("badpod.json", "w"))
r = json.load(open("pod.json")); r["request"]["operation"] = "UPDATE"; json.dump(r, open("update.json", "w"))
r = json.load(open("pod.json")); r["apiVersion"] = "admission.k8s.io/v1beta1"; json.dump(r, open("v1beta1.json", "w"))
r = json.load(open("pod.json")); r["request"]["object"]["x"] = "@@"; s = json.dumps(r)
open("deep.json", "w").write(s.replace("\"@@\"", "[" * 10000 + "]" * 10000))
'
# A pod from a template pillionctl inject already injected: the webhook completes it (its id and
# per-pod volumes), counted as reason "completed".
python3 - "$(dirname "$bin")/pillionctl" <<'PYEOF' || fail "could not make a template-injected pod"
import json, subprocess, sys, yaml
r = json.load(open("pod.json"))
out = subprocess.run([sys.argv[1], "inject", "-f", "-"], input=json.dumps(r["request"]["object"]),
                     capture_output=True, text=True, check=True).stdout
r["request"]["object"] = yaml.safe_load(out)
json.dump(r, open("templated.json", "w"))
PYEOF
[ "$(post templated.json)" = 200 ] && id3=$(check out completed) && [ -n "$id3" ] && ok "template-injected pod: completed with its own id" ||
	fail "template-injected pod: $(cat out)"
[ "$(post deploy.json)" = 200 ] && check out warning && ok "non-Pod review: allowed, no patch, a warning" || fail "non-Pod: $(cat out)"
[ "$(post update.json)" = 200 ] && check out nopatch && ok "UPDATE: allowed, no patch" || fail "UPDATE: $(cat out)"
[ "$(post nouid.json)" = 200 ] && check out warning && ok "missing uid: allowed, no patch, a warning" || fail "missing uid: $(cat out)"
[ "$(post badpod.json)" = 200 ] && check out warning && ok "malformed pod: allowed, no patch, a warning" || fail "malformed pod: $(cat out)"
[ "$(post deep.json)" = 200 ] && check out warning && ok "10,000-deep nesting: allowed with a warning" || fail "deep: $(cat out)"
[ "$(c "$url/healthz")" = ok ] && ok "still answering after the deep document" || die "no answer after the deep document"

printf 'not json' >notjson.txt
[ "$(post notjson.txt)" = 400 ] && ok "not JSON: 400" || fail "not JSON: $(cat out)"
[ "$(post v1beta1.json)" = 400 ] && ok "wrong apiVersion: 400" || fail "wrong apiVersion: $(cat out)"
[ "$(c -o out -w '%{http_code}' -H 'Content-Type: text/plain' --data-binary @pod.json "$url/mutate")" = 415 ] &&
	ok "wrong Content-Type: 415" || fail "wrong Content-Type: $(cat out)"
[ "$(c -o out -w '%{http_code}' -H 'Content-Type: application/json; charset=utf-8' --data-binary @pod.json "$url/mutate")" = 200 ] &&
	ok "Content-Type with charset: 200" || fail "charset: $(cat out)"
head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >big.json
[ "$(post big.json)" = 413 ] && ok "5 MiB body: 413" || fail "5 MiB body: $(cat out)"
[ "$(c -o out -w '%{http_code}' "$url/mutate")" = 405 ] && ok "GET /mutate: 405" || fail "GET /mutate: $(cat out)"
[ "$(c -o out -w '%{http_code}' "$url/nothing")" = 404 ] && ok "unknown path: 404" || fail "unknown path"
[ "$(c "$url/healthz")" = ok ] && ok "still answering after the refusals" || die "no answer after the refusals"

c "$url/metrics" >metrics.txt
grep -q '^pillion_webhook_admissions_total{decision="injected",reason="injected"} [1-9]' metrics.txt &&
	grep -q '^pillion_webhook_admissions_total{decision="skipped",reason="not-a-pod"} 1$' metrics.txt &&
	grep -q '^pillion_webhook_admissions_total{decision="injected",reason="completed"} 1$' metrics.txt &&
	! grep -q 'reason="other"} [1-9]' metrics.txt &&
	grep -q '^pillion_webhook_admission_duration_seconds_count [1-9]' metrics.txt &&
	grep -q '^pillion_webhook_errors_total{kind="payload_too_large"} 1$' metrics.txt &&
	grep -q '^pillion_webhook_errors_total{kind="unsupported_media_type"} 1$' metrics.txt &&
	grep -Eq '^pillion_build_info\{version="[0-9.]+",commit="[0-9a-z-]+"\} 1$' metrics.txt &&
	ok "/metrics: admissions by decision and reason, duration histogram, errors, build info" || fail "/metrics: $(head -40 metrics.txt)"

# ---- TLS versions ----
# The client's own floor is lowered so that the refusal is the server's.
if timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' </dev/null >tls11.txt 2>&1; then
	fail "TLS 1.1 handshake succeeded"
else
	ok "TLS 1.1 refused"
fi
timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_2 </dev/null 2>/dev/null | grep -q 'Protocol *: TLSv1.2' &&
	ok "TLS 1.2 accepted" || fail "TLS 1.2"

# ---- certificate rotation under load ----
serial() {
	timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
[ "$(serial)" = 03E9 ] && ok "serves certificate 1001" || fail "serial before rotation: $(serial)"

# Bounded load: one process of fresh connections, one keep-alive connection, both across two rotations.
: >load.txt
(
	for i in $(seq 1 150); do
		code=$(c -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @pod.json "$url/mutate" 2>>load.err)
		echo "$code" >>load.txt
	done
) &
loader=$!
# One keep-alive connection whose life the test decides: it sends requests until the test has seen
# both rotations and touched "stop", then sends its last request and closes. It never reconnects.
python3 - "$port" "$work/ca.crt" "$work/stop" >keepalive.txt 2>>load.err <<'PYEOF' &
import os, socket, ssl, sys, time
port, ca, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="localhost")
buf = b""
def one():
    global buf
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed by the server")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    n = [int(l.split(b":", 1)[1]) for l in lines if l.lower().startswith(b"content-length:")]
    while len(buf) < (n[0] if n else 0):
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed by the server")
        buf += chunk
    buf = buf[n[0] if n else 0:]
    print(lines[0].split(b" ")[1].decode(), flush=True)
deadline = time.monotonic() + 150  # bounded: the test's own timeout is 180 s
sent = 0
while not os.path.exists(stop) and time.monotonic() < deadline and sent < 100000:
    one()
    sent += 1
    time.sleep(0.01)
if not os.path.exists(stop):
    raise SystemExit("never told to stop")
one()  # the last request, after both rotations
print("closed", flush=True)
PYEOF
keeper=$!
for _ in $(seq 1 1200); do [ "$(wc -l <load.txt)" -ge 20 ] && break; sleep 0.05; done
publish two 2 || die "publish two"
for _ in $(seq 1 1200); do [ "$(serial)" = 03EA ] && break; sleep 0.05; done
for _ in $(seq 1 1200); do [ "$(wc -l <load.txt)" -ge 80 ] && break; sleep 0.05; done
publish three 3 || die "publish three"
for _ in $(seq 1 1200); do [ "$(serial)" = 03EB ] && break; sleep 0.05; done
kill -0 "$keeper" 2>/dev/null && spanned=yes || spanned=no
touch "$work/stop"
wait "$loader"
wait "$keeper"
good=$(grep -c '^200$' load.txt)
ksent=$(grep -vc '^closed$' keepalive.txt)
kbad=$(grep -v -e '^200$' -e '^closed$' keepalive.txt | head -3 | tr '\n' ' ')
if [ "$good" = 150 ] && [ "$ksent" -ge 2 ] && [ -z "$kbad" ] && [ ! -s load.err ]; then
	ok "rotation under load: 150/150 new-connection reviews and $ksent/$ksent keep-alive requests answered"
else
	fail "rotation under load: $good/150 answered, keep-alive $ksent sent, bad: $kbad; $(sort load.txt | uniq -c | tr '\n' ' ') $(head -5 load.err)"
fi
[ "$spanned" = yes ] && tail -1 keepalive.txt | grep -qx closed && ok "one keep-alive connection spanned both rotations" ||
	fail "keep-alive connection: spanned=$spanned, last line: $(tail -1 keepalive.txt)"
[ "$(serial)" = 03EB ] && ok "new connections present the newest certificate (1003)" || fail "serial after rotation: $(serial)"
grep -c 'serving certificate reloaded' log | grep -q '^[2-9]' && ok "two reloads logged" || fail "reloads: $(grep -c reloaded log)"

# A key that does not match its certificate is refused; the last good pair keeps serving.
mkdir "$mnt/..gen4" && cp two.crt "$mnt/..gen4/tls.crt" && cp three.key "$mnt/..gen4/tls.key" &&
	ln -s ..gen4 "$mnt/..data_tmp" && mv -T "$mnt/..data_tmp" "$mnt/..data"
for _ in $(seq 1 1200); do grep -q 'keeping the current serving certificate' log && break; sleep 0.05; done
grep -q 'keeping the current serving certificate' log && [ "$(serial)" = 03EB ] &&
	[ "$(post pod.json)" = 200 ] && ok "mismatched key refused, the last good certificate still served" ||
	fail "mismatched pair: serial $(serial)"

# ---- SIGTERM: no new connections, the request in flight answered, exit 0 ----
python3 - "$port" "$pid" "$work/ca.crt" "$work/pod.json" <<'EOF' && ok "SIGTERM: listener closed, in-flight review answered" || fail "SIGTERM drain"
import os, signal, socket, ssl, sys, time
port, pid, ca, body = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], open(sys.argv[4], "rb").read()
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
s.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body[:100])
# Wait until the server counts the request as in flight (not a sleep racing it), then SIGTERM.
def inflight():
    m = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    m.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = m.recv(65536)
        if not chunk:
            break
        data += chunk
    m.close()
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("pillion_webhook_requests_in_flight "):
            return int(line.split()[1])
    return 0
deadline = time.monotonic() + 60
while inflight() < 2 and time.monotonic() < deadline:  # ours and the /metrics request itself
    time.sleep(0.05)
os.kill(pid, signal.SIGTERM)
for _ in range(1200):  # the listener goes away
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        time.sleep(0.05)
    except OSError:
        break
else:
    sys.exit("still accepting connections after SIGTERM")
s.sendall(body[100:])
resp = b""
while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
    chunk = s.recv(65536)
    if not chunk:
        break
    resp += chunk
assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
assert b'"allowed":true' in resp and b"JSONPatch" in resp, resp[:300]
EOF
for _ in $(seq 1 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
wait "$pid"
rc=$?
pid=
[ "$rc" = 0 ] && ok "exit 0 after SIGTERM" || fail "exit code $rc after SIGTERM"

if grep -q '"level":"error"' "$work/log"; then
	fail "errors in the log: $(grep '"level":"error"' "$work/log" | head -5)"
fi
if [ "$fails" -gt 0 ]; then
	echo "---- webhook log ----"
	tail -60 "$work/log"
	echo "$fails check(s) failed"
	exit 1
fi
echo "all webhook checks passed"
