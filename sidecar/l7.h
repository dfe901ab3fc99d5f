/* The proxy's HTTP/1 layer: sessions (http.c), upstream pools (upstream.c), decisions per direction
 * (outbound.c, inbound.c) and labelled metrics (stats.c). */
#ifndef PILLION_SIDECAR_L7_H
#define PILLION_SIDECAR_L7_H

#include "base/buf.h"
#include "h1head.h"
#include "l7-t.h"
#include "proxy.h"

/* http.c: takes over c's downstream side (and its first bytes, unread) as an HTTP session; c is freed. */
void px_http_start(px_conn *c);
/* Looks at c's first bytes without taking them: 1 when they are HTTP/1 and an HTTP session took c
 * over (c is gone), 0 when not (relay c as bytes; also for a client that closed), -1 to wait for more. */
int px_http_try(px_conn *c, uint32_t ev);
uint32_t px_random(void);
uint64_t px_random64(void);
/* Upstream callbacks for the session a connection was dialled for. */
void px_http_up_ready(px_hs *hs);
void px_http_up_failed(px_hs *hs, int cause, const char *detail);
void px_http_up_event(px_hs *hs, uint32_t ev);
/* Draining: idle sessions close now, busy ones after their response. */
void px_http_drain(proxy *px);
void px_http_close_all(proxy *px);
void px_hbuf_free(proxy *px);


/* upstream.c */
px_pool *px_pool_get(proxy *px, int dir, const px_target *t);
/* Gives hs a connection: 1 when an idle one was taken (hs->up set, busy); 0 when one is being dialled
 * or hs waits for one (px_http_up_ready or px_http_up_failed follows); -1 when hs may not wait (the
 * pending limit): answer 503; -2 when the dial failed at once (*err: errno). max_conns, max_pending:
 * 0 is unlimited. */
int px_pool_acquire(px_pool *p, px_hs *hs, int max_conns, int max_pending, int *err);
/* Takes the socket (and TLS) out of u for a tunnel; u is freed. */
void px_up_detach(px_up *u, px_side *out);
/* The session is done with its connection: back to the pool when reuse is true, else closed. */
void px_up_release(px_up *u, bool reuse);
/* The session stops waiting for (or dialling) a connection. */
void px_pool_cancel(px_pool *p, px_hs *hs);
void px_pools_free(proxy *px);
/* Closes idle pooled connections (draining). */
void px_pools_close_idle(proxy *px);

/* A tunnel (after 101 Switching Protocols): down and up become a byte relay, with bytes already read
 * for each side queued first (at most the relay buffer size each). NULL when they do not fit. */
px_conn *px_conn_tunnel(proxy *px, int dir, px_side *down, px_side *up, const char *to_up, size_t nup,
			const char *to_down, size_t ndown);
/* Frees c but leaves its downstream socket (and TLS) open for a new owner. */
void px_conn_forget(px_conn *c);

/* accesslog.c: the JSON access log on stdout. */
void px_alog_init(proxy *px);
/* Writes what is queued, as far as stdout takes it now (the rest is tried again shortly). */
void px_alog_flush(proxy *px);
void px_alog_free(proxy *px);
/* Starts hs's line from the request head (before the head is rewritten). */
void px_alog_begin(px_req *rq, const pl_h1_msg *m, const pl_access_log *al, const char *trace_id);
void px_alog_upstream(px_req *rq, const struct sockaddr_storage *ss);
void px_alog_count(px_req *rq, bool response, size_t n);
/* The request is over: the line is completed and queued (unless its filter leaves it out). */
void px_alog_end(px_req *rq);
void px_alog_discard(px_req *rq);

/* stats.c */
void px_stats_init(proxy *px);
void px_stats_free(proxy *px);
/* The counter and histogram of requests under (direction, service, route, code). */
void px_stats_request_series(proxy *px, int dir, const char *service, const char *route, int code, uint64_t **ctr,
			     px_hist **hist);
void px_stats_observe(px_hist *h, int64_t ns);
/* +1 on a counter family with the given label text ("direction=\"outbound\",service=\"...\""). */
void px_stats_inc(proxy *px, enum px_fam f, const char *labels);
void px_stats_render(const proxy *px, pl_buf *b);
/* Runtime state by name, created zeroed on first use. */
px_rt *px_rt_get(proxy *px, const char *key);

#endif
