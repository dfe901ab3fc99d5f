/* Unit tests of the raw transport and the side hand-off (sidecar/xprt.c), on a socketpair. The TLS
 * transport is exercised end to end (test_dataplane, test_http, test_grpc). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "pki/tls.h"
#include "proxy.h"

static void pair(px_side *s, int *peer)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	memset(s, 0, sizeof(*s));
	s->fd = sv[0];
	*peer = sv[1];
}

/* Reads, writes and peeks keep the proxy's conventions: bytes, 0 at the end, PL_IO_WANT_*. */
static void test_raw(void **state)
{
	(void)state;
	px_side s;
	int peer;
	char b[16];

	pair(&s, &peer);
	assert_ptr_equal(px_xprt_of(&s), &px_xprt_raw);
	assert_int_equal(px_side_recv(&s, b, sizeof(b)), PL_IO_WANT_READ);
	assert_int_equal(px_xprt_of(&s)->peek(&s, b, sizeof(b)), PL_IO_WANT_READ);
	assert_int_equal(write(peer, "hello", 5), 5);
	assert_int_equal(px_xprt_of(&s)->peek(&s, b, sizeof(b)), 5);
	assert_int_equal(px_side_recv(&s, b, sizeof(b)), 5); /* the peek left them */
	assert_memory_equal(b, "hello", 5);
	assert_false(px_side_pending(&s));
	assert_int_equal(px_side_send(&s, "back", 4), 4);
	assert_int_equal(read(peer, b, sizeof(b)), 4);
	/* shutw ends what we send: the peer reads the end, and can still write to us */
	assert_int_equal(px_xprt_of(&s)->shutw(&s), 0);
	assert_int_equal(read(peer, b, sizeof(b)), 0);
	assert_int_equal(write(peer, "x", 1), 1);
	assert_int_equal(px_side_recv(&s, b, sizeof(b)), 1);
	close(peer);
	assert_int_equal(px_side_recv(&s, b, sizeof(b)), 0);
	close(s.fd);
}

/* A full socket buffer is PL_IO_WANT_WRITE, not an error. */
static void test_raw_full(void **state)
{
	(void)state;
	px_side s;
	int peer;
	static char big[1 << 16];
	ssize_t n;

	pair(&s, &peer);
	while ((n = px_side_send(&s, big, sizeof(big))) > 0)
		;
	assert_int_equal(n, PL_IO_WANT_WRITE);
	close(peer);
	assert_true(px_side_send(&s, big, 1) == -EPIPE || px_side_send(&s, big, 1) == -ECONNRESET);
	close(s.fd);
}

/* The hand-off moves the socket (and its TLS session) to the new owner and leaves the old one
 * empty; closing the new one closes the socket once. */
static void test_take_close(void **state)
{
	(void)state;
	pl_ev_loop *loop = pl_ev_loop_new();
	px_side a, b;
	int peer;

	assert_non_null(loop);
	pair(&a, &peer);
	pl_ev_io_init(&a.io, NULL, NULL);
	pl_ev_io_init(&b.io, NULL, NULL);
	int fd = a.fd;
	a.want_r = PL_IO_WANT_READ;
	px_side_take(loop, &b, &a);
	assert_int_equal(a.fd, -1);
	assert_null(a.tls);
	assert_int_equal(b.fd, fd);
	assert_int_equal(b.want_r, 0);
	px_side_close(loop, &a, false); /* empty: nothing happens */
	assert_true(fcntl(fd, F_GETFD) >= 0);
	px_side_close(loop, &b, false);
	assert_int_equal(b.fd, -1);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	char c;
	assert_int_equal(read(peer, &c, 1), 0); /* the peer sees the end */
	close(peer);
	pl_ev_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_raw_full),
		cmocka_unit_test(test_take_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
