# Pillion's images, one target per program. `make images` builds all four (scripts/images.sh),
# making the debian:bookworm base locally with debootstrap when none is present:
#
#   docker build --network=host --target operator -t pillion/operator:0.1.0 .
#   docker build --network=host --target webhook  -t pillion/webhook:0.1.0 .
#   docker build --network=host --target proxy    -t pillion/proxy:0.1.0 .
#   docker build --network=host --target init     -t pillion/init:0.1.0 .
#
# One build stage compiles everything once. The operator, webhook and proxy images hold their one
# binary, the shared libraries it links (and nothing else: the proxy has no libcurl, libyaml or
# libwebsockets), the loader, and /etc/passwd naming their user: no shell, no package manager.
# The init image adds the iptables programs pillion-init runs (scripts/image-rootfs.sh).
ARG BASE=debian:bookworm

# ---- build ----
FROM ${BASE} AS build
# scripts/images.sh prunes superseded build stages by this label.
LABEL dev.pillion.stage=build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake make gcc libc6-dev pkg-config binutils \
      libcurl4-openssl-dev libssl-dev libyaml-dev libjansson-dev libwebsockets-dev zlib1g-dev libnghttp2-dev iptables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The commit the binaries report (--version, pillion_build_info): the build context has no .git.
ARG PILLION_COMMIT=unknown
# No tests here (they need cmocka, network namespaces and the API test double): CI runs them.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DPILLION_TESTS=OFF -DPILLION_COMMIT="${PILLION_COMMIT}" \
 && cmake --build /build -j"$(nproc)" \
 && strip --strip-unneeded /build/bin/pillion-operator /build/bin/pillion-webhook /build/bin/pillion-proxy \
      /build/bin/pillion-init /build/bin/pillionctl \
 && sh scripts/image-rootfs.sh /rootfs/operator nonroot:65532 /build/bin/pillion-operator \
 && sh scripts/image-rootfs.sh /rootfs/webhook nonroot:65532 /build/bin/pillion-webhook \
 && sh scripts/image-rootfs.sh /rootfs/proxy pillion-proxy:1407 /build/bin/pillion-proxy \
 && sh scripts/image-rootfs.sh /rootfs/init root:0 /build/bin/pillion-init \
      /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/lib/x86_64-linux-gnu/xtables \
      /usr/sbin/iptables-nft-restore /usr/sbin/iptables-nft-save /usr/sbin/ip6tables-nft-restore \
      /usr/sbin/ip6tables-nft-save /usr/sbin/iptables-legacy-restore /usr/sbin/iptables-legacy-save \
      /usr/sbin/ip6tables-legacy-restore /usr/sbin/ip6tables-legacy-save /usr/sbin/iptables-nft \
      /usr/sbin/ip6tables-nft /usr/sbin/iptables-legacy /usr/sbin/ip6tables-legacy

# ---- what every image carries: the release and commit (OCI labels), on an empty base ----
FROM scratch AS labels
ARG PILLION_VERSION=0.1.0
ARG PILLION_COMMIT=unknown
LABEL org.opencontainers.image.version="${PILLION_VERSION}" \
      org.opencontainers.image.revision="${PILLION_COMMIT}" \
      org.opencontainers.image.base.name="scratch"

# ---- pillion-operator: the control plane (Kubernetes client over libcurl, the mesh CA) ----
FROM labels AS operator
LABEL org.opencontainers.image.title="pillion-operator" \
      org.opencontainers.image.description="Pillion service mesh: the control plane"
COPY --from=build /rootfs/operator/ /
USER 65532:65532
EXPOSE 15440
ENTRYPOINT ["/usr/local/bin/pillion-operator"]

# ---- pillion-webhook: the mutating admission webhook (libwebsockets, OpenSSL) ----
FROM labels AS webhook
LABEL org.opencontainers.image.title="pillion-webhook" \
      org.opencontainers.image.description="Pillion service mesh: the sidecar injection webhook"
COPY --from=build /rootfs/webhook/ /
USER 65532:65532
EXPOSE 9443
ENTRYPOINT ["/usr/local/bin/pillion-webhook"]

# ---- pillion-proxy: the data plane; UID/GID 1407, which the redirect rules exempt ----
FROM labels AS proxy
LABEL org.opencontainers.image.title="pillion-proxy" \
      org.opencontainers.image.description="Pillion service mesh: the sidecar proxy"
COPY --from=build /rootfs/proxy/ /
USER 1407:1407
EXPOSE 15401 15406 15420
ENTRYPOINT ["/usr/local/bin/pillion-proxy"]

# ---- pillion-init: installs the redirect rules, then exits. Root (the injected container gets
# NET_ADMIN and NET_RAW); it picks the backend the node uses and runs iptables-nft-restore or
# iptables-legacy-restore (and the ip6tables ones) itself, by execvp: the image holds both
# flavours from Debian's iptables package (xtables-nft-multi, xtables-legacy-multi, their
# extensions and libraries) and nothing else. ----
FROM labels AS init
LABEL org.opencontainers.image.title="pillion-init" \
      org.opencontainers.image.description="Pillion service mesh: the pod's traffic redirect rules"
COPY --from=build /rootfs/init/ /
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin
USER 0:0
ENTRYPOINT ["/usr/local/bin/pillion-init"]
