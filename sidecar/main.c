/* pillion-proxy: the data-plane proxy. Not built yet: it only prints its usage and exits 2. */
#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "usage: pillion-proxy [flags]\n"
			"pillion-proxy (the data-plane proxy) is not implemented yet; see the project issues.\n");
	return 2;
}
