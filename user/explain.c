// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The datapath's decision order (bpf/xdp_ingress.bpf.c, bpf/tc_egress.bpf.c,
 * docs/datapath.md) replayed on map lookups from userspace. Every lookup
 * here has its BPF counterpart named in the step it records; keep the two
 * in step when the datapath changes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <pinhole/pinhole.h>
#include <pinhole/ctrl.h>

#include "explain.h"
#include "maps_io.h"
#include "output.h"
#include "util.h"

#define X_TCP_FIN 0x01
#define X_TCP_SYN 0x02
#define X_TCP_RST 0x04
#define X_TCP_PSH 0x08
#define X_TCP_ACK 0x10
#define X_TCP_URG 0x20

static int perr(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* "192.0.2.1", "192.0.2.1:80", "[2001:db8::1]:80", "2001:db8::1".
 * *port -1 when none given. */
static int parse_endpoint(const char *s, __u8 addr[16], int *family,
			  int *port, char *err, size_t len)
{
	char host[64];
	const char *p = NULL;
	struct in6_addr a6;
	struct in_addr a4;
	__u32 v;

	*port = -1;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || (size_t)(end - s - 1) >= sizeof(host))
			return perr(err, len, "'%s': expected [IPv6]:PORT", s);
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		if (end[1] == ':')
			p = end + 2;
		else if (end[1])
			return perr(err, len, "'%s': expected [IPv6]:PORT", s);
	} else {
		const char *c = strchr(s, ':');

		if (strlen(s) >= sizeof(host))
			return perr(err, len, "'%s': address too long", s);
		if (c && !strchr(c + 1, ':')) { /* one colon: IPv4:port */
			memcpy(host, s, (size_t)(c - s));
			host[c - s] = '\0';
			p = c + 1;
		} else {
			strcpy(host, s);
		}
	}
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, host, &a4) == 1) {
		*family = 4;
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		*family = 6;
		memcpy(addr, &a6, 16);
		if (!memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
			return perr(err, len,
				    "'%s': write an IPv4 address as IPv4", s);
	} else {
		return perr(err, len, "'%s': not an IPv4 or IPv6 address",
			    host);
	}
	if (p) {
		if (!ph_parse_u32(p, 0, 65535, &v))
			return perr(err, len, "'%s': port must be 0 to 65535",
				    s);
		*port = (int)v;
	}
	return 0;
}

static int parse_tcp_flags(const char *w, __u8 *fl, char *err, size_t len)
{
	if (!strcmp(w, "syn"))
		*fl = X_TCP_SYN;
	else if (!strcmp(w, "ack"))
		*fl = X_TCP_ACK;
	else if (!strcmp(w, "syn-ack") || !strcmp(w, "synack"))
		*fl = X_TCP_SYN | X_TCP_ACK;
	else if (!strcmp(w, "fin"))
		*fl = X_TCP_FIN | X_TCP_ACK;
	else if (!strcmp(w, "rst"))
		*fl = X_TCP_RST;
	else if (!strncmp(w, "flags=", 6) && w[6]) {
		*fl = 0;
		for (const char *c = w + 6; *c; c++) {
			switch (*c) {
			case 'S': *fl |= X_TCP_SYN; break;
			case 'A': *fl |= X_TCP_ACK; break;
			case 'F': *fl |= X_TCP_FIN; break;
			case 'R': *fl |= X_TCP_RST; break;
			case 'P': *fl |= X_TCP_PSH; break;
			case 'U': *fl |= X_TCP_URG; break;
			default:
				return perr(err, len,
					    "'%s': flag letters are S A F R P U",
					    w);
			}
		}
	} else {
		return perr(err, len,
			    "'%s': TCP flags are syn, ack, syn-ack, fin, rst or flags=LETTERS",
			    w);
	}
	return 0;
}

int ph_explain_parse(int argc, char **argv, struct ph_xpkt *p, char *err,
		     size_t errlen)
{
	int i = 0, fs, fd, ps, pd, v6only = 0;

	memset(p, 0, sizeof(*p));
	p->dir = PH_DIR_IN;
	if (i < argc && (!strcmp(argv[i], "in") || !strcmp(argv[i], "out")))
		p->dir = !strcmp(argv[i++], "in") ? PH_DIR_IN : PH_DIR_OUT;
	if (i >= argc)
		return perr(err, errlen,
			    "expected [in|out] PROTO SRC to DST [FLAGS]");
	if (!strcmp(argv[i], "tcp"))
		p->proto = IPPROTO_TCP;
	else if (!strcmp(argv[i], "udp"))
		p->proto = IPPROTO_UDP;
	else if (!strcmp(argv[i], "icmp") || !strcmp(argv[i], "icmpv6")) {
		p->proto = IPPROTO_ICMP;
		v6only = !strcmp(argv[i], "icmpv6");
	}
	else
		return perr(err, errlen, "'%s': protocol must be tcp, udp, icmp or icmpv6",
			    argv[i]);
	i++;
	if (i + 3 > argc)
		return perr(err, errlen,
			    "expected [in|out] PROTO SRC to DST [FLAGS]");
	if (parse_endpoint(argv[i], p->src, &fs, &ps, err, errlen))
		return -1;
	i++;
	if (strcmp(argv[i], "to") && strcmp(argv[i], "->"))
		return perr(err, errlen, "'%s': expected 'to' between source and destination",
			    argv[i]);
	i++;
	if (parse_endpoint(argv[i], p->dst, &fd, &pd, err, errlen))
		return -1;
	i++;
	if (fs != fd)
		return perr(err, errlen, "source and destination are of different address families");
	p->family = (__u8)fs;
	if (p->proto == IPPROTO_ICMP) {
		if (ps >= 0 || pd >= 0)
			return perr(err, errlen, "ICMP has no ports");
		if (p->family == 6)
			p->proto = IPPROTO_ICMPV6;
		if (v6only && p->family == 4)
			return perr(err, errlen, "icmpv6 needs IPv6 addresses");
		if (i < argc) {
			if (!strcmp(argv[i], "echo-reply"))
				p->icmp_echo_reply = 1;
			else if (strcmp(argv[i], "echo-request"))
				return perr(err, errlen,
					    "'%s': ICMP types are echo-request and echo-reply",
					    argv[i]);
			i++;
		}
	} else {
		if (ps < 0 || pd < 0)
			return perr(err, errlen, "%s needs SOURCE:PORT and DESTINATION:PORT",
				    p->proto == IPPROTO_TCP ? "tcp" : "udp");
		p->sport = (__u16)ps;
		p->dport = (__u16)pd;
		if (p->proto == IPPROTO_TCP) {
			p->tcp_flags = X_TCP_SYN;
			if (i < argc &&
			    parse_tcp_flags(argv[i++], &p->tcp_flags, err,
					    errlen))
				return -1;
		}
	}
	if (i < argc)
		return perr(err, errlen, "unexpected '%s'", argv[i]);
	return 0;
}

/* ---------------------------------------------------------- evaluation */

struct xctx {
	const struct ph_instance *inst;
	const struct ph_xpkt *p;
	struct ph_xresult *r;
	struct ph_view v;
	__u64 now;
	int slot;
};

static void step(struct xctx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->r->nsteps >= PH_X_STEPS)
		return;
	va_start(ap, fmt);
	vsnprintf(x->r->steps[x->r->nsteps++], sizeof(x->r->steps[0]), fmt,
		  ap);
	va_end(ap);
}

static int is_syn(const struct ph_xpkt *p)
{
	return p->proto == IPPROTO_TCP &&
	       (p->tcp_flags & (X_TCP_SYN | X_TCP_ACK)) == X_TCP_SYN;
}

static int opens(const struct ph_xpkt *p)
{
	return p->proto == IPPROTO_UDP || is_syn(p);
}

/* The host-oriented key (struct ph_flow_key) of the packet. */
static void flow_key(const struct ph_xpkt *p, struct ph_flow_key *k)
{
	int in = p->dir == PH_DIR_IN;

	memset(k, 0, sizeof(*k));
	memcpy(k->local, in ? p->dst : p->src, 16);
	memcpy(k->remote, in ? p->src : p->dst, 16);
	k->lport = htons(in ? p->dport : p->sport);
	k->rport = htons(in ? p->sport : p->dport);
	k->proto = p->proto;
}

static __u64 flow_timeout_ns(const struct ph_flow *f, __u8 proto)
{
	__u64 s = PH_ICMP_TIMEOUT_S;

	if (proto == IPPROTO_TCP)
		s = f->state == PH_FS_CLOSING ? PH_TCP_CLOSING_TIMEOUT_S :
						PH_TCP_EST_TIMEOUT_S;
	else if (proto == IPPROTO_UDP)
		s = PH_UDP_TIMEOUT_S;
	return s * 1000000000ull;
}

static void svc_of(struct xctx *x, __u16 svc_id)
{
	char name[64] = "";

	if (!svc_id || svc_id >= PH_SVC_MAX ||
	    x->inst->fd[PH_MAP_SVC_IDS] < 0)
		return;
	{
		struct ph_svc_name n;
		__u32 key = svc_id;

		if (!bpf_map_lookup_elem(x->inst->fd[PH_MAP_SVC_IDS], &key, &n)) {
			n.name[sizeof(n.name) - 1] = '\0';
			ph_strlcpy(name, n.name, sizeof(name));
		}
	}
	ph_strlcpy(x->r->service, name, sizeof(x->r->service));
}

/*
 * flows (ph_flow_use): PASS_FLOW if an entry idle for less than its
 * timeout matches; half_open (ph_half_open_hit): PASS_HALF_OPEN if one
 * younger than the half-open timeout does. -1: no such entry.
 */
static int x_entry(struct xctx *x, const struct ph_flow_key *k, bool half_open)
{
	const char *name = half_open ? "half_open" : "flows";
	struct ph_flow f;
	__u64 since, limit;

	if (bpf_map_lookup_elem(x->inst->fd[half_open ? PH_MAP_HALF_OPEN :
							PH_MAP_FLOWS],
				k, &f)) {
		step(x, "%s: no entry", name);
		return -1;
	}
	since = half_open ? f.created_ns : f.last_seen_ns;
	limit = half_open ? PH_HALF_OPEN_TIMEOUT_S * 1000000000ull :
			    flow_timeout_ns(&f, k->proto);
	if ((__s64)(x->now - since) > (__s64)limit) {
		step(x, "%s: entry past its timeout (the packet deletes it and goes on)",
		     name);
		return -1;
	}
	/* f.rule indexes the slot of its time: the service names it */
	svc_of(x, f.svc_id);
	step(x, "%s: live entry (service %s) -> %s", name,
	     x->r->service[0] ? x->r->service : "-",
	     half_open ? "pass_half_open" : "pass_flow");
	return half_open ? PH_R_PASS_HALF_OPEN : PH_R_PASS_FLOW;
}

static int x_flows(struct xctx *x, const struct ph_flow_key *k)
{
	return x_entry(x, k, false);
}

static int x_half_open(struct xctx *x, const struct ph_flow_key *k)
{
	return x_entry(x, k, true);
}

enum { X_EXP_NONE, X_EXP_TAKEN, X_EXP_SPENT };

/* expect: exact key, then the connecting side's port as 0. */
static int x_expect(struct xctx *x, const struct ph_flow_key *k, __u32 *session)
{
	struct ph_flow_key ek = *k;
	int res = X_EXP_NONE;

	for (int i = 0; i < 2; i++) {
		struct ph_expect e;

		if (i == 1) {
			if (x->p->dir == PH_DIR_IN)
				ek.rport = 0;
			else
				ek.lport = 0;
		}
		if (bpf_map_lookup_elem(x->inst->fd[PH_MAP_EXPECT], &ek, &e) ||
		    e.dir != x->p->dir)
			continue;
		if ((__s64)(e.deadline_ns - x->now) > 0) {
			*session = e.session;
			return X_EXP_TAKEN;
		}
		res = X_EXP_SPENT;
	}
	return res;
}

/* syn_watch (ph_syn_watch_live): must a bare SYN consult the table? */
static int x_watch(struct xctx *x, int kind, __u16 lport)
{
	__u32 idx = PH_SYN_WATCH_IDX(kind, lport);
	__u64 until;
	int fd, r;

	fd = ph_pin_get(x->inst->pin_dir, "syn_watch");
	if (fd < 0)
		return 1;
	r = bpf_map_lookup_elem(fd, &idx, &until) ? 1 :
	    (until && until > x->now);
	close(fd);
	return r;
}

static int fail_reason(const struct xctx *x)
{
	return x->v.st.fail_open ? PH_R_PASS_FAIL_OPEN : PH_R_DROP_FAIL_CLOSED;
}

/* Rule index + 1 of port in table (0: none), -1 on lookup failure. */
static int x_port_rule(struct xctx *x, __u8 l4, __u32 table, __u16 port)
{
	__u32 idx = PH_PORT_IDX(x->slot, l4, table, port);
	__u16 v;

	if (bpf_map_lookup_elem(x->inst->fd[PH_MAP_PORTS], &idx, &v))
		return -1;
	return v;
}

static const char *const table_name[PH_PT_MAX] = {
	[PH_PT_IN_DPORT] = "in-dport", [PH_PT_IN_SPORT] = "in-sport",
	[PH_PT_OUT_DPORT] = "out-dport", [PH_PT_OUT_SPORT] = "out-sport",
};

/* ph_rule_verdict: the rule's action and peer set. */
static int x_rule_verdict(struct xctx *x, int v, const __u8 remote[16],
			  __u16 *flags)
{
	__u32 idx = (__u32)x->slot * PH_MAX_RULES + (__u32)(v - 1), id;
	struct ph_peer_key pk = { .prefixlen = 128 };
	struct ph_peer_val pv;
	struct ph_rule r;
	char a[64];
	int fd, found;

	if (v > PH_MAX_RULES ||
	    bpf_map_lookup_elem(x->inst->fd[PH_MAP_RULES], &idx, &r))
		return fail_reason(x);
	*flags = r.flags;
	x->r->rule = v - 1;
	svc_of(x, r.svc_id);
	if (r.action != PH_ACT_ALLOW) {
		step(x, "rule %d (%s): deny -> drop_deny_rule", v - 1,
		     x->r->service);
		return PH_R_DROP_DENY_RULE;
	}
	if (r.flags & PH_RF_PEER_ANY) {
		step(x, "rule %d (%s): allow, any peer -> pass_policy", v - 1,
		     x->r->service);
		return PH_R_PASS_POLICY;
	}
	ph_fmt_addr(remote, a, sizeof(a));
	idx = PH_PEER_SET_IDX(x->slot, r.peer_set);
	if (r.peer_set >= PH_MAX_SETS)
		return fail_reason(x);
	if (bpf_map_lookup_elem(x->inst->fd[PH_MAP_PEERS], &idx, &id)) {
		step(x, "rule %d (%s): peer set %u holds no prefix -> drop_peer",
		     v - 1, x->r->service, r.peer_set);
		return PH_R_DROP_PEER;
	}
	fd = bpf_map_get_fd_by_id(id);
	if (fd < 0)
		return -errno;
	memcpy(pk.addr, remote, 16);
	found = !bpf_map_lookup_elem(fd, &pk, &pv);
	close(fd);
	if (!found || pv.action != PH_ACT_ALLOW) {
		step(x, "rule %d (%s): peer %s %s -> drop_peer", v - 1,
		     x->r->service, a,
		     found ? "in an excluded prefix" : "not in the peer list");
		return PH_R_DROP_PEER;
	}
	step(x, "rule %d (%s): allow, peer %s listed -> pass_policy", v - 1,
	     x->r->service, a);
	return PH_R_PASS_POLICY;
}

static int x_default(struct xctx *x, int dir)
{
	int allow = x->v.meta[x->slot].default_verdict[dir] == PH_ACT_ALLOW;

	step(x, "no rule: default %s %s -> %s", dir == PH_DIR_IN ? "in" : "out",
	     allow ? "allow" : "drop", allow ? "pass_default" : "drop_policy");
	return allow ? PH_R_PASS_DEFAULT : PH_R_DROP_POLICY;
}

/* Two port tables in order (ph_port_lookup2), then the rule or default. */
static int x_policy2(struct xctx *x, __u32 t1, __u16 p1, __u32 t2, __u16 p2,
		     const __u8 remote[16], __u16 *flags, int *vout)
{
	__u8 l4 = x->p->proto == IPPROTO_TCP ? PH_L4_TCP : PH_L4_UDP;
	const char *l4n = l4 == PH_L4_TCP ? "tcp" : "udp";
	int v = x_port_rule(x, l4, t1, p1);

	step(x, "ports %s %s/%u: %s", table_name[t1], l4n, p1,
	     v > 0 ? "rule" : v == 0 ? "none" : "lookup failed");
	if (v == 0) {
		v = x_port_rule(x, l4, t2, p2);
		step(x, "ports %s %s/%u: %s", table_name[t2], l4n, p2,
		     v > 0 ? "rule" : v == 0 ? "none" : "lookup failed");
	}
	*vout = v;
	if (v < 0)
		return fail_reason(x);
	if (v)
		return x_rule_verdict(x, v, remote, flags);
	return -2; /* no rule: the caller decides */
}

static int admitted(int r)
{
	return r == PH_R_PASS_POLICY || r == PH_R_PASS_DEFAULT ||
	       r == PH_R_PASS_FTPS_RANGE;
}

/* ingress_ftps: the session half is in a map, the listener half is not. */
static int x_ftps(struct xctx *x)
{
	struct ph_ftps_peer_key pk;
	struct ph_ftps_peer pv;

	memcpy(pk.remote, x->p->src, 16);
	memcpy(pk.local, x->p->dst, 16);
	if (x->inst->fd[PH_MAP_FTPS_PEERS] < 0 ||
	    bpf_map_lookup_elem(x->inst->fd[PH_MAP_FTPS_PEERS], &pk, &pv) ||
	    !pv.refs) {
		step(x, "ftps-range: source holds no FTPS control session -> drop_ftps_no_session");
		return PH_R_DROP_FTPS_NO_SESSION;
	}
	step(x, "ftps-range: FTPS control session found; a socket must listen on port %u",
	     x->p->dport);
	snprintf(x->r->caveat, sizeof(x->r->caveat),
		 "pass_ftps_range only if a socket listens on port %u now (else drop_ftps_no_listener): sockets are not visible in the maps",
		 x->p->dport);
	return PH_R_PASS_FTPS_RANGE;
}

/* A connection opener's pinhole: PASS_EXPECT, or -1 with *exp saying
 * whether a spent one matched. */
static int x_take(struct xctx *x, const struct ph_flow_key *k, int *exp)
{
	__u32 session;

	*exp = x_expect(x, k, &session);
	if (*exp == X_EXP_TAKEN) {
		step(x, "expect: live pinhole of FTP session %u -> pass_expect",
		     session);
		return PH_R_PASS_EXPECT;
	}
	step(x, "expect: %s",
	     *exp == X_EXP_SPENT ? "pinhole expired" : "no pinhole");
	return -1;
}

static int x_in(struct xctx *x)
{
	const struct ph_xpkt *p = x->p;
	struct ph_flow_key k;
	__u16 flags = 0;
	int r, v, exp = X_EXP_NONE;

	flow_key(p, &k);
	if (!is_syn(p)) {
		r = x_flows(x, &k);
		if (r >= 0)
			return r;
		r = x_half_open(x, &k);
		if (r >= 0)
			return r;
		if (p->proto == IPPROTO_TCP && x->v.st.failsafe_port &&
		    p->dport == x->v.st.failsafe_port) {
			step(x, "failsafe port %u -> pass_failsafe", p->dport);
			return PH_R_PASS_FAILSAFE;
		}
		r = x_policy2(x, PH_PT_IN_DPORT, p->dport, PH_PT_IN_SPORT,
			      p->sport, p->src, &flags, &v);
		return r == -2 ? x_default(x, PH_DIR_IN) : r;
	}

	step(x, "bare SYN: flows not consulted (a new connection)");
	if (x->v.st.failsafe_port && p->dport == x->v.st.failsafe_port) {
		step(x, "failsafe port %u -> pass_failsafe", p->dport);
		return PH_R_PASS_FAILSAFE;
	}
	if (p->dport >= PH_PINHOLE_MIN_PORT) {
		int wh = x_watch(x, PH_SW_HALF_OPEN, p->dport);
		int we = x_watch(x, PH_SW_EXPECT, p->dport);

		step(x, "syn_watch port %u: half_open %s, expect %s", p->dport,
		     wh ? "consulted" : "skipped", we ? "consulted" : "skipped");
		if (wh) {
			r = x_half_open(x, &k);
			if (r >= 0)
				return r;
		}
		if (we && x_take(x, &k, &exp) >= 0)
			return PH_R_PASS_EXPECT;
	}
	r = x_policy2(x, PH_PT_IN_DPORT, p->dport, PH_PT_IN_SPORT, p->sport,
		      p->src, &flags, &v);
	if (r == -2)
		r = x_default(x, PH_DIR_IN);
	if (r == PH_R_PASS_POLICY && (flags & PH_RF_FTPS_RANGE))
		r = x_ftps(x);
	if (!admitted(r)) {
		if (exp == X_EXP_SPENT && r != PH_R_DROP_FAIL_CLOSED &&
		    PH_REASON_IS_DROP(r)) {
			step(x, "a spent pinhole matched -> drop_expect_spent");
			return PH_R_DROP_EXPECT_SPENT;
		}
		return r;
	}
	if (p->dport < PH_PINHOLE_MIN_PORT) {
		int again = x_half_open(x, &k);

		if (again >= 0)
			return again;
	}
	return r;
}

static int x_out(struct xctx *x)
{
	const struct ph_xpkt *p = x->p;
	struct ph_flow_key k;
	__u16 flags = 0;
	int r, v, exp = X_EXP_NONE;

	flow_key(p, &k);
	if (is_syn(p)) {
		step(x, "bare SYN: flows not consulted (a new connection)");
	} else {
		r = x_flows(x, &k);
		if (r >= 0)
			return r;
	}
	r = x_half_open(x, &k);
	if (r >= 0)
		return r;
	if (opens(p) && x_take(x, &k, &exp) >= 0)
		return PH_R_PASS_EXPECT;
	if (p->proto == IPPROTO_TCP && x->v.st.failsafe_port &&
	    p->sport == x->v.st.failsafe_port) {
		step(x, "failsafe port %u (source) -> pass_failsafe", p->sport);
		return PH_R_PASS_FAILSAFE;
	}
	r = x_policy2(x, PH_PT_OUT_DPORT, p->dport, PH_PT_OUT_SPORT, p->sport,
		      p->dst, &flags, &v);
	if (r == -2 && p->proto == IPPROTO_TCP && !is_syn(p)) {
		/* egress_policy: a reply an inbound rule admits, statelessly */
		int in = x_port_rule(x, PH_L4_TCP, PH_PT_IN_DPORT, p->sport);

		step(x, "ports in-dport tcp/%u (reply of an inbound rule): %s",
		     p->sport, in > 0 ? "rule" : in == 0 ? "none" : "lookup failed");
		if (in < 0)
			return fail_reason(x);
		r = PH_R_DROP_POLICY;
		if (in > 0)
			r = x_rule_verdict(x, in, p->dst, &flags);
		if (r == PH_R_DROP_DENY_RULE || r == PH_R_DROP_PEER)
			r = PH_R_DROP_POLICY;
		if (r == PH_R_DROP_POLICY) {
			x->r->rule = -1;
			x->r->service[0] = '\0';
			r = x_default(x, PH_DIR_OUT);
		}
		return r;
	}
	if (r == -2)
		r = x_default(x, PH_DIR_OUT);
	if (exp == X_EXP_SPENT && PH_REASON_IS_DROP(r) &&
	    r != PH_R_DROP_FAIL_CLOSED) {
		step(x, "a spent pinhole matched -> drop_expect_spent");
		return PH_R_DROP_EXPECT_SPENT;
	}
	return r;
}

static int x_icmp(struct xctx *x)
{
	const struct ph_xpkt *p = x->p;
	int in = p->dir == PH_DIR_IN;
	struct ph_flow_key k;
	int allow;

	if (in && p->icmp_echo_reply) {
		/* ingress_icmp: only a reply to a request this host sent;
		 * the identifier stands in for the port (id 0 here). */
		flow_key(p, &k);
		k.lport = 0;
		k.rport = 0;
		step(x, "echo reply: flows entry of an echo request sent (identifier 0 assumed)");
		if (x_flows(x, &k) >= 0)
			return PH_R_PASS_FLOW;
		return PH_R_DROP_ICMP_UNRELATED;
	}
	/* requests in either direction, and replies going out, follow
	 * icmp_echo of the request's direction */
	allow = x->v.meta[x->slot].icmp_echo[in || p->icmp_echo_reply ?
						      PH_DIR_IN : PH_DIR_OUT] ==
		PH_ACT_ALLOW;
	step(x, "icmp echo %s: %s", in || p->icmp_echo_reply ? "in" : "out",
	     allow ? "allowed" : "not allowed");
	return allow ? PH_R_PASS_ICMP_ECHO : PH_R_DROP_ICMP;
}

int ph_explain_run(const struct ph_instance *inst, const struct ph_xpkt *p,
		   struct ph_xresult *r)
{
	struct xctx x = { .inst = inst, .p = p, .r = r };
	int err, res;

	memset(r, 0, sizeof(*r));
	r->rule = -1;
	err = ph_view_read(inst, &x.v);
	if (err)
		return err;
	x.slot = (int)x.v.st.active_slot;
	x.now = ph_now_coarse_ns();
	step(&x, "policy generation %u (slot %d)", x.v.st.generation, x.slot);
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6)
		res = x_icmp(&x);
	else
		res = p->dir == PH_DIR_IN ? x_in(&x) : x_out(&x);
	if (res < 0)
		return res;
	r->reason = res;
	return 0;
}
