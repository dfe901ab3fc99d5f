/* libFuzzer target: HTTP/2 request fields, as a peer may send them, translated to an HTTP/1.1 head
 * (sidecar/h2h1.c). Whatever is accepted must parse with lib/http1 as exactly one head, ending
 * where the translation ended, with the method, target and host the fields said. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1head.h"
#include "h2h1.h"
#include "http1/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXF 128

/* Input: a flags byte (bit 0: a body follows), then fields as [name length][name][value length][value]. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pl_h2_field f[MAXF];
	size_t n = 0, i = 1;
	static char *out;
	static uint32_t cap;
	uint32_t len = 0;

	if (size < 1)
		return 0;
	bool body = data[0] & 1;
	while (i < size && n < MAXF) {
		size_t nl = data[i++];
		if (i + nl > size)
			break;
		const char *name = (const char *)data + i;
		i += nl;
		if (i >= size)
			break;
		size_t vl = data[i++];
		if (i + vl > size)
			break;
		f[n++] = (pl_h2_field){name, (const char *)data + i, nl, vl};
		i += vl;
	}
	enum px_h1_framing fr;
	uint64_t clen;
	if (px_h2h1_request(f, n, body, PX_ORIG_PROTO, &out, &len, &cap, &fr, &clen))
		return 0;
	pl_h1_limits lim;
	pl_h1_header hdrs[PL_H1_DEFAULT_MAX_HEADERS];
	pl_h1_msg m;
	pl_h1_error e;
	pl_h1_limits_default(&lim);
	if (pl_h1_parse_request(out, len, &lim, hdrs, PL_H1_DEFAULT_MAX_HEADERS, &m, &e) != 1 || m.head_len != len)
		abort();
	/* The framing the HTTP/1 server reads is the one the stream's body will be sent with. */
	if ((fr == PX_H1_CHUNKED) != (m.body == PL_H1_BODY_CHUNKED) ||
	    (fr == PX_H1_LENGTH && (m.body != PL_H1_BODY_LENGTH || m.content_length != clen)) ||
	    (fr == PX_H1_NO_BODY && m.body != PL_H1_BODY_NONE && !(m.body == PL_H1_BODY_LENGTH && !m.content_length)))
		abort();
	for (size_t k = 0; k < n; k++) {
		const pl_h2_field *x = &f[k];
		pl_h1_str want = {x->value, (uint32_t)x->valuelen};
		pl_h1_str got = x->namelen == 7 && !memcmp(x->name, ":method", 7) ? m.method
				: x->namelen == 5 && !memcmp(x->name, ":path", 5) ? m.target
				: x->namelen == 10 && !memcmp(x->name, ":authority", 10) ? m.host
				: want;
		if (got.len != want.len || memcmp(got.p, want.p, want.len))
			abort();
	}
	return 0;
}
