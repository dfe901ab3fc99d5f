/* The policy model's API: decode and validate objects, index them, render a pod's proxy config. No I/O. */
#ifndef PILLION_MODEL_MODEL_H
#define PILLION_MODEL_MODEL_H

#include <jansson.h>

#include "base/arena.h"
#include "model/model-t.h"

/* One decoded Kubernetes object. Everything it points to lives in the arena given to pl_object_decode. */
typedef struct pl_object {
	pl_kind kind;
	const char *kind_name;       /* as written, "" when absent */
	const char *name;            /* best effort, for messages, even when invalid */
	const char *namespace;
	bool valid;
	pl_errors errors;
	union {
		pl_traffic_policy *policy;
		pl_mesh_identity *identity;
		pl_service *service;
		pl_pod *pod;
	} u;
} pl_object;

/* The kind of a document by apiVersion and kind; Pillion kinds are recognised by group or kind. */
pl_kind pl_object_kind(const json_t *doc);
/*
 * Decodes doc into obj, validating Pillion kinds strictly (every rule of the
 * reference, every error collected with its field path) and reading Services and
 * Pods leniently (only the fields the model uses, type-checked). Defaults are
 * applied. Returns obj->valid.
 */
bool pl_object_decode(pl_arena *a, const json_t *doc, pl_object *obj);

/* Label selector helpers. */
bool pl_selector_empty(const pl_selector *s);
bool pl_selector_matches(const pl_selector *s, const pl_labels *labels);
/* Service-style selector: every pair in sel is in labels; an empty sel matches nothing. */
bool pl_labels_subset(const pl_labels *sel, const pl_labels *labels);
const char *pl_labels_get(const pl_labels *l, const char *key);

const char *pl_mtls_mode_name(pl_mtls_mode m);
const char *pl_method_name(unsigned bit);

/*
 * An index over policies, identities and Services so that rendering one pod costs
 * what applies to it, not the size of the cluster. Objects are borrowed and must
 * outlive the index; only valid objects may be added.
 */
typedef struct pl_index pl_index;

pl_index *pl_index_new(void);
void pl_index_free(pl_index *ix);
void pl_index_add_policy(pl_index *ix, const pl_traffic_policy *p);
void pl_index_add_identity(pl_index *ix, const pl_mesh_identity *m);
void pl_index_add_service(pl_index *ix, const pl_service *s);
/* The policy that governs service ns/name on port (0 = the whole Service), or NULL. */
const pl_traffic_policy *pl_index_policy_for(const pl_index *ix, const char *ns, const char *name, int port);
/* The MeshIdentity that applies to pod, or NULL when the defaults apply. */
const pl_mesh_identity *pl_index_identity_for(const pl_index *ix, const pl_pod *pod);

/*
 * Renders pod's proxy config: deterministic (same inputs, same bytes through
 * pl_json_dump_canonical), with "hash" = "sha256:" + hex of the canonical bytes of
 * everything else. Caller owns the returned reference.
 */
json_t *pl_render_pod(const pl_index *ix, const pl_pod *pod);

/*
 * The client-side policies exported to namespace ns (kind OutboundPolicies), as pl_render_pod
 * renders them under "outbound", hashed the same way. The operator writes them once per
 * namespace (outbound.json of pillion-mesh) for pods whose proxy reads them there
 * (pl_pod.outbound_from_mesh); their own config then has no "outbound".
 */
json_t *pl_render_outbound(const pl_index *ix, const char *ns);
/* Whether a pod spec's proxy (container or native-sidecar init container pillion-proxy) was
 * started with --outbound (pl_pod.outbound_from_mesh). */
bool pl_proxy_reads_outbound(const json_t *spec);
/* Reads an OutboundPolicies document strictly, hash checked, like pl_proxy_config_decode. */
bool pl_outbound_decode(pl_arena *a, const json_t *doc, pl_outbound_set *set, pl_errors *errs);
/*
 * What a proxy runs, as one hash: its config's hash when it takes its client-side policies from
 * it (out_hash NULL or ""), else sha256 over both. The operator compares the rendered and the
 * reported value with it.
 */
void pl_effective_hash(const char *config_hash, const char *out_hash, char out[80]);

/*
 * Reads a rendered proxy config (as pl_render_pod writes it) strictly: every field
 * type-checked, unknown fields refused, and "hash" checked against the content so a
 * truncated or hand-edited file is refused. Errors go to errs with field paths.
 * Everything cfg points to lives in a. Returns true when valid.
 */
bool pl_proxy_config_decode(pl_arena *a, const json_t *doc, pl_proxy_config *cfg, pl_errors *errs);
/* sha256 content hash of a rendered config: "sha256:" + hex over the canonical bytes without "hash". */
void pl_proxy_config_hash(const json_t *doc, char out[80]);
/* A content hash as people read it: the first 12 hex digits after "sha256:" (the whole string's
 * first 12 characters without a prefix), "-" for none. Returns out. */
const char *pl_short_hash(const char *hash, char out[16]);

/*
 * Reads a mesh directory (kind MeshDirectory) strictly, like pl_proxy_config_decode:
 * addresses must be IPv4 or IPv6 literals (stored in canonical form), ports 1..65535,
 * and an optional "hash" must match. Builds the lookup tables; free them with
 * pl_mesh_dir_free (everything else lives in a).
 */
bool pl_mesh_dir_decode(pl_arena *a, const json_t *doc, pl_mesh_dir *dir, pl_errors *errs);
void pl_mesh_dir_free(pl_mesh_dir *dir);
/*
 * The identities expected at addr:port (addr in any textual form inet_pton takes):
 * a Service's list, else the pod's single identity. NULL when the destination is
 * not in the mesh (plain passthrough). *n gets the count.
 */
const char *const *pl_mesh_dir_lookup(const pl_mesh_dir *dir, const char *addr, int port, size_t *n);
/* The Service listed at addr:port, or NULL (a pod address, or not in the mesh). */
const pl_mesh_service *pl_mesh_dir_service_at(const pl_mesh_dir *dir, const char *addr, int port);
/* The Service named "namespace/name", or NULL. */
const pl_mesh_service *pl_mesh_dir_service(const pl_mesh_dir *dir, const char *qname);
/* Whether connections to port are opaque: relayed as bytes, never inspected for HTTP. */
bool pl_mesh_dir_opaque(const pl_mesh_dir *dir, int port);
/* The default opaque ports (server-speaks-first protocols), used when the file lists none. */
extern const int pl_default_opaque_ports[];
extern const size_t pl_default_opaque_nports;

/* "STRICT", "PERMISSIVE", "DISABLED", indexed by pl_mtls_mode. */
extern const char *const pl_mtls_names[];

/* The pod's port a Service port sends to (a named targetPort resolved), or 0. */
int pl_pod_target_port(const pl_pod *pod, const pl_service_port *sp);
/*
 * The mesh directory (kind MeshDirectory) for the pods of namespace ns: every Service
 * with a cluster IP that selects a meshed pod (injected, with an IP, not finished), with
 * its TCP ports, the sorted SPIFFE IDs of those pods and its endpoints (its ready pods, with
 * their port for each Service port: meshed ones, and pods given without an id, which callers
 * dial in plaintext as they are not in "pods", as Istio's auto mTLS does per endpoint), and
 * every meshed pod with its addresses and identity. Pods in mTLS mode DISABLED are left out of identities and pods (callers
 * send them plaintext). Deterministic bytes; "hash" as for the proxy config. Caller owns
 * the result.
 */
json_t *pl_render_mesh(const pl_index *ix, const pl_pod *const *pods, size_t npods, const char *ns);
/* The pod's SPIFFE ID (from the MeshIdentity that applies, or the defaults) and mTLS mode. */
bool pl_pod_identity(const pl_index *ix, const pl_pod *pod, char *out, size_t outlen, pl_mtls_mode *mode);

#endif
