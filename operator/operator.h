/* pillion-operator's shared state: settings, caches, the queue, the CA, metrics; one reconciler per file. */
#ifndef PILLION_OPERATOR_H
#define PILLION_OPERATOR_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base/arena.h"
#include "base/bucket.h"
#include "base/hmap.h"
#include "ctrl/reflector.h"
#include "ctrl/store.h"
#include "ctrl/workqueue.h"
#include "kube/kube.h"
#include "model/model.h"
#include "pki/ca.h"

#define OP_FIELD_MANAGER "pillion-operator"
#define OP_MANAGED_BY "app.kubernetes.io/managed-by"
#define OP_HASH_ANNOTATION "pillion.dev/content-hash"
#define OP_MESH_CONFIGMAP "pillion-mesh"
/* The API server refuses a ConfigMap whose data and binaryData exceed 1 MiB. */
#define OP_CONFIGMAP_MAX (1024 * 1024)
/* Mesh-directory rounds are at least this far apart, so a rollout's pod events coalesce. */
#define OP_MESH_WINDOW_MIN_NS 500000000LL
#define OP_MESH_WINDOW_MAX_NS 30000000000LL
/* The first question to a pod's proxy after its config changed: time for the kubelet and the proxy. */
#define OP_SYNC_FIRST_NS 300000000LL
/* A policy's Programmed is counted again this long after a pod joins its reach (coalesced). */
#define OP_STATUS_RECOUNT_NS 1000000000LL

typedef struct op_settings {
	const char *kubeconfig;
	const char *context;
	const char *namespace;      /* the control plane's: CA Secret and Lease live here */
	const char *ca_secret;      /* pillion-ca */
	const char *lease_name;     /* pillion-operator */
	const char *identity;       /* this replica's name in the Lease (hostname) */
	const char *metrics_addr;   /* 0.0.0.0 */
	int metrics_port;           /* 15440 */
	int workers;                /* 2 */
	bool leader_elect;
	int64_t lease_duration_s, renew_deadline_s, retry_period_s;
	double qps;
	int burst;
	bool webhook;               /* the webhook's serving certificate and caBundle (true) */
	const char *webhook_service; /* pillion-webhook: the certificate's DNS names; Secret <service>-tls */
	const char *webhook_config; /* pillion-webhook: the MutatingWebhookConfiguration whose caBundle is kept */
	int64_t webhook_cert_ttl_s; /* 90 days; renewed at 2/3 of it */
	size_t mesh_compress_above; /* 512 KiB: a larger directory is written gzipped (mesh.json.gz) */
} op_settings;

enum op_store {
	ST_PODS, ST_SERVICES, ST_NAMESPACES, ST_POLICIES, ST_IDENTITIES, ST_CONFIGMAPS, ST_SECRETS,
	ST_WEBHOOKCONFIGS, /* only the one named by --webhook-config-name; no reflector with --webhook=false */
	ST__N
};

/* Policies, identities and Services decoded into an index; rebuilt when one of them changes. */
typedef struct op_snapshot {
	int refs;
	pl_arena arena;
	pl_index *ix;
	json_t *held;   /* the objects decoded: the model borrows some of their strings */
	uint64_t gen;   /* a new number each time the snapshot is rebuilt */
} op_snapshot;

#define OP_RECONCILE_BUCKETS 10

typedef struct op_metrics {
	uint64_t reconciles_ok, reconciles_err, reconcile_ns_total;
	uint64_t reconcile_le[OP_RECONCILE_BUCKETS]; /* reconciles that took <= op_reconcile_bounds[i] */
	uint64_t configmaps_written, secrets_written, mesh_written, status_written, webhook_configs_written;
	uint64_t certificates_issued;
	uint64_t pods_refreshed;    /* pod annotation patches that make the kubelet project the volumes now */
	uint64_t events_posted, events_dropped;
	int64_t webhook_cert_not_after; /* unix seconds; 0 until known */
} op_metrics;

#define OP_EVENT_BURST 50
#define OP_EVENT_PER_S 5.0

#define OP_API_SERIES 64

/* API requests by verb and HTTP code (0: no response), as the kube client reports them. */
typedef struct op_api_series {
	char verb[12];
	long code;
	uint64_t n;
	double seconds;
} op_api_series;

typedef struct op {
	op_settings set;
	pl_kube_config kcfg;
	pl_store *st[ST__N];
	pl_reflector *refl[ST__N];
	pl_wq *q;
	pl_wq *sq;                 /* questions to proxies (sync/NS/POD): own workers, so a slow or
	                            * rate-limited GET never holds back a write */
	pl_ca *ca;                  /* immutable once loaded */
	char *bundle;               /* ca.crt for the pods */
	pthread_mutex_t mu;         /* snapshot, metrics */
	pthread_mutex_t snap_build_mu; /* one snapshot build at a time; taken before mu */
	op_snapshot *snap;
	bool snap_dirty;
	uint64_t snap_gen;
	pl_hmap rendered;           /* "ns/name" -> struct op_rendered (rendered.c), under mu */
	pl_hmap certs_ok;           /* "ns/name" of a Secret -> struct cert_ok (reconcile.c), under mu */
	pl_hmap applied;            /* "ns/name" -> struct op_applied (proxysync.c), under mu */
	pl_hmap mesh_hash;          /* namespace -> hash of the pillion-mesh it holds (reconcile.c), under mu */
	bool mesh_pending;          /* a "mesh" round is scheduled (controller.c), under mu */
	int64_t mesh_window_ns;     /* how far apart mesh rounds are: grows with the pods each round refreshes */
	int64_t mesh_last_ns;       /* when the last round started (op_mono_ns) */
	op_metrics m;
	op_api_series api[OP_API_SERIES];
	int napi;
	pl_bucket events;           /* the Event budget (reconcile.c), under mu */
	char webhook_secret[300];   /* <webhook_service>-tls */
	/* webhook_cert.c; the key "webhook" runs on one worker at a time, so no lock: */
	bool webhook_config_absent; /* said once in the log until the configuration appears */
	char webhook_patched_rv[PL_KUBE_RV_MAX]; /* the configuration's version our last caBundle patch was made against */
	volatile bool stop;
	volatile bool leader;
	volatile bool ready;        /* the leader's CA is loaded: it reconciles */
	volatile bool synced;       /* caches synced: /readyz answers 200 on a standby too, as controller-runtime's does */
} op;

/* controller.c: caches, event handlers (object change -> keys), workers. */
int op_start_caches(op *o);
bool op_caches_synced(op *o);
void op_stop_caches(op *o);
void op_enqueue_all(op *o);
int op_run_workers(op *o);      /* blocks until o->stop */
op_snapshot *op_snapshot_get(op *o);
void op_snapshot_put(op *o, op_snapshot *s);

/* reconcile.c: "pod/<ns>/<name>", "mesh", "status/<kind>/<ns>/<name>", "webhook". 0, or -errno to retry with backoff;
 * *requeue_s > 0 asks for another run later (certificate renewal). */
int op_reconcile(op *o, pl_kube *k, const char *key, int64_t *requeue_s);
/* An Event about obj (apiVersion, kind, metadata), within the shared budget: best effort. */
void op_post_event(op *o, pl_kube *k, const json_t *about, const char *type, const char *reason, const char *msg);

/* webhook_cert.c: key "webhook": the webhook's serving certificate Secret and the configuration's caBundle. */
#define OP_WEBHOOK_KEY "webhook"
int op_reconcile_webhook(op *o, pl_kube *k, int64_t *requeue_s);

/* ca.c: the mesh CA from its Secret, created when absent. */
int op_ca_bootstrap(op *o, pl_kube *k);

/* A kubernetes.io/tls Secret's tls.crt, tls.key and ca.crt, base64-decoded (each NULL when absent
 * or not base64). op_tls_pems_clear wipes the key. */
typedef struct op_tls_pems {
	char *crt, *key, *ca;
	size_t crtlen, keylen, calen;
} op_tls_pems;
void op_tls_pems_decode(const json_t *secret, op_tls_pems *p);
void op_tls_pems_clear(op_tls_pems *p);
/* A kubernetes.io/tls Secret object holding an issued leaf, its key and the mesh bundle as ca.crt;
 * metadata is stolen. The base64 copy of the key is wiped once packed. */
json_t *op_tls_secret(const op *o, json_t *metadata, const pl_issued *is);
/* Whether a leaf valid from nb to na is kept at now: before its renewal time (na - renew_before_s,
 * put in *renew_at) and no longer-lived than ttl_s allows (a shortened TTL applies at once). */
bool op_cert_times_ok(int64_t nb, int64_t na, int64_t ttl_s, int64_t renew_before_s, int64_t now, int64_t *renew_at);

/* leader.c: a coordination.k8s.io/v1 Lease. Blocks until acquired (or o->stop); then renews in a thread and ends the process when the lease is lost. */
int op_leader_acquire(op *o);
void op_leader_release(op *o); /* on SIGTERM: a standby need not wait for expiry */

/* rendered.c: each pod's last render (hash, the policies in it, its MeshIdentity) and the snapshot it used. */
void op_rendered_record(op *o, const char *ns, const char *name, const json_t *cfg, const char *identity,
			uint64_t gen);
void op_rendered_forget(op *o, const char *ns, const char *name);
/* 1 when the pod's render at gen involves policy (or, policy NULL, has MeshIdentity identity), 0 when not,
 * -1 when there is no render at gen; the render's hash goes to hash. */
int op_rendered_lookup(op *o, const char *ns, const char *name, uint64_t gen, const char *policy,
		       const char *identity, char *hash, size_t hashlen);
/* Whether the pod's render against the current snapshot has this hash (a ConfigMap event that needs no work). */
bool op_rendered_current(op *o, const char *ns, const char *name, const char *hash);
void op_rendered_free(op *o);
/* The pod's last render's hash, whatever the snapshot; false when it has none. */
bool op_rendered_hash(op *o, const char *ns, const char *name, char *hash, size_t len);

/* proxysync.c: key "sync/<ns>/<name>": asks the pod's proxy (GET /status through pods/proxy) which
 * config it runs; polled with back-off until it is the rendered one. */
int op_reconcile_sync(op *o, pl_kube *k, const char *ns, const char *name, int64_t *requeue_s);
/* The config hash the pod's proxy last said it runs; false when it has not answered. */
bool op_applied_get(op *o, const char *ns, const char *name, char *hash, size_t len);
void op_applied_forget(op *o, const char *ns, const char *name);
/* Whether to queue a question to the pod's proxy: true once until that question was asked. */
bool op_applied_ask(op *o, const char *ns, const char *name);
void op_applied_free(op *o);
void op_certs_ok_forget(op *o, const char *ns, const char *name); /* reconcile.c */
void op_certs_ok_free(op *o);
void op_mesh_hash_free(op *o);  /* reconcile.c */
/* controller.c: a mesh-directory round, within the coalescing window (o->mesh_window_ns). */
void op_schedule_mesh(op *o);

static inline int64_t op_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* http.c: /healthz, /readyz, /metrics. */
extern const double op_reconcile_bounds[OP_RECONCILE_BUCKETS];
void op_api_observe(void *ctx, const char *verb, long code, double seconds); /* a pl_kube_observer */
int op_http_start(op *o);

#endif
