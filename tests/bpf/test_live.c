// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Attaching to a live host (docs/datapath.md): socket pickup and the RST
 * sequence window, through BPF_PROG_TEST_RUN on both programs.
 *
 * The test moves itself into a network namespace of its own and opens real
 * TCP and UDP sockets on its loopback: the XDP and TC test runs look up
 * sockets in the caller's namespace, so the datapath's bpf_skc_lookup_tcp()
 * and bpf_sk_lookup_udp() see exactly these. The policy drops everything,
 * so any packet that passes without a table entry passed by pickup.
 *
 * Needs root (exit 77 otherwise). Maps are pinned under a private
 * /sys/fs/bpf/ph-live-<pid>, removed at exit.
 */
#include "bpf/fixture.h"
#include "bpf/sock.h"
#include "bpf/ctl.h"

static struct fx *F;
static const char *tname = "";

#define CHECK(cond, ...) ASSERT(cond, tname, __VA_ARGS__)
#define CHECK_REASON(got, want, what)                                          \
	CHECK((got) == (want), "%s: %s, want %s", what, fx_rname(got),        \
	      fx_rname(want))

/* Nothing is allowed in or out (echo neither), except inbound FTP control
 * on 21 (tracked) for the FTP case. */
static void policy_closed(void)
{
	fx_reset(F);
	set_meta(F, 0, PH_ACT_DROP, PH_ACT_DROP, PH_ACT_DROP, PH_ACT_DROP);
	add_rule(F, 0, 0, PH_L4_TCP, PH_PT_IN_DPORT, 21, 21, PH_ACT_ALLOW,
		 PH_RF_PEER_ANY | PH_RF_FTP_TRACK, 0);
}

static const char *lo_of(int family)
{
	return family == 4 ? "127.0.0.1" : "::1";
}

/* A segment between two loopback ports, with its sequence numbers. */
static struct pkt_spec tcp_seg(int family, __u16 sport, __u16 dport,
			       __u8 flags, __u32 seq, __u32 ack, int payload)
{
	struct pkt_spec p = {
		.family = family, .src = lo_of(family), .dst = lo_of(family),
		.proto = IPPROTO_TCP, .sport = sport, .dport = dport,
		.flags = flags, .set_seq = 1, .seq = seq, .ack = ack,
		.payload = payload,
	};

	return p;
}

static struct pkt_spec udp_dgram(int family, __u16 sport, __u16 dport)
{
	struct pkt_spec p = {
		.family = family, .src = lo_of(family), .dst = lo_of(family),
		.proto = IPPROTO_UDP, .sport = sport, .dport = dport,
		.payload = 32,
	};

	return p;
}

static int run(int dir, struct pkt_spec p)
{
	return fx_run_spec(F, dir, &p, tname);
}

/* The flow of packet @p seen in @dir; false if there is none. */
static bool flow_of(const struct pkt_spec *p, int dir, struct ph_flow *v)
{
	struct ph_flow_key k;

	key_of(p, dir, &k);
	return !bpf_map_lookup_elem(F->flows, &k, v);
}

static void flow_forget(const struct pkt_spec *p, int dir)
{
	struct ph_flow_key k;

	key_of(p, dir, &k);
	bpf_map_delete_elem(F->flows, &k);
}

/* A connected TCP pair on loopback: *c the connecting end (the "host
 * opened it" side), *a the accepted one; their ports. */
static bool tcp_pair(int family, int *c, int *a, __u16 *cport, __u16 *aport)
{
	struct sockaddr_storage ss;
	int lfd = listen_on(family, 0, aport);
	socklen_t len;

	*c = *a = -1;
	if (lfd < 0)
		return false;
	*c = socket(family == 4 ? AF_INET : AF_INET6,
		    SOCK_STREAM | SOCK_CLOEXEC, 0);
	len = sock_addr(family, *aport, 1, &ss);
	if (*c < 0 || connect(*c, (struct sockaddr *)&ss, len)) {
		close(lfd);
		return false;
	}
	*a = accept(lfd, NULL, NULL);
	close(lfd); /* no listener left: only the pair answers */
	*cport = sock_port(*c);
	return *a >= 0;
}

static void close_abort(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (fd < 0)
		return;
	/* No FIN, no TIME_WAIT: the kernel forgets the connection at once. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

#define S0 0x10000000u /* sequence numbers of the crafted segments */
#define A0 0x50000000u

/* TCP: a connection the kernel holds is picked up from either hook,
 * a bare SYN on its tuple is not, nor are listeners or other tuples. */
static void t_tcp(int family)
{
	int c, a, r, l;
	__u16 cport, aport;
	struct ph_flow v;
	struct pkt_spec reply, out;

	tname = family == 4 ? "tcp pickup v4" : "tcp pickup v6";
	policy_closed();
	if (!CHECK(tcp_pair(family, &c, &a, &cport, &aport),
		   "tcp pair: %s", strerror(errno)))
		goto out;
	/* The peer's segment to the connecting end, and the reverse. */
	reply = tcp_seg(family, aport, cport, ACK, S0, A0, 100);
	out = tcp_seg(family, cport, aport, ACK, A0, S0 + 100, 0);

	r = run(IN, tcp_seg(family, aport, cport, SYN, S0, 0, 0));
	CHECK_REASON(r, PH_R_DROP_POLICY, "bare SYN on the tuple");
	CHECK(map_count(F->flows) == 0 && map_count(F->half_open) == 0,
	      "a bare SYN made state");

	r = run(IN, reply);
	CHECK_REASON(r, PH_R_PASS_SOCKET, "inbound segment, no flow");
	if (CHECK(flow_of(&reply, IN, &v), "no flow after pickup"))
		CHECK(v.origin == PH_FO_SOCKET && v.state == PH_FS_ESTABLISHED &&
			      v.flags == 0 && v.rule == 0 && v.seq_ok &&
			      v.seq_in == S0 + 100 && !v.ack_ok,
		      "picked-up flow: origin %u state %u flags %#x rule %u "
		      "seq %u/%#x ack %u", v.origin, v.state, v.flags, v.rule,
		      v.seq_ok, v.seq_in, v.ack_ok);
	r = run(IN, reply);
	CHECK_REASON(r, PH_R_PASS_FLOW, "the next segment");
	r = run(OUT, out);
	CHECK_REASON(r, PH_R_PASS_FLOW, "our segment");
	CHECK(flow_of(&out, OUT, &v) && v.ack_ok && v.ack_out == S0 + 100,
	      "ack_out %#x (ok %u)", v.ack_out, v.ack_ok);

	/* Egress picks up too: a flow lost (evicted, re-attached). */
	flow_forget(&out, OUT);
	r = run(OUT, out);
	CHECK_REASON(r, PH_R_PASS_SOCKET, "outbound segment, no flow");
	CHECK(flow_of(&out, OUT, &v) && v.origin == PH_FO_SOCKET &&
		      v.ack_ok && v.ack_out == S0 + 100 && !v.seq_ok,
	      "egress pickup: origin %u ack %u/%#x seq_ok %u", v.origin,
	      v.ack_ok, v.ack_out, v.seq_ok);

	/* The accepted end is a connection too (an inbound one). */
	r = run(IN, tcp_seg(family, cport, aport, ACK, A0, S0, 0));
	CHECK_REASON(r, PH_R_PASS_SOCKET, "segment to the accepted end");
	/* Where a rule admits the packet, the flow keeps its rule and
	 * service (its counters go on counting the connection). */
	{
		struct pkt_spec acc = tcp_seg(family, cport, aport, ACK, A0,
					      S0, 0);
		struct ph_rule rl;
		__u32 ri = 1;

		add_rule(F, 0, 1, PH_L4_TCP, PH_PT_IN_DPORT, aport, aport,
			 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
		bpf_map_lookup_elem(F->rules, &ri, &rl);
		rl.svc_id = 7;
		bpf_map_update_elem(F->rules, &ri, &rl, BPF_ANY);
		flow_forget(&acc, IN);
		r = run(IN, acc);
		CHECK_REASON(r, PH_R_PASS_SOCKET, "admitted segment, no flow");
		CHECK(flow_of(&acc, IN, &v) && v.origin == PH_FO_SOCKET &&
			      v.rule == 2 && v.svc_id == 7,
		      "admitted pickup: origin %u rule %u svc %u", v.origin,
		      v.rule, v.svc_id);
		policy_closed();
	}

	/* A RST without a flow: the kernel holds the connection and checks
	 * the RST itself; no flow is made from it. */
	flow_forget(&reply, IN);
	r = run(IN, tcp_seg(family, aport, cport, RST | ACK, S0 + 5, 0, 0));
	CHECK_REASON(r, PH_R_PASS_SOCKET, "RST, no flow");
	CHECK(!flow_of(&reply, IN, &v), "a RST made a flow");

	/* No socket of this tuple: another port, the policy decides. */
	l = map_count(F->flows);
	r = run(IN, tcp_seg(family, aport, 1, ACK, S0, A0, 0));
	CHECK_REASON(r, PH_R_DROP_POLICY, "segment to a port with no socket");
	/* A listener is no connection (nor would a request socket be). */
	{
		__u16 lp;
		int lfd = listen_on(family, 0, &lp);

		r = run(IN, tcp_seg(family, 40000, lp, ACK, S0, A0, 0));
		CHECK_REASON(r, PH_R_DROP_POLICY, "ACK to a listener");
		if (lfd >= 0)
			close(lfd);
	}
	CHECK(map_count(F->flows) == l, "flows grew to %d from %d",
	      map_count(F->flows), l);

	/* A FIN picked up counts as seen. */
	map_clear(F->flows);
	r = run(IN, tcp_seg(family, aport, cport, FIN | ACK, S0, A0, 0));
	CHECK_REASON(r, PH_R_PASS_SOCKET, "FIN, no flow");
	CHECK(flow_of(&reply, IN, &v) && v.state == PH_FS_ESTABLISHED &&
		      v.flags == PH_FF_FIN_IN,
	      "FIN picked up: state %u flags %#x", v.state, v.flags);

	/* Closing states: the FINs the socket has seen go into the flow. */
	shutdown(c, SHUT_WR); /* c: FIN_WAIT2, a: CLOSE_WAIT */
	usleep(20000);
	map_clear(F->flows);
	r = run(IN, reply);
	CHECK_REASON(r, PH_R_PASS_SOCKET, "half-closed, our FIN out");
	CHECK(flow_of(&reply, IN, &v) && v.state == PH_FS_ESTABLISHED &&
		      v.flags == PH_FF_FIN_OUT,
	      "FIN_WAIT2: state %u flags %#x", v.state, v.flags);
	r = run(IN, tcp_seg(family, cport, aport, ACK, A0, S0, 0));
	CHECK_REASON(r, PH_R_PASS_SOCKET, "half-closed, their FIN in");
	{
		struct pkt_spec acc = tcp_seg(family, cport, aport, ACK, A0,
					      S0, 0);

		CHECK(flow_of(&acc, IN, &v) && v.flags == PH_FF_FIN_IN,
		      "CLOSE_WAIT: flags %#x", v.flags);
	}
	close(a); /* a: LAST_ACK, then gone; c: TIME_WAIT */
	a = -1;
	usleep(20000);
	map_clear(F->flows);
	r = run(IN, reply);
	CHECK_REASON(r, PH_R_PASS_SOCKET, "TIME_WAIT");
	CHECK(flow_of(&reply, IN, &v) && v.state == PH_FS_CLOSING &&
		      v.flags == (PH_FF_FIN_IN | PH_FF_FIN_OUT),
	      "TIME_WAIT: state %u flags %#x", v.state, v.flags);
	close(c);
	c = -1;

	/* Once the kernel has forgotten a connection, so does the pickup. */
	if (!CHECK(tcp_pair(family, &c, &a, &cport, &aport), "second pair"))
		goto out;
	close_abort(c);
	close_abort(a);
	c = a = -1;
	map_clear(F->flows);
	r = run(IN, tcp_seg(family, aport, cport, ACK, S0, A0, 10));
	CHECK_REASON(r, PH_R_DROP_POLICY, "segment of an aborted connection");
	CHECK(map_count(F->flows) == 0, "flows not empty");
out:
	if (c >= 0)
		close(c);
	if (a >= 0)
		close(a);
}

/* UDP: only a connected socket whose peer is exactly the datagram's
 * source is picked up; a bound (server) socket is not. */
static void t_udp(int family)
{
	int af = family == 4 ? AF_INET : AF_INET6;
	int u1 = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int u2 = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int u3 = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_storage ss;
	__u16 p1, p2, p3;
	struct ph_flow v;
	struct pkt_spec in;
	socklen_t len;
	int r;

	tname = family == 4 ? "udp pickup v4" : "udp pickup v6";
	policy_closed();
	len = sock_addr(family, 0, 1, &ss);
	if (!CHECK(u1 >= 0 && u2 >= 0 && u3 >= 0 &&
			   !bind(u1, (struct sockaddr *)&ss, len) &&
			   !bind(u2, (struct sockaddr *)&ss, len) &&
			   !bind(u3, (struct sockaddr *)&ss, len),
		   "udp sockets: %s", strerror(errno)))
		goto out;
	p1 = sock_port(u1);
	p2 = sock_port(u2);
	p3 = sock_port(u3);
	/* u1 connected to u2's port; u2 bound only; u3 connected to port 0
	 * (the kernel then takes any source port of that address). */
	len = sock_addr(family, p2, 1, &ss);
	if (!CHECK(!connect(u1, (struct sockaddr *)&ss, len), "connect: %s",
		   strerror(errno)))
		goto out;
	len = sock_addr(family, 0, 1, &ss);
	if (!CHECK(!connect(u3, (struct sockaddr *)&ss, len),
		   "connect to port 0: %s", strerror(errno)))
		goto out;

	in = udp_dgram(family, p2, p1);
	r = run(IN, in);
	CHECK_REASON(r, PH_R_PASS_SOCKET, "datagram from the connected peer");
	CHECK(flow_of(&in, IN, &v) && v.origin == PH_FO_SOCKET &&
		      v.state == PH_FS_ESTABLISHED,
	      "udp pickup flow: origin %u state %u", v.origin, v.state);
	r = run(IN, in);
	CHECK_REASON(r, PH_R_PASS_FLOW, "the next datagram");

	r = run(IN, udp_dgram(family, p2 == 65535 ? 1 : p2 + 1, p1));
	CHECK_REASON(r, PH_R_DROP_POLICY, "datagram from another port");
	r = run(IN, udp_dgram(family, p1, p2));
	CHECK_REASON(r, PH_R_DROP_POLICY, "datagram to a bound socket");
	r = run(IN, udp_dgram(family, 4242, p3));
	CHECK_REASON(r, PH_R_DROP_POLICY,
		     "datagram to a socket connected to port 0");

	flow_forget(&in, IN);
	r = run(OUT, udp_dgram(family, p1, p2));
	CHECK_REASON(r, PH_R_PASS_SOCKET, "our datagram, connected socket");
	r = run(IN, in);
	CHECK_REASON(r, PH_R_PASS_FLOW, "its reply");
	r = run(OUT, udp_dgram(family, p2, p1));
	CHECK_REASON(r, PH_R_DROP_POLICY, "our datagram from a bound socket");
	CHECK(map_count(F->flows) == 1, "flows: %d, want 1",
	      map_count(F->flows));
out:
	if (u1 >= 0)
		close(u1);
	if (u2 >= 0)
		close(u2);
	if (u3 >= 0)
		close(u3);
}

/*
 * The handshake of a connection this host opens from local port @lport to
 * @s->dport, both segments specs updated to the port: our SYN (ISN @isn),
 * the peer's SYN-ACK (ISN @risn), and with @ack our ACK. Each checked.
 */
static void open_out(struct pkt_spec *s, struct pkt_spec *in, __u16 lport,
		     __u32 isn, __u32 risn, bool ack)
{
	s->sport = in->dport = lport;
	s->flags = SYN, s->seq = isn, s->ack = 0;
	CHECK_REASON(run(OUT, *s), PH_R_PASS_DEFAULT, "SYN out");
	in->flags = SYN | ACK, in->seq = risn, in->ack = isn + 1;
	in->payload = 0;
	CHECK_REASON(run(IN, *in), PH_R_PASS_HALF_OPEN, "SYN-ACK in");
	if (!ack)
		return;
	s->flags = ACK, s->seq = isn + 1, s->ack = risn + 1;
	CHECK_REASON(run(OUT, *s), PH_R_PASS_FLOW, "ACK out");
}

/* A flow from a handshake seeds its samples; inbound RSTs end it only
 * inside the window; the samples move once per step; a forged segment far
 * ahead does not move them; outbound RSTs always end the flow. No sockets
 * here: the addresses are not this namespace's. */
static void t_rst_window(int family)
{
	const char *l = family == 4 ? L4 : L6, *p = family == 4 ? P4 : P6;
	__u32 isn = 0x7ffff000u, risn = 0xfffff000u; /* both wrap */
	struct pkt_spec s = {
		.family = family, .src = l, .dst = p, .proto = IPPROTO_TCP,
		.dport = 443, .set_seq = 1,
	};
	struct pkt_spec in = s;
	struct ph_flow v;
	__u32 rcv;

	tname = family == 4 ? "rst window v4" : "rst window v6";
	policy_closed();
	set_meta(F, 0, PH_ACT_DROP, PH_ACT_ALLOW, PH_ACT_DROP, PH_ACT_DROP);
	in.src = p;
	in.dst = l;
	in.sport = 443;

#define OUTSEG(fl, sq, ak) (s.flags = (fl), s.seq = (sq), s.ack = (ak), run(OUT, s))
#define INSEG(fl, sq, ak, n)                                                   \
	(in.flags = (fl), in.seq = (sq), in.ack = (ak), in.payload = (n),     \
	 run(IN, in))

	open_out(&s, &in, 43000, isn, risn, false);
	rcv = risn + 1;
	CHECK(flow_of(&in, IN, &v) && v.seq_ok && v.seq_in == rcv &&
		      !v.ack_ok,
	      "after the SYN-ACK: seq %u/%#x ack_ok %u", v.seq_ok, v.seq_in,
	      v.ack_ok);
	CHECK_REASON(OUTSEG(ACK, isn + 1, rcv), PH_R_PASS_FLOW, "ACK out");
	CHECK(flow_of(&in, IN, &v) && v.ack_ok && v.ack_out == rcv,
	      "ack_out %#x", v.ack_out);

	/* Data below the step: the samples are not rewritten. */
	CHECK_REASON(INSEG(ACK, rcv, isn + 1, 1000), PH_R_PASS_FLOW, "data");
	rcv += 1000;
	CHECK_REASON(OUTSEG(ACK, isn + 1, rcv), PH_R_PASS_FLOW, "its ACK");
	CHECK(flow_of(&in, IN, &v) && v.seq_in == risn + 1 &&
		      v.ack_out == risn + 1,
	      "moved below the step: %#x %#x", v.seq_in, v.ack_out);
	/* 70000 bytes later (the sender's segments we saw): rewritten. */
	rcv += 70000;
	CHECK_REASON(INSEG(ACK, rcv - 1000, isn + 1, 1000), PH_R_PASS_FLOW,
		     "data past the step");
	CHECK_REASON(OUTSEG(ACK, isn + 1, rcv), PH_R_PASS_FLOW, "its ACK");
	CHECK(flow_of(&in, IN, &v) && v.seq_in == rcv && v.ack_out == rcv,
	      "past the step: %#x %#x, want %#x", v.seq_in, v.ack_out, rcv);

	/* A forged segment 2^31 ahead passes (the kernel drops it) but
	 * moves nothing. */
	CHECK_REASON(INSEG(ACK, rcv + 0x80000000u, isn + 1, 10),
		     PH_R_PASS_FLOW, "forged segment far ahead");
	CHECK(flow_of(&in, IN, &v) && v.seq_in == rcv, "seq_in moved: %#x",
	      v.seq_in);

	/* Blind RSTs: far off, just below the window, just above it. */
	CHECK_REASON(INSEG(RST, rcv + 0x80000000u, 0, 0),
		     PH_R_DROP_RST_WINDOW, "RST 2^31 off");
	CHECK_REASON(INSEG(RST | ACK, rcv - 2, isn + 1, 0),
		     PH_R_DROP_RST_WINDOW, "RST below the acknowledged");
	CHECK_REASON(INSEG(RST, rcv + PH_SEQ_STEP + 1, 0, 0),
		     PH_R_DROP_RST_WINDOW, "RST past the window");
	CHECK(flow_of(&in, IN, &v), "a blind RST ended the flow");

	/* In the window: ends it (rcv_nxt - 1, which Linux takes in some
	 * closing states, included). */
	CHECK_REASON(INSEG(RST, rcv - 1, 0, 0), PH_R_PASS_FLOW,
		     "RST at rcv_nxt - 1");
	CHECK(!flow_of(&in, IN, &v), "an in-window RST left the flow");

	/* Again, for a RST at the exact next number and one ahead of it. */
	open_out(&s, &in, 43001, isn, risn, true);
	CHECK_REASON(INSEG(RST | ACK, risn + 1, isn + 1, 0), PH_R_PASS_FLOW,
		     "RST at rcv_nxt");
	CHECK(!flow_of(&in, IN, &v), "RST at rcv_nxt left the flow");
	open_out(&s, &in, 43002, isn, risn, true);
	CHECK_REASON(INSEG(RST, risn + 1 + 30000, 0, 0), PH_R_PASS_FLOW,
		     "RST inside the window, ahead of rcv_nxt");
	/* Ours always ends it: the host's kernel decided. */
	open_out(&s, &in, 43003, isn, risn, false);
	CHECK_REASON(OUTSEG(RST | ACK, isn + 0x40000000u, 0), PH_R_PASS_FLOW,
		     "our RST");
	CHECK(!flow_of(&in, IN, &v), "our RST left the flow");
#undef OUTSEG
#undef INSEG
}

/* A tracked FTP control connection: a blind RST is dropped and leaves
 * the session alone; an in-window one closes both. */
static void t_rst_ftp(void)
{
	__u32 c = 0x01000000u, sv = 0x02000000u;
	struct ctl k;
	struct pkt_spec p;
	struct ph_ftp_ctrl fc;
	int r;

	tname = "rst window ftp control";
	policy_closed();
	ctl_setup(&k, 4, SERVER, 21, 44000, c, sv);
	p = ctl_spec(&k, 1, SYN, c, 0, NULL, 0);
	CHECK_REASON(run(IN, p), PH_R_PASS_POLICY, "control SYN");
	p = ctl_spec(&k, 0, SYN | ACK, sv, c + 1, NULL, 0);
	CHECK_REASON(run(OUT, p), PH_R_PASS_HALF_OPEN, "control SYN-ACK");
	p = ctl_spec(&k, 1, ACK, c + 1, sv + 1, NULL, 0);
	CHECK_REASON(run(IN, p), PH_R_PASS_HALF_OPEN, "control ACK");
	CHECK(!bpf_map_lookup_elem(F->ftp_ctrl, &k.key, &fc),
	      "no ftp_ctrl entry after the handshake");
	p = ctl_spec(&k, 0, ACK | PSH, sv + 1, c + 1, "220 hi\r\n", 8);
	CHECK_REASON(run(OUT, p), PH_R_PASS_FLOW, "banner");

	p = ctl_spec(&k, 1, RST, c + 1 + 0x40000000u, 0, NULL, 0);
	r = run(IN, p);
	CHECK_REASON(r, PH_R_DROP_RST_WINDOW, "blind RST");
	CHECK(!bpf_map_lookup_elem(F->ftp_ctrl, &k.key, &fc),
	      "a blind RST ended the FTP session");
	p = ctl_spec(&k, 1, RST, c + 1, 0, NULL, 0);
	CHECK_REASON(run(IN, p), PH_R_PASS_FLOW, "in-window RST");
	CHECK(bpf_map_lookup_elem(F->ftp_ctrl, &k.key, &fc),
	      "the in-window RST left the FTP session");
}

int main(void)
{
	struct fx_opts o = { .name = "live", .track_ftp = true };
	int rc = fx_init("ph-live");

	if (rc)
		return rc;
	if (unshare(CLONE_NEWNET) || lo_up()) {
		fprintf(stderr, "own network namespace: %s\n", strerror(errno));
		return 1;
	}
	F = fx_create(&o);
	if (!F)
		return 1;

	t_tcp(4);
	t_tcp(6);
	t_udp(4);
	t_udp(6);
	t_rst_window(4);
	t_rst_window(6);
	t_rst_ftp();

	tname = "coverage";
	CHECK(F->seen[PH_R_PASS_SOCKET] && F->seen[PH_R_DROP_RST_WINDOW],
	      "pass_socket or drop_rst_window never seen");
	fx_check_slots();
	if (failures) {
		printf("FAILED: %d of %d checks\n", failures, checks);
		return 1;
	}
	printf("OK: %d checks\n", checks);
	return 0;
}
