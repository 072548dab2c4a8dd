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

/* Number of entries of a hash/LRU map. 0 or -errno. */
int ph_map_count(int fd, size_t key_size, __u64 *count);

typedef int (*ph_flow_fn)(const struct ph_flow_key *key,
			  const struct ph_flow *flow, bool half_open,
			  void *ctx);
/* Calls fn for every entry of flows, then of half_open; stops early if fn
 * returns non-zero. 0 or -errno. */
int ph_flows_foreach(const struct ph_instance *inst, ph_flow_fn fn, void *ctx);

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
