// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>

#include "log.h"
#include "util.h"

void ph_strlcpy(char *dst, const char *src, size_t len)
{
	size_t n;

	if (!len)
		return;
	n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

__u64 ph_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

__u64 ph_now_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

void ph_fmt_duration(__u64 ns, char *buf, size_t len)
{
	__u64 s = ns / 1000000000ull;

	if (s < 60)
		snprintf(buf, len, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)s / 60,
			 (unsigned long long)s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum",
			 (unsigned long long)s / 3600,
			 (unsigned long long)s % 3600 / 60);
	else
		snprintf(buf, len, "%llud%02lluh",
			 (unsigned long long)s / 86400,
			 (unsigned long long)s % 86400 / 3600);
}

static bool is_v4_mapped(const __u8 a[16])
{
	static const __u8 prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return !memcmp(a, prefix, sizeof(prefix));
}

void ph_fmt_addr(const __u8 addr[16], char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];

	if (is_v4_mapped(addr))
		inet_ntop(AF_INET, addr + 12, tmp, sizeof(tmp));
	else
		inet_ntop(AF_INET6, addr, tmp, sizeof(tmp));
	ph_strlcpy(buf, tmp, len);
}

void ph_fmt_addr_port(const __u8 addr[16], __u16 port, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	ph_fmt_addr(addr, a, sizeof(a));
	if (is_v4_mapped(addr))
		snprintf(buf, len, "%s:%u", a, port);
	else
		snprintf(buf, len, "[%s]:%u", a, port);
}

const char *ph_proto_name(__u8 proto, char *buf, size_t len)
{
	switch (proto) {
	case 1: return "icmp";
	case 6: return "tcp";
	case 17: return "udp";
	case 58: return "icmpv6";
	}
	snprintf(buf, len, "%u", proto);
	return buf;
}

/* Appends the components of tail to out (canonical, existing) lexically:
 * none of them exists, so none is a symlink and ".." just drops the last
 * component. */
static int append_lexical(char *out, size_t len, char *tail)
{
	for (char *c = strtok(tail, "/"); c; c = strtok(NULL, "/")) {
		size_t n = strlen(out);

		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			char *slash = strrchr(out, '/');

			if (slash == out)
				out[1] = '\0';
			else if (slash)
				*slash = '\0';
			continue;
		}
		if (n + 1 + strlen(c) + 1 > len)
			return -ENAMETOOLONG;
		if (n > 1)
			out[n++] = '/';
		strcpy(out + n, c);
	}
	return 0;
}

/* realpath() of a path that need not exist yet: the longest existing
 * prefix is resolved by the kernel (symlinks, "..", "."), the rest
 * lexically. */
static int resolve_path(const char *in, char *out, size_t len)
{
	char head[PATH_MAX], tail[PATH_MAX] = "", tmp[PATH_MAX], res[PATH_MAX];

	if (strlen(in) >= sizeof(head))
		return -ENAMETOOLONG;
	strcpy(head, in);
	for (;;) {
		char *slash;

		if (realpath(head[0] ? head : "/", res))
			break;
		if (errno != ENOENT)
			return -errno;
		slash = strrchr(head, '/');
		if (!slash)
			return -ENOENT;
		snprintf(tmp, sizeof(tmp), "%s%s%s", slash + 1,
			 tail[0] ? "/" : "", tail);
		ph_strlcpy(tail, tmp, sizeof(tail));
		*slash = '\0';
	}
	if (strlen(res) >= len)
		return -ENAMETOOLONG;
	strcpy(out, res);
	return append_lexical(out, len, tail);
}

int ph_pin_dir_normalize(const char *in, char *out, size_t len)
{
	int err;

	if (!in || in[0] != '/') {
		pr_warn("--pin-dir '%s': use an absolute path under %s",
			in ? in : "", PH_BPFFS_ROOT);
		return PH_EXIT_USER;
	}
	/* Every spelling of one directory (x/../x, //x, a symlink) names one
	 * instance, one lock file and one tracker. */
	err = resolve_path(in, out, len);
	if (err) {
		pr_warn("--pin-dir %s: %s", in, strerror(-err));
		return PH_EXIT_USER;
	}
	if (!strcmp(out, "/") || !strcmp(out, PH_BPFFS_ROOT)) {
		/* Removing the instance unpins the directory's content. */
		pr_warn("--pin-dir %s: use a directory of its own, e.g. %s",
			out, PH_DEFAULT_PIN_DIR);
		return PH_EXIT_USER;
	}
	return PH_EXIT_OK;
}

bool ph_path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static bool is_bpffs(const char *path)
{
	struct statfs sfs;

	return statfs(path, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
}

bool ph_is_bpffs_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode) && is_bpffs(path);
}

static bool under_bpffs_root(const char *path)
{
	size_t n = strlen(PH_BPFFS_ROOT);

	return !strncmp(path, PH_BPFFS_ROOT, n) && path[n] == '/';
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	ph_strlcpy(tmp, path, sizeof(tmp));
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

/* The nearest existing ancestor of path (path itself if it exists). */
static void existing_ancestor(const char *path, char *out, size_t len)
{
	ph_strlcpy(out, path, len);
	while (!ph_path_exists(out)) {
		char *slash = strrchr(out, '/');

		if (!slash || slash == out) {
			ph_strlcpy(out, "/", len);
			return;
		}
		*slash = '\0';
	}
}

int ph_pin_dir_check(const char *pin_dir)
{
	char anc[PATH_MAX];
	struct stat st;

	existing_ancestor(pin_dir, anc, sizeof(anc));
	if (stat(anc, &st)) {
		pr_warn("--pin-dir %s: %s", pin_dir, strerror(errno));
		return PH_EXIT_ENV;
	}
	if (!S_ISDIR(st.st_mode)) {
		pr_warn("--pin-dir %s: %s is not a directory; name a directory on bpffs, e.g. %s",
			pin_dir, anc, PH_DEFAULT_PIN_DIR);
		return PH_EXIT_USER;
	}
	if (is_bpffs(anc))
		return PH_EXIT_OK;
	/* attach/run mount bpffs on an empty /sys/fs/bpf themselves. */
	if (under_bpffs_root(pin_dir) && strlen(anc) <= strlen(PH_BPFFS_ROOT))
		return PH_EXIT_OK;
	pr_warn("--pin-dir %s: %s is not on a BPF filesystem; use a directory under %s, or mount one with 'mount -t bpf bpf DIR'",
		pin_dir, anc, PH_BPFFS_ROOT);
	return PH_EXIT_ENV;
}

int ph_bpffs_prepare(const char *pin_dir)
{
	int err = ph_pin_dir_check(pin_dir);

	if (err)
		return err;
	if (under_bpffs_root(pin_dir) && !is_bpffs(PH_BPFFS_ROOT)) {
		if (mkdir(PH_BPFFS_ROOT, 0700) && errno != EEXIST) {
			pr_warn("cannot create %s: %s", PH_BPFFS_ROOT,
				strerror(errno));
			return PH_EXIT_ENV;
		}
		if (mount("bpf", PH_BPFFS_ROOT, "bpf", 0, "mode=0700")) {
			pr_warn("cannot mount bpffs on %s: %s; mount it with 'mount -t bpf bpf %s'",
				PH_BPFFS_ROOT, strerror(errno), PH_BPFFS_ROOT);
			return PH_EXIT_ENV;
		}
		pr_info("mounted bpffs on %s", PH_BPFFS_ROOT);
		/* What was there before the mount is hidden now. */
		err = ph_pin_dir_check(pin_dir);
		if (err)
			return err;
	}
	err = mkdir_p(pin_dir, 0700);
	if (err) {
		pr_warn("cannot create pin dir %s: %s", pin_dir, strerror(-err));
		return PH_EXIT_ENV;
	}
	return PH_EXIT_OK;
}

/* systemd-style escaping: '/' becomes '-', anything unusual \xNN. */
static void lock_name(const char *pin_dir, char *out, size_t len)
{
	size_t o = 0;

	for (const char *p = pin_dir + 1; *p && o + 5 < len; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '/')
			out[o++] = '-';
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '_' || c == '.')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

void ph_lock_path(const char *pin_dir, const char *suffix, char *out,
		  size_t len)
{
	char name[PATH_MAX / 2];

	lock_name(pin_dir, name, sizeof(name));
	snprintf(out, len, "%s/%s%s", PH_LOCK_DIR, name, suffix);
}

int ph_lock_open(const char *path)
{
	int fd;

	if (mkdir(PH_LOCK_DIR, 0755) && errno != EEXIST) {
		pr_warn("cannot create %s: %s", PH_LOCK_DIR, strerror(errno));
		return -PH_EXIT_ENV;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		pr_warn("cannot open lock file %s: %s", path, strerror(errno));
		return -PH_EXIT_ENV;
	}
	return fd;
}

int ph_lock(const char *pin_dir)
{
	char path[PATH_MAX];
	int fd;

	ph_lock_path(pin_dir, ".lock", path, sizeof(path));
	fd = ph_lock_open(path);
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK) {
			pr_warn("cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return -PH_EXIT_ENV;
		}
		pr_info("waiting for another pinhole command on %s (lock %s)",
			pin_dir, path);
		while (flock(fd, LOCK_EX)) {
			if (errno == EINTR)
				continue;
			pr_warn("cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return -PH_EXIT_ENV;
		}
	}
	pr_debug("locked %s", path);
	return fd;
}

void ph_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

bool ph_parse_u32(const char *s, __u32 min, __u32 max, __u32 *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = (__u32)v;
	return true;
}

const char *ph_ifname(int ifindex, char *buf, size_t len)
{
	char name[IF_NAMESIZE];

	if (if_indextoname((unsigned int)ifindex, name))
		ph_strlcpy(buf, name, len);
	else
		snprintf(buf, len, "if%d", ifindex);
	return buf;
}

int ph_pin_get(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}
