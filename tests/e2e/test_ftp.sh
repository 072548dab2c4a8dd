#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# FTP data connections through a firewall with no passive range, the
# differential matrix (docs/ftp-e2e.md):
#   phf-cli (10.195.0.2, fd00:195::2) -- switch -- phf-srv (10.195.0.1, fd00:195::1)
#   vsftpd (IPv4 + IPv6 instances, any passive port, active from port 20)
# The firewall runs on the server host or on the client host, default drop
# in and out, only FTP control (21) open, as backend=pinhole (ftp-track)
# and backend=nftables (nf_conntrack_ftp helper, the oracle). Every
# scenario (PASV, EPSV, PORT, EPRT; server and client side; IPv4/IPv6;
# curl and lftp) runs on both; the admitted data connections must match.
# Then, pinhole on the server host: 50 parallel passive transfers, and
# 200+ data connections with 0 SYN retransmits expected.
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
# No static passive range: vsftpd picks any port >= 1024.
PH_FTP_PASV_MIN=0 PH_FTP_PASV_MAX=0
# A blocked active connection gives up after 5 s (not 60).
PH_VSFTPD_OPTS="connect_timeout=5
data_connection_timeout=30"
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"
# shellcheck source=tests/lib/ftp.sh
. "$(dirname "$0")/../lib/ftp.sh"

ph_require_root
ph_require_bins ip nsenter nc "${PH_FTP_BINS[@]}"
ph_require_pinhole
PH_NS_PREFIX=phf PH_NET4=10.195.0 PH_NET6=fd00:195:
PH_PIN=$FTP_PIN_BASE-matrix
BACKENDS=${FTP_BACKENDS:-nftables pinhole}
ph_init ftp-matrix
ph_netns_setup || ph_fatal "namespaces"

ph_section "vsftpd in $PH_NS_SRV, files"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ftp_make_files 100 || ph_fatal "test files"
ph_start_vsftpd || ph_fatal "start vsftpd"
ph_start_tcp_listener 45000 "$PH_NS_SRV" || ph_fatal "listener 45000 in $PH_NS_SRV"
ph_start_tcp_listener 45001 "$PH_NS_CLI" || ph_fatal "listener 45001 in $PH_NS_CLI"
# shellcheck disable=SC2317 # called through ph_expect_ok
nofw() {
	ph_ftp_get "$PH_NS_CLI" "$PH_SRV4" && ph_ftp_get "$PH_NS_CLI" "$PH_SRV6" -P - &&
		ph_ftp_get "$PH_NS_CLI" "$PH_SRV4" -P - --disable-eprt
}
ph_expect_ok "without a firewall: EPSV/IPv4, EPRT/IPv6, PORT/IPv4 downloads" nofw ||
	ph_fatal "FTP without firewall"
DL=$PH_TMP/dl
mkdir -p "$DL"
LOGS=$(ftp_logdir)

# ---------------------------------------------------------------------------
# Scenarios: NAME SIDE FAMILY TOOL VERB FILE [CURL-OPTS | lftp EPSV yes/no]
# VERB is the data verb that must be used (checked in vsftpd's log).
# ---------------------------------------------------------------------------
SCENARIOS=(
	"srv-pasv-v4        srv 4 curl PASV big.bin  --disable-epsv"
	"srv-epsv-v4        srv 4 curl EPSV mid.bin"
	"srv-epsv-v6        srv 6 curl EPSV big.bin"
	"srv-port-v4        srv 4 curl PORT big.bin  -P - --disable-eprt"
	"srv-eprt-v4        srv 4 curl EPRT mid.bin  -P -"
	"srv-eprt-v6        srv 6 curl EPRT big.bin  -P -"
	"srv-pasv-v4-lftp   srv 4 lftp PASV mid.bin  no"
	"srv-epsv-v4-lftp   srv 4 lftp EPSV mid.bin  yes"
	"srv-epsv-v6-lftp   srv 6 lftp EPSV mid.bin  no"
	"srv-port-v4-lftp   srv 4 lftp PORT mid.bin  no"
	"srv-eprt-v6-lftp   srv 6 lftp EPRT mid.bin  no"
	"cli-pasv-v4        cli 4 curl PASV big.bin  --disable-epsv"
	"cli-epsv-v4        cli 4 curl EPSV mid.bin"
	"cli-epsv-v6        cli 6 curl EPSV big.bin"
	"cli-port-v4        cli 4 curl PORT big.bin  -P - --disable-eprt"
	"cli-eprt-v4        cli 4 curl EPRT mid.bin  -P -"
	"cli-eprt-v6        cli 6 curl EPRT big.bin  -P -"
	"cli-pasv-v4-lftp   cli 4 lftp PASV mid.bin  no"
	"cli-epsv-v6-lftp   cli 6 lftp EPSV mid.bin  no"
	"cli-port-v4-lftp   cli 4 lftp PORT mid.bin  no"
	"cli-eprt-v6-lftp   cli 6 lftp EPRT mid.bin  no"
)
declare -A ADM PAR SYN
MATRIX=$PH_TMP/matrix.txt
printf '%-18s %-8s %-6s %-9s %-4s %-7s %-3s %-5s %-24s %-6s %s\n' \
	SCENARIO BACKEND RESULT BYTES SHA VERB ADM OP/US "DATA CONNS (port>port)" SYNRTX MS >"$MATRIX"

# The firewall really is closed: a live listener on the other host cannot
# be reached in either direction (each probe 1 s, in parallel).
fw_sanity() {
	local a=$PH_SRV4 b=$PH_CLI4 p1 p2 r1=0 r2=0
	ph_tcp_connect "$PH_NS_CLI" "$a" 45000 >/dev/null 2>&1 &
	p1=$!
	ph_tcp_connect "$PH_NS_SRV" "$b" 45001 >/dev/null 2>&1 &
	p2=$!
	wait $p1 && r1=1
	wait $p2 && r2=1
	ph_check "$FTP_FW on $FTP_SIDE: cli->srv:45000 and srv->cli:45001 blocked" \
		[ "$r1$r2" = 00 ]
}

run_scenario() {
	local name=$1 side=$2 fam=$3 tool=$4 verb=$5 file=$6
	shift 6
	local host=$PH_SRV4 out=$DL/$name.$FTP_FW rc bytes=0 sha=no want res=PASS why=()
	[ "$fam" = 6 ] && host=$PH_SRV6
	want=$(ftp_sum "$file")
	rm -f "$out"
	ftp_mark
	if [ "$tool" = curl ]; then
		ftp_curl "$PH_NS_CLI" "$host" "$file" "$out" "$@" >"$LOGS/$name.$FTP_FW.out" 2>&1
	else
		local mode=pasv
		case $verb in PORT | EPRT) mode=port ;; esac
		ftp_lftp "$PH_NS_CLI" "$host" "$file" "$out" "$mode" "${1:-no}" >"$LOGS/$name.$FTP_FW.out" 2>&1
	fi
	rc=$?
	ftp_observe
	[ -f "$out" ] && bytes=$(stat -c %s "$out")
	[ -f "$out" ] && [ "$(sha256sum <"$out" | cut -d' ' -f1)" = "$want" ] && sha=ok
	rm -f "$out"
	[ $rc = 0 ] || why+=("$tool exit $rc")
	[ $sha = ok ] || why+=("sha256 mismatch ($bytes bytes)")
	[ "$FTP_O_VERBS" = "$verb" ] || why+=("verbs '$FTP_O_VERBS', want $verb")
	[ "$FTP_O_ADMITTED" = 1 ] || why+=("$FTP_O_ADMITTED data connections admitted, want 1")
	[ "$FTP_O_XFERS" = 1 ] || why+=("$FTP_O_XFERS transfers started (150), want 1")
	[ -n "$FTP_O_CONNS" ] || why+=("no admitted data connection listed")
	ftp_conns_exact || why+=("admitted '$FTP_O_CONNS' not an announced port ($FTP_O_ANN)")
	[ "$FTP_O_SYN" = 0 ] || why+=("$FTP_O_SYN SYN retransmits")
	case $FTP_O_TRK in
	- | 1/1) ;;
	*) why+=("sessions -j opened/used $FTP_O_TRK, want 1/1") ;;
	esac
	[ ${#why[@]} = 0 ] || res=FAIL
	ADM[$name.$FTP_FW]=$FTP_O_ADMITTED
	printf '%-18s %-8s %-6s %-9s %-4s %-7s %-3s %-5s %-24s %-6s %s\n' "$name" "$FTP_FW" "$res" \
		"$bytes" "$sha" "$FTP_O_VERBS" "$FTP_O_ADMITTED" "$FTP_O_TRK" "${FTP_O_CONNS:--}" "$FTP_O_SYN" "$FTP_O_MS" >>"$MATRIX"
	if [ $res = PASS ]; then
		ph_pass "$name [$FTP_FW]: $file $bytes bytes, sha ok, $verb, admitted ${FTP_O_CONNS} (announced $FTP_O_ANN), ${FTP_O_MS} ms"
	else
		ph_fail "$name [$FTP_FW]: $(IFS=';'; echo "${why[*]}")"
		sed 's/^/      | /' "$LOGS/$name.$FTP_FW.out" | tail -n 5
		echo "      | announced: ${FTP_O_ANN:--}; drops counted: $FTP_O_DROPS; ${FTP_O_MS} ms"
	fi
}

for be in $BACKENDS; do
	for side in srv cli; do
		ph_section "backend $be on the $side host"
		if ! ftp_fw_up "$be" "$side"; then
			ph_fail "$be on $side: firewall did not start"
			for s in "${SCENARIOS[@]}"; do
				read -r name sside _ <<<"$s"
				[ "$sside" = "$side" ] || continue
				ADM[$name.$be]=-
				printf '%-18s %-8s %-6s\n' "$name" "$be" "NOFW" >>"$MATRIX"
			done
			ftp_fw_down
			continue
		fi
		fw_sanity
		for s in "${SCENARIOS[@]}"; do
			# shellcheck disable=SC2086 # word splitting wanted
			set -- $s
			[ "$2" = "$side" ] || continue
			run_scenario "$@"
			ftp_fw_alive
		done
		if [ "$be" = pinhole ]; then
			ph_pinhole sessions -j >"$LOGS/sessions-$side.json" 2>&1
			ph_pinhole stats -j >"$LOGS/stats-$side.json" 2>&1
		fi
		ftp_fw_down
	done
done

ph_section "backends agree (admitted data connections per scenario)"
# shellcheck disable=SC2086 # a list of words
set -- $BACKENDS
if [ $# -ge 2 ]; then
	diffs=()
	for s in "${SCENARIOS[@]}"; do
		read -r name _ <<<"$s"
		[ "${ADM[$name.$1]:-x}" = "${ADM[$name.$2]:-y}" ] ||
			diffs+=("$name: $1 ${ADM[$name.$1]:-?} vs $2 ${ADM[$name.$2]:-?}")
	done
	ph_check "same admitted data connections on $1 and $2${diffs:+: ${diffs[*]}}" [ ${#diffs[@]} = 0 ]
fi

# ---------------------------------------------------------------------------
# Load: pinhole (or the last backend) on the server host.
# ---------------------------------------------------------------------------
LOADBE=${FTP_LOAD_BACKENDS:-nftables pinhole}
for be in $LOADBE; do
	ph_section "$be on the server host: 50 parallel passive transfers"
	ftp_fw_up "$be" srv || { ph_fail "$be on srv: firewall did not start"; continue; }
	ftp_mark
	pids=()
	for i in $(seq 1 50); do
		host=$PH_SRV4
		[ $((i % 2)) = 0 ] && host=$PH_SRV6
		ftp_curl "$PH_NS_CLI" "$host" mid.bin "$DL/par$i" >"$LOGS/par$i.$be.out" 2>&1 &
		pids+=($!)
	done
	nok=0 bad=()
	for i in $(seq 1 50); do
		if wait "${pids[$((i - 1))]}" && [ "$(sha256sum <"$DL/par$i" | cut -d' ' -f1)" = "$(ftp_sum mid.bin)" ]; then
			nok=$((nok + 1))
		else
			bad+=("$i:$(head -c 100 "$LOGS/par$i.$be.out" | tr '\n' ' ')")
		fi
	done
	rm -f "$DL"/par*
	ftp_observe
	ph_check "$be: 50 parallel (25 EPSV/IPv4, 25 EPSV/IPv6) x 1 MiB: $nok/50 checksum-correct, admitted $FTP_O_ADMITTED, SYN retransmits $FTP_O_SYN, ${FTP_O_MS} ms${bad:+; failed: ${bad[*]:0:3}}" \
		[ $nok = 50 ]
	PAR[$be]="$nok/50 ok, admitted $FTP_O_ADMITTED, synrtx $FTP_O_SYN, ${FTP_O_MS} ms"

	ph_section "$be on the server host: 200 data connections, SYN retransmits"
	ftp_mark
	syn_cli0=$(ftp_synrtx "$PH_NS_CLI") syn_srv0=$(ftp_synrtx "$PH_NS_SRV")
	# batch NAME HOST RANGE CURL-OPTS...: one curl session fetching 50 files;
	# "OK MS" (checksum-correct files, elapsed ms) goes to $DL/NAME.res.
	batch() {
		local name=$1 host=$2 range=$3 f t0 ok=0
		shift 3
		mkdir -p "$DL/$name"
		t0=$(date +%s%N)
		ph_in "$PH_NS_CLI" curl -sS --fail-early --connect-timeout 4 --max-time 120 "$@" \
			-o "$DL/$name/#1.bin" "ftp://$(ph_urlhost "$host")/s/[$range].bin" \
			>"$LOGS/syn-$name.$be.out" 2>&1
		for f in "$DL/$name"/*.bin; do
			[ -f "$f" ] && [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(ftp_sum "s/${f##*/}")" ] &&
				ok=$((ok + 1))
		done
		rm -rf "${DL:?}/$name"
		echo "$ok $((($(date +%s%N) - t0) / 1000000))" >"$DL/$name.res"
	}
	# The four sessions run at once: a passive batch may take seconds
	# instead of 0.3 s (curl's 1 s stall, docs/ftp-e2e.md), and the
	# sessions do not depend on each other.
	bpids=()
	batch pasv4 "$PH_SRV4" 001-050 --disable-epsv &
	bpids+=($!)
	batch epsv6 "$PH_SRV6" 051-100 &
	bpids+=($!)
	batch port4 "$PH_SRV4" 001-050 -P - --disable-eprt &
	bpids+=($!)
	batch eprt6 "$PH_SRV6" 051-100 -P - &
	bpids+=($!)
	wait "${bpids[@]}"
	n_ok=0
	for name in pasv4 epsv6 port4 eprt6; do
		read -r ok ms <"$DL/$name.res" 2>/dev/null || ok=0 ms=?
		rm -f "$DL/$name.res"
		n_ok=$((n_ok + ok))
		ph_say "    $name: $ok/50 ok in $ms ms"
	done
	ftp_observe
	syn_cli=$(($(ftp_synrtx "$PH_NS_CLI") - syn_cli0))
	syn_srv=$(($(ftp_synrtx "$PH_NS_SRV") - syn_srv0))
	SYN[$be]="$syn_cli (client ns; server ns: $syn_srv) over $FTP_O_XFERS transfers, $n_ok/200 sha ok, admitted $FTP_O_ADMITTED, ${FTP_O_MS} ms"
	ph_check "$be: 200 transfers (50 PASV/v4, 50 EPSV/v6, 50 PORT/v4, 50 EPRT/v6), $n_ok checksum-correct" [ $n_ok = 200 ]
	ph_check "$be: $FTP_O_ADMITTED data connections admitted (want 200)" [ "$FTP_O_ADMITTED" = 200 ]
	ph_check "$be: TcpExtTCPSynRetrans in $PH_NS_CLI: $syn_cli (want 0); in $PH_NS_SRV: $syn_srv (want 0)" \
		[ "$syn_cli:$syn_srv" = 0:0 ]
	[ "$be" = pinhole ] && ph_pinhole sessions -j >"$LOGS/sessions-load.json" 2>&1
	ftp_fw_alive
	ftp_fw_down
done

ph_section "matrix"
cat "$MATRIX"
echo
for be in $LOADBE; do
	echo "parallel  [$be]: ${PAR[$be]:-not run}"
	echo "SYN retx  [$be]: ${SYN[$be]:-not run}"
done
echo "logs: $LOGS (kept with PH_KEEP=1)"
ph_finish
