#!/bin/sh
# Installs, with apt-get only, the Debian bookworm packages one job needs and that are missing.
#
#   install-deps.sh build    compilers and the -dev libraries (make build)
#   install-deps.sh demo     build + what the local mesh runs with (make demo)
#   install-deps.sh test     demo + cmocka, clang and its sanitizer runtime, jsonschema (make test)
#   install-deps.sh bench    test + HAProxy, nginx and wrk to compare against (bench/run.sh)
#   install-deps.sh images   debootstrap and Docker (make images)
#   install-deps.sh check    fails when a service those packages ship is enabled or running
#
# Packages that ship a system service (haproxy, nginx, docker.io, containerd) are installed with
# their start-up refused (policy-rc.d) and their units disabled afterwards: nothing is left enabled
# or running on the machine; the jobs start what they need themselves and stop it by PID.
set -eu

BUILD="cmake make gcc pkg-config libc6-dev \
 libcurl4-openssl-dev libssl-dev libyaml-dev libjansson-dev libwebsockets-dev zlib1g-dev libnghttp2-dev"
DEMO="$BUILD python3 python3-yaml iproute2 iptables tcpdump curl openssl util-linux procps"
TEST="$DEMO libcmocka-dev clang libclang-rt-14-dev python3-jsonschema iputils-ping nghttp2-client python3-grpcio python3-hpack"
BENCH="$TEST haproxy nginx-light libnginx-mod-stream wrk nghttp2-server"
IMAGES="debootstrap docker.io ca-certificates"
# The services those packages bring, kept disabled.
SERVICES="haproxy nginx docker containerd"

# check: exit 1 when a unit of those services is enabled or active (CI runs it last).
if [ "${1:-}" = check ]; then
	bad=0
	if command -v systemctl >/dev/null 2>&1; then
		for s in $SERVICES; do
			for u in "$s.service" "$s.socket"; do
				st=$(systemctl is-enabled "$u" 2>/dev/null || true)
				act=$(systemctl is-active "$u" 2>/dev/null || true)
				if [ "$st" = enabled ] || [ "$act" = active ]; then
					echo "install-deps: $u is $st, $act" >&2
					bad=1
				fi
			done
		done
	fi
	[ "$bad" = 0 ] && echo "install-deps: no unit of haproxy, nginx, docker or containerd enabled or active"
	exit "$bad"
fi

case "${1:-}" in
build) pkgs=$BUILD ;;
demo) pkgs=$DEMO ;;
test) pkgs=$TEST ;;
bench) pkgs=$BENCH ;;
images) pkgs=$IMAGES ;;
*)
	echo "usage: install-deps.sh build|demo|test|bench|images|check" >&2
	exit 2
	;;
esac

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
	exit 1
fi

# Debian starts a package's daemon on install unless policy-rc.d says no (exit 101).
prc=/usr/sbin/policy-rc.d
made_prc=""
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\n# install-deps.sh: no daemon starts while packages install\nexit 101\n' >"$prc"
	chmod 755 "$prc"
	made_prc=1
fi
cleanup() { if [ -n "$made_prc" ]; then rm -f "$prc"; fi; }
trap cleanup EXIT

echo "install-deps ($1): installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends $missing

# Units a package enabled are disabled again (on machines without systemd this is a no-op).
if command -v systemctl >/dev/null 2>&1; then
	for s in $SERVICES; do
		for u in "$s.service" "$s.socket"; do
			if systemctl list-unit-files "$u" 2>/dev/null | grep -q "^$u"; then
				systemctl disable "$u" >/dev/null 2>&1 || true
			fi
		done
	done
fi
