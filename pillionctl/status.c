/* pillionctl status: each meshed pod's proxy, SYNCED / STALE / NOT READY, as istioctl proxy-status
 * shows Envoys: what it runs (its GET /status, through the API server's pods/proxy) against what the
 * operator wrote for it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_eval.h"
#include "json/json.h"
#include "kube/kube.h"
#include "model/inject.h"
#include "model/model.h"
#include "status.h"

#define STATUS_USAGE "usage: pillionctl status [--kubeconfig FILE] [--context NAME] [-n NAMESPACE]\n"

static const char *meta(const json_t *o, const char *k) { return pl_json_get_str(json_object_get(o, "metadata"), k); }

static const char *annot(const json_t *o, const char *k)
{
	return pl_json_get_str(json_object_get(json_object_get(o, "metadata"), "annotations"), k);
}

static void age(int64_t secs, char out[32])
{
	if (secs < 0)
		snprintf(out, 32, "-");
	else if (secs < 120)
		snprintf(out, 32, "%llds", (long long)secs);
	else if (secs < 7200)
		snprintf(out, 32, "%lldm", (long long)(secs / 60));
	else if (secs < 172800)
		snprintf(out, 32, "%lldh", (long long)(secs / 3600));
	else
		snprintf(out, 32, "%lldd", (long long)(secs / 86400));
}

/* The content hash the operator wrote on ConfigMap ns/name, or "". For pillion-mesh, the
 * directory's own hash (its content hash covers outbound.json too), and outbound.json's in out2. */
static void written_hash(pl_kube *k, const char *ns, const char *name, char *out, size_t len, char *out2, size_t len2)
{
	char path[600];
	json_t *cm = NULL;
	pl_kube_status st;

	pl_kube_path(path, sizeof(path), NULL, "v1", ns, "configmaps", name, NULL);
	snprintf(out, len, "%s", "");
	if (out2)
		snprintf(out2, len2, "%s", "");
	if (pl_kube_get(k, path, &cm, &st) == 0) {
		const char *h = out2 && annot(cm, PL_ANNOTATION_MESH_DIR_HASH) ? annot(cm, PL_ANNOTATION_MESH_DIR_HASH)
									   : annot(cm, "pillion.dev/content-hash");
		snprintf(out, len, "%s", h ? h : "");
		if (out2 && annot(cm, PL_ANNOTATION_OUTBOUND_HASH))
			snprintf(out2, len2, "%s", annot(cm, PL_ANNOTATION_OUTBOUND_HASH));
	}
	json_decref(cm);
}

static int show_namespace(pl_kube *k, pl_kube *kp, const char *ns, int *counts)
{
	char path[600], mesh[128] = "", outb[128] = "";
	json_t *items = NULL, *p;
	char rv[PL_KUBE_RV_MAX];
	pl_kube_status st;
	size_t i;

	pl_kube_path(path, sizeof(path), NULL, "v1", ns, "pods", NULL, NULL);
	if (pl_kube_list(k, path, NULL, 500, &items, rv, sizeof(rv), &st) != 0) {
		fprintf(stderr, "pillionctl status: list pods in %s: HTTP %ld %s\n", ns ? ns : "every namespace", st.http,
			st.message);
		return -1;
	}
	const char *last_ns = NULL;
	json_array_foreach(items, i, p) {
		const char *pns = meta(p, "namespace"), *name = meta(p, "name"), *id = annot(p, PL_ANNOTATION_ID);
		const char *phase = pl_json_get_str(json_object_get(p, "status"), "phase");
		if (!pns || !name || !id || !*id || (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))))
			continue;
		if (!last_ns || strcmp(last_ns, pns) != 0) {
			written_hash(k, pns, "pillion-mesh", mesh, sizeof(mesh), outb, sizeof(outb));
			last_ns = pns;
		}
		char cmname[128], want[128], sp[700], msg[600], c12[16], m12[16], ag[32];
		snprintf(cmname, sizeof(cmname), "pillion-%s", id);
		written_hash(k, pns, cmname, want, sizeof(want), NULL, 0);
		json_t *s = NULL;
		snprintf(sp, sizeof(sp), "/api/v1/namespaces/%s/pods/%s:%d/proxy/status", pns, name, PL_INJECT_ADMIN_PORT);
		if (pl_kube_get(kp, sp, &s, &st) != 0) {
			json_decref(s);
			s = NULL;
			/* A proxy of the previous release: no /status, but /config has the config and its hash
			 * (not the directory's, which then goes unchecked). */
			if (st.http == 404) {
				snprintf(sp, sizeof(sp), "/api/v1/namespaces/%s/pods/%s:%d/proxy/config", pns, name,
					 PL_INJECT_ADMIN_PORT);
				if (pl_kube_get(kp, sp, &s, &st) != 0) {
					json_decref(s);
					s = NULL;
				}
			}
		}
		enum proxy_sync v = check_proxy_sync(s, want, mesh, outb, msg, sizeof(msg));
		const char *ch = pl_json_get_str(json_object_get(s, "config"), "hash");
		const char *mh = pl_json_get_str(json_object_get(s, "mesh"), "hash");
		json_int_t at = json_integer_value(json_object_get(json_object_get(s, "config"), "loadedAt"));
		age(at > 0 ? (int64_t)time(NULL) - (int64_t)at : -1, ag);
		printf("%-20s %-40s %-10s %-13s %-13s %-6s %s\n", pns, name, proxy_sync_names[v], pl_short_hash(ch, c12),
		       pl_short_hash(mh, m12), ag, msg);
		counts[v]++;
		json_decref(s);
	}
	json_decref(items);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kubeconfig", required_argument, NULL, 'k'},
		{"context", required_argument, NULL, 'c'},
		{"namespace", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *kubeconfig = NULL, *context = NULL, *ns = NULL;
	pl_kube_config cfg;
	char err[512];
	int opt, counts[3] = {0, 0, 0};

	optind = 1;
	while ((opt = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'k': kubeconfig = optarg; break;
		case 'c': context = optarg; break;
		case 'n': ns = optarg; break;
		case 'h':
			printf(STATUS_USAGE
			       "  Each meshed pod's proxy (every namespace, or -n's): SYNCED when it runs the config and\n"
			       "  mesh directory the operator last wrote for it, STALE when not (and why), NOT READY when\n"
			       "  its /status does not answer or says it is not ready. Columns: the 12 first hex digits of\n"
			       "  the config and directory hashes it runs, and how long ago it loaded its config. Asked\n"
			       "  through the API server (pods/proxy, port %d). Exit 0: every proxy SYNCED; 1: not;\n"
			       "  2: usage or connection error.\n",
			       PL_INJECT_ADMIN_PORT);
			return 0;
		default:
			fputs(STATUS_USAGE, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fputs(STATUS_USAGE, stderr);
		return 2;
	}
	memset(&cfg, 0, sizeof(cfg));
	if (pl_kube_config_load(&cfg, kubeconfig, context, err, sizeof(err)) != 0) {
		fprintf(stderr, "pillionctl status: %s\n", err);
		return 2;
	}
	pl_kube *k = pl_kube_new(&cfg, 0, 0), *kp = pl_kube_new(&cfg, 0, 0);
	if (!k || !kp) {
		fprintf(stderr, "pillionctl status: %s: no usable API server\n", cfg.source ? cfg.source : "kubeconfig");
		pl_kube_free(k);
		pl_kube_free(kp);
		pl_kube_config_free(&cfg);
		return 2;
	}
	pl_kube_set_retry(k, 2, 1000);
	pl_kube_set_timeouts(k, 5, 30, 120);
	/* A proxy that does not answer is NOT READY after 3 s, not a reason to retry. */
	pl_kube_set_retry(kp, 1, 0);
	pl_kube_set_timeouts(kp, 5, 3, 120);
	printf("%-20s %-40s %-10s %-13s %-13s %-6s %s\n", "NAMESPACE", "POD", "STATUS", "CONFIG", "MESH", "LOADED",
	       "DETAIL");
	int rc = show_namespace(k, kp, ns, counts);
	pl_kube_free(k);
	pl_kube_free(kp);
	pl_kube_config_free(&cfg);
	if (rc < 0)
		return 2;
	fprintf(stderr, "%d synced, %d stale, %d not ready\n", counts[PROXY_SYNCED], counts[PROXY_STALE],
		counts[PROXY_NOT_READY]);
	return counts[PROXY_STALE] || counts[PROXY_NOT_READY] ? 1 : 0;
}
