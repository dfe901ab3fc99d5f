/* The mesh certificate authority: a root or intermediate that issues SPIFFE leaf certificates, trust bundles, renewal checks. */
#ifndef PILLION_PKI_CA_H
#define PILLION_PKI_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PL_CA_DEFAULT_TTL_S   (10 * 365 * 86400LL) /* a generated root: 10 years */
#define PL_CA_MAX_TTL_S       (100 * 365 * 86400LL)
#define PL_CA_CLOCK_SKEW_S    300                  /* notBefore is backdated by this much */
#define PL_SPIFFE_ID_MAX      2048
#define PL_DNS_NAMES_MAX      16                   /* DNS SANs in a server certificate */

/*
 * A loaded or generated CA: its certificate, private key, the chain that goes after a
 * leaf in tls.crt, and the trust bundle (roots). Immutable once made, so pl_ca_issue may
 * run on several threads at once. Freed (key wiped) by pl_ca_free.
 */
typedef struct pl_ca pl_ca;

/* A freshly issued leaf. Owned by the caller; release with pl_issued_clear. */
typedef struct pl_issued {
	char *cert_pem;     /* the leaf, then the CA and its intermediates when the CA is not a root (tls.crt) */
	char *key_pem;      /* PKCS#8 PEM of a new ECDSA P-256 key (tls.key); wiped by pl_issued_clear */
	int64_t not_before; /* unix seconds */
	int64_t not_after;
	bool clamped;       /* not_after was cut to the CA's own notAfter: the leaf lives shorter than asked */
} pl_issued;

/*
 * A new self-signed root: ECDSA P-256, subject O=pillion, CN=pillion mesh CA <trust
 * domain> (cut to 64 bytes), basicConstraints critical CA:TRUE pathlen:0 (it signs leaves
 * only), keyUsage critical keyCertSign+cRLSign, SKID and AKID, a random 128-bit serial,
 * valid from now - PL_CA_CLOCK_SKEW_S for ttl_s seconds (<= 0: PL_CA_DEFAULT_TTL_S).
 * NULL with a message in err when the trust domain or ttl is bad or OpenSSL fails.
 */
pl_ca *pl_ca_generate(const char *trust_domain, int64_t now_unix, int64_t ttl_s, char *err, size_t errlen);

/*
 * A user-supplied CA, e.g. a cert-manager Secret: cert_pem (tls.crt) holds the CA
 * certificate first, then optionally its issuers; key_pem (tls.key) its key; bundle_pem
 * (ca.crt, may be NULL/empty) the trusted roots. Without a bundle, the self-signed
 * certificates of tls.crt are the roots (a plain root CA is just tls.crt + tls.key).
 * Refused, with a message naming the Secret key and the problem, unless: the certificate
 * has basicConstraints CA:TRUE; its keyUsage, when present, has keyCertSign (OpenSSL's
 * own verifier accepts a CA without keyUsage, so do we); an extendedKeyUsage, when
 * present, allows serverAuth and clientAuth; the key is EC P-256/P-384 or RSA >= 2048
 * bits and matches; the certificate is valid at now_unix; and it chains to the bundle
 * (no partial chains: the proxies' verifier would not accept one either).
 */
pl_ca *pl_ca_load(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
		  const char *bundle_pem, size_t bundle_len, int64_t now_unix, char *err, size_t errlen);

/* Frees the CA and wipes its key. NULL is fine. */
void pl_ca_free(pl_ca *ca);

/*
 * The CA as a Secret holds it: *cert_pem the CA certificate and the issuers it was loaded
 * with (tls.crt), *key_pem its PKCS#8 key (tls.key). Both malloc'ed and owned by the
 * caller; release the key with pl_pem_secret_free. 0 or -ENOMEM.
 */
int pl_ca_export(const pl_ca *ca, char **cert_pem, char **key_pem);

/* The trust bundle (ca.crt) as PEM, malloc'ed, owned by the caller. 0 or -ENOMEM. */
int pl_ca_bundle(const pl_ca *ca, char **bundle_pem);

int64_t pl_ca_not_before(const pl_ca *ca);
int64_t pl_ca_not_after(const pl_ca *ca);

/*
 * Issues a leaf for spiffe_id (checked with pl_spiffe_id_check): a fresh ECDSA P-256
 * key, empty subject with a critical URI SAN (RFC 5280 4.2.1.6; a CN adds nothing a
 * SPIFFE peer reads), keyUsage critical digitalSignature, extendedKeyUsage serverAuth
 * and clientAuth, basicConstraints critical CA:FALSE, AKID, a random 128-bit serial.
 * Valid from now - PL_CA_CLOCK_SKEW_S (never before the CA's notBefore) until now + ttl_s,
 * clamped to the CA's notAfter (out->clamped says so). On success fills *out (the caller
 * owns it: pl_issued_clear). Returns 0, -EINVAL (bad ID or ttl_s not in 1..PL_CA_MAX_TTL_S),
 * -EKEYEXPIRED (the CA is not valid at now_unix) or -EIO (OpenSSL failed), with err set.
 */
int pl_ca_issue(const pl_ca *ca, const char *spiffe_id, int64_t now_unix, int64_t ttl_s, pl_issued *out,
		char *err, size_t errlen);

/*
 * Issues a TLS server certificate, such as an admission webhook's, for dns_names[0..n)
 * (1 to PL_DNS_NAMES_MAX distinct lowercase RFC 1123 host names; no wildcards, no IPs):
 * a fresh ECDSA P-256 key, subject CN=dns_names[0], a non-critical subjectAltName with
 * every name as a dNSName (what TLS clients match, Go's included), keyUsage critical
 * digitalSignature, extendedKeyUsage serverAuth only, basicConstraints critical CA:FALSE,
 * AKID, a random 128-bit serial; validity, chain in cert_pem, return values and *out as
 * pl_ca_issue (-EINVAL also for bad names).
 */
int pl_ca_issue_server(const pl_ca *ca, const char *const *dns_names, size_t n, int64_t now_unix, int64_t ttl_s,
		       pl_issued *out, char *err, size_t errlen);

/* Frees an issued leaf's PEMs (the key wiped first) and zeroes *is. */
void pl_issued_clear(pl_issued *is);

/* Wipes a NUL-terminated PEM holding a private key, then frees it. NULL is fine. */
void pl_pem_secret_free(char *pem);

/*
 * A SPIFFE ID usable for a workload: spiffe://<trust domain>/<path>, trust domain of
 * [a-z0-9._-] (at most 255), path of one or more segments of [A-Za-z0-9._-] that are
 * not "." or "..", no trailing '/', no port, user info, query, fragment or percent
 * encoding, at most PL_SPIFFE_ID_MAX bytes. 0, or -EINVAL with the reason in err.
 */
int pl_spiffe_id_check(const char *id, char *err, size_t errlen);

/*
 * The union of two PEM bundles of roots, for ca.crt during a rollover: every certificate
 * of bundle_pem, then those of add_pem, in that order, each once (DER equality), those
 * expired at now_unix dropped. *out_pem is malloc'ed and owned by the caller (an empty
 * string when nothing is left). Returns 0, or -EINVAL (a certificate block that does not
 * parse; *out_pem is NULL) or -ENOMEM.
 */
int pl_ca_bundle_merge(const char *bundle_pem, size_t bundle_len, const char *add_pem, size_t add_len,
		       int64_t now_unix, char **out_pem);

/*
 * The first certificate of cert_pem: its validity (unix seconds) and, when spiffe_id is
 * not NULL, its single spiffe:// URI SAN ("" when absent or more than one, or too long
 * for idlen). 0, or -EINVAL when there is no parsable certificate.
 */
int pl_cert_times(const char *cert_pem, size_t cert_len, int64_t *not_before, int64_t *not_after, char *spiffe_id,
		  size_t idlen);

/*
 * True when a certificate valid over [not_before, not_after) should be replaced at now:
 * now >= not_after - renew_before_s (so exactly at that instant too), or the window is
 * empty (not_after <= not_before: an absent or unreadable certificate, pass 0, 0), or
 * now < not_before (a clock gone back: no peer would accept it yet).
 */
bool pl_cert_needs_renewal(int64_t not_before, int64_t not_after, int64_t now, int64_t renew_before_s);

/*
 * True when the first certificate of leaf_pem chains, through the others in leaf_pem,
 * to a root of bundle_pem at now_unix (every certificate on the path valid then).
 */
bool pl_cert_signed_by(const char *leaf_pem, size_t leaf_len, const char *bundle_pem, size_t bundle_len,
		       int64_t now_unix);

/*
 * True when the first certificate of cert_pem carries exactly the DNS SANs dns_names[0..n)
 * (distinct names, any order; no other dNSName) and, when it has an extendedKeyUsage,
 * serverAuth in it: a server certificate still good for these names.
 */
bool pl_cert_dns_names_match(const char *cert_pem, size_t cert_len, const char *const *dns_names, size_t n);

/* True when key_pem holds the private key of the first certificate in cert_pem. */
bool pl_cert_key_matches(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len);

#endif
