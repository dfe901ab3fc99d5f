/* The operator's health and metrics endpoint: /healthz, /readyz, /metrics, one blocking thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/version.h"
#include "operator.h"

static const char *store_names[ST__N] = {"pods", "services", "namespaces", "trafficpolicies", "meshidentities",
					 "configmaps", "secrets", "mutatingwebhookconfigurations"};

const double op_reconcile_bounds[OP_RECONCILE_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};

void op_api_observe(void *ctx, const char *verb, long code, double seconds)
{
	op *o = ctx;
	int i;

	pthread_mutex_lock(&o->mu);
	for (i = 0; i < o->napi; i++)
		if (o->api[i].code == code && strcmp(o->api[i].verb, verb) == 0)
			break;
	if (i == o->napi && o->napi < OP_API_SERIES) {
		snprintf(o->api[i].verb, sizeof(o->api[i].verb), "%s", verb);
		o->api[i].code = code;
		o->napi++;
	}
	if (i < o->napi) {
		o->api[i].n++;
		o->api[i].seconds += seconds;
	}
	pthread_mutex_unlock(&o->mu);
}

static void metrics(op *o, pl_buf *b)
{
	op_metrics m;
	op_api_series api[OP_API_SERIES];
	int napi;

	pthread_mutex_lock(&o->mu);
	m = o->m;
	napi = o->napi;
	memcpy(api, o->api, sizeof(api[0]) * (size_t)napi);
	pthread_mutex_unlock(&o->mu);
	pl_version_metric(b);
	pl_buf_printf(b, "# HELP pillion_operator_api_requests_total Kubernetes API requests (each attempt) by verb and HTTP code (0: no answer).\n"
		      "# TYPE pillion_operator_api_requests_total counter\n");
	for (int i = 0; i < napi; i++)
		pl_buf_printf(b, "pillion_operator_api_requests_total{verb=\"%s\",code=\"%ld\"} %llu\n", api[i].verb, api[i].code,
			      (unsigned long long)api[i].n);
	pl_buf_printf(b, "# HELP pillion_operator_api_request_seconds_total Time spent in Kubernetes API requests (a watch counts until it ends).\n"
		      "# TYPE pillion_operator_api_request_seconds_total counter\n");
	for (int i = 0; i < napi; i++)
		pl_buf_printf(b, "pillion_operator_api_request_seconds_total{verb=\"%s\",code=\"%ld\"} %.6f\n", api[i].verb,
			      api[i].code, api[i].seconds);
	pl_buf_printf(b, "# HELP pillion_operator_reconciles_total Reconciles by result.\n# TYPE pillion_operator_reconciles_total counter\n");
	pl_buf_printf(b, "pillion_operator_reconciles_total{result=\"ok\"} %llu\n", (unsigned long long)m.reconciles_ok);
	pl_buf_printf(b, "pillion_operator_reconciles_total{result=\"error\"} %llu\n", (unsigned long long)m.reconciles_err);
	pl_buf_printf(b, "# HELP pillion_operator_reconcile_duration_seconds Time per reconcile.\n# TYPE pillion_operator_reconcile_duration_seconds histogram\n");
	for (int i = 0; i < OP_RECONCILE_BUCKETS; i++)
		pl_buf_printf(b, "pillion_operator_reconcile_duration_seconds_bucket{le=\"%g\"} %llu\n", op_reconcile_bounds[i],
			      (unsigned long long)m.reconcile_le[i]);
	pl_buf_printf(b, "pillion_operator_reconcile_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		      (unsigned long long)(m.reconciles_ok + m.reconciles_err));
	pl_buf_printf(b, "pillion_operator_reconcile_duration_seconds_sum %.6f\n", (double)m.reconcile_ns_total / 1e9);
	pl_buf_printf(b, "pillion_operator_reconcile_duration_seconds_count %llu\n",
		      (unsigned long long)(m.reconciles_ok + m.reconciles_err));
	pl_buf_printf(b, "# HELP pillion_operator_queue_depth Keys waiting (ready and delayed).\n# TYPE pillion_operator_queue_depth gauge\n");
	pl_buf_printf(b, "pillion_operator_queue_depth{state=\"ready\"} %zu\n", pl_wq_len(o->q));
	pl_buf_printf(b, "pillion_operator_queue_depth{state=\"delayed\"} %zu\n", pl_wq_delayed(o->q));
	pl_buf_printf(b, "# HELP pillion_operator_proxy_queue_depth Questions to proxies (their /status) waiting.\n"
			 "# TYPE pillion_operator_proxy_queue_depth gauge\n");
	pl_buf_printf(b, "pillion_operator_proxy_queue_depth{state=\"ready\"} %zu\n", pl_wq_len(o->sq));
	pl_buf_printf(b, "pillion_operator_proxy_queue_depth{state=\"delayed\"} %zu\n", pl_wq_delayed(o->sq));
	pl_buf_printf(b, "# HELP pillion_operator_writes_total Objects written by kind.\n# TYPE pillion_operator_writes_total counter\n");
	pl_buf_printf(b, "pillion_operator_writes_total{kind=\"configmap\"} %llu\n", (unsigned long long)m.configmaps_written);
	pl_buf_printf(b, "pillion_operator_writes_total{kind=\"secret\"} %llu\n", (unsigned long long)m.secrets_written);
	pl_buf_printf(b, "pillion_operator_writes_total{kind=\"mesh\"} %llu\n", (unsigned long long)m.mesh_written);
	pl_buf_printf(b, "pillion_operator_writes_total{kind=\"status\"} %llu\n", (unsigned long long)m.status_written);
	pl_buf_printf(b, "pillion_operator_writes_total{kind=\"pod_refresh\"} %llu\n", (unsigned long long)m.pods_refreshed);
	pl_buf_printf(b, "pillion_operator_writes_total{kind=\"webhookconfiguration\"} %llu\n",
		      (unsigned long long)m.webhook_configs_written);
	pl_buf_printf(b, "# HELP pillion_operator_certificates_issued_total Leaf certificates issued.\n# TYPE pillion_operator_certificates_issued_total counter\n");
	pl_buf_printf(b, "pillion_operator_certificates_issued_total %llu\n", (unsigned long long)m.certificates_issued);
	/* Known on the leader once it has read or issued the certificate; absent elsewhere (no sample beats a fake 0). */
	if (m.webhook_cert_not_after > 0)
		pl_buf_printf(b, "# HELP pillion_operator_webhook_certificate_expiration_timestamp_seconds When the webhook's serving certificate expires (unix seconds).\n"
			      "# TYPE pillion_operator_webhook_certificate_expiration_timestamp_seconds gauge\n"
			      "pillion_operator_webhook_certificate_expiration_timestamp_seconds %lld\n",
			      (long long)m.webhook_cert_not_after);
	pl_buf_printf(b, "# HELP pillion_operator_events_total Kubernetes Events posted, or dropped over the budget (%d, then %g/s).\n"
		      "# TYPE pillion_operator_events_total counter\n", OP_EVENT_BURST, OP_EVENT_PER_S);
	pl_buf_printf(b, "pillion_operator_events_total{result=\"posted\"} %llu\n", (unsigned long long)m.events_posted);
	pl_buf_printf(b, "pillion_operator_events_total{result=\"dropped\"} %llu\n", (unsigned long long)m.events_dropped);
	pl_buf_printf(b, "# HELP pillion_operator_watch_total List and watch activity per resource.\n# TYPE pillion_operator_watch_total counter\n");
	for (int i = 0; i < ST__N; i++) {
		pl_reflector_stats s = {0};
		if (i == ST_WEBHOOKCONFIGS && !o->set.webhook)
			continue;
		if (o->refl[i])
			pl_reflector_stats_get(o->refl[i], &s);
		pl_buf_printf(b, "pillion_operator_watch_total{resource=\"%s\",event=\"list\"} %llu\n", store_names[i], (unsigned long long)s.lists);
		pl_buf_printf(b, "pillion_operator_watch_total{resource=\"%s\",event=\"relist\"} %llu\n", store_names[i], (unsigned long long)s.relists);
		pl_buf_printf(b, "pillion_operator_watch_total{resource=\"%s\",event=\"restart\"} %llu\n", store_names[i], (unsigned long long)s.watch_restarts);
		pl_buf_printf(b, "pillion_operator_watch_total{resource=\"%s\",event=\"error\"} %llu\n", store_names[i], (unsigned long long)s.errors);
	}
	pl_buf_printf(b, "# HELP pillion_operator_leader 1 while this replica holds the lease.\n# TYPE pillion_operator_leader gauge\npillion_operator_leader %d\n", o->leader ? 1 : 0);
}

static void serve(op *o, int fd)
{
	char req[4096], method[16] = "", path[256] = "";
	struct timeval tv = {5, 0};
	pl_buf body = PL_BUF_INIT, out = PL_BUF_INIT;
	int code = 200;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t n = recv(fd, req, sizeof(req) - 1, 0);
	if (n <= 0)
		return;
	req[n] = '\0';
	sscanf(req, "%15s %255s", method, path);
	if (strcmp(path, "/healthz") == 0) {
		pl_buf_puts(&body, "ok\n");
	} else if (strcmp(path, "/readyz") == 0) {
		/* A standby with warm caches is ready (a rollout can finish); the leader once its CA is loaded. */
		bool ok = o->synced && (o->ready || !o->leader);
		code = ok ? 200 : 503;
		pl_buf_puts(&body, !o->synced ? "caches syncing\n" : !ok ? "loading the mesh CA\n" :
			    o->ready ? "ready: leader\n" : "ready: standby\n");
	} else if (strcmp(path, "/metrics") == 0) {
		metrics(o, &body);
	} else {
		code = 404;
		pl_buf_puts(&body, "not found: /healthz /readyz /metrics\n");
	}
	pl_buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		      code, code == 200 ? "OK" : code == 503 ? "Service Unavailable" : "Not Found", body.len);
	pl_buf_append(&out, body.data, body.len);
	for (size_t sent = 0; sent < out.len;) {
		ssize_t w = send(fd, out.data + sent, out.len - sent, MSG_NOSIGNAL);
		if (w <= 0)
			break;
		sent += (size_t)w;
	}
	pl_buf_free(&body);
	pl_buf_free(&out);
}

static int lfd = -1;

static void *loop(void *arg)
{
	op *o = arg;

	while (!o->stop) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		serve(o, fd);
		close(fd);
	}
	return NULL;
}

int op_http_start(op *o)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->set.metrics_port)};
	int one = 1;

	if (inet_pton(AF_INET, o->set.metrics_addr, &a.sin_addr) != 1)
		return -EINVAL;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 64) < 0) {
		int e = errno;
		log_errorx("metrics listener %s:%d: %s", o->set.metrics_addr, o->set.metrics_port, strerror(e));
		close(lfd);
		return -e;
	}
	pthread_t t;
	pthread_create(&t, NULL, loop, o);
	pthread_detach(t);
	return 0;
}
