/* Types of the proxy's HTTP/2 layer (h2.c) and of its HTTP/1.1 upstreams (h2up1.c): connections,
 * streams, pools. */
#ifndef PILLION_SIDECAR_H2_T_H
#define PILLION_SIDECAR_H2_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/bucket.h"
#include "base/buf.h"
#include "h2/h2.h"
#include "http1/http1-t.h"
#include "l7-t.h"

enum { C_CONNECT, C_HANDSHAKE, C_READY };

typedef struct px_h2c px_h2c;
typedef struct px_h2s px_h2s;

typedef struct h2pool {
	proxy *px;
	char key[PX_POOL_KEY];
	int dir;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tls;
	px_h2c *conns;
	px_h2s *wait_head, *wait_tail; /* streams waiting for room (circuitBreaker.maxConnections reached) */
	uint32_t nwait;
	int h1ok;                   /* mTLS peer: 1 chose ALPN pillion/h2, -1 did not, 0 not known yet */
	int64_t h1ok_at;
} h2pool;

/* One HTTP/2 connection: downstream (we serve) or upstream (we call). */
struct px_h2c {
	proxy *px;
	int dir;
	bool server;
	int state;
	bool dead;                  /* closed once the current event is handled */
	bool dirty;                 /* frames may be due: flushed after the current event */
	px_side *s;                 /* its socket: own (upstream), or the accepted connection's (downstream) */
	px_side own;
	px_conn *conn;              /* downstream: the connection it speaks on (px_proto_h2), until closed */
	pl_h2 *h;
	pl_buf out;
	size_t out_off;
	pl_ev_timer timer;          /* connect, handshake, idle; upstream with streams: liveness */
	int64_t last_active;
	int64_t last_rx;            /* the loop's time of the last bytes read */
	int64_t ping_at;            /* upstream: when our unanswered PING went, or 0 */
	px_h2s *streams;            /* its streams (downstream) or attempts (upstream) */
	uint32_t nstreams;
	px_h2s *wait;               /* upstream, dialling: streams waiting for it */
	px_h2c *dnext;              /* the dirty list */
	px_h2c *prev, *next;        /* downstream: the proxy's list; upstream: its pool's */
	/* downstream */
	struct sockaddr_storage orig;
	socklen_t origlen;
	char *peer_id;
	pl_bucket resets;           /* streams that ended in a reset, either side's (MadeYouReset) */
	/* upstream */
	h2pool *pool;
	struct px_h1x *x;           /* HTTP/1.1 (h2up1.c): one exchange at a time, no HTTP/2 session */
	bool spent;                 /* takes no new stream: closing (an HTTP/1.1 exchange was cut) */
	px_mesh *mesh;              /* the directory the peer's identity is checked against */
	bool endpoint;
};

/* One request: its downstream stream and the upstream stream of its current attempt. */
struct px_h2s {
	px_req rq;
	px_h2c *dc, *uc;
	int32_t did, uid;
	px_h2s *dprev, *dnext, *uprev, *unext, *wnext;
	h2pool *wpool;              /* the pool it waits in for room, or NULL */
	px_h2s *pnext;
	pl_ev_timer timer;          /* fault delay, deadlines */
	bool delaying;
	int64_t delay_until;
	int64_t last_progress;      /* the loop's time of the last byte or head either way */
	/* the request as it goes upstream */
	char *hb;
	pl_h2_field *rf;
	size_t nrf;
	pl_buf body;                /* body bytes; [0, body_off) sent in this attempt */
	size_t body_off;
	size_t consumed;            /* of body, handed back to the client's window */
	size_t unconsumed_down;     /* bytes received from the client not yet handed back to its window */
	size_t unconsumed_up;       /* bytes received on the current upstream stream not yet handed back */
	bool req_end, trimmed;
	bool grpc;
	px_h2b *bridge;             /* an HTTP/1 session's request riding this stream (h2bridge.c), or NULL */
	/* restored to HTTP/1.1 for the server (the caller's proxy carried an HTTP/1 request): its head */
	char *h1head;
	uint32_t h1head_len;
	int h1_framing;             /* enum px_h1_framing */
	uint64_t h1_length;
	int gcode;                  /* the answer's grpc-status; -1 while none was seen */
	/* the response */
	bool resp_started, resp_end, local;
	pl_buf resp;
	size_t resp_off;
	char *tb;                   /* trailers: fields and their bytes */
	pl_h2_field *tf;
	size_t ntf;
	pl_h2_field lf[6];          /* a local answer's fields */
	char lbuf[4][64];
};

struct px_h2_all {
	px_h2c *downs;
	px_h2c *dirty;
	px_h2c *dead;               /* closed, freed once the current event is handled */
	pl_hmap pools;
	int depth;                  /* nested event handling: flush and close only at depth 0 */
	pl_ev_timer kick_timer;     /* bridged sessions told outside an HTTP/2 event (h2bridge.c) */
};

#endif
