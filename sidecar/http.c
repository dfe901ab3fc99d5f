/* HTTP/1 sessions: one downstream connection, its requests in order, each forwarded over a pooled upstream
 * connection with its route's policy (timeouts, retries, circuit breaking, faults), or answered by the proxy. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/duration.h"
#include "base/log.h"
#include "h2/h2.h"
#include "http1/http1.h"
#include "orig.h"
#include "pki/tls.h"
#include "h1head.h"
#include "l7.h"

#define HBUF_POOL_MAX 64
#define MAX_INTERIM 8 /* 1xx answers passed on before the final one */

/* What a step did: the session may go on, is blocked on I/O, or is gone (freed). */
enum { BLOCKED = 0, PROGRESS = 1, GONE = -1 };

static const pl_h1_limits limits = {PL_H1_DEFAULT_MAX_LINE, PL_H1_DEFAULT_MAX_HEAD, PL_H1_DEFAULT_MAX_HEADERS};

static void timer_cb(pl_ev_loop *loop, void *data);
static void idle_timer_cb(pl_ev_loop *loop, void *data);
static int64_t tick(const proxy *px);
static void run(px_hs *hs);
static int start_attempt(px_hs *hs);

/* --- buffers --- */

static char *hbuf_get(proxy *px) { return px_bufpool_get(&px->hbufs, PX_HBUF); }

static void hbuf_put(proxy *px, char **b) { px_bufpool_put(&px->hbufs, b, HBUF_POOL_MAX); }

void px_hbuf_free(proxy *px) { px_bufpool_free(&px->hbufs); }

/* --- detection --- */

void px_l7_detect(px_conn *c, uint32_t ev, bool timed_out)
{
	if (!timed_out) {
		int r = px_http_try(c, ev);
		if (r != 0)
			return;
	} else {
		px_xprt_of(&c->down)->lowat(&c->down, 1);
	}
	pl_ev_timer_stop(c->px->loop, &c->timer);
	/* A port under per-request policy takes HTTP only: whatever is not HTTP/2 is parsed as HTTP/1,
	 * and what is not a well-formed request is answered 400 and closed, never relayed; a slow
	 * first byte waits for the session's head timeout. */
	if (c->http_only) {
		px_http_start(c);
		return;
	}
	px_dirs[c->dir]->forward(c);
}

int px_http_try(px_conn *c, uint32_t ev)
{
	/* On the stack: a request line up to its version, at most the line limit. */
	char buf[PL_H1_DEFAULT_MAX_LINE + 16];
	const px_xprt *x = px_xprt_of(&c->down);
	ssize_t n = x->peek(&c->down, buf, sizeof(buf));

	if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE)
		return -1;
	if (n <= 0)
		goto bytes; /* closed before a word: the byte relay passes the end on */
	/* HTTP/2 with prior knowledge (h2c, or h2 between proxies inside mTLS): its preface. */
	int h2 = pl_h2_is_preface(buf, (size_t)n);
	if (h2 == 1) {
		x->lowat(&c->down, 1);
		px_h2_start(c);
		return 1;
	}
	if (h2 < 0) {
		if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			goto bytes;
		x->lowat(&c->down, PL_H2_PREFACE_LEN);
		return -1;
	}
	if (c->http_only) {
		x->lowat(&c->down, 1);
		px_http_start(c);
		return 1;
	}
	switch (pl_h1_detect(buf, (size_t)n, PL_H1_DEFAULT_MAX_LINE)) {
	case PL_H1_DETECT_HTTP:
		break;
	case PL_H1_DETECT_NOT:
		goto bytes;
	default:
		if (x == &px_xprt_tls)
			break; /* a request line split across TLS records: what came is HTTP so far */
		if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			goto bytes;
		x->lowat(&c->down, (int)n + 1);
		return -1;
	}
	x->lowat(&c->down, 1);
	px_http_start(c);
	return 1;
bytes:
	x->lowat(&c->down, 1);
	return 0;
}

/* --- session life --- */

static const char *dir_name(int dir) { return px_dirs[dir]->name; }

static px_log_rate log_rate;
static bool log_allowed(proxy *px) { return px_log_allowed(px, &log_rate); }

/* hs lets go of its request's pool (counted: a pool no session holds may be swept). */
static void pool_leave(px_hs *hs)
{
	if (hs->pool) {
		hs->pool->users--;
		hs->pool = NULL;
	}
}

/* The request no longer wants its upstream connection: it stops waiting for one, or closes it. */
static void drop_upstream(px_hs *hs)
{
	if (hs->pool) {
		px_pool_cancel(hs->pool, hs);
		pool_leave(hs);
	}
	if (hs->up)
		px_up_release(hs->up, false);
}

static void request_clear(px_hs *hs)
{
	proxy *px = hs->px;

	free(hs->uhead);
	hs->uhead = NULL;
	free(hs->dhead);
	hs->dhead = NULL;
	hs->uhead_len = hs->uhead_off = hs->dhead_len = hs->dhead_off = 0;
	hbuf_put(px, &hs->rin);
	drop_upstream(hs);
	px_req_clear(&hs->rq);
}

/* The connection lets go of its HTTP/1 handler (it closes, or becomes a tunnel). */
static void h1_release(px_conn *c)
{
	px_hs *hs = c->pctx;
	proxy *px = hs->px;

	request_clear(hs);
	pl_ev_timer_stop(px->loop, &hs->timer);
	pl_ev_timer_stop(px->loop, &hs->idle_timer);
	hbuf_put(px, &hs->in);
	if (hs->prev)
		hs->prev->next = hs->next;
	else
		px->sessions = hs->next;
	if (hs->next)
		hs->next->prev = hs->prev;
	free(hs);
	c->pctx = NULL;
}

/* The session ends with its connection. */
static void hs_free(px_hs *hs, bool reset) { px_conn_close(hs->c, reset); }

static void h1_io(px_conn *c, uint32_t ev);

const px_proto px_proto_h1 = {"http/1", h1_io, h1_release};

void px_http_start(px_conn *c)
{
	proxy *px = c->px;
	px_hs *hs = calloc(1, sizeof(*hs));

	if (!hs)
		abort();
	hs->px = hs->rq.px = px;
	hs->c = c;
	hs->dir = hs->rq.dir = c->dir;
	hs->rq.service = "";
	hs->rq.orig = c->orig;
	hs->rq.origlen = c->origlen;
	hs->rq.peer_id = c->peer_id; /* the connection's */
	hs->down = &c->down;
	hs->rq.down_fd = c->down.fd;
	/* counted by its mesh hop: upstream for outbound, downstream for inbound */
	px_conn_swap(c, &px_proto_h1, hs);
	pl_ev_timer_init(&hs->timer, timer_cb, hs);
	pl_ev_timer_init(&hs->idle_timer, idle_timer_cb, hs);
	pl_ev_io_set(px->loop, &c->down.io, EPOLLIN);
	hs->next = px->sessions;
	if (px->sessions)
		px->sessions->prev = hs;
	px->sessions = hs;
	hs->state = PX_HS_HEAD;
	hs->down_rd = true; /* detection saw bytes waiting */
	hs->last_active = hs->head_started = pl_ev_now(px->loop);
	pl_ev_timer_start(px->loop, &hs->idle_timer, tick(px));
	run(hs);
}

/* --- writing heads --- */

/* The proxy answers this request itself. The connection ends after it when the request's body was
 * not read whole (what follows on the connection is unknown). */
static void local_response(px_hs *hs, int status, const px_refusal *r)
{
	proxy *px = hs->px;
	uint32_t cap = 0;

	drop_upstream(hs);
	hbuf_put(px, &hs->rin);
	if (!hs->req_read_done || !hs->req_keep_alive || px->draining)
		hs->close_after = true;
	free(hs->dhead);
	hs->dhead = NULL;
	hs->dhead_len = hs->dhead_off = 0;
	px_local_answer(&hs->dhead, &hs->dhead_len, &cap, status, r->cause, r->msg, hs->close_after, r->retry_after_s);
	px_req_local(&hs->rq, status, r);
	hs->state = PX_HS_LOCAL;
	pl_ev_timer_stop(px->loop, &hs->timer);
}

static void refuse(px_hs *hs, int status, const char *cause, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void refuse(px_hs *hs, int status, const char *cause, const char *fmt, ...)
{
	px_refusal r = {.cause = cause};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.msg, sizeof(r.msg), fmt, ap);
	va_end(ap);
	local_response(hs, status, &r);
}

/* --- the request --- */

static void arm_deadline(px_hs *hs)
{
	proxy *px = hs->px;
	int64_t when = hs->rq.deadline;

	if (hs->rq.try_deadline && (!when || hs->rq.try_deadline < when))
		when = hs->rq.try_deadline;
	if (when)
		pl_ev_timer_start(px->loop, &hs->timer, when > pl_ev_now(px->loop) ? when - pl_ev_now(px->loop) : 0);
	else
		pl_ev_timer_stop(px->loop, &hs->timer);
}

/* Finds where the request body ends among the bytes read so far. */
static int scan_request(px_hs *hs)
{
	if (hs->req_read_done)
		return 0;
	pl_h1_error err;
	ssize_t k = pl_h1_body_scan(&hs->req_rd, hs->in + hs->rq_end, hs->in_len - hs->rq_end, &limits, 400, &err);
	if (k < 0) {
		if (hs->state == PX_HS_EXCHANGE && (hs->uhead_off || hs->resp_any)) {
			if (log_allowed(hs->px))
				log_info("%s request body refused at byte %llu: %s", dir_name(hs->dir),
					 (unsigned long long)hs->req_rd.ck.offset, err.what);
			return -1;
		}
		refuse(hs, 400, "bad request", "request body refused at byte %u of the body: %s", err.offset, err.what);
		return 1;
	}
	hs->rq_end += (uint32_t)k;
	hs->req_read_done = hs->req_rd.done;
	if (hs->rq.alog)
		px_alog_count(&hs->rq, false, (size_t)k);
	return 0;
}

static bool replayable(const px_hs *hs)
{
	return !hs->discarded && (pl_h1_idempotent(hs->method) || hs->req_read_done);
}

/* An Upgrade becomes a tunnel only for a protocol --upgrades names (websocket): past the 101 the
 * bytes are no longer requests, so policy sees only the opening one. h2c would carry requests no
 * rule ever sees; such a request goes on as a plain one, its Upgrade dropped (it is hop-by-hop),
 * and the client keeps speaking HTTP/1.1 (RFC 9110 7.8). One protocol only: a list is ambiguous. */
static bool upgrade_allowed(const proxy *px, const pl_h1_msg *m)
{
	const pl_h1_header *u = pl_h1_find(m, "upgrade");
	const char *list = px->set.upgrades ? px->set.upgrades : "";

	if (!u || u->value.len == 0 || memchr(u->value.p, ',', u->value.len))
		return false;
	/* The protocol without a version ("websocket", not "websocket/13"), then against the list. */
	pl_h1_str proto = u->value;
	const char *slash = memchr(proto.p, '/', proto.len);
	if (slash)
		proto.len = (uint32_t)(slash - proto.p);
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == proto.len && strncasecmp(proto.p, p, n) == 0)
			return true;
		p += n + (e ? 1 : 0);
	}
	return false;
}

/* A head was parsed: the policy decides, then the first attempt starts. */
static int begin_request(px_hs *hs, const pl_h1_msg *m)
{
	proxy *px = hs->px;
	char norm[PL_H1_DEFAULT_MAX_LINE];
	px_refusal r = {0};

	px_req_begin(&hs->rq);
	hs->method = m->method_id;
	hs->minor = m->minor;
	hs->req_keep_alive = m->keep_alive;
	hs->expect = m->expect_continue;
	hs->upgrade = m->upgrade && m->method_id != PL_H1_CONNECT && upgrade_allowed(px, m);
	hs->head_len = m->head_len;
	pl_h1_body_start(&hs->req_rd, m);
	hs->rq_pos = hs->rq_end = m->head_len;
	hs->req_read_done = m->body == PL_H1_BODY_NONE;
	hs->req_sent = false;
	hs->discarded = false;
	hs->close_after = false;

	if (m->method_id == PL_H1_CONNECT) {
		refuse(hs, 405, "method not allowed", "CONNECT is not proxied: the mesh already tunnels every connection");
		return PROGRESS;
	}
	int nl = px_path_normalize(m->path, norm, sizeof(norm));
	if (nl < 0) {
		refuse(hs, 400, "bad request", "the path holds an encoded slash, backslash or dot, which is refused");
		return PROGRESS;
	}
	pl_h1_str path = {norm, (uint32_t)nl};
	char tfield[80], add[128];
	bool drop_trace;
	int status = px_req_policy(&hs->rq, m, path, &r, tfield, &drop_trace);
	if (status) {
		local_response(hs, status, &r);
		return PROGRESS;
	}
	if (scan_request(hs))
		return PROGRESS;

	/* The head as it goes upstream: hop-by-hop fields removed; an HTTP/1.0 client's request keeps the
	 * pooled connection open. The parsed spans are stale from here on. */
	snprintf(add, sizeof(add), "%s%s",
		 hs->upgrade ? "connection: upgrade\r\n" : m->minor == 0 ? "connection: keep-alive\r\n" : "", tfield);
	int32_t st = px_request_head_out(m, hs->in, add, hs->upgrade, drop_trace, &hs->uhead, &hs->uhead_len);
	if (st == PX_HEAD_TOO_MANY) {
		refuse(hs, 431, "too many fields", "more than %u header fields once the proxy adds its own",
		       PL_H1_DEFAULT_MAX_HEADERS);
		return PROGRESS;
	}
	hs->req_start = st >= 0 ? (uint32_t)st : hs->head_len;

	if (hs->rq.fault_abort) {
		refuse(hs, hs->rq.fault_abort, "fault injected", "an abort injected by route \"%s\" of TrafficPolicy %s",
		       px_req_route_name(&hs->rq), hs->rq.op->policy);
		return PROGRESS;
	}
	if (hs->rq.fault_delay_ns) {
		hs->state = PX_HS_DELAY;
		pl_ev_timer_start(px->loop, &hs->timer, hs->rq.fault_delay_ns);
		return PROGRESS;
	}
	return start_attempt(hs);
}

static void response_reset(px_hs *hs)
{
	hs->rin_len = hs->rs_pos = hs->rs_end = 0;
	hs->resp_head = hs->resp_rd.done = hs->resp_any = false;
	hs->interims = 0;
	hs->up_rd = false;
}

static int start_attempt(px_hs *hs)
{
	proxy *px = hs->px;
	px_refusal r = {0};
	int err = 0;

	hs->rq.attempts++;
	hs->uhead_off = 0;
	hs->rq_pos = hs->req_start;
	hs->req_sent = false;
	response_reset(hs);
	free(hs->dhead);
	hs->dhead = NULL;
	hs->dhead_len = hs->dhead_off = 0;
	px_target target;
	int status = px_dirs[hs->dir]->http->target(&hs->rq, &target, &r);
	if (status) {
		local_response(hs, status, &r);
		return PROGRESS;
	}
	if (hs->rq.alog)
		px_alog_upstream(&hs->rq, &target.addr);
	const pl_retries *rt = hs->rq.route ? &hs->rq.route->retries : NULL;
	hs->rq.try_deadline = rt && rt->set && rt->per_try_timeout_ns ? pl_ev_now(px->loop) + rt->per_try_timeout_ns : 0;
	arm_deadline(hs);
	pool_leave(hs);
	hs->pool = px_pool_get(px, hs->dir, &target);
	hs->pool->users++;
	hs->state = PX_HS_WAIT;
	int max_conns, max_pending;
	const char *bound = px_req_pool_limits(&hs->rq, &max_conns, &max_pending);
	int a = px_pool_acquire(hs->pool, hs, max_conns, max_pending, &err);
	if (a == 1) {
		hs->state = PX_HS_EXCHANGE;
		return PROGRESS;
	}
	if (a == -1) {
		char lbl[600];
		snprintf(lbl, sizeof(lbl), "service=\"%s\",reason=\"max_pending\"", hs->rq.service);
		px_stats_inc(px, PX_F_EJECTIONS, lbl);
		pool_leave(hs);
		refuse(hs, 503, "overflow", "circuit breaker: %d requests already wait for a connection to %s (%s)",
		       max_pending, hs->rq.backend ? hs->rq.backend : hs->rq.service, bound);
		return PROGRESS;
	}
	if (a == -2) {
		pool_leave(hs);
		px_http_up_failed(hs, PX_CAUSE_CONNECT, strerror(err));
		return GONE; /* px_http_up_failed ran the session */
	}
	return BLOCKED;
}

/* An attempt failed before a response was passed on: retry, or answer. */
static int attempt_failed(px_hs *hs, int cause, const char *detail)
{
	bool reused = hs->up && hs->up->reused;

	px_req_outlier(&hs->rq, true);
	drop_upstream(hs);
	if (px_req_unreachable(&hs->rq, replayable(hs), cause, detail))
		return start_attempt(hs);
	/* A pooled connection the server closed as we sent: the request never reached it. Once, free. */
	if (cause == PX_CAUSE_RESET && reused && !hs->resp_any && !hs->rq.stale_retried && replayable(hs)) {
		hs->rq.stale_retried = true;
		hs->rq.attempts--;
		return start_attempt(hs);
	}
	if (px_req_retry(&hs->rq, replayable(hs), cause, 0))
		return start_attempt(hs);
	const char *to = hs->rq.backend ? hs->rq.backend : hs->rq.service[0] ? hs->rq.service : "the app";
	if (cause == PX_CAUSE_TIMEOUT)
		refuse(hs, 504, "per-try timeout", "no response from %s within the per-try timeout of %lld ms (%d attempts)",
		       to, (long long)(hs->rq.route->retries.per_try_timeout_ns / PL_NS_PER_MS), hs->rq.attempts);
	else
		refuse(hs, cause == PX_CAUSE_CONNECT || cause == PX_CAUSE_TLS ? 503 : 502, px_cause_word(cause),
		       "%s to %s: %s (%d attempt%s)", px_cause_word(cause), to, detail, hs->rq.attempts,
		       hs->rq.attempts == 1 ? "" : "s");
	return PROGRESS;
}

void px_http_up_ready(px_hs *hs)
{
	hs->state = PX_HS_EXCHANGE;
	hs->up_rd = false;
	run(hs);
}

void px_http_up_error(px_hs *hs, int cause, const char *detail)
{
	if (hs->state != PX_HS_EXCHANGE || hs->resp_head) {
		px_http_up_event(hs, EPOLLIN);
		return;
	}
	if (attempt_failed(hs, cause, detail) != GONE)
		run(hs);
}

void px_http_up_failed(px_hs *hs, int cause, const char *detail)
{
	pool_leave(hs);
	hs->up = NULL;
	if (attempt_failed(hs, cause, detail) != GONE)
		run(hs);
}

/* --- the response --- */

static int tunnel(px_hs *hs)
{
	proxy *px = hs->px;
	px_side up;

	/* The 101 head and whatever the server sent after it go down; what the client sent after its
	 * request goes up. */
	uint32_t cap = hs->dhead_len;
	px_put(&hs->dhead, &hs->dhead_len, &cap, hs->rin + hs->rs_pos, hs->rin_len - hs->rs_pos);
	if (hs->dhead_len - hs->dhead_off > px->set.buf_size || hs->in_len - hs->rq_end > px->set.buf_size) {
		refuse(hs, 502, "upgrade", "the upgrade response or the bytes after it do not fit the relay buffer");
		return PROGRESS;
	}
	px_req_done(&hs->rq);
	px_up_detach(hs->up, &up);
	hs->up = NULL;
	/* The same connection goes on as a byte relay; hs is freed by the swap. */
	if (!px_conn_tunnel(hs->c, &up, hs->in + hs->rq_end, hs->in_len - hs->rq_end, hs->dhead + hs->dhead_off,
			    hs->dhead_len - hs->dhead_off))
		abort(); /* sizes checked above */
	return GONE;
}

/* Finds where the response ends among the bytes read so far; bytes past it make the upstream
 * connection unusable (the server said less than it sent). */
static int scan_response(px_hs *hs)
{
	pl_h1_error err;
	ssize_t k = pl_h1_body_scan(&hs->resp_rd, hs->rin + hs->rs_end, hs->rin_len - hs->rs_end, &limits, 502, &err);

	if (k < 0) {
		if (log_allowed(hs->px))
			log_info("%s response body from upstream refused: %s", dir_name(hs->dir), err.what);
		return -1;
	}
	hs->rs_end += (uint32_t)k;
	if (hs->resp_rd.done && hs->rin_len > hs->rs_end) {
		hs->up_reusable = false;
		hs->rin_len = hs->rs_end;
	}
	return 0;
}

/* A final response head is here: retry it, or pass it on. */
static int response_head(px_hs *hs, const pl_h1_msg *m)
{
	proxy *px = hs->px;

	/* A peer proxy that could not reach its app (it refused: it exited on SIGTERM while its proxy
	 * drains, say) says so: the request never reached an app, so it goes on as after a connect
	 * failure, free, to another endpoint. */
	if (px_dirs[hs->dir]->http->peer_unsent && m->status == 503 && hs->up && (hs->up->s.tls || hs->up->s.vx) &&
	    px_peer_unsent(m)) {
		px_up_release(hs->up, false);
		return attempt_failed(hs, PX_CAUSE_CONNECT, "the peer's proxy could not reach its app");
	}
	px_req_outlier(&hs->rq, m->status >= 500);
	if (m->status >= 500 && px_req_retry(&hs->rq, replayable(hs), PX_CAUSE_STATUS, m->status)) {
		if (hs->up)
			px_up_release(hs->up, false);
		return start_attempt(hs);
	}
	/* The head goes on with one Connection field of the proxy's: it must still parse at the next
	 * hop, which has the same field limit. */
	unsigned own = px_dirs[hs->dir]->http->strips_own ? PX_DROP_OWN : 0;
	if (px_fields_kept(m, m->status == 101 && hs->upgrade, false, own) + 1 > PL_H1_DEFAULT_MAX_HEADERS) {
		hs->up_reusable = false;
		if (hs->up)
			px_up_release(hs->up, false);
		refuse(hs, 502, "bad response", "the response has more than %u header fields once the proxy adds its own",
		       PL_H1_DEFAULT_MAX_HEADERS);
		return PROGRESS;
	}
	hs->rq.status = m->status;
	hs->resp_head = true;
	hs->rq.deadline = hs->rq.try_deadline = 0;
	pl_ev_timer_stop(px->loop, &hs->timer);
	hs->up_reusable = m->keep_alive && m->body != PL_H1_BODY_CLOSE;
	pl_h1_body_start(&hs->resp_rd, m);
	if (!hs->req_keep_alive || px->draining || m->body == PL_H1_BODY_CLOSE)
		hs->close_after = true;
	bool up101 = m->status == 101 && hs->upgrade;
	if (m->minor == 1 && hs->rin[7] != '1')
		hs->rin[7] = '1'; /* "HTTP/1.9 200" goes on as HTTP/1.1, as requests do */
	int32_t st = px_rewrite_head(m, hs->rin,
				  up101 ? "connection: upgrade\r\n" : hs->close_after ? "connection: close\r\n" :
				  hs->minor == 0 ? "connection: keep-alive\r\n" : "",
				  up101, false, NULL, own, &hs->dhead, &hs->dhead_len);

	hs->rs_pos = st >= 0 ? (uint32_t)st : m->head_len;
	hs->rs_end = m->head_len;
	if (up101) {
		hs->rs_end = hs->rin_len;
		return tunnel(hs);
	}
	if (scan_response(hs) < 0)
		return -2;
	return PROGRESS;
}

/* The upstream's answer cannot be passed on: its connection is not reused, the attempt counts
 * against the endpoint, and it is tried again when it may be (retry), else answered 502. */
static int bad_response(px_hs *hs, bool retry, const char *why)
{
	hs->up_reusable = false;
	if (hs->up)
		px_up_release(hs->up, false);
	px_req_outlier(&hs->rq, true);
	if (retry && px_req_retry(&hs->rq, replayable(hs), PX_CAUSE_STATUS, 502))
		return start_attempt(hs);
	refuse(hs, 502, "bad response", "%s", why);
	return PROGRESS;
}

/* Parses what rin holds: interim responses go down as they are, a final one is decided on. */
static int parse_response(px_hs *hs)
{
	pl_h1_header hdrs[PL_H1_DEFAULT_MAX_HEADERS];
	pl_h1_msg m;
	pl_h1_error err;

	for (;;) {
		int r = pl_h1_parse_response(hs->rin, hs->rin_len, &limits, hs->method, hdrs, PL_H1_DEFAULT_MAX_HEADERS,
					     &m, &err);
		if (r == 0)
			return BLOCKED;
		char why[256];
		if (r < 0) {
			snprintf(why, sizeof(why), "the response from upstream was refused at byte %u: %s", err.offset,
				 err.what);
			return bad_response(hs, true, why);
		}
		if (m.status >= 200 || (m.status == 101 && hs->upgrade))
			return response_head(hs, &m);
		/* A server that answers interim after interim (to a client that does not read) would
		 * grow the bytes held for the client without end. Those already passed on rule out a
		 * retry. */
		if (++hs->interims > MAX_INTERIM) {
			snprintf(why, sizeof(why), "the upstream sent more than %d interim (1xx) answers", MAX_INTERIM);
			return bad_response(hs, false, why);
		}
		/* 1xx: passed on at once (100 Continue releases the client's body). */
		uint32_t cap = hs->dhead_len;
		px_put(&hs->dhead, &hs->dhead_len, &cap, hs->rin, m.head_len);
		memmove(hs->rin, hs->rin + m.head_len, hs->rin_len - m.head_len);
		hs->rin_len -= m.head_len;
	}
}

/* --- I/O steps --- */

static void want(px_side *s, ssize_t n, bool write)
{
	if (write)
		s->want_w = (int)n;
	else
		s->want_r = (int)n;
}

/* Reads what the head needs from downstream. */
static int read_head(px_hs *hs)
{
	proxy *px = hs->px;

	if (!hs->down_rd && !px_side_pending(hs->down))
		return BLOCKED;
	if (!hs->in)
		hs->in = hbuf_get(px);
	if (hs->in_len == 0)
		hs->head_started = pl_ev_now(px->loop);
	ssize_t n = px_side_recv(hs->down, hs->in + hs->in_len, PX_HBUF - hs->in_len);
	if (n > 0) {
		hs->in_len += (uint32_t)n;
		hs->down->want_r = 0;
		return PROGRESS;
	}
	if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE) {
		hs->down_rd = false;
		want(hs->down, n, false);
		if (hs->in_len == 0)
			hbuf_put(px, &hs->in);
		return BLOCKED;
	}
	/* The client closed (or reset) between requests, or inside a head: nothing to answer. */
	hs_free(hs, n < 0);
	return GONE;
}

static int head_step(px_hs *hs)
{
	proxy *px = hs->px;
	pl_h1_header hdrs[PL_H1_DEFAULT_MAX_HEADERS];
	pl_h1_msg m;
	pl_h1_error err;

	if (hs->head_seen > hs->in_len)
		hs->head_seen = 0;
	/* A head is parsed again only when a line ended since the last try (or the buffer is full):
	 * a head sent a byte at a time costs a parse per line, not per byte. */
	if (hs->in_len && (hs->in_len == PX_HBUF || memchr(hs->in + hs->head_seen, '\n', hs->in_len - hs->head_seen))) {
		int r = pl_h1_parse_request(hs->in, hs->in_len, &limits, hdrs, PL_H1_DEFAULT_MAX_HEADERS, &m, &err);
		hs->head_seen = r == 0 ? hs->in_len : 0;
		if (r > 0) {
			if (!px->config) { /* the proxy was never ready: no policy to apply */
				px_refusal rf = {.cause = "not ready"};
				snprintf(rf.msg, sizeof(rf.msg), "the proxy has no valid config yet");
				hs->req_read_done = m.body == PL_H1_BODY_NONE;
				hs->req_keep_alive = false;
				hs->head_len = m.head_len;
				hs->rq_end = m.head_len;
				hs->rq.t_start = pl_ev_now(px->loop);
				local_response(hs, 503, &rf);
				return PROGRESS;
			}
			return begin_request(hs, &m);
		}
		if (r < 0) {
			hs->req_read_done = false;
			hs->rq.t_start = pl_ev_now(px->loop);
			refuse(hs, err.status, "bad request", "request refused at byte %u: %s", err.offset, err.what);
			return PROGRESS;
		}
	}
	/* Draining: a session with nothing buffered ends here, except through the drain delay, when a
	 * request may still come (a new connection, or a caller's pooled one): it is served, with
	 * "Connection: close". */
	if (((px->draining && !px->drain_listening) || hs->down_eof) && hs->in_len == 0) {
		hs_free(hs, false);
		return GONE;
	}
	if (hs->down_eof) { /* half a head, and the client is done sending */
		hs_free(hs, false);
		return GONE;
	}
	return read_head(hs);
}

static int send_up(px_hs *hs)
{
	px_up *u = hs->up;

	while (u && (hs->uhead_off < hs->uhead_len || hs->rq_pos < hs->rq_end)) {
		const char *p;
		uint32_t n;
		if (hs->uhead_off < hs->uhead_len) {
			p = hs->uhead + hs->uhead_off;
			n = hs->uhead_len - hs->uhead_off;
		} else {
			p = hs->in + hs->rq_pos;
			n = hs->rq_end - hs->rq_pos;
		}
		ssize_t w = px_side_send(&u->s, p, n);
		if (w == PL_IO_WANT_READ || w == PL_IO_WANT_WRITE) {
			want(&u->s, w, true);
			return BLOCKED;
		}
		if (w < 0) {
			if (hs->resp_head)
				return -2;
			return attempt_failed(hs, PX_CAUSE_RESET, strerror((int)-w));
		}
		u->s.want_w = 0;
		if (hs->uhead_off < hs->uhead_len)
			hs->uhead_off += (uint32_t)w;
		else
			hs->rq_pos += (uint32_t)w;
	}
	if (u && hs->req_read_done && !hs->req_sent) {
		hs->req_sent = true;
		return PROGRESS;
	}
	/* Everything read was sent and the buffer is full: the body streams on, and can no longer be replayed. */
	if (!hs->req_read_done && hs->rq_pos == hs->in_len && hs->in_len == PX_HBUF) {
		hs->in_len = hs->rq_pos = hs->rq_end = hs->head_len;
		hs->discarded = true;
		return PROGRESS;
	}
	return BLOCKED;
}

/* Reads the rest of the body, and whatever the client sends after it (a pipelined request waits in
 * the buffer): the read interest stays as it is from one request to the next. */
static int read_body(px_hs *hs)
{
	if (hs->down_eof || hs->in_len == PX_HBUF)
		return BLOCKED;
	if (!hs->down_rd && !px_side_pending(hs->down))
		return BLOCKED;
	ssize_t n = px_side_recv(hs->down, hs->in + hs->in_len, PX_HBUF - hs->in_len);
	if (n > 0) {
		hs->in_len += (uint32_t)n;
		hs->down->want_r = 0;
		int r = scan_request(hs);
		return r < 0 ? -2 : PROGRESS;
	}
	if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE) {
		hs->down_rd = false;
		want(hs->down, n, false);
		return BLOCKED;
	}
	if (n == 0 && hs->req_read_done) { /* a half-close after the request: answer, then end */
		hs->down_eof = true;
		hs->close_after = true;
		return PROGRESS;
	}
	/* The client went away in the middle of its body, or reset. */
	return -2;
}

static int read_up(px_hs *hs)
{
	px_up *u = hs->up;

	if (!u || hs->resp_rd.done)
		return BLOCKED;
	if (!hs->up_rd && !px_side_pending(&u->s))
		return BLOCKED;
	if (hs->resp_head) {
		if (hs->rs_pos < hs->rin_len)
			return BLOCKED; /* back-pressure: the client has not taken what we have */
		hs->rin_len = hs->rs_pos = hs->rs_end = 0;
	}
	if (!hs->rin)
		hs->rin = hbuf_get(hs->px);
	size_t room = PX_HBUF - hs->rin_len;
	if (hs->resp_head && hs->resp_rd.kind == PL_H1_BODY_LENGTH && hs->resp_rd.left < room)
		room = (size_t)hs->resp_rd.left;
	if (room == 0)
		return BLOCKED;
	ssize_t n = px_side_recv(&u->s, hs->rin + hs->rin_len, room);
	if (n > 0) {
		u->s.want_r = 0;
		hs->rin_len += (uint32_t)n;
		hs->resp_any = true;
		if (!hs->resp_head) {
			int r = parse_response(hs);
			return r == GONE || r == -2 ? r : PROGRESS;
		}
		return scan_response(hs) < 0 ? -2 : PROGRESS;
	}
	if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE) {
		hs->up_rd = false;
		want(&u->s, n, false);
		return BLOCKED;
	}
	/* The end of the upstream connection. */
	if (hs->resp_head) {
		if (n == 0 && pl_h1_body_eof(&hs->resp_rd)) { /* a body the close ends */
			hs->up_reusable = false;
			return PROGRESS;
		}
		return -2; /* a body cut short: the client must see it cut too */
	}
	if (hs->resp_any) {
		if (hs->up)
			px_up_release(hs->up, false);
		px_req_outlier(&hs->rq, true);
		refuse(hs, 502, "bad response", "upstream closed the connection inside the response head");
		return PROGRESS;
	}
	return attempt_failed(hs, PX_CAUSE_RESET,
			      n == 0 ? "the connection was closed before a response" : strerror((int)-n));
}

static int send_down(px_hs *hs)
{
	for (;;) {
		const char *p;
		uint32_t n;
		if (hs->dhead_off < hs->dhead_len) {
			p = hs->dhead + hs->dhead_off;
			n = hs->dhead_len - hs->dhead_off;
		} else if (hs->resp_head && hs->rs_pos < hs->rs_end) {
			p = hs->rin + hs->rs_pos;
			n = hs->rs_end - hs->rs_pos;
		} else {
			return BLOCKED;
		}
		ssize_t w = px_side_send(hs->down, p, n);
		if (w == PL_IO_WANT_READ || w == PL_IO_WANT_WRITE) {
			want(hs->down, w, true);
			return BLOCKED;
		}
		if (w < 0)
			return -2;
		hs->down->want_w = 0;
		if (hs->rq.alog)
			px_alog_count(&hs->rq, true, (size_t)w);
		if (hs->dhead_off < hs->dhead_len)
			hs->dhead_off += (uint32_t)w;
		else
			hs->rs_pos += (uint32_t)w;
	}
}

/* The connection ends after this response: it lingers (px_conn_linger: FIN, then what the client
 * still sends is dropped for a moment, so the kernel does not turn our close into a reset that eats
 * the response); hs is freed. */
static int end_session(px_hs *hs)
{
	px_conn_linger(hs->c, NULL, 0);
	return GONE;
}

/* The response is out: the next request, or the end. */
static int request_done(px_hs *hs)
{
	proxy *px = hs->px;

	px_req_done(&hs->rq);
	if (hs->up) {
		bool reuse = hs->up_reusable && hs->req_sent && hs->rq.local_cause == NULL;
		px_up_release(hs->up, reuse);
	}
	if (!hs->req_read_done)
		hs->close_after = true;
	if (hs->close_after)
		return end_session(hs);
	request_clear(hs);
	/* Pipelined bytes after this request are the next one. */
	uint32_t rest = hs->in_len - hs->rq_end;
	if (rest)
		memmove(hs->in, hs->in + hs->rq_end, rest);
	hs->in_len = rest;
	hs->head_seen = 0;
	hs->head_len = hs->rq_pos = hs->rq_end = hs->req_start = 0;
	hs->state = PX_HS_HEAD;
	hs->last_active = hs->head_started = pl_ev_now(px->loop);
	if (!rest)
		hbuf_put(px, &hs->in);
	return PROGRESS;
}

/* Gives up on the exchange: both connections end at once, so the client sees a cut, not a
 * different answer. */
static int abort_exchange(px_hs *hs)
{
	if (hs->rq.status == 0)
		hs->rq.status = 502;
	px_req_done(&hs->rq);
	hs_free(hs, true);
	return GONE;
}

/* Each step returns PROGRESS, BLOCKED, GONE (hs freed), or -2: the exchange cannot go on. */
static int exchange_step(px_hs *hs)
{
	static int (*const steps[])(px_hs *) = {send_up, read_body, read_up, send_down};
	int any = BLOCKED;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		int r = steps[i](hs);
		if (r == GONE)
			return GONE;
		if (r == -2)
			return abort_exchange(hs);
		if (hs->state != PX_HS_EXCHANGE) /* a retry started, or the proxy answers itself */
			return PROGRESS;
		any |= r;
	}
	if (hs->resp_rd.done && hs->dhead_off == hs->dhead_len && hs->rs_pos == hs->rs_end)
		return request_done(hs);
	return any;
}

static int local_step(px_hs *hs)
{
	if (send_down(hs) == -2)
		return abort_exchange(hs);
	if (hs->dhead_off < hs->dhead_len)
		return BLOCKED;
	return request_done(hs);
}

static void update_interest(px_hs *hs)
{
	proxy *px = hs->px;
	uint32_t dm = 0, um = 0;
	bool down_read = false, down_write = hs->dhead_off < hs->dhead_len || (hs->resp_head && hs->rs_pos < hs->rs_end);

	switch (hs->state) {
	case PX_HS_HEAD: down_read = !hs->down_eof; break;
	case PX_HS_LOCAL: break;
	default: down_read = !hs->down_eof && hs->in_len < PX_HBUF; break;
	}
	if (down_read)
		dm |= hs->down->want_r == PL_IO_WANT_WRITE ? EPOLLOUT : EPOLLIN;
	if (down_write)
		dm |= hs->down->want_w == PL_IO_WANT_READ ? EPOLLIN : EPOLLOUT;
	pl_ev_io_set(px->loop, &hs->down->io, dm);
	if (hs->state == PX_HS_EXCHANGE && hs->up) {
		px_side *s = &hs->up->s;
		/* Readable stays on from request to request; off only under back-pressure or once the
		 * answer is whole (then a readable socket could only spin). */
		if (!hs->resp_rd.done && !(hs->resp_head && hs->rs_pos < hs->rin_len))
			um |= s->want_r == PL_IO_WANT_WRITE ? EPOLLOUT : EPOLLIN;
		if (hs->uhead_off < hs->uhead_len || hs->rq_pos < hs->rq_end)
			um |= s->want_w == PL_IO_WANT_READ ? EPOLLIN : EPOLLOUT;
		pl_ev_io_set(px->loop, &s->io, um);
	}
}

static void run(px_hs *hs)
{
	for (int guard = 0; guard < 256; guard++) {
		int r;
		switch (hs->state) {
		case PX_HS_HEAD: r = head_step(hs); break;
		case PX_HS_EXCHANGE: r = exchange_step(hs); break;
		case PX_HS_LOCAL: r = local_step(hs); break;
		default: /* waiting: the body (or the next request) may still be read into the buffer */
			r = read_body(hs);
			if (r == -2) {
				r = abort_exchange(hs);
				break;
			}
			break;
		}
		if (r == GONE)
			return;
		if (r == BLOCKED)
			break;
	}
	update_interest(hs);
}

static void h1_io(px_conn *c, uint32_t ev)
{
	px_hs *hs = c->pctx;

	hs->last_io = pl_ev_now(hs->px->loop);
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		hs->down_rd = true;
	if ((ev & EPOLLERR) && hs->state != PX_HS_EXCHANGE) {
		hs_free(hs, true);
		return;
	}
	run(hs);
}

void px_http_up_event(px_hs *hs, uint32_t ev)
{
	hs->last_io = pl_ev_now(hs->px->loop);
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		hs->up_rd = true;
	run(hs);
}

static void timer_cb(pl_ev_loop *loop, void *data)
{
	px_hs *hs = data;
	proxy *px = hs->px;
	(void)loop;

	switch (hs->state) {
	case PX_HS_HEAD:
		return;
	case PX_HS_DELAY:
		if (start_attempt(hs) == GONE)
			return;
		break;
	case PX_HS_WAIT:
	case PX_HS_EXCHANGE:
		if (hs->rq.deadline && pl_ev_now(px->loop) >= hs->rq.deadline) {
			if (hs->up)
				px_up_release(hs->up, false);
			px_req_outlier(&hs->rq, true);
			refuse(hs, 504, "timeout", "no response from %s within the route timeout of %lld ms (route \"%s\" of TrafficPolicy %s, %d attempt%s)",
			       hs->rq.backend ? hs->rq.backend : hs->rq.service,
			       (long long)(hs->rq.route->timeout_ns / PL_NS_PER_MS), px_req_route_name(&hs->rq), hs->rq.op->policy,
			       hs->rq.attempts, hs->rq.attempts == 1 ? "" : "s");
			break;
		}
		if (attempt_failed(hs, PX_CAUSE_TIMEOUT, "per-try timeout") == GONE)
			return;
		break;
	case PX_HS_LOCAL:
		return; /* nothing is timed while the proxy answers */
	}
	run(hs);
}

/* How often a session's lazy timer looks: at least every head timeout, and every
 * --stream-idle-timeout when that is shorter. */
static int64_t tick(const proxy *px)
{
	int64_t t = px->head_timeout_ns, s = px->set.stream_idle_timeout_ns;
	return s > 0 && s < t ? s : t;
}

/* Idle, slow-head and stream-idle timeouts, checked when the timer fires rather than re-armed per
 * request. */
static void idle_timer_cb(pl_ev_loop *loop, void *data)
{
	px_hs *hs = data;
	proxy *px = hs->px;
	int64_t now = pl_ev_now(loop);

	if (hs->state != PX_HS_HEAD) {
		/* A request in flight with no byte either way for --stream-idle-timeout (a client that
		 * stopped sending its body or reading its answer, a server that went quiet): as for
		 * HTTP/2 streams, answered 504 when nothing went down yet, else cut. A fault delay holds
		 * it on purpose. */
		int64_t limit = px->set.stream_idle_timeout_ns, next = tick(px);
		if (limit > 0 && hs->state != PX_HS_DELAY) {
			int64_t idle = now - hs->last_io;
			if (idle >= limit) {
				hs->last_io = now;
				pl_ev_timer_start(loop, &hs->idle_timer, next);
				if (hs->state == PX_HS_LOCAL || hs->resp_head) {
					if (log_allowed(px))
						log_info("%s HTTP/1 request idle for %lld s: cut", dir_name(hs->dir),
							 (long long)(idle / PL_NS_PER_S));
					abort_exchange(hs);
					return;
				}
				if (hs->up)
					px_up_release(hs->up, false);
				refuse(hs, 504, "stream idle", "no byte either way for %lld s (--stream-idle-timeout)",
				       (long long)(limit / PL_NS_PER_S));
				run(hs);
				return;
			}
			if (limit - idle < next)
				next = limit - idle;
		}
		pl_ev_timer_start(loop, &hs->idle_timer, next);
		return;
	}
	if (hs->in_len == 0) {
		int64_t idle = now - hs->last_active, left = px->idle_timeout_ns - idle;
		if (left <= 0) {
			hs_free(hs, false);
			return;
		}
		pl_ev_timer_start(loop, &hs->idle_timer, left < tick(px) ? left : tick(px));
		return;
	}
	int64_t left = px->head_timeout_ns - (now - hs->head_started);
	if (left > 0) {
		pl_ev_timer_start(loop, &hs->idle_timer, left < tick(px) ? left : tick(px));
		return;
	}
	hs->rq.t_start = now;
	hs->req_read_done = false;
	refuse(hs, 408, "request timeout", "the request head was not complete within %lld s",
	       (long long)(px->head_timeout_ns / PL_NS_PER_S));
	pl_ev_timer_start(loop, &hs->idle_timer, tick(px));
	run(hs);
}

void px_http_drain(proxy *px)
{
	px_hs *hs = px->sessions, *next;

	px_pools_close_idle(px);
	for (; hs; hs = next) {
		next = hs->next;
		if (hs->state == PX_HS_HEAD && hs->in_len == 0)
			hs_free(hs, false);
	}
}

void px_http_close_all(proxy *px)
{
	while (px->sessions)
		hs_free(px->sessions, false);
}
