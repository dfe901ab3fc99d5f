/* pillion-proxy wait: blocks until the local proxy's /ready answers 200 (a postStart hook). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/duration.h"
#include "proxy.h"

/* One GET /ready over HTTP/1.0: the status code, 0 when the proxy does not answer yet. */
static int probe_ready(int port, int64_t timeout_ns, char *why, size_t whylen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	static const char req[] = "GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	char resp[256];
	size_t got = 0;
	int code = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return 0;
	}
	struct timeval tv = {.tv_sec = timeout_ns / PL_NS_PER_S, .tv_usec = (timeout_ns % PL_NS_PER_S) / 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, whylen, "connect 127.0.0.1:%d: %s", port, strerror(errno));
		goto out;
	}
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
		snprintf(why, whylen, "send: %s", strerror(errno));
		goto out;
	}
	while (got < sizeof(resp) - 1) {
		ssize_t n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
		snprintf(why, whylen, "no HTTP status from 127.0.0.1:%d", port);
		code = 0;
	} else {
		/* The body of /ready says why it is not ready. */
		const char *body = strstr(resp, "\r\n\r\n");
		snprintf(why, whylen, "/ready: %d %.*s", code, body ? (int)strcspn(body + 4, "\r\n") : 0,
			 body ? body + 4 : "");
	}
out:
	close(fd);
	return code;
}

int px_wait_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"admin-port", required_argument, NULL, 'p'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int port = 15420, opt;
	int64_t timeout_ns = 120 * PL_NS_PER_S;
	char why[200] = "";

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 65535) {
				fprintf(stderr, "pillion-proxy wait: --admin-port: \"%s\": must be 1..65535\n", optarg);
				return 2;
			}
			port = (int)v;
			break;
		}
		case 't':
			if (pl_duration_parse(optarg, &timeout_ns) < 0 || timeout_ns <= 0) {
				fprintf(stderr, "pillion-proxy wait: --timeout: \"%s\": must be a positive duration such as 60s\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			printf("usage: pillion-proxy wait [--admin-port N] [--timeout DUR]\n\n"
			       "Polls http://127.0.0.1:PORT/ready every 100 ms until it answers 200 (exit 0) or the timeout\n"
			       "passes (exit 1). The injected proxy container runs it as its postStart hook where it is\n"
			       "a regular container, so the kubelet starts the app only once the proxy is ready.\n"
			       "  --admin-port N   the proxy's admin port (15420)\n"
			       "  --timeout DUR    give up after this long (120s)\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pillion-proxy wait: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	int64_t start = pl_mono_ns(), deadline = start + timeout_ns;
	for (;;) {
		int64_t left = deadline - pl_mono_ns();
		if (probe_ready(port, left < PL_NS_PER_S ? (left > 0 ? left : 1) : PL_NS_PER_S, why, sizeof(why)) == 200) {
			fprintf(stderr, "pillion-proxy wait: ready after %lld ms\n",
				(long long)((pl_mono_ns() - start) / PL_NS_PER_MS));
			return 0;
		}
		if (pl_mono_ns() + 100 * PL_NS_PER_MS >= deadline) {
			char d[32];
			pl_duration_format(timeout_ns, d, sizeof(d));
			fprintf(stderr, "pillion-proxy wait: not ready after %s (last: %s)\n", d, why);
			return 1;
		}
		struct timespec ts = {.tv_nsec = 100 * PL_NS_PER_MS};
		nanosleep(&ts, NULL);
	}
}
