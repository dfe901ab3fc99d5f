/* Certificate helpers shared by the pki module's files (OpenSSL types; not for users of pki). */
#ifndef PILLION_PKI_X509_H
#define PILLION_PKI_X509_H

#include <stddef.h>

#include <openssl/x509.h>

/* The single spiffe:// URI SAN of cert into out; 1 found, 0 none, -1 several or too long for out. */
int pl_x509_spiffe_id(X509 *cert, char *out, size_t outlen);

#endif
