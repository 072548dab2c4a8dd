// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * In-place upgrade (upgrade.h). The interfaces never run without a
 * pinhole program: each swap is one XDP_FLAGS_REPLACE / BPF_TC_F_REPLACE
 * request. With the same layout the maps are shared by the old and the
 * new programs, so nothing is copied. With another layout the new
 * programs get new maps, filled before the swap and topped up after it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <pinhole/pinhole.h>

#include "loader.h"
#include "log.h"
#include "maps_io.h"
#include "upgrade.h"
#include "util.h"

/*
 * What a layout change carries over, by pin name. COPY: same key and
 * value size required (else the table starts empty, with a notice).
 * PREFIX: same key size; the value's common prefix is copied and the rest
 * zeroed (structs whose fields are only appended, pinhole.h). Everything
 * else is rebuilt: the policy tables from the policy, `state`, `ifaces`
 * by upgrade itself, `ftp_sessions` by the tracker; `counters` restart
 * at zero (reason indices move when reasons are added); records still in
 * `events` are lost (the tracker resynchronises, docs/tracker.md).
 */
enum mig_how { MIG_COPY, MIG_PREFIX };

static const struct {
	const char *name;
	enum mig_how how;
} mig_table[] = {
	{ "flows", MIG_PREFIX },
	{ "half_open", MIG_PREFIX },
	{ "expect", MIG_PREFIX },
	{ "syn_watch", MIG_COPY }, /* before a SYN looks into expect */
	{ "frags", MIG_COPY },
	{ "ftp_ctrl", MIG_PREFIX },
	{ "ftps_peers", MIG_COPY },
	{ "ftp_totals", MIG_PREFIX },
	{ "ftp_dp_stats", MIG_PREFIX },
};

static bool is_percpu(__u32 type)
{
	return type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

static bool is_array(__u32 type)
{
	return type == BPF_MAP_TYPE_ARRAY || type == BPF_MAP_TYPE_PERCPU_ARRAY;
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

struct mig_map {
	const char *name;
	enum mig_how how;
	int ofd, nfd;
	struct bpf_map_info oi, ni;
	size_t ovs, nvs, ostride, nstride; /* per-CPU: stride per CPU */
	int ncpu;
};

/* Old value -> new value (zeroed first). */
static void convert(const struct mig_map *m, const void *ov, void *nv)
{
	size_t n = m->oi.value_size < m->ni.value_size ? m->oi.value_size :
							    m->ni.value_size;

	memset(nv, 0, m->nvs);
	for (int c = 0; c < m->ncpu; c++)
		memcpy((char *)nv + (size_t)c * m->nstride,
		       (const char *)ov + (size_t)c * m->ostride, n);
}

/* One pass over the old map. top_up: only what the new map lacks (the
 * entries the old programs made during the swap). Returns the number of
 * entries written, or -errno. */
static long long copy_pass(struct mig_map *m, bool top_up)
{
	void *ok = calloc(1, m->oi.key_size), *nk = calloc(1, m->oi.key_size);
	void *ov = calloc(1, m->ovs), *nv = calloc(1, m->nvs);
	void *cur = calloc(1, m->nvs);
	long long n = 0, full = 0;
	bool first = true;

	if (!ok || !nk || !ov || !nv || !cur) {
		n = -ENOMEM;
		goto out;
	}
	if (is_array(m->oi.type)) {
		__u32 max = m->oi.max_entries < m->ni.max_entries ?
				    m->oi.max_entries : m->ni.max_entries;

		for (__u32 k = 0; k < max; k++) {
			if (bpf_map_lookup_elem(m->ofd, &k, ov) ||
			    all_zero(ov, m->ovs))
				continue;
			if (top_up && !bpf_map_lookup_elem(m->nfd, &k, cur) &&
			    !all_zero(cur, m->nvs))
				continue;
			convert(m, ov, nv);
			if (!bpf_map_update_elem(m->nfd, &k, nv, BPF_ANY))
				n++;
		}
		goto out;
	}
	/* Hash maps: entries may vanish under us (LRU, expiry); a vanished
	 * key restarts the walk, so bound it. */
	for (__u64 guard = 0; guard < 4ull * m->oi.max_entries + 16; guard++) {
		if (bpf_map_get_next_key(m->ofd, first ? NULL : ok, nk))
			break;
		first = false;
		memcpy(ok, nk, m->oi.key_size);
		if (bpf_map_lookup_elem(m->ofd, nk, ov))
			continue;
		convert(m, ov, nv);
		if (!bpf_map_update_elem(m->nfd, nk, nv,
					 top_up ? BPF_NOEXIST : BPF_ANY))
			n++;
		else if (errno == E2BIG || errno == ENOMEM)
			full++;
	}
	if (full)
		pr_info("upgrade: %s: %lld entries did not fit the new table",
			m->name, full);
out:
	free(ok);
	free(nk);
	free(ov);
	free(nv);
	free(cur);
	return n;
}

static int mig_open(struct mig_map *m, const char *old_dir,
		    const char *new_dir)
{
	__u32 len = sizeof(m->oi);

	m->ncpu = 1;
	m->ofd = ph_pin_get(old_dir, m->name);
	m->nfd = ph_pin_get(new_dir, m->name);
	if (m->ofd < 0 || m->nfd < 0)
		return -ENOENT;
	if (bpf_obj_get_info_by_fd(m->ofd, &m->oi, &len))
		return -errno;
	len = sizeof(m->ni);
	if (bpf_obj_get_info_by_fd(m->nfd, &m->ni, &len))
		return -errno;
	if (m->oi.type != m->ni.type || m->oi.key_size != m->ni.key_size ||
	    (m->how == MIG_COPY && m->oi.value_size != m->ni.value_size)) {
		pr_info("upgrade: %s changed beyond conversion (type %u/%u, key %u/%u, value %u/%u); it starts empty",
			m->name, m->oi.type, m->ni.type, m->oi.key_size,
			m->ni.key_size, m->oi.value_size, m->ni.value_size);
		return -EINVAL;
	}
	m->ostride = m->oi.value_size;
	m->nstride = m->ni.value_size;
	if (is_percpu(m->oi.type)) {
		m->ncpu = libbpf_num_possible_cpus();
		if (m->ncpu < 1)
			return -EINVAL;
		m->ostride = (m->oi.value_size + 7) & ~7u;
		m->nstride = (m->ni.value_size + 7) & ~7u;
	}
	m->ovs = m->ostride * (size_t)m->ncpu;
	m->nvs = m->nstride * (size_t)m->ncpu;
	return 0;
}

static void mig_close(struct mig_map *m)
{
	if (m->ofd >= 0)
		close(m->ofd);
	if (m->nfd >= 0)
		close(m->nfd);
	m->ofd = m->nfd = -1;
}

/* Every table of mig_table from old_dir into new_dir. */
static __u64 copy_tables(const char *old_dir, const char *new_dir, bool top_up)
{
	__u64 total = 0;

	for (size_t i = 0; i < ARRAY_SIZE(mig_table); i++) {
		struct mig_map m = { .name = mig_table[i].name,
				     .how = mig_table[i].how };
		long long n;

		if (mig_open(&m, old_dir, new_dir)) {
			mig_close(&m);
			continue;
		}
		n = copy_pass(&m, top_up);
		mig_close(&m);
		if (n < 0) {
			pr_info("upgrade: copying %s: %s", m.name, strerror((int)-n));
			continue;
		}
		if (n)
			pr_debug("upgrade: %s: %lld entries %s", m.name, n,
				 top_up ? "added after the swap" : "copied");
		total += (__u64)n;
	}
	return total;
}

struct live_set {
	int n;
	struct ph_iface recs[PH_IFACES_MAX];
	struct ph_iface done[PH_IFACES_MAX]; /* records after the swap */
};

static int live_ifaces(const struct ph_instance *inst, struct live_set *ls)
{
	struct ph_iface recs[PH_IFACES_MAX];
	int n = ph_ifaces_list(inst, recs, PH_IFACES_MAX);

	ls->n = 0;
	for (int i = 0; i < n; i++) {
		struct ph_iface_live live;

		ph_iface_probe(inst, &recs[i], &live);
		if (live.state == PH_IFACE_LIVE)
			ls->recs[ls->n++] = recs[i];
	}
	return ls->n;
}

static void progs_of(const struct ph_instance *inst, struct ph_progs *p)
{
	p->xdp_fd = inst->xdp_prog_fd;
	p->tc_fd = inst->tc_prog_fd;
	p->xdp_id = inst->xdp_prog_id;
	p->tc_id = inst->tc_prog_id;
	p->inst = inst;
}

/* Swap every live interface from -> to; on a failure swap back those
 * done. */
static int swap_all(const struct ph_instance *inst, struct live_set *ls,
		    const struct ph_progs *from, const struct ph_progs *to)
{
	for (int i = 0; i < ls->n; i++) {
		int r = ph_iface_replace(inst, &ls->recs[i], from, to,
					 &ls->done[i]);

		if (!r)
			continue;
		while (i-- > 0)
			if (ph_iface_replace(inst, &ls->done[i], to, from, NULL))
				pr_warn("%s: could not put the old programs back",
					ls->done[i].name);
		return r;
	}
	return PH_EXIT_OK;
}

static void load_opts_of(const struct ph_instance *inst,
			 const struct ph_state *st, struct ph_load_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->fail_open = st->fail_open;
	o->failsafe_port = st->failsafe_port;
	o->flows_max = inst->max_entries[PH_MAP_FLOWS];
	o->half_open_max = inst->max_entries[PH_MAP_HALF_OPEN];
}

static int upgrade_programs(struct ph_instance *inst, struct live_set *ls,
			    const struct ph_load_opts *o)
{
	char staging[PATH_MAX + sizeof(PH_STAGING_DIR) + 1];
	struct ph_progs from, to;
	int r, err;

	/* Same maps: the pins are reused, only programs are new. */
	r = ph_progs_load(inst->pin_dir, o, &to);
	if (r)
		return r;
	to.inst = inst; /* same maps */
	progs_of(inst, &from);
	r = swap_all(inst, ls, &from, &to);
	if (r) {
		ph_progs_close(&to);
		return r;
	}
	err = ph_pin_replace(to.xdp_fd, inst->pin_dir, PH_PIN_PROG_XDP);
	if (!err)
		err = ph_pin_replace(to.tc_fd, inst->pin_dir, PH_PIN_PROG_TC);
	snprintf(staging, sizeof(staging), "%s/%s", inst->pin_dir, PH_STAGING_DIR);
	rmdir(staging);
	if (err) {
		pr_warn("upgrade: cannot pin the new programs in %s: %s; putting the old ones back",
			inst->pin_dir, strerror(-err));
		for (int i = 0; i < ls->n; i++)
			ph_iface_replace(inst, &ls->done[i], &to, &from, NULL);
		ph_pin_replace(from.xdp_fd, inst->pin_dir, PH_PIN_PROG_XDP);
		ph_progs_close(&to);
		return PH_EXIT_ENV;
	}
	for (int i = 0; i < ls->n; i++)
		bpf_map_update_elem(inst->fd[PH_MAP_IFACES], &ls->done[i].ifindex,
				    &ls->done[i], BPF_ANY);
	err = ph_state_write_build(inst);
	if (err)
		pr_warn("upgrade: cannot record the build in %s/state: %s",
			inst->pin_dir, strerror(-err));
	ph_progs_close(&to);
	return PH_EXIT_OK;
}

static int migrate(struct ph_instance *inst, struct live_set *ls,
		   const struct ph_load_opts *o, const struct ph_state *ost,
		   const struct ph_policy *pol, struct ph_upgrade_result *res)
{
	char staging[PATH_MAX + sizeof(PH_STAGING_DIR) + 1];
	struct ph_instance ni;
	struct ph_progs from, to;
	struct ph_state st;
	__u32 key = 0;
	int r, err;

	if (!pol) {
		pr_warn("upgrade: %s has another layout (%s): the policy must be rebuilt, and none could be read",
			inst->pin_dir, inst->why);
		return PH_EXIT_USER;
	}
	snprintf(staging, sizeof(staging), "%s/%s", inst->pin_dir,
		 PH_STAGING_DIR);
	if (ph_path_exists(staging))
		ph_instance_remove(staging); /* an interrupted upgrade */
	r = ph_instance_create(staging, o);
	if (r)
		return r;
	r = ph_instance_open(&ni, staging);
	if (!r && !ni.compatible) {
		pr_warn("upgrade: internal error: the new instance does not match this build (%s)",
			ni.why);
		ph_instance_close(&ni);
		r = PH_EXIT_ENV;
	}
	if (r) {
		ph_instance_remove(staging);
		return r > 0 ? r : PH_EXIT_ENV;
	}
	/* The generation goes on from the old instance's. */
	if (!ph_state_read(&ni, &st)) {
		st.generation = ost->generation;
		bpf_map_update_elem(ni.fd[PH_MAP_STATE], &key, &st, BPF_ANY);
	}
	r = ph_policy_install(&ni, pol, &res->generation);
	if (r)
		goto fail;
	res->entries = copy_tables(inst->pin_dir, staging, false);
	progs_of(inst, &from);
	progs_of(&ni, &to);
	r = swap_all(inst, ls, &from, &to);
	if (r)
		goto fail;
	/* What the old programs created until the last swap. */
	res->entries += copy_tables(inst->pin_dir, staging, true);
	for (int i = 0; i < ls->n; i++)
		bpf_map_update_elem(ni.fd[PH_MAP_IFACES], &ls->done[i].ifindex,
				    &ls->done[i], BPF_ANY);
	ph_instance_close(&ni);
	err = ph_instance_move(staging, inst->pin_dir);
	if (err) {
		/* The interfaces run the new programs on the new maps, held
		 * by the programs themselves; only the pins are mixed. */
		pr_warn("upgrade: moving the new pins into %s failed: %s; the interfaces run the new programs, but the pins are inconsistent: run 'pinhole --pin-dir %s detach --all' and attach again",
			inst->pin_dir, strerror(-err), inst->pin_dir);
		return PH_EXIT_ENV;
	}
	rmdir(staging);
	res->migrated = true;
	return PH_EXIT_OK;
fail:
	ph_instance_close(&ni);
	ph_instance_remove(staging);
	return r;
}

int ph_upgrade(struct ph_instance *inst, const struct ph_policy *pol,
	       struct ph_upgrade_result *res)
{
	struct ph_load_opts o;
	struct live_set *ls;
	struct ph_state ost;
	char pin_dir[PATH_MAX];
	int r;

	memset(res, 0, sizeof(*res));
	if (inst->foreign) {
		pr_warn("%s/%s was not made by pinhole; remove it before upgrading",
			inst->pin_dir, inst->foreign_name);
		return PH_EXIT_ENV;
	}
	if (ph_state_read(inst, &ost)) {
		pr_warn("upgrade: cannot read %s/state", inst->pin_dir);
		return PH_EXIT_ENV;
	}
	ph_strlcpy(res->from_build, ost.build, sizeof(res->from_build));
	res->from_layout = ost.layout_version;
	ls = calloc(1, sizeof(*ls));
	if (!ls) {
		pr_warn("out of memory");
		return PH_EXIT_ENV;
	}
	if (!live_ifaces(inst, ls)) {
		pr_warn("%s: nothing attached, nothing to upgrade", inst->pin_dir);
		free(ls);
		return PH_EXIT_USER;
	}
	if (inst->xdp_prog_fd < 0 || inst->tc_prog_fd < 0) {
		pr_warn("upgrade: %s lacks its program pins (%s); detach it and attach again",
			inst->pin_dir, inst->why);
		free(ls);
		return PH_EXIT_ENV;
	}
	load_opts_of(inst, &ost, &o);
	if (inst->compatible)
		r = upgrade_programs(inst, ls, &o);
	else
		r = migrate(inst, ls, &o, &ost, pol, res);
	if (!r) {
		res->nifaces = ls->n;
		pr_info("%s: upgraded from %s (layout %u) to %s (layout %u) on %d interface%s without a gap%s",
			inst->pin_dir, ost.build[0] ? ost.build : "an older build",
			ost.layout_version, ph_build_id(), PH_LAYOUT_VERSION,
			ls->n, ls->n == 1 ? "" : "s",
			res->migrated ? "; flows and pinholes migrated to the new maps" :
					"; maps kept as they are");
	}
	free(ls);
	ph_strlcpy(pin_dir, inst->pin_dir, sizeof(pin_dir));
	ph_instance_close(inst);
	if (ph_instance_open(inst, pin_dir) && !r)
		r = PH_EXIT_ENV;
	return r;
}
