/* The mesh CA's Secret: loaded when it exists (ours, or one a user or cert-manager supplied), generated once when absent. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base64.h"
#include "base/log.h"
#include "json/json.h"
#include "operator.h"

static char *field(const json_t *secret, const char *key, size_t *len)
{
	const char *b64 = pl_json_get_str(json_object_get(secret, "data"), key);

	return b64 ? pl_base64_decode(b64, len) : NULL;
}

void op_tls_pems_decode(const json_t *secret, op_tls_pems *p)
{
	memset(p, 0, sizeof(*p));
	p->crt = field(secret, "tls.crt", &p->crtlen);
	p->key = field(secret, "tls.key", &p->keylen);
	p->ca = field(secret, "ca.crt", &p->calen);
}

void op_tls_pems_clear(op_tls_pems *p)
{
	free(p->crt);
	free(p->ca);
	if (p->key) {
		explicit_bzero(p->key, p->keylen);
		free(p->key);
	}
	memset(p, 0, sizeof(*p));
}

json_t *op_tls_secret(const op *o, json_t *metadata, const pl_issued *is)
{
	char *crt = pl_base64_encode(is->cert_pem, strlen(is->cert_pem)), *key = pl_base64_encode(is->key_pem, strlen(is->key_pem)),
	     *ca = pl_base64_encode(o->bundle, strlen(o->bundle));
	json_t *obj = json_pack("{sssssoss s{ssssss}}", "apiVersion", "v1", "kind", "Secret", "metadata", metadata, "type",
				"kubernetes.io/tls", "data", "tls.crt", crt, "tls.key", key, "ca.crt", ca);

	explicit_bzero(key, strlen(key));
	free(crt);
	free(key);
	free(ca);
	return obj;
}

bool op_cert_times_ok(int64_t nb, int64_t na, int64_t ttl_s, int64_t renew_before_s, int64_t now, int64_t *renew_at)
{
	if (pl_cert_needs_renewal(nb, na, now, renew_before_s) || na - nb > ttl_s + PL_CA_CLOCK_SKEW_S + 60)
		return false;
	*renew_at = na - renew_before_s;
	return true;
}

static int load(op *o, const json_t *secret)
{
	op_tls_pems p;
	char err[512];
	int rc = -EINVAL;

	op_tls_pems_decode(secret, &p);
	if (!p.crt || !p.key) {
		log_errorx("CA Secret %s/%s: needs tls.crt and tls.key (base64 PEM)", o->set.namespace, o->set.ca_secret);
		goto out;
	}
	o->ca = pl_ca_load(p.crt, p.crtlen, p.key, p.keylen, p.ca, p.ca ? p.calen : 0, (int64_t)time(NULL), err, sizeof(err));
	if (!o->ca) {
		log_errorx("CA Secret %s/%s: %s", o->set.namespace, o->set.ca_secret, err);
		goto out;
	}
	char *bundle = NULL;
	if (pl_ca_bundle(o->ca, &bundle) < 0)
		goto out;
	/* ca.crt may also hold the roots of a rollover: the pods trust all of them. */
	if (p.ca && pl_ca_bundle_merge(p.ca, p.calen, bundle, strlen(bundle), (int64_t)time(NULL), &o->bundle) == 0) {
		free(bundle);
	} else {
		o->bundle = bundle;
	}
	rc = 0;
out:
	op_tls_pems_clear(&p);
	return rc;
}

int op_ca_bootstrap(op *o, pl_kube *k)
{
	char path[600], err[512];
	pl_kube_status st;
	json_t *secret = NULL;

	pl_kube_path(path, sizeof(path), NULL, "v1", o->set.namespace, "secrets", o->set.ca_secret, NULL);
	for (int attempt = 0; attempt < 2; attempt++) {
		int rc = pl_kube_get(k, path, &secret, &st);
		if (rc == 0) {
			rc = load(o, secret);
			json_decref(secret);
			if (rc == 0)
				log_info("mesh CA loaded from Secret %s/%s", o->set.namespace, o->set.ca_secret);
			return rc;
		}
		if (rc != -ENOENT) {
			log_errorx("get the CA Secret %s: HTTP %ld %s: %s", path, st.http, st.reason, st.message);
			return rc;
		}
		/* Absent: make a root and store it. A replica racing us makes create fail with EEXIST: load theirs. */
		pl_ca *ca = pl_ca_generate("cluster.local", (int64_t)time(NULL), PL_CA_DEFAULT_TTL_S, err, sizeof(err));
		if (!ca) {
			log_errorx("generate the mesh CA: %s", err);
			return -EINVAL;
		}
		char *crt = NULL, *key = NULL;
		int ex = pl_ca_export(ca, &crt, &key);
		pl_ca_free(ca);
		if (ex < 0)
			return ex;
		char *c64 = pl_base64_encode(crt, strlen(crt)), *k64 = pl_base64_encode(key, strlen(key));
		json_t *obj = json_pack("{sssss{sss{ss}}sss{ssssss}}", "apiVersion", "v1", "kind", "Secret", "metadata", "name",
					o->set.ca_secret, "labels", OP_MANAGED_BY, OP_FIELD_MANAGER, "type",
					"kubernetes.io/tls", "data", "tls.crt", c64, "tls.key", k64, "ca.crt", c64);
		explicit_bzero(k64, strlen(k64));
		free(c64);
		free(k64);
		free(crt);
		pl_pem_secret_free(key);
		char coll[600];
		pl_kube_path(coll, sizeof(coll), NULL, "v1", o->set.namespace, "secrets", NULL, NULL);
		rc = pl_kube_create(k, coll, obj, NULL, &st);
		json_decref(obj);
		if (rc == 0)
			log_info("mesh CA generated into Secret %s/%s", o->set.namespace, o->set.ca_secret);
		else if (rc != -EEXIST) {
			log_errorx("create the CA Secret: HTTP %ld %s: %s", st.http, st.reason, st.message);
			return rc;
		}
	}
	return -EAGAIN;
}
