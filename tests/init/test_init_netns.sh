#!/bin/bash
# Component test of pillion-init in throwaway network namespaces: rules on both backends, re-runs, dry-run, cleanup, auto backend, env, errors and real redirected traffic.
# Needs root, ip, iptables (legacy and nft), setpriv and /usr/bin/python3. Missing pieces are failures, never skips.
set -u
init=${1:?usage: test_init_netns.sh PATH/TO/pillion-init}
init=$(readlink -f "$init")
PY=/usr/bin/python3
fails=0

fatal() { echo "FAIL $*"; exit 1; }
check() { # description, expected, actual
	if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: want [$2], got [$3]"; fails=$((fails + 1)); fi
}
contains() { # description, needle, file
	if grep -qF -- "$2" "$3"; then echo "ok   $1"; else echo "FAIL $1: [$2] not in:"; sed 's/^/     /' "$3"; fails=$((fails + 1)); fi
}
lacks() { # description, needle, file
	if ! grep -qF -- "$2" "$3"; then echo "ok   $1"; else echo "FAIL $1: [$2] unexpectedly in:"; sed 's/^/     /' "$3"; fails=$((fails + 1)); fi
}
same_file() { # description, want file, got file
	if cmp -s "$2" "$3"; then echo "ok   $1"; else echo "FAIL $1:"; diff -u "$2" "$3" | sed 's/^/     /'; fails=$((fails + 1)); fi
}

[ "$(id -u)" = 0 ] || fatal "must run as root: it creates network namespaces and installs iptables rules"
[ -x "$init" ] || fatal "pillion-init not found at $init"
for tool in ip setpriv timeout iptables-legacy iptables-legacy-save iptables-legacy-restore iptables-nft-save \
	iptables-nft-restore ip6tables-legacy-save ip6tables-legacy-restore ip6tables-nft-save ip6tables-nft-restore; do
	command -v "$tool" >/dev/null || fatal "required tool $tool is missing (install iproute2, iptables, util-linux)"
done
[ -x "$PY" ] || fatal "$PY is missing"

suffix=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d)
chmod 755 "$tmp" # the client runs as uid 1000 and 1407
namespaces=()
pids=()

stop_pid() { # stops one process we started: TERM, bounded wait, then KILL
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
cleanup() {
	local p ns
	for p in "${pids[@]}"; do stop_pid "$p"; done
	for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

newns() { # label -> creates pl-<label>-<random> and sets ns to its name (no subshell: the trap must know it)
	ns="pl-$1-$suffix"
	ip netns add "$ns" || fatal "ip netns add $ns failed"
	namespaces+=("$ns")
	ip -n "$ns" link set lo up || fatal "cannot bring lo up in $ns"
}

# The rules of one backend/family, grouped by chain (stable, so each chain keeps its order).
rules() { # ns backend family(4|6)
	local t=iptables
	[ "$3" = 6 ] && t=ip6tables
	ip netns exec "$1" "$t-$2-save" -t nat 2>/dev/null | grep -E '^(-A |:PILLION)' | sed 's/ \[[0-9:]*\]$//' | sort -s -k2,2
}
# The restore input of one family from --dry-run output, in the same shape as rules().
dry_rules() { # file family(4|6)
	local want='^# iptables-'
	[ "$2" = 6 ] && want='^# ip6tables-'
	awk -v w="$want" '/^# / { on = ($0 ~ w) ; next } on' "$1" |
		grep -E '^(-A |:PILLION)' | sed 's/ \[[0-9:]*\]$//' | sort -s -k2,2
}

FLAGS=(--skip-inbound-ports 9090 --skip-outbound-ports 9091 --skip-outbound-cidrs 198.19.0.0/16,2001:db8:ffff::/48)
C='-m comment --comment'
cat >"$tmp/want4" <<EOF
-A PREROUTING -p tcp $C "pillion: pod inbound" -j PILLION_INBOUND
-A OUTPUT -p tcp $C "pillion: pod outbound" -j PILLION_OUTPUT
:PILLION_INBOUND -
-A PILLION_INBOUND -p tcp -m multiport --dports 15420,15401,15406,9090 $C "pillion: skip admin, proxy and skipped inbound ports" -j RETURN
-A PILLION_INBOUND -p tcp $C "pillion: inbound to the proxy" -j PILLION_IN_REDIRECT
:PILLION_IN_REDIRECT -
-A PILLION_IN_REDIRECT -p tcp $C "pillion: inbound to the proxy" -j REDIRECT --to-ports 15406
:PILLION_OUTPUT -
-A PILLION_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1407 $C "pillion: proxy calling its own pod IP is inbound" -j PILLION_IN_REDIRECT
-A PILLION_OUTPUT -o lo -m owner ! --uid-owner 1407 $C "pillion: app loopback traffic goes direct" -j RETURN
-A PILLION_OUTPUT -m owner --uid-owner 1407 $C "pillion: proxy traffic goes direct" -j RETURN
-A PILLION_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1407 $C "pillion: proxy calling its own pod IP is inbound" -j PILLION_IN_REDIRECT
-A PILLION_OUTPUT -o lo -m owner ! --gid-owner 1407 $C "pillion: app loopback traffic goes direct" -j RETURN
-A PILLION_OUTPUT -m owner --gid-owner 1407 $C "pillion: proxy traffic goes direct" -j RETURN
-A PILLION_OUTPUT -d 127.0.0.1/32 $C "pillion: loopback goes direct" -j RETURN
-A PILLION_OUTPUT -p tcp -m multiport --dports 9091 $C "pillion: skipped outbound ports" -j RETURN
-A PILLION_OUTPUT -d 198.19.0.0/16 $C "pillion: skipped outbound CIDR" -j RETURN
-A PILLION_OUTPUT $C "pillion: outbound to the proxy" -j PILLION_REDIRECT
:PILLION_REDIRECT -
-A PILLION_REDIRECT -p tcp $C "pillion: outbound to the proxy" -j REDIRECT --to-ports 15401
EOF
sed -e 's#127\.0\.0\.1/32#::1/128#g; s#198\.19\.0\.0/16#2001:db8:ffff::/48#' "$tmp/want4" >"$tmp/want6"
sort -s -k2,2 "$tmp/want4" -o "$tmp/want4"
sort -s -k2,2 "$tmp/want6" -o "$tmp/want6"

# ---------- rules on each backend: exact text, dry-run, re-run, cleanup ----------
for b in legacy nft; do
	other=nft
	[ $b = nft ] && other=legacy
	newns "$b"
	for f in 4 6; do rules "$ns" $b $f >"$tmp/before$f"; done

	ip netns exec "$ns" "$init" --backend $b --dry-run "${FLAGS[@]}" >"$tmp/dry" 2>"$tmp/err"
	check "$b: --dry-run exits 0" 0 $?
	contains "$b: dry-run names the IPv4 restore command" "# iptables-$b-restore --noflush" "$tmp/dry"
	contains "$b: dry-run names the IPv6 restore command" "# ip6tables-$b-restore --noflush" "$tmp/dry"
	for f in 4 6; do
		rules "$ns" $b $f >"$tmp/after$f"
		same_file "$b: IPv$f dry-run changes nothing" "$tmp/before$f" "$tmp/after$f"
		dry_rules "$tmp/dry" $f >"$tmp/dry$f"
		same_file "$b: IPv$f dry-run prints the expected rules" "$tmp/want$f" "$tmp/dry$f"
	done

	ip netns exec "$ns" "$init" --backend $b "${FLAGS[@]}" >"$tmp/out" 2>"$tmp/err"
	check "$b: install exits 0" 0 $?
	contains "$b: says what it installed (IPv4)" "IPv4: backend $b (iptables-$b-restore): 14 rules" "$tmp/out"
	contains "$b: says what it installed (IPv6)" "IPv6: backend $b (ip6tables-$b-restore): 14 rules" "$tmp/out"
	for f in 4 6; do
		rules "$ns" $b $f >"$tmp/got$f"
		same_file "$b: IPv$f rules installed as specified" "$tmp/want$f" "$tmp/got$f"
		same_file "$b: IPv$f dry-run output equals what was applied" "$tmp/dry$f" "$tmp/got$f"
		rules "$ns" $other $f >"$tmp/other$f"
		lacks "$b: IPv$f nothing installed with $other" PILLION "$tmp/other$f"
	done

	ip netns exec "$ns" "$init" --backend $b "${FLAGS[@]}" >"$tmp/out" 2>"$tmp/err"
	check "$b: second run exits 0" 0 $?
	contains "$b: second run finds the jumps" "2 already present" "$tmp/out"
	for f in 4 6; do
		rules "$ns" $b $f >"$tmp/again$f"
		same_file "$b: IPv$f second run gives the identical rule set" "$tmp/got$f" "$tmp/again$f"
	done
	ip netns exec "$ns" "$init" --backend $b --dry-run "${FLAGS[@]}" >"$tmp/dry2" 2>&1
	check "$b: dry-run on installed rules exits 0" 0 $?
	lacks "$b: dry-run on installed rules adds no jump" "-A PREROUTING" "$tmp/dry2"
	for f in 4 6; do
		rules "$ns" $b $f >"$tmp/again$f"
		same_file "$b: IPv$f dry-run on installed rules changes nothing" "$tmp/got$f" "$tmp/again$f"
	done

	ip netns exec "$ns" "$init" --backend $b --cleanup >"$tmp/out" 2>"$tmp/err"
	check "$b: --cleanup exits 0" 0 $?
	contains "$b: cleanup removed both jumps" "and 2 jumps with iptables-$b-restore" "$tmp/out"
	for f in 4 6; do
		rules "$ns" $b $f >"$tmp/clean$f"
		same_file "$b: IPv$f --cleanup leaves no PILLION chain or jump" "$tmp/before$f" "$tmp/clean$f"
		check "$b: IPv$f no PILLION left at all" 0 "$(ip netns exec "$ns" "$( [ $f = 6 ] && echo ip6tables || echo iptables)-$b-save" 2>/dev/null | grep -c PILLION)"
	done
	ip netns exec "$ns" "$init" --backend $b --cleanup >"$tmp/out" 2>"$tmp/err"
	check "$b: --cleanup with nothing installed exits 0" 0 $?
done

# ---------- auto backend ----------
newns auto-legacy
ip netns exec "$ns" iptables-legacy -t nat -A POSTROUTING -d 198.18.99.0/24 -j RETURN || fatal "cannot add the dummy legacy rule"
ip netns exec "$ns" "$init" --no-ipv6 >"$tmp/out" 2>"$tmp/err"
check "auto: exits 0 with a legacy rule present" 0 $?
contains "auto: picks legacy when legacy holds a rule" "backend legacy" "$tmp/out"
rules "$ns" legacy 4 >"$tmp/r"
contains "auto: rules went into legacy" "PILLION_INBOUND" "$tmp/r"
rules "$ns" nft 4 >"$tmp/r"
lacks "auto: nothing went into nft" "PILLION" "$tmp/r"
lacks "auto: --no-ipv6 installs no IPv6 rules" "IPv6" "$tmp/out"
ip netns exec "$ns" "$init" --no-ipv6 >"$tmp/out" 2>"$tmp/err"
contains "auto: a re-run stays on legacy" "backend legacy" "$tmp/out"

newns auto-nft
ip netns exec "$ns" "$init" >"$tmp/out" 2>"$tmp/err"
check "auto: exits 0 on a fresh pod" 0 $?
contains "auto: picks nft on a fresh pod" "IPv4: backend nft" "$tmp/out"
contains "auto: IPv6 on by default" "IPv6: backend nft" "$tmp/out"
rules "$ns" legacy 4 >"$tmp/r"
lacks "auto: nothing went into legacy" "PILLION" "$tmp/r"
ip netns exec "$ns" "$init" --cleanup >"$tmp/out" 2>"$tmp/err"
check "auto: cleanup exits 0" 0 $?
for f in 4 6; do
	rules "$ns" nft $f >"$tmp/r"
	lacks "auto: IPv$f cleanup found the nft rules" "PILLION" "$tmp/r"
done

# ---------- environment variables ----------
newns env
ip netns exec "$ns" env PILLION_SKIP_INBOUND_PORTS=7777,7000-7010 PILLION_BACKEND=nft PILLION_IPV6=false \
	PILLION_PROXY_UID=2000 "$init" --proxy-uid 2100 >"$tmp/out" 2>"$tmp/err"
check "env: exits 0" 0 $?
rules "$ns" nft 4 >"$tmp/r"
contains "env: PILLION_SKIP_INBOUND_PORTS applied" "--dports 15420,15401,15406,7777,7000:7010 " "$tmp/r"
contains "env: the command line wins over PILLION_PROXY_UID" "--uid-owner 2100 " "$tmp/r"
lacks "env: PILLION_PROXY_UID overridden" "2000" "$tmp/r"
rules "$ns" nft 6 >"$tmp/r"
lacks "env: PILLION_IPV6=false installs no IPv6 rules" "PILLION" "$tmp/r"

# ---------- usage errors: exit 2, naming the flag and value, nothing installed ----------
newns usage
ip netns exec "$ns" "$init" --backend nft --skip-outbound-cidrs 10.0.0.0/33 >"$tmp/out" 2>"$tmp/err"
check "bad CIDR exits 2" 2 $?
contains "bad CIDR is named" 'pillion-init: --skip-outbound-cidrs: "10.0.0.0/33": prefix length must be 0..32 for IPv4' "$tmp/err"
ip netns exec "$ns" "$init" --frobnicate >"$tmp/out" 2>"$tmp/err"
check "unknown flag exits 2" 2 $?
contains "unknown flag is named" '--frobnicate' "$tmp/err"
ip netns exec "$ns" env PILLION_INBOUND_PORT=99999 "$init" >"$tmp/out" 2>"$tmp/err"
check "bad env value exits 2" 2 $?
contains "bad env value is named" 'pillion-init: PILLION_INBOUND_PORT: "99999": port must be 1..65535' "$tmp/err"
for b in legacy nft; do
	rules "$ns" $b 4 >"$tmp/r"
	lacks "usage errors install nothing ($b)" PILLION "$tmp/r"
done
"$init" --help >"$tmp/out" 2>&1
check "--help exits 0" 0 $?
contains "--help mentions host bits" "host bits are cleared" "$tmp/out"

# ---------- missing binaries and kernel pieces (fake tools on PATH; they change nothing, so the host netns is allowed) ----------
mkdir -p "$tmp/empty" "$tmp/fake"
env PATH="$tmp/empty" "$init" --allow-host-netns >"$tmp/out" 2>"$tmp/err"
check "no iptables at all exits 1" 1 $?
contains "no iptables at all names the binaries" "iptables-nft-restore and iptables-legacy-restore not found in PATH" "$tmp/err"
env PATH="$tmp/empty" "$init" --allow-host-netns --backend legacy >"$tmp/out" 2>"$tmp/err"
check "forced backend missing exits 1" 1 $?
contains "forced backend missing names it" "iptables-legacy-restore not found in PATH (--backend=legacy)" "$tmp/err"
env PATH="$tmp/empty" "$init" --allow-host-netns --dry-run "${FLAGS[@]}" >"$tmp/out" 2>"$tmp/err"
check "dry-run without binaries exits 0" 0 $?
contains "dry-run without binaries prints as for nft" "# iptables-nft-restore --noflush" "$tmp/out"
for f in 4 6; do
	dry_rules "$tmp/out" $f >"$tmp/dry$f"
	same_file "dry-run without binaries: IPv$f as for a fresh pod" "$tmp/want$f" "$tmp/dry$f"
done

# Fake nft tools: save prints an empty nat table; restore logs its input and refuses what $FAIL_ON names.
for t in iptables ip6tables; do
	cat >"$tmp/fake/$t-nft-save" <<'EOF'
#!/bin/bash
printf '*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n'
EOF
	cat >"$tmp/fake/$t-nft-restore" <<EOF
#!/bin/bash
input=\$(</dev/stdin)
printf '%s\n' "\$input" >>"$tmp/fake/$t.log"
fail_on=\${FAIL_ON_$( [ $t = ip6tables ] && echo 6 || echo 4):-}
if [ -n "\$fail_on" ] && [[ "\$input" == *"\$fail_on"* ]]; then echo "$t-restore: fake failure on \$fail_on" >&2; exit 1; fi
exit 0
EOF
	chmod +x "$tmp/fake/$t-nft-save" "$tmp/fake/$t-nft-restore"
done
probe_case() { # description, FAIL_ON_4, FAIL_ON_6, expected message
	rm -f "$tmp/fake/"*.log
	env PATH="$tmp/fake" FAIL_ON_4="$2" FAIL_ON_6="$3" "$init" --allow-host-netns >"$tmp/out" 2>"$tmp/err"
	check "$1: exits 1" 1 $?
	contains "$1: names the missing piece" "$4" "$tmp/err"
	if grep -q "PILLION_INBOUND" "$tmp/fake/"*.log 2>/dev/null; then
		echo "FAIL $1: rules were applied although a probe failed"; fails=$((fails + 1))
	else
		echo "ok   $1: nothing applied"
	fi
}
probe_case "no nat table" ":PILLION_PROBE" "" "cannot use the nat table: kernel module iptable_nat / nf_nat missing?"
probe_case "no REDIRECT" "REDIRECT" "" "IPv4: the REDIRECT target is missing"
probe_case "no owner match" "-m owner" "" "the owner match is missing: kernel module xt_owner?"
probe_case "no multiport match" "-m multiport" "" "the multiport match is missing: kernel module xt_multiport?"
probe_case "no comment match" "-m comment" "" "the comment match is missing: kernel module xt_comment?"
probe_case "no IPv6 nat" "" ":PILLION_PROBE" "cannot use the IPv6 nat table: kernel module ip6table_nat / nf_nat missing? (--ipv6=false turns IPv6 off)"
rm -f "$tmp/fake/"*.log
env PATH="$tmp/fake" FAIL_ON_6=":PILLION_PROBE" "$init" --allow-host-netns --ipv6=false >"$tmp/out" 2>"$tmp/err"
check "no IPv6 nat but --ipv6=false: exits 0" 0 $?
env PATH="$tmp/fake" FAIL_ON_4=":PILLION_INBOUND" "$init" --allow-host-netns --no-ipv6 >"$tmp/out" 2>"$tmp/err"
check "restore failing after probes exits 1" 1 $?
contains "restore failure is reported with its stderr" "iptables-nft-restore --noflush failed (exit 1): iptables-restore: fake failure" "$tmp/err"

# ---------- the host's network namespace is refused (fake tools: a broken guard changes nothing real) ----------
rm -f "$tmp/fake/"*.log
ip netns exec "$ns" env PATH="$tmp/fake" "$init" --no-ipv6 >"$tmp/out" 2>"$tmp/err"
check "a pod namespace is not mistaken for the host's" 0 $?
host_netns=no
if [ "$(stat -L -c %i /proc/self/ns/net)" = 4026531833 ]; then
	host_netns=yes
elif [ "$(stat -L -c %i /proc/self/ns/pid)" = 4026531836 ] &&
	[ "$(stat -L -c %d:%i /proc/1/ns/net 2>/dev/null)" = "$(stat -L -c %d:%i /proc/self/ns/net)" ]; then
	host_netns=yes
fi
if [ $host_netns = yes ]; then
	env PATH="$tmp/fake" "$init" --no-ipv6 >"$tmp/out" 2>"$tmp/err"
	check "host netns: install refused with exit 2" 2 $?
	contains "host netns: says why and how to override" "refusing to install redirect rules in the host's network namespace" "$tmp/err"
	env PATH="$tmp/fake" "$init" --no-ipv6 --allow-host-netns >"$tmp/out" 2>"$tmp/err"
	check "host netns: --allow-host-netns overrides" 0 $?
	env PATH="$tmp/fake" "$init" --no-ipv6 --cleanup >"$tmp/out" 2>"$tmp/err"
	check "host netns: --cleanup is allowed" 0 $?
else
	echo "note: this test does not run in the host network namespace; the host guard is checked by the line above only"
fi

# ---------- real traffic: a pod namespace and a peer on a veth pair ----------
cat >"$tmp/server.py" <<'EOF'
# Answers each TCP connection with the tag of the listener that accepted it. Args: READY_FILE TAG=PORT...
import selectors, socket, sys
sel = selectors.DefaultSelector()
for spec in sys.argv[2:]:
    tag, port = spec.split("=")
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", int(port)))
    s.listen(16)
    sel.register(s, selectors.EVENT_READ, tag)
open(sys.argv[1], "w").close()
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        try:
            conn.sendall((key.data + "\n").encode())
        finally:
            conn.close()
EOF
cat >"$tmp/client.py" <<'EOF'
# Connects to HOST PORT and prints the tag the listener sent, or ERR and the reason.
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as s:
        print(s.recv(100).decode().strip())
except OSError as e:
    print("ERR", e)
EOF

start_server() { # ns ready-file tag=port...
	local ns=$1 ready=$2 i
	shift 2
	ip netns exec "$ns" "$PY" "$tmp/server.py" "$ready" "$@" &
	pids+=($!)
	for i in $(seq 600); do [ -e "$ready" ] && return 0; kill -0 "${pids[-1]}" 2>/dev/null || break; sleep 0.1; done
	fatal "listener in $ns did not start ($*)"
}
conn() { # ns uid gid host port -> the tag
	timeout 60 ip netns exec "$1" setpriv --reuid="$2" --regid="$3" --clear-groups "$PY" "$tmp/client.py" "$4" "$5" 2>&1
}

traffic() { # backend
	local b=$1 pod peer h
	newns "pod-$b"
	pod=$ns
	newns "peer-$b"
	peer=$ns
	ip -n "$pod" link add pod0 type veth peer name peer0 netns "$peer" || fatal "cannot create the veth pair"
	ip -n "$pod" addr add 198.18.0.1/24 dev pod0
	ip -n "$pod" addr add 2001:db8::1/64 dev pod0 nodad
	ip -n "$peer" addr add 198.18.0.2/24 dev peer0
	ip -n "$peer" addr add 198.19.0.2/16 dev peer0
	ip -n "$peer" addr add 2001:db8::2/64 dev peer0 nodad
	ip -n "$peer" addr add 2001:db8:ffff::2/64 dev peer0 nodad
	ip -n "$pod" link set pod0 up
	ip -n "$peer" link set peer0 up
	ip -n "$pod" route add 198.19.0.0/16 dev pod0
	ip -n "$pod" route add 2001:db8:ffff::/48 dev pod0
	ip -n "$peer" route add 2001:db8::/64 dev peer0 2>/dev/null

	start_server "$pod" "$tmp/ready-pod-$b" proxy-out=15401 proxy-in=15406 admin=15420 app=8080 skipped-in=9090
	start_server "$peer" "$tmp/ready-peer-$b" peer=8080 peer-skipped=9091

	# Before any rule, the app answers directly: the plumbing itself works.
	check "$b traffic: without rules peer reaches the app" app "$(conn "$peer" 0 0 198.18.0.1 8080)"
	check "$b traffic: without rules the pod reaches the peer" peer "$(conn "$pod" 1000 1000 198.18.0.2 8080)"

	ip netns exec "$pod" "$init" --backend "$b" "${FLAGS[@]}" >"$tmp/out" 2>"$tmp/err"
	check "$b traffic: install exits 0" 0 $?
	[ -s "$tmp/err" ] && sed 's/^/     stderr: /' "$tmp/err"

	for h in 198.18.0.1 2001:db8::1; do
		check "$b traffic: inbound $h:8080 lands on the inbound proxy" proxy-in "$(conn "$peer" 0 0 $h 8080)"
		check "$b traffic: inbound $h:9090 (skipped) goes direct" skipped-in "$(conn "$peer" 0 0 $h 9090)"
		check "$b traffic: inbound $h:15420 (admin) goes direct" admin "$(conn "$peer" 0 0 $h 15420)"
	done
	for h in 198.18.0.2 2001:db8::2; do
		check "$b traffic: app -> $h:8080 lands on the outbound proxy" proxy-out "$(conn "$pod" 1000 1000 $h 8080)"
		check "$b traffic: proxy uid 1407 -> $h:8080 goes direct" peer "$(conn "$pod" 1407 1407 $h 8080)"
		check "$b traffic: proxy gid 1407 (uid 1000) -> $h:8080 goes direct" peer "$(conn "$pod" 1000 1407 $h 8080)"
		check "$b traffic: app -> $h:9091 (skipped port) goes direct" peer-skipped "$(conn "$pod" 1000 1000 $h 9091)"
	done
	check "$b traffic: app -> 198.19.0.2 (skipped CIDR) goes direct" peer "$(conn "$pod" 1000 1000 198.19.0.2 8080)"
	check "$b traffic: app -> 2001:db8:ffff::2 (skipped CIDR) goes direct" peer "$(conn "$pod" 1000 1000 2001:db8:ffff::2 8080)"
	for h in 127.0.0.1 ::1 198.18.0.1 2001:db8::1; do
		check "$b traffic: app -> $h:8080 (loopback / own pod IP) goes direct" app "$(conn "$pod" 1000 1000 $h 8080)"
	done
	for h in 198.18.0.1 2001:db8::1; do
		check "$b traffic: proxy -> own pod IP $h:8080 is handled as inbound" proxy-in "$(conn "$pod" 1407 1407 $h 8080)"
	done
	check "$b traffic: proxy -> 127.0.0.1:8080 goes direct" app "$(conn "$pod" 1407 1407 127.0.0.1 8080)"

	ip netns exec "$pod" "$init" --backend "$b" --cleanup >"$tmp/out" 2>"$tmp/err"
	check "$b traffic: cleanup exits 0" 0 $?
	check "$b traffic: after cleanup peer reaches the app directly" app "$(conn "$peer" 0 0 198.18.0.1 8080)"
	check "$b traffic: after cleanup the app reaches the peer directly" peer "$(conn "$pod" 1000 1000 2001:db8::2 8080)"
}
traffic legacy
traffic nft

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
