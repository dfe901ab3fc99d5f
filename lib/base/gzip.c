/* gzip (RFC 1952) in and out of a pl_buf, with zlib. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "base/gzip.h"

enum { CHUNK = 64 * 1024 };

int pl_is_gzip(const void *in, size_t len)
{
	const unsigned char *p = in;

	return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

int pl_gzip(const void *in, size_t len, pl_buf *out)
{
	z_stream z;
	unsigned char chunk[CHUNK];
	int rc;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip header and trailer instead of zlib's. */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return -EIO;
	z.next_in = (Bytef *)(uintptr_t)in;
	do {
		size_t take = len > UINT32_MAX ? UINT32_MAX : len;
		z.avail_in = (uInt)take;
		len -= take;
		do {
			z.next_out = chunk;
			z.avail_out = sizeof(chunk);
			rc = deflate(&z, len ? Z_NO_FLUSH : Z_FINISH);
			if (rc == Z_STREAM_ERROR) {
				deflateEnd(&z);
				return -EIO;
			}
			pl_buf_append(out, chunk, sizeof(chunk) - z.avail_out);
		} while (z.avail_out == 0);
	} while (len);
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : -EIO;
}

static int fail(z_stream *z, const void *in, char *err, size_t errlen, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "gzip: %s at byte %zu", what, (size_t)((const unsigned char *)z->next_in -
										(const unsigned char *)in));
	inflateEnd(z);
	return -EINVAL;
}

int pl_gunzip(const void *in, size_t len, size_t max, pl_buf *out, char *err, size_t errlen)
{
	z_stream z;
	unsigned char chunk[CHUNK];
	size_t total = 0;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	memset(&z, 0, sizeof(z));
	z.next_in = (Bytef *)(uintptr_t)in;
	if (!pl_is_gzip(in, len)) {
		if (err && errlen)
			snprintf(err, errlen, "gzip: no gzip header at byte 0");
		return -EINVAL;
	}
	if (len > UINT32_MAX || inflateInit2(&z, 15 + 16) != Z_OK) /* gzip only, no zlib or raw streams */
		return -EINVAL;
	z.avail_in = (uInt)len;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_STREAM_ERROR || rc == Z_MEM_ERROR)
			return fail(&z, in, err, errlen, z.msg ? z.msg : "corrupt stream");
		size_t got = sizeof(chunk) - z.avail_out;
		if (got > max - total) {
			if (err && errlen)
				snprintf(err, errlen, "gzip: inflates to more than %zu bytes", max);
			inflateEnd(&z);
			return -EFBIG;
		}
		pl_buf_append(out, chunk, got);
		total += got;
		if (rc == Z_BUF_ERROR && z.avail_in == 0)
			return fail(&z, in, err, errlen, "stream cut short");
	} while (rc != Z_STREAM_END);
	if (z.avail_in != 0)
		return fail(&z, in, err, errlen, "bytes after the end of the stream");
	inflateEnd(&z);
	return 0;
}
