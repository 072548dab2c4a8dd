#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Real servers behind pinhole, IPv4 and IPv6:
#   phe-cli (10.199.0.2, fd00:199::2) --veth--> phe-srv (10.199.0.1, fd00:199::1)
#   sshd/SFTP 22, nginx HTTP 80 + HTTPS 443, vsftpd 21, a TCP listener on 9999.
# With `default in drop` and services 22/80/443/21:
#   - SFTP download (checksum), HTTP, HTTPS, FTP control (login + SIZE) work;
#   - a scan of other ports (including the live 9999 listener) fails and
#     `stats -j` counts drop_policy;
# After `detach`: 9999 answers again, no XDP program, no TC egress filter,
# the pin directory is gone.
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"

ph_require_root
ph_require_bins ip nsenter tc "${PH_SERVER_BINS[@]}"
ph_require_pinhole
ph_init services
ph_netns_setup || ph_fatal "namespaces and veth"

ph_section "servers in $PH_NS_SRV"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ph_start_sshd || ph_fatal "start sshd"
ph_start_nginx || ph_fatal "start nginx"
ph_start_vsftpd || ph_fatal "start vsftpd"
ph_start_tcp_listener 9999 || ph_fatal "start TCP listener on 9999"
ph_pass "sshd 22, nginx 80/443, vsftpd 21, TCP listener 9999"
for a in "$PH_SRV4" "$PH_SRV6"; do
	ph_expect_ok "without pinhole: port 9999 on $a answers" \
		ph_tcp_connect "$PH_NS_CLI" "$a" 9999 || ph_fatal "test setup"
done

ph_section "attach pinhole"
POLICY=$PH_TMP/services.policy
cat >"$POLICY" <<'EOF'
# test_services.sh: a host serving SFTP, HTTP(S) and FTP; nothing else.
default in drop
default out allow
service sftp in tcp 22 from any
service http in tcp 80 from any
service https in tcp 443 from any
service ftp in tcp 21 from any ftp-track
EOF
ph_on_exit ph_pinhole_detach
ph_expect_ok "pinhole attach --policy services.policy $PH_IF_SRV" \
	ph_pinhole attach --policy "$POLICY" "$PH_IF_SRV" || ph_fatal "attach"
ph_expect_ok "XDP program on $PH_IF_SRV" \
	sh -c "ip -n '$PH_NS_SRV' link show dev '$PH_IF_SRV' | grep -q xdp"
ph_expect_ok "TC egress filter on $PH_IF_SRV" \
	sh -c "tc -n '$PH_NS_SRV' filter show dev '$PH_IF_SRV' egress | grep -q ."
ph_expect_ok "pinhole status" ph_pinhole status

ph_section "allowed services"
pass_before=$(ph_stat pass_policy in)
want=$(sha256sum <"$PH_SRV_DIR/sftp/data.bin")
for a in "$PH_SRV4" "$PH_SRV6"; do
	u=$(ph_urlhost "$a")
	rm -f "$PH_TMP/sftp.bin"
	if ph_expect_ok "sftp get data.bin from $a" \
		ph_sftp_get "$PH_NS_CLI" "$a" "$PH_SRV_DIR/sftp/data.bin" "$PH_TMP/sftp.bin"; then
		ph_check "sftp data.bin sha256 matches ($a)" \
			[ "$(sha256sum <"$PH_TMP/sftp.bin")" = "$want" ]
	fi
	if ph_curl_has_sftp; then
		rm -f "$PH_TMP/sftp2.bin"
		ph_expect_ok "curl sftp://$u/.../data.bin" \
			ph_sftp_curl "$PH_NS_CLI" "$a" "$PH_SRV_DIR/sftp/data.bin" "$PH_TMP/sftp2.bin" &&
			ph_check "curl sftp data.bin sha256 matches ($a)" \
				[ "$(sha256sum <"$PH_TMP/sftp2.bin")" = "$want" ]
	fi
	ph_expect_ok "curl http://$u/" \
		sh -c "nsenter --net=/run/netns/$PH_NS_CLI curl -sS --max-time 5 http://$u/ | grep -qx pinhole-http-ok"
	ph_expect_ok "curl -k https://$u/data.bin (sha256)" \
		sh -c "nsenter --net=/run/netns/$PH_NS_CLI curl -sSk --max-time 10 https://$u/data.bin | sha256sum | grep -q $(sha256sum <"$PH_SRV_DIR/www/data.bin" | cut -d' ' -f1)"
	ph_expect_ok "FTP control on $a (anonymous login, MDTM, SIZE)" \
		ph_ftp_control "$PH_NS_CLI" "$a"
done
pass_after=$(ph_stat pass_policy in)
ph_check "stats: pass_policy (in) increased ($pass_before -> $pass_after)" \
	[ "${pass_after:-0}" -gt "${pass_before:-0}" ]

ph_section "port scan of everything else"
ports="23 25 3306 8080 9999 $((40000 + RANDOM % 10000)) $((50000 + RANDOM % 10000)) $((60000 + RANDOM % 5000))"
drop_before=$(ph_stat drop_policy in)
# Every probe gets 1 s; run them in parallel and collect the results.
declare -A scan
for a in "$PH_SRV4" "$PH_SRV6"; do
	for p in $ports; do
		ph_tcp_connect "$PH_NS_CLI" "$a" "$p" >/dev/null 2>&1 &
		scan["$a $p"]=$!
	done
done
opened=()
for k in "${!scan[@]}"; do
	wait "${scan[$k]}" && opened+=("$k")
done
ph_check "scan: none of ports $ports connected (IPv4 + IPv6)${opened:+; open: ${opened[*]}}" \
	[ ${#opened[@]} -eq 0 ]
drop_after=$(ph_stat drop_policy in)
nprobes=$((2 * $(wc -w <<<"$ports")))
ph_check "stats: drop_policy (in) grew by >= $nprobes ($drop_before -> $drop_after)" \
	[ $((${drop_after:-0} - ${drop_before:-0})) -ge $nprobes ]
ph_expect_ok "pinhole stats (human)" ph_pinhole stats

ph_section "detach"
ph_expect_ok "pinhole detach $PH_IF_SRV" ph_pinhole detach "$PH_IF_SRV"
for a in "$PH_SRV4" "$PH_SRV6"; do
	ph_expect_ok "port 9999 on $a answers again" ph_tcp_connect "$PH_NS_CLI" "$a" 9999
done
ph_expect_fail "no XDP program on $PH_IF_SRV" \
	sh -c "ip -n '$PH_NS_SRV' link show dev '$PH_IF_SRV' | grep xdp"
ph_expect_fail "no TC egress filter on $PH_IF_SRV" \
	sh -c "tc -n '$PH_NS_SRV' filter show dev '$PH_IF_SRV' egress | grep ."
ph_check "pin dir $PH_PIN removed" [ ! -e "$PH_PIN" ]

ph_finish
