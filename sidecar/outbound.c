/* Outbound: accept a redirected app connection, find its original destination, mTLS to meshed peers, else passthrough. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/log.h"
#include "pki/tls.h"
#include "model/model.h"
#include "orig.h"
#include "proxy.h"

/* Linux netfilter: the same option number at SOL_IP and SOL_IPV6. */
#define PX_SO_ORIGINAL_DST 80

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

void px_outbound_accept(proxy *px, int fd)
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
		c->expect = ids;
		c->nexpect = n;
	}
	int r = px_conn_dial(c, (const struct sockaddr *)&c->orig, c->origlen);
	if (r < 0) {
		log_info("outbound dial failed: %s", strerror(-r));
		px_conn_close(c, true);
	}
}

void px_outbound_connected(px_conn *c)
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
	c->up.tls = pl_tls_client_new(px->creds, c->up.fd);
	if (!c->up.tls) {
		px_conn_tls_failed(c, PX_TLSF_OTHER, "cannot create a TLS session");
		return;
	}
	px_conn_handshake(c);
}

void px_outbound_handshake_done(px_conn *c)
{
	char id[2048];

	if (!pl_tls_peer_spiffe_id(c->up.tls, id, sizeof(id))) {
		px_conn_tls_failed(c, PX_TLSF_PEER_IDENTITY, "the peer certificate has no single spiffe:// URI SAN");
		return;
	}
	bool ok = false;
	for (size_t i = 0; i < c->nexpect && !ok; i++)
		ok = strcmp(c->expect[i], id) == 0;
	if (!ok) {
		char msg[2300];
		snprintf(msg, sizeof(msg), "the peer is %s, not an identity the mesh directory lists for it (%s%s)", id,
			 c->expect[0], c->nexpect > 1 ? ", ..." : "");
		px_conn_tls_failed(c, PX_TLSF_PEER_IDENTITY, msg);
		return;
	}
	px_mesh_unref(c->mesh);
	c->mesh = NULL;
	c->expect = NULL;
	px_conn_relay(c);
}
