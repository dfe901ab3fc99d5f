/* gzip (RFC 1952) in and out of a pl_buf: the only module that calls zlib. */
#ifndef PILLION_BASE_GZIP_H
#define PILLION_BASE_GZIP_H

#include <stddef.h>

#include "base/buf.h"

/* Appends the gzip of in[0..len) to out (best compression). 0, or -EIO if zlib fails. */
int pl_gzip(const void *in, size_t len, pl_buf *out);

/*
 * Appends the inflated content of one gzip member in[0..len) to out, at most max bytes.
 * 0; -EFBIG past max (nothing more is inflated: a small file cannot become a huge one);
 * -EINVAL for a stream that is not gzip, is corrupt or cut short, or has bytes after its end.
 * On error, err (if given) says what and at which input byte offset.
 */
int pl_gunzip(const void *in, size_t len, size_t max, pl_buf *out, char *err, size_t errlen);

/* True when in starts with the gzip magic bytes. */
int pl_is_gzip(const void *in, size_t len);

#endif
