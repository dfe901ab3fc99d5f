/* pillion-init runtime: picks the iptables backend, probes the kernel and feeds iptables-restore. */
#include "apply.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "rules.h"

/* iptables-restore normally finishes in milliseconds; a stuck one must not hang pod start forever. */
#define RUN_TIMEOUT_MS 60000
#define OUTPUT_MAX (16u << 20)
/* Seconds legacy iptables waits for the xtables lock (nft ignores it). */
#define XTABLES_WAIT "10"

static const int all_families[] = {AF_INET, AF_INET6};

/* Inode numbers of the initial namespaces (include/linux/proc_ns.h); the net one is fixed only on
 * recent kernels, dynamic (and never this value) before. */
#define PROC_PID_INIT_INO 0xEFFFFFFCU
#define PROC_NET_INIT_INO 0xEFFFFFF9U

/*
 * True when we surely run in the host's network namespace, where the rules would hijack every TCP
 * connection of the node (a stray run, or a hostNetwork pod). When unsure, false.
 */
static bool in_host_netns(void)
{
	struct stat net, pid, init;

	if (stat("/proc/self/ns/net", &net) < 0)
		return false;
	if (net.st_ino == PROC_NET_INIT_INO)
		return true;
	if (stat("/proc/self/ns/pid", &pid) < 0 || pid.st_ino != PROC_PID_INIT_INO)
		return false;
	if (stat("/proc/1/ns/net", &init) < 0)
		return false;
	return net.st_dev == init.st_dev && net.st_ino == init.st_ino;
}

static const char *family_label(int family)
{
	return family == AF_INET6 ? "IPv6" : "IPv4";
}

/* "iptables-nft-restore", "ip6tables-legacy-save", "iptables-nft" (what == NULL). */
static void tool_name(char *out, size_t outlen, int family, enum init_backend b, const char *what)
{
	snprintf(out, outlen, "%s-%s%s%s", family == AF_INET6 ? "ip6tables" : "iptables", init_backend_name(b),
		 what ? "-" : "", what ? what : "");
}

static bool in_path(const char *name)
{
	const char *path = getenv("PATH");
	const char *p;

	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (p = path;;) {
		const char *colon = strchr(p, ':');
		size_t len = colon ? (size_t)(colon - p) : strlen(p);
		char full[PATH_MAX];
		struct stat st;
		int n = snprintf(full, sizeof(full), "%.*s/%s", (int)(len ? len : 1), len ? p : ".", name);

		if (n > 0 && (size_t)n < sizeof(full) && stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(full, X_OK) == 0)
			return true;
		if (!colon)
			return false;
		p = colon + 1;
	}
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Runs argv (searched in PATH, no shell) with input on its stdin, collecting stdout into out and
 * stderr into err. Returns its exit status, 128+signal, or -errno when it could not be run.
 */
static int run_cmd(char *const argv[], const char *input, pl_buf *out, pl_buf *err)
{
	int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
	size_t in_len = input ? strlen(input) : 0, in_off = 0;
	long long deadline = now_ms() + RUN_TIMEOUT_MS;
	bool timed_out = false;
	int status, rc;
	pid_t pid;

	if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto fail;
	}
	if (pid == 0) {
		if (dup2(in_p[0], 0) < 0 || dup2(out_p[1], 1) < 0 || dup2(err_p[1], 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in_p[0]);
	close(out_p[1]);
	close(err_p[1]);
	in_p[0] = out_p[1] = err_p[1] = -1;
	fcntl(in_p[1], F_SETFL, O_NONBLOCK);
	if (in_len == 0) {
		close(in_p[1]);
		in_p[1] = -1;
	}

	while (out_p[0] >= 0 || err_p[0] >= 0 || in_p[1] >= 0) {
		struct pollfd fds[3] = {
			{in_p[1], POLLOUT, 0}, {out_p[0], POLLIN, 0}, {err_p[0], POLLIN, 0},
		};
		long long left = deadline - now_ms();
		int n;

		if (left <= 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		n = poll(fds, 3, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (in_p[1] >= 0 && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(in_p[1], input + in_off, in_len - in_off);

			if (w > 0)
				in_off += (size_t)w;
			/* EPIPE: the child quit reading; its exit status says why. */
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
				close(in_p[1]);
				in_p[1] = -1;
			}
		}
		for (int i = 1; i < 3; i++) {
			int *fd = i == 1 ? &out_p[0] : &err_p[0];
			pl_buf *dst = i == 1 ? out : err;
			char chunk[4096];
			ssize_t r;

			if (*fd < 0 || !(fds[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			r = read(*fd, chunk, sizeof(chunk));
			if (r > 0 && dst && dst->len + (size_t)r <= OUTPUT_MAX)
				pl_buf_append(dst, chunk, (size_t)r);
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			rc = -errno;
			goto fail;
		}
	}
	if (timed_out) {
		if (err)
			pl_buf_printf(err, "%s: killed after %d seconds", argv[0], RUN_TIMEOUT_MS / 1000);
		rc = 128 + SIGKILL;
	} else if (WIFEXITED(status)) {
		rc = WEXITSTATUS(status);
	} else {
		rc = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
fail:
	for (int i = 0; i < 2; i++) {
		if (in_p[i] >= 0)
			close(in_p[i]);
		if (out_p[i] >= 0)
			close(out_p[i]);
		if (err_p[i] >= 0)
			close(err_p[i]);
	}
	return rc;
}

/* A child's stderr as one line for our own message. */
static const char *one_line(pl_buf *b)
{
	if (!b->data || b->len == 0)
		return "no error output";
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] == '\n')
			b->data[i] = i + 1 == b->len ? '\0' : ' ';
	while (b->len > 0 && (b->data[b->len - 1] == '\0' || b->data[b->len - 1] == ' '))
		b->data[--b->len] = '\0';
	return b->len ? b->data : "no error output";
}

struct family_state {
	int family;
	char save_tool[64], restore_tool[64];
	pl_buf save;        /* iptables-save -t nat output */
	bool save_ok;
	pl_buf save_err;
};

/* Runs `<tool> -t nat`; 0 or the failure code with stderr in err. */
static int read_nat(const char *tool, pl_buf *out, pl_buf *err)
{
	char *argv[] = {(char *)tool, "-t", "nat", NULL};

	pl_buf_reset(out);
	return run_cmd(argv, NULL, out, err);
}

static int restore(const char *tool, const char *input, pl_buf *err)
{
	char *argv[] = {(char *)tool, "--noflush", "--wait", XTABLES_WAIT, NULL};

	return run_cmd(argv, input, NULL, err);
}

/* The first tool backend b lacks for the families in use, or NULL when it has them all. */
static const char *missing_tool(const struct init_config *cfg, enum init_backend b, char *buf, size_t buflen)
{
	static const char *const whats[] = {"restore", "save"};

	for (size_t f = 0; f < (cfg->ipv6 ? 2u : 1u); f++) {
		for (size_t w = 0; w < 2; w++) {
			tool_name(buf, buflen, all_families[f], b, whats[w]);
			if (!in_path(buf))
				return buf;
		}
	}
	return NULL;
}

static unsigned count_rules(const struct init_config *cfg, enum init_backend b)
{
	unsigned n = 0;

	for (size_t f = 0; f < (cfg->ipv6 ? 2u : 1u); f++) {
		char tool[64];
		pl_buf out = PL_BUF_INIT;

		tool_name(tool, sizeof(tool), all_families[f], b, "save");
		if (read_nat(tool, &out, NULL) == 0)
			n += init_rules_count(out.data);
		pl_buf_free(&out);
	}
	return n;
}

/*
 * auto: the backend already holding nat rules wins (kube-proxy, CNI or an earlier run chose it);
 * when both do, the one with more; otherwise nft. A backend whose tools are missing is out.
 * In dry-run a missing backend is not an error: the output is then as for a fresh pod.
 */
static int choose_backend(const struct init_config *cfg, enum init_backend *out, bool *tools_ok)
{
	char miss_l[64], miss_n[64];
	const char *ml = missing_tool(cfg, INIT_BACKEND_LEGACY, miss_l, sizeof(miss_l));
	const char *mn = missing_tool(cfg, INIT_BACKEND_NFT, miss_n, sizeof(miss_n));

	*tools_ok = true;
	if (cfg->backend != INIT_BACKEND_AUTO) {
		const char *m = cfg->backend == INIT_BACKEND_LEGACY ? ml : mn;

		*out = cfg->backend;
		if (m && !cfg->dry_run) {
			fprintf(stderr, "pillion-init: %s not found in PATH (--backend=%s)\n", m,
				init_backend_name(cfg->backend));
			return -ENOENT;
		}
		*tools_ok = m == NULL;
		return 0;
	}
	if (ml && mn) {
		*out = INIT_BACKEND_NFT;
		if (cfg->dry_run) {
			*tools_ok = false;
			return 0;
		}
		fprintf(stderr, "pillion-init: no usable iptables: %s and %s not found in PATH\n", mn, ml);
		return -ENOENT;
	}
	if (ml || mn) {
		*out = ml ? INIT_BACKEND_NFT : INIT_BACKEND_LEGACY;
		return 0;
	}
	{
		unsigned legacy = count_rules(cfg, INIT_BACKEND_LEGACY);
		unsigned nft = count_rules(cfg, INIT_BACKEND_NFT);

		*out = legacy > 0 && legacy >= nft ? INIT_BACKEND_LEGACY : INIT_BACKEND_NFT;
	}
	return 0;
}

static const enum init_probe_piece probe_pieces[] = {
	INIT_PROBE_NAT, INIT_PROBE_REDIRECT, INIT_PROBE_OWNER, INIT_PROBE_MULTIPORT, INIT_PROBE_COMMENT,
};

/* What a failed probe of one piece means, naming the kernel module to look for. */
static void probe_verdict(enum init_probe_piece piece, int family, char *out, size_t outlen)
{
	bool v6 = family == AF_INET6;

	switch (piece) {
	case INIT_PROBE_NAT:
		snprintf(out, outlen, "cannot use the %s table: kernel module %s / nf_nat missing?",
			 v6 ? "IPv6 nat" : "nat", v6 ? "ip6table_nat" : "iptable_nat");
		return;
	case INIT_PROBE_REDIRECT:
		snprintf(out, outlen, "%s: the REDIRECT target is missing: kernel module xt_REDIRECT / nft_redir?",
			 family_label(family));
		return;
	case INIT_PROBE_OWNER:
		snprintf(out, outlen, "%s: the owner match is missing: kernel module xt_owner?", family_label(family));
		return;
	case INIT_PROBE_MULTIPORT:
		snprintf(out, outlen, "%s: the multiport match is missing: kernel module xt_multiport?",
			 family_label(family));
		return;
	case INIT_PROBE_COMMENT:
		snprintf(out, outlen, "%s: the comment match is missing: kernel module xt_comment?",
			 family_label(family));
		return;
	case INIT_PROBE_ALL:
		break;
	}
	snprintf(out, outlen, "%s: probe rules rejected", family_label(family));
}

static int probe_once(const char *tool, enum init_probe_piece piece, pl_buf *err)
{
	pl_buf in = PL_BUF_INIT, rm = PL_BUF_INIT;
	int rc;

	init_rules_probe(piece, &in);
	rc = restore(tool, in.data, err);
	/* Remove the probe chain whatever happened; a failure here changes no verdict. */
	init_rules_probe_remove(&rm);
	(void)restore(tool, rm.data, NULL);
	pl_buf_free(&in);
	pl_buf_free(&rm);
	return rc;
}

/*
 * Checks that the kernel and the tools support everything the rules use, by committing a tiny
 * chain PILLION_PROBE. Normally one round trip; on failure each piece alone names the culprit.
 */
static int probe(const struct family_state *fs)
{
	pl_buf err = PL_BUF_INIT;
	const char *hint = fs->family == AF_INET6 ? " (--ipv6=false turns IPv6 off)" : "";
	int rc = probe_once(fs->restore_tool, INIT_PROBE_ALL, &err);

	if (rc == 0) {
		pl_buf_free(&err);
		return 0;
	}
	if (rc == 127 || rc < 0) {
		fprintf(stderr, "pillion-init: cannot run %s: %s\n", fs->restore_tool, one_line(&err));
		pl_buf_free(&err);
		return -1;
	}
	for (size_t i = 0; i < sizeof(probe_pieces) / sizeof(probe_pieces[0]); i++) {
		char what[256];

		pl_buf_reset(&err);
		if (probe_once(fs->restore_tool, probe_pieces[i], &err) == 0)
			continue;
		probe_verdict(probe_pieces[i], fs->family, what, sizeof(what));
		fprintf(stderr, "pillion-init: %s%s (%s: %s)\n", what, hint, fs->restore_tool, one_line(&err));
		pl_buf_free(&err);
		return -1;
	}
	/* The pieces work alone but not together: report what restore said. */
	pl_buf_reset(&err);
	(void)probe_once(fs->restore_tool, INIT_PROBE_ALL, &err);
	fprintf(stderr, "pillion-init: %s: probe rules rejected%s: %s\n", fs->restore_tool, hint, one_line(&err));
	pl_buf_free(&err);
	return -1;
}

/* Cleanup when restore refuses -X lines: drop them, then delete each chain with the plain tool. */
static int cleanup_fallback(const struct family_state *fs, enum init_backend b, const char *input, pl_buf *err)
{
	static const char *const chains[] = {
		INIT_CHAIN_INBOUND, INIT_CHAIN_IN_REDIRECT, INIT_CHAIN_OUTPUT, INIT_CHAIN_REDIRECT,
	};
	pl_buf noX = PL_BUF_INIT;
	char tool[64];
	const char *p = input;
	int rc;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);

		if (strncmp(p, "-X ", 3) != 0)
			pl_buf_append(&noX, p, len);
		p += len;
	}
	pl_buf_reset(err);
	rc = restore(fs->restore_tool, noX.data, err);
	pl_buf_free(&noX);
	if (rc != 0)
		return rc;
	tool_name(tool, sizeof(tool), fs->family, b, NULL);
	for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
		char *argv[] = {tool, "--wait", XTABLES_WAIT, "-t", "nat", "-X", (char *)chains[i], NULL};

		pl_buf_reset(err);
		rc = run_cmd(argv, NULL, NULL, err);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int apply_family(const struct init_config *cfg, enum init_backend b, struct family_state *fs)
{
	pl_buf in = PL_BUF_INIT, err = PL_BUF_INIT;
	struct init_rules_stats st;
	int rc = 0;

	if (cfg->cleanup)
		init_rules_cleanup(fs->save.data, &in, &st);
	else
		init_rules_build(cfg, fs->family, fs->save.data, &in, &st);

	if (cfg->dry_run) {
		printf("# %s --noflush --wait " XTABLES_WAIT "\n%s", fs->restore_tool, in.data);
		goto out;
	}
	rc = restore(fs->restore_tool, in.data, &err);
	if (rc != 0 && cfg->cleanup) {
		pl_buf err2 = PL_BUF_INIT;

		/* The first error is the one worth reporting if the fallback fails too. */
		if (cleanup_fallback(fs, b, in.data, &err2) == 0)
			rc = 0;
		pl_buf_free(&err2);
	}
	if (rc != 0) {
		fprintf(stderr, "pillion-init: %s: %s --noflush failed (exit %d): %s\n", family_label(fs->family),
			fs->restore_tool, rc, one_line(&err));
		rc = -1;
		goto out;
	}
	if (cfg->cleanup)
		printf("pillion-init: %s: removed chains PILLION_INBOUND, PILLION_IN_REDIRECT, PILLION_OUTPUT, "
		       "PILLION_REDIRECT and %u jump%s with %s\n", family_label(fs->family), st.jumps_deleted,
		       st.jumps_deleted == 1 ? "" : "s", fs->restore_tool);
	else
		printf("pillion-init: %s: backend %s (%s): %u rules in chains PILLION_INBOUND, PILLION_IN_REDIRECT, "
		       "PILLION_OUTPUT, PILLION_REDIRECT; jumps from PREROUTING and OUTPUT: %u added, %u already present\n",
		       family_label(fs->family), init_backend_name(b), fs->restore_tool, st.rules - st.jumps_added,
		       st.jumps_added, st.jumps_present);
out:
	fflush(stdout);
	pl_buf_free(&in);
	pl_buf_free(&err);
	return rc;
}

int init_run(const struct init_config *cfg)
{
	struct family_state fams[2];
	size_t nfam = cfg->ipv6 ? 2 : 1;
	enum init_backend b;
	bool tools_ok;
	int rc = 0;

	if (!cfg->dry_run && !cfg->cleanup && !cfg->allow_host_netns && in_host_netns()) {
		fprintf(stderr, "pillion-init: refusing to install redirect rules in the host's network namespace "
				"(they would redirect all of its TCP); run it in the pod's network namespace, "
				"or pass --allow-host-netns\n");
		return 2;
	}
	if (choose_backend(cfg, &b, &tools_ok) < 0)
		return 1;
	memset(fams, 0, sizeof(fams));
	for (size_t i = 0; i < nfam; i++) {
		struct family_state *fs = &fams[i];

		fs->family = all_families[i];
		tool_name(fs->save_tool, sizeof(fs->save_tool), fs->family, b, "save");
		tool_name(fs->restore_tool, sizeof(fs->restore_tool), fs->family, b, "restore");
	}
	/* Probe every family before changing anything, so a missing IPv6 nat leaves IPv4 untouched too. */
	for (size_t i = 0; i < nfam && !cfg->dry_run && !cfg->cleanup; i++)
		if (probe(&fams[i]) < 0) {
			rc = 1;
			goto out;
		}
	for (size_t i = 0; i < nfam; i++) {
		struct family_state *fs = &fams[i];

		if (tools_ok) {
			int src = read_nat(fs->save_tool, &fs->save, &fs->save_err);

			fs->save_ok = src == 0;
			if (!fs->save_ok && !cfg->dry_run) {
				/* Without the current state the jumps could be added twice. */
				fprintf(stderr, "pillion-init: %s: cannot read the nat table with %s -t nat (exit %d): %s\n",
					family_label(fs->family), fs->save_tool, src, one_line(&fs->save_err));
				rc = 1;
				goto out;
			}
			if (!fs->save_ok)
				pl_buf_reset(&fs->save);
		}
		if (apply_family(cfg, b, fs) < 0) {
			rc = 1;
			goto out;
		}
	}
out:
	for (size_t i = 0; i < nfam; i++) {
		pl_buf_free(&fams[i].save);
		pl_buf_free(&fams[i].save_err);
	}
	return rc;
}
