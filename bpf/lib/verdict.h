/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one exit of each program counts the packet under its reason, in a
 * per-CPU slot (no atomics, no shared cache lines), and turns the reason
 * into the hook's action: PH_REASON_IS_DROP decides, nothing else.
 */
#ifndef PH_BPF_VERDICT_H
#define PH_BPF_VERDICT_H

#include "common.h"

static __always_inline void ph_count(__u32 dir, __u32 reason, __u64 bytes)
{
	__u32 idx = PH_COUNTER_IDX(dir, reason);
	struct ph_counter *c = bpf_map_lookup_elem(&counters, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

#endif /* PH_BPF_VERDICT_H */
