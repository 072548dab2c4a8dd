/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pinhole explain: the verdict a described packet would meet now, computed
 * in userspace from the pinned maps in the datapath's order (docs/
 * observability.md, "explain"). Nothing is sent and nothing is written:
 * the live program is never run (a test run would create flows and move
 * counters).
 */
#ifndef PH_USER_EXPLAIN_H
#define PH_USER_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "loader.h"

/* A described packet. Addresses v4-mapped, network order; ports host
 * order. */
struct ph_xpkt {
	__u8 dir;    /* enum ph_dir */
	__u8 proto;  /* IPPROTO_TCP, _UDP, _ICMP, _ICMPV6 */
	__u8 family; /* 4 or 6 */
	__u8 tcp_flags; /* PH_TCP_* bits as on the wire (default SYN) */
	__u8 icmp_echo_reply; /* ICMP: 0 echo request, 1 echo reply */
	__u8 src[16], dst[16];
	__u16 sport, dport;
};

/*
 * Parses "[in|out] PROTO SRC to DST [FLAGS]": PROTO tcp, udp, icmp
 * (icmpv6 for IPv6 addresses); SRC/DST 192.0.2.1:80, [2001:db8::1]:80 (no
 * port for ICMP); "->" may stand for "to" (quote it in a shell); FLAGS for
 * TCP syn (default), ack, syn-ack, fin, rst or flags=LETTERS (S A F R P U),
 * for ICMP echo-request (default) or echo-reply. 0, or -1 with a message
 * in err.
 */
int ph_explain_parse(int argc, char **argv, struct ph_xpkt *p, char *err,
		     size_t errlen);

#define PH_X_STEPS 16
struct ph_xresult {
	int reason;         /* enum ph_reason */
	int rule;           /* rule index, -1: none */
	char service[64];   /* "" if none */
	int nsteps;
	char steps[PH_X_STEPS][160]; /* what was consulted, in order */
	char caveat[240];   /* what could still differ, "" if nothing */
};

/* Evaluates @p against @inst now. 0 or -errno (maps unreadable). */
int ph_explain_run(const struct ph_instance *inst, const struct ph_xpkt *p,
		   struct ph_xresult *r);

#endif /* PH_USER_EXPLAIN_H */
