/* Go/Kubernetes duration strings ("250ms", "1m30s") to and from nanoseconds. */
#ifndef PILLION_BASE_DURATION_H
#define PILLION_BASE_DURATION_H

#include <stddef.h>
#include <stdint.h>

#define PL_NS_PER_MS INT64_C(1000000)
#define PL_NS_PER_S  INT64_C(1000000000)
#define PL_NS_PER_M  (60 * PL_NS_PER_S)
#define PL_NS_PER_H  (60 * PL_NS_PER_M)

/*
 * Parses one or more <decimal><unit> terms (units ns, us, µs, ms, s, m, h) into
 * nanoseconds. No sign, no spaces, no bare number: the CRD pattern
 * ^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$ accepts exactly what this accepts.
 * Returns 0, -EINVAL for bad syntax, -ERANGE past INT64_MAX nanoseconds.
 */
int pl_duration_parse(const char *s, int64_t *out_ns);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t pl_mono_ns(void);
/* Shortest Go-style form: 1h30m, 250ms, 1.5s, 0s. Writes at most size bytes. */
void pl_duration_format(int64_t ns, char *out, size_t size);

#endif
