/* Inside the proxy's HTTP/2 layer: what h2.c (streams, HTTP/2 connections, pools) and h2up1.c
 * (HTTP/1.1 upstream connections for streams) call of each other. Not for other files. */
#ifndef PILLION_SIDECAR_H2_INT_H
#define PILLION_SIDECAR_H2_INT_H

#include <sys/types.h>

#include "h2-t.h"

/* c has work due: flushed (and closed if dead) once the current event is handled. */
void px_h2_mark(px_h2c *c);
/* Closes c now: its streams learn that their connection is gone. */
void px_h2_conn_close(px_h2c *c, const char *why);

/* The answer of s's current attempt, from whichever upstream protocol: its head (status, HTTP/2
 * fields; end: no body follows). It may retry instead (s then left its upstream). */
void px_h2_answer_head(px_h2s *s, int status, const pl_h2_field *f, size_t n, bool end);
/* Body bytes of the answer, and its end. */
void px_h2_answer_data(px_h2s *s, const uint8_t *p, size_t n);
void px_h2_answer_end(px_h2s *s);
/* Bytes of the answer held for the client, not yet written to it. */
size_t px_h2_answer_held(const px_h2s *s);
/* Up to n request body bytes into out, handed back to the client's window as they go the first
 * time; *end set with the last. PL_H2_DEFER when none are there yet. */
ssize_t px_h2_take_body(px_h2s *s, uint8_t *out, size_t n, int *end);
/* s leaves its upstream connection: a finished exchange, or (code, cause, detail) a failed one. */
void px_h2_up_done(px_h2s *s);
void px_h2_up_failed(px_h2s *s, uint32_t code, int cause, const char *detail);
/* The client's stream of s is reset with code (an error after its answer began). */
void px_h2_down_reset(px_h2s *s, uint32_t code);

/* Frames due are written now (from an HTTP/1 session's call: the sessions riding streams are told
 * of their answers at the end of the next HTTP/2 event, never inside another session's call). */
void px_h2_flush(proxy *px);

/* h2bridge.c's stream: an upstream stream with no downstream HTTP/2 stream; its answer goes to b. */
px_h2s *px_h2_bridge_open(proxy *px, int dir, const px_target *t, bool endpoint, px_mesh *mesh, const pl_h2_field *f,
			  size_t n, bool body, px_h2b *b, int *err);
void px_h2_bridge_close(px_h2s *s);
pl_buf *px_h2_bridge_body(px_h2s *s);
/* Body bytes were appended (end: the last ones). */
void px_h2_bridge_wake(px_h2s *s, bool end);
size_t px_h2_bridge_unsent(const px_h2s *s);
pl_buf *px_h2_bridge_resp(px_h2s *s);
size_t *px_h2_bridge_resp_off(px_h2s *s);
bool px_h2_bridge_resp_end(const px_h2s *s);
/* The answer bytes it held were passed on: the peer may send as many again. */
void px_h2_bridge_consumed(px_h2s *s);
/* Events for the bridge (h2bridge.c). */
void px_h2b_head(px_h2b *b, int status, const pl_h2_field *f, size_t n, bool end);
void px_h2b_failed(px_h2b *b, uint32_t code, int cause, const char *detail);
void px_h2b_kick(px_h2b *b);
bool px_h2b_kicks_pending(void);
bool px_h2b_run_kicks(void);

/* h2up1.c: an upstream connection speaking HTTP/1.1, one stream at a time. */
void px_h1x_new(px_h2c *c);
void px_h1x_free(px_h2c *c);
/* s (with its h1head) goes on c, ready and free. */
void px_h1x_submit(px_h2c *c, px_h2s *s);
/* Writes what is due and reads what came, as the socket and the client's reading allow. */
void px_h1x_io(px_h2c *c, uint32_t ev);
void px_h1x_flush(px_h2c *c);
/* The stream on c leaves before its exchange finished: c is not reused. */
void px_h1x_abandon(px_h2c *c);

#endif
