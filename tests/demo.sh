#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# pinhole demo (`sudo make demo`), ~30 s:
#   phd-cli (10.198.0.2, fd00:198::2) --veth--> phd-srv (10.198.0.1, fd00:198::1)
# Real servers in phd-srv (sshd/SFTP 22, nginx HTTP 80 + HTTPS 443, vsftpd 21,
# and a forgotten service on 9999), pinhole attached with policies/demo.policy:
# the services work, everything else is dropped and counted; detach, and the
# host is as open as before. Everything is removed on exit, also on Ctrl-C.
# Exit status: 0 if every expectation held, 1 otherwise, 77 if it cannot run.
#   PH_DEMO_PAUSE=SECONDS   pause between sections (default 2 on a terminal)
set -u
cd "$(dirname "$0")/.." || exit 1
PH_NS_PREFIX=phd PH_NET4=10.198.0 PH_NET6=fd00:198: PH_PIN=/sys/fs/bpf/ph-demo
# shellcheck source=tests/lib/netns.sh
. tests/lib/netns.sh
# shellcheck source=tests/lib/servers.sh
. tests/lib/servers.sh

POLICY=${PH_DEMO_POLICY:-policies/demo.policy}
PAUSE=${PH_DEMO_PAUSE:-$([ -t 1 ] && echo 2 || echo 0)}
pause() { sleep "$PAUSE"; }
show() { sed 's/^/      /'; }

ph_require_root
ph_require_bins ip nsenter tc "${PH_SERVER_BINS[@]}"
ph_require_pinhole
[ -r "$POLICY" ] || ph_skip "no demo policy: $POLICY"
ph_init demo

printf '%spinhole demo%s: an XDP/TC port-policy enforcer in front of real servers\n' \
	"$PH_C_HD" "$PH_C_0"
ph_say "client namespace $PH_NS_CLI ($PH_CLI4, $PH_CLI6) --veth--> server namespace $PH_NS_SRV ($PH_SRV4, $PH_SRV6)"

ph_section "1. Two network namespaces joined by a veth pair"
ph_netns_setup || ph_fatal "namespaces and veth"
ph_pass "$PH_NS_CLI:$PH_IF_CLI <--> $PH_NS_SRV:$PH_IF_SRV, IPv4 and IPv6 up"
pause

ph_section "2. Real servers in $PH_NS_SRV"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ph_start_sshd && ph_pass "sshd (SFTP) on 22" || ph_fatal "start sshd"
ph_start_nginx && ph_pass "nginx on 80 (HTTP) and 443 (HTTPS, self-signed)" || ph_fatal "start nginx"
ph_start_vsftpd && ph_pass "vsftpd on 21 (anonymous, passive $PH_FTP_PASV_MIN-$PH_FTP_PASV_MAX)" || ph_fatal "start vsftpd"
ph_start_tcp_listener 9999 && ph_pass "an unlisted service on 9999 (a forgotten debug port)" ||
	ph_fatal "start TCP listener"
ph_say "Without pinhole, anything listening is reachable:"
ph_expect_ok "port 9999 on $PH_SRV4 answers" ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 9999
pause

ph_section "3. Attach pinhole with $POLICY"
grep -v '^[[:space:]]*$' "$POLICY" | show
ph_on_exit ph_pinhole_detach
ph_say "\$ pinhole --pin-dir $PH_PIN attach --policy $POLICY $PH_IF_SRV"
out=$(ph_pinhole attach --policy "$POLICY" "$PH_IF_SRV" 2>&1)
rc=$?
[ -n "$out" ] && printf '%s\n' "$out" | show
[ $rc -eq 0 ] || ph_fatal "pinhole attach failed (exit $rc)"
ph_pass "attached"
ph_say "\$ ip link show $PH_IF_SRV; tc filter show dev $PH_IF_SRV egress"
ip -n "$PH_NS_SRV" link show dev "$PH_IF_SRV" | grep -o 'prog/xdp id [0-9]* name [^ ]*' | sed 's/^/XDP ingress: /' | show
tc -n "$PH_NS_SRV" filter show dev "$PH_IF_SRV" egress | grep -o 'id [0-9]* name [^ ]*' | sed 's/^/TC egress:   prog /' | show
pause

ph_section "4. Allowed services, from $PH_NS_CLI"
want=$(sha256sum <"$PH_SRV_DIR/sftp/data.bin" | cut -d' ' -f1)
sftp_ok() {
	rm -f "$PH_TMP/sftp.bin"
	ph_sftp_get "$PH_NS_CLI" "$1" "$PH_SRV_DIR/sftp/data.bin" "$PH_TMP/sftp.bin" &&
		[ "$(sha256sum <"$PH_TMP/sftp.bin" | cut -d' ' -f1)" = "$want" ]
}
http_ok() {
	ph_cli curl -sS --max-time 5 "http://$(ph_urlhost "$1")/" | grep -qx pinhole-http-ok
}
https_ok() {
	ph_cli curl -sSk --max-time 5 "https://$(ph_urlhost "$1")/" | grep -qx pinhole-http-ok
}
for a in "$PH_SRV4" "$PH_SRV6"; do
	ph_expect_ok "SFTP   sftp get of a 1 MiB file from $a, sha256 matches" sftp_ok "$a"
	ph_expect_ok "HTTP   curl http://$(ph_urlhost "$a")/" http_ok "$a"
	ph_expect_ok "HTTPS  curl -k https://$(ph_urlhost "$a")/" https_ok "$a"
	ph_expect_ok "FTP    passive download from $a through an exact pinhole (no open range)" \
		ph_ftp_get "$PH_NS_CLI" "$a"
	ph_expect_ok "FTP    active download from $a (server connects back from port 20)" \
		ph_ftp_get "$PH_NS_CLI" "$a" -P -
done
pause

ph_section "5. A port scan of everything else"
ports="23 25 445 3306 5432 8080 9999"
ph_say "nc -z -w1 to ports $ports, IPv4 and IPv6 (in parallel):"
declare -A scan
for a in "$PH_SRV4" "$PH_SRV6"; do
	for p in $ports; do
		ph_tcp_connect "$PH_NS_CLI" "$a" "$p" >/dev/null 2>&1 &
		scan["$a $p"]=$!
	done
done
for a in "$PH_SRV4" "$PH_SRV6"; do
	line=
	open=
	for p in $ports; do
		if wait "${scan["$a $p"]}"; then
			open+=" $p"
		else
			line+=" $p"
		fi
	done
	ph_check "$a: dropped:${line:- none}${open:+ — OPEN:$open}" [ -z "$open" ]
done
pause

ph_section "6. What pinhole saw"
ph_say "\$ pinhole status"
ph_pinhole status 2>&1 | show
ph_say "\$ pinhole stats"
ph_pinhole stats 2>&1 | show
drops=$(ph_stat drop_policy in)
ph_check "drop_policy counted the scan ($drops packets)" [ "${drops:-0}" -ge 14 ]
pause

ph_section "7. Detach"
ph_say "\$ pinhole detach $PH_IF_SRV"
ph_expect_ok "detached" ph_pinhole detach "$PH_IF_SRV"
ph_expect_ok "port 9999 answers again: pinhole is gone" \
	ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 9999
ph_expect_fail "no XDP program left on $PH_IF_SRV" \
	sh -c "ip -n '$PH_NS_SRV' link show dev '$PH_IF_SRV' | grep xdp"
ph_check "pin directory $PH_PIN removed" [ ! -e "$PH_PIN" ]

ph_section "Cleanup"
ph_run_cleanup
ph_pass "servers stopped, namespaces $PH_NS_SRV/$PH_NS_CLI and pins removed"
echo
if [ "$PH_FAILS" -eq 0 ]; then
	printf '%sdemo complete: %d/%d expectations held%s\n' "$PH_C_OK" "$PH_CHECKS" "$PH_CHECKS" "$PH_C_0"
	exit 0
fi
printf '%sdemo: %d of %d expectations FAILED%s\n' "$PH_C_KO" "$PH_FAILS" "$PH_CHECKS" "$PH_C_0"
exit 1
