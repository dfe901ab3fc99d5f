/* W3C Trace Context: the traceparent field of a request, read strictly, and new ones the proxy starts. */
#ifndef PILLION_SIDECAR_TRACE_H
#define PILLION_SIDECAR_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1/http1-t.h"

/* "00-" trace-id "-" parent-id "-" flags: 55 bytes. */
#define PX_TRACEPARENT_LEN 55

typedef struct px_trace {
	char trace_id[33];          /* 32 lowercase hex digits */
	char parent_id[17];         /* 16 */
	unsigned flags;             /* bit 0: sampled */
} px_trace;

/* Whether v[0..n) is a traceparent this proxy can pass on as it is (version 00, or a later version
 * read as 00 says: its first 55 bytes, then '-' or the end); t is filled when so. */
bool px_traceparent_parse(const char *v, size_t n, px_trace *t);
/* The request's trace: 1 with t filled when it has one valid traceparent, 0 when it has none, -1 when
 * it has an invalid one or more than one (which the spec treats as none). */
int px_trace_of(const pl_h1_msg *m, px_trace *t);
/* A new trace from three random words; neither id is ever all zeros. */
void px_trace_new(px_trace *t, uint64_t r1, uint64_t r2, uint64_t r3, bool sampled);
/* Writes "traceparent: 00-<trace-id>-<parent-id>-<flags>\r\n" and its NUL into out (at least 72 bytes). */
void px_trace_field(const px_trace *t, char *out);

#endif
