/* libFuzzer target: bytes from an HTTP/2 peer into lib/h2, as the proxy's server side (a client's
 * streams) and client side (a server's answers), with the properties the proxy relies on. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2/h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t pending;              /* body bytes received and not yet consumed */

/* What reaches the proxy never holds a byte an HTTP/1 head could be split or ended by. */
static void check_fields(const pl_h2_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!f[i].namelen)
			abort();
		for (size_t k = 0; k < f[i].namelen; k++) {
			unsigned char c = (unsigned char)f[i].name[k];
			if (c <= ' ' || c == 0x7f || (c >= 'A' && c <= 'Z') || (c == ':' && k > 0))
				abort();
		}
		for (size_t k = 0; k < f[i].valuelen; k++) {
			unsigned char c = (unsigned char)f[i].value[k];
			if (c == 0 || c == '\r' || c == '\n')
				abort();
		}
	}
}

static void on_head(void *ud, pl_h2 *h, int32_t id, void *sud, enum pl_h2_head kind, const pl_h2_field *f, size_t n,
		    bool end)
{
	(void)ud;
	(void)sud;
	(void)end;
	check_fields(f, n);
	if (kind == PL_H2_REQUEST) {
		/* Answer with a body and trailers, pulled by the read callback. */
		static const pl_h2_field resp[] = {{":status", "200", 7, 3}, {"content-type", "application/grpc", 12, 16}};
		pl_h2_response(h, id, resp, 2, true);
	}
}

static void on_data(void *ud, pl_h2 *h, int32_t id, void *sud, const uint8_t *p, size_t n)
{
	(void)ud;
	(void)sud;
	(void)p;
	pending += n;
	/* Every other chunk is consumed at once: windows both reopen and stay shut. */
	if (pending & 1)
		pl_h2_consume(h, id, n);
}

static void on_close(void *ud, pl_h2 *h, int32_t id, void *sud, uint32_t code)
{
	(void)ud;
	(void)h;
	(void)id;
	(void)sud;
	(void)code;
}

static ssize_t on_read(void *ud, pl_h2 *h, int32_t id, void *sud, uint8_t *out, size_t n, int *end)
{
	(void)ud;
	(void)h;
	(void)id;
	(void)sud;
	size_t k = n < 100 ? n : 100;
	memset(out, 'r', k);
	*end = PL_H2_END_TRAILERS;
	return (ssize_t)k;
}

static void on_trailers(void *ud, pl_h2 *h, int32_t id, void *sud, const pl_h2_field **f, size_t *n)
{
	static const pl_h2_field t[] = {{"grpc-status", "0", 11, 1}};
	(void)ud;
	(void)h;
	(void)id;
	(void)sud;
	*f = t;
	*n = 1;
}

static const pl_h2_cbs cbs = {on_head, on_data, NULL, on_close, on_read, on_trailers, NULL};

static void run(bool server, const uint8_t *data, size_t size)
{
	pl_h2 *h = pl_h2_new(server, &cbs, NULL, NULL);
	const uint8_t *p;
	const char *why;
	size_t out = 0;

	pending = 0;
	if (!server) {
		static const pl_h2_field req[] = {{":method", "POST", 7, 4}, {":scheme", "http", 7, 4},
						  {":authority", "svc", 10, 3}, {":path", "/a.B/C", 5, 6}};
		pl_h2_request(h, req, 4, false, NULL);
	}
	/* In pieces, as a socket delivers them, with the session's output drained in between. */
	for (size_t off = 0; off < size;) {
		size_t k = 1 + data[off] % 64;
		if (k > size - off)
			k = size - off;
		if (pl_h2_recv(h, data + off, k, &why) < 0)
			break;
		off += k;
		ssize_t n;
		while ((n = pl_h2_send(h, &p)) > 0)
			out += (size_t)n;
		if (n < 0)
			break;
	}
	/* What a peer can make the session queue stays proportionate to what it sent. */
	if (out > 64 * size + 1024 * 1024) {
		fprintf(stderr, "%zu bytes out for %zu in\n", out, size);
		abort();
	}
	pl_h2_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	uint8_t *buf = malloc(size + 24);

	if (!buf)
		abort();
	/* The server side: the preface first, so the frames behind it are reached. */
	memcpy(buf, preface, 24);
	memcpy(buf + 24, data, size);
	run(true, buf, size + 24);
	run(false, data, size);
	free(buf);
	return 0;
}
