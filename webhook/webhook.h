/* pillion-webhook: settings, the admission handler, metrics and the serving certificate, shared by its files. */
#ifndef PILLION_WEBHOOK_H
#define PILLION_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "model/inject.h"

/* Deeper arrays and objects are cut before jansson sees them (the policy loader's limit too). */
#define WH_MAX_DEPTH 256
#define WH_MAX_WARNINGS 16
#define WH_MAX_WARNING_BYTES 256
#define WH_ID_HEX 32

typedef struct wh_config {
	const char *listen_address;   /* an IPv4 or IPv6 literal */
	int port;
	const char *tls_cert;         /* the mounted Secret's tls.crt and tls.key */
	const char *tls_key;
	size_t max_body;              /* bigger request bodies get 413 */
	const char *proxy_image;
	const char *init_image;
	pl_sidecar_mode mode;
	int server_minor;             /* 0: unknown */
	int64_t cert_check_ns;        /* the periodic stat check of the certificate files */
	int64_t shutdown_timeout_ns;  /* how long SIGTERM waits for requests in flight */
} wh_config;

/* ---- review.c: one POST /mutate body in, an HTTP status and body out (no I/O, no clock) ---- */

typedef struct wh_reply {
	int status;            /* 200 (an AdmissionReview answer) or 400 (not an AdmissionReview) */
	char *body;            /* malloc'ed, owned by the reply */
	size_t len;
	const char *ctype;     /* static */
	bool injected;         /* a patch was returned */
	const char *reason;    /* a stable token for the metrics label (see wh_reasons) */
} wh_reply;

/*
 * Answers body. id is the 32-hex-character pillion.dev/id for this pod, drawn by the caller.
 * Every well-formed AdmissionReview gets allowed:true, with a patch only when the pod is
 * injected and warnings for anything odd; anything else gets 400. Aborts only on out-of-memory.
 */
void wh_review(const wh_config *cfg, const char *body, size_t len, const char *id, wh_reply *out);
void wh_reply_clear(wh_reply *r);
/* True for application/json with or without parameters (charset). ct may be NULL. */
bool wh_content_type_ok(const char *ct);

/* ---- metrics.c: counters for /metrics (one thread: the server's loop) ---- */

extern const char *const wh_reasons[];   /* NULL-terminated: every label value reason can take */

void wh_metrics_admission(bool injected, const char *reason, double seconds);
/* kind: bad_request, payload_too_large, unsupported_media_type, length_required, not_found,
 * method_not_allowed, random, client_gone */
void wh_metrics_error(const char *kind);
void wh_metrics_cert(bool ok, int64_t not_after);
void wh_metrics_render(pl_buf *b, int inflight, bool draining);

/* ---- certs.c: the serving certificate, re-read when the mounted files change ---- */

typedef struct wh_file_sig {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	bool ok;
} wh_file_sig;

typedef struct wh_certs {
	const char *cert_path, *key_path;  /* the mounted files (not owned) */
	/*
	 * What libwebsockets loads: two memfds holding the last pair that passed the checks,
	 * named by /proc/self/fd paths. It never reads the mounted files themselves, so it
	 * cannot catch a half-written or mismatched pair.
	 */
	int mem_cert, mem_key;
	char mem_cert_path[48], mem_key_path[48];
	unsigned char digest[32];          /* of the pair being served */
	pl_buf cert, key;                  /* the pair being served (key wiped when replaced) */
	pl_buf prev_cert, prev_key;        /* the one before, to roll back to */
	int64_t not_after;
	wh_file_sig sig[2];                /* of the mounted files when last read */
	int inotify_fd;
	int wd[2];
} wh_certs;

/* Creates the memfds and stages the mounted pair. 0, or -1 with err set. */
int wh_certs_init(wh_certs *c, const char *cert_path, const char *key_path, char *err, size_t errlen);
void wh_certs_free(wh_certs *c);
/* True when a stat of the mounted files differs from when they were last read. */
bool wh_certs_changed_on_disk(wh_certs *c);
/*
 * Reads the mounted pair; when it differs from what is served and the key matches the
 * certificate, writes it to the memfds and returns 1 (the caller then has the TLS library
 * reload). 0 when unchanged, -1 with err set when unreadable or mismatched (nothing staged).
 */
int wh_certs_stage(wh_certs *c, char *err, size_t errlen);
/* Puts the previous pair back into the memfds after a reload the TLS library did not take. */
int wh_certs_rollback(wh_certs *c);
/* inotify on the files' directories (the kubelet swaps a ..data symlink there). The fd, or -1. */
int wh_certs_watch(wh_certs *c);
/* Drains inotify events; true when one may concern the files. Re-arms vanished watches. */
bool wh_certs_watch_read(wh_certs *c);

/* ---- server.c: HTTPS with libwebsockets ---- */

/* Serves until SIGTERM or SIGINT and every request in flight is answered. Exit code. */
int wh_serve(const wh_config *cfg);

#endif
