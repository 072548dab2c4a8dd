// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * phverify: what the running kernel's verifier says about pinhole's BPF
 * programs. Used by tests/vm/guest.sh in every kernel of the matrix (and
 * runs on the host too).
 *
 *   phverify verify [LOGDIR]   each program through the verifier on its own
 *                              (the built-in skeletons, .rodata as `attach`
 *                              sets it, nothing pinned or attached): one
 *                              VERIFY line each with the verifier's own
 *                              statistics; on a rejection the full log goes
 *                              to LOGDIR/verifier-PROG.log (default .) and
 *                              its last lines are printed. Exit 1 if any
 *                              program is rejected.
 *   phverify progs [ID...]     the loaded programs with these ids (default:
 *                              every one whose name starts with "pinhole"),
 *                              with the kernel's verified_insns (bpftool 7.1
 *                              does not show it)
 *
 * Instruction counts come from the verifier's "processed N insns" line,
 * which every kernel prints; bpf_prog_info.verified_insns exists from 5.16.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "loader.h"
#include "xdp_ingress.skel.h"
#include "tc_egress.skel.h"

/* BPF_COMPLEXITY_LIMIT_INSNS of every kernel since 5.2. */
#define VERIFIER_LIMIT 1000000u
#define LOG_SIZE (64u << 20)
#define LOG_STATS 4 /* BPF_LOG_STATS, not in every uapi header */
#define TAIL_LINES 16

static int quiet(enum libbpf_print_level l, const char *f, va_list a)
{
	(void)l;
	(void)f;
	(void)a;
	return 0;
}

/* The value after @key on the verifier's statistics lines, or -1. */
static long stat_of(const char *log, const char *key)
{
	const char *p = strstr(log, key);

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static void tail(const char *log, const char *path)
{
	const char *p = log + strlen(log);
	int lines = 0;

	while (p > log && lines <= TAIL_LINES)
		if (*--p == '\n')
			lines++;
	printf("    full log (%zu bytes): %s; its end:\n", strlen(log), path);
	for (; *p; p++) {
		if (p == log || p[-1] == '\n')
			fputs("    | ", stdout);
		putchar(*p);
	}
}

/* Never pin nor reuse pins: the objects ask for LIBBPF_PIN_BY_NAME, which
 * without a pin root means /sys/fs/bpf itself. */
static void no_pins(struct bpf_object *obj)
{
	struct bpf_map *m;

	bpf_object__for_each_map(m, obj)
		bpf_map__set_pin_path(m, NULL);
}

struct result {
	int err;
	double secs; /* wall time of the load, verifier included */
	__u32 info_insns;
};

/* One skeleton: open, .rodata as attach sets it, load with @level into @log. */
#define LOAD_ONE(skel, prog)                                                   \
	static struct result load_##skel(int level, char *log)                \
	{                                                                      \
		struct ph_load_opts o = {};                                    \
		struct result r = {};                                          \
		struct timespec t0, t1;                                        \
		struct skel *s = skel##__open();                               \
                                                                               \
		if (!s) {                                                      \
			r.err = -errno;                                        \
			return r;                                              \
		}                                                              \
		ph_load_cfg_init(&s->rodata->ph_cfg, &o);                      \
		no_pins(s->obj);                                               \
		log[0] = 0;                                                    \
		bpf_program__set_log_level(s->progs.prog, level);              \
		bpf_program__set_log_buf(s->progs.prog, log, LOG_SIZE);        \
		clock_gettime(CLOCK_MONOTONIC, &t0);                           \
		r.err = skel##__load(s);                                       \
		clock_gettime(CLOCK_MONOTONIC, &t1);                           \
		r.secs = (t1.tv_sec - t0.tv_sec) +                             \
			 (t1.tv_nsec - t0.tv_nsec) / 1e9;                      \
		if (!r.err) {                                                  \
			struct bpf_prog_info info = {};                        \
			__u32 len = sizeof(info);                              \
                                                                               \
			if (!bpf_obj_get_info_by_fd(                           \
				    bpf_program__fd(s->progs.prog), &info,     \
				    &len))                                     \
				r.info_insns = info.verified_insns;            \
		}                                                              \
		skel##__destroy(s);                                            \
		return r;                                                      \
	}

LOAD_ONE(xdp_ingress_bpf, pinhole_xdp)
LOAD_ONE(tc_egress_bpf, pinhole_tc)

static int verify(const char *name, struct result (*load)(int, char *),
		  const char *dir, char *log)
{
	struct result r = load(LOG_STATS, log);
	long insns = stat_of(log, "processed ");
	char path[4096];
	FILE *f;

	if (!r.err) {
		printf("VERIFY %-12s OK   insns=%ld (%.1f%% of the %u limit) states=%ld peak_states=%ld load=%.1fs",
		       name, insns, 100.0 * insns / VERIFIER_LIMIT,
		       VERIFIER_LIMIT, stat_of(log, "total_states "),
		       stat_of(log, "peak_states "), r.secs);
		if (r.info_insns && r.info_insns != insns)
			printf(" (prog_info says %u)", r.info_insns);
		printf("\n");
		return 0;
	}
	printf("VERIFY %-12s FAIL %s (err %d) after %ld insns\n", name,
	       strerror(-r.err), r.err, insns);
	/* Again with the instruction-level log: what was refused, where. */
	r = load(1, log);
	snprintf(path, sizeof(path), "%s/verifier-%s.log", dir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(log, f);
		fclose(f);
	}
	tail(log, f ? path : "(not written)");
	return 1;
}

static int wanted(const struct bpf_prog_info *info, int argc, char **argv)
{
	if (!argc)
		return !strncmp(info->name, "pinhole", 7);
	for (int i = 0; i < argc; i++)
		if (strtoul(argv[i], NULL, 10) == info->id)
			return 1;
	return 0;
}

static int progs(int argc, char **argv)
{
	static const char *const types[] = {
		[BPF_PROG_TYPE_XDP] = "xdp",
		[BPF_PROG_TYPE_SCHED_CLS] = "sched_cls",
		[BPF_PROG_TYPE_EXT] = "ext", /* in libxdp's dispatcher */
	};
	__u32 id = 0;
	int n = 0;

	while (!bpf_prog_get_next_id(id, &id)) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    wanted(&info, argc, argv)) {
			const char *t = info.type < sizeof(types) / sizeof(*types) &&
						types[info.type] ?
						types[info.type] :
						"other";

			printf("PROG id=%u type=%s name=%s verified_insns=%u xlated_insns=%u jited_bytes=%u\n",
			       info.id, t, info.name, info.verified_insns,
			       info.xlated_prog_len / 8, info.jited_prog_len);
			n++;
		}
		close(fd);
	}
	return n ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	char *log;
	int rc;

	if (!strcmp(cmd, "progs"))
		return progs(argc - 2, argv + 2);
	if (strcmp(cmd, "verify")) {
		fprintf(stderr, "usage: phverify verify [LOGDIR] | progs [ID...]\n");
		return 2;
	}
	log = malloc(LOG_SIZE);
	if (!log) {
		perror("phverify");
		return 1;
	}
	libbpf_set_print(quiet);
	rc = verify("pinhole_xdp", load_xdp_ingress_bpf, argc > 2 ? argv[2] : ".",
		    log);
	rc |= verify("pinhole_tc", load_tc_egress_bpf, argc > 2 ? argv[2] : ".",
		     log);
	free(log);
	return rc;
}
