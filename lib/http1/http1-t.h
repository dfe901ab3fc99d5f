/* HTTP/1.x message types: a parsed head as spans into the caller's buffer, limits, errors. */
#ifndef PILLION_HTTP1_T_H
#define PILLION_HTTP1_T_H

#include <stdbool.h>
#include <stdint.h>

/* A span of the buffer the head was parsed from: not NUL-terminated, valid while the buffer is. */
typedef struct pl_h1_str {
	const char *p;
	uint32_t len;
} pl_h1_str;

typedef struct pl_h1_header {
	pl_h1_str name, value;     /* value without its leading and trailing whitespace */
} pl_h1_header;

enum pl_h1_method {
	PL_H1_OTHER = 0, PL_H1_GET, PL_H1_HEAD, PL_H1_POST, PL_H1_PUT, PL_H1_DELETE, PL_H1_CONNECT,
	PL_H1_OPTIONS, PL_H1_TRACE, PL_H1_PATCH,
};

/* How the message's body ends (RFC 9112 section 6.3). */
enum pl_h1_body {
	PL_H1_BODY_NONE,           /* no body */
	PL_H1_BODY_LENGTH,         /* content_length bytes */
	PL_H1_BODY_CHUNKED,        /* chunked: scan with pl_h1_chunked_scan */
	PL_H1_BODY_CLOSE,          /* a response delimited by the end of the connection */
};

typedef struct pl_h1_limits {
	uint32_t max_line;         /* request or status line, bytes without CRLF: longer is 400 */
	uint32_t max_head;         /* line plus header section plus the empty line: larger is 431 */
	uint32_t max_headers;      /* header fields: more is 431 */
} pl_h1_limits;

#define PL_H1_DEFAULT_MAX_LINE    8192u
#define PL_H1_DEFAULT_MAX_HEAD    32768u
#define PL_H1_DEFAULT_MAX_HEADERS 100u

typedef struct pl_h1_msg {
	/* request */
	pl_h1_str method, target;
	enum pl_h1_method method_id;
	/* response */
	int status;
	pl_h1_str reason;
	/* both */
	int minor;                 /* HTTP/1.<minor>: 0 or 1 (a higher minor is read as 1) */
	pl_h1_header *headers;     /* the caller's array */
	uint32_t nheaders;
	uint32_t head_len;         /* bytes from the first byte to the end of the empty line */
	enum pl_h1_body body;
	uint64_t content_length;   /* PL_H1_BODY_LENGTH */
	pl_h1_str host;            /* requests: the Host field (empty when absent, HTTP/1.0 only) */
	pl_h1_str path;            /* requests: the target's path without the query ("/" for "*" or an authority) */
	bool keep_alive;           /* the connection may carry another message after this one */
	bool expect_continue;      /* Expect: 100-continue */
	bool upgrade;              /* Connection: upgrade with an Upgrade field (or a CONNECT request) */
	bool conn_tokens;          /* Connection names other fields, which are hop-by-hop too */
} pl_h1_msg;

/* Why a message was refused: the status to answer (requests) and where, for the log. */
typedef struct pl_h1_error {
	int status;                /* 400, 431, 501, 505 for requests; responses: 502 */
	uint32_t offset;           /* byte offset of the offending byte in the message */
	const char *what;          /* static text, e.g. "Content-Length and Transfer-Encoding together" */
} pl_h1_error;

/* The state of a chunked body as it streams through, one buffer at a time. */
typedef struct pl_h1_chunked {
	int state;
	uint64_t left;             /* data bytes left in the current chunk */
	uint32_t line;             /* bytes of the current size, extension or trailer line */
	uint32_t trailers;         /* bytes of trailer section so far */
	uint32_t ntrailers;
	uint64_t offset;           /* bytes of body scanned so far (for error offsets) */
	uint8_t digits;
} pl_h1_chunked;

/* Where one message's body ends on a stream of bytes, whatever its framing (pl_h1_body_start). */
typedef struct pl_h1_body_rd {
	enum pl_h1_body kind;
	uint64_t left;             /* PL_H1_BODY_LENGTH: bytes still to come */
	pl_h1_chunked ck;          /* PL_H1_BODY_CHUNKED */
	bool done;                 /* the body is whole (never, for a body the close ends: see pl_h1_body_eof) */
} pl_h1_body_rd;

#endif
