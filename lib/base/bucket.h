/* A token bucket (rate per second, burst), as client-go's flowcontrol: the one rate limiter the API
 * client, the work queue and the operator's Event budget share. Not locked: the caller's lock guards it. */
#ifndef PILLION_BASE_BUCKET_H
#define PILLION_BASE_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pl_bucket {
	double rate, burst, tokens;
	int64_t last_ns;   /* when tokens were last refilled, on the caller's monotonic clock */
} pl_bucket;

/* Full, as of now_ns. */
void pl_bucket_init(pl_bucket *b, double rate, double burst, int64_t now_ns);
/* Restarts the refill clock (a new clock source) without changing the tokens. */
void pl_bucket_restart(pl_bucket *b, int64_t now_ns);
/* Reserves one token: 0 when one was there, else how long (ns) to wait for it; the debt is kept,
 * so reservations are served in order. */
int64_t pl_bucket_reserve(pl_bucket *b, int64_t now_ns);
/* Takes one token when there is one: true; false leaves the bucket as it was (the caller drops). */
bool pl_bucket_take(pl_bucket *b, int64_t now_ns);

#endif
