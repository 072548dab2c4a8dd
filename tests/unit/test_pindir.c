// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * --pin-dir resolution (ph_pin_dir_normalize): every spelling of one
 * directory gives one path, so one lock and one tracker (issue 9, part 4).
 * Runs in a temporary directory; needs no privileges.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "util.h"

static void expect_norm(const char *in, const char *want)
{
	char out[PATH_MAX];
	int r = ph_pin_dir_normalize(in, out, sizeof(out));

	EXPECT(r == PH_EXIT_OK && !strcmp(out, want), "'%s' -> '%s' (exit %d), want '%s'",
	       in, r ? "" : out, r, want);
}

int main(void)
{
	char base[] = "/tmp/ph-pindir.XXXXXX", real[PATH_MAX], p[PATH_MAX * 2],
	     w[PATH_MAX * 2], out[PATH_MAX];

	ph_log_init(0);
	if (!mkdtemp(base) || !realpath(base, real)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(p, sizeof(p), "%s/x", real);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/link", real);
	snprintf(w, sizeof(w), "%s/x", real);
	if (symlink(w, p))
		perror("symlink");

	cur_case = "existing";
	snprintf(p, sizeof(p), "%s/x/../x", real);
	expect_norm(p, w);
	snprintf(p, sizeof(p), "/%s//./x/", real);
	expect_norm(p, w);
	snprintf(p, sizeof(p), "%s/link", real);
	expect_norm(p, w);

	cur_case = "not yet existing";
	snprintf(p, sizeof(p), "%s/new/../x", real);
	expect_norm(p, w);
	snprintf(p, sizeof(p), "%s/link/sub/./a/..", real);
	snprintf(w, sizeof(w), "%s/x/sub", real);
	expect_norm(p, w);

	cur_case = "refused";
	EXPECT(ph_pin_dir_normalize("relative/x", out, sizeof(out)) == PH_EXIT_USER,
	       "a relative path is refused");
	EXPECT(ph_pin_dir_normalize("/sys/fs/bpf/x/..", out, sizeof(out)) == PH_EXIT_USER,
	       "bpffs' root itself, spelled x/.., is refused");
	EXPECT(ph_pin_dir_normalize("/", out, sizeof(out)) == PH_EXIT_USER,
	       "/ is refused");

	snprintf(p, sizeof(p), "rm -rf '%s'", real);
	if (system(p))
		fprintf(stderr, "cleanup of %s failed\n", real);
	printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
	return failures ? 1 : 0;
}
