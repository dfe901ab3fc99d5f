#!/bin/bash
# The local mesh demo: the example shop's frontend and web pods in network namespaces behind a
# "node" namespace that routes and plays kube-proxy (Service IP -> pod IP), with pillion-init's
# rules and pillion-proxy sidecars rendered from examples/. Root; cleans up after itself.
set -u
BIN=$(cd "${1:-build/bin}" && pwd)
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/tests/e2e/lib.sh"
[ "$(id -u)" = 0 ] || die "the mesh demo needs root (network namespaces, iptables)"
need ip iptables curl openssl setpriv tcpdump /usr/bin/python3
PY=/usr/bin/python3
say() { printf '\n== %s\n' "$*"; }
E2E_TMP=$(mktemp -d /tmp/pillion-demo.XXXXXX)
trap e2e_cleanup EXIT
T=$E2E_TMP
SFX=$(printf '%04x' $((RANDOM)))
NODE=pl-node-$SFX

say "a node and three pods (frontend, web: meshed; legacy: no sidecar), addresses from 198.18.0.0/15"
ip netns add "$NODE" && E2E_NETNS+=("$NODE") || die "ip netns add"
ip -n "$NODE" link set lo up
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
n=0
for pod in frontend web legacy; do
	n=$((n + 1))
	ns=pl-$pod-$SFX
	ip netns add "$ns" && E2E_NETNS+=("$ns") || die "ip netns add"
	ip link add "d$n$SFX" type veth peer name "n$n$SFX"
	ip link set "d$n$SFX" netns "$ns"
	ip link set "n$n$SFX" netns "$NODE"
	ip -n "$ns" link set "d$n$SFX" name eth0
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "198.18.$n.2/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "198.18.$n.1"
	ip -n "$NODE" addr add "198.18.$n.1/24" dev "n$n$SFX"
	ip -n "$NODE" link set "n$n$SFX" up
	printf '  %-8s 198.18.%d.2\n' "$pod" "$n"
done
FRONTEND=pl-frontend-$SFX; WEB=pl-web-$SFX; LEGACY=pl-legacy-$SFX
# kube-proxy's job on the node: Service web 198.18.10.20:80 -> the web pod's 8080.
ip netns exec "$NODE" iptables -t nat -A PREROUTING -d 198.18.10.20/32 -p tcp --dport 80 \
	-j DNAT --to-destination 198.18.2.2:8080
echo "  Service shop/web 198.18.10.20:80 -> 198.18.2.2:8080 (DNAT on the node, as kube-proxy does)"

say "identities: a mesh CA and one certificate per pod, SPIFFE IDs from their service accounts"
mkdir -p "$T/pki"
mk_ca "$T/pki" ca
mk_leaf "$T/pki" ca frontend spiffe://cluster.local/ns/shop/sa/frontend
mk_leaf "$T/pki" ca web spiffe://cluster.local/ns/shop/sa/web
openssl x509 -in "$T/pki/web.crt" -noout -ext subjectAltName 2>/dev/null | sed 's/^/  /'

say "configs and the mesh directory: pillionctl render, from examples/valid and examples/pods"
for pod in frontend web; do
	"$BIN/pillionctl" render --pod "$TOP/examples/pods/$pod-pod.yaml" -f "$TOP/examples/valid" >"$T/$pod.json" 2>/dev/null ||
		die "render $pod"
	printf '  %-8s %s\n' "$pod" "$($PY -c 'import json,sys; i=json.load(open(sys.argv[1]))["identity"]; print(i["spiffeId"], "mtls", i["mtlsMode"])' "$T/$pod.json")"
done
# The mesh directory, as the operator will keep it in ConfigMap pillion-mesh: rendered from the
# Services in examples/ and the two pods as the API server would show them running.
$PY - "$TOP/examples/pods/frontend-pod.yaml" 198.18.1.2 "$TOP/examples/pods/web-pod.yaml" 198.18.2.2 \
	>"$T/pods-running.yaml" <<'PY'
import sys, yaml
docs = []
for path, ip in zip(sys.argv[1::2], sys.argv[2::2]):
    pod = yaml.safe_load(open(path))
    pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    docs.append(pod)
yaml.safe_dump_all(docs, sys.stdout)
PY
"$BIN/pillionctl" render --mesh shop -f "$T/pods-running.yaml" -f "$TOP/examples/valid" >"$T/mesh.json" 2>/dev/null ||
	die "render --mesh"
$PY -c 'import json,sys; d=json.load(open(sys.argv[1]))
for s in d["services"]: print("  service %s/%s %s ports %s -> %s" % (s["namespace"], s["name"], ",".join(s["addresses"]), s["ports"], ",".join(s["identities"])))
for p in d["pods"]: print("  pod     %s/%s %s -> %s" % (p["namespace"], p["name"], ",".join(p["addresses"]), p["identity"]))' "$T/mesh.json"
for pod in frontend web; do
	mkdir -p "$T/$pod/config" "$T/$pod/mesh" "$T/$pod/tls"
	project "$T/$pod/config" proxy.json="$T/$pod.json"
	project "$T/$pod/mesh" mesh.json="$T/mesh.json"
	project "$T/$pod/tls" tls.crt="$T/pki/$pod.crt" tls.key="$T/pki/$pod.key" ca.crt="$T/pki/ca.crt"
done
chmod -R a+rX "$T"

say "apps: web serves HTTP on 8080, legacy on 8080; nothing in them knows about the mesh"
mkdir -p "$T/www" "$T/legacy"
echo "hello from web" >"$T/www/index.html"
echo "hello from legacy" >"$T/legacy/index.html"
bg "$WEB" 1000 sh -c "exec $PY -m http.server --bind 0.0.0.0 --directory $T/www 8080 >/dev/null 2>&1"
bg "$LEGACY" 1000 sh -c "exec $PY -m http.server --bind 0.0.0.0 --directory $T/legacy 8080 >/dev/null 2>&1"
wait_for 10 ip netns exec "$WEB" curl -sf -o /dev/null http://127.0.0.1:8080/ || die "web app did not start"

say "pillion-init in each meshed pod, then pillion-proxy as UID 1407"
for pod in frontend web; do
	ns=pl-$pod-$SFX
	in_ns "$ns" 0 "$BIN/pillion-init" | sed 's/^/  /'
	bg "$ns" 1407 "$BIN/pillion-proxy" --config "$T/$pod/config/proxy.json" --mesh "$T/$pod/mesh/mesh.json" \
		--tls-dir "$T/$pod/tls" --log-level warn
	wait_for 10 ip netns exec "$ns" curl -sf -o /dev/null http://127.0.0.1:15420/ready || die "$pod proxy not ready"
	echo "  $pod: /ready 200"
done

say "frontend's app calls the web Service by its cluster IP (curl http://198.18.10.20/)"
bg "$NODE" 0 tcpdump -Z root -i "n2$SFX" --immediate-mode -U -n -s 0 -w "$T/wire.pcap" "tcp port 8080" 2>"$T/td.log"
TD=$LAST_PID
wait_for 10 grep -q "listening on" "$T/td.log"
r=$(in_ns "$FRONTEND" 1000 curl -sS --max-time 5 http://198.18.10.20/)
echo "  response: $r"
[ "$r" = "hello from web" ] || die "frontend did not reach web through the mesh"
sleep 0.3
stop_pid "$TD"
wire=$($PY "$TOP/tests/e2e/pcap_check.py" "$T/wire.pcap" 8080 "GET /" "hello from web") || die "wire check: $wire"
echo "  on the wire to the web pod: $wire"
echo "  frontend proxy: outbound mTLS connections $(metric "$FRONTEND" 'pillion_proxy_connections_total{direction="outbound",transport="mtls"}')"
echo "  web proxy:      inbound mTLS connections  $(metric "$WEB" 'pillion_proxy_connections_total{direction="inbound",transport="mtls"}')"

say "the legacy pod (no sidecar) calls web in plaintext: web is STRICT, so it is refused"
if in_ns "$LEGACY" 1000 curl -sS --max-time 5 http://198.18.10.20/ >/dev/null 2>"$T/err"; then
	die "web (STRICT) answered a plaintext client"
fi
sed 's/^/  /' "$T/err"
echo "  web proxy: refused strict_plaintext $(metric "$WEB" 'pillion_proxy_refused_connections_total{direction="inbound",reason="strict_plaintext"}')"

say "frontend calls the legacy pod (not in the mesh): plain passthrough"
r=$(in_ns "$FRONTEND" 1000 curl -sS --max-time 5 http://198.18.3.2:8080/)
echo "  response: $r"
[ "$r" = "hello from legacy" ] || die "passthrough to the legacy pod failed"

say "the web proxy's admin port: /config (excerpt) and /metrics (excerpt)"
ip netns exec "$WEB" curl -s http://127.0.0.1:15420/config |
	$PY -c 'import json,sys; c=json.load(sys.stdin); print("  ready:", c["ready"], "| identity:", c["certificate"]["spiffeId"], "| mode:", c["config"]["identity"]["mtlsMode"])'
ip netns exec "$WEB" curl -s http://127.0.0.1:15420/metrics | grep -E '^pillion_proxy_(connections_total|bytes_total)\{direction="inbound"' | sed 's/^/  /'

say "mesh demo done; everything it created is removed now"
