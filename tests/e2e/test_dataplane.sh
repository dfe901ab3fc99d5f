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
# Under AddressSanitizer, freed memory waits in a quarantine (256 MiB by default) and would
# read as growth in the RSS bound of (h); a small quarantine keeps the bound meaningful.
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=4"

E2E_TMP=$(mktemp -d -t pillion-e2e.XXXXXX)
trap e2e_cleanup EXIT
T=$E2E_TMP
SFX=$(printf '%04x' $((RANDOM)))
SW=pl-sw-$SFX; PA=pl-a-$SFX; PB=pl-b-$SFX; PC=pl-c-$SFX
APP_UID=1000
PROXY_UID=1407

# --- network: a switch namespace with a bridge, three pods ---
# a and b are meshed (rules + proxy); c is a pod without a proxy.
e2e_pods pl "$SFX" 198.18.1 2001:db8:1 a b c
A4=198.18.1.1; B4=198.18.1.2; C4=198.18.1.3
A6=2001:db8:1::1; B6=2001:db8:1::2
wait_for 60 ip netns exec "$PA" ping -c1 -W1 "$B4" || die "no IPv4 path between the pods"
wait_for 60 ip netns exec "$PA" ping -6 -c1 -W1 "$B6" || die "no IPv6 path between the pods"

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
mkdir -p "$T/out" && chmod 1777 "$T/out"
chmod -R a+rX "$T"

# --- apps: an HTTP server in b (8080 meshed, 9090 and 9091 skipped), one in c ---
mkdir -p "$T/www"
echo "hello-from-b MARKER-7f3a" > "$T/www/hello.txt"
head -c 3000000 /dev/urandom > "$T/www/big.bin"
for port in 8080 9090 9091; do
	bg "$PB" "$APP_UID" sh -c "exec $PY -m http.server --bind :: --directory $T/www $port 2>/dev/null >/dev/null"
done
bg "$PC" "$APP_UID" sh -c "exec $PY -m http.server --bind :: --directory $T/www 8080 2>/dev/null >/dev/null"
for ns in "$PB" "$PC"; do
	bg "$ns" "$APP_UID" $PY "$HERE/relay_peer.py" server 7000
done
for port in 8080 9090 9091; do
	wait_for 60 ip netns exec "$PB" curl -sf -o /dev/null "http://127.0.0.1:$port/hello.txt" || die "app on $port did not start"
done

# --- the mesh: init rules, then the proxies as UID 1407 ---
in_ns "$PA" 0 "$BIN/pillion-init" --skip-outbound-ports 9091 >"$T/init-a.log" 2>&1 || { cat "$T/init-a.log"; die "pillion-init in a"; }
in_ns "$PB" 0 "$BIN/pillion-init" --skip-inbound-ports 9090,9091 >"$T/init-b.log" 2>&1 || { cat "$T/init-b.log"; die "pillion-init in b"; }
# The detect timeout (a silent client's wait before it is relayed as plaintext) is not measured
# here; a short one would misclassify a client that a busy machine holds back. a drains for up to
# 60 s, so the transfer open at its SIGTERM (drain) has the time it needs.
for pod in a b; do
	ns=pl-$pod-$SFX
	drain=5s; delay=0s; [ "$pod" = a ] && drain=60s && delay=120s
	bg "$ns" "$PROXY_UID" "$BIN/pillion-proxy" --config "$T/$pod/config/proxy.json" --mesh "$T/$pod/mesh/mesh.json" \
		--tls-dir "$T/$pod/tls" --detect-timeout 3s --drain-timeout "$drain" --drain-delay "$delay" --log-level info
	eval "PROXY_$pod=$LAST_PID"
done
for ns in "$PA" "$PB"; do
	wait_for 60 ip netns exec "$ns" curl -sf -o /dev/null http://127.0.0.1:15420/ready || die "proxy in $ns not ready"
done
ok "both proxies ready"

get() { # NS UID URL [curl flags]: prints the body
	local ns=$1 uid=$2 url=$3; shift 3
	in_ns "$ns" "$uid" curl -sS --max-time 30 "$@" "$url"
}

# (a) an unmodified client in a reaches b's app by b's IP, through both proxies, with mTLS
body=$(get "$PA" "$APP_UID" "http://$B4:8080/hello.txt")
check "(a) a reaches b's app by IP through the mesh" test "$body" = "hello-from-b MARKER-7f3a"
check "(a) a's proxy opened an outbound mTLS connection" \
	test "$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="mtls"}')" -ge 1
check "(a) b's proxy terminated an inbound mTLS connection" \
	test "$(metric "$PB" 'pillion_proxy_connections_total{direction="inbound",transport="mtls"}')" -ge 1

# (b) on the wire between the pods: TLS from the first byte, no plaintext HTTP
bg "$SW" 0 tcpdump -Z root -i "pplb$SFX" --immediate-mode -U -n -s 0 -w "$T/wire.pcap" "tcp port 8080" 2>"$T/tcpdump.log"
TCPDUMP=$LAST_PID
wait_for 60 grep -q "listening on" "$T/tcpdump.log" || die "tcpdump did not start"
get "$PA" "$APP_UID" "http://$B4:8080/hello.txt" >/dev/null
get "$PA" "$APP_UID" "http://[$B6]:8080/hello.txt" >/dev/null
# Stop the capture only once it holds the traffic (a failing check is re-run on the whole file below).
wait_for 30 $PY "$HERE/pcap_check.py" "$T/wire.pcap" 8080 "GET /" "MARKER-7f3a" "HTTP/1"
stop_pid "$TCPDUMP"
check "(b) the capture between the pods shows TLS and no plaintext HTTP" \
	$PY "$HERE/pcap_check.py" "$T/wire.pcap" 8080 "GET /" "MARKER-7f3a" "HTTP/1"

# (c) STRICT: a pod without a proxy cannot talk plaintext to b
refused0=$(metric "$PB" 'pillion_proxy_refused_connections_total{direction="inbound",reason="strict_plaintext"}')
check "(c) STRICT refuses a plaintext client from a pod without a proxy" \
	sh -c "! ip netns exec '$PC' curl -s --max-time 30 -o /dev/null http://$B4:8080/hello.txt"
check "(c) the refusal is counted as strict_plaintext" \
	test "$(metric "$PB" 'pillion_proxy_refused_connections_total{direction="inbound",reason="strict_plaintext"}')" -gt "$refused0"

# (f) skipped ports bypass the proxy, even under STRICT; so does the proxy's own traffic
in_b0=$(metric "$PB" 'pillion_proxy_connections_total{direction="inbound",transport="plaintext"}')
out_a0=$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="plaintext"}')
out_a0m=$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="mtls"}')
check "(f) a skipped inbound port (9090) is reached directly from a pod without a proxy" \
	test "$(get "$PC" 0 "http://$B4:9090/hello.txt")" = "hello-from-b MARKER-7f3a"
check "(f) a skipped outbound port (9091) goes direct from a's app" \
	test "$(get "$PA" "$APP_UID" "http://$B4:9091/hello.txt")" = "hello-from-b MARKER-7f3a"
check "(f) traffic of UID 1407 (the proxy's) goes direct" \
	test "$(get "$PA" "$PROXY_UID" "http://$B4:9090/hello.txt")" = "hello-from-b MARKER-7f3a"
check "(f) b's app calling its own pod IP goes direct" \
	test "$(get "$PB" "$APP_UID" "http://$B4:8080/hello.txt")" = "hello-from-b MARKER-7f3a"
check "(f) b's app calling 127.0.0.1 goes direct" \
	test "$(get "$PB" "$APP_UID" "http://127.0.0.1:8080/hello.txt")" = "hello-from-b MARKER-7f3a"
check "(f) none of those went through a proxy" test \
	"$(metric "$PB" 'pillion_proxy_connections_total{direction="inbound",transport="plaintext"}'):$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="plaintext"}'):$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="mtls"}')" \
	= "$in_b0:$out_a0:$out_a0m"
out_p0=$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="plaintext"}')
check "(f) a destination outside the mesh is relayed in plaintext" \
	test "$(get "$PA" "$APP_UID" "http://$C4:8080/hello.txt")" = "hello-from-b MARKER-7f3a"
check "(f) ... through a's outbound proxy" \
	test "$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="plaintext"}')" -gt "$out_p0"

# (d) mTLS peers that are not who they should be
sclient() { # CERT_NAME: a TLS client with ALPN pillion/1 from c, straight to b's app port
	printf 'GET /hello.txt HTTP/1.0\r\n\r\n' | ip netns exec "$PC" timeout 30 openssl s_client -quiet \
		-connect "$B4:8080" -alpn pillion/1 -cert "$T/pki/$1.crt" -key "$T/pki/$1.key" \
		-CAfile "$T/pki/ca.crt" 2>/dev/null
}
check "(d) control: a client with a mesh certificate is served" sh -c "$(declare -f sclient); T='$T' PC='$PC' B4='$B4'; sclient a | grep -q MARKER-7f3a"
v0=$(metric "$PB" 'pillion_proxy_tls_handshake_failures_total{direction="inbound",reason="certificate_verify"}')
check "(d) a client certificate from another CA is refused" sh -c "$(declare -f sclient); T='$T' PC='$PC' B4='$B4'; ! sclient ra | grep -q MARKER"
check "(d) ... counted as certificate_verify" \
	test "$(metric "$PB" 'pillion_proxy_tls_handshake_failures_total{direction="inbound",reason="certificate_verify"}')" -gt "$v0"
p0=$(metric "$PB" 'pillion_proxy_tls_handshake_failures_total{direction="inbound",reason="peer_identity"}')
check "(d) a mesh-CA certificate for another trust domain is refused" sh -c "$(declare -f sclient); T='$T' PC='$PC' B4='$B4'; ! sclient x | grep -q MARKER"
check "(d) ... counted as peer_identity" \
	test "$(metric "$PB" 'pillion_proxy_tls_handshake_failures_total{direction="inbound",reason="peer_identity"}')" -gt "$p0"
# The caller's side: the directory expects another identity for b, so a must not talk to b.
o0=$(metric "$PA" 'pillion_proxy_tls_handshake_failures_total{direction="outbound",reason="peer_identity"}')
r0=$(metric "$PA" 'pillion_proxy_reloads_total{file="mesh",result="ok"}')
# Projected gzipped, as the operator writes a large directory (binaryData mesh.json.gz): the
# proxy follows the switch from mesh.json to mesh.json.gz and back.
gzip -9 -c "$T/mesh-wrong.json" >"$T/mesh-wrong.json.gz"
project "$T/a/mesh" mesh.json.gz="$T/mesh-wrong.json.gz"
test ! -e "$T/a/mesh/mesh.json" || fail "(d) the projection left mesh.json behind"
wait_for 60 sh -c "test \"\$(ip netns exec '$PA' curl -s --max-time 30 http://127.0.0.1:15420/metrics | awk '/^pillion_proxy_reloads_total\{file=\"mesh\",result=\"ok\"\}/ {print \$2}')\" -gt $r0" ||
	fail "(d) a's proxy did not reload the gzipped mesh directory"
# HTTP: the app gets a 503 from its proxy that says why, never b's answer.
check "(d) a refuses b when b presents an identity the directory does not list (503 naming the identity)" \
	sh -c "ip netns exec '$PA' setpriv --reuid=$APP_UID --regid=$APP_UID --clear-groups curl -s -i --max-time 30 http://$B4:8080/hello.txt >'$T/d.out'; grep -q '^HTTP/1.1 503' '$T/d.out' && grep -qi '^pillion-proxy-error: mtls failure' '$T/d.out' && grep -q 'not an identity the mesh directory lists' '$T/d.out' && ! grep -q MARKER '$T/d.out'"
check "(d) ... counted as outbound peer_identity" \
	test "$(metric "$PA" 'pillion_proxy_tls_handshake_failures_total{direction="outbound",reason="peer_identity"}')" -gt "$o0"
# The byte relay goes the same dial path (sidecar/dial.c): a server-speaks-first connection is
# relayed as bytes after detection, and b's identity is refused there too.
o1=$(metric "$PA" 'pillion_proxy_tls_handshake_failures_total{direction="outbound",reason="peer_identity"}')
check "(d) a byte-relay connection to b (server speaks first) is closed, never relayed" \
	sh -c "! ip netns exec '$PA' setpriv --reuid=$APP_UID --regid=$APP_UID --clear-groups timeout 60 $PY '$HERE/relay_peer.py' client '$B4' 7001 greet"
check "(d) ... counted as outbound peer_identity too" \
	test "$(metric "$PA" 'pillion_proxy_tls_handshake_failures_total{direction="outbound",reason="peer_identity"}')" -gt "$o1"
project "$T/a/mesh" mesh.json="$T/mesh.json"
wait_for 60 sh -c "ip netns exec '$PA' setpriv --reuid=$APP_UID --regid=$APP_UID --clear-groups curl -sf --max-time 30 http://$B4:8080/hello.txt" ||
	fail "(d) a did not reach b again after the directory was fixed"

# (c) PERMISSIVE: switching b's config (hot) lets the plaintext client in
project "$T/b/config" proxy.json="$T/b-permissive.json"
check "(c) PERMISSIVE (hot-reloaded) accepts the plaintext client" \
	wait_for 60 sh -c "ip netns exec '$PC' curl -sf --max-time 30 http://$B4:8080/hello.txt | grep -q MARKER-7f3a"
check "(c) ... and mTLS from a still works" \
	test "$(get "$PA" "$APP_UID" "http://$B4:8080/hello.txt")" = "hello-from-b MARKER-7f3a"

# (g) IPv6 the same way
m6=$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="mtls"}')
check "(g) IPv6: a reaches b's app by b's IPv6 address" \
	test "$(get "$PA" "$APP_UID" "http://[$B6]:8080/hello.txt")" = "hello-from-b MARKER-7f3a"
check "(g) IPv6: ... with mTLS" \
	test "$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="mtls"}')" -gt "$m6"
check "(g) IPv6: a skipped inbound port goes direct" \
	test "$(get "$PC" 0 "http://[$B6]:9090/hello.txt")" = "hello-from-b MARKER-7f3a"

# (h) the relay against real misbehaving peers: half-close, resets, back-pressure,
# server-speaks-first; over mTLS (a -> b), plaintext passthrough with splice (a -> c),
# and PERMISSIVE plaintext inbound (c -> b).
relay() { in_ns "$1" "$APP_UID" timeout 60 $PY "$HERE/relay_peer.py" client "$2" "$3" "$4"; }
for path in "mtls:$PA:$B4" "passthrough:$PA:$C4" "plaintext-inbound:$PC:$B4"; do
	IFS=: read -r name ns dst <<<"$path"
	check "(h) $name: half-close passes each FIN on while the other direction flows" relay "$ns" "$dst" 7000 half
	check "(h) $name: a server reset reaches the client as a reset" relay "$ns" "$dst" 7000 reset
	check "(h) $name: a server-speaks-first protocol works" relay "$ns" "$dst" 7001 greet
done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
for path in "mtls:$B4" "passthrough:$C4"; do
	IFS=: read -r name dst <<<"$path"
	base=$(rss "$PROXY_a"); peak=$base
	bg "$PA" "$APP_UID" timeout 60 $PY "$HERE/relay_peer.py" client "$dst" 7000 backpressure
	BP=$LAST_PID
	while kill -0 "$BP" 2>/dev/null; do
		r=$(rss "$PROXY_a"); [ "${r:-0}" -gt "$peak" ] && peak=$r
		sleep 0.1
	done
	check "(h) $name: 64 MiB into a stalled reader arrive intact" wait "$BP"
	check "(h) $name: ... and the proxy's memory stays bounded (RSS +$(((peak - base) / 1024)) MiB < 24 MiB)" \
		test $((peak - base)) -lt $((24 * 1024))
done
# The gauge falls when the proxy has seen both ends close, which may be after the clients exit.
relays_closed() {
	[ "$(metric "$PA" 'pillion_proxy_connections_open{direction="outbound",transport="mtls"}'):$(metric "$PA" 'pillion_proxy_connections_open{direction="outbound",transport="plaintext"}')" = 0:0 ]
}
wait_for 60 relays_closed
check "(h) no relayed connection is left open on a's proxy" test \
	"$(metric "$PA" 'pillion_proxy_connections_open{direction="outbound",transport="mtls"}'):$(metric "$PA" 'pillion_proxy_connections_open{direction="outbound",transport="plaintext"}')" = "0:0"
check "(h) the plaintext relays used splice" test "$(metric "$PA" 'pillion_proxy_spliced_bytes_total')" -gt $((64 << 20))

# (e) configs and certificates rewritten again and again under load: zero failed requests
big_sum=$(sha256sum "$T/www/big.bin" | cut -d' ' -f1)
bg "$PA" "$APP_UID" $PY "$HERE/load.py" "http://$B4:8080/hello.txt" 400 90 MARKER-7f3a
LOAD1=$LAST_PID
bg "$PA" "$APP_UID" $PY "$HERE/load.py" "http://[$B6]:8080/hello.txt" 400 90 MARKER-7f3a --keepalive
LOAD2=$LAST_PID
# A long transfer that spans every swap: open connections finish on the state they began with.
bg "$PA" "$APP_UID" sh -c "curl -sS --max-time 60 --limit-rate 600k -o '$T/out/big.out' http://$B4:8080/big.bin"
BIG=$LAST_PID
cfg_ok0=$(metric "$PB" 'pillion_proxy_reloads_total{file="config",result="ok"}')
tls_ok0=$(metric "$PB" 'pillion_proxy_reloads_total{file="tls",result="ok"}')
for i in $(seq 1 12); do
	if [ $((i % 2)) = 0 ]; then leaf=b; cfg=b-permissive; else leaf=b2; cfg=b-strict; fi
	project "$T/b/config" proxy.json="$T/$cfg.json"
	project "$T/b/tls" tls.crt="$T/pki/$leaf.crt" tls.key="$T/pki/$leaf.key" ca.crt="$T/pki/ca.crt"
	project "$T/a/tls" tls.crt="$T/pki/a.crt" tls.key="$T/pki/a.key" ca.crt="$T/pki/ca.crt"
	project "$T/a/mesh" mesh.json="$T/mesh.json"
	sleep 0.25
done
project "$T/b/config" proxy.json="$T/b-permissive.json"
CFG_OK='pillion_proxy_reloads_total{file="config",result="ok"}'
TLS_OK='pillion_proxy_reloads_total{file="tls",result="ok"}'
CFG_ERR='pillion_proxy_reloads_total{file="config",result="error"}'
TLS_ERR='pillion_proxy_reloads_total{file="tls",result="error"}'
check "(e) b's proxy took the new configs" wait_for 60 metric_ge "$PB" "$CFG_OK" $((cfg_ok0 + 1))
check "(e) b's proxy took the new certificates" wait_for 60 metric_ge "$PB" "$TLS_OK" $((tls_ok0 + 1))
# Invalid files: refused, counted, nothing changes. The baseline is the last good config, once b
# runs it (its hash in pillion_proxy_config_info); each bad file is projected once the one before
# it was counted.
good_hash=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["hash"])' "$T/b-permissive.json")
config_info() { ip netns exec "$PB" curl -s --max-time 30 http://127.0.0.1:15420/metrics | grep '^pillion_proxy_config_info'; }
runs_good() { config_info | grep -qF "hash=\"$good_hash\""; }
wait_for 60 runs_good ||
	fail "(e) b did not run the last good config (hash $good_hash) within 60 s"
hash0=$(config_info)
echo '{"apiVersion":"pillion.dev/v1alpha1","kind":"ProxyConfig","pod":' > "$T/broken.json"
sed -E 's/"mtlsMode": *"PERMISSIVE"/"mtlsMode": "STRICT"/' "$T/b-permissive.json" > "$T/tampered.json"
cmp -s "$T/b-permissive.json" "$T/tampered.json" && die "could not tamper with the config"
cfgerr0=$(metric "$PB" "$CFG_ERR")
project "$T/b/config" proxy.json="$T/broken.json"
wait_for 60 metric_ge "$PB" "$CFG_ERR" $((cfgerr0 + 1))
project "$T/b/config" proxy.json="$T/tampered.json"
wait_for 60 metric_ge "$PB" "$CFG_ERR" $((cfgerr0 + 2))
tlserr0=$(metric "$PB" "$TLS_ERR")
project "$T/b/tls" tls.crt="$T/pki/b.crt" tls.key="$T/pki/a.key" ca.crt="$T/pki/ca.crt"
wait_for 60 metric_ge "$PB" "$TLS_ERR" $((tlserr0 + 1))
project "$T/b/tls" tls.crt="$T/pki/ra.crt" tls.key="$T/pki/ra.key" ca.crt="$T/pki/ca.crt"
wait_for 60 metric_ge "$PB" "$TLS_ERR" $((tlserr0 + 2))
check "(e) a truncated and a tampered config are refused and counted" \
	test "$(metric "$PB" 'pillion_proxy_reloads_total{file="config",result="error"}')" -ge $((cfgerr0 + 2))
check "(e) a mismatched key and a certificate from another CA are refused and counted" \
	test "$(metric "$PB" 'pillion_proxy_reloads_total{file="tls",result="error"}')" -ge $((tlserr0 + 2))
check "(e) the config in use did not change" \
	test "$(config_info)" = "$hash0"
check "(e) b stays ready on its last good files" ip netns exec "$PB" curl -sf -o /dev/null http://127.0.0.1:15420/ready
check "(e) the load loop (new connection per request) failed no request" wait "$LOAD1"
check "(e) the keep-alive load loop (IPv6) failed no request" wait "$LOAD2"
# (wait in this shell: the transfer is its child; a wait inside sh -c would return at once)
wait "$BIG"
check "(e) the long transfer across every swap completed intact" \
	test "$(sha256sum "$T/out/big.out" | cut -d' ' -f1)" = "$big_sum"
project "$T/b/tls" tls.crt="$T/pki/b.crt" tls.key="$T/pki/b.key" ca.crt="$T/pki/ca.crt"

# Draining: SIGTERM lets an open transfer finish, then the proxy exits 0. The signal goes once
# bytes of the transfer have arrived (the proxy was started with --drain-timeout 60s).
bg "$PA" "$APP_UID" sh -c "curl -sS --max-time 60 --limit-rate 1500k -o '$T/out/big2.out' http://$B4:8080/big.bin"
BIG2=$LAST_PID
wait_for 60 test -s "$T/out/big2.out" || fail "(drain) the transfer did not start within 60 s"
kill -TERM "$PROXY_a"
# a runs with --drain-delay 120s: it keeps serving new connections until a second SIGTERM.
draining() { ip netns exec "$PA" curl -s --max-time 30 http://127.0.0.1:15420/ready | grep -q draining; }
wait_for 60 draining || fail "(drain) /ready did not say draining within 60 s"
get "$PA" "$APP_UID" "http://$B4:8080/hello.txt" -i > "$T/drain.out" 2>&1
check "(drain) during the drain delay a new connection's request is served" grep -q "hello-from-b MARKER-7f3a" "$T/drain.out"
check "(drain) ... with Connection: close" grep -qi '^connection: close' "$T/drain.out"
kill -TERM "$PROXY_a"
wait "$PROXY_a"; rc=$?
check "(drain) the proxy exited 0 after a second SIGTERM ended the delay" test "$rc" = 0
wait "$BIG2" 2>/dev/null
check "(drain) the transfer open at SIGTERM completed" \
	test "$(sha256sum "$T/out/big2.out" | cut -d' ' -f1)" = "$big_sum"

# The admin port: /config shows the state but never key material; POST /shutdown drains and exits.
ip netns exec "$PB" curl -s http://127.0.0.1:15420/config >"$T/config.out"
check "(admin) /config shows the identity in use" grep -q "$ID_B" "$T/config.out"
check "(admin) /config holds no key material" sh -c "! grep -q 'PRIVATE KEY' '$T/config.out'"
ip netns exec "$PB" curl -s http://127.0.0.1:15420/status >"$T/status.out"
check "(admin) /status names the config hash in use, as /metrics does, and the certificate's identity" \
	$PY - "$T/status.out" "$(config_info | sed -E 's/.*hash="([^"]*)".*/\1/')" "$ID_B" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
ok = s["config"]["hash"] == sys.argv[2] and s["certificate"]["spiffeId"] == sys.argv[3] and s["ready"] is True \
    and s["mesh"]["hash"] is not None and s["config"]["loadedAt"] > 0 and "inbound" not in json.dumps(s)
sys.exit(0 if ok else 1)
PYEOF
check "(admin) GET /shutdown is refused" test "$(ip netns exec "$PB" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15420/shutdown)" = 405
check "(admin) POST /shutdown from another pod is refused" test "$(ip netns exec "$PC" curl -s -o /dev/null -w '%{http_code}' -X POST "http://$B4:15420/shutdown")" = 403
check "(admin) POST /shutdown is accepted" test "$(ip netns exec "$PB" curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:15420/shutdown)" = 202
wait "$PROXY_b"; rc=$?
check "(admin) ... and the proxy exits 0 (a Job's sidecar ends)" test "$rc" = 0

echo "$E2E_CHECKS checks, $E2E_FAILS failed"
[ "$E2E_FAILS" = 0 ]
