/* Kubernetes API client types: connection settings, the API's Status, watch callbacks, a clock seam for tests. */
#ifndef PILLION_KUBE_KUBE_T_H
#define PILLION_KUBE_KUBE_T_H

#include <stdbool.h>
#include <stdint.h>

/*
 * What a kubeconfig or the in-cluster environment said (relayd style: the flat config
 * that the runtime pl_kube copies). Every string is owned by the struct (malloc'd, NULL
 * when absent) and released by pl_kube_config_free(). PEM fields hold decoded bytes
 * (the kubeconfig's *-data fields are base64 of PEM); file fields are absolute paths.
 */
/* Told about every HTTP attempt (for metrics): verb (GET, LIST, WATCH, PATCH, ...), code (0: no response), seconds. */
typedef void (*pl_kube_observer)(void *ctx, const char *verb, long code, double seconds);

typedef struct pl_kube_config {
	char *server;      /* "https://host:port" (no trailing slash) */
	char *ca_file;     /* PEM bundle to verify the server, or NULL */
	char *ca_pem;      /* the same as bytes (certificate-authority-data), or NULL */
	char *token;       /* a static bearer token, or NULL */
	char *token_file;  /* a bearer token file, re-read when it changes (projected tokens rotate) */
	char *cert_file;   /* client certificate (PEM) as a file ... */
	char *cert_pem;    /* ... or as bytes */
	char *key_file;    /* client key (PEM) as a file ... */
	char *key_pem;     /* ... or as bytes */
	bool insecure;     /* insecure-skip-tls-verify: only when the kubeconfig says so */
	char *namespace;   /* the context's (or service account's) namespace; "default" otherwise */
	char *source;      /* "in-cluster" or the kubeconfig path, for messages */
	char *user_agent;  /* the User-Agent header (audit logs, API priority and fairness); NULL: PL_KUBE_USER_AGENT.
			    * Never read from a kubeconfig: the program sets it after loading. */
	pl_kube_observer observer; /* copied into every client made from this config (pl_kube_set_observer overrides) */
	void *observer_ctx;
} pl_kube_config;

/*
 * Why a request failed, from the API's Status body when there is one (kind Status:
 * code, reason, message, details.retryAfterSeconds); otherwise from the HTTP status
 * line, the transport error or the parse error. Zeroed at the start of every call.
 */
typedef struct pl_kube_status {
	long http;                /* HTTP status (or the Status code of a watch ERROR event); 0: no response */
	char reason[64];          /* Status.reason: NotFound, AlreadyExists, Conflict, Expired, Gone, ... */
	char message[512];        /* Status.message, or a description of the transport / parse failure */
	int64_t retry_after_s;    /* Retry-After header or details.retryAfterSeconds; 0 when absent */
	int attempts;             /* HTTP attempts made (retries included) */
} pl_kube_status;

/* The runtime client: one per thread (it wraps one libcurl easy handle and its connections). */
typedef struct pl_kube pl_kube;

/*
 * Called for each watch event, in order. type is ADDED, MODIFIED, DELETED or BOOKMARK;
 * obj is borrowed (json_incref it to keep it). Return 0 to continue, > 0 to stop the
 * watch after this event, < 0 to stop and fail (the event is then not counted as seen).
 */
struct json_t;
typedef int (*pl_kube_watch_cb)(void *ctx, const char *type, struct json_t *obj);

/* Where the client reads time and waits (rate limit, Retry-After, backoff); tests pass a fake. */
typedef struct pl_kube_clock {
	int64_t (*now_ns)(void *ctx);            /* monotonic nanoseconds */
	void (*sleep_ns)(void *ctx, int64_t ns);
	void *ctx;
} pl_kube_clock;


#endif
