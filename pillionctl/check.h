/* pillionctl check: inspects an installed Pillion through the Kubernetes API. */
#ifndef PILLIONCTL_CHECK_H
#define PILLIONCTL_CHECK_H

int cmd_check(int argc, char **argv);

#endif
