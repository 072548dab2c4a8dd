// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <bpf/libbpf.h>

#include "log.h"

static int verbose;
static bool journal; /* stderr is a journald stream: "<N>" priority prefixes */

/* systemd sets JOURNAL_STREAM=DEV:INODE for the stream it connected to
 * stdout/stderr; it applies only if stderr still is that stream (not
 * redirected by a script in between). sd-daemon(3) "<N>" prefixes. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	return !fstat(2, &st) && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

const char *ph_log_prio(int level)
{
	if (!journal)
		return "";
	switch (level) {
	case PH_LOG_WARN: return "<3>";  /* LOG_ERR: our warnings are errors */
	case PH_LOG_NOTICE: return "<4>"; /* LOG_WARNING */
	case PH_LOG_INFO: return "<6>";
	}
	return "<7>";
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (!verbose || (level == LIBBPF_DEBUG && verbose < 2))
		return 0;
	fprintf(stderr, "%slibbpf: %s: ", ph_log_prio(level == LIBBPF_WARN ? PH_LOG_NOTICE : PH_LOG_DEBUG),
		level == LIBBPF_WARN ? "warn" :
		level == LIBBPF_INFO ? "info" : "debug");
	return vfprintf(stderr, fmt, ap);
}

void ph_log_init(int v)
{
	verbose = v;
	journal = stderr_is_journal();
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
	fputs(ph_log_prio(level), stderr);
	fputs(level == PH_LOG_DEBUG ? "pinhole: debug: " : "pinhole: ",
	      stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void ph_log_line(int level, const char *line)
{
	fprintf(stderr, "%spinhole: %s\n", ph_log_prio(level), line);
}

bool ph_log_journal(void)
{
	return journal;
}
