/* Unit tests of the proxy's random numbers (sidecar/rand.c): spread evenly enough for weighted
 * backends, fault percentages and trace sampling, and never stuck. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "l7.h"

static void test_spread(void **state)
{
	(void)state;
	enum { N = 200000, B = 16 };
	unsigned hi[B] = {0}, lo[B] = {0};
	for (int i = 0; i < N; i++) {
		uint32_t r = px_random();
		hi[r >> 28]++;
		lo[r & (B - 1)]++;
	}
	/* Each sixteenth within 5% of N/16 (12,500): a weighted pick of 1 in 1000 stays near it. */
	for (int b = 0; b < B; b++) {
		assert_in_range(hi[b], N / B * 95 / 100, N / B * 105 / 100);
		assert_in_range(lo[b], N / B * 95 / 100, N / B * 105 / 100);
	}
}

static void test_never_stuck(void **state)
{
	(void)state;
	uint64_t prev = px_random64(), same = 0;
	for (int i = 0; i < 100000; i++) {
		uint64_t v = px_random64();
		same += v == prev;
		prev = v;
	}
	assert_int_equal(same, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_spread), cmocka_unit_test(test_never_stuck)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
