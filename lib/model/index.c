/* Indexes over policies, identities and Services so rendering one pod touches only what can apply to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "model/index-t.h"
#include "model/model.h"

static void vec_push(pl_vec *v, const void *p)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 4;
		const void **nv = realloc(v->v, cap * sizeof(*nv));
		if (!nv)
			abort();
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = p;
}

static pl_vec *bucket(pl_index *ix, pl_hmap *m, const char *key)
{
	pl_vec *v = pl_hmap_get(m, key);

	if (!v) {
		v = pl_arena_alloc(&ix->arena, sizeof(*v));
		pl_hmap_put(m, pl_arena_strdup(&ix->arena, key), v);
	}
	return v;
}

pl_index *pl_index_new(void)
{
	pl_index *ix = calloc(1, sizeof(*ix));

	if (!ix)
		abort();
	pl_arena_init(&ix->arena);
	return ix;
}

static void free_buckets(pl_hmap *m)
{
	size_t it = 0;
	pl_hmap_slot *s;

	while ((s = pl_hmap_next(m, &it)))
		free(((pl_vec *)s->value)->v);
	pl_hmap_free(m);
}

void pl_index_free(pl_index *ix)
{
	if (!ix)
		return;
	free_buckets(&ix->services);
	free_buckets(&ix->identities);
	free_buckets(&ix->policies);
	free_buckets(&ix->exported);
	free(ix->exported_all.v);
	pl_arena_free(&ix->arena);
	free(ix);
}

void pl_index_add_service(pl_index *ix, const pl_service *s)
{
	vec_push(bucket(ix, &ix->services, s->meta.namespace), s);
}

void pl_index_add_identity(pl_index *ix, const pl_mesh_identity *m)
{
	vec_push(bucket(ix, &ix->identities, m->meta.namespace), m);
}

void pl_index_add_policy(pl_index *ix, const pl_traffic_policy *p)
{
	char key[320];
	bool all = false;

	snprintf(key, sizeof(key), "%s/%s", p->meta.namespace, p->target_name);
	vec_push(bucket(ix, &ix->policies, key), p);
	for (size_t i = 0; i < p->export_to.n; i++)
		all = all || strcmp(p->export_to.v[i], "*") == 0;
	if (all) {
		vec_push(&ix->exported_all, p);
		return;
	}
	for (size_t i = 0; i < p->export_to.n; i++) {
		const char *ns = strcmp(p->export_to.v[i], ".") == 0 ? p->meta.namespace : p->export_to.v[i];
		pl_vec *v = bucket(ix, &ix->exported, ns);
		/* "." and the namespace's own name may both be listed: index the policy once. */
		if (v->n == 0 || v->v[v->n - 1] != p)
			vec_push(v, p);
	}
}

int pl_meta_precedence(const pl_meta *a, const pl_meta *b)
{
	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	int c = strcmp(a->namespace, b->namespace);
	return c ? c : strcmp(a->name, b->name);
}

const pl_traffic_policy *pl_index_policy_for(const pl_index *ix, const char *ns, const char *name, int port)
{
	char key[320];
	const pl_traffic_policy *best = NULL;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	const pl_vec *v = pl_hmap_get(&ix->policies, key);
	for (size_t i = 0; v && i < v->n; i++) {
		const pl_traffic_policy *p = v->v[i];
		if (p->target_port == port && (!best || pl_meta_precedence(&p->meta, &best->meta) < 0))
			best = p;
	}
	return best;
}

const pl_mesh_identity *pl_index_identity_for(const pl_index *ix, const pl_pod *pod)
{
	const pl_vec *v = pl_hmap_get(&ix->identities, pod->meta.namespace);
	const pl_mesh_identity *best = NULL;

	for (size_t i = 0; v && i < v->n; i++) {
		const pl_mesh_identity *m = v->v[i];
		if (!pl_selector_matches(&m->selector, &pod->meta.labels))
			continue;
		if (best) {
			bool m_specific = !pl_selector_empty(&m->selector);
			bool b_specific = !pl_selector_empty(&best->selector);
			if (m_specific != b_specific) {
				if (!m_specific)
					continue;
			} else if (pl_meta_precedence(&m->meta, &best->meta) >= 0) {
				continue;
			}
		}
		best = m;
	}
	return best;
}
