// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * FTP tracker (user/ftp.c): table-driven tests of every command and reply
 * form and every invariant, plus reassembly (retransmissions with other
 * bytes, reordering, window overflow, 32-bit wraparound) and split
 * invariance: each scripted session is fed whole, byte by byte, cut at
 * every point (in order and reversed), retransmitted, and randomly cut
 * and reordered; every way must give the same actions. No root.
 * Exit 0 when every check passes; one FAIL line per failed check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ftp.h"
#include "check.h"


#define SEC 1000000000ull
#define TTL (5 * SEC)
#define MAXA 512
#define MAXMSG 24

/* Addresses of the control connection. */
#define C4 "198,51,100,7"   /* client 198.51.100.7 */
#define S4 "192,0,2,1"      /* server 192.0.2.1 */
#define CLI6 "2001:db8::7"
#define SRV6 "2001:db8::1"
#define P5001 "19,137"      /* 19 * 256 + 137 */
#define CRLF "\r\n"
#define PASV227 "S:227 Entering Passive Mode (" S4 "," P5001 ")." CRLF
#define SPACES100                                                             \
	"                                                  "                  \
	"                                                  "

enum { SERVER = PH_FTP_ROLE_SERVER, CLIENT = PH_FTP_ROLE_CLIENT };

struct tcase {
	const char *name;
	int role;
	bool v6;
	bool implicit;
	const char *msgs[MAXMSG]; /* "C:bytes" from the client, "S:" server */
	const char *expect;       /* formatted actions, space separated */
};

/* nat_cases[] run with the host's nat-address 203.0.113.5 and
 * 2001:db8:5::5 (1:1 NAT). */
#define NAT4 "203,0,113,5"
static bool cur_nat;

/* ---------------------------------------------------------------------- */
/* Driver                                                                  */
/* ---------------------------------------------------------------------- */

static void make_cfg(struct ph_ftp_config *cfg, int role, bool v6,
		     bool implicit)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->role = role;
	cfg->implicit_tls = implicit;
	cfg->ttl_ns = TTL;
	cfg->client_port = htons(40000);
	cfg->server_port = htons(implicit ? 990 : 21);
	if (v6) {
		cfg->family = AF_INET6;
		inet_pton(AF_INET6, CLI6, cfg->client_addr);
		inet_pton(AF_INET6, SRV6, cfg->server_addr);
	} else {
		cfg->family = AF_INET;
		cfg->client_addr[10] = cfg->client_addr[11] = 0xff;
		cfg->server_addr[10] = cfg->server_addr[11] = 0xff;
		inet_pton(AF_INET, "198.51.100.7", cfg->client_addr + 12);
		inet_pton(AF_INET, "192.0.2.1", cfg->server_addr + 12);
	}
	if (cur_nat) {
		cfg->nnat = 2;
		cfg->nat_addr[0][10] = cfg->nat_addr[0][11] = 0xff;
		inet_pton(AF_INET, "203.0.113.5", cfg->nat_addr[0] + 12);
		inet_pton(AF_INET6, "2001:db8:5::5", cfg->nat_addr[1]);
	}
}

struct drv {
	struct ph_ftp_session s;
	__u32 base[2]; /* sequence number of each direction's first byte */
	struct ph_ftp_action acts[MAXA];
	__u64 when[MAXA]; /* now of the feed that returned it */
	int n;
};

static struct drv drv_a, drv_b; /* ~10 KiB sessions: keep off the stack */

static void drv_init(struct drv *d, int role, bool v6, bool implicit,
		     __u32 isn_c, __u32 isn_s, bool set_isn)
{
	struct ph_ftp_config cfg;

	make_cfg(&cfg, role, v6, implicit);
	memset(d, 0, sizeof(*d));
	EXPECT(ph_ftp_init(&d->s, &cfg) == 0, "init");
	d->base[1] = isn_c + 1;
	d->base[0] = isn_s + 1;
	if (set_isn) {
		EXPECT(ph_ftp_set_isn(&d->s, 1, isn_c) == 0, "isn");
		EXPECT(ph_ftp_set_isn(&d->s, 0, isn_s) == 0, "isn");
	}
}

/* Feed bytes [rel, rel + len) of direction side. */
static void drv_seg(struct drv *d, int side, __u32 rel, const char *p,
		    size_t len, __u64 now)
{
	struct ph_ftp_action out[PH_FTP_MAX_ACTIONS];
	int r = ph_ftp_feed(&d->s, side, d->base[side] + rel, p, len, now, out,
			    PH_FTP_MAX_ACTIONS);
	int i;

	EXPECT(r >= 0 && r <= PH_FTP_MAX_ACTIONS, "feed returned %d", r);
	for (i = 0; i < r && d->n < MAXA; i++) {
		d->when[d->n] = now;
		d->acts[d->n++] = out[i];
	}
}

static void drv_close(struct drv *d)
{
	struct ph_ftp_action out[4];
	int r = ph_ftp_close(&d->s, out, 4), i;

	EXPECT(r >= 0 && r <= 1, "close returned %d", r);
	for (i = 0; i < r && d->n < MAXA; i++)
		d->acts[d->n++] = out[i];
}

/* The addresses, ports and direction of an OPEN/REVOKE fit the session. */
static void check_key(const struct ph_ftp_session *s,
		      const struct ph_ftp_action *a, __u64 now)
{
	const struct ph_ftp_config *cfg = &s->cfg;
	bool server = cfg->role == PH_FTP_ROLE_SERVER;
	bool passive = a->via == PH_FTP_VIA_PASV || a->via == PH_FTP_VIA_EPSV;
	__u16 lp = ntohs(a->key.lport), rp = ntohs(a->key.rport);

	EXPECT(!memcmp(a->key.local,
		       server ? cfg->server_addr : cfg->client_addr, 16) &&
		       !memcmp(a->key.remote,
			       server ? cfg->client_addr : cfg->server_addr,
			       16),
	       "key addresses are not the control connection's");
	EXPECT(a->key.proto == IPPROTO_TCP, "proto %u", a->key.proto);
	EXPECT((lp == 0) != (rp == 0), "ports %u/%u: one must be 0", lp, rp);
	EXPECT((lp ? lp : rp) >= 1024, "port %u", lp ? lp : rp);
	EXPECT(a->dir == (lp ? PH_DIR_IN : PH_DIR_OUT), "dir %u vs ports", a->dir);
	EXPECT(a->dir == ((server == passive) ? PH_DIR_IN : PH_DIR_OUT),
	       "dir %u for role %d via %d", a->dir, cfg->role, a->via);
	if (a->kind == PH_FTP_OPEN)
		EXPECT(a->deadline_ns == now + cfg->ttl_ns, "deadline");
}

static void fmt_actions(const struct drv *d, char *buf, size_t len)
{
	size_t o = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < d->n && o < len; i++) {
		const struct ph_ftp_action *a = &d->acts[i];
		__u16 port = ntohs(a->key.lport) ? ntohs(a->key.lport)
						  : ntohs(a->key.rport);
		const char *sep = i ? " " : "";

		switch (a->kind) {
		case PH_FTP_OPEN:
			o += snprintf(buf + o, len - o, "%sopen:%s:%s:%u", sep,
				      ph_ftp_via_name(a->via),
				      a->dir == PH_DIR_IN ? "in" : "out", port);
			break;
		case PH_FTP_REVOKE:
			o += snprintf(buf + o, len - o, "%srevoke:%u", sep, port);
			break;
		case PH_FTP_REFUSE:
			o += snprintf(buf + o, len - o, "%srefuse:%s", sep,
				      ph_ftp_refuse_name(a->reason));
			break;
		case PH_FTP_ENCRYPTED:
			o += snprintf(buf + o, len - o, "%sencrypted", sep);
			break;
		default:
			o += snprintf(buf + o, len - o, "%s?%d", sep, a->kind);
		}
	}
}

static bool act_eq(const struct ph_ftp_action *a, const struct ph_ftp_action *b)
{
	return a->kind == b->kind && a->reason == b->reason &&
	       a->via == b->via && a->dir == b->dir &&
	       !memcmp(&a->key, &b->key, sizeof(a->key)) &&
	       a->deadline_ns == b->deadline_ns &&
	       !memcmp(a->announced_addr, b->announced_addr, 16) &&
	       a->announced_port == b->announced_port;
}

static bool same_actions(const struct drv *a, const struct drv *b)
{
	int i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (!act_eq(&a->acts[i], &b->acts[i]))
			return false;
	return true;
}

/* ---------------------------------------------------------------------- */
/* Ways of feeding a script                                                */
/* ---------------------------------------------------------------------- */

enum mode {
	M_WHOLE,   /* one segment per message */
	M_BYTES,   /* one segment per byte */
	M_SPLIT,   /* message `at` cut at `k`, halves in order */
	M_SPLIT_R, /* ... halves reversed (out of order) */
	M_RETX,    /* every message twice, plus a retransmitted prefix */
	M_RANDOM,  /* up to 8 pieces per message, shuffled, retransmissions */
	M_NO_ISN,  /* whole, ISN taken from the first segment */
};

struct way {
	enum mode mode;
	int at;
	size_t k;
	__u32 seed;
	__u32 isn_c, isn_s;
};

static __u32 rnd(__u32 *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void feed_random(struct drv *d, int side, __u32 rel, const char *p,
			size_t len, __u64 now, __u32 *seed)
{
	size_t cut[9];
	int order[8], np, i, j;

	np = 1 + (int)(rnd(seed) % 8);
	if ((size_t)np > len)
		np = (int)len;
	cut[0] = 0;
	cut[np] = len;
	for (i = 1; i < np; i++) /* non-decreasing cut points; empties ok */
		cut[i] = cut[i - 1] + rnd(seed) % (len - cut[i - 1] + 1);
	for (i = 0; i < np; i++)
		order[i] = i;
	for (i = np - 1; i > 0; i--) {
		int t;

		j = (int)(rnd(seed) % (__u32)(i + 1));
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < np; i++) {
		int a = order[i];

		drv_seg(d, side, rel + (__u32)cut[a], p + cut[a],
			cut[a + 1] - cut[a], now);
		if (rnd(seed) % 3 == 0) { /* retransmit a delivered piece */
			int b = order[rnd(seed) % (__u32)(i + 1)];

			drv_seg(d, side, rel + (__u32)cut[b], p + cut[b],
				cut[b + 1] - cut[b], now);
		}
	}
}

static void run_script(struct drv *d, const struct tcase *t,
		       const struct way *w)
{
	static char hist[2][16384];
	__u32 off[2] = { 0, 0 }, seed = w->seed;
	int i;

	drv_init(d, t->role, t->v6, t->implicit, w->isn_c, w->isn_s,
		 w->mode != M_NO_ISN);
	for (i = 0; i < MAXMSG && t->msgs[i]; i++) {
		int side = t->msgs[i][0] == 'C';
		const char *p = t->msgs[i] + 2;
		size_t len = strlen(p), k;
		__u64 now = (__u64)(i + 1) * SEC;
		__u32 rel = off[side];

		switch (w->mode) {
		case M_BYTES:
			for (k = 0; k < len; k++)
				drv_seg(d, side, rel + (__u32)k, p + k, 1, now);
			break;
		case M_SPLIT:
		case M_SPLIT_R:
			if (i == w->at && w->k < len) {
				if (w->mode == M_SPLIT_R)
					drv_seg(d, side, rel + (__u32)w->k,
						p + w->k, len - w->k, now);
				drv_seg(d, side, rel, p, w->k, now);
				if (w->mode == M_SPLIT)
					drv_seg(d, side, rel + (__u32)w->k,
						p + w->k, len - w->k, now);
			} else {
				drv_seg(d, side, rel, p, len, now);
			}
			break;
		case M_RETX: {
			/* old bytes + this message, then all of it again */
			__u32 back = rel < 3 ? rel : 3;

			memcpy(hist[side] + rel, p, len);
			drv_seg(d, side, rel - back, hist[side] + rel - back,
				len + back, now);
			drv_seg(d, side, rel, p, len, now);
			break;
		}
		case M_RANDOM:
			if (len)
				feed_random(d, side, rel, p, len, now, &seed);
			break;
		default:
			drv_seg(d, side, rel, p, len, now);
		}
		off[side] += (__u32)len;
	}
	drv_close(d);
}

/* ---------------------------------------------------------------------- */
/* The table                                                               */
/* ---------------------------------------------------------------------- */

static const struct tcase cases[] = {
	/* --- the four cases --- */
	{ "server passive PASV/227", SERVER, 0, 0,
	  { "C:PASV" CRLF, PASV227 }, "open:PASV:in:5001 revoke:5001" },
	{ "client passive PASV/227", CLIENT, 0, 0,
	  { "C:PASV" CRLF, PASV227 }, "open:PASV:out:5001 revoke:5001" },
	{ "server active PORT", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 CRLF, "S:200 PORT ok" CRLF },
	  "open:PORT:out:5001 revoke:5001" },
	{ "client active PORT", CLIENT, 0, 0,
	  { "C:PORT " C4 "," P5001 CRLF, "S:200 PORT ok" CRLF },
	  "open:PORT:in:5001 revoke:5001" },
	{ "server passive EPSV/229", SERVER, 0, 0,
	  { "C:EPSV" CRLF,
	    "S:229 Entering Extended Passive Mode (|||5001|)" CRLF },
	  "open:EPSV:in:5001 revoke:5001" },
	{ "client passive EPSV/229", CLIENT, 0, 0,
	  { "C:EPSV" CRLF, "S:229 Extended (|||5001|)" CRLF },
	  "open:EPSV:out:5001 revoke:5001" },
	{ "server active EPRT v4", SERVER, 0, 0,
	  { "C:EPRT |1|198.51.100.7|5001|" CRLF, "S:200 ok" CRLF },
	  "open:EPRT:out:5001 revoke:5001" },
	{ "client active EPRT v4", CLIENT, 0, 0,
	  { "C:EPRT |1|198.51.100.7|5001|" CRLF, "S:200 ok" CRLF },
	  "open:EPRT:in:5001 revoke:5001" },

	/* --- forms --- */
	{ "227 without parentheses", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 Entering Passive Mode " S4 "," P5001 CRLF },
	  "open:PASV:in:5001 revoke:5001" },
	{ "227 =h1,...", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 =" S4 "," P5001 CRLF },
	  "open:PASV:in:5001 revoke:5001" },
	{ "lowercase verbs", SERVER, 0, 0,
	  { "C:pasv" CRLF, PASV227, "C:port " C4 ",19,138" CRLF,
	    "S:200 ok" CRLF, "C:eprt |1|198.51.100.7|5003|" CRLF,
	    "S:200 ok" CRLF, "C:epsv" CRLF, "S:229 ok (|||5004|)" CRLF,
	    "C:PaSv" CRLF, "S:227 ok (" S4 ",19,141)" CRLF },
	  "open:PASV:in:5001 revoke:5001 open:PORT:out:5002 revoke:5002 "
	  "open:EPRT:out:5003 revoke:5003 open:EPSV:in:5004 revoke:5004 "
	  "open:PASV:in:5005 revoke:5005" },
	{ "EPRT other delimiters", SERVER, 0, 0,
	  { "C:EPRT !1!198.51.100.7!5001!" CRLF, "S:200 ok" CRLF,
	    "C:EPRT ~1~198.51.100.7~5002~  " CRLF, "S:200 ok" CRLF,
	    "C:EPRT \x7f" "1\x7f" "198.51.100.7\x7f" "5001\x7f" CRLF },
	  "open:EPRT:out:5001 revoke:5001 open:EPRT:out:5002 revoke:5002 "
	  "refuse:bad_syntax" },
	{ "EPRT digit delimiter", SERVER, 0, 0, /* RFC 2428: 33..126 */
	  { "C:EPRT 414198.51.100.7450014" CRLF,
	    "C:EPRT 212198.51.100.725001X" CRLF },
	  "open:EPRT:out:5001 revoke:5001 refuse:bad_syntax" },
	{ "229 other delimiter", SERVER, 0, 0,
	  { "C:EPSV" CRLF, "S:229 ok (!!!5001!)" CRLF },
	  "open:EPSV:in:5001 revoke:5001" },
	{ "EPSV 1 on IPv4", SERVER, 0, 0,
	  { "C:EPSV 1" CRLF, "S:229 ok (|||5001|)" CRLF },
	  "open:EPSV:in:5001 revoke:5001" },
	{ "EPSV 2 on IPv4", SERVER, 0, 0,
	  { "C:EPSV 2" CRLF, "S:229 ok (|||5001|)" CRLF },
	  "refuse:wrong_family" },
	{ "EPSV ALL is no request", SERVER, 0, 0,
	  { "C:EPSV ALL" CRLF, "S:229 ok (|||5001|)" CRLF },
	  "refuse:unsolicited_reply" },
	{ "EPSV ALL then EPSV", SERVER, 0, 0,
	  { "C:EPSV all" CRLF, "S:200 ok" CRLF, "C:EPSV" CRLF,
	    "S:229 ok (|||5001|)" CRLF },
	  "open:EPSV:in:5001 revoke:5001" },
	{ "bare LF ends lines", SERVER, 0, 0,
	  { "C:PASV\n", "S:227 ok (" S4 "," P5001 ")\n" },
	  "open:PASV:in:5001 revoke:5001" },
	{ "lone CR does not end a line", SERVER, 0, 0,
	  { "C:NOOP\rPASV" CRLF, PASV227 }, "refuse:unsolicited_reply" },
	{ "line without CRLF is not parsed", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (" S4 "," P5001 ")" }, "" },
	{ "line completed later", SERVER, 0, 0,
	  { "C:PA", "C:SV", "C:" CRLF, "S:227 ok (" S4 "," P5001 ")",
	    "S:\r", "S:\n" },
	  "open:PASV:in:5001 revoke:5001" },
	{ "trailing spaces allowed", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 "   " CRLF, "C:PASV  " CRLF, PASV227 },
	  "open:PORT:out:5001 revoke:5001 open:PASV:in:5001 revoke:5001" },
	{ "1xx is not the final reply", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:150 wait" CRLF, PASV227 },
	  "open:PASV:in:5001 revoke:5001" },
	{ "port 1024 allowed", SERVER, 0, 0,
	  { "C:PORT " C4 ",4,0" CRLF }, "open:PORT:out:1024 revoke:1024" },
	{ "port 65535 allowed", SERVER, 0, 0,
	  { "C:EPRT |1|198.51.100.7|65535|" CRLF },
	  "open:EPRT:out:65535 revoke:65535" },

	/* --- invariant 1: no bounce; no third party --- */
	{ "PORT bounce", SERVER, 0, 0,
	  { "C:PORT 10,0,0,99," P5001 CRLF }, "refuse:bounce" },
	{ "PORT bounce to server", CLIENT, 0, 0,
	  { "C:PORT " S4 "," P5001 CRLF }, "refuse:bounce" },
	{ "EPRT bounce", SERVER, 0, 0,
	  { "C:EPRT |1|10.0.0.99|5001|" CRLF }, "refuse:bounce" },
	{ "227 third party", CLIENT, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (10,0,0,5," P5001 ")" CRLF },
	  "refuse:third_party" },
	{ "227 with the client's address", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (" C4 "," P5001 ")" CRLF },
	  "refuse:third_party" },
	{ "nat: server 227 with the nat-address, not configured", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (" NAT4 "," P5001 ")" CRLF },
	  "refuse:third_party" },
	{ "227 0.0.0.0", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (0,0,0,0," P5001 ")" CRLF },
	  "refuse:third_party" },

	/* --- invariant 2: low ports --- */
	{ "PORT low port", SERVER, 0, 0,
	  { "C:PORT " C4 ",0,21" CRLF, "C:PORT " C4 ",3,255" CRLF },
	  "refuse:low_port refuse:low_port" },
	{ "227 low port", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (" S4 ",0,22)" CRLF },
	  "refuse:low_port" },
	{ "229 low port", SERVER, 0, 0,
	  { "C:EPSV" CRLF, "S:229 ok (|||80|)" CRLF }, "refuse:low_port" },
	{ "EPRT low port", SERVER, 0, 0,
	  { "C:EPRT |1|198.51.100.7|1023|" CRLF }, "refuse:low_port" },

	/* --- invariant 3: who says what, and when --- */
	{ "227 without PASV", SERVER, 0, 0,
	  { PASV227 }, "refuse:unsolicited_reply" },
	{ "227 after another command's reply", SERVER, 0, 0,
	  { "C:NOOP" CRLF, "S:200 ok" CRLF, PASV227 },
	  "refuse:unsolicited_reply" },
	{ "227 after PASV was answered", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:500 no" CRLF, PASV227 },
	  "refuse:unsolicited_reply" },
	{ "second 227", SERVER, 0, 0,
	  { "C:PASV" CRLF, PASV227, "S:227 ok (" S4 ",19,200)" CRLF },
	  "open:PASV:in:5001 refuse:unsolicited_reply revoke:5001" },
	{ "227 answering another command", SERVER, 0, 0,
	  { "C:PASV" CRLF, "C:NOOP" CRLF, PASV227 },
	  "refuse:unsolicited_reply" },
	{ "229 answering PASV", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:229 ok (|||5001|)" CRLF },
	  "refuse:unsolicited_reply" },
	{ "227 answering EPSV", SERVER, 0, 0,
	  { "C:EPSV" CRLF, PASV227 }, "refuse:unsolicited_reply" },
	{ "reply from the client side", SERVER, 0, 0,
	  { "C:PASV" CRLF, "C:227 ok (" S4 "," P5001 ")" CRLF }, "" },
	{ "command from the server side", SERVER, 0, 0,
	  { "S:PORT " C4 "," P5001 CRLF, "S:EPRT |1|198.51.100.7|5001|" CRLF },
	  "" },

	/* --- invariant 4: line starts only; multi-line replies --- */
	{ "227 inside a multi-line reply", SERVER, 0, 0,
	  { "C:PASV" CRLF,
	    "S:230-Hello" CRLF "227 Entering Passive Mode (" S4 "," P5001 ")"
	    CRLF "230 done" CRLF },
	  "" },
	{ "multi-line 227", SERVER, 0, 0,
	  { "C:PASV" CRLF,
	    "S:227-Entering Passive Mode (" S4 "," P5001 ")" CRLF
	    " more" CRLF "227 (" S4 "," P5001 ")" CRLF },
	  "refuse:multiline_reply" },
	{ "multi-line 227 with inner 227-", SERVER, 0, 0,
	  { "C:PASV" CRLF,
	    "S:227-a" CRLF "227-(" S4 "," P5001 ")" CRLF "227 end" CRLF },
	  "refuse:multiline_reply" },
	{ "echoed 227 in an error", SERVER, 0, 0,
	  { "C:PASV" CRLF,
	    "S:500 '227 Entering Passive Mode (" S4 "," P5001 ")' unknown"
	    CRLF },
	  "" },
	{ "echoed 227 after error", SERVER, 0, 0,
	  { "C:XPASV" CRLF, "S:500 Unknown command" CRLF, PASV227 },
	  "refuse:unsolicited_reply" },
	{ "PORT not at line start", SERVER, 0, 0,
	  { "C: PORT " C4 "," P5001 CRLF, "C:NOOP PORT " C4 "," P5001 CRLF,
	    "C:XPORT " C4 "," P5001 CRLF, "C:PORTX " C4 "," P5001 CRLF },
	  "" },
	{ "227 not at line start", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S: 227 ok (" S4 "," P5001 ")" CRLF,
	    "S:2270 ok (" S4 "," P5001 ")" CRLF },
	  "" },
	{ "PASV with argument is not PASV", SERVER, 0, 0,
	  { "C:PASV x" CRLF, PASV227 }, "refuse:unsolicited_reply" },

	/* --- invariant 6: one pinhole, replaced, revoked --- */
	{ "second PASV replaces", SERVER, 0, 0,
	  { "C:PASV" CRLF, PASV227, "C:PASV" CRLF,
	    "S:227 ok (" S4 ",19,138)" CRLF },
	  "open:PASV:in:5001 revoke:5001 open:PASV:in:5002 revoke:5002" },
	{ "PASV replaces PORT", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 CRLF, "S:200 ok" CRLF, "C:PASV" CRLF,
	    "S:227 ok (" S4 ",19,138)" CRLF },
	  "open:PORT:out:5001 revoke:5001 open:PASV:in:5002 revoke:5002" },
	{ "refused PORT revokes the old one", SERVER, 0, 0,
	  { "C:PASV" CRLF, PASV227, "C:PORT " C4 ",0,20" CRLF },
	  "open:PASV:in:5001 revoke:5001 refuse:low_port" },
	{ "PORT answered 500 revokes", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 CRLF, "S:500 Illegal PORT" CRLF },
	  "open:PORT:out:5001 revoke:5001" },
	{ "EPRT answered 421 revokes", SERVER, 0, 0,
	  { "C:EPRT |1|198.51.100.7|5001|" CRLF, "S:421 bye" CRLF },
	  "open:EPRT:out:5001 revoke:5001" },
	{ "multi-line 5xx to PORT revokes", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 CRLF, "S:501-no" CRLF "501 no" CRLF },
	  "open:PORT:out:5001 revoke:5001" },
	{ "5xx to a later command keeps it", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 CRLF, "S:200 ok" CRLF, "C:XYZ" CRLF,
	    "S:500 no" CRLF },
	  "open:PORT:out:5001 revoke:5001" },
	{ "PASV answered 5xx keeps the old one", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 CRLF, "S:200 ok" CRLF, "C:PASV" CRLF,
	    "S:502 no" CRLF },
	  "open:PORT:out:5001 revoke:5001" },
	{ "refused 227 revokes the old one", SERVER, 0, 0,
	  { "C:PASV" CRLF, PASV227, "C:PASV" CRLF,
	    "S:227 ok (10,0,0,1," P5001 ")" CRLF },
	  "open:PASV:in:5001 revoke:5001 refuse:third_party" },

	/* --- invariant 7: TLS --- */
	{ "AUTH TLS + 234 stops parsing", SERVER, 0, 0,
	  { "C:PASV" CRLF, PASV227, "C:AUTH TLS" CRLF,
	    "S:234 AUTH TLS OK." CRLF, "C:PORT " C4 ",19,140" CRLF,
	    "S:200 ok" CRLF, "C:PASV" CRLF, "S:227 ok (" S4 ",19,141)" CRLF },
	  "open:PASV:in:5001 revoke:5001 encrypted" },
	{ "AUTH SSL", SERVER, 0, 0,
	  { "C:AUTH SSL" CRLF, "S:234 ok" CRLF "227 ok (" S4 "," P5001 ")"
	    CRLF },
	  "encrypted" },
	{ "AUTH TLS-C", SERVER, 0, 0,
	  { "C:AUTH TLS-C" CRLF, "S:234 ok" CRLF, "C:PORT " C4 "," P5001 CRLF },
	  "encrypted" },
	{ "auth tls-p lowercase", CLIENT, 0, 0,
	  { "C:auth tls-p" CRLF, "S:234 ok" CRLF, "C:PASV" CRLF, PASV227 },
	  "encrypted" },
	{ "AUTH refused: parsing goes on", SERVER, 0, 0,
	  { "C:AUTH TLS" CRLF, "S:504 no" CRLF, "C:PASV" CRLF, PASV227 },
	  "open:PASV:in:5001 revoke:5001" },
	{ "nothing parsed while AUTH awaits", SERVER, 0, 0,
	  { "C:AUTH TLS" CRLF "PORT " C4 "," P5001 CRLF, "S:500 no" CRLF,
	    "C:PORT " C4 ",19,138" CRLF },
	  "open:PORT:out:5002 revoke:5002" },
	{ "pipelined TLS after AUTH", SERVER, 0, 0,
	  { "C:AUTH TLS" CRLF "\x16\x03\x01\nPORT " C4 "," P5001 CRLF,
	    "S:234 ok" CRLF },
	  "encrypted" },
	{ "implicit FTPS", SERVER, 0, 1,
	  { "C:PASV" CRLF, PASV227, "C:PORT " C4 "," P5001 CRLF }, "" },
	{ "any 234 is taken as TLS", SERVER, 0, 0,
	  { "C:PASV" CRLF, PASV227, "S:234 odd" CRLF, "C:PASV" CRLF,
	    PASV227 },
	  "open:PASV:in:5001 revoke:5001 encrypted" },

	/* --- invariant 8: numbers --- */
	{ "octet 256", SERVER, 0, 0,
	  { "C:PORT 256,51,100,7," P5001 CRLF }, "refuse:bad_number" },
	{ "port byte 256", SERVER, 0, 0,
	  { "C:PORT " C4 ",19,256" CRLF }, "refuse:bad_number" },
	{ "long digit string", SERVER, 0, 0,
	  { "C:PORT " C4 ",99999999999,1" CRLF,
	    "C:PORT 0000198,51,100,7," P5001 CRLF },
	  "refuse:bad_number refuse:bad_number" },
	{ "port 0", SERVER, 0, 0,
	  { "C:PORT " C4 ",0,0" CRLF, "C:EPRT |1|198.51.100.7|0|" CRLF },
	  "refuse:bad_number refuse:bad_number" },
	{ "signs", SERVER, 0, 0,
	  { "C:PORT +198,51,100,7," P5001 CRLF,
	    "C:PORT 198,51,100,7,-19,137" CRLF,
	    "C:EPRT |1|198.51.100.7|+5001|" CRLF, "C:PASV" CRLF,
	    "S:227 ok (-192,0,2,1," P5001 ")" CRLF },
	  "refuse:bad_number refuse:bad_number refuse:bad_number "
	  "refuse:bad_number" },
	{ "spaces inside numbers", SERVER, 0, 0,
	  { "C:PORT 198, 51,100,7," P5001 CRLF,
	    "C:PORT  " C4 "," P5001 CRLF, "C:PORT " C4 ",19 ,137" CRLF,
	    "C:EPRT |1| 198.51.100.7|5001|" CRLF, "C:PASV" CRLF,
	    "S:227 ok (192, 0,2,1," P5001 ")" CRLF },
	  "refuse:bad_number refuse:bad_number refuse:bad_number "
	  "refuse:bad_number refuse:bad_number" },
	{ "too many or too few numbers", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 ",1" CRLF, "C:PORT " C4 ",19" CRLF,
	    "C:PORT" CRLF, "C:PORT " C4 "," P5001 "x" CRLF },
	  "refuse:bad_number refuse:bad_number refuse:bad_syntax "
	  "refuse:bad_number" },
	{ "EPRT port overflow", SERVER, 0, 0,
	  { "C:EPRT |1|198.51.100.7|65536|" CRLF,
	    "C:EPRT |1|198.51.100.7|99999999999|" CRLF },
	  "refuse:bad_number refuse:bad_number" },
	{ "EPRT bad address", SERVER, 0, 0,
	  { "C:EPRT |1|198.51.100|5001|" CRLF,
	    "C:EPRT |1|198.51.100.7.1|5001|" CRLF,
	    "C:EPRT |1|198.51.100.256|5001|" CRLF },
	  "refuse:bad_number refuse:bad_number refuse:bad_number" },
	{ "EPRT bad structure", SERVER, 0, 0,
	  { "C:EPRT |3|198.51.100.7|5001|" CRLF,
	    "C:EPRT |1|198.51.100.7|5001" CRLF,
	    "C:EPRT |1|198.51.100.7|5001|x" CRLF,
	    "C:EPRT  |1|198.51.100.7|5001|" CRLF, "C:EPRT" CRLF,
	    "C:EPRT |12|198.51.100.7|5001|" CRLF },
	  "refuse:bad_syntax refuse:bad_syntax refuse:bad_syntax "
	  "refuse:bad_syntax refuse:bad_syntax refuse:bad_syntax" },
	{ "229 overflow and zero", SERVER, 0, 0,
	  { "C:EPSV" CRLF, "S:229 ok (|||99999999999|)" CRLF, "C:EPSV" CRLF,
	    "S:229 ok (|||0|)" CRLF, "C:EPSV" CRLF,
	    "S:229 ok (|||-5001|)" CRLF },
	  "refuse:bad_number refuse:bad_number refuse:bad_number" },
	{ "229 bad structure", SERVER, 0, 0,
	  { "C:EPSV" CRLF, "S:229 ok (||5001|)" CRLF, "C:EPSV" CRLF,
	    "S:229 ok (|||5001)" CRLF, "C:EPSV" CRLF, "S:229 ok 5001" CRLF,
	    "C:EPSV" CRLF, "S:229 ok (|1|5001|)" CRLF },
	  "refuse:bad_syntax refuse:bad_syntax refuse:bad_syntax "
	  "refuse:bad_syntax" },
	{ "227 overflow", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227" CRLF, "C:EPSV" CRLF, "S:229" CRLF,
	    "C:PASV" CRLF, "S:227 ok (" S4 ",19,99999999999)" CRLF,
	    "C:PASV" CRLF, "S:227 ok (" S4 ",19)" CRLF, "C:PASV" CRLF,
	    "S:227 Entering Passive Mode" CRLF },
	  "refuse:bad_number refuse:bad_syntax refuse:bad_number "
	  "refuse:bad_number refuse:bad_number" },
	{ "family: PORT on IPv6", SERVER, 1, 0,
	  { "C:PORT " C4 "," P5001 CRLF }, "refuse:wrong_family" },
	{ "family: EPRT |1| on IPv6", SERVER, 1, 0,
	  { "C:EPRT |1|198.51.100.7|5001|" CRLF }, "refuse:wrong_family" },
	{ "family: EPRT |2| on IPv4", SERVER, 0, 0,
	  { "C:EPRT |2|" CLI6 "|5001|" CRLF }, "refuse:wrong_family" },
	{ "family: 227 on IPv6", CLIENT, 1, 0,
	  { "C:PASV" CRLF, PASV227 }, "refuse:wrong_family" },
	{ "family: EPSV 1 on IPv6", SERVER, 1, 0,
	  { "C:EPSV 1" CRLF, "S:229 ok (|||5001|)" CRLF },
	  "refuse:wrong_family" },

	/* --- IPv6 --- */
	{ "IPv6 EPRT server", SERVER, 1, 0,
	  { "C:EPRT |2|" CLI6 "|5001|" CRLF, "S:200 ok" CRLF },
	  "open:EPRT:out:5001 revoke:5001" },
	{ "IPv6 EPRT client", CLIENT, 1, 0,
	  { "C:EPRT |2|2001:DB8:0::7|5001|" CRLF },
	  "open:EPRT:in:5001 revoke:5001" },
	{ "IPv6 EPRT bounce", SERVER, 1, 0,
	  { "C:EPRT |2|2001:db8::99|5001|" CRLF }, "refuse:bounce" },
	{ "IPv6 EPRT bad text", SERVER, 1, 0,
	  { "C:EPRT |2|2001:db8::zz|5001|" CRLF, "C:EPRT |2||5001|" CRLF,
	    "C:EPRT |2|2001:db8::7%eth0|5001|" CRLF },
	  "refuse:bad_number refuse:bad_number refuse:bad_number" },
	{ "IPv6 EPSV server", SERVER, 1, 0,
	  { "C:EPSV" CRLF, "S:229 ok (|||5001|)" CRLF },
	  "open:EPSV:in:5001 revoke:5001" },
	{ "IPv6 EPSV 2 client", CLIENT, 1, 0,
	  { "C:EPSV 2" CRLF, "S:229 ok (|||5001|)" CRLF },
	  "open:EPSV:out:5001 revoke:5001" },

	/* --- invariant 9 / long lines --- */
	{ "long PORT line", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 SPACES100 SPACES100 SPACES100 SPACES100
	    SPACES100 SPACES100 CRLF },
	  "refuse:line_too_long" },
	{ "long other line is silent", SERVER, 0, 0,
	  { "C:NOOP " SPACES100 SPACES100 SPACES100 SPACES100 SPACES100
	    SPACES100 CRLF, "C:PASV" CRLF, PASV227 },
	  "open:PASV:in:5001 revoke:5001" },
	{ "long 227", SERVER, 0, 0,
	  { "C:PASV" CRLF,
	    "S:227 ok (" S4 "," P5001 ")" SPACES100 SPACES100 SPACES100
	    SPACES100 SPACES100 SPACES100 CRLF },
	  "refuse:line_too_long" },
	{ "long reply still answers", SERVER, 0, 0,
	  { "C:PORT " C4 "," P5001 CRLF,
	    "S:500 " SPACES100 SPACES100 SPACES100 SPACES100 SPACES100
	    SPACES100 CRLF },
	  "open:PORT:out:5001 revoke:5001" },
};

/* ---------------------------------------------------------------------- */
/* Table runner                                                            */
/* ---------------------------------------------------------------------- */

static void check_all_keys(const struct drv *d)
{
	int i;

	for (i = 0; i < d->n; i++)
		if (d->acts[i].kind == PH_FTP_OPEN ||
		    d->acts[i].kind == PH_FTP_REVOKE)
			check_key(&d->s, &d->acts[i],
				  d->acts[i].kind == PH_FTP_OPEN ? d->when[i]
								  : 0);
}

static const char *mode_name(enum mode m)
{
	static const char *const n[] = { "whole", "bytes", "split",
					 "split-reversed", "retransmit",
					 "random", "no-isn" };
	return n[m];
}

/* Same actions as the reference run in drv_a? */
static void compare_way(const struct tcase *t, const struct way *w)
{
	run_script(&drv_b, t, w);
	if (!same_actions(&drv_a, &drv_b)) {
		char x[2048], y[2048];

		fmt_actions(&drv_a, x, sizeof(x));
		fmt_actions(&drv_b, y, sizeof(y));
		EXPECT(0, "%s (msg %d cut %zu seed %u isn %08x): [%s] vs [%s]",
		       mode_name(w->mode), w->at, w->k, w->seed, w->isn_c, x,
		       y);
	} else {
		checks++;
	}
}

static void run_case(const struct tcase *t)
{
	static const __u32 isns[][2] = {
		{ 1000, 70000 },
		{ 0xfffffff0u, 0xffffffe0u }, /* wraps inside the script */
		{ 0x7ffffff8u, 0x80000003u },
	};
	struct way w;
	char got[2048];
	int i, ni, m;

	cur_case = t->name;
	memset(&w, 0, sizeof(w));
	w.isn_c = isns[0][0];
	w.isn_s = isns[0][1];
	run_script(&drv_a, t, &w);
	fmt_actions(&drv_a, got, sizeof(got));
	EXPECT(!strcmp(got, t->expect), "got [%s], want [%s]", got, t->expect);
	check_all_keys(&drv_a);
	EXPECT(drv_a.s.stats.actions_lost == 0, "actions lost");

	for (ni = 0; ni < 3; ni++) {
		w.isn_c = isns[ni][0];
		w.isn_s = isns[ni][1];
		for (m = M_WHOLE; m <= M_NO_ISN; m++) {
			w.mode = m;
			if (m == M_SPLIT || m == M_SPLIT_R) {
				for (i = 0; i < MAXMSG && t->msgs[i]; i++) {
					size_t len = strlen(t->msgs[i] + 2);

					w.at = i;
					for (w.k = 1; w.k < len; w.k++)
						compare_way(t, &w);
				}
				w.at = 0;
				w.k = 0;
			} else if (m == M_RANDOM) {
				for (w.seed = 1; w.seed <= 40; w.seed++)
					compare_way(t, &w);
				w.seed = 0;
			} else {
				compare_way(t, &w);
			}
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Reassembly and other special cases                                      */
/* ---------------------------------------------------------------------- */

static int feed(struct drv *d, int side, __u32 rel, const char *p)
{
	int n0 = d->n;

	drv_seg(d, side, rel, p, strlen(p), SEC);
	return d->n - n0;
}

static void test_retransmit_other_bytes(void)
{
	char got[512];
	struct drv *d = &drv_a;

	cur_case = "retransmission with other bytes";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, 0, "PASV\r\n");
	feed(d, 0, 0, "227 ok (" S4 "," P5001 ")\r\n");
	/* same sequence numbers, other port: ignored */
	feed(d, 0, 0, "227 ok (" S4 ",19,200)\r\n");
	/* overlapping: the old part differs and is ignored; the new part
	 * is a line of its own ("98,51,...": not a command) */
	feed(d, 1, 0, "PORT " C4 ",19,201\r\n");
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PASV:in:5001"), "got [%s]", got);
	EXPECT(d->s.stats.lines == 3, "lines %llu",
	       (unsigned long long)d->s.stats.lines);
	EXPECT(d->s.stats.dup_bytes > 0, "dup bytes counted");

	/* out of order: an in-order segment wins over the held copy of the
	 * same bytes (Linux queues it whole) */
	cur_case = "in-order bytes win over held ones";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, 4, "\r\n");                   /* held, then superseded */
	feed(d, 1, 0, "PASVXXXX");                /* no LF: no line yet */
	feed(d, 0, 0, "227 ok (" S4 "," P5001 ")\r\n");
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "refuse:unsolicited_reply"), "got [%s]", got);
}

/* PORT lines of the same length for ports 5001 (A) and 5098 (B). */
#define PORT_A "PORT " C4 ",19,137\r\n"
#define PORT_B "PORT " C4 ",19,234\r\n"

/* Linux's keep-rule for overlapping copies (ftp.c, "Stream reassembly"),
 * each case as measured against a Linux server (tests/e2e/
 * test_tcp_reasm.sh for a, b). */
static void test_keep_rule(void)
{
	char got[512];
	struct drv *d = &drv_a;
	size_t k = strlen("PORT " C4 ",19,");

	_Static_assert(sizeof(PORT_A) == sizeof(PORT_B), "same length");

	cur_case = "tail of PORT B held, then PORT A whole in order";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, (__u32)k, PORT_B + k);
	feed(d, 1, 0, PORT_A);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5001"), "got [%s]", got);

	cur_case = "two held copies at one seq, the later longer, replaces";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, (__u32)k, PORT_A + k);            /* 137\r\n */
	feed(d, 1, (__u32)k, "234\r\nNOOP\r\n");     /* longer */
	feed(d, 1, 0, "PORT " C4 ",19,");
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5098"), "got [%s]", got);
	EXPECT(d->s.stats.ooo_replaced > 0 && !d->s.stats.contested,
	       "replaced %llu contested %llu",
	       (unsigned long long)d->s.stats.ooo_replaced,
	       (unsigned long long)d->s.stats.contested);

	cur_case = "a later copy inside a held one is dropped";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, (__u32)k, "137\r\nNOOP\r\n");
	feed(d, 1, (__u32)k, "234\r\n");            /* shorter: dropped */
	feed(d, 1, 0, "PORT " C4 ",19,");
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5001"), "got [%s]", got);

	cur_case = "a partial overlap keeps the earlier held bytes";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, (__u32)k, "13");
	feed(d, 1, (__u32)k + 1, "27\r\n");         /* its 2 at k + 1 loses */
	feed(d, 1, 0, "PORT " C4 ",19,");
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5001"), "got [%s]", got);

	cur_case = "a held segment covering later held ones replaces them";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, (__u32)k + 1, "37");
	feed(d, 1, (__u32)k, "234\r\n");            /* starts earlier */
	feed(d, 1, 0, "PORT " C4 ",19,");
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5098"), "got [%s]", got);

	cur_case = "consumed bytes are final";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, 0, PORT_A);
	feed(d, 1, 0, PORT_B);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5001"), "got [%s]", got);

	/* Linux may have merged the second held segment into the first (it
	 * continues it): then the longer copy does not replace it. Which
	 * copy the endpoint kept is unknown: nothing is parsed from it. */
	cur_case = "a replacement at a joint is contested";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, (__u32)k - 3, "19,");
	feed(d, 1, (__u32)k, "137\r\n");            /* joined to "19," */
	feed(d, 1, (__u32)k, "234\r\nNOOP\r\n");
	feed(d, 1, 0, "PORT " C4 ",");
	feed(d, 1, (__u32)strlen(PORT_A) + 6, PORT_A);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5001"), "got [%s]", got);
	EXPECT(d->s.stats.contested > 0, "contested %llu",
	       (unsigned long long)d->s.stats.contested);
}

/* The local stack acknowledged bytes the tracker never saw (a segment in
 * IP fragments): resynchronise at the next line instead of waiting. */
static void test_ack_gap(void)
{
	char got[512];
	struct drv *d = &drv_a;
	__u32 n = (__u32)strlen(PORT_A), m = (__u32)strlen("LIST\r\n");

	cur_case = "ACK over a hole: the next line is dropped, the one after parsed";
	drv_init(d, SERVER, 0, 0, 100, 200, true);
	feed(d, 1, 0, "USER a\r\n");
	feed(d, 0, 0, "331 ok\r\n");
	/* PORT A in fragments: never fed; then LIST, held */
	feed(d, 1, 8 + n, "LIST\r\n");
	EXPECT(!ph_ftp_ack(&d->s, 1, d->base[1] + 8 - 2), "old ACK: no gap");
	EXPECT(ph_ftp_ack(&d->s, 1, d->base[1] + 8 + n), "ACK: gap");
	EXPECT(!ph_ftp_ack(&d->s, 1, d->base[1] + 8 + n), "same ACK again");
	feed(d, 1, 8 + n, "LIST\r\n");               /* now the next line */
	feed(d, 0, 8, "150 ok\r\n226 ok\r\n");
	feed(d, 1, 8 + n + m, PORT_B);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5098"), "got [%s]", got);
	EXPECT(d->s.stats.ack_gaps == 1 && d->s.stats.lines_discarded == 1,
	       "ack_gaps %llu discarded %llu",
	       (unsigned long long)d->s.stats.ack_gaps,
	       (unsigned long long)d->s.stats.lines_discarded);

	cur_case = "ACK without a session's first byte known: ignored";
	drv_init(d, SERVER, 0, 0, 100, 200, false);
	EXPECT(!ph_ftp_ack(&d->s, 1, 12345), "pickup mode, nothing fed");
}

static void test_out_of_order(void)
{
	char got[512];
	struct drv *d = &drv_a;

	/* 8 held segments fit, delivered in reverse; the sequence numbers
	 * wrap in the middle of the line */
	cur_case = "out-of-order delivery, 8 held, wraparound";
	drv_init(d, SERVER, 0, 0, 0xfffffff0u, 7, true);
	{
		static const char c2[] = "PORT " C4 "," P5001 "\r\n";
		size_t cut = 3, k;

		for (k = 8; k >= 1; k--) /* pieces 1..8 of 3 bytes, reversed */
			drv_seg(d, 1, (__u32)(k * cut), c2 + k * cut,
				k == 8 ? strlen(c2) - 8 * cut : cut, SEC);
		drv_seg(d, 1, 0, c2, cut, SEC);
		fmt_actions(d, got, sizeof(got));
		EXPECT(!strcmp(got, "open:PORT:out:5001"), "got [%s]", got);
		EXPECT(d->s.stats.gaps == 0, "no gap expected");
	}
}

static void test_window_overflow(void)
{
	char got[512], big[PH_FTP_OOO_BYTES + 64];
	struct drv *d = &drv_a;
	int i;

	/* A hole that never fills while a ninth segment arrives: the hole is
	 * lost, the partial line after it dropped, then parsing resumes. */
	cur_case = "overflow by segment count";
	drv_init(d, SERVER, 0, 0, 0, 0, true);
	feed(d, 1, 0, "NOOP\r\n");
	/* bytes 6..9 ("PORT") are lost; the rest arrives in 9 pieces */
	for (i = 0; i < 9; i++) {
		static const char rest[] = " " C4 "," P5001 "\r\nPASV\r\n";
		size_t len = strlen(rest), a = len * (size_t)i / 9,
		       b = len * (size_t)(i + 1) / 9;

		drv_seg(d, 1, 10 + (__u32)a, rest + a, b - a, SEC);
	}
	feed(d, 0, 0, PASV227 + 2);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PASV:in:5001"), "got [%s]", got);
	EXPECT(d->s.stats.gaps == 1 && d->s.stats.resyncs == 1,
	       "gaps %llu resyncs %llu", (unsigned long long)d->s.stats.gaps,
	       (unsigned long long)d->s.stats.resyncs);
	EXPECT(d->s.stats.lines_discarded == 1, "discarded %llu",
	       (unsigned long long)d->s.stats.lines_discarded);

	cur_case = "overflow by distance";
	drv_init(d, SERVER, 0, 0, 0, 0, true);
	feed(d, 1, 0, "PASV\r\nPO"); /* a line in progress */
	memset(big, 'x', sizeof(big));
	memcpy(big + sizeof(big) - 8, "\r\nPASV\r\n", 8);
	drv_seg(d, 1, 100, big, sizeof(big), SEC); /* beyond the window */
	feed(d, 0, 0, PASV227 + 2);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PASV:in:5001"), "got [%s]", got);
	EXPECT(d->s.stats.resyncs == 1, "resyncs %llu",
	       (unsigned long long)d->s.stats.resyncs);

	/* A client gap: the reply may answer a lost command: fail closed. */
	cur_case = "client gap forgets PASV";
	drv_init(d, SERVER, 0, 0, 0, 0, true);
	feed(d, 1, 0, "PASV\r\n");
	memset(big, 'x', sizeof(big));
	big[0] = '\n';
	drv_seg(d, 1, 10, big, sizeof(big), SEC);
	feed(d, 0, 0, PASV227 + 2);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "refuse:unsolicited_reply"), "got [%s]", got);

	cur_case = "server gap drops the awaited reply";
	drv_init(d, SERVER, 0, 0, 0, 0, true);
	feed(d, 1, 0, "PASV\r\n");
	memcpy(big, "\n227 ok (" S4 "," P5001 ")\r\n", 28);
	drv_seg(d, 0, 50, big, 28, SEC); /* held */
	drv_seg(d, 0, 50 + PH_FTP_OOO_BYTES, "x", 1, SEC); /* overflow */
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "refuse:unsolicited_reply"), "got [%s]", got);
}

static void test_line_limits(void)
{
	char line[PH_FTP_LINE_MAX + 8], got[256];
	struct drv *d = &drv_a;
	size_t base;

	cur_case = "512-byte line parsed, 513 not";
	drv_init(d, SERVER, 0, 0, 0, 0, true);
	base = (size_t)snprintf(line, sizeof(line), "PORT " C4 "," P5001);
	memset(line + base, ' ', PH_FTP_LINE_MAX - base);
	memcpy(line + PH_FTP_LINE_MAX, "\r\n", 3);
	feed(d, 1, 0, line);
	line[base - 1] = '8'; /* port 5002 */
	memcpy(line + PH_FTP_LINE_MAX, " \r\n", 4);
	feed(d, 1, PH_FTP_LINE_MAX + 2, line);
	line[base - 1] = '9';
	memcpy(line + PH_FTP_LINE_MAX, " \n", 3); /* bare LF, 513 bytes */
	feed(d, 1, 2 * PH_FTP_LINE_MAX + 5, line);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, "open:PORT:out:5001 revoke:5001 "
			    "refuse:line_too_long refuse:line_too_long"),
	       "got [%s]", got);
	EXPECT(d->s.stats.lines == 3 && d->s.stats.lines_discarded == 2,
	       "lines %llu discarded %llu",
	       (unsigned long long)d->s.stats.lines,
	       (unsigned long long)d->s.stats.lines_discarded);
}

static void test_flood(void)
{
	char buf[4096], want[2048], got[2048];
	struct drv *d = &drv_a;
	size_t o = 0, w = 0;
	int i, n;

	cur_case = "PORT flood";
	drv_init(d, SERVER, 0, 0, 0, 0, true);
	for (i = 0; i < 30; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o,
				      "PORT " C4 ",20,%d\r\n", i);
	n = feed(d, 1, 0, buf);
	EXPECT(n <= PH_FTP_MAX_ACTIONS, "%d actions", n);
	for (i = 0; i < PH_FTP_BURST_MAX; i++) {
		if (i)
			w += (size_t)snprintf(want + w, sizeof(want) - w,
					      "revoke:%d ", 5120 + i - 1);
		w += (size_t)snprintf(want + w, sizeof(want) - w,
				      "open:PORT:out:%d ", 5120 + i);
	}
	snprintf(want + w, sizeof(want) - w, "revoke:%d refuse:flood",
		 5120 + PH_FTP_BURST_MAX - 1);
	fmt_actions(d, got, sizeof(got));
	EXPECT(!strcmp(got, want), "got [%s]\nwant [%s]", got, want);
	EXPECT(d->s.stats.refused[PH_FTP_REFUSE_FLOOD] == 30 - PH_FTP_BURST_MAX,
	       "flood count %llu",
	       (unsigned long long)d->s.stats.refused[PH_FTP_REFUSE_FLOOD]);
	/* the server speaks: the client may send data-port lines again */
	feed(d, 0, 0, "200 ok\r\n");
	n = feed(d, 1, (__u32)o, "PORT " C4 ",30,1\r\n");
	EXPECT(n == 1 && d->acts[d->n - 1].kind == PH_FTP_OPEN, "n %d", n);

	cur_case = "unsolicited 227 flood";
	drv_init(d, SERVER, 0, 0, 0, 0, true);
	o = 0;
	for (i = 0; i < 50; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o,
				      "227 (" S4 ",20,%d)\r\n", i);
	n = feed(d, 0, 0, buf);
	EXPECT(n == PH_FTP_BURST_MAX + 1, "%d actions", n);
	EXPECT(d->s.stats.actions_lost == 0, "lost");
}

static void test_api(void)
{
	struct ph_ftp_action out[PH_FTP_MAX_ACTIONS], p;
	struct ph_ftp_config cfg;
	struct drv *d = &drv_a;
	const char *names[PH_FTP_REFUSE_MAX];
	int i, j;

	cur_case = "api";
	make_cfg(&cfg, SERVER, 0, 0);
	cfg.client_addr[10] = 0;
	EXPECT(ph_ftp_init(&d->s, &cfg) == -EINVAL, "IPv4 must be v4-mapped");
	make_cfg(&cfg, SERVER, 0, 0);
	cfg.family = 99;
	EXPECT(ph_ftp_init(&d->s, &cfg) == -EINVAL, "family");
	make_cfg(&cfg, SERVER, 0, 0);
	cfg.ttl_ns = 0;
	EXPECT(ph_ftp_init(&d->s, &cfg) == 0, "init");
	EXPECT(d->s.cfg.ttl_ns == PH_FTP_DEFAULT_TTL_NS, "default ttl");
	EXPECT(ph_ftp_feed(&d->s, 1, 0, "PASV\r\n", 6, 0, out, 4) == -EINVAL,
	       "small out");
	EXPECT(ph_ftp_feed(&d->s, 1, 0, NULL, 6, 0, out,
			   PH_FTP_MAX_ACTIONS) == -EINVAL, "NULL data");
	EXPECT(ph_ftp_feed(&d->s, 1, 0, "x", PH_FTP_SEG_MAX + 1, 0, out,
			   PH_FTP_MAX_ACTIONS) == -EINVAL, "huge segment");

	/* no SYN: the first segment starts the stream */
	EXPECT(ph_ftp_feed(&d->s, 1, 12345, "PORT " C4 "," P5001 "\r\n", 26,
			   7 * SEC, out, PH_FTP_MAX_ACTIONS) == 1, "open");
	EXPECT(out[0].deadline_ns == 37 * SEC, "deadline");
	EXPECT(ph_ftp_set_isn(&d->s, 1, 5) == -EBUSY, "isn after data");
	EXPECT(ph_ftp_pending(&d->s, &p) && act_eq(&p, &out[0]), "pending");
	EXPECT(out[0].announced_port == 5001 &&
		       !memcmp(out[0].announced_addr, cfg.client_addr, 16),
	       "announced");
	ph_ftp_forget_pending(&d->s);
	EXPECT(!ph_ftp_pending(&d->s, NULL), "forgotten");
	EXPECT(ph_ftp_close(&d->s, out, 1) == 0, "nothing to revoke");
	EXPECT(ph_ftp_feed(&d->s, 1, 12370, "PASV\r\n", 6, 0, out,
			   PH_FTP_MAX_ACTIONS) == 0, "closed");

	cur_case = "close revokes";
	EXPECT(ph_ftp_init(&d->s, &cfg) == 0, "init");
	EXPECT(ph_ftp_feed(&d->s, 1, 0, "PORT " C4 "," P5001 "\r\n", 26, 0,
			   out, PH_FTP_MAX_ACTIONS) == 1, "open");
	EXPECT(ph_ftp_close(&d->s, out, 1) == 1 &&
		       out[0].kind == PH_FTP_REVOKE &&
		       ntohs(out[0].key.rport) == 5001, "revoke on close");
	EXPECT(ph_ftp_stats(&d->s)->opened == 1 &&
		       ph_ftp_stats(&d->s)->revoked == 1, "stats");

	cur_case = "implicit";
	cfg.implicit_tls = true;
	EXPECT(ph_ftp_init(&d->s, &cfg) == 0 && ph_ftp_encrypted(&d->s),
	       "implicit is encrypted");

	cur_case = "names";
	for (i = 0; i < PH_FTP_REFUSE_MAX; i++) {
		names[i] = ph_ftp_refuse_name(i);
		EXPECT(names[i] && *names[i] && strcmp(names[i], "?") &&
			       ph_ftp_refuse_text(i) && *ph_ftp_refuse_text(i),
		       "reason %d unnamed", i);
		for (j = 0; j < i; j++)
			EXPECT(strcmp(names[i], names[j]), "duplicate %s",
			       names[i]);
	}
	EXPECT(!strcmp(ph_ftp_refuse_name(PH_FTP_REFUSE_BOUNCE), "bounce") &&
		       !strcmp(ph_ftp_refuse_name(PH_FTP_REFUSE_UNSOLICITED),
			       "unsolicited_reply"),
	       "names");
	EXPECT(!strcmp(ph_ftp_action_name(PH_FTP_OPEN), "open") &&
		       !strcmp(ph_ftp_via_name(PH_FTP_VIA_EPSV), "EPSV"),
	       "names");
}

/* A realistic session, run through every way of cutting it. */
/* nat-address: only this host's own address may be one of them. */
static const struct tcase nat_cases[] = {
	{ "nat: server 227 naming its nat-address", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (" NAT4 "," P5001 ")" CRLF },
	  "open:PASV:in:5001 revoke:5001" },
	{ "nat: server 227 naming another address", SERVER, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (203,0,113,6," P5001 ")" CRLF },
	  "refuse:third_party" },
	{ "nat: a client's PORT naming the server's nat-address", SERVER, 0, 0,
	  { "C:PORT " NAT4 "," P5001 CRLF }, "refuse:bounce" },
	{ "nat: client PORT naming its nat-address", CLIENT, 0, 0,
	  { "C:PORT " NAT4 "," P5001 CRLF }, "open:PORT:in:5001 revoke:5001" },
	{ "nat: client EPRT |1| naming its nat-address", CLIENT, 0, 0,
	  { "C:EPRT |1|203.0.113.5|5001|" CRLF },
	  "open:EPRT:in:5001 revoke:5001" },
	{ "nat: client EPRT |2| naming its nat-address", CLIENT, 1, 0,
	  { "C:EPRT |2|2001:db8:5::5|5001|" CRLF },
	  "open:EPRT:in:5001 revoke:5001" },
	{ "nat: client EPRT |2| naming another address", CLIENT, 1, 0,
	  { "C:EPRT |2|2001:db8:5::6|5001|" CRLF }, "refuse:bounce" },
	{ "nat: client PORT naming the IPv6 nat-address's family", CLIENT, 1, 0,
	  { "C:EPRT |1|203.0.113.5|5001|" CRLF }, "refuse:wrong_family" },
	{ "nat: a server's 227 naming the client's nat-address", CLIENT, 0, 0,
	  { "C:PASV" CRLF, "S:227 ok (" NAT4 "," P5001 ")" CRLF },
	  "refuse:third_party" },
	{ "nat: client PORT to a low port of its nat-address", CLIENT, 0, 0,
	  { "C:PORT " NAT4 ",0,25" CRLF }, "refuse:low_port" },
};

static const struct tcase session = {
	"full session", SERVER, 0, 0,
	{ "S:220-Welcome" CRLF "220 ready" CRLF, "C:USER ftp" CRLF,
	  "S:331 Please specify the password." CRLF, "C:PASS x" CRLF,
	  "S:230 Login successful." CRLF, "C:FEAT" CRLF,
	  "S:211-Features:" CRLF " EPRT" CRLF " EPSV" CRLF " PASV" CRLF
	  "211 End" CRLF,
	  "C:EPSV" CRLF, "S:229 Entering Extended Passive Mode (|||30001|)" CRLF,
	  "C:LIST" CRLF, "S:150 Here comes the directory listing." CRLF,
	  "S:226 Directory send OK." CRLF, "C:PORT " C4 ",117,49" CRLF,
	  "S:200 PORT command successful." CRLF, "C:RETR a" CRLF,
	  "S:150 Opening" CRLF "226 ok" CRLF, "C:PASV" CRLF, PASV227,
	  "C:QUIT" CRLF, "S:221 Goodbye." CRLF },
	"open:EPSV:in:30001 revoke:30001 open:PORT:out:30001 revoke:30001 "
	"open:PASV:in:5001 revoke:5001",
};

int main(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	cur_nat = true;
	for (i = 0; i < sizeof(nat_cases) / sizeof(nat_cases[0]); i++)
		run_case(&nat_cases[i]);
	cur_nat = false;
	run_case(&session);
	test_retransmit_other_bytes();
	test_out_of_order();
	test_keep_rule();
	test_ack_gap();
	test_window_overflow();
	test_line_limits();
	test_flood();
	test_api();
	if (failures) {
		fprintf(stderr, "test_ftp: %d of %d checks FAILED\n", failures,
			checks);
		return 1;
	}
	printf("test_ftp: all %d checks passed (%zu table cases)\n", checks,
	       sizeof(cases) / sizeof(cases[0]) + 1);
	return 0;
}
