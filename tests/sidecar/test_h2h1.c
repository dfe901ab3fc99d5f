/* Unit tests of the HTTP/2 to HTTP/1.1 translation (sidecar/h2h1.c): what reaches an HTTP/1 server
 * is exactly one request, the one the policy saw, or nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "h1head.h"
#include "h2h1.h"
#include "http1/http1.h"

#define F(n, v) {n, v, sizeof(n) - 1, sizeof(v) - 1}

static char *out;
static uint32_t olen, ocap;
static enum px_h1_framing fr;
static uint64_t clen;

static const char *tr(const pl_h2_field *f, size_t n, bool body)
{
	olen = 0;
	const char *why = px_h2h1_request(f, n, body, PX_ORIG_PROTO, &out, &olen, &ocap, &fr, &clen);
	if (!why) {
		px_put(&out, &olen, &ocap, "", 1);
		olen--;
	}
	return why;
}

/* What was produced parses as one HTTP/1 request, whole, with nothing left over. */
static void parses_whole(void)
{
	pl_h1_limits lim;
	pl_h1_header h[128];
	pl_h1_msg m;
	pl_h1_error e;
	pl_h1_limits_default(&lim);
	assert_int_equal(pl_h1_parse_request(out, olen, &lim, h, 128, &m, &e), 1);
	assert_int_equal(m.head_len, olen);
}

static void test_basic_get(void **state)
{
	(void)state;
	pl_h2_field f[] = {F(":method", "GET"), F(":scheme", "http"), F(":authority", "web.shop:80"), F(":path", "/a?b=1"),
			   F("accept", "*/*"), F(PX_ORIG_PROTO, "HTTP/1.1"), F("te", "trailers")};
	assert_null(tr(f, 7, false));
	assert_string_equal(out, "GET /a?b=1 HTTP/1.1\r\nhost: web.shop:80\r\naccept: */*\r\n\r\n");
	assert_int_equal(fr, PX_H1_NO_BODY);
	parses_whole();
}

static void test_body_framing(void **state)
{
	(void)state;
	pl_h2_field f[] = {F(":method", "POST"), F(":authority", "a"), F(":path", "/"), F("content-length", "12")};
	assert_null(tr(f, 4, true));
	assert_int_equal(fr, PX_H1_LENGTH);
	assert_int_equal(clen, 12);
	assert_non_null(strstr(out, "content-length: 12\r\n"));
	parses_whole();
	/* No length: chunked. */
	assert_null(tr(f, 3, true));
	assert_int_equal(fr, PX_H1_CHUNKED);
	assert_non_null(strstr(out, "transfer-encoding: chunked\r\n"));
	parses_whole();
	/* A POST with no body says so. */
	assert_null(tr(f, 3, false));
	assert_int_equal(fr, PX_H1_NO_BODY);
	assert_non_null(strstr(out, "content-length: 0\r\n"));
}

static void test_cookies_joined(void **state)
{
	(void)state;
	pl_h2_field f[] = {F(":method", "GET"), F(":authority", "a"), F(":path", "/"), F("cookie", "a=1"),
			   F("x", "y"), F("cookie", "b=2")};
	assert_null(tr(f, 6, false));
	assert_string_equal(out, "GET / HTTP/1.1\r\nhost: a\r\nx: y\r\ncookie: a=1; b=2\r\n\r\n");
	parses_whole();
}

static void test_smuggling_refused(void **state)
{
	(void)state;
	static const struct {
		pl_h2_field f;
		const char *what;
	} bad[] = {
		{F("x", "a\r\nhost: evil"), "CRLF in a value"},
		{F("x", "a\nb"), "LF in a value"},
		{{"x", "a\0b", 1, 3}, "NUL in a value"},
		{F("x", " lead"), "leading space"},
		{F("x", "trail\t"), "trailing tab"},
		{F("x", "del\x7f"), "DEL"},
		{F("x-\r\nevil", "1"), "CRLF in a name"},
		{F("X-Upper", "1"), "uppercase name"},
		{F("bad name", "1"), "space in a name"},
		{F("transfer-encoding", "chunked"), "transfer-encoding"},
		{F("connection", "close"), "connection"},
		{F("upgrade", "websocket"), "upgrade"},
		{F("keep-alive", "1"), "keep-alive"},
		{F("content-length", "1x"), "content-length not digits"},
		{F("content-length", "-1"), "negative content-length"},
		{F("content-length", ""), "empty content-length"},
		{F("content-length", "99999999999999999999"), "overflowing content-length"},
		{F("host", "other"), "host against :authority"},
		{F(":protocol", "websocket"), "extended CONNECT"},
		{F(":path", "/b"), "second :path"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pl_h2_field f[] = {F(":method", "POST"), F(":authority", "a"), F(":path", "/"), bad[i].f};
		const char *why = tr(f, 4, true);
		if (!why)
			fail_msg("accepted: %s", bad[i].what);
	}
	/* Two content-lengths, even equal ones. */
	pl_h2_field two[] = {F(":method", "POST"), F(":authority", "a"), F(":path", "/"), F("content-length", "1"),
			     F("content-length", "1")};
	assert_non_null(tr(two, 5, true));
	/* A length with no body. */
	pl_h2_field nob[] = {F(":method", "POST"), F(":authority", "a"), F(":path", "/"), F("content-length", "5")};
	assert_non_null(tr(nob, 4, false));
}

static void test_pseudo_fields_checked(void **state)
{
	(void)state;
	static const pl_h2_field paths[] = {F(":path", "/a b"), F(":path", "/a\r\nx"), F(":path", "a"), F(":path", ""),
					    F(":path", "*"), F(":path", "/\x80"), F(":path", "http://evil/"),
					    F(":path", "/a?GE#T"), F(":path", "/public/#/../admin")};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		pl_h2_field f[] = {F(":method", "GET"), F(":authority", "a"), paths[i]};
		if (!tr(f, 3, false))
			fail_msg("path %zu accepted", i);
	}
	static const pl_h2_field methods[] = {F(":method", "GE T"), F(":method", "GET\r\n"), F(":method", ""),
					      F(":method", "CONNECT")};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		pl_h2_field f[] = {methods[i], F(":authority", "a"), F(":path", "/")};
		if (!tr(f, 3, false))
			fail_msg("method %zu accepted", i);
	}
	static const pl_h2_field auths[] = {F(":authority", "a b"), F(":authority", "a\r\nx: y"), F(":authority", "u@h"),
					    F(":authority", "h/p"), F(":authority", "h?q")};
	for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
		pl_h2_field f[] = {F(":method", "GET"), auths[i], F(":path", "/")};
		if (!tr(f, 3, false))
			fail_msg("authority %zu accepted", i);
	}
	/* OPTIONS * is a valid target; [v6]:port a valid authority; no authority gives an empty Host. */
	pl_h2_field ok[] = {F(":method", "OPTIONS"), F(":authority", "[2001:db8::1]:8080"), F(":path", "*")};
	assert_null(tr(ok, 3, false));
	parses_whole();
	pl_h2_field noauth[] = {F(":method", "GET"), F(":path", "/")};
	assert_null(tr(noauth, 2, false));
	assert_string_equal(out, "GET / HTTP/1.1\r\nhost: \r\n\r\n");
}

static void test_too_large_for_http1(void **state)
{
	(void)state;
	pl_h2_field f[120];
	f[0] = (pl_h2_field)F(":method", "GET");
	f[1] = (pl_h2_field)F(":path", "/");
	for (int i = 2; i < 120; i++)
		f[i] = (pl_h2_field)F("x", "y");
	assert_non_null(tr(f, 120, false));
	assert_null(tr(f, 60, false));
}

static void test_response_fields(void **state)
{
	(void)state;
	pl_h1_limits lim;
	pl_h1_header h[32];
	pl_h1_msg m;
	pl_h1_error e;
	pl_h2_field o[32];
	char names[512], st[4];
	const char *r = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Hop\r\n"
			"X-Hop: 1\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\nX-End: yes\r\n\r\n";
	pl_h1_limits_default(&lim);
	assert_int_equal(pl_h1_parse_response(r, strlen(r), &lim, PL_H1_GET, h, 32, &m, &e), 1);
	size_t k = px_h1h2_response(&m, true, o, 32, names, st);
	assert_int_equal(k, 3);
	assert_string_equal(o[0].name, ":status");
	assert_memory_equal(o[0].value, "404", 3);
	assert_int_equal(o[1].namelen, 12);
	assert_memory_equal(o[1].name, "content-type", 12);
	assert_memory_equal(o[2].name, "x-end", 5);
	const char *r2 = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
	assert_int_equal(pl_h1_parse_response(r2, strlen(r2), &lim, PL_H1_GET, h, 32, &m, &e), 1);
	assert_int_equal(px_h1h2_response(&m, false, o, 32, names, st), 2);
	assert_int_equal(px_h1h2_response(&m, true, o, 32, names, st), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_get),        cmocka_unit_test(test_body_framing),
		cmocka_unit_test(test_cookies_joined),   cmocka_unit_test(test_smuggling_refused),
		cmocka_unit_test(test_pseudo_fields_checked), cmocka_unit_test(test_too_large_for_http1),
		cmocka_unit_test(test_response_fields),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	free(out);
	return r;
}
