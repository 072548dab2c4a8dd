#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Attaching to a live host (docs/datapath.md, "Attaching to a live host"):
# connections open before `pinhole attach` keep flowing, because the
# datapath picks up what the kernel already holds (pass_socket), and blind
# RSTs do not cut them (drop_rst_window).
#
#   pl-srv (pinhole) <-- bridge pl-sw --> pl-cli (stream and echo server)
#                                     \-> pl-evil (spoofs RSTs, scapy)
#
# Two rounds, each with traffic started before the attach:
#   1. policies/web-server.policy (default out allow);
#   2. a policy that drops everything in and out.
# In both: host-opened TCP streams over IPv4 and IPv6, a connected UDP
# exchange, and an inbound TCP stream to port 80 keep flowing across the
# attach and arrive complete (sha256 of what was sent). In round 2, while
# the streams run: RSTs spoofed from pl-evil with the streams' 4-tuples at
# sequence numbers far from the window are dropped (counted exactly) and
# the streams go on; on a quiet connection, blind RSTs leave it working
# and a RST at the exact next sequence number closes it (and its flow).
set -u
PH_NS_PREFIX=pl PH_NET4=10.182.0 PH_NET6=fd00:182:
PH_PIN=/sys/fs/bpf/ph-pl-live
PH_EXTRA_HOSTS=evil
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"

ph_require_root
ph_require_bins ip nsenter python3 ss sha256sum
ph_require_pinhole
# scapy comes from Debian's python3-scapy (tests/deps.sh), for Debian's
# python3, whatever python3 comes first in PATH.
SCAPY_PY=/usr/bin/python3
"$SCAPY_PY" -c 'import scapy.all' 2>/dev/null ||
	ph_skip "python3-scapy missing for $SCAPY_PY (run 'sudo make deps')"
ph_init live-attach
ph_netns_setup || ph_fatal "namespaces and bridge"

LIVE=$PH_ROOT/tests/lib/live.py
EVIL_NS=${PH_HOST_NS[evil]}
EVIL_IF=${PH_HOST_IF[evil]}
SRV_MAC=$(ip -n "$PH_NS_SRV" -br link show dev "$PH_IF_SRV" | awk '{print $3}')
CLI_PORT=8101 # stream, UDP echo and echo server on pl-cli
SRV_PORT=80   # stream server on pl-srv (web-server.policy admits it)
RATE=150000   # bytes/s per stream

ph_section "servers"
ph_in "$PH_NS_CLI" python3 "$LIVE" serve $CLI_PORT >"$PH_TMP/cli-server.log" 2>&1 &
ph_on_exit "kill $!"
ph_srv python3 "$LIVE" serve $SRV_PORT >"$PH_TMP/srv-server.log" 2>&1 &
ph_on_exit "kill $!"
ph_wait_listen "$PH_NS_CLI" $CLI_PORT && ph_wait_listen "$PH_NS_SRV" $SRV_PORT ||
	ph_fatal "stream servers"
ph_pass "stream/echo servers: $PH_NS_CLI:$CLI_PORT, $PH_NS_SRV:$SRV_PORT"

POL_CLOSED=$PH_TMP/closed.policy
cat >"$POL_CLOSED" <<'EOF'
# test_live_attach.sh: nothing in, nothing out.
default in drop
default out drop
EOF

prog() { cat "$1.prog" 2>/dev/null || echo 0; }

# start_streams TAG SECS: the traffic of one round, in the background.
# Sets STREAMS (name -> result file) and PIDS.
declare -A STREAMS=()
PIDS=()
start_streams() {
	local tag=$1 secs=$2
	STREAMS=(["host-opened TCP v4"]=$PH_TMP/$tag-v4
		["host-opened TCP v6"]=$PH_TMP/$tag-v6
		["inbound TCP v4 to :$SRV_PORT"]=$PH_TMP/$tag-in4
		["inbound TCP v6 to :$SRV_PORT"]=$PH_TMP/$tag-in6)
	PIDS=()
	ph_srv python3 "$LIVE" get "$PH_CLI4" $CLI_PORT "$secs" $RATE "$PH_TMP/$tag-v4" &
	PIDS+=($!)
	ph_srv python3 "$LIVE" get "$PH_CLI6" $CLI_PORT "$secs" $RATE "$PH_TMP/$tag-v6" &
	PIDS+=($!)
	ph_cli python3 "$LIVE" get "$PH_SRV4" $SRV_PORT "$secs" $RATE "$PH_TMP/$tag-in4" &
	PIDS+=($!)
	ph_cli python3 "$LIVE" get "$PH_SRV6" $SRV_PORT "$secs" $RATE "$PH_TMP/$tag-in6" &
	PIDS+=($!)
	ph_srv python3 "$LIVE" udp "$PH_CLI4" $CLI_PORT "$secs" "$PH_TMP/$tag-udp" &
	PIDS+=($!)
}

# started TAG: every stream of the round has delivered bytes (waits up
# to 5 s), so that what follows the attach starts mid-stream.
started() {
	local n i ok
	for i in $(seq 50); do
		ok=1
		for n in "${!STREAMS[@]}"; do
			[ "$(prog "${STREAMS[$n]}")" -gt 0 ] || ok=0
		done
		[ "$(prog "$PH_TMP/$1-udp")" -gt 0 ] || ok=0
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	return 1
}

# mark TAG / check_moving TAG WHAT: every stream moved on since the mark.
declare -A AT=()
mark() {
	local n
	for n in "${!STREAMS[@]}"; do AT[$n]=$(prog "${STREAMS[$n]}"); done
	AT[udp]=$(prog "$PH_TMP/$1-udp")
}
check_moving() {
	local tag=$1 what=$2 n now
	for n in "${!STREAMS[@]}"; do
		now=$(prog "${STREAMS[$n]}")
		ph_check "$n keeps flowing $what (${AT[$n]} -> $now bytes)" \
			[ "$now" -gt $((${AT[$n]} + RATE / 2)) ]
	done
	now=$(prog "$PH_TMP/$tag-udp")
	ph_check "UDP exchange keeps answering $what (${AT[udp]} -> $now answers)" \
		[ "$now" -gt $((${AT[udp]} + 10)) ]
}

# The end of a round: every stream complete, byte for byte.
finish_streams() {
	local tag=$1 n res log
	wait "${PIDS[@]}"
	for n in "${!STREAMS[@]}"; do
		res=$(cat "${STREAMS[$n]}" 2>/dev/null || echo "no result")
		log=$PH_TMP/cli-server.log
		case $n in inbound*) log=$PH_TMP/srv-server.log ;; esac
		# "ok N SHA": the server logged "sent PEER N SHA" for it.
		if [[ $res == ok* ]] && grep -q " ${res#ok } *$" "$log"; then
			ph_pass "$n complete, sha256 matches what was sent ($(echo "$res" | cut -d' ' -f2) bytes)"
		else
			ph_fail "$n: $res"
		fi
	done
	read -r _ sent got gap <"$PH_TMP/$tag-udp" || true
	ph_check "UDP exchange: $got of $sent answered, longest silence ${gap:-?} ms" \
		udp_ok "${sent:-1}" "${got:-0}" "${gap:-99999}"
}
# udp_ok SENT GOT GAP_MS: at most 3 lost, never a second without answer.
udp_ok() {
	[ "$2" -ge $(($1 - 3)) ] && [ "$3" -lt 1000 ]
}

# stats_line: the counters this test is about.
stats_line() {
	ph_say "    stats: in  pass_socket=$(ph_stat pass_socket in) drop_policy=$(ph_stat drop_policy in) pass_flow=$(ph_stat pass_flow in) drop_rst_window=$(ph_stat drop_rst_window in)"
	ph_say "    stats: out pass_socket=$(ph_stat pass_socket out) drop_policy=$(ph_stat drop_policy out) pass_flow=$(ph_stat pass_flow out)"
}

# socket_flows: how many flows -j lists with origin "socket".
PY_SOCKET_FLOWS='
import json, sys
print(sum(1 for f in json.load(sys.stdin)["flows"] if f.get("origin") == "socket"))
'
socket_flows() {
	ph_pinhole flows -j | python3 -c "$PY_SOCKET_FLOWS"
}

# flow_listed_port PORT: a flow with this local port exists.
PY_FLOW_PORT='
import json, sys
port = int(sys.argv[1])
sys.exit(0 if any(f.get("local_port") == port for f in json.load(sys.stdin)["flows"]) else 1)
'
flow_listed_port() {
	ph_pinhole flows -j | python3 -c "$PY_FLOW_PORT" "$1"
}
flow_gone() {
	! flow_listed_port "$1"
}

ph_on_exit ph_pinhole_detach

# ---------------------------------------------------------------------------
ph_section "round 1: web-server.policy attached under live traffic"
start_streams r1 7
ph_check "every stream and the UDP exchange under way" started r1
ph_expect_ok "pinhole attach --policy web-server.policy $PH_IF_SRV (streams running)" \
	ph_pinhole attach --policy "$PH_ROOT/policies/web-server.policy" "$PH_IF_SRV" ||
	ph_fatal "attach"
mark r1
sleep 2
check_moving r1 "after the attach"
ps=$(ph_stat pass_socket in)
ph_check "stats: connections picked up as pass_socket on ingress ($ps packets)" [ "${ps:-0}" -gt 0 ]
n=$(socket_flows)
ph_check "flows lists the picked-up connections (origin socket: $n)" [ "${n:-0}" -ge 2 ]
stats_line
finish_streams r1
stats_line
ph_expect_ok "pinhole detach" ph_pinhole detach "$PH_IF_SRV"

# ---------------------------------------------------------------------------
ph_section "round 2: a policy that drops everything, attached under live traffic"
start_streams r2 13
HOLD=$PH_TMP/hold
ph_srv python3 "$LIVE" hold "$PH_CLI4" $CLI_PORT "$HOLD" &
HOLD_PID=$!
ph_check "every stream and the UDP exchange under way" started r2
ph_expect_ok "pinhole attach --policy closed.policy $PH_IF_SRV (streams running)" \
	ph_pinhole attach --policy "$POL_CLOSED" "$PH_IF_SRV" || ph_fatal "attach"
mark r2
sleep 2
check_moving r2 "after the attach"
ps=$(ph_stat pass_socket)
ph_check "stats: connections picked up as pass_socket ($ps packets)" [ "${ps:-0}" -ge 5 ]
stats_line

# ping_hold N: one round trip on the quiet connection, the Nth.
ping_hold() {
	local i
	touch "$HOLD.go"
	for i in $(seq 50); do
		[ "$(prog "$HOLD")" -ge "$1" ] && return 0
		[ -s "$HOLD" ] && break
		sleep 0.1
	done
	return 1
}

# next_seq NS-SRC-ADDR SPORT DPORT [CMD...]: starts a sniffer on pl-srv's
# interface, runs CMD, prints the sequence number after the next segment
# with payload from ADDR:SPORT to DPORT (what pl-srv's kernel expects next).
next_seq() {
	local src=$1 sport=$2 dport=$3 out=$PH_TMP/sniff.$RANDOM i
	shift 3
	ph_srv "$SCAPY_PY" "$LIVE" sniff "$PH_IF_SRV" "$src" "$sport" "$dport" >"$out" 2>&1 &
	local sp=$!
	for i in $(seq 100); do
		grep -q ready "$out" && break
		sleep 0.05
	done
	"$@" >/dev/null 2>&1
	wait $sp
	tail -n1 "$out"
}

# spoof ADDR SPORT DPORT SEQ [COUNT BAND]: RSTs from pl-evil.
spoof() {
	ph_in "$EVIL_NS" "$SCAPY_PY" "$LIVE" rst "$EVIL_IF" "$SRV_MAC" "$1" \
		"$([[ $1 == *:* ]] && echo "$PH_SRV6" || echo "$PH_SRV4")" "$2" "$3" "$4" "${@:5}"
}

ph_section "round 2: blind RSTs from $EVIL_NS at the running streams"
rw0=$(ph_stat drop_rst_window in)
sent=0
for fam in v4 v6; do
	addr=$PH_CLI4
	[ $fam = v6 ] && addr=$PH_CLI6
	port=$(cat "$PH_TMP/r2-$fam.port")
	seq=$(next_seq "$addr" $CLI_PORT "$port" true)
	if [[ ! $seq =~ ^[0-9]+$ ]]; then
		ph_fail "$fam stream: no segment seen to learn its sequence number ($seq)"
		continue
	fi
	ph_expect_ok "$EVIL_NS spoofs 51 RSTs $addr:$CLI_PORT -> :$port, >= 2^24 off the window" \
		spoof "$addr" $CLI_PORT "$port" "$seq" 51 $((1 << 24))
	sent=$((sent + 51))
done
mark r2
rw1=$(ph_stat drop_rst_window in)
ph_check "stats: every blind RST dropped as drop_rst_window ($rw0 -> $rw1, $sent sent)" \
	[ $((rw1 - rw0)) -eq $sent ]
sleep 1.5
check_moving r2 "after the blind RSTs"

ph_section "round 2: a quiet connection opened before the attach"
hport=$(cat "$HOLD.port" 2>/dev/null)
po0=$(ph_stat pass_socket out)
ph_check "echo round trip after the attach" ping_hold 1
po1=$(ph_stat pass_socket out)
ph_check "its first segment (ours) picked up on egress (pass_socket out $po0 -> $po1)" \
	[ "$((po1 - po0))" -eq 1 ]
s=$(next_seq "$PH_CLI4" $CLI_PORT "$hport" ping_hold 2)
if [[ $s =~ ^[0-9]+$ ]]; then
	ph_expect_ok "$EVIL_NS spoofs 51 blind RSTs at it" \
		spoof "$PH_CLI4" $CLI_PORT "$hport" "$s" 51 $((1 << 24))
	sleep 0.3
	ph_check "still open: echo round trip after the blind RSTs" ping_hold 3
	ph_check "flows still lists it (local port $hport)" flow_listed_port "$hport"
	s=$(next_seq "$PH_CLI4" $CLI_PORT "$hport" ping_hold 4)
	ph_expect_ok "$EVIL_NS spoofs one RST at the exact next sequence number ($s)" \
		spoof "$PH_CLI4" $CLI_PORT "$hport" "$s"
	for i in $(seq 30); do
		[ -s "$HOLD" ] && break
		sleep 0.1
	done
	ph_check "the in-window RST closed it ($(cat "$HOLD" 2>/dev/null || echo open))" \
		grep -qx reset "$HOLD"
	ph_check "and its flow is gone" flow_gone "$hport"
else
	ph_fail "quiet connection: no segment seen to learn its sequence number ($s)"
fi
touch "$HOLD.quit"
wait $HOLD_PID

finish_streams r2
stats_line
ph_expect_ok "pinhole detach" ph_pinhole detach "$PH_IF_SRV"

ph_finish
