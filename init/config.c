/* pillion-init flag and PILLION_* environment parsing and validation (no I/O besides usage). */
#include "config.h"

#include "base/env.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum flag_kind {
	FLAG_ID,           /* uid / gid */
	FLAG_PORT,
	FLAG_PORTS,        /* list of ports and ranges */
	FLAG_PORTS_OR_ALL, /* same, or "*" */
	FLAG_CIDRS,
	FLAG_CIDRS_OR_ALL,
	FLAG_BOOL,         /* takes true/false; on the command line the value may be left out */
	FLAG_SWITCH,       /* takes no value on the command line; env takes true/false */
	FLAG_BACKEND,
};

struct flag {
	const char *name; /* without "--"; the env name is PILLION_ + upper snake case of it */
	enum flag_kind kind;
	size_t offset;
};

#define F(name, kind, field) { name, kind, offsetof(struct init_config, field) }
static const struct flag flags[] = {
	F("proxy-uid", FLAG_ID, proxy_uid),
	F("proxy-gid", FLAG_ID, proxy_gid),
	F("outbound-port", FLAG_PORT, outbound_port),
	F("inbound-port", FLAG_PORT, inbound_port),
	F("admin-port", FLAG_PORT, admin_port),
	F("skip-inbound-ports", FLAG_PORTS, skip_inbound_ports),
	F("include-inbound-ports", FLAG_PORTS_OR_ALL, include_inbound_ports),
	F("skip-outbound-ports", FLAG_PORTS, skip_outbound_ports),
	F("skip-outbound-cidrs", FLAG_CIDRS, skip_outbound_cidrs),
	F("include-outbound-cidrs", FLAG_CIDRS_OR_ALL, include_outbound_cidrs),
	F("ipv6", FLAG_BOOL, ipv6),
	F("backend", FLAG_BACKEND, backend),
	F("dry-run", FLAG_SWITCH, dry_run),
	F("cleanup", FLAG_SWITCH, cleanup),
	F("allow-host-netns", FLAG_SWITCH, allow_host_netns),
};
#undef F

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void init_config_defaults(struct init_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->proxy_uid = INIT_DEFAULT_PROXY_ID;
	cfg->proxy_gid = INIT_DEFAULT_PROXY_ID;
	cfg->outbound_port = INIT_DEFAULT_OUTBOUND_PORT;
	cfg->inbound_port = INIT_DEFAULT_INBOUND_PORT;
	cfg->admin_port = INIT_DEFAULT_ADMIN_PORT;
	cfg->include_inbound_ports.all = true;
	cfg->include_outbound_cidrs.all = true;
	cfg->ipv6 = true;
	cfg->backend = INIT_BACKEND_AUTO;
}

const char *init_backend_name(enum init_backend b)
{
	switch (b) {
	case INIT_BACKEND_LEGACY: return "legacy";
	case INIT_BACKEND_NFT: return "nft";
	case INIT_BACKEND_AUTO: break;
	}
	return "auto";
}

/* Decimal digits only (strtoul would take signs, spaces and hex); 0 or -EINVAL. */
static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (len == 0 || len > 10)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int parse_one_port(const char *s, size_t len, uint16_t *out, char *err, size_t errlen)
{
	unsigned long v;
	int rc = parse_uint(s, len, 65535, &v);

	if (rc == -EINVAL) {
		errf(err, errlen, "\"%.*s\": not a port number", (int)len, s);
		return -EINVAL;
	}
	if (rc < 0 || v == 0) {
		errf(err, errlen, "\"%.*s\": port must be 1..65535", (int)len, s);
		return -EINVAL;
	}
	*out = (uint16_t)v;
	return 0;
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* The whole-value forms of a list: "" (empty) and "*" (all). 1 when s was one, 0 to parse items. */
static int list_special(const char *s, bool allow_all, bool *all, const char *what, char *err, size_t errlen)
{
	const char *t = s;
	size_t tl = strlen(s);

	trim(&t, &tl);
	if (tl == 0)
		return 1;
	if (tl != 1 || t[0] != '*')
		return 0;
	if (!allow_all) {
		errf(err, errlen, "\"*\": not allowed here, list the %s", what);
		return -EINVAL;
	}
	*all = true;
	return 1;
}

int init_parse_ports(const char *s, bool allow_all, struct init_port_list *out, char *err, size_t errlen)
{
	const char *p = s;
	int special;

	memset(out, 0, sizeof(*out));
	special = list_special(s, allow_all, &out->all, "ports", err, errlen);
	if (special != 0)
		return special < 0 ? special : 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *item = p, *sep;
		size_t ilen = len;
		struct init_port_range r;

		trim(&item, &ilen);
		if (ilen == 0) {
			errf(err, errlen, "\"%s\": empty entry in the list", s);
			return -EINVAL;
		}
		sep = memchr(item, '-', ilen);
		if (!sep)
			sep = memchr(item, ':', ilen);
		if (sep) {
			size_t l1 = (size_t)(sep - item);

			if (parse_one_port(item, l1, &r.lo, err, errlen) < 0 ||
			    parse_one_port(sep + 1, ilen - l1 - 1, &r.hi, err, errlen) < 0) {
				errf(err, errlen, "\"%.*s\": a range needs two ports 1..65535 (a-b or a:b)", (int)ilen, item);
				return -EINVAL;
			}
			if (r.lo > r.hi) {
				errf(err, errlen, "\"%.*s\": range start must not be greater than its end", (int)ilen, item);
				return -EINVAL;
			}
		} else {
			if (parse_one_port(item, ilen, &r.lo, err, errlen) < 0)
				return -EINVAL;
			r.hi = r.lo;
		}
		if (out->n == INIT_MAX_PORTS) {
			errf(err, errlen, "too many entries (at most %d)", INIT_MAX_PORTS);
			return -EINVAL;
		}
		out->r[out->n++] = r;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

/* Clears host bits: 10.1.2.3/8 means 10.0.0.0/8 (documented in --help), as iptables itself does. */
static void mask_host_bits(unsigned char *addr, size_t addrlen, unsigned prefix)
{
	for (size_t i = 0; i < addrlen; i++) {
		unsigned bits = prefix > i * 8 ? prefix - (unsigned)i * 8 : 0;

		addr[i] &= bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
	}
}

static int parse_one_cidr(const char *item, size_t ilen, struct init_cidr *c, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = memchr(item, '/', ilen);
	size_t hlen = slash ? (size_t)(slash - item) : ilen;
	unsigned max;

	memset(c, 0, sizeof(*c));
	if (hlen >= sizeof(host)) {
		errf(err, errlen, "\"%.*s\": not an IPv4 or IPv6 address", (int)ilen, item);
		return -EINVAL;
	}
	memcpy(host, item, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		errf(err, errlen, "\"%.*s\": not an IPv4 or IPv6 address", (int)ilen, item);
		return -EINVAL;
	}
	c->prefix = max;
	if (slash) {
		unsigned long v;
		size_t plen = ilen - hlen - 1;

		if (parse_uint(slash + 1, plen, ULONG_MAX, &v) < 0 || v > max) {
			errf(err, errlen, "\"%.*s\": prefix length must be 0..%u for %s", (int)ilen, item, max,
			     c->family == AF_INET ? "IPv4" : "IPv6");
			return -EINVAL;
		}
		c->prefix = (unsigned)v;
	}
	mask_host_bits(c->addr, c->family == AF_INET ? 4 : 16, c->prefix);
	return 0;
}

int init_parse_cidrs(const char *s, bool allow_all, struct init_cidr_list *out, char *err, size_t errlen)
{
	const char *p = s;
	int special;

	memset(out, 0, sizeof(*out));
	special = list_special(s, allow_all, &out->all, "CIDRs", err, errlen);
	if (special != 0)
		return special < 0 ? special : 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *item = p;
		size_t ilen = len;

		trim(&item, &ilen);
		if (ilen == 0) {
			errf(err, errlen, "\"%s\": empty entry in the list", s);
			return -EINVAL;
		}
		if (out->n == INIT_MAX_CIDRS) {
			errf(err, errlen, "too many entries (at most %d)", INIT_MAX_CIDRS);
			return -EINVAL;
		}
		if (parse_one_cidr(item, ilen, &out->c[out->n], err, errlen) < 0)
			return -EINVAL;
		out->n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

void init_cidr_format(const struct init_cidr *c, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];

	if (!inet_ntop(c->family, c->addr, host, sizeof(host)))
		host[0] = '\0';
	snprintf(out, outlen, "%s/%u", host, c->prefix);
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Applies one value to its field. who is "--flag" or "PILLION_FLAG" for the message. */
static int set_value(struct init_config *cfg, const struct flag *f, const char *who, const char *v,
		     char *err, size_t errlen)
{
	char why[256];
	void *field = (char *)cfg + f->offset;
	unsigned long n;
	int rc;

	switch (f->kind) {
	case FLAG_ID:
		rc = parse_uint(v, strlen(v), 4294967294UL, &n);
		if (rc < 0) {
			errf(err, errlen, "%s: \"%s\": must be a numeric id 0..4294967294", who, v);
			return -EINVAL;
		}
		*(uint32_t *)field = (uint32_t)n;
		return 0;
	case FLAG_PORT:
		if (parse_one_port(v, strlen(v), (uint16_t *)field, why, sizeof(why)) < 0) {
			errf(err, errlen, "%s: %s", who, why);
			return -EINVAL;
		}
		return 0;
	case FLAG_PORTS:
	case FLAG_PORTS_OR_ALL:
		if (init_parse_ports(v, f->kind == FLAG_PORTS_OR_ALL, field, why, sizeof(why)) < 0) {
			errf(err, errlen, "%s: %s", who, why);
			return -EINVAL;
		}
		return 0;
	case FLAG_CIDRS:
	case FLAG_CIDRS_OR_ALL:
		if (init_parse_cidrs(v, f->kind == FLAG_CIDRS_OR_ALL, field, why, sizeof(why)) < 0) {
			errf(err, errlen, "%s: %s", who, why);
			return -EINVAL;
		}
		return 0;
	case FLAG_BOOL:
	case FLAG_SWITCH:
		if (parse_bool(v, (bool *)field) < 0) {
			errf(err, errlen, "%s: \"%s\": must be true or false", who, v);
			return -EINVAL;
		}
		return 0;
	case FLAG_BACKEND:
		if (strcmp(v, "auto") == 0)
			*(enum init_backend *)field = INIT_BACKEND_AUTO;
		else if (strcmp(v, "legacy") == 0)
			*(enum init_backend *)field = INIT_BACKEND_LEGACY;
		else if (strcmp(v, "nft") == 0)
			*(enum init_backend *)field = INIT_BACKEND_NFT;
		else {
			errf(err, errlen, "%s: \"%s\": must be one of auto, legacy, nft", who, v);
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

static void env_name(const struct flag *f, char *out, size_t outlen)
{
	pl_flag_env_name(f->name, out, outlen);
}

static const struct flag *find_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
			return &flags[i];
	return NULL;
}

static int check_ports_distinct(const struct init_config *cfg, char *err, size_t errlen)
{
	if (cfg->outbound_port == cfg->inbound_port) {
		errf(err, errlen, "--inbound-port: \"%u\": must differ from --outbound-port", cfg->inbound_port);
		return -EINVAL;
	}
	if (cfg->admin_port == cfg->inbound_port || cfg->admin_port == cfg->outbound_port) {
		errf(err, errlen, "--admin-port: \"%u\": must differ from --inbound-port and --outbound-port",
		     cfg->admin_port);
		return -EINVAL;
	}
	return 0;
}

int init_config_parse(struct init_config *cfg, int argc, char *const argv[],
		      init_getenv_fn getenv_fn, void *ctx, char *err, size_t errlen)
{
	init_config_defaults(cfg);
	if (err && errlen)
		err[0] = '\0';

	/* Environment first: an empty variable counts as unset (Kubernetes templates often render ""). */
	for (size_t i = 0; getenv_fn && i < sizeof(flags) / sizeof(flags[0]); i++) {
		char name[64];
		const char *v;

		env_name(&flags[i], name, sizeof(name));
		v = getenv_fn(name, ctx);
		if (v && *v && set_value(cfg, &flags[i], name, v, err, errlen) < 0)
			return -EINVAL;
	}

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *name, *eq, *v;
		char who[64];
		const struct flag *f;
		size_t nlen;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			cfg->help = true;
			continue;
		}
		if (strcmp(a, "--version") == 0) {
			cfg->version = true;
			continue;
		}
		if (strcmp(a, "--no-ipv6") == 0) {
			cfg->ipv6 = false;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			errf(err, errlen, "unexpected argument \"%s\" (flags start with --; see --help)", a);
			return -EINVAL;
		}
		name = a + 2;
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		f = find_flag(name, nlen);
		if (!f) {
			errf(err, errlen, "unknown flag \"--%.*s\" (see --help)", (int)nlen, name);
			return -EINVAL;
		}
		snprintf(who, sizeof(who), "--%s", f->name);
		if (f->kind == FLAG_SWITCH && !eq) {
			*(bool *)((char *)cfg + f->offset) = true;
			continue;
		}
		if (eq) {
			v = eq + 1;
		} else if (f->kind == FLAG_BOOL) {
			bool b;

			/* --ipv6 alone means true; --ipv6 false takes the next word only when it is a boolean. */
			if (i + 1 < argc && parse_bool(argv[i + 1], &b) == 0)
				v = argv[++i];
			else
				v = "true";
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			errf(err, errlen, "%s: needs a value", who);
			return -EINVAL;
		}
		if (set_value(cfg, f, who, v, err, errlen) < 0)
			return -EINVAL;
	}
	if (cfg->help)
		return 0;
	return check_ports_distinct(cfg, err, errlen);
}

void init_usage(FILE *f)
{
	fprintf(f,
		"usage: pillion-init [flags]\n"
		"\n"
		"Installs the pod's traffic redirect rules (nat table, chains PILLION_*) and exits.\n"
		"Every flag can also be set by an environment variable PILLION_<FLAG> (for example\n"
		"PILLION_SKIP_INBOUND_PORTS); the command line wins. Empty variables are ignored.\n"
		"\n"
		"flags:\n"
		"  --proxy-uid ID               UID the proxy runs as; its traffic is not redirected (1407)\n"
		"  --proxy-gid ID               GID the proxy runs as (1407)\n"
		"  --outbound-port PORT         proxy port for the pod's outgoing connections (15401)\n"
		"  --inbound-port PORT          proxy port for connections to the pod (15406)\n"
		"  --admin-port PORT            proxy admin port, never redirected (15420)\n"
		"  --skip-inbound-ports LIST    inbound ports that go straight to the app\n"
		"  --include-inbound-ports LIST inbound ports to redirect; * is all (default), empty is none\n"
		"  --skip-outbound-ports LIST   destination ports that are not redirected\n"
		"  --skip-outbound-cidrs LIST   destination CIDRs (IPv4 and IPv6) that are not redirected\n"
		"  --include-outbound-cidrs LIST only these destination CIDRs are redirected; * is all (default),\n"
		"                               empty is none\n"
		"  --ipv6 true|false, --no-ipv6 also install the IPv6 rules (true)\n"
		"  --backend auto|legacy|nft    iptables flavour; auto picks the one already holding nat\n"
		"                               rules, else nft (auto)\n"
		"  --dry-run                    print the iptables-restore input and change nothing\n"
		"  --cleanup                    remove every rule and chain pillion-init installed\n"
		"  --allow-host-netns           install even in the host's network namespace (refused\n"
		"                               otherwise: it would redirect all of the node's TCP)\n"
		"  --help                       this text\n"
		"  --version                    print the version and commit\n"
		"\n"
		"A LIST is comma-separated. Ports are 1..65535, ranges a-b or a:b. A CIDR without a\n"
		"prefix length is one address; host bits are cleared (10.1.2.3/8 means 10.0.0.0/8).\n"
		"\n"
		"Exit status: 0 done, 1 a runtime failure (the message names it), 2 a usage error.\n");
}
