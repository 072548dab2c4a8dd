/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pinhole monitor events (include/pinhole/pinhole.h, "Monitor"). While no
 * monitor listens, a packet pays one array lookup (inlined by the
 * verifier) and a test; the rest is out of line. A listening monitor keeps
 * monitor_ctl.deadline_ns ahead; once it has passed (the monitor died), the
 * first packet that sees it clears `on`.
 */
#ifndef PH_BPF_MONITOR_H
#define PH_BPF_MONITOR_H

#include "common.h"

/* The monitor's control word if a monitor may listen, else NULL. */
static __always_inline struct ph_monitor_ctl *ph_mon_ctl(void)
{
	__u32 zero = 0;
	struct ph_monitor_ctl *m = bpf_map_lookup_elem(&monitor_ctl, &zero);

	return m && m->on ? m : NULL;
}

/* Is the lease still running? Clears it if not. */
static __always_inline int ph_mon_live(struct ph_monitor_ctl *m, __u64 now)
{
	if ((__s64)(m->deadline_ns - now) > 0)
		return 1;
	m->on = 0;
	return 0;
}

/*
 * The per-CPU token bucket of drop events: drop_rate per second, at most
 * drop_burst at once. Returns 1 if this drop may be reported (*suppressed:
 * the drops not reported since the last one), 0 if it is only counted.
 */
static __always_inline int ph_mon_drop_sample(const struct ph_monitor_ctl *m,
					      __u64 now, __u64 *suppressed)
{
	__u32 zero = 0;
	struct ph_monitor_tb *tb = bpf_map_lookup_elem(&monitor_tb, &zero);
	__u64 cap = (__u64)m->drop_burst * PH_NSEC_PER_SEC, dt;

	if (!tb)
		return 0;
	dt = now - tb->last_ns;
	if ((__s64)dt < 0)
		dt = 0;
	if (dt > 10 * PH_NSEC_PER_SEC) /* no overflow of dt * rate */
		dt = 10 * PH_NSEC_PER_SEC;
	tb->last_ns = now;
	tb->tokens_x += dt * m->drop_rate;
	if (tb->tokens_x > cap)
		tb->tokens_x = cap;
	if (tb->tokens_x < PH_NSEC_PER_SEC) {
		tb->suppressed++;
		return 0;
	}
	tb->tokens_x -= PH_NSEC_PER_SEC;
	*suppressed = tb->suppressed;
	tb->suppressed = 0;
	return 1;
}

/* A zeroed event in the ring, or NULL if the ring is full. */
static __always_inline struct ph_mon_event *ph_mon_reserve(__u32 type,
							   __u32 dir,
							   __u64 now)
{
	struct ph_mon_event *e =
		bpf_ringbuf_reserve(&monitor, sizeof(*e), 0);

	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = now;
	e->type = type;
	e->dir = dir;
	return e;
}

/* A packet's event (FLOW_NEW, PINHOLE_USED or DROP), or none. @p is NULL
 * for a packet whose parse failed (no addresses). Out of line: only a
 * listening monitor gets here. */
static __attribute__((noinline)) void ph_mon_packet(__u32 dir, __u32 ifindex,
						     __u32 rs_svc, __u32 len,
						     const struct ph_pkt *p)
{
	struct ph_monitor_ctl *m = ph_mon_ctl();
	__u32 reason = rs_svc & 0xff, type;
	struct ph_mon_event *e;
	__u64 now, supp = 0;

	if (!m)
		return;
	if (reason == PH_R_PASS_EXPECT)
		type = m->what & PH_MON_W_PINHOLE ? PH_MON_PINHOLE_USED : 0;
	else if (PH_REASON_IS_DROP(reason))
		type = m->what & PH_MON_W_DROP ? PH_MON_DROP : 0;
	else if ((reason == PH_R_PASS_POLICY || reason == PH_R_PASS_DEFAULT ||
		  reason == PH_R_PASS_FTPS_RANGE) &&
		 p && ph_pkt_opens(p))
		/* the packets that create a half_open entry */
		type = m->what & PH_MON_W_FLOW ? PH_MON_FLOW_NEW : 0;
	else
		type = 0;
	if (!type)
		return;
	now = ph_now();
	if (!ph_mon_live(m, now))
		return;
	if (type == PH_MON_DROP && !ph_mon_drop_sample(m, now, &supp))
		return;
	e = ph_mon_reserve(type, dir, now);
	if (!e)
		return;
	e->reason = reason;
	e->svc_id = rs_svc >> 16;
	e->ifindex = ifindex;
	e->len = len;
	e->suppressed = supp;
	if (p) {
		e->proto = p->proto;
		e->family = p->family;
		e->tcp_flags = p->tcp_flags;
		__builtin_memcpy(e->src, p->src, 16);
		__builtin_memcpy(e->dst, p->dst, 16);
		e->sport = p->sport;
		e->dport = p->dport;
	}
	bpf_ringbuf_submit(e, 0);
}

/* The datapath's FTP parser opened pinhole @k (host-oriented) for a SYN
 * travelling @dir. */
static __always_inline void ph_mon_pinhole(const struct ph_flow_key *k,
					   __u8 dir, __u32 session,
					   __u64 deadline_ns)
{
	struct ph_monitor_ctl *m = ph_mon_ctl();
	struct ph_mon_event *e;
	__u64 now;

	if (!m || !(m->what & PH_MON_W_PINHOLE))
		return;
	now = ph_now();
	if (!ph_mon_live(m, now))
		return;
	e = ph_mon_reserve(PH_MON_PINHOLE_OPEN, dir, now);
	if (!e)
		return;
	e->proto = k->proto;
	e->session = session;
	e->deadline_ns = deadline_ns;
	/* src/dst as the SYN will travel */
	if (dir == PH_DIR_IN) {
		__builtin_memcpy(e->src, k->remote, 16);
		__builtin_memcpy(e->dst, k->local, 16);
		e->sport = k->rport;
		e->dport = k->lport;
	} else {
		__builtin_memcpy(e->src, k->local, 16);
		__builtin_memcpy(e->dst, k->remote, 16);
		e->sport = k->lport;
		e->dport = k->rport;
	}
	bpf_ringbuf_submit(e, 0);
}

#endif /* PH_BPF_MONITOR_H */
