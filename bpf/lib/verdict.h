/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one exit of each program counts the packet under its reason and
 * interface slot, and under its service if a rule or flow named one, in
 * per-CPU slots (no atomics, no shared cache lines); hands it to a
 * listening monitor; and turns the reason into the hook's action:
 * PH_REASON_IS_DROP decides, nothing else.
 */
#ifndef PH_BPF_VERDICT_H
#define PH_BPF_VERDICT_H

#include "common.h"
#include "monitor.h"

static __always_inline void ph_count(__u32 dir, __u32 ifindex, __u32 reason,
				     __u32 svc, __u64 bytes)
{
	__u32 idx = PH_COUNTER_IF_IDX(PH_IFACE_SLOT(ifindex), dir, reason);
	struct ph_counter *c = bpf_map_lookup_elem(&counters, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
	if (!svc)
		return;
	idx = PH_SVC_IDX(dir, PH_REASON_IS_DROP(reason), svc);
	c = bpf_map_lookup_elem(&svc_counters, &idx);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* Counters, then the monitor. @p: NULL if the packet was not parsed. */
static __always_inline void ph_record(__u32 dir, __u32 ifindex, __u32 reason,
				      __u32 svc, __u32 len,
				      const struct ph_pkt *p)
{
	ph_count(dir, ifindex, reason, svc, len);
	if (ph_unlikely(ph_mon_ctl() != NULL))
		ph_mon_packet(dir, ifindex, reason | (svc << 16), len, p);
}

#endif /* PH_BPF_VERDICT_H */
