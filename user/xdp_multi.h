/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Attaching pinhole's XDP ingress program as a member of libxdp's
 * dispatcher, so other XDP programs (xdp-filter, xdp-loader ...) share the
 * hook with it (docs/cli.md, "Sharing the XDP hook").
 */
#ifndef PH_USER_XDP_MULTI_H
#define PH_USER_XDP_MULTI_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "loader.h"

/* Our run priority in the dispatcher (lower runs first); the same as the
 * object's .xdp_run_config (bpf/xdp_ingress.bpf.c). */
#define PH_XDP_RUN_PRIO 5

/* Attach through the dispatcher unless PINHOLE_XDP_DISPATCHER=0. */
bool ph_xdp_dispatcher_wanted(void);

/* Load the ingress object as a dispatcher member and attach it to ifindex
 * (native, or generic; auto tries native first). Fills rec->xdp_prog_id,
 * xdp_flags and xdp_dispatcher. 0, or a negative libxdp/errno code with
 * why filled (no message printed: the caller falls back). */
int ph_xdp_dispatcher_attach(const struct ph_instance *inst, const char *name,
			     int ifindex, enum ph_xdp_mode mode,
			     struct ph_iface *rec, char *why, size_t len);

/* Is prog_id a member of ifindex's dispatcher? *attach_mode: XDP_ATTACHED_*. */
bool ph_xdp_dispatcher_has(int ifindex, __u32 prog_id, __u8 *attach_mode);

/* Remove member prog_id from ifindex's dispatcher (libxdp removes the
 * dispatcher with its last member). 0, -ENOENT (not there) or -errno. */
int ph_xdp_dispatcher_detach(int ifindex, __u32 prog_id);

/* Members of ifindex's dispatcher: their names ("a, b") and whether one
 * is a pinhole program. Returns their count, -ENOENT (no XDP program) or
 * -EINVAL (a program that is not a dispatcher). */
int ph_xdp_dispatcher_members(int ifindex, char *names, size_t len,
			      bool *has_pinhole);

#endif /* PH_USER_XDP_MULTI_H */
