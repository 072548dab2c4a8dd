// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "counters.h"
#include "log.h"
#include "maps_io.h"
#include "util.h"

/* Sums a per-CPU ph_counter element over CPUs. 0 or -errno. */
static int percpu_counter(int fd, __u32 key, struct ph_counter *sum)
{
	static struct ph_counter *per;
	static int ncpu;

	memset(sum, 0, sizeof(*sum));
	if (!per) {
		ncpu = libbpf_num_possible_cpus();
		if (ncpu <= 0)
			return ncpu ? ncpu : -EINVAL;
		per = calloc((size_t)ncpu, sizeof(*per));
		if (!per)
			return -ENOMEM;
	}
	if (bpf_map_lookup_elem(fd, &key, per))
		return -errno;
	for (int c = 0; c < ncpu; c++) {
		sum->packets += per[c].packets;
		sum->bytes += per[c].bytes;
	}
	return 0;
}

/* Writes zero to one element of a per-CPU ph_counter array. */
static int percpu_zero(int fd, __u32 key)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ph_counter *z;
	int err = 0;

	if (ncpu <= 0)
		return -EINVAL;
	z = calloc((size_t)ncpu, sizeof(*z));
	if (!z)
		return -ENOMEM;
	if (bpf_map_update_elem(fd, &key, z, BPF_ANY))
		err = -errno;
	free(z);
	return err;
}

/* ------------------------------------------------------------ svc ids */

int ph_svc_ids_assign(const struct ph_instance *inst,
		      const struct ph_policy *pol, __u32 active_slot,
		      __u32 active_nrules, __u32 generation, __u16 *ids)
{
	int fd = inst->fd[PH_MAP_SVC_IDS], cfd = inst->fd[PH_MAP_SVC_COUNTERS];
	struct ph_svc_name *names = calloc(PH_SVC_MAX, sizeof(*names));
	bool *busy = calloc(PH_SVC_MAX, sizeof(*busy)); /* active slot or pol */
	bool warned = false;
	int err = 0;

	if (!names || !busy) {
		err = -ENOMEM;
		goto out;
	}
	if (fd < 0 || cfd < 0) {
		err = -ENOENT;
		goto out;
	}
	for (__u32 id = 1; id < PH_SVC_MAX; id++)
		if (bpf_map_lookup_elem(fd, &id, &names[id])) {
			err = -errno;
			goto out;
		}
	/* Ids the policy in force counts with must not move. */
	for (__u32 i = 0; i < active_nrules && i < PH_MAX_RULES; i++) {
		__u32 key = active_slot * PH_MAX_RULES + i;
		struct ph_rule r;

		if (!bpf_map_lookup_elem(inst->fd[PH_MAP_RULES], &key, &r) &&
		    r.svc_id && r.svc_id < PH_SVC_MAX)
			busy[r.svc_id] = true;
	}
	/* Names that stay keep their id. */
	for (int s = 0; s < pol->nservices; s++) {
		ids[s] = 0;
		for (__u32 id = 1; id < PH_SVC_MAX; id++)
			if (names[id].name[0] &&
			    !strncmp(names[id].name, pol->services[s].name,
				     sizeof(names[id].name) - 1)) {
				ids[s] = (__u16)id;
				busy[id] = true;
				/* last used: the oldest retired goes first */
				names[id].generation = generation;
				if (bpf_map_update_elem(fd, &id, &names[id],
							BPF_ANY))
					err = -errno;
				break;
			}
	}
	if (err)
		goto out;
	for (int s = 0; s < pol->nservices; s++) {
		bool pick_free;
		__u32 pick = 0;

		if (ids[s])
			continue;
		/* A never-used id, else the oldest retired one: a flow
		 * that outlived its service counts on only until then. */
		for (__u32 id = 1; id < PH_SVC_MAX && !pick; id++)
			if (!names[id].name[0] && !busy[id])
				pick = id;
		pick_free = pick != 0;
		for (__u32 id = 1; id < PH_SVC_MAX && !pick_free; id++)
			if (!busy[id] &&
			    (!pick || names[id].generation <
					      names[pick].generation))
				pick = id;
		if (!pick) {
			if (!warned)
				pr_info("more than %d services: %s and later ones are not counted by service",
					PH_SVC_MAX - 1, pol->services[s].name);
			warned = true;
			continue;
		}
		for (int d = 0; d < PH_DIR_MAX && !err; d++)
			for (int drop = 0; drop < 2 && !err; drop++)
				err = percpu_zero(cfd, PH_SVC_IDX(d, drop, pick));
		if (err)
			goto out;
		memset(&names[pick], 0, sizeof(names[pick]));
		ph_strlcpy(names[pick].name, pol->services[s].name,
			   sizeof(names[pick].name));
		names[pick].generation = generation;
		if (bpf_map_update_elem(fd, &pick, &names[pick], BPF_ANY)) {
			err = -errno;
			goto out;
		}
		busy[pick] = true;
		ids[s] = (__u16)pick;
	}
out:
	free(names);
	free(busy);
	return err;
}

void ph_svc_name(const struct ph_instance *inst, __u16 id, char *buf,
		 size_t len)
{
	struct ph_svc_name n = {};
	__u32 key = id;

	buf[0] = '\0';
	if (!id || id >= PH_SVC_MAX || inst->fd[PH_MAP_SVC_IDS] < 0 ||
	    bpf_map_lookup_elem(inst->fd[PH_MAP_SVC_IDS], &key, &n))
		return;
	n.name[sizeof(n.name) - 1] = '\0';
	ph_strlcpy(buf, n.name, len);
}

int ph_svc_stats_read(const struct ph_instance *inst,
		      struct ph_svc_stat **out, int *n,
		      struct ph_svc_stat *none)
{
	struct ph_counter tot[PH_COUNTER_ENTRIES];
	struct ph_svc_stat *v = NULL;
	bool *seen = calloc(PH_SVC_MAX, sizeof(*seen));
	struct ph_view view;
	int err, cnt = 0;

	*out = NULL;
	*n = 0;
	memset(none, 0, sizeof(*none));
	ph_strlcpy(none->name, "(none)", sizeof(none->name));
	err = seen ? ph_view_read(inst, &view) : -ENOMEM;
	if (!err)
		err = ph_counters_read(inst, tot);
	if (!err && inst->fd[PH_MAP_SVC_COUNTERS] < 0)
		err = -ENOENT;
	if (!err) {
		__u32 nr = view.meta[view.st.active_slot].nrules;

		v = calloc(nr ? nr : 1, sizeof(*v));
		if (!v)
			err = -ENOMEM;
		for (__u32 i = 0; !err && i < nr && i < PH_MAX_RULES; i++) {
			__u32 key = view.st.active_slot * PH_MAX_RULES + i;
			struct ph_rule r;

			if (bpf_map_lookup_elem(inst->fd[PH_MAP_RULES], &key, &r))
				continue;
			if (!r.svc_id || r.svc_id >= PH_SVC_MAX ||
			    seen[r.svc_id])
				continue;
			seen[r.svc_id] = true;
			v[cnt].id = r.svc_id;
			ph_svc_name(inst, r.svc_id, v[cnt].name,
				    sizeof(v[cnt].name));
			for (int d = 0; d < PH_DIR_MAX && !err; d++)
				for (int drop = 0; drop < 2 && !err; drop++)
					err = percpu_counter(
						inst->fd[PH_MAP_SVC_COUNTERS],
						PH_SVC_IDX(d, drop, r.svc_id),
						&v[cnt].c[d][drop]);
			cnt++;
		}
	}
	free(seen);
	if (err) {
		free(v);
		return err;
	}
	/* What no service of the policy in force was credited with:
	 * packets no rule or flow named a service for, and those of
	 * retired services. */
	for (int rs = 0; rs < PH_R_MAX; rs++)
		for (int d = 0; d < PH_DIR_MAX; d++) {
			struct ph_counter *c =
				&none->c[d][PH_REASON_IS_DROP(rs)];

			c->packets += tot[PH_COUNTER_IDX(d, rs)].packets;
			c->bytes += tot[PH_COUNTER_IDX(d, rs)].bytes;
		}
	for (int i = 0; i < cnt; i++)
		for (int d = 0; d < PH_DIR_MAX; d++)
			for (int drop = 0; drop < 2; drop++) {
				struct ph_counter *c = &none->c[d][drop];
				const struct ph_counter *s = &v[i].c[d][drop];

				/* the two maps are read at slightly
				 * different times */
				c->packets -= s->packets < c->packets ?
						      s->packets : c->packets;
				c->bytes -= s->bytes < c->bytes ? s->bytes :
								  c->bytes;
			}
	*out = v;
	*n = cnt;
	return 0;
}

/* ------------------------------------------------------------ ifaces */

void ph_iface_counters_claim(const struct ph_instance *inst, int ifindex)
{
	struct ph_iface recs[PH_IFACES_MAX];
	__u32 slot = PH_IFACE_SLOT(ifindex);
	int n = ph_ifaces_list(inst, recs, PH_IFACES_MAX);

	for (int i = 0; i < n; i++)
		if (recs[i].ifindex != (__u32)ifindex &&
		    PH_IFACE_SLOT(recs[i].ifindex) == slot) {
			pr_info("interface %d shares counter slot %u with %s (ifindex %u): stats --by iface reports them together",
				ifindex, slot, recs[i].name, recs[i].ifindex);
			return;
		}
	for (__u32 k = 0; k < PH_COUNTER_ENTRIES; k++)
		percpu_zero(inst->fd[PH_MAP_COUNTERS],
			    slot * PH_COUNTER_ENTRIES + k);
}

int ph_iface_stats_read(const struct ph_instance *inst,
			struct ph_iface_stat **out, int *n)
{
	struct ph_iface recs[PH_IFACES_MAX];
	struct ph_iface_stat *v;
	int cnt = ph_ifaces_list(inst, recs, PH_IFACES_MAX), err = 0;

	*out = NULL;
	*n = 0;
	if (cnt < 0)
		return cnt;
	v = calloc(cnt ? (size_t)cnt : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int i = 0; i < cnt && !err; i++) {
		__u32 slot = PH_IFACE_SLOT(recs[i].ifindex);

		v[i].ifindex = recs[i].ifindex;
		ph_strlcpy(v[i].name, recs[i].name, sizeof(v[i].name));
		for (int j = 0; j < cnt; j++)
			if (j != i && PH_IFACE_SLOT(recs[j].ifindex) == slot)
				v[i].shared = true;
		for (__u32 k = 0; k < PH_COUNTER_ENTRIES && !err; k++)
			err = percpu_counter(inst->fd[PH_MAP_COUNTERS],
					     slot * PH_COUNTER_ENTRIES + k,
					     &v[i].r[k]);
	}
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	*n = cnt;
	return 0;
}
