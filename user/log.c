// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <bpf/libbpf.h>

#include "log.h"

static int verbose;

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (!verbose || (level == LIBBPF_DEBUG && verbose < 2))
		return 0;
	fprintf(stderr, "libbpf: %s: ",
		level == LIBBPF_WARN ? "warn" :
		level == LIBBPF_INFO ? "info" : "debug");
	return vfprintf(stderr, fmt, ap);
}

void ph_log_init(int v)
{
	verbose = v;
	libbpf_set_print(libbpf_print);
}

bool ph_log_verbose(void)
{
	return verbose > 0;
}

void ph_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (level == PH_LOG_DEBUG && !verbose)
		return;
	fputs(level == PH_LOG_DEBUG ? "pinhole: debug: " : "pinhole: ",
	      stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
