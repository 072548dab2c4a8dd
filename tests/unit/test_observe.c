// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The Prometheus formatter (user/prom.c) on a hand-made snapshot: every
 * family has HELP and TYPE, counters end in _total, label values are
 * escaped, values are the snapshot's; and explain's description parser
 * (user/explain.c): accepted forms and the messages for the rejected ones.
 * The e2e test runs the Python parser over a live scrape.
 */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "check.h"
#include "explain.h"
#include "prom.h"

static char *render(const struct ph_prom_data *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	EXPECT(m && ph_prom_write(m, d) == 0, "ph_prom_write failed");
	fclose(m);
	return buf;
}

static int count_lines(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		n += !strncmp(p, prefix, strlen(prefix));
	return n;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, line, n) && (p[n] == '\n' || !p[n]))
			return true;
	return false;
}

static void test_prom(void)
{
	static struct ph_svc_stat svc[2], none;
	static struct ph_iface_stat ifs[1];
	struct ph_prom_data d = {
		.pin_dir = "/sys/fs/bpf/odd\"dir\\x\nend",
		.generation = 7,
		.svc = svc,
		.nsvc = 2,
		.none = &none,
		.ifs = ifs,
		.nifs = 1,
		.flows = 12,
		.half_open = 3,
		.expect = -1,
	};
	char *t;

	cur_case = "prometheus";
	d.reasons[PH_COUNTER_IDX(PH_DIR_IN, PH_R_DROP_POLICY)] =
		(struct ph_counter){ .packets = 42, .bytes = 2520 };
	d.reasons[PH_COUNTER_IDX(PH_DIR_OUT, PH_R_PASS_FLOW)] =
		(struct ph_counter){ .packets = 5, .bytes = 700 };
	strcpy(svc[0].name, "ssh");
	svc[0].c[PH_DIR_IN][0] = (struct ph_counter){ .packets = 10, .bytes = 600 };
	svc[0].c[PH_DIR_IN][1] = (struct ph_counter){ .packets = 2, .bytes = 120 };
	strcpy(svc[1].name, "we\"b\\");
	strcpy(none.name, "(none)");
	none.c[PH_DIR_OUT][0].packets = 9;
	strcpy(ifs[0].name, "eth0");
	ifs[0].ifindex = 4;
	ifs[0].r[PH_COUNTER_IDX(PH_DIR_IN, PH_R_DROP_POLICY)].packets = 40;
	ifs[0].r[PH_COUNTER_IDX(PH_DIR_IN, PH_R_DROP_PEER)].packets = 2;
	ifs[0].r[PH_COUNTER_IDX(PH_DIR_IN, PH_R_PASS_POLICY)].packets = 3;

	t = render(&d);
	EXPECT(t != NULL, "no output");
	if (!t)
		return;
	EXPECT(count_lines(t, "# HELP ") == count_lines(t, "# TYPE "),
	       "HELP and TYPE lines differ in number");
	EXPECT(count_lines(t, "# TYPE ") == 10, "%d families, want 10",
	       count_lines(t, "# TYPE "));
	EXPECT(has_line(t, "# TYPE pinhole_packets_total counter"),
	       "pinhole_packets_total is not a counter");
	EXPECT(has_line(t, "pinhole_packets_total{direction=\"ingress\",reason=\"drop_policy\",verdict=\"drop\"} 42"),
	       "drop_policy sample missing or wrong");
	EXPECT(has_line(t, "pinhole_bytes_total{direction=\"ingress\",reason=\"drop_policy\",verdict=\"drop\"} 2520"),
	       "drop_policy bytes sample missing or wrong");
	EXPECT(has_line(t, "pinhole_packets_total{direction=\"egress\",reason=\"pass_flow\",verdict=\"pass\"} 5"),
	       "egress pass_flow sample missing");
	/* every reason in both directions, zero or not */
	EXPECT(count_lines(t, "pinhole_packets_total{") == 2 * PH_R_MAX,
	       "%d reason samples, want %d", count_lines(t, "pinhole_packets_total{"),
	       2 * PH_R_MAX);
	EXPECT(has_line(t, "pinhole_service_packets_total{service=\"ssh\",direction=\"ingress\",verdict=\"pass\"} 10"),
	       "ssh pass sample missing");
	EXPECT(has_line(t, "pinhole_service_packets_total{service=\"ssh\",direction=\"ingress\",verdict=\"drop\"} 2"),
	       "ssh drop sample missing");
	EXPECT(has_line(t, "pinhole_service_bytes_total{service=\"ssh\",direction=\"ingress\",verdict=\"pass\"} 600"),
	       "ssh bytes sample missing");
	EXPECT(has_line(t, "pinhole_service_packets_total{service=\"we\\\"b\\\\\",direction=\"egress\",verdict=\"pass\"} 0"),
	       "label value not escaped (quote, backslash)");
	EXPECT(has_line(t, "pinhole_service_packets_total{service=\"(none)\",direction=\"egress\",verdict=\"pass\"} 9"),
	       "(none) sample missing");
	EXPECT(has_line(t, "pinhole_interface_packets_total{interface=\"eth0\",ifindex=\"4\",direction=\"ingress\",verdict=\"drop\"} 42"),
	       "interface drops not summed over reasons");
	EXPECT(has_line(t, "pinhole_interface_packets_total{interface=\"eth0\",ifindex=\"4\",direction=\"ingress\",verdict=\"pass\"} 3"),
	       "interface passes wrong");
	EXPECT(has_line(t, "pinhole_policy_generation 7"), "generation sample");
	EXPECT(has_line(t, "# TYPE pinhole_policy_generation gauge"),
	       "generation is not a gauge");
	EXPECT(has_line(t, "pinhole_table_entries{table=\"flows\"} 12"), "flows gauge");
	EXPECT(!strstr(t, "table=\"expect\""), "unknown expect count exported");
	EXPECT(strstr(t, "pin_dir=\"/sys/fs/bpf/odd\\\"dir\\\\x\\nend\"") != NULL,
	       "newline/quote/backslash escaping in pin_dir");
	/* counters are named *_total, nothing else is */
	for (const char *p = t; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		char name[128];

		if (!strncmp(p, "# TYPE ", 7) && sscanf(p + 7, "%127s", name) == 1) {
			bool counter = strstr(p, " counter\n") == p + 7 + strlen(name);
			size_t n = strlen(name);
			bool total = n > 6 && !strcmp(name + n - 6, "_total");

			EXPECT(counter == total, "%s: counter %d but _total %d", name,
			       counter, total);
		}
	}
	free(t);
}

/* Splits a description on spaces into argv. */
static int split(char *s, char **argv)
{
	int n = 0;

	for (char *tok = strtok(s, " "); tok && n < 16; tok = strtok(NULL, " "))
		argv[n++] = tok;
	return n;
}

static int parse(const char *desc, struct ph_xpkt *p, char *err)
{
	char buf[256], *argv[16];
	int argc;

	strcpy(buf, desc);
	argc = split(buf, argv);
	return ph_explain_parse(argc, argv, p, err, 200);
}

static void test_parse_ok(void)
{
	static const __u8 v4m[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	struct ph_xpkt p;
	char err[200];

	cur_case = "explain parse (accepted)";
	EXPECT(parse("in tcp 198.51.100.7:40000 to 10.0.0.1:22", &p, err) == 0,
	       "rejected: %s", err);
	EXPECT(p.dir == PH_DIR_IN && p.proto == IPPROTO_TCP && p.family == 4 &&
		       p.sport == 40000 && p.dport == 22 && p.tcp_flags == 0x02,
	       "in tcp: dir %u proto %u family %u %u->%u flags %#x", p.dir,
	       p.proto, p.family, p.sport, p.dport, p.tcp_flags);
	EXPECT(!memcmp(p.src, v4m, 12) && p.src[12] == 198 && p.src[15] == 7 &&
		       p.dst[12] == 10 && p.dst[15] == 1,
	       "IPv4 addresses not v4-mapped");
	EXPECT(parse("tcp 198.51.100.7:1 -> 10.0.0.1:2 ack", &p, err) == 0 &&
		       p.dir == PH_DIR_IN && p.tcp_flags == 0x10,
	       "default direction in, '->', ack: %s", err);
	EXPECT(parse("out udp [2001:db8::1]:5353 to [2001:db8::53]:53", &p, err) == 0 &&
		       p.dir == PH_DIR_OUT && p.family == 6 &&
		       p.proto == IPPROTO_UDP && p.dport == 53 &&
		       p.dst[0] == 0x20 && p.dst[15] == 0x53,
	       "out udp IPv6: %s", err);
	EXPECT(parse("in tcp 192.0.2.1:1 to 192.0.2.2:2 flags=SA", &p, err) == 0 &&
		       p.tcp_flags == 0x12,
	       "flags=SA: %#x %s", p.tcp_flags, err);
	EXPECT(parse("in tcp 192.0.2.1:1 to 192.0.2.2:2 syn-ack", &p, err) == 0 &&
		       p.tcp_flags == 0x12, "syn-ack");
	EXPECT(parse("in tcp 192.0.2.1:1 to 192.0.2.2:2 rst", &p, err) == 0 &&
		       p.tcp_flags == 0x04, "rst");
	EXPECT(parse("in icmp 192.0.2.1 to 192.0.2.2", &p, err) == 0 &&
		       p.proto == IPPROTO_ICMP && !p.icmp_echo_reply,
	       "icmp echo request: %s", err);
	EXPECT(parse("in icmp 2001:db8::1 to 2001:db8::2 echo-reply", &p, err) == 0 &&
		       p.proto == IPPROTO_ICMPV6 && p.icmp_echo_reply,
	       "icmp with IPv6 is icmpv6: %s", err);
}

static void test_parse_errors(void)
{
	static const struct {
		const char *desc, *msg;
	} bad[] = {
		{ "", "expected [in|out]" },
		{ "in", "expected [in|out]" },
		{ "in sctp 192.0.2.1:1 to 192.0.2.2:2", "protocol must be" },
		{ "in tcp 192.0.2.1 to 192.0.2.2:22", "needs SOURCE:PORT" },
		{ "in tcp 192.0.2.1:1 192.0.2.2:22", "expected [in|out]" },
		{ "in tcp 192.0.2.1:1 from 192.0.2.2:22", "expected 'to'" },
		{ "in tcp 192.0.2.1:70000 to 192.0.2.2:22", "port must be" },
		{ "in tcp 192.0.2.300:1 to 192.0.2.2:22", "not an IPv4 or IPv6" },
		{ "in tcp 192.0.2.1:1 to [2001:db8::1]:22", "different address families" },
		{ "in tcp [::ffff:192.0.2.1]:1 to 192.0.2.2:22", "write an IPv4 address as IPv4" },
		{ "in tcp 192.0.2.1:1 to 192.0.2.2:22 flags=SX", "flag letters" },
		{ "in tcp 192.0.2.1:1 to 192.0.2.2:22 push", "TCP flags are" },
		{ "in tcp 192.0.2.1:1 to 192.0.2.2:22 ack more", "unexpected 'more'" },
		{ "in icmp 192.0.2.1:1 to 192.0.2.2", "ICMP has no ports" },
		{ "in icmpv6 192.0.2.1 to 192.0.2.2", "icmpv6 needs IPv6" },
		{ "in icmp 192.0.2.1 to 192.0.2.2 timestamp", "ICMP types are" },
		{ "in tcp [2001:db8::1:1 to 192.0.2.2:22", "expected [IPv6]:PORT" },
	};
	struct ph_xpkt p;
	char err[200];

	cur_case = "explain parse (rejected)";
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		EXPECT(parse(bad[i].desc, &p, err) == -1, "'%s' accepted", bad[i].desc);
		EXPECT(strstr(err, bad[i].msg) != NULL, "'%s': message '%s', want '%s'",
		       bad[i].desc, err, bad[i].msg);
	}
}

int main(void)
{
	test_prom();
	test_parse_ok();
	test_parse_errors();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
