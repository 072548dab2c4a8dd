// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Session tracker core (user/tracker.c) against fake maps and a fake
 * clock: synthetic ring-buffer records in, map writes and log lines out.
 * Covers the four cases (server/client x passive/active) and IPv6, the
 * datapath installing first (both event orders), close, expiry, refusals
 * by reason, datapath pinholes the tracker refuses, truncated segments,
 * the session table bound, orphans and the log rate limit; SYNC records
 * (quiet and lost records), sessions adopted from ftp_ctrl, connections
 * gone without a CLOSE. No root.
 * Exit 0 when every check passes; one FAIL line per failed check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ftp.h"
#include "tracker.h"

#define SEC 1000000000ull
#define T0 (1000 * SEC)
#define TTL (30 * SEC)

/* ---------------------------------------------------------------------- */
/* Fake maps                                                               */
/* ---------------------------------------------------------------------- */

#define FMAX 64
#define LOGMAX 128

struct fake {
	struct { struct ph_flow_key k; struct ph_expect v; } exp[FMAX];
	int nexp;
	struct { struct ph_flow_key k; struct ph_ftp_session_info v; } ses[FMAX];
	int nses;
	struct ph_ftp_totals totals;
	int expect_puts, expect_dels, session_dels;
	char log[LOGMAX][512];
	int nlog;
	bool dead; /* ctrl_live() says no control connection lives */
};

static struct fake F;

static int exp_find(const struct ph_flow_key *k)
{
	for (int i = 0; i < F.nexp; i++)
		if (!memcmp(&F.exp[i].k, k, sizeof(*k)))
			return i;
	return -1;
}

static int f_expect_put(void *ctx, const struct ph_flow_key *k,
			const struct ph_expect *v)
{
	int i = exp_find(k);

	(void)ctx;
	F.expect_puts++;
	if (i < 0) {
		if (F.nexp == FMAX)
			return -E2BIG;
		i = F.nexp++;
	}
	F.exp[i].k = *k;
	F.exp[i].v = *v;
	return 0;
}

static int f_expect_del(void *ctx, const struct ph_flow_key *k)
{
	int i = exp_find(k);

	(void)ctx;
	F.expect_dels++;
	if (i < 0)
		return -ENOENT;
	F.exp[i] = F.exp[--F.nexp];
	return 0;
}

static int f_expect_next(void *ctx, const struct ph_flow_key *prev,
			 struct ph_flow_key *next, struct ph_expect *v)
{
	int i = prev ? exp_find(prev) + 1 : 0;

	(void)ctx;
	if (i >= F.nexp)
		return -ENOENT;
	*next = F.exp[i].k;
	*v = F.exp[i].v;
	return 0;
}

static int ses_find(const struct ph_flow_key *k)
{
	for (int i = 0; i < F.nses; i++)
		if (!memcmp(&F.ses[i].k, k, sizeof(*k)))
			return i;
	return -1;
}

static int f_session_put(void *ctx, const struct ph_flow_key *k,
			 const struct ph_ftp_session_info *v)
{
	int i = ses_find(k);

	(void)ctx;
	if (i < 0) {
		if (F.nses == FMAX)
			return -E2BIG;
		i = F.nses++;
	}
	F.ses[i].k = *k;
	F.ses[i].v = *v;
	return 0;
}

static int f_session_del(void *ctx, const struct ph_flow_key *k)
{
	int i = ses_find(k);

	(void)ctx;
	F.session_dels++;
	if (i < 0)
		return -ENOENT;
	F.ses[i] = F.ses[--F.nses];
	return 0;
}

static int f_totals_put(void *ctx, const struct ph_ftp_totals *t)
{
	(void)ctx;
	F.totals = *t;
	return 0;
}

static void f_log(void *ctx, int level, const char *line)
{
	(void)ctx;
	(void)level;
	if (getenv("PH_TEST_VERBOSE"))
		fprintf(stderr, "  log: %s\n", line);
	if (F.nlog < LOGMAX)
		snprintf(F.log[F.nlog++], sizeof(F.log[0]), "%s", line);
}

static bool f_ctrl_live(void *ctx, const struct ph_flow_key *k, __u32 session)
{
	(void)ctx;
	(void)k;
	(void)session;
	return !F.dead;
}

static const struct ph_trk_ops fake_ops = {
	.ctrl_live = f_ctrl_live,
	.expect_put = f_expect_put,
	.expect_del = f_expect_del,
	.expect_next = f_expect_next,
	.session_put = f_session_put,
	.session_del = f_session_del,
	.totals_put = f_totals_put,
	.log = f_log,
};

/* How many log lines contain every one of the given substrings. */
static int log_count(const char *a, const char *b)
{
	int n = 0;

	for (int i = 0; i < F.nlog; i++)
		if (strstr(F.log[i], a) && (!b || strstr(F.log[i], b)))
			n++;
	return n;
}

static struct ph_tracker *fresh(__u32 max_sessions)
{
	struct ph_trk_config cfg = {
		.max_sessions = max_sessions,
		.ttl_ns = TTL,
		.hash_seed = { 1, 2 },
		.debug = true,
		.log_burst = 1000,
	};

	memset(&F, 0, sizeof(F));
	return ph_trk_new(&cfg, &fake_ops, NULL, NULL);
}

/* ---------------------------------------------------------------------- */
/* Events                                                                  */
/* ---------------------------------------------------------------------- */

#define SRV4 "10.0.0.1"
#define CLI4 "10.0.0.2"
#define SRV6 "2001:db8::1"
#define CLI6 "2001:db8::2"
#define CPORT 40000
#define ISN_C 1000u
#define ISN_S 5000u

static void addr(__u8 out[16], const char *s)
{
	memset(out, 0, 16);
	if (strchr(s, ':')) {
		inet_pton(AF_INET6, s, out);
	} else {
		out[10] = out[11] = 0xff;
		inet_pton(AF_INET, s, out + 12);
	}
}

static struct ph_flow_key mkkey(const char *l, __u16 lport, const char *r,
				__u16 rport)
{
	struct ph_flow_key k;

	memset(&k, 0, sizeof(k));
	addr(k.local, l);
	addr(k.remote, r);
	k.lport = htons(lport);
	k.rport = htons(rport);
	k.proto = IPPROTO_TCP;
	return k;
}

/* One control connection as the datapath would report it. */
struct conn {
	struct ph_tracker *t;
	struct ph_flow_key key;
	__u8 role;
	__u32 session;
	__u32 seq[2]; /* next sequence number: [0] server, [1] client */
	__u64 now;
};

static void conn_init(struct conn *c, struct ph_tracker *t, __u8 role,
		      bool v6, __u32 session)
{
	const char *srv = v6 ? SRV6 : SRV4, *cli = v6 ? CLI6 : CLI4;

	memset(c, 0, sizeof(*c));
	c->t = t;
	c->role = role;
	c->session = session;
	c->key = role == PH_ROLE_SERVER ? mkkey(srv, 21, cli, CPORT)
					: mkkey(cli, CPORT, srv, 21);
	c->seq[0] = ISN_S;
	c->seq[1] = ISN_C;
	c->now = T0;
}

static void base_ev(const struct conn *c, struct ph_event *ev, __u8 type)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->ts_ns = c->now;
	ev->key = c->key;
	ev->session = c->session;
	ev->host_role = c->role;
}

static void send_ev(struct conn *c, struct ph_event *ev, size_t size)
{
	EXPECT(ph_trk_event(c->t, ev, size, c->now) == 0, "event type %u",
	       ev->type);
}

/* CTRL_OPEN carries each side's first sequence number. */
static void c_open(struct conn *c)
{
	struct ph_ctrl_open_data od = { .client_nxt = c->seq[1],
					.server_nxt = c->seq[0] };
	struct ph_event ev;

	base_ev(c, &ev, PH_EV_CTRL_OPEN);
	memcpy(ev.data, &od, sizeof(od));
	ev.caplen = sizeof(od);
	send_ev(c, &ev, offsetof(struct ph_event, data) + sizeof(od));
}

static void c_close(struct conn *c)
{
	struct ph_event ev;

	base_ev(c, &ev, PH_EV_CTRL_CLOSE);
	send_ev(c, &ev, sizeof(ev));
}

/* A segment of len bytes of which the first caplen are captured. */
static void c_seg(struct conn *c, int from_client, const char *data,
		  __u16 len, __u16 caplen)
{
	struct ph_event ev;

	base_ev(c, &ev, PH_EV_CTRL_DATA);
	ev.from_client = (__u8)from_client;
	ev.seq = c->seq[from_client];
	ev.len = len;
	ev.caplen = caplen;
	memcpy(ev.data, data, caplen);
	/* Records are cut after the captured bytes, as bpf_ringbuf_output
	 * of a variable size would. */
	send_ev(c, &ev, offsetof(struct ph_event, data) + caplen);
	c->seq[from_client] += len;
}

static void c_send(struct conn *c, int from_client, const char *line)
{
	size_t n = strlen(line);

	c_seg(c, from_client, line, (__u16)n, (__u16)n);
}

/* The datapath installed key k from the next (or last, if fed) segment
 * of side from_client, of len bytes. */
static void c_bpf(struct conn *c, const struct ph_flow_key *k, __u8 dir,
		  int from_client, __u32 seq, __u16 len)
{
	struct ph_event ev;
	struct ph_expect v = { .deadline_ns = c->now + TTL,
			       .session = c->session, .dir = dir };
	int puts = F.expect_puts;

	f_expect_put(NULL, k, &v); /* the datapath's own write */
	F.expect_puts = puts;
	base_ev(c, &ev, PH_EV_EXPECT_BPF);
	ev.expect = *k;
	ev.from_client = (__u8)from_client;
	ev.seq = seq;
	ev.len = len;
	send_ev(c, &ev, sizeof(ev));
}

static void c_used_report(struct conn *c, const struct ph_flow_key *k)
{
	struct ph_event ev;

	base_ev(c, &ev, PH_EV_EXPECT_USED);
	ev.expect = *k;
	send_ev(c, &ev, sizeof(ev));
}

/* A data SYN took pinhole k (the datapath deletes it, then reports). */
static void c_used(struct conn *c, const struct ph_flow_key *k)
{
	int dels = F.expect_dels;

	f_expect_del(NULL, k);
	F.expect_dels = dels;
	c_used_report(c, k);
}

static bool has_expect(const struct ph_flow_key *k, __u8 dir, __u64 deadline,
		       __u32 session)
{
	int i = exp_find(k);

	return i >= 0 && F.exp[i].v.dir == dir &&
	       (!deadline || F.exp[i].v.deadline_ns == deadline) &&
	       F.exp[i].v.session == session;
}

static const struct ph_ftp_session_info *published(const struct conn *c)
{
	int i = ses_find(&c->key);

	return i < 0 ? NULL : &F.ses[i].v;
}

#define PASV227(p1, p2) "227 Entering Passive Mode (10,0,0,1," #p1 "," #p2 ").\r\n"

/* Bytes the datapath parsed and did not report (quiet, or lost). */
static void c_skip(struct conn *c, int from_client, const char *text)
{
	c->seq[from_client] += (__u32)strlen(text);
}

/* The datapath's parser state at c's positions, as a SYNC carries it. */
static struct ph_ctrl_sync c_state(const struct conn *c, __u8 last_cmd,
				   bool awaiting, const struct ph_flow_key *pin)
{
	struct ph_ctrl_sync d;

	memset(&d, 0, sizeof(d));
	d.ps.st[0].nxt = c->seq[0];
	d.ps.st[1].nxt = c->seq[1];
	d.ps.last_cmd = last_cmd;
	d.ps.awaiting = awaiting;
	if (pin) {
		d.ps.flags |= PH_FTPC_PINHOLE;
		d.ps.pinhole = *pin;
	}
	return d;
}

static void c_sync(struct conn *c, const struct ph_ctrl_sync *d)
{
	struct ph_event ev;

	base_ev(c, &ev, PH_EV_CTRL_SYNC);
	memcpy(ev.data, d, sizeof(*d));
	ev.caplen = sizeof(*d);
	send_ev(c, &ev, offsetof(struct ph_event, data) + sizeof(*d));
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */
/* ---------------------------------------------------------------------- */

static void test_four_cases(void)
{
	static const struct {
		const char *name;
		__u8 role;
		bool v6;
		const char *cmd, *reply;
		struct ph_flow_key key;
		__u8 dir;
		const char *log;
	} cases[] = {
		{ "server passive", PH_ROLE_SERVER, false, "PASV\r\n", PASV227(117, 49),
		  { .lport = 0 }, PH_DIR_IN,
		  "ftp: open tcp 10.0.0.1:30001 <- 10.0.0.2:* session 1a2b3c4d via PASV/227 ttl 30s" },
		{ "server active", PH_ROLE_SERVER, false, "PORT 10,0,0,2,117,50\r\n",
		  "200 PORT command successful.\r\n", { .lport = 0 }, PH_DIR_OUT,
		  "ftp: open tcp 10.0.0.1:* -> 10.0.0.2:30002 session 1a2b3c4d via PORT ttl 30s" },
		{ "client passive", PH_ROLE_CLIENT, false, "PASV\r\n", PASV227(117, 49),
		  { .lport = 0 }, PH_DIR_OUT,
		  "ftp: open tcp 10.0.0.2:* -> 10.0.0.1:30001 session 1a2b3c4d via PASV/227 ttl 30s" },
		{ "client active", PH_ROLE_CLIENT, false, "PORT 10,0,0,2,117,50\r\n",
		  "200 PORT command successful.\r\n", { .lport = 0 }, PH_DIR_IN,
		  "ftp: open tcp 10.0.0.2:30002 <- 10.0.0.1:* session 1a2b3c4d via PORT ttl 30s" },
		{ "server passive v6", PH_ROLE_SERVER, true, "EPSV\r\n",
		  "229 Entering Extended Passive Mode (|||30003|)\r\n", { .lport = 0 },
		  PH_DIR_IN,
		  "ftp: open tcp [2001:db8::1]:30003 <- [2001:db8::2]:* session 1a2b3c4d via EPSV/229" },
		{ "client active v6", PH_ROLE_CLIENT, true, "EPRT |2|2001:db8::2|30004|\r\n",
		  "200 EPRT command successful.\r\n", { .lport = 0 }, PH_DIR_IN,
		  "ftp: open tcp [2001:db8::2]:30004 <- [2001:db8::1]:* session 1a2b3c4d via EPRT" },
	};
	static const __u16 ports[] = { 30001, 30002, 30001, 30002, 30003, 30004 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ph_tracker *t = fresh(0);
		const char *srv = cases[i].v6 ? SRV6 : SRV4;
		const char *cli = cases[i].v6 ? CLI6 : CLI4;
		bool server = cases[i].role == PH_ROLE_SERVER;
		const char *l = server ? srv : cli, *r = server ? cli : srv;
		struct ph_flow_key k;
		const struct ph_ftp_session_info *info;
		struct conn c;

		cur_case = cases[i].name;
		conn_init(&c, t, cases[i].role, cases[i].v6, 0x1a2b3c4d);
		/* The SYN comes in for this host's port, goes out to the
		 * peer's; the initiator's port is the wildcard. */
		k = cases[i].dir == PH_DIR_IN ? mkkey(l, ports[i], r, 0)
					      : mkkey(l, 0, r, ports[i]);
		c_open(&c);
		c_send(&c, 0, "220 hello\r\n");
		c.now += SEC;
		c_send(&c, 1, cases[i].cmd);
		c_send(&c, 0, cases[i].reply);
		EXPECT(F.nexp == 1, "one pinhole, got %d", F.nexp);
		EXPECT(has_expect(&k, cases[i].dir, T0 + SEC + TTL, 0x1a2b3c4d),
		       "pinhole key/dir/deadline/session");
		EXPECT(log_count(cases[i].log, NULL) == 1, "log line '%s'",
		       cases[i].log);
		ph_trk_sweep(t, c.now);
		info = published(&c);
		EXPECT(info && info->has_pinhole && info->state == PH_SS_PLAIN &&
		       info->role == cases[i].role && info->opened == 1 &&
		       info->lines == 3 && info->pinhole_dir == cases[i].dir &&
		       !memcmp(&info->pinhole, &k, sizeof(k)),
		       "ftp_sessions entry");
		EXPECT(F.totals.sessions == 1 && F.totals.opened == 1 &&
		       F.totals.opened_bpf == 0 && F.totals.events == 4,
		       "totals: sessions %llu opened %llu events %llu",
		       (unsigned long long)F.totals.sessions,
		       (unsigned long long)F.totals.opened,
		       (unsigned long long)F.totals.events);
		/* Used by the data connection: single use. */
		c_used(&c, &k);
		EXPECT(F.nexp == 0, "used pinhole gone");
		EXPECT(log_count("ftp: used ", "session 1a2b3c4d") == 1, "used log");
		c.now += TTL;
		ph_trk_sweep(t, c.now);
		EXPECT(F.totals.used == 1 && F.totals.expired == 0,
		       "used, not expired");
		ph_trk_free(t);
	}
}

/* The datapath installs first, then reports the segment (the order asked
 * of it): the tracker confirms without writing, so a pinhole a SYN has
 * already taken is never re-armed. */
static void test_bpf_first(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key k = mkkey(SRV4, 30001, CLI4, 0);
	const char *reply = PASV227(117, 49);
	struct conn c;
	int puts;

	cur_case = "datapath first";
	conn_init(&c, t, PH_ROLE_SERVER, false, 7);
	c_open(&c);
	c_send(&c, 1, "PASV\r\n");
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], (__u16)strlen(reply));
	c_used(&c, &k); /* the SYN beat us: entry consumed already */
	puts = F.expect_puts;
	c_send(&c, 0, reply);
	EXPECT(F.expect_puts == puts, "confirmation writes nothing");
	EXPECT(F.nexp == 0, "the used pinhole is not re-armed");
	ph_trk_sweep(t, c.now);
	EXPECT(F.totals.opened == 1 && F.totals.opened_bpf == 1 &&
	       F.totals.used == 1, "opened %llu opened_bpf %llu used %llu",
	       (unsigned long long)F.totals.opened,
	       (unsigned long long)F.totals.opened_bpf,
	       (unsigned long long)F.totals.used);
	EXPECT(log_count("installed by the datapath first", NULL) == 1,
	       "open log says the datapath was first");
	EXPECT(log_count("DATAPATH BUG", NULL) == 0, "no disagreement");
	EXPECT(!published(&c)->has_pinhole, "nothing pending");

	/* Again, not used yet: the datapath's entry stays as it wrote it. */
	c.now += SEC;
	c_send(&c, 1, "PASV\r\n");
	reply = PASV227(117, 50);
	k = mkkey(SRV4, 30002, CLI4, 0);
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], (__u16)strlen(reply));
	puts = F.expect_puts;
	c_send(&c, 0, reply);
	EXPECT(F.expect_puts == puts && has_expect(&k, PH_DIR_IN, c.now + TTL, 7),
	       "datapath entry kept, idempotent");
	/* A reported twice install changes nothing either. */
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0] - (__u32)strlen(reply),
	      (__u16)strlen(reply));
	EXPECT(F.nexp == 1 && log_count("DATAPATH BUG", NULL) == 0,
	       "duplicate report is harmless");
	/* Same port again in a new negotiation: the fresh install is not
	 * deleted by the revocation of the old one. */
	c.now += SEC;
	c_send(&c, 1, "PASV\r\n");
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], (__u16)strlen(reply));
	c_send(&c, 0, reply);
	EXPECT(has_expect(&k, PH_DIR_IN, c.now + TTL, 7),
	       "re-negotiated same key stays installed");
	ph_trk_sweep(t, c.now);
	EXPECT(F.totals.opened == 3 && F.totals.opened_bpf == 3 &&
	       F.totals.revoked == 1, "opened %llu bpf %llu revoked %llu",
	       (unsigned long long)F.totals.opened,
	       (unsigned long long)F.totals.opened_bpf,
	       (unsigned long long)F.totals.revoked);
	ph_trk_free(t);
}

/* The other order: segment first, then the datapath's report of it. */
static void test_bpf_after(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key k = mkkey(SRV4, 30001, CLI4, 0);
	const char *reply = PASV227(117, 49);
	__u32 seq;
	struct conn c;

	cur_case = "datapath reports after the segment";
	conn_init(&c, t, PH_ROLE_SERVER, false, 8);
	c_open(&c);
	c_send(&c, 1, "PASV\r\n");
	seq = c.seq[0];
	c_send(&c, 0, reply);
	EXPECT(has_expect(&k, PH_DIR_IN, 0, 8), "tracker installed it");
	c_bpf(&c, &k, PH_DIR_IN, 0, seq, (__u16)strlen(reply));
	EXPECT(log_count("DATAPATH BUG", NULL) == 0, "agreement");
	/* The SYN took the datapath's entry before our write re-armed it:
	 * the map still holds our copy when the USED report arrives, and
	 * the tracker removes it. */
	EXPECT(F.nexp == 1, "the re-armed copy is in the map");
	c_used_report(&c, &k);
	EXPECT(F.nexp == 0, "no re-armed pinhole after USED");
	ph_trk_free(t);
}

static void test_close_revokes(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key k = mkkey(SRV4, 30001, CLI4, 0);
	struct conn c;

	cur_case = "close revokes";
	conn_init(&c, t, PH_ROLE_SERVER, false, 9);
	c_open(&c);
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, PASV227(117, 49));
	EXPECT(F.nexp == 1, "open");
	c.now += SEC;
	c_close(&c);
	EXPECT(F.nexp == 0, "revoked on close");
	EXPECT(log_count("ftp: revoked (control closed) tcp 10.0.0.1:30001 <- 10.0.0.2:*",
			 "session 00000009") == 1, "revoke log");
	ph_trk_sweep(t, c.now);
	EXPECT(published(&c) && published(&c)->state == PH_SS_CLOSED &&
	       published(&c)->revoked == 1, "closed session still shown");
	EXPECT(F.totals.revoked == 1, "revoked counted");
	/* Data after the close (a retransmission) opens nothing. */
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, PASV227(117, 50));
	EXPECT(F.nexp == 0, "nothing after close");
	ph_trk_sweep(t, c.now + PH_TRK_LINGER_NS);
	EXPECT(!published(&c) && ph_trk_nsessions(t) == 0,
	       "removed after the linger");
	/* A new connection on the same 4-tuple starts afresh. */
	c.now += 10 * SEC;
	c_open(&c);
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, PASV227(117, 49));
	EXPECT(F.nexp == 1 && has_expect(&k, PH_DIR_IN, 0, 9), "reused 4-tuple");
	ph_trk_free(t);
}

static void test_expiry(void)
{
	struct ph_tracker *t = fresh(0);
	struct conn c;

	cur_case = "expiry";
	conn_init(&c, t, PH_ROLE_CLIENT, false, 10);
	c_open(&c);
	c_send(&c, 1, "PORT 10,0,0,2,117,50\r\n");
	c_send(&c, 0, "200 ok\r\n");
	EXPECT(F.nexp == 1, "open");
	ph_trk_sweep(t, T0 + TTL - 1);
	EXPECT(F.nexp == 1, "alive before its deadline");
	ph_trk_sweep(t, T0 + TTL);
	EXPECT(F.nexp == 0, "deleted at its deadline");
	EXPECT(F.totals.expired == 1 && published(&c)->expired == 1 &&
	       !published(&c)->has_pinhole, "expired counted");
	EXPECT(log_count("ftp: expired tcp 10.0.0.2:30002 <- 10.0.0.1:*", NULL) == 1,
	       "expired log");
	ph_trk_sweep(t, T0 + 2 * TTL);
	EXPECT(F.totals.expired == 1, "counted once");
	/* A TTL change applies to sessions opened later. */
	ph_trk_set_ttl(t, 5 * SEC);
	conn_init(&c, t, PH_ROLE_CLIENT, false, 11);
	c.key.lport = htons(40001);
	c.now = T0 + 3 * TTL;
	c_open(&c);
	c_send(&c, 1, "PORT 10,0,0,2,117,50\r\n");
	EXPECT(F.nexp == 1 && F.exp[0].v.deadline_ns == c.now + 5 * SEC,
	       "new TTL");
	ph_trk_free(t);
}

static void test_refusals(void)
{
	struct ph_tracker *t = fresh(0);
	struct conn c;

	cur_case = "refusals";
	conn_init(&c, t, PH_ROLE_SERVER, false, 12);
	c_open(&c);
	c_send(&c, 1, "PORT 10,9,9,9,117,50\r\n");
	c_send(&c, 0, "200 ok\r\n");
	c_send(&c, 1, "PORT 10,0,0,2,0,80\r\n");
	c_send(&c, 0, "200 ok\r\n");
	c_send(&c, 0, PASV227(117, 49)); /* unsolicited */
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, "227 Entering Passive Mode (10,9,9,9,117,49).\r\n");
	c_send(&c, 1, "PORT 10,0,0,2,999,1\r\n");
	EXPECT(F.nexp == 0, "nothing opened");
	ph_trk_sweep(t, c.now);
	EXPECT(F.totals.refused == 5, "refused %llu",
	       (unsigned long long)F.totals.refused);
	EXPECT(F.totals.refused_by_reason[PH_FTP_REFUSE_BOUNCE] == 1 &&
	       F.totals.refused_by_reason[PH_FTP_REFUSE_LOW_PORT] == 1 &&
	       F.totals.refused_by_reason[PH_FTP_REFUSE_UNSOLICITED] == 1 &&
	       F.totals.refused_by_reason[PH_FTP_REFUSE_THIRD_PARTY] == 1 &&
	       F.totals.refused_by_reason[PH_FTP_REFUSE_BAD_NUMBER] == 1,
	       "by reason");
	EXPECT(log_count("ftp: refused bounce: PORT names 10.9.9.9, control client is 10.0.0.2 session 0000000c",
			 NULL) == 1, "bounce log");
	EXPECT(log_count("ftp: refused third_party: 227 names 10.9.9.9, control server is 10.0.0.1",
			 NULL) == 1, "third party log");
	EXPECT(log_count("ftp: refused low_port: PORT announces port 80", NULL) == 1,
	       "low port log");
	EXPECT(published(&c)->refused == 5, "per session");
	ph_trk_free(t);
}

/* The datapath installed what the tracker refuses or does not open. */
static void test_bpf_disagrees(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key bounce = mkkey(SRV4, 0, "10.9.9.9", 30002);
	struct ph_flow_key k = mkkey(SRV4, 30001, CLI4, 0);
	const char *line = "PORT 10,9,9,9,117,50\r\n";
	struct conn c;

	cur_case = "datapath disagrees";
	conn_init(&c, t, PH_ROLE_SERVER, false, 13);
	c_open(&c);
	c_bpf(&c, &bounce, PH_DIR_OUT, 1, c.seq[1], (__u16)strlen(line));
	c_send(&c, 1, line);
	EXPECT(F.nexp == 0, "refused datapath pinhole deleted");
	EXPECT(log_count("DATAPATH BUG", "refused (bounce)") == 1, "loud log");
	/* A 227 the tracker finds unsolicited (no PASV). */
	c_send(&c, 0, "200 ok\r\n");
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], (__u16)strlen(PASV227(117, 49)));
	c_send(&c, 0, PASV227(117, 49));
	EXPECT(F.nexp == 0 && log_count("DATAPATH BUG", "unsolicited") == 1,
	       "unsolicited datapath pinhole deleted");
	/* A port the tracker did not parse at all. */
	c_send(&c, 1, "PASV\r\n");
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], 12);
	c_send(&c, 0, "500 no way\r\n");
	EXPECT(F.nexp == 0 && log_count("DATAPATH BUG", "did not open") == 1,
	       "unopened datapath pinhole deleted");
	/* Installed for a closed control connection. */
	c_close(&c);
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], 10);
	EXPECT(F.nexp == 0 && log_count("DATAPATH BUG", "closed") == 1,
	       "after close");
	/* Never confirmed (its segment never reported): expires. */
	conn_init(&c, t, PH_ROLE_SERVER, false, 14);
	c.key.rport = htons(40002);
	c_open(&c);
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], 40);
	ph_trk_sweep(t, c.now + TTL);
	EXPECT(F.nexp == 0 && log_count("never confirmed", NULL) == 1,
	       "unconfirmed expires");
	ph_trk_free(t);
}

/* caplen < len: the missing bytes are lost, and the stream resyncs at the
 * next line instead of waiting for bytes that will never come. */
static void test_truncated(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key k2 = mkkey(SRV4, 30002, CLI4, 0);
	const char *cut = "227 Entering Passive Mode (10,0,0,1,117,4";
	struct conn c;

	cur_case = "truncated segments";
	conn_init(&c, t, PH_ROLE_SERVER, false, 15);
	c_open(&c);
	/* A 600-byte banner of which 16 bytes were captured. */
	c_seg(&c, 0, "220 Welcome to a", 600, 16);
	c_send(&c, 1, "PASV\r\n");
	/* Merged with the cut banner line: fail closed, nothing opens. */
	c_send(&c, 0, PASV227(117, 49));
	EXPECT(F.nexp == 0, "the line after the loss is not trusted");
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, PASV227(117, 50));
	EXPECT(F.nexp == 1 && has_expect(&k2, PH_DIR_IN, 0, 15),
	       "resynchronised at the next line");
	/* A 227 cut inside its numbers never opens the wrong port. */
	c_send(&c, 1, "PASV\r\n");
	c_seg(&c, 0, cut, (__u16)(strlen(cut) + 5), (__u16)strlen(cut));
	c_send(&c, 0, "200 next\r\n");
	EXPECT(F.nexp == 0, "cut 227 opened nothing (old one revoked: %d)",
	       F.nexp);
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, PASV227(117, 50));
	EXPECT(F.nexp == 1, "and resyncs again");
	ph_trk_sweep(t, c.now);
	EXPECT(F.totals.events_lost == 2, "events_lost %llu",
	       (unsigned long long)F.totals.events_lost);
	/* A record shorter than its header is counted, not parsed. */
	EXPECT(ph_trk_event(t, "x", 1, c.now) == -EINVAL, "short record");
	ph_trk_free(t);
}

static void test_table_bound(void)
{
	struct ph_tracker *t = fresh(4);
	struct conn c[6];

	cur_case = "session table bound";
	for (int i = 0; i < 6; i++) {
		conn_init(&c[i], t, PH_ROLE_SERVER, false, 100 + (__u32)i);
		c[i].key.rport = htons((__u16)(41000 + i));
		c[i].now = T0 + (__u64)i * SEC;
	}
	for (int i = 0; i < 4; i++)
		c_open(&c[i]);
	/* Session 0 holds a pinhole; session 1 is closed. */
	c_send(&c[0], 1, "PASV\r\n");
	c_send(&c[0], 0, PASV227(117, 49));
	c[0].now = c[3].now + SEC; /* 0 is now the most recently active */
	c_send(&c[0], 1, "NOOP\r\n");
	c_close(&c[1]);
	c_open(&c[4]); /* takes the closed one's place */
	EXPECT(ph_trk_nsessions(t) == 4, "bounded: %u", ph_trk_nsessions(t));
	EXPECT(F.nexp == 1, "session 0 untouched");
	c_open(&c[5]); /* evicts the least recently active: 2 */
	EXPECT(ph_trk_nsessions(t) == 4, "still bounded");
	EXPECT(log_count("session table full", "dropping session 00000066") == 1,
	       "evicted the oldest open session");
	c_send(&c[0], 1, "NOOP\r\n");
	EXPECT(F.nexp == 1, "session 0 kept its pinhole");
	for (int i = 6; i < 12; i++) {
		struct conn x;

		conn_init(&x, t, PH_ROLE_SERVER, false, 100 + (__u32)i);
		x.key.rport = htons((__u16)(41000 + i));
		x.now = T0 + 20 * SEC + (__u64)i;
		c_open(&x);
	}
	EXPECT(ph_trk_nsessions(t) == 4 && F.nexp == 0,
	       "evicted session's pinhole revoked");
	EXPECT(log_count("revoked (session table full)", "session 00000064") == 1,
	       "revoke log on eviction");
	ph_trk_free(t);
}

static void test_orphans(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key a = mkkey(SRV4, 30005, CLI4, 0);
	struct ph_flow_key b = mkkey(SRV4, 30006, CLI4, 0);
	struct ph_expect old = { .deadline_ns = T0 - 1, .session = 77 };
	struct ph_expect live = { .deadline_ns = T0 + SEC, .session = 78 };

	cur_case = "orphans";
	f_expect_put(NULL, &a, &old);
	f_expect_put(NULL, &b, &live);
	ph_trk_sweep(t, T0);
	EXPECT(F.nexp == 1 && exp_find(&b) >= 0, "expired orphan deleted");
	EXPECT(F.totals.expired == 1 && log_count("(orphan)", NULL) == 1,
	       "counted and logged");
	ph_trk_free(t);
}

static void test_log_rate(void)
{
	struct ph_trk_config cfg = { .ttl_ns = TTL, .log_rate = 1,
				     .log_burst = 2, .hash_seed = { 3, 4 } };
	struct ph_tracker *t;
	struct conn c;

	cur_case = "log rate limit";
	memset(&F, 0, sizeof(F));
	t = ph_trk_new(&cfg, &fake_ops, NULL, NULL);
	conn_init(&c, t, PH_ROLE_SERVER, false, 16);
	c_open(&c);
	for (int i = 0; i < 5; i++) {
		c_send(&c, 1, "PORT 10,9,9,9,117,50\r\n");
		c_send(&c, 0, "500 no\r\n");
	}
	EXPECT(F.nlog == 2, "burst of 2, got %d", F.nlog);
	ph_trk_sweep(t, c.now + 10 * SEC);
	EXPECT(log_count("3 log lines suppressed", NULL) == 1, "suppressed count");
	EXPECT(F.totals.refused == 5, "all counted anyway");
	ph_trk_free(t);
}

/* The SYN took the datapath's pinhole before the datapath reported it. */
static void test_used_before_bpf(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key k = mkkey(SRV4, 30001, CLI4, 0);
	struct ph_flow_key syn = mkkey(SRV4, 30001, CLI4, 51234);
	const char *reply = PASV227(117, 49);
	struct ph_event ev;
	struct conn c;

	cur_case = "used before the datapath's report";
	conn_init(&c, t, PH_ROLE_SERVER, false, 18);
	c_open(&c);
	c_send(&c, 1, "PASV\r\n");
	base_ev(&c, &ev, PH_EV_EXPECT_USED);
	ev.key = syn; /* the data connection's own key */
	ev.expect = k;
	send_ev(&c, &ev, sizeof(ev));
	EXPECT(log_count("ftp: used", NULL) == 0, "waits for its owner");
	c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], (__u16)strlen(reply));
	f_expect_del(NULL, &k); /* it was taken */
	c_send(&c, 0, reply);
	EXPECT(F.nexp == 0, "not re-armed");
	EXPECT(log_count("ftp: used tcp 10.0.0.1:30001 <- 10.0.0.2:* session 00000012",
			 NULL) == 1, "attributed");
	ph_trk_sweep(t, c.now + TTL);
	EXPECT(F.totals.used == 1 && F.totals.expired == 0 &&
	       published(&c)->used == 1 && !published(&c)->has_pinhole,
	       "used once, never expired");
	/* One that never finds its owner is logged after a while. */
	send_ev(&c, &ev, sizeof(ev));
	ph_trk_sweep(t, c.now + TTL + 3 * SEC);
	EXPECT(log_count("(not tracked)", NULL) == 1, "orphan used logged");
	ph_trk_free(t);
}

/* With the handshake's sequence numbers, a reordered first segment is
 * held, not taken as the start of the stream. */
static void test_isn(void)
{
	struct ph_tracker *t = fresh(0);
	struct conn c;
	__u32 s0;

	cur_case = "ISN from CTRL_OPEN";
	conn_init(&c, t, PH_ROLE_SERVER, false, 19);
	c_open(&c);
	s0 = c.seq[1];
	c.seq[1] = s0 + 2;
	c_send(&c, 1, "SV\r\n"); /* arrives first */
	c.seq[1] = s0;
	c_send(&c, 1, "PA");
	c.seq[1] = s0 + 6;
	c_send(&c, 0, PASV227(117, 49));
	EXPECT(F.nexp == 1, "PASV reassembled, 227 accepted");
	ph_trk_free(t);
}

static void test_names(void)
{
	struct ph_flow_key k = mkkey(SRV6, 0, CLI6, 5001);
	char buf[160];

	cur_case = "names";
	ph_trk_fmt_pinhole(&k, PH_DIR_OUT, buf, sizeof(buf));
	EXPECT(!strcmp(buf, "tcp [2001:db8::1]:* -> [2001:db8::2]:5001"), "%s", buf);
	EXPECT(!strcmp(ph_trk_state_name(PH_SS_ENCRYPTED), "encrypted") &&
	       !strcmp(ph_trk_role_name(PH_ROLE_CLIENT), "client") &&
	       !strcmp(ph_trk_dir_name(PH_DIR_IN), "in"), "names");
}

/* AUTH TLS accepted: state auth, then encrypted, pending revoked. */
static void test_encrypted(void)
{
	struct ph_tracker *t = fresh(0);
	struct conn c;

	cur_case = "encrypted";
	conn_init(&c, t, PH_ROLE_SERVER, false, 17);
	c_open(&c);
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, PASV227(117, 49));
	c_send(&c, 1, "AUTH TLS\r\n");
	ph_trk_sweep(t, c.now);
	EXPECT(published(&c)->state == PH_SS_AUTH, "auth pending");
	c_send(&c, 0, "234 Proceed with negotiation.\r\n");
	ph_trk_sweep(t, c.now);
	EXPECT(published(&c)->state == PH_SS_ENCRYPTED && F.nexp == 0,
	       "encrypted, pinhole revoked");
	EXPECT(log_count("revoked (control channel encrypted)", NULL) == 1,
	       "revoke reason");
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, PASV227(117, 50));
	EXPECT(F.nexp == 0, "nothing parsed any more");
	ph_trk_free(t);
}

/* Chatter the datapath did not report: the SYNC brings the streams to the
 * next record, which then confirms the datapath's pinhole. Without it,
 * the PASV would wait out of order and the 227's pinhole be refused. */
static void test_sync_quiet(void)
{
	const char *reply = PASV227(117, 49);
	struct ph_flow_key k = mkkey(SRV4, 30001, CLI4, 0);
	for (int with_sync = 0; with_sync < 2; with_sync++) {
		struct ph_tracker *t = fresh(0);
		struct ph_ctrl_sync d;
		struct conn c;
		__u32 skipped = 0;

		cur_case = with_sync ? "quiet records, SYNC" :
				       "quiet records, no SYNC";
		conn_init(&c, t, PH_ROLE_SERVER, false, 21);
		c_open(&c);
		for (int i = 0; i < 1000; i++) {
			c_skip(&c, 1, "NOOP\r\n");
			c_skip(&c, 0, "200 NOOP ok.\r\n");
			skipped += 6 + 14;
		}
		d = c_state(&c, PH_FTPC_CMD_OTHER, false, NULL);
		if (with_sync)
			c_sync(&c, &d);
		c_send(&c, 1, "PASV\r\n");
		c_bpf(&c, &k, PH_DIR_IN, 0, c.seq[0], (__u16)strlen(reply));
		c_send(&c, 0, reply);
		ph_trk_sweep(t, c.now);
		if (with_sync) {
			EXPECT(F.totals.opened == 1 && F.totals.opened_bpf == 1,
			       "opened %llu opened_bpf %llu",
			       (unsigned long long)F.totals.opened,
			       (unsigned long long)F.totals.opened_bpf);
			EXPECT(log_count("DATAPATH BUG", NULL) == 0 &&
			       has_expect(&k, PH_DIR_IN, 0, 21),
			       "the datapath's pinhole stays");
			EXPECT(F.totals.syncs == 1 &&
			       F.totals.quiet_bytes == skipped,
			       "syncs %llu quiet_bytes %llu want %u",
			       (unsigned long long)F.totals.syncs,
			       (unsigned long long)F.totals.quiet_bytes, skipped);
		} else {
			/* The records alone leave a hole the parser cannot
			 * cross: what the SYNC is for. */
			EXPECT(F.totals.opened == 0, "opened across a hole");
		}
		ph_trk_free(t);
	}
}

/* The SYNC's pairing counts: a NOOP the tracker never saw after PASV
 * makes the 227 unsolicited, as it did in the datapath. */
static void test_sync_pairing(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_ctrl_sync d;
	struct conn c;

	cur_case = "SYNC pairing";
	conn_init(&c, t, PH_ROLE_SERVER, false, 22);
	c_open(&c);
	c_send(&c, 1, "PASV\r\n");
	c_skip(&c, 1, "NOOP\r\n");
	d = c_state(&c, PH_FTPC_CMD_OTHER, true, NULL);
	c_sync(&c, &d);
	c_send(&c, 0, PASV227(117, 49));
	ph_trk_sweep(t, c.now);
	EXPECT(F.totals.opened == 0 &&
	       F.totals.refused_by_reason[PH_FTP_REFUSE_UNSOLICITED] == 1,
	       "opened %llu unsolicited %llu", (unsigned long long)F.totals.opened,
	       (unsigned long long)F.totals.refused_by_reason[PH_FTP_REFUSE_UNSOLICITED]);
	/* A command split before the SYNC: its head comes with it. */
	c_skip(&c, 1, "PA");
	d = c_state(&c, PH_FTPC_CMD_OTHER, false, NULL);
	d.ps.st[1].line_len = 2;
	d.ps.st[1].head = 'P' | 'A' << 8;
	c_sync(&c, &d);
	c_send(&c, 1, "SV\r\n");
	c_send(&c, 0, PASV227(117, 50));
	ph_trk_sweep(t, c.now);
	EXPECT(F.totals.opened == 1, "a PASV split over the SYNC did not open");
	ph_trk_free(t);
}

/* Records lost (ring buffer full): the tracker's own pinhole goes, the
 * datapath's is kept unjudged, and a line not seen whole makes the next
 * datapath pinhole unjudged too rather than deleted. */
static void test_sync_lost(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key k1 = mkkey(SRV4, 30001, CLI4, 0);
	struct ph_flow_key k2 = mkkey(SRV4, 30002, CLI4, 0);
	struct ph_flow_key k3 = mkkey(SRV4, 30003, CLI4, 0);
	const char *reply = PASV227(117, 51);
	struct ph_ctrl_sync d;
	struct conn c;

	cur_case = "SYNC after lost records";
	conn_init(&c, t, PH_ROLE_SERVER, false, 23);
	c_open(&c);
	c_send(&c, 1, "PASV\r\n");
	c_send(&c, 0, PASV227(117, 49));
	EXPECT(has_expect(&k1, PH_DIR_IN, 0, 23), "tracker's pinhole");
	/* Lost: PASV, the 227 for k2 (the datapath installed it) */
	c_skip(&c, 1, "PASV\r\n");
	c_skip(&c, 0, PASV227(117, 50));
	f_expect_del(NULL, &k1);
	{
		struct ph_expect v = { .deadline_ns = c.now + TTL,
				       .session = 23, .dir = PH_DIR_IN };
		f_expect_put(NULL, &k2, &v);
	}
	d = c_state(&c, PH_FTPC_CMD_PASV, false, &k2);
	d.flags = PH_SYNC_LOST;
	c_sync(&c, &d);
	ph_trk_sweep(t, c.now);
	EXPECT(log_count("revoked (records lost)", NULL) == 1,
	       "the tracker's pinhole is revoked");
	EXPECT(has_expect(&k2, PH_DIR_IN, 0, 23) && F.totals.kept == 1 &&
	       log_count("ftp: kept tcp 10.0.0.1:30002", NULL) == 1,
	       "the datapath's pinhole is kept (kept %llu)",
	       (unsigned long long)F.totals.kept);
	EXPECT(published(&c) && published(&c)->state == PH_SS_PLAIN,
	       "session published");
	/* Lost again, ending inside a long line: the tracker cannot see it
	 * whole, so it refuses the next 227, and keeps the datapath's. */
	c_send(&c, 1, "PASV\r\n");
	c_skip(&c, 0, "  reply text the tracker only");
	d = c_state(&c, PH_FTPC_CMD_PASV, true, &k2);
	d.ps.st[0].line_len = 29;
	d.flags = PH_SYNC_LOST;
	c_sync(&c, &d);
	{
		char rec[128];

		snprintf(rec, sizeof(rec), " saw in part\r\n%s", reply);
		f_expect_del(NULL, &k2); /* the datapath replaces its own */
		c_bpf(&c, &k3, PH_DIR_IN, 0, c.seq[0], (__u16)strlen(rec));
		c_send(&c, 0, rec);
	}
	ph_trk_sweep(t, c.now);
	EXPECT(log_count("DATAPATH BUG", NULL) == 0 &&
	       has_expect(&k3, PH_DIR_IN, 0, 23) &&
	       log_count("ftp: kept tcp 10.0.0.1:30003", "not seen whole") == 1,
	       "a datapath pinhole after a blind line was deleted");
	/* The close removes what the datapath left. */
	c_close(&c);
	EXPECT(!has_expect(&k2, PH_DIR_IN, 0, 23) &&
	       !has_expect(&k3, PH_DIR_IN, 0, 23), "kept pinholes closed");
	ph_trk_free(t);
}

/* A tracker starting next to a running datapath takes over ftp_ctrl's
 * sessions; the records the ring buffer still held from before (an older
 * install, another connection's CLOSE) change nothing. */
static void test_adopt(void)
{
	struct ph_tracker *t = fresh(0);
	struct ph_flow_key k1 = mkkey(SRV4, 30001, CLI4, 0);
	struct ph_flow_key k2 = mkkey(SRV4, 30002, CLI4, 0);
	const char *reply = PASV227(117, 50);
	struct ph_ftp_ctrl fc;
	struct ph_ctrl_sync d;
	struct ph_event ev;
	struct conn c;
	__u32 old_seq;

	cur_case = "adoption from ftp_ctrl";
	conn_init(&c, t, PH_ROLE_SERVER, true, 24);
	old_seq = c.seq[0];
	c_skip(&c, 1, "PASV\r\n");
	c_skip(&c, 0, PASV227(117, 49));
	d = c_state(&c, PH_FTPC_CMD_PASV, false, &k1);
	memset(&fc, 0, sizeof(fc));
	fc.role = PH_ROLE_SERVER;
	fc.family = 6;
	fc.session = 24;
	fc.created_ns = T0 - 60 * SEC;
	fc.ps = d.ps;
	k1 = mkkey(SRV6, 30001, CLI6, 0);
	k2 = mkkey(SRV6, 30002, CLI6, 0);
	fc.ps.pinhole = k1;
	EXPECT(ph_trk_adopt(t, &c.key, &fc, c.now) == 0, "adopt");
	EXPECT(ph_trk_adopt(t, &c.key, &fc, c.now) == -EEXIST, "adopt twice");
	ph_trk_sweep(t, c.now);
	EXPECT(published(&c) && published(&c)->session == 24 &&
	       published(&c)->started_ns == T0 - 60 * SEC &&
	       F.totals.adopted == 1 && F.totals.kept == 1,
	       "adopted session published (adopted %llu kept %llu)",
	       (unsigned long long)F.totals.adopted,
	       (unsigned long long)F.totals.kept);
	/* Backlog: the datapath's report of k1's install, from before. */
	base_ev(&c, &ev, PH_EV_EXPECT_BPF);
	ev.expect = k1;
	ev.seq = old_seq;
	ev.len = (__u16)strlen(PASV227(117, 49));
	send_ev(&c, &ev, sizeof(ev));
	/* ... and a CLOSE of an older connection on the same 4-tuple */
	base_ev(&c, &ev, PH_EV_CTRL_CLOSE);
	ev.session = 99;
	send_ev(&c, &ev, sizeof(ev));
	ph_trk_sweep(t, c.now);
	EXPECT(log_count("DATAPATH BUG", NULL) == 0 &&
	       published(&c)->state == PH_SS_PLAIN,
	       "backlog changed the adopted session");
	/* The session goes on: EPSV, the datapath first, confirmed. */
	c_send(&c, 1, "EPSV\r\n");
	reply = "229 Entering Extended Passive Mode (|||30002|)\r\n";
	c_bpf(&c, &k2, PH_DIR_IN, 0, c.seq[0], (__u16)strlen(reply));
	c_send(&c, 0, reply);
	ph_trk_sweep(t, c.now);
	EXPECT(F.totals.opened_bpf == 1 && log_count("DATAPATH BUG", NULL) == 0,
	       "EPSV after the adoption: opened_bpf %llu",
	       (unsigned long long)F.totals.opened_bpf);
	ph_trk_free(t);
}

/* Connections gone without a CLOSE (a full ring buffer lost it): no
 * session is made from their records, and open ones are closed. */
static void test_gone(void)
{
	struct ph_tracker *t = fresh(0);
	struct conn c, d;

	cur_case = "control connection gone";
	conn_init(&c, t, PH_ROLE_SERVER, false, 25);
	c_open(&c);
	c_send(&c, 1, "NOOP\r\n");
	conn_init(&d, t, PH_ROLE_CLIENT, false, 26);
	F.dead = true;
	c_send(&d, 1, "NOOP\r\n"); /* a record of a dead connection */
	EXPECT(ph_trk_nsessions(t) == 1, "%u sessions", ph_trk_nsessions(t));
	ph_trk_sweep(t, c.now);
	EXPECT(ph_trk_nsessions(t) == 1, "closed at the first scan");
	ph_trk_sweep(t, c.now + PH_TRK_ORPHAN_SCAN_NS);
	EXPECT(published(&c) && published(&c)->state == PH_SS_CLOSED &&
	       log_count("control connection gone", NULL) == 1,
	       "not closed at the second scan");
	ph_trk_free(t);
}

int main(void)
{
	test_four_cases();
	test_bpf_first();
	test_bpf_after();
	test_close_revokes();
	test_expiry();
	test_refusals();
	test_bpf_disagrees();
	test_truncated();
	test_table_bound();
	test_orphans();
	test_log_rate();
	test_names();
	test_encrypted();
	test_used_before_bpf();
	test_isn();
	test_sync_quiet();
	test_sync_pairing();
	test_sync_lost();
	test_adopt();
	test_gone();
	if (failures) {
		fprintf(stderr, "%d of %d checks failed\n", failures, checks);
		return 1;
	}
	printf("PASS: %d checks\n", checks);
	return 0;
}
