// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pinhole XDP ingress: every frame arriving on an attached interface.
 *
 * Order (docs/datapath.md): parse; later fragments by their first
 * fragment's verdict; ICMP (ND, errors about known flows, echo); confirmed
 * flow (the fast path); half-open connection; failsafe port; FTP pinhole;
 * policy. Every path ends in record_verdict().
 */
#include "lib/common.h"
#include "lib/parse.h"
#include "lib/flow.h"
#include "lib/policy.h"
#include "lib/icmp.h"
#include "lib/verdict.h"

const volatile struct ph_load_cfg ph_cfg = {};
__u64 ph_clock_offset_ns = 0;

static __always_inline __u32 ingress_icmp(const struct ph_pkt *p,
					  const struct ph_flow_key *quoted,
					  __u64 now)
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
		return ph_flows_hit(&k, p, PH_DIR_IN, now) ?
			       PH_R_PASS_FLOW :
			       PH_R_DROP_ICMP_UNRELATED;
	}
	return PH_R_DROP_ICMP;
}

static __always_inline __u32 ingress_policy(const struct ph_flow_key *k,
					    const struct ph_pkt *p, __u64 now)
{
	struct ph_policy pol;
	__u16 rflags = 0;
	__u32 reason;
	__u8 l4;
	int v = 0;

	if (ph_policy_get(&pol))
		return ph_fail_reason();
	l4 = p->proto == IPPROTO_TCP ? PH_L4_TCP : PH_L4_UDP;

	reason = ph_port_lookup2(&pol, l4, PH_PT_IN_DPORT, p->dport,
				 PH_PT_IN_SPORT, p->sport, &v);
	if (reason != PH_CONTINUE)
		return reason;
	if (v)
		reason = ph_rule_verdict(&pol, v, p->src, &rflags);
	else
		reason = ph_default_verdict(&pol, PH_DIR_IN);

	/* Only a connection opener creates state: a flood of stray ACKs to
	 * an open port passes statelessly and cannot fill any table. */
	if ((reason == PH_R_PASS_POLICY || reason == PH_R_PASS_DEFAULT) &&
	    ph_pkt_opens(p))
		ph_half_open_add(k, PH_FO_INBOUND, ph_rule_flow_flags(rflags),
				 v, 0, now);
	return reason;
}

static __always_inline __u32 ingress_verdict(const struct ph_pkt *p,
					     const struct ph_flow_key *quoted)
{
	__u32 session = 0, reason;
	struct ph_flow_key k;
	__u64 now = ph_now();
	int exp = PH_EXP_NONE;

	if (p->frag == PH_FRAG_LATER)
		return ph_frag_verdict(p, now);
	if (p->is_icmp)
		return ingress_icmp(p, quoted, now);
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return ph_other_l4_verdict(PH_DIR_IN);

	ph_flow_key_init(&k, p, PH_DIR_IN);
	if (ph_flows_hit(&k, p, PH_DIR_IN, now))
		return PH_R_PASS_FLOW;
	reason = ph_half_open_hit(&k, p, PH_DIR_IN, now);
	if (reason != PH_CONTINUE)
		return reason;

	if (p->proto == IPPROTO_TCP && ph_cfg.failsafe_port &&
	    p->dport == bpf_htons(ph_cfg.failsafe_port))
		return PH_R_PASS_FAILSAFE;

	if (p->proto == IPPROTO_TCP && ph_tcp_is_syn(p)) {
		exp = ph_expect_take(&k, PH_DIR_IN, now, &session);
		if (exp == PH_EXP_TAKEN) {
			ph_half_open_add(&k, PH_FO_EXPECT, 0, 0, session, now);
			return PH_R_PASS_EXPECT;
		}
	}

	reason = ingress_policy(&k, p, now);
	if (exp == PH_EXP_SPENT && PH_REASON_IS_DROP(reason) &&
	    reason != PH_R_DROP_FAIL_CLOSED)
		reason = PH_R_DROP_EXPECT_SPENT;
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
	struct ph_flow_key quoted;
	struct ph_pkt pkt = {};
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
