/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP and ICMPv6: neighbour discovery, echo, and errors. An error passes
 * only if the packet it quotes belongs to a connection this host has: that
 * keeps path-MTU discovery and fast failure working without letting
 * arbitrary ICMP through.
 */
#ifndef PH_BPF_ICMP_H
#define PH_BPF_ICMP_H

#include "common.h"
#include "parse.h"

/* @quoted: the key ph_parse() built from the packet an error quotes. */
static __always_inline __u32 ph_icmp_error_in(const struct ph_pkt *p,
					      const struct ph_flow_key *quoted)
{
	if (!p->quoted_ok)
		return PH_R_DROP_ICMP_UNRELATED;
	if (bpf_map_lookup_elem(&flows, quoted) ||
	    bpf_map_lookup_elem(&half_open, quoted))
		return PH_R_PASS_ICMP_RELATED;
	return PH_R_DROP_ICMP_UNRELATED;
}

#endif /* PH_BPF_ICMP_H */
