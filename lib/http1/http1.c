/* HTTP/1.x heads and chunked framing, parsed strictly (RFC 9110/9112; decisions in docs/http.md). */
#include <string.h>

#include "http1.h"

/* tchar (RFC 9110 5.6.2): the bytes of a token. */
static const unsigned char tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1,
	['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
	['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
	['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* field-vchar, SP and HTAB; obs-text (0x80-0xFF) is allowed as opaque bytes. NUL, CR, LF, other
 * controls and DEL are not. */
static inline bool value_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Bytes of a request-target: visible ASCII only (no space, no control, no obs-text). */
static inline bool target_byte(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

static inline unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* A request too large for the limits is 431; a response keeps its 502. */
static int too_large(int status)
{
	return status == 400 ? 431 : status;
}

static int fail(pl_h1_error *err, int status, size_t offset, const char *what)
{
	err->status = status;
	err->offset = (uint32_t)offset;
	err->what = what;
	return -1;
}

void pl_h1_limits_default(pl_h1_limits *lim)
{
	lim->max_line = PL_H1_DEFAULT_MAX_LINE;
	lim->max_head = PL_H1_DEFAULT_MAX_HEAD;
	lim->max_headers = PL_H1_DEFAULT_MAX_HEADERS;
}

static bool eq_ci(pl_h1_str a, pl_h1_str b)
{
	if (a.len != b.len)
		return false;
	for (uint32_t i = 0; i < a.len; i++)
		if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
			return false;
	return true;
}

bool pl_h1_eq(pl_h1_str s, const char *lit)
{
	return eq_ci(s, (pl_h1_str){lit, (uint32_t)strlen(lit)});
}

/* The next non-empty element of a comma-separated list from *i, without its whitespace. */
static bool next_element(pl_h1_str list, uint32_t *i, pl_h1_str *el)
{
	while (*i < list.len) {
		while (*i < list.len && (list.p[*i] == ' ' || list.p[*i] == '\t' || list.p[*i] == ','))
			(*i)++;
		uint32_t start = *i;
		while (*i < list.len && list.p[*i] != ',')
			(*i)++;
		uint32_t end = *i;
		while (end > start && (list.p[end - 1] == ' ' || list.p[end - 1] == '\t'))
			end--;
		if (end > start) {
			*el = (pl_h1_str){list.p + start, end - start};
			return true;
		}
	}
	return false;
}

bool pl_h1_list_has(pl_h1_str list, const char *token)
{
	uint32_t i = 0;
	pl_h1_str el;

	while (next_element(list, &i, &el))
		if (pl_h1_eq(el, token))
			return true;
	return false;
}

const pl_h1_header *pl_h1_find(const pl_h1_msg *m, const char *name)
{
	for (uint32_t i = 0; i < m->nheaders; i++)
		if (pl_h1_eq(m->headers[i].name, name))
			return &m->headers[i];
	return NULL;
}

bool pl_h1_hop_by_hop(const pl_h1_msg *m, pl_h1_str name)
{
	static const char *const fixed[] = {"connection", "keep-alive", "proxy-connection", "te", "upgrade"};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (pl_h1_eq(name, fixed[i]))
			return true;
	if (!m->conn_tokens)
		return false;
	/* Never the framing fields or Host, whatever Connection says (the parser refuses those). */
	if (pl_h1_eq(name, "content-length") || pl_h1_eq(name, "transfer-encoding") || pl_h1_eq(name, "host"))
		return false;
	/* Fields named by Connection: compare the name against each token of each Connection field. */
	for (uint32_t i = 0; i < m->nheaders; i++) {
		if (!pl_h1_eq(m->headers[i].name, "connection"))
			continue;
		uint32_t k = 0;
		pl_h1_str tok;
		while (next_element(m->headers[i].value, &k, &tok))
			if (eq_ci(tok, name))
				return true;
	}
	return false;
}

bool pl_h1_idempotent(enum pl_h1_method m)
{
	return m == PL_H1_GET || m == PL_H1_HEAD || m == PL_H1_OPTIONS || m == PL_H1_TRACE || m == PL_H1_PUT ||
	       m == PL_H1_DELETE;
}

static enum pl_h1_method method_id(const char *p, size_t n)
{
	static const struct { const char *name; enum pl_h1_method id; } known[] = {
		{"GET", PL_H1_GET}, {"HEAD", PL_H1_HEAD}, {"POST", PL_H1_POST}, {"PUT", PL_H1_PUT},
		{"DELETE", PL_H1_DELETE}, {"CONNECT", PL_H1_CONNECT}, {"OPTIONS", PL_H1_OPTIONS},
		{"TRACE", PL_H1_TRACE}, {"PATCH", PL_H1_PATCH},
	};
	/* Methods are case-sensitive (RFC 9110 9.1): "get" is some other method. */
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i].name) == n && memcmp(known[i].name, p, n) == 0)
			return known[i].id;
	return PL_H1_OTHER;
}

/* "HTTP/" DIGIT "." DIGIT at p[0..n): 1 with *minor set; 0 for another major version; -1 if malformed. */
static int version(const char *p, size_t n, int *minor)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
		return -1;
	if (p[5] != '1')
		return 0;
	*minor = p[7] == '0' ? 0 : 1;
	return 1;
}

enum pl_h1_detect pl_h1_detect(const char *buf, size_t len, uint32_t max_line)
{
	size_t i = 0;

	while (i < len && tchar[(unsigned char)buf[i]])
		i++;
	if (i == len)
		return i > 32 ? PL_H1_DETECT_NOT : PL_H1_DETECT_MORE; /* no method is that long */
	if (i == 0 || buf[i] != ' ')
		return PL_H1_DETECT_NOT;
	size_t t = ++i;
	while (i < len && target_byte((unsigned char)buf[i]))
		i++;
	if (i == len)
		return i - t >= max_line ? PL_H1_DETECT_HTTP : PL_H1_DETECT_MORE;
	if (i == t || buf[i] != ' ')
		return PL_H1_DETECT_NOT;
	/* The version: a prefix of "HTTP/d.d\r" is enough to wait for. */
	static const char pat[] = "HTTP/#.#\r";
	for (size_t k = 0; k < sizeof(pat) - 1; k++) {
		size_t at = i + 1 + k;
		if (at >= len)
			return PL_H1_DETECT_MORE;
		char c = buf[at];
		if (pat[k] == '#' ? (c < '0' || c > '9') : c != pat[k])
			return PL_H1_DETECT_NOT;
	}
	return PL_H1_DETECT_HTTP;
}

/* The parser's walk over the head: one line at a time, CRLF required. */
typedef struct walk {
	const char *buf;
	size_t len, pos;
	const pl_h1_limits *lim;
	pl_h1_error *err;
	int status;                /* for errors: 400 (request) or 502 (response) */
} walk;

/* Next line [*start, *end) without CRLF. 1: a line; 0: more bytes needed; -1: refused. */
static int next_line(walk *w, size_t max, int too_long_status, const char *too_long, size_t *start, size_t *end)
{
	size_t avail = w->len - w->pos, scan = avail < max + 2 ? avail : max + 2;
	const char *lf = memchr(w->buf + w->pos, '\n', scan);

	if (!lf) {
		if (avail >= max + 2)
			return fail(w->err, too_long_status, w->pos + max, too_long);
		return 0;
	}
	size_t at = (size_t)(lf - w->buf);
	if (at == w->pos || w->buf[at - 1] != '\r')
		return fail(w->err, w->status, at, "line ends in a bare LF (CRLF required)");
	*start = w->pos;
	*end = at - 1;
	w->pos = at + 1;
	return 1;
}

/* Headers the framing and routing depend on, seen while the field lines are read. */
typedef struct seen {
	int content_length, transfer_encoding, host;
	bool chunked;              /* the (single) Transfer-Encoding value is exactly "chunked" */
	bool te_unknown;           /* a transfer coding Pillion does not implement */
	bool conn_close, conn_keep_alive, conn_upgrade, has_upgrade;
	size_t te_off, cl_off;
} seen;

static int content_length(walk *w, pl_h1_str v, size_t off, uint64_t *out)
{
	uint64_t n = 0;

	if (v.len == 0)
		return fail(w->err, w->status, off, "empty Content-Length");
	for (uint32_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if (c < '0' || c > '9')
			return fail(w->err, w->status, off + i, "Content-Length is not a decimal number");
		if (n > (UINT64_C(1) << 62) / 10)
			return fail(w->err, w->status, off + i, "Content-Length too large");
		n = n * 10 + (c - '0');
	}
	*out = n;
	return 0;
}

/* Transfer-Encoding: only a lone "chunked" is taken. Anything else, "gzip, chunked" included, is
 * refused: every extra coding is a way for two parsers to disagree. */
static void transfer_encoding(seen *s, pl_h1_str v)
{
	if (pl_h1_eq(v, "chunked")) {
		s->chunked = true;
		return;
	}
	s->te_unknown = true;
}

static int field_line(walk *w, pl_h1_msg *m, pl_h1_header *hdrs, size_t max_hdrs, seen *s, size_t start,
		      size_t end)
{
	const char *b = w->buf;
	size_t i = start;

	if (b[i] == ' ' || b[i] == '\t')
		return fail(w->err, w->status, i, "obsolete line folding (a field line starting with whitespace)");
	while (i < end && tchar[(unsigned char)b[i]])
		i++;
	if (i == end || b[i] != ':') {
		if (i < end && (b[i] == ' ' || b[i] == '\t'))
			return fail(w->err, w->status, i, "whitespace between a field name and its colon");
		return fail(w->err, w->status, i, i == end ? "field line without a colon" : "invalid byte in a field name");
	}
	if (i == start)
		return fail(w->err, w->status, i, "empty field name");
	pl_h1_str name = {b + start, (uint32_t)(i - start)};
	i++;
	while (i < end && (b[i] == ' ' || b[i] == '\t'))
		i++;
	size_t vstart = i, vend = end;
	for (size_t k = vstart; k < vend; k++)
		if (!value_byte((unsigned char)b[k]))
			return fail(w->err, w->status, k,
				    b[k] == '\0' ? "NUL in a field value" : b[k] == '\r' ? "bare CR in a field value" :
				    "control character in a field value");
	while (vend > vstart && (b[vend - 1] == ' ' || b[vend - 1] == '\t'))
		vend--;
	pl_h1_str value = {b + vstart, (uint32_t)(vend - vstart)};

	if (m->nheaders >= w->lim->max_headers || m->nheaders >= max_hdrs)
		return fail(w->err, too_large(w->status), start, "too many header fields");
	hdrs[m->nheaders].name = name;
	hdrs[m->nheaders].value = value;
	m->nheaders++;

	if (pl_h1_eq(name, "content-length")) {
		if (s->content_length++)
			return fail(w->err, w->status, start, "more than one Content-Length");
		s->cl_off = vstart;
		if (content_length(w, value, vstart, &m->content_length) < 0)
			return -1;
	} else if (pl_h1_eq(name, "transfer-encoding")) {
		if (s->transfer_encoding++)
			return fail(w->err, w->status, start, "more than one Transfer-Encoding");
		s->te_off = vstart;
		transfer_encoding(s, value);
	} else if (pl_h1_eq(name, "host")) {
		if (s->host++)
			return fail(w->err, w->status, start, "more than one Host");
		m->host = value;
	} else if (pl_h1_eq(name, "connection")) {
		s->conn_close |= pl_h1_list_has(value, "close");
		s->conn_keep_alive |= pl_h1_list_has(value, "keep-alive");
		s->conn_upgrade |= pl_h1_list_has(value, "upgrade");
		/* Tokens other than these name hop-by-hop fields. The framing fields and Host are never
		 * hop-by-hop (RFC 9110 7.6.1): a proxy that dropped them would forward a body without
		 * its framing, or a request without its Host, and the next parser would read it
		 * otherwise (request smuggling). Such a message is refused. */
		uint32_t k = 0;
		pl_h1_str tok;
		while (next_element(value, &k, &tok)) {
			if (pl_h1_eq(tok, "content-length") || pl_h1_eq(tok, "transfer-encoding") || pl_h1_eq(tok, "host"))
				return fail(w->err, w->status, (size_t)(tok.p - b),
					    "Connection names Content-Length, Transfer-Encoding or Host");
			if (!pl_h1_eq(tok, "close") && !pl_h1_eq(tok, "keep-alive") && !pl_h1_eq(tok, "upgrade"))
				m->conn_tokens = true;
		}
	} else if (pl_h1_eq(name, "upgrade")) {
		s->has_upgrade = true;
	} else if (pl_h1_eq(name, "expect")) {
		m->expect_continue |= pl_h1_eq(value, "100-continue");
	}
	return 0;
}

/* Reads field lines up to the empty line. 1 complete, 0 more, -1 refused. */
static int fields(walk *w, pl_h1_msg *m, pl_h1_header *hdrs, size_t max_hdrs, seen *s)
{
	for (;;) {
		size_t start, end, room = w->lim->max_head > w->pos ? w->lim->max_head - w->pos : 0;
		if (room < 2)
			return fail(w->err, too_large(w->status), w->pos, "header section too large");
		int r = next_line(w, room - 2, too_large(w->status), "header section too large", &start,
				  &end);
		if (r <= 0)
			return r;
		if (start == end) {
			m->head_len = (uint32_t)w->pos;
			return 1;
		}
		if (field_line(w, m, hdrs, max_hdrs, s, start, end) < 0)
			return -1;
	}
}

/* absolute-form (RFC 9112 3.2.2): a scheme (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )), then
 * "://". A "://" further in ("admin/x://y") does not make one: that target fits no form. */
static bool absolute_form(const char *p, size_t n)
{
	size_t i = 0;

	if (n == 0 || !((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')))
		return false;
	while (i < n && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
			 p[i] == '+' || p[i] == '-' || p[i] == '.'))
		i++;
	return i + 3 <= n && memcmp(p + i, "://", 3) == 0;
}

static void target_path(pl_h1_msg *m)
{
	const char *p = m->target.p;
	uint32_t n = m->target.len, i = 0;

	if (p[0] != '/') {
		/* absolute-form: skip "scheme://authority"; authority-form and "*": the path is "/". */
		const char *sep = absolute_form(p, n) ? memmem(p, n, "://", 3) : NULL;
		if (!sep || m->method_id == PL_H1_CONNECT) {
			m->path = (pl_h1_str){"/", 1};
			return;
		}
		i = (uint32_t)(sep - p) + 3;
		while (i < n && p[i] != '/' && p[i] != '?')
			i++;
		if (i == n || p[i] == '?') {
			m->path = (pl_h1_str){"/", 1};
			return;
		}
	}
	uint32_t e = i;
	while (e < n && p[e] != '?' && p[e] != '#')
		e++;
	m->path = (pl_h1_str){p + i, e - i};
}

int pl_h1_parse_request(const char *buf, size_t len, const pl_h1_limits *lim, pl_h1_header *hdrs, size_t max_hdrs,
			pl_h1_msg *m, pl_h1_error *err)
{
	walk w = {buf, len, 0, lim, err, 400};
	seen s = {0};
	size_t start, end;

	memset(m, 0, sizeof(*m));
	m->headers = hdrs;
	/* RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line. */
	if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
		return fail(err, 400, 0, "empty line before the request line");
	int r = next_line(&w, lim->max_line, 400, "request line too long", &start, &end);
	if (r <= 0)
		return r;
	size_t i = start;
	while (i < end && tchar[(unsigned char)buf[i]])
		i++;
	if (i == start || i == end || buf[i] != ' ')
		return fail(err, 400, i, "malformed method");
	m->method = (pl_h1_str){buf + start, (uint32_t)(i - start)};
	m->method_id = method_id(buf + start, i - start);
	size_t t = ++i;
	while (i < end && target_byte((unsigned char)buf[i]))
		i++;
	if (i == t || i == end || buf[i] != ' ')
		return fail(err, 400, i, "malformed request-target");
	m->target = (pl_h1_str){buf + t, (uint32_t)(i - t)};
	/* RFC 9112 3.2: a request-target has no fragment. Servers read one differently (a path
	 * that goes on past "#", or a target cut there), so the path the policy checks would not be
	 * the one the app reads. */
	const char *frag = memchr(m->target.p, '#', m->target.len);
	if (frag)
		return fail(err, 400, (size_t)(frag - buf), "a fragment (#) in the request-target");
	int v = version(buf + i + 1, end - i - 1, &m->minor);
	if (v < 0)
		return fail(err, 400, i + 1, "malformed HTTP version");
	if (v == 0)
		return fail(err, 505, i + 1, "HTTP version not supported");
	/* The target's form must fit the method (RFC 9112 3.2). */
	if (m->method_id == PL_H1_CONNECT ? buf[t] == '/' :
	    (buf[t] != '/' && !(m->target.len == 1 && buf[t] == '*' && m->method_id == PL_H1_OPTIONS) &&
	     !absolute_form(m->target.p, m->target.len)))
		return fail(err, 400, t, "request-target form does not fit the method");

	r = fields(&w, m, hdrs, max_hdrs, &s);
	if (r <= 0)
		return r;
	if (s.transfer_encoding) {
		if (s.content_length)
			return fail(err, 400, s.te_off, "Content-Length and Transfer-Encoding together");
		if (m->minor == 0)
			return fail(err, 400, s.te_off, "Transfer-Encoding in an HTTP/1.0 request");
		if (s.te_unknown)
			return fail(err, 501, s.te_off, "Transfer-Encoding other than chunked");
		m->body = PL_H1_BODY_CHUNKED;
	} else if (s.content_length) {
		m->body = m->content_length ? PL_H1_BODY_LENGTH : PL_H1_BODY_NONE;
	}
	if (m->minor == 1 && !s.host)
		return fail(err, 400, m->head_len, "HTTP/1.1 request without Host");
	/* RFC 9110 4.2.4: userinfo in an http(s) URI is deprecated, and a recipient SHOULD treat it
	 * as an error: it is how "http://trusted@evil/" misleads a reader. */
	if (m->target.p[0] != '/' && m->method_id != PL_H1_CONNECT) {
		const char *a = memmem(m->target.p, m->target.len, "://", 3);
		if (a) {
			for (const char *q = a + 3; q < m->target.p + m->target.len && *q != '/' && *q != '?' && *q != '#'; q++)
				if (*q == '@')
					return fail(err, 400, (size_t)(q - buf), "userinfo (user@) in the request-target");
		}
	}
	m->upgrade = (s.conn_upgrade && s.has_upgrade) || m->method_id == PL_H1_CONNECT;
	m->keep_alive = m->minor == 1 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close);
	target_path(m);
	return 1;
}

int pl_h1_parse_response(const char *buf, size_t len, const pl_h1_limits *lim, enum pl_h1_method req_method,
			 pl_h1_header *hdrs, size_t max_hdrs, pl_h1_msg *m, pl_h1_error *err)
{
	walk w = {buf, len, 0, lim, err, 502};
	seen s = {0};
	size_t start, end;

	memset(m, 0, sizeof(*m));
	m->headers = hdrs;
	int r = next_line(&w, lim->max_line, 502, "status line too long", &start, &end);
	if (r <= 0)
		return r;
	size_t n = end - start;
	int v = n >= 8 ? version(buf + start, 8, &m->minor) : -1;
	if (v <= 0)
		return fail(err, 502, start, "malformed HTTP version in the status line");
	const char *p = buf + start;
	if (n < 12 || p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
	    p[11] > '9' || (n > 12 && p[12] != ' '))
		return fail(err, 502, start + 8, "malformed status code");
	m->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	for (size_t k = 13; k < n; k++)
		if (!value_byte((unsigned char)p[k]))
			return fail(err, 502, start + k, "control character in the reason phrase");
	m->reason = n > 13 ? (pl_h1_str){p + 13, (uint32_t)(n - 13)} : (pl_h1_str){"", 0};

	r = fields(&w, m, hdrs, max_hdrs, &s);
	if (r <= 0)
		return r;
	if (s.transfer_encoding && s.content_length)
		return fail(err, 502, s.te_off, "Content-Length and Transfer-Encoding together");
	if (s.transfer_encoding && s.te_unknown)
		return fail(err, 502, s.te_off, "Transfer-Encoding other than chunked");
	m->keep_alive = m->minor == 1 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close);
	if (m->status == 101) {
		m->upgrade = true;
		m->body = PL_H1_BODY_NONE;
	} else if (req_method == PL_H1_CONNECT && m->status / 100 == 2) {
		m->upgrade = true;   /* a tunnel from here on */
		m->body = PL_H1_BODY_NONE;
	} else if (req_method == PL_H1_HEAD || m->status / 100 == 1 || m->status == 204 || m->status == 304) {
		m->body = PL_H1_BODY_NONE;
	} else if (s.transfer_encoding) {
		m->body = PL_H1_BODY_CHUNKED;
	} else if (s.content_length) {
		m->body = m->content_length ? PL_H1_BODY_LENGTH : PL_H1_BODY_NONE;
	} else {
		m->body = PL_H1_BODY_CLOSE;
		m->keep_alive = false;
	}
	return 1;
}

/* --- chunked bodies --- */

enum { C_SIZE, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TRAILER_NAME, C_TRAILER_VALUE,
       C_TRAILER_LF, C_FINAL_LF, C_DONE };

#define CHUNK_LINE_MAX 4096u   /* a size line with its extensions */

void pl_h1_chunked_init(pl_h1_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = C_SIZE;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Trailer fields that must never be sent (RFC 9110 6.5.1): framing, and Host. While a trailer name
 * streams by, c->line is the position in it and c->digits the set of these it may still be. */
static const char *const forbidden_trailers[] = {"content-length", "transfer-encoding", "host"};
#define NFORBIDDEN_TRAILERS 3

static void trailer_name_byte(pl_h1_chunked *c, unsigned char b)
{
	for (int k = 0; k < NFORBIDDEN_TRAILERS; k++) {
		const char *n = forbidden_trailers[k];
		if ((c->digits & (1u << k)) && (c->line >= strlen(n) || lower(b) != (unsigned char)n[c->line]))
			c->digits &= (uint8_t)~(1u << k);
	}
	c->line++;
}

static bool trailer_name_forbidden(const pl_h1_chunked *c)
{
	for (int k = 0; k < NFORBIDDEN_TRAILERS; k++)
		if ((c->digits & (1u << k)) && c->line == strlen(forbidden_trailers[k]))
			return true;
	return false;
}

ssize_t pl_h1_chunked_scan(pl_h1_chunked *c, const char *p, size_t len, const pl_h1_limits *lim, int err_status,
			   bool *done, pl_h1_error *err)
{
	size_t i = 0;

	*done = false;
	while (i < len) {
		unsigned char b = (unsigned char)p[i];
		size_t off = (size_t)c->offset + i;
		switch (c->state) {
		case C_SIZE: {
			int h = hexval(b);
			if (h >= 0) {
				/* 15 hex digits: any size a real body has; more is an overflow attempt. */
				if (c->digits == 15)
					return fail(err, err_status, off, "chunk size too large");
				c->left = (c->left << 4) | (uint64_t)h;
				c->digits++;
			} else if (c->digits && b == ';') {
				c->state = C_EXT;
			} else if (c->digits && b == '\r') {
				c->state = C_SIZE_LF;
			} else {
				return fail(err, err_status, off, "invalid chunk size");
			}
			c->line++;
			break;
		}
		case C_EXT:
			if (b == '\r')
				c->state = C_SIZE_LF;
			else if (!value_byte(b))
				return fail(err, err_status, off, "control character in a chunk extension");
			else if (++c->line > CHUNK_LINE_MAX)
				return fail(err, err_status, off, "chunk extension too long");
			break;
		case C_SIZE_LF:
			if (b != '\n')
				return fail(err, err_status, off, "chunk size line not ended by CRLF");
			c->line = 0;
			c->digits = 0;
			c->state = c->left ? C_DATA : C_TRAILER;
			break;
		case C_DATA: {
			size_t take = len - i < c->left ? len - i : (size_t)c->left;
			c->left -= take;
			i += take;
			if (!c->left)
				c->state = C_DATA_CR;
			continue;
		}
		case C_DATA_CR:
			if (b != '\r')
				return fail(err, err_status, off, "chunk data longer than its size");
			c->state = C_DATA_LF;
			break;
		case C_DATA_LF:
			if (b != '\n')
				return fail(err, err_status, off, "chunk data not ended by CRLF");
			c->state = C_SIZE;
			break;
		case C_TRAILER:
			if (b == '\r') {
				c->state = C_FINAL_LF;
			} else if (tchar[b]) {
				if (++c->ntrailers > lim->max_headers)
					return fail(err, too_large(err_status), off, "too many trailer fields");
				c->state = C_TRAILER_NAME;
				c->line = 0;
				c->digits = (1u << NFORBIDDEN_TRAILERS) - 1;
				trailer_name_byte(c, b);
			} else {
				return fail(err, err_status, off,
					    b == ' ' || b == '\t' ? "obsolete line folding in the trailer section" :
					    "invalid byte in a trailer field name");
			}
			break;
		case C_TRAILER_NAME:
			if (b == ':') {
				/* Passed on, they would reframe the message for a parser that merges trailers. */
				if (trailer_name_forbidden(c))
					return fail(err, err_status, off, "Content-Length, Transfer-Encoding or Host in the trailer section");
				c->state = C_TRAILER_VALUE;
				c->line = 0;
				c->digits = 0;
			} else if (!tchar[b]) {
				return fail(err, err_status, off, "invalid byte in a trailer field name");
			} else {
				trailer_name_byte(c, b);
			}
			break;
		case C_TRAILER_VALUE:
			if (b == '\r')
				c->state = C_TRAILER_LF;
			else if (!value_byte(b))
				return fail(err, err_status, off, "control character in a trailer field value");
			break;
		case C_TRAILER_LF:
			if (b != '\n')
				return fail(err, err_status, off, "trailer field line not ended by CRLF");
			c->state = C_TRAILER;
			break;
		case C_FINAL_LF:
			if (b != '\n')
				return fail(err, err_status, off, "chunked body not ended by CRLF");
			c->state = C_DONE;
			*done = true;
			c->offset += i + 1;
			return (ssize_t)(i + 1);
		default:
			*done = true;
			return 0;
		}
		if (c->state >= C_TRAILER && c->state <= C_FINAL_LF && ++c->trailers > lim->max_head)
			return fail(err, too_large(err_status), off, "trailer section too large");
		i++;
	}
	c->offset += len;
	return (ssize_t)len;
}

ssize_t pl_h1_chunked_data(pl_h1_chunked *c, const char *p, size_t len, const pl_h1_limits *lim, int err_status,
			   size_t *data_off, size_t *data_len, bool *done, pl_h1_error *err)
{
	size_t i = 0;

	*data_off = *data_len = 0;
	*done = false;
	/* Framing bytes one at a time (a size line is a few bytes), up to the next data or the end. */
	while (i < len && c->state != C_DATA) {
		ssize_t r = pl_h1_chunked_scan(c, p + i, 1, lim, err_status, done, err);
		if (r < 0)
			return -1;
		if (*done)
			return (ssize_t)(i + (size_t)r);
		i++;
	}
	if (i < len && c->state == C_DATA) {
		size_t take = len - i < c->left ? len - i : (size_t)c->left;
		if (pl_h1_chunked_scan(c, p + i, take, lim, err_status, done, err) < 0)
			return -1;
		*data_off = i;
		*data_len = take;
		i += take;
	}
	return (ssize_t)i;
}

/* --- one message's body --- */

void pl_h1_body_start(pl_h1_body_rd *r, const pl_h1_msg *m)
{
	r->kind = m->body;
	r->left = m->body == PL_H1_BODY_LENGTH ? m->content_length : 0;
	pl_h1_chunked_init(&r->ck);
	r->done = m->body == PL_H1_BODY_NONE || (m->body == PL_H1_BODY_LENGTH && m->content_length == 0);
}

ssize_t pl_h1_body_scan(pl_h1_body_rd *r, const char *p, size_t len, const pl_h1_limits *lim, int err_status,
			pl_h1_error *err)
{
	if (r->done)
		return 0;
	switch (r->kind) {
	case PL_H1_BODY_LENGTH: {
		size_t k = r->left < len ? (size_t)r->left : len;
		r->left -= k;
		r->done = r->left == 0;
		return (ssize_t)k;
	}
	case PL_H1_BODY_CHUNKED: {
		bool done = false;
		ssize_t k = pl_h1_chunked_scan(&r->ck, p, len, lim, err_status, &done, err);
		if (k >= 0)
			r->done = done;
		return k;
	}
	case PL_H1_BODY_CLOSE:
		return (ssize_t)len;
	default:
		r->done = true;
		return 0;
	}
}

ssize_t pl_h1_body_data(pl_h1_body_rd *r, const char *p, size_t len, const pl_h1_limits *lim, int err_status,
			size_t *data_off, size_t *data_len, pl_h1_error *err)
{
	*data_off = *data_len = 0;
	if (r->done)
		return 0;
	if (r->kind == PL_H1_BODY_CHUNKED) {
		bool done = false;
		ssize_t k = pl_h1_chunked_data(&r->ck, p, len, lim, err_status, data_off, data_len, &done, err);
		if (k >= 0)
			r->done = done;
		return k;
	}
	ssize_t k = pl_h1_body_scan(r, p, len, lim, err_status, err);
	if (k > 0)
		*data_len = (size_t)k;
	return k;
}

bool pl_h1_body_eof(pl_h1_body_rd *r)
{
	if (r->kind == PL_H1_BODY_CLOSE)
		r->done = true;
	return r->done;
}
