/* pillion-init configuration: what the flags and PILLION_* environment variables said (parsing only, no I/O). */
#ifndef PILLION_INIT_CONFIG_H
#define PILLION_INIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define INIT_DEFAULT_PROXY_ID      1407
#define INIT_DEFAULT_OUTBOUND_PORT 15401
#define INIT_DEFAULT_INBOUND_PORT  15406
#define INIT_DEFAULT_ADMIN_PORT    15420

/* Bounds keep the config a flat value; a pod needing more has a different problem. */
#define INIT_MAX_PORTS 256
#define INIT_MAX_CIDRS 256

struct init_port_range {
	uint16_t lo, hi; /* lo == hi for a single port */
};

struct init_port_list {
	bool all; /* "*" */
	size_t n;
	struct init_port_range r[INIT_MAX_PORTS];
};

struct init_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network byte order, host bits cleared */
	unsigned prefix;
};

struct init_cidr_list {
	bool all; /* "*" */
	size_t n;
	struct init_cidr c[INIT_MAX_CIDRS];
};

enum init_backend { INIT_BACKEND_AUTO, INIT_BACKEND_LEGACY, INIT_BACKEND_NFT };

struct init_config {
	uint32_t proxy_uid, proxy_gid;
	uint16_t outbound_port, inbound_port, admin_port;
	struct init_port_list skip_inbound_ports;
	struct init_port_list include_inbound_ports;
	struct init_port_list skip_outbound_ports;
	struct init_cidr_list skip_outbound_cidrs;
	struct init_cidr_list include_outbound_cidrs;
	bool ipv6;
	enum init_backend backend;
	bool dry_run, cleanup, help, version;
	bool allow_host_netns; /* install even in the host's network namespace */
};

/* Like getenv(3), with a context so tests can supply their own environment. */
typedef const char *(*init_getenv_fn)(const char *name, void *ctx);

void init_config_defaults(struct init_config *cfg);

/*
 * Fills cfg from the environment (PILLION_<FLAG>) and then argv[1..argc-1], which wins.
 * Returns 0, or -EINVAL with a one-line message in err naming the flag or variable and
 * the bad value (without the "pillion-init: " prefix). getenv_fn may be NULL.
 */
int init_config_parse(struct init_config *cfg, int argc, char *const argv[],
		      init_getenv_fn getenv_fn, void *ctx, char *err, size_t errlen);

/* Parsers for one value, exposed for tests. 0 or -EINVAL with the reason in err (without flag name). */
int init_parse_ports(const char *s, bool allow_all, struct init_port_list *out, char *err, size_t errlen);
int init_parse_cidrs(const char *s, bool allow_all, struct init_cidr_list *out, char *err, size_t errlen);

/* Formats a CIDR as iptables-save prints it ("10.0.0.0/8", "2001:db8::/32"). */
void init_cidr_format(const struct init_cidr *c, char *out, size_t outlen);

/* Canonical backend names "legacy" / "nft". */
const char *init_backend_name(enum init_backend b);

void init_usage(FILE *f);

#endif
