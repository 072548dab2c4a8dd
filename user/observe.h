/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Observability commands (docs/observability.md): stats --by
 * service|iface, stats --prometheus, exporter, monitor, explain. main.c
 * parses the options into struct ph_obs_opts and opens the instance.
 */
#ifndef PH_USER_OBSERVE_H
#define PH_USER_OBSERVE_H

#include <stdbool.h>
#include <linux/types.h>

#include "loader.h"

struct ph_obs_opts {
	const char *by;       /* stats --by reason|service|iface */
	bool prometheus;      /* stats --prometheus */
	const char *listen;   /* exporter --listen ADDR:PORT */
	const char *textfile; /* exporter --textfile PATH */
	__u32 interval_s;     /* exporter --textfile: rewrite period */
	const char *events;   /* monitor --events flow,pinhole,drop */
	__u32 drop_rate;      /* monitor --drop-rate N (per s per CPU) */
	__u32 drop_burst;     /* monitor --drop-burst N */
	__u32 count;          /* monitor --count N: exit after N events */
	__u32 duration_s;     /* monitor --duration S: exit after S s */
};

#define PH_OBS_DEFAULT_INTERVAL_S 15
#define PH_OBS_DEFAULT_DROP_RATE 10
#define PH_OBS_DEFAULT_DROP_BURST 20

/* stats --by service|iface, or --prometheus (inst open and compatible). */
int ph_obs_stats(const struct ph_instance *inst, const struct ph_obs_opts *o,
		 bool json);

/* exporter: serves or writes the exposition of pin_dir until SIGINT or
 * SIGTERM, opening the instance afresh for every scrape. */
int ph_obs_exporter(const char *pin_dir, const struct ph_obs_opts *o);

/* monitor: events until SIGINT/SIGTERM, --count or --duration. */
int ph_obs_monitor(const struct ph_instance *inst, const struct ph_obs_opts *o,
		   bool json);

/* explain PACKET-DESCRIPTION (argv). */
int ph_obs_explain(const struct ph_instance *inst, int argc, char **argv,
		   bool json);

#endif /* PH_USER_OBSERVE_H */
