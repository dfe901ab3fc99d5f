/* JSON and YAML documents as jansson values: loading streams, canonical dumps, short descriptions. */
#ifndef PILLION_JSON_JSON_H
#define PILLION_JSON_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Limits that keep hostile input bounded. */
#define PL_YAML_MAX_DEPTH 256
#define PL_YAML_MAX_NODES 1000000   /* nodes after alias expansion, per document */

typedef struct pl_doc {
	json_t *root;   /* owned by the pl_docs; NULL for an empty document */
	int index;      /* 1-based position in the stream */
	int line;       /* 1-based line where the document starts */
} pl_doc;

typedef struct pl_docs {
	pl_doc *v;
	size_t n;
	/* Set when parsing stopped early: the message names line and column. */
	bool failed;
	int error_doc;  /* the 1-based document the error is in */
	char error[320];
} pl_docs;

/*
 * Parses a YAML stream (any number of documents) into JSON values the way
 * Kubernetes does (YAML 1.1 booleans such as yes/no, anchors and aliases, merge
 * keys; duplicate keys, non-scalar keys, NaN/Inf and NUL characters are errors).
 * Documents before an error are kept in out. Returns 0, or -EINVAL with out->error set.
 */
int pl_yaml_load(const char *buf, size_t len, pl_docs *out);
/* Parses exactly one JSON document (duplicate keys rejected). Same contract as pl_yaml_load. */
int pl_json_load(const char *buf, size_t len, pl_docs *out);
void pl_docs_free(pl_docs *docs);

/* Canonical bytes: sorted keys, no whitespace. Caller frees with free(). NULL on failure. */
char *pl_json_dump_canonical(const json_t *v);
/* Sorted keys, two-space indent, trailing newline. Caller frees with free(). */
char *pl_json_dump_pretty(const json_t *v);
/*
 * One YAML document for v (no "---"): block style, two-space indent, keys in the object's order,
 * strings quoted exactly where plain text would read back as something else (yes, 017, null, "").
 * Identical input gives identical bytes. Caller frees with free(). NULL on failure.
 */
char *pl_yaml_dump(const json_t *v);
/* A short rendering of v for error messages ("\"abc\"", 12, true, an object, a list). */
void pl_json_describe(const json_t *v, char *out, size_t size);
/* Looks up a string member; NULL when absent or not a string. */
const char *pl_json_get_str(const json_t *obj, const char *key);

#endif
