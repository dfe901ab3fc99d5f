/* Loads files, directories and stdin into decoded objects, remembering where each came from. */
#include "inputs.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/hmap.h"
#include "json/json.h"

void pl_inputs_init(pl_inputs *in)
{
	memset(in, 0, sizeof(*in));
	pl_arena_init(&in->arena);
}

void pl_inputs_free(pl_inputs *in)
{
	free(in->v);
	pl_arena_free(&in->arena);
	memset(in, 0, sizeof(*in));
}

static pl_entry *new_entry(pl_inputs *in, pl_entry_type t, const char *path, int doc)
{
	if (in->n == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 32;
		pl_entry *v = realloc(in->v, cap * sizeof(*v));
		if (!v)
			abort();
		in->v = v;
		in->cap = cap;
	}
	pl_entry *e = &in->v[in->n++];
	memset(e, 0, sizeof(*e));
	e->type = t;
	e->path = path;
	e->doc = doc;
	e->api_version = "";
	return e;
}

/* The Pod a workload's template makes: the template's metadata and spec, the workload's namespace,
 * and a name saying where it came from (the controller would generate one). */
static void add_template_pod(pl_inputs *in, const char *path, int doc, const json_t *v)
{
	static const struct { const char *kind, *api; bool cron; } kinds[] = {
		{"Deployment", "apps/v1", false}, {"StatefulSet", "apps/v1", false},
		{"DaemonSet", "apps/v1", false},  {"ReplicaSet", "apps/v1", false},
		{"Job", "batch/v1", false},       {"CronJob", "batch/v1", true},
	};
	const char *kind = pl_json_get_str(v, "kind"), *api = pl_json_get_str(v, "apiVersion");
	const json_t *meta = json_object_get(v, "metadata"), *tmpl = NULL;
	size_t k;

	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (kind && api && strcmp(kind, kinds[k].kind) == 0 && strcmp(api, kinds[k].api) == 0)
			break;
	if (k == sizeof(kinds) / sizeof(kinds[0]))
		return;
	tmpl = json_object_get(v, "spec");
	if (kinds[k].cron)
		tmpl = json_object_get(json_object_get(tmpl, "jobTemplate"), "spec");
	tmpl = json_object_get(tmpl, "template");
	if (!json_is_object(tmpl))
		return;
	const char *ns = pl_json_get_str(meta, "namespace"), *name = pl_json_get_str(meta, "name");
	json_t *pmeta = json_deep_copy(json_object_get(tmpl, "metadata"));
	if (!json_is_object(pmeta)) {
		json_decref(pmeta);
		pmeta = json_object();
	}
	json_object_set_new(pmeta, "name", json_sprintf("%s-template", name ? name : kind));
	if (ns)
		json_object_set_new(pmeta, "namespace", json_string(ns));
	json_t *pod = json_pack("{s:s, s:s, s:o, s:O}", "apiVersion", "v1", "kind", "Pod", "metadata", pmeta, "spec",
				json_object_get(tmpl, "spec") ? json_object_get(tmpl, "spec") : json_null());
	if (!pod)
		abort();
	pl_entry *e = new_entry(in, PL_ENTRY_OBJECT, path, doc);
	e->api_version = "v1";
	e->template_of = pl_arena_printf(&in->arena, "%s %s/%s", kind, ns ? ns : "default", name ? name : "");
	pl_object_decode(&in->arena, pod, &e->obj);
	json_decref(pod);
}

static void add_object(pl_inputs *in, const char *path, int doc, const json_t *v)
{
	if (!json_is_object(v)) {
		new_entry(in, PL_ENTRY_NOT_OBJECT, path, doc);
		return;
	}
	/* A List (kubectl get -o yaml) holds its objects under items. */
	const char *kind = pl_json_get_str(v, "kind");
	json_t *items = json_object_get(v, "items");
	if (kind && json_is_array(items) && strlen(kind) >= 4 && strcmp(kind + strlen(kind) - 4, "List") == 0) {
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) add_object(in, path, doc, it);
		return;
	}
	pl_entry *e = new_entry(in, PL_ENTRY_OBJECT, path, doc);
	const char *api = pl_json_get_str(v, "apiVersion");
	e->api_version = pl_arena_strdup(&in->arena, api ? api : "");
	pl_object_decode(&in->arena, v, &e->obj);
	if (in->templates_as_pods)
		add_template_pod(in, path, doc, v);
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && strcmp(s + n - m, suf) == 0;
}

static bool looks_json(const pl_buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		char c = b->data[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		return c == '{' || c == '[';
	}
	return false;
}

static void read_file(const char *path, FILE *err, int *io_errors, pl_docs_fn each, void *ctx)
{
	pl_buf b = PL_BUF_INIT;
	pl_docs docs;

	int rc = pl_buf_read_file(&b, path, PL_INPUT_MAX_BYTES);
	if (rc < 0) {
		fprintf(err, "%s: %s\n", path, rc == -EFBIG ? "file larger than 64 MiB" : strerror(-rc));
		(*io_errors)++;
		pl_buf_free(&b);
		return;
	}
	bool json = has_suffix(path, ".json") || (strcmp(path, "-") == 0 && looks_json(&b));
	if (json)
		pl_json_load(b.data ? b.data : "", b.len, &docs);
	else
		pl_yaml_load(b.data ? b.data : "", b.len, &docs);
	each(ctx, path, &docs, json);
	pl_docs_free(&docs);
	pl_buf_free(&b);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void read_dir(const char *path, FILE *err, int *io_errors, pl_docs_fn each, void *ctx, int depth)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (!d) {
		fprintf(err, "%s: %s\n", path, strerror(errno));
		(*io_errors)++;
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;   /* ., .., and hidden entries such as .git */
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				abort();
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			abort();
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		pl_buf full = PL_BUF_INIT;
		struct stat st;
		pl_buf_printf(&full, "%s%s%s", path, has_suffix(path, "/") ? "" : "/", names[i]);
		bool link = lstat(full.data, &st) == 0 && S_ISLNK(st.st_mode);
		if (stat(full.data, &st) == 0 && S_ISDIR(st.st_mode)) {
			/* A symlinked directory could loop back up the tree: not followed (git does not either). */
			if (link)
				fprintf(err, "%s: note: not following a symlinked directory\n", full.data);
			else if (depth < 32)
				read_dir(full.data, err, io_errors, each, ctx, depth + 1);
		} else if (has_suffix(names[i], ".yaml") || has_suffix(names[i], ".yml") ||
			   has_suffix(names[i], ".json")) {
			read_file(full.data, err, io_errors, each, ctx);
		}
		pl_buf_free(&full);
		free(names[i]);
	}
	free(names);
}

void pl_read_inputs(const char *path, FILE *err, int *io_errors, pl_docs_fn each, void *ctx)
{
	struct stat st;

	if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		read_dir(path, err, io_errors, each, ctx, 0);
	else
		read_file(path, err, io_errors, each, ctx);
}

/* pl_inputs: every document of a file becomes an entry; a syntax error one more. */
static void add_docs(void *ctx, const char *path, const pl_docs *docs, bool json)
{
	pl_inputs *in = ctx;
	const char *p = pl_arena_strdup(&in->arena, path);

	for (size_t i = 0; i < docs->n; i++) {
		if (docs->v[i].root)
			add_object(in, p, docs->v[i].index, docs->v[i].root);
	}
	if (docs->failed) {
		pl_entry *e = new_entry(in, PL_ENTRY_SYNTAX, p, docs->error_doc);
		e->syntax = pl_arena_printf(&in->arena, "%s: %s", json ? "json" : "yaml", docs->error);
	}
}

void pl_inputs_link_duplicates(pl_inputs *in)
{
	pl_hmap seen = PL_HMAP_INIT;

	for (size_t i = 0; i < in->n; i++) {
		pl_entry *e = &in->v[i];
		if (e->type != PL_ENTRY_OBJECT || e->obj.kind == PL_KIND_OTHER || !e->obj.name[0])
			continue;
		const char *key = pl_arena_printf(&in->arena, "%d/%s/%s", (int)e->obj.kind, e->obj.namespace,
						  e->obj.name);
		pl_entry *prev = pl_hmap_put(&seen, key, e);
		if (prev) {
			e->earlier = prev;
			prev->superseded = true;
		}
	}
	pl_hmap_free(&seen);
}

void pl_inputs_add(pl_inputs *in, const char *path, FILE *err)
{
	pl_read_inputs(path, err, &in->io_errors, add_docs, in);
}
