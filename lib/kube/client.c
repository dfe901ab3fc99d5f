/* The Kubernetes API transport over libcurl: one handle per client, auth and token rotation, TLS, client-side rate limit, retries, the API's Status. */
#include "kube/internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "base/duration.h"
#include "base/bucket.h"
#include "base/log.h"

#define RESPONSE_MAX ((size_t)128 << 20)
#define TOKEN_MAX (64u << 10)
#define BACKOFF_BASE_MS 200

struct pl_kube {
	pl_kube_config cfg;           /* owned copy */
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];

	char *token;                  /* current bearer token (cfg.token or the file's content) */
	bool tok_stat_valid;
	struct stat tok_stat;         /* of token_file when token was read */

	pl_bucket rate;               /* QPS and burst */

	int max_attempts;
	int64_t max_wait_ms;
	long connect_s, request_s, watch_idle_s;
	pl_kube_clock clock;
	pl_kube_observer obs;
	void *obs_ctx;
};

/* ---------- time ---------- */

static int64_t real_now(void *ctx)
{
	(void)ctx;
	return pl_mono_ns();
}

static void real_sleep(void *ctx, int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};

	(void)ctx;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---------- lifecycle ---------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	/* Process-wide and not thread-safe in libcurl: exactly once, before any handle. */
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

pl_kube *pl_kube_new(const pl_kube_config *cfg, double qps, int burst)
{
	pl_kube *k;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK || !cfg->server)
		return NULL;
	if (!(k = calloc(1, sizeof(*k))))
		return NULL;
	if (pl_kube_config_copy(&k->cfg, cfg) < 0 || !(k->curl = curl_easy_init())) {
		pl_kube_free(k);
		return NULL;
	}
	if (!k->cfg.namespace && !(k->cfg.namespace = strdup("default"))) {
		pl_kube_free(k);
		return NULL;
	}
	if (k->cfg.token && !(k->token = strdup(k->cfg.token))) {
		pl_kube_free(k);
		return NULL;
	}
	k->obs = k->cfg.observer;
	k->obs_ctx = k->cfg.observer_ctx;
	k->max_attempts = 5;
	k->max_wait_ms = 30000;
	k->connect_s = 10;
	k->request_s = 60;
	k->watch_idle_s = 120;
	k->clock = (pl_kube_clock){real_now, real_sleep, NULL};
	pl_bucket_init(&k->rate, qps > 0 ? qps : PL_KUBE_DEFAULT_QPS, burst > 0 ? burst : PL_KUBE_DEFAULT_BURST,
		       k->clock.now_ns(k->clock.ctx));
	if (k->cfg.insecure)
		log_warnx("%s: %s: TLS verification of %s is disabled (insecure-skip-tls-verify)", __func__,
			  k->cfg.source ? k->cfg.source : "config", k->cfg.server);
	return k;
}

void pl_kube_free(pl_kube *k)
{
	if (!k)
		return;
	if (k->curl)
		curl_easy_cleanup(k->curl);
	pl_kube_config_free(&k->cfg);
	free(k->token);
	free(k);
}

const char *pl_kube_namespace(const pl_kube *k)
{
	return k->cfg.namespace;
}

void pl_kube_set_retry(pl_kube *k, int max_attempts, int64_t max_wait_ms)
{
	k->max_attempts = max_attempts > 0 ? max_attempts : 1;
	k->max_wait_ms = max_wait_ms >= 0 ? max_wait_ms : 0;
}

void pl_kube_set_timeouts(pl_kube *k, long connect_s, long request_s, long watch_idle_s)
{
	if (connect_s > 0)
		k->connect_s = connect_s;
	if (request_s > 0)
		k->request_s = request_s;
	if (watch_idle_s > 0)
		k->watch_idle_s = watch_idle_s;
}

void pl_kube_set_clock(pl_kube *k, const pl_kube_clock *clock)
{
	k->clock = *clock;
	pl_bucket_restart(&k->rate, k->clock.now_ns(k->clock.ctx));
}

void pl_kube_set_observer(pl_kube *k, pl_kube_observer fn, void *ctx)
{
	k->obs = fn;
	k->obs_ctx = ctx;
}

/* ---------- rate limit: a token bucket, as client-go's flowcontrol ---------- */

static void rate_wait(pl_kube *k)
{
	/* A deficit is paid for by waiting, so waiters are served in order. */
	int64_t wait = pl_bucket_reserve(&k->rate, k->clock.now_ns(k->clock.ctx));

	if (wait > 0)
		k->clock.sleep_ns(k->clock.ctx, wait);
}

/* ---------- token ---------- */

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Re-reads token_file when it changed (projected tokens are swapped in by symlink, so stat follows it). */
static void token_refresh(pl_kube *k, bool force)
{
	struct stat st;
	pl_buf b = PL_BUF_INIT;
	int rc;

	if (!k->cfg.token_file)
		return;
	if (stat(k->cfg.token_file, &st) != 0) {
		if (!k->token)
			log_warnx("%s: token file %s: %s", __func__, k->cfg.token_file, strerror(errno));
		return;
	}
	if (!force && k->tok_stat_valid && same_file(&st, &k->tok_stat))
		return;
	if ((rc = pl_buf_read_file(&b, k->cfg.token_file, TOKEN_MAX)) < 0) {
		log_warnx("%s: token file %s: %s (keeping the previous token)", __func__, k->cfg.token_file,
			  strerror(-rc));
		pl_buf_free(&b);
		return;
	}
	while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' '))
		b.data[--b.len] = '\0';
	if (b.len == 0 || memchr(b.data, '\n', b.len)) {
		/* Mid-rotation or not a token: keep the last good one, look again next time. */
		log_warnx("%s: token file %s: empty or malformed (keeping the previous token)", __func__,
			  k->cfg.token_file);
		pl_buf_free(&b);
		return;
	}
	free(k->token);
	k->token = b.data;
	k->tok_stat = st;
	k->tok_stat_valid = true;
}

/* ---------- status ---------- */

static const char *reason_for(long http)
{
	switch (http) {
	case 400: return "BadRequest";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "NotFound";
	case 405: return "MethodNotAllowed";
	case 406: return "NotAcceptable";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "RequestEntityTooLarge";
	case 415: return "UnsupportedMediaType";
	case 422: return "Invalid";
	case 429: return "TooManyRequests";
	case 500: return "InternalError";
	case 503: return "ServiceUnavailable";
	case 504: return "Timeout";
	default: return http >= 500 ? "InternalError" : "Unknown";
	}
}

int pl_kube_errno(long http, const char *reason)
{
	if (http >= 200 && http < 300)
		return 0;
	switch (http) {
	case 400:
	case 422: return -EINVAL;
	case 401: return -EACCES;
	case 403: return -EPERM;
	case 404: return -ENOENT;
	case 409: return reason && strcmp(reason, "AlreadyExists") == 0 ? -EEXIST : -ESTALE;
	case 410: return -ERANGE;
	case 429: return -EBUSY;
	default: return http >= 500 ? -EIO : -EPROTO;
	}
}

static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

void kube_status_from_json(pl_kube_status *st, const json_t *status)
{
	const json_t *code = json_object_get(status, "code");
	const json_t *details = json_object_get(status, "details");
	const json_t *ra = json_object_get(details, "retryAfterSeconds");

	if (json_is_integer(code) && json_integer_value(code) > 0)
		st->http = (long)json_integer_value(code);
	if (pl_json_get_str(status, "reason"))
		copy_str(st->reason, sizeof(st->reason), pl_json_get_str(status, "reason"));
	if (pl_json_get_str(status, "message"))
		copy_str(st->message, sizeof(st->message), pl_json_get_str(status, "message"));
	if (json_is_integer(ra) && json_integer_value(ra) > 0 && !st->retry_after_s)
		st->retry_after_s = json_integer_value(ra);
}

/* An error response: the Status when the body is one, else the HTTP reason and the body's start. */
static void status_from_body(pl_kube_status *st, long http, const pl_buf *body)
{
	json_t *j = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;

	st->http = http;
	copy_str(st->reason, sizeof(st->reason), reason_for(http));
	if (j && json_is_object(j) && pl_json_get_str(j, "kind") && strcmp(pl_json_get_str(j, "kind"), "Status") == 0) {
		kube_status_from_json(st, j);
		st->http = http;   /* the transport's code wins over the body's */
	} else if (body->len) {
		/* Not a Status (a proxy's HTML page): one line of it, printable only. */
		size_t o = 0;
		for (size_t i = 0; i < body->len && o + 1 < sizeof(st->message) && o < 200; i++) {
			unsigned char ch = (unsigned char)body->data[i];
			st->message[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : ' ';
		}
		st->message[o] = '\0';
	} else {
		snprintf(st->message, sizeof(st->message), "HTTP %ld with no body", http);
	}
	json_decref(j);
}

void kube_log_failure(const char *verb, const char *target, int rc, const pl_kube_status *st)
{
	/* A path never holds a secret; Status messages come from the server, never a token. */
	pl_log_level lvl = (st->http == 404 || st->http == 409) ? PL_LOG_DEBUG : st->http == 410 ? PL_LOG_INFO : PL_LOG_WARN;
	pl_log(lvl, "kube: %s %s: %s (http %ld, reason %s): %s", verb, target, strerror(-rc), st->http,
	       st->reason[0] ? st->reason : "-", st->message);
}

/* ---------- one HTTP attempt ---------- */

typedef struct xfer {
	pl_kube *k;
	const kube_call *c;
	pl_buf *body;
	long http;
	bool streaming;   /* a 2xx stream is being fed to the sink */
	bool stopped;     /* the sink asked to stop */
	bool too_big;
	bool idle;        /* a watch went silent past watch_idle_s */
	int64_t last_byte_ns;   /* real monotonic time of the last byte received */
	int64_t retry_after_s;
} xfer;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;

	x->last_byte_ns = pl_mono_ns();
	if (x->c->sink) {
		if (!x->http)
			curl_easy_getinfo(x->k->curl, CURLINFO_RESPONSE_CODE, &x->http);
		if (x->http >= 200 && x->http < 300) {
			x->streaming = true;
			if (!x->c->sink(x->c->sink_ctx, p, len)) {
				x->stopped = true;
				return 0;
			}
			return len;
		}
	}
	if (x->body->len + len > RESPONSE_MAX) {
		x->too_big = true;
		return 0;
	}
	pl_buf_append(x->body, p, len);
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;
	static const char ra[] = "retry-after:";

	x->last_byte_ns = pl_mono_ns();

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		x->retry_after_s = 0;   /* a new response (after a redirect or 1xx) */
	} else if (len > sizeof(ra) - 1 && strncasecmp(p, ra, sizeof(ra) - 1) == 0) {
		char v[32];
		size_t vl = len - (sizeof(ra) - 1);
		if (vl >= sizeof(v))
			vl = sizeof(v) - 1;
		memcpy(v, p + sizeof(ra) - 1, vl);
		v[vl] = '\0';
		char *end;
		long long s = strtoll(v, &end, 10);
		/* Seconds only; an HTTP-date (which the API server never sends) counts as 1 s. */
		x->retry_after_s = (end != v && s > 0) ? s : 1;
	}
	return len;
}

/*
 * Called by libcurl about once a second even when nothing moves. A watch that received
 * no byte at all (not even a bookmark) for watch_idle_s is dead: a half-open connection
 * or a stalled HTTP/2 stream. (CURLOPT_LOW_SPEED_TIME averages over a window of several
 * seconds, so it reacts late; this is exact.) Real time, not the client's clock seam.
 */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	xfer *x = ud;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	if (pl_mono_ns() - x->last_byte_ns > (int64_t)x->k->watch_idle_s * 1000000000) {
		x->idle = true;
		return 1;
	}
	return 0;
}

static int curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM: return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CIPHER: return -EPROTO;
	default: return -EIO;
	}
}

static void set_blob(CURL *c, CURLoption opt, const char *pem)
{
	/* NOCOPY: the pl_kube owns pem for the handle's life. */
	struct curl_blob blob = {.data = (void *)pem, .len = strlen(pem), .flags = CURL_BLOB_NOCOPY};
	curl_easy_setopt(c, opt, &blob);
}

/* Returns 0 when an HTTP response arrived (x->http set), else -errno (transport). */
static int attempt(pl_kube *k, const kube_call *c, xfer *x, pl_kube_status *st)
{
	CURL *h = k->curl;
	struct curl_slist *hdr = NULL;
	pl_buf url = PL_BUF_INIT, auth = PL_BUF_INIT, ct = PL_BUF_INIT;
	CURLcode cc;
	int rc = 0;

	/* Reset keeps the live connections, DNS and TLS session caches: only options go. */
	curl_easy_reset(h);
	pl_buf_printf(&url, "%s%s", k->cfg.server, c->target);
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, k->errbuf);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, k->connect_s);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, k->cfg.user_agent ? k->cfg.user_agent : PL_KUBE_USER_AGENT);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	if (c->sink) {
		x->last_byte_ns = pl_mono_ns();
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		/* A server that ignores timeoutSeconds but trickles bytes still gets cut, later. */
		if (c->stream_timeout_s > 0)
			curl_easy_setopt(h, CURLOPT_TIMEOUT, c->stream_timeout_s + k->watch_idle_s);
	} else {
		curl_easy_setopt(h, CURLOPT_TIMEOUT, k->request_s);
		curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
	}

	if (k->cfg.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (k->cfg.ca_pem) {
		set_blob(h, CURLOPT_CAINFO_BLOB, k->cfg.ca_pem);
	} else if (k->cfg.ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, k->cfg.ca_file);
	}
	if (k->cfg.cert_pem)
		set_blob(h, CURLOPT_SSLCERT_BLOB, k->cfg.cert_pem);
	else if (k->cfg.cert_file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, k->cfg.cert_file);
	if (k->cfg.key_pem)
		set_blob(h, CURLOPT_SSLKEY_BLOB, k->cfg.key_pem);
	else if (k->cfg.key_file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, k->cfg.key_file);
	if (k->cfg.cert_pem || k->cfg.cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}

	hdr = curl_slist_append(hdr, "Accept: application/json");
	hdr = curl_slist_append(hdr, "Expect:");
	if (k->token) {
		pl_buf_printf(&auth, "Authorization: Bearer %s", k->token);
		hdr = curl_slist_append(hdr, auth.data);
	}
	if (c->content_type) {
		pl_buf_printf(&ct, "Content-Type: %s", c->content_type);
		hdr = curl_slist_append(hdr, ct.data);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	if (strcmp(c->method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
	if (c->content_type || strcmp(c->method, "POST") == 0 || strcmp(c->method, "PATCH") == 0 ||
	    strcmp(c->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? c->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(c->body ? c->len : 0));
	}

	k->errbuf[0] = '\0';
	int64_t t0 = k->clock.now_ns(k->clock.ctx);
	cc = curl_easy_perform(h);
	long http = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
	x->http = http;
	if (k->obs)
		k->obs(k->obs_ctx, c->verb, http, (double)(k->clock.now_ns(k->clock.ctx) - t0) / 1e9);

	if (cc != CURLE_OK && !(x->stopped && cc == CURLE_WRITE_ERROR)) {
		if (x->too_big) {
			rc = -EFBIG;
			snprintf(st->message, sizeof(st->message), "response larger than %zu bytes", RESPONSE_MAX);
		} else if (x->idle) {
			rc = -ETIMEDOUT;
			snprintf(st->message, sizeof(st->message), "no bytes for %ld s: the stream is dead", k->watch_idle_s);
		} else {
			rc = curl_errno(cc);
			snprintf(st->message, sizeof(st->message), "%s", k->errbuf[0] ? k->errbuf : curl_easy_strerror(cc));
			/* errbuf may end with a newline */
			size_t n = strlen(st->message);
			if (n && st->message[n - 1] == '\n')
				st->message[n - 1] = '\0';
		}
	}
	/* Wipe the Authorization header's copy: a token should not linger in freed memory. */
	if (auth.data)
		memset(auth.data, 0, auth.len);
	curl_slist_free_all(hdr);
	pl_buf_free(&url);
	pl_buf_free(&auth);
	pl_buf_free(&ct);
	return rc;
}

/* ---------- the retry loop ---------- */

static int64_t backoff_ms(const pl_kube *k, int attempt_no, int64_t retry_after_s)
{
	int64_t ms = retry_after_s > 0 ? retry_after_s * 1000 : (int64_t)BACKOFF_BASE_MS << (attempt_no - 1 < 10 ? attempt_no - 1 : 10);

	return ms > k->max_wait_ms ? k->max_wait_ms : ms;
}

int kube_do(pl_kube *k, const kube_call *c, pl_buf *resp, pl_kube_status *st)
{
	bool idempotent = strcmp(c->method, "GET") == 0 || strcmp(c->method, "HEAD") == 0;
	bool token_retried = false;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	for (int n = 1;; n++) {
		xfer x = {.k = k, .c = c, .body = resp};
		int64_t wait = -1;

		pl_buf_reset(resp);
		memset(st, 0, sizeof(*st));
		st->attempts = n;
		rate_wait(k);
		token_refresh(k, false);
		rc = attempt(k, c, &x, st);
		if (x.streaming) {
			/* The stream started: whatever ended it, the caller resumes from its resourceVersion. */
			st->http = x.http;
			return 0;
		}
		if (rc < 0) {
			/* A refused connection sent nothing, so any verb may try again. */
			if ((idempotent || rc == -ECONNREFUSED) && rc != -EFBIG && rc != -EPROTO && n < k->max_attempts)
				wait = backoff_ms(k, n, 0);
		} else if (x.http >= 200 && x.http < 300) {
			st->http = x.http;
			return 0;
		} else {
			status_from_body(st, x.http, resp);
			if (x.retry_after_s)
				st->retry_after_s = x.retry_after_s;
			rc = pl_kube_errno(x.http, st->reason);
			if (x.http == 401 && k->cfg.token_file && !token_retried) {
				/* The token may have rotated between our stat and the server's check. */
				token_retried = true;
				token_refresh(k, true);
				if (n < k->max_attempts)
					wait = 0;
			} else if (n < k->max_attempts && (x.http == 429 || (x.http >= 500 && idempotent))) {
				wait = backoff_ms(k, n, st->retry_after_s);
			}
		}
		if (wait < 0)
			break;
		log_info("kube: %s %s: %s (http %ld%s%s); retry %d/%d in %" PRId64 " ms", c->verb, c->target,
			 strerror(-rc), st->http, st->reason[0] ? ", " : "", st->reason, n, k->max_attempts - 1, wait);
		if (wait > 0)
			k->clock.sleep_ns(k->clock.ctx, wait * 1000000);
	}
	kube_log_failure(c->verb, c->target, rc, st);
	return rc;
}
