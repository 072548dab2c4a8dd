#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# What an ftps-range must NOT admit, and how much it still exposes
# (docs/ftps.md):
#   phz-cli .2 / phz-evil .3 / phz-srv .1 (+ a second address .11), one switch
#   vsftpd with TLS: plain + explicit FTPS on 21, implicit FTPS on 990,
#   passive range 28000-28049; a trap listener on 29000 (another socket in
#   the range) in phz-srv, one on 28140 in phz-cli.
# Reference first: nftables with the FTP conntrack helper cannot follow an
# encrypted control channel, so passive FTPS fails unless the whole range
# is open to anyone (the seeds' static rule); a probe then measures what
# that range exposes.
# pinhole on the server host (policies/eft-server.policy):
#   - third-host: a host with no control session is dropped at a listening
#     passive port (drop_ftps_no_session), the session holder then works
#   - no-listener: a session holder is dropped at a port where nothing
#     listens (drop_ftps_no_listener)
#   - other-address: a session to one address of the server opens nothing
#     on its other address
#   - closed: once the control connections close, nothing in the range
#     admits that host
#   - exposure: SYN probes of the whole range (28000-30000, IPv4 and IPv6)
#     while FTPS transfers run: from a host without a session (expected 0)
#     and from the session holder (expected: exactly the listening ports)
#   - mixed: plain FTP and FTPS at once on one server, each its own way;
#     a plain session gives no access to the range, an FTPS one does
# pinhole on the client host (active FTPS): the server's data connection
# (from 20/989) is admitted to the port the client listens on, a host with
# no session is not, nothing where nothing listens, nothing after close.
# Step lists are split into words on purpose; ftps_true evaluates its
# single-quoted condition when the check runs; helpers run through ph_check.
# shellcheck disable=SC2016,SC2034,SC2046,SC2086,SC2317
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
PH_PIN=/sys/fs/bpf/ph-phz-negative
PH_EXTRA_HOSTS=evil
ph_init ftps-negative
ph_netns_setup || ph_fatal "namespaces"
EVIL_NS=${PH_HOST_NS[evil]} PH_HOST4_EVIL=${PH_HOST4[evil]}
ALT4=$PH_NET4.11 ALT6=$PH_NET6:11
ip -n "$PH_NS_SRV" addr add "$ALT4/24" dev "$PH_IF_SRV"
ip -n "$PH_NS_SRV" addr add "$ALT6/64" dev "$PH_IF_SRV" nodad
LO=$FTPS_RANGE_LO HI=$FTPS_RANGE_HI NRANGE=$((FTPS_RANGE_HI - FTPS_RANGE_LO + 1))
TRAP=29000 IDLE=29500 CTRAP=28140 CIDLE=28130
LOGS=$PH_TMP/logs
mkdir -p "$LOGS"

ph_section "servers: vsftpd (21: plain + explicit FTPS, 990: implicit FTPS) on $PH_SRV4/$PH_SRV6"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ftp_make_files 1 || ph_fatal "test files"
ftps_start_servers || ph_fatal "start vsftpd"
ftp_trap "$PH_NS_SRV" "$TRAP" "$PH_TMP/trap-srv.log" || ph_fatal "trap $TRAP in $PH_NS_SRV"
ftp_trap "$PH_NS_CLI" "$CTRAP" "$PH_TMP/trap-cli.log" || ph_fatal "trap $CTRAP in $PH_NS_CLI"
MID=$(ftp_sum mid.bin) BIG=$(ftp_sum big.bin)

N=0
# raw NS HOST MODE STEP...: a scripted session in the background; RAW_WD
# is its work directory, RAW_PID its pid.
raw() {
	local ns=$1 host=$2 mode=$3
	shift 3
	N=$((N + 1))
	RAW_WD=$PH_TMP/raw$N
	mkdir -p "$RAW_WD"
	ftps_raw "$ns" "$host" "$mode" "$RAW_WD" "$@" >"$RAW_WD.out" 2>&1 &
	RAW_PID=$!
}
raw_args() { # NS HOST MODE WD STEP...: the same with a given work directory
	mkdir -p "$4"
	ftps_raw "$@" >"$4.out" 2>&1 &
	RAW_PID=$!
}
# waitfile WD NAME [SECONDS]: wait for WD/NAME (or WD/done).
waitfile() {
	local i
	for i in $(seq $((${3:-10} * 20))); do
		[ -e "$1/$2" ] && return 0
		[ -e "$1/done" ] && return 1
		sleep 0.05
	done
	return 1
}
# The steps of a session up to a pending PASV/EPSV, per mode.
pre() { # MODE FAMILY
	local v=pasv
	[ "$2" = 6 ] && v=epsv
	case $1 in
	explicit) echo "auth login prot $v" ;;
	implicit) echo "login prot $v" ;;
	plain) echo "login $v" ;;
	esac
}
host_of() { if [ "$1" = 6 ]; then echo "$PH_SRV6"; else echo "$PH_SRV4"; fi; }
snap() { ftps_stats_snapshot; }
d() { ftps_delta "$1" "$2" "$3"; }

SUMMARY=$PH_TMP/summary.txt
EXPOSURE=$PH_TMP/exposure.txt
printf '%-30s %-8s %-9s %-9s %s\n' CASE FIREWALL OUTCOME EXPECTED EVIDENCE >"$SUMMARY"
printf '%-26s %-26s %-4s %-16s %-5s %-7s %s\n' FIREWALL PROBER FAM ADMITTED/PROBES OPEN REFUSED "ADMITTED PORTS" >"$EXPOSURE"
# record CASE FIREWALL OUTCOME EXPECTED EVIDENCE: a check and a summary row.
record() {
	printf '%-30s %-8s %-9s %-9s %s\n' "$1" "$2" "$3" "$4" "$5" >>"$SUMMARY"
	ph_check "$1 [$2]: $3 (want $4) — $5" [ "$3" = "$4" ]
}
# expo FIREWALL PROBER FAM LINE: an exposure row from a probe line.
expo() {
	local ports
	ports=$(ftps_probe_field "$4" ports)
	[ "$(ftps_probe_field "$4" admitted)" = "$(ftps_probe_field "$4" probes)" ] && ports="all"
	printf '%-26s %-26s %-4s %-16s %-5s %-7s %s\n' "$1" "$2" "v$3" \
		"$(ftps_probe_field "$4" admitted)/$(ftps_probe_field "$4" probes)" \
		"$(ftps_probe_field "$4" open)" "$(ftps_probe_field "$4" refused)" \
		"$ports" >>"$EXPOSURE"
}

# ---------------------------------------------------------------------------
ph_section "without a firewall: the attack is real"
# A host with no session reaches vsftpd's listening passive socket; vsftpd
# takes the first connection in its queue, sees the wrong address and fails
# the legitimate transfer ("425 Security: Bad IP connecting").
raw "$PH_NS_CLI" "$PH_SRV4" explicit $(pre explicit 4) signal:asked wait:go connect:2 retr:mid.bin
waitfile "$RAW_WD" asked || ph_fatal "explicit FTPS session without firewall: $(tail -n 3 "$RAW_WD/transcript")"
P=$(cat "$RAW_WD/port")
e=$(ftps_syn "$EVIL_NS" "$PH_SRV4" "$P")
touch "$RAW_WD/go"
wait "$RAW_PID"
got=$(sed -n 's/^retr \([0-9]*\) .*/\1/p' "$RAW_WD/connect")
ph_check "no firewall: phz-evil reaches the passive port $P of phz-cli's FTPS session ($e); phz-cli's download then gets ${got:-?} bytes: $(grep -m1 '^< 4' "$RAW_WD/transcript" | cut -c3-60)" \
	[ "$e" = open ]

# ---------------------------------------------------------------------------
ph_section "reference: nftables + nf_conntrack_ftp on the server host"
nft_ruleset() { # RANGE-RULE
	cat <<-EOF
		table inet phz {
			ct helper ftp-standard { type "ftp" protocol tcp; l3proto inet; }
			chain pre { type filter hook prerouting priority 0; policy accept; tcp dport 21 ct helper set "ftp-standard"; }
			chain in {
				type filter hook input priority 0; policy drop;
				iif lo accept
				ct state established,related accept
				tcp dport { 21, 990 } ct state new accept
				$1
				meta l4proto { icmp, ipv6-icmp } accept
			}
		}
	EOF
}
nft_up() {
	ph_srv nft delete table inet phz 2>/dev/null
	nft_ruleset "$1" >"$PH_TMP/phz.nft"
	ph_srv nft -f "$PH_TMP/phz.nft"
}
ph_on_exit "ph_srv nft delete table inet phz"
if nft_up ""; then
	out=$PH_TMP/dl-nft
	ftps_curl "$PH_NS_CLI" "$PH_SRV4" plain mid.bin "$out" --disable-epsv >"$LOGS/nft-plain.out" 2>&1
	r1=$?
	s1=$(sha256sum <"$out" 2>/dev/null | cut -d' ' -f1)
	rm -f "$out"
	ftps_curl "$PH_NS_CLI" "$PH_SRV4" explicit mid.bin "$out" --disable-epsv --connect-timeout 2 >"$LOGS/nft-ftps.out" 2>&1
	r2=$?
	rm -f "$out"
	record nft-helper-plain-pasv nftables "$( [ $r1 = 0 ] && [ "$s1" = "$MID" ] && echo admitted || echo blocked)" admitted \
		"plain FTP PASV download: curl exit $r1, the helper read the 227"
	record nft-helper-ftps-pasv nftables "$( [ $r2 = 0 ] && echo admitted || echo blocked)" blocked \
		"explicit FTPS PASV download: curl exit $r2 ($(tail -n1 "$LOGS/nft-ftps.out" | cut -c1-50)): the helper cannot read TLS"
else
	ph_fail "nftables ruleset (helper only) did not load"
fi
if nft_up "tcp dport $LO-$HI ct state new accept"; then
	ftps_curl "$PH_NS_CLI" "$PH_SRV4" explicit mid.bin "$PH_TMP/dl-nft" --disable-epsv >"$LOGS/nft-range.out" 2>&1
	r3=$?
	record nft-static-range-ftps-pasv nftables "$( [ $r3 = 0 ] && echo admitted || echo blocked)" admitted \
		"with the seeds' rule 'tcp dport $LO-$HI accept': curl exit $r3"
	rm -f "$PH_TMP/dl-nft"
	# While one FTPS session waits for its data connection, as below.
	raw "$PH_NS_CLI" "$PH_SRV4" explicit $(pre explicit 4) signal:asked wait:go
	waitfile "$RAW_WD" asked
	NFT4=$(ftps_probe "$EVIL_NS" "$PH_SRV4" "$LO" "$HI")
	NFT6=$(ftps_probe "$EVIL_NS" "$PH_SRV6" "$LO" "$HI")
	touch "$RAW_WD/go"
	wait "$RAW_PID"
	expo "nftables, static range" "phz-evil (no session)" 4 "$NFT4"
	expo "nftables, static range" "phz-evil (no session)" 6 "$NFT6"
	ph_check "nftables static range: phz-evil's probes admitted: v4 $(ftps_probe_field "$NFT4" admitted)/$NRANGE, v6 $(ftps_probe_field "$NFT6" admitted)/$NRANGE (the whole range, listening ports open: v4 $(ftps_probe_field "$NFT4" open))" \
		ftps_true '[ "$(ftps_probe_field "$NFT4" admitted)" = "$NRANGE" ] && [ "$(ftps_probe_field "$NFT6" admitted)" = "$NRANGE" ]'
else
	ph_fail "nftables ruleset (static range) did not load"
fi
ph_srv nft delete table inet phz 2>/dev/null

# ---------------------------------------------------------------------------
ph_section "pinhole on the server host: $(ftps_server_policy)"
ftps_fw_up srv "$(ftps_server_policy)" || ph_fatal "pinhole on phz-srv did not start"
r=$(ftps_syn "$EVIL_NS" "$PH_SRV4" 45000)
ph_check "pinhole on phz-srv: a closed service port drops phz-evil's SYN ($r)" [ "$r" = dropped ]

# third-host MODE FAM: phz-cli asks PASV/EPSV; phz-evil (no session)
# connects to the announced port; then phz-cli connects and downloads.
for c in "explicit 4" "implicit 6" "explicit 6" "implicit 4"; do
	set -- $c
	mode=$1 fam=$2 h=$(host_of "$2")
	s0=$(snap)
	raw "$PH_NS_CLI" "$h" "$mode" $(pre "$mode" "$fam") signal:asked wait:go connect:2 retr:mid.bin
	if ! waitfile "$RAW_WD" asked; then
		ph_fail "third-host-$mode-v$fam: no PASV/EPSV reply: $(tail -n 2 "$RAW_WD/transcript" | tr '\n' ' ')"
		continue
	fi
	P=$(cat "$RAW_WD/port")
	l=$(ftps_listening "$PH_NS_SRV" "$P" "$P" "$h")
	e=$(ftps_syn "$EVIL_NS" "$h" "$P")
	s1=$(snap)
	touch "$RAW_WD/go"
	wait "$RAW_PID"
	s2=$(snap)
	cr=$(tr '\n' ' ' <"$RAW_WD/connect")
	out=admitted
	[ "$e" = dropped ] && out=blocked
	record "third-host-$mode-v$fam" pinhole "$out" blocked \
		"port $P (listening: $l); phz-evil: $e, drop_ftps_no_session +$(d "$s0" "$s1" drop_ftps_no_session)"
	ok=0
	[ "$cr" = "ok retr 1048576 $MID " ] && ok=1
	ph_check "third-host-$mode-v$fam [pinhole]: then phz-cli downloads (pass_ftps_range +$(d "$s1" "$s2" pass_ftps_range)): ${cr:0:40}" \
		ftps_true '[ $ok = 1 ] && [ "$(d "$s1" "$s2" pass_ftps_range)" = 1 ]'
	ph_check "third-host-$mode-v$fam [pinhole]: phz-evil's SYN counted as drop_ftps_no_session" \
		[ "$(d "$s0" "$s1" drop_ftps_no_session)" -ge 1 ]
	ftps_fw_alive
done

# Session holder: phz-cli keeps an explicit FTPS session on IPv4 and an
# implicit one on IPv6 (logged in, nothing pending) for the next cases.
HOLD4=$PH_TMP/hold4 HOLD6=$PH_TMP/hold6
raw_args "$PH_NS_CLI" "$PH_SRV4" explicit "$HOLD4" auth login prot signal:ready wait:release
H4PID=$RAW_PID
raw_args "$PH_NS_CLI" "$PH_SRV6" implicit "$HOLD6" login prot signal:ready wait:release
H6PID=$RAW_PID
if ! waitfile "$HOLD4" ready || ! waitfile "$HOLD6" ready; then
	ph_fail "holding sessions did not log in"
fi
ENC=$(ftps_wait_encrypted 2)
PEERS4=$(ftps_peer_connections "$PH_CLI4") PEERS6=$(ftps_peer_connections "$PH_CLI6")
ph_check "phz-cli holds an explicit FTPS session to $PH_SRV4:21 and an implicit one to [$PH_SRV6]:990: 'sessions -j' lists $ENC encrypted, ftps_peers counts $PEERS4 for $PH_CLI4 and $PEERS6 for $PH_CLI6" \
	ftps_true '[ "$ENC" -ge 2 ] && [ "$PEERS4" = 1 ] && [ "$PEERS6" = 1 ]'

# no-listener: the session holder, a range port where nothing listens.
for fam in 4 6; do
	h=$(host_of $fam)
	s0=$(snap)
	r=$(ftps_syn "$PH_NS_CLI" "$h" "$IDLE")
	s1=$(snap)
	out=admitted
	[ "$r" = dropped ] && out=blocked
	record "no-listener-v$fam" pinhole "$out" blocked \
		"phz-cli (session) -> $IDLE (listening: $(ftps_listening "$PH_NS_SRV" $IDLE $IDLE "$h")): $r; drop_ftps_no_listener +$(d "$s0" "$s1" drop_ftps_no_listener), no_session +$(d "$s0" "$s1" drop_ftps_no_session)"
	ph_check "no-listener-v$fam [pinhole]: counted as drop_ftps_no_listener" \
		ftps_true '[ "$(d "$s0" "$s1" drop_ftps_no_listener)" -ge 1 ] && [ "$(d "$s0" "$s1" drop_ftps_no_session)" = 0 ]'
	# The same port from a host without a session: the session check
	# comes first.
	s0=$(snap)
	r=$(ftps_syn "$EVIL_NS" "$h" "$IDLE")
	s1=$(snap)
	ph_check "no-listener-v$fam [pinhole]: phz-evil -> $IDLE: $r, counted as drop_ftps_no_session (+$(d "$s0" "$s1" drop_ftps_no_session))" \
		ftps_true '[ "$r" = dropped ] && [ "$(d "$s0" "$s1" drop_ftps_no_session)" -ge 1 ]'
done

# other-address: the trap listens on every address of phz-srv; phz-cli's
# sessions are to .1 / ::1 only.
for fam in 4 6; do
	h=$(host_of $fam) alt=$ALT4
	[ $fam = 6 ] && alt=$ALT6
	r1=$(ftps_syn "$PH_NS_CLI" "$h" "$TRAP")
	r2=$(ftps_syn "$PH_NS_CLI" "$alt" "$TRAP")
	out=admitted
	[ "$r2" = dropped ] && out=blocked
	record "other-address-v$fam" pinhole "$out" blocked \
		"phz-cli -> $h:$TRAP (its session's address, a listener): $r1; -> $alt:$TRAP (same host, no session to it): $r2"
	ph_check "other-address-v$fam [pinhole]: the session's own address admits the listener $TRAP ($r1)" [ "$r1" = open ]
done
# The second address served its purpose; without it no source-address
# choice can surprise the cases below.
ip -n "$PH_NS_SRV" addr del "$ALT4/24" dev "$PH_IF_SRV"
ip -n "$PH_NS_SRV" addr del "$ALT6/64" dev "$PH_IF_SRV"

# closed: the control connections end; how long until the range refuses
# phz-cli, then a probe of the whole range.
touch "$HOLD4/release" "$HOLD6/release"
wait "$H4PID" "$H6PID"
# The first probes right after QUIT; more only if those still got in.
t0=$(date +%s%N)
for i in $(seq 10); do
	r4=$(ftps_syn "$PH_NS_CLI" "$PH_SRV4" "$TRAP" 0.2)
	r6=$(ftps_syn "$PH_NS_CLI" "$PH_SRV6" "$TRAP" 0.2)
	[ "$r4" = dropped ] && [ "$r6" = dropped ] && break
done
CLOSE_TRIES=$i CLOSE_MS=$((($(date +%s%N) - t0) / 1000000))
PEERS_AFTER=$(ftps_peer_connections "$PH_CLI4")/$(ftps_peer_connections "$PH_CLI6")
s0=$(snap)
C4=$(ftps_probe "$PH_NS_CLI" "$PH_SRV4" "$LO" "$HI")
C6=$(ftps_probe "$PH_NS_CLI" "$PH_SRV6" "$LO" "$HI")
s1=$(snap)
out=admitted
[ "$(ftps_probe_field "$C4" admitted)" = 0 ] && [ "$(ftps_probe_field "$C6" admitted)" = 0 ] && out=blocked
record closed pinhole "$out" blocked \
	"after QUIT: $TRAP dropped for phz-cli at probe $CLOSE_TRIES (${CLOSE_MS} ms); ftps_peers $PEERS_AFTER; whole range: v4 $(ftps_probe_field "$C4" admitted)/$NRANGE, v6 $(ftps_probe_field "$C6" admitted)/$NRANGE admitted; drop_ftps_no_session +$(d "$s0" "$s1" drop_ftps_no_session)"
ph_check "closed [pinhole]: ftps_peers has no connection left for phz-cli (v4/v6: $PEERS_AFTER)" [ "$PEERS_AFTER" = 0/0 ]
expo "pinhole ftps-range" "phz-cli (after close)" 4 "$C4"
expo "pinhole ftps-range" "phz-cli (after close)" 6 "$C6"
ftps_fw_alive

# ---------------------------------------------------------------------------
ph_section "exposure: probes of $LO-$HI while FTPS transfers run"
# Two rate-limited 64 MiB downloads (explicit/IPv4 PASV, implicit/IPv6
# EPSV) and four sessions waiting after PASV/EPSV (a listening passive
# socket each), all from phz-cli.
s0=$(snap)
pids=()
ftps_curl "$PH_NS_CLI" "$PH_SRV4" explicit big.bin "$PH_TMP/x1" --disable-epsv --limit-rate 8M >"$LOGS/x1.out" 2>&1 &
pids+=($!)
ftps_curl "$PH_NS_CLI" "$PH_SRV6" implicit big.bin "$PH_TMP/x2" --limit-rate 8M >"$LOGS/x2.out" 2>&1 &
pids+=($!)
PARK=()
for c in "explicit 4" "implicit 4" "explicit 6" "implicit 6"; do
	set -- $c
	raw "$PH_NS_CLI" "$(host_of "$2")" "$1" $(pre "$1" "$2") signal:asked wait:go
	PARK+=("$RAW_WD")
	pids+=("$RAW_PID")
done
for w in "${PARK[@]}"; do waitfile "$w" asked || ph_fail "parked session $w: $(tail -n 2 "$w/transcript" | tr '\n' ' ')"; done
# The downloads' own passive listeners close once their data connection is
# accepted: wait for data in both files so that the listening snapshot below
# holds only the parked sessions' ports and the trap, not a listener that is
# about to go away (a race seen on a loaded machine).
for i in $(seq 200); do
	[ -s "$PH_TMP/x1" ] && [ -s "$PH_TMP/x2" ] && break
	sleep 0.05
done
# All six sessions are FTPS sessions to pinhole (and the downloads under way).
ENC=$(ftps_wait_encrypted 6)
PEERS=$(ftps_peer_connections "$PH_CLI4")+$(ftps_peer_connections "$PH_CLI6")
L4=$(ftps_listening "$PH_NS_SRV" "$LO" "$HI" "$PH_SRV4")
L6=$(ftps_listening "$PH_NS_SRV" "$LO" "$HI" "$PH_SRV6")
se=$(snap)
E4=$(ftps_probe "$EVIL_NS" "$PH_SRV4" "$LO" "$HI")
E6=$(ftps_probe "$EVIL_NS" "$PH_SRV6" "$LO" "$HI")
se1=$(snap)
S4=$(ftps_probe "$PH_NS_CLI" "$PH_SRV4" "$LO" "$HI")
S6=$(ftps_probe "$PH_NS_CLI" "$PH_SRV6" "$LO" "$HI")
se2=$(snap)
# A listener that went away during the probes (a download's own passive
# socket) may or may not have been reached; one listening before and after
# must have been.
L4B=$(ftps_listening "$PH_NS_SRV" "$LO" "$HI" "$PH_SRV4")
L6B=$(ftps_listening "$PH_NS_SRV" "$LO" "$HI" "$PH_SRV6")
running=0
kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null && running=1
for w in "${PARK[@]}"; do touch "$w/go"; done
wait "${pids[@]}"
s1=$(snap)
ok=0
[ "$(sha256sum <"$PH_TMP/x1" | cut -d' ' -f1)" = "$BIG" ] && [ "$(sha256sum <"$PH_TMP/x2" | cut -d' ' -f1)" = "$BIG" ] && ok=1
rm -f "$PH_TMP/x1" "$PH_TMP/x2"
ph_check "exposure: phz-cli's 6 FTPS sessions seen by pinhole ('sessions -j': $ENC encrypted; ftps_peers v4+v6: $PEERS)" \
	ftps_true '[ "$ENC" = 6 ] && [ "$PEERS" = 3+3 ]'
ph_check "exposure: both 64 MiB FTPS downloads still running after the probes ($running) and checksum-correct ($ok)" \
	ftps_true '[ $running = 1 ] && [ $ok = 1 ]'
expo "pinhole ftps-range" "phz-evil (no session)" 4 "$E4"
expo "pinhole ftps-range" "phz-evil (no session)" 6 "$E6"
expo "pinhole ftps-range" "phz-cli (6 FTPS sessions)" 4 "$S4"
expo "pinhole ftps-range" "phz-cli (6 FTPS sessions)" 6 "$S6"
EXPO_EVIL=$(($(ftps_probe_field "$E4" admitted) + $(ftps_probe_field "$E6" admitted)))
out=admitted
[ "$EXPO_EVIL" = 0 ] && [ "$(ftps_probe_field "$E4" errors)" = 0 ] && [ "$(ftps_probe_field "$E6" errors)" = 0 ] && out=blocked
WAITING=$(cat "${PARK[@]/%//port}" 2>/dev/null | sort -n | paste -sd, -)
record exposure-no-session pinhole "$out" blocked \
	"phz-evil: v4 $(ftps_probe_field "$E4" admitted)/$NRANGE, v6 $(ftps_probe_field "$E6" admitted)/$NRANGE admitted (listening then: v4 $L4, v6 $L6; of which waiting after PASV/EPSV: $WAITING, the trap $TRAP, the rest the running downloads); drop_ftps_no_session +$(d "$se" "$se1" drop_ftps_no_session)"
ph_check "exposure [pinhole]: phz-evil's $((2 * NRANGE)) SYNs counted (drop_ftps_no_session +$(d "$se" "$se1" drop_ftps_no_session))" \
	[ "$(d "$se" "$se1" drop_ftps_no_session)" -ge $((2 * NRANGE)) ]
# reached_listeners REACHED BEFORE AFTER: REACHED is within BEFORE and holds
# every port of BEFORE that is still in AFTER (comma lists, "-" = none).
reached_listeners() {
	local r=",$1," b=",$2," a=",$3," p
	for p in ${1//,/ }; do [ "$p" = - ] || [[ $b == *",$p,"* ]] || return 1; done
	for p in ${2//,/ }; do
		[ "$p" = - ] && continue
		[[ $a == *",$p,"* ]] && ! [[ $r == *",$p,"* ]] && return 1
	done
	return 0
}
ph_check "exposure [pinhole]: the session holder reaches exactly the listening ports: v4 $(ftps_probe_field "$S4" ports) (listening: $L4, after: $L4B), v6 $(ftps_probe_field "$S6" ports) (listening: $L6, after: $L6B)" \
	ftps_true 'reached_listeners "$(ftps_probe_field "$S4" ports)" "$L4" "$L4B" &&
		reached_listeners "$(ftps_probe_field "$S6" ports)" "$L6" "$L6B" &&
		[ "$(ftps_probe_field "$S4" refused)" = 0 ] && [ "$(ftps_probe_field "$S6" refused)" = 0 ]'
NOLIS=$((2 * NRANGE - $(ftps_probe_field "$S4" open) - $(ftps_probe_field "$S6" open)))
ph_check "exposure [pinhole]: the session holder's SYNs to the other ports counted as drop_ftps_no_listener (+$(d "$se1" "$se2" drop_ftps_no_listener), want $NOLIS)" \
	[ "$(d "$se1" "$se2" drop_ftps_no_listener)" = "$NOLIS" ]
WANT_RANGE=$((2 + $(ftps_probe_field "$S4" open) + $(ftps_probe_field "$S6" open)))
ph_check "exposure [pinhole]: pass_ftps_range +$(d "$s0" "$s1" pass_ftps_range): the two downloads and the session holder's probes of listening ports (want $WANT_RANGE)" \
	[ "$(d "$s0" "$s1" pass_ftps_range)" = "$WANT_RANGE" ]
ftps_fw_alive

# ---------------------------------------------------------------------------
ph_section "plain FTP and FTPS at once on one server"
s0=$(snap)
pids=()
ftps_curl "$PH_NS_CLI" "$PH_SRV4" plain big.bin "$PH_TMP/m1" --disable-epsv --limit-rate 32M >"$LOGS/m1.out" 2>&1 &
pids+=($!)
ftps_curl "$PH_NS_CLI" "$PH_SRV4" explicit big.bin "$PH_TMP/m2" --disable-epsv --limit-rate 32M >"$LOGS/m2.out" 2>&1 &
pids+=($!)
ftps_curl "$PH_NS_CLI" "$PH_SRV6" implicit big.bin "$PH_TMP/m3" --limit-rate 32M >"$LOGS/m3.out" 2>&1 &
pids+=($!)
# Meanwhile phz-evil holds a plain FTP session: it must not open the range.
raw "$EVIL_NS" "$PH_SRV4" plain login signal:ready wait:go
W1=$RAW_WD P1=$RAW_PID
waitfile "$W1" ready
sp=$(snap)
rp=$(ftps_syn "$EVIL_NS" "$PH_SRV4" "$TRAP")
sp1=$(snap)
ENC=$(ftps_wait_encrypted 2)
EVILPEERS=$(ftps_peer_connections "$PH_HOST4_EVIL")
wait "${pids[0]}" "${pids[1]}" "${pids[2]}"
s1=$(snap)
touch "$W1/go"
wait "$P1"
ok=0
for f in m1 m2 m3; do
	[ "$(sha256sum <"$PH_TMP/$f" 2>/dev/null | cut -d' ' -f1)" = "$BIG" ] && ok=$((ok + 1))
	rm -f "$PH_TMP/$f"
done
ph_check "mixed: plain FTP (PASV/IPv4), explicit FTPS (PASV/IPv4), implicit FTPS (EPSV/IPv6) at once: $ok/3 checksum-correct; $ENC sessions encrypted meanwhile" \
	ftps_true '[ $ok = 3 ] && [ "$ENC" -ge 2 ]'
ph_check "mixed: the plain download through its exact pinhole (pass_expect +$(d "$s0" "$s1" pass_expect)), the two FTPS ones through the range (pass_ftps_range +$(d "$s0" "$s1" pass_ftps_range))" \
	ftps_true '[ "$(d "$s0" "$s1" pass_expect)" = 1 ] && [ "$(d "$s0" "$s1" pass_ftps_range)" = 2 ]'
out=admitted
[ "$rp" = dropped ] && out=blocked
record plain-session-no-range pinhole "$out" blocked \
	"phz-evil with a plain FTP session -> listener $TRAP: $rp; drop_ftps_no_session +$(d "$sp" "$sp1" drop_ftps_no_session); ftps_peers for it: $EVILPEERS"
ph_check "plain-session-no-range [pinhole]: a plain FTP session is not counted in ftps_peers ($EVILPEERS)" [ "$EVILPEERS" = 0 ]
# The same host once its session is FTPS (AUTH TLS answered 234).
raw "$EVIL_NS" "$PH_SRV4" explicit auth login signal:ready wait:go
W2=$RAW_WD P2=$RAW_PID
waitfile "$W2" ready
rf=$(ftps_syn "$EVIL_NS" "$PH_SRV4" "$TRAP")
touch "$W2/go"
wait "$P2"
ph_check "mixed [pinhole]: the same host after AUTH TLS/234 reaches the listener $TRAP ($rf): the range follows FTPS sessions only" [ "$rf" = open ]
ftps_fw_alive
ph_pinhole stats -j >"$LOGS/stats-srv.json" 2>&1
ph_pinhole sessions -j >"$LOGS/sessions-srv.json" 2>&1
ftps_fw_down

# ---------------------------------------------------------------------------
ph_section "pinhole on the client host: active FTPS"
CPOL=$PH_TMP/ftps-client.policy
ftps_client_policy "$CPOL"
ftps_fw_up cli "$CPOL" || ph_fatal "pinhole on phz-cli did not start"
for c in "explicit 4 port 20 28120" "implicit 6 eprt 989 28121"; do
	set -- $c
	mode=$1 fam=$2 verb=$3 sport=$4 lport=$5 h=$(host_of "$2") me=$PH_CLI4
	[ "$fam" = 6 ] && me=$PH_CLI6
	steps="login prot"
	[ "$mode" = explicit ] && steps="auth login prot"
	s0=$(snap)
	raw "$PH_NS_CLI" "$h" "$mode" $steps "listen:$lport" "$verb" signal:asked wait:go retr:mid.bin
	if ! waitfile "$RAW_WD" asked; then
		ph_fail "client-$mode-v$fam: $(tail -n 2 "$RAW_WD/transcript" | tr '\n' ' ')"
		continue
	fi
	e=$(ftps_syn "$EVIL_NS" "$me" "$lport" 0.8 "$sport")
	s1=$(snap)
	n=$(ftps_syn "$PH_NS_SRV" "$me" "$CIDLE")
	s2=$(snap)
	touch "$RAW_WD/go"
	wait "$RAW_PID"
	s3=$(snap)
	cr=$(tr '\n' ' ' <"$RAW_WD/connect")
	out=admitted
	[ "$e" = dropped ] && out=blocked
	record "client-third-host-$mode-v$fam" pinhole "$out" blocked \
		"phz-evil from port $sport -> phz-cli:$lport (listening, announced in ${verb^^}): $e; drop_ftps_no_session +$(d "$s0" "$s1" drop_ftps_no_session)"
	out=admitted
	[ "$n" = dropped ] && out=blocked
	record "client-no-listener-$mode-v$fam" pinhole "$out" blocked \
		"phz-srv (session) -> phz-cli:$CIDLE (nothing listens): $n; drop_ftps_no_listener +$(d "$s1" "$s2" drop_ftps_no_listener)"
	ph_check "client-no-listener-$mode-v$fam [pinhole]: counted as drop_ftps_no_listener" \
		[ "$(d "$s1" "$s2" drop_ftps_no_listener)" = 1 ]
	ok=0
	[ "$cr" = "retr 1048576 $MID " ] && ok=1
	ph_check "client-$mode-v$fam [pinhole]: the server's data connection from $(cut -d' ' -f2 "$RAW_WD/accepted" 2>/dev/null) admitted (pass_ftps_range +$(d "$s2" "$s3" pass_ftps_range)), download ${cr:0:30}" \
		ftps_true '[ $ok = 1 ] && [ "$(d "$s2" "$s3" pass_ftps_range)" = 1 ]'
	ftps_fw_alive
done
# After close: phz-cli's trap $CTRAP listens in its range; the server
# reaches it while a session is open (the exposure), not after.
raw "$PH_NS_CLI" "$PH_SRV4" explicit auth login signal:ready wait:go
waitfile "$RAW_WD" ready
r1=$(ftps_syn "$PH_NS_SRV" "$PH_CLI4" "$CTRAP")
touch "$RAW_WD/go"
wait "$RAW_PID"
sleep 0.2
r2=$(ftps_syn "$PH_NS_SRV" "$PH_CLI4" "$CTRAP")
CC=$(ftps_probe "$PH_NS_SRV" "$PH_CLI4" "$FTPS_ACT_MIN" "$FTPS_ACT_MAX")
out=admitted
[ "$r2" = dropped ] && [ "$(ftps_probe_field "$CC" admitted)" = 0 ] && out=blocked
record client-closed pinhole "$out" blocked \
	"phz-srv -> phz-cli:$CTRAP (a listener): $r1 while the session is open, $r2 after QUIT; range $FTPS_ACT_MIN-$FTPS_ACT_MAX after: $(ftps_probe_field "$CC" admitted)/$((FTPS_ACT_MAX - FTPS_ACT_MIN + 1)) admitted"
ph_check "client-closed [pinhole]: with a session open the server reaches the listener $CTRAP ($r1)" [ "$r1" = open ]
ph_pinhole stats -j >"$LOGS/stats-cli.json" 2>&1
ftps_fw_down

ph_section "summary"
cat "$SUMMARY"
echo
echo "EXPOSURE: SYN probes (one per port, 0.8 s each, all at once) of the ftps-range $LO-$HI of phz-srv"
cat "$EXPOSURE"
echo "(admitted = the SYN got through: open = a socket accepted it, refused = RST)"
echo "logs: $LOGS, raw transcripts: $PH_TMP/raw*/transcript (kept with PH_KEEP=1)"
ph_finish
