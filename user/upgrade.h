/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * In-place upgrade of an instance that carries interfaces to this build's
 * programs, without a moment where an interface is unfiltered and without
 * losing its flows (docs/cli.md, "upgrade").
 */
#ifndef PH_USER_UPGRADE_H
#define PH_USER_UPGRADE_H

#include <stdbool.h>
#include <linux/types.h>

#include "loader.h"
#include "policy.h"

struct ph_upgrade_result {
	char from_build[64]; /* "" for a layout without a recorded build */
	__u32 from_layout;
	bool migrated;       /* another layout: new maps, entries converted */
	int nifaces;         /* interfaces whose programs were replaced */
	__u64 entries;       /* entries carried into the new maps (migrated) */
	__u32 generation;    /* of the policy installed (migrated) */
};

/*
 * inst: open (ph_instance_open), caller holds the CLI lock. Same layout:
 * loads this build's programs against the pinned maps, swaps them on every
 * live interface (ph_iface_replace), repins them, records the build.
 * Another layout: builds a complete new instance in PIN/upgrading with pol
 * installed (required then), copies and converts the flow-like tables,
 * swaps the programs, copies what the old programs added meanwhile, then
 * moves the new pins over the old ones. On failure nothing changed (the
 * interfaces keep the old programs). On success inst is reopened on the
 * new pins. Returns a PH_EXIT_* code after a message.
 */
int ph_upgrade(struct ph_instance *inst, const struct ph_policy *pol,
	       struct ph_upgrade_result *res);

#endif /* PH_USER_UPGRADE_H */
