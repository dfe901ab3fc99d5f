/* Outbound: accept a redirected app connection, find its original destination, mTLS to meshed peers, else passthrough. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/duration.h"
#include "base/log.h"
#include "pki/tls.h"
#include "model/model.h"
#include "orig.h"
#include "l7.h"

/* Linux netfilter: the same option number at SOL_IP and SOL_IPV6. */
#define PX_SO_ORIGINAL_DST 80

static void forward(px_conn *c);

int px_original_dst(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);

	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
		return -errno;
	*len = sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if (local.ss_family == AF_INET6) {
		const struct sockaddr_in6 *l6 = (const struct sockaddr_in6 *)&local;
		if (!IN6_IS_ADDR_V4MAPPED(&l6->sin6_addr)) {
			if (getsockopt(fd, SOL_IPV6, PX_SO_ORIGINAL_DST, ss, len) < 0)
				return -errno;
			return 0;
		}
	}
	if (getsockopt(fd, SOL_IP, PX_SO_ORIGINAL_DST, ss, len) < 0)
		return -errno;
	return 0;
}

bool px_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

int px_addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

void px_addr_ip(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)outlen);
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)outlen);
}

static void accept_conn(proxy *px, int fd)
{
	px_conn *c = px_conn_new(px, PX_OUT, fd);
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	char ip[INET6_ADDRSTRLEN];

	if (px_original_dst(fd, &c->orig, &c->origlen) < 0) {
		px_conn_refuse(c, PX_REFUSE_NO_ORIGINAL_DST);
		return;
	}
	/* Not redirected (someone dialled the listener itself): relaying would loop. */
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0 && px_same_addr(&local, &c->orig)) {
		px_conn_refuse(c, PX_REFUSE_LOOP);
		return;
	}
	if (px->set.max_conns && px->nconns > px->set.max_conns) {
		px_conn_refuse(c, PX_REFUSE_MAX_CONNECTIONS);
		return;
	}
	px_addr_ip(&c->orig, ip, sizeof(ip));
	size_t n = 0;
	const char *const *ids = px->mesh ? pl_mesh_dir_lookup(&px->mesh->dir, ip, px_addr_port(&c->orig), &n) : NULL;
	if (ids && n) {
		/* A meshed destination: never fall back to plaintext, even before we are ready. */
		if (!px_creds_usable(px)) {
			px_conn_refuse(c, PX_REFUSE_NOT_READY);
			return;
		}
		c->tls = true;
		c->mesh = px->mesh;
		c->mesh->refs++;
		/* Meshed and not opaque: HTTP gets the route's policy and pooled mTLS connections. */
		if (!pl_mesh_dir_opaque(&px->mesh->dir, px_addr_port(&c->orig))) {
			c->state = PX_ST_L7DETECT;
			pl_ev_io_set(px->loop, &c->down.io, EPOLLIN | EPOLLRDHUP);
			px_conn_timeout(c, px->set.detect_timeout_ns);
			return;
		}
	}
	forward(c);
}

static void forward(px_conn *c)
{
	int r = px_conn_dial(c, &c->orig, c->origlen);
	if (r < 0) {
		log_info("outbound dial failed: %s", strerror(-r));
		px_conn_close(c, true);
	}
}

static void connected(px_conn *c)
{
	proxy *px = c->px;

	if (!c->tls) {
		px_conn_relay(c);
		return;
	}
	if (!px_creds_usable(px)) {
		px_conn_refuse(c, PX_REFUSE_NOT_READY);
		return;
	}
	const char *why = NULL;
	c->up.tls = px_dial_tls(px, c->up.fd, &why);
	if (!c->up.tls) {
		px_conn_tls_failed(c, PX_TLSF_OTHER, why);
		return;
	}
	px_conn_handshake(c);
}

/* The peer was checked by the shared dial path (px_dial_handshake) against c->mesh. */
static void handshake_done(px_conn *c)
{
	px_mesh_unref(c->mesh);
	c->mesh = NULL;
	px_conn_relay(c);
}

/* --- HTTP: the client side of TrafficPolicy --- */

static int http_request(px_req *rq, const pl_h1_msg *m, pl_h1_str path, px_refusal *r)
{
	proxy *px = rq->px;
	const pl_proxy_config *cfg = &rq->cfg->cfg;
	char ip[INET6_ADDRSTRLEN], key[1024];
	int port = px_addr_port(&rq->orig);

	/* Who answers at the dialled address, looked up once per request: the Service (its policy),
	 * and whether it is sent mTLS. */
	px_addr_ip(&rq->orig, ip, sizeof(ip));
	const pl_mesh_service *ms = rq->mesh ? pl_mesh_dir_service_at(&rq->mesh->dir, ip, port) : NULL;
	size_t n = 0;
	rq->dest_svc = ms;
	if (ms) {
		rq->service = ms->qname;
		rq->dest_tls = ms->identities.n > 0;
	} else {
		rq->dest_tls = rq->mesh && pl_mesh_dir_lookup(&rq->mesh->dir, ip, port, &n) && n;
	}
	rq->op = NULL;
	rq->route = NULL;
	/* The namespace's client-side policies come with the directory (--outbound), else the config's. */
	const bool ns_out = rq->mesh && rq->mesh->has_out;
	const size_t nout = ns_out ? rq->mesh->out.n : cfg->noutbound;
	const pl_outbound_policy *outv = ns_out ? rq->mesh->out.v : cfg->outbound;
	for (size_t i = 0; ms && i < nout; i++) {
		const pl_outbound_policy *op = &outv[i];
		if (strcmp(op->service, rq->service) == 0 && (op->port == 0 || op->port == port)) {
			rq->op = op;
			break;
		}
	}
	if (!rq->op)
		return 0;
	rq->route = px_route_select(rq->op, m, path);
	if (!rq->route) {
		r->cause = "no route";
		snprintf(r->msg, sizeof(r->msg), "no route of TrafficPolicy %s matches %.*s %.*s", rq->op->policy,
			 (int)m->method.len, m->method.p, (int)(path.len > 200 ? 200 : path.len), path.p);
		return 404;
	}
	const pl_retries *rt = &rq->route->retries;
	if (rt->set) {
		snprintf(key, sizeof(key), "budget|%s|%s", rq->op->policy, rq->route->name ? rq->route->name : "");
		px_rt *b = px_rt_get(px, key);
		if (b->budget_key[0] != rt->budget_percent + 1 || b->budget_key[1] != rt->budget_min_per_second) {
			px_budget_init(&b->budget, rt);
			b->budget_key[0] = rt->budget_percent + 1;
			b->budget_key[1] = rt->budget_min_per_second;
		}
		px_budget_request(&b->budget, pl_ev_now(px->loop));
		rq->budget_rt = b;
	}
	px_fault_decision fd = px_fault_roll(&rq->route->fault, px_random(), px_random());
	rq->fault_delay_ns = fd.delay_ns;
	rq->fault_abort = fd.abort_status;
	return 0;
}

static void set_addr(px_target *t, const char *ip, int port)
{
	memset(&t->addr, 0, sizeof(t->addr));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&t->addr;
		s->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &s->sin6_addr);
		s->sin6_port = htons((uint16_t)port);
		t->addrlen = sizeof(*s);
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)&t->addr;
		s->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &s->sin_addr);
		s->sin_port = htons((uint16_t)port);
		t->addrlen = sizeof(*s);
	}
}

/* An address of the caller's family when there is one. */
static const char *family_addr(const pl_strv *v, int family)
{
	for (size_t i = 0; i < v->n; i++)
		if ((strchr(v->v[i], ':') != NULL) == (family == AF_INET6))
			return v->v[i];
	return v->n ? v->v[0] : NULL;
}

/* Without a circuitBreaker, endpoints still leave the rotation after consecutive failures (a pod
 * gone before the directory says so): Linkerd's failure accrual, 7 in a row, 5 s growing to 1 m. */
static const pl_circuit_breaker endpoint_default_cb = {
	.set = true, .consecutive_failures = 7, .base_ejection_ns = 5 * PL_NS_PER_S, .max_ejection_ns = PL_NS_PER_M,
};

/*
 * An endpoint of Service s for its port port, round robin, ejected ones left out. 0: t is set;
 * 1: every endpoint serving the port is ejected; -1: no endpoint serves it (dial the Service).
 */
static int pick_endpoint(px_req *rq, const pl_mesh_service *s, int port, const pl_circuit_breaker *cb, px_target *t)
{
	proxy *px = rq->px;
	char key[600];
	int pi = -1;
	bool any = false;
	size_t n;

	for (size_t i = 0; i < s->nports && pi < 0; i++)
		if (s->ports[i] == port)
			pi = (int)i;
	if (pi < 0 || !s->nendpoints)
		return -1;
	if (!cb || !cb->set || !cb->consecutive_failures)
		cb = &endpoint_default_cb;
	snprintf(key, sizeof(key), "rr|%s", s->qname);
	px_rt *rr = px_rt_get(px, key);
	int64_t now = pl_ev_now(px->loop);
	for (size_t k = 0; k < s->nendpoints; k++) {
		const pl_mesh_endpoint *e = &s->endpoints[(rr->rr + k) % s->nendpoints];
		const char *addr = family_addr(&e->addresses, rq->orig.ss_family);
		int eport = e->ports[pi];
		if (!addr || !eport)
			continue;
		any = true;
		snprintf(key, sizeof(key), "ep|%s|%d", addr, eport);
		px_rt *o = px_rt_get(px, key);
		if (px_outlier_ejected(&o->outlier, now))
			continue;
		rr->rr += (uint32_t)k + 1;
		set_addr(t, addr, eport);
		t->tls = rq->mesh && pl_mesh_dir_lookup(&rq->mesh->dir, addr, eport, &n) && n;
		rq->outlier_rt = o;
		rq->ocb = cb;
		rq->endpoint = true;
		return 0;
	}
	return any ? 1 : -1;
}

static int http_target(px_req *rq, px_target *t, px_refusal *r)
{
	proxy *px = rq->px;
	char key[1024];
	int port = px_addr_port(&rq->orig);
	const pl_mesh_dir *dir = rq->mesh ? &rq->mesh->dir : NULL;

	t->backend = NULL;
	rq->backend = NULL;
	rq->outlier_rt = NULL;
	rq->ocb = NULL;
	rq->endpoint = false;
	if (!rq->route) {
		/* No policy: the Service's endpoints in turn, or the address the app dialled (also when
		 * every endpoint is out of the rotation, or the last ones failed to connect). */
		if (rq->dest_svc && !rq->via_service && pick_endpoint(rq, rq->dest_svc, port, NULL, t) == 0)
			return 0;
		t->addr = rq->orig;
		t->addrlen = rq->origlen;
		t->tls = rq->dest_tls;
		return 0;
	}
	const pl_route *rt = rq->route;
	const pl_circuit_breaker *cb = &rq->op->circuit_breaker;
	bool skip[64] = {0};
	px_rt *ort[64] = {0};
	size_t nb = rt->nbackends < 64 ? rt->nbackends : 64;
	int64_t now = pl_ev_now(px->loop);
	for (size_t i = 0; i < nb; i++) {
		snprintf(key, sizeof(key), "outlier|%s|%s", rq->op->policy, rt->backends[i].name);
		ort[i] = px_rt_get(px, key);
		skip[i] = cb->set && cb->consecutive_failures && px_outlier_ejected(&ort[i]->outlier, now);
	}
	for (;;) {
		const pl_backend *b = px_backend_pick(rt, px_random(), skip);
		if (!b) {
			r->cause = "circuit open";
			snprintf(r->msg, sizeof(r->msg),
				 "circuit breaker: every backend of route \"%s\" of TrafficPolicy %s is ejected after consecutive failures",
				 rt->name ? rt->name : "", rq->op->policy);
			return 503;
		}
		size_t bi = (size_t)(b - rt->backends);
		int bport = b->port ? b->port : port;
		const pl_mesh_service *s = dir ? pl_mesh_dir_service(dir, b->name) : NULL;
		rq->backend = b->name;
		t->backend = b->name;
		/* Per endpoint when the directory lists them: ejection is per pod. Without a circuitBreaker
		 * of the policy's own, endpoints all out of the rotation (the directory is stale, say) mean
		 * the Service address, as after endpoints that failed to connect (via_service). */
		int e = s && !rq->via_service ? pick_endpoint(rq, s, bport, cb, t) : -1;
		if (e == 0)
			return 0;
		if (e == 1 && !(cb->set && cb->consecutive_failures))
			e = -1;
		if (e == 1) {
			if (bi < nb)
				skip[bi] = true;
			continue;
		}
		rq->outlier_rt = bi < nb ? ort[bi] : NULL;
		rq->ocb = cb;
		if (strcmp(b->name, rq->op->service) == 0 && bport == port) {
			t->addr = rq->orig;
			t->addrlen = rq->origlen;
			t->tls = rq->dest_tls;
			return 0;
		}
		const char *addr = s ? family_addr(&s->addresses, rq->orig.ss_family) : NULL;
		if (!addr) {
			r->cause = "no backend address";
			snprintf(r->msg, sizeof(r->msg), "backend %s of TrafficPolicy %s has no address in the mesh directory",
				 b->name, rq->op->policy);
			return 503;
		}
		set_addr(t, addr, bport);
		t->tls = s->identities.n > 0;
		return 0;
	}
}

/* One step of the client handshake to the dialled peer: the shared dial path, the peer's
 * identity checked against the directory the connection started with. */
static void handshake(px_conn *c)
{
	char err[2300];
	int fail = PX_TLSF_OTHER;
	int r = px_dial_handshake(c->px, &c->up, &c->mesh->dir, &c->orig, &fail, err, sizeof(err));

	if (r == 0)
		return;
	if (r < 0) {
		px_conn_tls_failed(c, fail, err);
		return;
	}
	pl_ev_timer_stop(c->px->loop, &c->timer);
	handshake_done(c);
}

static const struct px_dir_http http_ops = {
	.request = http_request,
	.target = http_target,
	.peer_unsent = true,
};

const px_dir_ops px_outbound_ops = {
	.name = "outbound",
	.mesh_up = true,
	.accept = accept_conn,
	.handshake = handshake,
	.connected = connected,
	.forward = forward,
	.http = &http_ops,
};
