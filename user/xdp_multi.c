// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * XDP hook sharing through libxdp's dispatcher (docs/cli.md, "Sharing the
 * XDP hook"). A dispatcher member is a BPF_PROG_TYPE_EXT program that
 * replaces one slot of the dispatcher (freplace), so the pinned prog_xdp
 * (type XDP) cannot be one: each interface gets its own load of the
 * ingress object as an EXT program, with the instance's pinned maps and
 * the same .rodata (load-time options) as prog_xdp. libxdp pins it and its
 * link under /sys/fs/bpf/xdp/, so it outlives this process; the ifaces
 * record keeps its id, and detach removes exactly that program.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <pinhole/pinhole.h>

#include "xdp_ingress.skel.h"

#include "log.h"
#include "util.h"
#include "xdp_multi.h"

static int libxdp_print(enum libxdp_print_level level, const char *fmt,
			va_list ap)
{
	if (!ph_log_verbose() || level == LIBXDP_DEBUG)
		return 0;
	fputs("libxdp: ", stderr);
	return vfprintf(stderr, fmt, ap);
}

static void quiet_libxdp(void)
{
	static bool done;

	if (!done)
		libxdp_set_print(libxdp_print);
	done = true;
}

bool ph_xdp_dispatcher_wanted(void)
{
	const char *e = getenv("PINHOLE_XDP_DISPATCHER");

	return !e || strcmp(e, "0");
}

/* The .rodata of the running prog_xdp (its load-time options) into the
 * new object, so every copy of the ingress program enforces alike. */
static int copy_rodata(int prog_fd, struct xdp_ingress_bpf *skel)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), ids[64], n;
	size_t want = sizeof(*skel->rodata);
	void *dst = skel->rodata;
	int err = -ENOENT;

	info.nr_map_ids = ARRAY_SIZE(ids);
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -errno ? -errno : -EINVAL;
	n = info.nr_map_ids < ARRAY_SIZE(ids) ? info.nr_map_ids : ARRAY_SIZE(ids);
	for (__u32 i = 0; i < n && err; i++) {
		struct bpf_map_info mi = {};
		__u32 ml = sizeof(mi), zero = 0;
		int fd = bpf_map_get_fd_by_id(ids[i]);
		size_t nl;

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &mi, &ml) &&
		    (nl = strlen(mi.name)) >= 7 &&
		    !strcmp(mi.name + nl - 7, ".rodata")) {
			void *buf = calloc(1, mi.value_size);

			err = !buf ? -ENOMEM :
			      mi.value_size != want ? -EINVAL :
			      bpf_map_lookup_elem(fd, &zero, buf) ? -errno : 0;
			if (!err)
				memcpy(dst, buf, want);
			free(buf);
		}
		close(fd);
	}
	return err;
}

static enum xdp_attach_mode libxdp_mode(bool native)
{
	return native ? XDP_MODE_NATIVE : XDP_MODE_SKB;
}

static bool in_dispatcher(int ifindex, __u32 prog_id);

int ph_xdp_dispatcher_attach(const struct ph_instance *inst, const char *name,
			     int ifindex, enum ph_xdp_mode mode,
			     struct ph_iface *rec, char *why, size_t len)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = inst->pin_dir);
	struct xdp_ingress_bpf *skel;
	struct xdp_program *xp;
	char msg[128];
	int err = 0;
	bool native = mode != PH_MODE_GENERIC;

	quiet_libxdp();
	/* Without extension programs libxdp would try its dispatcher, fail,
	 * and attach a copy of our program alone: find out first (libbpf's
	 * probe, as `bpftool feature probe` shows it). A probe that cannot
	 * tell (< 0) leaves the decision to libxdp. */
	if (!libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_EXT, NULL)) {
		snprintf(why, len, "this kernel does not load BPF extension (freplace) programs, which the dispatcher's members are");
		return -EOPNOTSUPP;
	}
	skel = xdp_ingress_bpf__open_opts(&opts);
	if (!skel) {
		snprintf(why, len, "cannot open the ingress object: %s",
			 strerror(errno));
		return -errno;
	}
	err = copy_rodata(inst->xdp_prog_fd, skel);
	if (err) {
		snprintf(why, len, "cannot copy the load-time options of prog_xdp: %s",
			 strerror(-err));
		goto out;
	}
	/* The pinned maps are reused: their sizes must be the running ones. */
	bpf_map__set_max_entries(skel->maps.flows, inst->max_entries[PH_MAP_FLOWS]);
	bpf_map__set_max_entries(skel->maps.half_open,
				 inst->max_entries[PH_MAP_HALF_OPEN]);
	xp = xdp_program__from_bpf_obj(skel->obj, "xdp");
	err = (int)libxdp_get_error(xp);
	if (err) {
		libxdp_strerror(err, msg, sizeof(msg));
		snprintf(why, len, "libxdp cannot use the ingress program: %s", msg);
		goto out;
	}
	/* Also in the object's .xdp_run_config; set here too, so an object
	 * without it still orders the same. */
	xdp_program__set_run_prio(xp, PH_XDP_RUN_PRIO);
	xdp_program__set_chain_call_enabled(xp, XDP_PASS, true);
	err = xdp_program__attach(xp, ifindex, libxdp_mode(native), 0);
	if (err && native && mode == PH_MODE_AUTO) {
		pr_debug("%s: libxdp native attach failed (%d); trying generic",
			 name, err);
		native = false;
		err = xdp_program__attach(xp, ifindex, libxdp_mode(false), 0);
	}
	if (err) {
		libxdp_strerror(err, msg, sizeof(msg));
		snprintf(why, len, "%s", msg);
		xdp_program__close(xp);
		goto out;
	}
	if (!in_dispatcher(ifindex, xdp_program__id(xp))) {
		/* libxdp falls back to attaching the program alone when the
		 * kernel refuses its dispatcher (no freplace): then nothing
		 * could share the hook anyway, and prog_xdp is the program
		 * the plain attach manages. Undo, and let the caller do it. */
		xdp_program__detach(xp, ifindex, libxdp_mode(native), 0);
		snprintf(why, len, "the kernel refused its BPF extension (freplace) programs; -v shows libxdp's reason");
		xdp_program__close(xp);
		err = -EOPNOTSUPP;
		goto out;
	}
	if (!native && mode == PH_MODE_AUTO)
		pr_info("%s: native XDP unavailable; using generic mode, which is slower",
			name);
	rec->xdp_prog_id = xdp_program__id(xp);
	rec->xdp_flags = native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	rec->xdp_dispatcher = 1;
	xdp_program__close(xp);
	pr_debug("%s: attached through the libxdp dispatcher (prog id %u, priority %d)",
		 name, rec->xdp_prog_id, PH_XDP_RUN_PRIO);
out:
	xdp_ingress_bpf__destroy(skel);
	return err;
}

/* Our member of ifindex's dispatcher (id prog_id), or NULL. */
static struct xdp_program *find_member(struct xdp_multiprog *mp, __u32 prog_id)
{
	struct xdp_program *p;

	if (xdp_multiprog__is_legacy(mp))
		return NULL;
	for (p = xdp_multiprog__next_prog(NULL, mp); p;
	     p = xdp_multiprog__next_prog(p, mp))
		if (xdp_program__id(p) == prog_id)
			return p;
	return NULL;
}

static struct xdp_multiprog *multiprog_of(int ifindex)
{
	struct xdp_multiprog *mp;

	quiet_libxdp();
	mp = xdp_multiprog__get_from_ifindex(ifindex);
	return libxdp_get_error(mp) ? NULL : mp;
}

static bool in_dispatcher(int ifindex, __u32 prog_id)
{
	return ph_xdp_dispatcher_has(ifindex, prog_id, NULL);
}

bool ph_xdp_dispatcher_has(int ifindex, __u32 prog_id, __u8 *attach_mode)
{
	struct xdp_multiprog *mp = multiprog_of(ifindex);
	bool found = mp && find_member(mp, prog_id);

	if (found && attach_mode)
		*attach_mode = xdp_multiprog__attach_mode(mp) == XDP_MODE_SKB ?
				       XDP_ATTACHED_SKB : XDP_ATTACHED_DRV;
	if (mp)
		xdp_multiprog__close(mp);
	return found;
}

int ph_xdp_dispatcher_detach(int ifindex, __u32 prog_id)
{
	struct xdp_multiprog *mp = multiprog_of(ifindex);
	struct xdp_program *p = mp ? find_member(mp, prog_id) : NULL;
	int err = -ENOENT;

	if (p)
		err = xdp_program__detach(p, ifindex,
					  xdp_multiprog__attach_mode(mp), 0);
	if (mp)
		xdp_multiprog__close(mp);
	return err;
}

int ph_xdp_dispatcher_members(int ifindex, char *names, size_t len,
			      bool *has_pinhole)
{
	struct xdp_multiprog *mp = multiprog_of(ifindex);
	struct xdp_program *p;
	int n = 0;

	*has_pinhole = false;
	if (names && len)
		names[0] = '\0';
	if (!mp)
		return -ENOENT;
	if (xdp_multiprog__is_legacy(mp)) {
		xdp_multiprog__close(mp);
		return -EINVAL;
	}
	for (p = xdp_multiprog__next_prog(NULL, mp); p;
	     p = xdp_multiprog__next_prog(p, mp), n++) {
		if (!strcmp(xdp_program__name(p), "pinhole_xdp"))
			*has_pinhole = true;
		if (names && strlen(names) + strlen(xdp_program__name(p)) + 3 < len)
			snprintf(names + strlen(names), len - strlen(names), "%s%s",
				 n ? ", " : "", xdp_program__name(p));
	}
	xdp_multiprog__close(mp);
	return n;
}
