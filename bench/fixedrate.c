/* fixedrate: a small open-loop HTTP/1.1 load generator for bench/run.sh.
 *
 * Requests are scheduled at a constant rate (a timerfd ticking every 1/RATE s),
 * independently of how fast responses come back, and sent over a fixed pool of
 * keep-alive connections (one request in flight per connection, no pipelining).
 * A request that finds every connection busy waits in a queue; its latency is
 * measured from its *scheduled* send time to the end of its response, so queueing
 * caused by a slow path is counted (no coordinated omission).
 *
 * Before the clock starts, each connection carries one unmeasured request, so lazy
 * set-up on the path (a proxy's upstream connection, its TLS handshake) is not
 * counted as request latency. Single thread, epoll, no allocation after start-up. Bounded in time: scheduling
 * stops after DURATION seconds, and whatever is still queued or in flight DRAIN
 * seconds later is counted as incomplete.
 *
 * usage: fixedrate -a ADDR -p PORT [-P PATH] [-H HOST] [-r RATE] [-d SECONDS]
 *                  [-c CONNS] [-t DRAIN_SECONDS]
 * prints one line: BENCH key=value ...  (latencies in microseconds)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RBUF 16384

enum cstate { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

struct conn {
	int fd;
	enum cstate st;
	uint64_t sched_ns; /* scheduled send time of the request in flight */
	size_t woff;       /* bytes of the request written so far */
	size_t rlen;
	uint64_t retry_ns; /* C_DOWN: when to reconnect */
	char rbuf[RBUF];
};

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static char g_req[1024];
static size_t g_reqlen;
static int g_ep;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* stats */
static uint64_t n_sent, n_ok, n_non2xx, n_sockerr, n_connerr, n_reconnects, n_warmfail;
static uint32_t *lat_us;
static uint64_t n_lat, lat_cap;

static void conn_close(struct conn *c, uint64_t retry_at)
{
	if (c->fd >= 0) {
		epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->st = C_DOWN;
	c->rlen = 0;
	c->woff = 0;
	c->retry_ns = retry_at;
}

static void conn_open(struct conn *c, size_t idx)
{
	int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->fd = fd;
	c->rlen = 0;
	c->woff = 0;
	if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) == 0) {
		c->st = C_IDLE;
	} else if (errno == EINPROGRESS) {
		c->st = C_CONNECTING;
	} else {
		n_connerr++;
		close(fd);
		c->fd = -1;
		c->st = C_DOWN;
		c->retry_ns = now_ns() + 50000000ull;
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
				  .data.u64 = idx };
	if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
}

/* Write as much of the request as the socket takes. 0 ok, -1 error. */
static int conn_write(struct conn *c)
{
	while (c->woff < g_reqlen) {
		ssize_t n = write(c->fd, g_req + c->woff, g_reqlen - c->woff);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	return 0;
}

/* Try to parse one complete response in c->rbuf.
 * Returns 1 complete (status in *status, *close_after), 0 need more, -1 bad. */
static int parse_response(struct conn *c, int *status, int *close_after)
{
	char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
	if (!end)
		return c->rlen >= RBUF ? -1 : 0;
	size_t hlen = (size_t)(end - c->rbuf) + 4;
	if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(c->rbuf + 9);
	*close_after = 0;
	long clen = -1;
	/* headers: walk lines */
	char *p = memchr(c->rbuf, '\n', hlen);
	while (p && (size_t)(p + 1 - c->rbuf) < hlen) {
		char *line = p + 1;
		char *eol = memchr(line, '\n', hlen - (size_t)(line - c->rbuf));
		if (!eol)
			break;
		if (strncasecmp(line, "content-length:", 15) == 0)
			clen = strtol(line + 15, NULL, 10);
		else if (strncasecmp(line, "connection:", 11) == 0) {
			const char *v = line + 11;
			while (*v == ' ')
				v++;
			if (strncasecmp(v, "close", 5) == 0)
				*close_after = 1;
		} else if (strncasecmp(line, "transfer-encoding:", 18) == 0)
			return -1; /* the bench app never sends chunked bodies */
		p = eol;
	}
	if (clen < 0 || hlen + (size_t)clen > RBUF)
		return -1;
	if (c->rlen < hlen + (size_t)clen)
		return 0;
	if (c->rlen != hlen + (size_t)clen)
		return -1; /* bytes after the response: not HTTP we asked for */
	return 1;
}

/* One unmeasured request on a fresh connection, so that whatever the path sets up
 * lazily (a proxy's upstream connection, a TLS handshake) is done before the clock
 * starts. Blocking (poll), at most 5 s. 0 ok, -1 failed. */
static int warm_conn(struct conn *c)
{
	uint64_t deadline = now_ns() + 5000000000ull;
	c->woff = 0;
	c->rlen = 0;
	while (now_ns() < deadline) {
		struct pollfd pfd = { .fd = c->fd, .events = c->woff < g_reqlen ? POLLOUT : POLLIN };
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			return -1;
		if (c->woff < g_reqlen) {
			if (conn_write(c) < 0)
				return -1;
			continue;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (r > 0)
			c->rlen += (size_t)r;
		int status, close_after;
		int pr = parse_response(c, &status, &close_after);
		if (pr < 0 || (pr == 1 && close_after))
			return -1;
		if (pr == 1) {
			c->rlen = 0;
			return 0;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *addr = NULL, *path = "/", *host = NULL;
	int port = 0, conns = 16, opt;
	double rate = 2000, duration = 10, drain = 5;
	while ((opt = getopt(argc, argv, "a:p:P:H:r:d:c:t:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'H': host = optarg; break;
		case 'r': rate = atof(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'c': conns = atoi(optarg); break;
		case 't': drain = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s -a ADDR -p PORT [-P PATH] [-H HOST] [-r RATE] "
					"[-d SECONDS] [-c CONNS] [-t DRAIN_SECONDS]\n", argv[0]);
			return 2;
		}
	}
	if (!addr || port <= 0 || port > 65535 || rate <= 0 || rate > 1e6 || duration <= 0 ||
	    duration > 3600 || conns <= 0 || conns > 10000 || drain < 0 || drain > 600) {
		fprintf(stderr, "fixedrate: bad or missing arguments (see -h)\n");
		return 2;
	}
	memset(&g_addr, 0, sizeof g_addr);
	struct sockaddr_in *a4 = (struct sockaddr_in *)&g_addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&g_addr;
	if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		g_addrlen = sizeof *a4;
	} else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		g_addrlen = sizeof *a6;
	} else {
		fprintf(stderr, "fixedrate: -a must be a numeric IPv4 or IPv6 address\n");
		return 2;
	}
	int rl = snprintf(g_req, sizeof g_req,
			  "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pillion-bench-fixedrate\r\n\r\n",
			  path, host ? host : addr);
	if (rl < 0 || (size_t)rl >= sizeof g_req) {
		fprintf(stderr, "fixedrate: request too long\n");
		return 2;
	}
	g_reqlen = (size_t)rl;

	uint64_t total = (uint64_t)(rate * duration + 0.5);
	uint64_t interval_ns = (uint64_t)(1e9 / rate);
	if (interval_ns == 0)
		interval_ns = 1;
	lat_cap = total;
	lat_us = calloc(total ? total : 1, sizeof *lat_us);
	uint64_t *queue = calloc(total ? total : 1, sizeof *queue); /* scheduled times, FIFO */
	struct conn *cs = calloc((size_t)conns, sizeof *cs);
	if (!lat_us || !queue || !cs)
		die("calloc");
	uint64_t qhead = 0, qtail = 0;
	size_t rr = 0; /* round-robin start of the search for an idle connection */

	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0)
		die("epoll_create1");
	for (int i = 0; i < conns; i++) {
		cs[i].fd = -1;
		conn_open(&cs[i], (size_t)i);
	}
	/* Wait (at most 5 s) for the pool to connect before the clock starts. */
	{
		uint64_t deadline = now_ns() + 5000000000ull;
		struct epoll_event evs[256];
		for (;;) {
			int up = 0;
			uint64_t t = now_ns();
			for (int i = 0; i < conns; i++) {
				up += cs[i].st == C_IDLE;
				if (cs[i].st == C_DOWN && cs[i].retry_ns <= t)
					conn_open(&cs[i], (size_t)i);
			}
			if (up == conns || t > deadline)
				break;
			int n = epoll_wait(g_ep, evs, 256, 50);
			for (int k = 0; k < n; k++) {
				struct conn *c = &cs[evs[k].data.u64];
				if (c->st != C_CONNECTING)
					continue;
				int err = 0;
				socklen_t el = sizeof err;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || (evs[k].events & (EPOLLERR | EPOLLHUP))) {
					n_connerr++;
					conn_close(c, now_ns() + 50000000ull);
				} else if (evs[k].events & EPOLLOUT) {
					c->st = C_IDLE;
				}
			}
		}
		for (int i = 0; i < conns; i++) {
			if (cs[i].st == C_IDLE && warm_conn(&cs[i]) < 0) {
				n_warmfail++;
				conn_close(&cs[i], 0);
			}
		}
	}

	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tfd < 0)
		die("timerfd_create");
	const uint64_t TIMER_TAG = UINT64_MAX;
	struct epoll_event tev = { .events = EPOLLIN, .data.u64 = TIMER_TAG };
	if (epoll_ctl(g_ep, EPOLL_CTL_ADD, tfd, &tev) < 0)
		die("epoll_ctl timer");
	uint64_t start = now_ns();
	struct itimerspec its = {
		.it_interval = { .tv_sec = (time_t)(interval_ns / 1000000000ull),
				 .tv_nsec = (long)(interval_ns % 1000000000ull) },
		.it_value = { .tv_sec = 0, .tv_nsec = 1 },
	};
	if (timerfd_settime(tfd, 0, &its, NULL) < 0)
		die("timerfd_settime");
	uint64_t scheduled = 0;
	uint64_t sched_end = start + (uint64_t)(duration * 1e9);
	uint64_t hard_end = sched_end + (uint64_t)(drain * 1e9);
	struct epoll_event evs[256];

	for (;;) {
		uint64_t now = now_ns();
		/* dispatch queued requests onto idle connections */
		while (qhead < qtail) {
			struct conn *c = NULL;
			for (int i = 0; i < conns && !c; i++) {
				size_t j = (rr + (size_t)i) % (size_t)conns;
				if (cs[j].st == C_IDLE) {
					c = &cs[j];
					rr = j + 1;
				}
			}
			if (!c)
				break;
			c->sched_ns = queue[qhead++];
			c->st = C_BUSY;
			c->woff = 0;
			c->rlen = 0;
			n_sent++;
			if (conn_write(c) < 0) {
				n_sockerr++;
				conn_close(c, now);
			}
		}
		/* reconnect dead connections whose back-off has passed */
		for (int i = 0; i < conns; i++) {
			if (cs[i].st == C_DOWN && cs[i].retry_ns <= now) {
				n_reconnects++;
				conn_open(&cs[i], (size_t)i);
			}
		}
		int busy = 0;
		for (int i = 0; i < conns; i++)
			busy += cs[i].st == C_BUSY;
		if (scheduled >= total && qhead == qtail && busy == 0)
			break;
		if (now >= hard_end)
			break;
		int n = epoll_wait(g_ep, evs, 256, 10);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		now = now_ns();
		for (int k = 0; k < n; k++) {
			if (evs[k].data.u64 == TIMER_TAG) {
				uint64_t exp;
				if (read(tfd, &exp, sizeof exp) != (ssize_t)sizeof exp)
					continue;
				/* enqueue every request whose scheduled time has come */
				while (scheduled < total) {
					uint64_t t = start + scheduled * interval_ns;
					if (t > now || t >= sched_end)
						break;
					queue[qtail++] = t;
					scheduled++;
				}
				if (scheduled < total && start + scheduled * interval_ns >= sched_end)
					total = scheduled; /* rounding: the window is over */
				if (scheduled >= total) {
					struct itimerspec off = { 0 };
					timerfd_settime(tfd, 0, &off, NULL);
				}
				continue;
			}
			size_t idx = (size_t)evs[k].data.u64;
			struct conn *c = &cs[idx];
			uint32_t e = evs[k].events;
			if (c->st == C_CONNECTING) {
				int err = 0;
				socklen_t el = sizeof err;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || (e & (EPOLLERR | EPOLLHUP))) {
					n_connerr++;
					conn_close(c, now + 50000000ull);
				} else if (e & EPOLLOUT) {
					c->st = C_IDLE;
				}
				continue;
			}
			if (c->st == C_BUSY && (e & EPOLLOUT) && c->woff < g_reqlen) {
				if (conn_write(c) < 0) {
					n_sockerr++;
					conn_close(c, now);
					continue;
				}
			}
			if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
				int closed = 0;
				for (;;) {
					if (c->rlen >= RBUF)
						break;
					ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
					if (r > 0) {
						c->rlen += (size_t)r;
						continue;
					}
					if (r < 0 && errno == EINTR)
						continue;
					if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
						break;
					closed = 1; /* EOF or error */
					break;
				}
				if (c->st == C_BUSY && c->rlen > 0) {
					int status = 0, close_after = 0;
					int pr = parse_response(c, &status, &close_after);
					if (pr == 1) {
						uint64_t lat = (now - c->sched_ns) / 1000u;
						if (n_lat < lat_cap)
							lat_us[n_lat++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
						if (status >= 200 && status <= 299)
							n_ok++;
						else
							n_non2xx++;
						c->rlen = 0;
						if (close_after || closed) {
							conn_close(c, now);
						} else {
							c->st = C_IDLE;
						}
						continue;
					}
					if (pr < 0) {
						n_sockerr++;
						conn_close(c, now);
						continue;
					}
				}
				if (closed) {
					if (c->st == C_BUSY)
						n_sockerr++;
					/* idle keep-alive closed by the peer: reconnect quietly */
					conn_close(c, now + (c->st == C_BUSY ? 10000000ull : 0));
				}
			}
		}
	}
	uint64_t end = now_ns();
	uint64_t busy_end = 0;
	for (int i = 0; i < conns; i++)
		busy_end += cs[i].st == C_BUSY;
	uint64_t incomplete = (qtail - qhead) + busy_end + (total - scheduled);

	qsort(lat_us, n_lat, sizeof *lat_us, cmp_u32);
#define PCT(p) (n_lat ? lat_us[(size_t)((double)(n_lat - 1) * (p) / 100.0 + 0.5)] : 0)
	double elapsed = (double)(end - start) / 1e9;
	double window = duration < elapsed ? duration : elapsed;
	printf("BENCH target_rate=%.0f duration_s=%.3f conns=%d scheduled=%" PRIu64
	       " sent=%" PRIu64 " ok=%" PRIu64 " non2xx=%" PRIu64 " sockerr=%" PRIu64
	       " connerr=%" PRIu64 " warmfail=%" PRIu64 " incomplete=%" PRIu64 " reconnects=%" PRIu64
	       " achieved_rps=%.1f p50_us=%u p90_us=%u p99_us=%u p999_us=%u max_us=%u\n",
	       rate, elapsed, conns, scheduled, n_sent, n_ok, n_non2xx, n_sockerr, n_connerr,
	       n_warmfail, incomplete, n_reconnects, (double)n_ok / window, PCT(50), PCT(90), PCT(99),
	       PCT(99.9), n_lat ? lat_us[n_lat - 1] : 0);
	return 0;
}
