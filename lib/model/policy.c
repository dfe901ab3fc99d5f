/* Decoding and validating TrafficPolicy and MeshIdentity: every rule of the README reference, once. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/duration.h"
#include "json/json.h"
#include "model/decode.h"
#include "model/model.h"
#include "model/objects.h"

const char *const pl_method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT",
					   "OPTIONS", "TRACE", "PATCH", NULL};
const char *const pl_retry_on_names[] = {"5xx", "gateway-error", "connect-failure", "reset", "cancelled",
					   "deadline-exceeded", "internal", "resource-exhausted", "unavailable", NULL};
const char *const pl_mtls_names[] = {"STRICT", "PERMISSIVE", "DISABLED", NULL};
const char *const pl_log_filter_names[] = {"All", "Errors", NULL};
const char *const pl_trace_mode_names[] = {"Add", "Propagate", NULL};
static const char *const selector_op_names[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};

const char *pl_mtls_mode_name(pl_mtls_mode m)
{
	return pl_mtls_names[m];
}

const char *pl_method_name(unsigned bit)
{
	for (int i = 0; i < PL_METHOD_COUNT; i++) {
		if (bit == (1u << i))
			return pl_method_names[i];
	}
	return "";
}

/* ---- pattern twins (see crds/) ---- */

static bool http_path_ok(const char *s)
{
	if (s[0] != '/')
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f)
			return false;
	}
	return true;
}

static bool authz_path_ok(const char *s)
{
	if (!http_path_ok(s))
		return false;
	const char *star = strchr(s, '*');
	return !star || star[1] == '\0';
}

static bool header_name_ok(const char *s)
{
	static const char extra[] = "!#$%&'*+.^_`|~-";

	if (!*s)
		return false;
	for (; *s; s++) {
		char c = *s;
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && !strchr(extra, c))
			return false;
	}
	return true;
}

static bool trust_domain_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool an = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!an && c != '.' && c != '_' && c != '-')
			return false;
		if (!an && (i == 0 || i == n - 1))
			return false;
	}
	return true;
}

/* ^(\*|spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~%+=:@-]+)*(/\*)?)$ */
static bool identity_ok(const char *s)
{
	static const char seg_extra[] = "._~%+=:@-";

	if (strcmp(s, "*") == 0)
		return true;
	if (strncmp(s, "spiffe://", 9) != 0)
		return false;
	const char *p = s + 9;
	const char *td = p;
	while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')
		p++;
	if (p == td)
		return false;
	while (*p == '/') {
		p++;
		if (p[0] == '*' && p[1] == '\0')
			return true;
		const char *seg = p;
		while (*p && *p != '/' &&
		       ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			strchr(seg_extra, *p)))
			p++;
		if (p == seg)
			return false;
	}
	return *p == '\0';
}

static bool export_ok(const char *s)
{
	return strcmp(s, "*") == 0 || strcmp(s, ".") == 0 || pl_is_dns1123_label(s);
}

/* ---- shared pieces ---- */

static bool parse_rfc3339(const char *s, int64_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);

	if (!end)
		return false;
	if (*end == '.') {
		end++;
		while (*end >= '0' && *end <= '9')
			end++;
	}
	long off = 0;
	if (*end == 'Z') {
		end++;
	} else if ((*end == '+' || *end == '-') && strlen(end) == 6 && end[3] == ':') {
		for (int i = 1; i < 6; i++) {
			if (i != 3 && (end[i] < '0' || end[i] > '9'))
				return false;
		}
		int hh = (end[1] - '0') * 10 + (end[2] - '0'), mm = (end[4] - '0') * 10 + (end[5] - '0');
		if (hh > 23 || mm > 59)
			return false;
		off = (hh * 60 + mm) * 60 * (*end == '-' ? -1 : 1);
		end += 6;
	} else {
		return false;
	}
	if (*end)
		return false;
	/* timegm normalises 31 February into March: refuse dates that do not survive a round trip. */
	struct tm want = tm, back;
	time_t t = timegm(&tm);
	if (!gmtime_r(&t, &back) || back.tm_mday != want.tm_mday || back.tm_mon != want.tm_mon ||
	    back.tm_hour != want.tm_hour || back.tm_min != want.tm_min || back.tm_sec != want.tm_sec)
		return false;
	*out = (int64_t)t - off;
	return true;
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const pl_label *)a)->key, ((const pl_label *)b)->key);
}

void dec_labels(pl_dec *d, const json_t *obj, const char *key, bool validate, pl_labels *out)
{
	json_t *m;
	const char *k;
	json_t *v;

	if (!dec_object(d, obj, key, false, &m))
		return;
	size_t saved = dec_enter(d, key);
	out->v = pl_arena_calloc(d->arena, json_object_size(m), sizeof(*out->v));
	out->n = 0;
	json_object_foreach(m, k, v) {
		const char *val;
		size_t s2 = dec_enter_key(d, k);
		if (validate && !pl_is_label_key(k))
			dec_error(d, "must be a label key (optional DNS prefix and /, then at most 63 of "
				     "[A-Za-z0-9_.-] starting and ending alphanumeric)");
		if (dec_string_value(d, v, validate ? 63 : 0, validate ? pl_is_label_value : NULL,
				     "a label value ([A-Za-z0-9_.-], starting and ending alphanumeric)", &val)) {
			out->v[out->n].key = pl_arena_strdup(d->arena, k);
			out->v[out->n].value = val;
			out->n++;
		}
		dec_leave(d, s2);
	}
	qsort(out->v, out->n, sizeof(*out->v), label_cmp);
	dec_leave(d, saved);
}

void dec_meta(pl_dec *d, const json_t *doc, bool strict, pl_meta *m)
{
	json_t *meta = NULL;
	const char *ts;

	m->namespace = PL_DEFAULT_NAMESPACE;
	m->name = "";
	m->created = INT64_MAX;
	if (!dec_object(d, doc, "metadata", true, &meta))
		return;
	size_t saved = dec_enter(d, "metadata");
	dec_string(d, meta, "name", strict, 253, pl_is_dns1123_subdomain,
		   "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')", &m->name);
	dec_string(d, meta, "namespace", false, 63, pl_is_dns1123_label,
		   "a DNS-1123 label (lowercase letters, digits and '-')", &m->namespace);
	json_t *gen = json_object_get(meta, "generation");
	if (json_is_integer(gen))
		m->generation = json_integer_value(gen);
	if (dec_string(d, meta, "creationTimestamp", false, 64, NULL, NULL, &ts) &&
	    !parse_rfc3339(ts, &m->created))
		dec_error_at(d, "creationTimestamp", "must be an RFC 3339 time such as 2026-01-02T03:04:05Z, got \"%s\"", ts);
	dec_labels(d, meta, "labels", strict, &m->labels);
	dec_labels(d, meta, "annotations", false, &m->annotations);
	dec_leave(d, saved);
}

static bool dec_string_list(pl_dec *d, const json_t *obj, const char *key, size_t max, size_t maxlen,
			    pl_str_check check, const char *what, bool unique, pl_strv *out)
{
	json_t *arr, *v;
	size_t i;

	if (!dec_list(d, obj, key, false, 0, max, &arr))
		return false;
	size_t saved = dec_enter(d, key);
	out->v = pl_arena_calloc(d->arena, json_array_size(arr), sizeof(*out->v));
	out->n = 0;
	json_array_foreach(arr, i, v) {
		const char *s;
		size_t s2 = dec_enter_index(d, i);
		if (dec_string_value(d, v, maxlen, check, what, &s)) {
			bool dup = false;
			for (size_t j = 0; unique && j < out->n && !dup; j++)
				dup = strcmp(out->v[j], s) == 0;
			if (dup)
				dec_error(d, "duplicate value \"%s\"", s);
			else
				out->v[out->n++] = s;
		}
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
	return true;
}

/* A list of enum names as a bit set; duplicates are errors. */
static bool dec_enum_set(pl_dec *d, const json_t *obj, const char *key, size_t min,
			 const char *const *names, unsigned *out)
{
	json_t *arr, *v;
	size_t i;
	unsigned bits = 0;

	if (!dec_list(d, obj, key, false, min, 0, &arr))
		return false;
	size_t saved = dec_enter(d, key);
	json_array_foreach(arr, i, v) {
		int idx;
		size_t s2 = dec_enter_index(d, i);
		if (dec_enum_value(d, v, names, &idx)) {
			if (bits & (1u << idx))
				dec_error(d, "duplicate value \"%s\"", names[idx]);
			bits |= 1u << idx;
		}
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
	*out = bits;
	return true;
}

/* A unique name for list entries: given, or <prefix>-<index>; duplicates are errors. */
static const char *entry_name(pl_dec *d, const json_t *obj, const char *prefix, size_t i,
			      const char **seen, size_t nseen)
{
	const char *name = NULL;
	bool given = dec_has(obj, "name");

	if (!dec_string(d, obj, "name", false, 63, pl_is_dns1123_label,
			"a DNS-1123 label (lowercase letters, digits and '-')", &name)) {
		name = pl_arena_printf(d->arena, "%s-%zu", prefix, i);
		if (given)
			return name;   /* the bad name itself is already reported */
	}
	for (size_t j = 0; j < nseen; j++) {
		if (seen[j] && strcmp(seen[j], name) == 0) {
			if (given)
				dec_error_at(d, "name", "duplicate value \"%s\"", name);
			else
				dec_error_at(d, "name", "is required here: the default name \"%s\" is already taken", name);
			break;
		}
	}
	return name;
}

/* ---- MeshIdentity ---- */

static void dec_selector(pl_dec *d, const json_t *spec, pl_selector *sel)
{
	static const char *const known[] = {"matchLabels", "matchExpressions", NULL};
	static const char *const expr_known[] = {"key", "operator", "values", NULL};
	json_t *o, *arr, *e;
	size_t i;

	if (!dec_object(d, spec, "selector", false, &o))
		return;
	size_t saved = dec_enter(d, "selector");
	dec_known_keys(d, o, known);
	dec_labels(d, o, "matchLabels", true, &sel->match_labels);
	if (dec_list(d, o, "matchExpressions", false, 0, 0, &arr)) {
		size_t s1 = dec_enter(d, "matchExpressions");
		sel->expr = pl_arena_calloc(d->arena, json_array_size(arr), sizeof(*sel->expr));
		json_array_foreach(arr, i, e) {
			pl_sel_expr *x = &sel->expr[sel->nexpr];
			int op = -1;
			size_t s2 = dec_enter_index(d, i);
			if (!dec_is_object(d, e)) {
				dec_leave(d, s2);
				continue;
			}
			dec_known_keys(d, e, expr_known);
			bool ok = dec_string(d, e, "key", true, 317, pl_is_label_key, "a label key", &x->key);
			ok = dec_enum(d, e, "operator", true, selector_op_names, &op) && ok;
			dec_string_list(d, e, "values", 0, 63, pl_is_label_value, "a label value", false,
					&x->values);
			if (op == PL_SEL_IN || op == PL_SEL_NOT_IN) {
				if (x->values.n == 0)
					dec_error_at(d, "values", "must have at least 1 item for operator %s",
						     selector_op_names[op]);
			} else if (op >= 0 && x->values.n > 0) {
				dec_error_at(d, "values", "must be empty for operator %s", selector_op_names[op]);
			}
			if (ok) {
				x->op = (pl_sel_op)op;
				sel->nexpr++;
			}
			dec_leave(d, s2);
		}
		dec_leave(d, s1);
	}
	dec_leave(d, saved);
}

void dec_mesh_identity(pl_dec *d, const json_t *doc, pl_mesh_identity *mi)
{
	static const char *const known[] = {"selector", "trustDomain", "certificate", "mtls", NULL};
	static const char *const cert_known[] = {"ttl", "renewBefore", NULL};
	static const char *const mtls_known[] = {"mode", NULL};
	json_t *spec, *o;
	int mode;

	dec_meta(d, doc, true, &mi->meta);
	mi->trust_domain = "cluster.local";
	mi->ttl_ns = 24 * PL_NS_PER_H;
	mi->renew_before_ns = 0;
	mi->mtls_mode = PL_MTLS_PERMISSIVE;
	if (!dec_object(d, doc, "spec", false, &spec)) {
		mi->renew_before_ns = mi->ttl_ns / 3;
		return;
	}
	size_t saved = dec_enter(d, "spec");
	dec_known_keys(d, spec, known);
	dec_selector(d, spec, &mi->selector);
	dec_string(d, spec, "trustDomain", false, 255, trust_domain_ok,
		   "a trust domain (lowercase letters, digits, '.', '_' and '-')", &mi->trust_domain);
	if (dec_object(d, spec, "certificate", false, &o)) {
		size_t s1 = dec_enter(d, "certificate");
		dec_known_keys(d, o, cert_known);
		dec_duration(d, o, "ttl", false, 10 * PL_NS_PER_M, 8760 * PL_NS_PER_H, &mi->ttl_ns);
		if (dec_duration(d, o, "renewBefore", false, 0, 0, &mi->renew_before_ns) &&
		    (mi->renew_before_ns <= 0 || mi->renew_before_ns >= mi->ttl_ns)) {
			char ttl[32];
			pl_duration_format(mi->ttl_ns, ttl, sizeof(ttl));
			dec_error_at(d, "renewBefore", "must be greater than 0 and less than ttl (%s), got %s",
				     ttl, json_string_value(json_object_get(o, "renewBefore")));
		}
		dec_leave(d, s1);
	}
	if (mi->renew_before_ns == 0)
		mi->renew_before_ns = mi->ttl_ns / 3;
	if (dec_object(d, spec, "mtls", false, &o)) {
		size_t s1 = dec_enter(d, "mtls");
		dec_known_keys(d, o, mtls_known);
		if (dec_enum(d, o, "mode", false, pl_mtls_names, &mode))
			mi->mtls_mode = (pl_mtls_mode)mode;
		dec_leave(d, s1);
	}
	dec_leave(d, saved);
}

/* ---- TrafficPolicy ---- */

static const char dns1035_what[] = "a DNS-1035 label (lowercase letters, digits and '-', starting with a letter)";

static void dec_match(pl_dec *d, const json_t *route, pl_route_match *m)
{
	static const char *const known[] = {"path", "method", "headers", NULL};
	static const char *const path_known[] = {"exact", "prefix", NULL};
	static const char *const hdr_known[] = {"name", "exact", "present", NULL};
	static const char path_what[] = "an HTTP path starting with / without spaces or control characters";
	json_t *o, *p, *arr, *h;
	size_t i;
	int method;

	if (!dec_object(d, route, "match", false, &o))
		return;
	size_t saved = dec_enter(d, "match");
	dec_known_keys(d, o, known);
	if (dec_object(d, o, "path", false, &p)) {
		size_t s1 = dec_enter(d, "path");
		dec_known_keys(d, p, path_known);
		bool has_exact = dec_has(p, "exact");
		bool has_prefix = dec_has(p, "prefix");
		if (has_exact == has_prefix)
			dec_error(d, "must set exactly one of exact or prefix");
		else if (has_exact && dec_string(d, p, "exact", true, 1024, http_path_ok, path_what, &m->path))
			m->path_kind = PL_PATH_EXACT;
		else if (has_prefix && dec_string(d, p, "prefix", true, 1024, http_path_ok, path_what, &m->path))
			m->path_kind = PL_PATH_PREFIX;
		dec_leave(d, s1);
	}
	if (dec_enum(d, o, "method", false, pl_method_names, &method))
		m->method = 1u << method;
	if (dec_list(d, o, "headers", false, 0, 16, &arr)) {
		size_t s1 = dec_enter(d, "headers");
		m->headers = pl_arena_calloc(d->arena, json_array_size(arr), sizeof(*m->headers));
		json_array_foreach(arr, i, h) {
			pl_header_match *hm = &m->headers[m->nheaders];
			size_t s2 = dec_enter_index(d, i);
			if (!dec_is_object(d, h)) {
				dec_leave(d, s2);
				continue;
			}
			size_t before = d->errs->n;
			dec_known_keys(d, h, hdr_known);
			dec_string(d, h, "name", true, 256, header_name_ok, "an HTTP header name (token characters)",
				   &hm->name);
			bool has_exact = dec_has(h, "exact");
			bool has_present = dec_has(h, "present");
			bool present = true;
			if (has_exact == has_present) {
				dec_error(d, "must set exactly one of exact or present");
			} else if (has_exact) {
				dec_string(d, h, "exact", true, 4096, NULL, NULL, &hm->value);
				hm->kind = PL_HEADER_EXACT;
			} else if (dec_bool(d, h, "present", true, &present)) {
				hm->kind = present ? PL_HEADER_PRESENT : PL_HEADER_ABSENT;
			}
			if (d->errs->n == before)
				m->nheaders++;
			dec_leave(d, s2);
		}
		dec_leave(d, s1);
	}
	dec_leave(d, saved);
}

static void dec_backends(pl_dec *d, const json_t *route, const pl_traffic_policy *tp, pl_route *r)
{
	static const char *const known[] = {"name", "port", "weight", NULL};
	json_t *arr, *b;
	size_t i;

	if (!dec_list(d, route, "backends", false, 0, 16, &arr) || json_array_size(arr) == 0) {
		r->backends = pl_arena_calloc(d->arena, 1, sizeof(*r->backends));
		r->backends[0].name = tp->target_name ? tp->target_name : "";
		r->backends[0].weight = 1;
		r->nbackends = 1;
		return;
	}
	size_t saved = dec_enter(d, "backends");
	r->backends = pl_arena_calloc(d->arena, json_array_size(arr), sizeof(*r->backends));
	int total = 0;
	bool all_ok = true;
	json_array_foreach(arr, i, b) {
		pl_backend *be = &r->backends[r->nbackends];
		size_t s2 = dec_enter_index(d, i);
		if (!dec_is_object(d, b)) {
			dec_leave(d, s2);
			all_ok = false;
			continue;
		}
		size_t before = d->errs->n;
		dec_known_keys(d, b, known);
		memset(be, 0, sizeof(*be));
		be->weight = 1;
		dec_string(d, b, "name", true, 63, pl_is_dns1035_label, dns1035_what, &be->name);
		dec_int(d, b, "port", false, 1, 65535, &be->port);
		dec_int(d, b, "weight", false, 0, 1000, &be->weight);
		bool ok = d->errs->n == before;
		if (ok) {
			for (size_t j = 0; j < r->nbackends; j++) {
				if (strcmp(r->backends[j].name, be->name) == 0 && r->backends[j].port == be->port) {
					dec_error(d, "duplicate backend \"%s\" port %d (already backends[%zu])",
						  be->name, be->port, j);
					ok = false;
					break;
				}
			}
		}
		if (ok) {
			total += be->weight;
			r->nbackends++;
		} else {
			all_ok = false;
		}
		dec_leave(d, s2);
	}
	if (all_ok && total == 0)
		dec_error(d, "at least one backend must have a weight greater than 0");
	dec_leave(d, saved);
}

static void dec_retries(pl_dec *d, const json_t *route, pl_route *r)
{
	static const char *const known[] = {"attempts", "perTryTimeout", "retryOn", "budget", NULL};
	static const char *const budget_known[] = {"percent", "minPerSecond", "window", NULL};
	pl_retries *rt = &r->retries;
	json_t *o, *b;

	if (!dec_object(d, route, "retries", false, &o))
		return;
	size_t saved = dec_enter(d, "retries");
	dec_known_keys(d, o, known);
	rt->set = true;
	rt->attempts = 2;
	rt->retry_on = PL_RETRY_CONNECT_FAILURE | PL_RETRY_RESET;
	rt->budget_percent = 20;
	rt->budget_min_per_second = 10;
	rt->budget_window_ns = 10 * PL_NS_PER_S;
	dec_int(d, o, "attempts", false, 0, 10, &rt->attempts);
	if (dec_duration(d, o, "perTryTimeout", false, PL_NS_PER_MS, PL_NS_PER_H, &rt->per_try_timeout_ns) &&
	    r->timeout_ns && rt->per_try_timeout_ns > r->timeout_ns) {
		char t[32];
		pl_duration_format(r->timeout_ns, t, sizeof(t));
		dec_error_at(d, "perTryTimeout", "must not be longer than the route's timeout (%s), got %s", t,
			     json_string_value(json_object_get(o, "perTryTimeout")));
	}
	dec_enum_set(d, o, "retryOn", 1, pl_retry_on_names, &rt->retry_on);
	if (dec_object(d, o, "budget", false, &b)) {
		size_t s1 = dec_enter(d, "budget");
		dec_known_keys(d, b, budget_known);
		dec_int(d, b, "percent", false, 0, 100, &rt->budget_percent);
		dec_int(d, b, "minPerSecond", false, 0, 10000, &rt->budget_min_per_second);
		dec_duration(d, b, "window", false, PL_NS_PER_S, PL_NS_PER_M, &rt->budget_window_ns);
		dec_leave(d, s1);
	}
	dec_leave(d, saved);
}

static void dec_fault(pl_dec *d, const json_t *route, pl_fault *f)
{
	static const char *const known[] = {"delay", "abort", NULL};
	static const char *const delay_known[] = {"percent", "duration", NULL};
	static const char *const abort_known[] = {"percent", "httpStatus", NULL};
	json_t *o, *x;

	if (!dec_object(d, route, "faultInjection", false, &o))
		return;
	size_t saved = dec_enter(d, "faultInjection");
	dec_known_keys(d, o, known);
	if (!dec_has(o, "delay") && !dec_has(o, "abort"))
		dec_error(d, "must set at least one of delay or abort");
	if (dec_object(d, o, "delay", false, &x)) {
		size_t s1 = dec_enter(d, "delay");
		dec_known_keys(d, x, delay_known);
		bool ok = dec_int(d, x, "percent", true, 0, 100, &f->delay_percent);
		ok = dec_duration(d, x, "duration", true, PL_NS_PER_MS, PL_NS_PER_H, &f->delay_ns) && ok;
		f->delay_set = ok;
		dec_leave(d, s1);
	}
	if (dec_object(d, o, "abort", false, &x)) {
		size_t s1 = dec_enter(d, "abort");
		dec_known_keys(d, x, abort_known);
		bool ok = dec_int(d, x, "percent", true, 0, 100, &f->abort_percent);
		ok = dec_int(d, x, "httpStatus", true, 200, 599, &f->abort_status) && ok;
		f->abort_set = ok;
		dec_leave(d, s1);
	}
	dec_leave(d, saved);
}

static void dec_routes(pl_dec *d, const json_t *spec, pl_traffic_policy *tp)
{
	static const char *const known[] = {"name", "match", "backends", "timeout", "retries",
					    "faultInjection", NULL};
	json_t *arr, *r;
	size_t i;

	if (!dec_list(d, spec, "routes", false, 0, 64, &arr) || json_array_size(arr) == 0) {
		/* No routes: one route that sends everything to the target. */
		tp->routes = pl_arena_calloc(d->arena, 1, sizeof(*tp->routes));
		tp->routes[0].name = "default";
		tp->routes[0].backends = pl_arena_calloc(d->arena, 1, sizeof(pl_backend));
		tp->routes[0].backends[0].name = tp->target_name ? tp->target_name : "";
		tp->routes[0].backends[0].weight = 1;
		tp->routes[0].nbackends = 1;
		tp->nroutes = 1;
		return;
	}
	size_t saved = dec_enter(d, "routes");
	size_t n = json_array_size(arr);
	tp->routes = pl_arena_calloc(d->arena, n, sizeof(*tp->routes));
	const char **names = pl_arena_calloc(d->arena, n, sizeof(*names));
	json_array_foreach(arr, i, r) {
		pl_route *rt = &tp->routes[tp->nroutes];
		size_t s2 = dec_enter_index(d, i);
		if (!dec_is_object(d, r)) {
			dec_leave(d, s2);
			continue;
		}
		dec_known_keys(d, r, known);
		rt->name = names[i] = entry_name(d, r, "route", i, names, i);
		dec_match(d, r, &rt->match);
		dec_backends(d, r, tp, rt);
		dec_duration(d, r, "timeout", false, PL_NS_PER_MS, 24 * PL_NS_PER_H, &rt->timeout_ns);
		dec_retries(d, r, rt);
		dec_fault(d, r, &rt->fault);
		tp->nroutes++;
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
}

static void dec_circuit_breaker(pl_dec *d, const json_t *spec, pl_circuit_breaker *cb)
{
	static const char *const known[] = {"consecutiveFailures", "baseEjectionTime", "maxEjectionTime",
					    "maxPendingRequests", "maxConnections", NULL};
	json_t *o;

	if (!dec_object(d, spec, "circuitBreaker", false, &o))
		return;
	size_t saved = dec_enter(d, "circuitBreaker");
	dec_known_keys(d, o, known);
	cb->set = true;
	cb->consecutive_failures = 5;
	cb->base_ejection_ns = 30 * PL_NS_PER_S;
	cb->max_ejection_ns = 5 * PL_NS_PER_M;
	dec_int(d, o, "consecutiveFailures", false, 1, 1000, &cb->consecutive_failures);
	size_t before = d->errs->n;
	dec_duration(d, o, "baseEjectionTime", false, PL_NS_PER_S, PL_NS_PER_H, &cb->base_ejection_ns);
	bool max_given = dec_duration(d, o, "maxEjectionTime", false, PL_NS_PER_S, 24 * PL_NS_PER_H,
				      &cb->max_ejection_ns);
	/* Checked against the default too: the API server fills in maxEjectionTime 5m. */
	if (d->errs->n == before && cb->max_ejection_ns < cb->base_ejection_ns) {
		char b[32], m[32];
		pl_duration_format(cb->base_ejection_ns, b, sizeof(b));
		pl_duration_format(cb->max_ejection_ns, m, sizeof(m));
		dec_error_at(d, "maxEjectionTime", "must not be less than baseEjectionTime (%s), got %s%s", b, m,
			     max_given ? "" : " (the default)");
	}
	dec_int(d, o, "maxPendingRequests", false, 1, 1000000, &cb->max_pending);
	dec_int(d, o, "maxConnections", false, 1, 1000000, &cb->max_connections);
	dec_leave(d, saved);
}

static void dec_authorization(pl_dec *d, const json_t *spec, pl_authorization *az)
{
	static const char *const known[] = {"rules", NULL};
	static const char *const rule_known[] = {"name", "from", "to", NULL};
	static const char *const from_known[] = {"identities", "namespaces", NULL};
	static const char *const to_known[] = {"paths", "methods", NULL};
	json_t *o, *arr, *r, *x;
	size_t i;

	if (!dec_object(d, spec, "authorization", false, &o))
		return;
	size_t saved = dec_enter(d, "authorization");
	dec_known_keys(d, o, known);
	az->set = true;
	if (dec_list(d, o, "rules", false, 0, 64, &arr)) {
		size_t s1 = dec_enter(d, "rules");
		size_t n = json_array_size(arr);
		az->rules = pl_arena_calloc(d->arena, n, sizeof(*az->rules));
		const char **names = pl_arena_calloc(d->arena, n, sizeof(*names));
		json_array_foreach(arr, i, r) {
			pl_authz_rule *ru = &az->rules[az->nrules];
			size_t s2 = dec_enter_index(d, i);
			if (!dec_is_object(d, r)) {
				dec_leave(d, s2);
				continue;
			}
			dec_known_keys(d, r, rule_known);
			ru->name = names[i] = entry_name(d, r, "rule", i, names, i);
			if (dec_object(d, r, "from", false, &x)) {
				size_t s3 = dec_enter(d, "from");
				dec_known_keys(d, x, from_known);
				dec_string_list(d, x, "identities", 64, 2048, identity_ok,
						"a SPIFFE ID, a prefix ending in /*, or *", false, &ru->identities);
				dec_string_list(d, x, "namespaces", 64, 63, pl_is_dns1123_label,
						"a DNS-1123 label (lowercase letters, digits and '-')", false,
						&ru->namespaces);
				dec_leave(d, s3);
			}
			if (dec_object(d, r, "to", false, &x)) {
				size_t s3 = dec_enter(d, "to");
				dec_known_keys(d, x, to_known);
				dec_string_list(d, x, "paths", 64, 1024, authz_path_ok,
						"an HTTP path starting with /, optionally ending in *", false,
						&ru->paths);
				dec_enum_set(d, x, "methods", 0, pl_method_names, &ru->methods);
				dec_leave(d, s3);
			}
			az->nrules++;
			dec_leave(d, s2);
		}
		dec_leave(d, s1);
	}
	dec_leave(d, saved);
}

static void dec_rate_limit(pl_dec *d, const json_t *spec, pl_rate_limit *rl)
{
	static const char *const known[] = {"requestsPerSecond", "burst", NULL};
	json_t *o;

	if (!dec_object(d, spec, "rateLimit", false, &o))
		return;
	size_t saved = dec_enter(d, "rateLimit");
	dec_known_keys(d, o, known);
	rl->set = dec_int(d, o, "requestsPerSecond", true, 1, 1000000, &rl->requests_per_second);
	rl->burst = rl->requests_per_second;
	dec_int(d, o, "burst", false, 1, 1000000, &rl->burst);
	dec_leave(d, saved);
}

static void dec_access_log(pl_dec *d, const json_t *spec, pl_access_log *al)
{
	static const char *const known[] = {"enabled", "filter", NULL};
	json_t *o;
	int filter;

	if (!dec_object(d, spec, "accessLog", false, &o))
		return;
	size_t saved = dec_enter(d, "accessLog");
	dec_known_keys(d, o, known);
	dec_bool(d, o, "enabled", false, &al->enabled);
	if (dec_enum(d, o, "filter", false, pl_log_filter_names, &filter))
		al->filter = (pl_log_filter)filter;
	dec_leave(d, saved);
}

static void dec_tracing(pl_dec *d, const json_t *spec, pl_tracing *tr)
{
	static const char *const known[] = {"traceparent", "samplingPercentage", NULL};
	json_t *o;
	int mode;

	tr->sampling_percent = 1;
	if (!dec_object(d, spec, "tracing", false, &o))
		return;
	size_t saved = dec_enter(d, "tracing");
	dec_known_keys(d, o, known);
	tr->set = true;
	if (dec_enum(d, o, "traceparent", false, pl_trace_mode_names, &mode))
		tr->mode = (pl_trace_mode)mode;
	dec_number(d, o, "samplingPercentage", false, 0, 100, &tr->sampling_percent);
	dec_leave(d, saved);
}

void dec_traffic_policy(pl_dec *d, const json_t *doc, pl_traffic_policy *tp)
{
	static const char *const known[] = {"targetRef", "exportTo", "routes", "circuitBreaker",
					    "authorization", "rateLimit", "accessLog", "tracing", NULL};
	static const char *const target_known[] = {"kind", "name", "port", NULL};
	static const char *const target_kinds[] = {"Service", NULL};
	json_t *spec, *t;
	int kind;

	dec_meta(d, doc, true, &tp->meta);
	if (!dec_object(d, doc, "spec", true, &spec))
		return;
	size_t saved = dec_enter(d, "spec");
	dec_known_keys(d, spec, known);
	if (dec_object(d, spec, "targetRef", true, &t)) {
		size_t s1 = dec_enter(d, "targetRef");
		dec_known_keys(d, t, target_known);
		dec_enum(d, t, "kind", false, target_kinds, &kind);
		dec_string(d, t, "name", true, 63, pl_is_dns1035_label, dns1035_what, &tp->target_name);
		dec_int(d, t, "port", false, 1, 65535, &tp->target_port);
		dec_leave(d, s1);
	}
	if (!dec_string_list(d, spec, "exportTo", 32, 63, export_ok,
			     "*, . or a namespace name (DNS-1123 label)", true, &tp->export_to)) {
		tp->export_to.v = pl_arena_calloc(d->arena, 1, sizeof(char *));
		tp->export_to.v[0] = "*";
		tp->export_to.n = 1;
	}
	dec_routes(d, spec, tp);
	dec_circuit_breaker(d, spec, &tp->circuit_breaker);
	dec_authorization(d, spec, &tp->authorization);
	dec_rate_limit(d, spec, &tp->rate_limit);
	dec_access_log(d, spec, &tp->access_log);
	dec_tracing(d, spec, &tp->tracing);
	dec_leave(d, saved);
}
