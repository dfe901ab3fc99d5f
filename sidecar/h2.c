/* HTTP/2 sessions: a downstream connection's streams, each a request that meets its route's policy and
 * goes on over a multiplexed upstream connection chosen per request (per-request balancing), with
 * flow control end to end: a window reopens only once the bytes moved on. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/bucket.h"
#include "base/duration.h"
#include "base/log.h"
#include "h2/h2.h"
#include "pki/tls.h"
#include "h2-int.h"
#include "h2h1.h"
#include "l7.h"
#include "orig.h"

/* The request body kept for a retry: beyond this it streams and cannot be replayed. */
#define REPLAY_MAX (64 * 1024)
/* Streams of one client connection that may end in a reset, whoever sent it: a burst, then a
 * rate. Each may have cost an upstream call; a client that makes the proxy reset its streams
 * (MadeYouReset, CVE-2025-8671) is not counted by nghttp2's limit on the resets it sends. */
#define RESETS_BURST 200
#define RESETS_PER_S 100
/* Bytes passed on at the front of a stream buffer that are dropped (moved over) at once. */
#define COMPACT_AT (16 * 1024)
/* Bytes of frames waiting for the socket before the session stops producing more. */
#define OUT_HIGH (64 * 1024)
/* An upstream connection with no stream for this long is closed. */
#define UP_IDLE_NS (60 * PL_NS_PER_S)
#define MAX_FIELDS 200 /* lib/h2's limit: a block with more never reaches us */
/* An upstream connection with streams in flight and nothing read for this long is sent a PING;
 * with still nothing read this long after, the peer is taken as gone (its address drops packets:
 * a deleted pod, a dead node) and the connection is closed, so its streams end and new ones go
 * elsewhere instead of waiting on it. */
#define PING_AFTER_NS (5 * PL_NS_PER_S)
#define PING_TIMEOUT_NS (5 * PL_NS_PER_S)
/* Streams on one upstream connection: its window covers every one of them whole, so streams whose
 * readers stalled never hold up the others (no head-of-line blocking across callers). */
#define UP_MAX_STREAMS 64

static px_log_rate log_rate;
static bool log_allowed(proxy *px) { return px_log_allowed(px, &log_rate); }

static const pl_h2_cbs down_cbs, up_cbs;
static void conn_io(pl_ev_loop *loop, void *data, uint32_t ev);
static void conn_timer(pl_ev_loop *loop, void *data);
static void stream_timer(pl_ev_loop *loop, void *data);
static void start_attempt(px_h2s *s);
static void local_answer(px_h2s *s, int status, const px_refusal *r);
static void pool_wake(h2pool *p);

static void kick_timer(pl_ev_loop *loop, void *data);
static int64_t keepalive_due(const px_h2c *c, int64_t now);

static struct px_h2_all *all(proxy *px)
{
	if (!px->h2) {
		px->h2 = calloc(1, sizeof(struct px_h2_all));
		if (!px->h2)
			abort();
		pl_ev_timer_init(&px->h2->kick_timer, kick_timer, px);
	}
	return px->h2;
}

static void mark(px_h2c *c)
{
	if (!c || c->dirty)
		return;
	c->dirty = true;
	struct px_h2_all *a = all(c->px);
	c->dnext = a->dirty;
	a->dirty = c;
}

void px_h2_mark(px_h2c *c) { mark(c); }

static bool field_is(const pl_h2_field *f, const char *name)
{
	size_t n = strlen(name);
	return f->namelen == n && memcmp(f->name, name, n) == 0;
}

static const pl_h2_field *find(const pl_h2_field *f, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (field_is(&f[i], name))
			return &f[i];
	return NULL;
}

/* Copies fields and their bytes into one allocation each: *bytes and the returned array. */
static pl_h2_field *copy_fields(const pl_h2_field *f, size_t n, char **bytes)
{
	size_t total = 1;
	for (size_t i = 0; i < n; i++)
		total += f[i].namelen + f[i].valuelen + 2;
	char *b = malloc(total);
	pl_h2_field *o = calloc(n ? n : 1, sizeof(*o));
	if (!b || !o)
		abort();
	char *p = b;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, f[i].name, f[i].namelen);
		p[f[i].namelen] = 0;
		o[i].name = p;
		o[i].namelen = f[i].namelen;
		p += f[i].namelen + 1;
		memcpy(p, f[i].value, f[i].valuelen);
		p[f[i].valuelen] = 0;
		o[i].value = p;
		o[i].valuelen = f[i].valuelen;
		p += f[i].valuelen + 1;
	}
	*bytes = b;
	return o;
}

/* --- connections --- */

static px_h2c *conn_new(proxy *px, int dir, bool server)
{
	px_h2c *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->px = px;
	c->dir = dir;
	c->server = server;
	c->s = &c->own;
	c->own.fd = -1;
	pl_ev_io_init(&c->own.io, conn_io, c);
	pl_ev_timer_init(&c->timer, conn_timer, c);
	return c;
}

static void stream_free(px_h2s *s);
static void up_gone(px_h2s *s, uint32_t code, int cause, const char *detail);

static void list_del_down(px_h2s *s)
{
	if (!s->dc)
		return;
	/* The connection's window counts every byte received: what the stream held goes back to it,
	 * or the connection's window shrinks for good. */
	if (s->unconsumed_down && s->dc->h && s->did)
		pl_h2_consume(s->dc->h, s->did, s->unconsumed_down);
	s->unconsumed_down = 0;
	if (s->dprev)
		s->dprev->dnext = s->dnext;
	else
		s->dc->streams = s->dnext;
	if (s->dnext)
		s->dnext->dprev = s->dprev;
	s->dprev = s->dnext = NULL;
	px_h2c *c = s->dc;
	if (--c->nstreams == 0 && !c->dead) {
		c->last_active = pl_ev_now(c->px->loop);
		pl_ev_timer_start(c->px->loop, &c->timer, c->px->idle_timeout_ns);
	}
	s->dc = NULL;
	s->did = 0;
}

static void list_del_up(px_h2s *s)
{
	if (!s->uc)
		return;
	px_h2c *c = s->uc;
	/* Bytes of the answer still held for the client (the stream ended upstream first): the
	 * upstream connection's window gets them back now, bounded by the stream window they came in. */
	if (s->unconsumed_up && c->h && s->uid)
		pl_h2_consume(c->h, s->uid, s->unconsumed_up);
	s->unconsumed_up = 0;
	if (s->uid) {
		if (s->uprev)
			s->uprev->unext = s->unext;
		else
			c->streams = s->unext;
		if (s->unext)
			s->unext->uprev = s->uprev;
		c->nstreams--;
		if (c->nstreams == 0 && c->state == C_READY && !c->dead) {
			c->last_active = pl_ev_now(c->px->loop);
			/* A PING still unanswered keeps its deadline. */
			int64_t due = c->h ? keepalive_due(c, c->last_active) : -1;
			pl_ev_timer_start(c->px->loop, &c->timer, due >= 0 && due < UP_IDLE_NS ? due : UP_IDLE_NS);
		}
		if (c->pool && c->pool->wait_head)
			pool_wake(c->pool);
	} else {
		for (px_h2s **pp = &c->wait; *pp; pp = &(*pp)->wnext)
			if (*pp == s) {
				*pp = s->wnext;
				break;
			}
	}
	s->uprev = s->unext = s->wnext = NULL;
	s->uc = NULL;
	s->uid = 0;
}

/* Closes c now: its streams learn that their connection is gone. */
static void conn_close(px_h2c *c, const char *why)
{
	proxy *px = c->px;
	struct px_h2_all *a = all(px);

	c->dead = true;
	if (c->server) {
		while (c->streams) {
			px_h2s *s = c->streams;
			list_del_down(s);
			if (s->rq.status) /* answered, or answering: its line and count go out */
				px_req_done(&s->rq);
			stream_free(s);
		}
		if (c->prev)
			c->prev->next = c->next;
		else
			a->downs = c->next;
		if (c->next)
			c->next->prev = c->prev;
	} else {
		while (c->wait) {
			px_h2s *s = c->wait;
			c->wait = s->wnext;
			s->wnext = NULL;
			s->uc = NULL;
			up_gone(s, PL_H2_REFUSED_STREAM, c->state == C_READY ? PX_CAUSE_RESET : PX_CAUSE_CONNECT, why);
		}
		while (c->streams) {
			px_h2s *s = c->streams;
			list_del_up(s);
			up_gone(s, PL_H2_INTERNAL_ERROR, PX_CAUSE_RESET, why);
		}
		if (c->pool) {
			if (c->prev)
				c->prev->next = c->next;
			else
				c->pool->conns = c->next;
			if (c->next)
				c->next->prev = c->prev;
		}
		if (c->mesh)
			px_mesh_unref(c->mesh);
		if (c->pool && c->pool->wait_head)
			pool_wake(c->pool);
	}
	/* Off the dirty list. */
	for (px_h2c **pp = &a->dirty; *pp; pp = &(*pp)->dnext)
		if (*pp == c) {
			*pp = c->dnext;
			break;
		}
	pl_ev_timer_stop(px->loop, &c->timer);
	/* Freed later: callers up the stack may still look at c->dead. */
	c->dnext = a->dead;
	a->dead = c;
	if (c->conn) {
		/* Downstream: the accepted connection ends with its HTTP/2 session, gently: the client
		 * reads our last frames (a GOAWAY) before an RST could destroy them. */
		px_conn *conn = c->conn;
		c->conn = NULL;
		c->s = &c->own;
		conn->proto = &px_proto_bytes; /* nothing left to release */
		conn->pctx = NULL;
		/* frames the socket did not take yet (the GOAWAY) go first */
		px_conn_linger(conn, c->out.data + c->out_off, c->out.len - c->out_off);
		c->out_off = c->out.len;
		return;
	}
	px_side_close(px->loop, c->s, false);
}

void px_h2_conn_close(px_h2c *c, const char *why) { conn_close(c, why); }

static void conn_free(px_h2c *c)
{
	pl_h2_free(c->h);
	px_h1x_free(c);
	pl_buf_free(&c->out);
	free(c->peer_id);
	free(c);
}

/* Writes what the session has due, as far as the socket takes it. */
static void conn_flush(px_h2c *c)
{
	if (c->dead || c->state != C_READY)
		return;
	if (c->x) {
		px_h1x_flush(c);
		return;
	}
	if (!c->h)
		return;
	for (;;) {
		while (c->out.len - c->out_off < OUT_HIGH) {
			const uint8_t *p;
			ssize_t n = pl_h2_send(c->h, &p);
			if (n < 0) {
				conn_close(c, "HTTP/2 session error");
				return;
			}
			if (n == 0)
				break;
			pl_buf_append(&c->out, p, (size_t)n);
		}
		if (c->out_off == c->out.len) {
			c->out.len = c->out_off = 0;
			break;
		}
		ssize_t w = px_side_send(c->s, c->out.data + c->out_off, c->out.len - c->out_off);
		if (w == PL_IO_WANT_READ || w == PL_IO_WANT_WRITE) {
			c->s->want_w = (int)w;
			break;
		}
		if (w < 0) {
			conn_close(c, strerror((int)-w));
			return;
		}
		c->s->want_w = 0;
		c->out_off += (size_t)w;
	}
	if (!pl_h2_alive(c->h) && c->out_off == c->out.len) {
		const char *err = pl_h2_error(c->h);
		if (err && log_allowed(c->px))
			log_info("%s HTTP/2 connection ended: %s", px_dirs[c->dir]->name, err);
		conn_close(c, err ? err : "connection done");
		return;
	}
	uint32_t mask = EPOLLIN;
	if (c->out_off < c->out.len)
		mask |= c->s->want_w == PL_IO_WANT_READ ? EPOLLIN : EPOLLOUT;
	pl_ev_io_set(c->px->loop, &c->s->io, mask);
}

/* After every event: flush the connections that have frames due (flushing one may make another due). */
static void settle_(proxy *px, bool kicks_ok)
{
	struct px_h2_all *a = all(px);

	if (a->depth)
		return;
	bool more = true;
	while (more) {
		more = false;
		while (a->dirty) {
			px_h2c *c = a->dirty;
			a->dirty = c->dnext;
			c->dirty = false;
			conn_flush(c);
		}
		/* HTTP/1 sessions riding streams hear of their answers now, out of the callbacks (never
		 * from inside an HTTP/1 session's own call: px_h2_flush). */
		if (kicks_ok) {
			a->depth++;
			more = px_h2b_run_kicks();
			a->depth--;
		}
	}
	/* Kicks queued where they could not run (an HTTP/1 session's own call): the next turn. */
	if (!kicks_ok && px_h2b_kicks_pending() && !pl_ev_timer_armed(&a->kick_timer))
		pl_ev_timer_start(px->loop, &a->kick_timer, 0);
	while (a->dead) {
		px_h2c *c = a->dead;
		a->dead = c->dnext;
		conn_free(c);
	}
}

static void settle(proxy *px) { settle_(px, true); }

/* Kicks queued where sessions cannot be told (inside an HTTP/1 session's own call): next turn. */
static void kick_timer(pl_ev_loop *loop, void *data)
{
	(void)loop;
	settle(data);
}

static void conn_read(px_h2c *c)
{
	uint8_t buf[16384];

	/* Up to 16 socket reads a turn (epoll calls again for the rest); bytes TLS already decrypted
	 * are read whatever the count, since no event would announce them. */
	for (int i = 0; i < 16 || px_side_pending(c->s); i++) {
		ssize_t n = px_side_recv(c->s, buf, sizeof(buf));
		if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE)
			return;
		if (n <= 0) {
			conn_close(c, n == 0 ? "closed by the peer" : strerror((int)-n));
			return;
		}
		const char *why = NULL;
		c->last_active = c->last_rx = pl_ev_now(c->px->loop);
		if (pl_h2_recv(c->h, buf, (size_t)n, &why) < 0) {
			if (log_allowed(c->px))
				log_info("%s HTTP/2 connection error: %s", px_dirs[c->dir]->name, why);
			mark(c);
			conn_flush(c); /* the GOAWAY */
			if (!c->dead)
				conn_close(c, why);
			return;
		}
		mark(c);
		if ((size_t)n < sizeof(buf) && !px_side_pending(c->s))
			return;
	}
}

static void up_ready(px_h2c *c);
static void up_handshake(px_h2c *c);

static void conn_io(pl_ev_loop *loop, void *data, uint32_t ev)
{
	px_h2c *c = data;
	proxy *px = c->px;
	(void)loop;

	all(px)->depth++;
	if (c->state == C_CONNECT) {
		int err = px_dial_result(px, c->dir, c->s->fd);
		if (err) {
			all(px)->depth--;
			conn_close(c, strerror(err));
			settle(px);
			return;
		}
		if (!c->pool->tls) {
			up_ready(c);
		} else {
			const char *why = NULL;
			c->s->tls = px_dial_tls(px, c->s->fd, &why);
			if (!c->s->tls) {
				all(px)->depth--;
				conn_close(c, why);
				settle(px);
				return;
			}
			if (!c->x)
				pl_tls_offer_h2(c->s->tls);
			c->state = C_HANDSHAKE;
			pl_ev_timer_start(px->loop, &c->timer, px->set.handshake_timeout_ns);
			up_handshake(c);
		}
	} else if (c->state == C_HANDSHAKE) {
		up_handshake(c);
	} else if (c->x) {
		px_h1x_io(c, ev);
	} else {
		if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
			conn_read(c);
		if (!c->dead)
			mark(c);
	}
	all(px)->depth--;
	/* Closing was deferred while callbacks ran: dead connections are already freed by conn_close. */
	settle(px);
}

/* c's one timer, at least a tenth of a second ahead (a due time already past fires soon, not in a
 * busy loop). */
static void arm(px_h2c *c, int64_t delay)
{
	pl_ev_timer_start(c->px->loop, &c->timer, delay > PL_NS_PER_S / 10 ? delay : PL_NS_PER_S / 10);
}

/* Streams with no byte or head either way for --stream-idle-timeout (a reader or a writer that
 * stalled): answered 504 when nothing went down yet, else reset both ways. The timer is re-armed
 * for the next stream due. */
static void streams_idle(px_h2c *c)
{
	proxy *px = c->px;
	int64_t limit = px->set.stream_idle_timeout_ns, now = pl_ev_now(px->loop), next = limit;

	if (limit <= 0)
		return;
	for (px_h2s *s = c->streams, *n; s; s = n) {
		n = s->dnext;
		int64_t idle = now - s->last_progress;
		if (s->delaying) /* held by a fault delay, on purpose */
			idle = 0;
		if (idle < limit) {
			if (limit - idle < next)
				next = limit - idle;
			continue;
		}
		if (!s->resp_started) {
			px_refusal r = {.cause = "stream idle"};
			snprintf(r.msg, sizeof(r.msg), "no byte either way for %lld s (--stream-idle-timeout)",
				 (long long)(limit / PL_NS_PER_S));
			s->last_progress = now;
			local_answer(s, 504, &r);
		} else if (s->did) {
			if (log_allowed(px))
				log_info("%s HTTP/2 stream idle for %lld s: reset", px_dirs[c->dir]->name,
					 (long long)(idle / PL_NS_PER_S));
			pl_h2_reset(c->h, s->did, PL_H2_CANCEL);
			mark(c);
			s->last_progress = now;
		}
	}
	if (c->nstreams)
		arm(c, next);
}

/* Upstream liveness. A PING is outstanding while nothing was read since it went. */
static bool ping_unanswered(const px_h2c *c) { return c->ping_at && c->last_rx < c->ping_at; }

/* How long until the liveness of upstream connection c needs a look: the PING's deadline, or,
 * with streams in flight, PING_AFTER_NS after the last bytes read; -1: nothing to watch. */
static int64_t keepalive_due(const px_h2c *c, int64_t now)
{
	if (ping_unanswered(c))
		return c->ping_at + PING_TIMEOUT_NS - now;
	return c->nstreams ? c->last_rx + PING_AFTER_NS - now : -1;
}

/* An upstream connection: a PING after PING_AFTER_NS of silence with streams in flight; closed
 * when it goes unanswered PING_TIMEOUT_NS, streams or not. Any bytes read count as an answer.
 * False when c was closed. */
static bool keepalive(px_h2c *c)
{
	proxy *px = c->px;
	int64_t now = pl_ev_now(px->loop);

	if (ping_unanswered(c) && now - c->ping_at >= PING_TIMEOUT_NS) {
		if (log_allowed(px))
			log_info("%s HTTP/2 upstream: no answer to a PING for %lld s: closed", px_dirs[c->dir]->name,
				 (long long)(PING_TIMEOUT_NS / PL_NS_PER_S));
		conn_close(c, "the peer answered no PING");
		return false;
	}
	if (!ping_unanswered(c) && c->nstreams && now - c->last_rx >= PING_AFTER_NS) {
		pl_h2_ping(c->h);
		c->ping_at = now;
		mark(c);
	}
	return true;
}

static void conn_timer(pl_ev_loop *loop, void *data)
{
	px_h2c *c = data;
	proxy *px = c->px;
	(void)loop;

	if (c->state == C_CONNECT) {
		px->m.connect_fail[c->dir]++;
		conn_close(c, "connect timed out");
	} else if (c->state == C_HANDSHAKE) {
		px->m.tls_fail[c->dir][PX_TLSF_TIMEOUT]++;
		conn_close(c, "no handshake within the timeout");
	} else if (!c->server && c->h && !keepalive(c)) {
		/* closed: its PING went unanswered */
	} else if (c->nstreams == 0) {
		int64_t limit = c->server ? px->idle_timeout_ns : UP_IDLE_NS;
		int64_t now = pl_ev_now(px->loop), idle = now - c->last_active;
		if (idle < limit) {
			int64_t due = c->server || !c->h ? -1 : keepalive_due(c, now);
			arm(c, due >= 0 && due < limit - idle ? due : limit - idle);
			settle(px);
			return;
		}
		if (c->x) {
			conn_close(c, "idle");
		} else {
			pl_h2_goaway(c->h, PL_H2_NO_ERROR);
			mark(c);
		}
	} else if (c->server) {
		all(px)->depth++;
		streams_idle(c);
		all(px)->depth--;
	} else if (c->h) {
		arm(c, keepalive_due(c, pl_ev_now(px->loop)));
	}
	settle(px);
}

/* --- upstream connections --- */

static h2pool *pool_get(proxy *px, int dir, const px_target *t)
{
	char key[PX_POOL_KEY];
	struct px_h2_all *a = all(px);

	px_pool_key(dir, t, key);
	h2pool *p = pl_hmap_get(&a->pools, key);
	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	memcpy(p->key, key, sizeof(key));
	p->px = px;
	p->dir = dir;
	p->addr = t->addr;
	p->addrlen = t->addrlen;
	p->tls = t->tls;
	pl_hmap_put(&a->pools, p->key, p);
	return p;
}

static void submit(px_h2s *s);

static void up_ready(px_h2c *c)
{
	proxy *px = c->px;
	char lbl[96];

	pl_ev_timer_stop(px->loop, &c->timer);
	c->state = C_READY;
	c->last_rx = pl_ev_now(px->loop);
	if (c->s->tls && !c->x) {
		c->pool->h1ok = pl_tls_alpn_h2(c->s->tls) ? 1 : -1;
		c->pool->h1ok_at = pl_ev_now(px->loop);
		/* HTTP/1 requests waiting for it, to a peer that does not restore HTTP/1 (a rollback, or
		 * its address now another, older proxy's): never sent, they go the HTTP/1 way. */
		for (px_h2s **pp = &c->wait; c->pool->h1ok < 0 && *pp;) {
			px_h2s *s = *pp;
			if (!s->bridge) {
				pp = &s->wnext;
				continue;
			}
			*pp = s->wnext;
			s->wnext = NULL;
			s->uc = NULL;
			px_h2b_failed(s->bridge, PL_H2_REFUSED_STREAM, PX_CAUSE_RESET, "the peer's proxy does not restore HTTP/1");
		}
	}
	if (!c->x) {
		pl_h2_limits lim = pl_h2_default_limits;
		lim.conn_window = UP_MAX_STREAMS * lim.stream_window;
		c->h = pl_h2_new(false, &up_cbs, c, &lim);
	}
	pl_ev_io_set(px->loop, &c->s->io, EPOLLIN);
	snprintf(lbl, sizeof(lbl), "direction=\"%s\",tls=\"%s\"", px_dirs[c->dir]->name, c->s->tls ? "true" : "false");
	px_stats_inc(px, PX_F_UPSTREAM_CONNS, lbl);
	while (c->wait) {
		px_h2s *s = c->wait;
		c->wait = s->wnext;
		s->wnext = NULL;
		submit(s);
	}
	/* Every stream it was dialled for went away meanwhile: it idles like any pooled one. */
	if (c->nstreams == 0) {
		c->last_active = pl_ev_now(px->loop);
		pl_ev_timer_start(px->loop, &c->timer, UP_IDLE_NS);
	}
	mark(c);
}

static void up_handshake(px_h2c *c)
{
	proxy *px = c->px;
	char err[2300] = "";
	int fail = PX_TLSF_OTHER;
	const px_mesh *m = c->mesh ? c->mesh : px->mesh;
	int r = px_dial_handshake(px, c->s, m ? &m->dir : NULL, &c->pool->addr, &fail, err, sizeof(err));

	if (r == 0)
		return;
	if (r < 0) {
		px->m.tls_fail[c->dir][fail]++;
		/* The waiting streams fail as mTLS failures: a pod address now another pod's goes on elsewhere. */
		while (c->wait) {
			px_h2s *s = c->wait;
			c->wait = s->wnext;
			s->wnext = NULL;
			s->uc = NULL;
			up_gone(s, PL_H2_REFUSED_STREAM, PX_CAUSE_TLS, err);
		}
		conn_close(c, err);
		return;
	}
	up_ready(c);
}

/* The stream stops waiting for room in its pool. */
static void pool_unwait(px_h2s *s)
{
	h2pool *p = s->wpool;

	if (!p)
		return;
	px_h2s **pp = &p->wait_head, *prev = NULL;
	for (; *pp; prev = *pp, pp = &(*pp)->pnext) {
		if (*pp != s)
			continue;
		*pp = s->pnext;
		if (p->wait_tail == s)
			p->wait_tail = prev;
		p->nwait--;
		break;
	}
	s->pnext = NULL;
	s->wpool = NULL;
}

static uint32_t wait_count(const px_h2c *c)
{
	uint32_t n = 0;
	for (const px_h2s *s = c->wait; s; s = s->wnext)
		n++;
	return n;
}

/* A connection of the pool with room for one more stream, or a new one being dialled; NULL with
 * *err when the dial failed at once, or with *err 0 when max_conns connections (0: no limit) are
 * all full. */
static px_h2c *pool_dial(h2pool *p, bool h1, bool endpoint, px_mesh *mesh, int *err);

static px_h2c *pool_conn(h2pool *p, px_h2s *s, int limit, int *err)
{
	int live = 0;

	*err = 0;
	bool h1 = s->h1head != NULL;

	for (px_h2c *c = p->conns; c; c = c->next) {
		if (c->dead || c->spent || (c->h && pl_h2_closing(c->h)) || (c->x != NULL) != h1)
			continue;
		live++;
		uint32_t cap = h1 ? 1 : c->state == C_READY ? pl_h2_peer_max_streams(c->h) : UP_MAX_STREAMS;
		if (cap > UP_MAX_STREAMS)
			cap = UP_MAX_STREAMS;
		if (c->nstreams + wait_count(c) < cap)
			return c;
	}
	if (limit > 0 && live >= limit)
		return NULL;
	return pool_dial(p, h1, s->rq.endpoint, s->rq.mesh, err);
}

/* A new connection of p, dialling. */
static px_h2c *pool_dial(h2pool *p, bool h1, bool endpoint, px_mesh *mesh, int *err)
{
	proxy *px = p->px;
	px_h2c *c = conn_new(px, p->dir, false);
	int r = px_dial_start(px, p->dir, &p->addr, p->addrlen, &c->s->fd);
	if (c->s->fd < 0 || r < 0) {
		if (c->s->fd >= 0)
			close(c->s->fd);
		free(c);
		*err = -r;
		return NULL;
	}
	c->pool = p;
	if (h1)
		px_h1x_new(c);
	c->endpoint = endpoint;
	c->mesh = mesh;
	if (c->mesh)
		c->mesh->refs++;
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	if (pl_ev_io_start(px->loop, &c->s->io, c->s->fd, EPOLLOUT) < 0)
		abort();
	c->state = C_CONNECT;
	int64_t to = endpoint && px->set.endpoint_connect_timeout_ns > 0 &&
			     px->set.endpoint_connect_timeout_ns < px->set.connect_timeout_ns
		     ? px->set.endpoint_connect_timeout_ns
		     : px->set.connect_timeout_ns;
	pl_ev_timer_start(px->loop, &c->timer, to);
	return c;
}

/* --- streams --- */

/* s lets go of its upstream stream: cancelled on the wire (frames still coming for it are handed
 * back unread) and off its connection. */
static void drop_up(px_h2s *s)
{
	if (s->uc && s->uid && s->uc->x) {
		px_h1x_abandon(s->uc);
	} else if (s->uc && s->uid) {
		pl_h2_set_stream(s->uc->h, s->uid, NULL);
		pl_h2_reset(s->uc->h, s->uid, PL_H2_CANCEL);
		mark(s->uc);
	}
	list_del_up(s);
}

/* Bytes or an end arrived for the other side of s: its body callback is asked again. */
static void wake_up(px_h2s *s)
{
	if (s->uc && s->uid && s->uc->x) {
		mark(s->uc);
	} else if (s->uc && s->uid) {
		pl_h2_resume(s->uc->h, s->uid);
		mark(s->uc);
	}
}

static void wake_down(px_h2s *s)
{
	if (s->bridge)
		px_h2b_kick(s->bridge);
	else if (s->dc && s->did) {
		pl_h2_resume(s->dc->h, s->did);
		mark(s->dc);
	}
}

/* A gRPC status field's code, or -1 when absent or not one or two digits. */
static int grpc_status_of(const pl_h2_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].namelen == 11 && memcmp(f[i].name, "grpc-status", 11) == 0)
			return f[i].valuelen && f[i].valuelen <= 2 ? atoi(f[i].value) : -1;
	return -1;
}

static void stream_free(px_h2s *s)
{
	proxy *px = s->rq.px;

	pool_unwait(s);
	drop_up(s);
	if (s->dc && s->did) {
		pl_h2_set_stream(s->dc->h, s->did, NULL);
		pl_h2_reset(s->dc->h, s->did, PL_H2_CANCEL);
		mark(s->dc);
	}
	list_del_down(s);
	pl_ev_timer_stop(px->loop, &s->timer);
	px_req_clear(&s->rq);
	pl_buf_free(&s->body);
	pl_buf_free(&s->resp);
	free(s->hb);
	free(s->h1head);
	free(s->rf);
	free(s->tb);
	free(s->tf);
	free(s);
}

static bool replayable(const px_h2s *s) { return !s->trimmed; }

static void arm_deadline(px_h2s *s)
{
	proxy *px = s->rq.px;
	int64_t when = s->rq.deadline;

	if (s->rq.try_deadline && (!when || s->rq.try_deadline < when))
		when = s->rq.try_deadline;
	if (when)
		pl_ev_timer_start(px->loop, &s->timer, when > pl_ev_now(px->loop) ? when - pl_ev_now(px->loop) : 0);
	else
		pl_ev_timer_stop(px->loop, &s->timer);
}

/* The current attempt is over before its response went down: retry, or answer. */
static void attempt_failed(px_h2s *s, int cause, const char *detail)
{
	px_req *rq = &s->rq;

	if (s->bridge) { /* the HTTP/1 session decides, as after any failed connection */
		px_h2b_failed(s->bridge, 0, cause, detail);
		return;
	}

	px_req_outlier(rq, true);
	if (px_req_unreachable(rq, replayable(s), cause, detail)) {
		start_attempt(s);
		return;
	}
	if (px_req_retry(rq, replayable(s), cause, 0)) {
		start_attempt(s);
		return;
	}
	const char *to = rq->backend ? rq->backend : rq->service[0] ? rq->service : "the app";
	px_refusal r = {.cause = px_cause_word(cause)};
	if (cause == PX_CAUSE_TIMEOUT)
		snprintf(r.msg, sizeof(r.msg), "no response from %s within the per-try timeout (%d attempts)", to,
			 rq->attempts);
	else
		snprintf(r.msg, sizeof(r.msg), "%s to %s: %s (%d attempt%s)", r.cause, to, detail, rq->attempts,
			 rq->attempts == 1 ? "" : "s");
	local_answer(s, cause == PX_CAUSE_TIMEOUT ? 504 : cause == PX_CAUSE_CONNECT || cause == PX_CAUSE_TLS ? 503 : 502,
		     &r);
}

/* The upstream stream of s is gone (reset, or its connection): before the response went down the
 * attempt failed; after, the client's stream is reset too. */
static void up_gone(px_h2s *s, uint32_t code, int cause, const char *detail)
{
	if (s->bridge) {
		px_h2b_failed(s->bridge, code, cause, detail);
		return;
	}
	if (s->local)
		return;
	if (!s->resp_started) {
		/* REFUSED_STREAM: the server never processed it (RFC 9113 8.7): once more, free. */
		if (code == PL_H2_REFUSED_STREAM && cause == PX_CAUSE_RESET && !s->rq.stale_retried && replayable(s)) {
			s->rq.stale_retried = true;
			s->rq.attempts--;
			start_attempt(s);
			return;
		}
		char d[160];
		snprintf(d, sizeof(d), "%s%s%s", detail ? detail : "", detail ? ": " : "", pl_h2_code_name(code));
		attempt_failed(s, cause, code ? d : detail ? detail : "stream closed");
		return;
	}
	if (!s->resp_end && s->dc && s->did) {
		pl_h2_reset(s->dc->h, s->did, code ? code : PL_H2_INTERNAL_ERROR);
		mark(s->dc);
	}
}

/* Sends the request on c (ready). */
static void submit(px_h2s *s)
{
	px_h2c *c = s->uc;
	bool body = !s->req_end || s->body.len > 0;

	s->body_off = 0;
	int32_t id = c->x ? 1 : pl_h2_request(c->h, s->rf, s->nrf, body, s);
	if (id < 0) {
		s->uc = NULL;
		attempt_failed(s, PX_CAUSE_RESET, "the upstream connection takes no new streams");
		return;
	}
	s->uid = id;
	s->unext = c->streams;
	if (c->streams)
		c->streams->uprev = s;
	c->streams = s;
	c->nstreams++;
	if (c->x) {
		pl_ev_timer_stop(c->px->loop, &c->timer);
		px_h1x_submit(c, s);
	} else if (c->nstreams == 1) {
		/* The first stream after a quiet spell: the connection's liveness is watched again (a
		 * connection silent that long is asked at once; a PING still unanswered keeps its deadline). */
		int64_t due = keepalive_due(c, pl_ev_now(c->px->loop));
		pl_ev_timer_start(c->px->loop, &c->timer, due > 0 ? due : 0);
	}
	mark(c);
}

static void start_attempt(px_h2s *s)
{
	px_req *rq = &s->rq;
	proxy *px = rq->px;
	px_refusal r = {0};
	px_target t;
	int err = 0;

	rq->attempts++;
	s->resp.len = s->resp_off = 0;
	int status = px_dirs[rq->dir]->http->target(rq, &t, &r);
	if (status) {
		local_answer(s, status, &r);
		return;
	}
	if (rq->alog)
		px_alog_upstream(rq, &t.addr);
	const pl_retries *rt = rq->route ? &rq->route->retries : NULL;
	rq->try_deadline = rt && rt->set && rt->per_try_timeout_ns ? pl_ev_now(px->loop) + rt->per_try_timeout_ns : 0;
	arm_deadline(s);
	h2pool *p = pool_get(px, rq->dir, &t);
	int max_conns, max_pending;
	const char *bound = px_req_pool_limits(rq, &max_conns, &max_pending);
	px_h2c *c = pool_conn(p, s, max_conns, &err);
	if (!c && err) {
		attempt_failed(s, PX_CAUSE_CONNECT, strerror(err));
		return;
	}
	if (!c) {
		/* maxConnections connections, each with all the streams it takes: wait, up to maxPending. */
		if (max_pending > 0 && p->nwait >= (uint32_t)max_pending) {
			char lbl[600];
			snprintf(lbl, sizeof(lbl), "service=\"%s\",reason=\"max_pending\"", rq->service);
			px_stats_inc(px, PX_F_EJECTIONS, lbl);
			r.cause = "overflow";
			snprintf(r.msg, sizeof(r.msg), "circuit breaker: %d requests already wait for a connection to %s (%s)",
				 max_pending, rq->backend ? rq->backend : rq->service, bound);
			local_answer(s, 503, &r);
			return;
		}
		s->wpool = p;
		if (p->wait_tail)
			p->wait_tail->pnext = s;
		else
			p->wait_head = s;
		p->wait_tail = s;
		p->nwait++;
		return;
	}
	s->uc = c;
	if (c->state != C_READY) {
		s->wnext = c->wait;
		c->wait = s;
		return;
	}
	submit(s);
}

/* Room opened in p (a stream ended, a connection closed): waiting streams go, oldest first. */
static void pool_wake(h2pool *p)
{
	while (p->wait_head) {
		px_h2s *s = p->wait_head;
		int err = 0, max_conns, max_pending;
		px_req_pool_limits(&s->rq, &max_conns, &max_pending);
		px_h2c *c = pool_conn(p, s, max_conns, &err);
		if (!c && !err)
			return; /* still full */
		pool_unwait(s);
		if (!c) {
			attempt_failed(s, PX_CAUSE_CONNECT, strerror(err));
			continue;
		}
		s->uc = c;
		if (c->state != C_READY) {
			s->wnext = c->wait;
			c->wait = s;
			continue;
		}
		submit(s);
	}
}

/* --- local answers --- */

static void set_field(pl_h2_field *f, const char *name, const char *value)
{
	f->name = name;
	f->namelen = strlen(name);
	f->value = value;
	f->valuelen = strlen(value);
}

/* The proxy answers s itself: gRPC callers get a trailers-only answer with grpc-status. */
static void local_answer(px_h2s *s, int status, const px_refusal *r)
{
	px_req *rq = &s->rq;

	drop_up(s);
	pool_unwait(s);
	pl_ev_timer_stop(rq->px->loop, &s->timer);
	px_req_local(rq, status, r);
	s->local = true;
	if (!s->dc || !s->did)
		return;
	size_t n = 0;
	snprintf(s->lbuf[0], sizeof(s->lbuf[0]), "%d", s->grpc ? 200 : status);
	set_field(&s->lf[n++], ":status", s->lbuf[0]);
	s->resp.len = s->resp_off = 0;
	if (s->grpc) {
		set_field(&s->lf[n++], "content-type", "application/grpc");
		s->gcode = px_grpc_code(status);
		snprintf(s->lbuf[1], sizeof(s->lbuf[1]), "%d", s->gcode);
		set_field(&s->lf[n++], "grpc-status", s->lbuf[1]);
		/* grpc-message is percent-encoded text: the cause is plain ASCII words. */
		snprintf(s->lbuf[2], sizeof(s->lbuf[2]), "pillion: %s", r->cause);
		for (char *p = s->lbuf[2]; *p; p++)
			if (*p == ' ')
				*p = '-';
		set_field(&s->lf[n++], "grpc-message", s->lbuf[2]);
		set_field(&s->lf[n++], "pillion-proxy-error", r->cause);
		pl_h2_response(s->dc->h, s->did, s->lf, n, false);
	} else {
		set_field(&s->lf[n++], "content-type", "text/plain; charset=utf-8");
		set_field(&s->lf[n++], "pillion-proxy-error", r->cause);
		if (r->retry_after_s) {
			snprintf(s->lbuf[3], sizeof(s->lbuf[3]), "%lld", (long long)r->retry_after_s);
			set_field(&s->lf[n++], "retry-after", s->lbuf[3]);
		}
		pl_buf_printf(&s->resp, "%s\n", r->msg);
		s->resp_end = true;
		pl_h2_response(s->dc->h, s->did, s->lf, n, true);
	}
	s->resp_started = true;
	mark(s->dc);
}

/* --- the request --- */

static enum pl_h1_method method_id(const pl_h2_field *f)
{
	static const char *const names[] = {NULL, "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
					    "TRACE", "PATCH"};
	for (size_t i = 1; i < sizeof(names) / sizeof(names[0]); i++)
		if (field_is(&(pl_h2_field){f->value, NULL, f->valuelen, 0}, names[i]))
			return (enum pl_h1_method)i;
	return PL_H1_OTHER;
}

static pl_h1_str span(const char *p, size_t n) { return (pl_h1_str){p, (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n)}; }

/* Whether a request field goes on upstream: the pseudo-fields and end-to-end ones do; te only as
 * "trailers" (nghttp2 refused the connection-specific ones already). */
static bool field_forwarded(const pl_h2_field *f, bool drop_trace)
{
	if (drop_trace && (field_is(f, "traceparent") || field_is(f, "tracestate")))
		return false;
	return true;
}

static void request_head(px_h2c *c, int32_t id, const pl_h2_field *f, size_t n, bool end)
{
	proxy *px = c->px;
	px_h2s *s = calloc(1, sizeof(*s));
	pl_h1_header hdrs[MAX_FIELDS];
	pl_h1_msg m = {0};
	px_refusal r = {0};

	if (!s)
		abort();
	s->rq.px = px;
	s->rq.dir = c->dir;
	s->rq.down_fd = c->s->fd;
	s->rq.orig = c->orig;
	s->rq.origlen = c->origlen;
	s->rq.peer_id = c->peer_id;
	s->rq.h2 = true;
	s->rq.service = "";
	s->gcode = -1;
	s->dc = c;
	s->did = id;
	s->req_end = end;
	pl_ev_timer_init(&s->timer, stream_timer, s);
	s->dnext = c->streams;
	if (c->streams)
		c->streams->dprev = s;
	c->streams = s;
	c->nstreams++;
	s->last_progress = pl_ev_now(px->loop);
	if (c->nstreams == 1) {
		if (px->set.stream_idle_timeout_ns > 0)
			pl_ev_timer_start(px->loop, &c->timer, px->set.stream_idle_timeout_ns);
		else
			pl_ev_timer_stop(px->loop, &c->timer);
	}
	pl_h2_set_stream(c->h, id, s);

	/* The request as the shared policy sees it: an HTTP/1 view of the head. */
	const pl_h2_field *path = NULL, *auth = NULL;
	for (size_t i = 0; i < n; i++) {
		if (field_is(&f[i], ":method")) {
			m.method = span(f[i].value, f[i].valuelen);
			m.method_id = method_id(&f[i]);
		} else if (field_is(&f[i], ":path")) {
			path = &f[i];
		} else if (field_is(&f[i], ":authority")) {
			auth = &f[i];
		} else if (f[i].namelen && f[i].name[0] != ':' && m.nheaders < MAX_FIELDS) {
			hdrs[m.nheaders++] = (pl_h1_header){span(f[i].name, f[i].namelen), span(f[i].value, f[i].valuelen)};
			if (field_is(&f[i], "host") && !auth)
				auth = &f[i];
		}
	}
	const pl_h2_field *ct = find(f, n, "content-type");
	s->grpc = ct && ct->valuelen >= 16 && strncasecmp(ct->value, "application/grpc", 16) == 0;
	m.headers = hdrs;
	m.minor = 1;
	m.keep_alive = true;
	if (auth)
		m.host = span(auth->value, auth->valuelen);
	px_req_begin(&s->rq);
	if (!px->config) {
		r.cause = "not ready";
		snprintf(r.msg, sizeof(r.msg), "the proxy has no valid config yet");
		local_answer(s, 503, &r);
		return;
	}
	if (m.method_id == PL_H1_CONNECT || !path) {
		r.cause = "method not allowed";
		snprintf(r.msg, sizeof(r.msg), "CONNECT is not proxied: the mesh already tunnels every connection");
		local_answer(s, 405, &r);
		return;
	}
	/* A fragment is never part of :path (RFC 9113 8.3.1); an app may read "#" as its start, and see
	 * another path than the policy did. */
	if (memchr(path->value, '#', path->valuelen)) {
		r.cause = "bad request";
		snprintf(r.msg, sizeof(r.msg), ":path holds a fragment (#), which is refused");
		local_answer(s, 400, &r);
		return;
	}
	/* :authority and host that differ: the policy would see one, the app maybe the other. */
	const pl_h2_field *host = find(f, n, "host");
	if (host && auth && auth != host &&
	    (host->valuelen != auth->valuelen || strncasecmp(host->value, auth->value, host->valuelen) != 0)) {
		r.cause = "bad request";
		snprintf(r.msg, sizeof(r.msg), ":authority and host differ, which is refused");
		local_answer(s, 400, &r);
		return;
	}
	m.target = span(path->value, path->valuelen);
	const char *q = memchr(path->value, '?', path->valuelen);
	m.path = span(path->value, q ? (size_t)(q - path->value) : path->valuelen);
	char norm[PL_H1_DEFAULT_MAX_LINE];
	int nl = px_path_normalize(m.path, norm, sizeof(norm));
	if (nl < 0) {
		r.cause = "bad request";
		snprintf(r.msg, sizeof(r.msg), "the path holds an encoded slash, backslash or dot, which is refused");
		local_answer(s, 400, &r);
		return;
	}
	char tfield[80];
	bool drop_trace;
	int status = px_req_policy(&s->rq, &m, (pl_h1_str){norm, (uint32_t)nl}, &r, tfield, &drop_trace);
	if (status) {
		local_answer(s, status, &r);
		return;
	}

	/* The fields as they go upstream, with the trace context of ours when we started one. */
	pl_h2_field out[MAX_FIELDS + 8];
	size_t k = 0;
	for (size_t i = 0; i < n && k < MAX_FIELDS; i++)
		if (field_forwarded(&f[i], drop_trace))
			out[k++] = f[i];
	if (tfield[0]) {
		/* tfield is "traceparent: <value>\r\n" */
		const char *v = strchr(tfield, ':');
		size_t vl = v ? strcspn(v + 2, "\r\n") : 0;
		if (v)
			out[k++] = (pl_h2_field){"traceparent", v + 2, 11, vl};
	}
	s->rf = copy_fields(out, k, &s->hb);
	s->nrf = k;
	/* An HTTP/1 request the caller's proxy carried over HTTP/2: HTTP/1.1 again for the app. */
	const pl_h2_field *op = find(f, n, PX_ORIG_PROTO);
	if (op && c->dir == PX_IN) {
		uint32_t cap = 0;
		enum px_h1_framing fr = PX_H1_NO_BODY;
		const char *why = op->valuelen == 8 && (memcmp(op->value, "HTTP/1.1", 8) == 0 ||
							 memcmp(op->value, "HTTP/1.0", 8) == 0)
					  ? px_h2h1_request(s->rf, s->nrf, !end, PX_ORIG_PROTO, &s->h1head,
							    &s->h1head_len, &cap, &fr, &s->h1_length)
					  : PX_ORIG_PROTO " is neither HTTP/1.1 nor HTTP/1.0";
		if (why) {
			r.cause = "bad request";
			snprintf(r.msg, sizeof(r.msg), "the request cannot go on as HTTP/1.1: %s", why);
			local_answer(s, 400, &r);
			return;
		}
		s->h1_framing = fr;
	}

	const pl_h2_field *gto = find(f, n, "grpc-timeout");
	int64_t gt = gto ? px_grpc_timeout(gto->value, gto->valuelen) : 0;
	if (gt && (!s->rq.deadline || s->rq.t_start + gt < s->rq.deadline))
		s->rq.deadline = s->rq.t_start + gt;
	if (s->rq.fault_abort) {
		r.cause = "fault injected";
		snprintf(r.msg, sizeof(r.msg), "an abort injected by route \"%s\" of TrafficPolicy %s",
			 px_req_route_name(&s->rq), s->rq.op->policy);
		local_answer(s, s->rq.fault_abort, &r);
		return;
	}
	if (s->rq.fault_delay_ns) {
		/* The request's deadline runs during the delay too. */
		s->delaying = true;
		s->delay_until = s->rq.t_start + s->rq.fault_delay_ns;
		int64_t when = s->rq.deadline && s->rq.deadline < s->delay_until ? s->rq.deadline : s->delay_until;
		pl_ev_timer_start(px->loop, &s->timer, when - s->rq.t_start);
		return;
	}
	start_attempt(s);
}

static void stream_timer(pl_ev_loop *loop, void *data)
{
	px_h2s *s = data;
	proxy *px = s->rq.px;
	(void)loop;

	all(px)->depth++;
	if (s->delaying && !(s->rq.deadline && pl_ev_now(px->loop) >= s->rq.deadline)) {
		s->delaying = false;
		start_attempt(s);
	} else if (!s->resp_started) {
		s->delaying = false;
		int64_t now = pl_ev_now(px->loop);
		bool overall = s->rq.deadline && now >= s->rq.deadline;
		drop_up(s);
		pool_unwait(s);
		px_req_outlier(&s->rq, true);
		if (!overall && px_req_retry(&s->rq, replayable(s), PX_CAUSE_TIMEOUT, 0)) {
			start_attempt(s);
		} else {
			px_refusal r = {.cause = overall ? "timeout" : "per-try timeout"};
			snprintf(r.msg, sizeof(r.msg), "no response within the %s (%d attempts)",
				 overall ? "request's timeout" : "per-try timeout", s->rq.attempts);
			local_answer(s, 504, &r);
		}
	} else if (s->dc && s->did) {
		/* The response began but did not end within the request's timeout. */
		pl_h2_reset(s->dc->h, s->did, PL_H2_CANCEL);
		mark(s->dc);
	}
	all(px)->depth--;
	settle(px);
}

/* --- session callbacks: downstream (we serve) --- */

static void d_head(void *ud, pl_h2 *h, int32_t id, void *sud, enum pl_h2_head kind, const pl_h2_field *f, size_t n,
		   bool end)
{
	px_h2c *c = ud;
	px_h2s *s = sud;
	(void)h;

	if (kind == PL_H2_REQUEST && !s) {
		request_head(c, id, f, n, end);
		return;
	}
	/* Request trailers: gRPC clients send none; they end the body. */
	if (s && end) {
		s->req_end = true;
		wake_up(s);
	}
}

static void d_data(void *ud, pl_h2 *h, int32_t id, void *sud, const uint8_t *p, size_t n)
{
	px_h2s *s = sud;
	(void)ud;

	/* No one will read these: answered locally, or the upstream stream is over (the server answered
	 * whole before reading the whole request). */
	if (!s || s->local || (!s->uc && s->resp_end)) {
		pl_h2_consume(h, id, n);
		return;
	}
	pl_buf_append(&s->body, p, n);
	s->unconsumed_down += n;
	s->last_progress = pl_ev_now(s->rq.px->loop);
	wake_up(s);
}

static void d_end(void *ud, pl_h2 *h, int32_t id, void *sud)
{
	px_h2s *s = sud;
	(void)ud;
	(void)h;
	(void)id;

	if (!s)
		return;
	s->req_end = true;
	wake_up(s);
}

static void d_close(void *ud, pl_h2 *h, int32_t id, void *sud, uint32_t code)
{
	px_h2c *c = ud;
	px_h2s *s = sud;
	(void)id;

	if (code && !pl_h2_closing(h) && !pl_bucket_take(&c->resets, pl_ev_now(c->px->loop))) {
		if (log_allowed(c->px))
			log_info("%s HTTP/2 client: more than %d streams ended in a reset, then %d a second: GOAWAY",
				 px_dirs[c->dir]->name, RESETS_BURST, RESETS_PER_S);
		pl_h2_goaway(h, PL_H2_ENHANCE_YOUR_CALM);
		mark(c);
	}
	if (!s)
		return;
	/* list_del_down hands back what the stream held (by its id, still set) and clears it. */
	list_del_down(s);
	/* A stream the client reset before any answer is not a request that was answered. */
	s->rq.grpc_status = s->grpc ? s->gcode : -1;
	if (s->rq.status)
		px_req_done(&s->rq);
	if (s->grpc && s->gcode >= 0) {
		char lbl[700];
		snprintf(lbl, sizeof(lbl), "direction=\"%s\",service=\"%s\",route=\"%s\",grpc_status=\"%d\"",
			 px_dirs[s->rq.dir]->name, s->rq.service, px_req_route_name(&s->rq), s->gcode);
		px_stats_inc(s->rq.px, PX_F_GRPC, lbl);
	}
	stream_free(s);
}

/* The response body (or a local answer's) for the client. */
static ssize_t d_read(void *ud, pl_h2 *h, int32_t id, void *sud, uint8_t *out, size_t n, int *end)
{
	px_h2s *s = sud;
	(void)ud;
	(void)h;
	(void)id;

	if (!s)
		return -2;
	size_t k = s->resp.len - s->resp_off;
	if (k > n)
		k = n;
	if (k)
		memcpy(out, s->resp.data + s->resp_off, k);
	s->resp_off += k;
	if (s->resp_off == s->resp.len) {
		s->resp.len = s->resp_off = 0;
		if (s->resp_end)
			*end = s->ntf ? PL_H2_END_TRAILERS : PL_H2_END;
	} else if (s->resp_off >= COMPACT_AT) {
		/* A reader slower than the server never drains the buffer whole: what it took goes, so the
		 * buffer holds what the windows let in, not the whole answer. */
		memmove(s->resp.data, s->resp.data + s->resp_off, s->resp.len - s->resp_off);
		s->resp.len -= s->resp_off;
		s->resp_off = 0;
	}
	size_t give = k < s->unconsumed_up ? k : s->unconsumed_up;
	if (give && s->uc && s->uid) {
		pl_h2_consume(s->uc->h, s->uid, give);
		s->unconsumed_up -= give;
		mark(s->uc);
	}
	if (k && s->uc && s->uc->x)
		mark(s->uc); /* an HTTP/1 upstream reads again once the client took what it held */
	if (!k && !*end)
		return PL_H2_DEFER;
	s->last_progress = pl_ev_now(s->rq.px->loop);
	if (s->rq.alog)
		px_alog_count(&s->rq, true, k);
	return (ssize_t)k;
}

static void d_trailers(void *ud, pl_h2 *h, int32_t id, void *sud, const pl_h2_field **f, size_t *n)
{
	px_h2s *s = sud;
	(void)ud;
	(void)h;
	(void)id;
	*f = s ? s->tf : NULL;
	*n = s ? s->ntf : 0;
}

static void d_goaway(void *ud, pl_h2 *h, int32_t last, uint32_t code)
{
	(void)ud;
	(void)h;
	(void)last;
	(void)code;
}

/* --- session callbacks: upstream (we call) --- */

/* Response fields that go on to the client: all but the proxy's own (inbound strips them, as for HTTP/1). */
static size_t response_fields(const px_h2s *s, const pl_h2_field *f, size_t n, pl_h2_field *out)
{
	size_t k = 0;
	bool strip = px_dirs[s->rq.dir]->http->strips_own;

	for (size_t i = 0; i < n && k < MAX_FIELDS; i++) {
		if (strip && field_is(&f[i], "pillion-proxy-error"))
			continue;
		out[k++] = f[i];
	}
	return k;
}

static int status_of(const pl_h2_field *f, size_t n)
{
	const pl_h2_field *st = find(f, n, ":status");
	return st && st->valuelen == 3 ? atoi(st->value) : 0;
}

static void u_head(void *ud, pl_h2 *h, int32_t id, void *sud, enum pl_h2_head kind, const pl_h2_field *f, size_t n,
		   bool end)
{
	px_h2s *s = sud;
	(void)ud;
	(void)h;
	(void)id;

	if (!s)
		return;
	if (kind == PL_H2_INFO)
		return; /* 100 Continue and the like: the body flows anyway */
	if (kind == PL_H2_TRAILERS) {
		free(s->tb);
		free(s->tf);
		pl_h2_field out[MAX_FIELDS];
		size_t k = response_fields(s, f, n, out);
		s->tf = copy_fields(out, k, &s->tb);
		s->ntf = k;
		int g = grpc_status_of(f, n);
		if (g >= 0)
			s->gcode = g;
		s->resp_end = true;
		wake_down(s);
		return;
	}
	px_h2_answer_head(s, status_of(f, n), f, n, end);
}

void px_h2_answer_head(px_h2s *s, int status, const pl_h2_field *f, size_t n, bool end)
{
	if (s->bridge) { /* the HTTP/1 session retries or passes it on, by what it reads */
		s->resp_started = true;
		s->resp_end = end;
		px_h2b_head(s->bridge, status, f, n, end);
		return;
	}
	/* A gRPC error comes as a trailers-only answer: nothing went down yet, so it may be retried. */
	int gcode = end && s->grpc ? grpc_status_of(f, n) : -1;
	/* A peer proxy that could not reach its app says so: the request never reached an app, so it
	 * goes on as after a connect failure, free, to another endpoint. */
	const pl_h2_field *pe = find(f, n, "pillion-proxy-error");
	if (px_dirs[s->rq.dir]->http->peer_unsent && s->uc && s->uc->s->tls && pe && (status == 503 || s->grpc) &&
	    pe->valuelen == 15 && memcmp(pe->value, "connect failure", 15) == 0) {
		drop_up(s);
		attempt_failed(s, PX_CAUSE_CONNECT, "the peer's proxy could not reach its app");
		return;
	}
	if (gcode >= 0)
		s->gcode = gcode;
	px_req_outlier(&s->rq, status >= 500);
	if ((status >= 500 && px_req_retry(&s->rq, replayable(s), PX_CAUSE_STATUS, status)) ||
	    (gcode > 0 && px_req_retry(&s->rq, replayable(s), PX_CAUSE_GRPC, gcode))) {
		drop_up(s);
		start_attempt(s);
		return;
	}
	s->rq.status = status;
	s->rq.deadline = s->rq.try_deadline = 0;
	pl_ev_timer_stop(s->rq.px->loop, &s->timer);
	s->resp_started = true;
	s->resp_end = end;
	if (!s->dc || !s->did)
		return;
	pl_h2_field out[MAX_FIELDS];
	size_t k = response_fields(s, f, n, out);
	pl_h2_response(s->dc->h, s->did, out, k, !end);
	mark(s->dc);
}

void px_h2_answer_data(px_h2s *s, const uint8_t *p, size_t n)
{
	if (!s->bridge && (!s->dc || !s->did))
		return;
	pl_buf_append(&s->resp, p, n);
	s->last_progress = pl_ev_now(s->rq.px->loop);
	wake_down(s);
}

void px_h2_answer_end(px_h2s *s)
{
	s->resp_end = true;
	wake_down(s);
}

size_t px_h2_answer_held(const px_h2s *s) { return s->resp.len - s->resp_off; }

void px_h2_up_done(px_h2s *s) { list_del_up(s); }

void px_h2_up_failed(px_h2s *s, uint32_t code, int cause, const char *detail)
{
	list_del_up(s);
	up_gone(s, code, cause, detail);
}

void px_h2_down_reset(px_h2s *s, uint32_t code)
{
	if (s->dc && s->did) {
		pl_h2_reset(s->dc->h, s->did, code);
		mark(s->dc);
	}
}

static void u_data(void *ud, pl_h2 *h, int32_t id, void *sud, const uint8_t *p, size_t n)
{
	px_h2s *s = sud;
	(void)ud;

	if (!s || (!s->bridge && (!s->dc || !s->did))) {
		pl_h2_consume(h, id, n);
		return;
	}
	s->unconsumed_up += n;
	px_h2_answer_data(s, p, n);
}

static void u_end(void *ud, pl_h2 *h, int32_t id, void *sud)
{
	(void)ud;
	(void)h;
	(void)id;
	if (sud)
		px_h2_answer_end(sud);
}

static void u_close(void *ud, pl_h2 *h, int32_t id, void *sud, uint32_t code)
{
	px_h2s *s = sud;
	(void)ud;
	(void)h;
	(void)id;

	if (!s)
		return;
	list_del_up(s);
	if (code == 0 && s->resp_end)
		return;
	up_gone(s, code ? code : PL_H2_INTERNAL_ERROR, PX_CAUSE_RESET, NULL);
}

/* The request body for the server: bytes are handed back to the client's window as they go out
 * the first time; a retry sends them again from the start. */
static ssize_t u_read(void *ud, pl_h2 *h, int32_t id, void *sud, uint8_t *out, size_t n, int *end)
{
	(void)ud;
	(void)h;
	(void)id;
	if (!sud)
		return -2;
	return px_h2_take_body(sud, out, n, end);
}

ssize_t px_h2_take_body(px_h2s *s, uint8_t *out, size_t n, int *end)
{
	size_t k = s->body.len - s->body_off;
	if (k > n)
		k = n;
	if (k)
		memcpy(out, s->body.data + s->body_off, k);
	s->body_off += k;
	if (s->body_off > s->consumed) {
		size_t fresh = s->body_off - s->consumed;
		s->consumed = s->body_off;
		size_t give = fresh < s->unconsumed_down ? fresh : s->unconsumed_down;
		if (give && s->dc && s->did) {
			pl_h2_consume(s->dc->h, s->did, give);
			s->unconsumed_down -= give;
			mark(s->dc);
		}
		if (s->rq.alog)
			px_alog_count(&s->rq, false, fresh);
	}
	/* Past what a retry may resend: the sent bytes go, and the request can no longer be replayed. */
	if ((s->trimmed || s->body.len > REPLAY_MAX) && (s->body_off == s->body.len || s->body_off >= COMPACT_AT)) {
		s->trimmed = true;
		memmove(s->body.data, s->body.data + s->body_off, s->body.len - s->body_off);
		s->body.len -= s->body_off;
		s->consumed -= s->body_off; /* consumed >= body_off: it is the high-water mark of what was sent */
		s->body_off = 0;
	}
	if (k && s->bridge)
		px_h2b_kick(s->bridge); /* room for more of its body */
	if (s->body_off == s->body.len && s->req_end)
		*end = PL_H2_END;
	else if (!k)
		return PL_H2_DEFER;
	return (ssize_t)k;
}

static void u_goaway(void *ud, pl_h2 *h, int32_t last, uint32_t code)
{
	px_h2c *c = ud;
	(void)h;
	(void)last;
	(void)code;
	/* No new streams on it (pool_conn skips it); streams above last are reset by nghttp2 as
	 * REFUSED_STREAM, and go on elsewhere, free. */
	mark(c);
}

static const pl_h2_cbs down_cbs = {d_head, d_data, d_end, d_close, d_read, d_trailers, d_goaway};
static const pl_h2_cbs up_cbs = {u_head, u_data, u_end, u_close, u_read, NULL, u_goaway};

/* --- HTTP/1 requests riding streams (h2bridge.c) --- */

/* Peers that did not choose pillion/h2 are asked again after this long (rolled to a newer proxy). */
#define PEER_RECHECK_NS (60 * PL_NS_PER_S)

int px_h2_peer(proxy *px, int dir, const px_target *t, bool endpoint, px_mesh *mesh)
{
	h2pool *p = pool_get(px, dir, t);
	int err = 0;

	if (p->h1ok > 0)
		return 1;
	if (p->h1ok < 0 && pl_ev_now(px->loop) - p->h1ok_at < PEER_RECHECK_NS)
		return 0;
	for (px_h2c *c = p->conns; c; c = c->next)
		if (!c->dead && !c->x)
			return 0; /* being dialled: its handshake will tell */
	/* A connection with no stream, to learn the peer's ALPN: it idles until requests use it. */
	pool_dial(p, false, endpoint, mesh, &err);
	return 0;
}

px_h2s *px_h2_bridge_open(proxy *px, int dir, const px_target *t, bool endpoint, px_mesh *mesh, const pl_h2_field *f,
			  size_t n, bool body, px_h2b *b, int *err)
{
	px_h2s *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	s->rq.px = px;
	s->rq.dir = dir;
	s->rq.endpoint = endpoint;
	s->rq.mesh = mesh;
	if (mesh)
		mesh->refs++;
	s->rq.service = "";
	s->rq.grpc_status = -1;
	s->gcode = -1;
	s->bridge = b;
	s->req_end = !body;
	pl_ev_timer_init(&s->timer, stream_timer, s);
	s->rf = copy_fields(f, n, &s->hb);
	s->nrf = n;
	h2pool *p = pool_get(px, dir, t);
	px_h2c *c = pool_conn(p, s, 0, err);
	if (!c) {
		s->bridge = NULL;
		stream_free(s);
		return NULL;
	}
	s->uc = c;
	if (c->state != C_READY) {
		s->wnext = c->wait;
		c->wait = s;
	} else {
		submit(s);
	}
	return s;
}

void px_h2_bridge_close(px_h2s *s)
{
	proxy *px = s->rq.px;

	s->bridge = NULL;
	all(px)->depth++;
	stream_free(s);
	all(px)->depth--;
	settle_(px, false);
}

pl_buf *px_h2_bridge_body(px_h2s *s) { return &s->body; }
size_t px_h2_bridge_unsent(const px_h2s *s) { return s->body.len - s->body_off; }
pl_buf *px_h2_bridge_resp(px_h2s *s) { return &s->resp; }
size_t *px_h2_bridge_resp_off(px_h2s *s) { return &s->resp_off; }
bool px_h2_bridge_resp_end(const px_h2s *s) { return s->resp_end; }
void px_h2_flush(proxy *px) { settle_(px, false); }

void px_h2_bridge_wake(px_h2s *s, bool end)
{
	s->req_end = end;
	wake_up(s);
}

void px_h2_bridge_consumed(px_h2s *s)
{
	if (s->uc && s->uid && s->uc->h && s->unconsumed_up) {
		pl_h2_consume(s->uc->h, s->uid, s->unconsumed_up);
		s->unconsumed_up = 0;
		mark(s->uc);
	}
}

/* --- pools --- */

/* A pool with no connection and no waiter goes, unless it remembers a peer that answered
 * pillion/1 recently (asked again after PEER_RECHECK_NS anyway). */
static bool h2pool_unused(void *value, void *arg)
{
	const h2pool *p = value;
	int64_t now = *(const int64_t *)arg;
	return !p->conns && !p->nwait && !(p->h1ok < 0 && now - p->h1ok_at < PEER_RECHECK_NS);
}

void px_h2_sweep(proxy *px)
{
	if (!px->h2)
		return;
	int64_t now = pl_ev_now(px->loop);
	pl_hmap_remove_if(&px->h2->pools, h2pool_unused, &now, free);
}

size_t px_h2_pools(const proxy *px) { return px->h2 ? px->h2->pools.count : 0; }

/* --- entry points --- */

/* The accepted connection closes from outside (the drain's deadline): the session goes first. */
static void h2_release(px_conn *conn)
{
	px_h2c *c = conn->pctx;

	c->conn = NULL;
	c->s = &c->own; /* the socket stays the connection's, to close */
	conn->pctx = NULL;
	conn_close(c, "shutting down");
}

static void h2_io(px_conn *conn, uint32_t ev) { conn_io(conn->px->loop, conn->pctx, ev); }

const px_proto px_proto_h2 = {"http/2", h2_io, h2_release};

void px_h2_start(px_conn *conn)
{
	proxy *px = conn->px;
	struct px_h2_all *a = all(px);
	px_h2c *c = conn_new(px, conn->dir, true);

	c->orig = conn->orig;
	c->origlen = conn->origlen;
	c->peer_id = conn->peer_id;
	conn->peer_id = NULL;
	c->conn = conn;
	c->s = &conn->down;
	px_conn_swap(conn, &px_proto_h2, c);
	c->state = C_READY;
	c->h = pl_h2_new(true, &down_cbs, c, NULL);
	pl_ev_io_set(px->loop, &c->s->io, EPOLLIN);
	c->next = a->downs;
	if (a->downs)
		a->downs->prev = c;
	a->downs = c;
	c->last_active = pl_ev_now(px->loop);
	pl_bucket_init(&c->resets, RESETS_PER_S, RESETS_BURST, c->last_active);
	pl_ev_timer_start(px->loop, &c->timer, px->idle_timeout_ns);
	a->depth++;
	conn_read(c);
	if (!c->dead)
		mark(c);
	a->depth--;
	settle(px);
}

void px_h2_drain(proxy *px)
{
	if (!px->h2)
		return;
	for (px_h2c *c = px->h2->downs; c; c = c->next) {
		pl_h2_goaway(c->h, PL_H2_NO_ERROR);
		mark(c);
	}
	settle(px);
}

void px_h2_close_all(proxy *px)
{
	if (!px->h2)
		return;
	struct px_h2_all *a = px->h2;
	a->depth++;
	while (a->downs)
		conn_close(a->downs, "shutting down");
	size_t it = 0;
	pl_hmap_slot *sl;
	while ((sl = pl_hmap_next(&a->pools, &it))) {
		h2pool *p = sl->value;
		while (p->conns)
			conn_close(p->conns, "shutting down");
	}
	a->depth--;
	settle(px);
}

void px_h2_free(proxy *px)
{
	if (!px->h2)
		return;
	px_h2_close_all(px);
	pl_ev_timer_stop(px->loop, &px->h2->kick_timer);
	size_t it = 0;
	pl_hmap_slot *sl;
	while ((sl = pl_hmap_next(&px->h2->pools, &it)))
		free(sl->value);
	pl_hmap_free(&px->h2->pools);
	free(px->h2);
	px->h2 = NULL;
}
