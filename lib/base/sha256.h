/* SHA-256 (FIPS 180-4) for content hashes; no dependency so the model stays I/O- and library-free. */
#ifndef PILLION_BASE_SHA256_H
#define PILLION_BASE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct pl_sha256 {
	uint32_t _h[8];
	uint64_t _len;
	unsigned char _block[64];
	size_t _fill;
} pl_sha256;

void pl_sha256_init(pl_sha256 *c);
void pl_sha256_update(pl_sha256 *c, const void *data, size_t len);
void pl_sha256_final(pl_sha256 *c, unsigned char out[32]);
/* Lowercase hex digest of data into out (65 bytes with the NUL). */
void pl_sha256_hex(const void *data, size_t len, char out[65]);

#endif
