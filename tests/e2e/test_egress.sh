#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Connections the protected host opens itself (TC egress creates the flow,
# XDP lets the replies in), IPv4 and IPv6:
#   phe-srv (pinhole, default in drop) --> phe-cli: HTTP on 8080, UDP echo on 5300
# With `default out allow`: TCP and UDP replies come back, `flows` lists the
# connections, and unsolicited inbound traffic is still dropped.
# With `default out drop` and no outbound service: both are blocked and the
# drop is counted on egress.
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"

ph_require_root
ph_require_bins ip nsenter curl nc python3 ss sha256sum
ph_require_pinhole
ph_init egress
ph_netns_setup || ph_fatal "namespaces and veth"

HTTP_PORT=8080
UDP_PORT=5300

ph_section "servers"
ph_servers_init "$PH_NS_CLI" "$PH_CLI4" "$PH_CLI6"
ph_start_http_python $HTTP_PORT "$PH_NS_CLI" || ph_fatal "start python3 http.server"
ph_start_udp_echo $UDP_PORT "$PH_NS_CLI" || ph_fatal "start UDP echo"
ph_start_tcp_listener 9999 "$PH_NS_SRV" || ph_fatal "start TCP listener on 9999 in $PH_NS_SRV"
ph_start_udp_echo 9998 "$PH_NS_SRV" || ph_fatal "start UDP echo on 9998 in $PH_NS_SRV"
ph_pass "$PH_NS_CLI: python3 http.server on $HTTP_PORT, UDP echo on $UDP_PORT"
ph_pass "$PH_NS_SRV: TCP listener on 9999, UDP echo on 9998 (must stay unreachable)"
WANT=$(sha256sum <"$PH_SRV_DIR/www/data.bin" | cut -d' ' -f1)

# udp_ask NS HOST PORT: one datagram, wait 1 s for "echo:<payload>" (the
# echo answers within milliseconds on the veth).
PY_UDP_ASK='
import socket, sys, os
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(1)
msg = b"pinhole-%d" % os.getpid()
s.sendto(msg, (host, port))
d, _ = s.recvfrom(2048)
sys.exit(0 if d == b"echo:" + msg else 1)
'
udp_ask() {
	ph_in "$1" python3 -c "$PY_UDP_ASK" "$2" "$3"
}

# http_get HOST: download data.bin from phe-srv, compare its sha256.
http_get() {
	ph_srv curl -sS --max-time 10 "$@" "http://$(ph_urlhost "$H"):$HTTP_PORT/data.bin" |
		sha256sum | grep -q "$WANT"
}

# flow_listed PROTO ADDR PORT: `flows -j` holds an outbound flow of this
# protocol to this remote address and port.
PY_FLOW_HAS='
import json, sys
proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
flows = json.load(sys.stdin)["flows"]
sys.exit(0 if any(f.get("proto") == proto and f.get("remote_addr") == addr and
                  f.get("remote_port") == port and f.get("origin") == "outbound"
                  for f in flows) else 1)
'
flow_listed() {
	ph_pinhole flows -j | python3 -c "$PY_FLOW_HAS" "$@"
}

POL_ALLOW=$PH_TMP/egress-allow.policy
cat >"$POL_ALLOW" <<'EOF'
# test_egress.sh: nothing inbound, everything outbound.
default in drop
default out allow
EOF
POL_DROP=$PH_TMP/egress-drop.policy
cat >"$POL_DROP" <<'EOF'
# test_egress.sh: nothing inbound, nothing outbound.
default in drop
default out drop
EOF

ph_section "without pinhole: everything answers"
for S in "$PH_SRV4" "$PH_SRV6"; do
	ph_expect_ok "TCP 9999 on $S from $PH_NS_CLI" ph_tcp_connect "$PH_NS_CLI" "$S" 9999 ||
		ph_fatal "test setup"
	ph_expect_ok "UDP 9998 on $S from $PH_NS_CLI" udp_ask "$PH_NS_CLI" "$S" 9998 ||
		ph_fatal "test setup"
done

ph_section "default out allow: the host opens connections"
ph_on_exit ph_pinhole_detach
ph_expect_ok "pinhole attach --policy egress-allow.policy $PH_IF_SRV" \
	ph_pinhole attach --policy "$POL_ALLOW" "$PH_IF_SRV" || ph_fatal "attach"
for H in "$PH_CLI4" "$PH_CLI6"; do
	ph_expect_ok "curl http://$(ph_urlhost "$H"):$HTTP_PORT/data.bin from $PH_NS_SRV (sha256)" http_get
	# A slow download keeps the flow open while `flows` is read.
	http_get --limit-rate 300k >/dev/null 2>&1 &
	slow=$!
	sleep 1
	ph_expect_ok "flows lists $H port $HTTP_PORT (tcp, origin outbound)" flow_listed tcp "$H" $HTTP_PORT
	wait $slow
	ph_check "slow download from $H completed (sha256)" [ $? -eq 0 ]
	ph_expect_ok "UDP echo from $H port $UDP_PORT answers" udp_ask "$PH_NS_SRV" "$H" $UDP_PORT
	ph_expect_ok "flows lists $H port $UDP_PORT (udp, origin outbound)" flow_listed udp "$H" $UDP_PORT
done
for S in "$PH_SRV4" "$PH_SRV6"; do
	ph_expect_fail "inbound: TCP 9999 on $S from $PH_NS_CLI dropped" \
		ph_tcp_connect "$PH_NS_CLI" "$S" 9999
	ph_expect_fail "inbound: UDP 9998 on $S from $PH_NS_CLI dropped" \
		udp_ask "$PH_NS_CLI" "$S" 9998
done
ph_expect_ok "pinhole flows (human)" ph_pinhole flows
pf=$(ph_stat pass_flow in)
ph_check "stats: replies passed as pass_flow on ingress ($pf packets)" [ "${pf:-0}" -gt 0 ]
ph_expect_ok "pinhole detach" ph_pinhole detach "$PH_IF_SRV"

ph_section "default out drop, no outbound service: blocked on egress"
ph_expect_ok "pinhole attach --policy egress-drop.policy $PH_IF_SRV" \
	ph_pinhole attach --policy "$POL_DROP" "$PH_IF_SRV" || ph_fatal "attach"
out_before=$(ph_stat drop_policy out)
for H in "$PH_CLI4" "$PH_CLI6"; do
	# A dropped SYN fails after 2 s (the SYN and its retransmission).
	ph_expect_fail "curl http://$(ph_urlhost "$H"):$HTTP_PORT/ from $PH_NS_SRV blocked" \
		ph_srv curl -sS --connect-timeout 2 --max-time 10 "http://$(ph_urlhost "$H"):$HTTP_PORT/"
	ph_expect_fail "UDP echo to $H port $UDP_PORT blocked" udp_ask "$PH_NS_SRV" "$H" $UDP_PORT
done
out_after=$(ph_stat drop_policy out)
ph_check "stats: drop_policy (out) grew by >= 4 ($out_before -> $out_after)" \
	[ $((${out_after:-0} - ${out_before:-0})) -ge 4 ]
ph_expect_ok "pinhole detach" ph_pinhole detach "$PH_IF_SRV"
ph_expect_ok "after detach: curl to $PH_CLI4:$HTTP_PORT works again" \
	ph_srv curl -sS --max-time 3 -o /dev/null "http://$PH_CLI4:$HTTP_PORT/"

ph_finish
