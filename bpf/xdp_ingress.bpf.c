// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pinhole XDP ingress: every frame arriving on an attached interface.
 *
 * Order (docs/datapath.md): parse; later fragments by their first
 * fragment's verdict; ICMP (ND, errors about known flows, echo); a bare
 * SYN goes to the connection-opening path; anything else: confirmed flow
 * (the fast path), half-open connection, failsafe port, policy. Every path
 * ends in record_verdict().
 */
#include "lib/common.h"
#include "lib/parse.h"
#include "lib/flow.h"
#include "lib/policy.h"
#include "lib/icmp.h"
#include "lib/verdict.h"

const volatile struct ph_load_cfg ph_cfg = {};
__u64 ph_clock_offset_ns = 0;

/*
 * The tracker never opens a pinhole to a local port below this (design
 * invariant 2: data ports below 1024 are refused), so a SYN to such a port
 * skips the pinhole lookups unless the policy admits it: a SYN flood
 * against closed service ports costs array lookups only.
 */
#define PH_PINHOLE_MIN_PORT 1024

static __always_inline __u32 ingress_icmp(const struct ph_pkt *p,
					  const struct ph_flow_key *quoted,
					  struct ph_clock *clk)
{
	struct ph_policy pol;
	struct ph_flow_key k;

	switch (ph_icmp_kind(p)) {
	case PH_ICMP_ND:
		return PH_R_PASS_ND;
	case PH_ICMP_ERROR:
		return ph_icmp_error_in(p, quoted);
	case PH_ICMP_ECHO_REQ:
		if (ph_policy_get(&pol))
			return ph_fail_reason();
		return pol.meta->icmp_echo[PH_DIR_IN] == PH_ACT_ALLOW ?
			       PH_R_PASS_ICMP_ECHO :
			       PH_R_DROP_ICMP;
	case PH_ICMP_ECHO_REPLY:
		/* Only a reply to a request this host sent (egress made the
		 * flow). */
		ph_flow_key_init(&k, p, PH_DIR_IN);
		ph_flow_key_echo(&k, p);
		return ph_flows_hit(&k, p, PH_DIR_IN, clk) ?
			       PH_R_PASS_FLOW :
			       PH_R_DROP_ICMP_UNRELATED;
	}
	return PH_R_DROP_ICMP;
}

/*
 * Judges a TCP/UDP packet by the policy alone: PASS_POLICY, PASS_DEFAULT
 * or a drop/fail reason. *v: the rule (index + 1, 0: none), *rflags its
 * flags.
 */
static __always_inline __u32 ingress_rule(const struct ph_pkt *p, int *v,
					  __u16 *rflags)
{
	struct ph_policy pol;
	__u32 reason;
	__u8 l4;

	if (ph_policy_get(&pol))
		return ph_fail_reason();
	l4 = p->proto == IPPROTO_TCP ? PH_L4_TCP : PH_L4_UDP;
	reason = ph_port_lookup2(&pol, l4, PH_PT_IN_DPORT, p->dport,
				 PH_PT_IN_SPORT, p->sport, v);
	if (reason != PH_CONTINUE)
		return reason;
	if (*v)
		return ph_rule_verdict(&pol, *v, p->src, rflags);
	return ph_default_verdict(&pol, PH_DIR_IN);
}

static __always_inline int ph_admitted(__u32 reason)
{
	return reason == PH_R_PASS_POLICY || reason == PH_R_PASS_DEFAULT;
}

/*
 * A bare SYN opens a connection. Confirmed flows are not consulted: a
 * stale entry must not admit a new connection on the same ports, and
 * skipping it keeps a SYN flood off the flow table.
 */
static __always_inline __u32 ingress_syn(struct ph_flow_key *k,
					 const struct ph_pkt *p,
					 struct ph_clock *clk)
{
	int pinhole_port = bpf_ntohs(p->dport) >= PH_PINHOLE_MIN_PORT;
	__u32 session = 0, reason;
	int exp = PH_EXP_NONE, v = 0;
	__u16 rflags = 0;

	if (ph_cfg.failsafe_port && p->dport == bpf_htons(ph_cfg.failsafe_port))
		return PH_R_PASS_FAILSAFE;

	/* The key is built only once a table is to be consulted: a denied
	 * SYN to a service port never needs it. */
	if (pinhole_port) {
		ph_flow_key_init(k, p, PH_DIR_IN);
		/* A retransmitted SYN finds the entry its first copy made,
		 * even when a consumed pinhole admitted it. */
		reason = ph_half_open_hit(k, p, PH_DIR_IN, clk);
		if (reason != PH_CONTINUE)
			return reason;
		exp = ph_expect_take(k, PH_DIR_IN, clk, &session);
		if (exp == PH_EXP_TAKEN) {
			ph_half_open_add(k, PH_FO_EXPECT, 0, 0, session, clk);
			return PH_R_PASS_EXPECT;
		}
	}

	reason = ingress_rule(p, &v, &rflags);
	if (!ph_admitted(reason)) {
		if (exp == PH_EXP_SPENT && reason != PH_R_DROP_FAIL_CLOSED &&
		    PH_REASON_IS_DROP(reason))
			return PH_R_DROP_EXPECT_SPENT;
		return reason;
	}
	if (!pinhole_port) {
		__u32 again;

		ph_flow_key_init(k, p, PH_DIR_IN);
		again = ph_half_open_hit(k, p, PH_DIR_IN, clk);

		if (again != PH_CONTINUE)
			return again;
	}
	ph_half_open_add(k, PH_FO_INBOUND, ph_rule_flow_flags(rflags), v, 0,
			 clk);
	return reason;
}

static __always_inline __u32 ingress_verdict(const struct ph_pkt *p,
					     const struct ph_flow_key *quoted)
{
	struct ph_clock clk = {};
	struct ph_flow_key k;
	__u16 rflags = 0;
	__u32 reason;
	int v = 0;

	if (p->frag == PH_FRAG_LATER)
		return ph_frag_verdict(p, ph_clock_ns(&clk));
	if (p->is_icmp)
		return ingress_icmp(p, quoted, &clk);
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return ph_other_l4_verdict(PH_DIR_IN);

	if (p->proto == IPPROTO_TCP && ph_tcp_is_syn(p))
		return ingress_syn(&k, p, &clk);

	ph_flow_key_init(&k, p, PH_DIR_IN);
	if (ph_flows_hit(&k, p, PH_DIR_IN, &clk))
		return PH_R_PASS_FLOW;
	reason = ph_half_open_hit(&k, p, PH_DIR_IN, &clk);
	if (reason != PH_CONTINUE)
		return reason;
	if (p->proto == IPPROTO_TCP && ph_cfg.failsafe_port &&
	    p->dport == bpf_htons(ph_cfg.failsafe_port))
		return PH_R_PASS_FAILSAFE;

	reason = ingress_rule(p, &v, &rflags);
	/* Only a connection opener creates state: TCP without SYN passes
	 * statelessly, so a flood of stray ACKs cannot fill any table. */
	if (ph_admitted(reason) && p->proto == IPPROTO_UDP)
		ph_half_open_add(&k, PH_FO_INBOUND, ph_rule_flow_flags(rflags),
				 v, 0, &clk);
	return reason;
}

static __always_inline int record_verdict(struct xdp_md *ctx, __u32 dir,
					  __u32 reason)
{
	ph_count(dir, reason, ctx->data_end - ctx->data);
	return PH_REASON_IS_DROP(reason) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int pinhole_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	/* ph_parse_quoted() stores v4-mapped addresses as 32-bit words. */
	struct ph_flow_key quoted __attribute__((aligned(8)));
	struct ph_pkt pkt;
	__u32 reason;

	reason = ph_parse(data, data_end, data_end - data, &pkt, &quoted);
	if (reason == PH_CONTINUE) {
		reason = ingress_verdict(&pkt, &quoted);
		if (pkt.frag == PH_FRAG_FIRST && !PH_REASON_IS_DROP(reason))
			ph_frag_remember(&pkt, reason, ph_now());
	}
	return record_verdict(ctx, PH_DIR_IN, reason);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
