/* pillion-operator: flags and environment, start-up order (caches, lease, CA, workers), signals. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/duration.h"
#include "base/env.h"
#include "base/log.h"
#include "base/version.h"
#include "operator.h"

enum {
	O_KUBECONFIG = 256, O_CONTEXT, O_NAMESPACE, O_CA_SECRET, O_LEASE, O_IDENTITY, O_METRICS_ADDR, O_METRICS_PORT,
	O_WORKERS, O_LEADER_ELECT, O_QPS, O_BURST, O_LOG_LEVEL, O_WEBHOOK, O_WEBHOOK_SERVICE, O_WEBHOOK_CONFIG,
	O_WEBHOOK_TTL, O_MESH_COMPRESS, O_HELP, O_VERSION,
};

static const struct option opts[] = {
	{"kubeconfig", required_argument, NULL, O_KUBECONFIG},
	{"context", required_argument, NULL, O_CONTEXT},
	{"namespace", required_argument, NULL, O_NAMESPACE},
	{"ca-secret", required_argument, NULL, O_CA_SECRET},
	{"lease-name", required_argument, NULL, O_LEASE},
	{"identity", required_argument, NULL, O_IDENTITY},
	{"metrics-address", required_argument, NULL, O_METRICS_ADDR},
	{"metrics-port", required_argument, NULL, O_METRICS_PORT},
	{"workers", required_argument, NULL, O_WORKERS},
	{"leader-elect", required_argument, NULL, O_LEADER_ELECT},
	{"qps", required_argument, NULL, O_QPS},
	{"burst", required_argument, NULL, O_BURST},
	{"log-level", required_argument, NULL, O_LOG_LEVEL},
	{"webhook", required_argument, NULL, O_WEBHOOK},
	{"webhook-service", required_argument, NULL, O_WEBHOOK_SERVICE},
	{"webhook-config-name", required_argument, NULL, O_WEBHOOK_CONFIG},
	{"webhook-cert-ttl", required_argument, NULL, O_WEBHOOK_TTL},
	{"mesh-compress-above", required_argument, NULL, O_MESH_COMPRESS},
	{"help", no_argument, NULL, O_HELP},
	{"version", no_argument, NULL, O_VERSION},
	{NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pillion-operator [flags]\n"
		"\n"
		"The Pillion control plane: renders each injected pod's proxy config (ConfigMap pillion-<id>),\n"
		"issues its certificate from the mesh CA (Secret pillion-<id>-tls), keeps each meshed\n"
		"namespace's mesh directory (ConfigMap pillion-mesh), and reports TrafficPolicy and\n"
		"MeshIdentity status. Every flag can also be set by PILLION_<FLAG> (e.g. PILLION_NAMESPACE).\n"
		"\n"
		"  --kubeconfig FILE      (default: $KUBECONFIG, in-cluster, then ~/.kube/config)\n"
		"  --context NAME         kubeconfig context (its current-context)\n"
		"  --namespace NS         control-plane namespace for the CA Secret and the Lease\n"
		"                         ($POD_NAMESPACE, else pillion-system)\n"
		"  --ca-secret NAME       the mesh CA: tls.crt, tls.key, optional ca.crt (pillion-ca);\n"
		"                         generated when absent, used as is when supplied\n"
		"  --lease-name NAME      leader election Lease (pillion-operator)\n"
		"  --identity NAME        this replica in the Lease ($POD_NAME, else the hostname)\n"
		"  --leader-elect BOOL    only the lease holder writes (true)\n"
		"  --metrics-address A    (0.0.0.0)  --metrics-port N  /healthz /readyz /metrics (15440)\n"
		"  --workers N            concurrent reconciles (2)\n"
		"  --qps F --burst N      client-side API rate limit per worker (50, 100): the reconcilers\n"
		"                         write at most --workers x F requests/s; questions to proxies\n"
		"                         have the same budget of their own\n"
		"  --log-level LEVEL      debug, info, warn, error (info)\n"
		"  --webhook BOOL         keep the admission webhook's serving certificate (Secret\n"
		"                         <service>-tls in --namespace, from the mesh CA) and its\n"
		"                         configuration's caBundle (true)\n"
		"  --webhook-service NAME the webhook's Service: the certificate's DNS names (pillion-webhook)\n"
		"  --webhook-config-name NAME  the MutatingWebhookConfiguration (pillion-webhook)\n"
		"  --webhook-cert-ttl D   certificate lifetime, renewed at 2/3 of it (2160h = 90 days;\n"
		"                         at least 30s)\n"
		"  --mesh-compress-above N  write a mesh directory larger than N bytes gzipped, as\n"
		"                         mesh.json.gz (524288; 0: always): about 14 B per pod instead\n"
		"                         of 190 B, so one ConfigMap holds 50,000+ pods\n"
		"  --version              print the version and commit\n");
}

static int bad(const char *flag, const char *v, const char *why)
{
	fprintf(stderr, "pillion-operator: %s: \"%s\": %s\n", flag, v, why);
	return 2;
}

static int apply_opt(op_settings *s, int opt, const char *flag, const char *v)
{
	char *end;
	long n;

	switch (opt) {
	case O_KUBECONFIG: s->kubeconfig = v; break;
	case O_CONTEXT: s->context = v; break;
	case O_NAMESPACE: s->namespace = v; break;
	case O_CA_SECRET: s->ca_secret = v; break;
	case O_LEASE: s->lease_name = v; break;
	case O_IDENTITY: s->identity = v; break;
	case O_METRICS_ADDR: s->metrics_addr = v; break;
	case O_METRICS_PORT:
	case O_WORKERS:
	case O_BURST:
		n = strtol(v, &end, 10);
		if (!*v || *end || n < (opt == O_METRICS_PORT ? 1 : 1) || n > (opt == O_METRICS_PORT ? 65535 : 1000))
			return bad(flag, v, opt == O_METRICS_PORT ? "must be a port number 1..65535" : "must be an integer 1..1000");
		if (opt == O_METRICS_PORT)
			s->metrics_port = (int)n;
		else if (opt == O_WORKERS)
			s->workers = (int)n;
		else
			s->burst = (int)n;
		break;
	case O_MESH_COMPRESS:
		n = strtol(v, &end, 10);
		if (!*v || *end || n < 0 || n > OP_CONFIGMAP_MAX)
			return bad(flag, v, "must be a byte count 0..1048576");
		s->mesh_compress_above = (size_t)n;
		break;
	case O_QPS:
		s->qps = strtod(v, &end);
		if (!*v || *end || s->qps <= 0 || s->qps > 10000)
			return bad(flag, v, "must be a number above 0");
		break;
	case O_LEADER_ELECT:
		if (strcmp(v, "true") && strcmp(v, "false"))
			return bad(flag, v, "must be true or false");
		s->leader_elect = strcmp(v, "true") == 0;
		break;
	case O_WEBHOOK:
		if (strcmp(v, "true") && strcmp(v, "false"))
			return bad(flag, v, "must be true or false");
		s->webhook = strcmp(v, "true") == 0;
		break;
	case O_WEBHOOK_SERVICE:
	case O_WEBHOOK_CONFIG: {
		/* A DNS label for the Service (it starts the certificate's names), a subdomain for the configuration. */
		size_t len = strlen(v);
		bool ok = len > 0 && len <= (opt == O_WEBHOOK_SERVICE ? 63 : 253) && v[0] != '-' && v[len - 1] != '-' &&
			  v[0] != '.' && v[len - 1] != '.';
		for (size_t i = 0; ok && i < len; i++)
			ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '-' ||
			     (v[i] == '.' && opt == O_WEBHOOK_CONFIG && v[i + 1] != '.');
		if (!ok)
			return bad(flag, v, opt == O_WEBHOOK_SERVICE ? "must be a DNS label (a-z, 0-9, '-'; at most 63)"
								     : "must be a DNS subdomain (a-z, 0-9, '-', '.')");
		if (opt == O_WEBHOOK_SERVICE)
			s->webhook_service = v;
		else
			s->webhook_config = v;
		break;
	}
	case O_WEBHOOK_TTL: {
		int64_t ns = 0;
		if (pl_duration_parse(v, &ns) < 0 || ns / PL_NS_PER_S < 30 || ns / PL_NS_PER_S > PL_CA_MAX_TTL_S)
			return bad(flag, v, "must be a duration from 30s to 100 years (2160h, 720h, 90s)");
		s->webhook_cert_ttl_s = ns / PL_NS_PER_S;
		break;
	}
	case O_LOG_LEVEL:
		if (pl_log_set_level_name(v) < 0)
			return bad(flag, v, "must be debug, info, warn or error");
		break;
	}
	return 0;
}

static int parse(int argc, char **argv, op_settings *s)
{
	char env[64], flag[64];
	int c;

	for (const struct option *o = opts; o->name; o++) {
		if (o->has_arg == no_argument)
			continue;
		pl_flag_env_name(o->name, env, sizeof(env));
		const char *v = getenv(env);
		if (v && *v && apply_opt(s, o->val, env, v))
			return 2;
	}
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == O_HELP) {
			usage(stdout);
			exit(0);
		}
		if (c == O_VERSION) {
			pl_version_print(stdout, "pillion-operator");
			exit(0);
		}
		if (c == '?') {
			usage(stderr);
			return 2;
		}
		for (const struct option *o = opts; o->name; o++)
			if (o->val == c)
				snprintf(flag, sizeof(flag), "--%s", o->name);
		if (apply_opt(s, c, flag, optarg))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "pillion-operator: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	return 0;
}

static op O;

static void *signals(void *arg)
{
	sigset_t *set = arg;
	int sig;

	sigwait(set, &sig);
	log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	O.stop = true;
	pl_wq_shutdown(O.q);
	pl_wq_shutdown(O.sq);
	return NULL;
}

int main(int argc, char **argv)
{
	op_settings *s = &O.set;
	static char host[256];
	static sigset_t set;
	char err[512];

	s->namespace = getenv("POD_NAMESPACE") && *getenv("POD_NAMESPACE") ? getenv("POD_NAMESPACE") : "pillion-system";
	s->ca_secret = "pillion-ca";
	s->lease_name = "pillion-operator";
	if (getenv("POD_NAME") && *getenv("POD_NAME"))
		s->identity = getenv("POD_NAME");
	else if (gethostname(host, sizeof(host) - 1) == 0)
		s->identity = host;
	else
		s->identity = "pillion-operator";
	s->metrics_addr = "0.0.0.0";
	s->metrics_port = 15440;
	s->workers = 2;
	s->leader_elect = true;
	s->lease_duration_s = 15;
	s->renew_deadline_s = 10;
	s->retry_period_s = 2;
	s->mesh_compress_above = 512 * 1024;
	s->qps = 50;
	s->burst = 100;
	s->webhook = true;
	s->webhook_service = "pillion-webhook";
	s->webhook_config = "pillion-webhook";
	s->webhook_cert_ttl_s = 90 * 86400LL;
	int rc = parse(argc, argv, s);
	if (rc)
		return rc;
	snprintf(O.webhook_secret, sizeof(O.webhook_secret), "%s-tls", s->webhook_service);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&O.mu, NULL);
	O.mesh_window_ns = OP_MESH_WINDOW_MIN_NS;
	pthread_mutex_init(&O.snap_build_mu, NULL);
	pl_bucket_init(&O.events, OP_EVENT_PER_S, OP_EVENT_BURST, op_mono_ns());
	O.q = pl_wq_new(NULL);
	O.sq = pl_wq_new(NULL);
	pthread_t sigt;
	pthread_create(&sigt, NULL, signals, &set);
	pthread_detach(sigt);

	if (pl_kube_config_load(&O.kcfg, s->kubeconfig, s->context, err, sizeof(err)) < 0) {
		log_errorx("Kubernetes configuration: %s", err);
		return 1;
	}
	/* Every client (workers, reflectors, the lease) copies kcfg: its User-Agent and the metrics observer. */
	O.kcfg.user_agent = strdup("pillion-operator/0.1");
	O.kcfg.observer = op_api_observe;
	O.kcfg.observer_ctx = &O;
	log_info("pillion-operator %s: API server %s (%s), control-plane namespace %s", s->identity, O.kcfg.server,
		 O.kcfg.source, s->namespace);
	if (op_http_start(&O) < 0)
		return 1;
	op_start_caches(&O);
	/* Every replica keeps its caches warm; only the lease holder writes. */
	for (int i = 0; !O.stop && !op_caches_synced(&O); i++) {
		if (i && i % 100 == 0)
			log_info("waiting for the caches to sync");
		struct timespec ts = {0, 100000000};
		nanosleep(&ts, NULL);
	}
	O.synced = true;
	if (!O.stop && s->leader_elect && op_leader_acquire(&O) < 0)
		return O.stop ? 0 : 1;
	if (O.stop)
		return 0;
	pl_kube *k = pl_kube_new(&O.kcfg, s->qps, s->burst);
	for (int attempt = 0; !O.stop; attempt++) {
		if (op_ca_bootstrap(&O, k) == 0)
			break;
		if (attempt >= 30) {
			log_errorx("no mesh CA after %d attempts; exiting", attempt + 1);
			return 1;
		}
		sleep(2);
	}
	pl_kube_free(k);
	if (O.stop)
		return 0;
	O.ready = true;
	log_info("caches synced and CA loaded: reconciling");
	op_enqueue_all(&O);
	op_run_workers(&O);
	op_leader_release(&O);
	op_stop_caches(&O);
	op_rendered_free(&O);
	op_certs_ok_free(&O);
	op_mesh_hash_free(&O);
	op_applied_free(&O);
	log_info("pillion-operator stopped");
	return 0;
}
