// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "service.h"
#include "util.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool has_cap(const struct __user_cap_data_struct d[2], int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

/* Kernels before 5.8 have no CAP_BPF/CAP_PERFMON: CAP_SYS_ADMIN then. */
static bool kernel_knows(int cap)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
	int last = CAP_BPF;

	if (f) {
		if (fscanf(f, "%d", &last) != 1)
			last = CAP_BPF;
		fclose(f);
	}
	return cap <= last;
}

int ph_caps_check(const char *cmd, unsigned int need)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2] = {};
	char missing[96] = "", needs[96] = "";
	bool sys_admin;

	if (syscall(SYS_capget, &h, d)) {
		pr_warn("cannot read the capabilities of this process (capget): %m");
		return PH_EXIT_ENV;
	}
	sys_admin = has_cap(d, CAP_SYS_ADMIN);
#define NEED(bit, cap, name, alt)                                               \
	do {                                                                    \
		if (!(need & (bit)))                                            \
			break;                                                  \
		strcat(needs, needs[0] ? ", " name : name);                     \
		if (!(has_cap(d, cap) && kernel_knows(cap)) && !(alt))          \
			strcat(missing, missing[0] ? ", " name : name);         \
	} while (0)
	NEED(PH_NEED_BPF, CAP_BPF, "CAP_BPF", sys_admin);
	NEED(PH_NEED_NET, CAP_NET_ADMIN, "CAP_NET_ADMIN", false);
	NEED(PH_NEED_PERFMON, CAP_PERFMON, "CAP_PERFMON", sys_admin);
#undef NEED
	if (!missing[0])
		return PH_EXIT_OK;
	pr_warn("%s needs %s (missing: %s; CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON): run as root (try sudo) or grant them, e.g. AmbientCapabilities= in a unit",
		cmd, needs, missing);
	return PH_EXIT_ENV;
}

static void notify(const char *msg)
{
	int r = sd_notify(0, msg);

	if (r < 0)
		pr_debug("sd_notify: %s", strerror(-r));
}

void ph_notify_ready(const char *status)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status);
	notify(buf);
}

void ph_notify_reloading(void)
{
	struct timespec ts;
	char buf[96];

	/* MONOTONIC_USEC: Type=notify-reload (systemd 253) wants it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull +
			 (unsigned long long)ts.tv_nsec / 1000);
	notify(buf);
}

void ph_notify_stopping(void)
{
	notify("STOPPING=1");
}

void ph_notify_status(const char *status)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "STATUS=%s", status);
	notify(buf);
}
