/* The controller work queue: a FIFO of unique keys, a processing set, per-key backoff, a token bucket and delayed adds. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/duration.h"
#include "base/bucket.h"
#include "base/hmap.h"
#include "ctrl/workqueue.h"

typedef struct delayed {
	int64_t when;
	char *key;
} delayed;

struct pl_wq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pl_wq_options o;
	bool down;
	/* FIFO of queued keys (owned strings); "dirty" holds the same keys for dedup. */
	char **fifo;
	size_t head, len, cap;
	pl_hmap dirty;       /* key -> (void *)1, keys borrowed from fifo or processing */
	pl_hmap processing;  /* key -> owned copy */
	pl_hmap failures;    /* key -> (intptr_t) count, owned key */
	delayed *heap;       /* min-heap by when */
	size_t nheap, capheap;
	pl_bucket bucket;    /* the overall rate of rate-limited adds */
};

static int64_t mono_ns(void *ctx)
{
	(void)ctx;
	return pl_mono_ns();
}

static int64_t now(pl_wq *q) { return q->o.now(q->o.now_ctx); }

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		abort();
	return d;
}

pl_wq *pl_wq_new(const pl_wq_options *opts)
{
	pl_wq *q = calloc(1, sizeof(*q));

	if (!q)
		abort();
	q->o.base_delay_ns = 5 * 1000000LL;
	q->o.max_delay_ns = 1000 * 1000000000LL;
	q->o.qps = 10;
	q->o.burst = 100;
	q->o.now = mono_ns;
	if (opts) {
		if (opts->base_delay_ns > 0)
			q->o.base_delay_ns = opts->base_delay_ns;
		if (opts->max_delay_ns > 0)
			q->o.max_delay_ns = opts->max_delay_ns;
		if (opts->qps > 0)
			q->o.qps = opts->qps;
		if (opts->burst > 0)
			q->o.burst = opts->burst;
		if (opts->now) {
			q->o.now = opts->now;
			q->o.now_ctx = opts->now_ctx;
		}
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	pl_bucket_init(&q->bucket, q->o.qps, q->o.burst, now(q));
	return q;
}

void pl_wq_shutdown(pl_wq *q)
{
	pthread_mutex_lock(&q->mu);
	q->down = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static void free_keys(pl_hmap *m)
{
	size_t it = 0;
	pl_hmap_slot *s;

	while ((s = pl_hmap_next(m, &it)))
		free((char *)s->key);
	pl_hmap_free(m);
}

void pl_wq_free(pl_wq *q)
{
	if (!q)
		return;
	/* dirty borrows the FIFO's keys, except keys re-added while processing: those it owns. */
	size_t it = 0;
	pl_hmap_slot *sl;
	while ((sl = pl_hmap_next(&q->dirty, &it))) {
		bool in_fifo = false;
		for (size_t i = 0; i < q->len && !in_fifo; i++)
			in_fifo = q->fifo[(q->head + i) % q->cap] == sl->key;
		if (!in_fifo)
			free((char *)sl->key);
	}
	for (size_t i = 0; i < q->len; i++)
		free(q->fifo[(q->head + i) % q->cap]);
	free(q->fifo);
	pl_hmap_free(&q->dirty);
	free_keys(&q->processing);
	free_keys(&q->failures);
	for (size_t i = 0; i < q->nheap; i++)
		free(q->heap[i].key);
	free(q->heap);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

static void fifo_push(pl_wq *q, char *key)
{
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		char **v = malloc(cap * sizeof(*v));
		if (!v)
			abort();
		for (size_t i = 0; i < q->len; i++)
			v[i] = q->fifo[(q->head + i) % q->cap];
		free(q->fifo);
		q->fifo = v;
		q->cap = cap;
		q->head = 0;
	}
	q->fifo[(q->head + q->len) % q->cap] = key;
	q->len++;
}

/* With q->mu held. */
static void add_locked(pl_wq *q, const char *key)
{
	if (q->down || pl_hmap_get(&q->dirty, key))
		return;
	char *own = xstrdup(key);
	pl_hmap_put(&q->dirty, own, (void *)1);
	/* Being processed: it goes back in the FIFO when pl_wq_done says so. */
	if (pl_hmap_get(&q->processing, key))
		return;
	fifo_push(q, own);
	pthread_cond_signal(&q->cv);
}

void pl_wq_add(pl_wq *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	add_locked(q, key);
	pthread_mutex_unlock(&q->mu);
}

static void heap_push(pl_wq *q, int64_t when, const char *key)
{
	/* One pending delay per key is enough: keep the earliest. */
	for (size_t i = 0; i < q->nheap; i++)
		if (strcmp(q->heap[i].key, key) == 0) {
			if (q->heap[i].when <= when)
				return;
			free(q->heap[i].key);
			q->heap[i] = q->heap[--q->nheap];
			break;
		}
	if (q->nheap == q->capheap) {
		q->capheap = q->capheap ? q->capheap * 2 : 32;
		q->heap = realloc(q->heap, q->capheap * sizeof(*q->heap));
		if (!q->heap)
			abort();
	}
	q->heap[q->nheap++] = (delayed){when, xstrdup(key)};
	/* The caller restores the order with heapify (a replaced entry may sit anywhere). */
}

static void heapify(pl_wq *q)
{
	/* After an append or an arbitrary removal: restore the heap property from scratch. */
	for (size_t k = q->nheap / 2 + 1; k-- > 0;) {
		size_t i = k;
		for (;;) {
			size_t c = 2 * i + 1;
			if (c >= q->nheap)
				break;
			if (c + 1 < q->nheap && q->heap[c + 1].when < q->heap[c].when)
				c++;
			if (q->heap[i].when <= q->heap[c].when)
				break;
			delayed t = q->heap[i];
			q->heap[i] = q->heap[c];
			q->heap[c] = t;
			i = c;
		}
	}
}

void pl_wq_add_after(pl_wq *q, const char *key, int64_t delay_ns)
{
	pthread_mutex_lock(&q->mu);
	if (delay_ns <= 0) {
		add_locked(q, key);
	} else if (!q->down) {
		heap_push(q, now(q) + delay_ns, key);
		heapify(q);
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
}

void pl_wq_add_rate_limited(pl_wq *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	intptr_t n = (intptr_t)pl_hmap_get(&q->failures, key);
	if (n == 0)
		pl_hmap_put(&q->failures, xstrdup(key), (void *)1);
	else
		pl_hmap_put(&q->failures, key, (void *)(n + 1)); /* the key pointer stays the owned one */
	int64_t d = q->o.base_delay_ns;
	for (intptr_t i = 0; i < n && d < q->o.max_delay_ns; i++)
		d *= 2;
	if (d > q->o.max_delay_ns)
		d = q->o.max_delay_ns;
	int64_t b = pl_bucket_reserve(&q->bucket, now(q)); /* client-go's BucketRateLimiter */
	if (b > d)
		d = b;
	pthread_mutex_unlock(&q->mu);
	pl_wq_add_after(q, key, d);
}

void pl_wq_forget(pl_wq *q, const char *key)
{
	const char *stored;

	pthread_mutex_lock(&q->mu);
	if (pl_hmap_get(&q->failures, key)) {
		pl_hmap_del(&q->failures, key, &stored);
		free((char *)stored);
	}
	pthread_mutex_unlock(&q->mu);
}

int pl_wq_failures(pl_wq *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	int n = (int)(intptr_t)pl_hmap_get(&q->failures, key);
	pthread_mutex_unlock(&q->mu);
	return n;
}

/* Moves due delayed keys into the FIFO; returns ns until the next one (-1: none). With q->mu held. */
static int64_t promote_due(pl_wq *q)
{
	int64_t t = now(q);

	while (q->nheap && q->heap[0].when <= t) {
		char *key = q->heap[0].key;
		q->heap[0] = q->heap[--q->nheap];
		heapify(q);
		add_locked(q, key);
		free(key);
	}
	return q->nheap ? q->heap[0].when - t : -1;
}

char *pl_wq_get(pl_wq *q, int64_t timeout_ns)
{
	int64_t deadline = timeout_ns >= 0 ? now(q) + timeout_ns : -1;
	char *key = NULL;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		int64_t next = promote_due(q);
		if (q->down)
			break;
		if (q->len) {
			key = q->fifo[q->head];
			q->head = (q->head + 1) % q->cap;
			q->len--;
			const char *stored;
			pl_hmap_del(&q->dirty, key, &stored);
			pl_hmap_put(&q->processing, key, key);
			key = xstrdup(key);
			break;
		}
		int64_t t = now(q);
		if (deadline >= 0 && t >= deadline)
			break;
		int64_t wait = next;
		if (deadline >= 0 && (wait < 0 || deadline - t < wait))
			wait = deadline - t;
		if (wait < 0) {
			pthread_cond_wait(&q->cv, &q->mu);
		} else {
			/* Real time for the wait even with a test clock: bounded slices. */
			if (q->o.now != mono_ns && wait > 1000000)
				wait = 1000000;
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t abs = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + wait;
			ts.tv_sec = abs / 1000000000;
			ts.tv_nsec = abs % 1000000000;
			pthread_cond_timedwait(&q->cv, &q->mu, &ts);
		}
	}
	pthread_mutex_unlock(&q->mu);
	return key;
}

void pl_wq_done(pl_wq *q, const char *key)
{
	const char *stored = NULL;

	pthread_mutex_lock(&q->mu);
	pl_hmap_del(&q->processing, key, &stored);
	/* Added again while it was processed: now it may run again. */
	const char *dirty_key = NULL;
	if (stored && pl_hmap_get(&q->dirty, key)) {
		pl_hmap_del(&q->dirty, key, &dirty_key);
		/* dirty_key is the owned copy made by add_locked; queue it. */
		pl_hmap_put(&q->dirty, dirty_key, (void *)1);
		fifo_push(q, (char *)dirty_key);
		pthread_cond_signal(&q->cv);
	}
	free((char *)stored);
	pthread_mutex_unlock(&q->mu);
}

size_t pl_wq_len(pl_wq *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

size_t pl_wq_delayed(pl_wq *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->nheap;
	pthread_mutex_unlock(&q->mu);
	return n;
}
