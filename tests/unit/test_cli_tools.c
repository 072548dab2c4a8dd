// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Operator tools without the kernel: the normal form that `check --print`
 * and `show` print (round trip over every preset), `check -` (a policy
 * from a stream), the bounds that keep `check` linear on chained sets,
 * and the `flows` filters. No root. Runs from the repository root.
 */
#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <arpa/inet.h>

#include <xdp/libxdp.h>

#include "flow_filter.h"
#include "policy.h"
#include "xdp_multi.h"
#include "check.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *source_of(const struct ph_policy *pol)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	ph_policy_print_source(pol, f);
	fclose(f);
	return text;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct ph_peer_entry *x = a, *y = b;

	if (x->set != y->set)
		return x->set < y->set ? -1 : 1;
	return memcmp(&x->key, &y->key, sizeof(x->key));
}

/* The compiled form, the part the maps hold: equal in a and b? */
static void expect_same_compiled(const char *name, struct ph_policy *a,
				 struct ph_policy *b)
{
	EXPECT(a->nrules == b->nrules, "%s: %d rules, read back %d", name,
	       a->nrules, b->nrules);
	EXPECT(a->nrules != b->nrules ||
		       !memcmp(a->rules, b->rules, sizeof(*a->rules) * a->nrules),
	       "%s: rules differ", name);
	EXPECT(!memcmp(a->port_table, b->port_table,
		       PH_L4_MAX * sizeof(*a->port_table)),
	       "%s: port tables differ", name);
	EXPECT(!memcmp(a->default_verdict, b->default_verdict, 2) &&
		       !memcmp(a->icmp_echo, b->icmp_echo, 2) &&
		       a->ftp_ttl_ms == b->ftp_ttl_ms,
	       "%s: settings differ", name);
	EXPECT(a->npeer_entries == b->npeer_entries, "%s: %d peer entries, read back %d",
	       name, a->npeer_entries, b->npeer_entries);
	if (a->npeer_entries != b->npeer_entries)
		return;
	qsort(a->peer_entries, a->npeer_entries, sizeof(*a->peer_entries), cmp_entry);
	qsort(b->peer_entries, b->npeer_entries, sizeof(*b->peer_entries), cmp_entry);
	for (int i = 0; i < a->npeer_entries; i++)
		EXPECT(!cmp_entry(&a->peer_entries[i], &b->peer_entries[i]) &&
			       a->peer_entries[i].val.action ==
				       b->peer_entries[i].val.action,
		       "%s: peer entry %d differs", name, i);
}

/* print(parse(x)) parses to the same compiled policy and is a fixed point. */
static void round_trip(const char *name, struct ph_policy *pol)
{
	struct ph_policy_error err;
	struct ph_policy again;
	char *t1 = source_of(pol), *t2 = NULL;

	EXPECT(t1, "%s: no text", name);
	if (!t1)
		return;
	if (ph_policy_load_string("again", t1, &again, &err)) {
		EXPECT(0, "%s: normal form does not parse: %d:%d: %s\n%s", name,
		       err.line, err.col, err.msg, t1);
		free(t1);
		return;
	}
	t2 = source_of(&again);
	EXPECT(t2 && !strcmp(t1, t2), "%s: not a fixed point:\n%s---\n%s", name,
	       t1, t2 ? t2 : "");
	expect_same_compiled(name, pol, &again);
	ph_policy_free(&again);
	free(t1);
	free(t2);
}

static void run_round_trip(void)
{
	static const char *const texts[] = {
		"default in allow\ndefault out drop\nicmp-echo in drop\nftp-ttl 90s\n",
		"set office = 10.0.0.0/8, 2001:db8::/32\n"
		"set staff = @office, !10.9.0.0/16, 10.9.1.0/24\n"
		"service sftp in tcp 22 from @staff\n"
		"service dns out tcp,udp 53,853 to 192.0.2.1, 2001:db8::53\n"
		"service high in tcp 10000-65535 from any, !198.51.100.0/24\n"
		"service x11 in tcp 6000-6063 deny\n"
		"service act in tcp sport 20 from 203.0.113.0/24\n"
		"service web in tcp 443,80,8080-8090 from any\n",
		"service v6 in udp 5000-5100,4000 from ::/0, !fd00::/8\n",
		"service all in tcp 1 from ::/0\nservice all4 in tcp 2 from 0.0.0.0/0\n",
		"ftp-ttl 1500ms\nservice ftp in tcp 21 ftp-track\n",
	};
	glob_t g;
	char name[32];

	cur_case = "round trip";
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct ph_policy_error err;
		struct ph_policy pol;

		snprintf(name, sizeof(name), "text %zu", i);
		if (ph_policy_load_string(name, texts[i], &pol, &err)) {
			EXPECT(0, "%s: %d:%d: %s", name, err.line, err.col, err.msg);
			continue;
		}
		round_trip(name, &pol);
		ph_policy_free(&pol);
	}
	EXPECT(glob("policies/*.policy", 0, NULL, &g) == 0 && g.gl_pathc > 5,
	       "no presets (run from the repository root)");
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct ph_policy_error err;
		struct ph_policy pol;

		if (ph_policy_load_file(g.gl_pathv[i], &pol, &err)) {
			EXPECT(0, "%s: %s", g.gl_pathv[i], err.msg);
			continue;
		}
		round_trip(g.gl_pathv[i], &pol);
		ph_policy_free(&pol);
	}
	globfree(&g);
}

/* check -: a stream, errors named after it. */
static void run_stream(void)
{
	static char bad[] = "default in drop\nservice a in tcp 99999\n";
	static char good[] = "service a in tcp 22\n";
	struct ph_policy_error err;
	struct ph_policy pol;
	char msg[PATH_MAX + 600];
	FILE *f;

	cur_case = "stream";
	f = fmemopen(bad, strlen(bad), "r");
	EXPECT(ph_policy_load_stream(f, "<stdin>", &pol, &err) == -1, "bad loaded");
	fclose(f);
	ph_policy_error_format(&err, msg, sizeof(msg));
	EXPECT(!strcmp(msg, "<stdin>:2:18: error: expected a port (1-65535) or range N-M, got \"99999\""),
	       "error: %s", msg);
	f = fmemopen(good, strlen(good), "r");
	EXPECT(ph_policy_load_stream(f, "<stdin>", &pol, &err) == 0 &&
		       pol.nrules == 1 && !strcmp(pol.path, "<stdin>"),
	       "good: %s", err.msg);
	fclose(f);
	ph_policy_free(&pol);
}

/* n lines of `set sK = @sK-1, ADDR` (s0 = one address). */
static char *chain(int n, int service_at_end)
{
	size_t cap = (size_t)n * 48 + 64, off = 0;
	char *t = malloc(cap);

	if (!t)
		return NULL;
	off += (size_t)sprintf(t, "set s0 = 10.0.0.0/32\n");
	for (int k = 1; k < n; k++)
		off += (size_t)sprintf(t + off, "set s%d = @s%d, 10.%d.%d.%d/32\n",
				       k, k - 1, k >> 16 & 255, k >> 8 & 255, k & 255);
	if (service_at_end)
		sprintf(t + off, "service a in tcp 22 from @s%d\n", n - 1);
	return t;
}

/*
 * Chained sets grew quadratically (100,000 lines: 14.7 GB before an
 * error). Under a 1 GiB address-space limit and a generous wall bound, the
 * 100,000-line chain must stop with a located error, a chain that fits
 * must load, and 200,000 unrelated sets (every name looked up once) too.
 */
static void run_linear(void)
{
	struct rlimit old, lim = { 1ul << 30, 1ul << 30 };
	struct ph_policy_error err;
	struct ph_policy pol;
	double t0;
	char *t, *big;
	size_t off = 0;
	int ret;

	cur_case = "linear";
	getrlimit(RLIMIT_AS, &old);
	if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < lim.rlim_cur)
		lim = old;
	EXPECT(!setrlimit(RLIMIT_AS, &lim), "setrlimit: %s", strerror(errno));

	t = chain(100000, 1);
	t0 = now_s();
	ret = ph_policy_load_string("chain.policy", t, &pol, &err);
	EXPECT(ret == -1 && err.line > 1000 && err.line < 2000 &&
		       strstr(err.msg, "sets expand to more than"),
	       "100k chain: ret %d at %d:%d: %s", ret, err.line, err.col, err.msg);
	{
		char head[32];
		int col = snprintf(head, sizeof(head), "set s%d = ", err.line - 1) + 1;

		EXPECT(err.col == col, "100k chain: column %d, want %d (the @set)",
		       err.col, col);
	}
	EXPECT(now_s() - t0 < 20, "100k chain took %.1f s", now_s() - t0);
	free(t);
	if (!ret)
		ph_policy_free(&pol);

	t = chain(1000, 1);
	t0 = now_s();
	ret = ph_policy_load_string("chain1k.policy", t, &pol, &err);
	EXPECT(ret == 0 && pol.npeer_entries == 1000,
	       "1000 chained sets: %d:%d: %s", err.line, err.col, err.msg);
	EXPECT(now_s() - t0 < 20, "1000 chain took %.1f s", now_s() - t0);
	free(t);
	if (!ret)
		ph_policy_free(&pol);

	big = malloc(200000 * 40 + 64);
	EXPECT(big, "malloc");
	if (!big)
		return;
	for (int k = 0; k < 200000; k++)
		off += (size_t)sprintf(big + off, "set n%d = 10.%d.%d.%d/32\n", k,
				       k >> 16 & 255, k >> 8 & 255, k & 255);
	sprintf(big + off, "service a in tcp 22 from @n199999, @n0\n");
	t0 = now_s();
	ret = ph_policy_load_string("sets.policy", big, &pol, &err);
	EXPECT(ret == 0 && pol.npeer_entries == 2 && pol.nnotes == 199998,
	       "200k sets: ret %d %d:%d: %s", ret, err.line, err.col, err.msg);
	EXPECT(now_s() - t0 < 20, "200k sets took %.1f s", now_s() - t0);
	if (!ret)
		ph_policy_free(&pol);
	free(big);
	setrlimit(RLIMIT_AS, &old);
}

/* ---------------------------------------------------------------------- */
/* flows filters                                                           */
/* ---------------------------------------------------------------------- */

static void key4(struct ph_flow_key *k, const char *l, int lp, const char *r,
		 int rp, __u8 proto)
{
	memset(k, 0, sizeof(*k));
	k->local[10] = k->local[11] = 0xff;
	k->remote[10] = k->remote[11] = 0xff;
	inet_pton(AF_INET, l, k->local + 12);
	inet_pton(AF_INET, r, k->remote + 12);
	k->lport = htons((__u16)lp);
	k->rport = htons((__u16)rp);
	k->proto = proto;
}

/* Parse the words of args as flows filters. */
static int parse_words(const char *args, struct ph_flow_filter *flt, char *why,
		       size_t len)
{
	char buf[256], *argv[16], *save = NULL;
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", args);
	for (char *w = strtok_r(buf, " ", &save); w && argc < 16;
	     w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	return ph_flow_filter_parse(flt, argc, argv, why, len);
}

static bool match(const char *args, const struct ph_flow_key *k,
		  const struct ph_flow *f, bool half_open, __u64 now)
{
	struct ph_flow_filter flt;
	char why[256];

	if (parse_words(args, &flt, why, sizeof(why))) {
		EXPECT(0, "filter '%s' refused: %s", args, why);
		return false;
	}
	return ph_flow_filter_match(&flt, k, f, half_open, now, NULL);
}

static void expect_refused(const char *args, const char *want)
{
	struct ph_flow_filter flt;
	char why[256] = "";

	EXPECT(parse_words(args, &flt, why, sizeof(why)) &&
		       strstr(why, want),
	       "filter '%s': want an error with '%s', got '%s'", args, want, why);
}

static void run_filters(void)
{
	const __u64 s = 1000000000ull, now = 10000 * s;
	struct ph_flow_key in, out, v6;
	struct ph_flow fin = { .created_ns = now - 50 * s, .last_seen_ns = now - 5 * s,
			       .state = PH_FS_ESTABLISHED, .origin = PH_FO_INBOUND };
	struct ph_flow fout = { .created_ns = now - 50 * s, .last_seen_ns = now - 50 * s,
				.state = PH_FS_NEW, .origin = PH_FO_OUTBOUND,
				.flags = PH_FF_INIT_OUT };
	struct ph_flow fclose_ = fin;

	cur_case = "filters";
	fclose_.state = PH_FS_CLOSING;
	fclose_.last_seen_ns = now - 11 * s;
	/* inbound ssh: 10.1.0.1:22 <- 10.2.0.9:40000 */
	key4(&in, "10.1.0.1", 22, "10.2.0.9", 40000, 6);
	/* outbound dns: 10.1.0.1:5353 -> 10.3.0.1:53, udp, half-open */
	key4(&out, "10.1.0.1", 5353, "10.3.0.1", 53, 17);
	memset(&v6, 0, sizeof(v6));
	inet_pton(AF_INET6, "fd00::1", v6.local);
	inet_pton(AF_INET6, "fd00::2", v6.remote);
	v6.lport = htons(80);
	v6.rport = htons(1234);
	v6.proto = 6;

	EXPECT(match("", &in, &fin, false, now), "no filter matches all");
	EXPECT(match("proto tcp", &in, &fin, false, now), "proto tcp");
	EXPECT(!match("proto udp", &in, &fin, false, now), "proto udp");
	EXPECT(match("lport 22", &in, &fin, false, now), "lport");
	EXPECT(match("rport 39000-41000", &in, &fin, false, now), "rport range");
	EXPECT(!match("rport 22", &in, &fin, false, now), "rport 22");
	EXPECT(match("port 40000", &in, &fin, false, now), "port either side");
	/* conntrack's view: the originator's destination port */
	EXPECT(match("dport 22", &in, &fin, false, now), "dport inbound = lport");
	EXPECT(match("sport 40000", &in, &fin, false, now), "sport inbound = rport");
	EXPECT(match("dport 53", &out, &fout, true, now), "dport outbound = rport");
	EXPECT(!match("dport 5353", &out, &fout, true, now), "dport outbound != lport");
	EXPECT(match("src 10.1.0.1", &out, &fout, true, now), "src outbound = local");
	EXPECT(match("dst 10.3.0.0/16", &out, &fout, true, now), "dst prefix");
	EXPECT(match("remote 10.2.0.0/16", &in, &fin, false, now), "remote prefix");
	EXPECT(!match("remote 10.3.0.0/16", &in, &fin, false, now), "remote other");
	EXPECT(match("local ::ffff:10.1.0.1", &in, &fin, false, now), "v4-mapped");
	EXPECT(match("addr 10.2.0.9", &in, &fin, false, now), "addr either");
	EXPECT(match("addr fd00::/64", &v6, &fin, false, now), "v6 prefix");
	EXPECT(!match("addr 10.0.0.0/8", &v6, &fin, false, now), "v4 vs v6");
	EXPECT(match("state established", &in, &fin, false, now), "state");
	EXPECT(match("state half-open", &out, &fout, true, now), "state half-open");
	EXPECT(!match("state closing", &in, &fin, false, now), "not closing");
	EXPECT(match("origin outbound", &out, &fout, true, now), "origin");
	EXPECT(!match("origin inbound", &out, &fout, true, now), "origin other");
	/* half-open: 30 s from creation; closing: 10 s idle */
	EXPECT(match("expired", &out, &fout, true, now), "half-open 50 s old expired");
	EXPECT(!match("live", &out, &fout, true, now), "expired is not live");
	EXPECT(match("expired", &in, &fclose_, false, now), "closing idle 11 s");
	EXPECT(match("live", &in, &fin, false, now), "established idle 5 s");
	EXPECT(match("proto tcp lport 22 remote 10.2.0.9 state established", &in,
		     &fin, false, now), "all together");
	EXPECT(!match("proto tcp lport 23", &in, &fin, false, now), "and, not or");

	expect_refused("proto sctp", "tcp, udp, icmp or icmpv6");
	expect_refused("lport 0", "port");
	expect_refused("lport 70000", "port");
	expect_refused("lport 30-20", "port");
	expect_refused("remote 10.1.0.0/8", "host bits");
	expect_refused("remote 10.0.0.0/33", "prefix");
	expect_refused("state open", "established, closing or half-open");
	expect_refused("origin x", "inbound, outbound, ftp-data or ftps-range");
	expect_refused("lport", "needs a value");
	expect_refused("colour red", "unknown filter");
	expect_refused("lport 22 lport 23", "twice");
	expect_refused("expired live", "expired and live");
}

/* Expiry as the datapath judges it (bpf/lib/flow.h). */
static void run_expiry(void)
{
	const __u64 s = 1000000000ull, now = 100000 * s;
	struct ph_flow_key k;
	struct ph_flow f = { .created_ns = now - 100 * s, .last_seen_ns = now - 20 * s,
			     .state = PH_FS_ESTABLISHED };
	__u64 left;

	cur_case = "expiry";
	key4(&k, "10.0.0.1", 53, "10.0.0.2", 999, 17);
	EXPECT(ph_flow_expires_in(&k, &f, false, now, &left) && left == 100 * s,
	       "udp: 120 s idle, 20 s gone: %llu", (unsigned long long)left);
	k.proto = 6;
	EXPECT(ph_flow_expires_in(&k, &f, false, now, &left) &&
		       left == (7200 - 20) * s, "tcp established");
	f.state = PH_FS_CLOSING;
	EXPECT(!ph_flow_expires_in(&k, &f, false, now, &left) && left == 0,
	       "tcp closing idle 20 s > 10 s");
	f.state = PH_FS_NEW;
	EXPECT(!ph_flow_expires_in(&k, &f, true, now, &left),
	       "half-open 100 s after creation");
	f.created_ns = now - 10 * s;
	EXPECT(ph_flow_expires_in(&k, &f, true, now, &left) && left == 20 * s,
	       "half-open 10 s old: 20 s left");
	k.proto = 1;
	f.last_seen_ns = now - 29 * s;
	EXPECT(ph_flow_expires_in(&k, &f, false, now, &left) && left == 1 * s,
	       "icmp: 30 s");
}

/* libxdp reads pinhole's order among other XDP programs from the built
 * object's .xdp_run_config: priority PH_XDP_RUN_PRIO, go on after XDP_PASS
 * only. */
static void run_xdp_run_config(void)
{
	struct xdp_program *p =
		xdp_program__open_file(".output/xdp_ingress.bpf.o", "xdp", NULL);

	cur_case = "xdp run config";
	EXPECT(!libxdp_get_error(p), "libxdp cannot open .output/xdp_ingress.bpf.o");
	if (libxdp_get_error(p))
		return;
	EXPECT(xdp_program__run_prio(p) == PH_XDP_RUN_PRIO, "priority %u, want %d",
	       xdp_program__run_prio(p), PH_XDP_RUN_PRIO);
	for (unsigned int a = XDP_ABORTED; a <= XDP_REDIRECT; a++)
		EXPECT(xdp_program__chain_call_enabled(p, a) == (a == XDP_PASS),
		       "chain call on action %u: %d", a,
		       xdp_program__chain_call_enabled(p, a));
	xdp_program__close(p);
}

int main(void)
{
	run_xdp_run_config();
	run_stream();
	run_round_trip();
	run_filters();
	run_expiry();
	run_linear();
	if (failures) {
		fprintf(stderr, "test_cli_tools: %d of %d checks FAILED\n",
			failures, checks);
		return 1;
	}
	printf("test_cli_tools: all %d checks passed\n", checks);
	return 0;
}
