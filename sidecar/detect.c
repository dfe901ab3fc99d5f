/* Inbound protocol detection: is the first record a TLS ClientHello offering ALPN pillion/1? Pure, bounded reads only. */
#include <string.h>

#include "pki/tls.h"
#include "proxy.h"

#define REC_MAX (16384 + 5)

static unsigned get16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* Searches the extensions of a complete ClientHello body for ALPN pillion/1. */
static bool offers_mesh_alpn(const unsigned char *p, size_t len)
{
	size_t i = 2 + 32; /* legacy_version, random */

	if (i + 1 > len)
		return false;
	i += 1 + p[i]; /* session id */
	if (i + 2 > len)
		return false;
	i += 2 + get16(p + i); /* cipher suites */
	if (i + 1 > len)
		return false;
	i += 1 + p[i]; /* compression methods */
	if (i + 2 > len)
		return false;
	size_t end = i + 2 + get16(p + i);
	if (end > len)
		return false;
	for (i += 2; i + 4 <= end;) {
		unsigned type = get16(p + i), elen = get16(p + i + 2);
		size_t d = i + 4;
		if (d + elen > end)
			return false;
		if (type == 16 && elen >= 2) { /* application_layer_protocol_negotiation */
			size_t lend = d + 2 + get16(p + d);
			if (lend > d + elen)
				return false;
			for (size_t j = d + 2; j < lend;) {
				size_t n = p[j];
				if (j + 1 + n > lend)
					return false;
				if (n == sizeof(PL_ALPN_MESH) - 1 && memcmp(p + j + 1, PL_ALPN_MESH, n) == 0)
					return true;
				j += 1 + n;
			}
			return false;
		}
		i = d + elen;
	}
	return false;
}

enum px_detect px_detect(const unsigned char *p, size_t len, size_t *need)
{
	*need = 0;
	if (len == 0) {
		*need = 1;
		return PX_DETECT_MORE;
	}
	if (p[0] != 0x16)
		return PX_DETECT_PLAIN;
	if (len < 5) {
		*need = 5;
		return PX_DETECT_MORE;
	}
	if (p[1] != 0x03 || p[2] > 0x04)
		return PX_DETECT_PLAIN;
	size_t rec = get16(p + 3);
	if (rec < 4 || rec + 5 > REC_MAX)
		return PX_DETECT_TLS_OTHER;
	if (len < rec + 5) {
		*need = rec + 5;
		return PX_DETECT_MORE;
	}
	const unsigned char *h = p + 5;
	if (h[0] != 0x01) /* client_hello */
		return PX_DETECT_TLS_OTHER;
	size_t hlen = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	/* A ClientHello split over several records is not what a Pillion proxy sends. */
	if (hlen + 4 > rec)
		return PX_DETECT_TLS_OTHER;
	return offers_mesh_alpn(h + 4, hlen) ? PX_DETECT_TLS_MESH : PX_DETECT_TLS_OTHER;
}
