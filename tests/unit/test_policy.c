// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy language: table-driven tests of the parser and compiler. No root.
 * Runs from the repository root (policies/ is loaded from there).
 * Exit 0 when every case passes; one FAIL line per failed check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"
#include "json_check.h"
#include "check.h"


#define TCP PH_L4_TCP
#define UDP PH_L4_UDP

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */
/* ---------------------------------------------------------------------- */

static bool load(const char *text, struct ph_policy *pol)
{
	struct ph_policy_error err;
	char buf[1024];

	if (ph_policy_load_string("t.policy", text, pol, &err) == 0)
		return true;
	ph_policy_error_format(&err, buf, sizeof(buf));
	EXPECT(0, "unexpected error: %s", buf);
	return false;
}

static int svc_index(const struct ph_policy *pol, const char *name)
{
	int i;

	for (i = 0; i < pol->nservices; i++)
		if (!strcmp(pol->services[i].name, name))
			return i;
	return -1;
}

/* Rule that the port table gives for a port, or NULL. */
static const struct ph_rule *rule_at(const struct ph_policy *pol, int l4,
				     int table, int port)
{
	__u16 v = pol->port_table[l4][table][port];

	if (!v)
		return NULL;
	if (v > pol->nrules) {
		EXPECT(0, "port table value %u beyond %d rules", v,
		       pol->nrules);
		return NULL;
	}
	return &pol->rules[v - 1];
}

/* The port maps to service `name` (NULL: no rule). */
static void expect_port(const struct ph_policy *pol, int l4, int table,
			int port, const char *name)
{
	const struct ph_rule *r = rule_at(pol, l4, table, port);

	if (!name) {
		EXPECT(!r, "l4 %d table %d port %d: expected no rule, got %s",
		       l4, table, port,
		       r ? pol->services[r->service].name : "");
		return;
	}
	EXPECT(r && !strcmp(pol->services[r->service].name, name),
	       "l4 %d table %d port %d: expected %s, got %s", l4, table, port,
	       name, r ? pol->services[r->service].name : "no rule");
	if (r)
		EXPECT(port >= r->port_lo && port <= r->port_hi &&
			       r->l4 == l4 && r->table == table,
		       "rule for port %d says l4 %u table %u %u-%u", port,
		       r->l4, r->table, r->port_lo, r->port_hi);
}

/* Compiled key for a CIDR (a key of the service's own trie). */
static struct ph_peer_key key_of(const char *cidr)
{
	struct ph_peer_key k;
	char a[64], *slash;
	int n;

	memset(&k, 0, sizeof(k));
	snprintf(a, sizeof(a), "%s", cidr);
	slash = strchr(a, '/');
	*slash = 0;
	n = atoi(slash + 1);
	if (strchr(a, ':')) {
		inet_pton(AF_INET6, a, k.addr);
		k.prefixlen = n;
	} else {
		k.addr[10] = k.addr[11] = 0xff;
		inet_pton(AF_INET, a, k.addr + 12);
		k.prefixlen = 96 + n;
	}
	return k;
}

/* Service svc has exactly these peers ("!cidr" = excluded), in order. */
static void expect_peers(const struct ph_policy *pol, const char *name,
			 const char *const *want, int n)
{
	int si = svc_index(pol, name), i;
	const struct ph_service *s;

	EXPECT(si >= 0, "no service %s", name);
	if (si < 0)
		return;
	s = &pol->services[si];
	EXPECT(!(s->flags & PH_RF_PEER_ANY), "%s: PEER_ANY set", name);
	EXPECT(s->npeers == n, "%s: %d peers, want %d", name, s->npeers, n);
	for (i = 0; i < n && i < s->npeers; i++) {
		bool excl = want[i][0] == '!';
		struct ph_peer_key k = key_of(want[i] + excl);

		EXPECT(!memcmp(&k, &s->peers[i], sizeof(k)),
		       "%s: peer %d is not %s (prefixlen %u, want %u)", name,
		       i, want[i], s->peers[i].prefixlen, k.prefixlen);
		EXPECT(s->peer_vals[i].action ==
			       (excl ? PH_ACT_DROP : PH_ACT_ALLOW),
		       "%s: peer %s has action %u", name, want[i],
		       s->peer_vals[i].action);
	}
}

/* The compiled peer_entries hold key/val for service name's peers. */
static void expect_entries_match(const struct ph_policy *pol)
{
	int i, j, k = 0, rules_with_set = 0;

	for (i = 0; i < pol->nservices; i++) {
		const struct ph_service *s = &pol->services[i];

		for (j = 0; j < s->npeers; j++, k++) {
			EXPECT(k < pol->npeer_entries, "missing peer entries");
			if (k >= pol->npeer_entries)
				return;
			EXPECT(!memcmp(&pol->peer_entries[k].key, &s->peers[j],
				       sizeof(s->peers[j])) &&
				       pol->peer_entries[k].val.action ==
					       s->peer_vals[j].action,
			       "peer entry %d differs from service %s", k,
			       s->name);
			EXPECT(pol->peer_entries[k].set == i,
			       "entry %d set %u, want %d", k,
			       pol->peer_entries[k].set, i);
		}
	}
	EXPECT(k == pol->npeer_entries, "%d entries, services have %d",
	       pol->npeer_entries, k);
	for (i = 0; i < pol->nrules; i++) {
		const struct ph_rule *r = &pol->rules[i];
		const struct ph_service *s = &pol->services[r->service];

		/* a guard: the tracked service's active-data port */
		if (r->flags & PH_RF_ACTIVE_GUARD) {
			EXPECT(r->action == PH_ACT_DROP && s->active_port &&
				       r->port_lo == s->active_port &&
				       r->port_hi == s->active_port &&
				       r->table == s->active_table &&
				       r->l4 == PH_L4_TCP &&
				       (r->flags & PH_RF_PEER_ANY),
			       "guard rule %d does not match service %s", i,
			       s->name);
			continue;
		}
		EXPECT(r->flags == s->flags && r->action == s->action,
		       "rule %d flags/action differ from service", i);
		if (!(r->flags & PH_RF_PEER_ANY)) {
			rules_with_set++;
			EXPECT(r->peer_set == r->service && s->npeers > 0,
			       "rule %d peer_set %u service %u", i, r->peer_set,
			       r->service);
		}
	}
	(void)rules_with_set;
}

static bool has_note(const struct ph_policy *pol, const char *sub)
{
	int i;

	for (i = 0; i < pol->nnotes; i++)
		if (strstr(pol->notes[i].text, sub))
			return true;
	return false;
}

/* Every port-table entry points at a rule that covers that port. */
static void expect_tables_consistent(const struct ph_policy *pol)
{
	int l4, t, port, bad = 0;

	for (l4 = 0; l4 < PH_L4_MAX; l4++)
		for (t = 0; t < PH_PT_MAX; t++)
			for (port = 0; port < 65536; port++) {
				__u16 v = pol->port_table[l4][t][port];
				const struct ph_rule *r;

				if (!v)
					continue;
				r = v <= pol->nrules ? &pol->rules[v - 1] : NULL;
				if (!r || r->l4 != l4 || r->table != t ||
				    port < r->port_lo || port > r->port_hi)
					bad++;
			}
	EXPECT(!bad, "%d port table entries point at the wrong rule", bad);
	EXPECT(pol->port_table[TCP][0][0] == 0, "port 0 has a rule");
}

static char *summary(const struct ph_policy *pol, bool json, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (!f)
		return NULL;
	ph_policy_print_summary(pol, f, json);
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

/* ---------------------------------------------------------------------- */
/* Good inputs                                                             */
/* ---------------------------------------------------------------------- */

static void chk_defaults(const struct ph_policy *pol)
{
	EXPECT(pol->default_verdict[PH_DIR_IN] == PH_ACT_DROP, "default in");
	EXPECT(pol->default_verdict[PH_DIR_OUT] == PH_ACT_ALLOW, "default out");
	EXPECT(pol->icmp_echo[PH_DIR_IN] == PH_ACT_ALLOW, "icmp in");
	EXPECT(pol->icmp_echo[PH_DIR_OUT] == PH_ACT_ALLOW, "icmp out");
	EXPECT(pol->ftp_ttl_ms == 30000, "ttl %u", pol->ftp_ttl_ms);
	EXPECT(pol->nservices == 0 && pol->nrules == 0, "empty");
	EXPECT(has_note(pol, "no services"), "note about no services");
}

static void chk_settings(const struct ph_policy *pol)
{
	struct ph_slot_meta m;

	EXPECT(pol->default_verdict[PH_DIR_IN] == PH_ACT_ALLOW, "default in");
	EXPECT(pol->default_verdict[PH_DIR_OUT] == PH_ACT_DROP, "default out");
	EXPECT(pol->icmp_echo[PH_DIR_IN] == PH_ACT_DROP, "icmp in");
	EXPECT(pol->icmp_echo[PH_DIR_OUT] == PH_ACT_DROP, "icmp out");
	EXPECT(pol->ftp_ttl_ms == 120000, "ttl %u", pol->ftp_ttl_ms);
	ph_policy_slot_meta(pol, &m);
	EXPECT(m.default_verdict[PH_DIR_IN] == PH_ACT_ALLOW &&
		       m.default_verdict[PH_DIR_OUT] == PH_ACT_DROP &&
		       m.icmp_echo[0] == PH_ACT_DROP &&
		       m.ftp_ttl_ms == 120000 && m.nrules == 0,
	       "slot meta");
}

static void chk_ttl_ms(const struct ph_policy *pol)
{
	EXPECT(pol->ftp_ttl_ms == 1500, "ttl %u", pol->ftp_ttl_ms);
}

static void chk_ttl_max(const struct ph_policy *pol)
{
	EXPECT(pol->ftp_ttl_ms == 600000, "ttl %u", pol->ftp_ttl_ms);
}

static const char example[] =
	"# comment to end of line (also after statements)\n"
	"default in drop            # default verdict per direction\n"
	"default out allow\n"
	"icmp-echo in allow\n"
	"ftp-ttl 30s\n"
	"set office = 10.0.0.0/8, 2001:db8::/32      # named peer set\n"
	"\n"
	"service sftp        in  tcp      22            from any\n"
	"service web         in  tcp      80,443        from any\n"
	"service http3       in  udp      443           from any\n"
	"service ftp         in  tcp      21            from any        ftp-track\n"
	"service ftp-active  out tcp      sport 20      to any\n"
	"service ftps-pasv   in  tcp      28000-30000   from any        ftps-range\n"
	"service backup      out tcp      873           to 192.0.2.10, @office\n"
	"service dns         out tcp,udp  53            to any\n"
	"service x11         in  tcp      6000-6063     deny            # deny\n"
	"service mgmt        in  tcp      2222          from @office, !10.9.0.0/16\n"
	"service implicit    in  tcp      990           ftps-implicit\n";

static void chk_example(const struct ph_policy *pol)
{
	static const char *const backup[] = { "192.0.2.10/32", "10.0.0.0/8",
					      "2001:db8::/32" };
	static const char *const mgmt[] = { "10.0.0.0/8", "2001:db8::/32",
					    "!10.9.0.0/16" };
	const struct ph_rule *r;
	int ftp = svc_index(pol, "ftp");

	EXPECT(pol->nservices == 11, "%d services", pol->nservices);
	/* web 2 + dns 2 + 9 others + the guard of implicit's port 989 (ftp's
	 * port 20 is opened by ftp-active) */
	EXPECT(pol->nrules == 14, "%d rules", pol->nrules);
	EXPECT(pol->npeer_entries == 6, "%d peer entries", pol->npeer_entries);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 22, "sftp");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 80, "web");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 443, "web");
	expect_port(pol, UDP, PH_PT_IN_DPORT, 443, "http3");
	expect_port(pol, UDP, PH_PT_IN_DPORT, 80, NULL);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 21, "ftp");
	expect_port(pol, TCP, PH_PT_OUT_SPORT, 20, "ftp-active");
	expect_port(pol, TCP, PH_PT_OUT_DPORT, 20, NULL);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 20, NULL);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 27999, NULL);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 28000, "ftps-pasv");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 30000, "ftps-pasv");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 30001, NULL);
	expect_port(pol, TCP, PH_PT_OUT_DPORT, 873, "backup");
	expect_port(pol, TCP, PH_PT_OUT_DPORT, 53, "dns");
	expect_port(pol, UDP, PH_PT_OUT_DPORT, 53, "dns");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 53, NULL);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 6000, "x11");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 6063, "x11");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 2222, "mgmt");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 990, "implicit");
	r = rule_at(pol, TCP, PH_PT_IN_DPORT, 21);
	EXPECT(r && r->flags == (PH_RF_FTP_TRACK | PH_RF_PEER_ANY) &&
		       r->service == ftp && r->action == PH_ACT_ALLOW &&
		       r->port_lo == 21 && r->port_hi == 21,
	       "ftp rule");
	r = rule_at(pol, TCP, PH_PT_IN_DPORT, 29000);
	EXPECT(r && (r->flags & PH_RF_FTPS_RANGE) && r->port_lo == 28000 &&
		       r->port_hi == 30000,
	       "ftps-range rule");
	r = rule_at(pol, TCP, PH_PT_IN_DPORT, 6001);
	EXPECT(r && r->action == PH_ACT_DROP && (r->flags & PH_RF_PEER_ANY),
	       "x11 deny rule");
	r = rule_at(pol, TCP, PH_PT_IN_DPORT, 990);
	EXPECT(r && (r->flags & PH_RF_FTPS_IMPLICIT) &&
		       (r->flags & PH_RF_PEER_ANY),
	       "implicit rule (peers omitted = any)");
	r = rule_at(pol, TCP, PH_PT_OUT_DPORT, 873);
	EXPECT(r && !(r->flags & PH_RF_PEER_ANY) &&
		       r->peer_set == svc_index(pol, "backup"),
	       "backup peer set");
	expect_peers(pol, "backup", backup, 3);
	expect_peers(pol, "mgmt", mgmt, 3);
	EXPECT(pol->services[svc_index(pol, "dns")].l4_mask == 3, "dns mask");
	EXPECT(pol->services[svc_index(pol, "ftp-active")].match_sport == 1,
	       "ftp-active sport");
	EXPECT(!strcmp(ph_policy_rule_service(pol, 0), "sftp"),
	       "rule 0 is %s", ph_policy_rule_service(pol, 0));
	EXPECT(!strcmp(ph_policy_rule_service(pol, pol->nrules), "?") &&
		       !strcmp(ph_policy_rule_service(pol, -1), "?"),
	       "rule service out of range");
}

/* A compiled peer entry holds key k in set `set`. */
static bool has_entry(const struct ph_policy *pol, int set,
		      const struct ph_peer_key *k)
{
	for (int i = 0; i < pol->npeer_entries; i++)
		if (pol->peer_entries[i].set == set &&
		    !memcmp(&pol->peer_entries[i].key, k, sizeof(*k)))
			return true;
	return false;
}

static void chk_prefixlen(const struct ph_policy *pol)
{
	static const struct {
		const char *svc;
		__u32 plen;
		const char *text;
	} want[] = {
		{ "v4net", 96 + 8, "10.0.0.0/8" },
		{ "v4host", 96 + 32, "192.0.2.10/32" },
		{ "v4all", 96 + 0, "0.0.0.0/0" },
		{ "v6net", 32, "2001:db8::/32" },
		{ "v6host", 128, "2001:db8::1/128" },
		{ "v6all", 0, "any" },
		{ "mapped", 104, "10.0.0.0/8" },
	};
	size_t i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int si = svc_index(pol, want[i].svc);
		const struct ph_service *s;
		char buf[64];

		EXPECT(si >= 0, "service %s", want[i].svc);
		if (si < 0)
			continue;
		s = &pol->services[si];
		EXPECT(s->npeers == 1 && s->peers[0].prefixlen == want[i].plen,
		       "%s prefixlen %u, want %u", want[i].svc,
		       s->npeers ? s->peers[0].prefixlen : 0, want[i].plen);
		EXPECT(has_entry(pol, si, &s->peers[0]), "%s set",
		       want[i].svc);
		ph_peer_format(&s->peers[0], buf, sizeof(buf));
		EXPECT(!strcmp(buf, want[i].text), "%s formats as %s, want %s",
		       want[i].svc, buf, want[i].text);
	}
	/* raw bytes of the v4-mapped key */
	{
		const struct ph_service *s =
			&pol->services[svc_index(pol, "v4host")];
		static const __u8 a[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					    0xff, 0xff, 192, 0, 2, 10 };

		EXPECT(!memcmp(s->peers[0].addr, a, 16), "v4-mapped bytes");
		EXPECT(has_entry(pol, 1, &s->peers[0]), "v4host is set 1");
	}
}

static void chk_sets(const struct ph_policy *pol)
{
	static const char *const a[] = { "10.0.0.0/8", "172.16.0.0/12",
					 "2001:db8::/32" };
	static const char *const b[] = { "10.0.0.0/8", "172.16.0.0/12",
					 "2001:db8::/32", "192.0.2.0/24" };
	static const char *const c[] = { "10.0.0.0/8", "!10.1.0.0/16",
					 "10.1.2.0/24" };

	expect_peers(pol, "a", a, 3);
	expect_peers(pol, "b", b, 4);
	expect_peers(pol, "c", c, 3);
	EXPECT(pol->npeer_entries == 10, "%d entries", pol->npeer_entries);
	EXPECT(has_note(pol, "set \"unused\""), "note about unused set");
	EXPECT(!has_note(pol, "set \"lan\""), "lan is used");
}

static void chk_any_minus(const struct ph_policy *pol)
{
	static const char *const pub[] = { "::/0", "!10.9.0.0/16",
					   "!2001:db8::/32" };
	int si = svc_index(pol, "pub");
	const struct ph_rule *r = rule_at(pol, TCP, PH_PT_IN_DPORT, 8080);

	expect_peers(pol, "pub", pub, 3);
	EXPECT(pol->services[si].peers[0].prefixlen == 0,
	       "::/0 is prefixlen 0");
	EXPECT(r && !(r->flags & PH_RF_PEER_ANY) && r->peer_set == si,
	       "any-minus rule uses the trie");
	r = rule_at(pol, TCP, PH_PT_IN_DPORT, 8081);
	EXPECT(r && (r->flags & PH_RF_PEER_ANY) && r->peer_set == 0,
	       "from any alone is PEER_ANY");
	r = rule_at(pol, TCP, PH_PT_IN_DPORT, 8082);
	EXPECT(r && r->action == PH_ACT_DROP && (r->flags & PH_RF_PEER_ANY),
	       "deny from any");
}

static void chk_nesting(const struct ph_policy *pol)
{
	expect_port(pol, TCP, PH_PT_IN_DPORT, 999, NULL);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 1000, "wide");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 4999, "wide");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 5000, "mid");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 5999, "mid");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 6000, "narrow");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 6010, "narrow");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 6011, "mid");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 7001, "wide");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 8000, "other");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 9000, "wide");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 9001, NULL);
	EXPECT(has_note(pol,
			"service \"narrow\" (line 3) overrides service \"mid\" (line 4) on tcp in 6000-6010"),
	       "narrow/mid note");
	EXPECT(has_note(pol,
			"service \"mid\" (line 4) overrides service \"wide\" (line 2) on tcp in 5000-7000"),
	       "mid/wide note");
	EXPECT(has_note(pol, "service \"other\" (line 1) overrides service \"wide\""),
	       "other/wide note");
	EXPECT(!has_note(pol, "\"narrow\" (line 3) overrides service \"wide\""),
	       "only the tightest container is noted");
	EXPECT(pol->nnotes == 3, "%d notes", pol->nnotes);
}

static void chk_l4_nesting(const struct ph_policy *pol)
{
	expect_port(pol, TCP, PH_PT_IN_DPORT, 1500, "narrow");
	expect_port(pol, UDP, PH_PT_IN_DPORT, 1500, "wide");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 1501, "wide");
	expect_port(pol, UDP, PH_PT_IN_DPORT, 1700, "both");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 1700, "both");
	EXPECT(has_note(pol, "\"narrow\" (line 2) overrides service \"wide\" (line 1) on tcp in 1500"),
	       "tcp-only note");
	EXPECT(has_note(pol, "\"both\" (line 3) overrides service \"wide\" (line 1) on tcp,udp in 1700-1710"),
	       "tcp,udp note");
}

static void chk_tables(const struct ph_policy *pol)
{
	expect_port(pol, TCP, PH_PT_IN_DPORT, 20, "in-d");
	expect_port(pol, TCP, PH_PT_IN_SPORT, 20, "in-s");
	expect_port(pol, TCP, PH_PT_OUT_DPORT, 20, "out-d");
	expect_port(pol, TCP, PH_PT_OUT_SPORT, 20, "out-s");
	expect_port(pol, UDP, PH_PT_IN_SPORT, 20, NULL);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 22, "ssh-in");
	expect_port(pol, TCP, PH_PT_OUT_DPORT, 22, "ssh-out");
}

static void chk_sorted_ranges(const struct ph_policy *pol)
{
	const struct ph_service *s = &pol->services[0];

	EXPECT(s->nranges == 3 && s->ranges[0].lo == 80 &&
		       s->ranges[1].lo == 443 && s->ranges[2].lo == 8000 &&
		       s->ranges[2].hi == 8080,
	       "ranges sorted");
	EXPECT(pol->nrules == 6, "%d rules (3 ranges x tcp,udp)", pol->nrules);
	expect_port(pol, UDP, PH_PT_IN_DPORT, 8040, "s");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 8081, NULL);
	EXPECT(pol->rules[0].l4 == TCP && pol->rules[3].l4 == UDP,
	       "tcp rules first");
}

static void chk_whitespace(const struct ph_policy *pol)
{
	EXPECT(pol->nservices == 2, "%d services", pol->nservices);
	expect_port(pol, TCP, PH_PT_IN_DPORT, 22, "a");
	expect_port(pol, UDP, PH_PT_OUT_DPORT, 53, "b");
	EXPECT(pol->services[1].line == 4, "line %d", pol->services[1].line);
}

static void chk_dedupe(const struct ph_policy *pol)
{
	static const char *const a[] = { "10.0.0.0/8", "192.0.2.0/24" };

	expect_peers(pol, "a", a, 2);
}

static void chk_full_range(const struct ph_policy *pol)
{
	expect_port(pol, TCP, PH_PT_IN_DPORT, 1, "all");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 21, "all");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 22, "ssh");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 1023, "all");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 1024, "pasv");
	expect_port(pol, TCP, PH_PT_IN_DPORT, 65535, "pasv");
	EXPECT(pol->nnotes == 2, "%d notes", pol->nnotes);
}

/* nat-address and the active-data guards (docs/policy.md "FTP behind NAT",
 * "Active data"). */
static void chk_nat(const struct ph_policy *pol)
{
	int ftp = svc_index(pol, "ftp"), cli = svc_index(pol, "cli");
	int imp = svc_index(pol, "imp");
	const struct ph_rule *r;
	__u8 a4[16] = { [10] = 0xff, [11] = 0xff, 203, 0, 113, 5 }, a6[16];

	inet_pton(AF_INET6, "2001:db8::5", a6);
	EXPECT(ftp >= 0 && pol->services[ftp].nnat == 2 &&
		       !memcmp(pol->services[ftp].nat[0], a4, 16) &&
		       !memcmp(pol->services[ftp].nat[1], a6, 16),
	       "ftp: nat-address 203.0.113.5, 2001:db8::5");
	/* server: out sport 20 guarded; client: in sport 2020 guarded;
	 * implicit FTPS: out sport 989 left open by "active" */
	r = rule_at(pol, TCP, PH_PT_OUT_SPORT, 20);
	EXPECT(r && (r->flags & PH_RF_ACTIVE_GUARD) && r->action == PH_ACT_DROP &&
		       r->service == ftp && r->port_lo == 20 && r->port_hi == 20,
	       "guard on out sport 20 for ftp");
	r = rule_at(pol, TCP, PH_PT_IN_SPORT, 2020);
	EXPECT(r && (r->flags & PH_RF_ACTIVE_GUARD) && r->service == cli,
	       "guard on in sport 2020 for cli");
	EXPECT(!rule_at(pol, TCP, PH_PT_IN_SPORT, 20), "no guard on in sport 20");
	expect_port(pol, TCP, PH_PT_OUT_SPORT, 989, "active");
	EXPECT(imp >= 0 && pol->services[imp].active_port == 989 &&
		       pol->services[imp].active_open_by == svc_index(pol, "active"),
	       "imp: 989, opened by service active");
	EXPECT(pol->services[ftp].active_open_by == -1, "ftp: guarded");
	EXPECT(pol->nnotes == 1 && strstr(pol->notes[0].text,
					  "lets tcp out from port 989 pass without a pinhole"),
	       "one note about the exposure: %s",
	       pol->nnotes ? pol->notes[0].text : "(none)");
	EXPECT(pol->nrules == 6, "%d rules (4 + 2 guards)", pol->nrules);
}

/* Two tracked services on one active port share one guard. */
static void chk_guard_shared(const struct ph_policy *pol)
{
	EXPECT(pol->nrules == 3, "%d rules", pol->nrules);
	EXPECT(rule_at(pol, TCP, PH_PT_OUT_SPORT, 20) &&
		       rule_at(pol, TCP, PH_PT_OUT_SPORT, 20)->service == 0,
	       "the first service's guard");
}

/* An explicit deny on the port: no guard, no exposure note. */
static void chk_guard_deny(const struct ph_policy *pol)
{
	expect_port(pol, TCP, PH_PT_OUT_SPORT, 20, "no20");
	EXPECT(pol->nnotes == 0, "%d notes", pol->nnotes);
}

struct good_case {
	const char *name;
	const char *text;
	void (*check)(const struct ph_policy *pol);
};

static const struct good_case good[] = {
	{ "empty policy: defaults", "", chk_defaults },
	{ "only comments", "# nothing\n   # still nothing\n\n", chk_defaults },
	{ "settings",
	  "default in allow\ndefault out drop\nicmp-echo in drop\n"
	  "icmp-echo out deny\nftp-ttl 2m\n",
	  chk_settings },
	{ "ttl in ms", "ftp-ttl 1500ms", chk_ttl_ms },
	{ "ttl max", "ftp-ttl 10m # the maximum", chk_ttl_max },
	{ "the language example", example, chk_example },
	{ "prefix lengths",
	  "service v4net in tcp 1 from 10.0.0.0/8\n"
	  "service v4host in tcp 2 from 192.0.2.10\n"
	  "service v4all in tcp 3 from 0.0.0.0/0\n"
	  "service v6net in tcp 4 from 2001:db8::/32\n"
	  "service v6host in tcp 5 from 2001:db8::1\n"
	  "service v6all in tcp 6 from ::/0\n"
	  "service mapped in tcp 7 from ::ffff:10.0.0.0/104\n",
	  chk_prefixlen },
	{ "sets, nested sets, exclusions",
	  "set lan = 10.0.0.0/8, 172.16.0.0/12\n"
	  "set all = @lan, 2001:db8::/32\n"
	  "set unused = 198.51.100.0/24\n"
	  "service a in tcp 1 from @all\n"
	  "service b in tcp 2 from @all, 192.0.2.0/24\n"
	  "service c in tcp 3 from 10.0.0.0/8, !10.1.0.0/16, 10.1.2.0/24\n",
	  chk_sets },
	{ "any minus exclusions",
	  "service pub in tcp 8080 from any, !10.9.0.0/16, !2001:db8::/32\n"
	  "service open in tcp 8081 from any\n"
	  "service closed in tcp 8082 from any deny\n",
	  chk_any_minus },
	{ "nested services, any declaration order",
	  "service other in tcp 8000 from 10.0.0.0/8\n"
	  "service wide in tcp 1000-9000\n"
	  "service narrow in tcp 6000-6010 deny\n"
	  "service mid in tcp 5000-7000 from 192.0.2.0/24\n",
	  chk_nesting },
	{ "nesting per protocol",
	  "service wide in tcp,udp 1000-2000\n"
	  "service narrow in tcp 1500 deny\n"
	  "service both in tcp,udp 1700-1710 deny\n",
	  chk_l4_nesting },
	{ "four port tables",
	  "service in-d in tcp 20\nservice in-s in tcp sport 20\n"
	  "service out-d out tcp dport 20\nservice out-s out tcp sport 20\n"
	  "service ssh-in in tcp 22\nservice ssh-out out tcp 22\n",
	  chk_tables },
	{ "ranges sorted, tcp,udp",
	  "service s in udp,tcp 443, 8000-8080 ,80\n", chk_sorted_ranges },
	{ "tabs, CRLF, comments, no final newline",
	  "\t# head\r\nservice\ta\tin\ttcp\t22\t# ssh\r\n\r\n"
	  "service b out tcp,udp 53 to any#dns",
	  chk_whitespace },
	{ "duplicate prefixes merged",
	  "set s = 10.0.0.0/8, 192.0.2.0/24\n"
	  "service a in tcp 1 from 10.0.0.0/8, @s, 192.0.2.0/24\n",
	  chk_dedupe },
	{ "nat-address and active-data guards",
	  "service ftp in tcp 21 ftp-track nat-address 203.0.113.5 , 2001:db8::5\n"
	  "service cli out tcp 21 to any ftp-track active-port 2020 nat-address 198.51.100.1\n"
	  "service imp in tcp 990 ftps-implicit\n"
	  "service active out tcp sport 989\n",
	  chk_nat },
	{ "guard shared", "service a in tcp 21 ftp-track\nservice b in tcp 2121 ftp-track\n",
	  chk_guard_shared },
	{ "guard replaced by a deny",
	  "service ftp in tcp 21 ftp-track\nservice no20 out tcp sport 1-1023 deny\n",
	  chk_guard_deny },
	{ "full range with holes punched",
	  "service all in tcp 1-65535 deny\n"
	  "service pasv in tcp 1024-65535 from 10.0.0.0/8\n"
	  "service ssh in tcp 22\n",
	  chk_full_range },
};

static void run_good(void)
{
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct ph_policy pol;

		cur_case = good[i].name;
		if (!load(good[i].text, &pol))
			continue;
		good[i].check(&pol);
		expect_entries_match(&pol);
		expect_tables_consistent(&pol);
		ph_policy_free(&pol);
		EXPECT(!pol.services && !pol.port_table && !pol.nrules,
		       "free leaves a zeroed policy");
	}
}

/* ---------------------------------------------------------------------- */
/* Bad inputs                                                              */
/* ---------------------------------------------------------------------- */

struct bad_case {
	const char *text;
	const char *where; /* "line:col" */
	const char *msg;   /* substring of the message */
};

static const struct bad_case bad[] = {
	{ "service f in tcp 21 ftp-track nat-address 10.0.0.0/8", "1:43",
	  "expected an IPv4 or IPv6 host address, got \"10.0.0.0/8\" (nat-address names addresses, not prefixes)" },
	{ "service f in tcp 21 nat-address 10.0.0.1", "1:21",
	  "nat-address applies to ftp-track services only" },
	{ "service f in tcp 990 ftps-implicit nat-address 10.0.0.1", "1:36",
	  "nat-address applies to ftp-track services only" },
	{ "service f in tcp 21 ftp-track nat-address 10.0.0.1, 10.0.0.1", "1:53",
	  "10.0.0.1 is listed twice" },
	{ "service f in tcp 21 ftp-track nat-address 10.0.0.1 nat-address 10.0.0.2", "1:52",
	  "nat-address is already given at column 31" },
	{ "service f in tcp 21 ftp-track nat-address 0.0.0.0", "1:43",
	  "names no host" },
	{ "service f in tcp 21 ftp-track nat-address ::", "1:43", "names no host" },
	{ "service f in tcp 21 ftp-track nat-address", "1:42",
	  "expected an IPv4 or IPv6 host address, got end of line" },
	{ "service f in tcp 21 ftp-track nat-address 10.0.0.1,", "1:52",
	  "expected an IPv4 or IPv6 host address" },
	{ "service f in tcp 21 ftp-track nat-address ::1,::2,::3,::4,::5,::6,::7,::8,::9", "1:75",
	  "at most 8 nat-address addresses per service" },
	{ "service f in tcp 21 ftp-track active-port 0", "1:43",
	  "expected the active-data source port (1-65535) after active-port" },
	{ "service f in tcp 21 ftp-track active-port 70000", "1:43",
	  "expected the active-data source port" },
	{ "service f in tcp 22 active-port 20", "1:21",
	  "active-port applies to ftp-track and ftps-implicit services only" },
	{ "service f in tcp 21 ftp-track active-port 20 active-port 21", "1:46",
	  "active-port is already given at column 31" },
	{ "service web in tcp 70000", "1:20",
	  "expected a port (1-65535) or range N-M, got \"70000\"" },
	{ "service web in tcp 0", "1:20", "expected a port (1-65535)" },
	{ "service web in tcp 123456", "1:20", "expected a port" },
	{ "service web in tcp 8o", "1:20", "got \"8o\"" },
	{ "service r in tcp 30000-28000", "1:18",
	  "range 30000-28000 is reversed; did you mean 28000-30000?" },
	{ "service r in tcp 5-", "1:18", "expected a port" },
	{ "servce web in tcp 80", "1:1",
	  "expected a statement (service, set, default, icmp-echo or ftp-ttl), got \"servce\"" },
	{ "service", "1:8",
	  "expected a service name before the direction, got end of line" },
	{ "service in tcp 22", "1:9",
	  "expected a service name before the direction, got \"in\"" },
	{ "service a/b in tcp 22", "1:9", "expected a service name" },
	{ "service nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn in tcp 22",
	  "1:9", "1-63 characters" },
	{ "service a in tcp 22\nservice a in tcp 23", "2:9",
	  "service \"a\" is already defined on line 1" },
	{ "service a inbound tcp 22", "1:11",
	  "expected a direction (in or out), got \"inbound\"" },
	{ "service a = in", "1:11", "expected a direction" },
	{ "service a in icmp 22", "1:14",
	  "expected a protocol (tcp, udp or tcp,udp), got \"icmp\"" },
	{ "service a in tcp,tcp 22", "1:18", "tcp is listed twice" },
	{ "service a in tcp", "1:17", "expected a port (1-65535) or range N-M, got end of line" },
	{ "service a in tcp 80,", "1:21", "got end of line" },
	{ "service a in tcp 80,80", "1:21", "port 80 is listed twice" },
	{ "service a in tcp 1-100,50-60", "1:24",
	  "ports 50-60 overlap 1-100 earlier in this list" },
	{ "service a in tcp 80 443", "1:21", "(separate ports with commas)" },
	{ "service a out tcp 22 from any", "1:22",
	  "an outbound service names its peers with \"to\", not \"from\"" },
	{ "service a in tcp 22 to any", "1:21",
	  "an inbound service names its peers with \"from\", not \"to\"" },
	{ "service a in tcp 22 from 10.1.0.0/8", "1:26",
	  "10.1.0.0/8 has host bits set; did you mean 10.0.0.0/8?" },
	{ "service a in tcp 22 from 2001:db8::1/32", "1:26",
	  "has host bits set; did you mean 2001:db8::/32?" },
	{ "service a in tcp 22 from 10.0.0.300/8", "1:26",
	  "expected an IPv4 or IPv6 address or prefix, got \"10.0.0.300/8\"" },
	{ "service a in tcp 22 from 10.0.0.0/", "1:26",
	  "expected an IPv4 or IPv6 address or prefix" },
	{ "service a in tcp 22 from 2001:db8:::/48", "1:26",
	  "expected an IPv4 or IPv6 address" },
	{ "service a in tcp 22 from 10.0.0.0/33", "1:26",
	  "prefix length /33 is too long for IPv4 (at most /32)" },
	{ "service a in tcp 22 from 2001:db8::/129", "1:26",
	  "prefix length /129 is too long for IPv6 (at most /128)" },
	{ "service a in tcp 22 from @nope", "1:26", "unknown set \"@nope\"" },
	{ "service a in tcp 22 from @lan\nset lan = 10.0.0.0/8", "1:26",
	  "unknown set \"@lan\" (define it with \"set lan = ...\" before this line)" },
	{ "service a in tcp 22 from", "1:25", "expected a peer" },
	{ "service a in tcp 22 from any, 10.0.0.0/8", "1:31",
	  "any already matches every address" },
	{ "service a in tcp 22 from any, any", "1:31", "any is listed twice" },
	{ "service a in tcp 22 from 10.0.0.0/8, !192.168.0.0/16", "1:38",
	  "!192.168.0.0/16 excludes nothing" },
	{ "service a in tcp 22 from !10.0.0.0/8", "1:26", "excludes nothing" },
	{ "service a in tcp 22 from 10.0.0.0/8, !10.0.0.0/8", "1:38",
	  "10.0.0.0/8 is both allowed and excluded" },
	{ "set s = 10.0.0.0/8\nservice a in tcp 22 from any, !@s", "2:31",
	  "! applies to a prefix, not to a set" },
	{ "service a in tcp 22 from 10.0.0.0/8 deny", "1:21",
	  "a deny service drops every peer" },
	{ "service a in tcp 22 allow from any", "1:27",
	  "the peer list (from/to) must come right after the ports" },
	{ "service a in tcp 22 from any allw", "1:30",
	  "expected allow, deny, a flag (ftp-track, ftps-range, ftps-implicit), nat-address, active-port or end of line, got \"allw\"" },
	{ "service a in tcp 22 10.0.0.0/8", "1:21",
	  "(peers follow \"from\" or \"to\", right after the ports)" },
	{ "service a in tcp 22 allow deny", "1:27",
	  "the action is already given at column 21" },
	{ "service a in tcp 21 ftp-track ftp-track", "1:31",
	  "ftp-track is given twice" },
	{ "service f in udp 21 ftp-track", "1:21", "ftp-track applies to tcp only" },
	{ "service f in tcp,udp 21 ftp-track", "1:25",
	  "ftp-track applies to tcp only" },
	{ "service a in tcp 21 deny ftp-track", "1:26",
	  "ftp-track makes no sense on a deny service" },
	{ "service a out tcp sport 20 ftp-track", "1:28",
	  "ftp-track needs destination ports" },
	{ "service f in tcp 990 ftps-implicit ftp-track", "1:36",
	  "ftp-track and ftps-implicit exclude each other" },
	{ "service p out tcp 28000-30000 ftps-range", "1:31",
	  "ftps-range applies to inbound services only" },
	{ "service p in tcp sport 28000 ftps-range", "1:30",
	  "ftps-range needs destination ports" },
	{ "service p in udp 28000 ftps-range", "1:24",
	  "ftps-range applies to tcp only" },
	{ "service p in tcp 28000 ftps-range ftp-track", "1:24",
	  "cannot be combined with ftp-track" },
	{ "service a in tcp 80,443\nservice b in tcp 443,80", "2:22",
	  "service \"b\" duplicates service \"a\" (line 1) on tcp in 80,443: merge their peer lists" },
	{ "service a in tcp 22 from 10.0.0.0/8\nservice b in tcp 22 from 192.0.2.0/24",
	  "2:18", "duplicates service \"a\" (line 1)" },
	{ "service a in tcp 80\nservice b in tcp 80 deny", "2:18",
	  "service \"b\" contradicts service \"a\" (line 1): both match tcp in 80" },
	{ "service a in tcp,udp 53\nservice b in udp 53 deny", "2:18",
	  "contradicts service \"a\" (line 1): both match udp in 53" },
	{ "service a in tcp 1000-2000\nservice b in tcp 1500-2500", "2:18",
	  "service \"b\" partly overlaps service \"a\" (line 1) on tcp in 1500-2000" },
	{ "service a in tcp 1-10,20-30\nservice b in tcp 5-25", "2:18",
	  "partly overlaps service \"a\" (line 1) on tcp in 5-10" },
	{ "service p in tcp 28000-30000 ftps-range\nservice q in tcp 29000", "2:18",
	  "service \"q\" overlaps service \"p\" (line 1) on tcp in 29000: an ftps-range cannot share ports" },
	{ "service q in tcp 1-65535 deny\nservice p in tcp 1024-65535 ftps-range", "2:18",
	  "an ftps-range cannot share ports" },
	{ "default in drop\ndefault in allow", "2:1",
	  "default in is already set on line 1" },
	{ "default drop", "1:9", "expected a direction (in or out), got \"drop\"" },
	{ "default out maybe", "1:13", "expected allow or drop, got \"maybe\"" },
	{ "default in drop please", "1:17", "expected end of line, got \"please\"" },
	{ "icmp-echo out drop\nicmp-echo out drop", "2:1",
	  "icmp-echo out is already set on line 1" },
	{ "icmp-echo in maybe", "1:14", "expected allow or drop" },
	{ "ftp-ttl 0s", "1:9", "ftp-ttl must be between 1s and 10m, got \"0s\"" },
	{ "ftp-ttl 999ms", "1:9", "ftp-ttl must be between 1s and 10m" },
	{ "ftp-ttl 11m", "1:9", "ftp-ttl must be between 1s and 10m" },
	{ "ftp-ttl 30", "1:9", "expected a duration such as 30s (units ms, s, m)" },
	{ "ftp-ttl 30h", "1:9", "expected a duration" },
	{ "ftp-ttl 99999999999999999999s", "1:9", "expected a duration" },
	{ "ftp-ttl", "1:8", "expected a duration" },
	{ "ftp-ttl 30s\nftp-ttl 20s", "2:1", "ftp-ttl is already set on line 1" },
	{ "set s = 10.0.0.0/8\nset s = 10.0.0.0/8", "2:5",
	  "set \"s\" is already defined on line 1" },
	{ "set s 10.0.0.0/8", "1:7", "expected \"=\", got \"10.0.0.0/8\"" },
	{ "set s = any", "1:9", "a set cannot contain any" },
	{ "set s =", "1:8", "expected an address or prefix" },
	{ "set s = 10.0.0.0/8, !10.0.0.0/8", "1:21", "both allowed and excluded" },
	{ "set = 10.0.0.0/8", "1:5", "expected a set name" },
	{ "set a = 10.0.0.0/8, @a", "1:21", "a set cannot contain itself" },
	{ "set a = 10.0.0.0/8\nset b = @a, @b", "2:13", "a set cannot contain itself" },
	{ "# fine\n\nservice a in tcp 99999", "3:18", "expected a port" },
	{ "service a\rb in tcp 22", "1:10", "control character 0x0d" },
	{ "service a\x01 in tcp 22", "1:10", "control character 0x01" },
	{ "# caf\xe9\n", "1:6", "invalid UTF-8" },
	{ "# \xc0\xaf overlong\n", "1:3", "invalid UTF-8" },
	{ "# \xed\xa0\x80 surrogate\n", "1:3", "invalid UTF-8" },
	{ "service caf\xc3\xa9 in tcp 22", "1:12",
	  "non-ASCII character outside a comment" },
	{ ", service", "1:1", "expected a statement" },
};

static void check_error(const char *label, int ret,
			const struct ph_policy_error *err,
			const struct ph_policy *pol, const char *where,
			const char *msg)
{
	char buf[1024], loc[32];

	ph_policy_error_format(err, buf, sizeof(buf));
	snprintf(loc, sizeof(loc), "%d:%d", err->line, err->col);
	EXPECT(ret == -1, "%s: accepted, want %s %s", label, where, msg);
	if (ret != -1)
		return;
	EXPECT(!strcmp(loc, where), "%s: error at %s, want %s (%s)", label,
	       loc, where, buf);
	EXPECT(strstr(err->msg, msg), "%s: message \"%s\" lacks \"%s\"", label,
	       err->msg, msg);
	EXPECT(strstr(buf, ": error: ") && !strncmp(buf, err->file,
						      strlen(err->file)),
	       "%s: format \"%s\"", label, buf);
	EXPECT(!pol->services && !pol->rules && !pol->port_table &&
		       !pol->peer_entries && !pol->notes && !pol->nservices,
	       "%s: policy not empty after an error", label);
}

static void run_bad(void)
{
	size_t i;

	cur_case = "bad inputs";
	EXPECT(sizeof(bad) / sizeof(bad[0]) >= 30, "at least 30 bad cases");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ph_policy pol;
		struct ph_policy_error err;
		char label[64];
		int ret;

		snprintf(label, sizeof(label), "bad[%zu]", i);
		ret = ph_policy_load_string("bad.policy", bad[i].text, &pol,
					    &err);
		check_error(label, ret, &err, &pol, bad[i].where, bad[i].msg);
		if (ret == 0)
			ph_policy_free(&pol);
		EXPECT(ret != -1 || !strcmp(err.file, "bad.policy"),
		       "%s: file %s", label, err.file);
	}
}

/* Inputs that need building: long lines, NUL bytes, limits, files. */
static void run_special(void)
{
	struct ph_policy pol;
	struct ph_policy_error err;
	char *text, buf[1024];
	size_t n, off;
	int i, j, ret;

	cur_case = "long line";
	text = malloc(PH_POLICY_LINE_MAX + 100);
	memset(text, 'x', PH_POLICY_LINE_MAX + 50);
	text[0] = '#';
	text[PH_POLICY_LINE_MAX + 50] = 0;
	ret = ph_policy_load_string("x", text, &pol, &err);
	check_error("long line", ret, &err, &pol, "1:8193", "line is longer than 8192 bytes");
	text[PH_POLICY_LINE_MAX] = 0; /* exactly the maximum: fine */
	ret = ph_policy_load_string("x", text, &pol, &err);
	EXPECT(ret == 0, "a line of exactly %d bytes is accepted", PH_POLICY_LINE_MAX);
	ph_policy_free(&pol);
	free(text);

	cur_case = "NUL byte";
	ret = ph_policy_load_buffer("nul", "service a in tcp 22\n# x\0y\n", 25,
				    &pol, &err);
	check_error("NUL", ret, &err, &pol, "2:4", "NUL byte");

	cur_case = "missing file";
	ret = ph_policy_load_file("/nonexistent/pinhole/x.policy", &pol, &err);
	EXPECT(ret == -1 && err.line == 0, "missing file: line %d", err.line);
	EXPECT(strstr(err.msg, strerror(ENOENT)), "missing file: %s", err.msg);
	ph_policy_error_format(&err, buf, sizeof(buf));
	EXPECT(!strncmp(buf, "/nonexistent/pinhole/x.policy: error: ", 38),
	       "missing file format: %s", buf);

	cur_case = "directory";
	ret = ph_policy_load_file("policies", &pol, &err);
	EXPECT(ret == -1 && err.line == 0 && strstr(err.msg, strerror(EISDIR)),
	       "directory: %s", err.msg);

	cur_case = "file with NUL and bad UTF-8";
	{
		char path[] = "/tmp/pinhole-test-policy.XXXXXX";
		int fd = mkstemp(path);
		static const char data[] = "service a in tcp 22\n\xff\x00\x01";

		EXPECT(fd >= 0, "mkstemp");
		if (fd >= 0) {
			EXPECT(write(fd, data, sizeof(data) - 1) ==
				       (ssize_t)sizeof(data) - 1, "write");
			close(fd);
			ret = ph_policy_load_file(path, &pol, &err);
			check_error("binary file", ret, &err, &pol, "2:1",
				    "invalid UTF-8");
			EXPECT(!strcmp(err.file, path), "file name %s", err.file);
			unlink(path);
		}
	}

	/* PH_MAX_RULES rules exactly: 16 services x 1024 single ports */
	cur_case = "rule limit";
	n = 16 * 1024 * 8 + 256;
	text = malloc(n);
	off = 0;
	for (i = 0; i < 16; i++) {
		off += (size_t)snprintf(text + off, n - off, "service s%d in tcp ", i);
		for (j = 0; j < 1024; j++)
			off += (size_t)snprintf(text + off, n - off, "%s%d",
						j ? "," : "", 1 + i * 1024 + j);
		off += (size_t)snprintf(text + off, n - off, "\n");
	}
	ret = ph_policy_load_string("rules", text, &pol, &err);
	EXPECT(ret == 0 && pol.nrules == PH_MAX_RULES, "%d rules accepted",
	       pol.nrules);
	if (ret == 0) {
		expect_port(&pol, TCP, PH_PT_IN_DPORT, 16384, "s15");
		ph_policy_free(&pol);
	}
	snprintf(text + off, n - off, "service more in udp 1,2\n");
	ret = ph_policy_load_string("rules", text, &pol, &err);
	check_error("rule limit", ret, &err, &pol, "17:21", "too many rules");
	free(text);

	/* PH_POLICY_MAX_PEER_ENTRIES entries exactly: 64 sets x 512 hosts */
	cur_case = "peer limit";
	n = 64 * 512 * 20 + 4096;
	text = malloc(n);
	off = 0;
	for (i = 0; i < 64; i++) {
		off += (size_t)snprintf(text + off, n - off, "set s%d = ", i);
		for (j = 0; j < 512; j++)
			off += (size_t)snprintf(text + off, n - off, "%s10.%d.%d.%d",
						j ? "," : "", i, j / 256, j % 256);
		off += (size_t)snprintf(text + off, n - off, "\n");
	}
	off += (size_t)snprintf(text + off, n - off, "service big in tcp 1 from ");
	for (i = 0; i < 64; i++)
		off += (size_t)snprintf(text + off, n - off, "%s@s%d", i ? "," : "", i);
	off += (size_t)snprintf(text + off, n - off, "\n");
	ret = ph_policy_load_string("peers", text, &pol, &err);
	EXPECT(ret == 0 && pol.npeer_entries == PH_POLICY_MAX_PEER_ENTRIES,
	       "%d peer entries accepted", pol.npeer_entries);
	if (ret == 0)
		ph_policy_free(&pol);
	snprintf(text + off, n - off, "service one in tcp 2 from 192.0.2.1\n");
	ret = ph_policy_load_string("peers", text, &pol, &err);
	check_error("peer limit", ret, &err, &pol, "66:22", "too many peer entries");
	free(text);
}

/* ---------------------------------------------------------------------- */
/* Output                                                                  */
/* ---------------------------------------------------------------------- */

static void check_summaries(const struct ph_policy *pol, const char *label)
{
	size_t len;
	char *h = summary(pol, false, NULL), *j = summary(pol, true, &len);
	int i;

	EXPECT(h && j, "%s: no summary", label);
	if (!h || !j) {
		free(h);
		free(j);
		return;
	}
	EXPECT(json_valid(j, len), "%s: invalid JSON:\n%s", label, j);
	EXPECT(strstr(h, "rules: ") && strstr(h, "peer entries: ") &&
		       strstr(h, "notes:") && strstr(h, "default    in "),
	       "%s: human summary lacks a section", label);
	EXPECT(strstr(j, "\"nrules\"") && strstr(j, "\"notes\"") &&
		       strstr(j, "\"settings\""),
	       "%s: JSON lacks a section", label);
	for (i = 0; i < pol->nservices; i++)
		EXPECT(strstr(h, pol->services[i].name) &&
			       strstr(j, pol->services[i].name),
		       "%s: service %s missing from a summary", label,
		       pol->services[i].name);
	for (i = 0; i < pol->nnotes; i++)
		EXPECT(strstr(h, pol->notes[i].text), "%s: note missing", label);
	free(h);
	free(j);
}

#define JSON_OK(s) json_valid(s, strlen(s))

static void run_output(void)
{
	struct ph_policy pol;
	struct ph_policy_error err;
	char *h;

	cur_case = "summary of the example";
	if (load(example, &pol)) {
		check_summaries(&pol, "example");
		h = summary(&pol, false, NULL);
		EXPECT(h && strstr(h, "192.0.2.10/32,10.0.0.0/8,2001:db8::/32") &&
			       strstr(h, "ftps-range") && strstr(h, "tcp,udp") &&
			       strstr(h, "sport") && strstr(h, "ftp-ttl    30s"),
		       "human summary content:\n%s", h ? h : "");
		free(h);
		ph_policy_free(&pol);
	}

	cur_case = "JSON escaping";
	if (ph_policy_load_string("we\"ird\\path\n\x01\xff\xc3\xa9.policy",
				  "service a in tcp 1 from any, !10.0.0.0/8\n"
				  "service b in tcp 1-9 deny\n",
				  &pol, &err) == 0) {
		size_t len = 0;
		char *j = summary(&pol, true, &len);

		if (!j)
			j = strdup("");
		EXPECT(json_valid(j, len), "escaped JSON invalid:\n%s", j);
		EXPECT(strstr(j, "we\\\"ird\\\\path\\u000a\\u0001\\ufffd\xc3\xa9"),
		       "path escaping:\n%s", j);
		EXPECT(strstr(j, "\"any\", \"!10.0.0.0/8\""),
		       "peers in JSON:\n%s", j);
		free(j);
		check_summaries(&pol, "escaping");
		ph_policy_free(&pol);
	} else {
		EXPECT(0, "escaping policy failed: %s", err.msg);
	}

	cur_case = "JSON checker self-test";
	EXPECT(JSON_OK("{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\"]}"),
	       "valid JSON rejected");
	EXPECT(!JSON_OK("{\"a\": [1,]}") && !JSON_OK("{\"a\" 1}") &&
		       !JSON_OK("\"\x01\"") && !JSON_OK("[] []") &&
		       !JSON_OK("[01]") && !JSON_OK("\"\xff\""),
	       "invalid JSON accepted");
}

/* ---------------------------------------------------------------------- */
/* Presets                                                                 */
/* ---------------------------------------------------------------------- */

static void check_preset(const char *path, const struct ph_policy *pol)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int ftp = svc_index(pol, "ftp");

	if (!strcmp(base, "demo.policy")) {
		EXPECT(pol->nservices == 4 &&
			       pol->default_verdict[PH_DIR_IN] == PH_ACT_DROP,
		       "demo: 4 services, default in drop");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 22, "sftp");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 80, "http");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 443, "https");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 21, "ftp");
		EXPECT(ftp >= 0 && (pol->services[ftp].flags & PH_RF_FTP_TRACK),
		       "demo: ftp is tracked");
	} else if (!strcmp(base, "server-defaults.policy")) {
		const struct ph_rule *r = rule_at(pol, TCP, PH_PT_IN_DPORT, 1024);

		EXPECT(r && r->port_lo == 1024 && r->port_hi == 65535 &&
			       (r->flags & PH_RF_FTPS_RANGE),
		       "server-defaults: ftps-range 1024-65535");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 990, "ftps-implicit");
		/* active data leaves through the guards, not static rules */
		expect_port(pol, TCP, PH_PT_OUT_SPORT, 989, "ftps-implicit");
		expect_port(pol, TCP, PH_PT_OUT_SPORT, 20, "ftp");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 22, "sftp");
	} else if (!strcmp(base, "ftp-server-tracked.policy")) {
		const struct ph_rule *g = rule_at(pol, TCP, PH_PT_OUT_SPORT, 20);

		EXPECT(pol->nrules == 2 && ftp >= 0 &&
			       (pol->services[ftp].flags & PH_RF_FTP_TRACK),
		       "ftp-server-tracked: one tracked rule and its guard, no range");
		EXPECT(g && (g->flags & PH_RF_ACTIVE_GUARD) && !pol->nnotes,
		       "ftp-server-tracked: port 20 guarded, no exposure");
	} else if (!strcmp(base, "ftp-client-tracked.policy")) {
		const struct ph_rule *g = rule_at(pol, TCP, PH_PT_IN_SPORT, 20);

		EXPECT(g && (g->flags & PH_RF_ACTIVE_GUARD),
		       "ftp-client-tracked: inbound from port 20 guarded");
	} else if (!strcmp(base, "eft-server.policy")) {
		expect_port(pol, TCP, PH_PT_IN_DPORT, 28000, "ftp-pasv");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 30000, "ftp-pasv");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 990, "ftps-implicit");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 443, "https");
	} else if (!strcmp(base, "cerberus-server.policy")) {
		const struct ph_rule *r = rule_at(pol, TCP, PH_PT_IN_DPORT, 30000);

		EXPECT(r && r->port_hi - r->port_lo + 1 >= 300 &&
			       (r->flags & PH_RF_FTPS_RANGE),
		       "cerberus: several hundred passive ports");
	}
	/* No shipped preset leaves an active-data port unguarded. */
	for (int i = 0; i < pol->nservices; i++)
		EXPECT(pol->services[i].active_open_by < 0,
		       "%s: active data of %s not guarded", base,
		       pol->services[i].name);
	if (!strcmp(base, "web-server.policy")) {
		expect_port(pol, UDP, PH_PT_IN_DPORT, 443, "http3");
		expect_port(pol, TCP, PH_PT_IN_DPORT, 80, "http");
	}
}

static void run_presets(void)
{
	static const char *const want[] = {
		"eft-server", "eft-client", "cerberus-server",
		"firewall-faq-server", "firewall-faq-client", "server-defaults",
		"ftp-server-tracked", "ftp-client-tracked", "web-server",
		"sftp-only", "demo",
	};
	glob_t g;
	size_t i, k;

	cur_case = "presets";
	EXPECT(glob("policies/*.policy", 0, NULL, &g) == 0,
	       "no policies/*.policy (run from the repository root)");
	for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		char path[128];
		bool found = false;

		snprintf(path, sizeof(path), "policies/%s.policy", want[k]);
		for (i = 0; i < g.gl_pathc; i++)
			found |= !strcmp(g.gl_pathv[i], path);
		EXPECT(found, "preset %s missing", path);
	}
	for (i = 0; i < g.gl_pathc; i++) {
		struct ph_policy pol;
		struct ph_policy_error err;
		char buf[1024];
		FILE *f;

		cur_case = g.gl_pathv[i];
		if (ph_policy_load_file(g.gl_pathv[i], &pol, &err)) {
			ph_policy_error_format(&err, buf, sizeof(buf));
			EXPECT(0, "%s", buf);
			continue;
		}
		check_preset(g.gl_pathv[i], &pol);
		check_summaries(&pol, g.gl_pathv[i]);
		expect_tables_consistent(&pol);
		ph_policy_free(&pol);
		/* the leading comment names the seed it reproduces */
		f = fopen(g.gl_pathv[i], "r");
		if (f && fgets(buf, sizeof(buf), f) && buf[0] == '#' &&
		    !strstr(g.gl_pathv[i], "demo.policy")) {
			bool seed = false;

			while (!seed && buf[0] == '#') {
				seed = strstr(buf, "seed") != NULL;
				if (!fgets(buf, sizeof(buf), f))
					break;
			}
			EXPECT(seed, "leading comment names no seed");
		} else if (!strstr(g.gl_pathv[i], "demo.policy")) {
			EXPECT(0, "does not begin with a comment");
		}
		if (f)
			fclose(f);
	}
	globfree(&g);
}

/* ---------------------------------------------------------------------- */
/* Robustness: mutated policies never crash and never report nonsense      */
/* ---------------------------------------------------------------------- */

static uint32_t rng = 0x12345678u;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void run_mutations(void)
{
	static const char alphabet[] = " \t\n,=#!@/-:.0123456789abcdefsportin\xff\xc3";
	size_t base = sizeof(example) - 1;
	char *buf = malloc(base + 64);
	int it, ok = 0, bad_loc = 0, not_empty = 0;

	cur_case = "mutations";
	for (it = 0; it < 3000; it++) {
		struct ph_policy pol;
		struct ph_policy_error err;
		size_t len = base;
		int m, nm = 1 + (int)(rnd() % 4);

		memcpy(buf, example, base);
		for (m = 0; m < nm; m++) {
			size_t pos = rnd() % len;

			switch (rnd() % 3) {
			case 0:
				buf[pos] = alphabet[rnd() % (sizeof(alphabet) - 1)];
				break;
			case 1:
				memmove(buf + pos, buf + pos + 1, len - pos - 1);
				len--;
				break;
			default:
				memmove(buf + pos + 1, buf + pos, len - pos);
				buf[pos] = (char)(rnd() & 0xff);
				len++;
			}
		}
		if (ph_policy_load_buffer("m", buf, len, &pol, &err) == 0) {
			ok++;
			expect_tables_consistent(&pol);
			ph_policy_free(&pol);
			continue;
		}
		if (err.line < 1 || err.col < 1 || !err.msg[0])
			bad_loc++;
		if (pol.services || pol.rules || pol.port_table)
			not_empty++;
	}
	EXPECT(!bad_loc, "%d errors without line:col", bad_loc);
	EXPECT(!not_empty, "%d failed loads left memory", not_empty);
	EXPECT(ok > 0 && ok < 3000, "%d of 3000 mutations loaded", ok);
	free(buf);
}

int main(void)
{
	run_good();
	run_bad();
	run_special();
	run_output();
	run_presets();
	run_mutations();
	if (failures) {
		fprintf(stderr, "test_policy: %d of %d checks FAILED\n", failures,
			checks);
		return 1;
	}
	printf("test_policy: all %d checks passed\n", checks);
	return 0;
}
