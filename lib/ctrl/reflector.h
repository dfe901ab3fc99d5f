/* A reflector: list, then watch from the list's resourceVersion, into a store; resumes after cuts, relists after 410 Gone. */
#ifndef PILLION_CTRL_REFLECTOR_H
#define PILLION_CTRL_REFLECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrl/store.h"
#include "kube/kube-t.h"

typedef struct pl_reflector pl_reflector;

typedef struct pl_reflector_spec {
	const char *name;         /* for logs and metrics: "pods" */
	const char *path;         /* collection path: "/api/v1/pods", "/apis/pillion.dev/v1alpha1/trafficpolicies" */
	const char *query;        /* extra list/watch parameters ("labelSelector=..."), or NULL */
	const char *api_version;  /* stamped on listed items, which come without it: "v1" */
	const char *kind;         /* "Pod" */
	int watch_timeout_s;      /* per watch request (300); the server ends it, the reflector resumes */
	void (*transform)(json_t *obj); /* trims each object before it is stored (managedFields, unread data), or NULL */
} pl_reflector_spec;

typedef struct pl_reflector_stats {
	uint64_t lists;           /* full lists, the first included */
	uint64_t relists;         /* lists caused by 410 Gone */
	uint64_t watch_restarts;  /* watch requests after the first */
	uint64_t errors;          /* failed list or watch requests */
	uint64_t events;
} pl_reflector_stats;

/* Starts a thread with its own client made from cfg (copied). spec's strings are copied. */
pl_reflector *pl_reflector_start(const pl_kube_config *cfg, const pl_reflector_spec *spec, pl_store *store);
/* Asks the thread to stop; it leaves at its next event or request end. Joins and frees when join is true. */
void pl_reflector_stop(pl_reflector *r, bool join);
void pl_reflector_stats_get(pl_reflector *r, pl_reflector_stats *out);
/* Backoff after failures, for tests: base and cap in ms (200, 30000). */
void pl_reflector_set_backoff(pl_reflector *r, int64_t base_ms, int64_t max_ms);

#endif
