/* Unit tests for lib/kube/client against recorded API responses: auth and token rotation, Status errors, retries, pagination, writes, the rate limiter. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kube/kube.h"
#include "replay.h"

/* ---------- a fake clock: sleeps are recorded and advance time, never taken ---------- */

typedef struct fake_clock {
	int64_t now;
	int nsleeps;
	int64_t sleeps[64];
} fake_clock;

static int64_t fake_now(void *ctx)
{
	return ((fake_clock *)ctx)->now;
}

static void fake_sleep(void *ctx, int64_t ns)
{
	fake_clock *c = ctx;

	if (c->nsleeps < 64)
		c->sleeps[c->nsleeps] = ns;
	c->nsleeps++;
	c->now += ns;
}

static pl_kube *client_for(rp_server *s, fake_clock *fc, const char *token)
{
	pl_kube_config cfg = {0};

	cfg.server = (char *)rp_url(s);
	cfg.token = (char *)token;
	pl_kube *k = pl_kube_new(&cfg, 1000, 1000);
	assert_non_null(k);
	if (fc) {
		pl_kube_clock c = {fake_now, fake_sleep, fc};
		pl_kube_set_clock(k, &c);
	}
	pl_kube_set_retry(k, 4, 5000);
	return k;
}

#define STATUS(code, reason, msg) \
	"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"" msg "\",\"reason\":\"" reason "\",\"code\":" #code "}"

/* ---------- GET, auth ---------- */

static void test_get_and_headers(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .body = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}"},
		{.status = 404, .body = STATUS(404, "NotFound", "pods \\\"q\\\" not found")},
	};
	rp_server *s = rp_start(script, 2);
	pl_kube *k = client_for(s, NULL, "s3cret");
	pl_kube_status st;
	json_t *out = NULL;

	(void)state;
	assert_int_equal(pl_kube_get(k, "/api/v1/namespaces/a/pods/p", &out, &st), 0);
	assert_int_equal(st.http, 200);
	assert_string_equal(json_string_value(json_object_get(json_object_get(out, "metadata"), "name")), "p");
	json_decref(out);
	assert_string_equal(rp_req(s, 0)->method, "GET");
	assert_string_equal(rp_req(s, 0)->target, "/api/v1/namespaces/a/pods/p");
	assert_string_equal(rp_req(s, 0)->authorization, "Bearer s3cret");

	assert_int_equal(pl_kube_get(k, "/api/v1/namespaces/a/pods/q", &out, &st), -ENOENT);
	assert_null(out);
	assert_int_equal(st.http, 404);
	assert_string_equal(st.reason, "NotFound");
	assert_string_equal(st.message, "pods \"q\" not found");
	assert_int_equal(st.attempts, 1);
	assert_int_equal(rp_accepts(s), 1);   /* one connection, kept */
	assert_int_equal(pl_kube_get(k, "no-slash", &out, &st), -EINVAL);
	pl_kube_free(k);
	rp_stop(s);
}

static void test_token_file_reread(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .body = "{}"}, {.status = 200, .body = "{}"}, {.status = 200, .body = "{}"},
		{.status = 401, .body = STATUS(401, "Unauthorized", "Unauthorized")}, {.status = 200, .body = "{}"},
	};
	char dir[] = "/tmp/pillion-kube-token-XXXXXX", path[128], cmd[160];
	rp_server *s = rp_start(script, 5);
	pl_kube_config cfg = {0};
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/token", dir);
	f = fopen(path, "w");
	fputs("first\n", f);
	fclose(f);
	cfg.server = (char *)rp_url(s);
	cfg.token = (char *)"static";   /* a file, when set, wins */
	cfg.token_file = path;
	pl_kube *k = pl_kube_new(&cfg, 0, 0);
	assert_int_equal(pl_kube_get(k, "/a", NULL, NULL), 0);
	assert_string_equal(rp_req(s, 0)->authorization, "Bearer first");

	/* A projected token rotates by an atomic rename: a new inode. */
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s/token.new", dir);
	f = fopen(tmp, "w");
	fputs("second\n", f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(pl_kube_get(k, "/b", NULL, NULL), 0);
	assert_string_equal(rp_req(s, 1)->authorization, "Bearer second");

	/* Emptied mid-rotation: the last good token stays. */
	f = fopen(path, "w");
	fclose(f);
	assert_int_equal(pl_kube_get(k, "/c", NULL, NULL), 0);
	assert_string_equal(rp_req(s, 2)->authorization, "Bearer second");

	/* A 401 forces a re-read and one more try. */
	f = fopen(path, "w");
	fputs("third", f);
	fclose(f);
	pl_kube_status st;
	assert_int_equal(pl_kube_get(k, "/d", NULL, &st), 0);
	assert_int_equal(st.attempts, 2);
	assert_string_equal(rp_req(s, 4)->authorization, "Bearer third");
	pl_kube_free(k);
	rp_stop(s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---------- errors and retries ---------- */

static void test_conflict_status(void **state)
{
	static const rp_response script[] = {
		{.status = 409, .body = STATUS(409, "Conflict", "Operation cannot be fulfilled on configmaps \\\"pillion-x\\\": the object has been modified")},
		{.status = 409, .body = STATUS(409, "AlreadyExists", "configmaps \\\"pillion-x\\\" already exists")},
	};
	rp_server *s = rp_start(script, 2);
	fake_clock fc = {0};
	pl_kube *k = client_for(s, &fc, NULL);
	pl_kube_status st;
	json_t *patch = json_pack("{s:{s:s}}", "data", "a", "b"), *obj = json_pack("{s:s}", "kind", "ConfigMap");

	(void)state;
	assert_int_equal(pl_kube_merge_patch(k, "/api/v1/namespaces/a/configmaps/pillion-x", patch, NULL, &st), -ESTALE);
	assert_int_equal(st.http, 409);
	assert_string_equal(st.reason, "Conflict");
	assert_non_null(strstr(st.message, "the object has been modified"));
	assert_int_equal(st.attempts, 1);   /* never retried */
	assert_string_equal(rp_req(s, 0)->method, "PATCH");
	assert_string_equal(rp_req(s, 0)->content_type, "application/merge-patch+json");
	assert_string_equal(rp_req(s, 0)->body, "{\"data\":{\"a\":\"b\"}}");

	assert_int_equal(pl_kube_create(k, "/api/v1/namespaces/a/configmaps", obj, NULL, &st), -EEXIST);
	assert_string_equal(st.reason, "AlreadyExists");
	assert_string_equal(rp_req(s, 1)->method, "POST");
	assert_int_equal(fc.nsleeps, 0);
	json_decref(patch);
	json_decref(obj);
	pl_kube_free(k);
	rp_stop(s);
}

static void test_429_retry_after(void **state)
{
	static const rp_response script[] = {
		{.status = 429, .headers = "Retry-After: 3\r\n", .body = STATUS(429, "TooManyRequests", "too many requests")},
		{.status = 200, .body = "{\"ok\":true}"},
		{.status = 429, .headers = "Retry-After: 60\r\n", .body = STATUS(429, "TooManyRequests", "slow down")},
		{.status = 429, .body = "{\"kind\":\"Status\",\"code\":429,\"reason\":\"TooManyRequests\",\"message\":\"m\",\"details\":{\"retryAfterSeconds\":2}}"},
		{.status = 429, .headers = "Retry-After: 1\r\n", .body = ""},
		{.status = 429, .headers = "Retry-After: 1\r\n", .body = ""},
	};
	rp_server *s = rp_start(script, 6);
	fake_clock fc = {0};
	pl_kube *k = client_for(s, &fc, NULL);
	pl_kube_status st;
	json_t *obj = json_pack("{s:s}", "kind", "ConfigMap"), *out = NULL;

	(void)state;
	/* A write is retried on 429 too: the server did not act on it. */
	assert_int_equal(pl_kube_apply(k, "/api/v1/namespaces/a/configmaps/x", obj, "pillion-operator", true, &out, &st), 0);
	assert_true(json_is_true(json_object_get(out, "ok")));
	json_decref(out);
	assert_int_equal(st.attempts, 2);
	assert_int_equal(fc.nsleeps, 1);
	assert_int_equal(fc.sleeps[0], 3 * INT64_C(1000000000));   /* Retry-After honoured */

	/* Exhausted: Retry-After capped by the max wait (5 s here), details.retryAfterSeconds used when there is no header. */
	fc.nsleeps = 0;
	assert_int_equal(pl_kube_get(k, "/x", NULL, &st), -EBUSY);
	assert_int_equal(st.attempts, 4);
	assert_int_equal(st.http, 429);
	assert_string_equal(st.reason, "TooManyRequests");
	assert_int_equal(st.retry_after_s, 1);
	assert_int_equal(fc.nsleeps, 3);
	assert_int_equal(fc.sleeps[0], 5 * INT64_C(1000000000));
	assert_int_equal(fc.sleeps[1], 2 * INT64_C(1000000000));
	assert_int_equal(fc.sleeps[2], 1 * INT64_C(1000000000));
	assert_int_equal(rp_count(s), 6);
	json_decref(obj);
	pl_kube_free(k);
	rp_stop(s);
}

static void test_500_retried_for_get_only(void **state)
{
	static const rp_response script[] = {
		{.status = 0},   /* connection closed without an answer (first, so curl's own reuse retry stays out of it) */
		{.status = 500, .body = STATUS(500, "InternalError", "etcdserver: leader changed")},
		{.status = 503, .body = "<html>upstream unavailable</html>"},
		{.status = 200, .body = "{\"kind\":\"Namespace\"}"},
		{.status = 500, .body = STATUS(500, "InternalError", "etcdserver: request timed out")},
	};
	rp_server *s = rp_start(script, 5);
	fake_clock fc = {0};
	pl_kube *k = client_for(s, &fc, NULL);
	pl_kube_status st;
	json_t *out = NULL, *obj = json_pack("{s:s}", "kind", "ConfigMap");

	(void)state;
	assert_int_equal(pl_kube_get(k, "/api/v1/namespaces/a", &out, &st), 0);
	assert_string_equal(json_string_value(json_object_get(out, "kind")), "Namespace");
	json_decref(out);
	assert_int_equal(st.attempts, 4);
	/* Exponential backoff: 200, 400, 800 ms. */
	assert_int_equal(fc.nsleeps, 3);
	assert_int_equal(fc.sleeps[0], 200 * INT64_C(1000000));
	assert_int_equal(fc.sleeps[1], 400 * INT64_C(1000000));
	assert_int_equal(fc.sleeps[2], 800 * INT64_C(1000000));

	/* A write that failed with 500 may have happened: returned, not retried. */
	assert_int_equal(pl_kube_apply(k, "/api/v1/namespaces/a/configmaps/x", obj, "m", false, NULL, &st), -EIO);
	assert_int_equal(st.attempts, 1);
	assert_int_equal(st.http, 500);
	assert_string_equal(st.reason, "InternalError");
	assert_string_equal(st.message, "etcdserver: request timed out");
	assert_string_equal(rp_req(s, 4)->target, "/api/v1/namespaces/a/configmaps/x?fieldManager=m");
	json_decref(obj);
	pl_kube_free(k);
	rp_stop(s);
}

static void test_non_status_error_body(void **state)
{
	static const rp_response script[] = {
		{.status = 403, .body = "<html>\nforbidden by proxy</html>"},
		{.status = 400, .body = ""},
	};
	rp_server *s = rp_start(script, 2);
	pl_kube *k = client_for(s, NULL, NULL);
	pl_kube_status st;

	(void)state;
	assert_int_equal(pl_kube_get(k, "/x", NULL, &st), -EPERM);
	assert_string_equal(st.reason, "Forbidden");
	assert_string_equal(st.message, "<html> forbidden by proxy</html>");
	assert_int_equal(pl_kube_delete(k, "/x", NULL, &st), -EINVAL);
	assert_string_equal(st.reason, "BadRequest");
	assert_string_equal(st.message, "HTTP 400 with no body");
	pl_kube_free(k);
	rp_stop(s);
}

static void test_malformed_body(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .body = "{\"kind\":\"Pod\",\"metadata\":{"},
		{.status = 200, .body = "{\"kind\":\"PodList\",\"items\":{}}"},
	};
	rp_server *s = rp_start(script, 2);
	pl_kube *k = client_for(s, NULL, NULL);
	pl_kube_status st;
	json_t *out = (json_t *)1, *items = (json_t *)1;
	char rv[64];

	(void)state;
	assert_int_equal(pl_kube_get(k, "/api/v1/namespaces/a/pods/p", &out, &st), -EBADMSG);
	assert_null(out);
	assert_string_equal(st.reason, "MalformedResponse");
	assert_non_null(strstr(st.message, "response to GET /api/v1/namespaces/a/pods/p is not JSON: line 1"));
	assert_int_equal(pl_kube_list(k, "/api/v1/pods", NULL, 10, &items, rv, sizeof(rv), &st), -EBADMSG);
	assert_null(items);
	assert_non_null(strstr(st.message, "LIST /api/v1/pods: the response is not a list"));
	pl_kube_free(k);
	rp_stop(s);
}

static void test_connection_refused(void **state)
{
	rp_server *s = rp_start(NULL, 0);
	char url[64];
	fake_clock fc = {0};
	pl_kube_config cfg = {0};
	pl_kube_status st;

	(void)state;
	snprintf(url, sizeof(url), "%s", rp_url(s));
	rp_stop(s);   /* nothing listens on the port any more */
	cfg.server = url;
	pl_kube *k = pl_kube_new(&cfg, 0, 0);
	pl_kube_clock c = {fake_now, fake_sleep, &fc};
	pl_kube_set_clock(k, &c);
	pl_kube_set_retry(k, 3, 100);
	/* Refused means nothing was sent: even a POST is retried, with the wait capped at 100 ms. */
	assert_int_equal(pl_kube_request(k, "POST", "/x", "application/json", "{}", 2, NULL, &st), -ECONNREFUSED);
	assert_int_equal(st.attempts, 3);
	assert_int_equal(st.http, 0);
	assert_true(strlen(st.message) > 0);
	assert_int_equal(fc.nsleeps, 2);
	assert_int_equal(fc.sleeps[1], 100 * INT64_C(1000000));
	pl_kube_free(k);
}

/* ---------- LIST ---------- */

static void test_list_pagination(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .body = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"100\",\"continue\":\"tok/1=\"},\"items\":[{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{\"name\":\"b\"}}]}"},
		{.status = 200, .body = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"100\",\"continue\":\"tok2\"},\"items\":[{\"metadata\":{\"name\":\"c\"}},{\"metadata\":{\"name\":\"d\"}}]}"},
		{.status = 200, .body = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"100\"},\"items\":[{\"metadata\":{\"name\":\"e\"}}]}"},
		{.status = 200, .body = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"7\"},\"items\":null}"},
	};
	rp_server *s = rp_start(script, 4);
	pl_kube *k = client_for(s, NULL, NULL);
	json_t *items = NULL;
	char rv[64];

	(void)state;
	assert_int_equal(pl_kube_list(k, "/api/v1/namespaces/a/pods", "labelSelector=app%3Dweb", 2, &items, rv, sizeof(rv), NULL), 0);
	assert_int_equal(json_array_size(items), 5);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(items, 4), "metadata"), "name")), "e");
	assert_string_equal(rv, "100");
	assert_string_equal(rp_req(s, 0)->target, "/api/v1/namespaces/a/pods?limit=2&labelSelector=app%3Dweb");
	assert_string_equal(rp_req(s, 1)->target, "/api/v1/namespaces/a/pods?limit=2&continue=tok%2F1%3D&labelSelector=app%3Dweb");
	assert_string_equal(rp_req(s, 2)->target, "/api/v1/namespaces/a/pods?limit=2&continue=tok2&labelSelector=app%3Dweb");
	json_decref(items);

	/* An empty list (items: null, as Go encodes it) is an empty array. */
	assert_int_equal(pl_kube_list(k, "/api/v1/pods", NULL, 0, &items, rv, sizeof(rv), NULL), 0);
	assert_int_equal(json_array_size(items), 0);
	assert_string_equal(rv, "7");
	assert_string_equal(rp_req(s, 3)->target, "/api/v1/pods?limit=500");
	json_decref(items);
	pl_kube_free(k);
	rp_stop(s);
}

static void test_list_410_on_continue_relists_once(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .body = "{\"metadata\":{\"resourceVersion\":\"100\",\"continue\":\"old\"},\"items\":[{\"metadata\":{\"name\":\"a\"}}]}"},
		{.status = 410, .body = STATUS(410, "Expired", "The provided continue parameter is too old")},
		{.status = 200, .body = "{\"metadata\":{\"resourceVersion\":\"250\",\"continue\":\"new\"},\"items\":[{\"metadata\":{\"name\":\"a\"}}]}"},
		{.status = 200, .body = "{\"metadata\":{\"resourceVersion\":\"250\"},\"items\":[{\"metadata\":{\"name\":\"b\"}}]}"},
		/* second list: expires twice -> given up */
		{.status = 200, .body = "{\"metadata\":{\"resourceVersion\":\"300\",\"continue\":\"c1\"},\"items\":[]}"},
		{.status = 410, .body = STATUS(410, "Expired", "too old")},
		{.status = 200, .body = "{\"metadata\":{\"resourceVersion\":\"301\",\"continue\":\"c2\"},\"items\":[]}"},
		{.status = 410, .body = STATUS(410, "Expired", "too old again")},
	};
	rp_server *s = rp_start(script, 8);
	pl_kube *k = client_for(s, NULL, NULL);
	json_t *items = NULL;
	pl_kube_status st;
	char rv[64];

	(void)state;
	assert_int_equal(pl_kube_list(k, "/api/v1/pods", NULL, 1, &items, rv, sizeof(rv), &st), 0);
	assert_int_equal(json_array_size(items), 2);   /* nothing duplicated from the expired snapshot */
	assert_string_equal(rv, "250");
	assert_string_equal(rp_req(s, 2)->target, "/api/v1/pods?limit=1");
	json_decref(items);

	assert_int_equal(pl_kube_list(k, "/api/v1/pods", NULL, 1, &items, rv, sizeof(rv), &st), -ERANGE);
	assert_null(items);
	assert_string_equal(rv, "");
	assert_int_equal(st.http, 410);
	assert_string_equal(st.reason, "Expired");
	assert_string_equal(st.message, "too old again");
	pl_kube_free(k);
	rp_stop(s);
}

/* ---------- writes ---------- */

static void test_apply_delete_event(void **state)
{
	static const rp_response script[] = {
		{.status = 200, .body = "{\"kind\":\"TrafficPolicy\"}"},
		{.status = 200, .body = "{\"kind\":\"Status\",\"status\":\"Success\"}"},
		{.status = 409, .body = STATUS(409, "Conflict", "Precondition failed: UID in precondition: u1, UID in object meta: u2")},
		{.status = 201, .body = "{\"kind\":\"Event\"}"},
		{.status = 201, .body = "{\"kind\":\"Event\"}"},
	};
	rp_server *s = rp_start(script, 5);
	pl_kube *k = client_for(s, NULL, "t");
	pl_kube_status st;
	json_t *status = json_pack("{s:s, s:s, s:{s:s}, s:{s:[{s:s, s:s}]}}", "apiVersion", "pillion.dev/v1alpha1", "kind",
				   "TrafficPolicy", "metadata", "name", "web", "status", "conditions", "type",
				   "Accepted", "status", "True");
	json_t *pod = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "apiVersion", "v1", "kind", "Pod", "metadata", "name",
				"web-1", "namespace", "shop", "uid", "u-1");
	char path[256];

	(void)state;
	assert_int_equal(pl_kube_path(path, sizeof(path), "pillion.dev", "v1alpha1", "shop", "trafficpolicies", "web", "status"), 0);
	assert_int_equal(pl_kube_apply(k, path, status, "pillion-operator", true, NULL, &st), 0);
	assert_string_equal(rp_req(s, 0)->method, "PATCH");
	assert_string_equal(rp_req(s, 0)->target,
			    "/apis/pillion.dev/v1alpha1/namespaces/shop/trafficpolicies/web/status?fieldManager=pillion-operator&force=true");
	assert_string_equal(rp_req(s, 0)->content_type, "application/apply-patch+yaml");
	/* Canonical: sorted keys, no whitespace. */
	assert_string_equal(rp_req(s, 0)->body,
			    "{\"apiVersion\":\"pillion.dev/v1alpha1\",\"kind\":\"TrafficPolicy\",\"metadata\":{\"name\":\"web\"},"
			    "\"status\":{\"conditions\":[{\"status\":\"True\",\"type\":\"Accepted\"}]}}");

	assert_int_equal(pl_kube_delete(k, "/api/v1/namespaces/shop/configmaps/pillion-1", NULL, &st), 0);
	assert_string_equal(rp_req(s, 1)->method, "DELETE");
	assert_string_equal(rp_req(s, 1)->body, "");
	assert_int_equal(pl_kube_delete(k, "/api/v1/namespaces/shop/configmaps/pillion-1", "u1", &st), -ESTALE);
	assert_string_equal(rp_req(s, 2)->body,
			    "{\"apiVersion\":\"v1\",\"kind\":\"DeleteOptions\",\"preconditions\":{\"uid\":\"u1\"}}");
	assert_non_null(strstr(st.message, "Precondition failed"));

	assert_int_equal(pl_kube_event(k, pod, "Warning", "CertificateFailed", "could not issue", "pillion-operator", &st), 0);
	assert_int_equal(st.http, 201);
	assert_string_equal(rp_req(s, 3)->method, "POST");
	assert_string_equal(rp_req(s, 3)->target, "/api/v1/namespaces/shop/events");
	json_t *ev = json_loads(rp_req(s, 3)->body, 0, NULL);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "type")), "Warning");
	assert_string_equal(json_string_value(json_object_get(ev, "reason")), "CertificateFailed");
	assert_string_equal(json_string_value(json_object_get(ev, "message")), "could not issue");
	json_t *ref = json_object_get(ev, "involvedObject");
	assert_string_equal(json_string_value(json_object_get(ref, "kind")), "Pod");
	assert_string_equal(json_string_value(json_object_get(ref, "uid")), "u-1");
	assert_string_equal(json_string_value(json_object_get(ref, "namespace")), "shop");
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "source"), "component")), "pillion-operator");
	assert_int_equal(strncmp(json_string_value(json_object_get(json_object_get(ev, "metadata"), "name")), "web-1.", 6), 0);
	json_decref(ev);

	/* A long message is cut at 1024 bytes, never inside a UTF-8 sequence. */
	char longmsg[1100];
	memset(longmsg, 'x', 1023);
	snprintf(longmsg + 1023, sizeof(longmsg) - 1023, "\xc3\xa9 tail");
	assert_int_equal(pl_kube_event(k, pod, "Normal", "Long", longmsg, NULL, &st), 0);
	ev = json_loads(rp_req(s, 4)->body, 0, NULL);
	assert_int_equal(json_string_length(json_object_get(ev, "message")), 1023);
	json_decref(ev);
	json_decref(status);
	json_decref(pod);
	pl_kube_free(k);
	rp_stop(s);
}

static void test_path(void **state)
{
	char p[128];

	(void)state;
	assert_int_equal(pl_kube_path(p, sizeof(p), NULL, "v1", "a", "pods", NULL, NULL), 0);
	assert_string_equal(p, "/api/v1/namespaces/a/pods");
	assert_int_equal(pl_kube_path(p, sizeof(p), "", "v1", NULL, "namespaces", "a", NULL), 0);
	assert_string_equal(p, "/api/v1/namespaces/a");
	assert_int_equal(pl_kube_path(p, sizeof(p), "coordination.k8s.io", "v1", "ps", "leases", "op", NULL), 0);
	assert_string_equal(p, "/apis/coordination.k8s.io/v1/namespaces/ps/leases/op");
	assert_int_equal(pl_kube_path(p, sizeof(p), NULL, "v1", "a", "pods", "x/y", NULL), -EINVAL);
	assert_int_equal(pl_kube_path(p, sizeof(p), NULL, "v1", "", "pods", NULL, NULL), -EINVAL);
	assert_int_equal(pl_kube_path(p, sizeof(p), NULL, "v1", "a", "pods", NULL, "status"), -EINVAL);
	assert_int_equal(pl_kube_path(p, sizeof(p), NULL, "v1", "a", "pods", "n?x=1", NULL), -EINVAL);
	assert_int_equal(pl_kube_path(p, 10, NULL, "v1", "a", "pods", NULL, NULL), -ENAMETOOLONG);
	assert_int_equal(pl_kube_errno(409, "AlreadyExists"), -EEXIST);
	assert_int_equal(pl_kube_errno(409, "Conflict"), -ESTALE);
	assert_int_equal(pl_kube_errno(410, "Expired"), -ERANGE);
	assert_int_equal(pl_kube_errno(502, NULL), -EIO);
	assert_int_equal(pl_kube_errno(418, NULL), -EPROTO);
}

/* ---------- rate limit ---------- */

static void test_rate_limit_burst_then_throttle(void **state)
{
	static rp_response script[12];
	fake_clock fc = {.now = 1000};
	pl_kube_config cfg = {0};

	(void)state;
	for (int i = 0; i < 12; i++)
		script[i] = (rp_response){.status = 200, .body = "{}"};
	rp_server *s = rp_start(script, 12);
	cfg.server = (char *)rp_url(s);
	pl_kube *k = pl_kube_new(&cfg, 10, 3);   /* 10 qps, burst 3 */
	pl_kube_clock c = {fake_now, fake_sleep, &fc};
	pl_kube_set_clock(k, &c);

	for (int i = 0; i < 3; i++)
		assert_int_equal(pl_kube_get(k, "/x", NULL, NULL), 0);
	assert_int_equal(fc.nsleeps, 0);   /* the burst goes through */
	for (int i = 0; i < 4; i++)
		assert_int_equal(pl_kube_get(k, "/x", NULL, NULL), 0);
	assert_int_equal(fc.nsleeps, 4);   /* then one request per 100 ms */
	for (int i = 0; i < 4; i++)
		assert_in_range(fc.sleeps[i], 99 * INT64_C(1000000), 101 * INT64_C(1000000));

	/* An idle second refills the bucket, up to the burst and no further. */
	fc.now += 10 * INT64_C(1000000000);
	fc.nsleeps = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pl_kube_get(k, "/x", NULL, NULL), 0);
	assert_int_equal(fc.nsleeps, 0);
	assert_int_equal(pl_kube_get(k, "/x", NULL, NULL), 0);
	assert_int_equal(fc.nsleeps, 1);
	pl_kube_free(k);
	rp_stop(s);
}

typedef struct obs_seen {
	int n;
	char verbs[4][8];
	long codes[4];
} obs_seen;

static void observe(void *ctx, const char *verb, long code, double secs)
{
	obs_seen *seen = ctx;

	(void)secs;
	if (seen->n < 4) {
		snprintf(seen->verbs[seen->n], sizeof(seen->verbs[0]), "%s", verb);
		seen->codes[seen->n] = code;
	}
	seen->n++;
}

static void test_observer(void **state)
{
	static const rp_response script[] = {
		{.status = 500, .body = "{}"}, {.status = 200, .body = "{\"items\":[]}"},
	};
	rp_server *s = rp_start(script, 2);
	fake_clock fc = {0};
	pl_kube *k = client_for(s, &fc, NULL);
	obs_seen seen = {0};
	json_t *items;
	char rv[8];

	(void)state;
	pl_kube_set_observer(k, observe, &seen);
	assert_int_equal(pl_kube_list(k, "/api/v1/pods", NULL, 0, &items, rv, sizeof(rv), NULL), 0);
	json_decref(items);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.verbs[0], "LIST");
	assert_int_equal(seen.codes[0], 500);
	assert_int_equal(seen.codes[1], 200);
	pl_kube_free(k);
	rp_stop(s);
}

/* An observer named in the config reaches every client made from it (the reflectors make their own). */
static void test_observer_from_config(void **state)
{
	static const rp_response script[] = {{.status = 200, .body = "{\"kind\":\"Pod\"}"}};
	rp_server *s = rp_start(script, 1);
	pl_kube_config cfg = {0};
	obs_seen seen = {0};
	pl_kube_status st;
	json_t *out = NULL;

	(void)state;
	cfg.server = (char *)rp_url(s);
	cfg.observer = observe;
	cfg.observer_ctx = &seen;
	pl_kube *k = pl_kube_new(&cfg, 1000, 1000);
	assert_non_null(k);
	assert_int_equal(pl_kube_get(k, "/api/v1/namespaces/a/pods/p", &out, &st), 0);
	json_decref(out);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.verbs[0], "GET");
	assert_int_equal(seen.codes[0], 200);
	pl_kube_free(k);
	rp_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_and_headers),
		cmocka_unit_test(test_token_file_reread),
		cmocka_unit_test(test_conflict_status),
		cmocka_unit_test(test_429_retry_after),
		cmocka_unit_test(test_500_retried_for_get_only),
		cmocka_unit_test(test_non_status_error_body),
		cmocka_unit_test(test_malformed_body),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_list_pagination),
		cmocka_unit_test(test_list_410_on_continue_relists_once),
		cmocka_unit_test(test_apply_delete_event),
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_rate_limit_burst_then_throttle),
		cmocka_unit_test(test_observer),
		cmocka_unit_test(test_observer_from_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
