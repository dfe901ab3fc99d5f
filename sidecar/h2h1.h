/* HTTP/2 to HTTP/1.1 and back: pure translations of heads (no I/O, no session state). The proxy
 * restores HTTP/1.1 for an app behind it when a request rode HTTP/2 from the caller's proxy. */
#ifndef PILLION_SIDECAR_H2H1_H
#define PILLION_SIDECAR_H2H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2/h2.h"
#include "http1/http1-t.h"

/* The field a caller's proxy adds to an HTTP/1 request it carries over HTTP/2: the far proxy
 * restores HTTP/1.1 for its app, and drops the field. */
#define PX_ORIG_PROTO "pillion-orig-proto"

/* How the body of a translated request is framed for the HTTP/1 server. */
enum px_h1_framing { PX_H1_NO_BODY, PX_H1_LENGTH, PX_H1_CHUNKED };

/*
 * The HTTP/1.1 request head for the HTTP/2 request fields f[0..n) (pseudo-fields included),
 * appended to *b. body: DATA may follow the HEADERS (no END_STREAM on them). The field named skip
 * (or NULL) is left out; hop-by-hop and HTTP/2-only fields are dropped, cookie fields joined (RFC
 * 9113 8.2.3), :authority becomes the one Host.
 * Every byte is checked as a strict HTTP/1 parser would check it, whatever the HTTP/2 layer let
 * through: no CR, LF, NUL or other control byte, no space in the target, no field name outside the
 * token characters, at most one content-length and only digits in it. So the HTTP/1 server reads
 * exactly one request, the one the policy saw.
 * Returns NULL, or a static text naming the field and the problem (nothing useful was appended).
 * *framing and *length: the body's framing (a body with no content-length is sent chunked).
 */
const char *px_h2h1_request(const pl_h2_field *f, size_t n, bool body, const char *skip, char **b, uint32_t *len,
			    uint32_t *cap, enum px_h1_framing *framing, uint64_t *length);

/* What px_h1_fields_h2 leaves out besides hop-by-hop fields and transfer-encoding. */
#define PX_H2F_LENGTH 1u  /* content-length */
#define PX_H2F_REQUEST 2u /* host, expect and PX_ORIG_PROTO: the next hop's own to set */

/* The end-to-end fields of the HTTP/1 head m as HTTP/2 fields, names lowercased into names (at
 * least m->head_len bytes), written to out from index k up to max. Returns the new count. */
size_t px_h1_fields_h2(const pl_h1_msg *m, unsigned drop, pl_h2_field *out, size_t k, size_t max, char *names);

/* The HTTP/2 fields of the HTTP/1 response head m: ":status" (its text in status[4]), then its
 * end-to-end fields with names lowercased into names (at least m->head_len bytes). Hop-by-hop and
 * framing fields (Connection and what it names, Keep-Alive, Transfer-Encoding, Upgrade, ...) are
 * dropped; content-length stays only when drop_length is false. Returns the count (at most max). */
size_t px_h1h2_response(const pl_h1_msg *m, bool drop_length, pl_h2_field *out, size_t max, char *names, char status[4]);

#endif
