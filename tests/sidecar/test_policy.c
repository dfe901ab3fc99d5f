/* sidecar/policy.c: routes, weighted backends, authorization, path normalisation, retry budget,
 * outlier ejection and fault injection, each on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/duration.h"
#include "http1/http1.h"
#include "policy.h"

#define S_(lit) ((pl_h1_str){lit, (uint32_t)(sizeof(lit) - 1)})
#define NS(x) ((int64_t)(x) * INT64_C(1000000000))

static pl_h1_header hdrs[32];

static pl_h1_msg parse(const char *raw)
{
	pl_h1_limits lim;
	pl_h1_msg m;
	pl_h1_error e;

	pl_h1_limits_default(&lim);
	assert_int_equal(pl_h1_parse_request(raw, strlen(raw), &lim, hdrs, 32, &m, &e), 1);
	return m;
}

static void test_routes(void **state)
{
	(void)state;
	pl_header_match canary = {"X-Canary", PL_HEADER_EXACT, "true"}, nodebug = {"x-debug", PL_HEADER_ABSENT, NULL},
			has_tok = {"authorization", PL_HEADER_PRESENT, NULL};
	pl_route routes[] = {
		{.name = "canary", .match = {PL_PATH_PREFIX, "/api/", 0, 1, &canary}},
		{.name = "login", .match = {PL_PATH_EXACT, "/login", PL_METHOD_POST, 1, &has_tok}},
		{.name = "quiet", .match = {PL_PATH_PREFIX, "/api/", PL_METHOD_GET | PL_METHOD_HEAD, 1, &nodebug}},
		{.name = "default", .match = {PL_PATH_ANY, NULL, 0, 0, NULL}},
	};
	pl_outbound_policy op = {.nroutes = 4, .routes = routes};
	static const struct { const char *raw; const char *path; const char *want; } cases[] = {
		{"GET /api/x HTTP/1.1\r\nHost: a\r\nx-canary: true\r\n\r\n", "/api/x", "canary"},
		{"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Canary: TRUE\r\n\r\n", "/api/x", "quiet"},   /* values are exact */
		{"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Debug: 1\r\n\r\n", "/api/x", "default"},
		{"HEAD /api/ HTTP/1.1\r\nHost: a\r\n\r\n", "/api/", "quiet"},
		{"GET /api HTTP/1.1\r\nHost: a\r\n\r\n", "/api", "default"},                      /* a prefix is bytes */
		{"POST /login HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\n\r\n", "/login", "login"},
		{"POST /login HTTP/1.1\r\nHost: a\r\n\r\n", "/login", "default"},
		{"POST /login/ HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\n\r\n", "/login/", "default"},
		{"PUT /login HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\n\r\n", "/login", "default"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pl_h1_msg m = parse(cases[i].raw);
		const pl_route *r = px_route_select(&op, &m, (pl_h1_str){cases[i].path, (uint32_t)strlen(cases[i].path)});
		print_message("route case %zu\n", i);
		assert_non_null(r);
		assert_string_equal(r->name, cases[i].want);
	}
	/* No route matching: NULL, so the caller can answer 404. */
	op.nroutes = 1;
	pl_h1_msg m = parse("GET /other HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_null(px_route_select(&op, &m, S_("/other")));
}

static void test_backends(void **state)
{
	(void)state;
	pl_backend b[] = {{"shop/web", 0, 900}, {"shop/web-v2", 0, 100}, {"shop/off", 0, 0}};
	pl_route r = {.nbackends = 3, .backends = b};
	int hits[3] = {0};

	/* 10,000 evenly spread rolls (rounded up, so none falls short of its share): exactly the weights. */
	for (uint32_t i = 0; i < 10000; i++) {
		const pl_backend *got = px_backend_pick(&r, (uint32_t)((((uint64_t)i << 32) + 9999) / 10000), NULL);
		hits[got - b]++;
	}
	assert_int_equal(hits[0], 9000);
	assert_int_equal(hits[1], 1000);
	assert_int_equal(hits[2], 0);
	assert_ptr_equal(px_backend_pick(&r, 0, NULL), &b[0]);
	assert_ptr_equal(px_backend_pick(&r, UINT32_MAX, NULL), &b[1]);
	/* Ejected backends are left out: the others share everything by their weights. */
	bool skip[3] = {true, false, false};
	for (uint32_t i = 0; i < 1000; i++)
		assert_ptr_equal(px_backend_pick(&r, i * 4294967u, skip), &b[1]);
	skip[1] = true;
	assert_null(px_backend_pick(&r, 7, skip));   /* all ejected (the third weighs 0): the circuit is open */
	b[0].weight = b[1].weight = 0;
	assert_null(px_backend_pick(&r, 7, NULL));
}

static void test_authorization(void **state)
{
	(void)state;
	const char *fe[] = {"spiffe://cluster.local/ns/shop/sa/frontend"}, *pay[] = {"spiffe://cluster.local/ns/payments/*"},
		   *shop[] = {"shop"}, *api[] = {"/api/*", "/healthz"}, *cb[] = {"/api/payments/callback"},
		   *probe[] = {"/healthz"}, *any[] = {"*"};
	pl_authz_rule rules[] = {
		{"frontend-reads", {1, fe}, {1, shop}, {2, api}, PL_METHOD_GET | PL_METHOD_HEAD},
		{"payments-callbacks", {1, pay}, {0, NULL}, {1, cb}, PL_METHOD_POST},
		{"probes", {0, NULL}, {0, NULL}, {1, probe}, PL_METHOD_GET},
		{"mesh-options", {1, any}, {0, NULL}, {0, NULL}, PL_METHOD_OPTIONS},
	};
	pl_authorization a = {true, 4, rules};
	static const struct { const char *peer, *raw, *path, *rule; } cases[] = {
		{"spiffe://cluster.local/ns/shop/sa/frontend", "GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n", "/api/x", "frontend-reads"},
		{"spiffe://cluster.local/ns/shop/sa/frontend", "POST /api/x HTTP/1.1\r\nHost: a\r\n\r\n", "/api/x", NULL},
		{"spiffe://cluster.local/ns/shop/sa/frontend", "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", "/admin", NULL},
		{"spiffe://cluster.local/ns/shop/sa/other", "GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n", "/api/x", NULL},
		{"spiffe://cluster.local/ns/payments/sa/cb", "POST /api/payments/callback HTTP/1.1\r\nHost: a\r\n\r\n",
		 "/api/payments/callback", "payments-callbacks"},
		/* The wildcard stops at its slash: "payments-eu" is another namespace. */
		{"spiffe://cluster.local/ns/payments-eu/sa/cb", "POST /api/payments/callback HTTP/1.1\r\nHost: a\r\n\r\n",
		 "/api/payments/callback", NULL},
		/* Plaintext callers have no identity: only rules without from match them. */
		{NULL, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "/healthz", "probes"},
		{NULL, "GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n", "/api/x", NULL},
		{NULL, "OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", "/", NULL},
		{"spiffe://other.domain/ns/x/sa/y", "OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", "/", "mesh-options"},
		/* A wildcard needs something after its slash. */
		{"spiffe://cluster.local/ns/payments/", "POST /api/payments/callback HTTP/1.1\r\nHost: a\r\n\r\n",
		 "/api/payments/callback", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pl_h1_msg m = parse(cases[i].raw);
		const char *rule = "unset";
		bool ok = px_authorize(&a, cases[i].peer, &m, (pl_h1_str){cases[i].path, (uint32_t)strlen(cases[i].path)}, &rule);
		print_message("authz case %zu\n", i);
		assert_int_equal(ok, cases[i].rule != NULL);
		if (cases[i].rule)
			assert_string_equal(rule, cases[i].rule);
		else
			assert_null(rule);
	}
	/* Without rules, everything is allowed. */
	pl_authorization none = {false, 0, NULL};
	pl_h1_msg m = parse("DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n");
	const char *rule;
	assert_true(px_authorize(&none, NULL, &m, S_("/x"), &rule));
	assert_null(rule);

	pl_h1_str ns = px_spiffe_namespace("spiffe://cluster.local/ns/shop/sa/web");
	assert_int_equal(ns.len, 4);
	assert_memory_equal(ns.p, "shop", 4);
	assert_int_equal(px_spiffe_namespace("spiffe://cluster.local/sa/web").len, 0);
	assert_int_equal(px_spiffe_namespace(NULL).len, 0);
}

static void test_normalize(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } ok[] = {
		{"/", "/"}, {"/a/b", "/a/b"}, {"/a/b/", "/a/b/"}, {"//a///b", "/a/b"}, {"/a/./b", "/a/b"},
		{"/a/b/../c", "/a/c"}, {"/api/../admin", "/admin"}, {"/../../etc", "/etc"}, {"/a/b/..", "/a/"},
		{"/a/.", "/a/"}, {"/..", "/"}, {"/a..b/c", "/a..b/c"},
		/* Unreserved characters are decoded, as the app decodes them; other escapes stay. */
		{"/a/%41", "/a/A"}, {"/%61dmin/x", "/admin/x"}, {"/a%7Eb", "/a~b"}, {"/a%20b", "/a%20b"},
		{"/a/%3f", "/a/%3f"}, {"/x;y/z", "/x;y/z"},
	};
	char out[64];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int n = px_path_normalize((pl_h1_str){ok[i].in, (uint32_t)strlen(ok[i].in)}, out, sizeof(out));
		print_message("normalize %s\n", ok[i].in);
		assert_int_equal(n, (int)strlen(ok[i].out));
		assert_memory_equal(out, ok[i].out, (size_t)n);
	}
	static const char *const bad[] = {"/api/%2e%2e/admin", "/api%2Fadmin", "/a%5cb", "/a/%zz", "", "a/b",
		/* a malformed escape at the very end, a raw backslash, path-parameter dot segments */
		"/a%2", "/a%", "/public\\..\\admin", "/public/..;/admin", "/public/.;/admin", "/x/..;a/y"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(px_path_normalize((pl_h1_str){bad[i], (uint32_t)strlen(bad[i])}, out, sizeof(out)), -1);
	assert_int_equal(px_path_normalize(S_("/abcdef"), out, 4), -1);
}

static void test_budget(void **state)
{
	(void)state;
	pl_retries r = {.set = true, .budget_percent = 20, .budget_min_per_second = 0, .budget_window_ns = NS(10)};
	px_retry_budget b;
	int64_t t = NS(1000);

	px_budget_init(&b, &r);
	/* 100 requests allow 20 retries, not 21. */
	for (int i = 0; i < 100; i++)
		px_budget_request(&b, t);
	for (int i = 0; i < 20; i++)
		assert_true(px_budget_try_retry(&b, t + i));
	assert_false(px_budget_try_retry(&b, t + 100));
	/* Once the window has passed, those requests no longer count. */
	assert_false(px_budget_try_retry(&b, t + NS(11)));
	/* The floor: min_per_second × window retries with no traffic at all. */
	r.budget_min_per_second = 2;
	px_budget_init(&b, &r);
	for (int i = 0; i < 20; i++)
		assert_true(px_budget_try_retry(&b, t));
	assert_false(px_budget_try_retry(&b, t));
	/* The defaults are Linkerd's: 20% and 10/s over 10 s. */
	pl_retries unset = {0};
	px_budget_init(&b, &unset);
	assert_int_equal(b.percent, 20);
	assert_int_equal(b.min_per_second, 10);
	assert_true(b.window_ns == NS(10));
}

static void test_outlier(void **state)
{
	(void)state;
	pl_circuit_breaker cb = {.set = true, .consecutive_failures = 3, .base_ejection_ns = NS(30), .max_ejection_ns = NS(75)};
	px_outlier o = {0};
	int64_t t = NS(100);

	assert_false(px_outlier_result(&o, &cb, true, t));
	assert_false(px_outlier_result(&o, &cb, true, t));
	assert_false(px_outlier_result(&o, &cb, false, t));   /* a success breaks the run */
	assert_false(px_outlier_result(&o, &cb, true, t));
	assert_false(px_outlier_result(&o, &cb, true, t));
	assert_true(px_outlier_result(&o, &cb, true, t));     /* third in a row: ejected for 30 s */
	assert_true(px_outlier_ejected(&o, t + NS(29)));
	assert_false(px_outlier_ejected(&o, t + NS(30)));
	t += NS(30);
	for (int i = 0; i < 2; i++)
		assert_false(px_outlier_result(&o, &cb, true, t));
	assert_true(px_outlier_result(&o, &cb, true, t));     /* second ejection in a row: 60 s */
	assert_true(px_outlier_ejected(&o, t + NS(59)));
	assert_false(px_outlier_ejected(&o, t + NS(60)));
	t += NS(60);
	for (int i = 0; i < 3; i++)
		px_outlier_result(&o, &cb, true, t);
	assert_true(px_outlier_ejected(&o, t + NS(74)));      /* third: 90 s, capped at 75 */
	assert_false(px_outlier_ejected(&o, t + NS(75)));
	/* A request that was in flight and succeeds during the ejection does not end the run. */
	px_outlier_result(&o, &cb, false, t + NS(1));
	t += NS(75);
	for (int i = 0; i < 3; i++)
		px_outlier_result(&o, &cb, true, t);
	assert_true(px_outlier_ejected(&o, t + NS(74)));      /* fourth in a row: still the cap */
	t += NS(75);
	/* A success after the ejection ends the run: the next ejection is the base again. */
	px_outlier_result(&o, &cb, false, t);
	for (int i = 0; i < 3; i++)
		px_outlier_result(&o, &cb, true, t);
	assert_true(px_outlier_ejected(&o, t + NS(29)));
	assert_false(px_outlier_ejected(&o, t + NS(30)));
}

static void test_outlier_unreachable(void **state)
{
	(void)state;
	pl_circuit_breaker cb = {.set = true, .consecutive_failures = 7, .base_ejection_ns = NS(5), .max_ejection_ns = NS(60)};
	px_outlier o = {0};
	int64_t t = NS(100);

	/* A failed connect: out at once for 1 s, then 2, 4, 8, 16, 30, 30 (capped). */
	int64_t want[] = {1, 2, 4, 8, 16, 30, 30};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_true(px_outlier_unreachable(&o, t) == NS(want[i]));
		assert_true(px_outlier_ejected(&o, t + NS(want[i]) - 1));
		assert_false(px_outlier_ejected(&o, t + NS(want[i])));
		t += NS(want[i]);
	}
	/* A success ends the run: the next failed connect is 1 s again. */
	px_outlier_result(&o, &cb, false, t);
	assert_true(px_outlier_unreachable(&o, t) == NS(1));
	/* It never shortens a longer ejection already running. */
	px_outlier e = {.ejected_until = t + NS(50)};
	px_outlier_unreachable(&e, t);
	assert_true(px_outlier_ejected(&e, t + NS(49)));
}

/* retryOn: which failures each keyword covers, as Envoy's and Istio's retryOn read. */
static void test_retry_on(void **state)
{
	(void)state;
	const unsigned cf = PL_RETRY_CONNECT_FAILURE, rs = PL_RETRY_RESET, x5 = PL_RETRY_5XX, gw = PL_RETRY_GATEWAY_ERROR;

	assert_true(px_retry_on(cf, PX_CAUSE_CONNECT, 0));
	assert_true(px_retry_on(cf, PX_CAUSE_TLS, 0));
	assert_false(px_retry_on(cf, PX_CAUSE_RESET, 0));
	assert_false(px_retry_on(cf, PX_CAUSE_TIMEOUT, 0));
	assert_false(px_retry_on(cf, PX_CAUSE_STATUS, 503));
	assert_true(px_retry_on(rs, PX_CAUSE_RESET, 0));
	assert_false(px_retry_on(rs, PX_CAUSE_CONNECT, 0));
	assert_false(px_retry_on(rs, PX_CAUSE_STATUS, 500));
	/* 5xx covers every failure before a response, and any status from 500. */
	for (int c = PX_CAUSE_CONNECT; c <= PX_CAUSE_TIMEOUT; c++)
		assert_true(px_retry_on(x5, c, 0));
	assert_true(px_retry_on(x5, PX_CAUSE_STATUS, 500));
	assert_true(px_retry_on(x5, PX_CAUSE_STATUS, 599));
	assert_false(px_retry_on(x5, PX_CAUSE_STATUS, 499));
	/* gateway-error: only 502, 503, 504 among statuses. */
	assert_true(px_retry_on(gw, PX_CAUSE_STATUS, 502));
	assert_true(px_retry_on(gw, PX_CAUSE_STATUS, 504));
	assert_false(px_retry_on(gw, PX_CAUSE_STATUS, 500));
	assert_true(px_retry_on(gw, PX_CAUSE_TIMEOUT, 0));
	assert_false(px_retry_on(0, PX_CAUSE_CONNECT, 0));
	/* gRPC codes: each name covers its one code, and no HTTP keyword covers a grpc-status. */
	const unsigned un = PL_RETRY_GRPC_UNAVAILABLE, all = PL_RETRY_GRPC_CANCELLED | PL_RETRY_GRPC_DEADLINE_EXCEEDED |
		PL_RETRY_GRPC_INTERNAL | PL_RETRY_GRPC_RESOURCE_EXHAUSTED | PL_RETRY_GRPC_UNAVAILABLE;
	assert_true(px_retry_on(un, PX_CAUSE_GRPC, 14));
	assert_false(px_retry_on(un, PX_CAUSE_GRPC, 4));
	assert_false(px_retry_on(un, PX_CAUSE_STATUS, 503));
	assert_false(px_retry_on(un, PX_CAUSE_CONNECT, 0));
	assert_true(px_retry_on(PL_RETRY_GRPC_CANCELLED, PX_CAUSE_GRPC, 1));
	assert_true(px_retry_on(PL_RETRY_GRPC_DEADLINE_EXCEEDED, PX_CAUSE_GRPC, 4));
	assert_true(px_retry_on(PL_RETRY_GRPC_RESOURCE_EXHAUSTED, PX_CAUSE_GRPC, 8));
	assert_true(px_retry_on(PL_RETRY_GRPC_INTERNAL, PX_CAUSE_GRPC, 13));
	for (int code = 0; code <= 16; code++)
		if (code != 1 && code != 4 && code != 8 && code != 13 && code != 14)
			assert_false(px_retry_on(all, PX_CAUSE_GRPC, code));
	assert_false(px_retry_on(x5 | gw, PX_CAUSE_GRPC, 14));
}

/* grpc-timeout: every unit, and what is not a timeout (no unit, too many digits, a sign). */
static void test_grpc_timeout(void **state)
{
	(void)state;
	assert_int_equal(px_grpc_timeout("1H", 2), 3600 * PL_NS_PER_S);
	assert_int_equal(px_grpc_timeout("2M", 2), 120 * PL_NS_PER_S);
	assert_int_equal(px_grpc_timeout("5S", 2), 5 * PL_NS_PER_S);
	assert_int_equal(px_grpc_timeout("300m", 4), 300 * PL_NS_PER_MS);
	assert_int_equal(px_grpc_timeout("7u", 2), 7000);
	assert_int_equal(px_grpc_timeout("99999999n", 9), 99999999);
	/* 8 digits of hours would overflow: capped at 30 days */
	assert_int_equal(px_grpc_timeout("99999999H", 9), 30LL * 24 * 3600 * PL_NS_PER_S);
	assert_int_equal(px_grpc_timeout("99999999M", 9), 30LL * 24 * 3600 * PL_NS_PER_S);
	assert_int_equal(px_grpc_timeout("100", 3), 0);
	assert_int_equal(px_grpc_timeout("m", 1), 0);
	assert_int_equal(px_grpc_timeout("123456789m", 10), 0);
	assert_int_equal(px_grpc_timeout("-5S", 3), 0);
	assert_int_equal(px_grpc_timeout("5s", 2), 0);
	assert_int_equal(px_grpc_timeout(NULL, 0), 0);
	/* the length bounds the read: "5S" inside a longer buffer */
	assert_int_equal(px_grpc_timeout("5Sxx", 2), 5 * PL_NS_PER_S);
}

/* The proxy's own answers, as a gRPC caller reads them. */
static void test_grpc_code(void **state)
{
	(void)state;
	assert_int_equal(px_grpc_code(403), 7);
	assert_int_equal(px_grpc_code(404), 12);
	assert_int_equal(px_grpc_code(429), 14);
	assert_int_equal(px_grpc_code(503), 14);
	assert_int_equal(px_grpc_code(504), 4);
	assert_int_equal(px_grpc_code(400), 13);
	assert_int_equal(px_grpc_code(418), 2);
}

static void test_fault(void **state)
{
	(void)state;
	pl_fault f = {.delay_set = true, .delay_percent = 5, .delay_ns = NS(1), .abort_set = true, .abort_percent = 100,
		      .abort_status = 503};
	int delayed = 0;

	for (uint32_t i = 0; i < 1000; i++) {
		uint32_t roll = (uint32_t)((((uint64_t)i << 32) + 999) / 1000);
		px_fault_decision d = px_fault_roll(&f, roll, roll);
		delayed += d.delay_ns == NS(1);
		assert_int_equal(d.abort_status, 503);
	}
	assert_int_equal(delayed, 50);
	f.abort_percent = 0;
	assert_int_equal(px_fault_roll(&f, 0, 0).abort_status, 0);
	pl_fault none = {0};
	px_fault_decision d = px_fault_roll(&none, 0, 0);
	assert_true(d.delay_ns == 0 && d.abort_status == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_backends),
		cmocka_unit_test(test_authorization),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_outlier),
		cmocka_unit_test(test_outlier_unreachable),
		cmocka_unit_test(test_fault),
		cmocka_unit_test(test_grpc_timeout),
		cmocka_unit_test(test_grpc_code),
		cmocka_unit_test(test_retry_on),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
