/* HTTP/1.x parsing (RFC 9110/9112), strict: the only place in Pillion that parses HTTP/1.
 *
 * Pure functions over the caller's bytes: no allocation, no I/O. A head either parses whole, or
 * needs more bytes, or is refused with the status to answer and the byte offset of the problem.
 * Anything a smuggling attack could use to make two parsers disagree on where a message ends
 * is refused rather than repaired: see docs/http.md.
 */
#ifndef PILLION_HTTP1_H
#define PILLION_HTTP1_H

#include <stddef.h>
#include <sys/types.h>

#include "http1-t.h"

void pl_h1_limits_default(pl_h1_limits *lim);

/* Protocol detection on a connection's first bytes. */
enum pl_h1_detect { PL_H1_DETECT_MORE, PL_H1_DETECT_HTTP, PL_H1_DETECT_NOT };
/* HTTP once the bytes so far can only be an HTTP/1.x request line (complete up to its version, or
 * a method, a space and max_line bytes of target); NOT as soon as they cannot be one. */
enum pl_h1_detect pl_h1_detect(const char *buf, size_t len, uint32_t max_line);

/*
 * Parses a request head from buf[0..len). Returns 1 when complete (m filled, m->head_len bytes
 * used), 0 when more bytes are needed, -1 when refused (err filled). hdrs/max_hdrs: the caller's
 * array for the header fields; more fields than lim->max_headers (or max_hdrs) is a 431.
 */
int pl_h1_parse_request(const char *buf, size_t len, const pl_h1_limits *lim, pl_h1_header *hdrs, size_t max_hdrs,
			pl_h1_msg *m, pl_h1_error *err);
/* The same for a response to a request with method req_method (HEAD and CONNECT change framing).
 * Errors carry status 502: the response is not passed on. */
int pl_h1_parse_response(const char *buf, size_t len, const pl_h1_limits *lim, enum pl_h1_method req_method,
			 pl_h1_header *hdrs, size_t max_hdrs, pl_h1_msg *m, pl_h1_error *err);

/* Chunked bodies are passed on as they are; scanning finds where the message ends and refuses bad
 * framing. err_status: the status for errors (400 for a request body, 502 for a response body). */
void pl_h1_chunked_init(pl_h1_chunked *c);
/* Scans up to len bytes; returns how many belong to this body (all of them unless the body ended
 * inside, *done then true), or -1 with err filled. */
ssize_t pl_h1_chunked_scan(pl_h1_chunked *c, const char *p, size_t len, const pl_h1_limits *lim, int err_status,
			   bool *done, pl_h1_error *err);

/* The same, for a proxy that takes the framing off (an HTTP/1 body going on over HTTP/2): scans up
 * to the end of the next data span and returns the bytes it used, the data at p[*data_off..) for
 * *data_len bytes (0 when none came yet). Call again with the rest. Trailers are checked and dropped. */
ssize_t pl_h1_chunked_data(pl_h1_chunked *c, const char *p, size_t len, const pl_h1_limits *lim, int err_status,
			   size_t *data_off, size_t *data_len, bool *done, pl_h1_error *err);

/* One message's body, whatever its framing (length, chunked, the close, none): every forwarder reads
 * bodies through these, so the place a message ends is decided by one piece of code. */
/* Starts reading m's body (m->body, m->content_length); r->done at once when it has none. */
void pl_h1_body_start(pl_h1_body_rd *r, const pl_h1_msg *m);
/* Passes framing through: how many of p[0..len) belong to the body (all of them unless it ended
 * inside; chunked framing is checked as it goes), or -1 with err (err_status: 400 for a request
 * body, 502 for a response body). */
ssize_t pl_h1_body_scan(pl_h1_body_rd *r, const char *p, size_t len, const pl_h1_limits *lim, int err_status,
			pl_h1_error *err);
/* Takes framing off: the bytes of p[0..len) used, with the data among them at p[*data_off..) for
 * *data_len bytes (one span a call: call again with the rest), or -1 with err. */
ssize_t pl_h1_body_data(pl_h1_body_rd *r, const char *p, size_t len, const pl_h1_limits *lim, int err_status,
			size_t *data_off, size_t *data_len, pl_h1_error *err);
/* The connection ended: true when that ends the body whole (a body the close delimits, or one
 * already done), false when the body was cut short. */
bool pl_h1_body_eof(pl_h1_body_rd *r);

/* RFC 9110 section 9.2.2. */
bool pl_h1_idempotent(enum pl_h1_method m);
/* Case-insensitive comparison of a span with a NUL-terminated string. */
bool pl_h1_eq(pl_h1_str s, const char *lit);
/* Whether a comma-separated list (a Connection value) holds token, case-insensitively. */
bool pl_h1_list_has(pl_h1_str list, const char *token);
/* The first field named name (compared case-insensitively), or NULL. */
const pl_h1_header *pl_h1_find(const pl_h1_msg *m, const char *name);
/* Hop-by-hop for a proxy (RFC 9110 section 7.6.1): Connection, Keep-Alive, Proxy-Connection, TE,
 * Upgrade, Trailer, and the fields the message's Connection names. Transfer-Encoding is framing:
 * the forwarder decides about it. */
bool pl_h1_hop_by_hop(const pl_h1_msg *m, pl_h1_str name);

#endif
