/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Running as a service: capability checks (instead of uid 0), the systemd
 * notification protocol (sd_notify via libsystemd), and whether stderr
 * goes to journald.
 */
#ifndef PH_USER_SERVICE_H
#define PH_USER_SERVICE_H

#include <stdbool.h>

/* Capabilities a command needs (PH_CAPS_*). CAP_SYS_ADMIN stands in for
 * CAP_BPF and CAP_PERFMON, as in the kernel (bpf_capable(),
 * perfmon_capable()). */
enum {
	PH_NEED_BPF = 1 << 0,     /* open pins, read/write maps */
	PH_NEED_NET = 1 << 1,     /* attach/detach XDP and TC */
	PH_NEED_PERFMON = 1 << 2, /* load the programs (verifier) */
};

/* Message naming the missing capabilities + PH_EXIT_ENV, or PH_EXIT_OK. */
int ph_caps_check(const char *cmd, unsigned int need);

/* sd_notify(3) when NOTIFY_SOCKET is set; a no-op otherwise. */
void ph_notify_ready(const char *status);
void ph_notify_reloading(void);
void ph_notify_stopping(void);
void ph_notify_status(const char *status);

#endif /* PH_USER_SERVICE_H */
