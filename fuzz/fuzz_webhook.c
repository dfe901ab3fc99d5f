/* libFuzzer target: bytes as a POST /mutate body -> the webhook's handler with real injection; every answer well-formed. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *why, const wh_reply *r)
{
	fprintf(stderr, "%s: status %d: %.*s\n", why, r->status, (int)(r->len > 2000 ? 2000 : r->len), r->body ? r->body : "");
	abort();
}

/* A 200 is an AdmissionReview answer: allowed, a uid string, and a patch only as base64 of a JSON array. */
static void check_answer(const wh_reply *r)
{
	json_error_t err;
	json_t *root = json_loadb(r->body, r->len, 0, &err);
	json_t *resp = json_object_get(root, "response");
	const char *patch = json_string_value(json_object_get(resp, "patch"));
	json_t *warnings = json_object_get(resp, "warnings");

	if (!json_is_object(resp))
		fail("answer without a response", r);
	if (!json_is_true(json_object_get(resp, "allowed")) || !json_is_string(json_object_get(resp, "uid")))
		fail("answer not allowed or without uid", r);
	if (warnings && (!json_is_array(warnings) || json_array_size(warnings) > WH_MAX_WARNINGS))
		fail("bad warnings", r);
	if (r->injected != (patch != NULL))
		fail("patch and decision disagree", r);
	if (patch) {
		size_t n;
		char *raw = pl_base64_decode(patch, &n);
		json_t *ops = raw ? json_loadb(raw, n, 0, &err) : NULL;
		if (!json_is_array(ops) || json_array_size(ops) == 0)
			fail("patch is not a JSON array", r);
		json_decref(ops);
		free(raw);
	}
	json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const wh_config cfg = {
		.proxy_image = "pillion/proxy:0.1.0",
		.init_image = "pillion/init:0.1.0",
		.mode = PL_SIDECAR_AUTO,
		.server_minor = 29,
		.max_body = 1 << 20,
	};
	wh_reply r;

	wh_review(&cfg, (const char *)data, size, "0123456789abcdef0123456789abcdef", &r);
	if (r.status == 200)
		check_answer(&r);
	else if (r.status != 400 || !r.body || r.len == 0)
		fail("neither 200 nor 400", &r);
	if (r.reason == NULL)
		fail("no reason", &r);
	wh_reply_clear(&r);
	return 0;
}
