/* The proxy's HTTP/1 layer: sessions (http.c), upstream pools (upstream.c), decisions per direction
 * (outbound.c, inbound.c) and labelled metrics (stats.c). */
#ifndef PILLION_SIDECAR_L7_H
#define PILLION_SIDECAR_L7_H

#include "base/buf.h"
#include "h1head.h"
#include "l7-t.h"
#include "proxy.h"

/* http.c: HTTP/1 speaks on c's socket from now on (its first bytes, unread). */
extern const px_proto px_proto_h1;
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
/* The upstream of hs's exchange failed before its answer began (cause: enum px_cause): retried or
 * answered as after a failed connection. */
void px_http_up_error(px_hs *hs, int cause, const char *detail);
/* Draining: idle sessions close now, busy ones after their response. */
void px_http_drain(proxy *px);
void px_http_close_all(proxy *px);
void px_hbuf_free(proxy *px);


/* h2.c: HTTP/2 sessions. HTTP/2 speaks on c's socket from now on (its preface unread). */
extern const px_proto px_proto_h2;
void px_h2_start(px_conn *c);
/* Draining: every HTTP/2 client gets a GOAWAY; connections close once their streams are done. */
void px_h2_drain(proxy *px);
void px_h2_close_all(proxy *px);
void px_h2_free(proxy *px);
/* Whether the peer proxy at t (mTLS) chose ALPN pillion/h2, so HTTP/1 requests may ride HTTP/2 to
 * it. 0 while unknown: a connection is dialled to learn it, for the requests after this one. */
int px_h2_peer(proxy *px, int dir, const px_target *t, bool endpoint, px_mesh *mesh);
/* The same for HTTP/2 pools; and how many there are. */
void px_h2_sweep(proxy *px);
size_t px_h2_pools(const proxy *px);

/* h2bridge.c: the transport state of an HTTP/1 upstream riding a stream (px_xprt_h2); owned by u. */
px_h2b *px_h2b_new(proxy *px, px_up *u, int dir, const px_target *t, bool endpoint, px_mesh *mesh);
void px_h2b_free(px_h2b *b);

/* request.c: one request's policy, shared by HTTP/1 sessions and HTTP/2 streams. */
/* A request starts: counters reset, the proxy's current config and directory held. */
void px_req_begin(px_req *rq);
/* Lets go of what the request held (config, directory, its access log line unless ended). */
void px_req_clear(px_req *rq);
/* The direction's decision on the request, then trace context (tfield: a traceparent field to add,
 * or ""; *drop_trace: the request's own is invalid) and the access log line. 0, or the status the
 * proxy answers with (r says why). */
int px_req_policy(px_req *rq, const pl_h1_msg *m, pl_h1_str path, px_refusal *r, char tfield[80], bool *drop_trace);
/* The request is over: access log line and request metrics. */
void px_req_done(px_req *rq);
/* The proxy answers the request itself: counted and logged. */
void px_req_local(px_req *rq, int status, const px_refusal *r);
/* Whether a failure (cause, or an answer's status) may be retried now; counted against the budget. */
bool px_req_retry(px_req *rq, bool replayable, int cause, int status);
/* The outcome of one attempt for the backend's or endpoint's outlier detection. */
void px_req_outlier(px_req *rq, bool failure);
/* A connect or mTLS failure to a pod address: true when the request goes on, free, to another
 * endpoint (or the Service address); the endpoint leaves the rotation. */
bool px_req_unreachable(px_req *rq, bool replayable, int cause, const char *detail);
/* The bounds of rq's destination pool: its circuitBreaker's maxConnections and maxPending, or with
 * none --upstream-max-connections and PX_DEFAULT_MAX_PENDING (0: no bound). Returns the setting a
 * refusal for too many waiting requests names. */
const char *px_req_pool_limits(const px_req *rq, int *max_conns, int *max_pending);
const char *px_req_route_name(const px_req *rq);
const char *px_cause_word(int cause);

/* upstream.c */
/* A destination's pool key ("o|<ip>|<port>|t"): the HTTP/1 and HTTP/2 pools name one alike. */
void px_pool_key(int dir, const px_target *t, char key[PX_POOL_KEY]);
px_pool *px_pool_get(proxy *px, int dir, const px_target *t);
/* Gives hs a connection: 1 when an idle one was taken (hs->up set, busy); 0 when one is being dialled
 * or hs waits for one (px_http_up_ready or px_http_up_failed follows); -1 when hs may not wait (the
 * pending limit): answer 503; -2 when the dial failed at once (*err: errno). max_conns, max_pending:
 * 0 is unlimited. */
int px_pool_acquire(px_pool *p, px_hs *hs, int max_conns, int max_pending, int *err);
/* Frees the pools no connection, waiter or session uses (run now and then: addresses churn). */
void px_pools_sweep(proxy *px);
/* Takes the socket (and TLS) out of u for a tunnel; u is freed. */
void px_up_detach(px_up *u, px_side *out);
/* The session is done with its connection: back to the pool when reuse is true, else closed. */
void px_up_release(px_up *u, bool reuse);
/* The session stops waiting for (or dialling) a connection. */
void px_pool_cancel(px_pool *p, px_hs *hs);
void px_pools_free(proxy *px);
/* Closes idle pooled connections (draining). */
void px_pools_close_idle(proxy *px);

/* A tunnel (after 101 Switching Protocols): c's HTTP/1 handler gives way to the byte relay between
 * its socket and up (taken), with bytes already read for each side queued first (at most the relay
 * buffer size each). False, nothing taken, when they do not fit. */
bool px_conn_tunnel(px_conn *c, px_side *up, const char *to_up, size_t nup, const char *to_down, size_t ndown);

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
