/* Arena allocator: bump allocation in chunks, freed all at once. */
#include "base/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PL_ARENA_CHUNK 8192
#define PL_ARENA_ALIGN 16

struct pl_arena_chunk {
	pl_arena_chunk *next;
	size_t size;
	size_t off;
	_Alignas(PL_ARENA_ALIGN) unsigned char data[];
};

void pl_arena_init(pl_arena *a)
{
	a->_head = NULL;
	a->_used = 0;
}

void pl_arena_free(pl_arena *a)
{
	pl_arena_chunk *c = a->_head;

	while (c) {
		pl_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->_head = NULL;
	a->_used = 0;
}

void *pl_arena_alloc(pl_arena *a, size_t size)
{
	size_t need = (size + PL_ARENA_ALIGN - 1) & ~(size_t)(PL_ARENA_ALIGN - 1);
	pl_arena_chunk *c = a->_head;

	if (need < size)
		abort();
	if (need == 0)
		need = PL_ARENA_ALIGN;
	if (!c || c->size - c->off < need) {
		size_t csize = need > PL_ARENA_CHUNK ? need : PL_ARENA_CHUNK;
		c = malloc(sizeof(*c) + csize);
		if (!c)
			abort();
		c->size = csize;
		c->off = 0;
		/* A big allocation gets its own chunk behind the head so the head's free space is kept. */
		if (a->_head && need > PL_ARENA_CHUNK) {
			c->next = a->_head->next;
			a->_head->next = c;
		} else {
			c->next = a->_head;
			a->_head = c;
		}
	}
	void *p = c->data + c->off;
	c->off += need;
	a->_used += need;
	memset(p, 0, need);
	return p;
}

void *pl_arena_calloc(pl_arena *a, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		abort();
	return pl_arena_alloc(a, n * size);
}

char *pl_arena_strndup(pl_arena *a, const char *s, size_t n)
{
	char *p = pl_arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *pl_arena_strdup(pl_arena *a, const char *s)
{
	return pl_arena_strndup(a, s, strlen(s));
}

char *pl_arena_printf(pl_arena *a, const char *fmt, ...)
{
	va_list ap;
	char small[256];

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return pl_arena_strdup(a, "");
	if ((size_t)n < sizeof(small))
		return pl_arena_strndup(a, small, (size_t)n);
	char *p = pl_arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}
