/* Reading policy inputs: files, directories and stdin, as YAML or JSON, into decoded objects. */
#ifndef PILLIONCTL_INPUTS_H
#define PILLIONCTL_INPUTS_H

#include <stdio.h>

#include "base/arena.h"
#include "json/json.h"
#include "model/model.h"

#define PL_INPUT_MAX_BYTES (64u << 20)

typedef enum pl_entry_type {
	PL_ENTRY_OBJECT,     /* a decoded object (valid or not) */
	PL_ENTRY_SYNTAX,     /* the file (or a document of it) did not parse */
	PL_ENTRY_NOT_OBJECT, /* a document that is not a Kubernetes object */
} pl_entry_type;

typedef struct pl_entry {
	pl_entry_type type;
	const char *path;
	int doc;
	const char *api_version;  /* as written, "" when absent */
	const char *syntax;       /* PL_ENTRY_SYNTAX: "yaml: line L column C: ..." */
	pl_object obj;
	const struct pl_entry *earlier;  /* the same kind/namespace/name seen before, or NULL */
	bool superseded;          /* a later entry has the same kind/namespace/name */
	const char *template_of;  /* a Pod made from this workload's pod template: "Deployment shop/web" */
} pl_entry;

typedef struct pl_inputs {
	pl_arena arena;           /* owns entries, their objects and strings */
	size_t n, cap;
	pl_entry *v;
	int io_errors;
	bool templates_as_pods;   /* a workload (Deployment, Job, ...) also adds a Pod made of its template */
} pl_inputs;

/* Called with each file's documents (json: parsed as JSON rather than YAML). */
typedef void (*pl_docs_fn)(void *ctx, const char *path, const pl_docs *docs, bool json);
/* Reads a file, "-" (stdin) or a directory (recursively, in name order: *.yaml, *.yml, *.json;
 * hidden entries and symlinked directories skipped): *.json and stdin starting with { or [ as
 * JSON, the rest as YAML. I/O errors are printed to err and counted in *io_errors. */
void pl_read_inputs(const char *path, FILE *err, int *io_errors, pl_docs_fn each, void *ctx);

void pl_inputs_init(pl_inputs *in);
void pl_inputs_free(pl_inputs *in);
/* Adds a file, a directory (recursively: *.yaml, *.yml, *.json, sorted) or "-". I/O errors are printed to err. */
void pl_inputs_add(pl_inputs *in, const char *path, FILE *err);
/* Links objects that appear more than once (same kind, namespace and name), as kubectl apply keeps the last. */
void pl_inputs_link_duplicates(pl_inputs *in);

int cmd_validate(int argc, char **argv);
int cmd_render(int argc, char **argv);

#endif
