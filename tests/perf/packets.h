/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Test packets for the benchmark: Ethernet (optionally one 802.1Q tag),
 * IPv4 or IPv6, TCP with an optional payload, checksums valid.
 */
#ifndef PHPERF_PACKETS_H
#define PHPERF_PACKETS_H

#include <stdbool.h>
#include <linux/types.h>

#define PKT_MAX 512

struct pkt {
	__u8 data[PKT_MAX];
	__u32 len;
};

struct tcp_spec {
	bool ipv6;
	__u16 vlan;        /* 0: untagged */
	__u8 src_mac[6];
	__u8 dst_mac[6];
	__u8 saddr[16];    /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport, dport; /* host order */
	__u8 flags;        /* TCP flag byte (FIN 0x01 SYN 0x02 PSH 0x08 ACK 0x10) */
	const char *payload;
};

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10

/* Build the frame; returns 0 or -1 when it does not fit. */
int pkt_build_tcp(struct pkt *p, const struct tcp_spec *s);

/* "10.197.0.1" or "fd00:197::1" into 16 bytes; returns 4, 6 or -1. */
int parse_addr(const char *text, __u8 out[16]);
/* "02:00:00:00:00:01" into 6 bytes; returns 0 or -1. */
int parse_mac(const char *text, __u8 out[6]);
/* 16-byte host-oriented key form: IPv6 as is, IPv4 v4-mapped. */
void addr_to_key(bool ipv6, const __u8 addr[16], __u8 key[16]);

#endif
