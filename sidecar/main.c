/* pillion-proxy: flags and environment, listeners, signals, the event loop and draining. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/duration.h"
#include "base/env.h"
#include "base/log.h"
#include "base/version.h"
#include "l7.h"

#define ACCEPT_BATCH 64

enum {
	O_CONFIG = 256, O_MESH, O_OUTBOUND, O_TLS_DIR, O_OUT_PORT, O_IN_PORT, O_ADMIN_PORT, O_ADMIN_ADDR, O_BUF, O_MAX_CONNS,
	O_CONNECT_TO, O_EP_CONNECT_TO, O_DETECT_TO, O_HANDSHAKE_TO, O_DRAIN, O_DRAIN_DELAY, O_RESYNC, O_SPLICE, O_H1_OVER_H2, O_UPGRADES, O_IDLE, O_STREAM_IDLE, O_PENDING, O_UP_MAX, O_LOG_LEVEL, O_CHECK, O_HELP, O_VERSION,
};

static const struct option long_opts[] = {
	{"config", required_argument, NULL, O_CONFIG},
	{"mesh", required_argument, NULL, O_MESH},
	{"outbound", required_argument, NULL, O_OUTBOUND},
	{"tls-dir", required_argument, NULL, O_TLS_DIR},
	{"outbound-port", required_argument, NULL, O_OUT_PORT},
	{"inbound-port", required_argument, NULL, O_IN_PORT},
	{"admin-port", required_argument, NULL, O_ADMIN_PORT},
	{"admin-address", required_argument, NULL, O_ADMIN_ADDR},
	{"buffer-size", required_argument, NULL, O_BUF},
	{"max-connections", required_argument, NULL, O_MAX_CONNS},
	{"connect-timeout", required_argument, NULL, O_CONNECT_TO},
	{"detect-timeout", required_argument, NULL, O_DETECT_TO},
	{"handshake-timeout", required_argument, NULL, O_HANDSHAKE_TO},
	{"drain-timeout", required_argument, NULL, O_DRAIN},
	{"drain-delay", required_argument, NULL, O_DRAIN_DELAY},
	{"endpoint-connect-timeout", required_argument, NULL, O_EP_CONNECT_TO},
	{"resync-interval", required_argument, NULL, O_RESYNC},
	{"splice", required_argument, NULL, O_SPLICE},
	{"http1-over-http2", required_argument, NULL, O_H1_OVER_H2},
	{"upgrades", required_argument, NULL, O_UPGRADES},
	{"idle-timeout", required_argument, NULL, O_IDLE},
	{"stream-idle-timeout", required_argument, NULL, O_STREAM_IDLE},
	{"max-pending-per-source", required_argument, NULL, O_PENDING},
	{"upstream-max-connections", required_argument, NULL, O_UP_MAX},
	{"log-level", required_argument, NULL, O_LOG_LEVEL},
	{"check", no_argument, NULL, O_CHECK},
	{"help", no_argument, NULL, O_HELP},
	{"version", no_argument, NULL, O_VERSION},
	{NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pillion-proxy --config FILE --tls-dir DIR [--mesh FILE] [flags]\n"
		"       pillion-proxy --check --config FILE [--mesh FILE [--outbound FILE]]\n"
		"       pillion-proxy wait [--admin-port N] [--timeout DUR]   (until /ready is 200; --help)\n"
		"\n"
		"The Pillion sidecar: relays the pod's redirected TCP, with mTLS between meshed pods.\n"
		"Every flag can also be set by an environment variable, e.g. PILLION_TLS_DIR; flags win.\n"
		"\n"
		"  --config FILE            the pod's rendered proxy config (ConfigMap pillion-<id>, key proxy.json)\n"
		"  --mesh FILE              the namespace's mesh directory (ConfigMap pillion-mesh); without it\n"
		"                           every outbound destination is plain passthrough; FILE.gz (gzipped,\n"
		"                           as the operator writes a large one) is read when FILE is absent\n"
		"  --outbound FILE          the namespace's client-side policies (outbound.json of pillion-mesh,\n"
		"                           swapped with the directory): when FILE exists they replace the\n"
		"                           config's \"outbound\"; needs --mesh\n"
		"  --tls-dir DIR            tls.crt, tls.key, ca.crt (Secret pillion-<id>-tls)\n"
		"  --outbound-port N        outbound listener on loopback (15401)\n"
		"  --inbound-port N         inbound listener (15406)\n"
		"  --admin-port N           /live /ready /metrics /config /status /app-health/... /shutdown (15420)\n"
		"  --admin-address ADDR     admin bind address (all addresses)\n"
		"  --buffer-size BYTES      relay buffer per direction while bytes wait (16384)\n"
		"  --max-connections N      refuse beyond this many relayed connections (0: no limit)\n"
		"  --connect-timeout DUR    upstream connect (5s)\n"
		"  --endpoint-connect-timeout DUR  connect to a pod address of the mesh directory (1s): a pod\n"
		"                           gone before the directory says so drops the SYN; the request goes\n"
		"                           on to another endpoint, then to the Service address\n"
		"  --detect-timeout DUR     PERMISSIVE: how long an inbound client may stay silent before it is\n"
		"                           relayed as plaintext (1s)\n"
		"  --handshake-timeout DUR  mTLS handshake (10s)\n"
		"  --drain-timeout DUR      on SIGTERM or POST /shutdown, how long open connections may finish (5s)\n"
		"  --drain-delay DUR        on SIGTERM, keep accepting new connections this long first, answering\n"
		"                           HTTP with \"Connection: close\", while callers learn the pod is going\n"
		"                           (0; injected pods: 5s); a second SIGTERM cuts it short\n"
		"  --resync-interval DUR    re-read the files even without a change event (30s)\n"
		"  --splice true|false      plaintext relays move bytes with splice(2) (true)\n"
		"  --http1-over-http2 true|false  outbound HTTP/1 requests to a peer proxy that offers it ride\n"
		"                           its multiplexed HTTP/2 connection (ALPN pillion/h2) (false)\n"
		"  --idle-timeout D         close a byte relay or tunnel with no byte either way for D; 0: never (1h)\n"
		"  --stream-idle-timeout D  end an HTTP/2 stream with no byte either way for D (504 before its\n"
		"                           answer, else a reset); 0: never (5m)\n"
		"  --max-pending-per-source N  inbound connections one address may hold in detection or the\n"
		"                           handshake; more are refused; 0: no limit (256)\n"
		"  --upstream-max-connections N  connections to one destination whose policy sets no\n"
		"                           circuitBreaker; requests beyond wait (1024 at most, then\n"
		"                           503 overflow) (1024)\n"
		"  --upgrades LIST          HTTP Upgrade protocols let through as tunnels, comma-separated\n"
		"                           (websocket); others (h2c, ...) go on as plain requests, the\n"
		"                           Upgrade dropped; empty: none\n"
		"  --log-level LEVEL        debug, info, warn, error (info)\n"
		"  --check                  validate --config (and --mesh), print \"configuration OK\" or the errors, exit\n"
		"  --version                print the version and commit\n");
}

static int bad(const char *flag, const char *val, const char *why)
{
	fprintf(stderr, "pillion-proxy: %s: \"%s\": %s\n", flag, val, why);
	return 2;
}

static int parse_port(const char *flag, const char *v, int *out)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (!*v || *end || n < 1 || n > 65535)
		return bad(flag, v, "must be a port number 1..65535");
	*out = (int)n;
	return 0;
}

static int parse_dur(const char *flag, const char *v, int64_t *out)
{
	if (pl_duration_parse(v, out) < 0)
		return bad(flag, v, "must be a duration such as 500ms, 5s or 1m");
	return 0;
}

static int parse_size(const char *flag, const char *v, size_t min, size_t max, size_t *out)
{
	char *end;
	unsigned long long n = strtoull(v, &end, 10);

	if (!*v || *end || v[0] == '-' || n < min || n > max) {
		char why[96];
		snprintf(why, sizeof(why), "must be an integer %zu..%zu", min, max);
		return bad(flag, v, why);
	}
	*out = (size_t)n;
	return 0;
}

static int apply_opt(px_settings *s, int opt, const char *flag, const char *v)
{
	switch (opt) {
	case O_CONFIG: s->config_path = v; return 0;
	case O_MESH: s->mesh_path = *v ? v : NULL; return 0;
	case O_OUTBOUND: s->outbound_path = *v ? v : NULL; return 0;
	case O_TLS_DIR: s->tls_dir = v; return 0;
	case O_OUT_PORT: return parse_port(flag, v, &s->outbound_port);
	case O_IN_PORT: return parse_port(flag, v, &s->inbound_port);
	case O_ADMIN_PORT: return parse_port(flag, v, &s->admin_port);
	case O_ADMIN_ADDR: s->admin_addr = v; return 0;
	case O_BUF: return parse_size(flag, v, 1024, 1 << 20, &s->buf_size);
	case O_MAX_CONNS: return parse_size(flag, v, 0, 10000000, &s->max_conns);
	case O_CONNECT_TO: return parse_dur(flag, v, &s->connect_timeout_ns);
	case O_DETECT_TO: return parse_dur(flag, v, &s->detect_timeout_ns);
	case O_HANDSHAKE_TO: return parse_dur(flag, v, &s->handshake_timeout_ns);
	case O_DRAIN: return parse_dur(flag, v, &s->drain_ns);
	case O_DRAIN_DELAY: return parse_dur(flag, v, &s->drain_delay_ns);
	case O_EP_CONNECT_TO: return parse_dur(flag, v, &s->endpoint_connect_timeout_ns);
	case O_RESYNC:
		if (parse_dur(flag, v, &s->resync_ns))
			return 2;
		return s->resync_ns < PL_NS_PER_S ? bad(flag, v, "must be at least 1s") : 0;
	case O_H1_OVER_H2:
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return bad(flag, v, "must be true or false");
		s->h1_over_h2 = v[0] == 't';
		return 0;
	case O_SPLICE:
		if (strcmp(v, "true") == 0)
			s->splice = true;
		else if (strcmp(v, "false") == 0)
			s->splice = false;
		else
			return bad(flag, v, "must be true or false");
		return 0;
	case O_IDLE: return parse_dur(flag, v, &s->idle_timeout_ns);
	case O_STREAM_IDLE: return parse_dur(flag, v, &s->stream_idle_timeout_ns);
	case O_PENDING: return parse_size(flag, v, 0, 10000000, &s->max_pending_per_source);
	case O_UP_MAX: return parse_size(flag, v, 1, 1000000, &s->upstream_max_conns);
	case O_UPGRADES:
		for (const char *p = v; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == ',' ||
			      *p == '-' || *p == '.' || *p == '/' || *p == '_'))
				return bad(flag, v, "must be a comma-separated list of protocol names");
		s->upgrades = v;
		return 0;
	case O_LOG_LEVEL:
		if (pl_log_set_level_name(v) < 0)
			return bad(flag, v, "must be debug, info, warn or error");
		return 0;
	}
	return 0;
}

/* Flags win over PILLION_* variables: the environment is applied first. */
/* Whether two paths name files in the same directory (as written: both come from the injection). */
static bool same_dir(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
	size_t la = sa ? (size_t)(sa - a) : 0, lb = sb ? (size_t)(sb - b) : 0;

	return la == lb && strncmp(a, b, la) == 0;
}

static int parse_args(int argc, char **argv, px_settings *s)
{
	char env[64], flag[64];
	int opt;

	for (const struct option *o = long_opts; o->name; o++) {
		if (o->has_arg == no_argument)
			continue;
		pl_flag_env_name(o->name, env, sizeof(env));
		const char *v = getenv(env);
		if (v && apply_opt(s, o->val, env, v))
			return 2;
	}
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (opt == O_HELP) {
			usage(stdout);
			exit(0);
		}
		if (opt == O_VERSION) {
			pl_version_print(stdout, "pillion-proxy");
			exit(0);
		}
		if (opt == O_CHECK) {
			s->check_only = true;
			continue;
		}
		if (opt == '?') {
			usage(stderr);
			return 2;
		}
		for (const struct option *o = long_opts; o->name; o++)
			if (o->val == opt)
				snprintf(flag, sizeof(flag), "--%s", o->name);
		if (apply_opt(s, opt, flag, optarg))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "pillion-proxy: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (!s->config_path) {
		fprintf(stderr, "pillion-proxy: --config (or PILLION_CONFIG) is required\n");
		return 2;
	}
	if (s->outbound_path && !s->mesh_path) {
		fprintf(stderr, "pillion-proxy: --outbound needs --mesh (they come from the same ConfigMap)\n");
		return 2;
	}
	if (s->outbound_path && !same_dir(s->outbound_path, s->mesh_path)) {
		fprintf(stderr, "pillion-proxy: --outbound must name a file in the directory of --mesh\n");
		return 2;
	}
	if (!s->check_only && !s->tls_dir) {
		fprintf(stderr, "pillion-proxy: --tls-dir (or PILLION_TLS_DIR) is required\n");
		return 2;
	}
	if (s->inbound_port == s->outbound_port || s->inbound_port == s->admin_port ||
	    s->outbound_port == s->admin_port) {
		fprintf(stderr, "pillion-proxy: the outbound, inbound and admin ports must differ\n");
		return 2;
	}
	return 0;
}

/* --- listeners --- */

static int listen_on(int family, const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;
		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, addr, &s->sin_addr) != 1)
			return -EINVAL;
		len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, addr, &s->sin6_addr) != 1)
			return -EINVAL;
		len = sizeof(*s);
	}
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Out of file descriptors: stop accepting for a moment instead of spinning on the queued connection. */
static void accept_resume(pl_ev_loop *loop, void *data)
{
	px_listener *l = data;

	for (int f = 0; f < 2; f++)
		if (l->fds[f] >= 0)
			pl_ev_io_set(loop, &l->io[f], EPOLLIN);
}

static void accept_pause(px_listener *l, int err)
{
	proxy *px = l->px;

	if (pl_ev_timer_armed(&l->pause))
		return;
	log_warnx("accept on the %s listener: %s; pausing it for 100 ms (%zu relayed connections open)",
		  l->dir == PX_OUT ? "outbound" : l->dir == PX_IN ? "inbound" : "admin", strerror(err), px->nconns);
	for (int f = 0; f < 2; f++)
		if (l->fds[f] >= 0)
			pl_ev_io_set(px->loop, &l->io[f], 0);
	pl_ev_timer_start(px->loop, &l->pause, 100 * PL_NS_PER_MS);
}

static void accept_cb(pl_ev_loop *loop, void *data, uint32_t ev)
{
	px_listener *l = data;
	proxy *px = l->px;
	(void)loop;
	(void)ev;

	for (int fam = 0; fam < 2; fam++) {
		if (l->fds[fam] < 0)
			continue;
		for (int i = 0; i < ACCEPT_BATCH; i++) {
			int fd = accept4(l->fds[fam], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
					accept_pause(l, errno);
					return;
				}
				break;
			}
			if (l->dir == PX_OUT || l->dir == PX_IN)
				px_dirs[l->dir]->accept(px, fd);
			else
				px_admin_accept(px, fd);
		}
	}
}

static int open_listener(proxy *px, px_listener *l, int dir, const char *v4, const char *v6, int port,
			 const char *name)
{
	l->px = px;
	l->dir = dir;
	pl_ev_timer_init(&l->pause, accept_resume, l);
	l->fds[0] = v4 ? listen_on(AF_INET, v4, port) : -EADDRNOTAVAIL;
	l->fds[1] = v6 ? listen_on(AF_INET6, v6, port) : -1;
	if (l->fds[0] < 0 && l->fds[1] < 0) {
		log_errorx("%s listener on port %d: %s", name, port, strerror(-l->fds[0]));
		return -1;
	}
	if (v4 && v6 && l->fds[1] < 0)
		log_warnx("%s listener: no IPv6 on port %d (%s); IPv4 only", name, port, strerror(-l->fds[1]));
	for (int f = 0; f < 2; f++) {
		pl_ev_io_init(&l->io[f], accept_cb, l);
		if (l->fds[f] >= 0)
			pl_ev_io_start(px->loop, &l->io[f], l->fds[f], EPOLLIN);
	}
	return 0;
}

static void close_listener(proxy *px, px_listener *l)
{
	pl_ev_timer_stop(px->loop, &l->pause);
	for (int f = 0; f < 2; f++)
		if (l->fds[f] >= 0) {
			pl_ev_io_stop(px->loop, &l->io[f]);
			close(l->fds[f]);
			l->fds[f] = -1;
		}
}

/* --- draining and signals --- */

static void drain_close(proxy *px)
{
	px->drain_listening = false;
	close_listener(px, &px->lst[PX_OUT]);
	close_listener(px, &px->lst[PX_IN]);
	/* HTTP sessions between requests close now; the others after their response (connection: close). */
	px_http_drain(px);
	px_h2_drain(px);
	if (px->nconns == 0) {
		/* Give the admin answer (POST /shutdown) a moment to leave. */
		pl_ev_timer_start(px->loop, &px->drain_timer, 50 * PL_NS_PER_MS);
		return;
	}
	log_info("draining %zu connections for at most %lld ms", px->nconns, (long long)(px->set.drain_ns / PL_NS_PER_MS));
	pl_ev_timer_start(px->loop, &px->drain_timer, px->set.drain_ns);
}

static void drain_timer_cb(pl_ev_loop *loop, void *data)
{
	proxy *px = data;
	(void)loop;

	if (px->drain_listening) {
		log_info("drain delay over: no new connections");
		drain_close(px);
		return;
	}
	if (px->nconns)
		log_info("drain time is up: closing %zu connections", px->nconns);
	while (px->conns)
		px_conn_close(px->conns, false);
	px_http_close_all(px);
	px_h2_close_all(px);
	px->stop = true;
}

void px_drain(proxy *px, const char *why, int64_t delay_ns)
{
	if (px->draining) {
		if (px->drain_listening) {
			log_info("%s again: the drain delay is cut short", why);
			pl_ev_timer_stop(px->loop, &px->drain_timer);
			drain_close(px);
		}
		return;
	}
	px->draining = true;
	if (delay_ns > 0) {
		/* /ready says "draining" and the pod is leaving every endpoint list, which takes a moment to
		 * reach every caller: until then new connections are still served, one request each. */
		px->drain_listening = true;
		log_info("%s: accepting new connections for %lld ms more (drain delay), answering HTTP with "
			 "\"Connection: close\"", why, (long long)(delay_ns / PL_NS_PER_MS));
		/* Idle keep-alive connections stay open meanwhile: closing one as a caller sends on it
		 * fails that request; the next request on it is answered with "Connection: close". */
		pl_ev_timer_start(px->loop, &px->drain_timer, delay_ns);
		return;
	}
	log_info("%s: no new connections", why);
	drain_close(px);
}

static int sigfd;
static pl_ev_io sig_io;

static void signal_cb(pl_ev_loop *loop, void *data, uint32_t ev)
{
	proxy *px = data;
	struct signalfd_siginfo si;
	(void)loop;
	(void)ev;

	while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: re-reading the files");
			px_state_reload(px);
		} else {
			px_drain(px, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT", px->set.drain_delay_ns);
		}
	}
}

int main(int argc, char **argv)
{
	static proxy px;
	px_settings *s = &px.set;
	sigset_t mask;

	s->outbound_port = 15401;
	s->inbound_port = 15406;
	s->admin_port = 15420;
	s->buf_size = 16384;
	s->connect_timeout_ns = 5 * PL_NS_PER_S;
	s->detect_timeout_ns = 1 * PL_NS_PER_S;
	s->upgrades = "websocket";
	s->idle_timeout_ns = 3600 * PL_NS_PER_S;
	s->stream_idle_timeout_ns = 300 * PL_NS_PER_S;
	s->max_pending_per_source = 256;
	s->upstream_max_conns = 1024;
	s->handshake_timeout_ns = 10 * PL_NS_PER_S;
	s->drain_ns = 5 * PL_NS_PER_S;
	s->endpoint_connect_timeout_ns = PL_NS_PER_S;
	s->reload_debounce_ns = 50 * PL_NS_PER_MS;
	s->resync_ns = 30 * PL_NS_PER_S;
	s->splice = true;
	if (argc > 1 && strcmp(argv[1], "wait") == 0)
		return px_wait_main(argc - 1, argv + 1);
	int r = parse_args(argc, argv, s);
	if (r)
		return r;
	if (s->check_only)
		return px_check_config(s->config_path, s->mesh_path, s->outbound_path);

	signal(SIGPIPE, SIG_IGN);
	/* Each relayed connection holds two sockets (and two pipes while splicing): use the hard limit. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

	px.loop = pl_ev_loop_new();
	if (!px.loop || sigfd < 0) {
		log_errorx("cannot create the event loop: %s", strerror(errno));
		return 1;
	}
	px.started_at = pl_ev_now(px.loop);
	px.idle_timeout_ns = 600 * PL_NS_PER_S;
	px.head_timeout_ns = 30 * PL_NS_PER_S;
	px_stats_init(&px);
	px_alog_init(&px);
	pl_ev_timer_init(&px.drain_timer, drain_timer_cb, &px);
	pl_ev_io_init(&sig_io, signal_cb, &px);
	pl_ev_io_start(px.loop, &sig_io, sigfd, EPOLLIN);

	/* Identity first (linkerd2-proxy's order): read the files before any listener binds. */
	px_state_init(&px);
	const char *a4 = "0.0.0.0", *a6 = "::";
	if (s->admin_addr) {
		struct in6_addr tmp;
		bool v6 = inet_pton(AF_INET6, s->admin_addr, &tmp) == 1;
		a4 = v6 ? NULL : s->admin_addr;
		a6 = v6 ? s->admin_addr : NULL;
	}
	/* Outbound only on loopback: the redirect rules send the app's traffic there, nobody else can. */
	if (open_listener(&px, &px.lst[PX_OUT], PX_OUT, "127.0.0.1", "::1", s->outbound_port, "outbound") < 0 ||
	    open_listener(&px, &px.lst[PX_IN], PX_IN, "0.0.0.0", "::", s->inbound_port, "inbound") < 0 ||
	    open_listener(&px, &px.admin, -1, a4, a6, s->admin_port, "admin") < 0)
		return 1;
	const char *why;
	log_info("pillion-proxy listening: outbound %d, inbound %d, admin %d; %s", s->outbound_port, s->inbound_port,
		 s->admin_port, px_ready(&px, &why) ? "ready" : why);

	while (!px.stop) {
		r = pl_ev_run_once(px.loop, -1);
		if (px.alog_out.len)
			px_alog_flush(&px);
		if (r < 0) {
			log_errorx("event loop: %s", strerror(-r));
			return 1;
		}
	}
	close_listener(&px, &px.admin);
	while (px.conns)
		px_conn_close(px.conns, false);
	px_http_close_all(&px);
	px_h2_free(&px);
	px_pools_free(&px);
	px_alog_free(&px);
	px_stats_free(&px);
	px_hbuf_free(&px);
	px_state_close(&px);
	px_pool_free(&px);
	pl_hmap_free(&px.pending); /* empty: every connection released its count when it closed */
	pl_ev_loop_free(px.loop);
	close(sigfd);
	log_info("pillion-proxy stopped");
	return 0;
}
