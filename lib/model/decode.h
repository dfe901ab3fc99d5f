/* Typed, path-tracking reads of JSON fields that collect every validation error (model-internal). */
#ifndef PILLION_MODEL_DECODE_H
#define PILLION_MODEL_DECODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "model/model-t.h"

typedef struct pl_dec {
	pl_arena *arena;
	pl_errors *errs;
	char path[512];
	size_t len;
} pl_dec;

typedef bool (*pl_str_check)(const char *s);

void dec_init(pl_dec *d, pl_arena *a, pl_errors *errs);
size_t dec_enter(pl_dec *d, const char *key);
size_t dec_enter_index(pl_dec *d, size_t i);
/* A map key, written as Kubernetes does: labels[app.kubernetes.io/name]. */
size_t dec_enter_key(pl_dec *d, const char *key);
void dec_leave(pl_dec *d, size_t saved);
void dec_error(pl_dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dec_error_at(pl_dec *d, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* True when key is present and not null (the API server treats a null optional field as absent). */
bool dec_has(const json_t *obj, const char *key);
/* Reports every key of obj not in known (NULL-terminated) as an unknown field. */
void dec_known_keys(pl_dec *d, const json_t *obj, const char *const *known);
/* The known name closest to key (a typo or wrong case), or NULL when none is close. */
const char *dec_closest_key(const char *key, const char *const *known);
/*
 * Field readers. Each returns true when the field is present (not null) and valid,
 * leaves *out untouched otherwise, and records "is required" only when required.
 */
bool dec_object(pl_dec *d, const json_t *obj, const char *key, bool required, json_t **out);
bool dec_list(pl_dec *d, const json_t *obj, const char *key, bool required, size_t min, size_t max,
	      json_t **out);
bool dec_string(pl_dec *d, const json_t *obj, const char *key, bool required, size_t maxlen,
		pl_str_check check, const char *what, const char **out);
bool dec_int(pl_dec *d, const json_t *obj, const char *key, bool required, int min, int max, int *out);
bool dec_int64(pl_dec *d, const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
	       int64_t *out);
bool dec_bool(pl_dec *d, const json_t *obj, const char *key, bool required, bool *out);
/* An integer or a real number in [min, max]. */
bool dec_number(pl_dec *d, const json_t *obj, const char *key, bool required, double min, double max,
		double *out);
/* min/max of 0 mean unchecked (the range rules marked "operator" in the reference). */
bool dec_duration(pl_dec *d, const json_t *obj, const char *key, bool required, int64_t min_ns,
		  int64_t max_ns, int64_t *out);
bool dec_enum(pl_dec *d, const json_t *obj, const char *key, bool required, const char *const *names,
	      int *out);
/* For list items already entered: true when v is an object, else records "must be an object, got ...". */
bool dec_is_object(pl_dec *d, const json_t *v);

/* The documents the operator renders for the proxy (ProxyConfig, MeshDirectory,
 * OutboundPolicies); defined in proxy_config.c. Their start: an object, only known keys,
 * apiVersion PL_API_VERSION, kind one of kinds; false (the error recorded) when not an object. */
bool dec_rendered_doc(pl_dec *d, const json_t *doc, const char *const *known, const char *const *kinds);
/* Their "hash", checked against the content (pl_proxy_config_hash): required, or optional (*out
 * left as it is when absent); a mismatch is an error at "hash" ending with because. */
void dec_rendered_hash(pl_dec *d, const json_t *doc, bool required, const char **out, const char *because);
/* Same checks on a string list element already entered with dec_enter_index. */
bool dec_string_value(pl_dec *d, const json_t *v, size_t maxlen, pl_str_check check, const char *what,
		      const char **out);
bool dec_enum_value(pl_dec *d, const json_t *v, const char *const *names, int *out);

/* Pattern checks, each the C twin of a CRD pattern. */
bool pl_is_dns1123_label(const char *s);
bool pl_is_dns1035_label(const char *s);
bool pl_is_dns1123_subdomain(const char *s);
bool pl_is_label_key(const char *s);
bool pl_is_label_value(const char *s);
/* A pod id (annotation pillion.dev/id): a DNS-1123 label of at most PL_POD_ID_MAX, or "" before injection. */
#define PL_POD_ID_MAX 48
bool pl_is_pod_id(const char *s);

#endif
