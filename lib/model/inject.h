/* Sidecar injection as a pure function: a Pod (JSON) in, a JSONPatch and the decision out. Shared by
 * pillion-webhook and `pillionctl inject`; no I/O, no clock (the caller passes the random id). */
#ifndef PILLION_MODEL_INJECT_H
#define PILLION_MODEL_INJECT_H

#include <jansson.h>
#include <stdbool.h>

#define PL_INJECT_ANNOTATION "pillion.dev/inject"          /* enabled | disabled, on the pod */
#define PL_INJECT_STATUS_ANNOTATION "pillion.dev/injected" /* what was injected (JSON), set by injection */
#define PL_INJECT_NS_LABEL "pillion.dev/inject"            /* =enabled on a namespace */

/* What the injected containers assume; the same defaults as pillion-init and pillion-proxy. */
#define PL_INJECT_PROXY_UID     1407
#define PL_INJECT_OUTBOUND_PORT 15401
#define PL_INJECT_INBOUND_PORT  15406
#define PL_INJECT_ADMIN_PORT    15420
/* Where the proxy image puts the binary (Dockerfile): the postStart hook runs it. */
#define PL_INJECT_PROXY_PATH    "/usr/local/bin/pillion-proxy"
/* AUTO picks a native sidecar from this minor version on: SidecarContainers is alpha (off by default)
 * in 1.28, where the API server drops restartPolicy and the proxy would block the pod in Init forever;
 * beta and on by default from 1.29. */
#define PL_INJECT_NATIVE_SIDECAR_MIN_MINOR 29
/* Template mode names the per-pod volumes' sources with these until admission fills in the id. */
#define PL_INJECT_PENDING_CONFIG "pillion-awaiting-webhook"
#define PL_INJECT_PENDING_TLS    "pillion-awaiting-webhook-tls"

typedef enum pl_sidecar_mode {
	PL_SIDECAR_AUTO = 0,   /* native when the cluster is >= 1.29 (server_minor, see above), else a regular container */
	PL_SIDECAR_NATIVE,     /* initContainers with restartPolicy: Always */
	PL_SIDECAR_CONTAINER,  /* first entry of containers */
} pl_sidecar_mode;

typedef struct pl_inject_opts {
	const char *proxy_image;  /* e.g. "pillion/proxy:0.1.0" */
	const char *init_image;   /* e.g. "pillion/init:0.1.0" */
	const char *id;           /* 32 lowercase hex chars (128 random bits) for pillion.dev/id; the caller draws it */
	pl_sidecar_mode mode;     /* overridden by the pod annotation pillion.dev/native-sidecar: "true" | "false" */
	int server_minor;         /* the API server's minor version (1.<minor>), 0 when unknown (AUTO then means container) */
	bool namespace_enabled;   /* the namespace carries pillion.dev/inject=enabled (the webhook's namespaceSelector
				   * guarantees it; pillionctl passes --namespace-enabled, default true) */
	bool template_mode;       /* pillionctl on manifests (workload templates and Pods): inject everything but
				   * the id, which only admission can give each pod (id is ignored). The webhook
				   * then completes such a pod: reason "completed". See docs/injection.md. */
} pl_inject_opts;

typedef struct pl_inject_result {
	bool injected;
	const char *reason;  /* a stable token: "injected", "completed" (a template-injected pod given its id and
			      * per-pod volumes), "already-injected", "disabled-by-annotation",
			      * "namespace-not-enabled", "host-network", "not-a-pod", "invalid-pod",
			      * "invalid-options" (a caller bug: no image, or an id that is not a pod id) */
	json_t *patch;       /* RFC 6902 JSONPatch array (owned; NULL unless injected, which "completed" is too) */
	json_t *warnings;    /* array of strings for AdmissionReview warnings (owned, never NULL) */
	char error[256];     /* for "invalid-pod": which field, e.g. "spec.containers: must be an array" */
} pl_inject_result;

/* The minor version of a Kubernetes version string, for server_minor: "1.29", "v1.29.3",
 * "1.29+" and "v1.29.3-eks-..." give 29; "" and "unknown" give 0. -1 for anything else. */
int pl_inject_server_minor(const char *version, int *minor);

/* Decides and, when injecting, builds the patch against pod as given. Always fills out (free with
 * pl_inject_result_clear); returns 0, or -1 only on out-of-memory. Never aborts on odd input. */
int pl_inject_pod(const json_t *pod, const pl_inject_opts *opts, pl_inject_result *out);
void pl_inject_result_clear(pl_inject_result *r);

/* Applies a JSONPatch produced above (add/replace/remove/test on object members and array
 * indexes, "-" append) to doc in place: used by pillionctl and the tests. 0, or -1 with err set. */
int pl_json_patch_apply(json_t *doc, const json_t *patch, char *err, size_t errlen);

#endif
