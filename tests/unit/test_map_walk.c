// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ph_map_walk() / ph_map_count() (user/maps_io.c) on hash maps made here:
 * every entry seen once, the count exact, values handed over intact, and
 * a walk that reads only keys of a map with large values (a batch writes
 * every value whole: the buffer must take the map's value size; it once
 * took one byte per entry and the heap broke). Needs CAP_BPF: skips (77)
 * where no map can be made.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "check.h"
#include "log.h"
#include "maps_io.h"

#define N 20000

struct big {
	__u32 key;
	__u8 fill[1020];
};

struct seen {
	unsigned char *hit;
	__u64 bad_value;
};

static int mark(const void *key, const void *val, void *ctx)
{
	struct seen *s = ctx;
	__u32 k;

	memcpy(&k, key, sizeof(k));
	if (k < N)
		s->hit[k]++;
	if (val) {
		__u64 v;

		memcpy(&v, val, sizeof(v));
		s->bad_value += v != (__u64)k * 3;
	}
	return 0;
}

static int make_map(__u32 vsize, __u32 type)
{
	LIBBPF_OPTS(bpf_map_create_opts, o);

	return bpf_map_create(type, "ph_walk_test", sizeof(__u32), vsize, N, &o);
}

static void check_all_once(const struct seen *s, const char *what)
{
	int missed = 0, twice = 0;

	for (int i = 0; i < N; i++) {
		missed += !s->hit[i];
		twice += s->hit[i] > 1;
	}
	EXPECT(!missed && !twice, "%s: %d keys missed, %d seen twice", what,
	       missed, twice);
}

int main(void)
{
	struct ph_walk_stats ws;
	struct seen s = { .hit = calloc(N, 1) };
	struct big b;
	__u64 count = 0, v;
	int fd, r;

	ph_log_init(0);
	fd = make_map(sizeof(b), BPF_MAP_TYPE_HASH);
	if (fd < 0) {
		printf("SKIP: cannot create a BPF map (%s): needs CAP_BPF\n",
		       strerror(errno));
		return 77;
	}

	cur_case = "keys only, 1 KiB values";
	memset(&b, 0x5a, sizeof(b));
	for (__u32 k = 0; k < N; k++) {
		b.key = k;
		EXPECT(!bpf_map_update_elem(fd, &k, &b, BPF_ANY), "insert %u", k);
	}
	r = ph_map_count(fd, sizeof(__u32), N, &count, NULL);
	EXPECT(r == 0 && count == N, "count: %d, %llu of %d", r,
	       (unsigned long long)count, N);
	r = ph_map_walk(fd, sizeof(__u32), 0, N, 0, mark, &s, &ws);
	EXPECT(r == 0 && ws.seen == N && !ws.partial,
	       "walk: %d, seen %llu, partial %d", r,
	       (unsigned long long)ws.seen, ws.partial);
	check_all_once(&s, "keys only");

	cur_case = "sizes that are not the map's";
	EXPECT(ph_map_walk(fd, sizeof(__u64), 0, N, 0, mark, &s, &ws) == -EINVAL,
	       "a wrong key size is refused");
	EXPECT(ph_map_walk(fd, sizeof(__u32), 8, N, 0, mark, &s, &ws) == -EINVAL,
	       "a wrong value size is refused");
	close(fd);

	cur_case = "keys and values";
	fd = make_map(sizeof(v), BPF_MAP_TYPE_HASH);
	EXPECT(fd >= 0, "second map: %s", strerror(errno));
	for (__u32 k = 0; fd >= 0 && k < N; k++) {
		v = (__u64)k * 3;
		EXPECT(!bpf_map_update_elem(fd, &k, &v, BPF_ANY), "insert %u", k);
	}
	memset(s.hit, 0, N);
	r = ph_map_walk(fd, sizeof(__u32), sizeof(v), N, 0, mark, &s, &ws);
	EXPECT(r == 0 && ws.seen == N, "walk: %d, seen %llu", r,
	       (unsigned long long)ws.seen);
	EXPECT(s.bad_value == 0, "%llu values not their key's",
	       (unsigned long long)s.bad_value);
	check_all_once(&s, "keys and values");
	if (fd >= 0)
		close(fd);

	cur_case = "per-CPU maps";
	fd = make_map(sizeof(v), BPF_MAP_TYPE_PERCPU_HASH);
	EXPECT(fd >= 0 && ph_map_walk(fd, sizeof(__u32), sizeof(v), N, 0, mark,
				      &s, &ws) == -EINVAL,
	       "a per-CPU map is refused (one value per CPU)");
	if (fd >= 0)
		close(fd);

	free(s.hit);
	printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
	return failures ? 1 : 0;
}
