/*
 * The one way out of the proxy: a non-blocking connect, then, to a mesh destination, a client
 * TLS handshake and the check that the peer presents one of the identities the mesh directory
 * lists for the dialled address. The byte relay (relay.c, outbound.c) and the HTTP pools
 * (upstream.c) both go through here, so the security check exists once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "model/model.h"
#include "orig.h"
#include "pki/tls.h"
#include "proxy.h"

int px_dial_start(proxy *px, int dir, const struct sockaddr_storage *addr, socklen_t len, int *fdp)
{
	int one = 1, fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	*fdp = fd;
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)addr, len) < 0 && errno != EINPROGRESS) {
		int e = errno;
		px->m.connect_fail[dir]++;
		return -e;
	}
	return 0;
}

int px_dial_result(proxy *px, int dir, int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		px->m.connect_fail[dir]++;
	return err;
}

pl_tls *px_dial_tls(proxy *px, int fd, const char **why)
{
	if (!px_creds_usable(px)) {
		*why = "no usable certificate";
		return NULL;
	}
	pl_tls *t = pl_tls_client_new(px->creds, fd);
	if (!t)
		*why = "cannot create a TLS session";
	return t;
}

bool px_peer_listed(pl_tls *tls, const pl_mesh_dir *dir, const struct sockaddr_storage *addr, char *msg,
		    size_t msglen)
{
	char id[2048], ip[INET6_ADDRSTRLEN];
	size_t n = 0;

	if (!pl_tls_peer_spiffe_id(tls, id, sizeof(id))) {
		snprintf(msg, msglen, "the peer certificate has no single spiffe:// URI SAN");
		return false;
	}
	px_addr_ip(addr, ip, sizeof(ip));
	const char *const *ids = dir ? pl_mesh_dir_lookup(dir, ip, px_addr_port(addr), &n) : NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	snprintf(msg, msglen, "the peer is %s, not an identity the mesh directory lists for it%s%s%s", id,
		 n ? " (" : "", n ? ids[0] : "", n ? (n > 1 ? ", ...)" : ")") : "");
	return false;
}

int px_dial_handshake(proxy *px, px_side *s, const pl_mesh_dir *dir, const struct sockaddr_storage *addr, int *fail,
		      char *msg, size_t msglen)
{
	const char *reason = "other";

	msg[0] = '\0';
	int r = pl_tls_handshake(s->tls, &reason, msg, msglen);
	if (r == PL_IO_WANT_READ || r == PL_IO_WANT_WRITE) {
		pl_ev_io_set(px->loop, &s->io, r == PL_IO_WANT_READ ? EPOLLIN : EPOLLOUT);
		return 0;
	}
	if (r < 0) {
		*fail = px_tls_fail_index(reason);
		return -1;
	}
	if (!px_peer_listed(s->tls, dir, addr, msg, msglen)) {
		*fail = PX_TLSF_PEER_IDENTITY;
		return -1;
	}
	return 1;
}
