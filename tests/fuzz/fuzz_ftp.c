// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the FTP tracker (user/ftp.c).
 *
 * Input:  byte 0     session: bit 0 role (client), bit 1 IPv6, bits 2-4
 *                    all set: implicit FTPS, bits 5-7 initial sequence
 *                    numbers (some wrap during the session)
 *         bytes 1-4  seed of the segmentation
 *         rest       the control stream: 0x01 starts a message from the
 *                    client, 0x02 one from the server (the stream starts
 *                    with the client); messages over 4 KiB are cut.
 *
 * The stream is fed three times:
 *   whole   one segment per message;
 *   split   each message cut into up to 8 pieces, delivered shuffled,
 *           with retransmissions (same bytes) of delivered pieces and of
 *           older bytes;
 *   lossy   like split, but some pieces are lost and some segments land
 *           far ahead (window overflow, resynchronisation);
 *   resume  like lossy, and some messages are skipped (the datapath kept
 *           them out of the ring as quiet) with a ph_ftp_resume() in their
 *           place, as the tracker makes of a SYNC record: the stream
 *           position at the message's end or near it (behind, ahead), the
 *           line in progress, the pairing state, lost, a kept pinhole (the
 *           pending one or another), encrypted, all from the input: only
 *           the invariants are judged, whatever the SYNC claims;
 *   conflict  like split (up to 4 pieces), plus decoys: copies of parts of
 *           the message with other bytes (digits changed, LFs added),
 *           before or after the real pieces, at the same sequence numbers
 *           (shorter, longer) or overlapping, and over consumed bytes.
 * whole and split must give identical actions and line statistics
 * (invariant 5). The conflict run is judged against an oracle: a plain
 * model of Linux's receiver (tcp_data_queue / tcp_data_queue_ofo: consumed
 * bytes are final, in-order data wins, a contained copy is dropped, a
 * longer one at the same start replaces, held segments dequeue by start),
 * kept apart from user/ftp.c's code: the stream it accepts, fed whole to
 * a fresh session, must give the same actions and statistics as the
 * tracker fed the raw segments, unless the tracker reports contested
 * bytes (where Linux's merging of adjacent segments decides). Every run must satisfy the invariants on every action:
 * an OPEN is exact (the control connection's addresses, one wildcard
 * port, TCP), its port >= 1024, the session not encrypted, no other
 * pinhole pending; a REVOKE names the pending one; the tracker's view of
 * the pending pinhole agrees. abort() on any violation.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ftp.h"

#define SEC 1000000000ull
#define TTL (30 * SEC)
#define MAX_MSGS 256
#define MAX_ACTS 4096

struct msg {
	int side; /* 1 client, 0 server */
	const uint8_t *p;
	size_t len;
	__u32 rel; /* offset of its first byte in its direction */
};

struct script {
	struct ph_ftp_config cfg;
	__u32 isn[2];
	__u32 seed;
	struct msg m[MAX_MSGS];
	int n;
};

struct run {
	struct ph_ftp_session s;
	struct ph_ftp_action acts[MAX_ACTS];
	int n;
	/* model of the pending pinhole */
	bool pending;
	struct ph_ftp_action pend;
	bool encrypted;
};

static struct run run_whole, run_split, run_lossy, run_conflict, run_oracle,
	run_resume;
/* Each direction's bytes, contiguous, for retransmitting older ranges. */
static uint8_t histbuf[2][MAX_MSGS * PH_FTP_OOO_BYTES];

#define CHECK(cond, what)                                                     \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_ftp: invariant violated: %s\n", \
				what);                                        \
			abort();                                              \
		}                                                             \
	} while (0)

static __u32 rnd(__u32 *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* ---------------------------------------------------------------------- */
/* Invariants                                                              */
/* ---------------------------------------------------------------------- */

static bool keys_equal(const struct ph_flow_key *a, const struct ph_flow_key *b)
{
	return !memcmp(a, b, sizeof(*a));
}

static void check_open(const struct run *r, const struct ph_ftp_action *a,
		       int side, __u64 now)
{
	const struct ph_ftp_config *cfg = &r->s.cfg;
	bool server = cfg->role == PH_FTP_ROLE_SERVER;
	bool passive = a->via == PH_FTP_VIA_PASV || a->via == PH_FTP_VIA_EPSV;
	__u16 lp = ntohs(a->key.lport), rp = ntohs(a->key.rport);
	__u16 port = lp ? lp : rp;
	static const __u8 zero[16];

	CHECK(!cfg->implicit_tls, "OPEN on an implicit FTPS session");
	CHECK(!r->encrypted, "OPEN after encryption");
	CHECK(!r->pending, "OPEN while another pinhole is pending");
	CHECK(a->via > PH_FTP_VIA_NONE && a->via < PH_FTP_VIA_MAX, "via");
	CHECK(side == (passive ? 0 : 1),
	      "227/229 must come from the server, PORT/EPRT from the client");
	CHECK(!memcmp(a->key.local,
		      server ? cfg->server_addr : cfg->client_addr, 16),
	      "local address is not the control connection's");
	CHECK(!memcmp(a->key.remote,
		      server ? cfg->client_addr : cfg->server_addr, 16),
	      "remote address is not the control connection's");
	CHECK(a->key.proto == IPPROTO_TCP, "proto");
	CHECK((lp == 0) != (rp == 0), "exactly one wildcard port");
	CHECK(port >= 1024, "data port below 1024");
	CHECK(a->dir == (lp ? PH_DIR_IN : PH_DIR_OUT), "dir vs ports");
	CHECK(a->dir == ((server == passive) ? PH_DIR_IN : PH_DIR_OUT),
	      "dir vs role and mode");
	CHECK(a->deadline_ns == now + cfg->ttl_ns, "deadline");
	CHECK(a->announced_port == port, "announced port");
	if (a->via == PH_FTP_VIA_EPSV)
		CHECK(!memcmp(a->announced_addr, zero, 16), "EPSV address");
	else
		CHECK(!memcmp(a->announced_addr,
			      passive ? cfg->server_addr : cfg->client_addr,
			      16),
		      "announced address: bounce or third party");
}

/* record()'s side for ph_ftp_resume()'s actions, which come from either
 * stream: an OPEN's side follows from its command (PASV/EPSV replies come
 * from the server, PORT/EPRT from the client). */
#define SIDE_BY_CMD (-2)

static void record(struct run *r, const struct ph_ftp_action *out, int n,
		   int side, __u64 now, bool was_encrypted)
{
	struct ph_ftp_action p;
	int i;

	CHECK(n >= 0 && n <= (side == SIDE_BY_CMD ? PH_FTP_RESUME_MAX_ACTIONS :
						    PH_FTP_MAX_ACTIONS),
	      "action count");
	CHECK(!was_encrypted || n == 0, "actions after encryption");
	for (i = 0; i < n; i++) {
		const struct ph_ftp_action *a = &out[i];

		switch (a->kind) {
		case PH_FTP_OPEN:
			check_open(r, a,
				   side != SIDE_BY_CMD ? side :
				   a->via == PH_FTP_VIA_PASV ||
						   a->via == PH_FTP_VIA_EPSV ?
							   0 :
							   1,
				   now);
			r->pending = true;
			r->pend = *a;
			break;
		case PH_FTP_REVOKE:
			CHECK(r->pending && keys_equal(&a->key, &r->pend.key) &&
				      a->dir == r->pend.dir,
			      "REVOKE of something not pending");
			r->pending = false;
			break;
		case PH_FTP_REFUSE:
			CHECK(a->reason > PH_FTP_REFUSE_NONE &&
				      a->reason < PH_FTP_REFUSE_MAX,
			      "refuse reason");
			break;
		case PH_FTP_ENCRYPTED:
			CHECK(!r->encrypted, "ENCRYPTED twice");
			CHECK(!r->pending, "pinhole left open at encryption");
			r->encrypted = true;
			break;
		default:
			CHECK(0, "action kind");
		}
		if (r->n < MAX_ACTS)
			r->acts[r->n++] = *a;
	}
	CHECK(ph_ftp_pending(&r->s, &p) == r->pending, "pending disagrees");
	if (r->pending)
		CHECK(keys_equal(&p.key, &r->pend.key), "pending key");
	CHECK(ph_ftp_encrypted(&r->s) == (r->encrypted || r->s.cfg.implicit_tls),
	      "encrypted disagrees");
	CHECK(ph_ftp_stats(&r->s)->actions_lost == 0, "actions lost");
}

static void seg(struct run *r, const struct script *sc, int side, __u32 rel,
		const uint8_t *p, size_t len, __u64 now)
{
	struct ph_ftp_action out[PH_FTP_MAX_ACTIONS];
	bool enc = ph_ftp_encrypted(&r->s);
	int n = ph_ftp_feed(&r->s, side, sc->isn[side] + 1 + rel, p, len, now,
			    out, PH_FTP_MAX_ACTIONS);

	record(r, out, n, side, now, enc);
}

static void start(struct run *r, const struct script *sc)
{
	memset(&r->pend, 0, sizeof(r->pend));
	r->n = 0;
	r->pending = false;
	r->encrypted = false;
	CHECK(ph_ftp_init(&r->s, &sc->cfg) == 0, "init");
	CHECK(ph_ftp_set_isn(&r->s, 1, sc->isn[1]) == 0, "isn");
	CHECK(ph_ftp_set_isn(&r->s, 0, sc->isn[0]) == 0, "isn");
}

static void finish(struct run *r)
{
	struct ph_ftp_action out[2];
	int n = ph_ftp_close(&r->s, out, 2);

	CHECK(n == (r->pending ? 1 : 0), "close must revoke the pending one");
	record(r, out, n, -1, 0, false);
	CHECK(!r->pending, "pending after close");
}

/* ---------------------------------------------------------------------- */
/* Ways of feeding                                                         */
/* ---------------------------------------------------------------------- */

static void feed_whole(struct run *r, const struct script *sc)
{
	int i;

	start(r, sc);
	for (i = 0; i < sc->n; i++)
		seg(r, sc, sc->m[i].side, sc->m[i].rel, sc->m[i].p,
		    sc->m[i].len, (__u64)(i + 1) * SEC);
	finish(r);
}

/* Cut [0, len) into np pieces (some may be empty), shuffled order. */
static int cut(size_t len, __u32 *x, size_t cuts[9], int order[8])
{
	int np = 1 + (int)(rnd(x) % 8), i, j;

	cuts[0] = 0;
	for (i = 1; i < np; i++)
		cuts[i] = cuts[i - 1] + rnd(x) % (len - cuts[i - 1] + 1);
	cuts[np] = len;
	for (i = 0; i < np; i++)
		order[i] = i;
	for (i = np - 1; i > 0; i--) {
		int t;

		j = (int)(rnd(x) % (__u32)(i + 1));
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	return np;
}

static void feed_split(struct run *r, const struct script *sc, bool lossy)
{
	__u32 x = sc->seed | 1;
	int i, k;

	start(r, sc);
	for (i = 0; i < sc->n; i++) {
		const struct msg *m = &sc->m[i];
		const uint8_t *h = histbuf[m->side];
		__u64 now = (__u64)(i + 1) * SEC;
		size_t cuts[9];
		int order[8], np = cut(m->len, &x, cuts, order);

		for (k = 0; k < np; k++) {
			int a = order[k];
			__u32 op = rnd(&x);

			if (lossy && op % 11 == 0)
				continue; /* lost */
			seg(r, sc, m->side, m->rel + (__u32)cuts[a],
			    m->p + cuts[a], cuts[a + 1] - cuts[a], now);
			if (op % 5 == 0) { /* a delivered piece again */
				int b = order[rnd(&x) % (__u32)(k + 1)];

				seg(r, sc, m->side, m->rel + (__u32)cuts[b],
				    m->p + cuts[b], cuts[b + 1] - cuts[b], now);
			}
			if (op % 7 == 0 && m->rel) { /* older bytes again */
				__u32 from = rnd(&x) % m->rel;
				__u32 to = from + rnd(&x) % (m->rel - from + 1);

				seg(r, sc, m->side, from, h + from, to - from,
				    now);
			}
			if (lossy && op % 13 == 0) { /* far ahead */
				__u32 ahead = m->rel + PH_FTP_OOO_BYTES +
					      rnd(&x) % 64;

				seg(r, sc, m->side, ahead, m->p, m->len, now);
			}
		}
	}
	finish(r);
}

/* A SYNC in place of message @m (skipped): ph_ftp_resume() with fields
 * drawn from @x; its actions judged as a feed's. */
static void resume_at(struct run *r, const struct script *sc,
		      const struct msg *m, __u32 *x, __u64 now)
{
	struct ph_ftp_action out[PH_FTP_RESUME_MAX_ACTIONS];
	struct ph_ftp_resume rs = {};
	bool enc = ph_ftp_encrypted(&r->s);
	int i, side, n = -1, ret;
	__u32 op = rnd(x);

	for (side = 0; side < 2; side++) {
		/* The other direction is where it is: as far as this script
		 * got, or somewhat off. */
		__u32 at = side == m->side ? m->rel + (__u32)m->len : 0;
		__u32 jitter = rnd(x);

		if (side != m->side)
			for (i = 0; i < sc->n && sc->m + i <= m; i++)
				if (sc->m[i].side == side)
					at = sc->m[i].rel + (__u32)sc->m[i].len;
		if (jitter % 4 == 0)
			at -= jitter % 64; /* behind what we saw */
		else if (jitter % 4 == 1)
			at += jitter % 200; /* ahead, into bytes never seen */
		rs.nxt[side] = sc->isn[side] + 1 + at;
		rs.line_len[side] = (__u16)(rnd(x) % 4 ? 0 : rnd(x) % 600);
		for (i = 0; i < 8; i++)
			rs.head[side][i] = i < (int)m->len ? m->p[i] : (__u8)rnd(x);
		rs.skip[side] = rnd(x) % 8 == 0;
		rs.burst[side] = rnd(x) % 4;
	}
	rs.last_cmd = (enum ph_ftp_cmd)(rnd(x) % (PH_FTP_CMD_AUTH + 1));
	rs.awaiting = op & 1;
	rs.epsv_bad_family = op & 2;
	rs.last_cmd_opened = op & 4;
	rs.in_multiline = (op & 24) == 24;
	rs.ml_code = (__u16)(100 + rnd(x) % 500);
	rs.encrypted = op % 29 == 0;
	rs.lost = op & 32;
	rs.has_keep = op & 64;
	if (rs.has_keep) {
		if (r->pending && (op & 128))
			rs.keep = r->pend.key;
		else
			memcpy(&rs.keep, m->p, m->len < sizeof(rs.keep) ?
						       m->len : sizeof(rs.keep));
	}
	ret = ph_ftp_resume(&r->s, &rs, now, out, PH_FTP_RESUME_MAX_ACTIONS,
			    &n);
	CHECK(ret >= 0, "resume refused a valid call");
	record(r, out, n, SIDE_BY_CMD, now, enc);
}

static void feed_resume(struct run *r, const struct script *sc)
{
	__u32 x = (sc->seed ^ 0x5eed5eedu) | 1;
	int i, k;

	start(r, sc);
	for (i = 0; i < sc->n; i++) {
		const struct msg *m = &sc->m[i];
		__u64 now = (__u64)(i + 1) * SEC;
		size_t cuts[9];
		int order[8], np;

		if (rnd(&x) % 4 == 0) {
			resume_at(r, sc, m, &x, now);
			continue;
		}
		np = cut(m->len, &x, cuts, order);
		for (k = 0; k < np; k++) {
			int a = order[k];

			if (rnd(&x) % 11 == 0)
				continue; /* lost */
			seg(r, sc, m->side, m->rel + (__u32)cuts[a],
			    m->p + cuts[a], cuts[a + 1] - cuts[a], now);
		}
	}
	finish(r);
}

/* ---------------------------------------------------------------------- */
/* The oracle: what a Linux receiver keeps of overlapping copies           */
/* ---------------------------------------------------------------------- */

#define OQ_MAX 32

static bool same(const struct run *a, const struct run *b);

struct oracle {
	__u32 nxt;                /* rcv_nxt, relative */
	struct {
		__u32 seq, end;
		const uint8_t *p; /* the segment's own bytes */
	} q[OQ_MAX];              /* out-of-order queue, by seq */
	int n;
	uint8_t *out;             /* the bytes accepted, in order */
	__u32 olen;
};

static bool o_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

static void o_append(struct oracle *o, const uint8_t *p, __u32 from,
		     __u32 seq, __u32 end)
{
	/* bytes [from, end) of a segment starting at seq */
	memcpy(o->out + o->olen, p + (from - seq), end - from);
	o->olen += end - from;
	o->nxt = end;
}

static void o_remove(struct oracle *o, int i)
{
	memmove(&o->q[i], &o->q[i + 1], (size_t)(o->n - i - 1) * sizeof(o->q[0]));
	o->n--;
}

static void o_rx(struct oracle *o, __u32 seq, const uint8_t *p, __u32 len)
{
	__u32 end = seq + len;
	int i, pred = -1;

	if (!len || !o_before(o->nxt, end))
		return; /* old: tcp_data_queue drops it */
	if (!o_before(o->nxt, seq)) {
		/* in order (perhaps partly old): queued whole from rcv_nxt,
		 * then tcp_ofo_queue() */
		o_append(o, p, o->nxt, seq, end);
		while (o->n && !o_before(o->nxt, o->q[0].seq)) {
			if (o_before(o->nxt, o->q[0].end))
				o_append(o, o->q[0].p, o->nxt, o->q[0].seq,
					 o->q[0].end);
			o_remove(o, 0);
		}
		return;
	}
	for (i = 0; i < o->n; i++)
		if (!o_before(seq, o->q[i].seq))
			pred = i;
	i = pred + 1;
	if (pred >= 0 && o_before(seq, o->q[pred].end)) {
		if (!o_before(o->q[pred].end, end))
			return; /* all the bits are present: drop */
		if (o->q[pred].seq == seq) {
			/* covers it: replace */
			o->q[pred].end = end;
			o->q[pred].p = p;
			i = pred;
			goto merge_right;
		}
	}
	CHECK(o->n < OQ_MAX, "oracle queue");
	memmove(&o->q[i + 1], &o->q[i], (size_t)(o->n - i) * sizeof(o->q[0]));
	o->q[i].seq = seq;
	o->q[i].end = end;
	o->q[i].p = p;
	o->n++;
merge_right:
	while (i + 1 < o->n && o_before(o->q[i + 1].seq, end) &&
	       !o_before(end, o->q[i + 1].end))
		o_remove(o, i + 1);
}

static uint8_t decoy_buf[8][PH_FTP_OOO_BYTES];
static uint8_t oracle_out[2][MAX_MSGS * PH_FTP_OOO_BYTES];

/* Bytes [from, to) of message m with some changed. */
static const uint8_t *decoy(const struct msg *m, int k, __u32 from, __u32 to,
			    __u32 *x)
{
	uint8_t *d = decoy_buf[k & 7];
	__u32 i;

	for (i = from; i < to; i++) {
		uint8_t c = m->p[i], r = (uint8_t)rnd(x);

		if (r % 4 == 0 && c >= '0' && c <= '9')
			c = (uint8_t)('0' + (c - '0' + 1 + r % 9) % 10);
		else if (r % 29 == 0)
			c = '\n';
		d[i - from] = c;
	}
	return d;
}

/* The conflict run: the tracker fed pieces and decoys; the oracle the
 * same; the reference fed what the oracle accepted, message by message. */
static void feed_conflict(const struct script *sc)
{
	static struct oracle o[2];
	struct run *r = &run_conflict;
	__u32 x = (sc->seed ^ 0x9e3779b9u) | 1;
	__u32 start_out[MAX_MSGS], i;
	int k, nd = 0;

	memset(o, 0, sizeof(o));
	o[0].out = oracle_out[0];
	o[1].out = oracle_out[1];
	start(r, sc);
	for (i = 0; i < (__u32)sc->n; i++) {
		const struct msg *m = &sc->m[i];
		struct oracle *or = &o[m->side];
		__u64 now = (__u64)(i + 1) * SEC;
		size_t cuts[9];
		int order[8], np = cut(m->len, &x, cuts, order);

		if (np > 4) { /* at most 4 pieces + 4 decoys held at once */
			cuts[4] = m->len;
			np = 4;
			for (k = 0; k < 4; k++)
				order[k] = k;
		}
		start_out[i] = or->olen;
		for (k = 0; k < np; k++) {
			int a = order[k], when;
			__u32 op = rnd(&x);

			for (when = 0; when < 2; when++) {
				__u32 from, to;
				const uint8_t *d;

				if (when == 1) {
					__u32 s0 = m->rel + (__u32)cuts[a];

					seg(r, sc, m->side, s0, m->p + cuts[a],
					    cuts[a + 1] - cuts[a], now);
					o_rx(or, s0, m->p + cuts[a],
					     (__u32)(cuts[a + 1] - cuts[a]));
				}
				if ((op >> (4 * when)) % 3 || !m->len || nd >= 4 * (int)(i + 1))
					continue;
				/* a decoy: from the piece's start or inside
				 * it, any length within the message */
				from = (__u32)cuts[a];
				if ((op >> 9) & 1 && cuts[a + 1] > cuts[a])
					from += rnd(&x) % (__u32)(cuts[a + 1] - cuts[a]);
				if (from >= m->len)
					continue;
				to = from + 1 + rnd(&x) % (__u32)(m->len - from);
				d = decoy(m, nd, from, to, &x);
				nd++;
				seg(r, sc, m->side, m->rel + from, d, to - from,
				    now);
				o_rx(or, m->rel + from, d, to - from);
			}
		}
		CHECK(or->nxt == m->rel + m->len && or->n == 0,
		      "oracle: message not complete");
		nd = 0;
	}
	finish(r);

	/* The reference: the oracle's stream, one segment per message. */
	r = &run_oracle;
	start(r, sc);
	for (i = 0; i < (__u32)sc->n; i++) {
		const struct msg *m = &sc->m[i];

		seg(r, sc, m->side, m->rel, oracle_out[m->side] + start_out[i],
		    m->len, (__u64)(i + 1) * SEC);
	}
	finish(r);
	if (!ph_ftp_stats(&run_conflict.s)->contested)
		CHECK(same(&run_oracle, &run_conflict),
		      "the tracker kept other bytes than Linux (oracle)");
}

/* ---------------------------------------------------------------------- */
/* Entry                                                                   */
/* ---------------------------------------------------------------------- */

static void make_script(struct script *sc, const uint8_t *d, size_t n)
{
	static const __u32 isns[8][2] = {
		{ 0, 0 },
		{ 1000, 70000 },
		{ 0xffffffffu, 0xfffffffeu },
		{ 0xfffffff0u, 0xffffff00u },
		{ 0x7ffffff0u, 0x80000000u },
		{ 0xfffff000u, 12345 },
		{ 0xdeadbeefu, 0xfffffffau },
		{ 0x80000000u, 0x7fffffffu },
	};
	__u8 f = d[0];
	__u32 off[2] = { 0, 0 };
	size_t i = 5;
	int side = 1;

	memset(sc, 0, sizeof(*sc));
	sc->cfg.role = (f & 1) ? PH_FTP_ROLE_CLIENT : PH_FTP_ROLE_SERVER;
	sc->cfg.implicit_tls = (f & 0x1c) == 0x1c;
	sc->cfg.ttl_ns = TTL;
	sc->cfg.client_port = htons(40000);
	sc->cfg.server_port = htons(21);
	if (f & 2) {
		sc->cfg.family = AF_INET6;
		inet_pton(AF_INET6, "2001:db8::7", sc->cfg.client_addr);
		inet_pton(AF_INET6, "2001:db8::1", sc->cfg.server_addr);
	} else {
		sc->cfg.family = AF_INET;
		sc->cfg.client_addr[10] = sc->cfg.client_addr[11] = 0xff;
		sc->cfg.server_addr[10] = sc->cfg.server_addr[11] = 0xff;
		inet_pton(AF_INET, "198.51.100.7", sc->cfg.client_addr + 12);
		inet_pton(AF_INET, "192.0.2.1", sc->cfg.server_addr + 12);
	}
	sc->isn[1] = isns[f >> 5][0];
	sc->isn[0] = isns[f >> 5][1];
	memcpy(&sc->seed, d + 1, 4);

	while (i < n && sc->n < MAX_MSGS) {
		struct msg *m = &sc->m[sc->n];
		size_t j = i;

		if (d[i] == 1 || d[i] == 2) {
			side = d[i] == 1;
			j = ++i;
		}
		while (j < n && d[j] != 1 && d[j] != 2 &&
		       j - i < PH_FTP_OOO_BYTES)
			j++;
		if (j == i)
			continue;
		m->side = side;
		m->p = d + i;
		m->len = j - i;
		m->rel = off[side];
		memcpy(histbuf[side] + off[side], m->p, m->len);
		off[side] += (__u32)m->len;
		sc->n++;
		i = j;
	}
}

static bool same(const struct run *a, const struct run *b)
{
	const struct ph_ftp_stats *x = ph_ftp_stats(&a->s),
				  *y = ph_ftp_stats(&b->s);
	int i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		const struct ph_ftp_action *p = &a->acts[i], *q = &b->acts[i];

		if (p->kind != q->kind || p->reason != q->reason ||
		    p->via != q->via || p->dir != q->dir ||
		    !keys_equal(&p->key, &q->key) ||
		    p->deadline_ns != q->deadline_ns ||
		    memcmp(p->announced_addr, q->announced_addr, 16) ||
		    p->announced_port != q->announced_port)
			return false;
	}
	return x->lines == y->lines &&
	       x->lines_discarded == y->lines_discarded &&
	       x->lines_ignored == y->lines_ignored &&
	       x->opened == y->opened && x->revoked == y->revoked &&
	       !memcmp(x->refused, y->refused, sizeof(x->refused)) &&
	       x->bytes[0] == y->bytes[0] && x->bytes[1] == y->bytes[1] &&
	       x->resyncs == 0 && y->resyncs == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct script sc;

	if (size < 5)
		return 0;
	make_script(&sc, data, size);
	feed_whole(&run_whole, &sc);
	feed_split(&run_split, &sc, false);
	CHECK(same(&run_whole, &run_split),
	      "whole and split feeding differ (invariant 5)");
	feed_split(&run_lossy, &sc, true);
	feed_conflict(&sc);
	feed_resume(&run_resume, &sc);
	return 0;
}
