/* Unit tests for lib/kube/watch against recorded event streams: lines split across chunks, cuts, bookmarks, 410 Gone as event and as status. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/kube.h"
#include "replay.h"

#define EV(type, name, rv) \
	"{\"type\":\"" type "\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"" name "\",\"resourceVersion\":\"" rv "\"}}}\n"
#define BOOKMARK(rv) "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"" rv "\"}}}\n"
#define GONE_EVENT \
	"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\"," \
	"\"message\":\"too old resource version: 5 (100)\",\"reason\":\"Expired\",\"code\":410}}\n"

typedef struct seen {
	int n;
	char log[16][64];    /* "TYPE name" */
	int stop_at;         /* 1-based event index at which to return stop_rc */
	int stop_rc;
} seen;

static int on_event(void *ctx, const char *type, json_t *obj)
{
	seen *s = ctx;
	const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));

	if (s->n < 16)
		snprintf(s->log[s->n], sizeof(s->log[0]), "%s %s", type, name ? name : "-");
	s->n++;
	return s->n == s->stop_at ? s->stop_rc : 0;
}

static pl_kube *client_for(rp_server *srv)
{
	pl_kube_config cfg = {0};

	cfg.server = (char *)rp_url(srv);
	pl_kube *k = pl_kube_new(&cfg, 0, 0);
	assert_non_null(k);
	pl_kube_set_retry(k, 3, 1);
	return k;
}

static void test_lines_split_across_chunks(void **state)
{
	static const char all[] = EV("ADDED", "a", "11") EV("MODIFIED", "a", "12") EV("DELETED", "b", "13") BOOKMARK("20");
	static char c1[40], c2[120], c3[400];
	rp_response script[1] = {{.status = 200}};
	pl_kube_status st;
	seen s = {0};
	char rv[32] = "10";

	(void)state;
	/* Piece 1 ends mid-object, piece 2 finishes it and starts the next, piece 3 holds the rest. */
	memcpy(c1, all, 30);
	memcpy(c2, all + 30, 100);
	snprintf(c3, sizeof(c3), "%s", all + 130);
	script[0].chunks[0] = (rp_chunk){c1, 0};
	script[0].chunks[1] = (rp_chunk){c2, 20};
	script[0].chunks[2] = (rp_chunk){c3, 20};
	rp_server *srv = rp_start(script, 1);
	pl_kube *k = client_for(srv);

	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", "labelSelector=app%3Dweb", rv, sizeof(rv), 30, on_event, &s, &st), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.log[0], "ADDED a");
	assert_string_equal(s.log[1], "MODIFIED a");
	assert_string_equal(s.log[2], "DELETED b");
	assert_string_equal(s.log[3], "BOOKMARK -");
	assert_string_equal(rv, "20");   /* the bookmark moved it */
	assert_string_equal(st.message, "");   /* a clean end: the server's timeout */
	assert_string_equal(rp_req(srv, 0)->target,
			    "/api/v1/pods?watch=true&allowWatchBookmarks=true&timeoutSeconds=30&resourceVersion=10&labelSelector=app%3Dweb");
	pl_kube_free(k);
	rp_stop(srv);
}

static void test_cut_mid_line(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .chunks = {{EV("ADDED", "a", "11"), 0}, {"{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Po", 10}}, .cut = true},
		/* resumed from 11 */
		{.status = 200, .chunks = {{EV("MODIFIED", "a", "12"), 0}}},
	};
	rp_server *srv = rp_start(script, 2);
	pl_kube *k = client_for(srv);
	pl_kube_status st;
	seen s = {0};
	char rv[32] = "10";

	(void)state;
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(rv, "11");
	assert_non_null(strstr(st.message, "stream cut mid-line"));
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.log[1], "MODIFIED a");
	assert_string_equal(rv, "12");
	assert_non_null(strstr(rp_req(srv, 1)->target, "&resourceVersion=11"));
	pl_kube_free(k);
	rp_stop(srv);
}

static void test_error_410_event(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .chunks = {{EV("ADDED", "a", "11") GONE_EVENT EV("ADDED", "never", "99"), 0}}},
	};
	rp_server *srv = rp_start(script, 1);
	pl_kube *k = client_for(srv);
	pl_kube_status st;
	seen s = {0};
	char rv[32] = "5";

	(void)state;
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), -ERANGE);
	assert_int_equal(s.n, 1);
	assert_string_equal(rv, "11");
	assert_int_equal(st.http, 410);
	assert_string_equal(st.reason, "Expired");
	assert_string_equal(st.message, "too old resource version: 5 (100)");
	pl_kube_free(k);
	rp_stop(srv);
}

static void test_http_410_and_other_errors(void **state)
{
	static const rp_response script[] = {
		{.status = 410, .body = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"too old resource version\",\"reason\":\"Gone\",\"code\":410}"},
		{.status = 403, .body = "{\"kind\":\"Status\",\"message\":\"pods is forbidden\",\"reason\":\"Forbidden\",\"code\":403}"},
		{.status = 200, .chunks = {{"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"message\":\"internal error\",\"reason\":\"InternalError\",\"code\":500}}\n", 0}}},
	};
	rp_server *srv = rp_start(script, 3);
	pl_kube *k = client_for(srv);
	pl_kube_status st;
	seen s = {0};
	char rv[32] = "5";

	(void)state;
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), -ERANGE);
	assert_int_equal(st.http, 410);
	assert_string_equal(st.reason, "Gone");
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), -EPERM);
	assert_string_equal(st.message, "pods is forbidden");
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), -EIO);
	assert_int_equal(st.http, 500);
	assert_string_equal(st.reason, "InternalError");
	assert_int_equal(s.n, 0);
	assert_string_equal(rv, "5");
	pl_kube_free(k);
	rp_stop(srv);
}

static void test_callback_stops(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .chunks = {{EV("ADDED", "a", "11") EV("ADDED", "b", "12") EV("ADDED", "c", "13"), 0}}},
		{.status = 200, .chunks = {{EV("ADDED", "a", "11") EV("ADDED", "b", "12"), 0}}},
	};
	rp_server *srv = rp_start(script, 2);
	pl_kube *k = client_for(srv);
	seen s = {.stop_at = 2, .stop_rc = 1};
	char rv[32] = "";

	(void)state;
	/* > 0: stop after this event, which counts as seen. */
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, NULL), 1);
	assert_int_equal(s.n, 2);
	assert_string_equal(rv, "12");
	/* No resourceVersion: watch from now. */
	assert_null(strstr(rp_req(srv, 0)->target, "resourceVersion"));

	/* < 0: a failure; the event was not taken, so rv stays before it. */
	s = (seen){.stop_at = 2, .stop_rc = -ENOSPC};
	rv[0] = '\0';
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, NULL), -ENOSPC);
	assert_string_equal(rv, "11");
	pl_kube_free(k);
	rp_stop(srv);
}

static void test_malformed_line(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .chunks = {{EV("ADDED", "a", "11") "\r\n{\"type\":\"ADDED\",\"object\":[1]}\n", 0}}},
		{.status = 200, .chunks = {{"not json at all\n", 0}}},
	};
	rp_server *srv = rp_start(script, 2);
	pl_kube *k = client_for(srv);
	pl_kube_status st;
	seen s = {0};
	char rv[32] = "1";

	(void)state;
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), -EBADMSG);
	assert_int_equal(s.n, 1);
	assert_string_equal(rv, "11");
	assert_string_equal(st.message, "watch /api/v1/pods: an event without type and object");
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), -EBADMSG);
	assert_non_null(strstr(st.message, "watch /api/v1/pods: an event line is not JSON"));
	assert_string_equal(st.reason, "MalformedResponse");
	pl_kube_free(k);
	rp_stop(srv);
}

static void test_retried_before_stream(void **state)
{
	static const rp_response script[] = {
		{.status = 500, .body = "{\"kind\":\"Status\",\"reason\":\"InternalError\",\"code\":500}"},
		{.status = 429, .headers = "Retry-After: 0\r\n", .body = "{}"},
		{.status = 200, .chunks = {{EV("ADDED", "a", "11"), 0}}},
	};
	rp_server *srv = rp_start(script, 3);
	pl_kube *k = client_for(srv);
	pl_kube_status st;
	seen s = {0};
	char rv[32] = "1";

	(void)state;
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), 0);
	assert_int_equal(st.attempts, 3);
	assert_int_equal(s.n, 1);
	assert_string_equal(rv, "11");
	pl_kube_free(k);
	rp_stop(srv);
}

static void test_silent_stream_counts_as_cut(void **state)
{
	static const rp_response script[] = {
		/* One event, then nothing (not even a bookmark) for longer than the idle limit. */
		{.status = 200, .chunks = {{EV("ADDED", "a", "11"), 0}}, .hold_ms = 10000, .cut = true},
	};
	rp_server *srv = rp_start(script, 1);
	pl_kube *k = client_for(srv);
	pl_kube_status st;
	seen s = {0};
	char rv[32] = "1";

	(void)state;
	pl_kube_set_timeouts(k, 0, 0, 1);
	assert_int_equal(pl_kube_watch(k, "/api/v1/pods", NULL, rv, sizeof(rv), 30, on_event, &s, &st), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(rv, "11");
	assert_string_equal(st.message, "no bytes for 1 s: the stream is dead");
	pl_kube_free(k);
	rp_stop(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_split_across_chunks),
		cmocka_unit_test(test_cut_mid_line),
		cmocka_unit_test(test_error_410_event),
		cmocka_unit_test(test_http_410_and_other_errors),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_malformed_line),
		cmocka_unit_test(test_retried_before_stream),
		cmocka_unit_test(test_silent_stream_counts_as_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
