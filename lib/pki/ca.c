/* The mesh CA on OpenSSL: root generation, loading a user's CA, SPIFFE leaf issuance, trust bundles, renewal checks. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki/ca.h"
#include "pki/x509.h"

enum { LEAF_BC, LEAF_KU, LEAF_EKU, LEAF_AKID, LEAF_NEXT };

struct pl_ca {
	X509 *cert;
	EVP_PKEY *key;
	const EVP_MD *md;          /* SHA-384 for a P-384 key, SHA-256 otherwise */
	STACK_OF(X509) *extras;    /* tls.crt after the CA certificate, as loaded (for export) */
	STACK_OF(X509) *roots;     /* the trust bundle */
	char *chain_pem;           /* what follows a leaf in its tls.crt: "" when the CA is a root */
	size_t chain_len;
	X509_EXTENSION *leaf_ext[LEAF_NEXT]; /* the same in every leaf: built once (AKID may be NULL) */
	int64_t not_before, not_after;
};

/* ---------- small helpers ---------- */

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* what, followed by OpenSSL's first queued reason when there is one; clears the queue. */
static void ssl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_error();
	char lib[256] = "";

	if (e)
		ERR_error_string_n(e, lib, sizeof(lib));
	ERR_clear_error();
	seterr(err, errlen, "%s%s%s", what, e ? ": " : "", lib);
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static BIO *mem_bio(const char *s, size_t len)
{
	if (len > INT_MAX)
		return NULL;
	return BIO_new_mem_buf(len ? s : "", (int)len);
}

/*
 * Every certificate in pem, in order, appended to *out (created when NULL). Blocks of
 * other types are skipped; a certificate block that does not decode is an error.
 * Returns how many were read, or -EINVAL / -ENOMEM.
 */
static int read_certs(const char *pem, size_t len, STACK_OF(X509) **out)
{
	BIO *bio;
	X509 *x;
	int n = 0;

	if (!*out && !(*out = sk_X509_new_null()))
		return -ENOMEM;
	if (!pem || !len)
		return 0;
	if (!(bio = mem_bio(pem, len)))
		return -EINVAL;
	ERR_clear_error();
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (!sk_X509_push(*out, x)) {
			X509_free(x);
			BIO_free(bio);
			return -ENOMEM;
		}
		n++;
	}
	BIO_free(bio);
	/* The normal end is "no start line"; anything else is a block that did not parse. */
	unsigned long e = ERR_peek_error();
	ERR_clear_error();
	if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
		return -EINVAL;
	return n;
}

static X509 *first_cert(const char *pem, size_t len)
{
	BIO *bio = pem ? mem_bio(pem, len) : NULL;
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	ERR_clear_error();
	return x;
}

/* The private key in pem; OpenSSL decodes it in memory it wipes, and EVP_PKEY_free wipes the key. */
static EVP_PKEY *read_key(const char *pem, size_t len)
{
	BIO *bio = pem ? mem_bio(pem, len) : NULL;
	EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	ERR_clear_error();
	return k;
}

/* A mem BIO's bytes as a malloc'ed NUL-terminated string (owned by the caller); frees the BIO, which wipes its buffer. */
static int bio_take(BIO *bio, char **out, size_t *outlen)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;

	if (s) {
		if (n)
			memcpy(s, data, (size_t)n);
		s[n] = '\0';
		if (outlen)
			*outlen = (size_t)n;
	}
	BIO_free(bio);
	*out = s;
	return s ? 0 : -ENOMEM;
}

/* PEM of certs[from..], leaving out self-signed ones when skip_roots. */
static int certs_pem(STACK_OF(X509) *certs, int from, bool skip_roots, char **out, size_t *outlen)
{
	BIO *bio = BIO_new(BIO_s_mem());

	if (!bio)
		return -ENOMEM;
	for (int i = from; certs && i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (skip_roots && X509_self_signed(x, 0) == 1)
			continue;
		if (PEM_write_bio_X509(bio, x) != 1) {
			BIO_free(bio);
			ERR_clear_error();
			return -ENOMEM;
		}
	}
	return bio_take(bio, out, outlen);
}

static int pkey_pem(EVP_PKEY *key, char **out)
{
	BIO *bio = BIO_new(BIO_s_mem());

	if (!bio || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(bio);
		ERR_clear_error();
		return -ENOMEM;
	}
	return bio_take(bio, out, NULL);
}

void pl_pem_secret_free(char *pem)
{
	if (!pem)
		return;
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
}

/* 128 random bits, never zero (serials are positive). */
static bool rand_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	bool ok = bn != NULL;

	while (ok && (ok = BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1) && BN_is_zero(bn))
		;
	ok = ok && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

static bool set_times(X509 *x, int64_t nb, int64_t na)
{
	return ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) && ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na);
}

/* ---------- SPIFFE IDs ---------- */

static bool td_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'; }

static bool path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
	       c == '_';
}

/* Names the first character the SPIFFE grammar has no room for. */
static int bad_char(const char *id, size_t i, const char *where, char *err, size_t errlen)
{
	char c = id[i];
	const char *what = c == '?' ? " (a query)" : c == '#' ? " (a fragment)" : c == '%' ? " (percent-encoding)"
			   : c == ':' && *where == 't' ? " (a port)" : c == '@' ? " (user info)"
			   : c >= 'A' && c <= 'Z' && *where == 't' ? " (trust domains are lowercase)" : "";

	if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
		seterr(err, errlen, "SPIFFE ID: byte 0x%02x at offset %zu in the %s", (unsigned char)c, i, where);
	else
		seterr(err, errlen, "SPIFFE ID: '%c' at offset %zu in the %s%s", c, i, where, what);
	return -EINVAL;
}

int pl_spiffe_id_check(const char *id, char *err, size_t errlen)
{
	size_t n = id ? strnlen(id, PL_SPIFFE_ID_MAX + 1) : 0, i, td;

	if (!n) {
		seterr(err, errlen, "SPIFFE ID: empty");
		return -EINVAL;
	}
	if (n > PL_SPIFFE_ID_MAX) {
		seterr(err, errlen, "SPIFFE ID: longer than %d bytes", PL_SPIFFE_ID_MAX);
		return -EINVAL;
	}
	if (strncmp(id, "spiffe://", 9) != 0) {
		seterr(err, errlen, "SPIFFE ID \"%.64s\": must start with spiffe://", id);
		return -EINVAL;
	}
	for (i = 9; i < n && id[i] != '/'; i++)
		if (!td_char(id[i]))
			return bad_char(id, i, "trust domain", err, errlen);
	td = i - 9;
	if (td == 0 || td > 255) {
		seterr(err, errlen, "SPIFFE ID: trust domain %s", td ? "longer than 255 bytes" : "empty");
		return -EINVAL;
	}
	if (i == n || i == n - 1) {
		seterr(err, errlen, "SPIFFE ID: no workload path after the trust domain");
		return -EINVAL;
	}
	/* Segments: "/" then one or more path characters, and never "." or "..". */
	while (i < n) {
		size_t start = ++i;
		for (; i < n && id[i] != '/'; i++)
			if (!path_char(id[i]))
				return bad_char(id, i, "path", err, errlen);
		size_t len = i - start;
		if (len == 0) {
			seterr(err, errlen, "SPIFFE ID: empty path segment at offset %zu%s", start,
			       start == n ? " (trailing '/')" : "");
			return -EINVAL;
		}
		if ((len == 1 && id[start] == '.') || (len == 2 && id[start] == '.' && id[start + 1] == '.')) {
			seterr(err, errlen, "SPIFFE ID: path segment \"%.*s\" at offset %zu", (int)len, id + start, start);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---------- the CA object ---------- */

void pl_ca_free(pl_ca *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key); /* OpenSSL clears the private scalar/exponents when it frees them */
	sk_X509_pop_free(ca->extras, X509_free);
	sk_X509_pop_free(ca->roots, X509_free);
	free(ca->chain_pem);
	for (int i = 0; i < LEAF_NEXT; i++)
		X509_EXTENSION_free(ca->leaf_ext[i]);
	free(ca);
}

/* Signature digest for the CA's key, or NULL (with a message) when the key type is not supported. */
static const EVP_MD *ca_digest(EVP_PKEY *key, char *err, size_t errlen)
{
	int id = EVP_PKEY_get_base_id(key);

	if (id == EVP_PKEY_EC) {
		char g[80] = "";
		size_t gl = 0;
		if (EVP_PKEY_get_group_name(key, g, sizeof(g), &gl) != 1)
			g[0] = '\0';
		int nid = OBJ_txt2nid(g);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(g);
		if (nid == NID_X9_62_prime256v1)
			return EVP_sha256();
		if (nid == NID_secp384r1)
			return EVP_sha384();
		seterr(err, errlen, "tls.key: EC curve %s is not supported (use P-256 or P-384)", g[0] ? g : "unknown");
		ERR_clear_error();
		return NULL;
	}
	if (id == EVP_PKEY_RSA) {
		int bits = EVP_PKEY_get_bits(key);
		if (bits >= 2048)
			return EVP_sha256();
		seterr(err, errlen, "tls.key: RSA key of %d bits is too short (at least 2048)", bits);
		return NULL;
	}
	seterr(err, errlen, "tls.key: key type %s is not supported (use EC P-256, P-384 or RSA)",
	       OBJ_nid2sn(id) ? OBJ_nid2sn(id) : "unknown");
	return NULL;
}

/*
 * Everything derived from cert, key and roots: digest, validity, the chain that follows
 * a leaf, and the extensions every leaf carries. 0, or -1 with err set.
 */
static int ca_finish(pl_ca *ca, char *err, size_t errlen)
{
	if (!(ca->md = ca_digest(ca->key, err, errlen)))
		return -1;
	ca->not_before = asn1_unix(X509_get0_notBefore(ca->cert));
	ca->not_after = asn1_unix(X509_get0_notAfter(ca->cert));
	/* A root CA's leaves stand alone in tls.crt; an intermediate's carry it and the issuers above it, roots left out. */
	if (X509_self_signed(ca->cert, 0) == 1) {
		ca->chain_pem = strdup("");
		ca->chain_len = 0;
		if (!ca->chain_pem)
			goto nomem;
	} else {
		STACK_OF(X509) *all = sk_X509_dup(ca->extras);
		if (!all || !sk_X509_insert(all, ca->cert, 0)) {
			sk_X509_free(all);
			goto nomem;
		}
		int r = certs_pem(all, 0, true, &ca->chain_pem, &ca->chain_len);
		sk_X509_free(all);
		if (r)
			goto nomem;
	}
	ca->leaf_ext[LEAF_BC] = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:FALSE");
	ca->leaf_ext[LEAF_KU] = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "critical,digitalSignature");
	ca->leaf_ext[LEAF_EKU] = X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, "serverAuth,clientAuth");
	if (!ca->leaf_ext[LEAF_BC] || !ca->leaf_ext[LEAF_KU] || !ca->leaf_ext[LEAF_EKU]) {
		ssl_err(err, errlen, "leaf extensions");
		return -1;
	}
	/* AKID = the CA's SKID; without one the verifier matches issuers by name alone. */
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(ca->cert);
	if (skid) {
		AUTHORITY_KEYID *ak = AUTHORITY_KEYID_new();
		if (!ak || !(ak->keyid = ASN1_OCTET_STRING_dup(skid))) {
			AUTHORITY_KEYID_free(ak);
			goto nomem;
		}
		ca->leaf_ext[LEAF_AKID] = X509V3_EXT_i2d(NID_authority_key_identifier, 0, ak);
		AUTHORITY_KEYID_free(ak);
		if (!ca->leaf_ext[LEAF_AKID])
			goto nomem;
	}
	return 0;
nomem:
	ERR_clear_error();
	seterr(err, errlen, "out of memory");
	return -1;
}

static bool add_conf_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	bool ok = ext && X509_add_ext(cert, ext, -1) == 1;

	X509_EXTENSION_free(ext);
	return ok;
}

static bool trust_domain_ok(const char *td)
{
	size_t n = td ? strlen(td) : 0;

	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!td_char(td[i]))
			return false;
	return true;
}

pl_ca *pl_ca_generate(const char *trust_domain, int64_t now_unix, int64_t ttl_s, char *err, size_t errlen)
{
	pl_ca *ca = NULL;
	X509 *x = NULL;
	EVP_PKEY *key = NULL;
	char cn[65];
	X509V3_CTX ctx;

	if (!trust_domain_ok(trust_domain)) {
		seterr(err, errlen, "trust domain \"%.255s\": want 1 to 255 of a-z, 0-9, '.', '-', '_'",
		       trust_domain ? trust_domain : "");
		return NULL;
	}
	if (ttl_s <= 0)
		ttl_s = PL_CA_DEFAULT_TTL_S;
	if (ttl_s > PL_CA_MAX_TTL_S || now_unix < 0 || now_unix > INT64_MAX - PL_CA_MAX_TTL_S) {
		seterr(err, errlen, "CA lifetime %lld s from %lld: out of range", (long long)ttl_s, (long long)now_unix);
		return NULL;
	}
	ERR_clear_error();
	/* Cut to the 64 bytes X.520 allows a CN: the name is for people, AKID/SKID pair certificates. */
	snprintf(cn, sizeof(cn), "pillion mesh CA %s", trust_domain);
	if (!(key = EVP_EC_gen("P-256")) || !(x = X509_new()) || !X509_set_version(x, 2) || !rand_serial(x) ||
	    !set_times(x, now_unix - PL_CA_CLOCK_SKEW_S, now_unix + ttl_s) || !X509_set_pubkey(x, key)) {
		ssl_err(err, errlen, "generating the CA");
		goto fail;
	}
	X509_NAME *name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"pillion", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name)) {
		ssl_err(err, errlen, "CA subject");
		goto fail;
	}
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (!add_conf_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !add_conf_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_conf_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !add_conf_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")) {
		ssl_err(err, errlen, "CA extensions");
		goto fail;
	}
	if (X509_sign(x, key, EVP_sha256()) <= 0) {
		ssl_err(err, errlen, "signing the CA");
		goto fail;
	}
	if (!(ca = calloc(1, sizeof(*ca))) || !(ca->extras = sk_X509_new_null()) || !(ca->roots = sk_X509_new_null()) ||
	    !sk_X509_push(ca->roots, x)) {
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	X509_up_ref(x); /* one reference for ca->roots, one for ca->cert */
	ca->cert = x;
	ca->key = key;
	x = NULL;
	key = NULL;
	if (ca_finish(ca, err, errlen) == 0)
		return ca;
fail:
	pl_ca_free(ca); /* x is in ca->roots only once ca->cert holds it too: then x is NULL */
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return NULL;
}

pl_ca *pl_ca_load(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
		  const char *bundle_pem, size_t bundle_len, int64_t now_unix, char *err, size_t errlen)
{
	pl_ca *ca = calloc(1, sizeof(*ca));
	STACK_OF(X509) *certs = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *vctx = NULL;
	int n;

	if (!ca) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	ERR_clear_error();
	n = read_certs(cert_pem, cert_len, &certs);
	if (n <= 0) {
		seterr(err, errlen, "tls.crt: %s", n == 0 ? "no PEM certificate" : "a certificate does not parse");
		goto fail;
	}
	ca->cert = sk_X509_shift(certs);
	ca->extras = certs;
	certs = NULL;
	if (!(ca->key = read_key(key_pem, key_len))) {
		seterr(err, errlen, "tls.key: no PEM private key");
		goto fail;
	}

	uint32_t flags = X509_get_extension_flags(ca->cert);
	if (!(flags & EXFLAG_BCONS) || !(flags & EXFLAG_CA)) {
		seterr(err, errlen, "tls.crt: not a CA certificate (no basicConstraints CA:TRUE)");
		goto fail;
	}
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca->cert) & KU_KEY_CERT_SIGN)) {
		seterr(err, errlen, "tls.crt: the CA certificate's keyUsage lacks keyCertSign");
		goto fail;
	}
	/* The proxies verify chains for both TLS purposes; a CA restricted to others would issue useless leaves. */
	if (flags & EXFLAG_XKUSAGE) {
		uint32_t xku = X509_get_extended_key_usage(ca->cert);
		if (!(xku & XKU_ANYEKU) && (xku & (XKU_SSL_SERVER | XKU_SSL_CLIENT)) != (XKU_SSL_SERVER | XKU_SSL_CLIENT)) {
			seterr(err, errlen, "tls.crt: the CA certificate's extendedKeyUsage does not allow serverAuth and clientAuth");
			goto fail;
		}
	}
	if (!(ca->md = ca_digest(ca->key, err, errlen)))
		goto fail;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		seterr(err, errlen, "tls.key does not match the CA certificate in tls.crt");
		goto fail;
	}
	int64_t nb = asn1_unix(X509_get0_notBefore(ca->cert)), na = asn1_unix(X509_get0_notAfter(ca->cert));
	if (now_unix >= na) {
		seterr(err, errlen, "tls.crt: the CA certificate expired %lld s ago", (long long)(now_unix - na));
		goto fail;
	}
	if (now_unix < nb) {
		seterr(err, errlen, "tls.crt: the CA certificate is not valid for another %lld s", (long long)(nb - now_unix));
		goto fail;
	}

	n = read_certs(bundle_pem, bundle_len, &ca->roots);
	if (n < 0) {
		seterr(err, errlen, "ca.crt: a certificate does not parse");
		goto fail;
	}
	if (n == 0) {
		for (int i = -1; i < sk_X509_num(ca->extras); i++) {
			X509 *x = i < 0 ? ca->cert : sk_X509_value(ca->extras, i);
			if (X509_self_signed(x, 0) != 1)
				continue;
			if (!sk_X509_push(ca->roots, x)) {
				seterr(err, errlen, "out of memory");
				goto fail;
			}
			X509_up_ref(x);
		}
		if (sk_X509_num(ca->roots) == 0) {
			seterr(err, errlen, "ca.crt: needed, as tls.crt holds no self-signed root");
			goto fail;
		}
	}

	/* The CA must chain to the bundle the way a proxy would build the chain of one of its leaves. */
	if (!(store = X509_STORE_new()) || !(vctx = X509_STORE_CTX_new())) {
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < sk_X509_num(ca->roots); i++)
		X509_STORE_add_cert(store, sk_X509_value(ca->roots, i));
	ERR_clear_error();
	if (X509_STORE_CTX_init(vctx, store, ca->cert, ca->extras) != 1) {
		ssl_err(err, errlen, "X509_STORE_CTX_init");
		goto fail;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(vctx), (time_t)now_unix);
	if (X509_verify_cert(vctx) != 1) {
		seterr(err, errlen, "tls.crt: the CA certificate does not chain to a root in %s: %s",
		       n ? "ca.crt" : "tls.crt", X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
		goto fail;
	}
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	vctx = NULL;
	store = NULL;
	if (ca_finish(ca, err, errlen) == 0) {
		ERR_clear_error();
		return ca;
	}
fail:
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	sk_X509_pop_free(certs, X509_free);
	pl_ca_free(ca);
	ERR_clear_error();
	return NULL;
}

int pl_ca_export(const pl_ca *ca, char **cert_pem, char **key_pem)
{
	STACK_OF(X509) *all = sk_X509_dup(ca->extras);
	int r = -ENOMEM;

	*cert_pem = NULL;
	*key_pem = NULL;
	if (all && sk_X509_insert(all, ca->cert, 0) && certs_pem(all, 0, false, cert_pem, NULL) == 0 &&
	    pkey_pem(ca->key, key_pem) == 0)
		r = 0;
	sk_X509_free(all);
	if (r) {
		free(*cert_pem);
		*cert_pem = NULL;
	}
	return r;
}

int pl_ca_bundle(const pl_ca *ca, char **bundle_pem)
{
	*bundle_pem = NULL;
	return certs_pem(ca->roots, 0, false, bundle_pem, NULL);
}

int64_t pl_ca_not_before(const pl_ca *ca) { return ca->not_before; }
int64_t pl_ca_not_after(const pl_ca *ca) { return ca->not_after; }

/* ---------- leaves ---------- */

/*
 * Puts a P-256 public key in the certificate. X509_set_pubkey goes through OpenSSL 3.0's
 * encoder lookup and costs ~150 us, half of an issue; this builds the same
 * SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, the uncompressed point) the way
 * OpenSSL's own EC method does, in ~5 us. The in-memory X509 then has no decoded key
 * (X509_get0_pubkey fails), which is fine: it is only signed and serialized.
 */
static bool set_p256_pubkey(X509 *x, EVP_PKEY *key)
{
	unsigned char *pt = NULL;
	size_t len = EVP_PKEY_get1_encoded_public_key(key, &pt);

	if (len != 65 || !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
						 V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1), pt, (int)len)) {
		OPENSSL_free(pt);
		return X509_set_pubkey(x, key) == 1;
	}
	return true;
}

static bool add_uri_san(X509 *x, const char *uri)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	bool ok = false;

	if (gens && gn && s && ASN1_STRING_set(s, uri, (int)strlen(uri))) {
		GENERAL_NAME_set0_value(gn, GEN_URI, s);
		s = NULL;
		if (sk_GENERAL_NAME_push(gens, gn)) {
			gn = NULL;
			/* Critical: the subject is empty, so the SAN is the whole name (RFC 5280 4.2.1.6). */
			ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) == 1;
		}
	}
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return ok;
}

/* DNS SANs (non-critical: the subject names the server too) for a server leaf. */
static bool add_dns_sans(X509 *x, const char *const *names, size_t n)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	bool ok = gens != NULL;

	for (size_t i = 0; ok && i < n; i++) {
		GENERAL_NAME *gn = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ok = gn && s && ASN1_STRING_set(s, names[i], (int)strlen(names[i]));
		if (ok) {
			GENERAL_NAME_set0_value(gn, GEN_DNS, s);
			s = NULL;
			ok = sk_GENERAL_NAME_push(gens, gn) > 0;
			if (ok)
				gn = NULL;
		}
		ASN1_IA5STRING_free(s);
		GENERAL_NAME_free(gn);
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok;
}

/* A lowercase RFC 1123 host name: labels of [a-z0-9-], 1 to 63 bytes, not starting or ending with '-'; at most 253 in all. */
static bool dns_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0, label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label > 0)))
			return false;
		label++;
	}
	return true;
}

/* What tells a SPIFFE leaf from a server leaf: one of the two is set. */
typedef struct leaf_names {
	const char *spiffe_id;
	const char *const *dns;
	size_t ndns;
} leaf_names;

/* The checks and the signing shared by both kinds of leaf. */
static int issue_leaf(const pl_ca *ca, const leaf_names *ln, int64_t now_unix, int64_t ttl_s, pl_issued *out, char *err,
		      size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_EXTENSION *eku = NULL;
	BIO *bio;
	int r;

	memset(out, 0, sizeof(*out));
	if (ttl_s <= 0 || ttl_s > PL_CA_MAX_TTL_S) {
		seterr(err, errlen, "certificate ttl %lld s: want 1 to %lld", (long long)ttl_s, (long long)PL_CA_MAX_TTL_S);
		return -EINVAL;
	}
	if (now_unix >= ca->not_after || now_unix < ca->not_before) {
		seterr(err, errlen, "the CA is %s at %lld (valid %lld to %lld)", now_unix < ca->not_before ? "not yet valid" : "expired",
		       (long long)now_unix, (long long)ca->not_before, (long long)ca->not_after);
		return -EKEYEXPIRED;
	}
	int64_t nb = now_unix - PL_CA_CLOCK_SKEW_S, na = now_unix + ttl_s;
	if (nb < ca->not_before)
		nb = ca->not_before;
	if (na > ca->not_after) {
		na = ca->not_after;
		out->clamped = true;
	}

	ERR_clear_error();
	r = -EIO;
	if (!(key = EVP_EC_gen("P-256")) || !(x = X509_new()) || !X509_set_version(x, 2) || !rand_serial(x) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) || !set_times(x, nb, na) ||
	    !set_p256_pubkey(x, key)) {
		ssl_err(err, errlen, "issuing a certificate");
		goto fail;
	}
	/* A server leaf: serverAuth only (it never acts as a client), and a CN for people reading it. */
	if (!ln->spiffe_id &&
	    (!(eku = X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, "serverAuth")) ||
	     !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)ln->dns[0],
					 -1, -1, 0))) {
		ssl_err(err, errlen, "server certificate subject");
		goto fail;
	}
	for (int i = 0; i < LEAF_NEXT; i++) {
		X509_EXTENSION *e = i == LEAF_EKU && eku ? eku : ca->leaf_ext[i];
		if (e && X509_add_ext(x, e, -1) != 1) {
			ssl_err(err, errlen, "certificate extensions");
			goto fail;
		}
	}
	if (ln->spiffe_id ? !add_uri_san(x, ln->spiffe_id) : !add_dns_sans(x, ln->dns, ln->ndns)) {
		ssl_err(err, errlen, "subjectAltName");
		goto fail;
	}
	if (X509_sign(x, ca->key, ca->md) <= 0) {
		ssl_err(err, errlen, "signing the certificate");
		goto fail;
	}
	/* tls.crt: the leaf, then the CA's own chain. */
	bio = BIO_new(BIO_s_mem());
	if (!bio || PEM_write_bio_X509(bio, x) != 1 ||
	    (ca->chain_len && BIO_write(bio, ca->chain_pem, (int)ca->chain_len) != (int)ca->chain_len)) {
		BIO_free(bio);
		seterr(err, errlen, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	if (bio_take(bio, &out->cert_pem, NULL) != 0 || pkey_pem(key, &out->key_pem) != 0) {
		seterr(err, errlen, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	out->not_before = asn1_unix(X509_get0_notBefore(x));
	out->not_after = asn1_unix(X509_get0_notAfter(x));
	X509_EXTENSION_free(eku);
	X509_free(x);
	EVP_PKEY_free(key);
	return 0;
fail:
	X509_EXTENSION_free(eku);
	X509_free(x);
	EVP_PKEY_free(key);
	pl_issued_clear(out);
	ERR_clear_error();
	return r;
}

int pl_ca_issue(const pl_ca *ca, const char *spiffe_id, int64_t now_unix, int64_t ttl_s, pl_issued *out,
		char *err, size_t errlen)
{
	leaf_names ln = {.spiffe_id = spiffe_id};
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = pl_spiffe_id_check(spiffe_id, err, errlen)))
		return r;
	return issue_leaf(ca, &ln, now_unix, ttl_s, out, err, errlen);
}

int pl_ca_issue_server(const pl_ca *ca, const char *const *dns_names, size_t n, int64_t now_unix, int64_t ttl_s,
		       pl_issued *out, char *err, size_t errlen)
{
	leaf_names ln = {.dns = dns_names, .ndns = n};

	memset(out, 0, sizeof(*out));
	if (!dns_names || n == 0 || n > PL_DNS_NAMES_MAX) {
		seterr(err, errlen, "server certificate: want 1 to %d DNS names, not %zu", PL_DNS_NAMES_MAX, dns_names ? n : 0);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!dns_name_ok(dns_names[i])) {
			seterr(err, errlen, "server certificate: DNS name \"%.253s\": want lowercase labels of a-z, 0-9 and '-' "
			       "(1 to 63 bytes each, 253 in all)", dns_names[i] ? dns_names[i] : "");
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(dns_names[i], dns_names[j]) == 0) {
				seterr(err, errlen, "server certificate: DNS name \"%s\" given twice", dns_names[i]);
				return -EINVAL;
			}
	}
	return issue_leaf(ca, &ln, now_unix, ttl_s, out, err, errlen);
}

void pl_issued_clear(pl_issued *is)
{
	if (!is)
		return;
	free(is->cert_pem);
	pl_pem_secret_free(is->key_pem);
	memset(is, 0, sizeof(*is));
}

/* ---------- bundles and inspection ---------- */

int pl_ca_bundle_merge(const char *bundle_pem, size_t bundle_len, const char *add_pem, size_t add_len,
		       int64_t now_unix, char **out_pem)
{
	STACK_OF(X509) *in = NULL, *keep = NULL;
	int r;

	*out_pem = NULL;
	if ((r = read_certs(bundle_pem, bundle_len, &in)) < 0 || (r = read_certs(add_pem, add_len, &in)) < 0)
		goto out;
	r = 0;
	if (!(keep = sk_X509_new_null())) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < sk_X509_num(in); i++) {
		X509 *x = sk_X509_value(in, i);
		bool dup = false;
		if (now_unix >= asn1_unix(X509_get0_notAfter(x)))
			continue;
		/* X509_cmp compares the DER encodings (after a cached digest). */
		for (int j = 0; j < sk_X509_num(keep) && !dup; j++)
			dup = X509_cmp(sk_X509_value(keep, j), x) == 0;
		if (!dup && !sk_X509_push(keep, x)) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = certs_pem(keep, 0, false, out_pem, NULL);
out:
	sk_X509_free(keep); /* borrowed pointers: in owns them */
	sk_X509_pop_free(in, X509_free);
	ERR_clear_error();
	return r;
}

int pl_cert_times(const char *cert_pem, size_t cert_len, int64_t *not_before, int64_t *not_after, char *spiffe_id,
		  size_t idlen)
{
	X509 *x = first_cert(cert_pem, cert_len);

	if (spiffe_id && idlen)
		spiffe_id[0] = '\0';
	if (!x)
		return -EINVAL;
	*not_before = asn1_unix(X509_get0_notBefore(x));
	*not_after = asn1_unix(X509_get0_notAfter(x));
	if (spiffe_id && idlen && pl_x509_spiffe_id(x, spiffe_id, idlen) != 1)
		spiffe_id[0] = '\0';
	X509_free(x);
	ERR_clear_error();
	return 0;
}

bool pl_cert_needs_renewal(int64_t not_before, int64_t not_after, int64_t now, int64_t renew_before_s)
{
	if (not_after <= not_before || now < not_before)
		return true;
	if (renew_before_s < 0)
		renew_before_s = 0;
	/* Compare without computing not_after - renew_before_s, which could overflow. */
	return now >= not_after || not_after - now <= renew_before_s;
}

bool pl_cert_signed_by(const char *leaf_pem, size_t leaf_len, const char *bundle_pem, size_t bundle_len,
		       int64_t now_unix)
{
	STACK_OF(X509) *chain = NULL, *roots = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *vctx = NULL;
	X509 *leaf = NULL;
	bool ok = false;

	if (read_certs(leaf_pem, leaf_len, &chain) <= 0 || read_certs(bundle_pem, bundle_len, &roots) <= 0)
		goto out;
	leaf = sk_X509_shift(chain);
	if (!(store = X509_STORE_new()) || !(vctx = X509_STORE_CTX_new()))
		goto out;
	for (int i = 0; i < sk_X509_num(roots); i++)
		X509_STORE_add_cert(store, sk_X509_value(roots, i));
	if (X509_STORE_CTX_init(vctx, store, leaf, chain) != 1)
		goto out;
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(vctx), (time_t)now_unix);
	ok = X509_verify_cert(vctx) == 1;
out:
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(roots, X509_free);
	ERR_clear_error();
	return ok;
}

bool pl_cert_key_matches(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len)
{
	X509 *x = first_cert(cert_pem, cert_len);
	EVP_PKEY *k = x ? read_key(key_pem, key_len) : NULL;
	bool ok = x && k && X509_check_private_key(x, k) == 1;

	X509_free(x);
	EVP_PKEY_free(k);
	ERR_clear_error();
	return ok;
}

bool pl_cert_dns_names_match(const char *cert_pem, size_t cert_len, const char *const *dns_names, size_t n)
{
	X509 *x = first_cert(cert_pem, cert_len);
	GENERAL_NAMES *san = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
	size_t ndns = 0;
	bool ok = san != NULL && n <= PL_DNS_NAMES_MAX;

	/* serverAuth: without it a TLS client refuses the certificate whatever its names. */
	if (ok && (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(x) & XKU_SSL_SERVER))
		ok = false;
	for (int i = 0; ok && i < sk_GENERAL_NAME_num(san); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, i);
		if (gn->type != GEN_DNS)
			continue;
		const unsigned char *d = ASN1_STRING_get0_data(gn->d.dNSName);
		size_t len = (size_t)ASN1_STRING_length(gn->d.dNSName);
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = strlen(dns_names[j]) == len && memcmp(dns_names[j], d, len) == 0;
		ok = found;
		ndns++;
	}
	/* Every name found, none extra, none twice: as many DNS SANs as names (the names are distinct). */
	ok = ok && ndns == n;
	GENERAL_NAMES_free(san);
	X509_free(x);
	ERR_clear_error();
	return ok;
}
