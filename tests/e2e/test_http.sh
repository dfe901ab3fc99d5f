#!/bin/bash
# L7 end-to-end test: every TrafficPolicy feature through real traffic. Pods in network namespaces,
# pillion-init's rules, pillion-proxy with mTLS on both sides, http_peer.py as a server that fails,
# delays, resets or hangs on command, and unmodified clients (curl, raw sockets).
# usage: test_http.sh BIN_DIR   (root; needs iproute2, iptables, curl, openssl, python3)
set -u
BIN=$(cd "${1:?usage: test_http.sh BIN_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, iptables)"
need ip iptables ip6tables curl openssl setpriv timeout /usr/bin/python3
PY=/usr/bin/python3
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=4"

E2E_TMP=$(mktemp -d -t pillion-http.XXXXXX)
trap e2e_cleanup EXIT
[ -n "${KEEP_TMP:-}" ] && trap "E2E_TMP=; e2e_cleanup" EXIT
T=$E2E_TMP
SFX=$(printf '%04x' $((RANDOM)))
APP_UID=1000
PROXY_UID=1407

# --- network: a (client, meshed), b (web, meshed), c (no proxy), d (web-canary, meshed) ---
e2e_pods ph "$SFX" 198.18.2 2001:db8:2 a b c d
PA=ph-a-$SFX; PB=ph-b-$SFX; PC=ph-c-$SFX; PD=ph-d-$SFX
B4=198.18.2.2; D4=198.18.2.4; B6=2001:db8:2::2
wait_for 60 ip netns exec "$PA" ping -c1 -W1 "$B4" || die "no IPv4 path between the pods"

# --- identities ---
TD=cluster.local
mkdir -p "$T/pki"
mk_ca "$T/pki" ca
for p in a b d; do mk_leaf "$T/pki" ca "$p" "spiffe://$TD/ns/e2e/sa/$p"; done
[ -s "$T/pki/d.crt" ] || die "openssl could not make the test certificates"

# --- Services (their "cluster IPs" are the pods' own addresses: no kube-proxy here) and policies ---
svc() { # NAME SELECTOR_APP IP PORT
	printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: e2e}\nspec:\n  selector: {app: %s}\n  clusterIP: %s\n  ports: [{name: http, port: %s, targetPort: %s}]\n' "$1" "$2" "$3" "$4" "$4"
}
{
	svc web b "$B4" 8080
	svc web-canary d "$D4" 8080
	svc cb b "$B4" 8081
	svc cbe b "$B4" 8083
	svc rl b "$B4" 8082
	svc dead b "$B4" 8099
	svc smug b "$B4" 8084
	svc guarded b "$B4" 8085
	svc spread nobody 198.18.2.100 8080
	svc spread2 nobody 198.18.2.101 8080
	svc hidden nobody 198.18.2.102 8080
	svc shown nobody 198.18.2.103 8080
	svc vanish nobody 198.18.2.104 8080
	svc fallback nobody 198.18.2.105 8080
	svc halfdead nobody 198.18.2.106 8080
	cat <<'YAML'
---
apiVersion: pillion.dev/v1alpha1
kind: MeshIdentity
metadata: {name: default, namespace: e2e}
spec: {mtls: {mode: PERMISSIVE}}
---
# d is STRICT: no plaintext at all (its kubelet probes go to the admin port)
apiVersion: pillion.dev/v1alpha1
kind: MeshIdentity
metadata: {name: strict-d, namespace: e2e}
spec: {selector: {matchLabels: {app: d}}, mtls: {mode: STRICT}}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: e2e}
spec:
  targetRef: {kind: Service, name: web, port: 8080}
  routes:
  - name: split
    match: {path: {prefix: /split/}}
    backends: [{name: web, weight: 50}, {name: web-canary, weight: 50}]
  - name: canary
    match: {headers: [{name: x-canary, exact: "true"}]}
    backends: [{name: web-canary}]
  - name: retry
    match: {path: {prefix: /retry/}}
    retries: {attempts: 2, retryOn: [5xx]}
  - name: post
    match: {path: {prefix: /post/}, method: POST}
    retries: {attempts: 1, retryOn: [5xx]}
  - name: slow
    match: {path: {prefix: /slow/}}
    timeout: 300ms
  - name: pertry
    match: {path: {prefix: /pertry/}}
    timeout: 60s
    retries: {attempts: 1, perTryTimeout: 5s, retryOn: [gateway-error]}
  - name: reset
    match: {path: {prefix: /reset/}}
    retries: {attempts: 1, retryOn: [reset]}
  - name: budget
    match: {path: {prefix: /budget/}}
    retries: {attempts: 3, retryOn: [5xx], budget: {percent: 0, minPerSecond: 0, window: 1s}}
  - name: abort
    match: {path: {prefix: /abort/}}
    faultInjection: {abort: {percent: 100, httpStatus: 418}}
  - name: delay
    match: {path: {prefix: /delay/}}
    faultInjection: {delay: {percent: 100, duration: 400ms}}
  - name: dead
    match: {path: {prefix: /dead/}}
    backends: [{name: dead, port: 8099}]
    retries: {attempts: 1, retryOn: [5xx]}
  - name: exact
    match: {path: {exact: /exact}}
    faultInjection: {abort: {percent: 100, httpStatus: 451}}
  - name: flagged
    match: {headers: [{name: x-flag, present: true}]}
    faultInjection: {abort: {percent: 100, httpStatus: 452}}
  - name: default
  authorization:
    rules:
    - name: a-reads-writes
      from: {identities: ["spiffe://cluster.local/ns/e2e/sa/a"]}
      to: {methods: [GET, POST, PUT, HEAD]}
    - name: e2e-deletes-tmp
      from: {namespaces: [e2e]}
      to: {paths: ["/tmp/*"], methods: [DELETE]}
  accessLog: {enabled: true}
  tracing: {samplingPercentage: 100}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: cb, namespace: e2e}
spec:
  targetRef: {kind: Service, name: cb, port: 8081}
  routes:
  - name: cb
    match: {path: {prefix: /cb/}}
  circuitBreaker:
    consecutiveFailures: 2
    baseEjectionTime: 1s
    maxEjectionTime: 10s
    maxConnections: 1
    maxPendingRequests: 1
  accessLog: {enabled: true, filter: Errors}
  tracing: {traceparent: Add, samplingPercentage: 0}
---
# the smuggling suite's guarded port: only its own attack, follow-up and victim paths are allowed,
# so a smuggled request that reached the app would have passed authorization unseen (a bypass)
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: guarded, namespace: e2e}
spec:
  targetRef: {kind: Service, name: guarded, port: 8085}
  authorization:
    rules:
    - name: suite-paths
      to: {paths: ["/attack-*", "/follow-*", "/victim-*", /__stats]}
---
# a long ejection: the request after the second failure is sure to find the backend still ejected
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: cbe, namespace: e2e}
spec:
  targetRef: {kind: Service, name: cbe, port: 8083}
  circuitBreaker: {consecutiveFailures: 2, baseEjectionTime: 30s, maxEjectionTime: 60s}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: rl, namespace: e2e}
spec:
  targetRef: {kind: Service, name: rl, port: 8082}
  rateLimit: {requestsPerSecond: 1, burst: 2}
  tracing: {traceparent: Propagate}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: spread, namespace: e2e}
spec:
  targetRef: {kind: Service, name: spread, port: 8080}
  circuitBreaker: {consecutiveFailures: 2, baseEjectionTime: 60s}
---
# exported to another namespace only: a's proxy (namespace e2e) must not apply it
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: hidden, namespace: e2e}
spec:
  targetRef: {kind: Service, name: hidden}
  exportTo: [elsewhere]
  routes: [{name: all, faultInjection: {abort: {percent: 100, httpStatus: 453}}}]
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: shown, namespace: e2e}
spec:
  targetRef: {kind: Service, name: shown}
  exportTo: ["."]
  routes: [{name: all, faultInjection: {abort: {percent: 100, httpStatus: 453}}}]
YAML
} > "$T/objs.yaml"

pod() { # NAME PORTS...   (the first port is probed: liveness /healthz by its name, readiness a 503, startup HTTPS)
	local name=$1 ports="" p probes=""; shift
	for p in "$@"; do ports="$ports{containerPort: $p, name: p$p}, "; done
	[ $# -gt 0 ] && probes=", livenessProbe: {httpGet: {path: /healthz, port: p$1}}, readinessProbe: {httpGet: {path: '/ready?full=1&status=503', port: $1, httpHeaders: [{name: X-Probe, value: ready}]}, timeoutSeconds: 5}, startupProbe: {httpGet: {path: /secure, port: $1, scheme: HTTPS}}"
	cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: e2e, labels: {app: $name}, annotations: {pillion.dev/id: "${name}0000000000000000000000000000001"${ANN:+, $ANN}}}
spec: {serviceAccountName: $name, containers: [{name: app, image: app, ports: [${ports%, }]$probes}${SIDE:+, $SIDE}]}
YAML
}
# a's proxy reads its client-side policies from the namespace's outbound.json, as injected (--outbound).
SIDE="{name: pillion-proxy, image: proxy, args: [--outbound, /etc/pillion/mesh/outbound.json]}" pod a > "$T/pod-a.yaml"
pod b 8080 8081 8082 8083 8084 8085 8099 > "$T/pod-b.yaml"
# d also has a container whose probes were tcpSocket ones, rewritten by injection (the originals in
# pillion.dev/probes, as the webhook leaves them): 8080 accepts, 8097 refuses.
SIDE="{name: side, image: side, livenessProbe: {httpGet: {path: /app-health/side/liveness, port: 15420}}, readinessProbe: {httpGet: {path: /app-health/side/readiness, port: 15420}}}" \
ANN="pillion.dev/probes: '{\"side\": {\"livenessProbe\": {\"tcpSocket\": {\"port\": 8080}}, \"readinessProbe\": {\"tcpSocket\": {\"port\": 8097}}}}'" \
	pod d 8080 > "$T/pod-d.yaml"
for p in a b d; do
	"$BIN/pillionctl" render --pod "$T/pod-$p.yaml" -f "$T/objs.yaml" > "$T/$p.json" || die "render $p"
done
"$BIN/pillionctl" render --outbound e2e -f "$T/objs.yaml" > "$T/outbound.json" || die "render --outbound"

ID() { echo "\"spiffe://$TD/ns/e2e/sa/$1\""; }
cat > "$T/mesh.json" <<JSON
{"apiVersion":"pillion.dev/v1alpha1","kind":"MeshDirectory","namespace":"e2e",
 "services":[
  {"namespace":"e2e","name":"web","addresses":["$B4","$B6"],"ports":[8080],"identities":[$(ID b)]},
  {"namespace":"e2e","name":"web-canary","addresses":["$D4"],"ports":[8080],"identities":[$(ID d)]},
  {"namespace":"e2e","name":"cb","addresses":["$B4"],"ports":[8081],"identities":[$(ID b)]},
  {"namespace":"e2e","name":"cbe","addresses":["$B4"],"ports":[8083],"identities":[$(ID b)]},
  {"namespace":"e2e","name":"rl","addresses":["$B4"],"ports":[8082],"identities":[$(ID b)]},
  {"namespace":"e2e","name":"dead","addresses":["$B4"],"ports":[8099],"identities":[$(ID b)]},
  {"namespace":"e2e","name":"smug","addresses":["$B4"],"ports":[8084],"identities":[$(ID b)]},
  {"namespace":"e2e","name":"guarded","addresses":["$B4"],"ports":[8085],"identities":[$(ID b)]},
  {"namespace":"e2e","name":"spread","addresses":["198.18.2.100"],"ports":[8080],"identities":[$(ID b),$(ID d)],
   "endpoints":[{"addresses":["$B4","$B6"],"ports":[8080]},{"addresses":["198.18.2.3"],"ports":[8080]},{"addresses":["$D4"],"ports":[8080]}]},
  {"namespace":"e2e","name":"spread2","addresses":["198.18.2.101"],"ports":[8080],"identities":[$(ID b),$(ID d)],
   "endpoints":[{"addresses":["$B4","$B6"],"ports":[8080]},{"addresses":["$D4"],"ports":[8080]}]},
  {"namespace":"e2e","name":"hidden","addresses":["198.18.2.102"],"ports":[8080],"identities":[$(ID b)],
   "endpoints":[{"addresses":["$B4","$B6"],"ports":[8080]}]},
  {"namespace":"e2e","name":"shown","addresses":["198.18.2.103"],"ports":[8080],"identities":[$(ID b)],
   "endpoints":[{"addresses":["$B4","$B6"],"ports":[8080]}]},
  {"namespace":"e2e","name":"vanish","addresses":["198.18.2.104"],"ports":[8080],"identities":[$(ID b),$(ID d)],
   "endpoints":[{"addresses":["$B4","$B6"],"ports":[8080]},{"addresses":["198.18.2.3"],"ports":[8086]},{"addresses":["$D4"],"ports":[8080]}]},
  {"namespace":"e2e","name":"fallback","addresses":["198.18.2.105"],"ports":[8080],"identities":[$(ID d)],
   "endpoints":[{"addresses":["198.18.2.3"],"ports":[8086]},{"addresses":["198.18.2.3"],"ports":[8087]}]},
  {"namespace":"e2e","name":"halfdead","addresses":["198.18.2.106"],"ports":[8080],"identities":[$(ID b),$(ID d)],
   "endpoints":[{"addresses":["$B4"],"ports":[8099]},{"addresses":["$D4"],"ports":[8080]}]}],
 "pods":[{"namespace":"e2e","name":"a","addresses":["198.18.2.1"],"identity":$(ID a)},
         {"namespace":"e2e","name":"b","addresses":["$B4","$B6"],"identity":$(ID b)},
         {"namespace":"e2e","name":"d","addresses":["$D4"],"identity":$(ID d)}]}
JSON
for p in a b d; do
	mkdir -p "$T/$p/config" "$T/$p/mesh" "$T/$p/tls"
	if [ "$p" = a ]; then project "$T/$p/mesh" mesh.json="$T/mesh.json" outbound.json="$T/outbound.json"
	else project "$T/$p/mesh" mesh.json="$T/mesh.json"; fi
	project "$T/$p/tls" tls.crt="$T/pki/$p.crt" tls.key="$T/pki/$p.key" ca.crt="$T/pki/ca.crt"
	project "$T/$p/config" proxy.json="$T/$p.json"
done
chmod -R a+rX "$T"
mkdir -p "$T/run" && chmod 1777 "$T/run"

# --- apps: the misbehaving server ---
peer() { # NS NAME PORT
	bg "$1" "$APP_UID" $PY "$HERE/http_peer.py" serve --listen "[::]:$3" --name "$2" --ready-file "$T/run/ready-$2-$3"
	wait_for 60 test -s "$T/run/ready-$2-$3" || die "http_peer $2:$3 did not start"
}
# IPv6 wildcard listeners with V6ONLY: a v4 listener each as well.
peer4() { bg "$1" "$APP_UID" $PY "$HERE/http_peer.py" serve --listen "0.0.0.0:$3" --name "$2" --ready-file "$T/run/ready4-$2-$3"; wait_for 60 test -s "$T/run/ready4-$2-$3" || die "http_peer $2:$3 (v4) did not start"; }
for port in 8080 8081 8082 8083 8084 8085; do peer "$PB" b "$port"; peer4 "$PB" b "$port"; done
peer "$PD" d 8080; peer4 "$PD" d 8080

# --- the mesh ---
for p in a b d; do
	ns=ph-$p-$SFX
	in_ns "$ns" 0 "$BIN/pillion-init" >"$T/init-$p.log" 2>&1 || { cat "$T/init-$p.log"; die "pillion-init in $p"; }
	# stdout is the access log. The detect timeout is not what this suite tests; a short one would
	# relay an HTTP client that a busy machine holds back past it as opaque TCP, without its policy.
	out=""
	[ "$p" = a ] && out="--outbound $T/a/mesh/outbound.json"
	# b ends requests in flight that stall (section 11). Longer than anything here is silent on
	# purpose: (8) holds a request 10 s at the app with no route timeout.
	[ "$p" = b ] && out="--stream-idle-timeout 25s"
	# shellcheck disable=SC2086
	bg "$ns" "$PROXY_UID" "$BIN/pillion-proxy" --config "$T/$p/config/proxy.json" --mesh "$T/$p/mesh/mesh.json" $out \
		--tls-dir "$T/$p/tls" --detect-timeout 3s --log-level info > "$T/access-$p.log" 2> "$T/proxy-$p.log"
done
for ns in "$PA" "$PB" "$PD"; do
	wait_for 60 ip netns exec "$ns" curl -sf -o /dev/null http://127.0.0.1:15420/ready || die "proxy in $ns not ready"
done
ok "three proxies ready"

# curl as a's app: prints the response head and body
ca() { in_ns "$PA" "$APP_UID" curl -s -i --max-time 30 "$@"; }
hdr() { tr -d '\r' | awk -v k="$1" 'BEGIN{IGNORECASE=1} index(tolower($0), tolower(k)":") == 1 { sub(/^[^:]*: */, ""); print; exit }'; }
status() { head -1 | awk '{print $2}'; }
client() { in_ns "$1" "$APP_UID" timeout 60 $PY "$HERE/http_client.py" "${@:2}"; }
stats() { ip netns exec "$PB" curl -s --max-time 30 "http://127.0.0.1:$1/__stats"; }
export -f status hdr stats
export PB

# (1) plain request through both proxies, with mTLS, counted on both sides
ca "http://$B4:8080/hello" > "$T/r1"
check "(1) a reaches web through both proxies" grep -q "hello from b path=/hello" "$T/r1"
check "(1) a's proxy counts it: outbound, e2e/web, route default, 200" \
	test "$(metric "$PA" 'pillion_proxy_requests_total{direction="outbound",service="e2e/web",route="default",class="2xx",code="200"}')" -ge 1
check "(1) b's proxy counts it inbound for e2e/web" \
	test "$(metric "$PB" 'pillion_proxy_requests_total{direction="inbound",service="e2e/web",route="",class="2xx",code="200"}')" -ge 1
check "(1) the latency histogram starts at 0.5 ms" \
	bash -c "ip netns exec '$PA' curl -s http://127.0.0.1:15420/metrics | grep -q 'pillion_proxy_request_duration_seconds_bucket{direction=\"outbound\",service=\"e2e/web\",route=\"default\",le=\"0.0005\"}'"

# (2) connection reuse: 20 requests on 20 client connections ride on few mTLS connections
u0=$(metric "$PA" 'pillion_proxy_upstream_connections_total{direction="outbound",tls="true"}')
for i in $(seq 1 20); do ca "http://$B4:8080/reuse" >/dev/null; done
u1=$(metric "$PA" 'pillion_proxy_upstream_connections_total{direction="outbound",tls="true"}')
check "(2) 20 client connections reused pooled mTLS connections (opened $((u1 - u0)))" test $((u1 - u0)) -le 2
ca "http://$B4:8080/reuse" > "$T/r2"
check "(2) b's proxy reuses its connection to the app (x-conn-requests > 1)" test "$(hdr x-conn-requests < "$T/r2")" -gt 1

# (3) traffic split and header routes
out=$(client "$PA" peers "$B4" 8080 /split/x 200)
nb=$(echo "$out" | $PY -c 'import json,sys; print(json.load(sys.stdin).get("b:200",0))')
nd=$(echo "$out" | $PY -c 'import json,sys; print(json.load(sys.stdin).get("d:200",0))')
check "(3) a 50/50 split reaches both backends ($out)" bash -c "[ $nb -ge 60 ] && [ $nd -ge 60 ] && [ $((nb + nd)) -eq 200 ]"
out=$(client "$PA" peers "$B4" 8080 /anything 10 "x-canary: true")
check "(3) x-canary: true goes to web-canary ($out)" test "$out" = '{"d:200": 10}'

# (4) retries
ca "http://$B4:8080/retry/a?fail=2" > "$T/r4"
check "(4) two 503s are retried: 200 on the third attempt" bash -c "[ \"\$(status < '$T/r4')\" = 200 ] && [ \"\$(hdr x-request-count < '$T/r4')\" = 3 ]"
check "(4) ... and counted as retries" \
	test "$(metric "$PA" 'pillion_proxy_retries_total{direction="outbound",service="e2e/web",route="retry"}')" -ge 2
ca "http://$B4:8080/retry/b?fail=5" > "$T/r4b"
check "(4) attempts are bounded: 3 tries, then the upstream's 503 is passed on" \
	bash -c "[ \"\$(status < '$T/r4b')\" = 503 ] && [ \"\$(hdr x-request-count < '$T/r4b')\" = 3 ]"
ca "http://$B4:8080/noretry?fail=1" > "$T/r4c"
check "(4) a route without retries passes the first 503 on" bash -c "[ \"\$(status < '$T/r4c')\" = 503 ] && [ \"\$(hdr x-request-count < '$T/r4c')\" = 1 ]"
ca -X POST --data-binary 'small body' "http://$B4:8080/post/a?fail=1&echo=1" > "$T/r4d"
check "(4) a POST with a small body (buffered whole) is retried" \
	bash -c "[ \"\$(status < '$T/r4d')\" = 200 ] && grep -q '\"body_len\": 10' '$T/r4d'"
ca "http://$B4:8080/reset/a?resetfirst=1" > "$T/r4e"
check "(4) retryOn reset: a connection reset is retried" bash -c "[ \"\$(status < '$T/r4e')\" = 200 ]"
ca "http://$B4:8080/budget/a?fail=5" > "$T/r4f"
check "(4) an empty retry budget stops retries (1 try)" bash -c "[ \"\$(hdr x-request-count < '$T/r4f')\" = 1 ]"
check "(4) ... counted as budget exhausted" \
	test "$(metric "$PA" 'pillion_proxy_retry_budget_exhausted_total{direction="outbound",service="e2e/web",route="budget"}')" -ge 1

# (5) timeouts
# The server would answer after 30 s; the route's 300 ms timeout must answer long before that.
t0=$(date +%s%N)
ca "http://$B4:8080/slow/a?delay=30000" > "$T/r5"
t1=$(date +%s%N)
check "(5) the route timeout answers 504 naming the cause" \
	bash -c "[ \"\$(status < '$T/r5')\" = 504 ] && [ \"\$(hdr pillion-proxy-error < '$T/r5')\" = timeout ] && grep -q 'route \"slow\" of TrafficPolicy e2e/web' '$T/r5'"
check "(5) ... before the server answered ($(( (t1 - t0) / 1000000 )) ms)" test $(( (t1 - t0) / 1000000 )) -lt 20000
# Only the first attempt is held (20 s, past the 5 s per-try timeout); the retry is answered at once.
ca "http://$B4:8080/pertry/a?delay=20000&delayfirst=1" > "$T/r5b"
check "(5) a per-try timeout is retried: 200 from the second attempt" \
	bash -c "[ \"\$(status < '$T/r5b')\" = 200 ] && [ \"\$(hdr x-request-count < '$T/r5b')\" = 2 ]"

# (6) fault injection
ca "http://$B4:8080/abort/a" > "$T/r6"
check "(6) an injected abort answers its status" \
	bash -c "[ \"\$(status < '$T/r6')\" = 418 ] && [ \"\$(hdr pillion-proxy-error < '$T/r6')\" = 'fault injected' ]"
check "(6) ... without reaching the server" bash -c "! echo '$(stats 8080)' | grep -q '/abort/a'"
# a's client-side policies are the namespace's outbound.json: its own config has none, and a new
# outbound.json (swapped with the directory, as the kubelet does) takes effect live.
check "(6) a's config has no outbound policies; its /status says they come from the mesh" bash -c \
	"! grep -q '\"outbound\"' '$T/a.json' && ip netns exec '$PA' curl -s --max-time 30 http://127.0.0.1:15420/status | grep -q '\"source\":\"mesh\"'"
# A keep-alive session open across the two directory swaps below: requests hold the directory
# they started with, the connection must not keep the one it was accepted with.
rm -f "$T/run/hold-stop"
in_ns "$PA" "$APP_UID" timeout 200 $PY "$HERE/http_client.py" hold "$B4" 8080 /hold 150 "$T/run/hold-stop" \
	> "$T/hold.out" 2>&1 &
HOLDPID=$!
wait_for 60 grep -q '^first' "$T/hold.out" || fail "(6) the held session's first request did not complete"
sed 's/httpStatus: 418/httpStatus: 419/' "$T/objs.yaml" > "$T/objs-419.yaml"
"$BIN/pillionctl" render --outbound e2e -f "$T/objs-419.yaml" > "$T/outbound-419.json" || die "render --outbound 419"
chmod a+r "$T"/outbound*.json
project "$T/a/mesh" mesh.json="$T/mesh.json" outbound.json="$T/outbound-419.json"
check "(6) a new outbound.json is enforced without a restart (abort 418 -> 419)" \
	wait_for 60 bash -c "ip netns exec '$PA' setpriv --reuid=$APP_UID --regid=$APP_UID --clear-groups curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://$B4:8080/abort/a | grep -q 419"
project "$T/a/mesh" mesh.json="$T/mesh.json" outbound.json="$T/outbound.json"
check "(6) ... and the previous one again (419 -> 418)" \
	wait_for 60 bash -c "ip netns exec '$PA' setpriv --reuid=$APP_UID --regid=$APP_UID --clear-groups curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://$B4:8080/abort/a | grep -q 418"
check "(6) after the swaps only the directory in use is in memory, a session older than both still open" \
	wait_for 30 bash -c "[ \"\$(ip netns exec '$PA' curl -s --max-time 30 http://127.0.0.1:15420/metrics | awk '/^pillion_proxy_mesh_versions_held / {print \$2}')\" = 1 ]"
touch "$T/run/hold-stop"
wait "$HOLDPID"; rc=$?
check "(6) ... and that session still serves its next request ($(tr '\n' ' ' < "$T/hold.out"))" \
	bash -c "[ $rc = 0 ] && grep -q '^second 200' '$T/hold.out'"
t0=$(date +%s%N)
ca "http://$B4:8080/delay/a" > "$T/r6b"
t1=$(date +%s%N)
check "(6) an injected delay holds the request, then it succeeds ($(( (t1 - t0) / 1000000 )) ms)" \
	bash -c "[ \"\$(status < '$T/r6b')\" = 200 ] && [ $(( (t1 - t0) / 1000000 )) -ge 400 ]"

# (7) connect failure at the far side: b's proxy cannot reach port 8099, a retries, then 503 names it
ca "http://$B4:8080/dead/a" > "$T/r7"
check "(7) an unreachable backend port: 503 naming the connect failure" \
	bash -c "[ \"\$(status < '$T/r7')\" = 503 ] && [ \"\$(hdr pillion-proxy-error < '$T/r7')\" = 'connect failure' ]"

# (8) circuit breaking: consecutive failures eject, maxConnections/maxPending answer 503 at once
# cbe ejects for 30 s, so the third request surely finds its backend ejected.
for i in 1 2; do ca "http://$B4:8083/cb/e?status=500" >/dev/null; done
ca "http://$B4:8083/cb/e?status=500" > "$T/r8"
check "(8) after 2 consecutive 500s the backend is ejected: 503 circuit open" \
	bash -c "[ \"\$(status < '$T/r8')\" = 503 ] && [ \"\$(hdr pillion-proxy-error < '$T/r8')\" = 'circuit open' ]"
n=$(stats 8083 | $PY -c 'import json,sys; print(json.load(sys.stdin)["paths"].get("/cb/e?status=500"))')
check "(8) ... the ejected backend was not asked a third time ($n)" test "$n" = 2
check "(8) ... counted" \
	test "$(metric "$PA" 'pillion_proxy_circuit_breaker_total{service="e2e/cbe",reason="ejected",backend="e2e/cbe"}')" -ge 1
# cb ejects for 1 s: once ejected (counted), the backend is asked again; polled, bounded.
for i in 1 2; do ca "http://$B4:8081/cb/e?status=500" >/dev/null; done
wait_for 60 metric_ge "$PA" 'pillion_proxy_circuit_breaker_total{service="e2e/cb",reason="ejected",backend="e2e/cb"}' 1
check "(8) a 1 s ejection: 2 consecutive 500s eject the backend (counted)" \
	test "$(metric "$PA" 'pillion_proxy_circuit_breaker_total{service="e2e/cb",reason="ejected",backend="e2e/cb"}')" -ge 1
cb_ok() { [ "$(ca "http://$B4:8081/cb/ok" | tee "$T/r8b" | status)" = 200 ]; }
check "(8) after the ejection time the backend is tried again (200 within 60 s)" wait_for 60 cb_ok
# The first request holds the only connection for 10 s (delayfirst: the one after it is answered at
# once), the second waits in the one pending slot, the third overflows.
out=$(client "$PA" concurrent "$B4" 8081 "/cb/slow?delay=10000&delayfirst=1" 3)
check "(8) maxConnections 1 + maxPending 1: the third concurrent request gets 503 overflow at once ($out)" \
	bash -c "echo '$out' | grep -q '503:overflow' && [ \$(echo '$out' | grep -o '200:-' | wc -l) = 2 ]"
ca "http://$B4:8081/elsewhere" > "$T/r8c"
check "(8) a request no route matches: 404 naming the policy" \
	bash -c "[ \"\$(status < '$T/r8c')\" = 404 ] && grep -q 'no route of TrafficPolicy e2e/cb' '$T/r8c'"

# (9) authorization at b: a may GET/POST/PUT/HEAD, not DELETE; a plaintext caller has no identity
ca -X DELETE "http://$B4:8080/x" > "$T/r9"
check "(9) DELETE from a is denied with 403 naming the policy" \
	bash -c "[ \"\$(status < '$T/r9')\" = 403 ] && grep -q 'TrafficPolicy e2e/web allows spiffe://$TD/ns/e2e/sa/a' '$T/r9'"
in_ns "$PC" "$APP_UID" curl -s -i --max-time 30 "http://$B4:8080/x" > "$T/r9b"
check "(9) a plaintext caller (PERMISSIVE) is denied: no identity" \
	bash -c "[ \"\$(status < '$T/r9b')\" = 403 ] && grep -q 'plaintext caller' '$T/r9b'"
check "(9) ... denials counted at b" \
	test "$(metric "$PB" 'pillion_proxy_authorization_denied_total{service="e2e/web",policy="e2e/web"}')" -ge 2

# (10) rate limit at b: 1/s, burst 2. Ten requests back to back from one process: without a 429
# they would have to take 8 s or more.
client "$PA" statuses "$B4" 8082 /rl 10 retry-after > "$T/r10"
codes=$(cut -d' ' -f1 "$T/r10" | tr '\n' ' ')
check "(10) the rate limit answers 429 after the burst ($codes)" grep -q '^429 ' "$T/r10"
check "(10) ... with Retry-After" grep -q '^429 retry-after=1' "$T/r10"

# (11) HTTP details: bodies, Expect, upgrade, hop-by-hop, pipelining, HTTP/1.0, IPv6
head -c 5000000 /dev/urandom > "$T/big"
chmod a+r "$T/big"
sum=$(sha256sum "$T/big" | cut -d' ' -f1)
ca -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" "http://$B4:8080/up?echo=1" > "$T/r11"
check "(11) a 5 MB chunked upload streams through intact" grep -q "\"body_sha256\": \"$sum\"" "$T/r11"
ca -H 'Expect: 100-continue' --data-binary @"$T/big" "http://$B4:8080/post/e?echo=1" > "$T/r11b"
check "(11) Expect: 100-continue gets 100 from the server, then the body goes" \
	bash -c "grep -q '^HTTP/1.1 100' '$T/r11b' && grep -q '\"body_sha256\": \"$sum\"' '$T/r11b'"
n=$(in_ns "$PA" "$APP_UID" curl -s --max-time 60 "http://$B4:8080/big?body=20000000" | wc -c)
check "(11) a 20 MB response arrives whole ($n bytes)" test "$n" = 20000000
# Interim answers: a few pass on, an endless run is refused (each would be held for the client).
ca "http://$B4:8080/interim?status=103&interims=3" > "$T/r11i"
ca "http://$B4:8080/interim?status=103&interims=50" > "$T/r11j"
check "(11) three 103 answers pass on before the 200; fifty are refused 502 at the first proxy past eight" \
	bash -c "[ \$(grep -c '^HTTP/1.1 103' '$T/r11i') = 3 ] && grep -q '^HTTP/1.1 200' '$T/r11i' && grep -q '^HTTP/1.1 502' '$T/r11j' && grep -q 'interim' '$T/r11j'"
# An upload that stops halfway: b's proxy answers 504 after --stream-idle-timeout (25 s there)
# rather than holding the session, its buffers and an app connection forever.
t0=$(date +%s)
out=$(client "$PA" raw "$B4" 8080 'POST /stall HTTP/1.1\r\nHost: b\r\nContent-Length: 100\r\n\r\n0123456789' --timeout 90)
t1=$(date +%s)
check "(11) an upload that stalls is answered 504 (stream idle) after b's --stream-idle-timeout ($((t1 - t0)) s)" \
	bash -c 'echo "$1" | head -1 | grep -q "^HTTP/1.1 504" && echo "$1" | grep -q "stream-idle-timeout" && [ "$2" -ge 24 ]' _ "$out" "$((t1 - t0))"
n=$(in_ns "$PA" "$APP_UID" curl -s --max-time 60 "http://$B4:8080/ch?chunked=500" | wc -l)
check "(11) a chunked response of 500 chunks arrives whole" test "$n" = 500
check "(11) an Upgrade becomes a tunnel after 101 (through both proxies)" client "$PA" upgrade "$B4" 8080
# Only websocket becomes a tunnel (--upgrades): an h2c upgrade would carry requests no policy sees.
# The request goes on as a plain HTTP/1.1 one, Upgrade and HTTP2-Settings dropped: 200, not 101.
H2C='GET /h2c HTTP/1.1\r\nHost: b\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n'
out=$(client "$PA" raw "$B4" 8080 "$H2C" --timeout 5)
check "(11) an h2c upgrade over the mesh is not a tunnel: the request is answered as HTTP/1.1 (200)" \
	bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 200' && ! echo '$out' | grep -qi '^upgrade:'"
out=$(in_ns "$PC" "$APP_UID" timeout 60 $PY "$HERE/http_client.py" raw "$B4" 8081 "$H2C" --timeout 5)
check "(11) an h2c upgrade from a plaintext caller is not a tunnel either (200)" bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 200'"
out=$(client "$PA" raw "$B4" 8080 'GET /ws2 HTTP/1.1\r\nHost: b\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\r\n' --timeout 5)
check "(11) an Upgrade listing two protocols is not a tunnel (200)" bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 200'"
ca -H 'Connection: keep-alive, x-secret' -H 'x-secret: 1' -H 'Keep-Alive: timeout=5' -H 'TE: trailers' \
	-H 'x-kept: yes' "http://$B4:8080/hop?echo=1" > "$T/r11c"
check "(11) hop-by-hop fields (and those Connection names) are removed; others kept" \
	bash -c "grep -qi '\"x-kept\"' '$T/r11c' && ! grep -qi -e '\"x-secret\"' -e '\"keep-alive\"' -e '\"te\"' '$T/r11c'"
out=$(client "$PA" raw "$B4" 8080 'GET /p1 HTTP/1.1\r\nHost: b\r\n\r\nGET /p2 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n')
check "(11) two pipelined requests get two responses in order" \
	bash -c "echo '$out' | grep -o 'path=/p[12]' | tr '\n' ' ' | grep -qx 'path=/p1 path=/p2 '"
out=$(client "$PA" raw "$B4" 8080 'GET /old HTTP/1.0\r\nHost: b\r\n\r\n')
check "(11) an HTTP/1.0 request is answered and the connection closed" bash -c "echo '$out' | grep -q 'path=/old'"
check "(11) IPv6: a reaches web by its IPv6 address" grep -q 'path=/v6' <(ca "http://[$B6]:8080/v6")

# (12) request smuggling: refused at a's proxy (never reaches b), and at b's inbound from plaintext c
# b's inbound is asked on 8081, which has no authorization rules (on 8080 a plaintext caller gets 403 first).
nreq() { echo $(( $(stats 8080 | $PY -c 'import json,sys; print(json.load(sys.stdin)["requests"])') + $(stats 8081 | $PY -c 'import json,sys; print(json.load(sys.stdin)["requests"])') )); }
before=$(nreq)
smuggle() { # NAME STATUS RAW
	local o1 o2
	o1=$(client "$PA" raw "$B4" 8080 "$3")
	o2=$(in_ns "$PC" "$APP_UID" timeout 60 $PY "$HERE/http_client.py" raw "$B4" 8081 "$3")
	check "(12) $1: $2 from a's outbound proxy" bash -c "echo '$o1' | head -1 | grep -q '^HTTP/1.1 $2'"
	check "(12) $1: $2 from b's inbound proxy (plaintext caller)" bash -c "echo '$o2' | head -1 | grep -q '^HTTP/1.1 $2'"
}
smuggle "CL.TE" 400 'POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'
smuggle "TE.CL" 400 'POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n'
smuggle "TE.TE xchunked" 501 'POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'
smuggle "TE.TE space before colon" 400 'POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n'
smuggle "TE.TE two fields" 400 'POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n'
smuggle "double Content-Length" 400 'POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'
smuggle "chunk size overflow" 400 'POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n0\r\n\r\n'
smuggle "obs-fold" 400 'GET / HTTP/1.1\r\nHost: b\r\nX-A: 1\r\n  folded\r\n\r\n'
smuggle "NUL in a value" 400 'GET / HTTP/1.1\r\nHost: b\r\nX-A: a\0b\r\n\r\n'
# Connection naming a framing field or Host: dropping it as hop-by-hop would forward the body
# unframed (a second request on the pooled connection) or a request without Host.
smuggle "Connection: content-length" 400 'POST /public/a HTTP/1.1\r\nHost: b\r\nConnection: content-length\r\nContent-Length: 49\r\n\r\nGET /public/slow-smuggled HTTP/1.1\r\nHost: web\r\n\r\n'
smuggle "Connection: transfer-encoding" 400 'POST /public/b HTTP/1.1\r\nHost: b\r\nConnection: keep-alive, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
smuggle "Content-Length in the trailers" 400 'POST /public/t HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 50\r\n\r\n'
smuggle "Connection: host" 400 'GET /public/c HTTP/1.1\r\nHost: b\r\nConnection: host\r\n\r\n'
after=$(nreq)
check "(12) none of them reached the server ($before -> $after)" test "$before" = "$after"

# (12) bytes that fail HTTP detection on a port under authorization are parsed and refused, never
# relayed past the policy: a leading CRLF, a bare LF, a control byte in the target, each sent by
# a over the mesh (a DELETE no rule allows a) and by plaintext c (no rule allows it anything).
paths8080() { stats 8080 | $PY -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)["paths"])))'; }
p0=$(paths8080)
undetected() { # NAME RAW
	local o1 o2
	o1=$(client "$PA" raw "$B4" 8080 "$2")
	o2=$(in_ns "$PC" "$APP_UID" timeout 60 $PY "$HERE/http_client.py" raw "$B4" 8080 "$2")
	check "(12) $1 over the mesh, on a port under authorization: 400, not relayed" bash -c "echo '$o1' | head -1 | grep -q '^HTTP/1.1 400'"
	check "(12) $1 from a plaintext caller, on a port under authorization: 400, not relayed" bash -c "echo '$o2' | head -1 | grep -q '^HTTP/1.1 400'"
}
undetected "a leading CRLF" '\r\nDELETE /admin/crlf HTTP/1.1\r\nHost: b\r\n\r\n'
undetected "a bare LF" 'DELETE /admin/lf HTTP/1.1\nHost: b\n\n'
undetected "a control byte in the target" 'DELETE /admin/\x01ctl HTTP/1.1\r\nHost: b\r\n\r\n'
undetected "CL.TE behind a leading CRLF" '\r\nPOST /admin/clte HTTP/1.1\r\nHost: b\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'
# A first byte, then a pause longer than the detect timeout: still HTTP, still authorized.
out=$(in_ns "$PC" "$APP_UID" timeout 60 $PY "$HERE/http_client.py" raw "$B4" 8080 'DELETE /admin/slow-first HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n' --split 1:4)
check "(12) a slow first request (1 byte, 4 s, the rest) is authorized as HTTP: 403" bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 403'"
check "(12) the app saw none of them" test "$(paths8080)" = "$p0"
# Generated Transfer-Encoding / Content-Length mutations (smuggle.py): through the mesh (a's
# outbound, mTLS, b's inbound) and from a plaintext caller, to a port without policy (every
# request reaches the app unless refused); each followed by a benign request on the same
# connection and a victim on another; the app must see exactly the requests it answered.
in_ns "$PA" "$APP_UID" timeout 900 $PY "$HERE/smuggle.py" "$B4" 8084 mesh > "$T/smuggle-mesh.txt" 2>&1
rc=$?
check "(12) smuggling mutations through the mesh: $(tail -1 "$T/smuggle-mesh.txt")" test "$rc" = 0
in_ns "$PC" "$APP_UID" timeout 900 $PY "$HERE/smuggle.py" "$B4" 8084 plain > "$T/smuggle-plain.txt" 2>&1
rc=$?
check "(12) smuggling mutations from a plaintext caller: $(tail -1 "$T/smuggle-plain.txt")" test "$rc" = 0
# The same on a port under authorization that allows only the suite's own paths: a smuggled
# request reaching the app there is an authorization bypass.
in_ns "$PA" "$APP_UID" timeout 900 $PY "$HERE/smuggle.py" "$B4" 8085 gmesh guarded > "$T/smuggle-gmesh.txt" 2>&1
rc=$?
check "(12) smuggling mutations through the mesh, to a port under authorization (bypasses: smuggled requests that reached the app): $(tail -1 "$T/smuggle-gmesh.txt")" test "$rc" = 0
in_ns "$PC" "$APP_UID" timeout 900 $PY "$HERE/smuggle.py" "$B4" 8085 gplain guarded > "$T/smuggle-gplain.txt" 2>&1
rc=$?
check "(12) smuggling mutations from a plaintext caller, to a port under authorization: $(tail -1 "$T/smuggle-gplain.txt")" test "$rc" = 0
grep -h '^FAIL' "$T"/smuggle-*.txt | head -10
# The version is forwarded as the proxy read it: HTTP/1.9 goes on as HTTP/1.1 (the test app, like
# a strict server, refuses any other); a target with "://" inside a path fits no form: 400.
out=$(client "$PA" raw "$B4" 8080 'GET /v19 HTTP/1.9\r\nHost: b\r\nConnection: close\r\n\r\n')
check "(12) HTTP/1.9 is forwarded as HTTP/1.1 (the app answers it)" bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 200' && echo '$out' | grep -q 'path=/v19'"
out=$(client "$PA" raw "$B4" 8084 'GET http://web?/admin HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n')
check "(12) an absolute-form target reaches the app in origin-form, as policy read it (/?/admin)" \
	bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 200' && echo '$out' | grep -q 'path=/?/admin'"
# The fields a proxy adds (traceparent) must not take a head past the next hop's 100-field limit:
# Host and 99 fields are refused at a's proxy (431 saying why); Host and 97 go through both.
f99=$(for i in $(seq 1 99); do printf 'X-F%d: v\\r\\n' "$i"; done)
out=$(client "$PA" raw "$B4" 8084 "GET /f99 HTTP/1.1\\r\\nHost: b\\r\\n${f99}\\r\\n" --timeout 5)
check "(12) 100 fields and a traceparent to add: 431 from a's proxy, naming its own fields" \
	bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 431' && echo '$out' | grep -q 'once the proxy adds its own'"
f97=$(for i in $(seq 1 97); do printf 'X-F%d: v\\r\\n' "$i"; done)
out=$(client "$PA" raw "$B4" 8084 "GET /f97 HTTP/1.1\\r\\nHost: b\\r\\n${f97}\\r\\n" --timeout 5)
check "(12) 98 fields go through both proxies" bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 200'"
out=$(client "$PA" raw "$B4" 8080 'GET admin/x://y HTTP/1.1\r\nHost: b\r\n\r\n')
check "(12) GET admin/x://y (no scheme, not origin-form): 400" bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 400'"
long=$(head -c 9000 /dev/zero | tr '\0' a)
out=$(client "$PA" raw "$B4" 8080 "GET /$long HTTP/1.1\\r\\nHost: b\\r\\n\\r\\n")
check "(12) a request line over 8 KiB: 400" bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 400'"
out=$(client "$PA" raw "$B4" 8080 "GET / HTTP/1.1\\r\\nHost: b\\r\\nX-Big: $long$long$long$long\\r\\n\\r\\n")
check "(12) a head over 32 KiB: 431" bash -c "echo '$out' | head -1 | grep -q '^HTTP/1.1 431'"

# (13) hot reload under HTTP load: a's and b's configs swap back and forth, no request fails
cp "$T/a.json" "$T/a1.json"; cp "$T/b.json" "$T/b1.json"
# A second rendering with a changed rule: render from edited objects, so the hashes are right.
sed 's/name: a-reads-writes/name: a-reads-writes-v2/; s/timeout: 300ms/timeout: 301ms/' "$T/objs.yaml" > "$T/objs2.yaml"
"$BIN/pillionctl" render --pod "$T/pod-a.yaml" -f "$T/objs2.yaml" > "$T/a2.json" || die "render a2"
"$BIN/pillionctl" render --pod "$T/pod-b.yaml" -f "$T/objs2.yaml" > "$T/b2.json" || die "render b2"
chmod a+r "$T"/*.json
RELOADED='pillion_proxy_reloads_total{file="config",result="ok"}'
r0=$(metric "$PB" "$RELOADED")
# The load loops run until the swaps are done (bounded: 600 s, 100000 requests).
rm -f "$T/run/load-stop"
in_ns "$PA" "$APP_UID" timeout 660 $PY "$HERE/http_client.py" load "$B4" 8080 /load 600 100000 "$T/run/load-stop" \
	> "$T/load.out" 2>"$T/load.err" &
LOADPID=$!
in_ns "$PA" "$APP_UID" timeout 660 $PY "$HERE/http_client.py" load "$B4" 8080 "/post/load" 600 100000 "$T/run/load-stop" \
	> "$T/load2.out" 2>"$T/load2.err" &
LOADPID2=$!
# Each swap waits until b has reloaded it (a swaps too, at the same pace).
for i in $(seq 1 12); do
	v=$((i % 2 + 1))
	project "$T/a/config" proxy.json="$T/a$v.json"
	project "$T/b/config" proxy.json="$T/b$v.json"
	wait_for 60 metric_ge "$PB" "$RELOADED" $((r0 + i)) || echo "note: b did not reload swap $i within 60 s"
done
touch "$T/run/load-stop"
wait "$LOADPID"; wait "$LOADPID2"
r1=$(metric "$PB" "$RELOADED")
check "(13) b reloaded its config under load, once per swap ($r0 -> $r1)" test "$r1" -ge $((r0 + 12))
check "(13) keep-alive load during the reloads: no failed request ($(cat "$T/load.out"))" grep -q 'failed=0' "$T/load.out"
check "(13) ... second loop too ($(cat "$T/load2.out"))" grep -q 'failed=0' "$T/load2.out"

# (15) access log and W3C trace context
# logcheck FILE MARKER KEY=VALUE|KEY>NUMBER...: the last access log line holding MARKER has those fields.
logcheck() {
	$PY - "$@" <<'PY'
import json, sys
f, marker, *conds = sys.argv[1:]
lines = [l for l in open(f) if marker in l]
if not lines:
    sys.exit(f"no line with {marker} in {f}")
d = json.loads(lines[-1])
for c in conds:
    k, op, v = (c.partition(">")[0], ">", c.partition(">")[2]) if ">" in c else (c.partition("=")[0], "=", c.partition("=")[2])
    got = d.get(k)
    if (op == "=" and str(got) != v) or (op == ">" and not (isinstance(got, int) and got > int(v))):
        sys.exit(f"{k}: want {op}{v}, got {got!r} in {lines[-1].strip()}")
PY
}
# the traceparent values the server saw, from an echo=1 response
seen_tp() { grep -o '"traceparent", "[^"]*"' "$1" | cut -d'"' -f4; }
export -f seen_tp
TP_RE='^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$'
ca -A 'e2e-agent/1' "http://$B4:8080/logged/a1?echo=1&q=%22x" > "$T/r15"
tp=$(seen_tp "$T/r15")
check "(15) a request without a traceparent reaches the server with a new one ($tp)" \
	bash -c "echo '$tp' | grep -Eq '$TP_RE'"
check "(15) ... flagged sampled, as samplingPercentage 100 says" bash -c "echo '$tp' | grep -q -- '-01\$'"
tid=$(echo "$tp" | cut -d- -f2)
wait_for 60 grep -q logged/a1 "$T/access-a.log"
wait_for 60 grep -q logged/a1 "$T/access-b.log"
check "(15) a's proxy logs it: outbound, service, route, status, method, agent, trace id, upstream" \
	logcheck "$T/access-a.log" logged/a1 direction=outbound service=e2e/web route=default status=200 method=GET \
	user_agent=e2e-agent/1 "trace_id=$tid" attempts=1 "upstream=$B4:8080" protocol=HTTP/1.1 policy=e2e/web
check "(15) b's proxy logs it inbound, with a's SPIFFE ID, the same trace id and the raw path" \
	logcheck "$T/access-b.log" logged/a1 direction=inbound "client_identity=spiffe://$TD/ns/e2e/sa/a" \
	"trace_id=$tid" 'path=/logged/a1?echo=1&q=%22x' 'response_bytes>100' status=200
check "(15) every access log line is one JSON object" \
	$PY -c 'import json,sys; [json.loads(l) for f in sys.argv[1:] for l in open(f)]' "$T/access-a.log" "$T/access-b.log"
ca -X POST --data-binary 'twelve bytes' "http://$B4:8080/post/logged-a2?fail=1" >/dev/null
wait_for 60 grep -q logged-a2 "$T/access-a.log"
check "(15) a retried POST logs 2 attempts, its 12 body bytes, and the final 200" \
	logcheck "$T/access-a.log" logged-a2 attempts=2 request_bytes=12 status=200 route=post
ca -X DELETE "http://$B4:8080/logged/a3" >/dev/null
wait_for 60 grep -q logged/a3 "$T/access-b.log"
check "(15) a denied request is logged with the proxy's cause" \
	logcheck "$T/access-b.log" logged/a3 status=403 proxy_error=forbidden method=DELETE
given="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ca -H "traceparent: $given" -H 'tracestate: v=1' "http://$B4:8080/logged/a4?echo=1" > "$T/r15b"
check "(15) a valid traceparent (and its tracestate) is passed on unchanged" \
	bash -c "[ \"\$(seen_tp '$T/r15b')\" = '$given' ] && grep -q '\"tracestate\", \"v=1\"' '$T/r15b'"
ca -H "traceparent: 00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01" -H 'tracestate: v=1' \
	"http://$B4:8080/logged/a5?echo=1" > "$T/r15c"
check "(15) an invalid traceparent is replaced by one new one, and its tracestate dropped" \
	bash -c "[ \$(seen_tp '$T/r15c' | wc -l) = 1 ] && seen_tp '$T/r15c' | grep -Eq '$TP_RE' && ! grep -q tracestate '$T/r15c'"
ca "http://$B4:8081/cb/ok?echo=1" > "$T/r15d"
ca "http://$B4:8081/cb/logged-e1?status=502" > /dev/null
ca "http://$B4:8081/cb/logged-ok" > /dev/null
check "(15) samplingPercentage 0: a new trace is not flagged sampled ($(seen_tp "$T/r15d"))" \
	bash -c "seen_tp '$T/r15d' | grep -Eq -- '^00-.*-00\$'"
wait_for 60 grep -q logged-e1 "$T/access-a.log"
check "(15) filter Errors: a 502 is logged, a 200 is not" \
	bash -c "grep -q 'logged-e1' '$T/access-a.log' && ! grep -q 'logged-ok' '$T/access-a.log'"
ca "http://$B4:8082/rl-logged?echo=1" > "$T/r15e"
check "(15) traceparent Propagate: none is added on either side" \
	bash -c "grep -q rl-logged '$T/r15e' && ! grep -qi traceparent '$T/r15e'"
ca -H 'traceparent: garbage' "http://$B4:8082/rl-logged2?echo=1" > "$T/r15f"
check "(15) traceparent Propagate: an invalid one passes untouched" bash -c "[ \"\$(seen_tp '$T/r15f')\" = garbage ]"
check "(15) a policy without accessLog writes no line" bash -c "! grep -q rl-logged '$T/access-a.log' '$T/access-b.log'"
check "(15) lines are counted as queued" \
	test "$(metric "$PA" 'pillion_proxy_access_log_lines_total{result="queued"}')" -ge 4

# (16) kubelet probes: the injected probes go to the admin port, where the proxy runs the app's
# own probe on loopback; the app's ports take no plaintext under STRICT (d), not even a probe path,
# and a probe path gets no exception from authorization (b).
pc() { in_ns "$PC" "$APP_UID" curl -s -i --max-time 30 "$@"; }
check "(16) d's rendered config lists its HTTP and tcpSocket probes (named port resolved, query and headers kept, HTTPS left out)" \
	$PY -c 'import json,sys; p=json.load(open(sys.argv[1]))["probes"]; assert p == [{"container": "app", "kind": "liveness", "port": 8080, "path": "/healthz", "timeoutSeconds": 1}, {"container": "app", "kind": "readiness", "port": 8080, "path": "/ready?full=1&status=503", "timeoutSeconds": 5, "headers": [{"name": "X-Probe", "value": "ready"}]}, {"container": "side", "kind": "liveness", "port": 8080, "tcp": True, "timeoutSeconds": 1}, {"container": "side", "kind": "readiness", "port": 8097, "tcp": True, "timeoutSeconds": 1}], p' "$T/d.json"
pc "http://$D4:15420/app-health/app/liveness" > "$T/r16a"
check "(16) STRICT d: the kubelet's liveness probe on the admin port runs the app's /healthz: 200" \
	bash -c "[ \"\$(status < '$T/r16a')\" = 200 ] && grep -q 'app/liveness: GET 127.0.0.1:8080/healthz: the app answered 200' '$T/r16a'"
pc "http://$D4:15420/app-health/app/readiness" > "$T/r16b"
check "(16) STRICT d: the readiness probe passes the app's answer on (503), query and headers sent" \
	bash -c "[ \"\$(status < '$T/r16b')\" = 503 ] && grep -q 'the app answered 503' '$T/r16b'"
pc "http://$D4:15420/app-health/side/liveness" > "$T/r16t"
check "(16) STRICT d: a tcpSocket probe runs as a connect on loopback: 200 when the app accepts" \
	bash -c "[ \"\$(status < '$T/r16t')\" = 200 ] && grep -q 'side/liveness: connect 127.0.0.1:8080: the app accepts connections' '$T/r16t'"
pc "http://$D4:15420/app-health/side/readiness" > "$T/r16u"
check "(16) ... and 503 when nothing listens (the proxy's own accept no longer answers it)" \
	bash -c "[ \"\$(status < '$T/r16u')\" = 503 ] && grep -q 'Connection refused' '$T/r16u'"
pc "http://$D4:15420/app-health/app/startup" > "$T/r16c"
check "(16) an HTTPS probe is not run by the proxy (404)" bash -c "[ \"\$(status < '$T/r16c')\" = 404 ]"
pc "http://$D4:15420/app-health/other/liveness" > "$T/r16h"
check "(16) a probe of a container the config does not name: 404" bash -c "[ \"\$(status < '$T/r16h')\" = 404 ]"
pc "http://$D4:8080/healthz" > "$T/r16g"
check "(16) STRICT d: a plaintext GET of the liveness path on the app's port is refused (no probe exception)" \
	bash -c "! grep -q 'hello from d' '$T/r16g'"
out=$(in_ns "$PC" "$APP_UID" timeout 60 $PY "$HERE/http_client.py" raw "$D4" 8080 'GET /ready?full=1 HTTP/1.1\r\nHost: d\r\n\r\n')
check "(16) STRICT d: nor the readiness path" bash -c "! echo '$out' | grep -q 'hello from d'"
check "(16) ... counted as STRICT plaintext refusals" \
	test "$(metric "$PD" 'pillion_proxy_refused_connections_total{direction="inbound",reason="strict_plaintext"}')" -ge 2
check "(16) STRICT d still serves mesh callers (a over mTLS)" grep -q 'hello from d' <(ca -H 'x-canary: true' "http://$B4:8080/strict-ok")
pc "http://$B4:8080/healthz" > "$T/r16e"
check "(16) PERMISSIVE b: a plaintext GET of a probe path gets no exception from authorization: 403" \
	bash -c "[ \"\$(status < '$T/r16e')\" = 403 ]"
pc "http://$B4:15420/app-health/app/liveness" > "$T/r16f"
check "(16) PERMISSIVE b: its liveness probe runs through the admin port: 200" bash -c "[ \"\$(status < '$T/r16f')\" = 200 ]"

# (19) (before (17), whose ejections of d would hide it) a pod gone on a real bridge: its IP drops the SYN (no RST). c drops 8086 and 8087; vanish
# lists c:8086 between b and d, fallback lists only c:8086 and c:8087, its "cluster IP"
# 198.18.2.105 being an address of d (what kube-proxy would keep current).
ip netns exec "$PC" iptables -A INPUT -p tcp -m multiport --dports 8086,8087 -j DROP
ip -n "$PD" addr add 198.18.2.105/24 dev eth0
t0=$(date +%s)
out=$(client "$PA" peers 198.18.2.104 8080 /vanish 30)
t1=$(date +%s)
check "(19) an endpoint that drops SYNs costs no failed request ($out)" \
	bash -c "[ \$(echo '$out' | grep -o '\"[bd]:200\": [0-9]*' | awk '{s+=\$2} END {print s}') = 30 ]"
check "(19) ... nor more than the 1 s endpoint connect timeout per try: 30 requests in $((t1 - t0)) s (bound 20 s; the 5 s connect timeout would take 50 s)" \
	test $((t1 - t0)) -le 20
unreach=$(metric "$PA" 'pillion_proxy_circuit_breaker_total{service="e2e/vanish",reason="unreachable",backend="e2e/vanish"}')
check "(19) ... the endpoint leaves the rotation (unreachable: $unreach), the log says the connect timed out" \
	bash -c "[ '$unreach' -ge 1 ] && grep -q 'endpoint 198.18.2.3:8086 of e2e/vanish: connect failure: connect timed out' '$T/proxy-a.log'"
out=$(client "$PA" peers 198.18.2.105 8080 /fallback 5)
check "(19) every listed endpoint silent: the Service address answers, nothing fails ($out)" \
	bash -c "echo '$out' | grep -q '\"d:200\": 5'"

# (20) a peer's proxy that cannot reach its app (it exited on SIGTERM while the proxy drains)
# answers 503 with its verdict field: the request never reached an app, so the caller's proxy
# takes it to another endpoint, free. halfdead lists b:8099 (nothing listens) and d. An app's own
# answer carrying that field does not get past its proxy: no retry, and the caller never sees it.
out=$(client "$PA" peers 198.18.2.106 8080 /halfdead 20)
check "(20) a peer proxy's 'connect failure' 503: the request goes on to another endpoint; 20/20 from d ($out)" \
	bash -c "echo '$out' | grep -q '\"d:200\": 20'"
ip netns exec "$PB" curl -s -o /dev/null --max-time 30 "http://127.0.0.1:8080/__reset"
ca "http://$B4:8080/forge?status=503&forge=1" > "$T/r20"
check "(20) an app's 503 with the proxy's verdict field: passed on, the field removed" \
	bash -c "[ \"\$(status < '$T/r20')\" = 503 ] && ! grep -qi '^pillion-proxy-error' '$T/r20'"
forged=$(stats 8080 | $PY -c 'import json,sys; print(json.load(sys.stdin)["paths"].get("/forge?status=503&forge=1", 0))')
check "(20) ... b's app saw that request once ($forged)" test "$forged" = 1

# (17) per-endpoint balancing: the Services' "cluster IPs" route nowhere (no kube-proxy here), so
# every answer proves the proxy dialled a pod from the directory's endpoints. spread lists b, c
# (nothing listens: a pod gone before the directory says so) and d.
out=$(client "$PA" peers 198.18.2.101 8080 /spread2 20)
check "(17) no policy: requests to a Service go round the endpoints ($out)" \
	bash -c "echo '$out' | grep -q '\"b:200\": 10' && echo '$out' | grep -q '\"d:200\": 10'"
out=$(client "$PA" peers 198.18.2.100 8080 /spread 30)
check "(17) a dead endpoint costs no failed request (connect failure: the next endpoint, free) ($out)" \
	bash -c "[ \$(echo '$out' | grep -o '\"[bd]:200\": [0-9]*' | awk '{s+=\$2} END {print s}') = 30 ]"
check "(17) ... and leaves the rotation at once (a failed connect: out for 1 s, doubling)" \
	test "$(metric "$PA" 'pillion_proxy_circuit_breaker_total{service="e2e/spread",reason="unreachable",backend="e2e/spread"}')" -ge 1
out=$(client "$PA" peers 198.18.2.100 8080 "/spread/x?failpeer=d" 20)
check "(17) ejection is per endpoint: d answers 500 twice, is ejected, b serves the rest ($out)" \
	bash -c "echo '$out' | grep -q '\"d:500\": 2' && echo '$out' | grep -q '\"b:200\": 18'"
check "(17) ... the log names the ejected pod's address" grep -q "circuit breaker: endpoint $D4:8080 of e2e/spread ejected" "$T/proxy-a.log"


# (18) the remaining fields, each through a request
ca "http://$B4:8080/exact" > "$T/r18a"; ca "http://$B4:8080/exact/not" > "$T/r18b"
check "(18) match.path.exact: /exact matches (451), /exact/not does not" \
	bash -c "[ \"\$(status < '$T/r18a')\" = 451 ] && [ \"\$(status < '$T/r18b')\" = 200 ]"
ca -H 'x-flag;' "http://$B4:8080/flag" > "$T/r18c"; ca "http://$B4:8080/flag" > "$T/r18d"
check "(18) match.headers present: a request with x-flag (even empty) matches (452), one without does not" \
	bash -c "[ \"\$(status < '$T/r18c')\" = 452 ] && [ \"\$(status < '$T/r18d')\" = 200 ]"
ca -X DELETE "http://$B4:8080/tmp/x" > "$T/r18e"
check "(18) authorization from.namespaces + to.paths: a (namespace e2e) may DELETE /tmp/x" \
	bash -c "[ \"\$(status < '$T/r18e')\" = 200 ]"
in_ns "$PC" "$APP_UID" curl -s -i --max-time 30 -X DELETE "http://$B4:8080/tmp/x" > "$T/r18f"
check "(18) ... a plaintext caller has no namespace: 403" bash -c "[ \"\$(status < '$T/r18f')\" = 403 ]"
# Paths are matched as the app reads them: unreserved escapes decoded, dot segments removed;
# what servers read differently (path-parameter dot segments, encoded separators) is refused.
ca --path-as-is -X DELETE "http://$B4:8080/%74mp/y" > "$T/r18g"
check "(18) DELETE /%74mp/y is matched as /tmp/y (the rule allows it): 200" \
	bash -c "[ \"\$(status < '$T/r18g')\" = 200 ] && grep -q 'path=/%74mp/y' '$T/r18g'"
ca --path-as-is -X DELETE "http://$B4:8080/tmp/..;/admin" > "$T/r18h"
check "(18) DELETE /tmp/..;/admin (a Tomcat-style dot segment): 400" bash -c "[ \"\$(status < '$T/r18h')\" = 400 ]"
ca --path-as-is -X DELETE "http://$B4:8080/tmp/../admin" > "$T/r18i"
check "(18) DELETE /tmp/../admin is /admin, which no rule allows: 403" bash -c "[ \"\$(status < '$T/r18i')\" = 403 ]"
# A fragment: the rule would see /tmp/ while a server that keeps "#" in the path and resolves dot
# segments reads /admin. Refused before any policy (curl drops fragments: raw bytes).
out=$(client "$PA" raw "$B4" 8080 'DELETE /tmp/#/../admin HTTP/1.1\r\nHost: b\r\n\r\n' --timeout 10 | head -1)
check "(18) DELETE /tmp/#/../admin (a fragment in the target): 400, never forwarded ($out)" \
	bash -c "echo '$out' | grep -q '^HTTP/1.1 400' && ! echo '$(stats 8080)' | grep -q '#'"
ca "http://198.18.2.102:8080/h" > "$T/r18g"; ca "http://198.18.2.103:8080/h" > "$T/r18h"
check "(18) exportTo: a policy exported elsewhere is not applied by a, one exported to \".\" is (453)" \
	bash -c "grep -q 'hello from b' '$T/r18g' && [ \"\$(status < '$T/r18h')\" = 453 ]"

# (14) draining: SIGTERM ends idle keep-alive sessions and the proxy exits 0
check "(14) metrics show HTTP sessions counted as connections" \
	test "$(metric "$PA" 'pillion_proxy_connections_total{direction="outbound",transport="mtls"}')" -ge 20
# One connection object lives from accept to close, whatever speaks on it (HTTP/1, a tunnel after
# an upgrade): once the app's clients are gone, none is still counted open.
check "(14) ... and none is counted open once the clients closed (sessions, tunnels)" wait_for 30 none_open "$PA" outbound

if [ "$E2E_FAILS" != 0 ]; then
	for f in "$T"/proxy-*.log; do echo "--- $f (last lines)"; tail -n 20 "$f"; done
fi
echo "$E2E_CHECKS checks, $E2E_FAILS failed"
[ "$E2E_FAILS" = 0 ]
