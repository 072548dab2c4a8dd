/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading and writing the pinned maps of an instance: install a compiled
 * policy into the inactive slot and flip to it with one write; read
 * counters, flows and fill levels for status/stats/flows.
 */
#ifndef PH_USER_MAPS_IO_H
#define PH_USER_MAPS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>

#include "loader.h"
#include "policy.h"

/* Policy state as the kernel sees it. */
struct ph_view {
	struct ph_state st;
	struct ph_slot_meta meta[PH_SLOTS];
};

/* Returns 0 or -errno. */
int ph_view_read(const struct ph_instance *inst, struct ph_view *v);

/* Write pol into the inactive slot (ports, rules, service names, peers,
 * slot_meta), then flip state[0] in one write, then drop the old slot's
 * peers. Flows are untouched. Returns a PH_EXIT_* code after a message;
 * on error the old policy stays in force. */
int ph_policy_install(struct ph_instance *inst, const struct ph_policy *pol,
		      __u32 *generation);

/* counters summed over CPUs into sum[PH_COUNTER_ENTRIES]. 0 or -errno. */
int ph_counters_read(const struct ph_instance *inst, struct ph_counter *sum);

/* The in-kernel FTP parser's per-CPU counters (pin `ftp_dp_stats` of
 * pin_dir) summed over CPUs. 0 or -errno. */
struct ph_ftp_dp_stats;
int ph_ftp_dp_stats_read(const char *pin_dir, struct ph_ftp_dp_stats *sum);

/* vals[0..n) from keys first..first+n of an array map: batched, one
 * lookup per element where batches are missing. 0 or -errno. */
int ph_array_read(int fd, __u32 first, void *vals, __u32 n, size_t vsize);

/* Bytes waiting in the BPF ring buffer pinned as pin_dir/name (written by
 * the datapath, not yet read by a consumer) and its size. 0 or -errno. */
int ph_ringbuf_fill(const char *pin_dir, const char *name, __u64 *used,
		    __u32 *size);

/*
 * Every entry of a hash/LRU map, once: BPF_MAP_LOOKUP_BATCH (a bucket at a
 * time, so eviction and insertion during the walk neither restart nor
 * lengthen it), or, without batch support, get_next_key bounded to
 * max_entries + 16 steps. key_size, and value_size unless 0, must be the
 * map's (-EINVAL otherwise; per-CPU maps too). fn gets the key and
 * (value_size > 0) the value;
 * a non-zero return stops the walk and is returned. deadline_ns (0: none,
 * CLOCK_MONOTONIC) stops it early. ws: batches, entries seen, whether the
 * walk was cut short (deadline, or churn past the key walk's bound).
 * Keys and values at most 128 bytes. 0 or -errno.
 */
struct ph_walk_stats {
	__u64 seen, batches;
	bool partial;
};
typedef int (*ph_walk_fn)(const void *key, const void *val, void *ctx);
int ph_map_walk(int fd, size_t key_size, size_t value_size, __u32 max_entries,
		__u64 deadline_ns, ph_walk_fn fn, void *ctx,
		struct ph_walk_stats *ws);

/* What one count or listing may take (status must answer under a flood). */
#define PH_WALK_BUDGET_NS (400ull * 1000000ull)

/* Entries of a hash/LRU map, at most max_entries (a table holds no more;
 * a count above it is churn during the walk). *partial (may be NULL):
 * the walk ran out of PH_WALK_BUDGET_NS. 0 or -errno. */
int ph_map_count(int fd, size_t key_size, __u32 max_entries, __u64 *count,
		 bool *partial);

typedef int (*ph_flow_fn)(const struct ph_flow_key *key,
			  const struct ph_flow *flow, bool half_open,
			  void *ctx);
/* Calls fn for every entry of flows, then of half_open (each table at most
 * its size, ph_map_walk()); stops early if fn returns non-zero. 0 or
 * -errno. */
int ph_flows_foreach(const struct ph_instance *inst, ph_flow_fn fn, void *ctx);
/* ... within budget_ns for both tables (0: no limit); *partial: cut short. */
int ph_flows_foreach_budget(const struct ph_instance *inst, ph_flow_fn fn,
			    void *ctx, __u64 budget_ns, bool *partial);

/* Name of the service that admitted the flow, per the policy that was in
 * force when it was created: "-" (none recorded) or "?" (that policy has
 * since been overwritten). */
void ph_flow_service(const struct ph_instance *inst, const struct ph_view *v,
		     const struct ph_flow *flow, char *buf, size_t len);

/* Before an inbound pinhole (dir PH_DIR_IN) to local port @lport is
 * written into expect: raise its syn_watch element (fd @watch_fd, index
 * PH_SYN_WATCH_IDX(PH_SW_EXPECT, port)) to @deadline_ns +
 * PH_SYN_WATCH_GRACE_S, or the datapath will not look for it. 0 or
 * -errno. */
int ph_syn_watch_raise(int watch_fd, __be16 lport, __u64 deadline_ns);

#endif /* PH_USER_MAPS_IO_H */
