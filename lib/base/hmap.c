/* String-keyed open-addressing hash map with linear probing (FNV-1a hashes). */
#include "base/hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t fnv1a(const char *s)
{
	uint64_t h = UINT64_C(1469598103934665603);

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(1099511628211);
	}
	return (size_t)h;
}

void pl_hmap_free(pl_hmap *m)
{
	free(m->_slots);
	m->_slots = NULL;
	m->_cap = m->count = 0;
}

static pl_hmap_slot *find(const pl_hmap *m, const char *key, size_t h)
{
	size_t mask = m->_cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		pl_hmap_slot *s = &m->_slots[i];
		if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
	}
}

void *pl_hmap_get(const pl_hmap *m, const char *key)
{
	if (m->_cap == 0)
		return NULL;
	pl_hmap_slot *s = find(m, key, fnv1a(key));
	return s->key ? s->value : NULL;
}

static void grow(pl_hmap *m)
{
	size_t cap = m->_cap ? m->_cap * 2 : 16;
	pl_hmap old = *m;

	m->_slots = calloc(cap, sizeof(*m->_slots));
	if (!m->_slots)
		abort();
	m->_cap = cap;
	for (size_t i = 0; i < old._cap; i++) {
		if (old._slots[i].key)
			*find(m, old._slots[i].key, old._slots[i].hash) = old._slots[i];
	}
	free(old._slots);
}

void *pl_hmap_put(pl_hmap *m, const char *key, void *value)
{
	size_t h = fnv1a(key);

	if ((m->count + 1) * 4 > m->_cap * 3)
		grow(m);
	pl_hmap_slot *s = find(m, key, h);
	if (s->key) {
		void *old = s->value;
		s->value = value;
		return old;
	}
	s->key = key;
	s->hash = h;
	s->value = value;
	m->count++;
	return NULL;
}

pl_hmap_slot *pl_hmap_next(const pl_hmap *m, size_t *it)
{
	while (*it < m->_cap) {
		pl_hmap_slot *s = &m->_slots[(*it)++];
		if (s->key)
			return s;
	}
	return NULL;
}

void *pl_hmap_del(pl_hmap *m, const char *key, const char **stored_key)
{
	if (m->_cap == 0)
		return NULL;
	size_t mask = m->_cap - 1;
	pl_hmap_slot *s = find(m, key, fnv1a(key));
	if (!s->key)
		return NULL;
	void *value = s->value;
	if (stored_key)
		*stored_key = s->key;
	/* Backward-shift deletion: no tombstones, lookups stay correct for linear probing. */
	size_t i = (size_t)(s - m->_slots);
	for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
		pl_hmap_slot *t = &m->_slots[j];
		if (!t->key)
			break;
		size_t home = t->hash & mask;
		/* t may move to i when i lies cyclically in [home, j). */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->_slots[i] = *t;
			i = j;
		}
	}
	m->_slots[i].key = NULL;
	m->_slots[i].value = NULL;
	m->count--;
	return value;
}

size_t pl_hmap_remove_if(pl_hmap *m, bool (*drop)(void *value, void *arg), void *arg, void (*release)(void *value))
{
	size_t n = 0;

	for (size_t i = 0; i < m->_cap;) {
		pl_hmap_slot *s = &m->_slots[i];
		if (!s->key || !drop(s->value, arg)) {
			i++;
			continue;
		}
		void *value = s->value;
		pl_hmap_del(m, s->key, NULL);
		release(value);
		n++;
		/* The backward shift may have moved a later entry into slot i: look at it again. It only
		 * moves entries towards the hole, so none not yet seen lands before i. */
	}
	return n;
}
