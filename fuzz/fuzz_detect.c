/* libFuzzer target: the first bytes of an inbound connection -> px_detect, with its consistency properties. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "proxy.h"

#define REC_MAX (16384 + 5)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t need = 0, pneed = 0;
	enum px_detect d = px_detect(data, size, &need);

	/* MORE names a length beyond what is here and never beyond one record. */
	if (d == PX_DETECT_MORE && (need <= size || need > REC_MAX)) {
		fprintf(stderr, "MORE with need %zu for %zu bytes\n", need, size);
		abort();
	}
	if (d != PX_DETECT_MORE && need != 0) {
		fprintf(stderr, "answer %d with need %zu\n", d, need);
		abort();
	}
	/* A shorter prefix either asks for more or already gives the same answer. */
	for (size_t cut = size / 2; size && cut < size; cut = cut + 1 + (size - cut) / 2) {
		enum px_detect p = px_detect(data, cut, &pneed);
		if (p != PX_DETECT_MORE && p != d) {
			fprintf(stderr, "prefix %zu of %zu: %d, full: %d\n", cut, size, p, d);
			abort();
		}
		if (p == PX_DETECT_MORE && d == PX_DETECT_MORE && pneed > need && need >= 5) {
			fprintf(stderr, "prefix %zu needs %zu, full %zu needs %zu\n", cut, pneed, size, need);
			abort();
		}
	}
	return 0;
}
