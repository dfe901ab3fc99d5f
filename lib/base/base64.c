/* Base64 encoding and strict decoding. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *pl_base64_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

	if (!out)
		abort();
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < len ? p[i + 2] : 0);
		*o++ = alphabet[v >> 18 & 63];
		*o++ = alphabet[v >> 12 & 63];
		*o++ = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? alphabet[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int val(char c)
{
	const char *q = c ? strchr(alphabet, c) : NULL;

	return q ? (int)(q - alphabet) : -1;
}

char *pl_base64_decode(const char *s, size_t *len)
{
	size_t n = strlen(s);

	if (n % 4)
		return NULL;
	char *out = malloc(n / 4 * 3 + 1);
	size_t o = 0;
	if (!out)
		abort();
	for (size_t i = 0; i < n; i += 4) {
		int a = val(s[i]), b = val(s[i + 1]), c = s[i + 2] == '=' ? 0 : val(s[i + 2]),
		    d = s[i + 3] == '=' ? 0 : val(s[i + 3]);
		bool last = i + 4 == n;
		if (a < 0 || b < 0 || c < 0 || d < 0 || ((s[i + 2] == '=' || s[i + 3] == '=') && !last) ||
		    (s[i + 2] == '=' && s[i + 3] != '=')) {
			free(out);
			return NULL;
		}
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		out[o++] = (char)(v >> 16);
		if (s[i + 2] != '=')
			out[o++] = (char)(v >> 8 & 255);
		if (s[i + 3] != '=')
			out[o++] = (char)(v & 255);
	}
	out[o] = '\0';
	if (len)
		*len = o;
	return out;
}

char *pl_base64_decode_relaxed(const char *s, size_t *len)
{
	size_t n = strlen(s), k = 0, pad = 0;
	char *norm = malloc(n + 4);

	if (!norm)
		abort();
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad) { /* data after padding */
			free(norm);
			return NULL;
		}
		norm[k++] = c;
	}
	/* Re-pad canonically; a lone trailing character (k % 4 == 1) gets three and is refused. */
	while (k % 4)
		norm[k++] = '=';
	norm[k] = '\0';
	size_t got = 0;
	char *out = pad > 2 ? NULL : pl_base64_decode(norm, &got);
	free(norm);
	if (out && got == 0) {
		free(out);
		out = NULL;
	}
	if (out && len)
		*len = got;
	return out;
}
