/* Unit tests for lib/base: arena, buf, duration, gzip, sha256 and hmap. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base64.h"
#include "base/arena.h"
#include "base/bucket.h"
#include "base/buf.h"
#include "base/duration.h"
#include "base/gzip.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/sha256.h"

/* ---------- arena ---------- */

static void test_arena_many_small(void **state)
{
	(void)state;
	pl_arena a;
	enum { N = 5000 };
	unsigned char *ptrs[N];

	pl_arena_init(&a);
	assert_null(a._head);
	assert_int_equal(a._used, 0);
	for (int i = 0; i < N; i++) {
		size_t size = (size_t)(i % 37) + 1;
		ptrs[i] = pl_arena_alloc(&a, size);
		assert_non_null(ptrs[i]);
		assert_int_equal((uintptr_t)ptrs[i] % 16, 0);
		for (size_t j = 0; j < size; j++)
			assert_int_equal(ptrs[i][j], 0);
		memset(ptrs[i], (int)(i & 0xff), size);
	}
	/* Nothing overlapped: every block still holds its own pattern. */
	for (int i = 0; i < N; i++) {
		size_t size = (size_t)(i % 37) + 1;
		for (size_t j = 0; j < size; j++)
			assert_int_equal(ptrs[i][j], (unsigned char)(i & 0xff));
	}
	assert_true(a._used >= (size_t)N * 16);
	pl_arena_free(&a);
	assert_null(a._head);
	assert_int_equal(a._used, 0);
}

static void test_arena_large(void **state)
{
	(void)state;
	pl_arena a;

	pl_arena_init(&a);
	char *small1 = pl_arena_strdup(&a, "before");
	size_t big_size = 20000; /* > 8 KiB chunk */
	unsigned char *big = pl_arena_alloc(&a, big_size);
	assert_non_null(big);
	assert_int_equal((uintptr_t)big % 16, 0);
	for (size_t i = 0; i < big_size; i++)
		assert_int_equal(big[i], 0);
	memset(big, 0xab, big_size);
	char *small2 = pl_arena_strdup(&a, "after");
	assert_string_equal(small1, "before");
	assert_string_equal(small2, "after");
	for (size_t i = 0; i < big_size; i++)
		assert_int_equal(big[i], 0xab);
	assert_true(a._used >= big_size);

	/* A large allocation as the very first one, then reuse after free. */
	pl_arena_free(&a);
	big = pl_arena_alloc(&a, 9000);
	assert_non_null(big);
	memset(big, 1, 9000);
	small1 = pl_arena_strdup(&a, "x");
	assert_string_equal(small1, "x");
	pl_arena_free(&a);
}

static void test_arena_zeroing(void **state)
{
	(void)state;
	pl_arena a;

	pl_arena_init(&a);
	/* Dirty a chunk, free, reallocate: memory must come back zeroed. */
	for (int round = 0; round < 3; round++) {
		unsigned char *p = pl_arena_alloc(&a, 4000);
		for (size_t i = 0; i < 4000; i++)
			assert_int_equal(p[i], 0);
		memset(p, 0xff, 4000);
		int *arr = pl_arena_calloc(&a, 100, sizeof(int));
		for (int i = 0; i < 100; i++)
			assert_int_equal(arr[i], 0);
		arr[99] = -1;
		pl_arena_free(&a);
	}
	/* Zero-size allocations still return distinct usable pointers. */
	void *z1 = pl_arena_alloc(&a, 0);
	void *z2 = pl_arena_alloc(&a, 0);
	assert_non_null(z1);
	assert_non_null(z2);
	assert_ptr_not_equal(z1, z2);
	pl_arena_free(&a);
}

static void test_arena_strings(void **state)
{
	(void)state;
	pl_arena a;

	pl_arena_init(&a);
	const char *src = "hello, world";
	char *d = pl_arena_strdup(&a, src);
	assert_ptr_not_equal(d, src);
	assert_string_equal(d, "hello, world");
	assert_string_equal(pl_arena_strdup(&a, ""), "");

	char *n = pl_arena_strndup(&a, src, 5);
	assert_string_equal(n, "hello");
	assert_int_equal(strlen(n), 5);
	assert_string_equal(pl_arena_strndup(&a, src, 0), "");

	char *p = pl_arena_printf(&a, "%s-%d-%05.1f", "svc", 42, 3.14159);
	assert_string_equal(p, "svc-42-003.1");

	/* Output of exactly 255, 256 and much more than 256 bytes. */
	char expect[1200];
	for (size_t len = 250; len < 1100; len += (len < 260 ? 1 : 211)) {
		memset(expect, 'q', len);
		expect[len] = '\0';
		char *l = pl_arena_printf(&a, "%s", expect);
		assert_int_equal(strlen(l), len);
		assert_string_equal(l, expect);
	}
	char *mixed = pl_arena_printf(&a, "<%0300d>", 7);
	assert_int_equal(strlen(mixed), 302);
	assert_int_equal(mixed[0], '<');
	assert_int_equal(mixed[1], '0');
	assert_int_equal(mixed[300], '7');
	assert_int_equal(mixed[301], '>');
	pl_arena_free(&a);
}

/* ---------- buf ---------- */

static const char *json_of(pl_buf *b, const char *s, size_t n)
{
	pl_buf_reset(b);
	pl_buf_json_str(b, s, n);
	return b->data;
}

/* JSON strings from any bytes: valid UTF-8 kept, everything else escaped, always valid JSON. */
static void test_buf_json_str(void **state)
{
	(void)state;
	pl_buf b = PL_BUF_INIT;

	assert_string_equal(json_of(&b, "", 0), "\"\"");
	assert_string_equal(json_of(&b, "/a?b=c d", 8), "\"/a?b=c d\"");
	assert_string_equal(json_of(&b, "q\"b\\e", 5), "\"q\\\"b\\\\e\"");
	assert_string_equal(json_of(&b, "a\nb\tc\x7f", 6), "\"a\\u000ab\\u0009c\\u007f\"");
	assert_string_equal(json_of(&b, "a\0b", 3), "\"a\\u0000b\"");
	/* UTF-8: 2, 3 and 4 bytes kept */
	assert_string_equal(json_of(&b, "\xc2\xb5s \xe2\x82\xac \xf0\x9f\x98\x80", 12), "\"\xc2\xb5s \xe2\x82\xac \xf0\x9f\x98\x80\"");
	/* not UTF-8: a lone continuation, a cut sequence, an overlong form, a surrogate, above U+10FFFF */
	assert_string_equal(json_of(&b, "\x80", 1), "\"\\u0080\"");
	assert_string_equal(json_of(&b, "\xe2\x82", 2), "\"\\u00e2\\u0082\"");
	assert_string_equal(json_of(&b, "\xc0\xaf", 2), "\"\\u00c0\\u00af\"");
	assert_string_equal(json_of(&b, "\xed\xa0\x80", 3), "\"\\u00ed\\u00a0\\u0080\"");
	assert_string_equal(json_of(&b, "\xf4\x90\x80\x80", 4), "\"\\u00f4\\u0090\\u0080\\u0080\"");
	/* appended, not replaced */
	pl_buf_reset(&b);
	pl_buf_puts(&b, "{\"k\":");
	pl_buf_json_str(&b, "v", 1);
	assert_string_equal(b.data, "{\"k\":\"v\"");
	pl_buf_free(&b);
}

static void test_buf_append_growth(void **state)
{
	(void)state;
	pl_buf b = PL_BUF_INIT;

	pl_buf_append(&b, "", 0);
	assert_non_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");

	pl_buf_puts(&b, "abc");
	pl_buf_append(&b, "defgh", 2);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "abcde");

	/* Grow well past the initial capacity, one byte at a time. */
	for (int i = 0; i < 10000; i++)
		pl_buf_append(&b, &"0123456789"[i % 10], 1);
	assert_int_equal(b.len, 10005);
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[b.len], '\0');
	assert_memory_equal(b.data, "abcde0123456789", 15);
	assert_int_equal(b.data[10004], '9');
	assert_int_equal(strlen(b.data), 10005);

	/* Binary data with embedded NUL. */
	pl_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	pl_buf_append(&b, "a\0b", 3);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b", 4);
	pl_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void test_buf_printf_growth(void **state)
{
	(void)state;
	pl_buf b = PL_BUF_INIT;

	pl_buf_printf(&b, "%d:%s", 12, "ab");
	assert_string_equal(b.data, "12:ab");
	assert_int_equal(b.len, 5);
	pl_buf_printf(&b, "%s", "");
	assert_int_equal(b.len, 5);
	for (int i = 0; i < 1000; i++)
		pl_buf_printf(&b, "[%04d]", i);
	assert_int_equal(b.len, 5 + 6 * 1000);
	assert_int_equal(strlen(b.data), b.len);
	assert_memory_equal(b.data + 5, "[0000][0001]", 12);
	assert_string_equal(b.data + b.len - 6, "[0999]");

	/* One printf much larger than the current capacity. */
	pl_buf_reset(&b);
	pl_buf_printf(&b, "%05000d|", 3);
	assert_int_equal(b.len, 5001);
	assert_int_equal(b.data[4999], '3');
	assert_string_equal(b.data + 5000, "|");
	pl_buf_free(&b);

	/* printf into an empty buffer with empty output still NUL-terminates. */
	pl_buf_printf(&b, "%s", "");
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	pl_buf_free(&b);
}

static char *make_temp_file(const char *content, size_t len)
{
	char tmpl[] = "/tmp/pillion-test-buf-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, content + off, len - off);
		assert_true(n > 0);
		off += (size_t)n;
	}
	assert_int_equal(close(fd), 0);
	return strdup(tmpl);
}

static void test_buf_read_file(void **state)
{
	(void)state;
	pl_buf b = PL_BUF_INIT;

	/* Larger than the 64 KiB read chunk, with a NUL inside. */
	size_t len = 150000;
	char *content = malloc(len);
	assert_non_null(content);
	for (size_t i = 0; i < len; i++)
		content[i] = (char)('a' + i % 26);
	content[100] = '\0';
	char *path = make_temp_file(content, len);

	pl_buf_puts(&b, "stale contents");
	assert_int_equal(pl_buf_read_file(&b, path, len), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, content, len);
	assert_int_equal(b.data[len], '\0');

	/* One byte under the size: -EFBIG. */
	assert_int_equal(pl_buf_read_file(&b, path, len - 1), -EFBIG);
	assert_int_equal(pl_buf_read_file(&b, path, 10), -EFBIG);
	/* Reading again with enough room works after a failure. */
	assert_int_equal(pl_buf_read_file(&b, path, len * 2), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, content, len);

	assert_int_equal(unlink(path), 0);
	free(path);

	/* An empty file gives an empty, NUL-terminated buffer. */
	path = make_temp_file("", 0);
	assert_int_equal(pl_buf_read_file(&b, path, 100), 0);
	assert_int_equal(b.len, 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	assert_int_equal(unlink(path), 0);
	free(path);

	/* Small file, exactly at max. */
	path = make_temp_file("kind: Mesh\n", 11);
	assert_int_equal(pl_buf_read_file(&b, path, 11), 0);
	assert_string_equal(b.data, "kind: Mesh\n");
	assert_int_equal(unlink(path), 0);
	free(path);

	free(content);
	pl_buf_free(&b);
}

static void test_buf_read_missing(void **state)
{
	(void)state;
	pl_buf b = PL_BUF_INIT;

	assert_int_equal(pl_buf_read_file(&b, "/tmp/pillion-test-definitely-missing/none.yaml", 1024),
			 -ENOENT);
	assert_int_equal(b.len, 0);
	pl_buf_free(&b);
}

/* ---------- duration ---------- */

static void check_parse(const char *s, int64_t want)
{
	int64_t got = -12345;
	int rc = pl_duration_parse(s, &got);
	if (rc != 0 || got != want)
		print_error("parse(\"%s\"): rc=%d got=%" PRId64 " want=%" PRId64 "\n", s, rc, got, want);
	assert_int_equal(rc, 0);
	assert_true(got == want);
}

static void check_parse_rc(const char *s, int want_rc)
{
	int64_t got = -12345;
	int rc = pl_duration_parse(s, &got);
	if (rc != want_rc)
		print_error("parse(\"%s\"): rc=%d want %d\n", s, rc, want_rc);
	assert_int_equal(rc, want_rc);
	assert_true(got == -12345); /* untouched on failure */
}

static void test_duration_parse_ok(void **state)
{
	(void)state;
	check_parse("250ms", 250 * PL_NS_PER_MS);
	check_parse("1m30s", 90 * PL_NS_PER_S);
	check_parse("1.5h", 90 * PL_NS_PER_M);
	check_parse("1h0m0.5s", PL_NS_PER_H + 500 * PL_NS_PER_MS);
	check_parse("100us", 100000);
	check_parse("100\xc2\xb5s", 100000);
	check_parse("10ns", 10);
	check_parse("0s", 0);
	check_parse("0ms", 0);
	check_parse("1s", PL_NS_PER_S);
	check_parse("2h45m", 2 * PL_NS_PER_H + 45 * PL_NS_PER_M);
	check_parse("1.25s", 1250 * PL_NS_PER_MS);
	check_parse("0.001s", PL_NS_PER_MS);
	check_parse("1.5us", 1500);
	check_parse("5m", 5 * PL_NS_PER_M);
	check_parse("1h1m1s1ms1us1ns", PL_NS_PER_H + PL_NS_PER_M + PL_NS_PER_S + PL_NS_PER_MS + 1000 + 1);
	check_parse("007s", 7 * PL_NS_PER_S);
	/* Exactly INT64_MAX nanoseconds is in range. */
	check_parse("9223372036854775807ns", INT64_MAX);
	check_parse("2562047h47m16.854775807s", INT64_MAX);
}

static void test_duration_parse_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "5", "-1s", "1d", "5 sec", "1.s", ".5s", "s", "1ms2",
		"+1s", " 1s", "1s ", "1S", "1sec", "1.5.5s", "1\xc2s", "ms", "1m-1s", "\xc2\xb5s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_parse_rc(bad[i], -EINVAL);
	int64_t v = 77;
	assert_int_equal(pl_duration_parse(NULL, &v), -EINVAL);
	assert_true(v == 77);
}

static void test_duration_parse_range(void **state)
{
	(void)state;
	check_parse_rc("9999999999999h", -ERANGE);
	/* INT64_MAX + 1 nanoseconds, in several spellings. */
	check_parse_rc("9223372036854775808ns", -ERANGE);
	check_parse_rc("2562047h47m16.854775808s", -ERANGE);
	check_parse_rc("9223372036854775807ns1ns", -ERANGE);
	check_parse_rc("2562048h", -ERANGE);
	check_parse_rc("99999999999999999999999999s", -ERANGE);
}

static void check_format(int64_t ns, const char *want)
{
	char out[64];
	memset(out, 'X', sizeof(out));
	pl_duration_format(ns, out, sizeof(out));
	if (strcmp(out, want) != 0)
		print_error("format(%" PRId64 "): got \"%s\" want \"%s\"\n", ns, out, want);
	assert_string_equal(out, want);
}

static void test_duration_format(void **state)
{
	(void)state;
	check_format(0, "0s");
	check_format(250 * PL_NS_PER_MS, "250ms");
	check_format(90 * PL_NS_PER_S, "1m30s");
	check_format(24 * PL_NS_PER_H, "24h");
	check_format(8 * PL_NS_PER_H, "8h");
	check_format(10 * PL_NS_PER_M, "10m");
	check_format(1500 * PL_NS_PER_MS, "1.5s");
	check_format(100000, "100us");
	check_format(7, "7ns");
	check_format(PL_NS_PER_H + 30 * PL_NS_PER_S, "1h30s");
	check_format(PL_NS_PER_H + 30 * PL_NS_PER_M, "1h30m");
	check_format(PL_NS_PER_S, "1s");
	check_format(PL_NS_PER_S + 1, "1.000000001s");
	check_format(INT64_MAX, "2562047h47m16.854775807s");

	/* Truncation to a small buffer stays NUL-terminated and in bounds. */
	char small[4];
	pl_duration_format(90 * PL_NS_PER_S, small, sizeof(small));
	assert_int_equal(strlen(small), 3);
	assert_string_equal(small, "1m3");
	char tiny[3];
	pl_duration_format(123 * PL_NS_PER_H + 4 * PL_NS_PER_M, tiny, sizeof(tiny));
	assert_true(strlen(tiny) < sizeof(tiny));
}

static void test_duration_roundtrip(void **state)
{
	(void)state;
	static const int64_t values[] = {
		0, 1, 999, 1000, 1001, 250 * PL_NS_PER_MS, PL_NS_PER_S, 1500 * PL_NS_PER_MS,
		90 * PL_NS_PER_S, PL_NS_PER_H + 500 * PL_NS_PER_MS, PL_NS_PER_H + 30 * PL_NS_PER_S,
		24 * PL_NS_PER_H, 36 * PL_NS_PER_H + 7, 59 * PL_NS_PER_M + 59 * PL_NS_PER_S + 999999999,
		INT64_MAX, INT64_MAX - 1,
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char out[64];
		int64_t back = -1;
		pl_duration_format(values[i], out, sizeof(out));
		int rc = pl_duration_parse(out, &back);
		if (rc != 0 || back != values[i])
			print_error("roundtrip %" PRId64 " -> \"%s\" -> rc=%d %" PRId64 "\n", values[i], out,
				    rc, back);
		assert_int_equal(rc, 0);
		assert_true(back == values[i]);
	}
}

/* ---------- sha256 ---------- */

static void digest_hex(const unsigned char d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_sha256_vectors(void **state)
{
	(void)state;
	char hex[65];
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	pl_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	pl_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	pl_sha256_hex(m448, strlen(m448), hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* The 896-bit message from FIPS 180-2 (two-block padding case). */
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
			   "klmnopqrlmnopqrsmnopqrstnopqrstu";
	pl_sha256_hex(m896, strlen(m896), hex);
	assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");

	size_t n = 1000000;
	char *a = malloc(n);
	assert_non_null(a);
	memset(a, 'a', n);
	pl_sha256_hex(a, n, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

	/* Same million 'a' fed through the streaming API in odd-sized pieces. */
	pl_sha256 c;
	unsigned char d[32];
	pl_sha256_init(&c);
	size_t off = 0, step = 1;
	while (off < n) {
		size_t k = step < n - off ? step : n - off;
		pl_sha256_update(&c, a + off, k);
		off += k;
		step = step * 7 % 1013 + 1;
	}
	pl_sha256_final(&c, d);
	digest_hex(d, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

static void test_sha256_incremental(void **state)
{
	(void)state;
	unsigned char data[300];
	char one[65], inc[65];
	unsigned char d[32];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 31 + 7);
	/* Every length around block and padding boundaries, split at every interesting point. */
	static const size_t lens[] = {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 191, 192, 300};
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t len = lens[li];
		pl_sha256_hex(data, len, one);
		for (size_t split = 0; split <= len; split += (len > 70 ? 13 : 1)) {
			pl_sha256 c;
			pl_sha256_init(&c);
			pl_sha256_update(&c, data, split);
			pl_sha256_update(&c, data + split, 0);
			pl_sha256_update(&c, data + split, len - split);
			pl_sha256_final(&c, d);
			digest_hex(d, inc);
			assert_string_equal(inc, one);
		}
		/* Byte at a time. */
		pl_sha256 c;
		pl_sha256_init(&c);
		for (size_t i = 0; i < len; i++)
			pl_sha256_update(&c, data + i, 1);
		pl_sha256_final(&c, d);
		digest_hex(d, inc);
		assert_string_equal(inc, one);
	}
	/* "abc" split across calls matches the known vector. */
	pl_sha256 c;
	pl_sha256_init(&c);
	pl_sha256_update(&c, "a", 1);
	pl_sha256_update(&c, "bc", 2);
	pl_sha256_final(&c, d);
	digest_hex(d, inc);
	assert_string_equal(inc, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* Different inputs give different digests. */
	pl_sha256_hex("abd", 3, one);
	assert_string_not_equal(one, inc);
}

/* ---------- hmap ---------- */

static bool odd_value(void *value, void *arg)
{
	(void)arg;
	return *(int *)value % 2;
}

static int released;
static void release_int(void *value)
{
	released++;
	free(value);
}

/* Removing while the table is scanned: every match goes, every other entry stays findable, in a
 * table crowded enough that deletions shift entries (and wrap around its end). */
static void test_hmap_remove_if(void **state)
{
	(void)state;
	enum { N = 3000 };
	static char keys[N][16];
	pl_hmap m = PL_HMAP_INIT;
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		int *v = malloc(sizeof(*v));
		assert_non_null(v);
		*v = i;
		pl_hmap_put(&m, keys[i], v);
	}
	released = 0;
	assert_int_equal(pl_hmap_remove_if(&m, odd_value, NULL, release_int), N / 2);
	assert_int_equal(released, N / 2);
	assert_int_equal(m.count, N / 2);
	for (int i = 0; i < N; i++) {
		int *v = pl_hmap_get(&m, keys[i]);
		if (i % 2) {
			assert_null(v);
		} else {
			assert_non_null(v);
			assert_int_equal(*v, i);
		}
	}
	size_t it = 0;
	pl_hmap_slot *s;
	while ((s = pl_hmap_next(&m, &it)))
		free(s->value);
	pl_hmap_free(&m);
}

static void test_hmap_basic(void **state)
{
	(void)state;
	pl_hmap m = PL_HMAP_INIT;
	int v1 = 1, v2 = 2, v3 = 3;
	size_t it = 0;

	/* Empty map. */
	assert_null(pl_hmap_get(&m, "missing"));
	assert_null(pl_hmap_get(&m, ""));
	assert_null(pl_hmap_next(&m, &it));
	assert_int_equal(m.count, 0);

	assert_null(pl_hmap_put(&m, "alpha", &v1));
	assert_null(pl_hmap_put(&m, "beta", &v2));
	assert_int_equal(m.count, 2);
	assert_ptr_equal(pl_hmap_get(&m, "alpha"), &v1);
	assert_ptr_equal(pl_hmap_get(&m, "beta"), &v2);
	assert_null(pl_hmap_get(&m, "gamma"));
	assert_null(pl_hmap_get(&m, "alph"));

	/* Replace returns the old value; count unchanged. Keys compare by content. */
	char key[] = "alpha";
	assert_ptr_equal(pl_hmap_put(&m, key, &v3), &v1);
	assert_int_equal(m.count, 2);
	assert_ptr_equal(pl_hmap_get(&m, "alpha"), &v3);
	assert_ptr_equal(pl_hmap_put(&m, "alpha", NULL), &v3);
	assert_null(pl_hmap_get(&m, "alpha"));
	assert_int_equal(m.count, 2);

	/* Empty string is a valid key. */
	assert_null(pl_hmap_put(&m, "", &v2));
	assert_ptr_equal(pl_hmap_get(&m, ""), &v2);
	assert_int_equal(m.count, 3);

	pl_hmap_free(&m);
	assert_int_equal(m.count, 0);
	assert_null(pl_hmap_get(&m, "beta"));
	/* Reusable after free. */
	assert_null(pl_hmap_put(&m, "beta", &v1));
	assert_ptr_equal(pl_hmap_get(&m, "beta"), &v1);
	pl_hmap_free(&m);
}

static void test_hmap_many(void **state)
{
	(void)state;
	enum { N = 10000 };
	pl_hmap m = PL_HMAP_INIT;
	char (*keys)[16] = calloc(N, sizeof(*keys));
	int *seen = calloc(N, sizeof(int));
	assert_non_null(keys);
	assert_non_null(seen);

	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
		assert_null(pl_hmap_put(&m, keys[i], (void *)(intptr_t)(i + 1)));
		assert_int_equal(m.count, (size_t)i + 1);
		/* Earlier keys survive each growth. */
		if ((i & (i - 1)) == 0) {
			for (int j = 0; j <= i; j++)
				assert_int_equal((intptr_t)pl_hmap_get(&m, keys[j]), j + 1);
		}
	}
	assert_int_equal(m.count, N);
	for (int i = 0; i < N; i++)
		assert_int_equal((intptr_t)pl_hmap_get(&m, keys[i]), i + 1);
	assert_null(pl_hmap_get(&m, "key-10000"));
	assert_null(pl_hmap_get(&m, "key--1"));

	/* Iteration visits each key exactly once, with its value. */
	size_t it = 0, visited = 0;
	pl_hmap_slot *s;
	while ((s = pl_hmap_next(&m, &it)) != NULL) {
		int idx = atoi(s->key + 4);
		assert_true(idx >= 0 && idx < N);
		assert_string_equal(s->key, keys[idx]);
		assert_int_equal((intptr_t)s->value, idx + 1);
		seen[idx]++;
		visited++;
	}
	assert_int_equal(visited, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	/* Exhausted iterator stays exhausted. */
	assert_null(pl_hmap_next(&m, &it));

	/* Replace every other key's value: old values come back, count unchanged. */
	for (int i = 0; i < N; i += 2)
		assert_int_equal((intptr_t)pl_hmap_put(&m, keys[i], (void *)(intptr_t)-i), i + 1);
	assert_int_equal(m.count, N);
	for (int i = 0; i < N; i++)
		assert_int_equal((intptr_t)pl_hmap_get(&m, keys[i]), i % 2 == 0 ? -i : i + 1);

	pl_hmap_free(&m);
	free(keys);
	free(seen);
}


/* Random puts and deletes against a plain array: every lookup agrees, counts match. */
static void test_hmap_delete(void **state)
{
	(void)state;
	enum { N = 2000 };
	static char keys[N][12];
	static int present[N];
	pl_hmap m = PL_HMAP_INIT;
	unsigned seed = 12345;

	for (int i = 0; i < N; i++)
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
	for (int round = 0; round < 50000; round++) {
		seed = seed * 1103515245u + 12345u;
		int i = (int)((seed >> 8) % N);
		if ((seed >> 4) & 1) {
			pl_hmap_put(&m, keys[i], keys[i]);
			present[i] = 1;
		} else {
			const char *stored = NULL;
			void *v = pl_hmap_del(&m, keys[i], &stored);
			assert_true((v != NULL) == (present[i] != 0));
			if (v)
				assert_ptr_equal(stored, keys[i]);
			present[i] = 0;
		}
	}
	size_t count = 0;
	for (int i = 0; i < N; i++) {
		assert_true((pl_hmap_get(&m, keys[i]) != NULL) == (present[i] != 0));
		count += (size_t)present[i];
	}
	assert_int_equal(m.count, count);
	assert_null(pl_hmap_del(&m, "absent", NULL));
	pl_hmap_free(&m);
	assert_null(pl_hmap_del(&m, "k1", NULL));
}


static void test_base64(void **state)
{
	(void)state;
	size_t n = 0;
	char *e = pl_base64_encode("ABCD\xff", 5);
	assert_string_equal(e, "QUJDRP8=");
	char *d = pl_base64_decode(e, &n);
	assert_int_equal(n, 5);
	assert_memory_equal(d, "ABCD\xff", 5);
	free(d);
	free(e);
	/* Strict: whole quads, padding only at the end, the alphabet only. */
	assert_null(pl_base64_decode("QUJ", NULL));
	assert_null(pl_base64_decode("QQ==QUJD", NULL));
	assert_null(pl_base64_decode("QU=D", NULL));
	assert_null(pl_base64_decode("QUJ*", NULL));
	assert_null(pl_base64_decode("QUJD\n", NULL));
	d = pl_base64_decode("", &n);
	assert_int_equal(n, 0);
	free(d);
	/* Relaxed (kubeconfig): whitespace and missing padding are fine, the rest is not. */
	d = pl_base64_decode_relaxed(" QU\nJD\tRA ", &n);
	assert_int_equal(n, 4);
	assert_memory_equal(d, "ABCD", 4);
	free(d);
	d = pl_base64_decode_relaxed("QUJD=", &n);
	assert_int_equal(n, 3);
	free(d);
	assert_null(pl_base64_decode_relaxed("QQ==QQ", NULL));
	assert_null(pl_base64_decode_relaxed("QQ===", NULL));
	assert_null(pl_base64_decode_relaxed("Q", NULL));
	assert_null(pl_base64_decode_relaxed("", NULL));
	assert_null(pl_base64_decode_relaxed("not*base64", NULL));
}

/* The token bucket the API client, the work queue and the Event budget share. */
static void test_bucket(void **state)
{
	pl_bucket b;
	const int64_t S = 1000000000;
	(void)state;

	pl_bucket_init(&b, 2.0, 3.0, 0); /* 2 per second, burst 3, full */
	assert_int_equal(pl_bucket_reserve(&b, 0), 0);
	assert_int_equal(pl_bucket_reserve(&b, 0), 0);
	assert_int_equal(pl_bucket_reserve(&b, 0), 0);
	/* Empty: the next reservation waits half a second, the one after a whole second (in order). */
	assert_int_equal(pl_bucket_reserve(&b, 0), S / 2);
	assert_int_equal(pl_bucket_reserve(&b, 0), S);
	/* take never goes into debt: after 1 s the debt of 2 is paid, nothing is left to take. */
	assert_false(pl_bucket_take(&b, S));
	assert_true(pl_bucket_take(&b, S + S / 2));
	assert_false(pl_bucket_take(&b, S + S / 2));
	/* A long idle time refills to the burst, not beyond. */
	for (int i = 0; i < 3; i++)
		assert_true(pl_bucket_take(&b, 100 * S));
	assert_false(pl_bucket_take(&b, 100 * S));
	/* A clock that goes back refills nothing; a restart moves the refill point without tokens. */
	assert_false(pl_bucket_take(&b, 50 * S));
	pl_bucket_restart(&b, 200 * S);
	assert_false(pl_bucket_take(&b, 200 * S));
	assert_true(pl_bucket_take(&b, 200 * S + S / 2));
}

/* The flag value every binary's --log-level takes. */
static void test_log_level_name(void **state)
{
	(void)state;
	assert_int_equal(pl_log_set_level_name("debug"), 0);
	assert_int_equal(pl_log_set_level_name("error"), 0);
	assert_int_equal(pl_log_set_level_name("info"), 0);
	assert_int_equal(pl_log_set_level_name("verbose"), -1);
	assert_int_equal(pl_log_set_level_name(""), -1);
	assert_int_equal(pl_log_set_level_name("INFO"), -1);
}

/* gzip round trip, the inflate bound, and corrupt, cut, trailing and non-gzip input. */
static void test_gzip(void **state)
{
	(void)state;
	pl_buf in = PL_BUF_INIT, z = PL_BUF_INIT, out = PL_BUF_INIT;
	char err[128];

	for (int i = 0; i < 20000; i++)
		pl_buf_printf(&in, "{\"addresses\":[\"198.18.%d.%d\"],\"ports\":[8080]},", i / 250, i % 250);
	assert_int_equal(pl_gzip(in.data, in.len, &z), 0);
	assert_true(pl_is_gzip(z.data, z.len));
	assert_true(z.len * 5 < in.len);
	assert_int_equal(pl_gunzip(z.data, z.len, in.len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, in.len);
	assert_memory_equal(out.data, in.data, in.len);

	/* One byte short of the content: refused, nothing past the bound. */
	pl_buf_reset(&out);
	assert_int_equal(pl_gunzip(z.data, z.len, in.len - 1, &out, err, sizeof(err)), -EFBIG);
	assert_true(out.len <= in.len - 1);
	assert_non_null(strstr(err, "more than"));

	/* Cut short, trailing bytes, a flipped byte in the middle, not gzip at all. */
	pl_buf_reset(&out);
	assert_int_equal(pl_gunzip(z.data, z.len - 9, in.len, &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "byte"));
	pl_buf cat = PL_BUF_INIT;
	pl_buf_append(&cat, z.data, z.len);
	pl_buf_append(&cat, "x", 1);
	pl_buf_reset(&out);
	assert_int_equal(pl_gunzip(cat.data, cat.len, in.len, &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "after the end"));
	cat.data[z.len / 2] ^= 0x55;
	pl_buf_reset(&out);
	assert_int_equal(pl_gunzip(cat.data, z.len, in.len, &out, err, sizeof(err)), -EINVAL);
	pl_buf_reset(&out);
	assert_int_equal(pl_gunzip("{\"a\":1}", 7, 100, &out, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gzip: no gzip header at byte 0");
	assert_false(pl_is_gzip("\x1f", 1));

	/* Empty content round-trips. */
	pl_buf_reset(&z);
	pl_buf_reset(&out);
	assert_int_equal(pl_gzip("", 0, &z), 0);
	assert_int_equal(pl_gunzip(z.data, z.len, 10, &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, 0);
	pl_buf_free(&cat);
	pl_buf_free(&in);
	pl_buf_free(&z);
	pl_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena_many_small),
		cmocka_unit_test(test_arena_large),
		cmocka_unit_test(test_arena_zeroing),
		cmocka_unit_test(test_arena_strings),
		cmocka_unit_test(test_buf_append_growth),
		cmocka_unit_test(test_buf_json_str),
		cmocka_unit_test(test_buf_printf_growth),
		cmocka_unit_test(test_buf_read_file),
		cmocka_unit_test(test_buf_read_missing),
		cmocka_unit_test(test_duration_parse_ok),
		cmocka_unit_test(test_duration_parse_bad),
		cmocka_unit_test(test_duration_parse_range),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_duration_roundtrip),
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_incremental),
		cmocka_unit_test(test_hmap_basic),
		cmocka_unit_test(test_hmap_many),
		cmocka_unit_test(test_hmap_delete),
		cmocka_unit_test(test_hmap_remove_if),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_log_level_name),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_gzip),
	};
	return cmocka_run_group_tests(tests, 0, NULL);
}
