// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Observability in the datapath, through BPF_PROG_TEST_RUN on both
 * programs: service counters (svc_counters, by the rule's svc_id, carried
 * by half_open and flows entries to later packets of the connection),
 * interface slots of `counters` (XDP ingress_ifindex / skb ifindex), and
 * the monitor ring (events only while monitor_ctl is on and its lease
 * runs, drops sampled by the per-CPU token bucket, the lease clearing
 * itself).
 *
 * The test moves into a network namespace of its own and adds a veth pair
 * there (a second ifindex for the interface slots). It pins itself
 * to one CPU: the drop sampler is per CPU. Needs root (exit 77 otherwise).
 */
#include <sched.h>
#include <net/if.h>
#include "bpf/fixture.h"
#include "counters.h" /* user/counters.c: the service counter ids */

#define CLI "198.51.100.7"
#define SRV "192.0.2.1"
#define CLI6 "2001:db8:1::7"
#define SRV6 "2001:db8::1"

enum { R_WEB, R_DENY, R_OUT };
#define SVC_WEB 5
#define SVC_DENY 7
#define SVC_OUT 9

static struct fx *F;
static const char *tname = "";
static int svc_counters, monitor_ctl, monitor_rb;

#define CHECK(cond, ...) ASSERT(cond, tname, __VA_ARGS__)

/* svc_counters[dir][drop][id] summed over CPUs */
static struct ph_counter svc(int dir, int drop, int id)
{
	struct ph_counter vals[F->ncpus], sum = {};
	__u32 k = PH_SVC_IDX(dir, drop, id);

	if (!bpf_map_lookup_elem(svc_counters, &k, vals))
		for (int c = 0; c < F->ncpus; c++) {
			sum.packets += vals[c].packets;
			sum.bytes += vals[c].bytes;
		}
	return sum;
}

static __u64 svc_all(void)
{
	__u64 n = 0;

	for (int d = 0; d < PH_DIR_MAX; d++)
		for (int drop = 0; drop < 2; drop++)
			for (int id = 0; id < 16; id++)
				n += svc(d, drop, id).packets;
	return n;
}

/* counters of one interface slot, one reason */
static __u64 slot_count(__u32 slot, int dir, int reason)
{
	struct ph_counter vals[F->ncpus];
	__u32 k = PH_COUNTER_IF_IDX(slot, dir, reason);
	__u64 n = 0;

	if (!bpf_map_lookup_elem(F->counters, &k, vals))
		for (int c = 0; c < F->ncpus; c++)
			n += vals[c].packets;
	return n;
}

/* Runs @p in @dir on device @ifindex (0: the test run's default). */
static int run(int dir, const struct pkt_spec *p, int ifindex, int *len_out)
{
	__u8 buf[PKT_MAX];
	int len = pkt_build(p, buf), err;
	/* with a context, the frame is [data, data_end) of it */
	struct xdp_md xctx = { .data_end = (__u32)len,
			       .ingress_ifindex = (__u32)ifindex };
	struct __sk_buff sctx = { .ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf, .data_size_in = len,
		    .repeat = 1);

	if (ifindex && dir == IN) {
		o.ctx_in = &xctx;
		o.ctx_size_in = sizeof(xctx);
	} else if (ifindex) {
		o.ctx_in = &sctx;
		o.ctx_size_in = sizeof(sctx);
	}
	err = bpf_prog_test_run_opts(
		bpf_program__fd(dir == IN ? F->x->progs.pinhole_xdp :
					    F->t->progs.pinhole_tc),
		&o);
	if (len_out)
		*len_out = len;
	if (err)
		fail(tname, "test run: %s", strerror(errno));
	return err ? -1 : (int)o.retval;
}

static void set_rule_svc(__u16 idx, __u16 svc_id)
{
	__u32 ri = idx; /* slot 0 */
	struct ph_rule r;

	if (!bpf_map_lookup_elem(F->rules, &ri, &r)) {
		r.svc_id = svc_id;
		bpf_map_update_elem(F->rules, &ri, &r, BPF_ANY);
	}
}

static void policy(void)
{
	fx_reset(F);
	set_meta(F, 0, PH_ACT_DROP, PH_ACT_ALLOW, 0, 0);
	add_rule(F, 0, R_WEB, PH_L4_TCP, PH_PT_IN_DPORT, 8080, 8080,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
	add_rule(F, 0, R_DENY, PH_L4_TCP, PH_PT_IN_DPORT, 9000, 9000,
		 PH_ACT_DROP, PH_RF_PEER_ANY, 0);
	add_rule(F, 0, R_OUT, PH_L4_UDP, PH_PT_OUT_DPORT, 53, 53,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY, 0);
	set_rule_svc(R_WEB, SVC_WEB);
	set_rule_svc(R_DENY, SVC_DENY);
	set_rule_svc(R_OUT, SVC_OUT);
}

/* A whole inbound connection to web: every packet, both ways, on web. */
static void t_service_connection(int family)
{
	const char *c = family == 4 ? CLI : CLI6, *s = family == 4 ? SRV : SRV6;
	struct pkt_spec syn = TCP4(c, s, 40000, 8080, SYN),
			synack = TCP4(s, c, 8080, 40000, SYN | ACK),
			ack = TCP4(c, s, 40000, 8080, ACK),
			data = TCP4(c, s, 40000, 8080, ACK | PSH, .payload = 100),
			reply = TCP4(s, c, 8080, 40000, ACK | PSH, .payload = 300);
	struct ph_counter in0 = svc(IN, 0, SVC_WEB), out0 = svc(OUT, 0, SVC_WEB);
	struct ph_counter in1, out1;
	int l1, l2, l3, l4, l5;

	tname = family == 4 ? "web connection (IPv4)" : "web connection (IPv6)";
	syn.family = synack.family = ack.family = data.family = reply.family =
		family;
	policy();
	CHECK(run(IN, &syn, 0, &l1) == XDP_PASS, "SYN dropped");
	CHECK(run(OUT, &synack, 0, &l2) == TC_ACT_OK, "SYN-ACK dropped");
	CHECK(run(IN, &ack, 0, &l3) == XDP_PASS, "ACK dropped");
	CHECK(map_count(F->flows) == 1, "no flow after the handshake");
	CHECK(run(IN, &data, 0, &l4) == XDP_PASS, "data dropped");
	CHECK(run(OUT, &reply, 0, &l5) == TC_ACT_OK, "reply dropped");
	in1 = svc(IN, 0, SVC_WEB);
	out1 = svc(OUT, 0, SVC_WEB);
	/* pass_policy (SYN), pass_half_open (ACK), pass_flow (data) */
	CHECK(in1.packets - in0.packets == 3, "web in +%llu, want +3",
	      (unsigned long long)(in1.packets - in0.packets));
	CHECK(in1.bytes - in0.bytes == (__u64)(l1 + l3 + l4),
	      "web in bytes +%llu, want %d",
	      (unsigned long long)(in1.bytes - in0.bytes), l1 + l3 + l4);
	/* pass_half_open (SYN-ACK), pass_flow (reply) */
	CHECK(out1.packets - out0.packets == 2, "web out +%llu, want +2",
	      (unsigned long long)(out1.packets - out0.packets));
	CHECK(out1.bytes - out0.bytes == (__u64)(l2 + l5),
	      "web out bytes +%llu, want %d",
	      (unsigned long long)(out1.bytes - out0.bytes), l2 + l5);
}

/* Drops by a rule count on its service as drops; no rule, no service. */
static void t_service_drops(void)
{
	struct pkt_spec deny = TCP4(CLI, SRV, 40001, 9000, SYN),
			none = TCP4(CLI, SRV, 40002, 7000, SYN),
			udp = UDP4(SRV, CLI, 5353, 53);
	__u64 all0, all1;
	struct ph_counter d0 = svc(IN, 1, SVC_DENY), d1, o0, o1;

	tname = "service drops";
	policy();
	CHECK(run(IN, &deny, 0, NULL) == XDP_DROP, "deny rule passed");
	d1 = svc(IN, 1, SVC_DENY);
	CHECK(d1.packets - d0.packets == 1, "deny: drop +%llu, want +1",
	      (unsigned long long)(d1.packets - d0.packets));
	CHECK(svc(IN, 0, SVC_DENY).packets == 0, "deny counted as a pass");
	all0 = svc_all();
	CHECK(run(IN, &none, 0, NULL) == XDP_DROP, "no rule passed");
	all1 = svc_all();
	CHECK(all1 == all0, "a packet no rule met moved a service counter");
	o0 = svc(OUT, 0, SVC_OUT);
	CHECK(run(OUT, &udp, 0, NULL) == TC_ACT_OK, "outbound UDP dropped");
	o1 = svc(OUT, 0, SVC_OUT);
	CHECK(o1.packets - o0.packets == 1, "outbound rule: +%llu, want +1",
	      (unsigned long long)(o1.packets - o0.packets));
}

/* Each device's packets land in its slot, and only there. */
static void t_iface_slots(int dummy)
{
	struct pkt_spec p = TCP4(CLI, SRV, 40003, 7000, SYN),
			q = UDP4(SRV, CLI, 5353, 53);
	__u32 s1 = PH_IFACE_SLOT(1), s2 = PH_IFACE_SLOT(dummy);
	__u64 a0 = slot_count(s1, IN, PH_R_DROP_POLICY),
	      b0 = slot_count(s2, IN, PH_R_DROP_POLICY),
	      c0 = slot_count(s2, OUT, PH_R_PASS_POLICY),
	      e0 = slot_count(s1, OUT, PH_R_PASS_POLICY);

	tname = "interface slots";
	policy();
	CHECK(s1 != s2, "lo and the dummy share a slot");
	run(IN, &p, 1, NULL);
	run(IN, &p, dummy, NULL);
	run(IN, &p, dummy, NULL);
	run(OUT, &q, dummy, NULL);
	CHECK(slot_count(s1, IN, PH_R_DROP_POLICY) - a0 == 1,
	      "lo slot: +%llu drop_policy, want +1",
	      (unsigned long long)(slot_count(s1, IN, PH_R_DROP_POLICY) - a0));
	CHECK(slot_count(s2, IN, PH_R_DROP_POLICY) - b0 == 2,
	      "dummy slot: +%llu drop_policy, want +2",
	      (unsigned long long)(slot_count(s2, IN, PH_R_DROP_POLICY) - b0));
	CHECK(slot_count(s2, OUT, PH_R_PASS_POLICY) - c0 == 1,
	      "dummy slot egress: +%llu pass_policy, want +1",
	      (unsigned long long)(slot_count(s2, OUT, PH_R_PASS_POLICY) - c0));
	CHECK(slot_count(s1, OUT, PH_R_PASS_POLICY) == e0,
	      "egress on the dummy counted on lo's slot");
}

/* ---- monitor ---- */

struct seen {
	int n, types[64];
	struct ph_mon_event ev[64];
};

static int on_event(void *ctx, void *data, size_t size)
{
	struct seen *s = ctx;

	if (size >= sizeof(struct ph_mon_event) && s->n < 64) {
		memcpy(&s->ev[s->n], data, sizeof(s->ev[0]));
		s->types[s->n] = s->ev[s->n].type;
		s->n++;
	}
	return 0;
}

static void drain(struct ring_buffer *rb, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	ring_buffer__consume(rb);
}

static void mon_set(__u32 on, __u32 what, __u64 deadline, __u32 rate,
		    __u32 burst)
{
	struct ph_monitor_ctl c = { .on = on, .what = what,
				    .deadline_ns = deadline,
				    .drop_rate = rate, .drop_burst = burst };
	__u32 zero = 0;

	bpf_map_update_elem(monitor_ctl, &zero, &c, BPF_ANY);
}

static __u32 mon_on(void)
{
	struct ph_monitor_ctl c = {};
	__u32 zero = 0;

	bpf_map_lookup_elem(monitor_ctl, &zero, &c);
	return c.on;
}

static void t_monitor(void)
{
	struct pkt_spec syn = TCP4(CLI, SRV, 40010, 8080, SYN),
			drop = TCP4(CLI, SRV, 40011, 7000, SYN),
			deny = TCP4(CLI, SRV, 40012, 9000, SYN);
	struct seen s;
	struct ring_buffer *rb = ring_buffer__new(monitor_rb, on_event, &s, NULL);
	int i, drops = 0;

	tname = "monitor";
	policy();
	if (!CHECK(rb != NULL, "ring_buffer__new: %s", strerror(errno)))
		return;
	drain(rb, &s);

	/* off: nothing */
	mon_set(0, 7, fx_now() + 60 * NSEC, 100, 100);
	run(IN, &syn, 0, NULL);
	run(IN, &drop, 0, NULL);
	drain(rb, &s);
	CHECK(s.n == 0, "monitor off: %d events", s.n);

	/* on: a new flow with its service, a drop with its reason */
	fx_reset(F);
	policy();
	mon_set(1, 7, fx_now() + 60 * NSEC, 100, 100);
	run(IN, &syn, 0, NULL);
	run(IN, &deny, 0, NULL);
	drain(rb, &s);
	CHECK(s.n == 2, "monitor on: %d events, want 2", s.n);
	if (s.n == 2) {
		CHECK(s.ev[0].type == PH_MON_FLOW_NEW &&
			      s.ev[0].reason == PH_R_PASS_POLICY &&
			      s.ev[0].svc_id == SVC_WEB &&
			      ntohs(s.ev[0].dport) == 8080 &&
			      s.ev[0].proto == IPPROTO_TCP,
		      "flow_new event: type %u reason %u svc %u dport %u",
		      s.ev[0].type, s.ev[0].reason, s.ev[0].svc_id,
		      ntohs(s.ev[0].dport));
		CHECK(s.ev[1].type == PH_MON_DROP &&
			      s.ev[1].reason == PH_R_DROP_DENY_RULE &&
			      s.ev[1].svc_id == SVC_DENY,
		      "drop event: type %u reason %u svc %u", s.ev[1].type,
		      s.ev[1].reason, s.ev[1].svc_id);
	}

	/* --events drop only: the flow is not reported */
	mon_set(1, PH_MON_W_DROP, fx_now() + 60 * NSEC, 100, 100);
	fx_reset(F);
	policy();
	run(IN, &syn, 0, NULL);
	drain(rb, &s);
	CHECK(s.n == 0, "flow reported with what = drop only (%d)", s.n);

	/* the sampler: a burst of 3, then 1 per second */
	mon_set(1, PH_MON_W_DROP, fx_now() + 60 * NSEC, 1, 3);
	fx_advance(F, 20 * NSEC); /* the bucket refills to its burst */
	for (i = 0; i < 10; i++)
		run(IN, &drop, 0, NULL);
	drain(rb, &s);
	CHECK(s.n == 3, "10 drops, burst 3: %d events", s.n);
	fx_advance(F, NSEC + NSEC / 10);
	run(IN, &drop, 0, NULL);
	drain(rb, &s);
	for (i = 0; i < s.n; i++)
		drops += s.ev[i].type == PH_MON_DROP;
	CHECK(drops == 1 && s.ev[0].suppressed == 7,
	      "after a second: %d events, suppressed %llu (want 1, 7)", drops,
	      (unsigned long long)(s.n ? s.ev[0].suppressed : 0));

	/* a lease that ran out: no event, and the flag clears itself */
	mon_set(1, 7, fx_now() - NSEC, 100, 100);
	run(IN, &deny, 0, NULL);
	drain(rb, &s);
	CHECK(s.n == 0, "expired lease: %d events", s.n);
	CHECK(mon_on() == 0, "expired lease: monitor_ctl.on still set");
	ring_buffer__free(rb);
}

/* ---- service counter ids (user/counters.c) on the real maps ---- */

static struct ph_instance sinst;

/* Assigns ids to @n services named by @names (NULL: "x<i>") as the
 * policy of generation @gen about to replace the one in @active (nrules
 * @active_n), then writes it into the other slot as the loader does:
 * one rule per service carrying its id. Returns the ids (static). */
static __u16 *install(const char *const *names, int n, __u32 gen,
		      __u32 active, __u32 active_n)
{
	static struct ph_service svcs[PH_SVC_MAX + 8];
	static __u16 ids[PH_SVC_MAX + 8];
	struct ph_policy pol = { .nservices = n, .services = svcs };
	__u32 slot = active ? 0 : 1;

	memset(svcs, 0, sizeof(svcs));
	for (int i = 0; i < n; i++) {
		if (names)
			snprintf(svcs[i].name, sizeof(svcs[i].name), "%s", names[i]);
		else
			snprintf(svcs[i].name, sizeof(svcs[i].name), "x%d", i);
	}
	if (!CHECK(ph_svc_ids_assign(&sinst, &pol, active, active_n, gen, ids) == 0,
		   "ph_svc_ids_assign failed"))
		return ids;
	for (int i = 0; i < n; i++) {
		struct ph_rule r = { .action = PH_ACT_ALLOW, .svc_id = ids[i] };
		__u32 k = slot * PH_MAX_RULES + i;

		bpf_map_update_elem(F->rules, &k, &r, BPF_ANY);
	}
	return ids;
}

static void set_svc_count(__u16 id, __u64 packets)
{
	struct ph_counter vals[F->ncpus];
	__u32 k = PH_SVC_IDX(IN, 0, id);

	memset(vals, 0, sizeof(vals));
	vals[0].packets = packets;
	bpf_map_update_elem(svc_counters, &k, vals, BPF_ANY);
}

static void t_svc_ids(void)
{
	static const char *const A[] = { "a", "b", "c" }, *const B[] = { "a", "c" },
				 *const C[] = { "a" }, *const D[] = { "c", "d" };
	__u16 *ids, a, b, c, d;

	tname = "service counter ids";
	for (int i = 0; i < PH_MAP__COUNT; i++)
		sinst.fd[i] = -1;
	sinst.fd[PH_MAP_SVC_IDS] = bpf_map__fd(F->x->maps.svc_ids);
	sinst.fd[PH_MAP_SVC_COUNTERS] = svc_counters;
	sinst.fd[PH_MAP_RULES] = F->rules;

	ids = install(A, 3, 1, 0, 0); /* into slot 1 */
	a = ids[0], b = ids[1], c = ids[2];
	CHECK(a && b && c && a != b && b != c && a != c,
	      "three distinct ids: %u %u %u", a, b, c);
	set_svc_count(b, 11);
	set_svc_count(c, 22);
	ids = install(B, 2, 2, 1, 3); /* slot 0; b retires (last used 1) */
	CHECK(ids[0] == a && ids[1] == c, "kept ids: a %u->%u, c %u->%u", a,
	      ids[0], c, ids[1]);
	ids = install(C, 1, 3, 0, 2); /* slot 1; c retires (last used 2) */
	CHECK(ids[0] == a, "a kept again");
	ids = install(D, 2, 4, 1, 1); /* c comes back: its id, its count */
	d = ids[1];
	CHECK(ids[0] == c && svc(IN, 0, c).packets == 22,
	      "c back: id %u (want %u), count %llu (want 22)", ids[0], c,
	      (unsigned long long)svc(IN, 0, c).packets);
	CHECK(d && d != a && d != b && d != c, "d: a never-used id (%u)", d);
	/* Every id taken: PH_SVC_MAX - 1 ids, 4 named so far (a b c d);
	 * the policy in force (slot 0: c, d) keeps its two. A policy of
	 * PH_SVC_MAX - 3 new names takes the PH_SVC_MAX - 5 never-used ids,
	 * then the retired ones, b (unused since 1) before a (since 3). */
	ids = install(NULL, PH_SVC_MAX - 3, 5, 0, 2);
	CHECK(ids[PH_SVC_MAX - 5] == b && ids[PH_SVC_MAX - 4] == a,
	      "retired ids reused oldest first: %u %u (want b %u, a %u)",
	      ids[PH_SVC_MAX - 5], ids[PH_SVC_MAX - 4], b, a);
	CHECK(svc(IN, 0, b).packets == 0, "b's counters not zeroed on reuse");
	for (int i = 0; i < PH_SVC_MAX - 3; i++)
		if (ids[i] == c || ids[i] == d || !ids[i]) {
			CHECK(0, "service %d got id %u (in force, or none)", i,
			      ids[i]);
			break;
		}
	/* one more than fits: the last one is not counted */
	ids = install(NULL, PH_SVC_MAX, 6, 1, PH_SVC_MAX - 3);
	CHECK(ids[PH_SVC_MAX - 1] == 0 && ids[PH_SVC_MAX - 2] != 0,
	      "overflow: ids %u %u (want a real id, then 0)",
	      ids[PH_SVC_MAX - 2], ids[PH_SVC_MAX - 1]);
}

int main(void)
{
	struct fx_opts o = { .name = "observe" };
	cpu_set_t cpus;
	int rc = fx_init("ph-observe"), dummy;

	if (rc)
		return rc;
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 1;
	}
	if (system("ip link set lo up && ip link add pho0 type veth peer name pho1 && ip link set pho0 up && ip link set pho1 up")) {
		fprintf(stderr, "cannot add a dummy device in the test namespace\n");
		return 1;
	}
	dummy = (int)if_nametoindex("pho0");
	F = fx_create(&o);
	if (!F)
		return 1;
	svc_counters = bpf_map__fd(F->x->maps.svc_counters);
	monitor_ctl = bpf_map__fd(F->x->maps.monitor_ctl);
	monitor_rb = bpf_map__fd(F->x->maps.monitor);

	t_service_connection(4);
	t_service_connection(6);
	t_service_drops();
	t_iface_slots(dummy);
	t_monitor();
	t_svc_ids(); /* last: it fills the rules of both slots */

	(void)reason_names; /* fixture.h's, for other suites */
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
