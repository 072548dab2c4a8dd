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
#include <stddef.h>
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
	char build[64];    /* state.build: the build of the programs in force */
	bool foreign;      /* a pin under one of our names pinhole did not make */
	char foreign_name[64];
	__u8 attach_flags; /* ph_iface.flags of interfaces ph_iface_attach adds */
};

const char *ph_map_name(enum ph_map_id id);

/* This build's identity, recorded in state.build: "VERSION bpf:HASH"
 * (pinhole.h). */
const char *ph_build_id(void);

/* Does pin_dir hold an instance, i.e. a `state` pin pinhole made? */
bool ph_instance_exists(const char *pin_dir);

/* Does pin_dir hold a pin under one of pinhole's names that pinhole did
 * not make (a map made by hand, a `state` that is not ours)? 1 (its name
 * in name) or 0. Such pins are never removed or replaced. */
int ph_pin_dir_foreign(const char *pin_dir, char *name, size_t len);

/* Open an existing instance by its pins. Returns 0, -ENOENT when there is
 * no instance (no message), or PH_EXIT_ENV after a message. An instance of
 * another layout opens with compatible == false. */
int ph_instance_open(struct ph_instance *inst, const char *pin_dir);
void ph_instance_close(struct ph_instance *inst);

/* Message + PH_EXIT_ENV unless inst->compatible. */
int ph_instance_need_compatible(const struct ph_instance *inst);

/* For attach/run: reuse the instance if it carries interfaces, else
 * (re)create it. *created says which. *upgrade: it carries interfaces but
 * runs another build's programs or has another layout: the caller must
 * ph_upgrade() it before use. Refuses (PH_EXIT_ENV) a pin dir holding
 * pins pinhole did not make. Caller holds the lock and prepared bpffs. */

/* The .rodata configuration `attach` loads the programs with (also used by
 * the kernel-matrix verifier check, tests/vm/phverify.c). */
void ph_load_cfg_init(struct ph_load_cfg *cfg, const struct ph_load_opts *o);

int ph_instance_prepare(struct ph_instance *inst, const char *pin_dir,
			const struct ph_load_opts *o, bool *created,
			bool *upgrade);

/* Load this build's programs and maps into pin_dir (which must hold no
 * pin under our names), pin them, record layout and build in state. On
 * failure removes what it made. */
int ph_instance_create(const char *pin_dir, const struct ph_load_opts *o);

/* Unpin the pins pinhole made under pin_dir (`state` last) and remove
 * the directory if that empties it. Pins made by others stay. */
void ph_instance_remove(const char *pin_dir);

/* Move every pin of the instance at `from` over those of `to` (rename,
 * `state` last), removing the pins of `to` that pinhole made and `from`
 * lacks. 0 or -errno. */
int ph_instance_move(const char *from, const char *to);

/* state[0] of any layout, zero-extended (fields are only appended).
 * 0 or -errno. */
int ph_state_read(const struct ph_instance *inst, struct ph_state *st);
/* state.build = ph_build_id(). 0 or -errno. */
int ph_state_write_build(const struct ph_instance *inst);

/* ---- programs (upgrade) ---- */

struct ph_progs {
	int xdp_fd, tc_fd; /* -1: none */
	__u32 xdp_id, tc_id;
	/* The instance whose maps these programs use: a libxdp dispatcher
	 * member is loaded from its pin dir (ph_iface_replace). */
	const struct ph_instance *inst;
};

/* Load this build's two programs with maps pinned under pin_root: maps
 * pinned there are reused (they must match), missing ones are created and
 * pinned. The programs are not pinned. Returns a PH_EXIT_* code. */
int ph_progs_load(const char *pin_root, const struct ph_load_opts *o,
		  struct ph_progs *p);
void ph_progs_close(struct ph_progs *p);

/* Pin fd as pin_dir/name, atomically replacing a pin of that name
 * (bpf_obj_pin into pin_dir/upgrading, then rename). 0 or -errno. */
int ph_pin_replace(int fd, const char *pin_dir, const char *name);
/* The staging directory of ph_pin_replace() and upgrades, in pin_dir. */
#define PH_STAGING_DIR "upgrading" /* bpffs refuses names with a dot */

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

/* Swap the programs on a live interface from `from` to `to` without a
 * gap: XDP with XDP_FLAGS_REPLACE (old_prog_fd), or in libxdp's dispatcher
 * the new member added before the old one is removed (meanwhile both run,
 * each must pass a packet); TC egress with BPF_TC_F_REPLACE on the
 * recorded handle/priority. Either both are replaced (out: the new record,
 * not yet written) or neither. */
int ph_iface_replace(const struct ph_instance *inst, const struct ph_iface *rec,
		     const struct ph_progs *from, const struct ph_progs *to,
		     struct ph_iface *out);

/* Remove our XDP program and TC filter (only if they are ours), the
 * clsact qdisc if we created it, and the ifaces entry. */
int ph_iface_detach(struct ph_instance *inst, const struct ph_iface *rec);

#endif /* PH_USER_LOADER_H */
