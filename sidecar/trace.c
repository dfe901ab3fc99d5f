/* W3C Trace Context Level 1 (https://www.w3.org/TR/trace-context/), section 3.2: traceparent. */
#include "trace.h"

#include <stdio.h>
#include <string.h>

#include "http1/http1.h"

static bool lower_hex(const char *p, size_t n, bool *all_zero)
{
	bool zero = true;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		zero = zero && c == '0';
	}
	if (all_zero)
		*all_zero = zero;
	return true;
}

bool px_traceparent_parse(const char *v, size_t n, px_trace *t)
{
	bool zero;

	if (n < PX_TRACEPARENT_LEN || !lower_hex(v, 2, NULL) || memcmp(v, "ff", 2) == 0)
		return false;
	/* Version 00 is exactly 55 bytes; a later version may carry more after a '-'. */
	if (memcmp(v, "00", 2) == 0 ? n != PX_TRACEPARENT_LEN : n > PX_TRACEPARENT_LEN && v[PX_TRACEPARENT_LEN] != '-')
		return false;
	if (v[2] != '-' || v[35] != '-' || v[52] != '-')
		return false;
	if (!lower_hex(v + 3, 32, &zero) || zero)
		return false;
	if (!lower_hex(v + 36, 16, &zero) || zero)
		return false;
	if (!lower_hex(v + 53, 2, NULL))
		return false;
	memcpy(t->trace_id, v + 3, 32);
	t->trace_id[32] = 0;
	memcpy(t->parent_id, v + 36, 16);
	t->parent_id[16] = 0;
	unsigned hi = (unsigned)(v[53] <= '9' ? v[53] - '0' : v[53] - 'a' + 10);
	unsigned lo = (unsigned)(v[54] <= '9' ? v[54] - '0' : v[54] - 'a' + 10);
	t->flags = hi << 4 | lo;
	return true;
}

int px_trace_of(const pl_h1_msg *m, px_trace *t)
{
	const pl_h1_header *found = NULL;

	for (uint32_t i = 0; i < m->nheaders; i++) {
		const pl_h1_header *h = &m->headers[i];
		if (h->name.len != 11 || !pl_h1_eq(h->name, "traceparent"))
			continue;
		if (found)
			return -1;
		found = h;
	}
	if (!found)
		return 0;
	return px_traceparent_parse(found->value.p, found->value.len, t) ? 1 : -1;
}

void px_trace_new(px_trace *t, uint64_t r1, uint64_t r2, uint64_t r3, bool sampled)
{
	if (r1 == 0 && r2 == 0)
		r2 = 1;
	if (r3 == 0)
		r3 = 1;
	snprintf(t->trace_id, sizeof(t->trace_id), "%016llx%016llx", (unsigned long long)r1, (unsigned long long)r2);
	snprintf(t->parent_id, sizeof(t->parent_id), "%016llx", (unsigned long long)r3);
	t->flags = sampled ? 1 : 0;
}

void px_trace_field(const px_trace *t, char *out)
{
	snprintf(out, 72, "traceparent: 00-%s-%s-%02x\r\n", t->trace_id, t->parent_id, t->flags & 0xff);
}
