/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing: Ethernet, up to two VLAN tags, IPv4 (options skipped) or
 * IPv6 (bounded extension-header walk), then TCP/UDP/ICMP/ICMPv6. Cursor
 * style after xdp-tools' parsing_helpers.h: every header is bounds-checked
 * as `if (hdr + 1 > data_end)` before it is read.
 *
 * ph_parse() returns PH_CONTINUE with struct ph_pkt filled, or the verdict
 * reason for a frame that never reaches policy (non-IP, malformed).
 */
#ifndef PH_BPF_PARSE_H
#define PH_BPF_PARSE_H

#include "common.h"

#define PH_VLAN_MAX 2
#define PH_IPV6_EXT_MAX 6

struct ph_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

#define PH_IP_MF 0x2000
#define PH_IP_OFFSET 0x1fff
#define PH_IP6_MF 0x0001
#define PH_IP6_OFFSET 0xfff8

struct ph_cursor {
	void *pos;
	void *data;
	void *end;
	__u32 len;    /* whole packet, linear or not (skb->len in TC) */
	__u32 ip_end; /* offset of the end of the IP datagram */
};

static __always_inline int ph_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) ||
	       proto == bpf_htons(ETH_P_8021AD);
}

static __always_inline int ph_ipv6_is_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
	       nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT ||
	       nh == IPPROTO_AH;
}

/* Ethernet and up to PH_VLAN_MAX VLAN tags; *proto: the inner ethertype. */
static __always_inline __u32 ph_parse_eth(struct ph_cursor *c, __be16 *proto)
{
	struct ethhdr *eth = c->pos;
	struct ph_vlan_hdr *vh;
	__be16 h_proto;
	int i;

	if ((void *)(eth + 1) > c->end)
		return PH_R_DROP_L2_MALFORMED;
	h_proto = eth->h_proto;
	vh = (void *)(eth + 1);

#pragma unroll
	for (i = 0; i < PH_VLAN_MAX; i++) {
		if (!ph_is_vlan(h_proto))
			break;
		if ((void *)(vh + 1) > c->end)
			return PH_R_DROP_L2_MALFORMED;
		h_proto = vh->proto;
		vh++;
	}
	if (ph_is_vlan(h_proto))
		return PH_R_DROP_VLAN_DEPTH;
	c->pos = vh;
	*proto = h_proto;
	return PH_CONTINUE;
}

static __always_inline void ph_v4_mapped(__u32 *dst, __be32 addr)
{
	dst[0] = 0;
	dst[1] = 0;
	dst[2] = bpf_htonl(0x0000ffff);
	dst[3] = addr;
}

static __always_inline __u32 ph_parse_ipv4(struct ph_cursor *c,
					   struct ph_pkt *p)
{
	struct iphdr *iph = c->pos;
	__u32 hlen, tot, avail;
	__u16 frag_off;

	if ((void *)(iph + 1) > c->end)
		return PH_R_DROP_L3_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return PH_R_DROP_L3_MALFORMED;
	hlen = iph->ihl * 4;
	if (c->pos + hlen > c->end)
		return PH_R_DROP_L3_MALFORMED;

	tot = bpf_ntohs(iph->tot_len);
	avail = c->len - p->l3_off;
	/* BIG TCP (TC egress): an IPv4 GSO packet over 64k has tot_len 0. */
	if (tot == 0 && avail > 0xffff)
		tot = avail;
	if (tot < hlen || tot > avail)
		return PH_R_DROP_L3_MALFORMED;
	c->ip_end = p->l3_off + tot;

	p->family = 4;
	p->proto = iph->protocol;
	ph_v4_mapped(p->src, iph->saddr);
	ph_v4_mapped(p->dst, iph->daddr);

	frag_off = bpf_ntohs(iph->frag_off);
	if (frag_off & (PH_IP_MF | PH_IP_OFFSET)) {
		p->frag = (frag_off & PH_IP_OFFSET) ? PH_FRAG_LATER :
						      PH_FRAG_FIRST;
		p->frag_id = bpf_ntohs(iph->id);
		p->frag_proto = iph->protocol;
	}
	c->pos += hlen;
	return PH_CONTINUE;
}

/*
 * Forgets what the verifier knows about @off except that it lies in
 * [0, PH_OFF_MAX]. The extension-header walk reaches its next offset by
 * different arithmetic on each path (AH counts 4-byte units, the others
 * 8-byte units, a fragment header is fixed); left alone, every path would
 * be a distinct verifier state and the state count would double with each
 * header. XOR-ing twice with a value read from the packet is a no-op at
 * run time that the verifier cannot see through; the mask is the bound it
 * keeps.
 */
#define PH_OFF_MAX 0x3fff

static __always_inline __u64 ph_forget_bits(__u64 off, __u64 noise)
{
	asm volatile("%[off] ^= %[noise]\n\t"
		     "%[off] ^= %[noise]\n\t"
		     "%[off] &= %[max]"
		     : [off] "+r"(off)
		     : [noise] "r"(noise), [max] "i"(PH_OFF_MAX));
	return off;
}

/* First 8 bytes of any IPv6 extension header (all are at least 8 long). */
struct ph_ip6_ext {
	__u8 nexthdr;
	__u8 hdrlen;   /* fragment header: reserved */
	__be16 word;   /* fragment header: offset << 3 | M */
	__be32 word2;  /* fragment header: identification */
};

/*
 * The extension-header chain is walked at most PH_IPV6_EXT_MAX headers deep;
 * a longer chain is dropped rather than followed, so the cost per packet is
 * bounded and the verifier sees a short fixed loop.
 */
static __always_inline __u32 ph_parse_ipv6(struct ph_cursor *c,
					   struct ph_pkt *p)
{
	struct ipv6hdr *ip6h = c->pos;
	struct ph_ip6_ext *eh;
	__u32 plen, avail;
	__u16 frag_off;
	__u64 off, len;
	__u8 nh;
	int i;

	if ((void *)(ip6h + 1) > c->end)
		return PH_R_DROP_L3_MALFORMED;
	if (ip6h->version != 6)
		return PH_R_DROP_L3_MALFORMED;
	plen = bpf_ntohs(ip6h->payload_len);
	avail = c->len - p->l3_off - sizeof(*ip6h);
	/* BIG TCP (TC egress): an IPv6 GSO packet over 64k has length 0. */
	if (plen == 0 && avail > 0xffff)
		plen = avail;
	if (plen > avail)
		return PH_R_DROP_L3_MALFORMED;
	c->ip_end = p->l3_off + sizeof(*ip6h) + plen;

	p->family = 6;
	__builtin_memcpy(p->src, &ip6h->saddr, 16);
	__builtin_memcpy(p->dst, &ip6h->daddr, 16);
	nh = ip6h->nexthdr;
	if (!ph_ipv6_is_ext(nh)) {
		/* The common case: no extension headers. */
		c->pos = ip6h + 1;
		p->proto = nh;
		return PH_CONTINUE;
	}

	off = ph_forget_bits(p->l3_off + sizeof(*ip6h), ip6h->payload_len);
#pragma unroll
	for (i = 0; i < PH_IPV6_EXT_MAX; i++) {
		if (!ph_ipv6_is_ext(nh))
			break;
		eh = c->data + off;
		if ((void *)(eh + 1) > c->end)
			return PH_R_DROP_IPV6_EXT;
		if (nh == IPPROTO_FRAGMENT) {
			len = 8;
			frag_off = bpf_ntohs(eh->word);
			/* An atomic fragment (offset 0, no M) is a whole
			 * packet (RFC 6946). */
			if (frag_off & (PH_IP6_MF | PH_IP6_OFFSET)) {
				p->frag = (frag_off & PH_IP6_OFFSET) ?
						  PH_FRAG_LATER :
						  PH_FRAG_FIRST;
				p->frag_id = bpf_ntohl(eh->word2);
				p->frag_proto = eh->nexthdr;
			}
		} else if (nh == IPPROTO_AH) {
			len = (eh->hdrlen + 2) * 4;
		} else {
			len = (eh->hdrlen + 1) * 8;
		}
		nh = eh->nexthdr;
		off = ph_forget_bits(off + len, eh->word);
		/* Nothing after a non-first fragment's header is parseable. */
		if (p->frag == PH_FRAG_LATER)
			break;
	}
	if (p->frag != PH_FRAG_LATER && ph_ipv6_is_ext(nh))
		return PH_R_DROP_IPV6_EXT;
	/* The chain may claim more than the datagram holds. */
	if (off > c->ip_end)
		return PH_R_DROP_IPV6_EXT;
	c->pos = c->data + off;
	p->proto = nh;
	return PH_CONTINUE;
}

enum ph_icmp_kind {
	PH_ICMP_OTHER = 0,
	PH_ICMP_ND,        /* ICMPv6 130-137 (MLD, RS/RA, NS/NA, redirect), 143 */
	PH_ICMP_ERROR,     /* unreachable, packet too big, time exceeded, param */
	PH_ICMP_ECHO_REQ,
	PH_ICMP_ECHO_REPLY,
};

static __always_inline int ph_icmp_kind(const struct ph_pkt *p)
{
	__u8 t = p->icmp_type;

	if (p->family == 4) {
		if (t == ICMP_DEST_UNREACH || t == ICMP_TIME_EXCEEDED ||
		    t == ICMP_PARAMETERPROB)
			return PH_ICMP_ERROR;
		if (t == ICMP_ECHO)
			return PH_ICMP_ECHO_REQ;
		if (t == ICMP_ECHOREPLY)
			return PH_ICMP_ECHO_REPLY;
		return PH_ICMP_OTHER;
	}
	if (t >= 130 && t <= 137)
		return PH_ICMP_ND;
	if (t == 143) /* MLDv2 report */
		return PH_ICMP_ND;
	if (t >= ICMPV6_DEST_UNREACH && t <= ICMPV6_PARAMPROB)
		return PH_ICMP_ERROR;
	if (t == ICMPV6_ECHO_REQUEST)
		return PH_ICMP_ECHO_REQ;
	if (t == ICMPV6_ECHO_REPLY)
		return PH_ICMP_ECHO_REPLY;
	return PH_ICMP_OTHER;
}

/*
 * Builds the key of the connection an ICMP error quotes: the quoted packet
 * is one this host sent, so its source is local. Done here, while the
 * cursor is at hand, so that nothing after parsing does packet-pointer
 * arithmetic (see ph_forget_bits()). Only fixed headers are read (inner
 * IPv4 options are skipped; an inner IPv6 extension header makes the error
 * unrelated). Returns 0 or -1.
 */
static __always_inline int ph_parse_quoted(const struct ph_cursor *c,
					   const struct ph_pkt *p,
					   struct ph_flow_key *k)
{
	void *data_end = c->end;
	void *pos = c->pos + sizeof(struct ph_icmphdr);
	__u8 *l4;
	__u8 proto;

	if (p->family == 4) {
		struct iphdr *iph = pos;

		if ((void *)(iph + 1) > data_end)
			return -1;
		if (iph->version != 4 || iph->ihl < 5)
			return -1;
		/* A non-first fragment quotes no ports. */
		if (iph->frag_off & bpf_htons(PH_IP_OFFSET))
			return -1;
		proto = iph->protocol;
		ph_v4_mapped((__u32 *)k->local, iph->saddr);
		ph_v4_mapped((__u32 *)k->remote, iph->daddr);
		pos += iph->ihl * 4;
	} else {
		struct ipv6hdr *ip6h = pos;

		if ((void *)(ip6h + 1) > data_end)
			return -1;
		proto = ip6h->nexthdr;
		__builtin_memcpy(k->local, &ip6h->saddr, 16);
		__builtin_memcpy(k->remote, &ip6h->daddr, 16);
		pos = ip6h + 1;
	}
	l4 = pos;
	/* RFC 792 guarantees 8 bytes of the quoted L4 header. */
	if ((void *)(l4 + 8) > data_end)
		return -1;
	k->proto = proto;
	k->pad[0] = 0;
	k->pad[1] = 0;
	k->pad[2] = 0;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__builtin_memcpy(&k->lport, l4, 2);
		__builtin_memcpy(&k->rport, l4 + 2, 2);
		return 0;
	}
	if ((proto == IPPROTO_ICMP && p->family == 4 && l4[0] == ICMP_ECHO) ||
	    (proto == IPPROTO_ICMPV6 && p->family == 6 &&
	     l4[0] == ICMPV6_ECHO_REQUEST)) {
		__builtin_memcpy(&k->lport, l4 + 4, 2);
		k->rport = 0;
		return 0;
	}
	return -1;
}

/* True if the L4 header [pos, pos + size) lies inside the IP datagram. */
static __always_inline int ph_l4_fits(struct ph_cursor *c, __u32 size)
{
	return c->pos + size <= c->end &&
	       (__u32)(c->pos - c->data) + size <= c->ip_end;
}

/*
 * Flag combinations no real stack sends, used by scanners to fingerprint
 * or slip past stateless filters.
 */
static __always_inline int ph_tcp_flags_bad(__u8 f)
{
	if ((f & (PH_TCP_SYN | PH_TCP_FIN)) == (PH_TCP_SYN | PH_TCP_FIN))
		return 1;
	if ((f & (PH_TCP_SYN | PH_TCP_RST)) == (PH_TCP_SYN | PH_TCP_RST))
		return 1;
	if (!(f & 0x3f))
		return 1;
	if ((f & (PH_TCP_FIN | PH_TCP_PSH | PH_TCP_URG)) &&
	    !(f & PH_TCP_ACK))
		return 1;
	return 0;
}

static __always_inline __u32 ph_parse_l4(struct ph_cursor *c,
					 struct ph_pkt *p,
					 struct ph_flow_key *quoted)
{
	__u32 hlen;

	p->l4_off = c->pos - c->data;
	/* Only TCP and UDP set ports, yet paths the verifier cannot rule out
	 * read them: without a value clang may leave any register there. So
	 * every other way out zeroes them (one store for both). */
	if (p->frag == PH_FRAG_LATER) {
		p->sport = p->dport = 0;
		return PH_CONTINUE;
	}

	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = c->pos;

		if (!ph_l4_fits(c, sizeof(*th)))
			return PH_R_DROP_L4_MALFORMED;
		hlen = th->doff * 4;
		/* Options need not be linear (they are not read), but
		 * they must fit in the datagram. */
		if (hlen < sizeof(*th) || p->l4_off + hlen > c->ip_end)
			return PH_R_DROP_L4_MALFORMED;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		p->tcp_seq = bpf_ntohl(th->seq);
		if (ph_tcp_flags_bad(p->tcp_flags))
			return PH_R_DROP_TCP_FLAGS;
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = c->pos;

		hlen = sizeof(*uh);
		if (!ph_l4_fits(c, hlen))
			return PH_R_DROP_L4_MALFORMED;
		p->sport = uh->source;
		p->dport = uh->dest;
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* Same 8-byte layout for both: type, code, csum, id, seq. */
		struct ph_icmphdr *ih = c->pos;

		p->sport = p->dport = 0;
		if ((p->proto == IPPROTO_ICMP) != (p->family == 4))
			return PH_CONTINUE; /* ICMP in v6 or v.v.: other L4 */
		hlen = sizeof(*ih);
		if (!ph_l4_fits(c, hlen))
			return PH_R_DROP_L4_MALFORMED;
		p->icmp_type = ih->type;
		p->icmp_code = ih->code;
		p->icmp_id = ih->id;
		p->is_icmp = 1;
		if (quoted && ph_icmp_kind(p) == PH_ICMP_ERROR)
			p->quoted_ok = !ph_parse_quoted(c, p, quoted);
		break;
	}
	default:
		p->sport = p->dport = 0;
		return PH_CONTINUE;
	}
	p->payload_off = p->l4_off + hlen;
	p->payload_len = c->ip_end - p->payload_off;
	return PH_CONTINUE;
}

/*
 * data/data_end: the linear frame; len: the whole frame (XDP: the same as
 * data_end - data; TC: skb->len, which also counts paged data). @quoted
 * (may be NULL): where to build the key quoted by an ICMP error.
 */
static __always_inline __u32 ph_parse(void *data, void *data_end, __u32 len,
				      struct ph_pkt *p,
				      struct ph_flow_key *quoted)
{
	struct ph_cursor c = {
		.pos = data, .data = data, .end = data_end, .len = len,
	};
	__be16 proto = 0;
	__u32 reason;

	/* Only what every later stage may read before parsing sets it;
	 * zeroing the whole struct would cost the fast path. */
	p->frag = PH_FRAG_NONE;
	p->is_icmp = 0;
	p->quoted_ok = 0;
	p->tcp_flags = 0;
	reason = ph_parse_eth(&c, &proto);
	if (reason != PH_CONTINUE)
		return reason;
	p->l3_off = c.pos - data;
	if (proto == bpf_htons(ETH_P_IP))
		reason = ph_parse_ipv4(&c, p);
	else if (proto == bpf_htons(ETH_P_IPV6))
		reason = ph_parse_ipv6(&c, p);
	else
		return PH_R_PASS_NON_IP;
	if (reason != PH_CONTINUE)
		return reason;
	return ph_parse_l4(&c, p, quoted);
}

#endif /* PH_BPF_PARSE_H */
