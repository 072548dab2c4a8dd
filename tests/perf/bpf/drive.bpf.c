// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test-run driver for paths a repeated identical packet cannot exercise:
 * a new connection leaves state behind (half_open), and a pinhole is
 * consumed by its first packet. The driver gives every run a fresh source
 * address/port (from a counter; the packet buffer persists between
 * repetitions of BPF_PROG_TEST_RUN), optionally re-installs the pinhole
 * the packet will use, then tail-calls the program under test.
 *
 * Its own cost is measured by driving the bare program the same way, and
 * subtracted (bench.py): cost(drive -> pinhole) - cost(drive -> bare) +
 * cost(bare).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <pinhole/pinhole.h>

#define DRIVE_SYN 0    /* vary the source, nothing else */
#define DRIVE_EXPECT 1 /* vary the source and install the pinhole */

const volatile __u32 drive_mode = DRIVE_SYN;

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

/* Replaced (bpf_map__reuse_fd) by the expect map of the program under
 * test; a private one when driving the bare program, so both do the same
 * work. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PH_EXPECT_MAX);
	__type(key, struct ph_flow_key);
	__type(value, struct ph_expect);
} expect SEC(".maps");

/* Reused likewise: the port's watch is raised before the pinhole is
 * written, as every writer of an inbound pinhole does (pinhole.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PH_SYN_WATCH_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} syn_watch SEC(".maps");

__u64 runs = 0;

static __always_inline void v4_mapped(__u8 *out, __be32 a)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &a, 4);
}

static __always_inline void install_pinhole(const struct iphdr *ip,
					    const struct tcphdr *tcp)
{
	struct ph_flow_key k = {};
	struct ph_expect e = {};

	v4_mapped(k.local, ip->daddr);
	v4_mapped(k.remote, ip->saddr);
	k.lport = tcp->dest;
	k.rport = 0; /* passive mode: any client source port */
	k.proto = IPPROTO_TCP;
	__u32 widx = PH_SYN_WATCH_IDX(PH_SW_EXPECT, bpf_ntohs(tcp->dest));
	__u64 *until = bpf_map_lookup_elem(&syn_watch, &widx);

	e.deadline_ns = bpf_ktime_get_coarse_ns() + 30 * 1000000000ull;
	e.session = 1;
	e.dir = PH_DIR_IN;
	if (until && *until < e.deadline_ns + PH_SYN_WATCH_GRACE_S * 1000000000ull)
		*until = e.deadline_ns + PH_SYN_WATCH_GRACE_S * 1000000000ull;
	bpf_map_update_elem(&expect, &k, &e, BPF_ANY);
}

SEC("xdp")
int drive(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1); /* IPv4, ihl 5: our packets */
	__u64 n;

	if ((void *)(tcp + 1) > data_end)
		return XDP_ABORTED;
	n = runs++;
	/* 240 hosts x 60000 ports: 14.4M distinct connections before a
	 * source repeats, more than any bench run sends. Checksums are left
	 * stale: XDP programs under test do not verify them. */
	((__u8 *)&ip->saddr)[3] = 10 + n % 240;
	tcp->source = bpf_htons(1024 + (n / 240) % 60000);
	if (drive_mode == DRIVE_EXPECT)
		install_pinhole(ip, tcp);
	bpf_tail_call(ctx, &target, 0);
	return XDP_ABORTED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
