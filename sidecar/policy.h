/* The proxy's per-request policy decisions as pure functions: route, backend, authorization, retry
 * budget, outlier ejection, fault injection. No I/O and no clock of their own: time comes in as an
 * argument, randomness as a number, so each decision is testable on its own. */
#ifndef PILLION_SIDECAR_POLICY_H
#define PILLION_SIDECAR_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "http1/http1-t.h"
#include "model/model-t.h"

/* The PL_METHOD_ bit of a parsed method; 0 for a method TrafficPolicy cannot name. */
unsigned px_method_bit(enum pl_h1_method m);

/* The first route whose match holds for the request, or NULL (no route: the request is refused
 * with 404 only when the policy lists routes and none matches). path: the normalised path. */
const pl_route *px_route_select(const pl_outbound_policy *op, const pl_h1_msg *m, pl_h1_str path);
bool px_route_matches(const pl_route_match *rm, const pl_h1_msg *m, pl_h1_str path);

/* A backend by weight; rnd is uniform over uint32. skip (NULL, or one flag per backend) leaves
 * backends out (ejected ones). NULL when every weight left is 0. */
const pl_backend *px_backend_pick(const pl_route *r, uint32_t rnd, const bool *skip);

/* Authorization of one request. peer_id: the caller's SPIFFE ID, NULL for a plaintext caller.
 * Without rules every request is allowed (*rule NULL); with rules, the first rule that allows
 * it is named in *rule, and none allowing it is a denial. */
bool px_authorize(const pl_authorization *a, const char *peer_id, const pl_h1_msg *m, pl_h1_str path,
		  const char **rule);
/* The namespace part of spiffe://<td>/ns/<ns>/sa/<sa>, or an empty span. */
pl_h1_str px_spiffe_namespace(const char *id);

/*
 * Removes dot segments and merges repeated slashes (RFC 3986 5.2.4), so "/api/../admin" cannot
 * pass a rule for the prefix "/api/" with a star. out gets at most cap bytes; returns the length, or -1 when the path
 * holds an encoded slash, backslash or dot ("%2f", "%5c", "%2e"), which are refused rather than
 * guessed at, or does not fit.
 */
int px_path_normalize(pl_h1_str path, char *out, uint32_t cap);

/* Retries may add at most percent% of the requests of the last window, plus min_per_second. */
#define PX_BUDGET_SLOTS 10
typedef struct px_retry_budget {
	int percent, min_per_second;
	int64_t window_ns;
	int64_t slot_start[PX_BUDGET_SLOTS];
	uint32_t requests[PX_BUDGET_SLOTS], retries[PX_BUDGET_SLOTS];
} px_retry_budget;

/* Why an attempt failed, for retryOn and for the answer the client gets. */
enum px_cause { PX_CAUSE_CONNECT, PX_CAUSE_RESET, PX_CAUSE_TLS, PX_CAUSE_TIMEOUT, PX_CAUSE_STATUS, PX_CAUSE_GRPC };
/* Whether retryOn (PL_RETRY_* bits) covers an attempt that failed for cause (with the response's
 * status for PX_CAUSE_STATUS): a connect or mTLS failure under connect-failure, 5xx or
 * gateway-error; a reset under reset, 5xx or gateway-error; a per-try timeout under 5xx or
 * gateway-error; a status under 5xx (>= 500) or gateway-error (502, 503, 504); a gRPC answer's
 * grpc-status (PX_CAUSE_GRPC, status the code) under its code's name (unavailable, ...). */
bool px_retry_on(unsigned retry_on, int cause, int status);

void px_budget_init(px_retry_budget *b, const pl_retries *r);
void px_budget_request(px_retry_budget *b, int64_t now_ns);
/* True (and the retry counted) when the budget allows one more retry now. */
bool px_budget_try_retry(px_retry_budget *b, int64_t now_ns);

/* Outlier ejection of one endpoint: consecutive failures eject it; the n-th ejection in a row
 * lasts n times the base, at most the maximum; a success ends the run. */
typedef struct px_outlier {
	int consecutive;
	int ejections;
	int unreachable;            /* connects failed in a row (px_outlier_unreachable) */
	int64_t ejected_until;
} px_outlier;

/* Records a result; true when this failure ejected the endpoint. */
bool px_outlier_result(px_outlier *o, const pl_circuit_breaker *cb, bool failure, int64_t now_ns);
/* A pod address that could not be connected to (refused, unreachable, no SYN-ACK in time) leaves
 * the rotation at once, as Linkerd's balancer backs off an endpoint it cannot connect to: for 1 s,
 * doubling per failure in a row up to 30 s; a success (px_outlier_result) ends the run. Returns
 * how long it is out. */
int64_t px_outlier_unreachable(px_outlier *o, int64_t now_ns);
bool px_outlier_ejected(const px_outlier *o, int64_t now_ns);

/* Fault injection for one request: each roll is uniform over uint32. */
typedef struct px_fault_decision {
	int64_t delay_ns;          /* 0: none */
	int abort_status;          /* 0: none */
} px_fault_decision;
px_fault_decision px_fault_roll(const pl_fault *f, uint32_t roll_delay, uint32_t roll_abort);

/* gRPC: a grpc-timeout value ("100m", "5S": at most 8 digits and a unit of H M S m u n) in ns, or
 * 0 when it is not one. */
int64_t px_grpc_timeout(const char *v, size_t n);
/* The gRPC code a caller gets for an HTTP status the proxy answers with (gRPC's HTTP mapping:
 * 403 PERMISSION_DENIED, 429/502/503 UNAVAILABLE, 504 DEADLINE_EXCEEDED, ...). */
int px_grpc_code(int status);

#endif
