/* The controller work queue: dedup, one worker per key, backoff, token bucket, delays, shutdown. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctrl/workqueue.h"

static int64_t fake_now;
static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

static pl_wq *fake_queue(double qps, int burst)
{
	pl_wq_options o = {.base_delay_ns = 5000000, .max_delay_ns = 1000000000, .qps = qps, .burst = burst,
			   .now = fake_clock};
	fake_now = 1000000000;
	return pl_wq_new(&o);
}

static void expect_key(pl_wq *q, const char *want)
{
	char *k = pl_wq_get(q, 0);
	if (!want) {
		assert_null(k);
		return;
	}
	assert_non_null(k);
	assert_string_equal(k, want);
	pl_wq_done(q, k);
	free(k);
}

static void test_dedup_and_fifo(void **state)
{
	(void)state;
	pl_wq *q = fake_queue(10, 100);
	pl_wq_add(q, "a");
	pl_wq_add(q, "b");
	pl_wq_add(q, "a");
	assert_int_equal(pl_wq_len(q), 2);
	expect_key(q, "a");
	expect_key(q, "b");
	expect_key(q, NULL);
	pl_wq_free(q);
}

static void test_readded_while_processing_runs_after_done(void **state)
{
	(void)state;
	pl_wq *q = fake_queue(10, 100);
	pl_wq_add(q, "a");
	char *k = pl_wq_get(q, 0);
	assert_string_equal(k, "a");
	pl_wq_add(q, "a");
	pl_wq_add(q, "a");
	/* Not handed out again while a worker holds it. */
	assert_int_equal(pl_wq_len(q), 0);
	assert_null(pl_wq_get(q, 0));
	pl_wq_done(q, k);
	free(k);
	assert_int_equal(pl_wq_len(q), 1);
	expect_key(q, "a");
	expect_key(q, NULL);
	/* A key added while processing and never handed out again is freed with the queue. */
	pl_wq_add(q, "b");
	k = pl_wq_get(q, 0);
	pl_wq_add(q, "b");
	pl_wq_free(q);
	free(k);
}

static void test_add_after(void **state)
{
	(void)state;
	pl_wq *q = fake_queue(10, 100);
	pl_wq_add_after(q, "later", 100000000);
	pl_wq_add_after(q, "sooner", 50000000);
	pl_wq_add_after(q, "later", 500000000); /* the earlier delay stands */
	assert_int_equal(pl_wq_delayed(q), 2);
	expect_key(q, NULL);
	fake_now += 50000000;
	expect_key(q, "sooner");
	expect_key(q, NULL);
	fake_now += 50000000;
	expect_key(q, "later");
	assert_int_equal(pl_wq_delayed(q), 0);
	/* A sooner delay replaces the pending one (whose key copy is freed: ASan's leak check). */
	pl_wq_add_after(q, "k", 900000000);
	pl_wq_add_after(q, "k", 10000000);
	assert_int_equal(pl_wq_delayed(q), 1);
	fake_now += 10000000;
	expect_key(q, "k");
	expect_key(q, NULL);
	pl_wq_free(q);
}

static void test_backoff_doubles_and_forget_resets(void **state)
{
	(void)state;
	pl_wq *q = fake_queue(1000, 1000);
	int64_t want[] = {5000000, 10000000, 20000000, 40000000};
	for (int i = 0; i < 4; i++) {
		pl_wq_add_rate_limited(q, "k");
		assert_int_equal(pl_wq_failures(q, "k"), i + 1);
		fake_now += want[i] - 1;
		expect_key(q, NULL);
		fake_now += 1;
		expect_key(q, "k");
	}
	pl_wq_forget(q, "k");
	assert_int_equal(pl_wq_failures(q, "k"), 0);
	pl_wq_add_rate_limited(q, "k");
	fake_now += 5000000;
	expect_key(q, "k");
	pl_wq_free(q);
}

static void test_backoff_is_capped(void **state)
{
	(void)state;
	pl_wq *q = fake_queue(1000, 1000);
	for (int i = 0; i < 39; i++) {
		pl_wq_add_rate_limited(q, "k");
		fake_now += 2000000000;
		expect_key(q, "k");
	}
	pl_wq_add_rate_limited(q, "k"); /* 5 ms * 2^39 would be years: capped at 1 s */
	fake_now += 1000000000 - 1;
	expect_key(q, NULL);
	fake_now += 1;
	expect_key(q, "k");
	pl_wq_free(q);
}

static void test_token_bucket(void **state)
{
	(void)state;
	/* burst 2, 1 per second: the third distinct key waits about a second, not 5 ms. */
	pl_wq *q = fake_queue(1, 2);
	pl_wq_add_rate_limited(q, "a");
	pl_wq_add_rate_limited(q, "b");
	pl_wq_add_rate_limited(q, "c");
	fake_now += 5000000;
	expect_key(q, "a");
	expect_key(q, "b");
	expect_key(q, NULL);
	fake_now += 995000000;
	expect_key(q, "c");
	pl_wq_free(q);
}

/* Many workers, keys re-added constantly: no key is ever processed by two workers at once. */
typedef struct worker_ctx {
	pl_wq *q;
	int busy[8];
	int violations;
	int processed;
	pthread_mutex_t mu;
} worker_ctx;

static void *worker(void *arg)
{
	worker_ctx *w = arg;
	char *k;

	while ((k = pl_wq_get(w->q, -1))) {
		int i = k[0] - 'a';
		if (__atomic_fetch_add(&w->busy[i], 1, __ATOMIC_SEQ_CST) != 0)
			__atomic_fetch_add(&w->violations, 1, __ATOMIC_SEQ_CST);
		for (volatile int spin = 0; spin < 2000; spin++)
			;
		__atomic_fetch_sub(&w->busy[i], 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&w->processed, 1, __ATOMIC_SEQ_CST);
		pl_wq_done(w->q, k);
		free(k);
	}
	return NULL;
}

static void test_one_worker_per_key(void **state)
{
	(void)state;
	worker_ctx w = {.q = pl_wq_new(NULL)};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, &w);
	char key[2] = "a";
	for (int n = 0; n < 20000; n++) {
		key[0] = (char)('a' + n % 8);
		pl_wq_add(w.q, key);
	}
	/* Let the workers drain (bounded), then stop them. */
	for (int i = 0; i < 2000 && (pl_wq_len(w.q) > 0); i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	pl_wq_shutdown(w.q);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(w.violations, 0);
	assert_true(w.processed > 0);
	pl_wq_free(w.q);
}

static void *blocked_get(void *arg)
{
	return pl_wq_get(arg, -1);
}

static void test_shutdown_wakes_workers(void **state)
{
	(void)state;
	pl_wq *q = pl_wq_new(NULL);
	pthread_t t;
	void *ret = (void *)1;
	pthread_create(&t, NULL, blocked_get, q);
	struct timespec ts = {0, 20000000};
	nanosleep(&ts, NULL);
	pl_wq_shutdown(q);
	pthread_join(t, &ret);
	assert_null(ret);
	pl_wq_add(q, "x"); /* ignored after shutdown */
	assert_int_equal(pl_wq_len(q), 0);
	pl_wq_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedup_and_fifo),
		cmocka_unit_test(test_readded_while_processing_runs_after_done),
		cmocka_unit_test(test_add_after),
		cmocka_unit_test(test_backoff_doubles_and_forget_resets),
		cmocka_unit_test(test_backoff_is_capped),
		cmocka_unit_test(test_token_bucket),
		cmocka_unit_test(test_one_worker_per_key),
		cmocka_unit_test(test_shutdown_wakes_workers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
