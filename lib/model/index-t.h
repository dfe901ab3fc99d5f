/* The index's layout, shared by index.c and render.c (model-internal). */
#ifndef PILLION_MODEL_INDEX_T_H
#define PILLION_MODEL_INDEX_T_H

#include "base/arena.h"
#include "base/hmap.h"
#include "model/model-t.h"

typedef struct pl_vec {
	size_t n, cap;
	const void **v;
} pl_vec;

struct pl_index {
	pl_arena arena;      /* keys and buckets */
	pl_hmap services;    /* namespace -> pl_service* */
	pl_hmap identities;  /* namespace -> pl_mesh_identity* */
	pl_hmap policies;    /* "namespace/target" -> pl_traffic_policy* */
	pl_hmap exported;    /* caller namespace -> pl_traffic_policy* exported to it by name */
	pl_vec exported_all; /* policies exported to every namespace */
};

/* Oldest first (creationTimestamp), then namespace/name: who wins a conflict. */
int pl_meta_precedence(const pl_meta *a, const pl_meta *b);

#endif
