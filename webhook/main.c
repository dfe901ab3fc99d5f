/* pillion-webhook: the mutating admission webhook that injects the proxy. Not built yet: it only prints its usage and exits 2. */
#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "usage: pillion-webhook [flags]\n"
			"pillion-webhook (the mutating admission webhook that injects the proxy) is not implemented yet; see the project issues.\n");
	return 2;
}
