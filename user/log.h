/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Messages for the CLI: every line starts with "pinhole: " and goes to
 * stderr. pr_warn for errors (one line that says what to do), pr_info for
 * notices, pr_debug only with -v. libbpf's own output is routed here and
 * is silent unless -v (its debug level only with -vv).
 */
#ifndef PH_USER_LOG_H
#define PH_USER_LOG_H

#include <stdbool.h>

/* verbosity: 0 quiet, 1 (-v) debug logs + libbpf warnings and info,
 * 2 (-vv) libbpf debug too. */
void ph_log_init(int verbosity);
bool ph_log_verbose(void);
void ph_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

enum { PH_LOG_WARN, PH_LOG_INFO, PH_LOG_DEBUG, PH_LOG_NOTICE };

/* One line "pinhole: LINE" at level (the tracker's log). Under journald
 * (JOURNAL_STREAM names stderr) every line carries a "<N>" priority:
 * warnings <3>, notices <4>, info <6>, debug <7>. */
void ph_log_line(int level, const char *line);
bool ph_log_journal(void);
/* "<N>" for level under journald, else "". */
const char *ph_log_prio(int level);

#define pr_warn(...) ph_log(PH_LOG_WARN, __VA_ARGS__)
#define pr_info(...) ph_log(PH_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) ph_log(PH_LOG_DEBUG, __VA_ARGS__)

#endif /* PH_USER_LOG_H */
