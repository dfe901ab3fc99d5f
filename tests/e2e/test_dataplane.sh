#!/bin/bash
# Data-plane end-to-end test: pods in real network namespaces on a bridge, pillion-init's real
# rules, pillion-proxy as UID 1407 with real mTLS, unmodified clients and servers.
# usage: test_dataplane.sh BIN_DIR   (root; needs iproute2, iptables, tcpdump, curl, openssl, python3)
set -u
BIN=$(cd "${1:?usage: test_dataplane.sh BIN_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, iptables)"
need ip ping iptables ip6tables tcpdump curl openssl setpriv timeout /usr/bin/python3
PY=/usr/bin/python3

E2E_TMP=$(mktemp -d /tmp/pillion-e2e.XXXXXX)
trap e2e_cleanup EXIT
T=$E2E_TMP
SFX=$(printf '%04x' $((RANDOM)))
SW=pl-sw-$SFX; PA=pl-a-$SFX; PB=pl-b-$SFX; PC=pl-c-$SFX
APP_UID=1000
PROXY_UID=1407

# --- network: a switch namespace with a bridge, three pods ---
# a and b are meshed (rules + proxy); c is a pod without a proxy.
ip netns add "$SW" && E2E_NETNS+=("$SW") || die "ip netns add failed"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
ip -n "$SW" link set lo up
n=0
for pod in a b c; do
	n=$((n + 1))
	ns=pl-$pod-$SFX
	ip netns add "$ns" && E2E_NETNS+=("$ns") || die "ip netns add $ns failed"
	ip link add "v$pod$SFX" type veth peer name "p$pod$SFX"
	ip link set "v$pod$SFX" netns "$ns"
	ip link set "p$pod$SFX" netns "$SW"
	ip -n "$ns" link set "v$pod$SFX" name eth0
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "198.18.1.$n/24" dev eth0
	ip -n "$ns" addr add "2001:db8:1::$n/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
	ip -n "$SW" link set "p$pod$SFX" master br0
	ip -n "$SW" link set "p$pod$SFX" up
done
A4=198.18.1.1; B4=198.18.1.2; C4=198.18.1.3
A6=2001:db8:1::1; B6=2001:db8:1::2
wait_for 5 ip netns exec "$PA" ping -c1 -W1 "$B4" || die "no IPv4 path between the pods"
wait_for 5 ip netns exec "$PA" ping -6 -c1 -W1 "$B6" || die "no IPv6 path between the pods"

# --- identities: the mesh CA, a rogue CA, leaves ---
TD=cluster.local
ID_A=spiffe://$TD/ns/e2e/sa/a
ID_B=spiffe://$TD/ns/e2e/sa/b
mkdir -p "$T/pki"
mk_ca "$T/pki" ca
mk_ca "$T/pki" rogue
mk_leaf "$T/pki" ca a "$ID_A"
mk_leaf "$T/pki" ca b "$ID_B"
mk_leaf "$T/pki" ca b2 "$ID_B"                          # b's next certificate (rotation)
mk_leaf "$T/pki" rogue ra "$ID_A"                       # a's identity, from another CA
mk_leaf "$T/pki" ca x "spiffe://evil.example/ns/e2e/sa/a"  # the mesh CA, another trust domain
mk_leaf "$T/pki" ca y "spiffe://$TD/ns/e2e/sa/y"        # the mesh CA, an identity nobody expects
[ -s "$T/pki/y.crt" ] || die "openssl could not make the test certificates"

# --- configs, rendered by pillionctl from manifests ---
cat > "$T/pods.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: e2e, labels: {app: a}, annotations: {pillion.dev/id: "a0000000000000000000000000000001"}}
spec: {serviceAccountName: a, containers: [{name: app, image: app}]}
YAML
cat > "$T/pod-b.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: e2e, labels: {app: b}, annotations: {pillion.dev/id: "b0000000000000000000000000000002"}}
spec: {serviceAccountName: b, containers: [{name: app, image: app}]}
YAML
mkid() { # MODE FILE
	cat > "$2" <<YAML
apiVersion: pillion.dev/v1alpha1
kind: MeshIdentity
metadata: {name: default, namespace: e2e}
spec:
  mtls: {mode: $1}
YAML
}
mkid STRICT "$T/strict.yaml"
mkid PERMISSIVE "$T/permissive.yaml"
"$BIN/pillionctl" render --pod "$T/pods.yaml" -f "$T/permissive.yaml" > "$T/a.json" || die "render a"
"$BIN/pillionctl" render --pod "$T/pod-b.yaml" -f "$T/strict.yaml" > "$T/b-strict.json" || die "render b"
"$BIN/pillionctl" render --pod "$T/pod-b.yaml" -f "$T/permissive.yaml" > "$T/b-permissive.json" || die "render b"
check "pillion-proxy --check accepts a rendered config" \
	sh -c "'$BIN/pillion-proxy' --check --config '$T/a.json' | grep -qx 'configuration OK'"

mkmesh() { # FILE B_IDENTITY
	cat > "$1" <<JSON
{"apiVersion":"pillion.dev/v1alpha1","kind":"MeshDirectory","namespace":"e2e",
 "services":[],
 "pods":[{"namespace":"e2e","name":"a","addresses":["$A4","$A6"],"identity":"$ID_A"},
         {"namespace":"e2e","name":"b","addresses":["$B4","$B6"],"identity":"$2"}]}
JSON
}
mkmesh "$T/mesh.json" "$ID_B"
mkmesh "$T/mesh-wrong.json" "spiffe://$TD/ns/e2e/sa/not-b"

# Per pod: the three mounts a pod gets, laid out by the kubelet's rules.
for pod in a b; do
	mkdir -p "$T/$pod/config" "$T/$pod/mesh" "$T/$pod/tls"
	project "$T/$pod/mesh" mesh.json="$T/mesh.json"
	project "$T/$pod/tls" tls.crt="$T/pki/$pod.crt" tls.key="$T/pki/$pod.key" ca.crt="$T/pki/ca.crt"
done
project "$T/a/config" proxy.json="$T/a.json"
project "$T/b/config" proxy.json="$T/b-strict.json"
chmod -R a+rX "$T"

# --- apps: an HTTP server in b (8080 meshed, 9090 and 9091 skipped), one in c ---
mkdir -p "$T/www"
echo "hello-from-b MARKER-7f3a" > "$T/www/hello.txt"
head -c 3000000 /dev/urandom > "$T/www/big.bin"
for port in 8080 9090 9091; do
	bg "$PB" "$APP_UID" $PY -m http.server --bind :: --directory "$T/www" "$port"
done
bg "$PC" "$APP_UID" $PY -m http.server --bind :: --directory "$T/www" 8080
for port in 8080 9090 9091; do
	wait_for 10 ip netns exec "$PB" curl -sf -o /dev/null "http://127.0.0.1:$port/hello.txt" || die "app on $port did not start"
done

# --- the mesh: init rules, then the proxies as UID 1407 ---
in_ns "$PA" 0 "$BIN/pillion-init" --skip-outbound-ports 9091 >"$T/init-a.log" 2>&1 || { cat "$T/init-a.log"; die "pillion-init in a"; }
in_ns "$PB" 0 "$BIN/pillion-init" --skip-inbound-ports 9090,9091 >"$T/init-b.log" 2>&1 || { cat "$T/init-b.log"; die "pillion-init in b"; }
for pod in a b; do
	ns=pl-$pod-$SFX
	bg "$ns" "$PROXY_UID" "$BIN/pillion-proxy" --config "$T/$pod/config/proxy.json" --mesh "$T/$pod/mesh/mesh.json" \
		--tls-dir "$T/$pod/tls" --detect-timeout 300ms --log-level info
	eval "PROXY_$pod=$LAST_PID"
done
for ns in "$PA" "$PB"; do
	wait_for 10 ip netns exec "$ns" curl -sf -o /dev/null http://127.0.0.1:15420/ready || die "proxy in $ns not ready"
done
ok "both proxies ready"

get() { # NS UID URL [curl flags]: prints the body
	local ns=$1 uid=$2 url=$3; shift 3
	in_ns "$ns" "$uid" curl -sS --max-time 5 "$@" "$url"
}

# (a) an unmodified client in a reaches b's app by b's IP, through both proxies, with mTLS
body=$(get "$PA" "$APP_UID" "http://$B4:8080/hello.txt")
check "(a) a reaches b's app by IP through the mesh" test "$body" = "hello-from-b MARKER-7f3a"
check "(a) a's proxy opened an outbound mTLS connection" \
	test "$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="mtls"}')" -ge 1
check "(a) b's proxy terminated an inbound mTLS connection" \
	test "$(metric "$PB" 'pillion_proxy_connections_total{direction="inbound",transport="mtls"}')" -ge 1

echo "$E2E_CHECKS checks, $E2E_FAILS failed"
[ "$E2E_FAILS" = 0 ]
