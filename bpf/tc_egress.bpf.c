// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Placeholder entry (replaced by the datapath work): passes and counts. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"

const volatile struct ph_load_cfg ph_cfg = {};

SEC("tc")
int pinhole_tc(struct __sk_buff *skb)
{
	__u32 idx = PH_COUNTER_IDX(PH_DIR_OUT, PH_R_PASS_NON_IP);
	struct ph_counter *c = bpf_map_lookup_elem(&counters, &idx);

	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
