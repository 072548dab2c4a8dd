// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The floor: the cheapest XDP programs that still do what every real
 * program does, one per-CPU counter bump per packet. bare_pass is the
 * BPF_PROG_TEST_RUN floor and the receiver that hands frames to the stack
 * (nftables run); bare_drop is the live-rate floor.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bare_stat {
	__u64 packets;
	__u64 bytes;
};

/* Index 0: packets seen. The name is what `phperf count` looks for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bare_stat);
} bare_stats SEC(".maps");

static __always_inline int count_and(struct xdp_md *ctx, int action)
{
	__u32 key = 0;
	struct bare_stat *s = bpf_map_lookup_elem(&bare_stats, &key);

	if (s) {
		s->packets++;
		s->bytes += ctx->data_end - ctx->data;
	}
	return action;
}

SEC("xdp")
int bare_pass(struct xdp_md *ctx)
{
	return count_and(ctx, XDP_PASS);
}

SEC("xdp")
int bare_drop(struct xdp_md *ctx)
{
	return count_and(ctx, XDP_DROP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
