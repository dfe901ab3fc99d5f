#!/usr/bin/env bash
# bench/run.sh: pillion-proxy next to HAProxy and nginx, on this machine, in one run.
#
# Rows (each in fresh network namespaces, see bench/README.md):
#   direct        client -> app
#   pillion-pass  client -> pillion-proxy (outbound, plaintext relay) -> app
#   haproxy-1     client -> haproxy (mode tcp) -> app
#   nginx-1       client -> nginx stream -> app
#   pillion-mtls  client -> pillion-proxy (outbound) =TLS 1.3 mTLS=> pillion-proxy (inbound) -> app
#   haproxy-2     client -> haproxy =TLS 1.3 mTLS=> haproxy -> app
#   nginx-2       client -> nginx stream =TLS 1.3 mTLS=> nginx stream -> app
#   pillion-l7    as pillion-mtls, with a TrafficPolicy: one route, a timeout, retries (HTTP parsed both hops)
#   haproxy-l7-cap  HAProxy as a captured sidecar pair, mode http, mTLS, the same route, timeout and retries
# Then IDLE_CONNS idle keep-alive connections (each after one request) through pillion-l7 and
# haproxy-l7-cap: the proxies' RSS per idle connection.
#
# Needs root (network namespaces, iptables). Everything it starts is stopped by PID and
# every namespace it creates is deleted on exit, also on failure or Ctrl-C.
# Tunables (environment): DURATION WARMUP THREADS CONNS RATE RATE_CONNS PROXY_WORKERS
# APP_WORKERS BODY_BYTES ROWS OUT; see bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
BIN=${PILLION_BIN:-$ROOT/build/bin}

DURATION=${DURATION:-10}          # seconds of each measured load run
WARMUP=${WARMUP:-2}               # seconds of unmeasured closed-loop load before each row
THREADS=${THREADS:-1}             # wrk threads
CONNS=${CONNS:-32}                # wrk connections
RATE=${RATE:-2000}                # fixed-rate run: requests per second
RATE_CONNS=${RATE_CONNS:-16}      # fixed-rate run: keep-alive connections
PROXY_WORKERS=${PROXY_WORKERS:-1} # haproxy nbthread / nginx worker_processes
APP_WORKERS=${APP_WORKERS:-1}     # app nginx worker_processes
BODY_BYTES=${BODY_BYTES:-1024}    # app response body size
ROWS=${ROWS:-"direct pillion-pass haproxy-1 haproxy-1-cap nginx-1 pillion-mtls haproxy-2 haproxy-2-cap nginx-2 pillion-l7 haproxy-l7-cap"}
IDLE_CONNS=${IDLE_CONNS:-10000}   # idle keep-alive connections for the RSS-per-connection test (0: skip)
OUT=${OUT:-$BENCH/results/latest.md}
READY_TIMEOUT=${READY_TIMEOUT:-10} # seconds to wait for a proxy to become ready
ROUNDS=${ROUNDS:-1}               # repeat all rows this many times; the table shows medians

PROXY_UID=1407            # pillion-proxy runs as this UID/GID (exempt from redirect)
C_ADDR=198.18.0.1         # client namespace (RFC 2544 benchmarking range)
S_ADDR=198.18.0.2         # server namespace
APP_PORT=80
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

for v in DURATION WARMUP THREADS CONNS RATE RATE_CONNS PROXY_WORKERS APP_WORKERS BODY_BYTES READY_TIMEOUT ROUNDS IDLE_CONNS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be between 1 and 600"
((ROUNDS >= 1 && ROUNDS <= 20)) || die "ROUNDS must be between 1 and 20"
((THREADS >= 1 && CONNS >= THREADS && RATE >= 1 && RATE_CONNS >= 1)) || die "bad THREADS/CONNS/RATE/RATE_CONNS"
((PROXY_WORKERS >= 1 && APP_WORKERS >= 1 && BODY_BYTES >= 2 && BODY_BYTES <= 65536)) || die "bad workers/BODY_BYTES"
for r in $ROWS; do
	case $r in direct|pillion-pass|pillion-mtls|pillion-l7|haproxy-1|haproxy-2|haproxy-1-cap|haproxy-2-cap|haproxy-l7-cap|nginx-1|nginx-2) ;;
	*) die "unknown row '$r' in ROWS" ;;
	esac
done
[[ $(id -u) == 0 ]] || die "must run as root (network namespaces, iptables): sudo $0"
((IDLE_CONNS <= 30000)) || die "IDLE_CONNS must be at most 30000"
# Idle connections: every process started from here may hold that many descriptors (root may raise it).
{ ulimit -Hn 65536 && ulimit -n 65536; } 2>/dev/null || log "bench: note: cannot raise the descriptor limit"

# ---------------------------------------------------------------- dependencies
# HAProxy, nginx and wrk come as scripts/install-deps.sh's bench set, their services left disabled.
"$ROOT/scripts/install-deps.sh" bench >&2 || die "scripts/install-deps.sh bench failed"
[[ -e $STREAM_MODULE ]] || die "nginx stream module missing ($STREAM_MODULE)"

if [[ ! -x $BIN/pillionctl || ! -x $BIN/pillion-proxy || ! -x $BIN/pillion-init ]] && [[ $BIN == "$ROOT/build/bin" ]]; then
	log "bench: $BIN incomplete, building the project"
	command -v cmake >/dev/null 2>&1 || die "cmake missing (scripts/install-deps.sh build installs it)"
	(cd "$ROOT" && cmake -S . -B build -DPILLION_WERROR=ON >&2 && cmake --build build -j2 >&2) ||
		log "bench: build failed; pillion rows will be reported as not available"
fi

# ---------------------------------------------------------------- state and cleanup
SUFFIX=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
WORK=$(mktemp -d /tmp/pillion-bench.XXXXXX)
chmod 755 "$WORK" # the pillion proxy (UID 1407) reads its files under here
PIDS=()       # every long-running process we started
NSES=()       # every namespace we created
INIT_NSES=()  # namespaces where pillion-init installed rules

alive() { kill -0 "$1" 2>/dev/null; }

stop_pid() { # stop one process we started: TERM, up to 5 s, then KILL; reap it
	local pid=$1 i
	alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? pid ns
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	for ns in "${INIT_NSES[@]}"; do
		ip netns exec "$ns" "$BIN/pillion-init" --cleanup >/dev/null 2>&1 || true
	done
	for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	if [[ -n ${KEEP_LOGS:-} && -d $WORK/logs ]]; then
		mkdir -p "$KEEP_LOGS" && cp -r "$WORK/logs/." "$KEEP_LOGS/" && log "bench: logs kept in $KEEP_LOGS"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BG_PID=
start_bg() { # start_bg LOGFILE CMD... : start in background; its PID goes to BG_PID and PIDS
	local logf=$1
	shift
	"$@" >"$logf" 2>&1 </dev/null &
	BG_PID=$!
	PIDS+=("$BG_PID")
}

drop_pid() { # drop a PID (already reaped) from PIDS
	local pid=$1 p keep=()
	for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

forget_pid() { # stop a process and drop it from PIDS
	stop_pid "$1"
	drop_pid "$1"
}

# ---------------------------------------------------------------- topology
NS_C='' NS_S=''
topo_up() { # fresh client and server namespaces joined by a veth pair
	local tag=$1
	NS_C=pb-$SUFFIX-$tag-c
	NS_S=pb-$SUFFIX-$tag-s
	ip netns add "$NS_C"
	NSES+=("$NS_C")
	ip netns add "$NS_S"
	NSES+=("$NS_S")
	ip -n "$NS_C" link add eth0 type veth peer name eth0 netns "$NS_S"
	ip -n "$NS_C" addr add $C_ADDR/24 dev eth0
	ip -n "$NS_S" addr add $S_ADDR/24 dev eth0
	local ns
	for ns in "$NS_C" "$NS_S"; do
		ip -n "$ns" link set lo up
		ip -n "$ns" link set eth0 up
	done
}

topo_down() {
	local ns keep=() n
	for ns in "$NS_C" "$NS_S"; do
		if [[ " ${INIT_NSES[*]} " == *" $ns "* ]]; then
			ip netns exec "$ns" "$BIN/pillion-init" --cleanup >"$WORK/init-cleanup-$ns.log" 2>&1 ||
				log "bench: note: pillion-init --cleanup failed in $ns: $(head -n1 "$WORK/init-cleanup-$ns.log")"
		fi
		ip netns del "$ns" 2>/dev/null || true
	done
	for n in "${NSES[@]}"; do [[ $n == "$NS_C" || $n == "$NS_S" ]] || keep+=("$n"); done
	NSES=("${keep[@]}")
	keep=()
	for n in "${INIT_NSES[@]}"; do [[ $n == "$NS_C" || $n == "$NS_S" ]] || keep+=("$n"); done
	INIT_NSES=("${keep[@]}")
}

wait_tcp() { # wait_tcp NS ADDR PORT PID: bounded wait until something accepts there
	local ns=$1 addr=$2 port=$3 pid=$4 i
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		alive "$pid" || return 1
		ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

smoke() { # smoke NS URL: one request must get 200
	local code
	code=$(ip netns exec "$1" curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$2" 2>&1) || true
	[[ $code == 200 ]] || { echo "smoke request to $2 got '$code'"; return 1; }
}

# ---------------------------------------------------------------- files
mkdir -p "$WORK"/{pki,app,logs,pillion}
gcc -O2 -Wall -Wextra -o "$WORK/fixedrate" "$BENCH/fixedrate.c"

gen_pki() {
	local d=$WORK/pki who
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$d/ca.key" -sha256 -days 2 -subj "/O=pillion-bench/CN=pillion-bench test CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$d/ca.crt" 2>/dev/null
	for who in server client; do
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$who.key" 2>/dev/null
		openssl req -new -key "$d/$who.key" -subj "/O=pillion-bench" -out "$d/$who.csr" 2>/dev/null
		# URI SAN = the SPIFFE ID; the DNS SAN lets nginx (which always checks a name when
		# verifying an upstream) and haproxy (verifyhost) check the peer's name.
		cat >"$d/$who.ext" <<-EOF
			basicConstraints=critical,CA:FALSE
			keyUsage=critical,digitalSignature
			extendedKeyUsage=serverAuth,clientAuth
			subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/$who,DNS:$who.bench.svc.cluster.local
		EOF
		openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -sha256 \
			-days 2 -extfile "$d/$who.ext" -out "$d/$who.crt" 2>/dev/null
		cat "$d/$who.crt" "$d/$who.key" >"$d/$who.pem" # haproxy wants cert and key in one file
		chmod 600 "$d/$who.key" "$d/$who.pem"
	done
}
gen_pki

APP_BODY=$(printf 'ok'; head -c $((BODY_BYTES - 2)) /dev/zero | tr '\0' 'x')
cat >"$WORK/app/nginx.conf" <<EOF
worker_processes $APP_WORKERS;
daemon off;
master_process on;
pid $WORK/app/nginx.pid;
error_log $WORK/app/error.log warn;
events { worker_connections 40000; }
http {
	access_log off;
	client_body_temp_path $WORK/app/tmp-body;
	proxy_temp_path $WORK/app/tmp-proxy;
	fastcgi_temp_path $WORK/app/tmp-fastcgi;
	uwsgi_temp_path $WORK/app/tmp-uwsgi;
	scgi_temp_path $WORK/app/tmp-scgi;
	keepalive_requests 100000000;
	keepalive_timeout 300s;
	server {
		listen $APP_PORT;
		location / { default_type text/plain; return 200 "$APP_BODY"; }
	}
}
EOF

cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
		summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
		latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
EOF

# pillion inputs: pods, policy (server STRICT), mesh directories
mkdir -p "$WORK/pillion"/{client,server}
for who in server client; do
	cat >"$WORK/pillion/$who/pod.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $who-0
  namespace: bench
  labels:
    app: $who
  annotations:
    pillion.dev/id: "bench-$who-0"
spec:
  serviceAccountName: $who
  containers:
  - name: app
    image: nginx
    ports:
    - name: http
      containerPort: $APP_PORT
EOF
	mkdir -p "$WORK/pillion/$who/tls"
	cp "$WORK/pki/$who.crt" "$WORK/pillion/$who/tls/tls.crt"
	cp "$WORK/pki/$who.key" "$WORK/pillion/$who/tls/tls.key"
	cp "$WORK/pki/ca.crt" "$WORK/pillion/$who/tls/ca.crt"
	# HAProxy as a captured sidecar runs as the proxy UID too: its own copies of the PEM files.
	mkdir -p "$WORK/pki-sidecar"
	cp "$WORK/pki/$who.pem" "$WORK/pki/ca.crt" "$WORK/pki-sidecar/"
	chown -R $PROXY_UID:$PROXY_UID "$WORK/pki-sidecar"
	chown -R $PROXY_UID:$PROXY_UID "$WORK/pillion/$who/tls"
	chmod 700 "$WORK/pillion/$who/tls"
	chmod 600 "$WORK/pillion/$who/tls/tls.key"
done
cat >"$WORK/pillion/policies.yaml" <<EOF
apiVersion: pillion.dev/v1alpha1
kind: MeshIdentity
metadata:
  name: server
  namespace: bench
spec:
  selector:
    matchLabels:
      app: server
  mtls:
    mode: STRICT
---
apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: bench
spec:
  selector:
    app: server
  ports:
  - name: http
    port: $APP_PORT
    targetPort: http
EOF
# pillion-l7: the same, plus what the HAProxy L7 row is configured to do: a route, a timeout, retries.
cat >"$WORK/pillion/policy-l7.yaml" <<EOF
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: server
  namespace: bench
spec:
  targetRef:
    kind: Service
    name: server
    port: $APP_PORT
  routes:
  - name: all
    match:
      path: {prefix: /}
    timeout: 5s
    retries:
      attempts: 2
      perTryTimeout: 2s
      retryOn: [5xx, connect-failure]
EOF
cp "$WORK/pki/ca.crt" "$WORK/pillion/ca.crt" # world-readable copy for the negative check
cat >"$WORK/pillion/mesh-empty.json" <<EOF
{"apiVersion":"pillion.dev/v1alpha1","kind":"MeshDirectory","namespace":"bench","services":[],"pods":[]}
EOF
cat >"$WORK/pillion/mesh.json" <<EOF
{"apiVersion":"pillion.dev/v1alpha1","kind":"MeshDirectory","namespace":"bench",
 "services":[{"namespace":"bench","name":"server","addresses":["$S_ADDR"],"ports":[$APP_PORT],"identities":["spiffe://cluster.local/ns/bench/sa/server"]}],
 "pods":[{"namespace":"bench","name":"server-0","addresses":["$S_ADDR"],"identity":"spiffe://cluster.local/ns/bench/sa/server"},
         {"namespace":"bench","name":"client-0","addresses":["$C_ADDR"],"identity":"spiffe://cluster.local/ns/bench/sa/client"}]}
EOF

# Is pillion usable at all? (A row still fails on its own if the proxy is not ready.)
PILLION_NA=
if [[ ! -x $BIN/pillion-proxy || ! -x $BIN/pillion-init || ! -x $BIN/pillionctl ]]; then
	PILLION_NA="binaries missing in $BIN"
else
	for who in server client; do
		if ! "$BIN/pillionctl" render --pod "$WORK/pillion/$who/pod.yaml" -f "$WORK/pillion/policies.yaml" \
			>"$WORK/pillion/$who/config.json" 2>"$WORK/logs/render-$who.log" ||
			! "$BIN/pillionctl" render --pod "$WORK/pillion/$who/pod.yaml" -f "$WORK/pillion/policies.yaml" \
				-f "$WORK/pillion/policy-l7.yaml" >"$WORK/pillion/$who/config-l7.json" 2>>"$WORK/logs/render-$who.log"; then
			PILLION_NA="pillionctl render failed: $(head -n1 "$WORK/logs/render-$who.log")"
		fi
	done
	chmod 644 "$WORK"/pillion/*/config.json "$WORK"/pillion/*.json
	cp "$BIN/pillion-proxy" "$WORK/pillion-proxy" # so UID $PROXY_UID can run it wherever the repo lives
	chmod 755 "$WORK/pillion-proxy"
fi

# ---------------------------------------------------------------- RSS sampling
with_children() { # with_children PID...: these PIDs and their direct children (nginx workers)
	local pid
	for pid in "$@"; do
		echo "$pid"
		pgrep -P "$pid" 2>/dev/null || true
	done
}

rss_kb() { # rss_kb PID... [FIELD]: summed VmRSS (or FIELD, e.g. RssAnon) in kB; no forks, so sampling stays cheap
	local total=0 pid k v rest field=VmRSS:
	if [[ ${*: -1} == Rss* ]]; then field=${*: -1}: && set -- "${@:1:$#-1}"; fi
	for pid in "$@"; do
		[[ -r /proc/$pid/status ]] || continue
		while read -r k v rest; do
			[[ $k == "$field" ]] && { total=$((total + v)); break; }
		done </proc/"$pid"/status 2>/dev/null || true
	done
	echo "$total"
}

sampler() { # sampler OUTFILE DEADLINE PID...: peak summed RSS every 0.25 s until DEADLINE
	local out=$1 deadline=$2 max=0 cur
	shift 2
	while ((SECONDS < deadline)) && [[ ! -e $out.stop ]]; do
		cur=$(rss_kb "$@")
		((cur > max)) && max=$cur
		echo "$max" >"$out"
		sleep 0.25
	done
}

# ---------------------------------------------------------------- measuring
# Per row: status and notes; per metric a space-separated list, one value per round.
# shellcheck disable=SC2034 # used through namerefs (push, med, total)
declare -A R_STATUS R_NOTE R_RPS R_P50 R_P99 R_ERR F_RPS F_P50 F_P99 F_ERR RSS_IDLE RSS_LOAD RSS_ANON
ROW_STATE='' # the current round's row: '' (measurable), na or fail
push() { local -n arr=$1; arr[$2]="${arr[$2]:-}$3 "; }
med() { # med ARRAY ROW: median over rounds (empty if none)
	# shellcheck disable=SC2178
	local -n arr=$1
	# shellcheck disable=SC2086
	printf '%s\n' ${arr[$2]:-} | sort -g | awk 'NF{a[++n]=$1} END{if(n) print (n%2 ? a[(n+1)/2] : (a[n/2]+a[n/2+1])/2)}'
}
total() { # total ARRAY ROW: sum over rounds (empty if none)
	# shellcheck disable=SC2178
	local -n arr=$1
	# shellcheck disable=SC2086
	printf '%s\n' ${arr[$2]:-} | awk 'NF{t+=$1; n++} END{if(n) print t}'
}
kv() { local re=" $2=([^ ]*)"; [[ " $1" =~ $re ]] && echo "${BASH_REMATCH[1]}" || echo ""; }

measure() { # measure ROW HOST PORT PROXY_PID...
	local row=$1 host=$2 port=$3 line f c_rps='' c_p50='' c_p99='' c_err='' f_rps='' f_p50='' f_p99='' f_err='' rss_idle='' rss_load=''
	shift 3
	local url=http://$host:$port/
	local procs=() rssf=$WORK/logs/$row.rss spid=
	# shellcheck disable=SC2207
	(($#)) && procs=($(with_children "$@"))
	if (($#)); then
		rss_idle=$(rss_kb "${procs[@]}")
		push RSS_IDLE "$row" "$rss_idle"
		push RSS_ANON "$row" "$(rss_kb "${procs[@]}" RssAnon)"
		echo 0 >"$rssf"
		rm -f "$rssf.stop"
		sampler "$rssf" $((SECONDS + WARMUP + 2 * DURATION + 60)) "${procs[@]}" &
		spid=$!
		PIDS+=("$spid")
	fi
	log "bench: [$row] warm-up ${WARMUP}s, closed loop ${DURATION}s, fixed rate ${DURATION}s"
	if ((WARMUP > 0)); then
		timeout $((WARMUP + 20)) ip netns exec "$NS_C" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$url" \
			>"$WORK/logs/$row.warmup" 2>&1 || true
	fi
	timeout $((DURATION + 30)) ip netns exec "$NS_C" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s \
		--latency -s "$WORK/report.lua" "$url" >"$WORK/logs/$row.wrk" 2>&1 &
	local wpid=$! root nsock
	PIDS+=("$wpid")
	# Half-way through, check that the load really flows through every proxy of the row
	# (each carries at least one socket per wrk connection), not around it.
	sleep "$(awk -v d="$DURATION" 'BEGIN{print d/2}')"
	for root in "$@"; do
		# shellcheck disable=SC2046
		nsock=$(find $(with_children "$root" | sed 's|.*|/proc/&/fd|') -lname 'socket:*' 2>/dev/null | wc -l)
		echo "proxy $root: $nsock sockets half-way" >>"$WORK/logs/$row.sockets"
		((nsock >= CONNS)) || R_NOTE[$row]+="proxy PID $root held only $nsock sockets under load: traffic bypassed it?; "
	done
	wait "$wpid" || true
	drop_pid "$wpid"
	line=$(grep '^BENCH ' "$WORK/logs/$row.wrk" || true)
	if [[ -n $line ]]; then
		c_rps=$(awk -v n="$(kv "$line" requests)" -v us="$(kv "$line" duration_us)" 'BEGIN{printf "%.0f", n/(us/1e6)}')
		c_p50=$(kv "$line" p50_us)
		c_p99=$(kv "$line" p99_us)
		c_err=$(($(kv "$line" connect) + $(kv "$line" read) + $(kv "$line" write) + $(kv "$line" status) + $(kv "$line" timeout)))
		push R_RPS "$row" "$c_rps"
		push R_P50 "$row" "$c_p50"
		push R_P99 "$row" "$c_p99"
		push R_ERR "$row" "$c_err"
	else
		R_NOTE[$row]+="wrk failed: $(tail -n1 "$WORK/logs/$row.wrk"); "
	fi
	timeout $((DURATION + 40)) ip netns exec "$NS_C" "$WORK/fixedrate" -a "$host" -p "$port" -H server \
		-r "$RATE" -d "$DURATION" -c "$RATE_CONNS" -t 5 >"$WORK/logs/$row.fixed" 2>&1 || true
	line=$(grep '^BENCH ' "$WORK/logs/$row.fixed" || true)
	if [[ -n $line ]]; then
		f_rps=$(kv "$line" achieved_rps)
		f_p50=$(kv "$line" p50_us)
		f_p99=$(kv "$line" p99_us)
		f_err=$(($(kv "$line" non2xx) + $(kv "$line" sockerr) + $(kv "$line" connerr) + $(kv "$line" warmfail) + $(kv "$line" incomplete)))
		push F_RPS "$row" "$f_rps"
		push F_P50 "$row" "$f_p50"
		push F_P99 "$row" "$f_p99"
		push F_ERR "$row" "$f_err"
	else
		R_NOTE[$row]+="fixed-rate client failed: $(tail -n1 "$WORK/logs/$row.fixed"); "
	fi
	if [[ -n $spid ]]; then
		touch "$rssf.stop"
		forget_pid "$spid"
		rss_load=$(cat "$rssf")
		push RSS_LOAD "$row" "$rss_load"
	fi
	for f in "$@"; do alive "$f" || R_NOTE[$row]+="a proxy process ($f) died during the run; "; done
	R_STATUS[$row]=ok
	log "bench: [$row] closed ${c_rps:-?} req/s p50 ${c_p50:-?}us p99 ${c_p99:-?}us errors ${c_err:-?};" \
		"fixed ${f_rps:-?} req/s p50 ${f_p50:-?}us p99 ${f_p99:-?}us errors ${f_err:-?};" \
		"proxy RSS ${rss_idle:--} -> ${rss_load:--} kB"
}

# IDLE_CONNS keep-alive connections, each after one request, held idle: the proxies' RSS before and
# with them, and the difference per connection.
declare -A IDLE_RES
measure_idle() { # measure_idle ROW HOST PORT PROXY_PID...
	local row=$1 host=$2 port=$3 before after held pid i line
	shift 3
	local procs=()
	# shellcheck disable=SC2207
	procs=($(with_children "$@"))
	rm -f "$WORK/idle-ready" "$WORK/idle-stop"
	before=$(rss_kb "${procs[@]}")
	log "bench: [$row] opening $IDLE_CONNS idle keep-alive connections"
	start_bg "$WORK/logs/$row.idle" ip netns exec "$NS_C" /usr/bin/python3 "$BENCH/idle.py" "$host" "$port" \
		"$IDLE_CONNS" "$WORK/idle-ready" "$WORK/idle-stop" 300
	pid=$BG_PID
	for ((i = 0; i < 2400; i++)); do
		[[ -e $WORK/idle-ready ]] && break
		alive "$pid" || break
		sleep 0.1
	done
	line=$(cat "$WORK/idle-ready" 2>/dev/null || echo "none")
	sleep 1
	after=$(rss_kb "${procs[@]}")
	# shellcheck disable=SC2046
	held=$(find $(with_children "$1" | sed 's|.*|/proc/&/fd|') -lname 'socket:*' 2>/dev/null | wc -l)
	touch "$WORK/idle-stop"
	forget_pid "$pid"
	IDLE_RES[$row]="$before $after $(kv " $line" open) $(kv " $line" failed) $held"
	log "bench: [$row] idle: $line; client proxy holds $held sockets; RSS $before -> $after kB"
}

fail_row() { # fail_row ROW REASON [LOGFILE...]
	local row=$1 f
	ROW_STATE=fail
	[[ ${R_STATUS[$row]:-} == ok ]] || R_STATUS[$row]=fail
	[[ ${R_NOTE[$row]:-} == *"$2"* ]] || R_NOTE[$row]+="$2; "
	log "bench: [$row] FAILED: $2"
	shift 2
	for f in "$@"; do [[ -s $f ]] && { log "--- $f (last lines)"; tail -n 5 "$f" >&2; }; done
	return 0
}

start_app() { # app nginx in the server namespace; PID in BG_PID
	start_bg "$WORK/logs/app.log" ip netns exec "$NS_S" nginx -p "$WORK/app" -c "$WORK/app/nginx.conf" -e "$WORK/app/error.log"
	wait_tcp "$NS_S" 127.0.0.1 $APP_PORT "$BG_PID" || { log "bench: app nginx did not start"; tail -n 5 "$WORK/app/error.log" "$WORK/logs/app.log" >&2; return 1; }
}

# --- haproxy
haproxy_cfg() { # haproxy_cfg FILE BIND_LINE SERVER_LINE
	cat >"$1" <<EOF
global
	nbthread $PROXY_WORKERS
	maxconn 4096
	ssl-server-verify required
defaults
	mode tcp
	timeout connect 5s
	timeout client 120s
	timeout server 120s
frontend in
	$2
	default_backend out
backend out
	$3
EOF
}

# The HTTP equivalent of a pillion sidecar pair with one route, a 5 s timeout and 2 retries on
# 5xx or connect failure: HAProxy parses HTTP on both hops and reuses its server connections.
haproxy_l7_cfg() { # haproxy_l7_cfg FILE BIND_LINE SERVER_LINE
	cat >"$1" <<EOF
global
	nbthread $PROXY_WORKERS
	maxconn 30000
	# The descriptor limit may be below 2 x maxconn (a container's hard limit): run with it,
	# as pillion-proxy does; client connections need one descriptor each, server ones are reused.
	no strict-limits
	ssl-server-verify required
defaults
	mode http
	timeout connect 5s
	timeout client 300s
	timeout server 2s
	timeout http-keep-alive 300s
	timeout http-request 30s
	retries 2
	retry-on conn-failure 500 501 502 503 504
	http-reuse always
frontend in
	$2
	acl route_all path_beg /
	use_backend out if route_all
backend out
	$3
EOF
}

start_haproxy() { # start_haproxy NS CFG NAME [sidecar]: PID in BG_PID
	local ns=$1 cfg=$2 name=$3
	haproxy -c -q -f "$cfg" >"$WORK/logs/$name.check" 2>&1 || { cat "$WORK/logs/$name.check" >&2; return 1; }
	if [[ ${4:-} == sidecar ]]; then
		chmod 644 "$cfg"
		start_bg "$WORK/logs/$name.log" ip netns exec "$ns" \
			setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups haproxy -db -f "$cfg"
	else
		start_bg "$WORK/logs/$name.log" ip netns exec "$ns" haproxy -db -f "$cfg"
	fi
}

# HAProxy as a sidecar would run: behind the same pillion-init capture rules, as the proxy UID,
# listening on the ports the rules redirect to. The client dials the app, as in the pillion rows.
capture() { # capture NS NAME
	ip netns exec "$1" "$BIN/pillion-init" >"$WORK/logs/init-$2.log" 2>&1 || return 1
	INIT_NSES+=("$1")
}

# --- nginx stream
nginx_cfg() { # nginx_cfg DIR SERVER_BLOCK_BODY
	mkdir -p "$1"
	cat >"$1/nginx.conf" <<EOF
load_module $STREAM_MODULE;
worker_processes $PROXY_WORKERS;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; }
stream {
	server {
$2
	}
}
EOF
}

start_nginx() { # start_nginx NS DIR NAME: PID in BG_PID
	local ns=$1 dir=$2 name=$3
	ip netns exec "$ns" nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$WORK/logs/$name.check" 2>&1 ||
		{ cat "$WORK/logs/$name.check" >&2; return 1; }
	start_bg "$WORK/logs/$name.log" ip netns exec "$ns" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
}

# --- pillion
start_pillion() { # start_pillion NS WHO MESHFILE [CONFIG]: runs pillion-init, then the proxy; PID in BG_PID
	local ns=$1 who=$2 mesh=$3 cfg=${4:-$WORK/pillion/$2/config.json} pid i
	if ! ip netns exec "$ns" "$BIN/pillion-init" >"$WORK/logs/init-$who.log" 2>&1; then
		echo "pillion-init exited $?: $(head -n1 "$WORK/logs/init-$who.log")" >"$WORK/logs/pillion-why"
		return 1
	fi
	INIT_NSES+=("$ns")
	start_bg "$WORK/logs/pillion-$who.log" ip netns exec "$ns" \
		setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
		"$WORK/pillion-proxy" --config "$cfg" --mesh "$mesh" \
		--tls-dir "$WORK/pillion/$who/tls" --outbound-port 15401 --inbound-port 15406 \
		--admin-port 15420 --admin-address 127.0.0.1 --log-level warn ${PILLION_FLAGS:-}
	pid=$BG_PID
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		if ! alive "$pid"; then
			local st=0
			wait "$pid" 2>/dev/null || st=$?
			echo "pillion-proxy exited $st: $(head -n1 "$WORK/logs/pillion-$who.log")" >"$WORK/logs/pillion-why"
			return 1
		fi
		if [[ $(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
			http://127.0.0.1:15420/ready 2>/dev/null) == 200 ]]; then
			return 0
		fi
		sleep 0.1
	done
	echo "pillion-proxy not ready after ${READY_TIMEOUT}s: $(head -n1 "$WORK/logs/pillion-$who.log")" >"$WORK/logs/pillion-why"
	return 1
}

# The mTLS rows must refuse a peer without a client certificate (and pillion, with the
# server STRICT, also plaintext from outside the mesh); otherwise the row is flagged.
negative_checks() {
	local row=$1 code port
	case $row in
	haproxy-2-cap | haproxy-l7-cap)
		# as the proxy's UID (not captured on the client side), straight to the server's capture
		code=$(ip netns exec "$NS_C" setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
			curl -sk -o /dev/null -w '%{http_code}' --max-time 5 "https://$S_ADDR:$APP_PORT/" 2>/dev/null || true)
		[[ $code != 200 ]] || R_NOTE[$row]+="server side accepted TLS without a client certificate; "
		;;
	haproxy-2 | nginx-2)
		[[ $row == haproxy-2 ]] && port=15443 || port=15444
		code=$(ip netns exec "$NS_C" curl -sk -o /dev/null -w '%{http_code}' --max-time 5 \
			"https://$S_ADDR:$port/" 2>/dev/null || true)
		[[ $code != 200 ]] || R_NOTE[$row]+="server side accepted TLS without a client certificate; "
		;;
	pillion-mtls | pillion-l7)
		# as the proxy's UID, which the client namespace's rules leave alone
		code=$(ip netns exec "$NS_C" setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
			curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$S_ADDR:$APP_PORT/" 2>/dev/null || true)
		[[ $code != 200 ]] || R_NOTE[$row]+="server proxy (STRICT) accepted plaintext from outside the mesh; "
		# a mesh-looking ClientHello (ALPN pillion/1) but no client certificate
		code=$(printf 'GET / HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n' |
			timeout 5 ip netns exec "$NS_C" setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups \
				openssl s_client -quiet -connect "$S_ADDR:$APP_PORT" -alpn pillion/1 -tls1_3 \
				-CAfile "$WORK/pillion/ca.crt" 2>/dev/null | head -c 12 || true)
		[[ $code != "HTTP/1.1 200" ]] || R_NOTE[$row]+="server proxy accepted TLS without a client certificate; "
		;;
	esac
	return 0
}

# Keep each pillion proxy's /metrics (KEEP_LOGS) and check the server side counted
# inbound mTLS connections (flagged only if the counter is there and zero).
pillion_metrics() { # pillion_metrics ROW CLIENT_PID SERVER_PID
	local row=$1 server=$3 m n # $2: the client proxy (its metrics are kept too)
	ip netns exec "$NS_C" curl -s --max-time 2 http://127.0.0.1:15420/metrics >"$WORK/logs/$row.client.metrics" 2>/dev/null || true
	if [[ -n $server ]]; then
		m=$WORK/logs/$row.server.metrics
		ip netns exec "$NS_S" curl -s --max-time 2 http://127.0.0.1:15420/metrics >"$m" 2>/dev/null || true
		n=$(awk '/^pillion_proxy_connections_total\{/ && /direction="inbound"/ && /transport="mtls"/ {t+=$NF; f=1} END{if(f) print t+0}' "$m")
		[[ $n != 0 ]] || R_NOTE[$row]+="server proxy counted no inbound mTLS connections; "
	fi
	return 0
}

# ---------------------------------------------------------------- rows
run_row() {
	local row=$1 p1='' p2='' host port d
	ROW_STATE=''
	topo_up "${row//[^a-z0-9]/}"
	if ! start_app; then
		fail_row "$row" "app server did not start"
		forget_pid "$BG_PID"
		topo_down
		return 0
	fi
	case $row in
	direct)
		host=$S_ADDR port=$APP_PORT
		;;
	pillion-pass | pillion-mtls | pillion-l7)
		host=$S_ADDR port=$APP_PORT # the client targets the app; the redirect rules do the rest
		rm -f "$WORK/logs/pillion-why"
		local why=$PILLION_NA
		if [[ -n $why ]]; then
			ROW_STATE=na
		elif [[ $row == pillion-pass ]]; then
			BG_PID=
			start_pillion "$NS_C" client "$WORK/pillion/mesh-empty.json" || ROW_STATE=na
			p1=$BG_PID
		else
			local sfx=''
			[[ $row == pillion-l7 ]] && sfx=-l7
			BG_PID=
			start_pillion "$NS_S" server "$WORK/pillion/mesh.json" "$WORK/pillion/server/config$sfx.json" || ROW_STATE=na
			p2=$BG_PID
			if [[ $ROW_STATE != na ]]; then
				BG_PID=
				start_pillion "$NS_C" client "$WORK/pillion/mesh.json" "$WORK/pillion/client/config$sfx.json" || ROW_STATE=na
				p1=$BG_PID
			fi
		fi
		if [[ $ROW_STATE == na ]]; then
			[[ -n $why ]] || why=$(cat "$WORK/logs/pillion-why" 2>/dev/null || echo "unknown")
			[[ ${R_STATUS[$row]:-} == ok ]] || R_STATUS[$row]=na
			[[ ${R_NOTE[$row]:-} == *"$why"* ]] || R_NOTE[$row]+="$why; "
			log "pillion: not available ($why)"
		fi
		;;
	haproxy-1)
		haproxy_cfg "$WORK/haproxy-1.cfg" "bind 127.0.0.1:15001" "server app $S_ADDR:$APP_PORT"
		host=127.0.0.1 port=15001
		{ start_haproxy "$NS_C" "$WORK/haproxy-1.cfg" haproxy-1 && p1=$BG_PID && wait_tcp "$NS_C" $host $port "$p1"; } ||
			fail_row "$row" "haproxy did not start" "$WORK/logs/haproxy-1.log"
		;;
	haproxy-2)
		d=$WORK/pki
		haproxy_cfg "$WORK/haproxy-2s.cfg" \
			"bind $S_ADDR:15443 ssl crt $d/server.pem ca-file $d/ca.crt verify required ssl-min-ver TLSv1.3 alpn pillion/1" \
			"server app 127.0.0.1:$APP_PORT"
		haproxy_cfg "$WORK/haproxy-2c.cfg" "bind 127.0.0.1:15002" \
			"server s $S_ADDR:15443 ssl crt $d/client.pem ca-file $d/ca.crt verify required verifyhost server.bench.svc.cluster.local ssl-min-ver TLSv1.3 alpn pillion/1"
		host=127.0.0.1 port=15002
		{ start_haproxy "$NS_S" "$WORK/haproxy-2s.cfg" haproxy-2s && p2=$BG_PID && wait_tcp "$NS_S" $S_ADDR 15443 "$p2" &&
			start_haproxy "$NS_C" "$WORK/haproxy-2c.cfg" haproxy-2c && p1=$BG_PID && wait_tcp "$NS_C" $host $port "$p1"; } ||
			fail_row "$row" "haproxy did not start" "$WORK/logs/haproxy-2s.log" "$WORK/logs/haproxy-2c.log"
		;;
	haproxy-1-cap)
		haproxy_cfg "$WORK/haproxy-1c.cfg" "bind 127.0.0.1:15401" "server app $S_ADDR:$APP_PORT"
		host=$S_ADDR port=$APP_PORT
		{ capture "$NS_C" haproxy-1c && start_haproxy "$NS_C" "$WORK/haproxy-1c.cfg" haproxy-1c sidecar && p1=$BG_PID &&
			wait_tcp "$NS_C" 127.0.0.1 15401 "$p1"; } ||
			fail_row "$row" "captured haproxy did not start" "$WORK/logs/haproxy-1c.log" "$WORK/logs/init-haproxy-1c.log"
		;;
	haproxy-2-cap)
		d=$WORK/pki-sidecar
		haproxy_cfg "$WORK/haproxy-2cs.cfg" \
			"bind :15406 ssl crt $d/server.pem ca-file $d/ca.crt verify required ssl-min-ver TLSv1.3 alpn pillion/1" \
			"server app 127.0.0.1:$APP_PORT"
		haproxy_cfg "$WORK/haproxy-2cc.cfg" "bind 127.0.0.1:15401" \
			"server s $S_ADDR:$APP_PORT ssl crt $d/client.pem ca-file $d/ca.crt verify required verifyhost server.bench.svc.cluster.local ssl-min-ver TLSv1.3 alpn pillion/1"
		host=$S_ADDR port=$APP_PORT
		{ capture "$NS_S" haproxy-2cs && start_haproxy "$NS_S" "$WORK/haproxy-2cs.cfg" haproxy-2cs sidecar && p2=$BG_PID &&
			wait_tcp "$NS_S" 127.0.0.1 15406 "$p2" &&
			capture "$NS_C" haproxy-2cc && start_haproxy "$NS_C" "$WORK/haproxy-2cc.cfg" haproxy-2cc sidecar && p1=$BG_PID &&
			wait_tcp "$NS_C" 127.0.0.1 15401 "$p1"; } ||
			fail_row "$row" "captured haproxy did not start" "$WORK/logs/haproxy-2cs.log" "$WORK/logs/haproxy-2cc.log"
		;;
	haproxy-l7-cap)
		d=$WORK/pki-sidecar
		haproxy_l7_cfg "$WORK/haproxy-l7s.cfg" \
			"bind :15406 ssl crt $d/server.pem ca-file $d/ca.crt verify required ssl-min-ver TLSv1.3 alpn pillion/1" \
			"server app 127.0.0.1:$APP_PORT"
		haproxy_l7_cfg "$WORK/haproxy-l7c.cfg" "bind 127.0.0.1:15401" \
			"server s $S_ADDR:$APP_PORT ssl crt $d/client.pem ca-file $d/ca.crt verify required verifyhost server.bench.svc.cluster.local ssl-min-ver TLSv1.3 alpn pillion/1"
		host=$S_ADDR port=$APP_PORT
		{ capture "$NS_S" haproxy-l7s && start_haproxy "$NS_S" "$WORK/haproxy-l7s.cfg" haproxy-l7s sidecar && p2=$BG_PID &&
			wait_tcp "$NS_S" 127.0.0.1 15406 "$p2" &&
			capture "$NS_C" haproxy-l7c && start_haproxy "$NS_C" "$WORK/haproxy-l7c.cfg" haproxy-l7c sidecar && p1=$BG_PID &&
			wait_tcp "$NS_C" 127.0.0.1 15401 "$p1"; } ||
			fail_row "$row" "captured haproxy did not start" "$WORK/logs/haproxy-l7s.log" "$WORK/logs/haproxy-l7c.log"
		;;
	nginx-1)
		nginx_cfg "$WORK/nginx-1" "		listen 127.0.0.1:15011;
		proxy_pass $S_ADDR:$APP_PORT;"
		host=127.0.0.1 port=15011
		{ start_nginx "$NS_C" "$WORK/nginx-1" nginx-1 && p1=$BG_PID && wait_tcp "$NS_C" $host $port "$p1"; } ||
			fail_row "$row" "nginx did not start" "$WORK/nginx-1/error.log"
		;;
	nginx-2)
		d=$WORK/pki
		nginx_cfg "$WORK/nginx-2s" "		listen $S_ADDR:15444 ssl;
		ssl_protocols TLSv1.3;
		ssl_certificate $d/server.crt;
		ssl_certificate_key $d/server.key;
		ssl_client_certificate $d/ca.crt;
		ssl_verify_client on;
		ssl_alpn pillion/1;
		proxy_pass 127.0.0.1:$APP_PORT;"
		nginx_cfg "$WORK/nginx-2c" "		listen 127.0.0.1:15012;
		proxy_pass $S_ADDR:15444;
		proxy_ssl on;
		proxy_ssl_protocols TLSv1.3;
		proxy_ssl_certificate $d/client.crt;
		proxy_ssl_certificate_key $d/client.key;
		proxy_ssl_trusted_certificate $d/ca.crt;
		proxy_ssl_verify on;
		proxy_ssl_name server.bench.svc.cluster.local;"
		host=127.0.0.1 port=15012
		{ start_nginx "$NS_S" "$WORK/nginx-2s" nginx-2s && p2=$BG_PID && wait_tcp "$NS_S" $S_ADDR 15444 "$p2" &&
			start_nginx "$NS_C" "$WORK/nginx-2c" nginx-2c && p1=$BG_PID && wait_tcp "$NS_C" $host $port "$p1"; } ||
			fail_row "$row" "nginx did not start" "$WORK/nginx-2s/error.log" "$WORK/nginx-2c/error.log"
		;;
	esac
	if [[ -z $ROW_STATE ]]; then
		local why
		if why=$(smoke "$NS_C" "http://$host:$port/"); then
			if [[ -n ${IDLE_MODE:-} ]]; then
				# shellcheck disable=SC2086
				measure_idle "$row" "$host" "$port" $p1 $p2
			else
				negative_checks "$row"
				# shellcheck disable=SC2086
				measure "$row" "$host" "$port" $p1 $p2
				[[ $row == pillion-* ]] && pillion_metrics "$row" "$p1" "$p2"
			fi
		else
			fail_row "$row" "$why" "$WORK/logs/pillion-client.log" "$WORK/logs/pillion-server.log" \
				"$WORK/nginx-2c/error.log" "$WORK/nginx-2s/error.log"
		fi
	fi
	# stop everything this row started (proxies first, then the app), then its namespaces
	for d in $p1 $p2; do forget_pid "$d"; done
	for d in "${PIDS[@]}"; do stop_pid "$d"; done
	PIDS=()
	topo_down
}

# ---------------------------------------------------------------- run
CPU_MODEL=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
HAPROXY_V=$({ haproxy -v 2>&1 || true; } | sed -n '1s/ - https.*//p')
NGINX_V=$({ nginx -v 2>&1 || true; } | sed 's/^nginx version: //')
WRK_V=$({ wrk -v 2>&1 || true; } | sed -n '1s/ Copyright.*//p')
OPENSSL_V=$(openssl version)
KERNEL=$(uname -r)
PILLION_V=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
log "bench: machine: $(nproc) CPUs, $CPU_MODEL, kernel $KERNEL, load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "bench: $HAPROXY_V; nginx $NGINX_V; $WRK_V; $OPENSSL_V; pillion $PILLION_V"
log "bench: rows: $ROWS"

for ((round = 1; round <= ROUNDS; round++)); do
	((ROUNDS == 1)) || log "bench: round $round of $ROUNDS"
	for row in $ROWS; do run_row "$row"; done
done
IDLE_ROWS=''
if ((IDLE_CONNS > 0)); then
	IDLE_MODE=1
	for row in pillion-l7 haproxy-l7-cap; do
		[[ " $ROWS " == *" $row "* ]] || continue
		IDLE_ROWS+="$row "
		run_row "$row"
	done
	IDLE_MODE=
fi

# ---------------------------------------------------------------- report
num() { [[ -n ${1:-} ]] && awk -v x="$1" -v p="$2" 'BEGIN{printf "%.*f", p, x}' || printf '?'; }
ms() { [[ -n ${1:-} ]] && awk -v us="$1" 'BEGIN{printf "%.2f", us/1000}' || printf '?'; }
mib() { [[ -n ${1:-} ]] && awk -v kb="$1" 'BEGIN{printf "%.1f", kb/1024}' || printf '—'; }
added() { # added US DIRECT_US
	if [[ -n ${1:-} && -n ${2:-} ]]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%+.2f", (a-b)/1000}'; else printf '—'; fi
}
label() {
	case $1 in
	direct) echo "direct (client → app)" ;;
	pillion-pass) echo "pillion, 1 hop plaintext (outbound passthrough)" ;;
	haproxy-1) echo "HAProxy, 1 hop plaintext (mode tcp)" ;;
	nginx-1) echo "nginx stream, 1 hop plaintext" ;;
	pillion-mtls) echo "pillion, 2 hops TLS 1.3 mTLS" ;;
	haproxy-2) echo "HAProxy, 2 hops TLS 1.3 mTLS" ;;
	haproxy-1-cap) echo "HAProxy as a sidecar (same capture rules), 1 hop plaintext" ;;
	haproxy-2-cap) echo "HAProxy as a sidecar (same capture rules), 2 hops mTLS" ;;
	nginx-2) echo "nginx stream, 2 hops TLS 1.3 mTLS" ;;
	pillion-l7) echo "pillion, 2 hops mTLS, HTTP policy: route, timeout, retries" ;;
	haproxy-l7-cap) echo "HAProxy as a sidecar, 2 hops mTLS, mode http: route, timeout, retries" ;;
	esac
}

D=direct
report() {
	local rounds_txt=''
	((ROUNDS == 1)) || rounds_txt=" Each row ran $ROUNDS times (interleaved); the table shows medians, errors summed."
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/run.sh\` on $(nproc) CPUs ($CPU_MODEL), kernel $KERNEL;"
	echo "$HAPROXY_V, nginx $NGINX_V, $WRK_V, $OPENSSL_V, pillion $PILLION_V."
	echo "Load generator, proxies and app share the same $(nproc) CPUs (nothing pinned).$rounds_txt"
	echo "Closed loop: \`wrk -t$THREADS -c$CONNS -d${DURATION}s\` after ${WARMUP}s warm-up."
	echo "Fixed rate: \`bench/fixedrate.c\`, open loop, $RATE req/s for ${DURATION}s over $RATE_CONNS keep-alive connections, latency from each request's scheduled send time."
	echo "App: nginx ($APP_WORKERS worker) returning $BODY_BYTES bytes; HAProxy nbthread $PROXY_WORKERS, nginx stream worker_processes $PROXY_WORKERS."
	echo "Added latency: difference to the direct row's percentile. RSS: summed VmRSS of the row's proxy processes (nginx: master + worker), idle before load / peak during it; anon: the private (RssAnon) part when idle, i.e. without shared library pages."
	echo
	echo "| setup | closed req/s | vs direct | closed p50 / p99 ms | added p50 / p99 ms | fixed-rate req/s | fixed p50 / p99 ms | added p50 / p99 ms | errors closed / fixed | proxy RSS idle / load MiB | anon RSS idle MiB |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	local row note d_rps d_cp50 d_cp99 d_fp50 d_fp99
	d_rps=$(med R_RPS "$D") d_cp50=$(med R_P50 "$D") d_cp99=$(med R_P99 "$D")
	d_fp50=$(med F_P50 "$D") d_fp99=$(med F_P99 "$D")
	for row in $ROWS; do
		case ${R_STATUS[$row]:-} in
		na)
			echo "| $(label "$row") | pillion: not available (${R_NOTE[$row]%; }) | | | | | | | | | |"
			continue
			;;
		fail | '')
			echo "| $(label "$row") | failed (${R_NOTE[$row]:-no result}) | | | | | | | | | |"
			continue
			;;
		esac
		local rps cp50 cp99 fps fp50 fp99 ratio='—' a_c50='—' a_c99='—' a_f50='—' a_f99='—' rss='—' anon='—'
		rps=$(med R_RPS "$row") cp50=$(med R_P50 "$row") cp99=$(med R_P99 "$row")
		fps=$(med F_RPS "$row") fp50=$(med F_P50 "$row") fp99=$(med F_P99 "$row")
		if [[ $row == "$D" ]]; then
			ratio='1.00×'
		else
			[[ -n $rps && -n $d_rps ]] && ratio=$(awk -v a="$rps" -v b="$d_rps" 'BEGIN{printf "%.2f×", a/b}')
			a_c50=$(added "$cp50" "$d_cp50") a_c99=$(added "$cp99" "$d_cp99")
			a_f50=$(added "$fp50" "$d_fp50") a_f99=$(added "$fp99" "$d_fp99")
			rss="$(mib "$(med RSS_IDLE "$row")") / $(mib "$(med RSS_LOAD "$row")")"
			anon=$(mib "$(med RSS_ANON "$row")")
		fi
		note=''
		[[ -n ${R_NOTE[$row]:-} ]] && note=" (**${R_NOTE[$row]%; }**)"
		printf '| %s%s | %s | %s | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s / %s | %s | %s |\n' \
			"$(label "$row")" "$note" "$(num "$rps" 0)" "$ratio" \
			"$(ms "$cp50")" "$(ms "$cp99")" "$a_c50" "$a_c99" \
			"$(num "$fps" 0)" "$(ms "$fp50")" "$(ms "$fp99")" "$a_f50" "$a_f99" \
			"$(total R_ERR "$row")" "$(total F_ERR "$row")" "$rss" "$anon"
	done
}

idle_report() {
	[[ -n $IDLE_ROWS ]] || return 0
	echo
	echo "Idle keep-alive connections: $IDLE_CONNS client connections, each after one request, held open; RSS summed over both proxies of the row (client and server side), before and with them."
	echo
	echo "| setup | connections open / failed | client proxy sockets | proxy RSS before / with them MiB | RSS per idle connection |"
	echo "| --- | ---: | ---: | ---: | ---: |"
	local row b a o f h
	for row in $IDLE_ROWS; do
		read -r b a o f h <<<"${IDLE_RES[$row]:-}"
		if [[ -z ${a:-} || -z ${o:-} || ${o:-0} == 0 ]]; then
			echo "| $(label "$row") | failed (${R_NOTE[$row]:-no result}) | | | |"
			continue
		fi
		printf '| %s | %s / %s | %s | %s / %s | %s bytes |\n' "$(label "$row")" "$o" "$f" "$h" "$(mib "$b")" "$(mib "$a")" \
			"$(awk -v a="$a" -v b="$b" -v n="$o" 'BEGIN{printf "%.0f", (a-b)*1024/n}')"
	done
}

mkdir -p "$(dirname "$OUT")"
{ report; idle_report; } >"$WORK/report.md"
cp "$WORK/report.md" "$OUT"
echo
cat "$WORK/report.md"
log ""
log "bench: written to $OUT"
