/* Unit tests of rendering: what applies to a pod, precedence, exportTo, determinism and the content hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/duration.h"
#include "base/sha256.h"
#include "fixture.h"

#define TP "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\n"
#define MI "apiVersion: pillion.dev/v1alpha1\nkind: MeshIdentity\n"

static const char pod_web[] =
	"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  namespace: shop\n"
	"  labels: {app: web, version: v2}\n  annotations: {pillion.dev/id: 0123456789abcdef0123456789abcdef}\n"
	"spec:\n  serviceAccountName: web\n  containers:\n  - name: app\n    ports: [{name: http, containerPort: 8080}]\n";

static const char svc_web[] =
	"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
	"spec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: http}\n"
	"  - {name: admin, port: 9000, targetPort: 9001}\n";

static json_t *render(fixture *f, const char *yaml)
{
	fixture_load(f, yaml);
	for (size_t i = 0; i < f->n; i++) {
		if (!f->obj[i].valid)
			fail_msg("object %zu (%s) is invalid: %s: %s", i, f->obj[i].name, f->obj[i].errors.v[0].path,
				 f->obj[i].errors.v[0].msg);
	}
	assert_non_null(f->pod);
	return pl_render_pod(f->ix, f->pod);
}

static void test_identity_defaults_and_spiffe_id(void **state)
{
	(void)state;
	fixture f;
	json_t *cfg = render(&f, pod_web);
	json_t *id = json_object_get(cfg, "identity");
	assert_string_equal(json_string_value(json_object_get(id, "spiffeId")), "spiffe://cluster.local/ns/shop/sa/web");
	assert_string_equal(json_string_value(json_object_get(id, "mtlsMode")), "PERMISSIVE");
	assert_string_equal(json_string_value(json_object_get(id, "source")), "");
	json_t *pod = json_object_get(cfg, "pod");
	assert_string_equal(json_string_value(json_object_get(pod, "id")), "0123456789abcdef0123456789abcdef");
	assert_int_equal(json_array_size(json_object_get(cfg, "inbound")), 0);
	assert_int_equal(json_array_size(json_object_get(cfg, "outbound")), 0);
	json_decref(cfg);
	fixture_free(&f);
}

static void test_specific_identity_beats_namespace_wide(void **state)
{
	(void)state;
	char yaml[4096];
	fixture f;
	snprintf(yaml, sizeof(yaml), "%s---\n"
		 MI "metadata: {name: all, namespace: shop, creationTimestamp: '2020-01-01T00:00:00Z'}\n"
		 "spec: {mtls: {mode: PERMISSIVE}}\n---\n"
		 MI "metadata: {name: web, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}\n"
		 "spec: {selector: {matchLabels: {app: web}}, trustDomain: prod.example, mtls: {mode: STRICT}}\n---\n"
		 MI "metadata: {name: web-old, namespace: other}\nspec: {mtls: {mode: DISABLED}}\n---\n"
		 MI "metadata: {name: api, namespace: shop}\nspec: {selector: {matchLabels: {app: api}}}\n",
		 pod_web);
	json_t *cfg = render(&f, yaml);
	json_t *id = json_object_get(cfg, "identity");
	assert_string_equal(json_string_value(json_object_get(id, "source")), "shop/web");
	assert_string_equal(json_string_value(json_object_get(id, "mtlsMode")), "STRICT");
	assert_string_equal(json_string_value(json_object_get(id, "spiffeId")), "spiffe://prod.example/ns/shop/sa/web");
	json_decref(cfg);
	fixture_free(&f);
}

static void test_inbound_resolves_named_ports_and_precedence(void **state)
{
	(void)state;
	char yaml[8192];
	fixture f;
	snprintf(yaml, sizeof(yaml), "%s---\n%s---\n"
		 "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\n"
		 "spec: {selector: {app: api}, ports: [{port: 80, targetPort: 8080}]}\n---\n"
		 TP "metadata: {name: newer, namespace: shop, creationTimestamp: '2026-05-01T00:00:00Z'}\n"
		 "spec: {targetRef: {name: web}, rateLimit: {requestsPerSecond: 1}}\n---\n"
		 TP "metadata: {name: older, namespace: shop, creationTimestamp: '2025-05-01T00:00:00Z'}\n"
		 "spec: {targetRef: {name: web}, rateLimit: {requestsPerSecond: 2}}\n---\n"
		 TP "metadata: {name: admin-only, namespace: shop, creationTimestamp: '2027-01-01T00:00:00Z'}\n"
		 "spec: {targetRef: {name: web, port: 9000}, authorization: {rules: [{from: {namespaces: [ops]}}]}}\n---\n"
		 TP "metadata: {name: api, namespace: shop}\n"
		 "spec: {targetRef: {name: api}, rateLimit: {requestsPerSecond: 3}}\n",
		 pod_web, svc_web);
	json_t *cfg = render(&f, yaml);
	json_t *in = json_object_get(cfg, "inbound");
	assert_int_equal(json_array_size(in), 2);
	json_t *e0 = json_array_get(in, 0), *e1 = json_array_get(in, 1);
	/* Port 80 -> targetPort "http" -> containerPort 8080; the older of two whole-Service policies wins. */
	assert_int_equal(json_integer_value(json_object_get(e0, "port")), 8080);
	assert_int_equal(json_integer_value(json_object_get(e0, "servicePort")), 80);
	assert_string_equal(json_string_value(json_object_get(e0, "policy")), "shop/older");
	/* Port 9000 -> 9001: the port-specific policy wins over the whole-Service one, however new. */
	assert_int_equal(json_integer_value(json_object_get(e1, "port")), 9001);
	assert_string_equal(json_string_value(json_object_get(e1, "policy")), "shop/admin-only");
	assert_null(json_object_get(e1, "rateLimit"));
	assert_non_null(json_object_get(e1, "authorization"));
	json_decref(cfg);
	fixture_free(&f);
}

static void test_outbound_follows_export_to(void **state)
{
	(void)state;
	char yaml[8192];
	fixture f;
	snprintf(yaml, sizeof(yaml), "%s---\n"
		 TP "metadata: {name: everyone, namespace: payments}\nspec: {targetRef: {name: pay}}\n---\n"
		 TP "metadata: {name: own-ns, namespace: shop}\nspec: {targetRef: {name: cart}, exportTo: [.]}\n---\n"
		 TP "metadata: {name: private, namespace: payments}\nspec: {targetRef: {name: ledger}, exportTo: [.]}\n---\n"
		 TP "metadata: {name: to-shop, namespace: payments}\nspec: {targetRef: {name: refunds}, exportTo: [shop, ops]}\n---\n"
		 TP "metadata: {name: to-ops, namespace: payments}\nspec: {targetRef: {name: audit}, exportTo: [ops]}\n---\n"
		 TP "metadata: {name: nowhere, namespace: shop}\nspec: {targetRef: {name: quiet}, exportTo: []}\n",
		 pod_web);
	json_t *cfg = render(&f, yaml);
	json_t *out = json_object_get(cfg, "outbound");
	const char *want[] = {"payments/pay", "payments/refunds", "shop/cart"};
	assert_int_equal(json_array_size(out), 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(out, i), "service")), want[i]);
	json_t *route = json_array_get(json_object_get(json_array_get(out, 0), "routes"), 0);
	assert_string_equal(json_string_value(json_object_get(route, "name")), "default");
	json_t *backend = json_array_get(json_object_get(route, "backends"), 0);
	assert_string_equal(json_string_value(json_object_get(backend, "service")), "payments/pay");
	json_decref(cfg);
	fixture_free(&f);
}

/* A pod whose proxy takes --outbound: its config leaves the client-side policies out, and
 * pl_render_outbound gives exactly them for the namespace, decodable, hashed, and tamper-evident. */
static void test_outbound_from_mesh(void **state)
{
	(void)state;
	char yaml[8192];
	fixture f, g;
	pl_arena a;
	pl_errors errs = {0};
	pl_outbound_set set;
	static const char pod_ob[] =
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  namespace: shop\n"
		"  labels: {app: web, version: v2}\n  annotations: {pillion.dev/id: 0123456789abcdef0123456789abcdef}\n"
		"spec:\n  serviceAccountName: web\n  containers:\n  - name: app\n    ports: [{name: http, containerPort: 8080}]\n"
		"  - name: pillion-proxy\n    args: [--config, /c, --mesh, /m/mesh.json, --outbound, /m/outbound.json]\n";
	static const char policies[] =
		TP "metadata: {name: everyone, namespace: payments}\nspec: {targetRef: {name: pay}}\n---\n"
		TP "metadata: {name: private, namespace: payments}\nspec: {targetRef: {name: ledger}, exportTo: [.]}\n---\n"
		TP "metadata: {name: web, namespace: shop}\nspec: {targetRef: {name: web}, rateLimit: {requestsPerSecond: 5}}\n";

	snprintf(yaml, sizeof(yaml), "%s---\n%s---\n%s", pod_ob, svc_web, policies);
	json_t *cfg = render(&f, yaml);
	assert_true(f.pod->outbound_from_mesh);
	assert_null(json_object_get(cfg, "outbound"));
	assert_true(json_array_size(json_object_get(cfg, "inbound")) >= 1);
	/* The same pod without the flag has them in its config: the namespace document holds the same list. */
	snprintf(yaml, sizeof(yaml), "%s---\n%s---\n%s", pod_web, svc_web, policies);
	json_t *plain = render(&g, yaml);
	assert_false(g.pod->outbound_from_mesh);
	json_t *out = pl_render_outbound(f.ix, "shop");
	assert_string_equal(json_string_value(json_object_get(out, "kind")), "OutboundPolicies");
	assert_true(json_equal(json_object_get(out, "outbound"), json_object_get(plain, "outbound")));
	assert_int_equal(json_array_size(json_object_get(out, "outbound")), 2); /* payments/pay, shop/web */
	pl_arena_init(&a);
	if (!pl_outbound_decode(&a, out, &set, &errs))
		fail_msg("decode: %s: %s", errs.v[0].path, errs.v[0].msg);
	assert_int_equal(set.n, 2);
	assert_string_equal(set.namespace, "shop");
	assert_string_equal(set.v[0].service, "payments/pay");
	/* A changed document no longer matches its hash; an unknown field is refused. */
	json_object_set_new(out, "namespace", json_string("other"));
	assert_false(pl_outbound_decode(&a, out, &set, &errs));
	assert_string_equal(errs.v[errs.n - 1].path, "hash");
	json_object_set_new(out, "extra", json_true());
	errs.n = 0;
	assert_false(pl_outbound_decode(&a, out, &set, &errs));
	/* The effective hash: the config's alone without outbound policies, else one over both. */
	char e1[80], e2[80], e3[80];
	pl_effective_hash("sha256:aa", NULL, e1);
	assert_string_equal(e1, "sha256:aa");
	pl_effective_hash("sha256:aa", "sha256:bb", e2);
	pl_effective_hash("sha256:aa", "sha256:bc", e3);
	assert_true(strncmp(e2, "sha256:", 7) == 0 && strlen(e2) == 71);
	assert_string_not_equal(e2, e3);
	pl_arena_free(&a);
	json_decref(out);
	json_decref(plain);
	json_decref(cfg);
	fixture_free(&f);
	fixture_free(&g);
}

static void test_outbound_conflict_keeps_the_oldest(void **state)
{
	(void)state;
	char yaml[8192];
	fixture f;
	snprintf(yaml, sizeof(yaml), "%s---\n"
		 TP "metadata: {name: b, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}\n"
		 "spec: {targetRef: {name: web}, routes: [{timeout: 1s}]}\n---\n"
		 TP "metadata: {name: a, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z'}\n"
		 "spec: {targetRef: {name: web}, routes: [{timeout: 2s}]}\n---\n"
		 TP "metadata: {name: c, namespace: shop, creationTimestamp: '2026-01-01T00:00:00+01:00'}\n"
		 "spec: {targetRef: {name: web}, exportTo: [ops], routes: [{timeout: 3s}]}\n---\n"
		 TP "metadata: {name: p80, namespace: shop}\n"
		 "spec: {targetRef: {name: web, port: 80}, routes: [{timeout: 4s, retries: {attempts: 3, perTryTimeout: 1500us}}]}\n",
		 pod_web);
	json_t *cfg = render(&f, yaml);
	json_t *out = json_object_get(cfg, "outbound");
	/*
	 * c is the oldest (an hour earlier through its offset) and wins web's whole-Service slot, but it
	 * is exported only to ops: a shop pod gets no whole-Service policy rather than the loser's.
	 */
	assert_int_equal(json_array_size(out), 1);
	json_t *e = json_array_get(out, 0);
	assert_string_equal(json_string_value(json_object_get(e, "policy")), "shop/p80");
	assert_int_equal(json_integer_value(json_object_get(e, "port")), 80);
	json_t *route = json_array_get(json_object_get(e, "routes"), 0);
	assert_int_equal(json_integer_value(json_object_get(route, "timeoutMs")), 4000);
	json_t *retries = json_object_get(route, "retries");
	assert_int_equal(json_integer_value(json_object_get(retries, "attempts")), 3);
	assert_int_equal(json_integer_value(json_object_get(retries, "perTryTimeoutMs")), 2);
	json_decref(cfg);
	fixture_free(&f);
}

static void test_deterministic_and_hashed(void **state)
{
	(void)state;
	char yaml[8192];
	fixture f1, f2;
	const char *policies =
		TP "metadata: {name: web, namespace: shop}\n"
		"spec:\n  targetRef: {name: web}\n  routes:\n  - name: api\n    match: {path: {prefix: /api}, headers: [{name: x-a, exact: b}, {name: x-c, present: false}]}\n"
		"    backends: [{name: web, weight: 9}, {name: web-v2, weight: 1}]\n"
		"    faultInjection: {delay: {percent: 1, duration: 10ms}, abort: {percent: 2, httpStatus: 503}}\n"
		"  circuitBreaker: {maxConnections: 10}\n"
		"  authorization: {rules: [{to: {methods: [POST, GET]}}]}\n";
	snprintf(yaml, sizeof(yaml), "%s---\n%s---\n%s", pod_web, svc_web, policies);
	json_t *a = render(&f1, yaml);
	snprintf(yaml, sizeof(yaml), "%s---\n%s---\n%s", pod_web, policies, svc_web);
	json_t *b = render(&f2, yaml);
	char *ca = pl_json_dump_canonical(a), *cb = pl_json_dump_canonical(b);
	assert_string_equal(ca, cb);
	/* The hash is sha256 over the canonical bytes of everything but the hash itself. */
	char want[80], hex[65];
	json_t *copy = json_deep_copy(a);
	json_object_del(copy, "hash");
	char *body = pl_json_dump_canonical(copy);
	pl_sha256_hex(body, strlen(body), hex);
	snprintf(want, sizeof(want), "sha256:%s", hex);
	assert_string_equal(json_string_value(json_object_get(a, "hash")), want);
	/* Methods are rendered in a fixed order whatever order the policy lists them in. */
	json_t *rule = json_array_get(json_object_get(json_object_get(json_array_get(json_object_get(a, "inbound"), 0),
								       "authorization"), "rules"), 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(rule, "methods"), 0)), "GET");
	free(body);
	free(ca);
	free(cb);
	json_decref(copy);
	json_decref(a);
	json_decref(b);
	fixture_free(&f1);
	fixture_free(&f2);
}

/* A pod's render touches its own namespace's policies, not every namespace's. */
static void test_scale_only_what_applies(void **state)
{
	(void)state;
	pl_buf yaml = PL_BUF_INIT;
	pl_docs docs;
	pl_arena arena;
	pl_object obj;
	pl_index *ix = pl_index_new();

	pl_arena_init(&arena);
	for (int i = 0; i < 3000; i++)
		pl_buf_printf(&yaml, TP "metadata: {name: p, namespace: ns-%d}\n"
			      "spec: {targetRef: {name: svc}, exportTo: [.], rateLimit: {requestsPerSecond: 5}}\n---\n", i);
	pl_buf_puts(&yaml, pod_web);
	assert_int_equal(pl_yaml_load(yaml.data, yaml.len, &docs), 0);
	assert_int_equal(docs.n, 3001);
	const pl_pod *pod = NULL;
	for (size_t i = 0; i < docs.n; i++) {
		assert_true(pl_object_decode(&arena, docs.v[i].root, &obj));
		if (obj.kind == PL_KIND_TRAFFIC_POLICY)
			pl_index_add_policy(ix, obj.u.policy);
		else
			pod = obj.u.pod;
	}
	json_t *cfg = pl_render_pod(ix, pod);
	assert_int_equal(json_array_size(json_object_get(cfg, "outbound")), 0);
	pl_pod in_ns7 = *pod;
	in_ns7.meta.namespace = "ns-7";
	json_t *cfg7 = pl_render_pod(ix, &in_ns7);
	json_t *out = json_object_get(cfg7, "outbound");
	assert_int_equal(json_array_size(out), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "service")), "ns-7/svc");
	json_decref(cfg);
	json_decref(cfg7);
	pl_index_free(ix);
	pl_docs_free(&docs);
	pl_arena_free(&arena);
	pl_buf_free(&yaml);
}

static const pl_error *error_at(const pl_errors *e, const char *path)
{
	for (size_t i = 0; i < e->n; i++) {
		if (strcmp(e->v[i].path, path) == 0)
			return &e->v[i];
	}
	return NULL;
}

/* The rendered JSON reads back into the same facts, and a tampered file is refused. */
static void test_proxy_config_round_trip(void **state)
{
	(void)state;
	char yaml[8192];
	fixture f;
	pl_arena a;
	pl_errors errs = {0};
	pl_proxy_config cfg;

	snprintf(yaml, sizeof(yaml), "%s---\n%s---\n"
		 MI "metadata: {name: strict, namespace: shop}\nspec: {mtls: {mode: STRICT}, certificate: {ttl: 8760h}}\n---\n"
		 TP "metadata: {name: web, namespace: shop}\n"
		 "spec:\n  targetRef: {name: web, port: 80}\n  routes:\n  - name: api\n"
		 "    match: {path: {exact: /api}, method: PUT, headers: [{name: x-a, exact: b}, {name: x-c, present: false}]}\n"
		 "    backends: [{name: web, weight: 9}, {name: web-v2, port: 8080, weight: 1}]\n"
		 "    timeout: 2s\n    retries: {retryOn: [5xx, reset], perTryTimeout: 500ms}\n"
		 "    faultInjection: {abort: {percent: 2, httpStatus: 503}}\n"
		 "  circuitBreaker: {maxPendingRequests: 7}\n"
		 "  authorization: {rules: [{name: r, from: {identities: ['*']}, to: {methods: [GET], paths: [/a*]}}]}\n"
		 "  rateLimit: {requestsPerSecond: 5, burst: 9}\n",
		 pod_web, svc_web);
	json_t *doc = render(&f, yaml);
	/* Through text, as the proxy will read it from the mounted file. */
	char *text = pl_json_dump_pretty(doc);
	json_t *back = json_loads(text, 0, NULL);
	assert_non_null(back);
	pl_arena_init(&a);
	if (!pl_proxy_config_decode(&a, back, &cfg, &errs))
		fail_msg("decode: %s: %s", errs.v[0].path, errs.v[0].msg);
	assert_string_equal(cfg.pod_id, "0123456789abcdef0123456789abcdef");
	assert_string_equal(cfg.spiffe_id, "spiffe://cluster.local/ns/shop/sa/web");
	assert_int_equal(cfg.mtls_mode, PL_MTLS_STRICT);
	assert_true(cfg.ttl_ns == 8760 * PL_NS_PER_H);
	assert_true(cfg.renew_before_ns == 8760 * PL_NS_PER_H / 3);
	assert_int_equal(cfg.ninbound, 1);
	assert_int_equal(cfg.inbound[0].port, 8080);
	assert_int_equal(cfg.inbound[0].rate_limit.burst, 9);
	assert_int_equal(cfg.inbound[0].authorization.nrules, 1);
	assert_int_equal(cfg.inbound[0].authorization.rules[0].methods, PL_METHOD_GET);
	assert_string_equal(cfg.inbound[0].authorization.rules[0].paths.v[0], "/a*");
	assert_int_equal(cfg.noutbound, 1);
	const pl_outbound_policy *o = &cfg.outbound[0];
	assert_string_equal(o->service, "shop/web");
	assert_int_equal(o->port, 80);
	assert_int_equal(o->circuit_breaker.max_pending, 7);
	assert_int_equal(o->circuit_breaker.max_connections, 0);
	assert_true(o->circuit_breaker.base_ejection_ns == 30 * PL_NS_PER_S);
	const pl_route *r = &o->routes[0];
	assert_string_equal(r->name, "api");
	assert_int_equal(r->match.path_kind, PL_PATH_EXACT);
	assert_int_equal(r->match.method, PL_METHOD_PUT);
	assert_int_equal(r->match.nheaders, 2);
	assert_int_equal(r->match.headers[1].kind, PL_HEADER_ABSENT);
	assert_int_equal(r->nbackends, 2);
	assert_string_equal(r->backends[1].name, "shop/web-v2");
	assert_int_equal(r->backends[1].port, 8080);
	assert_true(r->timeout_ns == 2 * PL_NS_PER_S);
	assert_int_equal(r->retries.retry_on, PL_RETRY_5XX | PL_RETRY_RESET);
	assert_true(r->retries.per_try_timeout_ns == 500 * PL_NS_PER_MS);
	assert_true(r->fault.abort_set);
	assert_false(r->fault.delay_set);

	/* An edited value no longer matches the hash. */
	json_t *route = json_array_get(json_object_get(json_array_get(json_object_get(back, "outbound"), 0), "routes"), 0);
	json_object_set_new(route, "timeoutMs", json_integer(1));
	errs.n = 0;
	assert_false(pl_proxy_config_decode(&a, back, &cfg, &errs));
	assert_int_equal(errs.n, 1);
	assert_non_null(error_at(&errs, "hash"));
	/* Unknown fields and wrong types are named by path. */
	json_object_set_new(route, "timeoutMs", json_string("2s"));
	json_object_set_new(json_object_get(back, "identity"), "mode", json_string("STRICT"));
	errs.n = 0;
	assert_false(pl_proxy_config_decode(&a, back, &cfg, &errs));
	assert_non_null(error_at(&errs, "outbound[0].routes[0].timeoutMs"));
	assert_non_null(error_at(&errs, "identity.mode"));
	pl_arena_free(&a);
	free(text);
	json_decref(back);
	json_decref(doc);
	fixture_free(&f);
}


/* accessLog and tracing reach both sides; without them the proxy's defaults apply (no log, Add, 1%). */
static void test_observability_round_trip(void **state)
{
	(void)state;
	char yaml[4096];
	fixture f;
	pl_arena a;
	pl_errors errs = {0};
	pl_proxy_config cfg;

	snprintf(yaml, sizeof(yaml), "%s---\n%s---\n"
		 TP "metadata: {name: web, namespace: shop}\n"
		 "spec:\n  targetRef: {name: web, port: 80}\n"
		 "  accessLog: {enabled: true, filter: Errors}\n"
		 "  tracing: {traceparent: Propagate, samplingPercentage: 0.25}\n---\n"
		 TP "metadata: {name: admin, namespace: shop}\n"
		 "spec:\n  targetRef: {name: web, port: 9000}\n  accessLog: {enabled: false}\n",
		 pod_web, svc_web);
	json_t *doc = render(&f, yaml);
	char *text = pl_json_dump_pretty(doc);
	json_t *back = json_loads(text, 0, NULL);
	assert_non_null(back);
	pl_arena_init(&a);
	if (!pl_proxy_config_decode(&a, back, &cfg, &errs))
		fail_msg("decode: %s: %s", errs.v[0].path, errs.v[0].msg);
	/* Inbound: only port 8080 (service port 80) has something for the proxy to do; the policy on 9000
	 * switches nothing on, so it renders no inbound entry. */
	assert_int_equal(cfg.ninbound, 1);
	assert_true(cfg.inbound[0].access_log.enabled);
	assert_int_equal(cfg.inbound[0].access_log.filter, PL_LOG_ERRORS);
	assert_true(cfg.inbound[0].tracing.set);
	assert_int_equal(cfg.inbound[0].tracing.mode, PL_TRACE_PROPAGATE);
	assert_true(cfg.inbound[0].tracing.sampling_percent == 0.25);
	assert_int_equal(cfg.noutbound, 2);
	const pl_outbound_policy *o = cfg.outbound[0].port == 80 ? &cfg.outbound[0] : &cfg.outbound[1];
	const pl_outbound_policy *o2 = o == &cfg.outbound[0] ? &cfg.outbound[1] : &cfg.outbound[0];
	assert_true(o->access_log.enabled);
	assert_int_equal(o->tracing.mode, PL_TRACE_PROPAGATE);
	assert_false(o2->access_log.enabled);
	assert_false(o2->tracing.set);
	assert_int_equal(o2->tracing.mode, PL_TRACE_ADD);
	assert_true(o2->tracing.sampling_percent == 1);
	assert_null(json_object_get(json_array_get(json_object_get(back, "outbound"), o2 == &cfg.outbound[0] ? 0 : 1),
				    "accessLog"));
	/* A proxy config with a bad value is named by path. */
	int oi = o == &cfg.outbound[0] ? 0 : 1;
	json_t *ob = json_array_get(json_object_get(back, "outbound"), (size_t)oi);
	json_object_set_new(json_object_get(ob, "tracing"), "samplingPercentage", json_integer(101));
	errs.n = 0;
	assert_false(pl_proxy_config_decode(&a, back, &cfg, &errs));
	char path[64];
	snprintf(path, sizeof(path), "outbound[%d].tracing.samplingPercentage", oi);
	assert_non_null(error_at(&errs, path));
	pl_arena_free(&a);
	free(text);
	json_decref(back);
	json_decref(doc);
	fixture_free(&f);
}


/* The kubelet's HTTP probes reach the config: ports resolved, paths as the kubelet sends them. */
static void test_probes(void **state)
{
	(void)state;
	fixture f;
	static const char yaml[] =
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  namespace: shop\n"
		"  annotations: {pillion.dev/id: 0123456789abcdef0123456789abcdef}\n"
		"spec:\n  containers:\n"
		"  - name: app\n    ports: [{name: http, containerPort: 8080}, {name: admin, containerPort: 9000}]\n"
		"    livenessProbe: {httpGet: {path: healthz, port: http}}\n"
		"    readinessProbe: {httpGet: {port: 8080}}\n"
		"    startupProbe: {tcpSocket: {port: 8080}}\n" /* in the spec, not rewritten: left out */
		"  - name: side\n    ports: [{name: http, containerPort: 7000}]\n"
		"    livenessProbe: {httpGet: {path: '/live?verbose=1', port: http, scheme: HTTP}}\n"
		"    readinessProbe: {httpGet: {path: /secure, port: 9443, scheme: HTTPS}}\n"
		"    startupProbe: {httpGet: {path: /elsewhere, port: 80, host: example.org}}\n"
		"  - name: dup\n    livenessProbe: {httpGet: {path: /healthz, port: 8080}}\n"
		"    readinessProbe: {httpGet: {path: /x, port: nosuchname}}\n"
		"  - name: pillion-proxy\n    readinessProbe: {httpGet: {path: /ready, port: 15420}}\n";

	json_t *doc = render(&f, yaml);
	json_t *want = json_loads(
		"[{\"container\": \"app\", \"kind\": \"liveness\", \"port\": 8080, \"path\": \"/healthz\", \"timeoutSeconds\": 1},"
		" {\"container\": \"app\", \"kind\": \"readiness\", \"port\": 8080, \"path\": \"/\", \"timeoutSeconds\": 1},"
		" {\"container\": \"side\", \"kind\": \"liveness\", \"port\": 7000, \"path\": \"/live?verbose=1\", \"timeoutSeconds\": 1},"
		" {\"container\": \"dup\", \"kind\": \"liveness\", \"port\": 8080, \"path\": \"/healthz\", \"timeoutSeconds\": 1}]",
		0, NULL);
	if (!json_equal(json_object_get(doc, "probes"), want)) {
		char *got = json_dumps(json_object_get(doc, "probes"), 0);
		fail_msg("probes: %s", got ? got : "(none)");
	}
	json_decref(want);
	json_decref(doc);
	fixture_free(&f);
	/* An injected pod: the probes aim at the admin port, the originals are in the annotation. */
	static const char injected[] =
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: shop\n"
		"  annotations:\n    pillion.dev/id: 0123456789abcdef0123456789abcdef\n"
		"    pillion.dev/probes: '{\"app\": {\"readinessProbe\": {\"httpGet\": {\"path\": \"/ready\", \"port\": \"http\","
		" \"httpHeaders\": [{\"name\": \"X-A\", \"value\": \"1\"}]}, \"timeoutSeconds\": 3}}}'\n"
		"spec:\n  containers:\n"
		"  - name: app\n    ports: [{name: http, containerPort: 8080}]\n"
		"    readinessProbe: {httpGet: {path: /app-health/app/readiness, port: 15420}, timeoutSeconds: 3}\n"
		"    livenessProbe: {httpGet: {path: /app-health/app/liveness, port: 15420}}\n";
	doc = render(&f, injected);
	want = json_loads("[{\"container\": \"app\", \"kind\": \"readiness\", \"port\": 8080, \"path\": \"/ready\","
			  " \"timeoutSeconds\": 3, \"headers\": [{\"name\": \"X-A\", \"value\": \"1\"}]}]", 0, NULL);
	if (!json_equal(json_object_get(doc, "probes"), want)) {
		char *got = json_dumps(json_object_get(doc, "probes"), 0);
		fail_msg("injected probes: %s", got ? got : "(none)");
	}
	json_decref(want);
	/* ... and the config reads back. */
	pl_arena a;
	pl_proxy_config cfg;
	pl_errors errs = {0};
	pl_arena_init(&a);
	assert_true(pl_proxy_config_decode(&a, doc, &cfg, &errs));
	assert_int_equal(cfg.nprobes, 1);
	assert_string_equal(cfg.probes[0].kind, "readiness");
	assert_int_equal(cfg.probes[0].headers.n, 1);
	assert_string_equal(cfg.probes[0].headers.v[0].value, "1");
	assert_false(cfg.probes[0].tcp);
	pl_arena_free(&a);
	json_decref(doc);
	fixture_free(&f);
	/* A tcpSocket probe kept in the annotation: rendered as "tcp": true, read back without a path;
	 * a path beside it is refused by name. */
	static const char tcp[] =
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-2\n  namespace: shop\n"
		"  annotations:\n    pillion.dev/id: 0123456789abcdef0123456789abcdef\n"
		"    pillion.dev/probes: '{\"app\": {\"livenessProbe\": {\"tcpSocket\": {\"port\": \"http\"}, \"timeoutSeconds\": 2}}}'\n"
		"spec:\n  containers:\n"
		"  - name: app\n    ports: [{name: http, containerPort: 8080}]\n"
		"    livenessProbe: {httpGet: {path: /app-health/app/liveness, port: 15420}, timeoutSeconds: 2}\n";
	doc = render(&f, tcp);
	want = json_loads("[{\"container\": \"app\", \"kind\": \"liveness\", \"port\": 8080, \"tcp\": true,"
			  " \"timeoutSeconds\": 2}]", 0, NULL);
	if (!json_equal(json_object_get(doc, "probes"), want)) {
		char *got = json_dumps(json_object_get(doc, "probes"), 0);
		fail_msg("tcp probes: %s", got ? got : "(none)");
	}
	json_decref(want);
	pl_arena_init(&a);
	errs.n = 0;
	assert_true(pl_proxy_config_decode(&a, doc, &cfg, &errs));
	assert_int_equal(cfg.nprobes, 1);
	assert_true(cfg.probes[0].tcp);
	assert_null(cfg.probes[0].path);
	json_object_set_new(json_array_get(json_object_get(doc, "probes"), 0), "path", json_string("/x"));
	char h2[80];
	pl_proxy_config_hash(doc, h2);
	json_object_set_new(doc, "hash", json_string(h2));
	errs.n = 0;
	assert_false(pl_proxy_config_decode(&a, doc, &cfg, &errs));
	assert_non_null(error_at(&errs, "probes[0].path"));
	pl_arena_free(&a);
	json_decref(doc);
	fixture_free(&f);
	/* A gRPC probe kept in the annotation: "grpc": true with its service, read back; a path or a
	 * service with a space beside it is refused by name. */
	static const char grpc[] =
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-3\n  namespace: shop\n"
		"  annotations:\n    pillion.dev/id: 0123456789abcdef0123456789abcdef\n"
		"    pillion.dev/probes: '{\"app\": {\"readinessProbe\": {\"grpc\": {\"port\": 9090, \"service\": \"shop.Cart\"}}}}'\n"
		"spec:\n  containers:\n"
		"  - name: app\n    readinessProbe: {httpGet: {path: /app-health/app/readiness, port: 15420}}\n";
	doc = render(&f, grpc);
	want = json_loads("[{\"container\": \"app\", \"kind\": \"readiness\", \"port\": 9090, \"grpc\": true,"
			  " \"grpcService\": \"shop.Cart\", \"timeoutSeconds\": 1}]", 0, NULL);
	if (!json_equal(json_object_get(doc, "probes"), want)) {
		char *got = json_dumps(json_object_get(doc, "probes"), 0);
		fail_msg("grpc probes: %s", got ? got : "(none)");
	}
	json_decref(want);
	pl_arena_init(&a);
	errs = (pl_errors){0}; /* its list lived in the arena freed above */
	assert_true(pl_proxy_config_decode(&a, doc, &cfg, &errs));
	assert_int_equal(cfg.nprobes, 1);
	assert_true(cfg.probes[0].grpc);
	assert_string_equal(cfg.probes[0].grpc_service, "shop.Cart");
	assert_null(cfg.probes[0].path);
	json_object_set_new(json_array_get(json_object_get(doc, "probes"), 0), "grpcService", json_string("a b"));
	pl_proxy_config_hash(doc, h2);
	json_object_set_new(doc, "hash", json_string(h2));
	errs.n = 0;
	assert_false(pl_proxy_config_decode(&a, doc, &cfg, &errs));
	assert_non_null(error_at(&errs, "probes[0].grpcService"));
	pl_arena_free(&a);
	json_decref(doc);
	fixture_free(&f);
	/* No HTTP probe: no key, so the config of a pod without probes is unchanged. */
	doc = render(&f, pod_web);
	assert_null(json_object_get(doc, "probes"));
	json_decref(doc);
	fixture_free(&f);
}

/* All valid pods of a fixture, for the mesh directory. */
static size_t fixture_pods(const fixture *f, const pl_pod **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n && n < max; i++)
		if (f->obj[i].valid && f->obj[i].kind == PL_KIND_POD)
			out[n++] = f->obj[i].u.pod;
	return n;
}

static const char mesh_objects[] =
	"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
	"spec: {clusterIP: 198.18.10.20, selector: {app: web}, ports: [{port: 9090, targetPort: 9090}, {port: 80, targetPort: 8080}, {port: 53, protocol: UDP}]}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: web-headless, namespace: shop}\n"
	"spec: {clusterIP: None, selector: {app: web}, ports: [{port: 80}]}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: legacy, namespace: shop}\n"
	"spec: {clusterIP: 198.18.10.30, selector: {app: legacy}, ports: [{port: 80}]}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: data}\n"
	"spec: {clusterIP: 198.18.10.40, selector: {app: db}, ports: [{port: 5432}]}\n"
	"---\napiVersion: pillion.dev/v1alpha1\nkind: MeshIdentity\nmetadata: {name: db, namespace: data}\n"
	"spec: {trustDomain: example.org, mtls: {mode: DISABLED}}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: w1}}\n"
	"spec: {serviceAccountName: web, containers: [{name: c, image: i}]}\n"
	"status: {phase: Running, podIPs: [{ip: 198.18.2.3}, {ip: \"2001:DB8::3\"}]}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: w0}}\n"
	"spec: {serviceAccountName: web, containers: [{name: c, image: i}]}\n"
	"status: {phase: Running, podIP: 198.18.2.2}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-pending, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: w2}}\n"
	"spec: {serviceAccountName: web, containers: [{name: c, image: i}]}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-done, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: w3}}\n"
	"spec: {serviceAccountName: other, containers: [{name: c, image: i}]}\n"
	"status: {phase: Succeeded, podIP: 198.18.2.9}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: legacy-0, namespace: shop, labels: {app: legacy}}\n"
	"spec: {containers: [{name: c, image: i}]}\nstatus: {phase: Running, podIP: 198.18.3.2}\n"
	"---\napiVersion: v1\nkind: Pod\nmetadata: {name: db-0, namespace: data, labels: {app: db}, annotations: {pillion.dev/id: d0}}\n"
	"spec: {serviceAccountName: db, containers: [{name: c, image: i}]}\nstatus: {phase: Running, podIP: 198.18.4.2}\n";

/* Endpoints: the ready, not terminating pods behind a Service, each with its port per Service port. */
static void test_mesh_endpoints(void **state)
{
	(void)state;
	fixture f;
	const pl_pod *pods[8];
	static const char objs[] =
		"apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
		"spec: {clusterIP: 198.18.10.20, selector: {app: web}, ports: [{port: 9090, targetPort: admin}, {port: 80, targetPort: 8080}]}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: w0}}\n"
		"spec: {containers: [{name: c, image: i, ports: [{name: admin, containerPort: 9901}]}]}\n"
		"status: {phase: Running, podIP: 198.18.2.2, conditions: [{type: Ready, status: \"True\"}]}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: w1}}\n"
		"spec: {containers: [{name: c, image: i}]}\n"
		"status: {phase: Running, podIP: 198.18.2.3, conditions: [{type: Ready, status: \"True\"}]}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: w2}}\n"
		"spec: {containers: [{name: c, image: i}]}\n"
		"status: {phase: Running, podIP: 198.18.2.4, conditions: [{type: Ready, status: \"False\"}]}\n"
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-3, namespace: shop, labels: {app: web}, annotations: {pillion.dev/id: w3},\n"
		"  deletionTimestamp: \"2026-11-22T10:00:00Z\"}\n"
		"spec: {containers: [{name: c, image: i}]}\n"
		"status: {phase: Running, podIP: 198.18.2.5, conditions: [{type: Ready, status: \"True\"}]}\n"
		/* Without the proxy (no id): an endpoint all the same, dialled in plaintext as it is not in "pods". */
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-9, namespace: shop, labels: {app: web}}\n"
		"spec: {containers: [{name: c, image: i}]}\n"
		"status: {phase: Running, podIP: 198.18.2.9, conditions: [{type: Ready, status: \"True\"}]}\n";

	fixture_load(&f, objs);
	size_t n = fixture_pods(&f, pods, 8);
	assert_int_equal(n, 5);
	json_t *dir = pl_render_mesh(f.ix, pods, n, "shop");
	json_t *web = json_array_get(json_object_get(dir, "services"), 0);
	json_t *want = json_loads("[{\"addresses\": [\"198.18.2.2\"], \"ports\": [8080, 9901]},"
				  " {\"addresses\": [\"198.18.2.3\"], \"ports\": [8080, 0]},"
				  " {\"addresses\": [\"198.18.2.9\"], \"ports\": [8080, 0]}]", 0, NULL);
	if (!json_equal(json_object_get(web, "endpoints"), want)) {
		char *got = json_dumps(json_object_get(web, "endpoints"), 0);
		fail_msg("endpoints: %s", got);
	}
	json_decref(want);
	pl_arena a;
	pl_errors errs = {0};
	pl_mesh_dir d;
	pl_arena_init(&a);
	assert_true(pl_mesh_dir_decode(&a, dir, &d, &errs));
	const pl_mesh_service *s = pl_mesh_dir_service(&d, "shop/web");
	assert_non_null(s);
	assert_int_equal(s->nendpoints, 3);
	/* ... but not in the pods (so no identity, no mTLS) nor among the Service's identities. */
	size_t nids = 9;
	assert_null(pl_mesh_dir_lookup(&d, "198.18.2.9", 8080, &nids));
	assert_non_null(pl_mesh_dir_lookup(&d, "198.18.2.2", 8080, &nids));
	assert_int_equal(json_array_size(json_object_get(web, "identities")), 1);
	assert_int_equal(s->endpoints[0].ports[1], 9901);
	assert_int_equal(s->endpoints[1].ports[1], 0);
	pl_mesh_dir_free(&d);
	/* An endpoint must have a port per Service port. */
	json_array_remove(json_object_get(json_array_get(json_object_get(web, "endpoints"), 0), "ports"), 1);
	json_object_del(dir, "hash");
	errs.n = 0;
	assert_false(pl_mesh_dir_decode(&a, dir, &d, &errs));
	assert_non_null(error_at(&errs, "services[0].endpoints[0].ports"));
	pl_arena_free(&a);
	json_decref(dir);
	fixture_free(&f);
}

static void test_mesh_directory(void **state)
{
	(void)state;
	fixture f;
	const pl_pod *pods[16];
	fixture_load(&f, mesh_objects);
	size_t n = fixture_pods(&f, pods, 16);
	assert_int_equal(n, 6);
	json_t *dir = pl_render_mesh(f.ix, pods, n, "shop");
	json_t *svcs = json_object_get(dir, "services"), *pl = json_object_get(dir, "pods");
	/* Only web: headless has no cluster IP, legacy selects no meshed pod, db's pods are DISABLED. */
	assert_int_equal(json_array_size(svcs), 1);
	json_t *web = json_array_get(svcs, 0);
	assert_string_equal(json_string_value(json_object_get(web, "name")), "web");
	assert_string_equal(json_string_value(json_array_get(json_object_get(web, "addresses"), 0)), "198.18.10.20");
	/* TCP ports only, ascending. */
	assert_int_equal(json_array_size(json_object_get(web, "ports")), 2);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(web, "ports"), 0)), 80);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(web, "ports"), 1)), 9090);
	/* One identity for two pods of the same service account; the finished pod's is not there. */
	assert_int_equal(json_array_size(json_object_get(web, "identities")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(web, "identities"), 0)),
			    "spiffe://cluster.local/ns/shop/sa/web");
	/* Pods: running, injected, with an IP, not DISABLED; sorted; addresses canonical. */
	assert_int_equal(json_array_size(pl), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(pl, 0), "name")), "web-0");
	json_t *a1 = json_object_get(json_array_get(pl, 1), "addresses");
	assert_string_equal(json_string_value(json_array_get(a1, 1)), "2001:db8::3");
	/* It reads back through the proxy's strict decoder (hash included), and lookups work. */
	pl_arena a;
	pl_errors errs = {0};
	pl_mesh_dir d;
	pl_arena_init(&a);
	assert_true(pl_mesh_dir_decode(&a, dir, &d, &errs));
	size_t k;
	assert_non_null(pl_mesh_dir_lookup(&d, "198.18.10.20", 80, &k));
	assert_null(pl_mesh_dir_lookup(&d, "198.18.10.30", 80, &k));
	assert_null(pl_mesh_dir_lookup(&d, "198.18.4.2", 5432, &k));
	assert_non_null(pl_mesh_dir_lookup(&d, "2001:db8::3", 1234, &k));
	pl_mesh_dir_free(&d);
	pl_arena_free(&a);
	/* The same objects in another order give the same bytes. */
	const pl_pod *rev[16];
	for (size_t i = 0; i < n; i++)
		rev[i] = pods[n - 1 - i];
	json_t *dir2 = pl_render_mesh(f.ix, rev, n, "shop");
	char *c1 = pl_json_dump_canonical(dir), *c2 = pl_json_dump_canonical(dir2);
	assert_string_equal(c1, c2);
	free(c1);
	free(c2);
	json_decref(dir);
	json_decref(dir2);
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_defaults_and_spiffe_id),
		cmocka_unit_test(test_specific_identity_beats_namespace_wide),
		cmocka_unit_test(test_inbound_resolves_named_ports_and_precedence),
		cmocka_unit_test(test_outbound_follows_export_to),
		cmocka_unit_test(test_outbound_from_mesh),
		cmocka_unit_test(test_outbound_conflict_keeps_the_oldest),
		cmocka_unit_test(test_deterministic_and_hashed),
		cmocka_unit_test(test_scale_only_what_applies),
		cmocka_unit_test(test_proxy_config_round_trip),
		cmocka_unit_test(test_observability_round_trip),
		cmocka_unit_test(test_probes),
		cmocka_unit_test(test_mesh_directory),
		cmocka_unit_test(test_mesh_endpoints),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
