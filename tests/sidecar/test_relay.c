/* Relay and detection stages against real loopback sockets: no busy loops, no stuck bytes, no stuck connections. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy.h"

/* A healthy idle connection costs no callback; a spinning one costs hundreds of thousands. */
#define SPIN_LIMIT 200
/* Bound on every wait for something the loop must make happen: generous for a busy machine. */
#define WAIT_MS 30000

static proxy px;
static px_config cfg;

static int listen_any(struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	socklen_t l = sizeof(*a);

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof(*a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	getsockname(fd, (struct sockaddr *)a, &l);
	return fd;
}

/* A connected client; *down gets the accepted, non-blocking side (what the proxy would accept). */
static int client_pair(int *down)
{
	struct sockaddr_in a;
	int l = listen_any(&a), cl = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(connect(cl, (struct sockaddr *)&a, sizeof(a)), 0);
	*down = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	assert_true(*down >= 0);
	close(l);
	return cl;
}

/* Runs the loop for ms (at least one iteration); returns how many callbacks ran. */
static long run_for(int ms)
{
	long n = 0;
	int64_t end = pl_ev_now_update(px.loop) + (int64_t)ms * 1000000;

	do {
		int r = pl_ev_run_once(px.loop, 10 * 1000000);
		if (r > 0)
			n += r;
	} while (pl_ev_now_update(px.loop) < end);
	return n;
}

static bool fd_readable(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};

	return poll(&p, 1, 0) > 0;
}

static bool no_conns(void)
{
	return px.nconns == 0;
}

/* Runs the loop until done() holds, failing the test after WAIT_MS; returns how many callbacks ran. */
static long run_until(bool (*done)(void))
{
	long n = 0;
	int64_t end = pl_ev_now_update(px.loop) + (int64_t)WAIT_MS * 1000000;

	while (!done()) {
		if (pl_ev_now_update(px.loop) >= end)
			fail_msg("the condition did not hold within %d ms", WAIT_MS);
		int r = pl_ev_run_once(px.loop, 10 * 1000000);
		if (r > 0)
			n += r;
	}
	return n;
}

/* Runs the loop until fd is readable (a listener: has a connection to accept); false after WAIT_MS. */
static bool readable_running(int fd)
{
	int64_t end = pl_ev_now_update(px.loop) + (int64_t)WAIT_MS * 1000000;

	while (!fd_readable(fd)) {
		if (pl_ev_now_update(px.loop) >= end)
			return false;
		pl_ev_run_once(px.loop, 10 * 1000000);
	}
	return true;
}

/* Runs the loop until fd is readable (bounded by WAIT_MS), then reads once: the bytes, 0 at EOF, -2 on timeout. */
static ssize_t read_running(int fd, char *b, size_t n)
{
	if (!readable_running(fd))
		return -2;
	return recv(fd, b, n, MSG_DONTWAIT);
}

/* Like read_running, but gathers up to want bytes (or EOF) into b; returns how many arrived. */
static size_t read_all_running(int fd, char *b, size_t cap, size_t want)
{
	size_t got = 0;

	while (got < want && got < cap) {
		ssize_t r = read_running(fd, b + got, cap - got);
		if (r == 0 || r == -2)
			break;
		if (r > 0)
			got += (size_t)r;
	}
	return got;
}

static void hard_close(int fd)
{
	struct linger lg = {1, 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	memset(&px, 0, sizeof(px));
	px.loop = pl_ev_loop_new();
	px.set.buf_size = 16384;
	px.set.connect_timeout_ns = 5000000000LL;
	px.set.handshake_timeout_ns = 10000000000LL;
	px.set.detect_timeout_ns = 1000000000LL;
	memset(&cfg, 0, sizeof(cfg));
	cfg.cfg.mtls_mode = PL_MTLS_PERMISSIVE;
	px.config = &cfg;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	while (px.conns)
		px_conn_close(px.conns, false);
	px_pool_free(&px);
	pl_ev_loop_free(px.loop);
	return 0;
}

/*
 * The client half-closes after its request, the upstream stays silent, then the client
 * resets: the downstream side has no interest left, and epoll's level-triggered HUP/ERR
 * used to spin the loop until the upstream spoke. Now the reset closes the connection.
 */
static void reset_after_half_close(bool splice)
{
	struct sockaddr_in sa;
	int sl = listen_any(&sa), down, cl = client_pair(&down);
	char b[64];

	px.set.splice = splice;
	px_conn *c = px_conn_new(&px, PX_OUT, down);
	memcpy(&c->orig, &sa, sizeof(sa));
	c->origlen = sizeof(sa);
	assert_int_equal(px_conn_dial(c, (struct sockaddr_storage *)&sa, sizeof(sa)), 0);
	int srv = accept(sl, NULL, NULL);
	run_for(50);
	send(cl, "hello", 5, 0);
	shutdown(cl, SHUT_WR);
	assert_int_equal(read_all_running(srv, b, sizeof(b), 5), 5);
	assert_int_equal(read_running(srv, b, sizeof(b)), 0); /* the FIN was passed on */
	hard_close(cl);
	/* The reset closes the connection in a few callbacks; a spinning loop would run many. */
	long cbs = run_until(no_conns);
	assert_true(cbs < SPIN_LIMIT);
	assert_int_equal(px.nconns, 0);
	/* ... and the upstream saw a reset, as it would have without the proxy: it cannot send. The
	 * reset may be delivered by another kernel thread: wait (bounded) for its error or hangup. */
	struct pollfd hp = {srv, 0, 0};
	poll(&hp, 1, WAIT_MS);
	assert_int_equal(send(srv, "x", 1, MSG_NOSIGNAL), -1);
	close(srv);
	close(sl);
}

static void test_reset_after_half_close_copy(void **state)
{
	(void)state;
	reset_after_half_close(false);
}

static void test_reset_after_half_close_splice(void **state)
{
	(void)state;
	reset_after_half_close(true);
}

/*
 * The client half-closed; the upstream answers with more than the buffers hold and
 * closes, while the client does not read: the upstream side reports HUP with no interest
 * (its bytes wait behind back-pressure). That must neither spin nor lose the tail.
 */
static void upstream_hangup_with_backpressure(bool splice)
{
	struct sockaddr_in sa;
	int sl = listen_any(&sa), down, cl = client_pair(&down);
	static char big[4 << 20];
	char b[65536];
	(void)big;

	px.set.splice = splice;
	px_conn *c = px_conn_new(&px, PX_OUT, down);
	memcpy(&c->orig, &sa, sizeof(sa));
	c->origlen = sizeof(sa);
	assert_int_equal(px_conn_dial(c, (struct sockaddr_storage *)&sa, sizeof(sa)), 0);
	int srv = accept(sl, NULL, NULL);
	run_for(50);
	send(cl, "x", 1, 0);
	shutdown(cl, SHUT_WR);
	assert_int_equal(read_running(srv, b, sizeof(b)), 1);
	assert_int_equal(read_running(srv, b, sizeof(b)), 0);
	/* The server writes 4 MiB in the background of the loop: non-blocking, interleaved. */
	int fl = 1;
	setsockopt(srv, SOL_SOCKET, SO_SNDBUF, &(int){1 << 20}, sizeof(int));
	size_t sent = 0;
	for (int i = 0; i < 400 && sent < sizeof(big); i++) {
		ssize_t n = send(srv, big + sent, sizeof(big) - sent, MSG_DONTWAIT);
		if (n > 0)
			sent += (size_t)n;
		run_for(5);
	}
	(void)fl;
	close(srv); /* FIN after the data; the proxy's side now has both directions shut: HUP */
	long cbs = run_for(300);
	assert_true(cbs < SPIN_LIMIT);
	/* Now the client reads everything: the tail behind the hangup must arrive, then EOF. */
	size_t got = 0;
	for (;;) {
		ssize_t n = read_running(cl, b, sizeof(b));
		if (n == -2)
			fail_msg("no byte and no EOF within %d ms after %zu of %zu bytes", WAIT_MS, got, sent);
		if (n == 0)
			break;
		if (n > 0)
			got += (size_t)n;
		if (got > sizeof(big))
			break;
	}
	assert_int_equal(got, sent);
	run_until(no_conns);
	assert_int_equal(px.nconns, 0);
	close(cl);
	close(sl);
}

static void test_upstream_hangup_with_backpressure_copy(void **state)
{
	(void)state;
	upstream_hangup_with_backpressure(false);
}

static void test_upstream_hangup_with_backpressure_splice(void **state)
{
	(void)state;
	upstream_hangup_with_backpressure(true);
}

/* A 517-byte record starting with 0x16 arriving in two pieces, classified as plaintext
 * (PERMISSIVE): the low-water mark raised during detection used to stay, so the client's
 * later small writes never woke the relay. */
static void test_split_record_then_small_writes(void **state)
{
	struct sockaddr_in sa;
	int sl = listen_any(&sa), down, cl = client_pair(&down);
	unsigned char rec[517];
	char b[1024];
	(void)state;

	px.set.splice = false;
	px_conn *c = px_conn_new(&px, PX_IN, down);
	memcpy(&c->orig, &sa, sizeof(sa));
	c->origlen = sizeof(sa);
	/* As inbound.c's accept leaves it (dial_app would go to 127.0.0.1:<orig port>: our listener). */
	c->state = PX_ST_DETECT;
	pl_ev_io_set(px.loop, &c->down.io, EPOLLIN | EPOLLRDHUP);
	px_conn_timeout(c, px.set.detect_timeout_ns);
	memset(rec, 0, sizeof(rec));
	rec[0] = 0x16, rec[1] = 3, rec[2] = 1, rec[3] = 0x02, rec[4] = 0x00; /* a 512-byte record */
	rec[5] = 1, rec[7] = 0x01, rec[8] = 0xfc;                            /* a ClientHello without ALPN */
	send(cl, rec, 100, 0);
	run_for(50);
	send(cl, rec + 100, 417, 0);
	/* Classified as plaintext: the app (our listener) is dialled. */
	assert_true(readable_running(sl));
	int srv = accept4(sl, NULL, NULL, SOCK_NONBLOCK);
	assert_true(srv >= 0);
	assert_int_equal(read_all_running(srv, b, sizeof(b), 517), 517);
	send(cl, "ping\n", 5, 0);
	assert_int_equal(read_all_running(srv, b, sizeof(b), 5), 5);
	close(cl);
	close(srv);
	close(sl);
}

/* A partial ClientHello followed by FIN: the peek sees the same bytes forever; decide at once. */
static void test_partial_hello_then_fin(void **state)
{
	struct sockaddr_in sa;
	int sl = listen_any(&sa), down, cl = client_pair(&down);
	unsigned char rec[100] = {0x16, 3, 1, 2, 0};
	char b[256];
	(void)state;

	px.set.splice = false;
	px_conn *c = px_conn_new(&px, PX_IN, down);
	memcpy(&c->orig, &sa, sizeof(sa));
	c->origlen = sizeof(sa);
	c->state = PX_ST_DETECT;
	pl_ev_io_set(px.loop, &c->down.io, EPOLLIN | EPOLLRDHUP);
	px_conn_timeout(c, 120 * px.set.detect_timeout_ns);
	send(cl, rec, sizeof(rec), 0);
	run_for(50);
	shutdown(cl, SHUT_WR);
	/* PERMISSIVE: relayed as plaintext right away (within WAIT_MS), not after the (here 120 s)
	 * timeout, and without spinning on the same peeked bytes meanwhile. */
	long cbs = 0;
	int64_t end = pl_ev_now_update(px.loop) + (int64_t)WAIT_MS * 1000000;
	while (!fd_readable(sl)) {
		if (pl_ev_now_update(px.loop) >= end)
			fail_msg("the app was not dialled within %d ms", WAIT_MS);
		int r = pl_ev_run_once(px.loop, 10 * 1000000);
		if (r > 0)
			cbs += r;
	}
	assert_true(cbs < SPIN_LIMIT);
	int srv = accept4(sl, NULL, NULL, SOCK_NONBLOCK);
	assert_true(srv >= 0);
	assert_int_equal(read_all_running(srv, b, sizeof(b), 100), 100);
	close(cl);
	close(srv);
	close(sl);
}

/* PERMISSIVE: a TLS record begun but not whole when the detect timeout fires is a slow mesh
 * client, not a plaintext one: it used to be relayed to the app as plaintext (the caller then
 * saw "wrong version number"). Now detection waits up to the handshake timeout. */
static void test_slow_hello_outlives_detect_timeout(void **state)
{
	struct sockaddr_in sa;
	int sl = listen_any(&sa), down, cl = client_pair(&down);
	unsigned char rec[100] = {0x16, 3, 1, 2, 0};
	(void)state;

	px.set.splice = false;
	px.set.detect_timeout_ns = 100000000LL;
	/* Long enough that nothing but a stall of seconds between two statements could reach it
	 * before the check below; the give-up after it is awaited, not timed. */
	px.set.handshake_timeout_ns = 5000000000LL;
	px_conn *c = px_conn_new(&px, PX_IN, down);
	memcpy(&c->orig, &sa, sizeof(sa));
	c->origlen = sizeof(sa);
	c->state = PX_ST_DETECT;
	pl_ev_io_set(px.loop, &c->down.io, EPOLLIN | EPOLLRDHUP);
	px_conn_timeout(c, px.set.detect_timeout_ns);
	send(cl, rec, sizeof(rec), 0);
	/* Until the detect timeout has fired (and found the record begun), without spinning. */
	long cbs = 0;
	int64_t end = pl_ev_now_update(px.loop) + (int64_t)WAIT_MS * 1000000;
	while (!c->detect_waited) {
		if (pl_ev_now_update(px.loop) >= end)
			fail_msg("the detect timeout did not fire within %d ms", WAIT_MS);
		int r = pl_ev_run_once(px.loop, 10 * 1000000);
		if (r > 0)
			cbs += r;
	}
	assert_true(cbs < SPIN_LIMIT);
	/* Past the detect timeout: still waiting, the app was not dialled. */
	struct pollfd lp = {sl, POLLIN, 0};
	assert_int_equal(poll(&lp, 1, 0), 0);
	assert_int_equal(px.nconns, 1);
	/* Past the handshake timeout as well: given up on (PERMISSIVE: relayed as plaintext). */
	assert_true(readable_running(sl));
	int srv = accept4(sl, NULL, NULL, SOCK_NONBLOCK);
	assert_true(srv >= 0);
	close(srv);
	close(cl);
	close(sl);
}

/* While the upstream connect is pending, the client resets: close, do not treat it as "connected". */
/* A relay with no byte either way for --idle-timeout is closed (a slowloris that became a byte
 * relay does not live for ever), counted, and both ends see the end. */
static void test_idle_timeout(void **state)
{
	struct sockaddr_in sa;
	int sl = listen_any(&sa), down, cl = client_pair(&down);
	char b[64];
	(void)state;

	px.set.splice = false;
	px.set.idle_timeout_ns = 300000000LL;
	px_conn *c = px_conn_new(&px, PX_OUT, down);
	memcpy(&c->orig, &sa, sizeof(sa));
	c->origlen = sizeof(sa);
	assert_int_equal(px_conn_dial(c, (struct sockaddr_storage *)&sa, sizeof(sa)), 0);
	int srv = accept(sl, NULL, NULL);
	send(cl, "ping", 4, 0);
	assert_int_equal(read_all_running(srv, b, sizeof(b), 4), 4);
	send(srv, "pong", 4, 0);
	assert_int_equal(read_all_running(cl, b, sizeof(b), 4), 4);
	assert_int_equal(px.m.idle_closed[PX_OUT], 0);
	/* Then silence: the loop closes it once the timeout has passed since the last byte. */
	run_until(no_conns);
	assert_int_equal(px.nconns, 0);
	assert_int_equal(px.m.idle_closed[PX_OUT], 1);
	assert_int_equal(read_running(srv, b, sizeof(b)), 0);
	assert_int_equal(read_running(cl, b, sizeof(b)), 0);
	close(srv);
	close(cl);
	close(sl);
}

/* One source address may hold --max-pending-per-source connections in detection; a closed one
 * frees its place, and one that goes on to relay no longer counts. */
static void test_pending_per_source(void **state)
{
	int down[4], cl[4];
	px_conn *c[4];
	(void)state;

	px.set.max_pending_per_source = 2;
	for (int i = 0; i < 4; i++) {
		cl[i] = client_pair(&down[i]);
		c[i] = px_conn_new(&px, PX_IN, down[i]);
	}
	assert_true(px_pending_take(c[0], down[0]));
	assert_true(px_pending_take(c[1], down[1]));
	assert_false(px_pending_take(c[2], down[2]));  /* 127.0.0.1 holds two already */
	px_conn_close(c[0], false);
	assert_true(px_pending_take(c[2], down[2]));   /* the closed one freed its place */
	/* c[1] dials its app and relays: past detection, it no longer counts. */
	struct sockaddr_in sa;
	int sl = listen_any(&sa);
	memcpy(&c[1]->orig, &sa, sizeof(sa));
	c[1]->origlen = sizeof(sa);
	assert_int_equal(px_conn_dial(c[1], (struct sockaddr_storage *)&sa, sizeof(sa)), 0);
	int srv = accept(sl, NULL, NULL);
	int64_t end = pl_ev_now_update(px.loop) + (int64_t)WAIT_MS * 1000000;
	while (c[1]->state != PX_ST_RELAY && pl_ev_now_update(px.loop) < end)
		pl_ev_run_once(px.loop, 10 * 1000000);
	assert_int_equal(c[1]->state, PX_ST_RELAY);
	assert_true(px_pending_take(c[3], down[3]));
	px.set.max_pending_per_source = 0;             /* 0: no limit */
	int d5, c5 = client_pair(&d5);
	px_conn *x = px_conn_new(&px, PX_IN, d5);
	assert_true(px_pending_take(x, d5));
	px_conn_close(x, false);
	px_conn_close(c[1], false);
	px_conn_close(c[2], false);
	px_conn_close(c[3], false);
	assert_int_equal(px.nconns, 0);
	assert_null(pl_hmap_next(&px.pending, &(size_t){0}));  /* every count went with its connection */
	for (int i = 0; i < 4; i++)
		close(cl[i]);
	close(c5);
	close(srv);
	close(sl);
}

static void test_client_reset_during_connect(void **state)
{
	int down, cl = client_pair(&down);
	struct sockaddr_in nowhere = {.sin_family = AF_INET, .sin_port = htons(9)};
	(void)state;

	/* 198.18.255.254 (benchmark range): unroutable here, so the connect stays pending. */
	inet_pton(AF_INET, "198.18.255.254", &nowhere.sin_addr);
	/* Longer than the wait below: only the client's reset may close the connection. */
	px.set.connect_timeout_ns = 120000000000LL;
	px_conn *c = px_conn_new(&px, PX_OUT, down);
	memcpy(&c->orig, &nowhere, sizeof(nowhere));
	c->origlen = sizeof(nowhere);
	int r = px_conn_dial(c, (struct sockaddr_storage *)&nowhere, sizeof(nowhere));
	if (r < 0) { /* no route at all: the dial fails at once, which is fine too */
		px_conn_close(c, true);
		close(cl);
		return;
	}
	run_for(20);
	hard_close(cl);
	long cbs = run_until(no_conns);
	assert_true(cbs < SPIN_LIMIT);
	assert_int_equal(px.nconns, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reset_after_half_close_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_after_half_close_splice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_hangup_with_backpressure_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upstream_hangup_with_backpressure_splice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_record_then_small_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_hello_then_fin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_hello_outlives_detect_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_reset_during_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_per_source, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
