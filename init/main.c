/* pillion-init: installs the pod's traffic redirect rules. Not built yet: it only prints its usage and exits 2. */
#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "usage: pillion-init [flags]\n"
			"pillion-init (installs the pod's traffic redirect rules) is not implemented yet; see the project issues.\n");
	return 2;
}
