/* Unit tests of decoding and validation: defaults, collected errors with paths, selectors, patterns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "base/duration.h"
#include "fixture.h"
#include "model/decode.h"

static const pl_error *find_error(const pl_object *o, const char *path)
{
	for (size_t i = 0; i < o->errors.n; i++) {
		if (strcmp(o->errors.v[i].path, path) == 0)
			return &o->errors.v[i];
	}
	return NULL;
}

static void test_traffic_policy_defaults(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\n"
			 "metadata: {name: web, namespace: shop}\n"
			 "spec:\n  targetRef: {name: web}\n"
			 "  routes:\n  - retries: {}\n    backends: [{name: web-v2}]\n"
			 "  circuitBreaker: {}\n  rateLimit: {requestsPerSecond: 50}\n");
	assert_true(f.obj[0].valid);
	const pl_traffic_policy *p = f.obj[0].u.policy;
	assert_string_equal(p->meta.namespace, "shop");
	assert_int_equal(p->target_port, 0);
	assert_int_equal(p->export_to.n, 1);
	assert_string_equal(p->export_to.v[0], "*");
	assert_int_equal(p->nroutes, 1);
	assert_string_equal(p->routes[0].name, "route-0");
	assert_int_equal(p->routes[0].backends[0].weight, 1);
	assert_int_equal(p->routes[0].backends[0].port, 0);
	const pl_retries *r = &p->routes[0].retries;
	assert_true(r->set);
	assert_int_equal(r->attempts, 2);
	assert_int_equal(r->retry_on, PL_RETRY_CONNECT_FAILURE | PL_RETRY_RESET);
	assert_int_equal(r->budget_percent, 20);
	assert_int_equal(r->budget_min_per_second, 10);
	assert_int_equal(r->budget_window_ns, 10 * PL_NS_PER_S);
	assert_int_equal(p->circuit_breaker.consecutive_failures, 5);
	assert_int_equal(p->circuit_breaker.base_ejection_ns, 30 * PL_NS_PER_S);
	assert_int_equal(p->circuit_breaker.max_ejection_ns, 5 * PL_NS_PER_M);
	assert_int_equal(p->circuit_breaker.max_pending, 0);
	assert_int_equal(p->rate_limit.burst, 50);
	assert_false(p->authorization.set);
	fixture_free(&f);
}

static void test_no_routes_means_one_default_route(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\n"
			 "metadata: {name: web}\nspec: {targetRef: {name: web, port: 8080}}\n");
	assert_true(f.obj[0].valid);
	const pl_traffic_policy *p = f.obj[0].u.policy;
	assert_string_equal(p->meta.namespace, "default");
	assert_int_equal(p->target_port, 8080);
	assert_int_equal(p->nroutes, 1);
	assert_string_equal(p->routes[0].name, "default");
	assert_int_equal(p->routes[0].match.path_kind, PL_PATH_ANY);
	assert_int_equal(p->routes[0].nbackends, 1);
	assert_string_equal(p->routes[0].backends[0].name, "web");
	assert_int_equal(p->routes[0].timeout_ns, 0);
	assert_false(p->routes[0].retries.set);
	fixture_free(&f);
}

static void test_mesh_identity_defaults(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: MeshIdentity\nmetadata: {name: a}\n---\n"
			 "apiVersion: pillion.dev/v1alpha1\nkind: MeshIdentity\nmetadata: {name: b}\n"
			 "spec: {certificate: {ttl: 12h}, mtls: {mode: STRICT}}\n");
	const pl_mesh_identity *a = f.obj[0].u.identity, *b = f.obj[1].u.identity;
	assert_true(f.obj[0].valid);
	assert_true(f.obj[1].valid);
	assert_string_equal(a->trust_domain, "cluster.local");
	assert_int_equal(a->ttl_ns, 24 * PL_NS_PER_H);
	assert_int_equal(a->renew_before_ns, 8 * PL_NS_PER_H);
	assert_int_equal(a->mtls_mode, PL_MTLS_PERMISSIVE);
	assert_true(pl_selector_empty(&a->selector));
	assert_int_equal(b->ttl_ns, 12 * PL_NS_PER_H);
	assert_int_equal(b->renew_before_ns, 4 * PL_NS_PER_H);
	assert_int_equal(b->mtls_mode, PL_MTLS_STRICT);
	fixture_free(&f);
}

static void test_every_error_is_collected(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\n"
			 "metadata: {name: Web}\n"
			 "spec:\n  targetRef: {name: web, port: 0}\n  colour: blue\n"
			 "  routes:\n  - name: a\n    backends: [{name: x, weight: 1500}, {name: y, weight: -1}]\n"
			 "    timeout: 48h\n    match: {path: {exact: /a, prefix: /b}, method: get}\n"
			 "  - name: a\n    retries: {attempts: 11, retryOn: [reset, reset]}\n");
	const pl_object *o = &f.obj[0];
	assert_false(o->valid);
	const pl_error *e;
	assert_non_null(e = find_error(o, "metadata.name"));
	assert_non_null(strstr(e->msg, "must match"));
	assert_non_null(e = find_error(o, "spec.targetRef.port"));
	assert_string_equal(e->msg, "must be between 1 and 65535, got 0");
	assert_non_null(e = find_error(o, "spec.colour"));
	assert_string_equal(e->msg, "unknown field");
	assert_non_null(e = find_error(o, "spec.routes[0].backends[0].weight"));
	assert_string_equal(e->msg, "must be between 0 and 1000, got 1500");
	assert_non_null(e = find_error(o, "spec.routes[0].backends[1].weight"));
	assert_string_equal(e->msg, "must be between 0 and 1000, got -1");
	assert_non_null(e = find_error(o, "spec.routes[0].timeout"));
	assert_string_equal(e->msg, "must be between 1ms and 24h, got 48h");
	assert_non_null(e = find_error(o, "spec.routes[0].match.path"));
	assert_string_equal(e->msg, "must set exactly one of exact or prefix");
	assert_non_null(e = find_error(o, "spec.routes[0].match.method"));
	assert_string_equal(e->msg, "must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, got \"get\"");
	assert_non_null(e = find_error(o, "spec.routes[1].name"));
	assert_string_equal(e->msg, "duplicate value \"a\"");
	assert_non_null(e = find_error(o, "spec.routes[1].retries.attempts"));
	assert_non_null(e = find_error(o, "spec.routes[1].retries.retryOn[1]"));
	assert_string_equal(e->msg, "duplicate value \"reset\"");
	/* Unquoted y is a YAML 1.1 boolean, as kubectl reads it. */
	assert_non_null(e = find_error(o, "spec.routes[0].backends[1].name"));
	assert_string_equal(e->msg, "must be a string, got true");
	assert_int_equal(o->errors.n, 12);
	fixture_free(&f);
}

static void test_types_and_nulls(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec:\n  targetRef: {name: web, port: \"80\"}\n  exportTo: shop\n"
			 "  routes:\n  - timeout: null\n    backends: [{name: web, weight: 1.5}]\n"
			 "  rateLimit: []\n---\n"
			 "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n");
	const pl_object *o = &f.obj[0];
	const pl_error *e;
	assert_non_null(e = find_error(o, "spec.targetRef.port"));
	assert_string_equal(e->msg, "must be an integer, got \"80\"");
	assert_non_null(e = find_error(o, "spec.exportTo"));
	assert_string_equal(e->msg, "must be a list, got \"shop\"");
	assert_non_null(e = find_error(o, "spec.routes[0].backends[0].weight"));
	assert_string_equal(e->msg, "must be an integer, got 1.5");
	assert_non_null(e = find_error(o, "spec.rateLimit"));
	assert_string_equal(e->msg, "must be an object, got a list");
	/* A null optional field is absent, as the API server treats it. */
	assert_null(find_error(o, "spec.routes[0].timeout"));
	assert_int_equal(o->errors.n, 4);
	assert_non_null(e = find_error(&f.obj[1], "spec"));
	assert_string_equal(e->msg, "is required");
	fixture_free(&f);
}

static void test_operator_only_rules(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec:\n  targetRef: {name: web}\n"
			 "  routes:\n  - backends: [{name: a, weight: 0}, {name: b, weight: 0}]\n"
			 "    timeout: 1s\n    retries: {perTryTimeout: 2s}\n"
			 "  - backends: [{name: a, port: 80}, {name: a, port: 80}]\n"
			 "  circuitBreaker: {baseEjectionTime: 1m, maxEjectionTime: 30s}\n---\n"
			 "apiVersion: pillion.dev/v1alpha1\nkind: MeshIdentity\nmetadata: {name: m}\n"
			 "spec:\n  certificate: {ttl: 1h, renewBefore: 2h}\n"
			 "  selector: {matchExpressions: [{key: app, operator: In}, {key: tier, operator: Exists, values: [x]}]}\n");
	const pl_object *o = &f.obj[0], *m = &f.obj[1];
	const pl_error *e;
	assert_non_null(e = find_error(o, "spec.routes[0].backends"));
	assert_string_equal(e->msg, "at least one backend must have a weight greater than 0");
	assert_non_null(e = find_error(o, "spec.routes[0].retries.perTryTimeout"));
	assert_string_equal(e->msg, "must not be longer than the route's timeout (1s), got 2s");
	assert_non_null(e = find_error(o, "spec.routes[1].backends[1]"));
	assert_non_null(strstr(e->msg, "duplicate backend"));
	assert_non_null(e = find_error(o, "spec.circuitBreaker.maxEjectionTime"));
	assert_string_equal(e->msg, "must not be less than baseEjectionTime (1m), got 30s");
	assert_int_equal(o->errors.n, 4);
	assert_non_null(e = find_error(m, "spec.certificate.renewBefore"));
	assert_string_equal(e->msg, "must be greater than 0 and less than ttl (1h), got 2h");
	assert_non_null(e = find_error(m, "spec.selector.matchExpressions[0].values"));
	assert_string_equal(e->msg, "must have at least 1 item for operator In");
	assert_non_null(e = find_error(m, "spec.selector.matchExpressions[1].values"));
	assert_string_equal(e->msg, "must be empty for operator Exists");
	assert_int_equal(m->errors.n, 3);
	fixture_free(&f);
}

static void test_authorization_patterns(void **state)
{
	(void)state;
	static const struct { const char *id; bool ok; } ids[] = {
		{"*", true},
		{"spiffe://cluster.local/ns/shop/sa/web", true},
		{"spiffe://cluster.local/ns/shop/*", true},
		{"spiffe://cluster.local", true},
		{"spiffe://Cluster.local/ns/a", false},
		{"spiffe://cluster.local/ns//sa", false},
		{"spiffe://cluster.local/ns/*/sa/web", false},
		{"http://cluster.local/ns/a", false},
		{"spiffe:///ns/a", false},
		{"**", false},
	};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char yaml[512];
		fixture f;
		snprintf(yaml, sizeof(yaml),
			 "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec:\n  targetRef: {name: web}\n  authorization:\n    rules:\n"
			 "    - from: {identities: [\"%s\"]}\n      to: {paths: [/api/*, /x]}\n",
			 ids[i].id);
		fixture_load(&f, yaml);
		if (f.obj[0].valid != ids[i].ok)
			fail_msg("identity %s: valid=%d, want %d", ids[i].id, f.obj[0].valid, ids[i].ok);
		fixture_free(&f);
	}
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec:\n  targetRef: {name: web}\n  authorization:\n    rules:\n"
			 "    - to: {paths: [/a*b], methods: [GET, GET]}\n");
	assert_non_null(find_error(&f.obj[0], "spec.authorization.rules[0].to.paths[0]"));
	assert_non_null(find_error(&f.obj[0], "spec.authorization.rules[0].to.methods[1]"));
	fixture_free(&f);
}

static void test_name_patterns(void **state)
{
	(void)state;
	assert_true(pl_is_dns1123_label("a"));
	assert_true(pl_is_dns1123_label("9lives"));
	assert_false(pl_is_dns1035_label("9lives"));
	assert_false(pl_is_dns1123_label("-a"));
	assert_false(pl_is_dns1123_label("a-"));
	assert_false(pl_is_dns1123_label("A"));
	assert_false(pl_is_dns1123_label(""));
	assert_true(pl_is_dns1123_label("a123456789012345678901234567890123456789012345678901234567890bc"));
	assert_false(pl_is_dns1123_label("a123456789012345678901234567890123456789012345678901234567890bcd"));
	assert_true(pl_is_dns1123_subdomain("a.b-c.d"));
	assert_false(pl_is_dns1123_subdomain("a..b"));
	assert_false(pl_is_dns1123_subdomain("a.b."));
	/* Kubernetes caps a subdomain at 253 in all, not each label at 63. */
	assert_true(pl_is_dns1123_subdomain("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b"));
	assert_false(pl_is_dns1123_label("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_true(pl_is_label_key("app"));
	assert_true(pl_is_label_key("app.kubernetes.io/name"));
	assert_false(pl_is_label_key("/name"));
	assert_false(pl_is_label_key("Example.com/name"));
	assert_false(pl_is_label_key("a/b/c"));
	assert_true(pl_is_label_value(""));
	assert_true(pl_is_label_value("v1.2_b-3"));
	assert_false(pl_is_label_value("-v"));
}

static void test_selector_matching(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: MeshIdentity\nmetadata: {name: m}\n"
			 "spec:\n  selector:\n    matchLabels: {app: web}\n    matchExpressions:\n"
			 "    - {key: tier, operator: In, values: [front, edge]}\n"
			 "    - {key: track, operator: NotIn, values: [canary]}\n"
			 "    - {key: team, operator: Exists}\n"
			 "    - {key: legacy, operator: DoesNotExist}\n");
	assert_true(f.obj[0].valid);
	const pl_selector *s = &f.obj[0].u.identity->selector;
	pl_label l1[] = {{"app", "web"}, {"team", "a"}, {"tier", "edge"}};
	pl_labels ok = {3, l1};
	assert_true(pl_selector_matches(s, &ok));
	pl_label l2[] = {{"app", "web"}, {"team", "a"}, {"tier", "edge"}, {"track", "canary"}};
	pl_labels notin = {4, l2};
	assert_false(pl_selector_matches(s, &notin));
	pl_label l3[] = {{"app", "web"}, {"legacy", "1"}, {"team", "a"}, {"tier", "edge"}};
	pl_labels dne = {4, l3};
	assert_false(pl_selector_matches(s, &dne));
	pl_label l4[] = {{"app", "web"}, {"tier", "edge"}};
	pl_labels noteam = {2, l4};
	assert_false(pl_selector_matches(s, &noteam));
	pl_label l5[] = {{"app", "api"}, {"team", "a"}, {"tier", "edge"}};
	pl_labels otherapp = {3, l5};
	assert_false(pl_selector_matches(s, &otherapp));
	pl_selector empty = {0};
	assert_true(pl_selector_matches(&empty, &otherapp));
	pl_labels none = {0, NULL};
	assert_false(pl_labels_subset(&none, &ok));
	fixture_free(&f);
}

static void test_kinds(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1beta1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec: {targetRef: {name: web}}\n---\n"
			 "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n"
			 "apiVersion: example.com/v1\nkind: TrafficPolicy\nmetadata: {name: other}\n---\n"
			 "apiVersion: pillion.dev/v1alpha1\nkind: TraficPolicy\nmetadata: {name: typo}\n");
	assert_int_equal(f.obj[0].kind, PL_KIND_TRAFFIC_POLICY);
	const pl_error *e = find_error(&f.obj[0], "apiVersion");
	assert_non_null(e);
	assert_string_equal(e->msg, "must be pillion.dev/v1alpha1, got \"pillion.dev/v1beta1\"");
	assert_int_equal(f.obj[1].kind, PL_KIND_OTHER);
	assert_int_equal(f.obj[2].kind, PL_KIND_OTHER);
	assert_int_equal(f.obj[3].kind, PL_KIND_PILLION_UNKNOWN);
	assert_non_null(e = find_error(&f.obj[3], "kind"));
	assert_string_equal(e->msg, "must be TrafficPolicy or MeshIdentity in group pillion.dev, got \"TraficPolicy\"");
	fixture_free(&f);
}

static void test_pod_id_must_be_a_name_part(void **state)
{
	(void)state;
	fixture f;
	/* The id becomes part of object names (pillion-<id>-tls): a DNS label of at most 48 characters. */
	fixture_load(&f, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations: {pillion.dev/id: 0123456789abcdef0123456789abcdef}\n---\n"
			 "apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n  annotations: {pillion.dev/id: Not_An-ID}\n---\n"
			 "apiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n  annotations: {pillion.dev/id: '0123456789012345678901234567890123456789012345678'}\n---\n"
			 "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\n");
	assert_true(f.obj[0].valid);
	assert_string_equal(f.obj[0].u.pod->id, "0123456789abcdef0123456789abcdef");
	const pl_error *e = find_error(&f.obj[1], "metadata.annotations[pillion.dev/id]");
	assert_non_null(e);
	assert_non_null(strstr(e->msg, "must match"));
	assert_non_null(find_error(&f.obj[2], "metadata.annotations[pillion.dev/id]"));
	/* No id yet (the webhook has not run) and no name yet (generateName) is fine. */
	assert_true(f.obj[3].valid);
	assert_string_equal(f.obj[3].u.pod->id, "");
	fixture_free(&f);
}


static void test_null_means_absent_everywhere(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec:\n  targetRef: {name: web}\n  routes:\n"
			 "  - backends: [{name: a, port: 8080, weight: null}, {name: b, port: null}]\n"
			 "    match: {path: {exact: null, prefix: /a}, headers: [{name: x, exact: null, present: true}]}\n"
			 "  - faultInjection: {delay: null}\n");
	const pl_object *o = &f.obj[0];
	const pl_error *e;
	assert_int_equal(o->errors.n, 1);
	assert_non_null(e = find_error(o, "spec.routes[1].faultInjection"));
	assert_string_equal(e->msg, "must set at least one of delay or abort");
	const pl_route *r = &o->u.policy->routes[0];
	assert_int_equal(r->nbackends, 2);
	assert_string_equal(r->backends[0].name, "a");
	assert_int_equal(r->backends[0].port, 8080);
	assert_int_equal(r->backends[0].weight, 1);
	assert_string_equal(r->backends[1].name, "b");
	assert_int_equal(r->backends[1].port, 0);
	assert_int_equal(r->match.path_kind, PL_PATH_PREFIX);
	assert_int_equal(r->match.nheaders, 1);
	assert_int_equal(r->match.headers[0].kind, PL_HEADER_PRESENT);
	fixture_free(&f);
}

static void test_two_field_rules_use_defaults(void **state)
{
	(void)state;
	fixture f;
	/* maxEjectionTime defaults to 5m, which a 10m baseEjectionTime exceeds. */
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec: {targetRef: {name: web}, circuitBreaker: {baseEjectionTime: 10m}}\n");
	const pl_error *e = find_error(&f.obj[0], "spec.circuitBreaker.maxEjectionTime");
	assert_non_null(e);
	assert_string_equal(e->msg, "must not be less than baseEjectionTime (10m), got 5m (the default)");
	fixture_free(&f);
}

static void test_default_names_do_not_blame_the_user(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec: {targetRef: {name: web}, routes: [{name: route-1}, {timeout: 1s}]}\n");
	const pl_error *e = find_error(&f.obj[0], "spec.routes[1].name");
	assert_non_null(e);
	assert_string_equal(e->msg, "is required here: the default name \"route-1\" is already taken");
	fixture_free(&f);
}

static void test_timestamps_are_strict(void **state)
{
	(void)state;
	static const char *const bad[] = {"2026-02-31T03:04:05Z", "2026-01-02T03:04:05+ab:cd",
					  "2026-01-02T03:04:05+24:00", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char yaml[256];
		fixture f;
		snprintf(yaml, sizeof(yaml), "apiVersion: pillion.dev/v1alpha1\nkind: MeshIdentity\n"
			 "metadata: {name: m, creationTimestamp: '%s'}\n", bad[i]);
		fixture_load(&f, yaml);
		if (!find_error(&f.obj[0], "metadata.creationTimestamp"))
			fail_msg("timestamp %s was accepted", bad[i]);
		fixture_free(&f);
	}
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: MeshIdentity\n"
			 "metadata: {name: m, creationTimestamp: '2026-01-02T04:04:05.123+01:00'}\n");
	assert_true(f.obj[0].valid);
	assert_int_equal(f.obj[0].u.identity->meta.created, 1767323045);
	fixture_free(&f);
}

static void test_errors_stay_on_one_line(void **state)
{
	(void)state;
	fixture f;
	fixture_load(&f, "apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: w}\n"
			 "spec: {targetRef: {name: web}, \"rou\\ntes\": 1, exportTo: [\"a\\nb\"]}\n");
	assert_int_equal(f.obj[0].errors.n, 2);
	for (size_t i = 0; i < f.obj[0].errors.n; i++) {
		assert_null(strchr(f.obj[0].errors.v[i].path, '\n'));
		assert_null(strchr(f.obj[0].errors.v[i].msg, '\n'));
	}
	assert_non_null(find_error(&f.obj[0], "spec.rou?tes"));
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_traffic_policy_defaults),
		cmocka_unit_test(test_no_routes_means_one_default_route),
		cmocka_unit_test(test_mesh_identity_defaults),
		cmocka_unit_test(test_every_error_is_collected),
		cmocka_unit_test(test_types_and_nulls),
		cmocka_unit_test(test_operator_only_rules),
		cmocka_unit_test(test_authorization_patterns),
		cmocka_unit_test(test_name_patterns),
		cmocka_unit_test(test_selector_matching),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_pod_id_must_be_a_name_part),
		cmocka_unit_test(test_null_means_absent_everywhere),
		cmocka_unit_test(test_two_field_rules_use_defaults),
		cmocka_unit_test(test_default_names_do_not_blame_the_user),
		cmocka_unit_test(test_timestamps_are_strict),
		cmocka_unit_test(test_errors_stay_on_one_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
