/* The operator's caches and workers: reflectors fill stores, handlers turn changes into keys, workers reconcile keys. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "json/json.h"
#include "operator.h"

typedef struct handler_ctx {
	op *o;
	enum op_store which;
} handler_ctx;

static handler_ctx hctx[ST__N];

/* What the caches keep: managedFields are never read (they can be half an object's size). */
static void trim(json_t *obj)
{
	json_object_del(json_object_get(obj, "metadata"), "managedFields");
}

/* Our ConfigMaps are compared by their content-hash annotation, never by their data. */
static void trim_configmap(json_t *obj)
{
	trim(obj);
	json_object_del(obj, "data");
	json_object_del(obj, "binaryData");
}

static const pl_reflector_spec specs[ST__N] = {
	[ST_PODS] = {"pods", "/api/v1/pods", NULL, "v1", "Pod", 300, trim},
	[ST_SERVICES] = {"services", "/api/v1/services", NULL, "v1", "Service", 300, trim},
	[ST_NAMESPACES] = {"namespaces", "/api/v1/namespaces", NULL, "v1", "Namespace", 300, trim},
	[ST_POLICIES] = {"trafficpolicies", "/apis/pillion.dev/v1alpha1/trafficpolicies", NULL, "pillion.dev/v1alpha1",
			 "TrafficPolicy", 300, trim},
	[ST_IDENTITIES] = {"meshidentities", "/apis/pillion.dev/v1alpha1/meshidentities", NULL, "pillion.dev/v1alpha1",
			   "MeshIdentity", 300, trim},
	[ST_CONFIGMAPS] = {"configmaps", "/api/v1/configmaps", "labelSelector=" OP_MANAGED_BY "%3D" OP_FIELD_MANAGER, "v1",
			   "ConfigMap", 300, trim_configmap},
	[ST_SECRETS] = {"secrets", "/api/v1/secrets", "labelSelector=" OP_MANAGED_BY "%3D" OP_FIELD_MANAGER, "v1", "Secret",
			300, trim},
	/* The query (a field selector on the configured name) is filled in by op_start_caches. */
	[ST_WEBHOOKCONFIGS] = {"mutatingwebhookconfigurations", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
			       NULL, "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", 300, trim},
};

static const char *meta_str(const json_t *obj, const char *key)
{
	return pl_json_get_str(json_object_get(obj, "metadata"), key);
}

static void enqueue_pod(op *o, const json_t *pod)
{
	char key[600];
	const char *ns = meta_str(pod, "namespace"), *name = meta_str(pod, "name");

	if (!ns || !name)
		return;
	snprintf(key, sizeof(key), "pod/%s/%s", ns, name);
	pl_wq_add(o->q, key);
}

static void enqueue_pods_of(op *o, const char *ns)
{
	json_t *pods = pl_store_list(o->st[ST_PODS], ns), *p;
	size_t i;

	json_array_foreach(pods, i, p) enqueue_pod(o, p);
	json_decref(pods);
}

/* The pods of ns (every namespace for NULL) that take their client-side policies in their own
 * config; the others get them from outbound.json in the mesh round. */
static void enqueue_clients_of(op *o, const char *ns, const char *except_ns)
{
	json_t *pods = pl_store_list(o->st[ST_PODS], ns), *p;
	size_t i;

	json_array_foreach(pods, i, p) {
		const char *pns = meta_str(p, "namespace");
		if ((except_ns && pns && strcmp(pns, except_ns) == 0) || !pl_proxy_reads_outbound(json_object_get(p, "spec")))
			enqueue_pod(o, p);
	}
	json_decref(pods);
}

static bool injected(const json_t *pod)
{
	const char *id = pl_json_get_str(json_object_get(json_object_get(pod, "metadata"), "annotations"), PL_ANNOTATION_ID);
	return id && *id;
}

/* Adds to reach the namespaces a policy's client side reaches: its own, and spec.exportTo
 * ("*", the default: every one, returned as true). */
static bool policy_reach(const json_t *obj, pl_hmap *reach)
{
	const char *ns = meta_str(obj, "namespace");
	json_t *exp = json_object_get(json_object_get(obj, "spec"), "exportTo"), *e;
	size_t i;

	if (!exp)
		return true;
	json_array_foreach(exp, i, e) if (json_is_string(e) && strcmp(json_string_value(e), "*") == 0) return true;
	if (ns)
		pl_hmap_put(reach, ns, (void *)1);
	json_array_foreach(exp, i, e) if (json_is_string(e) && strcmp(json_string_value(e), ".") != 0)
		pl_hmap_put(reach, json_string_value(e), (void *)1);
	return false;
}

/* Each pod the old or the new policy reaches, once: every pod of its own namespace (its target's
 * pods are there), and elsewhere the clients whose own config holds client-side policies. */
static void enqueue_policy_reach(op *o, const json_t *obj, const json_t *old)
{
	pl_hmap reach = PL_HMAP_INIT;
	size_t it = 0;
	pl_hmap_slot *sl;
	const char *own = meta_str(obj, "namespace");

	if (policy_reach(obj, &reach) || (old && policy_reach(old, &reach))) {
		enqueue_clients_of(o, NULL, own);
	} else {
		while ((sl = pl_hmap_next(&reach, &it)))
			enqueue_clients_of(o, sl->key, own);
	}
	pl_hmap_free(&reach);
}

static bool same(const json_t *a, const json_t *b)
{
	return a == b || (a && b && json_equal(a, b));
}

/* Leading and trailing edge: the first change after a quiet window is written at once (a new
 * namespace's first pod finds its directory at its first mount), later ones wait for the window. */
void op_schedule_mesh(op *o)
{
	int64_t now = op_mono_ns();

	pthread_mutex_lock(&o->mu);
	bool first = !o->mesh_pending;
	o->mesh_pending = true;
	int64_t delay = o->mesh_last_ns + o->mesh_window_ns - now;
	pthread_mutex_unlock(&o->mu);
	if (first)
		pl_wq_add_after(o->q, "mesh", delay > 0 ? delay : 0);
}

/* A pod update that only our own refresh annotation (or the version) changed: nothing to do. */
static bool only_refreshed(const json_t *obj, const json_t *old)
{
	if (!old)
		return false;
	json_t *a = json_deep_copy(obj), *b = json_deep_copy(old);
	bool r = false;
	if (a && b) {
		json_t *ma = json_object_get(a, "metadata"), *mb = json_object_get(b, "metadata");
		json_object_del(ma, "resourceVersion");
		json_object_del(mb, "resourceVersion");
		json_object_del(json_object_get(ma, "annotations"), PL_ANNOTATION_CONFIG_HASH);
		json_object_del(json_object_get(mb, "annotations"), PL_ANNOTATION_CONFIG_HASH);
		r = json_equal(a, b);
	}
	json_decref(a);
	json_decref(b);
	return r;
}

static void on_change(void *ctx, enum pl_store_event ev, const json_t *obj, const json_t *old)
{
	handler_ctx *h = ctx;
	op *o = h->o;
	char key[600];
	const char *ns = meta_str(obj, "namespace"), *name = meta_str(obj, "name");

	switch (h->which) {
	case ST_PODS:
		if (injected(obj) || (old && injected(old))) {
			/* Our own annotation patch coming back needs nothing (only injected pods get one). */
			if (!(ev == PL_STORE_UPDATED && only_refreshed(obj, old))) {
				enqueue_pod(o, obj);
				op_schedule_mesh(o);
			}
		} else if (ns) {
			/* A pod without the proxy in a meshed namespace is an endpoint of its Services there. */
			char mkey[600];
			snprintf(mkey, sizeof(mkey), "%s/%s", ns, OP_MESH_CONFIGMAP);
			json_t *cm = pl_store_get(o->st[ST_CONFIGMAPS], mkey);
			if (cm)
				op_schedule_mesh(o);
			json_decref(cm);
		}
		break;
	case ST_SERVICES:
		/* Inbound config names the Services selecting a pod; the directory lists meshed Services. */
		if (ns)
			enqueue_pods_of(o, ns);
		op_schedule_mesh(o);
		pthread_mutex_lock(&o->mu);
		o->snap_dirty = true;
		pthread_mutex_unlock(&o->mu);
		/* A Service that comes or goes changes the ResolvedRefs of the namespace's policies. */
		if (ns && ev != PL_STORE_UPDATED) {
			json_t *pols = pl_store_list(o->st[ST_POLICIES], ns), *p;
			size_t i;
			json_array_foreach(pols, i, p) {
				snprintf(key, sizeof(key), "status/tp/%s/%s", ns, meta_str(p, "name"));
				pl_wq_add(o->q, key);
			}
			json_decref(pols);
		}
		break;
	case ST_NAMESPACES:
		break;
	case ST_POLICIES:
	case ST_IDENTITIES:
		/* Our own status write comes back as MODIFIED: with the spec and labels unchanged, no
		 * pod's config can change, so nothing is re-rendered. */
		if (old && same(json_object_get(obj, "spec"), json_object_get(old, "spec")) &&
		    same(json_object_get(json_object_get(obj, "metadata"), "labels"),
			 json_object_get(json_object_get(old, "metadata"), "labels")))
			break;
		pthread_mutex_lock(&o->mu);
		o->snap_dirty = true;
		pthread_mutex_unlock(&o->mu);
		if (h->which == ST_POLICIES) {
			enqueue_policy_reach(o, obj, old);
			/* Client-side policies also go to each namespace's outbound.json, in pillion-mesh. */
			op_schedule_mesh(o);
		} else {
			if (ns)
				enqueue_pods_of(o, ns);
			op_schedule_mesh(o);
		}
		if (ev != PL_STORE_DELETED && ns && name) {
			snprintf(key, sizeof(key), "status/%s/%s/%s", h->which == ST_POLICIES ? "tp" : "mi", ns, name);
			pl_wq_add(o->q, key);
		}
		break;
	case ST_WEBHOOKCONFIGS:
		/* Its caBundle reset by a kubectl apply, or the configuration created or deleted. */
		pl_wq_add(o->q, OP_WEBHOOK_KEY);
		break;
	case ST_CONFIGMAPS:
	case ST_SECRETS: {
		if (h->which == ST_SECRETS && o->set.webhook && ns && name && strcmp(ns, o->set.namespace) == 0 &&
		    strcmp(name, o->webhook_secret) == 0) {
			pl_wq_add(o->q, OP_WEBHOOK_KEY);
			break;
		}
		/* Ours changed or vanished: heal it from its owner. */
		if (name && strcmp(name, OP_MESH_CONFIGMAP) == 0) {
			op_schedule_mesh(o);
			break;
		}
		if (h->which == ST_SECRETS && ev == PL_STORE_DELETED && ns && name)
			op_certs_ok_forget(o, ns, name);
		json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), *r;
		size_t i;
		json_array_foreach(refs, i, r) {
			const char *kind = pl_json_get_str(r, "kind"), *owner = pl_json_get_str(r, "name");
			if (kind && owner && ns && strcmp(kind, "Pod") == 0) {
				/* Our own write coming back: it holds what the pod's current render says. */
				const char *hash = pl_json_get_str(json_object_get(json_object_get(obj, "metadata"), "annotations"),
								  OP_HASH_ANNOTATION);
				if (h->which == ST_CONFIGMAPS && ev != PL_STORE_DELETED && hash && op_rendered_current(o, ns, owner, hash))
					continue;
				snprintf(key, sizeof(key), "pod/%s/%s", ns, owner);
				pl_wq_add(o->q, key);
			}
		}
		break;
	}
	default:
		break;
	}
}

int op_start_caches(op *o)
{
	/* The one webhook configuration, by name: a field selector, which RBAC can narrow by resourceNames. */
	static char wh_query[400];
	pl_reflector_spec wh = specs[ST_WEBHOOKCONFIGS];

	snprintf(wh_query, sizeof(wh_query), "fieldSelector=metadata.name%%3D%s", o->set.webhook_config);
	wh.query = wh_query;
	for (int i = 0; i < ST__N; i++) {
		hctx[i] = (handler_ctx){o, (enum op_store)i};
		o->st[i] = pl_store_new(on_change, &hctx[i]);
	}
	for (int i = 0; i < ST__N; i++) {
		if (i == ST_WEBHOOKCONFIGS && !o->set.webhook)
			continue; /* left empty: nothing reads it */
		o->refl[i] = pl_reflector_start(&o->kcfg, i == ST_WEBHOOKCONFIGS ? &wh : &specs[i], o->st[i]);
	}
	return 0;
}

bool op_caches_synced(op *o)
{
	for (int i = 0; i < ST__N; i++)
		if (o->refl[i] && !pl_store_synced(o->st[i]))
			return false;
	return true;
}

void op_stop_caches(op *o)
{
	for (int i = 0; i < ST__N; i++)
		if (o->refl[i])
			pl_reflector_stop(o->refl[i], false);
}

void op_enqueue_all(op *o)
{
	json_t *all = pl_store_list(o->st[ST_PODS], NULL), *p;
	size_t i;
	char key[600];

	json_array_foreach(all, i, p) if (injected(p)) enqueue_pod(o, p);
	json_decref(all);
	pl_wq_add(o->q, "mesh");
	if (o->set.webhook)
		pl_wq_add(o->q, OP_WEBHOOK_KEY);
	for (int s = ST_POLICIES; s <= ST_IDENTITIES; s++) {
		all = pl_store_list(o->st[s], NULL);
		json_array_foreach(all, i, p) {
			snprintf(key, sizeof(key), "status/%s/%s/%s", s == ST_POLICIES ? "tp" : "mi", meta_str(p, "namespace"),
				 meta_str(p, "name"));
			pl_wq_add(o->q, key);
		}
		json_decref(all);
	}
}

/* --- the policy snapshot --- */

static op_snapshot *snapshot_build(op *o)
{
	op_snapshot *s = calloc(1, sizeof(*s));
	static const enum op_store kinds[] = {ST_POLICIES, ST_IDENTITIES, ST_SERVICES};

	if (!s)
		abort();
	s->refs = 1;
	pl_arena_init(&s->arena);
	s->ix = pl_index_new();
	s->held = json_array();
	for (size_t k = 0; k < 3; k++) {
		json_t *all = pl_store_list(o->st[kinds[k]], NULL), *it;
		size_t i;
		json_array_foreach(all, i, it) {
			pl_object *obj = pl_arena_alloc(&s->arena, sizeof(*obj));
			pl_object_decode(&s->arena, it, obj);
			if (!obj->valid)
				continue; /* reported in its status by the status reconciler */
			if (obj->kind == PL_KIND_TRAFFIC_POLICY)
				pl_index_add_policy(s->ix, obj->u.policy);
			else if (obj->kind == PL_KIND_MESH_IDENTITY)
				pl_index_add_identity(s->ix, obj->u.identity);
			else if (obj->kind == PL_KIND_SERVICE)
				pl_index_add_service(s->ix, obj->u.service);
		}
		/* Keep the JSON: decoded Services point at its strings (port names, protocols). */
		json_array_append_new(s->held, all);
	}
	return s;
}

static void snapshot_unref(op_snapshot *s)
{
	if (!s || --s->refs > 0)
		return;
	pl_index_free(s->ix);
	pl_arena_free(&s->arena);
	json_decref(s->held);
	free(s);
}

/*
 * The current snapshot, rebuilt first when a handler marked it dirty. Builds are serialized by
 * snap_build_mu: a worker must never be handed the old snapshot while another one is building
 * the new one, or a pod enqueued for a policy change could be rendered without it (and, its
 * ConfigMap unchanged, never be looked at again).
 */
op_snapshot *op_snapshot_get(op *o)
{
	pthread_mutex_lock(&o->snap_build_mu);
	pthread_mutex_lock(&o->mu);
	if (!o->snap || o->snap_dirty) {
		o->snap_dirty = false;
		pthread_mutex_unlock(&o->mu);
		/* Built outside the lock: the stores have their own. */
		op_snapshot *n = snapshot_build(o);
		pthread_mutex_lock(&o->mu);
		snapshot_unref(o->snap);
		n->gen = ++o->snap_gen;
		o->snap = n;
	}
	op_snapshot *s = o->snap;
	s->refs++;
	pthread_mutex_unlock(&o->mu);
	pthread_mutex_unlock(&o->snap_build_mu);
	return s;
}

void op_snapshot_put(op *o, op_snapshot *s)
{
	pthread_mutex_lock(&o->mu);
	snapshot_unref(s);
	pthread_mutex_unlock(&o->mu);
}

/* --- workers --- */

typedef struct worker_arg {
	op *o;
	pl_wq *q;
	bool proxies; /* the proxy-status queue: pods/proxy GETs with a short timeout */
} worker_arg;

static void *worker(void *arg)
{
	worker_arg *wa = arg;
	op *o = wa->o;
	pl_wq *q = wa->q;
	pl_kube *k = pl_kube_new(&o->kcfg, o->set.qps, o->set.burst);
	/* Questions to proxies (pods/proxy): a pod that does not answer must not hold a worker. */
	if (wa->proxies) {
		pl_kube_set_timeouts(k, 3, 3, 0);
		pl_kube_set_retry(k, 1, 0);
	}
	char *key;

	while ((key = pl_wq_get(q, -1))) {
		int64_t requeue = 0, t0 = op_mono_ns();
		int rc = op_reconcile(o, k, key, &requeue);
		int64_t dt = op_mono_ns() - t0;
		pthread_mutex_lock(&o->mu);
		if (rc == 0)
			o->m.reconciles_ok++;
		else
			o->m.reconciles_err++;
		o->m.reconcile_ns_total += (uint64_t)dt;
		for (int i = 0; i < OP_RECONCILE_BUCKETS; i++)
			if ((double)dt <= op_reconcile_bounds[i] * 1e9)
				o->m.reconcile_le[i]++;
		pthread_mutex_unlock(&o->mu);
		if (rc < 0) {
			log_warnx("reconcile %s: %s; retrying with backoff (%d failures)", key, strerror(-rc),
				  pl_wq_failures(q, key) + 1);
			pl_wq_add_rate_limited(q, key);
		} else {
			pl_wq_forget(q, key);
			if (requeue > 0)
				pl_wq_add_after(q, key, requeue * 1000000000LL);
		}
		pl_wq_done(q, key);
		free(key);
	}
	pl_kube_free(k);
	return NULL;
}

/* --workers reconcilers on the main queue and as many askers on the proxy-status queue, each
 * with its own API client and rate limit. */
int op_run_workers(op *o)
{
	int n = o->set.workers > 0 ? o->set.workers : 1;
	pthread_t *t = calloc((size_t)n * 2, sizeof(*t));
	worker_arg main_q = {o, o->q, false}, proxies_q = {o, o->sq, true};

	if (!t)
		abort();
	for (int i = 0; i < n * 2; i++)
		pthread_create(&t[i], NULL, worker, i < n ? &main_q : &proxies_q);
	for (int i = 0; i < n * 2; i++)
		pthread_join(t[i], NULL);
	free(t);
	return 0;
}
