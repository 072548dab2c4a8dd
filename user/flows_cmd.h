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

/* Entries of flows and half_open that have expired but are still in the
 * maps (for status). 0 or -errno. */
int ph_flows_count_expired(const struct ph_instance *inst, __u64 *flows,
			   __u64 *half_open);

#endif /* PH_USER_FLOWS_CMD_H */
