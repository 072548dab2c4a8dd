/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * FTPS control sessions: the session tracker's reconciliation of
 * `ftps_peers` (include/pinhole/ctrl.h, docs/tracker.md "FTPS sessions").
 *
 * The datapath counts FTPS control connections per {peer, local address}
 * synchronously, but a flow can leave the flow table without a close (LRU
 * eviction, idle expiry nobody noticed), and then its count would stay.
 * The tracker is the authority: every second it recomputes the counts
 * from the live flow table and rewrites the entries that disagree.
 *
 * A disagreement is corrected only when it is stable: seen twice in a row,
 * with the same numbers, the entry unchanged (same last_ns) in between. A
 * count the datapath is taking or giving back right now (between its map
 * update and its flow flag, a few instructions) is thus never "corrected"
 * into a wrong value.
 *
 * Two layers, like tracker.h:
 *   core    ph_ftps_rec_*(), ph_ftps_reconcile(): pure, arrays in,
 *           corrections out through struct ph_ftps_ops.
 *   maps    ph_ftps_read_peers(), ph_ftps_read_live(), ph_ftps_pass():
 *           the pinned maps.
 */
#ifndef PH_USER_FTPS_H
#define PH_USER_FTPS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>
#include <pinhole/ctrl.h>

/* One ftps_peers entry as read. */
struct ph_ftps_entry {
	struct ph_ftps_peer_key key;
	__u32 refs;
	__u64 last_ns;
};

/* Log lines per pass; further corrections are summed up in one line. */
#define PH_FTPS_LOG_MAX 16

struct ph_ftps_ops {
	/* Set key's count to refs (> 0). existed: the entry was there when
	 * read (replace it only), else create it only. 0 or -errno. */
	int (*put)(void *ctx, const struct ph_ftps_peer_key *k, __u32 refs,
		   bool existed);
	/* Delete key. 0 or -errno (-ENOENT: gone meanwhile). */
	int (*del)(void *ctx, const struct ph_ftps_peer_key *k);
	/* One line without a newline; level: enum ph_trk_log_level. */
	void (*log)(void *ctx, int level, const char *line);
};

struct ph_ftps_rec;

struct ph_ftps_rec *ph_ftps_rec_new(const struct ph_ftps_ops *ops, void *ctx);
void ph_ftps_rec_free(struct ph_ftps_rec *r);

/*
 * One pass. map: the nmap entries of ftps_peers; live: one key per live
 * FTPS control connection (repeated for several connections of a pair).
 * Both arrays are sorted in place. Corrects what disagreed the same way
 * in the previous pass too, remembers the rest for the next one. Returns
 * the number of corrections written, or -ENOMEM.
 */
int ph_ftps_reconcile(struct ph_ftps_rec *r, struct ph_ftps_entry *map,
		      size_t nmap, struct ph_ftps_peer_key *live, size_t nlive);

/* Corrections since ph_ftps_rec_new(). */
__u64 ph_ftps_fixed(const struct ph_ftps_rec *r);

/* ---------------------------------------------------------------- maps */

/* Reads every entry of ftps_peers (consistent values: BPF_F_LOCK) into a
 * malloc'd array. Returns the count or -errno. */
int ph_ftps_read_peers(int fd, struct ph_ftps_entry **out);

/*
 * Does a live control connection count as FTPS although the datapath did
 * not count it? (The tracker saw its 234, or its implicit start, which the
 * datapath missed: a sequence gap, a full table.) NULL: only the
 * datapath's PH_FF_FTPS_COUNTED counts.
 */
typedef bool (*ph_ftps_known_fn)(void *ctx, const struct ph_flow_key *k,
				 const struct ph_flow *f);

/*
 * The pairs of the live FTPS control connections in flows: established,
 * not idle for longer than the TCP timeout at @now (the datapath's clock),
 * and counted by the datapath or known to the tracker. One key per
 * connection, in a malloc'd array. Returns the count or -errno.
 */
int ph_ftps_read_live(int flows_fd, __u64 now, ph_ftps_known_fn known,
		      void *ctx, struct ph_ftps_peer_key **out);

/* Is this flow a live FTPS control connection (as ph_ftps_read_live())? */
bool ph_ftps_flow_live(const struct ph_flow_key *k, const struct ph_flow *f,
		       __u64 now, ph_ftps_known_fn known, void *ctx);

/* ops for the real ftps_peers: ctx is a struct ph_ftps_maps. */
struct ph_ftps_maps {
	int peers_fd;
	void (*log)(void *ctx, int level, const char *line); /* may be NULL */
	void *log_ctx;
};
extern const struct ph_ftps_ops ph_ftps_map_ops;

/*
 * A whole pass against the pinned maps: read ftps_peers, read flows (only
 * if ftps_peers has entries or @any_known says the tracker knows FTPS
 * sessions: a host without FTPS pays nothing), reconcile. Returns the
 * corrections or -errno.
 */
int ph_ftps_pass(struct ph_ftps_rec *r, int peers_fd, int flows_fd,
		 __u64 now, ph_ftps_known_fn known, void *ctx,
		 bool any_known);

#endif /* PH_USER_FTPS_H */
