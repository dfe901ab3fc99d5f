/* HTTP/2 to HTTP/1.1 and back: pure translations of heads, checked byte by byte (docs/http2.md). */
#include <string.h>
#include <strings.h>

#include "h1head.h"
#include "h2h1.h"
#include "http1/http1.h"

/* RFC 9110 5.6.2 token characters, lowercase only: HTTP/2 field names are lowercase. */
static bool name_byte(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool token(const char *p, size_t n, bool lower_only)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!name_byte(c) && (lower_only || c < 'A' || c > 'Z'))
			return false;
	}
	return true;
}

/* A field value an HTTP/1 parser reads as one value: visible bytes, spaces and tabs inside, no
 * control byte (CR, LF and NUL above all), nothing at either end an HTTP/1 parser would trim. */
static bool value_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return !n || (p[0] != ' ' && p[0] != '\t' && p[n - 1] != ' ' && p[n - 1] != '\t');
}

/* An origin-form target (or "*"): visible ASCII only, so no space can end it early. */
static bool target_ok(const char *p, size_t n, bool options)
{
	if (n == 1 && p[0] == '*')
		return options;
	if (!n || p[0] != '/')
		return false;
	/* no fragment either: lib/http1 refuses one (servers read it differently) */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f || p[i] == '#')
			return false;
	return true;
}

/* host[:port] or [v6]:port: reg-name, IP-literal and port characters; no userinfo. */
static bool authority_ok(const char *p, size_t n)
{
	if (n > 1024)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-._~!$&'()*+,;=:[]%", c)) || !c)
			return false;
	}
	return true;
}

static bool is(const pl_h2_field *f, const char *name)
{
	size_t n = strlen(name);
	return f->namelen == n && memcmp(f->name, name, n) == 0;
}

/* Fields that mean something to one HTTP/2 connection only (RFC 9113 8.2.2) or to HTTP/1 framing:
 * the HTTP/2 layer refuses most of them; what it let through is refused here too. */
static bool connection_specific(const pl_h2_field *f)
{
	return is(f, "connection") || is(f, "keep-alive") || is(f, "proxy-connection") || is(f, "transfer-encoding") ||
	       is(f, "upgrade") || is(f, "http2-settings");
}

static void put(char **b, uint32_t *len, uint32_t *cap, const char *p, size_t n) { px_put(b, len, cap, p, n); }

const char *px_h2h1_request(const pl_h2_field *f, size_t n, bool body, const char *skip, char **b, uint32_t *len,
			    uint32_t *cap, enum px_h1_framing *framing, uint64_t *length)
{
	const pl_h2_field *method = NULL, *path = NULL, *auth = NULL, *host = NULL, *cl = NULL;
	size_t ncookie = 0, nfields = 0, bytes = 0;

	for (size_t i = 0; i < n; i++) {
		const pl_h2_field *x = &f[i];
		if (x->namelen && x->name[0] == ':') {
			const pl_h2_field **slot = is(x, ":method") ? &method : is(x, ":path") ? &path
						  : is(x, ":authority")         ? &auth
						  : NULL;
			if (!slot && !is(x, ":scheme"))
				return "a pseudo-field other than :method, :path, :authority and :scheme";
			if (slot && *slot)
				return "a pseudo-field twice";
			if (slot)
				*slot = x;
			continue;
		}
		if (!token(x->name, x->namelen, true))
			return "a field name with a byte outside the lowercase token characters";
		if (!value_ok(x->value, x->valuelen))
			return "a field value with a control byte (CR, LF, NUL) or whitespace at an end";
		if (connection_specific(x))
			return "a connection-specific field (connection, transfer-encoding, upgrade, ...)";
		if (is(x, "host")) {
			if (host)
				return "host twice";
			host = x;
		} else if (is(x, "content-length")) {
			if (cl)
				return "content-length twice";
			cl = x;
		} else if (is(x, "cookie")) {
			ncookie++;
		}
		nfields++;
		bytes += x->namelen + x->valuelen + 4;
	}
	if (!method || !token(method->value, method->valuelen, false))
		return ":method missing or not a token";
	bool options = method->valuelen == 7 && memcmp(method->value, "OPTIONS", 7) == 0;
	if (method->valuelen == 7 && memcmp(method->value, "CONNECT", 7) == 0)
		return "CONNECT";
	if (!path || !target_ok(path->value, path->valuelen, options))
		return ":path missing, not origin-form, or with a space, control byte or fragment (#)";
	if (auth && !authority_ok(auth->value, auth->valuelen))
		return ":authority with a byte outside host and port characters";
	if (host && !authority_ok(host->value, host->valuelen))
		return "host with a byte outside host and port characters";
	if (auth && host && (auth->valuelen != host->valuelen || strncasecmp(auth->value, host->value, auth->valuelen)))
		return ":authority and host differ";
	*length = 0;
	if (cl) {
		if (!cl->valuelen || cl->valuelen > 18)
			return "content-length empty or too long";
		for (size_t i = 0; i < cl->valuelen; i++) {
			if (cl->value[i] < '0' || cl->value[i] > '9')
				return "content-length not a number";
			*length = *length * 10 + (uint64_t)(cl->value[i] - '0');
		}
		if (!body && *length)
			return "content-length above 0 on a request with no body";
	}
	/* What the HTTP/1 server would refuse with 431: refused here, before anything is sent. */
	if (nfields + 2 > PL_H1_DEFAULT_MAX_HEADERS ||
	    bytes + method->valuelen + path->valuelen + (auth ? auth->valuelen : 0) + 64 > PL_H1_DEFAULT_MAX_HEAD)
		return "more fields or bytes than an HTTP/1 server takes";

	const pl_h2_field *a = auth ? auth : host;
	put(b, len, cap, method->value, method->valuelen);
	put(b, len, cap, " ", 1);
	put(b, len, cap, path->value, path->valuelen);
	put(b, len, cap, " HTTP/1.1\r\nhost: ", 17);
	if (a)
		put(b, len, cap, a->value, a->valuelen);
	put(b, len, cap, "\r\n", 2);
	for (size_t i = 0; i < n; i++) {
		const pl_h2_field *x = &f[i];
		if (!x->namelen || x->name[0] == ':' || is(x, "host") || is(x, "te") || is(x, "cookie") ||
		    (skip && is(x, skip)))
			continue;
		put(b, len, cap, x->name, x->namelen);
		put(b, len, cap, ": ", 2);
		put(b, len, cap, x->value, x->valuelen);
		put(b, len, cap, "\r\n", 2);
	}
	/* One cookie field on HTTP/1: the crumbs joined with "; " (RFC 9113 8.2.3). */
	for (size_t i = 0, k = 0; i < n && ncookie; i++) {
		if (!is(&f[i], "cookie"))
			continue;
		if (k++)
			put(b, len, cap, "; ", 2);
		else
			put(b, len, cap, "cookie: ", 8);
		put(b, len, cap, f[i].value, f[i].valuelen);
		if (k == ncookie)
			put(b, len, cap, "\r\n", 2);
	}
	if (cl) {
		*framing = *length ? PX_H1_LENGTH : PX_H1_NO_BODY;
	} else if (body) {
		*framing = PX_H1_CHUNKED;
		put(b, len, cap, "transfer-encoding: chunked\r\n", 28);
	} else {
		*framing = PX_H1_NO_BODY;
		/* Some HTTP/1 servers wait for a body of a POST that says nothing about one. */
		if ((method->valuelen == 4 && memcmp(method->value, "POST", 4) == 0) ||
		    (method->valuelen == 3 && memcmp(method->value, "PUT", 3) == 0) ||
		    (method->valuelen == 5 && memcmp(method->value, "PATCH", 5) == 0))
			put(b, len, cap, "content-length: 0\r\n", 19);
	}
	put(b, len, cap, "\r\n", 2);
	return NULL;
}

size_t px_h1_fields_h2(const pl_h1_msg *m, unsigned drop, pl_h2_field *out, size_t k, size_t max, char *names)
{
	size_t used = 0;

	for (uint32_t i = 0; i < m->nheaders && k < max; i++) {
		const pl_h1_header *h = &m->headers[i];
		if (pl_h1_hop_by_hop(m, h->name) || pl_h1_eq(h->name, "transfer-encoding") ||
		    ((drop & PX_H2F_LENGTH) && pl_h1_eq(h->name, "content-length")) ||
		    ((drop & PX_H2F_REQUEST) &&
		     (pl_h1_eq(h->name, "host") || pl_h1_eq(h->name, "expect") || pl_h1_eq(h->name, PX_ORIG_PROTO))))
			continue;
		char *nm = names + used;
		for (uint32_t j = 0; j < h->name.len; j++) {
			char c = h->name.p[j];
			nm[j] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		used += h->name.len;
		out[k++] = (pl_h2_field){nm, h->value.p, h->name.len, h->value.len};
	}
	return k;
}

size_t px_h1h2_response(const pl_h1_msg *m, bool drop_length, pl_h2_field *out, size_t max, char *names, char status[4])
{
	size_t k = 0;

	int st = m->status % 1000;
	status[0] = (char)('0' + st / 100);
	status[1] = (char)('0' + st / 10 % 10);
	status[2] = (char)('0' + st % 10);
	status[3] = 0;
	if (max)
		out[k++] = (pl_h2_field){":status", status, 7, 3};
	return px_h1_fields_h2(m, drop_length ? PX_H2F_LENGTH : 0, out, k, max, names);
}
