/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared pieces of both datapath programs: includes, the load-time
 * configuration, the clock, and the parsed-packet summary (struct ph_pkt)
 * that every later stage reads instead of touching headers again.
 */
#ifndef PH_BPF_COMMON_H
#define PH_BPF_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <pinhole/pinhole.h>
#include "maps.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Block placement: keeps rare work (FTP control connections) out of the
 * straight line of the fast path. */
#define ph_unlikely(x) __builtin_expect(!!(x), 0)

/*
 * Defined once per object by the entry file (xdp_ingress.bpf.c,
 * tc_egress.bpf.c). ph_cfg lives in .rodata: the loader fills it before load
 * and the verifier then treats it as constants, so disabled features cost
 * nothing. ph_clock_offset_ns lives in .bss and is only ever non-zero in
 * tests, which move time forward to exercise timeouts.
 */
extern const volatile struct ph_load_cfg ph_cfg;
extern __u64 ph_clock_offset_ns;

/* linux/icmp.h drags in libc headers (via linux/if.h); the few ICMPv4
 * names needed are spelled out here. */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* The 8 bytes common to ICMP and ICMPv6 (echo layout). */
struct ph_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 seq;
};

#define PH_NSEC_PER_SEC 1000000000ull

/* Returned by parse and decision stages: "no verdict yet, keep going". */
#define PH_CONTINUE ((__u32)PH_R_MAX)

/*
 * The coarse clock: tick resolution is plenty for timeouts counted in
 * seconds, and it counts on CLOCK_MONOTONIC's base like the deadlines
 * userspace writes. It is still a helper call, so a packet reads it at most
 * once and only on a path that needs it (struct ph_clock); the established
 * fast path usually needs no clock at all (ph_flow_use()).
 */
static __always_inline __u64 ph_now(void)
{
	return bpf_ktime_get_coarse_ns() + ph_clock_offset_ns;
}

struct ph_clock {
	__u64 ns; /* 0: not read yet */
};

static __always_inline __u64 ph_clock_ns(struct ph_clock *c)
{
	if (!c->ns) {
		/* Keeps clang from hoisting the helper call to where every
		 * path, needing it or not, would pay for it. */
		asm volatile("" ::: "memory");
		c->ns = ph_now();
	}
	return c->ns;
}

/* syn_watch (include/pinhole/pinhole.h): the @kind entry of local port
 * @lport. */
static __always_inline __u64 *ph_syn_watch(__u32 kind, __be16 lport)
{
	__u32 idx = PH_SYN_WATCH_IDX(kind, bpf_ntohs(lport));

	return bpf_map_lookup_elem(&syn_watch, &idx);
}

/* Raises the watch to @t, never lowers it (not atomic: see pinhole.h).
 * Already within a second of @t, it is left alone: a busy port's entry is
 * rewritten about once a second, not by every new connection on every CPU
 * (callers add that second to @t). */
static __always_inline void ph_syn_watch_raise(__u32 kind, __be16 lport,
					       __u64 t)
{
	__u64 *until = ph_syn_watch(kind, lport);

	if (until && *until + PH_NSEC_PER_SEC < t)
		*until = t;
}

/* Must a bare SYN to @lport consult the @kind table? Reads the clock only
 * if the watch was ever raised; a failed lookup says yes. */
static __always_inline int ph_syn_watch_live(__u32 kind, __be16 lport,
					     struct ph_clock *c)
{
	__u64 *until = ph_syn_watch(kind, lport);

	return !until || (*until && *until > ph_clock_ns(c));
}

/* A ph_cfg timeout in ns; 0 in the configuration means "the default". */
#define PH_CFG_TIMEOUT_NS(field, def_s)                                        \
	((__u64)(ph_cfg.field ? ph_cfg.field : (def_s)) * PH_NSEC_PER_SEC)

/* now - then > limit, safe when another CPU stored a slightly newer time. */
static __always_inline int ph_older_than(__u64 now, __u64 then, __u64 limit)
{
	return (__s64)(now - then) > (__s64)limit;
}

static __always_inline __u32 ph_fail_reason(void)
{
	return ph_cfg.fail_open ? PH_R_PASS_FAIL_OPEN : PH_R_DROP_FAIL_CLOSED;
}

enum ph_frag_kind {
	PH_FRAG_NONE = 0,
	PH_FRAG_FIRST = 1, /* offset 0, more fragments follow */
	PH_FRAG_LATER = 2, /* offset > 0: no L4 header */
};

/* TCP flag bits as in byte 13 of the header. */
#define PH_TCP_FIN 0x01
#define PH_TCP_SYN 0x02
#define PH_TCP_RST 0x04
#define PH_TCP_PSH 0x08
#define PH_TCP_ACK 0x10
#define PH_TCP_URG 0x20

/* Everything the decision stages need, filled by ph_parse(). */
struct ph_pkt {
	__u32 src[4]; /* network order; IPv4 as ::ffff:a.b.c.d */
	__u32 dst[4];
	__be16 sport; /* ICMP: 0 */
	__be16 dport;
	__be16 icmp_id; /* ICMP echo identifier */
	__u8 family;    /* 4 or 6 */
	__u8 proto;     /* final L4 protocol (IPPROTO_*) */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 frag;       /* enum ph_frag_kind */
	__u8 frag_proto; /* protocol named by the fragment header */
	__u8 is_icmp;    /* ICMP in IPv4 or ICMPv6 in IPv6, header parsed */
	__u8 quoted_ok;  /* ICMP error: the quoted flow key was built */
	__u8 pad;
	__u32 frag_id;   /* host order */
	__u16 l3_off;    /* offsets from the start of the frame */
	__u16 l4_off;
	__u32 payload_off;
	__u32 payload_len; /* L4 payload per the IP length fields */
	__u32 tcp_seq;     /* TCP: sequence number (host order) */
};

static __always_inline int ph_tcp_is_syn(const struct ph_pkt *p)
{
	return (p->tcp_flags & (PH_TCP_SYN | PH_TCP_ACK)) == PH_TCP_SYN;
}

/* A packet that may open a connection: a bare TCP SYN, or any UDP datagram. */
static __always_inline int ph_pkt_opens(const struct ph_pkt *p)
{
	return p->proto == IPPROTO_UDP ||
	       (p->proto == IPPROTO_TCP && ph_tcp_is_syn(p));
}

#endif /* PH_BPF_COMMON_H */
