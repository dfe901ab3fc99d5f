/* The mounted files: config, mesh directory and certificates, validated then swapped in; inotify with the kubelet's ..data swap. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/gzip.h"
#include "base/log.h"
#include "base/sha256.h"
#include "json/json.h"
#include "model/model.h"
#include "pki/tls.h"
#include "l7.h"
#include "proxy.h"

#define CONFIG_MAX (4u << 20)
#define MESH_MAX (32u << 20)
#define TLS_MAX (1u << 20)

enum { F_CONFIG, F_MESH, F_TLS };

static int64_t unix_now(void) { return (int64_t)time(NULL); }

static void hash_bytes(const pl_buf *b, char out[80])
{
	char hex[65];

	pl_sha256_hex(b->data ? b->data : "", b->len, hex);
	snprintf(out, 80, "sha256:%s", hex);
}

void px_config_unref(px_config *c)
{
	if (!c || --c->refs > 0)
		return;
	json_decref(c->doc);
	pl_arena_free(&c->arena);
	free(c);
}

/* Mesh directories in memory: the current one and older ones still held (a gauge). */
static size_t meshes_held;

size_t px_meshes_held(void) { return meshes_held; }

void px_mesh_unref(px_mesh *m)
{
	if (!m || --m->refs > 0)
		return;
	meshes_held--;
	pl_mesh_dir_free(&m->dir);
	pl_arena_free(&m->arena);
	free(m);
}

/* Joins errors as "path: message; ..." into out. */
static void errors_str(const pl_errors *errs, char *out, size_t outlen)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < errs->n && used + 1 < outlen; i++) {
		int n = snprintf(out + used, outlen - used, "%s%s: %s", i ? "; " : "",
				 errs->v[i].path[0] ? errs->v[i].path : "(root)", errs->v[i].msg);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* Parses and validates a config; NULL with err set when refused. */
/* Exactly one JSON document from b (a new reference), or NULL with the reason in err. */
static json_t *one_json(const pl_buf *b, char *err, size_t errlen)
{
	pl_docs docs = {0};
	json_t *root = NULL;

	if (pl_json_load(b->data ? b->data : "", b->len, &docs) < 0 || docs.n != 1 || !docs.v[0].root)
		snprintf(err, errlen, "%s", docs.failed ? docs.error : "not one JSON document");
	else
		root = json_incref(docs.v[0].root);
	pl_docs_free(&docs);
	return root;
}

static px_config *config_parse(const pl_buf *b, char *err, size_t errlen)
{
	pl_errors errs = {0};
	json_t *root = one_json(b, err, errlen);

	if (!root)
		return NULL;
	px_config *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->refs = 1;
	pl_arena_init(&c->arena);
	c->doc = root;
	if (!pl_proxy_config_decode(&c->arena, root, &c->cfg, &errs)) {
		errors_str(&errs, err, errlen);
		px_config_unref(c);
		return NULL;
	}
	return c;
}

/* A gzipped directory (the operator gzips a large one) is inflated first, at most MESH_MAX bytes. */
static json_t *mesh_json(const pl_buf *b, char *err, size_t errlen)
{
	if (!pl_is_gzip(b->data, b->len))
		return one_json(b, err, errlen);
	pl_buf plain = PL_BUF_INIT;
	json_t *root = NULL;
	if (pl_gunzip(b->data, b->len, MESH_MAX, &plain, err, errlen) == 0)
		root = one_json(&plain, err, errlen);
	pl_buf_free(&plain);
	return root;
}

static px_mesh *mesh_parse(const pl_buf *b, char *err, size_t errlen)
{
	pl_errors errs = {0};
	json_t *root = mesh_json(b, err, errlen);

	if (!root)
		return NULL;
	px_mesh *m = calloc(1, sizeof(*m));
	if (!m)
		abort();
	m->refs = 1;
	meshes_held++;
	pl_arena_init(&m->arena);
	bool ok = pl_mesh_dir_decode(&m->arena, root, &m->dir, &errs);
	json_decref(root);
	if (!ok) {
		errors_str(&errs, err, errlen);
		px_mesh_unref(m);
		return NULL;
	}
	return m;
}

static int read_file(const char *path, pl_buf *b, size_t max, char *err, size_t errlen)
{
	int r = pl_buf_read_file(b, path, max);

	if (r < 0)
		snprintf(err, errlen, "%.400s: %s", path, r == -EFBIG ? "file too large" : strerror(-r));
	return r;
}

/* The mesh directory is path, or path.gz when the operator wrote it gzipped (a large one): the
 * kubelet projects exactly one of the two. Errors name path itself. */
static int read_mesh_file(const char *path, pl_buf *b, size_t max, char *err, size_t errlen)
{
	char gz[PATH_MAX], ignored[512];
	int r = read_file(path, b, max, err, errlen);

	if (r != -ENOENT || snprintf(gz, sizeof(gz), "%s.gz", path) >= (int)sizeof(gz))
		return r;
	pl_buf_reset(b);
	return read_file(gz, b, max, ignored, sizeof(ignored)) == 0 ? 0 : r;
}

/* Records the outcome of reading f: logs and counts only when the bytes changed. */
static void outcome(proxy *px, int which, const char *hash, const char *err)
{
	px_file *f = &px->files[which];

	if (strcmp(f->seen, hash) == 0)
		return;
	snprintf(f->seen, sizeof(f->seen), "%s", hash);
	if (err) {
		snprintf(f->error, sizeof(f->error), "%s", err);
		px->m.reloads_err[which]++;
		log_warnx("%s refused, keeping the last good one: %s", f->what, err);
		return;
	}
	f->error[0] = '\0';
	snprintf(f->good, sizeof(f->good), "%s", hash);
	f->loaded_at = unix_now();
	px->m.reloads_ok[which]++;
	log_info("%s loaded (%s)", f->what, hash);
}

/* A file that cannot be read (not projected yet) is not a new bad version: said once. */
static void file_missing(proxy *px, int which, const char *err)
{
	px_file *f = &px->files[which];

	if (strcmp(f->seen, "missing") != 0)
		log_warnx("%s: %s", f->what, err);
	snprintf(f->seen, sizeof(f->seen), "missing");
}

/* Reads path into b; true when its bytes differ from the last ones tried (their hash in hash). */
static bool read_changed(proxy *px, int which, const char *path, size_t max, pl_buf *b, char hash[80])
{
	char err[512];

	if (read_file(path, b, max, err, sizeof(err)) < 0) {
		file_missing(px, which, err);
		return false;
	}
	hash_bytes(b, hash);
	return strcmp(hash, px->files[which].seen) != 0;
}

static void reload_config(proxy *px)
{
	pl_buf b = PL_BUF_INIT;
	char err[512], hash[80];

	bool changed = read_changed(px, F_CONFIG, px->set.config_path, CONFIG_MAX, &b, hash);
	px_config *c = changed ? config_parse(&b, err, sizeof(err)) : NULL;
	pl_buf_free(&b);
	if (!changed)
		return;
	if (!c) {
		outcome(px, F_CONFIG, hash, err);
		return;
	}
	bool identity_changed = !px->config || strcmp(px->config->cfg.spiffe_id, c->cfg.spiffe_id) != 0;
	px_config_unref(px->config);
	px->config = c;
	px->gen++;
	outcome(px, F_CONFIG, hash, NULL);
	/* A certificate refused for another identity may be the right one now. */
	if (identity_changed)
		px->files[F_TLS].seen[0] = '\0';
}

/* The client-side policies of --outbound into m (its arena): false with err set when refused. */
static bool outbound_parse(px_mesh *m, const char *path, const pl_buf *b, char *err, size_t errlen)
{
	pl_errors errs = {0};
	char why[400];
	json_t *root = one_json(b, why, sizeof(why));
	bool ok = root && pl_outbound_decode(&m->arena, root, &m->out, &errs);

	if (root && !ok)
		errors_str(&errs, why, sizeof(why));
	json_decref(root);
	if (!ok)
		snprintf(err, errlen, "%.100s: %s", path, why);
	m->has_out = ok;
	return ok;
}

/* The directory and --outbound's file come from one ConfigMap, swapped together by the kubelet:
 * read, hashed and taken as one. Without the outbound file the config's policies apply. */
static void reload_mesh(proxy *px)
{
	pl_buf b = PL_BUF_INIT, ob = PL_BUF_INIT;
	char err[512], hash[80], dh[80], oh[80] = "", ignored[512];
	bool parsed = false;

	if (!px->set.mesh_path)
		return;
	if (read_mesh_file(px->set.mesh_path, &b, MESH_MAX, err, sizeof(err)) < 0) {
		file_missing(px, F_MESH, err);
		goto out;
	}
	bool has_ob = px->set.outbound_path &&
		      read_file(px->set.outbound_path, &ob, CONFIG_MAX, ignored, sizeof(ignored)) == 0;
	/* The pair's bytes, hashed as the operator combines the two documents' hashes. */
	hash_bytes(&b, dh);
	if (has_ob)
		hash_bytes(&ob, oh);
	pl_effective_hash(dh, oh, hash);
	if (strcmp(hash, px->files[F_MESH].seen) == 0)
		goto out;
	parsed = true;
	px_mesh *m = mesh_parse(&b, err, sizeof(err));
	if (m && has_ob && !outbound_parse(m, px->set.outbound_path, &ob, err, sizeof(err))) {
		px_mesh_unref(m);
		m = NULL;
	}
	if (!m) {
		outcome(px, F_MESH, hash, err);
		goto out;
	}
	px_mesh_unref(px->mesh);
	px->mesh = m;
	px->gen++;
	outcome(px, F_MESH, hash, NULL);
out:
	pl_buf_free(&b);
	pl_buf_free(&ob);
	/* Parsing a large directory leaves megabytes of freed JSON nodes in the heap: give them back
	 * (for 10,000 pods, 21 MiB of RSS instead of 3 MiB; bench/mesh_capacity.py). */
	if (parsed)
		malloc_trim(0);
}

static void reload_tls(proxy *px)
{
	pl_buf crt = PL_BUF_INIT, key = PL_BUF_INIT, ca = PL_BUF_INIT, all = PL_BUF_INIT;
	char path[PATH_MAX], err[512], hash[80];
	const char *names[3] = {"tls.crt", "tls.key", "ca.crt"};
	pl_buf *bufs[3] = {&crt, &key, &ca};

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", px->set.tls_dir, names[i]);
		if (read_file(path, bufs[i], TLS_MAX, err, sizeof(err)) < 0) {
			file_missing(px, F_TLS, err);
			goto out;
		}
		pl_buf_append(&all, bufs[i]->data ? bufs[i]->data : "", bufs[i]->len);
		pl_buf_append(&all, "\n--\n", 4);
	}
	hash_bytes(&all, hash);
	if (strcmp(hash, px->files[F_TLS].seen) == 0)
		goto out;
	pl_tls_creds *c = pl_tls_creds_load(crt.data ? crt.data : "", crt.len, key.data ? key.data : "", key.len,
					    ca.data ? ca.data : "", ca.len, unix_now(), err, sizeof(err));
	if (c && px->config && strcmp(pl_tls_creds_spiffe_id(c), px->config->cfg.spiffe_id) != 0) {
		snprintf(err, sizeof(err), "tls.crt: the certificate is for %s, the config says %s",
			 pl_tls_creds_spiffe_id(c), px->config->cfg.spiffe_id);
		pl_tls_creds_unref(c);
		c = NULL;
	}
	if (!c) {
		outcome(px, F_TLS, hash, err);
		/* Not valid yet (clock skew, early projection): the same bytes become good with time. */
		if (strstr(err, "not valid for another"))
			px->files[F_TLS].seen[0] = '\0';
		goto out;
	}
	/* Sessions hold their own reference: open connections keep the old certificate. */
	pl_tls_creds_unref(px->creds);
	px->creds = c;
	outcome(px, F_TLS, hash, NULL);
out:
	/* Key material is not left behind in freed heap memory. */
	if (key.data)
		explicit_bzero(key.data, key.len);
	if (all.data)
		explicit_bzero(all.data, all.len);
	pl_buf_free(&crt);
	pl_buf_free(&key);
	pl_buf_free(&ca);
	pl_buf_free(&all);
}

/* --- inotify --- */

static void add_watches(proxy *px)
{
	const char *paths[3] = {px->set.config_path, px->set.mesh_path, px->set.tls_dir};
	char tmp[PATH_MAX];

	if (px->inotify_fd < 0)
		return;
	for (int i = 0; i < 3; i++) {
		if (!paths[i] || px->watches[i] >= 0)
			continue;
		snprintf(tmp, sizeof(tmp), "%s", paths[i]);
		/* Watch the directory: the kubelet replaces files by swapping the ..data symlink. */
		const char *dir = i == F_TLS ? tmp : dirname(tmp);
		px->watches[i] = inotify_add_watch(px->inotify_fd, dir,
						   IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE |
							   IN_MOVED_FROM | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
	}
}

static void inotify_cb(pl_ev_loop *loop, void *data, uint32_t ev)
{
	proxy *px = data;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool lost_watch = false;
	(void)ev;

	for (;;) {
		ssize_t n = read(px->inotify_fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			if (e->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
				lost_watch = true;
			p += sizeof(*e) + e->len;
		}
	}
	if (lost_watch) {
		for (int i = 0; i < 3; i++) {
			if (px->watches[i] >= 0)
				inotify_rm_watch(px->inotify_fd, px->watches[i]);
			px->watches[i] = -1;
		}
	}
	/* Several events come with one swap; read the files once they settle. */
	pl_ev_timer_start(loop, &px->reload_timer, px->set.reload_debounce_ns);
}

static void reload_timer_cb(pl_ev_loop *loop, void *data)
{
	(void)loop;
	px_state_reload(data);
}

static void resync_timer_cb(pl_ev_loop *loop, void *data)
{
	proxy *px = data;

	px_state_reload(px);
	px_pools_sweep(px);
	px_h2_sweep(px);
	pl_ev_timer_start(loop, &px->resync_timer, px->set.resync_ns);
}

void px_state_reload(proxy *px)
{
	add_watches(px);
	reload_config(px);
	reload_mesh(px);
	reload_tls(px);
}

void px_state_init(proxy *px)
{
	static const char *const what[3] = {"config", "mesh", "tls"};

	for (int i = 0; i < 3; i++) {
		px->files[i].what = what[i];
		px->watches[i] = -1;
	}
	px->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (px->inotify_fd < 0)
		log_warnx("inotify: %s; files are re-read every %lld s only", strerror(errno),
			  (long long)(px->set.resync_ns / 1000000000));
	pl_ev_io_init(&px->inotify_io, inotify_cb, px);
	if (px->inotify_fd >= 0)
		pl_ev_io_start(px->loop, &px->inotify_io, px->inotify_fd, EPOLLIN);
	pl_ev_timer_init(&px->reload_timer, reload_timer_cb, px);
	pl_ev_timer_init(&px->resync_timer, resync_timer_cb, px);
	px_state_reload(px);
	pl_ev_timer_start(px->loop, &px->resync_timer, px->set.resync_ns);
}

void px_state_close(proxy *px)
{
	pl_ev_timer_stop(px->loop, &px->reload_timer);
	pl_ev_timer_stop(px->loop, &px->resync_timer);
	if (px->inotify_fd >= 0) {
		pl_ev_io_stop(px->loop, &px->inotify_io);
		close(px->inotify_fd);
	}
	px_config_unref(px->config);
	px->config = NULL;
	px_mesh_unref(px->mesh);
	px->mesh = NULL;
	pl_tls_creds_unref(px->creds);
	px->creds = NULL;
}

bool px_creds_usable(const proxy *px)
{
	int64_t now = unix_now();

	return px->config && px->creds && now >= pl_tls_creds_not_before(px->creds) &&
	       now < pl_tls_creds_not_after(px->creds) &&
	       strcmp(pl_tls_creds_spiffe_id(px->creds), px->config->cfg.spiffe_id) == 0;
}

bool px_ready(const proxy *px, const char **why)
{
	if (px->draining) {
		*why = "draining";
		return false;
	}
	if (!px->config) {
		*why = "no valid config";
		return false;
	}
	if (!px->creds) {
		*why = "no valid certificate";
		return false;
	}
	if (unix_now() >= pl_tls_creds_not_after(px->creds)) {
		*why = "the certificate expired";
		return false;
	}
	if (strcmp(pl_tls_creds_spiffe_id(px->creds), px->config->cfg.spiffe_id) != 0) {
		*why = "the certificate is for another identity";
		return false;
	}
	if (px->set.mesh_path && !px->mesh) {
		*why = "no valid mesh directory";
		return false;
	}
	*why = "ready";
	return true;
}

/* Loads one JSON file for --check; prints the reason and returns NULL when it is not one document. */
static json_t *check_load(const char *path, bool mesh)
{
	pl_buf b = PL_BUF_INIT;
	char err[1024];
	json_t *root = NULL;

	if ((mesh ? read_mesh_file : read_file)(path, &b, MESH_MAX, err, sizeof(err)) < 0)
		printf("%s\n", err);
	else if (!(root = mesh ? mesh_json(&b, err, sizeof(err)) : one_json(&b, err, sizeof(err))))
		printf("%s: %s\n", path, err);
	pl_buf_free(&b);
	return root;
}

int px_check_config(const char *config_path, const char *mesh_path, const char *outbound_path)
{
	bool ok = true;
	const char *paths[3] = {config_path, mesh_path, outbound_path};

	for (int i = 0; i < 3; i++) {
		if (!paths[i])
			continue;
		json_t *root = check_load(paths[i], i == 1);
		if (!root) {
			ok = false;
			continue;
		}
		pl_arena a;
		pl_errors errs = {0};
		pl_proxy_config cfg;
		pl_mesh_dir dir;
		pl_outbound_set out;
		pl_arena_init(&a);
		bool good = i == 0 ? pl_proxy_config_decode(&a, root, &cfg, &errs)
			    : i == 1 ? pl_mesh_dir_decode(&a, root, &dir, &errs)
				     : pl_outbound_decode(&a, root, &out, &errs);
		for (size_t j = 0; j < errs.n; j++)
			printf("%s: %s: %s\n", paths[i], errs.v[j].path[0] ? errs.v[j].path : "(root)", errs.v[j].msg);
		if (good && i == 1)
			pl_mesh_dir_free(&dir);
		ok = ok && good;
		pl_arena_free(&a);
		json_decref(root);
	}
	if (ok)
		printf("configuration OK\n");
	return ok ? 0 : 1;
}
