/* Unit tests for lib/kube/config: kubeconfig contexts, credentials as data and files, the insecure flag, field-named errors, in-cluster files and env. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kube/kube.h"

static char tmpdir[256];

static void write_file(const char *name, const char *content)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static char *b64(const char *s)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), o = 0;
	char *out = malloc(n / 3 * 4 + 8);
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		out[o++] = al[(v >> 18) & 63];
		out[o++] = al[(v >> 12) & 63];
		out[o++] = i + 1 < n ? al[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? al[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pillion-kube-config-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int load(pl_kube_config *cfg, const char *yaml, const char *context, char *err, size_t errlen)
{
	char path[512];

	write_file("kubeconfig", yaml);
	snprintf(path, sizeof(path), "%s/kubeconfig", tmpdir);
	return pl_kube_config_load_file(cfg, path, context, err, errlen);
}

#define CA_PEM "-----BEGIN CERTIFICATE-----\nMIIBcafake\n-----END CERTIFICATE-----\n"
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nMIIBcertfake\n-----END CERTIFICATE-----\n"
#define KEY_PEM "-----BEGIN EC PRIVATE KEY-----\nMHckeyfake\n-----END EC PRIVATE KEY-----\n"

static void test_token_and_ca_data(void **state)
{
	pl_kube_config cfg;
	char err[512] = "", yaml[2048];
	char *ca = b64(CA_PEM);

	(void)state;
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
		 "contexts:\n- name: dev\n  context: {cluster: devc, user: devu}\n"
		 "- name: prod\n  context:\n    cluster: prodc\n    user: produ\n    namespace: mesh\n"
		 "clusters:\n- name: devc\n  cluster: {server: 'https://dev:6443'}\n"
		 "- name: prodc\n  cluster:\n    server: https://10.0.0.1:6443/\n    certificate-authority-data: %s\n"
		 "users:\n- name: devu\n  user: {token: devtoken}\n- name: produ\n  user:\n    token: prodtoken\n",
		 ca);
	assert_int_equal(load(&cfg, yaml, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.server, "https://10.0.0.1:6443");   /* trailing slash dropped */
	assert_string_equal(cfg.ca_pem, CA_PEM);
	assert_null(cfg.ca_file);
	assert_string_equal(cfg.token, "prodtoken");
	assert_string_equal(cfg.namespace, "mesh");
	assert_false(cfg.insecure);
	pl_kube_config_free(&cfg);

	/* An explicit context wins over current-context; no namespace means "default". */
	assert_int_equal(load(&cfg, yaml, "dev", err, sizeof(err)), 0);
	assert_string_equal(cfg.server, "https://dev:6443");
	assert_string_equal(cfg.token, "devtoken");
	assert_string_equal(cfg.namespace, "default");
	assert_null(cfg.ca_pem);
	pl_kube_config_free(&cfg);

	assert_int_equal(load(&cfg, yaml, "staging", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "contexts: no entry named \"staging\""));
	assert_null(cfg.server);
	free(ca);
}

static void test_client_cert_data_and_insecure(void **state)
{
	pl_kube_config cfg;
	char err[512] = "", yaml[2048];
	char *cert = b64(CERT_PEM), *key = b64(KEY_PEM);

	(void)state;
	snprintf(yaml, sizeof(yaml),
		 "current-context: kind\ncontexts:\n- name: kind\n  context: {cluster: kind, user: admin}\n"
		 "clusters:\n- name: kind\n  cluster:\n    server: https://127.0.0.1:40000\n    insecure-skip-tls-verify: true\n"
		 "users:\n- name: admin\n  user:\n    client-certificate-data: %s\n    client-key-data: |\n      %s\n",
		 cert, key);
	assert_int_equal(load(&cfg, yaml, NULL, err, sizeof(err)), 0);
	assert_true(cfg.insecure);
	assert_string_equal(cfg.cert_pem, CERT_PEM);
	assert_string_equal(cfg.key_pem, KEY_PEM);
	assert_null(cfg.token);
	pl_kube_config_free(&cfg);
	free(cert);
	free(key);
}

static void test_files_relative_to_kubeconfig(void **state)
{
	pl_kube_config cfg;
	char err[512] = "", want[600];

	(void)state;
	write_file("ca.crt", CA_PEM);
	write_file("client.crt", CERT_PEM);
	write_file("client.key", KEY_PEM);
	write_file("token", "tok\n");
	assert_int_equal(load(&cfg,
			      "current-context: c\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
			      "clusters: [{name: c, cluster: {server: 'https://k', certificate-authority: ca.crt}}]\n"
			      "users: [{name: u, user: {client-certificate: client.crt, client-key: client.key, tokenFile: token}}]\n",
			      NULL, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/ca.crt", tmpdir);
	assert_string_equal(cfg.ca_file, want);
	snprintf(want, sizeof(want), "%s/client.key", tmpdir);
	assert_string_equal(cfg.key_file, want);
	snprintf(want, sizeof(want), "%s/token", tmpdir);
	assert_string_equal(cfg.token_file, want);
	pl_kube_config_free(&cfg);

	/* A file that is not there is named with its field. */
	assert_int_equal(load(&cfg,
			      "current-context: c\ncontexts: [{name: c, context: {cluster: c}}]\n"
			      "clusters: [{name: c, cluster: {server: 'https://k', certificate-authority: nope.crt}}]\n",
			      NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "clusters[name=\"c\"].cluster.certificate-authority: "));
	assert_non_null(strstr(err, "nope.crt: No such file"));
}

static void expect_error(const char *yaml, const char *field)
{
	pl_kube_config cfg;
	char err[512] = "";

	assert_int_equal(load(&cfg, yaml, NULL, err, sizeof(err)), -EINVAL);
	if (!strstr(err, field))
		fail_msg("error \"%s\" does not name \"%s\"", err, field);
	assert_non_null(strstr(err, "kubeconfig /tmp/"));
	assert_null(cfg.server);
}

static void test_missing_fields_named(void **state)
{
	(void)state;
	expect_error("contexts: []\n", "current-context: missing");
	expect_error("current-context: c\ncontexts: [{name: c, context: {user: u}}]\n",
		     "contexts[name=\"c\"].context.cluster: missing");
	expect_error("current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\nclusters: []\n",
		     "clusters: no entry named \"x\"");
	expect_error("current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\nclusters: [{name: x, cluster: {}}]\n",
		     "clusters[name=\"x\"].cluster.server: missing");
	expect_error("current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n"
		     "clusters: [{name: x, cluster: {server: 'ftp://x'}}]\n",
		     "clusters[name=\"x\"].cluster.server: \"ftp://x\" is not an http(s) URL");
	expect_error("current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n"
		     "clusters: [{name: x, cluster: {server: 'https://x', certificate-authority-data: 'not*base64'}}]\n",
		     "clusters[name=\"x\"].cluster.certificate-authority-data: not valid base64");
	expect_error("current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n"
		     "clusters: [{name: x, cluster: {server: 'https://x', insecure-skip-tls-verify: 'maybe'}}]\n",
		     "clusters[name=\"x\"].cluster.insecure-skip-tls-verify: must be true or false");
	expect_error("current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\n"
		     "clusters: [{name: x, cluster: {server: 'https://x'}}]\n"
		     "users: [{name: u, user: {client-certificate-data: 'Zm9v'}}]\n",
		     "users[name=\"u\"].user.client-key-data or client-key: missing");
	expect_error("current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\n"
		     "clusters: [{name: x, cluster: {server: 'https://x'}}]\n"
		     "users: [{name: u, user: {exec: {command: aws}}}]\n",
		     "users[name=\"u\"].user.exec: not supported");
	expect_error("current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\n"
		     "clusters: [{name: x, cluster: {server: 'https://x'}}]\nusers: [{name: u}]\n",
		     "users[name=\"u\"].user: missing");
	expect_error("current-context: [1]\n", "kubeconfig.current-context: must be a non-empty string");
	expect_error("- a\n- b\n", "not a mapping");
	expect_error("a: [\n", "line");
}

static void test_load_order(void **state)
{
	pl_kube_config cfg;
	char err[512] = "", path[1100], home[512];
	static const char yaml[] = "current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n"
				   "clusters: [{name: x, cluster: {server: 'https://from-%s'}}]\n";
	char buf[512];

	(void)state;
	/* $KUBECONFIG: the first listed file that exists. */
	snprintf(buf, sizeof(buf), yaml, "env");
	write_file("env.yaml", buf);
	snprintf(path, sizeof(path), "%s/missing.yaml:%s/env.yaml", tmpdir, tmpdir);
	setenv("KUBECONFIG", path, 1);
	assert_int_equal(pl_kube_config_load(&cfg, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.server, "https://from-env");
	pl_kube_config_free(&cfg);
	/* An explicit path beats it. */
	snprintf(buf, sizeof(buf), yaml, "flag");
	write_file("flag.yaml", buf);
	snprintf(path, sizeof(path), "%s/flag.yaml", tmpdir);
	assert_int_equal(pl_kube_config_load(&cfg, path, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.server, "https://from-flag");
	pl_kube_config_free(&cfg);
	unsetenv("KUBECONFIG");

	/* ~/.kube/config last. */
	const char *oldhome = getenv("HOME");
	char *saved = oldhome ? strdup(oldhome) : NULL;
	snprintf(home, sizeof(home), "%s/.kube", tmpdir);
	assert_int_equal(mkdir(home, 0700), 0);
	snprintf(buf, sizeof(buf), yaml, "home");
	write_file(".kube/config", buf);
	setenv("HOME", tmpdir, 1);
	assert_int_equal(pl_kube_config_load(&cfg, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.server, "https://from-home");
	pl_kube_config_free(&cfg);
	setenv("HOME", "/nonexistent-pillion", 1);
	assert_int_equal(pl_kube_config_load(&cfg, NULL, NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no Kubernetes configuration"));
	if (saved)
		setenv("HOME", saved, 1);
	free(saved);
}

static void test_in_cluster(void **state)
{
	pl_kube_config cfg;
	char err[512] = "", want[600];

	(void)state;
	assert_int_equal(pl_kube_config_in_cluster(&cfg, tmpdir, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);

	assert_int_equal(pl_kube_config_in_cluster(&cfg, tmpdir, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/token: No such file"));
	write_file("token", "\n");
	assert_int_equal(pl_kube_config_in_cluster(&cfg, tmpdir, err, sizeof(err)), -ENODATA);
	assert_non_null(strstr(err, "/token: empty"));
	write_file("token", "eyJhbGciOi.sa.token\n");
	assert_int_equal(pl_kube_config_in_cluster(&cfg, tmpdir, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/ca.crt: No such file"));
	write_file("ca.crt", CA_PEM);

	assert_int_equal(pl_kube_config_in_cluster(&cfg, tmpdir, err, sizeof(err)), 0);
	assert_string_equal(cfg.server, "https://10.96.0.1:443");
	snprintf(want, sizeof(want), "%s/token", tmpdir);
	assert_string_equal(cfg.token_file, want);
	assert_null(cfg.token);   /* read by the client, so rotation is seen */
	snprintf(want, sizeof(want), "%s/ca.crt", tmpdir);
	assert_string_equal(cfg.ca_file, want);
	assert_string_equal(cfg.namespace, "default");
	assert_string_equal(cfg.source, "in-cluster");
	pl_kube_config_free(&cfg);

	write_file("namespace", "pillion-system\n");
	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	assert_int_equal(pl_kube_config_in_cluster(&cfg, tmpdir, err, sizeof(err)), 0);
	assert_string_equal(cfg.server, "https://[fd00:10:96::1]:443");
	assert_string_equal(cfg.namespace, "pillion-system");
	pl_kube_config_free(&cfg);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_copy(void **state)
{
	pl_kube_config a = {0}, b;

	(void)state;
	a.server = strdup("https://x");
	a.token = strdup("t");
	a.insecure = true;
	assert_int_equal(pl_kube_config_copy(&b, &a), 0);
	pl_kube_config_free(&a);
	assert_string_equal(b.server, "https://x");
	assert_string_equal(b.token, "t");
	assert_true(b.insecure);
	assert_null(b.ca_pem);
	pl_kube_config_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_token_and_ca_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_cert_data_and_insecure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_relative_to_kubeconfig, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_fields_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
		cmocka_unit_test(test_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
