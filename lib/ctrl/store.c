/* The object cache: one map by key plus two secondary indexes (namespace, owner uid), all under one mutex. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "ctrl/store.h"
#include "json/json.h"

typedef struct entry {
	char *key;
	char *ns;         /* "" for cluster-scoped */
	char **owners;    /* owner uids */
	size_t nowners;
	json_t *obj;
} entry;

struct pl_store {
	pthread_mutex_t mu;
	pl_hmap by_key;    /* key -> entry */
	pl_hmap by_ns;     /* ns -> pl_hmap* (key -> entry) */
	pl_hmap by_owner;  /* uid -> pl_hmap* (key -> entry) */
	bool synced;
	pl_store_handler handler;
	void *ctx;
};

typedef struct change {
	enum pl_store_event ev;
	json_t *obj, *old;
} change;

typedef struct changes {
	change *v;
	size_t n, cap;
} changes;

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		abort();
	return d;
}

pl_store *pl_store_new(pl_store_handler handler, void *ctx)
{
	pl_store *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	pthread_mutex_init(&s->mu, NULL);
	s->handler = handler;
	s->ctx = ctx;
	return s;
}

bool pl_store_key(const json_t *obj, char *out, size_t outlen)
{
	json_t *md = json_object_get(obj, "metadata");
	const char *name = pl_json_get_str(md, "name"), *ns = pl_json_get_str(md, "namespace");
	int n;

	if (!name || !*name)
		return false;
	n = ns && *ns ? snprintf(out, outlen, "%s/%s", ns, name) : snprintf(out, outlen, "%s", name);
	return n > 0 && (size_t)n < outlen;
}

static void index_add(pl_hmap *idx, const char *ikey, entry *e)
{
	pl_hmap *sub = pl_hmap_get(idx, ikey);

	if (!sub) {
		sub = calloc(1, sizeof(*sub));
		if (!sub)
			abort();
		pl_hmap_put(idx, xstrdup(ikey), sub);
	}
	pl_hmap_put(sub, e->key, e);
}

static void index_del(pl_hmap *idx, const char *ikey, entry *e)
{
	pl_hmap *sub = pl_hmap_get(idx, ikey);
	const char *stored;

	if (!sub)
		return;
	pl_hmap_del(sub, e->key, NULL);
	if (sub->count == 0) {
		pl_hmap_del(idx, ikey, &stored);
		free((char *)stored);
		pl_hmap_free(sub);
		free(sub);
	}
}

static entry *entry_new(const char *key, json_t *obj)
{
	entry *e = calloc(1, sizeof(*e));
	json_t *md = json_object_get(obj, "metadata"), *refs = json_object_get(md, "ownerReferences"), *r;
	size_t i;

	if (!e)
		abort();
	e->key = xstrdup(key);
	e->ns = xstrdup(pl_json_get_str(md, "namespace"));
	e->owners = calloc(json_array_size(refs) + 1, sizeof(char *));
	if (!e->owners)
		abort();
	json_array_foreach(refs, i, r) {
		const char *uid = pl_json_get_str(r, "uid");
		if (uid && *uid)
			e->owners[e->nowners++] = xstrdup(uid);
	}
	e->obj = json_incref(obj);
	return e;
}

/* Unlinks e from every map (the caller then owns e). With s->mu held. */
static void unlink_entry(pl_store *s, entry *e)
{
	index_del(&s->by_ns, e->ns, e);
	for (size_t i = 0; i < e->nowners; i++)
		index_del(&s->by_owner, e->owners[i], e);
	pl_hmap_del(&s->by_key, e->key, NULL);
}

static void link_entry(pl_store *s, entry *e)
{
	pl_hmap_put(&s->by_key, e->key, e);
	index_add(&s->by_ns, e->ns, e);
	for (size_t i = 0; i < e->nowners; i++)
		index_add(&s->by_owner, e->owners[i], e);
}

/* Frees e but hands its object reference to *obj_out when not NULL. */
static void entry_free(entry *e, json_t **obj_out)
{
	if (obj_out)
		*obj_out = e->obj;
	else
		json_decref(e->obj);
	for (size_t i = 0; i < e->nowners; i++)
		free(e->owners[i]);
	free(e->owners);
	free(e->ns);
	free(e->key);
	free(e);
}

static void record(changes *c, enum pl_store_event ev, json_t *obj, json_t *old)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		if (!c->v)
			abort();
	}
	c->v[c->n++] = (change){ev, obj, old};
}

/* Runs the handler for each change without the lock, then drops the references it held. */
static void deliver(pl_store *s, changes *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (s->handler)
			s->handler(s->ctx, c->v[i].ev, c->v[i].obj, c->v[i].old);
		json_decref(c->v[i].obj);
		json_decref(c->v[i].old);
	}
	free(c->v);
}

static const char *rv_of(const json_t *obj)
{
	return pl_json_get_str(json_object_get(obj, "metadata"), "resourceVersion");
}

/* With s->mu held; records the change. */
static void upsert_locked(pl_store *s, json_t *obj, changes *c)
{
	char key[512];

	if (!pl_store_key(obj, key, sizeof(key)))
		return;
	entry *old = pl_hmap_get(&s->by_key, key);
	if (old) {
		const char *a = rv_of(old->obj), *b = rv_of(obj);
		if (a && b && strcmp(a, b) == 0)
			return;
		unlink_entry(s, old);
		json_t *oldobj;
		entry_free(old, &oldobj);
		entry *e = entry_new(key, obj);
		link_entry(s, e);
		record(c, PL_STORE_UPDATED, json_incref(obj), oldobj);
		return;
	}
	entry *e = entry_new(key, obj);
	link_entry(s, e);
	record(c, PL_STORE_ADDED, json_incref(obj), NULL);
}

void pl_store_upsert(pl_store *s, json_t *obj)
{
	changes c = {0};

	pthread_mutex_lock(&s->mu);
	upsert_locked(s, obj, &c);
	pthread_mutex_unlock(&s->mu);
	deliver(s, &c);
}

void pl_store_delete(pl_store *s, const json_t *obj)
{
	changes c = {0};
	char key[512];

	if (!pl_store_key(obj, key, sizeof(key)))
		return;
	pthread_mutex_lock(&s->mu);
	entry *e = pl_hmap_get(&s->by_key, key);
	if (e) {
		unlink_entry(s, e);
		json_t *last;
		entry_free(e, &last);
		/* The watch's final state of the object, as informers hand it on. */
		json_decref(last);
		record(&c, PL_STORE_DELETED, json_incref((json_t *)obj), NULL);
	}
	pthread_mutex_unlock(&s->mu);
	deliver(s, &c);
}

void pl_store_replace(pl_store *s, const json_t *items)
{
	changes c = {0};
	pl_hmap seen = PL_HMAP_INIT;
	char **keys;
	size_t i, n = json_array_size(items);
	json_t *it;

	keys = calloc(n + 1, sizeof(char *));
	if (!keys)
		abort();
	pthread_mutex_lock(&s->mu);
	json_array_foreach(items, i, it) {
		char key[512];
		if (!pl_store_key(it, key, sizeof(key)))
			continue;
		keys[i] = xstrdup(key);
		pl_hmap_put(&seen, keys[i], (void *)1);
		upsert_locked(s, it, &c);
	}
	/* Gone while we were not watching: deleted. */
	size_t cap = s->by_key.count, ngone = 0, iter = 0;
	entry **gone = calloc(cap + 1, sizeof(*gone));
	pl_hmap_slot *sl;
	if (!gone)
		abort();
	while ((sl = pl_hmap_next(&s->by_key, &iter)))
		if (!pl_hmap_get(&seen, sl->key))
			gone[ngone++] = sl->value;
	for (i = 0; i < ngone; i++) {
		unlink_entry(s, gone[i]);
		json_t *last;
		entry_free(gone[i], &last);
		record(&c, PL_STORE_DELETED, last, NULL);
	}
	s->synced = true;
	pthread_mutex_unlock(&s->mu);
	free(gone);
	pl_hmap_free(&seen);
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	deliver(s, &c);
}

bool pl_store_synced(pl_store *s)
{
	pthread_mutex_lock(&s->mu);
	bool v = s->synced;
	pthread_mutex_unlock(&s->mu);
	return v;
}

json_t *pl_store_get(pl_store *s, const char *key)
{
	pthread_mutex_lock(&s->mu);
	entry *e = pl_hmap_get(&s->by_key, key);
	json_t *o = e ? json_incref(e->obj) : NULL;
	pthread_mutex_unlock(&s->mu);
	return o;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp((*(entry *const *)a)->key, (*(entry *const *)b)->key);
}

static json_t *list_map(const pl_hmap *m)
{
	json_t *arr = json_array();
	size_t n = 0, it = 0;
	pl_hmap_slot *sl;

	if (!m)
		return arr;
	entry **v = calloc(m->count + 1, sizeof(*v));
	if (!v)
		abort();
	while ((sl = pl_hmap_next(m, &it)))
		v[n++] = sl->value;
	qsort(v, n, sizeof(*v), entry_cmp);
	for (size_t i = 0; i < n; i++)
		json_array_append(arr, v[i]->obj);
	free(v);
	return arr;
}

json_t *pl_store_list(pl_store *s, const char *ns)
{
	pthread_mutex_lock(&s->mu);
	json_t *arr = list_map(ns ? pl_hmap_get(&s->by_ns, ns) : &s->by_key);
	pthread_mutex_unlock(&s->mu);
	return arr;
}

json_t *pl_store_by_owner(pl_store *s, const char *uid)
{
	pthread_mutex_lock(&s->mu);
	json_t *arr = list_map(pl_hmap_get(&s->by_owner, uid));
	pthread_mutex_unlock(&s->mu);
	return arr;
}

size_t pl_store_len(pl_store *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->by_key.count;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void free_index(pl_hmap *idx)
{
	size_t it = 0;
	pl_hmap_slot *sl;

	while ((sl = pl_hmap_next(idx, &it))) {
		pl_hmap_free(sl->value);
		free(sl->value);
		free((char *)sl->key);
	}
	pl_hmap_free(idx);
}

void pl_store_free(pl_store *s)
{
	size_t it = 0;
	pl_hmap_slot *sl;

	if (!s)
		return;
	while ((sl = pl_hmap_next(&s->by_key, &it)))
		entry_free(sl->value, NULL);
	pl_hmap_free(&s->by_key);
	free_index(&s->by_ns);
	free_index(&s->by_owner);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
