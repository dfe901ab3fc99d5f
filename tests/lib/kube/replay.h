/* Test helper: an HTTP/1.1 server on 127.0.0.1 that replays scripted API responses and records the requests. */
#ifndef PILLION_TESTS_KUBE_REPLAY_H
#define PILLION_TESTS_KUBE_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

#define RP_MAX_CHUNKS 8

typedef struct rp_chunk {
	const char *data;   /* NULL ends the list */
	int delay_ms;       /* wait before sending it */
} rp_chunk;

/* One scripted response; the server answers the i-th request with script[i]. */
typedef struct rp_response {
	int status;                     /* 0: close the connection without answering */
	const char *headers;            /* extra header lines, each ending in "\r\n" */
	const char *body;               /* sent with Content-Length when there are no chunks */
	rp_chunk chunks[RP_MAX_CHUNKS]; /* sent with chunked transfer encoding */
	int hold_ms;                    /* after the chunks: stay silent this long */
	bool cut;                       /* then close without the terminating chunk */
} rp_response;

typedef struct rp_request {
	char method[16];
	char target[2048];
	char authorization[512];
	char content_type[128];
	char *body;                     /* NUL-terminated */
	size_t body_len;
} rp_request;

typedef struct rp_server rp_server;

/* Starts serving script (borrowed: it must outlive the server). Requests past its end get a 500. */
rp_server *rp_start(const rp_response *script, size_t n);
/* "http://127.0.0.1:<port>" */
const char *rp_url(const rp_server *s);
int rp_count(rp_server *s);
/* Connections accepted so far (to see that the client reuses one). */
int rp_accepts(rp_server *s);
/* The i-th request received (0-based); valid until rp_stop. */
const rp_request *rp_req(rp_server *s, int i);
void rp_stop(rp_server *s);

#endif
