/* HTTP/2 framing on nghttp2 (the only caller): settings and limits, header blocks collected whole,
 * body bytes pulled by callback, windows opened only when the bytes moved on. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2/h2.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const pl_h2_limits pl_h2_default_limits = {
	.max_streams = 256,
	.stream_window = 256 * 1024,
	.conn_window = 4 * 1024 * 1024,
	.max_header_list = 64 * 1024,
	.max_fields = 200,
	.resets_burst = 200,
	.resets_per_s = 100,
	.max_continuations = 8,
};

struct pl_h2 {
	nghttp2_session *s;
	const pl_h2_cbs *cbs;
	void *ud;
	pl_h2_limits lim;
	bool server;
	bool goaway_sent, goaway_recv;
	/* the header block being received: fields as offsets into hb */
	char *hb;
	size_t hb_len, hb_cap;
	size_t *off;               /* name, namelen, value, valuelen per field */
	size_t nf, fcap;
	size_t hb_bytes;
	pl_h2_field *fv;
	size_t fvcap;
	char why[160];             /* the last error nghttp2 reported (its text lives only during the call) */
	char ended[160];           /* why we ended the connection: our GOAWAY's code and reason */
};

int pl_h2_is_preface(const void *p, size_t n)
{
	size_t k = n < PL_H2_PREFACE_LEN ? n : PL_H2_PREFACE_LEN;

	if (memcmp(p, preface, k) != 0)
		return 0;
	return n >= PL_H2_PREFACE_LEN ? 1 : -1;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	p = realloc(p, c * elem);
	if (!p)
		abort();
	*cap = c;
	return p;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *fr, void *ud)
{
	pl_h2 *h = ud;
	(void)s;
	(void)fr;
	h->hb_len = h->nf = h->hb_bytes = 0;
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	pl_h2 *h = ud;
	(void)s;
	(void)fr;
	(void)flags;
	/* RFC 9113 6.5.2's measure: name + value + 32 per field. */
	h->hb_bytes += namelen + valuelen + 32;
	if (h->hb_bytes > h->lim.max_header_list || h->nf >= h->lim.max_fields)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
	h->hb = grow(h->hb, &h->hb_cap, h->hb_len + namelen + valuelen + 2, 1);
	h->off = grow(h->off, &h->fcap, (h->nf + 1) * 4, sizeof(size_t));
	size_t *o = h->off + h->nf * 4;
	o[0] = h->hb_len;
	o[1] = namelen;
	memcpy(h->hb + h->hb_len, name, namelen);
	h->hb_len += namelen;
	h->hb[h->hb_len++] = 0;
	o[2] = h->hb_len;
	o[3] = valuelen;
	memcpy(h->hb + h->hb_len, value, valuelen);
	h->hb_len += valuelen;
	h->hb[h->hb_len++] = 0;
	h->nf++;
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *fr, void *ud)
{
	pl_h2 *h = ud;
	int32_t id = fr->hd.stream_id;
	bool end = fr->hd.flags & NGHTTP2_FLAG_END_STREAM;

	switch (fr->hd.type) {
	case NGHTTP2_HEADERS: {
		h->fv = grow(h->fv, &h->fvcap, h->nf + 1, sizeof(pl_h2_field));
		enum pl_h2_head kind = PL_H2_TRAILERS;
		for (size_t i = 0; i < h->nf; i++) {
			const size_t *o = h->off + i * 4;
			pl_h2_field *f = &h->fv[i];
			f->name = h->hb + o[0];
			f->namelen = o[1];
			f->value = h->hb + o[2];
			f->valuelen = o[3];
			/* nghttp2 checked the pseudo-fields: a :method opens a request, a :status a response. */
			if (f->namelen == 7 && memcmp(f->name, ":method", 7) == 0)
				kind = PL_H2_REQUEST;
			else if (f->namelen == 7 && memcmp(f->name, ":status", 7) == 0)
				kind = f->valuelen && f->value[0] == '1' ? PL_H2_INFO : PL_H2_RESPONSE;
		}
		if (h->cbs->head)
			h->cbs->head(h->ud, h, id, nghttp2_session_get_stream_user_data(s, id), kind, h->fv, h->nf, end);
		break;
	}
	case NGHTTP2_DATA:
		if (end && h->cbs->end)
			h->cbs->end(h->ud, h, id, nghttp2_session_get_stream_user_data(s, id));
		break;
	case NGHTTP2_GOAWAY:
		h->goaway_recv = true;
		if (h->cbs->goaway)
			h->cbs->goaway(h->ud, h, fr->goaway.last_stream_id, fr->goaway.error_code);
		break;
	default:
		break;
	}
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n, void *ud)
{
	pl_h2 *h = ud;
	(void)flags;
	if (h->cbs->data)
		h->cbs->data(h->ud, h, id, nghttp2_session_get_stream_user_data(s, id), p, n);
	else
		nghttp2_session_consume(s, id, n);
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	pl_h2 *h = ud;
	void *sud = nghttp2_session_get_stream_user_data(s, id);

	if (h->cbs->close)
		h->cbs->close(h->ud, h, id, sud, code);
	return 0;
}

static int on_error(nghttp2_session *s, int code, const char *msg, size_t len, void *ud)
{
	pl_h2 *h = ud;
	(void)s;
	(void)code;
	(void)len;
	size_t n = len < sizeof(h->why) - 1 ? len : sizeof(h->why) - 1;
	memcpy(h->why, msg, n);
	h->why[n] = 0;
	return 0;
}

/* Our GOAWAY with an error code ends the connection: keep why, for the log. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *fr, void *ud)
{
	pl_h2 *h = ud;
	(void)s;
	if (fr->hd.type == NGHTTP2_GOAWAY && fr->goaway.error_code != NGHTTP2_NO_ERROR && !h->ended[0])
		snprintf(h->ended, sizeof(h->ended), "%s: %.*s", nghttp2_http2_strerror(fr->goaway.error_code),
			 (int)(fr->goaway.opaque_data_len > 120 ? 120 : fr->goaway.opaque_data_len),
			 fr->goaway.opaque_data ? (const char *)fr->goaway.opaque_data : "");
	return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	pl_h2 *h = ud;
	int end = PL_H2_MORE;
	(void)src;
	ssize_t n = h->cbs->read(h->ud, h, id, nghttp2_session_get_stream_user_data(s, id), buf, len, &end);

	if (n == PL_H2_DEFER)
		return NGHTTP2_ERR_DEFERRED;
	if (n < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (end == PL_H2_END) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	} else if (end == PL_H2_END_TRAILERS) {
		const pl_h2_field *f = NULL;
		size_t nf = 0;
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (h->cbs->trailers)
			h->cbs->trailers(h->ud, h, id, nghttp2_session_get_stream_user_data(s, id), &f, &nf);
		if (nf) {
			nghttp2_nv nv[nf];
			for (size_t i = 0; i < nf; i++)
				nv[i] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].namelen, f[i].valuelen,
						     NGHTTP2_NV_FLAG_NONE};
			if (nghttp2_submit_trailer(s, id, nv, nf) == 0)
				*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		}
	}
	return n;
}

pl_h2 *pl_h2_new(bool server, const pl_h2_cbs *cbs, void *ud, const pl_h2_limits *lim)
{
	pl_h2 *h = calloc(1, sizeof(*h));
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;

	if (!h || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		abort();
	h->cbs = cbs;
	h->ud = ud;
	h->lim = lim ? *lim : pl_h2_default_limits;
	h->server = server;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session_callbacks_set_error_callback2(cb, on_error);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	/* Flow control is ours: a window opens when the bytes moved on, not when they arrived. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_reserved_remote_streams(opt, 0);
	nghttp2_option_set_stream_reset_rate_limit(opt, h->lim.resets_burst, h->lim.resets_per_s);
	nghttp2_option_set_max_continuations(opt, h->lim.max_continuations);
	/* Until the server's SETTINGS say otherwise. */
	nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
	int r = server ? nghttp2_session_server_new2(&h->s, cb, h, opt) : nghttp2_session_client_new2(&h->s, cb, h, opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (r != 0)
		abort();
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h->lim.max_streams},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h->lim.stream_window},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, h->lim.max_header_list},
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};
	/* ENABLE_PUSH is a client's setting only. */
	if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, server ? 3 : 4) != 0 ||
	    nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, (int32_t)h->lim.conn_window) != 0)
		abort();
	return h;
}

void pl_h2_free(pl_h2 *h)
{
	if (!h)
		return;
	nghttp2_session_del(h->s);
	free(h->hb);
	free(h->off);
	free(h->fv);
	free(h);
}

int pl_h2_recv(pl_h2 *h, const void *p, size_t n, const char **why)
{
	h->why[0] = 0;
	ssize_t r = nghttp2_session_mem_recv(h->s, p, n);

	if (r < 0) {
		*why = h->why[0] ? h->why : nghttp2_strerror((int)r);
		return -1;
	}
	return 0;
}

const char *pl_h2_error(const pl_h2 *h) { return h->ended[0] ? h->ended : NULL; }

ssize_t pl_h2_send(pl_h2 *h, const uint8_t **p)
{
	ssize_t n = nghttp2_session_mem_send(h->s, p);

	return n < 0 ? -1 : n;
}

bool pl_h2_alive(const pl_h2 *h) { return nghttp2_session_want_read(h->s) || nghttp2_session_want_write(h->s); }

static nghttp2_nv *nvs(const pl_h2_field *f, size_t n)
{
	nghttp2_nv *nv = calloc(n ? n : 1, sizeof(*nv));

	if (!nv)
		abort();
	for (size_t i = 0; i < n; i++)
		nv[i] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].namelen, f[i].valuelen,
				     NGHTTP2_NV_FLAG_NONE};
	return nv;
}

int32_t pl_h2_request(pl_h2 *h, const pl_h2_field *f, size_t n, bool body, void *sud)
{
	if (!h->server && !nghttp2_session_check_request_allowed(h->s))
		return -1;
	nghttp2_data_provider dp = {.read_callback = read_body};
	nghttp2_nv *nv = nvs(f, n);
	int32_t id = nghttp2_submit_request(h->s, NULL, nv, n, body ? &dp : NULL, sud);

	free(nv);
	return id < 0 ? -1 : id;
}

int pl_h2_response(pl_h2 *h, int32_t id, const pl_h2_field *f, size_t n, bool body)
{
	nghttp2_data_provider dp = {.read_callback = read_body};
	nghttp2_nv *nv = nvs(f, n);
	int r = nghttp2_submit_response(h->s, id, nv, n, body ? &dp : NULL);

	free(nv);
	return r == 0 ? 0 : -1;
}

void pl_h2_set_stream(pl_h2 *h, int32_t id, void *sud) { nghttp2_session_set_stream_user_data(h->s, id, sud); }

void pl_h2_resume(pl_h2 *h, int32_t id) { nghttp2_session_resume_data(h->s, id); }

void pl_h2_consume(pl_h2 *h, int32_t id, size_t n)
{
	if (n)
		nghttp2_session_consume(h->s, id, n);
}

void pl_h2_reset(pl_h2 *h, int32_t id, uint32_t code) { nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, id, code); }

void pl_h2_goaway(pl_h2 *h, uint32_t code)
{
	if (h->goaway_sent)
		return;
	h->goaway_sent = true;
	nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s), code, NULL, 0);
}

void pl_h2_ping(pl_h2 *h) { nghttp2_submit_ping(h->s, NGHTTP2_FLAG_NONE, NULL); }

uint32_t pl_h2_peer_max_streams(const pl_h2 *h)
{
	return nghttp2_session_get_remote_settings(h->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

bool pl_h2_closing(const pl_h2 *h)
{
	/* nghttp2 may have ended the session itself (a peer's protocol error): no new stream then either. */
	return h->goaway_sent || h->goaway_recv || (!h->server && !nghttp2_session_check_request_allowed(h->s));
}

const char *pl_h2_code_name(uint32_t code) { return nghttp2_http2_strerror(code); }
