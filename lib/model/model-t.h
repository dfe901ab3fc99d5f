/* Types of the policy model: TrafficPolicy, MeshIdentity, the Kubernetes objects they refer to, and a pod's proxy config. */
#ifndef PILLION_MODEL_MODEL_T_H
#define PILLION_MODEL_MODEL_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hmap.h"

#define PL_API_VERSION "pillion.dev/v1alpha1"
#define PL_DEFAULT_NAMESPACE "default"
#define PL_DEFAULT_SERVICE_ACCOUNT "default"
#define PL_ANNOTATION_ID "pillion.dev/id"
#define PL_PROXY_CONTAINER "pillion-proxy"
/* The app containers' original HTTP probes (JSON: {"container": {"readinessProbe": {...}}}), kept by
 * injection, which points the probes at the proxy's admin port instead. */
#define PL_ANNOTATION_PROBES "pillion.dev/probes"
/* GET /app-health/<container>/<liveness|readiness|startup> on the admin port runs that probe. */
#define PL_PROBE_PATH_PREFIX "/app-health/"
/* What the operator last projected for the pod, "config=<12 hex>,mesh=<12 hex>,cert=<notAfter>":
 * changing a pod's annotation makes the kubelet refresh its ConfigMap and Secret volumes at once
 * instead of on its next periodic sync (about a minute). */
#define PL_ANNOTATION_CONFIG_HASH "pillion.dev/config-hash"
/* On pillion-mesh: the content hashes of its mesh.json and outbound.json (its content-hash covers both). */
#define PL_ANNOTATION_MESH_DIR_HASH "pillion.dev/mesh-hash"
#define PL_ANNOTATION_OUTBOUND_HASH "pillion.dev/outbound-hash"

/* Every string below is owned by the pl_objset arena that holds the object. */
typedef struct pl_strv {
	size_t n;
	const char **v;
} pl_strv;

typedef struct pl_label {
	const char *key;
	const char *value;
} pl_label;

typedef struct pl_labels {
	size_t n;
	pl_label *v;     /* sorted by key, keys unique */
} pl_labels;

typedef enum pl_sel_op {
	PL_SEL_IN,
	PL_SEL_NOT_IN,
	PL_SEL_EXISTS,
	PL_SEL_DOES_NOT_EXIST,
} pl_sel_op;

typedef struct pl_sel_expr {
	const char *key;
	pl_sel_op op;
	pl_strv values;
} pl_sel_expr;

/* A metav1.LabelSelector; with no labels and no expressions it selects everything. */
typedef struct pl_selector {
	pl_labels match_labels;
	size_t nexpr;
	pl_sel_expr *expr;
} pl_selector;

typedef struct pl_meta {
	const char *name;
	const char *namespace;
	int64_t generation;
	int64_t created;         /* creationTimestamp, Unix seconds; INT64_MAX when unknown */
	pl_labels labels;
	pl_labels annotations;
} pl_meta;

typedef enum pl_mtls_mode {
	PL_MTLS_STRICT,
	PL_MTLS_PERMISSIVE,      /* the default */
	PL_MTLS_DISABLED,
} pl_mtls_mode;

typedef struct pl_mesh_identity {
	pl_meta meta;
	pl_selector selector;
	const char *trust_domain;
	int64_t ttl_ns;
	int64_t renew_before_ns;
	pl_mtls_mode mtls_mode;
} pl_mesh_identity;

/* HTTP methods as bits, so a set of methods is one integer. */
enum {
	PL_METHOD_GET = 1 << 0,
	PL_METHOD_HEAD = 1 << 1,
	PL_METHOD_POST = 1 << 2,
	PL_METHOD_PUT = 1 << 3,
	PL_METHOD_DELETE = 1 << 4,
	PL_METHOD_CONNECT = 1 << 5,
	PL_METHOD_OPTIONS = 1 << 6,
	PL_METHOD_TRACE = 1 << 7,
	PL_METHOD_PATCH = 1 << 8,
	PL_METHOD_COUNT = 9,
};

typedef enum pl_path_kind { PL_PATH_ANY, PL_PATH_EXACT, PL_PATH_PREFIX } pl_path_kind;
typedef enum pl_header_kind { PL_HEADER_EXACT, PL_HEADER_PRESENT, PL_HEADER_ABSENT } pl_header_kind;

typedef struct pl_header_match {
	const char *name;
	pl_header_kind kind;
	const char *value;       /* PL_HEADER_EXACT only */
} pl_header_match;

typedef struct pl_route_match {
	pl_path_kind path_kind;
	const char *path;
	unsigned method;         /* one PL_METHOD_ bit, 0 = any */
	size_t nheaders;
	pl_header_match *headers;
} pl_route_match;

typedef struct pl_backend {
	const char *name;        /* a Service in the policy's namespace */
	int port;                /* 0: the port the caller dialed */
	int weight;
} pl_backend;

enum {
	PL_RETRY_5XX = 1 << 0,
	PL_RETRY_GATEWAY_ERROR = 1 << 1,
	PL_RETRY_CONNECT_FAILURE = 1 << 2,
	PL_RETRY_RESET = 1 << 3,
	/* gRPC: an answer whose grpc-status is this code (HTTP/2 streams, trailers-only answers) */
	PL_RETRY_GRPC_CANCELLED = 1 << 4,
	PL_RETRY_GRPC_DEADLINE_EXCEEDED = 1 << 5,
	PL_RETRY_GRPC_INTERNAL = 1 << 6,
	PL_RETRY_GRPC_RESOURCE_EXHAUSTED = 1 << 7,
	PL_RETRY_GRPC_UNAVAILABLE = 1 << 8,
};

typedef struct pl_retries {
	bool set;
	int attempts;
	int64_t per_try_timeout_ns;  /* 0: none */
	unsigned retry_on;           /* PL_RETRY_ bits */
	int budget_percent;
	int budget_min_per_second;
	int64_t budget_window_ns;
} pl_retries;

typedef struct pl_fault {
	bool delay_set;
	int delay_percent;
	int64_t delay_ns;
	bool abort_set;
	int abort_percent;
	int abort_status;
} pl_fault;

typedef struct pl_route {
	const char *name;
	pl_route_match match;
	size_t nbackends;
	pl_backend *backends;
	int64_t timeout_ns;          /* 0: none */
	pl_retries retries;
	pl_fault fault;
} pl_route;

typedef struct pl_circuit_breaker {
	bool set;
	int consecutive_failures;
	int64_t base_ejection_ns;
	int64_t max_ejection_ns;
	int max_pending;             /* 0: unlimited */
	int max_connections;         /* 0: unlimited */
} pl_circuit_breaker;

typedef struct pl_authz_rule {
	const char *name;
	pl_strv identities;
	pl_strv namespaces;
	pl_strv paths;
	unsigned methods;            /* PL_METHOD_ bits, 0 = any */
} pl_authz_rule;

typedef struct pl_authorization {
	bool set;
	size_t nrules;
	pl_authz_rule *rules;
} pl_authorization;

typedef struct pl_rate_limit {
	bool set;
	int requests_per_second;
	int burst;
} pl_rate_limit;

typedef enum { PL_LOG_ALL, PL_LOG_ERRORS } pl_log_filter;

typedef struct pl_access_log {
	bool enabled;                /* off unless a policy switches it on */
	pl_log_filter filter;
} pl_access_log;

typedef enum { PL_TRACE_ADD, PL_TRACE_PROPAGATE } pl_trace_mode;

typedef struct pl_tracing {
	bool set;                    /* false: the defaults (Add, 1%) */
	pl_trace_mode mode;
	double sampling_percent;     /* 0..100: traces the proxy starts that are flagged sampled */
} pl_tracing;

typedef struct pl_traffic_policy {
	pl_meta meta;
	const char *target_name;     /* a Service in the policy's namespace */
	int target_port;             /* 0: every port */
	pl_strv export_to;           /* "*", "." or namespaces */
	size_t nroutes;              /* at least 1 after defaulting */
	pl_route *routes;
	pl_circuit_breaker circuit_breaker;
	pl_authorization authorization;
	pl_rate_limit rate_limit;
	pl_access_log access_log;
	pl_tracing tracing;
} pl_traffic_policy;

/* The parts of a v1 Service the model needs. */
typedef struct pl_service_port {
	const char *name;
	int port;
	int target_port;             /* 0 when named */
	const char *target_port_name;
	const char *protocol;
} pl_service_port;

typedef struct pl_service {
	pl_meta meta;
	bool has_selector;           /* a Service without a selector selects no pod */
	pl_labels selector;
	size_t nports;
	pl_service_port *ports;
	pl_strv cluster_ips;
} pl_service;

typedef struct pl_container_port {
	const char *name;
	int port;
} pl_container_port;

/* A kubelet HTTP probe of the pod (httpGet, scheme HTTP, to the pod's own address). */
/* An app container's HTTP probe, which the proxy runs on loopback for the kubelet. */
typedef struct pl_probe {
	const char *container;
	const char *kind;            /* "liveness", "readiness" or "startup" */
	int port;                    /* resolved when the probe names a container port */
	const char *path;            /* as the kubelet requests it, query included; "/" when the probe gives none;
	                              * NULL for a tcpSocket or gRPC probe */
	bool tcp;                    /* a tcpSocket probe: passes when the port accepts a connection */
	bool grpc;                   /* a gRPC probe: grpc.health.v1.Health/Check answers SERVING */
	const char *grpc_service;    /* the service it asks about ("" for the server as a whole) */
	pl_labels headers;           /* httpHeaders, in the order given (not sorted here) */
	int timeout_s;               /* timeoutSeconds, 1 by default */
} pl_probe;

/* The parts of a v1 Pod the model needs. */
typedef struct pl_pod {
	pl_meta meta;
	const char *id;              /* annotation pillion.dev/id, "" when absent */
	const char *service_account;
	size_t nports;
	pl_container_port *ports;
	pl_strv ips;                 /* status.podIPs (or status.podIP); empty before scheduling */
	const char *phase;           /* status.phase, "" when absent */
	bool ready;                  /* condition Ready is True and the pod is not being deleted */
	size_t nprobes;
	pl_probe *probes;            /* distinct, in container and probe order */
	bool outbound_from_mesh;     /* its proxy takes --outbound (reads outbound.json of pillion-mesh):
	                              * its own config leaves the client-side policies out */
} pl_pod;

/* The rendered per-pod proxy config (docs/policy-model.md), as the proxy reads it. */
typedef struct pl_inbound_policy {
	int port;                    /* container port */
	const char *service;         /* "namespace/name" */
	int service_port;
	const char *policy;          /* "namespace/name" */
	pl_authorization authorization;
	pl_rate_limit rate_limit;
	pl_access_log access_log;
	pl_tracing tracing;
} pl_inbound_policy;

typedef struct pl_outbound_policy {
	const char *service;         /* "namespace/name" */
	int port;                    /* 0: every port */
	const char *policy;
	size_t nroutes;
	pl_route *routes;            /* backends[].name is "namespace/name" here */
	pl_circuit_breaker circuit_breaker;
	pl_access_log access_log;
	pl_tracing tracing;
} pl_outbound_policy;

typedef struct pl_proxy_config {
	const char *pod_namespace;
	const char *pod_name;
	const char *pod_id;
	const char *service_account;
	const char *spiffe_id;
	const char *trust_domain;
	pl_mtls_mode mtls_mode;
	int64_t ttl_ns;
	int64_t renew_before_ns;
	const char *identity_source; /* "" when the defaults apply */
	size_t ninbound;
	pl_inbound_policy *inbound;
	size_t noutbound;
	pl_outbound_policy *outbound;
	size_t nprobes;
	pl_probe *probes;            /* plaintext requests the proxy lets through to the app even under STRICT */
	const char *hash;
} pl_proxy_config;

/* A namespace's client-side policies (kind OutboundPolicies, outbound.json of pillion-mesh). */
typedef struct pl_outbound_set {
	const char *namespace;
	size_t n;
	pl_outbound_policy *v;
	const char *hash;
} pl_outbound_set;

/*
 * The mesh directory (ConfigMap pillion-mesh, one per meshed namespace): where the
 * mesh is and who answers there. An outbound connection is sent with mTLS when its
 * original destination is a listed Service address and port, or a listed pod address.
 */
/* A ready pod behind a Service: its addresses, and for each of the Service's ports (same order)
 * the pod's port, 0 when the pod does not serve it. */
typedef struct pl_mesh_endpoint {
	pl_strv addresses;
	int *ports;
} pl_mesh_endpoint;

typedef struct pl_mesh_service {
	const char *namespace;
	const char *name;
	pl_strv addresses;   /* cluster IPs, canonical text (inet_ntop) */
	size_t nports;
	int *ports;
	pl_strv identities;  /* SPIFFE IDs its pods may present */
	size_t nendpoints;   /* 0: callers dial the cluster IP (an older directory, or no ready pod) */
	pl_mesh_endpoint *endpoints;
	const char *qname;   /* "namespace/name", set by pl_mesh_dir_decode */
} pl_mesh_service;

typedef struct pl_mesh_pod {
	const char *namespace;
	const char *name;
	pl_strv addresses;
	const char *identity;
} pl_mesh_pod;

typedef struct pl_mesh_dir {
	const char *namespace;
	size_t nservices;
	pl_mesh_service *services;
	size_t npods;
	pl_mesh_pod *pods;
	size_t nopaque;
	int *opaque_ports;
	const char *hash;    /* "" when the file has none */
	/* Lookup tables built by pl_mesh_dir_decode: "addr|port" -> service, "addr" -> pod. */
	pl_hmap _by_addr_port;
	pl_hmap _by_addr;
	pl_hmap _by_name;    /* "namespace/name" -> service */
} pl_mesh_dir;

typedef enum pl_kind {
	PL_KIND_OTHER,
	PL_KIND_TRAFFIC_POLICY,
	PL_KIND_MESH_IDENTITY,
	PL_KIND_SERVICE,
	PL_KIND_POD,
	PL_KIND_PILLION_UNKNOWN,     /* group pillion.dev, a kind we do not have (a typo) */
} pl_kind;

/* One validation error: a field path and a message, both arena strings. */
typedef struct pl_error {
	const char *path;
	const char *msg;
} pl_error;

typedef struct pl_errors {
	size_t n, _cap;
	pl_error *v;
} pl_errors;

#endif
