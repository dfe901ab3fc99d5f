/* pillionctl inject: adds the sidecar to the Pods and workload pod templates of manifests (GitOps), as YAML. */
#include "inject.h"
#include "inputs.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "json/json.h"
#include "model/inject.h"


static const char usage[] =
	"usage: pillionctl inject -f PATH [-f PATH]... [-o OUT] [flags]\n"
	"\n"
	"Adds the Pillion init container, proxy and volumes to every Pod and to the pod template of every\n"
	"Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob; other objects pass through\n"
	"unchanged. PATH is a file, a directory (*.yaml, *.yml, *.json, recursively) or - for stdin.\n"
	"The per-pod id is left to the webhook, which completes such pods at admission, so the output\n"
	"is the same every run (see docs/injection.md).\n"
	"\n"
	"  -o, --output FILE              write the YAML here instead of stdout\n"
	"      --proxy-image IMAGE        default pillion/proxy:0.1.0\n"
	"      --init-image IMAGE         default pillion/init:0.1.0\n"
	"      --native-sidecar auto|true|false\n"
	"                                 auto (default): native when --kubernetes-version is 1.29 or later\n"
	"      --kubernetes-version 1.N   the cluster the manifests go to (for --native-sidecar auto)\n"
	"\n"
	"Exit status: 0 done, 1 a document could not be injected (named PATH:DOC: field), 2 usage or I/O error.\n";

typedef struct run {
	pl_inject_opts opts;
	pl_buf out;
	int ndocs;
	int errors, io_errors;
} run;

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && strcmp(s + n - m, suf) == 0;
}

static void emit(run *r, const json_t *v)
{
	char *y = pl_yaml_dump(v);

	if (!y)
		abort();
	if (r->ndocs++)
		pl_buf_puts(&r->out, "---\n");
	pl_buf_puts(&r->out, y);
	free(y);
}

/* "Deployment shop/web", for messages. */
static void describe(const json_t *obj, char *buf, size_t n)
{
	const json_t *meta = json_object_get(obj, "metadata");
	const char *kind = pl_json_get_str(obj, "kind"), *ns = pl_json_get_str(meta, "namespace");
	const char *name = pl_json_get_str(meta, "name");

	if (!name)
		name = pl_json_get_str(meta, "generateName");
	snprintf(buf, n, "%s %s/%s", kind ? kind : "object", ns ? ns : "default", name ? name : "");
}

/* Rebuilds tmpl with metadata first when injection had to create it, so the output reads naturally. */
static void put_back(json_t *tmpl, json_t *pod)
{
	json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");

	if (meta && !json_object_get(tmpl, "metadata")) {
		json_t *copy = json_copy(tmpl);
		json_object_clear(tmpl);
		json_object_set(tmpl, "metadata", meta);
		json_object_update(tmpl, copy);
		json_decref(copy);
	} else if (meta) {
		json_object_set(tmpl, "metadata", meta);
	}
	if (spec)
		json_object_set(tmpl, "spec", spec);
}

/* Injects one pod (a Pod object, or a pod built around a template's metadata and spec) in place. */
static void inject_pod(run *r, const char *where, const char *what, const char *prefix, json_t *pod)
{
	pl_inject_result res;
	char err[256];
	size_t i;
	json_t *w;

	if (pl_inject_pod(pod, &r->opts, &res) < 0) {
		fprintf(stderr, "pillionctl: out of memory\n");
		exit(2);
	}
	json_array_foreach(res.warnings, i, w)
		fprintf(stderr, "%s: warning: %s: %s\n", where, what, json_string_value(w));
	if (strcmp(res.reason, "invalid-pod") == 0) {
		fprintf(stderr, "%s: %s: %s%s\n", where, what, prefix, res.error);
		r->errors++;
	} else if (strcmp(res.reason, "invalid-options") == 0) {
		fprintf(stderr, "pillionctl: %s\n", res.error);
		exit(2);
	} else if (!res.injected) {
		fprintf(stderr, "%s: note: %s: not injected: %s\n", where, what, res.reason);
	} else if (pl_json_patch_apply(pod, res.patch, err, sizeof(err)) < 0) {
		/* A patch that does not apply to the pod it was made for is a bug, not an input error. */
		fprintf(stderr, "%s: %s: internal error: %s\n", where, what, err);
		r->errors++;
	}
	pl_inject_result_clear(&res);
}

static void inject_template(run *r, const char *where, const char *what, json_t *obj, const char *const *path,
			    const char *field)
{
	json_t *tmpl = obj;
	char prefix[96];

	for (; *path; path++) {
		tmpl = json_object_get(tmpl, *path);
		if (!json_is_object(tmpl)) {
			fprintf(stderr, "%s: %s: %s: %s\n", where, what, field,
				tmpl ? "must be an object" : "is required");
			r->errors++;
			return;
		}
	}
	json_t *pod = json_pack("{s:s, s:s}", "apiVersion", "v1", "kind", "Pod");
	json_t *meta = json_object_get(tmpl, "metadata"), *spec = json_object_get(tmpl, "spec");
	if (!pod)
		abort();
	if (meta)
		json_object_set(pod, "metadata", meta);
	if (spec)
		json_object_set(pod, "spec", spec);
	snprintf(prefix, sizeof(prefix), "%s.", field);
	inject_pod(r, where, what, prefix, pod);
	put_back(tmpl, pod);
	json_decref(pod);
}

static void process(run *r, const char *path, int doc, json_t *v, int depth)
{
	static const char *const tmpl[] = {"spec", "template", NULL};
	static const char *const cron[] = {"spec", "jobTemplate", "spec", "template", NULL};
	static const char *const apps[] = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", NULL};
	const char *kind = pl_json_get_str(v, "kind"), *api = pl_json_get_str(v, "apiVersion");
	char where[512], what[320];

	if (!kind || !api)
		return;
	snprintf(where, sizeof(where), "%s:%d", path, doc);
	describe(v, what, sizeof(what));
	json_t *items = json_object_get(v, "items");
	if (depth == 0 && has_suffix(kind, "List") && json_is_array(items)) {
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) process(r, path, doc, it, depth + 1);
		return;
	}
	if (strcmp(kind, "Pod") == 0 && strcmp(api, "v1") == 0) {
		inject_pod(r, where, what, "", v);
		return;
	}
	bool is_apps = strncmp(api, "apps/", 5) == 0 || strncmp(api, "extensions/", 11) == 0;
	for (const char *const *k = apps; *k; k++) {
		if (is_apps && strcmp(kind, *k) == 0) {
			inject_template(r, where, what, v, tmpl, "spec.template");
			return;
		}
	}
	if (strncmp(api, "batch/", 6) == 0 && strcmp(kind, "Job") == 0)
		inject_template(r, where, what, v, tmpl, "spec.template");
	else if (strncmp(api, "batch/", 6) == 0 && strcmp(kind, "CronJob") == 0)
		inject_template(r, where, what, v, cron, "spec.jobTemplate.spec.template");
}

static void inject_docs(void *ctx, const char *path, const pl_docs *docs, bool json)
{
	run *r = ctx;

	for (size_t i = 0; i < docs->n; i++) {
		if (!docs->v[i].root)
			continue;
		process(r, path, docs->v[i].index, docs->v[i].root, 0);
		emit(r, docs->v[i].root);
	}
	if (docs->failed) {
		fprintf(stderr, "%s:%d: %s: %s\n", path, docs->error_doc, json ? "json" : "yaml", docs->error);
		r->errors++;
	}
}

int cmd_inject(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"filename", required_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"proxy-image", required_argument, NULL, 'P'},
		{"init-image", required_argument, NULL, 'I'},
		{"native-sidecar", required_argument, NULL, 'N'},
		{"kubernetes-version", required_argument, NULL, 'K'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	run r = {.out = PL_BUF_INIT};
	const char **paths = calloc((size_t)argc + 1, sizeof(*paths));
	const char *output = NULL;
	size_t npaths = 0;
	int c, rc = 0;

	if (!paths)
		abort();
	r.opts.proxy_image = "pillion/proxy:0.1.0";
	r.opts.init_image = "pillion/init:0.1.0";
	r.opts.mode = PL_SIDECAR_AUTO;
	r.opts.namespace_enabled = true;   /* asking for injection is the opt-in */
	r.opts.template_mode = true;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:o:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			paths[npaths++] = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'P':
			r.opts.proxy_image = optarg;
			break;
		case 'I':
			r.opts.init_image = optarg;
			break;
		case 'N':
			if (strcmp(optarg, "auto") == 0)
				r.opts.mode = PL_SIDECAR_AUTO;
			else if (strcmp(optarg, "true") == 0)
				r.opts.mode = PL_SIDECAR_NATIVE;
			else if (strcmp(optarg, "false") == 0)
				r.opts.mode = PL_SIDECAR_CONTAINER;
			else {
				fprintf(stderr, "pillionctl inject: --native-sidecar: must be auto, true or false, got \"%s\"\n",
					optarg);
				rc = 2;
				goto out;
			}
			break;
		case 'K':
			if (pl_inject_server_minor(optarg, &r.opts.server_minor) < 0) {
				fprintf(stderr, "pillionctl inject: --kubernetes-version: must look like 1.29, got \"%s\"\n",
					optarg);
				rc = 2;
				goto out;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			goto out;
		default:
			fputs(usage, stderr);
			rc = 2;
			goto out;
		}
	}
	if (npaths == 0 || optind < argc || !*r.opts.proxy_image || !*r.opts.init_image) {
		fputs(usage, stderr);
		rc = 2;
		goto out;
	}
	for (size_t i = 0; i < npaths; i++)
		pl_read_inputs(paths[i], stderr, &r.io_errors, inject_docs, &r);
	if (r.io_errors) {
		rc = 2;
		goto out;
	}
	FILE *f = output ? fopen(output, "w") : stdout;
	if (!f || fwrite(r.out.data ? r.out.data : "", 1, r.out.len, f) != r.out.len || (output && fclose(f) != 0) ||
	    (!output && fflush(f) != 0)) {
		fprintf(stderr, "%s: %s\n", output ? output : "stdout", strerror(errno));
		rc = 2;
		goto out;
	}
	rc = r.errors ? 1 : 0;
out:
	free(paths);
	pl_buf_free(&r.out);
	return rc;
}
