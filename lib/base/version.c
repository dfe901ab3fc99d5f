#include "base/version.h"

void pl_version_print(FILE *f, const char *prog)
{
	fprintf(f, "%s %s (commit %s)\n", prog, pl_version(), pl_commit());
}

void pl_version_metric(pl_buf *b)
{
	pl_buf_puts(b, "# HELP pillion_build_info The release and source commit this binary was built from.\n"
		       "# TYPE pillion_build_info gauge\n");
	pl_buf_printf(b, "pillion_build_info{version=\"%s\",commit=\"%s\"} 1\n", pl_version(), pl_commit());
}
