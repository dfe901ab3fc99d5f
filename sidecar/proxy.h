/* pillion-proxy's internal interfaces: one stage per file (accept, detect, handshake, relay, admin, state). */
#ifndef PILLION_SIDECAR_PROXY_H
#define PILLION_SIDECAR_PROXY_H

#include <stddef.h>
#include <sys/types.h>

#include "base/buf.h"
#include "proxy-t.h"

/* state.c: the mounted files, their validation, hot swap and readiness. */
void px_state_init(proxy *px);
void px_state_close(proxy *px);
/* Re-reads every file; a changed, valid file is swapped in; a bad one is refused and logged. */
void px_state_reload(proxy *px);
/* True with a valid config and a valid, unexpired certificate for the config's identity. */
bool px_ready(const proxy *px, const char **why);
void px_mesh_unref(px_mesh *m);
/* How many mesh directories are in memory: the current one, and older ones that connections in
 * their handshake or requests in flight still hold (pillion_proxy_mesh_versions_held). */
size_t px_meshes_held(void);
/* Drops one hold on a config; the last one frees it (an HTTP request keeps its config across a reload). */
void px_config_unref(px_config *c);
/* A valid config and, for its identity, a certificate valid now: what mTLS in either direction needs. */
bool px_creds_usable(const proxy *px);
/* --check: validates the config (and the mesh directory when given): 0 and "configuration OK", or 1 and the errors, on stdout. */
int px_check_config(const char *config_path, const char *mesh_path, const char *outbound_path);

/* xprt.c: the transport under a side, raw TCP or TLS: px_xprt_of(s) gives its operations. Reads
 * and writes return bytes, 0 at the end (reads), PL_IO_WANT_* or -errno. */
typedef struct px_xprt {
	const char *name;
	ssize_t (*recv)(px_side *s, void *b, size_t n);
	ssize_t (*send)(px_side *s, const void *b, size_t n);
	ssize_t (*peek)(px_side *s, void *b, size_t n);   /* the bytes stay to be read again */
	int (*shutw)(px_side *s);                          /* the end of what we send: 0, PL_IO_WANT_* or -errno */
	bool (*pending)(const px_side *s);                 /* bytes already read from the socket wait in the transport */
	void (*lowat)(px_side *s, int n);                  /* wake for reading only once n bytes are there (raw only) */
} px_xprt;
extern const px_xprt px_xprt_raw, px_xprt_tls;
/* h2bridge.c: an HTTP/1 session's upstream that is a stream on an HTTP/2 connection. */
extern const px_xprt px_xprt_h2;
static inline const px_xprt *px_xprt_of(const px_side *s)
{
	return s->vx ? s->vx : s->tls ? &px_xprt_tls : &px_xprt_raw;
}
static inline ssize_t px_side_recv(px_side *s, void *b, size_t n) { return px_xprt_of(s)->recv(s, b, n); }
static inline ssize_t px_side_send(px_side *s, const void *b, size_t n) { return px_xprt_of(s)->send(s, b, n); }
static inline bool px_side_pending(const px_side *s) { return px_xprt_of(s)->pending(s); }
/* Closes the socket and its TLS session; reset sends RST instead of FIN. */
void px_side_close(pl_ev_loop *loop, px_side *s, bool reset);
/* Hands src's socket and TLS session to dst (a new owner, its io not started); src is left empty. */
void px_side_take(pl_ev_loop *loop, px_side *dst, px_side *src);

/* dial.c: the one way out, for the relay and the pools alike. */
/* A non-blocking, TCP_NODELAY connect to addr: 0 (in progress or done), or -errno (counted as a
 * connect failure); *fd gets the socket (-1 when none was made), which the caller closes. */
int px_dial_start(proxy *px, int dir, const struct sockaddr_storage *addr, socklen_t len, int *fd);
/* The outcome of that connect once the socket is writable: 0, or the error (counted). */
int px_dial_result(proxy *px, int dir, int fd);
/* Client-side mesh TLS on fd with the proxy's certificate, or NULL with why. */
pl_tls *px_dial_tls(proxy *px, int fd, const char **why);
/* Whether the TLS peer presents one of the identities dir lists for addr (a Service's, or a
 * pod's); msg says why not. */
bool px_peer_listed(pl_tls *tls, const pl_mesh_dir *dir, const struct sockaddr_storage *addr, char *msg,
		    size_t msglen);
/* One step of the client handshake on s, then the identity check against dir at addr: 1 done and
 * the peer is listed; 0 it waits for I/O (s->io's interest set); -1 failed, with *fail a
 * PX_TLSF_* index and msg the detail (the caller counts and closes). */
int px_dial_handshake(proxy *px, px_side *s, const pl_mesh_dir *dir, const struct sockaddr_storage *addr, int *fail,
		      char *msg, size_t msglen);

/* relay.c: connections, the byte pumps, buffers. */
/* The byte relay, and the setup stages before it (detection, dial, handshake). */
extern const px_proto px_proto_bytes;
px_conn *px_conn_new(proxy *px, int dir, int fd);
/* Another handler speaks on c's socket from now on: the old one lets go of its state first. A
 * session handler (HTTP) ends the setup stages: c is counted as open, its timer stops. */
void px_conn_swap(px_conn *c, const px_proto *p, void *ctx);
/* Ends c gently: the handler lets go, its last bytes (tail, n: copied) are written, our end of the
 * stream goes (close_notify, FIN), and what the client still sends is read and dropped until its
 * own end, an error or a bound of 2 s, then c closes. Closing with unread bytes would send RST,
 * and an RST can destroy the last answer (or GOAWAY) before the client reads it. */
void px_conn_linger(px_conn *c, const void *tail, size_t n);
/* Closes both sides; reset sends RST to both peers instead of FIN. */
void px_conn_close(px_conn *c, bool reset);
/* Starts a non-blocking connect of c->up to addr; on completion on_connected runs. */
int px_conn_dial(px_conn *c, const struct sockaddr_storage *addr, socklen_t len);
/* Both sides are ready: move bytes until both directions ended. */
void px_conn_relay(px_conn *c);
/* Arms c's single timer: on expiry, the state's timeout handler runs. */
void px_conn_timeout(px_conn *c, int64_t ns);
void px_conn_refuse(px_conn *c, int reason);
/* Runs the TLS handshake on the mesh side (upstream for outbound, downstream for inbound). */
void px_conn_handshake(px_conn *c);
void px_conn_tls_failed(px_conn *c, int fail, const char *detail);
void px_pool_free(proxy *px);
/* Per-connection failures are counted; their log lines are limited to a few a second per budget. */
bool px_log_allowed(const proxy *px, px_log_rate *r);
int px_tls_fail_index(const char *reason);
/* Counts c (inbound, fd accepted) against its source address until it relays or closes: false,
 * counting nothing, when that address already holds --max-pending-per-source such connections. */
bool px_pending_take(px_conn *c, int fd);
const char *px_addr_str(const struct sockaddr_storage *ss, char *out, size_t outlen);

/* outbound.c and inbound.c: accept -> (detect) -> (handshake) -> dial -> relay, each behind its
 * px_dir_ops (px_dirs, dirs.c). */
/* L7 detection of either direction (http.c): HTTP becomes a session; anything else, or silence
 * until the timeout, goes on as bytes through the direction's forward. */
void px_l7_detect(px_conn *c, uint32_t ev, bool timed_out);
/* Defined by outbound.c and inbound.c; only dirs.c puts them together. */
extern const px_dir_ops px_outbound_ops, px_inbound_ops;

/* detect.c: a pure look at the first bytes of an inbound connection. */
enum px_detect { PX_DETECT_MORE, PX_DETECT_PLAIN, PX_DETECT_TLS_MESH, PX_DETECT_TLS_OTHER };
/* *need gets how many bytes a complete ClientHello record takes when the answer is MORE. */
enum px_detect px_detect(const unsigned char *p, size_t len, size_t *need);

/* admin.c: /live, /ready, /metrics, /config, POST /shutdown. */
void px_admin_accept(proxy *px, int fd);
void px_metrics_render(const proxy *px, pl_buf *b);
/* wait.c: `pillion-proxy wait`, argv[0] being "wait": 0 once /ready is 200, 1 on timeout, 2 on bad flags. */
int px_wait_main(int argc, char **argv);
/* main.c: keep accepting for delay_ns (new HTTP connections get "Connection: close"), then stop
 * accepting, let open connections finish (bounded), then exit. A second call during the delay
 * cuts it short. */
void px_drain(proxy *px, const char *why, int64_t delay_ns);

extern const char *const px_refuse_names[PX_REFUSE__N];
extern const char *const px_tls_fail_names[PX_TLSF__N];

#endif
