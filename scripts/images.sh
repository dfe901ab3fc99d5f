#!/bin/sh
# Builds Pillion's four images from the Dockerfile and smoke-tests each.
#
# The base: debian:bookworm when Docker already has it; else made here, as the Debian archive has
# it, with `debootstrap --variant=minbase bookworm` and `docker import` (no registry is needed).
# The engine: the running Docker daemon when there is one; else a private dockerd started here
# (--bridge=none --iptables=false, builds with --network=host) and stopped by its PID at the end.
#
# Smoke test of each image: --version prints this release and commit; the proxy's --check passes
# on a config rendered by pillionctl; pillion-init --dry-run prints rules, and installs them for
# real in a container's network namespace with either iptables backend; the image's own loader
# finds every library its programs link; the OCI labels carry version and revision.
#
# usage: images.sh            (root; TAG=0.1.0 by default, MIRROR: the Debian archive apt uses)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
version=$(sed -n 's/^project(pillion VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
TAG=${TAG:-$version}
commit=$(git -C "$top" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git -C "$top" diff --quiet HEAD -- 2>/dev/null; then
	commit="$commit-dirty"
fi
work=$(mktemp -d -t pillion-images.XXXXXX)
dockerd_pid=""

log() { echo "images: $*" >&2; }
die() {
	log "FAIL: $*"
	[ -f "$work/dockerd.log" ] && tail -20 "$work/dockerd.log" >&2
	exit 1
}
cleanup() {
	if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
		kill -TERM "$dockerd_pid" 2>/dev/null
		i=0
		while kill -0 "$dockerd_pid" 2>/dev/null && [ $i -lt 600 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$dockerd_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" = 0 ] || die "must run as root (docker, debootstrap)"
for t in docker dockerd debootstrap; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing: scripts/install-deps.sh images installs it"
done

# ---- the engine ----
if ! docker info >/dev/null 2>&1; then
	sock=/run/pillion-images-docker.sock
	log "no Docker daemon answers; starting one (socket $sock)"
	mkdir -p /run/pillion-images-docker
	dockerd --host "unix://$sock" --pidfile /run/pillion-images-docker/dockerd.pid \
		--exec-root /run/pillion-images-docker/exec --bridge=none --iptables=false --ip6tables=false \
		>"$work/dockerd.log" 2>&1 &
	dockerd_pid=$!
	export DOCKER_HOST="unix://$sock"
	i=0
	until docker info >/dev/null 2>&1; do
		kill -0 "$dockerd_pid" 2>/dev/null || die "dockerd exited at start"
		[ $i -lt 1200 ] || die "dockerd did not answer within 120 s"
		sleep 0.1
		i=$((i + 1))
	done
fi

# ---- the base ----
if docker image inspect debian:bookworm >/dev/null 2>&1; then
	log "base debian:bookworm present"
else
	mirror=${MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
	[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	[ -n "$mirror" ] || die "no Debian mirror found in apt's sources; set MIRROR"
	log "making debian:bookworm with debootstrap --variant=minbase from $mirror"
	debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
	# What the image's apt reads: the archive and its security updates, as this machine has them.
	printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$work/rootfs/etc/apt/sources.list"
	rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/archives/"*.deb
	tar -C "$work/rootfs" -c . | docker import --change 'CMD ["bash"]' - debian:bookworm >/dev/null ||
		die "docker import failed"
	rm -rf "$work/rootfs"
fi

# ---- the images ----
for t in operator webhook proxy init; do
	log "building pillion/$t:$TAG"
	DOCKER_BUILDKIT=0 docker build --network=host --target "$t" -t "pillion/$t:$TAG" \
		--build-arg PILLION_VERSION="$version" --build-arg PILLION_COMMIT="$commit" . >"$work/build-$t.log" 2>&1 ||
		{ tail -40 "$work/build-$t.log" >&2; die "docker build --target $t failed"; }
done

# Superseded build stages (untagged, labelled by the Dockerfile) are removed; the cache of the
# current one stays.
docker image prune -f --filter label=dev.pillion.stage=build >/dev/null || true

# ---- smoke test ----
fails=0
ok() { echo "ok: $*"; }
bad() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
for t in operator webhook proxy init; do
	img=pillion/$t:$TAG
	case $t in
	operator) bin=pillion-operator ;;
	webhook) bin=pillion-webhook ;;
	proxy) bin=pillion-proxy ;;
	init) bin=pillion-init ;;
	esac
	out=$(docker run --rm --network=none "$img" --version 2>&1) || true
	[ "$out" = "$bin $version (commit $commit)" ] && ok "$img: --version: $out" || bad "$img: --version said: $out"
	# The image's own loader lists what the binary links: every library must resolve inside the image.
	libs=$(docker run --rm --network=none --entrypoint /lib64/ld-linux-x86-64.so.2 "$img" --list "/usr/local/bin/$bin" 2>&1) || true
	[ "$t" = init ] && libs="$libs
$(docker run --rm --network=none --entrypoint /lib64/ld-linux-x86-64.so.2 "$img" --list /usr/sbin/xtables-nft-multi 2>&1 || true)"
	if echo "$libs" | grep -q 'libc.so.6 =>' && ! echo "$libs" | grep -q 'not found'; then
		ok "$img: every library resolves ($(echo "$libs" | grep -c '=>') linked)"
	else
		bad "$img: libraries: $libs"
	fi
	rev=$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}} {{index .Config.Labels "org.opencontainers.image.version"}}' "$img")
	[ "$rev" = "$commit $version" ] && ok "$img: OCI labels revision and version" || bad "$img: labels: $rev"
done
for t in proxy operator webhook init; do
	libs=$(docker run --rm --network=none --entrypoint /lib64/ld-linux-x86-64.so.2 "pillion/$t:$TAG" --list "/usr/local/bin/pillion-$t" 2>&1 || true)
	case $t in
	proxy) unwanted='libcurl|libyaml|libwebsockets' ;;
	*) unwanted='libasan|libubsan' ;;
	esac
	echo "$libs" | grep -Eq "$unwanted" && bad "pillion/$t:$TAG links one of $unwanted" || ok "pillion/$t:$TAG links none of $unwanted"
done

# The proxy checks a config rendered by pillionctl (built by the image build; run from its image).
mkdir -p "$work/cfg"
cat >"$work/cfg/pod.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web}
  annotations: {pillion.dev/id: 0123456789abcdef0123456789abcdef}
spec:
  serviceAccountName: web
  containers:
  - name: web
    image: web
    ports: [{containerPort: 8080}]
EOF
cat >"$work/cfg/svc.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.18.100.10
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  targetRef: {kind: Service, name: web}
  routes:
  - name: all
    timeout: 2s
EOF
chmod 755 "$work" "$work/cfg"
# pillionctl is not in any image: render with the host's build when there is one, else build it.
ctl=""
for d in build/bin build-asan/bin; do
	[ -x "$d/pillionctl" ] && ctl=$d/pillionctl && break
done
[ -n "$ctl" ] || die "no pillionctl built (make build)"
"$ctl" render --pod "$work/cfg/pod.yaml" -f "$work/cfg/svc.yaml" >"$work/cfg/proxy.json" 2>"$work/render.err" ||
	die "pillionctl render: $(cat "$work/render.err")"
chmod 644 "$work/cfg/proxy.json"
out=$(docker run --rm --network=none -v "$work/cfg:/cfg:ro" "pillion/proxy:$TAG" --check --config /cfg/proxy.json 2>&1) || true
echo "$out" | grep -q "configuration OK" && ok "pillion/proxy:$TAG --check on a rendered config: configuration OK" ||
	bad "proxy --check: $out"
echo '{"not": "a config"}' >"$work/cfg/bad.json"
chmod 644 "$work/cfg/bad.json"
if docker run --rm --network=none -v "$work/cfg:/cfg:ro" "pillion/proxy:$TAG" --check --config /cfg/bad.json >"$work/bad.out" 2>&1; then
	bad "proxy --check accepted a bad config"
else
	ok "pillion/proxy:$TAG --check refuses a bad config: $(head -1 "$work/bad.out")"
fi
out=$(docker run --rm --network=none "pillion/init:$TAG" --dry-run 2>&1) || true
echo "$out" | grep -q 'PILLION_OUTPUT' && ok "pillion/init:$TAG --dry-run prints the rules" || bad "init --dry-run: $out"
# The real thing: pillion-init installs its rules in the container's own network namespace with the
# image's iptables, once per backend, as the injected init container runs: NET_ADMIN and NET_RAW
# only, a read-only root, legacy iptables' lock file on /dev/shm (XTABLES_LOCKFILE, as injected).
for be in nft legacy; do
	out=$(docker run --rm --network=none --read-only --cap-drop=ALL --cap-add=NET_ADMIN --cap-add=NET_RAW \
		-e XTABLES_LOCKFILE=/dev/shm/xtables.lock "pillion/init:$TAG" \
		--backend "$be" --skip-inbound-ports 22 2>&1) && rc=0 || rc=$?
	[ "$rc" = 0 ] && ok "pillion/init:$TAG installs the rules with iptables-$be in a pod's network namespace" ||
		bad "init --backend $be: exit $rc: $out"
done
for t in iptables-nft-restore ip6tables-nft-restore iptables-legacy-restore ip6tables-legacy-restore; do
	out=$(docker run --rm --network=none --entrypoint "$t" "pillion/init:$TAG" --version 2>&1) || true
	echo "$out" | grep -q '^[a-z0-9-]* v1\.' && ok "pillion/init:$TAG runs $t: $out" || bad "init $t: $out"
done
out=$(docker run --rm --network=none "pillion/webhook:$TAG" --help 2>&1) || true
echo "$out" | grep -q -- '--tls-cert' && ok "pillion/webhook:$TAG --help" || bad "webhook --help: $out"
out=$(docker run --rm --network=none "pillion/operator:$TAG" --help 2>&1) || true
echo "$out" | grep -q -- '--kubeconfig' && ok "pillion/operator:$TAG --help" || bad "operator --help: $out"

echo
echo "| image | size |"
echo "| --- | ---: |"
for t in operator webhook proxy init; do
	bytes=$(docker image inspect -f '{{.Size}}' "pillion/$t:$TAG")
	echo "| pillion/$t:$TAG | $(awk -v b="$bytes" 'BEGIN {printf "%.1f MB", b / 1000000}') |"
done
if [ "$fails" -gt 0 ]; then
	echo "images: $fails smoke check(s) failed"
	exit 1
fi
echo "images: all smoke checks passed"
