// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * FTP control-channel tracker (see ftp.h and docs/ftp-tracking.md).
 *
 * Layers, bottom up:
 *   stream   per-direction reassembly by TCP sequence number: in-order
 *            bytes go up, old bytes are dropped, bytes ahead wait in a
 *            small window; when the window overflows the gap is declared
 *            lost and the stream restarts at the next line.
 *   lines    LF ends a line (a CR before it is removed); long lines are
 *            never parsed, only classified by their first bytes.
 *   protocol client lines are commands, server lines are replies; a
 *            227/229 counts only as the final reply to PASV/EPSV.
 *   actions  at most one pending pinhole; every new data-port negotiation
 *            revokes the previous one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "ftp.h"

#define SIDE_SERVER 0
#define SIDE_CLIENT 1
#define OOO_MASK (PH_FTP_OOO_BYTES - 1)

_Static_assert((PH_FTP_OOO_BYTES & OOO_MASK) == 0, "window must be 2^n");
/* Worst case per feed (docs/ftp-tracking.md, "Bounded work"). */
_Static_assert(2 * PH_FTP_BURST_MAX + 4 <= PH_FTP_MAX_ACTIONS,
	       "PH_FTP_MAX_ACTIONS too small for the burst limit");

struct out_ctx {
	struct ph_ftp_action *out;
	int max, n;
	__u64 now;
};

/* A data-port negotiation, parsed or refused. */
struct dport {
	enum ph_ftp_via via;
	enum ph_ftp_refuse reason;
	__u8 addr[16]; /* announced, v4-mapped; zero when none */
	__u16 port;    /* announced, host order; 0 when not parsed */
};

/* ---------------------------------------------------------------------- */
/* Names                                                                   */
/* ---------------------------------------------------------------------- */

#define PH_FTP_X_NAME(e, n, t) [PH_FTP_REFUSE_##e] = n,
#define PH_FTP_X_TEXT(e, n, t) [PH_FTP_REFUSE_##e] = t,
static const char *const refuse_names[PH_FTP_REFUSE_MAX] = {
	[PH_FTP_REFUSE_NONE] = "none",
	PH_FTP_REFUSE_REASONS(PH_FTP_X_NAME)
};
static const char *const refuse_texts[PH_FTP_REFUSE_MAX] = {
	[PH_FTP_REFUSE_NONE] = "not refused",
	PH_FTP_REFUSE_REASONS(PH_FTP_X_TEXT)
};
#undef PH_FTP_X_NAME
#undef PH_FTP_X_TEXT

const char *ph_ftp_refuse_name(enum ph_ftp_refuse r)
{
	return (unsigned)r < PH_FTP_REFUSE_MAX ? refuse_names[r] : "?";
}

const char *ph_ftp_refuse_text(enum ph_ftp_refuse r)
{
	return (unsigned)r < PH_FTP_REFUSE_MAX ? refuse_texts[r] : "?";
}

const char *ph_ftp_action_name(enum ph_ftp_action_kind k)
{
	switch (k) {
	case PH_FTP_OPEN: return "open";
	case PH_FTP_REVOKE: return "revoke";
	case PH_FTP_REFUSE: return "refuse";
	case PH_FTP_ENCRYPTED: return "encrypted";
	}
	return "?";
}

const char *ph_ftp_via_name(enum ph_ftp_via v)
{
	static const char *const names[PH_FTP_VIA_MAX] = {
		[PH_FTP_VIA_NONE] = "-",    [PH_FTP_VIA_PORT] = "PORT",
		[PH_FTP_VIA_EPRT] = "EPRT", [PH_FTP_VIA_PASV] = "PASV",
		[PH_FTP_VIA_EPSV] = "EPSV",
	};
	return (unsigned)v < PH_FTP_VIA_MAX ? names[v] : "?";
}

/* ---------------------------------------------------------------------- */
/* Actions                                                                 */
/* ---------------------------------------------------------------------- */

static void emit(struct ph_ftp_session *s, struct out_ctx *c,
		 const struct ph_ftp_action *a)
{
	if (c->n < c->max)
		c->out[c->n++] = *a;
	else
		s->stats.actions_lost++;
}

static void revoke_pending(struct ph_ftp_session *s, struct out_ctx *c)
{
	struct ph_ftp_action a;

	if (!s->has_pending)
		return;
	a = s->pending;
	a.kind = PH_FTP_REVOKE;
	emit(s, c, &a);
	s->has_pending = false;
	s->last_cmd_opened = false;
	s->stats.revoked++;
}

static void refuse(struct ph_ftp_session *s, struct out_ctx *c,
		   const struct dport *d, enum ph_ftp_refuse reason)
{
	struct ph_ftp_action a;

	memset(&a, 0, sizeof(a));
	a.kind = PH_FTP_REFUSE;
	a.reason = reason;
	a.via = d->via;
	memcpy(a.announced_addr, d->addr, 16);
	a.announced_port = d->port;
	emit(s, c, &a);
	s->stats.refused[reason]++;
}

static bool via_passive(enum ph_ftp_via v)
{
	return v == PH_FTP_VIA_PASV || v == PH_FTP_VIA_EPSV;
}

/*
 * The four cases. The data connection's initiator gets the wildcard port:
 * passive mode, the client connects to the announced port on the server;
 * active mode, the server connects to the announced port on the client.
 */
static void make_key(const struct ph_ftp_session *s, const struct dport *d,
		     struct ph_ftp_action *a)
{
	bool server = s->cfg.role == PH_FTP_ROLE_SERVER;
	bool passive = via_passive(d->via);
	/* The announced port is on this host: the SYN comes in. */
	bool port_is_local = server == passive;

	memcpy(a->key.local, server ? s->cfg.server_addr : s->cfg.client_addr,
	       16);
	memcpy(a->key.remote, server ? s->cfg.client_addr : s->cfg.server_addr,
	       16);
	if (port_is_local)
		a->key.lport = htons(d->port);
	else
		a->key.rport = htons(d->port);
	a->key.proto = IPPROTO_TCP;
	a->dir = port_is_local ? PH_DIR_IN : PH_DIR_OUT;
}

static void open_pinhole(struct ph_ftp_session *s, struct out_ctx *c,
			 const struct dport *d)
{
	struct ph_ftp_action a;
	__u64 ttl = s->cfg.ttl_ns;

	memset(&a, 0, sizeof(a));
	a.kind = PH_FTP_OPEN;
	a.via = d->via;
	make_key(s, d, &a);
	a.deadline_ns = c->now + ttl < c->now ? ~0ull : c->now + ttl;
	memcpy(a.announced_addr, d->addr, 16);
	a.announced_port = d->port;
	emit(s, c, &a);
	s->pending = a;
	s->has_pending = true;
	s->stats.opened++;
}

/*
 * Every data-port line (a PORT/EPRT, or a 227/229) goes through here.
 * replaces: it is a new negotiation, so the previous pinhole goes (an
 * unsolicited reply is not one). A side that sends more than
 * PH_FTP_BURST_MAX of them while the other side says nothing is flooding:
 * one REFUSE(flood), the pending pinhole revoked, the rest only counted.
 * This bounds the actions of one feed without depending on how the stream
 * is cut into segments.
 */
static void decide(struct ph_ftp_session *s, struct out_ctx *c, int side,
		   const struct dport *d, bool replaces)
{
	struct ph_ftp_stream *st = &s->st[side];

	if (st->burst >= PH_FTP_BURST_MAX) {
		if (st->burst == PH_FTP_BURST_MAX) {
			revoke_pending(s, c);
			refuse(s, c, d, PH_FTP_REFUSE_FLOOD);
			st->burst++;
		} else {
			s->stats.refused[PH_FTP_REFUSE_FLOOD]++;
		}
		return;
	}
	st->burst++;
	if (replaces)
		revoke_pending(s, c);
	if (d->reason != PH_FTP_REFUSE_NONE)
		refuse(s, c, d, d->reason);
	else
		open_pinhole(s, c, d);
	if (d->reason == PH_FTP_REFUSE_NONE && side == SIDE_CLIENT)
		s->last_cmd_opened = true;
}

static void go_encrypted(struct ph_ftp_session *s, struct out_ctx *c)
{
	struct ph_ftp_action a;

	revoke_pending(s, c);
	memset(&a, 0, sizeof(a));
	a.kind = PH_FTP_ENCRYPTED;
	emit(s, c, &a);
	s->encrypted = true;
}

/* ---------------------------------------------------------------------- */
/* Argument parsing: lengths, never NUL-terminated strings                 */
/* ---------------------------------------------------------------------- */

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static char lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* Case-insensitive: does [p, e) equal lit exactly? */
static bool ieq(const char *p, const char *e, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(e - p) != n)
		return false;
	while (n--)
		if (lower(*p++) != *lit++)
			return false;
	return true;
}

static const char *rtrim_spaces(const char *p, const char *e)
{
	while (e > p && e[-1] == ' ')
		e--;
	return e;
}

/* [p, e) is 1..maxdig decimal digits with a value <= maxval. maxdig <= 5,
 * so the accumulator cannot overflow however long the input is. */
static bool dec_field(const char *p, const char *e, int maxdig, __u32 maxval,
		      __u32 *v)
{
	__u32 x = 0;

	if (e - p < 1 || e - p > maxdig)
		return false;
	for (; p < e; p++) {
		if (!is_digit(*p))
			return false;
		x = x * 10 + (__u32)(*p - '0');
	}
	if (x > maxval)
		return false;
	*v = x;
	return true;
}

/* The digit run at p as a number; NULL if none or invalid. */
static const char *dec_run(const char *p, const char *e, int maxdig,
			   __u32 maxval, __u32 *v)
{
	const char *q = p;

	while (q < e && is_digit(*q))
		q++;
	return dec_field(p, q, maxdig, maxval, v) ? q : NULL;
}

/* h1,h2,h3,h4,p1,p2: six decimal bytes. Returns the end or NULL. */
static const char *parse_h6(const char *p, const char *e, __u32 v[6])
{
	int i;

	for (i = 0; i < 6; i++) {
		p = dec_run(p, e, 3, 255, &v[i]);
		if (!p)
			return NULL;
		if (i < 5) {
			if (p >= e || *p != ',')
				return NULL;
			p++;
		}
	}
	return p;
}

static void v4_mapped(__u8 addr[16], const __u32 h[4])
{
	int i;

	memset(addr, 0, 16);
	addr[10] = addr[11] = 0xff;
	for (i = 0; i < 4; i++)
		addr[12 + i] = (__u8)h[i];
}

/* Dotted quad filling [p, e) exactly, decimal, each octet 0..255. */
static bool parse_v4(const char *p, const char *e, __u8 addr[16])
{
	__u32 h[4];
	int i;

	for (i = 0; i < 4; i++) {
		p = dec_run(p, e, 3, 255, &h[i]);
		if (!p)
			return false;
		if (i < 3) {
			if (p >= e || *p != '.')
				return false;
			p++;
		}
	}
	if (p != e)
		return false;
	v4_mapped(addr, h);
	return true;
}

static bool parse_v6(const char *p, const char *e, __u8 addr[16])
{
	char buf[INET6_ADDRSTRLEN];
	size_t n = (size_t)(e - p);

	if (n == 0 || n >= sizeof(buf) || memchr(p, '\0', n))
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, addr) == 1;
}

static const char *find_char(const char *p, const char *e, char ch)
{
	const char *q = memchr(p, ch, (size_t)(e - p));

	return q ? q : e;
}

/* A data port, 1..65535, as its own field. */
static bool port_field(const char *p, const char *e, __u16 *port)
{
	__u32 v;

	if (!dec_field(p, e, 5, 65535, &v) || v == 0)
		return false;
	*port = (__u16)v;
	return true;
}

/* Is @addr the address @own names, or, when @own is this host's, one of
 * the service's nat-address? */
static bool addr_ok(const struct ph_ftp_session *s, const __u8 *addr,
		    const __u8 *own, bool local)
{
	if (!memcmp(addr, own, 16))
		return true;
	for (int i = 0; local && i < s->cfg.nnat && i < PH_NAT_ADDRS_MAX; i++)
		if (!memcmp(addr, s->cfg.nat_addr[i], 16))
			return true;
	return false;
}

/* Checks shared by every form once the numbers parsed: family, whose
 * address it is (bounce / third party; this host's own may be its
 * nat-address), privileged port. */
static enum ph_ftp_refuse check_dport(const struct ph_ftp_session *s,
				      const struct dport *d, int family,
				      bool has_addr)
{
	if (d->port == 0)
		return PH_FTP_REFUSE_BAD_NUMBER;
	if (family != s->cfg.family)
		return PH_FTP_REFUSE_WRONG_FAMILY;
	if (has_addr && via_passive(d->via) &&
	    !addr_ok(s, d->addr, s->cfg.server_addr,
		     s->cfg.role == PH_FTP_ROLE_SERVER))
		return PH_FTP_REFUSE_THIRD_PARTY;
	if (has_addr && !via_passive(d->via) &&
	    !addr_ok(s, d->addr, s->cfg.client_addr,
		     s->cfg.role == PH_FTP_ROLE_CLIENT))
		return PH_FTP_REFUSE_BOUNCE;
	if (d->port < PH_FTP_MIN_DATA_PORT)
		return PH_FTP_REFUSE_LOW_PORT;
	return PH_FTP_REFUSE_NONE;
}

/* PORT h1,h2,h3,h4,p1,p2 [spaces]  (a: the argument, after "PORT ") */
static void parse_port(const struct ph_ftp_session *s, const char *a,
		       const char *e, struct dport *d)
{
	__u32 v[6];
	const char *q;

	if (a >= e) {
		d->reason = PH_FTP_REFUSE_BAD_SYNTAX;
		return;
	}
	q = parse_h6(a, e, v);
	if (!q || rtrim_spaces(q, e) != q) {
		d->reason = PH_FTP_REFUSE_BAD_NUMBER;
		return;
	}
	v4_mapped(d->addr, v);
	d->port = (__u16)(v[4] << 8 | v[5]);
	d->reason = check_dport(s, d, AF_INET, true);
}

/* EPRT <d>af<d>addr<d>port<d> [spaces]; d is any of ASCII 33..126 and no
 * field may contain it (RFC 2428). */
static void parse_eprt(const struct ph_ftp_session *s, const char *a,
		       const char *e, struct dport *d)
{
	const char *f[4]; /* the four delimiters */
	bool ok;
	char dl;
	int i, family;

	e = rtrim_spaces(a, e);
	d->reason = PH_FTP_REFUSE_BAD_SYNTAX;
	if (a >= e)
		return;
	dl = *a;
	if (dl < 33 || dl > 126)
		return;
	f[0] = a;
	for (i = 1; i < 4; i++) {
		f[i] = find_char(f[i - 1] + 1, e, dl);
		if (f[i] == e)
			return;
	}
	if (f[3] + 1 != e)
		return;
	if (f[1] - f[0] != 2 || (f[0][1] != '1' && f[0][1] != '2'))
		return;
	family = f[0][1] == '1' ? AF_INET : AF_INET6;
	ok = family == AF_INET ? parse_v4(f[1] + 1, f[2], d->addr)
			       : parse_v6(f[1] + 1, f[2], d->addr);
	if (!ok || !port_field(f[2] + 1, f[3], &d->port)) {
		d->reason = PH_FTP_REFUSE_BAD_NUMBER;
		return;
	}
	d->reason = check_dport(s, d, family, true);
}

/* 227 <text>h1,h2,h3,h4,p1,p2<text>: the six numbers start at the first
 * digit after the code (RFC 1123 4.1.2.6), parentheses or not. */
static void parse_227(const struct ph_ftp_session *s, const char *t,
		      const char *e, struct dport *d)
{
	const char *p = t, *q;
	__u32 v[6];

	while (p < e && !is_digit(*p))
		p++;
	d->reason = PH_FTP_REFUSE_BAD_NUMBER;
	if (p == e || (p > t && (p[-1] == '-' || p[-1] == '+')))
		return;
	q = parse_h6(p, e, v);
	if (!q || (q < e && *q == ','))
		return;
	v4_mapped(d->addr, v);
	d->port = (__u16)(v[4] << 8 | v[5]);
	d->reason = check_dport(s, d, AF_INET, true);
}

/* 229 <text>(<d><d><d>port<d>)<text> */
static void parse_229(const struct ph_ftp_session *s, const char *t,
		      const char *e, struct dport *d)
{
	const char *p = find_char(t, e, '('), *q;
	char dl;

	d->reason = PH_FTP_REFUSE_BAD_SYNTAX;
	if (e - p < 6)
		return;
	dl = p[1];
	if (dl < 33 || dl > 126 || p[2] != dl || p[3] != dl)
		return;
	q = find_char(p + 4, e, dl);
	if (q == e || q + 1 >= e || q[1] != ')')
		return;
	if (!port_field(p + 4, q, &d->port)) {
		d->reason = PH_FTP_REFUSE_BAD_NUMBER;
		return;
	}
	d->reason = check_dport(s, d, s->cfg.family, false);
}

/* ---------------------------------------------------------------------- */
/* Protocol                                                                */
/* ---------------------------------------------------------------------- */

static enum ph_ftp_cmd classify(const char *l, size_t len)
{
	const char *e = l + 4;

	if (len < 4 || (len > 4 && l[4] != ' '))
		return PH_FTP_CMD_OTHER;
	if (ieq(l, e, "port"))
		return PH_FTP_CMD_PORT;
	if (ieq(l, e, "eprt"))
		return PH_FTP_CMD_EPRT;
	if (ieq(l, e, "pasv"))
		return PH_FTP_CMD_PASV;
	if (ieq(l, e, "epsv"))
		return PH_FTP_CMD_EPSV;
	if (ieq(l, e, "auth"))
		return PH_FTP_CMD_AUTH;
	return PH_FTP_CMD_OTHER;
}

/*
 * A line from the client is a command. It becomes the command awaiting a
 * reply; while an AUTH awaits its reply nothing else is parsed, since the
 * bytes after an accepted AUTH are TLS (which can carry client-chosen
 * plaintext, e.g. the SNI).
 */
static void client_line(struct ph_ftp_session *s, struct out_ctx *c,
			const char *l, size_t len, bool overlong)
{
	const char *a = l + (len < 5 ? len : 5), *e = l + len; /* argument */
	enum ph_ftp_cmd cmd = classify(l, len);
	struct dport d;

	if (s->awaiting && s->last_cmd == PH_FTP_CMD_AUTH) {
		s->stats.lines_ignored++;
		return;
	}
	s->awaiting = true;
	s->last_cmd_opened = false;
	s->epsv_bad_family = false;
	memset(&d, 0, sizeof(d));

	switch (cmd) {
	case PH_FTP_CMD_PORT:
	case PH_FTP_CMD_EPRT:
		d.via = cmd == PH_FTP_CMD_PORT ? PH_FTP_VIA_PORT
					       : PH_FTP_VIA_EPRT;
		if (overlong)
			d.reason = PH_FTP_REFUSE_LINE_TOO_LONG;
		else if (cmd == PH_FTP_CMD_PORT)
			parse_port(s, a, e, &d);
		else
			parse_eprt(s, a, e, &d);
		break;
	case PH_FTP_CMD_PASV:
		if (overlong || rtrim_spaces(a, e) != a)
			cmd = PH_FTP_CMD_OTHER;
		break;
	case PH_FTP_CMD_EPSV:
		e = rtrim_spaces(a, e);
		if (overlong || ieq(a, e, "all")) {
			cmd = PH_FTP_CMD_OTHER;
		} else if (ieq(a, e, "1") || ieq(a, e, "2")) {
			s->epsv_bad_family =
				(*a == '1') != (s->cfg.family == AF_INET);
		} else if (a != e) {
			cmd = PH_FTP_CMD_OTHER;
		}
		break;
	default:
		break;
	}
	s->last_cmd = cmd;
	if (d.via)
		decide(s, c, SIDE_CLIENT, &d, true);
}

/* A final reply (2xx..5xx) or its multi-line form's last line. */
static void final_reply(struct ph_ftp_session *s, struct out_ctx *c,
			unsigned code, bool multiline, const char *l,
			size_t len, bool overlong)
{
	bool was = s->awaiting, pasv_reply = code == 227 || code == 229;
	const char *text = l + (len < 4 ? len : 4), *e = l + len;
	enum ph_ftp_cmd cmd = s->last_cmd;
	struct dport d;

	/* Fail closed: any 234 means the channel may now be TLS. */
	if (code == 234) {
		go_encrypted(s, c);
		return;
	}
	s->awaiting = false;
	memset(&d, 0, sizeof(d));
	d.via = code == 227 ? PH_FTP_VIA_PASV : PH_FTP_VIA_EPSV;

	if (was && (cmd == PH_FTP_CMD_PORT || cmd == PH_FTP_CMD_EPRT) &&
	    code >= 400 && s->last_cmd_opened)
		revoke_pending(s, c);
	if (!pasv_reply)
		return;
	if (!was || (cmd == PH_FTP_CMD_PASV) != (code == 227) ||
	    (cmd != PH_FTP_CMD_PASV && cmd != PH_FTP_CMD_EPSV)) {
		d.reason = PH_FTP_REFUSE_UNSOLICITED;
		decide(s, c, SIDE_SERVER, &d, false);
		return;
	}
	if (multiline)
		d.reason = PH_FTP_REFUSE_MULTILINE;
	else if (overlong)
		d.reason = PH_FTP_REFUSE_LINE_TOO_LONG;
	else if (code == 227)
		parse_227(s, text, e, &d);
	else if (s->epsv_bad_family)
		d.reason = PH_FTP_REFUSE_WRONG_FAMILY;
	else
		parse_229(s, text, e, &d);
	decide(s, c, SIDE_SERVER, &d, true);
}

/*
 * A line from the server is part of a reply: "ddd text" is a one-line
 * reply, "ddd-text" opens a multi-line reply that only "ddd text" (or
 * "ddd" alone) with the same code closes; anything else is reply text.
 */
static void server_line(struct ph_ftp_session *s, struct out_ctx *c,
			const char *l, size_t len, bool overlong)
{
	unsigned code;
	bool cont;

	if (len < 3 || l[0] < '1' || l[0] > '5' || !is_digit(l[1]) ||
	    !is_digit(l[2]) || (len > 3 && l[3] != ' ' && l[3] != '-'))
		return; /* continuation text or noise */
	code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 +
	       (unsigned)(l[2] - '0');
	cont = len > 3 && l[3] == '-';
	if (s->in_multiline) {
		if (code != s->ml_code || cont)
			return;
		s->in_multiline = false;
		if (code >= 200)
			final_reply(s, c, code, true, l, len, overlong);
		return;
	}
	if (cont) {
		s->in_multiline = true;
		s->ml_code = (__u16)code;
		return;
	}
	if (code >= 200)
		final_reply(s, c, code, false, l, len, overlong);
}

/* ---------------------------------------------------------------------- */
/* Lines                                                                   */
/* ---------------------------------------------------------------------- */

static void end_line(struct ph_ftp_session *s, struct out_ctx *c, int side)
{
	struct ph_ftp_stream *st = &s->st[side];
	size_t len = st->line_len;
	bool overlong;

	s->stats.lf[side]++;
	if (st->skip_to_eol) {
		st->skip_to_eol = false;
		s->stats.lines_discarded++;
		goto out;
	}
	if (len && st->line[len - 1] == '\r')
		len--;
	overlong = st->overlong || len > PH_FTP_LINE_MAX;
	if (len > PH_FTP_LINE_MAX)
		len = PH_FTP_LINE_MAX;
	s->stats.lines++;
	if (overlong)
		s->stats.lines_discarded++;
	s->st[!side].burst = 0;
	if (side == SIDE_CLIENT)
		client_line(s, c, st->line, len, overlong);
	else
		server_line(s, c, st->line, len, overlong);
out:
	st->line_len = 0;
	st->overlong = false;
}

static void lose(struct ph_ftp_session *s, int side);

/*
 * One byte of the stream. A contested byte (the endpoint may have kept
 * another copy of it, see hold()) is never part of a parsed line: the line
 * it falls in is dropped as after a gap, and even a contested LF ends
 * nothing.
 */
static void push_byte(struct ph_ftp_session *s, struct out_ctx *c, int side,
		      char ch, bool contested)
{
	struct ph_ftp_stream *st = &s->st[side];

	if (contested) {
		if (!st->skip_to_eol)
			lose(s, side);
		return;
	}
	if (ch == '\n') {
		end_line(s, c, side);
		return;
	}
	if (st->skip_to_eol)
		return;
	if (st->line_len < sizeof(st->line))
		st->line[st->line_len++] = ch;
	else
		st->overlong = true;
}

/* ---------------------------------------------------------------------- */
/* Stream reassembly: the bytes Linux's TCP receiver keeps                 */
/*                                                                        */
/* net/ipv4/tcp_input.c, tcp_data_queue() and tcp_data_queue_ofo():        */
/*  - bytes before rcv_nxt are final: a retransmission never changes them; */
/*  - an in-order segment is taken whole: its bytes win over held ones;    */
/*  - an out-of-order segment wholly inside a held one is dropped;         */
/*  - one starting where a held one starts and longer replaces it;         */
/*  - otherwise it is held; where it overlaps the held segment before it,  */
/*    that one's bytes stay; held segments it covers are dropped;          */
/*  - held segments are dequeued by sequence number, each from rcv_nxt on. */
/* So the held byte at x is the copy of the held segment with the lowest   */
/* start covering x: ooo[] keeps exactly that copy, segments are sorted by */
/* start and their ends increase. Linux may merge an out-of-order segment  */
/* into the one it continues (tcp_ooo_try_coalesce(); it fails on a cloned */
/* skb, e.g. while a packet socket captures), after which a later copy at  */
/* the joint no longer replaces it: where that choice decides between two  */
/* different bytes, the byte is contested and no line is parsed from it.   */
/* ---------------------------------------------------------------------- */

static bool before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

static bool after(__u32 a, __u32 b)
{
	return before(b, a);
}

static bool tainted(const struct ph_ftp_stream *st, __u32 seq)
{
	__u32 i = seq & OOO_MASK;

	return st->ooo_taint[i >> 3] & (1u << (i & 7));
}

static void set_taint(struct ph_ftp_stream *st, __u32 seq, bool on)
{
	__u32 i = seq & OOO_MASK;

	if (on)
		st->ooo_taint[i >> 3] |= (__u8)(1u << (i & 7));
	else
		st->ooo_taint[i >> 3] &= (__u8)~(1u << (i & 7));
}

/* The held segment Linux takes the byte at @seq from (the lowest start
 * covering it), or -1. */
static int owner(const struct ph_ftp_stream *st, __u32 seq)
{
	int i;

	for (i = 0; i < st->nseg; i++)
		if (!before(seq, st->seg[i].seq) && before(seq, st->seg[i].end))
			return i;
	return -1;
}

static void seg_remove(struct ph_ftp_stream *st, int i)
{
	memmove(&st->seg[i], &st->seg[i + 1],
		(size_t)(st->nseg - i - 1) * sizeof(st->seg[0]));
	st->nseg--;
}

/* Consume one byte at nxt. */
static void take(struct ph_ftp_session *s, struct out_ctx *c, int side,
		 char ch, bool contested)
{
	struct ph_ftp_stream *st = &s->st[side];

	set_taint(st, st->nxt, false);
	st->nxt++;
	s->stats.bytes[side]++;
	push_byte(s, c, side, ch, contested);
}

/* In-order bytes at nxt (they win over held copies), then the held bytes
 * they made contiguous, segment by segment. */
static void deliver(struct ph_ftp_session *s, struct out_ctx *c, int side,
		    const __u8 *p, size_t n)
{
	struct ph_ftp_stream *st = &s->st[side];
	size_t i;

	for (i = 0; i < n; i++) {
		if (s->encrypted) {
			s->stats.encrypted_bytes += n - i;
			return;
		}
		take(s, c, side, (char)p[i], false);
	}
	while (st->nseg && !before(st->nxt, st->seg[0].seq) &&
	       !s->encrypted) {
		if (!before(st->nxt, st->seg[0].end)) {
			seg_remove(st, 0);
			continue;
		}
		take(s, c, side, (char)st->ooo[st->nxt & OOO_MASK],
		     tainted(st, st->nxt));
	}
}

/* Writes the held copy of [from, end) from @p (which starts at @seq),
 * before the segment carrying it is linked in: where it replaces a held
 * byte of another value, count it, and mark it contested if Linux might
 * have kept the other one (its segment is joined to the one before). */
static void hold_write(struct ph_ftp_session *s, struct ph_ftp_stream *st,
		       __u32 seq, const __u8 *p, __u32 from, __u32 end)
{
	__u32 x;

	for (x = from; x != end; x++) {
		__u8 b = p[x - seq];
		int o = owner(st, x);

		if (o >= 0 && st->ooo[x & OOO_MASK] != b) {
			s->stats.ooo_replaced++;
			if (st->seg[o].joined && !tainted(st, x)) {
				set_taint(st, x, true);
				s->stats.contested++;
			}
		}
		st->ooo[x & OOO_MASK] = b;
	}
}

/* Hold a segment that starts after nxt, by Linux's rules (above). False
 * when it does not fit the window. */
static bool hold(struct ph_ftp_session *s, struct ph_ftp_stream *st,
		 __u32 seq, const __u8 *p, size_t n)
{
	__u32 off = seq - st->nxt, end = seq + (__u32)n, from = seq;
	bool joined = false;
	int i, ip = -1, slot;

	if ((__u64)off + n > PH_FTP_OOO_BYTES)
		return false;
	for (i = 0; i < st->nseg && !before(seq, st->seg[i].seq); i++)
		ip = i;
	if (ip >= 0 && before(seq, st->seg[ip].end)) {
		if (!after(end, st->seg[ip].end)) {
			s->stats.dup_bytes += n; /* all there: dropped */
			return true;
		}
		if (st->seg[ip].seq == seq) {
			/* Same start, longer: it replaces the held one, but
			 * not what a segment before it holds. */
			if (ip > 0 && after(st->seg[ip - 1].end, seq))
				from = st->seg[ip - 1].end;
			hold_write(s, st, seq, p, from, end);
			st->seg[ip].end = end;
			slot = ip;
			goto merge_right;
		}
		from = st->seg[ip].end; /* partial overlap: those bytes stay */
	} else if (ip >= 0) {
		joined = st->seg[ip].end == seq;
	}
	if (st->nseg == PH_FTP_OOO_SEGS)
		return false;
	hold_write(s, st, seq, p, from, end);
	slot = ip + 1;
	memmove(&st->seg[slot + 1], &st->seg[slot],
		(size_t)(st->nseg - slot) * sizeof(st->seg[0]));
	st->seg[slot].seq = seq;
	st->seg[slot].end = end;
	st->seg[slot].joined = joined;
	st->nseg++;
merge_right:
	/* Held segments this one covers whole go (their bytes it rewrote). */
	while (slot + 1 < st->nseg && after(end, st->seg[slot + 1].seq) &&
	       !before(end, st->seg[slot + 1].end))
		seg_remove(st, slot + 1);
	s->stats.ooo_segments++;
	return true;
}

/*
 * The line in progress is lost (a gap, or contested bytes): it is dropped
 * and the stream restarts after the next LF. The command/reply pairing may
 * have lost a member, so fail closed: a client gap leaves an unknown
 * command awaiting its reply, a server gap consumes the awaited reply.
 */
static void lose(struct ph_ftp_session *s, int side)
{
	struct ph_ftp_stream *st = &s->st[side];

	s->stats.resyncs++;
	st->line_len = 0; /* counted as discarded at the next LF */
	st->overlong = false;
	st->skip_to_eol = true;
	if (side == SIDE_CLIENT && s->awaiting &&
	    s->last_cmd == PH_FTP_CMD_AUTH) {
		/* still waiting for the AUTH reply: stay deaf */
	} else if (side == SIDE_CLIENT) {
		s->last_cmd = PH_FTP_CMD_OTHER;
		s->awaiting = true;
		s->last_cmd_opened = false;
		s->epsv_bad_family = false;
	} else {
		s->awaiting = false;
	}
}

/* Bytes before newnxt are lost. */
static void gap(struct ph_ftp_session *s, int side, __u32 newnxt)
{
	struct ph_ftp_stream *st = &s->st[side];
	__u32 x;

	for (x = st->nxt; before(x, newnxt) && x - st->nxt < PH_FTP_OOO_BYTES;
	     x++)
		set_taint(st, x, false);
	st->nxt = newnxt;
	lose(s, side);
}

/* The window is full: give up on each hole in turn, delivering what was
 * held behind it. */
static void flush_holes(struct ph_ftp_session *s, struct out_ctx *c, int side)
{
	struct ph_ftp_stream *st = &s->st[side];

	s->stats.gaps++;
	while (st->nseg && !s->encrypted) {
		if (after(st->seg[0].seq, st->nxt))
			gap(s, side, st->seg[0].seq);
		deliver(s, c, side, NULL, 0);
	}
}

/* Trim what was already consumed; deliver the rest. */
static bool in_order(struct ph_ftp_session *s, struct out_ctx *c, int side,
		     __u32 seq, const __u8 *p, size_t n)
{
	struct ph_ftp_stream *st = &s->st[side];
	__u32 old;

	if (before(st->nxt, seq))
		return false;
	old = st->nxt - seq;
	if (old >= n) {
		s->stats.dup_bytes += n;
		return true;
	}
	s->stats.dup_bytes += old;
	deliver(s, c, side, p + old, n - old);
	return true;
}

static void rx_segment(struct ph_ftp_session *s, struct out_ctx *c, int side,
		       __u32 seq, const __u8 *p, size_t n)
{
	struct ph_ftp_stream *st = &s->st[side];

	if (in_order(s, c, side, seq, p, n) || hold(s, st, seq, p, n))
		return;
	flush_holes(s, c, side);
	if (s->encrypted || in_order(s, c, side, seq, p, n) ||
	    hold(s, st, seq, p, n))
		return;
	/* Starts beyond the whole window: skip to it. */
	gap(s, side, seq);
	deliver(s, c, side, p, n);
}

/* ---------------------------------------------------------------------- */
/* API                                                                     */
/* ---------------------------------------------------------------------- */

static bool is_v4_mapped(const __u8 a[16])
{
	static const __u8 prefix[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(a, prefix, sizeof(prefix));
}

int ph_ftp_init(struct ph_ftp_session *s, const struct ph_ftp_config *cfg)
{
	if (!s || !cfg)
		return -EINVAL;
	if (cfg->family != AF_INET && cfg->family != AF_INET6)
		return -EINVAL;
	if (cfg->family == AF_INET && (!is_v4_mapped(cfg->client_addr) ||
				       !is_v4_mapped(cfg->server_addr)))
		return -EINVAL;
	if (cfg->role != PH_FTP_ROLE_SERVER && cfg->role != PH_FTP_ROLE_CLIENT)
		return -EINVAL;
	if (cfg->nnat < 0 || cfg->nnat > PH_NAT_ADDRS_MAX)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	if (!s->cfg.ttl_ns)
		s->cfg.ttl_ns = PH_FTP_DEFAULT_TTL_NS;
	s->last_cmd = PH_FTP_CMD_NONE;
	s->encrypted = cfg->implicit_tls;
	return 0;
}

int ph_ftp_set_isn(struct ph_ftp_session *s, int from_client, __u32 syn_seq)
{
	int side = from_client ? SIDE_CLIENT : SIDE_SERVER;
	struct ph_ftp_stream *st;

	if (!s)
		return -EINVAL;
	st = &s->st[side];
	if (st->synced && (s->stats.bytes[side] || st->nseg))
		return -EBUSY;
	st->nxt = syn_seq + 1;
	st->synced = true;
	return 0;
}

int ph_ftp_feed(struct ph_ftp_session *s, int from_client, __u32 seq,
		const void *data, size_t len, __u64 now_ns,
		struct ph_ftp_action *out, int max_out)
{
	int side = from_client ? SIDE_CLIENT : SIDE_SERVER;
	struct out_ctx c = { .out = out, .max = max_out, .now = now_ns };
	struct ph_ftp_stream *st;

	if (!s || !out || max_out < PH_FTP_MAX_ACTIONS ||
	    len > PH_FTP_SEG_MAX || (len && !data))
		return -EINVAL;
	if (s->closed || !len)
		return 0;
	if (s->encrypted) {
		s->stats.encrypted_bytes += len;
		return 0;
	}
	st = &s->st[side];
	if (!st->synced) {
		st->nxt = seq;
		st->synced = true;
	}
	rx_segment(s, &c, side, seq, data, len);
	return c.n;
}

bool ph_ftp_ack(struct ph_ftp_session *s, int from_client, __u32 ack)
{
	struct ph_ftp_stream *st;

	if (!s)
		return false;
	st = &s->st[from_client ? SIDE_CLIENT : SIDE_SERVER];
	if (s->closed || s->encrypted || !st->synced || !before(st->nxt, ack))
		return false;
	/* Held copies may not be the ones the endpoint kept, below the ACK
	 * (it took bytes never seen) or above it: forget them all. */
	st->nseg = 0;
	memset(st->ooo_taint, 0, sizeof(st->ooo_taint));
	s->stats.ack_gaps++;
	gap(s, from_client ? SIDE_CLIENT : SIDE_SERVER, ack);
	return true;
}

/* One stream jumps to @to (after its nxt): what was held below goes, the
 * line in progress becomes the one @r describes (its head, when that is
 * all of it). Returns false if that line is not known whole. */
static bool jump(struct ph_ftp_session *s, int side,
		 const struct ph_ftp_resume *r)
{
	struct ph_ftp_stream *st = &s->st[side];
	__u32 to = r->nxt[side], x;
	int i = 0;

	if (st->synced) {
		s->stats.resumed_bytes += to - st->nxt;
		while (i < st->nseg) {
			if (!after(st->seg[i].end, to)) {
				seg_remove(st, i);
				continue;
			}
			if (before(st->seg[i].seq, to))
				st->seg[i].seq = to;
			i++;
		}
		if (!st->nseg || to - st->nxt >= PH_FTP_OOO_BYTES)
			memset(st->ooo_taint, 0, sizeof(st->ooo_taint));
		else
			for (x = st->nxt; before(x, to); x++)
				set_taint(st, x, false);
	}
	st->nxt = to;
	st->synced = true;
	st->overlong = false;
	st->line_len = 0;
	st->skip_to_eol = r->skip[side];
	if (r->skip[side])
		return true;
	if (r->line_len[side] > sizeof(r->head[side]))
		return false;
	memcpy(st->line, r->head[side], r->line_len[side]);
	st->line_len = r->line_len[side];
	return true;
}

int ph_ftp_resume(struct ph_ftp_session *s, const struct ph_ftp_resume *r,
		  __u64 now_ns, struct ph_ftp_action *out, int max_out,
		  int *nact)
{
	struct out_ctx c = { .out = out, .max = max_out, .now = now_ns };
	bool move[2], known[2] = { true, true }, ahead = false;
	int side, ret = PH_FTP_RESUMED;

	if (nact)
		*nact = 0;
	if (!s || !r || !out || max_out < PH_FTP_RESUME_MAX_ACTIONS)
		return -EINVAL;
	if (s->closed || s->encrypted)
		return 0;
	for (side = 0; side < 2; side++) {
		const struct ph_ftp_stream *st = &s->st[side];

		move[side] = !st->synced || before(st->nxt, r->nxt[side]);
		ahead |= st->synced && after(st->nxt, r->nxt[side]);
	}
	if (!move[0] && !move[1])
		return 0;
	s->stats.resumed++;
	for (side = 0; side < 2; side++)
		if (move[side])
			known[side] = jump(s, side, r);
	if (!ahead) {
		/* Both parsers at one point of both streams: the pairing is
		 * what the other one made of the bytes we skipped. */
		s->last_cmd = r->last_cmd;
		s->awaiting = r->awaiting;
		s->epsv_bad_family = r->epsv_bad_family;
		s->in_multiline = r->in_multiline;
		s->ml_code = r->ml_code;
		s->st[0].burst = r->burst[0];
		s->st[1].burst = r->burst[1];
	}
	/* A line we cannot see whole, or a stream of ours ahead of the
	 * other parser's: fail closed on the pairing, as after a gap. */
	for (side = 0; side < 2; side++)
		if (move[side] && (!known[side] || ahead)) {
			lose(s, side);
			ret |= PH_FTP_RESUME_BLIND;
		}
	if (r->lost && s->has_pending &&
	    !(r->has_keep && !memcmp(&s->pending.key, &r->keep,
				     sizeof(r->keep))))
		revoke_pending(s, &c);
	s->last_cmd_opened = !ahead && r->last_cmd_opened && s->has_pending;
	if (r->encrypted)
		go_encrypted(s, &c);
	for (side = 0; side < 2; side++)
		if (move[side] && !s->encrypted)
			deliver(s, &c, side, NULL, 0);
	if (nact)
		*nact = c.n;
	return ret;
}

int ph_ftp_close(struct ph_ftp_session *s, struct ph_ftp_action *out,
		 int max_out)
{
	struct out_ctx c = { .out = out, .max = max_out };

	if (!s || (max_out > 0 && !out) || max_out < 1)
		return -EINVAL;
	revoke_pending(s, &c);
	s->closed = true;
	return c.n;
}

void ph_ftp_forget_pending(struct ph_ftp_session *s)
{
	s->has_pending = false;
	s->last_cmd_opened = false;
}

bool ph_ftp_pending(const struct ph_ftp_session *s, struct ph_ftp_action *out)
{
	if (s->has_pending && out)
		*out = s->pending;
	return s->has_pending;
}

bool ph_ftp_encrypted(const struct ph_ftp_session *s)
{
	return s->encrypted;
}

const struct ph_ftp_stats *ph_ftp_stats(const struct ph_ftp_session *s)
{
	return &s->stats;
}
