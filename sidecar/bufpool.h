/* Buffers of one size kept for reuse: the relay's (--buffer-size) and the HTTP sessions' (PX_HBUF). */
#ifndef PILLION_SIDECAR_BUFPOOL_H
#define PILLION_SIDECAR_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

/* Zero-initialized is an empty pool. */
typedef struct px_bufpool {
	char **v;
	uint32_t n;
} px_bufpool;

/* A free buffer of size bytes: a pooled one, else a new one (aborts on out-of-memory). Every
 * buffer a pool hands out must have the same size. */
char *px_bufpool_get(px_bufpool *p, size_t size);
/* Gives *b back (kept while the pool holds fewer than max, freed otherwise); *b becomes NULL.
 * NULL is ignored. */
void px_bufpool_put(px_bufpool *p, char **b, uint32_t max);
/* Frees every pooled buffer and the pool's array. */
void px_bufpool_free(px_bufpool *p);

#endif
