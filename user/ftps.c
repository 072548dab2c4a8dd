// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * FTPS control sessions: reconciliation of ftps_peers with the flow table
 * (ftps.h, docs/tracker.md "FTPS sessions").
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <bpf/bpf.h>

#include "ftps.h"
#include "tracker.h"
#include "util.h"

/* A disagreement seen in the last pass, awaiting confirmation. */
struct pend {
	struct ph_ftps_peer_key key;
	__u64 last_ns;
	__u32 have, want;
	bool existed;
};

struct ph_ftps_rec {
	const struct ph_ftps_ops *ops;
	void *ctx;
	struct pend *prev;
	size_t nprev;
	__u64 fixed;
};

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct ph_ftps_peer_key));
}

/* struct ph_ftps_entry and struct pend begin with their key. */
_Static_assert(offsetof(struct ph_ftps_entry, key) == 0, "key first");
_Static_assert(offsetof(struct pend, key) == 0, "key first");

struct ph_ftps_rec *ph_ftps_rec_new(const struct ph_ftps_ops *ops, void *ctx)
{
	struct ph_ftps_rec *r;

	if (!ops || !ops->put || !ops->del)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->ops = ops;
	r->ctx = ctx;
	return r;
}

void ph_ftps_rec_free(struct ph_ftps_rec *r)
{
	if (!r)
		return;
	free(r->prev);
	free(r);
}

__u64 ph_ftps_fixed(const struct ph_ftps_rec *r)
{
	return r->fixed;
}

static void rlog(struct ph_ftps_rec *r, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rlog(struct ph_ftps_rec *r, int level, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!r->ops->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->ops->log(r->ctx, level, line);
}

/* Writes the count the flow table says; returns 1 if written. */
static int correct(struct ph_ftps_rec *r, const struct pend *d, int *logged)
{
	char peer[64], local[64];
	int err;

	if (d->want)
		err = r->ops->put(r->ctx, &d->key, d->want, d->existed);
	else
		err = r->ops->del(r->ctx, &d->key);
	/* Changed meanwhile (the datapath counted or gave back): the next
	 * passes look again. */
	if (err == -ENOENT || err == -EEXIST)
		return 0;
	ph_fmt_addr(d->key.remote, peer, sizeof(peer));
	ph_fmt_addr(d->key.local, local, sizeof(local));
	if (err) {
		rlog(r, PH_TRK_LOG_WARN,
		     "ftps: cannot correct the FTPS sessions of %s -> %s: %s",
		     peer, local, strerror(-err));
		return 0;
	}
	if ((*logged)++ < PH_FTPS_LOG_MAX)
		rlog(r, PH_TRK_LOG_INFO,
		     "ftps: %s -> %s: %u live FTPS control connection%s, ftps_peers counted %u: corrected",
		     peer, local, d->want, d->want == 1 ? "" : "s", d->have);
	return 1;
}

static bool same(const struct pend *a, const struct pend *b)
{
	return a->have == b->have && a->want == b->want &&
	       a->existed == b->existed && a->last_ns == b->last_ns;
}

int ph_ftps_reconcile(struct ph_ftps_rec *r, struct ph_ftps_entry *map,
		      size_t nmap, struct ph_ftps_peer_key *live, size_t nlive)
{
	struct pend *next = NULL, d, *p;
	size_t i = 0, j = 0, nnext = 0, cap = 0;
	int fixed = 0, logged = 0, c;

	if (nmap)
		qsort(map, nmap, sizeof(*map), key_cmp);
	if (nlive)
		qsort(live, nlive, sizeof(*live), key_cmp);
	while (i < nmap || j < nlive) {
		c = i == nmap ? 1 : j == nlive ? -1 : key_cmp(&map[i].key, &live[j]);
		memset(&d, 0, sizeof(d));
		if (c <= 0) {
			d.key = map[i].key;
			d.have = map[i].refs;
			d.last_ns = map[i].last_ns;
			d.existed = true;
			i++;
		} else {
			d.key = live[j];
		}
		while (j < nlive && !key_cmp(&live[j], &d.key)) {
			d.want++;
			j++;
		}
		/* An entry at 0 is as wrong as a wrong count: the datapath
		 * deletes an entry when its count reaches 0. */
		if (d.have == d.want && !(d.existed && !d.want))
			continue;
		p = r->nprev ? bsearch(&d.key, r->prev, r->nprev,
				       sizeof(*r->prev), key_cmp) : NULL;
		if (p && same(p, &d)) {
			fixed += correct(r, &d, &logged);
			continue;
		}
		if (nnext == cap) {
			struct pend *n;

			cap = cap ? 2 * cap : 16;
			n = realloc(next, cap * sizeof(*next));
			if (!n) {
				free(next);
				return -ENOMEM;
			}
			next = n;
		}
		next[nnext++] = d; /* in key order: the merge is sorted */
	}
	free(r->prev);
	r->prev = next;
	r->nprev = nnext;
	r->fixed += (__u64)fixed;
	if (logged > PH_FTPS_LOG_MAX)
		rlog(r, PH_TRK_LOG_INFO, "ftps: %d more corrections",
		     logged - PH_FTPS_LOG_MAX);
	return fixed;
}

/* ---------------------------------------------------------------- maps */

int ph_ftps_read_peers(int fd, struct ph_ftps_entry **out)
{
	struct ph_ftps_peer_key key, next;
	struct ph_ftps_entry *a;
	struct ph_ftps_peer v;
	size_t n = 0, cap = PH_FTPS_PEERS_MAX;
	bool first = true;

	*out = NULL;
	a = malloc(cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	/* Entries come and go while we walk: bound the walk. */
	for (__u32 seen = 0; seen < 2 * PH_FTPS_PEERS_MAX + 16 && n < cap;
	     seen++) {
		if (bpf_map_get_next_key(fd, first ? NULL : &key, &next)) {
			if (errno != ENOENT) {
				int err = -errno;

				free(a);
				return err;
			}
			break;
		}
		first = false;
		key = next;
		if (bpf_map_lookup_elem_flags(fd, &next, &v, BPF_F_LOCK))
			continue; /* gone meanwhile */
		a[n].key = next;
		a[n].refs = v.refs;
		a[n].last_ns = v.last_ns;
		n++;
	}
	*out = a;
	return (int)n;
}

bool ph_ftps_flow_live(const struct ph_flow_key *k, const struct ph_flow *f,
		       __u64 now, ph_ftps_known_fn known, void *ctx)
{
	/* The datapath refreshes last_seen_ns at most once a second. */
	const __u64 idle = (PH_TCP_EST_TIMEOUT_S + 2ull) * 1000000000ull;

	if (k->proto != IPPROTO_TCP || f->state != PH_FS_ESTABLISHED ||
	    !(f->flags & (PH_FF_FTP_CTRL | PH_FF_FTPS_CTRL)))
		return false;
	if ((__s64)(now - f->last_seen_ns) > (__s64)idle)
		return false;
	return (f->flags & PH_FF_FTPS_COUNTED) || (known && known(ctx, k, f));
}

struct live_buf {
	struct ph_ftps_peer_key *a;
	size_t n, cap;
};

static int live_add(struct live_buf *b, const struct ph_flow_key *k)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		struct ph_ftps_peer_key *a = realloc(b->a, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		b->a = a;
		b->cap = cap;
	}
	memcpy(b->a[b->n].remote, k->remote, 16);
	memcpy(b->a[b->n].local, k->local, 16);
	b->n++;
	return 0;
}

/* One key and value at a time: for kernels or maps without batch ops. */
static int live_walk(int fd, __u64 now, ph_ftps_known_fn known, void *ctx,
		     struct live_buf *b)
{
	struct ph_flow_key key, next;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct ph_flow f;
	bool first = true;
	__u64 bound;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	bound = 2ull * info.max_entries + 16;
	for (__u64 seen = 0; seen < bound; seen++) {
		if (bpf_map_get_next_key(fd, first ? NULL : &key, &next))
			return errno == ENOENT ? 0 : -errno;
		first = false;
		key = next;
		if (bpf_map_lookup_elem(fd, &next, &f))
			continue;
		if (ph_ftps_flow_live(&next, &f, now, known, ctx) &&
		    live_add(b, &next))
			return -ENOMEM;
	}
	return 0;
}

#define LIVE_BATCH 512

int ph_ftps_read_live(int flows_fd, __u64 now, ph_ftps_known_fn known,
		      void *ctx, struct ph_ftps_peer_key **out)
{
	static struct ph_flow_key keys[LIVE_BATCH];
	static struct ph_flow vals[LIVE_BATCH];
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	struct live_buf b = {};
	bool first = true;
	__u32 token = 0, count;
	int err;

	*out = NULL;
	/* The flow table may hold 262144 entries: read it in batches, a few
	 * system calls per pass instead of two per entry. */
	for (;;) {
		count = LIVE_BATCH;
		err = bpf_map_lookup_batch(flows_fd, first ? NULL : &token,
					   &token, keys, vals, &count, &o);
		if (err && err != -ENOENT) {
			/* No batch support, or a bucket over LIVE_BATCH
			 * (ENOSPC): start over the slow way. */
			b.n = 0;
			err = live_walk(flows_fd, now, known, ctx, &b);
			break;
		}
		for (__u32 i = 0; i < count && i < LIVE_BATCH; i++)
			if (ph_ftps_flow_live(&keys[i], &vals[i], now, known,
					      ctx) &&
			    live_add(&b, &keys[i])) {
				free(b.a);
				return -ENOMEM;
			}
		if (err == -ENOENT) {
			err = 0;
			break;
		}
		first = false;
	}
	if (err) {
		free(b.a);
		return err;
	}
	*out = b.a;
	return (int)b.n;
}

static int map_put(void *ctx, const struct ph_ftps_peer_key *k, __u32 refs,
		   bool existed)
{
	const struct ph_ftps_maps *m = ctx;
	struct ph_ftps_peer v;

	memset(&v, 0, sizeof(v));
	v.refs = refs;
	v.last_ns = ph_now_coarse_ns();
	return bpf_map_update_elem(m->peers_fd, k, &v,
				   BPF_F_LOCK | (existed ? BPF_EXIST : BPF_NOEXIST)) ?
		       -errno : 0;
}

static int map_del(void *ctx, const struct ph_ftps_peer_key *k)
{
	const struct ph_ftps_maps *m = ctx;

	return bpf_map_delete_elem(m->peers_fd, k) ? -errno : 0;
}

static void map_log(void *ctx, int level, const char *line)
{
	const struct ph_ftps_maps *m = ctx;

	if (m->log)
		m->log(m->log_ctx, level, line);
}

const struct ph_ftps_ops ph_ftps_map_ops = {
	.put = map_put,
	.del = map_del,
	.log = map_log,
};

int ph_ftps_pass(struct ph_ftps_rec *r, int peers_fd, int flows_fd,
		 __u64 now, ph_ftps_known_fn known, void *ctx,
		 bool any_known)
{
	struct ph_ftps_peer_key *live = NULL;
	struct ph_ftps_entry *map = NULL;
	int nmap, nlive = 0, ret;

	nmap = ph_ftps_read_peers(peers_fd, &map);
	if (nmap < 0)
		return nmap;
	if (nmap || any_known) {
		nlive = ph_ftps_read_live(flows_fd, now, known, ctx, &live);
		if (nlive < 0) {
			free(map);
			return nlive;
		}
	}
	ret = ph_ftps_reconcile(r, map, (size_t)nmap, live, (size_t)nlive);
	free(map);
	free(live);
	return ret;
}
