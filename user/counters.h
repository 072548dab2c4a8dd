/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service and interface counters (include/pinhole/pinhole.h): the stable
 * service counter ids given at every policy install, the per-interface
 * slots of `counters` claimed at attach, and readers for stats, the
 * Prometheus exposition and the monitor.
 */
#ifndef PH_USER_COUNTERS_H
#define PH_USER_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>

#include "loader.h"
#include "policy.h"

/*
 * Counter ids for the services of @pol, about to be written into the
 * inactive slot: a name keeps its id; a new name takes a never-used id,
 * else one whose name neither @pol nor the policy in force (its rules in
 * @active_slot, @active_nrules) uses, the one unused for longest first
 * (svc_ids[id].generation: the last @generation that used it), whose
 * counters are zeroed first. ids[i] for service i; 0 (not counted, with a notice) when
 * all PH_SVC_MAX - 1 are taken. 0 or -errno.
 */
int ph_svc_ids_assign(const struct ph_instance *inst,
		      const struct ph_policy *pol, __u32 active_slot,
		      __u32 active_nrules, __u32 generation, __u16 *ids);

/* Zero the counters of the interface slot of @ifindex unless another
 * interface recorded in ifaces shares it (attach, before the programs
 * go on). */
void ph_iface_counters_claim(const struct ph_instance *inst, int ifindex);

/* One service of the policy in force, with its counters summed over CPUs:
 * c[dir][drop]. */
struct ph_svc_stat {
	__u16 id;
	char name[64];
	struct ph_counter c[PH_DIR_MAX][2];
};

/* The services of the active slot in policy order (one entry per counter
 * id; *n set), plus the packets no service was credited with as *none
 * (totals minus services). Caller frees *out. 0 or -errno. */
int ph_svc_stats_read(const struct ph_instance *inst,
		      struct ph_svc_stat **out, int *n,
		      struct ph_svc_stat *none);

/* The name of counter id @id ("" if none). */
void ph_svc_name(const struct ph_instance *inst, __u16 id, char *buf,
		 size_t len);

/* Counters of one interface slot by reason, summed over CPUs. */
struct ph_iface_stat {
	__u32 ifindex;
	char name[16];
	bool shared; /* another attached interface uses the same slot */
	struct ph_counter r[PH_COUNTER_ENTRIES]; /* PH_COUNTER_IDX */
};

/* One entry per attached interface (ifaces). Caller frees. 0 or -errno. */
int ph_iface_stats_read(const struct ph_instance *inst,
			struct ph_iface_stat **out, int *n);

#endif /* PH_USER_COUNTERS_H */
