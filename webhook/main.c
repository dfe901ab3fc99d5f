/* pillion-webhook: the mutating admission webhook that injects the proxy; flags and environment, then the server. */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "base/env.h"
#include "base/log.h"
#include "base/version.h"
#include "webhook.h"

enum {
	O_LISTEN = 256, O_PORT, O_TLS_CERT, O_TLS_KEY, O_MAX_BODY, O_PROXY_IMAGE, O_INIT_IMAGE, O_NATIVE, O_KUBE_VERSION,
	O_CERT_CHECK, O_SHUTDOWN, O_LOG_LEVEL, O_CHECK, O_HELP, O_VERSION,
};

static const struct option opts[] = {
	{"listen-address", required_argument, NULL, O_LISTEN},
	{"port", required_argument, NULL, O_PORT},
	{"tls-cert", required_argument, NULL, O_TLS_CERT},
	{"tls-key", required_argument, NULL, O_TLS_KEY},
	{"max-body-bytes", required_argument, NULL, O_MAX_BODY},
	{"proxy-image", required_argument, NULL, O_PROXY_IMAGE},
	{"init-image", required_argument, NULL, O_INIT_IMAGE},
	{"native-sidecar", required_argument, NULL, O_NATIVE},
	{"kubernetes-version", required_argument, NULL, O_KUBE_VERSION},
	{"cert-check-interval", required_argument, NULL, O_CERT_CHECK},
	{"shutdown-timeout", required_argument, NULL, O_SHUTDOWN},
	{"log-level", required_argument, NULL, O_LOG_LEVEL},
	{"check", no_argument, NULL, O_CHECK},
	{"help", no_argument, NULL, O_HELP},
	{"version", no_argument, NULL, O_VERSION},
	{NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pillion-webhook [flags]\n"
		"\n"
		"The mutating admission webhook: on Pod CREATE (in namespaces labeled pillion.dev/inject=enabled,\n"
		"chosen by the MutatingWebhookConfiguration) it adds pillion-init, the pillion-proxy sidecar, their\n"
		"volumes and the pillion.dev/id annotation. It always allows the pod: anything odd becomes a warning.\n"
		"HTTPS only (TLS 1.2+): POST /mutate, GET /healthz /readyz /metrics. Every flag can also be set by\n"
		"PILLION_<FLAG> (e.g. PILLION_PROXY_IMAGE).\n"
		"\n"
		"  --listen-address A       IPv4 or IPv6 literal (0.0.0.0; \"::\" takes both)\n"
		"  --port N                 (9443)\n"
		"  --tls-cert FILE          serving certificate, re-read when it changes (/etc/pillion/webhook/tls.crt)\n"
		"  --tls-key FILE           its key (/etc/pillion/webhook/tls.key)\n"
		"  --cert-check-interval D  stat the certificate files this often besides inotify (10s)\n"
		"  --max-body-bytes N       larger AdmissionReviews get 413 (4194304: above any object etcd stores)\n"
		"  --proxy-image IMAGE      (pillion/proxy:0.1.0)\n"
		"  --init-image IMAGE       (pillion/init:0.1.0)\n"
		"  --native-sidecar MODE    auto, true or false (auto: native sidecar from Kubernetes 1.29,\n"
		"                           where SidecarContainers is on by default)\n"
		"  --kubernetes-version V   the API server's version, e.g. 1.29 or v1.29.3 (unknown)\n"
		"  --shutdown-timeout D     on SIGTERM, how long to finish requests in flight (25s)\n"
		"  --log-level LEVEL        debug, info, warn, error (info)\n"
		"  --check                  load the certificate, say \"configuration OK\" and exit\n"
		"  --version                print the version and commit\n");
}

static int bad(const char *flag, const char *v, const char *why)
{
	fprintf(stderr, "pillion-webhook: %s: \"%s\": %s\n", flag, v, why);
	return 2;
}

static int apply_opt(wh_config *c, int opt, const char *flag, const char *v, bool *check)
{
	unsigned char addr[16];
	int64_t ns;
	char *end;
	long long n;

	switch (opt) {
	case O_LISTEN:
		if (inet_pton(AF_INET, v, addr) != 1 && inet_pton(AF_INET6, v, addr) != 1)
			return bad(flag, v, "must be an IPv4 or IPv6 address");
		c->listen_address = v;
		break;
	case O_PORT:
		n = strtoll(v, &end, 10);
		if (!*v || *end || n < 1 || n > 65535)
			return bad(flag, v, "must be a port number 1..65535");
		c->port = (int)n;
		break;
	case O_MAX_BODY:
		n = strtoll(v, &end, 10);
		if (!*v || *end || n < 1024 || n > 64 * 1024 * 1024)
			return bad(flag, v, "must be between 1024 and 67108864");
		c->max_body = (size_t)n;
		break;
	case O_TLS_CERT: c->tls_cert = v; break;
	case O_TLS_KEY: c->tls_key = v; break;
	case O_PROXY_IMAGE:
	case O_INIT_IMAGE:
		if (!*v || strpbrk(v, " \t\r\n"))
			return bad(flag, v, "must be an image reference");
		if (opt == O_PROXY_IMAGE)
			c->proxy_image = v;
		else
			c->init_image = v;
		break;
	case O_NATIVE:
		if (strcmp(v, "auto") == 0)
			c->mode = PL_SIDECAR_AUTO;
		else if (strcmp(v, "true") == 0)
			c->mode = PL_SIDECAR_NATIVE;
		else if (strcmp(v, "false") == 0)
			c->mode = PL_SIDECAR_CONTAINER;
		else
			return bad(flag, v, "must be auto, true or false");
		break;
	case O_KUBE_VERSION:
		if (pl_inject_server_minor(v, &c->server_minor) < 0)
			return bad(flag, v, "must be a Kubernetes version such as 1.29 or v1.29.3");
		break;
	case O_CERT_CHECK:
	case O_SHUTDOWN:
		if (pl_duration_parse(v, &ns) || ns < (opt == O_CERT_CHECK ? PL_NS_PER_S : 0) || ns > PL_NS_PER_H)
			return bad(flag, v, opt == O_CERT_CHECK ? "must be a duration between 1s and 1h" : "must be a duration up to 1h");
		if (opt == O_CERT_CHECK)
			c->cert_check_ns = ns;
		else
			c->shutdown_timeout_ns = ns;
		break;
	case O_LOG_LEVEL:
		if (pl_log_set_level_name(v) < 0)
			return bad(flag, v, "must be debug, info, warn or error");
		break;
	case O_CHECK:
		*check = true;
		break;
	}
	return 0;
}

static int parse(int argc, char **argv, wh_config *c, bool *check)
{
	char env[64], flag[64];
	int opt;

	for (const struct option *o = opts; o->name; o++) {
		if (o->has_arg == no_argument)
			continue;
		pl_flag_env_name(o->name, env, sizeof(env));
		const char *v = getenv(env);
		if (v && *v && apply_opt(c, o->val, env, v, check))
			return 2;
	}
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == O_HELP) {
			usage(stdout);
			exit(0);
		}
		if (opt == O_VERSION) {
			pl_version_print(stdout, "pillion-webhook");
			exit(0);
		}
		if (opt == '?') {
			usage(stderr);
			return 2;
		}
		for (const struct option *o = opts; o->name; o++)
			if (o->val == opt)
				snprintf(flag, sizeof(flag), "--%s", o->name);
		if (apply_opt(c, opt, flag, optarg, check))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "pillion-webhook: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	wh_config c = {
		.listen_address = "0.0.0.0",
		.port = 9443,
		.tls_cert = "/etc/pillion/webhook/tls.crt",
		.tls_key = "/etc/pillion/webhook/tls.key",
		.max_body = 4 * 1024 * 1024, /* etcd refuses objects past 1.5 MiB: never refuse a storable pod */
		.proxy_image = "pillion/proxy:0.1.0",
		.init_image = "pillion/init:0.1.0",
		.mode = PL_SIDECAR_AUTO,
		.server_minor = 0,
		.cert_check_ns = 10 * PL_NS_PER_S,
		.shutdown_timeout_ns = 25 * PL_NS_PER_S,
	};
	bool check = false;
	int rc = parse(argc, argv, &c, &check);

	if (rc)
		return rc;
	if (check) {
		char err[512];
		wh_certs certs;
		if (wh_certs_init(&certs, c.tls_cert, c.tls_key, err, sizeof(err)) != 0) {
			fprintf(stderr, "pillion-webhook: %s\n", err);
			return 1;
		}
		wh_certs_free(&certs);
		printf("configuration OK\n");
		return 0;
	}
	return wh_serve(&c);
}
