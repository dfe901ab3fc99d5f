/* The admission handler: a POST /mutate body in, an HTTP status and an AdmissionReview answer out. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base64.h"
#include "json/json.h"
#include "webhook.h"

#define REVIEW_API_VERSION "admission.k8s.io/v1"
#define REVIEW_KIND "AdmissionReview"

static json_t *must(json_t *v)
{
	if (!v)
		abort();
	return v;
}

bool wh_content_type_ok(const char *ct)
{
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1;

	if (!ct)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, want, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* Where a JSON container nested deeper than max starts, or len when none does (strings skipped). */
static size_t find_too_deep(const char *s, size_t len, int max)
{
	bool in_str = false;
	int depth = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				return i;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return len;
}

/*
 * A copy of s in which every array or object nested deeper than max is replaced by null,
 * so that the parser never holds (nor recurses into) more than max levels and the review
 * around it (uid, kind) stays readable. Malformed input stays malformed. Caller frees.
 */
static char *cut_too_deep(const char *s, size_t len, int max, size_t *outlen)
{
	/* "null" is longer than the shortest container "[]": at most twice the input. */
	char *out = malloc(2 * len + 1);
	bool in_str = false;
	int depth = 0;
	size_t o = 0;

	if (!out)
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			out[o++] = c;
			if (c == '\\' && i + 1 < len)
				out[o++] = s[++i];
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if ((c == '[' || c == '{') && depth == max) {
			bool skip_str = false;
			int d = 0;
			for (; i < len; i++) {
				char k = s[i];
				if (skip_str) {
					if (k == '\\')
						i++;
					else if (k == '"')
						skip_str = false;
				} else if (k == '"') {
					skip_str = true;
				} else if (k == '[' || k == '{') {
					d++;
				} else if ((k == ']' || k == '}') && --d == 0) {
					break;
				}
			}
			memcpy(out + o, "null", 4);
			o += 4;
			continue;
		} else if (c == '[' || c == '{') {
			depth++;
		} else if (c == ']' || c == '}') {
			depth--;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

static void bad_request(wh_reply *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_request(wh_reply *out, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	out->status = 400;
	out->ctype = "text/plain";
	out->body = malloc((size_t)n + 2);
	if (!out->body)
		abort();
	memcpy(out->body, msg, (size_t)n);
	out->body[n] = '\n';
	out->body[n + 1] = '\0';
	out->len = (size_t)n + 1;
}

/* Appends a warning, cut to WH_MAX_WARNING_BYTES on a UTF-8 character boundary. */
static void warn(json_t *warnings, const char *msg, size_t len)
{
	if (json_array_size(warnings) >= WH_MAX_WARNINGS)
		return;
	if (len > WH_MAX_WARNING_BYTES) {
		len = WH_MAX_WARNING_BYTES;
		while (len > 0 && ((unsigned char)msg[len] & 0xC0) == 0x80)
			len--;
	}
	json_t *s = json_stringn(msg, len);
	if (s)  /* NULL only for invalid UTF-8, which jansson never hands out */
		json_array_append_new(warnings, s);
}

static void warnf(json_t *warnings, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(json_t *warnings, const char *fmt, ...)
{
	char msg[WH_MAX_WARNING_BYTES * 2];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (n < 0)
		return;
	warn(warnings, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_is_object(obj) ? pl_json_get_str(obj, key) : NULL;
	return s ? s : dflt;
}

/* Decides for one request: fills the patch (NULL when none) and returns the reason token. */
static const char *decide(const wh_config *cfg, const json_t *req, bool cut, const char *id, json_t *warnings,
			  json_t **patch)
{
	const json_t *kind = json_object_get(req, "kind");
	const char *group = str_or(kind, "group", ""), *kname = str_or(kind, "kind", "");
	const char *op = str_or(req, "operation", "");
	const char *sub = str_or(req, "subResource", "");
	const json_t *obj = json_object_get(req, "object");
	pl_inject_result res;
	const char *reason;

	*patch = NULL;
	if (*group || strcmp(kname, "Pod") != 0) {
		warnf(warnings, "pillion: not injected: only Pods are, got kind \"%s%s%s\"", group, *group ? "/" : "", kname);
		return "not-a-pod";
	}
	if (strcmp(op, "CREATE") != 0) {
		warnf(warnings, "pillion: not injected: only on CREATE, got operation \"%s\"", op);
		return "not-create";
	}
	if (*sub) {
		warnf(warnings, "pillion: not injected: subresource \"%s\"", sub);
		return "subresource";
	}
	if (cut) {
		warnf(warnings, "pillion: not injected: the request nests deeper than %d levels", WH_MAX_DEPTH);
		return "too-deep";
	}
	if (!json_is_object(obj)) {
		warnf(warnings, "pillion: not injected: request.object must be an object");
		return "invalid-pod";
	}
	if (!id) {
		warnf(warnings, "pillion: not injected: no random id available");
		return "error";
	}

	pl_inject_opts opts = {
		.proxy_image = cfg->proxy_image,
		.init_image = cfg->init_image,
		.id = id,
		.mode = cfg->mode,
		.server_minor = cfg->server_minor,
		.namespace_enabled = true,  /* the namespaceSelector chose this pod */
	};
	memset(&res, 0, sizeof(res));
	if (pl_inject_pod(obj, &opts, &res) != 0) {
		pl_inject_result_clear(&res);
		warnf(warnings, "pillion: not injected: out of memory");
		return "error";
	}
	size_t i;
	json_t *w;
	json_array_foreach(res.warnings, i, w)
		if (json_is_string(w))
			warn(warnings, json_string_value(w), json_string_length(w));
	reason = res.reason ? res.reason : "other";
	if (res.injected && json_is_array(res.patch)) {
		*patch = json_incref(res.patch);
	} else if (res.injected) {
		warnf(warnings, "pillion: not injected: no patch was produced");
		reason = "error";
	} else if (strcmp(reason, "invalid-pod") == 0 && res.error[0] && json_array_size(res.warnings) == 0) {
		warnf(warnings, "pillion: not injected: invalid pod: %s", res.error);
	}
	pl_inject_result_clear(&res);
	return reason;
}

void wh_review(const wh_config *cfg, const char *body, size_t len, const char *id, wh_reply *out)
{
	json_error_t jerr;
	char *cut_body = NULL;
	size_t cut_len = 0;
	json_t *patch = NULL;

	memset(out, 0, sizeof(*out));
	out->reason = "error";
	bool cut = find_too_deep(body, len, WH_MAX_DEPTH) < len;
	if (cut)
		cut_body = cut_too_deep(body, len, WH_MAX_DEPTH, &cut_len);
	/* NUL is legal JSON ("\u0000"); a review carrying one is odd, not malformed. */
	json_t *root = cut ? json_loadb(cut_body, cut_len, JSON_ALLOW_NUL, &jerr)
				: json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
	free(cut_body);
	if (!root) {
		bad_request(out, "request body is not JSON: line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		bad_request(out, "request body is not an AdmissionReview: %s", "not an object");
		return;
	}
	const char *av = pl_json_get_str(root, "apiVersion"), *kind = pl_json_get_str(root, "kind");
	if (!kind || strcmp(kind, REVIEW_KIND) != 0 || !av || strcmp(av, REVIEW_API_VERSION) != 0) {
		json_decref(root);
		bad_request(out, "request body is not an AdmissionReview: %s",
			    "want apiVersion " REVIEW_API_VERSION ", kind " REVIEW_KIND);
		return;
	}

	json_t *warnings = must(json_array());
	const json_t *req = json_object_get(root, "request");
	const json_t *uid = json_object_get(req, "uid");
	if (!json_is_object(req)) {
		warnf(warnings, "pillion: not injected: request must be an object");
		out->reason = "invalid-review";
	} else if (!json_is_string(uid) || json_string_length(uid) == 0) {
		/* The API server would not take the answer anyway: nothing to inject for. */
		warnf(warnings, "pillion: not injected: request.uid is missing");
		out->reason = "invalid-review";
	} else {
		out->reason = decide(cfg, req, cut, id, warnings, &patch);
	}

	json_t *resp = must(json_object());
	json_object_set_new(resp, "uid", must(json_is_string(uid) ? json_stringn(json_string_value(uid), json_string_length(uid)) : json_string("")));
	json_object_set_new(resp, "allowed", json_true());
	if (patch) {
		char *p = json_dumps(patch, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!p)
			abort();
		char *b64 = pl_base64_encode(p, strlen(p));
		free(p);
		json_object_set_new(resp, "patchType", must(json_string("JSONPatch")));
		json_object_set_new(resp, "patch", must(json_string(b64)));
		free(b64);
		json_decref(patch);
		out->injected = true;
	}
	if (json_array_size(warnings) > 0)
		json_object_set(resp, "warnings", warnings);
	json_decref(warnings);

	json_t *answer = must(json_object());
	json_object_set_new(answer, "apiVersion", must(json_string(REVIEW_API_VERSION)));
	json_object_set_new(answer, "kind", must(json_string(REVIEW_KIND)));
	json_object_set_new(answer, "response", resp);
	out->body = json_dumps(answer, JSON_COMPACT);
	if (!out->body)
		abort();
	out->len = strlen(out->body);
	out->status = 200;
	out->ctype = "application/json";
	json_decref(answer);
	json_decref(root);
}

void wh_reply_clear(wh_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}
