# Shared helpers for the data-plane end-to-end tests: certificates, kubelet-style projected
# volumes, network namespaces and checks. Sourced by bash scripts with `set -u`.

E2E_FAILS=0
E2E_CHECKS=0
E2E_PIDS=()
E2E_NETNS=()

ok()   { E2E_CHECKS=$((E2E_CHECKS + 1)); echo "ok   $*"; }
fail() { E2E_CHECKS=$((E2E_CHECKS + 1)); E2E_FAILS=$((E2E_FAILS + 1)); echo "FAIL $*"; }
# check NAME COMMAND...: passes when the command succeeds.
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
die()  { echo "FATAL: $*" >&2; exit 1; }

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "$t is not installed (make deps installs it)"
	done
}

# bg NS UID CMD...: starts CMD in netns NS as UID (root: 0) in the background; the PID is recorded.
bg() {
	local ns=$1 uid=$2; shift 2
	if [ "$uid" = 0 ]; then
		ip netns exec "$ns" "$@" &
	else
		ip netns exec "$ns" setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@" &
	fi
	E2E_PIDS+=($!)
	LAST_PID=$!
}

# in_ns NS UID CMD...: runs CMD in the foreground the same way.
in_ns() {
	local ns=$1 uid=$2; shift 2
	if [ "$uid" = 0 ]; then
		ip netns exec "$ns" "$@"
	else
		ip netns exec "$ns" setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
	fi
}

stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

e2e_cleanup() {
	local pid ns
	for pid in "${E2E_PIDS[@]}"; do stop_pid "$pid"; done
	for ns in "${E2E_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	[ -n "${E2E_TMP:-}" ] && rm -rf "$E2E_TMP"
	return 0
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds; bounded.
wait_for() {
	local secs=$1 i; shift
	for i in $(seq 1 $((secs * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

. "$(dirname "${BASH_SOURCE[0]}")/certs.sh"   # mk_ca, mk_leaf

# e2e_pods PREFIX SFX NET4 NET6 POD...: a switch namespace PREFIX-sw-SFX with a bridge, and a pod
# namespace PREFIX-<pod>-SFX on it per POD, the n-th with NET4.n/24 and NET6::n/64 on eth0.
e2e_pods() {
	local prefix=$1 sfx=$2 net4=$3 net6=$4 sw=$1-sw-$2 n=0 pod ns
	shift 4
	ip netns add "$sw" && E2E_NETNS+=("$sw") || die "ip netns add $sw failed"
	ip -n "$sw" link add br0 type bridge
	ip -n "$sw" link set br0 up
	ip -n "$sw" link set lo up
	for pod in "$@"; do
		n=$((n + 1))
		ns=$prefix-$pod-$sfx
		ip netns add "$ns" && E2E_NETNS+=("$ns") || die "ip netns add $ns failed"
		ip link add "v$prefix$pod$sfx" type veth peer name "p$prefix$pod$sfx"
		ip link set "v$prefix$pod$sfx" netns "$ns"
		ip link set "p$prefix$pod$sfx" netns "$sw"
		ip -n "$ns" link set "v$prefix$pod$sfx" name eth0
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add "$net4.$n/24" dev eth0
		ip -n "$ns" addr add "$net6::$n/64" dev eth0 nodad
		ip -n "$ns" link set eth0 up
		ip -n "$sw" link set "p$prefix$pod$sfx" master br0
		ip -n "$sw" link set "p$prefix$pod$sfx" up
	done
}

# --- kubelet-style projected volume: DIR/..data -> ..<ts>, DIR/<key> -> ..data/<key> ---

PROJ_SEQ=0
# project DIR KEY=FILE...: writes a new version and swaps it in atomically, as the kubelet does
# (a key absent from the new version disappears).
project() {
	local dir=$1; shift
	PROJ_SEQ=$((PROJ_SEQ + 1))
	local ver="..v$PROJ_SEQ.$$" kv key
	mkdir -p "$dir/$ver"
	for kv in "$@"; do
		key=${kv%%=*}
		cp "${kv#*=}" "$dir/$ver/$key"
		[ -e "$dir/$key" ] || ln -s "..data/$key" "$dir/$key"
	done
	local old=""
	[ -L "$dir/..data" ] && old=$(readlink "$dir/..data")
	ln -s "$ver" "$dir/..data_tmp"
	mv -T "$dir/..data_tmp" "$dir/..data"
	# Keys the new version no longer has lose their link, as with the kubelet.
	local l
	for l in "$dir"/*; do
		[ -L "$l" ] && [ ! -e "$dir/$ver/${l##*/}" ] && rm -f "$l"
	done
	[ -n "$old" ] && rm -rf "${dir:?}/$old"
	return 0
}

# metric NS NAME{labels}: prints a metric of the proxy in netns NS (0 when absent).
metric() {
	local v
	v=$(ip netns exec "$1" curl -s --max-time 30 "http://127.0.0.1:15420/metrics" |
		awk -v k="$2" 'index($0, k" ") == 1 { print $2 }')
	echo "${v:-0}"
}

# metric_ge NS NAME{labels} MIN: succeeds when the metric is at least MIN (for wait_for).
metric_ge() { [ "$(metric "$1" "$2")" -ge "$3" ]; }
# none_open NS DIRECTION: succeeds when the proxy in NS answers its metrics and counts no
# connection of that direction open, under each transport (for wait_for).
none_open() {
	local m
	m=$(ip netns exec "$1" curl -sf --max-time 30 "http://127.0.0.1:15420/metrics") || return 1
	echo "$m" | grep -q '^pillion_proxy_connections_open{' || return 1
	echo "$m" | awk -v d="direction=\"$2\"" '
		index($0, "pillion_proxy_connections_open{") == 1 && index($0, d) && $2 != 0 { bad = 1 }
		END { exit bad }'
}
