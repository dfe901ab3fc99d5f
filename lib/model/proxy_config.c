/* Reading a rendered proxy config back into typed structs, strictly, with its content hash checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "base/sha256.h"
#include "json/json.h"
#include "model/model.h"
#include "model/objects.h"

#define MS_MAX (INT64_MAX / PL_NS_PER_MS)

void pl_proxy_config_hash(const json_t *doc, char out[80])
{
	json_t *copy = json_copy((json_t *)doc);
	char hex[65];

	json_object_del(copy, "hash");
	char *canon = pl_json_dump_canonical(copy);
	if (!canon)
		abort();
	pl_sha256_hex(canon, strlen(canon), hex);
	free(canon);
	json_decref(copy);
	snprintf(out, 80, "sha256:%s", hex);
}

const char *pl_short_hash(const char *hash, char out[16])
{
	const char *c = hash ? strchr(hash, ':') : NULL;

	snprintf(out, 16, "%.12s", c ? c + 1 : hash && *hash ? hash : "-");
	return out;
}

/* A duration field written as integer milliseconds. */
static bool dec_ms(pl_dec *d, const json_t *o, const char *key, bool required, int64_t *out_ns)
{
	int64_t v;

	if (!dec_int64(d, o, key, required, 0, MS_MAX, &v))
		return false;
	*out_ns = v * PL_NS_PER_MS;
	return true;
}

static const char *q_what = "namespace/name";

static bool qualified_ok(const char *s)
{
	const char *slash = strchr(s, '/');
	char ns[64];

	if (!slash || (size_t)(slash - s) >= sizeof(ns))
		return false;
	memcpy(ns, s, (size_t)(slash - s));
	ns[slash - s] = '\0';
	return pl_is_dns1123_label(ns) && pl_is_dns1123_subdomain(slash + 1);
}

/* Iterates an optional list of objects: calls fn for each, with the path entered. */
typedef void (*item_fn)(pl_dec *d, const json_t *item, void *out, size_t i);

static size_t dec_items(pl_dec *d, const json_t *obj, const char *key, bool required, size_t elem,
			void **out, item_fn fn)
{
	json_t *arr, *it;
	size_t i;

	if (!dec_list(d, obj, key, required, 0, 0, &arr))
		return 0;
	size_t saved = dec_enter(d, key);
	char *v = pl_arena_calloc(d->arena, json_array_size(arr), elem);
	json_array_foreach(arr, i, it) {
		size_t s2 = dec_enter_index(d, i);
		if (dec_is_object(d, it))
			fn(d, it, v + i * elem, i);
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
	*out = v;
	return json_array_size(arr);
}

static void dec_strv(pl_dec *d, const json_t *o, const char *key, pl_strv *out)
{
	json_t *arr, *v;
	size_t i;

	if (!dec_list(d, o, key, false, 0, 0, &arr))
		return;
	size_t saved = dec_enter(d, key);
	out->v = pl_arena_calloc(d->arena, json_array_size(arr), sizeof(char *));
	json_array_foreach(arr, i, v) {
		size_t s2 = dec_enter_index(d, i);
		if (dec_string_value(d, v, 0, NULL, NULL, &out->v[out->n]))
			out->n++;
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
}

static void dec_bits(pl_dec *d, const json_t *o, const char *key, const char *const *names, unsigned *out)
{
	json_t *arr, *v;
	size_t i;
	int idx;

	if (!dec_list(d, o, key, false, 0, 0, &arr))
		return;
	size_t saved = dec_enter(d, key);
	json_array_foreach(arr, i, v) {
		size_t s2 = dec_enter_index(d, i);
		if (dec_enum_value(d, v, names, &idx))
			*out |= 1u << idx;
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
}

static void rule_item(pl_dec *d, const json_t *o, void *out, size_t i)
{
	static const char *const known[] = {"name", "identities", "namespaces", "paths", "methods", NULL};
	pl_authz_rule *r = out;
	(void)i;

	dec_known_keys(d, o, known);
	dec_string(d, o, "name", true, 0, NULL, NULL, &r->name);
	dec_strv(d, o, "identities", &r->identities);
	dec_strv(d, o, "namespaces", &r->namespaces);
	dec_strv(d, o, "paths", &r->paths);
	dec_bits(d, o, "methods", pl_method_names, &r->methods);
}

/* accessLog and tracing, the same on both sides. Absent tracing: Add, 1%. */
static void observe_item(pl_dec *d, const json_t *o, pl_access_log *al, pl_tracing *tr)
{
	static const char *const al_known[] = {"filter", NULL};
	static const char *const tr_known[] = {"traceparent", "samplingPercentage", NULL};
	json_t *x;
	int v;

	tr->sampling_percent = 1;
	if (dec_object(d, o, "accessLog", false, &x)) {
		size_t saved = dec_enter(d, "accessLog");
		dec_known_keys(d, x, al_known);
		al->enabled = dec_enum(d, x, "filter", true, pl_log_filter_names, &v);
		al->filter = al->enabled ? (pl_log_filter)v : PL_LOG_ALL;
		dec_leave(d, saved);
	}
	if (dec_object(d, o, "tracing", false, &x)) {
		size_t saved = dec_enter(d, "tracing");
		dec_known_keys(d, x, tr_known);
		tr->set = dec_enum(d, x, "traceparent", true, pl_trace_mode_names, &v);
		tr->mode = tr->set ? (pl_trace_mode)v : PL_TRACE_ADD;
		dec_number(d, x, "samplingPercentage", true, 0, 100, &tr->sampling_percent);
		dec_leave(d, saved);
	}
}

static void inbound_item(pl_dec *d, const json_t *o, void *out, size_t i)
{
	static const char *const known[] = {"port", "service", "servicePort", "policy", "authorization",
					    "rateLimit", "accessLog", "tracing", NULL};
	static const char *const az_known[] = {"rules", NULL};
	static const char *const rl_known[] = {"requestsPerSecond", "burst", NULL};
	pl_inbound_policy *p = out;
	json_t *x;
	(void)i;

	dec_known_keys(d, o, known);
	dec_int(d, o, "port", true, 1, 65535, &p->port);
	dec_string(d, o, "service", true, 0, qualified_ok, q_what, &p->service);
	dec_int(d, o, "servicePort", true, 1, 65535, &p->service_port);
	dec_string(d, o, "policy", true, 0, qualified_ok, q_what, &p->policy);
	if (dec_object(d, o, "authorization", false, &x)) {
		size_t saved = dec_enter(d, "authorization");
		dec_known_keys(d, x, az_known);
		p->authorization.set = true;
		p->authorization.nrules = dec_items(d, x, "rules", true, sizeof(pl_authz_rule),
						    (void **)&p->authorization.rules, rule_item);
		dec_leave(d, saved);
	}
	if (dec_object(d, o, "rateLimit", false, &x)) {
		size_t saved = dec_enter(d, "rateLimit");
		dec_known_keys(d, x, rl_known);
		p->rate_limit.set = dec_int(d, x, "requestsPerSecond", true, 1, 1000000, &p->rate_limit.requests_per_second);
		dec_int(d, x, "burst", true, 1, 1000000, &p->rate_limit.burst);
		dec_leave(d, saved);
	}
	observe_item(d, o, &p->access_log, &p->tracing);
}

static void header_item(pl_dec *d, const json_t *o, void *out, size_t i)
{
	static const char *const known[] = {"name", "exact", "present", NULL};
	pl_header_match *h = out;
	bool present;
	(void)i;

	dec_known_keys(d, o, known);
	dec_string(d, o, "name", true, 0, NULL, NULL, &h->name);
	if (dec_string(d, o, "exact", false, 0, NULL, NULL, &h->value))
		h->kind = PL_HEADER_EXACT;
	else if (dec_bool(d, o, "present", true, &present))
		h->kind = present ? PL_HEADER_PRESENT : PL_HEADER_ABSENT;
}

static void backend_item(pl_dec *d, const json_t *o, void *out, size_t i)
{
	static const char *const known[] = {"service", "port", "weight", NULL};
	pl_backend *b = out;
	(void)i;

	dec_known_keys(d, o, known);
	dec_string(d, o, "service", true, 0, qualified_ok, q_what, &b->name);
	dec_int(d, o, "port", true, 0, 65535, &b->port);
	dec_int(d, o, "weight", true, 0, 1000, &b->weight);
}

static void route_item(pl_dec *d, const json_t *o, void *out, size_t i)
{
	static const char *const known[] = {"name", "match", "backends", "timeoutMs", "retries",
					    "faultInjection", NULL};
	static const char *const m_known[] = {"path", "method", "headers", NULL};
	static const char *const r_known[] = {"attempts", "perTryTimeoutMs", "retryOn", "budget", NULL};
	static const char *const b_known[] = {"percent", "minPerSecond", "windowMs", NULL};
	pl_route *r = out;
	json_t *x, *y;
	int method;
	(void)i;

	dec_known_keys(d, o, known);
	dec_string(d, o, "name", true, 0, NULL, NULL, &r->name);
	if (dec_object(d, o, "match", true, &x)) {
		size_t saved = dec_enter(d, "match");
		dec_known_keys(d, x, m_known);
		if (dec_object(d, x, "path", false, &y)) {
			size_t s1 = dec_enter(d, "path");
			if (dec_string(d, y, "exact", false, 0, NULL, NULL, &r->match.path))
				r->match.path_kind = PL_PATH_EXACT;
			else if (dec_string(d, y, "prefix", true, 0, NULL, NULL, &r->match.path))
				r->match.path_kind = PL_PATH_PREFIX;
			dec_leave(d, s1);
		}
		if (dec_enum(d, x, "method", false, pl_method_names, &method))
			r->match.method = 1u << method;
		r->match.nheaders = dec_items(d, x, "headers", false, sizeof(pl_header_match),
					      (void **)&r->match.headers, header_item);
		dec_leave(d, saved);
	}
	r->nbackends = dec_items(d, o, "backends", true, sizeof(pl_backend), (void **)&r->backends, backend_item);
	dec_ms(d, o, "timeoutMs", false, &r->timeout_ns);
	if (dec_object(d, o, "retries", false, &x)) {
		size_t saved = dec_enter(d, "retries");
		dec_known_keys(d, x, r_known);
		r->retries.set = true;
		dec_int(d, x, "attempts", true, 0, 10, &r->retries.attempts);
		dec_ms(d, x, "perTryTimeoutMs", false, &r->retries.per_try_timeout_ns);
		dec_bits(d, x, "retryOn", pl_retry_on_names, &r->retries.retry_on);
		if (dec_object(d, x, "budget", true, &y)) {
			size_t s1 = dec_enter(d, "budget");
			dec_known_keys(d, y, b_known);
			dec_int(d, y, "percent", true, 0, 100, &r->retries.budget_percent);
			dec_int(d, y, "minPerSecond", true, 0, 10000, &r->retries.budget_min_per_second);
			dec_ms(d, y, "windowMs", true, &r->retries.budget_window_ns);
			dec_leave(d, s1);
		}
		dec_leave(d, saved);
	}
	if (dec_object(d, o, "faultInjection", false, &x)) {
		size_t saved = dec_enter(d, "faultInjection");
		if (dec_object(d, x, "delay", false, &y)) {
			size_t s1 = dec_enter(d, "delay");
			r->fault.delay_set = dec_int(d, y, "percent", true, 0, 100, &r->fault.delay_percent);
			dec_ms(d, y, "durationMs", true, &r->fault.delay_ns);
			dec_leave(d, s1);
		}
		if (dec_object(d, x, "abort", false, &y)) {
			size_t s1 = dec_enter(d, "abort");
			r->fault.abort_set = dec_int(d, y, "percent", true, 0, 100, &r->fault.abort_percent);
			dec_int(d, y, "httpStatus", true, 200, 599, &r->fault.abort_status);
			dec_leave(d, s1);
		}
		dec_leave(d, saved);
	}
}

static void outbound_item(pl_dec *d, const json_t *o, void *out, size_t i)
{
	static const char *const known[] = {"service", "port", "policy", "routes", "circuitBreaker", "accessLog",
					    "tracing", NULL};
	static const char *const cb_known[] = {"consecutiveFailures", "baseEjectionMs", "maxEjectionMs",
					       "maxPendingRequests", "maxConnections", NULL};
	pl_outbound_policy *p = out;
	json_t *x;
	(void)i;

	dec_known_keys(d, o, known);
	dec_string(d, o, "service", true, 0, qualified_ok, q_what, &p->service);
	dec_int(d, o, "port", true, 0, 65535, &p->port);
	dec_string(d, o, "policy", true, 0, qualified_ok, q_what, &p->policy);
	p->nroutes = dec_items(d, o, "routes", true, sizeof(pl_route), (void **)&p->routes, route_item);
	if (dec_object(d, o, "circuitBreaker", false, &x)) {
		pl_circuit_breaker *cb = &p->circuit_breaker;
		size_t saved = dec_enter(d, "circuitBreaker");
		dec_known_keys(d, x, cb_known);
		cb->set = dec_int(d, x, "consecutiveFailures", true, 1, 1000, &cb->consecutive_failures);
		dec_ms(d, x, "baseEjectionMs", true, &cb->base_ejection_ns);
		dec_ms(d, x, "maxEjectionMs", true, &cb->max_ejection_ns);
		dec_int(d, x, "maxPendingRequests", false, 1, 1000000, &cb->max_pending);
		dec_int(d, x, "maxConnections", false, 1, 1000000, &cb->max_connections);
		dec_leave(d, saved);
	}
	observe_item(d, o, &p->access_log, &p->tracing);
}

/* An HTTP field name (RFC 9110 tchar): the proxy writes it into a request. */
static bool http_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", *s)))
			return false;
	return true;
}

static void probe_header_item(pl_dec *d, const json_t *o, void *out, size_t i)
{
	static const char *const known[] = {"name", "value", NULL};
	pl_label *h = out;
	(void)i;

	dec_known_keys(d, o, known);
	dec_string(d, o, "name", true, 256, http_token, "an HTTP field name", &h->key);
	if (dec_string(d, o, "value", true, 4096, NULL, NULL, &h->value) && strpbrk(h->value, "\r\n"))
		dec_error_at(d, "value", "must not hold CR or LF");
}

static bool probe_grpc_service(const char *s)
{
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return false;
	return true;
}

static void probe_item(pl_dec *d, const json_t *o, void *out, size_t i)
{
	static const char *const known[] = {"container", "kind", "port", "path", "tcp", "grpc", "grpcService", "headers",
					    "timeoutSeconds", NULL};
	static const char *const kinds[] = {"liveness", "readiness", "startup", NULL};
	pl_probe *p = out;
	int kind = 0;
	(void)i;

	dec_known_keys(d, o, known);
	dec_string(d, o, "container", true, 253, pl_is_dns1123_label, "a DNS-1123 label", &p->container);
	if (dec_enum(d, o, "kind", true, kinds, &kind))
		p->kind = kinds[kind];
	dec_int(d, o, "port", true, 1, 65535, &p->port);
	/* A tcpSocket probe ("tcp": true) has no path and no headers; an HTTP one needs its path. */
	p->tcp = p->grpc = false;
	p->grpc_service = "";
	dec_bool(d, o, "tcp", false, &p->tcp);
	dec_bool(d, o, "grpc", false, &p->grpc);
	if (p->tcp && p->grpc)
		dec_error_at(d, "grpc", "not allowed with tcp: true");
	if (p->grpc)
		dec_string(d, o, "grpcService", false, 200, probe_grpc_service, "printable ASCII without spaces",
			   &p->grpc_service);
	else if (json_object_get(o, "grpcService"))
		dec_error_at(d, "grpcService", "only with grpc: true");
	if (p->tcp || p->grpc) {
		if (json_object_get(o, "path"))
			dec_error_at(d, "path", p->tcp ? "not allowed with tcp: true" : "not allowed with grpc: true");
		if (json_object_get(o, "headers"))
			dec_error_at(d, "headers", p->tcp ? "not allowed with tcp: true" : "not allowed with grpc: true");
	} else if (dec_string(d, o, "path", true, 1024, NULL, NULL, &p->path)) {
		/* The path goes into a request line: printable ASCII without spaces. */
		bool ok = p->path[0] == '/';
		for (const char *c = p->path; ok && *c; c++)
			ok = *c > 0x20 && *c < 0x7f;
		if (!ok)
			dec_error_at(d, "path", "must start with / and hold printable ASCII without spaces");
	}
	p->timeout_s = 1;
	dec_int(d, o, "timeoutSeconds", false, 1, 3600, &p->timeout_s);
	p->headers.n = dec_items(d, o, "headers", false, sizeof(pl_label), (void **)&p->headers.v, probe_header_item);
}

bool dec_rendered_doc(pl_dec *d, const json_t *doc, const char *const *known, const char *const *kinds)
{
	const char *api;
	int kind;

	if (!json_is_object(doc)) {
		dec_error(d, "must be an object");
		return false;
	}
	dec_known_keys(d, doc, known);
	if (dec_string(d, doc, "apiVersion", true, 0, NULL, NULL, &api) && strcmp(api, PL_API_VERSION) != 0)
		dec_error_at(d, "apiVersion", "must be " PL_API_VERSION ", got \"%s\"", api);
	dec_enum(d, doc, "kind", true, kinds, &kind);
	return true;
}

void dec_rendered_hash(pl_dec *d, const json_t *doc, bool required, const char **out, const char *because)
{
	char want[80];

	if (!required && !dec_has(doc, "hash"))
		return;
	if (!dec_string(d, doc, "hash", true, 0, NULL, NULL, out))
		return;
	pl_proxy_config_hash(doc, want);
	if (strcmp(want, *out) != 0)
		dec_error_at(d, "hash", "does not match the content (want %s): %s", want, because);
}

bool pl_proxy_config_decode(pl_arena *a, const json_t *doc, pl_proxy_config *cfg, pl_errors *errs)
{
	static const char *const known[] = {"apiVersion", "kind", "pod", "identity", "inbound", "outbound",
					    "probes", "hash", NULL};
	static const char *const pod_known[] = {"namespace", "name", "id", "serviceAccount", NULL};
	static const char *const id_known[] = {"spiffeId", "trustDomain", "mtlsMode", "certificate", "source", NULL};
	static const char *const cert_known[] = {"ttlMs", "renewBeforeMs", NULL};
	static const char *const kinds[] = {"ProxyConfig", NULL};
	pl_dec dd, *d = &dd;
	json_t *x, *c;
	int mode;
	size_t errs_before = errs->n;

	memset(cfg, 0, sizeof(*cfg));
	dec_init(d, a, errs);
	if (!dec_rendered_doc(d, doc, known, kinds))
		return false;
	if (dec_object(d, doc, "pod", true, &x)) {
		size_t saved = dec_enter(d, "pod");
		dec_known_keys(d, x, pod_known);
		dec_string(d, x, "namespace", true, 63, pl_is_dns1123_label, "a DNS-1123 label", &cfg->pod_namespace);
		dec_string(d, x, "name", true, 253, NULL, NULL, &cfg->pod_name);
		dec_string(d, x, "id", true, PL_POD_ID_MAX, pl_is_pod_id, "a pod id (DNS-1123 label)", &cfg->pod_id);
		dec_string(d, x, "serviceAccount", true, 253, NULL, NULL, &cfg->service_account);
		dec_leave(d, saved);
	}
	if (dec_object(d, doc, "identity", true, &x)) {
		size_t saved = dec_enter(d, "identity");
		dec_known_keys(d, x, id_known);
		dec_string(d, x, "spiffeId", true, 2048, NULL, NULL, &cfg->spiffe_id);
		if (cfg->spiffe_id && strncmp(cfg->spiffe_id, "spiffe://", 9) != 0)
			dec_error_at(d, "spiffeId", "must start with spiffe://");
		dec_string(d, x, "trustDomain", true, 255, NULL, NULL, &cfg->trust_domain);
		if (dec_enum(d, x, "mtlsMode", true, pl_mtls_names, &mode))
			cfg->mtls_mode = (pl_mtls_mode)mode;
		dec_string(d, x, "source", true, 0, NULL, NULL, &cfg->identity_source);
		if (dec_object(d, x, "certificate", true, &c)) {
			size_t s1 = dec_enter(d, "certificate");
			dec_known_keys(d, c, cert_known);
			dec_ms(d, c, "ttlMs", true, &cfg->ttl_ns);
			dec_ms(d, c, "renewBeforeMs", true, &cfg->renew_before_ns);
			dec_leave(d, s1);
		}
		dec_leave(d, saved);
	}
	cfg->ninbound = dec_items(d, doc, "inbound", true, sizeof(pl_inbound_policy), (void **)&cfg->inbound,
				  inbound_item);
	/* Absent when the proxy reads its client-side policies from pillion-mesh (--outbound). */
	cfg->noutbound = dec_items(d, doc, "outbound", false, sizeof(pl_outbound_policy), (void **)&cfg->outbound,
				   outbound_item);
	cfg->nprobes = dec_items(d, doc, "probes", false, sizeof(pl_probe), (void **)&cfg->probes, probe_item);
	dec_rendered_hash(d, doc, true, &cfg->hash, "the file is truncated or edited");
	return errs->n == errs_before;
}

bool pl_outbound_decode(pl_arena *a, const json_t *doc, pl_outbound_set *set, pl_errors *errs)
{
	static const char *const known[] = {"apiVersion", "kind", "namespace", "outbound", "hash", NULL};
	static const char *const kinds[] = {"OutboundPolicies", NULL};
	pl_dec dd, *d = &dd;
	size_t errs_before = errs->n;

	memset(set, 0, sizeof(*set));
	dec_init(d, a, errs);
	if (!dec_rendered_doc(d, doc, known, kinds))
		return false;
	dec_string(d, doc, "namespace", true, 63, pl_is_dns1123_label, "a DNS-1123 label", &set->namespace);
	set->n = dec_items(d, doc, "outbound", true, sizeof(pl_outbound_policy), (void **)&set->v, outbound_item);
	dec_rendered_hash(d, doc, true, &set->hash, "the file is truncated or edited");
	return errs->n == errs_before;
}

void pl_effective_hash(const char *config_hash, const char *out_hash, char out[80])
{
	char both[200], hex[65];

	if (!out_hash || !*out_hash) {
		snprintf(out, 80, "%s", config_hash ? config_hash : "");
		return;
	}
	snprintf(both, sizeof(both), "%s+%s", config_hash ? config_hash : "", out_hash);
	pl_sha256_hex(both, strlen(both), hex);
	snprintf(out, 80, "sha256:%s", hex);
}
