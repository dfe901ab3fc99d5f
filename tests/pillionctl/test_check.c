/* pillionctl check's verdicts on Deployments and Endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "check_eval.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);
	assert_non_null(v);
	return v;
}

static bool serves(const char *text, char *msg, size_t size)
{
	json_t *d = parse(text);
	bool ok = check_deployment_serves(d, msg, size);
	json_decref(d);
	return ok;
}

static void test_deployment_available_and_ready(void **state)
{
	char msg[256];
	(void)state;
	assert_true(serves("{\"spec\":{\"replicas\":2},\"status\":{\"readyReplicas\":2,"
			   "\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"}]}}", msg, sizeof(msg)));
	assert_string_equal(msg, "Available, 2/2 replicas ready");
}

/* kubectl scale --replicas=0 leaves Available True: it must not pass. */
static void test_deployment_scaled_to_zero(void **state)
{
	char msg[256];
	(void)state;
	assert_false(serves("{\"spec\":{\"replicas\":0},\"status\":{"
			    "\"conditions\":[{\"type\":\"Available\",\"status\":\"True\",\"message\":\"Deployment has "
			    "minimum availability.\"}]}}", msg, sizeof(msg)));
	assert_string_equal(msg, "scaled to 0 replicas: nothing serves");
}

static void test_deployment_none_ready(void **state)
{
	char msg[256];
	(void)state;
	assert_false(serves("{\"spec\":{\"replicas\":1},\"status\":{\"readyReplicas\":0,"
			    "\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"}]}}", msg, sizeof(msg)));
	assert_string_equal(msg, "0/1 replicas ready");
	/* no status at all: a Deployment the controller has not seen yet */
	assert_false(serves("{\"spec\":{\"replicas\":1}}", msg, sizeof(msg)));
	assert_string_equal(msg, "0/1 replicas ready");
}

static void test_deployment_not_available(void **state)
{
	char msg[256];
	(void)state;
	assert_false(serves("{\"spec\":{\"replicas\":3},\"status\":{\"readyReplicas\":1,"
			    "\"conditions\":[{\"type\":\"Available\",\"status\":\"False\",\"message\":\"Deployment does "
			    "not have minimum availability.\"}]}}", msg, sizeof(msg)));
	assert_string_equal(msg, "not Available (1/3 replicas ready): Deployment does not have minimum availability.");
}

static void test_endpoints_count(void **state)
{
	int ready, not_ready;
	json_t *ep;
	(void)state;
	ep = parse("{\"subsets\":[{\"addresses\":[{\"ip\":\"198.18.0.4\"}],\"notReadyAddresses\":[{\"ip\":\"198.18.0.5\"}]},"
		   "{\"addresses\":[{\"ip\":\"198.18.0.6\"},{\"ip\":\"198.18.0.7\"}]}]}");
	check_endpoints_count(ep, &ready, &not_ready);
	assert_int_equal(ready, 3);
	assert_int_equal(not_ready, 1);
	json_decref(ep);
	ep = parse("{\"metadata\":{\"name\":\"pillion-webhook\"}}"); /* scaled to 0: no subsets */
	check_endpoints_count(ep, &ready, &not_ready);
	assert_int_equal(ready, 0);
	assert_int_equal(not_ready, 0);
	json_decref(ep);
}

static void test_proxy_sync(void **state)
{
	char msg[600];
	const char *c1 = "sha256:1111111111111111aaaa", *c2 = "sha256:2222222222222222bbbb", *m1 = "sha256:3333333333333333";
	json_t *s;
	(void)state;
	assert_int_equal(check_proxy_sync(NULL, c1, m1, NULL, msg, sizeof(msg)), PROXY_NOT_READY);
	assert_string_equal(msg, "the proxy did not answer GET /status");
	s = parse("{\"ready\":false,\"reason\":\"no valid certificate\",\"config\":{\"hash\":\"sha256:1111111111111111aaaa\"}}");
	assert_int_equal(check_proxy_sync(s, c1, m1, NULL, msg, sizeof(msg)), PROXY_NOT_READY);
	assert_string_equal(msg, "not ready: no valid certificate");
	json_decref(s);
	s = parse("{\"ready\":true,\"config\":{\"hash\":\"sha256:1111111111111111aaaa\",\"lastError\":\"line 3: bad\"},"
		  "\"mesh\":{\"hash\":\"sha256:3333333333333333\"}}");
	assert_int_equal(check_proxy_sync(s, c1, m1, NULL, msg, sizeof(msg)), PROXY_SYNCED);
	assert_int_equal(check_proxy_sync(s, c2, m1, NULL, msg, sizeof(msg)), PROXY_STALE);
	assert_string_equal(msg, "runs config 111111111111, the operator wrote 222222222222; it refused the new one: line 3: bad");
	assert_int_equal(check_proxy_sync(s, c1, "sha256:4444444444444444", NULL, msg, sizeof(msg)), PROXY_STALE);
	assert_string_equal(msg, "runs mesh directory 333333333333, the operator wrote 444444444444");
	json_decref(s);
	/* An older proxy's /config: the config's hash, the directory's counts without a hash (unchecked). */
	s = parse("{\"ready\":true,\"reason\":\"ready\",\"config\":{\"kind\":\"ProxyConfig\",\"hash\":\"sha256:1111111111111111aaaa\"},"
		  "\"mesh\":{\"namespace\":\"shop\",\"services\":2,\"pods\":3}}");
	assert_int_equal(check_proxy_sync(s, c1, m1, NULL, msg, sizeof(msg)), PROXY_SYNCED);
	assert_int_equal(check_proxy_sync(s, c2, m1, NULL, msg, sizeof(msg)), PROXY_STALE);
	json_decref(s);
	s = parse("{\"ready\":true,\"config\":{\"hash\":\"sha256:1111111111111111aaaa\"},\"mesh\":{\"hash\":\"sha256:3333333333333333\"}}");
	/* Nothing written to compare with: what it runs is all there is. */
	assert_int_equal(check_proxy_sync(s, "", "", "", msg, sizeof(msg)), PROXY_SYNCED);
	json_decref(s);
	/* Client-side policies from the namespace's outbound.json: checked against its hash. */
	s = parse("{\"ready\":true,\"config\":{\"hash\":\"sha256:1111111111111111aaaa\"},\"mesh\":{\"hash\":\"sha256:3333333333333333\"},"
		  "\"outbound\":{\"source\":\"mesh\",\"hash\":\"sha256:5555555555555555\"}}");
	assert_int_equal(check_proxy_sync(s, c1, m1, "sha256:5555555555555555", msg, sizeof(msg)), PROXY_SYNCED);
	assert_int_equal(check_proxy_sync(s, c1, m1, "sha256:6666666666666666", msg, sizeof(msg)), PROXY_STALE);
	assert_string_equal(msg, "runs client-side policies 555555555555, the operator wrote 666666666666");
	json_decref(s);
	/* ... but not when they come from its config (a pod injected without --outbound). */
	s = parse("{\"ready\":true,\"config\":{\"hash\":\"sha256:1111111111111111aaaa\"},\"outbound\":{\"source\":\"config\",\"hash\":null}}");
	assert_int_equal(check_proxy_sync(s, c1, "", "sha256:6666666666666666", msg, sizeof(msg)), PROXY_SYNCED);
	json_decref(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deployment_available_and_ready),
		cmocka_unit_test(test_deployment_scaled_to_zero),
		cmocka_unit_test(test_deployment_none_ready),
		cmocka_unit_test(test_deployment_not_available),
		cmocka_unit_test(test_endpoints_count),
		cmocka_unit_test(test_proxy_sync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
