/* Upstream connections for HTTP: one pool per destination, dialled and mTLS'd on demand, kept alive and reused. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/duration.h"
#include "base/log.h"
#include "model/model.h"
#include "orig.h"
#include "pki/tls.h"
#include "l7.h"

/* A pooled connection nobody used for this long is closed: servers close theirs after 5 to 60 s,
 * and a connection the server has closed is found by its read event anyway. */
#define UP_IDLE_NS (60 * PL_NS_PER_S)

static void up_cb(pl_ev_loop *loop, void *data, uint32_t ev);
static void up_timer_cb(pl_ev_loop *loop, void *data);

void px_pool_key(int dir, const px_target *t, char key[PX_POOL_KEY])
{
	char ip[INET6_ADDRSTRLEN];

	px_addr_ip(&t->addr, ip, sizeof(ip));
	snprintf(key, PX_POOL_KEY, "%c|%s|%d|%c", dir == PX_OUT ? 'o' : 'i', ip, px_addr_port(&t->addr),
		 t->tls ? 't' : 'p');
}

px_pool *px_pool_get(proxy *px, int dir, const px_target *t)
{
	char key[PX_POOL_KEY];

	px_pool_key(dir, t, key);
	px_pool *p = pl_hmap_get(&px->pools, key);
	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	memcpy(p->key, key, sizeof(key));
	p->dir = dir;
	p->addr = t->addr;
	p->addrlen = t->addrlen;
	p->tls = t->tls;
	pl_hmap_put(&px->pools, p->key, p);
	return p;
}

static void idle_remove(px_pool *p, px_up *u)
{
	if (u->prev)
		u->prev->next = u->next;
	else
		p->idle = u->next;
	if (u->next)
		u->next->prev = u->prev;
	u->prev = u->next = NULL;
	p->nidle--;
}

static void up_free(px_up *u)
{
	proxy *px = u->px;

	if (u->state == PX_UP_IDLE)
		idle_remove(u->pool, u);
	pl_ev_timer_stop(px->loop, &u->timer);
	px_side_close(px->loop, &u->s, false);
	if (u->s.vx)
		px_h2b_free(u->s.vctx);
	u->pool->nconns--;
	free(u);
}

static int dial(px_pool *p, px_hs *hs);
static bool ride_h2(px_pool *p, px_hs *hs, px_target *t);
static void bridge(px_pool *p, px_hs *hs, const px_target *t);

/* The longest-waiting session, taken off the queue; NULL when none waits. */
static px_hs *pop_waiter(px_pool *p)
{
	px_hs *hs = p->wait_head;

	if (!hs)
		return NULL;
	p->wait_head = hs->wait_next;
	if (!p->wait_head)
		p->wait_tail = NULL;
	hs->wait_next = NULL;
	p->nwait--;
	return hs;
}

/* A connection slot opened up: the first waiting session dials. */
static void wake_waiter(px_pool *p)
{
	px_hs *hs;

	while ((hs = pop_waiter(p))) {
		px_target t;
		if (ride_h2(p, hs, &t)) {
			bridge(p, hs, &t);
			px_http_up_ready(hs);
			return;
		}
		int r = dial(p, hs);
		if (r == 0)
			return;
		px_http_up_failed(hs, PX_CAUSE_CONNECT, strerror(-r));
	}
}

/* Closes u; with fail, the session it was dialled for learns why. */
static void up_close(px_up *u, bool fail, int cause, const char *detail)
{
	px_pool *p = u->pool;
	px_hs *hs = u->hs;
	bool dialling = u->state == PX_UP_CONNECT || u->state == PX_UP_HANDSHAKE;

	if (hs && hs->up == u)
		hs->up = NULL;
	up_free(u);
	if (fail && hs && dialling)
		px_http_up_failed(hs, cause, detail);
	wake_waiter(p);
}

static int dial(px_pool *p, px_hs *hs)
{
	proxy *px = hs->px;
	px_up *u = calloc(1, sizeof(*u));

	if (!u)
		abort();
	u->px = px;
	u->pool = p;
	u->hs = hs;
	pl_ev_io_init(&u->s.io, up_cb, u);
	pl_ev_timer_init(&u->timer, up_timer_cb, u);
	int r = px_dial_start(px, p->dir, &p->addr, p->addrlen, &u->s.fd);
	if (u->s.fd < 0) {
		free(u);
		return r;
	}
	p->nconns++;
	if (r < 0) {
		u->hs = NULL;
		up_free(u);
		return r;
	}
	if (pl_ev_io_start(px->loop, &u->s.io, u->s.fd, EPOLLOUT) < 0)
		abort();
	u->state = PX_UP_CONNECT;
	hs->up = u;
	/* A pod address of the directory answers in well under a millisecond inside a cluster, or is
	 * gone: its own, short timeout, after which the request goes on to another endpoint. */
	int64_t to = hs->rq.endpoint && px->set.endpoint_connect_timeout_ns > 0 &&
			     px->set.endpoint_connect_timeout_ns < px->set.connect_timeout_ns
		     ? px->set.endpoint_connect_timeout_ns
		     : px->set.connect_timeout_ns;
	pl_ev_timer_start(px->loop, &u->timer, to);
	return 0;
}

/* An upstream for hs that is a stream on the HTTP/2 connection to the peer proxy (h2bridge.c):
 * outbound, mTLS, a peer that chose ALPN pillion/h2, and a request that is not a tunnel. */
static bool ride_h2(px_pool *p, px_hs *hs, px_target *t)
{
	proxy *px = hs->px;

	if (!px->set.h1_over_h2 || !p->tls || p->dir != PX_OUT || hs->upgrade || hs->method == PL_H1_CONNECT)
		return false;
	*t = (px_target){.addr = p->addr, .addrlen = p->addrlen, .tls = true};
	return px_h2_peer(px, p->dir, t, hs->rq.endpoint, hs->rq.mesh) == 1;
}

static void bridge(px_pool *p, px_hs *hs, const px_target *t)
{
	px_up *u = calloc(1, sizeof(*u));

	if (!u)
		abort();
	u->px = hs->px;
	u->pool = p;
	u->hs = hs;
	u->s.fd = -1;
	pl_ev_io_init(&u->s.io, up_cb, u);
	pl_ev_timer_init(&u->timer, up_timer_cb, u);
	u->s.vx = &px_xprt_h2;
	u->s.vctx = px_h2b_new(hs->px, u, p->dir, t, hs->rq.endpoint, hs->rq.mesh);
	u->state = PX_UP_BUSY;
	p->nconns++;
	hs->up = u;
}

int px_pool_acquire(px_pool *p, px_hs *hs, int max_conns, int max_pending, int *err)
{
	px_target t;
	bool h2 = ride_h2(p, hs, &t);

	/* The retry after a pooled connection the server had closed dials afresh: a server that closes
	 * one (draining, say) has usually closed its other idle ones too. */
	if (p->idle && !hs->rq.stale_retried && !h2) {
		px_up *u = p->idle;
		idle_remove(p, u);
		pl_ev_timer_stop(hs->px->loop, &u->timer);
		u->state = PX_UP_BUSY;
		u->hs = hs;
		hs->up = u;
		/* Still watched for reading (steady interest: no epoll_ctl per request); the idle timer is
		 * left to fire and find the connection busy. */
		return 1;
	}
	if (max_conns > 0 && p->nconns >= (uint32_t)max_conns) {
		if (max_pending > 0 && p->nwait >= (uint32_t)max_pending)
			return -1;
		hs->wait_next = NULL;
		if (p->wait_tail)
			p->wait_tail->wait_next = hs;
		else
			p->wait_head = hs;
		p->wait_tail = hs;
		p->nwait++;
		return 0;
	}
	if (h2) {
		bridge(p, hs, &t);
		return 1;
	}
	int r = dial(p, hs);
	if (r < 0) {
		*err = -r;
		return -2;
	}
	return 0;
}

void px_up_detach(px_up *u, px_side *out)
{
	proxy *px = u->px;

	pl_ev_timer_stop(px->loop, &u->timer);
	px_side_take(px->loop, out, &u->s);
	if (u->hs && u->hs->up == u)
		u->hs->up = NULL;
	u->hs = NULL;
	px_pool *p = u->pool;
	up_free(u);
	wake_waiter(p);
}

void px_pool_cancel(px_pool *p, px_hs *hs)
{
	px_hs **pp = &p->wait_head, *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->wait_next) {
		if (*pp != hs)
			continue;
		*pp = hs->wait_next;
		if (p->wait_tail == hs)
			p->wait_tail = prev;
		hs->wait_next = NULL;
		p->nwait--;
		return;
	}
	px_up *u = hs->up;
	if (u && u->hs == hs) {
		hs->up = NULL;
		u->hs = NULL;
		up_close(u, false, 0, NULL);
	}
}

void px_up_release(px_up *u, bool reuse)
{
	proxy *px = u->px;
	px_pool *p = u->pool;

	if (u->hs && u->hs->up == u)
		u->hs->up = NULL;
	u->hs = NULL;
	if (!reuse || px->draining || u->s.vx || px_side_pending(&u->s)) {
		up_close(u, false, 0, NULL);
		return;
	}
	u->reused = true;
	px_hs *hs = pop_waiter(p);
	if (hs) {
		/* A waiting session takes it straight away. */
		u->hs = hs;
		hs->up = u;
		u->state = PX_UP_BUSY;
		px_http_up_ready(hs);
		return;
	}
	u->state = PX_UP_IDLE;
	u->next = p->idle;
	if (p->idle)
		p->idle->prev = u;
	p->idle = u;
	p->nidle++;
	/* Readable while idle means the server closed it (or talks out of turn): either way it goes. */
	pl_ev_io_set(px->loop, &u->s.io, EPOLLIN);
	u->idle_since = pl_ev_now(px->loop);
	if (!pl_ev_timer_armed(&u->timer))
		pl_ev_timer_start(px->loop, &u->timer, UP_IDLE_NS);
}

static void established(px_up *u)
{
	proxy *px = u->px;
	char lbl[96];

	pl_ev_timer_stop(px->loop, &u->timer);
	u->state = PX_UP_BUSY;
	pl_ev_io_set(px->loop, &u->s.io, EPOLLIN);
	snprintf(lbl, sizeof(lbl), "direction=\"%s\",tls=\"%s\"", u->pool->dir == PX_OUT ? "outbound" : "inbound",
		 u->s.tls ? "true" : "false");
	px_stats_inc(px, PX_F_UPSTREAM_CONNS, lbl);
	if (u->hs)
		px_http_up_ready(u->hs);
	else
		px_up_release(u, true);
}

/* The shared dial path: the peer must be listed for the pool's address in the directory the
 * session it was dialled for started with (the proxy's current one when that session left). */
static void handshake(px_up *u)
{
	proxy *px = u->px;
	char err[2300] = "";
	int fail = PX_TLSF_OTHER;
	const px_mesh *m = u->hs && u->hs->rq.mesh ? u->hs->rq.mesh : px->mesh;

	int r = px_dial_handshake(px, &u->s, m ? &m->dir : NULL, &u->pool->addr, &fail, err, sizeof(err));
	if (r == 0)
		return;
	if (r < 0) {
		px->m.tls_fail[u->pool->dir][fail]++;
		up_close(u, true, PX_CAUSE_TLS, err);
		return;
	}
	established(u);
}

static void connected(px_up *u)
{
	proxy *px = u->px;
	int err = px_dial_result(px, u->pool->dir, u->s.fd);

	if (err) {
		up_close(u, true, PX_CAUSE_CONNECT, strerror(err));
		return;
	}
	if (!u->pool->tls) {
		established(u);
		return;
	}
	const char *why = NULL;
	u->s.tls = px_dial_tls(px, u->s.fd, &why);
	if (!u->s.tls) {
		up_close(u, true, PX_CAUSE_TLS, why);
		return;
	}
	u->state = PX_UP_HANDSHAKE;
	pl_ev_timer_start(px->loop, &u->timer, px->set.handshake_timeout_ns);
	handshake(u);
}

static void up_cb(pl_ev_loop *loop, void *data, uint32_t ev)
{
	px_up *u = data;
	(void)loop;

	switch (u->state) {
	case PX_UP_CONNECT:
		connected(u);
		break;
	case PX_UP_HANDSHAKE:
		handshake(u);
		break;
	case PX_UP_IDLE:
		up_close(u, false, 0, NULL);
		break;
	default:
		if (u->hs)
			px_http_up_event(u->hs, ev);
		else
			up_close(u, false, 0, NULL);
		break;
	}
}

static void up_timer_cb(pl_ev_loop *loop, void *data)
{
	px_up *u = data;
	(void)loop;

	if (u->state == PX_UP_CONNECT) {
		u->px->m.connect_fail[u->pool->dir]++;
		up_close(u, true, PX_CAUSE_CONNECT, "connect timed out");
	} else if (u->state == PX_UP_HANDSHAKE) {
		u->px->m.tls_fail[u->pool->dir][PX_TLSF_TIMEOUT]++;
		up_close(u, true, PX_CAUSE_TLS, "no handshake within the timeout");
	} else if (u->state == PX_UP_IDLE) {
		int64_t idle = pl_ev_now(u->px->loop) - u->idle_since;
		if (idle >= UP_IDLE_NS)
			up_close(u, false, 0, NULL);
		else
			pl_ev_timer_start(u->px->loop, &u->timer, UP_IDLE_NS - idle);
	}
}

/* Pools are found by address; pods come and go with new ones, so a pool with no connection, no
 * waiter and no session holding it goes (a later request makes a new one). */
static bool pool_unused(void *value, void *arg)
{
	const px_pool *p = value;
	(void)arg;
	return !p->nconns && !p->nwait && !p->users && !p->idle;
}

void px_pools_sweep(proxy *px) { pl_hmap_remove_if(&px->pools, pool_unused, NULL, free); }

void px_pools_close_idle(proxy *px)
{
	size_t it = 0;
	pl_hmap_slot *s;

	while ((s = pl_hmap_next(&px->pools, &it))) {
		px_pool *p = s->value;
		while (p->idle)
			up_free(p->idle);
	}
}

void px_pools_free(proxy *px)
{
	size_t it = 0;
	pl_hmap_slot *s;

	px_pools_close_idle(px);
	while ((s = pl_hmap_next(&px->pools, &it)))
		free(s->value);
	pl_hmap_free(&px->pools);
}
