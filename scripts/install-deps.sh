#!/bin/sh
# Installs, with apt-get only, the Debian bookworm packages Pillion needs and that are missing.
set -eu
PKGS="cmake make gcc pkg-config libc6-dev \
 libcurl4-openssl-dev libssl-dev libyaml-dev libjansson-dev libwebsockets-dev libcmocka-dev \
 clang libclang-rt-14-dev python3 python3-yaml python3-jsonschema \
 iproute2 iptables iputils-ping tcpdump curl openssl util-linux \
 haproxy nginx-light libnginx-mod-stream wrk"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
		exit 1
	fi
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends $missing
fi
