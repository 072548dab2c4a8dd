// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * `pinhole flows [FILTER...]`, `flows delete FILTER...`, `flows flush`:
 * the entries of flows and half_open, listed, deleted or flushed, like
 * `conntrack -L/-D/-F` (docs/cli.md, "flows"). Expired entries the
 * datapath has not met since are shown as expired, never as live.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "flow_filter.h"
#include "flows_cmd.h"
#include "log.h"
#include "maps_io.h"
#include "output.h"
#include "util.h"

struct flows_out {
	const struct ph_instance *inst;
	const struct ph_flow_filter *flt;
	struct ph_view v;
	__u64 now;
	struct ph_json *j;
	struct ph_table *t;
	/* delete: the matching keys, per table */
	bool collect;
	struct ph_flow_key *keys[2];
	int nkeys[2], cap[2];
	__u64 n, nexpired;
};

static bool is_icmp(__u8 proto)
{
	return proto == 1 || proto == 58;
}

static void flow_json(struct ph_json *j, const struct ph_flow_key *k,
		      const struct ph_flow *f, bool half_open, const char *svc,
		      __u64 now, bool live, __u64 left)
{
	char proto[8], laddr[64], raddr[64];
	__u64 age_ns = now > f->created_ns ? now - f->created_ns : 0;
	__u64 idle_ns = now > f->last_seen_ns ? now - f->last_seen_ns : 0;

	ph_fmt_addr(k->local, laddr, sizeof(laddr));
	ph_fmt_addr(k->remote, raddr, sizeof(raddr));
	ph_json_object_begin(j);
	ph_json_kv_string(j, "table", half_open ? "half_open" : "flows");
	ph_json_kv_string(j, "proto", ph_proto_name(k->proto, proto, sizeof(proto)));
	ph_json_kv_string(j, "local_addr", laddr);
	ph_json_kv_uint(j, is_icmp(k->proto) ? "icmp_id" : "local_port",
			ntohs(k->lport));
	ph_json_kv_string(j, "remote_addr", raddr);
	if (!is_icmp(k->proto))
		ph_json_kv_uint(j, "remote_port", ntohs(k->rport));
	ph_json_kv_string(j, "state", ph_flow_state_name(f->state, half_open));
	ph_json_kv_string(j, "origin", ph_flow_origin_name(f->origin));
	ph_json_kv_uint(j, "age_ms", age_ns / 1000000ull);
	ph_json_kv_uint(j, "idle_ms", idle_ns / 1000000ull);
	ph_json_kv_bool(j, "expired", !live);
	ph_json_kv_uint(j, "expires_in_ms", left / 1000000ull);
	ph_json_kv_string(j, "service", svc);
	ph_json_kv_uint(j, "rule", f->rule);
	ph_json_kv_uint(j, "session", f->session);
	ph_json_kv_bool(j, "ftp_control", f->flags & PH_FF_FTP_CTRL);
	ph_json_kv_bool(j, "ftps_control", f->flags & PH_FF_FTPS_CTRL);
	ph_json_kv_bool(j, "ftps_counted", f->flags & PH_FF_FTPS_COUNTED);
	ph_json_object_end(j);
}

static void flow_text(struct ph_table *t, const struct ph_flow_key *k,
		      const struct ph_flow *f, bool half_open, const char *svc,
		      __u64 now, bool live, __u64 left)
{
	char proto[8], laddr[64], local[80], remote[80], age[32], idle[32];
	char expires[40];
	__u16 lport = ntohs(k->lport), rport = ntohs(k->rport);
	const char *row[] = { ph_proto_name(k->proto, proto, sizeof(proto)),
			      local, remote, ph_flow_state_name(f->state, half_open),
			      ph_flow_origin_name(f->origin), age, idle, expires,
			      svc };

	if (is_icmp(k->proto)) {
		ph_fmt_addr(k->local, laddr, sizeof(laddr));
		snprintf(local, sizeof(local), "%s id %u", laddr, lport);
		ph_fmt_addr(k->remote, remote, sizeof(remote));
	} else {
		ph_fmt_addr_port(k->local, lport, local, sizeof(local));
		ph_fmt_addr_port(k->remote, rport, remote, sizeof(remote));
	}
	ph_fmt_duration(now > f->created_ns ? now - f->created_ns : 0, age,
			sizeof(age));
	ph_fmt_duration(now > f->last_seen_ns ? now - f->last_seen_ns : 0, idle,
			sizeof(idle));
	if (live)
		ph_fmt_duration(left, expires, sizeof(expires));
	else
		ph_strlcpy(expires, "expired", sizeof(expires));
	ph_table_add(t, row);
}

static int keep_key(struct flows_out *o, int table, const struct ph_flow_key *k)
{
	if (o->nkeys[table] == o->cap[table]) {
		int cap = o->cap[table] ? o->cap[table] * 2 : 256;
		struct ph_flow_key *nk = realloc(o->keys[table], cap * sizeof(*nk));

		if (!nk)
			return -ENOMEM;
		o->keys[table] = nk;
		o->cap[table] = cap;
	}
	o->keys[table][o->nkeys[table]++] = *k;
	return 0;
}

static int flow_row(const struct ph_flow_key *k, const struct ph_flow *f,
		    bool half_open, void *ctx)
{
	struct flows_out *o = ctx;
	char svc[PH_NAME_MAX];
	__u64 left;
	bool live = ph_flow_expires_in(k, f, half_open, o->now, &left);

	ph_flow_service(o->inst, &o->v, f, svc, sizeof(svc));
	if (!ph_flow_filter_match(o->flt, k, f, half_open, o->now, svc))
		return 0;
	if (o->collect && keep_key(o, half_open, k))
		return -ENOMEM;
	o->n++;
	o->nexpired += !live;
	if (o->j)
		flow_json(o->j, k, f, half_open, svc, o->now, live, left);
	else if (o->t)
		flow_text(o->t, k, f, half_open, svc, o->now, live, left);
	return 0;
}

static int delete_keys(const struct ph_instance *inst, struct flows_out *o,
		       __u64 *gone)
{
	static const enum ph_map_id map[2] = { PH_MAP_FLOWS, PH_MAP_HALF_OPEN };
	int err = 0;

	for (int t = 0; t < 2; t++) {
		gone[t] = 0;
		for (int i = 0; i < o->nkeys[t]; i++) {
			if (!bpf_map_delete_elem(inst->fd[map[t]], &o->keys[t][i]))
				gone[t]++;
			else if (errno != ENOENT && !err)
				err = -errno; /* ENOENT: it ended meanwhile */
		}
	}
	return err;
}

int ph_cmd_flows(const struct ph_instance *inst, bool json, int argc,
		 char **argv)
{
	static const char *const hdr[] = { "PROTO", "LOCAL", "REMOTE", "STATE",
					   "ORIGIN", "|AGE", "|IDLE", "|EXPIRES",
					   "SERVICE" };
	const char *verb = argc ? argv[0] : "";
	bool del = !strcmp(verb, "delete"), flush = !strcmp(verb, "flush");
	struct ph_flow_filter flt;
	struct flows_out o = { .inst = inst, .flt = &flt };
	struct ph_table t;
	struct ph_json j;
	__u64 gone[2] = { 0, 0 };
	char why[256];
	int err;

	if (del || flush) {
		argc--;
		argv++;
	}
	if (flush && argc) {
		pr_warn("flows flush takes no filter (it empties flows and half_open); to delete some entries use 'flows delete FILTER...'");
		return PH_EXIT_USER;
	}
	if (del && !argc) {
		pr_warn("flows delete needs a filter (e.g. 'flows delete proto tcp lport 22'); 'flows flush' deletes every entry");
		return PH_EXIT_USER;
	}
	if (ph_flow_filter_parse(&flt, argc, argv, why, sizeof(why))) {
		pr_warn("flows: %s; see docs/cli.md (flows)", why);
		return PH_EXIT_USER;
	}
	o.collect = del || flush;
	o.now = ph_now_coarse_ns();
	err = ph_view_read(inst, &o.v);
	if (err) {
		pr_warn("cannot read %s/state: %s", inst->pin_dir, strerror(-err));
		return PH_EXIT_ENV;
	}
	if (json) {
		ph_json_init(&j, stdout);
		o.j = &j;
		ph_json_object_begin(&j);
		ph_json_kv_string(&j, "pin_dir", inst->pin_dir);
		ph_json_key(&j, o.collect ? "deleted" : "flows");
		ph_json_array_begin(&j);
	} else {
		ph_table_init(&t, ARRAY_SIZE(hdr), hdr);
		o.t = &t;
	}
	err = ph_flows_foreach(inst, flow_row, &o);
	if (!err && o.collect)
		err = delete_keys(inst, &o, gone);
	if (json) {
		ph_json_array_end(&j);
		if (o.collect) {
			ph_json_kv_uint(&j, "flows_deleted", gone[0]);
			ph_json_kv_uint(&j, "half_open_deleted", gone[1]);
		}
		ph_json_object_end(&j);
		ph_json_finish(&j);
	} else {
		if (t.nrows)
			ph_table_print(&t, stdout, "");
		else if (!o.collect)
			printf("(no flows%s)\n", argc ? " match" : "");
		ph_table_free(&t);
		if (o.collect)
			printf("pinhole: deleted %llu flows and %llu half-open entries\n",
			       (unsigned long long)gone[0],
			       (unsigned long long)gone[1]);
	}
	free(o.keys[0]);
	free(o.keys[1]);
	if (err < 0) {
		pr_warn("cannot %s flows: %s", o.collect ? "delete" : "read",
			strerror(-err));
		return PH_EXIT_ENV;
	}
	return PH_EXIT_OK;
}

struct expired_count {
	__u64 now, n[2], expired[2];
};

static int count_expired(const struct ph_flow_key *k, const struct ph_flow *f,
			 bool half_open, void *ctx)
{
	struct expired_count *c = ctx;
	__u64 left;

	c->n[half_open]++;
	c->expired[half_open] += !ph_flow_expires_in(k, f, half_open, c->now, &left);
	return 0;
}

int ph_flows_count(const struct ph_instance *inst, __u64 entries[2],
		   __u64 expired[2], bool *partial)
{
	struct expired_count c = { .now = ph_now_coarse_ns() };
	int err = ph_flows_foreach_budget(inst, count_expired, &c,
					  PH_WALK_BUDGET_NS, partial);

	for (int t = 0; t < 2; t++) {
		entries[t] = c.n[t];
		expired[t] = c.expired[t];
	}
	return err;
}
