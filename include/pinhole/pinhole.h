/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pinhole: every struct and constant shared by the BPF programs (bpf/) and
 * userspace (user/). uapi types only: no libc, no vmlinux.h. Keys are padded
 * explicitly; callers zero them before use.
 *
 * Changing any struct or map size here changes the pinned layout: bump
 * PH_LAYOUT_VERSION. An instance of another layout that still carries
 * interfaces is migrated by user/upgrade.c (its flow-like tables copied and
 * converted, the policy rebuilt), never reused as it is. Fields of the
 * structs upgrade.c converts by prefix (ph_flow, ph_expect, ph_iface) are
 * only ever appended.
 */
#ifndef PINHOLE_PINHOLE_H
#define PINHOLE_PINHOLE_H

#include <linux/types.h>

#define PH_LAYOUT_VERSION 11

/* Default pin directory, overridable with --pin-dir or PINHOLE_PIN_DIR. */
#define PH_DEFAULT_PIN_DIR "/sys/fs/bpf/pinhole"

/* ---------------------------------------------------------------------- */
/* Verdict reasons: named once, here. X(enum suffix, short name, text).    */
/* PASS_* reasons must come before PH_R_FIRST_DROP.                        */
/* ---------------------------------------------------------------------- */
#define PH_PASS_REASONS(X)                                                    \
	X(PASS_FLOW, "pass_flow", "established flow (fast path)")            \
	X(PASS_HALF_OPEN, "pass_half_open",                                   \
	  "handshake packet of an admitted connection")                       \
	X(PASS_SOCKET, "pass_socket",                                         \
	  "no table entry; the kernel holds a socket of this connection")     \
	X(PASS_POLICY, "pass_policy", "allowed by a service rule")           \
	X(PASS_DEFAULT, "pass_default", "allowed by the default verdict")    \
	X(PASS_EXPECT, "pass_expect", "FTP data connection via a pinhole")   \
	X(PASS_FTPS_RANGE, "pass_ftps_range",                                 \
	  "FTPS passive range: listener and control session verified")       \
	X(PASS_FTPS_ACTIVE, "pass_ftps_active",                               \
	  "FTP active-data port: the peer holds an FTPS control session")    \
	X(PASS_FAILSAFE, "pass_failsafe", "failsafe management port")        \
	X(PASS_NON_IP, "pass_non_ip", "ARP or other non-IP frame")           \
	X(PASS_ND, "pass_nd", "IPv6 neighbour discovery or MLD")             \
	X(PASS_ICMP_RELATED, "pass_icmp_related",                             \
	  "ICMP error about a known flow")                                    \
	X(PASS_ICMP_ECHO, "pass_icmp_echo", "ICMP echo allowed")             \
	X(PASS_FRAGMENT, "pass_fragment",                                     \
	  "later fragment of an admitted datagram")                           \
	X(PASS_FAIL_OPEN, "pass_fail_open",                                   \
	  "internal lookup failed; configured fail-open")

#define PH_DROP_REASONS(X)                                                    \
	X(DROP_L2_MALFORMED, "drop_l2_malformed",                             \
	  "truncated Ethernet or VLAN header")                                \
	X(DROP_VLAN_DEPTH, "drop_vlan_depth", "more than two VLAN tags")     \
	X(DROP_L3_MALFORMED, "drop_l3_malformed",                             \
	  "truncated or invalid IPv4/IPv6 header")                            \
	X(DROP_IPV6_EXT, "drop_ipv6_ext",                                     \
	  "too many or truncated IPv6 extension headers")                     \
	X(DROP_L4_MALFORMED, "drop_l4_malformed",                             \
	  "truncated or invalid TCP/UDP/ICMP header")                         \
	X(DROP_TCP_FLAGS, "drop_tcp_flags", "invalid TCP flag combination")  \
	X(DROP_RST_WINDOW, "drop_rst_window",                                 \
	  "RST outside the tracked sequence window of its flow")              \
	X(DROP_FRAGMENT, "drop_fragment",                                     \
	  "fragment whose first fragment was not seen or not admitted")       \
	X(DROP_POLICY, "drop_policy", "no service rule; default drop")       \
	X(DROP_DENY_RULE, "drop_deny_rule", "denied by a service rule")      \
	X(DROP_PEER, "drop_peer", "peer address not in the service's list")  \
	X(DROP_ICMP_UNRELATED, "drop_icmp_unrelated",                         \
	  "ICMP error about no known flow")                                   \
	X(DROP_ICMP, "drop_icmp", "ICMP type not allowed")                   \
	X(DROP_EXPECT_SPENT, "drop_expect_spent",                             \
	  "pinhole expired or already used")                                  \
	X(DROP_FTPS_NO_LISTENER, "drop_ftps_no_listener",                     \
	  "FTPS passive port with no listening socket")                       \
	X(DROP_FTPS_NO_SESSION, "drop_ftps_no_session",                       \
	  "FTPS passive port; source holds no FTPS control session")          \
	X(DROP_FTP_ACTIVE, "drop_ftp_active",                                 \
	  "FTP active-data port without a pinhole (bounce guard)")            \
	X(DROP_CTRL_CSUM, "drop_ctrl_csum",                                   \
	  "FTP control segment with a bad TCP or IPv4 header checksum")       \
	X(DROP_FAIL_CLOSED, "drop_fail_closed",                               \
	  "internal lookup failed; configured fail-closed")

#define PH_X_ENUM(e, n, t) PH_R_##e,
enum ph_reason {
	PH_PASS_REASONS(PH_X_ENUM)
	PH_R_FIRST_DROP,
	PH_R_DROP_BASE_ = PH_R_FIRST_DROP - 1,
	PH_DROP_REASONS(PH_X_ENUM)
	PH_R_MAX,
};
#undef PH_X_ENUM

#define PH_REASON_IS_DROP(r) ((r) >= PH_R_FIRST_DROP)

/* Hooks (the direction a packet travels through the host). */
enum ph_dir {
	PH_DIR_IN = 0,  /* XDP ingress */
	PH_DIR_OUT = 1, /* TC egress */
	PH_DIR_MAX,
};

/*
 * counters: per-CPU array, index PH_COUNTER_IF_IDX(ifslot, dir, reason), the
 * interface slot being PH_IFACE_SLOT(ifindex) of the device the packet
 * crossed: per-interface counters at no extra lookup. Readers fold the
 * slots into PH_COUNTER_IDX(dir, reason) (PH_COUNTER_ENTRIES); userspace
 * zeroes a slot when it attaches an interface no other attached interface
 * shares it with (ifindex values PH_IFACE_SLOTS apart share a slot, and
 * are then reported together).
 */
#define PH_IFACE_SLOTS 64 /* a power of two */
#define PH_IFACE_SLOT(ifindex) ((__u32)(ifindex) & (PH_IFACE_SLOTS - 1))
#define PH_COUNTER_IDX(dir, reason) ((dir) * PH_R_MAX + (reason))
#define PH_COUNTER_ENTRIES (PH_DIR_MAX * PH_R_MAX)
#define PH_COUNTER_IF_IDX(ifslot, dir, reason)                                 \
	((ifslot) * PH_COUNTER_ENTRIES + PH_COUNTER_IDX(dir, reason))
#define PH_COUNTER_IF_ENTRIES (PH_IFACE_SLOTS * PH_COUNTER_ENTRIES)

struct ph_counter {
	__u64 packets;
	__u64 bytes;
};

/* ---------------------------------------------------------------------- */
/* Policy, compiled. Two slots: reload writes the inactive one, then flips */
/* ph_state.active_slot with a single write, so a packet sees one policy.  */
/* ---------------------------------------------------------------------- */
#define PH_SLOTS 2
#define PH_MAX_RULES 16384 /* per slot */
#define PH_MAX_PEERS 65536 /* LPM entries, both slots together */
#define PH_MAX_SETS PH_MAX_RULES /* peer sets per slot (one per service) */
#define PH_PEER_SET_MAX (PH_MAX_PEERS / 2) /* entries of one set's trie */

enum ph_l4 {
	PH_L4_TCP = 0,
	PH_L4_UDP = 1,
	PH_L4_MAX,
};

/*
 * Port tables: one 65536-entry table per (slot, l4, table). The value is a
 * rule index + 1 (0: no rule). O(1) in the number of rules.
 *   IN_DPORT   inbound,  matched on the local (destination) port
 *   IN_SPORT   inbound,  matched on the remote (source) port, e.g. FTP
 *              active data from port 20 on a client host
 *   OUT_DPORT  outbound, matched on the remote (destination) port
 *   OUT_SPORT  outbound, matched on the local (source) port, e.g. an FTP
 *              server's active data from port 20
 */
enum ph_port_table {
	PH_PT_IN_DPORT = 0,
	PH_PT_IN_SPORT = 1,
	PH_PT_OUT_DPORT = 2,
	PH_PT_OUT_SPORT = 3,
	PH_PT_MAX,
};
#define PH_PORT_IDX(slot, l4, table, port)                                    \
	((((__u32)(slot) * PH_L4_MAX + (l4)) * PH_PT_MAX + (table)) * 65536u + \
	 (__u32)(port))
#define PH_PORT_ENTRIES (PH_SLOTS * PH_L4_MAX * PH_PT_MAX * 65536u)

enum ph_action {
	PH_ACT_DROP = 0,
	PH_ACT_ALLOW = 1,
};

/* ph_rule.flags */
#define PH_RF_PEER_ANY (1u << 0)   /* no peer restriction: skip the LPM */
#define PH_RF_FTP_TRACK (1u << 1)  /* FTP control channel: track it */
#define PH_RF_FTPS_RANGE (1u << 2) /* FTPS passive range (listener+session) */
#define PH_RF_FTPS_IMPLICIT (1u << 3) /* implicit FTPS control (990) */
/* Active-data guard (docs/policy.md, "Active data"): made by the compiler,
 * never written, on the active-data source port of a tracked service where
 * no service of the policy names that port. A connection from that port
 * (out on a server, in on a client) that no pinhole admitted passes only
 * if the default allows it and the peer holds an FTPS control session with
 * this address (the data port >= PH_PINHOLE_MIN_PORT): pass_ftps_active;
 * else drop_ftp_active (default allow) or drop_policy (default drop). */
#define PH_RF_ACTIVE_GUARD (1u << 4)

/* rules: array, index slot * PH_MAX_RULES + rule index. */
struct ph_rule {
	__u8 action;  /* enum ph_action */
	__u8 l4;      /* enum ph_l4 */
	__u8 table;   /* enum ph_port_table */
	__u8 pad0;
	__u16 flags;  /* PH_RF_* */
	__u16 service; /* index of the service in the policy (names in userspace) */
	__u16 port_lo; /* host byte order, inclusive */
	__u16 port_hi;
	__u16 peer_set; /* peers index in the slot when !(flags & PH_RF_PEER_ANY) */
	__u16 svc_id;   /* service counter id (svc_ids), 0: not counted */
};

/*
 * peers: array of maps, index PH_PEER_SET_IDX(slot, set). Each entry is the
 * LPM trie of one peer set (made by userspace when it writes the slot), so a
 * lookup walks only that set's prefixes. IPv4 is stored v4-mapped
 * (::ffff:a.b.c.d), so an IPv4 /n is prefixlen 96 + n.
 */
#define PH_PEER_SET_IDX(slot, set) ((slot) * PH_MAX_SETS + (set))
struct ph_peer_key {
	__u32 prefixlen;
	__u8 addr[16]; /* network byte order, v4-mapped for IPv4 */
};

struct ph_peer_val {
	__u8 action; /* PH_ACT_ALLOW, or PH_ACT_DROP for an excluded prefix */
	__u8 pad[3];
};

/*
 * ftp_nat: hash keyed by {slot, service} for the ftp-track services with a
 * `nat-address`: the public addresses this host is reached at and announces
 * (1:1 NAT). An address the control channel names that must be this host's
 * own (227 on a server; PORT/EPRT on a client) may be one of these instead
 * of the control connection's local address; the pinhole stays keyed on
 * the local address and the exact peer. v4-mapped for IPv4.
 */
#define PH_NAT_ADDRS_MAX 8
#define PH_FTP_NAT_MAX 1024 /* entries, both slots */
struct ph_ftp_nat_key {
	__u32 slot;
	__u32 service; /* ph_rule.service of the ftp-track rule */
};
struct ph_ftp_nat {
	__u32 n; /* addresses in addr[] */
	__u32 pad;
	__u8 addr[PH_NAT_ADDRS_MAX][16];
};

/* slot_meta: array [PH_SLOTS]. Per-policy settings. */
struct ph_slot_meta {
	__u8 default_verdict[PH_DIR_MAX]; /* enum ph_action */
	__u8 icmp_echo[PH_DIR_MAX];       /* enum ph_action, echo requests */
	__u32 nrules;
	__u32 ftp_ttl_ms;   /* pinhole lifetime */
	__u32 generation;   /* bumped by every reload */
	__u64 loaded_ns;    /* CLOCK_MONOTONIC when this slot was written */
};

/* Room for a policy path in struct ph_state: Linux's PATH_MAX. */
#define PH_POLICY_PATH_MAX 4096

/* state: array [1]. */
struct ph_state {
	__u32 active_slot;
	__u32 generation;
	__u32 layout_version; /* PH_LAYOUT_VERSION that created the pins */
	__u8 fail_open;       /* copy of ph_load_cfg.fail_open (for status) */
	__u8 pad;
	__u16 failsafe_port;  /* copy of ph_load_cfg.failsafe_port (for status) */
	/* Absolute path of the policy in force (status, show), whole: a path
	 * is at most PATH_MAX - 1 bytes, and longer ones are refused when the
	 * policy is loaded. Written with the flip, in the same update. */
	char policy[PH_POLICY_PATH_MAX];
	/* Build identity of the programs in force: "VERSION
	 * bpf:HASH", HASH a 64-bit FNV-1a of both BPF objects this pinhole
	 * embeds (user/loader.c, ph_build_id). Another build that finds the
	 * instance attached replaces the programs (docs/cli.md, upgrade).
	 * Appended in layout 10. */
	char build[64];
};

/* service_names: array [PH_SLOTS * PH_MAX_RULES], index slot * PH_MAX_RULES
 * + ph_rule.service: the names `stats`, `flows` and bpftool show. */
struct ph_service_name {
	char name[64];
};

/* ---------------------------------------------------------------------- */
/* Flows. Keys are host-oriented: local = this host's address/port, remote */
/* = the peer's, so ingress (local = dst) and egress (local = src) build   */
/* the same key for both directions of a connection.                       */
/* ---------------------------------------------------------------------- */
struct ph_flow_key {
	__u8 local[16];  /* v4-mapped for IPv4 */
	__u8 remote[16];
	__be16 lport;    /* ICMP echo: the identifier; 0 otherwise */
	__be16 rport;
	__u8 proto;      /* IPPROTO_TCP / UDP / ICMP / ICMPV6 */
	__u8 pad[3];
};

enum ph_flow_state {
	PH_FS_NEW = 0,     /* half-open: in half_open only */
	PH_FS_ESTABLISHED = 1,
	PH_FS_CLOSING = 2, /* FIN seen both ways; short timeout */
};

enum ph_flow_origin {
	PH_FO_INBOUND = 0,  /* admitted by inbound policy */
	PH_FO_OUTBOUND = 1, /* opened by this host (TC egress) */
	PH_FO_EXPECT = 2,   /* FTP data connection through a pinhole */
	PH_FO_FTPS = 3,     /* FTPS passive range, verified */
	PH_FO_SOCKET = 4,   /* picked up from a kernel socket (pass_socket) */
};

/* ph_flow.flags */
#define PH_FF_FTP_CTRL (1u << 0)  /* FTP control channel being tracked */
#define PH_FF_FTPS_CTRL (1u << 1) /* encrypted FTP control (FTPS) */
#define PH_FF_FIN_IN (1u << 2)
#define PH_FF_FIN_OUT (1u << 3)
#define PH_FF_INIT_OUT (1u << 4) /* first packet left this host (TC egress) */
/* An FTPS control connection the datapath counts in ftps_peers (ctrl.h):
 * set when the count is taken, cleared when it is given back. */
#define PH_FF_FTPS_COUNTED (1u << 5)
/* A half_open entry made by a TCP SYN: ph_flow.syn_seq holds its sequence
 * number, so a retransmitted SYN (same number) is told from a new
 * connection on the same 4-tuple (another one), which must take its own
 * pinhole or policy check. */
#define PH_FF_SYN_SEQ (1u << 6)

struct ph_flow {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u8 state;  /* enum ph_flow_state */
	__u8 origin; /* enum ph_flow_origin */
	__u8 flags;  /* PH_FF_* */
	__u8 seq_ok; /* 1: seq_in is set (written by ingress only) */
	__u16 rule;  /* rule index + 1 that admitted it (0: none) */
	__u16 svc_id; /* service counter id of that rule (0: none) */
	__u32 session; /* FTP session id for control and data flows */
	union {
		__u32 checked_jiffies; /* flows, datapath-private (low 32 bits
					* of jiffies at the last timeout check);
					* userspace writes 0 */
		__u32 syn_seq; /* half_open with PH_FF_SYN_SEQ: the SYN's
				* sequence number */
	};
	/*
	 * TCP: the peer's sequence space, sampled (docs/datapath.md, "RST
	 * and the sequence window"). seq_in: the end (seq + length, SYN and
	 * FIN counted) of an inbound segment, rewritten only when a segment
	 * ends more than PH_SEQ_STEP past it; ack_out: an acknowledgement
	 * number this host sent, likewise. Separate validity bytes, one per
	 * hook, so that the two hooks never write the same byte.
	 */
	__u32 seq_in;
	__u32 ack_out;
	__u8 ack_ok; /* 1: ack_out is set (written by egress only) */
	__u8 pad1[7];
};

/*
 * The sampling step of ph_flow.seq_in/ack_out: a flow's entry is written
 * once per 64 KiB a direction moves, not per segment. PH_SEQ_JUMP_MAX: a
 * larger move is no TCP window (2^30 is the largest scaled window), so it
 * is not taken (an old segment, or a forged one).
 */
#define PH_SEQ_STEP (1u << 16)
#define PH_SEQ_JUMP_MAX (1u << 30)

/* Idle timeouts (load-time configurable through struct ph_load_cfg). */
#define PH_TCP_EST_TIMEOUT_S 7200
#define PH_TCP_CLOSING_TIMEOUT_S 10
#define PH_HALF_OPEN_TIMEOUT_S 30
#define PH_UDP_TIMEOUT_S 120
#define PH_ICMP_TIMEOUT_S 30

#define PH_FLOWS_MAX_DEFAULT 262144
#define PH_HALF_OPEN_MAX_DEFAULT 65536

/* Fragment tracking: the first fragment's verdict applies to the rest. */
struct ph_frag_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 id;    /* IPv4: 16-bit id; IPv6: 32-bit identification */
	__u8 proto;
	__u8 pad[3];
};
struct ph_frag {
	__u64 created_ns;
	__u8 reason; /* enum ph_reason of the first fragment (a PASS_*) */
	__u8 pad[7];
};
#define PH_FRAG_TIMEOUT_S 30
#define PH_FRAGS_MAX 8192

/* ---------------------------------------------------------------------- */
/* FTP pinholes (expectations). Host-oriented like flows; a port of 0 is a */
/* wildcard (e.g. a passive-mode client connects from any source port).    */
/* ---------------------------------------------------------------------- */
struct ph_expect {
	__u64 deadline_ns; /* CLOCK_MONOTONIC_COARSE (bpf_ktime_get_coarse_ns) */
	__u32 session;
	__u8 dir;          /* enum ph_dir in which the SYN must arrive */
	__u8 pad[3];
};
#define PH_EXPECT_MAX 65536

/*
 * The tracker never opens a pinhole to a local port below this (design
 * invariant 2), so a bare SYN to such a port consults neither half_open nor
 * expect before the policy admits it.
 */
#define PH_PINHOLE_MIN_PORT 1024

/*
 * syn_watch: array of __u64 [2 * 65536], index PH_SYN_WATCH_IDX(kind,
 * local port in host order): CLOCK_MONOTONIC_COARSE until which a bare inbound
 * SYN to a port >= PH_PINHOLE_MIN_PORT must consult
 *   PH_SW_EXPECT     expect: whoever writes an inbound pinhole (dir
 *                    PH_DIR_IN; the datapath or userspace) raises it to the
 *                    pinhole's deadline + PH_SYN_WATCH_GRACE_S, BEFORE
 *                    writing the expect entry;
 *   PH_SW_HALF_OPEN  half_open: the datapath raises it with every TCP
 *                    half_open entry it creates, to the entry's end of
 *                    life + 2 s (and only when that moves it by more than
 *                    1 s, so a busy port's entry is written about once a
 *                    second, not by every connection).
 * 0: never. Elsewhere the SYN goes straight to the policy: a SYN flood
 * against closed high ports costs what one against closed service ports
 * costs, not three hash lookups that cannot match. Values only grow; two
 * writers racing on one element may keep the other's value, older by the
 * race window at most (every writer of a kind adds the same lifetime), and
 * the grace covers that. It also keeps an expired pinhole that nobody has
 * removed yet reported as drop_expect_spent for that long.
 */
enum ph_syn_watch_kind {
	PH_SW_EXPECT = 0,
	PH_SW_HALF_OPEN = 1,
	PH_SW_MAX,
};
#define PH_SYN_WATCH_IDX(kind, port) ((__u32)(kind) * 65536u + (__u32)(port))
#define PH_SYN_WATCH_ENTRIES (PH_SW_MAX * 65536u)
#define PH_SYN_WATCH_GRACE_S 60

/* ---------------------------------------------------------------------- */
/* Attached interfaces (written by userspace; visible to bpftool).          */
/* ---------------------------------------------------------------------- */
struct ph_iface {
	__u32 ifindex;
	__u32 xdp_flags;   /* XDP_FLAGS_DRV_MODE / XDP_FLAGS_SKB_MODE */
	__u32 xdp_prog_id;
	__u32 tc_prog_id;
	__u64 attached_ns;
	char name[16];
	__u32 tc_handle;      /* our egress filter: handle and priority */
	__u16 tc_priority;
	__u8 tc_hook_created; /* 1: we created clsact, so detach destroys it */
	__u8 xdp_dispatcher;  /* 1: xdp_prog_id is a member of libxdp's
			       * dispatcher, not attached to the device */
	__u64 netns_ino;      /* network namespace of ifindex (/proc/self/ns/net) */
	__u8 flags;           /* PH_IFF_* */
	__u8 pad[7];
};
#define PH_IFACES_MAX 64

/*
 * ph_iface.flags. PH_IFF_CSUM_PARTIAL: frames may reach XDP with only the
 * pseudo-header sum in the TCP checksum field, which the stack behind
 * trusts (CHECKSUM_PARTIAL): a veth whose peer's stack left the checksum
 * to "offload". The datapath then takes that value as well as a complete
 * checksum on FTP control segments (docs/ftp-tracking.md, "Checksums").
 */
#define PH_IFF_CSUM_PARTIAL (1u << 0)
/* PH_IFF_RUN: attached by `pinhole run`; a later run may adopt it (after
 * the first one died: it holds the tracker lock while it lives). */
#define PH_IFF_RUN (1u << 1)

/* ---------------------------------------------------------------------- */
/* Service counters. Userspace gives every service name a counter id that  */
/* stays the same across reloads while the name exists in either slot     */
/* (svc_ids[id] holds the name), and writes it into each of its rules     */
/* (ph_rule.svc_id); flows inherit it, so pass_flow traffic is counted    */
/* under the service that admitted the connection. Id 0: not counted.      */
/* svc_counters: per-CPU array, index PH_SVC_IDX(dir, drop, id).           */
/* ---------------------------------------------------------------------- */
#define PH_SVC_MAX 4096
#define PH_SVC_IDX(dir, drop, id)                                              \
	(((__u32)(dir) * 2 + (__u32)(drop)) * PH_SVC_MAX + (__u32)(id))
#define PH_SVC_COUNTER_ENTRIES (PH_DIR_MAX * 2 * PH_SVC_MAX)

struct ph_svc_name {
	char name[64]; /* "": free */
	__u32 generation; /* ph_state.generation that last used it */
	__u32 pad;
};

/* ---------------------------------------------------------------------- */
/* Monitor (pinhole monitor): events into the `monitor` ring buffer, only  */
/* while a monitor listens. monitor_ctl[0] is written by the monitor; the  */
/* datapath emits while deadline_ns (CLOCK_MONOTONIC_COARSE) lies ahead,   */
/* and clears `on` itself once it has passed, so a monitor that died costs */
/* one array lookup per packet again within a refresh period.              */
/* ---------------------------------------------------------------------- */
#define PH_MONITOR_RINGBUF_SIZE (256 * 1024)
#define PH_MON_REFRESH_S 1 /* the monitor rewrites the deadline this often */
#define PH_MON_LEASE_S 5   /* ... PH_MON_LEASE_S ahead */

/* monitor_ctl.what */
#define PH_MON_W_FLOW (1u << 0)    /* new connections admitted */
#define PH_MON_W_PINHOLE (1u << 1) /* pinholes opened and used */
#define PH_MON_W_DROP (1u << 2)    /* drops, sampled: token bucket */

struct ph_monitor_ctl {
	__u32 on;
	__u32 what;       /* PH_MON_W_* */
	__u64 deadline_ns;
	__u32 drop_rate;  /* drop events per second per CPU */
	__u32 drop_burst; /* bucket depth */
};

/* monitor_tb: per-CPU array [1], the drop sampler's bucket. */
struct ph_monitor_tb {
	__u64 last_ns;   /* last refill */
	__u64 tokens_x;  /* tokens * PH_NSEC_PER_SEC (fixed point) */
	__u64 suppressed; /* drops not reported since the last drop event */
};

enum ph_mon_type {
	PH_MON_FLOW_NEW = 1, /* a connection admitted (its opening packet) */
	PH_MON_PINHOLE_OPEN = 2, /* the datapath's FTP parser opened one */
	PH_MON_PINHOLE_USED = 3, /* a connection admitted through one */
	PH_MON_DROP = 4,
};

struct ph_mon_event {
	__u64 ts_ns;   /* CLOCK_MONOTONIC_COARSE */
	__u8 type;     /* enum ph_mon_type */
	__u8 dir;      /* enum ph_dir */
	__u8 reason;   /* enum ph_reason */
	__u8 proto;    /* IPPROTO_*; 0: packet not parsed */
	__u16 svc_id;  /* service counter id (svc_ids), 0: none */
	__u8 family;   /* 4 or 6 */
	__u8 tcp_flags;
	__u32 ifindex;
	__u32 len;     /* frame / skb length */
	__u64 suppressed; /* PH_MON_DROP: drops not reported before this one */
	__u8 src[16];  /* network order, v4-mapped; PINHOLE_OPEN: remote */
	__u8 dst[16];  /* PINHOLE_OPEN: local */
	__be16 sport;  /* PINHOLE_OPEN: remote port (0: any) */
	__be16 dport;  /* PINHOLE_OPEN: local port (0: any) */
	__u32 session; /* PINHOLE_*: FTP session id */
	__u64 deadline_ns; /* PINHOLE_OPEN: expiry */
};

/* ---------------------------------------------------------------------- */
/* Load-time options: `const volatile struct ph_load_cfg ph_cfg` in each   */
/* BPF object's .rodata, set by userspace before load.                     */
/* ---------------------------------------------------------------------- */
struct ph_load_cfg {
	__u8 fail_open;        /* on an internal lookup failure: pass (1) or drop (0) */
	__u8 track_ftp;        /* report FTP control bytes to userspace */
	__u16 failsafe_port;   /* TCP port always admitted inbound; 0: none */
	__u32 tcp_est_timeout_s;
	__u32 tcp_closing_timeout_s;
	__u32 half_open_timeout_s;
	__u32 udp_timeout_s;
	__u32 icmp_timeout_s;
};

#endif /* PINHOLE_PINHOLE_H */
