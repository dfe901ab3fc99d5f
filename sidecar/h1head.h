/* Heads for the next hop: pure functions of a parsed HTTP/1 head (no I/O, no session state). */
#ifndef PILLION_SIDECAR_H1HEAD_H
#define PILLION_SIDECAR_H1HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1/http1.h"

/* The proxy's own verdict field: an app's answer never carries it past its inbound proxy, so a
 * caller's proxy can trust it from a peer (mTLS) and retry a request the peer's app never got. */
#define PX_ERROR_FIELD "pillion-proxy-error"
/* What px_rewrite_head drops besides the hop-by-hop fields (flags). */
#define PX_DROP_HOST 2u /* Host (the authority of an absolute-form target replaces it) */
#define PX_DROP_OWN 4u  /* PX_ERROR_FIELD (an app's answer, at its inbound proxy) */
#define PX_HEAD_TOO_MANY (-2) /* more fields than the next hop takes; nothing changed */

/* Appends p[0..n) to the growable *b (*len used, *cap allocated). */
void px_put(char **b, uint32_t *len, uint32_t *cap, const char *p, size_t n);
void px_puts(char **b, uint32_t *len, uint32_t *cap, const char *s);

/* The fields of m that go on to the next hop: not hop-by-hop (Upgrade kept with keep_upgrade), not
 * traceparent/tracestate with drop_trace, not what drop (PX_DROP_*) names. */
uint32_t px_fields_kept(const pl_h1_msg *m, bool keep_upgrade, bool drop_trace, unsigned drop);

/*
 * The head for the next hop: the first line (line, or m's own), the fields px_fields_kept keeps, then
 * add. Built in a scratch buffer, then put back in place so that it ends where the original ended
 * in buf: head and body leave in one write (one TLS record, one segment), with no allocation. It
 * fits unless add is longer than what was removed; then it goes to *sep (appended, allocated).
 * Returns where the head now starts in buf, -1 when it went to *sep, 0 when nothing was to remove
 * or add (buf untouched), PX_HEAD_TOO_MANY when the fields add brings would take the head past
 * PL_H1_DEFAULT_MAX_HEADERS (the next hop, with the same limit, would refuse it).
 */
int32_t px_rewrite_head(const pl_h1_msg *m, char *buf, const char *add, bool keep_upgrade, bool drop_trace,
			const char *line, unsigned drop, char **sep, uint32_t *seplen);

/* The request head as it goes upstream (a pure function of the parsed head m, in buf): the version
 * said as read (HTTP/1.1 for 1.2..1.9), an absolute-form target in origin-form with its authority as
 * the one Host, hop-by-hop fields removed (Upgrade kept when keep_upgrade, traceparent and
 * tracestate removed when drop_trace), add appended. Returns as px_rewrite_head. The spans of m are
 * stale afterwards. */
int32_t px_request_head_out(const pl_h1_msg *m, char *buf, const char *add, bool keep_upgrade, bool drop_trace,
			    char **sep, uint32_t *seplen);

/* The reason phrase the proxy writes for status. */
const char *px_reason(int status);

/* An answer of the proxy's own, appended to *b: status, text/plain, PX_ERROR_FIELD: cause,
 * Connection: close when close, Retry-After for a 429 with retry_after_s > 0, and the body
 * "pillion: <msg>\n" with its exact Content-Length. */
void px_local_answer(char **b, uint32_t *len, uint32_t *cap, int status, const char *cause, const char *msg, bool close,
		     int64_t retry_after_s);

/* A peer proxy's answer saying its app refused the connection: the request never reached an app. */
bool px_peer_unsent(const pl_h1_msg *m);

#endif
