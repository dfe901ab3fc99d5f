/* Kubernetes WATCH: a newline-delimited JSON event stream parsed as it arrives, with bookmarks, resourceVersion tracking and 410 Gone. */
#include "kube/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

/* One event line: an object can be ~1.5 MB in etcd; anything far past that is not a watch. */
#define LINE_MAX_BYTES ((size_t)16 << 20)

typedef struct watch_state {
	const char *path;
	pl_buf line;            /* bytes of the current, incomplete line */
	size_t scanned;         /* of line: no '\n' before this offset */
	char *rv;
	size_t rvlen;
	pl_kube_watch_cb cb;
	void *ctx;
	bool done;              /* stopped by an event, the callback or an error */
	int result;
	pl_kube_status err;     /* why, when an event stopped it */
} watch_state;

static void stop(watch_state *w, int rc)
{
	w->done = true;
	w->result = rc;
}

static void malformed(watch_state *w, const char *what, const char *detail)
{
	snprintf(w->err.message, sizeof(w->err.message), "watch %s: %s%s%s", w->path, what, detail ? ": " : "",
		 detail ? detail : "");
	snprintf(w->err.reason, sizeof(w->err.reason), "MalformedResponse");
	log_warnx("kube: %s", w->err.message);
	stop(w, -EBADMSG);
}

static void on_line(watch_state *w, const char *p, size_t n)
{
	json_error_t jerr;
	json_t *ev;

	if (n && p[n - 1] == '\r')
		n--;
	if (n == 0)
		return;
	if (!(ev = json_loadb(p, n, 0, &jerr))) {
		malformed(w, "an event line is not JSON", jerr.text);
		return;
	}
	const char *type = pl_json_get_str(ev, "type");
	json_t *obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		malformed(w, "an event without type and object", NULL);
		json_decref(ev);
		return;
	}
	if (strcmp(type, "ERROR") == 0) {
		/* The object is a Status: 410 Expired/Gone means our resourceVersion is too old. */
		kube_status_from_json(&w->err, obj);
		bool gone = w->err.http == 410 || strcmp(w->err.reason, "Expired") == 0 || strcmp(w->err.reason, "Gone") == 0;
		int rc = gone ? -ERANGE : pl_kube_errno(w->err.http, w->err.reason);
		if (rc == 0)
			rc = -EPROTO;
		if (gone)
			log_info("kube: WATCH %s: resourceVersion %s is gone: %s", w->path, w->rv, w->err.message);
		else
			kube_log_failure("WATCH", w->path, rc, &w->err);
		stop(w, rc);
		json_decref(ev);
		return;
	}
	int rc = w->cb ? w->cb(w->ctx, type, obj) : 0;
	if (rc >= 0) {
		const char *rv = pl_json_get_str(json_object_get(obj, "metadata"), "resourceVersion");
		if (rv && *rv)
			snprintf(w->rv, w->rvlen, "%s", rv);
	}
	if (rc != 0)
		stop(w, rc);
	json_decref(ev);
}

static bool on_data(void *ctx, const char *data, size_t len)
{
	watch_state *w = ctx;
	size_t start = 0;

	pl_buf_append(&w->line, data, len);
	/* A line may arrive in many pieces and a piece may hold many lines. */
	for (;;) {
		char *nl = memchr(w->line.data + w->scanned, '\n', w->line.len - w->scanned);
		if (!nl)
			break;
		size_t end = (size_t)(nl - w->line.data);
		on_line(w, w->line.data + start, end - start);
		start = end + 1;
		w->scanned = start;
		if (w->done)
			return false;
	}
	if (start) {
		memmove(w->line.data, w->line.data + start, w->line.len - start);
		w->line.len -= start;
		w->line.data[w->line.len] = '\0';
	}
	w->scanned = w->line.len;
	if (w->line.len > LINE_MAX_BYTES) {
		malformed(w, "an event line is longer than 16 MiB", NULL);
		return false;
	}
	return true;
}

int pl_kube_watch(pl_kube *k, const char *path, const char *query, char *rv, size_t rvlen, int timeout_s,
		  pl_kube_watch_cb cb, void *ctx, pl_kube_status *st)
{
	pl_kube_status local;
	watch_state w = {.path = path, .line = PL_BUF_INIT, .rv = rv, .rvlen = rvlen, .cb = cb, .ctx = ctx};
	pl_buf target = PL_BUF_INIT, resp = PL_BUF_INIT;
	int rc;

	if (!st)
		st = &local;
	if (!path || path[0] != '/' || !rv || !rvlen) {
		memset(st, 0, sizeof(*st));
		snprintf(st->message, sizeof(st->message), "watch: a path starting with '/' and an rv buffer are needed");
		return -EINVAL;
	}
	if (timeout_s <= 0)
		timeout_s = 300;
	pl_buf_printf(&target, "%s%cwatch=true&allowWatchBookmarks=true&timeoutSeconds=%d", path,
		      strchr(path, '?') ? '&' : '?', timeout_s);
	if (rv[0]) {
		pl_buf_puts(&target, "&resourceVersion=");
		kube_escape(&target, rv);
	}
	if (query && *query)
		pl_buf_printf(&target, "&%s", query);
	kube_call c = {.method = "GET", .verb = "WATCH", .target = target.data, .sink = on_data, .sink_ctx = &w,
		       .stream_timeout_s = timeout_s};
	rc = kube_do(k, &c, &resp, st);
	if (w.done) {
		if (w.result < 0 && (w.err.http || w.err.message[0])) {
			long http = st->http;
			*st = w.err;
			if (!st->http)
				st->http = http;
		}
		rc = w.result;
	} else if (rc == 0 && w.line.len) {
		/* Cut mid-line: the partial event is dropped; rv still names the last whole one. */
		char why[sizeof(st->message)];
		snprintf(why, sizeof(why), "%s", st->message[0] ? st->message : "end of stream");
		snprintf(st->message, sizeof(st->message), "stream cut mid-line (%zu bytes discarded): %.400s", w.line.len,
			 why);
	}
	if (rc == 0 && st->message[0])
		log_info("kube: WATCH %s: %s; resume from %s", path, st->message, rv[0] ? rv : "(none)");
	pl_buf_free(&w.line);
	pl_buf_free(&resp);
	pl_buf_free(&target);
	return rc;
}
