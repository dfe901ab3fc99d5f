/* libFuzzer target: bytes -> YAML (or JSON) documents -> decoded, validated objects -> index -> a rendered pod -> read back. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/arena.h"
#include "json/json.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pl_docs docs;
	pl_arena arena;
	pl_index *ix = pl_index_new();
	const pl_pod *pod = NULL;

#ifdef FUZZ_JSON
	pl_json_load((const char *)data, size, &docs);
#else
	pl_yaml_load((const char *)data, size, &docs);
#endif
	pl_arena_init(&arena);
	for (size_t i = 0; i < docs.n; i++) {
		pl_object obj;
		if (!docs.v[i].root)
			continue;
		pl_object_decode(&arena, docs.v[i].root, &obj);
		if (!obj.valid)
			continue;
		switch (obj.kind) {
		case PL_KIND_TRAFFIC_POLICY: pl_index_add_policy(ix, obj.u.policy); break;
		case PL_KIND_MESH_IDENTITY: pl_index_add_identity(ix, obj.u.identity); break;
		case PL_KIND_SERVICE: pl_index_add_service(ix, obj.u.service); break;
		case PL_KIND_POD: if (!pod) pod = obj.u.pod; break;
		default: break;
		}
	}
	pl_pod fallback = {
		.meta = {.name = "fuzz", .namespace = "default", .created = INT64_MAX},
		.id = "00000000000000000000000000000000",
		.service_account = "default",
	};
	json_t *cfg = pl_render_pod(ix, pod ? pod : &fallback);
	/* Property: whatever the input, the rendered config reads back without an error. */
	pl_proxy_config pc;
	pl_errors errs = {0};
	if (!pl_proxy_config_decode(&arena, cfg, &pc, &errs)) {
		fprintf(stderr, "rendered config does not decode: %s: %s\n", errs.v[0].path, errs.v[0].msg);
		abort();
	}
	json_decref(cfg);
	pl_index_free(ix);
	pl_arena_free(&arena);
	pl_docs_free(&docs);
	return 0;
}
