/* Unit tests for lib/ev: timer order through the heap (arm, stop, re-arm), io callbacks, batch-safe stopping. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ev/ev.h"

#define MS 1000000LL

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Deterministic pseudo-random numbers (xorshift), so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* ---------- timers ---------- */

typedef struct fired_log {
	pl_ev_loop *loop;
	int order[4096];
	int64_t when[4096];
	int n;
	int count[4096];
} fired_log;

typedef struct tmr {
	pl_ev_timer t;
	int id;
	fired_log *log;
	/* Optional actions run from the callback. */
	pl_ev_timer *stop_other;
	pl_ev_timer *rearm_other;
	int64_t rearm_delay;
	int64_t self_rearm_delay;
	int self_rearms_left;
} tmr;

static void tmr_cb(pl_ev_loop *loop, void *data)
{
	tmr *x = data;
	fired_log *log = x->log;

	/* Disarmed before its callback runs, and never early. */
	assert_false(pl_ev_timer_armed(&x->t));
	assert_true(pl_ev_now(loop) >= x->t.when);
	assert_true(log->n < 4096);
	log->order[log->n] = x->id;
	log->when[log->n] = x->t.when;
	log->n++;
	log->count[x->id]++;
	if (x->stop_other)
		pl_ev_timer_stop(loop, x->stop_other);
	if (x->rearm_other)
		pl_ev_timer_start(loop, x->rearm_other, x->rearm_delay);
	if (x->self_rearms_left > 0) {
		x->self_rearms_left--;
		pl_ev_timer_start(loop, &x->t, x->self_rearm_delay);
	}
}

static void tmr_init(tmr *x, int id, fired_log *log)
{
	memset(x, 0, sizeof(*x));
	x->id = id;
	x->log = log;
	pl_ev_timer_init(&x->t, tmr_cb, x);
}

/* Runs the loop until n callbacks have been logged (bounded). */
static void run_until(pl_ev_loop *loop, fired_log *log, int n, int64_t limit_ns)
{
	int64_t end = pl_ev_now_update(loop) + limit_ns;

	while (log->n < n) {
		assert_true(pl_ev_now_update(loop) < end);
		assert_true(pl_ev_run_once(loop, 50 * MS) >= 0);
	}
}

static void assert_log_sorted(const fired_log *log)
{
	for (int i = 1; i < log->n; i++) {
		if (log->when[i - 1] > log->when[i])
			fail_msg("timer %d (when %lld) fired after timer %d (when %lld)", log->order[i - 1],
				 (long long)log->when[i - 1], log->order[i], (long long)log->when[i]);
	}
}

/* Many random deadlines, with real waiting: each fires once, never early, in deadline order. */
static void test_timers_fire_in_deadline_order(void **state)
{
	(void)state;
	enum { N = 600 };
	static fired_log log;
	static tmr t[N];
	pl_ev_loop *loop = pl_ev_loop_new();

	assert_non_null(loop);
	memset(&log, 0, sizeof(log));
	for (int i = 0; i < N; i++) {
		tmr_init(&t[i], i, &log);
		/* 0..30 ms with many ties (coarse steps) and some exact zeros. */
		int64_t d = (int64_t)(rng() % 61) * MS / 2;
		if (i % 50 == 0)
			d = 0;
		pl_ev_timer_start(loop, &t[i].t, d);
		assert_true(pl_ev_timer_armed(&t[i].t));
	}
	run_until(loop, &log, N, 30000 * MS);
	assert_int_equal(log.n, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(log.count[i], 1);
	assert_log_sorted(&log);
	/* Nothing left: a bounded wait returns no callbacks. */
	assert_int_equal(pl_ev_run_once(loop, 1 * MS), 0);
	pl_ev_loop_free(loop);
}

/* A timer is not fired before its deadline: the wait is rounded up, not down. */
static void test_timer_waits_for_its_deadline(void **state)
{
	(void)state;
	static fired_log log;
	tmr a;
	pl_ev_loop *loop = pl_ev_loop_new();

	memset(&log, 0, sizeof(log));
	tmr_init(&a, 0, &log);
	int64_t start = pl_ev_now_update(loop);
	pl_ev_timer_start(loop, &a.t, 20 * MS + 300000);
	assert_int_equal(a.t.when, start + 20 * MS + 300000);
	/* Rounding the wait down would return early and then spin with 0 ms timeouts. */
	int calls = 0;
	while (log.n == 0 && calls < 1000) {
		assert_true(pl_ev_run_once(loop, -1) >= 0);
		calls++;
	}
	assert_true(calls <= 3);
	assert_true(pl_ev_now(loop) >= start + 20 * MS + 300000);
	assert_true(pl_ev_now(loop) < start + 30000 * MS);
	pl_ev_loop_free(loop);
}

/*
 * Arms every timer of t with a random deadline within 2 ms, then applies random stops and
 * re-arms (arbitrary heap positions), then lets all of them come due and runs one batch:
 * the heap alone decides the order, which must be by deadline, and stopped timers stay silent.
 */
static void test_stop_and_rearm_keep_heap_ordered(void **state)
{
	(void)state;
	enum { N = 300, ROUNDS = 40 };
	static fired_log log;
	static tmr t[N];
	bool armed[N];

	for (int round = 0; round < ROUNDS; round++) {
		pl_ev_loop *loop = pl_ev_loop_new();
		memset(&log, 0, sizeof(log));
		for (int i = 0; i < N; i++) {
			tmr_init(&t[i], i, &log);
			pl_ev_timer_start(loop, &t[i].t, (int64_t)(rng() % (2 * MS)));
			armed[i] = true;
		}
		for (int k = 0; k < N; k++) {
			int i = (int)(rng() % N);
			switch (rng() % 3) {
			case 0:
				pl_ev_timer_stop(loop, &t[i].t);
				assert_false(pl_ev_timer_armed(&t[i].t));
				armed[i] = false;
				break;
			case 1:
				pl_ev_timer_start(loop, &t[i].t, (int64_t)(rng() % (2 * MS)));
				armed[i] = true;
				break;
			default:
				/* Stopping a stopped timer is harmless. */
				pl_ev_timer_stop(loop, &t[i].t);
				pl_ev_timer_stop(loop, &t[i].t);
				armed[i] = false;
				break;
			}
		}
		int want = 0;
		for (int i = 0; i < N; i++)
			want += armed[i];
		sleep_ns(3 * MS);
		int ran = pl_ev_run_once(loop, 0);
		assert_int_equal(ran, want);
		assert_int_equal(log.n, want);
		assert_log_sorted(&log);
		for (int i = 0; i < N; i++) {
			assert_int_equal(log.count[i], armed[i] ? 1 : 0);
			assert_false(pl_ev_timer_armed(&t[i].t));
		}
		pl_ev_loop_free(loop);
	}
}

/*
 * A fixed heap where stopping slot 9 moves the last timer (deadline 8) there, below parents
 * with deadlines 52 and 50: it must sift up two levels. Then the root and the last are stopped.
 */
static void test_stop_middle_element_sifts_up(void **state)
{
	(void)state;
	enum { N = 15 };
	static fired_log log;
	tmr t[N];
	/* Armed in this order, each is >= its parent, so the heap array is exactly this list. */
	static const int64_t d[N] = {1, 50, 2, 51, 52, 3, 4, 53, 54, 55, 56, 5, 6, 7, 8};
	pl_ev_loop *loop = pl_ev_loop_new();

	memset(&log, 0, sizeof(log));
	for (int i = 0; i < N; i++) {
		tmr_init(&t[i], i, &log);
		pl_ev_timer_start(loop, &t[i].t, d[i] * 10000);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(t[i].t._slot, (size_t)i + 1);
	pl_ev_timer_stop(loop, &t[9].t);
	/* The moved timer went up to slot 1; its old parents went down. */
	assert_int_equal(t[14].t._slot, 2);
	assert_int_equal(t[4].t._slot, 10);
	assert_int_equal(t[1].t._slot, 5);
	pl_ev_timer_stop(loop, &t[0].t);
	pl_ev_timer_stop(loop, &t[10].t);
	sleep_ns(2 * MS);
	assert_int_equal(pl_ev_run_once(loop, 0), N - 3);
	static const int want[N - 3] = {2, 5, 6, 11, 12, 13, 14, 1, 3, 4, 7, 8};
	for (int i = 0; i < N - 3; i++)
		assert_int_equal(log.order[i], want[i]);
	pl_ev_loop_free(loop);
}

/* A callback stops a timer that is also due in the same batch, and re-arms another for later. */
static void test_stop_from_another_timers_callback(void **state)
{
	(void)state;
	static fired_log log;
	tmr a, b, c, d;
	pl_ev_loop *loop = pl_ev_loop_new();

	memset(&log, 0, sizeof(log));
	tmr_init(&a, 0, &log);
	tmr_init(&b, 1, &log);
	tmr_init(&c, 2, &log);
	tmr_init(&d, 3, &log);
	a.stop_other = &b.t;       /* b is due too, but must not fire */
	a.rearm_other = &c.t;      /* c was due; now it is 40 ms away */
	a.rearm_delay = 40 * MS;
	pl_ev_timer_start(loop, &a.t, 100000);
	pl_ev_timer_start(loop, &b.t, 200000);
	pl_ev_timer_start(loop, &c.t, 300000);
	pl_ev_timer_start(loop, &d.t, 400000);
	sleep_ns(2 * MS);
	assert_int_equal(pl_ev_run_once(loop, 0), 2);
	assert_int_equal(log.n, 2);
	assert_int_equal(log.order[0], 0);
	assert_int_equal(log.order[1], 3);
	assert_false(pl_ev_timer_armed(&b.t));
	assert_true(pl_ev_timer_armed(&c.t));
	assert_int_equal(log.count[1], 0);
	assert_int_equal(log.count[2], 0);
	run_until(loop, &log, 3, 30000 * MS);
	assert_int_equal(log.order[2], 2);
	assert_int_equal(log.count[1], 0);
	/* Nothing else is armed. */
	assert_int_equal(pl_ev_run_once(loop, 60 * MS), 0);
	assert_int_equal(log.n, 3);
	pl_ev_loop_free(loop);
}

/* A timer re-arming itself from its callback fires again later, once per arming. */
static void test_timer_rearms_itself(void **state)
{
	(void)state;
	static fired_log log;
	tmr a;
	pl_ev_loop *loop = pl_ev_loop_new();

	memset(&log, 0, sizeof(log));
	tmr_init(&a, 0, &log);
	a.self_rearm_delay = 2 * MS;
	a.self_rearms_left = 3;
	pl_ev_timer_start(loop, &a.t, 1 * MS);
	run_until(loop, &log, 4, 30000 * MS);
	assert_int_equal(log.count[0], 4);
	assert_log_sorted(&log);
	for (int i = 1; i < 4; i++)
		assert_true(log.when[i] - log.when[i - 1] >= 2 * MS);
	assert_false(pl_ev_timer_armed(&a.t));
	/* Re-arming an armed timer moves it, it does not add a second entry. */
	pl_ev_timer_start(loop, &a.t, 1 * MS);
	pl_ev_timer_start(loop, &a.t, 3 * MS);
	run_until(loop, &log, 5, 30000 * MS);
	assert_int_equal(pl_ev_run_once(loop, 10 * MS), 0);
	assert_int_equal(log.count[0], 5);
	pl_ev_loop_free(loop);
}

/* ---------- io ---------- */

typedef struct iorec {
	pl_ev_io io;
	int calls;
	uint32_t events;
	/* Batch-safety: the other watcher to stop and free, shared between the two. */
	struct iorec **other;
	int *total;
} iorec;

static void io_record_cb(pl_ev_loop *loop, void *data, uint32_t events)
{
	iorec *r = data;

	(void)loop;
	r->calls++;
	r->events = events;
}

static void nonblock(int fd)
{
	assert_true(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

static void test_io_socketpair(void **state)
{
	(void)state;
	int sv[2];
	char buf[16];
	iorec r = {0};
	pl_ev_loop *loop = pl_ev_loop_new();

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	pl_ev_io_init(&r.io, io_record_cb, &r);
	assert_int_equal(r.io.fd, -1);
	assert_int_equal(pl_ev_io_start(loop, &r.io, sv[1], EPOLLIN), 0);
	assert_int_equal(r.io.fd, sv[1]);
	assert_int_equal(r.io.mask, EPOLLIN);
	/* Nothing to read: a bounded wait runs nothing. */
	assert_int_equal(pl_ev_run_once(loop, 5 * MS), 0);
	assert_int_equal(r.calls, 0);
	assert_int_equal(write(sv[0], "ping", 4), 4);
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
	assert_int_equal(r.calls, 1);
	assert_true(r.events & EPOLLIN);
	/* Level-triggered: unread data reports again. */
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
	assert_int_equal(r.calls, 2);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 4);
	assert_int_equal(pl_ev_run_once(loop, 5 * MS), 0);
	/* Write interest: a socket with room is writable at once. */
	assert_int_equal(pl_ev_io_set(loop, &r.io, EPOLLOUT), 0);
	assert_int_equal(r.io.mask, EPOLLOUT);
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
	assert_true(r.events & EPOLLOUT);
	assert_false(r.events & EPOLLIN);
	/* Peer closes: read interest sees the end of stream. */
	assert_int_equal(pl_ev_io_set(loop, &r.io, EPOLLIN | EPOLLRDHUP), 0);
	close(sv[0]);
	r.calls = 0;
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
	assert_true(r.events & (EPOLLRDHUP | EPOLLHUP));
	/* Stopped: no more callbacks, and the fd is left open for the owner. */
	pl_ev_io_stop(loop, &r.io);
	assert_int_equal(r.io.fd, -1);
	assert_int_equal(pl_ev_run_once(loop, 5 * MS), 0);
	assert_int_equal(r.calls, 1);
	assert_true(fcntl(sv[1], F_GETFD) >= 0);
	/* Stopping twice is harmless; the fd can be registered again. */
	pl_ev_io_stop(loop, &r.io);
	assert_int_equal(pl_ev_io_start(loop, &r.io, sv[1], EPOLLIN), 0);
	assert_int_equal(pl_ev_io_start(loop, &r.io, sv[1], EPOLLIN), -EEXIST);
	pl_ev_io_stop(loop, &r.io);
	close(sv[1]);
	pl_ev_loop_free(loop);
}

static void test_io_pipe(void **state)
{
	(void)state;
	int p[2];
	iorec r = {0}, w = {0};
	pl_ev_loop *loop = pl_ev_loop_new();

	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	nonblock(p[1]);
	pl_ev_io_init(&r.io, io_record_cb, &r);
	pl_ev_io_init(&w.io, io_record_cb, &w);
	assert_int_equal(pl_ev_io_start(loop, &r.io, p[0], EPOLLIN), 0);
	assert_int_equal(pl_ev_io_start(loop, &w.io, p[1], EPOLLOUT), 0);
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
	assert_int_equal(w.calls, 1);
	assert_int_equal(r.calls, 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 2);
	assert_int_equal(r.calls, 1);
	assert_int_equal(w.calls, 2);
	/* Interest 0 keeps the registration but silences it. */
	assert_int_equal(pl_ev_io_set(loop, &w.io, 0), 0);
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
	assert_int_equal(w.calls, 2);
	pl_ev_io_stop(loop, &r.io);
	pl_ev_io_stop(loop, &w.io);
	close(p[0]);
	close(p[1]);
	pl_ev_loop_free(loop);
}

/*
 * pl_ev_io_set with the registered mask makes no syscall: once the fd is closed behind the
 * loop's back, an unchanged mask still succeeds while a changed one reaches epoll_ctl (EBADF).
 */
static void test_io_set_unchanged_is_a_noop(void **state)
{
	(void)state;
	int p[2];
	iorec r = {0};
	pl_ev_loop *loop = pl_ev_loop_new();

	assert_int_equal(pipe(p), 0);
	pl_ev_io_init(&r.io, io_record_cb, &r);
	/* Not registered: nothing to change. */
	assert_int_equal(pl_ev_io_set(loop, &r.io, EPOLLIN), 0);
	assert_int_equal(r.io.mask, 0);
	assert_int_equal(pl_ev_io_start(loop, &r.io, p[0], EPOLLIN), 0);
	close(p[0]);
	assert_int_equal(pl_ev_io_set(loop, &r.io, EPOLLIN), 0);
	assert_int_equal(r.io.mask, EPOLLIN);
	assert_int_equal(pl_ev_io_set(loop, &r.io, EPOLLIN | EPOLLOUT), -EBADF);
	/* A failed change leaves the recorded interest as it was. */
	assert_int_equal(r.io.mask, EPOLLIN);
	r.io.fd = -1;
	close(p[1]);
	pl_ev_loop_free(loop);
}

/* Whichever of the two runs first stops and frees the other; the other must not run. */
static void io_kill_other_cb(pl_ev_loop *loop, void *data, uint32_t events)
{
	iorec *r = data;

	(void)events;
	r->calls++;
	(*r->total)++;
	if (*r->other) {
		iorec *o = *r->other;
		pl_ev_io_stop(loop, &o->io);
		*r->other = NULL;
		/* Poison first so a stale callback without ASan still shows. */
		memset(o, 0xa5, sizeof(*o));
		free(o);
	}
}

static void test_io_stop_in_batch_drops_pending_event(void **state)
{
	(void)state;
	for (int round = 0; round < 20; round++) {
		int a[2], b[2], total = 0;
		iorec *ra = calloc(1, sizeof(*ra)), *rb = calloc(1, sizeof(*rb));
		iorec *pa = ra, *pb = rb;
		pl_ev_loop *loop = pl_ev_loop_new();

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
		ra->other = &pb;
		ra->total = &total;
		rb->other = &pa;
		rb->total = &total;
		pl_ev_io_init(&ra->io, io_kill_other_cb, ra);
		pl_ev_io_init(&rb->io, io_kill_other_cb, rb);
		/* Registration order alternates so either watcher may come first in the batch. */
		if (round & 1) {
			assert_int_equal(pl_ev_io_start(loop, &rb->io, b[1], EPOLLIN), 0);
			assert_int_equal(pl_ev_io_start(loop, &ra->io, a[1], EPOLLIN), 0);
		} else {
			assert_int_equal(pl_ev_io_start(loop, &ra->io, a[1], EPOLLIN), 0);
			assert_int_equal(pl_ev_io_start(loop, &rb->io, b[1], EPOLLIN), 0);
		}
		/* Both ready before the wait: one batch holds both events. */
		assert_int_equal(write(a[0], "a", 1), 1);
		assert_int_equal(write(b[0], "b", 1), 1);
		assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
		assert_int_equal(total, 1);
		/* Exactly one survivor, and it keeps working. */
		assert_true((pa == NULL) != (pb == NULL));
		iorec *alive = pa ? pa : pb;
		assert_int_equal(alive->calls, 1);
		assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
		assert_int_equal(total, 2);
		assert_int_equal(alive->calls, 2);
		pl_ev_io_stop(loop, &alive->io);
		free(alive);
		close(a[0]);
		close(a[1]);
		close(b[0]);
		close(b[1]);
		pl_ev_loop_free(loop);
	}
}

/* Whichever of two ready watchers runs first moves the other to a quiet fd; the other's stale event is dropped. */
typedef struct mover {
	pl_ev_io io;
	int calls;
	struct mover *other;
	int quiet_fd;
	bool *moved;
} mover;

static void io_move_other_cb(pl_ev_loop *loop, void *data, uint32_t events)
{
	mover *m = data;

	(void)events;
	m->calls++;
	if (!*m->moved) {
		*m->moved = true;
		pl_ev_io_stop(loop, &m->other->io);
		assert_int_equal(pl_ev_io_start(loop, &m->other->io, m->quiet_fd, EPOLLIN), 0);
	}
}

static void test_io_restart_in_batch(void **state)
{
	(void)state;
	int a[2], b[2], c[2];
	bool moved = false;
	mover m1 = {0}, m2 = {0};
	pl_ev_loop *loop = pl_ev_loop_new();

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, c), 0);
	m1.other = &m2;
	m2.other = &m1;
	m1.quiet_fd = m2.quiet_fd = c[1];
	m1.moved = m2.moved = &moved;
	pl_ev_io_init(&m1.io, io_move_other_cb, &m1);
	pl_ev_io_init(&m2.io, io_move_other_cb, &m2);
	assert_int_equal(pl_ev_io_start(loop, &m1.io, a[1], EPOLLIN), 0);
	assert_int_equal(pl_ev_io_start(loop, &m2.io, b[1], EPOLLIN), 0);
	assert_int_equal(write(a[0], "a", 1), 1);
	assert_int_equal(write(b[0], "b", 1), 1);
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
	assert_int_equal(m1.calls + m2.calls, 1);
	mover *first = m1.calls ? &m1 : &m2, *second = first->other;
	assert_int_equal(second->io.fd, c[1]);
	/* Next batch: the first is still readable, the moved one is quiet on c[1]. */
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 1);
	assert_int_equal(first->calls, 2);
	assert_int_equal(second->calls, 0);
	/* And the moved one hears its new fd. */
	assert_int_equal(write(c[0], "c", 1), 1);
	assert_int_equal(pl_ev_run_once(loop, 1000 * MS), 2);
	assert_int_equal(second->calls, 1);
	pl_ev_io_stop(loop, &m1.io);
	pl_ev_io_stop(loop, &m2.io);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
		close(c[i]);
	}
	pl_ev_loop_free(loop);
}


/* A timer re-armed with delay 0 from its own callback waits for the next iteration (it used to spin forever). */
static int zero_fired;
static void zero_rearm_cb(pl_ev_loop *loop, void *data)
{
	zero_fired++;
	pl_ev_timer_start(loop, data, 0);
}

static void test_zero_delay_rearm_does_not_spin(void **state)
{
	(void)state;
	pl_ev_loop *loop = pl_ev_loop_new();
	pl_ev_timer t;
	pl_ev_timer_init(&t, zero_rearm_cb, &t);
	t.data = &t;
	pl_ev_timer_start(loop, &t, 0);
	zero_fired = 0;
	assert_int_equal(pl_ev_run_once(loop, 0), 1);
	assert_int_equal(zero_fired, 1);
	assert_int_equal(pl_ev_run_once(loop, 0), 1);
	assert_int_equal(zero_fired, 2);
	pl_ev_timer_stop(loop, &t);
	pl_ev_loop_free(loop);
}

static void noop_cb(pl_ev_loop *loop, void *data)
{
	(void)loop;
	(void)data;
}

/* Deadlines far away stay ordered: now + INT64_MAX used to wrap to a deadline in the past. */
static void test_far_timer_does_not_block_forever(void **state)
{
	(void)state;
	pl_ev_loop *loop = pl_ev_loop_new();
	pl_ev_timer far, farthest;
	pl_ev_timer_init(&far, noop_cb, NULL);
	pl_ev_timer_init(&farthest, noop_cb, NULL);
	pl_ev_timer_start(loop, &far, INT64_C(30) * 24 * 3600 * 1000000000);
	pl_ev_timer_start(loop, &farthest, INT64_MAX);
	assert_true(far.when > pl_ev_now(loop));
	assert_true(farthest.when > far.when);
	assert_int_equal(pl_ev_run_once(loop, 10 * 1000000), 0);
	pl_ev_timer_stop(loop, &far);
	pl_ev_timer_stop(loop, &farthest);
	pl_ev_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers_fire_in_deadline_order),
		cmocka_unit_test(test_zero_delay_rearm_does_not_spin),
		cmocka_unit_test(test_far_timer_does_not_block_forever),
		cmocka_unit_test(test_timer_waits_for_its_deadline),
		cmocka_unit_test(test_stop_and_rearm_keep_heap_ordered),
		cmocka_unit_test(test_stop_middle_element_sifts_up),
		cmocka_unit_test(test_stop_from_another_timers_callback),
		cmocka_unit_test(test_timer_rearms_itself),
		cmocka_unit_test(test_io_socketpair),
		cmocka_unit_test(test_io_pipe),
		cmocka_unit_test(test_io_set_unchanged_is_a_noop),
		cmocka_unit_test(test_io_stop_in_batch_drops_pending_event),
		cmocka_unit_test(test_io_restart_in_batch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
