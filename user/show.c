// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * `pinhole show`: the policy in force, read back from the maps of the
 * active slot (rules, service_names, the peer tries, slot_meta), never
 * from the file, and printed in the policy language (docs/cli.md). The
 * text is then compiled again and compared with the rules and port tables
 * the kernel holds, so what is printed is what is enforced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "log.h"
#include "maps_io.h"
#include "show.h"
#include "util.h"

static int cmp_range(const void *a, const void *b)
{
	const struct ph_port_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

/* Sort and drop the duplicates (a tcp,udp service has each range twice). */
static void ranges_unique(struct ph_service *s)
{
	int n = 0;

	qsort(s->ranges, (size_t)s->nranges, sizeof(*s->ranges), cmp_range);
	for (int i = 0; i < s->nranges; i++)
		if (!n || s->ranges[n - 1].lo != s->ranges[i].lo ||
		    s->ranges[n - 1].hi != s->ranges[i].hi)
			s->ranges[n++] = s->ranges[i];
	s->nranges = n;
}

/* Every entry of the trie at peers[idx] into s->peers / s->peer_vals. */
static int read_trie(const struct ph_instance *inst, __u32 idx,
		     struct ph_service *s, char *why, size_t len)
{
	struct ph_peer_key key, next;
	__u32 id;
	int fd, n = 0, cap = 0, err = 0;
	bool first = true;

	if (bpf_map_lookup_elem(inst->fd[PH_MAP_PEERS], &idx, &id)) {
		snprintf(why, len, "service %s has no peer trie (peers[%u]: %s)",
			 s->name, idx, strerror(errno));
		return -EINVAL;
	}
	fd = bpf_map_get_fd_by_id(id);
	if (fd < 0) {
		snprintf(why, len, "cannot open the peer trie of %s (map id %u): %s",
			 s->name, id, strerror(errno));
		return -errno;
	}
	while (n <= PH_PEER_SET_MAX &&
	       !bpf_map_get_next_key(fd, first ? NULL : &key, &next)) {
		first = false;
		key = next;
		if (n == cap) {
			int nc = cap ? cap * 2 : 16;
			struct ph_peer_key *k = realloc(s->peers, nc * sizeof(*k));
			struct ph_peer_val *v;

			if (k)
				s->peers = k;
			v = k ? realloc(s->peer_vals, nc * sizeof(*v)) : NULL;
			if (!v) {
				err = -ENOMEM;
				break;
			}
			s->peer_vals = v;
			cap = nc;
		}
		if (bpf_map_lookup_elem(fd, &next, &s->peer_vals[n]))
			continue;
		s->peers[n++] = next;
	}
	close(fd);
	s->npeers = n;
	if (err)
		snprintf(why, len, "out of memory");
	return err;
}

/* The service's nat-address list (ftp_nat), if any. */
static void read_nat(const struct ph_instance *inst, __u32 slot, int si,
		     struct ph_service *s)
{
	struct ph_ftp_nat_key k = { .slot = slot, .service = (__u32)si };
	struct ph_ftp_nat v;

	if (inst->fd[PH_MAP_FTP_NAT] < 0 ||
	    bpf_map_lookup_elem(inst->fd[PH_MAP_FTP_NAT], &k, &v))
		return;
	s->nnat = v.n < PH_NAT_ADDRS_MAX ? (int)v.n : PH_NAT_ADDRS_MAX;
	memcpy(s->nat, v.addr, sizeof(s->nat));
}

/* One rule of the active slot into its service. */
static int add_rule(struct ph_service *s, const struct ph_rule *r, __u32 i,
		    char *why, size_t len)
{
	static const __u8 dir_of[PH_PT_MAX] = { PH_DIR_IN, PH_DIR_IN,
						PH_DIR_OUT, PH_DIR_OUT };
	static const __u8 sport_of[PH_PT_MAX] = { 0, 1, 0, 1 };
	struct ph_port_range *nr;

	if (r->table >= PH_PT_MAX || r->l4 >= PH_L4_MAX || !r->port_lo ||
	    r->port_lo > r->port_hi) {
		snprintf(why, len, "rule %u is not valid (table %u, l4 %u, ports %u-%u)",
			 i, r->table, r->l4, r->port_lo, r->port_hi);
		return -EINVAL;
	}
	if (!s->nranges) {
		s->dir = dir_of[r->table];
		s->match_sport = sport_of[r->table];
		s->action = r->action;
		s->flags = r->flags;
	} else if (s->dir != dir_of[r->table] ||
		   s->match_sport != sport_of[r->table] ||
		   s->action != r->action || s->flags != r->flags) {
		snprintf(why, len, "rule %u disagrees with the other rules of service %s",
			 i, s->name);
		return -EINVAL;
	}
	s->l4_mask |= (__u8)(1u << r->l4);
	nr = realloc(s->ranges, (size_t)(s->nranges + 1) * sizeof(*nr));
	if (!nr) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	s->ranges = nr;
	s->ranges[s->nranges++] = (struct ph_port_range){ r->port_lo, r->port_hi, 0 };
	return 0;
}

int ph_policy_read_back(const struct ph_instance *inst,
			const struct ph_view *v, struct ph_policy *pol,
			char *why, size_t len)
{
	__u32 slot = v->st.active_slot, nrules = v->meta[slot].nrules;
	struct ph_rule *rules = NULL;
	__u16 *peer_set = NULL;
	int nsvc = 0, err = 0;

	memset(pol, 0, sizeof(*pol));
	ph_strlcpy(pol->path, v->st.policy[0] ? v->st.policy : "(none)",
		   sizeof(pol->path));
	memcpy(pol->default_verdict, v->meta[slot].default_verdict,
	       sizeof(pol->default_verdict));
	memcpy(pol->icmp_echo, v->meta[slot].icmp_echo, sizeof(pol->icmp_echo));
	pol->ftp_ttl_ms = v->meta[slot].ftp_ttl_ms;
	if (nrules > PH_MAX_RULES) {
		snprintf(why, len, "slot %u claims %u rules", slot, nrules);
		return -EINVAL;
	}
	rules = calloc(nrules + 1, sizeof(*rules));
	if (!rules) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	for (__u32 i = 0; i < nrules; i++) {
		__u32 key = slot * PH_MAX_RULES + i;

		if (bpf_map_lookup_elem(inst->fd[PH_MAP_RULES], &key, &rules[i])) {
			snprintf(why, len, "cannot read rule %u: %s", i,
				 strerror(errno));
			err = -errno;
			goto out;
		}
		if (rules[i].service >= nsvc)
			nsvc = rules[i].service + 1;
	}
	pol->services = calloc((size_t)nsvc + 1, sizeof(*pol->services));
	peer_set = calloc((size_t)nsvc + 1, sizeof(*peer_set));
	if (!pol->services || !peer_set) {
		snprintf(why, len, "out of memory");
		err = -ENOMEM;
		goto out;
	}
	pol->nservices = nsvc;
	for (int i = 0; i < nsvc; i++) {
		struct ph_service_name name = {};
		__u32 key = slot * PH_MAX_RULES + (__u32)i;

		if (bpf_map_lookup_elem(inst->fd[PH_MAP_SERVICE_NAMES], &key,
					&name) || !name.name[0])
			snprintf(name.name, sizeof(name.name), "service-%d", i);
		name.name[sizeof(name.name) - 1] = '\0';
		ph_strlcpy(pol->services[i].name, name.name,
			   sizeof(pol->services[i].name));
	}
	for (__u32 i = 0; i < nrules && !err; i++) {
		struct ph_service *s = &pol->services[rules[i].service];

		/* A guard is the compiler's, not a service's: it only tells
		 * the tracked service's active-data port. */
		if (rules[i].flags & PH_RF_ACTIVE_GUARD) {
			s->active_port = rules[i].port_lo;
			continue;
		}
		err = add_rule(s, &rules[i], i, why, len);
		peer_set[rules[i].service] = rules[i].peer_set;
	}
	for (int i = 0; i < nsvc && !err; i++)
		read_nat(inst, slot, i, &pol->services[i]);
	for (int i = 0; i < nsvc && !err; i++) {
		struct ph_service *s = &pol->services[i];

		if (!s->nranges) {
			snprintf(why, len, "service %s (index %d) has no rule",
				 s->name, i);
			err = -EINVAL;
			break;
		}
		ranges_unique(s);
		if (!(s->flags & PH_RF_PEER_ANY) && s->action == PH_ACT_ALLOW)
			err = read_trie(inst, PH_PEER_SET_IDX(slot, peer_set[i]),
					s, why, len);
	}
out:
	free(rules);
	free(peer_set);
	if (err)
		ph_policy_free(pol);
	return err;
}

/* Does the kernel hold exactly what `text` compiles to (rules and port
 * tables of the active slot)? 0, or -EINVAL with why. */
static int verify(const struct ph_instance *inst, const struct ph_view *v,
		  const char *text, struct ph_policy *out, char *why, size_t len)
{
	const __u32 n = PH_L4_MAX * PH_PT_MAX * 65536u;
	__u32 slot = v->st.active_slot;
	struct ph_policy_error perr;
	__u16 *ports = NULL;
	int err = 0;

	if (ph_policy_load_string("<show>", text, out, &perr)) {
		snprintf(why, len, "the text read back does not parse: line %d:%d: %.300s",
			 perr.line, perr.col, perr.msg);
		return -EINVAL;
	}
	if ((__u32)out->nrules != v->meta[slot].nrules) {
		snprintf(why, len, "the text compiles to %d rules, the kernel holds %u",
			 out->nrules, v->meta[slot].nrules);
		return -EINVAL;
	}
	for (int i = 0; i < out->nrules; i++) {
		__u32 key = slot * PH_MAX_RULES + (__u32)i;
		struct ph_rule r;

		if (bpf_map_lookup_elem(inst->fd[PH_MAP_RULES], &key, &r) ||
		    r.action != out->rules[i].action || r.l4 != out->rules[i].l4 ||
		    r.table != out->rules[i].table ||
		    r.flags != out->rules[i].flags ||
		    r.service != out->rules[i].service ||
		    r.port_lo != out->rules[i].port_lo ||
		    r.port_hi != out->rules[i].port_hi ||
		    r.peer_set != out->rules[i].peer_set) {
			snprintf(why, len, "rule %d in the kernel differs from the text", i);
			return -EINVAL;
		}
	}
	ports = malloc(n * sizeof(*ports));
	if (!ports) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	err = ph_array_read(inst->fd[PH_MAP_PORTS], PH_PORT_IDX(slot, 0, 0, 0),
			    ports, n, sizeof(*ports));
	if (err) {
		snprintf(why, len, "cannot read the port tables: %s",
			 strerror(-err));
	} else if (memcmp(ports, out->port_table, n * sizeof(*ports))) {
		const __u16 *want = &out->port_table[0][0][0];
		__u32 i = 0;

		while (ports[i] == want[i])
			i++;
		snprintf(why, len,
			 "port table %s/%u port %u holds rule %u, the text compiles to %u",
			 i / (PH_PT_MAX * 65536u) ? "udp" : "tcp",
			 i / 65536u % PH_PT_MAX, i % 65536u, ports[i], want[i]);
		err = -EINVAL;
	}
	free(ports);
	return err;
}

int ph_cmd_show(const struct ph_instance *inst, bool json)
{
	struct ph_policy pol, again;
	struct ph_view v;
	char why[512] = "", *text = NULL;
	size_t tlen = 0;
	FILE *mem;
	int err;

	err = ph_view_read(inst, &v);
	if (err) {
		pr_warn("cannot read %s/state: %s", inst->pin_dir, strerror(-err));
		return PH_EXIT_ENV;
	}
	if (!v.st.generation) {
		pr_warn("no policy installed at %s yet", inst->pin_dir);
		return PH_EXIT_USER;
	}
	err = ph_policy_read_back(inst, &v, &pol, why, sizeof(why));
	if (err) {
		pr_warn("cannot read the policy in force back from %s: %s",
			inst->pin_dir, why);
		return PH_EXIT_ENV;
	}
	mem = open_memstream(&text, &tlen);
	if (!mem) {
		ph_policy_free(&pol);
		pr_warn("out of memory");
		return PH_EXIT_ENV;
	}
	ph_policy_print_source(&pol, mem);
	fclose(mem);
	err = verify(inst, &v, text, &again, why, sizeof(why));
	if (err) {
		pr_warn("the policy in force at %s does not read back consistently (%s); was it written by another build? reload it",
			inst->pin_dir, why);
		ph_policy_free(&pol);
		free(text);
		return PH_EXIT_ENV;
	}
	if (json) {
		/* check -j's document, for the policy in force: the path is
		 * the stored one; lines refer to the text `show` prints. */
		ph_strlcpy(again.path, pol.path, sizeof(again.path));
		ph_policy_print_summary(&again, stdout, true);
	} else {
		fputs(text, stdout);
	}
	ph_policy_free(&again);
	ph_policy_free(&pol);
	free(text);
	return PH_EXIT_OK;
}
