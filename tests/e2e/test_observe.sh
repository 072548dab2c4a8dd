#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Observability (docs/observability.md) on a real instance:
#   pm-cli (10.188.0.2, fd00:188::2) --veth--> pm-srv (10.188.0.1, fd00:188::1)
#   services web (tcp 8080), alt (tcp 8443), ftp (21, ftp-track, vsftpd),
#   guarded (tcp 9000, peers 10.188.0.99 only).
#   - stats --by service / --by iface count the packets of each service and
#     of the interface (exact counts for a scripted number of connections);
#   - stats --prometheus, exporter --listen and exporter --textfile parse
#     with python3-prometheus-client's parser and hold the expected series;
#   - monitor -j shows a new flow, a pinhole (FTP PASV through vsftpd) and
#     a drop with its reason;
#   - explain predicts what a real packet then meets (stats delta), for a
#     pass, a drop_policy, a drop_peer and a SYN through a live pinhole;
#   - a monitor killed with SIGKILL leaves the datapath to switch itself
#     off when the lease runs out.
# Own prefix (pm, 10.188.0/24, fd00:188::/64, /sys/fs/bpf/ph-pm-*): no lock.
set -u
export PH_NS_PREFIX=${PH_NS_PREFIX:-pm} PH_NET4=${PH_NET4:-10.188.0} PH_NET6=${PH_NET6:-fd00:188:}
export PH_PIN=${PH_PIN:-/sys/fs/bpf/ph-pm-observe}
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"

# The Debian parser (python3-prometheus-client), not whatever python3 is first.
PROM_PY=/usr/bin/python3
ph_require_root
ph_require_bins ip nsenter curl vsftpd python3 "$PROM_PY"
"$PROM_PY" -c 'import prometheus_client' 2>/dev/null ||
	ph_skip "python3-prometheus-client is not installed (make deps)"
ph_require_pinhole
ph_init observe
ph_netns_setup || ph_fatal "namespaces and veth"

ph_section "servers and pinhole"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ph_start_tcp_listener 8080 || ph_fatal "listener 8080"
ph_start_tcp_listener 8443 || ph_fatal "listener 8443"
ph_start_tcp_listener 9000 || ph_fatal "listener 9000"
ph_start_vsftpd || ph_fatal "vsftpd"
POLICY=$PH_TMP/observe.policy
cat >"$POLICY" <<EOF
default in drop
default out allow
service web in tcp 8080 from any
service alt in tcp 8443 from any
service ftp in tcp 21 from any ftp-track
service guarded in tcp 9000 from $PH_NET4.99
EOF
ph_on_exit ph_pinhole_detach
ph_expect_ok "attach $PH_IF_SRV" ph_pinhole attach --policy "$POLICY" "$PH_IF_SRV" ||
	ph_fatal "attach"

# JSON field of stats --by service: svc NAME DIR VERDICT [packets|bytes]
svc() {
	ph_pinhole stats --by service -j | python3 -c '
import json, sys
d = json.load(sys.stdin)
name, dr, v, what = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "packets"
obj = d["none"] if name == "(none)" else next((s for s in d["services"] if s["name"] == name), None)
print(obj[dr][v][what] if obj else -1)' "$@"
}
iface() {
	ph_pinhole stats --by iface -j | python3 -c '
import json, sys
d = json.load(sys.stdin)
i = next(i for i in d["interfaces"] if i["name"] == sys.argv[1])
print(i[sys.argv[2]][sys.argv[3]]["packets"])' "$@"
}
# One TCP connection: SYN, ACK, data/FIN... all ingress packets of it
# land on the service (half_open, then flows carry the service id).
conn() { ph_tcp_connect "$PH_NS_CLI" "$1" "$2" >/dev/null 2>&1; }

ph_section "counters by service and interface"
w0=$(svc web in pass) a0=$(svc alt in pass) i0=$(iface "$PH_IF_SRV" in pass)
wo0=$(svc web out pass)
r0=$(ph_stat pass_policy in) h0=$(ph_stat pass_half_open in) f0=$(ph_stat pass_flow in)
for _ in 1 2 3; do conn "$PH_SRV4" 8080; done
conn "$PH_SRV6" 8080
conn "$PH_SRV4" 8443
conn "$PH_SRV6" 8443
sleep 0.3
w1=$(svc web in pass) a1=$(svc alt in pass) i1=$(iface "$PH_IF_SRV" in pass)
wo1=$(svc web out pass)
r1=$(ph_stat pass_policy in) h1=$(ph_stat pass_half_open in) f1=$(ph_stat pass_flow in)
dw=$((w1 - w0)) da=$((a1 - a0)) di=$((i1 - i0))
ph_say "web +$dw in, +$((wo1 - wo0)) out; alt +$da in; $PH_IF_SRV +$di in"
# 4 web and 2 alt connections: every one costs >= 3 ingress packets
# (SYN, ACK, FIN/ACK...), all credited to its service.
ph_check "web: >= 12 ingress packets, at least twice alt's ($dw vs $da)" \
	[ "$dw" -ge 12 ] && [ "$dw" -ge $((2 * da)) ] && [ "$da" -ge 6 ]
ph_check "web: egress packets credited too (+$((wo1 - wo0)))" [ $((wo1 - wo0)) -ge 8 ]
# Exact: the services together got every ingress pass_policy, pass_half_open
# and pass_flow packet of the period (nothing else talked to this host).
dr=$(( (r1 - r0) + (h1 - h0) + (f1 - f0) ))
ph_check "web + alt = pass_policy + pass_half_open + pass_flow in ($((dw + da)) = $dr)" \
	[ $((dw + da)) -eq "$dr" ]
ph_check "$PH_IF_SRV: ingress pass grew by at least the services' ($di >= $((dw + da)))" \
	[ "$di" -ge $((dw + da)) ]
ph_expect_ok "stats --by service (text)" sh -c "
	$(declare -f ph_pinhole); PH_BIN=$PH_BIN PH_PIN=$PH_PIN PH_NS_SRV=$PH_NS_SRV
	ph_pinhole stats --by service | grep -E '^web +[0-9]+'"
ph_expect_ok "stats --by iface (text)" sh -c "
	$(declare -f ph_pinhole); PH_BIN=$PH_BIN PH_PIN=$PH_PIN PH_NS_SRV=$PH_NS_SRV
	ph_pinhole stats --by iface | grep -E '^$PH_IF_SRV +[0-9]+'"

ph_section "service counters across reloads"
# counter_id NAME: the service's id (-1: not in the policy in force)
svc_id() {
	ph_pinhole stats --by service -j | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next((s["counter_id"] for s in d["services"] if s["name"] == sys.argv[1]), -1))' "$1"
}
web_id=$(svc_id web) alt_id=$(svc_id alt)
alt_in=$(svc alt in pass)
sed -e 's/^service alt .*/service extra in tcp 8444 from any/' "$POLICY" >"$PH_TMP/reload1.policy"
ph_expect_ok "reload: alt replaced by extra" ph_pinhole reload --policy "$PH_TMP/reload1.policy"
ph_check "web keeps its counter id and its count ($web_id, $(svc web in pass) = $w1)" \
	[ "$(svc_id web)" = "$web_id" ] && [ "$(svc web in pass)" -eq "$w1" ]
ph_check "extra: a new id, counting from 0 ($(svc_id extra), $(svc extra in pass))" \
	[ "$(svc_id extra)" != "$alt_id" ] && [ "$(svc_id extra)" -gt 0 ] && [ "$(svc extra in pass)" -eq 0 ]
ph_check "alt is not listed while retired" [ "$(svc_id alt)" = -1 ]
ph_expect_ok "reload: the first policy again" ph_pinhole reload --policy "$POLICY"
ph_check "alt is back with its id and its count ($(svc_id alt) = $alt_id, $(svc alt in pass) = $alt_in)" \
	[ "$(svc_id alt)" = "$alt_id" ] && [ "$(svc alt in pass)" -eq "$alt_in" ]

ph_section "Prometheus"
# parse FILE: the python parser must accept it; prints "name{labels} value"
# for the series the checks below look at.
PROM_CHECK='
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
fams = {f.name: f for f in text_string_to_metric_families(text)}
want = {"pinhole_packets", "pinhole_bytes", "pinhole_service_packets",
        "pinhole_service_bytes", "pinhole_interface_packets",
        "pinhole_interface_bytes", "pinhole_policy_generation",
        "pinhole_table_entries", "pinhole_info"}
missing = want - set(fams)
if missing:
    sys.exit("missing families: %s" % sorted(missing))
for n in want - {"pinhole_policy_generation", "pinhole_table_entries", "pinhole_info"}:
    if fams[n].type != "counter":
        sys.exit("%s: type %s" % (n, fams[n].type))
def val(fam, **lab):
    for s in fams[fam].samples:
        if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in lab.items()):
            return s.value
    sys.exit("no sample %s %s" % (fam, lab))
web = val("pinhole_service_packets", service="web", direction="ingress", verdict="pass")
iface = val("pinhole_interface_packets", interface=sys.argv[2], direction="ingress", verdict="pass")
pol = val("pinhole_packets", direction="ingress", reason="pass_policy", verdict="pass")
drops = val("pinhole_packets", direction="ingress", reason="drop_policy", verdict="drop")
nsamples = sum(len(f.samples) for f in fams.values())
print("families=%d samples=%d web_in=%d iface_in=%d pass_policy_in=%d drop_policy_in=%d"
      % (len(fams), nsamples, web, iface, pol, drops))
if web < int(sys.argv[3]):
    sys.exit("web ingress %d < %s" % (web, sys.argv[3]))
'
ph_pinhole stats --prometheus >"$PH_TMP/stats.prom"
ph_expect_ok "stats --prometheus parses (python3-prometheus-client)" \
	"$PROM_PY" -c "$PROM_CHECK" "$PH_TMP/stats.prom" "$PH_IF_SRV" "$w1"
ph_check "HELP and TYPE lines for every family" \
	[ "$(grep -c '^# HELP' "$PH_TMP/stats.prom")" -eq "$(grep -c '^# TYPE' "$PH_TMP/stats.prom")" ]

port=$((19000 + RANDOM % 1000))
nsenter --net="/run/netns/$PH_NS_SRV" "$PH_BIN" --pin-dir "$PH_PIN" exporter \
	--listen "127.0.0.1:$port" >"$PH_TMP/exporter.log" 2>&1 &
EXP_PID=$!
ph_on_exit "kill $EXP_PID 2>/dev/null"
ph_wait_listen "$PH_NS_SRV" "$port" || ph_fail "exporter did not listen"
ph_srv curl -sS -D "$PH_TMP/http.hdr" -o "$PH_TMP/http.prom" "http://127.0.0.1:$port/metrics"
ph_expect_ok "exporter --listen: GET /metrics parses" \
	"$PROM_PY" -c "$PROM_CHECK" "$PH_TMP/http.prom" "$PH_IF_SRV" "$w1"
ph_check "exporter: HTTP/1.0 200, text/plain; version=0.0.4" \
	grep -q 'Content-Type: text/plain; version=0.0.4' "$PH_TMP/http.hdr"
ph_check "exporter: unknown path is 404" \
	[ "$(ph_srv curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")" = 404 ]
kill -TERM "$EXP_PID"
wait "$EXP_PID"
ph_check "exporter exits 0 on SIGTERM" [ $? -eq 0 ]
ph_expect_ok "exporter --textfile --interval 0 (one atomic write)" \
	ph_pinhole exporter --textfile "$PH_TMP/pinhole.prom" --interval 0
ph_expect_ok "textfile parses" \
	"$PROM_PY" -c "$PROM_CHECK" "$PH_TMP/pinhole.prom" "$PH_IF_SRV" "$w1"
ph_check "no temporary file left" [ -z "$(ls "$PH_TMP" | grep 'pinhole.prom.tmp')" ]

ph_section "monitor"
MON=$PH_TMP/monitor.jsonl
nsenter --net="/run/netns/$PH_NS_SRV" "$PH_BIN" --pin-dir "$PH_PIN" monitor -j \
	--duration 20 >"$MON" 2>"$PH_TMP/monitor.err" &
MON_PID=$!
ph_on_exit "kill $MON_PID 2>/dev/null"
for _ in $(seq 50); do
	bpftool map dump pinned "$PH_PIN/monitor_ctl" 2>/dev/null | grep -q '"on": 1' && break
	sleep 0.1
done
ph_expect_fail "a second monitor is refused" ph_pinhole monitor --duration 1
conn "$PH_SRV4" 8443
ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 7777 >/dev/null 2>&1
ph_expect_ok "FTP PASV listing through vsftpd" ph_ftp_list "$PH_NS_CLI" "$PH_SRV4"
# mon_has TYPE KEY=VALUE...: a monitor line with those fields
mon_has() {
	python3 -c '
import json, sys
want = dict(a.split("=", 1) for a in sys.argv[3:])
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("type") == sys.argv[2] and all(str(e.get(k)) == v for k, v in want.items()):
        print(line.strip()); sys.exit(0)
sys.exit(1)' "$MON" "$@"
}
for _ in $(seq 30); do
	mon_has drop dport=7777 >/dev/null && mon_has pinhole_open >/dev/null && break
	sleep 0.1
done
ph_expect_ok "monitor: flow_new to alt (8443) with its service" \
	mon_has flow_new service=alt dport=8443 reason=pass_policy direction=in src_addr="$PH_CLI4"
ph_expect_ok "monitor: drop of the SYN to 7777, reason drop_policy" \
	mon_has drop dport=7777 reason=drop_policy interface="$PH_IF_SRV"
ph_expect_ok "monitor: pinhole_open for the PASV data connection" \
	mon_has pinhole_open direction=in dst_addr="$PH_SRV4"
ph_expect_ok "monitor: pinhole_used by the data connection" \
	mon_has pinhole_used reason=pass_expect direction=in
ph_expect_ok "monitor: FTP control flow_new with service ftp" \
	mon_has flow_new service=ftp dport=21
kill -TERM "$MON_PID"
wait "$MON_PID"
ph_check "monitor exits 0 on SIGTERM" [ $? -eq 0 ]
ph_check "monitor switched the datapath off on exit" \
	sh -c "bpftool map dump pinned '$PH_PIN/monitor_ctl' | grep -q '\"on\": 0'"

# A monitor that dies without cleaning up: the lease (PH_MON_LEASE_S = 5 s)
# runs out and the next packet clears the flag.
nsenter --net="/run/netns/$PH_NS_SRV" "$PH_BIN" --pin-dir "$PH_PIN" monitor -j \
	>/dev/null 2>&1 &
MON_PID=$!
sleep 1.5
kill -KILL "$MON_PID"
wait "$MON_PID" 2>/dev/null
ph_check "killed monitor: flag still on right after" \
	sh -c "bpftool map dump pinned '$PH_PIN/monitor_ctl' | grep -q '\"on\": 1'"
sleep 5.5
conn "$PH_SRV4" 8080
ph_check "killed monitor: the datapath switched itself off after the lease" \
	sh -c "bpftool map dump pinned '$PH_PIN/monitor_ctl' | grep -q '\"on\": 0'"

ph_section "explain, then send"
# explain_then DESC-ARGS -- REASON CONNECT-PORT: explain must name REASON,
# and the real SYN must then move exactly that reason's ingress counter.
explain_then() {
	local want=$1 port=$2 addr=$3 got before after
	shift 3
	got=$(ph_pinhole explain -j "$@" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["reason"], d.get("service", "-"))')
	before=$(ph_stat "$want" in)
	ph_tcp_connect "$PH_NS_CLI" "$addr" "$port" >/dev/null 2>&1
	after=$(ph_stat "$want" in)
	ph_check "explain $* -> $got; the real SYN moved $want ($before -> $after)" \
		[ "${got%% *}" = "$want" ] && [ $((after - before)) -ge 1 ]
}
explain_then pass_policy 8080 "$PH_SRV4" in tcp "$PH_CLI4:40000" to "$PH_SRV4:8080"
explain_then drop_policy 7000 "$PH_SRV4" in tcp "$PH_CLI4:40001" to "$PH_SRV4:7000"
explain_then drop_peer 9000 "$PH_SRV6" in tcp "[$PH_CLI6]:40002" to "[$PH_SRV6]:9000"
ph_expect_ok "explain names the service and the peer step" sh -c "
	$(declare -f ph_pinhole); PH_BIN=$PH_BIN PH_PIN=$PH_PIN PH_NS_SRV=$PH_NS_SRV
	ph_pinhole explain in tcp '[$PH_CLI6]:40002' to '[$PH_SRV6]:9000' | tee /dev/stderr | grep -q 'guarded.*not in the peer list'"
# A live pinhole: open one with a PASV through a raw control connection,
# explain the data SYN (pass_expect), then connect. The control connection
# itself is an established flow: explain its next segment (pass_flow,
# service ftp), then let the client send it (NOOP, on a go file).
PASV_OUT=$PH_TMP/pasv.out
ph_in "$PH_NS_CLI" python3 -c '
import socket, sys, re, time
s = socket.create_connection((sys.argv[1], 21), timeout=5)
f = s.makefile("rwb")
def cmd(c):
    if c: f.write(c.encode() + b"\r\n"); f.flush()
    while True:
        l = f.readline().decode()
        if l[3:4] == " ": return l
cmd(""); cmd("USER anonymous"); cmd("PASS x")
r = cmd("PASV")
h = [int(x) for x in re.search(r"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", r).groups()]
print(h[4] * 256 + h[5], s.getsockname()[1], flush=True)
import os
for _ in range(100):
    if os.path.exists(sys.argv[2]): break
    time.sleep(0.05)
print(cmd("NOOP").strip(), flush=True)
time.sleep(0.5)' "$PH_SRV4" "$PH_TMP/noop.go" >"$PASV_OUT" 2>&1 &
PASV_PID=$!
for _ in $(seq 30); do [ -s "$PASV_OUT" ] && break; sleep 0.1; done
read -r dport cport <"$PASV_OUT"
sleep 0.3
if [ -n "$dport" ]; then
	explain_then pass_expect "$dport" "$PH_SRV4" in tcp "$PH_CLI4:40003" to "$PH_SRV4:$dport"
	got=$(ph_pinhole explain -j in tcp "$PH_CLI4:$cport" to "$PH_SRV4:21" flags=PA |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["reason"], d.get("service", "-"))')
	before=$(ph_stat pass_flow in)
	touch "$PH_TMP/noop.go"
	wait "$PASV_PID" 2>/dev/null
	after=$(ph_stat pass_flow in)
	ph_check "explain the control connection's next segment -> $got; the NOOP moved pass_flow ($before -> $after; $(tail -1 "$PASV_OUT"))" \
		[ "$got" = "pass_flow ftp" ] && [ $((after - before)) -ge 1 ]
else
	ph_fail "no PASV port from vsftpd: $(cat "$PASV_OUT")"
	wait "$PASV_PID" 2>/dev/null
fi
ph_expect_fail "explain: a malformed description is a user error" \
	ph_pinhole explain in tcp "$PH_CLI4" to "$PH_SRV4:22"

ph_finish
