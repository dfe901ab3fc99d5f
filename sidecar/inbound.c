/* Inbound: accept a redirected connection, detect mesh mTLS or plaintext, apply the mTLS mode, forward to the app on loopback. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "base/log.h"
#include "http1/http1.h"
#include "pki/tls.h"
#include "orig.h"
#include "l7.h"
#include "model/model.h"

#define PEEK_MAX (16384 + 5)

static int mtls_mode(const proxy *px) { return px->config ? (int)px->config->cfg.mtls_mode : PL_MTLS_STRICT; }

static void accept_conn(proxy *px, int fd)
{
	px_conn *c = px_conn_new(px, PX_IN, fd);

	if (px_original_dst(fd, &c->orig, &c->origlen) < 0) {
		px_conn_refuse(c, PX_REFUSE_NO_ORIGINAL_DST);
		return;
	}
	int port = px_addr_port(&c->orig);
	if (port == px->set.inbound_port || port == px->set.outbound_port || port == px->set.admin_port) {
		px_conn_refuse(c, PX_REFUSE_LOOP);
		return;
	}
	if (px->set.max_conns && px->nconns > px->set.max_conns) {
		px_conn_refuse(c, PX_REFUSE_MAX_CONNECTIONS);
		return;
	}
	if (!px_creds_usable(px)) {
		px_conn_refuse(c, PX_REFUSE_NOT_READY);
		return;
	}
	if (!px_pending_take(c, fd)) {
		px_conn_refuse(c, PX_REFUSE_SOURCE_LIMIT);
		return;
	}
	c->state = PX_ST_DETECT;
	pl_ev_io_set(px->loop, &c->down.io, EPOLLIN | EPOLLRDHUP);
	px_conn_timeout(c, mtls_mode(px) == PL_MTLS_STRICT ? px->set.handshake_timeout_ns : px->set.detect_timeout_ns);
}

/* The app: loopback of the caller's family, at the port the caller dialled. */
static socklen_t app_addr(const struct sockaddr_storage *orig, struct sockaddr_storage *app)
{
	memset(app, 0, sizeof(*app));
	if (orig->ss_family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)app;
		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		s->sin6_port = htons((uint16_t)px_addr_port(orig));
		return sizeof(*s);
	}
	struct sockaddr_in *s = (struct sockaddr_in *)app;
	s->sin_family = AF_INET;
	s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->sin_port = htons((uint16_t)px_addr_port(orig));
	return sizeof(*s);
}

static void dial_app(px_conn *c)
{
	struct sockaddr_storage app;
	socklen_t len = app_addr(&c->orig, &app);

	int r = px_conn_dial(c, &app, len);
	if (r < 0) {
		log_info("inbound dial failed: %s", strerror(-r));
		px_conn_close(c, true);
	}
}

/* Detection reads the raw socket: the TLS session, if any, starts after it. */
static void rcvlowat_reset(px_conn *c) { px_xprt_raw.lowat(&c->down, 1); }

/* The policy of an inbound (container) port, or NULL. */
static const pl_inbound_policy *inbound_policy(const pl_proxy_config *cfg, int port)
{
	for (size_t i = 0; cfg && i < cfg->ninbound; i++)
		if (cfg->inbound[i].port == port)
			return &cfg->inbound[i];
	return NULL;
}

/* Whether the port's policy acts on each HTTP request (authorization rules, a rate limit): such a
 * port takes HTTP only. Relaying bytes that failed detection would carry requests past it. */
static bool http_policy_port(const proxy *px, int port)
{
	const pl_inbound_policy *ip = inbound_policy(px->config ? &px->config->cfg : NULL, port);

	return ip && (ip->authorization.set || ip->rate_limit.set);
}

/* The caller is known (mTLS) or allowed (plaintext): HTTP becomes a session, unless the port is opaque. */
static void to_app(px_conn *c)
{
	proxy *px = c->px;
	int port = px_addr_port(&c->orig);

	pl_ev_timer_stop(px->loop, &c->timer);
	if (pl_mesh_dir_opaque(px->mesh ? &px->mesh->dir : NULL, port)) {
		dial_app(c);
		return;
	}
	/* A port under HTTP policy takes HTTP only: an HTTP/2 preface starts an HTTP/2 session, and
	 * anything else is parsed as HTTP/1, where what is not a well-formed request (a leading CRLF,
	 * a bare LF, a control byte, another protocol) is answered 400 and closed, never relayed. */
	c->http_only = http_policy_port(px, port);
	c->state = PX_ST_L7DETECT;
	pl_ev_io_set(px->loop, &c->down.io, EPOLLIN | EPOLLRDHUP);
	px_conn_timeout(c, px->set.detect_timeout_ns);
	/* Bytes may be waiting already (in the socket, or decrypted inside the TLS session). */
	px_l7_detect(c, 0, false);
}

static void forward(px_conn *c)
{
	dial_app(c);
}

static void plaintext(px_conn *c)
{
	/* Detection may have raised the low-water mark: the relay must see every byte. */
	rcvlowat_reset(c);
	/* STRICT takes no plaintext at all: the kubelet's HTTP probes go to the admin port, which
	 * runs them on loopback (/app-health/, see admin.c). */
	if (mtls_mode(c->px) == PL_MTLS_STRICT) {
		px_conn_refuse(c, PX_REFUSE_STRICT_PLAINTEXT);
		return;
	}
	to_app(c);
}

/* Nothing (or nothing whole) was said: a server-speaks-first client in plaintext, allowed unless STRICT. */
static void detect_gave_up(px_conn *c)
{
	if (mtls_mode(c->px) == PL_MTLS_STRICT) {
		px_conn_refuse(c, PX_REFUSE_DETECT_TIMEOUT);
		return;
	}
	plaintext(c);
}

static void detect(px_conn *c, uint32_t ev)
{
	proxy *px = c->px;
	/* On the stack: this runs for every new inbound connection, once or twice. */
	unsigned char buf[PEEK_MAX];
	size_t need;

	ssize_t n = px_xprt_raw.peek(&c->down, buf, PEEK_MAX);
	if (n == PL_IO_WANT_READ)
		return;
	if (n <= 0) {
		/* Closed or reset before saying anything. */
		px_conn_close(c, n < 0);
		return;
	}
	enum px_detect d = px_detect(buf, (size_t)n, &need);
	switch (d) {
	case PX_DETECT_MORE: {
		/* The client stopped sending before the record was whole: no more bytes will come. */
		if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			detect_gave_up(c);
			return;
		}
		/* Wake up only when the whole record is here, instead of spinning on a partial one. */
		px_xprt_raw.lowat(&c->down, (int)need);
		return;
	}
	case PX_DETECT_PLAIN:
	case PX_DETECT_TLS_OTHER:
		plaintext(c);
		return;
	case PX_DETECT_TLS_MESH:
		break;
	}
	rcvlowat_reset(c);
	if (!px_creds_usable(px)) {
		px_conn_refuse(c, PX_REFUSE_NOT_READY);
		return;
	}
	c->down.tls = pl_tls_server_new(px->creds, c->down.fd);
	if (!c->down.tls) {
		px_conn_tls_failed(c, PX_TLSF_OTHER, "cannot create a TLS session");
		return;
	}
	c->tls = true;
	pl_ev_timer_stop(px->loop, &c->timer);
	px_conn_handshake(c);
}

static void detect_timeout(px_conn *c)
{
	unsigned char first;

	/* A TLS handshake record has begun but is not whole yet: a slow mesh client (a loaded node),
	 * not a server-speaks-first one. Relaying its ClientHello to the app as plaintext would fail
	 * the request; give it until the handshake timeout instead. */
	if (!c->detect_waited && mtls_mode(c->px) != PL_MTLS_STRICT &&
	    px_xprt_raw.peek(&c->down, &first, 1) == 1 && first == 0x16) {
		c->detect_waited = true;
		px_conn_timeout(c, c->px->set.handshake_timeout_ns);
		return;
	}
	detect_gave_up(c);
}

static void handshake_done(px_conn *c)
{
	proxy *px = c->px;
	char id[2048];

	if (!pl_tls_peer_spiffe_id(c->down.tls, id, sizeof(id))) {
		px_conn_tls_failed(c, PX_TLSF_PEER_IDENTITY, "the client certificate has no single spiffe:// URI SAN");
		return;
	}
	if (!px->config || !pl_spiffe_in_domain(id, px->config->cfg.trust_domain)) {
		char msg[2300];
		snprintf(msg, sizeof(msg), "the caller %s is not in trust domain %s", id,
			 px->config ? px->config->cfg.trust_domain : "?");
		px_conn_tls_failed(c, PX_TLSF_PEER_IDENTITY, msg);
		return;
	}
	c->peer_id = strdup(id);
	to_app(c);
}

static void connected(px_conn *c)
{
	px_conn_relay(c);
}

/* --- HTTP: the server side of TrafficPolicy --- */

static int http_request(px_req *rq, const pl_h1_msg *m, pl_h1_str path, px_refusal *r)
{
	proxy *px = rq->px;
	const pl_proxy_config *cfg = &rq->cfg->cfg;
	int port = px_addr_port(&rq->orig);
	char lbl[1024];

	rq->ip = inbound_policy(cfg, port);
	if (!rq->ip)
		return 0;
	const pl_inbound_policy *ip = rq->ip;
	rq->service = ip->service ? ip->service : "";
	if (ip->authorization.set) {
		const char *rule = NULL;
		if (!px_authorize(&ip->authorization, rq->peer_id, m, path, &rule)) {
			snprintf(lbl, sizeof(lbl), "service=\"%s\",policy=\"%s\"", rq->service, ip->policy ? ip->policy : "");
			px_stats_inc(px, PX_F_DENIED, lbl);
			r->cause = "forbidden";
			snprintf(r->msg, sizeof(r->msg),
				 "no authorization rule of TrafficPolicy %s allows %s to %.*s %.*s", ip->policy,
				 rq->peer_id ? rq->peer_id : "a plaintext caller (no identity)", (int)m->method.len,
				 m->method.p, (int)(path.len > 200 ? 200 : path.len), path.p);
			return 403;
		}
	}
	if (ip->rate_limit.set) {
		const pl_rate_limit *rl = &ip->rate_limit;
		int64_t now = pl_ev_now(px->loop);
		snprintf(lbl, sizeof(lbl), "bucket|%d|%s", port, ip->policy ? ip->policy : "");
		px_rt *b = px_rt_get(px, lbl);
		if (b->bucket_key[0] != rl->requests_per_second || b->bucket_key[1] != rl->burst) {
			pl_bucket_init(&b->bucket, rl->requests_per_second, rl->burst > 0 ? rl->burst : rl->requests_per_second, now);
			b->bucket_key[0] = rl->requests_per_second;
			b->bucket_key[1] = rl->burst;
		}
		if (!pl_bucket_take(&b->bucket, now)) {
			snprintf(lbl, sizeof(lbl), "service=\"%s\",policy=\"%s\"", rq->service, ip->policy ? ip->policy : "");
			px_stats_inc(px, PX_F_RATE_LIMITED, lbl);
			r->cause = "rate limited";
			r->retry_after_s = 1;
			snprintf(r->msg, sizeof(r->msg), "rate limit of TrafficPolicy %s: %d requests per second, burst %d",
				 ip->policy, rl->requests_per_second, rl->burst);
			return 429;
		}
	}
	return 0;
}

static int http_target(px_req *rq, px_target *t, px_refusal *r)
{
	(void)r;
	memset(t, 0, sizeof(*t));
	t->addrlen = app_addr(&rq->orig, &t->addr);
	return 0;
}

/* One step of the server handshake with the calling proxy. */
static void handshake(px_conn *c)
{
	proxy *px = c->px;
	const char *reason = "other";
	char err[256] = "";
	int r = pl_tls_handshake(c->down.tls, &reason, err, sizeof(err));

	if (r == PL_IO_WANT_READ || r == PL_IO_WANT_WRITE) {
		pl_ev_io_set(px->loop, &c->down.io, r == PL_IO_WANT_READ ? EPOLLIN : EPOLLOUT);
		return;
	}
	if (r < 0) {
		px_conn_tls_failed(c, px_tls_fail_index(reason), err);
		return;
	}
	pl_ev_timer_stop(px->loop, &c->timer);
	handshake_done(c);
}

static const struct px_dir_http http_ops = {
	.request = http_request,
	.target = http_target,
	.strips_own = true,
	.client_identity = true,
};

const px_dir_ops px_inbound_ops = {
	.name = "inbound",
	.mesh_up = false,
	.accept = accept_conn,
	.detect = detect,
	.detect_timeout = detect_timeout,
	.handshake = handshake,
	.connected = connected,
	.forward = forward,
	.http = &http_ops,
};
