// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy output: error lines and the `pinhole check` summary, as a human
 * table or as JSON with the same content (docs/policy.md).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define CELL_MAX 48 /* human table: longer port/peer lists are cut */

static const char *const table_names[PH_PT_MAX] = {
	"in_dport", "in_sport", "out_dport", "out_sport"
};

void ph_policy_error_format(const struct ph_policy_error *err, char *buf,
			    size_t len)
{
	if (err->line > 0)
		snprintf(buf, len, "%s:%d:%d: error: %s", err->file, err->line,
			 err->col, err->msg);
	else
		snprintf(buf, len, "%s: error: %s", err->file, err->msg);
}

/* Service flags as the language writes them, in the order every output
 * lists them. */
static const struct {
	__u16 flag;
	const char *word;
} flag_words[] = {
	{ PH_RF_FTP_TRACK, "ftp-track" },
	{ PH_RF_FTPS_RANGE, "ftps-range" },
	{ PH_RF_FTPS_IMPLICIT, "ftps-implicit" },
};
#define NFLAG_WORDS (sizeof(flag_words) / sizeof(flag_words[0]))

static const char *verdict(__u8 action)
{
	return action == PH_ACT_ALLOW ? "allow" : "drop";
}

static const char *action_word(__u8 action)
{
	return action == PH_ACT_ALLOW ? "allow" : "deny";
}

static const char *proto_text(__u8 mask)
{
	if (mask == 3)
		return "tcp,udp";
	return mask & (1u << PH_L4_TCP) ? "tcp" : "udp";
}

static void fmt_ttl(__u32 ms, char *buf, size_t len)
{
	if (ms % 60000 == 0)
		snprintf(buf, len, "%um", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%us", ms / 1000);
	else
		snprintf(buf, len, "%ums", ms);
}

static void fmt_range(__u16 lo, __u16 hi, char *buf, size_t len)
{
	if (lo == hi)
		snprintf(buf, len, "%u", lo);
	else
		snprintf(buf, len, "%u-%u", lo, hi);
}

/* Peer i of a service: "10.0.0.0/8", "!10.9.0.0/16", "any". */
static void fmt_peer(const struct ph_service *s, int i, char *buf, size_t len)
{
	char p[64];

	ph_peer_format(&s->peers[i], p, sizeof(p));
	snprintf(buf, len, "%s%s",
		 s->peer_vals[i].action == PH_ACT_DROP ? "!" : "", p);
}

/* Append item to a comma list in buf; once full, end it with ",...". */
static void cell_add(char *buf, size_t len, const char *item, bool *full)
{
	size_t off = strlen(buf), n = strlen(item) + (off ? 1 : 0);

	if (*full)
		return;
	if (off + n + 4 >= len) {
		snprintf(buf + off, len - off, "%s...", off ? "," : "");
		*full = true;
		return;
	}
	snprintf(buf + off, len - off, "%s%s", off ? "," : "", item);
}

static void cell_ports(const struct ph_service *s, char *buf, size_t len)
{
	bool full = false;
	char r[16];
	int i;

	buf[0] = 0;
	for (i = 0; i < s->nranges; i++) {
		fmt_range(s->ranges[i].lo, s->ranges[i].hi, r, sizeof(r));
		cell_add(buf, len, r, &full);
	}
}

static void cell_peers(const struct ph_service *s, char *buf, size_t len)
{
	bool full = false;
	char one[72];
	int i;

	buf[0] = 0;
	if (s->flags & PH_RF_PEER_ANY) {
		snprintf(buf, len, "any");
		return;
	}
	for (i = 0; i < s->npeers; i++) {
		fmt_peer(s, i, one, sizeof(one));
		cell_add(buf, len, one, &full);
	}
}

static void cell_flags(__u16 flags, char *buf, size_t len)
{
	bool full = false;

	buf[0] = 0;
	for (size_t i = 0; i < NFLAG_WORDS; i++)
		if (flags & flag_words[i].flag)
			cell_add(buf, len, flag_words[i].word, &full);
	if (!buf[0])
		snprintf(buf, len, "-");
}

struct row {
	char ports[CELL_MAX + 1], peers[CELL_MAX + 1], flags[40];
};

static int width(int cur, const char *s)
{
	int n = (int)strlen(s);

	return n > cur ? n : cur;
}

static void print_services(const struct ph_policy *pol, FILE *out)
{
	int wn = 4, wpo = 5, wpe = 5, i;
	struct row r;

	for (i = 0; i < pol->nservices; i++) {
		const struct ph_service *s = &pol->services[i];

		cell_ports(s, r.ports, sizeof(r.ports));
		cell_peers(s, r.peers, sizeof(r.peers));
		wn = width(wn, s->name);
		wpo = width(wpo, r.ports);
		wpe = width(wpe, r.peers);
	}
	fprintf(out, "services: %d\n", pol->nservices);
	if (!pol->nservices)
		return;
	fprintf(out, "  %-*s %5s  %-3s  %-7s  %-5s  %-*s  %-*s  %-6s  %s\n", wn,
		"NAME", "LINE", "DIR", "PROTO", "MATCH", wpo, "PORTS", wpe,
		"PEERS", "ACTION", "FLAGS");
	for (i = 0; i < pol->nservices; i++) {
		const struct ph_service *s = &pol->services[i];

		cell_ports(s, r.ports, sizeof(r.ports));
		cell_peers(s, r.peers, sizeof(r.peers));
		cell_flags(s->flags, r.flags, sizeof(r.flags));
		fprintf(out,
			"  %-*s %5d  %-3s  %-7s  %-5s  %-*s  %-*s  %-6s  %s\n",
			wn, s->name, s->line, s->dir == PH_DIR_IN ? "in" : "out",
			proto_text(s->l4_mask), s->match_sport ? "sport" : "dport",
			wpo, r.ports, wpe, r.peers, action_word(s->action),
			r.flags);
	}
}

/* A nat-address as text. */
static void fmt_host(const __u8 *a, char *buf, size_t len)
{
	static const __u8 mapped[12] = { [10] = 0xff, [11] = 0xff };
	bool v4 = !memcmp(a, mapped, sizeof(mapped));

	if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, buf,
		       (socklen_t)len))
		snprintf(buf, len, "?");
}

/* How the active-data port of tracked service @s is guarded, as text. */
static void fmt_active(const struct ph_policy *pol, const struct ph_service *s,
		       char *buf, size_t len)
{
	bool out = s->active_table == PH_PT_OUT_SPORT;
	const struct ph_service *o =
		s->active_open_by >= 0 ? &pol->services[s->active_open_by] :
					 NULL;

	if (o)
		snprintf(buf, len,
			 "tcp %s from port %u: NOT guarded, service \"%s\" (line %d) lets it pass without a pinhole",
			 out ? "out" : "in", s->active_port, o->name, o->line);
	else if (pol->default_verdict[out ? PH_DIR_OUT : PH_DIR_IN] ==
		 PH_ACT_ALLOW)
		snprintf(buf, len,
			 "tcp %s from port %u: guarded (a pinhole, or a peer holding an FTPS session with this address)",
			 out ? "out" : "in", s->active_port);
	else
		snprintf(buf, len,
			 "tcp %s from port %u: guarded (a pinhole only: default %s drop)",
			 out ? "out" : "in", s->active_port, out ? "out" : "in");
}

/* The tracked services' NAT addresses and active-data guards. */
static void print_ftp(const struct ph_policy *pol, FILE *out)
{
	char buf[256], a[64];
	bool any = false;

	for (int i = 0; i < pol->nservices; i++) {
		const struct ph_service *s = &pol->services[i];

		if (!s->active_port)
			continue;
		if (!any)
			fprintf(out, "ftp tracking:\n");
		any = true;
		if (s->nnat) {
			fprintf(out, "  %s (line %d): nat-address", s->name,
				s->line);
			for (int j = 0; j < s->nnat; j++) {
				fmt_host(s->nat[j], a, sizeof(a));
				fprintf(out, "%s %s", j ? "," : "", a);
			}
			fputc('\n', out);
		}
		fmt_active(pol, s, buf, sizeof(buf));
		fprintf(out, "  %s (line %d): active data %s\n", s->name,
			s->line, buf);
	}
}

/* The settings through three formats: default in/out, icmp-echo in/out
 * (two %s each), ftp-ttl (one %s). */
static void print_settings(const struct ph_policy *pol, FILE *out,
			   const char *def, const char *icmp, const char *ttl_fmt)
{
	char ttl[16];

	fmt_ttl(pol->ftp_ttl_ms, ttl, sizeof(ttl));
	fprintf(out, def, verdict(pol->default_verdict[PH_DIR_IN]),
		verdict(pol->default_verdict[PH_DIR_OUT]));
	fprintf(out, icmp, verdict(pol->icmp_echo[PH_DIR_IN]),
		verdict(pol->icmp_echo[PH_DIR_OUT]));
	fprintf(out, ttl_fmt, ttl);
}

static void print_human(const struct ph_policy *pol, FILE *out)
{
	int i;

	fprintf(out, "policy: %s\n", pol->path);
	fprintf(out, "settings:\n");
	print_settings(pol, out, "  default    in %s, out %s\n",
		       "  icmp-echo  in %s, out %s\n", "  ftp-ttl    %s\n");
	print_services(pol, out);
	print_ftp(pol, out);
	fprintf(out, "rules: %d of %d\n", pol->nrules, PH_MAX_RULES);
	fprintf(out, "peer entries: %d of %d\n", pol->npeer_entries,
		PH_POLICY_MAX_PEER_ENTRIES);
	fprintf(out, "notes:%s\n", pol->nnotes ? "" : " none");
	for (i = 0; i < pol->nnotes; i++)
		fprintf(out, "  - %s\n", pol->notes[i].text);
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                    */
/* ---------------------------------------------------------------------- */

static int utf8_valid_len(const unsigned char *s)
{
	unsigned int c = s[0], cp, min;
	int l, i;

	if (c >= 0xc2 && c <= 0xdf)
		l = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		l = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		l = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	for (i = 1; i < l; i++) { /* stops at the NUL: 0 is not 10xxxxxx */
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return l;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static void json_str(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	int l;

	fputc('"', out);
	while (*s) {
		if (*s == '"' || *s == '\\') {
			fprintf(out, "\\%c", *s++);
		} else if (*s < 0x20 || *s == 0x7f) {
			fprintf(out, "\\u%04x", *s++);
		} else if (*s < 0x80) {
			fputc(*s++, out);
		} else if ((l = utf8_valid_len(s)) > 0) {
			fwrite(s, 1, (size_t)l, out);
			s += l;
		} else {
			fputs("\\ufffd", out);
			s++;
		}
	}
	fputc('"', out);
}

static void json_flags(FILE *out, __u16 flags)
{
	const char *sep = "";

	fputc('[', out);
	for (size_t i = 0; i < NFLAG_WORDS; i++)
		if (flags & flag_words[i].flag) {
			fprintf(out, "%s\"%s\"", sep, flag_words[i].word);
			sep = ", ";
		}
	/* a compiled rule only: the language has no such flag */
	if (flags & PH_RF_ACTIVE_GUARD)
		fprintf(out, "%s\"active-guard\"", sep);
	fputc(']', out);
}

static void json_service(FILE *out, const struct ph_policy *pol,
			 const struct ph_service *s)
{
	char buf[80];
	int i;

	fprintf(out, "    {\"name\": ");
	json_str(out, s->name);
	fprintf(out, ", \"line\": %d, \"dir\": \"%s\", \"proto\": \"%s\", "
		     "\"match\": \"%s\", \"ports\": [",
		s->line, s->dir == PH_DIR_IN ? "in" : "out",
		proto_text(s->l4_mask), s->match_sport ? "sport" : "dport");
	for (i = 0; i < s->nranges; i++) {
		fmt_range(s->ranges[i].lo, s->ranges[i].hi, buf, sizeof(buf));
		fprintf(out, "%s\"%s\"", i ? ", " : "", buf);
	}
	fprintf(out, "], \"peers\": [");
	if (s->flags & PH_RF_PEER_ANY)
		fprintf(out, "\"any\"");
	for (i = 0; i < s->npeers; i++) {
		fmt_peer(s, i, buf, sizeof(buf));
		fprintf(out, "%s\"%s\"", i ? ", " : "", buf);
	}
	fprintf(out, "], \"action\": \"%s\", \"flags\": ",
		action_word(s->action));
	json_flags(out, s->flags & ~PH_RF_PEER_ANY);
	if (s->active_port) {
		fprintf(out, ", \"nat_addresses\": [");
		for (i = 0; i < s->nnat; i++) {
			fmt_host(s->nat[i], buf, sizeof(buf));
			fprintf(out, "%s\"%s\"", i ? ", " : "", buf);
		}
		fprintf(out, "], \"active_port\": %u, \"active_table\": \"%s\", \"active_guarded\": %s, \"active_open_by\": ",
			s->active_port, table_names[s->active_table],
			s->active_open_by < 0 ? "true" : "false");
		if (s->active_open_by < 0)
			fprintf(out, "null");
		else
			json_str(out, pol->services[s->active_open_by].name);
	}
	fputc('}', out);
}

static void json_rule(FILE *out, const struct ph_policy *pol, int i)
{
	const struct ph_rule *r = &pol->rules[i];

	fprintf(out, "    {\"index\": %d, \"service\": ", i);
	json_str(out, ph_policy_rule_service(pol, i));
	fprintf(out, ", \"l4\": \"%s\", \"table\": \"%s\", \"port_lo\": %u, "
		     "\"port_hi\": %u, \"action\": \"%s\", \"peer_any\": %s, "
		     "\"peer_set\": %u, \"flags\": ",
		r->l4 == PH_L4_TCP ? "tcp" : "udp",
		r->table < PH_PT_MAX ? table_names[r->table] : "?", r->port_lo,
		r->port_hi, action_word(r->action),
		r->flags & PH_RF_PEER_ANY ? "true" : "false", r->peer_set);
	json_flags(out, r->flags & ~PH_RF_PEER_ANY);
	fputc('}', out);
}

static void print_json(const struct ph_policy *pol, FILE *out)
{
	int i;

	fprintf(out, "{\n  \"path\": ");
	json_str(out, pol->path);
	fprintf(out, ",\n  \"settings\": {\"default_in\": \"%s\", "
		     "\"default_out\": \"%s\", \"icmp_echo_in\": \"%s\", "
		     "\"icmp_echo_out\": \"%s\", \"ftp_ttl_ms\": %u},\n",
		verdict(pol->default_verdict[PH_DIR_IN]),
		verdict(pol->default_verdict[PH_DIR_OUT]),
		verdict(pol->icmp_echo[PH_DIR_IN]),
		verdict(pol->icmp_echo[PH_DIR_OUT]), pol->ftp_ttl_ms);
	fprintf(out, "  \"services\": [");
	for (i = 0; i < pol->nservices; i++) {
		fprintf(out, "%s\n", i ? "," : "");
		json_service(out, pol, &pol->services[i]);
	}
	fprintf(out, "%s],\n  \"rules\": [", pol->nservices ? "\n  " : "");
	for (i = 0; i < pol->nrules; i++) {
		fprintf(out, "%s\n", i ? "," : "");
		json_rule(out, pol, i);
	}
	fprintf(out, "%s],\n", pol->nrules ? "\n  " : "");
	fprintf(out, "  \"nrules\": %d,\n  \"max_rules\": %d,\n"
		     "  \"peer_entries\": %d,\n  \"max_peer_entries\": %d,\n"
		     "  \"notes\": [",
		pol->nrules, PH_MAX_RULES, pol->npeer_entries,
		PH_POLICY_MAX_PEER_ENTRIES);
	for (i = 0; i < pol->nnotes; i++) {
		fprintf(out, "%s\n    ", i ? "," : "");
		json_str(out, pol->notes[i].text);
	}
	fprintf(out, "%s]\n}\n", pol->nnotes ? "\n  " : "");
}

void ph_policy_print_summary(const struct ph_policy *pol, FILE *out,
			     bool json)
{
	if (json)
		print_json(pol, out);
	else
		print_human(pol, out);
}

/* ---------------------------------------------------------------------- */
/* Source: the compiled policy in the policy language                      */
/* ---------------------------------------------------------------------- */

struct peer_ref {
	const struct ph_peer_key *key;
	__u8 action;
};

/* Canonical peer order: ::/0 ("any") first, then by address, a prefix
 * before the longer prefixes inside it. */
static int cmp_peer_ref(const void *a, const void *b)
{
	const struct peer_ref *x = a, *y = b;
	int c;

	if (!x->key->prefixlen != !y->key->prefixlen)
		return x->key->prefixlen ? 1 : -1;
	c = memcmp(x->key->addr, y->key->addr, sizeof(x->key->addr));
	if (c)
		return c;
	return x->key->prefixlen < y->key->prefixlen ? -1 :
	       x->key->prefixlen > y->key->prefixlen;
}

static void source_peers(const struct ph_service *s, FILE *out)
{
	struct peer_ref *r;
	char buf[64];
	int i;

	if (s->action == PH_ACT_DROP)
		return; /* a deny service takes no peer list */
	fputs(s->dir == PH_DIR_IN ? " from " : " to ", out);
	if ((s->flags & PH_RF_PEER_ANY) || !s->npeers) {
		fputs("any", out);
		return;
	}
	r = calloc((size_t)s->npeers, sizeof(*r));
	if (!r) {
		fputs("?", out); /* out of memory: say so in the text */
		return;
	}
	for (i = 0; i < s->npeers; i++) {
		r[i].key = &s->peers[i];
		r[i].action = s->peer_vals[i].action;
	}
	qsort(r, (size_t)s->npeers, sizeof(*r), cmp_peer_ref);
	for (i = 0; i < s->npeers; i++) {
		ph_peer_format(r[i].key, buf, sizeof(buf));
		/* "any" alone would compile to no trie at all (PEER_ANY):
		 * a lone ::/0 in the trie is written as such. */
		if (s->npeers == 1 && !r[i].key->prefixlen)
			snprintf(buf, sizeof(buf), "::/0");
		fprintf(out, "%s%s%s", i ? ", " : "",
			r[i].action == PH_ACT_DROP ? "!" : "", buf);
	}
	free(r);
}

/* nat-address and a non-default active-port, as written. */
static void source_ftp(const struct ph_service *s, FILE *out)
{
	__u16 def = s->flags & PH_RF_FTPS_IMPLICIT ?
			    PH_ACTIVE_PORT_FTPS_IMPLICIT :
			    PH_ACTIVE_PORT_FTP;
	char a[64];

	for (int j = 0; j < s->nnat; j++) {
		fmt_host(s->nat[j], a, sizeof(a));
		fprintf(out, "%s%s", j ? ", " : " nat-address ", a);
	}
	if (s->active_port && s->active_port != def)
		fprintf(out, " active-port %u", s->active_port);
}

void ph_policy_print_source(const struct ph_policy *pol, FILE *out)
{
	char range[16];
	int i, k;

	print_settings(pol, out, "default in %s\ndefault out %s\n",
		       "icmp-echo in %s\nicmp-echo out %s\n", "ftp-ttl %s\n");
	for (i = 0; i < pol->nservices; i++) {
		const struct ph_service *s = &pol->services[i];

		fprintf(out, "service %s %s %s%s ", s->name,
			s->dir == PH_DIR_IN ? "in" : "out",
			proto_text(s->l4_mask), s->match_sport ? " sport" : "");
		for (k = 0; k < s->nranges; k++) {
			fmt_range(s->ranges[k].lo, s->ranges[k].hi, range,
				  sizeof(range));
			fprintf(out, "%s%s", k ? "," : "", range);
		}
		source_peers(s, out);
		if (s->action == PH_ACT_DROP)
			fputs(" deny", out);
		for (size_t f = 0; f < NFLAG_WORDS; f++)
			if (s->flags & flag_words[f].flag)
				fprintf(out, " %s", flag_words[f].word);
		source_ftp(s, out);
		fputc('\n', out);
	}
}
