/* A small level-triggered epoll loop with one-shot timers (min-heap) and monotonic time. */
#ifndef PILLION_EV_EV_H
#define PILLION_EV_EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pl_ev_loop pl_ev_loop;

/* events: EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP/EPOLLRDHUP bits as epoll reports them. */
typedef void (*pl_ev_io_cb)(pl_ev_loop *loop, void *data, uint32_t events);
typedef void (*pl_ev_timer_cb)(pl_ev_loop *loop, void *data);

typedef struct pl_ev_io {
	int fd;             /* -1 when not registered */
	uint32_t mask;      /* the interest currently registered */
	pl_ev_io_cb cb;
	void *data;
} pl_ev_io;

typedef struct pl_ev_timer {
	int64_t when;       /* monotonic ns */
	size_t _slot;       /* heap index + 1; 0 when not armed */
	pl_ev_timer_cb cb;
	void *data;
} pl_ev_timer;

pl_ev_loop *pl_ev_loop_new(void);
void pl_ev_loop_free(pl_ev_loop *loop);

/* Monotonic time in ns, read once per loop iteration (and by pl_ev_now_update). */
int64_t pl_ev_now(const pl_ev_loop *loop);
int64_t pl_ev_now_update(pl_ev_loop *loop);

void pl_ev_io_init(pl_ev_io *io, pl_ev_io_cb cb, void *data);
/* Registers fd with interest mask. 0 or -errno. */
int pl_ev_io_start(pl_ev_loop *loop, pl_ev_io *io, int fd, uint32_t mask);
/* Changes the interest; a no-op when it is unchanged (no syscall). */
int pl_ev_io_set(pl_ev_loop *loop, pl_ev_io *io, uint32_t mask);
/* Unregisters; events already fetched for io in this iteration are dropped. Does not close fd. */
void pl_ev_io_stop(pl_ev_loop *loop, pl_ev_io *io);

void pl_ev_timer_init(pl_ev_timer *t, pl_ev_timer_cb cb, void *data);
/* Arms (or re-arms) t to fire once after delay_ns. */
void pl_ev_timer_start(pl_ev_loop *loop, pl_ev_timer *t, int64_t delay_ns);
void pl_ev_timer_stop(pl_ev_loop *loop, pl_ev_timer *t);
static inline bool pl_ev_timer_armed(const pl_ev_timer *t) { return t->_slot != 0; }

/*
 * Waits for events (at most until the next timer, or max_wait_ns when >= 0) and runs
 * the callbacks of one batch, then the due timers. Returns the number of callbacks run
 * or -errno. An io stopped inside the batch gets no further callbacks from it, but its
 * memory must stay valid until this call returns (free closed objects afterwards).
 */
int pl_ev_run_once(pl_ev_loop *loop, int64_t max_wait_ns);

#endif
