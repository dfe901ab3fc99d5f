/* pillionctl check: inspects an installed Pillion through the Kubernetes API and reports one line per finding. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base64.h"
#include "base/duration.h"
#include "check.h"
#include "check_eval.h"
#include "json/json.h"
#include "kube/kube.h"
#include "pki/ca.h"

#define CHECK_USAGE                                                                                            \
	"usage: pillionctl check [--kubeconfig FILE] [--context NAME] [--namespace NS] [--expiry-warning DURATION]\n"
#define SECRET_GRACE_S 60 /* the operator writes a new pod's Secret within seconds; younger pods only warn */

enum level { L_OK, L_WARN, L_FAIL };

typedef struct check_ctx {
	pl_kube *k;
	const char *ns;   /* where the control plane runs */
	int64_t now;
	int64_t warn_s;   /* certificates expiring sooner than this fail */
	int fails, warns;
} check_ctx;

__attribute__((format(printf, 3, 4))) static void report(check_ctx *c, enum level lv, const char *fmt, ...)
{
	va_list ap;

	fputs(lv == L_OK ? "ok   " : lv == L_WARN ? "warn " : "FAIL ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (lv == L_FAIL)
		c->fails++;
	else if (lv == L_WARN)
		c->warns++;
}

/* RFC 3339 "2024-05-01T12:00:00Z" (what metadata.creationTimestamp holds) to unix seconds; -1 when unreadable. */
static int64_t parse_time(const char *s)
{
	int y, mo, d, h, mi, sec;
	int64_t days;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6 || mo < 1 || mo > 12)
		return -1;
	/* days from civil (Howard Hinnant), avoiding timegm's feature macros */
	y -= mo <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	days = era * 146097 + doe - 719468;
	return days * 86400 + h * 3600 + mi * 60 + sec;
}

static void fmt_left(int64_t s, char *out, size_t size)
{
	pl_duration_format(s * PL_NS_PER_S, out, size);
}

/* A Secret's data key decoded; malloc'ed, owned by the caller; NULL when absent or not base64. */
static char *secret_field(const json_t *secret, const char *key, size_t *len)
{
	const char *b64 = pl_json_get_str(json_object_get(secret, "data"), key);

	return b64 ? pl_base64_decode(b64, len) : NULL;
}

static bool api_lists(const json_t *group, const char *resource)
{
	size_t i;
	json_t *r;

	json_array_foreach(json_object_get(group, "resources"), i, r) {
		const char *name = pl_json_get_str(r, "name");
		if (name && strcmp(name, resource) == 0)
			return true;
	}
	return false;
}

static void check_crds(check_ctx *c)
{
	static const char *const plurals[] = {"trafficpolicies", "meshidentities"};
	pl_kube_status st = {0};
	json_t *g = NULL;
	int rc = pl_kube_get(c->k, "/apis/pillion.dev/v1alpha1", &g, &st);

	if (rc != 0) {
		report(c, L_FAIL, "CRDs: pillion.dev/v1alpha1 is not served (%s): apply crds/", st.message);
		return;
	}
	for (size_t i = 0; i < sizeof(plurals) / sizeof(plurals[0]); i++) {
		if (api_lists(g, plurals[i]))
			report(c, L_OK, "CRD %s.pillion.dev is served", plurals[i]);
		else
			report(c, L_FAIL, "CRD %s.pillion.dev: not served by pillion.dev/v1alpha1", plurals[i]);
	}
	json_decref(g);
}

static void check_deployments(check_ctx *c)
{
	static const char *const names[] = {"pillion-operator", "pillion-webhook"};
	pl_kube_status st = {0};
	json_t *g = NULL;
	char path[512];

	/* A 404 on the group (an API server without apps/v1, such as the e2e double) is not a missing install. */
	if (pl_kube_get(c->k, "/apis/apps/v1", &g, &st) != 0 || !api_lists(g, "deployments")) {
		report(c, L_WARN, "deployments %s/pillion-operator, %s/pillion-webhook: apps/v1 deployments not served "
				  "by this API server, cannot verify", c->ns, c->ns);
		json_decref(g);
		return;
	}
	json_decref(g);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		json_t *d = NULL;
		char why[256];
		int rc;

		if (pl_kube_path(path, sizeof(path), "apps", "v1", c->ns, "deployments", names[i], NULL) != 0)
			continue;
		rc = pl_kube_get(c->k, path, &d, &st);
		if (rc == -ENOENT) {
			report(c, L_FAIL, "deployment %s/%s: not installed", c->ns, names[i]);
			continue;
		}
		if (rc != 0) {
			report(c, L_FAIL, "deployment %s/%s: %s", c->ns, names[i], st.message);
			continue;
		}
		if (check_deployment_serves(d, why, sizeof(why)))
			report(c, L_OK, "deployment %s/%s is %s", c->ns, names[i], why);
		else
			report(c, L_FAIL, "deployment %s/%s: %s", c->ns, names[i], why);
		json_decref(d);
	}
}

/* The webhook's Service must have a ready endpoint, or the API server cannot call it and (with
 * failurePolicy Fail) refuses every pod in a labelled namespace. */
static void check_webhook_endpoints(check_ctx *c, const json_t *webhook)
{
	const json_t *svc = json_object_get(json_object_get(webhook, "clientConfig"), "service");
	const char *ns = pl_json_get_str(svc, "namespace"), *name = pl_json_get_str(svc, "name");
	pl_kube_status st = {0};
	json_t *ep = NULL;
	char path[512];
	int ready, not_ready, rc;

	if (!ns || !name)
		return; /* a url webhook: nothing in the cluster to look at */
	/* An API server that serves no v1 endpoints (such as the e2e double) cannot tell us. */
	if (pl_kube_get(c->k, "/api/v1", &ep, &st) != 0 || !api_lists(ep, "endpoints")) {
		report(c, L_WARN, "service %s/%s: v1 endpoints not served by this API server, cannot verify", ns, name);
		json_decref(ep);
		return;
	}
	json_decref(ep);
	ep = NULL;
	if (pl_kube_path(path, sizeof(path), NULL, "v1", ns, "endpoints", name, NULL) != 0)
		return;
	rc = pl_kube_get(c->k, path, &ep, &st);
	if (rc == -ENOENT) {
		report(c, L_FAIL, "service %s/%s: no Endpoints object (the Service is missing, or selects nothing)", ns,
		       name);
		return;
	}
	if (rc != 0) {
		report(c, L_FAIL, "service %s/%s: endpoints: %s", ns, name, st.message);
		return;
	}
	check_endpoints_count(ep, &ready, &not_ready);
	if (ready > 0)
		report(c, L_OK, "service %s/%s has %d ready endpoint(s)", ns, name, ready);
	else
		report(c, L_FAIL, "service %s/%s has no ready endpoint (%d not ready): the API server cannot call the "
				  "webhook, and pods in labelled namespaces are refused", ns, name, not_ready);
	json_decref(ep);
}

/* "expires in 3h" / "expired ..." findings for a certificate; true when it is still good. */
static bool check_expiry(check_ctx *c, const char *what, const char *pem, size_t len)
{
	int64_t nb, na;
	char left[32];

	if (pl_cert_times(pem, len, &nb, &na, NULL, 0) != 0) {
		report(c, L_FAIL, "%s: tls.crt holds no readable certificate", what);
		return false;
	}
	if (na <= c->now) {
		fmt_left(c->now - na, left, sizeof(left));
		report(c, L_FAIL, "%s: certificate expired %s ago", what, left);
		return false;
	}
	/* Short-lived workload certificates (24 h) renew well before a 24 h warning; judge them against a quarter of their life. */
	if (na - c->now < (c->warn_s < (na - nb) / 4 ? c->warn_s : (na - nb) / 4)) {
		fmt_left(na - c->now, left, sizeof(left));
		report(c, L_FAIL, "%s: certificate expires in %s (renewal is overdue)", what, left);
		return false;
	}
	return true;
}

static void check_webhook(check_ctx *c)
{
	pl_kube_status st = {0};
	json_t *mwc = NULL, *sec = NULL, *w;
	char path[512], what[320], left[32];
	char *crt = NULL;
	size_t crtlen = 0, i;
	int rc;

	rc = pl_kube_get(c->k, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pillion-webhook",
			 &mwc, &st);
	if (rc != 0) {
		report(c, L_FAIL, "MutatingWebhookConfiguration pillion-webhook: %s",
		       rc == -ENOENT ? "not installed" : st.message);
		return;
	}
	report(c, L_OK, "MutatingWebhookConfiguration pillion-webhook exists");
	snprintf(what, sizeof(what), "secret %s/pillion-webhook-tls", c->ns);
	if (pl_kube_path(path, sizeof(path), NULL, "v1", c->ns, "secrets", "pillion-webhook-tls", NULL) == 0)
		rc = pl_kube_get(c->k, path, &sec, &st);
	if (rc != 0 || !(crt = secret_field(sec, "tls.crt", &crtlen))) {
		report(c, L_FAIL, "%s: %s", what, rc == -ENOENT ? "missing (the operator issues it)"
							    : rc ? st.message : "no tls.crt");
		goto out;
	}
	json_array_foreach(json_object_get(mwc, "webhooks"), i, w) {
		const char *name = pl_json_get_str(w, "name");
		const char *b64 = pl_json_get_str(json_object_get(w, "clientConfig"), "caBundle");
		size_t blen = 0;
		char *bundle = b64 && *b64 ? pl_base64_decode(b64, &blen) : NULL;

		if (!name)
			name = "(unnamed)";
		if (i == 0)
			check_webhook_endpoints(c, w);
		if (!bundle)
			report(c, L_FAIL, "webhook %s: caBundle is %s", name, b64 && *b64 ? "not base64" : "empty");
		else if (pl_cert_signed_by(crt, crtlen, bundle, blen, c->now))
			report(c, L_OK, "webhook %s: caBundle verifies the serving certificate in %s", name, what);
		else
			report(c, L_FAIL, "webhook %s: caBundle does not verify the serving certificate in %s "
					  "(the API server will refuse the webhook's TLS)", name, what);
		free(bundle);
	}
	if (check_expiry(c, what, crt, crtlen)) {
		int64_t nb, na;
		pl_cert_times(crt, crtlen, &nb, &na, NULL, 0);
		fmt_left(na - c->now, left, sizeof(left));
		report(c, L_OK, "%s: certificate valid for %s", what, left);
	}
out:
	free(crt);
	json_decref(sec);
	json_decref(mwc);
}

static bool has_proxy(const json_t *spec)
{
	static const char *const lists[] = {"containers", "initContainers"};
	size_t i;
	json_t *ct;

	for (size_t l = 0; l < 2; l++)
		json_array_foreach(json_object_get(spec, lists[l]), i, ct) {
			const char *n = pl_json_get_str(ct, "name");
			if (n && strcmp(n, "pillion-proxy") == 0)
				return true;
		}
	return false;
}

/* Check 5: the identity the operator issued for an injected pod. Returns true when it is fine. */
static bool check_pod_identity(check_ctx *c, const char *ns, const char *pod, const char *id, int64_t created)
{
	pl_kube_status st = {0};
	char name[300], path[600], what[700];
	json_t *sec = NULL;
	char *crt;
	size_t len = 0;
	bool good;
	int rc = -EINVAL;

	snprintf(name, sizeof(name), "pillion-%s-tls", id);
	snprintf(what, sizeof(what), "pod %s/%s: secret %s", ns, pod, name);
	if (pl_kube_path(path, sizeof(path), NULL, "v1", ns, "secrets", name, NULL) == 0)
		rc = pl_kube_get(c->k, path, &sec, &st);
	if (rc == -ENOENT || rc == -EINVAL) {
		if (created >= 0 && c->now - created < SECRET_GRACE_S)
			report(c, L_WARN, "%s: not written yet (pod is %llds old)", what, (long long)(c->now - created));
		else
			report(c, L_FAIL, "%s: missing (is pillion-operator running?)", what);
		return false;
	}
	if (rc != 0) {
		report(c, L_FAIL, "%s: %s", what, st.message);
		return false;
	}
	crt = secret_field(sec, "tls.crt", &len);
	good = crt ? check_expiry(c, what, crt, len) : false;
	if (!crt)
		report(c, L_FAIL, "%s: no tls.crt", what);
	free(crt);
	json_decref(sec);
	return good;
}

static void check_namespace(check_ctx *c, const char *ns)
{
	pl_kube_status st = {0};
	char path[512], rv[PL_KUBE_RV_MAX];
	json_t *pods = NULL, *p;
	size_t i;
	int injected = 0, skipped = 0, bad = 0, ids_ok = 0;

	if (pl_kube_path(path, sizeof(path), NULL, "v1", ns, "pods", NULL, NULL) != 0 ||
	    pl_kube_list(c->k, path, NULL, 0, &pods, rv, sizeof(rv), &st) != 0) {
		report(c, L_FAIL, "namespace %s: cannot list pods: %s", ns, st.message);
		return;
	}
	json_array_foreach(pods, i, p) {
		json_t *meta = json_object_get(p, "metadata"), *spec = json_object_get(p, "spec");
		json_t *ann = json_object_get(meta, "annotations");
		const char *name = pl_json_get_str(meta, "name"), *phase = pl_json_get_str(json_object_get(p, "status"), "phase");
		const char *opt = pl_json_get_str(ann, "pillion.dev/inject"), *id = pl_json_get_str(ann, "pillion.dev/id");

		if (!name || json_object_get(meta, "deletionTimestamp"))
			continue;
		if ((opt && strcmp(opt, "disabled") == 0) || json_is_true(json_object_get(spec, "hostNetwork"))) {
			skipped++;
			continue;
		}
		if (!has_proxy(spec)) {
			/* The webhook was down (or the namespace not yet labelled) when the pod was created. */
			report(c, L_FAIL, "pod %s/%s: no pillion-proxy container (created before the namespace was "
					  "labelled or while the webhook was down): delete it to have it re-created injected",
			       ns, name);
			bad++;
			continue;
		}
		injected++;
		if (id && *id && !(phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)))
			ids_ok += check_pod_identity(c, ns, name, id,
						     parse_time(pl_json_get_str(meta, "creationTimestamp")));
	}
	if (!bad)
		report(c, L_OK, "namespace %s: %d pod(s) injected (%d with a valid identity), %d opted out", ns,
		       injected, ids_ok, skipped);
	json_decref(pods);
}

static void check_pods(check_ctx *c)
{
	pl_kube_status st = {0};
	char rv[PL_KUBE_RV_MAX];
	json_t *nss = NULL, *n;
	size_t i;

	if (pl_kube_list(c->k, "/api/v1/namespaces", "labelSelector=pillion.dev%2Finject%3Denabled", 0, &nss, rv,
			 sizeof(rv), &st) != 0) {
		report(c, L_FAIL, "namespaces: cannot list: %s", st.message);
		return;
	}
	if (json_array_size(nss) == 0)
		report(c, L_WARN, "no namespace is labelled pillion.dev/inject=enabled");
	json_array_foreach(nss, i, n) {
		const char *name = pl_json_get_str(json_object_get(n, "metadata"), "name");
		if (name)
			check_namespace(c, name);
	}
	json_decref(nss);
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kubeconfig", required_argument, NULL, 'k'},
		{"context", required_argument, NULL, 'c'},
		{"namespace", required_argument, NULL, 'n'},
		{"expiry-warning", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *kubeconfig = NULL, *context = NULL;
	check_ctx c = {.ns = "pillion-system", .warn_s = 86400};
	pl_kube_config cfg;
	pl_kube_status st = {0};
	char err[512];
	int64_t ns_val;
	json_t *v = NULL;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			kubeconfig = optarg;
			break;
		case 'c':
			context = optarg;
			break;
		case 'n':
			c.ns = optarg;
			break;
		case 'e':
			if (pl_duration_parse(optarg, &ns_val) != 0) {
				fprintf(stderr, "pillionctl check: --expiry-warning: \"%s\" is not a duration (24h, 90m)\n",
					optarg);
				return 2;
			}
			c.warn_s = ns_val / PL_NS_PER_S;
			break;
		case 'h':
			printf(CHECK_USAGE
			       "  Checks the CRDs, the operator and webhook Deployments, the webhook's caBundle and\n"
			       "  certificate, and the pods of namespaces labelled pillion.dev/inject=enabled.\n"
			       "  --namespace defaults to pillion-system, --expiry-warning to 24h: a certificate fails when\n"
			       "  it expires sooner than that or than a quarter of its lifetime, whichever is shorter.\n"
			       "  Exit 0: nothing failed; 1: something failed; 2: usage or connection error.\n");
			return 0;
		default:
			fputs(CHECK_USAGE, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fputs(CHECK_USAGE, stderr);
		return 2;
	}
	memset(&cfg, 0, sizeof(cfg));
	if (pl_kube_config_load(&cfg, kubeconfig, context, err, sizeof(err)) != 0) {
		fprintf(stderr, "pillionctl check: %s\n", err);
		return 2;
	}
	c.k = pl_kube_new(&cfg, 0, 0);
	if (!c.k) {
		fprintf(stderr, "pillionctl check: %s: no usable API server\n", cfg.source ? cfg.source : "kubeconfig");
		pl_kube_config_free(&cfg);
		return 2;
	}
	pl_kube_set_retry(c.k, 2, 1000);
	pl_kube_set_timeouts(c.k, 5, 30, 120);
	/* One cheap call first, so an unreachable or refusing server is a connection error, not five failures. */
	if (pl_kube_get(c.k, "/version", &v, &st) != 0) {
		fprintf(stderr, "pillionctl check: %s: %s\n", cfg.server, st.message);
		pl_kube_free(c.k);
		pl_kube_config_free(&cfg);
		return 2;
	}
	json_decref(v);
	c.now = (int64_t)time(NULL);
	check_crds(&c);
	check_deployments(&c);
	check_webhook(&c);
	check_pods(&c);
	printf("%d failed, %d warning(s)\n", c.fails, c.warns);
	pl_kube_free(c.k);
	pl_kube_config_free(&cfg);
	return c.fails ? 1 : 0;
}
