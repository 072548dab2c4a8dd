// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "counters.h"
#include "explain.h"
#include "log.h"
#include "maps_io.h"
#include "observe.h"
#include "output.h"
#include "prom.h"
#include "util.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* SIGINT/SIGTERM end the loop: no SA_RESTART, so a blocking call returns
 * EINTR and the loop sees the flag. */
static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static const char *const dir_name[PH_DIR_MAX] = { "in", "out" };

/* ------------------------------------------------------------- stats */

/* {"in": {"pass": {...}, "drop": {...}}, "out": {...}} members. */
static void json_dirs(struct ph_json *j, const struct ph_counter c[PH_DIR_MAX][2])
{
	for (int d = 0; d < PH_DIR_MAX; d++) {
		ph_json_key(j, dir_name[d]);
		ph_json_object_begin(j);
		ph_json_kv_counter(j, "pass", &c[d][0]);
		ph_json_kv_counter(j, "drop", &c[d][1]);
		ph_json_object_end(j);
	}
}

static int read_failed(const char *what, const struct ph_instance *inst,
		       int err)
{
	pr_warn("cannot read the %s counters of %s: %s", what, inst->pin_dir,
		strerror(-err));
	return PH_EXIT_ENV;
}

/* {"pin_dir": ..., "<key>": [ : the head of stats --by -j. */
static void json_list_begin(struct ph_json *j, const char *pin_dir,
			    const char *key)
{
	ph_json_init(j, stdout);
	ph_json_object_begin(j);
	ph_json_kv_string(j, "pin_dir", pin_dir);
	ph_json_key(j, key);
	ph_json_array_begin(j);
}

static void fmt_u(char *buf, size_t len, __u64 v)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* The packet and byte columns of one row: in pass/drop, out pass/drop. */
static void fill_cols(char cols[6][24], const struct ph_counter c[PH_DIR_MAX][2])
{
	fmt_u(cols[0], 24, c[PH_DIR_IN][0].packets);
	fmt_u(cols[1], 24, c[PH_DIR_IN][1].packets);
	fmt_u(cols[2], 24, c[PH_DIR_OUT][0].packets);
	fmt_u(cols[3], 24, c[PH_DIR_OUT][1].packets);
	fmt_u(cols[4], 24, c[PH_DIR_IN][0].bytes + c[PH_DIR_IN][1].bytes);
	fmt_u(cols[5], 24, c[PH_DIR_OUT][0].bytes + c[PH_DIR_OUT][1].bytes);
}

static int stats_service(const struct ph_instance *inst, bool json)
{
	static const char *const hdr[] = { "SERVICE", "|IN PASS", "|IN DROP",
					   "|OUT PASS", "|OUT DROP",
					   "|IN BYTES", "|OUT BYTES" };
	struct ph_svc_stat *s, none;
	struct ph_table t;
	char cols[6][24];
	int n, err = ph_svc_stats_read(inst, &s, &n, &none);

	if (err)
		return read_failed("service", inst, err);
	if (json) {
		struct ph_json j;

		json_list_begin(&j, inst->pin_dir, "services");
		for (int i = 0; i < n; i++) {
			ph_json_object_begin(&j);
			ph_json_kv_string(&j, "name", s[i].name);
			ph_json_kv_uint(&j, "counter_id", s[i].id);
			json_dirs(&j, s[i].c);
			ph_json_object_end(&j);
		}
		ph_json_array_end(&j);
		ph_json_key(&j, "none");
		ph_json_object_begin(&j);
		json_dirs(&j, none.c);
		ph_json_object_end(&j);
		ph_json_object_end(&j);
		ph_json_finish(&j);
		free(s);
		return PH_EXIT_OK;
	}
	ph_table_init(&t, ARRAY_SIZE(hdr), hdr);
	for (int i = 0; i <= n; i++) {
		const struct ph_svc_stat *x = i < n ? &s[i] : &none;
		const char *row[] = { x->name, cols[0], cols[1], cols[2],
				      cols[3], cols[4], cols[5] };

		fill_cols(cols, x->c);
		ph_table_add(&t, row);
	}
	printf("packets by service of the policy in force (pin dir %s); (none): no service rule or flow\n",
	       inst->pin_dir);
	ph_table_print(&t, stdout, "");
	ph_table_free(&t);
	free(s);
	return PH_EXIT_OK;
}

static void iface_sum(const struct ph_iface_stat *f,
		      struct ph_counter c[PH_DIR_MAX][2])
{
	memset(c, 0, sizeof(struct ph_counter) * PH_DIR_MAX * 2);
	for (int d = 0; d < PH_DIR_MAX; d++)
		for (int rs = 0; rs < PH_R_MAX; rs++) {
			const struct ph_counter *x = &f->r[PH_COUNTER_IDX(d, rs)];

			c[d][PH_REASON_IS_DROP(rs)].packets += x->packets;
			c[d][PH_REASON_IS_DROP(rs)].bytes += x->bytes;
		}
}

static int stats_iface(const struct ph_instance *inst, bool json)
{
	static const char *const hdr[] = { "IFACE", "|IFINDEX", "|IN PASS",
					   "|IN DROP", "|OUT PASS",
					   "|OUT DROP", "|IN BYTES",
					   "|OUT BYTES" };
	struct ph_counter c[PH_DIR_MAX][2];
	struct ph_iface_stat *f;
	struct ph_table t;
	char cols[6][24], ifx[16];
	int n, err = ph_iface_stats_read(inst, &f, &n);

	if (err)
		return read_failed("interface", inst, err);
	if (json) {
		struct ph_json j;

		json_list_begin(&j, inst->pin_dir, "interfaces");
		for (int i = 0; i < n; i++) {
			ph_json_object_begin(&j);
			ph_json_kv_string(&j, "name", f[i].name);
			ph_json_kv_uint(&j, "ifindex", f[i].ifindex);
			ph_json_kv_bool(&j, "shared_slot", f[i].shared);
			iface_sum(&f[i], c);
			json_dirs(&j, c);
			ph_json_key(&j, "reasons");
			ph_json_array_begin(&j);
			for (int rs = 0; rs < PH_R_MAX; rs++) {
				const struct ph_counter *in =
					&f[i].r[PH_COUNTER_IDX(PH_DIR_IN, rs)];
				const struct ph_counter *out =
					&f[i].r[PH_COUNTER_IDX(PH_DIR_OUT, rs)];

				if (!in->packets && !out->packets)
					continue;
				ph_json_object_begin(&j);
				ph_json_kv_string(&j, "name", ph_reasons[rs].name);
				ph_json_kv_counter(&j, "in", in);
				ph_json_kv_counter(&j, "out", out);
				ph_json_object_end(&j);
			}
			ph_json_array_end(&j);
			ph_json_object_end(&j);
		}
		ph_json_array_end(&j);
		ph_json_object_end(&j);
		ph_json_finish(&j);
		free(f);
		return PH_EXIT_OK;
	}
	ph_table_init(&t, ARRAY_SIZE(hdr), hdr);
	for (int i = 0; i < n; i++) {
		char name[32];
		const char *row[] = { name, ifx, cols[0], cols[1], cols[2],
				      cols[3], cols[4], cols[5] };

		snprintf(name, sizeof(name), "%s%s", f[i].name,
			 f[i].shared ? " (shared slot)" : "");
		snprintf(ifx, sizeof(ifx), "%u", f[i].ifindex);
		iface_sum(&f[i], c);
		fill_cols(cols, c);
		ph_table_add(&t, row);
	}
	printf("packets by interface (pin dir %s)\n", inst->pin_dir);
	if (t.nrows)
		ph_table_print(&t, stdout, "");
	else
		printf("(no interface attached)\n");
	ph_table_free(&t);
	free(f);
	return PH_EXIT_OK;
}

static int stats_prometheus(const struct ph_instance *inst)
{
	struct ph_prom_data d;
	int err = ph_prom_data_read(inst, &d);

	if (err)
		return read_failed("reason", inst, err);
	err = ph_prom_write(stdout, &d);
	ph_prom_data_free(&d);
	return err ? PH_EXIT_ENV : PH_EXIT_OK;
}

int ph_obs_stats(const struct ph_instance *inst, const struct ph_obs_opts *o,
		 bool json)
{
	if (o->prometheus) {
		if (json || o->by) {
			pr_warn("stats: --prometheus goes alone (not with -j or --by)");
			return PH_EXIT_USER;
		}
		return stats_prometheus(inst);
	}
	if (!strcmp(o->by, "service"))
		return stats_service(inst, json);
	if (!strcmp(o->by, "iface") || !strcmp(o->by, "interface"))
		return stats_iface(inst, json);
	pr_warn("stats --by '%s': use reason, service or iface", o->by);
	return PH_EXIT_USER;
}

/* ---------------------------------------------------------- exporter */

/* The exposition of pin_dir into a malloc'd buffer; NULL after a message
 * (an instance that is gone is a message, not an exit). */
static char *exposition(const char *pin_dir, size_t *len)
{
	struct ph_instance inst;
	struct ph_prom_data d;
	char *buf = NULL;
	FILE *m;
	int r = ph_instance_open(&inst, pin_dir);

	*len = 0;
	if (r == -ENOENT) {
		pr_warn("no pinhole instance at %s", pin_dir);
		return NULL;
	}
	if (r)
		return NULL;
	if (ph_instance_need_compatible(&inst)) {
		ph_instance_close(&inst);
		return NULL;
	}
	r = ph_prom_data_read(&inst, &d);
	ph_instance_close(&inst);
	if (r) {
		pr_warn("cannot read the counters of %s: %s", pin_dir,
			strerror(-r));
		return NULL;
	}
	m = open_memstream(&buf, len);
	if (m) {
		r = ph_prom_write(m, &d);
		fclose(m);
		if (r) {
			free(buf);
			buf = NULL;
		}
	}
	ph_prom_data_free(&d);
	return buf;
}

/* Writes PATH atomically: PATH.tmp in the same directory, then rename,
 * so node_exporter never reads half a file. */
static int textfile_write(const char *path, const char *pin_dir)
{
	char tmp[4096];
	size_t len;
	char *buf = exposition(pin_dir, &len);
	FILE *f;
	int ok;

	if (!buf)
		return -1;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, getpid()) >=
	    sizeof(tmp)) {
		free(buf);
		pr_warn("--textfile %s: path too long", path);
		return -1;
	}
	f = fopen(tmp, "w");
	if (!f) {
		pr_warn("cannot write %s: %s", tmp, strerror(errno));
		free(buf);
		return -1;
	}
	ok = fwrite(buf, 1, len, f) == len;
	ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok &= fclose(f) == 0;
	free(buf);
	if (!ok || rename(tmp, path)) {
		pr_warn("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int exporter_textfile(const char *pin_dir, const struct ph_obs_opts *o)
{
	int failed = 0;

	if (o->interval_s == 0)
		return textfile_write(o->textfile, pin_dir) ? PH_EXIT_ENV :
							      PH_EXIT_OK;
	pr_info("writing %s every %u s; stop with SIGINT or SIGTERM",
		o->textfile, o->interval_s);
	while (!stop) {
		failed = textfile_write(o->textfile, pin_dir) != 0;
		for (__u32 i = 0; i < o->interval_s * 10 && !stop; i++)
			usleep(100000);
	}
	return failed ? PH_EXIT_ENV : PH_EXIT_OK;
}

/* "127.0.0.1:9468", "[::1]:9468", ":9468" (every address). */
static int listen_socket(const char *spec)
{
	struct sockaddr_storage ss = {};
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	const char *colon = strrchr(spec, ':');
	char host[64];
	socklen_t sl;
	__u32 port;
	int fd, one = 1, zero = 0;

	if (!colon || !ph_parse_u32(colon + 1, 1, 65535, &port) ||
	    (size_t)(colon - spec) >= sizeof(host)) {
		pr_warn("--listen '%s': expected ADDR:PORT, [IPV6]:PORT or :PORT",
			spec);
		return -PH_EXIT_USER;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (!host[0] || inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((__u16)port);
		sl = sizeof(*s6);
	} else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((__u16)port);
		sl = sizeof(*s4);
	} else {
		pr_warn("--listen '%s': '%s' is not an IP address", spec, host);
		return -PH_EXIT_USER;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pr_warn("socket: %s", strerror(errno));
		return -PH_EXIT_ENV;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6 && !host[0]) /* :PORT: IPv4 too */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 16)) {
		pr_warn("--listen %s: %s", spec, strerror(errno));
		close(fd);
		return -PH_EXIT_ENV;
	}
	return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void http_reply(int fd, const char *status, const char *type,
		       const char *body, size_t len, bool head)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, type, len);

	send_all(fd, hdr, (size_t)n);
	if (!head)
		send_all(fd, body, len);
}

/* One request: read the head (5 s at most), answer, close. */
static void http_serve(int fd, const char *pin_dir)
{
	struct timeval tv = { .tv_sec = 5 };
	char req[4096], method[8] = "", path[256] = "";
	size_t have = 0;
	bool head;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (have < sizeof(req) - 1) {
		ssize_t n = recv(fd, req + have, sizeof(req) - 1 - have, 0);

		if (n <= 0)
			break;
		have += (size_t)n;
		req[have] = '\0';
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	req[have] = '\0';
	if (sscanf(req, "%7s %255s", method, path) != 2) {
		http_reply(fd, "400 Bad Request", "text/plain", "bad request\n",
			   12, false);
		return;
	}
	head = !strcmp(method, "HEAD");
	if (strcmp(method, "GET") && !head) {
		http_reply(fd, "405 Method Not Allowed", "text/plain",
			   "GET /metrics\n", 13, false);
		return;
	}
	if (!strcmp(path, "/metrics") || !strncmp(path, "/metrics?", 9)) {
		size_t len;
		char *body = exposition(pin_dir, &len);

		if (body)
			http_reply(fd, "200 OK", PH_PROM_CONTENT_TYPE, body, len,
				   head);
		else
			http_reply(fd, "503 Service Unavailable", "text/plain",
				   "no readable pinhole instance\n", 29, head);
		free(body);
		return;
	}
	if (!strcmp(path, "/")) {
		static const char idx[] =
			"<html><body><a href=\"/metrics\">/metrics</a></body></html>\n";

		http_reply(fd, "200 OK", "text/html", idx, sizeof(idx) - 1,
			   head);
		return;
	}
	http_reply(fd, "404 Not Found", "text/plain", "try /metrics\n", 13,
		   head);
}

static int exporter_listen(const char *pin_dir, const struct ph_obs_opts *o)
{
	int lfd = listen_socket(o->listen);

	if (lfd < 0)
		return -lfd;
	pr_info("serving http://%s/metrics for %s; stop with SIGINT or SIGTERM",
		o->listen, pin_dir);
	while (!stop) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		int cfd;

		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		http_serve(cfd, pin_dir);
		close(cfd);
	}
	close(lfd);
	return PH_EXIT_OK;
}

int ph_obs_exporter(const char *pin_dir, const struct ph_obs_opts *o)
{
	if (!!o->listen == !!o->textfile) {
		pr_warn("exporter: give one of --listen ADDR:PORT or --textfile PATH");
		return PH_EXIT_USER;
	}
	catch_signals();
	return o->listen ? exporter_listen(pin_dir, o) :
			   exporter_textfile(pin_dir, o);
}

/* ----------------------------------------------------------- monitor */

struct mon {
	const struct ph_instance *inst;
	bool json;
	__u32 count, seen;
	__u64 wall_minus_mono; /* to print event times as wall clock */
	char names[PH_SVC_MAX][24]; /* cache: svc id -> name ("" unknown) */
	bool named[PH_SVC_MAX];
};

static const char *mon_type_name(int t)
{
	switch (t) {
	case PH_MON_FLOW_NEW: return "flow_new";
	case PH_MON_PINHOLE_OPEN: return "pinhole_open";
	case PH_MON_PINHOLE_USED: return "pinhole_used";
	case PH_MON_DROP: return "drop";
	}
	return "unknown";
}

static const char *mon_svc(struct mon *m, __u16 id)
{
	if (!id || id >= PH_SVC_MAX)
		return "";
	if (!m->named[id]) {
		char full[64];

		ph_svc_name(m->inst, id, full, sizeof(full));
		ph_strlcpy(m->names[id], full, sizeof(m->names[id]));
		m->named[id] = true;
	}
	return m->names[id];
}

static int mon_event(void *ctx, void *data, size_t size)
{
	struct mon *m = ctx;
	const struct ph_mon_event *e = data;
	char src[64], dst[64], pbuf[8], ifn[32] = "", tbuf[32];
	const char *proto, *svc;
	__u64 wall;
	time_t sec;
	struct tm tm;
	bool ports;

	if (size < sizeof(*e))
		return 0;
	wall = e->ts_ns + m->wall_minus_mono;
	sec = (time_t)(wall / 1000000000ull);
	localtime_r(&sec, &tm);
	strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
	proto = e->proto ? ph_proto_name(e->proto, pbuf, sizeof(pbuf)) : "";
	ports = e->proto == IPPROTO_TCP || e->proto == IPPROTO_UDP;
	if (ports) {
		ph_fmt_addr_port(e->src, ntohs(e->sport), src, sizeof(src));
		ph_fmt_addr_port(e->dst, ntohs(e->dport), dst, sizeof(dst));
	} else {
		ph_fmt_addr(e->src, src, sizeof(src));
		ph_fmt_addr(e->dst, dst, sizeof(dst));
	}
	if (e->ifindex)
		ph_ifname((int)e->ifindex, ifn, sizeof(ifn));
	svc = mon_svc(m, e->svc_id);

	if (m->json) {
		struct ph_json j;
		char ts[48];

		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03llu",
			 (unsigned long long)(wall % 1000000000ull / 1000000));
		ph_json_init(&j, stdout);
		j.compact = true; /* one event a line */
		ph_json_object_begin(&j);
		ph_json_kv_string(&j, "time", ts);
		ph_json_kv_uint(&j, "time_ns", wall);
		ph_json_kv_string(&j, "type", mon_type_name(e->type));
		ph_json_kv_string(&j, "direction", dir_name[e->dir & 1]);
		if (e->type != PH_MON_PINHOLE_OPEN)
			ph_json_kv_string(&j, "reason",
					  e->reason < PH_R_MAX ?
						  ph_reasons[e->reason].name :
						  "?");
		if (e->proto) {
			ph_json_kv_string(&j, "proto", proto);
			ph_json_kv_string(&j, "src", src);
			ph_json_kv_string(&j, "dst", dst);
			/* the addresses alone as well, for filters */
			ph_fmt_addr(e->src, src, sizeof(src));
			ph_fmt_addr(e->dst, dst, sizeof(dst));
			ph_json_kv_string(&j, "src_addr", src);
			ph_json_kv_string(&j, "dst_addr", dst);
			if (ports) {
				ph_json_kv_uint(&j, "sport", ntohs(e->sport));
				ph_json_kv_uint(&j, "dport", ntohs(e->dport));
			}
		}
		if (svc[0])
			ph_json_kv_string(&j, "service", svc);
		if (e->ifindex) {
			ph_json_kv_string(&j, "interface", ifn);
			ph_json_kv_uint(&j, "ifindex", e->ifindex);
		}
		if (e->type == PH_MON_PINHOLE_OPEN) {
			__u64 now = ph_now_coarse_ns();

			ph_json_kv_uint(&j, "session", e->session);
			ph_json_kv_uint(&j, "expires_in_ms",
					e->deadline_ns > now ?
						(e->deadline_ns - now) / 1000000 :
						0);
		} else {
			ph_json_kv_uint(&j, "len", e->len);
		}
		if (e->type == PH_MON_DROP)
			ph_json_kv_uint(&j, "suppressed_before", e->suppressed);
		ph_json_object_end(&j);
		ph_json_finish(&j);
	} else {
		printf("%s.%03llu %-12s %-3s %-4s %s -> %s", tbuf,
		       (unsigned long long)(wall % 1000000000ull / 1000000),
		       mon_type_name(e->type), dir_name[e->dir & 1],
		       e->proto ? proto : "-", e->proto ? src : "-",
		       e->proto ? dst : "-");
		if (e->type == PH_MON_PINHOLE_OPEN)
			printf(" session %u (port 0: any)", e->session);
		else
			printf(" %s", e->reason < PH_R_MAX ?
					      ph_reasons[e->reason].name : "?");
		if (svc[0])
			printf(" service %s", svc);
		if (ifn[0])
			printf(" on %s", ifn);
		if (e->type == PH_MON_DROP && e->suppressed)
			printf(" (+%llu drops not shown)",
			       (unsigned long long)e->suppressed);
		putchar('\n');
	}
	fflush(stdout);
	m->seen++;
	if (m->count && m->seen >= m->count)
		stop = 1;
	return 0;
}

static int mon_what(const char *spec, __u32 *what)
{
	char buf[128], *tok, *save;

	*what = 0;
	if (!spec) {
		*what = PH_MON_W_FLOW | PH_MON_W_PINHOLE | PH_MON_W_DROP;
		return 0;
	}
	ph_strlcpy(buf, spec, sizeof(buf));
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "flow"))
			*what |= PH_MON_W_FLOW;
		else if (!strcmp(tok, "pinhole"))
			*what |= PH_MON_W_PINHOLE;
		else if (!strcmp(tok, "drop"))
			*what |= PH_MON_W_DROP;
		else {
			pr_warn("--events '%s': use flow, pinhole and drop, comma separated",
				tok);
			return -1;
		}
	}
	return *what ? 0 : -1;
}

static int mon_ctl_write(int fd, const struct ph_monitor_ctl *c)
{
	__u32 key = 0;

	return bpf_map_update_elem(fd, &key, c, BPF_ANY) ? -errno : 0;
}

int ph_obs_monitor(const struct ph_instance *inst, const struct ph_obs_opts *o,
		   bool json)
{
	static struct mon m;
	struct ph_monitor_ctl ctl = {
		.on = 1,
		.drop_rate = o->drop_rate ? o->drop_rate : PH_OBS_DEFAULT_DROP_RATE,
		.drop_burst = o->drop_burst ? o->drop_burst :
					      PH_OBS_DEFAULT_DROP_BURST,
	};
	struct ring_buffer *rb;
	struct timespec rt, mt;
	char lock[4096];
	__u64 end = 0, next_refresh = 0;
	int lfd, err, rc = PH_EXIT_OK;

	if (inst->fd[PH_MAP_MONITOR] < 0 || inst->fd[PH_MAP_MONITOR_CTL] < 0) {
		pr_warn("%s has no monitor maps", inst->pin_dir);
		return PH_EXIT_ENV;
	}
	if (mon_what(o->events, &ctl.what))
		return PH_EXIT_USER;
	/* One reader per ring: a second monitor would steal half the
	 * events, and its exit would switch the first one off. */
	ph_lock_path(inst->pin_dir, ".monitor", lock, sizeof(lock));
	lfd = ph_lock_open(lock);
	if (lfd < 0)
		return -lfd;
	if (flock(lfd, LOCK_EX | LOCK_NB)) {
		pr_warn("another pinhole monitor is running on %s (lock %s)",
			inst->pin_dir, lock);
		close(lfd);
		return PH_EXIT_USER;
	}
	memset(&m, 0, sizeof(m));
	m.inst = inst;
	m.json = json;
	m.count = o->count;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC_COARSE, &mt);
	m.wall_minus_mono = (rt.tv_sec - mt.tv_sec) * 1000000000ull +
			    (__u64)(rt.tv_nsec - mt.tv_nsec);
	rb = ring_buffer__new(inst->fd[PH_MAP_MONITOR], mon_event, &m, NULL);
	if (!rb) {
		pr_warn("cannot read the monitor ring of %s: %s", inst->pin_dir,
			strerror(errno));
		close(lfd);
		return PH_EXIT_ENV;
	}
	/* Events left from an earlier monitor are old news. */
	ring_buffer__consume(rb);
	catch_signals();
	if (o->duration_s)
		end = ph_now_coarse_ns() + o->duration_s * 1000000000ull;
	if (!json)
		fprintf(stderr, "monitoring %s (drops: at most %u/s per CPU, bursts of %u); Ctrl-C stops\n",
			inst->pin_dir, ctl.drop_rate, ctl.drop_burst);
	while (!stop) {
		__u64 now = ph_now_coarse_ns();

		if (end && now >= end)
			break;
		if (now >= next_refresh) {
			/* The lease: the datapath stops on its own if we
			 * die and stop renewing it. */
			ctl.deadline_ns = now + PH_MON_LEASE_S * 1000000000ull;
			err = mon_ctl_write(inst->fd[PH_MAP_MONITOR_CTL], &ctl);
			if (err) {
				pr_warn("cannot switch the monitor on: %s",
					strerror(-err));
				rc = PH_EXIT_ENV;
				break;
			}
			next_refresh = now + PH_MON_REFRESH_S * 1000000000ull;
		}
		err = ring_buffer__poll(rb, 200);
		if (err < 0 && err != -EINTR) {
			pr_warn("monitor ring: %s", strerror(-err));
			rc = PH_EXIT_ENV;
			break;
		}
	}
	memset(&ctl, 0, sizeof(ctl));
	mon_ctl_write(inst->fd[PH_MAP_MONITOR_CTL], &ctl);
	ring_buffer__free(rb);
	close(lfd);
	return rc;
}

/* ----------------------------------------------------------- explain */

int ph_obs_explain(const struct ph_instance *inst, int argc, char **argv,
		   bool json)
{
	struct ph_xresult r;
	struct ph_xpkt p;
	char err[256];
	int e;

	if (ph_explain_parse(argc, argv, &p, err, sizeof(err))) {
		pr_warn("explain: %s; e.g. pinhole explain in tcp 198.51.100.7:40000 to 10.0.0.1:22",
			err);
		return PH_EXIT_USER;
	}
	e = ph_explain_run(inst, &p, &r);
	if (e) {
		pr_warn("explain: cannot read the maps of %s: %s", inst->pin_dir,
			strerror(-e));
		return PH_EXIT_ENV;
	}
	if (json) {
		struct ph_json j;

		ph_json_init(&j, stdout);
		ph_json_object_begin(&j);
		ph_json_kv_string(&j, "reason", ph_reasons[r.reason].name);
		ph_json_kv_string(&j, "verdict",
				  PH_REASON_IS_DROP(r.reason) ? "drop" : "pass");
		ph_json_kv_string(&j, "description", ph_reasons[r.reason].text);
		if (r.rule >= 0) {
			ph_json_key(&j, "rule");
			ph_json_int(&j, r.rule);
		}
		if (r.service[0])
			ph_json_kv_string(&j, "service", r.service);
		ph_json_key(&j, "steps");
		ph_json_array_begin(&j);
		for (int i = 0; i < r.nsteps; i++)
			ph_json_string(&j, r.steps[i]);
		ph_json_array_end(&j);
		if (r.caveat[0])
			ph_json_kv_string(&j, "caveat", r.caveat);
		ph_json_object_end(&j);
		ph_json_finish(&j);
		return PH_EXIT_OK;
	}
	printf("%s %s: %s", PH_REASON_IS_DROP(r.reason) ? "drop" : "pass",
	       ph_reasons[r.reason].name, ph_reasons[r.reason].text);
	if (r.service[0] && r.rule >= 0)
		printf(" (service %s, rule %d)", r.service, r.rule);
	else if (r.service[0])
		printf(" (service %s)", r.service);
	putchar('\n');
	for (int i = 0; i < r.nsteps; i++)
		printf("  %d. %s\n", i + 1, r.steps[i]);
	if (r.caveat[0])
		printf("  note: %s\n", r.caveat);
	return PH_EXIT_OK;
}
