/* The proxy's labelled metrics (requests, latency, retries, circuit breaking, denials) and runtime state by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l7.h"

/* Seconds: from 0.5 ms, where a request through two proxies on one node lands, to 10 s. */
static const double lat_le[PX_LAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					      0.25,   0.5,   1,      2.5,   5,    10,   30};

static const struct {
	const char *name, *type, *help;
} fam_def[PX_F__N] = {
	[PX_F_REQUESTS] = {"pillion_proxy_requests_total", "counter",
			   "HTTP requests answered, by direction, destination service, route, class and code"},
	[PX_F_DURATION] = {"pillion_proxy_request_duration_seconds", "histogram",
			   "Time from a request head to its response head passed on (or the proxy's own answer)"},
	[PX_F_RETRIES] = {"pillion_proxy_retries_total", "counter", "Retries sent, by route"},
	[PX_F_BUDGET_EXHAUSTED] = {"pillion_proxy_retry_budget_exhausted_total", "counter",
				   "Retries not sent because the route's retry budget was spent"},
	[PX_F_EJECTIONS] = {"pillion_proxy_circuit_breaker_total", "counter",
			    "Circuit breaker events: a backend ejected after consecutive failures, or a request refused "
			    "at maxPending"},
	[PX_F_DENIED] = {"pillion_proxy_authorization_denied_total", "counter",
			 "Inbound requests no authorization rule allowed, by policy"},
	[PX_F_RATE_LIMITED] = {"pillion_proxy_rate_limited_total", "counter", "Inbound requests refused with 429"},
	[PX_F_LOCAL] = {"pillion_proxy_local_responses_total", "counter",
			"Responses the proxy gave itself instead of the upstream's, by cause"},
	[PX_F_UPSTREAM_CONNS] = {"pillion_proxy_upstream_connections_total", "counter",
				 "HTTP upstream connections opened (each is reused across requests)"},
	[PX_F_ACCESS_LOG] = {"pillion_proxy_access_log_lines_total", "counter",
			     "Access log lines queued for stdout, or dropped because the reader fell 4 MiB behind"},
	[PX_F_GRPC] = {"pillion_proxy_grpc_responses_total", "counter",
		       "gRPC calls answered, by direction, destination service, route and grpc-status (the server's "
		       "or the proxy's own)"},
};

void px_stats_init(proxy *px)
{
	px->fam = calloc(PX_F__N, sizeof(px_family));
	if (!px->fam)
		abort();
	for (int i = 0; i < PX_F__N; i++) {
		px->fam[i].name = fam_def[i].name;
		px->fam[i].type = fam_def[i].type;
		px->fam[i].help = fam_def[i].help;
	}
}

static void map_free(pl_hmap *m)
{
	size_t it = 0;
	pl_hmap_slot *s;

	while ((s = pl_hmap_next(m, &it))) {
		free((char *)s->key);
		free(s->value);
	}
	pl_hmap_free(m);
}

void px_stats_free(proxy *px)
{
	if (px->fam)
		for (int i = 0; i < PX_F__N; i++)
			map_free(&px->fam[i].series);
	free(px->fam);
	px->fam = NULL;
	map_free(&px->rt);
}

/* The value under key, created zeroed (size bytes) on first use; map owns key copies and values. */
static void *get_or_new(pl_hmap *m, const char *key, size_t size)
{
	void *v = pl_hmap_get(m, key);

	if (v)
		return v;
	v = calloc(1, size);
	char *k = strdup(key);
	if (!v || !k)
		abort();
	pl_hmap_put(m, k, v);
	return v;
}

static void *series(px_family *f, const char *labels, size_t size) { return get_or_new(&f->series, labels, size); }

void px_stats_inc(proxy *px, enum px_fam f, const char *labels)
{
	if (!px->fam)
		return;
	uint64_t *c = series(&px->fam[f], labels, sizeof(uint64_t));
	(*c)++;
}

void px_stats_request_series(proxy *px, int dir, const char *service, const char *route, int code, uint64_t **ctr,
			     px_hist **hist)
{
	char lbl[800];
	const char *d = dir == PX_OUT ? "outbound" : "inbound";

	snprintf(lbl, sizeof(lbl), "direction=\"%s\",service=\"%s\",route=\"%s\",class=\"%dxx\",code=\"%d\"", d,
		 service, route, code / 100, code);
	*ctr = series(&px->fam[PX_F_REQUESTS], lbl, sizeof(uint64_t));
	snprintf(lbl, sizeof(lbl), "direction=\"%s\",service=\"%s\",route=\"%s\"", d, service, route);
	*hist = series(&px->fam[PX_F_DURATION], lbl, sizeof(px_hist));
}

void px_stats_observe(px_hist *h, int64_t ns)
{
	double s = (double)ns / 1e9;
	for (int i = 0; i < PX_LAT_BUCKETS; i++)
		if (s <= lat_le[i]) {
			h->b[i]++;
			break;
		}
	h->count++;
	h->sum += s;
}

void px_stats_render(const proxy *px, pl_buf *b)
{
	if (!px->fam)
		return;
	for (int i = 0; i < PX_F__N; i++) {
		const px_family *f = &px->fam[i];
		size_t it = 0;
		pl_hmap_slot *s;
		pl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
		while ((s = pl_hmap_next(&f->series, &it))) {
			if (i != PX_F_DURATION) {
				pl_buf_printf(b, "%s{%s} %llu\n", f->name, s->key,
					      (unsigned long long)*(const uint64_t *)s->value);
				continue;
			}
			const px_hist *h = s->value;
			uint64_t cum = 0;
			for (int k = 0; k < PX_LAT_BUCKETS; k++) {
				cum += h->b[k];
				pl_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", f->name, s->key, lat_le[k],
					      (unsigned long long)cum);
			}
			pl_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", f->name, s->key, (unsigned long long)h->count);
			pl_buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", f->name, s->key, h->sum, f->name, s->key,
				      (unsigned long long)h->count);
		}
	}
}

px_rt *px_rt_get(proxy *px, const char *key)
{
	px_rt *r = pl_hmap_get(&px->rt, key);

	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	char *k = strdup(key);
	if (!r || !k)
		abort();
	r->key = k; /* the map's own copy: entries live as long as the proxy */
	pl_hmap_put(&px->rt, k, r);
	return r;
}
