/* A thread-safe cache of Kubernetes objects of one kind, as a reflector fills it: by key, by namespace, by owner. */
#ifndef PILLION_CTRL_STORE_H
#define PILLION_CTRL_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct pl_store pl_store;

enum pl_store_event { PL_STORE_ADDED, PL_STORE_UPDATED, PL_STORE_DELETED };

/*
 * Called, outside the store's lock, for every change: old is NULL for ADDED, obj is the
 * deleted object for DELETED. References are borrowed for the call.
 */
typedef void (*pl_store_handler)(void *ctx, enum pl_store_event ev, const json_t *obj, const json_t *old);

pl_store *pl_store_new(pl_store_handler handler, void *ctx);
void pl_store_free(pl_store *s);

/* "namespace/name", or "name" for cluster-scoped objects, into out. False when obj has no name. */
bool pl_store_key(const json_t *obj, char *out, size_t outlen);

/* Adds or replaces obj (the store takes a reference). An identical resourceVersion is not an update. */
void pl_store_upsert(pl_store *s, json_t *obj);
void pl_store_delete(pl_store *s, const json_t *obj);
/*
 * A relist: items becomes the whole content; objects missing from it are reported
 * DELETED, new ones ADDED, changed ones UPDATED. The store takes a reference to each item.
 */
void pl_store_replace(pl_store *s, const json_t *items);
/* Whether a first list has been stored (caches are "synced"). */
bool pl_store_synced(pl_store *s);

/* A new reference, or NULL. */
json_t *pl_store_get(pl_store *s, const char *key);
/* New JSON arrays (new references), sorted by key: every object, those of a namespace, those owned by uid. */
json_t *pl_store_list(pl_store *s, const char *ns_or_null);
json_t *pl_store_by_owner(pl_store *s, const char *owner_uid);
size_t pl_store_len(pl_store *s);

#endif
