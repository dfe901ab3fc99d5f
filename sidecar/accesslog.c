/*
 * The JSON access log: one object per line on stdout, for requests whose TrafficPolicy switches it on.
 * Lines are queued and written between turns of the event loop. A full pipe (a slow log collector)
 * never stalls the proxy: beyond a cap, lines are dropped and counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http1/http1.h"
#include "l7.h"

#define ALOG_MAX_QUEUED (4u << 20)
#define ALOG_RETRY_NS (50 * 1000000LL)
#define ALOG_MAX_FIELD 2048

struct px_alog_req {
	pl_buf line;                /* the object so far: what the request head said */
	bool errors_only;
	char upstream[64];          /* the address of the last attempt */
	uint64_t req_bytes, resp_bytes;
};

static void flush_cb(pl_ev_loop *loop, void *data)
{
	(void)loop;
	px_alog_flush(data);
}

void px_alog_init(proxy *px)
{
	struct stat st;

	pl_ev_timer_init(&px->alog_timer, flush_cb, px);
	px->alog_fd = STDOUT_FILENO;
	/* A pipe gets its own open file description, non-blocking, so the flag does not leak to whoever
	 * shares the pipe. Files and terminals take writes at once anyway. */
	if (fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode)) {
		int fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			px->alog_fd = fd;
	}
}

void px_alog_flush(proxy *px)
{
	pl_buf *q = &px->alog_out;
	size_t off = 0;

	while (off < q->len) {
		ssize_t w = write(px->alog_fd, q->data + off, q->len - off);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		break;
	}
	if (off) {
		memmove(q->data, q->data + off, q->len - off);
		q->len -= off;
	}
	if (q->len && !pl_ev_timer_armed(&px->alog_timer))
		pl_ev_timer_start(px->loop, &px->alog_timer, ALOG_RETRY_NS);
}

void px_alog_free(proxy *px)
{
	/* At exit the queue is written whole: the description is ours, blocking again. */
	if (px->alog_fd != STDOUT_FILENO)
		fcntl(px->alog_fd, F_SETFL, 0);
	px_alog_flush(px);
	pl_ev_timer_stop(px->loop, &px->alog_timer);
	pl_buf_free(&px->alog_out);
	if (px->alog_fd != STDOUT_FILENO && px->alog_fd >= 0)
		close(px->alog_fd);
}

static void key(pl_buf *b, const char *k)
{
	pl_buf_append(b, ",\"", 2);
	pl_buf_puts(b, k);
	pl_buf_append(b, "\":", 2);
}

static void str_field(pl_buf *b, const char *k, const char *v, size_t n)
{
	key(b, k);
	if (!v) {
		pl_buf_puts(b, "null");
		return;
	}
	pl_buf_json_str(b, v, n > ALOG_MAX_FIELD ? ALOG_MAX_FIELD : n);
}

static void cstr_field(pl_buf *b, const char *k, const char *v) { str_field(b, k, v, v ? strlen(v) : 0); }

static void span_field(pl_buf *b, const char *k, const pl_h1_header *h)
{
	str_field(b, k, h ? h->value.p : NULL, h ? h->value.len : 0);
}

static void num_field(pl_buf *b, const char *k, unsigned long long v)
{
	char n[24];

	key(b, k);
	pl_buf_append(b, n, (size_t)snprintf(n, sizeof(n), "%llu", v));
}

void px_alog_begin(px_req *rq, const pl_h1_msg *m, const pl_access_log *al, const char *trace_id)
{
	struct px_alog_req *a = calloc(1, sizeof(*a));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ts[48], addr[64];
	struct timespec now;
	struct tm tm;

	if (!a)
		abort();
	a->errors_only = al->filter == PL_LOG_ERRORS;
	rq->alog = a;
	pl_buf *b = &a->line;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);
	pl_buf_puts(b, "{\"start_time\":\"");
	pl_buf_puts(b, ts);
	pl_buf_puts(b, "\"");
	cstr_field(b, "direction", px_dirs[rq->dir]->name);
	cstr_field(b, "service", rq->service);
	cstr_field(b, "policy", rq->op ? rq->op->policy : rq->ip ? rq->ip->policy : NULL);
	cstr_field(b, "route", rq->route ? rq->route->name : NULL);
	str_field(b, "method", m->method.p, m->method.len);
	str_field(b, "path", m->target.p, m->target.len);
	str_field(b, "authority", m->host.p, m->host.len);
	cstr_field(b, "protocol", rq->h2 ? "HTTP/2" : m->minor == 0 ? "HTTP/1.0" : "HTTP/1.1");
	span_field(b, "user_agent", pl_h1_find(m, "user-agent"));
	span_field(b, "request_id", pl_h1_find(m, "x-request-id"));
	cstr_field(b, "trace_id", trace_id && *trace_id ? trace_id : NULL);
	if (getpeername(rq->down_fd, (struct sockaddr *)&ss, &sl) == 0)
		cstr_field(b, "source", px_addr_str(&ss, addr, sizeof(addr)));
	else
		cstr_field(b, "source", NULL);
	/* Inbound: who called, as mTLS proved it (null for a plaintext caller). */
	if (px_dirs[rq->dir]->http->client_identity)
		cstr_field(b, "client_identity", rq->peer_id);
}

void px_alog_upstream(px_req *rq, const struct sockaddr_storage *ss)
{
	px_addr_str(ss, rq->alog->upstream, sizeof(rq->alog->upstream));
}

void px_alog_count(px_req *rq, bool response, size_t n)
{
	if (response)
		rq->alog->resp_bytes += n;
	else
		rq->alog->req_bytes += n;
}

void px_alog_end(px_req *rq)
{
	proxy *px = rq->px;
	struct px_alog_req *a = rq->alog;
	pl_buf *b = &a->line;
	char lbl[32], d[32];

	rq->alog = NULL;
	if (a->errors_only && rq->status != 0 && rq->status < 400 && !rq->local_cause)
		goto done;
	if (rq->status) {
		num_field(b, "status", (unsigned)rq->status);
	} else {
		key(b, "status");
		pl_buf_puts(b, "null");
	}
	if (rq->h2 && rq->grpc_status >= 0)
		num_field(b, "grpc_status", (unsigned)rq->grpc_status);
	cstr_field(b, "proxy_error", rq->local_cause);
	cstr_field(b, "backend", rq->backend);
	cstr_field(b, "upstream", a->upstream[0] ? a->upstream : NULL);
	num_field(b, "attempts", (unsigned)rq->attempts);
	num_field(b, "request_bytes", a->req_bytes);
	num_field(b, "response_bytes", a->resp_bytes);
	key(b, "duration_ms");
	pl_buf_append(b, d, (size_t)snprintf(d, sizeof(d), "%.3f", (double)(pl_ev_now(px->loop) - rq->t_start) / 1e6));
	pl_buf_append(b, "}\n", 2);
	bool keep = px->alog_out.len + b->len <= ALOG_MAX_QUEUED;
	if (keep)
		pl_buf_append(&px->alog_out, b->data, b->len);
	snprintf(lbl, sizeof(lbl), "result=\"%s\"", keep ? "queued" : "dropped");
	px_stats_inc(px, PX_F_ACCESS_LOG, lbl);
done:
	pl_buf_free(b);
	free(a);
}

void px_alog_discard(px_req *rq)
{
	if (!rq->alog)
		return;
	pl_buf_free(&rq->alog->line);
	free(rq->alog);
	rq->alog = NULL;
}
