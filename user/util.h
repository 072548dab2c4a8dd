/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Small helpers for the CLI: exit codes, time, paths, bpffs, locking,
 * address formatting. */
#ifndef PH_USER_UTIL_H
#define PH_USER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>

/* Exit codes of every command (docs/cli.md). */
enum ph_exit {
	PH_EXIT_OK = 0,
	PH_EXIT_USER = 1, /* bad policy, unknown interface, not attached, ... */
	PH_EXIT_ENV = 2,  /* not root, no BPF, XDP mode unsupported, bpffs */
	/* run/daemon: another pinhole build upgraded the instance in place;
	 * enforcement goes on, this process stopped without detaching (a
	 * service manager restarts it with the new binary). */
	PH_EXIT_REPLACED = 3,
};

#define PH_LOCK_DIR "/run/pinhole"
#define PH_BPFFS_ROOT "/sys/fs/bpf"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Copy with truncation; always NUL-terminates (len > 0). */
void ph_strlcpy(char *dst, const char *src, size_t len);

__u64 ph_now_ns(void); /* CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns */
/* CLOCK_MONOTONIC_COARSE: bpf_ktime_get_coarse_ns, which stamps flows. */
__u64 ph_now_coarse_ns(void);

/* "42s", "5m03s", "2h04m", "3d02h". */
void ph_fmt_duration(__u64 ns, char *buf, size_t len);

/* Address of a map key (16 bytes, v4-mapped for IPv4): "10.0.0.1" or
 * "2001:db8::1". with_port: "10.0.0.1:80", "[2001:db8::1]:80". */
void ph_fmt_addr(const __u8 addr[16], char *buf, size_t len);
void ph_fmt_addr_port(const __u8 addr[16], __u16 port, char *buf,
		      size_t len);
const char *ph_proto_name(__u8 proto, char *buf, size_t len);

/* Normalise --pin-dir: absolute, resolved like realpath(3) (symlinks,
 * ".." and "." of the part that exists, the rest lexically), so every
 * spelling of a directory names one instance and one lock. Returns
 * PH_EXIT_USER (with a message) when unusable. */
int ph_pin_dir_normalize(const char *in, char *out, size_t len);

/* Before anything is touched: the pin dir (or, if it does not exist yet,
 * its nearest existing ancestor) must be a directory on bpffs (or below
 * an unmounted /sys/fs/bpf, which attach mounts). One-line message:
 * PH_EXIT_USER when it is not a directory, PH_EXIT_ENV when not bpffs. */
int ph_pin_dir_check(const char *pin_dir);

/* bpffs: ph_pin_dir_check(), mount it on /sys/fs/bpf if missing (when the
 * pin dir lives there) and create the pin dir. Returns a PH_EXIT_* code. */
int ph_bpffs_prepare(const char *pin_dir);
/* Is path a directory on a bpf filesystem? */
bool ph_is_bpffs_dir(const char *path);
bool ph_path_exists(const char *path);

/* A lock file of a pin dir: PH_LOCK_DIR/<pin dir escaped systemd-style
 * ('/' -> '-', unusual bytes \xNN, no leading '/')><suffix>. */
void ph_lock_path(const char *pin_dir, const char *suffix, char *out,
		  size_t len);

/* Opens (creating PH_LOCK_DIR and the file if needed) a lock file for
 * flock. Returns an fd >= 0 or -PH_EXIT_ENV after a message. */
int ph_lock_open(const char *path);

/* One CLI at a time per pin dir: flock on /run/pinhole/<escaped>.lock.
 * Waits (saying so) if another command holds it. Returns an fd >= 0 or
 * -PH_EXIT_ENV after a message. */
int ph_lock(const char *pin_dir);

/* Opens the pin DIR/NAME. Returns an fd, or -errno (-ENOENT: no such pin). */
int ph_pin_get(const char *dir, const char *name);
void ph_unlock(int fd);

/* Parse an unsigned decimal in [min, max]; false if invalid. */
bool ph_parse_u32(const char *s, __u32 min, __u32 max, __u32 *out);

/* Interface name for ifindex, or "if<N>" when gone. */
const char *ph_ifname(int ifindex, char *buf, size_t len);

#endif /* PH_USER_UTIL_H */
