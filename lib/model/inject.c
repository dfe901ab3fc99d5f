/* Sidecar injection: decides whether a Pod joins the mesh and builds the JSONPatch that adds it (no I/O). */
#include "model/inject.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "model/decode.h"
#include "model/model-t.h"

#define ANN_NATIVE "pillion.dev/native-sidecar"
/* "true": the proxy carries the pod's outbound HTTP/1 requests over HTTP/2 to peer proxies that offer it. */
#define ANN_H1_OVER_H2 "pillion.dev/http1-over-http2"
#define PROXY_NAME PL_PROXY_CONTAINER
#define INIT_NAME "pillion-init"
#define VOL_CONFIG "pillion-config"
#define VOL_MESH "pillion-mesh"
#define VOL_TLS "pillion-tls"
#define MESH_CONFIGMAP "pillion-mesh"

/* Annotations that become pillion-init settings (env PILLION_<FLAG>, as init/config.c reads them). */
static const struct init_ann {
	const char *annotation;
	const char *env;
	const char *flag;
	bool cidrs;
	bool include;  /* "*" is the default (all), "" means none */
} init_anns[] = {
	{"pillion.dev/skip-inbound-ports", "PILLION_SKIP_INBOUND_PORTS", "skip-inbound-ports", false, false},
	{"pillion.dev/include-inbound-ports", "PILLION_INCLUDE_INBOUND_PORTS", "include-inbound-ports", false, true},
	{"pillion.dev/skip-outbound-ports", "PILLION_SKIP_OUTBOUND_PORTS", "skip-outbound-ports", false, false},
	{"pillion.dev/skip-outbound-cidrs", "PILLION_SKIP_OUTBOUND_CIDRS", "skip-outbound-cidrs", true, false},
	{"pillion.dev/include-outbound-cidrs", "PILLION_INCLUDE_OUTBOUND_CIDRS", "include-outbound-cidrs", true, true},
};

/* The proxy's resources: annotation, default (NULL: none). */
static const struct res_ann {
	const char *annotation;
	const char *dflt;
} res_anns[] = {
	{"pillion.dev/proxy-cpu-request", "10m"},
	{"pillion.dev/proxy-memory-request", "32Mi"},
	{"pillion.dev/proxy-cpu-limit", NULL},
	{"pillion.dev/proxy-memory-limit", "256Mi"},
};

typedef struct ctx {
	const pl_inject_opts *o;
	pl_inject_result *r;
	const json_t *meta, *ann, *spec, *containers, *inits, *volumes;  /* NULL when absent or null */
	json_t *patch;
	bool oom;
} ctx;

/* Kubernetes treats an explicit null like an absent field. */
static const json_t *get(const json_t *obj, const char *key)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_null(v) ? NULL : v;
}

static const char *ann_get(const ctx *c, const char *key)
{
	return json_string_value(get(c->ann, key));
}

static void warnf(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(ctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Truncation may cut a UTF-8 sequence of a quoted value: back off until jansson takes it. */
	for (size_t n = strlen(msg), i = 0; !(s = json_stringn(msg, n)) && n > 0 && i < 4; i++)
		n--;
	if (!s || json_array_append_new(c->r->warnings, s) < 0)
		c->oom = true;
}

static bool invalid(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool invalid(ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->r->error, sizeof(c->r->error), fmt, ap);
	va_end(ap);
	c->r->reason = "invalid-pod";
	return false;
}

/* ---- shape: every field injection reads must have the type Kubernetes gives it ---- */

static bool check_sc(ctx *c, const json_t *obj, const char *field)
{
	const json_t *sc = get(obj, "securityContext");

	if (sc && !json_is_object(sc))
		return invalid(c, "%s.securityContext: must be an object", field);
	return true;
}

static bool check_containers(ctx *c, const json_t *arr, const char *field)
{
	size_t i, j;
	const json_t *ct, *p;
	char f[96];

	if (!arr)
		return true;
	if (!json_is_array(arr))
		return invalid(c, "%s: must be an array", field);
	json_array_foreach(arr, i, ct) {
		snprintf(f, sizeof(f), "%s[%zu]", field, i);
		if (!json_is_object(ct))
			return invalid(c, "%s: must be an object", f);
		if (!json_is_string(json_object_get(ct, "name")))
			return invalid(c, "%s.name: must be a string", f);
		const json_t *ports = get(ct, "ports");
		if (ports && !json_is_array(ports))
			return invalid(c, "%s.ports: must be an array", f);
		json_array_foreach(ports, j, p) {
			if (!json_is_object(p))
				return invalid(c, "%s.ports[%zu]: must be an object", f, j);
		}
		if (!check_sc(c, ct, f))
			return false;
	}
	return true;
}

static bool check_shape(ctx *c, const json_t *pod)
{
	const char *k;
	const json_t *v, *hn;
	size_t i;

	c->meta = get(pod, "metadata");
	if (c->meta && !json_is_object(c->meta))
		return invalid(c, "metadata: must be an object");
	c->ann = get(c->meta, "annotations");
	if (c->ann && !json_is_object(c->ann))
		return invalid(c, "metadata.annotations: must be an object");
	json_object_foreach((json_t *)c->ann, k, v) {
		if (!json_is_string(v))
			return invalid(c, "metadata.annotations[%.128s]: must be a string", k);
	}
	c->spec = get(pod, "spec");
	if (!c->spec)
		return invalid(c, "spec: is required");
	if (!json_is_object(c->spec))
		return invalid(c, "spec: must be an object");
	c->containers = get(c->spec, "containers");
	if (!c->containers)
		return invalid(c, "spec.containers: is required");
	c->inits = get(c->spec, "initContainers");
	c->volumes = get(c->spec, "volumes");
	if (!check_containers(c, c->containers, "spec.containers") ||
	    !check_containers(c, c->inits, "spec.initContainers") || !check_sc(c, c->spec, "spec"))
		return false;
	if (c->volumes && !json_is_array(c->volumes))
		return invalid(c, "spec.volumes: must be an array");
	json_array_foreach(c->volumes, i, v) {
		if (!json_is_object(v))
			return invalid(c, "spec.volumes[%zu]: must be an object", i);
		if (!json_is_string(json_object_get(v, "name")))
			return invalid(c, "spec.volumes[%zu].name: must be a string", i);
	}
	hn = get(c->spec, "hostNetwork");
	if (hn && !json_is_boolean(hn))
		return invalid(c, "spec.hostNetwork: must be a boolean");
	return true;
}

static bool has_container(const json_t *arr, const char *name)
{
	size_t i;
	const json_t *ct;

	json_array_foreach(arr, i, ct) {
		if (strcmp(json_string_value(json_object_get(ct, "name")), name) == 0)
			return true;
	}
	return false;
}

static long volume_index(const json_t *vols, const char *name)
{
	size_t i;
	const json_t *v;

	json_array_foreach(vols, i, v) {
		if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
			return (long)i;
	}
	return -1;
}

/* A pod that was not injected must not already use the names injection adds. */
static bool check_reserved(ctx *c)
{
	static const char *const vols[] = {VOL_CONFIG, VOL_MESH, VOL_TLS};
	const json_t *arrs[] = {c->containers, c->inits};
	const char *fields[] = {"spec.containers", "spec.initContainers"};
	size_t i;
	const json_t *ct;

	for (size_t a = 0; a < 2; a++) {
		json_array_foreach(arrs[a], i, ct) {
			if (strcmp(json_string_value(json_object_get(ct, "name")), INIT_NAME) == 0)
				return invalid(c, "%s[%zu].name: \"%s\" is reserved for the Pillion sidecar", fields[a],
					       i, INIT_NAME);
		}
	}
	for (size_t v = 0; v < 3; v++) {
		long at = volume_index(c->volumes, vols[v]);
		if (at >= 0)
			return invalid(c, "spec.volumes[%ld].name: \"%s\" is reserved for the Pillion sidecar", at,
				       vols[v]);
	}
	return true;
}

/* ---- annotation values: checked here so a typo becomes a warning, never a failed pod ---- */

static bool parse_uint_n(const char *s, size_t n, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return v <= max;
}

static void trim(const char **s, size_t *n)
{
	while (*n && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

static bool check_port(const char *s, size_t n, unsigned long *out, char *why, size_t wl)
{
	if (!parse_uint_n(s, n, 65535, out) || *out == 0) {
		snprintf(why, wl, "\"%.*s\" is not a port 1..65535", (int)(n > 32 ? 32 : n), s);
		return false;
	}
	return true;
}

static bool check_cidr(const char *s, size_t n, char *why, size_t wl)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];
	const char *slash = memchr(s, '/', n);
	size_t hl = slash ? (size_t)(slash - s) : n;
	unsigned long max, pfx;

	if (hl < sizeof(host)) {
		memcpy(host, s, hl);
		host[hl] = '\0';
	}
	if (hl >= sizeof(host))
		max = 0;
	else if (inet_pton(AF_INET, host, addr) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, host, addr) == 1)
		max = 128;
	else
		max = 0;
	if (!max) {
		snprintf(why, wl, "\"%.*s\" is not an IPv4 or IPv6 address", (int)(n > 48 ? 48 : n), s);
		return false;
	}
	if (slash && !parse_uint_n(slash + 1, n - hl - 1, max, &pfx)) {
		snprintf(why, wl, "\"%.*s\": the prefix length must be 0..%lu", (int)(n > 48 ? 48 : n), s, max);
		return false;
	}
	return true;
}

/* The grammar of pillion-init's --*-ports and --*-cidrs (init/config.c): comma-separated items, port
 * ranges a-b or a:b, at most 256 items. "" and "*" are handled by the caller. */
static bool check_list(const char *val, bool cidrs, char *why, size_t wl)
{
	const char *p = val;
	size_t items = 0;

	for (;;) {
		const char *comma = strchr(p, ',');
		const char *it = p;
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		unsigned long lo, hi;

		trim(&it, &n);
		if (n == 0) {
			snprintf(why, wl, "empty entry in the list");
			return false;
		}
		if (++items > 256) {
			snprintf(why, wl, "more than 256 entries");
			return false;
		}
		if (cidrs) {
			if (!check_cidr(it, n, why, wl))
				return false;
		} else {
			const char *sep = memchr(it, '-', n);
			if (!sep)
				sep = memchr(it, ':', n);
			if (!sep) {
				if (!check_port(it, n, &lo, why, wl))
					return false;
			} else {
				size_t l1 = (size_t)(sep - it);
				if (!check_port(it, l1, &lo, why, wl) || !check_port(sep + 1, n - l1 - 1, &hi, why, wl))
					return false;
				if (lo > hi) {
					snprintf(why, wl, "range %.*s starts after it ends", (int)(n > 16 ? 16 : n), it);
					return false;
				}
			}
		}
		if (!comma)
			return true;
		p = comma + 1;
	}
}

static double pow10_approx(int e)
{
	double v = 1;

	for (int i = 0; i < (e < 0 ? -e : e); i++)
		v = e < 0 ? v / 10 : v * 10;
	return v;
}

/*
 * A Kubernetes quantity, in the grammar resource.Quantity accepts (no sign: a negative resource
 * makes no sense): digits with an optional fraction, then a binary (Ki..Ei), decimal (n u m k M G T
 * P E) or exponent (e3, E-2) suffix. *out is the value in base units, precise enough to compare.
 */
static bool parse_quantity(const char *s, double *out)
{
	static const struct { const char *sfx; double mul; } sfx[] = {
		{"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
		{"Pi", 1125899906842624.0}, {"Ei", 1152921504606846976.0},
		{"n", 1e-9}, {"u", 1e-6}, {"m", 1e-3}, {"", 1}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9},
		{"T", 1e12}, {"P", 1e15}, {"E", 1e18},
	};
	const char *p = s;
	bool digits = false;
	char num[40];

	if (strlen(s) > 32)
		return false;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits = true;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	memcpy(num, s, (size_t)(p - s));
	num[p - s] = '\0';
	double v = strtod(num, NULL);
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if (strcmp(p, sfx[i].sfx) == 0) {
			*out = v * sfx[i].mul;
			return true;
		}
	}
	if (*p == 'e' || *p == 'E') {
		const char *e = p + 1;
		if (*e == '+' || *e == '-')
			e++;
		if (!*e || strspn(e, "0123456789") != strlen(e) || strlen(e) > 3)
			return false;
		*out = v * pow10_approx(atoi(p + 1));
		return true;
	}
	return false;
}

/* ---- the containers, volumes and annotations injection adds ---- */

static json_t *init_container(ctx *c)
{
	json_t *env = json_array(), *args = json_array();
	char why[160];

	if (!env || !args)
		c->oom = true;
	for (size_t i = 0; i < sizeof(init_anns) / sizeof(init_anns[0]); i++) {
		const struct init_ann *a = &init_anns[i];
		const char *v = ann_get(c, a->annotation), *t = v;
		size_t n = v ? strlen(v) : 0;

		if (!v)
			continue;
		trim(&t, &n);
		if (n == 0 && !a->include)
			continue;  /* skip nothing: the default */
		if (n == 1 && t[0] == '*' && a->include)
			continue;  /* include everything: the default */
		if (n == 0) {
			/* "Include nothing". pillion-init ignores empty variables, so this one is a flag. */
			char flag[64];
			snprintf(flag, sizeof(flag), "--%s=", a->flag);
			if (json_array_append_new(args, json_string(flag)) < 0)
				c->oom = true;
			continue;
		}
		if (n == 1 && t[0] == '*') {
			warnf(c, "%s: \"*\" is not allowed here (list the %s); annotation ignored", a->annotation,
			      a->cidrs ? "CIDRs" : "ports");
			continue;
		}
		if (!check_list(v, a->cidrs, why, sizeof(why))) {
			warnf(c, "%s: %s; annotation ignored", a->annotation, why);
			continue;
		}
		if (json_array_append_new(env, json_pack("{s:s, s:s}", "name", a->env, "value", v)) < 0)
			c->oom = true;
	}
	/* A read-only root has no writable /run for legacy iptables' lock file; /dev/shm is always tmpfs. */
	if (json_array_append_new(env, json_pack("{s:s, s:s}", "name", "XTABLES_LOCKFILE", "value",
						 "/dev/shm/xtables.lock")) < 0)
		c->oom = true;

	json_t *ct = json_pack("{s:s, s:s}", "name", INIT_NAME, "image", c->o->init_image);
	if (!ct) {
		json_decref(env);
		json_decref(args);
		c->oom = true;
		return NULL;
	}
	if (json_array_size(args))
		json_object_set(ct, "args", args);
	json_object_set(ct, "env", env);
	json_decref(args);
	json_decref(env);
	json_object_set_new(ct, "resources",
			    json_pack("{s:{s:s, s:s}, s:{s:s}}", "requests", "cpu", "10m", "memory", "16Mi",
				      "limits", "memory", "64Mi"));
	json_object_set_new(ct, "securityContext",
			    json_pack("{s:{s:[s,s], s:[s]}, s:i, s:b, s:b, s:b, s:b}", "capabilities", "add",
				      "NET_ADMIN", "NET_RAW", "drop", "ALL", "runAsUser", 0, "runAsNonRoot", 0,
				      "privileged", 0, "readOnlyRootFilesystem", 1, "allowPrivilegeEscalation", 0));
	json_object_set_new(ct, "terminationMessagePolicy", json_string("FallbackToLogsOnError"));
	if (json_object_size(ct) < (json_array_size(args) ? 7u : 6u))
		c->oom = true;
	return ct;
}

/* The proxy's requests and limits: annotations checked as quantities, a request never above its limit. */
static json_t *proxy_resources(ctx *c)
{
	const char *val[4];
	double q[4];
	bool dflt[4];

	for (int i = 0; i < 4; i++) {
		const char *v = ann_get(c, res_anns[i].annotation);
		val[i] = res_anns[i].dflt;
		dflt[i] = true;
		if (v && !parse_quantity(v, &q[i])) {
			warnf(c, "%s: \"%.64s\" is not a Kubernetes quantity such as 100m, 64Mi or 1Gi; using %s",
			      res_anns[i].annotation, v, val[i] ? val[i] : "none");
			v = NULL;
		}
		if (v && i >= 2 && q[i] == 0) {
			warnf(c, "%s: must be greater than 0; using %s", res_anns[i].annotation,
			      val[i] ? val[i] : "none");
			v = NULL;
		}
		if (v) {
			val[i] = v;
			dflt[i] = false;
		}
		if (val[i] && dflt[i])
			parse_quantity(val[i], &q[i]);
	}
	for (int i = 0; i < 2; i++) {
		int l = i + 2;
		if (!val[i] || !val[l] || q[i] <= q[l])
			continue;
		if (dflt[l]) {
			val[l] = val[i];  /* a bigger request than the default limit: the limit follows */
		} else {
			warnf(c, "%s: \"%s\" is greater than %s \"%s\"; using the limit as the request",
			      res_anns[i].annotation, val[i], res_anns[l].annotation, val[l]);
			val[i] = val[l];
		}
	}
	json_t *req = json_object(), *lim = json_object(), *res = json_object();
	const char *names[2] = {"cpu", "memory"};
	for (int i = 0; i < 2; i++) {
		if (val[i])
			json_object_set_new(req, names[i], json_string(val[i]));
		if (val[i + 2])
			json_object_set_new(lim, names[i], json_string(val[i + 2]));
	}
	if (!req || !lim || !res) {
		c->oom = true;
	} else {
		if (json_object_size(req))
			json_object_set(res, "requests", req);
		if (json_object_size(lim))
			json_object_set(res, "limits", lim);
	}
	json_decref(req);
	json_decref(lim);
	return res;
}

static json_t *probe(const char *path, int period, int failures)
{
	return json_pack("{s:{s:s, s:i}, s:i, s:i}", "httpGet", "path", path, "port", PL_INJECT_ADMIN_PORT,
			 "periodSeconds", period, "failureThreshold", failures);
}

static json_t *proxy_container(ctx *c, bool native)
{
	/* --drain-delay: on a 1.26 node the app and the proxy get SIGTERM together, while callers still
	 * list the pod for a moment; new connections are served (Connection: close) meanwhile. */
	/* --outbound: the client-side policies come with the namespace's directory, written once per
	 * namespace instead of into every pod's config (docs/rollouts.md). */
	json_t *ct = json_pack("{s:s, s:s, s:[s,s,s,s,s,s,s,s,s,s], s:[{s:s, s:i, s:s}]}", "name", PROXY_NAME, "image",
			       c->o->proxy_image, "args", "--config", "/etc/pillion/config/proxy.json", "--mesh",
			       "/etc/pillion/mesh/mesh.json", "--outbound", "/etc/pillion/mesh/outbound.json", "--tls-dir",
			       "/etc/pillion/tls", "--drain-delay", "5s",
			       "ports", "name",
			       "pillion-admin", "containerPort", PL_INJECT_ADMIN_PORT, "protocol", "TCP");
	if (!ct) {
		c->oom = true;
		return NULL;
	}
	json_object_set_new(ct, "env",
			    json_pack("[{s:s, s:{s:{s:s}}}, {s:s, s:{s:{s:s}}}]", "name", "POD_NAME", "valueFrom",
				      "fieldRef", "fieldPath", "metadata.name", "name", "POD_NAMESPACE", "valueFrom",
				      "fieldRef", "fieldPath", "metadata.namespace"));
	json_object_set_new(ct, "resources", proxy_resources(c));
	json_object_set_new(ct, "volumeMounts",
			    json_pack("[{s:s, s:s, s:b}, {s:s, s:s, s:b}, {s:s, s:s, s:b}]", "name", VOL_CONFIG,
				      "mountPath", "/etc/pillion/config", "readOnly", 1, "name", VOL_MESH, "mountPath",
				      "/etc/pillion/mesh", "readOnly", 1, "name", VOL_TLS, "mountPath",
				      "/etc/pillion/tls", "readOnly", 1));
	/* The startup probe gives the operator a minute to write the config and certificate; a native
	 * sidecar's startup probe is also what holds the app containers back until the proxy serves. */
	json_object_set_new(ct, "startupProbe", probe("/ready", 1, 60));
	json_object_set_new(ct, "readinessProbe", probe("/ready", 5, 3));
	json_object_set_new(ct, "livenessProbe", probe("/live", 10, 3));
	json_object_set_new(ct, "securityContext",
			    json_pack("{s:i, s:i, s:b, s:b, s:b, s:b, s:{s:[s]}, s:{s:s}}", "runAsUser",
				      PL_INJECT_PROXY_UID, "runAsGroup", PL_INJECT_PROXY_UID, "runAsNonRoot", 1,
				      "privileged", 0, "readOnlyRootFilesystem", 1, "allowPrivilegeEscalation", 0,
				      "capabilities", "drop", "ALL", "seccompProfile", "type", "RuntimeDefault"));
	json_object_set_new(ct, "terminationMessagePolicy", json_string("FallbackToLogsOnError"));
	if (native)
		json_object_set_new(ct, "restartPolicy", json_string("Always"));
	else
		/* The kubelet starts the next container only once this hook has returned. */
		json_object_set_new(ct, "lifecycle",
				    json_pack("{s:{s:{s:[s,s,s,s]}}}", "postStart", "exec", "command",
					      PL_INJECT_PROXY_PATH, "wait", "--timeout", "120s"));
	const char *h1h2 = ann_get(c, ANN_H1_OVER_H2);
	if (h1h2 && (strcmp(h1h2, "true") == 0 || strcmp(h1h2, "false") == 0)) {
		json_t *args = json_object_get(ct, "args");
		if (json_array_append_new(args, json_string("--http1-over-http2")) < 0 ||
		    json_array_append_new(args, json_string(h1h2)) < 0)
			c->oom = true;
	} else if (h1h2) {
		warnf(c, "%s: must be \"true\" or \"false\", got \"%.64s\"; ignored", ANN_H1_OVER_H2, h1h2);
	}
	if (json_object_size(ct) != 13u)
		c->oom = true;
	return ct;
}

/* Required, not optional: the kubelet mounts them only once all three exist (retrying with back-off,
 * a FailedMount event naming what is missing), so the proxy starts with its config, certificate and
 * the namespace's directory, as Istio's pods wait for istio-ca-root-cert. An optional volume would
 * start empty, and a real kubelet projects what appears later only on a pod sync, which the proxy
 * container's postStart hook holds up. */
static json_t *volume(const char *name, bool secret, const char *source)
{
	return json_pack("{s:s, s:{s:s}}", "name", name, secret ? "secret" : "configMap", secret ? "secretName" : "name",
			 source);
}

/* Appends {op, path, value} to the patch ({op, path} for "remove", value NULL); value is stolen. */
static void op(ctx *c, const char *what, const char *path, json_t *value)
{
	json_t *o = json_object();
	bool rm = strcmp(what, "remove") == 0; /* the one op without a value */

	if (!o || (!value && !rm) || json_object_set_new(o, "op", json_string(what)) < 0 ||
	    json_object_set_new(o, "path", json_string(path)) < 0 ||
	    (!rm && json_object_set_new(o, "value", value) < 0) || json_array_append_new(c->patch, o) < 0) {
		if (!o)
			json_decref(value);
		c->oom = true;
	}
}

/* RFC 6901: "~" is written "~0" and "/" "~1" inside a JSON Pointer token. */
static void ptr_token(pl_buf *b, const char *key)
{
	for (; *key; key++) {
		if (*key == '~')
			pl_buf_puts(b, "~0");
		else if (*key == '/')
			pl_buf_puts(b, "~1");
		else
			pl_buf_append(b, key, 1);
	}
}

/* Sets annotations (values stolen), creating metadata and metadata.annotations when absent. */
static void set_annotations(ctx *c, const char *const *keys, json_t **vals, size_t n)
{
	if (!c->ann) {
		json_t *m = json_object();
		for (size_t i = 0; i < n; i++) {
			if (!m || json_object_set_new(m, keys[i], vals[i]) < 0)
				c->oom = true;
		}
		if (!c->meta)
			op(c, "add", "/metadata", json_pack("{s:o}", "annotations", m));
		else
			op(c, "add", "/metadata/annotations", m);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		pl_buf p = PL_BUF_INIT;
		pl_buf_puts(&p, "/metadata/annotations/");
		ptr_token(&p, keys[i]);
		op(c, "add", p.data, vals[i]);
		pl_buf_free(&p);
	}
}

/* The three volumes, each replaced where the pod has it (completion) and added where it does not. */
static void set_volumes(ctx *c, const char *config, const char *tls)
{
	json_t *v[3] = {volume(VOL_CONFIG, false, config), volume(VOL_MESH, false, MESH_CONFIGMAP),
			volume(VOL_TLS, true, tls)};

	if (!c->volumes) {
		json_t *arr = json_array();
		for (int i = 0; i < 3; i++) {
			if (!arr || json_array_append_new(arr, v[i]) < 0)
				c->oom = true;
		}
		op(c, "add", "/spec/volumes", arr);
		return;
	}
	for (int i = 0; i < 3; i++) {
		long at = volume_index(c->volumes, json_string_value(json_object_get(v[i], "name")));
		char path[64];
		if (at >= 0)
			snprintf(path, sizeof(path), "/spec/volumes/%ld", at);
		else
			snprintf(path, sizeof(path), "/spec/volumes/-");
		op(c, at >= 0 ? "replace" : "add", path, v[i]);
	}
}

static const char *config_name(ctx *c, char *buf, size_t n, bool tls)
{
	if (c->o->template_mode)
		return tls ? PL_INJECT_PENDING_TLS : PL_INJECT_PENDING_CONFIG;
	snprintf(buf, n, "pillion-%s%s", c->o->id, tls ? "-tls" : "");
	return buf;
}

/* Warnings for what would quietly break the mesh: the proxy's UID, the proxy's ports. */
static void warn_conflicts(ctx *c)
{
	static const struct { int port; const char *what; } own[] = {
		{PL_INJECT_OUTBOUND_PORT, "outbound"}, {PL_INJECT_INBOUND_PORT, "inbound"},
		{PL_INJECT_ADMIN_PORT, "admin"},
	};
	const json_t *arrs[] = {c->containers, c->inits};
	const char *fields[] = {"spec.containers", "spec.initContainers"};
	const json_t *pod_uid = get(get(c->spec, "securityContext"), "runAsUser");
	size_t i, j;
	const json_t *ct, *p;

	for (size_t a = 0; a < 2; a++) {
		json_array_foreach(arrs[a], i, ct) {
			const char *name = json_string_value(json_object_get(ct, "name"));
			const json_t *uid = get(get(ct, "securityContext"), "runAsUser");
			if (!uid)
				uid = pod_uid;
			if (json_is_integer(uid) && json_integer_value(uid) == PL_INJECT_PROXY_UID)
				warnf(c, "%s[%zu] (%.64s) runs as UID %d, the proxy's: its traffic bypasses the mesh",
				      fields[a], i, name, PL_INJECT_PROXY_UID);
			json_array_foreach(get(ct, "ports"), j, p) {
				const json_t *cp = get(p, "containerPort");
				for (size_t k = 0; k < sizeof(own) / sizeof(own[0]); k++) {
					if (json_is_integer(cp) && json_integer_value(cp) == own[k].port)
						warnf(c, "%s[%zu].ports[%zu].containerPort: %d is the proxy's %s port; "
							 "the app cannot serve on it",
						      fields[a], i, j, own[k].port, own[k].what);
				}
			}
		}
	}
}

static bool choose_native(ctx *c)
{
	const char *v = ann_get(c, ANN_NATIVE);

	if (v && strcmp(v, "true") == 0)
		return true;
	if (v && strcmp(v, "false") == 0)
		return false;
	if (v)
		warnf(c, "%s: must be \"true\" or \"false\", got \"%.64s\"; ignored", ANN_NATIVE, v);
	if (c->o->mode == PL_SIDECAR_NATIVE)
		return true;
	if (c->o->mode == PL_SIDECAR_CONTAINER)
		return false;
	return c->o->server_minor >= PL_INJECT_NATIVE_SIDECAR_MIN_MINOR;
}

/*
 * Placement. Native (Kubernetes >= 1.29): pillion-init, then the proxy as a restartable init
 * container, both before the app's own init containers: the kubelet starts the next init container
 * only once the proxy's startupProbe passes, so the app's init and main containers start meshed, a
 * Job completes when its app exits, and the proxy stops after the app.
 *
 * Container (older clusters): the proxy is the first container, with an exec postStart hook running
 * `pillion-proxy wait` (until its /ready is 200, at most 120 s). The kubelet starts containers in
 * order and starts the next one only after the previous one's postStart hook returned, so the app
 * starts once the proxy serves (Istio's holdApplicationUntilProxyStarts does the same). An httpGet
 * hook would not do: it is tried once, the instant the process starts, and a failure kills the
 * container. A hook that times out kills the proxy container (restarted with back-off) and the app
 * starts anyway. pillion-init goes after the app's init containers there, so they keep a working
 * (unmeshed) network instead of being redirected to a proxy that has not started.
 */
/* The app containers' HTTP probes are pointed at the proxy's admin port, which runs each on
 * loopback (GET /app-health/<container>/<kind>): the app's ports then take no plaintext at all
 * under STRICT, not even the kubelet's. The originals are kept in PL_ANNOTATION_PROBES (the
 * proxy's config is rendered from them; removing the proxy restores them). Returns that
 * annotation's value, or NULL when no probe was rewritten. Emitted before the proxy container
 * is inserted, so the container indexes are the pod's own. */
static char *rewrite_probes(ctx *c)
{
	static const char *const kinds[] = {"livenessProbe", "readinessProbe", "startupProbe"};
	static const char *const names[] = {"liveness", "readiness", "startup"};
	json_t *orig = json_object();
	const json_t *ct;
	size_t i;
	char *out = NULL;

	if (!orig) {
		c->oom = true;
		return NULL;
	}
	json_array_foreach(c->containers, i, ct) {
		const char *name = json_string_value(get(ct, "name"));
		for (int k = 0; k < 3; k++) {
			const json_t *pr = get(ct, kinds[k]), *g = get(pr, "httpGet"), *ts = get(pr, "tcpSocket");
			const json_t *gr = get(pr, "grpc");
			/* A tcpSocket probe of the app's port would be answered by the proxy's accept, the app
			 * up or not: it becomes an HTTP probe of the admin port, which connects on loopback. A
			 * gRPC one (plaintext HTTP/2 to the app's port, refused under STRICT) too: the proxy
			 * calls grpc.health.v1.Health/Check on loopback. */
			bool tcp = !json_is_object(g) && json_is_object(ts);
			bool grpc = !json_is_object(g) && !tcp && json_is_object(gr);
			if (tcp)
				g = ts;
			if (grpc)
				g = gr;
			if (!json_is_object(g))
				continue;
			const char *scheme = json_string_value(get(g, "scheme")), *host = json_string_value(get(g, "host"));
			if (scheme && strcmp(scheme, "HTTP") != 0) {
				warnf(c, "spec.containers[%zu].%s: an HTTPS probe is left as it is; under mTLS STRICT the "
					 "kubelet's call to the app's port is refused: probe over HTTP, or use an exec probe",
				      i, kinds[k]);
				continue;
			}
			if (host && *host) {
				warnf(c, "spec.containers[%zu].%s: a probe of host \"%.64s\" is left as it is: it does not "
					 "call the pod", i, kinds[k], host);
				continue;
			}
			json_t *saved = json_object_get(orig, name);
			if (!saved) {
				saved = json_object();
				if (json_object_set_new(orig, name, saved) < 0)
					c->oom = true;
			}
			if (json_object_set(saved, kinds[k], (json_t *)pr) < 0)
				c->oom = true;
			char path[64 + 256], ptr[128];
			snprintf(path, sizeof(path), "%s%s/%s", PL_PROBE_PATH_PREFIX, name, names[k]);
			if (tcp || grpc) {
				snprintf(ptr, sizeof(ptr), "/spec/containers/%zu/%s/%s", i, kinds[k], tcp ? "tcpSocket" : "grpc");
				op(c, "remove", ptr, NULL);
			}
			snprintf(ptr, sizeof(ptr), "/spec/containers/%zu/%s/httpGet", i, kinds[k]);
			op(c, tcp || grpc ? "add" : "replace", ptr, json_pack("{s:s, s:i, s:s}", "path", path, "port",
								    PL_INJECT_ADMIN_PORT, "scheme", "HTTP"));
		}
	}
	if (json_object_size(orig)) {
		out = json_dumps(orig, JSON_COMPACT | JSON_SORT_KEYS);
		if (!out)
			c->oom = true;
	}
	json_decref(orig);
	return out;
}

static void build(ctx *c, bool native)
{
	char cfg[96], tls[96];
	char *probes = rewrite_probes(c);
	json_t *init = init_container(c), *proxy = proxy_container(c, native);

	if (!c->inits) {
		json_t *arr = native ? json_pack("[oo]", init, proxy) : json_pack("[o]", init);
		op(c, "add", "/spec/initContainers", arr);
	} else if (native) {
		op(c, "add", "/spec/initContainers/0", init);
		op(c, "add", "/spec/initContainers/1", proxy);
	} else {
		op(c, "add", "/spec/initContainers/-", init);
	}
	if (!native) {
		const char *rp = json_string_value(get(c->spec, "restartPolicy"));
		if (rp && (strcmp(rp, "Never") == 0 || strcmp(rp, "OnFailure") == 0))
			warnf(c, "spec.restartPolicy: %s: the pod runs to completion but the proxy is a regular "
				 "container that does not exit; the app must POST /shutdown to 127.0.0.1:%d when done, "
				 "or use a native sidecar (Kubernetes 1.29 or later)", rp, PL_INJECT_ADMIN_PORT);
		op(c, "add", "/spec/containers/0", proxy);
	}
	set_volumes(c, config_name(c, cfg, sizeof(cfg), false), config_name(c, tls, sizeof(tls), true));

	json_t *status = json_pack("{s:i, s:s, s:s, s:s}", "version", 1, "proxy", c->o->proxy_image, "init",
				   c->o->init_image, "sidecar", native ? "native" : "container");
	char *s = status ? json_dumps(status, JSON_COMPACT) : NULL;
	const char *keys[3] = {PL_INJECT_STATUS_ANNOTATION, PL_ANNOTATION_PROBES, PL_ANNOTATION_ID};
	json_t *vals[3] = {s ? json_string(s) : NULL, probes ? json_string(probes) : NULL,
			   c->o->template_mode ? NULL : json_string(c->o->id)};
	size_t n = 1;
	if (!vals[0] || (probes && !vals[1]))
		c->oom = true;
	if (probes)
		n++;
	else
		keys[1] = keys[2], vals[1] = vals[2];
	if (!c->o->template_mode)
		n++;
	set_annotations(c, keys, vals, n);
	free(probes);
	free(s);
	json_decref(status);
}

int pl_inject_pod(const json_t *pod, const pl_inject_opts *o, pl_inject_result *out)
{
	ctx c = {.o = o, .r = out};

	memset(out, 0, sizeof(*out));
	out->warnings = json_array();
	if (!out->warnings)
		return -1;
	if (!o->proxy_image || !*o->proxy_image || !o->init_image || !*o->init_image) {
		out->reason = "invalid-options";
		snprintf(out->error, sizeof(out->error), "the proxy and init images are required");
		return 0;
	}
	if (!o->template_mode && (!o->id || !*o->id || !pl_is_pod_id(o->id))) {
		out->reason = "invalid-options";
		snprintf(out->error, sizeof(out->error), "id: must be a DNS-1123 label of at most %d characters",
			 PL_POD_ID_MAX);
		return 0;
	}
	/* An AdmissionReview's object carries kind and apiVersion; a bare object without them is taken as a Pod. */
	const json_t *kind = get(pod, "kind"), *api = get(pod, "apiVersion");
	if (!json_is_object(pod) || (kind && !(json_is_string(kind) && strcmp(json_string_value(kind), "Pod") == 0)) ||
	    (api && !(json_is_string(api) && strcmp(json_string_value(api), "v1") == 0))) {
		out->reason = "not-a-pod";
		return 0;
	}
	if (!check_shape(&c, pod))
		return 0;
	if (json_is_true(get(c.spec, "hostNetwork"))) {
		out->reason = "host-network";
		return 0;
	}
	const char *want = ann_get(&c, PL_INJECT_ANNOTATION);
	bool enabled = false;
	if (want && (strcmp(want, "disabled") == 0 || strcmp(want, "false") == 0)) {
		out->reason = "disabled-by-annotation";
		return 0;
	}
	if (want && (strcmp(want, "enabled") == 0 || strcmp(want, "true") == 0))
		enabled = true;
	else if (want)
		warnf(&c, "%s: must be \"enabled\" or \"disabled\", got \"%.64s\"; ignored", PL_INJECT_ANNOTATION,
		      want);
	const char *id = ann_get(&c, PL_ANNOTATION_ID);
	bool has_proxy = has_container(c.containers, PROXY_NAME) || has_container(c.inits, PROXY_NAME);
	if ((id && *id) || (has_proxy && o->template_mode)) {
		out->reason = "already-injected";
		return c.oom ? -1 : 0;
	}
	out->patch = json_array();
	if (!out->patch)
		return -1;
	c.patch = out->patch;
	if (has_proxy) {
		/* Injected from a manifest (template mode): only the id and what depends on it are missing. */
		char cfg[96], tls[96];
		const char *keys[1] = {PL_ANNOTATION_ID};
		json_t *vals[1] = {json_string(o->id)};
		set_volumes(&c, config_name(&c, cfg, sizeof(cfg), false), config_name(&c, tls, sizeof(tls), true));
		set_annotations(&c, keys, vals, 1);
		out->reason = "completed";
	} else if (!o->namespace_enabled && !enabled) {
		out->reason = "namespace-not-enabled";
	} else if (check_reserved(&c)) {
		warn_conflicts(&c);
		build(&c, choose_native(&c));
		out->reason = "injected";
	}
	out->injected = strcmp(out->reason, "injected") == 0 || strcmp(out->reason, "completed") == 0;
	if (!out->injected || c.oom) {
		json_decref(out->patch);
		out->patch = NULL;
	}
	return c.oom ? -1 : 0;
}

void pl_inject_result_clear(pl_inject_result *r)
{
	json_decref(r->patch);
	json_decref(r->warnings);
	memset(r, 0, sizeof(*r));
}

/* ---- RFC 6902, the subset injection emits ---- */

static int perr(char *err, size_t errlen, size_t i, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int perr(char *err, size_t errlen, size_t i, const char *path, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "patch[%zu] %.96s: %s", i, path ? path : "", msg);
	return -1;
}

/* Decodes the token starting at *p (after its '/') into tok; advances *p. false on a bad escape. */
static bool next_token(const char **p, pl_buf *tok)
{
	pl_buf_reset(tok);
	pl_buf_append(tok, "", 0);
	for (; **p && **p != '/'; (*p)++) {
		if (**p != '~') {
			pl_buf_append(tok, *p, 1);
			continue;
		}
		(*p)++;
		if (**p == '0')
			pl_buf_append(tok, "~", 1);
		else if (**p == '1')
			pl_buf_append(tok, "/", 1);
		else
			return false;
	}
	return true;
}

/* An array index: "0", or digits without a leading zero; -1 otherwise. */
static long array_index(const char *s)
{
	unsigned long v;

	if (!*s || (s[0] == '0' && s[1]) || !parse_uint_n(s, strlen(s), 1000000000UL, &v))
		return -1;
	return (long)v;
}

static int apply_one(json_t *doc, const json_t *o, size_t i, pl_buf *tok, char *err, size_t errlen)
{
	const char *what = json_string_value(json_object_get(o, "op"));
	const char *path = json_string_value(json_object_get(o, "path"));
	const json_t *value = json_object_get(o, "value");
	json_t *parent = doc;

	if (!json_is_object(o) || !what || !path)
		return perr(err, errlen, i, path, "an operation needs op and path");
	bool add = strcmp(what, "add") == 0, replace = strcmp(what, "replace") == 0;
	bool rm = strcmp(what, "remove") == 0, test = strcmp(what, "test") == 0;
	if (!add && !replace && !rm && !test)
		return perr(err, errlen, i, path, "unsupported op \"%.32s\"", what);
	if (!rm && !value)
		return perr(err, errlen, i, path, "value is required");
	if (path[0] != '/')
		return perr(err, errlen, i, path, "the path must start with / (the whole document cannot be replaced)");
	const char *p = path + 1;
	for (;;) {
		if (!next_token(&p, tok))
			return perr(err, errlen, i, path, "bad ~ escape");
		if (*p == '\0')
			break;
		p++;
		json_t *child = NULL;
		if (json_is_object(parent)) {
			child = json_object_get(parent, tok->data);
		} else if (json_is_array(parent)) {
			long at = array_index(tok->data);
			child = at >= 0 ? json_array_get(parent, (size_t)at) : NULL;
		}
		if (!child)
			return perr(err, errlen, i, path, "\"%.64s\" does not exist", tok->data);
		parent = child;
	}
	const char *key = tok->data;
	if (json_is_object(parent)) {
		json_t *cur = json_object_get(parent, key);
		if (!add && !cur)
			return perr(err, errlen, i, path, "\"%.64s\" does not exist", key);
		if (test)
			return json_equal(cur, (json_t *)value) ? 0 : perr(err, errlen, i, path, "test failed");
		if (rm)
			return json_object_del(parent, key) == 0 ? 0 : perr(err, errlen, i, path, "remove failed");
		return json_object_set_new(parent, key, json_deep_copy(value)) == 0 ? 0
		       : perr(err, errlen, i, path, "out of memory");
	}
	if (json_is_array(parent)) {
		size_t n = json_array_size(parent);
		long at = strcmp(key, "-") == 0 && add ? (long)n : array_index(key);
		if (at < 0 || (size_t)at > n || (!add && (size_t)at == n))
			return perr(err, errlen, i, path, "index \"%.32s\" is out of range (%zu items)", key, n);
		if (test)
			return json_equal(json_array_get(parent, (size_t)at), (json_t *)value) ? 0
			       : perr(err, errlen, i, path, "test failed");
		if (rm)
			return json_array_remove(parent, (size_t)at) == 0 ? 0 : perr(err, errlen, i, path, "remove failed");
		json_t *copy = json_deep_copy(value);
		int rc = replace ? json_array_set_new(parent, (size_t)at, copy)
				 : json_array_insert_new(parent, (size_t)at, copy);
		return rc == 0 ? 0 : perr(err, errlen, i, path, "out of memory");
	}
	return perr(err, errlen, i, path, "the parent is neither an object nor an array");
}

int pl_json_patch_apply(json_t *doc, const json_t *patch, char *err, size_t errlen)
{
	pl_buf tok = PL_BUF_INIT;
	size_t i;
	const json_t *o;
	int rc = 0;

	if (!json_is_array(patch))
		return perr(err, errlen, 0, "", "the patch must be an array");
	json_array_foreach(patch, i, o) {
		if ((rc = apply_one(doc, o, i, &tok, err, errlen)) < 0)
			break;
	}
	pl_buf_free(&tok);
	return rc;
}

int pl_inject_server_minor(const char *v, int *out)
{
	char *end;
	long major, minor;

	if (!*v || strcmp(v, "unknown") == 0) {
		*out = 0;
		return 0;
	}
	if (*v == 'v')
		v++;
	if (*v < '0' || *v > '9')
		return -1;
	major = strtol(v, &end, 10);
	if (major != 1 || *end != '.' || end[1] < '0' || end[1] > '9')
		return -1;
	minor = strtol(end + 1, &end, 10);
	if (minor > 1000 || (*end && *end != '.' && *end != '+' && *end != '-'))
		return -1;
	*out = (int)minor;
	return 0;
}
