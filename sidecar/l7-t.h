/* Types of the proxy's HTTP/1 layer: downstream sessions, upstream connection pools, per-policy runtime state, L7 metrics. */
#ifndef PILLION_SIDECAR_L7_T_H
#define PILLION_SIDECAR_L7_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/bucket.h"
#include "base/hmap.h"
#include "http1/http1-t.h"
#include "policy.h"
#include "proxy-t.h"

/* A whole head (32 KiB at most) plus room for a small body: requests that fit are replayable. */
#define PX_HBUF (PL_H1_DEFAULT_MAX_HEAD + 16384)

/* Metrics with labels: one family, its series by label text. */
#define PX_LAT_BUCKETS 15
typedef struct px_hist {
	uint64_t b[PX_LAT_BUCKETS];
	uint64_t count;
	double sum;
} px_hist;

typedef struct px_hs px_hs;
typedef struct px_req px_req;
typedef struct px_up px_up;
typedef struct px_pool px_pool;
typedef struct px_h2b px_h2b;

enum px_up_state { PX_UP_CONNECT, PX_UP_HANDSHAKE, PX_UP_IDLE, PX_UP_BUSY };

/* One upstream connection: dialled for a session, then kept in its pool between requests. */
struct px_up {
	proxy *px;
	px_pool *pool;
	px_side s;
	int state;
	bool reused;                /* served an earlier request: a failure before any answer may be a stale close */
	pl_ev_timer timer;          /* connect, handshake or idle timeout */
	px_hs *hs;                  /* the session it serves or is dialled for */
	px_up *prev, *next;         /* the pool's idle list */
	int64_t idle_since;
};

#define PX_POOL_KEY 80

/* Requests that may wait for a connection to one destination whose policy sets no circuitBreaker
 * (its connections are bounded by --upstream-max-connections): Envoy's default threshold. */
#define PX_DEFAULT_MAX_PENDING 1024

/* Every connection to one destination (address, port, mTLS or not). */
struct px_pool {
	char key[PX_POOL_KEY];
	int dir;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tls;
	px_up *idle;
	uint32_t nidle, nconns;     /* nconns: open, idle, busy or dialling */
	px_hs *wait_head, *wait_tail; /* sessions waiting for a connection (max connections reached) */
	uint32_t nwait;
	uint32_t users;             /* sessions holding it as their request's pool (px_hs.pool) */
};

/* Where one attempt goes. */
/* Connect failures to pod addresses that go on to the next endpoint before the Service address. */
#define PX_ENDPOINT_FREE_RETRIES 2

typedef struct px_target {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tls;
	const char *backend;        /* "namespace/name", or NULL: the destination the caller dialled */
} px_target;

/* Why the proxy answers a request itself. */
typedef struct px_refusal {
	const char *cause;          /* short, for the pillion-proxy-error field and the metric label */
	char msg[512];              /* for the body */
	int64_t retry_after_s;      /* 429: Retry-After */
} px_refusal;

/* A direction's part in an HTTP session (px_dir_ops.http). */
struct px_dir_http {
	/* The request's policy: 0 to go on, or the status the proxy answers with (r says why). */
	int (*request)(px_req *rq, const pl_h1_msg *m, pl_h1_str path, px_refusal *r);
	/* Where this attempt goes: 0, or the status the proxy answers with. */
	int (*target)(px_req *rq, px_target *t, px_refusal *r);
	bool peer_unsent;           /* a peer proxy's "connect failure" 503 means not sent: retried free */
	bool strips_own;            /* the app's answers lose the proxy's own fields (pillion-proxy-error) */
	bool client_identity;       /* the access log names the caller's identity */
};

/* Runtime state that outlives a config reload, found by name (policy, route, backend, port). */
typedef struct px_rt {
	const char *key;            /* e.g. "ep|<address>|<port>" for an endpoint */
	px_retry_budget budget;
	int budget_key[2];          /* the parameters budget was set up with */
	px_outlier outlier;
	uint32_t rr;                /* round robin over a Service's endpoints */
	pl_bucket bucket;
	double bucket_key[2];
} px_rt;

enum px_hs_state {
	PX_HS_HEAD,                 /* waiting for (the rest of) a request head */
	PX_HS_DELAY,                /* fault injection: holding the request */
	PX_HS_WAIT,                 /* waiting for an upstream connection */
	PX_HS_EXCHANGE,             /* request and response flowing */
	PX_HS_LOCAL,                /* writing a response of the proxy's own */
};

/* One request's policy and where it went: shared by HTTP/1 sessions and HTTP/2 streams, and the only
 * thing the directions' HTTP hooks, the access log and the request metrics see. */
struct px_req {
	proxy *px;
	int dir;
	int down_fd;                /* the downstream socket (the access log's client address) */
	bool h2;                    /* an HTTP/2 stream (else an HTTP/1 request) */
	int grpc_status;            /* HTTP/2: a gRPC call's grpc-status, -1 when none (the access log) */
	struct sockaddr_storage orig;
	socklen_t origlen;
	const char *peer_id;        /* inbound mTLS: the caller's SPIFFE ID (owned by the connection); NULL for plaintext */
	px_config *cfg;             /* held while a request is in flight */
	px_mesh *mesh;
	int64_t deadline, try_deadline, t_start;

	const pl_outbound_policy *op;
	const pl_route *route;
	const pl_inbound_policy *ip;
	px_rt *budget_rt;
	px_rt *outlier_rt;          /* the backend or endpoint of the current attempt */
	const pl_circuit_breaker *ocb; /* the ejection rules for outlier_rt */
	const char *backend;
	int attempts;
	bool stale_retried;
	bool endpoint;              /* the attempt went to a pod address from the mesh directory */
	int connect_retries;        /* connect failures to endpoints retried on another one, free */
	bool via_service;           /* endpoints failed to connect: this attempt dials the Service address */
	int64_t fault_delay_ns;
	int fault_abort;
	const char *service;        /* "namespace/name" of the destination Service, or "" (held config or mesh) */
	const pl_mesh_service *dest_svc; /* outbound: the dialled Service in the held mesh, or NULL */
	bool dest_tls;              /* outbound: the dialled destination is sent mTLS */
	int status;
	const char *local_cause;    /* the proxy answered itself: why */
	struct px_alog_req *alog;   /* the access log line of this request, when its policy wants one */
	/* the request counter and histogram of the last request, reused while nothing changed */
	uint64_t stat_gen;
	const void *stat_route;
	int stat_code;
	uint64_t *stat_ctr;
	px_hist *stat_hist;
};

/* One downstream HTTP/1 connection: the app (outbound) or a caller (inbound). One request at a time;
 * pipelined requests wait in the buffer, so responses keep their order. */
struct px_hs {
	proxy *px;
	int dir;
	int state;
	px_conn *c;                 /* the connection it speaks on (px_proto_h1) */
	px_side *down;              /* its socket: &c->down */
	px_req rq;                  /* the request in flight (its policy state) */
	bool down_rd, up_rd;        /* the last poll said readable */
	pl_ev_timer timer;          /* deadlines, fault delay */
	pl_ev_timer idle_timer;     /* idle and slow-head timeouts, checked lazily: no timer work per request */
	int64_t last_active, head_started;
	int64_t last_io;            /* the loop's time of the last event on either socket */
	bool down_eof;              /* the client half-closed after its request */

	/* downstream bytes: [0, in_len) of in; the current request's head starts at 0 */
	char *in;
	uint32_t in_len;
	uint32_t head_len;          /* raw request head */
	uint32_t head_seen;         /* bytes of in already known not to hold a whole head */
	uint32_t req_start;         /* where the head as sent upstream starts in in (rewritten in place) */
	uint32_t rq_pos, rq_end;    /* request body bytes in in: [rq_pos, rq_end) still to send */
	bool discarded;             /* body bytes were dropped after sending: no replay */
	bool req_read_done, req_sent;
	pl_h1_body_rd req_rd;       /* where the request body ends */
	enum pl_h1_method method;
	int minor;
	bool req_keep_alive, expect, upgrade;
	char *uhead;                /* the request head as sent upstream */
	uint32_t uhead_len, uhead_off;


	/* upstream and response */
	px_pool *pool;
	px_up *up;
	px_hs *wait_next;
	char *rin;
	uint32_t rin_len, rs_pos, rs_end;
	bool resp_head, resp_any;
	uint8_t interims;           /* 1xx answers passed on for this attempt */
	pl_h1_body_rd resp_rd;      /* where the response ends (resp_rd.done: it did) */
	bool up_reusable;
	bool close_after;           /* the downstream connection ends after this response */
	char *dhead;                /* response head (or a whole local response) for downstream */
	uint32_t dhead_len, dhead_off;

	px_hs *prev, *next;
};

typedef struct px_family {
	const char *name, *help, *type;
	pl_hmap series;             /* label text (owned) -> uint64_t * or px_hist * */
} px_family;

enum px_fam {
	PX_F_REQUESTS, PX_F_DURATION, PX_F_RETRIES, PX_F_BUDGET_EXHAUSTED, PX_F_EJECTIONS, PX_F_DENIED,
	PX_F_RATE_LIMITED, PX_F_LOCAL, PX_F_UPSTREAM_CONNS, PX_F_ACCESS_LOG, PX_F_GRPC, PX_F__N
};

#endif
