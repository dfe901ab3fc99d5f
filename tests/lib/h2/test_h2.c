/* pl_h2: a client and a server session wired back to back in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "h2/h2.h"

#define F(n, v) {n, v, sizeof(n) - 1, sizeof(v) - 1}

/* What one side saw, and what it sends as a body. */
typedef struct side {
	pl_h2 *h;
	int heads[4];
	char head_text[4096];      /* "name: value\n" of every block */
	char body[1 << 20];
	size_t body_len;
	int ends, closes;
	uint32_t close_code;
	int goaways;
	uint32_t goaway_code;
	int32_t last_id;
	/* to send */
	const char *out;
	size_t out_len, out_off;
	bool out_trailers;
	bool consume;              /* give the window back at once */
	int32_t stream;
} side;

static void on_head(void *ud, pl_h2 *h, int32_t id, void *sud, enum pl_h2_head kind, const pl_h2_field *f, size_t n,
		    bool end)
{
	side *s = ud;
	(void)h;
	(void)sud;
	s->heads[kind]++;
	s->stream = id;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(s->head_text);
		snprintf(s->head_text + l, sizeof(s->head_text) - l, "%s: %s\n", f[i].name, f[i].value);
	}
	if (end)
		s->ends++;
}

static void on_data(void *ud, pl_h2 *h, int32_t id, void *sud, const uint8_t *p, size_t n)
{
	side *s = ud;
	(void)sud;
	assert_true(s->body_len + n <= sizeof(s->body));
	memcpy(s->body + s->body_len, p, n);
	s->body_len += n;
	if (s->consume)
		pl_h2_consume(h, id, n);
}

static void on_end(void *ud, pl_h2 *h, int32_t id, void *sud)
{
	side *s = ud;
	(void)h;
	(void)id;
	(void)sud;
	s->ends++;
}

static void on_close(void *ud, pl_h2 *h, int32_t id, void *sud, uint32_t code)
{
	side *s = ud;
	(void)h;
	(void)id;
	(void)sud;
	s->closes++;
	s->close_code = code;
}

static ssize_t on_read(void *ud, pl_h2 *h, int32_t id, void *sud, uint8_t *out, size_t n, int *end)
{
	side *s = ud;
	(void)h;
	(void)id;
	(void)sud;
	size_t k = s->out_len - s->out_off < n ? s->out_len - s->out_off : n;
	memcpy(out, s->out + s->out_off, k);
	s->out_off += k;
	if (s->out_off == s->out_len)
		*end = s->out_trailers ? PL_H2_END_TRAILERS : PL_H2_END;
	return (ssize_t)k;
}

static void on_trailers(void *ud, pl_h2 *h, int32_t id, void *sud, const pl_h2_field **f, size_t *n)
{
	static const pl_h2_field t[] = {F("grpc-status", "0"), F("grpc-message", "ok")};
	(void)ud;
	(void)h;
	(void)id;
	(void)sud;
	*f = t;
	*n = 2;
}

static void on_goaway(void *ud, pl_h2 *h, int32_t last, uint32_t code)
{
	side *s = ud;
	(void)h;
	s->goaways++;
	s->goaway_code = code;
	s->last_id = last;
}

static const pl_h2_cbs cbs = {on_head, on_data, on_end, on_close, on_read, on_trailers, on_goaway};

/* Moves bytes both ways until neither side has any: the number of rounds, or -1 when a side failed. */
static int pump(side *a, side *b)
{
	for (int round = 0; round < 1000; round++) {
		bool moved = false;
		side *from[2] = {a, b}, *to[2] = {b, a};
		for (int i = 0; i < 2; i++) {
			const uint8_t *p;
			ssize_t n;
			while ((n = pl_h2_send(from[i]->h, &p)) > 0) {
				const char *why = NULL;
				moved = true;
				if (pl_h2_recv(to[i]->h, p, (size_t)n, &why) < 0)
					return -1;
			}
		}
		if (!moved)
			return round;
	}
	return -1;
}

static void pair(side *c, side *s)
{
	memset(c, 0, sizeof(*c));
	memset(s, 0, sizeof(*s));
	c->consume = s->consume = true;
	c->h = pl_h2_new(false, &cbs, c, NULL);
	s->h = pl_h2_new(true, &cbs, s, NULL);
}

static void unpair(side *c, side *s)
{
	pl_h2_free(c->h);
	pl_h2_free(s->h);
}

static void test_preface(void **st)
{
	(void)st;
	assert_int_equal(pl_h2_is_preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), 1);
	assert_int_equal(pl_h2_is_preface("PRI * HTTP/2.0\r\n", 16), -1);
	assert_int_equal(pl_h2_is_preface("PRI * HTTP/1.1\r\n", 16), 0);
	assert_int_equal(pl_h2_is_preface("GET / HTTP/1.1\r\n\r\n", 18), 0);
}

/* A request with a body, answered with a body and trailers: every byte and field arrives, once. */
static void test_exchange(void **st)
{
	static side c, s;
	static char big[300000];
	(void)st;
	pair(&c, &s);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	pl_h2_field req[] = {F(":method", "POST"), F(":scheme", "http"), F(":authority", "svc"),
			     F(":path", "/pkg.Svc/Call"), F("content-type", "application/grpc")};
	c.out = big;
	c.out_len = sizeof(big);
	int32_t id = pl_h2_request(c.h, req, 5, true, NULL);
	assert_int_equal(id, 1);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(s.heads[PL_H2_REQUEST], 1);
	assert_non_null(strstr(s.head_text, ":path: /pkg.Svc/Call\n"));
	assert_int_equal(s.body_len, sizeof(big));
	assert_memory_equal(s.body, big, sizeof(big));
	assert_int_equal(s.ends, 1);

	pl_h2_field resp[] = {F(":status", "200"), F("content-type", "application/grpc")};
	s.out = "reply";
	s.out_len = 5;
	s.out_trailers = true;
	assert_int_equal(pl_h2_response(s.h, s.stream, resp, 2, true), 0);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(c.heads[PL_H2_RESPONSE], 1);
	assert_int_equal(c.heads[PL_H2_TRAILERS], 1);
	assert_non_null(strstr(c.head_text, "grpc-status: 0\n"));
	assert_int_equal(c.body_len, 5);
	assert_int_equal(c.ends, 1); /* on the trailers */
	assert_int_equal(c.closes, 1);
	assert_int_equal(c.close_code, 0);
	assert_int_equal(s.closes, 1);
	unpair(&c, &s);
}

/* Back-pressure: bytes not consumed stop the sender at the stream window, and consuming restarts it. */
static void test_window(void **st)
{
	static side c, s;
	static char big[600000];
	(void)st;
	pair(&c, &s);
	s.consume = false;
	memset(big, 'x', sizeof(big));
	pl_h2_field req[] = {F(":method", "POST"), F(":scheme", "http"), F(":authority", "svc"), F(":path", "/up")};
	c.out = big;
	c.out_len = sizeof(big);
	int32_t id = pl_h2_request(c.h, req, 4, true, NULL);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(s.body_len, pl_h2_default_limits.stream_window);
	assert_int_equal(s.ends, 0);
	pl_h2_consume(s.h, id, s.body_len);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(s.body_len, 2 * pl_h2_default_limits.stream_window);
	s.consume = true;
	pl_h2_consume(s.h, id, s.body_len - pl_h2_default_limits.stream_window);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(s.body_len, sizeof(big));
	assert_int_equal(s.ends, 1);
	unpair(&c, &s);
}

/* Values a HTTP/1 hop could be split by (CR, LF, NUL), and a body longer than its content-length,
 * never reach the application: the stream is reset. */
static void test_refused_fields(void **st)
{
	static side c, s;
	(void)st;
	const char *bad[] = {"a\r\nx-injected: 1", "a\nb", "a\rb"};
	for (size_t i = 0; i < 3; i++) {
		pair(&c, &s);
		pl_h2_field req[] = {F(":method", "GET"), F(":scheme", "http"), F(":authority", "svc"), F(":path", "/"),
				     {"x-v", bad[i], 3, strlen(bad[i])}};
		assert_true(pl_h2_request(c.h, req, 5, false, NULL) > 0);
		assert_true(pump(&c, &s) >= 0);
		assert_int_equal(s.heads[PL_H2_REQUEST], 0);
		assert_int_equal(c.closes, 1);
		assert_int_equal(c.close_code, PL_H2_PROTOCOL_ERROR);
		unpair(&c, &s);
	}
	pair(&c, &s);
	pl_h2_field req[] = {F(":method", "POST"), F(":scheme", "http"), F(":authority", "svc"), F(":path", "/"),
			     F("content-length", "3")};
	c.out = "12345";
	c.out_len = 5;
	assert_true(pl_h2_request(c.h, req, 5, true, NULL) > 0);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(s.ends, 0);
	assert_int_equal(c.close_code, PL_H2_PROTOCOL_ERROR);
	unpair(&c, &s);
}

/* A header block over the limit resets its stream and leaves the connection usable. */
static void test_header_limit(void **st)
{
	static side c, s;
	static char v[70000];
	(void)st;
	pair(&c, &s);
	memset(v, 'v', sizeof(v));
	pl_h2_field req[] = {F(":method", "GET"), F(":scheme", "http"), F(":authority", "svc"), F(":path", "/"),
			     {"x-big", v, 5, sizeof(v)}};
	assert_true(pl_h2_request(c.h, req, 5, false, NULL) > 0);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(s.heads[PL_H2_REQUEST], 0);
	assert_int_equal(c.closes, 1);
	assert_int_not_equal(c.close_code, 0);
	assert_true(pl_h2_request(c.h, req, 4, false, NULL) > 0);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(s.heads[PL_H2_REQUEST], 1);
	unpair(&c, &s);
}

/* Rapid reset (CVE-2023-44487): a client opening and resetting streams without end gets a GOAWAY. */
static void test_rapid_reset(void **st)
{
	static side c, s;
	(void)st;
	pair(&c, &s);
	pl_h2_field req[] = {F(":method", "GET"), F(":scheme", "http"), F(":authority", "svc"), F(":path", "/")};
	int sent = 0;
	for (int i = 0; i < 2000 && !c.goaways; i++) {
		int32_t id = pl_h2_request(c.h, req, 4, false, NULL);
		if (id < 0 || pump(&c, &s) < 0)
			break;
		pl_h2_reset(c.h, id, PL_H2_CANCEL);
		sent++;
		if (pump(&c, &s) < 0)
			break;
	}
	assert_int_equal(c.goaways, 1);
	assert_int_not_equal(c.goaway_code, PL_H2_NO_ERROR);
	assert_true(sent <= (int)pl_h2_default_limits.resets_burst + 50);
	unpair(&c, &s);
}

/* A graceful GOAWAY lets the open stream finish and refuses new ones. */
static void test_goaway(void **st)
{
	static side c, s;
	(void)st;
	pair(&c, &s);
	pl_h2_field req[] = {F(":method", "GET"), F(":scheme", "http"), F(":authority", "svc"), F(":path", "/")};
	assert_int_equal(pl_h2_request(c.h, req, 4, false, NULL), 1);
	assert_true(pump(&c, &s) >= 0);
	pl_h2_goaway(s.h, PL_H2_NO_ERROR);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(c.goaways, 1);
	assert_int_equal(c.last_id, 1);
	assert_true(pl_h2_closing(c.h));
	assert_int_equal(pl_h2_request(c.h, req, 4, false, NULL), -1);
	pl_h2_field resp[] = {F(":status", "204")};
	assert_int_equal(pl_h2_response(s.h, 1, resp, 1, false), 0);
	assert_true(pump(&c, &s) >= 0);
	assert_int_equal(c.heads[PL_H2_RESPONSE], 1);
	assert_false(pl_h2_alive(s.h) && pl_h2_alive(c.h));
	unpair(&c, &s);
}

/* A peer's protocol error ends the connection with a GOAWAY that says why, and the reason stays
 * readable (nghttp2's own text is freed as soon as it was reported). */
static void test_connection_error(void **st)
{
	static side s;
	(void)st;
	memset(&s, 0, sizeof(s));
	s.h = pl_h2_new(true, &cbs, &s, NULL);
	/* SETTINGS on stream 1: a connection error (RFC 9113 6.5). */
	static const char bad[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
				  "\x00\x00\x00\x04\x00\x00\x00\x00\x01";
	const char *why = NULL;
	assert_int_equal(pl_h2_recv(s.h, bad, sizeof(bad) - 1, &why), 0);
	const uint8_t *p;
	while (pl_h2_send(s.h, &p) > 0)
		;
	assert_false(pl_h2_alive(s.h));
	assert_non_null(pl_h2_error(s.h));
	assert_non_null(strstr(pl_h2_error(s.h), "SETTINGS"));
	pl_h2_free(s.h);
}

/* CONTINUATION flood (CVE-2024-27316): a header block that never ends is a connection error after
 * a few frames, not an ever-growing buffer. */
static void test_continuation_flood(void **st)
{
	static side s;
	static char frames[200 * 40];
	(void)st;
	memset(&s, 0, sizeof(s));
	s.h = pl_h2_new(true, &cbs, &s, NULL);
	const char *why = NULL;
	static const char start[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
				    "\x00\x00\x00\x04\x00\x00\x00\x00\x00"         /* SETTINGS */
				    "\x00\x00\x02\x01\x00\x00\x00\x00\x01\x83\x86"; /* HEADERS :method POST :scheme http, no END_HEADERS */
	assert_int_equal(pl_h2_recv(s.h, start, sizeof(start) - 1, &why), 0);
	/* CONTINUATION frames of one literal field each (x-a: b), none with END_HEADERS */
	size_t n = 0;
	for (int i = 0; i < 200; i++) {
		static const char c[] = "\x00\x00\x07\x09\x00\x00\x00\x00\x01\x00\x03x-a\x01" "b";
		memcpy(frames + n, c, sizeof(c) - 1);
		n += sizeof(c) - 1;
	}
	int r = 0, sent = 0;
	for (size_t off = 0; off < n && r == 0; off += 16, sent++)
		r = pl_h2_recv(s.h, frames + off, 16, &why);
	/* Some frames, not all 200: the limit is 8 CONTINUATION frames after a HEADERS. */
	assert_int_equal(r, -1);
	assert_true(sent <= (int)pl_h2_default_limits.max_continuations + 1);
	assert_non_null(strstr(why, "CONTINUATION"));
	pl_h2_free(s.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preface),       cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_window),        cmocka_unit_test(test_refused_fields),
		cmocka_unit_test(test_header_limit),  cmocka_unit_test(test_rapid_reset),
		cmocka_unit_test(test_goaway),        cmocka_unit_test(test_connection_error),
		cmocka_unit_test(test_continuation_flood),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
