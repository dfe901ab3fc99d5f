/* Unit tests for lib/pki/tls: credential checks on generated PKI, a real mTLS handshake over a socketpair, SPIFFE helpers. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki/tls.h"

#define DAY 86400L

/* ---------- a small PKI built with OpenSSL ---------- */

typedef struct pem {
	char *s;
	size_t len;
} pem;

static EVP_PKEY *p256_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for key, signed by issuer_key (self-signed when issuer is NULL), valid
 * from now+nb_off to now+na_off seconds. san is an OpenSSL subjectAltName value or NULL.
 */
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn, bool ca, long nb_off,
		       long na_off, const char *san)
{
	static long serial = 1;
	X509 *c = X509_new();

	assert_non_null(c);
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
	X509_gmtime_adj(X509_getm_notBefore(c), nb_off);
	X509_gmtime_adj(X509_getm_notAfter(c), na_off);
	X509_set_pubkey(c, key);
	X509_NAME *name = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"pillion-test", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
	X509 *iss = issuer ? issuer : c;
	if (ca) {
		add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
		add_ext(c, iss, NID_subject_key_identifier, "hash");
	} else {
		add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(c, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
		add_ext(c, iss, NID_ext_key_usage, "serverAuth,clientAuth");
		add_ext(c, iss, NID_authority_key_identifier, "keyid:always");
	}
	if (san)
		add_ext(c, iss, NID_subject_alt_name, san);
	assert_true(X509_sign(c, issuer_key, EVP_sha256()) > 0);
	return c;
}

static pem bio_take(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	pem p = {malloc((size_t)n + 1), (size_t)n};

	assert_non_null(p.s);
	memcpy(p.s, data, (size_t)n);
	p.s[n] = '\0';
	BIO_free(b);
	return p;
}

/* PEM of one or two certificates (NULL ends the list early). */
static pem pem_certs(X509 *a, X509 *b)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_int_equal(PEM_write_bio_X509(bio, a), 1);
	if (b)
		assert_int_equal(PEM_write_bio_X509(bio, b), 1);
	return bio_take(bio);
}

static pem pem_key(EVP_PKEY *k)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
	return bio_take(bio);
}

#define SPIFFE_A "spiffe://cluster.local/ns/shop/sa/web"
#define SPIFFE_B "spiffe://cluster.local/ns/shop/sa/api"

typedef struct pki {
	EVP_PKEY *ca_key, *ca2_key, *a_key, *b_key, *other_key;
	X509 *ca, *ca2;
	pem ca_pem, ca2_pem, bundle_pem;      /* bundle: ca + ca2 */
	pem a_crt, a_key_pem;                 /* SPIFFE_A, by ca */
	pem b_crt, b_key_pem;                 /* SPIFFE_B, by ca */
	pem c_crt;                            /* SPIFFE_B, by ca2, key b */
	pem expired, future, nosan, twosan, dnsonly, foreign, wrong_key;
	time_t now;
} pki;

static pki P;

static int pki_setup(void **state)
{
	(void)state;
	P.now = time(NULL);
	P.ca_key = p256_key();
	P.ca2_key = p256_key();
	P.a_key = p256_key();
	P.b_key = p256_key();
	P.other_key = p256_key();
	P.ca = make_cert(P.ca_key, NULL, P.ca_key, "pillion root", true, -DAY, 365 * DAY, NULL);
	P.ca2 = make_cert(P.ca2_key, NULL, P.ca2_key, "other root", true, -DAY, 365 * DAY, NULL);
	P.ca_pem = pem_certs(P.ca, NULL);
	P.ca2_pem = pem_certs(P.ca2, NULL);
	P.bundle_pem = pem_certs(P.ca, P.ca2);

	X509 *x = make_cert(P.a_key, P.ca, P.ca_key, "web", false, -3600, 2 * DAY, "URI:" SPIFFE_A);
	P.a_crt = pem_certs(x, NULL);
	X509_free(x);
	P.a_key_pem = pem_key(P.a_key);
	x = make_cert(P.b_key, P.ca, P.ca_key, "api", false, -3600, 2 * DAY, "URI:" SPIFFE_B);
	P.b_crt = pem_certs(x, NULL);
	X509_free(x);
	P.b_key_pem = pem_key(P.b_key);
	x = make_cert(P.b_key, P.ca2, P.ca2_key, "api", false, -3600, 2 * DAY, "URI:" SPIFFE_B);
	P.c_crt = pem_certs(x, NULL);
	X509_free(x);

	x = make_cert(P.a_key, P.ca, P.ca_key, "web", false, -2 * DAY, -3600, "URI:" SPIFFE_A);
	P.expired = pem_certs(x, NULL);
	X509_free(x);
	x = make_cert(P.a_key, P.ca, P.ca_key, "web", false, 3600, 2 * DAY, "URI:" SPIFFE_A);
	P.future = pem_certs(x, NULL);
	X509_free(x);
	x = make_cert(P.a_key, P.ca, P.ca_key, "web", false, -3600, 2 * DAY, NULL);
	P.nosan = pem_certs(x, NULL);
	X509_free(x);
	x = make_cert(P.a_key, P.ca, P.ca_key, "web", false, -3600, 2 * DAY, "URI:" SPIFFE_A ",URI:" SPIFFE_B);
	P.twosan = pem_certs(x, NULL);
	X509_free(x);
	/* A SAN extension with a DNS name and an https URI but no spiffe:// one. */
	x = make_cert(P.a_key, P.ca, P.ca_key, "web", false, -3600, 2 * DAY,
		      "DNS:web.shop.svc,URI:https://web.shop/");
	P.dnsonly = pem_certs(x, NULL);
	X509_free(x);
	x = make_cert(P.a_key, P.ca2, P.ca2_key, "web", false, -3600, 2 * DAY, "URI:" SPIFFE_A);
	P.foreign = pem_certs(x, NULL);
	X509_free(x);
	P.wrong_key = pem_key(P.other_key);
	return 0;
}

static int pki_teardown(void **state)
{
	(void)state;
	pem *all[] = {&P.ca_pem, &P.ca2_pem, &P.bundle_pem, &P.a_crt, &P.a_key_pem, &P.b_crt, &P.b_key_pem,
		      &P.c_crt, &P.expired, &P.future, &P.nosan, &P.twosan, &P.dnsonly, &P.foreign, &P.wrong_key};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->s);
	X509_free(P.ca);
	X509_free(P.ca2);
	EVP_PKEY *keys[] = {P.ca_key, P.ca2_key, P.a_key, P.b_key, P.other_key};
	for (size_t i = 0; i < 5; i++)
		EVP_PKEY_free(keys[i]);
	return 0;
}

static pl_tls_creds *load(const pem *crt, const pem *key, const pem *ca, char *err, size_t errlen)
{
	err[0] = '\0';
	return pl_tls_creds_load(crt->s, crt->len, key->s, key->len, ca->s, ca->len, (int64_t)P.now, err, errlen);
}

/* ---------- credentials ---------- */

static void test_creds_good(void **state)
{
	(void)state;
	char err[512];
	pl_tls_creds *c = load(&P.a_crt, &P.a_key_pem, &P.bundle_pem, err, sizeof(err));

	if (!c)
		fail_msg("refused: %s", err);
	assert_string_equal(pl_tls_creds_spiffe_id(c), SPIFFE_A);
	assert_int_equal(pl_tls_creds_nroots(c), 2);
	/* X509_gmtime_adj rounds to the second; allow the clock to tick during setup. */
	int64_t na = pl_tls_creds_not_after(c), nb = pl_tls_creds_not_before(c);
	assert_true(na >= (int64_t)P.now + 2 * DAY - 5 && na <= (int64_t)P.now + 2 * DAY + 5);
	assert_true(nb >= (int64_t)P.now - 3600 - 5 && nb <= (int64_t)P.now - 3600 + 5);
	/* One root, and references: the last unref frees (ASan checks the count). */
	pl_tls_creds *one = load(&P.a_crt, &P.a_key_pem, &P.ca_pem, err, sizeof(err));
	assert_non_null(one);
	assert_int_equal(pl_tls_creds_nroots(one), 1);
	pl_tls_creds_ref(c);
	pl_tls_creds_unref(c);
	assert_string_equal(pl_tls_creds_spiffe_id(c), SPIFFE_A);
	pl_tls_creds_unref(c);
	pl_tls_creds_unref(one);
	pl_tls_creds_unref(NULL);
}

/* The validity window is judged at the caller's now, not the wall clock. */
static void test_creds_validity_uses_now_argument(void **state)
{
	(void)state;
	char err[512];
	pl_tls_creds *c = pl_tls_creds_load(P.future.s, P.future.len, P.a_key_pem.s, P.a_key_pem.len, P.ca_pem.s,
					    P.ca_pem.len, (int64_t)P.now + 7200, err, sizeof(err));

	if (!c)
		fail_msg("refused at now+2h: %s", err);
	pl_tls_creds_unref(c);
	c = pl_tls_creds_load(P.a_crt.s, P.a_crt.len, P.a_key_pem.s, P.a_key_pem.len, P.ca_pem.s, P.ca_pem.len,
			      (int64_t)P.now + 3 * DAY, err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "tls.crt"));
	assert_non_null(strstr(err, "expired"));
}

static void expect_refused(const pem *crt, const pem *key, const pem *ca, const char *file, const char *problem)
{
	char err[512];
	pl_tls_creds *c = load(crt, key, ca, err, sizeof(err));

	if (c) {
		pl_tls_creds_unref(c);
		fail_msg("accepted; wanted a refusal naming %s and \"%s\"", file, problem);
	}
	if (!strstr(err, file) || !strstr(err, problem))
		fail_msg("error \"%s\" does not name %s and \"%s\"", err, file, problem);
}

static void test_creds_refused(void **state)
{
	(void)state;
	pem empty = {"", 0}, junk = {"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", 0};

	junk.len = strlen(junk.s);
	expect_refused(&P.expired, &P.a_key_pem, &P.ca_pem, "tls.crt", "expired");
	expect_refused(&P.future, &P.a_key_pem, &P.ca_pem, "tls.crt", "not valid");
	expect_refused(&P.nosan, &P.a_key_pem, &P.ca_pem, "tls.crt", "no spiffe:// URI SAN");
	expect_refused(&P.dnsonly, &P.a_key_pem, &P.ca_pem, "tls.crt", "no spiffe:// URI SAN");
	expect_refused(&P.twosan, &P.a_key_pem, &P.ca_pem, "tls.crt", "more than one spiffe:// URI SAN");
	expect_refused(&P.foreign, &P.a_key_pem, &P.ca_pem, "tls.crt", "does not chain to ca.crt");
	expect_refused(&P.a_crt, &P.wrong_key, &P.ca_pem, "tls.key", "match");
	expect_refused(&P.a_crt, &P.b_key_pem, &P.ca_pem, "tls.key", "match");
	expect_refused(&empty, &P.a_key_pem, &P.ca_pem, "tls.crt", "no PEM certificate");
	expect_refused(&junk, &P.a_key_pem, &P.ca_pem, "tls.crt", "no PEM certificate");
	expect_refused(&P.a_key_pem, &P.a_key_pem, &P.ca_pem, "tls.crt", "no PEM certificate");
	expect_refused(&P.a_crt, &empty, &P.ca_pem, "tls.key", "no PEM private key");
	expect_refused(&P.a_crt, &P.a_crt, &P.ca_pem, "tls.key", "no PEM private key");
	expect_refused(&P.a_crt, &P.a_key_pem, &empty, "ca.crt", "no PEM certificate");
	expect_refused(&P.a_crt, &P.a_key_pem, &P.a_key_pem, "ca.crt", "no PEM certificate");
	/* The right root only in a bundle that lacks it: another CA's root alone. */
	expect_refused(&P.a_crt, &P.a_key_pem, &P.ca2_pem, "tls.crt", "does not chain to ca.crt");
}

/* ---------- sessions over a socketpair ---------- */

typedef struct side {
	pl_tls *t;
	int fd;
	int rc;              /* last handshake result */
	const char *reason;
	char err[256];
} side;

/* Drives both handshakes until each is done or failed; poll waits when both want I/O. */
static void handshake_both(side *cl, side *sv)
{
	side *s[2] = {cl, sv};

	for (int i = 0; i < 2; i++) {
		s[i]->rc = PL_IO_WANT_READ;
		s[i]->reason = NULL;
		s[i]->err[0] = '\0';
	}
	for (int round = 0; round < 1000; round++) {
		bool busy = false;
		struct pollfd pfd[2];
		int np = 0;
		for (int i = 0; i < 2; i++) {
			if (s[i]->rc != PL_IO_WANT_READ && s[i]->rc != PL_IO_WANT_WRITE)
				continue;
			s[i]->rc = pl_tls_handshake(s[i]->t, &s[i]->reason, s[i]->err, sizeof(s[i]->err));
			if (s[i]->rc == PL_IO_WANT_READ || s[i]->rc == PL_IO_WANT_WRITE) {
				busy = true;
				pfd[np].fd = s[i]->fd;
				pfd[np].events = s[i]->rc == PL_IO_WANT_READ ? POLLIN : POLLOUT;
				np++;
			}
		}
		if (!busy)
			return;
		/* Both sides ran: whoever still waits, waits for bytes the other has sent, or we are stuck. */
		if (poll(pfd, (nfds_t)np, 2000) <= 0)
			fail_msg("handshake stuck");
	}
	fail_msg("handshake did not finish");
}

/* Reads until n bytes or an error/EOF; returns what the last read returned when short. */
static ssize_t read_exact(side *s, char *buf, size_t n)
{
	size_t got = 0;

	for (int round = 0; round < 1000 && got < n; round++) {
		ssize_t r = pl_tls_read(s->t, buf + got, n - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == PL_IO_WANT_READ || r == PL_IO_WANT_WRITE) {
			struct pollfd pfd = {s->fd, r == PL_IO_WANT_READ ? POLLIN : POLLOUT, 0};
			assert_true(poll(&pfd, 1, 2000) > 0);
			continue;
		}
		return r;
	}
	return (ssize_t)got;
}

/* Reads expecting an end of stream (0), skipping WANT_*. */
static ssize_t read_until_result(side *s)
{
	char c;

	for (int round = 0; round < 1000; round++) {
		ssize_t r = pl_tls_read(s->t, &c, 1);
		if (r != PL_IO_WANT_READ && r != PL_IO_WANT_WRITE)
			return r;
		struct pollfd pfd = {s->fd, r == PL_IO_WANT_READ ? POLLIN : POLLOUT, 0};
		if (poll(&pfd, 1, 2000) <= 0)
			fail_msg("no result after waiting");
	}
	fail_msg("no result");
	return -1;
}

static void write_all(side *s, const char *buf, size_t n)
{
	size_t put = 0;

	for (int round = 0; round < 100000 && put < n; round++) {
		ssize_t w = pl_tls_write(s->t, buf + put, n - put);
		if (w > 0) {
			put += (size_t)w;
			continue;
		}
		assert_true(w == PL_IO_WANT_READ || w == PL_IO_WANT_WRITE);
		struct pollfd pfd = {s->fd, w == PL_IO_WANT_READ ? POLLIN : POLLOUT, 0};
		assert_true(poll(&pfd, 1, 2000) > 0);
	}
	assert_int_equal(put, n);
}

static void pair_new(pl_tls_creds *ccreds, pl_tls_creds *screds, side *cl, side *sv)
{
	int fds[2];

	memset(cl, 0, sizeof(*cl));
	memset(sv, 0, sizeof(*sv));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
	cl->fd = fds[0];
	sv->fd = fds[1];
	cl->t = pl_tls_client_new(ccreds, cl->fd);
	sv->t = pl_tls_server_new(screds, sv->fd);
	assert_non_null(cl->t);
	assert_non_null(sv->t);
}

static void pair_free(side *cl, side *sv)
{
	pl_tls_free(cl->t);
	pl_tls_free(sv->t);
	close(cl->fd);
	close(sv->fd);
}

static pl_tls_creds *must_load(const pem *crt, const pem *key, const pem *ca)
{
	char err[512];
	pl_tls_creds *c = load(crt, key, ca, err, sizeof(err));

	if (!c)
		fail_msg("refused: %s", err);
	return c;
}

static void test_handshake_and_data(void **state)
{
	(void)state;
	pl_tls_creds *a = must_load(&P.a_crt, &P.a_key_pem, &P.ca_pem);
	pl_tls_creds *b = must_load(&P.b_crt, &P.b_key_pem, &P.bundle_pem);
	side cl, sv;
	char id[256], buf[70000];

	pair_new(a, b, &cl, &sv);
	/* The sessions hold their own references: the caller may drop its own now. */
	pl_tls_creds_unref(a);
	pl_tls_creds_unref(b);
	handshake_both(&cl, &sv);
	if (cl.rc != 0 || sv.rc != 0)
		fail_msg("client %d %s %s / server %d %s %s", cl.rc, cl.reason ? cl.reason : "", cl.err, sv.rc,
			 sv.reason ? sv.reason : "", sv.err);
	assert_string_equal(pl_tls_version(cl.t), "TLSv1.3");
	assert_string_equal(pl_tls_version(sv.t), "TLSv1.3");
	/* ALPN pillion/1 on both ends: read it through OpenSSL, as pl_tls does not expose it. */
	assert_true(pl_tls_peer_spiffe_id(cl.t, id, sizeof(id)));
	assert_string_equal(id, SPIFFE_B);
	assert_true(pl_tls_peer_spiffe_id(sv.t, id, sizeof(id)));
	assert_string_equal(id, SPIFFE_A);
	/* Too small a buffer is "absent", never a truncated ID. */
	assert_false(pl_tls_peer_spiffe_id(sv.t, id, strlen(SPIFFE_A)));

	/* Data both ways, including more than one record and more than the socket buffer. */
	assert_false(pl_tls_pending(sv.t));
	write_all(&cl, "hello server", 12);
	assert_int_equal(read_exact(&sv, buf, 12), 12);
	assert_memory_equal(buf, "hello server", 12);
	write_all(&sv, "hello client", 12);
	assert_int_equal(read_exact(&cl, buf, 12), 12);
	assert_memory_equal(buf, "hello client", 12);
	/* Nothing more to read: want read, not an error. */
	assert_int_equal(pl_tls_read(cl.t, buf, sizeof(buf)), PL_IO_WANT_READ);

	/* Two records written, one small read: the rest is pending inside the session. */
	write_all(&cl, "abcdef", 6);
	write_all(&cl, "ghij", 4);
	assert_int_equal(read_exact(&sv, buf, 2), 2);
	assert_true(pl_tls_pending(sv.t));
	assert_int_equal(read_exact(&sv, buf + 2, 8), 8);
	assert_memory_equal(buf, "abcdefghij", 10);
	/*
	 * Two records, the first read whole: the second is either still in the socket (epoll
	 * will say so) or already inside the session (pending must say so), never lost between.
	 */
	write_all(&cl, "abcdef", 6);
	write_all(&cl, "ghij", 4);
	assert_int_equal(read_exact(&sv, buf, 6), 6);
	struct pollfd pfd = {sv.fd, POLLIN, 0};
	assert_true(pl_tls_pending(sv.t) || poll(&pfd, 1, 0) == 1);
	assert_int_equal(read_exact(&sv, buf, 4), 4);
	assert_memory_equal(buf, "ghij", 4);
	assert_false(pl_tls_pending(sv.t));

	/* Client half-closes: the server reads the end of stream, and can still answer. */
	int r;
	for (int i = 0; i < 100 && (r = pl_tls_shutdown(cl.t)) != 0; i++)
		assert_true(r == PL_IO_WANT_WRITE || r == PL_IO_WANT_READ);
	assert_int_equal(r, 0);
	assert_int_equal(read_until_result(&sv), 0);
	static char big[65536];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	/* Interleave so neither socket buffer blocks a single-threaded test. */
	size_t put = 0, got = 0;
	for (int round = 0; round < 100000 && got < sizeof(big); round++) {
		if (put < sizeof(big)) {
			ssize_t w = pl_tls_write(sv.t, big + put, sizeof(big) - put);
			if (w > 0)
				put += (size_t)w;
			else
				assert_true(w == PL_IO_WANT_WRITE || w == PL_IO_WANT_READ);
		}
		ssize_t n = pl_tls_read(cl.t, buf + got, sizeof(big) - got);
		if (n > 0)
			got += (size_t)n;
		else
			assert_true(n == PL_IO_WANT_READ);
	}
	assert_int_equal(got, sizeof(big));
	assert_memory_equal(buf, big, sizeof(big));
	/* The client may not write after its close_notify. */
	assert_true(pl_tls_write(cl.t, "x", 1) < 0);
	/* The server closes too: the client sees the end of stream. */
	for (int i = 0; i < 100 && (r = pl_tls_shutdown(sv.t)) != 0; i++)
		assert_true(r == PL_IO_WANT_WRITE || r == PL_IO_WANT_READ);
	assert_int_equal(r, 0);
	assert_int_equal(read_until_result(&cl), 0);
	pair_free(&cl, &sv);
}

/*
 * ALPN, seen from a plain OpenSSL peer (pl_tls does not expose the negotiated protocol):
 * a session with credentials a_crt/a_key trusting ca, offering (client) or accepting
 * (server) the protocols in alpn (wire format; NULL for none).
 */
static SSL *raw_new(bool server, int fd, const unsigned char *alpn, unsigned alpnlen)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	BIO *b = BIO_new_mem_buf(P.a_crt.s, (int)P.a_crt.len);
	X509 *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(leaf);
	assert_int_equal(SSL_CTX_use_certificate(ctx, leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, P.a_key), 1);
	X509_free(leaf);
	X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), P.ca);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (!server && alpn)
		assert_int_equal(SSL_CTX_set_alpn_protos(ctx, alpn, alpnlen), 0);
	SSL *ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_fd(ssl, fd);
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	return ssl;
}

/* The raw server picks pillion/1 when offered. */
static int raw_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
			   unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	static const unsigned char mine[] = "\x09pillion/1";
	if (SSL_select_next_proto((unsigned char **)out, outlen, mine, sizeof(mine) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	return SSL_TLSEXT_ERR_OK;
}

/* Drives a pl_tls side and a raw OpenSSL side until both are done or failed. rc: 0, -1 or WANT. */
static void handshake_mixed(side *pl, SSL *raw, int rawfd, int *raw_rc)
{
	pl->rc = PL_IO_WANT_READ;
	*raw_rc = PL_IO_WANT_READ;
	for (int round = 0; round < 1000; round++) {
		struct pollfd pfd[2];
		int np = 0;
		if (pl->rc == PL_IO_WANT_READ || pl->rc == PL_IO_WANT_WRITE) {
			pl->rc = pl_tls_handshake(pl->t, &pl->reason, pl->err, sizeof(pl->err));
			if (pl->rc == PL_IO_WANT_READ || pl->rc == PL_IO_WANT_WRITE)
				pfd[np++] = (struct pollfd){pl->fd, pl->rc == PL_IO_WANT_READ ? POLLIN : POLLOUT, 0};
		}
		if (*raw_rc == PL_IO_WANT_READ || *raw_rc == PL_IO_WANT_WRITE) {
			int r = SSL_do_handshake(raw);
			int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(raw, r);
			*raw_rc = r == 1 ? 0 : e == SSL_ERROR_WANT_READ ? PL_IO_WANT_READ
					   : e == SSL_ERROR_WANT_WRITE ? PL_IO_WANT_WRITE : -1;
			if (*raw_rc == PL_IO_WANT_READ || *raw_rc == PL_IO_WANT_WRITE)
				pfd[np++] = (struct pollfd){rawfd, *raw_rc == PL_IO_WANT_READ ? POLLIN : POLLOUT, 0};
		}
		if (!np)
			return;
		if (poll(pfd, (nfds_t)np, 2000) <= 0)
			fail_msg("handshake stuck");
	}
	fail_msg("handshake did not finish");
}

static void test_alpn_negotiated(void **state)
{
	(void)state;
	pl_tls_creds *a = must_load(&P.a_crt, &P.a_key_pem, &P.ca_pem);
	static const unsigned char mesh[] = "\x09pillion/1", web[] = "\x02h2\x08http/1.1";
	const unsigned char *proto;
	unsigned int plen;
	int fds[2], raw_rc;
	side pl;

	/* A pl_tls server with a client offering h2, http/1.1 and pillion/1: pillion/1 is chosen. */
	static const unsigned char both[] = "\x02h2\x09pillion/1\x08http/1.1";
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
	memset(&pl, 0, sizeof(pl));
	pl.fd = fds[1];
	pl.t = pl_tls_server_new(a, fds[1]);
	SSL *raw = raw_new(false, fds[0], both, sizeof(both) - 1);
	handshake_mixed(&pl, raw, fds[0], &raw_rc);
	if (pl.rc != 0 || raw_rc != 0)
		fail_msg("server %d %s %s / raw client %d", pl.rc, pl.reason ? pl.reason : "", pl.err, raw_rc);
	SSL_get0_alpn_selected(raw, &proto, &plen);
	assert_int_equal(plen, strlen(PL_ALPN_MESH));
	assert_memory_equal(proto, PL_ALPN_MESH, plen);
	SSL_free(raw);
	pl_tls_free(pl.t);
	close(fds[0]);
	close(fds[1]);

	/* A client offering only h2 and http/1.1 is refused with "no_alpn". */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
	memset(&pl, 0, sizeof(pl));
	pl.fd = fds[1];
	pl.t = pl_tls_server_new(a, fds[1]);
	raw = raw_new(false, fds[0], web, sizeof(web) - 1);
	handshake_mixed(&pl, raw, fds[0], &raw_rc);
	assert_int_equal(pl.rc, -1);
	assert_string_equal(pl.reason, "no_alpn");
	assert_int_equal(raw_rc, -1);
	SSL_free(raw);
	pl_tls_free(pl.t);
	close(fds[0]);
	close(fds[1]);

	/* A pl_tls client offers pillion/1: a plain server selecting it sees it, and so does the client. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
	memset(&pl, 0, sizeof(pl));
	pl.fd = fds[0];
	pl.t = pl_tls_client_new(a, fds[0]);
	raw = raw_new(true, fds[1], mesh, sizeof(mesh) - 1);
	SSL_CTX_set_alpn_select_cb(SSL_get_SSL_CTX(raw), raw_alpn_select, NULL);
	handshake_mixed(&pl, raw, fds[1], &raw_rc);
	if (pl.rc != 0 || raw_rc != 0)
		fail_msg("client %d %s %s / raw server %d", pl.rc, pl.reason ? pl.reason : "", pl.err, raw_rc);
	SSL_get0_alpn_selected(raw, &proto, &plen);
	assert_int_equal(plen, strlen(PL_ALPN_MESH));
	assert_memory_equal(proto, PL_ALPN_MESH, plen);
	SSL_free(raw);
	pl_tls_free(pl.t);
	close(fds[0]);
	close(fds[1]);
	pl_tls_creds_unref(a);
}

/* TLS 1.2 is refused, even with the right ALPN and a trusted certificate. */
static void test_tls12_refused(void **state)
{
	(void)state;
	pl_tls_creds *a = must_load(&P.a_crt, &P.a_key_pem, &P.ca_pem);
	static const unsigned char mesh[] = "\x09pillion/1";
	int fds[2], raw_rc;
	side pl;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
	memset(&pl, 0, sizeof(pl));
	pl.fd = fds[1];
	pl.t = pl_tls_server_new(a, fds[1]);
	SSL *raw = raw_new(false, fds[0], mesh, sizeof(mesh) - 1);
	assert_int_equal(SSL_set_max_proto_version(raw, TLS1_2_VERSION), 1);
	handshake_mixed(&pl, raw, fds[0], &raw_rc);
	assert_int_equal(pl.rc, -1);
	assert_string_equal(pl.reason, "protocol");
	assert_int_equal(raw_rc, -1);
	SSL_free(raw);
	pl_tls_free(pl.t);
	close(fds[0]);
	close(fds[1]);
	pl_tls_creds_unref(a);
}

/* After the peer is gone, writes and close_notify report an error instead of success. */
static void test_write_to_closed_peer(void **state)
{
	(void)state;
	pl_tls_creds *a = must_load(&P.a_crt, &P.a_key_pem, &P.ca_pem);
	side cl, sv;
	char buf[16];

	signal(SIGPIPE, SIG_IGN);
	for (int read_first = 0; read_first < 2; read_first++) {
		pair_new(a, a, &cl, &sv);
		handshake_both(&cl, &sv);
		assert_int_equal(cl.rc, 0);
		assert_int_equal(sv.rc, 0);
		write_all(&cl, "x", 1);
		assert_int_equal(read_exact(&sv, buf, 1), 1);
		/* The server goes away without close_notify. */
		pl_tls_free(sv.t);
		sv.t = NULL;
		close(sv.fd);
		sv.fd = -1;
		if (read_first) {
			/* A FIN without close_notify is a plain end of stream; writing after it fails. */
			assert_int_equal(read_until_result(&cl), 0);
			assert_int_equal(pl_tls_write(cl.t, "y", 1), -EPIPE);
		} else {
			int r = pl_tls_shutdown(cl.t);
			if (r != -EPIPE)
				fail_msg("close_notify to a closed socket: %d, want -EPIPE", r);
		}
		pl_tls_free(cl.t);
		close(cl.fd);
	}
	pl_tls_creds_unref(a);
}

/* A client whose leaf comes from a CA the server does not trust: "certificate_verify" on the server. */
static void test_client_from_another_ca(void **state)
{
	(void)state;
	/* The client trusts both roots (so it accepts the server), its leaf is signed by ca2. */
	pl_tls_creds *c = must_load(&P.c_crt, &P.b_key_pem, &P.bundle_pem);
	pl_tls_creds *s = must_load(&P.a_crt, &P.a_key_pem, &P.ca_pem);
	side cl, sv;

	pair_new(c, s, &cl, &sv);
	handshake_both(&cl, &sv);
	assert_int_equal(sv.rc, -1);
	assert_non_null(sv.reason);
	assert_string_equal(sv.reason, "certificate_verify");
	assert_non_null(strstr(sv.err, "peer certificate"));
	/* TLS 1.3: the client may finish before the server's verdict; its next read fails. */
	if (cl.rc == 0) {
		ssize_t r = read_until_result(&cl);
		assert_true(r < 0);
	} else {
		assert_int_equal(cl.rc, -1);
	}
	pair_free(&cl, &sv);
	pl_tls_creds_unref(c);
	pl_tls_creds_unref(s);
}

/* The reverse: the client does not trust the server's root. */
static void test_server_from_another_ca(void **state)
{
	(void)state;
	pl_tls_creds *c = must_load(&P.a_crt, &P.a_key_pem, &P.ca_pem);
	pl_tls_creds *s = must_load(&P.c_crt, &P.b_key_pem, &P.bundle_pem);
	side cl, sv;

	pair_new(c, s, &cl, &sv);
	handshake_both(&cl, &sv);
	assert_int_equal(cl.rc, -1);
	assert_string_equal(cl.reason, "certificate_verify");
	assert_int_equal(sv.rc, -1);
	assert_non_null(sv.reason);
	assert_string_not_equal(sv.reason, "certificate_verify");
	pair_free(&cl, &sv);
	pl_tls_creds_unref(c);
	pl_tls_creds_unref(s);
}

/* The peer closes the TCP connection in the middle of the handshake. */
static void test_peer_closes_during_handshake(void **state)
{
	(void)state;
	pl_tls_creds *a = must_load(&P.a_crt, &P.a_key_pem, &P.ca_pem);
	int fds[2];
	const char *reason = NULL;
	char err[256];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
	pl_tls *t = pl_tls_server_new(a, fds[1]);
	assert_int_equal(pl_tls_handshake(t, &reason, err, sizeof(err)), PL_IO_WANT_READ);
	close(fds[0]);
	int r = pl_tls_handshake(t, &reason, err, sizeof(err));
	assert_int_equal(r, -1);
	assert_non_null(reason);
	if (strcmp(reason, "eof") != 0 && strcmp(reason, "reset") != 0)
		fail_msg("reason \"%s\" (%s), want eof or reset", reason, err);
	pl_tls_free(t);
	close(fds[1]);
	pl_tls_creds_unref(a);
}

/* The peer resets (closes without reading our ClientHello): "reset"; it reads it and closes: "eof". */
static void test_client_sees_reset_or_eof(void **state)
{
	(void)state;
	pl_tls_creds *a = must_load(&P.a_crt, &P.a_key_pem, &P.ca_pem);
	const char *reason = NULL;
	char err[256], junk[4096];

	for (int drain = 0; drain < 2; drain++) {
		int fds[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
		pl_tls *t = pl_tls_client_new(a, fds[0]);
		assert_int_equal(pl_tls_handshake(t, &reason, err, sizeof(err)), PL_IO_WANT_READ);
		/* A unix stream socket closed with unread data resets its peer. */
		if (drain)
			assert_true(read(fds[1], junk, sizeof(junk)) > 0);
		close(fds[1]);
		reason = NULL;
		assert_int_equal(pl_tls_handshake(t, &reason, err, sizeof(err)), -1);
		assert_non_null(reason);
		if (strcmp(reason, drain ? "eof" : "reset") != 0)
			fail_msg("reason \"%s\" (%s), want %s", reason, err, drain ? "eof" : "reset");
		pl_tls_free(t);
		close(fds[0]);
	}
	pl_tls_creds_unref(a);
}

/* ---------- SPIFFE ---------- */

static void test_spiffe_in_domain(void **state)
{
	(void)state;
	assert_true(pl_spiffe_in_domain("spiffe://cluster.local/ns/x", "cluster.local"));
	assert_true(pl_spiffe_in_domain("spiffe://cluster.local/", "cluster.local"));
	assert_false(pl_spiffe_in_domain("spiffe://cluster.localx/ns/x", "cluster.local"));
	assert_false(pl_spiffe_in_domain("spiffe://cluster.local", "cluster.local"));
	assert_false(pl_spiffe_in_domain("spiffe://cluster.loca", "cluster.local"));
	assert_false(pl_spiffe_in_domain("spiffe://other.local/ns/x", "cluster.local"));
	assert_false(pl_spiffe_in_domain("spiffe://x.cluster.local/ns/x", "cluster.local"));
	assert_false(pl_spiffe_in_domain("https://cluster.local/ns/x", "cluster.local"));
	assert_false(pl_spiffe_in_domain("spiffe:/", "cluster.local"));
	/* An empty trust domain matches nothing (it used to match "spiffe:///x"). */
	assert_false(pl_spiffe_in_domain("spiffe:///x", ""));
	assert_false(pl_spiffe_in_domain("", "cluster.local"));
	assert_false(pl_spiffe_in_domain("cluster.local/ns/x", "cluster.local"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_creds_good),
		cmocka_unit_test(test_creds_validity_uses_now_argument),
		cmocka_unit_test(test_creds_refused),
		cmocka_unit_test(test_handshake_and_data),
		cmocka_unit_test(test_alpn_negotiated),
		cmocka_unit_test(test_tls12_refused),
		cmocka_unit_test(test_write_to_closed_peer),
		cmocka_unit_test(test_client_from_another_ca),
		cmocka_unit_test(test_server_from_another_ca),
		cmocka_unit_test(test_peer_closes_during_handshake),
		cmocka_unit_test(test_client_sees_reset_or_eof),
		cmocka_unit_test(test_spiffe_in_domain),
	};
	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
