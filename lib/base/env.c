/* The environment variable that stands for a flag. */
#include <stdio.h>

#include "base/env.h"

void pl_flag_env_name(const char *flag, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "PILLION_");
	size_t i;

	if (n < 0 || (size_t)n >= outlen)
		return;
	i = (size_t)n;
	for (const char *p = flag; *p && i + 1 < outlen; p++)
		out[i++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	out[i] = '\0';
}
