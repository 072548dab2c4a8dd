/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Filters of `pinhole flows` (list, delete), modelled on `conntrack -L
 * -p tcp --dport 80`, and the expiry of an entry as the datapath judges it.
 * Pure: no kernel access (the unit tests use it). docs/cli.md, "flows".
 */
#ifndef PH_USER_FLOW_FILTER_H
#define PH_USER_FLOW_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>

#include "policy.h"

enum ph_ff_port { PH_FFP_LPORT, PH_FFP_RPORT, PH_FFP_PORT, PH_FFP_SPORT,
		  PH_FFP_DPORT, PH_FFP__COUNT };
enum ph_ff_addr { PH_FFA_LOCAL, PH_FFA_REMOTE, PH_FFA_ADDR, PH_FFA_SRC,
		  PH_FFA_DST, PH_FFA__COUNT };

struct ph_flow_filter {
	bool proto_set;
	__u8 proto;
	bool port_set[PH_FFP__COUNT];
	__u16 port_lo[PH_FFP__COUNT], port_hi[PH_FFP__COUNT];
	bool addr_set[PH_FFA__COUNT];
	struct ph_peer_key addr[PH_FFA__COUNT]; /* v4-mapped, prefixlen 0-128 */
	int state;  /* -1: any; else 0 established, 1 closing, 2 half-open */
	int origin; /* -1: any; else enum ph_flow_origin */
	int expired; /* -1: any; 1 expired only; 0 live only */
	char service[PH_NAME_MAX]; /* "" : any */
};

/* Words "proto tcp lport 22 ..." (argv[0..argc)). 0, or -1 with why. */
int ph_flow_filter_parse(struct ph_flow_filter *f, int argc, char **argv,
			 char *why, size_t len);

/* Does the entry match? service: the flow's service name, or NULL when
 * the filter has no service (then a service filter matches nothing). */
bool ph_flow_filter_match(const struct ph_flow_filter *f,
			  const struct ph_flow_key *k, const struct ph_flow *fl,
			  bool half_open, __u64 now, const char *service);

/* Is the entry still alive at now (CLOCK_MONOTONIC_COARSE ns)? *left gets
 * the time it has left (0 when expired). The rules of bpf/lib/flow.h, with
 * the timeouts every instance is loaded with (pinhole.h PH_*_TIMEOUT_S):
 * flows idle out (TCP established 2 h, closing 10 s, UDP 2 min, ICMP
 * 30 s); half_open entries end 30 s after creation. The datapath deletes
 * an expired entry when a packet meets it, so one may linger in the map. */
bool ph_flow_expires_in(const struct ph_flow_key *k, const struct ph_flow *fl,
			bool half_open, __u64 now, __u64 *left);

/* "established", "closing", "half-open"; "inbound", "outbound",
 * "ftp-data", "ftps-range". */
const char *ph_flow_state_name(__u8 state, bool half_open);
const char *ph_flow_origin_name(__u8 origin);

#endif /* PH_USER_FLOW_FILTER_H */
