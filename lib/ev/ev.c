/* The epoll loop: io watchers, a binary min-heap of timers, and batch-safe unregistering. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "ev/ev.h"

#define BATCH 256

struct pl_ev_loop {
	int epfd;
	int64_t now;
	pl_ev_timer **heap;
	size_t nheap, capheap;
	/* The batch being dispatched: pl_ev_io_stop clears its entries so no stale callback runs. */
	struct epoll_event batch[BATCH];
	int nbatch;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

pl_ev_loop *pl_ev_loop_new(void)
{
	pl_ev_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	l->now = mono_ns();
	return l;
}

void pl_ev_loop_free(pl_ev_loop *loop)
{
	if (!loop)
		return;
	close(loop->epfd);
	free(loop->heap);
	free(loop);
}

int64_t pl_ev_now(const pl_ev_loop *loop) { return loop->now; }
int64_t pl_ev_now_update(pl_ev_loop *loop) { return loop->now = mono_ns(); }

void pl_ev_io_init(pl_ev_io *io, pl_ev_io_cb cb, void *data)
{
	io->fd = -1;
	io->mask = 0;
	io->cb = cb;
	io->data = data;
}

int pl_ev_io_start(pl_ev_loop *loop, pl_ev_io *io, int fd, uint32_t mask)
{
	struct epoll_event ev = {.events = mask, .data.ptr = io};

	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	io->fd = fd;
	io->mask = mask;
	return 0;
}

int pl_ev_io_set(pl_ev_loop *loop, pl_ev_io *io, uint32_t mask)
{
	struct epoll_event ev = {.events = mask, .data.ptr = io};

	if (io->fd < 0 || io->mask == mask)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->mask = mask;
	return 0;
}

void pl_ev_io_stop(pl_ev_loop *loop, pl_ev_io *io)
{
	if (io->fd < 0)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->fd = -1;
	io->mask = 0;
	for (int i = 0; i < loop->nbatch; i++)
		if (loop->batch[i].data.ptr == io)
			loop->batch[i].data.ptr = NULL;
}

void pl_ev_timer_init(pl_ev_timer *t, pl_ev_timer_cb cb, void *data)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->data = data;
}

static void heap_set(pl_ev_loop *l, size_t i, pl_ev_timer *t)
{
	l->heap[i] = t;
	t->_slot = i + 1;
}

static void sift_up(pl_ev_loop *l, size_t i)
{
	pl_ev_timer *t = l->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->when <= t->when)
			break;
		heap_set(l, i, l->heap[p]);
		i = p;
	}
	heap_set(l, i, t);
}

static void sift_down(pl_ev_loop *l, size_t i)
{
	pl_ev_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && l->heap[c + 1]->when < l->heap[c]->when)
			c++;
		if (t->when <= l->heap[c]->when)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

void pl_ev_timer_stop(pl_ev_loop *loop, pl_ev_timer *t)
{
	if (!t->_slot)
		return;
	size_t i = t->_slot - 1;
	t->_slot = 0;
	loop->nheap--;
	if (i == loop->nheap)
		return;
	pl_ev_timer *moved = loop->heap[loop->nheap];
	heap_set(loop, i, moved);
	sift_down(loop, i);
	sift_up(loop, moved->_slot - 1);
}

void pl_ev_timer_start(pl_ev_loop *loop, pl_ev_timer *t, int64_t delay_ns)
{
	pl_ev_timer_stop(loop, t);
	if (loop->nheap == loop->capheap) {
		size_t cap = loop->capheap ? loop->capheap * 2 : 64;
		pl_ev_timer **h = realloc(loop->heap, cap * sizeof(*h));
		if (!h)
			abort();
		loop->heap = h;
		loop->capheap = cap;
	}
	/* At least 1 ns: a timer re-armed from its callback waits for the next iteration. */
	if (delay_ns < 1)
		delay_ns = 1;
	t->when = delay_ns > INT64_MAX - loop->now ? INT64_MAX : loop->now + delay_ns;
	heap_set(loop, loop->nheap++, t);
	sift_up(loop, loop->nheap - 1);
}

int pl_ev_run_once(pl_ev_loop *loop, int64_t max_wait_ns)
{
	int64_t wait = max_wait_ns;
	int timeout_ms, n, ran = 0;

	if (loop->nheap) {
		int64_t until = loop->heap[0]->when - loop->now;
		if (until < 0)
			until = 0;
		if (wait < 0 || until < wait)
			wait = until;
	}
	/* Wake at least hourly (keeps the ms count in range); round up so a timer 0.3 ms away does not spin. */
	if (wait > 3600 * INT64_C(1000000000))
		wait = 3600 * INT64_C(1000000000);
	timeout_ms = wait < 0 ? -1 : (int)((wait + 999999) / 1000000);
	n = epoll_wait(loop->epfd, loop->batch, BATCH, timeout_ms);
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	pl_ev_now_update(loop);
	loop->nbatch = n;
	for (int i = 0; i < n; i++) {
		pl_ev_io *io = loop->batch[i].data.ptr;
		if (!io)
			continue;
		io->cb(loop, io->data, loop->batch[i].events);
		ran++;
	}
	loop->nbatch = 0;
	while (loop->nheap && loop->heap[0]->when <= loop->now) {
		pl_ev_timer *t = loop->heap[0];
		pl_ev_timer_stop(loop, t);
		t->cb(loop, t->data);
		ran++;
	}
	return ran;
}
