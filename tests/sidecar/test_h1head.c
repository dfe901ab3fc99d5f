/* Unit tests of the heads the proxy sends on (sidecar/h1head.c): what is dropped, kept, added, and rewritten. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "h1head.h"
#include "http1/http1.h"

#define MAXH 128

/* What goes on for a request head: parsed from text, rewritten in place (or to sep). */
static char buf[PL_H1_DEFAULT_MAX_HEAD + 64];
static pl_h1_header hdrs[MAXH];

static char *request_out(const char *head, const char *add, bool keep_upgrade, bool drop_trace, int32_t *st)
{
	pl_h1_limits lim;
	pl_h1_msg m;
	pl_h1_error e;
	char *sep = NULL;
	uint32_t seplen = 0;

	pl_h1_limits_default(&lim);
	snprintf(buf, sizeof(buf), "%s", head);
	assert_int_equal(pl_h1_parse_request(buf, strlen(buf), &lim, hdrs, MAXH, &m, &e), 1);
	*st = px_request_head_out(&m, buf, add, keep_upgrade, drop_trace, &sep, &seplen);
	if (*st == PX_HEAD_TOO_MANY)
		return NULL;
	if (*st == -1) {
		char *out = strndup(sep, seplen);
		free(sep);
		return out;
	}
	return strndup(buf + *st, m.head_len - (uint32_t)*st);
}

static void test_hop_by_hop_dropped(void **state)
{
	(void)state;
	int32_t st;
	char *out = request_out("GET /a HTTP/1.1\r\nHost: web\r\nConnection: keep-alive, x-secret\r\nX-Secret: 1\r\n"
				"Keep-Alive: timeout=5\r\nTE: trailers\r\nAccept: */*\r\n\r\n",
				"", false, false, &st);
	assert_true(st > 0); /* smaller: in place, ending where the original ended */
	assert_string_equal(out, "GET /a HTTP/1.1\r\nHost: web\r\nAccept: */*\r\n\r\n");
	free(out);
}

static void test_nothing_to_do_is_untouched(void **state)
{
	(void)state;
	int32_t st;
	char *out = request_out("GET /a HTTP/1.1\r\nHost: web\r\n\r\n", "", false, false, &st);
	assert_int_equal(st, 0);
	assert_string_equal(out, "GET /a HTTP/1.1\r\nHost: web\r\n\r\n");
	free(out);
}

static void test_add_goes_to_sep_when_longer(void **state)
{
	(void)state;
	int32_t st;
	char *out = request_out("GET /a HTTP/1.1\r\nHost: web\r\n\r\n", "traceparent: 00-aa-bb-01\r\n", false, false, &st);
	assert_int_equal(st, -1);
	assert_string_equal(out, "GET /a HTTP/1.1\r\nHost: web\r\ntraceparent: 00-aa-bb-01\r\n\r\n");
	free(out);
}

static void test_upgrade_and_trace(void **state)
{
	(void)state;
	int32_t st;
	const char *h = "GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
			"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntracestate: a=b\r\n\r\n";
	char *out = request_out(h, "connection: upgrade\r\n", true, true, &st);
	assert_string_equal(out, "GET /ws HTTP/1.1\r\nHost: web\r\nUpgrade: websocket\r\nconnection: upgrade\r\n\r\n");
	free(out);
	/* Without keep_upgrade, Upgrade is hop-by-hop like the rest. */
	out = request_out(h, "", false, false, &st);
	assert_null(strstr(out, "Upgrade:"));
	assert_non_null(strstr(out, "traceparent:"));
	free(out);
}

static void test_absolute_form_and_version(void **state)
{
	(void)state;
	int32_t st;
	/* The authority becomes the one Host; the path policy matched is what the app reads. */
	char *out = request_out("GET http://web.shop:8080/a/b?c=1 HTTP/1.1\r\nHost: other\r\nAccept: x\r\n\r\n", "", false,
				false, &st);
	assert_string_equal(out, "GET /a/b?c=1 HTTP/1.1\r\nAccept: x\r\nhost: web.shop:8080\r\n\r\n");
	free(out);
	out = request_out("GET http://web HTTP/1.1\r\nHost: web\r\n\r\n", "", false, false, &st);
	assert_string_equal(out, "GET / HTTP/1.1\r\nhost: web\r\n\r\n");
	free(out);
	/* HTTP/1.5 is read as 1.1 and goes on saying so. */
	out = request_out("GET / HTTP/1.5\r\nHost: web\r\nConnection: close\r\n\r\n", "", false, false, &st);
	assert_string_equal(out, "GET / HTTP/1.1\r\nHost: web\r\n\r\n");
	free(out);
}

static void test_too_many_fields(void **state)
{
	(void)state;
	static char head[PL_H1_DEFAULT_MAX_HEAD];
	size_t n = (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: web\r\n");
	int32_t st;

	for (unsigned i = 1; i < PL_H1_DEFAULT_MAX_HEADERS; i++)
		n += (size_t)snprintf(head + n, sizeof(head) - n, "x-%u: v\r\n", i);
	snprintf(head + n, sizeof(head) - n, "\r\n");
	/* Exactly the limit passes through unchanged; one added field would take it past. */
	char *out = request_out(head, "", false, false, &st);
	assert_int_equal(st, 0);
	free(out);
	assert_null(request_out(head, "traceparent: 00-aa-bb-01\r\n", false, false, &st));
	assert_int_equal(st, PX_HEAD_TOO_MANY);
}

static void test_response_own_field_and_peer_unsent(void **state)
{
	(void)state;
	pl_h1_limits lim;
	pl_h1_msg m;
	pl_h1_error e;
	char *sep = NULL;
	uint32_t seplen = 0;
	const char *r = "HTTP/1.1 503 Service Unavailable\r\npillion-proxy-error: connect failure\r\nContent-Length: 0\r\n\r\n";

	pl_h1_limits_default(&lim);
	snprintf(buf, sizeof(buf), "%s", r);
	assert_int_equal(pl_h1_parse_response(buf, strlen(buf), &lim, PL_H1_GET, hdrs, MAXH, &m, &e), 1);
	assert_true(px_peer_unsent(&m));
	assert_int_equal(px_fields_kept(&m, false, false, 0), 2);
	assert_int_equal(px_fields_kept(&m, false, false, PX_DROP_OWN), 1);
	/* At the app's own proxy the field goes: an app cannot make its caller replay a request. */
	int32_t st = px_rewrite_head(&m, buf, "", false, false, NULL, PX_DROP_OWN, &sep, &seplen);
	assert_true(st > 0);
	assert_string_equal(buf + st, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
	/* Any other value is not "unsent". */
	snprintf(buf, sizeof(buf), "HTTP/1.1 503 x\r\npillion-proxy-error: connect failures\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(pl_h1_parse_response(buf, strlen(buf), &lim, PL_H1_GET, hdrs, MAXH, &m, &e), 1);
	assert_false(px_peer_unsent(&m));
	assert_string_equal(px_reason(431), "Request Header Fields Too Large");
	assert_string_equal(px_reason(418), "Client Error");
	free(sep);
}

/* Whether b[0..len) holds s. */
static void *has(const char *b, uint32_t len, const char *s) { return memmem(b, len, s, strlen(s)); }

/* The proxy's own answers parse as one response whose body is exactly its Content-Length. */
static void test_local_answer(void **state)
{
	(void)state;
	pl_h1_limits lim;
	pl_h1_msg m;
	pl_h1_error e;
	char *b = NULL;
	uint32_t len = 0, cap = 0;

	pl_h1_limits_default(&lim);
	px_local_answer(&b, &len, &cap, 429, "rate limited", "rate limit of TrafficPolicy shop/web", false, 1);
	assert_int_equal(pl_h1_parse_response(b, len, &lim, PL_H1_GET, hdrs, MAXH, &m, &e), 1);
	assert_int_equal(m.status, 429);
	assert_true(m.body == PL_H1_BODY_LENGTH && m.head_len + m.content_length == len);
	assert_non_null(has(b, len, "\r\npillion-proxy-error: rate limited\r\n"));
	assert_non_null(has(b, len, "\r\nretry-after: 1\r\n"));
	assert_null(has(b, len, "connection:"));
	assert_memory_equal(b + m.head_len, "pillion: rate limit of TrafficPolicy shop/web\n", m.content_length);
	free(b);
	b = NULL;
	len = cap = 0;
	/* Retry-After only for 429; Connection: close when asked. */
	px_local_answer(&b, &len, &cap, 503, "connect failure", "", true, 5);
	assert_int_equal(pl_h1_parse_response(b, len, &lim, PL_H1_GET, hdrs, MAXH, &m, &e), 1);
	assert_int_equal(m.status, 503);
	assert_true(m.head_len + m.content_length == len);
	assert_null(has(b, len, "retry-after"));
	assert_non_null(has(b, len, "\r\nconnection: close\r\n"));
	assert_true(px_peer_unsent(&m));
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hop_by_hop_dropped),
		cmocka_unit_test(test_nothing_to_do_is_untouched),
		cmocka_unit_test(test_add_goes_to_sep_when_longer),
		cmocka_unit_test(test_upgrade_and_trace),
		cmocka_unit_test(test_absolute_form_and_version),
		cmocka_unit_test(test_too_many_fields),
		cmocka_unit_test(test_response_own_field_and_peer_unsent),
		cmocka_unit_test(test_local_answer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
