/* Unit tests for lib/pki/ca: root generation and loading, SPIFFE leaves checked by OpenSSL and by pl_tls, bundles, renewal. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
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

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki/ca.h"
#include "pki/tls.h"

#define DAY 86400L
#define TD "cluster.local"
#define ID_A "spiffe://" TD "/ns/shop/sa/web"
#define ID_B "spiffe://" TD "/ns/shop/sa/api"

static int64_t NOW;

/* ---------- OpenSSL helpers for building and inspecting test PKI ---------- */

typedef struct pem {
	char *s;
	size_t len;
} pem;

static pem pem_of(char *s) { return (pem){s, s ? strlen(s) : 0}; }

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

/* PEM of up to three certificates (NULLs skipped). */
static pem pem_certs(X509 *a, X509 *b, X509 *c)
{
	BIO *bio = BIO_new(BIO_s_mem());
	X509 *all[] = {a, b, c};

	for (int i = 0; i < 3; i++)
		if (all[i])
			assert_int_equal(PEM_write_bio_X509(bio, all[i]), 1);
	return bio_take(bio);
}

static pem pem_key(EVP_PKEY *k)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
	return bio_take(bio);
}

/* Every certificate of a PEM string; the caller frees with sk_X509_pop_free. */
static STACK_OF(X509) *parse_all(const char *s)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *bio = BIO_new_mem_buf(s, -1);
	X509 *x;

	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(bio);
	return sk;
}

static X509 *parse_one(const char *s)
{
	STACK_OF(X509) *sk = parse_all(s);
	assert_true(sk_X509_num(sk) >= 1);
	X509 *x = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	return x;
}

static int count_certs(const char *s)
{
	STACK_OF(X509) *sk = parse_all(s);
	int n = sk_X509_num(sk);
	sk_X509_pop_free(sk, X509_free);
	return n;
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
 * A certificate for key signed by issuer_key (self-signed when issuer is NULL), valid
 * from NOW+nb_off to NOW+na_off. bc, ku, eku: extension values or NULL for none.
 */
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn, long nb_off, long na_off,
		       const char *bc, const char *ku, const char *eku, const char *san)
{
	static long serial = 1000;
	X509 *c = X509_new();

	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
	ASN1_TIME_set(X509_getm_notBefore(c), (time_t)(NOW + nb_off));
	ASN1_TIME_set(X509_getm_notAfter(c), (time_t)(NOW + na_off));
	X509_set_pubkey(c, key);
	X509_NAME *name = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
	X509 *iss = issuer ? issuer : c;
	add_ext(c, iss, NID_subject_key_identifier, "hash");
	add_ext(c, iss, NID_authority_key_identifier, "keyid:always");
	if (bc)
		add_ext(c, iss, NID_basic_constraints, bc);
	if (ku)
		add_ext(c, iss, NID_key_usage, ku);
	if (eku)
		add_ext(c, iss, NID_ext_key_usage, eku);
	if (san)
		add_ext(c, iss, NID_subject_alt_name, san);
	const EVP_MD *md = EVP_PKEY_get_base_id(issuer_key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
	assert_true(X509_sign(c, issuer_key, md) > 0);
	return c;
}

static X509 *make_root(EVP_PKEY *key, const char *cn, long nb_off, long na_off)
{
	return make_cert(key, NULL, key, cn, nb_off, na_off, "critical,CA:TRUE", "critical,keyCertSign,cRLSign", NULL,
			 NULL);
}

static pl_ca *must_generate(int64_t now, int64_t ttl)
{
	char err[256] = "";
	pl_ca *ca = pl_ca_generate(TD, now, ttl, err, sizeof(err));

	if (!ca)
		fail_msg("pl_ca_generate: %s", err);
	return ca;
}

static void must_issue(const pl_ca *ca, const char *id, int64_t now, int64_t ttl, pl_issued *out)
{
	char err[256] = "";
	int r = pl_ca_issue(ca, id, now, ttl, out, err, sizeof(err));

	if (r)
		fail_msg("pl_ca_issue(%s): %d %s", id, r, err);
	assert_non_null(out->cert_pem);
	assert_non_null(out->key_pem);
}

static pem ca_bundle(const pl_ca *ca)
{
	char *b = NULL;

	assert_int_equal(pl_ca_bundle(ca, &b), 0);
	return pem_of(b);
}

/* X509_verify_cert of cert_pem's first certificate (the rest untrusted) against bundle, for a TLS purpose. */
static int verify_chain(const char *cert_pem, const char *bundle, int purpose, int64_t at, int *error)
{
	STACK_OF(X509) *chain = parse_all(cert_pem), *roots = parse_all(bundle);
	X509 *leaf = sk_X509_shift(chain);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *v = X509_STORE_CTX_new();

	for (int i = 0; i < sk_X509_num(roots); i++)
		X509_STORE_add_cert(store, sk_X509_value(roots, i));
	assert_int_equal(X509_STORE_CTX_init(v, store, leaf, chain), 1);
	X509_STORE_CTX_set_purpose(v, purpose);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(v), (time_t)at);
	int ok = X509_verify_cert(v);
	*error = X509_STORE_CTX_get_error(v);
	X509_STORE_CTX_free(v);
	X509_STORE_free(store);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(roots, X509_free);
	return ok;
}

static void expect_verifies(const char *cert_pem, const char *bundle)
{
	int purposes[] = {X509_PURPOSE_SSL_SERVER, X509_PURPOSE_SSL_CLIENT}, e;

	for (int i = 0; i < 2; i++)
		if (verify_chain(cert_pem, bundle, purposes[i], NOW, &e) != 1)
			fail_msg("X509_verify_cert (purpose %d): %s", purposes[i], X509_verify_cert_error_string(e));
}

static pl_tls_creds *must_creds(const pl_issued *is, const char *bundle)
{
	char err[512] = "";
	pl_tls_creds *c = pl_tls_creds_load(is->cert_pem, strlen(is->cert_pem), is->key_pem, strlen(is->key_pem), bundle,
					    strlen(bundle), NOW, err, sizeof(err));

	if (!c)
		fail_msg("pl_tls_creds_load refused an issued leaf: %s", err);
	return c;
}

/* ---------- a real mTLS handshake (as in test_tls.c) ---------- */

typedef struct side {
	pl_tls *t;
	int fd, rc;
	const char *reason;
	char err[256];
} side;

static void handshake_both(side *cl, side *sv)
{
	side *s[2] = {cl, sv};

	for (int i = 0; i < 2; i++)
		s[i]->rc = PL_IO_WANT_READ;
	for (int round = 0; round < 1000; round++) {
		struct pollfd pfd[2];
		int np = 0;
		for (int i = 0; i < 2; i++) {
			if (s[i]->rc != PL_IO_WANT_READ && s[i]->rc != PL_IO_WANT_WRITE)
				continue;
			s[i]->rc = pl_tls_handshake(s[i]->t, &s[i]->reason, s[i]->err, sizeof(s[i]->err));
			if (s[i]->rc == PL_IO_WANT_READ || s[i]->rc == PL_IO_WANT_WRITE)
				pfd[np++] = (struct pollfd){s[i]->fd, s[i]->rc == PL_IO_WANT_READ ? POLLIN : POLLOUT, 0};
		}
		if (!np)
			return;
		if (poll(pfd, (nfds_t)np, 2000) <= 0)
			fail_msg("handshake stuck");
	}
	fail_msg("handshake did not finish");
}

/* Client a, server b: both handshakes succeed and each sees the other's SPIFFE ID. */
static void expect_mtls(pl_tls_creds *a, const char *id_a, pl_tls_creds *b, const char *id_b)
{
	int fds[2];
	side cl = {0}, sv = {0};
	char id[PL_SPIFFE_ID_MAX + 1];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
	cl.fd = fds[0];
	sv.fd = fds[1];
	cl.t = pl_tls_client_new(a, cl.fd);
	sv.t = pl_tls_server_new(b, sv.fd);
	assert_non_null(cl.t);
	assert_non_null(sv.t);
	handshake_both(&cl, &sv);
	if (cl.rc != 0 || sv.rc != 0)
		fail_msg("client %d %s %s / server %d %s %s", cl.rc, cl.reason ? cl.reason : "", cl.err, sv.rc,
			 sv.reason ? sv.reason : "", sv.err);
	assert_true(pl_tls_peer_spiffe_id(cl.t, id, sizeof(id)));
	assert_string_equal(id, id_b);
	assert_true(pl_tls_peer_spiffe_id(sv.t, id, sizeof(id)));
	assert_string_equal(id, id_a);
	/* One byte each way through the session. */
	char c = 0;
	ssize_t w = pl_tls_write(cl.t, "x", 1);
	assert_int_equal(w, 1);
	for (int i = 0; i < 100; i++) {
		ssize_t r = pl_tls_read(sv.t, &c, 1);
		if (r == 1)
			break;
		assert_true(r == PL_IO_WANT_READ);
		struct pollfd p = {sv.fd, POLLIN, 0};
		assert_true(poll(&p, 1, 2000) > 0);
	}
	assert_int_equal(c, 'x');
	pl_tls_free(cl.t);
	pl_tls_free(sv.t);
	close(fds[0]);
	close(fds[1]);
}

/* ---------- generation, export, load ---------- */

static void test_generate_export_load(void **state)
{
	(void)state;
	pl_ca *ca = must_generate(NOW, 0);
	char *crt = NULL, *key = NULL, err[256] = "";

	assert_int_equal(pl_ca_not_before(ca), NOW - PL_CA_CLOCK_SKEW_S);
	assert_int_equal(pl_ca_not_after(ca), NOW + PL_CA_DEFAULT_TTL_S);
	assert_int_equal(pl_ca_export(ca, &crt, &key), 0);
	assert_int_equal(count_certs(crt), 1);
	assert_non_null(strstr(key, "-----BEGIN PRIVATE KEY-----"));

	/* What a root must look like. */
	X509 *x = parse_one(crt);
	uint32_t fl = X509_get_extension_flags(x);
	assert_true(fl & EXFLAG_CA);
	assert_true(fl & EXFLAG_SS);
	assert_int_equal(X509_get_pathlen(x), 0);
	assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	int crit = -1;
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
	assert_non_null(ku);
	assert_int_equal(crit, 1);
	ASN1_BIT_STRING_free(ku);
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(x), *akid = X509_get0_authority_key_id(x);
	assert_non_null(skid);
	assert_non_null(akid);
	assert_int_equal(ASN1_OCTET_STRING_cmp(skid, akid), 0);
	char cn[128];
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "pillion mesh CA " TD);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_organizationName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "pillion");
	EVP_PKEY *pub = X509_get0_pubkey(x);
	assert_int_equal(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(pub), 256);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	assert_false(BN_is_negative(sn));
	assert_true(BN_num_bits(sn) <= 128 && BN_num_bits(sn) > 64);
	BN_free(sn);
	X509_free(x);

	/* Round trip: the exported Secret loads back (no ca.crt: the root is its own bundle) and issues. */
	pl_ca *back = pl_ca_load(crt, strlen(crt), key, strlen(key), NULL, 0, NOW, err, sizeof(err));
	if (!back)
		fail_msg("pl_ca_load of an exported CA: %s", err);
	assert_int_equal(pl_ca_not_after(back), pl_ca_not_after(ca));
	pem b1 = ca_bundle(ca), b2 = ca_bundle(back);
	assert_string_equal(b1.s, b2.s);
	assert_string_equal(b1.s, crt);
	char *crt2 = NULL, *key2 = NULL;
	assert_int_equal(pl_ca_export(back, &crt2, &key2), 0);
	assert_string_equal(crt2, crt);
	pl_issued is;
	must_issue(back, ID_A, NOW, DAY, &is);
	/* Leaves of a root CA carry no chain, and they verify against the original's bundle. */
	assert_int_equal(count_certs(is.cert_pem), 1);
	expect_verifies(is.cert_pem, b1.s);
	assert_true(pl_cert_signed_by(is.cert_pem, strlen(is.cert_pem), b1.s, b1.len, NOW));
	/* Also with the bundle given explicitly. */
	pl_ca *again = pl_ca_load(crt, strlen(crt), key, strlen(key), b1.s, b1.len, NOW, err, sizeof(err));
	if (!again)
		fail_msg("pl_ca_load with ca.crt: %s", err);

	pl_issued_clear(&is);
	assert_null(is.cert_pem);
	pl_ca_free(again);
	pl_ca_free(back);
	pl_ca_free(ca);
	free(b1.s);
	free(b2.s);
	free(crt);
	free(crt2);
	pl_pem_secret_free(key);
	pl_pem_secret_free(key2);
	pl_ca_free(NULL);
	pl_issued_clear(NULL);
	pl_pem_secret_free(NULL);
}

static void test_generate_refuses(void **state)
{
	(void)state;
	const char *bad[] = {"", "Cluster.local", "cluster.local/x", "cluster local", "a:1", NULL};
	char err[256], longtd[300];

	for (int i = 0; bad[i]; i++) {
		err[0] = '\0';
		pl_ca *ca = pl_ca_generate(bad[i], NOW, 0, err, sizeof(err));
		if (ca)
			fail_msg("trust domain \"%s\" accepted", bad[i]);
		assert_non_null(strstr(err, "trust domain"));
	}
	assert_null(pl_ca_generate(NULL, NOW, 0, err, sizeof(err)));
	memset(longtd, 'a', 256);
	longtd[256] = '\0';
	assert_null(pl_ca_generate(longtd, NOW, 0, err, sizeof(err)));
	assert_null(pl_ca_generate(TD, NOW, PL_CA_MAX_TTL_S + 1, err, sizeof(err)));
	assert_non_null(strstr(err, "out of range"));
	/* A 255-byte trust domain is fine; the CN is cut to 64 bytes. */
	longtd[255] = '\0';
	pl_ca *ca = pl_ca_generate(longtd, NOW, DAY, err, sizeof(err));
	if (!ca)
		fail_msg("255-byte trust domain: %s", err);
	pem b = ca_bundle(ca);
	X509 *x = parse_one(b.s);
	char cn[128];
	assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)), 64);
	assert_int_equal(pl_ca_not_after(ca), NOW + DAY);
	X509_free(x);
	free(b.s);
	pl_ca_free(ca);
}

/* ---------- leaves ---------- */

static void test_issued_leaf(void **state)
{
	(void)state;
	pl_ca *ca = must_generate(NOW, 0);
	pem bundle = ca_bundle(ca);
	pl_issued is;

	must_issue(ca, ID_A, NOW, DAY, &is);
	expect_verifies(is.cert_pem, bundle.s);

	X509 *x = parse_one(is.cert_pem), *root = parse_one(bundle.s);
	assert_int_equal(X509_get_version(x), 2);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(root)), 0);
	uint32_t fl = X509_get_extension_flags(x);
	assert_false(fl & EXFLAG_CA);
	assert_true(fl & EXFLAG_BCONS);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	int crit = -1;
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_int_equal(crit, 1);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
	assert_int_equal(crit, 1);
	ASN1_BIT_STRING_free(ku);
	GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	assert_int_equal(crit, 1);
	assert_int_equal(sk_GENERAL_NAME_num(san), 1);
	const GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, 0);
	assert_int_equal(gn->type, GEN_URI);
	assert_int_equal(ASN1_STRING_length(gn->d.uniformResourceIdentifier), strlen(ID_A));
	assert_memory_equal(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), ID_A, strlen(ID_A));
	GENERAL_NAMES_free(san);
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x), X509_get0_subject_key_id(root)), 0);
	EVP_PKEY *pub = X509_get0_pubkey(x);
	assert_int_equal(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(pub), 256);
	/* The leaf's key is not the CA's. */
	assert_int_not_equal(EVP_PKEY_eq(pub, X509_get0_pubkey(root)), 1);
	X509_free(x);
	X509_free(root);

	/* The proxy's own loader accepts it with the right identity. */
	pl_tls_creds *c = must_creds(&is, bundle.s);
	assert_string_equal(pl_tls_creds_spiffe_id(c), ID_A);
	assert_int_equal(pl_tls_creds_not_after(c), is.not_after);
	pl_tls_creds_unref(c);

	/* Key matching and inspection. */
	pl_issued other;
	must_issue(ca, ID_B, NOW, DAY, &other);
	assert_true(pl_cert_key_matches(is.cert_pem, strlen(is.cert_pem), is.key_pem, strlen(is.key_pem)));
	assert_false(pl_cert_key_matches(is.cert_pem, strlen(is.cert_pem), other.key_pem, strlen(other.key_pem)));
	assert_false(pl_cert_key_matches(is.cert_pem, strlen(is.cert_pem), "junk", 4));
	assert_false(pl_cert_key_matches("", 0, is.key_pem, strlen(is.key_pem)));
	int64_t nb, na;
	char id[PL_SPIFFE_ID_MAX + 1];
	assert_int_equal(pl_cert_times(other.cert_pem, strlen(other.cert_pem), &nb, &na, id, sizeof(id)), 0);
	assert_int_equal(nb, other.not_before);
	assert_int_equal(na, other.not_after);
	assert_string_equal(id, ID_B);
	/* Too small a buffer: no ID rather than a cut one. */
	assert_int_equal(pl_cert_times(other.cert_pem, strlen(other.cert_pem), &nb, &na, id, 10), 0);
	assert_string_equal(id, "");
	assert_int_equal(pl_cert_times(other.cert_pem, strlen(other.cert_pem), &nb, &na, NULL, 0), 0);
	assert_int_equal(pl_cert_times("nothing", 7, &nb, &na, id, sizeof(id)), -EINVAL);
	assert_int_equal(pl_cert_times(bundle.s, bundle.len, &nb, &na, id, sizeof(id)), 0);
	assert_string_equal(id, "");

	pl_issued_clear(&is);
	pl_issued_clear(&other);
	free(bundle.s);
	pl_ca_free(ca);
}

/* An admission webhook's serving certificate: DNS SANs, serverAuth only, verified as a TLS server by OpenSSL. */
static void test_server_leaf(void **state)
{
	(void)state;
	static const char *const names[] = {"pillion-webhook.pillion-system.svc",
					    "pillion-webhook.pillion-system.svc.cluster.local", "pillion-webhook.pillion-system",
					    "pillion-webhook"};
	pl_ca *ca = must_generate(NOW, 0);
	pem bundle = ca_bundle(ca);
	pl_issued is;
	char err[256] = "";
	int e;

	int r = pl_ca_issue_server(ca, names, 4, NOW, 90 * DAY, &is, err, sizeof(err));
	if (r)
		fail_msg("pl_ca_issue_server: %d %s", r, err);
	assert_false(is.clamped);
	assert_int_equal(is.not_after, NOW + 90 * DAY);
	assert_int_equal(is.not_before, NOW - PL_CA_CLOCK_SKEW_S);
	/* A TLS server, not a client. */
	assert_int_equal(verify_chain(is.cert_pem, bundle.s, X509_PURPOSE_SSL_SERVER, NOW, &e), 1);
	assert_int_not_equal(verify_chain(is.cert_pem, bundle.s, X509_PURPOSE_SSL_CLIENT, NOW, &e), 1);
	assert_true(pl_cert_signed_by(is.cert_pem, strlen(is.cert_pem), bundle.s, bundle.len, NOW));
	assert_true(pl_cert_key_matches(is.cert_pem, strlen(is.cert_pem), is.key_pem, strlen(is.key_pem)));

	X509 *x = parse_one(is.cert_pem), *root = parse_one(bundle.s);
	assert_int_equal(X509_check_host(x, names[0], 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "pillion-webhook", 0, 0, NULL), 1);
	assert_int_not_equal(X509_check_host(x, "other.pillion-system.svc", 0, 0, NULL), 1);
	char cn[128] = "";
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, names[0]);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
	assert_false(X509_get_extension_flags(x) & EXFLAG_CA);
	int crit = -1;
	GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	assert_int_equal(crit, 0);
	assert_int_equal(sk_GENERAL_NAME_num(san), 4);
	for (int i = 0; i < 4; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, i);
		assert_int_equal(gn->type, GEN_DNS);
		assert_int_equal(ASN1_STRING_length(gn->d.dNSName), strlen(names[i]));
		assert_memory_equal(ASN1_STRING_get0_data(gn->d.dNSName), names[i], strlen(names[i]));
	}
	GENERAL_NAMES_free(san);
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x), X509_get0_subject_key_id(root)), 0);
	X509_free(x);
	X509_free(root);

	/* The names it was issued for, in any order; not a subset, a superset or other names. */
	const char *const reordered[] = {names[3], names[1], names[0], names[2]};
	const char *const fewer[] = {names[0], names[1], names[2]};
	const char *const other[] = {names[0], names[1], names[2], "pillion-webhook.elsewhere.svc"};
	size_t len = strlen(is.cert_pem);
	assert_true(pl_cert_dns_names_match(is.cert_pem, len, names, 4));
	assert_true(pl_cert_dns_names_match(is.cert_pem, len, reordered, 4));
	assert_false(pl_cert_dns_names_match(is.cert_pem, len, fewer, 3));
	assert_false(pl_cert_dns_names_match(is.cert_pem, len, other, 4));
	assert_false(pl_cert_dns_names_match("junk", 4, names, 4));
	/* A SPIFFE leaf has no DNS names; a client-only certificate would not serve either. */
	pl_issued spiffe;
	must_issue(ca, ID_A, NOW, DAY, &spiffe);
	assert_false(pl_cert_dns_names_match(spiffe.cert_pem, strlen(spiffe.cert_pem), names, 4));
	pl_issued_clear(&spiffe);

	/* Refusals: no names, too many, bad names, duplicates, bad ttl, an expired CA. */
	pl_issued bad;
	const char *const upper[] = {"Pillion-Webhook"}, *const wild[] = {"*.pillion-system.svc"},
			  *const dash[] = {"-x.svc"}, *const empty_label[] = {"a..b"}, *const dup[] = {"a.b", "a.b"},
			  *const ip[] = {"10.0.0.1:443"};
	const char *many[PL_DNS_NAMES_MAX + 1];
	char buf[PL_DNS_NAMES_MAX + 1][8];
	for (int i = 0; i <= PL_DNS_NAMES_MAX; i++) {
		snprintf(buf[i], sizeof(buf[i]), "n%d", i);
		many[i] = buf[i];
	}
	assert_int_equal(pl_ca_issue_server(ca, names, 0, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_int_equal(pl_ca_issue_server(ca, NULL, 1, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_int_equal(pl_ca_issue_server(ca, many, PL_DNS_NAMES_MAX + 1, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_int_equal(pl_ca_issue_server(ca, many, PL_DNS_NAMES_MAX, NOW, DAY, &bad, err, sizeof(err)), 0);
	pl_issued_clear(&bad);
	assert_int_equal(pl_ca_issue_server(ca, upper, 1, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "Pillion-Webhook"));
	assert_int_equal(pl_ca_issue_server(ca, wild, 1, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_int_equal(pl_ca_issue_server(ca, dash, 1, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_int_equal(pl_ca_issue_server(ca, empty_label, 1, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_int_equal(pl_ca_issue_server(ca, ip, 1, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_int_equal(pl_ca_issue_server(ca, dup, 2, NOW, DAY, &bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(pl_ca_issue_server(ca, names, 4, NOW, 0, &bad, err, sizeof(err)), -EINVAL);
	assert_null(bad.cert_pem);
	assert_int_equal(pl_ca_issue_server(ca, names, 4, pl_ca_not_after(ca), DAY, &bad, err, sizeof(err)), -EKEYEXPIRED);
	/* Clamped to the CA's notAfter like a SPIFFE leaf. */
	assert_int_equal(pl_ca_issue_server(ca, names, 4, pl_ca_not_after(ca) - DAY, 90 * DAY, &bad, err, sizeof(err)), 0);
	assert_true(bad.clamped);
	assert_int_equal(bad.not_after, pl_ca_not_after(ca));
	pl_issued_clear(&bad);

	pl_issued_clear(&is);
	free(bundle.s);
	pl_ca_free(ca);
}

static void test_ttl_and_clamping(void **state)
{
	(void)state;
	pl_ca *ca = must_generate(NOW, DAY); /* valid NOW-300 .. NOW+DAY */
	pem bundle = ca_bundle(ca);
	pl_issued is;
	char err[256];

	must_issue(ca, ID_A, NOW, 3600, &is);
	assert_int_equal(is.not_before, NOW - PL_CA_CLOCK_SKEW_S);
	assert_int_equal(is.not_after, NOW + 3600);
	assert_false(is.clamped);
	/* The certificate says what out says. */
	int64_t nb, na;
	assert_int_equal(pl_cert_times(is.cert_pem, strlen(is.cert_pem), &nb, &na, NULL, 0), 0);
	assert_int_equal(nb, NOW - PL_CA_CLOCK_SKEW_S);
	assert_int_equal(na, NOW + 3600);
	/* Accepted right away by a peer whose clock is behind by a few minutes. */
	pl_tls_creds *c = pl_tls_creds_load(is.cert_pem, strlen(is.cert_pem), is.key_pem, strlen(is.key_pem), bundle.s,
					    bundle.len, NOW - 200, err, sizeof(err));
	if (!c)
		fail_msg("refused 200 s before now: %s", err);
	pl_tls_creds_unref(c);
	pl_issued_clear(&is);

	/* Asked to outlive the CA: cut to the CA's notAfter, and flagged. */
	must_issue(ca, ID_A, NOW, 2 * DAY, &is);
	assert_int_equal(is.not_after, NOW + DAY);
	assert_int_equal(is.not_after, pl_ca_not_after(ca));
	assert_true(is.clamped);
	expect_verifies(is.cert_pem, bundle.s);
	pl_issued_clear(&is);
	/* Exactly up to the CA's end is not a clamp. */
	must_issue(ca, ID_A, NOW, DAY, &is);
	assert_false(is.clamped);
	assert_int_equal(is.not_after, NOW + DAY);
	pl_issued_clear(&is);

	/* Early in the CA's life the backdating stops at the CA's notBefore. */
	must_issue(ca, ID_A, NOW - 200, 3600, &is);
	assert_int_equal(is.not_before, pl_ca_not_before(ca));
	assert_int_equal(is.not_after, NOW - 200 + 3600);
	pl_issued_clear(&is);

	/* Outside the CA's life: refused. */
	assert_int_equal(pl_ca_issue(ca, ID_A, NOW + DAY, 3600, &is, err, sizeof(err)), -EKEYEXPIRED);
	assert_non_null(strstr(err, "expired"));
	assert_null(is.cert_pem);
	assert_int_equal(pl_ca_issue(ca, ID_A, NOW - 301, 3600, &is, err, sizeof(err)), -EKEYEXPIRED);
	assert_non_null(strstr(err, "not yet valid"));
	/* One second before the end still works, for one second. */
	must_issue(ca, ID_A, NOW + DAY - 1, 3600, &is);
	assert_int_equal(is.not_after, NOW + DAY);
	assert_true(is.clamped);
	pl_issued_clear(&is);
	/* Bad TTLs. */
	assert_int_equal(pl_ca_issue(ca, ID_A, NOW, 0, &is, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ttl"));
	assert_int_equal(pl_ca_issue(ca, ID_A, NOW, -5, &is, err, sizeof(err)), -EINVAL);
	assert_int_equal(pl_ca_issue(ca, ID_A, NOW, PL_CA_MAX_TTL_S + 1, &is, err, sizeof(err)), -EINVAL);
	assert_null(is.cert_pem);
	assert_null(is.key_pem);
	free(bundle.s);
	pl_ca_free(ca);
}

static void test_spiffe_ids(void **state)
{
	(void)state;
	static const struct {
		const char *id, *why;
	} bad[] = {
		{"", "empty"},
		{"http://cluster.local/ns/x", "spiffe://"},
		{"SPIFFE://cluster.local/ns/x", "spiffe://"},
		{"spiffe:/cluster.local/x", "spiffe://"},
		{"spiffe://", "trust domain empty"},
		{"spiffe:///ns/x", "trust domain empty"},
		{"spiffe://cluster.local", "no workload path"},
		{"spiffe://cluster.local/", "no workload path"},
		{"spiffe://Cluster.local/ns/x", "lowercase"},
		{"spiffe://cluster.local:8443/ns/x", "port"},
		{"spiffe://user@cluster.local/ns/x", "user info"},
		{"spiffe://cluster.local/ns//sa", "empty path segment"},
		{"spiffe://cluster.local/ns/x/", "trailing"},
		{"spiffe://cluster.local/ns/x?y=1", "query"},
		{"spiffe://cluster.local/ns/x#frag", "fragment"},
		{"spiffe://cluster.local/n%41s", "percent"},
		{"spiffe://cluster.local/./x", "\".\""},
		{"spiffe://cluster.local/a/..", "\"..\""},
		{"spiffe://cluster.local/a b", "' '"},
		{"spiffe://cluster.local/a\n", "0x0a"},
		{"spiffe://cluster.local/a,URI:spiffe://evil/x", "','"},
		{"spiffe://cluster.local/caf\xc3\xa9", "0xc3"},
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (pl_spiffe_id_check(bad[i].id, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i].id);
		if (!strstr(err, bad[i].why))
			fail_msg("\"%s\": error \"%s\" does not say \"%s\"", bad[i].id, err, bad[i].why);
	}
	assert_int_equal(pl_spiffe_id_check(NULL, err, sizeof(err)), -EINVAL);
	const char *good[] = {ID_A, "spiffe://a/b", "spiffe://my-td_1.example/ns/x/sa/A_b-c.d", "spiffe://td/..a/.b.", NULL};
	for (int i = 0; good[i]; i++)
		if (pl_spiffe_id_check(good[i], err, sizeof(err)) != 0)
			fail_msg("\"%s\" refused: %s", good[i], err);

	/* Lengths: 2048 bytes in all is the limit; the trust domain at most 255. */
	char id[PL_SPIFFE_ID_MAX + 2];
	memset(id, 'a', sizeof(id));
	memcpy(id, "spiffe://td/", 12);
	id[PL_SPIFFE_ID_MAX] = '\0';
	assert_int_equal(pl_spiffe_id_check(id, err, sizeof(err)), 0);
	id[PL_SPIFFE_ID_MAX] = 'a';
	id[PL_SPIFFE_ID_MAX + 1] = '\0';
	assert_int_equal(pl_spiffe_id_check(id, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "2048"));
	memset(id, 'a', sizeof(id));
	memcpy(id, "spiffe://", 9);
	memcpy(id + 9 + 256, "/x", 3);
	assert_int_equal(pl_spiffe_id_check(id, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "255"));
	memcpy(id + 9 + 255, "/x", 3);
	assert_int_equal(pl_spiffe_id_check(id, err, sizeof(err)), 0);

	/* pl_ca_issue refuses them too, and hands back nothing. */
	pl_ca *ca = must_generate(NOW, DAY);
	pl_issued is;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pl_ca_issue(ca, bad[i].id, NOW, DAY, &is, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "SPIFFE ID"));
		assert_null(is.cert_pem);
		assert_null(is.key_pem);
	}
	/* The longest ID fits in a certificate and comes back whole. */
	memset(id, 'a', sizeof(id));
	memcpy(id, "spiffe://td/", 12);
	id[PL_SPIFFE_ID_MAX] = '\0';
	must_issue(ca, id, NOW, DAY, &is);
	char back[PL_SPIFFE_ID_MAX + 1];
	int64_t nb, na;
	assert_int_equal(pl_cert_times(is.cert_pem, strlen(is.cert_pem), &nb, &na, back, sizeof(back)), 0);
	assert_string_equal(back, id);
	pl_issued_clear(&is);
	pl_ca_free(ca);
}

static void test_serials_and_keys_differ(void **state)
{
	(void)state;
	pl_ca *ca = must_generate(NOW, DAY);
	pl_issued a, b;
	int maxbits = 0;

	must_issue(ca, ID_A, NOW, DAY, &a);
	must_issue(ca, ID_A, NOW, DAY, &b);
	X509 *xa = parse_one(a.cert_pem), *xb = parse_one(b.cert_pem);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(xa), X509_get0_serialNumber(xb)), 0);
	assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(xa), X509_get0_pubkey(xb)), 1);
	assert_string_not_equal(a.key_pem, b.key_pem);
	/* Same ID, same times: the certificates still differ. */
	assert_string_not_equal(a.cert_pem, b.cert_pem);
	X509_free(xa);
	X509_free(xb);
	pl_issued_clear(&a);
	pl_issued_clear(&b);

	/* 128 random bits: positive, never more than 128 bits, and over 32 draws some use the top byte. */
	for (int i = 0; i < 32; i++) {
		must_issue(ca, ID_A, NOW, DAY, &a);
		X509 *x = parse_one(a.cert_pem);
		BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		assert_false(BN_is_negative(sn));
		assert_false(BN_is_zero(sn));
		assert_true(BN_num_bits(sn) <= 128);
		if (BN_num_bits(sn) > maxbits)
			maxbits = BN_num_bits(sn);
		BN_free(sn);
		X509_free(x);
		pl_issued_clear(&a);
	}
	assert_true(maxbits > 120);
	pl_ca_free(ca);
}

/* ---------- a user-supplied CA: intermediates, key types, refusals ---------- */

typedef struct user_ca {
	EVP_PKEY *root_key, *int_key;
	X509 *root, *inter;
	pem root_pem, int_pem, int_and_root, int_key_pem;
} user_ca;

static void user_ca_make(user_ca *u, EVP_PKEY *int_key)
{
	u->root_key = EVP_EC_gen("P-256");
	u->int_key = int_key;
	u->root = make_root(u->root_key, "offline root", -DAY, 3650 * DAY);
	u->inter = make_cert(int_key, u->root, u->root_key, "mesh intermediate", -3600, 365 * DAY,
			     "critical,CA:TRUE,pathlen:0", "critical,keyCertSign,cRLSign", NULL, NULL);
	u->root_pem = pem_certs(u->root, NULL, NULL);
	u->int_pem = pem_certs(u->inter, NULL, NULL);
	u->int_and_root = pem_certs(u->inter, u->root, NULL);
	u->int_key_pem = pem_key(int_key);
}

static void user_ca_free(user_ca *u)
{
	EVP_PKEY_free(u->root_key);
	EVP_PKEY_free(u->int_key);
	X509_free(u->root);
	X509_free(u->inter);
	free(u->root_pem.s);
	free(u->int_pem.s);
	free(u->int_and_root.s);
	free(u->int_key_pem.s);
}

static pl_ca *load_user(const pem *crt, const pem *key, const pem *bundle, char *err, size_t errlen)
{
	err[0] = '\0';
	return pl_ca_load(crt->s, crt->len, key->s, key->len, bundle ? bundle->s : NULL, bundle ? bundle->len : 0, NOW,
			  err, errlen);
}

/* An intermediate issues leaves whose tls.crt carries it, and whose chain verifies to the root alone. */
static void check_intermediate(EVP_PKEY *int_key, int want_sig_nid)
{
	user_ca u;
	char err[512];

	user_ca_make(&u, int_key);
	/* cert-manager's layout: tls.crt = the CA then its issuers, ca.crt = the root. */
	pl_ca *ca = load_user(&u.int_and_root, &u.int_key_pem, &u.root_pem, err, sizeof(err));
	if (!ca)
		fail_msg("pl_ca_load of an intermediate: %s", err);
	pem bundle = ca_bundle(ca);
	assert_string_equal(bundle.s, u.root_pem.s);
	pl_issued a, b;
	must_issue(ca, ID_A, NOW, DAY, &a);
	must_issue(ca, ID_B, NOW, DAY, &b);
	/* leaf + intermediate; the root stays out of tls.crt. */
	STACK_OF(X509) *chain = parse_all(a.cert_pem);
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), u.inter), 0);
	assert_int_equal(X509_get_signature_nid(sk_X509_value(chain, 0)), want_sig_nid);
	sk_X509_pop_free(chain, X509_free);
	expect_verifies(a.cert_pem, u.root_pem.s);
	assert_true(pl_cert_signed_by(a.cert_pem, strlen(a.cert_pem), u.root_pem.s, u.root_pem.len, NOW));
	/* Without the intermediate the leaf does not reach the root. */
	char *leaf_only = strndup(a.cert_pem, (size_t)(strstr(a.cert_pem, "-----END CERTIFICATE-----") - a.cert_pem) + 26);
	assert_false(pl_cert_signed_by(leaf_only, strlen(leaf_only), u.root_pem.s, u.root_pem.len, NOW));
	free(leaf_only);
	/* The proxies accept the leaves and complete mTLS with the intermediate sent on the wire. */
	pl_tls_creds *ca_ = must_creds(&a, u.root_pem.s), *cb = must_creds(&b, u.root_pem.s);
	expect_mtls(ca_, ID_A, cb, ID_B);
	pl_tls_creds_unref(ca_);
	pl_tls_creds_unref(cb);
	/* Leaves are clamped to the intermediate's life, not the root's. */
	pl_issued c;
	must_issue(ca, ID_A, NOW, 400 * DAY, &c);
	assert_true(c.clamped);
	assert_int_equal(c.not_after, NOW + 365 * DAY);
	pl_issued_clear(&c);

	/* Export keeps tls.crt as given. */
	char *crt = NULL, *key = NULL;
	assert_int_equal(pl_ca_export(ca, &crt, &key), 0);
	assert_string_equal(crt, u.int_and_root.s);
	assert_true(pl_cert_key_matches(u.int_pem.s, u.int_pem.len, key, strlen(key)));
	free(crt);
	pl_pem_secret_free(key);
	pl_ca_free(ca);

	/* No ca.crt: the self-signed root at the end of tls.crt is the bundle. */
	ca = load_user(&u.int_and_root, &u.int_key_pem, NULL, err, sizeof(err));
	if (!ca)
		fail_msg("intermediate + root in tls.crt, no ca.crt: %s", err);
	pem b2 = ca_bundle(ca);
	assert_string_equal(b2.s, u.root_pem.s);
	free(b2.s);
	pl_ca_free(ca);
	/* Only the intermediate and no ca.crt: nothing to trust. */
	assert_null(load_user(&u.int_pem, &u.int_key_pem, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "ca.crt: needed"));
	/* Intermediate alone in tls.crt, root in ca.crt: fine. */
	ca = load_user(&u.int_pem, &u.int_key_pem, &u.root_pem, err, sizeof(err));
	if (!ca)
		fail_msg("intermediate with ca.crt: %s", err);
	pl_ca_free(ca);

	pl_issued_clear(&a);
	pl_issued_clear(&b);
	free(bundle.s);
	user_ca_free(&u);
}

static void test_intermediate_p256(void **state)
{
	(void)state;
	check_intermediate(EVP_EC_gen("P-256"), NID_ecdsa_with_SHA256);
}

static void test_intermediate_p384(void **state)
{
	(void)state;
	check_intermediate(EVP_EC_gen("P-384"), NID_ecdsa_with_SHA384);
}

static void test_intermediate_rsa(void **state)
{
	(void)state;
	check_intermediate(EVP_RSA_gen(2048), NID_sha256WithRSAEncryption);
}

static void expect_load_refused(const pem *crt, const pem *key, const pem *bundle, const char *file, const char *problem)
{
	char err[512];
	pl_ca *ca = load_user(crt, key, bundle, err, sizeof(err));

	if (ca) {
		pl_ca_free(ca);
		fail_msg("accepted; wanted a refusal naming %s and \"%s\"", file, problem);
	}
	if (!strstr(err, file) || !strstr(err, problem))
		fail_msg("error \"%s\" does not name %s and \"%s\"", err, file, problem);
}

static void test_load_refusals(void **state)
{
	(void)state;
	user_ca u;
	EVP_PKEY *other = EVP_EC_gen("P-256"), *small = EVP_RSA_gen(1024), *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *p521 = EVP_EC_gen("P-521");

	user_ca_make(&u, EVP_EC_gen("P-256"));
	pem other_key = pem_key(other), empty = {"", 0};
	/* A leaf (CA:FALSE) with its own key. */
	X509 *leaf = make_cert(other, u.root, u.root_key, "leaf", -60, DAY, "critical,CA:FALSE", "critical,digitalSignature",
			       "serverAuth,clientAuth", "URI:" ID_A);
	pem leaf_pem = pem_certs(leaf, u.root, NULL);
	/* No basicConstraints at all. */
	X509 *nobc = make_cert(other, u.root, u.root_key, "nobc", -60, DAY, NULL, NULL, NULL, NULL);
	pem nobc_pem = pem_certs(nobc, NULL, NULL);
	/* CA:TRUE but keyUsage without keyCertSign. */
	X509 *noks = make_cert(other, u.root, u.root_key, "noks", -60, DAY, "critical,CA:TRUE", "critical,digitalSignature,cRLSign",
			       NULL, NULL);
	pem noks_pem = pem_certs(noks, NULL, NULL);
	/* CA:TRUE limited to code signing. */
	X509 *eku = make_cert(other, u.root, u.root_key, "eku", -60, DAY, "critical,CA:TRUE", "critical,keyCertSign", "codeSigning",
			      NULL);
	pem eku_pem = pem_certs(eku, NULL, NULL);
	/* Expired and future intermediates. */
	X509 *old = make_cert(other, u.root, u.root_key, "old", -2 * DAY, -1, "critical,CA:TRUE", "critical,keyCertSign", NULL, NULL);
	pem old_pem = pem_certs(old, NULL, NULL);
	X509 *future = make_cert(other, u.root, u.root_key, "future", 3600, DAY, "critical,CA:TRUE", "critical,keyCertSign", NULL,
				 NULL);
	pem future_pem = pem_certs(future, NULL, NULL);
	/* A CA with no keyUsage at all (what `openssl req -x509` makes by default): accepted. */
	X509 *noku = make_cert(other, u.root, u.root_key, "noku", -60, DAY, "critical,CA:TRUE", NULL, NULL, NULL);
	pem noku_pem = pem_certs(noku, NULL, NULL);
	/* Unsupported CA keys: short RSA, Ed25519, P-521 (self-signed roots). */
	X509 *rsa_root = make_root(small, "rsa1024", -60, DAY), *ed_root = make_root(ed, "ed", -60, DAY),
	     *p521_root = make_root(p521, "p521", -60, DAY);
	pem rsa_pem = pem_certs(rsa_root, NULL, NULL), rsa_key = pem_key(small);
	pem ed_pem = pem_certs(ed_root, NULL, NULL), ed_key = pem_key(ed);
	pem p521_pem = pem_certs(p521_root, NULL, NULL), p521_key = pem_key(p521);
	/* Another root, for ca.crt that does not hold ours. */
	EVP_PKEY *k2 = EVP_EC_gen("P-256");
	X509 *root2 = make_root(k2, "offline root", -DAY, DAY); /* same name, other key */
	pem root2_pem = pem_certs(root2, NULL, NULL);
	pem junk = pem_of(strdup("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"));

	expect_load_refused(&leaf_pem, &other_key, &u.root_pem, "tls.crt", "not a CA certificate");
	expect_load_refused(&nobc_pem, &other_key, &u.root_pem, "tls.crt", "not a CA certificate");
	expect_load_refused(&noks_pem, &other_key, &u.root_pem, "tls.crt", "keyCertSign");
	expect_load_refused(&eku_pem, &other_key, &u.root_pem, "tls.crt", "extendedKeyUsage");
	expect_load_refused(&u.int_pem, &other_key, &u.root_pem, "tls.key", "does not match");
	expect_load_refused(&u.int_and_root, &u.int_and_root, &u.root_pem, "tls.key", "no PEM private key");
	expect_load_refused(&u.int_pem, &empty, &u.root_pem, "tls.key", "no PEM private key");
	expect_load_refused(&empty, &u.int_key_pem, &u.root_pem, "tls.crt", "no PEM certificate");
	expect_load_refused(&u.int_key_pem, &u.int_key_pem, &u.root_pem, "tls.crt", "no PEM certificate");
	expect_load_refused(&junk, &u.int_key_pem, &u.root_pem, "tls.crt", "does not parse");
	expect_load_refused(&u.int_pem, &u.int_key_pem, &junk, "ca.crt", "does not parse");
	expect_load_refused(&old_pem, &other_key, &u.root_pem, "tls.crt", "expired");
	expect_load_refused(&future_pem, &other_key, &u.root_pem, "tls.crt", "not valid for another");
	expect_load_refused(&rsa_pem, &rsa_key, NULL, "tls.key", "1024 bits is too short");
	expect_load_refused(&ed_pem, &ed_key, NULL, "tls.key", "not supported");
	expect_load_refused(&p521_pem, &p521_key, NULL, "tls.key", "not supported");
	expect_load_refused(&u.int_pem, &u.int_key_pem, &root2_pem, "tls.crt", "does not chain to a root in ca.crt");
	/* A root that is not in the ca.crt given. */
	pem root_key_pem = pem_key(u.root_key);
	expect_load_refused(&u.root_pem, &root_key_pem, &root2_pem, "tls.crt", "does not chain");

	char err[512];
	pl_ca *ca = load_user(&noku_pem, &other_key, &u.root_pem, err, sizeof(err));
	if (!ca)
		fail_msg("a CA without keyUsage: %s", err);
	pl_ca_free(ca);
	/* The bundle may hold old and new roots (a rollover). */
	pem both = pem_certs(root2, u.root, NULL);
	ca = load_user(&u.int_pem, &u.int_key_pem, &both, err, sizeof(err));
	if (!ca)
		fail_msg("rollover bundle: %s", err);
	pem b = ca_bundle(ca);
	assert_string_equal(b.s, both.s);
	free(b.s);
	pl_ca_free(ca);

	pem *all[] = {&other_key, &leaf_pem, &nobc_pem, &noks_pem, &eku_pem, &old_pem, &future_pem, &noku_pem, &rsa_pem, &rsa_key,
		      &ed_pem, &ed_key, &p521_pem, &p521_key, &root2_pem, &junk, &root_key_pem, &both};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->s);
	X509 *certs[] = {leaf, nobc, noks, eku, old, future, noku, rsa_root, ed_root, p521_root, root2};
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
		X509_free(certs[i]);
	EVP_PKEY *keys[] = {other, small, ed, p521, k2};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		EVP_PKEY_free(keys[i]);
	user_ca_free(&u);
}

/* ---------- bundles, renewal, chain checks ---------- */

static void test_bundle_merge(void **state)
{
	(void)state;
	EVP_PKEY *ka = EVP_EC_gen("P-256"), *kb = EVP_EC_gen("P-256"), *ke = EVP_EC_gen("P-256");
	X509 *a = make_root(ka, "a", -DAY, 365 * DAY), *b = make_root(kb, "b", -DAY, 365 * DAY),
	     *e = make_root(ke, "e", -2 * DAY, -DAY);
	pem pa = pem_certs(a, NULL, NULL), pb = pem_certs(b, NULL, NULL), pab = pem_certs(a, b, NULL),
	    pba = pem_certs(b, a, NULL), pae = pem_certs(a, e, NULL), pbea = pem_certs(b, e, a);
	char *out = NULL;

	/* Old bundle first, new roots after, each once, the expired one gone. */
	assert_int_equal(pl_ca_bundle_merge(pae.s, pae.len, pbea.s, pbea.len, NOW, &out), 0);
	assert_int_equal(count_certs(out), 2);
	assert_string_equal(out, pab.s);
	free(out);
	assert_int_equal(pl_ca_bundle_merge(pb.s, pb.len, pa.s, pa.len, NOW, &out), 0);
	assert_int_equal(count_certs(out), 2);
	assert_string_equal(out, pba.s);
	/* Merging the result with itself or a part of it changes nothing (bytes). */
	char *again = NULL;
	assert_int_equal(pl_ca_bundle_merge(out, strlen(out), pa.s, pa.len, NOW, &again), 0);
	assert_int_equal(count_certs(again), 2);
	assert_string_equal(again, out);
	free(again);
	free(out);
	assert_int_equal(pl_ca_bundle_merge("", 0, pa.s, pa.len, NOW, &out), 0);
	assert_int_equal(count_certs(out), 1);
	assert_string_equal(out, pa.s);
	free(out);
	assert_int_equal(pl_ca_bundle_merge(pa.s, pa.len, NULL, 0, NOW, &out), 0);
	assert_int_equal(count_certs(out), 1);
	assert_string_equal(out, pa.s);
	free(out);
	/* Text and other PEM blocks around the certificates are ignored. */
	char *noisy = NULL;
	assert_true(asprintf(&noisy, "# roots\n%s\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n%s", pa.s, pb.s) > 0);
	assert_int_equal(pl_ca_bundle_merge(noisy, strlen(noisy), NULL, 0, NOW, &out), 0);
	assert_int_equal(count_certs(out), 2);
	assert_string_equal(out, pab.s);
	free(out);
	free(noisy);
	/* Everything expired: an empty bundle, not an error. */
	pem pe = pem_certs(e, NULL, NULL);
	assert_int_equal(pl_ca_bundle_merge(pe.s, pe.len, pe.s, pe.len, NOW, &out), 0);
	assert_int_equal(count_certs(out), 0);
	assert_string_equal(out, "");
	free(out);
	/* At a time before e expired, it stays. */
	assert_int_equal(pl_ca_bundle_merge(pe.s, pe.len, pa.s, pa.len, NOW - 2 * DAY + 10, &out), 0);
	assert_int_equal(count_certs(out), 2);
	free(out);
	/* A certificate block that does not parse: refused, nothing written. */
	const char *junk = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
	out = (char *)"sentinel";
	assert_int_equal(pl_ca_bundle_merge(pa.s, pa.len, junk, strlen(junk), NOW, &out), -EINVAL);
	assert_null(out);

	pem *all[] = {&pa, &pb, &pab, &pba, &pae, &pbea, &pe};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->s);
	X509_free(a);
	X509_free(b);
	X509_free(e);
	EVP_PKEY_free(ka);
	EVP_PKEY_free(kb);
	EVP_PKEY_free(ke);
}

static void test_needs_renewal(void **state)
{
	(void)state;
	/* Valid [1000, 2000), renew 300 s before the end: from 1700 on. */
	assert_false(pl_cert_needs_renewal(1000, 2000, 1000, 300));
	assert_false(pl_cert_needs_renewal(1000, 2000, 1699, 300));
	assert_true(pl_cert_needs_renewal(1000, 2000, 1700, 300));
	assert_true(pl_cert_needs_renewal(1000, 2000, 1701, 300));
	assert_true(pl_cert_needs_renewal(1000, 2000, 1999, 300));
	assert_true(pl_cert_needs_renewal(1000, 2000, 2000, 300)); /* expired */
	assert_true(pl_cert_needs_renewal(1000, 2000, 5000, 300));
	/* Not valid yet (a clock gone back), absent (0, 0), or an empty window. */
	assert_true(pl_cert_needs_renewal(1000, 2000, 999, 300));
	assert_true(pl_cert_needs_renewal(0, 0, 1500, 300));
	assert_true(pl_cert_needs_renewal(2000, 2000, 2000, 0));
	assert_true(pl_cert_needs_renewal(2000, 1000, 1500, 0));
	/* No renewBefore: only at expiry. A negative one counts as none. */
	assert_false(pl_cert_needs_renewal(1000, 2000, 1999, 0));
	assert_true(pl_cert_needs_renewal(1000, 2000, 2000, 0));
	assert_false(pl_cert_needs_renewal(1000, 2000, 1999, -50));
	/* renewBefore longer than the life: always. */
	assert_true(pl_cert_needs_renewal(1000, 2000, 1000, 5000));
	/* Huge values do not overflow. */
	assert_false(pl_cert_needs_renewal(0, INT64_MAX, 1, INT64_MAX - 10));
	assert_true(pl_cert_needs_renewal(0, INT64_MAX, 11, INT64_MAX - 10));

	/* With a real leaf: 24 h, renewBefore = ttl/3. */
	pl_ca *ca = must_generate(NOW, 0);
	pl_issued is;
	int64_t nb, na;
	must_issue(ca, ID_A, NOW, DAY, &is);
	assert_int_equal(pl_cert_times(is.cert_pem, strlen(is.cert_pem), &nb, &na, NULL, 0), 0);
	assert_false(pl_cert_needs_renewal(nb, na, NOW, DAY / 3));
	assert_false(pl_cert_needs_renewal(nb, na, NOW + DAY - DAY / 3 - 1, DAY / 3));
	assert_true(pl_cert_needs_renewal(nb, na, NOW + DAY - DAY / 3, DAY / 3));
	pl_issued_clear(&is);
	pl_ca_free(ca);
}

static void test_signed_by(void **state)
{
	(void)state;
	pl_ca *ca1 = must_generate(NOW, 0), *ca2 = must_generate(NOW, 0);
	pem b1 = ca_bundle(ca1), b2 = ca_bundle(ca2);
	char *both = NULL;
	pl_issued is;

	assert_int_equal(pl_ca_bundle_merge(b1.s, b1.len, b2.s, b2.len, NOW, &both), 0);
	assert_int_equal(count_certs(both), 2);
	must_issue(ca1, ID_A, NOW, DAY, &is);
	size_t n = strlen(is.cert_pem);
	assert_true(pl_cert_signed_by(is.cert_pem, n, b1.s, b1.len, NOW));
	assert_false(pl_cert_signed_by(is.cert_pem, n, b2.s, b2.len, NOW));
	/* Old and new roots during a rollover: a leaf of either verifies. */
	assert_true(pl_cert_signed_by(is.cert_pem, n, both, strlen(both), NOW));
	/* Time matters: before notBefore, and at/after notAfter. */
	assert_false(pl_cert_signed_by(is.cert_pem, n, b1.s, b1.len, NOW - PL_CA_CLOCK_SKEW_S - 1));
	assert_true(pl_cert_signed_by(is.cert_pem, n, b1.s, b1.len, NOW + DAY - 1));
	assert_false(pl_cert_signed_by(is.cert_pem, n, b1.s, b1.len, NOW + DAY + 1));
	/* Garbage and empty inputs. */
	assert_false(pl_cert_signed_by("junk", 4, b1.s, b1.len, NOW));
	assert_false(pl_cert_signed_by(is.cert_pem, n, "", 0, NOW));
	assert_false(pl_cert_signed_by(is.cert_pem, n, is.key_pem, strlen(is.key_pem), NOW));
	/* Both CAs' leaves complete mTLS when each side trusts both roots; with one root only, not. */
	pl_issued other;
	must_issue(ca2, ID_B, NOW, DAY, &other);
	pl_tls_creds *a = must_creds(&is, both), *b = must_creds(&other, both);
	expect_mtls(a, ID_A, b, ID_B);
	expect_mtls(b, ID_B, a, ID_A);
	pl_tls_creds_unref(a);
	pl_tls_creds_unref(b);
	char err[512];
	assert_null(pl_tls_creds_load(other.cert_pem, strlen(other.cert_pem), other.key_pem, strlen(other.key_pem), b1.s,
				      b1.len, NOW, err, sizeof(err)));
	pl_issued_clear(&is);
	pl_issued_clear(&other);
	free(both);
	free(b1.s);
	free(b2.s);
	pl_ca_free(ca1);
	pl_ca_free(ca2);
}

/* Two leaves of one generated CA, through the proxy's TLS code. */
static void test_handshake(void **state)
{
	(void)state;
	pl_ca *ca = must_generate(NOW, 0);
	pem bundle = ca_bundle(ca);
	pl_issued a, b;

	must_issue(ca, ID_A, NOW, DAY, &a);
	must_issue(ca, ID_B, NOW, DAY, &b);
	pl_tls_creds *ca_ = must_creds(&a, bundle.s), *cb = must_creds(&b, bundle.s);
	expect_mtls(ca_, ID_A, cb, ID_B);
	expect_mtls(cb, ID_B, ca_, ID_A);
	pl_tls_creds_unref(ca_);
	pl_tls_creds_unref(cb);
	pl_issued_clear(&a);
	pl_issued_clear(&b);
	free(bundle.s);
	pl_ca_free(ca);
}

/* ---------- concurrency and cost ---------- */

typedef struct worker {
	const pl_ca *ca;
	const char *bundle;
	int n, failures;
} worker;

static void *issue_many(void *arg)
{
	worker *w = arg;
	char err[256];

	for (int i = 0; i < w->n; i++) {
		pl_issued is;
		if (pl_ca_issue(w->ca, ID_A, NOW, DAY, &is, err, sizeof(err)) != 0 ||
		    !pl_cert_signed_by(is.cert_pem, strlen(is.cert_pem), w->bundle, strlen(w->bundle), NOW) ||
		    !pl_cert_key_matches(is.cert_pem, strlen(is.cert_pem), is.key_pem, strlen(is.key_pem)))
			w->failures++;
		pl_issued_clear(&is);
	}
	return NULL;
}

/* The CA is shared read-only: several threads issue at once. */
static void test_issue_from_threads(void **state)
{
	(void)state;
	pl_ca *ca = must_generate(NOW, 0);
	pem bundle = ca_bundle(ca);
	pthread_t th[4];
	worker w[4];

	for (int i = 0; i < 4; i++) {
		w[i] = (worker){ca, bundle.s, 25, 0};
		assert_int_equal(pthread_create(&th[i], NULL, issue_many, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	free(bundle.s);
	pl_ca_free(ca);
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Not a timed assertion: prints what one issue costs (PILLION_CA_BENCH=N for more rounds). */
static void test_issue_cost(void **state)
{
	(void)state;
	const char *env = getenv("PILLION_CA_BENCH");
	int n = env && atoi(env) > 0 ? atoi(env) : 200;
	pl_ca *ca = must_generate(NOW, 0);
	char err[256];
	double t0 = mono();

	for (int i = 0; i < n; i++) {
		pl_issued is;
		if (pl_ca_issue(ca, ID_A, NOW, DAY, &is, err, sizeof(err)) != 0)
			fail_msg("issue %d: %s", i, err);
		pl_issued_clear(&is);
	}
	double dt = mono() - t0;
	print_message("pl_ca_issue: %d issues in %.3f s, %.1f us each\n", n, dt, dt * 1e6 / n);
	pl_ca_free(ca);
}

static int setup(void **state)
{
	(void)state;
	NOW = (int64_t)time(NULL);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_export_load),
		cmocka_unit_test(test_generate_refuses),
		cmocka_unit_test(test_issued_leaf),
		cmocka_unit_test(test_server_leaf),
		cmocka_unit_test(test_ttl_and_clamping),
		cmocka_unit_test(test_spiffe_ids),
		cmocka_unit_test(test_serials_and_keys_differ),
		cmocka_unit_test(test_intermediate_p256),
		cmocka_unit_test(test_intermediate_p384),
		cmocka_unit_test(test_intermediate_rsa),
		cmocka_unit_test(test_load_refusals),
		cmocka_unit_test(test_bundle_merge),
		cmocka_unit_test(test_needs_renewal),
		cmocka_unit_test(test_signed_by),
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_issue_from_threads),
		cmocka_unit_test(test_issue_cost),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
