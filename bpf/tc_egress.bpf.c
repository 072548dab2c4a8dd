// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pinhole TC egress: every packet this host sends on an attached interface.
 *
 * Mirrors the ingress path with local = source: confirmed flow; half-open
 * connection (our SYN-ACK, our UDP reply); FTP pinhole (active-mode server
 * data from port 20, passive-mode client to the announced port); failsafe;
 * outbound policy, where an admitted opener creates the half-open entry
 * that lets the reply in. Every path ends in record_verdict().
 */
#include <linux/pkt_cls.h>
#include "lib/common.h"
#include "lib/parse.h"
#include "lib/flow.h"
#include "lib/sock.h"
#include "lib/policy.h"
#include "lib/icmp.h"
#include "lib/verdict.h"

const volatile struct ph_load_cfg ph_cfg = {};
__u64 ph_clock_offset_ns = 0;

/* Headers we may need linear: Ethernet, two tags, IPv6 with extension
 * headers, TCP with options. Only pulled when parsing ran short. */
#define PH_PULL_LEN 256

static __always_inline __u32 egress_echo_request(const struct ph_pkt *p,
						 const struct ph_policy *pol,
						 struct ph_clock *clk)
{
	struct ph_flow_key k;
	struct ph_flow f = {
		.state = PH_FS_ESTABLISHED,
		.origin = PH_FO_OUTBOUND,
		.flags = PH_FF_INIT_OUT,
	};

	if (pol->meta->icmp_echo[PH_DIR_OUT] != PH_ACT_ALLOW)
		return PH_R_DROP_ICMP;
	ph_flow_key_init(&k, p, PH_DIR_OUT);
	ph_flow_key_echo(&k, p);
	/* ping sends one request a second on the same identifier: refresh
	 * the entry rather than rewrite it. */
	if (!ph_flows_hit(&k, p, PH_DIR_OUT, clk)) {
		f.created_ns = f.last_seen_ns = ph_clock_ns(clk);
		f.checked_jiffies = bpf_jiffies64();
		bpf_map_update_elem(&flows, &k, &f, BPF_ANY);
	}
	return PH_R_PASS_ICMP_ECHO;
}

static __always_inline __u32 egress_icmp(const struct ph_pkt *p,
					 struct ph_clock *clk)
{
	struct ph_policy pol;

	switch (ph_icmp_kind(p)) {
	case PH_ICMP_ND:
		return PH_R_PASS_ND;
	case PH_ICMP_ERROR:
		/* The host reports on traffic it received. */
		return PH_R_PASS_ICMP_RELATED;
	case PH_ICMP_ECHO_REQ:
		if (ph_policy_get(&pol))
			return ph_fail_reason();
		return egress_echo_request(p, &pol, clk);
	case PH_ICMP_ECHO_REPLY:
		if (ph_policy_get(&pol))
			return ph_fail_reason();
		return pol.meta->icmp_echo[PH_DIR_IN] == PH_ACT_ALLOW ?
			       PH_R_PASS_ICMP_ECHO :
			       PH_R_DROP_ICMP;
	}
	return PH_R_DROP_ICMP;
}

static __always_inline __u32 egress_policy(const struct ph_flow_key *k,
					   const struct ph_pkt *p,
					   struct ph_clock *clk, __u16 *svc)
{
	struct ph_policy pol;
	__u16 rflags = 0;
	__u32 reason;
	__u8 l4;
	int v = 0;

	if (ph_policy_get(&pol))
		return ph_fail_reason();
	l4 = p->proto == IPPROTO_TCP ? PH_L4_TCP : PH_L4_UDP;

	/* A tracked service's active-data port first: the service a bounce
	 * aims at (25, ...) must not let it out. */
	if (l4 == PH_L4_TCP) {
		v = ph_port_rule(&pol, l4, PH_PT_OUT_SPORT, p->sport);
		if (v < 0)
			return ph_fail_reason();
		if (v && !ph_rule_is_guard(&pol, v))
			v = 0;
	}
	if (!v) {
		reason = ph_port_lookup2(&pol, l4, PH_PT_OUT_DPORT, p->dport,
					 PH_PT_OUT_SPORT, p->sport, &v);
		if (reason != PH_CONTINUE)
			return reason;
	}
	if (v) {
		reason = ph_rule_verdict(&pol, v, p->dst, &rflags, svc);
		if (reason == PH_R_DROP_FTP_ACTIVE)
			reason = ph_guard_verdict(&pol, PH_DIR_OUT, p->dst,
						  p->src, p->dport);
	} else if (l4 == PH_L4_TCP && !ph_tcp_is_syn(p)) {
		/* Reply of a connection an inbound rule admits but no flow
		 * tracks (opened before attach, or its entry was evicted):
		 * judged by that rule, statelessly. */
		int in = ph_port_rule(&pol, l4, PH_PT_IN_DPORT, p->sport);

		if (in < 0)
			return ph_fail_reason();
		reason = PH_R_DROP_POLICY;
		if (in > 0)
			reason = ph_rule_verdict(&pol, in, p->dst, &rflags,
						 svc);
		if (reason == PH_R_DROP_DENY_RULE || reason == PH_R_DROP_PEER)
			reason = PH_R_DROP_POLICY;
		if (reason == PH_R_DROP_POLICY) {
			*svc = 0; /* no rule decided it */
			reason = ph_default_verdict(&pol, PH_DIR_OUT);
		}
		return reason;
	} else {
		reason = ph_default_verdict(&pol, PH_DIR_OUT);
	}

	if ((reason == PH_R_PASS_POLICY || reason == PH_R_PASS_DEFAULT) &&
	    ph_pkt_opens(p))
		ph_half_open_add(k, p, PH_FO_OUTBOUND,
				 PH_FF_INIT_OUT | ph_rule_flow_flags(rflags),
				 v, *svc, 0, clk);
	else if (reason == PH_R_PASS_FTPS_ACTIVE && ph_pkt_opens(p))
		ph_half_open_add(k, p, PH_FO_FTPS, PH_FF_INIT_OUT, v, *svc, 0,
				 clk);
	return reason;
}

/* ---- FTP control connections (bpf/lib/ftp.h) ---- */

/* Copies record @i of the segment in the scratch to the record's data.
 * Returns the bytes copied, 0 on failure. Global, so verified once. */
__attribute__((noinline)) int ph_tc_copy(struct __sk_buff *skb, __u32 i)
{
	__u32 idx = PH_DIR_OUT, off;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	__u64 n; /* 64 bits: no zero-extended copy between check and use */

	if (!sc || i >= PH_CTRL_CHUNKS)
		return 0;
	off = i * PH_CTRL_CAP;
	if (off >= sc->in.payload_len)
		return 0;
	n = sc->in.payload_len - off;
	if (n > PH_CTRL_CAP)
		n = PH_CTRL_CAP;
	if (n == 0)
		return 0;
	n = PH_SIZE_ARG(n, PH_CTRL_CAP);
	if (bpf_skb_load_bytes(skb, sc->in.payload_off + off, sc->ev.data, n))
		return 0;
	return n;
}

/*
 * The checksum check of ftp.h ("TCP checksums") for a segment the local
 * stack sends. Its own segments carry only the pseudo-header sum
 * (CHECKSUM_PARTIAL: the device or the software fallback completes it
 * after this hook), or a complete one: both are accepted, so the local
 * stack's segments are trusted by construction, and so is a segment
 * longer than what is summed (a TSO/GSO super-packet is always partial).
 * What fails is a locally forged one (a raw socket) with a wrong value.
 * Global: verified once.
 */
__attribute__((noinline)) int ph_tc_csum(struct __sk_buff *skb)
{
	__u32 idx = PH_DIR_OUT, i;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	__u64 thl, ihl; /* 64 bits, fenced: the checked register is the one
			 * the helper gets */

	if (!sc)
		return PH_CS_BAD;
	thl = sc->in.payload_off - sc->in.l4_off;
	ihl = sc->in.l4_off - sc->in.l3_off;
	asm volatile("" : "+r"(thl), "+r"(ihl));
	if (thl < 20 || thl > 60)
		return PH_CS_BAD;
	if (ph_key_is_v4(&sc->in.key) &&
	    (ihl < 20 || ihl > 60 ||
	     bpf_skb_load_bytes(skb, sc->in.l3_off, sc->cs_ip, ihl)))
		return PH_CS_BAD;
	if (bpf_skb_load_bytes(skb, sc->in.l4_off, sc->cs_th, thl))
		return PH_CS_BAD;
	if (sc->in.payload_len > PH_CS_MAX)
		return PH_CS_OK;
	sc->cs_sum = 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < PH_CTRL_CHUNKS && !sc->in.unverified; i++)
		if (ph_ftp_csum_chunk(sc, i, ph_tc_copy(skb, i)))
			sc->in.unverified = 1;
	return ph_ftp_csum_judge(PH_DIR_OUT, thl, 1);
}

/*
 * The FTP work for the packet stashed in the scratch (ph_ftp_stash()),
 * up to the records: start the segment. (Sessions start on ingress: the
 * handshake completes there.) Returns non-zero if records follow. Global,
 * so verified once.
 */
__attribute__((noinline)) int ph_tc_ftp(struct __sk_buff *skb, __u32 what)
{
	__u32 idx = PH_DIR_OUT;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	__be32 wire;

	if (!sc)
		return 0;
	sc->in.what = what;
	sc->claimed = 0;
	sc->ack = 0;
	/* What the local stack accepted of the peer's stream: a pure ACK is
	 * reported only if the parser missed bytes of it, a segment with
	 * payload carries it in its record. */
	if ((sc->in.what & PH_FTP_DO_ACK) &&
	    !bpf_skb_load_bytes(skb, sc->in.l4_off + 8, &wire, 4)) {
		sc->ack = bpf_ntohl(wire);
		if (ph_ftp_acked(PH_DIR_OUT, sc->ack) &&
		    !(sc->in.what & PH_FTP_DO_DATA))
			ph_ftp_ack_report(PH_DIR_OUT);
	}
	if (!(sc->in.what & PH_FTP_DO_DATA) ||
	    bpf_skb_load_bytes(skb, sc->in.l4_off + 4, &wire, 4))
		return 0;
	return ph_ftp_seg_begin(sc, PH_DIR_OUT, bpf_ntohl(wire));
}

/* A packet of a tracked FTP control connection hit flows: PASS_FLOW, or
 * PH_CONTINUE if the entry had idled out. */
static __always_inline __u32 egress_ctrl_flow(struct __sk_buff *skb,
					      const struct ph_pkt *p,
					      const struct ph_flow_key *k,
					      struct ph_flow *f,
					      struct ph_clock *clk)
{
	__u32 reason;

	PH_FTP_CTRL_FLOW(reason, PH_DIR_OUT, skb, ph_tc_ftp, ph_tc_copy,
			 ph_tc_csum, p, k, f, clk);
	return reason;
}

static __always_inline __u32 egress_verdict(struct __sk_buff *skb,
					    const struct ph_pkt *p, __u16 *svc)
{
	__u32 session = 0, reason;
	struct ph_clock clk = {};
	struct ph_flow_key k;
	struct ph_flow *f;
	int exp = PH_EXP_NONE;

	if (p->frag == PH_FRAG_LATER)
		return ph_frag_verdict(p, ph_clock_ns(&clk));
	if (p->is_icmp)
		return egress_icmp(p, &clk);
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return ph_other_l4_verdict(PH_DIR_OUT);

	ph_flow_key_init(&k, p, PH_DIR_OUT);
	/*
	 * A bare SYN opens a connection, as on ingress: confirmed flows are
	 * not consulted. The old entry of a reused 4-tuple (closing, or left
	 * behind) must not admit the new connection without its policy check
	 * or pinhole; the new one replaces it on promotion.
	 */
	f = p->proto == IPPROTO_TCP && ph_tcp_is_syn(p) ?
		    NULL :
		    bpf_map_lookup_elem(&flows, &k);
	if (f && ph_flow_superseded(f, &k, p))
		f = NULL;
	if (f) {
		/* Read first: a RST deletes the entry. */
		__u16 fsvc = f->svc_id;

		/* The flag first: other flows pay this test alone. */
		if (ph_unlikely((f->flags & PH_FF_CTRL_ANY) &&
				ph_cfg.track_ftp)) {
			reason = egress_ctrl_flow(skb, p, &k, f, &clk);
			if (reason != PH_CONTINUE) {
				*svc = fsvc;
				return reason;
			}
		} else {
			reason = ph_flow_reason(
				ph_flow_use(f, &k, p, PH_DIR_OUT, &clk));
			if (reason != PH_CONTINUE) {
				*svc = fsvc;
				return reason;
			}
		}
	}
	reason = ph_half_open_hit(&k, p, PH_DIR_OUT, &clk, 0, svc);
	if (reason != PH_CONTINUE)
		return reason;

	if (ph_pkt_opens(p)) {
		exp = ph_expect_take(&k, PH_DIR_OUT, &clk, &session);
		if (exp == PH_EXP_TAKEN) {
			ph_half_open_add(&k, p, PH_FO_EXPECT, PH_FF_INIT_OUT,
					 0, 0, session, &clk);
			return PH_R_PASS_EXPECT;
		}
	}

	if (p->proto == IPPROTO_TCP && ph_cfg.failsafe_port &&
	    p->sport == bpf_htons(ph_cfg.failsafe_port))
		return PH_R_PASS_FAILSAFE;

	reason = egress_policy(&k, p, &clk, svc);
	/* As on ingress: a connection the kernel holds (one this host opened
	 * before attach, or whose flow was lost) is picked up whatever the
	 * policy; never from a bare SYN, which is a new connection. The flow
	 * keeps the service of an admitting rule (the rule index is not at
	 * hand here), else none. */
	if ((p->proto == IPPROTO_TCP && !ph_tcp_is_syn(p)) ||
	    (p->proto == IPPROTO_UDP && PH_REASON_IS_DROP(reason))) {
		int adm = reason == PH_R_PASS_POLICY;
		__u32 sk = ph_sock_pickup(skb, &k, p, PH_DIR_OUT,
					  adm ? PH_PICKUP_RULE(0, *svc) : 0);

		if (sk != PH_CONTINUE) {
			if (!adm)
				*svc = 0;
			return sk;
		}
	}
	if (exp == PH_EXP_SPENT && PH_REASON_IS_DROP(reason) &&
	    reason != PH_R_DROP_FAIL_CLOSED)
		reason = PH_R_DROP_EXPECT_SPENT;
	return reason;
}

/* Parsing ran past the linear data of a packet that has more. */
static __always_inline int ph_parse_short(__u32 reason)
{
	return reason == PH_R_DROP_L2_MALFORMED ||
	       reason == PH_R_DROP_L3_MALFORMED ||
	       reason == PH_R_DROP_IPV6_EXT ||
	       reason == PH_R_DROP_L4_MALFORMED;
}

static __always_inline int record_verdict(struct __sk_buff *skb, __u32 dir,
					  __u32 reason, __u16 svc,
					  const struct ph_pkt *p)
{
	ph_record(dir, skb->ifindex, reason, svc, skb->len, p);
	return PH_REASON_IS_DROP(reason) ? TC_ACT_SHOT : TC_ACT_OK;
}

/*
 * A real function (not inlined) because it runs twice when a pull is
 * needed: one copy of the parser in the program instead of two.
 */
#define PH_NEED_PULL (PH_R_MAX + 1)

static __attribute__((noinline)) __u32 tc_parse(struct __sk_buff *skb,
						struct ph_pkt *p, int may_pull)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 reason;

	reason = ph_parse(data, data_end, skb->len, p, 0);
	if (may_pull && ph_parse_short(reason) && skb->len > data_end - data)
		return PH_NEED_PULL;
	return reason;
}

SEC("tc")
int pinhole_tc(struct __sk_buff *skb)
{
	const struct ph_pkt *parsed = NULL; /* for the monitor */
	struct ph_pkt pkt;
	__u16 svc = 0;
	__u32 reason;

	/*
	 * Locally built packets keep their headers linear, so one parse
	 * normally suffices. If parsing ran past the linear part of a longer
	 * packet (paged headers, e.g. from a tunnel or a forwarded GRO
	 * packet), pull the headers once and parse again. Pulling only then
	 * matters: it unclones the skb, and TCP's are always clones.
	 */
	reason = tc_parse(skb, &pkt, 1);
	if (reason == PH_NEED_PULL) {
		bpf_skb_pull_data(skb, skb->len < PH_PULL_LEN ? skb->len :
								PH_PULL_LEN);
		reason = tc_parse(skb, &pkt, 0);
	}
	if (reason == PH_CONTINUE) {
		reason = egress_verdict(skb, &pkt, &svc);
		if (pkt.frag == PH_FRAG_FIRST && !PH_REASON_IS_DROP(reason))
			ph_frag_remember(&pkt, reason, ph_now());
		parsed = &pkt;
	}
	return record_verdict(skb, PH_DIR_OUT, reason, svc, parsed);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
