/* Unit tests of inbound detection (sidecar/detect.c) on real OpenSSL ClientHellos, their prefixes and corruptions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "proxy.h"

typedef struct hello {
	unsigned char *p;   /* exactly len bytes on the heap, so ASan sees any read past the end */
	size_t len;
} hello;

/*
 * The first flight of a TLS 1.3 client offering alpn (wire format, NULL for no ALPN
 * extension): one ClientHello record, taken from a memory BIO.
 */
static hello client_hello(const unsigned char *alpn, unsigned alpnlen, const char *sni)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	hello h = {0};
	char *data;

	assert_non_null(ctx);
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL *ssl = SSL_new(ctx);
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	if (alpn)
		assert_int_equal(SSL_set_alpn_protos(ssl, alpn, alpnlen), 0);
	if (sni)
		SSL_set_tlsext_host_name(ssl, sni);
	assert_int_equal(SSL_do_handshake(ssl), -1);
	long n = BIO_get_mem_data(wbio, &data);
	assert_true(n > 5);
	h.len = (size_t)n;
	h.p = malloc(h.len);
	assert_non_null(h.p);
	memcpy(h.p, data, h.len);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	/* One handshake record holding one ClientHello. */
	assert_int_equal(h.p[0], 0x16);
	assert_int_equal(((size_t)h.p[3] << 8 | h.p[4]) + 5, h.len);
	assert_int_equal(h.p[5], 0x01);
	return h;
}

static const unsigned char alpn_mesh[] = "\x09pillion/1";
static const unsigned char alpn_web[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_mixed[] = "\x02h2\x09pillion/1\x08http/1.1";

/* px_detect on a heap copy of exactly len bytes. */
static enum px_detect detect(const unsigned char *p, size_t len, size_t *need)
{
	unsigned char *copy = malloc(len ? len : 1);

	assert_non_null(copy);
	if (len)
		memcpy(copy, p, len);
	*need = 12345;
	enum px_detect d = px_detect(copy, len, need);
	free(copy);
	return d;
}

static void test_real_hellos(void **state)
{
	(void)state;
	size_t need;
	hello mesh = client_hello(alpn_mesh, sizeof(alpn_mesh) - 1, NULL);
	hello mixed = client_hello(alpn_mixed, sizeof(alpn_mixed) - 1, "web.shop.svc.cluster.local");
	hello web = client_hello(alpn_web, sizeof(alpn_web) - 1, "web.shop");
	hello none = client_hello(NULL, 0, NULL);

	assert_int_equal(detect(mesh.p, mesh.len, &need), PX_DETECT_TLS_MESH);
	assert_int_equal(detect(mixed.p, mixed.len, &need), PX_DETECT_TLS_MESH);
	assert_int_equal(detect(web.p, web.len, &need), PX_DETECT_TLS_OTHER);
	assert_int_equal(detect(none.p, none.len, &need), PX_DETECT_TLS_OTHER);
	/* Bytes after the record (the client's next flight, or app data) do not change the answer. */
	unsigned char *more = malloc(mesh.len + 100);
	memcpy(more, mesh.p, mesh.len);
	memset(more + mesh.len, 0x17, 100);
	assert_int_equal(detect(more, mesh.len + 100, &need), PX_DETECT_TLS_MESH);
	free(more);
	free(mesh.p);
	free(mixed.p);
	free(web.p);
	free(none.p);
}

/* Every prefix shorter than the record asks for more: 5 for the header, then the whole record. */
static void test_prefixes_need_the_record(void **state)
{
	(void)state;
	hello hs[2] = {client_hello(alpn_mesh, sizeof(alpn_mesh) - 1, NULL), client_hello(NULL, 0, NULL)};

	for (int k = 0; k < 2; k++) {
		hello h = hs[k];
		size_t need;
		assert_int_equal(detect(h.p, 0, &need), PX_DETECT_MORE);
		assert_true(need >= 1 && need <= 5);
		for (size_t len = 1; len < h.len; len++) {
			enum px_detect d = detect(h.p, len, &need);
			if (d != PX_DETECT_MORE)
				fail_msg("prefix of %zu of %zu bytes: %d, want MORE", len, h.len, d);
			if (need != (len < 5 ? 5 : h.len))
				fail_msg("prefix of %zu: need %zu, want %zu", len, need, len < 5 ? (size_t)5 : h.len);
		}
		free(h.p);
	}
}

static void test_plaintext(void **state)
{
	(void)state;
	size_t need;
	static const char *const plain[] = {
		"GET / HTTP/1.1\r\n", "G", "POST /x HTTP/1.1\r\nHost: a\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x00\x00\x00\x01", "SSH-2.0-OpenSSH_9.6\r\n",
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		size_t len = i == 4 ? 4 : strlen(plain[i]);
		if (detect((const unsigned char *)plain[i], len, &need) != PX_DETECT_PLAIN)
			fail_msg("\"%s\" is not plaintext", plain[i]);
	}
	/* 0x16 but not a TLS record header: plaintext once the header is here. */
	assert_int_equal(detect((const unsigned char *)"\x16\x02\x01\x00\x10", 5, &need), PX_DETECT_PLAIN);
	assert_int_equal(detect((const unsigned char *)"\x16\x03\x05\x00\x10", 5, &need), PX_DETECT_PLAIN);
	assert_int_equal(detect((const unsigned char *)"\x16GET", 4, &need), PX_DETECT_MORE);
	assert_int_equal(need, 5);
	/* Other TLS record types (alert, application data, SSLv2-style hello) are not a handshake. */
	assert_int_equal(detect((const unsigned char *)"\x15\x03\x03\x00\x02\x02\x28", 7, &need), PX_DETECT_PLAIN);
	assert_int_equal(detect((const unsigned char *)"\x80\x2e\x01\x03\x01", 5, &need), PX_DETECT_PLAIN);
}

static void test_odd_records(void **state)
{
	(void)state;
	size_t need;
	unsigned char rec[5 + 16384 + 10];

	memset(rec, 0, sizeof(rec));
	/* A handshake record of an impossible length: TLS, but not ours, without waiting for 64 KiB. */
	memcpy(rec, "\x16\x03\x01\xff\xff", 5);
	assert_int_equal(detect(rec, 5, &need), PX_DETECT_TLS_OTHER);
	memcpy(rec, "\x16\x03\x01\x40\x01", 5); /* 16385 */
	assert_int_equal(detect(rec, 5, &need), PX_DETECT_TLS_OTHER);
	/* The largest legal record is waited for. */
	memcpy(rec, "\x16\x03\x01\x40\x00", 5);
	assert_int_equal(detect(rec, 5, &need), PX_DETECT_MORE);
	assert_int_equal(need, 16384 + 5);
	rec[5] = 0x01; /* client_hello with a zero body */
	assert_int_equal(detect(rec, 16384 + 5, &need), PX_DETECT_TLS_OTHER);
	/* Too short to hold a handshake header. */
	memcpy(rec, "\x16\x03\x01\x00\x03\x01\x00\x00", 8);
	assert_int_equal(detect(rec, 8, &need), PX_DETECT_TLS_OTHER);
	/* A server hello, or a hello claiming more bytes than its record (split over records). */
	memcpy(rec, "\x16\x03\x03\x00\x04\x02\x00\x00\x00", 9);
	assert_int_equal(detect(rec, 9, &need), PX_DETECT_TLS_OTHER);
	memcpy(rec, "\x16\x03\x01\x00\x04\x01\x00\x00\x01", 9);
	assert_int_equal(detect(rec, 9, &need), PX_DETECT_TLS_OTHER);
	memcpy(rec, "\x16\x03\x01\x00\x04\x01\xff\xff\xff", 9);
	assert_int_equal(detect(rec, 9, &need), PX_DETECT_TLS_OTHER);
}

/* Sets the 16-bit (or 8-bit) length at off in a copy of h and checks detection stays in bounds. */
static void corrupt_and_detect(const hello *h, size_t off, int width, unsigned value)
{
	unsigned char *c = malloc(h->len);
	size_t need;

	memcpy(c, h->p, h->len);
	if (width == 1) {
		c[off] = (unsigned char)value;
	} else {
		c[off] = (unsigned char)(value >> 8);
		c[off + 1] = (unsigned char)value;
	}
	enum px_detect d = detect(c, h->len, &need);
	/* The record header is untouched, so the answer is a TLS one; ASan guards the reads. */
	assert_true(d == PX_DETECT_TLS_MESH || d == PX_DETECT_TLS_OTHER);
	free(c);
}

/* Offsets of the length fields inside a real ClientHello record, walked the way TLS lays them out. */
static void test_corrupted_inner_lengths(void **state)
{
	(void)state;
	hello h = client_hello(alpn_mixed, sizeof(alpn_mixed) - 1, "web.shop");
	size_t need, i = 5 + 4 + 2 + 32;
	size_t offs[64];
	int widths[64], n = 0;

	offs[n] = 7, widths[n++] = 2;                      /* handshake length, low 16 bits */
	offs[n] = i, widths[n++] = 1;                      /* session id length */
	i += 1 + h.p[i];
	offs[n] = i, widths[n++] = 2;                      /* cipher suites */
	i += 2 + ((size_t)h.p[i] << 8 | h.p[i + 1]);
	offs[n] = i, widths[n++] = 1;                      /* compression methods */
	i += 1 + h.p[i];
	size_t ext_total_at = i;
	offs[n] = i, widths[n++] = 2;                      /* extensions */
	size_t end = i + 2 + ((size_t)h.p[i] << 8 | h.p[i + 1]);
	assert_int_equal(end, h.len);
	size_t alpn_at = 0;
	for (i += 2; i + 4 <= end && n < 60;) {
		unsigned type = (unsigned)h.p[i] << 8 | h.p[i + 1];
		size_t elen = (size_t)h.p[i + 2] << 8 | h.p[i + 3];
		offs[n] = i + 2, widths[n++] = 2;          /* extension length */
		if (type == 16)
			alpn_at = i + 4;
		i += 4 + elen;
	}
	assert_int_not_equal(alpn_at, 0);
	offs[n] = alpn_at, widths[n++] = 2;                /* protocol name list length */
	offs[n] = alpn_at + 2, widths[n++] = 1;            /* first name length */
	offs[n] = alpn_at + 2 + 1 + 2, widths[n++] = 1;    /* second name (pillion/1) length */

	/* Intact, it is ours. */
	assert_int_equal(detect(h.p, h.len, &need), PX_DETECT_TLS_MESH);
	static const unsigned values[] = {0, 1, 2, 3, 4, 8, 9, 10, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x7fff, 0xfffe, 0xffff};
	for (int k = 0; k < n; k++)
		for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
			if (widths[k] == 1 && values[v] > 0xff)
				continue;
			corrupt_and_detect(&h, offs[k], widths[k], values[v]);
		}
	/* Each length one too long, one too short. */
	for (int k = 0; k < n; k++) {
		unsigned cur = widths[k] == 1 ? h.p[offs[k]] : (unsigned)h.p[offs[k]] << 8 | h.p[offs[k] + 1];
		corrupt_and_detect(&h, offs[k], widths[k], cur + 1);
		if (cur)
			corrupt_and_detect(&h, offs[k], widths[k], cur - 1);
	}
	/* Lengths one too long that break the structure around pillion/1: never ours. */
	const size_t must_fail[3] = {7 /* handshake */, ext_total_at, alpn_at /* protocol name list */};
	for (int k = 0; k < 3; k++) {
		unsigned char *m = malloc(h.len);
		memcpy(m, h.p, h.len);
		unsigned cur = (unsigned)m[must_fail[k]] << 8 | m[must_fail[k] + 1];
		m[must_fail[k]] = (unsigned char)((cur + 1) >> 8);
		m[must_fail[k] + 1] = (unsigned char)(cur + 1);
		if (detect(m, h.len, &need) != PX_DETECT_TLS_OTHER)
			fail_msg("length at %zu one too long is still ours", must_fail[k]);
		free(m);
	}
	/* The ALPN list shortened so that "pillion/1" runs past it: not ours. */
	unsigned char *c = malloc(h.len);
	memcpy(c, h.p, h.len);
	c[alpn_at] = 0;
	c[alpn_at + 1] = 3 + 5;
	assert_int_equal(detect(c, h.len, &need), PX_DETECT_TLS_OTHER);
	/* "pillion/2" is not pillion/1. */
	memcpy(c, h.p, h.len);
	c[alpn_at + 2 + 3 + 8 + 1] = '2';
	assert_int_equal(detect(c, h.len, &need), PX_DETECT_TLS_OTHER);
	/* The same bytes as another handshake message (a ServerHello) are not a ClientHello. */
	memcpy(c, h.p, h.len);
	c[5] = 0x02;
	assert_int_equal(detect(c, h.len, &need), PX_DETECT_TLS_OTHER);
	/* Truncated records: the record header shrunk to cut the hello anywhere. */
	for (size_t cut = 4; cut + 5 < h.len; cut++) {
		memcpy(c, h.p, h.len);
		c[3] = (unsigned char)(cut >> 8);
		c[4] = (unsigned char)cut;
		unsigned char *t = malloc(cut + 5);
		memcpy(t, c, cut + 5);
		size_t need2;
		enum px_detect d = px_detect(t, cut + 5, &need2);
		assert_int_equal(d, PX_DETECT_TLS_OTHER);
		free(t);
	}
	free(c);
	free(h.p);
}

/* Every single-byte change to a real hello stays in bounds (ASan), and yields a definite answer. */
static void test_every_byte_flipped(void **state)
{
	(void)state;
	hello h = client_hello(alpn_mesh, sizeof(alpn_mesh) - 1, NULL);
	unsigned char *c = malloc(h.len);
	size_t need;

	for (size_t i = 0; i < h.len; i++)
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(c, h.p, h.len);
			c[i] ^= (unsigned char)(1u << bit);
			enum px_detect d = px_detect(c, h.len, &need);
			if (d == PX_DETECT_MORE)
				assert_true(need > h.len);
		}
	free(c);
	free(h.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_hellos),
		cmocka_unit_test(test_prefixes_need_the_record),
		cmocka_unit_test(test_plaintext),
		cmocka_unit_test(test_odd_records),
		cmocka_unit_test(test_corrupted_inner_lengths),
		cmocka_unit_test(test_every_byte_flipped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
