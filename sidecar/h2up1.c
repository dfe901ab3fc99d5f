/* HTTP/1.1 upstream connections for HTTP/2 streams: an HTTP/1 request the caller's proxy carried
 * over HTTP/2 goes to the app as HTTP/1.1 again, one exchange per connection at a time, kept alive
 * between them. The head was translated and checked when the stream began (h2h1.c); here the body
 * is framed as that head said, and the answer is read strictly (lib/http1) and handed to the
 * stream as an HTTP/2 answer. A connection whose exchange was cut is closed, never reused: the
 * next request must not complete a previous one's body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "base/buf.h"
#include "h2-int.h"
#include "h2h1.h"
#include "http1/http1.h"
#include "l7.h"
#include "pki/tls.h"

/* Answer bytes held for a client that reads slowly before the app's socket is no longer read. */
#define HELD_MAX (256 * 1024)
#define READ_CHUNK 16384
#define MAX_FIELDS PL_H1_DEFAULT_MAX_HEADERS

struct px_h1x {
	px_h2s *s;                  /* the stream of the exchange in progress, or NULL */
	pl_buf out;                 /* bytes due on the socket: the head, then framed body pieces */
	size_t out_off;
	int framing;                /* enum px_h1_framing */
	uint64_t left;              /* PX_H1_LENGTH: body bytes still to send */
	bool req_done, head_done;
	bool used, reused;          /* served an exchange before / this exchange rides a kept-alive connection */
	bool any;                   /* a byte of the answer came */
	bool keep_alive;
	bool abandoned;             /* the stream left mid-exchange: closed at the next flush */
	bool parked;                /* not watched: the app hung up while the client read slowly */
	enum pl_h1_method method;
	pl_h1_body_rd body;         /* where the answer ends */
	char *in;                   /* answer bytes read and not yet passed on: [0, in_len) */
	uint32_t in_len, in_cap;
};

/* The app's answer is whole (its head came, and its body ended). */
static bool resp_done(const struct px_h1x *x) { return x->head_done && x->body.done; }

static pl_h1_limits lim(void)
{
	pl_h1_limits l;
	pl_h1_limits_default(&l);
	return l;
}

void px_h1x_new(px_h2c *c)
{
	c->x = calloc(1, sizeof(*c->x));
	if (!c->x)
		abort();
}

void px_h1x_free(px_h2c *c)
{
	if (!c->x)
		return;
	pl_buf_free(&c->x->out);
	free(c->x->in);
	free(c->x);
	c->x = NULL;
}

void px_h1x_submit(px_h2c *c, px_h2s *s)
{
	struct px_h1x *x = c->x;

	x->s = s;
	x->out.len = x->out_off = 0;
	pl_buf_append(&x->out, s->h1head, s->h1head_len);
	x->framing = s->h1_framing;
	x->left = s->h1_length;
	x->req_done = x->framing == PX_H1_NO_BODY;
	x->head_done = x->any = x->keep_alive = false;
	x->reused = x->used;
	x->used = true;
	x->method = s->h1head_len > 5 && memcmp(s->h1head, "HEAD ", 5) == 0 ? PL_H1_HEAD : PL_H1_GET;
	x->in_len = 0;
}

/* The exchange is over on c, or cut: c takes no new stream and closes. */
static void cut(px_h2c *c, const char *why)
{
	struct px_h1x *x = c->x;
	px_h2s *s = x->s;

	c->spent = true;
	x->s = NULL;
	if (s)
		px_h2_up_done(s);
	px_h2_conn_close(c, why);
}

/* The attempt failed before its answer began: retried or answered by the stream's policy. */
static void fail(px_h2c *c, uint32_t code, int cause, const char *why)
{
	struct px_h1x *x = c->x;
	px_h2s *s = x->s;

	c->spent = true;
	x->s = NULL;
	if (s)
		px_h2_up_failed(s, code, cause, why);
	px_h2_conn_close(c, why);
}

/* An error after the answer began: the client's stream is reset, the connection closed. */
static void broken(px_h2c *c, const char *why)
{
	if (c->x->s)
		px_h2_down_reset(c->x->s, PL_H2_PROTOCOL_ERROR);
	cut(c, why);
}

/* The app's socket failed (err: -errno): before the answer began the attempt failed, after it the
 * client's stream is cut. */
static void io_failed(px_h2c *c, ssize_t err)
{
	if (c->x->s && !c->x->head_done)
		fail(c, PL_H2_INTERNAL_ERROR, PX_CAUSE_RESET, strerror((int)-err));
	else
		broken(c, strerror((int)-err));
}

/* Both halves done: c goes back to its pool when the app keeps it alive and sent nothing more. */
static void finish(px_h2c *c)
{
	struct px_h1x *x = c->x;
	px_h2s *s = x->s;

	if (!x->keep_alive || x->in_len || !x->req_done || x->out_off < x->out.len) {
		cut(c, x->req_done ? "not kept alive" : "answered before the whole request was sent");
		return;
	}
	x->s = NULL;
	px_h2_up_done(s);
}

void px_h1x_abandon(px_h2c *c)
{
	c->spent = true;
	c->x->s = NULL;
	c->x->abandoned = true;
	px_h2_mark(c);
}

/* More of the request body, framed as its head said. False when c was closed. */
static bool fill(px_h2c *c)
{
	struct px_h1x *x = c->x;
	uint8_t buf[READ_CHUNK];
	int end = PL_H2_MORE;
	size_t want = sizeof(buf);

	/* One byte more than a length allows: a body longer than it said is seen, never sent. */
	if (x->framing == PX_H1_LENGTH && x->left + 1 < want)
		want = (size_t)x->left + 1;
	ssize_t k = px_h2_take_body(x->s, buf, want, &end);
	if (k == PL_H2_DEFER)
		return true;
	if (k < 0)
		k = 0;
	if (x->framing == PX_H1_NO_BODY && k > 0) {
		broken(c, "body bytes on a request whose head said none");
		return false;
	}
	if (x->framing == PX_H1_LENGTH) {
		if ((uint64_t)k > x->left || (end && (uint64_t)k != x->left)) {
			/* nghttp2 checks DATA against content-length too: this is the second line. */
			broken(c, "the body does not match its content-length");
			return false;
		}
		x->left -= (uint64_t)k;
		pl_buf_append(&x->out, buf, (size_t)k);
	} else if (x->framing == PX_H1_CHUNKED) {
		char line[24];
		if (k > 0) {
			int ln = snprintf(line, sizeof(line), "%zx\r\n", (size_t)k);
			pl_buf_append(&x->out, line, (size_t)ln);
			pl_buf_append(&x->out, buf, (size_t)k);
			pl_buf_append(&x->out, "\r\n", 2);
		}
		if (end)
			pl_buf_append(&x->out, "0\r\n\r\n", 5);
	}
	if (end)
		x->req_done = true;
	return true;
}

/* Hands on what the answer bytes in hold, as far as the client's reading allows. False when c
 * was closed or its stream left. */
static bool parse(px_h2c *c)
{
	struct px_h1x *x = c->x;
	pl_h1_limits l = lim();
	uint32_t pos = 0;

	while (x->s && !resp_done(x) && pos < x->in_len && px_h2_answer_held(x->s) < HELD_MAX) {
		const char *p = x->in + pos;
		uint32_t avail = x->in_len - pos;
		if (!x->head_done) {
			pl_h1_header hdrs[MAX_FIELDS];
			pl_h1_msg m;
			pl_h1_error e;
			int r = pl_h1_parse_response(p, avail, &l, x->method, hdrs, MAX_FIELDS, &m, &e);
			if (r == 0) {
				if (avail >= l.max_head) {
					fail(c, PL_H2_PROTOCOL_ERROR, PX_CAUSE_RESET, "the app's answer head is too large");
					return false;
				}
				break;
			}
			if (r < 0 || m.status == 101) {
				char why[160];
				snprintf(why, sizeof(why), "the app's answer is not valid HTTP/1: %s at byte %u",
					 r < 0 ? e.what : "101 to a request with no upgrade", r < 0 ? e.offset : 0);
				fail(c, PL_H2_PROTOCOL_ERROR, PX_CAUSE_RESET, why);
				return false;
			}
			pos += m.head_len;
			if (m.status < 200)
				continue; /* 100 Continue and other interim answers: the final one follows */
			x->head_done = true;
			pl_h1_body_start(&x->body, &m);
			x->keep_alive = m.keep_alive;
			pl_h2_field f[MAX_FIELDS + 1];
			static char names[PL_H1_DEFAULT_MAX_HEAD];
			char st[4];
			size_t k = px_h1h2_response(&m, m.body == PL_H1_BODY_CHUNKED || m.body == PL_H1_BODY_CLOSE, f,
						    MAX_FIELDS + 1, names, st);
			px_h2s *s = x->s;
			px_h2_answer_head(s, m.status, f, k, x->body.done);
			if (x->s != s)
				return false; /* retried elsewhere: c was abandoned */
			continue;
		}
		size_t off, dl;
		pl_h1_error e;
		ssize_t r = pl_h1_body_data(&x->body, p, avail, &l, 502, &off, &dl, &e);
		if (r < 0) {
			broken(c, e.what);
			return false;
		}
		if (dl)
			px_h2_answer_data(x->s, (const uint8_t *)p + off, dl);
		pos += (uint32_t)r;
		if (x->body.done)
			px_h2_answer_end(x->s);
	}
	if (pos) {
		memmove(x->in, x->in + pos, x->in_len - pos);
		x->in_len -= pos;
	}
	if (x->s && resp_done(x)) {
		finish(c);
		return false;
	}
	return x->s != NULL;
}

/* The app closed its end. */
static void eof(px_h2c *c)
{
	struct px_h1x *x = c->x;

	if (!x->s) {
		cut(c, "closed by the app");
	} else if (x->head_done && pl_h1_body_eof(&x->body)) { /* an answer the close ends */
		px_h2_answer_end(x->s);
		cut(c, "answer delimited by the close");
	} else if (!x->any && x->reused) {
		/* A kept-alive connection the app closed as the request went: it never saw it, so it goes
		 * on once more, free (as for HTTP/1 sessions). */
		fail(c, PL_H2_REFUSED_STREAM, PX_CAUSE_RESET, "the app closed a kept-alive connection");
	} else if (!x->head_done) {
		fail(c, PL_H2_INTERNAL_ERROR, PX_CAUSE_RESET, "the app closed the connection before answering");
	} else {
		broken(c, "the app closed the connection in the middle of its answer");
	}
}

static void do_read(px_h2c *c)
{
	struct px_h1x *x = c->x;

	for (int i = 0; i < 16 || px_side_pending(c->s); i++) {
		if (x->s && px_h2_answer_held(x->s) >= HELD_MAX)
			return; /* the client reads slowly: so does the proxy */
		if (x->in_cap - x->in_len < READ_CHUNK) {
			x->in_cap = x->in_len + READ_CHUNK;
			x->in = realloc(x->in, x->in_cap);
			if (!x->in)
				abort();
		}
		ssize_t n = px_side_recv(c->s, x->in + x->in_len, READ_CHUNK);
		if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE)
			return;
		if (n == 0) {
			eof(c);
			return;
		}
		if (n < 0) {
			io_failed(c, n);
			return;
		}
		x->in_len += (uint32_t)n;
		if (!x->s) {
			cut(c, "bytes from the app with no request in flight");
			return;
		}
		x->any = true;
		c->last_active = pl_ev_now(c->px->loop);
		if (!parse(c))
			return;
	}
}

void px_h1x_io(px_h2c *c, uint32_t ev)
{
	struct px_h1x *x = c->x;

	/* A hang-up is reported whatever the mask: while the client is slow (nothing is read), the
	 * socket is not watched at all, or the loop would spin on it. */
	if ((ev & (EPOLLHUP | EPOLLERR)) && x->s && px_h2_answer_held(x->s) >= HELD_MAX) {
		pl_ev_io_stop(c->px->loop, &c->s->io);
		x->parked = true;
		return;
	}
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		do_read(c);
	if (!c->dead)
		px_h2_mark(c);
}

void px_h1x_flush(px_h2c *c)
{
	struct px_h1x *x = c->x;

	if (x->abandoned) {
		px_h2_conn_close(c, "the request left before its answer ended");
		return;
	}
	/* Answer bytes held back while the client was slow go on now that it read. */
	if (x->s && x->in_len && !parse(c))
		return;
	for (;;) {
		if (x->out_off == x->out.len) {
			x->out.len = x->out_off = 0;
			if (x->s && !x->req_done && !fill(c))
				return;
			if (!x->out.len)
				break;
		}
		ssize_t w = px_side_send(c->s, x->out.data + x->out_off, x->out.len - x->out_off);
		if (w == PL_IO_WANT_READ || w == PL_IO_WANT_WRITE) {
			c->s->want_w = (int)w;
			break;
		}
		if (w < 0) {
			io_failed(c, w);
			return;
		}
		c->s->want_w = 0;
		x->out_off += (size_t)w;
	}
	if (x->s && resp_done(x) && x->req_done) {
		finish(c);
		return;
	}
	uint32_t mask = 0;
	if (!x->s || px_h2_answer_held(x->s) < HELD_MAX)
		mask |= EPOLLIN;
	if (x->parked && (mask & EPOLLIN)) {
		x->parked = false;
		if (pl_ev_io_start(c->px->loop, &c->s->io, c->s->fd, mask) < 0)
			abort();
	}
	if (x->out_off < x->out.len)
		mask |= c->s->want_w == PL_IO_WANT_READ ? EPOLLIN : EPOLLOUT;
	pl_ev_io_set(c->px->loop, &c->s->io, mask);
}
