/* One request's policy, for HTTP/1 sessions and HTTP/2 streams alike: the direction's decision, trace
 * context and access log, retries against the budget, outlier results, and the request metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "base/log.h"
#include "l7.h"
#include "trace.h"

static px_log_rate log_rate;
static bool log_allowed(proxy *px) { return px_log_allowed(px, &log_rate); }

const char *px_req_route_name(const px_req *rq) { return rq->route && rq->route->name ? rq->route->name : ""; }

const char *px_cause_word(int cause)
{
	switch (cause) {
	case PX_CAUSE_CONNECT: return "connect failure";
	case PX_CAUSE_TLS: return "mtls failure";
	case PX_CAUSE_RESET: return "upstream reset";
	case PX_CAUSE_TIMEOUT: return "per-try timeout";
	default: return "upstream error";
	}
}

/* "ip:port" ("[ip]:port" for IPv6) of an endpoint's table entry, keyed "ep|<ip>|<port>". */
static const char *ep_name(const px_rt *r, char out[80])
{
	const char *a = r && r->key && strncmp(r->key, "ep|", 3) == 0 ? r->key + 3 : NULL;
	const char *bar = a ? strrchr(a, '|') : NULL;

	if (!bar)
		snprintf(out, 80, "?");
	else
		snprintf(out, 80, memchr(a, ':', (size_t)(bar - a)) ? "[%.*s]:%s" : "%.*s:%s", (int)(bar - a), a, bar + 1);
	return out;
}

void px_req_begin(px_req *rq)
{
	proxy *px = rq->px;

	rq->t_start = pl_ev_now(px->loop);
	rq->attempts = 0;
	rq->stale_retried = false;
	rq->connect_retries = 0;
	rq->via_service = false;
	rq->status = 0;
	rq->service = "";
	rq->fault_delay_ns = 0;
	rq->fault_abort = 0;
	rq->deadline = rq->try_deadline = 0;
	rq->cfg = px->config;
	if (rq->cfg)
		rq->cfg->refs++;
	rq->mesh = px->mesh;
	if (rq->mesh)
		rq->mesh->refs++;
}

void px_req_clear(px_req *rq)
{
	px_config_unref(rq->cfg);
	rq->cfg = NULL;
	px_mesh_unref(rq->mesh);
	rq->mesh = NULL;
	rq->op = NULL;
	rq->route = NULL;
	rq->ip = NULL;
	rq->budget_rt = rq->outlier_rt = NULL;
	rq->ocb = NULL;
	rq->backend = NULL;
	rq->local_cause = NULL;
	px_alog_discard(rq);
	rq->service = ""; /* it pointed into the config or mesh just let go */
	rq->dest_svc = NULL;
}

int px_req_policy(px_req *rq, const pl_h1_msg *m, pl_h1_str path, px_refusal *r, char tfield[80], bool *drop_trace)
{
	int status = px_dirs[rq->dir]->http->request(rq, m, path, r);

	/* Trace context and the access log, by the destination's policy or the defaults (Add, 1%, no log).
	 * A request the proxy answers itself starts no trace. */
	const pl_tracing *tr = rq->op ? &rq->op->tracing : rq->ip ? &rq->ip->tracing : NULL;
	const pl_access_log *al = rq->op ? &rq->op->access_log : rq->ip ? &rq->ip->access_log : NULL;
	bool may_add = !status && (!tr || tr->mode == PL_TRACE_ADD), logged = al && al->enabled;
	px_trace trace;
	/* The fields are looked at only when a trace may be started or the id is logged. */
	int traced = may_add || logged ? px_trace_of(m, &trace) : 0;
	tfield[0] = 0;
	*drop_trace = false;
	if (may_add && traced != 1) {
		double pct = tr ? tr->sampling_percent : 1;
		bool sampled = (double)px_random() < pct * 42949672.96;
		px_trace_new(&trace, px_random64(), px_random64(), px_random64(), sampled);
		px_trace_field(&trace, tfield);
		*drop_trace = traced < 0; /* an invalid traceparent, and its tracestate, are replaced */
		traced = 1;
	}
	if (logged)
		px_alog_begin(rq, m, al, traced == 1 ? trace.trace_id : NULL);
	if (!status)
		rq->deadline = rq->route && rq->route->timeout_ns ? rq->t_start + rq->route->timeout_ns : 0;
	return status;
}

void px_req_done(px_req *rq)
{
	proxy *px = rq->px;

	if (rq->alog)
		px_alog_end(rq);
	if (!px->fam)
		return;
	/* Label text is built and looked up only when something changed since this session's last request. */
	if (!rq->stat_ctr || rq->stat_gen != px->gen || rq->stat_route != rq->route || rq->stat_code != rq->status) {
		px_stats_request_series(px, rq->dir, rq->service, px_req_route_name(rq), rq->status, &rq->stat_ctr,
					&rq->stat_hist);
		rq->stat_gen = px->gen;
		rq->stat_route = rq->route;
		rq->stat_code = rq->status;
	}
	(*rq->stat_ctr)++;
	px_stats_observe(rq->stat_hist, pl_ev_now(px->loop) - rq->t_start);
}

void px_req_local(px_req *rq, int status, const px_refusal *r)
{
	proxy *px = rq->px;
	char lbl[600];

	rq->status = status;
	rq->local_cause = r->cause;
	snprintf(lbl, sizeof(lbl), "direction=\"%s\",cause=\"%s\"", px_dirs[rq->dir]->name, r->cause);
	px_stats_inc(px, PX_F_LOCAL, lbl);
	if (log_allowed(px))
		log_info("%s request answered by the proxy: %d %s: %s", px_dirs[rq->dir]->name, status, r->cause, r->msg);
}

bool px_req_retry(px_req *rq, bool replayable, int cause, int status)
{
	proxy *px = rq->px;
	const pl_retries *rt = rq->route ? &rq->route->retries : NULL;
	char lbl[700];

	if (!rt || !rt->set || rq->attempts > rt->attempts || !replayable)
		return false;
	if (!px_retry_on(rt->retry_on, cause, status))
		return false;
	if (rq->deadline && pl_ev_now(px->loop) >= rq->deadline)
		return false;
	snprintf(lbl, sizeof(lbl), "direction=\"%s\",service=\"%s\",route=\"%s\"", px_dirs[rq->dir]->name, rq->service,
		 px_req_route_name(rq));
	if (rq->budget_rt && !px_budget_try_retry(&rq->budget_rt->budget, pl_ev_now(px->loop))) {
		px_stats_inc(px, PX_F_BUDGET_EXHAUSTED, lbl);
		return false;
	}
	px_stats_inc(px, PX_F_RETRIES, lbl);
	return true;
}

void px_req_outlier(px_req *rq, bool failure)
{
	proxy *px = rq->px;

	if (!rq->outlier_rt || !rq->ocb || !rq->ocb->set || !rq->ocb->consecutive_failures)
		return;
	if (px_outlier_result(&rq->outlier_rt->outlier, rq->ocb, failure, pl_ev_now(px->loop))) {
		char lbl[700], a[80] = "";
		snprintf(lbl, sizeof(lbl), "service=\"%s\",reason=\"ejected\",backend=\"%s\"", rq->service,
			 rq->backend ? rq->backend : rq->service);
		px_stats_inc(px, PX_F_EJECTIONS, lbl);
		char en[80];
		if (rq->endpoint)
			snprintf(a, sizeof(a), "%s", ep_name(rq->outlier_rt, en));
		if (log_allowed(px))
			log_info("circuit breaker: %s %s of %s ejected after %d consecutive failures",
				 a[0] ? "endpoint" : "backend", a[0] ? a : rq->backend ? rq->backend : rq->service,
				 rq->service, rq->ocb->consecutive_failures);
	}
}

bool px_req_unreachable(px_req *rq, bool replayable, int cause, const char *detail)
{
	/* A pod address that refuses, drops the SYN (a pod gone before the directory says so: on a
	 * real bridge its IP is silent) or is now another pod (identity refused): the request was not
	 * sent, so it goes on, free, to the next endpoints, then once to the Service address, which the
	 * cluster's own service proxy keeps current. The endpoint leaves the rotation meanwhile. */
	if ((cause != PX_CAUSE_CONNECT && cause != PX_CAUSE_TLS) || !rq->endpoint || !replayable)
		return false;
	int64_t out = rq->outlier_rt ? px_outlier_unreachable(&rq->outlier_rt->outlier, pl_ev_now(rq->px->loop)) : 0;
	char lbl[700], en[80];
	snprintf(lbl, sizeof(lbl), "service=\"%s\",reason=\"unreachable\",backend=\"%s\"", rq->service,
		 rq->backend ? rq->backend : rq->service);
	px_stats_inc(rq->px, PX_F_EJECTIONS, lbl);
	if (log_allowed(rq->px))
		log_info("endpoint %s of %s: %s: %s; out of the rotation for %lld ms", ep_name(rq->outlier_rt, en),
			 rq->service, px_cause_word(cause), detail, (long long)(out / PL_NS_PER_MS));
	if (rq->connect_retries < PX_ENDPOINT_FREE_RETRIES)
		rq->connect_retries++;
	else
		rq->via_service = true;
	rq->attempts--;
	return true;
}

const char *px_req_pool_limits(const px_req *rq, int *max_conns, int *max_pending)
{
	const pl_circuit_breaker *cb = rq->op && rq->op->circuit_breaker.set ? &rq->op->circuit_breaker : NULL;

	if (cb) {
		*max_conns = cb->max_connections;
		*max_pending = cb->max_pending;
		return "maxPending";
	}
	/* No circuitBreaker: still bounded, or a caller could make the proxy open sockets without end
	 * (one per request on HTTP/1, one per stream sent on as HTTP/1.1). */
	*max_conns = (int)rq->px->set.upstream_max_conns;
	*max_pending = PX_DEFAULT_MAX_PENDING;
	return "--upstream-max-connections";
}
