/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * `pinhole flows`: list, delete or flush the entries of flows and
 * half_open, with the filters of flow_filter.h (docs/cli.md, "flows").
 */
#ifndef PH_USER_FLOWS_CMD_H
#define PH_USER_FLOWS_CMD_H

#include <stdbool.h>
#include <linux/types.h>

#include "loader.h"

/* argv: [delete|flush] FILTER... Delete and flush change the instance:
 * the caller holds its lock. Returns a PH_EXIT_* code after a message. */
int ph_cmd_flows(const struct ph_instance *inst, bool json, int argc,
		 char **argv);

/* Entries of flows ([0]) and half_open ([1]), and of those the ones that
 * have expired but are still in the map (for status), in one walk, each
 * at most its table's size, within PH_WALK_BUDGET_NS (*partial: cut
 * short; may be NULL). 0 or -errno. */
int ph_flows_count(const struct ph_instance *inst, __u64 entries[2],
		   __u64 expired[2], bool *partial);

#endif /* PH_USER_FLOWS_CMD_H */
