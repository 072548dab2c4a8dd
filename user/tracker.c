// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * FTP session tracker (tracker.h, docs/tracker.md).
 *
 * Who owns a pinhole. The parser (user/ftp.c) decides; the datapath may
 * install the same pinhole first (PH_EV_EXPECT_BPF), so that no data SYN
 * races us. Such a pinhole is "unconfirmed" (struct hole) until the tracker
 * has parsed the segment that carried its line: an OPEN of the same key
 * confirms it (nothing is written: the datapath's entry may already be
 * used, and writing it again would re-arm a single-use pinhole); anything
 * else means the datapath and the tracker disagree, and the tracker, the
 * authority, deletes it and says so loudly. While a key is unconfirmed the
 * tracker never deletes it for its own reasons (it may be a fresh install
 * for the same key): the confirmation decides.
 *
 * Time: every deadline is CLOCK_MONOTONIC_COARSE (bpf_ktime_get_coarse_ns).
 * A segment's actions use the event's timestamp, so a backlog in the ring
 * buffer does not stretch a pinhole's life.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/random.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ftp.h"
#include "ftps.h"
#include "log.h"
#include "maps_io.h"
#include "tracker.h"
#include "util.h"

_Static_assert(PH_FTP_REFUSE_MAX <= PH_FTP_REFUSE_SLOTS,
	       "ftp_totals.refused_by_reason has too few slots");
_Static_assert(PH_ROLE_SERVER == (int)PH_FTP_ROLE_SERVER &&
	       PH_ROLE_CLIENT == (int)PH_FTP_ROLE_CLIENT,
	       "ctrl.h and ftp.h disagree on roles");

#define EV_HDR offsetof(struct ph_event, data)
#define SIDE_SERVER 0
#define SIDE_CLIENT 1
#define ORPHAN_BATCH 256
#define EARLY_USED 32           /* USED reports ahead of their EXPECT_BPF */
#define EARLY_USED_NS (2ull * PH_TRK_NSEC)
#define TCP_ACK 0x10            /* ph_event.tcp_flags */
#define GONE_SCANS 2            /* orphan scans before a session is closed */

_Static_assert(PH_FTPC_CMD_NONE == (int)PH_FTP_CMD_NONE &&
	       PH_FTPC_CMD_OTHER == (int)PH_FTP_CMD_OTHER &&
	       PH_FTPC_CMD_PORT == (int)PH_FTP_CMD_PORT &&
	       PH_FTPC_CMD_EPRT == (int)PH_FTP_CMD_EPRT &&
	       PH_FTPC_CMD_PASV == (int)PH_FTP_CMD_PASV &&
	       PH_FTPC_CMD_EPSV == (int)PH_FTP_CMD_EPSV &&
	       PH_FTPC_CMD_AUTH == (int)PH_FTP_CMD_AUTH,
	       "ctrl.h and ftp.h disagree on commands");

/* A pinhole the datapath installed, awaiting the tracker's verdict. */
struct hole {
	struct ph_flow_key key;
	__u64 deadline_ns;
	__u32 end_seq;  /* end of the segment that carried it, if has_seq */
	__u8 dir;
	__u8 side;      /* SIDE_*: whose line announced it */
	bool has_seq;
	bool used;      /* a data connection went through already */
	bool valid;
	/* Kept unjudged: its line was never shown to the tracker (a record
	 * the ring refused, a session adopted at start, a line not seen
	 * whole). The datapath's parser validated it; it stays until the
	 * tracker opens the same key, it expires, or the session closes. */
	bool trusted;
};

struct sess {
	struct ph_flow_key key;          /* control connection */
	struct sess *next_key, *next_id; /* hash chains */
	struct sess *prev, *next;        /* t->open (LRU) or t->closed */
	__u32 id;
	__u8 role;                       /* enum ph_ftp_host_role */
	bool closed, dirty, published;
	bool pending_bpf; /* the pending pinhole is the datapath's entry */
	bool late_dup;    /* ...reported after we wrote it too: see on_used() */
	bool adopted;     /* made from ftp_ctrl at start (ph_trk_adopt()) */
	__u8 gone;        /* orphan scans that found its control flow gone */
	__u32 adopt_nxt[2]; /* ... the datapath's stream positions then */
	/* Datapath pinholes are kept unjudged (hole.trusted) until the parser
	 * has ended this many client lines: a resume failed closed on a line
	 * it could not see whole, so the pairing around it is unknown. */
	__u64 blind_until;
	/* The last pinhole the datapath reported for this session: a SYNC
	 * naming it again shows nothing new. */
	struct ph_flow_key bpf_last;
	__u64 started_ns, last_ns, closed_ns;
	__u32 opened, used, expired, revoked, refused;
	struct hole holes[PH_TRK_BPF_SLOTS];
	struct ph_ftp_session ftp;
};

struct slist {
	struct sess *head, *tail;
};

/* A SYN may take a datapath pinhole on another CPU before the datapath
 * has reported installing it: such a USED waits here for its owner. */
struct early_used {
	struct ph_flow_key key;
	__u64 ts;
	__u32 session;
	bool valid;
};

struct ph_tracker {
	struct ph_trk_config cfg;
	const struct ph_trk_ops *ops;
	void *ctx;
	__u64 now;                 /* of the current call */
	__u32 mask;                /* buckets - 1 */
	struct sess **by_key, **by_id;
	struct slist open;         /* most recently active first */
	struct slist closed;       /* oldest close first */
	__u32 nsess, next_id;
	struct ph_ftp_totals totals;
	bool totals_dirty;
	__u64 next_orphan_scan;
	struct early_used early[EARLY_USED];
	/* log rate limit: a credit of time, each line costs 1/rate s */
	bool log_started;
	__u64 log_last, log_credit, log_suppressed;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static bool before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

static bool deadline_passed(__u64 deadline, __u64 now)
{
	return (__s64)(deadline - now) <= 0;
}

static void key_norm(struct ph_flow_key *dst, const struct ph_flow_key *src)
{
	*dst = *src;
	memset(dst->pad, 0, sizeof(dst->pad));
}

static bool key_eq(const struct ph_flow_key *a, const struct ph_flow_key *b)
{
	return !memcmp(a, b, sizeof(*a));
}

/* Does the pinhole p (a port may be 0, the wildcard) admit key k? */
static bool key_covers(const struct ph_flow_key *p, const struct ph_flow_key *k)
{
	return !memcmp(p->local, k->local, 16) &&
	       !memcmp(p->remote, k->remote, 16) && p->proto == k->proto &&
	       (!p->lport || p->lport == k->lport) &&
	       (!p->rport || p->rport == k->rport);
}

static bool v4_mapped(const __u8 a[16])
{
	static const __u8 prefix[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(a, prefix, sizeof(prefix));
}

static __u64 ns_to_s_round(__u64 ns)
{
	return (ns + PH_TRK_NSEC / 2) / PH_TRK_NSEC;
}

/* SipHash-2-4: the keys are chosen by remote peers, so the table is
 * keyed with a secret to keep collision chains short. */
#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                              \
	do {                                                                  \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);     \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                        \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                        \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);     \
	} while (0)

static __u64 siphash24(const __u64 key[2], const __u8 *in, size_t len)
{
	__u64 v0 = 0x736f6d6570736575ull ^ key[0];
	__u64 v1 = 0x646f72616e646f6dull ^ key[1];
	__u64 v2 = 0x6c7967656e657261ull ^ key[0];
	__u64 v3 = 0x7465646279746573ull ^ key[1];
	__u64 m, b = (__u64)len << 56;
	size_t i, end = len & ~(size_t)7;

	for (i = 0; i < end; i += 8) {
		memcpy(&m, in + i, 8);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (i = 0; i < (len & 7); i++)
		b |= (__u64)in[end + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static __u32 hash_key(const struct ph_tracker *t, const struct ph_flow_key *k)
{
	return (__u32)siphash24(t->cfg.hash_seed, (const __u8 *)k, sizeof(*k)) &
	       t->mask;
}

static __u32 hash_id(const struct ph_tracker *t, __u32 id)
{
	return (__u32)siphash24(t->cfg.hash_seed, (const __u8 *)&id, sizeof(id)) &
	       t->mask;
}

/* ------------------------------------------------------------------ */
/* Names and formatting                                                */
/* ------------------------------------------------------------------ */

const char *ph_trk_state_name(__u8 state)
{
	switch (state) {
	case PH_SS_PLAIN: return "plain";
	case PH_SS_AUTH: return "auth";
	case PH_SS_ENCRYPTED: return "encrypted";
	case PH_SS_CLOSED: return "closed";
	}
	return "?";
}

const char *ph_trk_role_name(__u8 role)
{
	return role == PH_ROLE_SERVER ? "server" :
	       role == PH_ROLE_CLIENT ? "client" : "?";
}

const char *ph_trk_dir_name(__u8 dir)
{
	return dir == PH_DIR_IN ? "in" : dir == PH_DIR_OUT ? "out" : "?";
}

void ph_trk_fmt_endpoint(const __u8 addr[16], __be16 port, char *buf,
			 size_t len)
{
	char a[INET6_ADDRSTRLEN];
	bool v6 = !v4_mapped(addr);

	ph_fmt_addr(addr, a, sizeof(a));
	if (port)
		snprintf(buf, len, v6 ? "[%s]:%u" : "%s:%u", a, ntohs(port));
	else
		snprintf(buf, len, v6 ? "[%s]:*" : "%s:*", a);
}

void ph_trk_fmt_pinhole(const struct ph_flow_key *k, __u8 dir, char *buf,
			size_t len)
{
	char l[64], r[64], p[8];
	const char *proto = ph_proto_name(k->proto, p, sizeof(p));

	ph_trk_fmt_endpoint(k->local, k->lport, l, sizeof(l));
	ph_trk_fmt_endpoint(k->remote, k->rport, r, sizeof(r));
	snprintf(buf, len, "%s %s %s %s", proto, l,
		 dir == PH_DIR_IN ? "<-" : "->", r);
}

/* The negotiation that opened a pinhole, and the line that announced it. */
static const char *via_open(enum ph_ftp_via v)
{
	switch (v) {
	case PH_FTP_VIA_PASV: return "PASV/227";
	case PH_FTP_VIA_EPSV: return "EPSV/229";
	default: return ph_ftp_via_name(v);
	}
}

static const char *via_line(enum ph_ftp_via v)
{
	switch (v) {
	case PH_FTP_VIA_PASV: return "227";
	case PH_FTP_VIA_EPSV: return "229";
	default: return ph_ftp_via_name(v);
	}
}

/* ------------------------------------------------------------------ */
/* Log, rate limited (invariant 9: a flood of refusals is not a flood  */
/* of log lines)                                                       */
/* ------------------------------------------------------------------ */

static bool log_allow(struct ph_tracker *t)
{
	__u64 cost = PH_TRK_NSEC / t->cfg.log_rate;
	__u64 cap = cost * t->cfg.log_burst, d;

	if (!t->log_started) {
		t->log_started = true;
		t->log_credit = cap;
		t->log_last = t->now;
	}
	if (t->now > t->log_last) {
		d = t->now - t->log_last;
		t->log_credit = d >= cap - t->log_credit ? cap : t->log_credit + d;
		t->log_last = t->now;
	}
	if (t->log_credit < cost)
		return false;
	t->log_credit -= cost;
	return true;
}

__attribute__((format(printf, 3, 4)))
static void tlog(struct ph_tracker *t, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!t->ops->log || (level == PH_TRK_LOG_DEBUG && !t->cfg.debug))
		return;
	if (!log_allow(t)) {
		t->log_suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	t->ops->log(t->ctx, level, line);
}

/* ------------------------------------------------------------------ */
/* Session table                                                       */
/* ------------------------------------------------------------------ */

static void list_unlink(struct slist *l, struct sess *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		l->tail = s->prev;
	s->prev = s->next = NULL;
}

static void list_push_head(struct slist *l, struct sess *s)
{
	s->prev = NULL;
	s->next = l->head;
	if (l->head)
		l->head->prev = s;
	else
		l->tail = s;
	l->head = s;
}

static void list_push_tail(struct slist *l, struct sess *s)
{
	s->next = NULL;
	s->prev = l->tail;
	if (l->tail)
		l->tail->next = s;
	else
		l->head = s;
	l->tail = s;
}

static struct sess *find_key(const struct ph_tracker *t,
			     const struct ph_flow_key *k)
{
	struct sess *s;

	for (s = t->by_key[hash_key(t, k)]; s; s = s->next_key)
		if (key_eq(&s->key, k))
			return s;
	return NULL;
}

static bool id_in_use(const struct ph_tracker *t, __u32 id)
{
	struct sess *s;

	for (s = t->by_id[hash_id(t, id)]; s; s = s->next_id)
		if (s->id == id)
			return true;
	return false;
}

/* For a datapath that does not number sessions itself. At most
 * max_sessions ids are in use, so this ends quickly. */
static __u32 new_id(struct ph_tracker *t)
{
	do
		t->next_id++;
	while (!t->next_id || id_in_use(t, t->next_id));
	return t->next_id;
}

static void sess_destroy(struct ph_tracker *t, struct sess *s)
{
	struct sess **pp;

	for (pp = &t->by_key[hash_key(t, &s->key)]; *pp; pp = &(*pp)->next_key)
		if (*pp == s) {
			*pp = s->next_key;
			break;
		}
	for (pp = &t->by_id[hash_id(t, s->id)]; *pp; pp = &(*pp)->next_id)
		if (*pp == s) {
			*pp = s->next_id;
			break;
		}
	list_unlink(s->closed ? &t->closed : &t->open, s);
	t->nsess--;
	free(s);
}

/* Forget a session entirely, in ftp_sessions too. */
static void sess_drop(struct ph_tracker *t, struct sess *s)
{
	if (s->published && t->ops->session_del)
		t->ops->session_del(t->ctx, &s->key);
	sess_destroy(t, s);
}

static void touch(struct ph_tracker *t, struct sess *s, __u64 ts)
{
	if (ts > s->last_ns)
		s->last_ns = ts;
	s->dirty = true;
	if (!s->closed && t->open.head != s) {
		list_unlink(&t->open, s);
		list_push_head(&t->open, s);
	}
}

static void sess_close(struct ph_tracker *t, struct sess *s, __u64 now,
		       const char *why);

/* The table is full: drop the oldest closed session, else close and drop
 * the least recently active one. */
static void make_room(struct ph_tracker *t, __u64 now)
{
	struct sess *s = t->closed.head;

	if (s) {
		sess_drop(t, s);
		return;
	}
	s = t->open.tail;
	if (!s)
		return;
	tlog(t, PH_TRK_LOG_WARN,
	     "ftp: session table full (%u): dropping session %08x, the least recently active",
	     t->cfg.max_sessions, s->id);
	sess_close(t, s, now, "session table full");
	sess_drop(t, s);
}

/* The nat-address list of the service of control connection @k. */
static int sess_nat(struct ph_tracker *t, const struct ph_flow_key *k,
		    bool server, __u8 (*out)[16])
{
	int n = t->ops->nat_get ?
			t->ops->nat_get(t->ctx, k, server, out,
					PH_NAT_ADDRS_MAX) :
			0;

	return n > 0 && n <= PH_NAT_ADDRS_MAX ? n : 0;
}

void ph_trk_policy_changed(struct ph_tracker *t)
{
	for (struct sess *s = t->open.head; s; s = s->next)
		s->ftp.cfg.nnat = sess_nat(t, &s->key,
					   s->role == PH_ROLE_SERVER,
					   s->ftp.cfg.nat_addr);
}

static struct sess *sess_create(struct ph_tracker *t, const struct ph_event *ev,
				const struct ph_flow_key *k, __u64 ts)
{
	bool server = ev->host_role == PH_ROLE_SERVER;
	struct ph_ftp_config cfg;
	char c[64], sv[64];
	struct sess *s;
	__u32 slot;

	if ((ev->host_role != PH_ROLE_SERVER && ev->host_role != PH_ROLE_CLIENT) ||
	    k->proto != IPPROTO_TCP)
		return NULL;
	memset(&cfg, 0, sizeof(cfg));
	cfg.family = v4_mapped(k->local) && v4_mapped(k->remote) ? AF_INET
								 : AF_INET6;
	memcpy(cfg.server_addr, server ? k->local : k->remote, 16);
	memcpy(cfg.client_addr, server ? k->remote : k->local, 16);
	cfg.server_port = server ? k->lport : k->rport;
	cfg.client_port = server ? k->rport : k->lport;
	cfg.role = server ? PH_FTP_ROLE_SERVER : PH_FTP_ROLE_CLIENT;
	cfg.ttl_ns = t->cfg.ttl_ns;
	cfg.implicit_tls = ev->encrypted;
	cfg.nnat = sess_nat(t, k, server, cfg.nat_addr);

	while (t->nsess >= t->cfg.max_sessions && t->nsess)
		make_room(t, ts);
	s = calloc(1, sizeof(*s));
	if (!s) {
		tlog(t, PH_TRK_LOG_WARN, "ftp: out of memory: control connection not tracked");
		return NULL;
	}
	if (ph_ftp_init(&s->ftp, &cfg)) {
		free(s);
		return NULL;
	}
	s->key = *k;
	s->role = ev->host_role;
	s->id = ev->session ? ev->session : new_id(t);
	s->started_ns = s->last_ns = ts;
	s->dirty = true;
	slot = hash_key(t, k);
	s->next_key = t->by_key[slot];
	t->by_key[slot] = s;
	slot = hash_id(t, s->id);
	s->next_id = t->by_id[slot];
	t->by_id[slot] = s;
	list_push_head(&t->open, s);
	t->nsess++;
	t->totals.sessions++;
	t->totals_dirty = true;
	ph_trk_fmt_endpoint(cfg.client_addr, cfg.client_port, c, sizeof(c));
	ph_trk_fmt_endpoint(cfg.server_addr, cfg.server_port, sv, sizeof(sv));
	tlog(t, PH_TRK_LOG_DEBUG, "ftp: session %08x: control %s -> %s, this host is the %s%s",
	     s->id, c, sv, ph_trk_role_name(s->role),
	     cfg.implicit_tls ? " (implicit FTPS: nothing to parse)" : "");
	return s;
}

/* ------------------------------------------------------------------ */
/* Pinholes                                                            */
/* ------------------------------------------------------------------ */

static struct hole *hole_find(struct sess *s, const struct ph_flow_key *k)
{
	for (int i = 0; i < PH_TRK_BPF_SLOTS; i++)
		if (s->holes[i].valid && key_eq(&s->holes[i].key, k))
			return &s->holes[i];
	return NULL;
}

/* A free slot for a datapath pinhole of s, or NULL if all are taken. */
static struct hole *hole_free(struct sess *s)
{
	for (int i = 0; i < PH_TRK_BPF_SLOTS; i++)
		if (!s->holes[i].valid)
			return &s->holes[i];
	return NULL;
}

/* Slot h now holds the datapath's pinhole k, in direction dir, with the
 * session's TTL from ts; the side is the one that announced it (passive
 * mode: the server; active: the client). */
static void hole_fill(struct sess *s, struct hole *h,
		      const struct ph_flow_key *k, __u8 dir, __u64 ts)
{
	memset(h, 0, sizeof(*h));
	h->key = *k;
	h->deadline_ns = ts + s->ftp.cfg.ttl_ns;
	h->dir = dir;
	h->side = (s->role == PH_ROLE_SERVER) == (dir == PH_DIR_IN) ?
			  SIDE_SERVER : SIDE_CLIENT;
	h->valid = true;
}

/* Remove a datapath pinhole the tracker does not vouch for. If the
 * parser's own pending pinhole has the same key, that one stays: write it
 * back instead. */
static void hole_remove(struct ph_tracker *t, struct sess *s, struct hole *h)
{
	struct ph_ftp_action p;

	h->valid = false;
	if (ph_ftp_pending(&s->ftp, &p) && key_eq(&p.key, &h->key)) {
		struct ph_expect v = { .deadline_ns = p.deadline_ns,
				       .session = s->id, .dir = p.dir };

		t->ops->expect_put(t->ctx, &h->key, &v);
		s->pending_bpf = false;
		return;
	}
	t->ops->expect_del(t->ctx, &h->key);
}

/* The tracker parsed the line and did not open this pinhole. */
static void hole_reject(struct ph_tracker *t, struct sess *s, struct hole *h,
			enum ph_ftp_refuse refused)
{
	char ph[160], what[96];

	ph_trk_fmt_pinhole(&h->key, h->dir, ph, sizeof(ph));
	if (refused != PH_FTP_REFUSE_NONE)
		snprintf(what, sizeof(what), "refused (%s)",
			 ph_ftp_refuse_name(refused));
	else
		snprintf(what, sizeof(what), "did not open");
	tlog(t, PH_TRK_LOG_WARN,
	     "ftp: DATAPATH BUG: the datapath installed %s session %08x, which the tracker %s; deleted%s",
	     ph, s->id, what,
	     h->used ? " (a data connection had already used it)" : "");
	hole_remove(t, s, h);
}

static void act_open(struct ph_tracker *t, struct sess *s,
		     const struct ph_ftp_action *a, __u64 ts)
{
	struct hole *h = hole_find(s, &a->key);
	__u64 ttl = a->deadline_ns > ts ? a->deadline_ns - ts : 0;
	char ph[160];

	s->pending_bpf = s->late_dup = false;
	if (h) {
		h->valid = false;
		s->pending_bpf = true;
		t->totals.opened_bpf++;
		if (h->used)
			ph_ftp_forget_pending(&s->ftp);
	} else {
		struct ph_expect v = { .deadline_ns = a->deadline_ns,
				       .session = s->id, .dir = a->dir };
		int err = t->ops->expect_put(t->ctx, &a->key, &v);

		if (err) {
			ph_trk_fmt_pinhole(&a->key, a->dir, ph, sizeof(ph));
			tlog(t, PH_TRK_LOG_WARN,
			     "ftp: cannot install %s session %08x: %s%s", ph,
			     s->id, strerror(-err),
			     err == -E2BIG ? " (the expect map is full)" : "");
			ph_ftp_forget_pending(&s->ftp);
			return;
		}
	}
	s->opened++;
	t->totals.opened++;
	ph_trk_fmt_pinhole(&a->key, a->dir, ph, sizeof(ph));
	tlog(t, PH_TRK_LOG_INFO, "ftp: open %s session %08x via %s ttl %llus%s",
	     ph, s->id, via_open(a->via), (unsigned long long)ns_to_s_round(ttl),
	     h ? " (installed by the datapath first)" : "");
}

static void act_revoke(struct ph_tracker *t, struct sess *s,
		       const struct ph_ftp_action *a, const char *why)
{
	char ph[160];

	/* An unconfirmed datapath entry with this key is a fresh install:
	 * its confirmation decides, not this revocation. */
	if (!hole_find(s, &a->key))
		t->ops->expect_del(t->ctx, &a->key);
	s->pending_bpf = s->late_dup = false;
	s->revoked++;
	t->totals.revoked++;
	ph_trk_fmt_pinhole(&a->key, a->dir, ph, sizeof(ph));
	tlog(t, PH_TRK_LOG_INFO, "ftp: revoked (%s) %s session %08x", why, ph,
	     s->id);
}

static void act_refuse(struct ph_tracker *t, struct sess *s,
		       const struct ph_ftp_action *a)
{
	const struct ph_ftp_config *cfg = &s->ftp.cfg;
	char ann[INET6_ADDRSTRLEN], ctl[INET6_ADDRSTRLEN], why[256];

	s->refused++;
	t->totals.refused++;
	if ((unsigned)a->reason < PH_FTP_REFUSE_SLOTS)
		t->totals.refused_by_reason[a->reason]++;
	ph_fmt_addr(a->announced_addr, ann, sizeof(ann));
	switch (a->reason) {
	case PH_FTP_REFUSE_BOUNCE:
		ph_fmt_addr(cfg->client_addr, ctl, sizeof(ctl));
		snprintf(why, sizeof(why), "%s names %s, control client is %s",
			 via_line(a->via), ann, ctl);
		break;
	case PH_FTP_REFUSE_THIRD_PARTY:
		ph_fmt_addr(cfg->server_addr, ctl, sizeof(ctl));
		snprintf(why, sizeof(why), "%s names %s, control server is %s",
			 via_line(a->via), ann, ctl);
		break;
	case PH_FTP_REFUSE_LOW_PORT:
		snprintf(why, sizeof(why), "%s announces port %u, below %u",
			 via_line(a->via), a->announced_port,
			 PH_FTP_MIN_DATA_PORT);
		break;
	default:
		snprintf(why, sizeof(why), "%s: %s", via_line(a->via),
			 ph_ftp_refuse_text(a->reason));
		break;
	}
	tlog(t, PH_TRK_LOG_INFO, "ftp: refused %s: %s session %08x",
	     ph_ftp_refuse_name(a->reason), why, s->id);
}

/* Why the parser revoked, told by what came right after it. */
static const char *revoke_reason(const struct ph_ftp_action *next)
{
	if (!next)
		return "negotiation failed";
	switch (next->kind) {
	case PH_FTP_OPEN: return "replaced";
	case PH_FTP_ENCRYPTED: return "control channel encrypted";
	case PH_FTP_REFUSE:
		return next->reason == PH_FTP_REFUSE_FLOOD ? "flood" : "replaced";
	default: return "negotiation failed";
	}
}

struct batch {
	const char *revoke_why;     /* NULL: from the next action */
	enum ph_ftp_refuse refused; /* the last refusal seen */
};

static void apply(struct ph_tracker *t, struct sess *s,
		  const struct ph_ftp_action *a, int n, __u64 ts,
		  struct batch *b)
{
	for (int i = 0; i < n; i++) {
		switch (a[i].kind) {
		case PH_FTP_OPEN:
			act_open(t, s, &a[i], ts);
			break;
		case PH_FTP_REVOKE:
			act_revoke(t, s, &a[i], b->revoke_why ? b->revoke_why :
				   revoke_reason(i + 1 < n ? &a[i + 1] : NULL));
			break;
		case PH_FTP_REFUSE:
			act_refuse(t, s, &a[i]);
			b->refused = a[i].reason;
			break;
		case PH_FTP_ENCRYPTED:
			tlog(t, PH_TRK_LOG_INFO,
			     "ftp: session %08x: control channel encrypted (AUTH accepted): no pinhole from it any more",
			     s->id);
			break;
		}
	}
	if (n > 0) {
		s->dirty = true;
		t->totals_dirty = true;
	}
}

static void sess_close(struct ph_tracker *t, struct sess *s, __u64 now,
		       const char *why)
{
	struct ph_ftp_action acts[PH_FTP_MAX_ACTIONS];
	struct batch b = { .revoke_why = why };
	int n = ph_ftp_close(&s->ftp, acts, PH_FTP_MAX_ACTIONS);

	if (n > 0)
		apply(t, s, acts, n, now, &b);
	for (int i = 0; i < PH_TRK_BPF_SLOTS; i++)
		if (s->holes[i].valid)
			hole_remove(t, s, &s->holes[i]);
	s->pending_bpf = s->late_dup = false;
	if (now > s->last_ns)
		s->last_ns = now;
	list_unlink(&t->open, s);
	s->closed = true;
	s->closed_ns = now;
	list_push_tail(&t->closed, s);
	s->dirty = true;
	tlog(t, PH_TRK_LOG_DEBUG,
	     "ftp: session %08x closed (%s): %u opened, %u used, %u expired, %u revoked, %u refused",
	     s->id, why, s->opened, s->used, s->expired, s->revoked, s->refused);
}

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

/*
 * Bytes [seq, seq + n) of a segment were not captured (caplen < len).
 * ftp.h has no call that skips a stretch of the stream, so it gets filler
 * that can complete no line: a ',' (after a number it makes a 227 carry a
 * seventh number, a PORT end in garbage; at a line start it is no code and
 * no command), then 0x01 bytes. The line the loss cut is thus never parsed
 * as it was, and the next LF resynchronises. Replace with the parser's own
 * skip call once it has one.
 */
static void feed_lost(struct ph_tracker *t, struct sess *s, int side,
		      __u32 seq, __u32 n, __u64 ts, struct batch *b)
{
	static __u8 filler[1024];
	struct ph_ftp_action acts[PH_FTP_MAX_ACTIONS];
	bool first = true;

	if (!filler[0]) {
		memset(filler, 0x01, sizeof(filler));
		filler[0] = ',';
	}
	while (n) {
		const __u8 *p = first ? filler : filler + 1;
		__u32 max = first ? sizeof(filler) : sizeof(filler) - 1;
		__u32 chunk = n < max ? n : max;
		int k = ph_ftp_feed(&s->ftp, side, seq, p, chunk, ts, acts,
				    PH_FTP_MAX_ACTIONS);

		if (k > 0)
			apply(t, s, acts, k, ts, b);
		seq += chunk;
		n -= chunk;
		first = false;
	}
}

/*
 * Has the parser consumed one side's stream up to @end? Its own position,
 * not the furthest segment fed: a segment held out of order, or one whose
 * bytes lost to another copy, has not been parsed (yet).
 */
static bool parsed(const struct sess *s, int side, __u32 end)
{
	const struct ph_ftp_stream *st = &s->ftp.st[side];

	return st->synced && !before(st->nxt, end);
}

static bool blind(const struct sess *s)
{
	return ph_ftp_stats(&s->ftp)->lf[SIDE_CLIENT] < s->blind_until;
}

/* A datapath pinhole the tracker cannot judge: kept (hole.trusted). */
static void hole_trust(struct ph_tracker *t, struct sess *s, struct hole *h,
		       const char *why)
{
	char ph[160];

	h->trusted = true;
	t->totals.kept++;
	t->totals_dirty = true;
	ph_trk_fmt_pinhole(&h->key, h->dir, ph, sizeof(ph));
	tlog(t, PH_TRK_LOG_INFO,
	     "ftp: kept %s session %08x: installed by the datapath, %s", ph,
	     s->id, why);
}

/* Decide the datapath's unconfirmed pinholes announced by this side once
 * their segment has been parsed. */
static void decide_holes(struct ph_tracker *t, struct sess *s, int side,
			 const struct batch *b)
{
	for (int i = 0; i < PH_TRK_BPF_SLOTS; i++) {
		struct hole *h = &s->holes[i];

		if (!h->valid || h->side != side || h->trusted)
			continue;
		if (h->has_seq && !parsed(s, side, h->end_seq))
			continue;
		if (blind(s)) {
			hole_trust(t, s, h, "its negotiation was not seen whole");
			continue;
		}
		hole_reject(t, s, h, b->refused);
	}
}

/* A record of another connection on this 4-tuple (an older one, whose
 * records a full ring buffer kept): not this session's. */
static bool foreign(const struct sess *s, const struct ph_event *ev)
{
	return ev->session && s->id != ev->session;
}

/* The session of a record other than CTRL_OPEN: made here if the control
 * connection is still live (pickup mode). */
static struct sess *sess_for(struct ph_tracker *t, const struct ph_event *ev,
			     const struct ph_flow_key *k, __u64 ts)
{
	struct sess *s = find_key(t, k);

	if (!s && t->ops->ctrl_live &&
	    !t->ops->ctrl_live(t->ctx, k, ev->session))
		return NULL;
	if (!s)
		s = sess_create(t, ev, k, ts);
	if (s)
		touch(t, s, ts);
	return s;
}

static void on_open(struct ph_tracker *t, const struct ph_event *ev,
		    const struct ph_flow_key *k, const __u8 *data,
		    size_t avail, __u64 ts)
{
	struct sess *s = find_key(t, k);
	struct ph_ctrl_open_data od;

	/* A new connection on the 4-tuple of a closed one. */
	if (s && s->closed) {
		sess_drop(t, s);
		s = NULL;
	}
	if (s) {
		touch(t, s, ts);
		return;
	}
	s = sess_create(t, ev, k, ts);
	/* The handshake's sequence numbers: the streams start there, not at
	 * whichever segment happens to come first. */
	if (s && ev->caplen >= sizeof(od) && avail >= sizeof(od)) {
		memcpy(&od, data, sizeof(od));
		ph_ftp_set_isn(&s->ftp, 1, od.client_nxt - 1);
		ph_ftp_set_isn(&s->ftp, 0, od.server_nxt - 1);
	}
}

/*
 * What the local stack acknowledged of the peer's stream (a record seen on
 * egress): bytes below it that the parser never got reached the endpoint
 * anyway, and the stream resumes at the next line (ph_ftp_ack()). Only
 * the local stack's ACKs count: the peer's say nothing about what this
 * host accepted.
 */
static void on_ack(struct sess *s, const struct ph_event *ev)
{
	if (ev->dir == PH_DIR_OUT && (ev->tcp_flags & TCP_ACK))
		ph_ftp_ack(&s->ftp, !ev->from_client, ev->ack);
}

static void on_data(struct ph_tracker *t, const struct ph_event *ev,
		    const struct ph_flow_key *k, const __u8 *data,
		    size_t avail, __u64 ts)
{
	struct ph_ftp_action acts[PH_FTP_MAX_ACTIONS];
	struct batch b = { .refused = PH_FTP_REFUSE_NONE };
	int side = ev->from_client ? SIDE_CLIENT : SIDE_SERVER;
	__u32 len = ev->len, cap = ev->caplen;
	struct sess *s = find_key(t, k);
	int n;

	if (s && (s->closed || foreign(s, ev)))
		return; /* a retransmission after the close; another connection */
	if (!len) {
		/* A pure ACK of the local stack, reported because the peer's
		 * stream has bytes the datapath never showed. */
		if (s)
			on_ack(s, ev);
		return;
	}
	if (!s)
		s = sess_for(t, ev, k, ts);
	else
		touch(t, s, ts);
	if (!s)
		return;
	if (cap > PH_CTRL_CAP)
		cap = PH_CTRL_CAP;
	if (cap > avail)
		cap = (__u32)avail;
	if (cap > len)
		cap = len;
	if (cap) {
		n = ph_ftp_feed(&s->ftp, side, ev->seq, data, cap, ts, acts,
				PH_FTP_MAX_ACTIONS);
		if (n > 0)
			apply(t, s, acts, n, ts, &b);
	}
	if (cap < len) {
		t->totals.events_lost++;
		feed_lost(t, s, side, ev->seq + cap, len - cap, ts, &b);
	}
	decide_holes(t, s, side, &b);
	on_ack(s, ev);
}

static void on_close(struct ph_tracker *t, const struct ph_event *ev,
		     const struct ph_flow_key *k, __u64 ts)
{
	struct sess *s = find_key(t, k);

	if (s && !s->closed && !foreign(s, ev))
		sess_close(t, s, ts, "control closed");
}

void ph_trk_sync_to_resume(const struct ph_ctrl_sync *d, bool lost,
			   struct ph_ftp_resume *r)
{
	const struct ph_ftp_parse *ps = &d->ps;

	memset(r, 0, sizeof(*r));
	for (int i = 0; i < 2; i++) {
		r->nxt[i] = ps->st[i].nxt;
		r->line_len[i] = ps->st[i].line_len;
		for (int b = 0; b < 8; b++)
			r->head[i][b] = (__u8)(ps->st[i].head >> (8 * b));
		r->burst[i] = ps->st[i].burst;
	}
	r->skip[SIDE_SERVER] = !!(ps->flags & PH_FTPC_SKIP_SERVER);
	r->skip[SIDE_CLIENT] = !!(ps->flags & PH_FTPC_SKIP_CLIENT);
	r->last_cmd = ps->last_cmd <= PH_FTPC_CMD_AUTH ?
			      (enum ph_ftp_cmd)ps->last_cmd : PH_FTP_CMD_OTHER;
	r->awaiting = ps->awaiting;
	r->epsv_bad_family = ps->epsv_bad_family;
	r->last_cmd_opened = ps->last_cmd_opened;
	r->in_multiline = ps->in_multiline;
	r->ml_code = ps->ml_code;
	r->encrypted = !!(ps->flags & PH_FTPC_ENCRYPTED);
	r->lost = lost;
	r->has_keep = !!(ps->flags & PH_FTPC_PINHOLE);
	if (r->has_keep)
		key_norm(&r->keep, &ps->pinhole);
}

static void forget_trusted(struct sess *s)
{
	for (int i = 0; i < PH_TRK_BPF_SLOTS; i++)
		if (s->holes[i].trusted)
			s->holes[i].valid = false;
}

/* The datapath's own pinhole of session s, shown by a SYNC or ftp_ctrl:
 * known already, or kept unjudged (its line was never shown to us). */
static void adopt_hole(struct ph_tracker *t, struct sess *s,
		       const struct ph_flow_key *k, __u64 ts, const char *why)
{
	struct ph_ftp_action p;
	struct hole *h;
	__u8 dir = k->lport && !k->rport ? PH_DIR_IN : PH_DIR_OUT;

	if (ph_ftp_pending(&s->ftp, &p) && key_eq(&p.key, k)) {
		s->pending_bpf = true; /* the entry is the datapath's */
		return;
	}
	if (hole_find(s, k) || key_eq(&s->bpf_last, k))
		return; /* reported already (and maybe used) */
	/* The datapath holds one pinhole per session: older kept ones are
	 * gone (replaced, used or expired there). */
	forget_trusted(s);
	s->bpf_last = *k;
	h = hole_free(s);
	if (!h)
		h = &s->holes[0]; /* its deadline is the nearest: forget it */
	hole_fill(s, h, k, dir, ts);
	hole_trust(t, s, h, why);
}

/* Apply a SYNC's (or ftp_ctrl's) parser state to session s. */
static void resume(struct ph_tracker *t, struct sess *s,
		   const struct ph_ctrl_sync *d, bool lost, __u64 ts,
		   const char *why)
{
	struct ph_ftp_action acts[PH_FTP_RESUME_MAX_ACTIONS];
	struct batch b = { .refused = PH_FTP_REFUSE_NONE,
			   .revoke_why = lost ? "records lost" : NULL };
	const struct ph_ftp_stats *st = ph_ftp_stats(&s->ftp);
	__u64 skipped = st->resumed_bytes;
	struct ph_ftp_resume r;
	int n = 0, ret;

	ph_trk_sync_to_resume(d, lost, &r);
	ret = ph_ftp_resume(&s->ftp, &r, ts, acts, PH_FTP_RESUME_MAX_ACTIONS,
			    &n);
	if (ret <= 0)
		return;
	if (n > 0)
		apply(t, s, acts, n, ts, &b);
	t->totals.quiet_bytes += st->resumed_bytes - skipped;
	t->totals_dirty = true;
	s->dirty = true;
	if (ret & PH_FTP_RESUME_BLIND)
		s->blind_until = st->lf[SIDE_CLIENT] + 2;
	/* Without losses every datapath pinhole came with its EXPECT_BPF. */
	if (lost && r.has_keep && !ph_ftp_encrypted(&s->ftp))
		adopt_hole(t, s, &r.keep, ts, why);
}

/* Where the datapath's parser stands: quiet or lost records before it. */
static void on_sync(struct ph_tracker *t, const struct ph_event *ev,
		    const struct ph_flow_key *k, const __u8 *data,
		    size_t avail, __u64 ts)
{
	struct ph_ctrl_sync d;
	struct sess *s = find_key(t, k);

	if (ev->caplen < sizeof(d) || avail < sizeof(d))
		return;
	memcpy(&d, data, sizeof(d));
	if (s && (s->closed || foreign(s, ev)))
		return;
	if (!s)
		s = sess_for(t, ev, k, ts);
	else
		touch(t, s, ts);
	if (!s)
		return;
	t->totals.syncs++;
	resume(t, s, &d, d.flags & PH_SYNC_LOST, ts,
	       "its record was lost (ring buffer full)");
}

static void early_used_log(struct ph_tracker *t, struct early_used *e)
{
	char ph[160];
	__u8 dir = e->key.lport && !e->key.rport ? PH_DIR_IN : PH_DIR_OUT;

	ph_trk_fmt_pinhole(&e->key, dir, ph, sizeof(ph));
	tlog(t, PH_TRK_LOG_INFO, "ftp: used %s session %08x (not tracked)", ph,
	     e->session);
	e->valid = false;
}

static void early_used_add(struct ph_tracker *t, const struct ph_flow_key *k,
			   __u32 session, __u64 ts)
{
	struct early_used *e = &t->early[0];

	for (int i = 0; i < EARLY_USED; i++) {
		if (!t->early[i].valid) {
			e = &t->early[i];
			break;
		}
		if (t->early[i].ts < e->ts)
			e = &t->early[i];
	}
	if (e->valid)
		early_used_log(t, e);
	e->key = *k;
	e->session = session;
	e->ts = ts;
	e->valid = true;
}

/* The datapath reported hole h: was it used already? */
static void early_used_match(struct ph_tracker *t, struct sess *s,
			     struct hole *h)
{
	char ph[160];

	for (int i = 0; i < EARLY_USED; i++) {
		struct early_used *e = &t->early[i];

		if (!e->valid || e->session != s->id ||
		    !key_covers(&h->key, &e->key))
			continue;
		e->valid = false;
		h->used = true;
		s->used++;
		ph_trk_fmt_pinhole(&h->key, h->dir, ph, sizeof(ph));
		tlog(t, PH_TRK_LOG_INFO, "ftp: used %s session %08x", ph, s->id);
		return;
	}
}

static void early_used_expire(struct ph_tracker *t, __u64 now)
{
	for (int i = 0; i < EARLY_USED; i++)
		if (t->early[i].valid && now >= t->early[i].ts + EARLY_USED_NS)
			early_used_log(t, &t->early[i]);
}

/* The datapath installed a pinhole itself (expect key in ev->expect). */
static void on_expect_bpf(struct ph_tracker *t, const struct ph_event *ev,
			  const struct ph_flow_key *ck, __u64 ts)
{
	struct ph_flow_key k;
	struct ph_ftp_action p;
	struct sess *s = find_key(t, ck);
	struct hole *h;
	char ph[160];
	__u8 dir;
	int side;

	key_norm(&k, &ev->expect);
	dir = k.lport && !k.rport ? PH_DIR_IN : PH_DIR_OUT;
	ph_trk_fmt_pinhole(&k, dir, ph, sizeof(ph));
	if (s && foreign(s, ev))
		return; /* an older connection's: gone with it */
	if (s && s->closed) {
		tlog(t, PH_TRK_LOG_WARN,
		     "ftp: DATAPATH BUG: the datapath installed %s for session %08x, whose control connection is closed; deleted",
		     ph, s->id);
		t->ops->expect_del(t->ctx, &k);
		return;
	}
	s = sess_for(t, ev, ck, ts);
	if (!s)
		return; /* untracked: the entry expires by its deadline */
	/* Passive mode: the server announced it; active: the client. */
	side = (s->role == PH_ROLE_SERVER) == (dir == PH_DIR_IN) ? SIDE_SERVER
								 : SIDE_CLIENT;
	/* Reported before the adoption took ftp_ctrl's state, which shows
	 * the datapath's pinhole if it still holds one. */
	if (s->adopted && ev->len &&
	    !before(s->adopt_nxt[side], ev->seq + ev->len))
		return;
	if (ev->len && parsed(s, side, ev->seq + ev->len)) {
		/* Reported after the tracker parsed its segment. */
		if (ph_ftp_pending(&s->ftp, &p) && key_eq(&p.key, &k)) {
			s->late_dup = true;
			return;
		}
		tlog(t, PH_TRK_LOG_WARN,
		     "ftp: DATAPATH BUG: the datapath installed %s session %08x, which the tracker did not open; deleted",
		     ph, s->id);
		t->ops->expect_del(t->ctx, &k);
		return;
	}
	h = hole_find(s, &k);
	if (!h)
		forget_trusted(s); /* replaced by this one in the datapath */
	s->bpf_last = k;
	if (!h)
		h = hole_free(s);
	if (!h) {
		h = &s->holes[0];
		hole_reject(t, s, h, PH_FTP_REFUSE_FLOOD);
	}
	hole_fill(s, h, &k, dir, ts);
	h->has_seq = ev->len > 0;
	h->end_seq = ev->seq + ev->len;
	early_used_match(t, s, h);
}

/* Which session does a used pinhole belong to? By id, else by key. */
static struct sess *used_owner(struct ph_tracker *t, __u32 id,
			       const struct ph_flow_key *k, struct hole **hp)
{
	struct ph_ftp_action p;
	struct slist *lists[2] = { &t->open, &t->closed };
	struct sess *s;

	for (s = t->by_id[hash_id(t, id)]; s; s = s->next_id) {
		if (s->id != id)
			continue;
		if (ph_ftp_pending(&s->ftp, &p) && key_covers(&p.key, k))
			return s;
		for (int i = 0; i < PH_TRK_BPF_SLOTS; i++)
			if (s->holes[i].valid && key_covers(&s->holes[i].key, k)) {
				*hp = &s->holes[i];
				return s;
			}
	}
	/* Bounded by the table size; only for a datapath without ids. */
	for (int l = 0; l < 2; l++)
		for (s = lists[l]->head; s; s = s->next) {
			if (ph_ftp_pending(&s->ftp, &p) && key_covers(&p.key, k))
				return s;
			for (int i = 0; i < PH_TRK_BPF_SLOTS; i++)
				if (s->holes[i].valid &&
				    key_covers(&s->holes[i].key, k)) {
					*hp = &s->holes[i];
					return s;
				}
		}
	return NULL;
}

static void on_used(struct ph_tracker *t, const struct ph_event *ev,
		    __u64 ts)
{
	struct ph_ftp_action p;
	struct ph_flow_key k;
	struct hole *h = NULL;
	struct sess *s;
	char ph[160];

	key_norm(&k, &ev->expect);
	t->totals.used++;
	t->totals_dirty = true;
	s = used_owner(t, ev->session, &k, &h);
	if (!s) {
		early_used_add(t, &k, ev->session, ts);
		return;
	}
	s->used++;
	touch(t, s, ts);
	if (h) {
		h->used = true;
		ph_trk_fmt_pinhole(&h->key, h->dir, ph, sizeof(ph));
	} else {
		ph_ftp_pending(&s->ftp, &p);
		ph_trk_fmt_pinhole(&p.key, p.dir, ph, sizeof(ph));
		/* The datapath installed it, a SYN took it, and then our own
		 * write (made before we knew) may have re-armed it. */
		if (s->late_dup)
			t->ops->expect_del(t->ctx, &p.key);
		ph_ftp_forget_pending(&s->ftp);
		s->pending_bpf = s->late_dup = false;
	}
	tlog(t, PH_TRK_LOG_INFO, "ftp: used %s session %08x", ph, s->id);
}

int ph_trk_event(struct ph_tracker *t, const void *rec, size_t size,
		 __u64 now)
{
	struct ph_event ev;
	struct ph_flow_key k;
	__u64 ts;

	t->now = now;
	if (!rec || size < EV_HDR) {
		t->totals.events_lost++;
		t->totals_dirty = true;
		return -EINVAL;
	}
	memcpy(&ev, rec, EV_HDR);
	t->totals.events++;
	t->totals_dirty = true;
	/* The segment's own time, unless it claims to be from the future. */
	ts = ev.ts_ns && ev.ts_ns <= now ? ev.ts_ns : now;
	key_norm(&k, &ev.key);
	switch (ev.type) {
	case PH_EV_CTRL_OPEN:
		on_open(t, &ev, &k, (const __u8 *)rec + EV_HDR, size - EV_HDR, ts);
		break;
	case PH_EV_CTRL_DATA:
		on_data(t, &ev, &k, (const __u8 *)rec + EV_HDR, size - EV_HDR,
			ts);
		break;
	case PH_EV_CTRL_CLOSE:
		on_close(t, &ev, &k, ts);
		break;
	case PH_EV_CTRL_SYNC:
		on_sync(t, &ev, &k, (const __u8 *)rec + EV_HDR, size - EV_HDR,
			ts);
		break;
	case PH_EV_EXPECT_USED:
		on_used(t, &ev, ts);
		break;
	case PH_EV_EXPECT_BPF:
		on_expect_bpf(t, &ev, &k, ts);
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sweep and publication                                               */
/* ------------------------------------------------------------------ */

static void expire(struct ph_tracker *t, struct sess *s, __u64 now)
{
	struct ph_ftp_action p;
	char ph[160];

	if (ph_ftp_pending(&s->ftp, &p) && deadline_passed(p.deadline_ns, now)) {
		if (!hole_find(s, &p.key))
			t->ops->expect_del(t->ctx, &p.key);
		ph_ftp_forget_pending(&s->ftp);
		s->pending_bpf = s->late_dup = false;
		s->expired++;
		t->totals.expired++;
		s->dirty = true;
		t->totals_dirty = true;
		ph_trk_fmt_pinhole(&p.key, p.dir, ph, sizeof(ph));
		tlog(t, PH_TRK_LOG_INFO, "ftp: expired %s session %08x", ph,
		     s->id);
	}
	for (int i = 0; i < PH_TRK_BPF_SLOTS; i++) {
		struct hole *h = &s->holes[i];

		if (!h->valid || !deadline_passed(h->deadline_ns, now))
			continue;
		ph_trk_fmt_pinhole(&h->key, h->dir, ph, sizeof(ph));
		if (h->trusted) {
			/* By now past the datapath's own deadline too. */
			tlog(t, PH_TRK_LOG_INFO,
			     "ftp: expired %s session %08x (installed by the datapath)",
			     ph, s->id);
			if (!h->used) {
				s->expired++;
				t->totals.expired++;
				t->totals_dirty = true;
				s->dirty = true;
			}
			hole_remove(t, s, h);
			continue;
		}
		tlog(t, PH_TRK_LOG_WARN,
		     "ftp: expired %s session %08x: installed by the datapath, never confirmed by the tracker",
		     ph, s->id);
		hole_remove(t, s, h);
	}
}

/* Internal parser state, read-only: AUTH sent and not yet answered. */
static bool awaiting_auth(const struct ph_ftp_session *f)
{
	return f->awaiting && f->last_cmd == PH_FTP_CMD_AUTH;
}

static void fill_info(const struct sess *s, struct ph_ftp_session_info *i)
{
	const struct ph_ftp_stats *st = ph_ftp_stats(&s->ftp);
	struct ph_ftp_action p;

	memset(i, 0, sizeof(*i));
	i->started_ns = s->started_ns;
	i->last_ns = s->last_ns;
	i->session = s->id;
	i->role = s->role;
	i->state = s->closed ? PH_SS_CLOSED :
		   ph_ftp_encrypted(&s->ftp) ? PH_SS_ENCRYPTED :
		   awaiting_auth(&s->ftp) ? PH_SS_AUTH : PH_SS_PLAIN;
	if (!s->closed && ph_ftp_pending(&s->ftp, &p)) {
		i->has_pinhole = 1;
		i->pinhole = p.key;
		i->pinhole_deadline_ns = p.deadline_ns;
		i->pinhole_dir = p.dir;
	}
	i->lines = st->lines > UINT32_MAX ? UINT32_MAX : (__u32)st->lines;
	i->opened = s->opened;
	i->used = s->used;
	i->expired = s->expired;
	i->revoked = s->revoked;
	i->refused = s->refused;
}

static void publish(struct ph_tracker *t)
{
	struct slist *lists[2] = { &t->open, &t->closed };
	struct ph_ftp_session_info info;
	struct sess *s;

	for (int l = 0; l < 2; l++)
		for (s = lists[l]->head; s; s = s->next) {
			if (!s->dirty || !t->ops->session_put)
				continue;
			fill_info(s, &info);
			if (!t->ops->session_put(t->ctx, &s->key, &info)) {
				s->published = true;
				s->dirty = false;
			}
		}
	if (t->totals_dirty && t->ops->totals_put &&
	    !t->ops->totals_put(t->ctx, &t->totals))
		t->totals_dirty = false;
}

/* Entries nobody holds whose deadline passed: left by a tracker that
 * stopped, or by the datapath for a session we never saw. Collected
 * first, deleted after: deleting during iteration restarts it. */
static void orphan_scan(struct ph_tracker *t, __u64 now)
{
	static struct ph_flow_key found[ORPHAN_BATCH];
	static __u8 dirs[ORPHAN_BATCH];
	static __u32 ids[ORPHAN_BATCH];
	struct ph_flow_key cur, next;
	struct ph_expect v;
	char ph[160];
	int n = 0;

	for (__u32 i = 0; i < PH_EXPECT_MAX && n < ORPHAN_BATCH; i++) {
		if (t->ops->expect_next(t->ctx, i ? &cur : NULL, &next, &v))
			break;
		cur = next;
		if (!deadline_passed(v.deadline_ns, now))
			continue;
		dirs[n] = v.dir;
		ids[n] = v.session;
		found[n++] = next;
	}
	for (int i = 0; i < n; i++) {
		if (t->ops->expect_del(t->ctx, &found[i]))
			continue;
		t->totals.expired++;
		t->totals_dirty = true;
		ph_trk_fmt_pinhole(&found[i], dirs[i], ph, sizeof(ph));
		tlog(t, PH_TRK_LOG_INFO, "ftp: expired %s session %08x (orphan)",
		     ph, ids[i]);
	}
}

/* Open sessions whose control flow is gone without a CTRL_CLOSE (lost
 * to a full ring buffer, or an eviction): closed at the second scan that
 * finds them gone. O(sessions) lookups every PH_TRK_ORPHAN_SCAN_NS. */
static void gone_scan(struct ph_tracker *t, __u64 now)
{
	struct sess *s, *nx;

	if (!t->ops->ctrl_live)
		return;
	for (s = t->open.head; s; s = nx) {
		nx = s->next;
		if (t->ops->ctrl_live(t->ctx, &s->key, s->id)) {
			s->gone = 0;
			continue;
		}
		if (++s->gone >= GONE_SCANS)
			sess_close(t, s, now, "control connection gone");
	}
}

void ph_trk_sweep(struct ph_tracker *t, __u64 now)
{
	struct sess *s, *nx;

	t->now = now;
	for (s = t->open.head; s; s = nx) {
		nx = s->next;
		expire(t, s, now);
		if (now > s->last_ns && now - s->last_ns >= t->cfg.idle_ns)
			sess_close(t, s, now, "control idle");
	}
	for (s = t->closed.head; s; s = nx) {
		nx = s->next;
		if (now >= s->closed_ns + t->cfg.linger_ns)
			sess_drop(t, s);
	}
	early_used_expire(t, now);
	if (now >= t->next_orphan_scan) {
		if (t->ops->expect_next)
			orphan_scan(t, now);
		gone_scan(t, now);
		t->next_orphan_scan = now + PH_TRK_ORPHAN_SCAN_NS;
	}
	publish(t);
	if (t->log_suppressed && t->ops->log && log_allow(t)) {
		char line[128];

		snprintf(line, sizeof(line),
			 "ftp: %llu log lines suppressed (more than %u a second)",
			 (unsigned long long)t->log_suppressed, t->cfg.log_rate);
		t->log_suppressed = 0;
		t->ops->log(t->ctx, PH_TRK_LOG_WARN, line);
	}
}

int ph_trk_adopt(struct ph_tracker *t, const struct ph_flow_key *key,
		 const struct ph_ftp_ctrl *c, __u64 now)
{
	struct ph_ctrl_sync d = { .ps = c->ps };
	struct ph_event ev;
	struct ph_flow_key k;
	struct sess *s;

	key_norm(&k, key);
	if (find_key(t, &k))
		return -EEXIST;
	t->now = now;
	memset(&ev, 0, sizeof(ev));
	ev.key = k;
	ev.session = c->session;
	ev.host_role = c->role;
	ev.encrypted = !!(c->ps.flags & PH_FTPC_ENCRYPTED);
	s = sess_create(t, &ev, &k, now);
	if (!s)
		return -ENOMEM;
	s->started_ns = c->created_ns && c->created_ns <= now ? c->created_ns
							       : now;
	s->adopted = true;
	t->totals.adopted++;
	t->totals_dirty = true;
	if (c->desync || ev.encrypted)
		return 0; /* its streams start with its next record (pickup) */
	s->adopt_nxt[0] = c->ps.st[0].nxt;
	s->adopt_nxt[1] = c->ps.st[1].nxt;
	/* What happened before is unknown: as after lost records. */
	resume(t, s, &d, true, now,
	       "adopted with its session (the tracker was not running)");
	return 0;
}

void ph_trk_unpublish(struct ph_tracker *t)
{
	struct slist *lists[2] = { &t->open, &t->closed };
	struct sess *s;

	for (int l = 0; l < 2; l++)
		for (s = lists[l]->head; s; s = s->next)
			if (s->published && t->ops->session_del) {
				t->ops->session_del(t->ctx, &s->key);
				s->published = false;
			}
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

struct ph_tracker *ph_trk_new(const struct ph_trk_config *cfg,
			      const struct ph_trk_ops *ops, void *ctx,
			      const struct ph_ftp_totals *initial)
{
	struct ph_tracker *t;
	__u32 buckets = 1;

	if (!ops || !ops->expect_put || !ops->expect_del)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (cfg)
		t->cfg = *cfg;
	if (!t->cfg.max_sessions)
		t->cfg.max_sessions = PH_FTP_CTRL_MAX;
	if (!t->cfg.ttl_ns)
		t->cfg.ttl_ns = PH_FTP_DEFAULT_TTL_NS;
	if (!t->cfg.linger_ns)
		t->cfg.linger_ns = PH_TRK_LINGER_NS;
	if (!t->cfg.idle_ns)
		t->cfg.idle_ns = PH_TRK_IDLE_NS;
	if (!t->cfg.log_rate)
		t->cfg.log_rate = PH_TRK_LOG_RATE;
	if (!t->cfg.log_burst)
		t->cfg.log_burst = PH_TRK_LOG_BURST;
	if (!t->cfg.hash_seed[0] && !t->cfg.hash_seed[1] &&
	    getrandom(t->cfg.hash_seed, sizeof(t->cfg.hash_seed), 0) < 0)
		t->cfg.hash_seed[0] = (__u64)time(NULL) ^ (__u64)getpid();
	while (buckets < t->cfg.max_sessions && buckets < (1u << 24))
		buckets <<= 1;
	t->mask = buckets - 1;
	t->by_key = calloc(buckets, sizeof(*t->by_key));
	t->by_id = calloc(buckets, sizeof(*t->by_id));
	if (!t->by_key || !t->by_id) {
		free(t->by_key);
		free(t->by_id);
		free(t);
		return NULL;
	}
	t->ops = ops;
	t->ctx = ctx;
	t->next_id = (__u32)t->cfg.hash_seed[1];
	if (initial)
		t->totals = *initial;
	t->totals_dirty = true;
	return t;
}

void ph_trk_free(struct ph_tracker *t)
{
	if (!t)
		return;
	while (t->open.head)
		sess_destroy(t, t->open.head);
	while (t->closed.head)
		sess_destroy(t, t->closed.head);
	free(t->by_key);
	free(t->by_id);
	free(t);
}

void ph_trk_set_ttl(struct ph_tracker *t, __u64 ttl_ns)
{
	t->cfg.ttl_ns = ttl_ns ? ttl_ns : PH_FTP_DEFAULT_TTL_NS;
}

const struct ph_ftp_totals *ph_trk_totals(const struct ph_tracker *t)
{
	return &t->totals;
}

__u32 ph_trk_nsessions(const struct ph_tracker *t)
{
	return t->nsess;
}

bool ph_trk_is_ftps(const struct ph_tracker *t, const struct ph_flow_key *k)
{
	struct ph_flow_key nk;
	struct sess *s;

	key_norm(&nk, k);
	s = find_key(t, &nk);
	return s && !s->closed && ph_ftp_encrypted(&s->ftp);
}

bool ph_trk_any_ftps(const struct ph_tracker *t)
{
	for (struct sess *s = t->open.head; s; s = s->next)
		if (ph_ftp_encrypted(&s->ftp))
			return true;
	return false;
}

void ph_trk_add_ftps_fixed(struct ph_tracker *t, __u64 n)
{
	if (!n)
		return;
	t->totals.ftps_fixed += n;
	t->totals_dirty = true;
}

/* ------------------------------------------------------------------ */
/* Runner: pins, lock, ring buffer, loop                               */
/* ------------------------------------------------------------------ */

void ph_trk_pins_close(struct ph_trk_pins *p)
{
	int *fds[] = { &p->events, &p->expect, &p->sessions, &p->totals,
		       &p->state, &p->slot_meta, &p->flows, &p->ftps_peers,
		       &p->syn_watch, &p->ports, &p->rules, &p->ftp_nat,
		       &p->ftp_ctrl };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int ph_trk_pins_open(struct ph_trk_pins *p, const char *pin_dir)
{
	static const char *const names[] = { "events", "expect", "ftp_sessions",
					     "ftp_totals", "state", "slot_meta",
					     "flows", "ftps_peers", "syn_watch",
					     "ports", "rules", "ftp_nat",
					     "ftp_ctrl" };
	int *fds[] = { &p->events, &p->expect, &p->sessions, &p->totals,
		       &p->state, &p->slot_meta, &p->flows, &p->ftps_peers,
		       &p->syn_watch, &p->ports, &p->rules, &p->ftp_nat,
		       &p->ftp_ctrl };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		*fds[i] = -1;
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		int fd = ph_pin_get(pin_dir, names[i]);

		if (fd < 0) {
			ph_trk_pins_close(p);
			return fd;
		}
		*fds[i] = fd;
	}
	return 0;
}

/* The tracker's lock file: /run/pinhole/<escaped pin dir>.tracker.lock */
#define TRK_LOCK_SUFFIX ".tracker.lock"

static long read_pid(int fd)
{
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	return n > 0 ? strtol(buf, NULL, 10) : 0;
}

int ph_trk_lock(const char *pin_dir)
{
	char path[PATH_MAX], pid[32];
	int fd, tries;

	ph_lock_path(pin_dir, TRK_LOCK_SUFFIX, path, sizeof(path));
	fd = ph_lock_open(path);
	if (fd < 0)
		return fd;
	/* A few tries: `pinhole sessions` takes it shared for an instant. */
	for (tries = 0; flock(fd, LOCK_EX | LOCK_NB); tries++) {
		if (errno != EWOULDBLOCK) {
			pr_warn("cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return -PH_EXIT_ENV;
		}
		if (tries == 5) {
			pr_warn("a session tracker (pinhole daemon or run, pid %ld) already runs for %s; stop it first",
				read_pid(fd), pin_dir);
			close(fd);
			return -PH_EXIT_USER;
		}
		usleep(20000);
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, strlen(pid), 0) < 0)
		pr_debug("cannot write the pid into %s: %s", path, strerror(errno));
	return fd;
}

bool ph_trk_running(const char *pin_dir, long *pid)
{
	char path[PATH_MAX];
	bool held;
	int fd;

	*pid = 0;
	ph_lock_path(pin_dir, TRK_LOCK_SUFFIX, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	held = flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK;
	if (held)
		*pid = read_pid(fd);
	close(fd); /* releases a shared lock we got */
	return held;
}

struct ph_trk_runner {
	char pin_dir[PATH_MAX];
	struct ph_trk_pins pins;
	struct ring_buffer *rb;
	struct ph_tracker *t;
	struct ph_ftps_rec *ftps;
	struct ph_ftps_maps ftps_maps;
	bool syslog;
	int (*hup)(void *ctx); /* SIGHUP: reload, then go on */
	void *hup_ctx;
	bool ftps_failed; /* a pass failed (said once) */
	__u32 events_id;
	__u32 xdp_prog_id; /* of the prog_xdp pin: an upgrade replaces it */
	__u32 since_sweep;
	__u64 next_sweep;
	__u64 next_ftps;
	__u32 generation; /* of the policy the sessions' NAT lists are from */
};

#define RB_BUDGET 4096 /* records between sweep-time checks */

static int rt_expect_put(void *ctx, const struct ph_flow_key *k,
			 const struct ph_expect *v)
{
	struct ph_trk_runner *r = ctx;
	int err;

	/* The datapath looks for an inbound pinhole only while the port's
	 * watch says one may exist: raise it first. */
	if (v->dir == PH_DIR_IN) {
		err = ph_syn_watch_raise(r->pins.syn_watch, k->lport,
					 v->deadline_ns);
		if (err)
			return err;
	}
	return bpf_map_update_elem(r->pins.expect, k, v, BPF_ANY) ? -errno : 0;
}

static int rt_expect_del(void *ctx, const struct ph_flow_key *k)
{
	struct ph_trk_runner *r = ctx;

	return bpf_map_delete_elem(r->pins.expect, k) ? -errno : 0;
}

static int rt_expect_next(void *ctx, const struct ph_flow_key *prev,
			  struct ph_flow_key *next, struct ph_expect *v)
{
	struct ph_trk_runner *r = ctx;

	for (int i = 0; i < 4; i++) {
		if (bpf_map_get_next_key(r->pins.expect, prev, next))
			return -errno;
		if (!bpf_map_lookup_elem(r->pins.expect, next, v))
			return 0;
		prev = next; /* deleted meanwhile: skip it */
	}
	return -ENOENT;
}

static int rt_session_put(void *ctx, const struct ph_flow_key *k,
			  const struct ph_ftp_session_info *v)
{
	struct ph_trk_runner *r = ctx;

	return bpf_map_update_elem(r->pins.sessions, k, v, BPF_ANY) ? -errno : 0;
}

static int rt_session_del(void *ctx, const struct ph_flow_key *k)
{
	struct ph_trk_runner *r = ctx;

	return bpf_map_delete_elem(r->pins.sessions, k) ? -errno : 0;
}

static int rt_totals_put(void *ctx, const struct ph_ftp_totals *tot)
{
	struct ph_trk_runner *r = ctx;
	__u32 key = 0;

	return bpf_map_update_elem(r->pins.totals, &key, tot, BPF_ANY) ? -errno : 0;
}

static void rt_log(void *ctx, int level, const char *line)
{
	struct ph_trk_runner *r = ctx;

	if (r->syslog)
		syslog(level == PH_TRK_LOG_WARN ? LOG_WARNING :
		       level == PH_TRK_LOG_INFO ? LOG_INFO : LOG_DEBUG,
		       "%s", line);
	else
		ph_log_line(level == PH_TRK_LOG_WARN ? PH_LOG_NOTICE :
			    level == PH_TRK_LOG_INFO ? PH_LOG_INFO :
			    PH_LOG_DEBUG, line);
}

/* The ftp-track rule on the control port in the policy in force (as
 * ph_ftp_nat_has() in bpf/lib/ftp.h finds it), and its nat-address. */
static int rt_nat_get(void *ctx, const struct ph_flow_key *k, bool server,
		      __u8 (*out)[16], int max)
{
	struct ph_trk_runner *r = ctx;
	struct ph_ftp_nat_key nk = {};
	struct ph_ftp_nat nat;
	struct ph_state st;
	struct ph_rule rule;
	__u32 key = 0, idx;
	__u16 v;
	int n;

	if (bpf_map_lookup_elem(r->pins.state, &key, &st) ||
	    st.active_slot >= PH_SLOTS)
		return 0;
	idx = PH_PORT_IDX(st.active_slot, PH_L4_TCP,
			  server ? PH_PT_IN_DPORT : PH_PT_OUT_DPORT,
			  ntohs(server ? k->lport : k->rport));
	if (bpf_map_lookup_elem(r->pins.ports, &idx, &v) || !v ||
	    v > PH_MAX_RULES)
		return 0;
	idx = st.active_slot * PH_MAX_RULES + (v - 1u);
	if (bpf_map_lookup_elem(r->pins.rules, &idx, &rule) ||
	    !(rule.flags & PH_RF_FTP_TRACK))
		return 0;
	nk.slot = st.active_slot;
	nk.service = rule.service;
	if (bpf_map_lookup_elem(r->pins.ftp_nat, &nk, &nat))
		return 0;
	n = nat.n < (__u32)max ? (int)nat.n : max;
	memcpy(out, nat.addr, (size_t)n * 16);
	return n;
}

/* A control connection is live while its flow is established and still
 * carries the datapath's session id (a reused 4-tuple gets a new one). */
static bool rt_ctrl_live(void *ctx, const struct ph_flow_key *k,
			 __u32 session)
{
	struct ph_trk_runner *r = ctx;
	struct ph_flow f;

	if (bpf_map_lookup_elem(r->pins.flows, k, &f))
		return errno != ENOENT; /* unreadable: assume it lives */
	return f.state == PH_FS_ESTABLISHED && (!session || f.session == session);
}

static const struct ph_trk_ops rt_ops = {
	.ctrl_live = rt_ctrl_live,
	.nat_get = rt_nat_get,
	.expect_put = rt_expect_put,
	.expect_del = rt_expect_del,
	.expect_next = rt_expect_next,
	.session_put = rt_session_put,
	.session_del = rt_session_del,
	.totals_put = rt_totals_put,
	.log = rt_log,
};

/* The active policy's pinhole lifetime. */
static __u64 policy_ttl_ns(const struct ph_trk_runner *r)
{
	struct ph_slot_meta m;
	struct ph_state st;
	__u32 key = 0;

	if (bpf_map_lookup_elem(r->pins.state, &key, &st))
		return 0;
	key = st.active_slot;
	if (key >= PH_SLOTS || bpf_map_lookup_elem(r->pins.slot_meta, &key, &m))
		return 0;
	return (__u64)m.ftp_ttl_ms * 1000000ull;
}

/* A reload since the last look: the sessions take the new NAT lists. */
static void policy_check(struct ph_trk_runner *r)
{
	struct ph_state st;
	__u32 key = 0;

	if (bpf_map_lookup_elem(r->pins.state, &key, &st) ||
	    st.generation == r->generation)
		return;
	r->generation = st.generation;
	ph_trk_policy_changed(r->t);
}

/* The tracker's own view of FTPS for ph_ftps_pass(): a session whose
 * 234 (or implicit start) it saw although the datapath did not count it. */
static bool known_ftps(void *ctx, const struct ph_flow_key *k,
		       const struct ph_flow *f)
{
	(void)f;
	return ph_trk_is_ftps(ctx, k);
}

/* ftps_peers against the flow table (ftps.h). */
static void ftps_reconcile(struct ph_trk_runner *r, __u64 now)
{
	int n = ph_ftps_pass(r->ftps, r->pins.ftps_peers, r->pins.flows, now,
			     known_ftps, r->t, ph_trk_any_ftps(r->t));

	if (n < 0) {
		if (!r->ftps_failed)
			pr_warn("cannot reconcile %s/ftps_peers with the flow table: %s",
				r->pin_dir, strerror(-n));
		r->ftps_failed = true;
		return;
	}
	r->ftps_failed = false;
	ph_trk_add_ftps_fixed(r->t, (__u64)n);
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static __u32 pinned_prog_id(const char *pin_dir)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd = ph_pin_get(pin_dir, "prog_xdp");

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.id = 0;
	close(fd);
	return info.id;
}

/* Still the instance we opened, with the programs we started with?
 * (detach --all elsewhere unpins it; `pinhole upgrade` replaces the
 * programs, and with another layout the maps.) */
static bool instance_alive(const struct ph_trk_runner *r)
{
	int fd = ph_pin_get(r->pin_dir, "events");
	bool same;

	if (fd < 0)
		return fd != -ENOENT;
	same = map_id(fd) == r->events_id;
	close(fd);
	if (same && r->xdp_prog_id) {
		__u32 id = pinned_prog_id(r->pin_dir);

		same = !id || id == r->xdp_prog_id;
	}
	return same;
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct ph_trk_runner *r = ctx;
	__u64 now = ph_now_coarse_ns();

	ph_trk_event(r->t, data, size, now);
	/* Under a flood, still sweep on time (bounded work per round). */
	if (++r->since_sweep >= RB_BUDGET && now >= r->next_sweep)
		return -ECANCELED;
	return 0;
}

struct adopt_walk {
	struct ph_trk_runner *r;
	__u64 now;
	__u32 n;
};

/* One ftp_ctrl key of the walk: its entry read under its lock. */
static int adopt_one(const void *key, const void *val, void *ctx)
{
	struct adopt_walk *a = ctx;
	struct ph_ftp_ctrl c;

	(void)val;
	if (bpf_map_lookup_elem_flags(a->r->pins.ftp_ctrl, key, &c,
				      BPF_F_LOCK) ||
	    !rt_ctrl_live(a->r, key, c.session))
		return 0;
	if (!ph_trk_adopt(a->r->t, key, &c, a->now))
		a->n++;
	return 0;
}

/*
 * The live control connections the datapath tracks (ftp_ctrl), each read
 * under its lock: a tracker starting next to a running datapath takes
 * them over instead of waiting for their next record. The keys come from
 * ph_map_walk() (a bucket at a time, bounded by the table's size).
 */
static void adopt_sessions(struct ph_trk_runner *r, __u64 now)
{
	struct adopt_walk a = { .r = r, .now = now };
	struct ph_walk_stats ws;
	__u32 n;

	ph_map_walk(r->pins.ftp_ctrl, sizeof(struct ph_flow_key), 0,
		    PH_FTP_CTRL_MAX, 0, adopt_one, &a, &ws);
	n = a.n;
	if (n)
		pr_info("ftp: %u live control connection%s taken over from the datapath",
			n, n == 1 ? "" : "s");
}

/* Entries a previous tracker published describe state that died with it. */
static void clear_sessions(int fd)
{
	struct ph_flow_key k;

	for (__u32 i = 0; i < 2 * PH_FTP_CTRL_MAX; i++)
		if (bpf_map_get_next_key(fd, NULL, &k) ||
		    bpf_map_delete_elem(fd, &k))
			break;
}

/* Does a syslog daemon take datagrams (or streams) on path? errno tells
 * why not. */
static bool syslog_listens(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int types[] = { SOCK_DGRAM, SOCK_STREAM }, e = ENOENT;

	ph_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0), ok;

		if (fd < 0)
			return false;
		ok = !connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		e = ok ? 0 : errno;
		close(fd);
		if (ok)
			return true;
		if (e != EPROTOTYPE)
			break;
	}
	errno = e;
	return false;
}

int ph_trk_runner_open(struct ph_trk_runner **out, const char *pin_dir,
		       const struct ph_trk_run_opts *o)
{
	struct ph_trk_config cfg = { .debug = ph_log_verbose() };
	struct ph_ftp_totals tot = {};
	struct ph_trk_runner *r;
	__u32 key = 0;
	int err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r) {
		pr_warn("out of memory");
		return PH_EXIT_ENV;
	}
	ph_strlcpy(r->pin_dir, pin_dir, sizeof(r->pin_dir));
	r->syslog = o && o->syslog;
	r->hup = o ? o->hup : NULL;
	r->hup_ctx = o ? o->hup_ctx : NULL;
	err = ph_trk_pins_open(&r->pins, pin_dir);
	if (err) {
		if (err == -ENOENT)
			pr_warn("no pinhole instance with FTP tracking at %s: run attach first",
				pin_dir);
		else
			pr_warn("cannot open the pins of %s: %s%s", pin_dir,
				strerror(-err),
				err == -EPERM || err == -EACCES ? "; run as root" : "");
		free(r);
		return err == -ENOENT ? PH_EXIT_USER : PH_EXIT_ENV;
	}
	r->events_id = map_id(r->pins.events);
	r->xdp_prog_id = pinned_prog_id(pin_dir);
	bpf_map_lookup_elem(r->pins.totals, &key, &tot);
	clear_sessions(r->pins.sessions);
	cfg.ttl_ns = policy_ttl_ns(r);
	r->t = ph_trk_new(&cfg, &rt_ops, r, &tot);
	r->ftps_maps.peers_fd = r->pins.ftps_peers;
	r->ftps_maps.log = rt_log;
	r->ftps_maps.log_ctx = r;
	r->ftps = ph_ftps_rec_new(&ph_ftps_map_ops, &r->ftps_maps);
	if (r->t)
		adopt_sessions(r, ph_now_coarse_ns());
	r->rb = r->t && r->ftps ?
			ring_buffer__new(r->pins.events, on_record, r, NULL) :
			NULL;
	if (!r->rb) {
		pr_warn("cannot read the events ring buffer of %s: %s", pin_dir,
			strerror(errno));
		ph_trk_runner_close(r);
		return PH_EXIT_ENV;
	}
	if (r->syslog && !syslog_listens(PH_SYSLOG_PATH)) {
		/* syslog(3) drops every line silently without a daemon. */
		pr_warn("--syslog: nothing listens on %s (%s; no syslog daemon?); logging to stderr instead",
			PH_SYSLOG_PATH, strerror(errno));
		r->syslog = false;
	}
	if (r->syslog)
		openlog("pinhole", LOG_PID, LOG_DAEMON);
	*out = r;
	return PH_EXIT_OK;
}

bool ph_trk_runner_syslog(const struct ph_trk_runner *r)
{
	return r->syslog;
}

static int signal_epoll(struct ph_trk_runner *r, const sigset_t *stop,
			int *sfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int efd;

	*sfd = signalfd(-1, stop, SFD_CLOEXEC | SFD_NONBLOCK);
	efd = epoll_create1(EPOLL_CLOEXEC);
	if (*sfd < 0 || efd < 0)
		goto fail;
	ev.data.fd = *sfd;
	if (epoll_ctl(efd, EPOLL_CTL_ADD, *sfd, &ev))
		goto fail;
	ev.data.fd = ring_buffer__epoll_fd(r->rb);
	if (epoll_ctl(efd, EPOLL_CTL_ADD, ev.data.fd, &ev))
		goto fail;
	return efd;
fail:
	pr_warn("cannot set up the event loop: %s", strerror(errno));
	if (*sfd >= 0)
		close(*sfd);
	if (efd >= 0)
		close(efd);
	return -1;
}

int ph_trk_runner_loop(struct ph_trk_runner *r, const sigset_t *stop)
{
	__u64 now, next_alive = 0;
	struct epoll_event evs[2];
	int sfd, efd, ret = 0, n, err;

	efd = signal_epoll(r, stop, &sfd);
	if (efd < 0)
		return -EIO;
	r->next_sweep = 0;
	for (;;) {
		now = ph_now_coarse_ns();
		if (now >= r->next_sweep) {
			ph_trk_set_ttl(r->t, policy_ttl_ns(r));
			policy_check(r);
			ph_trk_sweep(r->t, now);
			r->next_sweep = now + PH_TRK_SWEEP_NS;
			r->since_sweep = 0;
		}
		if (now >= r->next_ftps) {
			ftps_reconcile(r, now);
			r->next_ftps = now + PH_TRK_FTPS_NS;
		}
		if (now >= next_alive) {
			if (!instance_alive(r)) {
				pr_info("the instance at %s is gone or was replaced; the session tracker stops",
					r->pin_dir);
				ret = 0;
				break;
			}
			next_alive = now + PH_TRK_NSEC;
		}
		n = epoll_wait(efd, evs, 2,
			       (int)((r->next_sweep - now) / 1000000ull) + 1);
		if (n < 0 && errno != EINTR) {
			ret = -errno;
			pr_warn("event loop: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct signalfd_siginfo si;

			if (evs[i].data.fd != sfd)
				continue;
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGHUP && r->hup) {
				r->hup(r->hup_ctx);
				continue;
			}
			ret = (int)si.ssi_signo;
			goto out;
		}
		/* Also after a timeout: the ring buffer only wakes a reader
		 * that has caught up, so leftovers are read here. */
		err = ring_buffer__consume(r->rb);
		if (err < 0 && err != -ECANCELED && err != -EINTR) {
			ret = err;
			pr_warn("reading the events ring buffer: %s", strerror(-err));
			break;
		}
	}
out:
	ph_trk_sweep(r->t, ph_now_coarse_ns());
	ph_trk_unpublish(r->t);
	close(sfd);
	close(efd);
	return ret;
}

void ph_trk_runner_close(struct ph_trk_runner *r)
{
	if (!r)
		return;
	ring_buffer__free(r->rb);
	ph_ftps_rec_free(r->ftps);
	ph_trk_free(r->t);
	ph_trk_pins_close(&r->pins);
	if (r->syslog)
		closelog();
	free(r);
}
