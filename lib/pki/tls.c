/* Mesh TLS on OpenSSL: credential loading and checks, TLS 1.3 mTLS sessions with ALPN pillion/1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pki/tls.h"
#include "pki/x509.h"

struct pl_tls_creds {
	int refs;
	SSL_CTX *client;
	SSL_CTX *server;
	char spiffe_id[2048];
	int64_t not_before, not_after;
	int nroots;
};

struct pl_tls {
	SSL *ssl;
	pl_tls_creds *creds;
};

static const unsigned char alpn_wire[] = "\x09" PL_ALPN_MESH;
/* Server preference: pillion/h2 when the client offers it. */
static const unsigned char alpn_both[] = "\x0a" PL_ALPN_MESH_H2 "\x09" PL_ALPN_MESH;

static void err_fmt(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char lib[256] = "";

	if (e)
		ERR_error_string_n(e, lib, sizeof(lib));
	ERR_clear_error();
	snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", lib);
}

int pl_x509_spiffe_id(X509 *cert, char *out, size_t outlen)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int found = 0;

	if (!names)
		return 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
		if (n->type != GEN_URI)
			continue;
		const unsigned char *s = ASN1_STRING_get0_data(n->d.uniformResourceIdentifier);
		int len = ASN1_STRING_length(n->d.uniformResourceIdentifier);
		if (len < 9 || strncmp((const char *)s, "spiffe://", 9) != 0)
			continue;
		if (found++ || (size_t)len >= outlen || memchr(s, '\0', (size_t)len)) {
			found = -1;
			break;
		}
		memcpy(out, s, (size_t)len);
		out[len] = '\0';
	}
	GENERAL_NAMES_free(names);
	return found;
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, alpn_both, sizeof(alpn_both) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *ctx_new(bool server, X509 *leaf, STACK_OF(X509) *chain, EVP_PKEY *pkey, X509_STORE *store,
			char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx) {
		err_fmt(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* AES-128-GCM first: the cheapest AEAD with AES-NI, and strong enough for a mesh hop. */
	SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
	SSL_CTX_set1_groups_list(ctx, "X25519:P-256");
	/* Idle connections give their record buffers back; the proxy's RSS stays flat. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A peer that drops TCP without close_notify is an end of stream: the relay carries the app's framing. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	/* One read(2) per burst of records instead of a header read and a body read per record. */
	SSL_CTX_set_read_ahead(ctx, 1);
	if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, pkey) != 1) {
		err_fmt(err, errlen, "tls.crt/tls.key");
		SSL_CTX_free(ctx);
		return NULL;
	}
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i));
	if (SSL_CTX_check_private_key(ctx) != 1) {
		err_fmt(err, errlen, "tls.key does not match the certificate in tls.crt");
		SSL_CTX_free(ctx);
		return NULL;
	}
	X509_STORE_up_ref(store);
	SSL_CTX_set_cert_store(ctx, store);
	if (server) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		/* No resumption: tickets would cost a write per handshake and nothing reuses them. */
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_alpn_protos(ctx, alpn_wire, sizeof(alpn_wire) - 1);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	return ctx;
}

pl_tls_creds *pl_tls_creds_load(const char *crt, size_t crtlen, const char *key, size_t keylen,
				const char *ca, size_t calen, int64_t now_unix, char *err, size_t errlen)
{
	pl_tls_creds *c = NULL;
	BIO *bio = NULL;
	X509 *leaf = NULL, *x;
	STACK_OF(X509) *chain = sk_X509_new_null();
	EVP_PKEY *pkey = NULL;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vctx = NULL;
	char id[2048];
	int nroots = 0;

	ERR_clear_error();
	bio = BIO_new_mem_buf(crt, (int)crtlen);
	leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!leaf) {
		err_fmt(err, errlen, "tls.crt: no PEM certificate");
		goto out;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		sk_X509_push(chain, x);
	ERR_clear_error();
	BIO_free(bio);
	bio = BIO_new_mem_buf(key, (int)keylen);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!pkey) {
		err_fmt(err, errlen, "tls.key: no PEM private key");
		goto out;
	}
	BIO_free(bio);
	bio = BIO_new_mem_buf(ca, (int)calen);
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509_STORE_add_cert(store, x);
		X509_free(x);
		nroots++;
	}
	ERR_clear_error();
	if (!nroots) {
		snprintf(err, errlen, "ca.crt: no PEM certificate");
		goto out;
	}
	int64_t nb = asn1_unix(X509_get0_notBefore(leaf)), na = asn1_unix(X509_get0_notAfter(leaf));
	if (now_unix >= na) {
		snprintf(err, errlen, "tls.crt: certificate expired %lld s ago", (long long)(now_unix - na));
		goto out;
	}
	if (now_unix < nb) {
		snprintf(err, errlen, "tls.crt: certificate not valid for another %lld s", (long long)(nb - now_unix));
		goto out;
	}
	int nid = pl_x509_spiffe_id(leaf, id, sizeof(id));
	if (nid != 1) {
		snprintf(err, errlen, "tls.crt: %s", nid == 0 ? "no spiffe:// URI SAN" : "more than one spiffe:// URI SAN");
		goto out;
	}
	vctx = X509_STORE_CTX_new();
	if (!vctx || X509_STORE_CTX_init(vctx, store, leaf, chain) != 1) {
		err_fmt(err, errlen, "X509_STORE_CTX_init");
		goto out;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(vctx), (time_t)now_unix);
	if (X509_verify_cert(vctx) != 1) {
		snprintf(err, errlen, "tls.crt: does not chain to ca.crt: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->refs = 1;
	c->not_before = nb;
	c->not_after = na;
	c->nroots = nroots;
	memcpy(c->spiffe_id, id, sizeof(id));
	c->client = ctx_new(false, leaf, chain, pkey, store, err, errlen);
	c->server = c->client ? ctx_new(true, leaf, chain, pkey, store, err, errlen) : NULL;
	if (!c->server) {
		pl_tls_creds_unref(c);
		c = NULL;
	}
out:
	X509_STORE_CTX_free(vctx);
	BIO_free(bio);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(pkey);
	X509_STORE_free(store);
	ERR_clear_error();
	return c;
}

void pl_tls_creds_ref(pl_tls_creds *c) { c->refs++; }

void pl_tls_creds_unref(pl_tls_creds *c)
{
	if (!c || --c->refs > 0)
		return;
	SSL_CTX_free(c->client);
	SSL_CTX_free(c->server);
	free(c);
}

const char *pl_tls_creds_spiffe_id(const pl_tls_creds *c) { return c->spiffe_id; }
int64_t pl_tls_creds_not_after(const pl_tls_creds *c) { return c->not_after; }
int64_t pl_tls_creds_not_before(const pl_tls_creds *c) { return c->not_before; }
int pl_tls_creds_nroots(const pl_tls_creds *c) { return c->nroots; }

static pl_tls *session_new(pl_tls_creds *c, int fd, bool server)
{
	pl_tls *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ssl = SSL_new(server ? c->server : c->client);
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	if (server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	pl_tls_creds_ref(c);
	t->creds = c;
	return t;
}

pl_tls *pl_tls_client_new(pl_tls_creds *c, int fd) { return session_new(c, fd, false); }
pl_tls *pl_tls_server_new(pl_tls_creds *c, int fd) { return session_new(c, fd, true); }

void pl_tls_free(pl_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	pl_tls_creds_unref(t->creds);
	free(t);
}

/* Maps an SSL_get_error result after a failed call. */
static int io_error(pl_tls *t, int ret)
{
	int e = SSL_get_error(t->ssl, ret);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		return PL_IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return PL_IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == EAGAIN)
			return PL_IO_WANT_READ;
		return errno ? -errno : -ECONNRESET;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

int pl_tls_handshake(pl_tls *t, const char **reason, char *err, size_t errlen)
{
	ERR_clear_error();
	errno = 0;
	int ret = SSL_do_handshake(t->ssl);
	if (ret == 1)
		return 0;
	int e = SSL_get_error(t->ssl, ret);
	if (e == SSL_ERROR_WANT_READ)
		return PL_IO_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return PL_IO_WANT_WRITE;
	long vr = SSL_get_verify_result(t->ssl);
	if (vr != X509_V_OK) {
		*reason = "certificate_verify";
		snprintf(err, errlen, "peer certificate: %s", X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return -1;
	}
	/* With SSL_OP_IGNORE_UNEXPECTED_EOF a TCP FIN mid-handshake reads as a close_notify (ZERO_RETURN). */
	if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
		*reason = errno == ECONNRESET || errno == EPIPE ? "reset" : "eof";
		snprintf(err, errlen, "connection closed during the handshake%s%s", errno ? ": " : "",
			 errno ? strerror(errno) : "");
		ERR_clear_error();
		return -1;
	}
	unsigned long le = ERR_peek_error();
	*reason = ERR_GET_REASON(le) == SSL_R_NO_APPLICATION_PROTOCOL ? "no_alpn"
		  : ERR_GET_REASON(le) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE ? "no_client_certificate"
		  : ERR_GET_REASON(le) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ? "certificate_required"
		  : ERR_GET_REASON(le) == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
				    ERR_GET_REASON(le) == SSL_R_TLSV1_ALERT_UNKNOWN_CA
			  ? "certificate_rejected_by_peer"
			  : "protocol";
	err_fmt(err, errlen, "TLS handshake");
	return -1;
}

ssize_t pl_tls_read(pl_tls *t, void *buf, size_t len)
{
	size_t n = 0;

	errno = 0;
	if (SSL_read_ex(t->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	return io_error(t, 0);
}

ssize_t pl_tls_peek(pl_tls *t, void *buf, size_t len)
{
	size_t n = 0;

	errno = 0;
	if (SSL_peek_ex(t->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	return io_error(t, 0);
}

ssize_t pl_tls_write(pl_tls *t, const void *buf, size_t len)
{
	size_t n = 0;

	errno = 0;
	if (SSL_write_ex(t->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	int r = io_error(t, 0);
	return r == 0 ? -EPIPE : r;
}

int pl_tls_shutdown(pl_tls *t)
{
	errno = 0;
	int ret = SSL_shutdown(t->ssl);
	if (ret >= 0)
		return 0; /* close_notify sent (1: theirs seen too) */
	int r = io_error(t, ret);
	return r == 0 ? 0 : r;
}

/* Raw bytes read ahead count too: epoll will not announce them again. */
bool pl_tls_pending(const pl_tls *t) { return SSL_has_pending(t->ssl) == 1; }

bool pl_tls_peer_spiffe_id(const pl_tls *t, char *out, size_t outlen)
{
	X509 *peer = SSL_get0_peer_certificate(t->ssl);

	return peer && pl_x509_spiffe_id(peer, out, outlen) == 1;
}

const char *pl_tls_version(const pl_tls *t) { return SSL_get_version(t->ssl); }

bool pl_spiffe_in_domain(const char *id, const char *td)
{
	size_t n = strlen(td);

	return n > 0 && strncmp(id, "spiffe://", 9) == 0 && strncmp(id + 9, td, n) == 0 && id[9 + n] == '/';
}

void pl_tls_offer_h2(pl_tls *t)
{
	SSL_set_alpn_protos(t->ssl, alpn_both, sizeof(alpn_both) - 1);
}

bool pl_tls_alpn_h2(const pl_tls *t)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;

	SSL_get0_alpn_selected(t->ssl, &p, &n);
	return n == sizeof(PL_ALPN_MESH_H2) - 1 && memcmp(p, PL_ALPN_MESH_H2, n) == 0;
}
