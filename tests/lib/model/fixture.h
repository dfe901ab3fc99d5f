/* Test helper: YAML text -> decoded objects in an arena, and an index of the valid ones. */
#ifndef PILLION_TEST_FIXTURE_H
#define PILLION_TEST_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "model/model.h"

typedef struct fixture {
	pl_arena arena;
	pl_object obj[64];
	size_t n;
	pl_index *ix;
	const pl_pod *pod;
} fixture;

/* Decodes every document of yaml; adds valid policies, identities and Services to the index. */
static inline void fixture_load(fixture *f, const char *yaml)
{
	pl_docs docs;

	memset(f, 0, sizeof(*f));
	pl_arena_init(&f->arena);
	f->ix = pl_index_new();
	if (pl_yaml_load(yaml, strlen(yaml), &docs) != 0)
		abort();
	for (size_t i = 0; i < docs.n && f->n < 64; i++) {
		if (!docs.v[i].root)
			continue;
		pl_object *o = &f->obj[f->n++];
		pl_object_decode(&f->arena, docs.v[i].root, o);
		if (!o->valid)
			continue;
		if (o->kind == PL_KIND_TRAFFIC_POLICY)
			pl_index_add_policy(f->ix, o->u.policy);
		else if (o->kind == PL_KIND_MESH_IDENTITY)
			pl_index_add_identity(f->ix, o->u.identity);
		else if (o->kind == PL_KIND_SERVICE)
			pl_index_add_service(f->ix, o->u.service);
		else if (o->kind == PL_KIND_POD && !f->pod)
			f->pod = o->u.pod;
	}
	pl_docs_free(&docs);
}

static inline void fixture_free(fixture *f)
{
	pl_index_free(f->ix);
	pl_arena_free(&f->arena);
}

#endif
