/* pillionctl: validate policy files, show the proxy config a pod would get, check an installed mesh. */
#include <stdio.h>
#include <string.h>

#include "base/version.h"
#include "check.h"
#include "inject.h"
#include "inputs.h"
#include "status.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: pillionctl COMMAND [flags]\n"
		   "\n"
		   "commands:\n"
		   "  validate -f PATH...             check TrafficPolicy and MeshIdentity files\n"
		   "  render --pod POD -f PATH...     print the proxy config a pod (or a workload's pods) would get\n"
		   "  render --mesh NS -f PATH...     print namespace NS's mesh directory (from Pods, Services)\n"
		   "  render --outbound NS -f PATH... print namespace NS's client-side policies (outbound.json)\n"
		   "  inject -f PATH...               add the sidecar to Pods and pod templates (YAML out)\n"
		   "  check [--kubeconfig FILE]       inspect an installed Pillion through the Kubernetes API\n"
		   "  status [-n NS]                  each meshed pod's proxy: SYNCED, STALE or NOT READY\n"
		   "  version, --version              print the version and commit\n"
		   "\n"
		   "Run pillionctl COMMAND --help for a command's flags.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "validate") == 0)
		return cmd_validate(argc - 1, argv + 1);
	if (strcmp(argv[1], "render") == 0)
		return cmd_render(argc - 1, argv + 1);
	if (strcmp(argv[1], "inject") == 0)
		return cmd_inject(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		pl_version_print(stdout, "pillionctl");
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "pillionctl: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
