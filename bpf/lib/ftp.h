/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * FTP control connections in the datapath (docs/datapath.md, "FTP control
 * connections"). Two jobs:
 *
 *  1. Report. Every payload byte of a tracked control connection goes to
 *     the session tracker through the `events` ring buffer (CTRL_DATA), with
 *     CTRL_OPEN / CTRL_CLOSE around them and EXPECT_USED when a pinhole
 *     admits its data connection. The tracker (user/tracker.c, parsing with
 *     user/ftp.c) is the authority for sessions and pinholes.
 *
 *  2. Race the data SYN. On veth the data SYN follows the 227 within tens
 *     of microseconds, long before userspace has read the event, so the
 *     datapath parses complete, in-sequence lines itself and installs the
 *     pinhole synchronously (EXPECT_BPF). It mirrors user/ftp.c's state
 *     machine, is never more permissive, and gives up for the rest of a
 *     session (desync) whenever it cannot be exactly as strict: a sequence
 *     gap, a lost event, a segment longer than it copies, two CPUs at once.
 *
 * Verifier budget: the work is split into global functions (each verified
 * once, with unknown arguments, however many call sites and loop
 * iterations reach it), which pass their state through a per-CPU scratch
 * map rather than the stack; loops keep their counters in registers and
 * everything else in map memory, so the verifier's paths through a loop
 * body meet again at the next iteration. No bpf_loop, no kfuncs, no
 * dynptrs, nothing newer than 5.15.
 */
#ifndef PH_BPF_FTP_H
#define PH_BPF_FTP_H

#include "common.h"
#include "policy.h"
#include "monitor.h"

#define PH_FF_CTRL_ANY (PH_FF_FTP_CTRL | PH_FF_FTPS_CTRL)

#define PH_FTP_LINE_MAX 512      /* longer lines are never parsed (ftp.h) */
#define PH_FTP_FAST_LINE 96      /* longest data-port line parsed here */
#define PH_FTP_SEEK_MAX 64       /* bytes searched for '(' or the first digit */
#define PH_FTP_H6_MAX 32         /* bytes of "h1,h2,h3,h4,p1,p2" + spaces */
#define PH_FTP_MIN_DATA_PORT 1024
#define PH_FTP_BURST_MAX 8
#define PH_FTP_TTL_DEFAULT_MS 30000
#define PH_FTP_NO_START 0xffffu  /* the line began before this record */
#define PH_FTP_LEN_SAT 0xffffu
#define PH_CAP_MASK (PH_CTRL_CAP - 1)

_Static_assert((PH_CTRL_CAP & PH_CAP_MASK) == 0, "PH_CTRL_CAP must be 2^n");

enum { PH_SIDE_SERVER = 0, PH_SIDE_CLIENT = 1 };
enum { PH_LINE_GO = 0, PH_LINE_STOP = 1 };
enum { PH_FK_PORT = 1, PH_FK_EPRT, PH_FK_227, PH_FK_229 };

/* What a packet's flow entry said before ph_flow_use() could delete it. */
struct ph_ftp_flowinfo {
	__u32 session;
	__u8 origin;
	__u8 flags;
	__u8 state;
	__u8 pad;
};

/* ph_ftp_in.what */
#define PH_FTP_DO_OPEN 1  /* the handshake completed: start the session */
#define PH_FTP_DO_DATA 2  /* the segment has payload */
#define PH_FTP_DO_CLOSE 4 /* the connection ended */
#define PH_FTP_DO_ACK 8   /* egress: the local stack's ACK (ph_ftp_acked()) */

/*
 * The packet, as the FTP work needs it, handed to a global function
 * through the scratch: a global function is verified once, with unknown
 * arguments, whatever state its callers are in; a static one would be
 * verified again for every distinct state reaching each call.
 */
struct ph_ftp_in {
	struct ph_flow_key key;    /* control connection (USED: the SYN) */
	struct ph_flow_key expect; /* USED: the pinhole taken */
	struct ph_ftp_flowinfo fi;
	__u32 payload_off;
	__u32 payload_len;
	__u16 l4_off;
	__u8 tcp_flags;
	__u8 what;                 /* PH_FTP_DO_* */
	__u16 l3_off;
	__u8 unverified;           /* too long to verify: report nothing */
	__u8 pad;
};

/* Header fields of a small record (OPEN, CLOSE, EXPECT_USED). */
struct ph_ftp_evh {
	__u32 session;
	__u8 type;
	__u8 dir;
	__u8 from_client;
	__u8 tcp_flags;
	__u8 host_role;
	__u8 encrypted;
	__u8 pad[2];
};

/*
 * Per-CPU work area, one per hook (index enum ph_dir): the record being
 * built, the session's parser state while one segment is parsed, and what
 * that segment decided. Private to each object, not pinned.
 */
struct ph_ftp_scratch {
	struct ph_ftp_in in;
	struct ph_ftp_evh h;
	struct ph_ctrl_open_data od;
	struct ph_event ev;
	struct ph_ftp_parse ps;
	struct ph_flow_key cand; /* pinhole decided by the current record */
	struct {                 /* parser loop state, see PH_M() */
		__u64 acc;
		__u32 v, nd, field, done, ok, pos, ng, colon, f1, f2, f3;
		__u8 prev;
	} num;
	__u16 grp[8];            /* EPRT |2|: the address's groups */
	/* An announced address that is not the local one, for the service's
	 * nat-address list (ph_ftp_nat_has()), v4-mapped for IPv4. */
	__u8 nat_a[16] __attribute__((aligned(8)));
	__u8 cand_ok;
	__u8 cand_dir;
	__u8 revoke;             /* the installed ps.pinhole must go */
	__u8 claimed;            /* ps is ours to write back */
	__u8 parse;              /* the in-kernel parser runs on this segment */
	__u8 desync;             /* ... and gave up on the session */
	__u8 family;
	__u32 line_start;        /* current line's offset, or PH_FTP_NO_START */
	__u32 scan_from;         /* first new byte of the record */
	__u32 scan_n;            /* bytes in the record */
	__u32 seq0;              /* sequence number of the segment's payload */
	__u8 want;               /* ph_ftp_line(): a data-port line ... */
	__u8 want_kind;          /* ... to parse (PH_FK_*, 0: refused as is) */
	__u8 want_side;
	__u8 want_replaces;
	__u8 last;               /* the current record is the segment's last */
	__u32 cp_n;              /* XDP copy: bytes to copy */
	__u32 cp_pos;            /* ... where the word loop stopped */
	__u8 ftps_new;           /* ph_ftp_open() counted the session */
	__u32 ack;               /* the segment's ACK number (egress: sent) */
	/* Reporting (docs/datapath.md, "What reaches the ring"): the parser
	 * state at the current record's start, what the record holds, and
	 * the session's SYNC state (ph_ftp_ctrl.sync, sync_ns) while claimed. */
	struct ph_ftp_parse snap;
	__u8 loud;               /* a line that can open or close something */
	__u8 unrep;              /* the record must not be reported alone */
	__u8 sync;               /* PH_FTPC_SYNC_* */
	__u64 sync_ns;
	/* Checksum verification (ph_ftp_csum_judge()): the headers copied,
	 * the pseudo header built, the sum of the payload so far. */
	__u8 cs_ip[64] __attribute__((aligned(8)));
	__u8 cs_th[64] __attribute__((aligned(8)));
	__u8 cs_ph[40] __attribute__((aligned(8)));
	__u64 cs_sum;
	/* ph_ftp_nat_has(): its map key, kept off the stack */
	struct ph_ftp_nat_key nat_nk;
	__u8 init[sizeof(struct ph_ftp_ctrl)] __attribute__((aligned(8)));
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PH_DIR_MAX);
	__type(key, __u32);
	__type(value, struct ph_ftp_scratch);
} ftp_scratch SEC(".maps");

#define PH_FTP_STAT(field)                                                     \
	do {                                                                   \
		__u32 z_ = 0;                                                  \
		struct ph_ftp_dp_stats *s_ =                                   \
			bpf_map_lookup_elem(&ftp_dp_stats, &z_);               \
		if (s_)                                                        \
			s_->field++;                                           \
	} while (0)

static __always_inline __u8 ph_ftp_role(__u8 origin)
{
	return origin == PH_FO_OUTBOUND ? PH_ROLE_CLIENT : PH_ROLE_SERVER;
}

static __always_inline __u8 ph_ftp_from_client(__u8 role, int dir)
{
	return (role == PH_ROLE_SERVER) == (dir == PH_DIR_IN);
}

static __always_inline int ph_key_is_v4(const struct ph_flow_key *k)
{
	const __u32 *w = (const __u32 *)k->local;

	return !w[0] && !w[1] && w[2] == bpf_htonl(0xffff);
}

/* ---------------------------------------------------------------------- */
/* Small records (reserve/commit): OPEN, CLOSE, EXPECT_USED                */
/* ---------------------------------------------------------------------- */

#define PH_EV_HDR_LEN __builtin_offsetof(struct ph_event, data)

/*
 * A small record from sc->h (header fields, sc->in.key, sc->in.expect when
 * @with_expect, sc->od as data when @with_od). Built from the scratch, not
 * the stack: the programs' stacks are deep already. Returns 0 or -1 (ring
 * buffer full).
 */
/* The header of a small record reserved at @ev: @key, the fields of
 * sc->h, no expect key, no data (caplen 0). Returns the time stamped. */
static __always_inline __u64 ph_ftp_ev_head(struct ph_ftp_scratch *sc,
					    struct ph_event *ev,
					    const struct ph_flow_key *key)
{
	__u64 now = ph_now();

	ev->ts_ns = now;
	__builtin_memcpy(&ev->key, key, sizeof(ev->key));
	__builtin_memset(&ev->expect, 0, sizeof(ev->expect));
	ev->seq = 0;
	ev->session = sc->h.session;
	ev->len = 0;
	ev->caplen = 0;
	ev->type = sc->h.type;
	ev->dir = sc->h.dir;
	ev->from_client = sc->h.from_client;
	ev->tcp_flags = sc->h.tcp_flags;
	ev->host_role = sc->h.host_role;
	ev->encrypted = sc->h.encrypted;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	ev->ack = 0;
	return now;
}

static __always_inline int ph_ftp_emit(struct ph_ftp_scratch *sc,
				       int with_expect, int with_od)
{
	struct ph_event *ev;

	ev = bpf_ringbuf_reserve(&events, PH_EV_HDR_LEN + sizeof(sc->od), 0);
	if (!ev) {
		PH_FTP_STAT(events_lost);
		return -1;
	}
	ph_ftp_ev_head(sc, ev, &sc->in.key);
	if (with_expect)
		__builtin_memcpy(&ev->expect, &sc->in.expect,
				 sizeof(ev->expect));
	if (with_od) {
		__builtin_memcpy(ev->data, &sc->od, sizeof(sc->od));
		ev->caplen = sizeof(sc->od);
	} else {
		__builtin_memset(ev->data, 0, sizeof(sc->od));
	}
	bpf_ringbuf_submit(ev, 0);
	PH_FTP_STAT(events);
	return 0;
}

/* EXPECT_USED for the pinhole in sc->in. Global: verified once. */
__attribute__((noinline)) int ph_ftp_used(__u32 dir)
{
	__u32 idx = dir & 1;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);

	if (!sc)
		return 0;
	__builtin_memset(&sc->h, 0, sizeof(sc->h));
	sc->h.type = PH_EV_EXPECT_USED;
	sc->h.dir = dir & 1;
	sc->h.session = sc->in.fi.session;
	return ph_ftp_emit(sc, 1, 0);
}

/* A pinhole admitted its data connection (@k, the SYN's own key). */
static __always_inline void ph_ftp_expect_used(const struct ph_flow_key *ek,
					       const struct ph_flow_key *k,
					       __u32 session, int dir)
{
	__u32 idx = dir;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);

	if (!sc)
		return;
	__builtin_memcpy(&sc->in.key, k, sizeof(*k));
	__builtin_memcpy(&sc->in.expect, ek, sizeof(*ek));
	sc->in.fi.session = session;
	ph_ftp_used(dir);
}

/* ---------------------------------------------------------------------- */
/* Pinholes                                                                */
/* ---------------------------------------------------------------------- */

/* Deletes @key from expect if it still belongs to @session (the tracker
 * may have reused the key for another session meanwhile). */
static __always_inline void ph_ftp_unhole(const struct ph_flow_key *key,
					  __u32 session)
{
	struct ph_expect *e = bpf_map_lookup_elem(&expect, key);

	if (e && e->session == session)
		bpf_map_delete_elem(&expect, key);
}

static __always_inline __u64 ph_ftp_ttl_ns(void)
{
	struct ph_policy pol;
	__u32 ms = 0;

	if (!ph_policy_get(&pol))
		ms = pol.meta->ftp_ttl_ms;
	if (!ms)
		ms = PH_FTP_TTL_DEFAULT_MS;
	return (__u64)ms * 1000000ull;
}

/* ---------------------------------------------------------------------- */
/* FTPS control sessions (ftps_peers)                                      */
/*                                                                        */
/* One count per FTPS control connection, for its {peer, local address}:  */
/* taken when the connection becomes FTPS (implicit: handshake completed;  */
/* explicit: 234 after AUTH), given back when its ftp_ctrl entry goes. The */
/* session's ftp_ctrl entry holds the token (ph_ftp_ctrl.ftps, under its   */
/* lock), so a count is given back exactly once; a session without an     */
/* ftp_ctrl entry is never counted. The flow carries PH_FF_FTPS_COUNTED    */
/* for the tracker, which recomputes the counts from the flow table.       */
/* ---------------------------------------------------------------------- */

static __always_inline void ph_ftps_key(struct ph_ftps_peer_key *pk,
					const struct ph_flow_key *k)
{
	__builtin_memcpy(pk->remote, k->remote, sizeof(pk->remote));
	__builtin_memcpy(pk->local, k->local, sizeof(pk->local));
}

/* One more FTPS control connection for the pair of @k. Returns 0, or -1
 * if ftps_peers is full (the session stays uncounted: fails closed). */
static __always_inline int ph_ftps_ref(const struct ph_flow_key *k)
{
	struct ph_ftps_peer nv = { .refs = 1 }, *v;
	struct ph_ftps_peer_key pk;

	ph_ftps_key(&pk, k);
	nv.last_ns = ph_now();
	v = bpf_map_lookup_elem(&ftps_peers, &pk);
	if (!v) {
		if (!bpf_map_update_elem(&ftps_peers, &pk, &nv, BPF_NOEXIST)) {
			PH_FTP_STAT(ftps_counted);
			return 0;
		}
		/* Another CPU inserted it meanwhile, or the table is full. */
		v = bpf_map_lookup_elem(&ftps_peers, &pk);
		if (!v) {
			PH_FTP_STAT(ftps_full);
			return -1;
		}
	}
	bpf_spin_lock(&v->lock);
	v->refs++;
	v->last_ns = nv.last_ns;
	bpf_spin_unlock(&v->lock);
	PH_FTP_STAT(ftps_counted);
	return 0;
}

/* Gives back one count of the pair of @k. Never below 0 (the tracker may
 * have corrected the entry meanwhile); the entry goes at 0, so the table
 * holds live pairs only even without a tracker. */
static __always_inline void ph_ftps_unref(const struct ph_flow_key *k)
{
	struct ph_ftps_peer_key pk;
	struct ph_ftps_peer *v;
	__u64 now = ph_now();
	__u32 left = 1;

	ph_ftps_key(&pk, k);
	v = bpf_map_lookup_elem(&ftps_peers, &pk);
	if (!v)
		return;
	bpf_spin_lock(&v->lock);
	if (v->refs)
		v->refs--;
	left = v->refs;
	v->last_ns = now;
	bpf_spin_unlock(&v->lock);
	PH_FTP_STAT(ftps_released);
	/* A count another CPU takes between here and the delete is lost
	 * with the entry: that session's data connections are refused until
	 * the tracker's next correction (fails closed). */
	if (!left && !*(volatile __u32 *)&v->refs)
		bpf_map_delete_elem(&ftps_peers, &pk);
}

/* Marks or unmarks the flow of @k as counted (for the tracker). */
static __always_inline void ph_ftps_flow_mark(const struct ph_flow_key *k,
					      int counted)
{
	struct ph_flow *f = bpf_map_lookup_elem(&flows, k);

	if (!f)
		return;
	if (counted)
		f->flags |= PH_FF_FTPS_COUNTED;
	else
		f->flags &= ~PH_FF_FTPS_COUNTED;
}

/* ---------------------------------------------------------------------- */
/* Argument parsers (user/ftp.c's, bounded; never more permissive)         */
/*                                                                        */
/* Their loop state lives in the scratch (sc->num) and is read with        */
/* volatile loads: the verifier tracks no values in map memory, so the     */
/* paths through a loop body meet at the next iteration. Kept in           */
/* registers, digit counts and partial values would make every             */
/* combination a distinct verifier state.                                 */
/* ---------------------------------------------------------------------- */

#define PH_D(o) (d[(o) & PH_CAP_MASK])
#define PH_M(f) (*(volatile __typeof__(sc->num.f) *)&sc->num.f)

static __always_inline int ph_isdigit(__u8 c)
{
	return (__u8)(c - '0') < 10;
}

/* The control connection's client / server address (host-oriented key). */
static __always_inline const __u8 *ph_ftp_client_addr(struct ph_ftp_scratch *sc)
{
	return sc->ev.host_role == PH_ROLE_SERVER ? sc->ev.key.remote :
						    sc->ev.key.local;
}

static __always_inline const __u8 *ph_ftp_server_addr(struct ph_ftp_scratch *sc)
{
	return sc->ev.host_role == PH_ROLE_SERVER ? sc->ev.key.local :
						    sc->ev.key.remote;
}

static __always_inline __u32 ph_ftp_v4_of(const __u8 *a)
{
	return (__u32)a[12] << 24 | (__u32)a[13] << 16 | (__u32)a[14] << 8 |
	       a[15];
}

/*
 * Is sc->nat_a one of the nat-address entries of the control connection's
 * service (ftp_nat, pinhole.h)? The service is the ftp-track rule on its
 * control port in the policy in force: in on a server, out on a client.
 * Global: verified once; reached only when an announced address is not
 * the local one.
 */
static __always_inline int ph_ftp_nat_has(__u32 dir)
{
	__u32 idx = dir & 1, i;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	struct ph_policy pol;
	struct ph_ftp_nat *n;
	struct ph_rule *r;
	const __u64 *a, *b;
	int v, server;

	/* Inlined, with its map key in the scratch: a call level of its own
	 * made the deepest FTP call chain exceed 512 bytes of combined stack
	 * on 6.1 (each frame counts at least 32). */
	if (!sc || ph_policy_get(&pol))
		return 0;
	server = sc->ev.host_role == PH_ROLE_SERVER;
	v = ph_port_rule(&pol, PH_L4_TCP,
			 server ? PH_PT_IN_DPORT : PH_PT_OUT_DPORT,
			 server ? sc->ev.key.lport : sc->ev.key.rport);
	if (v <= 0 || v > PH_MAX_RULES)
		return 0;
	idx = pol.slot * PH_MAX_RULES + (__u32)(v - 1);
	r = bpf_map_lookup_elem(&rules, &idx);
	if (!r || !(r->flags & PH_RF_FTP_TRACK))
		return 0;
	__builtin_memset(&sc->nat_nk, 0, sizeof(sc->nat_nk));
	sc->nat_nk.slot = pol.slot;
	sc->nat_nk.service = r->service;
	n = bpf_map_lookup_elem(&ftp_nat, &sc->nat_nk);
	if (!n)
		return 0;
	a = (const __u64 *)sc->nat_a;
#pragma clang loop unroll(disable)
	for (i = 0; i < PH_NAT_ADDRS_MAX; i++) {
		if (i >= n->n)
			break;
		b = (const __u64 *)n->addr[i];
		if (a[0] == b[0] && a[1] == b[1])
			return 1;
	}
	return 0;
}

/* Is the address the control channel names (@want: the host-oriented
 * key's side it must equal) allowed to differ from it? Only this host's
 * own address may: then it may be one of the service's nat-address. */
static __always_inline int ph_ftp_is_local(struct ph_ftp_scratch *sc,
					   const __u8 *want)
{
	return want == sc->ev.key.local;
}

/* An announced IPv4 address @a (host order) that is not the local one. */
static __always_inline int ph_ftp_nat_v4(struct ph_ftp_scratch *sc, __u32 a)
{
	__builtin_memset(sc->nat_a, 0, 10);
	sc->nat_a[10] = 0xff;
	sc->nat_a[11] = 0xff;
	sc->nat_a[12] = a >> 24;
	sc->nat_a[13] = a >> 16;
	sc->nat_a[14] = a >> 8;
	sc->nat_a[15] = a;
	return ph_ftp_nat_has(sc->ev.dir);
}

/*
 * h1,h2,h3,h4,p1,p2 from offset @o: six numbers of 1-3 digits, 0-255,
 * separated by single commas. After the sixth: PORT (@tail_spaces) allows
 * only spaces up to @e, a 227 anything but another comma. Returns 0 with
 * the numbers in num.acc (h1 highest), or -1 if malformed.
 */
static __always_inline int ph_ftp_h6(struct ph_ftp_scratch *sc, const __u8 *d,
				     __u32 o, __u32 e, int tail_spaces)
{
	__u32 i, x;
	__u8 ch;

	PH_M(acc) = 0;
	PH_M(v) = 0;
	PH_M(nd) = 0;
	PH_M(field) = 0;
	PH_M(done) = 0;
	PH_M(ok) = 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < PH_FTP_H6_MAX; i++) {
		x = o + i;
		if (x >= e) {
			PH_M(ok) = 1;
			break;
		}
		ch = PH_D(x);
		if (PH_M(done)) {
			if (ch != ' ')
				return -1;
			continue;
		}
		if (ph_isdigit(ch)) {
			if (PH_M(nd) >= 3)
				return -1;
			PH_M(v) = PH_M(v) * 10 + (ch - '0');
			PH_M(nd) = PH_M(nd) + 1;
			continue;
		}
		if (!PH_M(nd) || PH_M(v) > 255)
			return -1;
		PH_M(acc) = PH_M(acc) << 8 | PH_M(v);
		PH_M(v) = 0;
		PH_M(nd) = 0;
		if (PH_M(field) < 5) {
			if (ch != ',')
				return -1;
			PH_M(field) = PH_M(field) + 1;
			continue;
		}
		/* the sixth number ended at ch */
		if (ch == ',')
			return -1;
		PH_M(field) = 6;
		if (!tail_spaces)
			return 0;
		if (ch != ' ')
			return -1;
		PH_M(done) = 1;
	}
	if (!PH_M(ok))
		return -1; /* longer than we look at */
	if (PH_M(field) == 6)
		return 0;
	if (PH_M(field) != 5 || !PH_M(nd) || PH_M(v) > 255)
		return -1;
	PH_M(acc) = PH_M(acc) << 8 | PH_M(v);
	return 0;
}

/* A dotted quad filling [o, e) exactly: 0 with it in num.acc, or -1. */
static __always_inline int ph_ftp_v4(struct ph_ftp_scratch *sc, const __u8 *d,
				     __u32 o, __u32 e)
{
	__u32 i, x;
	__u8 ch;

	PH_M(acc) = 0;
	PH_M(v) = 0;
	PH_M(nd) = 0;
	PH_M(field) = 0;
	PH_M(ok) = 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < 16; i++) {
		x = o + i;
		if (x >= e) {
			PH_M(ok) = 1;
			break;
		}
		ch = PH_D(x);
		if (ph_isdigit(ch)) {
			if (PH_M(nd) >= 3)
				return -1;
			PH_M(v) = PH_M(v) * 10 + (ch - '0');
			PH_M(nd) = PH_M(nd) + 1;
			continue;
		}
		if (ch != '.' || !PH_M(nd) || PH_M(v) > 255 ||
		    PH_M(field) >= 3)
			return -1;
		PH_M(acc) = PH_M(acc) << 8 | PH_M(v);
		PH_M(field) = PH_M(field) + 1;
		PH_M(v) = 0;
		PH_M(nd) = 0;
	}
	if (!PH_M(ok) || PH_M(field) != 3 || !PH_M(nd) || PH_M(v) > 255)
		return -1;
	PH_M(acc) = PH_M(acc) << 8 | PH_M(v);
	return 0;
}

/* A port filling [o, e): 1-5 digits, 1-65535; 0 if malformed. */
static __always_inline __u32 ph_ftp_port_field(const __u8 *d, __u32 o,
					       __u32 e)
{
	__u32 i, v = 0, x;
	__u8 ch;

	if (o >= e || e - o > 5)
		return 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < 5; i++) {
		x = o + i;
		if (x >= e)
			break;
		ch = PH_D(x);
		if (!ph_isdigit(ch))
			return 0;
		v = v * 10 + (ch - '0');
	}
	return v <= 65535 ? v : 0;
}

static __always_inline int ph_hexval(__u8 c)
{
	if (ph_isdigit(c))
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * An IPv6 address filling [o, e), as glibc's inet_pton(AF_INET6) reads it
 * but without the dotted IPv4 tail (left to the tracker): 1 if it is
 * @want, 2 if it is another address (then in sc->nat_a), 0 if malformed.
 */
static __always_inline int ph_ftp_v6_is(struct ph_ftp_scratch *sc,
					const __u8 *d, __u32 o, __u32 e,
					const __u8 *want)
{
	__u32 i, x, ng, colon, z, g, have, w;
	int h;
	__u8 ch;

	if (o >= e || e - o >= 46)
		return 0;
	PH_M(pos) = o;
	if (PH_D(o) == ':') {
		/* a leading ':' only as "::" (it then reads as one ':') */
		if (o + 1 >= e || PH_D(o + 1) != ':')
			return 0;
		PH_M(pos) = o + 1;
	}
	o = PH_M(pos);
	PH_M(ng) = 0;
	PH_M(colon) = 8;
	PH_M(nd) = 0; /* hex digits of the group */
	PH_M(v) = 0;
	PH_M(ok) = 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < 46; i++) {
		x = o + i;
		if (x >= e) {
			PH_M(ok) = 1;
			break;
		}
		ch = PH_D(x);
		h = ph_hexval(ch);
		if (h >= 0) {
			if (PH_M(nd) >= 4)
				return 0;
			PH_M(v) = PH_M(v) << 4 | h;
			PH_M(nd) = PH_M(nd) + 1;
			continue;
		}
		if (ch != ':')
			return 0;
		if (!PH_M(nd)) {
			if (PH_M(colon) != 8)
				return 0;
			PH_M(colon) = PH_M(ng);
			continue;
		}
		if (x + 1 == e || PH_M(ng) >= 8)
			return 0;
		sc->grp[PH_M(ng) & 7] = PH_M(v);
		PH_M(ng) = PH_M(ng) + 1;
		PH_M(nd) = 0;
		PH_M(v) = 0;
	}
	if (!PH_M(ok))
		return 0;
	if (PH_M(nd)) {
		if (PH_M(ng) >= 8)
			return 0;
		sc->grp[PH_M(ng) & 7] = PH_M(v);
		PH_M(ng) = PH_M(ng) + 1;
	}
	ng = PH_M(ng);
	colon = PH_M(colon);
	if (colon != 8 ? ng >= 8 : ng != 8)
		return 0;
	PH_M(field) = 8 - ng; /* zero groups "::" stands for */
#pragma clang loop unroll(disable)
	for (g = 0; g < 8; g++) {
		colon = PH_M(colon);
		z = PH_M(field);
		if (g < colon)
			have = sc->grp[g & 7];
		else if (g < colon + z)
			have = 0;
		else
			have = sc->grp[(g - z) & 7];
		w = (__u32)want[(2 * g) & 15] << 8 | want[(2 * g + 1) & 15];
		sc->nat_a[(2 * g) & 15] = have >> 8;
		sc->nat_a[(2 * g + 1) & 15] = have;
		if (have != w)
			PH_M(ok) = 2;
	}
	return PH_M(ok) == 2 ? 2 : 1;
}

/* user/ftp.c's check_dport() once the numbers parsed. */
static __always_inline __u32 ph_ftp_check(struct ph_ftp_scratch *sc,
					  __u32 port, int family)
{
	if (!port || family != sc->family || port < PH_FTP_MIN_DATA_PORT)
		return 0;
	return port;
}

/*
 * PORT h1,h2,h3,h4,p1,p2 [spaces] (argument from @o), or 227 <text>h1,h2,
 * h3,h4,p1,p2<text> (text from @o: the numbers start at its first digit,
 * which must not follow a sign). One copy of the six-number loop for both.
 */
static __always_inline __u32 ph_ftp_parse_h6(struct ph_ftp_scratch *sc,
					     const __u8 *d, __u32 o, __u32 e,
					     int is_port)
{
	const __u8 *want;
	__u32 i, x;
	__u8 prev, ch;
	__u64 v;

	if (!is_port) {
		PH_M(pos) = e;
		PH_M(prev) = 0;
#pragma clang loop unroll(disable)
		for (i = 0; i < PH_FTP_SEEK_MAX; i++) {
			x = o + i;
			if (x >= e)
				break;
			ch = PH_D(x);
			if (ph_isdigit(ch)) {
				PH_M(pos) = x;
				break;
			}
			PH_M(prev) = ch;
		}
		x = PH_M(pos);
		prev = PH_M(prev);
		if (x >= e || (x > o && (prev == '-' || prev == '+')))
			return 0;
		o = x;
	}
	if (o >= e || ph_ftp_h6(sc, d, o, e, is_port))
		return 0;
	v = PH_M(acc);
	want = is_port ? ph_ftp_client_addr(sc) : ph_ftp_server_addr(sc);
	/* PORT: no bounce; 227: no third party; this host's own address may
	 * be its nat-address */
	if ((__u32)(v >> 16) != ph_ftp_v4_of(want) &&
	    !(ph_ftp_is_local(sc, want) && ph_ftp_nat_v4(sc, v >> 16)))
		return 0;
	return ph_ftp_check(sc, PH_M(acc) & 0xffff, 4);
}

/* 229 <text>(<d><d><d>port<d>)<text> */
static __always_inline __u32 ph_ftp_parse_229(struct ph_ftp_scratch *sc,
					      const __u8 *d, __u32 t, __u32 e)
{
	__u32 i, x, p, v = 0, nd = 0;
	__u8 dl, ch;

	PH_M(pos) = e;
#pragma clang loop unroll(disable)
	for (i = 0; i < PH_FTP_SEEK_MAX; i++) {
		x = t + i;
		if (x >= e)
			break;
		if (PH_D(x) == '(') {
			PH_M(pos) = x;
			break;
		}
	}
	p = PH_M(pos);
	if (p >= e || e - p < 6)
		return 0;
	dl = PH_D(p + 1);
	if (dl < 33 || dl > 126 || PH_D(p + 2) != dl || PH_D(p + 3) != dl)
		return 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < 6; i++) {
		x = p + 4 + i;
		if (x >= e)
			return 0;
		ch = PH_D(x);
		if (ch == dl)
			break;
		if (!ph_isdigit(ch) || nd == 5)
			return 0;
		v = v * 10 + (ch - '0');
		nd++;
	}
	if (i == 6 || !nd || v > 65535 || x + 1 >= e || PH_D(x + 1) != ')')
		return 0;
	return ph_ftp_check(sc, v, sc->family);
}

/* EPRT <d>af<d>addr<d>port<d> [spaces]: the argument is [a, e). One pass
 * finds the delimiters and the trailing spaces. */
static __always_inline __u32 ph_ftp_parse_eprt(struct ph_ftp_scratch *sc,
					       const __u8 *d, __u32 a, __u32 e)
{
	__u32 i, x, f1, f2, f3, port, c;
	const __u8 *want;
	__u8 dl, af, ch;

	if (a >= e)
		return 0;
	dl = PH_D(a);
	if (dl < 33 || dl > 126)
		return 0; /* also a leading space: all-space arguments fail */
	PH_M(nd) = 0;  /* delimiters after the first */
	PH_M(pos) = a; /* the last byte that is not a space */
	PH_M(ok) = 0;
#pragma clang loop unroll(disable)
	for (i = 1; i < PH_FTP_SEEK_MAX; i++) {
		x = a + i;
		if (x >= e) {
			PH_M(ok) = 1;
			break;
		}
		ch = PH_D(x);
		if (ch != ' ')
			PH_M(pos) = x;
		if (ch != dl)
			continue;
		c = PH_M(nd);
		if (c == 0)
			PH_M(f1) = x;
		else if (c == 1)
			PH_M(f2) = x;
		else if (c == 2)
			PH_M(f3) = x;
		PH_M(nd) = c + 1;
	}
	f1 = PH_M(f1);
	f2 = PH_M(f2);
	f3 = PH_M(f3);
	/* Exactly three more delimiters, the last one ending the argument
	 * once trailing spaces are trimmed. */
	if (!PH_M(ok) || PH_M(nd) != 3 || f3 != PH_M(pos) || f1 != a + 2)
		return 0;
	port = ph_ftp_port_field(d, f2 + 1, f3);
	af = PH_D(a + 1);
	want = ph_ftp_client_addr(sc);
	if (af == '1') {
		if (ph_ftp_v4(sc, d, f1 + 1, f2))
			return 0; /* malformed */
		if ((__u32)PH_M(acc) != ph_ftp_v4_of(want) &&
		    !(ph_ftp_is_local(sc, want) &&
		      ph_ftp_nat_v4(sc, (__u32)PH_M(acc))))
			return 0; /* bounce */
		return ph_ftp_check(sc, port, 4);
	}
	if (af == '2') {
		c = ph_ftp_v6_is(sc, d, f1 + 1, f2, want);
		if (!c)
			return 0; /* malformed, or a dotted tail */
		if (c != 1 && !(ph_ftp_is_local(sc, want) &&
				ph_ftp_nat_has(sc->ev.dir)))
			return 0; /* bounce */
		return ph_ftp_check(sc, port, 6);
	}
	return 0;
}

/*
 * The data port the line [start, start + len) of the current record
 * announces, if user/ftp.c would accept it: checked against the control
 * connection's addresses (no bounce, no third party), family and port
 * (>= 1024). 0: refused, or not parsed here.
 */
static __always_inline __u32 ph_ftp_dport(struct ph_ftp_scratch *sc,
					  __u32 kind, __u32 start, __u32 len)
{
	__u32 e = start + len;
	const __u8 *d = sc->ev.data;

	if (start >= PH_CTRL_CAP || len > PH_FTP_FAST_LINE || e > PH_CTRL_CAP)
		return 0;
	if (kind == PH_FK_PORT || kind == PH_FK_227)
		return ph_ftp_parse_h6(sc, d,
				       start + (kind == PH_FK_PORT ?
							(len < 5 ? len : 5) :
							(len < 4 ? len : 4)),
				       e, kind == PH_FK_PORT);
	if (kind == PH_FK_EPRT)
		return ph_ftp_parse_eprt(sc, d, start + (len < 5 ? len : 5), e);
	if (kind == PH_FK_229)
		return ph_ftp_parse_229(sc, d, start + (len < 4 ? len : 4), e);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Lines: user/ftp.c's client_line / server_line / final_reply / decide   */
/* ---------------------------------------------------------------------- */

#define PH_LE4(a, b, c, d)                                                     \
	((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)

static __always_inline __u8 ph_hb(__u64 head, __u32 i)
{
	return head >> (8 * i);
}

/* The pending pinhole goes: the one decided in this record, or the one
 * installed earlier. */
static __always_inline void ph_ftp_revoke(struct ph_ftp_scratch *sc)
{
	sc->loud = 1;
	sc->cand_ok = 0;
	if (sc->ps.flags & PH_FTPC_PINHOLE) {
		sc->ps.flags &= ~PH_FTPC_PINHOLE;
		sc->revoke = 1;
	}
	sc->ps.last_cmd_opened = 0;
}

/* A data-port line from @side; @port non-zero: accepted. */
static __always_inline void ph_ftp_decide(struct ph_ftp_scratch *sc, int side,
					  int replaces, __u32 port)
{
	struct ph_ftp_stream_bpf *st = &sc->ps.st[side & 1];
	/* The announced port is on this host: the SYN comes in. */
	int local = (sc->ev.host_role == PH_ROLE_SERVER) ==
		    (side == PH_SIDE_SERVER);

	if (st->burst >= PH_FTP_BURST_MAX) {
		if (st->burst == PH_FTP_BURST_MAX) {
			ph_ftp_revoke(sc);
			st->burst++;
		}
		return;
	}
	st->burst++;
	if (replaces)
		ph_ftp_revoke(sc);
	if (!port)
		return;
	__builtin_memcpy(sc->cand.local, sc->ev.key.local, 16);
	__builtin_memcpy(sc->cand.remote, sc->ev.key.remote, 16);
	sc->cand.lport = local ? bpf_htons(port) : 0;
	sc->cand.rport = local ? 0 : bpf_htons(port);
	sc->cand.proto = IPPROTO_TCP;
	sc->cand.pad[0] = 0;
	sc->cand.pad[1] = 0;
	sc->cand.pad[2] = 0;
	sc->cand_dir = local ? PH_DIR_IN : PH_DIR_OUT;
	sc->cand_ok = 1;
	if (side == PH_SIDE_CLIENT)
		sc->ps.last_cmd_opened = 1;
}

/* What a data-port line asks of ph_ftp_line(): parse @kind (0: nothing to
 * parse, refused), then decide for @side. */
static __always_inline void ph_ftp_want(struct ph_ftp_scratch *sc, __u8 kind,
					__u8 side, __u8 replaces)
{
	sc->want = 1;
	sc->want_kind = kind;
	sc->want_side = side;
	sc->want_replaces = replaces;
}

/* All of [5, len) spaces (PASV's argument, len <= 8). */
static __always_inline int ph_spaces_from5(__u64 head, __u32 len)
{
	__u32 i;

#pragma unroll
	for (i = 5; i < 8; i++)
		if (i < len && ph_hb(head, i) != ' ')
			return 0;
	return 1;
}

/* Client line @len bytes long (CR LF excluded), first bytes in @head. */
static __always_inline int ph_ftp_client_line(struct ph_ftp_scratch *sc,
					      __u64 head, __u32 len,
					      __u32 start)
{
	struct ph_ftp_parse *s = &sc->ps;
	__u32 verb = (__u32)head | 0x20202020, e;
	__u8 cmd = PH_FTPC_CMD_OTHER, a, kind;

	if (s->awaiting && s->last_cmd == PH_FTPC_CMD_AUTH) {
		sc->loud = 1; /* reported as it is: the tracker is deaf too */
		return PH_LINE_GO; /* deaf until AUTH is answered */
	}
	s->awaiting = 1;
	s->last_cmd_opened = 0;
	s->epsv_bad_family = 0;
	if (len >= 4 && (len == 4 || ph_hb(head, 4) == ' ')) {
		if (verb == PH_LE4('p', 'o', 'r', 't'))
			cmd = PH_FTPC_CMD_PORT;
		else if (verb == PH_LE4('e', 'p', 'r', 't'))
			cmd = PH_FTPC_CMD_EPRT;
		else if (verb == PH_LE4('p', 'a', 's', 'v'))
			cmd = PH_FTPC_CMD_PASV;
		else if (verb == PH_LE4('e', 'p', 's', 'v'))
			cmd = PH_FTPC_CMD_EPSV;
		else if (verb == PH_LE4('a', 'u', 't', 'h'))
			cmd = PH_FTPC_CMD_AUTH;
	}
	if (cmd == PH_FTPC_CMD_PORT || cmd == PH_FTPC_CMD_EPRT) {
		s->last_cmd = cmd;
		kind = cmd == PH_FTPC_CMD_PORT ? PH_FK_PORT : PH_FK_EPRT;
		if (len > PH_FTP_FAST_LINE || start == PH_FTP_NO_START)
			kind = 0; /* refused as is: too long, or split */
		ph_ftp_want(sc, kind, PH_SIDE_CLIENT, 1);
		return PH_LINE_GO;
	}
	if ((cmd == PH_FTPC_CMD_PASV || cmd == PH_FTPC_CMD_EPSV) && len > 8) {
		/* An argument we cannot see whole ("PASV" + spaces?): be
		 * neither looser nor stricter than the tracker: stop. */
		s->last_cmd = PH_FTPC_CMD_OTHER;
		sc->desync = 1;
		return PH_LINE_STOP;
	}
	if (cmd == PH_FTPC_CMD_PASV && !ph_spaces_from5(head, len))
		cmd = PH_FTPC_CMD_OTHER;
	if (cmd == PH_FTPC_CMD_EPSV) {
		e = len; /* the argument is [5, e) after trimming spaces */
		if (e > 5 && ph_hb(head, e - 1) == ' ')
			e--;
		if (e > 5 && ph_hb(head, e - 1) == ' ')
			e--;
		if (e > 5 && ph_hb(head, e - 1) == ' ')
			e--;
		a = ph_hb(head, 5);
		if (e == 6 && (a == '1' || a == '2'))
			s->epsv_bad_family = (a == '1') != (sc->family == 4);
		else if (e > 5)
			cmd = PH_FTPC_CMD_OTHER; /* EPSV ALL, or garbage */
	}
	s->last_cmd = cmd;
	/* Any other command only makes it the one awaiting a reply, which
	 * a SYNC tells the tracker (struct ph_ctrl_sync). */
	if (cmd != PH_FTPC_CMD_OTHER)
		sc->loud = 1;
	return PH_LINE_GO;
}

/* A final reply (2xx-5xx), or the last line of a multi-line one. */
static __always_inline int ph_ftp_final(struct ph_ftp_scratch *sc, __u32 code,
					int multiline, __u32 len, __u32 start)
{
	struct ph_ftp_parse *s = &sc->ps;
	__u8 was = s->awaiting, cmd = s->last_cmd, kind = 0;

	/* 227, 229 and 234 can open or close something; so can a 4xx/5xx
	 * answering the PORT/EPRT that opened the pending pinhole. */
	if (code == 227 || code == 229 || code == 234 ||
	    (was && (cmd == PH_FTPC_CMD_PORT || cmd == PH_FTPC_CMD_EPRT) &&
	     code >= 400 && s->last_cmd_opened))
		sc->loud = 1;
	if (code == 234) {
		/* AUTH accepted: from here on the channel may be TLS. */
		ph_ftp_revoke(sc);
		s->flags |= PH_FTPC_ENCRYPTED;
		return PH_LINE_STOP;
	}
	s->awaiting = 0;
	if (was && (cmd == PH_FTPC_CMD_PORT || cmd == PH_FTPC_CMD_EPRT) &&
	    code >= 400 && s->last_cmd_opened)
		ph_ftp_revoke(sc);
	if (code != 227 && code != 229)
		return PH_LINE_GO;
	if (!was || (cmd == PH_FTPC_CMD_PASV) != (code == 227) ||
	    (cmd != PH_FTPC_CMD_PASV && cmd != PH_FTPC_CMD_EPSV)) {
		ph_ftp_want(sc, 0, PH_SIDE_SERVER, 0); /* unsolicited */
		return PH_LINE_GO;
	}
	if (!multiline && len <= PH_FTP_FAST_LINE &&
	    start != PH_FTP_NO_START && !(code == 229 && s->epsv_bad_family))
		kind = code == 227 ? PH_FK_227 : PH_FK_229;
	ph_ftp_want(sc, kind, PH_SIDE_SERVER, 1);
	return PH_LINE_GO;
}

static __always_inline int ph_ftp_server_line(struct ph_ftp_scratch *sc,
					      __u64 head, __u32 len,
					      __u32 start)
{
	struct ph_ftp_parse *s = &sc->ps;
	__u8 b0 = ph_hb(head, 0), b1 = ph_hb(head, 1), b2 = ph_hb(head, 2);
	__u8 b3 = ph_hb(head, 3);
	__u32 code;
	int cont;

	if (len < 3 || b0 < '1' || b0 > '5' || !ph_isdigit(b1) ||
	    !ph_isdigit(b2) || (len > 3 && b3 != ' ' && b3 != '-'))
		return PH_LINE_GO; /* reply text */
	code = (b0 - '0') * 100 + (b1 - '0') * 10 + (b2 - '0');
	cont = len > 3 && b3 == '-';
	if (s->in_multiline) {
		if (code != s->ml_code || cont)
			return PH_LINE_GO;
		s->in_multiline = 0;
		if (code >= 200)
			return ph_ftp_final(sc, code, 1, len, start);
		return PH_LINE_GO;
	}
	if (cont) {
		s->in_multiline = 1;
		s->ml_code = code;
		return PH_LINE_GO;
	}
	if (code >= 200)
		return ph_ftp_final(sc, code, 0, len, start);
	return PH_LINE_GO;
}

/*
 * The line of the current record's direction that ends at offset @end
 * (its LF). Its length (CR LF excluded) and first 8 bytes are in the
 * stream state, its start in sc->line_start: PH_FTP_NO_START if it began
 * in an earlier record, and then its arguments are unknown, so nothing
 * opens (the tracker does it). Global: verified once, not per byte.
 */
__attribute__((noinline)) int ph_ftp_line(__u32 dir, __u32 end)
{
	__u32 idx = dir & 1, len, start, port = 0;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	struct ph_ftp_stream_bpf *st;
	__u64 head;
	__u8 skip;
	int r;

	if (!sc)
		return PH_LINE_STOP;
	st = &sc->ps.st[sc->ev.from_client & 1];
	head = st->head;
	len = st->line_len - st->cr;
	start = sc->line_start;
	st->head = 0;
	st->line_len = 0;
	st->cr = 0;
	sc->line_start = end + 1;
	sc->want = 0;
	skip = sc->ev.from_client ? PH_FTPC_SKIP_CLIENT : PH_FTPC_SKIP_SERVER;
	if (sc->ps.flags & skip) {
		/* The first line after a gap: it may have begun in it. */
		sc->ps.flags &= ~skip;
		return PH_LINE_GO;
	}
	if (sc->ev.from_client) {
		sc->ps.st[PH_SIDE_SERVER].burst = 0;
		r = ph_ftp_client_line(sc, head, len, start);
	} else {
		sc->ps.st[PH_SIDE_CLIENT].burst = 0;
		r = ph_ftp_server_line(sc, head, len, start);
	}
	if (r != PH_LINE_GO)
		sc->scan_n = 0; /* ends the scan of this record */
	if (!sc->want)
		return r;
	sc->loud = 1; /* a data-port line: reported */
	/* One place for the argument parsers: they are the bulk of what
	 * the verifier walks here. */
	if (sc->want_kind)
		port = ph_ftp_dport(sc, sc->want_kind, start, len);
	ph_ftp_decide(sc, sc->want_side, sc->want_replaces, port);
	return r;
}

/* ---------------------------------------------------------------------- */
/* Records                                                                 */
/* ---------------------------------------------------------------------- */

/* One byte of a line (not its LF) into the stream state. Branch-free:
 * the first 8 bytes go to head, the length saturates, cr notes a CR. */
static __always_inline void ph_ftp_byte(struct ph_ftp_stream_bpf *st, __u8 ch)
{
	__u64 len = st->line_len;

	st->head |= ((__u64)ch * ((len - 8ull) >> 63)) << ((len & 7) * 8);
	st->line_len = len + ((len - (__u64)PH_FTP_LEN_SAT) >> 63);
	st->cr = ((__u64)(ch ^ '\r') - 1) >> 63;
}

/*
 * Bytes [8 w, 8 w + 8) of the record, one by one, those in the scan's
 * range only: a word holding a LF, or the scan's first or last. Inlined:
 * as a global function it made the chain pinhole_xdp > parse_record >
 * word > line one frame too deep for 6.1's 512 bytes (docs/kernels.md).
 */
static __always_inline int ph_ftp_word(__u32 dir, __u32 w)
{
	__u32 idx = dir & 1, k, i;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	struct ph_ftp_stream_bpf *st;
	__u8 ch;

	if (!sc)
		return 0;
	st = &sc->ps.st[sc->ev.from_client & 1];
#pragma clang loop unroll(disable)
	for (k = 0; k < 8; k++) {
		i = (w * 8 + k) & PH_CAP_MASK;
		if (i < *(volatile __u32 *)&sc->scan_from)
			continue;
		if (i >= *(volatile __u32 *)&sc->scan_n)
			break;
		ch = sc->ev.data[i];
		if (ch == '\n')
			ph_ftp_line(dir, i); /* STOP ends the scan: scan_n */
		else
			ph_ftp_byte(st, ch);
	}
	return 0;
}

/* A byte of @x is a LF (the classic "has zero byte" test on x ^ LFs). */
static __always_inline __u64 ph_has_lf(__u64 x)
{
	__u64 y = x ^ 0x0a0a0a0a0a0a0a0aull;

	return (y - 0x0101010101010101ull) & ~y & 0x8080808080808080ull;
}

/*
 * Scans the new bytes of the record in sc->ev, line by line, a word of 8
 * bytes at a time: a word inside the scan's range without a LF only
 * extends the current line (head, length, cr in a few operations); the
 * others go byte by byte through ph_ftp_word(). The line state lives in
 * the map value, and the loop bounds are read afresh in every iteration:
 * the verifier tracks no values in map memory, so the paths through the
 * body meet again at the next iteration.
 */
static __always_inline void ph_ftp_scan(struct ph_ftp_scratch *sc, __u32 dir)
{
	/* An index, not a branch: one verifier state for either side. */
	struct ph_ftp_stream_bpf *st = &sc->ps.st[sc->ev.from_client & 1];
	__u32 from = st->nxt - sc->ev.seq, w, b, nz;
	__u64 x, len, over;

	if ((__s32)from < 0) {
		/* Ahead of the stream (out of order, or after bytes never
		 * seen): not parsed here. The tracker holds it; once the
		 * local stack acknowledges past what was parsed, the stream
		 * resumes at the next line (ph_ftp_acked()). */
		sc->parse = 0;
		return;
	}
	if (from >= sc->ev.caplen)
		return; /* a retransmission: parsed bytes are never re-read */
	/* A line in progress began in an earlier record: no start here.
	 * Branch-free, so that the loop below is entered in one state. */
	nz = ((__u32)st->line_len + 0xffff) >> 16;
	sc->line_start = from ^ ((from ^ PH_FTP_NO_START) & -nz);
	sc->scan_from = from;
	sc->scan_n = sc->ev.caplen;
#pragma clang loop unroll(disable)
	for (w = 0; w < PH_CTRL_CAP / 8; w++) {
		b = w * 8;
		if (b >= *(volatile __u32 *)&sc->scan_n)
			break;
		__builtin_memcpy(&x, &sc->ev.data[b], 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		x = __builtin_bswap64(x); /* byte 0 lowest */
#endif
		if (b < *(volatile __u32 *)&sc->scan_from ||
		    b + 8 > *(volatile __u32 *)&sc->scan_n || ph_has_lf(x)) {
			ph_ftp_word(dir, w);
			continue;
		}
		/* Eight bytes of the line, no LF: as ph_ftp_byte() eight
		 * times. */
		len = st->line_len;
		st->head |= (x << ((len & 7) * 8)) * ((len - 8ull) >> 63);
		over = ((__u64)PH_FTP_LEN_SAT - 8 - len) >> 63;
		st->line_len = len + 8 - over * (len + 8 - PH_FTP_LEN_SAT);
		st->cr = ((__u64)((x >> 56) ^ '\r') - 1) >> 63;
	}
	st->nxt = *(volatile __u32 *)&sc->ev.seq + sc->ev.caplen;
}

/*
 * A SYNC record (ctrl.h, struct ph_ctrl_sync) for the session in sc->ev:
 * the parser state at the current record's start (sc->snap), or after it
 * (@heartbeat: sc->ps). Clears the session's due SYNC. Returns 0, or -1
 * if the ring buffer is full (the SYNC stays due).
 */
static __always_inline int ph_ftp_sync_emit(struct ph_ftp_scratch *sc,
					    int heartbeat)
{
	struct ph_ctrl_sync *d;
	struct ph_event *ev;
	__u64 now;

	ev = bpf_ringbuf_reserve(&events, PH_EV_HDR_LEN + sizeof(*d), 0);
	if (!ev) {
		PH_FTP_STAT(events_lost);
		return -1;
	}
	__builtin_memset(&sc->h, 0, sizeof(sc->h));
	sc->h.type = PH_EV_CTRL_SYNC;
	sc->h.dir = sc->ev.dir;
	sc->h.session = sc->ev.session;
	sc->h.host_role = sc->ev.host_role;
	now = ph_ftp_ev_head(sc, ev, &sc->ev.key);
	ev->caplen = sizeof(*d);
	d = (struct ph_ctrl_sync *)ev->data;
	if (heartbeat)
		__builtin_memcpy(&d->ps, &sc->ps, sizeof(d->ps));
	else
		__builtin_memcpy(&d->ps, &sc->snap, sizeof(d->ps));
	d->flags = (sc->sync & PH_FTPC_SYNC_LOST ? PH_SYNC_LOST : 0) |
		   (heartbeat ? PH_SYNC_HEARTBEAT : 0);
	__builtin_memset(d->pad, 0, sizeof(d->pad));
	bpf_ringbuf_submit(ev, 0);
	PH_FTP_STAT(events);
	PH_FTP_STAT(syncs);
	sc->sync = 0;
	sc->sync_ns = now;
	return 0;
}

/* Before any record of a claimed session: the SYNC it may be due, so that
 * the tracker's streams reach the record's start. Returns 0, or -1 (ring
 * full: the record must not be reported either). */
static __always_inline int ph_ftp_sync_flush(struct ph_ftp_scratch *sc)
{
	if (!sc->claimed || !(sc->sync & PH_FTPC_SYNC_DUE))
		return 0;
	return ph_ftp_sync_emit(sc, 0);
}

/*
 * Installs the pinhole decided by this record and reports it. A pinhole
 * the parser validated stays, reported or not: without its EXPECT_BPF the
 * record is not reported either (the tracker would open the same key and
 * could re-arm a used single-use entry), and the tracker learns of it from
 * the next SYNC (ps.pinhole).
 */
static __always_inline void ph_ftp_install(struct ph_ftp_scratch *sc)
{
	struct ph_expect e = {
		.deadline_ns = ph_now() + ph_ftp_ttl_ns(),
		.session = sc->ev.session,
		.dir = sc->cand_dir,
	};
	__u16 cap = sc->ev.caplen;
	long err;

	/* The watch first: a SYN that finds the pinhole must look for it. */
	if (e.dir == PH_DIR_IN)
		ph_syn_watch_raise(PH_SW_EXPECT, sc->cand.lport,
				   e.deadline_ns +
					   PH_SYN_WATCH_GRACE_S * PH_NSEC_PER_SEC);
	if (bpf_map_update_elem(&expect, &sc->cand, &e, BPF_ANY))
		return; /* expect is full: the tracker will try */
	PH_FTP_STAT(pinholes);
	ph_mon_pinhole(&sc->cand, e.dir, e.session, e.deadline_ns);
	__builtin_memcpy(&sc->ps.pinhole, &sc->cand, sizeof(sc->cand));
	sc->ps.flags |= PH_FTPC_PINHOLE;
	if (ph_ftp_sync_flush(sc)) {
		PH_FTP_STAT(unreported);
		sc->unrep = 1;
		return;
	}
	sc->ev.type = PH_EV_EXPECT_BPF;
	sc->ev.caplen = 0;
	__builtin_memcpy(&sc->ev.expect, &sc->cand, sizeof(sc->cand));
	err = bpf_ringbuf_output(&events, &sc->ev, PH_EV_HDR_LEN, 0);
	sc->ev.type = PH_EV_CTRL_DATA;
	sc->ev.caplen = cap;
	__builtin_memset(&sc->ev.expect, 0, sizeof(sc->ev.expect));
	if (err) {
		PH_FTP_STAT(events_lost);
		PH_FTP_STAT(unreported);
		sc->unrep = 1;
		return;
	}
	PH_FTP_STAT(events);
}

/* Parses the record in sc->ev if this CPU holds the session. Global:
 * verified once. */
__attribute__((noinline)) int ph_ftp_parse_record(__u32 dir)
{
	__u32 idx = dir & 1;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);

	if (!sc)
		return 0;
	sc->cand_ok = 0;
	sc->revoke = 0;
	if (!sc->parse || sc->desync || (sc->ps.flags & PH_FTPC_ENCRYPTED) ||
	    sc->ev.caplen > PH_CTRL_CAP)
		return 0;
	ph_ftp_scan(sc, dir);
	return 0;
}

/* Applies the pinhole decisions of the record just parsed. Global:
 * verified once. */
__attribute__((noinline)) int ph_ftp_apply(__u32 dir)
{
	__u32 idx = dir & 1;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);

	if (!sc)
		return 0;
	if (sc->revoke)
		ph_ftp_unhole(&sc->ps.pinhole, sc->ev.session);
	if (sc->cand_ok)
		ph_ftp_install(sc);
	return 0;
}

/*
 * Record @i of the segment in sc->in, whose @got bytes the program copied
 * to sc->ev.data (fewer than the record holds: the copy failed): its
 * header. Returns non-zero if there is no such record. Then
 * ph_ftp_parse_record(), ph_ftp_apply() and ph_ftp_report(), each called
 * by the program: a chain of calls would add up stack frames beyond the
 * limit. Global: verified once.
 */
__attribute__((noinline)) int ph_ftp_record(__u32 dir, __u32 i, __u32 got)
{
	__u32 idx = dir & 1, total, off, n;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);

	if (!sc || i >= PH_CTRL_CHUNKS)
		return 1;
	total = sc->in.payload_len;
	off = i * PH_CTRL_CAP;
	if (off >= total)
		return 1;
	n = total - off < PH_CTRL_CAP ? total - off : PH_CTRL_CAP;
	if (got > n || sc->in.unverified)
		got = 0; /* unverified bytes are reported lost, never shown */
	sc->last = off + n >= total || i == PH_CTRL_CHUNKS - 1 || got < n;
	/* The state a SYNC sent before this record describes. */
	__builtin_memcpy(&sc->snap, &sc->ps, sizeof(sc->snap));
	sc->loud = 0;
	sc->unrep = 0;
	sc->ev.seq = sc->seq0 + off;
	sc->ev.caplen = got;
	/* A record stands for got bytes, except the last, which also stands
	 * for whatever could not be copied (the tracker sees caplen < len);
	 * FIN and RST belong to the last. */
	sc->ev.len = sc->last ? total - off : got;
	sc->ev.tcp_flags = sc->last ? sc->in.tcp_flags :
				      sc->in.tcp_flags &
					      ~(PH_TCP_FIN | PH_TCP_RST);
	if (sc->last && got < total - off)
		sc->desync = 1; /* bytes neither we nor the tracker saw */
	return 0;
}

/*
 * Is the record just parsed quiet: parsed here whole, in order, its
 * lines none that opens or closes anything, and the line it leaves in
 * progress at most 8 bytes (a SYNC carries it whole)? Such a record is not
 * reported; the next SYNC stands for it.
 */
static __always_inline int ph_ftp_quiet(struct ph_ftp_scratch *sc)
{
	struct ph_ftp_stream_bpf *st = &sc->ps.st[sc->ev.from_client & 1];

	return sc->parse && !sc->loud && !sc->cand_ok && !sc->revoke &&
	       !sc->unrep && sc->ev.caplen == sc->ev.len &&
	       !(sc->ev.tcp_flags & (PH_TCP_FIN | PH_TCP_RST)) &&
	       st->line_len <= 8 && !(sc->ps.flags & PH_FTPC_ENCRYPTED);
}

/*
 * Reports the record, unless it is quiet. A full ring buffer costs the
 * report, never the parse: the session's SYNC becomes due (lost), and the
 * tracker resumes where the SYNC says. Returns non-zero if no record
 * follows. Global: verified once.
 */
__attribute__((noinline)) int ph_ftp_report(__u32 dir)
{
	__u32 idx = dir & 1, n;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	__u64 now;

	if (!sc)
		return 1;
	if (sc->desync || !sc->claimed)
		sc->parse = 0;
	n = sc->ev.caplen;
	if (n > PH_CTRL_CAP)
		return 1;
	now = ph_now();
	if (ph_ftp_quiet(sc)) {
		PH_FTP_STAT(quiet);
		sc->sync |= PH_FTPC_SYNC_DUE;
		/* A quiet session still shows it is alive. */
		if (now - sc->sync_ns >=
		    PH_FTP_SYNC_PERIOD_S * PH_NSEC_PER_SEC)
			ph_ftp_sync_emit(sc, 1);
	} else if (sc->unrep || ph_ftp_sync_flush(sc)) {
		if (!sc->unrep)
			PH_FTP_STAT(events_lost); /* counted as this record */
		sc->sync |= PH_FTPC_SYNC_DUE | PH_FTPC_SYNC_LOST;
	} else if (bpf_ringbuf_output(&events, &sc->ev, PH_EV_HDR_LEN + n, 0)) {
		PH_FTP_STAT(events_lost);
		if (sc->claimed)
			sc->sync |= PH_FTPC_SYNC_DUE | PH_FTPC_SYNC_LOST;
	} else {
		PH_FTP_STAT(events);
		sc->sync_ns = now;
	}
	return sc->last || (sc->ps.flags & PH_FTPC_ENCRYPTED);
}

/* ---------------------------------------------------------------------- */
/* Sessions                                                                */
/* ---------------------------------------------------------------------- */

/*
 * The control connection in sc->in ended (RST, FIN both ways, idle
 * expiry): its pinhole goes, CLOSE is reported, the parser state is
 * dropped. sc->in.fi (the flow's fields) stands in when the connection has
 * no ftp_ctrl entry.
 */
static __always_inline void ph_ftp_close(struct ph_ftp_scratch *sc, int dir,
					 __u8 tcp_flags)
{
	struct ph_ftp_ctrl *c = bpf_map_lookup_elem(&ftp_ctrl, &sc->in.key);
	__u8 has_pin = 0, ftps = 0;

	__builtin_memset(&sc->h, 0, sizeof(sc->h));
	sc->h.type = PH_EV_CTRL_CLOSE;
	sc->h.dir = dir;
	sc->h.tcp_flags = tcp_flags;
	sc->h.session = sc->in.fi.session;
	sc->h.host_role = ph_ftp_role(sc->in.fi.origin);
	sc->h.encrypted = !!(sc->in.fi.flags & PH_FF_FTPS_CTRL);
	if (c) {
		sc->h.session = c->session;
		sc->h.host_role = c->role;
		bpf_spin_lock(&c->lock);
		if (c->ps.flags & PH_FTPC_ENCRYPTED)
			sc->h.encrypted = 1;
		if (c->ps.flags & PH_FTPC_PINHOLE) {
			has_pin = 1;
			sc->cand = c->ps.pinhole;
		}
		ftps = c->ftps;
		c->ftps = 0;
		bpf_spin_unlock(&c->lock);
		if (has_pin)
			ph_ftp_unhole(&sc->cand, sc->h.session);
		bpf_map_delete_elem(&ftp_ctrl, &sc->in.key);
		if (ftps) {
			ph_ftps_unref(&sc->in.key);
			ph_ftps_flow_mark(&sc->in.key, 0);
		}
	} else if (sc->in.fi.state != PH_FS_ESTABLISHED) {
		return; /* closed before (FIN both ways), or never opened */
	}
	sc->h.from_client = ph_ftp_from_client(sc->h.host_role, dir);
	ph_ftp_emit(sc, 0, 0);
}

/*
 * The control connection in sc->in was confirmed (its flow promoted): the
 * parser state starting at each side's first data byte (sc->od), CTRL_OPEN.
 * Implicit FTPS starts encrypted: nothing is parsed or reported but OPEN
 * and CLOSE.
 */
static __always_inline void ph_ftp_open(struct ph_ftp_scratch *sc, int dir)
{
	struct ph_ftp_ctrl *v = (struct ph_ftp_ctrl *)sc->init;

	/* A stale entry on this 4-tuple (its flow was evicted). */
	if (bpf_map_lookup_elem(&ftp_ctrl, &sc->in.key))
		ph_ftp_close(sc, dir, 0);
	__builtin_memset(v, 0, sizeof(*v));
	v->role = ph_ftp_role(sc->in.fi.origin);
	v->family = ph_key_is_v4(&sc->in.key) ? 4 : 6;
	v->session = sc->in.fi.session;
	v->created_ns = ph_now();
	v->sync_ns = v->created_ns;
	v->ps.st[PH_SIDE_CLIENT].nxt = sc->od.client_nxt;
	v->ps.st[PH_SIDE_SERVER].nxt = sc->od.server_nxt;
	if (sc->in.fi.flags & PH_FF_FTPS_CTRL) {
		v->ps.flags = PH_FTPC_ENCRYPTED;
		/* Implicit FTPS counts from here, the completed handshake:
		 * a spoofed SYN never gets this far. */
		v->ftps = !ph_ftps_ref(&sc->in.key);
	}
	sc->ftps_new = v->ftps;
	if (bpf_map_update_elem(&ftp_ctrl, &sc->in.key, v, BPF_ANY)) {
		PH_FTP_STAT(ctrl_full); /* reported, not parsed here */
		/* Nothing would give the count back. */
		if (sc->ftps_new)
			ph_ftps_unref(&sc->in.key);
		sc->ftps_new = 0;
	}
	PH_FTP_STAT(sessions);
	__builtin_memset(&sc->h, 0, sizeof(sc->h));
	sc->h.type = PH_EV_CTRL_OPEN;
	sc->h.dir = dir;
	sc->h.tcp_flags = sc->in.tcp_flags;
	sc->h.session = sc->in.fi.session;
	sc->h.host_role = v->role;
	sc->h.encrypted = !!(sc->in.fi.flags & PH_FF_FTPS_CTRL);
	sc->h.from_client = ph_ftp_from_client(sc->h.host_role, dir);
	ph_ftp_emit(sc, 0, 1);
}

/*
 * A segment whose payload is parsed and reported. Not the first fragment of
 * a fragmented segment: its checksum covers bytes in later fragments, so
 * it cannot be verified, and its bytes are only part of the segment. The
 * endpoint takes the reassembled segment, which the datapath never sees:
 * its bytes are a gap, which the local stack's ACK reveals (ph_ftp_acked()).
 */
static __always_inline int ph_ftp_has_data(const struct ph_pkt *p)
{
	return p->payload_len && p->frag == PH_FRAG_NONE &&
	       !(p->tcp_flags & (PH_TCP_RST | PH_TCP_SYN));
}

/* ---------------------------------------------------------------------- */
/* TCP checksums of control segments                                       */
/*                                                                        */
/* Only bytes the endpoint will accept are parsed or reported: a segment   */
/* its stack drops for a bad checksum must not be what the tracker takes   */
/* for the stream (a later good copy at the same sequence number is what   */
/* the endpoint uses). Each hook copies the IPv4 header, the TCP header    */
/* and the payload (its usual record copies, up to PH_CTRL_CHUNKS x        */
/* PH_CTRL_CAP bytes) into the scratch and sums them with bpf_csum_diff(), */
/* at most 512 bytes a call (its limit, 5.15 too); no loop over payload    */
/* bytes. A longer segment is not verified: nothing of it is shown         */
/* (reported as lost, caplen 0).                                           */
/* ---------------------------------------------------------------------- */

enum { PH_CS_OK = 0, PH_CS_BAD = 1 };

#define PH_CS_MAX (PH_CTRL_CHUNKS * PH_CTRL_CAP)

static __always_inline __u32 ph_csum_fold(__u64 s)
{
	s = (s & 0xffffffffull) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u32)s;
}

/* Sum of @n bytes (a multiple of 4, <= 64) of @b, added to @seed; bit 63
 * set when the helper refused. */
static __always_inline __u64 ph_csum_add(const __u8 *b, __u32 n, __u64 seed)
{
	__s64 r;

	if (n > 64)
		return 1ull << 63;
	r = bpf_csum_diff(NULL, 0, (__be32 *)b, n, (__wsum)ph_csum_fold(seed));
	return r < 0 ? 1ull << 63 : (__u64)r;
}

/*
 * The verdict once the hook copied the headers (sc->cs_ip, sc->cs_th, the
 * TCP header @thl bytes long) and summed the payload into sc->cs_sum:
 * the IPv4 header must sum to 0xffff; the TCP segment with its pseudo
 * header too, or, where @partial_ok, the checksum field may hold just the
 * pseudo-header sum (CHECKSUM_PARTIAL: the local stack's own segments on
 * egress, a veth peer's on ingress). Global: verified once.
 */
__attribute__((noinline)) int ph_ftp_csum_judge(__u32 dir, __u32 thl,
						__u32 partial_ok)
{
	__u32 idx = dir & 1, ihl, tcp_len, n;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	__u64 ph, s;
	__u8 *b;

	if (!sc || thl < 20 || thl > 60)
		return PH_CS_BAD;
	b = sc->cs_ph;
	tcp_len = sc->in.payload_off - sc->in.l4_off + sc->in.payload_len;
	if (ph_key_is_v4(&sc->in.key)) {
		ihl = sc->in.l4_off - sc->in.l3_off;
		if (ihl < 20 || ihl > 60 ||
		    ph_csum_fold(ph_csum_add(sc->cs_ip, ihl & 0x3c, 0)) != 0xffff)
			return PH_CS_BAD;
		__builtin_memcpy(b, sc->in.key.remote + 12, 4);
		__builtin_memcpy(b + 4, sc->in.key.local + 12, 4);
		b[8] = 0;
		b[9] = IPPROTO_TCP;
		b[10] = tcp_len >> 8;
		b[11] = tcp_len;
		n = 12;
	} else {
		__builtin_memcpy(b, sc->in.key.remote, 16);
		__builtin_memcpy(b + 16, sc->in.key.local, 16);
		b[32] = tcp_len >> 24;
		b[33] = tcp_len >> 16;
		b[34] = tcp_len >> 8;
		b[35] = tcp_len;
		b[36] = 0;
		b[37] = 0;
		b[38] = 0;
		b[39] = IPPROTO_TCP;
		n = 40;
	}
	ph = ph_csum_add(b, n, 0);
	if (ph >> 63)
		return PH_CS_BAD;
	/* Both sides in memory order, as bpf_csum_diff() sums. */
	if (partial_ok &&
	    *(__u16 *)(sc->cs_th + 16) == (__u16)ph_csum_fold(ph))
		return PH_CS_OK;
	if (sc->in.unverified)
		return PH_CS_OK; /* reported as lost: nothing shown */
	s = ph_csum_add(sc->cs_th, thl & 0x3c, ph);
	if (s >> 63 || (*(volatile __u64 *)&sc->cs_sum >> 63))
		return PH_CS_BAD;
	s = ph_csum_fold(s) + ph_csum_fold(*(volatile __u64 *)&sc->cs_sum);
	return ph_csum_fold(s) == 0xffff ? PH_CS_OK : PH_CS_BAD;
}

/*
 * Adds record @i's payload bytes, which the hook just copied to
 * sc->ev.data (@got of them), to sc->cs_sum. Returns 0, or -1 if the copy
 * came short (the segment is then not verified: see unverified).
 */
static __always_inline int ph_ftp_csum_chunk(struct ph_ftp_scratch *sc,
					     __u32 i, __u32 got)
{
	__u32 off = i * PH_CTRL_CAP, n, sz, k;
	__s64 r;

	if (off >= sc->in.payload_len)
		return 0;
	n = sc->in.payload_len - off;
	if (n > PH_CTRL_CAP)
		n = PH_CTRL_CAP;
	if (got != n)
		return -1;
	/* Zero up to a multiple of 4: chunks start at even offsets, so the
	 * padding adds nothing. */
	sz = (n + 3) & ~3u;
	if (sz > PH_CTRL_CAP)
		sz = PH_CTRL_CAP;
#pragma unroll
	for (k = 0; k < 3; k++)
		if (n + k < sz)
			sc->ev.data[(n + k) & PH_CAP_MASK] = 0;
	r = bpf_csum_diff(NULL, 0, (__be32 *)sc->ev.data, sz,
			  (__wsum)ph_csum_fold(sc->cs_sum));
	sc->cs_sum = r < 0 ? 1ull << 63 : (__u64)r;
	return 0;
}

/* The FTP work for a packet of a control connection that hit flows;
 * @state: its flow's state before, @live: what ph_flow_use() returned. */
static __always_inline __u8 ph_ftp_what(const struct ph_pkt *p, __u8 state,
					int live)
{
	__u8 what = 0;

	if (live && ph_ftp_has_data(p) && state == PH_FS_ESTABLISHED)
		what |= PH_FTP_DO_DATA;
	if (live != 1)
		what |= PH_FTP_DO_CLOSE;
	return what;
}

/* ... and for the packet that completed its handshake. */
static __always_inline __u8 ph_ftp_what_open(const struct ph_pkt *p)
{
	if (ph_ftp_has_data(p) && !(p->tcp_flags & PH_TCP_SYN))
		return PH_FTP_DO_OPEN | PH_FTP_DO_DATA;
	return PH_FTP_DO_OPEN;
}

/*
 * Hands the packet to the program's global FTP functions, with the fields
 * of its flow @f (NULL: none yet). Out of line: inline, the copies would
 * cost the program's main body registers and stack, and so the fast path
 * of every other flow some speed. Returns 0, or -1 without a scratch.
 */
static __attribute__((noinline)) int
ph_ftp_stash(int dir, const struct ph_flow_key *k, const struct ph_pkt *p,
	     const struct ph_flow *f)
{
	__u32 idx = dir & 1;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);

	if (!sc)
		return -1;
	__builtin_memcpy(&sc->in.key, k, sizeof(*k));
	if (f) {
		sc->in.fi.session = f->session;
		sc->in.fi.origin = f->origin;
		sc->in.fi.flags = f->flags;
		sc->in.fi.state = f->state;
	}
	sc->in.payload_off = p->payload_off;
	sc->in.payload_len = p->payload_len;
	sc->in.l4_off = p->l4_off;
	sc->in.l3_off = p->l3_off;
	sc->in.tcp_flags = p->tcp_flags;
	sc->in.what = 0;
	sc->in.unverified = 0;
	return 0;
}

static __always_inline __u32 ph_ftp_new_session(void)
{
	__u32 s = bpf_get_prandom_u32();

	return s ? s : 1;
}

/*
 * Start of a segment with payload (sc->in, its sequence number @seq): the
 * record header, and the claim on the session's parser state (one CPU at
 * a time; a second one finding it busy gives up parsing the session, see
 * docs). Returns 0 when nothing is to be reported (encrypted).
 */
static __always_inline int ph_ftp_seg_begin(struct ph_ftp_scratch *sc, int dir,
					    __u32 seq)
{
	struct ph_ftp_ctrl *c = bpf_map_lookup_elem(&ftp_ctrl, &sc->in.key);
	__u8 role = ph_ftp_role(sc->in.fi.origin), enc, claimed = 0;
	__u32 session = sc->in.fi.session;
	__u8 conflict = 0;

	enc = !!(sc->in.fi.flags & PH_FF_FTPS_CTRL);
	sc->family = ph_key_is_v4(&sc->in.key) ? 4 : 6;
	sc->sync = 0;
	if (c) {
		role = c->role;
		session = c->session;
		sc->family = c->family;
		bpf_spin_lock(&c->lock);
		if (c->ps.flags & PH_FTPC_ENCRYPTED) {
			enc = 1;
		} else if (!c->desync) {
			if (c->busy) {
				c->desync = 1;
				conflict = 1;
			} else {
				c->busy = 1;
				sc->ps = c->ps;
				sc->sync = c->sync;
				sc->sync_ns = c->sync_ns;
				claimed = 1;
			}
		}
		bpf_spin_unlock(&c->lock);
	}
	if (conflict) {
		PH_FTP_STAT(conflicts);
		PH_FTP_STAT(desyncs);
	}
	if (enc)
		return 0; /* claimed is 0 here: nothing to give back */
	sc->seq0 = seq;
	sc->ev.ts_ns = ph_now();
	__builtin_memcpy(&sc->ev.key, &sc->in.key, sizeof(sc->ev.key));
	__builtin_memset(&sc->ev.expect, 0, sizeof(sc->ev.expect));
	sc->ev.seq = seq;
	sc->ev.session = session;
	sc->ev.len = sc->in.payload_len;
	sc->ev.caplen = 0;
	sc->ev.type = PH_EV_CTRL_DATA;
	sc->ev.dir = dir;
	sc->ev.from_client = ph_ftp_from_client(role, dir);
	sc->ev.tcp_flags = sc->in.tcp_flags;
	sc->ev.host_role = role;
	sc->ev.encrypted = 0;
	__builtin_memset(sc->ev.pad, 0, sizeof(sc->ev.pad));
	sc->ev.ack = sc->ack;
	sc->claimed = claimed;
	sc->parse = claimed;
	sc->desync = 0;
	sc->cand_ok = 0;
	sc->revoke = 0;
	PH_FTP_STAT(segments);
	return 1;
}

/*
 * The local stack sent @ack for the peer's stream (egress, the packet in
 * sc->in). Past what the in-kernel parser took, bytes of that stream
 * reached the endpoint unseen here (a segment in IP fragments, one held
 * out of order, a record the ring buffer refused): the parser resumes at
 * the next line from @ack on, failing closed on the pairing as
 * user/ftp.c's gap() does. Returns non-zero if the tracker must hear of
 * the ACK (a record): a gap, or a session the parser does not follow.
 * Global: verified once.
 */
__attribute__((noinline)) int ph_ftp_acked(__u32 dir, __u32 ack)
{
	__u32 idx = dir & 1;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	struct ph_ftp_stream_bpf *st;
	struct ph_ftp_ctrl *c;
	__u8 side, skip;
	int report = 1;

	if (!sc)
		return 0;
	c = bpf_map_lookup_elem(&ftp_ctrl, &sc->in.key);
	if (!c)
		return !(sc->in.fi.flags & PH_FF_FTPS_CTRL);
	/* The stream this host receives: the client's on a server. */
	side = c->role == PH_ROLE_SERVER ? PH_SIDE_CLIENT : PH_SIDE_SERVER;
	skip = side == PH_SIDE_CLIENT ? PH_FTPC_SKIP_CLIENT : PH_FTPC_SKIP_SERVER;
	bpf_spin_lock(&c->lock);
	st = &c->ps.st[side & 1];
	if (c->ps.flags & PH_FTPC_ENCRYPTED) {
		report = 0;
	} else if (!c->desync && !c->busy) {
		if ((__s32)(ack - st->nxt) > 0) {
			st->nxt = ack;
			st->head = 0;
			st->line_len = 0;
			st->cr = 0;
			c->ps.flags |= skip;
			if (side == PH_SIDE_SERVER) {
				c->ps.awaiting = 0;
			} else if (!c->ps.awaiting ||
				   c->ps.last_cmd != PH_FTPC_CMD_AUTH) {
				c->ps.last_cmd = PH_FTPC_CMD_OTHER;
				c->ps.awaiting = 1;
				c->ps.last_cmd_opened = 0;
				c->ps.epsv_bad_family = 0;
			}
		} else {
			report = 0;
		}
	}
	bpf_spin_unlock(&c->lock);
	return report;
}

/* A record with no payload for the ACK in sc->ack (ph_ftp_acked()).
 * Global: verified once. */
__attribute__((noinline)) int ph_ftp_ack_report(__u32 dir)
{
	__u32 idx = dir & 1;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	__u8 role;

	if (!sc)
		return 0;
	role = ph_ftp_role(sc->in.fi.origin);
	sc->ev.ts_ns = ph_now();
	__builtin_memcpy(&sc->ev.key, &sc->in.key, sizeof(sc->ev.key));
	__builtin_memset(&sc->ev.expect, 0, sizeof(sc->ev.expect));
	sc->ev.seq = 0;
	sc->ev.session = sc->in.fi.session;
	sc->ev.len = 0;
	sc->ev.caplen = 0;
	sc->ev.type = PH_EV_CTRL_DATA;
	sc->ev.dir = dir & 1;
	sc->ev.from_client = ph_ftp_from_client(role, dir & 1);
	sc->ev.tcp_flags = sc->in.tcp_flags;
	sc->ev.host_role = role;
	sc->ev.encrypted = 0;
	__builtin_memset(sc->ev.pad, 0, sizeof(sc->ev.pad));
	sc->ev.ack = sc->ack;
	if (bpf_ringbuf_output(&events, &sc->ev, PH_EV_HDR_LEN, 0)) {
		PH_FTP_STAT(events_lost);
		return -1;
	}
	PH_FTP_STAT(events);
	return 0;
}

/*
 * After the records (or instead of them): the parser state goes back and
 * the claim is released, then CLOSE if the connection ended. Global:
 * verified once.
 */
__attribute__((noinline)) int ph_ftp_finish(__u32 dir)
{
	__u32 idx = dir & 1;
	struct ph_ftp_scratch *sc = bpf_map_lookup_elem(&ftp_scratch, &idx);
	struct ph_ftp_ctrl *c;
	__u8 counted, kept = 0;

	if (!sc)
		return 0;
	if (sc->claimed) {
		sc->claimed = 0;
		/* Only a session still in plain text is claimed, so this
		 * segment's 234 made it FTPS (explicit): count it, before the
		 * token is published, so that whoever takes the token finds
		 * the count there. */
		counted = (sc->ps.flags & PH_FTPC_ENCRYPTED) &&
			  !ph_ftps_ref(&sc->in.key);
		c = bpf_map_lookup_elem(&ftp_ctrl, &sc->in.key);
		if (c && c->session == sc->ev.session) {
			bpf_spin_lock(&c->lock);
			c->ps = sc->ps;
			c->sync = sc->sync;
			c->sync_ns = sc->sync_ns;
			if (sc->desync)
				c->desync = 1;
			c->busy = 0;
			if (counted && !c->ftps) {
				c->ftps = 1;
				kept = 1;
			}
			bpf_spin_unlock(&c->lock);
		}
		if (counted && !kept)
			ph_ftps_unref(&sc->in.key);
		if (kept)
			ph_ftps_flow_mark(&sc->in.key, 1);
		if (sc->desync)
			PH_FTP_STAT(desyncs);
	}
	if (sc->in.what & PH_FTP_DO_CLOSE)
		ph_ftp_close(sc, dir & 1, sc->in.tcp_flags);
	return 0;
}

/*
 * The two hooks' FTP drivers differ only in their context type and in the
 * functions that start a segment and copy a record's bytes, so one macro
 * writes both (C has no generics; the expansion is the code each program
 * had before).
 *
 * PH_FTP_RUN: the FTP work for the packet stashed in the scratch. The
 * records are driven from the program, not from a global function: the
 * stack of a chain of calls is limited.
 */
#define PH_FTP_RUN(DIR, CTX, BEGIN, COPY, WHAT)                               \
	do {                                                                  \
		__u32 i_;                                                     \
                                                                              \
		if (BEGIN(CTX, WHAT)) {                                       \
			_Pragma("clang loop unroll(disable)")                 \
			for (i_ = 0; i_ < PH_CTRL_CHUNKS; i_++) {             \
				if (ph_ftp_record(DIR, i_, COPY(CTX, i_)))    \
					break;                                \
				ph_ftp_parse_record(DIR);                     \
				ph_ftp_apply(DIR);                            \
				if (ph_ftp_report(DIR))                       \
					break;                                \
			}                                                     \
		}                                                             \
		ph_ftp_finish(DIR);                                           \
	} while (0)

/*
 * PH_FTP_CTRL_FLOW: a packet of a tracked FTP control connection hit
 * flows entry F; sets REASON to PASS_FLOW, PH_CONTINUE if the entry had
 * idled out, DROP_RST_WINDOW for a blind RST, or DROP_CTRL_CSUM for a
 * segment with payload whose checksum VERIFY(CTX) refutes. Only TCP is
 * tracked (a control flag on a UDP flow: ignored).
 */
#define PH_FTP_CTRL_FLOW(REASON, DIR, CTX, BEGIN, COPY, VERIFY, P, K, F,   \
			 CLK)                                                 \
	do {                                                                  \
		int stashed_ = (P)->proto == IPPROTO_TCP ?                    \
				       ph_ftp_stash(DIR, K, P, F) : -1;       \
		__u8 state_ = (F)->state, what_;                              \
		int live_;                                                    \
                                                                              \
		/* A segment the endpoint drops changes nothing, here either. */ \
		if (!stashed_ && state_ == PH_FS_ESTABLISHED &&               \
		    ph_ftp_has_data(P) && VERIFY(CTX) != PH_CS_OK) {          \
			(REASON) = PH_R_DROP_CTRL_CSUM;                       \
			break;                                                \
		}                                                             \
		live_ = ph_flow_use(F, K, P, DIR, CLK);                       \
		/* A blind RST (dropped) changes nothing either. */           \
		what_ = live_ == PH_FLOW_BLIND_RST ?                          \
				0 :                                           \
				ph_ftp_what(P, state_, live_);                \
		if ((DIR) == PH_DIR_OUT && live_ == PH_FLOW_PASS &&           \
		    state_ == PH_FS_ESTABLISHED &&                            \
		    ((P)->tcp_flags & PH_TCP_ACK))                            \
			what_ |= PH_FTP_DO_ACK;                               \
		if (!stashed_ && what_)                                       \
			PH_FTP_RUN(DIR, CTX, BEGIN, COPY, what_);             \
		(REASON) = ph_flow_reason(live_);                             \
	} while (0)

#endif /* PH_BPF_FTP_H */
