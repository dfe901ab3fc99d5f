/* HTTP/2 framing, the only module that calls nghttp2. No I/O: bytes in, bytes out, events by callback. */
#ifndef PILLION_H2_H2_H
#define PILLION_H2_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct pl_h2 pl_h2;

typedef struct pl_h2_field {
	const char *name, *value;
	size_t namelen, valuelen;
} pl_h2_field;

enum pl_h2_head { PL_H2_REQUEST, PL_H2_RESPONSE, PL_H2_INFO, PL_H2_TRAILERS };

/* The body callback's *end. */
enum { PL_H2_MORE = 0, PL_H2_END = 1, PL_H2_END_TRAILERS = 2 };
/* The body callback has no bytes now: pl_h2_resume when it has. */
#define PL_H2_DEFER (-1)

/* RST_STREAM and GOAWAY codes (RFC 9113 7). */
enum {
	PL_H2_NO_ERROR = 0, PL_H2_PROTOCOL_ERROR = 1, PL_H2_INTERNAL_ERROR = 2, PL_H2_FLOW_CONTROL_ERROR = 3,
	PL_H2_REFUSED_STREAM = 7, PL_H2_CANCEL = 8, PL_H2_ENHANCE_YOUR_CALM = 11,
};

/* The connection preface a client sends first ("PRI * HTTP/2.0..."): 24 bytes. */
#define PL_H2_PREFACE_LEN 24
/* 1: p begins with the whole preface; 0: it cannot; -1: a prefix of it, more bytes needed. */
int pl_h2_is_preface(const void *p, size_t n);

/* Events of one connection. ud is pl_h2_new's; sud is the stream's (pl_h2_request, pl_h2_set_stream).
 * A callback may submit on any session and consume, resume or reset, but never call pl_h2_recv or
 * pl_h2_send. */
typedef struct pl_h2_cbs {
	/* A header block of stream id is whole; end: it was the peer's last frame of the stream. */
	void (*head)(void *ud, pl_h2 *h, int32_t id, void *sud, enum pl_h2_head kind, const pl_h2_field *f, size_t n,
		     bool end);
	/* Body bytes: the peer's window for them reopens only at pl_h2_consume (back-pressure). */
	void (*data)(void *ud, pl_h2 *h, int32_t id, void *sud, const uint8_t *p, size_t n);
	/* The body ended (END_STREAM on DATA). */
	void (*end)(void *ud, pl_h2 *h, int32_t id, void *sud);
	/* The stream is gone: code 0 after both ends, else the reset's code (either side's). */
	void (*close)(void *ud, pl_h2 *h, int32_t id, void *sud, uint32_t code);
	/* Body bytes to send: up to n into out, *end PL_H2_MORE, PL_H2_END or PL_H2_END_TRAILERS (then
	 * trailers is asked). Returns the count, or PL_H2_DEFER. */
	ssize_t (*read)(void *ud, pl_h2 *h, int32_t id, void *sud, uint8_t *out, size_t n, int *end);
	/* The trailers to send after END_TRAILERS (copied before it returns). */
	void (*trailers)(void *ud, pl_h2 *h, int32_t id, void *sud, const pl_h2_field **f, size_t *n);
	/* The peer said GOAWAY: streams above last_id were never processed. */
	void (*goaway)(void *ud, pl_h2 *h, int32_t last_id, uint32_t code);
} pl_h2_cbs;

typedef struct pl_h2_limits {
	uint32_t max_streams;      /* concurrent streams the peer may open (SETTINGS) */
	uint32_t stream_window;    /* bytes a stream may have unconsumed */
	uint32_t conn_window;      /* bytes the connection may have unconsumed */
	uint32_t max_header_list;  /* decoded bytes of one header block (name + value + 32 each) */
	uint32_t max_fields;       /* fields of one header block */
	uint32_t resets_burst, resets_per_s; /* streams the peer may reset (rapid reset, CVE-2023-44487) */
	uint32_t max_continuations; /* CONTINUATION frames after one HEADERS (CVE-2024-27316) */
} pl_h2_limits;

extern const pl_h2_limits pl_h2_default_limits;

pl_h2 *pl_h2_new(bool server, const pl_h2_cbs *cbs, void *ud, const pl_h2_limits *lim);
void pl_h2_free(pl_h2 *h);
/* Bytes from the peer: 0, or -1 when the session cannot go on (why says what; a GOAWAY may be
 * queued: send it, then close). A protocol error of the peer's returns 0: the session queues a
 * GOAWAY, ends once it is sent (pl_h2_alive), and pl_h2_error says why. */
int pl_h2_recv(pl_h2 *h, const void *p, size_t n, const char **why);
/* The next bytes to write (valid until the next call into h): their length, 0 when nothing is
 * due, -1 on an error. */
ssize_t pl_h2_send(pl_h2 *h, const uint8_t **p);
/* Why we ended the connection with an error (our GOAWAY's code and reason), or NULL. */
const char *pl_h2_error(const pl_h2 *h);
/* False once both sides are done with the connection (GOAWAY, no stream left). */
bool pl_h2_alive(const pl_h2 *h);
/* A new stream (client): its id, or -1 (no stream ids left, or the peer's GOAWAY). body: a body follows (read). */
int32_t pl_h2_request(pl_h2 *h, const pl_h2_field *f, size_t n, bool body, void *sud);
/* The response head (server); body: read supplies the body (and trailers). 0 or -1. */
int pl_h2_response(pl_h2 *h, int32_t id, const pl_h2_field *f, size_t n, bool body);
void pl_h2_set_stream(pl_h2 *h, int32_t id, void *sud);
/* read has bytes again for a stream it deferred. */
void pl_h2_resume(pl_h2 *h, int32_t id);
/* n body bytes of stream id were passed on: the peer may send as many again. */
void pl_h2_consume(pl_h2 *h, int32_t id, size_t n);
void pl_h2_reset(pl_h2 *h, int32_t id, uint32_t code);
/* Graceful: tell the peer no new streams after those open now (GOAWAY with the last id). */
void pl_h2_goaway(pl_h2 *h, uint32_t code);
/* A PING for the peer to answer (any bytes from it show it is there). */
void pl_h2_ping(pl_h2 *h);
/* Streams the peer lets us open at once. */
uint32_t pl_h2_peer_max_streams(const pl_h2 *h);
/* The peer said GOAWAY, or we did: no new streams. */
bool pl_h2_closing(const pl_h2 *h);
const char *pl_h2_code_name(uint32_t code);

#endif
