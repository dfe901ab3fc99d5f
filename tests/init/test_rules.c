/* Unit tests for pillion-init's pure parts: flag/env parsing (init/config.c) and rule generation (init/rules.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "base/buf.h"
#include "config.h"
#include "rules.h"

/* ---------- helpers ---------- */

struct fake_env {
	const char *pairs[16][2];
};

static const char *fake_getenv(const char *name, void *ctx)
{
	const struct fake_env *e = ctx;

	for (size_t i = 0; e && i < 16 && e->pairs[i][0]; i++)
		if (strcmp(e->pairs[i][0], name) == 0)
			return e->pairs[i][1];
	return NULL;
}

/* Parses argv (NULL-terminated, without the program name) and env; returns rc, message in err. */
static int parse(struct init_config *cfg, const struct fake_env *env, char *err, size_t errlen, ...)
{
	char *argv[32] = {"pillion-init"};
	int argc = 1;
	va_list ap;
	const char *a;

	va_start(ap, errlen);
	while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return init_config_parse(cfg, argc, argv, fake_getenv, (void *)env, err, errlen);
}

static struct init_config cfg; /* large: keep it off the stack */

static void defaults(void)
{
	char err[256];

	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), NULL), 0);
}

static char *build(int family, const char *save)
{
	pl_buf b = PL_BUF_INIT;

	init_rules_build(&cfg, family, save, &b, NULL);
	return b.data; /* caller frees */
}

/* Lines of text that start with prefix, joined with "\n" (caller frees). */
static char *grep(const char *text, const char *prefix)
{
	pl_buf b = PL_BUF_INIT;
	const char *p = text;

	pl_buf_puts(&b, "");
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			pl_buf_append(&b, p, len);
			pl_buf_puts(&b, "\n");
		}
		p += len + (nl ? 1 : 0);
	}
	return b.data;
}

static void assert_lines(const char *text, const char *prefix, const char *want)
{
	char *got = grep(text, prefix);

	if (strcmp(got, want) != 0)
		print_error("lines starting with [%s]:\n--- want\n%s--- got\n%s", prefix, want, got);
	assert_string_equal(got, want);
	free(got);
}

#define C(purpose) "-m comment --comment \"pillion: " purpose "\""

/* ---------- default rules, exact text ---------- */

static const char default_v4[] =
	"*nat\n"
	":PILLION_INBOUND - [0:0]\n"
	":PILLION_IN_REDIRECT - [0:0]\n"
	":PILLION_OUTPUT - [0:0]\n"
	":PILLION_REDIRECT - [0:0]\n"
	"-A PILLION_IN_REDIRECT -p tcp " C("inbound to the proxy") " -j REDIRECT --to-ports 15406\n"
	"-A PILLION_REDIRECT -p tcp " C("outbound to the proxy") " -j REDIRECT --to-ports 15401\n"
	"-A PILLION_INBOUND -p tcp -m multiport --dports 15420,15401,15406 " C("skip admin, proxy and skipped inbound ports") " -j RETURN\n"
	"-A PILLION_INBOUND -p tcp " C("inbound to the proxy") " -j PILLION_IN_REDIRECT\n"
	"-A PILLION_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1407 " C("proxy calling its own pod IP is inbound") " -j PILLION_IN_REDIRECT\n"
	"-A PILLION_OUTPUT -o lo -m owner ! --uid-owner 1407 " C("app loopback traffic goes direct") " -j RETURN\n"
	"-A PILLION_OUTPUT -m owner --uid-owner 1407 " C("proxy traffic goes direct") " -j RETURN\n"
	"-A PILLION_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1407 " C("proxy calling its own pod IP is inbound") " -j PILLION_IN_REDIRECT\n"
	"-A PILLION_OUTPUT -o lo -m owner ! --gid-owner 1407 " C("app loopback traffic goes direct") " -j RETURN\n"
	"-A PILLION_OUTPUT -m owner --gid-owner 1407 " C("proxy traffic goes direct") " -j RETURN\n"
	"-A PILLION_OUTPUT -d 127.0.0.1/32 " C("loopback goes direct") " -j RETURN\n"
	"-A PILLION_OUTPUT " C("outbound to the proxy") " -j PILLION_REDIRECT\n"
	"-A PREROUTING -p tcp " C("pod inbound") " -j PILLION_INBOUND\n"
	"-A OUTPUT -p tcp " C("pod outbound") " -j PILLION_OUTPUT\n"
	"COMMIT\n";

static void test_default_v4(void **state)
{
	(void)state;
	struct init_rules_stats st;
	pl_buf b = PL_BUF_INIT;

	defaults();
	init_rules_build(&cfg, AF_INET, NULL, &b, &st);
	assert_string_equal(b.data, default_v4);
	assert_int_equal(st.rules, 14);
	assert_int_equal(st.jumps_added, 2);
	assert_int_equal(st.jumps_present, 0);
	pl_buf_free(&b);
}

static void test_default_v6(void **state)
{
	(void)state;
	char *got;
	pl_buf want = PL_BUF_INIT;

	/* The IPv6 rules are the IPv4 ones with ::1/128 for 127.0.0.1/32, and nothing else differs. */
	for (const char *p = default_v4; *p;) {
		const char *hit = strstr(p, "127.0.0.1/32");

		if (!hit) {
			pl_buf_puts(&want, p);
			break;
		}
		pl_buf_append(&want, p, (size_t)(hit - p));
		pl_buf_puts(&want, "::1/128");
		p = hit + strlen("127.0.0.1/32");
	}
	defaults();
	got = build(AF_INET6, NULL);
	assert_string_equal(got, want.data);
	assert_non_null(strstr(got, "-A PILLION_OUTPUT ! -d ::1/128 -o lo -m owner --uid-owner 1407 "));
	assert_null(strstr(got, "127.0.0.1"));
	free(got);
	pl_buf_free(&want);
}

static void test_custom_ids_and_ports(void **state)
{
	(void)state;
	char err[256];
	char *got;

	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--proxy-uid", "2000", "--proxy-gid=3000",
			       "--outbound-port", "7001", "--inbound-port", "7002", "--admin-port", "7003", NULL), 0);
	got = build(AF_INET, NULL);
	assert_non_null(strstr(got, "-j REDIRECT --to-ports 7002\n"));
	assert_non_null(strstr(got, "-j REDIRECT --to-ports 7001\n"));
	assert_non_null(strstr(got, "--dports 7003,7001,7002 "));
	assert_non_null(strstr(got, "-m owner ! --uid-owner 2000 "));
	assert_non_null(strstr(got, "-m owner --gid-owner 3000 "));
	assert_null(strstr(got, "1407"));
	free(got);
}

/* ---------- multiport chunking ---------- */

static void test_skip_inbound_chunks(void **state)
{
	(void)state;
	char err[256];
	char *got;

	/* 3 own ports + 12 = 15: one rule. */
	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--skip-inbound-ports", "1,2,3,4,5,6,7,8,9,10,11,12", NULL), 0);
	got = build(AF_INET, NULL);
	assert_lines(got, "-A PILLION_INBOUND -p tcp -m multiport",
		     "-A PILLION_INBOUND -p tcp -m multiport --dports 15420,15401,15406,1,2,3,4,5,6,7,8,9,10,11,12 "
		     C("skip admin, proxy and skipped inbound ports") " -j RETURN\n");
	free(got);

	/* A range counts as two: 3 + 11 singles = 14, so the range 100-200 no longer fits. */
	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--skip-inbound-ports",
			       "1,2,3,4,5,6,7,8,9,10,11, 100-200 ,300:400,13", NULL), 0);
	got = build(AF_INET, NULL);
	assert_lines(got, "-A PILLION_INBOUND",
		     "-A PILLION_INBOUND -p tcp -m multiport --dports 15420,15401,15406,1,2,3,4,5,6,7,8,9,10,11 "
		     C("skip admin, proxy and skipped inbound ports") " -j RETURN\n"
		     "-A PILLION_INBOUND -p tcp -m multiport --dports 100:200,300:400,13 "
		     C("skip admin, proxy and skipped inbound ports") " -j RETURN\n"
		     "-A PILLION_INBOUND -p tcp " C("inbound to the proxy") " -j PILLION_IN_REDIRECT\n");
	free(got);
}

static void test_chunks_never_exceed_15(void **state)
{
	(void)state;
	char err[256], list[256];
	char *got, *lines;
	int rules = 0;

	snprintf(list, sizeof(list), "%s", "1,2:3,4,5:6,7,8:9,10,11:12,13,14:15,16,17:18,19,20:21,22,23:24,25,26:27");
	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--skip-outbound-ports", list, NULL), 0);
	got = build(AF_INET, NULL);
	lines = grep(got, "-A PILLION_OUTPUT -p tcp -m multiport --dports ");
	for (char *p = lines; *p;) {
		char *nl = strchr(p, '\n');
		const char *ports = p + strlen("-A PILLION_OUTPUT -p tcp -m multiport --dports ");
		int weight = 1;

		*nl = '\0';
		for (const char *q = ports; *q && *q != ' '; q++)
			weight += *q == ',' || *q == ':';
		assert_true(weight <= 15);
		rules++;
		p = nl + 1;
	}
	/* 9 singles + 9 ranges = 27 ports of weight: two rules (15 + 12 does not split a range). */
	assert_int_equal(rules, 2);
	assert_non_null(strstr(got, "--dports 1,2:3,4,5:6,7,8:9,10,11:12,13,14:15 "));
	assert_non_null(strstr(got, "--dports 16,17:18,19,20:21,22,23:24,25,26:27 "));
	free(lines);
	free(got);
}

static void test_skip_outbound_ports(void **state)
{
	(void)state;
	char err[256];
	char *got;

	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--skip-outbound-ports=5432,6379-6380", NULL), 0);
	got = build(AF_INET, NULL);
	/* After the loopback rule, before the redirect. */
	assert_non_null(strstr(got,
		"-A PILLION_OUTPUT -d 127.0.0.1/32 " C("loopback goes direct") " -j RETURN\n"
		"-A PILLION_OUTPUT -p tcp -m multiport --dports 5432,6379:6380 " C("skipped outbound ports") " -j RETURN\n"
		"-A PILLION_OUTPUT " C("outbound to the proxy") " -j PILLION_REDIRECT\n"));
	free(got);
}

static void test_include_inbound_ports(void **state)
{
	(void)state;
	char err[256];
	char *got;

	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--include-inbound-ports", "8080,9000-9100", NULL), 0);
	got = build(AF_INET, NULL);
	assert_lines(got, "-A PILLION_INBOUND",
		     "-A PILLION_INBOUND -p tcp -m multiport --dports 15420,15401,15406 "
		     C("skip admin, proxy and skipped inbound ports") " -j RETURN\n"
		     "-A PILLION_INBOUND -p tcp -m multiport --dports 8080,9000:9100 "
		     C("included inbound ports to the proxy") " -j PILLION_IN_REDIRECT\n");
	free(got);

	/* Empty: nothing inbound is redirected; "*" is the default. */
	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--include-inbound-ports=", NULL), 0);
	got = build(AF_INET, NULL);
	assert_lines(got, "-A PILLION_INBOUND -p tcp -m comment", "");
	assert_lines(got, "-A PILLION_INBOUND -p tcp -m multiport --dports 8080", "");
	free(got);
	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--include-inbound-ports", "*", NULL), 0);
	assert_true(cfg.include_inbound_ports.all);
}

/* ---------- CIDRs ---------- */

static void test_skip_cidrs_by_family(void **state)
{
	(void)state;
	char err[256];
	char *v4, *v6;

	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--skip-outbound-cidrs",
			       "10.1.2.3/8, 2001:db8::1/32,192.168.1.7,fd00::1", NULL), 0);
	v4 = build(AF_INET, NULL);
	v6 = build(AF_INET6, NULL);
	/* Host bits are cleared; a bare address is one host. */
	assert_lines(v4, "-A PILLION_OUTPUT -d 1",
		     "-A PILLION_OUTPUT -d 127.0.0.1/32 " C("loopback goes direct") " -j RETURN\n"
		     "-A PILLION_OUTPUT -d 10.0.0.0/8 " C("skipped outbound CIDR") " -j RETURN\n"
		     "-A PILLION_OUTPUT -d 192.168.1.7/32 " C("skipped outbound CIDR") " -j RETURN\n");
	assert_lines(v6, "-A PILLION_OUTPUT -d ",
		     "-A PILLION_OUTPUT -d ::1/128 " C("loopback goes direct") " -j RETURN\n"
		     "-A PILLION_OUTPUT -d 2001:db8::/32 " C("skipped outbound CIDR") " -j RETURN\n"
		     "-A PILLION_OUTPUT -d fd00::1/128 " C("skipped outbound CIDR") " -j RETURN\n");
	assert_null(strstr(v4, "2001:db8"));
	assert_null(strstr(v6, "10.0.0.0"));
	free(v4);
	free(v6);
}

static void test_include_outbound_cidrs(void **state)
{
	(void)state;
	char err[256];
	char *v4, *v6;

	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--include-outbound-cidrs", "10.96.0.0/12,172.16.0.0/16",
			       "--skip-outbound-cidrs", "10.96.0.10", NULL), 0);
	v4 = build(AF_INET, NULL);
	v6 = build(AF_INET6, NULL);
	assert_lines(v4, "-A PILLION_OUTPUT -d 1",
		     "-A PILLION_OUTPUT -d 127.0.0.1/32 " C("loopback goes direct") " -j RETURN\n"
		     "-A PILLION_OUTPUT -d 10.96.0.10/32 " C("skipped outbound CIDR") " -j RETURN\n"
		     "-A PILLION_OUTPUT -d 10.96.0.0/12 " C("included outbound CIDR to the proxy") " -j PILLION_REDIRECT\n"
		     "-A PILLION_OUTPUT -d 172.16.0.0/16 " C("included outbound CIDR to the proxy") " -j PILLION_REDIRECT\n");
	/* Nothing else is redirected: no catch-all jump, in either family. */
	assert_null(strstr(v4, "-A PILLION_OUTPUT " C("outbound to the proxy")));
	assert_null(strstr(v6, "-A PILLION_OUTPUT " C("outbound to the proxy")));
	assert_null(strstr(v6, "included outbound CIDR"));
	free(v4);
	free(v6);

	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--include-outbound-cidrs=*", NULL), 0);
	v4 = build(AF_INET, NULL);
	assert_non_null(strstr(v4, "-A PILLION_OUTPUT " C("outbound to the proxy") " -j PILLION_REDIRECT\n"));
	free(v4);
}

/* ---------- jumps and existing state ---------- */

static const char save_with_jumps[] =
	"# Generated by iptables-save v1.8.9 on Sun Nov 22 17:11:13 2026\n"
	"*nat\n"
	":PREROUTING ACCEPT [0:0]\n"
	":INPUT ACCEPT [0:0]\n"
	":OUTPUT ACCEPT [0:0]\n"
	":POSTROUTING ACCEPT [0:0]\n"
	":PILLION_INBOUND - [0:0]\n"
	":PILLION_OUTPUT - [0:0]\n"
	"-A PREROUTING -p tcp -m comment --comment \"pillion: pod inbound\" -j PILLION_INBOUND\n"
	"-A PREROUTING -p udp -m comment --comment \"not ours -j PILLION_INBOUND\" -j RETURN\n"
	"-A OUTPUT -p tcp -j PILLION_OUTPUT\n"
	"-A POSTROUTING -o eth0 -j MASQUERADE\n"
	"-A PILLION_INBOUND -p tcp -j PILLION_IN_REDIRECT\n"
	"COMMIT\n";

static void test_jumps_omitted_when_present(void **state)
{
	(void)state;
	struct init_rules_stats st;
	pl_buf b = PL_BUF_INIT;

	defaults();
	init_rules_build(&cfg, AF_INET, save_with_jumps, &b, &st);
	assert_lines(b.data, "-A PREROUTING", "");
	assert_lines(b.data, "-A OUTPUT", "");
	assert_int_equal(st.jumps_added, 0);
	assert_int_equal(st.jumps_present, 2);
	assert_int_equal(st.rules, 12);
	/* Our chains are still declared, so they are flushed and rebuilt. */
	assert_non_null(strstr(b.data, ":PILLION_INBOUND - [0:0]\n"));
	pl_buf_free(&b);

	/* Only PREROUTING's jump present: OUTPUT's is added. A comment mentioning the target is no jump. */
	b = (pl_buf)PL_BUF_INIT;
	init_rules_build(&cfg, AF_INET,
			 "*nat\n-A PREROUTING -p tcp -j PILLION_INBOUND\n"
			 "-A OUTPUT -m comment --comment \"x -j PILLION_OUTPUT\" -j RETURN\nCOMMIT\n", &b, &st);
	assert_lines(b.data, "-A PREROUTING", "");
	assert_lines(b.data, "-A OUTPUT", "-A OUTPUT -p tcp " C("pod outbound") " -j PILLION_OUTPUT\n");
	assert_int_equal(st.jumps_added, 1);
	pl_buf_free(&b);
}

static void test_has_jump_and_count(void **state)
{
	(void)state;
	assert_true(init_rules_has_jump(save_with_jumps, "PREROUTING", "PILLION_INBOUND"));
	assert_true(init_rules_has_jump(save_with_jumps, "OUTPUT", "PILLION_OUTPUT"));
	assert_false(init_rules_has_jump(save_with_jumps, "OUTPUT", "PILLION_INBOUND"));
	assert_false(init_rules_has_jump(save_with_jumps, "PREROUTING", "PILLION_IN"));
	assert_false(init_rules_has_jump(NULL, "OUTPUT", "PILLION_OUTPUT"));
	assert_false(init_rules_has_jump("", "OUTPUT", "PILLION_OUTPUT"));
	/* CRLF and no trailing newline */
	assert_true(init_rules_has_jump("-A OUTPUT -j PILLION_OUTPUT\r\n", "OUTPUT", "PILLION_OUTPUT"));
	assert_true(init_rules_has_jump("-A OUTPUT -j PILLION_OUTPUT", "OUTPUT", "PILLION_OUTPUT"));
	assert_int_equal(init_rules_count(save_with_jumps), 5);
	assert_int_equal(init_rules_count(NULL), 0);
	assert_int_equal(init_rules_count("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"), 0);
}

static void test_cleanup_text(void **state)
{
	(void)state;
	struct init_rules_stats st;
	pl_buf b = PL_BUF_INIT;

	init_rules_cleanup(save_with_jumps, &b, &st);
	assert_string_equal(b.data,
		"*nat\n"
		"-D PREROUTING -p tcp -m comment --comment \"pillion: pod inbound\" -j PILLION_INBOUND\n"
		"-D OUTPUT -p tcp -j PILLION_OUTPUT\n"
		":PILLION_INBOUND - [0:0]\n"
		":PILLION_IN_REDIRECT - [0:0]\n"
		":PILLION_OUTPUT - [0:0]\n"
		":PILLION_REDIRECT - [0:0]\n"
		"-X PILLION_INBOUND\n"
		"-X PILLION_IN_REDIRECT\n"
		"-X PILLION_OUTPUT\n"
		"-X PILLION_REDIRECT\n"
		"COMMIT\n");
	assert_int_equal(st.jumps_deleted, 2);
	pl_buf_free(&b);

	/* Nothing installed: still valid input that creates and deletes the chains. */
	b = (pl_buf)PL_BUF_INIT;
	init_rules_cleanup(NULL, &b, &st);
	assert_int_equal(st.jumps_deleted, 0);
	assert_lines(b.data, "-D", "");
	assert_non_null(strstr(b.data, "-X PILLION_REDIRECT\nCOMMIT\n"));
	pl_buf_free(&b);
}

static void test_probe_text(void **state)
{
	(void)state;
	pl_buf b = PL_BUF_INIT;

	init_rules_probe(INIT_PROBE_NAT, &b);
	assert_string_equal(b.data, "*nat\n:PILLION_PROBE - [0:0]\nCOMMIT\n");
	pl_buf_reset(&b);
	init_rules_probe(INIT_PROBE_OWNER, &b);
	assert_string_equal(b.data, "*nat\n:PILLION_PROBE - [0:0]\n-A PILLION_PROBE -m owner --uid-owner 1407 -j RETURN\nCOMMIT\n");
	pl_buf_reset(&b);
	init_rules_probe(INIT_PROBE_ALL, &b);
	assert_int_equal(init_rules_count(b.data), 4);
	pl_buf_reset(&b);
	init_rules_probe_remove(&b);
	assert_string_equal(b.data, "*nat\n:PILLION_PROBE - [0:0]\n-X PILLION_PROBE\nCOMMIT\n");
	pl_buf_free(&b);
}

/* ---------- flag and environment parsing ---------- */

static void test_parse_defaults(void **state)
{
	(void)state;
	defaults();
	assert_int_equal(cfg.proxy_uid, 1407);
	assert_int_equal(cfg.proxy_gid, 1407);
	assert_int_equal(cfg.outbound_port, 15401);
	assert_int_equal(cfg.inbound_port, 15406);
	assert_int_equal(cfg.admin_port, 15420);
	assert_true(cfg.ipv6);
	assert_true(cfg.include_inbound_ports.all);
	assert_true(cfg.include_outbound_cidrs.all);
	assert_int_equal(cfg.skip_inbound_ports.n, 0);
	assert_int_equal(cfg.backend, INIT_BACKEND_AUTO);
	assert_false(cfg.dry_run);
	assert_false(cfg.cleanup);
	assert_false(cfg.allow_host_netns);
}

static void test_parse_env_and_override(void **state)
{
	(void)state;
	char err[256];
	struct fake_env env = {{
		{"PILLION_SKIP_INBOUND_PORTS", "22,8000-8010"},
		{"PILLION_PROXY_UID", "2000"},
		{"PILLION_IPV6", "false"},
		{"PILLION_BACKEND", "legacy"},
		{"PILLION_DRY_RUN", "true"},
		{"PILLION_INBOUND_PORT", ""}, /* empty counts as unset */
		{"PILLION_SKIP_OUTBOUND_CIDRS", "10.0.0.0/8"},
	}};

	assert_int_equal(parse(&cfg, &env, err, sizeof(err), NULL), 0);
	assert_int_equal(cfg.proxy_uid, 2000);
	assert_false(cfg.ipv6);
	assert_int_equal(cfg.backend, INIT_BACKEND_LEGACY);
	assert_true(cfg.dry_run);
	assert_int_equal(cfg.inbound_port, 15406);
	assert_int_equal(cfg.skip_inbound_ports.n, 2);
	assert_int_equal(cfg.skip_inbound_ports.r[1].lo, 8000);
	assert_int_equal(cfg.skip_inbound_ports.r[1].hi, 8010);
	assert_int_equal(cfg.skip_outbound_cidrs.n, 1);

	/* The command line wins over the environment. */
	assert_int_equal(parse(&cfg, &env, err, sizeof(err), "--proxy-uid", "3000", "--ipv6", "--backend=nft",
			       "--skip-inbound-ports=", "--dry-run=false", NULL), 0);
	assert_int_equal(cfg.proxy_uid, 3000);
	assert_true(cfg.ipv6);
	assert_int_equal(cfg.backend, INIT_BACKEND_NFT);
	assert_int_equal(cfg.skip_inbound_ports.n, 0);
	assert_false(cfg.dry_run);

	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--ipv6", "false", "--cleanup", NULL), 0);
	assert_false(cfg.ipv6);
	assert_true(cfg.cleanup);
	assert_false(cfg.allow_host_netns);
	env = (struct fake_env){{{"PILLION_ALLOW_HOST_NETNS", "yes"}}};
	assert_int_equal(parse(&cfg, &env, err, sizeof(err), NULL), 0);
	assert_true(cfg.allow_host_netns);
	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--ipv6=true", "--no-ipv6", NULL), 0);
	assert_false(cfg.ipv6);
	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "--help", "--bogus-later-is-still-checked", NULL), -EINVAL);
	assert_int_equal(parse(&cfg, NULL, err, sizeof(err), "-h", NULL), 0);
	assert_true(cfg.help);
}

struct bad_case {
	const char *env_name, *env_value; /* or NULL */
	const char *args[4];
	const char *want;
};

static void test_parse_errors(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{NULL, NULL, {"--skip-outbound-cidrs", "10.0.0.0/33"},
		 "--skip-outbound-cidrs: \"10.0.0.0/33\": prefix length must be 0..32 for IPv4"},
		{NULL, NULL, {"--skip-outbound-cidrs=10.0.0.0/8,2001:db8::/129"},
		 "--skip-outbound-cidrs: \"2001:db8::/129\": prefix length must be 0..128 for IPv6"},
		{NULL, NULL, {"--include-outbound-cidrs", "10.0.0/8"},
		 "--include-outbound-cidrs: \"10.0.0/8\": not an IPv4 or IPv6 address"},
		{NULL, NULL, {"--skip-outbound-cidrs", "10.0.0.0/"},
		 "--skip-outbound-cidrs: \"10.0.0.0/\": prefix length must be 0..32 for IPv4"},
		{NULL, NULL, {"--skip-outbound-cidrs", "*"},
		 "--skip-outbound-cidrs: \"*\": not allowed here, list the CIDRs"},
		{NULL, NULL, {"--skip-inbound-ports", "80,0"}, "--skip-inbound-ports: \"0\": port must be 1..65535"},
		{NULL, NULL, {"--skip-inbound-ports", "80,65536"}, "--skip-inbound-ports: \"65536\": port must be 1..65535"},
		{NULL, NULL, {"--skip-inbound-ports", "http"}, "--skip-inbound-ports: \"http\": not a port number"},
		{NULL, NULL, {"--skip-inbound-ports", "90-80"},
		 "--skip-inbound-ports: \"90-80\": range start must not be greater than its end"},
		{NULL, NULL, {"--skip-outbound-ports", "80,,81"}, "--skip-outbound-ports: \"80,,81\": empty entry in the list"},
		{NULL, NULL, {"--skip-outbound-ports", "*"}, "--skip-outbound-ports: \"*\": not allowed here, list the ports"},
		{NULL, NULL, {"--include-inbound-ports", "-5"},
		 "--include-inbound-ports: \"-5\": a range needs two ports 1..65535 (a-b or a:b)"},
		{NULL, NULL, {"--include-inbound-ports", "1-70000"},
		 "--include-inbound-ports: \"1-70000\": a range needs two ports 1..65535 (a-b or a:b)"},
		{NULL, NULL, {"--inbound-port", "+80"}, "--inbound-port: \"+80\": not a port number"},
		{NULL, NULL, {"--proxy-uid", "-1"}, "--proxy-uid: \"-1\": must be a numeric id 0..4294967294"},
		{NULL, NULL, {"--proxy-gid", "proxy"}, "--proxy-gid: \"proxy\": must be a numeric id 0..4294967294"},
		{NULL, NULL, {"--ipv6=maybe"}, "--ipv6: \"maybe\": must be true or false"},
		{NULL, NULL, {"--backend", "iptables"}, "--backend: \"iptables\": must be one of auto, legacy, nft"},
		{NULL, NULL, {"--frobnicate"}, "unknown flag \"--frobnicate\" (see --help)"},
		{NULL, NULL, {"--dry-run", "extra"}, "unexpected argument \"extra\" (flags start with --; see --help)"},
		{NULL, NULL, {"--proxy-uid"}, "--proxy-uid: needs a value"},
		{NULL, NULL, {"--inbound-port", "15401"}, "--inbound-port: \"15401\": must differ from --outbound-port"},
		{NULL, NULL, {"--admin-port", "15406"},
		 "--admin-port: \"15406\": must differ from --inbound-port and --outbound-port"},
		{"PILLION_SKIP_INBOUND_PORTS", "22,abc", {NULL},
		 "PILLION_SKIP_INBOUND_PORTS: \"abc\": not a port number"},
		{"PILLION_SKIP_OUTBOUND_CIDRS", "10.0.0.0/33", {NULL},
		 "PILLION_SKIP_OUTBOUND_CIDRS: \"10.0.0.0/33\": prefix length must be 0..32 for IPv4"},
		{"PILLION_PROXY_UID", "root", {NULL}, "PILLION_PROXY_UID: \"root\": must be a numeric id 0..4294967294"},
		{"PILLION_IPV6", "nope", {NULL}, "PILLION_IPV6: \"nope\": must be true or false"},
		{"PILLION_DRY_RUN", "2", {NULL}, "PILLION_DRY_RUN: \"2\": must be true or false"},
		/* A bad environment value fails even if the flag would override it: the pod spec is wrong. */
		{"PILLION_BACKEND", "xt", {"--backend", "nft"}, "PILLION_BACKEND: \"xt\": must be one of auto, legacy, nft"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		struct fake_env env = {{{c->env_name, c->env_value}}};
		char err[256] = "";
		int rc = parse(&cfg, c->env_name ? &env : NULL, err, sizeof(err),
			       c->args[0], c->args[1], c->args[2], c->args[3], NULL);

		if (rc != -EINVAL || strcmp(err, c->want) != 0)
			print_error("case %zu: rc %d, want error\n  %s\ngot\n  %s\n", i, rc, c->want, err);
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(err, c->want);
	}
}

static void test_parse_list_values(void **state)
{
	(void)state;
	struct init_port_list pl;
	struct init_cidr_list cl;
	char err[256], text[64];

	assert_int_equal(init_parse_ports("1, 65535,10:20,30-30", false, &pl, err, sizeof(err)), 0);
	assert_int_equal(pl.n, 4);
	assert_int_equal(pl.r[1].lo, 65535);
	assert_int_equal(pl.r[2].lo, 10);
	assert_int_equal(pl.r[2].hi, 20);
	assert_int_equal(pl.r[3].lo, pl.r[3].hi);
	assert_int_equal(init_parse_ports("", false, &pl, err, sizeof(err)), 0);
	assert_int_equal(pl.n, 0);
	assert_false(pl.all);

	assert_int_equal(init_parse_cidrs("0.0.0.0/0,::/0,255.255.255.255/31,2001:DB8:0:0:1::/64", false, &cl, err,
					  sizeof(err)), 0);
	assert_int_equal(cl.n, 4);
	init_cidr_format(&cl.c[0], text, sizeof(text));
	assert_string_equal(text, "0.0.0.0/0");
	init_cidr_format(&cl.c[1], text, sizeof(text));
	assert_string_equal(text, "::/0");
	init_cidr_format(&cl.c[2], text, sizeof(text));
	assert_string_equal(text, "255.255.255.254/31");
	init_cidr_format(&cl.c[3], text, sizeof(text));
	assert_string_equal(text, "2001:db8::/64");
	assert_int_equal(init_parse_cidrs("10.0.0.1/24x", false, &cl, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "\"10.0.0.1/24x\": prefix length must be 0..32 for IPv4");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_v4),
		cmocka_unit_test(test_default_v6),
		cmocka_unit_test(test_custom_ids_and_ports),
		cmocka_unit_test(test_skip_inbound_chunks),
		cmocka_unit_test(test_chunks_never_exceed_15),
		cmocka_unit_test(test_skip_outbound_ports),
		cmocka_unit_test(test_include_inbound_ports),
		cmocka_unit_test(test_skip_cidrs_by_family),
		cmocka_unit_test(test_include_outbound_cidrs),
		cmocka_unit_test(test_jumps_omitted_when_present),
		cmocka_unit_test(test_has_jump_and_count),
		cmocka_unit_test(test_cleanup_text),
		cmocka_unit_test(test_probe_text),
		cmocka_unit_test(test_parse_defaults),
		cmocka_unit_test(test_parse_env_and_override),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_list_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
