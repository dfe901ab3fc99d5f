/* pillion-init: the init container that installs one pod's traffic redirect rules (nat table) and exits. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "apply.h"
#include "base/version.h"
#include "config.h"

static const char *env_lookup(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

int main(int argc, char **argv)
{
	static struct init_config cfg;
	char err[512];

	if (init_config_parse(&cfg, argc, argv, env_lookup, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "pillion-init: %s\n", err);
		return 2;
	}
	if (cfg.help) {
		init_usage(stdout);
		return 0;
	}
	if (cfg.version) {
		pl_version_print(stdout, "pillion-init");
		return 0;
	}
	/* A restore that quits early must surface as its exit status, not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return init_run(&cfg);
}
