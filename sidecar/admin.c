/* The admin port: /live, /ready, /metrics (Prometheus text), /config, POST /shutdown. One request per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/version.h"
#include "h2/h2.h"
#include "json/json.h"
#include "model/model.h"
#include "pki/tls.h"
#include "l7.h"

#define REQ_MAX 8192
#define ADMIN_TIMEOUT_NS (5 * 1000000000LL)

/* The kubelet's probe of an app container, run by the proxy on loopback for GET /app-health/...:
 * the app's own ports take no plaintext under STRICT, so the kubelet asks the admin port. */
typedef struct probe_call {
	int fd;
	pl_ev_io io;
	pl_buf req;
	size_t sent;
	char resp[256];             /* the start of the app's answer: its status line is all that counts */
	size_t len;
	char what[320];             /* "web/readiness: GET 127.0.0.1:8080/healthz" for the answer's body */
	bool tcp;                   /* a tcpSocket probe: a connection accepted passes */
	/* a gRPC probe: grpc.health.v1.Health/Check over HTTP/2 (h2c) on loopback */
	bool grpc;
	int port;
	char service[208];
	pl_h2 *h2;
	pl_buf out;                 /* frames not yet written */
	size_t out_off;
	size_t body_off;            /* of req: the request message, sent as the stream's body */
	int gstatus;                /* grpc-status, -1 until the trailers */
	int serving;                /* HealthCheckResponse.status, -1 until the answer */
	uint8_t msg[16];            /* the start of the answer's message */
	size_t msglen;
	bool closed;                /* the stream is over */
	uint32_t reset;             /* its reset code, 0 when it ended normally */
} probe_call;

typedef struct admin_conn {
	proxy *px;
	int fd;
	pl_ev_io io;
	pl_ev_timer timer;
	char req[REQ_MAX];
	size_t reqlen;
	pl_buf resp;
	size_t sent;
	bool head;                  /* a HEAD request: the answer without its body */
	probe_call *pc;             /* a probe running for this request, or NULL */
} admin_conn;

static void probe_free(admin_conn *a)
{
	probe_call *pc = a->pc;

	if (!pc)
		return;
	pl_ev_io_stop(a->px->loop, &pc->io);
	if (pc->fd >= 0)
		close(pc->fd);
	pl_buf_free(&pc->req);
	pl_buf_free(&pc->out);
	pl_h2_free(pc->h2);
	free(pc);
	a->pc = NULL;
}

static void admin_close(admin_conn *a)
{
	probe_free(a);
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
			   : code == 431 ? "Request Header Fields Too Large" : code == 503 ? "Service Unavailable"
			   : code < 300 ? "OK" : code < 400 ? "Redirection" : code < 500 ? "Client Error" : "Server Error";
	pl_buf_printf(&a->resp, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		      code, reason, ctype, len);
	pl_buf_append(&a->resp, body, len);
}

static void respond_text(admin_conn *a, int code, const char *text)
{
	respond(a, code, "text/plain; charset=utf-8", text, strlen(text));
}

/* A HEAD request gets the answer's head only. */
static void head_only(admin_conn *a)
{
	char *end = a->head ? strstr(a->resp.data, "\r\n\r\n") : NULL;

	if (end)
		a->resp.len = (size_t)(end + 4 - a->resp.data);
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
	metric_head(b, "pillion_proxy_mesh_versions_held", "gauge",
		    "Mesh directory versions in memory: the one in use, and older ones still held by connections in their handshake or requests in flight.");
	pl_buf_printf(b, "pillion_proxy_mesh_versions_held %zu\n", px_meshes_held());
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
	pl_buf_printf(b, "pillion_proxy_buffers_pooled %u\n", px->bufs.n);
	metric_head(b, "pillion_proxy_upstream_pools", "gauge",
		    "Upstream connection pools (one per destination address, port and mTLS), by protocol.");
	pl_buf_printf(b, "pillion_proxy_upstream_pools{protocol=\"http1\"} %zu\n", px->pools.count);
	pl_buf_printf(b, "pillion_proxy_upstream_pools{protocol=\"http2\"} %zu\n", px_h2_pools(px));
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

/* GET /status: what this proxy runs, for the operator's Programmed condition and `pillionctl
 * status`: the content hashes (as the operator wrote them) of the config and mesh directory in
 * use, when each was loaded, the last refusal, the certificate's notAfter. No policy content. */
static void status_body(admin_conn *a)
{
	proxy *px = a->px;
	const char *why;
	json_t *o = json_object();
	const char *hashes[3] = {px->config ? px->config->cfg.hash : NULL, px->mesh ? px->mesh->dir.hash : NULL, NULL};

	json_object_set_new(o, "ready", json_boolean(px_ready(px, &why)));
	json_object_set_new(o, "reason", json_string(why));
	for (int i = 0; i < 3; i++) {
		json_t *f = json_object();
		if (i < 2)
			json_object_set_new(f, "hash", hashes[i] ? json_string(hashes[i]) : json_null());
		json_object_set_new(f, "loadedAt", json_integer(px->files[i].loaded_at));
		json_object_set_new(f, "lastError", json_string(px->files[i].error));
		if (i == 2 && px->creds) {
			json_object_set_new(f, "notAfter", json_integer(pl_tls_creds_not_after(px->creds)));
			json_object_set_new(f, "spiffeId", json_string(pl_tls_creds_spiffe_id(px->creds)));
		}
		json_object_set_new(o, i == 2 ? "certificate" : px->files[i].what, f);
	}
	/* Client-side policies: from the directory's outbound.json (--outbound) or the config. */
	const bool ns_out = px->mesh && px->mesh->has_out;
	json_object_set_new(o, "outbound",
			    json_pack("{sssoss}", "source", ns_out ? "mesh" : "config", "hash",
				      ns_out ? json_string(px->mesh->out.hash) : json_null(), "namespace",
				      ns_out ? px->mesh->out.namespace : ""));
	char *s = pl_json_dump_canonical(o);
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

/* The probe's verdict goes to the kubelet: the app's status as it is (200-399 pass), or 503. */
static void probe_done(admin_conn *a, int code, const char *why)
{
	char body[512];

	snprintf(body, sizeof(body), "%s: %s\n", a->pc ? a->pc->what : "probe", why);
	probe_free(a);
	respond_text(a, code, body);
	head_only(a);
	pl_ev_timer_start(a->px->loop, &a->timer, ADMIN_TIMEOUT_NS);
	pl_ev_io_set(a->px->loop, &a->io, EPOLLOUT);
}

/* --- gRPC probes: the kubelet's GRPCAction, grpc.health.v1.Health/Check answering SERVING --- */

static void gp_head(void *ud, pl_h2 *h, int32_t id, void *sud, enum pl_h2_head kind, const pl_h2_field *f, size_t n,
		    bool end)
{
	probe_call *pc = ud;
	(void)h;
	(void)id;
	(void)sud;
	(void)kind;
	(void)end;
	for (size_t i = 0; i < n; i++)
		if (f[i].namelen == 11 && memcmp(f[i].name, "grpc-status", 11) == 0 && f[i].valuelen <= 2)
			pc->gstatus = atoi(f[i].value);
}

static void gp_data(void *ud, pl_h2 *h, int32_t id, void *sud, const uint8_t *p, size_t n)
{
	probe_call *pc = ud;
	(void)sud;
	size_t k = n < sizeof(pc->msg) - pc->msglen ? n : sizeof(pc->msg) - pc->msglen;
	memcpy(pc->msg + pc->msglen, p, k);
	pc->msglen += k;
	pl_h2_consume(h, id, n);
}

static void gp_close(void *ud, pl_h2 *h, int32_t id, void *sud, uint32_t code)
{
	probe_call *pc = ud;
	(void)h;
	(void)id;
	(void)sud;
	pc->closed = true;
	pc->reset = code;
}

static ssize_t gp_read(void *ud, pl_h2 *h, int32_t id, void *sud, uint8_t *out, size_t n, int *end)
{
	probe_call *pc = ud;
	(void)h;
	(void)id;
	(void)sud;
	size_t k = pc->req.len - pc->body_off < n ? pc->req.len - pc->body_off : n;
	memcpy(out, pc->req.data + pc->body_off, k);
	pc->body_off += k;
	if (pc->body_off == pc->req.len)
		*end = PL_H2_END;
	return (ssize_t)k;
}

static const pl_h2_cbs gp_cbs = {.head = gp_head, .data = gp_data, .close = gp_close, .read = gp_read};

/* HealthCheckResponse: message framing (flag, 4-byte length), then field 1 (status, a varint):
 * SERVING is 1. -1 when the message is not that. */
static int gp_status(const probe_call *pc)
{
	if (pc->msglen < 5 || pc->msg[0] != 0)
		return -1;
	if (pc->msglen == 5)
		return 0; /* an empty message: status UNKNOWN (0), the proto3 default */
	if (pc->msglen < 7 || pc->msg[5] != 0x08 || (pc->msg[6] & 0x80))
		return -1;
	return pc->msg[6];
}

/* Writes what the session has due; false when the socket failed. */
static bool gp_flush(admin_conn *a)
{
	probe_call *pc = a->pc;
	const uint8_t *p;
	ssize_t n;

	while ((n = pl_h2_send(pc->h2, &p)) > 0)
		pl_buf_append(&pc->out, p, (size_t)n);
	if (n < 0)
		return false;
	while (pc->out_off < pc->out.len) {
		ssize_t w = send(pc->fd, pc->out.data + pc->out_off, pc->out.len - pc->out_off, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (w <= 0)
			return false;
		pc->out_off += (size_t)w;
	}
	if (pc->out_off == pc->out.len)
		pc->out.len = pc->out_off = 0;
	pl_ev_io_set(a->px->loop, &pc->io, EPOLLIN | (pc->out.len ? EPOLLOUT : 0));
	return true;
}

/* The connection is up: the health check goes out. */
static bool gp_start(admin_conn *a, int port)
{
	probe_call *pc = a->pc;
	char auth[32];
	size_t sl = strlen(pc->service);

	snprintf(auth, sizeof(auth), "127.0.0.1:%d", port);
	/* HealthCheckRequest {service = 1}, framed: flag 0, big-endian length, the message */
	uint8_t msg[4 + 200];
	size_t ml = 0;
	if (sl) {
		msg[ml++] = 0x0a;
		if (sl >= 128) {
			msg[ml++] = (uint8_t)(0x80 | (sl & 0x7f));
			msg[ml++] = (uint8_t)(sl >> 7);
		} else {
			msg[ml++] = (uint8_t)sl;
		}
		memcpy(msg + ml, pc->service, sl);
		ml += sl;
	}
	uint8_t hdr[5] = {0, (uint8_t)(ml >> 24), (uint8_t)(ml >> 16), (uint8_t)(ml >> 8), (uint8_t)ml};
	pl_buf_reset(&pc->req);
	pl_buf_append(&pc->req, hdr, 5);
	pl_buf_append(&pc->req, msg, ml);
	const pl_h2_field f[] = {
		{":method", "POST", 7, 4},
		{":scheme", "http", 7, 4},
		{":path", "/grpc.health.v1.Health/Check", 5, 28},
		{":authority", auth, 10, strlen(auth)},
		{"content-type", "application/grpc", 12, 16},
		{"te", "trailers", 2, 8},
		{"user-agent", "kube-probe (pillion-proxy)", 10, 26},
	};
	pc->h2 = pl_h2_new(false, &gp_cbs, pc, NULL);
	if (pl_h2_request(pc->h2, f, sizeof(f) / sizeof(f[0]), true, NULL) < 0)
		return false;
	return gp_flush(a);
}

static void gp_io(admin_conn *a, uint32_t ev)
{
	probe_call *pc = a->pc;
	uint8_t buf[4096];
	char why[160];

	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = recv(pc->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			n = -2;
		const char *err = NULL;
		if (n == 0 || n == -1 || (n > 0 && pl_h2_recv(pc->h2, buf, (size_t)n, &err) < 0)) {
			probe_done(a, 503, n > 0 ? "the app's HTTP/2 answer was refused" : "the app closed the connection");
			return;
		}
	}
	if (!gp_flush(a)) {
		probe_done(a, 503, "writing to the app failed");
		return;
	}
	if (!pc->closed)
		return;
	int st = gp_status(pc);
	if (pc->reset)
		snprintf(why, sizeof(why), "the app reset the call (%s)", pl_h2_code_name(pc->reset));
	else if (pc->gstatus != 0)
		snprintf(why, sizeof(why), "grpc-status %d", pc->gstatus);
	else if (st != 1)
		snprintf(why, sizeof(why), "the service is %s", st == 2 ? "NOT_SERVING" : st == 3 ? "SERVICE_UNKNOWN" :
								 st == 0 ? "UNKNOWN" : "not answering a HealthCheckResponse");
	else
		snprintf(why, sizeof(why), "SERVING");
	probe_done(a, !pc->reset && pc->gstatus == 0 && st == 1 ? 200 : 503, why);
}

static void probe_io(pl_ev_loop *loop, void *data, uint32_t ev)
{
	admin_conn *a = data;
	probe_call *pc = a->pc;
	char why[160];
	(void)ev;

	if (pc->h2) {
		gp_io(a, ev);
		return;
	}
	if (pc->sent < pc->req.len || pc->tcp || pc->grpc) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (pc->sent == 0 && (getsockopt(pc->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)) {
			snprintf(why, sizeof(why), "the app does not answer: %s", strerror(err ? err : errno));
			probe_done(a, 503, why);
			return;
		}
		if (pc->tcp) { /* a tcpSocket probe: the connection is the answer */
			probe_done(a, 200, "the app accepts connections");
			return;
		}
		if (pc->grpc) {
			if (!gp_start(a, pc->port))
				probe_done(a, 503, "writing to the app failed");
			return;
		}
		ssize_t n = send(pc->fd, pc->req.data + pc->sent, pc->req.len - pc->sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			snprintf(why, sizeof(why), "sending the probe: %s", strerror(n < 0 ? errno : EPIPE));
			probe_done(a, 503, why);
			return;
		}
		pc->sent += (size_t)n;
		if (pc->sent == pc->req.len)
			pl_ev_io_set(loop, &pc->io, EPOLLIN);
		return;
	}
	ssize_t n = recv(pc->fd, pc->resp + pc->len, sizeof(pc->resp) - 1 - pc->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		pc->len += (size_t)n;
		pc->resp[pc->len] = '\0';
	}
	char *eol = strstr(pc->resp, "\r\n");
	if (!eol && n > 0 && pc->len < sizeof(pc->resp) - 1)
		return;
	/* "HTTP/1.x NNN": the status of the app's answer; anything else fails the probe. */
	int code = 0;
	if (eol && pc->len >= 12 && strncmp(pc->resp, "HTTP/1.", 7) == 0 && pc->resp[8] == ' ' &&
	    pc->resp[9] >= '1' && pc->resp[9] <= '5' && pc->resp[10] >= '0' && pc->resp[10] <= '9' &&
	    pc->resp[11] >= '0' && pc->resp[11] <= '9')
		code = (pc->resp[9] - '0') * 100 + (pc->resp[10] - '0') * 10 + (pc->resp[11] - '0');
	if (code < 200) {
		probe_done(a, 503, n < 0 ? "reading the answer failed" : "the app's answer is not an HTTP/1.x status line");
		return;
	}
	snprintf(why, sizeof(why), "the app answered %d", code);
	probe_done(a, code, why);
}

/* GET /app-health/<container>/<kind>: runs that probe of the config on loopback. */
static void probe_start(admin_conn *a, const char *rest)
{
	proxy *px = a->px;
	const pl_proxy_config *cfg = px->config ? &px->config->cfg : NULL;
	const pl_probe *p = NULL;
	const char *slash = strchr(rest, '/');

	for (size_t i = 0; cfg && slash && i < cfg->nprobes; i++) {
		const pl_probe *q = &cfg->probes[i];
		if (strlen(q->container) == (size_t)(slash - rest) && strncmp(q->container, rest, (size_t)(slash - rest)) == 0 &&
		    strcmp(q->kind, slash + 1) == 0)
			p = q;
	}
	if (!p) {
		respond_text(a, 404, cfg ? "no such probe in the config: /app-health/<container>/<liveness|readiness|startup>\n"
					 : "no config yet\n");
		return;
	}
	probe_call *pc = calloc(1, sizeof(*pc));
	if (!pc)
		abort();
	a->pc = pc;
	pl_ev_io_init(&pc->io, probe_io, a);
	pc->tcp = p->tcp;
	pc->grpc = p->grpc;
	pc->port = p->port;
	pc->gstatus = pc->serving = -1;
	if (p->grpc) {
		snprintf(pc->service, sizeof(pc->service), "%s", p->grpc_service ? p->grpc_service : "");
		snprintf(pc->what, sizeof(pc->what), "%s/%s: gRPC health check of \"%.200s\" at 127.0.0.1:%d", p->container,
			 p->kind, pc->service, p->port);
	} else if (p->tcp)
		snprintf(pc->what, sizeof(pc->what), "%s/%s: connect 127.0.0.1:%d", p->container, p->kind, p->port);
	else
		snprintf(pc->what, sizeof(pc->what), "%s/%s: GET 127.0.0.1:%d%.200s", p->container, p->kind, p->port,
			 p->path);
	bool host = false;
	pl_buf_printf(&pc->req, "GET %s HTTP/1.1\r\n", p->path ? p->path : "/");
	for (size_t k = 0; k < p->headers.n; k++) {
		host |= strcasecmp(p->headers.v[k].key, "host") == 0;
		pl_buf_printf(&pc->req, "%s: %s\r\n", p->headers.v[k].key, p->headers.v[k].value);
	}
	if (!host)
		pl_buf_printf(&pc->req, "Host: 127.0.0.1:%d\r\n", p->port);
	pl_buf_puts(&pc->req, "User-Agent: kube-probe (pillion-proxy)\r\nAccept: */*\r\nConnection: close\r\n\r\n");
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	pc->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pc->fd < 0 || (connect(pc->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno != EINPROGRESS)) {
		char why[160];
		snprintf(why, sizeof(why), "the app does not answer: %s", strerror(errno));
		probe_done(a, 503, why);
		return;
	}
	if (pl_ev_io_start(px->loop, &pc->io, pc->fd, EPOLLOUT) < 0)
		abort();
	/* The kubelet gives up after timeoutSeconds: so does the proxy, answering 503. */
	pl_ev_timer_start(px->loop, &a->timer, (int64_t)p->timeout_s * 1000000000LL);
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
	a->head = strcmp(method, "HEAD") == 0;
	if (strncmp(path, PL_PROBE_PATH_PREFIX, strlen(PL_PROBE_PATH_PREFIX)) == 0 && get) {
		probe_start(a, path + strlen(PL_PROBE_PATH_PREFIX));
		if (a->pc)
			return; /* answered when the probe is done */
	} else if (strcmp(path, "/live") == 0 && get) {
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
	} else if (strcmp(path, "/status") == 0 && get) {
		status_body(a);
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
		px_drain(px, "POST /shutdown", 0);
	} else if (strcmp(path, "/live") == 0 || strcmp(path, "/ready") == 0 || strcmp(path, "/metrics") == 0 ||
		   strcmp(path, "/config") == 0 || strcmp(path, "/status") == 0) {
		respond_text(a, 405, "use GET\n");
	} else {
		respond_text(a, 404, "not found: try /live, /ready, /metrics, /config, /status, /app-health/<container>/<kind>, "
				     "POST /shutdown\n");
	}
	head_only(a);
}

static void admin_io(pl_ev_loop *loop, void *data, uint32_t ev)
{
	admin_conn *a = data;

	/* While a probe runs the request is read: only the kubelet going away matters. */
	if (a->pc) {
		if (ev & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
			admin_close(a);
		return;
	}
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
			if (a->pc) {
				pl_ev_io_set(loop, &a->io, 0); /* the probe's answer sets EPOLLOUT */
				return;
			}
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
	admin_conn *a = data;
	(void)loop;

	if (a->pc) {
		probe_done(a, 503, "no answer within the probe's timeoutSeconds");
		return;
	}
	admin_close(a);
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
