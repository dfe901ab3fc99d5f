#!/usr/bin/env bash
# bench/h2.sh: HTTP/2 through pillion-proxy next to HAProxy and nginx, on this machine, in one run.
#
# The same backend for every row: nghttpd (h2c, prior knowledge) answering BODY_BYTES. Each row is
# a client-side proxy and a server-side proxy with TLS 1.3 mTLS between them, in fresh network
# namespaces (client 198.18.0.1, server 198.18.0.2):
#   direct        h2load -> nghttpd
#   pillion-h2    h2load (the app, redirected by pillion-init) -> pillion-proxy =mTLS, h2=> pillion-proxy
#                 -> nghttpd; a TrafficPolicy route with a timeout and retries (every stream parsed)
#   haproxy-h2    h2load -> haproxy (mode http, bind proto h2) =mTLS, alpn h2=> haproxy -> nghttpd (proto h2)
#   nginx-grpc    h2load -> nginx (listen http2, grpc_pass grpcs://) =mTLS=> nginx (grpc_pass grpc://) -> nghttpd;
#                 nginx's gRPC proxy carries one stream per upstream connection (kept alive, up to 256)
# Two loads per row, each closed-loop for DURATION seconds with CONNS connections of STREAMS streams:
#   get    GET, BODY_BYTES answered
#   unary  gRPC-shaped unary calls: POST, content-type application/grpc, a 5-byte-framed BODY_BYTES
#          each way (nghttpd answers the file; nothing gRPC-specific is measured on the backend)
# Reported: requests/s, p50 and p99 of h2load's per-request times (its --log-file), proxies' RSS
# (idle, peak under load), and each row as a ratio of HAProxy's. HAProxy's and nginx's client-side
# proxies listen on an address h2load dials (no capture); pillion's is captured, as in a pod.
#
# Needs root. Everything started is stopped by PID; every namespace is deleted on exit.
# Then IDLE_CONNS connections of IDLE_STREAMS streams each, opened and never finished (no server
# answers them; bench/h2idle.py): the proxies' RSS per idle stream.
# Tunables: DURATION (10) WARMUP (2) CONNS (8) STREAMS (10) BODY_BYTES (1024) IDLE_CONNS (20)
# IDLE_STREAMS (50) ROWS OUT
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${PILLION_BIN:-$ROOT/build/bin}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-8}
STREAMS=${STREAMS:-10}
BODY_BYTES=${BODY_BYTES:-1024}
IDLE_CONNS=${IDLE_CONNS:-20}
IDLE_STREAMS=${IDLE_STREAMS:-50}
ROWS=${ROWS:-"direct pillion-h2 haproxy-h2 nginx-grpc"}
OUT=${OUT:-$ROOT/bench/results/h2-latest.md}
PROXY_UID=1407
C_ADDR=198.18.0.1
S_ADDR=198.18.0.2
APP_PORT=8080

log() { printf '%s\n' "$*" >&2; }
die() { log "bench-h2: $*"; exit 1; }
for v in DURATION WARMUP CONNS STREAMS BODY_BYTES IDLE_CONNS IDLE_STREAMS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
((DURATION >= 1 && DURATION <= 600 && CONNS >= 1 && STREAMS >= 1 && BODY_BYTES >= 1 && BODY_BYTES <= 1048576)) ||
	die "bad DURATION/CONNS/STREAMS/BODY_BYTES"
[[ $(id -u) == 0 ]] || die "must run as root"
"$ROOT/scripts/install-deps.sh" bench >&2 || die "scripts/install-deps.sh bench failed"
for t in h2load nghttpd haproxy nginx openssl; do command -v $t >/dev/null || die "$t missing"; done
[[ -x $BIN/pillion-proxy && -x $BIN/pillion-init && -x $BIN/pillionctl ]] || die "pillion binaries missing in $BIN (make build)"

SUFFIX=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/pillion-bench-h2.XXXXXX)
chmod 755 "$WORK"
PIDS=()
NSES=()
alive() { kill -0 "$1" 2>/dev/null; }
stop_pid() {
	local pid=$1 i
	alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
	alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	for p in "${NSES[@]}"; do
		ip netns exec "$p" "$BIN/pillion-init" --cleanup >/dev/null 2>&1 || true
		ip netns del "$p" 2>/dev/null || true
	done
	[[ -n ${KEEP_LOGS:-} ]] && cp -r "$WORK" "$KEEP_LOGS" 2>/dev/null
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
BG=
start_bg() { local l=$1; shift; "$@" >"$l" 2>&1 </dev/null & BG=$!; PIDS+=("$BG"); }

NS_C= NS_S=
topo_up() {
	NS_C=pbh-$SUFFIX-$1-c
	NS_S=pbh-$SUFFIX-$1-s
	ip netns add "$NS_C"; NSES+=("$NS_C")
	ip netns add "$NS_S"; NSES+=("$NS_S")
	ip -n "$NS_C" link add eth0 type veth peer name eth0 netns "$NS_S"
	ip -n "$NS_C" addr add $C_ADDR/24 dev eth0
	ip -n "$NS_S" addr add $S_ADDR/24 dev eth0
	for ns in "$NS_C" "$NS_S"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
}
topo_down() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	PIDS=()
	for ns in "$NS_C" "$NS_S"; do
		ip netns exec "$ns" "$BIN/pillion-init" --cleanup >/dev/null 2>&1 || true
		ip netns del "$ns" 2>/dev/null || true
	done
	NSES=()
}
wait_tcp() { # NS ADDR PORT PID
	local i
	for ((i = 0; i < 100; i++)); do
		alive "$4" || return 1
		ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------- files
mkdir -p "$WORK"/{pki,www,logs,pillion/client/tls,pillion/server/tls}
chmod 1777 "$WORK/logs" # h2load runs as the app UID in the pillion row
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$WORK/www/index.html"
n=$BODY_BYTES
# a gRPC message: uncompressed flag, 4-byte big-endian length, the bytes
{ printf '\0'; printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))"
  head -c "$n" /dev/zero | tr '\0' 'y'; } >"$WORK/unary.grpc"
d=$WORK/pki
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key" 2>/dev/null
openssl req -x509 -new -key "$d/ca.key" -sha256 -days 2 -subj "/CN=pillion-bench-h2 CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$d/ca.crt" 2>/dev/null
for who in server client; do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$who.key" 2>/dev/null
	openssl req -new -key "$d/$who.key" -subj "/O=pillion-bench" -out "$d/$who.csr" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:spiffe://cluster.local/ns/bench/sa/%s,DNS:%s.bench.svc.cluster.local\n' \
		"$who" "$who" >"$d/$who.ext"
	openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -sha256 -days 2 \
		-extfile "$d/$who.ext" -out "$d/$who.crt" 2>/dev/null
	cat "$d/$who.crt" "$d/$who.key" >"$d/$who.pem"
	cp "$d/$who.crt" "$WORK/pillion/$who/tls/tls.crt"
	cp "$d/$who.key" "$WORK/pillion/$who/tls/tls.key"
	cp "$d/ca.crt" "$WORK/pillion/$who/tls/ca.crt"
done
chown -R $PROXY_UID:$PROXY_UID "$WORK/pillion"
chmod 644 "$d"/*.crt "$d"/*.key "$d"/*.pem

for who in server client; do
	cat >"$WORK/pillion/$who/pod.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $who-0, namespace: bench, labels: {app: $who}, annotations: {pillion.dev/id: "bench-$who-0"}}
spec: {serviceAccountName: $who, containers: [{name: app, image: app, ports: [{name: h2, containerPort: $APP_PORT}]}]}
EOF
done
cat >"$WORK/pillion/policies.yaml" <<EOF
apiVersion: pillion.dev/v1alpha1
kind: MeshIdentity
metadata: {name: server, namespace: bench}
spec: {selector: {matchLabels: {app: server}}, mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: bench}
spec: {selector: {app: server}, ports: [{name: h2, port: $APP_PORT, targetPort: h2}]}
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: server, namespace: bench}
spec:
  targetRef: {kind: Service, name: server, port: $APP_PORT}
  routes:
  - name: all
    match: {path: {prefix: /}}
    timeout: 5s
    retries: {attempts: 2, perTryTimeout: 2s, retryOn: [5xx, connect-failure, unavailable]}
EOF
cat >"$WORK/pillion/mesh.json" <<EOF
{"apiVersion":"pillion.dev/v1alpha1","kind":"MeshDirectory","namespace":"bench",
 "services":[{"namespace":"bench","name":"server","addresses":["$S_ADDR"],"ports":[$APP_PORT],"identities":["spiffe://cluster.local/ns/bench/sa/server"]}],
 "pods":[{"namespace":"bench","name":"server-0","addresses":["$S_ADDR"],"identity":"spiffe://cluster.local/ns/bench/sa/server"},
         {"namespace":"bench","name":"client-0","addresses":["$C_ADDR"],"identity":"spiffe://cluster.local/ns/bench/sa/client"}]}
EOF
for who in server client; do
	"$BIN/pillionctl" render --pod "$WORK/pillion/$who/pod.yaml" -f "$WORK/pillion/policies.yaml" >"$WORK/pillion/$who/config.json" ||
		die "pillionctl render failed"
done
chmod 644 "$WORK"/pillion/*/config.json "$WORK"/pillion/mesh.json
cp "$BIN/pillion-proxy" "$WORK/pillion-proxy"
chmod 755 "$WORK/pillion-proxy"

# ---------------------------------------------------------------- proxies
start_backend() {
	start_bg "$WORK/logs/nghttpd-$1.log" ip netns exec "$NS_S" nghttpd --no-tls -d "$WORK/www" -n 1 $APP_PORT
	wait_tcp "$NS_S" 127.0.0.1 $APP_PORT "$BG" || die "nghttpd did not start"
}

PROXY_PIDS=()
start_pillion() {
	local who ns
	for who in client server; do
		ns=$NS_C; [[ $who == server ]] && ns=$NS_S
		ip netns exec "$ns" "$BIN/pillion-init" >"$WORK/logs/init-$who.log" 2>&1 || die "pillion-init failed"
		start_bg "$WORK/logs/pillion-$who.log" ip netns exec "$ns" setpriv --reuid=$PROXY_UID --regid=$PROXY_UID \
			--clear-groups "$WORK/pillion-proxy" --config "$WORK/pillion/$who/config.json" --mesh "$WORK/pillion/mesh.json" \
			--tls-dir "$WORK/pillion/$who/tls" --log-level warn
		PROXY_PIDS+=("$BG")
		local i
		for ((i = 0; i < 100; i++)); do
			ip netns exec "$ns" curl -sf -o /dev/null http://127.0.0.1:15420/ready && break
			sleep 0.1
		done
		ip netns exec "$ns" curl -sf -o /dev/null http://127.0.0.1:15420/ready || die "pillion-proxy ($who) not ready"
	done
	TARGET=http://$S_ADDR:$APP_PORT
	LOAD_UID=1000
}

start_haproxy() {
	cat >"$WORK/haproxy-c.cfg" <<EOF
global
	nbthread 1
	maxconn 4096
	ssl-server-verify required
defaults
	mode http
	timeout connect 5s
	timeout client 120s
	timeout server 120s
	retries 2
	option redispatch
frontend in
	bind 127.0.0.1:10080 proto h2
	default_backend out
backend out
	timeout server 5s
	retry-on conn-failure 503
	server s $S_ADDR:8443 ssl crt $WORK/pki/client.pem ca-file $WORK/pki/ca.crt verify required verifyhost server.bench.svc.cluster.local alpn h2
EOF
	cat >"$WORK/haproxy-s.cfg" <<EOF
global
	nbthread 1
	maxconn 4096
defaults
	mode http
	timeout connect 5s
	timeout client 120s
	timeout server 120s
frontend in
	bind $S_ADDR:8443 ssl crt $WORK/pki/server.pem ca-file $WORK/pki/ca.crt verify required alpn h2
	default_backend out
backend out
	server app 127.0.0.1:$APP_PORT proto h2
EOF
	start_bg "$WORK/logs/haproxy-s.log" ip netns exec "$NS_S" haproxy -db -f "$WORK/haproxy-s.cfg"
	PROXY_PIDS+=("$BG")
	wait_tcp "$NS_S" $S_ADDR 8443 "$BG" || die "haproxy (server) did not start"
	start_bg "$WORK/logs/haproxy-c.log" ip netns exec "$NS_C" haproxy -db -f "$WORK/haproxy-c.cfg"
	PROXY_PIDS+=("$BG")
	wait_tcp "$NS_C" 127.0.0.1 10080 "$BG" || die "haproxy (client) did not start"
	TARGET=http://127.0.0.1:10080
	LOAD_UID=0
}

nginx_cfg() { # FILE SERVER_BLOCK
	cat >"$1" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $1.pid;
error_log $1.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx-tmp;
	proxy_temp_path $WORK/nginx-tmp;
	fastcgi_temp_path $WORK/nginx-tmp;
	uwsgi_temp_path $WORK/nginx-tmp;
	scgi_temp_path $WORK/nginx-tmp;
	http2_max_requests 100000000;
	keepalive_requests 100000000;
	$2
}
EOF
}
start_nginx() {
	mkdir -p "$WORK/nginx-tmp"
	nginx_cfg "$WORK/nginx-s.conf" "upstream app { server 127.0.0.1:$APP_PORT; keepalive 256; }
	server {
		listen $S_ADDR:8444 ssl http2;
		ssl_certificate $WORK/pki/server.crt;
		ssl_certificate_key $WORK/pki/server.key;
		ssl_client_certificate $WORK/pki/ca.crt;
		ssl_verify_client on;
		ssl_protocols TLSv1.3;
		location / { grpc_pass grpc://app; }
	}"
	nginx_cfg "$WORK/nginx-c.conf" "upstream srv { server $S_ADDR:8444; keepalive 256; }
	server {
		listen 127.0.0.1:10081 http2;
		location / {
			grpc_pass grpcs://srv;
			grpc_ssl_certificate $WORK/pki/client.crt;
			grpc_ssl_certificate_key $WORK/pki/client.key;
			grpc_ssl_trusted_certificate $WORK/pki/ca.crt;
			grpc_ssl_verify on;
			grpc_ssl_name server.bench.svc.cluster.local;
			grpc_ssl_protocols TLSv1.3;
			grpc_ssl_session_reuse on;
			grpc_connect_timeout 5s;
			grpc_read_timeout 5s;
			grpc_next_upstream error timeout http_503;
			grpc_next_upstream_tries 3;
		}
	}"
	start_bg "$WORK/logs/nginx-s.log" ip netns exec "$NS_S" nginx -c "$WORK/nginx-s.conf" -e "$WORK/nginx-s.conf.err"
	PROXY_PIDS+=("$BG")
	wait_tcp "$NS_S" $S_ADDR 8444 "$BG" || die "nginx (server) did not start: $(tail -n2 "$WORK/nginx-s.conf.err")"
	start_bg "$WORK/logs/nginx-c.log" ip netns exec "$NS_C" nginx -c "$WORK/nginx-c.conf" -e "$WORK/nginx-c.conf.err"
	PROXY_PIDS+=("$BG")
	wait_tcp "$NS_C" 127.0.0.1 10081 "$BG" || die "nginx (client) did not start: $(tail -n2 "$WORK/nginx-c.conf.err")"
	TARGET=http://127.0.0.1:10081
	LOAD_UID=0
}

# ---------------------------------------------------------------- measuring
rss_kb() { # PIDS and their children: summed VmRSS
	local t=0 p c v
	for p in "$@"; do
		for c in $p $(pgrep -P "$p" 2>/dev/null) $(for k in $(pgrep -P "$p" 2>/dev/null); do pgrep -P "$k"; done); do
			v=$(awk '/^VmRSS/ {print $2}' "/proc/$c/status" 2>/dev/null || echo 0)
			t=$((t + ${v:-0}))
		done
	done
	echo $t
}
declare -A RPS P50 P99 RIDLE RLOAD ERR IDLE
measure_idle() { # ROW: RSS before and with IDLE_CONNS x IDLE_STREAMS open, idle streams
	local row=$1 before after i line
	((IDLE_CONNS > 0 && IDLE_STREAMS > 0)) || return 0
	rm -f "$WORK/h2idle-ready" "$WORK/h2idle-stop"
	before=$(rss_kb "${PROXY_PIDS[@]}")
	local host=${TARGET#http://}
	ip netns exec "$NS_C" setpriv --reuid=$LOAD_UID --regid=$LOAD_UID --clear-groups /usr/bin/python3 \
		"$ROOT/bench/h2idle.py" "${host%:*}" "${host##*:}" "$IDLE_CONNS" "$IDLE_STREAMS" "$WORK/logs/h2idle-ready" \
		"$WORK/logs/h2idle-stop" 120 >"$WORK/logs/$row-idle.log" 2>&1 &
	local ip=$!
	for ((i = 0; i < 600; i++)); do
		[[ -s $WORK/logs/h2idle-ready ]] && break
		alive $ip || break
		sleep 0.1
	done
	line=$(cat "$WORK/logs/h2idle-ready" 2>/dev/null || echo "none")
	sleep 1
	after=$(rss_kb "${PROXY_PIDS[@]}")
	touch "$WORK/logs/h2idle-stop"
	wait $ip 2>/dev/null || true
	rm -f "$WORK/logs/h2idle-ready" "$WORK/logs/h2idle-stop"
	IDLE[$row]="$before $after $line"
	log "bench-h2: [$row] idle streams: $line; RSS $before -> $after kB"
}
h2load_run() { # ROW LOAD SECONDS LOGFILE
	local args=(-c "$CONNS" -m "$STREAMS" -D "$3" --warm-up-time=1)
	[[ $2 == unary ]] && args+=(-d "$WORK/unary.grpc" -H 'content-type: application/grpc' -H 'te: trailers')
	ip netns exec "$NS_C" setpriv --reuid=$LOAD_UID --regid=$LOAD_UID --clear-groups \
		timeout $(($3 + 60)) h2load "${args[@]}" --log-file="$4.times" "$TARGET/index.html" >"$4" 2>&1 || true
}
measure() { # ROW
	local row=$1 load peak idle f
	for load in get unary; do
		idle=$(rss_kb "${PROXY_PIDS[@]}")
		((WARMUP > 0)) && h2load_run "$row" "$load" "$WARMUP" "$WORK/logs/$row-$load.warm"
		f=$WORK/logs/$row-$load
		h2load_run "$row" "$load" "$DURATION" "$f" &
		local hp=$! peak=0 cur
		while alive $hp; do
			cur=$(rss_kb "${PROXY_PIDS[@]}")
			((cur > peak)) && peak=$cur
			sleep 0.25
		done
		wait $hp || true
		local k=$row/$load
		RPS[$k]=$(awk '/^finished in/ {for (i=1;i<=NF;i++) if ($i ~ /req\/s/) {gsub(",","",$(i-1)); print int($(i-1))}}' "$f")
		ERR[$k]=$(awk '/^requests:/ {gsub(",",""); print $0}' "$f" | awk '{for(i=1;i<=NF;i++) if ($(i+1) ~ /^(failed|errored|timeout)/) s+=$i} END{print s+0}')
		local st2=$(awk '/^status codes:/ {print $3}' "$f" | tr -d ',')
		# per-request times (µs, third column of --log-file): p50 and p99
		if [[ -s $f.times ]]; then
			P50[$k]=$(awk '{print $3}' "$f.times" | sort -n | awk '{a[NR]=$1} END{print a[int(NR*0.5)+1]}')
			P99[$k]=$(awk '{print $3}' "$f.times" | sort -n | awk '{a[NR]=$1} END{i=int(NR*0.99)+1; if(i>NR)i=NR; print a[i]}')
		fi
		RIDLE[$k]=$idle
		RLOAD[$k]=$peak
		[[ ${st2:-0} -gt 0 ]] || ERR[$k]="${ERR[$k]} (no 2xx)"
		log "bench-h2: [$row/$load] ${RPS[$k]:-?} req/s p50 ${P50[$k]:-?}us p99 ${P99[$k]:-?}us, RSS ${idle} -> ${peak} kB, errors ${ERR[$k]}"
	done
}

for row in $ROWS; do
	log "bench-h2: [$row]"
	topo_up "$row"
	PROXY_PIDS=()
	start_backend "$row"
	case $row in
	direct) TARGET=http://$S_ADDR:$APP_PORT; LOAD_UID=0 ;;
	pillion-h2) start_pillion ;;
	haproxy-h2) start_haproxy ;;
	nginx-grpc) start_nginx ;;
	*) die "unknown row $row" ;;
	esac
	code=$(ip netns exec "$NS_C" setpriv --reuid=$LOAD_UID --regid=$LOAD_UID --clear-groups curl -s -o /dev/null \
		-w '%{http_version} %{http_code}' --http2-prior-knowledge --max-time 5 "$TARGET/index.html" || true)
	[[ $code == "2 200" ]] || die "[$row] smoke request got '$code'"
	measure "$row"
	[[ $row == direct ]] || measure_idle "$row"
	topo_down
done

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a/b }'; }
{
	echo "# HTTP/2 through each proxy pair, $(date -u +%Y-%m-%d), $(nproc) CPUs"
	echo
	echo "h2load, $CONNS connections x $STREAMS streams, ${DURATION}s closed loop per load; ${BODY_BYTES} B bodies;"
	echo "p50/p99: per-request times from h2load's log (µs); RSS: both proxies of the row, idle -> peak (kB)."
	echo "ratios are to haproxy-h2 in this run (rate: higher is better; p99: lower is better)."
	echo
	echo "| row | load | req/s | p50 µs | p99 µs | RSS kB | rate vs haproxy | p99 vs haproxy | errors |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	for row in $ROWS; do
		for load in get unary; do
			k=$row/$load
			echo "| $row | $load | ${RPS[$k]:-} | ${P50[$k]:-} | ${P99[$k]:-} | ${RIDLE[$k]:-} -> ${RLOAD[$k]:-} | $(ratio "${RPS[$k]:-}" "${RPS[haproxy-h2/$load]:-}") | $(ratio "${P99[$k]:-}" "${P99[haproxy-h2/$load]:-}") | ${ERR[$k]:-} |"
		done
	done
	echo
	echo "Idle streams: $IDLE_CONNS connections x $IDLE_STREAMS streams whose requests never end, held through both proxies."
	echo
	echo "| row | streams open / refused | both proxies' RSS before -> with them (kB) | RSS per idle stream |"
	echo "| --- | ---: | ---: | ---: |"
	for row in $ROWS; do
		[[ -n ${IDLE[$row]:-} ]] || continue
		read -r b a _ o f <<<"${IDLE[$row]}"
		per=$(awk -v b="$b" -v a="$a" -v o="${o:-0}" 'BEGIN{ if (o > 0) printf "%.0f bytes", (a - b) * 1024 / o; else print "-" }')
		echo "| $row | ${o:-0} / ${f:-?} | $b -> $a | $per |"
	done
} >"$OUT"
cat "$OUT"
