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

"$bin/pillion-proxy" --config x --tls-dir y --inbound-port 70000 >"$tmp/out" 2>&1; check "a bad port is a usage error" 2 $?
contains "... naming the flag and value" '--inbound-port: "70000": must be a port number' "$tmp/out"
PILLION_DRAIN_TIMEOUT=soon "$bin/pillion-proxy" --config x --tls-dir y >"$tmp/out" 2>&1; check "a bad environment value is a usage error" 2 $?
contains "... naming the variable" 'PILLION_DRAIN_TIMEOUT: "soon": must be a duration' "$tmp/out"
"$bin/pillion-proxy" --tls-dir y >"$tmp/out" 2>&1; check "--config is required" 2 $?
"$bin/pillion-proxy" --config x --tls-dir y --admin-port 15401 >"$tmp/out" 2>&1; check "clashing ports are refused" 2 $?
"$bin/pillion-proxy" --help >"$tmp/out" 2>&1; check "--help exits 0" 0 $?
contains "--help documents the environment" "PILLION_TLS_DIR" "$tmp/out"

[ "$fails" = 0 ] && echo "pillion-proxy cli: all checks passed"
[ "$fails" = 0 ]
