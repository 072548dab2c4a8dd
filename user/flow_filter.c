// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow_filter.h"
#include "util.h"

static const char *const port_words[PH_FFP__COUNT] = {
	"lport", "rport", "port", "sport", "dport",
};
static const char *const addr_words[PH_FFA__COUNT] = {
	"local", "remote", "addr", "src", "dst",
};
static const char *const origin_words[] = {
	[PH_FO_INBOUND] = "inbound",
	[PH_FO_OUTBOUND] = "outbound",
	[PH_FO_EXPECT] = "ftp-data",
	[PH_FO_FTPS] = "ftps-range",
};

const char *ph_flow_state_name(__u8 state, bool half_open)
{
	if (half_open)
		return "half-open";
	switch (state) {
	case PH_FS_NEW: return "new";
	case PH_FS_ESTABLISHED: return "established";
	case PH_FS_CLOSING: return "closing";
	}
	return "?";
}

const char *ph_flow_origin_name(__u8 origin)
{
	return origin < ARRAY_SIZE(origin_words) ? origin_words[origin] : "?";
}

static int find_word(const char *w, const char *const *words, int n)
{
	for (int i = 0; i < n; i++)
		if (words[i] && !strcmp(w, words[i]))
			return i;
	return -1;
}

/* N or N-M, 1..65535, N <= M. */
static bool parse_ports(const char *s, __u16 *lo, __u16 *hi)
{
	const char *dash = strchr(s, '-');
	char a[8];
	__u32 x, y;

	if (!dash)
		return ph_parse_u32(s, 1, 65535, &x) && (*lo = *hi = (__u16)x, true);
	if ((size_t)(dash - s) >= sizeof(a))
		return false;
	memcpy(a, s, (size_t)(dash - s));
	a[dash - s] = '\0';
	if (!ph_parse_u32(a, 1, 65535, &x) || !ph_parse_u32(dash + 1, 1, 65535, &y) ||
	    x > y)
		return false;
	*lo = (__u16)x;
	*hi = (__u16)y;
	return true;
}

static void mask(__u8 *a, __u32 plen)
{
	for (int i = 0; i < 16; i++) {
		int keep = (int)plen - i * 8;

		if (keep <= 0)
			a[i] = 0;
		else if (keep < 8)
			a[i] &= (__u8)(0xff00 >> keep);
	}
}

/* ADDR or ADDR/PLEN, IPv4 (stored v4-mapped) or IPv6, host bits clear. */
static int parse_addr(const char *s, struct ph_peer_key *k, char *why,
		      size_t len)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash;
	__u32 plen, max;
	__u8 m[16];
	bool v6;

	if (strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	memset(k, 0, sizeof(*k));
	v6 = strchr(buf, ':');
	if (v6 ? inet_pton(AF_INET6, buf, k->addr) != 1 :
		 inet_pton(AF_INET, buf, k->addr + 12) != 1)
		goto bad;
	if (!v6)
		k->addr[10] = k->addr[11] = 0xff;
	max = v6 ? 128 : 32;
	plen = max;
	if (slash && !ph_parse_u32(slash, 0, max, &plen)) {
		snprintf(why, len, "%s: prefix length must be 0 to %u", s, max);
		return -1;
	}
	k->prefixlen = plen + (v6 ? 0 : 96);
	memcpy(m, k->addr, 16);
	mask(m, k->prefixlen);
	if (memcmp(m, k->addr, 16)) {
		snprintf(why, len, "%s has host bits set", s);
		return -1;
	}
	return 0;
bad:
	snprintf(why, len, "'%s' is not an IPv4 or IPv6 address or prefix", s);
	return -1;
}

int ph_flow_filter_parse(struct ph_flow_filter *f, int argc, char **argv,
			 char *why, size_t len)
{
	memset(f, 0, sizeof(*f));
	f->state = f->origin = f->expired = -1;
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int p = find_word(w, port_words, PH_FFP__COUNT);
		int a = find_word(w, addr_words, PH_FFA__COUNT);
		bool dup = false;

		if (!strcmp(w, "expired") || !strcmp(w, "live")) {
			if (f->expired >= 0) {
				snprintf(why, len, "give expired or live once (expired and live exclude each other)");
				return -1;
			}
			f->expired = !strcmp(w, "expired");
			continue;
		}
		if (p < 0 && a < 0 && strcmp(w, "proto") && strcmp(w, "state") &&
		    strcmp(w, "origin") && strcmp(w, "service")) {
			snprintf(why, len, "unknown filter '%s' (proto, lport, rport, port, sport, dport, local, remote, addr, src, dst, state, origin, service, expired, live)",
				 w);
			return -1;
		}
		if (!v) {
			snprintf(why, len, "filter '%s' needs a value", w);
			return -1;
		}
		i++;
		if (p >= 0) {
			dup = f->port_set[p];
			f->port_set[p] = true;
			if (!parse_ports(v, &f->port_lo[p], &f->port_hi[p])) {
				snprintf(why, len, "%s '%s': expected a port (1-65535) or range N-M",
					 w, v);
				return -1;
			}
		} else if (a >= 0) {
			dup = f->addr_set[a];
			f->addr_set[a] = true;
			if (parse_addr(v, &f->addr[a], why, len))
				return -1;
		} else if (!strcmp(w, "proto")) {
			dup = f->proto_set;
			f->proto_set = true;
			if (!strcmp(v, "tcp"))
				f->proto = 6;
			else if (!strcmp(v, "udp"))
				f->proto = 17;
			else if (!strcmp(v, "icmp"))
				f->proto = 1;
			else if (!strcmp(v, "icmpv6"))
				f->proto = 58;
			else {
				snprintf(why, len, "proto '%s': use tcp, udp, icmp or icmpv6", v);
				return -1;
			}
		} else if (!strcmp(w, "state")) {
			dup = f->state >= 0;
			f->state = !strcmp(v, "established") ? 0 :
				   !strcmp(v, "closing") ? 1 :
				   !strcmp(v, "half-open") ? 2 : -2;
			if (f->state == -2) {
				snprintf(why, len, "state '%s': use established, closing or half-open",
					 v);
				return -1;
			}
		} else if (!strcmp(w, "origin")) {
			dup = f->origin >= 0;
			f->origin = find_word(v, origin_words, ARRAY_SIZE(origin_words));
			if (f->origin < 0) {
				snprintf(why, len, "origin '%s': use inbound, outbound, ftp-data or ftps-range",
					 v);
				return -1;
			}
		} else {
			dup = f->service[0];
			if (strlen(v) >= sizeof(f->service)) {
				snprintf(why, len, "service '%.64s...': names are at most %d characters",
					 v, PH_NAME_MAX - 1);
				return -1;
			}
			strcpy(f->service, v);
		}
		if (dup) {
			snprintf(why, len, "filter '%s' is given twice", w);
			return -1;
		}
	}
	return 0;
}

static bool in_prefix(const __u8 *addr, const struct ph_peer_key *p)
{
	__u8 a[16];

	memcpy(a, addr, 16);
	mask(a, p->prefixlen);
	return !memcmp(a, p->addr, 16);
}

static bool in_range(__u16 port, __u16 lo, __u16 hi)
{
	return port >= lo && port <= hi;
}

bool ph_flow_filter_match(const struct ph_flow_filter *f,
			  const struct ph_flow_key *k, const struct ph_flow *fl,
			  bool half_open, __u64 now, const char *service)
{
	/* The originator's view (conntrack's src/dst, sport/dport): this host
	 * when the first packet left it. */
	bool out = fl->origin == PH_FO_OUTBOUND || (fl->flags & PH_FF_INIT_OUT);
	__u16 lp = ntohs(k->lport), rp = ntohs(k->rport);
	__u16 port[PH_FFP__COUNT] = {
		[PH_FFP_LPORT] = lp, [PH_FFP_RPORT] = rp,
		[PH_FFP_SPORT] = out ? lp : rp, [PH_FFP_DPORT] = out ? rp : lp,
	};
	const __u8 *addr[PH_FFA__COUNT] = {
		[PH_FFA_LOCAL] = k->local, [PH_FFA_REMOTE] = k->remote,
		[PH_FFA_SRC] = out ? k->local : k->remote,
		[PH_FFA_DST] = out ? k->remote : k->local,
	};
	__u64 left;
	int state = half_open ? 2 : fl->state == PH_FS_CLOSING ? 1 : 0;

	if (f->proto_set && k->proto != f->proto)
		return false;
	for (int p = 0; p < PH_FFP__COUNT; p++) {
		if (!f->port_set[p])
			continue;
		if (p == PH_FFP_PORT) {
			if (!in_range(lp, f->port_lo[p], f->port_hi[p]) &&
			    !in_range(rp, f->port_lo[p], f->port_hi[p]))
				return false;
		} else if (!in_range(port[p], f->port_lo[p], f->port_hi[p])) {
			return false;
		}
	}
	for (int a = 0; a < PH_FFA__COUNT; a++) {
		if (!f->addr_set[a])
			continue;
		if (a == PH_FFA_ADDR) {
			if (!in_prefix(k->local, &f->addr[a]) &&
			    !in_prefix(k->remote, &f->addr[a]))
				return false;
		} else if (!in_prefix(addr[a], &f->addr[a])) {
			return false;
		}
	}
	if (f->state >= 0 && f->state != state)
		return false;
	if (f->origin >= 0 && f->origin != fl->origin)
		return false;
	if (f->expired >= 0 &&
	    f->expired == ph_flow_expires_in(k, fl, half_open, now, &left))
		return false;
	if (f->service[0] && (!service || strcmp(service, f->service)))
		return false;
	return true;
}

bool ph_flow_expires_in(const struct ph_flow_key *k, const struct ph_flow *fl,
			bool half_open, __u64 now, __u64 *left)
{
	const __u64 s = 1000000000ull;
	__u64 from = fl->last_seen_ns, limit, end;

	if (half_open) {
		from = fl->created_ns;
		limit = PH_HALF_OPEN_TIMEOUT_S * s;
	} else if (k->proto == 6) {
		limit = fl->state == PH_FS_CLOSING ? PH_TCP_CLOSING_TIMEOUT_S * s :
						     PH_TCP_EST_TIMEOUT_S * s;
	} else if (k->proto == 17) {
		limit = PH_UDP_TIMEOUT_S * s;
	} else {
		limit = PH_ICMP_TIMEOUT_S * s;
	}
	end = from + limit;
	/* The datapath's test: (s64)(now - from) > (s64)limit. */
	if ((__s64)(now - from) > (__s64)limit) {
		*left = 0;
		return false;
	}
	*left = end > now ? end - now : 0;
	return true;
}
