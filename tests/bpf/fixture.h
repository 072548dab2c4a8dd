/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the BPF_PROG_TEST_RUN suites share: both programs loaded with their
 * maps pinned under a private directory, policy written straight into the
 * maps, a faked clock (the programs' ph_clock_offset_ns), per-CPU counters
 * read back, ASSERT() that counts checks and failures.
 *
 * One translation unit per test binary includes it (static definitions).
 */
#ifndef PH_TESTS_BPF_FIXTURE_H
#define PH_TESTS_BPF_FIXTURE_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <pinhole/pinhole.h>
#include <pinhole/ctrl.h>
#include "xdp_ingress.skel.h"
#include "tc_egress.skel.h"
#include "bpf/pkt.h"

/* Test tables leave trailing fields to their zero default. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define IN PH_DIR_IN
#define OUT PH_DIR_OUT
#define NSEC 1000000000ull

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10
#define URG 0x20

/* Packet shorthands: TCP4(src, dst, sport, dport, flags, more fields...). */
#define TCP4(s, d, sp, dp, fl, ...)                                           \
	{ .family = 4, .src = s, .dst = d, .proto = IPPROTO_TCP,             \
	  .sport = sp, .dport = dp, .flags = fl, __VA_ARGS__ }
#define TCP6(s, d, sp, dp, fl, ...)                                           \
	{ .family = 6, .src = s, .dst = d, .proto = IPPROTO_TCP,             \
	  .sport = sp, .dport = dp, .flags = fl, __VA_ARGS__ }
#define UDP4(s, d, sp, dp, ...)                                               \
	{ .family = 4, .src = s, .dst = d, .proto = IPPROTO_UDP,             \
	  .sport = sp, .dport = dp, __VA_ARGS__ }
#define UDP6(s, d, sp, dp, ...)                                               \
	{ .family = 6, .src = s, .dst = d, .proto = IPPROTO_UDP,             \
	  .sport = sp, .dport = dp, __VA_ARGS__ }
#define ICMP4(s, d, t, c, id, ...)                                            \
	{ .family = 4, .src = s, .dst = d, .proto = IPPROTO_ICMP,            \
	  .icmp_type = t, .icmp_code = c, .icmp_id = id, __VA_ARGS__ }
#define ICMP6(s, d, t, c, id, ...)                                            \
	{ .family = 6, .src = s, .dst = d, .proto = IPPROTO_ICMPV6,          \
	  .icmp_type = t, .icmp_code = c, .icmp_id = id, __VA_ARGS__ }

struct fx_opts {
	const char *name;
	bool fail_open;
	__u32 half_open_max;
	__u16 failsafe_port;
	bool track_ftp;        /* ph_cfg.track_ftp: FTP control tracking */
};

struct fx {
	char dir[256];
	struct xdp_ingress_bpf *x;
	struct tc_egress_bpf *t;
	int state, slot_meta, ports, rules, peers, flows, half_open, frags,
		expect, counters, events, ftp_ctrl, ftp_dp_stats, ftps_peers,
		ftp_nat;
	int ncpus;
	/* ports entries written, so a reset can clear them */
	__u32 port_idx[256];
	int nports;
	/* peers entries (inner tries) made, so a reset can remove them */
	__u32 peer_idx[64];
	int npeer_idx;
	/* reasons seen, for the coverage check at the end */
	__u64 seen[PH_R_MAX];
	/* read_counters() calls: fx_check_slots() then checks this one */
	__u64 slot_reads;
};

static char root_dir[128];
static struct fx *fxs[4];
static int nfx;
static int failures, checks;
static const char *group = "";

static const char *reason_names[] = {
#define X(e, n, t) n,
	PH_PASS_REASONS(X) PH_DROP_REASONS(X)
#undef X
};

static inline void fail(const char *name, const char *fmt, ...)
{
	va_list ap;

	failures++;
	fprintf(stderr, "FAIL [%s] %s: ", group, name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define ASSERT(cond, name, ...)                                               \
	({                                                                    \
		bool ok_ = (cond);                                            \
		checks++;                                                     \
		if (!ok_)                                                     \
			fail(name, __VA_ARGS__);                              \
		ok_;                                                          \
	})

/* ---- fixture lifetime ------------------------------------------------- */

static inline int libbpf_quiet(enum libbpf_print_level lvl,
				const char *fmt, va_list ap)
{
	if (lvl == LIBBPF_WARN || getenv("PH_TEST_VERBOSE"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static inline void fx_destroy(struct fx *f)
{
	if (!f)
		return;
	if (f->x && bpf_object__unpin_maps(f->x->obj, NULL))
		fprintf(stderr, "unpin %s failed\n", f->dir);
	tc_egress_bpf__destroy(f->t);
	xdp_ingress_bpf__destroy(f->x);
	rmdir(f->dir);
	free(f);
}

static inline void cleanup(void)
{
	while (nfx > 0)
		fx_destroy(fxs[--nfx]);
	if (root_dir[0])
		rmdir(root_dir);
}

static inline void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline int ensure_bpffs(void)
{
	struct statfs st;

	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL)) {
		fprintf(stderr, "cannot mount bpffs on /sys/fs/bpf: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Small tables load fast; the flood test shrinks half_open to a size it
 * can overrun. Both objects must agree, or the second cannot reuse the
 * first one's pinned maps. */
static inline void set_small_maps(struct bpf_map *ho, struct bpf_map *fl,
				  const struct fx_opts *o)
{
	bpf_map__set_max_entries(fl, 4096);
	bpf_map__set_max_entries(ho, o->half_open_max ? o->half_open_max :
							4096);
}

static struct fx *fx_create(const struct fx_opts *o)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct fx *f = calloc(1, sizeof(*f));
	int err;

	if (!f)
		return NULL;
	fxs[nfx++] = f;
	snprintf(f->dir, sizeof(f->dir), "%s/%s", root_dir, o->name);
	if (mkdir(f->dir, 0700)) {
		fprintf(stderr, "mkdir %s: %s\n", f->dir, strerror(errno));
		return NULL;
	}
	oo.pin_root_path = f->dir;
	f->x = xdp_ingress_bpf__open_opts(&oo);
	f->t = tc_egress_bpf__open_opts(&oo);
	if (!f->x || !f->t) {
		fprintf(stderr, "skeleton open failed\n");
		return NULL;
	}
	f->x->rodata->ph_cfg.fail_open = o->fail_open;
	f->t->rodata->ph_cfg.fail_open = o->fail_open;
	f->x->rodata->ph_cfg.failsafe_port = o->failsafe_port;
	f->t->rodata->ph_cfg.failsafe_port = o->failsafe_port;
	f->x->rodata->ph_cfg.track_ftp = o->track_ftp;
	f->t->rodata->ph_cfg.track_ftp = o->track_ftp;
	set_small_maps(f->x->maps.half_open, f->x->maps.flows, o);
	set_small_maps(f->t->maps.half_open, f->t->maps.flows, o);
	err = xdp_ingress_bpf__load(f->x);
	if (!err)
		err = tc_egress_bpf__load(f->t);
	if (err) {
		fprintf(stderr, "load failed: %s (PH_TEST_VERBOSE=1 for the log)\n",
			strerror(-err));
		return NULL;
	}
	f->state = bpf_map__fd(f->x->maps.state);
	f->slot_meta = bpf_map__fd(f->x->maps.slot_meta);
	f->ports = bpf_map__fd(f->x->maps.ports);
	f->rules = bpf_map__fd(f->x->maps.rules);
	f->peers = bpf_map__fd(f->x->maps.peers);
	f->flows = bpf_map__fd(f->x->maps.flows);
	f->half_open = bpf_map__fd(f->x->maps.half_open);
	f->frags = bpf_map__fd(f->x->maps.frags);
	f->expect = bpf_map__fd(f->x->maps.expect);
	f->counters = bpf_map__fd(f->x->maps.counters);
	f->events = bpf_map__fd(f->x->maps.events);
	f->ftp_ctrl = bpf_map__fd(f->x->maps.ftp_ctrl);
	f->ftp_dp_stats = bpf_map__fd(f->x->maps.ftp_dp_stats);
	f->ftps_peers = bpf_map__fd(f->x->maps.ftps_peers);
	f->ftp_nat = bpf_map__fd(f->x->maps.ftp_nat);
	f->ncpus = libbpf_num_possible_cpus();
	return f;
}

/* ---- time --------------------------------------------------------------- */

static __u64 clock_offset;

static inline void fx_advance(struct fx *f, __u64 ns)
{
	clock_offset += ns;
	f->x->bss->ph_clock_offset_ns = clock_offset;
	f->t->bss->ph_clock_offset_ns = clock_offset;
}

/* The programs' idea of now (coarse monotonic clock + offset). */
static inline __u64 fx_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * NSEC + ts.tv_nsec + clock_offset;
}

/* ---- policy fixtures ------------------------------------------------ */

static inline void map_clear(int fd)
{
	__u8 key[64];

	while (bpf_map_get_next_key(fd, NULL, key) == 0)
		if (bpf_map_delete_elem(fd, key))
			break;
}

static inline int map_count(int fd)
{
	__u8 key[64], next[64];
	int n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, sizeof(key));
		prev = key;
		n++;
	}
	return n;
}

static inline void set_meta(struct fx *f, __u32 slot, __u8 def_in,
			    __u8 def_out, __u8 echo_in, __u8 echo_out)
{
	struct ph_slot_meta m = {
		.default_verdict = { def_in, def_out },
		.icmp_echo = { echo_in, echo_out },
		.ftp_ttl_ms = 30000,
	};

	bpf_map_update_elem(f->slot_meta, &slot, &m, BPF_ANY);
}

static inline void set_slot(struct fx *f, __u32 slot)
{
	struct ph_state st = { .active_slot = slot,
			       .layout_version = PH_LAYOUT_VERSION };
	__u32 zero = 0;

	bpf_map_update_elem(f->state, &zero, &st, BPF_ANY);
}

static inline void set_port(struct fx *f, __u32 slot, int l4, int table,
			    int port, __u16 val)
{
	__u32 idx = PH_PORT_IDX(slot, l4, table, port);

	bpf_map_update_elem(f->ports, &idx, &val, BPF_ANY);
	if (f->nports < (int)(sizeof(f->port_idx) / sizeof(f->port_idx[0])))
		f->port_idx[f->nports++] = idx;
}

/* Rule @idx in @slot for ports lo..hi of (l4, table). */
static inline void add_rule(struct fx *f, __u32 slot, __u16 idx, int l4,
			    int table, int lo, int hi, __u8 action, __u16 flags,
			    __u16 set)
{
	struct ph_rule r = {
		.action = action, .l4 = l4, .table = table, .flags = flags,
		.service = idx, .port_lo = lo, .port_hi = hi, .peer_set = set,
	};
	__u32 ri = slot * PH_MAX_RULES + idx;
	int p;

	bpf_map_update_elem(f->rules, &ri, &r, BPF_ANY);
	for (p = lo; p <= hi; p++)
		set_port(f, slot, l4, table, p, idx + 1);
}

/* fd of the trie of (slot, set) in peers, made and inserted the first
 * time, as the loader does; -1 on error. */
static inline int peer_trie_fd(struct fx *f, __u32 slot, __u16 set)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
	__u32 idx = PH_PEER_SET_IDX(slot, set), id;
	int fd;

	if (!bpf_map_lookup_elem(f->peers, &idx, &id))
		return bpf_map_get_fd_by_id(id);
	fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "ph_peer_set",
			    sizeof(struct ph_peer_key),
			    sizeof(struct ph_peer_val), PH_PEER_SET_MAX, &o);
	if (fd < 0)
		return -1;
	if (bpf_map_update_elem(f->peers, &idx, &fd, BPF_ANY)) {
		close(fd);
		return -1;
	}
	if (f->npeer_idx < (int)(sizeof(f->peer_idx) / sizeof(f->peer_idx[0])))
		f->peer_idx[f->npeer_idx++] = idx;
	return fd;
}

static inline void add_peer(struct fx *f, __u32 slot, __u16 set,
			    const char *cidr, __u8 action)
{
	struct ph_peer_key k = {};
	struct ph_peer_val v = { .action = action };
	char buf[64], *slash;
	int len, fd;

	snprintf(buf, sizeof(buf), "%s", cidr);
	slash = strchr(buf, '/');
	*slash = 0;
	len = atoi(slash + 1);
	if (strchr(buf, ':')) {
		inet_pton(AF_INET6, buf, k.addr);
		k.prefixlen = len;
	} else {
		k.addr[10] = k.addr[11] = 0xff;
		inet_pton(AF_INET, buf, k.addr + 12);
		k.prefixlen = 96 + len;
	}
	fd = peer_trie_fd(f, slot, set);
	if (fd < 0 || bpf_map_update_elem(fd, &k, &v, BPF_ANY))
		fprintf(stderr, "peer %s: %s\n", cidr, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static inline void peers_clear(struct fx *f)
{
	for (int i = 0; i < f->npeer_idx; i++)
		bpf_map_delete_elem(f->peers, &f->peer_idx[i]);
	f->npeer_idx = 0;
}

static inline void fx_reset(struct fx *f)
{
	struct ph_rule zr = {};
	__u16 zero16 = 0;
	__u32 i, ri;

	for (i = 0; i < (__u32)f->nports; i++)
		bpf_map_update_elem(f->ports, &f->port_idx[i], &zero16, BPF_ANY);
	f->nports = 0;
	for (i = 0; i < 32; i++) {
		ri = i;
		bpf_map_update_elem(f->rules, &ri, &zr, BPF_ANY);
		ri = PH_MAX_RULES + i;
		bpf_map_update_elem(f->rules, &ri, &zr, BPF_ANY);
	}
	peers_clear(f);
	map_clear(f->flows);
	map_clear(f->half_open);
	map_clear(f->frags);
	map_clear(f->expect);
	map_clear(f->ftp_ctrl);
	map_clear(f->ftps_peers);
	map_clear(f->ftp_nat);
	set_meta(f, 0, 0, 0, 0, 0);
	set_meta(f, 1, 0, 0, 0, 0);
	set_slot(f, 0);
}

/* ---- running a packet --------------------------------------------------- */

static void v4mapped(const char *s, __u8 *out)
{
	memset(out, 0, 16);
	out[10] = out[11] = 0xff;
	inet_pton(AF_INET, s, out + 12);
}

static void addr16(int family, const char *s, __u8 *out)
{
	if (family == 4)
		v4mapped(s, out);
	else
		inet_pton(AF_INET6, s, out);
}

/* The host-oriented key the datapath builds for @p seen in @dir. */
static inline void key_of(const struct pkt_spec *p, int dir,
			  struct ph_flow_key *k)
{
	const char *local = dir == IN ? p->dst : p->src;
	const char *remote = dir == IN ? p->src : p->dst;

	memset(k, 0, sizeof(*k));
	addr16(p->family, local, k->local);
	addr16(p->family, remote, k->remote);
	k->proto = p->proto;
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		k->lport = htons(p->icmp_id);
		return;
	}
	k->lport = htons(dir == IN ? p->dport : p->sport);
	k->rport = htons(dir == IN ? p->sport : p->dport);
}

/*
 * The device of a test run without a context: the loopback device, whose
 * ifindex is always 1 (LOOPBACK_IFINDEX); its interface slot of counters.
 */
#define FX_RUN_IFSLOT PH_IFACE_SLOT(1)

/*
 * Entries first..first+n-1 of counters, CPUs summed, into out[0..n-1], with
 * BPF_MAP_LOOKUP_BATCH: one syscall for the lot (one lookup per entry on a
 * kernel without it), where one
 * lookup per entry (PH_COUNTER_IF_ENTRIES of them, twice per packet) took
 * most of the suites' run time. Returns 0, or -1 (said on stderr) when the
 * entries could not all be read: a check must then fail, not compare zeros.
 */
#ifndef ENOTSUPP
#define ENOTSUPP 524 /* the kernel's, for an unsupported map operation */
#endif

/* counters_read() one lookup per entry, for a kernel without batch
 * lookups of per-CPU arrays. */
static inline int counters_read_each(struct fx *f, __u32 first, __u32 n,
				     struct ph_counter *out)
{
	struct ph_counter vals[f->ncpus];
	__u32 i, k;
	int c;

	memset(out, 0, sizeof(*out) * n);
	for (i = 0; i < n; i++) {
		k = first + i;
		if (bpf_map_lookup_elem(f->counters, &k, vals)) {
			fprintf(stderr, "counters_read: lookup %u: %s\n", k,
				strerror(errno));
			return -1;
		}
		for (c = 0; c < f->ncpus; c++) {
			out[i].packets += vals[c].packets;
			out[i].bytes += vals[c].bytes;
		}
	}
	return 0;
}

static inline int counters_read(struct fx *f, __u32 first, __u32 n,
				struct ph_counter *out)
{
	static struct ph_counter *vals;
	static __u32 keys[PH_COUNTER_IF_ENTRIES];
	static int vals_cpus;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	__u32 done = 0, in_batch = first - 1, out_batch, cnt, i;
	int c, err;

	if (first + n > PH_COUNTER_IF_ENTRIES)
		return -1;
	if (vals_cpus != f->ncpus) {
		free(vals);
		vals = calloc((size_t)PH_COUNTER_IF_ENTRIES * f->ncpus,
			      sizeof(*vals));
		vals_cpus = vals ? f->ncpus : 0;
		if (!vals) {
			fprintf(stderr, "counters_read: out of memory\n");
			return -1;
		}
	}
	/* A batch starts after the key in in_batch (none: at key 0). */
	while (done < n) {
		cnt = n - done;
		err = bpf_map_lookup_batch(f->counters,
					   first + done ? &in_batch : NULL,
					   &out_batch, keys + done,
					   vals + (size_t)done * f->ncpus,
					   &cnt, &bo);
		if (err && !done &&
		    (errno == EINVAL || errno == ENOTSUP || errno == ENOTSUPP))
			return counters_read_each(f, first, n, out);
		done += cnt;
		if (err && errno == ENOENT)
			break; /* the end of the map */
		if (err) {
			fprintf(stderr, "counters_read: batch lookup: %s\n",
				strerror(errno));
			return -1;
		}
		in_batch = out_batch;
	}
	for (i = 0; i < n && i < done; i++)
		if (keys[i] != first + i)
			break;
	if (i != n) {
		fprintf(stderr, "counters_read: %u of entries %u..%u\n", i,
			first, first + n - 1);
		return -1;
	}
	memset(out, 0, sizeof(*out) * n);
	for (i = 0; i < n; i++)
		for (c = 0; c < f->ncpus; c++) {
			out[i].packets += vals[(size_t)i * f->ncpus + c].packets;
			out[i].bytes += vals[(size_t)i * f->ncpus + c].bytes;
		}
	return 0;
}

/*
 * The reason counters of the test runs' device (FX_RUN_IFSLOT), indexed
 * PH_COUNTER_IDX(dir, reason). What every packet compares before and
 * after; fx_check_slots() proves at the end that no count went to
 * another slot. Returns 0 or -1 (counters_read).
 */
static inline int read_counters(struct fx *f, struct ph_counter *out)
{
	f->slot_reads++;
	return counters_read(f, FX_RUN_IFSLOT * PH_COUNTER_ENTRIES,
			     PH_COUNTER_ENTRIES, out);
}

/*
 * For every fixture whose packets were judged by read_counters(): no
 * counter outside FX_RUN_IFSLOT ever moved, so "exactly this counter
 * moved" held for the whole map, not only the slot read per packet.
 * The mains call it before they report.
 */
static inline void fx_check_slots(void)
{
	static struct ph_counter all[PH_COUNTER_IF_ENTRIES];
	const char *g = group;
	int i, n, bad;

	group = "counter slots";
	for (n = 0; n < nfx; n++) {
		struct fx *f = fxs[n];

		if (!f || !f->slot_reads)
			continue;
		if (!ASSERT(counters_read(f, 0, PH_COUNTER_IF_ENTRIES, all) == 0,
			    f->dir, "counters not read"))
			continue;
		for (i = 0, bad = 0; i < PH_COUNTER_IF_ENTRIES; i++) {
			if (i / PH_COUNTER_ENTRIES == FX_RUN_IFSLOT ||
			    (!all[i].packets && !all[i].bytes))
				continue;
			if (bad++ < 8)
				fprintf(stderr, "  slot %d %s/%s: %llu packets\n",
					i / PH_COUNTER_ENTRIES,
					i % PH_COUNTER_ENTRIES >= PH_R_MAX ?
						"out" : "in",
					reason_names[i % PH_R_MAX],
					(unsigned long long)all[i].packets);
		}
		ASSERT(!bad, f->dir, "%d counters outside slot %d moved (test "
		       "runs count in slot %d only)", bad, FX_RUN_IFSLOT,
		       FX_RUN_IFSLOT);
	}
	group = g;
}

static inline int run_prog(struct fx *f, int dir, const __u8 *buf,
			   int len, __u32 *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf,
		    .data_size_in = len, .repeat = 1);
	int fd = bpf_program__fd(dir == IN ? f->x->progs.pinhole_xdp :
					     f->t->progs.pinhole_tc);
	int err = bpf_prog_test_run_opts(fd, &o);

	*retval = o.retval;
	return err;
}

/*
 * Runs one packet through the program of @dir and returns the reason whose
 * counter moved: exactly one must, in @dir, and the program's return value
 * must agree with it (drop <-> XDP_DROP / TC_ACT_SHOT). Returns -1 when
 * they do not, -2 when the test run itself or reading the counters failed
 * (errno set).
 */
static inline int fx_run_reason(struct fx *f, int dir, const __u8 *buf,
				int len)
{
	static struct ph_counter before[PH_COUNTER_ENTRIES],
		after[PH_COUNTER_ENTRIES];
	int i, reason = -1, moved = 0;
	__u32 ret;

	if (read_counters(f, before) || run_prog(f, dir, buf, len, &ret) ||
	    read_counters(f, after))
		return -2;
	for (i = 0; i < PH_COUNTER_ENTRIES; i++) {
		if (after[i].packets == before[i].packets)
			continue;
		moved++;
		if (i / PH_R_MAX == dir)
			reason = i % PH_R_MAX;
	}
	if (moved != 1)
		return -1;
	if (PH_REASON_IS_DROP(reason) !=
	    (dir == IN ? ret == XDP_DROP : ret == TC_ACT_SHOT))
		return -1;
	return reason;
}

/* Builds @p, runs it through the program of @dir and counts its reason
 * in f->seen. Returns the reason, or -1 (a failed test run is reported
 * under @name). */
static inline int fx_run_spec(struct fx *f, int dir, const struct pkt_spec *p,
			      const char *name)
{
	__u8 buf[PKT_MAX];
	int len = pkt_build(p, buf);
	int reason = fx_run_reason(f, dir, buf, len);

	if (reason == -2)
		fail(name, "test run or counter read failed: %s",
		     strerror(errno));
	if (reason < 0)
		return -1;
	f->seen[reason]++;
	return reason;
}

/* The name of reason @r, "?" for none. */
static inline const char *fx_rname(int r)
{
	return r >= 0 && r < PH_R_MAX ? reason_names[r] : "?";
}

/*
 * The start of every test's main(): root, bpffs, the private pin root
 * /sys/fs/bpf/<prefix>-<pid> (removed at exit, also on fatal signals).
 * Returns 0, or the exit code: 77 (skip) or 1.
 */
static inline int fx_init(const char *prefix)
{
	if (geteuid() != 0) {
		printf("SKIP: needs root (BPF_PROG_TEST_RUN)\n");
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	libbpf_set_print(libbpf_quiet);
	if (ensure_bpffs())
		return 1;
	snprintf(root_dir, sizeof(root_dir), "/sys/fs/bpf/%s-%d", prefix,
		 getpid());
	if (mkdir(root_dir, 0700)) {
		fprintf(stderr, "mkdir %s: %s\n", root_dir, strerror(errno));
		root_dir[0] = '\0';
		return 1;
	}
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGABRT, on_signal);
	return 0;
}

#endif /* PH_TESTS_BPF_FIXTURE_H */
