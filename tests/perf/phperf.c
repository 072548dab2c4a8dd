// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * phperf: the measuring half of `make bench` (bench.py drives it, sets up
 * the namespaces and writes the report). Every command prints one JSON
 * object on stdout; errors go to stderr with exit code 1.
 *
 *   phperf testrun (--prog-id ID | --prog-pin PATH) --cases a,b,...
 *                  [--repeat N] [--rounds R] [--single K] [--cpu C]
 *                  [--fill-flows N] [--fill-expect N]
 *       BPF_PROG_TEST_RUN of the named test packets. Maps the cases need
 *       (flows, expect, half_open, counters) are found among the program's
 *       own maps by name, so this works on the program the CLI attached, on
 *       a program loaded by `phperf load`, or on any other XDP program
 *       (xdp-filter, the bare floor) where the state set-up is skipped.
 *   phperf load --obj FILE --pin-root DIR --pin-prog PATH
 *               [--prog NAME] [--resize MAP=N]... [--rodata-from ID]
 *       Load pinhole's real object reusing the maps pinned in DIR (the
 *       policy the CLI compiled), with private, resized copies of the maps
 *       named by --resize, and .rodata copied from the attached program.
 *   phperf gen --dev IFNAME --src-mac M --dst-mac M --dst-ip A --dport P
 *              [--seconds S] [--call-seconds S] [--repeat N] [--batch B]
 *              [--cpu C]
 *       Live-frame generator (BPF_F_TEST_XDP_LIVE_FRAMES), current netns.
 *   phperf count --prog-id ID
 *       Packets an XDP receiver has seen (its own per-CPU counters).
 *   phperf info (--prog-id ID | --prog-pin PATH)
 *       Name, instruction counts (xlated, verified), JIT size.
 *   phperf cases
 *       The case table (name, method, expected reason, description).
 */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/in.h>
#include <pinhole/pinhole.h>
#include "packets.h"
#include "gen.skel.h"
#include "drive.skel.h"

#define MAX_ROUNDS 64
#define MAX_SINGLE 100000

static const char *reason_names[PH_R_MAX] = {
#define X(e, n, t) [PH_R_##e] = n,
	PH_PASS_REASONS(X) PH_DROP_REASONS(X)
#undef X
};

/* Print "phperf: <message>[: <strerror(err)>]" and exit 1; err 0: none. */
__attribute__((format(printf, 2, 3), noreturn))
static void die(int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "phperf: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err < 0 ? -err : err));
	fputc('\n', stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Map timestamps: the datapath reads bpf_ktime_get_coarse_ns(). */
static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "phperf: cannot pin to CPU %d (ignored)\n", cpu);
}

/* ------------------------------------------------------------------ */
/* The program's maps, found by name.                                  */
/* ------------------------------------------------------------------ */
struct prog_maps {
	int flows, half_open, expect, counters, syn_watch; /* pinhole */
	int bare_stats;                          /* bare.bpf.c */
	int xdp_stats;                           /* xdp-filter */
	int rodata;                              /* any ".rodata" */
	__u32 rodata_size;
};

static void find_maps(int prog_fd, struct prog_maps *m)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), ids[64];

	memset(m, -1, sizeof(*m));
	info.nr_map_ids = 64;
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		die(errno, "cannot read program info");
	for (__u32 i = 0; i < info.nr_map_ids && i < 64; i++) {
		struct bpf_map_info mi = {};
		__u32 mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);
		int *slot = NULL;

		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &mi, &mlen)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (!strcmp(mi.name, "flows"))
			slot = &m->flows;
		else if (!strcmp(mi.name, "half_open"))
			slot = &m->half_open;
		else if (!strcmp(mi.name, "expect"))
			slot = &m->expect;
		else if (!strcmp(mi.name, "syn_watch"))
			slot = &m->syn_watch;
		else if (!strcmp(mi.name, "counters"))
			slot = &m->counters;
		else if (!strcmp(mi.name, "bare_stats"))
			slot = &m->bare_stats;
		else if (!strcmp(mi.name, "xdp_stats_map"))
			slot = &m->xdp_stats;
		else if (strstr(mi.name, ".rodata")) {
			slot = &m->rodata;
			m->rodata_size = mi.value_size;
		}
		if (slot && *slot < 0)
			*slot = fd;
		else
			close(fd);
	}
}

static int open_prog(long id, const char *pin)
{
	int fd = pin ? bpf_obj_get(pin) : bpf_prog_get_fd_by_id(id);

	if (fd < 0)
		die(errno, "cannot open program %s", pin ? pin : "by id");
	return fd;
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

/* Sum of a per-CPU counter array: out[i] = packets of entry i. The value
 * starts with a __u64 packet count for all three layouts we read. */
static int read_percpu_packets(int fd, __u32 n, __u64 *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct bpf_map_info mi = {};
	__u32 mlen = sizeof(mi);
	__u8 *buf;

	if (bpf_obj_get_info_by_fd(fd, &mi, &mlen))
		return -errno;
	buf = calloc(ncpu, (mi.value_size + 7) & ~7u);
	if (!buf)
		return -ENOMEM;
	for (__u32 k = 0; k < n; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(fd, &k, buf))
			continue;
		for (int c = 0; c < ncpu; c++)
			out[k] += *(__u64 *)(buf + c * ((mi.value_size + 7) & ~7u));
	}
	free(buf);
	return 0;
}

static void snapshot_reasons(const struct prog_maps *m, __u64 *r)
{
	static __u64 all[PH_COUNTER_IF_ENTRIES];

	memset(r, 0, sizeof(__u64) * PH_R_MAX);
	if (m->counters < 0 || read_percpu_packets(m->counters, PH_COUNTER_IF_ENTRIES, all))
		return;
	/* every interface slot */
	for (__u32 s = 0; s < PH_IFACE_SLOTS; s++)
		for (int i = 0; i < PH_R_MAX; i++)
			r[i] += all[PH_COUNTER_IF_IDX(s, PH_DIR_IN, i)];
}

/* ------------------------------------------------------------------ */
/* Test cases: packet + state set-up + expected verdict reason.        */
/* ------------------------------------------------------------------ */
/* repeat: the same packet N times; single: one run per packet with the
 * state reset in between; drive: N runs through bpf/drive.bpf.c, a new
 * source per run (and a pinhole re-installed when drive_mode says so). */
enum method { M_REPEAT, M_SINGLE, M_DRIVE };
static const char *method_names[] = { "repeat", "single", "drive" };

struct bench_case;
typedef void (*state_fn)(const struct prog_maps *m, const struct bench_case *c);

struct bench_case {
	const char *name;
	enum method method;
	int reason; /* expected pinhole reason, -1: none */
	bool ipv6;
	__u16 vlan;
	__u16 sport, dport;
	__u8 tcp_flags;
	const char *payload;
	__u8 flow_flags; /* with set_flow */
	__u32 drive_mode; /* M_DRIVE: DRIVE_SYN (0) or DRIVE_EXPECT (1) */
	state_fn setup, cleanup;
	const char *desc;
};

static const char *local4 = "10.197.0.2", *remote4 = "10.197.0.1";
static const char *local6 = "fd00:197::2", *remote6 = "fd00:197::1";
static const char *src_mac = "02:00:0a:c5:00:01", *dst_mac = "02:00:0a:c5:00:02";

static void case_key(const struct bench_case *c, struct ph_flow_key *k, bool wild_rport)
{
	__u8 a[16];

	memset(k, 0, sizeof(*k));
	parse_addr(c->ipv6 ? local6 : local4, a);
	addr_to_key(c->ipv6, a, k->local);
	parse_addr(c->ipv6 ? remote6 : remote4, a);
	addr_to_key(c->ipv6, a, k->remote);
	k->lport = htons(c->dport);
	k->rport = wild_rport ? 0 : htons(c->sport);
	k->proto = IPPROTO_TCP;
}

static void set_flow(const struct prog_maps *m, const struct bench_case *c)
{
	struct ph_flow_key k;
	struct ph_flow v = {};

	if (m->flows < 0)
		return;
	case_key(c, &k, false);
	v.created_ns = v.last_seen_ns = now_ns();
	v.state = PH_FS_ESTABLISHED;
	v.origin = PH_FO_INBOUND;
	v.flags = c->flow_flags;
	v.session = c->flow_flags & PH_FF_FTP_CTRL ? 1 : 0;
	if (bpf_map_update_elem(m->flows, &k, &v, BPF_ANY))
		die(errno, "cannot insert the flow of case %s", c->name);
}

static void forget_flow(const struct prog_maps *m, const struct bench_case *c)
{
	struct ph_flow_key k;

	case_key(c, &k, false);
	if (m->flows >= 0)
		bpf_map_delete_elem(m->flows, &k);
	if (m->half_open >= 0)
		bpf_map_delete_elem(m->half_open, &k);
}

/* Before an inbound pinhole to @lport is written (pinhole.h, syn_watch). */
static void raise_watch(int watch_fd, __be16 lport, __u64 deadline_ns)
{
	__u32 idx = PH_SYN_WATCH_IDX(PH_SW_EXPECT, ntohs(lport));
	__u64 cur = 0, until = deadline_ns + PH_SYN_WATCH_GRACE_S * 1000000000ull;

	if (watch_fd < 0)
		return;
	if (!bpf_map_lookup_elem(watch_fd, &idx, &cur) && cur >= until)
		return;
	if (bpf_map_update_elem(watch_fd, &idx, &until, BPF_ANY))
		die(errno, "cannot raise the syn_watch of port %u", ntohs(lport));
}

/* A passive-mode pinhole: this client, this data port, any source port. */
static void set_expect(const struct prog_maps *m, const struct bench_case *c)
{
	struct ph_flow_key k;
	struct ph_expect v = {};

	if (m->expect < 0)
		return;
	forget_flow(m, c);
	case_key(c, &k, true);
	v.deadline_ns = now_ns() + 30ull * 1000000000ull;
	v.session = 1;
	v.dir = PH_DIR_IN;
	raise_watch(m->syn_watch, k.lport, v.deadline_ns);
	if (bpf_map_update_elem(m->expect, &k, &v, BPF_ANY))
		die(errno, "cannot insert the pinhole of case %s", c->name);
}

static void forget_expect(const struct prog_maps *m, const struct bench_case *c)
{
	struct ph_flow_key k;

	forget_flow(m, c);
	case_key(c, &k, true);
	if (m->expect >= 0)
		bpf_map_delete_elem(m->expect, &k);
}

static const struct bench_case cases[] = {
	{ .name = "denied", .method = M_REPEAT, .reason = PH_R_DROP_POLICY,
	  .sport = 40000, .dport = 23, .tcp_flags = TCPF_SYN,
	  .setup = forget_flow, .cleanup = forget_flow,
	  .desc = "IPv4 TCP SYN to a port no service allows (default drop)" },
	{ .name = "denied_high", .method = M_REPEAT, .reason = PH_R_DROP_POLICY,
	  .sport = 40013, .dport = 33333, .tcp_flags = TCPF_SYN,
	  .setup = forget_flow, .cleanup = forget_flow,
	  .desc = "IPv4 TCP SYN to a closed high port (where pinholes can open)" },
	{ .name = "deny_pend", .method = M_REPEAT, .reason = PH_R_DROP_POLICY,
	  .sport = 40014, .dport = 60001, .tcp_flags = TCPF_SYN,
	  .setup = forget_flow, .cleanup = forget_flow,
	  .desc = "IPv4 TCP SYN to a closed high port where pinholes for other "
		  "peers are pending (--fill-expect): two expect misses" },
	{ .name = "syn_new", .method = M_DRIVE, .reason = PH_R_PASS_POLICY,
	  .sport = 40001, .dport = 80, .tcp_flags = TCPF_SYN,
	  .desc = "allowed IPv4 TCP SYN of a new connection (new source each run)" },
	{ .name = "syn_peer", .method = M_DRIVE, .reason = PH_R_PASS_POLICY,
	  .sport = 40010, .dport = 8080, .tcp_flags = TCPF_SYN,
	  .desc = "allowed SYN to a service restricted to peer prefixes (LPM lookup)" },
	{ .name = "ack_any", .method = M_REPEAT, .reason = PH_R_PASS_POLICY,
	  .sport = 40011, .dport = 80, .tcp_flags = TCPF_ACK,
	  .setup = forget_flow, .cleanup = forget_flow,
	  .desc = "ACK of no known flow to an open port: policy only, no state" },
	{ .name = "ack_peer", .method = M_REPEAT, .reason = PH_R_PASS_POLICY,
	  .sport = 40012, .dport = 8080, .tcp_flags = TCPF_ACK,
	  .setup = forget_flow, .cleanup = forget_flow,
	  .desc = "ACK of no known flow to a peer-restricted port: policy + LPM" },
	{ .name = "syn_again", .method = M_REPEAT, .reason = PH_R_PASS_HALF_OPEN,
	  .sport = 40009, .dport = 80, .tcp_flags = TCPF_SYN,
	  .setup = forget_flow, .cleanup = forget_flow,
	  .desc = "the same allowed SYN repeated: half-open hit (retransmitted SYN)" },
	{ .name = "est", .method = M_REPEAT, .reason = PH_R_PASS_FLOW,
	  .sport = 40002, .dport = 80, .tcp_flags = TCPF_ACK,
	  .setup = set_flow, .cleanup = forget_flow,
	  .desc = "IPv4 TCP ACK of an established flow (pre-inserted in flows)" },
	{ .name = "expect_new", .method = M_DRIVE, .reason = PH_R_PASS_EXPECT,
	  .sport = 40003, .dport = 50000, .tcp_flags = TCPF_SYN, .drive_mode = 1,
	  .desc = "SYN through an FTP pinhole (pinhole re-installed before each run)" },
	{ .name = "ftp", .method = M_REPEAT, .reason = PH_R_PASS_FLOW,
	  .sport = 40004, .dport = 21, .tcp_flags = TCPF_PSH | TCPF_ACK,
	  .payload = "PORT 10,197,0,1,195,80\r\n", .flow_flags = PH_FF_FTP_CTRL,
	  .setup = set_flow, .cleanup = forget_flow,
	  .desc = "FTP control segment carrying PORT (flow with PH_FF_FTP_CTRL)" },
	{ .name = "v6vlan", .method = M_REPEAT, .reason = PH_R_PASS_FLOW,
	  .ipv6 = true, .vlan = 197, .sport = 40005, .dport = 80,
	  .tcp_flags = TCPF_ACK, .setup = set_flow, .cleanup = forget_flow,
	  .desc = "802.1Q + IPv6 TCP ACK of an established flow" },
	{ .name = "syn_single", .method = M_SINGLE, .reason = PH_R_PASS_POLICY,
	  .sport = 40006, .dport = 80, .tcp_flags = TCPF_SYN,
	  .setup = forget_flow, .cleanup = forget_flow,
	  .desc = "allowed SYN, one run per packet, state reset in between" },
	{ .name = "expect_single", .method = M_SINGLE, .reason = PH_R_PASS_EXPECT,
	  .sport = 40003, .dport = 50000, .tcp_flags = TCPF_SYN,
	  .setup = set_expect, .cleanup = forget_expect,
	  .desc = "SYN through a pinhole, one run per packet, pinhole inserted before each" },
	{ .name = "est_single", .method = M_SINGLE, .reason = PH_R_PASS_FLOW,
	  .sport = 40007, .dport = 80, .tcp_flags = TCPF_ACK,
	  .setup = set_flow, .cleanup = forget_flow,
	  .desc = "established-flow ACK, one run per packet" },
};

static const struct bench_case *find_case(const char *name)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	return NULL;
}

static void build_case_packet(const struct bench_case *c, struct pkt *p)
{
	struct tcp_spec s = {
		.ipv6 = c->ipv6, .vlan = c->vlan, .sport = c->sport,
		.dport = c->dport, .flags = c->tcp_flags, .payload = c->payload,
	};

	parse_mac(src_mac, s.src_mac);
	parse_mac(dst_mac, s.dst_mac);
	parse_addr(c->ipv6 ? remote6 : remote4, s.saddr);
	parse_addr(c->ipv6 ? local6 : local4, s.daddr);
	if (pkt_build_tcp(p, &s))
		die(0, "packet of case %s does not fit", c->name);
}

/* ------------------------------------------------------------------ */
/* testrun                                                             */
/* ------------------------------------------------------------------ */
struct run_result {
	int n;
	double ns[MAX_SINGLE];  /* kernel's average per packet, per round/run */
	double wall[MAX_ROUNDS]; /* wall clock around the syscall / repeat */
	__u32 retval;
	int errors;
	__u64 reasons[PH_R_MAX];
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int run_once(int prog_fd, const struct pkt *p, int repeat, __u32 *dur,
		    __u32 *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->data,
		    .data_size_in = p->len, .repeat = repeat);
	int err = bpf_prog_test_run_opts(prog_fd, &o);

	*dur = o.duration;
	*retval = o.retval;
	return err ? -errno : 0;
}

/* A SYN from a source seen within the half-open timeout would hit
 * half_open instead of the policy: start every driven case clean. */
static void clear_map(int fd)
{
	__u8 key[64], next[64];

	if (fd < 0)
		return;
	while (!bpf_map_get_next_key(fd, NULL, next)) {
		memcpy(key, next, sizeof(key));
		if (bpf_map_delete_elem(fd, key))
			break;
	}
}

/* NULL with *why set when the program under test cannot be driven. */
static struct drive_bpf *driver_open(int target_fd, const struct prog_maps *m,
				     __u32 mode, const char **why)
{
	struct drive_bpf *d = drive_bpf__open();
	__u32 zero = 0;

	*why = "cannot open the driver";
	if (!d)
		return NULL;
	d->rodata->drive_mode = mode;
	*why = "driver cannot share the expect map";
	if (m->expect >= 0 && bpf_map__reuse_fd(d->maps.expect, m->expect))
		goto fail;
	*why = "driver cannot share the syn_watch map";
	if (m->syn_watch >= 0 &&
	    bpf_map__reuse_fd(d->maps.syn_watch, m->syn_watch))
		goto fail;
	*why = "cannot load the driver (LIBBPF_LOG=1 shows why)";
	if (drive_bpf__load(d))
		goto fail;
	*why = "the program under test cannot be tail-called (incompatible)";
	if (bpf_map_update_elem(bpf_map__fd(d->maps.target), &zero, &target_fd,
				BPF_ANY))
		goto fail;
	return d;
fail:
	drive_bpf__destroy(d);
	return NULL;
}

/* Returns NULL, or why the case could not run. */
static const char *measure_case(int prog_fd, const struct prog_maps *m,
				const struct bench_case *c, int repeat,
				int rounds, int single, struct run_result *r)
{
	struct drive_bpf *drv = NULL;
	const char *why;

	if (c->method == M_DRIVE) {
		clear_map(m->half_open);
		drv = driver_open(prog_fd, m, c->drive_mode, &why);
		if (!drv)
			return why;
		prog_fd = bpf_program__fd(drv->progs.drive);
	}
	__u64 before[PH_R_MAX], after[PH_R_MAX];
	bool one = c->method == M_SINGLE;
	int iters = one ? single : rounds;
	struct pkt p;

	build_case_packet(c, &p);
	memset(r, 0, sizeof(*r));
	if (c->setup && !one)
		c->setup(m, c);
	snapshot_reasons(m, before);
	for (int i = 0; i < iters; i++) {
		__u32 dur;
		double t0;

		if (c->setup && one)
			c->setup(m, c);
		t0 = now_s();
		if (run_once(prog_fd, &p, one ? 1 : repeat, &dur, &r->retval)) {
			r->errors++;
			continue;
		}
		if (!one && r->n < MAX_ROUNDS)
			r->wall[r->n] = (now_s() - t0) * 1e9 / repeat;
		r->ns[r->n++] = dur;
		if (c->cleanup && one)
			c->cleanup(m, c);
	}
	snapshot_reasons(m, after);
	if (c->cleanup && !one)
		c->cleanup(m, c);
	if (drv) {
		clear_map(m->half_open);
		drive_bpf__destroy(drv);
	}
	for (int i = 0; i < PH_R_MAX; i++)
		r->reasons[i] = after[i] - before[i];
	return NULL;
}

static void print_result(const struct bench_case *c, const struct run_result *r,
			 int repeat, bool has_counters, bool first)
{
	double sorted[MAX_SINGLE], wall[MAX_ROUNDS];
	int nw = c->method == M_SINGLE ? 0 : (r->n < MAX_ROUNDS ? r->n : MAX_ROUNDS);
	__u64 total = 0, hit = 0;

	memcpy(sorted, r->ns, sizeof(double) * r->n);
	memcpy(wall, r->wall, sizeof(double) * nw);
	printf("%s\n  {\"case\": \"%s\", \"method\": \"%s\", \"repeat\": %d, "
	       "\"runs\": %d, \"errors\": %d, \"retval\": %u,",
	       first ? "" : ",", c->name, method_names[c->method],
	       c->method == M_SINGLE ? 1 : repeat, r->n, r->errors, r->retval);
	if (r->n) {
		double med = median(sorted, r->n);

		printf(" \"min_ns\": %.1f, \"median_ns\": %.1f,", sorted[0], med);
	} else {
		printf(" \"min_ns\": null, \"median_ns\": null,");
	}
	if (nw) {
		double wmed = median(wall, nw); /* sorts wall */

		printf(" \"wall_median_ns\": %.2f, \"wall_min_ns\": %.2f,",
		       wmed, wall[0]);
	}
	if (c->method != M_SINGLE) {
		printf(" \"rounds_ns\": [");
		for (int i = 0; i < r->n; i++)
			printf("%s%.0f", i ? ", " : "", r->ns[i]);
		printf("],");
	}
	printf(" \"expected_reason\": ");
	if (c->reason >= 0)
		printf("\"%s\",", reason_names[c->reason]);
	else
		printf("null,");
	printf(" \"reasons\": ");
	if (!has_counters) {
		printf("null");
	} else {
		printf("{");
		for (int i = 0, k = 0; i < PH_R_MAX; i++) {
			total += r->reasons[i];
			if (!r->reasons[i])
				continue;
			printf("%s\"%s\": %llu", k++ ? ", " : "", reason_names[i],
			       (unsigned long long)r->reasons[i]);
		}
		printf("}");
		if (c->reason >= 0)
			hit = r->reasons[c->reason];
	}
	/* path_ok: at least 99% of the packets took the path the case names */
	if (has_counters && c->reason >= 0)
		printf(", \"path_ok\": %s", total && hit * 100 >= total * 99 ? "true" : "false");
	printf(", \"description\": \"%s\"}", c->desc);
}

/* Fill a host-oriented hash map with n synthetic keys that no test packet
 * uses (local port 8080/60001, remote 10.197.0.x), in batches. */
static int fill_map(int fd, __u32 n, bool is_expect, double *secs)
{
	const __u32 chunk = 8192;
	struct ph_flow_key *keys = calloc(chunk, sizeof(*keys));
	size_t vsz = is_expect ? sizeof(struct ph_expect) : sizeof(struct ph_flow);
	__u8 *vbuf = calloc(chunk, vsz);
	__u8 a[16];
	double t0 = now_s();
	__u32 done = 0;
	int err = 0;

	if (!keys || !vbuf)
		return -ENOMEM;
	parse_addr(local4, a);
	while (done < n && !err) {
		__u32 cnt = n - done < chunk ? n - done : chunk;

		for (__u32 i = 0; i < cnt; i++) {
			__u32 id = done + i;
			struct ph_flow_key *k = &keys[i];
			__u8 *v = vbuf + i * vsz;

			memset(k, 0, sizeof(*k));
			addr_to_key(false, a, k->local);
			k->remote[10] = k->remote[11] = 0xff;
			k->remote[12] = 10, k->remote[13] = 197, k->remote[14] = 0;
			k->remote[15] = 3 + id / 60000;
			k->rport = htons(1024 + id % 60000);
			k->lport = htons(is_expect ? 60001 : 8080);
			k->proto = IPPROTO_TCP;
			memset(v, 0, vsz);
			if (is_expect) {
				struct ph_expect *e = (void *)v;

				e->deadline_ns = now_ns() + 3600ull * 1000000000ull;
				e->session = 1000 + id;
				e->dir = PH_DIR_IN;
			} else {
				struct ph_flow *f = (void *)v;

				f->created_ns = f->last_seen_ns = now_ns();
				f->state = PH_FS_ESTABLISHED;
			}
		}
		LIBBPF_OPTS(bpf_map_batch_opts, bo, .elem_flags = BPF_ANY);
		__u32 c = cnt;

		if (bpf_map_update_batch(fd, keys, vbuf, &c, &bo)) {
			err = -errno;
			/* fall back to single updates (older kernels, LRU quirks) */
			for (__u32 i = 0; i < cnt; i++)
				if (bpf_map_update_elem(fd, &keys[i], vbuf + i * vsz, BPF_ANY))
					goto out;
			err = 0;
		}
		done += cnt;
	}
out:
	*secs = now_s() - t0;
	free(keys);
	free(vbuf);
	return err ? err : (int)done;
}

static __u32 count_entries(int fd)
{
	struct ph_flow_key k, next;
	__u32 n = 0;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

static void fill_report(const char *what, int fd, long n, bool expect, bool *comma)
{
	double secs = 0;
	int r;

	if (n <= 0)
		return;
	if (fd < 0)
		die(0, "program has no %s map to fill", what);
	r = fill_map(fd, n, expect, &secs);
	if (r < 0)
		die(r, "filling %s failed", what);
	printf("%s\"fill_%s\": {\"requested\": %ld, \"entries\": %u, \"seconds\": %.2f}",
	       *comma ? ", " : "", what, n, count_entries(fd), secs);
	*comma = true;
}

static int cmd_testrun(int argc, char **argv)
{
	static struct option opts[] = {
		{ "prog-id", 1, 0, 'i' }, { "prog-pin", 1, 0, 'p' },
		{ "cases", 1, 0, 'c' }, { "repeat", 1, 0, 'n' },
		{ "rounds", 1, 0, 'r' }, { "single", 1, 0, 's' },
		{ "cpu", 1, 0, 'C' }, { "fill-flows", 1, 0, 'F' },
		{ "fill-expect", 1, 0, 'E' }, { 0 },
	};
	long id = 0, fill_flows = 0, fill_expect = 0;
	int repeat = 1000000, rounds = 5, single = 2000, cpu = -1, o;
	const char *pin = NULL;
	char *list = NULL;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'i': id = atol(optarg); break;
		case 'p': pin = optarg; break;
		case 'c': list = strdup(optarg); break;
		case 'n': repeat = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 's': single = atoi(optarg); break;
		case 'C': cpu = atoi(optarg); break;
		case 'F': fill_flows = atol(optarg); break;
		case 'E': fill_expect = atol(optarg); break;
		default: return 2;
		}
	}
	if ((!id && !pin) || !list)
		die(0, "testrun needs --prog-id or --prog-pin, and --cases");
	if (rounds > MAX_ROUNDS)
		rounds = MAX_ROUNDS;
	if (single > MAX_SINGLE)
		single = MAX_SINGLE;
	pin_cpu(cpu);

	int fd = open_prog(id, pin);
	struct prog_maps m;
	static struct run_result r;
	bool comma = true, first = true;

	find_maps(fd, &m);
	printf("{\"prog_id\": %u", prog_id(fd));
	fill_report("flows", m.flows, fill_flows, false, &comma);
	if (fill_expect > 0) /* fill_map(): every pinhole to port 60001 */
		raise_watch(m.syn_watch, htons(60001),
			    now_ns() + 3600ull * 1000000000ull);
	fill_report("expect", m.expect, fill_expect, true, &comma);
	printf(", \"cases\": [");
	for (char *save, *name = strtok_r(list, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		const struct bench_case *c = find_case(name);

		if (!c)
			die(0, "unknown case %s (see `phperf cases`)", name);
		const char *why = measure_case(fd, &m, c, repeat, rounds, single, &r);

		if (why)
			printf("%s\n  {\"case\": \"%s\", \"method\": \"%s\", "
			       "\"error\": \"%s: %s\"}", first ? "" : ",", c->name,
			       method_names[c->method], why, strerror(errno));
		else
			print_result(c, &r, repeat, m.counters >= 0, first);
		first = false;
		fflush(stdout);
	}
	printf("\n]}\n");
	free(list);
	return 0;
}

static int cmd_cases(void)
{
	printf("[");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		printf("%s\n  {\"case\": \"%s\", \"method\": \"%s\", "
		       "\"expected_reason\": %s%s%s, \"description\": \"%s\"}",
		       i ? "," : "", cases[i].name, method_names[cases[i].method],
		       cases[i].reason >= 0 ? "\"" : "",
		       cases[i].reason >= 0 ? reason_names[cases[i].reason] : "null",
		       cases[i].reason >= 0 ? "\"" : "", cases[i].desc);
	printf("\n]\n");
	return 0;
}

/* ------------------------------------------------------------------ */
/* load                                                                */
/* ------------------------------------------------------------------ */
struct resize {
	char name[32];
	__u32 n;
};

static void copy_rodata(struct bpf_object *obj, long from_id)
{
	int fd = bpf_prog_get_fd_by_id(from_id);
	struct prog_maps m;
	struct bpf_map *map;
	__u32 key = 0;
	void *buf;

	if (fd < 0)
		die(errno, "cannot open program for --rodata-from");
	find_maps(fd, &m);
	bpf_object__for_each_map(map, obj) {
		if (!strstr(bpf_map__name(map), ".rodata"))
			continue;
		if (m.rodata < 0 || m.rodata_size != bpf_map__value_size(map))
			die(0, ".rodata of the attached program does not match %s",
			    bpf_map__name(map));
		buf = calloc(1, m.rodata_size);
		if (!buf || bpf_map_lookup_elem(m.rodata, &key, buf))
			die(errno, "cannot read the attached program's .rodata");
		bpf_map__set_initial_value(map, buf, m.rodata_size);
		free(buf);
	}
	close(fd);
}

static void prepare_maps(struct bpf_object *obj, const char *root,
			 const struct resize *rs, int nrs)
{
	struct bpf_map *map;
	char path[512];

	bpf_object__for_each_map(map, obj) {
		const char *name = bpf_map__name(map);
		bool resized = false;
		int fd;

		if (!bpf_map__pin_path(map))
			continue; /* internal maps: .rodata, .bss, ... */
		for (int i = 0; i < nrs; i++) {
			if (strcmp(rs[i].name, name))
				continue;
			bpf_map__set_max_entries(map, rs[i].n);
			resized = true;
		}
		snprintf(path, sizeof(path), "%s/%s", root, name);
		fd = resized ? -1 : bpf_obj_get(path);
		if (fd >= 0 && bpf_map__reuse_fd(map, fd))
			die(errno, "cannot reuse pinned map %s", path);
		if (fd >= 0)
			close(fd);
		/* reused or private: never pin (the resized copies die with
		 * the program); a missing map is created and pinned in root */
		if (resized || fd >= 0)
			bpf_map__set_pin_path(map, NULL);
	}
	for (int i = 0; i < nrs; i++)
		if (!bpf_object__find_map_by_name(obj, rs[i].name))
			die(0, "no map named %s to resize", rs[i].name);
}

static int cmd_load(int argc, char **argv)
{
	static struct option opts[] = {
		{ "obj", 1, 0, 'o' }, { "prog", 1, 0, 'P' },
		{ "pin-root", 1, 0, 'r' }, { "pin-prog", 1, 0, 'p' },
		{ "resize", 1, 0, 'z' }, { "rodata-from", 1, 0, 'R' },
		{ "pin-all", 1, 0, 'A' }, { 0 },
	};
	const char *objpath = NULL, *progname = "pinhole_xdp", *root = NULL,
		   *pinprog = NULL, *pinall = NULL;
	struct resize rs[8];
	int nrs = 0, o;
	long rodata_from = 0;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'o': objpath = optarg; break;
		case 'P': progname = optarg; break;
		case 'r': root = optarg; break;
		case 'p': pinprog = optarg; break;
		case 'R': rodata_from = atol(optarg); break;
		case 'A': pinall = optarg; break;
		case 'z': {
			char *eq = strchr(optarg, '=');

			if (!eq || nrs == 8 || eq - optarg >= 32)
				die(0, "bad --resize %s (MAP=N)", optarg);
			snprintf(rs[nrs].name, sizeof(rs[nrs].name), "%.*s",
				 (int)(eq - optarg), optarg);
			rs[nrs++].n = atol(eq + 1);
			break;
		}
		default: return 2;
		}
	}
	if (!objpath || !root || (!pinprog && !pinall))
		die(0, "load needs --obj, --pin-root and --pin-prog or --pin-all");

	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = root);
	struct bpf_object *obj = bpf_object__open_file(objpath, &oo);
	struct bpf_program *prog;

	if (!obj)
		die(errno, "cannot open %s", objpath);
	prepare_maps(obj, root, rs, nrs);
	if (rodata_from)
		copy_rodata(obj, rodata_from);
	prog = bpf_object__find_program_by_name(obj, progname);
	if (!prog && !pinall)
		die(0, "no program %s in the object", progname);
	if (bpf_object__load(obj))
		die(errno, "cannot load %s (LIBBPF_LOG=1 shows the verifier log)",
		    objpath);
	if (pinall) {
		char path[512];
		bool first = true;

		printf("{\"progs\": {");
		bpf_object__for_each_program(prog, obj) {
			snprintf(path, sizeof(path), "%s/%s", pinall,
				 bpf_program__name(prog));
			unlink(path);
			if (bpf_obj_pin(bpf_program__fd(prog), path))
				die(errno, "cannot pin %s", path);
			printf("%s\"%s\": \"%s\"", first ? "" : ", ",
			       bpf_program__name(prog), path);
			first = false;
		}
		printf("}}\n");
		bpf_object__close(obj);
		return 0;
	}
	unlink(pinprog);
	if (bpf_obj_pin(bpf_program__fd(prog), pinprog))
		die(errno, "cannot pin the program at %s", pinprog);
	printf("{\"prog_id\": %u, \"pinned\": \"%s\"}\n",
	       prog_id(bpf_program__fd(prog)), pinprog);
	bpf_object__close(obj);
	return 0;
}

/* ------------------------------------------------------------------ */
/* gen                                                                 */
/* ------------------------------------------------------------------ */
static int cmd_gen(int argc, char **argv)
{
	static struct option opts[] = {
		{ "dev", 1, 0, 'd' }, { "src-mac", 1, 0, 's' },
		{ "dst-mac", 1, 0, 'm' }, { "dst-ip", 1, 0, 'a' },
		{ "dport", 1, 0, 'P' }, { "seconds", 1, 0, 't' },
		{ "repeat", 1, 0, 'n' }, { "batch", 1, 0, 'b' },
		{ "cpu", 1, 0, 'C' }, { "call-seconds", 1, 0, 'c' }, { 0 },
	};
	const char *dev = NULL, *smac = src_mac, *dmac = dst_mac, *dst = local4;
	int dport = 23, repeat = 100000, batch = 64, cpu = -1, o;
	double seconds = 2, call_s = 0.5;
	struct tcp_spec s = { .sport = 1024, .flags = TCPF_SYN };
	struct pkt p;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dev = optarg; break;
		case 's': smac = optarg; break;
		case 'm': dmac = optarg; break;
		case 'a': dst = optarg; break;
		case 'P': dport = atoi(optarg); break;
		case 't': seconds = atof(optarg); break;
		case 'n': repeat = atoi(optarg); break;
		case 'b': batch = atoi(optarg); break;
		case 'C': cpu = atoi(optarg); break;
		case 'c': call_s = atof(optarg); break;
		default: return 2;
		}
	}
	__u32 ifindex = dev ? if_nametoindex(dev) : 0;

	if (!ifindex)
		die(errno, "gen needs --dev IFNAME of this namespace (%s)",
		    dev ? dev : "none");
	if (parse_mac(smac, s.src_mac) || parse_mac(dmac, s.dst_mac) ||
	    parse_addr(dst, s.daddr) != 4)
		die(0, "bad --src-mac/--dst-mac/--dst-ip");
	parse_addr("10.197.0.10", s.saddr);
	s.dport = dport;
	pkt_build_tcp(&p, &s);
	pin_cpu(cpu);

	struct gen_bpf *skel = gen_bpf__open();

	if (!skel)
		die(errno, "cannot open the generator");
	skel->rodata->tx_ifindex = ifindex;
	if (gen_bpf__load(skel))
		die(errno, "cannot load the generator");

	LIBBPF_OPTS(bpf_test_run_opts, to, .data_in = p.data,
		    .data_size_in = p.len, .repeat = repeat,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = batch);
	int fd = bpf_program__fd(skel->progs.gen_redirect);
	double t0 = now_s(), el, in_calls = 0;
	__u64 calls = 0;

	/* Each call sets up and tears down a page pool (~20 ms here), so the
	 * repeat count is scaled to keep every call near call_s: the gaps
	 * between calls are then the same small share for fast and slow
	 * receivers (the receiver's NAPI runs inside the call, on this CPU). */
	do {
		double c0 = now_s(), d;

		if (bpf_prog_test_run_opts(fd, &to))
			die(errno, "live-frames test run failed");
		d = now_s() - c0;
		in_calls += d;
		calls++;
		if (d > 0.001) {
			double next = to.repeat * call_s / d;

			to.repeat = next < 10000 ? 10000 : next > 5e7 ? 5e7 : next;
		}
		el = now_s() - t0;
	} while (el + call_s / 2 < seconds);
	printf("{\"frames\": %llu, \"calls\": %llu, \"seconds\": %.3f, "
	       "\"pps\": %.0f, \"pps_in_calls\": %.0f, \"batch\": %d}\n",
	       (unsigned long long)skel->bss->frames, (unsigned long long)calls,
	       el, skel->bss->frames / el, skel->bss->frames / in_calls, batch);
	gen_bpf__destroy(skel);
	return 0;
}

/* ------------------------------------------------------------------ */
/* count                                                               */
/* ------------------------------------------------------------------ */
static int cmd_count(int argc, char **argv)
{
	long id = argc > 2 && !strcmp(argv[1], "--prog-id") ? atol(argv[2]) : 0;
	int fd = open_prog(id, NULL);
	static __u64 v[PH_COUNTER_IF_ENTRIES];
	__u64 drop = 0, pass = 0;
	struct prog_maps m;
	const char *src;

	find_maps(fd, &m);
	if (m.counters >= 0) {
		src = "pinhole counters";
		read_percpu_packets(m.counters, PH_COUNTER_IF_ENTRIES, v);
		for (__u32 i = 0; i < PH_COUNTER_IF_ENTRIES; i++) {
			int r = i % PH_R_MAX;
			__u64 n = i % PH_COUNTER_ENTRIES < PH_R_MAX ? v[i] : 0;

			if (PH_REASON_IS_DROP(r))
				drop += n;
			else
				pass += n;
		}
	} else if (m.xdp_stats >= 0) {
		src = "xdp-filter xdp_stats_map";
		read_percpu_packets(m.xdp_stats, 5, v); /* by XDP action */
		drop = v[XDP_DROP] + v[XDP_ABORTED];
		pass = v[XDP_PASS] + v[XDP_TX] + v[XDP_REDIRECT];
	} else if (m.bare_stats >= 0) {
		src = "bare_stats";
		read_percpu_packets(m.bare_stats, 1, v);
		drop = v[0]; /* the action is the program's; bench.py knows it */
	} else {
		die(0, "program has no counter map phperf knows");
	}
	printf("{\"t\": %.6f, \"packets\": %llu, \"drop\": %llu, \"pass\": %llu, "
	       "\"source\": \"%s\"}\n",
	       now_s(), (unsigned long long)(drop + pass),
	       (unsigned long long)drop, (unsigned long long)pass, src);
	return 0;
}

static int print_all(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	return vfprintf(stderr, fmt, ap);
}

static int cmd_info(int argc, char **argv)
{
	bool by_pin = argc > 2 && !strcmp(argv[1], "--prog-pin");
	long id = argc > 2 && !strcmp(argv[1], "--prog-id") ? atol(argv[2]) : 0;
	int fd = open_prog(id, by_pin ? argv[2] : NULL);
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		die(errno, "cannot read program info");
	printf("{\"id\": %u, \"name\": \"%s\", \"tag\": \"", info.id, info.name);
	for (int i = 0; i < BPF_TAG_SIZE; i++)
		printf("%02x", info.tag[i]);
	printf("\", \"xlated_insns\": %u, \"jited_bytes\": %u, "
	       "\"verified_insns\": %u, \"nr_map_ids\": %u}\n",
	       info.xlated_prog_len / 8, info.jited_prog_len,
	       info.verified_insns, info.nr_map_ids);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	libbpf_set_print(getenv("LIBBPF_LOG") ? print_all : NULL);
	if (!strcmp(cmd, "testrun"))
		return cmd_testrun(argc - 1, argv + 1);
	if (!strcmp(cmd, "load"))
		return cmd_load(argc - 1, argv + 1);
	if (!strcmp(cmd, "gen"))
		return cmd_gen(argc - 1, argv + 1);
	if (!strcmp(cmd, "count"))
		return cmd_count(argc - 1, argv + 1);
	if (!strcmp(cmd, "cases"))
		return cmd_cases();
	if (!strcmp(cmd, "info"))
		return cmd_info(argc - 1, argv + 1);
	fprintf(stderr, "usage: phperf testrun|load|gen|count|info|cases [options] "
			"(see the comment at the top of tests/perf/phperf.c)\n");
	return 2;
}
