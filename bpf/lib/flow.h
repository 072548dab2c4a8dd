/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection state: confirmed flows, half-open connections, FTP pinholes
 * (expectations) and fragment verdicts. Keys are host-oriented (see
 * struct ph_flow_key): ingress builds local = dst, egress local = src, so
 * both directions of a connection find the same entry.
 */
#ifndef PH_BPF_FLOW_H
#define PH_BPF_FLOW_H

#include "common.h"
#include "ftp.h"

/* Keys are hashed byte for byte: every byte, padding included, is set. */
static __always_inline void ph_flow_key_init(struct ph_flow_key *k,
					     const struct ph_pkt *p, int dir)
{
	const __u32 *local = dir == PH_DIR_IN ? p->dst : p->src;
	const __u32 *remote = dir == PH_DIR_IN ? p->src : p->dst;

	__builtin_memcpy(k->local, local, 16);
	__builtin_memcpy(k->remote, remote, 16);
	k->lport = dir == PH_DIR_IN ? p->dport : p->sport;
	k->rport = dir == PH_DIR_IN ? p->sport : p->dport;
	k->proto = p->proto;
	k->pad[0] = 0;
	k->pad[1] = 0;
	k->pad[2] = 0;
}

/* ICMP echo: the identifier stands in for the local port (both ways). */
static __always_inline void ph_flow_key_echo(struct ph_flow_key *k,
					     const struct ph_pkt *p)
{
	k->lport = p->icmp_id;
	k->rport = 0;
}

static __always_inline __u64 ph_flow_timeout_ns(const struct ph_flow *f,
						__u8 proto)
{
	if (proto == IPPROTO_TCP) {
		if (f->state == PH_FS_CLOSING)
			return PH_CFG_TIMEOUT_NS(tcp_closing_timeout_s,
						 PH_TCP_CLOSING_TIMEOUT_S);
		return PH_CFG_TIMEOUT_NS(tcp_est_timeout_s,
					 PH_TCP_EST_TIMEOUT_S);
	}
	if (proto == IPPROTO_UDP)
		return PH_CFG_TIMEOUT_NS(udp_timeout_s, PH_UDP_TIMEOUT_S);
	return PH_CFG_TIMEOUT_NS(icmp_timeout_s, PH_ICMP_TIMEOUT_S);
}

/*
 * bpf_jiffies64() is inlined by the JIT (one load), the ns clock is a
 * helper call: an entry found alive less than PH_RECHECK_JIFFIES ago
 * (at most 1 s, HZ >= 100) is taken as alive without reading the clock.
 * Every idle timeout is longer than that, so a timeout is enforced to
 * within a second, and last_seen moves at most once per recheck: a store
 * per packet would bounce the entry's cache line between CPUs for nothing.
 * Tests move ph_clock_offset_ns instead of jiffies, so a non-zero offset
 * always takes the precise path.
 */
#define PH_RECHECK_JIFFIES 100

/*
 * A packet hit @f in flows. Returns 0 if the entry had idled out (deleted;
 * the packet is judged afresh), else non-zero (the packet passes): 2 when
 * this packet ended the connection (a RST, or the FIN completing both
 * ways), 1 otherwise.
 */
static __always_inline int ph_flow_use(struct ph_flow *f,
				       const struct ph_flow_key *k,
				       const struct ph_pkt *p, int dir,
				       struct ph_clock *clk)
{
	__u8 fin_me = dir == PH_DIR_IN ? PH_FF_FIN_IN : PH_FF_FIN_OUT;
	__u32 j = bpf_jiffies64();
	__u64 now;

	if (j - f->checked_jiffies >= PH_RECHECK_JIFFIES ||
	    ph_clock_offset_ns) {
		now = ph_clock_ns(clk);
		if (ph_older_than(now, f->last_seen_ns,
				  ph_flow_timeout_ns(f, k->proto))) {
			bpf_map_delete_elem(&flows, k);
			return 0;
		}
		f->last_seen_ns = now;
		f->checked_jiffies = j;
	}
	if (p->proto == IPPROTO_TCP &&
	    (p->tcp_flags & (PH_TCP_RST | PH_TCP_FIN))) {
		if (p->tcp_flags & PH_TCP_RST) {
			bpf_map_delete_elem(&flows, k);
			return 2;
		}
		if (!(f->flags & fin_me)) {
			f->flags |= fin_me;
			if ((f->flags & (PH_FF_FIN_IN | PH_FF_FIN_OUT)) ==
			    (PH_FF_FIN_IN | PH_FF_FIN_OUT)) {
				/* The closing timeout runs from here. */
				f->state = PH_FS_CLOSING;
				f->last_seen_ns = ph_clock_ns(clk);
				f->checked_jiffies = j;
				return 2;
			}
		}
	}
	return 1;
}

/*
 * A connection closed both ways (CLOSING, in TIME_WAIT) whose 4-tuple a
 * new, admitted SYN reuses: its packets belong to the new attempt in
 * half_open, which the handshake promotes over the old entry. Were the old
 * entry to take them, the new connection would never be confirmed and its
 * half_open entry would admit the next SYN on the 4-tuple in place of that
 * one's pinhole. Only TCP, and only a CLOSING flow pays the lookup.
 */
static __always_inline int ph_flow_superseded(const struct ph_flow *f,
					      const struct ph_flow_key *k,
					      const struct ph_pkt *p)
{
	return f->state == PH_FS_CLOSING && p->proto == IPPROTO_TCP &&
	       bpf_map_lookup_elem(&half_open, k);
}

static __always_inline int ph_flows_hit(const struct ph_flow_key *k,
					const struct ph_pkt *p, int dir,
					struct ph_clock *clk)
{
	struct ph_flow *f = bpf_map_lookup_elem(&flows, k);

	return f && ph_flow_use(f, k, p, dir, clk);
}

/*
 * half_open holds connections whose first packet was admitted but which
 * have not been confirmed yet (TCP: handshake; UDP: a reply). It is a
 * separate LRU so that a flood of new connections evicts only other
 * half-open entries, never confirmed flows.
 */
static __always_inline void ph_half_open_add(const struct ph_flow_key *k,
					     const struct ph_pkt *p,
					     __u8 origin, __u8 flags,
					     __u16 rule, __u16 svc,
					     __u32 session,
					     struct ph_clock *clk)
{
	__u64 now = ph_clock_ns(clk);
	struct ph_flow f = {
		.created_ns = now,
		.last_seen_ns = now,
		.state = PH_FS_NEW,
		.origin = origin,
		.flags = flags,
		.rule = rule,
		.svc_id = svc,
		.session = session,
	};

	/* A SYN's sequence number tells its retransmissions from a new
	 * connection on the same 4-tuple (ph_half_open_hit()). */
	if (p->proto == IPPROTO_TCP && ph_tcp_is_syn(p)) {
		f.flags |= PH_FF_SYN_SEQ;
		f.syn_seq = p->tcp_seq;
	}

	/* A bare SYN to this port must find the entry (a retransmit, a
	 * simultaneous open): the watch covers its life, raised first. */
	if (k->proto == IPPROTO_TCP &&
	    bpf_ntohs(k->lport) >= PH_PINHOLE_MIN_PORT)
		ph_syn_watch_raise(PH_SW_HALF_OPEN, k->lport,
				   now + PH_CFG_TIMEOUT_NS(half_open_timeout_s,
							   PH_HALF_OPEN_TIMEOUT_S) +
					   2 * PH_NSEC_PER_SEC);
	bpf_map_update_elem(&half_open, k, &f, BPF_ANY);
}

/* Returns 1 if the flow promoted is a tracked FTP control connection. */
static __always_inline int ph_promote(const struct ph_flow_key *k,
				      const struct ph_flow *ho, __u64 now)
{
	struct ph_flow f = *ho;

	f.state = PH_FS_ESTABLISHED;
	f.flags &= ~PH_FF_SYN_SEQ; /* syn_seq is checked_jiffies from here */
	f.last_seen_ns = now;
	f.checked_jiffies = bpf_jiffies64();
	bpf_map_update_elem(&flows, k, &f, BPF_ANY);
	bpf_map_delete_elem(&half_open, k);
	return (f.flags & PH_FF_CTRL_ANY) && ph_cfg.track_ftp &&
	       k->proto == IPPROTO_TCP;
}

/* ph_half_open_hit() with @ctrl: the packet passes (PASS_HALF_OPEN) and
 * promoted an FTP control connection, whose session the caller starts. */
#define PH_CTRL_PROMOTED (PH_R_MAX + 2)

/*
 * A packet matching a half-open entry passes (PASS_HALF_OPEN); the packet
 * that completes the connection moves it into flows:
 *   first packet went out (PH_FF_INIT_OUT): the peer's SYN-ACK, or for UDP
 *     any datagram coming back;
 *   first packet came in: the peer's ACK (without SYN) arriving, or for UDP
 *     our reply leaving.
 * A RST from either side ends the attempt. With @ctrl, the promotion of an
 * FTP control connection returns PH_CTRL_PROMOTED. Passing, *svc gets the
 * entry's service counter id.
 */
static __always_inline __u32 ph_half_open_hit(const struct ph_flow_key *k,
					      const struct ph_pkt *p, int dir,
					      struct ph_clock *clk, int ctrl,
					      __u16 *svc)
{
	struct ph_flow *f = bpf_map_lookup_elem(&half_open, k);
	int is_reply;
	__u64 now;

	if (!f)
		return PH_CONTINUE;
	now = ph_clock_ns(clk);
	if (ph_older_than(now, f->created_ns,
			  PH_CFG_TIMEOUT_NS(half_open_timeout_s,
					    PH_HALF_OPEN_TIMEOUT_S))) {
		bpf_map_delete_elem(&half_open, k);
		return PH_CONTINUE;
	}
	*svc = f->svc_id;
	/* Does this packet travel opposite to the first one? */
	is_reply = !!(f->flags & PH_FF_INIT_OUT) == (dir == PH_DIR_IN);
	/*
	 * A bare SYN the same way as the first one but with another sequence
	 * number is a new connection on this 4-tuple (a fixed data port
	 * reused at once), not a retransmission: the old attempt is over, and
	 * the new SYN must take its own pinhole or pass the policy, so that
	 * each data connection consumes exactly its pinhole.
	 */
	if (p->proto == IPPROTO_TCP && !is_reply && ph_tcp_is_syn(p) &&
	    (f->flags & PH_FF_SYN_SEQ) && f->syn_seq != p->tcp_seq) {
		bpf_map_delete_elem(&half_open, k);
		return PH_CONTINUE;
	}

	if (p->proto == IPPROTO_TCP) {
		__u8 sa = p->tcp_flags & (PH_TCP_SYN | PH_TCP_ACK);

		if (p->tcp_flags & PH_TCP_RST)
			bpf_map_delete_elem(&half_open, k);
		else if (dir == PH_DIR_IN &&
			 (is_reply ? sa == (PH_TCP_SYN | PH_TCP_ACK) :
				     sa == PH_TCP_ACK) &&
			 ph_promote(k, f, now) && ctrl)
			return PH_CTRL_PROMOTED;
	} else if (is_reply) {
		ph_promote(k, f, now);
	}
	return PH_R_PASS_HALF_OPEN;
}

/*
 * FTP pinholes. Userspace installs an exact key, or one whose port on the
 * connecting side is 0 (the peer's source port is not known in advance):
 * inbound that is rport, outbound lport. An entry is single-use: whoever
 * deletes it first owns it, so two CPUs cannot both admit a SYN.
 */
enum ph_expect_res {
	PH_EXP_NONE = 0,
	PH_EXP_TAKEN = 1,
	PH_EXP_SPENT = 2, /* an entry existed but had expired */
};

static __always_inline int ph_expect_take(const struct ph_flow_key *k,
					  int dir, struct ph_clock *clk,
					  __u32 *session)
{
	struct ph_flow_key ek = *k;
	struct ph_expect *e;
	int res = PH_EXP_NONE;
	int i;

#pragma unroll
	for (i = 0; i < 2; i++) {
		if (i == 1) {
			if (dir == PH_DIR_IN)
				ek.rport = 0;
			else
				ek.lport = 0;
		}
		e = bpf_map_lookup_elem(&expect, &ek);
		if (!e || e->dir != dir)
			continue;
		if ((__s64)(e->deadline_ns - ph_clock_ns(clk)) > 0) {
			__u32 s = e->session;

			if (bpf_map_delete_elem(&expect, &ek) == 0) {
				*session = s;
				if (ph_cfg.track_ftp)
					ph_ftp_expect_used(&ek, k, s, dir);
				return PH_EXP_TAKEN;
			}
		} else {
			bpf_map_delete_elem(&expect, &ek);
		}
		res = PH_EXP_SPENT;
	}
	return res;
}

/* Fragments: the first fragment's verdict covers the rest of the datagram. */
static __always_inline void ph_frag_key_init(struct ph_frag_key *fk,
					     const struct ph_pkt *p)
{
	__builtin_memcpy(fk->src, p->src, 16);
	__builtin_memcpy(fk->dst, p->dst, 16);
	fk->id = p->frag_id;
	fk->proto = p->frag_proto;
	fk->pad[0] = 0;
	fk->pad[1] = 0;
	fk->pad[2] = 0;
}

static __always_inline void ph_frag_remember(const struct ph_pkt *p,
					     __u32 reason, __u64 now)
{
	struct ph_frag_key fk;
	struct ph_frag v = { .created_ns = now, .reason = reason };

	ph_frag_key_init(&fk, p);
	bpf_map_update_elem(&frags, &fk, &v, BPF_ANY);
}

static __always_inline __u32 ph_frag_verdict(const struct ph_pkt *p, __u64 now)
{
	struct ph_frag_key fk;
	struct ph_frag *v;

	ph_frag_key_init(&fk, p);
	v = bpf_map_lookup_elem(&frags, &fk);
	if (v && !ph_older_than(now, v->created_ns,
				PH_FRAG_TIMEOUT_S * PH_NSEC_PER_SEC))
		return PH_R_PASS_FRAGMENT;
	return PH_R_DROP_FRAGMENT;
}

#endif /* PH_BPF_FLOW_H */
