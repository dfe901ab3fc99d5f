/* HTTP/1 requests riding HTTP/2 between proxies (outbound): an HTTP/1 session's upstream whose
 * transport is a stream on the multiplexed mesh connection to the peer proxy. The session writes
 * and reads HTTP/1 bytes as on any connection; here the head becomes HTTP/2 fields (marked
 * pillion-orig-proto, so the far proxy restores HTTP/1.1 for its app), the body loses its chunked
 * framing, and the HTTP/2 answer is written back as HTTP/1.1 bytes. Only to a peer that chose the
 * pillion/h2 ALPN: an older peer keeps getting HTTP/1 on its own connections. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "base/buf.h"
#include "h1head.h"
#include "h2-int.h"
#include "h2h1.h"
#include "http1/http1.h"
#include "l7.h"
#include "pki/tls.h"

/* Request body bytes the stream may hold unsent before the session is told to wait. */
#define BODY_HIGH (256 * 1024)
#define MAX_FIELDS PL_H1_DEFAULT_MAX_HEADERS

struct px_h2b {
	proxy *px;
	px_up *u;                   /* the session's upstream whose transport this is */
	px_h2s *s;                  /* the stream, once the head is whole */
	int dir;
	px_target t;
	bool endpoint;
	px_mesh *mesh;
	/* the request: HTTP/1 bytes in */
	char *head;
	uint32_t head_len, head_cap;
	bool head_done;
	pl_h1_body_rd body;         /* where the request body ends */
	bool head_req;              /* HEAD: the answer has no body whatever it says */
	/* the answer: HTTP/1 bytes out */
	char *out;
	uint32_t out_len, out_cap, out_off;
	bool resp_head, chunked, no_body, resp_done;
	int err;                    /* -errno to report once out is drained */
	int fail_cause;             /* the failure before any answer (enum px_cause), or -1 */
	char fail_detail[160];
	bool close_delim;           /* an HTTP/1.0 client's answer of no length: ended by the close */
	int minor;
	bool fail_told;             /* the kick passed the failure on (else it is still to come) */
	bool kicked;
	px_h2b *knext;
};

static px_h2b *kicks;

/* A failure before any answer waits for the kick, which tells the session its cause (a connect
 * failure goes on to another endpoint); reads and writes wait meanwhile. */
static bool fail_pending(const px_h2b *b) { return b->fail_cause >= 0 && !b->resp_head && !b->fail_told; }

px_h2b *px_h2b_new(proxy *px, px_up *u, int dir, const px_target *t, bool endpoint, px_mesh *mesh)
{
	px_h2b *b = calloc(1, sizeof(*b));

	if (!b)
		abort();
	b->px = px;
	b->u = u;
	b->dir = dir;
	b->t = *t;
	b->endpoint = endpoint;
	b->mesh = mesh;
	if (mesh)
		mesh->refs++;
	b->fail_cause = -1;
	return b;
}

void px_h2b_free(px_h2b *b)
{
	if (!b)
		return;
	for (px_h2b **pp = &kicks; *pp; pp = &(*pp)->knext)
		if (*pp == b) {
			*pp = b->knext;
			break;
		}
	if (b->s)
		px_h2_bridge_close(b->s);
	if (b->mesh)
		px_mesh_unref(b->mesh);
	free(b->head);
	free(b->out);
	free(b);
}

/* The session is told at the end of the current event (never from inside an HTTP/2 callback). */
void px_h2b_kick(px_h2b *b)
{
	if (b->kicked)
		return;
	b->kicked = true;
	b->knext = kicks;
	kicks = b;
}

bool px_h2b_kicks_pending(void) { return kicks != NULL; }

bool px_h2b_run_kicks(void)
{
	bool any = kicks != NULL;
	while (kicks) {
		px_h2b *b = kicks;
		kicks = b->knext;
		b->kicked = false;
		if (!b->u || !b->u->hs)
			continue;
		if (fail_pending(b)) {
			/* Before any answer: the session retries or answers as after a failed connection,
			 * to another endpoint when it could not connect (b is freed on the way). */
			char detail[sizeof(b->fail_detail)];
			memcpy(detail, b->fail_detail, sizeof(detail));
			b->fail_told = true;
			px_http_up_error(b->u->hs, b->fail_cause, detail);
			continue;
		}
		px_http_up_event(b->u->hs, EPOLLIN | EPOLLOUT);
	}
	return any;
}

static void out_put(px_h2b *b, const char *p, size_t n) { px_put(&b->out, &b->out_len, &b->out_cap, p, n); }

void px_h2b_head(px_h2b *b, int status, const pl_h2_field *f, size_t n, bool end)
{
	char line[64];
	bool has_length = false;

	snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, px_reason(status));
	out_put(b, line, strlen(line));
	for (size_t i = 0; i < n; i++) {
		if (!f[i].namelen || f[i].name[0] == ':')
			continue;
		if (f[i].namelen == 14 && memcmp(f[i].name, "content-length", 14) == 0)
			has_length = true;
		out_put(b, f[i].name, f[i].namelen);
		out_put(b, ": ", 2);
		out_put(b, f[i].value, f[i].valuelen);
		out_put(b, "\r\n", 2);
	}
	b->no_body = b->head_req || status == 204 || status == 304;
	if (!b->no_body && !has_length) {
		if (end) {
			out_put(b, "content-length: 0\r\n", 19);
		} else if (!b->minor) {
			b->close_delim = true; /* no chunked for an HTTP/1.0 client */
		} else {
			out_put(b, "transfer-encoding: chunked\r\n", 28);
			b->chunked = true;
		}
	}
	out_put(b, "\r\n", 2);
	b->resp_head = true;
	if (end)
		b->resp_done = true;
	px_h2b_kick(b);
}

void px_h2b_failed(px_h2b *b, uint32_t code, int cause, const char *detail)
{
	/* A stream the peer never processed: the session may send it again, once, free, as after a
	 * kept-alive connection the server had closed. */
	if (code == PL_H2_REFUSED_STREAM && cause == PX_CAUSE_RESET && !b->resp_head && b->u)
		b->u->reused = true;
	if (b->fail_cause < 0) {
		b->fail_cause = cause;
		snprintf(b->fail_detail, sizeof(b->fail_detail), "%s%s%s", detail ? detail : "", detail && code ? ": " : "",
			 code ? pl_h2_code_name(code) : "");
	}
	b->err = -ECONNRESET;
	px_h2b_kick(b);
}

/* --- the request: what the session writes --- */

static int start_stream(px_h2b *b)
{
	pl_h1_limits lim;
	pl_h1_header hdrs[MAX_FIELDS];
	pl_h1_msg m;
	pl_h1_error e;

	pl_h1_limits_default(&lim);
	int r = pl_h1_parse_request(b->head, b->head_len, &lim, hdrs, MAX_FIELDS, &m, &e);
	if (r == 0)
		return b->head_len > lim.max_head ? -EPROTO : 0;
	if (r < 0)
		return -EPROTO;
	/* Fields of the session's own head, as it goes upstream: lowercased names, no hop-by-hop. */
	static char names[PL_H1_DEFAULT_MAX_HEAD];
	pl_h2_field f[MAX_FIELDS + 6];
	size_t k = 0;
	f[k++] = (pl_h2_field){":method", m.method.p, 7, m.method.len};
	f[k++] = (pl_h2_field){":scheme", "http", 7, 4};
	f[k++] = (pl_h2_field){":authority", m.host.p, 10, m.host.len};
	f[k++] = (pl_h2_field){":path", m.target.p, 5, m.target.len};
	f[k++] = (pl_h2_field){PX_ORIG_PROTO, m.minor ? "HTTP/1.1" : "HTTP/1.0", sizeof(PX_ORIG_PROTO) - 1, 8};
	k = px_h1_fields_h2(&m, PX_H2F_REQUEST, f, k, sizeof(f) / sizeof(f[0]), names);
	b->head_req = m.method_id == PL_H1_HEAD;
	b->minor = m.minor;
	pl_h1_body_start(&b->body, &m);
	int err = 0;
	b->s = px_h2_bridge_open(b->px, b->dir, &b->t, b->endpoint, b->mesh, f, k, !b->body.done, b, &err);
	if (!b->s) {
		/* The dial failed at once: a connect failure, as for a connection of the session's own. */
		b->fail_cause = PX_CAUSE_CONNECT;
		snprintf(b->fail_detail, sizeof(b->fail_detail), "%s", strerror(err ? err : ECONNREFUSED));
		b->err = -ECONNRESET;
		b->head_done = true;
		px_h2b_kick(b);
		return 0;
	}
	b->head_done = true;
	/* The client waits for this before its body; the far proxy skips the app's own. */
	if (m.expect_continue && !b->body.done) {
		out_put(b, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		px_h2b_kick(b);
	}
	/* What followed the head in the buffer is body. */
	uint32_t rest = b->head_len - m.head_len;
	b->head_len = m.head_len;
	return (int)rest;
}

/* Body bytes of the session's request, framing taken off. */
static int body_bytes(px_h2b *b, const char *p, size_t n)
{
	size_t i = 0;
	pl_buf *body = px_h2_bridge_body(b->s);

	pl_h1_limits lim;
	pl_h1_limits_default(&lim);
	/* The session never writes past a message it framed: bytes left over are an error. */
	while (i < n && !b->body.done) {
		pl_h1_error e;
		size_t off, dl;
		ssize_t r = pl_h1_body_data(&b->body, p + i, n - i, &lim, 400, &off, &dl, &e);
		if (r <= 0)
			return -EPROTO;
		pl_buf_append(body, p + i + off, dl);
		i += (size_t)r;
	}
	if (i < n)
		return -EPROTO;
	px_h2_bridge_wake(b->s, b->body.done);
	return 0;
}

static ssize_t b_send(px_side *side, const void *buf, size_t n)
{
	px_h2b *b = side->vctx;
	const char *p = buf;

	if (fail_pending(b))
		return PL_IO_WANT_WRITE;
	if (b->err)
		return b->err;
	if (!b->head_done) {
		px_put(&b->head, &b->head_len, &b->head_cap, p, n);
		int r = start_stream(b);
		if (r < 0) {
			b->err = r;
			return r;
		}
		if (!b->head_done)
			return (ssize_t)n;
		if (r > 0 && body_bytes(b, b->head + b->head_len, (size_t)r) < 0)
			return b->err = -EPROTO;
		px_h2_flush(b->px);
		return (ssize_t)n;
	}
	if (px_h2_bridge_unsent(b->s) >= BODY_HIGH)
		return PL_IO_WANT_WRITE;
	if (body_bytes(b, p, n) < 0)
		return b->err = -EPROTO;
	px_h2_flush(b->px);
	return (ssize_t)n;
}

/* --- the answer: what the session reads --- */

/* The answer's body bytes the stream holds, framed for HTTP/1, into out. */
static void take_answer(px_h2b *b)
{
	if (!b->s || !b->resp_head)
		return;
	pl_buf *resp = px_h2_bridge_resp(b->s);
	size_t *off = px_h2_bridge_resp_off(b->s);
	size_t k = resp->len - *off;
	if (k && !b->no_body) {
		char line[24];
		if (b->chunked) {
			int ln = snprintf(line, sizeof(line), "%zx\r\n", k);
			out_put(b, line, (size_t)ln);
		}
		out_put(b, (const char *)resp->data + *off, k);
		if (b->chunked)
			out_put(b, "\r\n", 2);
	}
	resp->len = *off = 0;
	if (k)
		px_h2_bridge_consumed(b->s);
	if (!b->resp_done && px_h2_bridge_resp_end(b->s)) {
		b->resp_done = true;
		if (b->chunked && !b->no_body)
			out_put(b, "0\r\n\r\n", 5);
	}
}

static ssize_t b_recv(px_side *side, void *buf, size_t n)
{
	px_h2b *b = side->vctx;

	if (b->out_off == b->out_len) {
		b->out_off = b->out_len = 0;
		take_answer(b);
	}
	if (b->out_off == b->out_len) {
		px_h2_flush(b->px);
		if (fail_pending(b))
			return PL_IO_WANT_READ;
		if (b->err)
			return b->err;
		return b->close_delim && b->resp_done ? 0 : PL_IO_WANT_READ;
	}
	size_t k = b->out_len - b->out_off;
	if (k > n)
		k = n;
	memcpy(buf, b->out + b->out_off, k);
	b->out_off += (uint32_t)k;
	return (ssize_t)k;
}

static bool b_pending(const px_side *side)
{
	const px_h2b *b = side->vctx;
	if (fail_pending(b))
		return false;
	return b->out_off < b->out_len || b->err || (b->close_delim && b->resp_done) ||
	       (b->s && b->resp_head && (px_h2_bridge_resp((px_h2s *)b->s)->len || (!b->resp_done && px_h2_bridge_resp_end(b->s))));
}

static ssize_t b_peek(px_side *side, void *buf, size_t n)
{
	(void)side;
	(void)buf;
	(void)n;
	return PL_IO_WANT_READ;
}

static int b_shutw(px_side *side)
{
	(void)side;
	return 0;
}

static void b_lowat(px_side *side, int n)
{
	(void)side;
	(void)n;
}

const px_xprt px_xprt_h2 = {"h2-stream", b_recv, b_send, b_peek, b_shutw, b_pending, b_lowat};
