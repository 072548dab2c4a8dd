// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "maps_io.h"
#include "output.h"
#include "prom.h"
#include "util.h"

void ph_prom_label_value(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '"')
			fputs("\\\"", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

static const char *const dir_label[PH_DIR_MAX] = { "ingress", "egress" };

static void header(FILE *out, const char *name, const char *type,
		   const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",...} value: labels as alternating key, value; NULL ends. */
static void sample(FILE *out, const char *name, __u64 v, ...)
{
	const char *k, *sep = "{";
	va_list ap;

	fputs(name, out);
	va_start(ap, v);
	while ((k = va_arg(ap, const char *))) {
		fprintf(out, "%s%s=\"", sep, k);
		ph_prom_label_value(out, va_arg(ap, const char *));
		fputc('"', out);
		sep = ",";
	}
	va_end(ap);
	fprintf(out, "%s %llu\n", *sep == ',' ? "}" : "",
		(unsigned long long)v);
}

static void svc_series(FILE *out, const char *name, const struct ph_svc_stat *s,
		       int bytes)
{
	for (int d = 0; d < PH_DIR_MAX; d++)
		for (int drop = 0; drop < 2; drop++)
			sample(out, name,
			       bytes ? s->c[d][drop].bytes :
				       s->c[d][drop].packets,
			       "service", s->name, "direction", dir_label[d],
			       "verdict", drop ? "drop" : "pass", NULL);
}

static void iface_series(FILE *out, const char *name,
			 const struct ph_iface_stat *f, int bytes)
{
	char ifx[16];

	snprintf(ifx, sizeof(ifx), "%u", f->ifindex);
	for (int d = 0; d < PH_DIR_MAX; d++)
		for (int drop = 0; drop < 2; drop++) {
			__u64 v = 0;

			for (int rs = 0; rs < PH_R_MAX; rs++)
				if (PH_REASON_IS_DROP(rs) == drop)
					v += bytes ? f->r[PH_COUNTER_IDX(d, rs)].bytes :
						     f->r[PH_COUNTER_IDX(d, rs)].packets;
			sample(out, name, v, "interface", f->name, "ifindex",
			       ifx, "direction", dir_label[d], "verdict",
			       drop ? "drop" : "pass", NULL);
		}
}

int ph_prom_write(FILE *out, const struct ph_prom_data *d)
{
	static const char *const what[2] = { "packets", "bytes" };
	char name[64], help[160], buf[32];

	for (int b = 0; b < 2; b++) {
		snprintf(name, sizeof(name), "pinhole_%s_total", what[b]);
		snprintf(help, sizeof(help),
			 "%s judged by pinhole, by hook direction and verdict reason.",
			 b ? "Bytes (frame length) of packets" : "Packets");
		header(out, name, "counter", help);
		for (int dir = 0; dir < PH_DIR_MAX; dir++)
			for (int rs = 0; rs < PH_R_MAX; rs++) {
				const struct ph_counter *c =
					&d->reasons[PH_COUNTER_IDX(dir, rs)];

				sample(out, name, b ? c->bytes : c->packets,
				       "direction", dir_label[dir], "reason",
				       ph_reasons[rs].name, "verdict",
				       PH_REASON_IS_DROP(rs) ? "drop" : "pass",
				       NULL);
			}
	}
	for (int b = 0; b < 2; b++) {
		snprintf(name, sizeof(name), "pinhole_service_%s_total", what[b]);
		snprintf(help, sizeof(help),
			 "%s credited to a service of the policy in force (its rules and the flows they admitted); service=\"(none)\": no service.",
			 b ? "Bytes" : "Packets");
		header(out, name, "counter", help);
		for (int i = 0; i < d->nsvc; i++)
			svc_series(out, name, &d->svc[i], b);
		if (d->none)
			svc_series(out, name, d->none, b);
	}
	for (int b = 0; b < 2; b++) {
		snprintf(name, sizeof(name), "pinhole_interface_%s_total",
			 what[b]);
		snprintf(help, sizeof(help),
			 "%s judged by pinhole on one attached interface.",
			 b ? "Bytes" : "Packets");
		header(out, name, "counter", help);
		for (int i = 0; i < d->nifs; i++)
			iface_series(out, name, &d->ifs[i], b);
	}
	header(out, "pinhole_policy_generation", "gauge",
	       "Generation of the policy in force (bumped by every reload).");
	sample(out, "pinhole_policy_generation", d->generation, NULL);
	header(out, "pinhole_interfaces_attached", "gauge",
	       "Interfaces this instance is attached to.");
	sample(out, "pinhole_interfaces_attached", (__u64)d->nifs, NULL);
	header(out, "pinhole_table_entries", "gauge",
	       "Entries in the datapath's connection tables.");
	if (d->flows >= 0)
		sample(out, "pinhole_table_entries", (__u64)d->flows, "table",
		       "flows", NULL);
	if (d->half_open >= 0)
		sample(out, "pinhole_table_entries", (__u64)d->half_open,
		       "table", "half_open", NULL);
	if (d->expect >= 0)
		sample(out, "pinhole_table_entries", (__u64)d->expect, "table",
		       "expect", NULL);
	header(out, "pinhole_info", "gauge",
	       "Constant 1, labelled with the instance's pin directory and layout.");
	snprintf(buf, sizeof(buf), "%u", PH_LAYOUT_VERSION);
	sample(out, "pinhole_info", 1, "pin_dir", d->pin_dir ? d->pin_dir : "",
	       "layout", buf, NULL);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}

int ph_prom_data_read(const struct ph_instance *inst,
		      struct ph_prom_data *d)
{
	static struct ph_svc_stat none;
	struct ph_svc_stat *svc = NULL;
	struct ph_iface_stat *ifs = NULL;
	struct ph_view v;
	__u64 n;
	int err;

	memset(d, 0, sizeof(*d));
	d->pin_dir = inst->pin_dir;
	err = ph_view_read(inst, &v);
	if (!err)
		err = ph_counters_read(inst, d->reasons);
	if (!err)
		err = ph_svc_stats_read(inst, &svc, &d->nsvc, &none);
	if (!err)
		err = ph_iface_stats_read(inst, &ifs, &d->nifs);
	if (err) {
		free(svc);
		free(ifs);
		return err;
	}
	d->svc = svc;
	d->none = &none;
	d->ifs = ifs;
	d->generation = v.st.generation;
	d->active_slot = (int)v.st.active_slot;
	d->flows = !ph_map_count(inst->fd[PH_MAP_FLOWS],
				 sizeof(struct ph_flow_key),
				 inst->max_entries[PH_MAP_FLOWS], &n, NULL) ?
			   (long long)n : -1;
	d->half_open = !ph_map_count(inst->fd[PH_MAP_HALF_OPEN],
				     sizeof(struct ph_flow_key),
				     inst->max_entries[PH_MAP_HALF_OPEN], &n,
				     NULL) ?
			       (long long)n : -1;
	d->expect = !ph_map_count(inst->fd[PH_MAP_EXPECT],
				  sizeof(struct ph_flow_key),
				  inst->max_entries[PH_MAP_EXPECT], &n, NULL) ?
			    (long long)n : -1;
	return 0;
}

void ph_prom_data_free(struct ph_prom_data *d)
{
	free((void *)d->svc);
	free((void *)d->ifs);
	d->svc = NULL;
	d->ifs = NULL;
}
