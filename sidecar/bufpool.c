/* Buffers of one size kept for reuse. */
#include <stdlib.h>

#include "bufpool.h"

char *px_bufpool_get(px_bufpool *p, size_t size)
{
	if (p->n)
		return p->v[--p->n];
	char *b = malloc(size);
	if (!b)
		abort();
	return b;
}

void px_bufpool_put(px_bufpool *p, char **b, uint32_t max)
{
	if (!*b)
		return;
	if (p->n < max) {
		if (!p->v && !(p->v = malloc(max * sizeof(char *))))
			abort();
		p->v[p->n++] = *b;
	} else {
		free(*b);
	}
	*b = NULL;
}

void px_bufpool_free(px_bufpool *p)
{
	while (p->n)
		free(p->v[--p->n]);
	free(p->v);
	p->v = NULL;
}
