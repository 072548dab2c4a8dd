// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy language: lexer, parser and compiler (docs/policy.md).
 *
 * A policy is read line by line; each line is validated (length, NUL,
 * UTF-8, control characters) before it is cut into tokens, so no input can
 * make the parser read out of bounds. Every check that can fail is done
 * while the statement that causes it is parsed, so the first error in file
 * order is the one reported. Compilation after the last line cannot fail
 * except for memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

enum tok_kind { T_EOL, T_WORD, T_COMMA, T_EQ };

struct tok {
	enum tok_kind kind;
	const char *s;
	int len;
	int col;
};

/* A peer prefix while parsing: 128-bit address space, IPv4 v4-mapped. */
struct pent {
	__u8 addr[16];
	__u8 plen; /* 0..128 */
	__u8 action;
	int col;   /* token to blame in the current statement */
	int ord;   /* position in the statement, for "the later one" */
};

struct plist {
	struct pent *e;
	int n, cap;
};

struct pset {
	char name[PH_NAME_MAX];
	int line;
	bool used;
	struct plist l;
};

/* Per-service facts needed only while parsing. */
struct svc_extra {
	int table;
	long count;              /* ports in the service's set */
	__u16 min, max;          /* bounding span, to skip disjoint pairs */
	int parent[PH_L4_MAX];   /* tightest service containing it, or -1 */
};

/*
 * Names of sets and services, hashed (open addressing, value = index + 1),
 * so a policy of many sets or services is checked in linear time.
 */
struct name_index {
	int *slot;
	unsigned int cap, n;
};

struct parser {
	const char *file;
	struct ph_policy *pol;
	struct ph_policy_error *err;
	int line;
	struct tok *toks;
	int ntoks, ti;
	int default_line[PH_DIR_MAX], icmp_line[PH_DIR_MAX], ttl_line;
	struct pset *sets;
	int nsets, capsets;
	const struct tok *defining; /* name of the set being defined */
	struct svc_extra *sx;
	int capsvc;
	int nrules, npeers, nnat;
	long expanded; /* prefixes copied out of sets so far (@name) */
	struct name_index set_idx, svc_idx;
};

static const char *const l4_names[PH_L4_MAX] = { "tcp", "udp" };

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */
/* ---------------------------------------------------------------------- */

static void set_file(struct ph_policy_error *err, const char *file)
{
	snprintf(err->file, sizeof(err->file), "%s", file ? file : "<policy>");
}

__attribute__((format(printf, 3, 4))) static int
perr(struct parser *p, int col, const char *fmt, ...)
{
	va_list ap;

	if (p->err->msg[0])
		return -1; /* keep the first error */
	set_file(p->err, p->file);
	p->err->line = p->line;
	p->err->col = col;
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* "end of line", or the token quoted (cut at 40 characters). */
static const char *tdesc(const struct tok *t, char *buf, size_t len)
{
	if (t->kind == T_EOL)
		return "end of line";
	if (t->len > 40)
		snprintf(buf, len, "\"%.40s...\"", t->s);
	else
		snprintf(buf, len, "\"%.*s\"", t->len, t->s);
	return buf;
}

static int expected(struct parser *p, const struct tok *t, const char *what,
		    const char *hint)
{
	char b[64];

	return perr(p, t->col, "expected %s, got %s%s", what,
		    tdesc(t, b, sizeof(b)), hint ? hint : "");
}

/* ---------------------------------------------------------------------- */
/* Name index                                                              */
/* ---------------------------------------------------------------------- */

static unsigned int name_hash(const char *s, int len)
{
	unsigned int h = 2166136261u; /* FNV-1a */
	int i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* Index of the entry named s[0..len) (name_of gives an entry's name), or
 * -1; *pos is where it would be inserted. */
static int nidx_find(const struct name_index *h, const char *s, int len,
		     const char *(*name_of)(const struct parser *, int),
		     const struct parser *p, unsigned int *pos)
{
	unsigned int i;

	if (!h->cap)
		return -1;
	for (i = name_hash(s, len) & (h->cap - 1); h->slot[i];
	     i = (i + 1) & (h->cap - 1)) {
		const char *n = name_of(p, h->slot[i] - 1);

		if ((int)strlen(n) == len && !memcmp(n, s, (size_t)len))
			return h->slot[i] - 1;
	}
	*pos = i;
	return -1;
}

/* Adds entry idx (not present yet); 0 or -1 (out of memory). */
static int nidx_add(struct name_index *h, int idx,
		    const char *(*name_of)(const struct parser *, int),
		    const struct parser *p)
{
	const char *n = name_of(p, idx);
	unsigned int pos = 0;

	if ((h->n + 1) * 2 > h->cap) {
		unsigned int cap = h->cap ? h->cap * 2 : 64, i;
		struct name_index nh = { calloc(cap, sizeof(int)), cap, 0 };

		if (!nh.slot)
			return -1;
		for (i = 0; i < h->cap; i++)
			if (h->slot[i] &&
			    nidx_add(&nh, h->slot[i] - 1, name_of, p))
				return -1; /* cannot fail: room enough */
		free(h->slot);
		*h = nh;
	}
	nidx_find(h, n, (int)strlen(n), name_of, p, &pos);
	h->slot[pos] = idx + 1;
	h->n++;
	return 0;
}

static const char *set_name(const struct parser *p, int i)
{
	return p->sets[i].name;
}

static const char *svc_name(const struct parser *p, int i)
{
	return p->pol->services[i].name;
}

/* ---------------------------------------------------------------------- */
/* Lexer                                                                   */
/* ---------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, or -1 (overlong, surrogate,
 * beyond U+10FFFF, truncated). */
static int utf8_len(const unsigned char *s, int n)
{
	unsigned int c = s[0], cp, min;
	int l, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		l = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		l = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		l = 4, cp = c & 0x07, min = 0x10000;
	else
		return -1;
	if (l > n)
		return -1;
	for (i = 1; i < l; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	return l;
}

static int check_bytes(struct parser *p, const unsigned char *s, int n)
{
	int i = 0, l;

	while (i < n) {
		unsigned int c = s[i];

		if (c == 0)
			return perr(p, i + 1, "NUL byte in policy text");
		if (c < 0x20 && c != '\t')
			return perr(p, i + 1, "control character 0x%02x", c);
		if (c == 0x7f)
			return perr(p, i + 1, "control character 0x7f");
		l = utf8_len(s + i, n - i);
		if (l < 0)
			return perr(p, i + 1,
				    "invalid UTF-8 (byte 0x%02x); policies are UTF-8 text",
				    c);
		i += l;
	}
	return 0;
}

static bool is_space(int c)
{
	return c == ' ' || c == '\t';
}

static bool ends_word(int c)
{
	return is_space(c) || c == ',' || c == '=' || c == '#';
}

/* Cut one line (no newline) into tokens, ending with T_EOL. */
static int lex_line(struct parser *p, const char *line, int n)
{
	const unsigned char *s = (const unsigned char *)line;
	int i = 0, end_col = 1;
	struct tok *t;

	p->ntoks = 0;
	p->ti = 0;
	if (check_bytes(p, s, n))
		return -1;
	for (;;) {
		while (i < n && is_space(s[i]))
			i++;
		if (i >= n || s[i] == '#')
			break;
		t = &p->toks[p->ntoks++];
		t->s = line + i;
		t->col = i + 1;
		if (s[i] == ',' || s[i] == '=') {
			t->kind = s[i] == ',' ? T_COMMA : T_EQ;
			t->len = 1;
			i++;
		} else {
			t->kind = T_WORD;
			while (i < n && !ends_word(s[i])) {
				if (s[i] >= 0x80)
					return perr(p, i + 1,
						    "non-ASCII character outside a comment");
				i++;
			}
			t->len = i - (t->col - 1);
		}
		end_col = i + 1;
	}
	t = &p->toks[p->ntoks++];
	t->kind = T_EOL;
	t->s = line + (end_col - 1);
	t->len = 0;
	t->col = end_col;
	return 0;
}

static struct tok *peek(struct parser *p)
{
	return &p->toks[p->ti];
}

static struct tok *next(struct parser *p)
{
	struct tok *t = &p->toks[p->ti];

	if (t->kind != T_EOL)
		p->ti++;
	return t;
}

static bool is(const struct tok *t, const char *word)
{
	size_t n = strlen(word);

	return t->kind == T_WORD && (size_t)t->len == n &&
	       !memcmp(t->s, word, n);
}

static int expect_eol(struct parser *p, const char *what, const char *hint)
{
	struct tok *t = peek(p);

	if (t->kind != T_EOL)
		return expected(p, t, what, hint);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Small values                                                            */
/* ---------------------------------------------------------------------- */

static bool valid_name(const struct tok *t)
{
	int i;

	if (t->kind != T_WORD || t->len < 1 || t->len > PH_NAME_MAX - 1)
		return false;
	for (i = 0; i < t->len; i++) {
		char c = t->s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* Decimal digits only, at most max_digits, no sign. */
static bool parse_num(const char *s, int len, int max_digits,
		      unsigned long *out)
{
	unsigned long v = 0;
	int i;

	if (len < 1 || len > max_digits)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return true;
}

static int parse_dir(struct parser *p, __u8 *dir)
{
	struct tok *t = next(p);

	if (is(t, "in"))
		*dir = PH_DIR_IN;
	else if (is(t, "out"))
		*dir = PH_DIR_OUT;
	else
		return expected(p, t, "a direction (in or out)", NULL);
	return 0;
}

static int table_of(int dir, bool sport)
{
	if (dir == PH_DIR_IN)
		return sport ? PH_PT_IN_SPORT : PH_PT_IN_DPORT;
	return sport ? PH_PT_OUT_SPORT : PH_PT_OUT_DPORT;
}

/* ---------------------------------------------------------------------- */
/* Settings                                                                */
/* ---------------------------------------------------------------------- */

/* default DIR allow|drop ; icmp-echo DIR allow|drop */
static int parse_verdict_setting(struct parser *p, const struct tok *kw,
				 int *seen, __u8 *value)
{
	struct tok *t;
	__u8 dir;
	char word[16];

	snprintf(word, sizeof(word), "%.*s", kw->len, kw->s);
	if (parse_dir(p, &dir))
		return -1;
	if (seen[dir])
		return perr(p, kw->col, "%s %s is already set on line %d", word,
			    dir == PH_DIR_IN ? "in" : "out", seen[dir]);
	t = next(p);
	if (is(t, "allow"))
		value[dir] = PH_ACT_ALLOW;
	else if (is(t, "drop") || is(t, "deny"))
		value[dir] = PH_ACT_DROP;
	else
		return expected(p, t, "allow or drop", NULL);
	seen[dir] = p->line;
	return expect_eol(p, "end of line", NULL);
}

/* ftp-ttl N(ms|s|m) */
static int parse_ttl(struct parser *p, const struct tok *kw)
{
	static const char what[] = "a duration such as 30s (units ms, s, m)";
	struct tok *t;
	unsigned long v, mul;
	int digits = 0;

	if (p->ttl_line)
		return perr(p, kw->col, "ftp-ttl is already set on line %d",
			    p->ttl_line);
	t = next(p);
	if (t->kind != T_WORD)
		return expected(p, t, what, NULL);
	while (digits < t->len && t->s[digits] >= '0' && t->s[digits] <= '9')
		digits++;
	if (!parse_num(t->s, digits, 9, &v))
		return expected(p, t, what, NULL);
	if (t->len - digits == 2 && !memcmp(t->s + digits, "ms", 2))
		mul = 1;
	else if (t->len - digits == 1 && t->s[digits] == 's')
		mul = 1000;
	else if (t->len - digits == 1 && t->s[digits] == 'm')
		mul = 60000;
	else
		return expected(p, t, what, NULL);
	v *= mul;
	if (v < PH_FTP_TTL_MIN_MS || v > PH_FTP_TTL_MAX_MS) {
		char b[64];

		return perr(p, t->col, "ftp-ttl must be between 1s and 10m, got %s",
			    tdesc(t, b, sizeof(b)));
	}
	p->pol->ftp_ttl_ms = (__u32)v;
	p->ttl_line = p->line;
	return expect_eol(p, "end of line", NULL);
}

/* ---------------------------------------------------------------------- */
/* Peers                                                                   */
/* ---------------------------------------------------------------------- */

static int plist_push(struct parser *p, struct plist *l, const struct pent *e,
		      int col)
{
	if (l->n >= PH_POLICY_MAX_PEER_ENTRIES)
		return perr(p, col, "too many prefixes in one list (limit %d)",
			    PH_POLICY_MAX_PEER_ENTRIES);
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 16;
		struct pent *ne = realloc(l->e, (size_t)cap * sizeof(*ne));

		if (!ne)
			return perr(p, col, "out of memory");
		l->e = ne;
		l->cap = cap;
	}
	l->e[l->n] = *e;
	l->e[l->n].col = col;
	l->e[l->n].ord = l->n;
	l->n++;
	return 0;
}

static void mask_addr(__u8 *a, int plen)
{
	int i;

	for (i = 0; i < 16; i++) {
		int keep = plen - i * 8;

		if (keep <= 0)
			a[i] = 0;
		else if (keep < 8)
			a[i] &= (__u8)(0xff00 >> keep);
	}
}

static bool is_v4mapped(const __u8 *a)
{
	static const __u8 pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return !memcmp(a, pfx, sizeof(pfx));
}

/* Text of a 128-bit prefix: v4-mapped /96+ as IPv4, ::/0 as "any". */
static void fmt_prefix(const __u8 *addr, int plen, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (plen == 0) {
		snprintf(buf, len, "any");
	} else if (plen >= 96 && is_v4mapped(addr)) {
		inet_ntop(AF_INET, addr + 12, a, sizeof(a));
		snprintf(buf, len, "%s/%d", a, plen - 96);
	} else {
		inet_ntop(AF_INET6, addr, a, sizeof(a));
		snprintf(buf, len, "%s/%d", a, plen);
	}
}

void ph_peer_format(const struct ph_peer_key *key, char *buf, size_t len)
{
	int plen = (int)key->prefixlen;

	if (plen > 128)
		plen = 128;
	fmt_prefix(key->addr, plen, buf, len);
}

/* CIDR or bare address (s excludes a leading '!'), host bits clear. */
static int parse_cidr(struct parser *p, const struct tok *t, const char *s,
		      int len, struct pent *e)
{
	static const char what[] = "an IPv4 or IPv6 address or prefix";
	char buf[64], *slash, ok[INET6_ADDRSTRLEN];
	unsigned long n;
	__u8 v4[4], masked[16];
	int max, fam;

	if (len <= 0 || len >= (int)sizeof(buf))
		return expected(p, t, what, NULL);
	memcpy(buf, s, (size_t)len);
	buf[len] = 0;
	slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	fam = strchr(buf, ':') ? AF_INET6 : AF_INET;
	memset(e, 0, sizeof(*e));
	if (fam == AF_INET6) {
		if (inet_pton(AF_INET6, buf, e->addr) != 1)
			return expected(p, t, what, NULL);
		max = 128;
	} else {
		if (inet_pton(AF_INET, buf, v4) != 1)
			return expected(p, t, what, NULL);
		e->addr[10] = e->addr[11] = 0xff;
		memcpy(e->addr + 12, v4, 4);
		max = 32;
	}
	n = (unsigned long)max;
	if (slash && !parse_num(slash + 1, (int)strlen(slash + 1), 3, &n))
		return expected(p, t, what, " (prefix length after / is a number)");
	if (n > (unsigned long)max)
		return perr(p, t->col,
			    "prefix length /%lu is too long for %s (at most /%d)",
			    n, fam == AF_INET ? "IPv4" : "IPv6", max);
	e->plen = (__u8)(n + (unsigned long)(fam == AF_INET ? 96 : 0));
	memcpy(masked, e->addr, 16);
	mask_addr(masked, e->plen);
	if (memcmp(masked, e->addr, 16)) {
		inet_ntop(fam, fam == AF_INET ? masked + 12 : masked, ok,
			  sizeof(ok));
		return perr(p, t->col,
			    "%.*s has host bits set; did you mean %s%s/%lu?",
			    t->len > 60 ? 60 : t->len, t->s,
			    t->s[0] == '!' ? "!" : "", ok, n);
	}
	return 0;
}

static struct pset *find_set(struct parser *p, const char *s, int len)
{
	unsigned int pos;
	int i = nidx_find(&p->set_idx, s, len, set_name, p, &pos);

	return i < 0 ? NULL : &p->sets[i];
}

/* One item of a peer list: CIDR, !CIDR, @set, or (services only) any.
 * *any_col is set to the column of `any`. */
static int parse_peer_item(struct parser *p, struct plist *l, bool allow_any,
			   int *any_col)
{
	struct tok *t = next(p);
	struct pent e;
	struct pset *set;
	char b[64];
	int i;

	if (t->kind != T_WORD)
		return expected(p, t, allow_any ?
			"a peer (any, an address or prefix, !prefix or @set)" :
			"an address or prefix, !prefix or @set", NULL);
	if (is(t, "any")) {
		if (!allow_any)
			return perr(p, t->col,
				    "a set cannot contain any; write \"from any\" or \"to any\" in the service");
		if (*any_col)
			return perr(p, t->col, "any is listed twice");
		*any_col = t->col;
		return 0;
	}
	if (t->s[0] == '@') {
		set = find_set(p, t->s + 1, t->len - 1);
		if (!set && p->defining && p->defining->len == t->len - 1 &&
		    !memcmp(p->defining->s, t->s + 1, (size_t)t->len - 1))
			return perr(p, t->col, "a set cannot contain itself");
		if (!set)
			return perr(p, t->col,
				    "unknown set %s (define it with \"set %.*s = ...\" before this line)",
				    tdesc(t, b, sizeof(b)),
				    t->len - 1 > 40 ? 40 : t->len - 1, t->s + 1);
		set->used = true;
		/* Each @set copies its prefixes: bound the copies, or a chain
		 * of sets each including the previous one costs quadratic
		 * time and memory. */
		if (p->expanded + set->l.n > PH_POLICY_MAX_SET_EXPANSION)
			return perr(p, t->col,
				    "@%s: sets expand to more than %d prefixes in this policy (each @set copies the prefixes of the set, and of every set it includes); use fewer or flatter nested sets",
				    set->name, PH_POLICY_MAX_SET_EXPANSION);
		p->expanded += set->l.n;
		for (i = 0; i < set->l.n; i++)
			if (plist_push(p, l, &set->l.e[i], t->col))
				return -1;
		return 0;
	}
	if (t->s[0] == '!') {
		if (t->len > 1 && (t->s[1] == '@' || is(t, "!any")))
			return perr(p, t->col,
				    "! applies to a prefix, not to %s",
				    t->s[1] == '@' ? "a set" : "any");
		if (parse_cidr(p, t, t->s + 1, t->len - 1, &e))
			return -1;
		e.action = PH_ACT_DROP;
	} else {
		if (parse_cidr(p, t, t->s, t->len, &e))
			return -1;
		e.action = PH_ACT_ALLOW;
	}
	return plist_push(p, l, &e, t->col);
}

static int parse_peer_list(struct parser *p, struct plist *l, bool allow_any,
			   int *any_col)
{
	if (parse_peer_item(p, l, allow_any, any_col))
		return -1;
	while (peek(p)->kind == T_COMMA) {
		next(p);
		if (parse_peer_item(p, l, allow_any, any_col))
			return -1;
	}
	return 0;
}

static int cmp_prefix(const struct pent *a, const struct pent *b)
{
	int c;

	if (a->plen != b->plen)
		return a->plen < b->plen ? -1 : 1;
	c = memcmp(a->addr, b->addr, 16);
	if (c)
		return c;
	return a->ord < b->ord ? -1 : a->ord > b->ord;
}

static int cmp_pent(const void *a, const void *b)
{
	return cmp_prefix(a, b);
}

static int cmp_ord(const void *a, const void *b)
{
	const struct pent *x = a, *y = b;

	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* Is there an entry for exactly (addr/plen) in the sorted list? */
static const struct pent *lookup_prefix(const struct plist *l,
					const __u8 *addr, int plen)
{
	int lo = 0, hi = l->n - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct pent *m = &l->e[mid];
		int c = m->plen != plen ? (m->plen < plen ? -1 : 1) :
					  memcmp(m->addr, addr, 16);

		if (!c)
			return m;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* The nearest shorter prefix listed that contains e (NULL if none). */
static const struct pent *parent_prefix(const struct plist *l,
					const struct pent *e)
{
	__u8 a[16];
	int plen;

	for (plen = e->plen - 1; plen >= 0; plen--) {
		const struct pent *m;

		memcpy(a, e->addr, 16);
		mask_addr(a, plen);
		m = lookup_prefix(l, a, plen);
		if (m)
			return m;
	}
	return NULL;
}

/*
 * Drop exact duplicates, refuse a prefix both allowed and excluded and,
 * for a service (check_excl), an exclusion that no allowed prefix around
 * it makes meaningful. Leaves the list in written order.
 */
static int normalize_peers(struct parser *p, struct plist *l, bool check_excl)
{
	char b[64];
	int i, n = 0;

	qsort(l->e, (size_t)l->n, sizeof(*l->e), cmp_pent);
	for (i = 0; i < l->n; i++) {
		struct pent *prev = n ? &l->e[n - 1] : NULL;

		if (prev && prev->plen == l->e[i].plen &&
		    !memcmp(prev->addr, l->e[i].addr, 16)) {
			if (prev->action != l->e[i].action) {
				fmt_prefix(l->e[i].addr, l->e[i].plen, b,
					   sizeof(b));
				return perr(p, l->e[i].col,
					    "%s is both allowed and excluded",
					    b);
			}
			continue;
		}
		l->e[n++] = l->e[i];
	}
	l->n = n;
	for (i = 0; check_excl && i < l->n; i++) {
		const struct pent *par;

		if (l->e[i].action != PH_ACT_DROP)
			continue;
		par = parent_prefix(l, &l->e[i]);
		if (!par || par->action != PH_ACT_ALLOW) {
			fmt_prefix(l->e[i].addr, l->e[i].plen, b, sizeof(b));
			return perr(p, l->e[i].col,
				    "!%s excludes nothing: no allowed prefix in this list contains it directly",
				    b);
		}
	}
	qsort(l->e, (size_t)l->n, sizeof(*l->e), cmp_ord);
	return 0;
}

static int add_set(struct parser *p, const struct tok *name,
		   struct plist *l)
{
	struct pset *set;

	if (p->nsets == p->capsets) {
		int cap = p->capsets ? p->capsets * 2 : 8;
		struct pset *ns = realloc(p->sets, (size_t)cap * sizeof(*ns));

		if (!ns)
			return perr(p, name->col, "out of memory");
		p->sets = ns;
		p->capsets = cap;
	}
	set = &p->sets[p->nsets];
	memset(set, 0, sizeof(*set));
	snprintf(set->name, sizeof(set->name), "%.*s", name->len, name->s);
	if (nidx_add(&p->set_idx, p->nsets, set_name, p))
		return perr(p, name->col, "out of memory");
	p->nsets++;
	set->line = p->line;
	set->l = *l;
	memset(l, 0, sizeof(*l)); /* now owned by the set */
	return 0;
}

/* set NAME = item, ...  (a set is defined once its line is complete, so
 * it cannot refer to itself) */
static int parse_set(struct parser *p)
{
	struct tok *name = next(p), *t;
	struct plist l = { 0 };
	struct pset *set;
	char b[64];
	int any_col = 0, ret = -1;

	if (!valid_name(name))
		return expected(p, name,
				"a set name ([A-Za-z0-9_.-], 1-63 characters)",
				NULL);
	set = find_set(p, name->s, name->len);
	if (set)
		return perr(p, name->col, "set %s is already defined on line %d",
			    tdesc(name, b, sizeof(b)), set->line);
	t = next(p);
	if (t->kind != T_EQ)
		return expected(p, t, "\"=\"", NULL);
	p->defining = name;
	if (!parse_peer_list(p, &l, false, &any_col) &&
	    !normalize_peers(p, &l, false) &&
	    !expect_eol(p, "\",\" or end of line", NULL))
		ret = add_set(p, name, &l);
	p->defining = NULL;
	free(l.e);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Services                                                                */
/* ---------------------------------------------------------------------- */

struct svc_parse {
	struct ph_service s;
	struct plist peers;
	int any_col, peers_col;
	int action_col, flag_col[3];
	int nat_col, active_col;
};

static const struct {
	const char *word;
	__u16 flag;
} flag_words[3] = {
	{ "ftp-track", PH_RF_FTP_TRACK },
	{ "ftps-range", PH_RF_FTPS_RANGE },
	{ "ftps-implicit", PH_RF_FTPS_IMPLICIT },
};

static int parse_proto(struct parser *p, struct ph_service *s)
{
	struct tok *t;
	int l4;

	do {
		if (s->l4_mask)
			next(p); /* the comma */
		t = next(p);
		if (is(t, "tcp"))
			l4 = PH_L4_TCP;
		else if (is(t, "udp"))
			l4 = PH_L4_UDP;
		else
			return expected(p, t, "a protocol (tcp, udp or tcp,udp)",
					NULL);
		if (s->l4_mask & (1u << l4))
			return perr(p, t->col, "%s is listed twice",
				    l4_names[l4]);
		s->l4_mask |= (__u8)(1u << l4);
	} while (peek(p)->kind == T_COMMA);
	return 0;
}

static int parse_port_item(struct parser *p, struct ph_service *s)
{
	static const char what[] = "a port (1-65535) or range N-M";
	struct tok *t = next(p);
	unsigned long lo, hi;
	const char *dash;
	int i;

	if (t->kind != T_WORD)
		return expected(p, t, what, NULL);
	dash = memchr(t->s, '-', (size_t)t->len);
	if (dash) {
		int l1 = (int)(dash - t->s);

		if (!parse_num(t->s, l1, 5, &lo) ||
		    !parse_num(dash + 1, t->len - l1 - 1, 5, &hi))
			return expected(p, t, what, NULL);
	} else if (!parse_num(t->s, t->len, 5, &lo)) {
		return expected(p, t, what, NULL);
	} else {
		hi = lo;
	}
	if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535)
		return expected(p, t, what, NULL);
	if (lo > hi)
		return perr(p, t->col,
			    "port range %lu-%lu is reversed; did you mean %lu-%lu?",
			    lo, hi, hi, lo);
	for (i = 0; i < s->nranges; i++) {
		struct ph_port_range *r = &s->ranges[i];

		if (lo <= r->hi && hi >= r->lo) {
			if (lo == hi && r->lo == r->hi)
				return perr(p, t->col,
					    "port %lu is listed twice", lo);
			return perr(p, t->col,
				    "ports %.*s overlap %u-%u earlier in this list",
				    t->len, t->s, r->lo, r->hi);
		}
	}
	if (!(s->nranges & (s->nranges - 1))) { /* 0 or a power of 2 */
		int cap = s->nranges ? s->nranges * 2 : 1;
		struct ph_port_range *nr =
			realloc(s->ranges, (size_t)cap * sizeof(*nr));

		if (!nr)
			return perr(p, t->col, "out of memory");
		s->ranges = nr;
	}
	s->ranges[s->nranges].lo = (__u16)lo;
	s->ranges[s->nranges].hi = (__u16)hi;
	s->ranges[s->nranges].col = t->col;
	s->nranges++;
	return 0;
}

static int parse_ports(struct parser *p, struct ph_service *s)
{
	if (parse_port_item(p, s))
		return -1;
	while (peek(p)->kind == T_COMMA) {
		next(p);
		if (parse_port_item(p, s))
			return -1;
	}
	return 0;
}

static const char *tail_hint(const struct tok *t)
{
	if (t->kind != T_WORD)
		return NULL;
	if (t->s[0] >= '0' && t->s[0] <= '9' &&
	    !memchr(t->s, '.', (size_t)t->len) &&
	    !memchr(t->s, ':', (size_t)t->len))
		return " (separate ports with commas)";
	if (t->s[0] == '@' || t->s[0] == '!' ||
	    memchr(t->s, '.', (size_t)t->len) ||
	    memchr(t->s, ':', (size_t)t->len) || is(t, "any"))
		return " (peers follow \"from\" or \"to\", right after the ports)";
	return NULL;
}

/* One host address (no prefix), v4-mapped for IPv4. */
static int parse_host(struct parser *p, const struct tok *t, __u8 *addr)
{
	static const char what[] = "an IPv4 or IPv6 host address";
	static const __u8 none[16];
	char buf[64];
	__u8 v4[4];

	if (t->kind != T_WORD || t->len >= (int)sizeof(buf))
		return expected(p, t, what, NULL);
	if (memchr(t->s, '/', (size_t)t->len))
		return expected(p, t, what,
				" (nat-address names addresses, not prefixes)");
	memcpy(buf, t->s, (size_t)t->len);
	buf[t->len] = 0;
	memset(addr, 0, 16);
	if (strchr(buf, ':')) {
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return expected(p, t, what, NULL);
	} else {
		if (inet_pton(AF_INET, buf, v4) != 1)
			return expected(p, t, what, NULL);
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, v4, 4);
	}
	if (!memcmp(addr, none, 16) ||
	    (is_v4mapped(addr) && !memcmp(addr + 12, none, 4)))
		return perr(p, t->col, "%s names no host (unspecified address)",
			    buf);
	return 0;
}

/* nat-address ADDR { , ADDR } */
static int parse_nat(struct parser *p, struct svc_parse *sp,
		     const struct tok *kw)
{
	struct ph_service *s = &sp->s;
	const struct tok *t;
	__u8 a[16];

	if (sp->nat_col)
		return perr(p, kw->col,
			    "nat-address is already given at column %d (list every address after it, separated by commas)",
			    sp->nat_col);
	sp->nat_col = kw->col;
	for (;;) {
		t = next(p);
		if (parse_host(p, t, a))
			return -1;
		for (int i = 0; i < s->nnat; i++)
			if (!memcmp(s->nat[i], a, 16))
				return perr(p, t->col, "%.*s is listed twice",
					    t->len, t->s);
		if (s->nnat == PH_NAT_ADDRS_MAX)
			return perr(p, t->col,
				    "at most %d nat-address addresses per service",
				    PH_NAT_ADDRS_MAX);
		memcpy(s->nat[s->nnat++], a, 16);
		if (peek(p)->kind != T_COMMA)
			return 0;
		next(p);
	}
}

/* active-port PORT */
static int parse_active_port(struct parser *p, struct svc_parse *sp,
			     const struct tok *kw)
{
	const struct tok *t;
	unsigned long v;

	if (sp->active_col)
		return perr(p, kw->col, "active-port is already given at column %d",
			    sp->active_col);
	sp->active_col = kw->col;
	t = next(p);
	if (t->kind != T_WORD || !parse_num(t->s, t->len, 5, &v) || !v ||
	    v > 65535)
		return expected(p, t,
				"the active-data source port (1-65535) after active-port",
				NULL);
	sp->s.active_port = (__u16)v;
	return 0;
}

/* [from|to PEERS] then allow|deny and flags, in any order. */
static int parse_tail(struct parser *p, struct svc_parse *sp)
{
	struct ph_service *s = &sp->s;
	struct tok *t = peek(p);
	int i;

	if (is(t, "from") || is(t, "to")) {
		bool from = is(t, "from");

		if (from != (s->dir == PH_DIR_IN))
			return perr(p, t->col,
				    "%s service names its peers with \"%s\", not \"%s\"",
				    from ? "an outbound" : "an inbound",
				    from ? "to" : "from", from ? "from" : "to");
		sp->peers_col = next(p)->col;
		if (parse_peer_list(p, &sp->peers, true, &sp->any_col))
			return -1;
	}
	for (t = next(p); t->kind != T_EOL; t = next(p)) {
		if (is(t, "allow") || is(t, "deny") || is(t, "drop")) {
			if (sp->action_col)
				return perr(p, t->col,
					    "the action is already given at column %d",
					    sp->action_col);
			sp->action_col = t->col;
			s->action = is(t, "allow") ? PH_ACT_ALLOW : PH_ACT_DROP;
			continue;
		}
		for (i = 0; i < 3; i++)
			if (is(t, flag_words[i].word))
				break;
		if (i < 3) {
			if (sp->flag_col[i])
				return perr(p, t->col, "%s is given twice",
					    flag_words[i].word);
			sp->flag_col[i] = t->col;
			s->flags |= flag_words[i].flag;
			continue;
		}
		if (is(t, "nat-address")) {
			if (parse_nat(p, sp, t))
				return -1;
			continue;
		}
		if (is(t, "active-port")) {
			if (parse_active_port(p, sp, t))
				return -1;
			continue;
		}
		if (is(t, "from") || is(t, "to"))
			return perr(p, t->col,
				    "the peer list (from/to) must come right after the ports");
		return expected(p, t,
			"allow, deny, a flag (ftp-track, ftps-range, ftps-implicit), nat-address, active-port or end of line",
			tail_hint(t));
	}
	return 0;
}

/* Flags and action that cannot go together or with this service. */
static int check_flags(struct parser *p, struct svc_parse *sp)
{
	struct ph_service *s = &sp->s;
	int i;

	for (i = 0; i < 3; i++) {
		const char *w = flag_words[i].word;
		int col = sp->flag_col[i];

		if (!col)
			continue;
		if (s->l4_mask != 1u << PH_L4_TCP)
			return perr(p, col, "%s applies to tcp only", w);
		if (s->action == PH_ACT_DROP)
			return perr(p, col, "%s makes no sense on a deny service",
				    w);
		if (s->match_sport)
			return perr(p, col,
				    "%s needs destination ports (the server's port), not sport",
				    w);
	}
	if (sp->flag_col[2] && sp->flag_col[0])
		return perr(p, sp->flag_col[2] > sp->flag_col[0] ?
				       sp->flag_col[2] : sp->flag_col[0],
			    "ftp-track and ftps-implicit exclude each other: an implicit FTPS control channel is encrypted from the start");
	if (sp->flag_col[1]) {
		if (s->dir != PH_DIR_IN)
			return perr(p, sp->flag_col[1],
				    "ftps-range applies to inbound services only (this host's passive ports)");
		if (sp->flag_col[0] || sp->flag_col[2])
			return perr(p, sp->flag_col[1],
				    "ftps-range marks data ports; it cannot be combined with %s",
				    sp->flag_col[0] ? "ftp-track" : "ftps-implicit");
	}
	if (sp->nat_col && !sp->flag_col[0])
		return perr(p, sp->nat_col,
			    "nat-address applies to ftp-track services only (the addresses their control channel may announce)");
	if (sp->active_col && !sp->flag_col[0] && !sp->flag_col[2])
		return perr(p, sp->active_col,
			    "active-port applies to ftp-track and ftps-implicit services only");
	if (sp->flag_col[0] || sp->flag_col[2]) {
		if (!s->active_port)
			s->active_port = sp->flag_col[2] ?
						 PH_ACTIVE_PORT_FTPS_IMPLICIT :
						 PH_ACTIVE_PORT_FTP;
		/* The server's data leaves it; a client receives it. */
		s->active_table = (__u8)table_of(
			s->dir == PH_DIR_IN ? PH_DIR_OUT : PH_DIR_IN, true);
	}
	s->active_open_by = -1;
	if (s->action == PH_ACT_DROP && sp->peers_col && sp->peers.n)
		return perr(p, sp->peers_col,
			    "a deny service drops every peer; it takes no peer list (exclude prefixes with ! on an allow service instead)");
	return 0;
}

/* `any` and the listed prefixes -> PEER_ANY, or the entries to compile. */
static int finish_peers(struct parser *p, struct svc_parse *sp)
{
	struct plist *l = &sp->peers;
	struct pent all;
	char b[64];
	int i;

	if (!sp->peers_col || (sp->any_col && !l->n)) {
		sp->s.flags |= PH_RF_PEER_ANY;
		return 0;
	}
	if (sp->any_col) {
		for (i = 0; i < l->n; i++) {
			if (l->e[i].action != PH_ACT_ALLOW)
				continue;
			fmt_prefix(l->e[i].addr, l->e[i].plen, b, sizeof(b));
			return perr(p, l->e[i].col,
				    "any already matches every address; remove %s or any (only !exclusions may follow any)",
				    b);
		}
		/* any minus exclusions: ::/0 allowed, the exclusions dropped */
		memset(&all, 0, sizeof(all));
		all.action = PH_ACT_ALLOW;
		if (plist_push(p, l, &all, sp->any_col))
			return -1;
		l->e[l->n - 1].ord = -1; /* written first */
	}
	return normalize_peers(p, l, true);
}

static long port_count(const struct ph_service *s)
{
	long n = 0;
	int i;

	for (i = 0; i < s->nranges; i++)
		n += (long)s->ranges[i].hi - s->ranges[i].lo + 1;
	return n;
}

static int cmp_range(const void *a, const void *b)
{
	const struct ph_port_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* "tcp,udp in sport 20-21" */
static void fmt_where(char *buf, size_t len, unsigned int l4_mask, int table,
		      const char *ports)
{
	static const char *const tn[PH_PT_MAX] = { "in", "in sport", "out",
						    "out sport" };

	snprintf(buf, len, "%s%s%s %s %s",
		 l4_mask & (1u << PH_L4_TCP) ? "tcp" : "",
		 l4_mask == 3 ? "," : "",
		 l4_mask & (1u << PH_L4_UDP) ? "udp" : "", tn[table], ports);
}

/* Ports of a service as "22,80-90", cut with "..." to fit. */
static void fmt_ports(const struct ph_service *s, char *buf, size_t len)
{
	size_t off = 0;
	int i;

	buf[0] = 0;
	for (i = 0; i < s->nranges; i++) {
		char one[16];
		const struct ph_port_range *r = &s->ranges[i];

		if (r->lo == r->hi)
			snprintf(one, sizeof(one), "%s%u", i ? "," : "", r->lo);
		else
			snprintf(one, sizeof(one), "%s%u-%u", i ? "," : "",
				 r->lo, r->hi);
		if (off + strlen(one) + 4 >= len) {
			snprintf(buf + off, len - off, ",...");
			return;
		}
		off += (size_t)snprintf(buf + off, len - off, "%s", one);
	}
}

struct overlap {
	long inter;
	unsigned int lo, hi; /* first overlapping chunk */
	int col;             /* a's range token there */
};

/* Intersection of two sorted disjoint range lists. */
static void intersect(const struct ph_service *a, const struct ph_service *b,
		      struct overlap *o)
{
	int i = 0, j = 0;

	memset(o, 0, sizeof(*o));
	while (i < a->nranges && j < b->nranges) {
		const struct ph_port_range *x = &a->ranges[i], *y = &b->ranges[j];
		unsigned int lo = x->lo > y->lo ? x->lo : y->lo;
		unsigned int hi = x->hi < y->hi ? x->hi : y->hi;

		if (lo <= hi) {
			if (!o->inter) {
				o->lo = lo;
				o->hi = hi;
				o->col = x->col;
			}
			o->inter += (long)(hi - lo) + 1;
		}
		if (x->hi < y->hi)
			i++;
		else
			j++;
	}
}

static void adopt_parent(struct parser *p, int child, unsigned int l4_mask,
			 int parent)
{
	struct svc_extra *cx = &p->sx[child];
	int l4;

	for (l4 = 0; l4 < PH_L4_MAX; l4++) {
		int *cur = &cx->parent[l4];

		if (!(l4_mask & (1u << l4)))
			continue;
		if (*cur < 0 || p->sx[*cur].count > p->sx[parent].count)
			*cur = parent;
	}
}

/* Why s (new) and o (earlier) cannot share ports, as an error. */
static int overlap_error(struct parser *p, const struct ph_service *s,
			 const struct ph_service *o, const struct overlap *ov,
			 unsigned int shared, int table, bool identical)
{
	char where[128], ports[64];

	if (identical)
		fmt_ports(s, ports, sizeof(ports));
	else if (ov->lo == ov->hi)
		snprintf(ports, sizeof(ports), "%u", ov->lo);
	else
		snprintf(ports, sizeof(ports), "%u-%u", ov->lo, ov->hi);
	fmt_where(where, sizeof(where), shared, table, ports);
	if ((s->flags | o->flags) & PH_RF_FTPS_RANGE)
		return perr(p, ov->col,
			    "service \"%s\" overlaps service \"%s\" (line %d) on %s: an ftps-range cannot share ports with another service; split the range around them",
			    s->name, o->name, o->line, where);
	if (identical && s->action == o->action)
		return perr(p, ov->col,
			    "service \"%s\" duplicates service \"%s\" (line %d) on %s: merge their peer lists",
			    s->name, o->name, o->line, where);
	if (identical)
		return perr(p, ov->col,
			    "service \"%s\" contradicts service \"%s\" (line %d): both match %s, one allows and one denies",
			    s->name, o->name, o->line, where);
	return perr(p, ov->col,
		    "service \"%s\" partly overlaps service \"%s\" (line %d) on %s: make one contain the other, or make them disjoint",
		    s->name, o->name, o->line, where);
}

/*
 * The new service s (index idx) against every earlier one of its table:
 * disjoint or strictly nested is fine (the narrower wins), anything else is
 * an error. An ftps-range shares ports with nothing.
 */
static int check_overlaps(struct parser *p, struct ph_service *s, int idx)
{
	struct svc_extra *x = &p->sx[idx];
	int j;

	for (j = 0; j < idx; j++) {
		struct ph_service *o = &p->pol->services[j];
		struct svc_extra *ox = &p->sx[j];
		unsigned int shared = s->l4_mask & o->l4_mask;
		struct overlap ov;

		if (ox->table != x->table || !shared || ox->max < x->min ||
		    ox->min > x->max)
			continue;
		intersect(s, o, &ov);
		if (!ov.inter)
			continue;
		if (((s->flags | o->flags) & PH_RF_FTPS_RANGE) ||
		    (ov.inter != x->count && ov.inter != ox->count) ||
		    (ov.inter == x->count && ov.inter == ox->count))
			return overlap_error(p, s, o, &ov, shared, x->table,
					     ov.inter == x->count &&
						     ov.inter == ox->count);
		if (ov.inter == x->count)
			adopt_parent(p, idx, shared, j);
		else
			adopt_parent(p, j, shared, idx);
	}
	return 0;
}

/* Rules a service may need besides its own: its active-data guard. */
static int guard_rules(const struct ph_service *s)
{
	return s->active_port ? 1 : 0;
}

static int check_limits(struct parser *p, struct svc_parse *sp)
{
	struct ph_service *s = &sp->s;
	int nl4 = __builtin_popcount(s->l4_mask), i;

	if (s->nnat && p->nnat >= PH_FTP_NAT_MAX / PH_SLOTS)
		return perr(p, sp->nat_col,
			    "too many services with nat-address: the limit is %d",
			    PH_FTP_NAT_MAX / PH_SLOTS);
	for (i = 0; i < s->nranges; i++)
		if (p->nrules + (i + 1) * nl4 +
			    (i + 1 == s->nranges ? guard_rules(s) : 0) >
		    PH_MAX_RULES)
			return perr(p, s->ranges[i].col,
				    "too many rules: the limit is %d (one rule per port range and protocol)",
				    PH_MAX_RULES);
	if (p->npeers + sp->peers.n > PH_POLICY_MAX_PEER_ENTRIES)
		return perr(p, sp->peers_col,
			    "too many peer entries: this service brings the policy to %d, the limit is %d",
			    p->npeers + sp->peers.n, PH_POLICY_MAX_PEER_ENTRIES);
	return 0;
}

static struct ph_service *find_service(struct parser *p, const struct tok *t)
{
	unsigned int pos;
	int i = nidx_find(&p->svc_idx, t->s, t->len, svc_name, p, &pos);

	return i < 0 ? NULL : &p->pol->services[i];
}

static int grow_services(struct parser *p, int col)
{
	struct ph_policy *pol = p->pol;
	int cap = p->capsvc ? p->capsvc * 2 : 16;
	struct ph_service *ns;
	struct svc_extra *nx;

	if (pol->nservices < p->capsvc)
		return 0;
	ns = realloc(pol->services, (size_t)cap * sizeof(*ns));
	if (!ns)
		return perr(p, col, "out of memory");
	pol->services = ns;
	nx = realloc(p->sx, (size_t)cap * sizeof(*nx));
	if (!nx)
		return perr(p, col, "out of memory");
	p->sx = nx;
	p->capsvc = cap;
	return 0;
}

/* Move the parsed peers into the service as compiled keys. */
static int store_peers(struct parser *p, struct svc_parse *sp)
{
	struct ph_service *s = &sp->s;
	int i;

	if (!sp->peers.n)
		return 0;
	s->peers = calloc((size_t)sp->peers.n, sizeof(*s->peers));
	s->peer_vals = calloc((size_t)sp->peers.n, sizeof(*s->peer_vals));
	if (!s->peers || !s->peer_vals)
		return perr(p, s->col, "out of memory");
	for (i = 0; i < sp->peers.n; i++) {
		const struct pent *e = &sp->peers.e[i];

		s->peers[i].prefixlen = (__u32)e->plen;
		memcpy(s->peers[i].addr, e->addr, 16);
		s->peer_vals[i].action = e->action;
	}
	s->npeers = sp->peers.n;
	return 0;
}

static void free_service(struct ph_service *s)
{
	free(s->ranges);
	free(s->peers);
	free(s->peer_vals);
	memset(s, 0, sizeof(*s));
}

static int add_service(struct parser *p, struct svc_parse *sp)
{
	struct ph_service *s = &sp->s;
	int idx = p->pol->nservices, l4;
	struct svc_extra *x;

	if (grow_services(p, s->col))
		return -1;
	if (check_limits(p, sp)) /* before sorting: blame ranges in written order */
		return -1;
	x = &p->sx[idx];
	qsort(s->ranges, (size_t)s->nranges, sizeof(*s->ranges), cmp_range);
	x->table = table_of(s->dir, s->match_sport);
	x->count = port_count(s);
	x->min = s->ranges[0].lo;
	x->max = s->ranges[s->nranges - 1].hi;
	for (l4 = 0; l4 < PH_L4_MAX; l4++)
		x->parent[l4] = -1;
	if (check_overlaps(p, s, idx) ||
	    store_peers(p, sp))
		return -1;
	p->nrules += s->nranges * __builtin_popcount(s->l4_mask) +
		     guard_rules(s);
	p->npeers += s->npeers;
	p->nnat += s->nnat ? 1 : 0;
	p->pol->services[idx] = *s;
	if (nidx_add(&p->svc_idx, idx, svc_name, p))
		return perr(p, s->col, "out of memory");
	p->pol->nservices++;
	memset(s, 0, sizeof(*s)); /* now owned by the policy */
	return 0;
}

/* service NAME DIR PROTO [sport|dport] PORTS [from|to PEERS] [ACTION] [FLAGS] */
static int parse_service_body(struct parser *p, struct svc_parse *sp)
{
	struct ph_service *s = &sp->s;
	struct ph_service *dup;
	struct tok *t = next(p);
	char b[64];

	if (is(t, "in") || is(t, "out") || t->kind == T_EOL)
		return expected(p, t, "a service name before the direction",
				NULL);
	if (!valid_name(t))
		return expected(p, t,
				"a service name ([A-Za-z0-9_.-], 1-63 characters)",
				NULL);
	dup = find_service(p, t);
	if (dup)
		return perr(p, t->col,
			    "service %s is already defined on line %d",
			    tdesc(t, b, sizeof(b)), dup->line);
	snprintf(s->name, sizeof(s->name), "%.*s", t->len, t->s);
	s->line = p->line;
	s->col = t->col;
	s->action = PH_ACT_ALLOW;
	if (parse_dir(p, &s->dir) || parse_proto(p, s))
		return -1;
	t = peek(p);
	if (is(t, "sport") || is(t, "dport")) {
		s->match_sport = is(t, "sport");
		next(p);
	}
	if (parse_ports(p, s) || parse_tail(p, sp) || check_flags(p, sp) ||
	    finish_peers(p, sp))
		return -1;
	return add_service(p, sp);
}

static int parse_service(struct parser *p)
{
	struct svc_parse sp;
	int ret;

	memset(&sp, 0, sizeof(sp));
	ret = parse_service_body(p, &sp);
	free_service(&sp.s);
	free(sp.peers.e);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Statements and lines                                                    */
/* ---------------------------------------------------------------------- */

static int parse_statement(struct parser *p)
{
	struct tok *t = next(p);
	struct ph_policy *pol = p->pol;

	if (t->kind == T_EOL)
		return 0;
	if (is(t, "service"))
		return parse_service(p);
	if (is(t, "set"))
		return parse_set(p);
	if (is(t, "default"))
		return parse_verdict_setting(p, t, p->default_line,
					     pol->default_verdict);
	if (is(t, "icmp-echo"))
		return parse_verdict_setting(p, t, p->icmp_line,
					     pol->icmp_echo);
	if (is(t, "ftp-ttl"))
		return parse_ttl(p, t);
	return expected(p, t,
			"a statement (service, set, default, icmp-echo or ftp-ttl)",
			NULL);
}

static int parse_text(struct parser *p, const char *text, size_t len)
{
	size_t start = 0;

	while (start < len) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t n = end - start;

		p->line++;
		if (n && text[end - 1] == '\r')
			n--; /* CRLF line endings */
		if (n > PH_POLICY_LINE_MAX)
			return perr(p, PH_POLICY_LINE_MAX + 1,
				    "line is longer than %d bytes",
				    PH_POLICY_LINE_MAX);
		if (lex_line(p, text + start, (int)n) || parse_statement(p))
			return -1;
		start = end + 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Compilation                                                             */
/* ---------------------------------------------------------------------- */

static void add_note(struct ph_policy *pol, int *cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_note(struct ph_policy *pol, int *cap, const char *fmt, ...)
{
	va_list ap;

	if (pol->nnotes == *cap) {
		int nc = *cap ? *cap * 2 : 8;
		struct ph_note *nn =
			realloc(pol->notes, (size_t)nc * sizeof(*nn));

		if (!nn)
			return; /* notes are advice; never fail for them */
		pol->notes = nn;
		*cap = nc;
	}
	va_start(ap, fmt);
	vsnprintf(pol->notes[pol->nnotes].text,
		  sizeof(pol->notes[pol->nnotes].text), fmt, ap);
	va_end(ap);
	pol->nnotes++;
}

static void make_notes(struct parser *p, int *capp)
{
	struct ph_policy *pol = p->pol;
	char ports[128], where[160];
	int cap = *capp, i, l4;

	for (i = 0; i < pol->nservices; i++) {
		const struct ph_service *s = &pol->services[i];
		const int *par = p->sx[i].parent;

		fmt_ports(s, ports, sizeof(ports));
		for (l4 = 0; l4 < PH_L4_MAX; l4++) {
			unsigned int mask = 1u << l4;
			const struct ph_service *o;

			if (par[l4] < 0)
				continue;
			if (l4 == PH_L4_TCP && par[PH_L4_UDP] == par[l4])
				mask = 3;
			if (l4 == PH_L4_UDP && par[PH_L4_TCP] == par[l4])
				continue; /* said with tcp */
			o = &pol->services[par[l4]];
			fmt_where(where, sizeof(where), mask, p->sx[i].table,
				  ports);
			add_note(pol, &cap,
				 "service \"%s\" (line %d) overrides service \"%s\" (line %d) on %s",
				 s->name, s->line, o->name, o->line, where);
		}
	}
	for (i = 0; i < p->nsets; i++)
		if (!p->sets[i].used)
			add_note(pol, &cap,
				 "set \"%s\" (line %d) is not used by any service",
				 p->sets[i].name, p->sets[i].line);
	if (!pol->nservices && pol->default_verdict[PH_DIR_IN] == PH_ACT_DROP)
		add_note(pol, &cap,
			 "no services: every new inbound connection is dropped");
	*capp = cap;
}

struct rule_order {
	long count;
	int table, l4, idx;
};

static int cmp_rule_order(const void *a, const void *b)
{
	const struct rule_order *x = a, *y = b;

	if (x->l4 != y->l4)
		return x->l4 - y->l4;
	if (x->table != y->table)
		return x->table - y->table;
	if (x->count != y->count)
		return x->count < y->count ? -1 : 1;
	return x->idx - y->idx;
}

static int find_free(int *nx, int port)
{
	int r = port, t;

	while (nx[r] != r)
		r = nx[r];
	while (nx[port] != r) {
		t = nx[port];
		nx[port] = r;
		port = t;
	}
	return r;
}

/*
 * Port tables: the narrowest service wins. Services of one table form a
 * laminar family (disjoint or nested; checked while parsing), so painting
 * rules narrowest first and never repainting a port gives every port its
 * innermost rule. nx[] skips painted ports (union-find), so the cost is
 * O(65536) per table whatever the nesting.
 */
static int paint_ports(struct ph_policy *pol, const struct svc_extra *sx)
{
	struct rule_order *ord = calloc((size_t)pol->nrules, sizeof(*ord));
	int *nx = calloc(65537, sizeof(*nx));
	int i, q, cur_l4 = -1, cur_table = -1;

	if (!ord || !nx) {
		free(ord);
		free(nx);
		return -1;
	}
	for (i = 0; i < pol->nrules; i++) {
		ord[i].count = sx[pol->rules[i].service].count;
		ord[i].table = pol->rules[i].table;
		ord[i].l4 = pol->rules[i].l4;
		ord[i].idx = i;
	}
	qsort(ord, (size_t)pol->nrules, sizeof(*ord), cmp_rule_order);
	for (i = 0; i < pol->nrules; i++) {
		const struct ph_rule *r = &pol->rules[ord[i].idx];
		__u16 *tab = pol->port_table[r->l4][r->table];

		if (r->l4 != cur_l4 || r->table != cur_table) {
			for (q = 0; q <= 65536; q++)
				nx[q] = q;
			cur_l4 = r->l4;
			cur_table = r->table;
		}
		for (q = find_free(nx, r->port_lo); q <= r->port_hi;
		     q = find_free(nx, q + 1)) {
			tab[q] = (__u16)(ord[i].idx + 1);
			nx[q] = q + 1;
		}
	}
	free(ord);
	free(nx);
	return 0;
}

static void emit_rules(struct ph_policy *pol, int si)
{
	const struct ph_service *s = &pol->services[si];
	int l4, i;

	for (l4 = 0; l4 < PH_L4_MAX; l4++) {
		if (!(s->l4_mask & (1u << l4)))
			continue;
		for (i = 0; i < s->nranges; i++) {
			struct ph_rule *r = &pol->rules[pol->nrules++];

			r->action = s->action;
			r->l4 = (__u8)l4;
			r->table = (__u8)table_of(s->dir, s->match_sport);
			r->flags = s->flags;
			r->service = (__u16)si;
			r->port_lo = s->ranges[i].lo;
			r->port_hi = s->ranges[i].hi;
			r->peer_set = s->flags & PH_RF_PEER_ANY ? 0 : (__u16)si;
		}
	}
}

/*
 * The active-data source port of every tracked service (docs/policy.md,
 * "Active data"): a guard rule where no service of the policy names the
 * port in that table, so a connection from it needs a pinhole whatever
 * the default says; where one does, that service is the explicit opt-out
 * and a note says what it exposes. Tracked services sharing a port share
 * the first one's guard.
 */
static void add_guards(struct parser *p, int *cap)
{
	struct ph_policy *pol = p->pol;

	for (int i = 0; i < pol->nservices; i++) {
		struct ph_service *s = &pol->services[i];
		__u16 *tab;
		const struct ph_rule *o;
		struct ph_rule *r;

		if (!s->active_port)
			continue;
		tab = pol->port_table[PH_L4_TCP][s->active_table];
		if (tab[s->active_port]) {
			o = &pol->rules[tab[s->active_port] - 1];
			if (o->flags & PH_RF_ACTIVE_GUARD ||
			    o->action != PH_ACT_ALLOW)
				continue;
			s->active_open_by = o->service;
			add_note(pol, cap,
				 "service \"%s\" (line %d) lets tcp %s from port %u pass without a pinhole: the active-data port of \"%s\" (line %d) is not guarded (FTP bounce%s)",
				 pol->services[o->service].name,
				 pol->services[o->service].line,
				 s->active_table == PH_PT_OUT_SPORT ? "out" : "in",
				 s->active_port, s->name, s->line,
				 s->active_table == PH_PT_OUT_SPORT ?
					 ": a PORT naming another host connects out" :
					 ": anyone sending from that port gets in");
			continue;
		}
		r = &pol->rules[pol->nrules];
		memset(r, 0, sizeof(*r));
		r->action = PH_ACT_DROP;
		r->l4 = PH_L4_TCP;
		r->table = s->active_table;
		r->flags = PH_RF_ACTIVE_GUARD | PH_RF_PEER_ANY;
		r->service = (__u16)i;
		r->port_lo = r->port_hi = s->active_port;
		tab[s->active_port] = (__u16)(++pol->nrules);
	}
}

static int compile(struct parser *p)
{
	struct ph_policy *pol = p->pol;
	int i, j, cap = 0;

	pol->rules = calloc((size_t)p->nrules + 1, sizeof(*pol->rules));
	pol->port_table = calloc(PH_L4_MAX, sizeof(*pol->port_table));
	pol->peer_entries =
		calloc((size_t)p->npeers + 1, sizeof(*pol->peer_entries));
	if (!pol->rules || !pol->port_table || !pol->peer_entries)
		return perr(p, 0, "out of memory");
	for (i = 0; i < pol->nservices; i++) {
		const struct ph_service *s = &pol->services[i];

		emit_rules(pol, i);
		for (j = 0; j < s->npeers; j++) {
			struct ph_peer_entry *e =
				&pol->peer_entries[pol->npeer_entries++];

			e->key = s->peers[j];
			e->val = s->peer_vals[j];
			e->set = (__u16)i;
		}
	}
	if (paint_ports(pol, p->sx))
		return perr(p, 0, "out of memory");
	make_notes(p, &cap);
	add_guards(p, &cap);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Entry points                                                            */
/* ---------------------------------------------------------------------- */

static void policy_defaults(struct ph_policy *pol, const char *name)
{
	memset(pol, 0, sizeof(*pol));
	snprintf(pol->path, sizeof(pol->path), "%s", name ? name : "<policy>");
	pol->default_verdict[PH_DIR_IN] = PH_ACT_DROP;
	pol->default_verdict[PH_DIR_OUT] = PH_ACT_ALLOW;
	pol->icmp_echo[PH_DIR_IN] = PH_ACT_ALLOW;
	pol->icmp_echo[PH_DIR_OUT] = PH_ACT_ALLOW;
	pol->ftp_ttl_ms = PH_FTP_TTL_DEFAULT_MS;
}

int ph_policy_load_buffer(const char *name, const char *text, size_t len,
			  struct ph_policy *pol, struct ph_policy_error *err)
{
	struct parser p;
	int ret = -1, i;

	memset(err, 0, sizeof(*err));
	policy_defaults(pol, name);
	memset(&p, 0, sizeof(p));
	p.file = name ? name : "<policy>";
	p.pol = pol;
	p.err = err;
	p.toks = calloc(PH_POLICY_LINE_MAX + 1, sizeof(*p.toks));
	if (!p.toks)
		perr(&p, 0, "out of memory");
	else if (!parse_text(&p, text, len))
		ret = compile(&p);
	for (i = 0; i < p.nsets; i++)
		free(p.sets[i].l.e);
	free(p.sets);
	free(p.set_idx.slot);
	free(p.svc_idx.slot);
	free(p.sx);
	free(p.toks);
	if (ret)
		ph_policy_free(pol);
	return ret;
}

int ph_policy_load_string(const char *name, const char *text,
			  struct ph_policy *pol, struct ph_policy_error *err)
{
	return ph_policy_load_buffer(name, text ? text : "",
				     text ? strlen(text) : 0, pol, err);
}

static int file_error(const char *path, struct ph_policy *pol,
		      struct ph_policy_error *err, const char *what, int e)
{
	memset(pol, 0, sizeof(*pol));
	memset(err, 0, sizeof(*err));
	set_file(err, path);
	snprintf(err->msg, sizeof(err->msg), "%s: %s", what, strerror(e));
	return -1;
}

int ph_policy_load_stream(FILE *f, const char *name, struct ph_policy *pol,
			  struct ph_policy_error *err)
{
	size_t len = 0, cap = 1 << 16, n;
	char *buf, *nb;
	int ret;

	buf = malloc(cap);
	while (buf) {
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (len < cap || len > PH_POLICY_FILE_MAX)
			break;
		nb = realloc(buf, cap * 2);
		if (!nb)
			free(buf);
		buf = nb;
		cap *= 2;
	}
	ret = !buf ? ENOMEM : ferror(f) ? (errno ? errno : EIO) :
	      len > PH_POLICY_FILE_MAX ? EFBIG : 0;
	if (ret) {
		free(buf);
		return file_error(name, pol, err, "cannot read policy", ret);
	}
	ret = ph_policy_load_buffer(name, buf, len, pol, err);
	free(buf);
	return ret;
}

int ph_policy_load_file(const char *path, struct ph_policy *pol,
			struct ph_policy_error *err)
{
	FILE *f;
	int ret;

	if (strlen(path) >= sizeof(pol->path))
		return file_error(path, pol, err, "cannot open policy",
				  ENAMETOOLONG);
	f = fopen(path, "rb");
	if (!f)
		return file_error(path, pol, err, "cannot open policy", errno);
	ret = ph_policy_load_stream(f, path, pol, err);
	fclose(f);
	return ret;
}

void ph_policy_free(struct ph_policy *pol)
{
	int i;

	if (!pol)
		return;
	for (i = 0; i < pol->nservices; i++)
		free_service(&pol->services[i]);
	free(pol->services);
	free(pol->rules);
	free(pol->port_table);
	free(pol->peer_entries);
	free(pol->notes);
	memset(pol, 0, sizeof(*pol));
}

const char *ph_policy_rule_service(const struct ph_policy *pol, int rule)
{
	if (!pol || rule < 0 || rule >= pol->nrules)
		return "?";
	if (pol->rules[rule].service >= pol->nservices)
		return "?";
	return pol->services[pol->rules[rule].service].name;
}

void ph_policy_slot_meta(const struct ph_policy *pol,
			 struct ph_slot_meta *meta)
{
	memset(meta, 0, sizeof(*meta));
	memcpy(meta->default_verdict, pol->default_verdict,
	       sizeof(meta->default_verdict));
	memcpy(meta->icmp_echo, pol->icmp_echo, sizeof(meta->icmp_echo));
	meta->nrules = (__u32)pol->nrules;
	meta->ftp_ttl_ms = pol->ftp_ttl_ms;
}
