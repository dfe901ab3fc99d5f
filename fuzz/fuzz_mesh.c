/* libFuzzer target: bytes -> JSON -> mesh directory -> lookups of every listed destination, and a hashed round trip. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "json/json.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The first Service listing addr:port (addresses are canonical, so text equality is address equality). */
static const pl_mesh_service *first_service(const pl_mesh_dir *dir, const char *addr, int port)
{
	for (size_t i = 0; i < dir->nservices; i++) {
		const pl_mesh_service *s = &dir->services[i];
		for (size_t j = 0; j < s->addresses.n; j++)
			for (size_t k = 0; k < s->nports; k++)
				if (s->ports[k] == port && strcmp(s->addresses.v[j], addr) == 0)
					return s;
	}
	return NULL;
}

/* Every listed destination is found, with the identities of the first entry that lists it. Bounded work. */
static void check_lookups(const pl_mesh_dir *dir)
{
	size_t n, budget = 64;

	for (size_t i = 0; i < dir->nservices && budget; i++) {
		const pl_mesh_service *s = &dir->services[i];
		for (size_t j = 0; j < s->addresses.n && budget; j++)
			for (size_t k = 0; k < s->nports && budget; k++, budget--) {
				const pl_mesh_service *want = first_service(dir, s->addresses.v[j], s->ports[k]);
				const char *const *ids = pl_mesh_dir_lookup(dir, s->addresses.v[j], s->ports[k], &n);
				if (!want) {
					fprintf(stderr, "service %s lists %s:%d but does not\n", s->name, s->addresses.v[j],
						s->ports[k]);
					abort();
				}
				if (n != want->identities.n || (n && ids != want->identities.v)) {
					fprintf(stderr, "service %s %s:%d: %zu identities, want %zu\n", s->name,
						s->addresses.v[j], s->ports[k], n, want->identities.n);
					abort();
				}
			}
	}
	/* Port 0 is never a Service port: a pod address always answers with one identity. */
	for (size_t i = 0; i < dir->npods && budget; i++) {
		const pl_mesh_pod *p = &dir->pods[i];
		for (size_t j = 0; j < p->addresses.n && budget; j++, budget--) {
			const char *const *ids = pl_mesh_dir_lookup(dir, p->addresses.v[j], 0, &n);
			if (!ids || n != 1 || strncmp(*ids, "spiffe://", 9) != 0) {
				fprintf(stderr, "pod %s %s not found\n", p->name, p->addresses.v[j]);
				abort();
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pl_docs docs;
	pl_arena arena;

	pl_json_load((const char *)data, size, &docs);
	pl_arena_init(&arena);
	for (size_t i = 0; i < docs.n; i++) {
		pl_mesh_dir dir;
		pl_errors errs = {0};
		if (!docs.v[i].root)
			continue;
		bool ok = pl_mesh_dir_decode(&arena, docs.v[i].root, &dir, &errs);
		if (ok != (errs.n == 0)) {
			fprintf(stderr, "valid=%d with %zu errors\n", ok, errs.n);
			abort();
		}
		for (size_t e = 0; e < errs.n; e++)
			if (strchr(errs.v[e].path, '\n') || strchr(errs.v[e].msg, '\n'))
				abort();
		if (ok) {
			check_lookups(&dir);
			/* Property: a valid directory with its content hash written in reads back valid. */
			char hash[80];
			json_t *copy = json_deep_copy(docs.v[i].root);
			pl_proxy_config_hash(copy, hash);
			json_object_set_new(copy, "hash", json_string(hash));
			pl_mesh_dir again;
			pl_errors errs2 = {0};
			if (!pl_mesh_dir_decode(&arena, copy, &again, &errs2)) {
				fprintf(stderr, "hashed directory refused: %s: %s\n", errs2.v[0].path, errs2.v[0].msg);
				abort();
			}
			pl_mesh_dir_free(&again);
			json_decref(copy);
		}
		pl_mesh_dir_free(&dir);
	}
	pl_arena_free(&arena);
	pl_docs_free(&docs);
	return 0;
}
