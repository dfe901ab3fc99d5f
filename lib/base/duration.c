/* Go duration strings, parsed exactly as the CRD pattern allows. */
#include "base/duration.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t unit_ns(const char **p)
{
	const char *s = *p;

	if (strncmp(s, "ns", 2) == 0) { *p += 2; return 1; }
	if (strncmp(s, "us", 2) == 0) { *p += 2; return 1000; }
	if (strncmp(s, "\xc2\xb5s", 3) == 0) { *p += 3; return 1000; }
	if (strncmp(s, "ms", 2) == 0) { *p += 2; return PL_NS_PER_MS; }
	if (*s == 's') { *p += 1; return PL_NS_PER_S; }
	if (*s == 'm') { *p += 1; return PL_NS_PER_M; }
	if (*s == 'h') { *p += 1; return PL_NS_PER_H; }
	return 0;
}

int pl_duration_parse(const char *s, int64_t *out_ns)
{
	const char *p = s;
	int64_t total = 0;
	bool overflow = false;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		/* Integer part, kept exact; fractional digits scaled by the unit afterwards. */
		uint64_t whole = 0;
		bool big = false;
		const char *start = p;
		while (*p >= '0' && *p <= '9') {
			if (whole > (UINT64_MAX - 9) / 10)
				big = true;
			else
				whole = whole * 10 + (uint64_t)(*p - '0');
			p++;
		}
		if (p == start)
			return -EINVAL;
		const char *frac = NULL;
		size_t nfrac = 0;
		if (*p == '.') {
			p++;
			frac = p;
			while (*p >= '0' && *p <= '9')
				p++;
			nfrac = (size_t)(p - frac);
			if (nfrac == 0)
				return -EINVAL;
		}
		int64_t unit = unit_ns(&p);
		if (unit == 0)
			return -EINVAL;
		if (big || whole > (uint64_t)INT64_MAX / (uint64_t)unit) {
			overflow = true;
			continue;
		}
		int64_t term = (int64_t)whole * unit;
		/* Fraction: digits beyond the unit's nanosecond resolution are dropped, as Go does. */
		int64_t scale = unit, fracpart = 0;
		for (size_t i = 0; i < nfrac && scale > 1; i++) {
			scale /= 10;
			fracpart += (int64_t)(frac[i] - '0') * scale;
		}
		if (fracpart > INT64_MAX - term) {
			overflow = true;
			continue;
		}
		term += fracpart;
		if (term > INT64_MAX - total)
			overflow = true;
		else
			total += term;
	}
	if (overflow)
		return -ERANGE;
	*out_ns = total;
	return 0;
}

void pl_duration_format(int64_t ns, char *out, size_t size)
{
	static const struct { int64_t ns; const char *unit; } units[] = {
		{PL_NS_PER_H, "h"}, {PL_NS_PER_M, "m"}, {PL_NS_PER_S, "s"},
	};
	size_t off = 0;

	if (size == 0)
		return;
	out[0] = '\0';
	if (ns <= 0) {
		snprintf(out, size, "%s", ns == 0 ? "0s" : "negative");
		return;
	}
	if (ns < PL_NS_PER_S) {
		if (ns % PL_NS_PER_MS == 0)
			snprintf(out, size, "%" PRId64 "ms", ns / PL_NS_PER_MS);
		else if (ns % 1000 == 0)
			snprintf(out, size, "%" PRId64 "us", ns / 1000);
		else
			snprintf(out, size, "%" PRId64 "ns", ns);
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && off < size; i++) {
		int64_t q = ns / units[i].ns;
		int64_t r = ns % units[i].ns;
		if (units[i].ns == PL_NS_PER_S) {
			if (q == 0 && r == 0)
				break;
			if (r == 0) {
				off += (size_t)snprintf(out + off, size - off, "%" PRId64 "s", q);
			} else {
				char frac[24];
				snprintf(frac, sizeof(frac), "%09" PRId64, r);
				size_t n = strlen(frac);
				while (n > 0 && frac[n - 1] == '0')
					frac[--n] = '\0';
				off += (size_t)snprintf(out + off, size - off, "%" PRId64 ".%ss", q, frac);
			}
			break;
		}
		if (q > 0)
			off += (size_t)snprintf(out + off, size - off, "%" PRId64 "%s", q, units[i].unit);
		ns = r;
		if (ns == 0)
			break;
	}
}

int64_t pl_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * PL_NS_PER_S + ts.tv_nsec;
}
