#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Operators' tools on a running instance (docs/cli.md): `show` reads the
# policy in force back from the maps and equals `check --print FILE` for
# every preset; the whole policy path is stored (over 223 bytes); `flows`
# filters, `flows delete`, `flows flush`; an expired entry is shown as
# expired (text, JSON, status); the rough edges (-j per command, detach
# --all with nothing attached, no filter-chain warning on -v attach,
# --syslog without /dev/log, the events ring in status, lport byte order,
# check -); and XDP hook sharing with xdp-filter through libxdp's
# dispatcher (or, where the kernel refuses the dispatcher, the notice and
# the plain attach).
#
#   py-cli (10.189.0.2, fd00:189::2) --veth--> py-srv (10.189.0.1, fd00:189::1)
# Pins /sys/fs/bpf/ph-py-tools. Exit: 0 pass, 77 skip, 1 fail.
set -u
export PH_NS_PREFIX=${PH_NS_PREFIX:-py} PH_NET4=${PH_NET4:-10.189.0}
export PH_NET6=${PH_NET6:-fd00:189:} PH_PIN=${PH_PIN:-/sys/fs/bpf/ph-py-tools}
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"

ph_require_root
ph_require_bins ip nsenter tc bpftool python3 nc unshare xdp-filter xdp-loader
ph_require_pinhole
ph_init cli-tools
ph_netns_setup || ph_fatal "namespaces and veth"
ph_on_exit ph_pinhole_detach
ph_on_exit "ph_srv xdp-filter unload '$PH_IF_SRV' --all >/dev/null 2>&1"

P=$PH_PIN
out=$PH_TMP/out
err=$PH_TMP/err
# run CMD...: stdout in $out, stderr in $err; returns CMD's exit code.
run() { "$@" >"$out" 2>"$err"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
# shellcheck disable=SC2317 # called through ph_check
has() { grep -Eq -- "$1" "${2:-$out}"; }

ph_section "show = check --print, every preset"
first=
for f in "$PH_ROOT"/policies/*.policy; do
	if [ -z "$first" ]; then
		run ph_pinhole attach --policy "$f" "$PH_IF_SRV" || {
			cat "$out" "$err"
			ph_fatal "attach"
		}
		first=$f
		cp "$err" "$PH_TMP/attach.err"
	else
		run ph_pinhole reload --policy "$f" || ph_fail "reload $(basename "$f")"
	fi
	ph_pinhole show >"$PH_TMP/show.txt" 2>"$err"
	"$PH_BIN" check --print "$f" >"$PH_TMP/check.txt"
	ph_check "show = check --print for $(basename "$f")" \
		diff -u "$PH_TMP/check.txt" "$PH_TMP/show.txt"
done
run ph_pinhole show -j
ph_check "show -j is check -j's document, with the stored path" \
	test "$(jget "$out" 'd["path"]')" = "$f"

ph_section "the whole policy path is stored"
long=$PH_TMP
for i in 1 2 3 4 5 6; do long=$long/a-directory-name-of-forty-characters-x$i; done
mkdir -p "$long"
cat >"$long/p.policy" <<'EOF'
set office = 10.189.0.0/24, fd00:189::/64
service ssh in tcp 22 from @office, !10.189.0.128/25
service web in tcp 8080,8888 from any
service dns out tcp,udp 53 to any
EOF
ph_check "the path is $(printf %s "$long/p.policy" | wc -c) bytes (more than 223)" \
	test "$(printf %s "$long/p.policy" | wc -c)" -gt 223
run ph_pinhole reload --policy "$long/p.policy"
run ph_pinhole status -j
ph_check "status -j names the whole path" test "$(jget "$out" 'd["policy"]')" = "$long/p.policy"
run ph_pinhole status
ph_check "status names the whole path" has "^policy +$long/p.policy$"
ph_pinhole show >"$PH_TMP/show.txt"
"$PH_BIN" check --print "$long/p.policy" >"$PH_TMP/check.txt"
ph_check "show = check --print (sets, exclusions, tcp,udp)" diff -u "$PH_TMP/check.txt" "$PH_TMP/show.txt"

# A port table that disagrees with the rules (written behind pinhole's back):
# show refuses to print a policy that is not the one enforced.
run ph_pinhole status -j
slot=$(jget "$out" 'd["active_slot"]')
idx=$((slot * 8 * 65536 + 9)) # PH_PORT_IDX(slot, tcp, in_dport, 9)
# shellcheck disable=SC2046 # the bytes are words
ph_expect_ok "write rule 1 into tcp port 9 of the active port table" \
	bpftool map update pinned "$P/ports" key $(printf '%d %d %d %d' $((idx & 255)) $((idx >> 8 & 255)) $((idx >> 16 & 255)) $((idx >> 24))) value 1 0
run ph_pinhole show
ph_check "show exits 2 and says where the maps differ" sh -c "[ $? = 2 ] && grep -q 'port 9 holds rule 1, the text compiles to 0' '$err'"
run ph_pinhole reload --policy "$long/p.policy"
run ph_pinhole show
ph_check "after a reload show prints again" test $? = 0

ph_section "flows: filters, delete, flush"
ph_srv python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 22)); s.listen(8); c = []
while True: c.append(s.accept()[0])' &
ph_on_exit "kill $! 2>/dev/null"
ph_wait_listen "$PH_NS_SRV" 22
hold() { ph_cli python3 -c 'import socket,sys,time; s=socket.create_connection((sys.argv[1],22)); time.sleep(60)' "$PH_SRV4" & }
hold
HOLD1=$!
ph_on_exit "kill $HOLD1 2>/dev/null"
for _ in $(seq 50); do
	ph_pinhole flows proto tcp lport 22 2>/dev/null | grep -q established && break
	sleep 0.1
done
run ph_pinhole flows proto tcp lport 22 remote "$PH_CLI4"
ph_check "flows proto tcp lport 22 remote $PH_CLI4: the ssh flow" has "^tcp +$PH_SRV4:22 +$PH_CLI4:[0-9]+ +established +inbound .* ssh$"
run ph_pinhole flows proto udp
ph_check "flows proto udp: none" has '^\(no flows match\)$'
run ph_pinhole flows dport 22 src "$PH_CLI4"
ph_check "flows dport 22 src $PH_CLI4 (conntrack's view)" has "$PH_SRV4:22"
run ph_pinhole flows -j state established origin inbound
ph_check "flows -j with filters: one flow, live, expires_in_ms" test \
	"$(jget "$out" '(len(d["flows"]), d["flows"][0]["expired"], d["flows"][0]["expires_in_ms"] > 7000000)')" = "(1, False, True)"
run ph_pinhole flows lport 99999
ph_check "a bad filter is refused (exit 1, says why)" sh -c "[ $? = 1 ] && grep -q 'expected a port' '$err'"
ph_expect_fail "flows delete without a filter is refused" ph_pinhole flows delete
run ph_pinhole flows delete proto tcp lport 22
ph_check "flows delete proto tcp lport 22: 1 deleted" has '^pinhole: deleted 1 flows and 0 half-open entries$'
run ph_pinhole flows proto tcp lport 22
ph_check "the flow is gone" has '^\(no flows match\)$'
hold
HOLD2=$!
ph_on_exit "kill $HOLD2 2>/dev/null"
for _ in $(seq 50); do
	ph_pinhole flows proto tcp 2>/dev/null | grep -q established && break
	sleep 0.1
done
run ph_pinhole flows flush -j
ph_check "flows flush -j: deleted the new flow" test "$(jget "$out" 'd["flows_deleted"] >= 1')" = True
ph_expect_fail "flows flush takes no filter" ph_pinhole flows flush proto tcp

ph_section "expired entries are shown as expired"
# A half-open TCP entry created at boot (created_ns = 1): long expired,
# still in the map because no packet met it.
key="0 0 0 0 0 0 0 0 0 0 0xff 0xff 10 189 0 1  0 0 0 0 0 0 0 0 0 0 0xff 0xff 10 189 0 2  0x1f 0x90 0xc3 0x50 6 0 0 0"
# created_ns and last_ns = 1 (the first 16 bytes), the rest of struct
# ph_flow zero, whatever its size in this layout.
vsize=$(bpftool -j map show pinned "$P/half_open" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_value"])')
val="1 0 0 0 0 0 0 0  1 0 0 0 0 0 0 0$(printf ' 0%.0s' $(seq $((vsize - 16))))"
# shellcheck disable=SC2086 # the bytes are words
ph_expect_ok "write an old half-open entry" bpftool map update pinned "$P/half_open" key $key value $val
run ph_pinhole flows lport 8080
ph_check "text: EXPIRES says expired" has '^tcp +10\.189\.0\.1:8080 +10\.189\.0\.2:50000 +half-open +inbound .* expired '
run ph_pinhole flows -j expired
ph_check "JSON: expired true, expires_in_ms 0" test \
	"$(jget "$out" '[(f["local_port"], f["expired"], f["expires_in_ms"]) for f in d["flows"]]')" = "[(8080, True, 0)]"
run ph_pinhole flows live lport 8080
ph_check "flows live: not listed" has '^\(no flows match\)$'
run ph_pinhole status
ph_check "status counts it as expired" has '^  half_open +1 / [0-9]+ \(1 expired, not yet removed\)$'
run ph_pinhole status -j
ph_check "status -j: half_open expired 1" test "$(jget "$out" 'd["maps"]["half_open"]["expired"]')" = 1

ph_section "rough edges"
ph_expect_fail "run -j is refused" ph_pinhole run -j --policy "$first" "$PH_IF_SRV"
run ph_pinhole run -j --policy "$first" "$PH_IF_SRV"
ph_check "run -j says why" has 'run: -j \(JSON\) is not supported' "$err"
ph_expect_fail "daemon -j is refused" ph_pinhole daemon -j
run ph_pinhole reload -j --policy "$long/p.policy"
ph_check "reload -j: a JSON document with the generation" test "$(jget "$out" 'd["generation"] > 1')" = True
run ph_pinhole detach -j --all
ph_check "detach -j: JSON names the interface" test "$(jget "$out" '(d["detached"], d["instance_removed"])')" = "(['$PH_IF_SRV'], True)"
run ph_pinhole detach --all
ph_check "detach --all with nothing attached: exit 0" test $? = 0
ph_check "... and says so" has 'nothing attached .*nothing to do' "$err"
run ph_pinhole -v -j attach --policy "$long/p.policy" "$PH_IF_SRV"
ph_check "-v attach: no 'Cannot find specified filter chain'" sh -c "! grep -q 'Cannot find specified filter chain' '$err'"
ph_check "attach -j: JSON with the interface" test "$(jget "$out" 'd["attached"][0]["name"]')" = "$PH_IF_SRV"
cp "$err" "$PH_TMP/attach.err"
# --syslog in a mount namespace without a syslog socket at /dev/log
sl=$PH_TMP/syslog.err
if [ -e /dev/log ]; then hide='mount --bind /dev/null /dev/log &&'; else hide=; fi
timeout 3 unshare -m --propagation private sh -c "$hide exec nsenter --net=/run/netns/$PH_NS_SRV '$PH_BIN' --pin-dir '$P' daemon --syslog" >"$PH_TMP/syslog.out" 2>"$sl"
ph_check "--syslog without /dev/log: says so on stderr" grep -q 'syslog: nothing listens on /dev/log.*logging to stderr' "$sl"
ph_check "... and still runs (ready, not 'logging to syslog')" sh -c "grep -q 'ready: tracking' '$PH_TMP/syslog.out' && ! grep -q 'logging to syslog' '$PH_TMP/syslog.out'"
run bpftool map dump pinned "$P/events"
ph_check "bpftool cannot dump the events ring buffer (documented)" test $? -ne 0
run ph_pinhole status
ph_check "status shows the ring's fill instead" has '^  events +ring buffer, [0-9]+ of [0-9]+ bytes waiting'
run ph_pinhole status -j
ph_check "status -j: events ring size" test "$(jget "$out" 'd["maps"]["events"]["bytes"] > 0')" = True
hold
HOLD3=$!
ph_on_exit "kill $HOLD3 2>/dev/null"
for _ in $(seq 50); do
	ph_pinhole flows lport 22 2>/dev/null | grep -q established && break
	sleep 0.1
done
run bpftool -j map dump pinned "$P/flows"
ph_check "bpftool shows lport in network byte order (22 = 5632), as documented" \
	test "$(jget "$out" '[e.get("formatted", e)["key"]["lport"] for e in d if e.get("formatted", e)["key"]["proto"] == 6]')" = "[5632]"
printf 'default in drop\nservice a in tcp 99999\n' >"$PH_TMP/bad.policy"
run "$PH_BIN" check - <"$PH_TMP/bad.policy"
ph_check "check - : errors name <stdin>:line:col" has '^<stdin>:2:18: error: ' "$err"
run "$PH_BIN" check --print - <"$long/p.policy"
ph_check "check --print - reads stdin" diff -u "$PH_TMP/check.txt" "$out"
ph_expect_fail "attach --policy - is refused" ph_pinhole reload --policy -

ph_section "XDP hook sharing with xdp-filter"
if grep -q "dispatcher is not usable" "$PH_TMP/attach.err"; then
	ph_check "one-line notice when libxdp's dispatcher is not usable" \
		test "$(grep -c 'dispatcher is not usable' "$PH_TMP/attach.err")" = 1
	run ph_pinhole status -j
	ph_check "status -j: attached directly" test "$(jget "$out" 'd["interfaces"][0]["xdp_attach"]')" = direct
	ph_say "  - this kernel refuses libxdp's dispatcher (xdp-filter itself falls back to a"
	ph_say "    single program): the sharing checks need a kernel with freplace (5.15+)"
	# tests/vm/guest.sh sets this where the kernel has extension programs:
	# there the sharing checks must run, not this fallback.
	[ "${PH_NEED_DISPATCHER:-0}" = 1 ] &&
		ph_check "libxdp's dispatcher is usable here (PH_NEED_DISPATCHER=1)" false
else
	policy=$PH_TMP/share.policy
	printf 'service a in tcp 7777,8888 from any\n' >"$policy"
	run ph_pinhole reload --policy "$policy"
	for port in 7777 8888 9999; do
		ph_srv python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True: s.accept()[0].close()' "$port" &
		ph_on_exit "kill $! 2>/dev/null"
		ph_wait_listen "$PH_NS_SRV" "$port"
	done
	mode=native
	grep -q generic "$PH_TMP/attach.err" && mode=skb
	ph_expect_ok "xdp-filter load $PH_IF_SRV (joins the dispatcher)" ph_srv xdp-filter load -m "$mode" "$PH_IF_SRV"
	ph_expect_ok "xdp-filter port 7777 (deny)" ph_srv xdp-filter port 7777
	run ph_srv xdp-loader status "$PH_IF_SRV"
	ph_check "xdp-loader status lists pinhole and xdp-filter" sh -c "grep -q pinhole_xdp '$out' && grep -q xdpfilt '$out'"
	[ "$PH_VERBOSE" = 1 ] && sed 's/^/      | /' "$out"
	ph_expect_ok "8888: both admit it" ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 8888
	before=$(ph_stat pass_policy in)
	ph_expect_fail "7777: xdp-filter drops it" ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 7777
	ph_check "... after pinhole admitted it (pass_policy grew)" test "$(ph_stat pass_policy in)" -gt "$before"
	before=$(ph_stat drop_policy in)
	ph_expect_fail "9999: pinhole drops it" ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 9999
	ph_check "... counted by pinhole (drop_policy grew)" test "$(ph_stat drop_policy in)" -gt "$before"
	run ph_pinhole status -j
	ph_check "status -j: attached in the dispatcher, live" test \
		"$(jget "$out" '(d["interfaces"][0]["xdp_attach"], d["interfaces"][0]["state"])')" = "('dispatcher', 'attached')"
	ph_expect_ok "detach pinhole" ph_pinhole detach --all
	run ph_srv xdp-loader status "$PH_IF_SRV"
	ph_check "xdp-filter stays after pinhole left" sh -c "grep -q xdpfilt '$out' && ! grep -q pinhole_xdp '$out'"
	ph_expect_ok "attach pinhole next to xdp-filter" ph_pinhole attach --policy "$policy" "$PH_IF_SRV"
	run ph_srv xdp-loader status "$PH_IF_SRV"
	ph_check "xdp-loader status lists both again" sh -c "grep -q pinhole_xdp '$out' && grep -q xdpfilt '$out'"
	ph_expect_fail "9999 dropped again" ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 9999
fi

ph_finish
