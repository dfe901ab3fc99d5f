/* The mesh directory: strict decoding of the namespace-wide file and the proxy's destination lookup. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "base/sha256.h"
#include "json/json.h"
#include "model/decode.h"
#include "model/model.h"

const int pl_default_opaque_ports[] = {25, 587, 3306, 4444, 5432, 6379, 9300, 11211};
const size_t pl_default_opaque_nports = sizeof(pl_default_opaque_ports) / sizeof(pl_default_opaque_ports[0]);

/* Canonical text of an IP literal, or false. */
static bool canon_addr(const char *s, char out[INET6_ADDRSTRLEN])
{
	unsigned char bin[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, s, bin) == 1)
		return inet_ntop(AF_INET, bin, out, INET6_ADDRSTRLEN) != NULL;
	if (inet_pton(AF_INET6, s, bin) == 1)
		return inet_ntop(AF_INET6, bin, out, INET6_ADDRSTRLEN) != NULL;
	return false;
}

static void dec_addrs(pl_dec *d, const json_t *o, pl_strv *out)
{
	json_t *arr, *v;
	size_t i;

	if (!dec_list(d, o, "addresses", true, 1, 0, &arr))
		return;
	size_t saved = dec_enter(d, "addresses");
	out->v = pl_arena_calloc(d->arena, json_array_size(arr), sizeof(char *));
	json_array_foreach(arr, i, v) {
		size_t s2 = dec_enter_index(d, i);
		const char *s;
		char c[INET6_ADDRSTRLEN];
		if (dec_string_value(d, v, 64, NULL, NULL, &s)) {
			if (canon_addr(s, c))
				out->v[out->n++] = pl_arena_strdup(d->arena, c);
			else
				dec_error(d, "must be an IPv4 or IPv6 address, got \"%s\"", s);
		}
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
}

static void dec_ids(pl_dec *d, const json_t *o, const char *key, pl_strv *out)
{
	json_t *arr, *v;
	size_t i;

	if (!dec_list(d, o, key, false, 0, 0, &arr))
		return;
	size_t saved = dec_enter(d, key);
	out->v = pl_arena_calloc(d->arena, json_array_size(arr), sizeof(char *));
	json_array_foreach(arr, i, v) {
		size_t s2 = dec_enter_index(d, i);
		const char *s;
		if (dec_string_value(d, v, 2048, NULL, NULL, &s)) {
			if (strncmp(s, "spiffe://", 9) == 0)
				out->v[out->n++] = s;
			else
				dec_error(d, "must start with spiffe://");
		}
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
}

static size_t dec_ports(pl_dec *d, const json_t *o, const char *key, bool required, int **out)
{
	json_t *arr, *v;
	size_t i, n = 0;

	if (!dec_list(d, o, key, required, required ? 1 : 0, 0, &arr))
		return 0;
	size_t saved = dec_enter(d, key);
	int *p = pl_arena_calloc(d->arena, json_array_size(arr), sizeof(int));
	json_array_foreach(arr, i, v) {
		size_t s2 = dec_enter_index(d, i);
		json_int_t x = json_integer_value(v);
		if (!json_is_integer(v) || x < 1 || x > 65535)
			dec_error(d, "must be a port number 1..65535");
		else
			p[n++] = (int)x;
		dec_leave(d, s2);
	}
	dec_leave(d, saved);
	*out = p;
	return n;
}

static void endpoint_item(pl_dec *d, const json_t *o, const pl_mesh_service *s, pl_mesh_endpoint *e)
{
	static const char *const known[] = {"addresses", "ports", NULL};
	json_t *arr, *v;
	size_t i;

	dec_known_keys(d, o, known);
	dec_addrs(d, o, &e->addresses);
	e->ports = pl_arena_calloc(d->arena, s->nports + 1, sizeof(int));
	if (!dec_list(d, o, "ports", true, 0, 0, &arr))
		return;
	if (json_array_size(arr) != s->nports) {
		dec_error_at(d, "ports", "must have one entry per port of the Service (%zu), got %zu", s->nports,
			     json_array_size(arr));
		return;
	}
	size_t saved = dec_enter(d, "ports");
	json_array_foreach(arr, i, v) {
		json_int_t x = json_integer_value(v);
		if (!json_is_integer(v) || x < 0 || x > 65535) {
			size_t s2 = dec_enter_index(d, i);
			dec_error(d, "must be a port number 0..65535 (0: not served)");
			dec_leave(d, s2);
			continue;
		}
		e->ports[i] = (int)x;
	}
	dec_leave(d, saved);
}

static void service_item(pl_dec *d, const json_t *o, pl_mesh_service *s)
{
	static const char *const known[] = {"namespace", "name", "addresses", "ports", "identities", "endpoints",
					    NULL};
	json_t *arr, *it;
	size_t i;

	dec_known_keys(d, o, known);
	dec_string(d, o, "namespace", true, 63, pl_is_dns1123_label, "a DNS-1123 label", &s->namespace);
	dec_string(d, o, "name", true, 63, pl_is_dns1035_label, "a DNS-1035 label", &s->name);
	dec_addrs(d, o, &s->addresses);
	s->nports = dec_ports(d, o, "ports", true, &s->ports);
	dec_ids(d, o, "identities", &s->identities);
	if (dec_list(d, o, "endpoints", false, 0, 0, &arr)) {
		size_t saved = dec_enter(d, "endpoints");
		s->endpoints = pl_arena_calloc(d->arena, json_array_size(arr) + 1, sizeof(*s->endpoints));
		json_array_foreach(arr, i, it) {
			size_t s2 = dec_enter_index(d, i);
			if (dec_is_object(d, it))
				endpoint_item(d, it, s, &s->endpoints[s->nendpoints++]);
			dec_leave(d, s2);
		}
		dec_leave(d, saved);
	}
}

static void pod_item(pl_dec *d, const json_t *o, pl_mesh_pod *p)
{
	static const char *const known[] = {"namespace", "name", "addresses", "identity", NULL};

	dec_known_keys(d, o, known);
	dec_string(d, o, "namespace", true, 63, pl_is_dns1123_label, "a DNS-1123 label", &p->namespace);
	dec_string(d, o, "name", true, 253, NULL, NULL, &p->name);
	dec_addrs(d, o, &p->addresses);
	if (dec_string(d, o, "identity", true, 2048, NULL, NULL, &p->identity) &&
	    strncmp(p->identity, "spiffe://", 9) != 0)
		dec_error_at(d, "identity", "must start with spiffe://");
}

static void build_tables(pl_arena *a, pl_mesh_dir *dir)
{
	for (size_t i = 0; i < dir->nservices; i++) {
		pl_mesh_service *s = &dir->services[i];
		for (size_t j = 0; j < s->addresses.n; j++)
			for (size_t k = 0; k < s->nports; k++) {
				char *key = pl_arena_printf(a, "%s|%d", s->addresses.v[j], s->ports[k]);
				if (!pl_hmap_get(&dir->_by_addr_port, key))
					pl_hmap_put(&dir->_by_addr_port, key, s);
			}
	}
	for (size_t i = 0; i < dir->nservices; i++) {
		pl_mesh_service *s = &dir->services[i];
		char *key = pl_arena_printf(a, "%s/%s", s->namespace, s->name);
		s->qname = key;
		if (!pl_hmap_get(&dir->_by_name, key))
			pl_hmap_put(&dir->_by_name, key, s);
	}
	for (size_t i = 0; i < dir->npods; i++) {
		pl_mesh_pod *p = &dir->pods[i];
		for (size_t j = 0; j < p->addresses.n; j++)
			if (!pl_hmap_get(&dir->_by_addr, p->addresses.v[j]))
				pl_hmap_put(&dir->_by_addr, p->addresses.v[j], p);
	}
}

bool pl_mesh_dir_decode(pl_arena *a, const json_t *doc, pl_mesh_dir *dir, pl_errors *errs)
{
	static const char *const known[] = {"apiVersion", "kind", "namespace", "services", "pods", "opaquePorts",
					    "hash", NULL};
	static const char *const kinds[] = {"MeshDirectory", NULL};
	pl_dec dd, *d = &dd;
	json_t *arr, *it;
	size_t i, errs_before = errs->n;

	memset(dir, 0, sizeof(*dir));
	dir->hash = "";
	dec_init(d, a, errs);
	if (!dec_rendered_doc(d, doc, known, kinds))
		return false;
	dec_string(d, doc, "namespace", true, 63, pl_is_dns1123_label, "a DNS-1123 label", &dir->namespace);
	if (dec_list(d, doc, "services", false, 0, 0, &arr)) {
		size_t saved = dec_enter(d, "services");
		dir->services = pl_arena_calloc(a, json_array_size(arr), sizeof(*dir->services));
		json_array_foreach(arr, i, it) {
			size_t s2 = dec_enter_index(d, i);
			if (dec_is_object(d, it))
				service_item(d, it, &dir->services[dir->nservices++]);
			dec_leave(d, s2);
		}
		dec_leave(d, saved);
	}
	if (dec_list(d, doc, "pods", false, 0, 0, &arr)) {
		size_t saved = dec_enter(d, "pods");
		dir->pods = pl_arena_calloc(a, json_array_size(arr), sizeof(*dir->pods));
		json_array_foreach(arr, i, it) {
			size_t s2 = dec_enter_index(d, i);
			if (dec_is_object(d, it))
				pod_item(d, it, &dir->pods[dir->npods++]);
			dec_leave(d, s2);
		}
		dec_leave(d, saved);
	}
	if (dec_has(doc, "opaquePorts")) {
		dir->nopaque = dec_ports(d, doc, "opaquePorts", false, &dir->opaque_ports);
	} else {
		dir->nopaque = pl_default_opaque_nports;
		dir->opaque_ports = (int *)pl_default_opaque_ports;
	}
	dec_rendered_hash(d, doc, false, &dir->hash, "the file was changed or cut");
	if (errs->n != errs_before)
		return false;
	build_tables(a, dir);
	return true;
}

void pl_mesh_dir_free(pl_mesh_dir *dir)
{
	pl_hmap_free(&dir->_by_addr_port);
	pl_hmap_free(&dir->_by_addr);
	pl_hmap_free(&dir->_by_name);
}

const pl_mesh_service *pl_mesh_dir_service_at(const pl_mesh_dir *dir, const char *addr, int port)
{
	char c[INET6_ADDRSTRLEN], key[INET6_ADDRSTRLEN + 8];

	if (!dir || !canon_addr(addr, c))
		return NULL;
	snprintf(key, sizeof(key), "%s|%d", c, port);
	return pl_hmap_get(&dir->_by_addr_port, key);
}

const pl_mesh_service *pl_mesh_dir_service(const pl_mesh_dir *dir, const char *qname)
{
	return dir ? pl_hmap_get(&dir->_by_name, qname) : NULL;
}

bool pl_mesh_dir_opaque(const pl_mesh_dir *dir, int port)
{
	const int *v = dir ? dir->opaque_ports : pl_default_opaque_ports;
	size_t n = dir ? dir->nopaque : pl_default_opaque_nports;

	for (size_t i = 0; i < n; i++)
		if (v[i] == port)
			return true;
	return false;
}

const char *const *pl_mesh_dir_lookup(const pl_mesh_dir *dir, const char *addr, int port, size_t *n)
{
	char c[INET6_ADDRSTRLEN], key[INET6_ADDRSTRLEN + 8];

	*n = 0;
	if (!dir || !canon_addr(addr, c))
		return NULL;
	snprintf(key, sizeof(key), "%s|%d", c, port);
	const pl_mesh_service *s = pl_hmap_get(&dir->_by_addr_port, key);
	if (s) {
		*n = s->identities.n;
		return s->identities.v;
	}
	const pl_mesh_pod *p = pl_hmap_get(&dir->_by_addr, c);
	if (p) {
		*n = 1;
		return &p->identity;
	}
	return NULL;
}
