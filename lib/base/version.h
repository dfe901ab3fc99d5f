/* The release and the source commit a binary was built from (cmake/version.cmake writes them). */
#ifndef PILLION_BASE_VERSION_H
#define PILLION_BASE_VERSION_H

#include <stdio.h>

#include "base/buf.h"

const char *pl_version(void);
const char *pl_commit(void);
/* "PROG VERSION (commit COMMIT)\n" on f: what every binary's --version prints. */
void pl_version_print(FILE *f, const char *prog);
/* Appends the Prometheus series pillion_build_info{version,commit} 1, with its HELP and TYPE. */
void pl_version_metric(pl_buf *b);

#endif
