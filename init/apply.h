/* pillion-init runtime: backend detection, kernel probing and running iptables-restore. */
#ifndef PILLION_INIT_APPLY_H
#define PILLION_INIT_APPLY_H

#include "config.h"

/* Does what cfg says (install, --cleanup, --dry-run). Returns the exit status: 0, 1 after printing
 * one line naming what failed, or 2 when asked to install into the host's network namespace. */
int init_run(const struct init_config *cfg);

#endif
