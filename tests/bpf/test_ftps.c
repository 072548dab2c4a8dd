// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * FTPS in the datapath: the count of live FTPS control connections per
 * {peer, local address} (ftps_peers) and the ftps-range check on inbound
 * SYNs (a session in ftps_peers, then a listening socket), through
 * BPF_PROG_TEST_RUN on both programs; and the tracker's reconciliation
 * (user/ftps.c) against the same real maps.
 *
 * The test moves itself into a network namespace of its own first: the
 * XDP test run's device is that namespace's loopback, so the datapath's
 * bpf_skc_lookup_tcp() sees exactly the sockets this test opens there. A
 * listener left in the original namespace checks that it sees no others.
 *
 * Needs root (exit 77 otherwise). Maps are pinned under a private
 * /sys/fs/bpf/ph-ftps-<pid>, removed at exit.
 */
#include "bpf/fixture.h"
#include "bpf/ctl.h"
#include "bpf/sock.h"
#include "ftps.h" /* user/ftps.c: the tracker's reconciliation */

/* This host's second address (bpf/ctl.h has the first, the FTP peer and a
 * third host). */
#define L4B "192.0.2.2"
#define L6B "2001:db8::2"

enum { R_FTP_IN, R_FTPS_IN, R_FTP_OUT, R_FTPS_OUT, R_RANGE, R_RANGE_SET,
       R_RANGE_NS };

/* in tcp 30000-30009 ftps-range from any; 30020-30021 from set 1 (T4) */
#define RANGE_LO 30000
#define RANGE_HI 30009
#define SET_LO 30020
#define SET_HI 30021

static struct fx *F;
static const char *tname = "";

#define CHECK(cond, ...) ASSERT(cond, tname, __VA_ARGS__)

/* ---- packets ------------------------------------------------------------ */

/* Runs @p through the program of @dir; returns the reason whose counter
 * moved (exactly one must), or -1. */
static int run_reason(int dir, const struct pkt_spec *p)
{
	return fx_run_spec(F, dir, p, tname);
}

#define CHECK_REASON(got, want, what)                                          \
	CHECK((got) == (want), "%s: %s, want %s", what, fx_rname(got),        \
	      fx_rname(want))

/* An inbound SYN from @src:@sport to @dst:@dport. */
static int syn_in(int family, const char *src, const char *dst, __u16 sport,
		  __u16 dport)
{
	struct pkt_spec p = { .family = family, .src = src, .dst = dst,
			      .proto = IPPROTO_TCP, .sport = sport,
			      .dport = dport, .flags = SYN };

	return run_reason(IN, &p);
}

/* ---- control connections ------------------------------------------------ */

static void ctl_init(struct ctl *c, int family, int role, __u16 sport,
		     __u16 cport)
{
	ctl_setup(c, family, role, sport, cport, 0x20000000u + cport * 131u,
		  0x70000000u + cport);
}

/* A segment of one side at its next sequence number; returns the reason. */
static int seg(struct ctl *c, int from_client, __u8 flags, const char *text)
{
	int len = text ? (int)strlen(text) : 0;
	__u32 *nxt = from_client ? &c->cnxt : &c->snxt;
	struct pkt_spec p = ctl_spec(c, from_client, flags, *nxt,
				     !(flags & ACK) ? 0 :
				     from_client ? c->snxt : c->cnxt,
				     text, len);
	int r = run_reason(dir_of(c, from_client), &p);

	*nxt += len + !!(flags & (SYN | FIN));
	return r;
}

static int say(struct ctl *c, int from_client, const char *text)
{
	int r = seg(c, from_client, ACK | PSH, text);

	CHECK_REASON(r, PH_R_PASS_FLOW, text);
	return r;
}

/* The three packets of the handshake, each checked. */
static bool ctl_open(struct ctl *c)
{
	bool ok = true;
	int r;

	r = seg(c, 1, SYN, NULL);
	ok &= CHECK_REASON(r, PH_R_PASS_POLICY, "control SYN");
	r = seg(c, 0, SYN | ACK, NULL);
	ok &= CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "control SYN-ACK");
	r = seg(c, 1, ACK, NULL);
	ok &= CHECK(r == PH_R_PASS_HALF_OPEN || r == PH_R_PASS_FLOW,
		    "control ACK: %s", fx_rname(r));
	return ok;
}

/* FIN both ways (client first). */
static void ctl_fin(struct ctl *c)
{
	int r = seg(c, 1, FIN | ACK, NULL);

	CHECK_REASON(r, PH_R_PASS_FLOW, "client FIN");
	r = seg(c, 0, FIN | ACK, NULL);
	CHECK_REASON(r, PH_R_PASS_FLOW, "server FIN");
}

/* ---- map state ---------------------------------------------------------- */

/* ftps_peers[{peer, local}].refs, or -1 without an entry. */
static int refs_of(int family, const char *peer, const char *local)
{
	struct ph_ftps_peer_key k;
	struct ph_ftps_peer v;

	addr16(family, peer, k.remote);
	addr16(family, local, k.local);
	if (bpf_map_lookup_elem_flags(F->ftps_peers, &k, &v, BPF_F_LOCK))
		return -1;
	return (int)v.refs;
}

static int ctl_refs(const struct ctl *c)
{
	return refs_of(c->family, c->peer, c->local);
}

/* The flow's flags, or -1 without a flow. */
static int flow_flags(const struct ph_flow_key *k)
{
	struct ph_flow f;

	return bpf_map_lookup_elem(F->flows, k, &f) ? -1 : f.flags;
}

static bool counted(const struct ctl *c)
{
	int fl = flow_flags(&c->key);
	struct ph_ftp_ctrl v;

	if (fl < 0 || !(fl & PH_FF_FTPS_COUNTED))
		return false;
	return !bpf_map_lookup_elem(F->ftp_ctrl, &c->key, &v) && v.ftps == 1;
}

static struct ph_ftp_dp_stats dp_stats(void)
{
	struct ph_ftp_dp_stats sum = {}, v[F->ncpus];
	__u32 zero = 0;
	int c;

	if (bpf_map_lookup_elem(F->ftp_dp_stats, &zero, v))
		return sum;
	for (c = 0; c < F->ncpus; c++) {
		sum.ftps_counted += v[c].ftps_counted;
		sum.ftps_released += v[c].ftps_released;
		sum.ftps_full += v[c].ftps_full;
	}
	return sum;
}

/* The key of an inbound connection @peer:@sport -> @local:@dport. */
static struct ph_flow_key in_key(int family, const char *peer,
				 const char *local, __u16 sport, __u16 dport)
{
	struct ph_flow_key k = {};

	addr16(family, local, k.local);
	addr16(family, peer, k.remote);
	k.lport = htons(dport);
	k.rport = htons(sport);
	k.proto = IPPROTO_TCP;
	return k;
}

static int origin_in(int fd, const struct ph_flow_key *k)
{
	struct ph_flow f;

	return bpf_map_lookup_elem(fd, k, &f) ? -1 : f.origin;
}

/* ---- policy ------------------------------------------------------------- */

/* Inbound and outbound default drop. FTP control tracked both ways on 21,
 * implicit FTPS both ways on 990, the FTPS range, a range held to a peer
 * set without the FTP peer. */
static void policy_ftps(void)
{
	fx_reset(F);
	set_meta(F, 0, PH_ACT_DROP, PH_ACT_DROP, PH_ACT_ALLOW, PH_ACT_ALLOW);
	add_rule(F, 0, R_FTP_IN, PH_L4_TCP, PH_PT_IN_DPORT, 21, 21,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTP_TRACK, 0);
	add_rule(F, 0, R_FTPS_IN, PH_L4_TCP, PH_PT_IN_DPORT, 990, 990,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTPS_IMPLICIT, 0);
	add_rule(F, 0, R_FTP_OUT, PH_L4_TCP, PH_PT_OUT_DPORT, 21, 21,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTP_TRACK, 0);
	add_rule(F, 0, R_FTPS_OUT, PH_L4_TCP, PH_PT_OUT_DPORT, 990, 990,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTPS_IMPLICIT, 0);
	add_rule(F, 0, R_RANGE, PH_L4_TCP, PH_PT_IN_DPORT, RANGE_LO, RANGE_HI,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTPS_RANGE, 0);
	add_rule(F, 0, R_RANGE_SET, PH_L4_TCP, PH_PT_IN_DPORT, SET_LO, SET_HI,
		 PH_ACT_ALLOW, PH_RF_FTPS_RANGE, 1);
	add_peer(F, 0, 1, T4 "/32", PH_ACT_ALLOW);
}

/* ---- tests -------------------------------------------------------------- */

static void t_no_session(void)
{
	int fd4 = listen_on(4, RANGE_LO + 1, NULL);
	int fd6 = listen_on(6, RANGE_LO + 1, NULL);
	struct ph_flow_key k = in_key(4, P4, L4, 41000, RANGE_LO + 1);
	int r;

	tname = "no session";
	policy_ftps();
	r = syn_in(4, P4, L4, 41000, RANGE_LO + 1);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION, "SYN, listener, no session");
	CHECK(origin_in(F->half_open, &k) < 0, "a refused SYN left state");
	r = syn_in(6, P6, L6, 41000, RANGE_LO + 1);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION, "v6 SYN, no session");
	r = syn_in(4, P4, L4, 41000, RANGE_HI + 1);
	CHECK_REASON(r, PH_R_DROP_POLICY, "SYN beside the range");
	close(fd4);
	close(fd6);
}

/* A bare SYN (and SYN-ACK) to 990 registers nothing: only a completed
 * handshake counts. */
static void t_bare_syn(void)
{
	struct ctl c;
	int r;

	tname = "bare SYN to 990";
	policy_ftps();
	ctl_init(&c, 4, SERVER, 990, 41100);
	r = seg(&c, 1, SYN, NULL);
	CHECK_REASON(r, PH_R_PASS_POLICY, "SYN to 990");
	CHECK(ctl_refs(&c) < 0, "a bare SYN counted a session");
	r = seg(&c, 0, SYN | ACK, NULL);
	CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "our SYN-ACK");
	CHECK(ctl_refs(&c) < 0 && map_count(F->ftps_peers) == 0,
	      "a half-open control connection counted");
	r = syn_in(4, P4, L4, 41101, RANGE_LO + 2);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION,
		     "range SYN from a half-open peer");
	/* Spoofed SYNs from many sources: nothing. */
	for (int i = 0; i < 16; i++) {
		char src[32];

		snprintf(src, sizeof(src), "198.51.100.%d", 100 + i);
		r = syn_in(4, src, L4, 42000 + i, 990);
		CHECK_REASON(r, PH_R_PASS_POLICY, "spoofed SYN");
	}
	CHECK(map_count(F->ftps_peers) == 0, "spoofed SYNs counted sessions");
}

/* Implicit FTPS, this host the server: the data SYN is checked for the
 * session, then the listener. */
static void t_implicit_server(int family)
{
	const char *local = family == 4 ? L4 : L6;
	const char *peer = family == 4 ? P4 : P6;
	const char *other_local = family == 4 ? L4B : L6B;
	const char *third = family == 4 ? T4 : T6;
	__u16 port = RANGE_LO + 3;
	struct ph_ftp_dp_stats st0 = dp_stats(), st;
	struct ph_flow_key dk = in_key(family, peer, local, 43000, port);
	struct pkt_spec p;
	struct ctl c;
	int r, fd;

	tname = family == 4 ? "implicit server" : "implicit server v6";
	policy_ftps();
	ctl_init(&c, family, SERVER, 990, 41200);
	if (!ctl_open(&c))
		return;
	CHECK(ctl_refs(&c) == 1, "refs %d after the handshake", ctl_refs(&c));
	CHECK(counted(&c), "flow or ftp_ctrl not marked counted");
	st = dp_stats();
	CHECK(st.ftps_counted == st0.ftps_counted + 1, "ftps_counted +%llu",
	      (unsigned long long)(st.ftps_counted - st0.ftps_counted));
	say(&c, 0, "\x16\x03\x01 server hello");

	r = syn_in(family, peer, local, 43000, port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_LISTENER, "session, nothing listening");
	CHECK(origin_in(F->half_open, &dk) < 0, "refused SYN left state");

	fd = listen_on(family, port, NULL);
	CHECK(fd >= 0, "cannot listen on %u", port);
	r = syn_in(family, peer, local, 43000, port);
	CHECK_REASON(r, PH_R_PASS_FTPS_RANGE, "session and listener");
	CHECK(origin_in(F->half_open, &dk) == PH_FO_FTPS,
	      "no half-open entry of origin ftps-range");
	r = syn_in(family, peer, local, 43000, port);
	CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "retransmitted SYN");
	p = (struct pkt_spec){ .family = family, .src = local, .dst = peer,
			       .proto = IPPROTO_TCP, .sport = port,
			       .dport = 43000, .flags = SYN | ACK };
	r = run_reason(OUT, &p);
	CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "our SYN-ACK");
	p = (struct pkt_spec){ .family = family, .src = peer, .dst = local,
			       .proto = IPPROTO_TCP, .sport = 43000,
			       .dport = port, .flags = ACK };
	r = run_reason(IN, &p);
	CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "client ACK");
	CHECK(origin_in(F->flows, &dk) == PH_FO_FTPS,
	      "the data connection is no flow of origin ftps-range");
	r = run_reason(IN, &p);
	CHECK_REASON(r, PH_R_PASS_FLOW, "data on the flow");

	r = syn_in(family, peer, other_local, 43001, port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION,
		     "session to another local address");
	r = syn_in(family, third, local, 43002, port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION, "another peer");
	r = syn_in(family, peer, local, 43003, RANGE_HI + 1);
	CHECK_REASON(r, PH_R_DROP_POLICY, "outside the range");

	ctl_fin(&c);
	CHECK(ctl_refs(&c) < 0, "FIN both ways left refs %d", ctl_refs(&c));
	CHECK(flow_flags(&c.key) >= 0 &&
		      !(flow_flags(&c.key) & PH_FF_FTPS_COUNTED),
	      "closing flow still marked counted");
	st = dp_stats();
	CHECK(st.ftps_released == st0.ftps_released + 1, "ftps_released +%llu",
	      (unsigned long long)(st.ftps_released - st0.ftps_released));
	/* More packets of the closing connection give nothing back again. */
	seg(&c, 1, ACK, NULL);
	seg(&c, 0, FIN | ACK, NULL);
	st = dp_stats();
	CHECK(st.ftps_released == st0.ftps_released + 1,
	      "given back twice");
	r = syn_in(family, peer, local, 43004, port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION, "after the control closed");
	close(fd);
}

/* Two sessions of one pair; each RST gives back one. */
static void t_two_sessions(void)
{
	__u16 port = RANGE_LO + 4;
	struct ctl a, b;
	int r, fd = listen_on(4, port, NULL);

	tname = "two sessions, RST";
	policy_ftps();
	ctl_init(&a, 4, SERVER, 990, 41300);
	ctl_init(&b, 4, SERVER, 990, 41301);
	if (!ctl_open(&a) || !ctl_open(&b))
		return;
	CHECK(ctl_refs(&a) == 2, "refs %d, want 2", ctl_refs(&a));
	r = seg(&a, 1, RST | ACK, NULL);
	CHECK_REASON(r, PH_R_PASS_FLOW, "RST of one");
	CHECK(ctl_refs(&a) == 1, "refs %d after one RST", ctl_refs(&a));
	r = syn_in(4, P4, L4, 43100, port);
	CHECK_REASON(r, PH_R_PASS_FTPS_RANGE, "the other session still admits");
	r = seg(&a, 1, RST | ACK, NULL);
	CHECK(ctl_refs(&a) == 1, "a RST on no flow gave back: %d",
	      ctl_refs(&a));
	r = seg(&b, 0, RST | ACK, NULL);
	CHECK_REASON(r, PH_R_PASS_FLOW, "server RST of the other");
	CHECK(ctl_refs(&b) < 0, "refs %d after both RSTs", ctl_refs(&b));
	r = syn_in(4, P4, L4, 43101, port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION, "no session left");
	close(fd);
}

/* Explicit FTPS: AUTH TLS on a tracked port, counted at the 234. */
static void t_explicit(int role)
{
	__u16 port = RANGE_LO + 5;
	struct ctl c;
	int r, fd = listen_on(4, port, NULL);

	tname = role == SERVER ? "explicit server" : "explicit client";
	policy_ftps();
	ctl_init(&c, 4, role, 21, 41400);
	if (!ctl_open(&c))
		return;
	CHECK(ctl_refs(&c) < 0, "plain FTP counted");
	say(&c, 0, "220 ready\r\n");
	say(&c, 1, "AUTH TLS\r\n");
	CHECK(ctl_refs(&c) < 0, "AUTH alone counted");
	say(&c, 0, "234 Proceed with negotiation\r\n");
	CHECK(ctl_refs(&c) == 1, "refs %d after 234", ctl_refs(&c));
	CHECK(counted(&c), "not marked counted");
	say(&c, 1, "\x16\x03\x01 client hello");
	say(&c, 0, "\x16\x03\x03 server hello");
	CHECK(ctl_refs(&c) == 1, "TLS bytes changed refs: %d", ctl_refs(&c));
	/* server: the client's passive data; client: the server's active
	 * data from port 20 to the port the client listens on. */
	r = syn_in(4, P4, L4, role == SERVER ? 43200 : 20, port);
	CHECK_REASON(r, PH_R_PASS_FTPS_RANGE, "data SYN");
	r = seg(&c, role == SERVER, RST | ACK, NULL);
	CHECK_REASON(r, PH_R_PASS_FLOW, "RST");
	CHECK(ctl_refs(&c) < 0, "RST left refs %d", ctl_refs(&c));
	/* Another port (the same 4-tuple would be the retransmission of
	 * the admitted SYN); nothing listens there, but the session check
	 * comes first. */
	r = syn_in(4, P4, L4, role == SERVER ? 43201 : 20, port + 1);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION, "data SYN after the RST");

	tname = role == SERVER ? "explicit server, 234 elsewhere" :
				 "explicit client, 234 elsewhere";
	ctl_init(&c, 4, role, 21, 41401);
	if (!ctl_open(&c))
		return;
	/* 234 in the text of another reply, or from the wrong side. */
	say(&c, 0, "500 '234 x' not understood\r\n");
	say(&c, 1, "234 from the client\r\n");
	CHECK(ctl_refs(&c) < 0, "a 234 inside text counted");
	close(fd);
}

/* Implicit FTPS, this host the client: TC sees our SYN to 990, XDP the
 * server's SYN-ACK, which counts; then the server's active data. */
static void t_implicit_client(int family)
{
	const char *local = family == 4 ? L4 : L6;
	const char *peer = family == 4 ? P4 : P6;
	__u16 port = RANGE_LO + 6;
	struct ctl c;
	int r, fd;

	tname = family == 4 ? "implicit client" : "implicit client v6";
	policy_ftps();
	ctl_init(&c, family, CLIENT, 990, 41500);
	r = seg(&c, 1, SYN, NULL);
	CHECK_REASON(r, PH_R_PASS_POLICY, "our SYN to 990");
	CHECK(ctl_refs(&c) < 0, "our bare SYN counted");
	r = seg(&c, 0, SYN | ACK, NULL);
	CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "the server's SYN-ACK");
	CHECK(ctl_refs(&c) == 1 && counted(&c), "refs %d after the SYN-ACK",
	      ctl_refs(&c));
	r = seg(&c, 1, ACK, NULL);
	CHECK_REASON(r, PH_R_PASS_FLOW, "our ACK");
	CHECK(ctl_refs(&c) == 1, "refs %d after our ACK", ctl_refs(&c));

	r = syn_in(family, peer, local, 989, port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_LISTENER, "active data, no listener");
	fd = listen_on(family, port, NULL);
	r = syn_in(family, peer, local, 989, port);
	CHECK_REASON(r, PH_R_PASS_FTPS_RANGE, "active data from 989");
	r = syn_in(family, peer, local, 50000, port);
	CHECK_REASON(r, PH_R_PASS_FTPS_RANGE,
		     "active data from a port other than 20/989");
	ctl_fin(&c);
	CHECK(ctl_refs(&c) < 0, "FIN both ways left refs %d", ctl_refs(&c));
	close(fd);
}

/* The peer list applies before the FTPS checks. */
static void t_peer_set(void)
{
	struct ctl c;
	int r, fd = listen_on(4, SET_LO, NULL);

	tname = "ftps-range with peers";
	policy_ftps();
	ctl_init(&c, 4, SERVER, 990, 41600);
	if (!ctl_open(&c))
		return;
	r = syn_in(4, P4, L4, 43300, SET_LO);
	CHECK_REASON(r, PH_R_DROP_PEER, "session but not in the peer set");
	r = syn_in(4, T4, L4, 43301, SET_LO);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION, "in the set, no session");
	close(fd);
}

/* The socket lookup is confined to the test run's namespace: a listener
 * in the namespace we came from is not found. */
static void t_netns(int outside_fd, __u16 outside_port)
{
	struct ctl c;
	int r, fd;

	tname = "listener in another netns";
	policy_ftps();
	add_rule(F, 0, R_RANGE_NS, PH_L4_TCP, PH_PT_IN_DPORT, outside_port,
		 outside_port, PH_ACT_ALLOW,
		 PH_RF_PEER_ANY | PH_RF_FTPS_RANGE, 0);
	ctl_init(&c, 4, SERVER, 990, 41700);
	if (!ctl_open(&c))
		return;
	CHECK(outside_fd >= 0, "no listener outside");
	r = syn_in(4, P4, L4, 43400, outside_port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_LISTENER,
		     "a listener of another namespace was found");
	fd = listen_on(4, outside_port, NULL);
	r = syn_in(4, P4, L4, 43401, outside_port);
	CHECK_REASON(r, PH_R_PASS_FTPS_RANGE, "same port, our namespace");
	close(fd);
	r = syn_in(4, P4, L4, 43402, outside_port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_LISTENER, "after close()");
}

/* The lookup finds the established socket of the SYN's exact 4-tuple
 * before the listener: that is no listener. */
static void t_established(void)
{
	struct ph_ftps_peer_key pk;
	struct ph_ftps_peer v = { .refs = 1 };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	__u16 port = RANGE_LO + 8, cport;
	int lfd, cfd = -1, afd = -1, r;

	tname = "established 4-tuple";
	policy_ftps();
	addr16(4, "127.0.0.1", pk.remote);
	addr16(4, "127.0.0.1", pk.local);
	bpf_map_update_elem(F->ftps_peers, &pk, &v, BPF_ANY);
	lfd = listen_on(4, port, NULL);
	if (!CHECK(lo_up() == 0 && lfd >= 0, "loopback or listener: %s",
		   strerror(errno)))
		goto out;
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!CHECK(!connect(cfd, (struct sockaddr *)&sa, sizeof(sa)),
		   "connect: %s", strerror(errno)))
		goto out;
	afd = accept(lfd, NULL, NULL);
	getsockname(cfd, (struct sockaddr *)&sa, &len);
	cport = ntohs(sa.sin_port);
	r = syn_in(4, "127.0.0.1", "127.0.0.1", cport, port);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_LISTENER,
		     "SYN on an established 4-tuple");
	r = syn_in(4, "127.0.0.1", "127.0.0.1", cport + 1, port);
	CHECK_REASON(r, PH_R_PASS_FTPS_RANGE, "another source port");
out:
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
}

/* ftps_peers full: the session stays uncounted (fails closed). */
static void t_full(void)
{
	struct ph_ftps_peer_key k = {};
	struct ph_ftps_peer v = { .refs = 1 };
	struct ph_ftp_dp_stats st0, st;
	struct ctl c;
	int r, fd = listen_on(4, RANGE_LO + 7, NULL);
	__u32 i;

	tname = "ftps_peers full";
	policy_ftps();
	for (i = 0; i < PH_FTPS_PEERS_MAX; i++) {
		memcpy(k.remote, &i, sizeof(i));
		if (bpf_map_update_elem(F->ftps_peers, &k, &v, BPF_NOEXIST))
			break;
	}
	CHECK(i == PH_FTPS_PEERS_MAX, "filled %u entries", i);
	st0 = dp_stats();
	ctl_init(&c, 4, SERVER, 990, 41800);
	if (!ctl_open(&c))
		return;
	st = dp_stats();
	CHECK(st.ftps_full == st0.ftps_full + 1, "ftps_full not counted");
	CHECK(ctl_refs(&c) < 0 && !counted(&c) &&
		      !(flow_flags(&c.key) & PH_FF_FTPS_COUNTED),
	      "counted although the table is full");
	r = syn_in(4, P4, L4, 43500, RANGE_LO + 7);
	CHECK_REASON(r, PH_R_DROP_FTPS_NO_SESSION, "uncounted session");
	seg(&c, 1, RST | ACK, NULL);
	st = dp_stats();
	CHECK(st.ftps_released == st0.ftps_released,
	      "an uncounted session gave back");
	map_clear(F->ftps_peers);
	close(fd);
}

/* A control flow evicted without a close, then its 4-tuple reused: the
 * stale ftp_ctrl entry gives its count back, the new session takes one. */
static void t_stale(void)
{
	struct ctl c;

	tname = "evicted, 4-tuple reused";
	policy_ftps();
	ctl_init(&c, 4, SERVER, 990, 41900);
	if (!ctl_open(&c))
		return;
	bpf_map_delete_elem(F->flows, &c.key); /* as an LRU eviction */
	CHECK(ctl_refs(&c) == 1, "refs %d", ctl_refs(&c));
	ctl_init(&c, 4, SERVER, 990, 41900);
	c.cnxt += 100000;
	c.snxt += 100000;
	if (!ctl_open(&c))
		return;
	CHECK(ctl_refs(&c) == 1 && counted(&c),
	      "refs %d after the reuse, want 1", ctl_refs(&c));
}

/* An idle-expired control flow found by its next packet gives back. */
static void t_idle(void)
{
	struct ctl c;

	tname = "control idle expiry";
	policy_ftps();
	ctl_init(&c, 4, SERVER, 990, 42000);
	if (!ctl_open(&c))
		return;
	fx_advance(F, (PH_TCP_EST_TIMEOUT_S + 1) * NSEC);
	seg(&c, 1, ACK, NULL);
	CHECK(ctl_refs(&c) < 0, "refs %d after expiry", ctl_refs(&c));
}

/* ---- the tracker's reconciliation, against the real maps ---------------- */

static bool known_all; /* known(): the tracker knows every control flow */

static bool known(void *ctx, const struct ph_flow_key *k,
		  const struct ph_flow *f)
{
	(void)ctx;
	(void)k;
	(void)f;
	return known_all;
}

/* One pass; the flow table is always read (the tracker skips it only
 * when ftps_peers is empty and it knows no FTPS session). */
static int pass(struct ph_ftps_rec *rec)
{
	return ph_ftps_pass(rec, F->ftps_peers, F->flows, fx_now(), known,
			    NULL, true);
}

static void t_reconcile(void)
{
	struct ph_ftps_maps m = { .peers_fd = -1 };
	struct ph_ftps_rec *rec;
	struct ph_ftps_peer_key pk;
	struct ph_ftps_peer v = { .refs = 1 };
	struct ctl a, b, p;

	tname = "reconcile";
	policy_ftps();
	m.peers_fd = F->ftps_peers;
	rec = ph_ftps_rec_new(&ph_ftps_map_ops, &m);
	if (!CHECK(rec, "ph_ftps_rec_new"))
		return;
	ctl_init(&a, 4, SERVER, 990, 42100);
	ctl_init(&b, 4, SERVER, 990, 42101);
	if (!ctl_open(&a) || !ctl_open(&b))
		return;
	CHECK(pass(rec) == 0 && pass(rec) == 0 && ctl_refs(&a) == 2,
	      "consistent state corrected: refs %d", ctl_refs(&a));

	/* b's flow evicted: its count leaked. */
	bpf_map_delete_elem(F->flows, &b.key);
	CHECK(pass(rec) == 0, "corrected on the first sight");
	CHECK(pass(rec) == 1 && ctl_refs(&a) == 1, "leak not corrected: %d",
	      ctl_refs(&a));
	CHECK(pass(rec) == 0, "corrected again");

	/* The entry lost (a count lost in a race): re-created. */
	memcpy(pk.remote, a.key.remote, 16);
	memcpy(pk.local, a.key.local, 16);
	bpf_map_delete_elem(F->ftps_peers, &pk);
	pass(rec);
	CHECK(pass(rec) == 1 && ctl_refs(&a) == 1, "lost entry: refs %d",
	      ctl_refs(&a));

	/* An entry that moves between passes is left alone. */
	addr16(4, T4, pk.remote);
	v.last_ns = 1;
	bpf_map_update_elem(F->ftps_peers, &pk, &v, BPF_ANY);
	pass(rec);
	v.last_ns = 2;
	bpf_map_update_elem(F->ftps_peers, &pk, &v, BPF_ANY);
	CHECK(pass(rec) == 0 && refs_of(4, T4, L4) == 1,
	      "a changing entry was corrected");
	CHECK(pass(rec) == 1 && refs_of(4, T4, L4) < 0,
	      "a stale entry was not deleted");

	/* A plain control connection the tracker knows as FTPS (its 234
	 * the datapath missed) counts too. */
	ctl_init(&p, 4, SERVER, 21, 42102);
	p.peer = T4;
	addr16(4, T4, p.key.remote);
	if (!ctl_open(&p))
		return;
	known_all = true;
	pass(rec);
	CHECK(pass(rec) == 1 && refs_of(4, T4, L4) == 1,
	      "tracker-known FTPS session not counted: %d",
	      refs_of(4, T4, L4));
	known_all = false;

	/* Idle beyond the TCP timeout: not live any more. */
	fx_advance(F, (PH_TCP_EST_TIMEOUT_S + 10) * NSEC);
	pass(rec);
	CHECK(pass(rec) == 2 && map_count(F->ftps_peers) == 0,
	      "idle sessions still counted: %d entries",
	      map_count(F->ftps_peers));
	CHECK(ph_ftps_fixed(rec) == 6, "%llu corrections, want 6",
	      (unsigned long long)ph_ftps_fixed(rec));
	ph_ftps_rec_free(rec);
}

static void prog_insns(void)
{
	struct bpf_program *p[2] = { F->x->progs.pinhole_xdp,
				     F->t->progs.pinhole_tc };

	for (int i = 0; i < 2; i++) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (bpf_obj_get_info_by_fd(bpf_program__fd(p[i]), &info, &len))
			continue;
		printf("%s: %u verified insns, %u xlated\n",
		       bpf_program__name(p[i]), info.verified_insns,
		       info.xlated_prog_len / 8);
	}
}

int main(void)
{
	struct fx_opts o = { .name = "ftps", .track_ftp = true };
	__u16 outside_port = 0;
	int outside_fd, rc = fx_init("ph-ftps");

	if (rc)
		return rc;
	/* A listener where we come from, then a namespace of our own. */
	outside_fd = listen_on(4, 0, &outside_port);
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 1;
	}
	F = fx_create(&o);
	if (!F)
		return 1;
	prog_insns();

	t_no_session();
	t_bare_syn();
	t_implicit_server(4);
	t_implicit_server(6);
	t_two_sessions();
	t_explicit(SERVER);
	t_explicit(CLIENT);
	t_implicit_client(4);
	t_implicit_client(6);
	t_peer_set();
	t_netns(outside_fd, outside_port);
	t_established();
	t_full();
	t_stale();
	t_idle();
	t_reconcile();

	tname = "coverage";
	CHECK(F->seen[PH_R_PASS_FTPS_RANGE] && F->seen[PH_R_DROP_FTPS_NO_LISTENER] &&
		      F->seen[PH_R_DROP_FTPS_NO_SESSION],
	      "an FTPS reason was never seen");
	close(outside_fd);
	fx_check_slots();
	if (failures) {
		printf("FAILED: %d of %d checks\n", failures, checks);
		return 1;
	}
	printf("OK: %d checks\n", checks);
	return 0;
}
