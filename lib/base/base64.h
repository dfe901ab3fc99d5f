/* Base64 (RFC 4648, with padding), as Kubernetes Secrets carry their data. */
#ifndef PILLION_BASE_BASE64_H
#define PILLION_BASE_BASE64_H

#include <stddef.h>

/* NUL-terminated encoding, malloc'ed; aborts on out-of-memory. */
char *pl_base64_encode(const void *data, size_t len);
/* Decodes into a malloc'ed buffer (NUL-terminated for convenience); NULL on bad input. */
char *pl_base64_decode(const char *s, size_t *len);
/*
 * As kubeconfig *-data fields are read: ASCII whitespace ignored, padding optional (at
 * most two '=', nothing after them), and an empty result refused.
 */
char *pl_base64_decode_relaxed(const char *s, size_t *len);

#endif
