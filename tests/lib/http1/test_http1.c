/* lib/http1: request and response heads, framing, the smuggling refusals, chunked scanning, detection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http1/http1.h"

static pl_h1_limits lim;
static pl_h1_header hdrs[128];

static int req(const char *s, pl_h1_msg *m, pl_h1_error *e)
{
	return pl_h1_parse_request(s, strlen(s), &lim, hdrs, 128, m, e);
}

static int resp(const char *s, enum pl_h1_method meth, pl_h1_msg *m, pl_h1_error *e)
{
	return pl_h1_parse_response(s, strlen(s), &lim, meth, hdrs, 128, m, e);
}

static int setup(void **state)
{
	(void)state;
	pl_h1_limits_default(&lim);
	return 0;
}

static bool str_is(pl_h1_str s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void test_request_basic(void **state)
{
	(void)state;
	pl_h1_msg m;
	pl_h1_error e;
	const char *r = "GET /api/items?id=3 HTTP/1.1\r\nHost: web.shop\r\nUser-Agent: curl/7.88\r\n"
			"X-Empty:\r\nX-Spaces:  a b \t\r\n\r\nBODY";

	assert_int_equal(req(r, &m, &e), 1);
	assert_int_equal(m.head_len, strlen(r) - 4);
	assert_int_equal(m.method_id, PL_H1_GET);
	assert_true(str_is(m.target, "/api/items?id=3"));
	assert_true(str_is(m.path, "/api/items"));
	assert_true(str_is(m.host, "web.shop"));
	assert_int_equal(m.minor, 1);
	assert_int_equal(m.nheaders, 4);
	assert_true(str_is(m.headers[2].value, ""));
	assert_true(str_is(m.headers[3].value, "a b"));
	assert_int_equal(m.body, PL_H1_BODY_NONE);
	assert_true(m.keep_alive);
	assert_false(m.upgrade);
	assert_non_null(pl_h1_find(&m, "user-agent"));
	assert_null(pl_h1_find(&m, "cookie"));

	/* Every prefix of a valid head asks for more bytes, never fails. */
	for (size_t n = 0; n < m.head_len; n++)
		assert_int_equal(pl_h1_parse_request(r, n, &lim, hdrs, 128, &m, &e), 0);
}

static void test_request_framing(void **state)
{
	(void)state;
	pl_h1_msg m;
	pl_h1_error e;

	assert_int_equal(req("POST /o HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_LENGTH);
	assert_int_equal(m.content_length, 12);
	assert_int_equal(req("POST /o HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_NONE);
	assert_int_equal(req("POST /o HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_CHUNKED);
	assert_int_equal(req("PUT /o HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", &m, &e), 1);
	assert_true(m.expect_continue);
	/* Persistence: 1.1 unless close; 1.0 only with keep-alive. */
	assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, close\r\n\r\n", &m, &e), 1);
	assert_false(m.keep_alive);
	assert_int_equal(req("GET / HTTP/1.0\r\n\r\n", &m, &e), 1);
	assert_false(m.keep_alive);
	assert_int_equal(req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &m, &e), 1);
	assert_true(m.keep_alive);
	/* Upgrade needs both fields. */
	assert_int_equal(req("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &m, &e), 1);
	assert_true(m.upgrade);
	assert_int_equal(req("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &m, &e), 1);
	assert_false(m.upgrade);
	/* Target forms. */
	assert_int_equal(req("GET http://web.shop/a/b?x HTTP/1.1\r\nHost: web.shop\r\n\r\n", &m, &e), 1);
	assert_true(str_is(m.path, "/a/b"));
	assert_int_equal(req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &m, &e), 1);
	assert_true(str_is(m.path, "/"));
	assert_int_equal(req("CONNECT web.shop:443 HTTP/1.1\r\nHost: web.shop:443\r\n\r\n", &m, &e), 1);
	assert_true(m.upgrade);
	/* A minor version above 1 is read as 1.1. */
	assert_int_equal(req("GET / HTTP/1.7\r\nHost: a\r\n\r\n", &m, &e), 1);
	assert_int_equal(m.minor, 1);
}

static void test_hop_by_hop(void **state)
{
	(void)state;
	pl_h1_msg m;
	pl_h1_error e;

	assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\n"
			     "Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Sum\r\nX-Other: 2\r\n\r\n", &m, &e), 1);
	assert_true(m.conn_tokens);
	assert_true(pl_h1_hop_by_hop(&m, (pl_h1_str){"Connection", 10}));
	assert_true(pl_h1_hop_by_hop(&m, (pl_h1_str){"x-secret", 8}));
	assert_true(pl_h1_hop_by_hop(&m, (pl_h1_str){"Keep-Alive", 10}));
	assert_true(pl_h1_hop_by_hop(&m, (pl_h1_str){"TE", 2}));
	assert_false(pl_h1_hop_by_hop(&m, (pl_h1_str){"Trailer", 7}));
	assert_false(pl_h1_hop_by_hop(&m, (pl_h1_str){"X-Other", 7}));
	assert_false(pl_h1_hop_by_hop(&m, (pl_h1_str){"Host", 4}));
	/* A long name named by Connection is hop-by-hop too (names were once cut at 63 bytes). */
	const char *lr = "GET / HTTP/1.1\r\nHost: a\r\nConnection: "
			 "x-a-very-long-field-name-that-goes-on-and-on-past-sixty-four-bytes-of-it\r\n\r\n";
	assert_int_equal(req(lr, &m, &e), 1);
	assert_true(pl_h1_hop_by_hop(&m, (pl_h1_str){"X-A-Very-Long-Field-Name-That-Goes-On-And-On-Past-Sixty-Four-Bytes-Of-It", 72}));
	assert_true(pl_h1_list_has((pl_h1_str){" a ,\tB,c", 8}, "b"));
	assert_false(pl_h1_list_has((pl_h1_str){"ab,c", 4}, "a"));
}

/* Request smuggling and malformed heads: each refused with its status and a reason. */
static void test_request_refusals(void **state)
{
	(void)state;
	/* B: a literal with its length, so an embedded NUL is part of it. */
#define B(raw, status, what) {raw, sizeof(raw) - 1, status, what}
	static const struct { const char *raw; size_t len; int status; const char *what; } bad[] = {
		/* Connection naming the framing fields or Host: never hop-by-hop, so refused. */
		B("POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n", 400,
		  "Connection names Content-Length, Transfer-Encoding or Host"),
		B("POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
		  400, "Connection names Content-Length, Transfer-Encoding or Host"),
		B("GET / HTTP/1.1\r\nHost: a\r\nConnection: HOST\r\n\r\n", 400,
		  "Connection names Content-Length, Transfer-Encoding or Host"),
		/* A fragment: the policy and the app would read different paths. */
		B("GET /public/#/../../admin HTTP/1.1\r\nHost: a\r\n\r\n", 400, "a fragment (#) in the request-target"),
		B("GET http://web#/admin/x HTTP/1.1\r\nHost: web\r\n\r\n", 400, "a fragment (#) in the request-target"),
		B("GET /#x HTTP/1.0\r\n\r\n", 400, "a fragment (#) in the request-target"),
		/* CL.TE and TE.CL: both framings at once. */
		B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
		 "Content-Length and Transfer-Encoding together"),
		B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400,
		 "Content-Length and Transfer-Encoding together"),
		/* TE.TE obfuscations. */
		B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501, "Transfer-Encoding other than chunked"),
		B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 501,
		 "Transfer-Encoding other than chunked"),
		B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
		 "Transfer-Encoding other than chunked"),
		B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n", 400,
		 "more than one Transfer-Encoding"),
		B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400,
		 "whitespace between a field name and its colon"),
		B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n", 400,
		 "control character in a field value"),
		B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 501,
		 "Transfer-Encoding other than chunked"),
		B("POST / HTTP/1.1\r\nHost: a\r\nFoo: bar\r\n Transfer-Encoding: chunked\r\n\r\n", 400,
		 "obsolete line folding (a field line starting with whitespace)"),
		B("POST / HTTP/1.1\r\nHost: a\r\nX: y\rTransfer-Encoding: chunked\r\n\r\n", 400, "bare CR in a field value"),
		B("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer-Encoding in an HTTP/1.0 request"),
		/* Content-Length: twice (even equal), lists, signs, overflow. */
		B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400,
		 "more than one Content-Length"),
		B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
		 "more than one Content-Length"),
		B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400, "Content-Length is not a decimal number"),
		B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400, "Content-Length is not a decimal number"),
		B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400, "Content-Length is not a decimal number"),
		B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400, "Content-Length too large"),
		B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, "empty Content-Length"),
		/* Bytes that must never appear. */
		B("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400, "NUL in a field value"),
		B("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "line ends in a bare LF (CRLF required)"),
		B("GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "line ends in a bare LF (CRLF required)"),
		B("GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n", 400, "invalid byte in a field name"),
		B("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 400, "empty field name"),
		B("GET / HTTP/1.1\r\nHost\r\n\r\n", 400, "field line without a colon"),
		/* The request line. */
		B("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request-target"),
		B("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed HTTP version"),
		B("GET /a\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request-target"),
		B("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed method"),
		B("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP version not supported"),
		B("GET / HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 request without Host"),
		B("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host"),
		B("GET web.shop:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-target form does not fit the method"),
		B("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-target form does not fit the method"),
		/* "://" inside a path does not make an absolute-form target. */
		B("GET admin/x://y HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-target form does not fit the method"),
		B("GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-target form does not fit the method"),
		B("GET http://trusted@evil/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "userinfo (user@) in the request-target"),
		B("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty line before the request line"),
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pl_h1_msg m;
		pl_h1_error e = {0};
		size_t n = bad[i].len;
		print_message("case %zu: %s\n", i, bad[i].what);
		assert_int_equal(pl_h1_parse_request(bad[i].raw, n, &lim, hdrs, 128, &m, &e), -1);
		assert_int_equal(e.status, bad[i].status);
		assert_string_equal(e.what, bad[i].what);
		assert_true(e.offset <= n);
	}
#undef B
}

static void test_limits(void **state)
{
	(void)state;
	pl_h1_msg m;
	pl_h1_error e;
	pl_h1_limits small = {.max_line = 64, .max_head = 256, .max_headers = 4};
	char buf[1024];

	/* A request line longer than max_line: 400 as soon as max_line + 2 bytes hold no LF. */
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "GET /", 5);
	assert_int_equal(pl_h1_parse_request(buf, 66, &small, hdrs, 128, &m, &e), -1);
	assert_int_equal(e.status, 400);
	assert_string_equal(e.what, "request line too long");
	assert_int_equal(pl_h1_parse_request(buf, 65, &small, hdrs, 128, &m, &e), 0);
	/* A header section past max_head: 431, without waiting for its end. */
	int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
	memset(buf + n, 'b', sizeof(buf) - (size_t)n);
	assert_int_equal(pl_h1_parse_request(buf, 300, &small, hdrs, 128, &m, &e), -1);
	assert_int_equal(e.status, 431);
	assert_string_equal(e.what, "header section too large");
	/* More fields than max_headers: 431. */
	const char *many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
	assert_int_equal(pl_h1_parse_request(many, strlen(many), &small, hdrs, 128, &m, &e), -1);
	assert_int_equal(e.status, 431);
	assert_string_equal(e.what, "too many header fields");
	/* ... and more than the caller's array holds. */
	assert_int_equal(pl_h1_parse_request(many, strlen(many), &lim, hdrs, 2, &m, &e), -1);
	/* A head that exactly fits max_head is fine. */
	const char *fits = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	pl_h1_limits exact = {.max_line = 64, .max_head = (uint32_t)strlen(fits), .max_headers = 4};
	assert_int_equal(pl_h1_parse_request(fits, strlen(fits), &exact, hdrs, 128, &m, &e), 1);
	exact.max_head--;
	assert_int_equal(pl_h1_parse_request(fits, strlen(fits), &exact, hdrs, 128, &m, &e), -1);
	assert_int_equal(e.status, 431);
}

static void test_response(void **state)
{
	(void)state;
	pl_h1_msg m;
	pl_h1_error e;

	assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", PL_H1_GET, &m, &e), 1);
	assert_int_equal(m.status, 200);
	assert_true(str_is(m.reason, "OK"));
	assert_int_equal(m.body, PL_H1_BODY_LENGTH);
	assert_true(m.keep_alive);
	/* No reason phrase, with or without the space. */
	assert_int_equal(resp("HTTP/1.1 204\r\n\r\n", PL_H1_GET, &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_NONE);
	assert_int_equal(resp("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", PL_H1_GET, &m, &e), 1);
	/* HEAD, 304 and 1xx have no body whatever their fields say. */
	assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", PL_H1_HEAD, &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_NONE);
	assert_int_equal(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", PL_H1_GET, &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_NONE);
	assert_int_equal(resp("HTTP/1.1 100 Continue\r\n\r\n", PL_H1_POST, &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_NONE);
	/* Chunked; read-until-close ends persistence. */
	assert_int_equal(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", PL_H1_GET, &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_CHUNKED);
	assert_int_equal(resp("HTTP/1.1 200 OK\r\n\r\n", PL_H1_GET, &m, &e), 1);
	assert_int_equal(m.body, PL_H1_BODY_CLOSE);
	assert_false(m.keep_alive);
	assert_int_equal(resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", PL_H1_GET, &m, &e), 1);
	assert_false(m.keep_alive);
	/* Upgrades and tunnels. */
	assert_int_equal(resp("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
			      PL_H1_GET, &m, &e), 1);
	assert_true(m.upgrade);
	assert_int_equal(resp("HTTP/1.1 200 Connection established\r\n\r\n", PL_H1_CONNECT, &m, &e), 1);
	assert_true(m.upgrade);
	assert_int_equal(m.body, PL_H1_BODY_NONE);

	static const struct { const char *raw; const char *what; } bad[] = {
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		 "Content-Length and Transfer-Encoding together"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", "more than one Content-Length"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding other than chunked"},
		{"HTTP/1.1 20 OK\r\n\r\n", "malformed status code"},
		{"HTTP/1.1 600 What\r\n\r\n", "malformed status code"},
		{"HTTP/1.1 200OK\r\n\r\n", "malformed status code"},
		{"HTTP/2 200 OK\r\n\r\n", "malformed HTTP version in the status line"},
		{"ICY 200 OK\r\n\r\n", "malformed HTTP version in the status line"},
		{"HTTP/1.1 200 O\x01K\r\n\r\n", "control character in the reason phrase"},
		{"HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n", "obsolete line folding (a field line starting with whitespace)"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("response case %zu\n", i);
		assert_int_equal(resp(bad[i].raw, PL_H1_GET, &m, &e), -1);
		assert_int_equal(e.status, 502);
		assert_string_equal(e.what, bad[i].what);
	}
}

/* Scans body in pieces of step bytes; returns the bytes the body took, or -1 with *e set. */
static ssize_t scan(const char *body, size_t len, size_t step, pl_h1_error *e)
{
	pl_h1_chunked c;
	size_t used = 0;
	bool done = false;

	pl_h1_chunked_init(&c);
	while (used < len && !done) {
		size_t n = len - used < step ? len - used : step;
		ssize_t r = pl_h1_chunked_scan(&c, body + used, n, &lim, 400, &done, e);
		if (r < 0)
			return -1;
		used += (size_t)r;
		if (!done && (size_t)r != n)
			return -2; /* must take everything unless the body ended */
	}
	return done ? (ssize_t)used : -3;
}

static void test_chunked(void **state)
{
	(void)state;
	pl_h1_error e;
	const char *ok[] = {
		"5\r\nhello\r\n0\r\n\r\n",
		"5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
		"3\r\nabc\r\n0\r\nX-Sum: 12\r\nX-Other: a b\r\n\r\n",
		/* Names that begin like a forbidden one are fine. */
		"0\r\nContent-Lengthy: 1\r\nHos: 2\r\nX-Host: 3\r\nContent-Type: a\r\n\r\n",
		"0\r\n\r\n",
		"000000000000005\r\nhello\r\n0\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		for (size_t step = 1; step <= strlen(ok[i]); step++) {
			/* Whatever the split, the body ends at the same byte; what follows is the next message. */
			char buf[256];
			int n = snprintf(buf, sizeof(buf), "%sGET / HTTP/1.1\r\n", ok[i]);
			assert_int_equal(scan(buf, (size_t)n, step, &e), (ssize_t)strlen(ok[i]));
		}

	static const struct { const char *raw; const char *what; } bad[] = {
		{"FFFFFFFFFFFFFFFF\r\n", "chunk size too large"},              /* 2^64 - 1 */
		{"1000000000000000\r\n", "chunk size too large"},              /* 2^60: 16 digits */
		{"-1\r\n", "invalid chunk size"},
		{"5 \r\nhello\r\n0\r\n\r\n", "invalid chunk size"},           /* whitespace after the size */
		{" 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"},
		{"0x5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"},
		{"\r\nhello\r\n0\r\n\r\n", "invalid chunk size"},
		{"5\nhello\r\n0\r\n\r\n", "invalid chunk size"},              /* bare LF after the size */
		{"5\r\nhelloX\r\n0\r\n\r\n", "chunk data longer than its size"},
		{"5\r\nhello\rX0\r\n\r\n", "chunk data not ended by CRLF"},
		{"5\r\nhello\n0\r\n\r\n", "chunk data longer than its size"},
		{"5;a\x01\r\nhello\r\n0\r\n\r\n", "control character in a chunk extension"},
		{"5;a\nb\r\nhello\r\n0\r\n\r\n", "control character in a chunk extension"},
		{"0\r\n X: 1\r\n\r\n", "obsolete line folding in the trailer section"},
		{"0\r\nX : 1\r\n\r\n", "invalid byte in a trailer field name"},
		{"0\r\nX: 1\n\r\n", "control character in a trailer field value"},
		{"0\r\n\rX", "chunked body not ended by CRLF"},
		/* Framing fields and Host never come as trailers (a merging parser would reframe). */
		{"0\r\nContent-Length: 5\r\n\r\n", "Content-Length, Transfer-Encoding or Host in the trailer section"},
		{"0\r\nX-A: 1\r\ntransfer-ENCODING: chunked\r\n\r\n", "Content-Length, Transfer-Encoding or Host in the trailer section"},
		{"0\r\nHost: evil\r\n\r\n", "Content-Length, Transfer-Encoding or Host in the trailer section"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("chunked case %zu: %s\n", i, bad[i].what);
		memset(&e, 0, sizeof(e));
		assert_int_equal(scan(bad[i].raw, strlen(bad[i].raw), 3, &e), -1);
		assert_int_equal(e.status, 400);
		assert_string_equal(e.what, bad[i].what);
	}
	/* A long extension is cut off. */
	char ext[5000];
	memset(ext, 'x', sizeof(ext));
	memcpy(ext, "5;", 2);
	assert_int_equal(scan(ext, sizeof(ext), 512, &e), -1);
	assert_string_equal(e.what, "chunk extension too long");
	/* Responses get 502. */
	pl_h1_chunked c;
	bool done;
	pl_h1_chunked_init(&c);
	assert_int_equal(pl_h1_chunked_scan(&c, "g\r\n", 3, &lim, 502, &done, &e), -1);
	assert_int_equal(e.status, 502);
	/* Error offsets count from the body's first byte across calls. */
	pl_h1_chunked_init(&c);
	assert_int_equal(pl_h1_chunked_scan(&c, "5\r\nhel", 6, &lim, 400, &done, &e), 6);
	assert_int_equal(pl_h1_chunked_scan(&c, "loZ", 3, &lim, 400, &done, &e), -1);
	assert_int_equal(e.offset, 8);
}

static void test_detect(void **state)
{
	(void)state;
	static const struct { const char *s; enum pl_h1_detect want; } cases[] = {
		{"", PL_H1_DETECT_MORE},
		{"GE", PL_H1_DETECT_MORE},
		{"GET /", PL_H1_DETECT_MORE},
		{"GET / HTTP/1.", PL_H1_DETECT_MORE},
		{"GET / HTTP/1.1\r", PL_H1_DETECT_HTTP},
		{"PROPFIND /dav HTTP/1.0\r\n", PL_H1_DETECT_HTTP},
		{"\x16\x03\x01\x02\x00", PL_H1_DETECT_NOT},          /* a TLS ClientHello */
		{"PRI * HTTP/2.0\r\n", PL_H1_DETECT_HTTP},            /* HTTP/2's preface: the parser answers 505 */
		{"*1\r\n$4\r\nPING\r\n", PL_H1_DETECT_NOT},           /* Redis */
		{"SSH-2.0-OpenSSH_9.2\r\n", PL_H1_DETECT_NOT},
		{"GET  / HTTP/1.1\r\n", PL_H1_DETECT_NOT},
		{"GET / XTTP/1.1\r\n", PL_H1_DETECT_NOT},
		{"get / http/1.1\r\n", PL_H1_DETECT_NOT},
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", PL_H1_DETECT_NOT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("detect case %zu\n", i);
		assert_int_equal(pl_h1_detect(cases[i].s, strlen(cases[i].s), 8192), cases[i].want);
	}
	/* A huge target is still HTTP (the parser then answers 400), not a reason to wait for ever. */
	char big[300];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	assert_int_equal(pl_h1_detect(big, sizeof(big), 256), PL_H1_DETECT_HTTP);
	assert_int_equal(pl_h1_detect(big, 200, 256), PL_H1_DETECT_MORE);
}

static void test_idempotent(void **state)
{
	(void)state;
	assert_true(pl_h1_idempotent(PL_H1_GET));
	assert_true(pl_h1_idempotent(PL_H1_PUT));
	assert_true(pl_h1_idempotent(PL_H1_DELETE));
	assert_false(pl_h1_idempotent(PL_H1_POST));
	assert_false(pl_h1_idempotent(PL_H1_PATCH));
	assert_false(pl_h1_idempotent(PL_H1_OTHER));
}

/* Taking the framing off: whatever the split, the data comes out whole and the end is found at
 * the same byte; bad framing fails the same way scanning fails. */
static void test_chunked_data(void **state)
{
	(void)state;
	pl_h1_error e;
	const char *body = "5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
	size_t total = strlen(body) - 4;
	for (size_t step = 1; step <= strlen(body); step++) {
		pl_h1_chunked c;
		char got[64];
		size_t used = 0, glen = 0;
		bool done = false;
		pl_h1_chunked_init(&c);
		while (!done && used < strlen(body)) {
			size_t n = strlen(body) - used < step ? strlen(body) - used : step;
			size_t off, dl;
			ssize_t r = pl_h1_chunked_data(&c, body + used, n, &lim, 502, &off, &dl, &done, &e);
			assert_true(r >= 0);
			assert_true(off + dl <= (size_t)r);
			memcpy(got + glen, body + used + off, dl);
			glen += dl;
			used += (size_t)r;
		}
		assert_true(done);
		assert_int_equal(used, total);
		assert_int_equal(glen, 15);
		assert_memory_equal(got, "hello0123456789", 15);
	}
	pl_h1_chunked c;
	size_t off, dl;
	bool done;
	pl_h1_chunked_init(&c);
	assert_int_equal(pl_h1_chunked_data(&c, "5\r\nhelloX", 11, &lim, 502, &off, &dl, &done, &e), 8);
	assert_int_equal(pl_h1_chunked_data(&c, "X", 1, &lim, 502, &off, &dl, &done, &e), -1);
	assert_int_equal(e.status, 502);
}

/* Reads body (then "NEXT", the next message) as a message of the given framing, step bytes at a
 * time, through pl_h1_body_scan and pl_h1_body_data: both must stop at the same byte, and the
 * data must be the payload. */
static void body_case(enum pl_h1_body kind, uint64_t length, const char *wire, size_t body_len, const char *payload)
{
	pl_h1_error e;
	size_t wlen = strlen(wire);
	for (size_t step = 1; step <= wlen; step++) {
		pl_h1_msg m = {.body = kind, .content_length = length};
		pl_h1_body_rd rs, rd;
		size_t used_s = 0, used_d = 0, glen = 0;
		char got[128];
		pl_h1_body_start(&rs, &m);
		pl_h1_body_start(&rd, &m);
		while (!rs.done && used_s < wlen) {
			size_t n = wlen - used_s < step ? wlen - used_s : step;
			ssize_t r = pl_h1_body_scan(&rs, wire + used_s, n, &lim, 502, &e);
			assert_true(r >= 0 && (size_t)r <= n);
			used_s += (size_t)r;
			if ((size_t)r < n)
				assert_true(rs.done); /* stops short only where the body ends */
		}
		while (!rd.done && used_d < wlen) {
			size_t n = wlen - used_d < step ? wlen - used_d : step;
			size_t off, dl;
			ssize_t r = pl_h1_body_data(&rd, wire + used_d, n, &lim, 502, &off, &dl, &e);
			assert_true(r >= 0 && off + dl <= (size_t)r);
			assert_true(glen + dl <= sizeof(got));
			memcpy(got + glen, wire + used_d + off, dl);
			glen += dl;
			used_d += (size_t)r;
		}
		assert_int_equal(used_s, body_len);
		assert_int_equal(used_d, body_len);
		assert_int_equal(glen, strlen(payload));
		assert_memory_equal(got, payload, glen);
		if (kind == PL_H1_BODY_CLOSE) {
			assert_false(rs.done); /* only the close ends it */
			assert_true(pl_h1_body_eof(&rs));
		} else {
			assert_true(rs.done && rd.done);
			assert_true(pl_h1_body_eof(&rs));
			/* a finished body takes nothing more */
			size_t off, dl;
			assert_int_equal(pl_h1_body_scan(&rs, "X", 1, &lim, 502, &e), 0);
			assert_int_equal(pl_h1_body_data(&rd, "X", 1, &lim, 502, &off, &dl, &e), 0);
		}
	}
}

static void test_body(void **state)
{
	(void)state;
	body_case(PL_H1_BODY_LENGTH, 5, "helloNEXT", 5, "hello");
	body_case(PL_H1_BODY_CHUNKED, 0, "5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nNEXT", 44,
		  "hello0123456789");
	body_case(PL_H1_BODY_CLOSE, 0, "all of it, NEXT too", 19, "all of it, NEXT too");

	/* No body, or a zero length: whole before a byte. */
	pl_h1_body_rd r;
	pl_h1_error e;
	pl_h1_msg none = {.body = PL_H1_BODY_NONE}, zero = {.body = PL_H1_BODY_LENGTH, .content_length = 0};
	pl_h1_body_start(&r, &none);
	assert_true(r.done);
	assert_int_equal(pl_h1_body_scan(&r, "GET", 3, &lim, 400, &e), 0);
	pl_h1_body_start(&r, &zero);
	assert_true(r.done);

	/* Cut short: the close does not end a body with a length or chunks. */
	pl_h1_msg len = {.body = PL_H1_BODY_LENGTH, .content_length = 10}, ck = {.body = PL_H1_BODY_CHUNKED};
	pl_h1_body_start(&r, &len);
	assert_int_equal(pl_h1_body_scan(&r, "abc", 3, &lim, 502, &e), 3);
	assert_false(pl_h1_body_eof(&r));
	pl_h1_body_start(&r, &ck);
	assert_int_equal(pl_h1_body_scan(&r, "5\r\nhel", 6, &lim, 502, &e), 6);
	assert_false(pl_h1_body_eof(&r));

	/* Bad framing is refused with the caller's status, both ways. */
	size_t off, dl;
	pl_h1_body_start(&r, &ck);
	assert_int_equal(pl_h1_body_scan(&r, "5\r\nhelloX", 9, &lim, 400, &e), -1);
	assert_int_equal(e.status, 400);
	pl_h1_body_start(&r, &ck);
	assert_int_equal(pl_h1_body_data(&r, "zz\r\n", 4, &lim, 502, &off, &dl, &e), -1);
	assert_int_equal(e.status, 502);
	/* A length near the top of the range is counted down, not wrapped. */
	pl_h1_msg big = {.body = PL_H1_BODY_LENGTH, .content_length = UINT64_MAX};
	pl_h1_body_start(&r, &big);
	assert_int_equal(pl_h1_body_scan(&r, "abcd", 4, &lim, 502, &e), 4);
	assert_true(r.left == UINT64_MAX - 4 && !r.done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_request_basic, setup),
		cmocka_unit_test_setup(test_request_framing, setup),
		cmocka_unit_test_setup(test_hop_by_hop, setup),
		cmocka_unit_test_setup(test_request_refusals, setup),
		cmocka_unit_test_setup(test_limits, setup),
		cmocka_unit_test_setup(test_response, setup),
		cmocka_unit_test_setup(test_chunked, setup),
		cmocka_unit_test_setup(test_chunked_data, setup),
		cmocka_unit_test_setup(test_body, setup),
		cmocka_unit_test_setup(test_detect, setup),
		cmocka_unit_test_setup(test_idempotent, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
