/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy lookup: the active slot, the port tables (O(1) in the number of
 * rules), the rule array and the peer set's own LPM trie. Any array lookup that
 * unexpectedly fails yields ph_fail_reason() (fail-open or fail-closed,
 * chosen at load time).
 */
#ifndef PH_BPF_POLICY_H
#define PH_BPF_POLICY_H

#include "common.h"

/* The policy in force for this packet: read once, so a reload (a single
 * write of state.active_slot) is seen as all-old or all-new. */
struct ph_policy {
	__u32 slot;
	struct ph_slot_meta *meta;
};

static __always_inline int ph_policy_get(struct ph_policy *pol)
{
	__u32 zero = 0;
	struct ph_state *st = bpf_map_lookup_elem(&state, &zero);

	if (!st)
		return -1;
	pol->slot = st->active_slot;
	pol->meta = bpf_map_lookup_elem(&slot_meta, &pol->slot);
	return pol->meta ? 0 : -1;
}

/* Rule index + 1 for @port in @table (0: none), or -1 on lookup failure. */
static __always_inline int ph_port_rule(const struct ph_policy *pol, __u8 l4,
					__u32 table, __be16 port)
{
	__u32 idx = PH_PORT_IDX(pol->slot, l4, table, bpf_ntohs(port));
	__u16 *v = bpf_map_lookup_elem(&ports, &idx);

	return v ? *v : -1;
}

/* Looks up the rule table then the port; *rv gets the rule index + 1 (0: no
 * rule). Returns PH_CONTINUE or the fail reason. */
static __always_inline __u32 ph_port_lookup2(const struct ph_policy *pol,
					     __u8 l4, __u32 t1, __be16 p1,
					     __u32 t2, __be16 p2, int *rv)
{
	int v = ph_port_rule(pol, l4, t1, p1);

	if (v == 0)
		v = ph_port_rule(pol, l4, t2, p2);
	if (v < 0)
		return ph_fail_reason();
	*rv = v;
	return PH_CONTINUE;
}

/*
 * Applies rule @v (index + 1) to a packet from/to @remote. Returns
 * PASS_POLICY, DROP_DENY_RULE, DROP_PEER or the fail reason; *flags gets the
 * rule's PH_RF_* flags, *svc its service counter id.
 */
static __always_inline __u32 ph_rule_verdict(const struct ph_policy *pol,
					     int v, const __u32 *remote,
					     __u16 *flags, __u16 *svc)
{
	struct ph_peer_key pk;
	struct ph_peer_val *pv;
	struct ph_rule *r;
	void *trie;
	__u32 idx;

	if (v > PH_MAX_RULES)
		return ph_fail_reason();
	idx = pol->slot * PH_MAX_RULES + (v - 1);
	r = bpf_map_lookup_elem(&rules, &idx);
	if (!r)
		return ph_fail_reason();
	*flags = r->flags;
	*svc = r->svc_id;
	if (r->flags & PH_RF_ACTIVE_GUARD)
		return PH_R_DROP_FTP_ACTIVE; /* the caller: ph_guard_verdict() */
	if (r->action != PH_ACT_ALLOW)
		return PH_R_DROP_DENY_RULE;
	if (r->flags & PH_RF_PEER_ANY)
		return PH_R_PASS_POLICY;

	if (r->peer_set >= PH_MAX_SETS)
		return ph_fail_reason();
	idx = PH_PEER_SET_IDX(pol->slot, r->peer_set);
	trie = bpf_map_lookup_elem(&peers, &idx);
	if (!trie) /* a set without a trie holds no prefix */
		return PH_R_DROP_PEER;
	pk.prefixlen = 128;
	__builtin_memcpy(pk.addr, remote, 16);
	pv = bpf_map_lookup_elem(trie, &pk);
	if (!pv || pv->action != PH_ACT_ALLOW)
		return PH_R_DROP_PEER;
	return PH_R_PASS_POLICY;
}

/* Is rule @v (index + 1) an active-data guard? */
static __always_inline int ph_rule_is_guard(const struct ph_policy *pol, int v)
{
	__u32 idx = pol->slot * PH_MAX_RULES + (__u32)(v - 1);
	struct ph_rule *r;

	if (v <= 0 || v > PH_MAX_RULES)
		return 0;
	r = bpf_map_lookup_elem(&rules, &idx);
	return r && (r->flags & PH_RF_ACTIVE_GUARD);
}

static __always_inline __u32 ph_default_verdict(const struct ph_policy *pol,
						int dir)
{
	return pol->meta->default_verdict[dir & 1] == PH_ACT_ALLOW ?
		       PH_R_PASS_DEFAULT :
		       PH_R_DROP_POLICY;
}

/*
 * A connection from a tracked service's active-data port that no pinhole
 * admitted and no service of the policy names (PH_RF_ACTIVE_GUARD,
 * pinhole.h): the default decides only if it drops; where it would allow,
 * only a peer holding an FTPS control session with this address
 * (ftps_peers: FTPS data has no pinhole), to a data port >= 1024, passes.
 * Everything else, a bounce above all, is drop_ftp_active. @data_port: the
 * port the connection goes to (the remote one out, the local one in).
 */
static __attribute__((noinline)) __u32
ph_guard_verdict(const struct ph_policy *pol, int dir, const __u32 *remote,
		 const __u32 *local, __be16 data_port)
{
	struct ph_ftps_peer_key pk;
	struct ph_ftps_peer *v;

	if (pol->meta->default_verdict[dir & 1] != PH_ACT_ALLOW)
		return PH_R_DROP_POLICY;
	if (bpf_ntohs(data_port) < PH_PINHOLE_MIN_PORT)
		return PH_R_DROP_FTP_ACTIVE;
	__builtin_memcpy(pk.remote, remote, sizeof(pk.remote));
	__builtin_memcpy(pk.local, local, sizeof(pk.local));
	v = bpf_map_lookup_elem(&ftps_peers, &pk);
	if (v && *(volatile __u32 *)&v->refs)
		return PH_R_PASS_FTPS_ACTIVE;
	return PH_R_DROP_FTP_ACTIVE;
}

/* Protocols other than TCP, UDP and ICMP: the direction's default, no
 * state (nothing to key a flow on). */
static __always_inline __u32 ph_other_l4_verdict(int dir)
{
	struct ph_policy pol;

	if (ph_policy_get(&pol))
		return ph_fail_reason();
	return ph_default_verdict(&pol, dir);
}

/* Flow flags a new connection inherits from the rule that admitted it. */
static __always_inline __u8 ph_rule_flow_flags(__u16 rf)
{
	__u8 ff = 0;

	if (rf & PH_RF_FTP_TRACK)
		ff |= PH_FF_FTP_CTRL;
	if (rf & PH_RF_FTPS_IMPLICIT)
		ff |= PH_FF_FTPS_CTRL;
	return ff;
}

#endif /* PH_BPF_POLICY_H */
