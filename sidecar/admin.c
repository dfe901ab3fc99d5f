/* The admin port: /live, /ready, /metrics (Prometheus text), /config, POST /shutdown. One request per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/version.h"
#include "json/json.h"
#include "model/model.h"
#include "pki/tls.h"
#include "l7.h"

#define REQ_MAX 8192
#define ADMIN_TIMEOUT_NS (5 * 1000000000LL)

typedef struct admin_conn {
	proxy *px;
	int fd;
	pl_ev_io io;
	pl_ev_timer timer;
	char req[REQ_MAX];
	size_t reqlen;
	pl_buf resp;
	size_t sent;
} admin_conn;

static void admin_close(admin_conn *a)
{
	pl_ev_io_stop(a->px->loop, &a->io);
	pl_ev_timer_stop(a->px->loop, &a->timer);
	close(a->fd);
	pl_buf_free(&a->resp);
	free(a);
}

static void respond(admin_conn *a, int code, const char *ctype, const char *body, size_t len)
{
	const char *reason = code == 200 ? "OK" : code == 202 ? "Accepted" : code == 404 ? "Not Found"
			   : code == 405 ? "Method Not Allowed" : code == 400 ? "Bad Request" : code == 403 ? "Forbidden"
			   : code == 431 ? "Request Header Fields Too Large" : "Service Unavailable";
	pl_buf_printf(&a->resp, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		      code, reason, ctype, len);
	pl_buf_append(&a->resp, body, len);
}

static void respond_text(admin_conn *a, int code, const char *text)
{
	respond(a, code, "text/plain; charset=utf-8", text, strlen(text));
}

static void metric_head(pl_buf *b, const char *name, const char *type, const char *help)
{
	pl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void px_metrics_render(const proxy *px, pl_buf *b)
{
	static const char *dirs[2] = {"outbound", "inbound"};
	static const char *tls[2] = {"plaintext", "mtls"};
	static const char *files[3] = {"config", "mesh", "tls"};
	const px_metrics *m = &px->m;
	const char *why;

	pl_version_metric(b);
	metric_head(b, "pillion_proxy_connections_open", "gauge", "Relayed connections open now.");
	for (int d = 0; d < 2; d++)
		for (int t = 0; t < 2; t++)
			pl_buf_printf(b, "pillion_proxy_connections_open{direction=\"%s\",transport=\"%s\"} %lld\n", dirs[d],
				      tls[t], (long long)m->conns_open[d][t]);
	metric_head(b, "pillion_proxy_connections_total", "counter", "Relayed connections established.");
	for (int d = 0; d < 2; d++)
		for (int t = 0; t < 2; t++)
			pl_buf_printf(b, "pillion_proxy_connections_total{direction=\"%s\",transport=\"%s\"} %llu\n", dirs[d],
				      tls[t], (unsigned long long)m->conns_total[d][t]);
	metric_head(b, "pillion_proxy_bytes_total", "counter",
		    "Bytes relayed; flow is downstream_to_upstream (from the connecting side) or upstream_to_downstream.");
	for (int d = 0; d < 2; d++) {
		pl_buf_printf(b, "pillion_proxy_bytes_total{direction=\"%s\",flow=\"downstream_to_upstream\"} %llu\n",
			      dirs[d], (unsigned long long)m->bytes[d][0]);
		pl_buf_printf(b, "pillion_proxy_bytes_total{direction=\"%s\",flow=\"upstream_to_downstream\"} %llu\n",
			      dirs[d], (unsigned long long)m->bytes[d][1]);
	}
	metric_head(b, "pillion_proxy_spliced_bytes_total", "counter",
		    "Bytes moved by splice(2) without passing through user space.");
	pl_buf_printf(b, "pillion_proxy_spliced_bytes_total %llu\n", (unsigned long long)m->spliced_bytes);
	metric_head(b, "pillion_proxy_idle_closed_total", "counter",
		    "Byte relays and tunnels closed after --idle-timeout without a byte either way.");
	for (int d = 0; d < 2; d++)
		pl_buf_printf(b, "pillion_proxy_idle_closed_total{direction=\"%s\"} %llu\n", dirs[d],
			      (unsigned long long)m->idle_closed[d]);
	metric_head(b, "pillion_proxy_tls_handshake_failures_total", "counter", "Failed mTLS handshakes by reason.");
	for (int d = 0; d < 2; d++)
		for (int r = 0; r < PX_TLSF__N; r++)
			pl_buf_printf(b, "pillion_proxy_tls_handshake_failures_total{direction=\"%s\",reason=\"%s\"} %llu\n",
				      dirs[d], px_tls_fail_names[r], (unsigned long long)m->tls_fail[d][r]);
	metric_head(b, "pillion_proxy_refused_connections_total", "counter", "Connections refused by reason.");
	for (int d = 0; d < 2; d++)
		for (int r = 0; r < PX_REFUSE__N; r++)
			pl_buf_printf(b, "pillion_proxy_refused_connections_total{direction=\"%s\",reason=\"%s\"} %llu\n",
				      dirs[d], px_refuse_names[r], (unsigned long long)m->refused[d][r]);
	metric_head(b, "pillion_proxy_connect_failures_total", "counter", "Upstream connects that failed or timed out.");
	for (int d = 0; d < 2; d++)
		pl_buf_printf(b, "pillion_proxy_connect_failures_total{direction=\"%s\"} %llu\n", dirs[d],
			      (unsigned long long)m->connect_fail[d]);
	metric_head(b, "pillion_proxy_resets_total", "counter", "Relayed connections ended by a reset.");
	for (int d = 0; d < 2; d++)
		pl_buf_printf(b, "pillion_proxy_resets_total{direction=\"%s\"} %llu\n", dirs[d],
			      (unsigned long long)m->resets[d]);
	metric_head(b, "pillion_proxy_reloads_total", "counter", "File reloads by file and result.");
	for (int f = 0; f < 3; f++) {
		pl_buf_printf(b, "pillion_proxy_reloads_total{file=\"%s\",result=\"ok\"} %llu\n", files[f],
			      (unsigned long long)m->reloads_ok[f]);
		pl_buf_printf(b, "pillion_proxy_reloads_total{file=\"%s\",result=\"error\"} %llu\n", files[f],
			      (unsigned long long)m->reloads_err[f]);
	}
	metric_head(b, "pillion_proxy_file_info", "gauge",
		    "The content hash of each file in use (1), and whether the last change was refused.");
	for (int f = 0; f < 3; f++)
		pl_buf_printf(b, "pillion_proxy_file_info{file=\"%s\",hash=\"%s\",last_refused=\"%s\"} 1\n", files[f],
			      px->files[f].good, px->files[f].error[0] ? "true" : "false");
	metric_head(b, "pillion_proxy_config_info", "gauge", "The config in use: its hash and identity.");
	if (px->config)
		pl_buf_printf(b, "pillion_proxy_config_info{hash=\"%s\",spiffe_id=\"%s\",mtls_mode=\"%s\"} 1\n",
			      px->config->cfg.hash, px->config->cfg.spiffe_id, pl_mtls_names[px->config->cfg.mtls_mode]);
	metric_head(b, "pillion_proxy_certificate_expiry_timestamp_seconds", "gauge",
		    "notAfter of the certificate in use (unix seconds); 0 when none.");
	pl_buf_printf(b, "pillion_proxy_certificate_expiry_timestamp_seconds %lld\n",
		      px->creds ? (long long)pl_tls_creds_not_after(px->creds) : 0LL);
	metric_head(b, "pillion_proxy_ready", "gauge", "1 when /ready answers 200.");
	pl_buf_printf(b, "pillion_proxy_ready %d\n", px_ready(px, &why) ? 1 : 0);
	metric_head(b, "pillion_proxy_buffers_pooled", "gauge", "Free relay buffers kept for reuse.");
	pl_buf_printf(b, "pillion_proxy_buffers_pooled %zu\n", px->npool);
	px_stats_render(px, b);
}

static void config_body(admin_conn *a)
{
	proxy *px = a->px;
	json_t *o = json_object();
	const char *why;

	json_object_set_new(o, "ready", json_boolean(px_ready(px, &why)));
	json_object_set_new(o, "reason", json_string(why));
	if (px->config)
		json_object_set(o, "config", px->config->doc);
	if (px->creds) {
		json_t *c = json_object();
		json_object_set_new(c, "spiffeId", json_string(pl_tls_creds_spiffe_id(px->creds)));
		json_object_set_new(c, "notBefore", json_integer(pl_tls_creds_not_before(px->creds)));
		json_object_set_new(c, "notAfter", json_integer(pl_tls_creds_not_after(px->creds)));
		json_object_set_new(c, "trustBundleRoots", json_integer(pl_tls_creds_nroots(px->creds)));
		json_object_set_new(o, "certificate", c);
	}
	json_t *files = json_object();
	for (int i = 0; i < 3; i++) {
		json_t *f = json_object();
		json_object_set_new(f, "hash", json_string(px->files[i].good));
		json_object_set_new(f, "lastError", json_string(px->files[i].error));
		json_object_set_new(files, px->files[i].what, f);
	}
	json_object_set_new(o, "files", files);
	if (px->mesh) {
		json_t *m = json_object();
		json_object_set_new(m, "namespace", json_string(px->mesh->dir.namespace));
		json_object_set_new(m, "services", json_integer((json_int_t)px->mesh->dir.nservices));
		json_object_set_new(m, "pods", json_integer((json_int_t)px->mesh->dir.npods));
		json_object_set_new(o, "mesh", m);
	}
	char *s = pl_json_dump_pretty(o);
	json_decref(o);
	respond(a, 200, "application/json", s, strlen(s));
	free(s);
}

static bool from_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	}
	return false;
}

static void handle(admin_conn *a)
{
	proxy *px = a->px;
	char method[16], path[256];
	const char *why;

	if (sscanf(a->req, "%15s %255s HTTP/1.", method, path) != 2) {
		respond_text(a, 400, "bad request\n");
		return;
	}
	char *q = strchr(path, '?');
	if (q)
		*q = '\0';
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	if (strcmp(path, "/live") == 0 && get) {
		respond_text(a, 200, "live\n");
	} else if (strcmp(path, "/ready") == 0 && get) {
		bool ok = px_ready(px, &why);
		char msg[128];
		snprintf(msg, sizeof(msg), "%s\n", why);
		respond_text(a, ok ? 200 : 503, msg);
	} else if (strcmp(path, "/metrics") == 0 && get) {
		pl_buf b = PL_BUF_INIT;
		px_metrics_render(px, &b);
		respond(a, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
		pl_buf_free(&b);
	} else if (strcmp(path, "/config") == 0 && get) {
		config_body(a);
	} else if (strcmp(path, "/shutdown") == 0) {
		if (strcmp(method, "POST") != 0) {
			respond_text(a, 405, "use POST\n");
			return;
		}
		/* The admin port is reachable from the pod network: only the pod itself may stop its proxy. */
		if (!from_loopback(a->fd)) {
			respond_text(a, 403, "POST /shutdown is accepted from the pod itself (loopback) only\n");
			return;
		}
		respond_text(a, 202, "draining\n");
		px_drain(px, "POST /shutdown");
	} else if (strcmp(path, "/live") == 0 || strcmp(path, "/ready") == 0 || strcmp(path, "/metrics") == 0 ||
		   strcmp(path, "/config") == 0) {
		respond_text(a, 405, "use GET\n");
	} else {
		respond_text(a, 404, "not found: try /live, /ready, /metrics, /config, POST /shutdown\n");
	}
	if (strcmp(method, "HEAD") == 0) {
		char *end = strstr(a->resp.data, "\r\n\r\n");
		if (end)
			a->resp.len = (size_t)(end + 4 - a->resp.data);
	}
}

static void admin_io(pl_ev_loop *loop, void *data, uint32_t ev)
{
	admin_conn *a = data;
	(void)ev;

	if (!a->resp.len) {
		ssize_t n = recv(a->fd, a->req + a->reqlen, REQ_MAX - 1 - a->reqlen, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			admin_close(a);
			return;
		}
		a->reqlen += (size_t)n;
		a->req[a->reqlen] = '\0';
		if (!strstr(a->req, "\r\n\r\n") && !strstr(a->req, "\n\n")) {
			if (a->reqlen < REQ_MAX - 1)
				return;
			respond_text(a, 431, "request too large\n");
		} else {
			handle(a);
		}
		pl_ev_io_set(loop, &a->io, EPOLLOUT);
	}
	while (a->sent < a->resp.len) {
		ssize_t n = send(a->fd, a->resp.data + a->sent, a->resp.len - a->sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			break;
		a->sent += (size_t)n;
	}
	admin_close(a);
}

static void admin_timeout(pl_ev_loop *loop, void *data)
{
	(void)loop;
	admin_close(data);
}

void px_admin_accept(proxy *px, int fd)
{
	admin_conn *a = calloc(1, sizeof(*a));

	if (!a)
		abort();
	a->px = px;
	a->fd = fd;
	pl_ev_io_init(&a->io, admin_io, a);
	pl_ev_timer_init(&a->timer, admin_timeout, a);
	if (pl_ev_io_start(px->loop, &a->io, fd, EPOLLIN) < 0) {
		close(fd);
		free(a);
		return;
	}
	pl_ev_timer_start(px->loop, &a->timer, ADMIN_TIMEOUT_NS);
}
