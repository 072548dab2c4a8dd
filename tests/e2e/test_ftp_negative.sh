#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# What an FTP-tracking firewall on the server host must NOT open, IPv4 and
# IPv6, for backend=pinhole and backend=nftables (nf_conntrack_ftp):
#   phf-cli .2 / phf-evil .3 / phf-srv .1 (+ .11, a fake FTP server), one switch
#   - third-host: phf-evil connects to the passive port announced to phf-cli
#   - ttl:        the client connects after the pinhole's TTL (ftp-ttl 2s)
#   - bounce:     PORT/EPRT naming phf-evil (vsftpd port_promiscuous=YES)
#   - bounce20:   the same through the fake server, from port 20
#   - low-port:   PORT/EPRT to port 99 of the client (fake server)
#   - echo:       "227 ..." echoed inside a 500 reply (fake server)
#   - multiline:  a "227 ..." line, in its own segment, inside a 214- reply
#   - unsolicited: a 227/229 answering NOOP, not PASV/EPSV
# and, the other way round, what must work however TCP cuts the stream:
#   - split-pasv / split-port: the 227/229 reply or the PORT/EPRT command in
#     3 TCP segments (pinhole reassembles; nf_conntrack_ftp misses it)
# Where nf_conntrack_ftp is deliberately looser (ttl, low-port, multiline,
# unsolicited) or misses split lines, its verdict is expected to differ;
# docs/ftp-e2e.md. The two backends run at once in two copies of the
# topology (phf-* and phg-*, see ftpneg_lanes below).
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
PH_FTP_PASV_MIN=0 PH_FTP_PASV_MAX=0
# The server obeys any PORT (the firewall alone must stop a bounce) and
# gives up on a blocked active connection after 2 s (the SYN and its
# retransmission after 1 s, as every "blocked" probe here: a connection
# the firewall admits is answered within milliseconds on these veths).
# (vsftpd binds port 20 only through its privileged helper, which
# port_promiscuous disables: the bounce comes from an ephemeral port; the
# fake server bounces from port 20 and connects to low ports, which vsftpd
# refuses whatever its configuration.)
PH_VSFTPD_OPTS="port_promiscuous=YES
connect_from_port_20=NO
connect_timeout=2"
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"
# shellcheck source=tests/lib/ftp.sh
. "$(dirname "$0")/../lib/ftp.sh"

ph_require_root
ph_require_bins ip nsenter nc "${PH_FTP_BINS[@]}"
ph_require_pinhole
BACKENDS=${FTP_BACKENDS:-nftables pinhole}

# The backends run at once, each in a lane of its own: this script again
# with FTP_BACKENDS=one of them, lane 1 in the phf-* namespaces
# (10.195.0.0/24, fd00:195::/64), lane 2 in phg-* (10.193.0.0/24,
# fd00:193::/64), their own pins and temp directories. The cases mostly
# wait for blocked connections to time out, so two lanes halve the time
# without competing for the CPU. Their outputs follow one another, then
# the differences between the backends and every failed check.
ftpneg_lanes() {
	local dir lane=0 be rc=0 r pids=() c w
	dir=$(mktemp -d /tmp/ph-ftp-negative-lanes.XXXXXX)
	for be in "$@"; do
		lane=$((lane + 1))
		FTPNEG_LANE=$lane FTP_BACKENDS=$be FTPNEG_SUMMARY=$dir/summary.$lane \
			bash "$0" >"$dir/out.$lane" 2>&1 &
		pids+=($!)
	done
	# Background children ignore SIGINT: pass a Ctrl-C or TERM on, so
	# that each lane cleans up after itself.
	trap 'kill -TERM "${pids[@]}" 2>/dev/null' INT TERM
	lane=0
	for be in "$@"; do
		lane=$((lane + 1))
		while :; do
			wait "${pids[$((lane - 1))]}"
			r=$?
			# > 128: wait was interrupted by a trapped signal
			kill -0 "${pids[$((lane - 1))]}" 2>/dev/null || break
		done
		echo "=============== lane $lane: $be (exit $r) ==============="
		cat "$dir/out.$lane"
		echo
		case $r in 0) ;; 77) [ $rc = 0 ] && rc=77 ;; *) rc=1 ;; esac
	done
	trap - INT TERM
	echo "differences between $1 and $2:"
	awk 'FNR > 1 { out[$1 " " $2] = $3; cases[$1] = 1 }
		END { for (c in cases) if (out[c " " a] != out[c " " b])
			printf "  %s: %s %s, %s %s\n", c, a, out[c " " a], b, out[c " " b] }' \
		a="$1" b="$2" "$dir/summary.1" "$dir/summary.2" 2>/dev/null | sort
	if [ $rc = 1 ]; then
		echo
		echo "failed checks:"
		grep -h -e '✘' -e '^FAIL' "$dir"/out.* | sed 's/^/  /'
	fi
	rm -rf "$dir"
	[ $rc = 0 ] && echo "PASS: ftp-negative: both lanes passed"
	exit $rc
}
# shellcheck disable=SC2086 # a list of words
if [ -z "${FTPNEG_LANE:-}" ] && [ "$(wc -w <<<"$BACKENDS")" = 2 ]; then
	ftpneg_lanes $BACKENDS
fi
if [ "${FTPNEG_LANE:-1}" = 2 ]; then
	PH_NS_PREFIX=phg PH_NET4=10.193.0 PH_NET6=fd00:193:
	PH_PIN=$FTP_PIN_BASE-negative-2
	name=ftp-negative-2
else
	PH_NS_PREFIX=phf PH_NET4=10.195.0 PH_NET6=fd00:195:
	PH_PIN=$FTP_PIN_BASE-negative
	name=ftp-negative
fi
PH_EXTRA_HOSTS=evil
ph_init $name
ph_netns_setup || ph_fatal "namespaces"
EVIL_NS=${PH_HOST_NS[evil]} EVIL4=${PH_HOST4[evil]} EVIL6=${PH_HOST6[evil]}
FAKE4=$PH_NET4.11 FAKE6=$PH_NET6:11
ip -n "$PH_NS_SRV" addr add "$FAKE4/24" dev "$PH_IF_SRV"
ip -n "$PH_NS_SRV" addr add "$FAKE6/64" dev "$PH_IF_SRV" nodad
TRAP=47001 LOWP=99 FAKETRAP=47227

ph_section "servers: vsftpd (port_promiscuous) on $PH_SRV4/$PH_SRV6, fake FTP on $FAKE4/$FAKE6"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ph_start_vsftpd || ph_fatal "start vsftpd"
ftp_fake_server "$PH_NS_SRV" "$FAKE4" "$FAKE6" "$FAKETRAP" || ph_fatal "fake FTP server"
ftp_trap "$EVIL_NS" "$TRAP" "$PH_TMP/trap-evil.log" || ph_fatal "trap in $EVIL_NS"
ftp_trap "$PH_NS_CLI" "$LOWP" "$PH_TMP/trap-low.log" || ph_fatal "trap on $PH_NS_CLI:$LOWP"
LOGS=$(ftp_logdir)
N=0

lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
hi() { echo $(($1 >> 8)); }
lo() { echo $(($1 & 255)); }
comma() { echo "${1//./,}"; }

# Every case sets CASE_OUT ("blocked" or "admitted": what the firewall did
# with the connection under test) and CASE_EV (evidence, one line).
#
# third-host FAM: cli asks PASV/EPSV; evil connects to that port; then cli
# connects and downloads hello.txt. Outcome for evil; cli must succeed.
case_third_host() {
	local fam=$1 host=$PH_SRV4 verb=pasv wd rc ev=blocked d0 d1 cli
	[ "$fam" = 6 ] && host=$PH_SRV6 verb=epsv
	N=$((N + 1)) wd=$PH_TMP/raw$N
	ftp_raw "$PH_NS_CLI" "$host" "$wd" "cmd:USER anonymous" "cmd:PASS x" $verb \
		signal:asked wait:evil-done connect retr:hello.txt >"$wd.out" 2>&1 &
	rc=$!
	for _ in $(seq 100); do [ -e "$wd/asked" ] && break; sleep 0.05; done
	local port
	port=$(cat "$wd/port" 2>/dev/null)
	d0=$(fw_drops)
	ph_tcp_connect "$EVIL_NS" "$host" "${port:-1}" >/dev/null 2>&1 && ev=admitted
	d1=$(fw_drops)
	touch "$wd/evil-done"
	wait $rc
	cli=$(tr '\n' ' ' <"$wd/connect" 2>/dev/null)
	CASE_EV="port ${port:-?}; evil: $ev, drops +$((d1 - d0)); then cli: ${cli:-nothing}"
	CASE_CLI_OK=0
	[ "$cli" = "ok retr 15 " ] && CASE_CLI_OK=1
	CASE_OUT=$ev
}

# ttl FAM: cli asks, connects at once (must work), asks again, waits 4 s,
# connects. Outcome for the late connection.
case_ttl() {
	local fam=$1 host=$PH_SRV4 verb=pasv wd d0 d1 r
	[ "$fam" = 6 ] && host=$PH_SRV6 verb=epsv
	N=$((N + 1)) wd=$PH_TMP/raw$N
	d0=$(fw_drops)
	ftp_raw "$PH_NS_CLI" "$host" "$wd" "cmd:USER anonymous" "cmd:PASS x" \
		$verb connect retr:hello.txt $verb sleep:4 connect:1.5 >"$wd.out" 2>&1
	d1=$(fw_drops)
	r=$(tr '\n' ' ' <"$wd/connect" 2>/dev/null)
	local rest=${r#*retr }
	CASE_EV="at once: ${r%% retr*}, retr ${rest%% *} bytes; after 4 s: ${rest#* }; drops +$((d1 - d0))"
	CASE_CLI_OK=0
	case $r in "ok retr 15 "*) CASE_CLI_OK=1 ;; esac
	CASE_OUT=blocked
	case $r in *"retr 15 ok"*) CASE_OUT=admitted ;; esac
}

# active FAM TARGET [SERVER]: PORT/EPRT naming TARGET (bounce: evil:47001;
# low: cli:99), then LIST, to vsftpd or the fake server (which connects
# from port 20); outcome: did the trap get a connection?
case_active() {
	local fam=$1 what=$2 server=${3:-vsftpd} host=$PH_SRV4 addr port log cmd wd n0 n1
	[ "$fam" = 6 ] && host=$PH_SRV6
	if [ "$server" = fake ]; then
		host=$FAKE4
		[ "$fam" = 6 ] && host=$FAKE6
	fi
	if [ "$what" = bounce ]; then
		port=$TRAP log=$PH_TMP/trap-evil.log addr=$EVIL4
		[ "$fam" = 6 ] && addr=$EVIL6
	else
		port=$LOWP log=$PH_TMP/trap-low.log addr=$PH_CLI4
		[ "$fam" = 6 ] && addr=$PH_CLI6
	fi
	if [ "$fam" = 4 ]; then
		cmd="PORT $(comma "$addr"),$(hi $port),$(lo $port)"
	else
		cmd="EPRT |2|$addr|$port|"
	fi
	N=$((N + 1)) wd=$PH_TMP/raw$N
	n0=$(lines "$log")
	ftp_raw "$PH_NS_CLI" "$host" "$wd" "cmd:USER anonymous" "cmd:PASS x" \
		"cmd:$cmd" "cmd:LIST" >"$wd.out" 2>&1
	sleep 0.3
	n1=$(lines "$log")
	CASE_EV="'$cmd' -> $(grep '^< [0-9]' "$wd/transcript" | tail -n 2 | cut -c3-30 | tr '\n' '/'); trap got $((n1 - n0))"
	CASE_OUT=blocked
	[ $((n1 - n0)) -gt 0 ] && CASE_OUT=admitted
}

# fake FAM KIND: a scripted reply from the fake server announces
# $FAKETRAP; the client then connects to it. KIND: echo|multiline|
# unsolicited|genuine (PASV/EPSV answered properly: must be admitted).
case_fake() {
	local fam=$1 kind=$2 host=$FAKE4 wd n0 n1 steps=() ann
	[ "$fam" = 6 ] && host=$FAKE6
	if [ "$fam" = 4 ]; then
		ann="227 Entering Passive Mode ($(comma "$FAKE4"),$(hi $FAKETRAP),$(lo $FAKETRAP))"
	else
		ann="229 Entering Extended Passive Mode (|||$FAKETRAP|)"
	fi
	case $kind in
	echo) steps=("cmd:XYZ $ann" "connectto:$FAKETRAP:1.5") ;;
	multiline) steps=("cmd:HELP" "connectto:$FAKETRAP:1.5") ;;
	unsolicited) steps=("cmd:NOOP" "connectto:$FAKETRAP:1.5") ;;
	genuine) steps=(pasv "connect:2") ;;
	esac
	[ "$kind" = genuine ] && [ "$fam" = 6 ] && steps=(epsv "connect:2")
	N=$((N + 1)) wd=$PH_TMP/raw$N
	n0=$(lines "$PH_TMP/fake-trap.log")
	ftp_raw "$PH_NS_CLI" "$host" "$wd" "cmd:USER anonymous" "cmd:PASS x" \
		"${steps[@]}" >"$wd.out" 2>&1
	sleep 0.2
	n1=$(lines "$PH_TMP/fake-trap.log")
	CASE_EV="reply: $(grep '^< ' "$wd/transcript" | sed -n '4,6p' | cut -c3-60 | tr '\n' '|'); connect: $(tr '\n' ' ' <"$wd/connect" 2>/dev/null)"
	CASE_OUT=blocked
	grep -q '^ok' "$wd/connect" 2>/dev/null && CASE_OUT=admitted
}

# split FAM pasv|port: the data-port line in 3 TCP segments (invariant 5:
# segmentation must not matter). pasv: the fake server writes its 227/229
# in pieces, the client connects; port: the client writes PORT/EPRT in
# pieces, the fake server connects from port 20. Outcome: the data
# connection. (nf_conntrack_ftp parses a line only whole in one packet.)
case_split() {
	local fam=$1 how=$2 host=$FAKE4 wd s0 s1 steps
	[ "$fam" = 6 ] && host=$FAKE6
	if [ "$how" = pasv ]; then
		steps=("cmd:SITE SPLIT" pasv "connect:3")
		[ "$fam" = 6 ] && steps=("cmd:SITE SPLIT" epsv "connect:3")
	else
		steps=(listen portsplit "cmd:LIST" "accept:1")
		[ "$fam" = 6 ] && steps=(listen eprtsplit "cmd:LIST" "accept:1")
	fi
	N=$((N + 1)) wd=$PH_TMP/raw$N
	s0=$(($(ftp_synrtx "$PH_NS_CLI") + $(ftp_synrtx "$PH_NS_SRV")))
	ftp_raw "$PH_NS_CLI" "$host" "$wd" "cmd:USER anonymous" "cmd:PASS x" \
		"${steps[@]}" >"$wd.out" 2>&1
	s1=$(($(ftp_synrtx "$PH_NS_CLI") + $(ftp_synrtx "$PH_NS_SRV")))
	CASE_EV="$(grep -m1 -E '^(< 22[79] |> (PORT|EPRT))' "$wd/transcript" | cut -c1-62); data: $(tr '\n' ' ' <"$wd/connect" 2>/dev/null)$( [ -f "$wd/connect_ms" ] && echo "in $(cat "$wd/connect_ms") ms"); SYN retransmits $((s1 - s0))"
	CASE_OUT=blocked
	grep -q '^ok' "$wd/connect" 2>/dev/null && CASE_OUT=admitted
}

fw_drops() {
	case $FTP_FW in
	pinhole) echo $(($(ph_stat drop_policy) + $(ph_stat drop_expect_spent))) ;;
	nftables) echo $(($(ftp_nft_counter drop_in) + $(ftp_nft_counter drop_out))) ;;
	*) echo 0 ;;
	esac
}

ph_section "without a firewall (the cases are real: vsftpd does bounce)"
FTP_FW=none
for fam in 4 6; do
	case_active $fam bounce
	ph_check "no firewall: bounce to evil (IPv$fam) reaches the trap — $CASE_EV" [ "$CASE_OUT" = admitted ]
	case_active $fam bounce fake
	ph_check "no firewall: bounce from port 20 (fake server, IPv$fam) reaches the trap — $CASE_EV" [ "$CASE_OUT" = admitted ]
	case_active $fam low fake
	ph_check "no firewall: PORT/EPRT to port $LOWP (fake server, IPv$fam) reaches the trap — $CASE_EV" [ "$CASE_OUT" = admitted ]
	case_third_host $fam
	ph_check "no firewall: evil reaches the passive port (IPv$fam) — $CASE_EV" [ "$CASE_OUT" = admitted ]
done

# Expected outcome per case and backend: pinhole blocks everything but
# the genuine control cases; nf_conntrack_ftp (loose=0) is deliberately
# looser in four cases (docs/ftp-e2e.md).
want() {
	case $1.$2 in
	genuine-*) echo admitted ;;
	ttl-*.nftables | low-port-*.nftables | multiline-*.nftables | unsolicited-*.nftables) echo admitted ;;
	split-*.nftables) echo - ;; # not checked: see docs/ftp-e2e.md
	split-*) echo admitted ;;
	*) echo blocked ;;
	esac
}

declare -A OUT
SUMMARY=$PH_TMP/summary.txt
printf '%-18s %-9s %-9s %-9s %s\n' CASE BACKEND OUTCOME EXPECTED EVIDENCE >"$SUMMARY"

# record CASE: check CASE_OUT against want(), add a summary row.
record() {
	local c=$1 w
	w=$(want "$c" "$FTP_FW")
	OUT[$c.$FTP_FW]=$CASE_OUT
	printf '%-18s %-9s %-9s %-9s %s\n' "$c" "$FTP_FW" "$CASE_OUT" "$w" "$CASE_EV" >>"$SUMMARY"
	if [ "$w" = - ]; then
		ph_say "  · $c [$FTP_FW]: $CASE_OUT (not checked) — $CASE_EV"
		return 0
	fi
	ph_check "$c [$FTP_FW]: $CASE_OUT (want $w) — $CASE_EV" [ "$CASE_OUT" = "$w" ]
}

# pinhole: a refusal counter of `sessions -j` grew.
refused_grew() { # WORD BEFORE
	local now
	[ "$FTP_FW" = pinhole ] || return 0
	now=$(ftp_pinhole_sessions_sum "$1")
	ph_check "$2 [pinhole]: sessions -j refused '$1' grew ($3 -> $now)" [ "$now" -gt "$3" ]
}

for be in $BACKENDS; do
	ph_section "$be on the server host (ftp-ttl 30s)"
	if ! ftp_fw_up "$be" srv 30s; then
		ph_fail "$be: firewall did not start"
		ftp_fw_down
		continue
	fi
	for fam in 4 6; do
		case_third_host $fam
		record third-host-v$fam
		ph_check "third-host-v$fam [$be]: then phf-cli connects and downloads hello.txt" [ "$CASE_CLI_OK" = 1 ]
		[ "$be" = pinhole ] && ph_check "third-host-v$fam [pinhole]: evil's SYN counted as a drop" \
			[ "$(sed -n 's/.*drops +\([0-9]*\).*/\1/p' <<<"$CASE_EV")" -ge 1 ]
		ftp_fw_alive

		r0=$(ftp_pinhole_sessions_sum bounce)
		case_active $fam bounce
		record bounce-v$fam
		refused_grew bounce bounce-v$fam "$r0"
		ftp_fw_alive

		r0=$(ftp_pinhole_sessions_sum bounce)
		case_active $fam bounce fake
		record bounce20-v$fam
		refused_grew bounce bounce20-v$fam "$r0"
		ftp_fw_alive

		r0=$(ftp_pinhole_sessions_sum low_port)
		case_active $fam low fake
		record low-port-v$fam
		refused_grew low_port low-port-v$fam "$r0"
		ftp_fw_alive

		for k in pasv port; do
			case_split $fam $k
			record split-$k-v$fam
			ftp_fw_alive
		done

		for k in genuine echo multiline unsolicited; do
			r0=$(ftp_pinhole_sessions_sum unsolicited)
			case_fake $fam $k
			record $k-v$fam
			[ $k = unsolicited ] && refused_grew unsolicited unsolicited-v$fam "$r0"
			ftp_fw_alive
		done
	done
	[ "$be" = pinhole ] && ph_pinhole sessions -j >"$LOGS/sessions-negative.json" 2>&1
	ftp_fw_down

	ph_section "$be on the server host (ftp-ttl 2s)"
	if ! ftp_fw_up "$be" srv 2s; then
		ph_fail "$be: firewall (ttl 2s) did not start"
		ftp_fw_down
		continue
	fi
	for fam in 4 6; do
		case_ttl $fam
		record ttl-v$fam
		ph_check "ttl-v$fam [$be]: a connection at once still works" [ "$CASE_CLI_OK" = 1 ]
		if [ "$be" = pinhole ]; then
			ph_check "ttl-v$fam [pinhole]: the late SYN counted (drop_expect_spent or drop_policy)" \
				[ "$(sed -n 's/.*drops +\([0-9]*\).*/\1/p' <<<"$CASE_EV")" -ge 1 ]
		fi
		ftp_fw_alive
	done
	ftp_fw_down
done

ph_section "summary"
cat "$SUMMARY"
# shellcheck disable=SC2086 # a list of words
set -- $BACKENDS
if [ $# -ge 2 ]; then
	echo
	echo "differences between $1 and $2:"
	for k in "${!OUT[@]}"; do
		c=${k%.*}
		[ "${k##*.}" = "$1" ] || continue
		[ "${OUT[$c.$1]}" = "${OUT[$c.$2]:-?}" ] || echo "  $c: $1 ${OUT[$c.$1]}, $2 ${OUT[$c.$2]:-?}"
	done | sort
fi
[ -n "${FTPNEG_SUMMARY:-}" ] && cp "$SUMMARY" "$FTPNEG_SUMMARY"
echo "logs: $LOGS, raw transcripts: $PH_TMP/raw*/transcript (kept with PH_KEEP=1)"
ph_finish
