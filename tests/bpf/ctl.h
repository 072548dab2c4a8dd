/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * FTP control connections scripted through the programs, shared by the
 * BPF tests of the FTP and FTPS paths: the addresses, the connection
 * (both ends, both next sequence numbers, its host-oriented key) and the
 * packet of one side at a given sequence number. Include after fixture.h
 * and pkt.h.
 */
#ifndef PH_TESTS_BPF_CTL_H
#define PH_TESTS_BPF_CTL_H

/* This host, the FTP peer, a third host. */
#define L4 "192.0.2.1"
#define P4 "198.51.100.7"
#define T4 "203.0.113.9"
#define L6 "2001:db8::1"
#define P6 "2001:db8:1::7"
#define T6 "2001:db8:ff::9"

#define SERVER PH_ROLE_SERVER
#define CLIENT PH_ROLE_CLIENT

struct ctl {
	int family;
	const char *local, *peer; /* this host, the FTP peer */
	int role;                 /* this host is the FTP SERVER / CLIENT */
	__u16 cport, sport;       /* control ports: the client's, the server's */
	__u32 cnxt, snxt;         /* next sequence number: client's, server's */
	__u32 session;            /* the datapath's session id, once known */
	struct ph_flow_key key;   /* the control connection, host-oriented */
};

/* A control connection from the peer (role SERVER) or to it (CLIENT)
 * with the given ports and initial sequence numbers. */
static inline void ctl_setup(struct ctl *c, int family, int role,
			     __u16 sport, __u16 cport, __u32 cisn, __u32 sisn)
{
	memset(c, 0, sizeof(*c));
	c->family = family;
	c->local = family == 4 ? L4 : L6;
	c->peer = family == 4 ? P4 : P6;
	c->role = role;
	c->sport = sport;
	c->cport = cport;
	c->cnxt = cisn;
	c->snxt = sisn;
	addr16(family, c->local, c->key.local);
	addr16(family, c->peer, c->key.remote);
	c->key.lport = htons(role == SERVER ? sport : cport);
	c->key.rport = htons(role == SERVER ? cport : sport);
	c->key.proto = IPPROTO_TCP;
}

static inline const char *client_addr(const struct ctl *c)
{
	return c->role == SERVER ? c->peer : c->local;
}

static inline const char *server_addr(const struct ctl *c)
{
	return c->role == SERVER ? c->local : c->peer;
}

/* The hook that sees a packet sent by the client (or the server). */
static inline int dir_of(const struct ctl *c, int from_client)
{
	return (c->role == SERVER) == !!from_client ? IN : OUT;
}

/* The TCP segment one side sends on the control connection. */
static inline struct pkt_spec ctl_spec(const struct ctl *c, int from_client,
				       __u8 flags, __u32 seq, __u32 ack,
				       const void *data, int len)
{
	struct pkt_spec p = {
		.family = c->family,
		.proto = IPPROTO_TCP,
		.flags = flags,
		.set_seq = 1,
		.seq = seq,
		.ack = ack,
		.data = data,
		.data_len = len,
	};

	p.src = from_client ? client_addr(c) : server_addr(c);
	p.dst = from_client ? server_addr(c) : client_addr(c);
	p.sport = from_client ? c->cport : c->sport;
	p.dport = from_client ? c->sport : c->cport;
	return p;
}

#endif /* PH_TESTS_BPF_CTL_H */
