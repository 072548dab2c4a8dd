// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Placeholder entry (replaced by the datapath work): passes and counts. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"

const volatile struct ph_load_cfg ph_cfg = {};

SEC("xdp")
int pinhole_xdp(struct xdp_md *ctx)
{
	__u32 idx = PH_COUNTER_IDX(PH_DIR_IN, PH_R_PASS_NON_IP);
	struct ph_counter *c = bpf_map_lookup_elem(&counters, &idx);

	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
