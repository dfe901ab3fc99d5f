#include "check_eval.h"

#include <stdio.h>
#include <string.h>

#include "json/json.h"
#include "model/model.h"

static long long int_or(const json_t *o, const char *key, long long dflt)
{
	const json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

bool check_deployment_serves(const json_t *d, char *msg, size_t size)
{
	const json_t *status = json_object_get(d, "status"), *cond;
	const char *avail = NULL, *why = NULL;
	long long want = int_or(json_object_get(d, "spec"), "replicas", 1);
	long long ready = int_or(status, "readyReplicas", 0);
	size_t i;

	json_array_foreach(json_object_get(status, "conditions"), i, cond) {
		const char *type = pl_json_get_str(cond, "type");
		if (type && strcmp(type, "Available") == 0) {
			avail = pl_json_get_str(cond, "status");
			why = pl_json_get_str(cond, "message");
		}
	}
	if (want == 0) {
		snprintf(msg, size, "scaled to 0 replicas: nothing serves");
		return false;
	}
	if (ready < 1) {
		snprintf(msg, size, "0/%lld replicas ready", want);
		return false;
	}
	if (!avail || strcmp(avail, "True") != 0) {
		snprintf(msg, size, "not Available (%lld/%lld replicas ready)%s%s", ready, want, why ? ": " : "",
			 why ? why : "");
		return false;
	}
	snprintf(msg, size, "Available, %lld/%lld replicas ready", ready, want);
	return true;
}

void check_endpoints_count(const json_t *ep, int *ready, int *not_ready)
{
	const json_t *subset;
	size_t i;

	*ready = *not_ready = 0;
	json_array_foreach(json_object_get(ep, "subsets"), i, subset) {
		*ready += (int)json_array_size(json_object_get(subset, "addresses"));
		*not_ready += (int)json_array_size(json_object_get(subset, "notReadyAddresses"));
	}
}

const char *const proxy_sync_names[3] = {"SYNCED", "STALE", "NOT READY"};

enum proxy_sync check_proxy_sync(const json_t *status, const char *want_config, const char *want_mesh,
				 const char *want_outbound, char *msg, size_t size)
{
	char a[16], b[16];

	if (!json_is_object(status)) {
		snprintf(msg, size, "the proxy did not answer GET /status");
		return PROXY_NOT_READY;
	}
	const char *cfg = pl_json_get_str(json_object_get(status, "config"), "hash");
	const char *mesh = pl_json_get_str(json_object_get(status, "mesh"), "hash");
	const char *err = pl_json_get_str(json_object_get(status, "config"), "lastError");
	if (!json_is_true(json_object_get(status, "ready"))) {
		const char *why = pl_json_get_str(status, "reason");
		snprintf(msg, size, "not ready: %s", why ? why : "?");
		return PROXY_NOT_READY;
	}
	if (want_config && *want_config && (!cfg || strcmp(cfg, want_config) != 0)) {
		snprintf(msg, size, "runs config %s, the operator wrote %s%s%s", pl_short_hash(cfg, a),
			 pl_short_hash(want_config, b),
			 err && *err ? "; it refused the new one: " : "", err && *err ? err : "");
		return PROXY_STALE;
	}
	/* No "mesh.hash" key at all: an older proxy's /config, which does not report the directory's hash. */
	bool reports_mesh = json_object_get(json_object_get(status, "mesh"), "hash") != NULL;
	if (want_mesh && *want_mesh && reports_mesh && (!mesh || strcmp(mesh, want_mesh) != 0)) {
		snprintf(msg, size, "runs mesh directory %s, the operator wrote %s", pl_short_hash(mesh, a),
			 pl_short_hash(want_mesh, b));
		return PROXY_STALE;
	}
	const json_t *ob = json_object_get(status, "outbound");
	const char *src = pl_json_get_str(ob, "source"), *oh = pl_json_get_str(ob, "hash");
	if (want_outbound && *want_outbound && src && strcmp(src, "mesh") == 0 && (!oh || strcmp(oh, want_outbound) != 0)) {
		snprintf(msg, size, "runs client-side policies %s, the operator wrote %s", pl_short_hash(oh, a),
			 pl_short_hash(want_outbound, b));
		return PROXY_STALE;
	}
	snprintf(msg, size, "runs what the operator wrote");
	return PROXY_SYNCED;
}
