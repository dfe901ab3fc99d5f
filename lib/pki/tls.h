/* Mesh TLS: credentials from PEM (leaf, key, trust bundle), TLS 1.3 mTLS sessions, SPIFFE IDs. The only OpenSSL user of the proxy. */
#ifndef PILLION_PKI_TLS_H
#define PILLION_PKI_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PL_ALPN_MESH "pillion/1"
/* Mesh mTLS carrying HTTP/2 in which HTTP/1 requests may ride (marked pillion-orig-proto): offered
 * by a client beside pillion/1 and chosen by a server that knows it, so an older peer still
 * answers with pillion/1 and gets only what it understands. */
#define PL_ALPN_MESH_H2 "pillion/h2"

/* I/O results besides byte counts, 0 (end of stream) and -errno. */
#define PL_IO_WANT_READ  (-100001)
#define PL_IO_WANT_WRITE (-100002)

/* Reference-counted credentials: one client and one server context sharing a leaf and a bundle. */
typedef struct pl_tls_creds pl_tls_creds;
typedef struct pl_tls pl_tls;

/*
 * Builds credentials from PEM bytes: tls.crt (leaf first, then any intermediates),
 * tls.key, ca.crt (one or more roots: old and new during a rollover). Checks that the
 * key matches, that the leaf chains to the bundle, that it is valid at now_unix, and
 * that it carries exactly one spiffe:// URI SAN. On failure returns NULL and writes a
 * message naming the file and the problem to err.
 */
pl_tls_creds *pl_tls_creds_load(const char *crt, size_t crtlen, const char *key, size_t keylen,
				const char *ca, size_t calen, int64_t now_unix, char *err, size_t errlen);
void pl_tls_creds_ref(pl_tls_creds *c);
void pl_tls_creds_unref(pl_tls_creds *c);
const char *pl_tls_creds_spiffe_id(const pl_tls_creds *c);
int64_t pl_tls_creds_not_after(const pl_tls_creds *c);   /* unix seconds */
int64_t pl_tls_creds_not_before(const pl_tls_creds *c);
int pl_tls_creds_nroots(const pl_tls_creds *c);

/* A session on a connected non-blocking socket; the session holds a reference to creds. */
pl_tls *pl_tls_client_new(pl_tls_creds *c, int fd);
pl_tls *pl_tls_server_new(pl_tls_creds *c, int fd);
void pl_tls_free(pl_tls *t);
/* Client, before the handshake: offer PL_ALPN_MESH_H2 first, PL_ALPN_MESH beside it. */
void pl_tls_offer_h2(pl_tls *t);
/* After the handshake: whether PL_ALPN_MESH_H2 was chosen. */
bool pl_tls_alpn_h2(const pl_tls *t);

/*
 * Advances the handshake: 0 when done, PL_IO_WANT_READ/WRITE, or -1 with a short
 * metric-friendly reason in *reason ("certificate_verify", "no_alpn", "protocol",
 * "eof", "reset") and detail (the library's message) in err.
 */
int pl_tls_handshake(pl_tls *t, const char **reason, char *err, size_t errlen);
/* >0 bytes, 0 end of stream (close_notify or TCP FIN), PL_IO_WANT_*, or -errno (-ECONNRESET, -EPROTO). */
ssize_t pl_tls_read(pl_tls *t, void *buf, size_t len);
/* As pl_tls_read, leaving the bytes to be read again. */
ssize_t pl_tls_peek(pl_tls *t, void *buf, size_t len);
ssize_t pl_tls_write(pl_tls *t, const void *buf, size_t len);
/* Sends close_notify (our half-close). 0 done, PL_IO_WANT_*, or -errno. */
int pl_tls_shutdown(pl_tls *t);
/* True when bytes (decrypted, or read ahead and not yet decrypted) wait inside the session. */
bool pl_tls_pending(const pl_tls *t);
/* The peer certificate's spiffe:// URI SAN into out; false when absent or more than one. */
bool pl_tls_peer_spiffe_id(const pl_tls *t, char *out, size_t outlen);
const char *pl_tls_version(const pl_tls *t);

/* "spiffe://<td>/..." -> true when the ID's trust domain is td. */
bool pl_spiffe_in_domain(const char *id, const char *td);

#endif
