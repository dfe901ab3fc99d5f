/* pillionctl render: the proxy config one pod would get, or a namespace's mesh directory, from the given objects. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "json/json.h"

static const char usage[] = "usage: pillionctl render --pod POD.yaml -f PATH [-f PATH]...     (a Pod, or a workload: its template)\n"
			    "       pillionctl render --mesh NAMESPACE -f PATH [-f PATH]...   (Pods, Services, MeshIdentities)\n"
			    "       pillionctl render --outbound NAMESPACE -f PATH [-f PATH]...   (TrafficPolicies: the\n"
			    "         client-side policies of NAMESPACE, outbound.json of pillion-mesh)\n";

int cmd_render(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pod", required_argument, NULL, 'p'},
		{"mesh", required_argument, NULL, 'm'},
		{"outbound", required_argument, NULL, 'o'},
		{"filename", required_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	pl_inputs in, podin;
	const char *podpath = NULL, *mesh_ns = NULL, *out_ns = NULL;
	const pl_pod **pods = NULL;
	size_t npods = 0;
	int c, rc = 0;

	pl_inputs_init(&in);
	pl_inputs_init(&podin);
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:m:o:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			podpath = optarg;
			break;
		case 'm':
			mesh_ns = optarg;
			break;
		case 'o':
			out_ns = optarg;
			break;
		case 'f':
			pl_inputs_add(&in, optarg, stderr);
			break;
		case 'h':
			fputs(usage, stdout);
			goto out;
		default:
			rc = 2;
			goto out;
		}
	}
	if ((podpath != NULL) + (mesh_ns != NULL) + (out_ns != NULL) != 1 || optind < argc) {
		fputs(usage, stderr);
		rc = 2;
		goto out;
	}
	if (podpath) {
		podin.templates_as_pods = true; /* --pod deploy.yaml renders the pod its template makes */
		pl_inputs_add(&podin, podpath, stderr);
	}
	if (in.io_errors || podin.io_errors) {
		rc = 2;
		goto out;
	}
	const pl_pod *pod = NULL;
	const pl_entry *bad = NULL;
	bool from_template = false;
	if (mesh_ns || out_ns)
		goto index;
	/* A Pod wins over a workload's template; the first workload's template otherwise. */
	for (int pass = 0; pass < 2 && !pod; pass++) {
		for (size_t i = 0; i < podin.n && !pod; i++) {
			const pl_entry *e = &podin.v[i];
			if (e->type != PL_ENTRY_OBJECT || e->obj.kind != PL_KIND_POD || !e->template_of != !pass)
				continue;
			if (e->obj.valid) {
				pod = e->obj.u.pod;
				from_template = pass;
				if (pass)
					fprintf(stderr, "%s:%d: note: rendering the pod template of %s, as its pods get it "
							"(each with its own %s, which the webhook sets)\n",
						e->path, e->doc, e->template_of, PL_ANNOTATION_ID);
			} else if (!bad) {
				bad = e;
			}
		}
	}
	if (!pod) {
		for (size_t i = 0; i < podin.n; i++) {
			const pl_entry *e = &podin.v[i];
			if (e->type == PL_ENTRY_OBJECT && e->obj.kind != PL_KIND_POD)
				fprintf(stderr, "%s:%d: %s %s %s/%s is not a Pod, nor a workload with a pod template "
						"(apps/v1 Deployment, StatefulSet, DaemonSet, ReplicaSet; batch/v1 Job, "
						"CronJob)\n",
					e->path, e->doc, e->api_version[0] ? e->api_version : "(no apiVersion)",
					e->obj.kind_name[0] ? e->obj.kind_name : "object without kind", e->obj.namespace,
					e->obj.name);
		}
		for (size_t j = 0; bad && j < bad->obj.errors.n; j++)
			fprintf(stderr, "%s:%d: Pod %s/%s: %s: %s\n", bad->path, bad->doc, bad->obj.namespace,
				bad->obj.name, bad->obj.errors.v[j].path, bad->obj.errors.v[j].msg);
		fprintf(stderr, "%s: no valid v1 Pod found\n", podpath);
		rc = 1;
		goto out;
	}
	if (!pod->id[0] && !from_template)
		fprintf(stderr, "%s: note: the pod has no %s annotation (the webhook sets it)\n", podpath,
			PL_ANNOTATION_ID);
index:;
	pl_index *ix = pl_index_new();
	pl_inputs_link_duplicates(&in);
	pods = calloc(in.n + 1, sizeof(*pods));
	if (!pods)
		abort();
	for (size_t i = 0; i < in.n; i++) {
		const pl_entry *e = &in.v[i];
		if (e->superseded) {
			fprintf(stderr, "%s:%d: note: %s %s/%s is defined again later; the later one is used\n", e->path,
				e->doc, e->obj.kind_name, e->obj.namespace, e->obj.name);
			continue;
		}
		if (e->type == PL_ENTRY_SYNTAX) {
			fprintf(stderr, "%s:%d: note: ignoring a document that did not parse: %s\n", e->path, e->doc,
				e->syntax);
			continue;
		}
		if (e->type != PL_ENTRY_OBJECT)
			continue;
		const pl_object *o = &e->obj;
		if (!o->valid && o->kind != PL_KIND_OTHER && o->kind != PL_KIND_POD) {
			fprintf(stderr, "%s:%d: note: ignoring invalid %s %s/%s (see pillionctl validate)\n", e->path,
				e->doc, o->kind_name, o->namespace, o->name);
			continue;
		}
		if (o->kind == PL_KIND_TRAFFIC_POLICY)
			pl_index_add_policy(ix, o->u.policy);
		else if (o->kind == PL_KIND_MESH_IDENTITY)
			pl_index_add_identity(ix, o->u.identity);
		else if (o->kind == PL_KIND_SERVICE)
			pl_index_add_service(ix, o->u.service);
		else if (o->kind == PL_KIND_POD && o->valid)
			pods[npods++] = o->u.pod;
	}
	if (mesh_ns) {
		/* The directory lists running pods by address: say why one of the namespace's is missing. */
		size_t in_ns = 0;
		for (size_t i = 0; i < npods; i++) {
			if (strcmp(pods[i]->meta.namespace, mesh_ns) != 0)
				continue;
			in_ns++;
			if (pods[i]->ips.n == 0) {
				fprintf(stderr, "note: pod %s/%s has no status.podIPs (not running, or its status was "
						"left out, as in a manifest): it is not in the directory; "
						"kubectl get pods -o yaml gives pods with their status\n",
					mesh_ns, pods[i]->meta.name);
			}
		}
		if (in_ns == 0)
			fprintf(stderr, "note: the inputs hold no pod of namespace %s: the directory lists no endpoint\n",
				mesh_ns);
	}
	json_t *cfg = mesh_ns  ? pl_render_mesh(ix, pods, npods, mesh_ns)
		      : out_ns ? pl_render_outbound(ix, out_ns)
			       : pl_render_pod(ix, pod);
	char *out = pl_json_dump_pretty(cfg);
	if (!out)
		abort();
	fputs(out, stdout);
	free(out);
	json_decref(cfg);
	pl_index_free(ix);
out:
	free(pods);
	pl_inputs_free(&in);
	pl_inputs_free(&podin);
	return rc;
}
