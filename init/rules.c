/* pillion-init rule generation: builds iptables-restore input for the nat table (pure, no I/O). */
#include "rules.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const char *const own_chains[] = {
	INIT_CHAIN_INBOUND, INIT_CHAIN_IN_REDIRECT, INIT_CHAIN_OUTPUT, INIT_CHAIN_REDIRECT,
};
#define N_OWN_CHAINS (sizeof(own_chains) / sizeof(own_chains[0]))

/* The rule text follows the order iptables-save prints, so saved and generated lines compare equal. */
#define COMMENT(purpose) "-m comment --comment \"pillion: " purpose "\""

static void rule(pl_buf *out, struct init_rules_stats *st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void rule(pl_buf *out, struct init_rules_stats *st, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pl_buf_puts(out, line);
	pl_buf_puts(out, "\n");
	st->rules++;
}

static unsigned range_weight(const struct init_port_range *r)
{
	return r->lo == r->hi ? 1 : 2;
}

static void port_text(char *out, size_t outlen, const struct init_port_range *r)
{
	if (r->lo == r->hi)
		snprintf(out, outlen, "%u", r->lo);
	else
		snprintf(out, outlen, "%u:%u", r->lo, r->hi);
}

/*
 * Writes one multiport rule per chunk of at most 15 ports: "-A chain -p tcp -m multiport --dports
 * <chunk> <tail>". The ports are the concatenation of head[] and list.
 */
static void multiport_rules(pl_buf *out, struct init_rules_stats *st, const char *chain,
			    const struct init_port_range *head, size_t nhead,
			    const struct init_port_list *list, const char *tail)
{
	size_t total = nhead + list->n;
	size_t i = 0;

	while (i < total) {
		char ports[INIT_MULTIPORT_MAX * 12 + 1];
		size_t used = 0;
		unsigned weight = 0;

		ports[0] = '\0';
		for (; i < total; i++) {
			const struct init_port_range *r = i < nhead ? &head[i] : &list->r[i - nhead];
			char one[16];

			if (weight + range_weight(r) > INIT_MULTIPORT_MAX)
				break;
			weight += range_weight(r);
			port_text(one, sizeof(one), r);
			used += (size_t)snprintf(ports + used, sizeof(ports) - used, "%s%s", used ? "," : "", one);
		}
		rule(out, st, "-A %s -p tcp -m multiport --dports %s %s", chain, ports, tail);
	}
}

static void declare_chains(pl_buf *out)
{
	for (size_t i = 0; i < N_OWN_CHAINS; i++)
		pl_buf_printf(out, ":%s - [0:0]\n", own_chains[i]);
}

void init_rules_build(const struct init_config *cfg, int family, const char *save, pl_buf *out,
		      struct init_rules_stats *stats)
{
	struct init_rules_stats local = {0};
	struct init_rules_stats *st = stats ? stats : &local;
	const char *lo = family == AF_INET6 ? "::1/128" : "127.0.0.1/32";
	const struct init_port_range own[] = {
		{cfg->admin_port, cfg->admin_port},
		{cfg->outbound_port, cfg->outbound_port},
		{cfg->inbound_port, cfg->inbound_port},
	};
	const struct { uint32_t id; const char *kind; } owners[] = {
		{cfg->proxy_uid, "uid"},
		{cfg->proxy_gid, "gid"},
	};

	memset(st, 0, sizeof(*st));
	pl_buf_puts(out, "*nat\n");
	declare_chains(out);

	rule(out, st, "-A " INIT_CHAIN_IN_REDIRECT " -p tcp " COMMENT("inbound to the proxy")
		      " -j REDIRECT --to-ports %u", cfg->inbound_port);
	rule(out, st, "-A " INIT_CHAIN_REDIRECT " -p tcp " COMMENT("outbound to the proxy")
		      " -j REDIRECT --to-ports %u", cfg->outbound_port);

	/* Inbound: the admin port always reaches the proxy as is; its own listeners would loop. */
	multiport_rules(out, st, INIT_CHAIN_INBOUND, own, sizeof(own) / sizeof(own[0]), &cfg->skip_inbound_ports,
			COMMENT("skip admin, proxy and skipped inbound ports") " -j RETURN");
	if (cfg->include_inbound_ports.all)
		rule(out, st, "-A " INIT_CHAIN_INBOUND " -p tcp " COMMENT("inbound to the proxy")
			      " -j " INIT_CHAIN_IN_REDIRECT);
	else
		multiport_rules(out, st, INIT_CHAIN_INBOUND, NULL, 0, &cfg->include_inbound_ports,
				COMMENT("included inbound ports to the proxy") " -j " INIT_CHAIN_IN_REDIRECT);

	/* Outbound, as Istio: the proxy dialing the pod's own IP (a Service whose endpoint is this
	 * pod) is inbound; the app's loopback traffic and the proxy's own traffic go direct. */
	for (size_t i = 0; i < sizeof(owners) / sizeof(owners[0]); i++) {
		rule(out, st, "-A " INIT_CHAIN_OUTPUT " ! -d %s -o lo -m owner --%s-owner %u "
			      COMMENT("proxy calling its own pod IP is inbound") " -j " INIT_CHAIN_IN_REDIRECT,
		     lo, owners[i].kind, owners[i].id);
		rule(out, st, "-A " INIT_CHAIN_OUTPUT " -o lo -m owner ! --%s-owner %u "
			      COMMENT("app loopback traffic goes direct") " -j RETURN",
		     owners[i].kind, owners[i].id);
		rule(out, st, "-A " INIT_CHAIN_OUTPUT " -m owner --%s-owner %u "
			      COMMENT("proxy traffic goes direct") " -j RETURN",
		     owners[i].kind, owners[i].id);
	}
	rule(out, st, "-A " INIT_CHAIN_OUTPUT " -d %s " COMMENT("loopback goes direct") " -j RETURN", lo);
	multiport_rules(out, st, INIT_CHAIN_OUTPUT, NULL, 0, &cfg->skip_outbound_ports, COMMENT("skipped outbound ports") " -j RETURN");
	for (size_t i = 0; i < cfg->skip_outbound_cidrs.n; i++) {
		char cidr[64];

		if (cfg->skip_outbound_cidrs.c[i].family != family)
			continue;
		init_cidr_format(&cfg->skip_outbound_cidrs.c[i], cidr, sizeof(cidr));
		rule(out, st, "-A " INIT_CHAIN_OUTPUT " -d %s " COMMENT("skipped outbound CIDR") " -j RETURN", cidr);
	}
	if (cfg->include_outbound_cidrs.all) {
		rule(out, st, "-A " INIT_CHAIN_OUTPUT " " COMMENT("outbound to the proxy") " -j " INIT_CHAIN_REDIRECT);
	} else {
		for (size_t i = 0; i < cfg->include_outbound_cidrs.n; i++) {
			char cidr[64];

			if (cfg->include_outbound_cidrs.c[i].family != family)
				continue;
			init_cidr_format(&cfg->include_outbound_cidrs.c[i], cidr, sizeof(cidr));
			rule(out, st, "-A " INIT_CHAIN_OUTPUT " -d %s " COMMENT("included outbound CIDR to the proxy")
				      " -j " INIT_CHAIN_REDIRECT, cidr);
		}
	}

	/* Jumps last, so the chains are complete before traffic enters them; never twice. */
	if (init_rules_has_jump(save, "PREROUTING", INIT_CHAIN_INBOUND)) {
		st->jumps_present++;
	} else {
		rule(out, st, "-A PREROUTING -p tcp " COMMENT("pod inbound") " -j " INIT_CHAIN_INBOUND);
		st->jumps_added++;
	}
	if (init_rules_has_jump(save, "OUTPUT", INIT_CHAIN_OUTPUT)) {
		st->jumps_present++;
	} else {
		rule(out, st, "-A OUTPUT -p tcp " COMMENT("pod outbound") " -j " INIT_CHAIN_OUTPUT);
		st->jumps_added++;
	}
	pl_buf_puts(out, "COMMIT\n");
}

static bool is_own_chain(const char *s, size_t len)
{
	for (size_t i = 0; i < N_OWN_CHAINS; i++)
		if (strlen(own_chains[i]) == len && memcmp(own_chains[i], s, len) == 0)
			return true;
	return false;
}

/*
 * Splits a saved rule line "-A CHAIN ... -j TARGET ..." into its chain and target. The last
 * " -j " is the target: matches (comments included) come before it in iptables-save output.
 */
static bool parse_rule_line(const char *line, size_t len, const char **chain, size_t *chain_len,
			    const char **target, size_t *target_len)
{
	const char *p, *j = NULL;

	if (len < 4 || memcmp(line, "-A ", 3) != 0)
		return false;
	*chain = line + 3;
	p = memchr(*chain, ' ', len - 3);
	*chain_len = p ? (size_t)(p - *chain) : len - 3;
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(line + i, " -j ", 4) == 0)
			j = line + i + 4;
	if (!j)
		return false;
	*target = j;
	p = memchr(j, ' ', (size_t)(line + len - j));
	*target_len = p ? (size_t)(p - j) : (size_t)(line + len - j);
	return true;
}

/* Calls fn for each line of text (without its newline); stops when fn returns false. */
static void each_line(const char *text, bool (*fn)(const char *line, size_t len, void *ctx), void *ctx)
{
	const char *p = text;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (!fn(p, len, ctx))
			return;
		p = nl ? nl + 1 : NULL;
	}
}

struct jump_query {
	const char *chain, *target;
	bool found;
};

static bool find_jump(const char *line, size_t len, void *ctx)
{
	struct jump_query *q = ctx;
	const char *c, *t;
	size_t cl, tl;

	if (!parse_rule_line(line, len, &c, &cl, &t, &tl))
		return true;
	if (cl == strlen(q->chain) && memcmp(c, q->chain, cl) == 0 &&
	    tl == strlen(q->target) && memcmp(t, q->target, tl) == 0) {
		q->found = true;
		return false;
	}
	return true;
}

bool init_rules_has_jump(const char *save, const char *chain, const char *target)
{
	struct jump_query q = {chain, target, false};

	each_line(save, find_jump, &q);
	return q.found;
}

static bool count_rule(const char *line, size_t len, void *ctx)
{
	if (len > 3 && memcmp(line, "-A ", 3) == 0)
		(*(unsigned *)ctx)++;
	return true;
}

unsigned init_rules_count(const char *save)
{
	unsigned n = 0;

	each_line(save, count_rule, &n);
	return n;
}

struct cleanup_ctx {
	pl_buf *out;
	struct init_rules_stats *st;
};

static bool delete_jump(const char *line, size_t len, void *ctx)
{
	struct cleanup_ctx *c = ctx;
	const char *chain, *target;
	size_t cl, tl;

	if (!parse_rule_line(line, len, &chain, &cl, &target, &tl))
		return true;
	/* Rules inside our chains go with the chains; any other rule jumping to them would block -X. */
	if (is_own_chain(chain, cl) || !is_own_chain(target, tl))
		return true;
	pl_buf_puts(c->out, "-D ");
	pl_buf_append(c->out, line + 3, len - 3);
	pl_buf_puts(c->out, "\n");
	c->st->jumps_deleted++;
	return true;
}

void init_rules_cleanup(const char *save, pl_buf *out, struct init_rules_stats *stats)
{
	struct init_rules_stats local = {0};
	struct cleanup_ctx c = {out, stats ? stats : &local};

	memset(c.st, 0, sizeof(*c.st));
	pl_buf_puts(out, "*nat\n");
	each_line(save, delete_jump, &c);
	/* Declaring flushes (or creates) each chain, so -X never meets a non-empty or referenced chain. */
	declare_chains(out);
	for (size_t i = 0; i < N_OWN_CHAINS; i++)
		pl_buf_printf(out, "-X %s\n", own_chains[i]);
	pl_buf_puts(out, "COMMIT\n");
}

void init_rules_probe(enum init_probe_piece piece, pl_buf *out)
{
	static const char *const lines[] = {
		[INIT_PROBE_NAT] = NULL,
		[INIT_PROBE_REDIRECT] = "-A " INIT_CHAIN_PROBE " -p tcp -j REDIRECT --to-ports 15401",
		[INIT_PROBE_OWNER] = "-A " INIT_CHAIN_PROBE " -m owner --uid-owner 1407 -j RETURN",
		[INIT_PROBE_MULTIPORT] = "-A " INIT_CHAIN_PROBE " -p tcp -m multiport --dports 15401,15406:15407 -j RETURN",
		[INIT_PROBE_COMMENT] = "-A " INIT_CHAIN_PROBE " -m comment --comment \"pillion: probe\" -j RETURN",
	};

	pl_buf_puts(out, "*nat\n:" INIT_CHAIN_PROBE " - [0:0]\n");
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (!lines[i] || (piece != INIT_PROBE_ALL && piece != (enum init_probe_piece)i))
			continue;
		pl_buf_puts(out, lines[i]);
		pl_buf_puts(out, "\n");
	}
	pl_buf_puts(out, "COMMIT\n");
}

void init_rules_probe_remove(pl_buf *out)
{
	pl_buf_puts(out, "*nat\n:" INIT_CHAIN_PROBE " - [0:0]\n-X " INIT_CHAIN_PROBE "\nCOMMIT\n");
}
