/* The webhook's Prometheus counters: admissions by decision and reason, their latency, errors, certificate reloads. */
#include <string.h>

#include "base/version.h"
#include "webhook.h"

/* Every reason label value: pl_inject_pod's tokens, then the webhook's own. Anything else counts as "other". */
const char *const wh_reasons[] = {
	"injected", "completed", "already-injected", "disabled-by-annotation", "namespace-not-enabled", "host-network",
	"not-a-pod", "invalid-pod", "not-create", "subresource", "too-deep", "invalid-review", "error", "other",
	NULL,
};
#define NREASONS (sizeof(wh_reasons) / sizeof(wh_reasons[0]) - 1)

static const char *const error_kinds[] = {
	"bad_request", "payload_too_large", "unsupported_media_type", "length_required", "not_found",
	"method_not_allowed", "random", "client_gone", NULL,
};
#define NERRORS (sizeof(error_kinds) / sizeof(error_kinds[0]) - 1)

/* Admission latency buckets, seconds: the API server's default webhook timeout is 10 s. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

static struct {
	unsigned long long admissions[2][NREASONS];   /* [injected][reason] */
	unsigned long long le[NBOUNDS], count;
	double sum;
	unsigned long long errors[NERRORS];
	unsigned long long reloads[2];                /* [ok] */
	long long not_after;
} M;

static size_t index_of(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (s && strcmp(names[i], s) == 0)
			return i;
	return n;
}

void wh_metrics_admission(bool injected, const char *reason, double seconds)
{
	size_t r = index_of(wh_reasons, NREASONS, reason);

	if (r == NREASONS)
		r = NREASONS - 1;  /* "other" */
	M.admissions[injected][r]++;
	for (size_t i = 0; i < NBOUNDS; i++)
		if (seconds <= bounds[i])
			M.le[i]++;
	M.count++;
	M.sum += seconds;
}

void wh_metrics_error(const char *kind)
{
	size_t k = index_of(error_kinds, NERRORS, kind);

	if (k < NERRORS)
		M.errors[k]++;
}

void wh_metrics_cert(bool ok, int64_t not_after)
{
	M.reloads[ok]++;
	if (ok)
		M.not_after = not_after;
}

void wh_metrics_render(pl_buf *b, int inflight, bool draining)
{
	pl_version_metric(b);
	pl_buf_puts(b, "# HELP pillion_webhook_admissions_total AdmissionReviews answered (all allowed), by decision and reason.\n"
		       "# TYPE pillion_webhook_admissions_total counter\n");
	for (int inj = 0; inj < 2; inj++)
		for (size_t r = 0; r < NREASONS; r++)
			if (M.admissions[inj][r] || inj == (r == 0))  /* the usual pairs, even at 0 */
				pl_buf_printf(b, "pillion_webhook_admissions_total{decision=\"%s\",reason=\"%s\"} %llu\n",
					      inj ? "injected" : "skipped", wh_reasons[r], M.admissions[inj][r]);
	pl_buf_puts(b, "# HELP pillion_webhook_admission_duration_seconds Time from request headers to answer, per AdmissionReview.\n"
		       "# TYPE pillion_webhook_admission_duration_seconds histogram\n");
	for (size_t i = 0; i < NBOUNDS; i++)
		pl_buf_printf(b, "pillion_webhook_admission_duration_seconds_bucket{le=\"%g\"} %llu\n", bounds[i], M.le[i]);
	pl_buf_printf(b, "pillion_webhook_admission_duration_seconds_bucket{le=\"+Inf\"} %llu\n", M.count);
	pl_buf_printf(b, "pillion_webhook_admission_duration_seconds_sum %.6f\n", M.sum);
	pl_buf_printf(b, "pillion_webhook_admission_duration_seconds_count %llu\n", M.count);
	pl_buf_puts(b, "# HELP pillion_webhook_errors_total Requests refused before any AdmissionReview answer, and other failures, by kind.\n"
		       "# TYPE pillion_webhook_errors_total counter\n");
	for (size_t k = 0; k < NERRORS; k++)
		pl_buf_printf(b, "pillion_webhook_errors_total{kind=\"%s\"} %llu\n", error_kinds[k], M.errors[k]);
	pl_buf_puts(b, "# HELP pillion_webhook_certificate_reloads_total Serving certificate loads by result (a refused pair keeps the last good one).\n"
		       "# TYPE pillion_webhook_certificate_reloads_total counter\n");
	pl_buf_printf(b, "pillion_webhook_certificate_reloads_total{result=\"success\"} %llu\n", M.reloads[1]);
	pl_buf_printf(b, "pillion_webhook_certificate_reloads_total{result=\"failure\"} %llu\n", M.reloads[0]);
	pl_buf_puts(b, "# HELP pillion_webhook_certificate_expiry_timestamp_seconds notAfter of the serving certificate.\n"
		       "# TYPE pillion_webhook_certificate_expiry_timestamp_seconds gauge\n");
	pl_buf_printf(b, "pillion_webhook_certificate_expiry_timestamp_seconds %lld\n", M.not_after);
	pl_buf_puts(b, "# HELP pillion_webhook_requests_in_flight Requests being read or answered.\n"
		       "# TYPE pillion_webhook_requests_in_flight gauge\n");
	pl_buf_printf(b, "pillion_webhook_requests_in_flight %d\n", inflight);
	pl_buf_puts(b, "# HELP pillion_webhook_draining 1 after SIGTERM: no new connections, answering those in flight.\n"
		       "# TYPE pillion_webhook_draining gauge\n");
	pl_buf_printf(b, "pillion_webhook_draining %d\n", draining ? 1 : 0);
}
