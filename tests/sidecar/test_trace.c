/* Unit tests of the W3C traceparent reader and of new traces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http1/http1.h"
#include "trace.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

static bool ok(const char *v)
{
	px_trace t;
	return px_traceparent_parse(v, strlen(v), &t);
}

static void test_valid_and_read(void **state)
{
	(void)state;
	px_trace t;
	const char *v = "00-" TID "-" PID "-01";

	assert_true(px_traceparent_parse(v, strlen(v), &t));
	assert_string_equal(t.trace_id, TID);
	assert_string_equal(t.parent_id, PID);
	assert_int_equal(t.flags, 1);
	assert_true(ok("00-" TID "-" PID "-00"));
	assert_true(ok("00-" TID "-" PID "-ff"));
	/* A later version: its first 55 bytes as 00 reads them, then the end or '-' and more. */
	assert_true(ok("01-" TID "-" PID "-01"));
	assert_true(ok("cc-" TID "-" PID "-01-what-the-future-holds"));
}

static void test_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"00-" TID "-" PID "-0",                  /* short */
		"00-" TID "-" PID "-01-extra",           /* version 00 is exactly 55 bytes */
		"cc-" TID "-" PID "-01x",                /* later version: '-' must follow */
		"ff-" TID "-" PID "-01",                 /* version ff is forbidden */
		"0g-" TID "-" PID "-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01", /* upper case */
		"00-00000000000000000000000000000000-" PID "-01", /* all-zero trace-id */
		"00-" TID "-0000000000000000-01",        /* all-zero parent-id */
		"00_" TID "-" PID "-01",
		"00-" TID "_" PID "-01",
		"00-" TID "-" PID "_01",
		"00-" TID "-" PID "-0x",
		"00-4bf92f3577b34da6a3ce929d0e0e473-" PID "-01a", /* a digit short, shifted */
		NULL,
	};
	for (int i = 0; bad[i]; i++)
		if (ok(bad[i]))
			fail_msg("accepted %s", bad[i]);
}

static int trace_of(const char *head, px_trace *t)
{
	pl_h1_header hdrs[16];
	pl_h1_msg m;
	pl_h1_error err;
	pl_h1_limits lim = {PL_H1_DEFAULT_MAX_LINE, PL_H1_DEFAULT_MAX_HEAD, 16};

	assert_true(pl_h1_parse_request(head, strlen(head), &lim, hdrs, 16, &m, &err) > 0);
	return px_trace_of(&m, t);
}

static void test_trace_of_a_request(void **state)
{
	(void)state;
	px_trace t;

	assert_int_equal(trace_of("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &t), 0);
	assert_int_equal(trace_of("GET / HTTP/1.1\r\nHost: a\r\nTraceParent: 00-" TID "-" PID "-01\r\n\r\n", &t), 1);
	assert_string_equal(t.trace_id, TID);
	/* Whitespace around the value is not part of it (the parser trims it). */
	assert_int_equal(trace_of("GET / HTTP/1.1\r\nHost: a\r\ntraceparent:  00-" TID "-" PID "-01 \r\n\r\n", &t), 1);
	assert_int_equal(trace_of("GET / HTTP/1.1\r\nHost: a\r\ntraceparent: 00-" TID "-" PID "-01\r\n"
				  "traceparent: 00-" TID "-" PID "-01\r\n\r\n", &t), -1);
	assert_int_equal(trace_of("GET / HTTP/1.1\r\nHost: a\r\ntraceparent: nonsense\r\n\r\n", &t), -1);
	/* tracestate alone is no trace */
	assert_int_equal(trace_of("GET / HTTP/1.1\r\nHost: a\r\ntracestate: a=b\r\n\r\n", &t), 0);
}

static void test_new_trace(void **state)
{
	(void)state;
	px_trace t, back;
	char field[80];

	px_trace_new(&t, 0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x1122334455667788ULL, true);
	px_trace_field(&t, field);
	assert_string_equal(field, "traceparent: 00-0123456789abcdeffedcba9876543210-1122334455667788-01\r\n");
	assert_true(px_traceparent_parse(field + 13, PX_TRACEPARENT_LEN, &back));
	assert_string_equal(back.trace_id, t.trace_id);
	/* Zero words never give an all-zero id, which would be invalid. */
	px_trace_new(&t, 0, 0, 0, false);
	px_trace_field(&t, field);
	assert_true(px_traceparent_parse(field + 13, PX_TRACEPARENT_LEN, &back));
	assert_int_equal(back.flags, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_and_read),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_trace_of_a_request),
		cmocka_unit_test(test_new_trace),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
