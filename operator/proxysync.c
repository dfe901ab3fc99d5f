/* Which config each pod's proxy runs: asked of the proxy itself (GET /status on its admin port,
 * through the API server's pods/proxy), so that Programmed counts proxies, not written ConfigMaps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "json/json.h"
#include "model/inject.h"
#include "operator.h"

struct op_applied {
	char *key;        /* "ns/name": the map's key */
	char hash[80];    /* the config hash the proxy reported; "" before it answered */
	int polls;        /* asked in a row without finding the rendered hash */
	bool pending;     /* a question is queued: another is not (a busy queue would ask twice) */
};

static struct op_applied *entry(op *o, const char *key)
{
	struct op_applied *e = pl_hmap_get(&o->applied, key);

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->key = strdup(key)))
		abort();
	pl_hmap_put(&o->applied, e->key, e);
	return e;
}

bool op_applied_get(op *o, const char *ns, const char *name, char *hash, size_t len)
{
	char key[600];

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&o->mu);
	struct op_applied *e = pl_hmap_get(&o->applied, key);
	snprintf(hash, len, "%s", e ? e->hash : "");
	pthread_mutex_unlock(&o->mu);
	return e && e->hash[0];
}

bool op_applied_ask(op *o, const char *ns, const char *name)
{
	char key[600];

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&o->mu);
	struct op_applied *e = entry(o, key);
	bool first = !e->pending;
	e->pending = true;
	pthread_mutex_unlock(&o->mu);
	return first;
}

void op_applied_forget(op *o, const char *ns, const char *name)
{
	char key[600];
	const char *old_key = NULL;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&o->mu);
	struct op_applied *e = pl_hmap_del(&o->applied, key, &old_key);
	pthread_mutex_unlock(&o->mu);
	if (e) {
		free(e->key);
		free(e);
	}
}

void op_applied_free(op *o)
{
	size_t it = 0;
	pl_hmap_slot *sl;

	while ((sl = pl_hmap_next(&o->applied, &it))) {
		struct op_applied *e = sl->value;
		free(e->key);
		free(e);
	}
	pl_hmap_free(&o->applied);
}

/* The next poll of a proxy that does not run the rendered config yet: 1, 1, 2, 4, 8, 16, 30, 30 ... s. */
static int64_t backoff_s(int polls)
{
	int64_t s = polls < 2 ? 1 : (int64_t)1 << (polls - 1 < 5 ? polls - 1 : 5);
	return s > 30 ? 30 : s;
}

int op_reconcile_sync(op *o, pl_kube *k, const char *ns, const char *name, int64_t *requeue_s)
{
	char key[600], want[128], path[800];
	json_t *pod = NULL, *st = NULL;
	pl_kube_status kst;
	int rc = 0;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	/* This is the queued question: a later change may queue the next one. */
	pthread_mutex_lock(&o->mu);
	struct op_applied *pe = pl_hmap_get(&o->applied, key);
	if (pe)
		pe->pending = false;
	pthread_mutex_unlock(&o->mu);
	pod = pl_store_get(o->st[ST_PODS], key);
	if (!pod || !op_rendered_hash(o, ns, name, want, sizeof(want))) {
		if (!pod)
			op_applied_forget(o, ns, name);
		goto out;
	}
	const char *ip = pl_json_get_str(json_object_get(pod, "status"), "podIP");
	const char *phase = pl_json_get_str(json_object_get(pod, "status"), "phase");
	if (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0))
		goto out;
	if (ip && *ip) {
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s:%d/proxy/status", ns, name, PL_INJECT_ADMIN_PORT);
		int r = pl_kube_get(k, path, &st, &kst);
		/* A proxy of the previous release has no /status; its /config holds the config, hash included. */
		if (r == -ENOENT || kst.http == 404) {
			json_decref(st);
			st = NULL;
			snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s:%d/proxy/config", ns, name,
				 PL_INJECT_ADMIN_PORT);
			r = pl_kube_get(k, path, &st, &kst);
		}
		if (r < 0 && r != -ENOENT && kst.http != 503 && kst.http != 502)
			log_debug("proxy status of %s: HTTP %ld %s", key, kst.http, kst.message);
	}
	const char *cfg_hash = pl_json_get_str(json_object_get(st, "config"), "hash");
	/* Client-side policies from the namespace's outbound.json count too (pl_effective_hash). */
	const json_t *ob = json_object_get(st, "outbound");
	const char *src = pl_json_get_str(ob, "source"), *ob_hash = pl_json_get_str(ob, "hash");
	char eff[80];
	pl_effective_hash(cfg_hash, src && strcmp(src, "mesh") == 0 ? ob_hash : NULL, eff);
	const char *got = cfg_hash ? eff : NULL;
	pthread_mutex_lock(&o->mu);
	struct op_applied *e = entry(o, key);
	if (got)
		snprintf(e->hash, sizeof(e->hash), "%s", got);
	bool synced = got && strcmp(got, want) == 0;
	e->polls = synced ? 0 : e->polls + 1;
	e->pending = !synced; /* not synced: the requeue below is the pending question */
	int polls = e->polls;
	pthread_mutex_unlock(&o->mu);
	if (!synced) {
		*requeue_s = backoff_s(polls);
		log_debug("proxy of %s runs %s, not %s (asked %d times; again in %lld s)", key, got ? got : "nothing it said",
			  want, polls, (long long)*requeue_s);
	}
out:
	json_decref(st);
	json_decref(pod);
	return rc;
}
