/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket pickup (docs/datapath.md, "Attaching to a live host"): a packet
 * that no table knows, but whose connection the kernel of this device's
 * network namespace already holds, becomes a flow (origin PH_FO_SOCKET,
 * reason pass_socket), whatever the policy says. This is how connections
 * opened before attach keep working, and how a flow lost to LRU eviction,
 * a detach/attach or an upgrade comes back with its next packet.
 *
 * Callers ask only after every cheaper table missed, and never for a bare
 * SYN: a SYN is a new connection and goes through the policy.
 */
#ifndef PH_BPF_SOCK_H
#define PH_BPF_SOCK_H

#include "flow.h"

/*
 * A TCP socket state that is a real connection: its handshake completed in
 * this namespace. Listeners, request sockets (NEW_SYN_RECV: a SYN was
 * answered, the handshake is not done), SYN_SENT/SYN_RECV and CLOSE are
 * not; a packet for them is judged by the policy as before. Returns the
 * flow flags the state implies (which sides have sent their FIN), or -1.
 */
static __always_inline int ph_tcp_sk_fins(__u32 state)
{
	switch (state) {
	case BPF_TCP_ESTABLISHED:
		return 0;
	case BPF_TCP_FIN_WAIT1: /* our FIN is out */
	case BPF_TCP_FIN_WAIT2:
		return PH_FF_FIN_OUT;
	case BPF_TCP_CLOSE_WAIT: /* the peer's FIN came in */
		return PH_FF_FIN_IN;
	case BPF_TCP_CLOSING: /* both */
	case BPF_TCP_LAST_ACK:
	case BPF_TCP_TIME_WAIT:
		return PH_FF_FIN_IN | PH_FF_FIN_OUT;
	}
	return -1;
}

/* The rule index + 1 and the service counter id a picked-up flow records
 * (those of the rule whose policy admits the packet; 0, 0: none), packed
 * into one argument: a BPF function takes five at most. */
#define PH_PICKUP_RULE(rule, svc) ((__u32)(__u16)(rule) | (__u32)(svc) << 16)

/*
 * The pickup for the packet @p of flow key @k seen in @dir, @rule_svc
 * (PH_PICKUP_RULE()) recorded in the new flow. Returns
 * PH_R_PASS_SOCKET (a flow was made, or for a RST: the kernel holds the
 * connection and validates the RST itself; no flow is made from a RST), or
 * PH_CONTINUE: no such connection, judge by the policy.
 *
 * One socket lookup, in the device's namespace (BPF_F_CURRENT_NETNS), with
 * the tuple as the kernel sees an arriving packet: source = the peer. Not
 * inlined: the tuple, the socket and the new entry live in this frame, not
 * in the program's.
 *
 * TCP: bpf_skc_lookup_tcp() returns the established (or TIME_WAIT, or
 * request) socket of this exact 4-tuple, else a listener of the port; the
 * state tells them apart (ph_tcp_sk_fins()).
 * UDP: bpf_sk_lookup_udp() returns the best-scoring socket of the port,
 * which may be an unconnected one bound to the port (a server) that any
 * peer may reach. Only a connected socket counts (state ESTABLISHED,
 * which connect() sets) whose remote address and port are exactly this
 * packet's peer: an unconnected socket is no connection, and a socket
 * connected with port 0 would take any port of that address.
 */
static __attribute__((noinline)) __u32 ph_sock_pickup(void *ctx,
						       const struct ph_flow_key *k,
						       const struct ph_pkt *p,
						       int dir, __u32 rule_svc)
{
	struct bpf_sock_tuple t;
	struct ph_flow f;
	struct bpf_sock *sk;
	__u32 tlen, state;
	int fins = 0, exact;
	__u64 now;

	__builtin_memset(&t, 0, sizeof(t));
	if (p->family == 4) {
		__builtin_memcpy(&t.ipv4.saddr, k->remote + 12, 4);
		__builtin_memcpy(&t.ipv4.daddr, k->local + 12, 4);
		t.ipv4.sport = k->rport;
		t.ipv4.dport = k->lport;
		tlen = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, k->remote, 16);
		__builtin_memcpy(t.ipv6.daddr, k->local, 16);
		t.ipv6.sport = k->rport;
		t.ipv6.dport = k->lport;
		tlen = sizeof(t.ipv6);
	}

	if (p->proto == IPPROTO_TCP) {
		sk = (struct bpf_sock *)bpf_skc_lookup_tcp(
			ctx, &t, tlen, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return PH_CONTINUE;
		state = sk->state;
		bpf_sk_release(sk);
		fins = ph_tcp_sk_fins(state);
		if (fins < 0)
			return PH_CONTINUE;
		if (p->tcp_flags & PH_TCP_RST)
			return PH_R_PASS_SOCKET;
		/* The socket's state predates this packet: a FIN it
		 * carries counts too. */
		if (p->tcp_flags & PH_TCP_FIN)
			fins |= dir == PH_DIR_IN ? PH_FF_FIN_IN : PH_FF_FIN_OUT;
	} else {
		sk = bpf_sk_lookup_udp(ctx, &t, tlen, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return PH_CONTINUE;
		exact = sk->state == BPF_TCP_ESTABLISHED &&
			sk->dst_port == k->rport;
		if (exact && p->family == 4) {
			exact = sk->dst_ip4 == t.ipv4.saddr;
		} else if (exact) {
			exact = sk->dst_ip6[0] == t.ipv6.saddr[0] &&
				sk->dst_ip6[1] == t.ipv6.saddr[1] &&
				sk->dst_ip6[2] == t.ipv6.saddr[2] &&
				sk->dst_ip6[3] == t.ipv6.saddr[3];
		}
		bpf_sk_release(sk);
		if (!exact)
			return PH_CONTINUE;
	}

	now = ph_now();
	__builtin_memset(&f, 0, sizeof(f));
	f.created_ns = now;
	f.last_seen_ns = now;
	f.checked_jiffies = bpf_jiffies64();
	f.origin = PH_FO_SOCKET;
	f.rule = rule_svc & 0xffff;
	f.svc_id = rule_svc >> 16;
	f.flags = fins;
	f.state = (fins & (PH_FF_FIN_IN | PH_FF_FIN_OUT)) ==
				  (PH_FF_FIN_IN | PH_FF_FIN_OUT) ?
			  PH_FS_CLOSING :
			  PH_FS_ESTABLISHED;
	if (p->proto == IPPROTO_TCP)
		ph_seq_track(&f, p, dir);
	/* Another CPU may have made the entry meanwhile: keep it. */
	bpf_map_update_elem(&flows, k, &f, BPF_NOEXIST);
	return PH_R_PASS_SOCKET;
}

#endif /* PH_BPF_SOCK_H */
