/* pillion-proxy's types: settings, the loaded state, metrics, listeners and relayed connections. */
#ifndef PILLION_SIDECAR_PROXY_T_H
#define PILLION_SIDECAR_PROXY_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/hmap.h"
#include "ev/ev.h"
#include "bufpool.h"
#include "model/model-t.h"

typedef struct pl_tls pl_tls;
typedef struct pl_tls_creds pl_tls_creds;

enum px_dir { PX_OUT = 0, PX_IN = 1 };

/* What the command line and the environment said (flat, as relayd keeps it). */
typedef struct px_settings {
	const char *config_path;
	const char *mesh_path;     /* NULL: no directory, every destination is passthrough */
	const char *outbound_path; /* the namespace's client-side policies, beside mesh_path; NULL: from the config */
	const char *tls_dir;
	const char *admin_addr;
	int outbound_port, inbound_port, admin_port;
	size_t buf_size;
	size_t max_conns;
	int64_t connect_timeout_ns;
	int64_t detect_timeout_ns;     /* PERMISSIVE: wait this long for a first byte, then relay as plaintext */
	int64_t handshake_timeout_ns;
	int64_t drain_ns;
	int64_t drain_delay_ns;        /* on SIGTERM, keep serving new connections this long first */
	int64_t endpoint_connect_timeout_ns; /* a connect to a pod address (the directory's endpoints) */
	int64_t reload_debounce_ns;
	int64_t resync_ns;             /* periodic re-read of the files, a safety net for lost events */
	bool splice;
	bool h1_over_h2;               /* outbound HTTP/1 requests ride HTTP/2 to peers that offer it */
	bool check_only;
	const char *upgrades;          /* comma-separated Upgrade protocols let through ("websocket") */
	int64_t idle_timeout_ns;       /* byte relays and tunnels idle this long both ways are closed; 0: never */
	int64_t stream_idle_timeout_ns; /* an HTTP/2 stream with no byte either way this long ends; 0: never */
	size_t max_pending_per_source; /* inbound connections one address may hold before detection and the
					* handshake are done; 0: no limit */
	size_t upstream_max_conns;     /* connections to one destination whose policy sets no circuitBreaker
					* (Envoy's default threshold is 1024) */
} px_settings;

/* A file-backed piece of state and what became of its last reading. */
typedef struct px_file {
	const char *what;          /* "config", "mesh", "tls" */
	char seen[80];             /* hash of the bytes last tried, good or bad */
	char good[80];             /* hash of the bytes in use */
	char error[512];           /* why the last different bytes were refused; "" when they were taken */
	int64_t loaded_at;         /* unix seconds of the last good load */
} px_file;

typedef struct px_config {
	int refs;                  /* the proxy holds one; each HTTP request in flight holds one */
	pl_arena arena;
	pl_proxy_config cfg;
	json_t *doc;               /* as read, for /config */
} px_config;

typedef struct px_mesh {
	pl_arena arena;
	pl_mesh_dir dir;
	bool has_out;              /* --outbound's file was there: its policies replace the config's */
	pl_outbound_set out;
	int refs;                  /* connections in their handshake hold one */
} px_mesh;

enum px_refuse {
	PX_REFUSE_NOT_READY, PX_REFUSE_STRICT_PLAINTEXT, PX_REFUSE_LOOP, PX_REFUSE_NO_ORIGINAL_DST,
	PX_REFUSE_MAX_CONNECTIONS, PX_REFUSE_DETECT_TIMEOUT, PX_REFUSE_SOURCE_LIMIT,
	PX_REFUSE__N
};

enum px_tls_fail {
	PX_TLSF_CERTIFICATE_VERIFY, PX_TLSF_PEER_IDENTITY, PX_TLSF_NO_ALPN, PX_TLSF_NO_CLIENT_CERT,
	PX_TLSF_CERT_REQUIRED, PX_TLSF_REJECTED_BY_PEER, PX_TLSF_PROTOCOL, PX_TLSF_EOF, PX_TLSF_RESET,
	PX_TLSF_TIMEOUT, PX_TLSF_OTHER, PX_TLSF__N
};

typedef struct px_metrics {
	/* [direction][tls] */
	uint64_t conns_total[2][2];
	int64_t conns_open[2][2];
	/* [direction][0: downstream->upstream, 1: upstream->downstream] */
	uint64_t bytes[2][2];
	uint64_t refused[2][PX_REFUSE__N];
	uint64_t tls_fail[2][PX_TLSF__N];
	uint64_t connect_fail[2];
	uint64_t resets[2];
	uint64_t reloads_ok[3], reloads_err[3];   /* config, mesh, tls */
	uint64_t spliced_bytes;
	uint64_t idle_closed[2];                  /* relays closed by --idle-timeout, per direction */
} px_metrics;

/* A log line budget: a few lines a second per budget. */
typedef struct px_log_rate {
	int64_t window;
	int n;
} px_log_rate;

typedef struct proxy proxy;
typedef struct px_conn px_conn;
typedef struct px_hs px_hs;
typedef struct px_family px_family;

/*
 * What one direction does at each stage of a connection. outbound.c and inbound.c each define
 * one; relay.c, http.c and main.c call through px_dirs[dir] and never name a direction, and the
 * two directions never call each other.
 */
struct px_dir_http;
typedef struct px_dir_ops {
	const char *name;                          /* "outbound", "inbound" (logs, metric labels) */
	bool mesh_up;                              /* the mTLS side is the dialled one (else the accepted one) */
	void (*accept)(proxy *px, int fd);         /* a connection from the listener */
	void (*detect)(px_conn *c, uint32_t ev);   /* PX_ST_DETECT: the first bytes (NULL: not used) */
	void (*detect_timeout)(px_conn *c);
	void (*handshake)(px_conn *c);             /* one step of the mesh-side TLS handshake */
	void (*connected)(px_conn *c);             /* the dialled side is connected */
	void (*forward)(px_conn *c);               /* no HTTP after all: go on as bytes */
	const struct px_dir_http *http;            /* the HTTP session's hooks (l7-t.h) */
} px_dir_ops;

/* dirs.c: px_dirs[PX_OUT], px_dirs[PX_IN]. */
extern const px_dir_ops *const px_dirs[2];

typedef struct px_listener {
	proxy *px;
	int dir;                    /* enum px_dir, or -1 for admin */
	int fds[2];                 /* IPv4, IPv6 (-1 when not bound) */
	pl_ev_io io[2];
	pl_ev_timer pause;          /* accepting paused after EMFILE */
} px_listener;

/* One socket of a relayed connection, with its transport (raw or TLS). */
typedef struct px_side {
	int fd;
	pl_ev_io io;
	pl_tls *tls;
	int want_r, want_w;         /* PL_IO_WANT_* the last blocked read/write asked for, or 0 */
	const struct px_xprt *vx;   /* a transport with no socket of its own (an HTTP/2 stream), or NULL */
	void *vctx;                 /* its state */
} px_side;

/* One direction of a relay: bytes read from one side, waiting to be written to the other. */
typedef struct px_flow {
	char *buf;                  /* pooled, held only while bytes wait */
	uint32_t off, len;
	int pipe[2];                /* splice mode: a pipe instead of buf */
	uint32_t piped;
	bool splicing;              /* switched on by a read that filled buf: a bulk transfer */
	bool eof;                   /* the source ended */
	int shut;                   /* 0 no, 1 pending, 2 done: the end passed on to the destination */
	uint64_t bytes;
} px_flow;

/* L7DETECT: the connection's first (decrypted) bytes decide between an HTTP session and the byte relay.
 * SESSION: an HTTP handler speaks on the downstream socket (px_conn.proto). LINGER: our end is sent,
 * what the client still sends is dropped until its end (px_conn_linger). */
enum px_conn_state {
	PX_ST_DETECT, PX_ST_CONNECT, PX_ST_HANDSHAKE, PX_ST_RELAY, PX_ST_L7DETECT, PX_ST_SESSION, PX_ST_LINGER
};

/*
 * What speaks on an accepted connection's socket: the byte relay (relay.c, also detection, the
 * dial and the handshake before it), HTTP/1 (http.c) or HTTP/2 (h2.c). One px_conn owns the
 * socket and its transport for the connection's whole life; detection swaps HTTP in, and an
 * HTTP/1 upgrade swaps the byte relay back (px_conn_swap).
 */
typedef struct px_proto {
	const char *name;                          /* "bytes", "http/1", "http/2" */
	void (*io)(px_conn *c, uint32_t ev);       /* an event on the downstream socket */
	/* The handler lets go of its state (c->pctx), not of the socket: the connection closes
	 * (px_conn_close) or another handler takes it (px_conn_swap). */
	void (*release)(px_conn *c);
} px_proto;

struct px_conn {
	proxy *px;
	int dir;
	int state;
	const px_proto *proto;      /* what speaks on down now */
	void *pctx;                 /* its state (px_hs, px_h2c), or NULL for the byte relay */
	bool counted;               /* in conns_total and conns_open, under counted_tls */
	bool counted_tls;
	bool tls;                   /* the mesh hop of this connection is mTLS */
	bool detect_waited;         /* detection outlived its timeout once, on a TLS record already begun */
	bool splice;                /* plaintext on both sides: flows may switch to splice */
	bool http_only;             /* a port under per-request policy: never relayed as bytes */
	px_side down, up;           /* downstream (accepted) and upstream (dialled) */
	px_flow d2u, u2d;
	pl_ev_timer timer;
	int64_t last_active;        /* relay: the loop's time of the last event (the idle timer is lazy) */
	struct sockaddr_storage orig; /* original destination */
	socklen_t origlen;
	px_mesh *mesh;              /* outbound TLS: the directory the peer's identity is checked against */
	char *peer_id;              /* inbound TLS: the caller's SPIFFE ID */
	struct px_pending *pending; /* inbound, until it relays or becomes a session: its source's count */
	char *tail;                 /* lingering: the handler's last bytes, still to write */
	uint32_t tail_len, tail_off;
	bool tail_shut;             /* lingering: our end went */
	px_conn *prev, *next;
};

struct proxy {
	px_settings set;
	pl_ev_loop *loop;
	px_listener lst[2], admin;
	px_config *config;          /* NULL until a valid one was read */
	px_mesh *mesh;
	pl_tls_creds *creds;
	px_file files[3];
	int inotify_fd;
	pl_ev_io inotify_io;
	int watches[3];
	pl_ev_timer reload_timer, resync_timer, drain_timer;
	px_metrics m;
	px_conn *conns;             /* every open relayed connection */
	size_t nconns;              /* relayed connections and HTTP sessions */
	px_hs *sessions;            /* every open HTTP session */
	struct px_h2_all *h2;       /* HTTP/2 connections and their pools (h2.c) */
	pl_hmap pools;              /* upstream connection pools by destination key */
	pl_hmap pending;            /* struct px_pending by source address: inbound connections in detection */
	pl_hmap rt;                 /* px_rt by name: budgets, outliers, rate limits */
	px_family *fam;             /* L7 metric families (PX_F__N) */
	pl_buf alog_out;            /* access log lines not yet written */
	int alog_fd;
	pl_ev_timer alog_timer;     /* tries again when stdout was full */
	px_bufpool bufs;            /* free relay buffers (--buffer-size) */
	px_bufpool hbufs;           /* free HTTP session buffers (PX_HBUF) */
	int64_t idle_timeout_ns;    /* a downstream HTTP connection with no request in flight */
	uint64_t gen;               /* +1 at every config or mesh swap (caches keyed on it) */
	int64_t head_timeout_ns;    /* a request head begun must be whole within this */
	bool draining;
	bool drain_listening;       /* draining, but still accepting through the drain delay */
	bool stop;
	int exit_code;
	int64_t started_at;
};

#endif
