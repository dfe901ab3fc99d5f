/* Unit tests of sidecar injection: skip reasons, the patch applied to realistic pods, placement, idempotence, junk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json/json.h"
#include "model/inject.h"

#define ID "0123456789abcdef0123456789abcdef"
#define PROXY "pillion/proxy:0.1.0"
#define INIT "pillion/init:0.1.0"

static pl_inject_opts opts(pl_sidecar_mode mode, int minor)
{
	pl_inject_opts o = {.proxy_image = PROXY, .init_image = INIT, .id = ID, .mode = mode,
			    .server_minor = minor, .namespace_enabled = true};
	return o;
}

/* One YAML (or JSON) document; the caller owns the value. */
static json_t *load(const char *yaml)
{
	pl_docs docs;

	if (pl_yaml_load(yaml, strlen(yaml), &docs) != 0 || docs.n != 1 || !docs.v[0].root)
		fail_msg("test input is not one YAML document: %s\n%s", docs.error, yaml);
	json_t *v = json_incref(docs.v[0].root);
	pl_docs_free(&docs);
	return v;
}

/* "spec.containers.0.name": members and array indexes. NULL when absent. */
static json_t *at(json_t *v, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *t = strtok_r(buf, ".", &save); t && v; t = strtok_r(NULL, ".", &save)) {
		if (json_is_array(v))
			v = json_array_get(v, strtoul(t, NULL, 10));
		else
			v = json_object_get(v, t);
	}
	return v;
}

static const char *str_at(json_t *v, const char *path)
{
	return json_string_value(at(v, path));
}

static void dump(const char *what, const json_t *v)
{
	char *s = pl_json_dump_pretty(v);
	print_message("%s:\n%s", what, s ? s : "(null)\n");
	free(s);
}

/* Injects, expects reason, and (when injected) returns a copy of pod with the patch applied. */
static json_t *inject(const json_t *pod, const pl_inject_opts *o, const char *reason, pl_inject_result *r)
{
	assert_int_equal(pl_inject_pod(pod, o, r), 0);
	assert_non_null(r->warnings);
	if (strcmp(r->reason, reason) != 0) {
		print_message("error: %s\n", r->error);
		dump("warnings", r->warnings);
		fail_msg("reason %s, want %s", r->reason, reason);
	}
	if (!r->injected) {
		assert_null(r->patch);
		return NULL;
	}
	char err[256] = "";
	json_t *out = json_deep_copy(pod);
	if (pl_json_patch_apply(out, r->patch, err, sizeof(err)) != 0) {
		dump("patch", r->patch);
		fail_msg("patch does not apply: %s", err);
	}
	return out;
}

static bool has_warning(const pl_inject_result *r, const char *needle)
{
	size_t i;
	json_t *w;

	json_array_foreach(r->warnings, i, w) {
		if (strstr(json_string_value(w), needle))
			return true;
	}
	return false;
}

static void expect_warning(const pl_inject_result *r, const char *needle)
{
	if (!has_warning(r, needle)) {
		dump("warnings", r->warnings);
		fail_msg("no warning containing \"%s\"", needle);
	}
}

static const char *env_value(json_t *ct, const char *name)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(ct, "env"), i, e) {
		if (strcmp(str_at(e, "name"), name) == 0)
			return str_at(e, "value");
	}
	return NULL;
}

static const char *const DEPLOYMENT_POD =
	"apiVersion: v1\n"
	"kind: Pod\n"
	"metadata:\n"
	"  generateName: web-7c9f8d-\n"
	"  namespace: shop\n"
	"  labels: {app: web, pod-template-hash: 7c9f8d}\n"
	"  annotations: {prometheus.io/scrape: \"true\"}\n"
	"  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7c9f8d, uid: u1, controller: true}]\n"
	"spec:\n"
	"  serviceAccountName: web\n"
	"  securityContext: {runAsNonRoot: true, runAsUser: 1000}\n"
	"  initContainers:\n"
	"  - {name: migrate, image: web:1, command: [/migrate]}\n"
	"  containers:\n"
	"  - name: web\n"
	"    image: web:1\n"
	"    ports: [{name: http, containerPort: 8080}]\n"
	"    readinessProbe: {httpGet: {path: /healthz, port: 8080}}\n"
	"  - {name: log, image: fluent:2}\n"
	"  volumes:\n"
	"  - {name: data, emptyDir: {}}\n";

static const char *const BARE_POD =
	"{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"c\"},"
	" \"spec\": {\"containers\": [{\"name\": \"app\", \"image\": \"app:1\"}]}}";

static void test_skip_reasons(void **state)
{
	(void)state;
	pl_inject_opts o = opts(PL_SIDECAR_AUTO, 0);
	pl_inject_result r;
	static const struct { const char *doc, *reason, *error; } cases[] = {
		{"[1, 2]", "not-a-pod", NULL},
		{"\"Pod\"", "not-a-pod", NULL},
		{"{kind: Deployment, apiVersion: apps/v1, spec: {}}", "not-a-pod", NULL},
		{"{kind: Pod, apiVersion: example.com/v1, spec: {containers: []}}", "not-a-pod", NULL},
		{"{kind: 12, spec: {containers: []}}", "not-a-pod", NULL},
		{"{kind: Pod, apiVersion: v1, spec: {hostNetwork: true, containers: [{name: a}]}}", "host-network", NULL},
		{"{kind: Pod, metadata: {annotations: {pillion.dev/inject: disabled}}, spec: {containers: [{name: a}]}}",
		 "disabled-by-annotation", NULL},
		{"{kind: Pod, metadata: {annotations: {pillion.dev/inject: \"false\"}}, spec: {containers: [{name: a}]}}",
		 "disabled-by-annotation", NULL},
		{"{kind: Pod, metadata: {annotations: {pillion.dev/id: abc}}, spec: {containers: [{name: a}]}}",
		 "already-injected", NULL},
		{"{kind: Pod, spec: {containers: [{name: a}]}}", "injected", NULL},
		{"{kind: Pod, metadata: [], spec: {containers: []}}", "invalid-pod", "metadata: must be an object"},
		{"{kind: Pod, spec: {}}", "invalid-pod", "spec.containers: is required"},
		{"{kind: Pod}", "invalid-pod", "spec: is required"},
		{"{kind: Pod, spec: [1]}", "invalid-pod", "spec: must be an object"},
		{"{kind: Pod, spec: {containers: {name: a}}}", "invalid-pod", "spec.containers: must be an array"},
		{"{kind: Pod, spec: {containers: [{name: a}, x]}}", "invalid-pod", "spec.containers[1]: must be an object"},
		{"{kind: Pod, spec: {containers: [{name: 7}]}}", "invalid-pod", "spec.containers[0].name: must be a string"},
		{"{kind: Pod, spec: {containers: [{name: a, ports: 80}]}}", "invalid-pod",
		 "spec.containers[0].ports: must be an array"},
		{"{kind: Pod, spec: {containers: [{name: a}], initContainers: x}}", "invalid-pod",
		 "spec.initContainers: must be an array"},
		{"{kind: Pod, spec: {containers: [{name: a}], volumes: [{emptyDir: {}}]}}", "invalid-pod",
		 "spec.volumes[0].name: must be a string"},
		{"{kind: Pod, spec: {containers: [{name: a}], hostNetwork: yes please}}", "invalid-pod",
		 "spec.hostNetwork: must be a boolean"},
		{"{kind: Pod, metadata: {annotations: {a/b: 1}}, spec: {containers: [{name: a}]}}", "invalid-pod",
		 "metadata.annotations[a/b]: must be a string"},
		{"{kind: Pod, spec: {containers: [{name: a}], volumes: [{name: pillion-tls}]}}", "invalid-pod",
		 "spec.volumes[0].name: \"pillion-tls\" is reserved"},
		{"{kind: Pod, spec: {containers: [{name: pillion-init}]}}", "invalid-pod",
		 "spec.containers[0].name: \"pillion-init\" is reserved"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *pod = load(cases[i].doc);
		print_message("case %zu: %s\n", i, cases[i].doc);
		json_decref(inject(pod, &o, cases[i].reason, &r));
		if (cases[i].error && !strstr(r.error, cases[i].error))
			fail_msg("error \"%s\" does not contain \"%s\"", r.error, cases[i].error);
		if (!cases[i].error)
			assert_string_equal(r.error, "");
		pl_inject_result_clear(&r);
		json_decref(pod);
	}

	/* A proxy container without an id is a pre-injected pod: the webhook completes it. */
	json_t *pod = load("{kind: Pod, spec: {containers: [{name: pillion-proxy}, {name: a}]}}");
	json_decref(inject(pod, &o, "completed", &r));
	pl_inject_result_clear(&r);
	o.template_mode = true;
	json_decref(inject(pod, &o, "already-injected", &r));
	pl_inject_result_clear(&r);
	json_decref(pod);

	/* Namespace not enabled: only an explicit annotation injects. */
	o = opts(PL_SIDECAR_AUTO, 0);
	o.namespace_enabled = false;
	pod = load("{kind: Pod, spec: {containers: [{name: a}]}}");
	json_decref(inject(pod, &o, "namespace-not-enabled", &r));
	pl_inject_result_clear(&r);
	json_decref(pod);
	pod = load("{kind: Pod, metadata: {annotations: {pillion.dev/inject: enabled}}, spec: {containers: [{name: a}]}}");
	json_decref(inject(pod, &o, "injected", &r));
	pl_inject_result_clear(&r);
	json_decref(pod);

	/* Caller mistakes are named as such. */
	pod = load(BARE_POD);
	o = opts(PL_SIDECAR_AUTO, 0);
	o.id = "Not_An_Id";
	json_decref(inject(pod, &o, "invalid-options", &r));
	pl_inject_result_clear(&r);
	o = opts(PL_SIDECAR_AUTO, 0);
	o.proxy_image = "";
	json_decref(inject(pod, &o, "invalid-options", &r));
	pl_inject_result_clear(&r);
	json_decref(pod);
}

/* The whole object a bare pod becomes: every field injection adds, in its order. */
static void test_bare_pod_golden(void **state)
{
	(void)state;
	pl_inject_opts o = opts(PL_SIDECAR_NATIVE, 0);
	pl_inject_result r;
	json_t *pod = load(BARE_POD);
	json_t *got = inject(pod, &o, "injected", &r);
	json_t *want = load(
		"apiVersion: v1\n"
		"kind: Pod\n"
		"metadata:\n"
		"  name: c\n"
		"  annotations:\n"
		"    pillion.dev/injected: '{\"version\":1,\"proxy\":\"pillion/proxy:0.1.0\",\"init\":\"pillion/init:0.1.0\",\"sidecar\":\"native\"}'\n"
		"    pillion.dev/id: " ID "\n"
		"spec:\n"
		"  containers: [{name: app, image: 'app:1'}]\n"
		"  initContainers:\n"
		"  - name: pillion-init\n"
		"    image: pillion/init:0.1.0\n"
		"    env: [{name: XTABLES_LOCKFILE, value: /dev/shm/xtables.lock}]\n"
		"    resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {memory: 64Mi}}\n"
		"    securityContext:\n"
		"      capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}\n"
		"      runAsUser: 0\n"
		"      runAsNonRoot: false\n"
		"      privileged: false\n"
		"      readOnlyRootFilesystem: true\n"
		"      allowPrivilegeEscalation: false\n"
		"    terminationMessagePolicy: FallbackToLogsOnError\n"
		"  - name: pillion-proxy\n"
		"    image: pillion/proxy:0.1.0\n"
		"    args: [--config, /etc/pillion/config/proxy.json, --mesh, /etc/pillion/mesh/mesh.json, --outbound, /etc/pillion/mesh/outbound.json, --tls-dir, /etc/pillion/tls, --drain-delay, 5s]\n"
		"    ports: [{name: pillion-admin, containerPort: 15420, protocol: TCP}]\n"
		"    env:\n"
		"    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n"
		"    - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}\n"
		"    resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 256Mi}}\n"
		"    volumeMounts:\n"
		"    - {name: pillion-config, mountPath: /etc/pillion/config, readOnly: true}\n"
		"    - {name: pillion-mesh, mountPath: /etc/pillion/mesh, readOnly: true}\n"
		"    - {name: pillion-tls, mountPath: /etc/pillion/tls, readOnly: true}\n"
		"    startupProbe: {httpGet: {path: /ready, port: 15420}, periodSeconds: 1, failureThreshold: 60}\n"
		"    readinessProbe: {httpGet: {path: /ready, port: 15420}, periodSeconds: 5, failureThreshold: 3}\n"
		"    livenessProbe: {httpGet: {path: /live, port: 15420}, periodSeconds: 10, failureThreshold: 3}\n"
		"    securityContext:\n"
		"      runAsUser: 1407\n"
		"      runAsGroup: 1407\n"
		"      runAsNonRoot: true\n"
		"      privileged: false\n"
		"      readOnlyRootFilesystem: true\n"
		"      allowPrivilegeEscalation: false\n"
		"      capabilities: {drop: [ALL]}\n"
		"      seccompProfile: {type: RuntimeDefault}\n"
		"    terminationMessagePolicy: FallbackToLogsOnError\n"
		"    restartPolicy: Always\n"
		"  volumes:\n"
		"  - {name: pillion-config, configMap: {name: pillion-" ID "}}\n"
		"  - {name: pillion-mesh, configMap: {name: pillion-mesh}}\n"
		"  - {name: pillion-tls, secret: {secretName: pillion-" ID "-tls}}\n");
	if (!json_equal(got, want)) {
		dump("got", got);
		fail_msg("the injected pod differs from the expected one");
	}
	/* Absent parents are created by the patch itself, not by the applier. */
	assert_string_equal(str_at(r.patch, "0.path"), "/spec/initContainers");
	assert_string_equal(str_at(r.patch, "1.path"), "/spec/volumes");
	assert_string_equal(str_at(r.patch, "2.path"), "/metadata/annotations");
	assert_int_equal(json_array_size(r.warnings), 0);
	pl_inject_result_clear(&r);

	/* Byte-identical patches for identical input. */
	char *a, *b;
	assert_int_equal(pl_inject_pod(pod, &o, &r), 0);
	a = pl_json_dump_canonical(r.patch);
	pl_inject_result_clear(&r);
	assert_int_equal(pl_inject_pod(pod, &o, &r), 0);
	b = pl_json_dump_canonical(r.patch);
	assert_string_equal(a, b);
	free(a);
	free(b);
	pl_inject_result_clear(&r);
	json_decref(got);
	json_decref(want);
	json_decref(pod);
}

static void test_deployment_pod(void **state)
{
	(void)state;
	pl_inject_opts o = opts(PL_SIDECAR_CONTAINER, 0);
	pl_inject_result r;
	json_t *pod = load(DEPLOYMENT_POD);
	json_t *got = inject(pod, &o, "injected", &r);

	/* Container placement: the proxy first, the app after it; pillion-init after the app's init containers. */
	assert_string_equal(str_at(got, "spec.containers.0.name"), "pillion-proxy");
	assert_null(at(got, "spec.containers.0.restartPolicy"));
	assert_string_equal(str_at(got, "spec.containers.1.name"), "web");
	assert_string_equal(str_at(got, "spec.containers.2.name"), "log");
	assert_int_equal(json_array_size(at(got, "spec.initContainers")), 2);
	assert_string_equal(str_at(got, "spec.initContainers.0.name"), "migrate");
	assert_string_equal(str_at(got, "spec.initContainers.1.name"), "pillion-init");
	/* Existing volumes and annotations are kept, ours appended. */
	assert_int_equal(json_array_size(at(got, "spec.volumes")), 4);
	assert_string_equal(str_at(got, "spec.volumes.0.name"), "data");
	assert_string_equal(str_at(got, "spec.volumes.3.secret.secretName"), "pillion-" ID "-tls");
	/* at() splits on dots: annotations are looked up directly. */
	json_t *ann = at(got, "metadata.annotations");
	assert_string_equal(json_string_value(json_object_get(ann, "prometheus.io/scrape")), "true");
	assert_string_equal(json_string_value(json_object_get(ann, "pillion.dev/id")), ID);
	const char *status = json_string_value(json_object_get(ann, "pillion.dev/injected"));
	assert_string_equal(status, "{\"version\":1,\"proxy\":\"" PROXY "\",\"init\":\"" INIT "\",\"sidecar\":\"container\"}");
	/* The pod's runAsNonRoot is overridden where it must be: pillion-init runs as root. */
	assert_true(json_is_false(at(got, "spec.initContainers.1.securityContext.runAsNonRoot")));
	assert_int_equal(json_integer_value(at(got, "spec.initContainers.1.securityContext.runAsUser")), 0);
	assert_int_equal(json_array_size(r.warnings), 0);

	/* Annotation keys are escaped in the patch (RFC 6901). */
	bool seen = false;
	size_t i;
	json_t *op;
	json_array_foreach(r.patch, i, op) {
		if (strcmp(str_at(op, "path"), "/metadata/annotations/pillion.dev~1id") == 0)
			seen = true;
	}
	assert_true(seen);
	pl_inject_result_clear(&r);

	/* Idempotent: the injected pod is left alone. */
	json_decref(inject(got, &o, "already-injected", &r));
	pl_inject_result_clear(&r);
	json_decref(got);
	json_decref(pod);
}

/* HTTP and tcpSocket probes go to the admin port; the originals are kept; HTTPS and other hosts are
 * left, with a warning. */
static void test_probes_rewritten(void **state)
{
	(void)state;
	pl_inject_opts o = opts(PL_SIDECAR_CONTAINER, 0);
	pl_inject_result r;
	json_t *pod = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers:\n"
			   "  - name: web\n    ports: [{name: http, containerPort: 8080}]\n"
			   "    livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 7}\n"
			   "    readinessProbe: {httpGet: {path: /ready, port: 8080, scheme: HTTPS}}\n"
			   "  - name: side\n    startupProbe: {httpGet: {path: /s, port: 9000, host: example.org}}\n"
			   "    readinessProbe: {tcpSocket: {port: 9000}}\n"
			   "    livenessProbe: {grpc: {port: 9090, service: shop.Cart}}\n");
	json_t *got = inject(pod, &o, "injected", &r);

	/* The proxy is containers[0] now: web is [1]. */
	assert_string_equal(str_at(got, "spec.containers.1.livenessProbe.httpGet.path"), "/app-health/web/liveness");
	assert_int_equal(json_integer_value(at(got, "spec.containers.1.livenessProbe.httpGet.port")), PL_INJECT_ADMIN_PORT);
	assert_string_equal(str_at(got, "spec.containers.1.livenessProbe.httpGet.scheme"), "HTTP");
	assert_int_equal(json_integer_value(at(got, "spec.containers.1.livenessProbe.periodSeconds")), 7);
	assert_string_equal(str_at(got, "spec.containers.1.readinessProbe.httpGet.scheme"), "HTTPS");
	assert_string_equal(str_at(got, "spec.containers.2.startupProbe.httpGet.host"), "example.org");
	/* A tcpSocket probe becomes an HTTP probe of the admin port (the proxy's accept would answer it). */
	assert_null(at(got, "spec.containers.2.readinessProbe.tcpSocket"));
	assert_string_equal(str_at(got, "spec.containers.2.readinessProbe.httpGet.path"), "/app-health/side/readiness");
	assert_int_equal(json_integer_value(at(got, "spec.containers.2.readinessProbe.httpGet.port")), PL_INJECT_ADMIN_PORT);
	/* A gRPC probe too: plaintext HTTP/2 to the app's port would be refused under STRICT. */
	assert_null(at(got, "spec.containers.2.livenessProbe.grpc"));
	assert_string_equal(str_at(got, "spec.containers.2.livenessProbe.httpGet.path"), "/app-health/side/liveness");
	json_t *ann = at(got, "metadata.annotations");
	json_t *orig = json_loads(json_string_value(json_object_get(ann, "pillion.dev/probes")), 0, NULL);
	assert_non_null(orig);
	assert_string_equal(str_at(orig, "web.livenessProbe.httpGet.path"), "/healthz");
	assert_string_equal(str_at(orig, "web.livenessProbe.httpGet.port"), "http");
	assert_int_equal(json_integer_value(at(orig, "web.livenessProbe.periodSeconds")), 7);
	assert_null(at(orig, "web.readinessProbe"));
	assert_int_equal(json_integer_value(at(orig, "side.readinessProbe.tcpSocket.port")), 9000);
	assert_string_equal(str_at(orig, "side.livenessProbe.grpc.service"), "shop.Cart");
	assert_null(at(orig, "side.startupProbe")); /* another host: left as it is */
	json_decref(orig);
	assert_int_equal(json_array_size(r.warnings), 2);
	assert_non_null(strstr(json_string_value(json_array_get(r.warnings, 0)), "HTTPS probe"));
	assert_non_null(strstr(json_string_value(json_array_get(r.warnings, 1)), "example.org"));
	pl_inject_result_clear(&r);
	json_decref(got);
	json_decref(pod);

	/* Template mode rewrites them too; the webhook's completion leaves them as they are. */
	o.template_mode = true;
	pod = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers:\n"
		   "  - name: web\n    readinessProbe: {httpGet: {path: /r, port: 8080}}\n");
	got = inject(pod, &o, "injected", &r);
	pl_inject_result_clear(&r);
	assert_string_equal(str_at(got, "spec.containers.1.readinessProbe.httpGet.path"), "/app-health/web/readiness");
	o.template_mode = false;
	json_t *done = inject(got, &o, "completed", &r);
	assert_string_equal(str_at(done, "spec.containers.1.readinessProbe.httpGet.path"), "/app-health/web/readiness");
	assert_non_null(strstr(json_string_value(json_object_get(at(done, "metadata.annotations"), "pillion.dev/probes")),
			       "\"/r\""));
	pl_inject_result_clear(&r);
	json_decref(done);
	json_decref(got);
	json_decref(pod);
}

static void test_placement(void **state)
{
	(void)state;
	pl_inject_result r;
	json_t *pod = load(DEPLOYMENT_POD);
	static const struct { pl_sidecar_mode mode; int minor; const char *ann; bool native; } cases[] = {
		{PL_SIDECAR_AUTO, 0, NULL, false},
		{PL_SIDECAR_AUTO, 27, NULL, false},
		/* 1.28 has SidecarContainers as an alpha gate, off by default: not native. */
		{PL_SIDECAR_AUTO, 28, NULL, false},
		{PL_SIDECAR_AUTO, 29, NULL, true},
		{PL_SIDECAR_AUTO, 33, NULL, true},
		{PL_SIDECAR_NATIVE, 0, NULL, true},
		{PL_SIDECAR_CONTAINER, 33, NULL, false},
		{PL_SIDECAR_AUTO, 27, "true", true},
		{PL_SIDECAR_NATIVE, 30, "false", false},
		{PL_SIDECAR_AUTO, 30, "maybe", true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pl_inject_opts o = opts(cases[i].mode, cases[i].minor);
		json_t *p = json_deep_copy(pod);
		print_message("case %zu\n", i);
		if (cases[i].ann)
			json_object_set_new(at(p, "metadata.annotations"), "pillion.dev/native-sidecar",
					    json_string(cases[i].ann));
		json_t *got = inject(p, &o, "injected", &r);
		if (cases[i].native) {
			/* pillion-init, then the proxy, then the app's own init containers: they start meshed. */
			assert_string_equal(str_at(got, "spec.initContainers.0.name"), "pillion-init");
			assert_string_equal(str_at(got, "spec.initContainers.1.name"), "pillion-proxy");
			assert_string_equal(str_at(got, "spec.initContainers.1.restartPolicy"), "Always");
			assert_string_equal(str_at(got, "spec.initContainers.2.name"), "migrate");
			assert_string_equal(str_at(got, "spec.containers.0.name"), "web");
			assert_int_equal(json_array_size(at(got, "spec.containers")), 2);
			/* Its startup probe holds the next containers back: no hook. */
			assert_null(at(got, "spec.initContainers.1.lifecycle"));
		} else {
			assert_string_equal(str_at(got, "spec.containers.0.name"), "pillion-proxy");
			assert_int_equal(json_array_size(at(got, "spec.initContainers")), 2);
			/* The kubelet starts the app after this hook returns: once the proxy is ready. */
			json_t *cmd = at(got, "spec.containers.0.lifecycle.postStart.exec.command");
			assert_int_equal(json_array_size(cmd), 4);
			assert_string_equal(json_string_value(json_array_get(cmd, 0)), "/usr/local/bin/pillion-proxy");
			assert_string_equal(json_string_value(json_array_get(cmd, 1)), "wait");
			assert_null(at(got, "spec.containers.0.restartPolicy"));
		}
		const char *status = json_string_value(json_object_get(at(got, "metadata.annotations"),
									"pillion.dev/injected"));
		assert_non_null(strstr(status, cases[i].native ? "\"sidecar\":\"native\"" : "\"sidecar\":\"container\""));
		if (cases[i].ann && strcmp(cases[i].ann, "maybe") == 0)
			expect_warning(&r, "pillion.dev/native-sidecar: must be \"true\" or \"false\", got \"maybe\"");
		pl_inject_result_clear(&r);
		json_decref(got);
		json_decref(p);
	}
	json_decref(pod);
}

/* Template mode (pillionctl) leaves the id to admission; the webhook then completes the pod. */
static void test_template_then_webhook(void **state)
{
	(void)state;
	pl_inject_opts t = opts(PL_SIDECAR_NATIVE, 0);
	pl_inject_result r;
	json_t *pod = load(DEPLOYMENT_POD);

	t.template_mode = true;
	t.id = NULL;
	json_t *tmpl = inject(pod, &t, "injected", &r);
	pl_inject_result_clear(&r);
	json_t *ann = at(tmpl, "metadata.annotations");
	assert_null(json_object_get(ann, "pillion.dev/id"));
	assert_non_null(json_object_get(ann, "pillion.dev/injected"));
	assert_string_equal(str_at(tmpl, "spec.volumes.1.configMap.name"), PL_INJECT_PENDING_CONFIG);
	assert_string_equal(str_at(tmpl, "spec.volumes.3.secret.secretName"), PL_INJECT_PENDING_TLS);
	/* Running pillionctl again changes nothing (stable GitOps diffs). */
	json_decref(inject(tmpl, &t, "already-injected", &r));
	pl_inject_result_clear(&r);

	/* At admission: the id and the per-pod volumes, nothing else. */
	pl_inject_opts w = opts(PL_SIDECAR_CONTAINER, 0);
	json_t *pod2 = inject(tmpl, &w, "completed", &r);
	assert_int_equal(json_array_size(r.patch), 4);
	pl_inject_result_clear(&r);
	assert_string_equal(json_string_value(json_object_get(at(pod2, "metadata.annotations"), "pillion.dev/id")), ID);
	assert_string_equal(str_at(pod2, "spec.volumes.1.configMap.name"), "pillion-" ID);
	assert_string_equal(str_at(pod2, "spec.volumes.2.configMap.name"), "pillion-mesh");
	assert_string_equal(str_at(pod2, "spec.volumes.3.secret.secretName"), "pillion-" ID "-tls");
	assert_int_equal(json_array_size(at(pod2, "spec.volumes")), 4);
	/* The template's placement stands (native), whatever the webhook would pick. */
	assert_string_equal(str_at(pod2, "spec.initContainers.1.name"), "pillion-proxy");
	json_decref(inject(pod2, &w, "already-injected", &r));
	pl_inject_result_clear(&r);

	/* A pre-injected pod whose volumes were dropped gets them back; no metadata at all is fine too. */
	json_t *bare = load("{kind: Pod, spec: {containers: [{name: pillion-proxy}]}}");
	json_t *done = inject(bare, &w, "completed", &r);
	pl_inject_result_clear(&r);
	assert_int_equal(json_array_size(at(done, "spec.volumes")), 3);
	assert_string_equal(json_string_value(json_object_get(at(done, "metadata.annotations"), "pillion.dev/id")), ID);
	json_decref(done);
	json_decref(bare);
	json_decref(pod2);
	json_decref(tmpl);
	json_decref(pod);
}

static void test_annotations(void **state)
{
	(void)state;
	pl_inject_opts o = opts(PL_SIDECAR_CONTAINER, 0);
	pl_inject_result r;
	json_t *pod = load(
		"kind: Pod\n"
		"metadata:\n"
		"  annotations:\n"
		"    pillion.dev/skip-inbound-ports: '22, 8000-8100'\n"
		"    pillion.dev/skip-outbound-ports: '80,99999'\n"
		"    pillion.dev/skip-outbound-cidrs: '10.96.0.10/32,fd00::/8'\n"
		"    pillion.dev/include-inbound-ports: ''\n"
		"    pillion.dev/include-outbound-cidrs: '10.0.0.0/33'\n"
		"    pillion.dev/proxy-cpu-request: '2'\n"
		"    pillion.dev/proxy-cpu-limit: 500m\n"
		"    pillion.dev/proxy-memory-request: 512Mi\n"
		"    pillion.dev/inject: sure\n"
		"spec:\n"
		"  securityContext: {runAsUser: 1407}\n"
		"  containers:\n"
		"  - {name: app, ports: [{containerPort: 15420}]}\n"
		"  - {name: other, securityContext: {runAsUser: 1000}}\n");
	json_t *got = inject(pod, &o, "injected", &r);
	json_t *init = at(got, "spec.initContainers.0");
	json_t *proxy = at(got, "spec.containers.0");

	assert_string_equal(env_value(init, "PILLION_SKIP_INBOUND_PORTS"), "22, 8000-8100");
	assert_string_equal(env_value(init, "PILLION_SKIP_OUTBOUND_CIDRS"), "10.96.0.10/32,fd00::/8");
	assert_null(env_value(init, "PILLION_SKIP_OUTBOUND_PORTS"));
	assert_null(env_value(init, "PILLION_INCLUDE_OUTBOUND_CIDRS"));
	/* pillion-init ignores empty variables: "include nothing" is a flag. */
	assert_string_equal(str_at(init, "args.0"), "--include-inbound-ports=");
	expect_warning(&r, "pillion.dev/skip-outbound-ports: \"99999\" is not a port 1..65535; annotation ignored");
	expect_warning(&r, "pillion.dev/include-outbound-cidrs: \"10.0.0.0/33\": the prefix length must be 0..32");
	/* A request above its limit is lowered to it; a limit below a request follows it only when defaulted. */
	assert_string_equal(str_at(proxy, "resources.requests.cpu"), "500m");
	assert_string_equal(str_at(proxy, "resources.limits.cpu"), "500m");
	expect_warning(&r, "pillion.dev/proxy-cpu-request: \"2\" is greater than pillion.dev/proxy-cpu-limit \"500m\"");
	assert_string_equal(str_at(proxy, "resources.requests.memory"), "512Mi");
	assert_string_equal(str_at(proxy, "resources.limits.memory"), "512Mi");
	expect_warning(&r, "pillion.dev/inject: must be \"enabled\" or \"disabled\", got \"sure\"");
	expect_warning(&r, "spec.containers[0] (app) runs as UID 1407");
	expect_warning(&r, "spec.containers[0].ports[0].containerPort: 15420 is the proxy's admin port");
	assert_false(has_warning(&r, "(other)"));
	assert_false(has_warning(&r, "runs to completion"));
	pl_inject_result_clear(&r);
	json_decref(got);
	json_decref(pod);

	/* HTTP/1 over HTTP/2 between proxies: the annotation becomes the proxy's flag; a typo a warning. */
	pod = load("{kind: Pod, metadata: {annotations: {pillion.dev/http1-over-http2: 'true'}}, spec: {containers: [{name: a}]}}");
	got = inject(pod, &o, "injected", &r);
	proxy = at(got, "spec.containers.0");
	assert_string_equal(str_at(proxy, "args.10"), "--http1-over-http2");
	assert_string_equal(str_at(proxy, "args.11"), "true");
	assert_false(has_warning(&r, "http1-over-http2"));
	pl_inject_result_clear(&r);
	json_decref(got);
	json_decref(pod);
	pod = load("{kind: Pod, metadata: {annotations: {pillion.dev/http1-over-http2: 'yes'}}, spec: {containers: [{name: a}]}}");
	got = inject(pod, &o, "injected", &r);
	assert_null(at(got, "spec.containers.0.args.10"));
	expect_warning(&r, "pillion.dev/http1-over-http2: must be \"true\" or \"false\", got \"yes\"; ignored");
	pl_inject_result_clear(&r);
	json_decref(got);
	json_decref(pod);

	/* A Job's pod with a regular-container proxy would never finish: said so. */
	pod = load("{kind: Pod, spec: {restartPolicy: OnFailure, containers: [{name: a}]}}");
	json_decref(inject(pod, &o, "injected", &r));
	expect_warning(&r, "spec.restartPolicy: OnFailure: the pod runs to completion");
	pl_inject_result_clear(&r);
	json_decref(pod);

	/* Quantities. */
	static const struct { const char *ann, *val, *path, *want; bool warn; } q[] = {
		{"pillion.dev/proxy-memory-limit", "lots", "resources.limits.memory", "256Mi", true},
		{"pillion.dev/proxy-memory-limit", "1Gi", "resources.limits.memory", "1Gi", false},
		{"pillion.dev/proxy-memory-limit", "0", "resources.limits.memory", "256Mi", true},
		{"pillion.dev/proxy-memory-limit", "-1Gi", "resources.limits.memory", "256Mi", true},
		{"pillion.dev/proxy-memory-limit", "1.5G", "resources.limits.memory", "1.5G", false},
		{"pillion.dev/proxy-memory-limit", "3e8", "resources.limits.memory", "3e8", false},
		{"pillion.dev/proxy-memory-limit", "16Mi", "resources.requests.memory", "16Mi", true},
		{"pillion.dev/proxy-cpu-request", "0.25", "resources.requests.cpu", "0.25", false},
		{"pillion.dev/proxy-cpu-request", "100 m", "resources.requests.cpu", "10m", true},
		{"pillion.dev/proxy-cpu-limit", "1", "resources.limits.cpu", "1", false},
		{"pillion.dev/proxy-cpu-limit", "1x", "resources.limits.cpu", NULL, true},
	};
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		pod = load(BARE_POD);
		json_object_set_new(at(pod, "metadata"), "annotations", json_pack("{s:s}", q[i].ann, q[i].val));
		print_message("quantity case %zu: %s\n", i, q[i].val);
		got = inject(pod, &o, "injected", &r);
		const char *v = str_at(at(got, "spec.containers.0"), q[i].path);
		if (q[i].want)
			assert_string_equal(v, q[i].want);
		else
			assert_null(v);
		assert_int_equal(json_array_size(r.warnings) > 0, q[i].warn);
		pl_inject_result_clear(&r);
		json_decref(got);
		json_decref(pod);
	}
}

static void test_patch_apply(void **state)
{
	(void)state;
	char err[256];
	json_t *doc = load("{a: {b~c: 1, d/e: [1, 2]}, l: [x]}");
	json_t *p = load("[{op: add, path: /a/b~0c, value: 2}, {op: add, path: /a/d~1e/0, value: 0},"
			 " {op: add, path: /a/d~1e/-, value: 3}, {op: replace, path: /l/0, value: y},"
			 " {op: test, path: /a/d~1e, value: [0, 1, 2, 3]}, {op: remove, path: /a/d~1e/1},"
			 " {op: add, path: /n, value: {k: v}}]");
	json_t *want = load("{a: {b~c: 2, d/e: [0, 2, 3]}, l: [y], n: {k: v}}");

	assert_int_equal(pl_json_patch_apply(doc, p, err, sizeof(err)), 0);
	assert_true(json_equal(doc, want));
	/* The applied values are copies: changing the document leaves the patch alone. */
	json_object_set_new(at(doc, "n"), "k", json_string("changed"));
	assert_string_equal(str_at(p, "6.value.k"), "v");

	static const struct { const char *patch, *error; } bad[] = {
		{"[{op: add, path: /x/y, value: 1}]", "\"x\" does not exist"},
		{"[{op: replace, path: /zz, value: 1}]", "\"zz\" does not exist"},
		{"[{op: add, path: /l/5, value: 1}]", "out of range"},
		{"[{op: add, path: /l/01, value: 1}]", "out of range"},
		{"[{op: remove, path: /l/-}]", "out of range"},
		{"[{op: test, path: /l/0, value: z}]", "test failed"},
		{"[{op: move, path: /l, from: /a}]", "unsupported op"},
		{"[{op: add, path: /a/b~2, value: 1}]", "bad ~ escape"},
		{"[{op: add, path: '', value: 1}]", "must start with /"},
		{"[{op: add, path: /l/0/q, value: 1}]", "neither an object nor an array"},
		{"[{op: add, path: /l}]", "value is required"},
		{"[7]", "needs op and path"},
		{"{}", "must be an array"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = load(bad[i].patch);
		err[0] = '\0';
		assert_int_equal(pl_json_patch_apply(doc, b, err, sizeof(err)), -1);
		if (!strstr(err, bad[i].error))
			fail_msg("case %zu: error \"%s\" does not contain \"%s\"", i, err, bad[i].error);
		json_decref(b);
	}
	json_decref(want);
	json_decref(p);
	json_decref(doc);
}

/* The YAML emitter reads back as the same value, quoting exactly what would change meaning. */
static void test_yaml_dump(void **state)
{
	(void)state;
	json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:b, s:n, s:{}, s:[], s:[s,{s:s}]}",
			      "yes", "yes", "on", "017", "empty", "", "null", "null", "tilde", "~", "colon", "a: b",
			      "hash", "#x", "dash", "- x", "lead", "  lead", "multi", "line1\nline2\n", "utf8", "héllo",
			      "int", 42, "real", 1.0, "bool", 1, "nil", "obj", "arr", "list", "a", "k", "v");
	char *y = pl_yaml_dump(v);
	assert_non_null(y);
	print_message("%s", y);
	assert_non_null(strstr(y, "\"yes\": \"yes\"\n"));
	assert_non_null(strstr(y, "colon: 'a: b'\n"));
	assert_non_null(strstr(y, "multi: |\n  line1\n  line2\n"));
	assert_non_null(strstr(y, "utf8: héllo\n"));
	assert_non_null(strstr(y, "obj: {}\n"));
	assert_non_null(strstr(y, "list:\n- a\n- k: v\n"));
	json_t *back = load(y);
	assert_true(json_equal(v, back));
	char *y2 = pl_yaml_dump(back);
	assert_string_equal(y, y2);
	free(y2);
	free(y);
	json_decref(back);
	json_decref(v);

	/* An injected pod round-trips too, keys in their order. */
	pl_inject_opts o = opts(PL_SIDECAR_NATIVE, 0);
	pl_inject_result r;
	json_t *pod = load(DEPLOYMENT_POD);
	json_t *got = inject(pod, &o, "injected", &r);
	y = pl_yaml_dump(got);
	assert_non_null(y);
	assert_true(strstr(y, "apiVersion: v1\nkind: Pod\nmetadata:\n") == y);
	back = load(y);
	assert_true(json_equal(got, back));
	free(y);
	json_decref(back);
	json_decref(got);
	json_decref(pod);
	pl_inject_result_clear(&r);
}

/* A small deterministic generator, so a failure reproduces. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (uint32_t)(rnd_state % n);
}

static json_t *junk(int depth)
{
	switch (rnd(depth > 2 ? 7 : 9)) {
	case 0: return json_null();
	case 1: return json_integer((json_int_t)rnd(70000));
	case 2: return json_string(rnd(2) ? "pillion-proxy" : "");
	case 3: return json_boolean(rnd(2));
	case 4: return json_real(0.5);
	case 5: return json_string("pillion.dev/inject");
	case 6: return json_string("disabled");
	case 7: return json_pack("[o, o]", junk(depth + 1), junk(depth + 1));
	default: return json_pack("{s:o, s:o}", rnd(2) ? "name" : "containers", junk(depth + 1), "x", junk(depth + 1));
	}
}

/* Replaces, deletes or adds somewhere inside v. */
static void mutate(json_t *v, int depth)
{
	size_t n = json_is_object(v) ? json_object_size(v) : json_is_array(v) ? json_array_size(v) : 0;

	if (n == 0)
		return;
	size_t pick = rnd((uint32_t)n);
	if (json_is_array(v)) {
		json_t *child = json_array_get(v, pick);
		if (depth < 6 && (json_is_object(child) || json_is_array(child)) && rnd(3))
			mutate(child, depth + 1);
		else if (rnd(2))
			json_array_set_new(v, pick, junk(0));
		else
			json_array_remove(v, pick);
		return;
	}
	void *it = json_object_iter(v);
	for (size_t i = 0; i < pick; i++)
		it = json_object_iter_next(v, it);
	const char *key = json_object_iter_key(it);
	json_t *child = json_object_iter_value(it);
	if (depth < 6 && (json_is_object(child) || json_is_array(child)) && rnd(3))
		mutate(child, depth + 1);
	else if (rnd(3) == 0)
		json_object_del(v, key);
	else if (rnd(2))
		json_object_set_new(v, key, junk(0));
	else
		json_object_set_new(v, rnd(2) ? "hostNetwork" : "annotations", junk(0));
}

static void test_garbage_never_crashes(void **state)
{
	(void)state;
	json_t *base = load(DEPLOYMENT_POD);
	int injected = 0, reasons_invalid = 0;

	for (int i = 0; i < 600; i++) {
		json_t *pod = json_deep_copy(base);
		int rounds = 1 + (int)rnd(4);
		for (int k = 0; k < rounds; k++)
			mutate(pod, 0);
		pl_inject_opts o = opts((pl_sidecar_mode)rnd(3), (int)rnd(35));
		o.template_mode = rnd(4) == 0;
		o.namespace_enabled = rnd(4) != 0;
		pl_inject_result r;
		assert_int_equal(pl_inject_pod(pod, &o, &r), 0);
		assert_non_null(r.reason);
		assert_non_null(r.warnings);
		if (strcmp(r.reason, "invalid-pod") == 0) {
			assert_true(r.error[0] != '\0');
			reasons_invalid++;
		}
		if (r.injected) {
			/* Whatever the pod looked like, the patch applies to it, and injection is then done. */
			char err[256];
			injected++;
			if (pl_json_patch_apply(pod, r.patch, err, sizeof(err)) != 0) {
				dump("pod", pod);
				dump("patch", r.patch);
				fail_msg("iteration %d: patch does not apply: %s", i, err);
			}
			pl_inject_result_clear(&r);
			assert_int_equal(pl_inject_pod(pod, &o, &r), 0);
			if (strcmp(r.reason, "already-injected") != 0) {
				dump("pod", pod);
				fail_msg("iteration %d: injecting again gave %s", i, r.reason);
			}
		}
		pl_inject_result_clear(&r);
		json_decref(pod);
	}
	/* The mutations reach both outcomes, or the loop tests little. */
	assert_true(injected > 50);
	assert_true(reasons_invalid > 50);

	/* Wholly random values. */
	for (int i = 0; i < 300; i++) {
		json_t *v = junk(0);
		pl_inject_opts o = opts(PL_SIDECAR_AUTO, 29);
		pl_inject_result r;
		assert_int_equal(pl_inject_pod(v, &o, &r), 0);
		pl_inject_result_clear(&r);
		json_decref(v);
	}
	json_decref(base);
}

/* The version strings --kubernetes-version takes (the webhook and pillionctl share the parser). */
static void test_server_minor(void **state)
{
	int m = -7;
	(void)state;
	assert_int_equal(pl_inject_server_minor("1.29", &m), 0);
	assert_int_equal(m, 29);
	assert_int_equal(pl_inject_server_minor("v1.28.4", &m), 0);
	assert_int_equal(m, 28);
	assert_int_equal(pl_inject_server_minor("v1.30.2-eks-1234", &m), 0);
	assert_int_equal(m, 30);
	assert_int_equal(pl_inject_server_minor("1.27+", &m), 0);
	assert_int_equal(m, 27);
	assert_int_equal(pl_inject_server_minor("unknown", &m), 0);
	assert_int_equal(m, 0);
	assert_int_equal(pl_inject_server_minor("2", &m), -1);
	assert_int_equal(pl_inject_server_minor("2.1", &m), -1);
	assert_int_equal(pl_inject_server_minor("1.", &m), -1);
	assert_int_equal(pl_inject_server_minor("1.29x", &m), -1);
	assert_int_equal(pl_inject_server_minor("v", &m), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skip_reasons),
		cmocka_unit_test(test_bare_pod_golden),
		cmocka_unit_test(test_deployment_pod),
		cmocka_unit_test(test_placement),
		cmocka_unit_test(test_probes_rewritten),
		cmocka_unit_test(test_template_then_webhook),
		cmocka_unit_test(test_annotations),
		cmocka_unit_test(test_patch_apply),
		cmocka_unit_test(test_yaml_dump),
		cmocka_unit_test(test_garbage_never_crashes),
		cmocka_unit_test(test_server_minor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
