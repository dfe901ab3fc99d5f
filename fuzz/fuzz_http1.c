/* libFuzzer target: lib/http1 on raw bytes: request and response heads, then the body as chunked
 * and as the head framed it (pl_h1_body_*), with properties that must hold for any input (spans inside the input, prefixes agree, a chunked
 * body scanned in any split ends at the same byte with the same verdict). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "property violated: %s\n", what);
		abort();
	}
}

static void in_input(const char *buf, size_t size, pl_h1_str s)
{
	must(s.len == 0 || (s.p >= buf && s.p + s.len <= buf + size), "span outside the input");
}

static void check_msg(const char *buf, size_t size, const pl_h1_msg *m, bool request)
{
	must(m->head_len <= size, "head longer than the input");
	for (uint32_t i = 0; i < m->nheaders; i++) {
		in_input(buf, m->head_len, m->headers[i].name);
		in_input(buf, m->head_len, m->headers[i].value);
		must(m->headers[i].name.len > 0, "empty field name accepted");
		for (uint32_t k = 0; k < m->headers[i].value.len; k++) {
			unsigned char c = (unsigned char)m->headers[i].value.p[k];
			must(c == '\t' || (c >= 0x20 && c != 0x7f), "control byte in an accepted value");
		}
	}
	if (request) {
		in_input(buf, m->head_len, m->target);
		must(m->body != PL_H1_BODY_CLOSE, "a request framed by close");
		must(!(m->body == PL_H1_BODY_CHUNKED && pl_h1_find(m, "content-length")), "CL with chunked accepted");
	}
}

/* Scans buf as a chunked body in one call, then in pieces of step: both must agree. */
static void chunked_agree(const char *buf, size_t size, const pl_h1_limits *lim, size_t step)
{
	pl_h1_chunked a, b;
	pl_h1_error ea, eb;
	bool da = false, db = false;

	pl_h1_chunked_init(&a);
	ssize_t ra = pl_h1_chunked_scan(&a, buf, size, lim, 400, &da, &ea);
	pl_h1_chunked_init(&b);
	size_t used = 0;
	ssize_t rb = 0;
	while (used < size && !db) {
		size_t n = size - used < step ? size - used : step;
		rb = pl_h1_chunked_scan(&b, buf + used, n, lim, 400, &db, &eb);
		if (rb < 0)
			break;
		must((size_t)rb <= n, "scan took more than it was given");
		must(db || (size_t)rb == n, "scan stopped early without an end");
		used += (size_t)rb;
	}
	must((ra < 0) == (rb < 0), "split changed the verdict");
	if (ra < 0) {
		must(ea.offset == eb.offset && strcmp(ea.what, eb.what) == 0, "split changed the error");
		return;
	}
	must(da == db, "split changed whether the body ended");
	if (da)
		must((size_t)ra == used, "split changed where the body ended");
}

/* Reads what follows a head as m's body: passing framing through in one call, and taking it off in
 * pieces of step, both must stop at the same byte with the same verdict, every data span inside
 * what was used. */
static void body_agree(const char *buf, size_t size, const pl_h1_msg *m, const pl_h1_limits *lim, size_t step)
{
	pl_h1_body_rd a, b;
	pl_h1_error ea, eb;

	pl_h1_body_start(&a, m);
	pl_h1_body_start(&b, m);
	ssize_t ra = pl_h1_body_scan(&a, buf, size, lim, 502, &ea);
	size_t used = 0, data = 0;
	ssize_t rb = 0;
	while (used < size && !b.done) {
		size_t n = size - used < step ? size - used : step, off, dl;
		rb = pl_h1_body_data(&b, buf + used, n, lim, 502, &off, &dl, &eb);
		if (rb < 0)
			break;
		must(rb > 0 && (size_t)rb <= n, "body read took nothing or more than it was given");
		must(off + dl <= (size_t)rb, "data span outside what was used");
		used += (size_t)rb;
		data += dl;
	}
	must((ra < 0) == (rb < 0), "framing off and on disagree on the verdict");
	if (ra < 0)
		return;
	must(a.done == b.done, "framing off and on disagree on the end");
	if (a.done)
		must((size_t)ra == used, "framing off and on end at different bytes");
	must(data <= used, "more data than bytes");
	if (m->body == PL_H1_BODY_LENGTH || m->body == PL_H1_BODY_CLOSE)
		must(data == used, "a body with no framing lost bytes");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pl_h1_header hdrs[128];
	const char *buf = (const char *)data;
	pl_h1_limits lim;
	pl_h1_msg m, p;
	pl_h1_error e;

	pl_h1_limits_default(&lim);
	if (size && data[0] & 1) {      /* small limits sometimes, so the limit paths are reached */
		lim.max_line = 64;
		lim.max_head = 512;
		lim.max_headers = 8;
	}
	int r = pl_h1_parse_request(buf, size, &lim, hdrs, 128, &m, &e);
	if (r == 1) {
		check_msg(buf, size, &m, true);
		/* The head alone parses the same way. */
		must(pl_h1_parse_request(buf, m.head_len, &lim, hdrs, 128, &p, &e) == 1 && p.head_len == m.head_len &&
		     p.body == m.body, "head alone parses differently");
		pl_h1_parse_request(buf, size, &lim, hdrs, 128, &m, &e);
		if (m.body == PL_H1_BODY_CHUNKED)
			chunked_agree(buf + m.head_len, size - m.head_len, &lim, 1 + (size % 7));
		body_agree(buf + m.head_len, size - m.head_len, &m, &lim, 1 + (size % 7));
	} else if (r == 0) {
		must(size < lim.max_head + 2, "more needed beyond the head limit");
	} else {
		must(e.status == 400 || e.status == 431 || e.status == 501 || e.status == 505, "unexpected status");
		must(e.offset <= size && e.what, "error without an offset inside the input");
	}
	/* A shorter prefix never fails where the whole parsed. */
	if (r == 1 && size > 1)
		must(pl_h1_parse_request(buf, size / 2 < m.head_len ? size / 2 : m.head_len - 1, &lim, hdrs, 128, &p, &e) == 0,
		     "a prefix of a valid head was refused or complete");

	r = pl_h1_parse_response(buf, size, &lim, size > 1 && data[1] & 1 ? PL_H1_HEAD : PL_H1_GET, hdrs, 128, &m, &e);
	if (r == 1) {
		check_msg(buf, size, &m, false);
		body_agree(buf + m.head_len, size - m.head_len, &m, &lim, 1 + (size % 3));
	} else if (r < 0)
		must(e.status == 502, "response error other than 502");

	chunked_agree(buf, size, &lim, 1 + (size % 5));
	(void)pl_h1_detect(buf, size, lim.max_line);
	return 0;
}
