/* Level-based reconcilers: a pod's ConfigMap and certificate Secret, the namespaces' mesh directories, policy status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base64.h"
#include "base/buf.h"
#include "base/duration.h"
#include "base/gzip.h"
#include "base/log.h"
#include "json/json.h"
#include "operator.h"

static int64_t unix_now(void) { return (int64_t)time(NULL); }

static const char *meta_str(const json_t *obj, const char *key)
{
	return pl_json_get_str(json_object_get(obj, "metadata"), key);
}

static const char *annotation(const json_t *obj, const char *key)
{
	return pl_json_get_str(json_object_get(json_object_get(obj, "metadata"), "annotations"), key);
}

static json_t *store_get(op *o, enum op_store s, const char *ns, const char *name)
{
	char key[1024];

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	return pl_store_get(o->st[s], key);
}

static void count(op *o, uint64_t *field)
{
	pthread_mutex_lock(&o->mu);
	(*field)++;
	pthread_mutex_unlock(&o->mu);
}

/* Events are best effort and must not double the API traffic of a large rollout: a token bucket
 * (OP_EVENT_BURST, refilled at OP_EVENT_PER_S) shared by every worker; the rest are counted and dropped. */
void op_post_event(op *o, pl_kube *k, const json_t *about, const char *type, const char *reason, const char *msg)
{
	pthread_mutex_lock(&o->mu);
	bool ok = pl_bucket_take(&o->events, op_mono_ns());
	if (!ok)
		o->m.events_dropped++;
	pthread_mutex_unlock(&o->mu);
	if (ok && pl_kube_event(k, about, type, reason, msg, OP_FIELD_MANAGER, NULL) == 0)
		count(o, &o->m.events_posted);
}

/* metadata for an object owned by pod (the API server deletes it with the pod). */
static json_t *owned_meta(const char *ns, const char *name, const json_t *pod, const char *hash)
{
	json_t *md = json_pack("{sssss{ss}}", "name", name, "namespace", ns, "labels", OP_MANAGED_BY, OP_FIELD_MANAGER);
	if (pod) {
		json_object_set_new(json_object_get(md, "labels"), "pillion.dev/pod", json_string(meta_str(pod, "name")));
		json_object_set_new(md, "ownerReferences",
				    /* No blockOwnerDeletion: it would need update on pods/finalizers where
				     * OwnerReferencesPermissionEnforcement runs, and nothing waits on these. */
				    json_pack("[{sssssssssb}]", "apiVersion", "v1", "kind", "Pod", "name", meta_str(pod, "name"),
					      "uid", meta_str(pod, "uid") ? meta_str(pod, "uid") : "", "controller", 1));
	}
	if (hash)
		json_object_set_new(md, "annotations", json_pack("{ss}", OP_HASH_ANNOTATION, hash));
	return md;
}

/* A namespace's pillion-mesh belongs to the install: owned by the control plane's Namespace
 * (cluster-scoped), so deleting the install (kubectl delete -f manifests/) lets the garbage
 * collector remove every directory instead of leaving them behind. No owner while that Namespace
 * is not in the cache. */
static void mesh_owner(op *o, json_t *md)
{
	json_t *cp = pl_store_get(o->st[ST_NAMESPACES], o->set.namespace);
	const char *uid = cp ? meta_str(cp, "uid") : NULL;

	if (uid && *uid)
		json_object_set_new(md, "ownerReferences",
				    json_pack("[{ssssssss}]", "apiVersion", "v1", "kind", "Namespace", "name",
					      o->set.namespace, "uid", uid));
	json_decref(cp);
}

static int apply(op *o, pl_kube *k, const char *plural, const char *ns, const char *name, json_t *obj)
{
	char path[700];
	pl_kube_status st;

	(void)o;
	pl_kube_path(path, sizeof(path), NULL, "v1", ns, plural, name, NULL);
	int rc = pl_kube_apply(k, path, obj, OP_FIELD_MANAGER, true, NULL, &st);
	if (rc < 0)
		log_warnx("apply %s %s/%s: HTTP %ld %s: %s", plural, ns, name, st.http, st.reason, st.message);
	return rc;
}

/* Whether an existing object is ours, current, and owned by this very pod (a recreated pod has a new uid). */
static bool current(const json_t *existing, const char *hash, const json_t *pod)
{
	const char *h = existing ? annotation(existing, OP_HASH_ANNOTATION) : NULL;
	json_t *refs = existing ? json_object_get(json_object_get(existing, "metadata"), "ownerReferences") : NULL;
	const char *uid = meta_str(pod, "uid");

	if (!h || strcmp(h, hash) != 0)
		return false;
	if (uid && *uid) {
		const char *ouid = pl_json_get_str(json_array_get(refs, 0), "uid");
		return ouid && strcmp(ouid, uid) == 0;
	}
	return true;
}

/*
 * The metadata of ConfigMap ns/name, owned by pod when given (else by the control plane's
 * Namespace), with hash as its content-hash annotation: NULL when what is stored already has
 * that hash and that owner, so nothing needs writing (nor serializing).
 */
static json_t *cm_meta_if_stale(op *o, const char *ns, const char *name, const json_t *pod, const char *hash)
{
	json_t *existing = store_get(o, ST_CONFIGMAPS, ns, name);
	json_t *md = owned_meta(ns, name, pod, hash);
	if (!pod)
		mesh_owner(o, md);
	bool same = current(existing, hash, pod);
	/* A directory written before its owner was known (or by an older operator) gets it now. */
	if (same && !pod && json_object_get(md, "ownerReferences"))
		same = json_equal(json_object_get(json_object_get(existing, "metadata"), "ownerReferences"),
				  json_object_get(md, "ownerReferences"));
	json_decref(existing);
	if (same) {
		json_decref(md);
		return NULL;
	}
	return md;
}

/* Applies ConfigMap ns/name with md (from cm_meta_if_stale), data and binaryData (may be NULL);
 * all three stolen. 1 written, -errno. */
static int write_cm(op *o, pl_kube *k, const char *ns, const char *name, json_t *md, json_t *data, json_t *binary,
		    uint64_t *written)
{
	json_t *cm = json_pack("{sssssoso}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", md, "data", data);
	if (binary)
		json_object_set_new(cm, "binaryData", binary);
	int rc = apply(o, k, "configmaps", ns, name, cm);
	json_decref(cm);
	if (rc < 0)
		return rc;
	count(o, written);
	return 1;
}

/* A pod's pillion-<id>: its config as pretty JSON (people read it with kubectl) under proxy.json.
 * 1 written, 0 already current, -errno. */
static int write_pod_config(op *o, pl_kube *k, const char *ns, const char *name, const json_t *pod, const json_t *cfg)
{
	json_t *md = cm_meta_if_stale(o, ns, name, pod, pl_json_get_str(cfg, "hash"));
	if (!md)
		return 0;
	char *text = pl_json_dump_pretty(cfg);
	json_t *data = json_pack("{ss}", "proxy.json", text);
	free(text);
	return write_cm(o, k, ns, name, md, data, NULL, &o->m.configmaps_written);
}

/*
 * A namespace's pillion-mesh: the directory (mesh.json) and the namespace's client-side policies
 * (outbound.json), one ConfigMap so the kubelet swaps them together. Its content hash covers both
 * (pl_effective_hash, in hash); annotations PL_ANNOTATION_MESH_DIR_HASH and
 * PL_ANNOTATION_OUTBOUND_HASH give each document's own hash (for pillionctl status). The
 * directory is compact JSON, since it lists every meshed pod and must stay under the 1 MiB object
 * limit, and gzipped under mesh.json.gz (binaryData) above --mesh-compress-above; server-side
 * apply drops the other form. Nothing is serialized when the stored one is current.
 * 1 written, 0 already current, -errno.
 */
static int write_mesh(op *o, pl_kube *k, const char *ns, const json_t *dir, const json_t *out, char *hash)
{
	const char *dh = pl_json_get_str(dir, "hash"), *oh = pl_json_get_str(out, "hash");

	pl_effective_hash(dh, oh, hash);
	json_t *md = cm_meta_if_stale(o, ns, OP_MESH_CONFIGMAP, NULL, hash);
	if (!md)
		return 0;
	json_object_set_new(json_object_get(md, "annotations"), PL_ANNOTATION_MESH_DIR_HASH, json_string(dh ? dh : ""));
	json_object_set_new(json_object_get(md, "annotations"), PL_ANNOTATION_OUTBOUND_HASH, json_string(oh ? oh : ""));
	char *text = pl_json_dump_canonical(dir), *otext = pl_json_dump_pretty(out);
	json_t *data = json_pack("{ss}", "outbound.json", otext), *binary = NULL;
	free(otext);
	if (strlen(text) > o->set.mesh_compress_above) {
		pl_buf z = PL_BUF_INIT;
		if (pl_gzip(text, strlen(text), &z) == 0) {
			char *b64 = pl_base64_encode(z.data, z.len);
			binary = json_pack("{ss}", "mesh.json.gz", b64);
			free(b64);
			if (z.len > OP_CONFIGMAP_MAX)
				log_warnx("mesh directory %s/%s: %zu bytes gzipped, above the 1 MiB ConfigMap limit", ns,
					  OP_MESH_CONFIGMAP, z.len);
		}
		pl_buf_free(&z);
	}
	if (!binary)
		json_object_set_new(data, "mesh.json", json_string(text));
	free(text);
	return write_cm(o, k, ns, OP_MESH_CONFIGMAP, md, data, binary, &o->m.mesh_written);
}

/*
 * A Secret whose certificate was checked (identity, signature by the bundle, key match), by
 * resourceVersion: a reconcile that only changed the config does not parse and verify it again.
 * The bundle is loaded once per process, so it is not part of the key.
 */
struct cert_ok {
	char *key;
	char rv[PL_KUBE_RV_MAX];
	char spiffe[PL_SPIFFE_ID_MAX + 1];
	int64_t nb, na;
};

static void cert_ok_put(op *o, const char *key, const char *rv, const char *spiffe, int64_t nb, int64_t na)
{
	struct cert_ok *c = calloc(1, sizeof(*c));
	const char *old_key = NULL;

	if (!c || !(c->key = strdup(key)))
		abort();
	snprintf(c->rv, sizeof(c->rv), "%s", rv);
	snprintf(c->spiffe, sizeof(c->spiffe), "%s", spiffe);
	c->nb = nb;
	c->na = na;
	pthread_mutex_lock(&o->mu);
	struct cert_ok *old = pl_hmap_del(&o->certs_ok, key, &old_key);
	pl_hmap_put(&o->certs_ok, c->key, c);
	pthread_mutex_unlock(&o->mu);
	if (old) {
		free(old->key);
		free(old);
	}
}

static bool cert_ok_get(op *o, const char *key, const char *rv, const char *spiffe, int64_t *nb, int64_t *na)
{
	bool hit = false;

	pthread_mutex_lock(&o->mu);
	struct cert_ok *c = pl_hmap_get(&o->certs_ok, key);
	if (c && strcmp(c->rv, rv) == 0 && strcmp(c->spiffe, spiffe) == 0) {
		*nb = c->nb;
		*na = c->na;
		hit = true;
	}
	pthread_mutex_unlock(&o->mu);
	return hit;
}

void op_certs_ok_forget(op *o, const char *ns, const char *name)
{
	char key[600];
	const char *old_key = NULL;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&o->mu);
	struct cert_ok *c = pl_hmap_del(&o->certs_ok, key, &old_key);
	pthread_mutex_unlock(&o->mu);
	if (c) {
		free(c->key);
		free(c);
	}
}

void op_certs_ok_free(op *o)
{
	size_t it = 0;
	pl_hmap_slot *sl;

	while ((sl = pl_hmap_next(&o->certs_ok, &it))) {
		struct cert_ok *c = sl->value;
		free(c->key);
		free(c);
	}
	pl_hmap_free(&o->certs_ok);
}

/* The Secret's certificate: kept while it is for this identity, from this bundle, and not due for renewal. */
static bool cert_usable(op *o, const json_t *secret, const char *spiffe_id, int64_t ttl_s, int64_t renew_before_s,
			int64_t *renew_at, int64_t *not_after)
{
	char ckey[600];
	const char *rv = meta_str(secret, "resourceVersion");
	int64_t cnb, cna;

	snprintf(ckey, sizeof(ckey), "%s/%s", meta_str(secret, "namespace") ? meta_str(secret, "namespace") : "",
		 meta_str(secret, "name") ? meta_str(secret, "name") : "");
	if (rv && cert_ok_get(o, ckey, rv, spiffe_id, &cnb, &cna)) {
		*not_after = cna;
		return op_cert_times_ok(cnb, cna, ttl_s, renew_before_s, unix_now(), renew_at);
	}
	char id[PL_SPIFFE_ID_MAX + 1] = "";
	int64_t nb = 0, na = 0;
	op_tls_pems p;
	bool ok = false;

	op_tls_pems_decode(secret, &p);
	if (p.crt && p.ca && p.key && strcmp(p.ca, o->bundle) == 0 &&
	    pl_cert_times(p.crt, p.crtlen, &nb, &na, id, sizeof(id)) == 0 && strcmp(id, spiffe_id) == 0 &&
	    pl_cert_signed_by(p.crt, p.crtlen, o->bundle, strlen(o->bundle), unix_now()) &&
	    pl_cert_key_matches(p.crt, p.crtlen, p.key, p.keylen)) {
		if (rv)
			cert_ok_put(o, ckey, rv, spiffe_id, nb, na);
		*not_after = na;
		ok = op_cert_times_ok(nb, na, ttl_s, renew_before_s, unix_now(), renew_at);
	}
	op_tls_pems_clear(&p);
	return ok;
}

static int reconcile_secret(op *o, pl_kube *k, const json_t *pod, const char *ns, const char *id, const json_t *cfg,
			    int64_t *requeue_s, int64_t *not_after)
{
	json_t *ident = json_object_get(cfg, "identity"), *cert = json_object_get(ident, "certificate");
	const char *spiffe = pl_json_get_str(ident, "spiffeId");
	int64_t ttl_s = json_integer_value(json_object_get(cert, "ttlMs")) / 1000;
	int64_t renew_s = json_integer_value(json_object_get(cert, "renewBeforeMs")) / 1000;
	char name[128], err[512];
	int64_t renew_at = 0;

	snprintf(name, sizeof(name), "pillion-%s-tls", id);
	json_t *existing = store_get(o, ST_SECRETS, ns, name);
	bool keep = existing && current(existing, spiffe, pod) &&
		    cert_usable(o, existing, spiffe, ttl_s, renew_s, &renew_at, not_after);
	json_decref(existing);
	if (keep) {
		*requeue_s = renew_at - unix_now();
		return 0;
	}
	pl_issued is;
	if (pl_ca_issue(o->ca, spiffe, unix_now(), ttl_s, &is, err, sizeof(err)) < 0) {
		log_errorx("issue a certificate for %s: %s", spiffe, err);
		return -EINVAL;
	}
	count(o, &o->m.certificates_issued);
	/* The content-hash annotation of a Secret is its identity: the certificate itself decides renewal. */
	json_t *obj = op_tls_secret(o, owned_meta(ns, name, pod, spiffe), &is);
	int64_t renew = is.not_after - renew_s;
	bool is_clamped = is.clamped;
	int64_t is_not_after = is.not_after;
	*not_after = is.not_after;
	if (is.clamped)
		log_warnx("the mesh CA expires before %s's certificate would: the leaf was cut to the CA's notAfter; "
			  "renew the CA", spiffe);
	pl_issued_clear(&is);
	int rc = apply(o, k, "secrets", ns, name, obj);
	json_decref(obj);
	if (rc < 0)
		return rc;
	count(o, &o->m.secrets_written);
	log_info("certificate for %s issued into %s/%s, renewal in %lld s", spiffe, ns, name,
		 (long long)(renew - unix_now()));
	char emsg[2400];
	snprintf(emsg, sizeof(emsg), "certificate for %s issued into Secret %s, valid until %lld (unix)", spiffe, name,
		 (long long)is_not_after);
	op_post_event(o, k, pod, "Normal", "CertificateIssued", emsg);
	*requeue_s = renew - unix_now();
	/* A leaf cut short by the CA's own expiry is due at once: do not reissue in a loop. */
	if (is_clamped && *requeue_s < 60)
		*requeue_s = 60;
	if (*requeue_s < 1)
		*requeue_s = 1;
	return 0;
}

/*
 * The pod's config against snap, remembered (hash, policies, identity) for the status reconciler.
 * A proxy that reads the namespace's outbound.json (--outbound) runs both: what is remembered is
 * the config with those policies and pl_effective_hash over both, which its /status gives too.
 * eff (80 bytes) gets that hash.
 */
static json_t *render_and_record(op *o, const op_snapshot *snap, const pl_pod *pod, char *eff)
{
	json_t *cfg = pl_render_pod(snap->ix, pod);
	const pl_mesh_identity *m = pl_index_identity_for(snap->ix, pod);
	char ident[600] = "";

	if (m)
		snprintf(ident, sizeof(ident), "%s/%s", m->meta.namespace, m->meta.name);
	if (!pod->outbound_from_mesh) {
		snprintf(eff, 80, "%s", pl_json_get_str(cfg, "hash") ? pl_json_get_str(cfg, "hash") : "");
		op_rendered_record(o, pod->meta.namespace, pod->meta.name, cfg, ident, snap->gen);
		return cfg;
	}
	json_t *out = pl_render_outbound(snap->ix, pod->meta.namespace), *rec = json_copy(cfg);
	pl_effective_hash(pl_json_get_str(cfg, "hash"), pl_json_get_str(out, "hash"), eff);
	json_object_set(rec, "outbound", json_object_get(out, "outbound"));
	json_object_set_new(rec, "hash", json_string(eff));
	op_rendered_record(o, pod->meta.namespace, pod->meta.name, rec, ident, snap->gen);
	json_decref(rec);
	json_decref(out);
	return cfg;
}

/* The hash of the namespace's pillion-mesh: the last one written or found current, else the stored one. */
static void mesh_hash_of(op *o, const char *ns, char *out, size_t len)
{
	pthread_mutex_lock(&o->mu);
	const char *h = pl_hmap_get(&o->mesh_hash, ns);
	snprintf(out, len, "%s", h ? h : "");
	pthread_mutex_unlock(&o->mu);
	if (*out)
		return;
	json_t *cm = store_get(o, ST_CONFIGMAPS, ns, OP_MESH_CONFIGMAP);
	const char *sh = cm ? annotation(cm, OP_HASH_ANNOTATION) : NULL;
	snprintf(out, len, "%s", sh ? sh : "");
	json_decref(cm);
}

static void mesh_hash_set(op *o, const char *ns, const char *hash)
{
	char *v = strdup(hash), *k = strdup(ns);
	const char *old_key = NULL;

	if (!v || !k)
		abort();
	pthread_mutex_lock(&o->mu);
	char *old = pl_hmap_del(&o->mesh_hash, ns, &old_key);
	pl_hmap_put(&o->mesh_hash, k, v);
	pthread_mutex_unlock(&o->mu);
	free((char *)old_key);
	free(old);
}

void op_mesh_hash_free(op *o)
{
	size_t it = 0;
	pl_hmap_slot *sl;

	while ((sl = pl_hmap_next(&o->mesh_hash, &it))) {
		free((char *)sl->key);
		free(sl->value);
	}
	pl_hmap_free(&o->mesh_hash);
}

/*
 * A real kubelet refreshes a pod's ConfigMap and Secret volumes on its periodic sync (a minute
 * plus its cache) or at once when the pod object changes. So once what the pod mounts is written,
 * its PL_ANNOTATION_CONFIG_HASH is set to what was projected: one patch per change, none when
 * the pod already says so. A merge patch with the pod's uid never creates a pod, nor touches a
 * pod of the same name recreated meanwhile (409).
 */
static int refresh_pod(op *o, pl_kube *k, const json_t *pod, const char *ns, const char *name, const char *cfg_hash,
		       int64_t cert_not_after)
{
	char mesh[128], a[16], b[16], value[96], path[700];
	pl_kube_status st;

	mesh_hash_of(o, ns, mesh, sizeof(mesh));
	snprintf(value, sizeof(value), "config=%s,mesh=%s,cert=%lld", pl_short_hash(cfg_hash, a),
		 pl_short_hash(mesh, b),
		 (long long)cert_not_after);
	const char *cur = annotation(pod, PL_ANNOTATION_CONFIG_HASH);
	if (cur && strcmp(cur, value) == 0)
		return 0;
	json_t *patch = json_pack("{s{sss{ss}}}", "metadata", "uid", meta_str(pod, "uid") ? meta_str(pod, "uid") : "",
				  "annotations", PL_ANNOTATION_CONFIG_HASH, value);
	if (!meta_str(pod, "uid"))
		json_object_del(json_object_get(patch, "metadata"), "uid");
	pl_kube_path(path, sizeof(path), NULL, "v1", ns, "pods", name, NULL);
	int rc = pl_kube_merge_patch(k, path, patch, NULL, &st);
	json_decref(patch);
	if (rc == -ENOENT || rc == -EEXIST || st.http == 409)
		return 0; /* gone or recreated: its own events bring it back */
	if (rc < 0) {
		log_warnx("refresh pod %s/%s: HTTP %ld %s: %s", ns, name, st.http, st.reason, st.message);
		return rc;
	}
	count(o, &o->m.pods_refreshed);
	return 0;
}

static int reconcile_pod(op *o, pl_kube *k, const char *ns, const char *name, int64_t *requeue_s)
{
	json_t *pod = store_get(o, ST_PODS, ns, name);
	pl_arena a;
	pl_object obj;
	int rc = 0;

	if (!pod) {
		op_rendered_forget(o, ns, name);
		op_applied_forget(o, ns, name);
		return 0; /* gone: its objects go with it (ownerReferences) */
	}
	pl_arena_init(&a);
	pl_object_decode(&a, pod, &obj);
	if (obj.kind != PL_KIND_POD || !obj.valid || !obj.u.pod->id[0]) {
		if (obj.kind == PL_KIND_POD && !obj.valid && obj.errors.n)
			log_warnx("pod %s/%s: %s: %s", ns, name, obj.errors.v[0].path, obj.errors.v[0].msg);
		op_rendered_forget(o, ns, name);
		goto out;
	}
	if (strcmp(obj.u.pod->phase, "Succeeded") == 0 || strcmp(obj.u.pod->phase, "Failed") == 0) {
		op_rendered_forget(o, ns, name);
		goto out;
	}
	op_snapshot *snap = op_snapshot_get(o);
	char eff[80];
	json_t *cfg = render_and_record(o, snap, obj.u.pod, eff);
	op_snapshot_put(o, snap);
	char cmname[128];
	snprintf(cmname, sizeof(cmname), "pillion-%s", obj.u.pod->id);
	rc = write_pod_config(o, k, ns, cmname, pod, cfg);
	if (rc == 1)
		log_info("config for pod %s/%s written to %s (%s)", ns, name, cmname, pl_json_get_str(cfg, "hash"));
	if (rc >= 0)
		rc = 0;
	int64_t not_after = 0;
	if (rc == 0)
		rc = reconcile_secret(o, k, pod, ns, obj.u.pod->id, cfg, requeue_s, &not_after);
	if (rc == 0)
		rc = refresh_pod(o, k, pod, ns, name, pl_json_get_str(cfg, "hash"), not_after);
	/* Until its proxy says it runs this config, it is asked (Programmed counts it then). */
	char applied[80];
	op_applied_get(o, ns, name, applied, sizeof(applied));
	if (rc == 0 && strcmp(applied, eff) != 0 && op_applied_ask(o, ns, name)) {
		char skey[1200];
		snprintf(skey, sizeof(skey), "sync/%s/%s", ns, name);
		pl_wq_add_after(o->sq, skey, OP_SYNC_FIRST_NS);
	}
	json_decref(cfg);
out:
	pl_arena_free(&a);
	json_decref(pod);
	return rc;
}

/* Every namespace with an injected pod gets pillion-mesh; namespaces without one lose it. */
static int reconcile_mesh(op *o, pl_kube *k)
{
	json_t *all = pl_store_list(o->st[ST_PODS], NULL), *it;
	size_t i, n = 0;
	pl_arena a;
	const pl_pod **pods = calloc(json_array_size(all) + 1, sizeof(*pods));
	pl_hmap meshed = PL_HMAP_INIT;
	size_t refreshed = 0;
	int rc = 0;

	if (!pods)
		abort();
	/* Events from here on schedule another round: this one may have read the stores before them. */
	pthread_mutex_lock(&o->mu);
	o->mesh_pending = false;
	o->mesh_last_ns = op_mono_ns();
	pthread_mutex_unlock(&o->mu);
	pl_arena_init(&a);
	json_array_foreach(all, i, it) {
		pl_object *obj = pl_arena_alloc(&a, sizeof(*obj));
		pl_object_decode(&a, it, obj);
		if (obj->kind == PL_KIND_POD && obj->valid && obj->u.pod->id[0]) {
			pods[n++] = obj->u.pod;
			pl_hmap_put(&meshed, obj->u.pod->meta.namespace, (void *)1);
		}
	}
	/* Pods without the proxy in meshed namespaces back meshed Services too (a namespace leaving
	 * the mesh, a pod created while the webhook was away): endpoints dialled in plaintext. */
	json_array_foreach(all, i, it) {
		const char *pns = meta_str(it, "namespace");
		const char *id = annotation(it, PL_ANNOTATION_ID);
		if ((id && *id) || !pns || !pl_hmap_get(&meshed, pns))
			continue;
		pl_object *obj = pl_arena_alloc(&a, sizeof(*obj));
		pl_object_decode(&a, it, obj);
		if (obj->kind == PL_KIND_POD && obj->valid && obj->u.pod->ready)
			pods[n++] = obj->u.pod;
	}
	op_snapshot *snap = op_snapshot_get(o);
	size_t iter = 0;
	pl_hmap_slot *sl;
	while ((sl = pl_hmap_next(&meshed, &iter))) {
		const char *ns = sl->key;
		json_t *dir = pl_render_mesh(snap->ix, pods, n, ns), *out = pl_render_outbound(snap->ix, ns);
		char hash[80];
		int r = write_mesh(o, k, ns, dir, out, hash);
		json_decref(out);
		if (r < 0)
			rc = r;
		if (r >= 0)
			mesh_hash_set(o, ns, hash);
		/* Every meshed pod of the namespace mounts it: each is refreshed (reconcile_pod). */
		for (size_t p = 0; r == 1 && p < n; p++) {
			if (strcmp(pods[p]->meta.namespace, ns) != 0 || !pods[p]->id[0])
				continue;
			char key[600];
			snprintf(key, sizeof(key), "pod/%s/%s", ns, pods[p]->meta.name);
			pl_wq_add(o->q, key);
			refreshed++;
		}
		json_decref(dir);
	}
	/* The next round waits until this one's refreshes fit the API budget of the workers. */
	double per_s = o->set.qps * (o->set.workers > 0 ? o->set.workers : 1);
	int64_t w = (int64_t)((double)refreshed / per_s * 1e9);
	if (w < OP_MESH_WINDOW_MIN_NS)
		w = OP_MESH_WINDOW_MIN_NS;
	if (w > OP_MESH_WINDOW_MAX_NS)
		w = OP_MESH_WINDOW_MAX_NS;
	pthread_mutex_lock(&o->mu);
	o->mesh_window_ns = w;
	pthread_mutex_unlock(&o->mu);
	op_snapshot_put(o, snap);
	/* Orphans: a mesh directory in a namespace without meshed pods. */
	json_t *cms = pl_store_list(o->st[ST_CONFIGMAPS], NULL);
	json_array_foreach(cms, i, it) {
		const char *ns = meta_str(it, "namespace"), *name = meta_str(it, "name");
		if (!ns || !name || strcmp(name, OP_MESH_CONFIGMAP) != 0 || pl_hmap_get(&meshed, ns))
			continue;
		char path[600];
		pl_kube_status st;
		pl_kube_path(path, sizeof(path), NULL, "v1", ns, "configmaps", name, NULL);
		int r = pl_kube_delete(k, path, meta_str(it, "uid"), &st);
		if (r < 0 && r != -ENOENT)
			rc = r;
	}
	json_decref(cms);
	pl_hmap_free(&meshed);
	free(pods);
	pl_arena_free(&a);
	json_decref(all);
	return rc;
}

/* --- status --- */

static const char *rfc3339(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

/* A condition, keeping lastTransitionTime when the status did not flip. */
static json_t *condition(const json_t *old_conds, const char *type, bool ok, const char *reason, const char *msg,
			 int64_t gen)
{
	const char *status = ok ? "True" : "False", *ltt = NULL;
	char now[32];
	json_t *c;
	size_t i;

	json_array_foreach(old_conds, i, c) {
		const char *t = pl_json_get_str(c, "type"), *s = pl_json_get_str(c, "status");
		if (t && s && strcmp(t, type) == 0 && strcmp(s, status) == 0)
			ltt = pl_json_get_str(c, "lastTransitionTime");
	}
	return json_pack("{sssssssssssI}", "type", type, "status", status, "reason", reason, "message", msg,
			 "lastTransitionTime", ltt ? ltt : rfc3339(unix_now(), now), "observedGeneration", (json_int_t)gen);
}

/* Pods this object applies to, and how many of them have their current config written. A pod's
 * last render is reused while the snapshot is the same one; otherwise it is rendered again here. */
static void programmed(op *o, const pl_object *obj, const op_snapshot *snap, int *total, int *done, char *stale,
		       size_t stale_len, int *nstale)
{
	json_t *pods = pl_store_list(o->st[ST_PODS], NULL), *it;
	size_t i;
	char want[600], hash[128];
	const bool tp = obj->kind == PL_KIND_TRAFFIC_POLICY;

	snprintf(want, sizeof(want), "%s/%s", obj->namespace, obj->name);
	*total = *done = 0;
	json_array_foreach(pods, i, it) {
		const char *ns = meta_str(it, "namespace"), *name = meta_str(it, "name"), *id = annotation(it, PL_ANNOTATION_ID);
		const char *phase = pl_json_get_str(json_object_get(it, "status"), "phase");
		if (!ns || !name || !id || !*id || (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)))
			continue;
		int applies = op_rendered_lookup(o, ns, name, snap->gen, tp ? want : NULL, want, hash, sizeof(hash));
		if (applies < 0) {
			pl_arena a;
			pl_object p;
			pl_arena_init(&a);
			pl_object_decode(&a, it, &p);
			char eff[80];
			if (p.kind == PL_KIND_POD && p.valid && p.u.pod->id[0])
				json_decref(render_and_record(o, snap, p.u.pod, eff));
			pl_arena_free(&a);
			applies = op_rendered_lookup(o, ns, name, snap->gen, tp ? want : NULL, want, hash, sizeof(hash));
		}
		if (applies != 1)
			continue;
		(*total)++;
		char applied[80];
		if (op_applied_get(o, ns, name, applied, sizeof(applied)) && strcmp(applied, hash) == 0) {
			(*done)++;
		} else if (stale && strlen(stale) + strlen(name) + 8 < stale_len) {
			if (++*nstale <= 3)
				snprintf(stale + strlen(stale), stale_len - strlen(stale), "%s%s/%s", *nstale > 1 ? ", " : "",
					 ns, name);
		}
	}
	json_decref(pods);
}

/* Whether the Services a TrafficPolicy names exist: its target, then every backend (as the Gateway
 * API's ResolvedRefs). Writes the first missing one to msg and returns false. */
static bool refs_resolved(op *o, const pl_traffic_policy *p, char *msg, size_t size)
{
	json_t *svc = store_get(o, ST_SERVICES, p->meta.namespace, p->target_name);

	if (!svc) {
		snprintf(msg, size, "spec.targetRef.name: Service %s/%s not found", p->meta.namespace, p->target_name);
		return false;
	}
	json_decref(svc);
	for (size_t r = 0; r < p->nroutes; r++) {
		for (size_t b = 0; b < p->routes[r].nbackends; b++) {
			const char *bn = p->routes[r].backends[b].name;
			if (!bn || strcmp(bn, p->target_name) == 0)
				continue;
			svc = store_get(o, ST_SERVICES, p->meta.namespace, bn);
			if (!svc) {
				snprintf(msg, size, "spec.routes[%zu].backends[%zu].name: Service %s/%s not found", r, b,
					 p->meta.namespace, bn);
				return false;
			}
			json_decref(svc);
		}
	}
	snprintf(msg, size, "every Service the policy names exists");
	return true;
}

static int reconcile_status(op *o, pl_kube *k, const char *kind, const char *ns, const char *name, int64_t *requeue_s)
{
	enum op_store s = strcmp(kind, "tp") == 0 ? ST_POLICIES : ST_IDENTITIES;
	json_t *cur = store_get(o, s, ns, name);
	pl_arena a;
	pl_object obj;
	char msg[1024] = "", reason[64];
	int rc = 0;

	if (!cur)
		return 0;
	pl_arena_init(&a);
	pl_object_decode(&a, cur, &obj);
	int64_t gen = json_integer_value(json_object_get(json_object_get(cur, "metadata"), "generation"));
	json_t *old_conds = json_object_get(json_object_get(cur, "status"), "conditions");
	json_t *conds = json_array();
	if (obj.valid) {
		json_array_append_new(conds, condition(old_conds, "Accepted", true, "Valid", "the policy is valid", gen));
		int total = 0, done = 0, nstale = 0;
		char stale[400] = "";
		op_snapshot *snap = op_snapshot_get(o);
		programmed(o, &obj, snap, &total, &done, stale, sizeof(stale), &nstale);
		op_snapshot_put(o, snap);
		if (done == total)
			snprintf(msg, sizeof(msg), "%d/%d pods: their proxies run the current config", done, total);
		else
			snprintf(msg, sizeof(msg), "%d/%d pods: their proxies run the current config; not yet: %s%s", done,
				 total, stale, nstale > 3 ? ", ..." : "");
		snprintf(reason, sizeof(reason), "%s", done == total ? "Programmed" : "Pending");
		json_array_append_new(conds, condition(old_conds, "Programmed", done == total, reason, msg, gen));
		if (done != total)
			*requeue_s = 1;
		if (obj.kind == PL_KIND_TRAFFIC_POLICY) {
			bool ok = refs_resolved(o, obj.u.policy, msg, sizeof(msg));
			json_array_append_new(conds, condition(old_conds, "ResolvedRefs", ok, ok ? "ResolvedRefs" :
							       "BackendNotFound", msg, gen));
		}
	} else {
		size_t used = 0;
		for (size_t i = 0; i < obj.errors.n && used + 1 < sizeof(msg); i++) {
			int w = snprintf(msg + used, sizeof(msg) - used, "%s%s: %s", i ? "; " : "", obj.errors.v[i].path,
					 obj.errors.v[i].msg);
			if (w < 0)
				break;
			used += (size_t)w;
		}
		json_array_append_new(conds, condition(old_conds, "Accepted", false, "Invalid", msg, gen));
		json_array_append_new(conds, condition(old_conds, "Programmed", false, "Invalid",
						       "not programmed: the policy is invalid", gen));
		if (obj.kind == PL_KIND_TRAFFIC_POLICY)
			json_array_append_new(conds, condition(old_conds, "ResolvedRefs", false, "Invalid",
							       "not resolved: the policy is invalid", gen));
	}
	/* Unchanged status is not rewritten. */
	json_t *old_status = json_object_get(cur, "status");
	json_t *new_status = json_pack("{sIso}", "observedGeneration", (json_int_t)gen, "conditions", conds);
	char *a1 = old_status ? pl_json_dump_canonical(old_status) : NULL, *a2 = pl_json_dump_canonical(new_status);
	if (!a1 || strcmp(a1, a2) != 0) {
		char path[700];
		pl_kube_status st;
		json_t *body = json_pack("{sssss{ssss}sO}", "apiVersion", "pillion.dev/v1alpha1", "kind",
					 s == ST_POLICIES ? "TrafficPolicy" : "MeshIdentity", "metadata", "name", name,
					 "namespace", ns, "status", new_status);
		pl_kube_path(path, sizeof(path), "pillion.dev", "v1alpha1", ns,
			     s == ST_POLICIES ? "trafficpolicies" : "meshidentities", name, "status");
		rc = pl_kube_apply(k, path, body, OP_FIELD_MANAGER, true, NULL, &st);
		if (rc < 0)
			log_warnx("status of %s %s/%s: HTTP %ld %s: %s", kind, ns, name, st.http, st.reason, st.message);
		else
			count(o, &o->m.status_written);
		/* An Event when the verdict changes, so kubectl describe shows why. */
		const char *was = NULL;
		json_t *c;
		size_t ci;
		json_array_foreach(old_conds, ci, c) if (strcmp(pl_json_get_str(c, "type") ? pl_json_get_str(c, "type") : "", "Accepted") == 0)
			was = pl_json_get_str(c, "status");
		if (rc == 0 && (!was || strcmp(was, obj.valid ? "True" : "False") != 0))
			op_post_event(o, k, cur, obj.valid ? "Normal" : "Warning", obj.valid ? "Accepted" : "Invalid",
				   obj.valid ? "the policy is valid" : msg);
		if (rc == -ENOENT)
			rc = 0;
		json_decref(body);
	}
	free(a1);
	free(a2);
	json_decref(new_status);
	pl_arena_free(&a);
	json_decref(cur);
	return rc;
}

int op_reconcile(op *o, pl_kube *k, const char *key, int64_t *requeue_s)
{
	char buf[600], *ns, *name, *kind;

	*requeue_s = 0;
	if (strcmp(key, "mesh") == 0)
		return reconcile_mesh(o, k);
	if (strcmp(key, OP_WEBHOOK_KEY) == 0)
		return o->set.webhook ? op_reconcile_webhook(o, k, requeue_s) : 0;
	snprintf(buf, sizeof(buf), "%s", key);
	if (strncmp(buf, "pod/", 4) == 0) {
		ns = buf + 4;
		name = strchr(ns, '/');
		if (!name)
			return 0;
		*name++ = '\0';
		return reconcile_pod(o, k, ns, name, requeue_s);
	}
	if (strncmp(buf, "sync/", 5) == 0) {
		ns = buf + 5;
		name = strchr(ns, '/');
		if (!name)
			return 0;
		*name++ = '\0';
		return op_reconcile_sync(o, k, ns, name, requeue_s);
	}
	if (strncmp(buf, "status/", 7) == 0) {
		kind = buf + 7;
		ns = strchr(kind, '/');
		if (!ns)
			return 0;
		*ns++ = '\0';
		name = strchr(ns, '/');
		if (!name)
			return 0;
		*name++ = '\0';
		return reconcile_status(o, k, kind, ns, name, requeue_s);
	}
	log_warnx("reconcile: unknown key %s", key);
	return 0;
}
