/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Prometheus text exposition (format 0.0.4) of pinhole's counters:
 * docs/observability.md lists every metric. The formatter works on a
 * snapshot (struct ph_prom_data) so it can be tested without maps.
 */
#ifndef PH_USER_PROM_H
#define PH_USER_PROM_H

#include <stdio.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>

#include "counters.h"
#include "loader.h"

#define PH_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct ph_prom_data {
	const char *pin_dir;
	__u32 generation;
	int active_slot;
	struct ph_counter reasons[PH_COUNTER_ENTRIES]; /* PH_COUNTER_IDX */
	const struct ph_svc_stat *svc;
	int nsvc;
	const struct ph_svc_stat *none; /* may be NULL */
	const struct ph_iface_stat *ifs;
	int nifs;
	/* table entries: flows, half_open, expect; < 0: unknown */
	long long flows, half_open, expect;
};

/* Writes @s as a label value: backslash, double quote and newline
 * escaped. */
void ph_prom_label_value(FILE *out, const char *s);

/* The whole exposition. Returns 0, or -EIO if writing failed. */
int ph_prom_write(FILE *out, const struct ph_prom_data *d);

/* Reads the maps of @inst into @d (owning svc/ifs: ph_prom_data_free). 0 or
 * -errno. */
int ph_prom_data_read(const struct ph_instance *inst,
		      struct ph_prom_data *d);
void ph_prom_data_free(struct ph_prom_data *d);

#endif /* PH_USER_PROM_H */
