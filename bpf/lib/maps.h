/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of pinhole, defined once. Both BPF objects (xdp_ingress and
 * tc_egress) include this file; maps are pinned by name under the pin
 * directory, so the second object to load reuses the first one's maps.
 * Struct layouts live in include/pinhole/pinhole.h.
 */
#ifndef PH_BPF_MAPS_H
#define PH_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <pinhole/pinhole.h>
#include <pinhole/ctrl.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ph_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PH_SLOTS);
	__type(key, __u32);
	__type(value, struct ph_slot_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} slot_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PH_PORT_ENTRIES);
	__type(key, __u32);
	__type(value, __u16);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PH_SLOTS * PH_MAX_RULES);
	__type(key, __u32);
	__type(value, struct ph_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PH_SLOTS * PH_MAX_RULES);
	__type(key, __u32);
	__type(value, struct ph_service_name);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} service_names SEC(".maps");

/* nat-address of ftp-track services, per slot (pinhole.h). Written by
 * the loader with the slot; read by the FTP parsers. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PH_FTP_NAT_MAX);
	__type(key, struct ph_ftp_nat_key);
	__type(value, struct ph_ftp_nat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ftp_nat SEC(".maps");

/* One LPM trie per peer set: a lookup walks only the set's own prefixes,
 * whatever the number of sets. Every inner trie has this one definition
 * (userspace creates them alike), so no BPF_F_INNER_MAP is needed. */
struct ph_peer_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PH_PEER_SET_MAX);
	/* sizes rather than __type(): with __type() libbpf 1.1 could not
	 * size the key of this inner definition ("can't determine key size") */
	__uint(key_size, sizeof(struct ph_peer_key));
	__uint(value_size, sizeof(struct ph_peer_val));
	__uint(map_flags, BPF_F_NO_PREALLOC);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PH_SLOTS * PH_MAX_SETS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ph_peer_trie);
} peers SEC(".maps");

/* Confirmed flows only (handshake completed / reply seen): a flood of new
 * connections lands in half_open and cannot evict these. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PH_FLOWS_MAX_DEFAULT);
	__type(key, struct ph_flow_key);
	__type(value, struct ph_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PH_HALF_OPEN_MAX_DEFAULT);
	__type(key, struct ph_flow_key);
	__type(value, struct ph_flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} half_open SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PH_FRAGS_MAX);
	__type(key, struct ph_frag_key);
	__type(value, struct ph_frag);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} frags SEC(".maps");

/* Pinholes are never evicted by traffic: a plain hash, managed by the
 * session tracker; a full table refuses new pinholes (counted). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PH_EXPECT_MAX);
	__type(key, struct ph_flow_key);
	__type(value, struct ph_expect);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} expect SEC(".maps");

/* Per local port: may a bare SYN find a pinhole or a half-open entry? */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PH_SYN_WATCH_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} syn_watch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PH_COUNTER_IF_ENTRIES);
	__type(key, __u32);
	__type(value, struct ph_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

/* Per service counter id (pinhole.h, "Service counters"). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PH_SVC_COUNTER_ENTRIES);
	__type(key, __u32);
	__type(value, struct ph_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} svc_counters SEC(".maps");

/* Written by userspace only: the service name of each counter id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PH_SVC_MAX);
	__type(key, __u32);
	__type(value, struct ph_svc_name);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} svc_ids SEC(".maps");

/* pinhole monitor (pinhole.h, "Monitor"): its own ring, apart from the FTP
 * tracker's events, and written only while a monitor listens. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PH_MONITOR_RINGBUF_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} monitor SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ph_monitor_ctl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} monitor_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ph_monitor_tb);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} monitor_tb SEC(".maps");

/* Written by userspace only: which interfaces carry this instance. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PH_IFACES_MAX);
	__type(key, __u32);
	__type(value, struct ph_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ifaces SEC(".maps");

/* FTP control-channel tracking (include/pinhole/ctrl.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PH_EVENTS_RINGBUF_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/* Written by the session tracker only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PH_FTP_CTRL_MAX);
	__type(key, struct ph_flow_key);
	__type(value, struct ph_ftp_session_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ftp_sessions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ph_ftp_totals);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ftp_totals SEC(".maps");

/* The datapath's per-connection FTP parser state (ph_ftp_ctrl carries a
 * spin lock). Not preallocated: entries exist only for live control
 * connections, and a CPU still holding one that another CPU deleted
 * writes to memory RCU keeps alive, not to a reused entry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PH_FTP_CTRL_MAX);
	__type(key, struct ph_flow_key);
	__type(value, struct ph_ftp_ctrl);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ftp_ctrl SEC(".maps");

/* Live FTPS control sessions by {peer, local address}, for ftps-range
 * (include/pinhole/ctrl.h). A plain hash: an LRU could evict a live
 * session's entry and so refuse its data connections; a full table
 * leaves a new session uncounted instead (ftps_full), which fails closed
 * too, but visibly. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PH_FTPS_PEERS_MAX);
	__type(key, struct ph_ftps_peer_key);
	__type(value, struct ph_ftps_peer);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ftps_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ph_ftp_dp_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ftp_dp_stats SEC(".maps");

#endif /* PH_BPF_MAPS_H */
