#!/bin/bash
# pillion-proxy's command line: --check on good and bad files, flag and environment errors.
# usage: test_proxy_cli.sh BIN_DIR SOURCE_DIR
set -u
bin=$1 src=$2
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { # NAME WANT_RC GOT_RC
	if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1 (exit $3, want $2)"; fails=$((fails + 1)); fi
}
contains() { # NAME TEXT FILE
	if grep -qF -- "$2" "$3"; then echo "ok   $1"; else echo "FAIL $1: no '$2' in:"; sed 's/^/     /' "$3"; fails=$((fails + 1)); fi
}

"$bin/pillionctl" render --pod "$src/examples/pods/web-pod.yaml" -f "$src/examples/valid" >"$tmp/web.json" 2>/dev/null
"$bin/pillion-proxy" --check --config "$tmp/web.json" >"$tmp/out" 2>&1; check "--check accepts a rendered config" 0 $?
contains "--check says configuration OK" "configuration OK" "$tmp/out"

sed -E 's/"mtlsMode": *"STRICT"/"mtlsMode": "PERMISSIVE"/' "$tmp/web.json" >"$tmp/tampered.json"
"$bin/pillion-proxy" --check --config "$tmp/tampered.json" >"$tmp/out" 2>&1; check "--check refuses a hand-edited config" 1 $?
contains "... naming the hash field" "tampered.json: hash: does not match the content" "$tmp/out"

/usr/bin/python3 - "$tmp/web.json" "$tmp/badtype.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["inbound"][0]["port"] = "http"
json.dump(c, open(sys.argv[2], "w"))
PY
"$bin/pillion-proxy" --check --config "$tmp/badtype.json" >"$tmp/out" 2>&1; check "--check refuses a wrong type" 1 $?
contains "... naming the field path" "inbound[0].port: must be an integer" "$tmp/out"

head -c 100 "$tmp/web.json" >"$tmp/cut.json"
"$bin/pillion-proxy" --check --config "$tmp/cut.json" >"$tmp/out" 2>&1; check "--check refuses a truncated file" 1 $?
contains "... with line and column" "cut.json: line" "$tmp/out"

cat >"$tmp/mesh.json" <<'JSON'
{"apiVersion":"pillion.dev/v1alpha1","kind":"MeshDirectory","namespace":"shop",
 "services":[{"namespace":"shop","name":"web","addresses":["198.18.10.20","2001:db8::20"],"ports":[80],"identities":["spiffe://cluster.local/ns/shop/sa/web"]}],
 "pods":[{"namespace":"shop","name":"web-0","addresses":["198.18.2.2"],"identity":"spiffe://cluster.local/ns/shop/sa/web"}]}
JSON
"$bin/pillion-proxy" --check --config "$tmp/web.json" --mesh "$tmp/mesh.json" >"$tmp/out" 2>&1; check "--check accepts a mesh directory" 0 $?
sed 's/"ports":\[80\]/"ports":[0]/; s/198.18.2.2/198.18.2/' "$tmp/mesh.json" >"$tmp/badmesh.json"
"$bin/pillion-proxy" --check --config "$tmp/web.json" --mesh "$tmp/badmesh.json" >"$tmp/out" 2>&1; check "--check refuses a bad mesh directory" 1 $?
contains "... naming the port" "services[0].ports[0]: must be a port number 1..65535" "$tmp/out"
contains "... naming the address" 'pods[0].addresses[0]: must be an IPv4 or IPv6 address, got "198.18.2"' "$tmp/out"

# A large directory comes gzipped as mesh.json.gz (binaryData): read when mesh.json is absent.
mkdir "$tmp/gz"
gzip -9 -c "$tmp/mesh.json" >"$tmp/gz/mesh.json.gz"
"$bin/pillion-proxy" --check --config "$tmp/web.json" --mesh "$tmp/gz/mesh.json" >"$tmp/out" 2>&1; check "--check reads mesh.json.gz when mesh.json is absent" 0 $?
gzip -9 -c "$tmp/badmesh.json" >"$tmp/gz/mesh.json.gz"
"$bin/pillion-proxy" --check --config "$tmp/web.json" --mesh "$tmp/gz/mesh.json" >"$tmp/out" 2>&1; check "--check refuses a bad gzipped directory" 1 $?
contains "... naming the field inside it" "services[0].ports[0]: must be a port number 1..65535" "$tmp/out"
head -c 60 "$tmp/gz/mesh.json.gz" >"$tmp/gz/cut" && mv "$tmp/gz/cut" "$tmp/gz/mesh.json.gz"
"$bin/pillion-proxy" --check --config "$tmp/web.json" --mesh "$tmp/gz/mesh.json" >"$tmp/out" 2>&1; check "--check refuses a cut gzip stream" 1 $?
contains "... saying where" "gzip: stream cut short at byte 60" "$tmp/out"
rm "$tmp/gz/mesh.json.gz"

# --outbound: the namespace's client-side policies beside the directory.
"$bin/pillionctl" render --outbound shop -f "$src/examples/valid" >"$tmp/outbound.json" 2>/dev/null
"$bin/pillion-proxy" --check --config "$tmp/web.json" --mesh "$tmp/mesh.json" --outbound "$tmp/outbound.json" >"$tmp/out" 2>&1; check "--check accepts outbound policies" 0 $?
sed -E 's/"namespace": *"shop"/"namespace": "elsewhere"/' "$tmp/outbound.json" >"$tmp/outbound-bad.json"
"$bin/pillion-proxy" --check --config "$tmp/web.json" --mesh "$tmp/mesh.json" --outbound "$tmp/outbound-bad.json" >"$tmp/out" 2>&1; check "--check refuses edited outbound policies" 1 $?
contains "... naming the file and the hash" "outbound-bad.json: hash: does not match the content" "$tmp/out"
"$bin/pillion-proxy" --config x --tls-dir y --outbound "$tmp/outbound.json" >"$tmp/out" 2>&1; check "--outbound without --mesh is a usage error" 2 $?
contains "... saying why" "--outbound needs --mesh" "$tmp/out"
"$bin/pillion-proxy" --config x --tls-dir y --mesh "$tmp/gz/mesh.json" --outbound "$tmp/outbound.json" >"$tmp/out" 2>&1; check "--outbound in another directory than --mesh is a usage error" 2 $?
"$bin/pillion-proxy" --check --config "$tmp/web.json" --mesh "$tmp/gz/mesh.json" >"$tmp/out" 2>&1; check "--check: neither file is an error" 1 $?
contains "... naming mesh.json" "gz/mesh.json: No such file or directory" "$tmp/out"

"$bin/pillion-proxy" --config x --tls-dir y --inbound-port 70000 >"$tmp/out" 2>&1; check "a bad port is a usage error" 2 $?
contains "... naming the flag and value" '--inbound-port: "70000": must be a port number' "$tmp/out"
PILLION_DRAIN_TIMEOUT=soon "$bin/pillion-proxy" --config x --tls-dir y >"$tmp/out" 2>&1; check "a bad environment value is a usage error" 2 $?
contains "... naming the variable" 'PILLION_DRAIN_TIMEOUT: "soon": must be a duration' "$tmp/out"
"$bin/pillion-proxy" --tls-dir y >"$tmp/out" 2>&1; check "--config is required" 2 $?
"$bin/pillion-proxy" --config x --tls-dir y --admin-port 15401 >"$tmp/out" 2>&1; check "clashing ports are refused" 2 $?
"$bin/pillion-proxy" --help >"$tmp/out" 2>&1; check "--help exits 0" 0 $?
contains "--help documents the environment" "PILLION_TLS_DIR" "$tmp/out"

# --- pillion-proxy wait: the postStart hook of a proxy that is a regular container ---
. "$src/tests/e2e/certs.sh"   # mk_ca, mk_leaf
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$bin/pillion-proxy" wait --timeout soon >"$tmp/out" 2>&1; check "wait: a bad --timeout is a usage error" 2 $?
contains "... naming the flag" '--timeout: "soon"' "$tmp/out"
ap=$(free_port)
"$bin/pillion-proxy" wait --admin-port "$ap" --timeout 300ms >"$tmp/out" 2>&1; check "wait: nothing listening, exit 1 at the timeout" 1 $?
contains "... saying what it last saw" "not ready after 300ms (last: connect 127.0.0.1:$ap: Connection refused)" "$tmp/out"
# A proxy without its certificate yet: it answers /ready with 503.
mkdir -p "$tmp/tls"
"$bin/pillion-proxy" --config "$tmp/web.json" --tls-dir "$tmp/tls" --admin-address 127.0.0.1 --admin-port "$ap" \
	--outbound-port "$(free_port)" --inbound-port "$(free_port)" --resync-interval 1s --log-level error &
ppid=$!
# Bounded (60 s): the proxy answers /ready with 503 once its admin port is up.
got=
for _ in $(seq 1 600); do
	got=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ap/ready")
	[ "$got" = 503 ] && break
	kill -0 "$ppid" 2>/dev/null || break
	sleep 0.1
done
check "a proxy without its certificate answers /ready with 503 (last: ${got:-nothing})" 503 "$got"
"$bin/pillion-proxy" wait --admin-port "$ap" --timeout 5s >"$tmp/out" 2>&1; check "wait: a proxy not ready yet, exit 1" 1 $?
contains "... with the reason /ready gave" "(last: /ready: 503" "$tmp/out"
# The certificate arrives while wait polls: it returns 0 then.
"$bin/pillion-proxy" wait --admin-port "$ap" --timeout 60s >"$tmp/out" 2>&1 &
wpid=$!
sleep 0.5
id=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["identity"]["spiffeId"])' "$tmp/web.json")
mk_ca "$tmp" ca && mk_leaf "$tmp" ca leaf "$id"
cp "$tmp/ca.crt" "$tmp/tls/ca.crt" && cp "$tmp/leaf.key" "$tmp/tls/tls.key" && cp "$tmp/leaf.crt" "$tmp/tls/tls.crt"
wait "$wpid"; check "wait: returns 0 once the proxy becomes ready" 0 $?
contains "... saying after how long" "pillion-proxy wait: ready after" "$tmp/out"

# --- SIGTERM with --drain-delay: new connections are still accepted, /ready says draining ---
ip_=$(free_port); op_=$(free_port); ap2=$(free_port)
"$bin/pillion-proxy" --config "$tmp/web.json" --tls-dir "$tmp/tls" --admin-address 127.0.0.1 --admin-port "$ap2" \
	--outbound-port "$op_" --inbound-port "$ip_" --drain-delay 120s --log-level info 2>"$tmp/drain.log" &
dpid=$!
"$bin/pillion-proxy" wait --admin-port "$ap2" --timeout 60s >/dev/null 2>&1; check "drain: the proxy is ready" 0 $?
kill -TERM "$dpid"
# Event, not time: /ready turns 503 "draining" once the signal is handled (bounded at 60 s).
got=
for _ in $(seq 1 600); do
	got=$(curl -s --max-time 30 "http://127.0.0.1:$ap2/ready")
	[ "$got" = draining ] && break
	sleep 0.1
done
check "drain: after SIGTERM /ready says draining (got: ${got:-nothing})" draining "$got"
/usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 30).close()' "$ip_"
check "drain: during --drain-delay the inbound listener still accepts" 0 $?
/usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 30).close()' "$op_"
check "drain: ... and so does the outbound one" 0 $?
kill -0 "$dpid" 2>/dev/null; check "drain: the proxy still runs within the delay" 0 $?
kill -TERM "$dpid"
wait "$dpid"; check "drain: a second SIGTERM cuts the delay short; exit 0" 0 $?
contains "drain: the log says the delay was cut short" "SIGTERM again: the drain delay is cut short" "$tmp/drain.log"
/usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 30).close()' "$ip_" 2>/dev/null
check "drain: after it, the inbound port refuses" 1 $?

kill -TERM "$ppid"; wait "$ppid"

[ "$fails" = 0 ] && echo "pillion-proxy cli: all checks passed"
[ "$fails" = 0 ]
