/* Per-request policy decisions (routes, backends, authorization, retry budget, ejection, faults). */
#include <string.h>

#include "base/duration.h"
#include "http1/http1.h"
#include "policy.h"

unsigned px_method_bit(enum pl_h1_method m)
{
	switch (m) {
	case PL_H1_GET: return PL_METHOD_GET;
	case PL_H1_HEAD: return PL_METHOD_HEAD;
	case PL_H1_POST: return PL_METHOD_POST;
	case PL_H1_PUT: return PL_METHOD_PUT;
	case PL_H1_DELETE: return PL_METHOD_DELETE;
	case PL_H1_CONNECT: return PL_METHOD_CONNECT;
	case PL_H1_OPTIONS: return PL_METHOD_OPTIONS;
	case PL_H1_TRACE: return PL_METHOD_TRACE;
	case PL_H1_PATCH: return PL_METHOD_PATCH;
	default: return 0;
	}
}

static bool span_is(pl_h1_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && memcmp(s.p, lit, n) == 0;
}

static bool span_has_prefix(pl_h1_str s, const char *lit, size_t n)
{
	return s.len >= n && memcmp(s.p, lit, n) == 0;
}

bool px_route_matches(const pl_route_match *rm, const pl_h1_msg *m, pl_h1_str path)
{
	if (rm->path_kind == PL_PATH_EXACT && !span_is(path, rm->path))
		return false;
	if (rm->path_kind == PL_PATH_PREFIX && !span_has_prefix(path, rm->path, strlen(rm->path)))
		return false;
	if (rm->method && !(rm->method & px_method_bit(m->method_id)))
		return false;
	for (size_t i = 0; i < rm->nheaders; i++) {
		const pl_header_match *h = &rm->headers[i];
		const pl_h1_header *f = pl_h1_find(m, h->name);   /* the model keeps names as written */
		if (h->kind == PL_HEADER_PRESENT ? !f : h->kind == PL_HEADER_ABSENT ? f != NULL :
		    !f || !span_is(f->value, h->value))
			return false;
	}
	return true;
}

const pl_route *px_route_select(const pl_outbound_policy *op, const pl_h1_msg *m, pl_h1_str path)
{
	for (size_t i = 0; i < op->nroutes; i++)
		if (px_route_matches(&op->routes[i].match, m, path))
			return &op->routes[i];
	return NULL;
}

static uint64_t weight_of(const pl_route *r, size_t i, const bool *skip)
{
	return skip && skip[i] ? 0 : (uint64_t)(r->backends[i].weight > 0 ? r->backends[i].weight : 0);
}

const pl_backend *px_backend_pick(const pl_route *r, uint32_t rnd, const bool *skip)
{
	uint64_t total = 0;

	for (size_t i = 0; i < r->nbackends; i++)
		total += weight_of(r, i, skip);
	if (!total)
		return NULL;
	uint64_t at = (uint64_t)rnd * total >> 32;   /* uniform in [0, total) without a modulo bias worth naming */
	for (size_t i = 0; i < r->nbackends; i++) {
		uint64_t w = weight_of(r, i, skip);
		if (at < w)
			return &r->backends[i];
		at -= w;
	}
	return NULL;
}

pl_h1_str px_spiffe_namespace(const char *id)
{
	const char *p = id && strncmp(id, "spiffe://", 9) == 0 ? strchr(id + 9, '/') : NULL;

	if (!p || strncmp(p, "/ns/", 4) != 0)
		return (pl_h1_str){"", 0};
	p += 4;
	const char *e = strchr(p, '/');
	return (pl_h1_str){p, (uint32_t)(e ? (size_t)(e - p) : strlen(p))};
}

/* "*" is any authenticated caller; a pattern ending in "/" then "*" matches IDs under that prefix. */
static bool identity_matches(const char *pattern, const char *id)
{
	size_t n = strlen(pattern);

	if (!id)
		return false;
	if (n == 1 && pattern[0] == '*')
		return true;
	if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '/')
		return strncmp(pattern, id, n - 1) == 0 && id[n - 1] != '\0';
	return strcmp(pattern, id) == 0;
}

static bool path_matches(const char *pattern, pl_h1_str path)
{
	size_t n = strlen(pattern);

	if (n && pattern[n - 1] == '*')
		return span_has_prefix(path, pattern, n - 1);
	return span_is(path, pattern);
}

static bool rule_allows(const pl_authz_rule *r, const char *peer_id, pl_h1_str ns, const pl_h1_msg *m,
			pl_h1_str path)
{
	bool ok = !r->identities.n;
	for (size_t i = 0; !ok && i < r->identities.n; i++)
		ok = identity_matches(r->identities.v[i], peer_id);
	if (!ok)
		return false;
	ok = !r->namespaces.n;
	for (size_t i = 0; !ok && i < r->namespaces.n; i++)
		ok = span_is(ns, r->namespaces.v[i]);   /* a plaintext caller's is empty */
	if (!ok)
		return false;
	ok = !r->paths.n;
	for (size_t i = 0; !ok && i < r->paths.n; i++)
		ok = path_matches(r->paths.v[i], path);
	if (!ok)
		return false;
	return !r->methods || (r->methods & px_method_bit(m->method_id));
}

bool px_authorize(const pl_authorization *a, const char *peer_id, const pl_h1_msg *m, pl_h1_str path,
		  const char **rule)
{
	*rule = NULL;
	if (!a->set || !a->nrules)
		return true;
	pl_h1_str ns = px_spiffe_namespace(peer_id);
	for (size_t i = 0; i < a->nrules; i++)
		if (rule_allows(&a->rules[i], peer_id, ns, m, path)) {
			*rule = a->rules[i].name;
			return true;
		}
	return false;
}

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '~';
}

int px_path_normalize(pl_h1_str path, char *out, uint32_t cap)
{
	char dec[PL_H1_DEFAULT_MAX_LINE];
	uint32_t o = 0, i = 0, n0 = 0;

	if (!path.len || path.p[0] != '/' || cap < 1 || path.len > sizeof(dec))
		return -1;
	/* Percent-decoding first, as the app will: an unreserved character is the same path either
	 * way (RFC 3986 6.2.2.2), so "/%61dmin" is matched as "/admin". Encoded separators and dots
	 * ("%2F", "%5C", "%2E"), malformed escapes and a raw backslash mean different paths to
	 * different servers: refused. Other escapes stay as they are. */
	for (uint32_t k = 0; k < path.len; k++) {
		char ch = path.p[k];
		if (ch == '\\')
			return -1;
		if (ch == '%') {
			if (k + 2 >= path.len || hexdig(path.p[k + 1]) < 0 || hexdig(path.p[k + 2]) < 0)
				return -1;
			int v = hexdig(path.p[k + 1]) * 16 + hexdig(path.p[k + 2]);
			if (v == '/' || v == '\\' || v == '.')
				return -1;
			if (unreserved(v)) {
				dec[n0++] = (char)v;
				k += 2;
				continue;
			}
		}
		dec[n0++] = ch;
	}
	bool dir = false;       /* the result ends in a directory: a trailing slash */
	while (i < n0) {
		while (i < n0 && dec[i] == '/')   /* "//" is "/" */
			i++;
		uint32_t s = i;
		while (i < n0 && dec[i] != '/')
			i++;
		uint32_t n = i - s;
		if (n == 0)
			break;
		/* "..;x" and ".;x" are dot segments to servers that strip path parameters (Tomcat,
		 * Jetty): ambiguous, refused. */
		if ((n > 1 && dec[s] == '.' && dec[s + 1] == ';') || (n > 2 && dec[s] == '.' && dec[s + 1] == '.' && dec[s + 2] == ';'))
			return -1;
		if (n == 1 && dec[s] == '.') {
			dir = true;
			continue;
		}
		if (n == 2 && dec[s] == '.' && dec[s + 1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			dir = true;
			continue;
		}
		if (o + 1 + n > cap)
			return -1;
		out[o++] = '/';
		memcpy(out + o, dec + s, n);
		o += n;
		dir = false;
	}
	if (dec[n0 - 1] == '/')
		dir = true;
	if (o == 0 || dir) {
		if (o >= cap)
			return -1;
		out[o++] = '/';
	}
	return (int)o;
}

/* --- retry budget: a sliding window of PX_BUDGET_SLOTS slots --- */

bool px_retry_on(unsigned on, int cause, int status)
{
	switch (cause) {
	case PX_CAUSE_CONNECT:
	case PX_CAUSE_TLS:
		return on & (PL_RETRY_CONNECT_FAILURE | PL_RETRY_5XX | PL_RETRY_GATEWAY_ERROR);
	case PX_CAUSE_RESET:
		return on & (PL_RETRY_RESET | PL_RETRY_5XX | PL_RETRY_GATEWAY_ERROR);
	case PX_CAUSE_TIMEOUT:
		return on & (PL_RETRY_5XX | PL_RETRY_GATEWAY_ERROR);
	case PX_CAUSE_GRPC:
		switch (status) {
		case 1: return on & PL_RETRY_GRPC_CANCELLED;
		case 4: return on & PL_RETRY_GRPC_DEADLINE_EXCEEDED;
		case 8: return on & PL_RETRY_GRPC_RESOURCE_EXHAUSTED;
		case 13: return on & PL_RETRY_GRPC_INTERNAL;
		case 14: return on & PL_RETRY_GRPC_UNAVAILABLE;
		default: return false;
		}
	default:
		return ((on & PL_RETRY_5XX) && status >= 500) ||
		       ((on & PL_RETRY_GATEWAY_ERROR) && (status == 502 || status == 503 || status == 504));
	}
}

void px_budget_init(px_retry_budget *b, const pl_retries *r)
{
	memset(b, 0, sizeof(*b));
	b->percent = r->set ? r->budget_percent : 20;
	b->min_per_second = r->set ? r->budget_min_per_second : 10;
	b->window_ns = r->set && r->budget_window_ns > 0 ? r->budget_window_ns : INT64_C(10000000000);
}

static int slot(px_retry_budget *b, int64_t now_ns)
{
	int64_t width = b->window_ns / PX_BUDGET_SLOTS, start = now_ns - now_ns % width;
	int i = (int)((now_ns / width) % PX_BUDGET_SLOTS);

	if (b->slot_start[i] != start) {
		b->slot_start[i] = start;
		b->requests[i] = b->retries[i] = 0;
	}
	return i;
}

void px_budget_request(px_retry_budget *b, int64_t now_ns)
{
	b->requests[slot(b, now_ns)]++;
}

bool px_budget_try_retry(px_retry_budget *b, int64_t now_ns)
{
	int cur = slot(b, now_ns);
	int64_t width = b->window_ns / PX_BUDGET_SLOTS, oldest = now_ns - b->window_ns;
	uint64_t reqs = 0, rets = 0;

	for (int i = 0; i < PX_BUDGET_SLOTS; i++)
		if (b->slot_start[i] + width > oldest) {
			reqs += b->requests[i];
			rets += b->retries[i];
		}
	/* Allowed: retries * 100 <= percent * requests + 100 * min_per_second * window seconds. */
	uint64_t allowance = (uint64_t)b->percent * reqs +
			     (uint64_t)b->min_per_second * 100 * (uint64_t)(b->window_ns / INT64_C(1000000)) / 1000;
	if ((rets + 1) * 100 > allowance)
		return false;
	b->retries[cur]++;
	return true;
}

/* --- outlier ejection --- */

bool px_outlier_result(px_outlier *o, const pl_circuit_breaker *cb, bool failure, int64_t now_ns)
{
	if (!failure) {
		o->consecutive = 0;
		o->unreachable = 0;
		if (!px_outlier_ejected(o, now_ns))
			o->ejections = 0;
		return false;
	}
	int threshold = cb->set && cb->consecutive_failures > 0 ? cb->consecutive_failures : 5;
	if (++o->consecutive < threshold || px_outlier_ejected(o, now_ns))
		return false;
	int64_t base = cb->set && cb->base_ejection_ns > 0 ? cb->base_ejection_ns : INT64_C(30000000000);
	int64_t max = cb->set && cb->max_ejection_ns > 0 ? cb->max_ejection_ns : INT64_C(300000000000);
	o->ejections++;
	int64_t d = o->ejections > max / base ? max : base * o->ejections;
	o->ejected_until = now_ns + (d < max ? d : max);
	o->consecutive = 0;
	return true;
}

int64_t px_outlier_unreachable(px_outlier *o, int64_t now_ns)
{
	int64_t d = INT64_C(1000000000) << (o->unreachable < 5 ? o->unreachable : 5);

	if (d > INT64_C(30000000000))
		d = INT64_C(30000000000);
	o->unreachable++;
	if (o->ejected_until < now_ns + d)
		o->ejected_until = now_ns + d;
	return d;
}

bool px_outlier_ejected(const px_outlier *o, int64_t now_ns)
{
	return now_ns < o->ejected_until;
}

/* --- fault injection --- */

static bool roll_hits(uint32_t roll, int percent)
{
	return percent > 0 && ((uint64_t)roll * 100 >> 32) < (uint64_t)percent;
}

px_fault_decision px_fault_roll(const pl_fault *f, uint32_t roll_delay, uint32_t roll_abort)
{
	px_fault_decision d = {0, 0};

	if (f->delay_set && roll_hits(roll_delay, f->delay_percent))
		d.delay_ns = f->delay_ns;
	if (f->abort_set && roll_hits(roll_abort, f->abort_percent))
		d.abort_status = f->abort_status;
	return d;
}

/* --- gRPC --- */

int64_t px_grpc_timeout(const char *v, size_t n)
{
	if (!v || n < 2 || n > 9)
		return 0;
	int64_t x = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 0;
		x = x * 10 + (v[i] - '0');
	}
	/* 8 digits of hours overflow int64 ns: anything past 30 days is 30 days. */
	const int64_t cap = 30LL * 24 * 3600 * PL_NS_PER_S;
	switch (v[n - 1]) {
	case 'H': return x > 720 ? cap : x * 3600 * PL_NS_PER_S;
	case 'M': return x > 43200 ? cap : x * 60 * PL_NS_PER_S;
	case 'S': return x > 2592000 ? cap : x * PL_NS_PER_S;
	case 'm': return x * PL_NS_PER_MS;
	case 'u': return x * 1000;
	case 'n': return x;
	default: return 0;
	}
}

int px_grpc_code(int status)
{
	switch (status) {
	case 400: return 13;  /* INTERNAL */
	case 401: return 16;  /* UNAUTHENTICATED */
	case 403: return 7;   /* PERMISSION_DENIED */
	case 404: return 12;  /* UNIMPLEMENTED */
	case 429: case 502: case 503: return 14; /* UNAVAILABLE */
	case 504: return 4;   /* DEADLINE_EXCEEDED */
	default: return 2;    /* UNKNOWN */
	}
}
