/* The reflector loop: list -> replace the store -> watch and apply events; 0 resumes, -ERANGE relists, errors back off. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/duration.h"
#include "base/log.h"
#include "ctrl/reflector.h"
#include "json/json.h"
#include "kube/kube.h"

struct pl_reflector {
	pthread_t thread;
	pl_kube_config cfg;
	char *name, *path, *query, *api_version, *kind;
	void (*transform)(json_t *obj);
	int watch_timeout_s;
	pl_store *store;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	pl_reflector_stats stats;
	int64_t base_ms, max_ms;
};

static char *dup_or_null(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

static bool stopping(pl_reflector *r)
{
	pthread_mutex_lock(&r->mu);
	bool s = r->stop;
	pthread_mutex_unlock(&r->mu);
	return s;
}

/* Sleeps ms unless asked to stop. */
static void nap(pl_reflector *r, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t abs = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + ms * 1000000;
	ts.tv_sec = abs / 1000000000;
	ts.tv_nsec = abs % 1000000000;
	pthread_mutex_lock(&r->mu);
	while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&r->mu);
}

static void count(pl_reflector *r, uint64_t *field)
{
	pthread_mutex_lock(&r->mu);
	(*field)++;
	pthread_mutex_unlock(&r->mu);
}

static void stamp(pl_reflector *r, json_t *obj)
{
	if (r->api_version && !json_object_get(obj, "apiVersion"))
		json_object_set_new(obj, "apiVersion", json_string(r->api_version));
	if (r->kind && !json_object_get(obj, "kind"))
		json_object_set_new(obj, "kind", json_string(r->kind));
	if (r->transform)
		r->transform(obj);
}

static int on_event(void *ctx, const char *type, json_t *obj)
{
	pl_reflector *r = ctx;

	if (stopping(r))
		return 1;
	count(r, &r->stats.events);
	if (strcmp(type, "BOOKMARK") == 0)
		return 0;
	stamp(r, obj);
	if (strcmp(type, "DELETED") == 0)
		pl_store_delete(r->store, obj);
	else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0)
		pl_store_upsert(r->store, obj);
	return 0;
}

static int64_t mono_ms(void)
{
	return pl_mono_ns() / PL_NS_PER_MS;
}

static void *run(void *arg)
{
	pl_reflector *r = arg;
	pl_kube *k = pl_kube_new(&r->cfg, 20, 30);
	char rv[64] = "";
	int64_t backoff = r->base_ms;
	bool need_list = true, relist = false;

	while (!stopping(r)) {
		pl_kube_status st;
		if (need_list) {
			json_t *items = NULL;
			int rc = pl_kube_list(k, r->path, r->query, 500, &items, rv, sizeof(rv), &st);
			if (rc < 0) {
				count(r, &r->stats.errors);
				log_warnx("reflector %s: list %s: %s (HTTP %ld %s); retrying in %lld ms", r->name, r->path,
					  strerror(-rc), st.http, st.message, (long long)backoff);
				nap(r, backoff);
				backoff = backoff * 2 > r->max_ms ? r->max_ms : backoff * 2;
				continue;
			}
			size_t i;
			json_t *it;
			json_array_foreach(items, i, it) stamp(r, it);
			pl_store_replace(r->store, items);
			json_decref(items);
			count(r, &r->stats.lists);
			if (relist)
				count(r, &r->stats.relists);
			need_list = relist = false;
			backoff = r->base_ms;
			continue;
		}
		int64_t t0 = mono_ms();
		int rc = pl_kube_watch(k, r->path, r->query, rv, sizeof(rv), r->watch_timeout_s, on_event, r, &st);
		count(r, &r->stats.watch_restarts);
		if (rc > 0 || stopping(r))
			break;
		if (rc == -ERANGE) {
			/* The resourceVersion is too old (compaction): the cache may have missed events. */
			log_info("reflector %s: 410 Gone at resourceVersion %s: relisting", r->name, rv);
			need_list = relist = true;
			continue;
		}
		if (rc < 0) {
			count(r, &r->stats.errors);
			log_warnx("reflector %s: watch %s: %s (HTTP %ld %s); retrying in %lld ms", r->name, r->path,
				  strerror(-rc), st.http, st.message, (long long)backoff);
			nap(r, backoff);
			backoff = backoff * 2 > r->max_ms ? r->max_ms : backoff * 2;
			continue;
		}
		/* A clean end or a cut: resume from rv, but not in a tight loop if streams end at once. */
		if (mono_ms() - t0 < 1000) {
			nap(r, backoff);
			backoff = backoff * 2 > r->max_ms ? r->max_ms : backoff * 2;
		} else {
			backoff = r->base_ms;
		}
	}
	pl_kube_free(k);
	return NULL;
}

pl_reflector *pl_reflector_start(const pl_kube_config *cfg, const pl_reflector_spec *spec, pl_store *store)
{
	pl_reflector *r = calloc(1, sizeof(*r));

	if (!r || pl_kube_config_copy(&r->cfg, cfg) < 0)
		abort();
	r->name = dup_or_null(spec->name ? spec->name : spec->path);
	r->path = dup_or_null(spec->path);
	r->query = dup_or_null(spec->query);
	r->api_version = dup_or_null(spec->api_version);
	r->kind = dup_or_null(spec->kind);
	r->transform = spec->transform;
	r->watch_timeout_s = spec->watch_timeout_s > 0 ? spec->watch_timeout_s : 300;
	r->store = store;
	r->base_ms = 200;
	r->max_ms = 30000;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&r->thread, NULL, run, r) != 0)
		abort();
	return r;
}

void pl_reflector_set_backoff(pl_reflector *r, int64_t base_ms, int64_t max_ms)
{
	pthread_mutex_lock(&r->mu);
	r->base_ms = base_ms;
	r->max_ms = max_ms;
	pthread_mutex_unlock(&r->mu);
}

void pl_reflector_stats_get(pl_reflector *r, pl_reflector_stats *out)
{
	pthread_mutex_lock(&r->mu);
	*out = r->stats;
	pthread_mutex_unlock(&r->mu);
}

void pl_reflector_stop(pl_reflector *r, bool join)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (!join)
		return;
	pthread_join(r->thread, NULL);
	pl_kube_config_free(&r->cfg);
	free(r->name);
	free(r->path);
	free(r->query);
	free(r->api_version);
	free(r->kind);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
