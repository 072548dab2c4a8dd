// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Load/pin/attach/detach. Map definitions are taken from the skeletons at
 * run time (never duplicated here), so a pinned map is compared with
 * exactly what this build would create.
 */
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <pinhole/pinhole.h>

#include "xdp_ingress.skel.h"
#include "tc_egress.skel.h"

#include "loader.h"
#include "counters.h"
#include "log.h"
#include "util.h"
#include "version.h"
#include "xdp_multi.h"

static const char *const map_names[PH_MAP__COUNT] = {
	[PH_MAP_STATE] = "state",
	[PH_MAP_SLOT_META] = "slot_meta",
	[PH_MAP_PORTS] = "ports",
	[PH_MAP_RULES] = "rules",
	[PH_MAP_SERVICE_NAMES] = "service_names",
	[PH_MAP_PEERS] = "peers",
	[PH_MAP_FLOWS] = "flows",
	[PH_MAP_HALF_OPEN] = "half_open",
	[PH_MAP_FRAGS] = "frags",
	[PH_MAP_EXPECT] = "expect",
	[PH_MAP_COUNTERS] = "counters",
	[PH_MAP_IFACES] = "ifaces",
	[PH_MAP_FTPS_PEERS] = "ftps_peers",
	[PH_MAP_FTP_NAT] = "ftp_nat",
	[PH_MAP_SVC_COUNTERS] = "svc_counters",
	[PH_MAP_SVC_IDS] = "svc_ids",
	[PH_MAP_MONITOR] = "monitor",
	[PH_MAP_MONITOR_CTL] = "monitor_ctl",
};

const char *ph_map_name(enum ph_map_id id)
{
	return map_names[id];
}

static __u64 fnv1a(__u64 h, const void *data, size_t n)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

const char *ph_build_id(void)
{
	static char id[sizeof(((struct ph_state *)0)->build)];
	__u64 h = 0xcbf29ce484222325ull;
	const void *elf;
	size_t n;

	if (id[0])
		return id;
	/* The objects as embedded (code, BTF, relocations): two builds
	 * whose programs differ in any way get different ids. */
	elf = xdp_ingress_bpf__elf_bytes(&n);
	h = fnv1a(h, elf, n);
	elf = tc_egress_bpf__elf_bytes(&n);
	h = fnv1a(h, elf, n);
	snprintf(id, sizeof(id), "%.40s bpf:%016llx", PH_VERSION,
		 (unsigned long long)h);
	return id;
}

/* ------------------------------------------------------------ ownership */

static bool is_prog_pin(const char *name)
{
	return !strcmp(name, PH_PIN_PROG_XDP) || !strcmp(name, PH_PIN_PROG_TC);
}

/*
 * Which pins did pinhole make? The `state` pin: an array of one element
 * named "state" with BTF. Every other map of an instance was created by
 * the same object load as its state, so it carries the same BTF object
 * (btf_id), except maps libbpf creates without BTF (the `events` ring
 * buffer, the `peers` array of maps), recognised by type and name. Programs by type and name. A map
 * made by hand (bpftool map create) has no BTF: it is never ours.
 * Returns 1 ours, 0 not, -errno (-ENOENT: no such pin).
 */
static int state_owner(const char *pin_dir, __u32 *btf_id)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd = ph_pin_get(pin_dir, "state"), err;

	*btf_id = 0;
	if (fd < 0)
		return fd;
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (err)
		return 0;
	if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4 ||
	    info.max_entries != 1 || info.value_size < 12 || !info.btf_id ||
	    strcmp(info.name, "state"))
		return 0;
	*btf_id = info.btf_id;
	return 1;
}

static int pin_owner(const char *dir, const char *name, __u32 state_btf)
{
	int fd = ph_pin_get(dir, name), err;

	if (fd < 0)
		return fd;
	if (is_prog_pin(name)) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		bool xdp = !strcmp(name, PH_PIN_PROG_XDP);

		err = bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
		return !err && info.type == (xdp ? BPF_PROG_TYPE_XDP :
					     BPF_PROG_TYPE_SCHED_CLS) &&
		       !strcmp(info.name, xdp ? "pinhole_xdp" : "pinhole_tc");
	} else {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		char want[BPF_OBJ_NAME_LEN];

		err = bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
		ph_strlcpy(want, name, sizeof(want));
		if (err || strcmp(info.name, want))
			return 0;
		if (info.btf_id)
			return state_btf && info.btf_id == state_btf;
		/* Types libbpf creates without BTF (no key/value types). */
		return info.type == BPF_MAP_TYPE_RINGBUF ||
		       info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS ||
		       info.type == BPF_MAP_TYPE_HASH_OF_MAPS;
	}
}

/* Sizes the user may choose at load time (--flows, --half-open). */
static bool size_is_configurable(const char *name)
{
	return !strcmp(name, "flows") || !strcmp(name, "half_open");
}

static void pin_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0'; /* too long: matches no pin */
}

static __u64 own_netns_ino(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) ? 0 : (__u64)st.st_ino;
}

/* ------------------------------------------------------------ skeletons */

struct skels {
	struct xdp_ingress_bpf *x;
	struct tc_egress_bpf *t;
};

static void skels_close(struct skels *s)
{
	xdp_ingress_bpf__destroy(s->x);
	tc_egress_bpf__destroy(s->t);
	s->x = NULL;
	s->t = NULL;
}

static int skels_open(struct skels *s, const char *pin_dir)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);

	s->x = xdp_ingress_bpf__open_opts(&opts);
	s->t = s->x ? tc_egress_bpf__open_opts(&opts) : NULL;
	if (!s->x || !s->t) {
		pr_warn("cannot open the built-in BPF objects: %s; rerun with -v",
			strerror(errno));
		skels_close(s);
		return PH_EXIT_ENV;
	}
	return PH_EXIT_OK;
}

#define skels_for_each_obj(s, i, obj)                                         \
	for (i = 0, obj = (s)->x->obj; i < 2;                                 \
	     i++, obj = i == 1 ? (s)->t->obj : NULL)

/* Every name this build pins under a pin dir: its maps (from the
 * skeletons, deduplicated), map_names[] and the two program pins. */
#define MAX_PIN_NAMES 48
static int pin_names(const char *names[MAX_PIN_NAMES])
{
	static char store[MAX_PIN_NAMES][BPF_OBJ_NAME_LEN + 8];
	static int n;
	struct skels s = {};
	struct bpf_object *obj;
	struct bpf_map *m;
	int i;

	if (!n && !skels_open(&s, NULL)) {
		skels_for_each_obj(&s, i, obj) {
			bpf_object__for_each_map(m, obj) {
				const char *name = bpf_map__name(m);
				bool dup = false;

				if (bpf_map__is_internal(m) || n >= MAX_PIN_NAMES - 2)
					continue;
				for (int k = 0; k < n; k++)
					dup |= !strcmp(store[k], name);
				if (!dup)
					ph_strlcpy(store[n++], name, sizeof(store[0]));
			}
		}
		skels_close(&s);
		for (int k = 0; k < PH_MAP__COUNT; k++) {
			bool dup = false;

			for (int j = 0; j < n; j++)
				dup |= !strcmp(store[j], map_names[k]);
			if (!dup && n < MAX_PIN_NAMES - 2)
				ph_strlcpy(store[n++], map_names[k], sizeof(store[0]));
		}
		ph_strlcpy(store[n++], PH_PIN_PROG_XDP, sizeof(store[0]));
		ph_strlcpy(store[n++], PH_PIN_PROG_TC, sizeof(store[0]));
	}
	for (i = 0; i < n; i++)
		names[i] = store[i];
	return n;
}

int ph_pin_dir_foreign(const char *pin_dir, char *name, size_t len)
{
	const char *names[MAX_PIN_NAMES];
	__u32 btf = 0;
	int n = pin_names(names);

	if (state_owner(pin_dir, &btf) == 0) {
		ph_strlcpy(name, "state", len);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int r = pin_owner(pin_dir, names[i], btf);

		if (r == 0 || (r < 0 && r != -ENOENT)) {
			ph_strlcpy(name, names[i], len);
			return 1;
		}
	}
	return 0;
}

/* Compare a pinned map with this build's definition. Returns 1 if it
 * matches, 0 if not (why set), -ENOENT if not pinned, or -errno. */
static int pin_matches(const struct bpf_map *m, bool check_size, char *why,
		       size_t len)
{
	const char *path = bpf_map__pin_path(m);
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info);
	int fd, err;

	if (!path)
		return 1; /* not pinned by design */
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	err = bpf_obj_get_info_by_fd(fd, &info, &info_len);
	close(fd);
	if (err) {
		/* A pinned program where a map should be, for instance. */
		snprintf(why, len, "pin %s is not a map", path);
		return 0;
	}
	if (info.type != bpf_map__type(m) ||
	    info.key_size != bpf_map__key_size(m) ||
	    info.value_size != bpf_map__value_size(m) ||
	    info.map_flags != bpf_map__map_flags(m) ||
	    info.map_extra != bpf_map__map_extra(m) ||
	    (check_size && info.max_entries != bpf_map__max_entries(m))) {
		snprintf(why, len,
			 "map %s changed (type %u/%u, key %u/%u, value %u/%u, entries %u/%u)",
			 bpf_map__name(m), info.type, bpf_map__type(m),
			 info.key_size, bpf_map__key_size(m), info.value_size,
			 bpf_map__value_size(m), info.max_entries,
			 bpf_map__max_entries(m));
		return 0;
	}
	return 1;
}

/* inst->compatible &= every pin matches this build. */
static int check_pins(struct ph_instance *inst, struct skels *s)
{
	struct bpf_object *obj;
	struct bpf_map *m;
	bool changed = false;
	int i;

	skels_for_each_obj(s, i, obj) {
		bpf_object__for_each_map(m, obj) {
			const char *name = bpf_map__name(m);
			char why[sizeof(inst->why)];
			int r;

			if (bpf_map__is_internal(m))
				continue;
			r = pin_matches(m, !size_is_configurable(name), why,
					sizeof(why));
			if (r == 1)
				continue;
			if (r == -EPERM || r == -EACCES) {
				pr_warn("cannot open pinned map %s: %s; run as root",
					name, strerror(-r));
				return PH_EXIT_ENV;
			}
			/* Keep the first reason, a changed map over a
			 * missing one: it says more. */
			if (r == 0 && !changed) {
				ph_strlcpy(inst->why, why, sizeof(inst->why));
				changed = true;
			} else if (r < 0 && inst->compatible) {
				snprintf(inst->why, sizeof(inst->why),
					 "map %s is not pinned (%s)", name,
					 strerror(-r));
			}
			inst->compatible = false;
		}
	}
	return PH_EXIT_OK;
}

/* ------------------------------------------------------------ instance */

bool ph_instance_exists(const char *pin_dir)
{
	__u32 btf;

	return state_owner(pin_dir, &btf) == 1;
}

static int open_prog(const char *pin_dir, const char *name, int *fd,
		     __u32 *id)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];

	pin_path(path, sizeof(path), pin_dir, name);
	*fd = bpf_obj_get(path);
	if (*fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(*fd, &info, &len)) {
		close(*fd);
		*fd = -1;
		return -EINVAL;
	}
	*id = info.id;
	return 0;
}

static int open_maps(struct ph_instance *inst)
{
	for (int i = 0; i < PH_MAP__COUNT; i++) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		char path[PATH_MAX];

		pin_path(path, sizeof(path), inst->pin_dir, map_names[i]);
		inst->fd[i] = bpf_obj_get(path);
		if (inst->fd[i] < 0) {
			if (errno == EPERM || errno == EACCES) {
				pr_warn("cannot open %s: %s; run as root", path,
					strerror(errno));
				return PH_EXIT_ENV;
			}
			continue; /* check_pins() explains */
		}
		if (bpf_obj_get_info_by_fd(inst->fd[i], &info, &len)) {
			close(inst->fd[i]);
			inst->fd[i] = -1;
			continue;
		}
		inst->max_entries[i] = info.max_entries;
		if (i == PH_MAP_IFACES)
			inst->ifaces_value_size = info.value_size;
		if (i == PH_MAP_STATE)
			inst->state_value_size = info.value_size;
	}
	return PH_EXIT_OK;
}

int ph_state_read(const struct ph_instance *inst, struct ph_state *out)
{
	__u32 key = 0, vsize = inst->state_value_size;
	void *buf;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (inst->fd[PH_MAP_STATE] < 0 || vsize < 12)
		return -ENOENT;
	/* Another layout's state: fields are only ever appended. */
	buf = calloc(1, vsize > sizeof(*out) ? vsize : sizeof(*out));
	if (!buf)
		return -ENOMEM;
	if (bpf_map_lookup_elem(inst->fd[PH_MAP_STATE], &key, buf))
		err = -errno;
	else
		memcpy(out, buf, vsize < sizeof(*out) ? vsize : sizeof(*out));
	free(buf);
	out->policy[sizeof(out->policy) - 1] = '\0';
	out->build[sizeof(out->build) - 1] = '\0';
	return err;
}

int ph_state_write_build(const struct ph_instance *inst)
{
	struct ph_state st;
	__u32 key = 0;
	int err = ph_state_read(inst, &st);

	if (err)
		return err;
	memset(st.build, 0, sizeof(st.build));
	ph_strlcpy(st.build, ph_build_id(), sizeof(st.build));
	return bpf_map_update_elem(inst->fd[PH_MAP_STATE], &key, &st, BPF_ANY) ?
		       -errno : 0;
}

static void check_layout_version(struct ph_instance *inst)
{
	struct ph_state st;

	if (ph_state_read(inst, &st))
		return;
	inst->layout_version = st.layout_version;
	ph_strlcpy(inst->build, st.build, sizeof(inst->build));
	if (st.layout_version != PH_LAYOUT_VERSION && inst->compatible) {
		inst->compatible = false;
		snprintf(inst->why, sizeof(inst->why),
			 "pins have layout version %u, this build uses %u",
			 st.layout_version, PH_LAYOUT_VERSION);
	}
}

int ph_instance_open(struct ph_instance *inst, const char *pin_dir)
{
	struct skels s = {};
	int r;

	memset(inst, 0, sizeof(*inst));
	for (int i = 0; i < PH_MAP__COUNT; i++)
		inst->fd[i] = -1;
	inst->xdp_prog_fd = inst->tc_prog_fd = -1;
	inst->compatible = true;
	inst->netns_ino = own_netns_ino();
	ph_strlcpy(inst->pin_dir, pin_dir, sizeof(inst->pin_dir));
	if (!ph_instance_exists(pin_dir))
		return -ENOENT;

	r = skels_open(&s, pin_dir);
	if (!r)
		r = check_pins(inst, &s);
	skels_close(&s);
	if (!r)
		r = open_maps(inst);
	if (r) {
		ph_instance_close(inst);
		return r;
	}
	if (open_prog(pin_dir, PH_PIN_PROG_XDP, &inst->xdp_prog_fd,
		      &inst->xdp_prog_id) && inst->compatible) {
		inst->compatible = false;
		snprintf(inst->why, sizeof(inst->why),
			 "program pin %s is missing", PH_PIN_PROG_XDP);
	}
	if (open_prog(pin_dir, PH_PIN_PROG_TC, &inst->tc_prog_fd,
		      &inst->tc_prog_id) && inst->compatible) {
		inst->compatible = false;
		snprintf(inst->why, sizeof(inst->why),
			 "program pin %s is missing", PH_PIN_PROG_TC);
	}
	check_layout_version(inst);
	inst->foreign = ph_pin_dir_foreign(pin_dir, inst->foreign_name,
					   sizeof(inst->foreign_name)) == 1;
	if (inst->foreign && inst->compatible) {
		inst->compatible = false;
		snprintf(inst->why, sizeof(inst->why),
			 "%s/%s was not made by pinhole", pin_dir,
			 inst->foreign_name);
	}
	if (!inst->compatible)
		pr_debug("%s: incompatible: %s", pin_dir, inst->why);
	return PH_EXIT_OK;
}

void ph_instance_close(struct ph_instance *inst)
{
	for (int i = 0; i < PH_MAP__COUNT; i++) {
		if (inst->fd[i] >= 0)
			close(inst->fd[i]);
		inst->fd[i] = -1;
	}
	if (inst->xdp_prog_fd >= 0)
		close(inst->xdp_prog_fd);
	if (inst->tc_prog_fd >= 0)
		close(inst->tc_prog_fd);
	inst->xdp_prog_fd = inst->tc_prog_fd = -1;
}

int ph_instance_need_compatible(const struct ph_instance *inst)
{
	if (inst->compatible)
		return PH_EXIT_OK;
	pr_warn("%s holds a pinhole instance this build cannot use (%s); run 'pinhole --pin-dir %s detach --all', then attach again",
		inst->pin_dir, inst->why, inst->pin_dir);
	return PH_EXIT_ENV;
}

#define STAGING_DIR PH_STAGING_DIR

void ph_instance_remove(const char *pin_dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	__u32 btf = 0;
	int left = 0;
	DIR *d;

	/* Only what an instance of pinhole made, whatever its build called
	 * it: `state` decides which maps those are (same BTF), and goes
	 * last, so an interrupted removal is still recognised next time. */
	state_owner(pin_dir, &btf);
	d = opendir(pin_dir);
	while (d && (de = readdir(d))) {
		int r;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "state") ||
		    !strcmp(de->d_name, STAGING_DIR))
			continue;
		pin_path(path, sizeof(path), pin_dir, de->d_name);
		r = de->d_type == DT_DIR ? 0 : pin_owner(pin_dir, de->d_name, btf);
		if (r != 1) {
			pr_info("%s was not made by pinhole; left in place", path);
			left++;
			continue;
		}
		if (unlink(path) && errno != ENOENT)
			pr_warn("cannot unpin %s: %s", path, strerror(errno));
	}
	if (d)
		closedir(d);
	pin_path(path, sizeof(path), pin_dir, STAGING_DIR);
	if (ph_path_exists(path))
		ph_instance_remove(path);
	if (btf) {
		pin_path(path, sizeof(path), pin_dir, "state");
		if (unlink(path) && errno != ENOENT)
			pr_warn("cannot unpin %s: %s", path, strerror(errno));
	}
	if (rmdir(pin_dir) && errno != ENOENT) {
		if (!left)
			pr_info("left %s in place: %s", pin_dir, strerror(errno));
	} else {
		pr_debug("removed %s", pin_dir);
	}
}

int ph_instance_move(const char *from, const char *to)
{
	char src[PATH_MAX], dst[PATH_MAX], moved[MAX_PIN_NAMES * 2][NAME_MAX + 1];
	struct dirent *de;
	__u32 old_btf = 0;
	int err = 0, nmoved = 0;
	DIR *d;

	state_owner(to, &old_btf);
	d = opendir(from);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "state") ||
		    de->d_type == DT_DIR)
			continue;
		pin_path(src, sizeof(src), from, de->d_name);
		pin_path(dst, sizeof(dst), to, de->d_name);
		if (rename(src, dst)) {
			err = err ? err : -errno;
			continue;
		}
		if (nmoved < (int)ARRAY_SIZE(moved))
			ph_strlcpy(moved[nmoved++], de->d_name, sizeof(moved[0]));
	}
	closedir(d);
	if (err)
		return err;
	/* Pins of the old instance the new build does not have: with the
	 * old state gone they could no longer be told from foreign ones. */
	d = opendir(to);
	while (d && (de = readdir(d))) {
		bool new = false;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "state") ||
		    de->d_type == DT_DIR)
			continue;
		for (int i = 0; i < nmoved; i++)
			new |= !strcmp(moved[i], de->d_name);
		if (!new && pin_owner(to, de->d_name, old_btf) == 1) {
			pin_path(dst, sizeof(dst), to, de->d_name);
			pr_debug("removing %s (the new build has no such pin)", dst);
			unlink(dst);
		}
	}
	if (d)
		closedir(d);
	pin_path(src, sizeof(src), from, "state");
	pin_path(dst, sizeof(dst), to, "state");
	if (rename(src, dst))
		return -errno;
	return 0;
}

static int load_error(const char *what, int err)
{
	if (err == -EPERM)
		pr_warn("loading the %s program was refused (EPERM): needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, and a kernel that allows BPF (lockdown?); rerun with -v",
			what);
	else
		pr_warn("loading the %s program failed: %s; the kernel may lack the BPF features pinhole needs; rerun with -v for libbpf's log",
			what, strerror(-err));
	return PH_EXIT_ENV;
}

static void set_sizes(struct bpf_object *obj, const struct ph_load_opts *o)
{
	struct bpf_map *m;

	if (o->flows_max && (m = bpf_object__find_map_by_name(obj, "flows")))
		bpf_map__set_max_entries(m, o->flows_max);
	if (o->half_open_max &&
	    (m = bpf_object__find_map_by_name(obj, "half_open")))
		bpf_map__set_max_entries(m, o->half_open_max);
}

static struct ph_load_cfg load_cfg(const struct ph_load_opts *o)
{
	return (struct ph_load_cfg){
		.fail_open = o->fail_open,
		/* Load-time, while policies (and their FTP rules) change at
		 * reload: always report, the tracker decides. */
		.track_ftp = 1,
		.failsafe_port = o->failsafe_port,
		.tcp_est_timeout_s = PH_TCP_EST_TIMEOUT_S,
		.tcp_closing_timeout_s = PH_TCP_CLOSING_TIMEOUT_S,
		.half_open_timeout_s = PH_HALF_OPEN_TIMEOUT_S,
		.udp_timeout_s = PH_UDP_TIMEOUT_S,
		.icmp_timeout_s = PH_ICMP_TIMEOUT_S,
	};
}

void ph_load_cfg_init(struct ph_load_cfg *cfg, const struct ph_load_opts *o)
{
	*cfg = load_cfg(o);
}

void ph_progs_close(struct ph_progs *p)
{
	if (p->xdp_fd >= 0)
		close(p->xdp_fd);
	if (p->tc_fd >= 0)
		close(p->tc_fd);
	p->xdp_fd = p->tc_fd = -1;
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

int ph_progs_load(const char *pin_root, const struct ph_load_opts *o,
		  struct ph_progs *p)
{
	const struct ph_load_cfg cfg = load_cfg(o);
	struct skels s = {};
	int err, r;

	p->xdp_fd = p->tc_fd = -1;
	p->inst = NULL;
	r = skels_open(&s, pin_root);
	if (r)
		return r;
	s.x->rodata->ph_cfg = cfg;
	s.t->rodata->ph_cfg = cfg;
	set_sizes(s.x->obj, o);
	set_sizes(s.t->obj, o);
	/* The first load creates (and pins) the maps missing under pin_root
	 * and reuses those pinned there; the second reuses them all. */
	err = xdp_ingress_bpf__load(s.x);
	if (err) {
		r = load_error("XDP ingress", err);
		goto out;
	}
	err = tc_egress_bpf__load(s.t);
	if (err) {
		r = load_error("TC egress", err);
		goto out;
	}
	p->xdp_fd = dup(bpf_program__fd(s.x->progs.pinhole_xdp));
	p->tc_fd = dup(bpf_program__fd(s.t->progs.pinhole_tc));
	if (p->xdp_fd < 0 || p->tc_fd < 0) {
		pr_warn("cannot keep the loaded programs: %s", strerror(errno));
		ph_progs_close(p);
		r = PH_EXIT_ENV;
		goto out;
	}
	p->xdp_id = prog_id(p->xdp_fd);
	p->tc_id = prog_id(p->tc_fd);
out:
	skels_close(&s);
	return r;
}

int ph_pin_replace(int fd, const char *pin_dir, const char *name)
{
	char tmp[PATH_MAX], path[PATH_MAX];

	pin_path(tmp, sizeof(tmp), pin_dir, STAGING_DIR);
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	snprintf(tmp, sizeof(tmp), "%s/%s/%s", pin_dir, STAGING_DIR, name);
	pin_path(path, sizeof(path), pin_dir, name);
	unlink(tmp);
	if (bpf_obj_pin(fd, tmp))
		return -errno;
	/* bpffs renames atomically over the old pin: a reader opens either
	 * the old object or the new one, never nothing. */
	if (rename(tmp, path)) {
		int err = -errno;

		unlink(tmp);
		return err;
	}
	return 0;
}

int ph_instance_create(const char *pin_dir, const struct ph_load_opts *o)
{
	struct ph_state st = {
		.layout_version = PH_LAYOUT_VERSION,
		.fail_open = o->fail_open,
		.failsafe_port = o->failsafe_port,
	};
	const char *names[MAX_PIN_NAMES];
	struct ph_progs p;
	char path[PATH_MAX];
	int n, fd, err, r;

	if (mkdir(pin_dir, 0700) && errno != EEXIST) {
		pr_warn("cannot create pin dir %s: %s", pin_dir, strerror(errno));
		return PH_EXIT_ENV;
	}
	/* Starts from empty maps: libbpf would reuse a pin left under a
	 * map's name. Ours were removed by the caller, so whatever is left
	 * was made by someone else and stays. */
	n = pin_names(names);
	for (int i = 0; i < n; i++) {
		pin_path(path, sizeof(path), pin_dir, names[i]);
		if (ph_path_exists(path)) {
			pr_warn("%s exists and was not made by pinhole; remove it or use another --pin-dir",
				path);
			return PH_EXIT_ENV;
		}
	}
	r = ph_progs_load(pin_dir, o, &p);
	if (r)
		goto fail;
	fd = ph_pin_get(pin_dir, "state");
	ph_strlcpy(st.build, ph_build_id(), sizeof(st.build));
	err = fd < 0 ? fd : 0;
	if (!err) {
		__u32 key = 0;

		err = bpf_map_update_elem(fd, &key, &st, BPF_ANY) ? -errno : 0;
		close(fd);
	}
	if (!err)
		err = ph_pin_replace(p.xdp_fd, pin_dir, PH_PIN_PROG_XDP);
	if (!err)
		err = ph_pin_replace(p.tc_fd, pin_dir, PH_PIN_PROG_TC);
	pin_path(path, sizeof(path), pin_dir, STAGING_DIR);
	rmdir(path);
	ph_progs_close(&p);
	if (err) {
		pr_warn("cannot pin into %s: %s", pin_dir, strerror(-err));
		r = PH_EXIT_ENV;
		goto fail;
	}
	pr_debug("created instance %s (layout v%u, build %s)", pin_dir,
		 PH_LAYOUT_VERSION, ph_build_id());
	return PH_EXIT_OK;
fail:
	ph_instance_remove(pin_dir);
	return r;
}

static int check_load_opts(const struct ph_instance *inst,
			   const struct ph_load_opts *o)
{
	struct ph_state st;
	char what[96] = "";

	if (ph_state_read(inst, &st))
		return PH_EXIT_OK;
	if (o->fail_open_set && st.fail_open != o->fail_open)
		snprintf(what, sizeof(what), "%s (running: %s)",
			 o->fail_open ? "--fail-open" : "--fail-closed",
			 st.fail_open ? "fail-open" : "fail-closed");
	else if (o->failsafe_set && st.failsafe_port != o->failsafe_port)
		snprintf(what, sizeof(what), "--failsafe-port %u (running: %u)",
			 o->failsafe_port, st.failsafe_port);
	else if (o->flows_max && o->flows_max != inst->max_entries[PH_MAP_FLOWS])
		snprintf(what, sizeof(what), "--flows %u (running: %u)",
			 o->flows_max, inst->max_entries[PH_MAP_FLOWS]);
	else if (o->half_open_max &&
		 o->half_open_max != inst->max_entries[PH_MAP_HALF_OPEN])
		snprintf(what, sizeof(what), "--half-open %u (running: %u)",
			 o->half_open_max, inst->max_entries[PH_MAP_HALF_OPEN]);
	if (!what[0])
		return PH_EXIT_OK;
	pr_warn("%s differs from the instance already attached at %s; drop the option, or detach all its interfaces first to change it",
		what, inst->pin_dir);
	return PH_EXIT_USER;
}

int ph_instance_prepare(struct ph_instance *inst, const char *pin_dir,
			const struct ph_load_opts *o, bool *created,
			bool *upgrade)
{
	struct ph_iface recs[PH_IFACES_MAX];
	int n, r, nlive = 0, nforeign = 0;
	char live_name[IF_NAMESIZE + 8] = "", name[64];

	*created = false;
	*upgrade = false;
	/* Before anything is touched: a pin pinhole did not make is never
	 * removed, reused or replaced. */
	if (ph_pin_dir_foreign(pin_dir, name, sizeof(name)) == 1) {
		pr_warn("%s/%s was not made by pinhole (no pinhole state, or another BTF); remove it or use another --pin-dir",
			pin_dir, name);
		return PH_EXIT_ENV;
	}
	r = ph_instance_open(inst, pin_dir);
	if (r > 0)
		return r;
	if (r == 0) {
		n = ph_ifaces_list(inst, recs, PH_IFACES_MAX);
		for (int i = 0; i < n; i++) {
			struct ph_iface_live live;

			ph_iface_probe(inst, &recs[i], &live);
			if (live.state == PH_IFACE_LIVE && !nlive++)
				ph_strlcpy(live_name, recs[i].name,
					   sizeof(live_name));
			nforeign += live.state == PH_IFACE_FOREIGN;
			if (live.state == PH_IFACE_GONE && inst->compatible) {
				pr_debug("%s (ifindex %u) no longer carries pinhole; forgetting it",
					 recs[i].name, recs[i].ifindex);
				bpf_map_delete_elem(inst->fd[PH_MAP_IFACES],
						    &recs[i].ifindex);
			}
		}
		if (nforeign) {
			pr_warn("the instance at %s is attached in another network namespace; use another --pin-dir here",
				pin_dir);
			ph_instance_close(inst);
			return PH_EXIT_USER;
		}
		if (nlive) {
			/* Another build's programs, or another layout: the
			 * caller replaces them in place (user/upgrade.c). */
			*upgrade = !inst->compatible ||
				   strcmp(inst->build, ph_build_id());
			pr_debug("%s: attached to %s%s", pin_dir, live_name,
				 *upgrade ? "; needs an upgrade to this build" : "");
			r = check_load_opts(inst, o);
			if (r)
				ph_instance_close(inst);
			return r;
		}
		if (!inst->compatible)
			pr_info("%s: %s; removing the old pins and creating them anew",
				pin_dir, inst->why);
		else
			pr_debug("%s: nothing attached; loading afresh", pin_dir);
		ph_instance_close(inst);
		ph_instance_remove(pin_dir);
	}
	r = ph_instance_create(pin_dir, o);
	if (r)
		return r;
	r = ph_instance_open(inst, pin_dir);
	if (!r && !inst->compatible) {
		pr_warn("internal error: the instance just created at %s does not match this build (%s)",
			pin_dir, inst->why);
		ph_instance_close(inst);
		r = PH_EXIT_ENV;
	}
	if (r) {
		ph_instance_remove(pin_dir);
		return r > 0 ? r : PH_EXIT_ENV;
	}
	*created = true;
	return PH_EXIT_OK;
}

/* ----------------------------------------------------------- interfaces */

int ph_ifaces_list(const struct ph_instance *inst, struct ph_iface *out,
		   int max)
{
	int fd = inst->fd[PH_MAP_IFACES], n = 0;
	size_t vsize = inst->ifaces_value_size;
	__u32 key, next;
	bool first = true;
	void *buf;

	if (fd < 0)
		return -ENOENT;
	/* An older layout may have a shorter or longer value: fields are
	 * only ever appended, so copy what both know. */
	buf = calloc(1, vsize > sizeof(*out) ? vsize : sizeof(*out));
	if (!buf)
		return -ENOMEM;
	while (n < max && !bpf_map_get_next_key(fd, first ? NULL : &key, &next)) {
		first = false;
		key = next;
		memset(buf, 0, vsize > sizeof(*out) ? vsize : sizeof(*out));
		if (bpf_map_lookup_elem(fd, &next, buf))
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		memcpy(&out[n], buf, vsize < sizeof(*out) ? vsize : sizeof(*out));
		out[n].ifindex = next;
		out[n].name[sizeof(out[n].name) - 1] = '\0';
		n++;
	}
	free(buf);
	return n;
}

static bool is_ours(__u32 id, __u32 a, __u32 b)
{
	return id && (id == a || id == b);
}

static void tc_ids(const struct ph_iface *rec, __u32 *handle, __u32 *prio)
{
	*handle = rec->tc_handle ? rec->tc_handle : PH_TC_HANDLE;
	*prio = rec->tc_priority ? rec->tc_priority : PH_TC_PRIORITY;
}

static __u32 tc_query(int ifindex, __u32 handle, __u32 prio)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = handle, .priority = prio);

	return bpf_tc_query(&hook, &q) ? 0 : q.prog_id;
}

void ph_iface_probe(const struct ph_instance *inst, const struct ph_iface *rec,
		    struct ph_iface_live *live)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, xq);
	char name[IF_NAMESIZE];
	__u32 handle, prio;

	memset(live, 0, sizeof(*live));
	live->state = PH_IFACE_GONE;
	if (rec->netns_ino && inst->netns_ino && rec->netns_ino != inst->netns_ino) {
		live->state = PH_IFACE_FOREIGN;
		return;
	}
	if (!if_indextoname(rec->ifindex, name))
		return;
	if (rec->xdp_dispatcher) {
		/* The device runs the dispatcher; ours is one member. */
		if (ph_xdp_dispatcher_has((int)rec->ifindex, rec->xdp_prog_id,
					  &live->xdp_attach_mode))
			live->xdp_prog_id = rec->xdp_prog_id;
	} else if (!bpf_xdp_query((int)rec->ifindex, 0, &xq)) {
		live->xdp_prog_id = xq.prog_id ? xq.prog_id :
				    xq.drv_prog_id ? xq.drv_prog_id : xq.skb_prog_id;
		live->xdp_attach_mode = xq.attach_mode;
	}
	tc_ids(rec, &handle, &prio);
	live->tc_prog_id = tc_query((int)rec->ifindex, handle, prio);
	if (is_ours(live->xdp_prog_id, inst->xdp_prog_id, rec->xdp_prog_id) ||
	    is_ours(live->tc_prog_id, inst->tc_prog_id, rec->tc_prog_id))
		live->state = PH_IFACE_LIVE;
}

int ph_iface_check_free(const char *name, int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, xq);
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), id;
	int fd;

	if (bpf_xdp_query(ifindex, 0, &xq))
		return PH_EXIT_OK; /* the attach will say what is wrong */
	id = xq.prog_id ? xq.prog_id : xq.drv_prog_id ? xq.drv_prog_id : xq.skb_prog_id;
	if (!id)
		return PH_EXIT_OK;
	fd = bpf_prog_get_fd_by_id(id);
	if (fd >= 0) {
		bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
	}
	if (!strcmp(info.name, "xdp_dispatcher") && ph_xdp_dispatcher_wanted()) {
		char members[256];
		bool pinhole;
		int n = ph_xdp_dispatcher_members(ifindex, members,
						  sizeof(members), &pinhole);

		if (n >= 0 && !pinhole) {
			pr_debug("%s: libxdp dispatcher (id %u) with %s; joining it",
				 name, id, n ? members : "no members");
			return PH_EXIT_OK;
		}
		if (n >= 0) {
			pr_warn("%s: its XDP dispatcher already runs a pinhole program (%s), from another pin dir; detach it with that --pin-dir first",
				name, members);
			return PH_EXIT_USER;
		}
	}
	if (!strcmp(info.name, "pinhole_xdp"))
		pr_warn("%s: already carries a pinhole XDP program (id %u) from another pin dir; detach it with that --pin-dir first",
			name, id);
	else
		pr_warn("%s: another XDP program (id %u%s%s) is attached; remove it first (ip link set dev %s xdp off)",
			name, id, info.name[0] ? ", " : "", info.name, name);
	return PH_EXIT_USER;
}

static int xdp_attach_plain(struct ph_instance *inst, const char *name,
			    int ifindex, enum ph_xdp_mode mode, __u32 *flags_out)
{
	const __u32 base = XDP_FLAGS_UPDATE_IF_NOEXIST;
	int err;

	if (mode != PH_MODE_GENERIC) {
		err = bpf_xdp_attach(ifindex, inst->xdp_prog_fd,
				     base | XDP_FLAGS_DRV_MODE, NULL);
		if (!err) {
			*flags_out = XDP_FLAGS_DRV_MODE;
			return PH_EXIT_OK;
		}
		if (err == -EBUSY || err == -EEXIST)
			goto busy;
		if (err == -EPERM)
			goto perm;
		if (mode == PH_MODE_NATIVE) {
			if (err == -EOPNOTSUPP)
				pr_warn("%s: native XDP not supported by this driver; use --mode generic",
					name);
			else
				pr_warn("%s: native XDP attach failed: %s; use --mode generic",
					name, strerror(-err));
			return PH_EXIT_ENV;
		}
		pr_info("%s: native XDP unavailable (%s); using generic mode, which is slower",
			name, err == -EOPNOTSUPP ? "not supported by this driver" :
			strerror(-err));
	}
	err = bpf_xdp_attach(ifindex, inst->xdp_prog_fd,
			     base | XDP_FLAGS_SKB_MODE, NULL);
	if (!err) {
		*flags_out = XDP_FLAGS_SKB_MODE;
		return PH_EXIT_OK;
	}
	if (err == -EBUSY || err == -EEXIST)
		goto busy;
	if (err == -EPERM)
		goto perm;
	pr_warn("%s: generic XDP attach failed: %s; rerun with -v", name,
		strerror(-err));
	return PH_EXIT_ENV;
busy:
	pr_warn("%s: another XDP program is attached (perhaps in the other mode); remove it first (ip link set dev %s xdp off)",
		name, name);
	return PH_EXIT_USER;
perm:
	pr_warn("%s: attaching XDP was refused (EPERM); needs CAP_NET_ADMIN", name);
	return PH_EXIT_ENV;
}

/* fd of XDP program id: ours from the pin (no CAP_SYS_ADMIN needed), else
 * by id. -1 if unavailable. Caller closes. */
static int xdp_fd_of(__u32 id, int pinned_fd)
{
	if (id && pinned_fd >= 0 && id == prog_id(pinned_fd))
		return dup(pinned_fd);
	return id ? bpf_prog_get_fd_by_id(id) : -1;
}

/*
 * Through libxdp's dispatcher when it works, so other XDP programs can
 * share the hook; else the plain attach (prog_xdp on the device), with a
 * notice saying why.
 */
static int xdp_attach(struct ph_instance *inst, const char *name, int ifindex,
		      enum ph_xdp_mode mode, struct ph_iface *rec)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, xq);
	char why[256];
	int err;

	if (ph_xdp_dispatcher_wanted()) {
		err = ph_xdp_dispatcher_attach(inst, name, ifindex, mode, rec, why,
					       sizeof(why));
		if (!err)
			return PH_EXIT_OK;
		/* A dispatcher is on the device: falling back could only
		 * fail (and must not replace it). */
		if (!bpf_xdp_query(ifindex, 0, &xq) && xq.prog_id) {
			pr_warn("%s: cannot join the XDP dispatcher there: %s; rerun with -v",
				name, why);
			return PH_EXIT_ENV;
		}
		pr_info("%s: libxdp's dispatcher is not usable (%s); attaching directly, so no other XDP program can share %s",
			name, why, name);
	}
	rec->xdp_dispatcher = 0;
	rec->xdp_prog_id = inst->xdp_prog_id;
	return xdp_attach_plain(inst, name, ifindex, mode, &rec->xdp_flags);
}

/* Detach XDP program prog_id from ifindex in the mode it runs in. */
static int xdp_detach_id(const struct ph_instance *inst, int ifindex,
			 __u32 prog_id, __u32 mode_flags)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
	int fd = xdp_fd_of(prog_id, inst->xdp_prog_fd), err;

	/* XDP_FLAGS_REPLACE (via old_prog_fd): never remove a program that
	 * replaced ours in the meantime. */
	opts.old_prog_fd = fd >= 0 ? fd : 0;
	err = bpf_xdp_detach(ifindex, mode_flags, fd >= 0 ? &opts : NULL);
	if (fd >= 0)
		close(fd);
	return err;
}

static void tc_hook_destroy(int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);

	bpf_tc_hook_destroy(&hook);
}

static int tc_attach(struct ph_instance *inst, const char *name, int ifindex,
		     struct ph_iface *rec)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
		    .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = PH_TC_HANDLE,
		    .priority = PH_TC_PRIORITY, .prog_fd = inst->tc_prog_fd);
	__u32 existing;
	int err;

	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST) {
		pr_warn("%s: cannot create the clsact qdisc: %s; %s", name,
			strerror(-err),
			err == -EPERM ? "needs CAP_NET_ADMIN" :
			"is sch_clsact available in this kernel?");
		return PH_EXIT_ENV;
	}
	rec->tc_hook_created = !err;
	/* Attach first, query only if the place is taken: querying an empty
	 * chain makes the kernel log "Cannot find specified filter chain",
	 * which libbpf prints as a warning on every `-v attach`. */
	err = bpf_tc_attach(&hook, &opts);
	if (err == -EEXIST) {
		existing = tc_query(ifindex, PH_TC_HANDLE, PH_TC_PRIORITY);
		if (existing && existing != inst->tc_prog_id) {
			pr_warn("%s: a tc egress filter (handle %#x, pref %u, prog id %u) is in the way; remove it (tc filter del dev %s egress pref %u)",
				name, PH_TC_HANDLE, PH_TC_PRIORITY, existing,
				name, PH_TC_PRIORITY);
			goto undo;
		}
		opts.flags = BPF_TC_F_REPLACE;
		err = bpf_tc_attach(&hook, &opts);
	}
	if (err) {
		pr_warn("%s: cannot attach the TC egress program: %s", name,
			strerror(-err));
		goto undo;
	}
	rec->tc_handle = opts.handle;
	rec->tc_priority = (__u16)opts.priority;
	rec->tc_prog_id = opts.prog_id;
	return PH_EXIT_OK;
undo:
	if (rec->tc_hook_created)
		tc_hook_destroy(ifindex);
	return err == -EEXIST ? PH_EXIT_USER : PH_EXIT_ENV;
}

/*
 * Can frames reach XDP on @name with a checksum left to offload (only the
 * pseudo-header sum)? On a veth, the peer's stack hands its segments over
 * as CHECKSUM_PARTIAL, and the bytes XDP reads carry that partial value
 * (tcpdump on the receiving end shows "cksum incorrect"). Real NICs and
 * virtio_net under XDP deliver complete checksums.
 */
static bool iface_csum_partial(const char *name)
{
	struct ethtool_drvinfo di = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr;
	bool partial = false;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	memset(&ifr, 0, sizeof(ifr));
	ph_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	ifr.ifr_data = (void *)&di;
	if (!ioctl(fd, SIOCETHTOOL, &ifr))
		partial = !strcmp(di.driver, "veth");
	close(fd);
	return partial;
}

int ph_iface_attach(struct ph_instance *inst, const char *name, int ifindex,
		    enum ph_xdp_mode mode, struct ph_iface *out)
{
	struct ph_iface rec = {
		.ifindex = (__u32)ifindex,
		.xdp_prog_id = inst->xdp_prog_id,
		.netns_ino = inst->netns_ino,
		.flags = inst->attach_flags,
	};
	int r, err;

	ph_strlcpy(rec.name, name, sizeof(rec.name));
	if (iface_csum_partial(name))
		rec.flags |= PH_IFF_CSUM_PARTIAL;
	ph_iface_counters_claim(inst, ifindex);
	r = xdp_attach(inst, name, ifindex, mode, &rec);
	if (r)
		return r;
	r = tc_attach(inst, name, ifindex, &rec);
	if (r)
		goto undo_xdp;
	rec.attached_ns = ph_now_ns();
	err = bpf_map_update_elem(inst->fd[PH_MAP_IFACES], &rec.ifindex, &rec,
				  BPF_ANY);
	if (err) {
		pr_warn("%s: cannot record the interface in %s/ifaces: %s", name,
			inst->pin_dir, strerror(errno));
		r = PH_EXIT_ENV;
		goto undo_tc;
	}
	pr_debug("%s: attached (xdp %s, prog ids %u/%u)", name,
		 rec.xdp_flags == XDP_FLAGS_DRV_MODE ? "native" : "generic",
		 rec.xdp_prog_id, rec.tc_prog_id);
	if (out)
		*out = rec;
	return PH_EXIT_OK;
undo_tc:
	{
		LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
			    .attach_point = BPF_TC_EGRESS);
		LIBBPF_OPTS(bpf_tc_opts, d, .handle = rec.tc_handle,
			    .priority = rec.tc_priority);

		bpf_tc_detach(&hook, &d);
		if (rec.tc_hook_created)
			tc_hook_destroy(ifindex);
	}
undo_xdp:
	if (rec.xdp_dispatcher)
		ph_xdp_dispatcher_detach(ifindex, rec.xdp_prog_id);
	else
		xdp_detach_id(inst, ifindex, inst->xdp_prog_id, rec.xdp_flags);
	return r;
}

/* TC egress of rec from `from` to `to` (BPF_TC_F_REPLACE). */
static int tc_replace(const struct ph_iface *rec, const struct ph_progs *from,
		      const struct ph_progs *to, __u32 *new_id)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)rec->ifindex,
		    .attach_point = BPF_TC_EGRESS);
	__u32 handle, prio, tc_live;
	int err;

	tc_ids(rec, &handle, &prio);
	tc_live = tc_query((int)rec->ifindex, handle, prio);
	if (tc_live && !is_ours(tc_live, from->tc_id, rec->tc_prog_id)) {
		pr_warn("%s: tc egress filter (prog id %u) is not ours; not replacing it",
			rec->name, tc_live);
		return -EEXIST;
	}
	/* cls_bpf replaces the program of filter handle/pref in place
	 * (BPF_TC_F_REPLACE): no gap. */
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = prio,
		    .prog_fd = to->tc_fd,
		    .flags = tc_live ? BPF_TC_F_REPLACE : 0);
	err = bpf_tc_attach(&hook, &opts);
	if (err) {
		pr_warn("%s: replacing the TC egress program failed: %s",
			rec->name, strerror(-err));
		return err;
	}
	*new_id = opts.prog_id;
	return 0;
}

/* In libxdp's dispatcher: the new member joins, TC is swapped, then the
 * old member leaves. */
static int dispatcher_replace(const struct ph_iface *rec,
			      const struct ph_progs *from,
			      const struct ph_progs *to, struct ph_iface *nrec)
{
	enum ph_xdp_mode mode = rec->xdp_flags & XDP_FLAGS_SKB_MODE ?
					PH_MODE_GENERIC : PH_MODE_NATIVE;
	int ifindex = (int)rec->ifindex, err;
	struct ph_instance tmp;
	char why[256];

	if (!to->inst) {
		pr_warn("%s: internal error: no instance for the new dispatcher member",
			rec->name);
		return PH_EXIT_ENV;
	}
	/* The member is loaded from the new instance's pins, with the
	 * load-time options of the new prog_xdp. */
	tmp = *to->inst;
	tmp.xdp_prog_fd = to->xdp_fd;
	tmp.xdp_prog_id = to->xdp_id;
	err = ph_xdp_dispatcher_attach(&tmp, rec->name, ifindex, mode, nrec, why,
				       sizeof(why));
	if (err) {
		pr_warn("%s: cannot add the new program to libxdp's dispatcher: %s",
			rec->name, why);
		return PH_EXIT_ENV;
	}
	err = tc_replace(rec, from, to, &nrec->tc_prog_id);
	if (err) {
		ph_xdp_dispatcher_detach(ifindex, nrec->xdp_prog_id);
		return err == -EEXIST ? PH_EXIT_USER : PH_EXIT_ENV;
	}
	err = ph_xdp_dispatcher_detach(ifindex, rec->xdp_prog_id);
	if (err && err != -ENOENT)
		pr_warn("%s: the old XDP program (id %u) could not leave the dispatcher: %s; both run (each must pass a packet)",
			rec->name, rec->xdp_prog_id, strerror(-err));
	return PH_EXIT_OK;
}

int ph_iface_replace(const struct ph_instance *inst, const struct ph_iface *rec,
		     const struct ph_progs *from, const struct ph_progs *to,
		     struct ph_iface *out)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, xq);
	LIBBPF_OPTS(bpf_xdp_attach_opts, xo);
	int ifindex = (int)rec->ifindex, err, old_fd;
	struct ph_iface nrec = *rec;
	__u32 mode, live;

	(void)inst;
	if (rec->xdp_dispatcher) {
		err = dispatcher_replace(rec, from, to, &nrec);
		if (err)
			return err;
		goto done;
	}
	err = bpf_xdp_query(ifindex, 0, &xq);
	if (err) {
		pr_warn("%s: cannot query XDP: %s", rec->name, strerror(-err));
		return PH_EXIT_ENV;
	}
	live = xq.prog_id;
	mode = xq.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE :
	       xq.attach_mode == XDP_ATTACHED_DRV ? XDP_FLAGS_DRV_MODE : 0;
	if (!live || !mode || !is_ours(live, from->xdp_id, rec->xdp_prog_id)) {
		pr_warn("%s: XDP program id %u is not this instance's (%u); not replacing it",
			rec->name, live, from->xdp_id);
		return PH_EXIT_USER;
	}
	old_fd = xdp_fd_of(live, from->xdp_fd);
	if (old_fd < 0) {
		pr_warn("%s: cannot open the running XDP program (id %u): %s",
			rec->name, live, strerror(errno));
		return PH_EXIT_ENV;
	}
	/* One netlink request swaps the program: each packet runs either
	 * the old one or the new one. XDP_FLAGS_REPLACE (old_prog_fd): only
	 * if the old one still runs. */
	xo.old_prog_fd = old_fd;
	err = bpf_xdp_attach(ifindex, to->xdp_fd, mode | XDP_FLAGS_REPLACE, &xo);
	close(old_fd);
	if (err) {
		pr_warn("%s: replacing the XDP program failed: %s", rec->name,
			strerror(-err));
		return PH_EXIT_ENV;
	}
	nrec.xdp_prog_id = to->xdp_id;
	nrec.xdp_flags = mode;
	err = tc_replace(rec, from, to, &nrec.tc_prog_id);
	if (err) {
		/* Put the old XDP program back: the pair stays consistent. */
		LIBBPF_OPTS(bpf_xdp_attach_opts, back, .old_prog_fd = to->xdp_fd);
		int fd = xdp_fd_of(live, from->xdp_fd);

		if (fd < 0 || bpf_xdp_attach(ifindex, fd, mode | XDP_FLAGS_REPLACE,
					     &back))
			pr_warn("%s: could not put the old XDP program back; the new one stays",
				rec->name);
		if (fd >= 0)
			close(fd);
		return err == -EEXIST ? PH_EXIT_USER : PH_EXIT_ENV;
	}
done:
	pr_debug("%s: programs replaced (xdp %u -> %u%s, tc %u -> %u)", rec->name,
		 rec->xdp_prog_id, nrec.xdp_prog_id,
		 rec->xdp_dispatcher ? " in the dispatcher" : "", rec->tc_prog_id,
		 nrec.tc_prog_id);
	if (out)
		*out = nrec;
	return PH_EXIT_OK;
}

int ph_iface_detach(struct ph_instance *inst, const struct ph_iface *rec)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, xq);
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)rec->ifindex,
		    .attach_point = BPF_TC_EGRESS);
	char name[IF_NAMESIZE];
	__u32 handle, prio, tc_id;
	int ifindex = (int)rec->ifindex, r = PH_EXIT_OK, err;

	if (!if_indextoname(rec->ifindex, name)) {
		pr_debug("%s (ifindex %d) is gone; forgetting it", rec->name,
			 ifindex);
		goto forget;
	}
	if (rec->xdp_dispatcher) {
		err = ph_xdp_dispatcher_detach(ifindex, rec->xdp_prog_id);
		if (err == -ENOENT) {
			pr_info("%s: our XDP program (id %u) is no longer in its dispatcher",
				name, rec->xdp_prog_id);
		} else if (err) {
			pr_warn("%s: cannot remove our XDP program from the dispatcher: %s",
				name, strerror(-err));
			r = PH_EXIT_ENV;
		}
	} else if (!bpf_xdp_query(ifindex, 0, &xq)) {
		__u32 drv = xq.drv_prog_id, skb = xq.skb_prog_id;

		/* Single-program queries report prog_id + attach_mode. */
		if (xq.attach_mode == XDP_ATTACHED_DRV)
			drv = xq.prog_id;
		else if (xq.attach_mode == XDP_ATTACHED_SKB)
			skb = xq.prog_id;
		if (is_ours(drv, inst->xdp_prog_id, rec->xdp_prog_id)) {
			err = xdp_detach_id(inst, ifindex, drv, XDP_FLAGS_DRV_MODE);
			if (err) {
				pr_warn("%s: cannot remove the XDP program: %s",
					name, strerror(-err));
				r = PH_EXIT_ENV;
			}
		} else if (is_ours(skb, inst->xdp_prog_id, rec->xdp_prog_id)) {
			err = xdp_detach_id(inst, ifindex, skb, XDP_FLAGS_SKB_MODE);
			if (err) {
				pr_warn("%s: cannot remove the XDP program: %s",
					name, strerror(-err));
				r = PH_EXIT_ENV;
			}
		} else if (xq.prog_id) {
			pr_info("%s: XDP program id %u is not ours; left in place",
				name, xq.prog_id);
		}
	}
	tc_ids(rec, &handle, &prio);
	tc_id = tc_query(ifindex, handle, prio);
	if (is_ours(tc_id, inst->tc_prog_id, rec->tc_prog_id)) {
		LIBBPF_OPTS(bpf_tc_opts, d, .handle = handle, .priority = prio);

		err = bpf_tc_detach(&hook, &d);
		if (err) {
			pr_warn("%s: cannot remove the TC egress filter: %s",
				name, strerror(-err));
			r = PH_EXIT_ENV;
		}
	} else if (tc_id) {
		pr_info("%s: tc egress filter (prog id %u) is not ours; left in place",
			name, tc_id);
	}
	if (rec->tc_hook_created)
		tc_hook_destroy(ifindex);
forget:
	if (inst->fd[PH_MAP_IFACES] >= 0)
		bpf_map_delete_elem(inst->fd[PH_MAP_IFACES], &rec->ifindex);
	return r;
}
