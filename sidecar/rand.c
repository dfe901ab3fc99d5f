/* The proxy's random numbers: fault and backend rolls, trace sampling and ids. xorshift64*, seeded
 * once from getrandom(2): spread, not secrecy (nothing here is a key or a token). */
#include <stdint.h>
#include <sys/random.h>

#include "base/duration.h"
#include "l7.h"

uint64_t px_random64(void)
{
	static uint64_t s;

	if (!s) {
		if (getrandom(&s, sizeof(s), 0) != sizeof(s))
			s = (uint64_t)pl_mono_ns();
		s |= 1;
	}
	/* xorshift64*: decisions and trace ids need spread, not secrecy */
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 0x2545F4914F6CDD1DULL;
}

uint32_t px_random(void) { return (uint32_t)(px_random64() >> 32); }
