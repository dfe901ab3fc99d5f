#include "check_eval.h"

#include <stdio.h>
#include <string.h>

#include "json/json.h"

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
