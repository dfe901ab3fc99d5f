/* Arena allocator: many small allocations freed together, one owner for a whole model. */
#ifndef PILLION_BASE_ARENA_H
#define PILLION_BASE_ARENA_H

#include <stddef.h>

typedef struct pl_arena_chunk pl_arena_chunk;

typedef struct pl_arena {
	pl_arena_chunk *_head;
	size_t _used;   /* bytes handed out, for tests and limits */
} pl_arena;

void pl_arena_init(pl_arena *a);
/* Frees every allocation made from the arena; the arena can be reused. */
void pl_arena_free(pl_arena *a);
/* Zeroed, 16-byte aligned memory owned by the arena; aborts on out-of-memory. */
void *pl_arena_alloc(pl_arena *a, size_t size);
/* Zeroed array of n elements of size each; aborts on overflow or out-of-memory. */
void *pl_arena_calloc(pl_arena *a, size_t n, size_t size);
char *pl_arena_strdup(pl_arena *a, const char *s);
char *pl_arena_strndup(pl_arena *a, const char *s, size_t n);
/* printf into arena memory. */
char *pl_arena_printf(pl_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
