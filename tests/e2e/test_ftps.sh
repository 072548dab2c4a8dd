#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# FTPS through pinhole, the positive matrix (docs/ftps.md):
#   phz-cli (10.194.0.2, fd00:194::2) -- switch -- phz-srv (10.194.0.1, fd00:194::1)
#   (+ phz-evil .3/::3 on the same switch, a host with no session)
#   vsftpd with TLS: plain FTP and explicit FTPS (AUTH TLS) on 21, implicit
#   FTPS on 990 (active data from 989), passive range 28000-28049, a
#   self-signed certificate made by the test.
# Server side: pinhole on phz-srv with the shipped preset
# policies/eft-server.policy (21 ftp-track, 990 ftps-implicit, 28000-30000
# ftps-range). Every FTPS download (curl --ssl-reqd / ftps://, lftp
# ftp:ssl-force; passive and active; IPv4 and IPv6; 64 MiB) must arrive
# with its sha256; a passive FTPS data connection must be admitted by the
# ftps-range check (pass_ftps_range), a plain FTP one by its exact pinhole
# (pass_expect), and nothing may be dropped or retransmitted.
# Client side: pinhole on phz-cli (default in drop, the client's active
# data ports 28100-28149 an ftps-range): active FTPS data from the server
# (ports 20 and 989) must be admitted by the ftps-range check.
# Step lists are split into words on purpose; ftps_true evaluates its
# single-quoted condition when the check runs; helpers run through ph_check.
# shellcheck disable=SC2016,SC2034,SC2317
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"
# shellcheck source=tests/lib/ftp.sh
. "$(dirname "$0")/../lib/ftp.sh"
# shellcheck source=tests/lib/ftps.sh
. "$(dirname "$0")/../lib/ftps.sh"

ph_require_root
ph_require_bins ip nsenter nc nstat "${PH_FTPS_BINS[@]}"
ph_require_pinhole
PH_NS_PREFIX=phz PH_NET4=10.194.0 PH_NET6=fd00:194:
PH_PIN=/sys/fs/bpf/ph-phz-matrix
PH_EXTRA_HOSTS=evil
ph_init ftps-matrix
ph_netns_setup || ph_fatal "namespaces"
EVIL_NS=${PH_HOST_NS[evil]}

ph_section "vsftpd (plain + explicit FTPS on 21, implicit FTPS on 990) in $PH_NS_SRV"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ftp_make_files 1 || ph_fatal "test files"
ftps_start_servers || ph_fatal "start vsftpd"
ph_start_tcp_listener 45000 "$PH_NS_SRV" || ph_fatal "listener 45000 in $PH_NS_SRV"
ph_start_tcp_listener 45001 "$PH_NS_CLI" || ph_fatal "listener 45001 in $PH_NS_CLI"
DL=$PH_TMP/dl
mkdir -p "$DL" "$PH_TMP/logs"
LOGS=$PH_TMP/logs
nofw() {
	ftps_curl "$PH_NS_CLI" "$PH_SRV4" explicit hello.txt "$DL/h1" &&
		ftps_curl "$PH_NS_CLI" "$PH_SRV6" implicit hello.txt "$DL/h2" &&
		grep -qx pinhole-ftp-ok "$DL/h1" && grep -qx pinhole-ftp-ok "$DL/h2"
}
ph_expect_ok "without a firewall: explicit FTPS (IPv4) and implicit FTPS (IPv6) downloads" nofw ||
	ph_fatal "FTPS without a firewall"

# ---------------------------------------------------------------------------
# Scenarios: NAME SIDE FAMILY MODE TOOL VERB FILE RANGE EXPECT [ARGS...]
#   SIDE     srv: pinhole on the server host; cli: on the client host
#   MODE     explicit (AUTH TLS on 21) | implicit (990) | plain (21)
#   TOOL     curl [CURL-OPTS] | lftp pasv|port EPSV(yes|no) [PORT-RANGE]
#   VERB     the data verb vsftpd must log
#   RANGE    data connections the ftps-range check must admit (pass_ftps_range)
#   EXPECT   data connections an exact FTP pinhole must admit (pass_expect)
# curl 7.88 cannot do active FTPS (curl issue #10666, a 7.87 regression:
# it hangs after accepting the data connection), so active FTPS is lftp's.
# ---------------------------------------------------------------------------
ACT=$FTPS_ACT_MIN-$FTPS_ACT_MAX
SCENARIOS=(
	"srv-exp-pasv-v4       srv 4 explicit curl PASV big.bin 1 0 --disable-epsv"
	"srv-exp-epsv-v6       srv 6 explicit curl EPSV big.bin 1 0"
	"srv-imp-pasv-v4       srv 4 implicit curl PASV big.bin 1 0 --disable-epsv"
	"srv-imp-epsv-v6       srv 6 implicit curl EPSV big.bin 1 0"
	"srv-exp-pasv-v4-lftp  srv 4 explicit lftp PASV big.bin 1 0 pasv no"
	"srv-exp-epsv-v4-lftp  srv 4 explicit lftp EPSV mid.bin 1 0 pasv yes"
	"srv-imp-epsv-v6-lftp  srv 6 implicit lftp EPSV big.bin 1 0 pasv no"
	"srv-exp-port-v4-lftp  srv 4 explicit lftp PORT big.bin 0 0 port no"
	"srv-exp-eprt-v6-lftp  srv 6 explicit lftp EPRT big.bin 0 0 port no"
	"srv-imp-port-v4-lftp  srv 4 implicit lftp PORT big.bin 0 0 port no"
	"srv-imp-eprt-v6-lftp  srv 6 implicit lftp EPRT big.bin 0 0 port no"
	"srv-plain-pasv-v4     srv 4 plain    curl PASV big.bin 0 1 --disable-epsv"
	"srv-plain-epsv-v6     srv 6 plain    curl EPSV mid.bin 0 1"
	"cli-exp-port-v4-lftp  cli 4 explicit lftp PORT big.bin 1 0 port no $ACT"
	"cli-exp-eprt-v6-lftp  cli 6 explicit lftp EPRT big.bin 1 0 port no $ACT"
	"cli-imp-port-v4-lftp  cli 4 implicit lftp PORT big.bin 1 0 port no $ACT"
	"cli-imp-eprt-v6-lftp  cli 6 implicit lftp EPRT big.bin 1 0 port no $ACT"
	"cli-exp-epsv-v4       cli 4 explicit curl EPSV mid.bin 0 0"
	"cli-plain-port-v4     cli 4 plain    curl PORT mid.bin 0 1 -P - --disable-eprt"
)
MATRIX=$PH_TMP/matrix.txt
MFMT='%-21s %-3s %-8s %-4s %-4s %-6s %-9s %-4s %-5s %-6s %-5s %-6s %-24s %s\n'
# shellcheck disable=SC2059 # the format is a variable on purpose
printf "$MFMT" SCENARIO FW MODE TOOL VERB RESULT BYTES SHA RANGE EXPECT DROPS SYNRTX "DATA CONNS (lport<rport)" MS >"$MATRIX"

# The firewall really is closed: a live listener (45000 on srv, 45001 on
# cli) cannot be reached from the other host nor from phz-evil.
fw_sanity() {
	local target=$PH_SRV4 port=45000 from=$PH_NS_CLI r1=0 r2=0
	[ "$FTPS_FW_SIDE" = cli ] && target=$PH_CLI4 port=45001 from=$PH_NS_SRV
	local p1 p2
	ph_tcp_connect "$from" "$target" "$port" >/dev/null 2>&1 &
	p1=$!
	ph_tcp_connect "$EVIL_NS" "$target" "$port" >/dev/null 2>&1 &
	p2=$!
	wait $p1 && r1=1
	wait $p2 && r2=1
	ph_check "pinhole on $FTPS_FW_SIDE: $target:$port closed to the peer and to phz-evil" \
		ftps_true '[ $r1 = 0 ] && [ $r2 = 0 ]'
}

run_scenario() {
	local name=$1 side=$2 fam=$3 mode=$4 tool=$5 verb=$6 file=$7 wrange=$8 wexp=$9
	shift 9
	local host=$PH_SRV4 out=$DL/$name rc bytes=0 sha=no res=PASS why=() conns range expect drops
	[ "$fam" = 6 ] && host=$PH_SRV6
	rm -f "$out"
	ftps_mark
	if [ "$tool" = curl ]; then
		ftps_curl "$PH_NS_CLI" "$host" "$mode" "$file" "$out" "$@" >"$LOGS/$name.out" 2>&1
	else
		ftps_lftp "$PH_NS_CLI" "$host" "$mode" "$file" "$out" "$@" >"$LOGS/$name.out" 2>&1
	fi
	rc=$?
	ftps_observe
	[ -f "$out" ] && bytes=$(stat -c %s "$out")
	[ -f "$out" ] && [ "$(sha256sum <"$out" | cut -d' ' -f1)" = "$(ftp_sum "$file")" ] && sha=ok
	rm -f "$out"
	range=$(ftps_delta "$FTPS_M_STATS" "$FTPS_O_STATS" pass_ftps_range)
	expect=$(ftps_delta "$FTPS_M_STATS" "$FTPS_O_STATS" pass_expect)
	drops=$(($(ftps_delta "$FTPS_M_STATS" "$FTPS_O_STATS" drop_ftps_no_session) +
		$(ftps_delta "$FTPS_M_STATS" "$FTPS_O_STATS" drop_ftps_no_listener) +
		$(ftps_delta "$FTPS_M_STATS" "$FTPS_O_STATS" drop_policy)))
	conns=$(ftps_flows_new ftps-range "$PH_TMP/seen-range-$side")
	[ $rc = 0 ] || why+=("$tool exit $rc")
	[ $sha = ok ] || why+=("sha256 mismatch ($bytes bytes)")
	[ "$FTPS_O_VERBS" = "$verb" ] || why+=("verbs '$FTPS_O_VERBS', want $verb")
	[ "$FTPS_O_XFERS" = 1 ] || why+=("$FTPS_O_XFERS transfers started (150), want 1")
	[ "$range" = "$wrange" ] || why+=("pass_ftps_range +$range, want +$wrange")
	[ "$expect" = "$wexp" ] || why+=("pass_expect +$expect, want +$wexp")
	[ "$drops" = 0 ] || why+=("$drops drops (drop_ftps_no_session/no_listener/policy)")
	[ "$FTPS_O_SYN" = 0 ] || why+=("$FTPS_O_SYN SYN retransmits")
	if [ "$wrange" = 1 ]; then
		# The connection the range admitted is the announced data port.
		local c ok=0
		for c in $conns; do
			case " $FTPS_O_ANN " in *" ${c%<*} "*) ok=1 ;; esac
		done
		[ $ok = 1 ] || why+=("no ftps-range flow to an announced port (flows '$conns', announced '$FTPS_O_ANN')")
	fi
	[ ${#why[@]} = 0 ] || res=FAIL
	# shellcheck disable=SC2059
	printf "$MFMT" "$name" "$side" "$mode" "$tool" "$FTPS_O_VERBS" "$res" "$bytes" "$sha" \
		"$range" "$expect" "$drops" "$FTPS_O_SYN" "${conns:--}" "$FTPS_O_MS" >>"$MATRIX"
	if [ $res = PASS ]; then
		ph_pass "$name: $file $bytes bytes, sha ok, $verb (announced $FTPS_O_ANN), range +$range, expect +$expect, ${FTPS_O_MS} ms"
	else
		ph_fail "$name: $(IFS=';'; echo "${why[*]}")"
		sed 's/^/      | /' "$LOGS/$name.out" | tail -n 5
		echo "      | announced: ${FTPS_O_ANN:--}; counters after: $FTPS_O_STATS"
	fi
}

for side in srv cli; do
	if [ $side = srv ]; then
		POLICY=$(ftps_server_policy)
		ph_section "pinhole on the server host: $POLICY"
	else
		POLICY=$PH_TMP/ftps-client.policy
		ftps_client_policy "$POLICY"
		ph_section "pinhole on the client host: active data only to $ACT, ftps-range"
	fi
	ph_expect_ok "pinhole check $(basename "$POLICY")" "$PH_BIN" check "$POLICY"
	if ! ftps_fw_up "$side" "$POLICY"; then
		ph_fail "pinhole on $side did not start"
		continue
	fi
	fw_sanity
	for s in "${SCENARIOS[@]}"; do
		# shellcheck disable=SC2086 # word splitting wanted
		set -- $s
		[ "$2" = "$side" ] || continue
		run_scenario "$@"
		ftps_fw_alive
	done
	ph_pinhole stats -j >"$LOGS/stats-$side.json" 2>&1
	ph_pinhole sessions -j >"$LOGS/sessions-$side.json" 2>&1
	ftps_fw_down
done

ph_section "FTPS matrix"
cat "$MATRIX"
echo "RANGE: pass_ftps_range, EXPECT: pass_expect, DROPS: drop_ftps_no_session + drop_ftps_no_listener + drop_policy"
echo "(deltas on the firewalled host during the scenario); logs: $LOGS (kept with PH_KEEP=1)"
ph_finish
