/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * `pinhole show`: the policy in force, read back from the maps and printed
 * in the policy language (docs/cli.md, docs/policy.md "Normal form").
 */
#ifndef PH_USER_SHOW_H
#define PH_USER_SHOW_H

#include <stdbool.h>
#include <stddef.h>

#include "loader.h"
#include "maps_io.h"
#include "policy.h"

/* The active slot of v as a parsed policy (settings and services with
 * their ranges and peers; no rules or port table). 0, or -errno with why
 * filled. */
int ph_policy_read_back(const struct ph_instance *inst,
			const struct ph_view *v, struct ph_policy *pol,
			char *why, size_t len);

/* The command: text (the normal form) or JSON (check -j's document).
 * Returns a PH_EXIT_* code after a message. */
int ph_cmd_show(const struct ph_instance *inst, bool json);

#endif /* PH_USER_SHOW_H */
