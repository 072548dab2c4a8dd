/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The assertion harness of the C unit tests: EXPECT() counts a check and
 * reports a failure with the current case name and location, without
 * stopping, so one run lists every broken case.
 */
#ifndef PH_TESTS_CHECK_H
#define PH_TESTS_CHECK_H

#include <stdio.h>

static int failures, checks;
static const char *cur_case = "";

#define EXPECT(cond, ...)                                                     \
	do {                                                                  \
		checks++;                                                     \
		if (!(cond)) {                                                \
			failures++;                                           \
			fprintf(stderr, "FAIL [%s] %s:%d: ", cur_case,        \
				__FILE__, __LINE__);                          \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

#endif /* PH_TESTS_CHECK_H */
