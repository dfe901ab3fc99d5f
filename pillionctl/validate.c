/* pillionctl validate: checks every TrafficPolicy and MeshIdentity in the inputs. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "inputs.h"

/* When the inputs hold Services, a policy whose target is not among them is most likely a typo
 * or a wrong namespace: say so (a warning: the Service may live elsewhere, as in a Helm chart). */
static int warn_missing_targets(const pl_inputs *in)
{
	int warnings = 0;
	bool any = false;

	for (size_t i = 0; i < in->n && !any; i++)
		any = in->v[i].type == PL_ENTRY_OBJECT && in->v[i].obj.kind == PL_KIND_SERVICE && in->v[i].obj.valid;
	if (!any)
		return 0;
	for (size_t i = 0; i < in->n; i++) {
		const pl_entry *e = &in->v[i];
		const char *elsewhere = NULL;
		bool found = false;

		if (e->type != PL_ENTRY_OBJECT || e->obj.kind != PL_KIND_TRAFFIC_POLICY || !e->obj.valid || e->superseded)
			continue;
		const pl_traffic_policy *p = e->obj.u.policy;
		for (size_t j = 0; j < in->n && !found; j++) {
			const pl_entry *s = &in->v[j];
			if (s->type != PL_ENTRY_OBJECT || s->obj.kind != PL_KIND_SERVICE || !s->obj.valid ||
			    strcmp(s->obj.name, p->target_name) != 0)
				continue;
			if (strcmp(s->obj.namespace, p->meta.namespace) == 0)
				found = true;
			else if (!elsewhere)
				elsewhere = s->obj.namespace;
		}
		if (found)
			continue;
		if (elsewhere)
			printf("%s:%d: warning: TrafficPolicy %s/%s: spec.targetRef.name: Service \"%s\" not found in "
			       "namespace %s (the inputs hold one in namespace %s; a policy governs a Service of its "
			       "own namespace)\n", e->path, e->doc, p->meta.namespace, p->meta.name, p->target_name,
			       p->meta.namespace, elsewhere);
		else
			printf("%s:%d: warning: TrafficPolicy %s/%s: spec.targetRef.name: Service \"%s\" not found in "
			       "namespace %s among the inputs' Services\n", e->path, e->doc, p->meta.namespace,
			       p->meta.name, p->target_name, p->meta.namespace);
		warnings++;
	}
	return warnings;
}

static const char *kind_label(const pl_entry *e)
{
	return e->obj.kind_name[0] ? e->obj.kind_name : "object without kind";
}

int cmd_validate(int argc, char **argv)
{
	static const struct option opts[] = {
		{"filename", required_argument, NULL, 'f'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	pl_inputs in;
	int c, nfiles = 0, invalid = 0, valid = 0, skipped = 0;
	bool quiet = false;

	pl_inputs_init(&in);
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			pl_inputs_add(&in, optarg, stderr);
			nfiles++;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			printf("usage: pillionctl validate [-q] -f PATH [-f PATH]...\n"
			       "  PATH is a file, a directory (searched for *.yaml, *.yml, *.json) or - for stdin.\n"
			       "  Exit 0: all valid; 1: some invalid; 2: usage or I/O error.\n");
			pl_inputs_free(&in);
			return 0;
		default:
			pl_inputs_free(&in);
			return 2;
		}
	}
	if (nfiles == 0 || optind < argc) {
		fprintf(stderr, "usage: pillionctl validate [-q] -f PATH [-f PATH]...\n");
		pl_inputs_free(&in);
		return 2;
	}
	pl_inputs_link_duplicates(&in);
	for (size_t i = 0; i < in.n; i++) {
		const pl_entry *e = &in.v[i];
		switch (e->type) {
		case PL_ENTRY_SYNTAX:
			printf("%s:%d: %s\n", e->path, e->doc, e->syntax);
			invalid++;
			break;
		case PL_ENTRY_NOT_OBJECT:
			if (!quiet)
				fprintf(stderr, "%s:%d: note: skipping a document that is not an object\n", e->path, e->doc);
			skipped++;
			break;
		case PL_ENTRY_OBJECT:
			if (e->obj.kind != PL_KIND_TRAFFIC_POLICY && e->obj.kind != PL_KIND_MESH_IDENTITY &&
			    e->obj.kind != PL_KIND_PILLION_UNKNOWN) {
				if (!quiet)
					fprintf(stderr, "%s:%d: note: skipping %s %s %s/%s (not a Pillion kind)\n",
						e->path, e->doc, e->api_version[0] ? e->api_version : "(no apiVersion)",
						kind_label(e), e->obj.namespace, e->obj.name);
				skipped++;
				break;
			}
			/* kubectl apply would silently keep only the last of the two; the object's own errors
			 * are reported all the same, so that a duplicate never hides them. */
			if (e->earlier)
				printf("%s:%d: %s %s/%s: metadata.name: duplicate object, also at %s:%d\n", e->path, e->doc,
				       kind_label(e), e->obj.namespace, e->obj.name, e->earlier->path, e->earlier->doc);
			if (e->obj.valid && !e->earlier) {
				valid++;
				break;
			}
			invalid++;
			for (size_t j = 0; j < e->obj.errors.n; j++)
				printf("%s:%d: %s %s/%s: %s: %s\n", e->path, e->doc, kind_label(e), e->obj.namespace,
				       e->obj.name, e->obj.errors.v[j].path, e->obj.errors.v[j].msg);
			break;
		}
	}
	int warnings = warn_missing_targets(&in);
	if (!quiet)
		fprintf(stderr, "%d valid, %d invalid, %d skipped%s%.0d%s\n", valid, invalid, skipped,
			warnings ? ", " : "", warnings, warnings ? " warning(s)" : "");
	int rc = in.io_errors ? 2 : invalid ? 1 : 0;
	pl_inputs_free(&in);
	return rc;
}
