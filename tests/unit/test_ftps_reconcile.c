// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tracker's reconciliation of ftps_peers (user/ftps.c core) against a
 * fake map: what it corrects, when (a disagreement seen twice in a row,
 * the entry unchanged), what it leaves alone, its log lines; and the
 * tracker's own knowledge of FTPS sessions (ph_trk_is_ftps) fed with
 * synthetic records. No root.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ftps.h"
#include "tracker.h"

#define SEC 1000000000ull

/* ---- a fake ftps_peers -------------------------------------------------- */

#define FMAX 64

static struct {
	struct ph_ftps_entry e[FMAX];
	int n;
	int puts, dels;
	int fail_put; /* next put returns this */
	char log[32][256];
	int nlog;
} M;

static int m_find(const struct ph_ftps_peer_key *k)
{
	for (int i = 0; i < M.n; i++)
		if (!memcmp(&M.e[i].key, k, sizeof(*k)))
			return i;
	return -1;
}

static int f_put(void *ctx, const struct ph_ftps_peer_key *k, __u32 refs,
		 bool existed)
{
	int i = m_find(k), err = M.fail_put;

	(void)ctx;
	M.puts++;
	M.fail_put = 0;
	if (err)
		return err;
	if (existed && i < 0)
		return -ENOENT;
	if (!existed && i >= 0)
		return -EEXIST;
	if (i < 0) {
		i = M.n++;
		M.e[i].key = *k;
	}
	M.e[i].refs = refs;
	M.e[i].last_ns = 7777;
	return 0;
}

static int f_del(void *ctx, const struct ph_ftps_peer_key *k)
{
	int i = m_find(k);

	(void)ctx;
	M.dels++;
	if (i < 0)
		return -ENOENT;
	M.e[i] = M.e[--M.n];
	return 0;
}

static void f_log(void *ctx, int level, const char *line)
{
	(void)ctx;
	(void)level;
	if (M.nlog < 32)
		snprintf(M.log[M.nlog++], sizeof(M.log[0]), "%s", line);
}

static const struct ph_ftps_ops ops = { .put = f_put, .del = f_del,
					.log = f_log };

static struct ph_ftps_peer_key pair(const char *peer, const char *local)
{
	struct ph_ftps_peer_key k = {};

	k.remote[10] = k.remote[11] = 0xff;
	k.local[10] = k.local[11] = 0xff;
	inet_pton(AF_INET, peer, k.remote + 12);
	inet_pton(AF_INET, local, k.local + 12);
	return k;
}

static void m_set(const char *peer, const char *local, __u32 refs,
		  __u64 last)
{
	struct ph_ftps_peer_key k = pair(peer, local);
	int i = m_find(&k);

	if (i < 0) {
		i = M.n++;
		M.e[i].key = k;
	}
	M.e[i].refs = refs;
	M.e[i].last_ns = last;
}

/* refs in the fake map, -1 without an entry */
static int m_refs(const char *peer, const char *local)
{
	struct ph_ftps_peer_key k = pair(peer, local);
	int i = m_find(&k);

	return i < 0 ? -1 : (int)M.e[i].refs;
}

/* One pass over a copy of the fake map and the live pairs given as
 * "peer>local" strings. */
static int pass(struct ph_ftps_rec *r, const char *const *live, int nlive)
{
	struct ph_ftps_entry map[FMAX];
	struct ph_ftps_peer_key lv[FMAX];
	int n = M.n;

	memcpy(map, M.e, sizeof(map));
	for (int i = 0; i < nlive; i++) {
		char peer[32], *local;

		snprintf(peer, sizeof(peer), "%s", live[i]);
		local = strchr(peer, '>');
		*local++ = '\0';
		lv[i] = pair(peer, local);
	}
	return ph_ftps_reconcile(r, map, (size_t)n, lv, (size_t)nlive);
}

static struct ph_ftps_rec *fresh(void)
{
	memset(&M, 0, sizeof(M));
	return ph_ftps_rec_new(&ops, NULL);
}

/* ---- tests -------------------------------------------------------------- */

static void test_agree(void)
{
	static const char *const live[] = { "10.0.0.2>10.0.0.1",
					    "10.0.0.3>10.0.0.1",
					    "10.0.0.2>10.0.0.1" };
	struct ph_ftps_rec *r = fresh();

	cur_case = "agreement";
	m_set("10.0.0.2", "10.0.0.1", 2, 100);
	m_set("10.0.0.3", "10.0.0.1", 1, 100);
	for (int i = 0; i < 3; i++)
		EXPECT(pass(r, live, 3) == 0, "pass %d corrected", i);
	EXPECT(M.puts == 0 && M.dels == 0 && M.nlog == 0,
	       "%d puts, %d dels, %d log lines", M.puts, M.dels, M.nlog);
	EXPECT(ph_ftps_fixed(r) == 0, "fixed %llu",
	       (unsigned long long)ph_ftps_fixed(r));
	ph_ftps_rec_free(r);
}

static void test_leak(void)
{
	static const char *const live[] = { "10.0.0.2>10.0.0.1" };
	struct ph_ftps_rec *r = fresh();

	cur_case = "leak (flow evicted)";
	m_set("10.0.0.2", "10.0.0.1", 3, 100);
	m_set("10.0.0.9", "10.0.0.1", 1, 100);
	EXPECT(pass(r, live, 1) == 0, "corrected on first sight");
	EXPECT(m_refs("10.0.0.2", "10.0.0.1") == 3, "changed on first sight");
	EXPECT(pass(r, live, 1) == 2, "not corrected on second sight");
	EXPECT(m_refs("10.0.0.2", "10.0.0.1") == 1, "refs %d, want 1",
	       m_refs("10.0.0.2", "10.0.0.1"));
	EXPECT(m_refs("10.0.0.9", "10.0.0.1") == -1, "dead pair kept");
	EXPECT(M.nlog == 2 && strstr(M.log[0], "corrected") &&
		       (strstr(M.log[0], "10.0.0.2 -> 10.0.0.1") ||
			strstr(M.log[1], "10.0.0.2 -> 10.0.0.1")),
	       "log: %d lines, first '%s'", M.nlog, M.log[0]);
	/* Once, not every pass. */
	EXPECT(pass(r, live, 1) == 0 && pass(r, live, 1) == 0 && M.nlog == 2,
	       "corrected again");
	EXPECT(ph_ftps_fixed(r) == 2, "fixed %llu",
	       (unsigned long long)ph_ftps_fixed(r));
	ph_ftps_rec_free(r);
}

static void test_missing(void)
{
	static const char *const live[] = { "10.0.0.4>10.0.0.1",
					    "10.0.0.4>10.0.0.1" };
	struct ph_ftps_rec *r = fresh();

	cur_case = "missing entry";
	EXPECT(pass(r, live, 2) == 0, "created on first sight");
	EXPECT(pass(r, live, 2) == 1 && m_refs("10.0.0.4", "10.0.0.1") == 2,
	       "refs %d, want 2", m_refs("10.0.0.4", "10.0.0.1"));
	ph_ftps_rec_free(r);
}

static void test_moving(void)
{
	static const char *const live[] = { "10.0.0.2>10.0.0.1" };
	struct ph_ftps_rec *r = fresh();

	cur_case = "moving entry";
	/* The entry changes between passes (the datapath is counting):
	 * never corrected while it moves. */
	m_set("10.0.0.2", "10.0.0.1", 2, 100);
	EXPECT(pass(r, live, 1) == 0, "first");
	m_set("10.0.0.2", "10.0.0.1", 2, 200); /* another count in, one out */
	EXPECT(pass(r, live, 1) == 0, "corrected a moving entry");
	m_set("10.0.0.2", "10.0.0.1", 3, 200);
	EXPECT(pass(r, live, 1) == 0, "corrected other numbers");
	EXPECT(pass(r, live, 1) == 1 && m_refs("10.0.0.2", "10.0.0.1") == 1,
	       "stable disagreement not corrected");
	ph_ftps_rec_free(r);

	cur_case = "transient disagreement";
	r = fresh();
	/* Seen once (a count between map and flag), then agreeing. */
	m_set("10.0.0.2", "10.0.0.1", 2, 100);
	EXPECT(pass(r, live, 1) == 0, "first");
	m_set("10.0.0.2", "10.0.0.1", 1, 300);
	EXPECT(pass(r, live, 1) == 0 && M.puts == 0 && M.dels == 0,
	       "wrote while agreeing");
	/* and the old disagreement is forgotten */
	m_set("10.0.0.2", "10.0.0.1", 2, 100);
	EXPECT(pass(r, live, 1) == 0, "remembered an old disagreement");
	ph_ftps_rec_free(r);
}

static void test_zero_entry(void)
{
	struct ph_ftps_rec *r = fresh();

	cur_case = "entry at zero";
	m_set("10.0.0.5", "10.0.0.1", 0, 100);
	EXPECT(pass(r, NULL, 0) == 0, "first");
	EXPECT(pass(r, NULL, 0) == 1 && m_refs("10.0.0.5", "10.0.0.1") == -1,
	       "an entry at 0 stays");
	ph_ftps_rec_free(r);
}

static void test_races(void)
{
	static const char *const live[] = { "10.0.0.6>10.0.0.1" };
	struct ph_ftps_rec *r = fresh();

	cur_case = "entry appears meanwhile";
	EXPECT(pass(r, live, 1) == 0, "first");
	/* The datapath inserts before our put: EEXIST, nothing counted. */
	M.fail_put = -EEXIST;
	EXPECT(pass(r, live, 1) == 0 && ph_ftps_fixed(r) == 0 && M.nlog == 0,
	       "EEXIST counted or logged");
	ph_ftps_rec_free(r);

	cur_case = "write error";
	r = fresh();
	pass(r, live, 1);
	M.fail_put = -E2BIG;
	EXPECT(pass(r, live, 1) == 0 && M.nlog == 1 &&
		       strstr(M.log[0], "cannot correct"),
	       "error not logged: %d '%s'", M.nlog, M.log[0]);
	ph_ftps_rec_free(r);
}

static void test_log_cap(void)
{
	struct ph_ftps_rec *r = fresh();
	char peer[32];

	cur_case = "log cap";
	for (int i = 0; i < PH_FTPS_LOG_MAX + 5; i++) {
		snprintf(peer, sizeof(peer), "10.1.0.%d", i + 1);
		m_set(peer, "10.0.0.1", 1, 100);
	}
	pass(r, NULL, 0);
	EXPECT(pass(r, NULL, 0) == PH_FTPS_LOG_MAX + 5 && M.n == 0,
	       "not all corrected");
	EXPECT(M.nlog == PH_FTPS_LOG_MAX + 1 &&
		       strstr(M.log[PH_FTPS_LOG_MAX], "5 more"),
	       "%d log lines, last '%s'", M.nlog,
	       M.nlog ? M.log[M.nlog - 1] : "");
	ph_ftps_rec_free(r);
}

static void test_v6_order(void)
{
	struct ph_ftps_rec *r = fresh();
	struct ph_ftps_entry map[2];
	struct ph_ftps_peer_key lv[3];

	cur_case = "IPv6, unsorted input";
	memset(map, 0, sizeof(map));
	memset(lv, 0, sizeof(lv));
	inet_pton(AF_INET6, "2001:db8:1::7", map[0].key.remote);
	inet_pton(AF_INET6, "2001:db8::1", map[0].key.local);
	map[0].refs = 1;
	inet_pton(AF_INET6, "2001:db8:0::5", map[1].key.remote);
	inet_pton(AF_INET6, "2001:db8::1", map[1].key.local);
	map[1].refs = 1;
	lv[0] = map[0].key;
	lv[1] = map[1].key;
	lv[2] = map[0].key;
	memcpy(M.e, map, sizeof(map));
	M.n = 2;
	EXPECT(ph_ftps_reconcile(r, map, 2, lv, 3) == 0, "first");
	memcpy(map, M.e, sizeof(map));
	lv[0] = M.e[1].key;
	lv[1] = M.e[0].key;
	lv[2] = M.e[0].key;
	EXPECT(ph_ftps_reconcile(r, map, 2, lv, 3) == 1, "second");
	EXPECT(M.e[0].refs == 2 && M.e[1].refs == 1, "refs %u %u",
	       M.e[0].refs, M.e[1].refs);
	ph_ftps_rec_free(r);
}

/* ---- the tracker's knowledge -------------------------------------------- */

static int t_put(void *c, const struct ph_flow_key *k, const struct ph_expect *v)
{
	(void)c;
	(void)k;
	(void)v;
	return 0;
}

static int t_del(void *c, const struct ph_flow_key *k)
{
	(void)c;
	(void)k;
	return 0;
}

static const struct ph_trk_ops tops = { .expect_put = t_put,
					.expect_del = t_del };

static void ev_send(struct ph_tracker *t, const struct ph_flow_key *k,
		    int type, int encrypted, int from_client, __u32 seq,
		    const char *text)
{
	struct ph_event ev;
	size_t len = text ? strlen(text) : 0;

	memset(&ev, 0, sizeof(ev));
	ev.ts_ns = 10 * SEC;
	ev.key = *k;
	ev.type = type;
	ev.session = 0x42;
	ev.host_role = PH_ROLE_SERVER;
	ev.dir = from_client ? PH_DIR_IN : PH_DIR_OUT;
	ev.from_client = from_client;
	ev.encrypted = encrypted;
	ev.seq = seq;
	ev.len = ev.caplen = len;
	if (len)
		memcpy(ev.data, text, len);
	ph_trk_event(t, &ev, offsetof(struct ph_event, data) + len, 10 * SEC);
}

static void test_tracker_knows(void)
{
	struct ph_flow_key k = {}, k2;
	struct ph_tracker *t = ph_trk_new(NULL, &tops, NULL, NULL);

	cur_case = "tracker knows FTPS";
	k.local[10] = k.local[11] = k.remote[10] = k.remote[11] = 0xff;
	inet_pton(AF_INET, "10.0.0.1", k.local + 12);
	inet_pton(AF_INET, "10.0.0.2", k.remote + 12);
	k.lport = htons(21);
	k.rport = htons(40000);
	k.proto = IPPROTO_TCP;
	EXPECT(!ph_trk_is_ftps(t, &k) && !ph_trk_any_ftps(t), "empty");
	ev_send(t, &k, PH_EV_CTRL_DATA, 0, 1, 100, "AUTH TLS\r\n");
	ev_send(t, &k, PH_EV_CTRL_DATA, 0, 0, 500, "220 hi\r\n");
	EXPECT(!ph_trk_is_ftps(t, &k), "plain session is FTPS");
	ev_send(t, &k, PH_EV_CTRL_DATA, 0, 0, 508, "234 go\r\n");
	EXPECT(ph_trk_is_ftps(t, &k) && ph_trk_any_ftps(t),
	       "234 did not make it FTPS");
	k2 = k;
	k2.rport = htons(40001);
	EXPECT(!ph_trk_is_ftps(t, &k2), "another connection is FTPS");
	/* pad bytes do not matter */
	k2 = k;
	k2.pad[1] = 7;
	EXPECT(ph_trk_is_ftps(t, &k2), "key padding matters");
	ev_send(t, &k, PH_EV_CTRL_CLOSE, 0, 1, 0, NULL);
	EXPECT(!ph_trk_is_ftps(t, &k) && !ph_trk_any_ftps(t),
	       "closed session still FTPS");

	k2 = k;
	k2.lport = htons(990);
	ev_send(t, &k2, PH_EV_CTRL_OPEN, 1, 1, 0, NULL);
	EXPECT(ph_trk_is_ftps(t, &k2), "implicit session not FTPS");
	ph_trk_add_ftps_fixed(t, 3);
	EXPECT(ph_trk_totals(t)->ftps_fixed == 3, "ftps_fixed %llu",
	       (unsigned long long)ph_trk_totals(t)->ftps_fixed);
	ph_trk_free(t);
}

int main(void)
{
	test_agree();
	test_leak();
	test_missing();
	test_moving();
	test_zero_entry();
	test_races();
	test_log_cap();
	test_v6_order();
	test_tracker_knows();
	if (failures) {
		fprintf(stderr, "%d of %d checks failed\n", failures, checks);
		return 1;
	}
	printf("PASS: %d checks\n", checks);
	return 0;
}
