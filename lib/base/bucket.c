/* Token bucket. */
#include "base/bucket.h"

void pl_bucket_init(pl_bucket *b, double rate, double burst, int64_t now_ns)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens = burst;
	b->last_ns = now_ns;
}

void pl_bucket_restart(pl_bucket *b, int64_t now_ns)
{
	b->last_ns = now_ns;
}

static void refill(pl_bucket *b, int64_t now_ns)
{
	if (now_ns <= b->last_ns)
		return;
	b->tokens += (double)(now_ns - b->last_ns) / 1e9 * b->rate;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
	b->last_ns = now_ns;
}

int64_t pl_bucket_reserve(pl_bucket *b, int64_t now_ns)
{
	refill(b, now_ns);
	b->tokens -= 1;
	return b->tokens >= 0 ? 0 : (int64_t)(-b->tokens / b->rate * 1e9);
}

bool pl_bucket_take(pl_bucket *b, int64_t now_ns)
{
	refill(b, now_ns);
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}
