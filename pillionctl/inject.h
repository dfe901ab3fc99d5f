/* pillionctl inject: the Pillion sidecar added to the Pods and pod templates of manifests, offline. */
#ifndef PILLIONCTL_INJECT_H
#define PILLIONCTL_INJECT_H

int cmd_inject(int argc, char **argv);

#endif
