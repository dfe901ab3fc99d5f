/* The transport under every connection: raw TCP or TLS, behind one small table of operations, so
 * the protocol handlers (byte relay, HTTP/1, HTTP/2) never branch on which one a socket has. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pki/tls.h"
#include "proxy.h"

static ssize_t raw_recv(px_side *s, void *b, size_t n)
{
	for (;;) {
		ssize_t r = recv(s->fd, b, n, 0);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? PL_IO_WANT_READ : -errno;
	}
}

static ssize_t raw_send(px_side *s, const void *b, size_t n)
{
	for (;;) {
		ssize_t r = send(s->fd, b, n, MSG_NOSIGNAL);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? PL_IO_WANT_WRITE : -errno;
	}
}

static ssize_t raw_peek(px_side *s, void *b, size_t n)
{
	ssize_t r = recv(s->fd, b, n, MSG_PEEK);

	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PL_IO_WANT_READ : -errno;
	return r;
}

static int raw_shutw(px_side *s)
{
	if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN)
		return -errno;
	return 0;
}

static bool raw_pending(const px_side *s)
{
	(void)s;
	return false;
}

static void raw_lowat(px_side *s, int n) { setsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &n, sizeof(n)); }

static ssize_t tls_recv(px_side *s, void *b, size_t n) { return pl_tls_read(s->tls, b, n); }
static ssize_t tls_send(px_side *s, const void *b, size_t n) { return pl_tls_write(s->tls, b, n); }
static ssize_t tls_peek(px_side *s, void *b, size_t n) { return pl_tls_peek(s->tls, b, n); }

/* close_notify, then FIN. */
static int tls_shutw(px_side *s)
{
	int r = pl_tls_shutdown(s->tls);

	return r != 0 ? r : raw_shutw(s);
}

static bool tls_pending(const px_side *s) { return pl_tls_pending(s->tls); }

/* A low-water mark counts ciphertext: records do not map to what the protocol reads. */
static void tls_lowat(px_side *s, int n)
{
	(void)s;
	(void)n;
}

const px_xprt px_xprt_raw = {"raw", raw_recv, raw_send, raw_peek, raw_shutw, raw_pending, raw_lowat};
const px_xprt px_xprt_tls = {"tls", tls_recv, tls_send, tls_peek, tls_shutw, tls_pending, tls_lowat};

void px_side_close(pl_ev_loop *loop, px_side *s, bool reset)
{
	if (s->fd < 0)
		return;
	pl_ev_io_stop(loop, &s->io);
	if (reset) {
		struct linger lg = {1, 0};
		setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	pl_tls_free(s->tls);
	s->tls = NULL;
	close(s->fd);
	s->fd = -1;
}

void px_side_take(pl_ev_loop *loop, px_side *dst, px_side *src)
{
	pl_ev_io_stop(loop, &src->io);
	dst->fd = src->fd;
	dst->tls = src->tls;
	dst->want_r = dst->want_w = 0;
	src->fd = -1;
	src->tls = NULL;
}
