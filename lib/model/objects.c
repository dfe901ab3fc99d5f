/* Kinds of documents, the lenient Service and Pod readers, and label selectors. */
#include <string.h>

#include "json/json.h"
#include "model/model.h"
#include "model/objects.h"

#define PL_GROUP_PREFIX "pillion.dev/"

pl_kind pl_object_kind(const json_t *doc)
{
	const char *api = pl_json_get_str(doc, "apiVersion");
	const char *kind = pl_json_get_str(doc, "kind");

	if (!json_is_object(doc) || !kind)
		return PL_KIND_OTHER;
	bool ours = !api || strncmp(api, PL_GROUP_PREFIX, strlen(PL_GROUP_PREFIX)) == 0;
	if (ours && strcmp(kind, "TrafficPolicy") == 0)
		return PL_KIND_TRAFFIC_POLICY;
	if (ours && strcmp(kind, "MeshIdentity") == 0)
		return PL_KIND_MESH_IDENTITY;
	if (api && strncmp(api, PL_GROUP_PREFIX, strlen(PL_GROUP_PREFIX)) == 0)
		return PL_KIND_PILLION_UNKNOWN;
	if (api && strcmp(api, "v1") == 0 && strcmp(kind, "Service") == 0)
		return PL_KIND_SERVICE;
	if (api && strcmp(api, "v1") == 0 && strcmp(kind, "Pod") == 0)
		return PL_KIND_POD;
	return PL_KIND_OTHER;
}

static void check_top(pl_dec *d, const json_t *doc)
{
	static const char *const known[] = {"apiVersion", "kind", "metadata", "spec", "status", NULL};
	const char *api = NULL;

	dec_known_keys(d, doc, known);
	if (dec_string(d, doc, "apiVersion", true, 0, NULL, NULL, &api) && strcmp(api, PL_API_VERSION) != 0)
		dec_error_at(d, "apiVersion", "must be " PL_API_VERSION ", got \"%s\"", api);
}

static int int_or_string(const json_t *v, const char **name)
{
	if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 65535)
		return (int)json_integer_value(v);
	if (json_is_string(v))
		*name = json_string_value(v);
	return 0;
}

static void dec_service(pl_dec *d, const json_t *doc, pl_service *s)
{
	json_t *spec, *ports, *p, *ips;
	size_t i;

	dec_meta(d, doc, false, &s->meta);
	if (!dec_object(d, doc, "spec", false, &spec))
		return;
	size_t saved = dec_enter(d, "spec");
	dec_labels(d, spec, "selector", false, &s->selector);
	s->has_selector = s->selector.n > 0;
	if (dec_list(d, spec, "ports", false, 0, 0, &ports)) {
		s->ports = pl_arena_calloc(d->arena, json_array_size(ports), sizeof(*s->ports));
		json_array_foreach(ports, i, p) {
			pl_service_port *sp = &s->ports[s->nports];
			const char *tname = NULL;
			if (!json_is_object(p))
				continue;
			sp->name = pl_json_get_str(p, "name");
			sp->name = pl_arena_strdup(d->arena, sp->name ? sp->name : "");
			sp->protocol = pl_json_get_str(p, "protocol");
			sp->protocol = pl_arena_strdup(d->arena, sp->protocol ? sp->protocol : "TCP");
			sp->port = int_or_string(json_object_get(p, "port"), &tname);
			if (sp->port == 0)
				continue;
			json_t *tp = json_object_get(p, "targetPort");
			tname = NULL;
			sp->target_port = tp ? int_or_string(tp, &tname) : sp->port;
			if (tname)
				sp->target_port_name = pl_arena_strdup(d->arena, tname);
			s->nports++;
		}
	}
	ips = json_object_get(spec, "clusterIPs");
	if (json_is_array(ips)) {
		s->cluster_ips.v = pl_arena_calloc(d->arena, json_array_size(ips), sizeof(char *));
		json_array_foreach(ips, i, p) {
			if (json_is_string(p))
				s->cluster_ips.v[s->cluster_ips.n++] = pl_arena_strdup(d->arena, json_string_value(p));
		}
	} else if (pl_json_get_str(spec, "clusterIP")) {
		s->cluster_ips.v = pl_arena_calloc(d->arena, 1, sizeof(char *));
		s->cluster_ips.v[s->cluster_ips.n++] = pl_arena_strdup(d->arena, pl_json_get_str(spec, "clusterIP"));
	}
	dec_leave(d, saved);
}

/* Status is written by the kubelet, not by users: read leniently, keep what is well formed. */
static void pod_status(pl_dec *d, const json_t *doc, pl_pod *pod)
{
	json_t *status = json_object_get(doc, "status"), *ips = json_object_get(status, "podIPs"), *v;
	const char *phase = pl_json_get_str(status, "phase"), *ip;
	size_t i;

	pod->phase = phase ? pl_arena_strdup(d->arena, phase) : "";
	pod->ips.v = pl_arena_calloc(d->arena, json_array_size(ips) + 1, sizeof(char *));
	json_array_foreach(ips, i, v) {
		if ((ip = pl_json_get_str(v, "ip")) && *ip)
			pod->ips.v[pod->ips.n++] = pl_arena_strdup(d->arena, ip);
	}
	if (!pod->ips.n && (ip = pl_json_get_str(status, "podIP")) && *ip)
		pod->ips.v[pod->ips.n++] = pl_arena_strdup(d->arena, ip);
	/* As the endpoints controller decides: Ready True, and not terminating. */
	json_array_foreach(json_object_get(status, "conditions"), i, v) {
		const char *t = pl_json_get_str(v, "type"), *st = pl_json_get_str(v, "status");
		if (t && st && strcmp(t, "Ready") == 0)
			pod->ready = strcmp(st, "True") == 0;
	}
	if (pl_json_get_str(json_object_get(doc, "metadata"), "deletionTimestamp"))
		pod->ready = false;
}

/* Whether the pod's proxy (a container or a native-sidecar init container) was started with
 * --outbound: it then reads the client-side policies from pillion-mesh, not from its own config. */
bool pl_proxy_reads_outbound(const json_t *spec)
{
	static const char *const lists[] = {"containers", "initContainers"};
	const json_t *c, *a;
	size_t i, j;

	for (int l = 0; l < 2; l++) {
		json_array_foreach(json_object_get(spec, lists[l]), i, c) {
			const char *cname = pl_json_get_str(c, "name");
			if (!cname || strcmp(cname, PL_PROXY_CONTAINER) != 0)
				continue;
			json_array_foreach(json_object_get(c, "args"), j, a) {
				if (json_is_string(a) && (strcmp(json_string_value(a), "--outbound") == 0 ||
							  strncmp(json_string_value(a), "--outbound=", 11) == 0))
					return true;
			}
		}
	}
	return false;
}

/* The kubelet's HTTP probes of the app containers, which the proxy runs for it on loopback. An
 * injected pod's probes point at the proxy's admin port: their originals are in the annotation
 * PL_ANNOTATION_PROBES; a pod injected before probes were rewritten has them in its spec. Read
 * leniently (the API server validated the pod): what the proxy cannot call as plaintext on
 * loopback (HTTPS, another host) is left out, and so is a probe already aimed at the proxy. */
static void pod_probes(pl_dec *d, const json_t *spec, pl_pod *pod)
{
	static const char *const kinds[] = {"livenessProbe", "readinessProbe", "startupProbe"};
	static const char *const names[] = {"liveness", "readiness", "startup"};
	const json_t *list = json_object_get(spec, "containers");
	const char *ann = pl_labels_get(&pod->meta.annotations, PL_ANNOTATION_PROBES);
	json_t *saved = ann ? json_loads(ann, JSON_REJECT_DUPLICATES, NULL) : NULL, *c, *p, *h;
	size_t i, j;

	pod->probes = pl_arena_calloc(d->arena, json_array_size(list) * 3 + 1, sizeof(*pod->probes));
	json_array_foreach(list, i, c) {
		const char *cname = pl_json_get_str(c, "name");
		if (!cname || strcmp(cname, PL_PROXY_CONTAINER) == 0)
			continue;
		const json_t *orig = json_object_get(saved, cname);
		for (int k = 0; k < 3; k++) {
			const json_t *pr = json_object_get(orig ? orig : c, kinds[k]);
			const json_t *g = json_object_get(pr, "httpGet"), *ts = json_object_get(pr, "tcpSocket");
			/* A tcpSocket probe only from the annotation: injection rewrote it, so the kubelet asks the
			 * admin port for it. One still in the spec (a pod injected before tcpSocket probes were
			 * rewritten) goes to the app's port as it did, and its proxy may not know "tcp". */
			bool tcp = orig && !json_is_object(g) && json_is_object(ts);
			/* A gRPC probe likewise only from the annotation. */
			const json_t *gr = json_object_get(pr, "grpc");
			bool grpc = orig && !json_is_object(g) && !tcp && json_is_object(gr);
			if (tcp)
				g = ts;
			if (grpc)
				g = gr;
			const char *scheme = pl_json_get_str(g, "scheme"), *host = pl_json_get_str(g, "host");
			if (!json_is_object(g) || (scheme && strcmp(scheme, "HTTP") != 0) || (host && *host))
				continue;
			const json_t *pv = json_object_get(g, "port");
			int port = json_is_integer(pv) ? (int)json_integer_value(pv) : 0;
			if (json_is_string(pv)) {
				json_array_foreach(json_object_get(c, "ports"), j, p) {
					const char *n = pl_json_get_str(p, "name");
					json_t *cp = json_object_get(p, "containerPort");
					if (n && strcmp(n, json_string_value(pv)) == 0 && json_is_integer(cp))
						port = (int)json_integer_value(cp);
				}
			}
			const char *path = tcp || grpc ? "" : pl_json_get_str(g, "path");
			if (!path)
				path = "";
			if (port < 1 || port > 65535 || strncmp(path, PL_PROBE_PATH_PREFIX, strlen(PL_PROBE_PATH_PREFIX)) == 0)
				continue;
			/* The kubelet requests "/" for an empty path and puts the path after the authority. */
			pl_probe *q = &pod->probes[pod->nprobes++];
			q->container = pl_arena_strdup(d->arena, cname);
			q->kind = names[k];
			q->port = port;
			q->tcp = tcp;
			q->grpc = grpc;
			if (grpc) {
				/* The health service asked about: printable ASCII (it goes into a protobuf string). */
				const char *svc = pl_json_get_str(g, "service");
				bool ok = true;
				for (const char *x = svc ? svc : ""; *x && ok; x++)
					ok = *x > 0x20 && *x < 0x7f;
				q->grpc_service = pl_arena_strdup(d->arena, svc && ok && strlen(svc) <= 200 ? svc : "");
			}
			q->path = tcp || grpc ? NULL : path[0] == '/' ? pl_arena_strdup(d->arena, path) : pl_arena_printf(d->arena, "/%s", path);
			const json_t *to = json_object_get(pr, "timeoutSeconds");
			q->timeout_s = json_is_integer(to) && json_integer_value(to) >= 1 && json_integer_value(to) <= 3600 ?
					       (int)json_integer_value(to) : 1;
			const json_t *hs = json_object_get(g, "httpHeaders");
			q->headers.v = pl_arena_calloc(d->arena, json_array_size(hs) + 1, sizeof(*q->headers.v));
			json_array_foreach(hs, j, h) {
				const char *hn = pl_json_get_str(h, "name"), *hv = pl_json_get_str(h, "value");
				if (hn && hv && *hn)
					q->headers.v[q->headers.n++] = (pl_label){pl_arena_strdup(d->arena, hn),
										  pl_arena_strdup(d->arena, hv)};
			}
		}
	}
	json_decref(saved);
}

static void dec_pod(pl_dec *d, const json_t *doc, pl_pod *pod)
{
	json_t *spec, *list, *c, *ports, *p;
	size_t i, j;

	dec_meta(d, doc, false, &pod->meta);
	pod->id = pl_labels_get(&pod->meta.annotations, PL_ANNOTATION_ID);
	if (!pod->id)
		pod->id = "";
	/* The id becomes part of object names (pillion-<id>-tls), so it must be a name part. */
	if (!pl_is_pod_id(pod->id)) {
		size_t saved = dec_enter(d, "metadata.annotations");
		dec_enter_key(d, PL_ANNOTATION_ID);
		dec_error(d, "must match a DNS-1123 label of at most %d characters (the webhook sets 32 hex digits), got \"%.64s\"",
			  PL_POD_ID_MAX, pod->id);
		dec_leave(d, saved);
	}
	pod->service_account = PL_DEFAULT_SERVICE_ACCOUNT;
	pod_status(d, doc, pod);
	if (!dec_object(d, doc, "spec", false, &spec))
		return;
	size_t saved = dec_enter(d, "spec");
	dec_string(d, spec, "serviceAccountName", false, 253, pl_is_dns1123_subdomain,
		   "a DNS-1123 subdomain", &pod->service_account);
	/* Named container ports, for Services whose targetPort is a name. */
	size_t total = 0;
	static const char *const lists[] = {"containers", "initContainers"};
	for (int l = 0; l < 2; l++) {
		list = json_object_get(spec, lists[l]);
		json_array_foreach(list, i, c) total += json_array_size(json_object_get(c, "ports"));
	}
	pod->ports = pl_arena_calloc(d->arena, total, sizeof(*pod->ports));
	for (int l = 0; l < 2; l++) {
		list = json_object_get(spec, lists[l]);
		json_array_foreach(list, i, c) {
			ports = json_object_get(c, "ports");
			json_array_foreach(ports, j, p) {
				json_t *cp = json_object_get(p, "containerPort");
				if (!json_is_integer(cp) || json_integer_value(cp) < 1 || json_integer_value(cp) > 65535)
					continue;
				const char *n = pl_json_get_str(p, "name");
				pod->ports[pod->nports].name = pl_arena_strdup(d->arena, n ? n : "");
				pod->ports[pod->nports].port = (int)json_integer_value(cp);
				pod->nports++;
			}
		}
	}
	pod_probes(d, spec, pod);
	pod->outbound_from_mesh = pl_proxy_reads_outbound(spec);
	dec_leave(d, saved);
}

bool pl_object_decode(pl_arena *a, const json_t *doc, pl_object *obj)
{
	pl_dec d;
	const json_t *meta = json_object_get(doc, "metadata");

	memset(obj, 0, sizeof(*obj));
	dec_init(&d, a, &obj->errors);
	obj->kind = pl_object_kind(doc);
	const char *kind = pl_json_get_str(doc, "kind");
	const char *name = pl_json_get_str(meta, "name");
	const char *ns = pl_json_get_str(meta, "namespace");
	obj->kind_name = pl_arena_strdup(a, kind ? kind : "");
	obj->name = pl_arena_strdup(a, name ? name : "");
	obj->namespace = pl_arena_strdup(a, ns ? ns : PL_DEFAULT_NAMESPACE);
	switch (obj->kind) {
	case PL_KIND_TRAFFIC_POLICY:
		check_top(&d, doc);
		obj->u.policy = pl_arena_alloc(a, sizeof(*obj->u.policy));
		dec_traffic_policy(&d, doc, obj->u.policy);
		break;
	case PL_KIND_MESH_IDENTITY:
		check_top(&d, doc);
		obj->u.identity = pl_arena_alloc(a, sizeof(*obj->u.identity));
		dec_mesh_identity(&d, doc, obj->u.identity);
		break;
	case PL_KIND_SERVICE:
		obj->u.service = pl_arena_alloc(a, sizeof(*obj->u.service));
		dec_service(&d, doc, obj->u.service);
		break;
	case PL_KIND_POD:
		obj->u.pod = pl_arena_alloc(a, sizeof(*obj->u.pod));
		dec_pod(&d, doc, obj->u.pod);
		break;
	case PL_KIND_PILLION_UNKNOWN:
		dec_error_at(&d, "kind", "must be TrafficPolicy or MeshIdentity in group pillion.dev, got \"%s\"", kind);
		break;
	default:
		break;
	}
	obj->valid = obj->errors.n == 0;
	return obj->valid;
}

const char *pl_labels_get(const pl_labels *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i].key, key) == 0)
			return l->v[i].value;
	}
	return NULL;
}

bool pl_labels_subset(const pl_labels *sel, const pl_labels *labels)
{
	if (sel->n == 0)
		return false;
	for (size_t i = 0; i < sel->n; i++) {
		const char *v = pl_labels_get(labels, sel->v[i].key);
		if (!v || strcmp(v, sel->v[i].value) != 0)
			return false;
	}
	return true;
}

bool pl_selector_empty(const pl_selector *s)
{
	return s->match_labels.n == 0 && s->nexpr == 0;
}

bool pl_selector_matches(const pl_selector *s, const pl_labels *labels)
{
	if (pl_selector_empty(s))
		return true;
	if (s->match_labels.n && !pl_labels_subset(&s->match_labels, labels))
		return false;
	for (size_t i = 0; i < s->nexpr; i++) {
		const pl_sel_expr *e = &s->expr[i];
		const char *v = pl_labels_get(labels, e->key);
		bool in = false;
		for (size_t j = 0; v && j < e->values.n && !in; j++)
			in = strcmp(e->values.v[j], v) == 0;
		switch (e->op) {
		case PL_SEL_IN: if (!in) return false; break;
		case PL_SEL_NOT_IN: if (in) return false; break;
		case PL_SEL_EXISTS: if (!v) return false; break;
		case PL_SEL_DOES_NOT_EXIST: if (v) return false; break;
		}
	}
	return true;
}
