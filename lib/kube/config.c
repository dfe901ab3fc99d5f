/* Kubernetes client configuration: kubeconfig files (parsed with lib/json's YAML loader) and the in-cluster service account. */
#include "kube/kube.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base64.h"
#include "base/buf.h"
#include "base/log.h"
#include "json/json.h"

#define KUBECONFIG_MAX (4u << 20)
#define SMALL_FILE_MAX (1u << 20)

void pl_kube_config_free(pl_kube_config *cfg)
{
	free(cfg->server);
	free(cfg->ca_file);
	free(cfg->ca_pem);
	free(cfg->token);
	free(cfg->token_file);
	free(cfg->cert_file);
	free(cfg->cert_pem);
	free(cfg->key_file);
	free(cfg->key_pem);
	free(cfg->namespace);
	free(cfg->source);
	free(cfg->user_agent);
	memset(cfg, 0, sizeof(*cfg));
}

static int dup_field(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int pl_kube_config_copy(pl_kube_config *dst, const pl_kube_config *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->insecure = src->insecure;
	dst->observer = src->observer;
	dst->observer_ctx = src->observer_ctx;
	if (dup_field(&dst->server, src->server) || dup_field(&dst->ca_file, src->ca_file) ||
	    dup_field(&dst->ca_pem, src->ca_pem) || dup_field(&dst->token, src->token) ||
	    dup_field(&dst->token_file, src->token_file) || dup_field(&dst->cert_file, src->cert_file) ||
	    dup_field(&dst->cert_pem, src->cert_pem) || dup_field(&dst->key_file, src->key_file) ||
	    dup_field(&dst->key_pem, src->key_pem) || dup_field(&dst->namespace, src->namespace) ||
	    dup_field(&dst->source, src->source) || dup_field(&dst->user_agent, src->user_agent)) {
		pl_kube_config_free(dst);
		return -ENOMEM;
	}
	return 0;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---------- kubeconfig ---------- */

typedef struct kc {
	const char *path;
	char dir[4096];
	char *err;
	size_t errlen;
} kc;

/* The named entry of a kubeconfig list (clusters, users, contexts): list[].name == name -> list[].<inner>. */
static const json_t *kc_named(const kc *c, const json_t *root, const char *list, const char *inner,
			      const char *name, int *rc)
{
	const json_t *arr = json_object_get(root, list);
	size_t i;
	const json_t *e;

	*rc = 0;
	if (arr && !json_is_array(arr)) {
		seterr(c->err, c->errlen, "kubeconfig %s: %s: must be a list", c->path, list);
		*rc = -EINVAL;
		return NULL;
	}
	json_array_foreach(arr, i, e) {
		const char *n = pl_json_get_str(e, "name");
		if (!n || strcmp(n, name) != 0)
			continue;
		const json_t *v = json_object_get(e, inner);
		if (!json_is_object(v)) {
			seterr(c->err, c->errlen, "kubeconfig %s: %s[name=\"%s\"].%s: missing", c->path, list, name,
			       inner);
			*rc = -EINVAL;
			return NULL;
		}
		return v;
	}
	seterr(c->err, c->errlen, "kubeconfig %s: %s: no entry named \"%s\"", c->path, list, name);
	*rc = -EINVAL;
	return NULL;
}

/* A string field; -EINVAL when present but not a string. */
static int kc_str(const kc *c, const json_t *obj, const char *where, const char *key, const char **out)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		seterr(c->err, c->errlen, "kubeconfig %s: %s.%s: must be a non-empty string", c->path, where,
		       key);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

/* A *-data field: base64 of PEM. */
static int kc_data(const kc *c, const json_t *obj, const char *where, const char *key, char **out)
{
	const char *s;
	int rc = kc_str(c, obj, where, key, &s);

	*out = NULL;
	if (rc || !s)
		return rc;
	*out = pl_base64_decode_relaxed(s, NULL);
	if (!*out) {
		seterr(c->err, c->errlen, "kubeconfig %s: %s.%s: not valid base64", c->path, where, key);
		return -EINVAL;
	}
	return 0;
}

/* A file field: resolved against the kubeconfig's directory, and readable now. */
static int kc_file(const kc *c, const json_t *obj, const char *where, const char *key, char **out)
{
	const char *s;
	int rc = kc_str(c, obj, where, key, &s);
	pl_buf b = PL_BUF_INIT;

	*out = NULL;
	if (rc || !s)
		return rc;
	if (s[0] == '/' || !c->dir[0])
		pl_buf_puts(&b, s);
	else
		pl_buf_printf(&b, "%s/%s", c->dir, s);
	if (access(b.data, R_OK) != 0) {
		int e = errno;
		seterr(c->err, c->errlen, "kubeconfig %s: %s.%s: %s: %s", c->path, where, key, b.data,
		       strerror(e));
		pl_buf_free(&b);
		return -e;
	}
	*out = b.data;
	return 0;
}

static int kc_cluster(const kc *c, const json_t *cl, const char *name, pl_kube_config *cfg)
{
	char where[320];
	const char *server;
	const json_t *ins;
	int rc;

	snprintf(where, sizeof(where), "clusters[name=\"%s\"].cluster", name);
	if ((rc = kc_str(c, cl, where, "server", &server)))
		return rc;
	if (!server) {
		seterr(c->err, c->errlen, "kubeconfig %s: %s.server: missing", c->path, where);
		return -EINVAL;
	}
	if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0) {
		seterr(c->err, c->errlen, "kubeconfig %s: %s.server: \"%s\" is not an http(s) URL", c->path,
		       where, server);
		return -EINVAL;
	}
	cfg->server = strdup(server);
	if (!cfg->server)
		return -ENOMEM;
	size_t n = strlen(cfg->server);
	while (n > 0 && cfg->server[n - 1] == '/')
		cfg->server[--n] = '\0';
	ins = json_object_get(cl, "insecure-skip-tls-verify");
	if (ins && !json_is_boolean(ins)) {
		seterr(c->err, c->errlen, "kubeconfig %s: %s.insecure-skip-tls-verify: must be true or false",
		       c->path, where);
		return -EINVAL;
	}
	cfg->insecure = json_is_true(ins);
	if ((rc = kc_data(c, cl, where, "certificate-authority-data", &cfg->ca_pem)))
		return rc;
	if (!cfg->ca_pem && (rc = kc_file(c, cl, where, "certificate-authority", &cfg->ca_file)))
		return rc;
	if (cfg->insecure)
		log_warnx("%s: kubeconfig %s: cluster \"%s\" sets insecure-skip-tls-verify: the API server's "
			  "certificate is not verified", __func__, c->path, name);
	return 0;
}

static int kc_user(const kc *c, const json_t *u, const char *name, pl_kube_config *cfg)
{
	char where[320];
	const char *token;
	int rc;

	snprintf(where, sizeof(where), "users[name=\"%s\"].user", name);
	if ((rc = kc_str(c, u, where, "token", &token)))
		return rc;
	if (token && !(cfg->token = strdup(token)))
		return -ENOMEM;
	if ((rc = kc_file(c, u, where, "tokenFile", &cfg->token_file)))
		return rc;
	if ((rc = kc_data(c, u, where, "client-certificate-data", &cfg->cert_pem)))
		return rc;
	if (!cfg->cert_pem && (rc = kc_file(c, u, where, "client-certificate", &cfg->cert_file)))
		return rc;
	if ((rc = kc_data(c, u, where, "client-key-data", &cfg->key_pem)))
		return rc;
	if (!cfg->key_pem && (rc = kc_file(c, u, where, "client-key", &cfg->key_file)))
		return rc;
	bool cert = cfg->cert_pem || cfg->cert_file, key = cfg->key_pem || cfg->key_file;
	if (cert != key) {
		seterr(c->err, c->errlen, "kubeconfig %s: %s.%s: missing (a client certificate needs its key)",
		       c->path, where, cert ? "client-key-data or client-key" :
						"client-certificate-data or client-certificate");
		return -EINVAL;
	}
	if (!cert && !cfg->token && !cfg->token_file) {
		static const char *unsupported[] = {"exec", "auth-provider", "username"};
		for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
			if (json_object_get(u, unsupported[i])) {
				seterr(c->err, c->errlen,
				       "kubeconfig %s: %s.%s: not supported; give token, tokenFile or "
				       "client-certificate-data and client-key-data", c->path, where,
				       unsupported[i]);
				return -EINVAL;
			}
		}
		log_warnx("%s: kubeconfig %s: user \"%s\" has no credentials: requests are anonymous", __func__,
			  c->path, name);
	}
	return 0;
}

static int kc_parse(const kc *c, const json_t *root, const char *context, pl_kube_config *cfg)
{
	const char *ctxname = context, *cluster, *user, *ns;
	const json_t *ctx, *cl, *u;
	int rc;

	if (!json_is_object(root)) {
		seterr(c->err, c->errlen, "kubeconfig %s: not a mapping", c->path);
		return -EINVAL;
	}
	if (!ctxname && (rc = kc_str(c, root, "kubeconfig", "current-context", &ctxname)))
		return rc;
	if (!ctxname) {
		seterr(c->err, c->errlen, "kubeconfig %s: current-context: missing (and no context was given)",
		       c->path);
		return -EINVAL;
	}
	if (!(ctx = kc_named(c, root, "contexts", "context", ctxname, &rc)))
		return rc;
	char where[320];
	snprintf(where, sizeof(where), "contexts[name=\"%s\"].context", ctxname);
	if ((rc = kc_str(c, ctx, where, "cluster", &cluster)) || (rc = kc_str(c, ctx, where, "user", &user)) ||
	    (rc = kc_str(c, ctx, where, "namespace", &ns)))
		return rc;
	if (!cluster) {
		seterr(c->err, c->errlen, "kubeconfig %s: %s.cluster: missing", c->path, where);
		return -EINVAL;
	}
	if (!(cl = kc_named(c, root, "clusters", "cluster", cluster, &rc)))
		return rc;
	if ((rc = kc_cluster(c, cl, cluster, cfg)))
		return rc;
	if (user) {
		if (!(u = kc_named(c, root, "users", "user", user, &rc)))
			return rc;
		if ((rc = kc_user(c, u, user, cfg)))
			return rc;
	}
	if (!(cfg->namespace = strdup(ns ? ns : "default")) || !(cfg->source = strdup(c->path)))
		return -ENOMEM;
	return 0;
}

int pl_kube_config_load_file(pl_kube_config *cfg, const char *path, const char *context, char *err,
			     size_t errlen)
{
	pl_buf b = PL_BUF_INIT;
	pl_docs docs;
	kc c = {.path = path, .err = err, .errlen = errlen};
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	const char *slash = strrchr(path, '/');
	if (slash) {
		size_t n = (size_t)(slash - path);
		if (n == 0)
			n = 1;   /* "/config" lives in "/" */
		if (n >= sizeof(c.dir)) {
			seterr(err, errlen, "kubeconfig %s: path too long", path);
			return -ENAMETOOLONG;
		}
		memcpy(c.dir, path, n);
		c.dir[n] = '\0';
	}
	if ((rc = pl_buf_read_file(&b, path, KUBECONFIG_MAX)) < 0) {
		seterr(err, errlen, "kubeconfig %s: %s", path, strerror(-rc));
		pl_buf_free(&b);
		return rc;
	}
	rc = pl_yaml_load(b.data ? b.data : "", b.len, &docs);
	pl_buf_free(&b);
	if (rc < 0) {
		seterr(err, errlen, "kubeconfig %s: %s", path, docs.error);
		pl_docs_free(&docs);
		return rc;
	}
	if (docs.n != 1 || !docs.v[0].root) {
		seterr(err, errlen, "kubeconfig %s: expected exactly one YAML document", path);
		pl_docs_free(&docs);
		return -EINVAL;
	}
	rc = kc_parse(&c, docs.v[0].root, context, cfg);
	pl_docs_free(&docs);
	if (rc < 0)
		pl_kube_config_free(cfg);
	return rc;
}

/* ---------- in-cluster ---------- */

static int read_trimmed(const char *path, char **out)
{
	pl_buf b = PL_BUF_INIT;
	int rc = pl_buf_read_file(&b, path, SMALL_FILE_MAX);

	*out = NULL;
	if (rc < 0) {
		pl_buf_free(&b);
		return rc;
	}
	while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' ' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	if (b.len == 0) {
		pl_buf_free(&b);
		return -ENODATA;
	}
	*out = b.data;
	return 0;
}

int pl_kube_config_in_cluster(pl_kube_config *cfg, const char *sa_dir, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
	pl_buf b = PL_BUF_INIT;
	char *tok = NULL;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (!sa_dir)
		sa_dir = PL_KUBE_SA_DIR;
	if (!host || !*host || !port || !*port) {
		seterr(err, errlen, "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
		return -ENOENT;
	}
	/* An IPv6 service address needs brackets in a URL. */
	if (strchr(host, ':'))
		pl_buf_printf(&b, "https://[%s]:%s", host, port);
	else
		pl_buf_printf(&b, "https://%s:%s", host, port);
	cfg->server = b.data;
	b = (pl_buf)PL_BUF_INIT;

	pl_buf_printf(&b, "%s/token", sa_dir);
	if ((rc = read_trimmed(b.data, &tok)) < 0) {
		seterr(err, errlen, "in-cluster: %s: %s", b.data, rc == -ENODATA ? "empty" : strerror(-rc));
		goto fail;
	}
	free(tok);   /* read now only to fail early; the client re-reads it as it rotates */
	cfg->token_file = b.data;
	b = (pl_buf)PL_BUF_INIT;

	pl_buf_printf(&b, "%s/ca.crt", sa_dir);
	if (access(b.data, R_OK) != 0) {
		rc = -errno;
		seterr(err, errlen, "in-cluster: %s: %s", b.data, strerror(-rc));
		goto fail;
	}
	cfg->ca_file = b.data;
	b = (pl_buf)PL_BUF_INIT;

	pl_buf_printf(&b, "%s/namespace", sa_dir);
	if (read_trimmed(b.data, &cfg->namespace) < 0 && !(cfg->namespace = strdup("default"))) {
		rc = -ENOMEM;
		goto fail;
	}
	pl_buf_free(&b);
	if (!(cfg->source = strdup("in-cluster"))) {
		rc = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	pl_buf_free(&b);
	pl_kube_config_free(cfg);
	return rc;
}

/* ---------- choosing ---------- */

int pl_kube_config_load(pl_kube_config *cfg, const char *kubeconfig, const char *context, char *err,
			size_t errlen)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");

	memset(cfg, 0, sizeof(*cfg));
	if (kubeconfig)
		return pl_kube_config_load_file(cfg, kubeconfig, context, err, errlen);
	if (env && *env) {
		/* kubectl merges the list; we take the first file that exists. */
		char *list = strdup(env), *save = NULL;
		if (!list)
			return -ENOMEM;
		for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
			if (access(p, F_OK) == 0) {
				int rc = pl_kube_config_load_file(cfg, p, context, err, errlen);
				free(list);
				return rc;
			}
		}
		free(list);
		seterr(err, errlen, "KUBECONFIG=%s: no such file", env);
		return -ENOENT;
	}
	if (getenv("KUBERNETES_SERVICE_HOST"))
		return pl_kube_config_in_cluster(cfg, NULL, err, errlen);
	if (home && *home) {
		pl_buf b = PL_BUF_INIT;
		pl_buf_printf(&b, "%s/.kube/config", home);
		if (access(b.data, F_OK) == 0) {
			int rc = pl_kube_config_load_file(cfg, b.data, context, err, errlen);
			pl_buf_free(&b);
			return rc;
		}
		pl_buf_free(&b);
	}
	seterr(err, errlen, "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a "
			    "cluster, or create ~/.kube/config");
	return -ENOENT;
}
