/* Rendering the mesh directory (ConfigMap pillion-mesh) from Services, meshed pods and MeshIdentities. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "model/index-t.h"
#include "model/model.h"

/* A meshed pod the directory can list: injected (has an id), running or about to, with an IP. */
/* A pod the directory can name: with an IP, not finished. Meshed when injected (it has an id). */
static bool listed(const pl_pod *p)
{
	return p->ips.n && strcmp(p->phase, "Succeeded") != 0 && strcmp(p->phase, "Failed") != 0;
}

static bool meshed(const pl_pod *p) { return p->id[0] != '\0'; }

bool pl_pod_identity(const pl_index *ix, const pl_pod *pod, char *out, size_t outlen, pl_mtls_mode *mode)
{
	const pl_mesh_identity *m = pl_index_identity_for(ix, pod);
	const char *td = m ? m->trust_domain : "cluster.local";
	int n = snprintf(out, outlen, "spiffe://%s/ns/%s/sa/%s", td, pod->meta.namespace, pod->service_account);

	if (mode)
		*mode = m ? m->mtls_mode : PL_MTLS_PERMISSIVE;
	return n > 0 && (size_t)n < outlen;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, without duplicates, as a JSON array of strings. */
static json_t *sorted_set(const char **v, size_t n)
{
	json_t *arr = json_array();

	if (n)
		qsort(v, n, sizeof(*v), str_cmp);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
			json_array_append_new(arr, json_string(v[i]));
	return arr;
}

static json_t *canonical_addrs(const pl_strv *ips)
{
	const char **v = calloc(ips->n + 1, sizeof(char *));
	char (*buf)[INET6_ADDRSTRLEN] = calloc(ips->n + 1, sizeof(*buf));
	size_t n = 0;
	unsigned char bin[16];

	if (!v || !buf)
		abort();
	for (size_t i = 0; i < ips->n; i++) {
		int fam = strchr(ips->v[i], ':') ? AF_INET6 : AF_INET;
		if (inet_pton(fam, ips->v[i], bin) == 1 && inet_ntop(fam, bin, buf[n], INET6_ADDRSTRLEN))
			v[n] = buf[n], n++;
	}
	json_t *arr = sorted_set(v, n);
	free(v);
	free(buf);
	return arr;
}

static int svc_cmp(const void *a, const void *b)
{
	const pl_service *x = *(const pl_service *const *)a, *y = *(const pl_service *const *)b;
	int c = strcmp(x->meta.namespace, y->meta.namespace);

	return c ? c : strcmp(x->meta.name, y->meta.name);
}

static int pod_cmp(const void *a, const void *b)
{
	const pl_pod *x = *(const pl_pod *const *)a, *y = *(const pl_pod *const *)b;
	int c = strcmp(x->meta.namespace, y->meta.namespace);

	return c ? c : strcmp(x->meta.name, y->meta.name);
}

typedef struct mesh_pod {
	const pl_pod *pod;
	char id[2048];
	pl_mtls_mode mode;
	bool meshed;      /* injected; an unmeshed pod is only ever an endpoint, dialled in plaintext */
} mesh_pod;

static bool selects(const pl_service *s, const pl_pod *p)
{
	return strcmp(p->meta.namespace, s->meta.namespace) == 0 && s->has_selector &&
	       pl_labels_subset(&s->selector, &p->meta.labels);
}

static json_t *render_service(const pl_service *s, const mesh_pod *mp, size_t n)
{
	const char **ids = calloc(n + 1, sizeof(char *));
	size_t nids = 0;
	json_t *ports = json_array(), *seen_ports = json_object();

	if (!ids)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (!selects(s, mp[i].pod))
			continue;
		/* DISABLED pods do not terminate mesh TLS for callers: leave their identity out. */
		if (mp[i].meshed && mp[i].mode != PL_MTLS_DISABLED)
			ids[nids++] = mp[i].id;
	}
	for (size_t i = 0; i < s->nports; i++) {
		if (s->ports[i].protocol && *s->ports[i].protocol && strcmp(s->ports[i].protocol, "TCP") != 0)
			continue;
		char key[8];
		snprintf(key, sizeof(key), "%d", s->ports[i].port);
		if (json_object_get(seen_ports, key))
			continue;
		json_object_set_new(seen_ports, key, json_true());
		json_array_append_new(ports, json_integer(s->ports[i].port));
	}
	json_decref(seen_ports);
	json_t *idarr = sorted_set(ids, nids);
	free(ids);
	if (!json_array_size(idarr) || !json_array_size(ports)) {
		json_decref(idarr);
		json_decref(ports);
		return NULL;
	}
	/* Ports in ascending order, for identical bytes whatever the Service's order. */
	size_t np = json_array_size(ports);
	int *pv = malloc(np * sizeof(int));
	if (!pv)
		abort();
	for (size_t i = 0; i < np; i++)
		pv[i] = (int)json_integer_value(json_array_get(ports, i));
	for (size_t i = 1; i < np; i++)
		for (size_t j = i; j > 0 && pv[j - 1] > pv[j]; j--) {
			int t = pv[j];
			pv[j] = pv[j - 1];
			pv[j - 1] = t;
		}
	json_array_clear(ports);
	for (size_t i = 0; i < np; i++)
		json_array_append_new(ports, json_integer(pv[i]));
	/* Endpoints: the ready pods (in name order), each with its port for every Service port. */
	json_t *eps = json_array();
	for (size_t i = 0; i < n; i++) {
		const pl_pod *p = mp[i].pod;
		if (!p->ready || !selects(s, p))
			continue;
		json_t *tp = json_array();
		bool any = false;
		for (size_t k = 0; k < np; k++) {
			int t = 0;
			for (size_t j = 0; j < s->nports && !t; j++)
				if (s->ports[j].port == pv[k])
					t = pl_pod_target_port(p, &s->ports[j]);
			any = any || t;
			json_array_append_new(tp, json_integer(t));
		}
		if (any)
			json_array_append_new(eps, json_pack("{soso}", "addresses", canonical_addrs(&p->ips), "ports", tp));
		else
			json_decref(tp);
	}
	free(pv);
	return json_pack("{sssssosososo}", "namespace", s->meta.namespace, "name", s->meta.name, "addresses",
			 canonical_addrs(&s->cluster_ips), "ports", ports, "identities", idarr, "endpoints", eps);
}

json_t *pl_render_mesh(const pl_index *ix, const pl_pod *const *pods, size_t npods, const char *ns)
{
	mesh_pod *mp = calloc(npods + 1, sizeof(*mp));
	const pl_pod **sorted = calloc(npods + 1, sizeof(*sorted));
	size_t n = 0;

	if (!mp || !sorted)
		abort();
	for (size_t i = 0; i < npods; i++)
		if (listed(pods[i]))
			sorted[n++] = pods[i];
	if (n)
		qsort(sorted, n, sizeof(*sorted), pod_cmp);
	for (size_t i = 0; i < n; i++) {
		mp[i].pod = sorted[i];
		mp[i].meshed = meshed(sorted[i]);
		if (mp[i].meshed)
			pl_pod_identity(ix, sorted[i], mp[i].id, sizeof(mp[i].id), &mp[i].mode);
	}

	/* Every Service with a cluster IP that selects a meshed pod, in namespace/name order. */
	size_t nsvc = 0, cap = 0, it = 0;
	const pl_service **svcs = NULL;
	pl_hmap_slot *slot;
	while ((slot = pl_hmap_next(&ix->services, &it))) {
		const pl_vec *b = slot->value;
		for (size_t i = 0; i < b->n; i++) {
			const pl_service *s = b->v[i];
			bool has_ip = false;
			for (size_t j = 0; j < s->cluster_ips.n; j++)
				has_ip = has_ip || (strcmp(s->cluster_ips.v[j], "None") != 0 && *s->cluster_ips.v[j]);
			if (!has_ip)
				continue;
			if (nsvc == cap) {
				cap = cap ? cap * 2 : 16;
				svcs = realloc(svcs, cap * sizeof(*svcs));
				if (!svcs)
					abort();
			}
			svcs[nsvc++] = s;
		}
	}
	if (nsvc)
		qsort(svcs, nsvc, sizeof(*svcs), svc_cmp);
	json_t *services = json_array();
	for (size_t i = 0; i < nsvc; i++) {
		json_t *o = render_service(svcs[i], mp, n);
		if (o)
			json_array_append_new(services, o);
	}
	free(svcs);

	json_t *plist = json_array();
	for (size_t i = 0; i < n; i++) {
		if (!mp[i].meshed || mp[i].mode == PL_MTLS_DISABLED)
			continue;
		json_array_append_new(plist, json_pack("{sssssoss}", "namespace", mp[i].pod->meta.namespace, "name",
						       mp[i].pod->meta.name, "addresses",
						       canonical_addrs(&mp[i].pod->ips), "identity", mp[i].id));
	}
	free(mp);
	free(sorted);

	json_t *opaque = json_array();
	for (size_t i = 0; i < pl_default_opaque_nports; i++)
		json_array_append_new(opaque, json_integer(pl_default_opaque_ports[i]));
	json_t *dir = json_pack("{sssssssososo}", "apiVersion", PL_API_VERSION, "kind", "MeshDirectory", "namespace",
				ns, "services", services, "pods", plist, "opaquePorts", opaque);
	char hash[80];
	pl_proxy_config_hash(dir, hash);
	json_object_set_new(dir, "hash", json_string(hash));
	return dir;
}
