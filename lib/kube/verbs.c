/* The API's verbs on top of the transport: get, paginated list, server-side apply, merge patch, create, delete, events, paths. */
#include "kube/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

void kube_escape(pl_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.' || ch == '~')
			pl_buf_append(b, s, 1);
		else
			pl_buf_printf(b, "%%%02X", ch);
	}
}

static int parse_json_body(const kube_call *c, const pl_buf *resp, json_t **out, pl_kube_status *st)
{
	json_error_t err;

	if (!out)
		return 0;
	if (resp->len == 0)
		return 0;
	*out = json_loadb(resp->data, resp->len, 0, &err);
	if (!*out) {
		snprintf(st->message, sizeof(st->message), "response to %s %s is not JSON: line %d column %d: %s",
			 c->method, c->target, err.line, err.column, err.text);
		snprintf(st->reason, sizeof(st->reason), "MalformedResponse");
		log_warnx("kube: %s", st->message);
		return -EBADMSG;
	}
	return 0;
}

int kube_request(pl_kube *k, const char *method, const char *verb, const char *target, const char *ct,
		   const char *body, size_t len, json_t **out, pl_kube_status *st)
{
	pl_kube_status local;
	pl_buf resp = PL_BUF_INIT;
	kube_call c = {.method = method, .verb = verb, .target = target, .content_type = ct, .body = body, .len = len};
	int rc;

	if (out)
		*out = NULL;
	if (!st)
		st = &local;
	if (!target || target[0] != '/') {
		memset(st, 0, sizeof(*st));
		snprintf(st->message, sizeof(st->message), "request path must start with '/'");
		return -EINVAL;
	}
	rc = kube_do(k, &c, &resp, st);
	if (rc == 0)
		rc = parse_json_body(&c, &resp, out, st);
	pl_buf_free(&resp);
	return rc;
}

int pl_kube_request(pl_kube *k, const char *method, const char *path_and_query, const char *content_type,
		    const char *body, size_t len, json_t **out, pl_kube_status *st)
{
	return kube_request(k, method, method, path_and_query, content_type, body, len, out, st);
}

int pl_kube_get(pl_kube *k, const char *path, json_t **out, pl_kube_status *st)
{
	return kube_request(k, "GET", "GET", path, NULL, NULL, 0, out, st);
}

int pl_kube_list(pl_kube *k, const char *path, const char *query, int page_limit, json_t **items, char *rv,
		 size_t rvlen, pl_kube_status *st)
{
	pl_kube_status local;
	json_t *all = json_array();
	char *cont = NULL;
	bool restarted = false;
	int rc = 0;

	*items = NULL;
	if (rv && rvlen)
		rv[0] = '\0';
	if (!st)
		st = &local;
	if (!all)
		return -ENOMEM;
	if (page_limit <= 0)
		page_limit = 500;
	for (;;) {
		pl_buf t = PL_BUF_INIT;
		json_t *page = NULL;

		pl_buf_printf(&t, "%s%climit=%d", path, strchr(path, '?') ? '&' : '?', page_limit);
		if (cont) {
			pl_buf_puts(&t, "&continue=");
			kube_escape(&t, cont);
		}
		if (query && *query)
			pl_buf_printf(&t, "&%s", query);
		rc = kube_request(k, "GET", "LIST", t.data, NULL, NULL, 0, &page, st);
		pl_buf_free(&t);
		if (rc == -ERANGE && cont && !restarted) {
			/* The continue token outlived its snapshot: start over from a fresh one. */
			log_info("kube: LIST %s: continue token expired; listing again from the start", path);
			restarted = true;
			free(cont);
			cont = NULL;
			json_array_clear(all);
			continue;
		}
		if (rc < 0)
			break;
		const json_t *list = json_object_get(page, "items");
		const json_t *meta = json_object_get(page, "metadata");
		if (!json_is_object(page) || (list && !json_is_array(list) && !json_is_null(list))) {
			snprintf(st->message, sizeof(st->message), "LIST %s: the response is not a list", path);
			snprintf(st->reason, sizeof(st->reason), "MalformedResponse");
			json_decref(page);
			rc = -EBADMSG;
			break;
		}
		if (json_is_array(list))
			json_array_extend(all, (json_t *)list);
		if (rv && rvlen && pl_json_get_str(meta, "resourceVersion"))
			snprintf(rv, rvlen, "%s", pl_json_get_str(meta, "resourceVersion"));
		const char *next = pl_json_get_str(meta, "continue");
		free(cont);
		cont = next && *next ? strdup(next) : NULL;
		json_decref(page);
		if (!cont)
			break;
	}
	free(cont);
	if (rc < 0) {
		json_decref(all);
		if (rv && rvlen)
			rv[0] = '\0';
		return rc;
	}
	*items = all;
	return 0;
}

static int write_json(pl_kube *k, const char *method, const char *target, const char *ct, const json_t *obj,
		      json_t **out, pl_kube_status *st)
{
	/* Canonical bytes: the same object always produces the same request. */
	char *body = obj ? pl_json_dump_canonical(obj) : NULL;
	int rc;

	if (obj && !body)
		return -ENOMEM;
	rc = kube_request(k, method, method, target, ct, body, body ? strlen(body) : 0, out, st);
	free(body);
	return rc;
}

int pl_kube_apply(pl_kube *k, const char *path, const json_t *obj, const char *field_manager, bool force,
		  json_t **out, pl_kube_status *st)
{
	pl_buf t = PL_BUF_INIT;
	int rc;

	pl_buf_printf(&t, "%s%cfieldManager=", path, strchr(path, '?') ? '&' : '?');
	kube_escape(&t, field_manager ? field_manager : "pillion-operator");
	if (force)
		pl_buf_puts(&t, "&force=true");
	rc = write_json(k, "PATCH", t.data, "application/apply-patch+yaml", obj, out, st);
	pl_buf_free(&t);
	return rc;
}

int pl_kube_merge_patch(pl_kube *k, const char *path, const json_t *patch, json_t **out, pl_kube_status *st)
{
	return write_json(k, "PATCH", path, "application/merge-patch+json", patch, out, st);
}

int pl_kube_create(pl_kube *k, const char *collection, const json_t *obj, json_t **out, pl_kube_status *st)
{
	return write_json(k, "POST", collection, "application/json", obj, out, st);
}

int pl_kube_delete(pl_kube *k, const char *path, const char *precondition_uid, pl_kube_status *st)
{
	json_t *opts = NULL;
	int rc;

	if (precondition_uid)
		opts = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "DeleteOptions", "preconditions",
				 "uid", precondition_uid);
	rc = write_json(k, "DELETE", path, opts ? "application/json" : NULL, opts, NULL, st);
	json_decref(opts);
	return rc;
}

int pl_kube_event(pl_kube *k, const json_t *obj, const char *type, const char *reason, const char *message,
		  const char *component, pl_kube_status *st)
{
	const json_t *meta = json_object_get(obj, "metadata");
	const char *name = pl_json_get_str(meta, "name"), *ns = pl_json_get_str(meta, "namespace");
	char ts[32], path[512], evname[300], msg[1025];
	struct timespec now;
	struct tm tm;
	json_t *ev, *ref;
	int rc;

	if (!name || !type || !reason) {
		if (st) {
			memset(st, 0, sizeof(*st));
			snprintf(st->message, sizeof(st->message), "event: the object has no metadata.name");
		}
		return -EINVAL;
	}
	if (!ns)
		ns = "default";
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* client-go's naming: <object>.<unix nanoseconds in hex>, unique enough without generateName. */
	snprintf(evname, sizeof(evname), "%s.%" PRIx64, name, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
	snprintf(msg, sizeof(msg), "%s", message ? message : "");
	/* Truncation must not split a UTF-8 sequence (jansson refuses invalid UTF-8). */
	size_t ml = strlen(msg);
	if (message && ml < strlen(message))
		while (ml > 0 && ((unsigned char)message[ml] & 0xc0) == 0x80)
			msg[--ml] = '\0';   /* message[ml], the first byte cut off, continues a sequence */
	if ((rc = pl_kube_path(path, sizeof(path), NULL, "v1", ns, "events", NULL, NULL)) < 0)
		return rc;
	ref = json_object();
	static const char *refkeys[] = {"apiVersion", "kind"};
	for (size_t i = 0; i < 2; i++)
		if (pl_json_get_str(obj, refkeys[i]))
			json_object_set_new(ref, refkeys[i], json_string(pl_json_get_str(obj, refkeys[i])));
	static const char *metakeys[] = {"name", "namespace", "uid", "resourceVersion"};
	for (size_t i = 0; i < 4; i++)
		if (pl_json_get_str(meta, metakeys[i]))
			json_object_set_new(ref, metakeys[i], json_string(pl_json_get_str(meta, metakeys[i])));
	ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o, s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:i}", "apiVersion", "v1",
		       "kind", "Event", "metadata", "name", evname, "namespace", ns, "involvedObject", ref, "type",
		       type, "reason", reason, "message", msg, "source", "component",
		       component ? component : "pillion-operator", "firstTimestamp", ts, "lastTimestamp", ts, "count",
		       1);
	if (!ev)
		return -ENOMEM;
	rc = write_json(k, "POST", path, "application/json", ev, NULL, st);
	json_decref(ev);
	return rc;
}

static bool segment_ok(const char *s)
{
	return s && *s && !strpbrk(s, "/?#%");
}

int pl_kube_path(char *buf, size_t len, const char *group, const char *version, const char *ns,
		 const char *plural, const char *name, const char *sub)
{
	pl_buf b = PL_BUF_INIT;
	int rc = 0;

	if (!segment_ok(version) || !segment_ok(plural) || (group && *group && !segment_ok(group)) ||
	    (ns && !segment_ok(ns)) || (name && !segment_ok(name)) || (sub && !segment_ok(sub)) || (sub && !name))
		return -EINVAL;
	if (group && *group)
		pl_buf_printf(&b, "/apis/%s/%s", group, version);
	else
		pl_buf_printf(&b, "/api/%s", version);
	if (ns)
		pl_buf_printf(&b, "/namespaces/%s", ns);
	pl_buf_printf(&b, "/%s", plural);
	if (name)
		pl_buf_printf(&b, "/%s", name);
	if (sub)
		pl_buf_printf(&b, "/%s", sub);
	if (b.len >= len)
		rc = -ENAMETOOLONG;
	else
		memcpy(buf, b.data, b.len + 1);
	pl_buf_free(&b);
	return rc;
}
