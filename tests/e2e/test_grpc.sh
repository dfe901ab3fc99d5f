#!/bin/bash
# HTTP/2 and gRPC end-to-end: a python3-grpcio client in pod a calls a Service of three server pods
# (b, d, e) through both proxies with mTLS: per-request balancing on one client connection, the
# four streaming kinds, retry on UNAVAILABLE, deadlines, method authorization, fault abort; then
# curl --http2-prior-knowledge and h2load through the same path.
# usage: test_grpc.sh BIN_DIR   (root; needs iproute2, iptables, curl, openssl, python3-grpcio, h2load)
set -u
BIN=$(cd "${1:?usage: test_grpc.sh BIN_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, iptables)"
need ip iptables ip6tables curl openssl setpriv timeout h2load nghttp /usr/bin/python3
PY=/usr/bin/python3
$PY -c 'import grpc' 2>/dev/null || die "python3-grpcio is not installed (make deps installs it)"
$PY -c 'import hpack' 2>/dev/null || die "python3-hpack is not installed (make deps installs it)"
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=4"

E2E_TMP=$(mktemp -d -t pillion-grpc.XXXXXX)
trap e2e_cleanup EXIT
[ -n "${KEEP_TMP:-}" ] && trap "E2E_TMP=; e2e_cleanup" EXIT
T=$E2E_TMP
SFX=$(printf '%04x' $((RANDOM)))
APP_UID=1000
PROXY_UID=1407

# --- network: a (client), b, d, e (echo servers); all meshed ---
e2e_pods pg "$SFX" 198.18.5 2001:db8:5 a b d e
PA=pg-a-$SFX
B4=198.18.5.2; D4=198.18.5.3; E4=198.18.5.4; SVC=198.18.5.100
wait_for 60 ip netns exec "$PA" ping -c1 -W1 "$B4" || die "no IPv4 path between the pods"

TD=cluster.local
mkdir -p "$T/pki"
mk_ca "$T/pki" ca
for p in a b d e; do mk_leaf "$T/pki" ca "$p" "spiffe://$TD/ns/g/sa/$p"; done
[ -s "$T/pki/e.crt" ] || die "openssl could not make the test certificates"

cat > "$T/objs.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: g}
spec:
  selector: {app: echo}
  clusterIP: $SVC
  ports: [{name: grpc, port: 9090, targetPort: 9090, appProtocol: grpc}]
---
# echo1: b alone, behind a circuit breaker of one connection and five waiting calls
apiVersion: v1
kind: Service
metadata: {name: echo1, namespace: g}
spec:
  selector: {app: nobody}
  clusterIP: 198.18.5.101
  ports: [{name: grpc, port: 9090, targetPort: 9090, appProtocol: grpc}]
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: echo1, namespace: g}
spec:
  targetRef: {kind: Service, name: echo1, port: 9090}
  circuitBreaker: {maxConnections: 1, maxPendingRequests: 5}
---
# web: an HTTP/1 app on b (http_peer.py), reached by HTTP/1 requests carried over HTTP/2
apiVersion: v1
kind: Service
metadata: {name: web, namespace: g}
spec:
  selector: {app: echo}
  clusterIP: 198.18.5.102
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: g}
spec:
  targetRef: {kind: Service, name: web, port: 8080}
  accessLog: {enabled: true}
---
apiVersion: pillion.dev/v1alpha1
kind: MeshIdentity
metadata: {name: default, namespace: g}
spec: {mtls: {mode: STRICT}}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: echo, namespace: g}
spec:
  targetRef: {kind: Service, name: echo, port: 9090}
  routes:
  - name: fail
    match: {path: {exact: /pillion.test.Echo/Fail}}
    retries: {attempts: 3, retryOn: [unavailable], budget: {percent: 100, minPerSecond: 100}}
  - name: slow
    match: {path: {exact: /pillion.test.Echo/Slow}}
    timeout: 500ms
  - name: delayed
    match: {headers: [{name: x-delay, exact: "yes"}]}
    faultInjection: {delay: {percent: 100, duration: 5s}}
  - name: abort
    match: {headers: [{name: x-abort, exact: "yes"}]}
    faultInjection: {abort: {percent: 100, httpStatus: 503}}
  - name: rpc
  authorization:
    rules:
    - name: a-calls-echo
      from: {identities: ["spiffe://cluster.local/ns/g/sa/a"]}
      to: {paths: ["/pillion.test.Echo/Unary", "/pillion.test.Echo/Server", "/pillion.test.Echo/Client",
                   "/pillion.test.Echo/Bidi", "/pillion.test.Echo/Fail", "/pillion.test.Echo/Slow",
                   "/pillion.test.Echo/Sleep", "/pillion.test.Echo/Big", "/plain/*"]}
  accessLog: {enabled: true}
YAML

pod() { # NAME APP
	cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: g, labels: {app: $2}, annotations: {pillion.dev/id: "${1}0000000000000000000000000000001"${ANN:+, $ANN}}}
spec: {serviceAccountName: $1, containers: [{name: app, image: app, ports: [{containerPort: 9090, name: grpc}, {containerPort: 8080, name: http}]${PROBES:+, $PROBES}}, {name: pillion-proxy, image: proxy, args: [--outbound, /etc/pillion/mesh/outbound.json]}]}
YAML
}
# b's app has gRPC probes, as the webhook leaves them: the originals in pillion.dev/probes, the
# kubelet pointed at the admin port.
B_ANN="pillion.dev/probes: '{\"app\": {\"readinessProbe\": {\"grpc\": {\"port\": 9090}}, \"livenessProbe\": {\"grpc\": {\"port\": 9090, \"service\": \"pillion.test.Down\"}}, \"startupProbe\": {\"grpc\": {\"port\": 9090, \"service\": \"nope\"}}}}'"
B_PROBES="readinessProbe: {httpGet: {path: /app-health/app/readiness, port: 15420}}, livenessProbe: {httpGet: {path: /app-health/app/liveness, port: 15420}}, startupProbe: {httpGet: {path: /app-health/app/startup, port: 15420}}"
pod a client > "$T/pod-a.yaml"
ANN=$B_ANN PROBES=$B_PROBES pod b echo > "$T/pod-b.yaml"
for p in d e; do pod "$p" echo > "$T/pod-$p.yaml"; done
for p in a b d e; do
	"$BIN/pillionctl" render --pod "$T/pod-$p.yaml" -f "$T/objs.yaml" > "$T/$p.json" || die "render $p"
done
"$BIN/pillionctl" render --outbound g -f "$T/objs.yaml" > "$T/outbound.json" || die "render --outbound"
ID() { echo "\"spiffe://$TD/ns/g/sa/$1\""; }
cat > "$T/mesh.json" <<JSON
{"apiVersion":"pillion.dev/v1alpha1","kind":"MeshDirectory","namespace":"g",
 "services":[
  {"namespace":"g","name":"echo","addresses":["$SVC"],"ports":[9090],"identities":[$(ID b),$(ID d),$(ID e)],
   "endpoints":[{"addresses":["$B4"],"ports":[9090]},{"addresses":["$D4"],"ports":[9090]},{"addresses":["$E4"],"ports":[9090]}]},
  {"namespace":"g","name":"echo1","addresses":["198.18.5.101"],"ports":[9090],"identities":[$(ID b)],
   "endpoints":[{"addresses":["$B4"],"ports":[9090]}]},
  {"namespace":"g","name":"web","addresses":["198.18.5.102"],"ports":[8080],"identities":[$(ID b),$(ID d)],
   "endpoints":[{"addresses":["$B4"],"ports":[8080]}]},
  {"namespace":"g","name":"ghost","addresses":["198.18.5.104"],"ports":[8080],"identities":[$(ID b)],
   "endpoints":[{"addresses":["198.18.5.200","198.18.5.201","198.18.5.202","198.18.5.203"],"ports":[8080]}]},
  {"namespace":"g","name":"web2","addresses":["198.18.5.103"],"ports":[8080],"identities":[$(ID b),$(ID d)],
   "endpoints":[{"addresses":["$D4"],"ports":[8080]},{"addresses":["$B4"],"ports":[8080]}]}],
 "pods":[{"namespace":"g","name":"a","addresses":["198.18.5.1"],"identity":$(ID a)},
         {"namespace":"g","name":"b","addresses":["$B4"],"identity":$(ID b)},
         {"namespace":"g","name":"d","addresses":["$D4"],"identity":$(ID d)},
         {"namespace":"g","name":"e","addresses":["$E4"],"identity":$(ID e)}]}
JSON
for p in a b d e; do
	mkdir -p "$T/$p/config" "$T/$p/mesh" "$T/$p/tls"
	project "$T/$p/mesh" mesh.json="$T/mesh.json" outbound.json="$T/outbound.json"
	project "$T/$p/tls" tls.crt="$T/pki/$p.crt" tls.key="$T/pki/$p.key" ca.crt="$T/pki/ca.crt"
	project "$T/$p/config" proxy.json="$T/$p.json"
done
chmod -R a+rX "$T"
mkdir -p "$T/run" && chmod 1777 "$T/run"

# --- the echo servers ---
for p in b d e; do
	bg "pg-$p-$SFX" "$APP_UID" $PY "$HERE/grpc_peer.py" serve --listen "[::]:9090" --name "$p" --ready-file "$T/run/ready-$p" --state-dir "$T/run"
	wait_for 60 test -s "$T/run/ready-$p" || die "grpc server $p did not start"
done
bg "pg-b-$SFX" "$APP_UID" $PY "$HERE/http_peer.py" serve --listen "0.0.0.0:8080" --name web --ready-file "$T/run/ready-web"
wait_for 60 test -s "$T/run/ready-web" || die "HTTP/1 server on b did not start"

# --- the mesh ---
for p in a b d e; do
	ns=pg-$p-$SFX
	in_ns "$ns" 0 "$BIN/pillion-init" >"$T/init-$p.log" 2>&1 || { cat "$T/init-$p.log"; die "pillion-init in $p"; }
	# b opens at most 4 connections to one app port (section 13: streams sent on as HTTP/1.1 take
	# one each, and wait beyond that).
	cap=""
	[ "$p" = b ] && cap="--upstream-max-connections 4"
	# shellcheck disable=SC2086
	bg "$ns" "$PROXY_UID" "$BIN/pillion-proxy" --config "$T/$p/config/proxy.json" --mesh "$T/$p/mesh/mesh.json" \
		--outbound "$T/$p/mesh/outbound.json" --tls-dir "$T/$p/tls" --detect-timeout 3s --log-level info \
		--stream-idle-timeout 8s --http1-over-http2 true --resync-interval 2s $cap \
		> "$T/access-$p.log" 2> "$T/proxy-$p.log"
	[ "$p" = a ] && PROXY_A=$LAST_PID
done
for p in a b d e; do
	wait_for 60 ip netns exec "pg-$p-$SFX" curl -sf -o /dev/null http://127.0.0.1:15420/ready || die "proxy in $p not ready"
done
ok "four proxies ready"

call() { in_ns "$PA" "$APP_UID" timeout 120 $PY "$HERE/grpc_peer.py" call "$SVC:9090" "$@"; }
js() { $PY -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }

# (1) 3,000 unary calls on one client connection, balanced per request across the three pods
out=$(call unary 3000)
echo "$out" > "$T/r1"
check "(1) 3,000 calls on one connection reach b, d and e each within 10% of 1,000 ($out)" \
	test "$(js 'all(900 <= d.get(k, 0) <= 1100 for k in "bde") and sum(d.values()) == 3000' < "$T/r1")" = True
check "(1) a's proxy counts them: outbound, g/echo, route rpc, 200" \
	test "$(metric "$PA" 'pillion_proxy_requests_total{direction="outbound",service="g/echo",route="rpc",class="2xx",code="200"}')" -ge 3000
check "(1) ... over few mTLS connections (one per pod)" \
	test "$(metric "$PA" 'pillion_proxy_upstream_connections_total{direction="outbound",tls="true"}')" -le 6
check "(1) a's access log says HTTP/2, with each call's grpc-status" \
	bash -c "grep -q '\"protocol\":\"HTTP/2\"' '$T/access-a.log' && grep -q '\"status\":200,\"grpc_status\":0,' '$T/access-a.log'"

# (2) the streaming kinds, with flow control end to end
out=$(call server 2000)
check "(2) server streaming: 2,000 answers ($out)" test "$(echo "$out" | js 'd["answers"]')" = 2000
out=$(call client 2000)
check "(2) client streaming: 2,000 requests counted by the server ($out)" \
	bash -c "echo '$out' | grep -Eq '\"answer\": \"[bde]:2000\"'"
out=$(call bidi 200)
check "(2) bidi streaming in lock step: 200 answers ($out)" test "$(echo "$out" | js 'd["answers"]')" = 200

out=$(call big 1100)
check "(2) 1,100 calls answered with 64 KiB each (69 MiB, more than the windows of the 3 connections) on one connection ($out)" \
	test "$(echo "$out" | js 'd["bytes"]')" = $((1100 * 65536))

# (3) retry on UNAVAILABLE (the servers fail the first two calls of a key, counted across the three)
out=$(call fail k1 2)
check "(3) two UNAVAILABLE answers are retried: OK on the third attempt ($out)" \
	bash -c "echo '$out' | grep -q '\"code\": \"OK\"'"
check "(3) ... and counted as retries" \
	test "$(metric "$PA" 'pillion_proxy_retries_total{direction="outbound",service="g/echo",route="fail"}')" -ge 2
out=$(call fail k2 9)
check "(3) past the attempts the caller gets UNAVAILABLE from the server ($out)" \
	bash -c "echo '$out' | grep -q '\"code\": \"UNAVAILABLE\"'"

# (4) deadlines: the route's timeout, and the caller's grpc-timeout
out=$(call slow 3000 20)
check "(4) the route's 500 ms timeout ends a 3 s call with DEADLINE_EXCEEDED from the proxy ($out)" \
	bash -c "echo '$out' | grep -q '\"code\": \"DEADLINE_EXCEEDED\"' && echo '$out' | grep -q '\"proxy_error\": \"timeout\"'"

# the caller's grpc-timeout (300 ms) runs out while its route holds the call for an injected 5 s
# delay: the proxy answers, the server never sees it
printf '\0\0\0\0\004abcd' > "$T/unary.grpc"
in_ns "$PA" "$APP_UID" timeout 60 nghttp -v -H 'content-type: application/grpc' -H 'te: trailers' -H 'x-delay: yes' \
	-H 'grpc-timeout: 300m' -d "$T/unary.grpc" "http://$SVC:9090/pillion.test.Echo/Unary" > "$T/r4b" 2>&1
check "(4) grpc-timeout: 300m ends a call held 5 s with DEADLINE_EXCEEDED (4) from the proxy" \
	bash -c "grep -q 'grpc-status: 4' '$T/r4b' && grep -q 'pillion-proxy-error: timeout' '$T/r4b'"

# (5) authorization by method, on the servers' side
out=$(call method Admin)
check "(5) a method no rule allows is PERMISSION_DENIED by the server's proxy ($out)" \
	bash -c "echo '$out' | grep -q '\"code\": \"PERMISSION_DENIED\"'"
check "(5) ... counted as denied" \
	bash -c "for p in b d e; do ip netns exec pg-\$p-$SFX curl -s http://127.0.0.1:15420/metrics; done | grep -q '^pillion_proxy_authorization_denied_total{service=\"g/echo\"'"

# (6) fault abort: a gRPC status, not an HTTP one
out=$(call unary 1 x-abort=yes)
check "(6) an injected abort (503) reaches a gRPC caller as UNAVAILABLE ($out)" \
	test "$out" = '{"error:UNAVAILABLE": 1}'

check "(6) gRPC answers are counted by grpc-status: 3,000+ OK on route rpc" \
	test "$(metric "$PA" 'pillion_proxy_grpc_responses_total{direction="outbound",service="g/echo",route="rpc",grpc_status="0"}')" -ge 3000
check "(6) ... UNAVAILABLE (14) on route abort, the proxy's own" \
	test "$(metric "$PA" 'pillion_proxy_grpc_responses_total{direction="outbound",service="g/echo",route="abort",grpc_status="14"}')" -ge 1
check "(6) ... PERMISSION_DENIED (7) at the servers' side" \
	bash -c "for p in b d e; do ip netns exec pg-\$p-$SFX curl -s http://127.0.0.1:15420/metrics; done | grep -q '^pillion_proxy_grpc_responses_total{direction=\"inbound\",service=\"g/echo\",route=\"\",grpc_status=\"7\"}'"

# (7) any HTTP/2 client: curl with prior knowledge, and h2load
in_ns "$PA" "$APP_UID" curl -s -o /dev/null -w '%{http_version} %{http_code}\n' --http2-prior-knowledge \
	--max-time 30 "http://$SVC:9090/plain/x" > "$T/r7" 2>&1
check "(7) curl --http2-prior-knowledge gets the server's HTTP/2 answer ($(cat "$T/r7"))" grep -q '^2 ' "$T/r7"
in_ns "$PA" "$APP_UID" timeout 120 h2load -n 2000 -c 4 -m 10 "http://$SVC:9090/plain/load" > "$T/r8" 2>&1
check "(7) h2load: 2,000 requests on 4 connections, 10 streams each, all answered ($(grep -E '^requests:' "$T/r8"))" \
	grep -Eq '^requests: 2000 total, 2000 started, 2000 done' "$T/r8"
check "(7) ... with no stream errors" grep -Eq ' 0 errored, 0 timeout' "$T/r8"

# (11) circuit breaking: 70 calls of 2 s at once to echo1 (one pod; maxConnections 1, whose 64
# streams fill it; maxPendingRequests 5): 64 run, 5 wait their turn, 1 is refused at once
printf '\0\0\0\0\0042000' > "$T/sleep2.grpc"
in_ns "$PA" "$APP_UID" timeout 120 h2load -n 70 -c 1 -m 70 -d "$T/sleep2.grpc" -H 'content-type: application/grpc' \
	-H 'te: trailers' "http://198.18.5.101:9090/pillion.test.Echo/Sleep" > "$T/r11" 2>&1
ip netns exec "$PA" curl -s --max-time 30 http://127.0.0.1:15420/metrics > "$T/metrics-a-11.txt"
g1() { metric "$PA" "pillion_proxy_grpc_responses_total{direction=\"outbound\",service=\"g/echo1\",route=\"default\",grpc_status=\"$1\"}"; }
check "(11) one call over maxPending is refused UNAVAILABLE, counted as max_pending ($(grep -E '^requests:' "$T/r11"))" \
	bash -c "[ '$(g1 14)' = 1 ] && [ '$(metric "$PA" 'pillion_proxy_circuit_breaker_total{service="g/echo1",reason="max_pending"}')' -ge 1 ]"
check "(11) ... the 69 others complete, the waiting ones once room opened ($(g1 0) OK)" test "$(g1 0)" = 69
check "(11) ... over one connection to the pod" \
	test "$(metric "$PA" 'pillion_proxy_upstream_connections_total{direction="outbound",tls="true"}')" -le 7

# (12) the kubelet's gRPC probes, run by b's proxy on loopback (the app's port takes no plaintext: STRICT)
PB=pg-b-$SFX
probe() { ip netns exec "$PB" curl -s --max-time 30 -w ' %{http_code}' "http://$B4:15420/app-health/app/$1"; }
out=$(probe readiness)
check "(12) a gRPC readiness probe of the server as a whole: SERVING, 200 ($out)" bash -c "[[ '$out' == *SERVING*' 200' ]]"
out=$(probe liveness)
check "(12) a gRPC probe of a NOT_SERVING service: 503 ($out)" bash -c "[[ '$out' == *NOT_SERVING*' 503' ]]"
out=$(probe startup)
check "(12) a gRPC probe of a service the server does not know: 503, grpc-status 5 ($out)" \
	bash -c "[[ '$out' == *'grpc-status 5'*' 503' ]]"
# as the kubelet would call it without the rewrite: plaintext HTTP/2 from outside the pod (from a,
# as the proxy's UID, which pillion-init leaves unredirected)
out=$(in_ns "$PA" "$PROXY_UID" curl -s --max-time 10 -o /dev/null -w '%{http_code}' --http2-prior-knowledge \
	"http://$B4:9090/grpc.health.v1.Health/Check" || true)
check "(12) ... while the app's port refuses plaintext HTTP/2 from outside, as STRICT wants ($out)" test "$out" = 000

# (13) HTTP/1 requests carried over HTTP/2 (pillion-orig-proto): HTTP/1.1 again for b's HTTP/1 app
WEB=198.18.5.102:8080
h1c() { in_ns "$PA" "$APP_UID" curl -s --max-time 30 --http2-prior-knowledge -H 'pillion-orig-proto: HTTP/1.1' "$@"; }
out=$(h1c "http://$WEB/one?echo=1")
check "(13) through both proxies the HTTP/1 app reads an HTTP/1.1 request, the marker gone ($out)" \
	bash -c "echo '$out' | $PY -c 'import json,sys; e=json.load(sys.stdin); h=[k.lower() for k,v in e[\"headers\"]]; sys.exit(not (e[\"version\"]==\"HTTP/1.1\" and e[\"target\"]==\"/one?echo=1\" and \"pillion-orig-proto\" not in h and \"host\" in h))'"
head -c 300000 /dev/urandom > "$T/upload.bin"
want=$(sha256sum < "$T/upload.bin" | cut -d' ' -f1)
out=$(h1c --data-binary @"$T/upload.bin" "http://$WEB/up?echo=1")
check "(13) a 300 KB upload with its length arrives whole ($(echo "$out" | js 'd["body_len"]'))" \
	test "$(echo "$out" | js 'd["body_sha256"]')" = "$want"
out=$(cat "$T/upload.bin" | h1c -H 'transfer-encoding: chunked' --data-binary @- "http://$WEB/up2?echo=1")
check "(13) ... and one of no length, chunked for the app ($(echo "$out" | js '[v for k, v in d["headers"] if k.lower() == "transfer-encoding"]'))" \
	test "$(echo "$out" | js 'd["body_sha256"] + str([v for k, v in d["headers"] if k.lower() == "transfer-encoding"])')" = "$want['chunked']"
out=$(h1c -o "$T/run/r13c" -w '%{http_code}' "http://$WEB/c?chunked=500")
check "(13) a chunked answer of 500 chunks arrives whole as HTTP/2 DATA ($out, $(wc -l < "$T/run/r13c") lines)" \
	bash -c "[ '$out' = 200 ] && [ \$(wc -l < '$T/run/r13c') = 500 ]"
out=$(h1c -o "$T/run/r13n" -w '%{http_code}' "http://$WEB/n?noclen=1&body=200000")
check "(13) an answer ended by the close arrives whole ($out, $(stat -c %s "$T/run/r13n") bytes)" \
	bash -c "[ '$out' = 200 ] && [ \$(stat -c %s '$T/run/r13n') = 200000 ]"
out=$(h1c -o /dev/null -w '%{http_code}' "http://$WEB/i?status=103")
check "(13) an interim 103 is passed over, the final 200 arrives ($out)" test "$out" = 200
out=$(h1c -I -o /dev/null -w '%{http_code}' "http://$WEB/h")
check "(13) HEAD: a head, no body ($out)" test "$out" = 200
in_ns "$PA" "$APP_UID" curl -s --max-time 30 "http://$WEB/__reset" > /dev/null
in_ns "$PA" "$APP_UID" timeout 120 h2load -n 2000 -c 2 -m 10 -H 'pillion-orig-proto: HTTP/1.1' "http://$WEB/load" > "$T/r13l" 2>&1
conns=$(in_ns "$PA" "$APP_UID" curl -s --max-time 30 "http://$WEB/__stats" | js 'd["connections"]')
check "(13) h2load: 2,000 carried requests, all answered ($(grep -E '^requests:' "$T/r13l"))" \
	grep -Eq '^requests: 2000 total, 2000 started, 2000 done, 2000 succeeded' "$T/r13l"
check "(13) ... over kept-alive app connections: $conns for 2,000 requests in 20 streams at once (b's --upstream-max-connections 4; the rest wait)" \
	test "$conns" -le 6
# the smuggling suite for the translation: as a mesh peer with a's identity straight to b's proxy
# (as the proxy's UID, which pillion-init leaves unredirected), and as a's app through a's proxy
in_ns "$PA" "$PROXY_UID" timeout 300 $PY "$HERE/h2h1_smuggle.py" "$B4" 8080 web.g:8080 \
	--tls "$T/pki/a.crt" "$T/pki/a.key" "$T/pki/ca.crt" > "$T/r13s" 2>&1
check "(13) smuggling from a mesh peer: every refusal case refused, every answer exact, no /smuggled reached the app ($(tail -1 "$T/r13s"))" \
	grep -q '"failed": 0' "$T/r13s"
grep '^FAIL' "$T/r13s" | head -20
in_ns "$PA" "$APP_UID" timeout 300 $PY "$HERE/h2h1_smuggle.py" 198.18.5.102 8080 web.g:8080 > "$T/r13t" 2>&1
check "(13) ... and from a's app through a's proxy ($(tail -1 "$T/r13t"))" grep -q '"failed": 0' "$T/r13t"
grep '^FAIL' "$T/r13t" | head -20

# (14) HTTP/1 requests of a's app ride HTTP/2 between the proxies (--http1-over-http2, ALPN
# pillion/h2): the first one to a peer goes on its own connection while a's proxy learns the
# peer's ALPN; the next ones are streams on one mesh connection, HTTP/1.1 again for b's app
h1() { in_ns "$PA" "$APP_UID" curl -s --max-time 30 "$@"; }
h1 -o /dev/null "http://$WEB/first"
for i in $(seq 1 100); do # until a request rides HTTP/2 (a's proxy learnt b's ALPN)
	h1 -o /dev/null "http://$WEB/probe"
	grep '/probe' "$T/access-b.log" | grep -q '"protocol":"HTTP/2"' && break
	sleep 0.1
done
out=$(h1 -D "$T/run/r14h" "http://$WEB/ride-1?echo=1")
check "(14) an HTTP/1.1 request reaches the HTTP/1 app as HTTP/1.1 ($(echo "$out" | js 'd["version"], d["target"]'))" \
	test "$(echo "$out" | js 'd["version"] + d["target"]')" = "HTTP/1.1/ride-1?echo=1"
check "(14) ... over HTTP/2 between the proxies: b's access log says HTTP/2 for it" \
	bash -c "grep '/ride-1?echo=1' '$T/access-b.log' | grep -q '\"protocol\":\"HTTP/2\"'"
check "(14) ... and a's app gets an HTTP/1.1 answer" grep -q '^HTTP/1.1 200' "$T/run/r14h"
out=$(h1 --data-binary @"$T/upload.bin" "http://$WEB/ride-2?echo=1")
check "(14) a 300 KB upload with a length arrives whole" test "$(echo "$out" | js 'd["body_sha256"]')" = "$want"
out=$(cat "$T/upload.bin" | h1 -H 'transfer-encoding: chunked' --data-binary @- "http://$WEB/ride-3?echo=1")
check "(14) ... and a chunked one" test "$(echo "$out" | js 'd["body_sha256"]')" = "$want"
out=$(h1 -o "$T/run/r14c" -w '%{http_code}' "http://$WEB/ride-4?chunked=300")
check "(14) a chunked answer arrives whole ($out, $(wc -l < "$T/run/r14c") lines)" \
	bash -c "[ '$out' = 200 ] && [ \$(wc -l < '$T/run/r14c') = 300 ]"
out=$(h1 -o "$T/run/r14n" -w '%{http_code}' "http://$WEB/ride-5?noclen=1&body=100000")
check "(14) an answer the app ended by closing arrives whole ($out, $(stat -c %s "$T/run/r14n") bytes)" \
	bash -c "[ '$out' = 200 ] && [ \$(stat -c %s '$T/run/r14n') = 100000 ]"
out=$(h1 -I -o /dev/null -w '%{http_code}' "http://$WEB/ride-6")
check "(14) HEAD ($out)" test "$out" = 200
out=$(h1 -o /dev/null -w '%{http_code}' "http://$WEB/ride-7?status=204")
check "(14) 204 ($out)" test "$out" = 204
out=$(h1 -w ' %{http_code}' "http://$WEB/ride-8" "http://$WEB/ride-9" "http://$WEB/ride-10")
check "(14) three requests on one client connection, each its own answer ($(echo $out))" \
	bash -c "[[ '$(echo $out)' == *ride-8*200*ride-9*200*ride-10*200 ]]"
in_ns "$PA" "$APP_UID" curl -s --max-time 30 "http://$WEB/__reset" > /dev/null
before=$(metric "$PA" 'pillion_proxy_upstream_connections_total{direction="outbound",tls="true"}')
in_ns "$PA" "$APP_UID" timeout 120 h2load --h1 -n 3000 -c 10 "http://$WEB/load" > "$T/r14l" 2>&1
after=$(metric "$PA" 'pillion_proxy_upstream_connections_total{direction="outbound",tls="true"}')
check "(14) 3,000 HTTP/1 requests on 10 client connections, all answered ($(grep -E '^requests:' "$T/r14l"))" \
	grep -Eq '^requests: 3000 total, 3000 started, 3000 done, 3000 succeeded' "$T/r14l"
check "(14) ... over no new mTLS connection from a's proxy ($before before, $after after)" test "$after" = "$before"
out=$(h1 --http1.0 -D "$T/run/r14o" -o "$T/run/r14p" -w '%{http_code}' "http://$WEB/ride-11?chunked=40")
check "(14) an HTTP/1.0 client gets an answer of no length ended by the close, never chunked ($out, $(wc -l < "$T/run/r14p") lines)" \
	bash -c "[ '$out' = 200 ] && [ \$(wc -l < '$T/run/r14p') = 40 ] && ! grep -qi '^transfer-encoding' '$T/run/r14o'"
out=$(h1 -H 'Expect: 100-continue' -D "$T/run/r14e" --data-binary @"$T/upload.bin" "http://$WEB/ride-12?echo=1")
check "(14) Expect: 100-continue gets its 100 from a's proxy, and the body arrives whole" \
	bash -c "grep -q '^HTTP/1.1 100' '$T/run/r14e' && [ '$(echo "$out" | js 'd["body_sha256"]')' = '$want' ]"
# web2: d first, whose proxy finds no app on 8080 and says so (pillion-proxy-error: connect
# failure); the request never reached an app, so it goes on, free, to b. First a's proxy learns
# d's ALPN (requests to d's address, until one rides HTTP/2), so the web2 requests to d ride too.
for i in $(seq 1 100); do
	h1 -o /dev/null "http://$D4:8080/prime"
	grep '/prime' "$T/access-d.log" | grep -q '"protocol":"HTTP/2"' && break
	sleep 0.1
done
ok2=0
for i in $(seq 1 10); do
	[ "$(h1 -o /dev/null -w '%{http_code}' "http://198.18.5.103:8080/ride-13-$i")" = 200 ] && ok2=$((ok2 + 1))
done
check "(14) the peer's connect-failure answer goes on to the next endpoint, free: $ok2 of 10 answered 200" test "$ok2" = 10

# (8) the proxies are all still there, and none logged a sanitizer report
for p in a b d e; do
	check "(8) proxy $p still answers" ip netns exec "pg-$p-$SFX" curl -sf -o /dev/null http://127.0.0.1:15420/live
done

# (10) HTTP/2 attacks from the app's side, each on its own connection to a's proxy
atk() { in_ns "$PA" "$APP_UID" timeout 120 $PY "$HERE/h2_attack.py" "$SVC" 9090 "$@"; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PROXY_A/status" 2>/dev/null || echo 0; }
out=$(atk rapid-reset)
check "(10) rapid reset (CVE-2023-44487): a GOAWAY well before 10,000 resets ($out)" \
	test "$(echo "$out" | js 'd["goaway"] is not None and d["sent"] < 2000')" = True
out=$(atk made-you-reset)
check "(10) MadeYouReset (CVE-2025-8671): streams the proxy must reset itself, thousands: a GOAWAY ($out)" \
	test "$(echo "$out" | js 'd["goaway"] is not None and d["sent"] < 2000')" = True
out=$(atk continuation)
check "(10) CONTINUATION flood (CVE-2024-27316): the connection ends within a few frames ($out)" \
	test "$(echo "$out" | js 'd["closed"] and d["sent"] < 200')" = True
out=$(atk hpack-bomb)
check "(10) HPACK bomb (12 MB decoded from 7 KB): its stream is reset, the connection serves the next one ($out)" \
	test "$(echo "$out" | js 'd["resets"] >= 1 and d["heads"] >= 1 and d["goaway"] is None')" = True
out=$(atk settings-flood)
check "(10) SETTINGS flood with the acks never read: the proxy ends the connection ($out)" \
	test "$(echo "$out" | js 'd["closed"]')" = True
out=$(atk ping-flood)
check "(10) PING flood with the acks never read: the proxy ends the connection ($out)" \
	test "$(echo "$out" | js 'd["closed"]')" = True
r0=$(rss)
out=$(atk zero-window 5)
r1=$(rss)
check "(10) zero window: 16 calls of 5 MB each held unread add $(( (r1 - r0) / 1024 )) MiB to the proxy (< 40 MiB: windows, not buffers) ($out)" \
	test $((r1 - r0)) -lt 40960
r0=$(rss)
out=$(atk slow-reader)
r1=$(rss)
whole=$(echo "$out" | js 'd["data"] >= 640 * 65541')
check "(10) a reader slower than the server: 40 MiB through adds $(( (r1 - r0) / 1024 )) MiB to the proxy (< 24 MiB) ($out)" \
	bash -c "[ $((r1 - r0)) -lt 24576 ] && [ '$whole' = True ]"
out=$(atk cancelled-uploads)
check "(10) 30 cancelled uploads of 192 KiB (more than the connection's window) leave it usable ($out)" \
	test "$(echo "$out" | js 'd["goaway"] is None and d["heads"] >= 1')" = True
out=$(atk fragment)
check "(10) a :path with a fragment (#) is refused 400, never forwarded ($out)" \
	test "$(echo "$out" | js 'd["statuses"] == [400]')" = True
out=$(atk error-then-junk)
check "(10) a connection error with 4 MiB behind it: the GOAWAY arrives, then a FIN, not an RST ($out)" \
	test "$(echo "$out" | js 'd["goaway"] == 1 and d["closed"] and not d["reset"] and d["junk"] > 4 << 20')" = True
out=$(atk authority-mismatch)
check "(10) :authority and host that differ are refused 400 ($out)" test "$(echo "$out" | js 'd["statuses"] == [400]')" = True

# --stream-idle-timeout 8s: stalled streams end, answered when nothing went down yet, else reset
out=$(atk zero-window 14)
check "(10) ... the 16 stalled streams are reset after the stream idle timeout ($out)" \
	test "$(echo "$out" | js 'd["resets"] >= 16 and not d["closed"]')" = True
out=$(atk stalled-request 14)
check "(10) a call whose body never comes is answered by the proxy after the stream idle timeout ($out)" \
	test "$(echo "$out" | js 'd["heads"] >= 1 and not d["closed"]')" = True
check "(10) a's proxy still serves calls after the attacks" test "$(call unary 3 | js 'sum(d.get(k, 0) for k in "bde")')" = 3

# (15) a pod that vanishes without a word (its address drops packets, as a deleted pod's or a dead
# node's does): a's proxy hears nothing on its connection to b, sends a PING, closes the
# connection when none comes back, and b's share goes to d and e, instead of every stream sent to
# b waiting on a dead connection
plain() { in_ns "$PA" "$APP_UID" curl -s -o /dev/null --max-time 30 -w '%{http_code} %{time_total}\n' \
	--http2-prior-knowledge "http://$SVC:9090/plain/$1"; }
for i in 1 2 3 4 5 6; do plain "warm-$i" > /dev/null; done # a live connection to each pod
ip netns exec "$PB" iptables -I INPUT -s 198.18.5.1 -j DROP
ip netns exec "$PB" iptables -I OUTPUT -d 198.18.5.1 -j DROP
: > "$T/r15"
for i in $(seq 1 45); do plain "b-gone-$i" >> "$T/r15"; done
ip netns exec "$PB" iptables -D INPUT -s 198.18.5.1 -j DROP
ip netns exec "$PB" iptables -D OUTPUT -d 198.18.5.1 -j DROP
slow=$(tail -15 "$T/r15" | awk '$1 == "000" || $1 >= 500 || $2 > 3' | wc -l)
check "(15) b's address drops packets: the last 15 of 45 requests answered by d and e, each within 3 s ($slow not; all took $(awk '{s += $2} END {printf "%.1f", s}' "$T/r15") s)" \
	test "$slow" = 0
check "(15) ... a's proxy closed the silent connection when its PING went unanswered" \
	grep -q 'no answer to a PING' "$T/proxy-a.log"

# (16) pools are freed: a Service whose pods are all gone (addresses nobody answers) makes a pool
# per address tried while the connects are tried; with no connection left, they go at the next
# sweep (every resync, 2 s here)
pools() { metric "$PA" "pillion_proxy_upstream_pools{protocol=\"$1\"}"; }
p1=$(pools http1); p2=$(pools http2); m1=$p1; m2=$p2
h1 -o /dev/null "http://198.18.5.104:8080/ghost" > /dev/null 2>&1 &
ghost=$!
in_ns "$PA" "$APP_UID" curl -s -o /dev/null --max-time 30 --http2-prior-knowledge "http://198.18.5.104:8080/ghost-h2" > /dev/null 2>&1 &
ghost2=$!
for i in $(seq 1 300); do # while they run (each connect tried for up to 1 s), at most 30 s
	n1=$(pools http1); n2=$(pools http2)
	[ "${n1:-0}" -gt "$m1" ] && m1=$n1
	[ "${n2:-0}" -gt "$m2" ] && m2=$n2
	kill -0 $ghost 2>/dev/null || kill -0 $ghost2 2>/dev/null || break
	sleep 0.1
done
wait $ghost $ghost2
check "(16) requests to gone pods made pools while they tried them (HTTP/1 $p1 -> $m1, HTTP/2 $p2 -> $m2)" \
	bash -c "[ $m1 -gt $p1 ] && [ $m2 -gt $p2 ]"
wait_for 30 bash -c "[ \$(ip netns exec $PA curl -s http://127.0.0.1:15420/metrics | awk '/^pillion_proxy_upstream_pools\{protocol=\"http1\"\}/ {print \$2}') -le $p1 ] && [ \$(ip netns exec $PA curl -s http://127.0.0.1:15420/metrics | awk '/^pillion_proxy_upstream_pools\{protocol=\"http2\"\}/ {print \$2}') -le $p2 ]"
check "(16) ... and with no connection left they were freed (HTTP/1 $(pools http1), HTTP/2 $(pools http2))" \
	bash -c "[ $(pools http1) -le $p1 ] && [ $(pools http2) -le $p2 ]"

# Every HTTP/2 and HTTP/1 connection of the app ended with its client: none is counted open.
check "(9) before draining, no outbound connection is counted open (clients gone)" wait_for 30 none_open "$PA" outbound

# (9) draining: on SIGTERM the client gets a GOAWAY, its call in flight finishes, and the proxy exits 0
printf '\0\0\0\0\0041500' > "$T/sleep.grpc"
in_ns "$PA" "$APP_UID" timeout 60 nghttp -v -H 'content-type: application/grpc' -H 'te: trailers' \
	-d "$T/sleep.grpc" "http://$SVC:9090/pillion.test.Echo/Sleep" > "$T/r9" 2>&1 &
NG=$!
wait_for 60 test -s "$T/run/sleeping-1500" || fail "(9) the call did not reach a server"
kill -TERM "$PROXY_A"
wait "$NG"
check "(9) the call in flight at SIGTERM completes (grpc-status 0)" grep -q 'grpc-status: 0' "$T/r9"
check "(9) ... and the client was told to go away (GOAWAY)" grep -q 'recv GOAWAY' "$T/r9"
wait "$PROXY_A"; rc=$?
check "(9) the proxy exited 0 once its streams were done (exit $rc)" test "$rc" = 0
echo "$E2E_CHECKS checks, $E2E_FAILS failed"
[ "$E2E_FAILS" = 0 ] || { for p in a b; do echo "--- proxy $p"; tail -20 "$T/proxy-$p.log"; done; exit 1; }
