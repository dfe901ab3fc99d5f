/* Unit tests of the mesh directory: strict decoding with field paths, and the proxy's destination lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json/json.h"
#include "model/model.h"

typedef struct mesh_fx {
	pl_arena arena;
	pl_docs docs;
	pl_mesh_dir dir;
	pl_errors errs;
	bool ok;
} mesh_fx;

static void fx_decode(mesh_fx *f, const char *json)
{
	memset(f, 0, sizeof(*f));
	pl_arena_init(&f->arena);
	if (pl_json_load(json, strlen(json), &f->docs) != 0 || f->docs.n != 1)
		fail_msg("test input is not one JSON document: %s\n%s", f->docs.error, json);
	f->ok = pl_mesh_dir_decode(&f->arena, f->docs.v[0].root, &f->dir, &f->errs);
}

static void fx_free(mesh_fx *f)
{
	pl_mesh_dir_free(&f->dir);
	pl_docs_free(&f->docs);
	pl_arena_free(&f->arena);
}

static void dump_errors(const mesh_fx *f)
{
	for (size_t i = 0; i < f->errs.n; i++)
		print_message("  %s: %s\n", f->errs.v[i].path, f->errs.v[i].msg);
}

/* The error at path must contain msg. */
static void expect_error(const mesh_fx *f, const char *path, const char *msg)
{
	assert_false(f->ok);
	for (size_t i = 0; i < f->errs.n; i++)
		if (strcmp(f->errs.v[i].path, path) == 0 && strstr(f->errs.v[i].msg, msg))
			return;
	dump_errors(f);
	fail_msg("no error \"%s: %s\"", path, msg);
}

/* Decodes a directory made of head + body and expects exactly one error, at path, containing msg. */
static void expect_only_error(const char *json, const char *path, const char *msg)
{
	mesh_fx f;

	fx_decode(&f, json);
	expect_error(&f, path, msg);
	if (f.errs.n != 1) {
		dump_errors(&f);
		fail_msg("want exactly one error, got %zu", f.errs.n);
	}
	fx_free(&f);
}

#define HEAD "\"apiVersion\": \"pillion.dev/v1alpha1\", \"kind\": \"MeshDirectory\", \"namespace\": \"shop\""

static const char *const good_dir =
	"{" HEAD ","
	" \"services\": ["
	"  {\"namespace\": \"shop\", \"name\": \"web\", \"addresses\": [\"10.96.0.10\", \"fd00:10:96::a\"],"
	"   \"ports\": [80, 443, 8080],"
	"   \"identities\": [\"spiffe://cluster.local/ns/shop/sa/web\", \"spiffe://cluster.local/ns/shop/sa/web-canary\"]},"
	"  {\"namespace\": \"shop\", \"name\": \"db\", \"addresses\": [\"10.96.0.20\"], \"ports\": [5432],"
	"   \"identities\": []},"
	"  {\"namespace\": \"shop\", \"name\": \"v6\", \"addresses\": [\"2001:DB8:0:0::5\"], \"ports\": [9000],"
	"   \"identities\": [\"spiffe://cluster.local/ns/shop/sa/v6\"]}"
	" ],"
	" \"pods\": ["
	"  {\"namespace\": \"shop\", \"name\": \"web-7d9f-abcde\", \"addresses\": [\"10.0.1.5\", \"fd00::1:5\"],"
	"   \"identity\": \"spiffe://cluster.local/ns/shop/sa/web\"},"
	"  {\"namespace\": \"shop\", \"name\": \"api-0\", \"addresses\": [\"10.0.1.6\"],"
	"   \"identity\": \"spiffe://cluster.local/ns/shop/sa/api\"}"
	" ]"
	"}";

static void test_valid_directory(void **state)
{
	(void)state;
	mesh_fx f;

	fx_decode(&f, good_dir);
	if (!f.ok) {
		dump_errors(&f);
		fail();
	}
	assert_int_equal(f.errs.n, 0);
	assert_string_equal(f.dir.namespace, "shop");
	assert_string_equal(f.dir.hash, "");
	assert_int_equal(f.dir.nservices, 3);
	assert_int_equal(f.dir.npods, 2);
	const pl_mesh_service *web = &f.dir.services[0];
	assert_string_equal(web->name, "web");
	assert_int_equal(web->addresses.n, 2);
	assert_string_equal(web->addresses.v[0], "10.96.0.10");
	assert_string_equal(web->addresses.v[1], "fd00:10:96::a");
	assert_int_equal(web->nports, 3);
	assert_int_equal(web->ports[2], 8080);
	assert_int_equal(web->identities.n, 2);
	/* Addresses are stored in canonical form. */
	assert_string_equal(f.dir.services[2].addresses.v[0], "2001:db8::5");
	assert_string_equal(f.dir.pods[0].addresses.v[1], "fd00::1:5");
	assert_string_equal(f.dir.pods[1].identity, "spiffe://cluster.local/ns/shop/sa/api");
	/* Absent opaquePorts: the default list. */
	assert_int_equal(f.dir.nopaque, pl_default_opaque_nports);
	assert_ptr_equal(f.dir.opaque_ports, pl_default_opaque_ports);
	bool has_mysql = false;
	for (size_t i = 0; i < f.dir.nopaque; i++)
		has_mysql |= f.dir.opaque_ports[i] == 3306;
	assert_true(has_mysql);
	fx_free(&f);
}

static void test_lookup(void **state)
{
	(void)state;
	mesh_fx f;
	size_t n = 99;
	const char *const *ids;

	fx_decode(&f, good_dir);
	assert_true(f.ok);
	/* A Service address and port: the Service's identities, for every address and port. */
	static const char *const web_addrs[] = {"10.96.0.10", "fd00:10:96::a", "FD00:10:96:0:0:0:0:A",
						"fd00:0010:0096::000a"};
	static const int web_ports[] = {80, 443, 8080};
	for (size_t i = 0; i < 4; i++)
		for (size_t j = 0; j < 3; j++) {
			n = 99;
			ids = pl_mesh_dir_lookup(&f.dir, web_addrs[i], web_ports[j], &n);
			if (!ids)
				fail_msg("%s port %d: not found", web_addrs[i], web_ports[j]);
			assert_int_equal(n, 2);
			assert_string_equal(ids[0], "spiffe://cluster.local/ns/shop/sa/web");
			assert_string_equal(ids[1], "spiffe://cluster.local/ns/shop/sa/web-canary");
		}
	/* A Service address on a port it does not list, and no pod there: not in the mesh. */
	n = 99;
	assert_null(pl_mesh_dir_lookup(&f.dir, "10.96.0.10", 81, &n));
	assert_int_equal(n, 0);
	/* IPv6 written non-canonically in the file and in the query. */
	ids = pl_mesh_dir_lookup(&f.dir, "2001:DB8:0:0::5", 9000, &n);
	assert_non_null(ids);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "spiffe://cluster.local/ns/shop/sa/v6");
	ids = pl_mesh_dir_lookup(&f.dir, "2001:db8::5", 9000, &n);
	assert_non_null(ids);
	ids = pl_mesh_dir_lookup(&f.dir, "2001:0db8:0000:0000:0000:0000:0000:0005", 9000, &n);
	assert_non_null(ids);
	assert_int_equal(n, 1);
	/* A Service listed with no identities: in the mesh, nobody to expect. */
	n = 99;
	ids = pl_mesh_dir_lookup(&f.dir, "10.96.0.20", 5432, &n);
	assert_int_equal(n, 0);
	/* A pod address, any port: the pod's single identity. */
	static const int pod_ports[] = {1, 80, 8080, 65535};
	static const char *const pod_addrs[] = {"10.0.1.5", "fd00::1:5", "FD00:0:0:0:0:0:1:5"};
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 4; j++) {
			n = 99;
			ids = pl_mesh_dir_lookup(&f.dir, pod_addrs[i], pod_ports[j], &n);
			if (!ids)
				fail_msg("pod %s port %d: not found", pod_addrs[i], pod_ports[j]);
			assert_int_equal(n, 1);
			assert_string_equal(ids[0], "spiffe://cluster.local/ns/shop/sa/web");
		}
	ids = pl_mesh_dir_lookup(&f.dir, "10.0.1.6", 3000, &n);
	assert_non_null(ids);
	assert_string_equal(ids[0], "spiffe://cluster.local/ns/shop/sa/api");
	/* Unknown addresses, and things that are not addresses. */
	static const char *const unknown[] = {"10.0.1.7", "10.96.0.11", "::1", "fd00::1:6", "", "web", "10.0.1.5 ",
					      "10.0.1.5:80"};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		n = 99;
		if (pl_mesh_dir_lookup(&f.dir, unknown[i], 80, &n))
			fail_msg("\"%s\" found", unknown[i]);
		assert_int_equal(n, 0);
	}
	/* No directory: nothing is in the mesh. */
	n = 99;
	assert_null(pl_mesh_dir_lookup(NULL, "10.0.1.5", 80, &n));
	assert_int_equal(n, 0);
	fx_free(&f);
}

/* A Service address that is also a pod address: the Service wins on its ports, the pod elsewhere. */
static void test_service_before_pod(void **state)
{
	(void)state;
	mesh_fx f;
	size_t n;
	const char *const *ids;

	fx_decode(&f, "{" HEAD ", \"services\": [{\"namespace\": \"shop\", \"name\": \"s\", \"addresses\": [\"10.1.1.1\"],"
		      " \"ports\": [80], \"identities\": [\"spiffe://td/s\"]}],"
		      " \"pods\": [{\"namespace\": \"shop\", \"name\": \"p\", \"addresses\": [\"10.1.1.1\"],"
		      " \"identity\": \"spiffe://td/p\"}], \"opaquePorts\": []}");
	assert_true(f.ok);
	ids = pl_mesh_dir_lookup(&f.dir, "10.1.1.1", 80, &n);
	assert_non_null(ids);
	assert_string_equal(ids[0], "spiffe://td/s");
	ids = pl_mesh_dir_lookup(&f.dir, "10.1.1.1", 81, &n);
	assert_non_null(ids);
	assert_string_equal(ids[0], "spiffe://td/p");
	/* An explicit empty opaquePorts list is kept empty. */
	assert_int_equal(f.dir.nopaque, 0);
	fx_free(&f);
}

/* The HTTP layer finds the Service behind a destination, backends by name, and the opaque ports. */
static void test_service_lookup(void **state)
{
	(void)state;
	mesh_fx f;

	fx_decode(&f, good_dir);
	assert_true(f.ok);
	const pl_mesh_service *s = pl_mesh_dir_service_at(&f.dir, "FD00:10:96:0:0:0:0:A", 443);
	assert_non_null(s);
	assert_string_equal(s->name, "web");
	assert_ptr_equal(pl_mesh_dir_service(&f.dir, "shop/web"), s);
	assert_null(pl_mesh_dir_service(&f.dir, "shop/nope"));
	assert_null(pl_mesh_dir_service(&f.dir, "web"));
	assert_null(pl_mesh_dir_service_at(&f.dir, "10.96.0.10", 81));   /* a port it does not list */
	assert_null(pl_mesh_dir_service_at(&f.dir, "10.0.1.5", 80));      /* a pod, not a Service */
	assert_null(pl_mesh_dir_service_at(&f.dir, "not-an-address", 80));
	assert_true(pl_mesh_dir_opaque(&f.dir, 3306));
	assert_false(pl_mesh_dir_opaque(&f.dir, 80));
	fx_free(&f);
	/* Without a directory: the default opaque ports, and no Service anywhere. */
	assert_true(pl_mesh_dir_opaque(NULL, 5432));
	assert_false(pl_mesh_dir_opaque(NULL, 8080));
	assert_null(pl_mesh_dir_service(NULL, "shop/web"));
	fx_decode(&f, "{" HEAD ", \"opaquePorts\": [7000]}");
	assert_true(f.ok);
	assert_true(pl_mesh_dir_opaque(&f.dir, 7000));
	assert_false(pl_mesh_dir_opaque(&f.dir, 3306));   /* a listed set replaces the defaults */
	fx_free(&f);
}

static void test_opaque_ports_listed(void **state)
{
	(void)state;
	mesh_fx f;

	fx_decode(&f, "{" HEAD ", \"opaquePorts\": [3306, 7000]}");
	assert_true(f.ok);
	assert_int_equal(f.dir.nopaque, 2);
	assert_int_equal(f.dir.opaque_ports[0], 3306);
	assert_int_equal(f.dir.opaque_ports[1], 7000);
	assert_int_equal(f.dir.nservices, 0);
	assert_int_equal(f.dir.npods, 0);
	fx_free(&f);
	/* null is absent: the defaults. */
	fx_decode(&f, "{" HEAD ", \"opaquePorts\": null, \"services\": null, \"pods\": null}");
	assert_true(f.ok);
	assert_int_equal(f.dir.nopaque, pl_default_opaque_nports);
	fx_free(&f);
	expect_only_error("{" HEAD ", \"opaquePorts\": [25, 0]}", "opaquePorts[1]", "must be a port number 1..65535");
	expect_only_error("{" HEAD ", \"opaquePorts\": \"25\"}", "opaquePorts", "must be a list");
}

#define SVC(addrs, ports, ids)                                                                                 \
	"{\"namespace\": \"shop\", \"name\": \"web\", \"addresses\": " addrs ", \"ports\": " ports                 \
	", \"identities\": " ids "}"
#define POD(addrs, id) "{\"namespace\": \"shop\", \"name\": \"web-0\", \"addresses\": " addrs ", \"identity\": " id "}"

static void test_errors_with_paths(void **state)
{
	(void)state;
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\", \"10.0.0.256\"]", "[80]", "[]") "]}",
			  "services[0].addresses[1]", "must be an IPv4 or IPv6 address");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\", \"web.shop\"]", "[80]", "[]") "]}",
			  "services[0].addresses[1]", "must be an IPv4 or IPv6 address, got \"web.shop\"");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"fe80::1%eth0\"]", "[80]", "[]") "]}",
			  "services[0].addresses[0]", "must be an IPv4 or IPv6 address");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1/32\"]", "[80]", "[]") "]}",
			  "services[0].addresses[0]", "must be an IPv4 or IPv6 address");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[10]", "[80]", "[]") "]}", "services[0].addresses[0]",
			  "must be a string");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[]", "[80]", "[]") "]}", "services[0].addresses",
			  "");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\"]", "[80, 0]", "[]") "]}",
			  "services[0].ports[1]", "must be a port number 1..65535");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\"]", "[70000]", "[]") "]}",
			  "services[0].ports[0]", "must be a port number 1..65535");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\"]", "[-1]", "[]") "]}",
			  "services[0].ports[0]", "must be a port number 1..65535");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\"]", "[\"80\"]", "[]") "]}",
			  "services[0].ports[0]", "must be a port number 1..65535");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\"]", "[80.5]", "[]") "]}",
			  "services[0].ports[0]", "must be a port number 1..65535");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\"]", "[]", "[]") "]}", "services[0].ports",
			  "");
	expect_only_error("{" HEAD ", \"services\": [" SVC("[\"10.0.0.1\"]", "[80]",
							   "[\"spiffe://td/a\", \"https://td/b\"]") "]}",
			  "services[0].identities[1]", "must start with spiffe://");
	expect_only_error("{" HEAD ", \"pods\": [" POD("[\"10.0.0.1\"]", "\"td/web\"") "]}", "pods[0].identity",
			  "must start with spiffe://");
	expect_only_error("{" HEAD ", \"pods\": [" POD("[\"10.0.0.1\"]", "\"spiffe://td/a\"") ", "
			  POD("[\"10.0.0.2\", \"::g\"]", "\"spiffe://td/b\"") "]}",
			  "pods[1].addresses[1]", "must be an IPv4 or IPv6 address");
	/* Unknown fields, at every level. */
	expect_only_error("{" HEAD ", \"service\": []}", "service", "");
	expect_only_error("{" HEAD ", \"services\": [{\"namespace\": \"shop\", \"name\": \"web\", \"addresses\": "
			  "[\"10.0.0.1\"], \"ports\": [80], \"identities\": [], \"port\": 80}]}",
			  "services[0].port", "");
	expect_only_error("{" HEAD ", \"pods\": [{\"namespace\": \"shop\", \"name\": \"p\", \"addresses\": "
			  "[\"10.0.0.1\"], \"identity\": \"spiffe://td/p\", \"ip\": \"10.0.0.1\"}]}",
			  "pods[0].ip", "");
	/* kind and apiVersion. */
	expect_only_error("{\"apiVersion\": \"pillion.dev/v1alpha1\", \"kind\": \"ProxyConfig\", \"namespace\": \"shop\"}",
			  "kind", "");
	expect_only_error("{\"apiVersion\": \"pillion.dev/v1\", \"kind\": \"MeshDirectory\", \"namespace\": \"shop\"}",
			  "apiVersion", "must be pillion.dev/v1alpha1");
	expect_only_error("{\"kind\": \"MeshDirectory\", \"namespace\": \"shop\"}", "apiVersion", "is required");
	expect_only_error("{\"apiVersion\": \"pillion.dev/v1alpha1\", \"namespace\": \"shop\"}", "kind",
			  "is required");
	expect_only_error("{\"apiVersion\": \"pillion.dev/v1alpha1\", \"kind\": \"MeshDirectory\"}", "namespace",
			  "is required");
	expect_only_error("{" HEAD ", \"services\": [42]}", "services[0]", "must be an object");
	expect_only_error("{" HEAD ", \"pods\": {}}", "pods", "must be a list");
}

/* Every error is collected, not only the first. */
static void test_errors_are_collected(void **state)
{
	(void)state;
	mesh_fx f;

	fx_decode(&f, "{\"apiVersion\": \"v1\", \"kind\": \"MeshDirectory\", \"namespace\": \"Shop\", \"extra\": 1,"
		      " \"services\": [" SVC("[\"1.2.3\"]", "[0]", "[\"x\"]") "],"
		      " \"pods\": [" POD("[\"::1\", \"nope\"]", "\"y\"") "]}");
	expect_error(&f, "apiVersion", "must be pillion.dev/v1alpha1");
	expect_error(&f, "namespace", "");
	expect_error(&f, "extra", "");
	expect_error(&f, "services[0].addresses[0]", "must be an IPv4 or IPv6 address");
	expect_error(&f, "services[0].ports[0]", "must be a port number");
	expect_error(&f, "services[0].identities[0]", "must start with spiffe://");
	expect_error(&f, "pods[0].addresses[1]", "must be an IPv4 or IPv6 address");
	expect_error(&f, "pods[0].identity", "must start with spiffe://");
	assert_int_equal(f.errs.n, 8);
	/* A refused directory has no lookup tables. */
	size_t n;
	assert_null(pl_mesh_dir_lookup(&f.dir, "::1", 80, &n));
	fx_free(&f);
	/* Not an object at all. */
	fx_decode(&f, "[]");
	expect_error(&f, "", "must be an object");
	fx_free(&f);
}

/* With "hash", the content must match it: any edit after hashing is refused. */
static void test_hash(void **state)
{
	(void)state;
	pl_docs docs;
	char want[80];

	assert_int_equal(pl_json_load(good_dir, strlen(good_dir), &docs), 0);
	json_t *doc = docs.v[0].root;
	pl_proxy_config_hash(doc, want);
	assert_int_equal(strncmp(want, "sha256:", 7), 0);
	json_object_set_new(doc, "hash", json_string(want));
	char *text = json_dumps(doc, JSON_COMPACT);
	pl_docs_free(&docs);

	mesh_fx f;
	fx_decode(&f, text);
	if (!f.ok) {
		dump_errors(&f);
		fail();
	}
	assert_string_equal(f.dir.hash, want);
	fx_free(&f);

	/* One character changed in an identity. */
	char *edited = strdup(text);
	char *p = strstr(edited, "sa/api");
	assert_non_null(p);
	p[3] = 'b';
	fx_decode(&f, edited);
	expect_error(&f, "hash", "does not match the content");
	assert_int_equal(f.errs.n, 1);
	fx_free(&f);

	/* A port changed. */
	memcpy(edited, text, strlen(text) + 1);
	p = strstr(edited, "5432");
	assert_non_null(p);
	p[3] = '3';
	fx_decode(&f, edited);
	expect_error(&f, "hash", "does not match the content");
	fx_free(&f);

	/* A hash that is not a string, or a wrong one. */
	expect_only_error("{" HEAD ", \"hash\": 12}", "hash", "must be a string");
	expect_only_error("{" HEAD ", \"hash\": \"sha256:00\"}", "hash", "does not match the content");
	free(edited);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_directory),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_service_lookup),
		cmocka_unit_test(test_service_before_pod),
		cmocka_unit_test(test_opaque_ports_listed),
		cmocka_unit_test(test_errors_with_paths),
		cmocka_unit_test(test_errors_are_collected),
		cmocka_unit_test(test_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
