/* Unit tests of the buffer pools (sidecar/bufpool.c): reuse, the bound, and nothing leaked (ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bufpool.h"

static void test_reuse_and_bound(void **state)
{
	(void)state;
	px_bufpool p = {0};
	char *b[5];

	for (int i = 0; i < 5; i++) {
		b[i] = px_bufpool_get(&p, 4096);
		memset(b[i], i, 4096); /* the whole size is usable */
	}
	assert_int_equal(p.n, 0);
	char *orig[5];
	memcpy(orig, b, sizeof(orig));
	for (int i = 0; i < 5; i++) {
		px_bufpool_put(&p, &b[i], 3);
		assert_null(b[i]);
	}
	/* Three kept, two freed (ASan reports them if not). */
	assert_int_equal(p.n, 3);
	char *again = px_bufpool_get(&p, 4096);
	assert_int_equal(p.n, 2);
	assert_ptr_equal(again, orig[2]); /* the last one kept comes out first */
	px_bufpool_put(&p, &again, 3);
	/* NULL is ignored. */
	char *none = NULL;
	px_bufpool_put(&p, &none, 3);
	assert_int_equal(p.n, 3);
	/* The buffers kept are the first three given back. */
	char *x = px_bufpool_get(&p, 4096), *y = px_bufpool_get(&p, 4096), *z = px_bufpool_get(&p, 4096);
	assert_ptr_equal(x, orig[2]);
	assert_ptr_equal(y, orig[1]);
	assert_ptr_equal(z, orig[0]);
	px_bufpool_put(&p, &x, 3);
	px_bufpool_put(&p, &y, 3);
	px_bufpool_put(&p, &z, 3);
	px_bufpool_free(&p);
	assert_int_equal(p.n, 0);
	assert_null(p.v);
	/* A freed pool is empty and usable again. */
	char *c = px_bufpool_get(&p, 16);
	px_bufpool_put(&p, &c, 1);
	px_bufpool_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reuse_and_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
