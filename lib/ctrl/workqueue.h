/* A controller work queue as controller-runtime has it: deduplicated keys, never two workers on one key, per-key backoff, an overall rate limit, delayed adds. */
#ifndef PILLION_CTRL_WORKQUEUE_H
#define PILLION_CTRL_WORKQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pl_wq pl_wq;

typedef struct pl_wq_options {
	int64_t base_delay_ns;   /* first retry delay of a failing key (5 ms) */
	int64_t max_delay_ns;    /* cap of the per-key exponential backoff (1000 s) */
	double qps;              /* overall token bucket for rate-limited adds (10/s) */
	int burst;               /* (100) */
	/* Time source, for tests; NULL: CLOCK_MONOTONIC. */
	int64_t (*now)(void *ctx);
	void *now_ctx;
} pl_wq_options;

/* NULL opts: the defaults above. */
pl_wq *pl_wq_new(const pl_wq_options *opts);
/* Wakes every waiting pl_wq_get (they return NULL) and frees nothing until pl_wq_free. */
void pl_wq_shutdown(pl_wq *q);
void pl_wq_free(pl_wq *q);

/* Adds key now. A key already queued is not queued twice; a key being processed is queued again after pl_wq_done. */
void pl_wq_add(pl_wq *q, const char *key);
/* Adds key after delay (a requeue after N seconds, e.g. a certificate's renewal time). */
void pl_wq_add_after(pl_wq *q, const char *key, int64_t delay_ns);
/* Adds key after its own backoff (doubling per failure) and the overall token bucket, whichever is later. */
void pl_wq_add_rate_limited(pl_wq *q, const char *key);
/* Resets key's backoff (after a successful reconcile). */
void pl_wq_forget(pl_wq *q, const char *key);
int pl_wq_failures(pl_wq *q, const char *key);

/*
 * Blocks until a key is ready (or timeout_ns passes, < 0: forever, or the queue shuts down)
 * and marks it processing. Returns a malloc'ed key the caller frees after pl_wq_done, or NULL.
 */
char *pl_wq_get(pl_wq *q, int64_t timeout_ns);
/* The caller finished key (whatever the result). */
void pl_wq_done(pl_wq *q, const char *key);

/* Queued now (not counting delayed or processing keys), for the queue depth metric. */
size_t pl_wq_len(pl_wq *q);
size_t pl_wq_delayed(pl_wq *q);

#endif
