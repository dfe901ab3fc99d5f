/* pillionctl status: each meshed pod's proxy, SYNCED / STALE / NOT READY. */
#ifndef PILLIONCTL_STATUS_H
#define PILLIONCTL_STATUS_H

int cmd_status(int argc, char **argv);

#endif
