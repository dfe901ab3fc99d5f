/* Relayed connections: dialling, the TLS handshake step, and the byte pumps with half-close and back-pressure. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/duration.h"
#include "base/log.h"
#include "pki/tls.h"
#include "l7.h"

#define POOL_MAX 256
#define LINGER_NS (2 * PL_NS_PER_S)
#define SPLICE_CHUNK (64 * 1024)

const char *const px_refuse_names[PX_REFUSE__N] = {
	"not_ready", "strict_plaintext", "loop", "no_original_dst", "max_connections", "detect_timeout",
	"source_limit",
};

const char *const px_tls_fail_names[PX_TLSF__N] = {
	"certificate_verify", "peer_identity", "no_alpn", "no_client_certificate", "certificate_required",
	"certificate_rejected_by_peer", "protocol", "eof", "reset", "timeout", "other",
};

int px_tls_fail_index(const char *reason)
{
	static const char *const lib_names[] = {"certificate_verify", NULL, "no_alpn", "no_client_certificate",
						"certificate_required", "certificate_rejected_by_peer", "protocol",
						"eof", "reset"};
	for (size_t i = 0; i < sizeof(lib_names) / sizeof(lib_names[0]); i++)
		if (lib_names[i] && strcmp(lib_names[i], reason) == 0)
			return (int)i;
	return PX_TLSF_OTHER;
}

const char *px_addr_str(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		port = ntohs(s->sin_port);
		snprintf(out, outlen, "%s:%d", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		port = ntohs(s->sin6_port);
		snprintf(out, outlen, "[%s]:%d", ip, port);
	} else {
		snprintf(out, outlen, "?");
	}
	return out;
}

bool px_log_allowed(const proxy *px, px_log_rate *r)
{
	int64_t now = pl_ev_now(px->loop) / 1000000000;

	if (now != r->window) {
		r->window = now;
		r->n = 0;
	}
	return ++r->n <= 5;
}

static px_log_rate log_rate;
static bool log_allowed(proxy *px) { return px_log_allowed(px, &log_rate); }

static char *buf_get(proxy *px) { return px_bufpool_get(&px->bufs, px->set.buf_size); }

static void buf_put(proxy *px, char *b) { px_bufpool_put(&px->bufs, &b, POOL_MAX); }

void px_pool_free(proxy *px) { px_bufpool_free(&px->bufs); }

/* Passes the end of stream on: close_notify for TLS, then FIN. 0 done, PL_IO_WANT_* or -errno. */
static int xshutw(px_side *s) { return px_xprt_of(s)->shutw(s); }

static void down_cb(pl_ev_loop *loop, void *data, uint32_t ev);
static void up_cb(pl_ev_loop *loop, void *data, uint32_t ev);
static void timer_cb(pl_ev_loop *loop, void *data);

static void side_init(px_conn *c, px_side *s, pl_ev_io_cb cb)
{
	s->fd = -1;
	pl_ev_io_init(&s->io, cb, c);
}

static void flow_init(px_flow *f)
{
	memset(f, 0, sizeof(*f));
	f->pipe[0] = f->pipe[1] = -1;
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Inbound connections of one source address not yet past detection and the handshake: one address
 * cannot hold the proxy's descriptors open by never finishing either (slowloris from byte 0). */
struct px_pending {
	char key[INET6_ADDRSTRLEN];
	size_t n;
};

bool px_pending_take(px_conn *c, int fd)
{
	proxy *px = c->px;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char key[INET6_ADDRSTRLEN] = "";

	if (!px->set.max_pending_per_source || getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return true;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, key, sizeof(key));
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, key, sizeof(key));
	struct px_pending *p = pl_hmap_get(&px->pending, key);
	if (p && p->n >= px->set.max_pending_per_source)
		return false;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			abort();
		snprintf(p->key, sizeof(p->key), "%s", key);
		pl_hmap_put(&px->pending, p->key, p);
	}
	p->n++;
	c->pending = p;
	return true;
}

static void pending_release(px_conn *c)
{
	struct px_pending *p = c->pending;

	if (!p)
		return;
	c->pending = NULL;
	if (--p->n == 0) {
		pl_hmap_del(&c->px->pending, p->key, NULL);
		free(p);
	}
}

px_conn *px_conn_new(proxy *px, int dir, int fd)
{
	px_conn *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->px = px;
	c->dir = dir;
	side_init(c, &c->down, down_cb);
	side_init(c, &c->up, up_cb);
	flow_init(&c->d2u);
	flow_init(&c->u2d);
	pl_ev_timer_init(&c->timer, timer_cb, c);
	c->proto = &px_proto_bytes;
	c->down.fd = fd;
	nodelay(fd);
	if (pl_ev_io_start(px->loop, &c->down.io, fd, 0) < 0)
		abort();
	c->next = px->conns;
	if (px->conns)
		px->conns->prev = c;
	px->conns = c;
	px->nconns++;
	return c;
}

static void side_close(proxy *px, px_side *s, bool reset) { px_side_close(px->loop, s, reset); }

static void flow_free(proxy *px, px_flow *f)
{
	buf_put(px, f->buf);
	f->buf = NULL;
	if (f->pipe[0] >= 0) {
		close(f->pipe[0]);
		close(f->pipe[1]);
	}
}

void px_conn_close(px_conn *c, bool reset)
{
	proxy *px = c->px;

	if (reset)
		px->m.resets[c->dir]++;
	pending_release(c);
	if (c->proto->release)
		c->proto->release(c);
	if (c->counted)
		px->m.conns_open[c->dir][c->counted_tls]--;
	side_close(px, &c->down, reset);
	side_close(px, &c->up, reset);
	flow_free(px, &c->d2u);
	flow_free(px, &c->u2d);
	pl_ev_timer_stop(px->loop, &c->timer);
	if (c->mesh)
		px_mesh_unref(c->mesh);
	free(c->peer_id);
	free(c->tail);
	if (c->prev)
		c->prev->next = c->next;
	else
		px->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	px->nconns--;
	free(c);
	if (px->draining && !px->drain_listening && px->nconns == 0)
		px->stop = true;
}

/* Counts c once, when it leaves detection; a later swap only moves its open count when its mTLS
 * label changed (an HTTP session that becomes a tunnel to an mTLS upstream). */
static void count(px_conn *c)
{
	proxy *px = c->px;

	if (!c->counted) {
		c->counted = true;
		c->counted_tls = c->tls;
		px->m.conns_total[c->dir][c->tls]++;
		px->m.conns_open[c->dir][c->tls]++;
	} else if (c->counted_tls != c->tls) {
		px->m.conns_open[c->dir][c->counted_tls]--;
		px->m.conns_open[c->dir][c->tls]++;
		c->counted_tls = c->tls;
	}
}

void px_conn_swap(px_conn *c, const px_proto *p, void *ctx)
{
	const px_proto *old = c->proto;

	if (old->release)
		old->release(c);
	c->proto = p;
	c->pctx = ctx;
	if (p == &px_proto_bytes)
		return;
	/* An HTTP session: past detection and every stage the relay's timer watched. Each request
	 * holds the directory it started with; the connection lets go of the one it was accepted
	 * with, or a long-lived session would keep every old directory in memory. */
	pending_release(c);
	if (c->mesh) {
		px_mesh_unref(c->mesh);
		c->mesh = NULL;
	}
	pl_ev_timer_stop(c->px->loop, &c->timer);
	c->state = PX_ST_SESSION;
	count(c);
}

static void linger_io(px_conn *c, uint32_t ev)
{
	char sink[4096];
	uint32_t mask = 0;
	(void)ev;

	/* The handler's last bytes (a GOAWAY the socket did not take yet), then our end. */
	while (c->tail_off < c->tail_len) {
		ssize_t w = px_side_send(&c->down, c->tail + c->tail_off, c->tail_len - c->tail_off);
		if (w == PL_IO_WANT_READ || w == PL_IO_WANT_WRITE) {
			mask |= w == PL_IO_WANT_WRITE ? EPOLLOUT : EPOLLIN;
			break;
		}
		if (w < 0) {
			px_conn_close(c, false);
			return;
		}
		c->tail_off += (uint32_t)w;
	}
	if (c->tail_off == c->tail_len && !c->tail_shut) {
		c->tail_shut = true;
		/* close_notify with TLS, then FIN; the FIN goes even when close_notify could not be
		 * written now */
		if (xshutw(&c->down) != 0)
			shutdown(c->down.fd, SHUT_WR);
	}
	/* A turn reads at most 64 KiB (and what TLS already decrypted); a client that keeps sending
	 * is cut by the timer. */
	for (int i = 0; i < 16 || px_side_pending(&c->down); i++) {
		ssize_t n = px_side_recv(&c->down, sink, sizeof(sink));
		if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE) {
			mask |= n == PL_IO_WANT_WRITE ? EPOLLOUT : EPOLLIN;
			break;
		}
		if (n <= 0) { /* the client's end, or an error */
			px_conn_close(c, false);
			return;
		}
		if (i >= 1024) { /* bytes without end already decrypted: enough */
			px_conn_close(c, false);
			return;
		}
	}
	if (!mask)
		mask = EPOLLIN;
	if (c->down.io.fd < 0) {
		if (pl_ev_io_start(c->px->loop, &c->down.io, c->down.fd, mask) < 0)
			abort();
	} else {
		pl_ev_io_set(c->px->loop, &c->down.io, mask);
	}
}

static const px_proto linger_proto = {"linger", linger_io, NULL};

void px_conn_linger(px_conn *c, const void *tail, size_t n)
{
	px_conn_swap(c, &linger_proto, NULL);
	c->state = PX_ST_LINGER;
	if (n) {
		c->tail = malloc(n);
		if (!c->tail)
			abort();
		memcpy(c->tail, tail, n);
		c->tail_len = (uint32_t)n;
	}
	px_conn_timeout(c, LINGER_NS);
	linger_io(c, EPOLLIN);
}

bool px_conn_tunnel(px_conn *c, px_side *up, const char *to_up, size_t nup, const char *to_down, size_t ndown)
{
	proxy *px = c->px;

	if (nup > px->set.buf_size || ndown > px->set.buf_size)
		return false;
	c->up.fd = up->fd;
	c->up.tls = up->tls;
	c->up.want_r = c->up.want_w = 0;
	up->fd = -1;
	up->tls = NULL;
	c->tls = c->down.tls || c->up.tls;
	if (pl_ev_io_start(px->loop, &c->up.io, c->up.fd, 0) < 0)
		abort();
	if (nup) {
		c->d2u.buf = buf_get(px);
		memcpy(c->d2u.buf, to_up, nup);
		c->d2u.len = (uint32_t)nup;
	}
	if (ndown) {
		c->u2d.buf = buf_get(px);
		memcpy(c->u2d.buf, to_down, ndown);
		c->u2d.len = (uint32_t)ndown;
	}
	/* The HTTP handler lets go; its buffers held the bytes just copied. */
	px_conn_swap(c, &px_proto_bytes, NULL);
	c->down.want_r = c->down.want_w = 0;
	px_conn_relay(c);
	return true;
}

void px_conn_refuse(px_conn *c, int reason)
{
	char a[64];

	c->px->m.refused[c->dir][reason]++;
	if (log_allowed(c->px))
		log_info("%s connection to %s refused: %s", px_dirs[c->dir]->name,
			 px_addr_str(&c->orig, a, sizeof(a)), px_refuse_names[reason]);
	px_conn_close(c, false);
}

void px_conn_tls_failed(px_conn *c, int fail, const char *detail)
{
	char a[64];

	c->px->m.tls_fail[c->dir][fail]++;
	if (log_allowed(c->px))
		log_warnx("%s mTLS with %s failed: %s: %s", px_dirs[c->dir]->name,
			  px_addr_str(&c->orig, a, sizeof(a)), px_tls_fail_names[fail], detail);
	px_conn_close(c, false);
}

void px_conn_timeout(px_conn *c, int64_t ns)
{
	pl_ev_timer_start(c->px->loop, &c->timer, ns);
}

int px_conn_dial(px_conn *c, const struct sockaddr_storage *addr, socklen_t len)
{
	proxy *px = c->px;
	int fd;
	int r = px_dial_start(px, c->dir, addr, len, &fd);

	if (fd < 0)
		return r;
	c->up.fd = fd;
	if (pl_ev_io_start(px->loop, &c->up.io, fd, EPOLLOUT) < 0)
		abort();
	c->state = PX_ST_CONNECT;
	if (r < 0)
		return r;
	pl_ev_io_set(px->loop, &c->down.io, 0);
	px_conn_timeout(c, px->set.connect_timeout_ns);
	return 0;
}

static void connect_done(px_conn *c)
{
	proxy *px = c->px;
	char a[64];
	int err = px_dial_result(px, c->dir, c->up.fd);

	if (err) {
		if (log_allowed(px))
			log_info("%s connect to %s failed: %s", px_dirs[c->dir]->name,
				 px_addr_str(&c->orig, a, sizeof(a)), strerror(err));
		/* The client sees what it would have seen without the proxy: a reset. */
		px_conn_close(c, true);
		return;
	}
	pl_ev_timer_stop(px->loop, &c->timer);
	px_dirs[c->dir]->connected(c);
}

/* --- TLS handshake --- */

/* The mesh side: the dialled one outbound, the accepted one inbound. */
static px_side *tls_side(px_conn *c) { return px_dirs[c->dir]->mesh_up ? &c->up : &c->down; }

void px_conn_handshake(px_conn *c)
{
	c->state = PX_ST_HANDSHAKE;
	px_conn_timeout(c, c->px->set.handshake_timeout_ns);
	pl_ev_io_set(c->px->loop, tls_side(c) == &c->up ? &c->down.io : &c->up.io, 0);
	px_dirs[c->dir]->handshake(c);
}

/* --- the pumps --- */

static bool flow_has_data(const px_flow *f) { return f->len || f->piped; }
static bool flow_done(const px_flow *f) { return f->eof && !flow_has_data(f) && f->shut == 2; }

static int flow_end(px_flow *f, px_side *dst)
{
	if (f->shut == 2)
		return 0;
	int r = xshutw(dst);
	if (r == PL_IO_WANT_READ || r == PL_IO_WANT_WRITE) {
		f->shut = 1;
		dst->want_w = r;
		return 0;
	}
	f->shut = 2;
	return r == -EPIPE || r == -ENOTCONN ? 0 : r;
}

/*
 * Copies through a pooled user-space buffer: always with TLS on a side, and for small
 * plaintext messages, where two splice calls through a pipe cost more than a copy. A
 * plaintext read that fills the buffer marks a bulk transfer: once the buffer is written
 * out, the flow returns and continues with splice. 0, or -errno to reset.
 */
static int pump_copy(proxy *px, px_flow *f, px_side *src, px_side *dst, bool src_ready, bool dst_ready,
		     bool splice_ok)
{
	for (;;) {
		if (f->splicing && !f->len)
			return 1;
		if (f->len) {
			if (!dst_ready)
				return 0;
			ssize_t n = px_side_send(dst, f->buf + f->off, f->len);
			if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE) {
				dst->want_w = (int)n;
				return 0;
			}
			if (n < 0)
				return (int)n;
			dst->want_w = 0;
			f->off += (uint32_t)n;
			f->len -= (uint32_t)n;
			f->bytes += (uint64_t)n;
			if (f->len)
				continue;
			f->off = 0;
			buf_put(px, f->buf);
			f->buf = NULL;
			if (f->splicing)
				return 1;
		}
		if (f->eof)
			return flow_end(f, dst);
		if (!src_ready && !px_side_pending(src))
			return 0;
		if (!f->buf)
			f->buf = buf_get(px);
		ssize_t n = px_side_recv(src, f->buf, px->set.buf_size);
		if (n > 0) {
			src->want_r = 0;
			f->len = (uint32_t)n;
			/* A short raw read usually drained the socket; epoll says when there is more. */
			src_ready = (size_t)n == px->set.buf_size;
			dst_ready = true;
			if (src_ready && splice_ok)
				f->splicing = true; /* takes over once buf is written out */
			continue;
		}
		buf_put(px, f->buf);
		f->buf = NULL;
		if (n == 0) {
			f->eof = true;
			continue;
		}
		if (n == PL_IO_WANT_READ || n == PL_IO_WANT_WRITE) {
			src->want_r = (int)n;
			return 0;
		}
		return (int)n;
	}
}

/* Plaintext on both sides: the kernel moves the bytes through a pipe, user space never sees them. */
static int pump_splice(proxy *px, px_flow *f, px_side *src, px_side *dst, bool src_ready, bool dst_ready)
{
	for (;;) {
		if (f->piped) {
			if (!dst_ready)
				return 0;
			ssize_t n = splice(f->pipe[0], NULL, dst->fd, NULL, f->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					dst->want_w = PL_IO_WANT_WRITE;
					return 0;
				}
				return -errno;
			}
			f->piped -= (uint32_t)n;
			f->bytes += (uint64_t)n;
			px->m.spliced_bytes += (uint64_t)n;
			continue;
		}
		if (f->eof)
			return flow_end(f, dst);
		if (!src_ready)
			return 0;
		if (f->pipe[0] < 0 && pipe2(f->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
			return -errno;
		ssize_t n = splice(src->fd, NULL, f->pipe[1], NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			f->piped = (uint32_t)n;
			dst_ready = true;
			continue;
		}
		if (n == 0) {
			f->eof = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) /* the pipe is empty here, so the socket is */
			return 0;
		return -errno;
	}
}

static int pump(px_conn *c, px_flow *f, px_side *src, px_side *dst, bool src_ready, bool dst_ready)
{
	/* Bytes still in the buffer go out first, even after the switch to splice. */
	if (!f->splicing || f->len) {
		int r = pump_copy(c->px, f, src, dst, src_ready, dst_ready, c->splice);
		if (r != 1)
			return r;
		src_ready = true; /* the last read filled the buffer: more is likely waiting */
	}
	return pump_splice(c->px, f, src, dst, src_ready, dst_ready);
}

static void update_interest(px_conn *c)
{
	px_side *sides[2] = {&c->down, &c->up};
	px_flow *from[2] = {&c->d2u, &c->u2d}, *to[2] = {&c->u2d, &c->d2u};

	for (int i = 0; i < 2; i++) {
		px_side *s = sides[i];
		uint32_t mask = 0;
		if (!from[i]->eof && !flow_has_data(from[i]))
			mask |= s->want_r == PL_IO_WANT_WRITE ? EPOLLOUT : EPOLLIN;
		if (flow_has_data(to[i]) || to[i]->shut == 1)
			mask |= s->want_w == PL_IO_WANT_READ ? EPOLLIN : EPOLLOUT;
		if (s->io.fd < 0) {
			/* Parked after a hangup (see relay_event): watch it again once there is work. */
			if (mask && s->fd >= 0 && pl_ev_io_start(c->px->loop, &s->io, s->fd, mask) < 0)
				abort();
			continue;
		}
		pl_ev_io_set(c->px->loop, &s->io, mask);
	}
}

static void relay_event(px_conn *c, px_side *s, uint32_t ev)
{
	proxy *px = c->px;
	bool down = s == &c->down;
	px_side *o = down ? &c->up : &c->down;
	px_flow *from = down ? &c->d2u : &c->u2d, *to = down ? &c->u2d : &c->d2u;
	bool in = ev & (EPOLLIN | EPOLLHUP | EPOLLERR), out = ev & (EPOLLOUT | EPOLLHUP | EPOLLERR);
	uint64_t b0 = c->d2u.bytes, b1 = c->u2d.bytes;
	int r;

	c->last_active = pl_ev_now(px->loop);
	r = pump(c, from, s, o, s->want_r == PL_IO_WANT_WRITE ? out : in, false);
	if (r == 0)
		r = pump(c, to, o, s, false, s->want_w == PL_IO_WANT_READ ? in : out);
	if (r == 0 && to->shut == 1 && (s->want_w == PL_IO_WANT_READ ? in : out))
		r = flow_end(to, s);
	px->m.bytes[c->dir][0] += c->d2u.bytes - b0;
	px->m.bytes[c->dir][1] += c->u2d.bytes - b1;
	if (r < 0) {
		px_conn_close(c, true);
		return;
	}
	if (flow_done(&c->d2u) && flow_done(&c->u2d)) {
		px_conn_close(c, false);
		return;
	}
	update_interest(c);
	/*
	 * epoll reports ERR and HUP whatever the interest. When this side has nothing left to
	 * read or write, an error can never be consumed: reset. A hangup with nothing to do
	 * now parks the side (unwatched), or the level-triggered HUP would spin the loop;
	 * update_interest watches it again when a flow needs it (back-pressure released).
	 */
	if ((ev & (EPOLLERR | EPOLLHUP)) && s->io.mask == 0) {
		if (ev & EPOLLERR) {
			px_conn_close(c, true);
			return;
		}
		pl_ev_io_stop(px->loop, &s->io);
	}
}

void px_conn_relay(px_conn *c)
{
	proxy *px = c->px;

	pending_release(c);
	c->state = PX_ST_RELAY;
	c->splice = px->set.splice && !c->down.tls && !c->up.tls;
	/* One timer for the whole relay: events only note the time, the timer checks it when it fires. */
	c->last_active = pl_ev_now(px->loop);
	pl_ev_timer_stop(px->loop, &c->timer);
	if (px->set.idle_timeout_ns > 0)
		px_conn_timeout(c, px->set.idle_timeout_ns);
	count(c);
	/* Bytes may already wait on either side (a client talks first, a TLS record came with the Finished). */
	relay_event(c, &c->down, EPOLLIN);
	/* c may be closed now; only touch it through the loop from here. */
}

static void side_event(px_conn *c, px_side *s, uint32_t ev)
{
	/* Before the relay, only one side is watched; the other can still report ERR or HUP. */
	px_side *busy = c->state == PX_ST_CONNECT ? &c->up : c->state == PX_ST_HANDSHAKE ? tls_side(c) : &c->down;
	if (c->state == PX_ST_L7DETECT) {
		px_l7_detect(c, ev, false);
		return;
	}
	if (c->state != PX_ST_RELAY && s != busy) {
		if (ev & (EPOLLERR | EPOLLHUP))
			px_conn_close(c, true); /* the client went away while we set up its connection */
		return;
	}
	switch (c->state) {
	case PX_ST_DETECT:
		px_dirs[c->dir]->detect(c, ev);
		break;
	case PX_ST_CONNECT:
		connect_done(c);
		break;
	case PX_ST_HANDSHAKE:
		px_dirs[c->dir]->handshake(c);
		break;
	default:
		relay_event(c, s, ev);
		break;
	}
}

static void bytes_io(px_conn *c, uint32_t ev) { side_event(c, &c->down, ev); }

const px_proto px_proto_bytes = {"bytes", bytes_io, NULL};

/* The downstream socket's events go to whatever speaks on it now. */
static void down_cb(pl_ev_loop *loop, void *data, uint32_t ev)
{
	px_conn *c = data;
	(void)loop;
	c->proto->io(c, ev);
}

static void up_cb(pl_ev_loop *loop, void *data, uint32_t ev)
{
	px_conn *c = data;
	(void)loop;
	side_event(c, &c->up, ev);
}

static void timer_cb(pl_ev_loop *loop, void *data)
{
	px_conn *c = data;
	proxy *px = c->px;
	char a[64];
	(void)loop;

	switch (c->state) {
	case PX_ST_DETECT:
		px_dirs[c->dir]->detect_timeout(c);
		break;
	case PX_ST_CONNECT:
		px->m.connect_fail[c->dir]++;
		if (log_allowed(px))
			log_info("%s connect to %s timed out", px_dirs[c->dir]->name,
				 px_addr_str(&c->orig, a, sizeof(a)));
		px_conn_close(c, true);
		break;
	case PX_ST_HANDSHAKE:
		px_conn_tls_failed(c, PX_TLSF_TIMEOUT, "no handshake within the timeout");
		break;
	case PX_ST_L7DETECT:
		px_l7_detect(c, 0, true);
		break;
	case PX_ST_LINGER:
		px_conn_close(c, false);
		break;
	case PX_ST_RELAY: {
		int64_t idle = pl_ev_now(loop) - c->last_active;
		if (idle < px->set.idle_timeout_ns) {
			px_conn_timeout(c, px->set.idle_timeout_ns - idle);
			break;
		}
		px->m.idle_closed[c->dir]++;
		if (log_allowed(px))
			log_info("%s relay to %s idle for %lld s: closed", px_dirs[c->dir]->name,
				 px_addr_str(&c->orig, a, sizeof(a)), (long long)(idle / PL_NS_PER_S));
		px_conn_close(c, false);
		break;
	}
	default:
		break;
	}
}
