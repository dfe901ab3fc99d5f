/* Rendering one pod's proxy config from the index: only what applies to it, deterministic, hashed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "json/json.h"
#include "model/index-t.h"
#include "model/model.h"
#include "model/objects.h"

static json_int_t ms(int64_t ns)
{
	/* Rounded up so a positive duration never becomes "none". */
	return (json_int_t)((ns + PL_NS_PER_MS - 1) / PL_NS_PER_MS);
}

static json_t *strv_json(const pl_strv *v)
{
	json_t *a = json_array();

	for (size_t i = 0; i < v->n; i++)
		json_array_append_new(a, json_string(v->v[i]));
	return a;
}

static json_t *methods_json(unsigned bits)
{
	json_t *a = json_array();

	for (int i = 0; i < PL_METHOD_COUNT; i++) {
		if (bits & (1u << i))
			json_array_append_new(a, json_string(pl_method_name(1u << i)));
	}
	return a;
}

static char *qualified(const char *ns, const char *name)
{
	size_t n = strlen(ns) + strlen(name) + 2;
	char *s = malloc(n);

	if (!s)
		abort();
	snprintf(s, n, "%s/%s", ns, name);
	return s;
}

static void set_qualified(json_t *o, const char *key, const char *ns, const char *name)
{
	char *s = qualified(ns, name);
	json_object_set_new(o, key, json_string(s));
	free(s);
}

static json_t *match_json(const pl_route_match *m)
{
	json_t *o = json_object();

	if (m->path_kind != PL_PATH_ANY)
		json_object_set_new(o, "path", json_pack("{ss}", m->path_kind == PL_PATH_EXACT ? "exact" : "prefix",
							  m->path));
	if (m->method)
		json_object_set_new(o, "method", json_string(pl_method_name(m->method)));
	if (m->nheaders) {
		json_t *hs = json_array();
		for (size_t i = 0; i < m->nheaders; i++) {
			const pl_header_match *h = &m->headers[i];
			json_t *ho = json_pack("{ss}", "name", h->name);
			if (h->kind == PL_HEADER_EXACT)
				json_object_set_new(ho, "exact", json_string(h->value));
			else
				json_object_set_new(ho, "present", json_boolean(h->kind == PL_HEADER_PRESENT));
			json_array_append_new(hs, ho);
		}
		json_object_set_new(o, "headers", hs);
	}
	return o;
}

static json_t *retries_json(const pl_retries *r)
{
	json_t *on = json_array();

	for (int i = 0; pl_retry_on_names[i]; i++) {
		if (r->retry_on & (1u << i))
			json_array_append_new(on, json_string(pl_retry_on_names[i]));
	}
	json_t *o = json_pack("{sisosO}", "attempts", r->attempts, "retryOn", on, "budget",
			      json_pack("{sisisI}", "percent", r->budget_percent, "minPerSecond",
					r->budget_min_per_second, "windowMs", ms(r->budget_window_ns)));
	json_decref(json_object_get(o, "budget"));
	if (r->per_try_timeout_ns)
		json_object_set_new(o, "perTryTimeoutMs", json_integer(ms(r->per_try_timeout_ns)));
	return o;
}

static json_t *route_json(const pl_traffic_policy *p, const pl_route *r)
{
	json_t *o = json_object();
	json_t *bs = json_array();

	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "match", match_json(&r->match));
	for (size_t i = 0; i < r->nbackends; i++) {
		json_t *b = json_object();
		set_qualified(b, "service", p->meta.namespace, r->backends[i].name);
		json_object_set_new(b, "port", json_integer(r->backends[i].port));
		json_object_set_new(b, "weight", json_integer(r->backends[i].weight));
		json_array_append_new(bs, b);
	}
	json_object_set_new(o, "backends", bs);
	if (r->timeout_ns)
		json_object_set_new(o, "timeoutMs", json_integer(ms(r->timeout_ns)));
	if (r->retries.set)
		json_object_set_new(o, "retries", retries_json(&r->retries));
	if (r->fault.delay_set || r->fault.abort_set) {
		json_t *f = json_object();
		if (r->fault.delay_set)
			json_object_set_new(f, "delay", json_pack("{sisI}", "percent", r->fault.delay_percent,
								  "durationMs", ms(r->fault.delay_ns)));
		if (r->fault.abort_set)
			json_object_set_new(f, "abort", json_pack("{sisi}", "percent", r->fault.abort_percent,
								  "httpStatus", r->fault.abort_status));
		json_object_set_new(o, "faultInjection", f);
	}
	return o;
}

/* The access log (only when on) and tracing (only when set: the proxy's defaults apply otherwise). */
static void observe_json(json_t *o, const pl_traffic_policy *p)
{
	if (p->access_log.enabled)
		json_object_set_new(o, "accessLog", json_pack("{ss}", "filter",
							      pl_log_filter_names[p->access_log.filter]));
	if (p->tracing.set)
		json_object_set_new(o, "tracing", json_pack("{sssf}", "traceparent",
							     pl_trace_mode_names[p->tracing.mode],
							     "samplingPercentage", p->tracing.sampling_percent));
}

static json_t *outbound_json(const pl_traffic_policy *p)
{
	json_t *o = json_object();
	json_t *routes = json_array();

	set_qualified(o, "service", p->meta.namespace, p->target_name);
	json_object_set_new(o, "port", json_integer(p->target_port));
	set_qualified(o, "policy", p->meta.namespace, p->meta.name);
	for (size_t i = 0; i < p->nroutes; i++)
		json_array_append_new(routes, route_json(p, &p->routes[i]));
	json_object_set_new(o, "routes", routes);
	if (p->circuit_breaker.set) {
		const pl_circuit_breaker *cb = &p->circuit_breaker;
		json_t *c = json_pack("{sisIsI}", "consecutiveFailures", cb->consecutive_failures,
				      "baseEjectionMs", ms(cb->base_ejection_ns), "maxEjectionMs",
				      ms(cb->max_ejection_ns));
		if (cb->max_pending)
			json_object_set_new(c, "maxPendingRequests", json_integer(cb->max_pending));
		if (cb->max_connections)
			json_object_set_new(c, "maxConnections", json_integer(cb->max_connections));
		json_object_set_new(o, "circuitBreaker", c);
	}
	observe_json(o, p);
	return o;
}

static json_t *authorization_json(const pl_authorization *az)
{
	json_t *rules = json_array();

	for (size_t i = 0; i < az->nrules; i++) {
		const pl_authz_rule *r = &az->rules[i];
		json_t *o = json_pack("{ss}", "name", r->name);
		if (r->identities.n)
			json_object_set_new(o, "identities", strv_json(&r->identities));
		if (r->namespaces.n)
			json_object_set_new(o, "namespaces", strv_json(&r->namespaces));
		if (r->paths.n)
			json_object_set_new(o, "paths", strv_json(&r->paths));
		if (r->methods)
			json_object_set_new(o, "methods", methods_json(r->methods));
		json_array_append_new(rules, o);
	}
	return json_pack("{so}", "rules", rules);
}

/* ---- inbound: the Services that select this pod, on the ports they send to it ---- */

typedef struct inbound_entry {
	int target_port;
	const pl_service *svc;
	int service_port;
	const pl_traffic_policy *policy;
} inbound_entry;

static int inbound_cmp(const void *a, const void *b)
{
	const inbound_entry *x = a, *y = b;

	if (x->target_port != y->target_port)
		return x->target_port < y->target_port ? -1 : 1;
	int c = strcmp(x->svc->meta.name, y->svc->meta.name);
	if (c)
		return c;
	return (x->service_port > y->service_port) - (x->service_port < y->service_port);
}

int pl_pod_target_port(const pl_pod *pod, const pl_service_port *sp)
{
	if (!sp->target_port_name)
		return sp->target_port;
	for (size_t i = 0; i < pod->nports; i++) {
		if (strcmp(pod->ports[i].name, sp->target_port_name) == 0)
			return pod->ports[i].port;
	}
	return 0;
}

static json_t *render_inbound(const pl_index *ix, const pl_pod *pod)
{
	const pl_vec *svcs = pl_hmap_get(&ix->services, pod->meta.namespace);
	inbound_entry *ents = NULL;
	size_t n = 0, cap = 0;
	json_t *arr = json_array();

	for (size_t i = 0; svcs && i < svcs->n; i++) {
		const pl_service *s = svcs->v[i];
		if (!s->has_selector || !pl_labels_subset(&s->selector, &pod->meta.labels))
			continue;
		for (size_t j = 0; j < s->nports; j++) {
			const pl_service_port *sp = &s->ports[j];
			if (strcmp(sp->protocol, "TCP") != 0)
				continue;
			const pl_traffic_policy *p = pl_index_policy_for(ix, s->meta.namespace, s->meta.name, sp->port);
			if (!p)
				p = pl_index_policy_for(ix, s->meta.namespace, s->meta.name, 0);
			int tport = pl_pod_target_port(pod, sp);
			if (!p || tport == 0 ||
			    (!p->authorization.set && !p->rate_limit.set && !p->access_log.enabled && !p->tracing.set))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				ents = realloc(ents, cap * sizeof(*ents));
				if (!ents)
					abort();
			}
			ents[n++] = (inbound_entry){tport, s, sp->port, p};
		}
	}
	if (n)
		qsort(ents, n, sizeof(*ents), inbound_cmp);
	for (size_t i = 0; i < n; i++) {
		const pl_traffic_policy *p = ents[i].policy;
		json_t *o = json_object();
		json_object_set_new(o, "port", json_integer(ents[i].target_port));
		set_qualified(o, "service", ents[i].svc->meta.namespace, ents[i].svc->meta.name);
		json_object_set_new(o, "servicePort", json_integer(ents[i].service_port));
		set_qualified(o, "policy", p->meta.namespace, p->meta.name);
		if (p->authorization.set)
			json_object_set_new(o, "authorization", authorization_json(&p->authorization));
		if (p->rate_limit.set)
			json_object_set_new(o, "rateLimit", json_pack("{sisi}", "requestsPerSecond",
								      p->rate_limit.requests_per_second, "burst",
								      p->rate_limit.burst));
		observe_json(o, p);
		json_array_append_new(arr, o);
	}
	free(ents);
	return arr;
}

/* ---- outbound: client-side policies exported to the pod's namespace ---- */

static int outbound_cmp(const void *a, const void *b)
{
	const pl_traffic_policy *x = *(const pl_traffic_policy *const *)a;
	const pl_traffic_policy *y = *(const pl_traffic_policy *const *)b;
	int c = strcmp(x->meta.namespace, y->meta.namespace);

	if (c)
		return c;
	if ((c = strcmp(x->target_name, y->target_name)))
		return c;
	return (x->target_port > y->target_port) - (x->target_port < y->target_port);
}

static json_t *render_outbound(const pl_index *ix, const char *ns)
{
	const pl_vec *lists[2] = {&ix->exported_all, pl_hmap_get(&ix->exported, ns)};
	size_t total = ix->exported_all.n + (lists[1] ? lists[1]->n : 0), n = 0;
	const pl_traffic_policy **sel = calloc(total ? total : 1, sizeof(*sel));
	json_t *arr = json_array();

	if (!sel)
		abort();
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; lists[l] && i < lists[l]->n; i++) {
			const pl_traffic_policy *p = lists[l]->v[i];
			/* Only the winner for its Service and port: conflicts resolve the same way everywhere. */
			if (pl_index_policy_for(ix, p->meta.namespace, p->target_name, p->target_port) == p)
				sel[n++] = p;
		}
	}
	if (n)
		qsort(sel, n, sizeof(*sel), outbound_cmp);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, outbound_json(sel[i]));
	free(sel);
	return arr;
}

static json_t *render_identity(const pl_index *ix, const pl_pod *pod)
{
	const pl_mesh_identity *m = pl_index_identity_for(ix, pod);
	const char *td = m ? m->trust_domain : "cluster.local";
	int64_t ttl = m ? m->ttl_ns : 24 * PL_NS_PER_H;
	int64_t renew = m ? m->renew_before_ns : ttl / 3;
	pl_mtls_mode mode = m ? m->mtls_mode : PL_MTLS_PERMISSIVE;
	size_t n = strlen(td) + strlen(pod->meta.namespace) + strlen(pod->service_account) + 32;
	char *id = malloc(n);

	if (!id)
		abort();
	snprintf(id, n, "spiffe://%s/ns/%s/sa/%s", td, pod->meta.namespace, pod->service_account);
	json_t *o = json_pack("{sssssss{sIsI}}", "spiffeId", id, "trustDomain", td, "mtlsMode",
			      pl_mtls_mode_name(mode), "certificate", "ttlMs", ms(ttl), "renewBeforeMs", ms(renew));
	free(id);
	if (m)
		set_qualified(o, "source", m->meta.namespace, m->meta.name);
	else
		json_object_set_new(o, "source", json_string(""));
	return o;
}

json_t *pl_render_outbound(const pl_index *ix, const char *ns)
{
	json_t *doc = json_pack("{ssssss}", "apiVersion", PL_API_VERSION, "kind", "OutboundPolicies", "namespace", ns);
	char hash[80];

	json_object_set_new(doc, "outbound", render_outbound(ix, ns));
	pl_proxy_config_hash(doc, hash);
	json_object_set_new(doc, "hash", json_string(hash));
	return doc;
}

json_t *pl_render_pod(const pl_index *ix, const pl_pod *pod)
{
	json_t *cfg = json_object();

	json_object_set_new(cfg, "apiVersion", json_string(PL_API_VERSION));
	json_object_set_new(cfg, "kind", json_string("ProxyConfig"));
	json_object_set_new(cfg, "pod", json_pack("{ssssssss}", "namespace", pod->meta.namespace, "name",
						  pod->meta.name, "id", pod->id, "serviceAccount",
						  pod->service_account));
	json_object_set_new(cfg, "identity", render_identity(ix, pod));
	json_object_set_new(cfg, "inbound", render_inbound(ix, pod));
	if (!pod->outbound_from_mesh)
		json_object_set_new(cfg, "outbound", render_outbound(ix, pod->meta.namespace));
	if (pod->nprobes) {
		json_t *pr = json_array();
		for (size_t i = 0; i < pod->nprobes; i++) {
			const pl_probe *q = &pod->probes[i];
			json_t *o = json_pack("{sssssisi}", "container", q->container, "kind", q->kind, "port", q->port,
					      "timeoutSeconds", q->timeout_s);
			if (q->tcp) {
				json_object_set_new(o, "tcp", json_true());
			} else if (q->grpc) {
				json_object_set_new(o, "grpc", json_true());
				if (q->grpc_service && *q->grpc_service)
					json_object_set_new(o, "grpcService", json_string(q->grpc_service));
			} else
				json_object_set_new(o, "path", json_string(q->path));
			if (q->headers.n) {
				json_t *hs = json_array();
				for (size_t k = 0; k < q->headers.n; k++)
					json_array_append_new(hs, json_pack("{ssss}", "name", q->headers.v[k].key, "value",
									    q->headers.v[k].value));
				json_object_set_new(o, "headers", hs);
			}
			json_array_append_new(pr, o);
		}
		json_object_set_new(cfg, "probes", pr);
	}
	char hash[80];
	pl_proxy_config_hash(cfg, hash);
	json_object_set_new(cfg, "hash", json_string(hash));
	return cfg;
}
