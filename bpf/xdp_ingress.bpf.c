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
#include "lib/sock.h"
#include "lib/policy.h"
#include "lib/icmp.h"
#include "lib/verdict.h"

const volatile struct ph_load_cfg ph_cfg = {};
__u64 ph_clock_offset_ns = 0;

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
 * flags, *svc its service counter id.
 */
static __always_inline __u32 ingress_rule(const struct ph_pkt *p, int *v,
					  __u16 *rflags, __u16 *svc)
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
	if (!*v)
		return ph_default_verdict(&pol, PH_DIR_IN);
	reason = ph_rule_verdict(&pol, *v, p->src, rflags, svc);
	if (reason == PH_R_DROP_FTP_ACTIVE)
		reason = ph_guard_verdict(&pol, PH_DIR_IN, p->src, p->dst,
					  p->dport);
	return reason;
}

static __always_inline int ph_admitted(__u32 reason)
{
	return reason == PH_R_PASS_POLICY || reason == PH_R_PASS_DEFAULT ||
	       reason == PH_R_PASS_FTPS_RANGE ||
	       reason == PH_R_PASS_FTPS_ACTIVE;
}

/*
 * A SYN to a port of an ftps-range rule (docs/datapath.md, "FTPS passive
 * ranges"): admitted only if (b) its source holds a live FTPS control
 * connection to its destination address (ftps_peers), and (a) a socket
 * listens on the port right now. The map lookup comes first: it is cheap,
 * and a scanner without a session never costs a socket lookup.
 *
 * A subprogram of its own, not inlined: the tuple and the socket pointer
 * then live in its own frame, not in the program's, whose stack the FTP
 * functions' call chain needs.
 */
static __attribute__((noinline)) __u32 ingress_ftps(struct xdp_md *ctx,
						     const struct ph_pkt *p)
{
	struct ph_ftps_peer_key pk;
	struct bpf_sock_tuple t;
	struct ph_ftps_peer *v;
	struct bpf_sock *sk;
	__u32 state;

	__builtin_memcpy(pk.remote, p->src, sizeof(pk.remote));
	__builtin_memcpy(pk.local, p->dst, sizeof(pk.local));
	v = bpf_map_lookup_elem(&ftps_peers, &pk);
	if (!v || !*(volatile __u32 *)&v->refs)
		return PH_R_DROP_FTPS_NO_SESSION;

	/* The device's network namespace; established and TIME_WAIT
	 * sockets of this exact 4-tuple come first, then listeners. */
	__builtin_memset(&t, 0, sizeof(t));
	if (p->family == 4) {
		t.ipv4.saddr = p->src[3];
		t.ipv4.daddr = p->dst[3];
		t.ipv4.sport = p->sport;
		t.ipv4.dport = p->dport;
		sk = (struct bpf_sock *)bpf_skc_lookup_tcp(
			ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->src, sizeof(t.ipv6.saddr));
		__builtin_memcpy(t.ipv6.daddr, p->dst, sizeof(t.ipv6.daddr));
		t.ipv6.sport = p->sport;
		t.ipv6.dport = p->dport;
		sk = (struct bpf_sock *)bpf_skc_lookup_tcp(
			ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return PH_R_DROP_FTPS_NO_LISTENER;
	state = sk->state;
	bpf_sk_release(sk);
	/* A request socket (NEW_SYN_RECV) exists only under a listener that
	 * took this 4-tuple's SYN: a retransmission that missed half_open. */
	if (state == BPF_TCP_LISTEN || state == BPF_TCP_NEW_SYN_RECV)
		return PH_R_PASS_FTPS_RANGE;
	return PH_R_DROP_FTPS_NO_LISTENER;
}

/*
 * A bare SYN opens a connection. Confirmed flows are not consulted: a
 * stale entry must not admit a new connection on the same ports, and
 * skipping it keeps a SYN flood off the flow table. *svc: the service
 * counter id of the rule or half-open entry met.
 */
static __always_inline __u32 ingress_syn(struct xdp_md *ctx,
					 struct ph_flow_key *k,
					 const struct ph_pkt *p,
					 struct ph_clock *clk, __u16 *svc)
{
	int pinhole_port = bpf_ntohs(p->dport) >= PH_PINHOLE_MIN_PORT;
	int watch_ho = 0, watch_exp = 0;
	__u32 session = 0, reason;
	int exp = PH_EXP_NONE, v = 0;
	__u16 rflags = 0;

	if (ph_cfg.failsafe_port && p->dport == bpf_htons(ph_cfg.failsafe_port))
		return PH_R_PASS_FAILSAFE;

	/* Tables are consulted only where syn_watch says an entry may be
	 * (a missing watch entry: always), and the key is built only then:
	 * a denied SYN to a closed port never needs it. */
	if (pinhole_port) {
		watch_ho = ph_syn_watch_live(PH_SW_HALF_OPEN, p->dport, clk);
		watch_exp = ph_syn_watch_live(PH_SW_EXPECT, p->dport, clk);
	}
	if (watch_ho || watch_exp)
		ph_flow_key_init(k, p, PH_DIR_IN);
	/* A retransmitted SYN finds the entry its first copy made, even
	 * when a consumed pinhole admitted it. */
	if (watch_ho) {
		reason = ph_half_open_hit(k, p, PH_DIR_IN, clk, 0, svc);
		if (reason != PH_CONTINUE)
			return reason;
	}
	if (watch_exp) {
		exp = ph_expect_take(k, PH_DIR_IN, clk, &session);
		if (exp == PH_EXP_TAKEN) {
			ph_half_open_add(k, p, PH_FO_EXPECT, 0, 0, 0, session,
					 clk);
			return PH_R_PASS_EXPECT;
		}
	}

	reason = ingress_rule(p, &v, &rflags, svc);
	if (reason == PH_R_PASS_POLICY && (rflags & PH_RF_FTPS_RANGE))
		reason = ingress_ftps(ctx, p);
	if (!ph_admitted(reason)) {
		if (exp == PH_EXP_SPENT && reason != PH_R_DROP_FAIL_CLOSED &&
		    PH_REASON_IS_DROP(reason))
			return PH_R_DROP_EXPECT_SPENT;
		return reason;
	}
	if (!pinhole_port) {
		__u32 again;

		ph_flow_key_init(k, p, PH_DIR_IN);
		again = ph_half_open_hit(k, p, PH_DIR_IN, clk, 0, svc);

		if (again != PH_CONTINUE)
			return again;
	} else if (!watch_ho && !watch_exp) {
		ph_flow_key_init(k, p, PH_DIR_IN);
	}
	ph_half_open_add(k, p,
			 reason == PH_R_PASS_FTPS_RANGE ||
					 reason == PH_R_PASS_FTPS_ACTIVE ?
				 PH_FO_FTPS :
				 PH_FO_INBOUND,
			 ph_rule_flow_flags(rflags), v, *svc, 0, clk);
	return reason;
}

/* ---- FTP control connections (bpf/lib/ftp.h) ---- */

/* Frame offsets beyond this are not copied (no XDP frame is that long). */
#define PH_XDP_OFF_MAX 0x3fff

/* TCP sequence and acknowledgement numbers (host order). */
static __always_inline int xdp_tcp_seq(struct xdp_md *ctx, __u32 l4_off,
				       __u32 *seq, __u32 *ack)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct tcphdr *th = data + (l4_off & PH_XDP_OFF_MAX);

	if ((void *)(th + 1) > end)
		return -1;
	*seq = bpf_ntohl(th->seq);
	*ack = bpf_ntohl(th->ack_seq);
	return 0;
}

/*
 * Copies record @i of the segment in the scratch (its payload bytes
 * [i * PH_CTRL_CAP, + PH_CTRL_CAP)) to the record's data, 8 bytes at a
 * time, the last few one by one: no bpf_xdp_load_bytes() before 5.18.
 * Returns the bytes copied, or 0 if the frame ends first (the rest of an
 * XDP multi-buffer frame is out of reach). Global, so verified once; its
 * loop bounds are read from the scratch afresh (see ph_ftp_scan()).
 */
__attribute__((noinline)) int ph_xdp_copy(struct xdp_md *ctx, __u32 i)
{
	__u32 idx = PH_DIR_IN, off, n, w, k;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *src, *b, *dst;

	if (!sc || i >= PH_CTRL_CHUNKS)
		return 0;
	off = i * PH_CTRL_CAP;
	if (off >= sc->in.payload_len)
		return 0;
	n = sc->in.payload_len - off;
	if (n > PH_CTRL_CAP)
		n = PH_CTRL_CAP;
	off += sc->in.payload_off;
	if (off > PH_XDP_OFF_MAX)
		return 0;
	dst = sc->ev.data;
	/* The bound where the verifier sees it: clang may otherwise add an
	 * unchecked copy of off to the packet pointer. */
	asm volatile("%[off] &= %[max]"
		     : [off] "+r"(off)
		     : [max] "i"(PH_XDP_OFF_MAX));
	src = data + off;
	sc->cp_n = n;
	sc->cp_pos = n;
#pragma clang loop unroll(disable)
	for (w = 0; w < PH_CTRL_CAP / 8; w++) {
		if (w * 8 + 8 > *(volatile __u32 *)&sc->cp_n) {
			sc->cp_pos = w * 8;
			break;
		}
		b = src + w * 8;
		if ((void *)(b + 8) > end) {
			sc->cp_pos = w * 8;
			break;
		}
		*(__u64 *)(dst + w * 8) = *(__u64 *)b;
	}
	/* A fresh packet pointer: the one above carries the range the word
	 * loop proved, different for every exit, and so many states. */
	data = (void *)(long)*(volatile __u32 *)&ctx->data;
	asm volatile("%[off] &= %[max]"
		     : [off] "+r"(off)
		     : [max] "i"(PH_XDP_OFF_MAX));
	src = data + off;
#pragma clang loop unroll(disable)
	for (w = 0; w < 8; w++) {
		k = *(volatile __u32 *)&sc->cp_pos + w;
		if (k >= *(volatile __u32 *)&sc->cp_n)
			return *(volatile __u32 *)&sc->cp_n;
		k &= PH_CAP_MASK;
		b = src + k;
		if ((void *)(b + 1) > end)
			return 0;
		dst[k] = *b;
	}
	return 0;
}

/*
 * @len bytes (<= 60, whole 32-bit words) of the frame from @off into @dst,
 * a word at a time, each bounds-checked. Returns 0, or -1 if the frame
 * ends first.
 */
static __always_inline int xdp_grab(struct xdp_md *ctx, __u32 off, __u8 *dst,
				    __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *b;
	__u32 w;

	asm volatile("%[off] &= %[max]"
		     : [off] "+r"(off)
		     : [max] "i"(PH_XDP_OFF_MAX));
#pragma clang loop unroll(disable)
	for (w = 0; w < 15; w++) {
		if (w * 4 >= len)
			break;
		b = data + off + w * 4;
		if ((void *)(b + 4) > end)
			return -1;
		__builtin_memcpy(dst + w * 4, b, 4);
	}
	return 0;
}

/*
 * Is the checksum of the stashed segment (ftp.h, "TCP checksums") one the
 * stack behind will accept? PH_CS_OK / PH_CS_BAD. On an interface whose
 * frames may carry a checksum left to offload (a veth, PH_IFF_CSUM_PARTIAL
 * in ifaces) the pseudo-header sum is accepted too. Global: verified once.
 */
__attribute__((noinline)) int ph_xdp_csum(struct xdp_md *ctx)
{
	__u32 idx = PH_DIR_IN, i, thl, ifi, partial;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	struct ph_iface *ifc;

	if (!sc)
		return PH_CS_BAD;
	thl = sc->in.payload_off - sc->in.l4_off;
	if (thl < 20 || thl > 60)
		return PH_CS_BAD;
	if (ph_key_is_v4(&sc->in.key) &&
	    xdp_grab(ctx, sc->in.l3_off, sc->cs_ip,
		     sc->in.l4_off - sc->in.l3_off))
		return PH_CS_BAD;
	if (xdp_grab(ctx, sc->in.l4_off, sc->cs_th, thl))
		return PH_CS_BAD;
	sc->cs_sum = 0;
	if (sc->in.payload_len > PH_CS_MAX)
		sc->in.unverified = 1;
#pragma clang loop unroll(disable)
	for (i = 0; i < PH_CTRL_CHUNKS && !sc->in.unverified; i++)
		if (ph_ftp_csum_chunk(sc, i, ph_xdp_copy(ctx, i)))
			sc->in.unverified = 1;
	ifi = ctx->ingress_ifindex;
	ifc = bpf_map_lookup_elem(&ifaces, &ifi);
	partial = ifc && (ifc->flags & PH_IFF_CSUM_PARTIAL);
	return ph_ftp_csum_judge(PH_DIR_IN, thl, partial);
}

/*
 * The FTP work for the packet stashed in the scratch (ph_ftp_stash()),
 * up to the records: start the session, start the segment. Returns
 * non-zero if records follow. Global, so verified once.
 */
__attribute__((noinline)) int ph_xdp_ftp(struct xdp_md *ctx, __u32 what)
{
	__u32 idx = PH_DIR_IN, seq, ack;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	struct ph_flow *f;

	if (!sc)
		return 0;
	sc->in.what = what;
	sc->claimed = 0;
	if (xdp_tcp_seq(ctx, sc->in.l4_off, &seq, &ack))
		return 0;
	sc->ack = ack; /* the peer's: the tracker goes by the local stack's */
	if (sc->in.what & PH_FTP_DO_OPEN) {
		f = bpf_map_lookup_elem(&flows, &sc->in.key);
		if (!f)
			return 0;
		f->session = ph_ftp_new_session();
		sc->in.fi.session = f->session;
		sc->in.fi.origin = f->origin;
		sc->in.fi.flags = f->flags;
		sc->in.fi.state = f->state;
		if (ph_ftp_role(sc->in.fi.origin) == PH_ROLE_SERVER) {
			sc->od.client_nxt = seq; /* the client's ACK */
			sc->od.server_nxt = ack;
		} else {
			sc->od.client_nxt = ack; /* the server's SYN-ACK */
			sc->od.server_nxt = seq + 1;
		}
		ph_ftp_open(sc, PH_DIR_IN);
		if (sc->ftps_new)
			f->flags |= PH_FF_FTPS_COUNTED;
	}
	if (sc->in.what & PH_FTP_DO_DATA)
		return ph_ftp_seg_begin(sc, PH_DIR_IN, seq);
	return 0;
}

/* The FTP work for the packet stashed in the scratch (ftp.h). */
static __always_inline void xdp_ftp_run(struct xdp_md *ctx, __u8 what)
{
	PH_FTP_RUN(PH_DIR_IN, ctx, ph_xdp_ftp, ph_xdp_copy, what);
}

/* A packet of a tracked FTP control connection hit flows: PASS_FLOW, or
 * PH_CONTINUE if the entry had idled out. */
static __always_inline __u32 ingress_ctrl_flow(struct xdp_md *ctx,
					       const struct ph_pkt *p,
					       const struct ph_flow_key *k,
					       struct ph_flow *f,
					       struct ph_clock *clk)
{
	__u32 reason;

	PH_FTP_CTRL_FLOW(reason, PH_DIR_IN, ctx, ph_xdp_ftp, ph_xdp_copy,
			 ph_xdp_csum, p, k, f, clk);
	return reason;
}

static __always_inline __u32 ingress_verdict(struct xdp_md *ctx,
					     const struct ph_pkt *p,
					     const struct ph_flow_key *quoted,
					     __u16 *svc)
{
	struct ph_clock clk = {};
	struct ph_flow_key k;
	struct ph_flow *f;
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
		return ingress_syn(ctx, &k, p, &clk, svc);

	ph_flow_key_init(&k, p, PH_DIR_IN);
	f = bpf_map_lookup_elem(&flows, &k);
	if (f && ph_flow_superseded(f, &k, p))
		f = NULL;
	if (f) {
		/* Read first: a RST deletes the entry. */
		__u16 fsvc = f->svc_id;

		/* The flag first: other flows pay this test alone. */
		if (ph_unlikely((f->flags & PH_FF_CTRL_ANY) &&
				ph_cfg.track_ftp)) {
			reason = ingress_ctrl_flow(ctx, p, &k, f, &clk);
			if (reason != PH_CONTINUE) {
				*svc = fsvc;
				return reason;
			}
		} else {
			reason = ph_flow_reason(
				ph_flow_use(f, &k, p, PH_DIR_IN, &clk));
			if (reason != PH_CONTINUE) {
				*svc = fsvc;
				return reason;
			}
		}
	}
	reason = ph_half_open_hit(&k, p, PH_DIR_IN, &clk, 1, svc);
	if (ph_unlikely(reason == PH_CTRL_PROMOTED)) {
		__u8 what = ph_ftp_what_open(p);

		reason = PH_R_PASS_HALF_OPEN;
		if (!ph_ftp_stash(PH_DIR_IN, &k, p, 0)) {
			/* The session starts; bytes the stack drops do not. */
			if ((what & PH_FTP_DO_DATA) &&
			    ph_xdp_csum(ctx) != PH_CS_OK) {
				what &= ~PH_FTP_DO_DATA;
				reason = PH_R_DROP_CTRL_CSUM;
			}
			xdp_ftp_run(ctx, what);
		}
	}
	if (reason != PH_CONTINUE)
		return reason;
	if (p->proto == IPPROTO_TCP && ph_cfg.failsafe_port &&
	    p->dport == bpf_htons(ph_cfg.failsafe_port))
		return PH_R_PASS_FAILSAFE;

	reason = ingress_rule(p, &v, &rflags, svc);
	/*
	 * No table knows the packet. A connection the kernel holds is picked
	 * up whatever the policy (lib/sock.h): TCP always (an admitted
	 * segment too, so the connection is tracked from now on), UDP when
	 * the policy would drop it (an admitted datagram gets its half_open
	 * entry below). A stray ACK or datagram for no connection costs this
	 * one lookup and is judged by the policy; a flood of them cannot
	 * fill any table, since only a real socket makes an entry. The flow
	 * keeps the rule and service of an admitting policy, else none.
	 */
	if (p->proto == IPPROTO_TCP || !ph_admitted(reason)) {
		int adm = ph_admitted(reason);
		__u32 sk = ph_sock_pickup(ctx, &k, p, PH_DIR_IN,
					  adm ? PH_PICKUP_RULE(v, *svc) : 0);

		if (sk != PH_CONTINUE) {
			if (!adm)
				*svc = 0;
			return sk;
		}
	}
	/* Only a connection opener creates state otherwise: TCP without
	 * SYN passes statelessly. */
	if (ph_admitted(reason) && p->proto == IPPROTO_UDP)
		ph_half_open_add(&k, p, PH_FO_INBOUND,
				 ph_rule_flow_flags(rflags), v, *svc, 0, &clk);
	return reason;
}

static __always_inline int record_verdict(struct xdp_md *ctx, __u32 dir,
					  __u32 reason, __u16 svc,
					  const struct ph_pkt *p)
{
	ph_record(dir, ctx->ingress_ifindex, reason, svc,
		  ctx->data_end - ctx->data, p);
	return PH_REASON_IS_DROP(reason) ? XDP_DROP : XDP_PASS;
}

/*
 * libxdp's dispatcher reads this (docs/cli.md, "Sharing the XDP hook"):
 * run early (priority 5; lower runs first, libxdp's default is 50), and
 * go on to the next program after XDP_PASS (admitted by pinhole); a drop
 * ends the chain. Ignored by a plain attach. Keep PH_XDP_RUN_PRIO equal.
 */
struct {
	__uint(priority, 5);
	__uint(XDP_PASS, 1);
} _pinhole_xdp SEC(".xdp_run_config");

SEC("xdp")
int pinhole_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	/* ph_parse_quoted() stores v4-mapped addresses as 32-bit words. */
	struct ph_flow_key quoted __attribute__((aligned(8)));
	const struct ph_pkt *parsed = NULL; /* for the monitor */
	struct ph_pkt pkt;
	__u16 svc = 0;
	__u32 reason;

	reason = ph_parse(data, data_end, data_end - data, &pkt, &quoted);
	if (reason == PH_CONTINUE) {
		reason = ingress_verdict(ctx, &pkt, &quoted, &svc);
		if (pkt.frag == PH_FRAG_FIRST && !PH_REASON_IS_DROP(reason))
			ph_frag_remember(&pkt, reason, ph_now());
		parsed = &pkt;
	}
	return record_verdict(ctx, PH_DIR_IN, reason, svc, parsed);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
