/* libFuzzer target: the proxy's request path on raw bytes, as a session runs it: detection, the
 * strict parse, the path normalisation policy matches on, and the head as it goes upstream. The
 * property: the forwarded bytes re-parse as exactly one request head with the same method,
 * target, version, Host and framing, the same end-to-end fields in the same order, and no
 * hop-by-hop field; and normalising a normalised path changes nothing. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1/http1.h"
#include "l7.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXH 128

static void must(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "property violated: %s\n", what);
		abort();
	}
}

static bool same(pl_h1_str a, const char *b, size_t n)
{
	return a.len == n && (n == 0 || memcmp(a.p, b, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pl_h1_header h1[MAXH], h2[MAXH];
	static char buf[PL_H1_DEFAULT_MAX_HEAD + 64], norm[PL_H1_DEFAULT_MAX_LINE], norm2[PL_H1_DEFAULT_MAX_LINE];
	pl_h1_limits lim;
	pl_h1_msg m, m2;
	pl_h1_error e;

	if (size > PL_H1_DEFAULT_MAX_HEAD)
		return 0;
	pl_h1_limits_default(&lim);
	memcpy(buf, data, size);
	/* Detection says HTTP for every head the parser takes (the session sees what detection let in;
	 * a policy port skips detection and parses everything). */
	int r = pl_h1_parse_request(buf, size, &lim, h1, MAXH, &m, &e);
	if (r != 1) {
		if (r < 0)
			must(e.status >= 400 && e.status <= 505 && e.what, "a refusal without its status and reason");
		return 0;
	}
	must(pl_h1_detect(buf, m.head_len, PL_H1_DEFAULT_MAX_LINE) != PL_H1_DETECT_NOT, "detection refuses a parsed head");

	/* Policy's view of the path: normalising twice gives the same path. */
	int n = px_path_normalize(m.path, norm, sizeof(norm));
	if (n >= 0) {
		must(n > 0 && norm[0] == '/', "a normalised path that does not start with /");
		int n2 = px_path_normalize((pl_h1_str){norm, (uint32_t)n}, norm2, sizeof(norm2));
		must(n2 == n && memcmp(norm, norm2, (size_t)n) == 0, "normalising a normalised path changed it");
	}

	/* What must come out: copies, since the rewrite moves the head within buf. */
	static char keep[PL_H1_DEFAULT_MAX_HEAD];
	size_t kl = 0;
	struct { size_t name, nlen, value, vlen; } ends[MAXH];
	size_t nends = 0;
	size_t meth = kl, methlen = m.method.len;
	if (m.method.len)
		memcpy(keep + kl, m.method.p, m.method.len), kl += m.method.len;
	size_t tgt = kl, tgtlen = m.target.len;
	if (m.target.len)
		memcpy(keep + kl, m.target.p, m.target.len), kl += m.target.len;
	size_t host = kl, hostlen = m.host.len;
	if (m.host.len) /* absent (HTTP/1.0): a null span */
		memcpy(keep + kl, m.host.p, m.host.len), kl += m.host.len;
	/* An absolute-form target goes on in origin-form, its authority as the one Host. */
	if (m.method_id != PL_H1_CONNECT && m.target.p[0] != '/' && !(m.target.len == 1 && m.target.p[0] == '*')) {
		char t[PL_H1_DEFAULT_MAX_LINE + 1];
		memcpy(t, m.target.p, m.target.len);
		t[m.target.len] = 0;
		char *auth = strstr(t, "://") + 3;
		size_t alen = strcspn(auth, "/?#");
		char *rest = auth + alen;
		rest[strcspn(rest, "#")] = 0;
		host = kl, hostlen = alen;
		memcpy(keep + kl, auth, alen), kl += alen;
		tgt = kl;
		if (rest[0] != '/')
			keep[kl++] = '/';
		memcpy(keep + kl, rest, strlen(rest)), kl += strlen(rest);
		tgtlen = kl - tgt;
	}
	bool keep_upgrade = m.upgrade && m.method_id != PL_H1_CONNECT;
	for (uint32_t i = 0; i < m.nheaders; i++) {
		const pl_h1_header *h = &m.headers[i];
		if ((pl_h1_hop_by_hop(&m, h->name) && !(keep_upgrade && pl_h1_eq(h->name, "upgrade"))) ||
		    pl_h1_eq(h->name, "host"))
			continue;
		ends[nends].name = kl, ends[nends].nlen = h->name.len;
		memcpy(keep + kl, h->name.p, h->name.len), kl += h->name.len;
		ends[nends].value = kl, ends[nends].vlen = h->value.len;
		if (h->value.len)
			memcpy(keep + kl, h->value.p, h->value.len), kl += h->value.len;
		nends++;
	}
	enum pl_h1_body body = m.body;
	uint64_t clen = m.content_length;
	int minor = m.minor;
	uint32_t head_len = m.head_len;

	char *sep = NULL;
	uint32_t seplen = 0;
	int32_t st = px_request_head_out(&m, buf, keep_upgrade ? "connection: upgrade\r\n" : "", keep_upgrade, false,
					 &sep, &seplen);
	if (st == PX_HEAD_TOO_MANY) {
		must(m.nheaders >= PL_H1_DEFAULT_MAX_HEADERS - 3, "refused as too many fields with room to spare");
		return 0;  /* answered 431: nothing goes on */
	}
	const char *out = st >= 0 ? buf + st : sep;
	size_t outlen = st >= 0 ? head_len - (uint32_t)st : seplen;

	r = pl_h1_parse_request(out, outlen, &lim, h2, MAXH, &m2, &e);
	if (r != 1)
		fprintf(stderr, "forwarded: %.*s\nre-parse: %d %s at %u\n", (int)outlen, out, r, r < 0 ? e.what : "", r < 0 ? e.offset : 0);
	must(r == 1, "the forwarded head does not parse");
	must(m2.head_len == outlen, "the forwarded bytes are more than one head");
	must(same(m2.method, keep + meth, methlen), "the method changed");
	must(same(m2.target, keep + tgt, tgtlen), "the target changed");
	must(same(m2.host, keep + host, hostlen), "Host changed");
	must(m2.minor == minor, "the version changed");
	must(m2.body == body && (body != PL_H1_BODY_LENGTH || m2.content_length == clen), "the framing changed");
	/* The end-to-end fields, in order, and nothing else but the Connection we add for an upgrade. */
	size_t k = 0;
	for (uint32_t i = 0; i < m2.nheaders; i++) {
		const pl_h1_header *h = &m2.headers[i];
		if ((keep_upgrade && pl_h1_eq(h->name, "connection")) || pl_h1_eq(h->name, "host"))
			continue;
		must(k < nends, "a field was added");
		must(same(h->name, keep + ends[k].name, ends[k].nlen) && same(h->value, keep + ends[k].value, ends[k].vlen),
		     "a field changed or moved");
		k++;
	}
	must(k == nends, "an end-to-end field was dropped");
	free(sep);
	return 0;
}
