/* pillion-webhook's HTTPS server on libwebsockets (its only user): routes, bodies, the listener, signals, certificate reloads. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "base/log.h"
#include "webhook.h"

#define CHUNK 16384
#define ACCEPT_BURST 64
#define RELOAD_DEBOUNCE_US (100 * 1000)
#define DRAIN_POLL_US (20 * 1000)
/* TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 keeps OpenSSL's defaults. */
#define TLS12_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
		      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

typedef struct wh_server {
	const wh_config *cfg;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	int listen_fd, sig_fd;
	struct lws *listen_wsi;
	wh_certs certs;
	lws_sorted_usec_list_t sul_check, sul_reload, sul_drain;
	int inflight;         /* requests being read or answered */
	bool draining, stop;
	int64_t drain_deadline_ns;
} wh_server;

/* One per process: the timer callbacks get only their lws_sorted_usec_list_t. */
static wh_server S;

/* Per connection (libwebsockets zeroes it); reset at each request of a keep-alive connection. */
typedef struct wh_sess {
	bool active;          /* counted in S.inflight */
	bool close;           /* close the connection after this answer */
	int early;            /* a refusal decided from the headers, sent once the body is read */
	int64_t t0_ns;
	pl_buf body;
	char *out;            /* the answer's body (owned) */
	size_t out_len, out_off;
} wh_sess;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sess_end(wh_sess *s)
{
	if (s->active)
		S.inflight--;
	pl_buf_free(&s->body);
	free(s->out);
	memset(s, 0, sizeof(*s));
}

static void sess_begin(wh_sess *s)
{
	sess_end(s);
	s->active = true;
	s->t0_ns = now_ns();
	S.inflight++;
}

/* Sends the status line and headers now and body (owned) from the writeable callback. */
static int respond(struct lws *wsi, wh_sess *s, int status, const char *ctype, char *body, size_t len)
{
	unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;

	free(s->out);
	s->out = body;
	s->out_len = len;
	s->out_off = 0;
	if (S.draining)
		s->close = true;
	if (lws_add_http_header_status(wsi, (unsigned int)status, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (const unsigned char *)ctype,
					 (int)strlen(ctype), &p, end) ||
	    lws_add_http_header_content_length(wsi, len, &p, end) ||
	    (s->close && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end)) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int respond_text(struct lws *wsi, wh_sess *s, int status, const char *text)
{
	char *body = strdup(text);

	if (!body)
		abort();
	return respond(wsi, s, status, "text/plain; charset=utf-8", body, strlen(body));
}

/* Refuses a request whose body may still be on its way: answered, then the connection closed. */
static int refuse(struct lws *wsi, wh_sess *s, int status, const char *kind, const char *text)
{
	wh_metrics_error(kind);
	s->close = true;
	return respond_text(wsi, s, status, text);
}

/* 32 lowercase hex characters from getrandom(2); false when the kernel gives none. */
static bool random_id(char out[WH_ID_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[WH_ID_HEX / 2];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[WH_ID_HEX] = '\0';
	return true;
}

/* The whole body of POST /mutate is in: answer it. */
static int answer(struct lws *wsi, wh_sess *s)
{
	char id[WH_ID_HEX + 1];
	bool have_id;
	wh_reply r;

	if (s->early == 415) {
		wh_metrics_error("unsupported_media_type");
		return respond_text(wsi, s, 415, "Content-Type must be application/json\n");
	}
	have_id = random_id(id);
	if (!have_id)
		wh_metrics_error("random");
	wh_review(S.cfg, s->body.data ? s->body.data : "", s->body.len, have_id ? id : NULL, &r);
	pl_buf_free(&s->body);
	if (r.status == 200) {
		wh_metrics_admission(r.injected, r.reason, (double)(now_ns() - s->t0_ns) / 1e9);
		log_debug("admission: %s (%s)", r.injected ? "injected" : "skipped", r.reason);
	} else {
		wh_metrics_error("bad_request");
		log_warnx("%s: %d: %.*s", __func__, r.status, (int)(r.len > 200 ? 200 : r.len - 1), r.body);
	}
	char *body = r.body;
	r.body = NULL;
	return respond(wsi, s, r.status, r.ctype, body, r.len);
}

static int on_request(struct lws *wsi, wh_sess *s, const char *path)
{
	bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	bool post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
	char cl[32], ct[160];
	char *end;

	sess_begin(s);
	if (strcmp(path, "/mutate") == 0) {
		if (!post)
			return refuse(wsi, s, 405, "method_not_allowed", "use POST\n");
		if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
			return refuse(wsi, s, 411, "length_required", "Content-Length required\n");
		errno = 0;
		unsigned long long n = strtoull(cl, &end, 10);
		if (*end || errno || cl[0] < '0' || cl[0] > '9')
			return refuse(wsi, s, 400, "bad_request", "bad Content-Length\n");
		if (n > S.cfg->max_body)
			return refuse(wsi, s, 413, "payload_too_large", "request body too large\n");
		if (lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0 || !wh_content_type_ok(ct))
			s->early = 415;  /* answered after the body so that the connection stays usable */
		return n == 0 ? answer(wsi, s) : 0;
	}
	if (strcmp(path, "/healthz") && strcmp(path, "/readyz") && strcmp(path, "/metrics")) {
		if (!get)  /* it may carry a body we will not read */
			return refuse(wsi, s, 404, "not_found", "not found\n");
		wh_metrics_error("not_found");
		return respond_text(wsi, s, 404, "not found\n");
	}
	if (!get)
		return refuse(wsi, s, 405, "method_not_allowed", "use GET\n");
	if (strcmp(path, "/healthz") == 0)
		return respond_text(wsi, s, 200, "ok\n");
	if (strcmp(path, "/readyz") == 0)
		return S.draining ? respond_text(wsi, s, 503, "draining\n") : respond_text(wsi, s, 200, "ok\n");
	pl_buf b = PL_BUF_INIT;
	wh_metrics_render(&b, S.inflight, S.draining);
	return respond(wsi, s, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
}

static int on_writeable(struct lws *wsi, wh_sess *s)
{
	unsigned char buf[LWS_PRE + CHUNK];
	size_t n;
	bool last, close;

	if (!s->out)
		return 0;
	n = s->out_len - s->out_off;
	if (n > CHUNK)
		n = CHUNK;
	last = s->out_off + n == s->out_len;
	memcpy(buf + LWS_PRE, s->out + s->out_off, n);
	/* Partial sends are buffered inside libwebsockets: it reports the whole length or fails. */
	if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
		return -1;
	s->out_off += n;
	if (!last) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	close = s->close;
	sess_end(s);
	if (close)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	wh_sess *s = user;

	if (!s && (reason == LWS_CALLBACK_HTTP || reason == LWS_CALLBACK_HTTP_BODY ||
		   reason == LWS_CALLBACK_HTTP_BODY_COMPLETION || reason == LWS_CALLBACK_HTTP_WRITEABLE))
		return -1;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_request(wsi, s, in ? (const char *)in : "");
	case LWS_CALLBACK_HTTP_BODY:
		if (!s->active || s->early || s->out)
			return 0;  /* read and dropped */
		if (s->body.len + len > S.cfg->max_body)
			return refuse(wsi, s, 413, "payload_too_large", "request body too large\n");
		pl_buf_append(&s->body, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return s->active && !s->out ? answer(wsi, s) : 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return on_writeable(wsi, s);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (s) {
			if (s->active)
				wh_metrics_error("client_gone");
			sess_end(s);
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* ---- the listener, signals and certificate files: plain fds in the same loop ---- */

static void accept_some(void)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd = accept4(S.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warnx("%s: accept: %s", __func__, strerror(errno));
			return;
		}
		/* Headers and body go out as two writes: do not let Nagle hold the second. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!lws_adopt_socket_vhost(S.vh, fd))  /* it closed fd; a peer already gone, say a TCP probe */
			log_debug("%s: could not take a connection", __func__);
	}
}

static void drain_check(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	if (S.inflight > 0 && now_ns() < S.drain_deadline_ns) {
		lws_sul_schedule(S.ctx, 0, &S.sul_drain, drain_check, DRAIN_POLL_US);
		return;
	}
	if (S.inflight > 0)
		log_warnx("%s: shutdown timeout with %d request(s) still in flight", __func__, S.inflight);
	S.stop = true;
	lws_cancel_service(S.ctx);
}

static void on_signal(void)
{
	struct signalfd_siginfo si;

	while (read(S.sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		const char *name = si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT";
		if (S.draining) {
			log_info("%s again: stopping now", name);
			S.stop = true;
			lws_cancel_service(S.ctx);
			return;
		}
		log_info("%s: no new connections; answering %d request(s) in flight", name, S.inflight);
		S.draining = true;
		if (S.listen_wsi)
			lws_set_timeout(S.listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		S.drain_deadline_ns = now_ns() + S.cfg->shutdown_timeout_ns;
		drain_check(&S.sul_drain);
	}
}

typedef union {
	union lws_tls_cert_info_results r;
	char big[sizeof(union lws_tls_cert_info_results) + 2048];
} cert_info;

/* True when the vhost now serves the staged certificate (libwebsockets does not say whether its reload worked). */
static bool serving_staged(void)
{
	const enum lws_tls_cert_info types[] = {LWS_TLS_CERT_INFO_VALIDITY_FROM, LWS_TLS_CERT_INFO_VALIDITY_TO,
						LWS_TLS_CERT_INFO_OPAQUE_PUBLIC_KEY};
	const size_t len = sizeof(cert_info) - sizeof(union lws_tls_cert_info_results) + 64;
	struct lws_x509_cert *x = NULL;
	bool same = true;

	if (lws_x509_create(&x))
		return false;
	if (lws_x509_parse_from_pem(x, S.certs.cert.data, S.certs.cert.len + 1)) {
		lws_x509_destroy(&x);
		return false;
	}
	for (size_t i = 0; same && i < sizeof(types) / sizeof(types[0]); i++) {
		cert_info a, b;
		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		if (lws_tls_vhost_cert_info(S.vh, types[i], &a.r, len) || lws_x509_info(x, types[i], &b.r, len))
			same = false;
		else if (types[i] == LWS_TLS_CERT_INFO_OPAQUE_PUBLIC_KEY)
			same = a.r.ns.len == b.r.ns.len && a.r.ns.len >= 0 && memcmp(a.r.ns.name, b.r.ns.name, (size_t)a.r.ns.len) == 0;
		else
			same = a.r.time == b.r.time;
	}
	lws_x509_destroy(&x);
	return same;
}

static void reload(const char *why)
{
	char err[512], when[32];
	time_t t;
	struct tm tm;
	int rc = wh_certs_stage(&S.certs, err, sizeof(err));

	if (rc == 0)
		return;
	if (rc < 0) {
		log_warnx("%s: keeping the current serving certificate: %s", __func__, err);
		wh_metrics_cert(false, 0);
		return;
	}
	/* New handshakes use the new pair; sessions already set up keep theirs (OpenSSL copies it per SSL). */
	lws_tls_cert_updated(S.ctx, S.certs.mem_cert_path, S.certs.mem_key_path, NULL, 0, NULL, 0);
	if (!serving_staged()) {
		log_errorx("%s: the TLS library did not take the new certificate; keeping the previous one", __func__);
		wh_metrics_cert(false, 0);
		if (wh_certs_rollback(&S.certs) == 0)
			lws_tls_cert_updated(S.ctx, S.certs.mem_cert_path, S.certs.mem_key_path, NULL, 0, NULL, 0);
		return;
	}
	t = (time_t)S.certs.not_after;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_info("serving certificate reloaded (%s); valid until %s", why, when);
	wh_metrics_cert(true, S.certs.not_after);
}

static void reload_soon(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	reload("files changed");
}

static void periodic_check(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	if (S.certs.inotify_fd >= 0)
		wh_certs_watch(&S.certs);  /* re-arms a watch whose directory went away and came back */
	if (wh_certs_changed_on_disk(&S.certs))
		reload("periodic check");
	lws_sul_schedule(S.ctx, 0, &S.sul_check, periodic_check, S.cfg->cert_check_ns / 1000);
}

static int raw_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	int fd = (int)lws_get_socket_fd(wsi);

	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (wsi == S.listen_wsi)
			accept_some();
		else if (fd == S.sig_fd)
			on_signal();
		else if (fd == S.certs.inotify_fd && wh_certs_watch_read(&S.certs))
			lws_sul_schedule(S.ctx, 0, &S.sul_reload, reload_soon, RELOAD_DEBOUNCE_US);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (wsi == S.listen_wsi) {
			S.listen_wsi = NULL;
			S.listen_fd = -1;
		}
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{"pillion-webhook", http_cb, sizeof(wh_sess), 0, 0, NULL, 0},
	{"pillion-raw", raw_cb, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);
	pl_log_level l = level & LLL_ERR ? PL_LOG_ERROR : level & LLL_WARN ? PL_LOG_WARN : level & LLL_NOTICE ? PL_LOG_INFO : PL_LOG_DEBUG;

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	pl_log(l, "libwebsockets: %.*s", (int)n, line);
}

static int listen_on(const char *addr, int port, char *err, size_t errlen)
{
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	struct sockaddr *sa;
	socklen_t sl;
	int fd, one = 1, zero = 0;

	memset(&a4, 0, sizeof(a4));
	memset(&a6, 0, sizeof(a6));
	if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)port);
		sa = (struct sockaddr *)&a4;
		sl = sizeof(a4);
	} else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)port);
		sa = (struct sockaddr *)&a6;
		sl = sizeof(a6);
	} else {
		snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address", addr);
		return -1;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)  /* "::" takes IPv4 too */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, sl) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, errlen, "%s port %d: %s", addr, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static struct lws *adopt_fd(int fd)
{
	lws_sock_file_fd_type u;

	u.filefd = fd;
	return lws_adopt_descriptor_vhost(S.vh, LWS_ADOPT_RAW_FILE_DESC, u, "pillion-raw", NULL);
}

int wh_serve(const wh_config *cfg)
{
	struct lws_context_creation_info info;
	char err[512];
	bool adopted = false;
	sigset_t set;
	int ino;

	S.cfg = cfg;
	S.listen_fd = S.sig_fd = -1;
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	if (wh_certs_init(&S.certs, cfg->tls_cert, cfg->tls_key, err, sizeof(err)) != 0) {
		log_errorx("serving certificate: %s", err);
		return 1;
	}
	wh_metrics_cert(true, S.certs.not_after);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	S.sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	S.listen_fd = listen_on(cfg->listen_address, cfg->port, err, sizeof(err));
	if (S.sig_fd < 0 || S.listen_fd < 0) {
		log_errorx("listen: %s", S.sig_fd < 0 ? strerror(errno) : err);
		goto fail;
	}

	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.port = CONTEXT_PORT_NO_LISTEN;
	S.ctx = lws_create_context(&info);
	if (!S.ctx) {
		log_errorx("libwebsockets: could not create its context");
		goto fail;
	}
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;  /* our own listener hands it the connections */
	info.vhost_name = "pillion-webhook";
	info.protocols = protocols;
	info.ssl_cert_filepath = S.certs.mem_cert_path;
	info.ssl_private_key_filepath = S.certs.mem_key_path;
	info.ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_RENEGOTIATION;
	info.ssl_cipher_list = TLS12_CIPHERS;
	info.alpn = "http/1.1";
	info.keepalive_timeout = 60;
	info.timeout_secs = 10;
	S.vh = lws_create_vhost(S.ctx, &info);
	if (!S.vh) {
		log_errorx("libwebsockets: could not create the HTTPS vhost (see its messages above)");
		goto fail;
	}
	/* From here libwebsockets owns (and closes) the fds handed to it, even when adoption fails. */
	adopted = true;
	S.listen_wsi = adopt_fd(S.listen_fd);
	if (!S.listen_wsi || !adopt_fd(S.sig_fd)) {
		log_errorx("libwebsockets: could not watch the listening socket");
		goto fail;
	}
	ino = wh_certs_watch(&S.certs);
	if (ino < 0 || !adopt_fd(ino)) {
		log_warnx("inotify unavailable (%s): the certificate files are checked every %llds only", strerror(errno),
			  (long long)(cfg->cert_check_ns / 1000000000));
		S.certs.inotify_fd = -1;
	}
	lws_sul_schedule(S.ctx, 0, &S.sul_check, periodic_check, cfg->cert_check_ns / 1000);
	log_info("pillion-webhook listening on https://%s:%d (POST /mutate, GET /healthz /readyz /metrics); proxy %s, init %s",
		 cfg->listen_address, cfg->port, cfg->proxy_image, cfg->init_image);

	while (!S.stop)
		if (lws_service(S.ctx, 0) < 0)
			break;
	lws_context_destroy(S.ctx);
	S.certs.inotify_fd = -1;  /* closed with the context */
	wh_certs_free(&S.certs);
	log_info("stopped");
	return 0;
fail:
	if (S.ctx)
		lws_context_destroy(S.ctx);
	if (!adopted && S.listen_fd >= 0)
		close(S.listen_fd);
	if (!adopted && S.sig_fd >= 0)
		close(S.sig_fd);
	wh_certs_free(&S.certs);
	return 1;
}
