/* Unit tests for lib/kube TLS settings against `openssl s_server`: CA as PEM data and file, client certificate and key as data, verification failures, insecure. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "kube/kube.h"

static char dir[64];
static char url[64];
static pid_t server = -1;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static char *slurp(const char *name)
{
	char path[128];
	pl_buf b = PL_BUF_INIT;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(pl_buf_read_file(&b, path, 1 << 20), 0);
	return b.data;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static bool port_open(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	close(fd);
	return ok;
}

/* A server certificate for 127.0.0.1 and a client certificate, each self-signed; s_server requires the client's. */
static int setup(void **state)
{
	int port;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pillion-kube-tls-XXXXXX");
	assert_non_null(mkdtemp(dir));
	sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=apiserver "
	   "-addext subjectAltName=IP:127.0.0.1 -keyout server.key -out server.crt 2>/dev/null", dir);
	sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=admin "
	   "-keyout client.key -out client.crt 2>/dev/null", dir);
	sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other "
	   "-keyout other.key -out other.crt 2>/dev/null", dir);
	port = free_port();
	server = fork();
	assert_true(server >= 0);
	if (server == 0) {
		char accept[16], cert[128], key[128], ca[128];
		snprintf(accept, sizeof(accept), "%d", port);
		snprintf(cert, sizeof(cert), "%s/server.crt", dir);
		snprintf(key, sizeof(key), "%s/server.key", dir);
		snprintf(ca, sizeof(ca), "%s/client.crt", dir);
		if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
			_exit(127);
		execlp("openssl", "openssl", "s_server", "-quiet", "-accept", accept, "-cert", cert, "-key", key,
		       "-Verify", "1", "-verify_return_error", "-CAfile", ca, "-www", (char *)NULL);
		_exit(127);
	}
	/* openssl s_server may take long to start on a busy machine: wait up to 30 s, and stop
	 * waiting early if it exited. */
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (port_open(port))
			break;
		if (waitpid(server, NULL, WNOHANG) == server) {
			server = -1;
			fail_msg("openssl s_server exited before it listened on port %d", port);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= 30)
			break;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	assert_true(port_open(port));
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	sh("rm -rf '%s'", dir);
	return 0;
}

static int get(pl_kube_config *cfg, pl_kube_status *st)
{
	pl_kube *k;
	int rc;

	cfg->server = url;
	k = pl_kube_new(cfg, 0, 0);
	assert_non_null(k);
	pl_kube_set_retry(k, 1, 0);
	rc = pl_kube_get(k, "/", NULL, st);   /* s_server -www answers 200 with a text page */
	pl_kube_free(k);
	return rc;
}

static void test_ca_and_client_cert_as_data(void **state)
{
	pl_kube_config cfg = {0};
	pl_kube_status st;
	char *ca = slurp("server.crt"), *crt = slurp("client.crt"), *key = slurp("client.key");
	char *other_ca = slurp("other.crt");

	(void)state;
	cfg.ca_pem = ca;
	cfg.cert_pem = crt;
	cfg.key_pem = key;
	assert_int_equal(get(&cfg, &st), 0);
	assert_int_equal(st.http, 200);

	/* The server's certificate is not signed by this CA. */
	cfg.ca_pem = other_ca;
	assert_int_equal(get(&cfg, &st), -EPROTO);
	assert_int_equal(st.http, 0);
	assert_true(strlen(st.message) > 0);

	/* insecure-skip-tls-verify: accepted, the CA is not consulted. */
	cfg.insecure = true;
	assert_int_equal(get(&cfg, &st), 0);
	cfg.insecure = false;

	/* No client certificate: the server refuses the handshake. */
	cfg.ca_pem = ca;
	cfg.cert_pem = cfg.key_pem = NULL;
	assert_true(get(&cfg, &st) < 0);
	free(ca);
	free(crt);
	free(key);
	free(other_ca);
}

static void test_ca_and_client_cert_as_files(void **state)
{
	pl_kube_config cfg = {0};
	pl_kube_status st;
	char ca[128], crt[128], key[128];

	(void)state;
	snprintf(ca, sizeof(ca), "%s/server.crt", dir);
	snprintf(crt, sizeof(crt), "%s/client.crt", dir);
	snprintf(key, sizeof(key), "%s/client.key", dir);
	cfg.ca_file = ca;
	cfg.cert_file = crt;
	cfg.key_file = key;
	assert_int_equal(get(&cfg, &st), 0);
	/* Without a CA the system store is used, which does not know this server. */
	cfg.ca_file = NULL;
	assert_int_equal(get(&cfg, &st), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ca_and_client_cert_as_data),
		cmocka_unit_test(test_ca_and_client_cert_as_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
