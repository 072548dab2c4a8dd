// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Datapath tests: both programs run on crafted packets through
 * BPF_PROG_TEST_RUN, table-driven. Each step names a packet, the direction
 * (XDP ingress or TC egress), the expected verdict and reason (checked as
 * a +1 delta of exactly that per-CPU counter, and no other), and the
 * expected effect on the packet's own flow key. Policy is written straight
 * into the maps by small fixtures; time is faked through the programs'
 * ph_clock_offset_ns.
 *
 * Needs root (exit 77 otherwise). Maps are pinned under a private
 * /sys/fs/bpf/ph-dp-test-<pid>, removed at exit.
 */
#include "bpf/fixture.h"
#include "maps_io.h"

/* Addresses: this host, an allowed peer, an excluded peer inside the
 * allowed prefix, and a peer outside it. */
#define L4 "192.0.2.1"
#define R4 "198.51.100.7"
#define X4 "198.51.100.66"
#define O4 "203.0.113.9"
#define L6 "2001:db8::1"
#define R6 "2001:db8:1::7"
#define X6 "2001:db8:1::66"
#define O6 "2001:db8:ff::9"

#define FAILSAFE_PORT 2222

/* I/O: inbound (remote -> local) or outbound. */
#define TI4(sp, dp, fl, ...) TCP4(R4, L4, sp, dp, fl, __VA_ARGS__)
#define TO4(sp, dp, fl, ...) TCP4(L4, R4, sp, dp, fl, __VA_ARGS__)
#define TI6(sp, dp, fl, ...) TCP6(R6, L6, sp, dp, fl, __VA_ARGS__)
#define TO6(sp, dp, fl, ...) TCP6(L6, R6, sp, dp, fl, __VA_ARGS__)

/* Expected effects on the packet's own flow key (host-oriented). */
enum {
	E_HALF = 1 << 0,    /* in half_open */
	E_NOHALF = 1 << 1,  /* not in half_open */
	E_FLOW = 1 << 2,    /* in flows, ESTABLISHED */
	E_CLOSING = 1 << 3, /* in flows, CLOSING */
	E_NOFLOW = 1 << 4,  /* not in flows */
	E_FRAG = 1 << 5,    /* frags holds its datagram */
	E_NOSTATE = 1 << 6, /* flows and half_open sizes unchanged */
	E_NOEXPECT = 1 << 7, /* expect is empty afterwards */
};

enum { V_PASS = 1, V_DROP = 2 };
#define PASS(r) V_PASS, PH_R_PASS_##r
#define DROP(r) V_DROP, PH_R_DROP_##r

struct fx;
struct step {
	const char *name;
	int dir;
	struct pkt_spec pkt;
	int verdict;
	int reason;
	unsigned int effect;
	int repeat;        /* send this many, sport + i for each */
	__u64 advance_s;   /* move the clock forward first */
	void (*before)(struct fx *);
	bool (*check)(struct fx *, const struct step *);
};


enum {
	R_HTTP, R_FTP, R_SSH, R_TELNET, R_QUIC, R_FTPDATA_IN, R_SMTP_OUT,
	R_PG_OUT, R_FTPS_RANGE, R_FTPDATA_OUT, R_DNS_OUT, R_GUARD_OUT,
	R_GUARD_IN, R_MAIL_OUT,
};

/*
 * The base policy (slot 0): inbound default drop, outbound default allow,
 * echo allowed both ways.
 *   in  tcp 80 any; 21 any (FTP tracked); 22 from set 1; 23 deny;
 *       50000-50002 any (FTPS range); sport 20 any; udp 443 any
 *   out tcp 25 deny; 5432 to set 2; sport 20 any; udp 53 any
 *   set 1: 198.51.100.0/24 except .66, 2001:db8:1::/48 except ::66
 *   set 2: 198.51.100.0/24
 */
static void policy_base(struct fx *f)
{
	fx_reset(f);
	set_meta(f, 0, PH_ACT_DROP, PH_ACT_ALLOW, PH_ACT_ALLOW, PH_ACT_ALLOW);
	add_rule(f, 0, R_HTTP, PH_L4_TCP, PH_PT_IN_DPORT, 80, 80,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
	add_rule(f, 0, R_FTP, PH_L4_TCP, PH_PT_IN_DPORT, 21, 21, PH_ACT_ALLOW,
		 PH_RF_PEER_ANY | PH_RF_FTP_TRACK, 0);
	add_rule(f, 0, R_SSH, PH_L4_TCP, PH_PT_IN_DPORT, 22, 22, PH_ACT_ALLOW,
		 0, 1);
	add_rule(f, 0, R_TELNET, PH_L4_TCP, PH_PT_IN_DPORT, 23, 23,
		 PH_ACT_DROP, PH_RF_PEER_ANY, 0);
	add_rule(f, 0, R_QUIC, PH_L4_UDP, PH_PT_IN_DPORT, 443, 443,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
	add_rule(f, 0, R_FTPDATA_IN, PH_L4_TCP, PH_PT_IN_SPORT, 20, 20,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
	add_rule(f, 0, R_SMTP_OUT, PH_L4_TCP, PH_PT_OUT_DPORT, 25, 25,
		 PH_ACT_DROP, PH_RF_PEER_ANY, 0);
	add_rule(f, 0, R_PG_OUT, PH_L4_TCP, PH_PT_OUT_DPORT, 5432, 5432,
		 PH_ACT_ALLOW, 0, 2);
	add_rule(f, 0, R_FTPS_RANGE, PH_L4_TCP, PH_PT_IN_DPORT, 50000, 50002,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTPS_RANGE, 0);
	add_rule(f, 0, R_FTPDATA_OUT, PH_L4_TCP, PH_PT_OUT_SPORT, 20, 20,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
	add_rule(f, 0, R_DNS_OUT, PH_L4_UDP, PH_PT_OUT_DPORT, 53, 53,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
	add_peer(f, 0, 1, "198.51.100.0/24", PH_ACT_ALLOW);
	add_peer(f, 0, 1, "198.51.100.66/32", PH_ACT_DROP);
	add_peer(f, 0, 1, "2001:db8:1::/48", PH_ACT_ALLOW);
	add_peer(f, 0, 1, "2001:db8:1::66/128", PH_ACT_DROP);
	add_peer(f, 0, 2, "198.51.100.0/24", PH_ACT_ALLOW);
}


static bool check_effect(struct fx *f, const struct step *s,
			 const struct pkt_spec *p, int nflows, int nhalf)
{
	struct ph_flow_key k;
	struct ph_flow v;
	struct ph_frag_key fk = {};
	struct ph_frag fv;
	bool ok = true;
	unsigned int e = s->effect;
	int in_half, in_flows;

	if (!p->src)
		return true; /* not IP: no flow key */
	key_of(p, s->dir, &k);
	in_half = !bpf_map_lookup_elem(f->half_open, &k, &v);
	in_flows = !bpf_map_lookup_elem(f->flows, &k, &v);
	if (e & E_HALF)
		ok &= ASSERT(in_half, s->name, "not in half_open");
	if (e & E_NOHALF)
		ok &= ASSERT(!in_half, s->name, "still in half_open");
	if (e & (E_FLOW | E_CLOSING)) {
		ok &= ASSERT(in_flows, s->name, "not in flows");
		if (in_flows)
			ok &= ASSERT(v.state == ((e & E_FLOW) ?
							 PH_FS_ESTABLISHED :
							 PH_FS_CLOSING),
				     s->name, "flow state %u", v.state);
	}
	if (e & E_NOFLOW)
		ok &= ASSERT(!in_flows, s->name, "still in flows");
	if (e & E_NOSTATE) {
		ok &= ASSERT(map_count(f->flows) == nflows, s->name,
			     "flows grew to %d", map_count(f->flows));
		ok &= ASSERT(map_count(f->half_open) == nhalf, s->name,
			     "half_open grew to %d", map_count(f->half_open));
	}
	if (e & E_NOEXPECT)
		ok &= ASSERT(map_count(f->expect) == 0, s->name,
			     "expect not empty");
	if (e & E_FRAG) {
		addr16(p->family, p->src, fk.src);
		addr16(p->family, p->dst, fk.dst);
		fk.id = p->frag_id;
		fk.proto = p->proto;
		ok &= ASSERT(!bpf_map_lookup_elem(f->frags, &fk, &fv), s->name,
			     "first fragment not recorded");
	}
	return ok;
}

static bool run_one(struct fx *f, const struct step *s,
		    const struct pkt_spec *p)
{
	struct ph_counter before[PH_COUNTER_ENTRIES], after[PH_COUNTER_ENTRIES];
	__u8 buf[PKT_MAX];
	int len = pkt_build(p, buf), nflows = 0, nhalf = 0, i;
	__u32 ret, want_ret, idx = PH_COUNTER_IDX(s->dir, s->reason);
	bool ok = true;

	if (s->effect & E_NOSTATE) {
		nflows = map_count(f->flows);
		nhalf = map_count(f->half_open);
	}
	if (!ASSERT(read_counters(f, before) == 0, s->name,
		    "counters not read") ||
	    !ASSERT(run_prog(f, s->dir, buf, len, &ret) == 0, s->name,
		    "test run failed: %s", strerror(errno)) ||
	    !ASSERT(read_counters(f, after) == 0, s->name,
		    "counters not read"))
		return false;

	if (s->dir == IN)
		want_ret = s->verdict == V_PASS ? XDP_PASS : XDP_DROP;
	else
		want_ret = s->verdict == V_PASS ? TC_ACT_OK : TC_ACT_SHOT;
	ok &= ASSERT(ret == want_ret, s->name, "verdict %u, want %u", ret,
		     want_ret);
	for (i = 0; i < PH_COUNTER_ENTRIES; i++) {
		__u64 d = after[i].packets - before[i].packets;

		if ((__u32)i == idx) {
			ok &= ASSERT(d == 1, s->name,
				     "counter %s +%llu, want +1", reason_names[s->reason],
				     (unsigned long long)d);
			ok &= ASSERT(after[i].bytes - before[i].bytes ==
					     (__u64)len,
				     s->name, "bytes counted %llu, want %d",
				     (unsigned long long)(after[i].bytes -
							  before[i].bytes),
				     len);
		} else if (d) {
			ok &= ASSERT(false, s->name, "counter %s/%s moved (+%llu)",
				     i >= PH_R_MAX ? "out" : "in",
				     reason_names[i % PH_R_MAX],
				     (unsigned long long)d);
		}
	}
	f->seen[s->reason]++;
	ok &= check_effect(f, s, p, nflows, nhalf);
	if (s->check)
		ok &= ASSERT(s->check(f, s), s->name, "extra check failed");
	return ok;
}

static void run_steps(struct fx *f, const char *name, void (*setup)(struct fx *),
		      const struct step *steps, int n)
{
	int i, r;

	group = name;
	if (setup)
		setup(f);
	for (i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		int reps = s->repeat ? s->repeat : 1;

		if (s->advance_s)
			fx_advance(f, s->advance_s * NSEC);
		if (s->before)
			s->before(f);
		for (r = 0; r < reps; r++) {
			struct pkt_spec p = s->pkt;

			p.sport += r;
			if (!run_one(f, s, &p))
				break;
		}
	}
}

#define RUN(f, setup, steps)                                                  \
	run_steps(f, #steps, setup, steps, sizeof(steps) / sizeof(steps[0]))

/* ---- parsing ------------------------------------------------------------ */

static const struct step parse_steps[] = {
	{ "arp in", IN, { .ethertype = 0x0806 }, PASS(NON_IP) },
	{ "arp out", OUT, { .ethertype = 0x0806 }, PASS(NON_IP) },
	{ "vlan syn", IN, TI4(40000, 80, SYN, .vlans = 1), PASS(POLICY), E_HALF },
	{ "qinq syn", IN, TI4(40001, 80, SYN, .vlans = 2), PASS(POLICY), E_HALF },
	{ "qinq syn v6", IN, TI6(40001, 80, SYN, .vlans = 2), PASS(POLICY), E_HALF },
	{ "qinq out", OUT, TO4(40002, 443, SYN, .vlans = 2), PASS(DEFAULT), E_HALF },
	{ "three vlan tags", IN, TI4(40003, 80, SYN, .vlans = 3), DROP(VLAN_DEPTH), E_NOSTATE },
	{ "three vlan tags out", OUT, TO4(40003, 80, SYN, .vlans = 3), DROP(VLAN_DEPTH) },
	{ "truncated vlan tag", IN, TI4(1, 80, SYN, .vlans = 1, .trunc = 16), DROP(L2_MALFORMED) },
	{ "truncated 2nd vlan tag", OUT, TO4(1, 80, SYN, .vlans = 2, .trunc = 20), DROP(L2_MALFORMED) },
	{ "ipv4 options", IN, TI4(40004, 80, SYN, .ip_opts = 12), PASS(POLICY), E_HALF },
	{ "ipv4 max options", IN, TI4(40005, 80, SYN, .ip_opts = 40), PASS(POLICY), E_HALF },
	{ "ipv4 version 5", IN, TI4(1, 80, SYN, .version = 5), DROP(L3_MALFORMED) },
	{ "ipv4 ihl 4", IN, TI4(1, 80, SYN, .ihl = 4), DROP(L3_MALFORMED) },
	{ "ipv4 ihl past frame", IN, TI4(1, 80, SYN, .ihl = 15, .trunc = 14 + 40), DROP(L3_MALFORMED) },
	{ "ipv4 truncated header", IN, TI4(1, 80, SYN, .trunc = 14 + 12), DROP(L3_MALFORMED) },
	{ "ipv4 tot_len past frame", IN, TI4(1, 80, SYN, .len_extra = 100), DROP(L3_MALFORMED) },
	{ "ipv4 tot_len below ihl", IN, TI4(1, 80, SYN, .len_extra = -30), DROP(L3_MALFORMED) },
	{ "ipv4 tot_len short of tcp", IN, TI4(1, 80, SYN, .len_extra = -4), DROP(L4_MALFORMED) },
	{ "ipv4 trailing padding ok", IN, TI4(40006, 80, SYN, .len_extra = -6, .payload = 6), PASS(POLICY) },
	{ "ipv6 truncated header", IN, TI6(1, 80, SYN, .trunc = 14 + 20), DROP(L3_MALFORMED) },
	{ "ipv6 version 4", IN, TI6(1, 80, SYN, .version = 4), DROP(L3_MALFORMED) },
	{ "ipv6 payload past frame", IN, TI6(1, 80, SYN, .len_extra = 8), DROP(L3_MALFORMED) },
	{ "ipv6 hop-by-hop + dest opts", IN,
	  TI6(40007, 80, SYN, .ext = { IPPROTO_HOPOPTS, IPPROTO_DSTOPTS }, .next = 2),
	  PASS(POLICY), E_HALF },
	{ "ipv6 long hop-by-hop", IN,
	  TI6(40008, 80, SYN, .ext = { IPPROTO_HOPOPTS }, .next = 1, .ext_units = 30),
	  PASS(POLICY), E_HALF },
	{ "ipv6 routing + ah", IN,
	  TI6(40009, 80, SYN, .ext = { IPPROTO_ROUTING, IPPROTO_AH }, .next = 2),
	  PASS(POLICY), E_HALF },
	{ "ipv6 six ext headers", IN,
	  TI6(40010, 80, SYN, .ext = { IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING,
			      IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS }, .next = 6),
	  PASS(POLICY), E_HALF },
	{ "ipv6 seven ext headers", IN,
	  TI6(1, 80, SYN, .ext = { IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING,
			  IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS },
	      .next = 7),
	  DROP(IPV6_EXT), E_NOSTATE },
	{ "ipv6 seven ext headers out", OUT,
	  TO6(1, 80, SYN, .ext = { IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING,
			  IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS, IPPROTO_DSTOPTS },
	      .next = 7),
	  DROP(IPV6_EXT) },
	{ "ipv6 ext header truncated", IN,
	  TI6(1, 80, SYN, .ext = { IPPROTO_HOPOPTS }, .next = 1, .trunc = 14 + 40 + 4,
	      .len_extra = -24),
	  DROP(IPV6_EXT) },
	{ "ipv6 ext header past datagram", IN,
	  TI6(1, 80, SYN, .ext = { IPPROTO_HOPOPTS }, .next = 1, .ext_units = 2,
	      .len_extra = -24),
	  DROP(IPV6_EXT) },
	{ "tcp truncated v4", IN, TI4(1, 80, SYN, .l4_cut = 10), DROP(L4_MALFORMED) },
	{ "tcp truncated v6", IN, TI6(1, 80, SYN, .l4_cut = 19), DROP(L4_MALFORMED) },
	{ "tcp truncated out", OUT, TO4(1, 80, SYN, .l4_cut = 10), DROP(L4_MALFORMED) },
	{ "frame cut inside tcp", IN, TI4(1, 80, SYN, .trunc = 14 + 20 + 10), DROP(L3_MALFORMED) },
	{ "tcp doff 4", IN, TI4(1, 80, SYN, .tcp_doff = 4), DROP(L4_MALFORMED) },
	{ "tcp doff past datagram", IN, TI4(1, 80, SYN, .tcp_doff = 15), DROP(L4_MALFORMED) },
	{ "tcp with options", IN, TI4(40011, 80, SYN, .tcp_opts = 20), PASS(POLICY), E_HALF },
	{ "udp truncated", IN, UDP4(R4, L4, 1, 443, .l4_cut = 6), DROP(L4_MALFORMED) },
	{ "udp truncated v6", IN, UDP6(R6, L6, 1, 443, .l4_cut = 7), DROP(L4_MALFORMED) },
	{ "icmp truncated", IN, ICMP4(R4, L4, 8, 0, 1, .l4_cut = 4), DROP(L4_MALFORMED) },
	{ "icmpv6 truncated", IN, ICMP6(R6, L6, 128, 0, 1, .l4_cut = 7), DROP(L4_MALFORMED) },
	{ "syn+fin", IN, TI4(1, 80, SYN | FIN), DROP(TCP_FLAGS), E_NOSTATE },
	{ "syn+rst", IN, TI4(1, 80, SYN | RST), DROP(TCP_FLAGS) },
	{ "null scan", IN, TI4(1, 80, 0), DROP(TCP_FLAGS) },
	{ "ece+cwr only", IN, TI4(1, 80, 0xc0), DROP(TCP_FLAGS) },
	{ "fin without ack", IN, TI4(1, 80, FIN), DROP(TCP_FLAGS) },
	{ "psh without ack", IN, TI4(1, 80, PSH), DROP(TCP_FLAGS) },
	{ "xmas", IN, TI4(1, 80, FIN | PSH | URG), DROP(TCP_FLAGS) },
	{ "xmas v6", IN, TI6(1, 80, FIN | PSH | URG), DROP(TCP_FLAGS) },
	{ "syn+fin out", OUT, TO4(1, 80, SYN | FIN), DROP(TCP_FLAGS) },
	{ "syn+ecn ok", IN, TI4(40012, 80, SYN | 0xc0), PASS(POLICY), E_HALF },
	{ "gre in: default drop", IN, { .family = 4, .src = R4, .dst = L4, .proto = 47, .payload = 8 },
	  DROP(POLICY), E_NOSTATE },
	{ "gre out: default allow", OUT, { .family = 4, .src = L4, .dst = R4, .proto = 47, .payload = 8 },
	  PASS(DEFAULT), E_NOSTATE },
	{ "sctp v6 in", IN, { .family = 6, .src = R6, .dst = L6, .proto = 132, .payload = 12 },
	  DROP(POLICY), E_NOSTATE },
	{ "icmp in ipv6 is other l4", IN, { .family = 6, .src = R6, .dst = L6, .proto = IPPROTO_ICMP, .payload = 8 },
	  DROP(POLICY) },
};

/* ---- connection state --------------------------------------------------- */

static bool half_is_inbound_ftp(struct fx *f, const struct step *s)
{
	struct ph_flow_key k;
	struct ph_flow v;

	key_of(&s->pkt, s->dir, &k);
	return !bpf_map_lookup_elem(f->half_open, &k, &v) &&
	       v.origin == PH_FO_INBOUND && (v.flags & PH_FF_FTP_CTRL) &&
	       v.rule == R_FTP + 1 && !(v.flags & PH_FF_INIT_OUT);
}

static bool half_is_outbound(struct fx *f, const struct step *s)
{
	struct ph_flow_key k;
	struct ph_flow v;

	key_of(&s->pkt, s->dir, &k);
	return !bpf_map_lookup_elem(f->half_open, &k, &v) &&
	       v.origin == PH_FO_OUTBOUND && (v.flags & PH_FF_INIT_OUT);
}

static const struct step tcp_in_steps[] = {
	{ "syn in", IN, TI4(41000, 80, SYN), PASS(POLICY), E_HALF | E_NOFLOW },
	{ "syn retransmit", IN, TI4(41000, 80, SYN), PASS(HALF_OPEN), E_HALF | E_NOFLOW },
	{ "syn-ack out", OUT, TO4(80, 41000, SYN | ACK), PASS(HALF_OPEN), E_HALF | E_NOFLOW },
	{ "ack in promotes", IN, TI4(41000, 80, ACK), PASS(HALF_OPEN), E_FLOW | E_NOHALF },
	{ "data in: fast path", IN, TI4(41000, 80, ACK | PSH, .payload = 100), PASS(FLOW), E_FLOW | E_NOSTATE },
	{ "data out", OUT, TO4(80, 41000, ACK | PSH, .payload = 1000), PASS(FLOW), E_FLOW },
	{ "fin in", IN, TI4(41000, 80, FIN | ACK), PASS(FLOW), E_FLOW },
	{ "fin out: closing", OUT, TO4(80, 41000, FIN | ACK), PASS(FLOW), E_CLOSING },
	{ "last ack in", IN, TI4(41000, 80, ACK), PASS(FLOW), E_CLOSING },
	{ "closing idles out", IN, TI4(41000, 80, ACK), PASS(POLICY), E_NOFLOW | E_NOHALF,
	  .advance_s = PH_TCP_CLOSING_TIMEOUT_S + 1 },
	/* RST from either side ends a flow */
	{ "syn 2", IN, TI4(41001, 80, SYN), PASS(POLICY), E_HALF },
	{ "ack 2", IN, TI4(41001, 80, ACK), PASS(HALF_OPEN), E_FLOW },
	{ "blind rst in: dropped, flow stays", IN,
	  TI4(41001, 80, RST | ACK, .set_seq = 1, .seq = 1000 + 0x80000000u, .ack = 2000),
	  DROP(RST_WINDOW), E_FLOW },
	{ "rst in deletes", IN, TI4(41001, 80, RST | ACK), PASS(FLOW), E_NOFLOW },
	{ "syn 3", IN, TI4(41002, 80, SYN), PASS(POLICY), E_HALF },
	{ "ack 3", IN, TI4(41002, 80, ACK), PASS(HALF_OPEN), E_FLOW },
	{ "rst out deletes", OUT, TO4(80, 41002, RST), PASS(FLOW), E_NOFLOW },
	{ "rst out ends half-open", OUT, TO4(80, 41003, RST | ACK), PASS(POLICY), E_NOSTATE },
	{ "syn 4", IN, TI4(41004, 80, SYN), PASS(POLICY), E_HALF },
	{ "our rst for half-open", OUT, TO4(80, 41004, RST | ACK), PASS(HALF_OPEN), E_NOHALF | E_NOFLOW },
	/* idle expiry of an established flow */
	{ "syn 5", IN, TI4(41005, 80, SYN), PASS(POLICY), E_HALF },
	{ "ack 5", IN, TI4(41005, 80, ACK), PASS(HALF_OPEN), E_FLOW },
	{ "still live after an hour", IN, TI4(41005, 80, ACK), PASS(FLOW), E_FLOW, .advance_s = 3600 },
	{ "idle past tcp timeout", IN, TI4(41005, 80, ACK), PASS(POLICY), E_NOFLOW,
	  .advance_s = PH_TCP_EST_TIMEOUT_S + 1 },
	/* half-open expiry */
	{ "syn 6", IN, TI4(41006, 80, SYN), PASS(POLICY), E_HALF },
	{ "late ack: half-open expired", IN, TI4(41006, 80, ACK), PASS(POLICY), E_NOHALF | E_NOFLOW,
	  .advance_s = PH_HALF_OPEN_TIMEOUT_S + 1 },
	/* v6 */
	{ "v6 syn", IN, TI6(41007, 80, SYN), PASS(POLICY), E_HALF },
	{ "v6 syn-ack", OUT, TO6(80, 41007, SYN | ACK), PASS(HALF_OPEN), E_HALF },
	{ "v6 ack", IN, TI6(41007, 80, ACK), PASS(HALF_OPEN), E_FLOW | E_NOHALF },
	{ "v6 data", IN, TI6(41007, 80, ACK, .payload = 10), PASS(FLOW), E_FLOW },
	{ "ftp control syn", IN, TI4(41008, 21, SYN), PASS(POLICY), E_HALF,
	  .check = half_is_inbound_ftp },
	/* a bare SYN is judged as a new connection, even on a known tuple */
	{ "syn on an established tuple", IN, TI6(41007, 80, SYN), PASS(POLICY), E_HALF | E_FLOW },
	/* a flood of ACKs to an open port passes but creates nothing */
	{ "ack flood", IN, TI4(30000, 80, ACK), PASS(POLICY), E_NOSTATE, .repeat = 200 },
};

static const struct step tcp_out_steps[] = {
	{ "syn out", OUT, TO4(42000, 443, SYN), PASS(DEFAULT), E_HALF, .check = half_is_outbound },
	{ "syn out retransmit", OUT, TO4(42000, 443, SYN), PASS(HALF_OPEN), E_HALF },
	/* found through the syn_watch of local port 42000, raised by egress */
	{ "simultaneous open: syn in", IN, TI4(443, 42000, SYN), PASS(HALF_OPEN), E_HALF },
	{ "stray ack in before syn-ack", IN, TI4(443, 42000, ACK), PASS(HALF_OPEN), E_HALF },
	{ "syn-ack in promotes", IN, TI4(443, 42000, SYN | ACK), PASS(HALF_OPEN), E_FLOW | E_NOHALF },
	{ "ack out", OUT, TO4(42000, 443, ACK), PASS(FLOW), E_FLOW },
	{ "data in", IN, TI4(443, 42000, ACK | PSH, .payload = 500), PASS(FLOW), E_FLOW },
	{ "bare syn on its tuple: not a reply", IN, TI4(443, 42000, SYN), DROP(POLICY), E_FLOW | E_NOHALF },
	{ "other port in", IN, TI4(443, 42001, ACK), DROP(POLICY), E_NOSTATE },
	{ "syn-ack without syn", IN, TI4(443, 42002, SYN | ACK), DROP(POLICY), E_NOSTATE },
	{ "idle expiry", IN, TI4(443, 42000, ACK), DROP(POLICY), E_NOFLOW,
	  .advance_s = PH_TCP_EST_TIMEOUT_S + 1 },
	{ "v6 syn out", OUT, TO6(42003, 443, SYN), PASS(DEFAULT), E_HALF },
	{ "v6 syn-ack in", IN, TI6(443, 42003, SYN | ACK), PASS(HALF_OPEN), E_FLOW },
	{ "smtp out denied", OUT, TO4(42004, 25, SYN), DROP(DENY_RULE), E_NOSTATE },
	{ "pg out to set", OUT, TO4(42005, 5432, SYN), PASS(POLICY), E_HALF },
	{ "pg out outside set", OUT, TCP4(L4, O4, 42006, 5432, SYN), DROP(PEER), E_NOSTATE },
	{ "active ftp data out from 20", OUT, TO4(20, 42007, SYN), PASS(POLICY), E_HALF },
	{ "active ftp data in from 20", IN, TI4(20, 42008, SYN), PASS(POLICY), E_HALF },
};

static void default_out_drop(struct fx *f)
{
	set_meta(f, 0, PH_ACT_DROP, PH_ACT_DROP, PH_ACT_ALLOW, PH_ACT_ALLOW);
}

static void default_in_allow(struct fx *f)
{
	set_meta(f, 0, PH_ACT_ALLOW, PH_ACT_DROP, PH_ACT_ALLOW, PH_ACT_ALLOW);
}

static const struct step out_drop_steps[] = {
	{ "syn out default drop", OUT, TO4(43000, 443, SYN), DROP(POLICY), E_NOSTATE,
	  .before = default_out_drop },
	{ "stateless reply of port 80", OUT, TO4(80, 43001, ACK | PSH), PASS(POLICY), E_NOSTATE },
	{ "stateless reply v6", OUT, TO6(80, 43001, ACK), PASS(POLICY), E_NOSTATE },
	{ "reply from ssh to set", OUT, TO4(22, 43002, ACK), PASS(POLICY), E_NOSTATE },
	{ "reply from ssh outside set", OUT, TCP4(L4, O4, 22, 43002, ACK), DROP(POLICY), E_NOSTATE },
	{ "reply from denied port", OUT, TO4(23, 43003, ACK), DROP(POLICY), E_NOSTATE },
	{ "syn from port 80 is not a reply", OUT, TO4(80, 43004, SYN), DROP(POLICY), E_NOSTATE },
	{ "udp out default drop", OUT, UDP4(L4, R4, 43005, 123), DROP(POLICY), E_NOSTATE },
	{ "dns out by rule", OUT, UDP4(L4, R4, 43006, 53), PASS(POLICY), E_HALF },
	{ "failsafe reply out", OUT, TO4(FAILSAFE_PORT, 43007, ACK), PASS(FAILSAFE), E_NOSTATE },
	{ "failsafe syn in", IN, TI4(43007, FAILSAFE_PORT, SYN), PASS(FAILSAFE), E_NOSTATE },
	{ "failsafe ack in", IN, TI4(43007, FAILSAFE_PORT, ACK), PASS(FAILSAFE), E_NOSTATE },
	{ "failsafe is tcp only", IN, UDP4(R4, L4, 43007, FAILSAFE_PORT), DROP(POLICY), E_NOSTATE },
	{ "default in allow: syn", IN, TI4(43008, 8081, SYN), PASS(DEFAULT), E_HALF,
	  .before = default_in_allow },
	{ "default in allow: udp", IN, UDP4(R4, L4, 43009, 9999), PASS(DEFAULT), E_HALF },
	{ "default in allow: deny rule wins", IN, TI4(43010, 23, SYN), DROP(DENY_RULE), E_NOSTATE },
	{ "default in allow: udp reply out", OUT, UDP4(L4, R4, 9999, 43009), PASS(HALF_OPEN), E_FLOW | E_NOHALF },
};

/* ---- active-data guards (PH_RF_ACTIVE_GUARD) ---------------------------- */

/* The base policy plus the guards the compiler makes for a tracked server
 * (out, from port 2020) and a tracked client (in, from port 2021), and an
 * outbound service to 2525 a bounce could aim at. */
static void policy_guards(struct fx *f)
{
	policy_base(f);
	add_rule(f, 0, R_GUARD_OUT, PH_L4_TCP, PH_PT_OUT_SPORT, 2020, 2020,
		 PH_ACT_DROP, PH_RF_PEER_ANY | PH_RF_ACTIVE_GUARD, 0);
	add_rule(f, 0, R_GUARD_IN, PH_L4_TCP, PH_PT_IN_SPORT, 2021, 2021,
		 PH_ACT_DROP, PH_RF_PEER_ANY | PH_RF_ACTIVE_GUARD, 0);
	add_rule(f, 0, R_MAIL_OUT, PH_L4_TCP, PH_PT_OUT_DPORT, 2525, 2525,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
}

/* Both defaults allow, and R4 holds an FTPS control session with L4. */
static void ftps_session_r4(struct fx *f)
{
	struct ph_ftps_peer_key k = {};
	struct ph_ftps_peer v = { .refs = 1 };

	set_meta(f, 0, PH_ACT_ALLOW, PH_ACT_ALLOW, PH_ACT_ALLOW, PH_ACT_ALLOW);
	v4mapped(R4, k.remote);
	v4mapped(L4, k.local);
	bpf_map_update_elem(f->ftps_peers, &k, &v, BPF_ANY);
}

static const struct step guard_steps[] = {
	{ "guard out: bounce under default allow", OUT, TO4(2020, 42100, SYN), DROP(FTP_ACTIVE), E_NOSTATE },
	{ "guard out: before an allowing dport rule", OUT, TO4(2020, 2525, SYN), DROP(FTP_ACTIVE), E_NOSTATE },
	{ "guard out: other source ports untouched", OUT, TO4(42101, 2525, SYN), PASS(POLICY), E_HALF },
	{ "guard out: v6", OUT, TO6(2020, 42102, SYN), DROP(FTP_ACTIVE), E_NOSTATE },
	{ "guard in: from port 2021 under default allow", IN, TI4(2021, 42103, SYN), DROP(FTP_ACTIVE), E_NOSTATE,
	  .before = default_in_allow },
	{ "guard in: a dport rule still decides", IN, TI4(2021, 80, SYN), PASS(POLICY), E_HALF },
	{ "guard out: default drop decides", OUT, TO4(2020, 42104, SYN), DROP(POLICY), E_NOSTATE,
	  .before = default_out_drop },
	{ "guard out: FTPS peer, default allow", OUT, TO4(2020, 42105, SYN), PASS(FTPS_ACTIVE), E_HALF,
	  .before = ftps_session_r4 },
	{ "guard out: FTPS peer, low port", OUT, TO4(2020, 25, SYN), DROP(FTP_ACTIVE), E_NOSTATE },
	{ "guard out: FTPS, another peer", OUT, TCP4(L4, O4, 2020, 42106, SYN), DROP(FTP_ACTIVE), E_NOSTATE },
	{ "guard in: FTPS peer", IN, TI4(2021, 42107, SYN), PASS(FTPS_ACTIVE), E_HALF },
};


static const struct step udp_steps[] = {
	{ "dns query out", OUT, UDP4(L4, R4, 44000, 53), PASS(POLICY), E_HALF },
	{ "dns query again", OUT, UDP4(L4, R4, 44000, 53), PASS(HALF_OPEN), E_HALF },
	{ "dns reply in promotes", IN, UDP4(R4, L4, 53, 44000), PASS(HALF_OPEN), E_FLOW | E_NOHALF },
	{ "dns reply again", IN, UDP4(R4, L4, 53, 44000), PASS(FLOW), E_FLOW },
	{ "unsolicited udp", IN, UDP4(R4, L4, 53, 44001), DROP(POLICY), E_NOSTATE },
	{ "quic in", IN, UDP4(R4, L4, 44002, 443), PASS(POLICY), E_HALF },
	{ "quic in again", IN, UDP4(R4, L4, 44002, 443), PASS(HALF_OPEN), E_HALF | E_NOFLOW },
	{ "quic reply out promotes", OUT, UDP4(L4, R4, 443, 44002), PASS(HALF_OPEN), E_FLOW | E_NOHALF },
	{ "quic in flow", IN, UDP4(R4, L4, 44002, 443), PASS(FLOW), E_FLOW },
	{ "quic v6", IN, UDP6(R6, L6, 44003, 443), PASS(POLICY), E_HALF },
	{ "quic v6 reply", OUT, UDP6(L6, R6, 443, 44003), PASS(HALF_OPEN), E_FLOW },
	{ "udp flow idles out", IN, UDP4(R4, L4, 44002, 443), PASS(POLICY), E_NOFLOW | E_HALF,
	  .advance_s = PH_UDP_TIMEOUT_S + 1 },
};

/* ---- policy ------------------------------------------------------------ */

static const struct step policy_steps[] = {
	{ "no rule: default drop", IN, TI4(45000, 81, SYN), DROP(POLICY), E_NOSTATE },
	{ "no rule v6", IN, TI6(45000, 81, SYN), DROP(POLICY), E_NOSTATE },
	{ "deny rule", IN, TI4(45001, 23, SYN), DROP(DENY_RULE), E_NOSTATE },
	{ "deny rule ack", IN, TI4(45001, 23, ACK), DROP(DENY_RULE), E_NOSTATE },
	{ "ssh from set", IN, TI4(45002, 22, SYN), PASS(POLICY), E_HALF },
	{ "ssh from excluded", IN, TCP4(X4, L4, 45003, 22, SYN), DROP(PEER), E_NOSTATE },
	{ "ssh from outside", IN, TCP4(O4, L4, 45004, 22, SYN), DROP(PEER), E_NOSTATE },
	{ "ssh v6 from set", IN, TI6(45005, 22, SYN), PASS(POLICY), E_HALF },
	{ "ssh v6 from excluded", IN, TCP6(X6, L6, 45006, 22, SYN), DROP(PEER), E_NOSTATE },
	{ "ssh v6 from outside", IN, TCP6(O6, L6, 45007, 22, SYN), DROP(PEER), E_NOSTATE },
	{ "ssh ack from outside", IN, TCP4(O4, L4, 45004, 22, ACK), DROP(PEER), E_NOSTATE },
	{ "ftps range, no FTPS session", IN, TI4(45008, 50001, SYN), DROP(FTPS_NO_SESSION), E_NOSTATE },
	{ "ftps range edge", IN, TI4(45009, 50003, SYN), DROP(POLICY), E_NOSTATE },
	{ "udp no rule", IN, UDP4(R4, L4, 45010, 444), DROP(POLICY), E_NOSTATE },
	{ "tcp 443 is not udp 443", IN, TI4(45011, 443, SYN), DROP(POLICY), E_NOSTATE },
};

/* Slot 1 holds a different policy: only tcp 8080. */
static void policy_two_slots(struct fx *f)
{
	policy_base(f);
	set_meta(f, 1, PH_ACT_DROP, PH_ACT_ALLOW, PH_ACT_DROP, PH_ACT_ALLOW);
	add_rule(f, 1, 0, PH_L4_TCP, PH_PT_IN_DPORT, 8080, 8080, PH_ACT_ALLOW,
		 PH_RF_PEER_ANY, 0);
}

static void flip_to_1(struct fx *f) { set_slot(f, 1); }
static void flip_to_0(struct fx *f) { set_slot(f, 0); }

static const struct step slot_steps[] = {
	{ "slot 0: 8080 closed", IN, TI4(46000, 8080, SYN), DROP(POLICY) },
	{ "slot 0: 80 open", IN, TI4(46001, 80, SYN), PASS(POLICY), E_HALF },
	{ "slot 0: established", IN, TI4(46001, 80, ACK), PASS(HALF_OPEN), E_FLOW },
	{ "slot 1: 8080 open", IN, TI4(46002, 8080, SYN), PASS(POLICY), E_HALF, .before = flip_to_1 },
	{ "slot 1: 80 closed", IN, TI4(46003, 80, SYN), DROP(POLICY) },
	{ "slot 1: echo closed", IN, ICMP4(R4, L4, 8, 0, 5), DROP(ICMP) },
	{ "slot 1: flow survives reload", IN, TI4(46001, 80, ACK), PASS(FLOW), E_FLOW },
	/* admitted before the reload: its retransmit finds half_open first */
	{ "slot 0: its syn retransmit", IN, TI4(46002, 8080, SYN), PASS(HALF_OPEN), E_HALF,
	  .before = flip_to_0 },
	{ "slot 0 again", IN, TI4(46004, 8080, SYN), DROP(POLICY), .before = flip_to_0 },
};

/* ---- ICMP --------------------------------------------------------------- */

static const struct pkt_spec q_tcp4 = TO4(47000, 443, SYN);
static const struct pkt_spec q_tcp4_other = TO4(47001, 443, SYN);
static const struct pkt_spec q_tcp6 = TO6(47002, 443, ACK, .payload = 1400);
static const struct pkt_spec q_tcp6_other = TO6(47003, 443, ACK, .payload = 1400);
static const struct pkt_spec q_echo4 = ICMP4(L4, R4, 8, 0, 77);
static const struct pkt_spec q_udp4_in = UDP4(L4, R4, 443, 47004);
static const struct pkt_spec q_tcp4_opts = TO4(47000, 443, SYN, .ip_opts = 8);

static void echo_in_off(struct fx *f)
{
	set_meta(f, 0, PH_ACT_DROP, PH_ACT_ALLOW, PH_ACT_DROP, PH_ACT_DROP);
}

static const struct step icmp_steps[] = {
	{ "neighbour solicitation", IN, ICMP6(R6, L6, 135, 0, 0, .payload = 16), PASS(ND), E_NOSTATE },
	{ "neighbour advert out", OUT, ICMP6(L6, R6, 136, 0, 0, .payload = 16), PASS(ND) },
	{ "router advert", IN, ICMP6("fe80::1", "ff02::1", 134, 0, 0, .payload = 8), PASS(ND) },
	{ "mld query", IN, ICMP6("fe80::1", "ff02::1", 130, 0, 0, .payload = 16), PASS(ND) },
	{ "mldv2 report out", OUT, ICMP6(L6, "ff02::16", 143, 0, 0, .payload = 20), PASS(ND) },
	{ "echo request in", IN, ICMP4(R4, L4, 8, 0, 1), PASS(ICMP_ECHO), E_NOSTATE },
	{ "echo request in v6", IN, ICMP6(R6, L6, 128, 0, 1), PASS(ICMP_ECHO), E_NOSTATE },
	{ "echo reply out", OUT, ICMP4(L4, R4, 0, 0, 1), PASS(ICMP_ECHO), E_NOSTATE },
	{ "echo reply out v6", OUT, ICMP6(L6, R6, 129, 0, 1), PASS(ICMP_ECHO) },
	{ "unsolicited echo reply", IN, ICMP4(R4, L4, 0, 0, 77), DROP(ICMP_UNRELATED), E_NOSTATE },
	{ "echo request out", OUT, ICMP4(L4, R4, 8, 0, 77), PASS(ICMP_ECHO), E_FLOW },
	{ "echo request out again", OUT, ICMP4(L4, R4, 8, 0, 77), PASS(ICMP_ECHO), E_FLOW },
	{ "echo reply in", IN, ICMP4(R4, L4, 0, 0, 77), PASS(FLOW), E_FLOW },
	{ "echo reply other id", IN, ICMP4(R4, L4, 0, 0, 78), DROP(ICMP_UNRELATED) },
	{ "echo reply other host", IN, ICMP4(O4, L4, 0, 0, 77), DROP(ICMP_UNRELATED) },
	{ "echo request out v6", OUT, ICMP6(L6, R6, 128, 0, 77), PASS(ICMP_ECHO), E_FLOW },
	{ "echo reply in v6", IN, ICMP6(R6, L6, 129, 0, 77), PASS(FLOW) },
	{ "timestamp", IN, ICMP4(R4, L4, 13, 0, 0, .payload = 12), DROP(ICMP), E_NOSTATE },
	{ "redirect", IN, ICMP4(R4, L4, 5, 0, 0, .inner = &q_tcp4), DROP(ICMP) },
	{ "icmpv6 type 200", IN, ICMP6(R6, L6, 200, 0, 0), DROP(ICMP) },
	{ "timestamp out", OUT, ICMP4(L4, R4, 14, 0, 0, .payload = 12), DROP(ICMP) },
	/* errors quoting our own packets */
	{ "unreach: unknown flow", IN, ICMP4(R4, L4, 3, 1, 0, .inner = &q_tcp4), DROP(ICMP_UNRELATED) },
	{ "our syn out", OUT, TO4(47000, 443, SYN), PASS(DEFAULT), E_HALF },
	{ "unreach about half-open", IN, ICMP4(R4, L4, 3, 3, 0, .inner = &q_tcp4), PASS(ICMP_RELATED), E_NOSTATE },
	{ "unreach quoting ip options", IN, ICMP4(R4, L4, 3, 3, 0, .inner = &q_tcp4_opts), PASS(ICMP_RELATED) },
	{ "unreach from a router", IN, ICMP4(O4, L4, 11, 0, 0, .inner = &q_tcp4), PASS(ICMP_RELATED) },
	{ "syn-ack in", IN, TI4(443, 47000, SYN | ACK), PASS(HALF_OPEN), E_FLOW },
	{ "frag needed about flow", IN, ICMP4(O4, L4, 3, 4, 0, .inner = &q_tcp4), PASS(ICMP_RELATED) },
	{ "unreach about other port", IN, ICMP4(R4, L4, 3, 3, 0, .inner = &q_tcp4_other), DROP(ICMP_UNRELATED) },
	{ "unreach quote cut short", IN, ICMP4(R4, L4, 3, 3, 0, .inner = &q_tcp4, .inner_cut = 24), DROP(ICMP_UNRELATED) },
	{ "unreach quote: 8 bytes of tcp is enough", IN,
	  ICMP4(R4, L4, 3, 3, 0, .inner = &q_tcp4, .inner_cut = 28), PASS(ICMP_RELATED) },
	{ "time exceeded about our ping", IN, ICMP4(O4, L4, 11, 0, 0, .inner = &q_echo4), PASS(ICMP_RELATED) },
	{ "param problem about udp", IN, ICMP4(R4, L4, 12, 0, 0, .inner = &q_udp4_in), DROP(ICMP_UNRELATED) },
	{ "v6 our data out", OUT, TO6(47002, 443, SYN), PASS(DEFAULT), E_HALF },
	{ "v6 syn-ack", IN, TI6(443, 47002, SYN | ACK), PASS(HALF_OPEN), E_FLOW },
	{ "v6 packet too big about flow", IN, ICMP6(O6, L6, 2, 0, 0, .inner = &q_tcp6, .inner_cut = 1232),
	  PASS(ICMP_RELATED), E_NOSTATE },
	{ "v6 packet too big unrelated", IN, ICMP6(O6, L6, 2, 0, 0, .inner = &q_tcp6_other, .inner_cut = 1232),
	  DROP(ICMP_UNRELATED) },
	{ "v6 unreach about flow", IN, ICMP6(R6, L6, 1, 4, 0, .inner = &q_tcp6, .inner_cut = 48),
	  PASS(ICMP_RELATED) },
	{ "v6 quote too short", IN, ICMP6(R6, L6, 1, 4, 0, .inner = &q_tcp6, .inner_cut = 44),
	  DROP(ICMP_UNRELATED) },
	{ "error out is ours", OUT, ICMP4(L4, R4, 3, 3, 0, .inner = &q_udp4_in), PASS(ICMP_RELATED) },
	{ "v6 error out", OUT, ICMP6(L6, R6, 1, 4, 0, .inner = &q_tcp6_other), PASS(ICMP_RELATED) },
	{ "echo in refused", IN, ICMP4(R4, L4, 8, 0, 2), DROP(ICMP), E_NOSTATE, .before = echo_in_off },
	{ "echo reply out refused", OUT, ICMP4(L4, R4, 0, 0, 2), DROP(ICMP) },
	{ "echo out refused", OUT, ICMP4(L4, R4, 8, 0, 99), DROP(ICMP), E_NOSTATE },
	{ "nd still passes", IN, ICMP6(R6, L6, 135, 0, 0, .payload = 16), PASS(ND) },
};

/* ---- fragments ---------------------------------------------------------- */

static const struct step frag_steps[] = {
	{ "v4 first fragment", IN, UDP4(R4, L4, 48000, 443, .frag = PKT_FRAG_FIRST, .frag_id = 0x1234),
	  PASS(POLICY), E_FRAG | E_HALF },
	{ "v4 later fragment", IN, UDP4(R4, L4, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x1234), PASS(FRAGMENT) },
	{ "v4 later fragment again", IN, UDP4(R4, L4, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x1234), PASS(FRAGMENT) },
	{ "v4 orphan fragment", IN, UDP4(R4, L4, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x9999), DROP(FRAGMENT) },
	{ "v4 same id other source", IN, UDP4(O4, L4, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x1234), DROP(FRAGMENT) },
	{ "v4 first fragment denied", IN, UDP4(R4, L4, 48001, 9999, .frag = PKT_FRAG_FIRST, .frag_id = 0x2222),
	  DROP(POLICY), E_NOSTATE },
	{ "v4 rest of denied datagram", IN, UDP4(R4, L4, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x2222), DROP(FRAGMENT) },
	{ "v4 first fragment too short", IN,
	  TI4(48002, 80, SYN, .frag = PKT_FRAG_FIRST, .frag_id = 0x3333, .l4_cut = 12), DROP(L4_MALFORMED) },
	{ "v4 tcp first fragment", IN, TI4(48003, 80, SYN, .frag = PKT_FRAG_FIRST, .frag_id = 0x4444),
	  PASS(POLICY), E_FRAG },
	{ "v4 tcp later fragment", IN, TI4(0, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x4444), PASS(FRAGMENT) },
	{ "v4 fragment memory expires", IN, UDP4(R4, L4, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x1234),
	  DROP(FRAGMENT), .advance_s = PH_FRAG_TIMEOUT_S + 1 },
	{ "v6 first fragment", IN, UDP6(R6, L6, 48004, 443, .frag = PKT_FRAG_FIRST, .frag_id = 0xabcdef),
	  PASS(POLICY), E_FRAG },
	{ "v6 later fragment", IN, UDP6(R6, L6, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0xabcdef), PASS(FRAGMENT) },
	{ "v6 orphan fragment", IN, UDP6(R6, L6, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x777), DROP(FRAGMENT) },
	{ "v6 first fragment after hop-by-hop", IN,
	  UDP6(R6, L6, 48005, 443, .frag = PKT_FRAG_FIRST, .frag_id = 0x55, .ext = { IPPROTO_HOPOPTS }, .next = 1),
	  PASS(POLICY), E_FRAG },
	{ "v6 later fragment after hop-by-hop", IN,
	  UDP6(R6, L6, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x55, .ext = { IPPROTO_HOPOPTS }, .next = 1),
	  PASS(FRAGMENT) },
	{ "v6 first fragment denied", IN, UDP6(R6, L6, 48006, 9999, .frag = PKT_FRAG_FIRST, .frag_id = 0x66),
	  DROP(POLICY) },
	{ "v6 its later fragment", IN, UDP6(R6, L6, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x66), DROP(FRAGMENT) },
	{ "v6 first fragment too short", IN,
	  TI6(48007, 80, SYN, .frag = PKT_FRAG_FIRST, .frag_id = 0x88, .l4_cut = 8), DROP(L4_MALFORMED) },
	{ "v6 atomic fragment is whole", IN,
	  TI6(48008, 80, SYN, .ext = { IPPROTO_FRAGMENT }, .next = 1), PASS(POLICY), E_HALF },
	{ "out first fragment", OUT, UDP4(L4, R4, 48009, 53, .frag = PKT_FRAG_FIRST, .frag_id = 0x99),
	  PASS(POLICY), E_FRAG },
	{ "out later fragment", OUT, UDP4(L4, R4, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x99), PASS(FRAGMENT) },
	{ "out orphan fragment", OUT, UDP4(L4, R4, 0, 0, .frag = PKT_FRAG_LATER, .frag_id = 0x98), DROP(FRAGMENT) },
};

/* ---- FTP pinholes ------------------------------------------------------- */

static void put_expect(struct fx *f, const char *local, const char *remote,
		       __u16 lport, __u16 rport, __u8 dir, __s64 ttl_s,
		       __u32 session)
{
	struct ph_flow_key k = {};
	struct ph_expect e = {};
	int fam = strchr(local, ':') ? 6 : 4;

	addr16(fam, local, k.local);
	addr16(fam, remote, k.remote);
	k.lport = htons(lport);
	k.rport = htons(rport);
	k.proto = IPPROTO_TCP;
	e.deadline_ns = fx_now() + ttl_s * (__s64)NSEC;
	e.session = session;
	e.dir = dir;
	/* As the tracker installs one: the port's syn_watch first. */
	if (dir == IN &&
	    ph_syn_watch_raise(bpf_map__fd(f->x->maps.syn_watch), k.lport,
			       e.deadline_ns))
		fprintf(stderr, "syn_watch: %s\n", strerror(errno));
	if (bpf_map_update_elem(f->expect, &k, &e, BPF_ANY))
		fprintf(stderr, "expect: %s\n", strerror(errno));
}

/* Passive-mode server: the client connects from any port to 40000. */
static void exp_pasv(struct fx *f) { put_expect(f, L4, R4, 40000, 0, IN, 30, 7); }
/* Active-mode client: the server connects from port 20 exactly. */
static void exp_port_exact(struct fx *f) { put_expect(f, L4, R4, 40001, 20, IN, 30, 8); }
/* Installed with a 5 s lifetime, used 10 s later. */
static void exp_short(struct fx *f)
{
	put_expect(f, L4, R4, 40002, 0, IN, 5, 9);
	fx_advance(f, 10 * NSEC);
}
static void exp_wrong_dir(struct fx *f) { put_expect(f, L4, R4, 40003, 0, OUT, 30, 10); }
static void exp_v6(struct fx *f) { put_expect(f, L6, R6, 40004, 0, IN, 30, 11); }
/* Active-mode server: from port 20 to the client's PORT, any local port. */
static void exp_active_srv(struct fx *f)
{
	default_out_drop(f);
	put_expect(f, L4, R4, 0, 41000, OUT, 30, 12);
}
/* Passive-mode client: to the server's announced port. */
static void exp_pasv_cli(struct fx *f) { put_expect(f, L4, R4, 0, 50010, OUT, 30, 13); }
static void exp_out_short(struct fx *f)
{
	put_expect(f, L4, R4, 0, 50011, OUT, 5, 14);
	fx_advance(f, 10 * NSEC);
}

/* Written without raising the port's syn_watch first (breaking the
 * contract in pinhole.h): the datapath does not look for it. */
static void exp_no_watch(struct fx *f)
{
	struct ph_flow_key k = {};
	struct ph_expect e = { .deadline_ns = fx_now() + 30 * NSEC, .session = 15,
			       .dir = IN };

	addr16(4, L4, k.local);
	addr16(4, R4, k.remote);
	k.lport = htons(40005);
	k.proto = IPPROTO_TCP;
	bpf_map_update_elem(f->expect, &k, &e, BPF_ANY);
}

static bool half_is_expect7(struct fx *f, const struct step *s)
{
	struct ph_flow_key k;
	struct ph_flow v;

	key_of(&s->pkt, s->dir, &k);
	return !bpf_map_lookup_elem(f->half_open, &k, &v) &&
	       v.origin == PH_FO_EXPECT && v.session == 7;
}

static bool flow_is_expect7(struct fx *f, const struct step *s)
{
	struct ph_flow_key k;
	struct ph_flow v;

	key_of(&s->pkt, s->dir, &k);
	return !bpf_map_lookup_elem(f->flows, &k, &v) &&
	       v.origin == PH_FO_EXPECT && v.session == 7;
}

static const struct step expect_steps[] = {
	{ "pasv data syn", IN, TI4(51000, 40000, SYN), PASS(EXPECT), E_HALF | E_NOEXPECT,
	  .before = exp_pasv, .check = half_is_expect7 },
	{ "pasv syn retransmit", IN, TI4(51000, 40000, SYN), PASS(HALF_OPEN), E_HALF | E_NOEXPECT },
	{ "pasv data ack", IN, TI4(51000, 40000, ACK), PASS(HALF_OPEN), E_FLOW,
	  .check = flow_is_expect7 },
	{ "pasv second syn", IN, TI4(51001, 40000, SYN), DROP(POLICY), E_NOSTATE },
	{ "port exact: wrong source port", IN, TI4(21, 40001, SYN), DROP(POLICY), E_NOSTATE,
	  .before = exp_port_exact },
	{ "port exact: from 20", IN, TI4(20, 40001, SYN), PASS(EXPECT), E_HALF | E_NOEXPECT },
	{ "expired pinhole", IN, TI4(51002, 40002, SYN), DROP(EXPECT_SPENT), E_NOSTATE | E_NOEXPECT,
	  .before = exp_short },
	{ "wrong direction ignored", IN, TI4(51003, 40003, SYN), DROP(POLICY), E_NOSTATE,
	  .before = exp_wrong_dir },
	{ "v6 pasv", IN, TI6(51004, 40004, SYN), PASS(EXPECT), E_HALF, .before = exp_v6 },
	{ "active server data from 20", OUT, TO4(20, 41000, SYN), PASS(EXPECT), E_HALF,
	  .before = exp_active_srv },
	{ "its syn-ack", IN, TI4(41000, 20, SYN | ACK), PASS(HALF_OPEN), E_FLOW },
	/* A bare SYN never rides a confirmed flow (a reused 4-tuple): the
	 * pinhole is spent, so the outbound policy judges it. */
	{ "again: consumed, judged by policy", OUT, TO4(20, 41000, SYN), PASS(POLICY) },
	{ "another from 20", OUT, TO4(20, 41001, SYN), PASS(POLICY), E_HALF },
	{ "pasv client", OUT, TO4(43000, 50010, SYN), PASS(EXPECT), E_HALF, .before = exp_pasv_cli },
	{ "pasv client twice", OUT, TO4(43001, 50010, SYN), DROP(POLICY), E_NOSTATE },
	{ "pasv client expired", OUT, TO4(43002, 50011, SYN), DROP(EXPECT_SPENT), E_NOSTATE,
	  .before = exp_out_short },
	{ "pinhole without syn_watch unseen", IN, TI4(51005, 40005, SYN), DROP(POLICY), E_NOSTATE,
	  .before = exp_no_watch },
};

/* ---- fail-open / fail-closed ------------------------------------------- */

static void break_slot(struct fx *f) { set_slot(f, 7); }
static void break_rule(struct fx *f)
{
	set_slot(f, 0);
	set_port(f, 0, PH_L4_TCP, PH_PT_IN_DPORT, 82, 0xffff);
}

static const struct step fail_closed_steps[] = {
	{ "bad slot: syn", IN, TI4(52000, 80, SYN), DROP(FAIL_CLOSED), E_NOSTATE, .before = break_slot },
	{ "bad slot: echo", IN, ICMP4(R4, L4, 8, 0, 1), DROP(FAIL_CLOSED) },
	{ "bad slot: out", OUT, TO4(52001, 443, SYN), DROP(FAIL_CLOSED) },
	{ "bad slot: gre", IN, { .family = 4, .src = R4, .dst = L4, .proto = 47 }, DROP(FAIL_CLOSED) },
	{ "bad slot: nd unaffected", IN, ICMP6(R6, L6, 135, 0, 0, .payload = 16), PASS(ND) },
	{ "bad rule index", IN, TI4(52002, 82, SYN), DROP(FAIL_CLOSED), E_NOSTATE, .before = break_rule },
};

static const struct step fail_open_steps[] = {
	{ "bad slot: syn", IN, TI4(52000, 80, SYN), PASS(FAIL_OPEN), E_NOSTATE, .before = break_slot },
	{ "bad slot: out", OUT, TO4(52001, 443, SYN), PASS(FAIL_OPEN), E_NOSTATE },
	{ "bad rule index", IN, TI4(52002, 82, SYN), PASS(FAIL_OPEN), E_NOSTATE, .before = break_rule },
};

/* ---- flood -------------------------------------------------------------- */

#define FLOOD_HALF_OPEN 64

static bool flows_one(struct fx *f, const struct step *s)
{
	(void)s;
	return map_count(f->flows) == 1 &&
	       map_count(f->half_open) <= FLOOD_HALF_OPEN;
}

static const struct step flood_steps[] = {
	{ "establish", IN, TI4(53000, 80, SYN), PASS(POLICY), E_HALF },
	{ "established", IN, TI4(53000, 80, ACK), PASS(HALF_OPEN), E_FLOW },
	{ "syn flood", IN, TI4(1000, 80, SYN), PASS(POLICY), .repeat = FLOOD_HALF_OPEN * 8 },
	{ "flow survives", IN, TI4(53000, 80, ACK | PSH, .payload = 10), PASS(FLOW), E_FLOW,
	  .check = flows_one },
	{ "udp flood", IN, UDP4(R4, L4, 2000, 443), PASS(POLICY), .repeat = FLOOD_HALF_OPEN * 8 },
	{ "flow still survives", IN, TI4(53000, 80, ACK), PASS(FLOW), E_FLOW, .check = flows_one },
};

/* ---- main --------------------------------------------------------------- */

static void coverage(struct fx **all, int n)
{
	__u64 seen[PH_R_MAX] = {};
	int r, i;

	group = "coverage";
	for (i = 0; i < n; i++)
		for (r = 0; r < PH_R_MAX; r++)
			seen[r] += all[i]->seen[r];
	for (r = 0; r < PH_R_MAX; r++) {
		/* Need an FTPS session and a real listening socket:
		 * tests/bpf/test_ftps.c covers them; a tracked FTP control
		 * connection: tests/bpf/test_ftp_datapath.c; a real
		 * connection: tests/bpf/test_live.c. */
		bool elsewhere = r == PH_R_PASS_FTPS_RANGE ||
				 r == PH_R_DROP_FTPS_NO_LISTENER ||
				 r == PH_R_DROP_CTRL_CSUM ||
				 r == PH_R_PASS_SOCKET;

		if (!elsewhere)
			ASSERT(seen[r], reason_names[r], "never exercised");
	}
}

int main(void)
{
	struct fx_opts closed = { .name = "main",
				  .failsafe_port = FAILSAFE_PORT };
	struct fx_opts open_ = { .name = "fail-open", .fail_open = true,
				 .failsafe_port = FAILSAFE_PORT };
	struct fx_opts flood = { .name = "flood",
				 .half_open_max = FLOOD_HALF_OPEN,
				 .failsafe_port = FAILSAFE_PORT };
	struct fx *f, *fo, *ff;
	int rc = fx_init("ph-dp-test");

	if (rc)
		return rc;
	f = fx_create(&closed);
	fo = f ? fx_create(&open_) : NULL;
	ff = fo ? fx_create(&flood) : NULL;
	if (!ff)
		return 1;

	RUN(f, policy_base, parse_steps);
	RUN(f, policy_base, tcp_in_steps);
	RUN(f, policy_base, tcp_out_steps);
	RUN(f, policy_base, out_drop_steps);
	RUN(f, policy_base, udp_steps);
	RUN(f, policy_base, policy_steps);
	RUN(f, policy_two_slots, slot_steps);
	RUN(f, policy_base, icmp_steps);
	RUN(f, policy_base, frag_steps);

	RUN(f, policy_base, expect_steps);
	RUN(f, policy_guards, guard_steps);
	RUN(f, policy_base, fail_closed_steps);
	RUN(fo, policy_base, fail_open_steps);
	RUN(ff, policy_base, flood_steps);

	{
		struct fx *all[] = { f, fo, ff };

		coverage(all, 3);
	}

	fx_check_slots();
	if (failures) {
		printf("FAILED: %d of %d checks\n", failures, checks);
		return 1;
	}
	printf("OK: %d checks\n", checks);
	return 0;
}
