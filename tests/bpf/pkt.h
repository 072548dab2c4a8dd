/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet builder for the datapath tests: a struct pkt_spec describes a
 * frame (VLAN tags, IPv4 options, IPv6 extension headers, fragments,
 * ICMP errors quoting another spec, deliberate damage), pkt_build() writes
 * it. The IPv4 header and TCP checksums are computed (the datapath checks
 * those of FTP control segments); csum says how to spoil the TCP one. UDP
 * and ICMP checksums are left 0: the datapath never reads them.
 */
#ifndef PH_TESTS_PKT_H
#define PH_TESTS_PKT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <linux/types.h>

#define PKT_MAX 4096

enum pkt_csum {
	PKT_CSUM_GOOD = 0,
	PKT_CSUM_BAD = 1,     /* the right value with bits flipped */
	PKT_CSUM_PARTIAL = 2, /* the pseudo-header sum only (CHECKSUM_PARTIAL) */
	PKT_CSUM_BAD_IP = 3,  /* TCP right, IPv4 header checksum wrong */
};

enum pkt_frag {
	PKT_FRAG_NONE = 0,
	PKT_FRAG_FIRST = 1, /* offset 0, more fragments */
	PKT_FRAG_LATER = 2, /* offset > 0: no L4 header */
};

struct pkt_spec {
	__u16 ethertype;     /* non-zero: a non-IP frame of this type */
	int vlans;           /* VLAN tags (outermost 802.1ad when >= 2) */
	int family;          /* 4 or 6 */
	const char *src, *dst;
	__u8 proto;          /* IPPROTO_* */
	__u16 sport, dport;  /* host order */
	__u8 flags;          /* TCP flags */
	__u8 tcp_doff;       /* value of the doff field; 0: 5 (+options) */
	int tcp_opts;        /* TCP option bytes emitted (multiple of 4) */
	int ip_opts;         /* IPv4 option bytes (multiple of 4) */
	__u8 ihl;            /* override the IPv4 ihl field */
	__u8 version;        /* override the IP version field */
	int len_extra;       /* added to tot_len / payload_len */
	__u8 ext[10];        /* IPv6 extension headers, in order */
	int next;
	int ext_units;       /* hdrlen of hop-by-hop/routing/dest-opts */
	int frag;            /* enum pkt_frag */
	__u32 frag_id;
	__u8 icmp_type, icmp_code;
	__u16 icmp_id;
	const struct pkt_spec *inner; /* ICMP error: the quoted packet */
	int inner_cut;       /* quote only this many bytes of it */
	int l4_cut;          /* emit only this many bytes of the L4 header */
	int payload;         /* payload bytes */
	int trunc;           /* cut the frame to this many bytes */
	/* TCP: explicit sequence and acknowledgement numbers (else 1000 and,
	 * with ACK, 2000), and payload bytes (else `payload` bytes of 0xcd) */
	int set_seq;
	__u32 seq, ack;
	const void *data;
	int data_len;
	int csum;            /* enum pkt_csum */
};

static inline void pkt_addr(int family, const char *s, __u8 *out)
{
	inet_pton(family == 4 ? AF_INET : AF_INET6, s, out);
}

static inline void pkt_put16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static inline void pkt_put32(__u8 *p, __u32 v)
{
	pkt_put16(p, v >> 16);
	pkt_put16(p + 2, v & 0xffff);
}

static inline __u32 pkt_sum(const __u8 *b, int n, __u32 s)
{
	int i;

	for (i = 0; i + 1 < n; i += 2)
		s += (__u32)b[i] << 8 | b[i + 1];
	if (n & 1)
		s += (__u32)b[n - 1] << 8;
	return s;
}

static inline __u16 pkt_fold(__u32 s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* The TCP checksum of the segment @l4 (@len bytes) between @src and @dst
 * (4 or 16 bytes each), as spec @s wants it. */
static inline void pkt_tcp_csum(const struct pkt_spec *s, const __u8 *src,
				const __u8 *dst, int alen, __u8 *l4, int len)
{
	__u8 ph[40] = {};
	__u32 sum;
	int n;

	if (s->proto != IPPROTO_TCP || s->frag == PKT_FRAG_LATER || len < 20)
		return;
	memcpy(ph, src, alen);
	memcpy(ph + alen, dst, alen);
	if (alen == 4) {
		ph[9] = IPPROTO_TCP;
		pkt_put16(ph + 10, len);
		n = 12;
	} else {
		pkt_put32(ph + 32, len);
		ph[39] = IPPROTO_TCP;
		n = 40;
	}
	l4[16] = l4[17] = 0;
	sum = pkt_sum(ph, n, 0);
	if (s->csum == PKT_CSUM_PARTIAL) {
		pkt_put16(l4 + 16, pkt_fold(sum));
		return;
	}
	sum = pkt_sum(l4, len, sum);
	pkt_put16(l4 + 16, (__u16)~pkt_fold(sum) ^
				   (s->csum == PKT_CSUM_BAD ? 0x5a5a : 0));
}

static int pkt_l3(const struct pkt_spec *s, __u8 *b);

/* L4 header (+ quoted packet for ICMP errors) + payload; returns length. */
static int pkt_l4(const struct pkt_spec *s, __u8 *b)
{
	int n = 0, hlen, i;

	if (s->frag == PKT_FRAG_LATER) {
		n = s->payload ? s->payload : 16;
		memset(b, 0xab, n);
		return n;
	}
	switch (s->proto) {
	case IPPROTO_TCP:
		hlen = 20 + s->tcp_opts;
		memset(b, 0, hlen);
		pkt_put16(b, s->sport);
		pkt_put16(b + 2, s->dport);
		pkt_put32(b + 4, s->set_seq ? s->seq : 1000);
		pkt_put32(b + 8, s->set_seq ? s->ack :
				 (s->flags & 0x10) ? 2000 : 0);
		b[12] = (s->tcp_doff ? s->tcp_doff : hlen / 4) << 4;
		b[13] = s->flags;
		pkt_put16(b + 14, 65535);
		for (i = 20; i < hlen; i++)
			b[i] = 1; /* NOP */
		n = hlen;
		break;
	case IPPROTO_UDP:
		memset(b, 0, 8);
		pkt_put16(b, s->sport);
		pkt_put16(b + 2, s->dport);
		pkt_put16(b + 4, 8 + s->payload);
		n = 8;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		memset(b, 0, 8);
		b[0] = s->icmp_type;
		b[1] = s->icmp_code;
		pkt_put16(b + 4, s->icmp_id);
		pkt_put16(b + 6, 1);
		if (s->proto == IPPROTO_ICMPV6 && s->icmp_type == 2)
			pkt_put32(b + 4, 1280); /* packet too big: MTU */
		n = 8;
		if (s->inner) {
			int q = pkt_l3(s->inner, b + 8);

			if (s->inner_cut && s->inner_cut < q)
				q = s->inner_cut;
			n += q;
		}
		break;
	default:
		break;
	}
	if (s->l4_cut && s->l4_cut < n)
		n = s->l4_cut;
	if (s->data) {
		memcpy(b + n, s->data, s->data_len);
		return n + s->data_len;
	}
	memset(b + n, 0xcd, s->payload);
	return n + s->payload;
}

/* IP header(s) + L4; returns the datagram length. */
static int pkt_l3(const struct pkt_spec *s, __u8 *b)
{
	__u8 l4[PKT_MAX];
	int l4len = pkt_l4(s, l4), hlen, i, n;

	if (s->family == 4) {
		hlen = 20 + s->ip_opts;
		memset(b, 0, hlen);
		b[0] = ((s->version ? s->version : 4) << 4) |
		       (s->ihl ? s->ihl : hlen / 4);
		pkt_put16(b + 2, hlen + l4len + s->len_extra);
		pkt_put16(b + 4, s->frag_id & 0xffff);
		if (s->frag == PKT_FRAG_FIRST)
			pkt_put16(b + 6, 0x2000);
		else if (s->frag == PKT_FRAG_LATER)
			pkt_put16(b + 6, 0x2000 | 185);
		b[8] = 64;
		b[9] = s->proto;
		pkt_addr(4, s->src, b + 12);
		pkt_addr(4, s->dst, b + 16);
		for (i = 20; i < hlen; i++)
			b[i] = 1; /* NOP options */
		memcpy(b + hlen, l4, l4len);
		if (!s->l4_cut)
			pkt_tcp_csum(s, b + 12, b + 16, 4, b + hlen, l4len);
		if (hlen <= 60) {
			pkt_put16(b + 10, (__u16)~pkt_fold(pkt_sum(b, hlen, 0)) ^
				  (s->csum == PKT_CSUM_BAD_IP ? 0x1111 : 0));
		}
		return hlen + l4len;
	}

	/* IPv6: extension headers as listed, then a fragment header if a
	 * fragment was asked for and none is listed. */
	__u8 ext[12];
	int next = s->next, e;

	memcpy(ext, s->ext, s->next);
	if (s->frag) {
		for (e = 0; e < next && ext[e] != IPPROTO_FRAGMENT; e++)
			;
		if (e == next)
			ext[next++] = IPPROTO_FRAGMENT;
	}
	memset(b, 0, 40);
	b[0] = (s->version ? s->version : 6) << 4;
	b[6] = next ? ext[0] : s->proto;
	b[7] = 64;
	pkt_addr(6, s->src, b + 8);
	pkt_addr(6, s->dst, b + 24);
	n = 40;
	for (e = 0; e < next; e++) {
		__u8 nh = e + 1 < next ? ext[e + 1] : s->proto;
		int len;

		if (ext[e] == IPPROTO_FRAGMENT) {
			len = 8;
			memset(b + n, 0, len);
			if (s->frag == PKT_FRAG_FIRST)
				pkt_put16(b + n + 2, 1);
			else if (s->frag == PKT_FRAG_LATER)
				pkt_put16(b + n + 2, (185 << 3) | 1);
			pkt_put32(b + n + 4, s->frag_id);
			b[n + 1] = 0;
		} else if (ext[e] == IPPROTO_AH) {
			len = (4 + 2) * 4;
			memset(b + n, 0, len);
			b[n + 1] = 4;
		} else {
			len = (s->ext_units + 1) * 8;
			memset(b + n, 0, len);
			b[n + 1] = s->ext_units;
			b[n + 2] = 1; /* PadN covering the rest */
			b[n + 3] = len - 4;
		}
		b[n] = nh;
		n += len;
	}
	memcpy(b + n, l4, l4len);
	if (!s->l4_cut)
		pkt_tcp_csum(s, b + 8, b + 24, 16, b + n, l4len);
	n += l4len;
	pkt_put16(b + 4, n - 40 + s->len_extra);
	return n;
}

/* Builds the Ethernet frame into @b (PKT_MAX bytes); returns its length. */
static inline int pkt_build(const struct pkt_spec *s, __u8 *b)
{
	static const __u8 mac_a[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	static const __u8 mac_b[6] = { 0x02, 0, 0, 0, 0, 0x02 };
	int n = 12, i;
	__u16 type;

	memcpy(b, mac_a, 6);
	memcpy(b + 6, mac_b, 6);
	for (i = 0; i < s->vlans; i++) {
		pkt_put16(b + n, (i == 0 && s->vlans >= 2) ? 0x88a8 : 0x8100);
		pkt_put16(b + n + 2, 100 + i);
		n += 4;
	}
	type = s->ethertype ? s->ethertype :
	       s->family == 4 ? 0x0800 : 0x86dd;
	pkt_put16(b + n, type);
	n += 2;
	if (s->ethertype) {
		memset(b + n, 0, 28);
		n += 28;
	} else {
		n += pkt_l3(s, b + n);
	}
	if (s->trunc && s->trunc < n)
		n = s->trunc;
	return n;
}

#endif /* PH_TESTS_PKT_H */
