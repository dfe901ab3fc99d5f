# Pillion's images, one target per program (docs/webhook.md, "Images"):
#
#   docker build --target operator -t pillion/operator:0.1.0 .
#   docker build --target webhook  -t pillion/webhook:0.1.0 .
#   docker build --target proxy    -t pillion/proxy:0.1.0 .
#   docker build --target init     -t pillion/init:0.1.0 .
#
# One build stage compiles everything once (BuildKit shares it between the targets); each
# runtime image holds one binary and only the shared libraries it needs, from Debian bookworm,
# the release the project builds and tests on.

# ---- build ----
FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake make gcc libc6-dev pkg-config binutils \
      libcurl4-openssl-dev libssl-dev libyaml-dev libjansson-dev libwebsockets-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No tests here (they need cmocka, network namespaces and the API test double): CI runs them.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DPILLION_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && strip --strip-unneeded /build/bin/pillion-operator /build/bin/pillion-webhook /build/bin/pillion-proxy \
      /build/bin/pillion-init /build/bin/pillionctl

# ---- the shared runtime: glibc from the base, the libraries the binaries link, nothing else ----
FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libcurl4 libssl3 libyaml-0-2 libjansson4 libwebsockets17 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
# Every program runs from its exec-form ENTRYPOINT: no shell is involved at run time.

# ---- pillion-operator: the control plane (Kubernetes client over libcurl, the mesh CA) ----
FROM runtime AS operator
COPY --from=build /build/bin/pillion-operator /usr/local/bin/pillion-operator
USER 65532:65532
EXPOSE 15440
ENTRYPOINT ["/usr/local/bin/pillion-operator"]

# ---- pillion-webhook: the mutating admission webhook (libwebsockets, OpenSSL) ----
FROM runtime AS webhook
COPY --from=build /build/bin/pillion-webhook /usr/local/bin/pillion-webhook
USER 65532:65532
EXPOSE 9443
ENTRYPOINT ["/usr/local/bin/pillion-webhook"]

# ---- pillion-proxy: the data plane; UID/GID 1407, which the redirect rules exempt ----
FROM runtime AS proxy
COPY --from=build /build/bin/pillion-proxy /usr/local/bin/pillion-proxy
USER 1407:1407
EXPOSE 15401 15406 15420
ENTRYPOINT ["/usr/local/bin/pillion-proxy"]

# ---- pillion-init: installs the redirect rules, then exits. Root (the injected container gets
# NET_ADMIN and NET_RAW); it picks the backend the node uses and runs iptables-nft-restore or
# iptables-legacy-restore (and the ip6tables ones) itself, by execvp: the iptables package has
# both, iproute2 is there for people debugging a pod's network from this image. ----
FROM debian:bookworm-slim AS init
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=build /build/bin/pillion-init /usr/local/bin/pillion-init
USER 0:0
ENTRYPOINT ["/usr/local/bin/pillion-init"]
