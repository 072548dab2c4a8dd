// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Live-frame generator: run with BPF_PROG_RUN + BPF_F_TEST_XDP_LIVE_FRAMES
 * on a template IPv4 TCP packet; every frame gets its own source address
 * (last octet) and source port from a counter, so receivers see distinct
 * flows, then is redirected out of tx_ifindex (a veth: the frame arrives in
 * the peer namespace). Checksums are updated incrementally (RFC 1624) so the
 * kernel stack and conntrack accept the frames as valid.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

const volatile __u32 tx_ifindex = 0;
const volatile __u32 src_hosts = 240; /* last octet varies over [base, base+n) */
const volatile __u32 src_host_base = 10;
const volatile __u32 src_ports = 60000; /* source port over [1024, 1024+n) */

/* Test runs execute on one CPU, so a plain counter is race-free. */
__u64 frames = 0;

static __always_inline __u16 csum_replace16(__u16 check, __u16 from, __u16 to)
{
	__u32 s = (__u16)~check + (__u16)~from + (__u32)to;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

SEC("xdp")
int gen_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1); /* the template has ihl == 5 */
	__u16 *saddr_lo, old_addr, new_addr, old_port, new_port;
	__u64 n;

	if ((void *)(tcp + 1) > data_end)
		return XDP_ABORTED;

	n = frames++;
	saddr_lo = (__u16 *)&ip->saddr + 1;
	old_addr = *saddr_lo;
	old_port = tcp->source;
	/* low 16 bits of a.b.c.d in network order: c.d, c kept 0 */
	new_addr = bpf_htons(src_host_base + n % src_hosts);
	new_port = bpf_htons(1024 + (n / src_hosts) % src_ports);

	*saddr_lo = new_addr;
	ip->check = csum_replace16(ip->check, old_addr, new_addr);
	tcp->source = new_port;
	tcp->check = csum_replace16(tcp->check, old_addr, new_addr);
	tcp->check = csum_replace16(tcp->check, old_port, new_port);

	return bpf_redirect(tx_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
