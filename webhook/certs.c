/* The serving certificate: reads the mounted pair, checks it, stages it in memfds for the TLS library; inotify on its directories. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sha256.h"
#include "pki/ca.h"
#include "webhook.h"

#define PEM_MAX (1u << 20)
#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_ATTRIB | \
		    IN_DELETE_SELF | IN_MOVE_SELF)

static void sig_of(const char *path, wh_file_sig *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0)
		return;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = (uint64_t)st.st_size;
	s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	s->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
	s->ok = true;
}

static bool sig_eq(const wh_file_sig *a, const wh_file_sig *b)
{
	return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* Frees a buffer that held a private key, wiping it first. */
static void buf_wipe(pl_buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	pl_buf_free(b);
}

static int memfd_put(int fd, const pl_buf *b)
{
	size_t off = 0;

	if (ftruncate(fd, 0) < 0)
		return -errno;
	while (off < b->len) {
		ssize_t n = pwrite(fd, b->data + off, b->len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

static void digest_of(const pl_buf *cert, const pl_buf *key, unsigned char out[32])
{
	pl_sha256 h;
	unsigned char sep = 0;

	pl_sha256_init(&h);
	pl_sha256_update(&h, cert->data, cert->len);
	pl_sha256_update(&h, &sep, 1);
	pl_sha256_update(&h, key->data, key->len);
	pl_sha256_final(&h, out);
}

bool wh_certs_changed_on_disk(wh_certs *c)
{
	wh_file_sig now[2];

	sig_of(c->cert_path, &now[0]);
	sig_of(c->key_path, &now[1]);
	return !sig_eq(&now[0], &c->sig[0]) || !sig_eq(&now[1], &c->sig[1]);
}

int wh_certs_stage(wh_certs *c, char *err, size_t errlen)
{
	pl_buf cert = PL_BUF_INIT, key = PL_BUF_INIT;
	unsigned char digest[32];
	wh_file_sig sig[2];
	int64_t not_before, not_after;
	int rc;

	/* Before reading: a change racing the read then shows up at the next check. */
	sig_of(c->cert_path, &sig[0]);
	sig_of(c->key_path, &sig[1]);
	if ((rc = pl_buf_read_file(&cert, c->cert_path, PEM_MAX)) < 0) {
		snprintf(err, errlen, "%s: %s", c->cert_path, strerror(-rc));
		goto fail;
	}
	if ((rc = pl_buf_read_file(&key, c->key_path, PEM_MAX)) < 0) {
		snprintf(err, errlen, "%s: %s", c->key_path, strerror(-rc));
		goto fail;
	}
	digest_of(&cert, &key, digest);
	if (memcmp(digest, c->digest, sizeof(digest)) == 0) {
		memcpy(c->sig, sig, sizeof(sig));
		pl_buf_free(&cert);
		buf_wipe(&key);
		return 0;
	}
	if (pl_cert_times(cert.data, cert.len, &not_before, &not_after, NULL, 0) != 0) {
		snprintf(err, errlen, "%s: no PEM certificate", c->cert_path);
		goto fail;
	}
	/* A writer that is not atomic (not the kubelet) may be between the two files. */
	if (!pl_cert_key_matches(cert.data, cert.len, key.data, key.len)) {
		snprintf(err, errlen, "%s does not hold the private key of %s", c->key_path, c->cert_path);
		goto fail;
	}
	if ((rc = memfd_put(c->mem_cert, &cert)) < 0 || (rc = memfd_put(c->mem_key, &key)) < 0) {
		snprintf(err, errlen, "memfd: %s", strerror(-rc));
		goto fail;
	}
	pl_buf_free(&c->prev_cert);
	buf_wipe(&c->prev_key);
	c->prev_cert = c->cert;
	c->prev_key = c->key;
	c->cert = cert;
	c->key = key;
	memcpy(c->digest, digest, sizeof(digest));
	memcpy(c->sig, sig, sizeof(sig));
	c->not_after = not_after;
	return 1;
fail:
	pl_buf_free(&cert);
	buf_wipe(&key);
	return -1;
}

int wh_certs_rollback(wh_certs *c)
{
	pl_buf t;
	int64_t not_before;

	if (!c->prev_cert.data || memfd_put(c->mem_cert, &c->prev_cert) < 0 || memfd_put(c->mem_key, &c->prev_key) < 0)
		return -1;
	t = c->cert, c->cert = c->prev_cert, c->prev_cert = t;
	t = c->key, c->key = c->prev_key, c->prev_key = t;
	digest_of(&c->cert, &c->key, c->digest);
	if (pl_cert_times(c->cert.data, c->cert.len, &not_before, &c->not_after, NULL, 0) != 0)
		c->not_after = 0;
	/* The refused pair is still on disk: forget its signature so the next check tries it again. */
	memset(c->sig, 0, sizeof(c->sig));
	return 0;
}

int wh_certs_init(wh_certs *c, const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->cert_path = cert_path;
	c->key_path = key_path;
	c->inotify_fd = -1;
	c->wd[0] = c->wd[1] = -1;
	c->mem_cert = c->mem_key = -1;
	c->mem_cert = memfd_create("pillion-webhook-tls.crt", MFD_CLOEXEC);
	c->mem_key = memfd_create("pillion-webhook-tls.key", MFD_CLOEXEC);
	if (c->mem_cert < 0 || c->mem_key < 0) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		wh_certs_free(c);
		return -1;
	}
	snprintf(c->mem_cert_path, sizeof(c->mem_cert_path), "/proc/self/fd/%d", c->mem_cert);
	snprintf(c->mem_key_path, sizeof(c->mem_key_path), "/proc/self/fd/%d", c->mem_key);
	if (wh_certs_stage(c, err, errlen) != 1) {
		wh_certs_free(c);
		return -1;
	}
	return 0;
}

void wh_certs_free(wh_certs *c)
{
	if (c->mem_cert >= 0)
		close(c->mem_cert);
	if (c->mem_key >= 0)
		close(c->mem_key);
	if (c->inotify_fd >= 0)
		close(c->inotify_fd);
	pl_buf_free(&c->cert);
	pl_buf_free(&c->prev_cert);
	buf_wipe(&c->key);
	buf_wipe(&c->prev_key);
	c->mem_cert = c->mem_key = c->inotify_fd = -1;
}

/* The directory of path into out. */
static void dir_of(const char *path, char *out, size_t size)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(out, size, "%s", dirname(tmp));
}

int wh_certs_watch(wh_certs *c)
{
	char dirs[2][PATH_MAX];

	if (c->inotify_fd < 0)
		c->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->inotify_fd < 0)
		return -1;
	dir_of(c->cert_path, dirs[0], sizeof(dirs[0]));
	dir_of(c->key_path, dirs[1], sizeof(dirs[1]));
	for (int i = 0; i < 2; i++) {
		if (i == 1 && strcmp(dirs[0], dirs[1]) == 0)
			break;
		if (c->wd[i] < 0)
			c->wd[i] = inotify_add_watch(c->inotify_fd, dirs[i], WATCH_MASK);
	}
	return c->inotify_fd;
}

bool wh_certs_watch_read(wh_certs *c)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;

	for (int rounds = 0; rounds < 64; rounds++) {
		ssize_t n = read(c->inotify_fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
			for (int i = 0; i < 2; i++)
				if ((ev->mask & IN_IGNORED) && ev->wd == c->wd[i])
					c->wd[i] = -1;
			any = true;
			off += (ssize_t)sizeof(*ev) + ev->len;
		}
	}
	wh_certs_watch(c);
	return any;
}
