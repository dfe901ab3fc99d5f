/* Test helper: a small threaded HTTP/1.1 server that replays scripted responses (status, headers, body chunks with delays, cuts). */
#include "replay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 8
#define MAX_REQS 64

typedef struct conn {
	int fd;
	char *buf;
	size_t len, cap;
} conn;

struct rp_server {
	const rp_response *script;
	size_t n;
	int lfd;
	int stop_pipe[2];
	char url[64];
	pthread_t thread;
	pthread_mutex_t mu;
	conn conns[MAX_CONNS];
	rp_request reqs[MAX_REQS];
	int nreqs;
	int accepts;
	size_t next;
};

/* Waits ms unless the server is stopping; false when stopping. */
static bool nap(rp_server *s, int ms)
{
	struct pollfd p = {.fd = s->stop_pipe[0], .events = POLLIN};

	if (ms <= 0)
		return true;
	return poll(&p, 1, ms) == 0;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void close_conn(conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
	c->len = c->cap = 0;
}

static void header_value(const char *hdrs, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);

	out[0] = '\0';
	for (const char *p = hdrs; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *e = strstr(v, "\r\n");
			while (*v == ' ')
				v++;
			size_t n = e ? (size_t)(e - v) : strlen(v);
			if (n >= size)
				n = size - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			return;
		}
	}
}

/* Answers one request with the next scripted response; returns false when the connection is done. */
static bool respond(rp_server *s, conn *c, const rp_response *r)
{
	char head[1024];

	if (!r) {
		static const char nope[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 18\r\n\r\nscript exhausted\r\n";
		send_all(c->fd, nope, sizeof(nope) - 1);
		return true;
	}
	if (r->status == 0)
		return false;
	if (r->chunks[0].data) {
		snprintf(head, sizeof(head), "HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n%s\r\n",
			 r->status, r->headers ? r->headers : "");
		send_all(c->fd, head, strlen(head));
		for (int i = 0; i < RP_MAX_CHUNKS && r->chunks[i].data; i++) {
			char sz[32];
			size_t n = strlen(r->chunks[i].data);
			if (!nap(s, r->chunks[i].delay_ms))
				return false;
			snprintf(sz, sizeof(sz), "%zx\r\n", n);
			send_all(c->fd, sz, strlen(sz));
			send_all(c->fd, r->chunks[i].data, n);
			send_all(c->fd, "\r\n", 2);
		}
		if (!nap(s, r->hold_ms) || r->cut)
			return false;
		send_all(c->fd, "0\r\n\r\n", 5);
		return true;
	}
	size_t blen = r->body ? strlen(r->body) : 0;
	snprintf(head, sizeof(head), "HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
		 r->status, blen, r->headers ? r->headers : "");
	send_all(c->fd, head, strlen(head));
	if (r->cut) {
		/* Half the body, then gone. */
		send_all(c->fd, r->body, blen / 2);
		return false;
	}
	send_all(c->fd, r->body ? r->body : "", blen);
	return true;
}

/* Handles every complete request buffered on c; false when the connection should close. */
static bool serve(rp_server *s, conn *c)
{
	for (;;) {
		char *end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		char cl[32];
		if (!end)
			return true;
		size_t hlen = (size_t)(end - c->buf) + 4;
		char *hdrs = strndup(c->buf, hlen);
		header_value(strstr(hdrs, "\r\n") + 2, "Content-Length", cl, sizeof(cl));
		size_t blen = cl[0] ? strtoul(cl, NULL, 10) : 0;
		if (c->len < hlen + blen) {
			free(hdrs);
			return true;
		}
		pthread_mutex_lock(&s->mu);
		const rp_response *r = s->next < s->n ? &s->script[s->next] : NULL;
		s->next++;
		if (s->nreqs < MAX_REQS) {
			rp_request *q = &s->reqs[s->nreqs++];
			sscanf(hdrs, "%15s %2047s", q->method, q->target);
			header_value(strstr(hdrs, "\r\n") + 2, "Authorization", q->authorization, sizeof(q->authorization));
			header_value(strstr(hdrs, "\r\n") + 2, "Content-Type", q->content_type, sizeof(q->content_type));
			q->body = strndup(c->buf + hlen, blen);
			q->body_len = blen;
		}
		pthread_mutex_unlock(&s->mu);
		free(hdrs);
		memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
		c->len -= hlen + blen;
		if (!respond(s, c, r))
			return false;
	}
}

static void *run(void *arg)
{
	rp_server *s = arg;

	for (;;) {
		struct pollfd p[MAX_CONNS + 2];
		int np = 0, idx[MAX_CONNS];
		p[np++] = (struct pollfd){.fd = s->stop_pipe[0], .events = POLLIN};
		p[np++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
		for (int i = 0; i < MAX_CONNS; i++) {
			if (s->conns[i].fd >= 0) {
				idx[np - 2] = i;
				p[np++] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
			}
		}
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd = accept(s->lfd, NULL, NULL);
			if (fd >= 0) {
				pthread_mutex_lock(&s->mu);
				s->accepts++;
				pthread_mutex_unlock(&s->mu);
			}
			for (int i = 0; fd >= 0 && i < MAX_CONNS; i++) {
				if (s->conns[i].fd < 0) {
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					s->conns[i].fd = fd;
					fd = -1;
				}
			}
			if (fd >= 0)
				close(fd);
		}
		for (int j = 2; j < np; j++) {
			conn *c = &s->conns[idx[j - 2]];
			if (!p[j].revents)
				continue;
			if (c->cap - c->len < 4096) {
				c->cap = c->cap ? c->cap * 2 : 8192;
				c->buf = realloc(c->buf, c->cap);
			}
			ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
			if (n <= 0) {
				close_conn(c);
				continue;
			}
			c->len += (size_t)n;
			if (!serve(s, c))
				close_conn(c);
		}
	}
	for (int i = 0; i < MAX_CONNS; i++)
		close_conn(&s->conns[i]);
	return NULL;
}

rp_server *rp_start(const rp_response *script, size_t n)
{
	rp_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	s->script = script;
	s->n = n;
	for (int i = 0; i < MAX_CONNS; i++)
		s->conns[i].fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	if (pipe(s->stop_pipe) != 0)
		abort();
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->lfd, 16) != 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &alen) != 0)
		abort();
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	if (pthread_create(&s->thread, NULL, run, s) != 0)
		abort();
	return s;
}

const char *rp_url(const rp_server *s)
{
	return s->url;
}

int rp_count(rp_server *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->nreqs;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int rp_accepts(rp_server *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->accepts;
	pthread_mutex_unlock(&s->mu);
	return n;
}

const rp_request *rp_req(rp_server *s, int i)
{
	return i >= 0 && i < rp_count(s) ? &s->reqs[i] : NULL;
}

void rp_stop(rp_server *s)
{
	if (write(s->stop_pipe[1], "x", 1) != 1)
		abort();
	pthread_join(s->thread, NULL);
	close(s->lfd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	for (int i = 0; i < s->nreqs; i++)
		free(s->reqs[i].body);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
