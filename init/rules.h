/* pillion-init rule generation: the iptables-restore input for one address family (pure, no I/O). */
#ifndef PILLION_INIT_RULES_H
#define PILLION_INIT_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "config.h"

#define INIT_CHAIN_INBOUND     "PILLION_INBOUND"
#define INIT_CHAIN_IN_REDIRECT "PILLION_IN_REDIRECT"
#define INIT_CHAIN_OUTPUT      "PILLION_OUTPUT"
#define INIT_CHAIN_REDIRECT    "PILLION_REDIRECT"
#define INIT_CHAIN_PROBE       "PILLION_PROBE"

/* iptables' multiport match holds at most 15 ports; a range a:b counts as two. */
#define INIT_MULTIPORT_MAX 15

struct init_rules_stats {
	unsigned rules;         /* -A lines written, jumps included */
	unsigned jumps_added;   /* PREROUTING/OUTPUT jumps written */
	unsigned jumps_present; /* jumps that were already in the save output */
	unsigned jumps_deleted; /* cleanup: -D lines written */
};

/*
 * Appends to out the complete restore input (for `iptables-restore --noflush`) installing the
 * rules of one family (AF_INET or AF_INET6). save is the current `iptables-save -t nat`
 * output or NULL for a fresh pod: jumps from PREROUTING/OUTPUT already present are left out,
 * so applying twice gives the same rules. stats may be NULL.
 */
void init_rules_build(const struct init_config *cfg, int family, const char *save, pl_buf *out,
		      struct init_rules_stats *stats);

/*
 * Appends the restore input removing everything init_rules_build installed: every rule of a
 * chain outside ours that jumps to one of our chains (taken verbatim from save), then our four
 * chains flushed and deleted. Works when nothing is installed.
 */
void init_rules_cleanup(const char *save, pl_buf *out, struct init_rules_stats *stats);

/* True when save holds a rule in chain whose -j target is target. */
bool init_rules_has_jump(const char *save, const char *chain, const char *target);

/* Number of rules ("-A " lines) in save output; NULL counts 0. */
unsigned init_rules_count(const char *save);

/* The probe restore inputs: all pieces at once, or one (see enum). */
enum init_probe_piece {
	INIT_PROBE_NAT,
	INIT_PROBE_REDIRECT,
	INIT_PROBE_OWNER,
	INIT_PROBE_MULTIPORT,
	INIT_PROBE_COMMENT,
	INIT_PROBE_ALL,
};
void init_rules_probe(enum init_probe_piece piece, pl_buf *out);
void init_rules_probe_remove(pl_buf *out);

#endif
