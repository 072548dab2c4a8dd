/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Loading, pinning, attaching and detaching. An "instance" is one pin
 * directory: the maps of include/pinhole/pinhole.h pinned by name, plus the
 * two programs pinned as prog_xdp and prog_tc, so that reload, status,
 * detach and attach of another interface work without loading anything.
 * An instance belongs to one network namespace (ifaces is keyed by
 * ifindex).
 *
 * Functions returning int return a PH_EXIT_* code after printing a one-line
 * message, unless documented otherwise.
 */
#ifndef PH_USER_LOADER_H
#define PH_USER_LOADER_H

#include <limits.h>
#include <stdbool.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>

#define PH_PIN_PROG_XDP "prog_xdp"
#define PH_PIN_PROG_TC "prog_tc"

/* Our TC egress filter. Recorded in struct ph_iface, so a later build may
 * choose others and still detach this one. */
#define PH_TC_HANDLE 0x7068u /* "ph" */
#define PH_TC_PRIORITY 1

enum ph_xdp_mode {
	PH_MODE_AUTO = 0, /* native, else generic with a notice */
	PH_MODE_NATIVE,
	PH_MODE_GENERIC,
};

/* Load-time options (set in .rodata / map sizes before load). *_set: the
 * user gave it explicitly, so it must match a running instance. */
struct ph_load_opts {
	bool fail_open, fail_open_set;
	__u16 failsafe_port;
	bool failsafe_set;
	__u32 flows_max;     /* 0: default */
	__u32 half_open_max; /* 0: default */
};

enum ph_map_id {
	PH_MAP_STATE,
	PH_MAP_SLOT_META,
	PH_MAP_PORTS,
	PH_MAP_RULES,
	PH_MAP_SERVICE_NAMES,
	PH_MAP_PEERS,
	PH_MAP_FLOWS,
	PH_MAP_HALF_OPEN,
	PH_MAP_FRAGS,
	PH_MAP_EXPECT,
	PH_MAP_COUNTERS,
	PH_MAP_IFACES,
	PH_MAP_FTPS_PEERS,
	PH_MAP_FTP_NAT,
	PH_MAP_SVC_COUNTERS,
	PH_MAP_SVC_IDS,
	PH_MAP_MONITOR,
	PH_MAP_MONITOR_CTL,
	PH_MAP__COUNT,
};

struct ph_instance {
	char pin_dir[PATH_MAX];
	int fd[PH_MAP__COUNT];      /* -1 when missing */
	__u32 max_entries[PH_MAP__COUNT];
	__u32 ifaces_value_size, state_value_size;
	__u32 layout_version; /* of the pins, 0 if unreadable */
	int xdp_prog_fd, tc_prog_fd; /* -1 when missing */
	__u32 xdp_prog_id, tc_prog_id;
	bool compatible;   /* every map as this build expects it */
	char why[200];     /* when !compatible */
	__u64 netns_ino;   /* of this process */
};

const char *ph_map_name(enum ph_map_id id);

/* Does pin_dir hold (part of) an instance? */
bool ph_instance_exists(const char *pin_dir);

/* Open an existing instance by its pins. Returns 0, -ENOENT when there is
 * no instance (no message), or PH_EXIT_ENV after a message. An instance of
 * another layout opens with compatible == false. */
int ph_instance_open(struct ph_instance *inst, const char *pin_dir);
void ph_instance_close(struct ph_instance *inst);

/* Message + PH_EXIT_ENV unless inst->compatible. */
int ph_instance_need_compatible(const struct ph_instance *inst);

/* For attach/run: reuse the instance if it carries interfaces and matches
 * this build, else (re)create it. *created says which. Caller holds the
 * lock and has prepared bpffs. */
int ph_instance_prepare(struct ph_instance *inst, const char *pin_dir,
			const struct ph_load_opts *o, bool *created);

/* Unpin everything pinhole pins under pin_dir and remove the directory. */
void ph_instance_remove(const char *pin_dir);

/* ---- interfaces ---- */

/* Read the ifaces map (tolerates older value layouts). Returns the count
 * (at most max) or a negative errno. */
int ph_ifaces_list(const struct ph_instance *inst, struct ph_iface *out,
		   int max);

enum ph_iface_liveness {
	PH_IFACE_LIVE,    /* our programs are attached */
	PH_IFACE_GONE,    /* interface or our programs are gone */
	PH_IFACE_FOREIGN, /* recorded from another network namespace */
};

struct ph_iface_live {
	enum ph_iface_liveness state;
	__u32 xdp_prog_id; /* live, 0: none */
	__u8 xdp_attach_mode; /* XDP_ATTACHED_* */
	__u32 tc_prog_id;  /* live, 0: none */
};

void ph_iface_probe(const struct ph_instance *inst, const struct ph_iface *rec,
		    struct ph_iface_live *live);

/* Is another XDP program on ifindex? Message + PH_EXIT_USER if so. */
int ph_iface_check_free(const char *name, int ifindex);

/* Attach XDP + TC egress and record the interface; rolls back its own
 * work on failure. */
int ph_iface_attach(struct ph_instance *inst, const char *name, int ifindex,
		    enum ph_xdp_mode mode, struct ph_iface *out);

/* Remove our XDP program and TC filter (only if they are ours), the
 * clsact qdisc if we created it, and the ifaces entry. */
int ph_iface_detach(struct ph_instance *inst, const struct ph_iface *rec);

#endif /* PH_USER_LOADER_H */
