/* The admission webhook's serving certificate (Secret <service>-tls, from the mesh CA) and its configuration's caBundle. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base64.h"
#include "base/log.h"
#include "json/json.h"
#include "operator.h"

#define WH_NAMES 4
#define WH_ABSENT_REQUEUE_S 300 /* a missing configuration: its watch says when it comes; this is a safety net */

static int64_t unix_now(void) { return (int64_t)time(NULL); }

/* The names the API server may dial: <svc>.<ns>.svc is what it uses for a clientConfig.service; the others for in-cluster clients. */
typedef struct wh_names {
	char buf[WH_NAMES][300];
	const char *v[WH_NAMES];
} wh_names;

static void names_make(const op *o, wh_names *n)
{
	const char *svc = o->set.webhook_service, *ns = o->set.namespace;

	snprintf(n->buf[0], sizeof(n->buf[0]), "%s.%s.svc", svc, ns);
	snprintf(n->buf[1], sizeof(n->buf[1]), "%s.%s.svc.cluster.local", svc, ns);
	snprintf(n->buf[2], sizeof(n->buf[2]), "%s.%s", svc, ns);
	snprintf(n->buf[3], sizeof(n->buf[3]), "%s", svc);
	for (int i = 0; i < WH_NAMES; i++)
		n->v[i] = n->buf[i];
}

static int64_t renew_before(const op *o) { return o->set.webhook_cert_ttl_s / 3; }

static void note_expiry(op *o, int64_t not_after)
{
	pthread_mutex_lock(&o->mu);
	o->m.webhook_cert_not_after = not_after;
	pthread_mutex_unlock(&o->mu);
}

/*
 * Whether secret holds a certificate to keep: for these names, from the current bundle (ca.crt
 * equal to it, the chain verifying against it), its key, not past 2/3 of its life and not longer
 * than the TTL asked now (a shortened --webhook-cert-ttl takes effect at once). *not_after on success.
 */
static bool usable(const op *o, const json_t *secret, const wh_names *n, int64_t *not_after)
{
	const char *type = pl_json_get_str(secret, "type");
	int64_t nb = 0, na = 0, renew_at, now = unix_now();
	op_tls_pems p;
	bool ok = false;

	if (!type || strcmp(type, "kubernetes.io/tls") != 0)
		return false;
	op_tls_pems_decode(secret, &p);
	if (p.crt && p.key && p.ca && strcmp(p.ca, o->bundle) == 0 &&
	    pl_cert_times(p.crt, p.crtlen, &nb, &na, NULL, 0) == 0 &&
	    op_cert_times_ok(nb, na, o->set.webhook_cert_ttl_s, renew_before(o), now, &renew_at) &&
	    pl_cert_dns_names_match(p.crt, p.crtlen, n->v, WH_NAMES) &&
	    pl_cert_signed_by(p.crt, p.crtlen, o->bundle, strlen(o->bundle), now) &&
	    pl_cert_key_matches(p.crt, p.crtlen, p.key, p.keylen)) {
		*not_after = na;
		ok = true;
	}
	op_tls_pems_clear(&p);
	return ok;
}

/* Issues a certificate and applies the Secret. *not_after and *clamped describe what was issued. */
static int issue(op *o, pl_kube *k, const wh_names *n, int64_t *not_after, bool *clamped)
{
	const char *ns = o->set.namespace, *name = o->webhook_secret;
	char err[512], path[700];
	pl_issued is;
	pl_kube_status st;
	json_t *out = NULL;

	if (pl_ca_issue_server(o->ca, n->v, WH_NAMES, unix_now(), o->set.webhook_cert_ttl_s, &is, err, sizeof(err)) < 0) {
		log_errorx("issue the webhook's certificate for %s: %s", n->v[0], err);
		return -EINVAL;
	}
	pthread_mutex_lock(&o->mu);
	o->m.certificates_issued++;
	pthread_mutex_unlock(&o->mu);
	/* No owner: it lives as long as the install. The label puts it in the operator's Secret cache, so a delete is healed. */
	json_t *obj = op_tls_secret(o, json_pack("{sssss{ssssss}}", "name", name, "namespace", ns, "labels", OP_MANAGED_BY,
						OP_FIELD_MANAGER, "app.kubernetes.io/name", o->set.webhook_service,
						"app.kubernetes.io/part-of", "pillion"), &is);
	*not_after = is.not_after;
	*clamped = is.clamped;
	pl_issued_clear(&is);
	pl_kube_path(path, sizeof(path), NULL, "v1", ns, "secrets", name, NULL);
	int rc = pl_kube_apply(k, path, obj, OP_FIELD_MANAGER, true, &out, &st);
	json_decref(obj);
	if (rc < 0) {
		/* A Secret of another type cannot become kubernetes.io/tls (type is immutable): say so. */
		log_warnx("apply the webhook's Secret %s/%s: HTTP %ld %s: %s", ns, name, st.http, st.reason, st.message);
		return rc;
	}
	pthread_mutex_lock(&o->mu);
	o->m.secrets_written++;
	pthread_mutex_unlock(&o->mu);
	log_info("webhook serving certificate for %s issued into Secret %s/%s, valid until %lld, renewal in %lld s", n->v[0],
		 ns, name, (long long)*not_after, (long long)(*not_after - renew_before(o) - unix_now()));
	if (*clamped)
		log_warnx("the mesh CA expires before the webhook's certificate would: it was cut to the CA's notAfter; renew the CA");
	if (out) {
		char msg[600];
		snprintf(msg, sizeof(msg), "webhook serving certificate for %s issued, valid until %lld (unix)", n->v[0],
			 (long long)*not_after);
		op_post_event(o, k, out, "Normal", "CertificateIssued", msg);
		json_decref(out);
	}
	return 0;
}

/*
 * The Secret: kept when usable. The cache can lag behind a write this process just made (its
 * watch event still in flight while another event runs this reconcile), so before issuing, the
 * live object is read: a certificate is never issued twice for one renewal.
 */
static int ensure_secret(op *o, pl_kube *k, const wh_names *n, int64_t *not_after, bool *clamped)
{
	char key[600], path[700];
	pl_kube_status st;
	json_t *live = NULL;

	*clamped = false;
	snprintf(key, sizeof(key), "%s/%s", o->set.namespace, o->webhook_secret);
	json_t *cached = pl_store_get(o->st[ST_SECRETS], key);
	bool ok = cached && usable(o, cached, n, not_after);
	json_decref(cached);
	if (ok)
		return 0;
	pl_kube_path(path, sizeof(path), NULL, "v1", o->set.namespace, "secrets", o->webhook_secret, NULL);
	int rc = pl_kube_get(k, path, &live, &st);
	if (rc < 0 && rc != -ENOENT) {
		log_warnx("get the webhook's Secret %s: HTTP %ld %s: %s", path, st.http, st.reason, st.message);
		return rc;
	}
	ok = live && usable(o, live, n, not_after);
	json_decref(live);
	if (ok)
		return 0;
	return issue(o, k, n, not_after, clamped);
}

/* webhooks[*].clientConfig.caBundle = the bundle, by a JSON patch of the entries that differ. 1 patched, 0 nothing to do. */
static int ensure_ca_bundle(op *o, pl_kube *k, bool *absent)
{
	const char *name = o->set.webhook_config;
	json_t *cfg = pl_store_get(o->st[ST_WEBHOOKCONFIGS], name), *w;
	size_t i;
	int rc = 0;

	*absent = cfg == NULL;
	if (!cfg) {
		/* Not installed yet (or the webhook is not used): not an error; its watch brings it. */
		if (!o->webhook_config_absent)
			log_info("MutatingWebhookConfiguration %s not found: its caBundle will be set once it exists", name);
		o->webhook_config_absent = true;
		return 0;
	}
	o->webhook_config_absent = false;
	/* The cache still shows the version our last patch changed: its event is on the way. */
	const char *rv = pl_json_get_str(json_object_get(cfg, "metadata"), "resourceVersion");
	if (rv && strcmp(rv, o->webhook_patched_rv) == 0) {
		json_decref(cfg);
		return 0;
	}
	char *want = pl_base64_encode(o->bundle, strlen(o->bundle));
	/*
	 * A JSON patch, not an apply: an apply may create the object, which would need create on
	 * every webhook configuration (a cluster takeover grant); a patch needs only patch on this
	 * one name. Each change is guarded by a test of the entry's name, so an entry moved or
	 * removed meanwhile fails the patch (422) and the next event retries on fresh data.
	 */
	json_t *ops = json_array();
	json_array_foreach(json_object_get(cfg, "webhooks"), i, w) {
		const char *wn = pl_json_get_str(w, "name");
		json_t *cc = json_object_get(w, "clientConfig");
		const char *have = pl_json_get_str(cc, "caBundle");
		if (!wn || !json_is_object(cc) || (have && strcmp(have, want) == 0))
			continue;
		char p[64];
		snprintf(p, sizeof(p), "/webhooks/%zu/name", i);
		json_array_append_new(ops, json_pack("{ssssss}", "op", "test", "path", p, "value", wn));
		snprintf(p, sizeof(p), "/webhooks/%zu/clientConfig/caBundle", i);
		json_array_append_new(ops, json_pack("{ssssss}", "op", "add", "path", p, "value", want));
	}
	if (json_array_size(ops)) {
		char path[600];
		pl_kube_status st;
		char *body = json_dumps(ops, JSON_COMPACT);
		pl_kube_path(path, sizeof(path), "admissionregistration.k8s.io", "v1", NULL, "mutatingwebhookconfigurations",
			     name, NULL);
		rc = body ? pl_kube_request(k, "PATCH", path, "application/json-patch+json", body, strlen(body), NULL, &st) : -ENOMEM;
		free(body);
		if (rc == 0) {
			pthread_mutex_lock(&o->mu);
			o->m.webhook_configs_written++;
			pthread_mutex_unlock(&o->mu);
			log_info("MutatingWebhookConfiguration %s: caBundle set on %zu webhook(s)", name, json_array_size(ops) / 2);
			snprintf(o->webhook_patched_rv, sizeof(o->webhook_patched_rv), "%s", rv ? rv : "");
			rc = 1;
		} else if (rc == -ENOENT) {
			rc = 0; /* deleted meanwhile: its watch says so */
		} else {
			log_warnx("patch the caBundle of MutatingWebhookConfiguration %s: HTTP %ld %s: %s", name, st.http, st.reason,
				  st.message);
		}
	}
	json_decref(ops);
	free(want);
	json_decref(cfg);
	return rc;
}

int op_reconcile_webhook(op *o, pl_kube *k, int64_t *requeue_s)
{
	wh_names n;
	int64_t not_after = 0;
	bool clamped = false, absent = false;

	names_make(o, &n);
	int rc = ensure_secret(o, k, &n, &not_after, &clamped);
	if (rc < 0)
		return rc;
	note_expiry(o, not_after);
	rc = ensure_ca_bundle(o, k, &absent);
	if (rc < 0)
		return rc;
	*requeue_s = not_after - renew_before(o) - unix_now();
	/* A certificate cut short by the CA's own expiry is due at once: do not reissue in a loop. */
	if (clamped && *requeue_s < 60)
		*requeue_s = 60;
	if (*requeue_s < 1)
		*requeue_s = 1;
	if (absent && *requeue_s > WH_ABSENT_REQUEUE_S)
		*requeue_s = WH_ABSENT_REQUEUE_S;
	return 0;
}
