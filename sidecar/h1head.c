/* Heads for the next hop: pure functions of a parsed HTTP/1 head (no I/O, no session state). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h1head.h"

void px_put(char **b, uint32_t *len, uint32_t *cap, const char *p, size_t n)
{
	if (*len + n > *cap) {
		uint32_t c = *cap ? *cap : 512;
		while (c < *len + n)
			c *= 2;
		char *nb = realloc(*b, c);
		if (!nb)
			abort();
		*b = nb;
		*cap = c;
	}
	memcpy(*b + *len, p, n);
	*len += (uint32_t)n;
}

void px_puts(char **b, uint32_t *len, uint32_t *cap, const char *s) { px_put(b, len, cap, s, strlen(s)); }

static bool drop_field(const pl_h1_msg *m, const pl_h1_header *h, bool keep_upgrade, bool drop_trace, unsigned drop)
{
	if ((drop & PX_DROP_HOST) && pl_h1_eq(h->name, "host"))
		return true;
	if ((drop & PX_DROP_OWN) && pl_h1_eq(h->name, PX_ERROR_FIELD))
		return true;
	if (drop_trace && (pl_h1_eq(h->name, "traceparent") || pl_h1_eq(h->name, "tracestate")))
		return true;
	return pl_h1_hop_by_hop(m, h->name) && !(keep_upgrade && pl_h1_eq(h->name, "upgrade"));
}

uint32_t px_fields_kept(const pl_h1_msg *m, bool keep_upgrade, bool drop_trace, unsigned drop_host)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < m->nheaders; i++)
		kept += !drop_field(m, &m->headers[i], keep_upgrade, drop_trace, drop_host);
	return kept;
}

int32_t px_rewrite_head(const pl_h1_msg *m, char *buf, const char *add, bool keep_upgrade, bool drop_trace,
			    const char *line, unsigned drop_host, char **sep, uint32_t *seplen)
{
	static char tmp[PL_H1_DEFAULT_MAX_HEAD + PL_H1_DEFAULT_MAX_LINE + 256];
	size_t addlen = strlen(add);
	uint32_t n, i, kept = px_fields_kept(m, keep_upgrade, drop_trace, drop_host);

	if (kept == m->nheaders && addlen == 0 && !line)
		return 0;
	/* What goes on must parse at the next hop, which has the same field limit: fields added here
	 * (Connection, Host, traceparent) must not take a head past it. */
	for (const char *p = add; (p = strchr(p, '\n')); p++)
		kept++;
	if (kept > PL_H1_DEFAULT_MAX_HEADERS)
		return PX_HEAD_TOO_MANY;
	if (line) {
		n = (uint32_t)strlen(line);
		memcpy(tmp, line, n);
	} else {
		const char *eol = memchr(buf, '\n', m->head_len);
		n = (uint32_t)(eol - buf) + 1;
		memcpy(tmp, buf, n);
	}
	for (i = 0; i < m->nheaders; i++) {
		const pl_h1_header *h = &m->headers[i];
		if (drop_field(m, h, keep_upgrade, drop_trace, drop_host))
			continue;
		memcpy(tmp + n, h->name.p, h->name.len);
		n += h->name.len;
		memcpy(tmp + n, ": ", 2);
		memcpy(tmp + n + 2, h->value.p, h->value.len);
		n += 2 + h->value.len;
		memcpy(tmp + n, "\r\n", 2);
		n += 2;
	}
	memcpy(tmp + n, add, addlen);
	n += (uint32_t)addlen;
	memcpy(tmp + n, "\r\n", 2);
	n += 2;
	if (n <= m->head_len) {
		memcpy(buf + m->head_len - n, tmp, n);
		return (int32_t)(m->head_len - n);
	}
	uint32_t cap = *seplen;
	px_put(sep, seplen, &cap, tmp, n);
	return -1;
}

int32_t px_request_head_out(const pl_h1_msg *m, char *buf, const char *add, bool keep_upgrade, bool drop_trace,
			    char **sep, uint32_t *seplen)
{
	/* HTTP/1.2..1.9 is read as 1.1 (RFC 9110 2.5) and goes on saying so: the next parser must not
	 * read another version than the one policy was applied for. */
	char *eol = memchr(buf, '\n', m->head_len);
	if (m->minor == 1 && eol && eol[-2] != '1')
		eol[-2] = '1';
	/* An absolute-form target ("http://web/a?b") goes on in origin-form ("/a?b"), its authority
	 * as Host (RFC 9112 3.2.2): the app then reads exactly the path policy matched, and one Host. */
	pl_h1_str t = m->target;
	if (m->method_id != PL_H1_CONNECT && t.len && t.p[0] != '/' && !(t.len == 1 && t.p[0] == '*')) {
		static char line[PL_H1_DEFAULT_MAX_LINE + 64];
		char addhost[PL_H1_DEFAULT_MAX_LINE + 256];
		const char *end = t.p + t.len, *a = memmem(t.p, t.len, "://", 3);
		if (a) {
			a += 3;
			const char *ae = a;
			while (ae < end && *ae != '/' && *ae != '?' && *ae != '#')
				ae++;
			const char *pe = ae;
			while (pe < end && *pe != '#')
				pe++;
			snprintf(line, sizeof(line), "%.*s %s%.*s HTTP/1.%d\r\n", (int)m->method.len, m->method.p,
				 ae < pe && *ae == '/' ? "" : "/", (int)(pe - ae), ae, m->minor);
			snprintf(addhost, sizeof(addhost), "host: %.*s\r\n%s", (int)(ae - a), a, add);
			return px_rewrite_head(m, buf, addhost, keep_upgrade, drop_trace, line, PX_DROP_HOST, sep, seplen);
		}
	}
	return px_rewrite_head(m, buf, add, keep_upgrade, drop_trace, NULL, 0, sep, seplen);
}

const char *px_reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

void px_local_answer(char **b, uint32_t *len, uint32_t *cap, int status, const char *cause, const char *msg, bool close,
		     int64_t retry_after_s)
{
	char head[1024];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\n" PX_ERROR_FIELD ": %s\r\n"
			 "content-length: %zu\r\n%s",
			 status, px_reason(status), cause, strlen(msg) + 10, close ? "connection: close\r\n" : "");

	px_put(b, len, cap, head, (size_t)n);
	if (status == 429 && retry_after_s > 0) {
		n = snprintf(head, sizeof(head), "retry-after: %lld\r\n", (long long)retry_after_s);
		px_put(b, len, cap, head, (size_t)n);
	}
	px_puts(b, len, cap, "\r\npillion: ");
	px_puts(b, len, cap, msg);
	px_puts(b, len, cap, "\n");
}

bool px_peer_unsent(const pl_h1_msg *m)
{
	for (uint32_t i = 0; i < m->nheaders; i++)
		if (pl_h1_eq(m->headers[i].name, PX_ERROR_FIELD))
			return m->headers[i].value.len == 15 && memcmp(m->headers[i].value.p, "connect failure", 15) == 0;
	return false;
}
