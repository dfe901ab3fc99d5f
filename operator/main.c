/* pillion-operator: the control plane: watches policies, runs the mesh CA, writes per-pod config. Not built yet: it only prints its usage and exits 2. */
#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "usage: pillion-operator [flags]\n"
			"pillion-operator (the control plane: watches policies, runs the mesh CA, writes per-pod config) is not implemented yet; see the project issues.\n");
	return 2;
}
