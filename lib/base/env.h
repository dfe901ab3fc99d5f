/* Flags that can also come from the environment: --skip-inbound-ports is PILLION_SKIP_INBOUND_PORTS. */
#ifndef PILLION_BASE_ENV_H
#define PILLION_BASE_ENV_H

#include <stddef.h>

/* "PILLION_" + flag (without "--") in upper snake case, cut to fit outlen. */
void pl_flag_env_name(const char *flag, char *out, size_t outlen);

#endif
