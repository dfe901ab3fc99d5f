/* String-keyed hash map (open addressing) used for the model's indexes. */
#ifndef PILLION_BASE_HMAP_H
#define PILLION_BASE_HMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pl_hmap_slot {
	const char *key;   /* borrowed: must outlive the map */
	void *value;
	size_t hash;
} pl_hmap_slot;

typedef struct pl_hmap {
	pl_hmap_slot *_slots;
	size_t _cap;       /* power of two or 0 */
	size_t count;
} pl_hmap;

#define PL_HMAP_INIT {NULL, 0, 0}

void pl_hmap_free(pl_hmap *m);
void *pl_hmap_get(const pl_hmap *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. Aborts on out-of-memory. */
void *pl_hmap_put(pl_hmap *m, const char *key, void *value);
/* Removes key; returns its value (NULL when absent) and, in *stored_key, the key pointer the map held (to free). */
void *pl_hmap_del(pl_hmap *m, const char *key, const char **stored_key);
/* Removes every entry whose value drop says goes, then hands the value to release (which may free
 * the key the map borrowed: it is out of the map by then). drop may be asked twice about a value
 * that stays (deletion moves entries). Returns how many went. */
size_t pl_hmap_remove_if(pl_hmap *m, bool (*drop)(void *value, void *arg), void *arg, void (*release)(void *value));
/* Iteration: start with *it = 0; returns NULL at the end. Order is unspecified. */
pl_hmap_slot *pl_hmap_next(const pl_hmap *m, size_t *it);

#endif
