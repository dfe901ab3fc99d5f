/* The reflector against scripted API responses: list, watch, resume after a cut, relist after 410, back off on errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../kube/replay.h"
#include "ctrl/reflector.h"
#include "ctrl/store.h"
#include "kube/kube.h"

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Waits (bounded: 30 s) until the server has answered n requests. */
static void wait_requests(rp_server *s, int n)
{
	for (int i = 0; i < 3000 && rp_count(s) < n; i++)
		sleep_ms(10);
	assert_true(rp_count(s) >= n);
}

static void config_for(pl_kube_config *cfg, rp_server *s)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->server = strdup(rp_url(s));
	cfg->token = strdup("t");
	cfg->namespace = strdup("default");
}

#define LIST1 "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"10\"},\"items\":[" \
	"{\"metadata\":{\"name\":\"a\",\"namespace\":\"x\",\"resourceVersion\":\"5\"}}," \
	"{\"metadata\":{\"name\":\"b\",\"namespace\":\"x\",\"resourceVersion\":\"6\"}}]}"
#define LIST2 "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"40\"},\"items\":[" \
	"{\"metadata\":{\"name\":\"a\",\"namespace\":\"x\",\"resourceVersion\":\"5\"}}," \
	"{\"metadata\":{\"name\":\"d\",\"namespace\":\"x\",\"resourceVersion\":\"39\"}}]}"
#define EV(type, name, rv) "{\"type\":\"" type "\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"" name "\",\"namespace\":\"x\",\"resourceVersion\":\"" rv "\"}}}\n"
#define GONE "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"Expired\",\"code\":410,\"message\":\"too old resource version\"}}\n"

static void trim(json_t *obj)
{
	json_object_del(json_object_get(obj, "metadata"), "managedFields");
	json_object_set_new(obj, "trimmed", json_true());
}

static void test_list_watch_resume_relist(void **state)
{
	(void)state;
	const rp_response script[] = {
		/* 0: the first list */
		{.status = 200, .body = LIST1},
		/* 1: a watch that adds c, modifies a, then is cut mid-line */
		{.status = 200, .chunks = {{EV("ADDED", "c", "11"), 0}, {EV("MODIFIED", "a", "12") "{\"type\":\"DEL", 0}, {NULL, 0}}, .cut = true},
		/* 2: the resumed watch deletes b, then says 410 */
		{.status = 200, .chunks = {{EV("DELETED", "b", "13"), 0}, {GONE, 0}, {NULL, 0}}},
		/* 3: the relist: b and c are gone, d is new */
		{.status = 200, .body = LIST2},
		/* 4: a quiet watch; holding the server for 60 s, so no request past the script (an
		 * error) comes before the checks, however slow the machine. rp_stop ends the hold. */
		{.status = 200, .chunks = {{"", 0}, {NULL, 0}}, .hold_ms = 60000},
	};
	rp_server *s = rp_start(script, 5);
	pl_kube_config cfg;
	config_for(&cfg, s);
	pl_store *st = pl_store_new(NULL, NULL);
	pl_reflector_spec spec = {.name = "pods", .path = "/api/v1/pods", .api_version = "v1", .kind = "Pod",
				  .watch_timeout_s = 5, .transform = trim};
	pl_reflector *r = pl_reflector_start(&cfg, &spec, st);
	pl_reflector_set_backoff(r, 10, 50);
	wait_requests(s, 5);
	sleep_ms(100);
	/* The watch resumed from the last complete event (12), not from the list (10). */
	assert_non_null(strstr(rp_req(s, 1)->target, "watch=true"));
	assert_non_null(strstr(rp_req(s, 1)->target, "resourceVersion=10"));
	assert_non_null(strstr(rp_req(s, 2)->target, "resourceVersion=12"));
	assert_non_null(strstr(rp_req(s, 1)->target, "allowWatchBookmarks=true"));
	/* After the 410 the store matches the relist exactly. */
	json_t *all = pl_store_list(st, NULL);
	assert_int_equal(json_array_size(all), 2);
	json_decref(all);
	json_t *d = pl_store_get(st, "x/d");
	assert_non_null(d);
	/* Listed items get the kind the API leaves out, and pass through the transform. */
	assert_string_equal(json_string_value(json_object_get(d, "kind")), "Pod");
	assert_true(json_is_true(json_object_get(d, "trimmed")));
	json_decref(d);
	json_t *a = pl_store_get(st, "x/a");
	assert_true(json_is_true(json_object_get(a, "trimmed")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(a, "metadata"), "resourceVersion")), "5");
	json_decref(a);
	pl_reflector_stats stats;
	pl_reflector_stats_get(r, &stats);
	assert_int_equal(stats.lists, 2);
	assert_int_equal(stats.relists, 1);
	/* The server first: its stop ends the hold the reflector's next request waits behind. */
	rp_stop(s);
	pl_reflector_stop(r, true);
	pl_store_free(st);
	pl_kube_config_free(&cfg);
}

static void test_list_errors_back_off_then_succeed(void **state)
{
	(void)state;
	const rp_response script[] = {
		{.status = 403, .body = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"Forbidden\",\"code\":403,\"message\":\"pods is forbidden\"}"},
		{.status = 403, .body = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"Forbidden\",\"code\":403,\"message\":\"pods is forbidden\"}"},
		{.status = 200, .body = LIST1},
		/* Held for 60 s: the checks below see exactly the two scripted errors. */
		{.status = 200, .chunks = {{"", 0}, {NULL, 0}}, .hold_ms = 60000},
	};
	rp_server *s = rp_start(script, 4);
	pl_kube_config cfg;
	config_for(&cfg, s);
	pl_store *st = pl_store_new(NULL, NULL);
	pl_reflector_spec spec = {.name = "pods", .path = "/api/v1/pods", .api_version = "v1", .kind = "Pod"};
	pl_reflector *r = pl_reflector_start(&cfg, &spec, st);
	pl_reflector_set_backoff(r, 10, 50);
	wait_requests(s, 4);
	assert_true(pl_store_synced(st));
	assert_int_equal(pl_store_len(st), 2);
	pl_reflector_stats stats;
	pl_reflector_stats_get(r, &stats);
	assert_int_equal(stats.errors, 2);
	rp_stop(s);
	pl_reflector_stop(r, true);
	pl_store_free(st);
	pl_kube_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_watch_resume_relist),
		cmocka_unit_test(test_list_errors_back_off_then_succeed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
