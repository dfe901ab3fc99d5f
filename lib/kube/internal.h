/* lib/kube internals shared by client.c and watch.c; not for users of the client. */
#ifndef PILLION_KUBE_INTERNAL_H
#define PILLION_KUBE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "json/json.h"
#include "kube/kube.h"

/* Receives a 2xx streaming body as it arrives; returns false to stop the transfer. */
typedef bool (*kube_sink)(void *ctx, const char *data, size_t len);

typedef struct kube_call {
	const char *method;        /* GET, PATCH, ... */
	const char *verb;          /* for logs and the observer: LIST, WATCH, or the method */
	const char *target;        /* path and query */
	const char *content_type;  /* NULL: no body */
	const char *body;
	size_t len;
	kube_sink sink;            /* non-NULL: a watch (no total timeout, an idle limit, streamed body) */
	void *sink_ctx;
	long stream_timeout_s;     /* watches: the server-side timeoutSeconds (the client cuts at it + the idle limit) */
} kube_call;

/*
 * Makes the call with rate limit, auth and retries. Non-streaming: 0 on 2xx with the
 * body in resp. Streaming: 0 once a 2xx stream ends for whatever reason (st->message
 * describes a cut) or the sink stopped it. Otherwise -errno with st filled.
 */
int kube_do(pl_kube *k, const kube_call *c, pl_buf *resp, pl_kube_status *st);
/* kube_do for a non-streaming call, parsing a 2xx body into *out (may be NULL); st may be NULL. */
int kube_request(pl_kube *k, const char *method, const char *verb, const char *target, const char *ct,
		 const char *body, size_t len, json_t **out, pl_kube_status *st);
/* Appends s percent-encoded for a query value. */
void kube_escape(pl_buf *b, const char *s);
/* Fills st from a Status object (kind Status, or a watch ERROR event's object). */
void kube_status_from_json(pl_kube_status *st, const json_t *status);
/* Logs a failed call at a level fitting its status (404/409 are routine: debug). */
void kube_log_failure(const char *verb, const char *target, int rc, const pl_kube_status *st);

#endif
