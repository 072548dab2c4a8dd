// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <pinhole/ctrl.h>
#include "counters.h"
#include "log.h"
#include "maps_io.h"
#include "util.h"

#define KERNEL_ENOTSUPP 524 /* kernel-internal "operation not supported" */

int ph_view_read(const struct ph_instance *inst, struct ph_view *v)
{
	__u32 key = 0;

	memset(v, 0, sizeof(*v));
	if (bpf_map_lookup_elem(inst->fd[PH_MAP_STATE], &key, &v->st))
		return -errno;
	for (key = 0; key < PH_SLOTS; key++)
		if (bpf_map_lookup_elem(inst->fd[PH_MAP_SLOT_META], &key,
					&v->meta[key]))
			return -errno;
	if (v->st.active_slot >= PH_SLOTS)
		v->st.active_slot = 0;
	return 0;
}

/* ------------------------------------------------------------- writing */

/* vals[0..n) into keys first..first+n of an array map: batched, falling
 * back to one syscall per element on kernels without batch support. */
static int array_write(int fd, __u32 first, const void *vals, __u32 n,
		       size_t vsize)
{
	static bool no_batch;
	const __u32 chunk = 16384;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 *keys = malloc(sizeof(*keys) * chunk);
	int err = 0;

	if (!keys)
		return -ENOMEM;
	for (__u32 off = 0; off < n && !err; off += chunk) {
		__u32 cnt = n - off < chunk ? n - off : chunk;
		const char *v = (const char *)vals + (size_t)off * vsize;

		for (__u32 i = 0; i < cnt; i++)
			keys[i] = first + off + i;
		if (!no_batch) {
			__u32 c = cnt;

			err = bpf_map_update_batch(fd, keys, v, &c, &opts);
			if (!err)
				continue;
			if (err != -EINVAL && err != -EOPNOTSUPP &&
			    err != -KERNEL_ENOTSUPP)
				break;
			pr_debug("batch update unsupported (%s); writing one by one",
				 strerror(-err));
			no_batch = true;
			err = 0;
		}
		for (__u32 i = 0; i < cnt && !err; i++)
			if (bpf_map_update_elem(fd, &keys[i], v + i * vsize,
						BPF_ANY))
				err = -errno;
	}
	free(keys);
	return err;
}

static int write_ports(const struct ph_instance *inst, __u32 slot,
		       const struct ph_policy *pol)
{
	const __u32 n = PH_L4_MAX * PH_PT_MAX * 65536u;
	void *zero = NULL;
	const void *vals = pol->port_table;
	int err;

	if (!vals) {
		vals = zero = calloc(n, sizeof(__u16));
		if (!zero)
			return -ENOMEM;
	}
	err = array_write(inst->fd[PH_MAP_PORTS], PH_PORT_IDX(slot, 0, 0, 0),
			  vals, n, sizeof(__u16));
	free(zero);
	return err;
}

/* The rules of pol, each with its service's counter id (svc_ids). */
static int write_rules(const struct ph_instance *inst, __u32 slot,
		       const struct ph_policy *pol, __u32 old_nrules,
		       const __u16 *svc_ids)
{
	__u32 base = slot * PH_MAX_RULES, n = (__u32)pol->nrules;
	struct ph_rule *rules = calloc(n ? n : 1, sizeof(*rules));
	int err = 0;

	if (!rules)
		return -ENOMEM;
	for (__u32 i = 0; i < n; i++) {
		rules[i] = pol->rules[i];
		rules[i].svc_id = pol->rules[i].service < pol->nservices ?
					  svc_ids[pol->rules[i].service] : 0;
	}
	if (n)
		err = array_write(inst->fd[PH_MAP_RULES], base, rules, n,
				  sizeof(struct ph_rule));
	free(rules);
	/* Rules a previous policy left in this slot beyond ours. */
	if (!err && old_nrules > n && old_nrules <= PH_MAX_RULES) {
		struct ph_rule *zero = calloc(old_nrules - n, sizeof(*zero));

		if (!zero)
			return -ENOMEM;
		err = array_write(inst->fd[PH_MAP_RULES], base + n, zero,
				  old_nrules - n, sizeof(*zero));
		free(zero);
	}
	return err;
}

static int write_names(const struct ph_instance *inst, __u32 slot,
		       const struct ph_policy *pol)
{
	struct ph_service_name *names;
	int err;

	if (pol->nservices <= 0)
		return 0;
	names = calloc((size_t)pol->nservices, sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (int i = 0; i < pol->nservices; i++)
		ph_strlcpy(names[i].name, pol->services[i].name,
			   sizeof(names[i].name));
	err = array_write(inst->fd[PH_MAP_SERVICE_NAMES], slot * PH_MAX_RULES,
			  names, (__u32)pol->nservices, sizeof(*names));
	free(names);
	return err;
}

/* An empty LPM trie for one peer set, alike for every set (the outer map
 * accepts only tries of its inner definition); the caller closes the fd. */
static int peer_trie_create(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
	int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "ph_peer_set",
				sizeof(struct ph_peer_key),
				sizeof(struct ph_peer_val), PH_PEER_SET_MAX, &o);

	return fd < 0 ? -errno : fd;
}

/*
 * Gives indices [0, n) of slot their trie: set_fd[set] where >= 0, else one
 * shared empty trie (a miss, like no trie), so the tries an earlier policy
 * left there are released.
 *
 * Only the indices a policy can have used are touched, and none is read:
 * the kernel waits for an RCU grace period (milliseconds) after every write
 * to a map of maps, and before 6.8 (Debian's 6.1) after every lookup and
 * every element of a batch too; visiting all PH_MAX_SETS indices of a slot
 * made an attach take minutes there. Set indices are service indices, and
 * every service compiles to at least one rule, so a slot's tries lie below
 * the rule count its slot_meta records. A write cut short (crash) may leave
 * a trie above that: unreachable, as a later policy's rule with that set
 * either ignores peers or gets its own new trie, and released with the maps.
 */
static int peers_put_slot(const struct ph_instance *inst, __u32 slot,
			  const int *set_fd, __u32 n)
{
	static bool no_batch;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 *keys, cnt = n;
	int *fds, fd = inst->fd[PH_MAP_PEERS], empty, err = 0;

	if (n > PH_MAX_SETS)
		n = cnt = PH_MAX_SETS;
	if (!n)
		return 0;
	keys = calloc(n, sizeof(*keys));
	fds = calloc(n, sizeof(*fds));
	empty = keys && fds ? peer_trie_create() : -ENOMEM;
	if (empty < 0) {
		err = empty;
		goto out;
	}
	for (__u32 set = 0; set < n; set++) {
		keys[set] = PH_PEER_SET_IDX(slot, set);
		fds[set] = set_fd && set_fd[set] >= 0 ? set_fd[set] : empty;
	}
	if (!no_batch) {
		err = bpf_map_update_batch(fd, keys, fds, &cnt, &opts);
		if (err != -EINVAL && err != -EOPNOTSUPP &&
		    err != -KERNEL_ENOTSUPP)
			goto out;
		pr_debug("batch update of peers unsupported (%s); writing one by one",
			 strerror(-err));
		no_batch = true;
		err = 0;
	}
	for (__u32 i = 0; !err && i < n; i++)
		if (bpf_map_update_elem(fd, &keys[i], &fds[i], BPF_ANY))
			err = -errno;
out:
	if (empty >= 0)
		close(empty);
	free(keys);
	free(fds);
	return err;
}

/* Releases the tries of slot's indices [0, n) (the kernel frees them). */
static int clear_peers(const struct ph_instance *inst, __u32 slot, __u32 n)
{
	return peers_put_slot(inst, slot, NULL, n);
}

/* A new trie holding e[0..n). */
static int fill_set(const struct ph_peer_entry *e, int n)
{
	int fd = peer_trie_create();

	if (fd < 0)
		return fd;
	for (int i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, &e[i].key, &e[i].val, BPF_ANY)) {
			int err = -errno;

			close(fd);
			return err;
		}
	return fd;
}

/*
 * Gives every set with peers a new trie in slot, and the other indices
 * below @n (what the slot's earlier policy may have used) the empty trie,
 * in one batch. peers holds its own reference to each trie: the fds are
 * closed after.
 */
static int write_peers(const struct ph_instance *inst, __u32 slot,
		       const struct ph_policy *pol, __u32 n)
{
	int *set_fd = malloc(PH_MAX_SETS * sizeof(*set_fd)), err = 0;
	const struct ph_peer_entry *e = pol->peer_entries;
	int ne = 0;

	if (!set_fd)
		return -ENOMEM;
	for (__u32 set = 0; set < PH_MAX_SETS; set++)
		set_fd[set] = -1;
	/* The compiler emits each set's entries together, in set order. */
	for (int si = 0; si < pol->nservices && si < PH_MAX_SETS; si++) {
		int first = ne;

		while (ne < pol->npeer_entries && e[ne].set == si)
			ne++;
		if (pol->services[si].flags & PH_RF_PEER_ANY)
			continue;
		set_fd[si] = fill_set(&e[first], ne - first);
		if (set_fd[si] < 0) {
			err = set_fd[si];
			break;
		}
	}
	if (!err)
		err = peers_put_slot(inst, slot, set_fd,
				     n > (__u32)pol->nservices ?
					     n :
					     (__u32)pol->nservices);
	for (__u32 set = 0; set < PH_MAX_SETS; set++)
		if (set_fd[set] >= 0)
			close(set_fd[set]);
	free(set_fd);
	return err;
}

/*
 * ftp_nat entries of slot: the tracked services' nat-address lists. The
 * slot's old entries go first (whatever policy wrote them), then this
 * policy's; the slot is inactive, so no packet sees the change.
 */
static int write_nat(const struct ph_instance *inst, __u32 slot,
		     const struct ph_policy *pol)
{
	int fd = inst->fd[PH_MAP_FTP_NAT], n = 0;
	struct ph_ftp_nat_key k, *prev = NULL, *old;
	struct ph_ftp_nat v;

	if (fd < 0)
		return -ENOENT;
	old = calloc(PH_FTP_NAT_MAX, sizeof(*old));
	if (!old)
		return -ENOMEM;
	/* Collect, then delete: deleting while walking restarts the walk. */
	while (n < PH_FTP_NAT_MAX && !bpf_map_get_next_key(fd, prev, &k)) {
		old[n] = k;
		prev = &old[n];
		n++;
	}
	for (int i = 0; i < n; i++)
		if (old[i].slot == slot)
			bpf_map_delete_elem(fd, &old[i]);
	free(old);
	for (int si = 0; si < pol->nservices; si++) {
		const struct ph_service *s = &pol->services[si];

		if (!s->nnat)
			continue;
		memset(&k, 0, sizeof(k));
		memset(&v, 0, sizeof(v));
		k.slot = slot;
		k.service = (__u32)si;
		v.n = (__u32)s->nnat;
		memcpy(v.addr, s->nat, sizeof(v.addr));
		if (bpf_map_update_elem(fd, &k, &v, BPF_ANY))
			return -errno;
	}
	return 0;
}

static int check_limits(const struct ph_policy *pol)
{
	if (pol->nrules > PH_MAX_RULES || pol->nservices > PH_MAX_SETS) {
		pr_warn("%s: %d rules from %d services; at most %d fit, so merge services",
			pol->path, pol->nrules, pol->nservices, PH_MAX_RULES);
		return PH_EXIT_USER;
	}
	if (pol->npeer_entries > PH_POLICY_MAX_PEER_ENTRIES) {
		pr_warn("%s: %d peer prefixes; at most %d fit, so use wider prefixes",
			pol->path, pol->npeer_entries,
			PH_POLICY_MAX_PEER_ENTRIES);
		return PH_EXIT_USER;
	}
	return PH_EXIT_OK;
}

static int write_failed(const char *what, int err)
{
	pr_warn("cannot write the policy (%s): %s; the previous policy stays in force",
		what, strerror(-err));
	return PH_EXIT_ENV;
}

int ph_policy_install(struct ph_instance *inst, const struct ph_policy *pol,
		      __u32 *generation)
{
	struct ph_view v;
	struct ph_slot_meta meta = {};
	struct ph_state st;
	char abs[PATH_MAX];
	__u16 *svc_ids;
	__u32 slot, old, key;
	int err, r;

	err = ph_view_read(inst, &v);
	if (err)
		return write_failed("reading state", err);
	old = v.st.active_slot;
	slot = old ? 0 : 1;

	r = check_limits(pol);
	if (r)
		return r;
	if (!realpath(pol->path, abs))
		ph_strlcpy(abs, pol->path, sizeof(abs));
	if (strlen(abs) >= sizeof(st.policy)) {
		/* Never stored cut: status and show would name another file. */
		pr_warn("policy path %.64s... is longer than %zu bytes; the previous policy stays in force",
			abs, sizeof(st.policy) - 1);
		return PH_EXIT_USER;
	}
	/* The inactive slot is ours; write_peers replaces every trie an
	 * earlier policy (or a failed write) left in it. */
	err = write_ports(inst, slot, pol);
	if (err)
		return write_failed("ports", err);
	svc_ids = calloc(pol->nservices > 0 ? (size_t)pol->nservices : 1,
			 sizeof(*svc_ids));
	err = svc_ids ? ph_svc_ids_assign(inst, pol, old, v.meta[old].nrules,
					  v.st.generation + 1, svc_ids) :
			-ENOMEM;
	if (!err)
		err = write_rules(inst, slot, pol, v.meta[slot].nrules, svc_ids);
	free(svc_ids);
	if (err)
		return write_failed("rules", err);
	err = write_names(inst, slot, pol);
	if (err)
		return write_failed("service_names", err);
	err = write_peers(inst, slot, pol, v.meta[slot].nrules);
	if (err) {
		clear_peers(inst, slot,
			    v.meta[slot].nrules > (__u32)pol->nservices ?
				    v.meta[slot].nrules :
				    (__u32)pol->nservices);
		return write_failed("peers", err);
	}
	err = write_nat(inst, slot, pol);
	if (err)
		return write_failed("ftp_nat", err);

	st = v.st;
	st.generation = v.st.generation + 1;
	ph_policy_slot_meta(pol, &meta);
	meta.generation = st.generation;
	/* The datapath stamps flows with the coarse clock: comparable. */
	meta.loaded_ns = ph_now_coarse_ns();
	key = slot;
	if (bpf_map_update_elem(inst->fd[PH_MAP_SLOT_META], &key, &meta,
				BPF_ANY))
		return write_failed("slot_meta", -errno);

	/* The flip: one write of state[0]; a packet sees one whole policy. */
	st.active_slot = slot;
	memset(st.policy, 0, sizeof(st.policy));
	memcpy(st.policy, abs, strlen(abs));
	key = 0;
	if (bpf_map_update_elem(inst->fd[PH_MAP_STATE], &key, &st, BPF_ANY))
		return write_failed("state", -errno);

	/* No packet starts on the old slot now: release its tries. */
	err = clear_peers(inst, old, v.meta[old].nrules);
	if (err)
		pr_debug("cannot clear the peers of the old slot %u: %s", old,
			 strerror(-err));
	pr_debug("policy %s installed in slot %u, generation %u", st.policy,
		 slot, st.generation);
	if (generation)
		*generation = st.generation;
	return PH_EXIT_OK;
}

/* ------------------------------------------------------------- reading */

int ph_array_read(int fd, __u32 first, void *vals, __u32 n, size_t vsize)
{
	static bool no_batch;
	const __u32 chunk = 65536;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 *keys = malloc(sizeof(*keys) * chunk), batch;
	int err = 0;

	if (!keys)
		return -ENOMEM;
	for (__u32 off = 0; off < n && !err; off += chunk) {
		__u32 cnt = n - off < chunk ? n - off : chunk;
		char *v = (char *)vals + (size_t)off * vsize;

		if (!no_batch) {
			__u32 got = cnt, start = first + off, prev = start - 1;

			/* A batch starts at the key after in_batch (or at 0
			 * without one): name the key before the first. */
			err = bpf_map_lookup_batch(fd, start ? &prev : NULL,
						   &batch, keys, v, &got, &opts);
			if ((!err || err == -ENOENT) && got == cnt)
				continue;
			if (!err || err == -ENOENT) {
				err = -EIO;
				break;
			}
			if (err != -EINVAL && err != -EOPNOTSUPP &&
			    err != -KERNEL_ENOTSUPP)
				break;
			no_batch = true;
			err = 0;
		}
		for (__u32 i = 0; i < cnt && !err; i++) {
			__u32 k = first + off + i;

			if (bpf_map_lookup_elem(fd, &k, v + i * vsize))
				err = -errno;
		}
	}
	free(keys);
	return err;
}

int ph_counters_read(const struct ph_instance *inst, struct ph_counter *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ph_counter *per;

	memset(sum, 0, sizeof(*sum) * PH_COUNTER_ENTRIES);
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	/* every interface slot folded into one (pinhole.h) */
	for (__u32 k = 0; k < PH_COUNTER_IF_ENTRIES; k++) {
		if (bpf_map_lookup_elem(inst->fd[PH_MAP_COUNTERS], &k, per))
			continue;
		for (int c = 0; c < ncpu; c++) {
			sum[k % PH_COUNTER_ENTRIES].packets += per[c].packets;
			sum[k % PH_COUNTER_ENTRIES].bytes += per[c].bytes;
		}
	}
	free(per);
	return 0;
}

int ph_ftp_dp_stats_read(const char *pin_dir, struct ph_ftp_dp_stats *sum)
{
	enum { N = sizeof(*sum) / sizeof(__u64) };
	int ncpu = libbpf_num_possible_cpus(), fd, err = 0;
	__u64 *per, *out = (__u64 *)sum;
	__u32 key = 0;

	_Static_assert(sizeof(*sum) % sizeof(__u64) == 0,
		       "ph_ftp_dp_stats holds only __u64 counters");
	memset(sum, 0, sizeof(*sum));
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	fd = ph_pin_get(pin_dir, "ftp_dp_stats");
	if (fd < 0)
		return fd;
	per = calloc((size_t)ncpu, sizeof(*sum));
	if (!per) {
		close(fd);
		return -ENOMEM;
	}
	if (bpf_map_lookup_elem(fd, &key, per))
		err = -errno;
	else
		for (int c = 0; c < ncpu; c++)
			for (int i = 0; i < N; i++)
				out[i] += per[(size_t)c * N + i];
	free(per);
	close(fd);
	return err;
}

int ph_ringbuf_fill(const char *pin_dir, const char *name, __u64 *used,
		    __u32 *size)
{
	long page = sysconf(_SC_PAGESIZE);
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	volatile const __u64 *cons = MAP_FAILED, *prod = MAP_FAILED;
	int fd = ph_pin_get(pin_dir, name), err = 0;

	if (fd < 0)
		return fd;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) ||
	    info.type != BPF_MAP_TYPE_RINGBUF) {
		close(fd);
		return -EINVAL;
	}
	/* A BPF ring buffer is read through mmap, never with lookups (which
	 * is why bpftool cannot dump it): page 0 holds the consumer position,
	 * page 1 the producer's; both only grow. */
	cons = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
	prod = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, page);
	if (cons == MAP_FAILED || prod == MAP_FAILED) {
		err = -errno;
	} else {
		__u64 c = *cons, p = *prod;

		*used = p > c ? p - c : 0;
		*size = info.max_entries;
	}
	if (cons != MAP_FAILED)
		munmap((void *)cons, (size_t)page);
	if (prod != MAP_FAILED)
		munmap((void *)prod, (size_t)page);
	close(fd);
	return err;
}

/* ------------------------------------------------------------- walking */

#define WALK_CHUNK 4096
#define WALK_KV_MAX 128 /* bytes of a key, and of a value, the walk takes */

/* Entries come and go while we walk (an LRU table under a SYN flood
 * evicts thousands a second). get_next_key from a key evicted meanwhile
 * starts over at the first one, so a key walk may see an entry more than
 * once, or loop for as long as the churn lasts: it is only the fallback,
 * bounded by steps. The batch walk's cursor is a bucket index: each
 * bucket is read once, whatever happens to the entries. */
static int walk_keys(int fd, size_t ksz, size_t vsz, __u32 max,
		     __u64 deadline, ph_walk_fn fn, void *ctx,
		     struct ph_walk_stats *ws)
{
	char key[WALK_KV_MAX], next[WALK_KV_MAX], val[WALK_KV_MAX];
	bool first = true;
	int r;

	for (__u64 steps = 0; steps < (__u64)max + 16; steps++) {
		if (bpf_map_get_next_key(fd, first ? NULL : key, next))
			return errno == ENOENT ? 0 : -errno;
		first = false;
		memcpy(key, next, ksz);
		if (!(steps & 255) && deadline && ph_now_ns() >= deadline) {
			ws->partial = true;
			return 0;
		}
		if (vsz && bpf_map_lookup_elem(fd, next, val))
			continue; /* deleted meanwhile */
		ws->seen++;
		r = fn(next, vsz ? val : NULL, ctx);
		if (r)
			return r;
	}
	ws->partial = true; /* churned past the bound */
	return 0;
}

int ph_map_walk(int fd, size_t key_size, size_t value_size, __u32 max_entries,
		__u64 deadline_ns, ph_walk_fn fn, void *ctx,
		struct ph_walk_stats *ws)
{
	static bool no_batch;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct bpf_map_info info = {};
	__u32 chunk = WALK_CHUNK, count, len = sizeof(info);
	char in[8], out[8]; /* hash maps: a bucket index (__u32) */
	bool first = true;
	char *keys, *vals;
	size_t vsz;
	int err = 0, r;

	memset(ws, 0, sizeof(*ws));
	if (fd < 0 || key_size > WALK_KV_MAX || value_size > WALK_KV_MAX)
		return -EINVAL;
	/* A batch writes every value whole, whatever the caller reads of
	 * it: the buffer takes the map's own value size. Per-CPU maps
	 * (one value per CPU) are not walked here. */
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.key_size != key_size ||
	    (value_size && info.value_size != value_size) ||
	    info.type == BPF_MAP_TYPE_PERCPU_HASH ||
	    info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH)
		return -EINVAL;
	vsz = info.value_size ? info.value_size : 1;
	if (no_batch)
		return walk_keys(fd, key_size, value_size, max_entries,
				 deadline_ns, fn, ctx, ws);
	keys = malloc(key_size * chunk);
	vals = malloc(vsz * chunk);
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (;;) {
		count = chunk;
		err = bpf_map_lookup_batch(fd, first ? NULL : in, out, keys,
					   vals, &count, &opts);
		if (err == -ENOSPC && chunk < 4 * WALK_CHUNK) {
			/* One bucket holds more than chunk entries. */
			char *k2 = realloc(keys, key_size * chunk * 2);
			char *v2 = k2 ? realloc(vals, vsz * chunk * 2) : NULL;

			if (k2)
				keys = k2;
			if (!v2) {
				err = -ENOMEM;
				break;
			}
			vals = v2;
			chunk *= 2;
			continue;
		}
		if (err && err != -ENOENT) {
			if (first && (err == -EINVAL || err == -EOPNOTSUPP ||
				      err == -KERNEL_ENOTSUPP)) {
				pr_debug("batch lookup unsupported (%s); walking key by key",
					 strerror(-err));
				no_batch = true;
				free(keys);
				free(vals);
				return walk_keys(fd, key_size, value_size,
						 max_entries, deadline_ns, fn,
						 ctx, ws);
			}
			break;
		}
		ws->batches++;
		for (__u32 i = 0; i < count && i < chunk; i++) {
			ws->seen++;
			r = fn(keys + i * key_size,
			       value_size ? vals + i * vsz : NULL, ctx);
			if (r) {
				err = r;
				goto out;
			}
		}
		if (err == -ENOENT) {
			err = 0;
			break;
		}
		memcpy(in, out, sizeof(in));
		first = false;
		if (deadline_ns && ph_now_ns() >= deadline_ns) {
			ws->partial = true;
			break;
		}
	}
out:
	free(keys);
	free(vals);
	return err;
}

static int count_one(const void *key, const void *val, void *ctx)
{
	(void)key;
	(void)val;
	(*(__u64 *)ctx)++;
	return 0;
}

int ph_map_count(int fd, size_t key_size, __u32 max_entries, __u64 *count,
		 bool *partial)
{
	struct ph_walk_stats ws;
	int err;

	*count = 0;
	err = ph_map_walk(fd, key_size, 0, max_entries,
			  ph_now_ns() + PH_WALK_BUDGET_NS, count_one, count,
			  &ws);
	/* A table never holds more than its size: more seen means churn. */
	if (*count > max_entries)
		*count = max_entries;
	if (partial)
		*partial = ws.partial;
	return err;
}

struct flow_walk {
	ph_flow_fn fn;
	void *ctx;
	bool half_open;
	__u64 n, max;
};

static int flow_one(const void *key, const void *val, void *ctx)
{
	struct flow_walk *w = ctx;

	if (w->n >= w->max)
		return 0; /* more than the table holds: churn */
	w->n++;
	return w->fn(key, val, w->half_open, w->ctx);
}

static int foreach_in(int fd, __u32 max, bool half_open, ph_flow_fn fn,
		      void *ctx, __u64 deadline, bool *partial)
{
	struct flow_walk w = { .fn = fn, .ctx = ctx, .half_open = half_open,
			       .max = max };
	struct ph_walk_stats ws;
	int err;

	_Static_assert(sizeof(struct ph_flow_key) <= WALK_KV_MAX &&
		       sizeof(struct ph_flow) <= WALK_KV_MAX,
		       "flow entries larger than the walk takes");
	err = ph_map_walk(fd, sizeof(struct ph_flow_key), sizeof(struct ph_flow),
			  max, deadline, flow_one, &w, &ws);
	if (partial && ws.partial)
		*partial = true;
	return err;
}

int ph_flows_foreach(const struct ph_instance *inst, ph_flow_fn fn, void *ctx)
{
	return ph_flows_foreach_budget(inst, fn, ctx, 0, NULL);
}

int ph_flows_foreach_budget(const struct ph_instance *inst, ph_flow_fn fn,
			    void *ctx, __u64 budget_ns, bool *partial)
{
	__u64 deadline = budget_ns ? ph_now_ns() + budget_ns : 0;
	int r;

	if (partial)
		*partial = false;
	r = foreach_in(inst->fd[PH_MAP_FLOWS], inst->max_entries[PH_MAP_FLOWS],
		       false, fn, ctx, deadline, partial);
	if (r)
		return r;
	return foreach_in(inst->fd[PH_MAP_HALF_OPEN],
			  inst->max_entries[PH_MAP_HALF_OPEN], true, fn, ctx,
			  deadline, partial);
}

/* The slot whose policy was in force at time t, or -1 if overwritten. */
static int slot_at(const struct ph_view *v, __u64 t)
{
	int best = -1;

	for (int s = 0; s < PH_SLOTS; s++) {
		if (!v->meta[s].loaded_ns || v->meta[s].loaded_ns > t)
			continue;
		if (best < 0 || v->meta[s].loaded_ns > v->meta[best].loaded_ns)
			best = s;
	}
	return best;
}

void ph_flow_service(const struct ph_instance *inst, const struct ph_view *v,
		     const struct ph_flow *flow, char *buf, size_t len)
{
	struct ph_service_name name = {};
	struct ph_rule rule;
	int slot = slot_at(v, flow->created_ns);
	__u32 key;

	if (!flow->rule) {
		ph_strlcpy(buf, "-", len);
		return;
	}
	if (slot < 0 || flow->rule > v->meta[slot].nrules) {
		ph_strlcpy(buf, "?", len);
		return;
	}
	key = (__u32)slot * PH_MAX_RULES + flow->rule - 1u;
	if (bpf_map_lookup_elem(inst->fd[PH_MAP_RULES], &key, &rule)) {
		ph_strlcpy(buf, "?", len);
		return;
	}
	key = (__u32)slot * PH_MAX_RULES + rule.service;
	if (bpf_map_lookup_elem(inst->fd[PH_MAP_SERVICE_NAMES], &key, &name) ||
	    !name.name[0]) {
		snprintf(buf, len, "rule %u", flow->rule - 1u);
		return;
	}
	name.name[sizeof(name.name) - 1] = '\0';
	ph_strlcpy(buf, name.name, len);
}

int ph_syn_watch_raise(int watch_fd, __be16 lport, __u64 deadline_ns)
{
	__u64 until = deadline_ns + PH_SYN_WATCH_GRACE_S * 1000000000ull;
	__u32 idx = PH_SYN_WATCH_IDX(PH_SW_EXPECT, ntohs(lport));
	__u64 cur;

	if (bpf_map_lookup_elem(watch_fd, &idx, &cur))
		return -errno;
	if (cur >= until)
		return 0;
	return bpf_map_update_elem(watch_fd, &idx, &until, BPF_ANY) ? -errno : 0;
}
