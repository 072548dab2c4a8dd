// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include "packets.h"

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __u32 csum_add(__u32 sum, const void *buf, size_t len)
{
	const __u8 *b = buf;

	for (; len > 1; len -= 2, b += 2)
		sum += (__u32)b[0] << 8 | b[1];
	if (len)
		sum += (__u32)b[0] << 8;
	return sum;
}

static __be16 csum_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

static __u32 pseudo_sum(const struct tcp_spec *s, __u32 l4_len)
{
	__u32 sum = 0;
	int alen = s->ipv6 ? 16 : 4;

	sum = csum_add(sum, s->saddr, alen);
	sum = csum_add(sum, s->daddr, alen);
	return sum + IPPROTO_TCP + l4_len;
}

static __u8 *put_l2(__u8 *p, const struct tcp_spec *s)
{
	struct ethhdr *eth = (void *)p;
	__be16 l3 = htons(s->ipv6 ? ETH_P_IPV6 : ETH_P_IP);

	memcpy(eth->h_dest, s->dst_mac, 6);
	memcpy(eth->h_source, s->src_mac, 6);
	if (!s->vlan) {
		eth->h_proto = l3;
		return p + sizeof(*eth);
	}
	eth->h_proto = htons(ETH_P_8021Q);
	struct vlan_hdr *vh = (void *)(eth + 1);
	vh->tci = htons(s->vlan & 0x0fff);
	vh->proto = l3;
	return (__u8 *)(vh + 1);
}

static __u8 *put_l3(__u8 *p, const struct tcp_spec *s, __u32 l4_len)
{
	if (s->ipv6) {
		struct ipv6hdr *ip6 = (void *)p;

		memset(ip6, 0, sizeof(*ip6));
		ip6->version = 6;
		ip6->payload_len = htons(l4_len);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		memcpy(&ip6->saddr, s->saddr, 16);
		memcpy(&ip6->daddr, s->daddr, 16);
		return p + sizeof(*ip6);
	}
	struct iphdr *ip = (void *)p;

	memset(ip, 0, sizeof(*ip));
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(sizeof(*ip) + l4_len);
	ip->id = htons(0x1970);
	ip->frag_off = htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	memcpy(&ip->saddr, s->saddr, 4);
	memcpy(&ip->daddr, s->daddr, 4);
	ip->check = csum_fold(csum_add(0, ip, sizeof(*ip)));
	return p + sizeof(*ip);
}

int pkt_build_tcp(struct pkt *p, const struct tcp_spec *s)
{
	size_t plen = s->payload ? strlen(s->payload) : 0;
	__u32 l4_len = sizeof(struct tcphdr) + plen;
	__u8 *l3, *l4;
	struct tcphdr *tcp;

	if (14 + 4 + 40 + l4_len > PKT_MAX)
		return -1;
	memset(p, 0, sizeof(*p));
	l3 = put_l2(p->data, s);
	l4 = put_l3(l3, s, l4_len);
	tcp = (void *)l4;
	tcp->source = htons(s->sport);
	tcp->dest = htons(s->dport);
	tcp->seq = htonl(0x19700000);
	tcp->ack_seq = (s->flags & TCPF_ACK) ? htonl(0x19710000) : 0;
	tcp->doff = 5;
	((__u8 *)tcp)[13] = s->flags;
	tcp->window = htons(64240);
	memcpy(tcp + 1, s->payload ? s->payload : "", plen);
	tcp->check = csum_fold(csum_add(pseudo_sum(s, l4_len), tcp, l4_len));
	p->len = l4 + l4_len - p->data;
	if (p->len < 60) /* minimum Ethernet frame, as a NIC delivers it */
		p->len = 60;
	return 0;
}

int parse_addr(const char *text, __u8 out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, text, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, text, out) == 1)
		return 6;
	return -1;
}

int parse_mac(const char *text, __u8 out[6])
{
	unsigned int b[6];

	if (sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
		   &b[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		out[i] = b[i];
	return 0;
}

void addr_to_key(bool ipv6, const __u8 addr[16], __u8 key[16])
{
	if (ipv6) {
		memcpy(key, addr, 16);
		return;
	}
	memset(key, 0, 16);
	key[10] = key[11] = 0xff;
	memcpy(key + 12, addr, 4);
}
