// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The datapath's half of FTP tracking (bpf/lib/ftp.h): scripted control
 * sessions through both programs (XDP for what arrives, TC for what
 * leaves) sharing pinned maps, the `events` ring buffer read back after
 * every packet. Each test opens a control connection (handshake through
 * the programs), exchanges lines, and checks the pinholes the datapath
 * installs itself, the data SYNs they admit, and the records it reports.
 *
 * Needs root (exit 77 otherwise). Maps are pinned under a private
 * /sys/fs/bpf/ph-ftpdp-<pid>, removed at exit.
 */
#include "bpf/fixture.h"
#include "bpf/ctl.h"
#include "ftp.h" /* user/ftp.c, the authority, for the differential test */
#include "tracker.h" /* how the tracker reads a SYNC record */

enum { R_FTP_IN, R_FTP_OUT, R_FTPS_IN };

static struct fx *F;
static const char *tname = "";

#define CHECK(cond, ...) ASSERT(cond, tname, __VA_ARGS__)

/* ---- events ------------------------------------------------------------ */

#define EV_MAX 512

static struct {
	struct ph_event ev[EV_MAX];
	size_t size[EV_MAX];
	int n;
} evl;
static struct ring_buffer *rb;
static bool hold_ring; /* leave the ring buffer unread (t_ring) */

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (evl.n < EV_MAX) {
		memset(&evl.ev[evl.n], 0, sizeof(evl.ev[0]));
		memcpy(&evl.ev[evl.n], data,
		       size < sizeof(evl.ev[0]) ? size : sizeof(evl.ev[0]));
		evl.size[evl.n] = size;
		evl.n++;
	}
	return 0;
}

static void ev_drain(void)
{
	if (!hold_ring)
		ring_buffer__consume(rb);
}

static void ev_reset(void)
{
	ev_drain();
	evl.n = 0;
}

static int ev_count(int type)
{
	int i, n = 0;

	for (i = 0; i < evl.n; i++)
		n += evl.ev[i].type == type;
	return n;
}

/* The last event of @type, or NULL. */
static const struct ph_event *ev_last(int type)
{
	int i;

	for (i = evl.n - 1; i >= 0; i--)
		if (evl.ev[i].type == type)
			return &evl.ev[i];
	return NULL;
}

static int ev_index(const struct ph_event *e)
{
	return e ? (int)(e - evl.ev) : -1;
}

/* ---- packets ------------------------------------------------------------ */

/* Runs @p through the program of @dir; returns the reason whose counter
 * moved (one exactly), or -1. The ring buffer is drained after each. */
static int run_reason(int dir, const struct pkt_spec *p)
{
	__u8 buf[PKT_MAX];
	int len = pkt_build(p, buf);
	int reason = fx_run_reason(F, dir, buf, len);

	if (reason == -2)
		fail(tname, "test run or counter read failed: %s",
		     strerror(errno));
	ev_drain();
	return reason < 0 ? -1 : reason;
}

static const char *rname(int r)
{
	return r >= 0 && r < PH_R_MAX ? reason_names[r] : "?";
}

#define CHECK_REASON(got, want, what)                                          \
	CHECK((got) == (want), "%s: %s, want %s", what, rname(got),           \
	      rname(want))

/* ---- control sessions --------------------------------------------------- */

/* A segment at an explicit sequence number; returns the reason. */
static int seg_at(struct ctl *s, int from_client, __u32 seq, const void *data,
		  int len, __u8 flags)
{
	struct pkt_spec p = ctl_spec(s, from_client, flags, seq,
				     from_client ? s->snxt : s->cnxt, data,
				     len);

	return run_reason(dir_of(s, from_client), &p);
}

/* The next segment of one side: @text, in order. */
static int say(struct ctl *s, int from_client, const char *text)
{
	int len = strlen(text);
	__u32 *nxt = from_client ? &s->cnxt : &s->snxt;
	int r = seg_at(s, from_client, *nxt, text, len, ACK | PSH);

	*nxt += len;
	CHECK_REASON(r, PH_R_PASS_FLOW, text);
	return r;
}

static void sess_init(struct ctl *s, int family, int role, __u16 cport)
{
	ctl_setup(s, family, role, 21, cport, 0x10000000u + cport * 7919u,
		  0xfffff000u + cport /* wraps within a test */);
}

/* The three-way handshake through the programs; checks CTRL_OPEN. */
static bool sess_open(struct ctl *s, int encrypted)
{
	__u32 cisn = s->cnxt, sisn = s->snxt;
	struct pkt_spec p;
	const struct ph_event *e;
	struct ph_ctrl_open_data od;
	struct ph_flow fl;
	bool ok = true;
	int r;

	ev_reset();
	p = ctl_spec(s, 1, SYN, cisn, 0, NULL, 0);
	r = run_reason(dir_of(s, 1), &p);
	ok &= CHECK(r == (s->role == SERVER ? PH_R_PASS_POLICY :
					      PH_R_PASS_POLICY),
		    "control SYN: %s", rname(r));
	p = ctl_spec(s, 0, SYN | ACK, sisn, cisn + 1, NULL, 0);
	r = run_reason(dir_of(s, 0), &p);
	ok &= CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "control SYN-ACK");
	p = ctl_spec(s, 1, ACK, cisn + 1, sisn + 1, NULL, 0);
	r = run_reason(dir_of(s, 1), &p);
	ok &= CHECK(r == PH_R_PASS_HALF_OPEN || r == PH_R_PASS_FLOW,
		    "control ACK: %s", rname(r));
	s->cnxt = cisn + 1;
	s->snxt = sisn + 1;

	ok &= CHECK(ev_count(PH_EV_CTRL_OPEN) == 1, "%d OPEN events",
		    ev_count(PH_EV_CTRL_OPEN));
	e = ev_last(PH_EV_CTRL_OPEN);
	if (!e)
		return false;
	s->session = e->session;
	memcpy(&od, e->data, sizeof(od));
	ok &= CHECK(e->session != 0, "OPEN: session 0");
	ok &= CHECK(!memcmp(&e->key, &s->key, sizeof(s->key)),
		    "OPEN: wrong control key");
	ok &= CHECK(e->host_role == s->role, "OPEN: role %u", e->host_role);
	ok &= CHECK(e->encrypted == encrypted, "OPEN: encrypted %u",
		    e->encrypted);
	ok &= CHECK(e->dir == IN, "OPEN: seen on %u", e->dir);
	ok &= CHECK(e->caplen == sizeof(od) && od.client_nxt == s->cnxt &&
			    od.server_nxt == s->snxt,
		    "OPEN: first data bytes %x/%x, want %x/%x",
		    od.client_nxt, od.server_nxt, s->cnxt, s->snxt);
	ok &= CHECK(!bpf_map_lookup_elem(F->flows, &s->key, &fl) &&
			    fl.session == s->session,
		    "control flow does not carry the session");
	ev_reset();
	return ok;
}

static struct ph_ftp_ctrl ctrl_of(const struct ctl *s, bool *found)
{
	struct ph_ftp_ctrl c = {};

	*found = !bpf_map_lookup_elem(F->ftp_ctrl, &s->key, &c);
	return c;
}

static struct ph_ftp_dp_stats dp_stats(void)
{
	struct ph_ftp_dp_stats sum = {}, v[F->ncpus];
	__u32 zero = 0;
	int c;

	if (bpf_map_lookup_elem(F->ftp_dp_stats, &zero, v))
		return sum;
	for (c = 0; c < F->ncpus; c++) {
		sum.sessions += v[c].sessions;
		sum.segments += v[c].segments;
		sum.events += v[c].events;
		sum.events_lost += v[c].events_lost;
		sum.pinholes += v[c].pinholes;
		sum.desyncs += v[c].desyncs;
		sum.conflicts += v[c].conflicts;
		sum.ctrl_full += v[c].ctrl_full;
		sum.quiet += v[c].quiet;
		sum.syncs += v[c].syncs;
		sum.unreported += v[c].unreported;
	}
	return sum;
}

/* ---- pinholes and data connections -------------------------------------- */

/* The key of the pinhole for @port announced passively (227/229) or
 * actively (PORT/EPRT). */
static struct ph_flow_key pin_key(const struct ctl *s, int passive,
				  __u16 port, __u8 *dir)
{
	struct ph_flow_key k = {};
	int local = (s->role == SERVER) == !!passive;

	addr16(s->family, s->local, k.local);
	addr16(s->family, s->peer, k.remote);
	k.lport = local ? htons(port) : 0;
	k.rport = local ? 0 : htons(port);
	k.proto = IPPROTO_TCP;
	if (dir)
		*dir = local ? IN : OUT;
	return k;
}

/* Pinholes of this session. */
static int pins(const struct ctl *s)
{
	struct ph_flow_key key, next;
	struct ph_expect e;
	void *prev = NULL;
	int n = 0;

	while (!bpf_map_get_next_key(F->expect, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(F->expect, &key, &e) &&
		    e.session == s->session)
			n++;
	}
	return n;
}

static int expect_count(void)
{
	return map_count(F->expect);
}

/* Is exactly this pinhole installed, for this session, the right way? */
static bool has_pin(const struct ctl *s, int passive, __u16 port)
{
	struct ph_expect e;
	__u8 dir;
	struct ph_flow_key k = pin_key(s, passive, port, &dir);
	__u64 now = fx_now();

	if (bpf_map_lookup_elem(F->expect, &k, &e))
		return false;
	return CHECK(e.session == s->session && e.dir == dir &&
			     e.deadline_ns > now + 25 * NSEC &&
			     e.deadline_ns <= now + 31 * NSEC,
		     "pinhole %u: session %x dir %u deadline in %lld ms", port,
		     e.session, e.dir,
		     (long long)(e.deadline_ns - now) / 1000000);
}

/* The data connection's SYN from its initiator (passive: the client from
 * @eph; active: the server from port 20). Returns the reason. */
static int data_syn(const struct ctl *s, int passive, __u16 port, __u16 eph)
{
	struct pkt_spec p = {
		.family = s->family,
		.proto = IPPROTO_TCP,
		.flags = SYN,
	};
	int from_client = passive;

	p.src = from_client ? client_addr(s) : server_addr(s);
	p.dst = from_client ? server_addr(s) : client_addr(s);
	p.sport = passive ? eph : 20;
	p.dport = port;
	return run_reason(dir_of(s, from_client), &p);
}

/* EXPECT_BPF before the CTRL_DATA that carried its line. */
static bool check_expect_bpf(const struct ctl *s, int passive, __u16 port)
{
	const struct ph_event *eb = ev_last(PH_EV_EXPECT_BPF);
	const struct ph_event *ed = ev_last(PH_EV_CTRL_DATA);
	struct ph_flow_key k = pin_key(s, passive, port, NULL);
	bool ok = true;

	ok &= CHECK(eb != NULL, "no EXPECT_BPF record");
	if (!eb)
		return false;
	ok &= CHECK(!memcmp(&eb->expect, &k, sizeof(k)),
		    "EXPECT_BPF: wrong pinhole key");
	ok &= CHECK(!memcmp(&eb->key, &s->key, sizeof(s->key)),
		    "EXPECT_BPF: wrong control key");
	ok &= CHECK(eb->session == s->session && eb->host_role == s->role,
		    "EXPECT_BPF: session %x role %u", eb->session,
		    eb->host_role);
	ok &= CHECK(ed && ev_index(eb) < ev_index(ed) && eb->seq == ed->seq &&
			    eb->len == ed->len,
		    "EXPECT_BPF does not precede its segment's CTRL_DATA");
	return ok;
}

static void pasv_text(char *buf, size_t n, const char *addr, __u16 port)
{
	__u8 a[4];

	pkt_addr(4, addr, a);
	snprintf(buf, n, "227 Entering Passive Mode (%u,%u,%u,%u,%u,%u).\r\n",
		 a[0], a[1], a[2], a[3], port >> 8, port & 0xff);
}

static void port_text(char *buf, size_t n, const char *addr, __u16 port)
{
	__u8 a[4];

	pkt_addr(4, addr, a);
	snprintf(buf, n, "PORT %u,%u,%u,%u,%u,%u\r\n", a[0], a[1], a[2], a[3],
		 port >> 8, port & 0xff);
}

/* ---- the four cases ---------------------------------------------------- */

static void t_server_passive(int family)
{
	struct ctl s;
	char l[128];
	const struct ph_event *e;
	__u32 seq;
	int r;

	tname = family == 4 ? "server passive v4" : "server passive v6";
	sess_init(&s, family, SERVER, 40000 + family);
	if (!sess_open(&s, 0))
		return;
	say(&s, 0, "220 Welcome\r\n");
	say(&s, 1, "USER anonymous\r\n");
	say(&s, 0, "331 Password\r\n");
	say(&s, 1, "PASS x\r\n");
	say(&s, 0, "230 Logged in\r\n");
	ev_reset();
	seq = s.cnxt;
	say(&s, 1, family == 4 ? "PASV\r\n" : "EPSV\r\n");
	e = ev_last(PH_EV_CTRL_DATA);
	CHECK(e && e->seq == seq && e->len == 6 && e->caplen == 6 &&
		      e->from_client == 1 && e->host_role == SERVER &&
		      e->session == s.session && e->dir == IN &&
		      !e->encrypted &&
		      !memcmp(e->data, family == 4 ? "PASV" : "EPSV", 4),
	      "PASV record: seq %x len %u cap %u from_client %u role %u dir %u",
	      e ? e->seq : 0, e ? e->len : 0, e ? e->caplen : 0,
	      e ? e->from_client : 9, e ? e->host_role : 9, e ? e->dir : 9);
	CHECK(expect_count() == 0, "pinhole before the reply");
	ev_reset();
	seq = s.snxt;
	if (family == 4)
		pasv_text(l, sizeof(l), L4, 50001);
	else
		snprintf(l, sizeof(l),
			 "229 Entering Extended Passive Mode (|||50001|)\r\n");
	say(&s, 0, l);
	e = ev_last(PH_EV_CTRL_DATA);
	CHECK(e && e->seq == seq && e->len == strlen(l) &&
		      e->from_client == 0 && e->dir == OUT &&
		      !memcmp(e->data, l, strlen(l)),
	      "reply record: seq %x len %u from_client %u dir %u",
	      e ? e->seq : 0, e ? e->len : 0, e ? e->from_client : 9,
	      e ? e->dir : 9);
	CHECK(has_pin(&s, 1, 50001), "no pinhole for 50001");
	check_expect_bpf(&s, 1, 50001);
	ev_reset();
	r = data_syn(&s, 1, 50001, 51000);
	CHECK_REASON(r, PH_R_PASS_EXPECT, "data SYN");
	e = ev_last(PH_EV_EXPECT_USED);
	{
		struct ph_flow_key k = pin_key(&s, 1, 50001, NULL);

		CHECK(e && e->session == s.session &&
			      !memcmp(&e->expect, &k, sizeof(k)) &&
			      e->dir == IN,
		      "EXPECT_USED: %s", e ? "wrong fields" : "missing");
	}
	{
		struct pkt_spec p = {
			.family = family, .proto = IPPROTO_TCP, .flags = SYN,
			.src = s.peer, .dst = s.local, .sport = 51000,
			.dport = 50001,
		};
		struct ph_flow_key k;
		struct ph_flow v;

		key_of(&p, IN, &k);
		CHECK(!bpf_map_lookup_elem(F->half_open, &k, &v) &&
			      v.session == s.session &&
			      v.origin == PH_FO_EXPECT,
		      "data connection does not carry the session");
	}
	CHECK(expect_count() == 0, "pinhole not consumed");
	r = data_syn(&s, 1, 50001, 51000);
	CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "data SYN retransmitted");
	r = data_syn(&s, 1, 50001, 51001);
	CHECK_REASON(r, PH_R_DROP_POLICY, "second data SYN");
}

static void t_server_active(int family)
{
	struct ctl s;
	char l[128];
	int r;

	tname = family == 4 ? "server active v4" : "server active v6";
	sess_init(&s, family, SERVER, 40010 + family);
	if (!sess_open(&s, 0))
		return;
	say(&s, 0, "220 Welcome\r\n");
	ev_reset();
	if (family == 4)
		port_text(l, sizeof(l), P4, 50002);
	else
		snprintf(l, sizeof(l), "EPRT |2|%s|50002|\r\n", P6);
	say(&s, 1, l);
	CHECK(has_pin(&s, 0, 50002), "no pinhole for 50002");
	check_expect_bpf(&s, 0, 50002);
	say(&s, 0, "200 PORT command successful\r\n");
	CHECK(has_pin(&s, 0, 50002), "200 took the pinhole");
	say(&s, 1, "RETR file\r\n");
	r = data_syn(&s, 0, 50002, 0);
	CHECK_REASON(r, PH_R_PASS_EXPECT, "server SYN from 20");
	r = data_syn(&s, 0, 50002, 0);
	CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "server SYN retransmitted");
}

static void t_client_passive(int family)
{
	struct ctl s;
	char l[128];
	int r;

	tname = family == 4 ? "client passive v4" : "client passive v6";
	sess_init(&s, family, CLIENT, 40020 + family);
	if (!sess_open(&s, 0))
		return;
	say(&s, 0, "220 Welcome\r\n");
	say(&s, 1, family == 4 ? "PASV\r\n" : "EPSV\r\n");
	ev_reset();
	if (family == 4)
		pasv_text(l, sizeof(l), P4, 50003);
	else
		snprintf(l, sizeof(l),
			 "229 Entering Extended Passive Mode (|||50003|)\r\n");
	say(&s, 0, l);
	CHECK(has_pin(&s, 1, 50003), "no pinhole for 50003");
	check_expect_bpf(&s, 1, 50003);
	CHECK(ev_last(PH_EV_CTRL_DATA) &&
		      ev_last(PH_EV_CTRL_DATA)->dir == IN &&
		      ev_last(PH_EV_CTRL_DATA)->host_role == CLIENT,
	      "227 record: wrong dir/role");
	r = data_syn(&s, 1, 50003, 52000);
	CHECK_REASON(r, PH_R_PASS_EXPECT, "client data SYN");
	r = data_syn(&s, 1, 50003, 52001);
	CHECK_REASON(r, PH_R_DROP_POLICY, "second client data SYN");
}

static void t_client_active(int family)
{
	struct ctl s;
	char l[128];
	int r;

	tname = family == 4 ? "client active v4" : "client active v6";
	sess_init(&s, family, CLIENT, 40030 + family);
	if (!sess_open(&s, 0))
		return;
	say(&s, 0, "220 Welcome\r\n");
	if (family == 4)
		port_text(l, sizeof(l), L4, 50004);
	else
		snprintf(l, sizeof(l), "EPRT |2|%s|50004|\r\n", L6);
	say(&s, 1, l);
	CHECK(has_pin(&s, 0, 50004), "no pinhole for 50004");
	CHECK(ev_last(PH_EV_CTRL_DATA) &&
		      ev_last(PH_EV_CTRL_DATA)->dir == OUT &&
		      ev_last(PH_EV_CTRL_DATA)->from_client == 1,
	      "PORT record: wrong dir/from_client");
	r = data_syn(&s, 0, 50004, 0);
	CHECK_REASON(r, PH_R_PASS_EXPECT, "server SYN to the client");
	r = data_syn(&s, 0, 50004, 0);
	CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "server SYN retransmitted");
}

/* ---- forms of the commands --------------------------------------------- */

/* One negotiation in a fresh session: client line @c (NULL: none), server
 * line @srv (NULL: none). Returns 1 if afterwards the only pinhole is the
 * one for @port, 0 if there is none, -1 otherwise. */
static int nego(int family, int role, __u16 cport, const char *c,
		const char *srv, int passive, __u16 port)
{
	struct ctl s;
	int n, found;

	sess_init(&s, family, role, cport);
	if (!sess_open(&s, 0))
		return -1;
	say(&s, 0, "220 Welcome\r\n");
	if (c)
		say(&s, 1, c);
	if (srv)
		say(&s, 0, srv);
	found = has_pin(&s, passive, port);
	n = expect_count();
	map_clear(F->expect);
	return n == 0 ? 0 : n == 1 && found ? 1 : -1;
}

struct nego_case {
	const char *name;
	int family, role;
	const char *cmd, *reply; /* client line, server line (NULL: none) */
	int passive;
	__u16 port;
	int opens;
};

#define V4S 4, SERVER
#define V6S 6, SERVER
#define V6C 6, CLIENT

/* Forms that open. */
static const struct nego_case opening[] = {
	{ "lower-case pasv", V4S, "pasv\r\n",
	  "227 Entering Passive Mode (192,0,2,1,195,90)\r\n", 1, 50010, 1 },
	{ "bare LF, 227 without parentheses", V4S, "PASV\n",
	  "227 =192,0,2,1,195,91\n", 1, 50011, 1 },
	{ "229 with another delimiter", V4S, "EPSV\r\n", "229 ok (!!!50012!)\r\n",
	  1, 50012, 1 },
	{ "EPSV 1 on IPv4", V4S, "EPSV 1\r\n",
	  "229 Entering Extended Passive Mode (|||50013|)\r\n", 1, 50013, 1 },
	{ "EPRT |1|", V4S, "EPRT |1|198.51.100.7|50014|\r\n", NULL, 0, 50014, 1 },
	{ "EPRT with another delimiter and trailing spaces", V4S,
	  "eprt !1!198.51.100.7!50015!  \r\n", NULL, 0, 50015, 1 },
	{ "PORT with trailing spaces", V4S, "PORT 198,51,100,7,195,96  \r\n",
	  NULL, 0, 50016, 1 },
	{ "EPRT |2| in full, upper case", V6S,
	  "EPRT |2|2001:0DB8:0001:0000:0000:0000:0000:0007|50017|\r\n", NULL, 0,
	  50017, 1 },
	{ "EPRT |2| with ::", V6S, "EPRT |2|2001:db8:1:0::7|50018|\r\n", NULL, 0,
	  50018, 1 },
	{ "EPRT |2| with a leading :: (another host)", V6S,
	  "EPRT |2|::7|50019|\r\n", NULL, 0, 50019, 0 },
	{ "EPSV 2 on IPv6", V6S, "EPSV 2\r\n",
	  "229 Entering Extended Passive Mode (|||50020|)\r\n", 1, 50020, 1 },
	{ "client EPRT |2|", V6C, "EPRT |2|2001:db8::1|50021|\r\n", NULL, 0,
	  50021, 1 },
	{ "port 65535", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (192,0,2,1,255,255)\r\n", 1, 65535, 1 },
	{ "port 1024", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (192,0,2,1,4,0)\r\n", 1, 1024, 1 },
	{ "227 with trailing text", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (192,0,2,1,195,92) extra, text\r\n", 1,
	  50012, 1 },
	{ "227 with leading zeros", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (192,000,02,001,195,093)\r\n", 1, 50013,
	  1 },
	{ "PASV with trailing spaces", V4S, "PASV   \r\n",
	  "227 Entering Passive Mode (192,0,2,1,195,94)\r\n", 1, 50014, 1 },
};

/* What must not open. */
static const struct nego_case refused[] = {
	{ "227 without PASV", V4S, "NOOP\r\n",
	  "227 Entering Passive Mode (192,0,2,1,196,1)\r\n", 1, 50177, 0 },
	{ "227 before any command", V4S, NULL,
	  "227 Entering Passive Mode (192,0,2,1,196,2)\r\n", 1, 50178, 0 },
	{ "227 as a multi-line reply", V4S, "PASV\r\n",
	  "227-Entering Passive Mode (192,0,2,1,196,3)\r\n227 ok\r\n", 1, 50179,
	  0 },
	{ "227 line inside a multi-line reply", V4S, "PASV\r\n",
	  "200-x\r\n227 Entering Passive Mode (192,0,2,1,196,4)\r\n200 end\r\n",
	  1, 50180, 0 },
	{ "227 echoed inside a 500", V4S, "PASV\r\n",
	  "500 '227 Entering Passive Mode (192,0,2,1,196,5)': no\r\n", 1, 50181,
	  0 },
	{ "PORT bounce", V4S, "PORT 203,0,113,9,196,6\r\n", NULL, 0, 50182, 0 },
	{ "EPRT bounce", V4S, "EPRT |1|203.0.113.9|50183|\r\n", NULL, 0, 50183,
	  0 },
	{ "EPRT |2| bounce", V6S, "EPRT |2|2001:db8:ff::9|50184|\r\n", NULL, 0,
	  50184, 0 },
	{ "227 naming a third host", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (203,0,113,9,196,9)\r\n", 1, 50185, 0 },
	{ "PORT to port 21", V4S, "PORT 198,51,100,7,0,21\r\n", NULL, 0, 21, 0 },
	{ "227 port 1023", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (192,0,2,1,3,255)\r\n", 1, 1023, 0 },
	{ "229 port 1023", V4S, "EPSV\r\n", "229 x (|||1023|)\r\n", 1, 1023, 0 },
	{ "PORT number 256", V4S, "PORT 198,51,100,7,256,1\r\n", NULL, 0, 1, 0 },
	{ "PORT number of four digits", V4S, "PORT 198,51,100,7,0195,10\r\n",
	  NULL, 0, 49930, 0 },
	{ "227 overflowing number", V4S, "PASV\r\n",
	  "227 (192,0,2,1,99999999999,11)\r\n", 1, 50187, 0 },
	{ "227 number after a sign", V4S, "PASV\r\n",
	  "227 (+192,0,2,1,196,12)\r\n", 1, 50188, 0 },
	{ "227 with a seventh number", V4S, "PASV\r\n",
	  "227 (192,0,2,1,196,13,7)\r\n", 1, 50189, 0 },
	{ "PORT with a trailing comma", V4S, "PORT 198,51,100,7,196,14,\r\n",
	  NULL, 0, 50190, 0 },
	{ "229 port 99999", V4S, "EPSV\r\n", "229 x (|||99999|)\r\n", 1, 34463,
	  0 },
	{ "229 port 0", V4S, "EPSV\r\n", "229 x (|||0|)\r\n", 1, 0, 0 },
	{ "229 answering PASV", V4S, "PASV\r\n",
	  "229 Entering Extended Passive Mode (|||50191|)\r\n", 1, 50191, 0 },
	{ "227 answering EPSV", V4S, "EPSV\r\n",
	  "227 Entering Passive Mode (192,0,2,1,196,16)\r\n", 1, 50192, 0 },
	{ "227 after a pipelined NOOP", V4S, "PASV\r\nNOOP\r\n",
	  "227 Entering Passive Mode (192,0,2,1,196,17)\r\n", 1, 50193, 0 },
	{ "PASV with an argument", V4S, "PASV x\r\n",
	  "227 Entering Passive Mode (192,0,2,1,196,18)\r\n", 1, 50194, 0 },
	{ "EPSV ALL", V4S, "EPSV ALL\r\n",
	  "229 Entering Extended Passive Mode (|||50195|)\r\n", 1, 50195, 0 },
	{ "not a verb at the line start", V4S, "XPASV\r\n",
	  "227 Entering Passive Mode (192,0,2,1,196,20)\r\n", 1, 50196, 0 },
	{ "PORT on IPv6", V6S, "PORT 198,51,100,7,196,21\r\n", NULL, 0, 50197,
	  0 },
	{ "EPRT |1| on IPv6", V6S, "EPRT |1|198.51.100.7|50198|\r\n", NULL, 0,
	  50198, 0 },
	{ "EPRT |2| on IPv4", V4S, "EPRT |2|::ffff:198.51.100.7|50199|\r\n",
	  NULL, 0, 50199, 0 },
	{ "EPSV 1 on IPv6", V6S, "EPSV 1\r\n",
	  "229 Entering Extended Passive Mode (|||50200|)\r\n", 1, 50200, 0 },
	{ "EPRT |2| with :::", V6S, "EPRT |2|2001:db8:1:::7|50201|\r\n", NULL, 0,
	  50201, 0 },
	{ "EPRT |2| with nine groups", V6S,
	  "EPRT |2|2001:db8:1:0:0:0:0:0:7|50202|\r\n", NULL, 0, 50202, 0 },
	{ "EPRT |2| with a five-digit group", V6S,
	  "EPRT |2|2001:db8:1::00007|50203|\r\n", NULL, 0, 50203, 0 },
	{ "EPRT |2| with :: standing for nothing", V6S,
	  "EPRT |2|2001:db8:1:0:0:0::0:7|50203|\r\n", NULL, 0, 50203, 0 },
	{ "PORT with trailing text", V4S, "PORT 198,51,100,7,196,28 x\r\n", NULL,
	  0, 50204, 0 },
	{ "EPRT with trailing text", V4S, "EPRT |1|198.51.100.7|50205|x\r\n",
	  NULL, 0, 50205, 0 },
	{ "EPRT with a bad address", V4S, "EPRT |1|198.51.100.07x|50206|\r\n",
	  NULL, 0, 50206, 0 },
	{ "227 with a preliminary code", V4S, "PASV\r\n",
	  "127 Entering Passive Mode (192,0,2,1,196,31)\r\n", 1, 50207, 0 },
	{ "PORT inside a longer line", V4S, "NOOP PORT 198,51,100,7,196,32\r\n",
	  NULL, 0, 50208, 0 },
	{ "a lone CR does not end a line", V4S, "NOOP\rPASV\r\n",
	  "227 Entering Passive Mode (192,0,2,1,196,33)\r\n", 1, 50209, 0 },
};

static void run_nego(const struct nego_case *c, int n, __u16 *cport)
{
	int i, r;

	for (i = 0; i < n; i++) {
		tname = c[i].name;
		r = nego(c[i].family, c[i].role, (*cport)++, c[i].cmd,
			 c[i].reply, c[i].passive, c[i].port);
		CHECK(r == c[i].opens, "%s (%d)",
		      c[i].opens ? "does not open" : "opens", r);
	}
}

static void t_forms(void)
{
	__u16 cport = 40100;

	run_nego(opening, sizeof(opening) / sizeof(opening[0]), &cport);
	run_nego(refused, sizeof(refused) / sizeof(refused[0]), &cport);
}

/* A PORT line followed by a refusal revokes; more than eight data-port
 * lines in a row revoke too (user/ftp.c's flood rule). */
static void t_revoke(void)
{
	struct ctl s;
	char l[128], many[1024];
	int i;

	tname = "4xx revokes";
	sess_init(&s, 4, SERVER, 40300);
	if (!sess_open(&s, 0))
		return;
	port_text(l, sizeof(l), P4, 50300);
	say(&s, 1, l);
	CHECK(has_pin(&s, 0, 50300), "no pinhole");
	say(&s, 0, "425 Cannot open data connection\r\n");
	CHECK(pins(&s) == 0, "425 left the pinhole");

	tname = "flood";
	sess_init(&s, 4, SERVER, 40301);
	if (!sess_open(&s, 0))
		return;
	many[0] = 0;
	for (i = 0; i < 8; i++) {
		port_text(l, sizeof(l), P4, 50310 + i);
		strcat(many, l);
	}
	say(&s, 1, many);
	CHECK(has_pin(&s, 0, 50317) && pins(&s) == 1,
	      "eighth PORT: its pinhole only");
	port_text(l, sizeof(l), P4, 50318);
	say(&s, 1, l);
	CHECK(pins(&s) == 0, "ninth PORT in a row: still a pinhole");
	say(&s, 0, "200 ok\r\n");
	port_text(l, sizeof(l), P4, 50319);
	say(&s, 1, l);
	CHECK(has_pin(&s, 0, 50319), "after a reply, PORT opens again");

	tname = "replace";
	sess_init(&s, 4, SERVER, 40302);
	if (!sess_open(&s, 0))
		return;
	say(&s, 1, "PASV\r\n");
	pasv_text(l, sizeof(l), L4, 50320);
	say(&s, 0, l);
	CHECK(has_pin(&s, 1, 50320), "first pinhole");
	say(&s, 1, "PASV\r\n");
	pasv_text(l, sizeof(l), L4, 50321);
	say(&s, 0, l);
	CHECK(has_pin(&s, 1, 50321) && pins(&s) == 1,
	      "second PASV does not replace the first pinhole");
	say(&s, 1, "PASV\r\n");
	say(&s, 0, "500 no\r\n");
	CHECK(has_pin(&s, 1, 50321), "a refused PASV revoked the pinhole");
	say(&s, 1, "PASV\r\n");
	pasv_text(l, sizeof(l), L4, 50321);
	say(&s, 0, l);
	CHECK(has_pin(&s, 1, 50321) && pins(&s) == 1,
	      "the same port announced again");
}

/* ---- streams ------------------------------------------------------------ */

static void t_split(void)
{
	struct ctl s;
	const char *a = "227 Entering Passive Mode (192,0,2,";
	const char *b = "1,196,66)\r\n";
	int n0;

	tname = "split line";
	sess_init(&s, 4, SERVER, 40400);
	if (!sess_open(&s, 0))
		return;
	say(&s, 1, "PASV\r\n");
	ev_reset();
	say(&s, 0, a);
	say(&s, 0, b);
	CHECK(pins(&s) == 0, "a 227 split over two segments opened");
	n0 = ev_count(PH_EV_CTRL_DATA);
	CHECK(n0 == 2 && evl.ev[0].len == strlen(a) &&
		      evl.ev[1].seq == evl.ev[0].seq + strlen(a),
	      "split 227: %d records", n0);
	/* The command may be split: its first bytes are kept. */
	seg_at(&s, 1, s.cnxt, "PA", 2, ACK | PSH);
	s.cnxt += 2;
	say(&s, 1, "SV\r\n");
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,67)\r\n");
	CHECK(has_pin(&s, 1, 50243), "a split PASV was not recognised");
	/* One long segment: up to PH_CTRL_CHUNKS records of PH_CTRL_CAP. */
	{
		char big[1400];

		say(&s, 1, "PASV\r\n");
		/* A preliminary multi-line reply filling two records, then
		 * the 227 inside the third. */
		memset(big, ' ', sizeof(big));
		memcpy(big, "150-", 4);
		memcpy(big + 1100, "\r\n150 x\r\n", 9);
		memcpy(big + 1109,
		       "227 Entering Passive Mode (192,0,2,1,196,68)\r\n", 46);
		big[1155] = 0;
		ev_reset();
		say(&s, 0, big);
		{
			const struct ph_event *d[3] = {};
			int i, k = 0;

			for (i = 0; i < evl.n && k < 3; i++)
				if (evl.ev[i].type == PH_EV_CTRL_DATA)
					d[k++] = &evl.ev[i];
			CHECK(ev_count(PH_EV_CTRL_DATA) == 3 && d[2] &&
				      d[0]->len == 512 && d[0]->caplen == 512 &&
				      d[1]->seq == d[0]->seq + 512 &&
				      d[1]->len == 512 &&
				      d[2]->seq == d[0]->seq + 1024 &&
				      d[2]->len == 1155 - 1024 &&
				      d[2]->caplen == 1155 - 1024 &&
				      !memcmp(d[2]->data, big + 1024, 131),
			      "long segment: %d records",
			      ev_count(PH_EV_CTRL_DATA));
			CHECK(ev_index(ev_last(PH_EV_EXPECT_BPF)) ==
				      ev_index(d[2]) - 1,
			      "EXPECT_BPF not right before the third record");
		}
		CHECK(has_pin(&s, 1, 50244) && pins(&s) == 1,
		      "227 in the third record");
		/* A 227 across the boundary of two records is the
		 * tracker's. */
		say(&s, 1, "PASV\r\n");
		memset(big, ' ', sizeof(big));
		memcpy(big + 498, "\r\n", 2);
		memcpy(big + 500,
		       "227 Entering Passive Mode (192,0,2,1,196,69)\r\n", 46);
		big[546] = 0;
		say(&s, 0, big);
		CHECK(pins(&s) == 0, "227 across records opened");
	}
}

static void t_order(void)
{
	struct ctl s;
	struct ph_ftp_ctrl c;
	bool found;
	int r;

	tname = "retransmission";
	sess_init(&s, 4, SERVER, 40500);
	if (!sess_open(&s, 0))
		return;
	say(&s, 1, "NOOP\r\n");
	/* The same bytes again, other text: parsed state stays. */
	r = seg_at(&s, 1, s.cnxt - 6, "PASV\r\n", 6, ACK | PSH);
	CHECK_REASON(r, PH_R_PASS_FLOW, "retransmission");
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,80)\r\n");
	CHECK(pins(&s) == 0, "retransmitted bytes were parsed again");
	/* A retransmission overlapping new bytes: only the new ones count. */
	say(&s, 1, "NOOP\r\n");
	r = seg_at(&s, 1, s.cnxt - 2, "\r\nPASV\r\n", 8, ACK | PSH);
	s.cnxt += 6;
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,81)\r\n");
	CHECK(has_pin(&s, 1, 50257), "new bytes after old ones not parsed");
	c = ctrl_of(&s, &found);
	CHECK(found && !c.desync, "desynced by a retransmission");

	/* A segment ahead of the stream is reported, not parsed; the local
	 * stack's ACK past it (in the 227's header) makes the parser resume
	 * at the next line, failing closed on the pairing. */
	tname = "gap";
	sess_init(&s, 4, SERVER, 40501);
	if (!sess_open(&s, 0))
		return;
	ev_reset();
	r = seg_at(&s, 1, s.cnxt + 6, "PASV\r\n", 6, ACK | PSH);
	CHECK_REASON(r, PH_R_PASS_FLOW, "segment after a gap");
	CHECK(ev_count(PH_EV_CTRL_DATA) == 1, "segment after a gap unreported");
	c = ctrl_of(&s, &found);
	CHECK(found && !c.desync, "a gap desynced the session");
	s.cnxt += 12;
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,82)\r\n");
	CHECK(pins(&s) == 0, "a 227 after a gap opened");
	c = ctrl_of(&s, &found);
	CHECK(found && c.ps.st[1].nxt == s.cnxt &&
		      (c.ps.flags & PH_FTPC_SKIP_CLIENT),
	      "the ACK did not move the client stream: nxt %x want %x flags %x",
	      c.ps.st[1].nxt, s.cnxt, c.ps.flags);
	CHECK(ev_last(PH_EV_CTRL_DATA) && ev_last(PH_EV_CTRL_DATA)->ack == s.cnxt,
	      "the 227's record does not carry the ACK");
	say(&s, 1, "PASV\r\n"); /* the first line after the gap: dropped */
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,83)\r\n");
	CHECK(pins(&s) == 0, "the line after a gap was parsed");
	say(&s, 1, "PASV\r\n");
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,84)\r\n");
	CHECK(has_pin(&s, 1, 50260), "no recovery at the next line");
	/* The line dropped after the gap opens nothing: quiet, and the SYNC
	 * before the next 227 stands for it. */
	CHECK(ev_count(PH_EV_CTRL_DATA) >= 5 && ev_count(PH_EV_CTRL_SYNC) >= 1,
	      "session unreported");

	tname = "conflict";
	sess_init(&s, 4, SERVER, 40502);
	if (!sess_open(&s, 0))
		return;
	c = ctrl_of(&s, &found);
	c.busy = 1; /* as if another CPU were parsing this session */
	bpf_map_update_elem(F->ftp_ctrl, &s.key, &c, BPF_EXIST);
	say(&s, 1, "PASV\r\n");
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,85)\r\n");
	CHECK(pins(&s) == 0, "parsed while busy elsewhere");
	c = ctrl_of(&s, &found);
	CHECK(found && c.desync, "a conflict did not desync");
	CHECK(dp_stats().conflicts >= 1, "conflict not counted");
}

/* ---- what reaches the ring (issue 12) ------------------------------------ */

static const struct ph_ctrl_sync *sync_of(const struct ph_event *e)
{
	return e && e->type == PH_EV_CTRL_SYNC ?
		       (const struct ph_ctrl_sync *)e->data : NULL;
}

static __u64 ring_lost; /* records t_ring() made the ring buffer refuse */

static void t_ring(void)
{
	char big[1500], line[96];
	const struct ph_ctrl_sync *d;
	struct ph_ftp_dp_stats st0, st1;
	struct ph_flow_key k227;
	struct ph_ftp_ctrl c;
	struct ctl s, t;
	__u32 cpos, spos;
	bool found;
	int i;

	/* Chatter: commands and replies that open or close nothing are not
	 * reported, a multi-line reply and a command split in two included. */
	tname = "quiet records";
	sess_init(&s, 4, SERVER, 40801);
	if (!sess_open(&s, 0))
		return;
	st0 = dp_stats();
	for (i = 0; i < 50; i++) {
		say(&s, 1, "NOOP\r\n");
		say(&s, 0, "200 NOOP ok.\r\n");
	}
	say(&s, 1, "FEAT\r\n");
	say(&s, 0, "211-Features:\r\n EPSV\r\n PASV\r\n211 End\r\n");
	say(&s, 1, "NO");
	say(&s, 1, "OP\r\n");
	say(&s, 0, "200 NOOP ok.\r\n");
	st1 = dp_stats();
	CHECK(evl.n == 0, "%d records for chatter", evl.n);
	CHECK(st1.quiet - st0.quiet == 105, "%llu quiet records, want 105",
	      (unsigned long long)(st1.quiet - st0.quiet));
	cpos = s.cnxt;
	spos = s.snxt;
	say(&s, 1, "PASV\r\n");
	d = sync_of(evl.n == 2 ? &evl.ev[0] : NULL);
	CHECK(d && evl.ev[1].type == PH_EV_CTRL_DATA && evl.ev[1].seq == cpos,
	      "PASV: %d records, want SYNC then CTRL_DATA", evl.n);
	if (d)
		CHECK(d->ps.st[1].nxt == cpos && d->ps.st[0].nxt == spos &&
			      !d->ps.st[1].line_len && !d->ps.st[0].line_len &&
			      !d->ps.awaiting &&
			      d->ps.last_cmd == PH_FTPC_CMD_OTHER &&
			      !(d->flags & (PH_SYNC_LOST | PH_SYNC_HEARTBEAT)) &&
			      evl.ev[0].session == s.session &&
			      evl.size[0] == offsetof(struct ph_event, data) +
						     sizeof(*d),
		      "SYNC: client %x/%x server %x/%x awaiting %u cmd %u flags %x",
		      d->ps.st[1].nxt, cpos, d->ps.st[0].nxt, spos,
		      d->ps.awaiting, d->ps.last_cmd, d->flags);
	ev_reset();
	pasv_text(line, sizeof(line), server_addr(&s), 50290);
	say(&s, 0, line);
	CHECK(has_pin(&s, 1, 50290) && ev_count(PH_EV_EXPECT_BPF) == 1 &&
		      ev_count(PH_EV_CTRL_SYNC) == 0,
	      "227 after chatter: pinhole %d, %d EXPECT_BPF, %d SYNC",
	      pins(&s), ev_count(PH_EV_EXPECT_BPF), ev_count(PH_EV_CTRL_SYNC));
	CHECK_REASON(data_syn(&s, 1, 50290, 40000), PH_R_PASS_EXPECT,
		     "data SYN after chatter");

	/* A quiet session still sends a SYNC every period. */
	tname = "heartbeat";
	ev_reset();
	fx_advance(F, (PH_FTP_SYNC_PERIOD_S + 1) * NSEC);
	say(&s, 1, "NOOP\r\n");
	d = sync_of(evl.n == 1 ? &evl.ev[0] : NULL);
	CHECK(d && (d->flags & PH_SYNC_HEARTBEAT) && d->ps.st[1].nxt == s.cnxt &&
		      d->ps.awaiting,
	      "no heartbeat SYNC after %d s of chatter (%d records)",
	      PH_FTP_SYNC_PERIOD_S + 1, evl.n);
	say(&s, 0, "200 NOOP ok.\r\n");
	CHECK(evl.n == 1, "a second heartbeat within the period");

	/* A full ring buffer costs reports, never a pinhole: another session
	 * fills it with long PORT lines (reported, 3 records each). */
	tname = "ring full";
	sess_init(&t, 4, SERVER, 40802);
	if (!sess_open(&t, 0))
		return;
	memset(big, 'x', sizeof(big));
	memcpy(big, "PORT ", 5);
	memcpy(big + 1400, "\r\n", 3);
	hold_ring = true;
	st0 = dp_stats();
	for (i = 0; i < 20000 && dp_stats().events_lost == st0.events_lost; i++) {
		say(&t, 1, big);
		say(&t, 0, "500 Illegal PORT command.\r\n");
	}
	st0 = dp_stats();
	CHECK(st0.events_lost > 0, "the ring buffer never filled (%d lines)", i);
	say(&s, 1, "PASV\r\n");
	pasv_text(line, sizeof(line), server_addr(&s), 50291);
	say(&s, 0, line);
	st1 = dp_stats();
	CHECK(has_pin(&s, 1, 50291) && pins(&s) == 1,
	      "the full ring took the pinhole back (%d pinholes)", pins(&s));
	CHECK(st1.unreported == st0.unreported + 1 &&
		      st1.events_lost > st0.events_lost &&
		      st1.desyncs == st0.desyncs,
	      "unreported %llu -> %llu, lost %llu -> %llu, desyncs %llu -> %llu",
	      (unsigned long long)st0.unreported,
	      (unsigned long long)st1.unreported,
	      (unsigned long long)st0.events_lost,
	      (unsigned long long)st1.events_lost,
	      (unsigned long long)st0.desyncs, (unsigned long long)st1.desyncs);
	c = ctrl_of(&s, &found);
	CHECK(found && !c.desync &&
		      c.sync == (PH_FTPC_SYNC_DUE | PH_FTPC_SYNC_LOST),
	      "ftp_ctrl: desync %u sync %x", c.desync, c.sync);
	CHECK_REASON(data_syn(&s, 1, 50291, 40001), PH_R_PASS_EXPECT,
		     "data SYN while the ring is full");
	k227 = pin_key(&s, 1, 50291, NULL);
	hold_ring = false;
	ev_reset(); /* the tracker catches up */

	/* The next record of the session comes with a SYNC that says bytes
	 * were lost and names the datapath's pinhole. */
	say(&s, 1, "NOOP\r\n");
	say(&s, 0, "200 NOOP ok.\r\n");
	CHECK(evl.n == 0, "chatter reported after the loss");
	cpos = s.cnxt;
	say(&s, 1, "EPSV\r\n");
	d = sync_of(evl.n == 2 ? &evl.ev[0] : NULL);
	CHECK(d && (d->flags & PH_SYNC_LOST) && d->ps.st[1].nxt == cpos &&
		      (d->ps.flags & PH_FTPC_PINHOLE) &&
		      !memcmp(&d->ps.pinhole, &k227, sizeof(k227)),
	      "after the loss: %d records, want SYNC (lost, pinhole) then EPSV",
	      evl.n);
	say(&s, 0, "229 Entering Extended Passive Mode (|||50292|)\r\n");
	CHECK(has_pin(&s, 1, 50292) && pins(&s) == 1,
	      "EPSV after the loss: %d pinholes", pins(&s));
	c = ctrl_of(&s, &found);
	CHECK(found && !c.desync && !c.sync, "ftp_ctrl after the SYNC: %x",
	      c.sync);
	seg_at(&s, 1, s.cnxt, NULL, 0, RST | ACK);
	seg_at(&t, 1, t.cnxt, NULL, 0, RST | ACK);
	ev_reset();
	map_clear(F->expect);
	ring_lost = dp_stats().events_lost;
	printf("ring full: %llu records lost, %llu quiet, %llu syncs, %llu pinholes unreported, %llu desyncs\n",
	       (unsigned long long)ring_lost,
	       (unsigned long long)dp_stats().quiet,
	       (unsigned long long)dp_stats().syncs,
	       (unsigned long long)dp_stats().unreported,
	       (unsigned long long)dp_stats().desyncs);
}

/* ---- checksums, fragments, ACKs (issue 13) ------------------------------- */

/* A segment of one side at @seq with the checksum spoiled as @csum asks. */
static int seg_csum(struct ctl *s, int from_client, __u32 seq,
		    const char *text, int csum)
{
	struct pkt_spec p = ctl_spec(s, from_client, ACK | PSH, seq,
				     from_client ? s->snxt : s->cnxt, text,
				     strlen(text));

	p.csum = csum;
	return run_reason(dir_of(s, from_client), &p);
}

static void t_csum(void)
{
	int ifaces = bpf_map__fd(F->x->maps.ifaces);
	struct ph_iface rec = { .ifindex = 1, .flags = PH_IFF_CSUM_PARTIAL };
	char pa[64], pb[64];
	struct ph_ftp_ctrl c;
	struct ctl s;
	bool found;
	__u32 nxt;
	int r, fam;

	for (fam = 4; fam <= 6; fam += 2) {
		tname = fam == 4 ? "bad checksum, then a good copy (IPv4)" :
				   "bad checksum, then a good copy (IPv6)";
		sess_init(&s, fam, SERVER, 40600 + fam);
		if (!sess_open(&s, 0))
			return;
		if (fam == 4) {
			port_text(pa, sizeof(pa), P4, 40001);
			port_text(pb, sizeof(pb), P4, 41003);
		} else {
			snprintf(pa, sizeof(pa), "EPRT |2|%s|40001|\r\n", P6);
			snprintf(pb, sizeof(pb), "EPRT |2|%s|41003|\r\n", P6);
		}
		ev_reset();
		nxt = ctrl_of(&s, &found).ps.st[1].nxt;
		r = seg_csum(&s, 1, s.cnxt, pb, PKT_CSUM_BAD);
		CHECK_REASON(r, PH_R_DROP_CTRL_CSUM, "PORT B, bad checksum");
		CHECK(evl.n == 0, "%d records for a bad segment", evl.n);
		CHECK(pins(&s) == 0, "a bad segment opened a pinhole");
		c = ctrl_of(&s, &found);
		CHECK(found && c.ps.st[1].nxt == nxt && !c.desync,
		      "a bad segment moved the parser");
		say(&s, 1, pa);
		CHECK(has_pin(&s, 0, 40001) && pins(&s) == 1,
		      "the good copy at the same seq did not open A");
	}

	tname = "bad IPv4 header checksum";
	sess_init(&s, 4, SERVER, 40610);
	if (!sess_open(&s, 0))
		return;
	port_text(pb, sizeof(pb), P4, 41003);
	r = seg_csum(&s, 1, s.cnxt, pb, PKT_CSUM_BAD_IP);
	CHECK_REASON(r, PH_R_DROP_CTRL_CSUM, "bad IP header checksum");
	CHECK(pins(&s) == 0, "opened from a bad IP header");

	/* Only the pseudo-header sum: what a veth peer's stack leaves
	 * (CHECKSUM_PARTIAL). Refused unless the interface may carry it. */
	tname = "partial checksum on ingress";
	sess_init(&s, 4, SERVER, 40611);
	if (!sess_open(&s, 0))
		return;
	port_text(pa, sizeof(pa), P4, 40001);
	r = seg_csum(&s, 1, s.cnxt, pa, PKT_CSUM_PARTIAL);
	CHECK_REASON(r, PH_R_DROP_CTRL_CSUM, "partial, not a veth");
	CHECK(!bpf_map_update_elem(ifaces, &rec.ifindex, &rec, BPF_ANY),
	      "ifaces: %s", strerror(errno));
	r = seg_csum(&s, 1, s.cnxt, pa, PKT_CSUM_PARTIAL);
	CHECK_REASON(r, PH_R_PASS_FLOW, "partial on a veth");
	s.cnxt += strlen(pa);
	CHECK(has_pin(&s, 0, 40001), "partial on a veth: not parsed");
	r = seg_csum(&s, 1, s.cnxt, "NOOP\r\n", PKT_CSUM_BAD);
	CHECK_REASON(r, PH_R_DROP_CTRL_CSUM, "bad on a veth");
	bpf_map_delete_elem(ifaces, &rec.ifindex);

	/* Egress: the local stack's partial sum is trusted; a forged bad
	 * one (a raw socket) is not. */
	tname = "egress checksums";
	sess_init(&s, 4, SERVER, 40612);
	if (!sess_open(&s, 0))
		return;
	say(&s, 1, "PASV\r\n");
	pasv_text(pa, sizeof(pa), L4, 50300);
	r = seg_csum(&s, 0, s.snxt, pa, PKT_CSUM_BAD);
	CHECK_REASON(r, PH_R_DROP_CTRL_CSUM, "egress, bad");
	CHECK(pins(&s) == 0, "egress bad segment parsed");
	r = seg_csum(&s, 0, s.snxt, pa, PKT_CSUM_PARTIAL);
	CHECK_REASON(r, PH_R_PASS_FLOW, "egress, partial");
	s.snxt += strlen(pa);
	CHECK(has_pin(&s, 1, 50300), "egress partial not parsed");
}

/*
 * A PORT in IP fragments: the first fragment is neither parsed nor
 * reported; the server's reply acknowledges past it, and the parser
 * resumes at the next line; the PORT after that opens (the in-kernel
 * parser recovers, it does not desync).
 */
static void t_fragment(void)
{
	char pa[64], pb[64];
	struct ph_ftp_ctrl c;
	struct pkt_spec p;
	struct ctl s;
	bool found;
	int r;

	tname = "PORT in IP fragments";
	sess_init(&s, 4, SERVER, 40620);
	if (!sess_open(&s, 0))
		return;
	port_text(pa, sizeof(pa), P4, 40001);
	port_text(pb, sizeof(pb), P4, 42000);
	ev_reset();
	p = ctl_spec(&s, 1, ACK | PSH, s.cnxt, s.snxt, pa, 4);
	p.frag = PKT_FRAG_FIRST;
	p.frag_id = 77;
	r = run_reason(IN, &p);
	CHECK_REASON(r, PH_R_PASS_FLOW, "first fragment");
	CHECK(ev_count(PH_EV_CTRL_DATA) == 0, "a first fragment was reported");
	s.cnxt += strlen(pa); /* the stack reassembled the whole PORT */
	say(&s, 0, "200 PORT command successful.\r\n");
	c = ctrl_of(&s, &found);
	CHECK(found && !c.desync && c.ps.st[1].nxt == s.cnxt,
	      "the ACK did not resync: desync %u nxt %x want %x", c.desync,
	      c.ps.st[1].nxt, s.cnxt);
	CHECK(pins(&s) == 0, "the fragmented PORT opened");
	say(&s, 1, "LIST\r\n");
	say(&s, 0, "425 Failed to establish connection.\r\n");
	say(&s, 1, pb);
	CHECK(has_pin(&s, 0, 42000), "the next PORT did not open");

	/* A pure ACK past what the parser saw is reported (len 0); one that
	 * is not, is not. */
	tname = "pure ACKs";
	ev_reset();
	p = ctl_spec(&s, 0, ACK, s.snxt, s.cnxt, NULL, 0);
	r = run_reason(dir_of(&s, 0), &p);
	CHECK_REASON(r, PH_R_PASS_FLOW, "pure ACK");
	CHECK(evl.n == 0, "an ACK of parsed bytes was reported");
	r = seg_at(&s, 1, s.cnxt + 10, "NOOP\r\n", 6, ACK | PSH);
	CHECK_REASON(r, PH_R_PASS_FLOW, "segment ahead");
	ev_reset();
	p = ctl_spec(&s, 0, ACK, s.snxt, s.cnxt + 16, NULL, 0);
	r = run_reason(dir_of(&s, 0), &p);
	CHECK(evl.n == 1 && evl.ev[0].type == PH_EV_CTRL_DATA &&
		      evl.ev[0].len == 0 && evl.ev[0].ack == s.cnxt + 16 &&
		      evl.ev[0].dir == OUT,
	      "ACK past the parser: %d records", evl.n);
}

/*
 * A fixed data port: the same 4-tuple again while the last connection is
 * closing. Every new data SYN takes its own pinhole (PASS_EXPECT), the
 * handshake replaces the closing flow, and only a retransmission of a SYN
 * (same sequence number) rides its half-open entry.
 */
static void t_reuse(void)
{
	struct pkt_spec p = { .family = 4, .proto = IPPROTO_TCP, .set_seq = 1 };
	char pa[64];
	struct ctl s;
	int i, r;

	tname = "fixed data port";
	sess_init(&s, 4, SERVER, 40630);
	if (!sess_open(&s, 0))
		return;
	port_text(pa, sizeof(pa), P4, 40100);
	for (i = 0; i < 3; i++) {
		__u32 sseq = 0x1000000u * (i + 1), cseq = 0x70000000u + i;

		say(&s, 1, pa);
		say(&s, 0, "200 PORT command successful.\r\n");
		/* server (this host) -> client, from port 20 */
		p.src = L4, p.dst = P4, p.sport = 20, p.dport = 40100;
		p.flags = SYN, p.seq = sseq, p.ack = 0;
		r = run_reason(OUT, &p);
		CHECK_REASON(r, PH_R_PASS_EXPECT, "data SYN");
		r = run_reason(OUT, &p);
		CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "retransmitted data SYN");
		p.src = P4, p.dst = L4, p.sport = 40100, p.dport = 20;
		p.flags = SYN | ACK, p.seq = cseq, p.ack = sseq + 1;
		r = run_reason(IN, &p);
		CHECK_REASON(r, PH_R_PASS_HALF_OPEN, "data SYN-ACK");
		p.flags = FIN | ACK, p.seq = cseq + 1;
		r = run_reason(IN, &p);
		CHECK_REASON(r, PH_R_PASS_FLOW, "client FIN");
		p.src = L4, p.dst = P4, p.sport = 20, p.dport = 40100;
		p.flags = FIN | ACK, p.seq = sseq + 1, p.ack = cseq + 2;
		r = run_reason(OUT, &p);
		CHECK_REASON(r, PH_R_PASS_FLOW, "server FIN");
	}
	/* A SYN with another number and no pinhole: not the last one's. */
	p.flags = SYN, p.seq = 0x5000000u, p.ack = 0;
	r = run_reason(OUT, &p);
	CHECK(PH_REASON_IS_DROP(r), "new SYN without a pinhole: %s", rname(r));
}

/* ---- TLS ---------------------------------------------------------------- */

static void t_tls(void)
{
	struct ctl s;
	struct ph_ftp_ctrl c;
	bool found;
	int r;

	tname = "AUTH TLS";
	sess_init(&s, 4, SERVER, 40600);
	if (!sess_open(&s, 0))
		return;
	say(&s, 1, "PORT 198,51,100,7,196,90\r\n");
	CHECK(has_pin(&s, 0, 50266), "PORT before AUTH");
	say(&s, 0, "200 ok\r\n");
	say(&s, 1, "AUTH TLS\r\n");
	/* While AUTH awaits its reply, client lines are not parsed. */
	say(&s, 1, "PORT 198,51,100,7,196,91\r\n");
	CHECK(has_pin(&s, 0, 50266) && pins(&s) == 1,
	      "a line after AUTH was parsed");
	ev_reset();
	say(&s, 0, "234 Proceed with negotiation\r\n");
	CHECK(ev_count(PH_EV_CTRL_DATA) == 1, "234 not reported");
	CHECK(pins(&s) == 0, "234 left the pinhole");
	c = ctrl_of(&s, &found);
	CHECK(found && (c.ps.flags & PH_FTPC_ENCRYPTED), "not encrypted");
	ev_reset();
	say(&s, 1, "PASV\r\n");
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,92)\r\n");
	say(&s, 1, "PORT 198,51,100,7,196,93\r\n");
	CHECK(pins(&s) == 0, "parsed after 234");
	CHECK(evl.n == 0, "%d records after 234", evl.n);
	r = seg_at(&s, 1, s.cnxt, NULL, 0, RST | ACK);
	CHECK_REASON(r, PH_R_PASS_FLOW, "RST");
	CHECK(ev_count(PH_EV_CTRL_CLOSE) == 1 &&
		      ev_last(PH_EV_CTRL_CLOSE)->encrypted == 1,
	      "CLOSE after TLS");

	tname = "implicit FTPS";
	sess_init(&s, 4, SERVER, 40601);
	s.sport = 990;
	s.key.lport = htons(990);
	if (!sess_open(&s, 1))
		return;
	say(&s, 0, "\x16\x03\x01 hello");
	say(&s, 1, "PASV\r\n");
	say(&s, 0, "227 Entering Passive Mode (192,0,2,1,196,94)\r\n");
	CHECK(evl.n == 0 && pins(&s) == 0,
	      "implicit FTPS: %d records", evl.n);
	r = seg_at(&s, 0, s.snxt, NULL, 0, RST | ACK);
	CHECK(ev_count(PH_EV_CTRL_CLOSE) == 1 &&
		      ev_last(PH_EV_CTRL_CLOSE)->encrypted == 1 &&
		      ev_last(PH_EV_CTRL_CLOSE)->session == s.session,
	      "implicit FTPS: CLOSE");
}

/* ---- the end of a control connection ------------------------------------ */

static void t_close(void)
{
	struct ctl s;
	bool found;
	const struct ph_event *e;
	char l[128];
	int r;

	tname = "RST revokes";
	sess_init(&s, 4, SERVER, 40700);
	if (!sess_open(&s, 0))
		return;
	say(&s, 1, "PASV\r\n");
	pasv_text(l, sizeof(l), L4, 50400);
	say(&s, 0, l);
	CHECK(has_pin(&s, 1, 50400), "no pinhole");
	ev_reset();
	r = seg_at(&s, 1, s.cnxt, NULL, 0, RST | ACK);
	CHECK_REASON(r, PH_R_PASS_FLOW, "RST");
	CHECK(pins(&s) == 0, "RST left the pinhole");
	e = ev_last(PH_EV_CTRL_CLOSE);
	CHECK(e && e->session == s.session && e->from_client == 1 &&
		      !memcmp(&e->key, &s.key, sizeof(s.key)) &&
		      (e->tcp_flags & RST),
	      "CLOSE after RST");
	ctrl_of(&s, &found);
	CHECK(!found, "ftp_ctrl entry left after RST");
	r = data_syn(&s, 1, 50400, 53000);
	CHECK_REASON(r, PH_R_DROP_POLICY, "data SYN after the RST");

	tname = "FIN both ways";
	sess_init(&s, 6, CLIENT, 40701);
	if (!sess_open(&s, 0))
		return;
	say(&s, 1, "EPSV\r\n");
	say(&s, 0, "229 Entering Extended Passive Mode (|||50401|)\r\n");
	CHECK(has_pin(&s, 1, 50401), "no pinhole");
	ev_reset();
	r = seg_at(&s, 1, s.cnxt, "QUIT\r\n", 6, FIN | ACK | PSH);
	s.cnxt += 7;
	CHECK(ev_count(PH_EV_CTRL_CLOSE) == 0 && ev_count(PH_EV_CTRL_DATA) == 1,
	      "one FIN closed the session");
	r = seg_at(&s, 0, s.snxt, "221 Bye\r\n", 9, FIN | ACK | PSH);
	s.snxt += 10;
	CHECK(ev_count(PH_EV_CTRL_DATA) == 2 &&
		      ev_count(PH_EV_CTRL_CLOSE) == 1 &&
		      ev_index(ev_last(PH_EV_CTRL_DATA)) <
			      ev_index(ev_last(PH_EV_CTRL_CLOSE)),
	      "FIN both ways: DATA then CLOSE");
	CHECK(pins(&s) == 0, "FIN left the pinhole");
	r = seg_at(&s, 1, s.cnxt, NULL, 0, ACK);
	CHECK(ev_count(PH_EV_CTRL_CLOSE) == 1, "a second CLOSE");

	tname = "pinhole expiry";
	sess_init(&s, 4, SERVER, 40702);
	if (!sess_open(&s, 0))
		return;
	say(&s, 1, "PASV\r\n");
	pasv_text(l, sizeof(l), L4, 50402);
	say(&s, 0, l);
	CHECK(has_pin(&s, 1, 50402), "no pinhole");
	fx_advance(F, 31 * NSEC);
	r = data_syn(&s, 1, 50402, 53001);
	CHECK_REASON(r, PH_R_DROP_EXPECT_SPENT, "data SYN after the TTL");

	tname = "control idle expiry";
	ev_reset();
	fx_advance(F, (PH_TCP_EST_TIMEOUT_S + 1) * NSEC);
	r = seg_at(&s, 1, s.cnxt, "NOOP\r\n", 6, ACK | PSH);
	CHECK(ev_count(PH_EV_CTRL_CLOSE) == 1 &&
		      ev_last(PH_EV_CTRL_CLOSE)->session == s.session,
	      "idle control connection: no CLOSE");
	ctrl_of(&s, &found);
	CHECK(!found, "ftp_ctrl entry left after expiry");
}


/* ---- differential: the datapath against user/ftp.c ----------------------- */

/*
 * Random conversations (a grammar of commands and replies, numbers and
 * addresses right or wrong, spaces, case, CR/LF variants, multi-line
 * replies, TLS), cut into random segments and fed in order to the
 * programs; every CTRL_DATA record is fed to user/ftp.c as the tracker
 * would. Whenever the datapath installs a pinhole (EXPECT_BPF), the parser
 * must hold the same one as pending once it has read that record; while
 * the datapath follows the session, its pinhole is at all times the
 * parser's pending one or none.
 */
static __u64 rnd_state = 0x9e3779b97f4a7c15ull;

static __u32 rnd(__u32 n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return n ? (__u32)(rnd_state % n) : 0;
}

static void put(char *buf, size_t n, const char *fmt, ...)
{
	size_t l = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + l, n - l, fmt, ap);
	va_end(ap);
}

/* A number as an FTP peer might write it, usually right. */
static void put_num(char *b, size_t n, unsigned v)
{
	switch (rnd(24)) {
	case 0: put(b, n, "0%u", v); break;
	case 1: put(b, n, "%u", v + 256); break;
	case 2: put(b, n, "99999999999"); break;
	case 3: put(b, n, "-%u", v); break;
	default: put(b, n, "%u", v); break;
	}
}

#define PICK(a) (a[rnd(sizeof(a) / sizeof(a[0]))])

static __u16 rnd_port(void)
{
	switch (rnd(10)) {
	case 0: return rnd(1024);
	case 1: return 1024 + rnd(3);
	default: return 40000 + rnd(20000);
	}
}

/* An address: the right one (usually), the other end's, a third host. */
static const char *rnd_addr(int family, const char *right, const char *other)
{
	switch (rnd(8)) {
	case 0: return other;
	case 1: return family == 4 ? T4 : T6;
	default: return right;
	}
}

static void put_h6(char *b, size_t n, const char *addr4, __u16 port)
{
	__u8 a[4];
	int i;

	pkt_addr(4, addr4, a);
	for (i = 0; i < 4; i++) {
		put_num(b, n, a[i]);
		put(b, n, ",");
	}
	put_num(b, n, port >> 8);
	put(b, n, ",");
	put_num(b, n, port & 0xff);
}

static void put_eol(char *b, size_t n)
{
	switch (rnd(16)) {
	case 0: put(b, n, "\n"); break;
	case 1: put(b, n, " \r\n"); break;
	case 2: put(b, n, "\r\r\n"); break;
	default: put(b, n, "\r\n"); break;
	}
}

static void case_mix(char *w)
{
	for (; *w; w++)
		if (rnd(3) == 0 && *w >= 'A' && *w <= 'Z')
			*w += 'a' - 'A';
}

static const char *const epsv_args[] = { "", "", " 1", " 2", " ALL", " 3" };
static const char *const commands[] = {
	"NOOP", "LIST", "TYPE I", "RETR f", "XPASV", "PORT", "STAT",
};

/* A client line for session @s into @b. */
static void gen_client(const struct ctl *s, char *b, size_t n)
{
	const char *cli = client_addr(s), *srv = server_addr(s);
	char verb[16];
	__u16 port = rnd_port();
	int fam = s->family;

	b[0] = 0;
	switch (rnd(14)) {
	case 0: case 1:
		strcpy(verb, "PASV");
		case_mix(verb);
		put(b, n, "%s%s", verb, rnd(8) ? "" : rnd(2) ? "  " : " x");
		break;
	case 2: case 3:
		strcpy(verb, "EPSV");
		case_mix(verb);
		put(b, n, "%s%s", verb, PICK(epsv_args));
		break;
	case 4: case 5: {
		const char *a = rnd_addr(4, fam == 4 ? cli : P4, srv);

		strcpy(verb, "PORT");
		case_mix(verb);
		put(b, n, "%s ", verb);
		if (fam == 6 && rnd(2))
			a = P4;
		put_h6(b, n, fam == 4 ? a : P4, port);
		if (!rnd(10))
			put(b, n, rnd(2) ? "  " : ",1");
		break;
	}
	case 6: case 7: {
		const char *a = rnd_addr(fam, cli, srv);
		char d = "|!|#|"[rnd(5)];

		strcpy(verb, "EPRT");
		case_mix(verb);
		put(b, n, "%s %c%c%c%s%c", verb, d,
		    rnd(10) ? (fam == 4 ? '1' : '2') : (fam == 4 ? '2' : '1'),
		    d, a, d);
		put_num(b, n, port);
		put(b, n, "%c%s", d, rnd(8) ? "" : rnd(2) ? "  " : "x");
		break;
	}
	case 8:
		if (rnd(4) == 0) {
			put(b, n, "AUTH TLS");
			break;
		}
		/* fall through */
	default:
		put(b, n, "%s", PICK(commands));
		break;
	}
	put_eol(b, n);
}

static const char *const ml_first[] = { "211-", "227-", "150-" };
static const char *const refusals[] = {
	"425 no", "500 '227 Entering Passive Mode (1,2,3,4,5,6)'", "550 no",
};
static const char *const others[] = {
	"200 OK", "150 Opening", "226 Done", "211 End", "150-More",
};
/* A server reply for session @s into @b: now and then inside or after a
 * multi-line reply, whose lines never count. */
static void gen_server(const struct ctl *s, char *b, size_t n)
{
	const char *srv = server_addr(s), *cli = client_addr(s);
	__u16 port = rnd_port();
	int ml = rnd(8) == 0;

	b[0] = 0;
	if (ml) {
		put(b, n, "%stext", PICK(ml_first));
		put_eol(b, n);
		if (rnd(2)) {
			put(b, n, "227 Entering Passive Mode (");
			put_h6(b, n, s->family == 4 ? srv : L4, port);
			put(b, n, ")");
			put_eol(b, n);
		}
	}
	switch (rnd(12)) {
	case 0: case 1: case 2:
		put(b, n, "227%sEntering Passive Mode (",
		    ml && rnd(2) ? "-" : " ");
		put_h6(b, n, s->family == 4 ? rnd_addr(4, srv, cli) : L4, port);
		put(b, n, ")%s", rnd(4) ? "" : ".");
		break;
	case 3: case 4:
		put(b, n, "229 Entering Extended Passive Mode (|||");
		put_num(b, n, port);
		put(b, n, "|)");
		break;
	case 5:
		put(b, n, "%s", PICK(refusals));
		break;
	case 6:
		if (rnd(6) == 0) {
			put(b, n, "234 Proceed");
			break;
		}
		/* fall through */
	default:
		put(b, n, "%s", PICK(others));
		break;
	}
	put_eol(b, n);
	if (ml && rnd(2))
		put(b, n, "%s end\r\n", b[1] == '2' ? "227" : "211");
}

struct diff_stats {
	int sessions, records, bpf_opens, ftp_opens, checks, syncs;
};

static int bpf_pin_of(const struct ctl *s, struct ph_flow_key *k)
{
	struct ph_flow_key key, next;
	struct ph_expect e;
	void *prev = NULL;
	int n = 0;

	while (!bpf_map_get_next_key(F->expect, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(F->expect, &key, &e) &&
		    e.session == s->session) {
			*k = key;
			n++;
		}
	}
	return n;
}

/* Feeds the records the last packet produced to the parser; checks each
 * EXPECT_BPF against it. */
static void diff_feed(const struct ctl *s, struct ph_ftp_session *u,
		      struct diff_stats *ds, __u64 now)
{
	struct ph_ftp_action act[PH_FTP_MAX_ACTIONS], pend;
	const struct ph_flow_key *want = NULL;
	int i, j, n;

	for (i = 0; i < evl.n; i++) {
		const struct ph_event *e = &evl.ev[i];

		if (e->type == PH_EV_EXPECT_BPF) {
			want = &e->expect;
			ds->bpf_opens++;
			continue;
		}
		if (e->type == PH_EV_CTRL_SYNC) {
			/* Quiet records before it: as the tracker does. */
			struct ph_ftp_action ra[PH_FTP_RESUME_MAX_ACTIONS];
			struct ph_ftp_resume r;

			ph_trk_sync_to_resume(
				(const struct ph_ctrl_sync *)e->data,
				((const struct ph_ctrl_sync *)e->data)->flags &
					PH_SYNC_LOST,
				&r);
			ph_ftp_resume(u, &r, now, ra, PH_FTP_RESUME_MAX_ACTIONS,
				      &n);
			ds->syncs++;
			continue;
		}
		if (e->type != PH_EV_CTRL_DATA)
			continue;
		ds->records++;
		n = ph_ftp_feed(u, e->from_client, e->seq, e->data, e->caplen,
				now, act, PH_FTP_MAX_ACTIONS);
		for (j = 0; j < n; j++)
			ds->ftp_opens += act[j].kind == PH_FTP_OPEN;
		if (!want)
			continue;
		ds->checks++;
		CHECK(ph_ftp_pending(u, &pend) &&
			      !memcmp(&pend.key, want, sizeof(*want)),
		      "session %08x: the datapath installed a pinhole the parser does not hold (record seq %x)",
		      s->session, e->seq);
		want = NULL;
	}
	evl.n = 0;
}

static void diff_session(int n_lines, struct diff_stats *ds)
{
	static char stream[2][16384];
	struct ph_ftp_session *u = calloc(1, sizeof(*u));
	struct ph_ftp_config cfg = {};
	struct ph_flow_key bk;
	struct ph_ftp_action pend;
	struct ph_ftp_ctrl c;
	struct ctl s;
	int family = rnd(3) ? 4 : 6, role = rnd(2) ? SERVER : CLIENT;
	int i, side, len[2] = { 0, 0 }, off[2] = { 0, 0 };
	char line[256];
	bool found;
	static __u16 cport = 30000;

	if (!u)
		return;
	sess_init(&s, family, role, cport++);
	if (!sess_open(&s, 0)) {
		free(u);
		return;
	}
	ds->sessions++;
	cfg.family = family == 4 ? AF_INET : AF_INET6;
	addr16(family, client_addr(&s), cfg.client_addr);
	addr16(family, server_addr(&s), cfg.server_addr);
	cfg.role = role == SERVER ? PH_FTP_ROLE_SERVER : PH_FTP_ROLE_CLIENT;
	ph_ftp_init(u, &cfg);
	ph_ftp_set_isn(u, 1, s.cnxt - 1);
	ph_ftp_set_isn(u, 0, s.snxt - 1);

	/* The conversation: mostly command, reply; sometimes two in a row. */
	stream[0][0] = stream[1][0] = 0;
	for (i = 0; i < n_lines; i++) {
		side = rnd(5) == 0 ? rnd(2) : i & 1;
		if (side)
			gen_client(&s, line, sizeof(line));
		else
			gen_server(&s, line, sizeof(line));
		if (len[side] + strlen(line) >= sizeof(stream[0]))
			break;
		strcpy(stream[side] + len[side], line);
		len[side] += strlen(line);
		/* Send what this side has, in one or more segments, now or
		 * together with its next lines. */
		if (rnd(3) == 0 && i + 1 < n_lines)
			continue;
		while (off[side] < len[side]) {
			int cut = len[side] - off[side];

			if (rnd(3) == 0)
				cut = 1 + rnd(cut);
			seg_at(&s, side, (side ? s.cnxt : s.snxt),
			       stream[side] + off[side], cut, ACK | PSH);
			if (side)
				s.cnxt += cut;
			else
				s.snxt += cut;
			off[side] += cut;
			ev_drain();
			diff_feed(&s, u, ds, fx_now());
			c = ctrl_of(&s, &found);
			if (!found || c.desync)
				continue;
			/* In step, the datapath's pinhole is the parser's
			 * pending one, or there is none. */
			if (bpf_pin_of(&s, &bk)) {
				ds->checks++;
				CHECK(ph_ftp_pending(u, &pend) &&
					      !memcmp(&pend.key, &bk, sizeof(bk)),
				      "session %08x: the datapath holds a pinhole the parser revoked",
				      s.session);
			}
		}
	}
	seg_at(&s, 1, s.cnxt, NULL, 0, RST | ACK);
	ev_reset();
	map_clear(F->expect);
	free(u);
}

static void t_differential(void)
{
	struct diff_stats ds = {};
	int i;

	tname = "differential";
	for (i = 0; i < 400; i++)
		diff_session(10 + rnd(40), &ds);
	printf("differential: %d sessions, %d records, %d syncs, %d pinholes installed by the datapath, %d opened by user/ftp.c, %d checks\n",
	       ds.sessions, ds.records, ds.syncs, ds.bpf_opens, ds.ftp_opens,
	       ds.checks);
	CHECK(ds.bpf_opens > 50 && ds.checks > 50, "too few pinholes to compare");
}

/* ---- policy ----------------------------------------------------------- */

/* Inbound and outbound default drop; FTP control to/from port 21 tracked,
 * inbound implicit FTPS on 990. */
static void policy_ftp(struct fx *f)
{
	fx_reset(f);
	set_meta(f, 0, PH_ACT_DROP, PH_ACT_DROP, PH_ACT_ALLOW, PH_ACT_ALLOW);
	add_rule(f, 0, R_FTP_IN, PH_L4_TCP, PH_PT_IN_DPORT, 21, 21,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTP_TRACK, 0);
	add_rule(f, 0, R_FTP_OUT, PH_L4_TCP, PH_PT_OUT_DPORT, 21, 21,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTP_TRACK, 0);
	add_rule(f, 0, R_FTPS_IN, PH_L4_TCP, PH_PT_IN_DPORT, 990, 990,
		 PH_ACT_ALLOW, PH_RF_PEER_ANY | PH_RF_FTPS_IMPLICIT, 0);
	ev_reset();
}

/* ---- nat-address (1:1 NAT) --------------------------------------------- */

#define NAT4 "203.0.113.5"
#define NAT6 "2001:db8:5::5"
#define V4C 4, CLIENT

/* The tracked services of policy_ftp() announce NAT4 / NAT6. */
static void nat_put(__u16 service)
{
	struct ph_ftp_nat_key k = { .slot = 0, .service = service };
	struct ph_ftp_nat v = { .n = 2 };

	v4mapped(NAT4, v.addr[0]);
	addr16(6, NAT6, v.addr[1]);
	bpf_map_update_elem(F->ftp_nat, &k, &v, BPF_ANY);
}

/* Only this host's own address may be its nat-address; everything else as
 * before. */
static const struct nego_case nat_cases[] = {
	{ "server 227 naming its nat-address", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (203,0,113,5,197,1)\r\n", 1, 50433, 1 },
	{ "server 227 naming another address", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (203,0,113,6,197,2)\r\n", 1, 50434, 0 },
	{ "server: PORT naming the server's nat-address", V4S,
	  "PORT 203,0,113,5,197,3\r\n", NULL, 0, 50435, 0 },
	{ "client PORT naming its nat-address", V4C,
	  "PORT 203,0,113,5,197,4\r\n", NULL, 0, 50436, 1 },
	{ "client EPRT |1| naming its nat-address", V4C,
	  "EPRT |1|203.0.113.5|50437|\r\n", NULL, 0, 50437, 1 },
	{ "client EPRT |1| naming another address", V4C,
	  "EPRT |1|203.0.113.6|50438|\r\n", NULL, 0, 50438, 0 },
	{ "client EPRT |2| naming its nat-address", V6C,
	  "EPRT |2|2001:db8:5::5|50439|\r\n", NULL, 0, 50439, 1 },
	{ "client EPRT |2| naming another address", V6C,
	  "EPRT |2|2001:db8:5::6|50440|\r\n", NULL, 0, 50440, 0 },
	{ "client EPRT |2| naming the IPv4 nat-address mapped", V6C,
	  "EPRT |2|::ffff:203.0.113.5|50441|\r\n", NULL, 0, 50441, 0 },
	{ "client: 227 naming the client's nat-address", V4C, "PASV\r\n",
	  "227 Entering Passive Mode (203,0,113,5,197,10)\r\n", 1, 50442, 0 },
	{ "client PORT to a low port of its nat-address", V4C,
	  "PORT 203,0,113,5,0,25\r\n", NULL, 0, 25, 0 },
	{ "still its own address", V4C, "PORT 192,0,2,1,197,12\r\n", NULL, 0,
	  50444, 1 },
};

static const struct nego_case nat_none[] = {
	{ "server 227 naming an address of another service", V4S, "PASV\r\n",
	  "227 Entering Passive Mode (203,0,113,5,197,20)\r\n", 1, 50452, 0 },
	{ "client PORT naming an address of another service", V4C,
	  "PORT 203,0,113,5,197,21\r\n", NULL, 0, 50453, 0 },
};

static void t_nat(void)
{
	__u16 cport = 41100;

	nat_put(R_FTP_IN);
	nat_put(R_FTP_OUT);
	run_nego(nat_cases, sizeof(nat_cases) / sizeof(nat_cases[0]), &cport);
	map_clear(F->ftp_nat);
	nat_put(R_FTPS_IN); /* an entry for a service these sessions are not */
	run_nego(nat_none, sizeof(nat_none) / sizeof(nat_none[0]), &cport);
	map_clear(F->ftp_nat);
}

static void prog_insns(void)
{
	struct bpf_program *p[2] = { F->x->progs.pinhole_xdp,
				     F->t->progs.pinhole_tc };
	int i;

	for (i = 0; i < 2; i++) {
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
	struct fx_opts o = { .name = "ftp", .track_ftp = true };
	int rc = fx_init("ph-ftpdp");

	if (rc)
		return rc;
	F = fx_create(&o);
	if (!F)
		return 1;
	rb = ring_buffer__new(F->events, on_event, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "ring_buffer__new: %s\n", strerror(errno));
		return 1;
	}
	prog_insns();

	policy_ftp(F);
	t_server_passive(4);
	t_server_passive(6);
	t_server_active(4);
	t_server_active(6);
	t_client_passive(4);
	t_client_passive(6);
	t_client_active(4);
	t_client_active(6);
	policy_ftp(F);
	t_forms();
	policy_ftp(F);
	t_revoke();
	policy_ftp(F);
	t_split();
	policy_ftp(F);
	t_order();
	policy_ftp(F);
	t_csum();
	policy_ftp(F);
	t_fragment();
	policy_ftp(F);
	t_reuse();
	policy_ftp(F);
	t_tls();
	policy_ftp(F);
	t_close();
	policy_ftp(F);
	t_ring();
	policy_ftp(F);
	t_differential();
	policy_ftp(F);
	t_nat();

	tname = "stats";
	{
		struct ph_ftp_dp_stats st = dp_stats();

		/* Lost records: only those t_ring() meant to lose. */
		CHECK(st.sessions > 50 && st.pinholes > 20 &&
			      st.events_lost == ring_lost && st.ctrl_full == 0,
		      "sessions %llu pinholes %llu lost %llu full %llu",
		      (unsigned long long)st.sessions,
		      (unsigned long long)st.pinholes,
		      (unsigned long long)st.events_lost,
		      (unsigned long long)st.ctrl_full);
	}
	ring_buffer__free(rb);
	fx_check_slots();
	if (failures) {
		printf("FAILED: %d of %d checks\n", failures, checks);
		return 1;
	}
	printf("OK: %d checks\n", checks);
	return 0;
}
