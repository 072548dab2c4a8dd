#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# FTP behind a 1:1 NAT (nat-address) and the active-data guard (bounce
# protection under "default out allow"), issue 11, docs/ftp-tracking.md:
#
#   [pn-in] 10.184.0.1 fd00:184::1 (+ .11 fake FTP, .12 a third vsftpd)
#      | pn-i0 -- pn-r0
#   [pn-rtr] router: 1:1 NAT 10.185.0.1 <-> 10.184.0.1, fd00:185::1 <->
#      | fd00:184::1 (nft dnat/snat, NAT66); optional FTP helper
#      | bridge pn-br (10.185.0.254, fd00:185::fe)
#   [pn-out] 10.185.0.2 fd00:185::2       [pn-evil] 10.185.0.3 fd00:185::3
#
# pinhole runs on pn-in. The server there (vsftpd, pasv_address =
# 10.185.0.1) and its client (curl -P 10.185.0.1, the scripted client
# announcing the public addresses) announce the public addresses; the
# policy names them with nat-address. Then the shipped
# policies/ftp-server-tracked.policy faces bounce, port 25, slipstream and
# embedded PORT through a lax fake server on pn-in that obeys all of them:
# nothing may leave port 20. Each case runs "before" too (the policy
# without nat-address; the preset plus the explicit opt-out
# `out tcp sport 20 to any`, which is what default out allow did before).
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
PH_FTP_PASV_MIN=28000 PH_FTP_PASV_MAX=28049
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"
# shellcheck source=tests/lib/ftp.sh
. "$(dirname "$0")/../lib/ftp.sh"
# shellcheck source=tests/lib/ftps.sh
. "$(dirname "$0")/../lib/ftps.sh"

ph_require_root
ph_require_bins ip nsenter nft curl lftp vsftpd python3 openssl ss
ph_require_pinhole
PH_NS_PREFIX=pn PH_NET4=10.184.0 PH_NET6=fd00:184:
PH_PIN=/sys/fs/bpf/ph-pn-nat
ph_init ftp-nat

IN=pn-in RTR=pn-rtr OUT=pn-out EVIL=pn-evil
IN4=10.184.0.1 IN6=fd00:184::1 PUB4=10.185.0.1 PUB6=fd00:185::1
FAKE4=10.184.0.11 FAKE6=fd00:184::11 THIRD_SRV4=10.184.0.12 THIRD4=10.185.0.9
OUT4=10.185.0.2 OUT6=fd00:185::2 EVIL4=10.185.0.3 EVIL6=fd00:185::3
TRAP=47001
PH_NS_SRV=$IN PH_NS_CLI=$OUT PH_IF_SRV=pn-i0
PH_NS_EXTRA=("$RTR" "$EVIL")
ph_cleanup_stale

# ---- topology --------------------------------------------------------------
setup_net() {
	local ns
	for ns in $IN $RTR $OUT $EVIL; do
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up
	done
	ip link add pn-i0 netns $IN type veth peer name pn-r0 netns $RTR || return 1
	ip -n $RTR link add pn-br type bridge || return 1
	ip -n $RTR link set pn-br type bridge mcast_snooping 0 2>/dev/null
	ip link add pn-o0 netns $OUT type veth peer name pn-r1 netns $RTR || return 1
	ip link add pn-e0 netns $EVIL type veth peer name pn-r2 netns $RTR || return 1
	ip -n $RTR link set pn-r1 master pn-br up
	ip -n $RTR link set pn-r2 master pn-br up
	ip -n $RTR link set pn-br up
	ip -n $RTR link set pn-r0 up
	ip -n $IN addr add $IN4/24 dev pn-i0
	ip -n $IN addr add $FAKE4/24 dev pn-i0
	ip -n $IN addr add $THIRD_SRV4/24 dev pn-i0
	ip -n $IN addr add $IN6/64 dev pn-i0 nodad
	ip -n $IN addr add $FAKE6/64 dev pn-i0 nodad preferred_lft 0
	ip -n $IN link set pn-i0 up
	ip -n $IN route add default via 10.184.0.254
	ip -n $IN -6 route add default via fd00:184::fe
	ip -n $RTR addr add 10.184.0.254/24 dev pn-r0
	ip -n $RTR addr add fd00:184::fe/64 dev pn-r0 nodad
	ip -n $RTR addr add 10.185.0.254/24 dev pn-br
	ip -n $RTR addr add fd00:185::fe/64 dev pn-br nodad
	# The public addresses live on the router's outside: it answers
	# ARP / ND for them, and prerouting DNAT sends them inside.
	ip -n $RTR addr add $PUB4/32 dev pn-br
	ip -n $RTR addr add $PUB6/128 dev pn-br nodad
	ip netns exec $RTR sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	for ns in $OUT $EVIL; do
		local a4=$OUT4 a6=$OUT6 dev=pn-o0
		[ "$ns" = $EVIL ] && a4=$EVIL4 a6=$EVIL6 dev=pn-e0
		ip -n "$ns" addr add "$a4/24" dev $dev
		ip -n "$ns" addr add "$a6/64" dev $dev nodad
		ip -n "$ns" link set $dev up
		ip -n "$ns" route add 10.184.0.0/24 via 10.185.0.254
		ip -n "$ns" -6 route add fd00:184::/64 via fd00:185::fe
	done
	local i
	for i in $(seq 50); do
		ph_in $OUT ping -c1 -W1 $PUB4 >/dev/null 2>&1 &&
			ph_in $OUT ping -6 -c1 -W1 $PUB6 >/dev/null 2>&1 &&
			ph_in $EVIL ping -c1 -W1 $FAKE4 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "no connectivity through the router" >&2
	return 1
}

# The router's 1:1 NAT, v4 and v6; with "helper" also nf_conntrack_ftp /
# nf_nat_ftp on port 21 (which rewrites the addresses of plain FTP).
router_nat() {
	local helper=${1:-}
	ph_in $RTR nft delete table inet pnnat 2>/dev/null
	{
		cat <<-EOF
			table inet pnnat {
				ct helper ftp-standard { type "ftp" protocol tcp; l3proto inet; }
				chain pre {
					type nat hook prerouting priority dstnat; policy accept;
					ip daddr $PUB4 dnat ip to $IN4
					ip6 daddr $PUB6 dnat ip6 to $IN6
				}
				chain post {
					type nat hook postrouting priority srcnat; policy accept;
					ip saddr $IN4 snat ip to $PUB4
					ip6 saddr $IN6 snat ip6 to $PUB6
				}
		EOF
		if [ "$helper" = helper ]; then
			cat <<-EOF
				chain fw {
					type filter hook forward priority 0; policy accept;
					tcp dport 21 ct helper set "ftp-standard"
				}
			EOF
		fi
		echo "}"
	} >"$PH_TMP/router.nft"
	ph_in $RTR nft -f "$PH_TMP/router.nft" && ph_in $RTR conntrack -F >/dev/null 2>&1
	return 0
}

setup_net || ph_fatal "namespaces"
router_nat || ph_fatal "router nft"

# ---- servers ---------------------------------------------------------------
# pn-in: vsftpd (plain + explicit FTPS) announcing the public IPv4 address;
# a second vsftpd on .12 announcing a third address; the fake server on .11.
# pn-out: a plain vsftpd (the server of the client-behind-NAT cases).
ph_section "servers"
ph_servers_init $IN $IN4 $IN6
ftps_make_cert || ph_fatal "certificate"
PH_VSFTPD_OPTS="$(ftps__vsftpd_ssl_opts)
pasv_address=$PUB4"
ph_start_vsftpd || ph_fatal "vsftpd on $IN"
IN_SRV_DIR=$PH_SRV_DIR
# shellcheck disable=SC2030,SC2031 # each instance has its own directory
PH_TMP=$PH_TMP/third ph_servers_init $IN $THIRD_SRV4 fd00:184::12
ip -n $IN addr add fd00:184::12/64 dev pn-i0 nodad preferred_lft 0
PH_VSFTPD_OPTS="pasv_address=$THIRD4" ph_start_vsftpd || ph_fatal "vsftpd on $THIRD_SRV4"
PH_TMP=$PH_TMP/out ph_servers_init $OUT $OUT4 $OUT6
PH_FTP_PASV_MIN=31000 PH_FTP_PASV_MAX=31049 PH_VSFTPD_OPTS="connect_timeout=2" ph_start_vsftpd ||
	ph_fatal "vsftpd on $OUT"
PH_SRV_DIR=$IN_SRV_DIR
ftp_fake_server $IN $FAKE4 $FAKE6 47227 || ph_fatal "fake FTP server"
ftp_trap $EVIL $TRAP "$PH_TMP/trap-evil.log" || ph_fatal "trap on $EVIL"
ftp_trap $OUT 25 "$PH_TMP/trap-25.log" || ph_fatal "trap on $OUT:25"

# ---- pinhole on pn-in ------------------------------------------------------
NAT_POLICY=$PH_TMP/nat.policy
cat >"$NAT_POLICY" <<EOF
# generated by tests/e2e/test_ftp_nat.sh: this host is reached at (and
# announces) $PUB4 / $PUB6 through a 1:1 NAT
default in drop
default out allow
service ftp      in  tcp 21           from any ftp-track nat-address $PUB4, $PUB6
service ftp-cli  out tcp 21           to any   ftp-track nat-address $PUB4, $PUB6
service ftps     in  tcp 28000-28049  from any ftps-range
EOF
sed 's/ nat-address.*$//' "$NAT_POLICY" >"$PH_TMP/nonat.policy"
PRESET=$PH_ROOT/policies/ftp-server-tracked.policy
{ cat "$PRESET"; echo "service ftp-active out tcp sport 20 to any"; } >"$PH_TMP/optout.policy"

ph_section "pinhole check shows nat-address and the guard"
ph_expect_ok "check: nat-address listed" \
	sh -c "'$PH_BIN' check '$NAT_POLICY' | grep -F 'nat-address $PUB4, $PUB6'"
ph_expect_ok "check: shipped preset guards port 20" \
	sh -c "'$PH_BIN' check '$PRESET' | grep -F 'active data tcp out from port 20: guarded'"
ph_expect_ok "check: the opt-out is noted as an exposure" \
	sh -c "'$PH_BIN' check '$PH_TMP/optout.policy' | grep -F 'lets tcp out from port 20 pass without a pinhole'"

ph_pinhole_run --policy "$NAT_POLICY" pn-i0 || ph_fatal "pinhole run"
use_policy() { ph_pinhole reload --policy "$1" >/dev/null || ph_fail "reload $1"; }

ROWS=()
row() { ROWS+=("$(printf '%-26s %-8s %-9s %-8s %s' "$@")"); }
delta() { echo $(($(ph_stat "$1" "${2:-in}") - $3)); }

# nat_case NAME POLICY-KIND EXPECT CMD...: run a download, record whether
# it worked and what pinhole counted. EXPECT ok|fail.
nat_case() {
	local name=$1 kind=$2 want=$3 e0 x0 d0 out rc res
	shift 3
	e0=$(($(ph_stat pass_expect in) + $(ph_stat pass_expect out)))
	x0=$(ph_stat pass_ftps_range in)
	d0=$(($(ph_stat drop_policy in) + $(ph_stat drop_ftps_no_session in) + $(ph_stat drop_ftps_no_listener in)))
	out=$PH_TMP/$name.out
	rm -f "$out"
	"$@" >"$PH_TMP/$name.log" 2>&1
	rc=$?
	res=fail
	[ $rc = 0 ] && grep -q pinhole-ftp-ok "$out" 2>/dev/null && res=ok
	local e1 x1 d1
	e1=$(($(ph_stat pass_expect in) + $(ph_stat pass_expect out) - e0))
	x1=$(($(ph_stat pass_ftps_range in) - x0))
	d1=$(($(ph_stat drop_policy in) + $(ph_stat drop_ftps_no_session in) + $(ph_stat drop_ftps_no_listener in) - d0))
	row "$name" "$kind" "$res" "exp+$e1" "range+$x1 drops+$d1"
	if [ "$res" = "$want" ]; then
		ph_pass "$name ($kind): $res (pass_expect +$e1, pass_ftps_range +$x1, drops +$d1)"
	else
		ph_fail "$name ($kind): $res, expected $want (curl rc $rc)"
		sed 's/^/      | /' "$PH_TMP/$name.log" | tail -n 5
		grep -E 'refus|bounce|third' "${PH_RUN_LOG:-$PH_TMP/run.log}" | tail -n 3 | sed 's/^/      | /'
	fi
}

# A blocked data connection fails after 2 s (--connect-timeout): the SYN
# and its retransmission after 1 s; an admitted one is answered at once.
cout() { ph_in $OUT curl -sS --connect-timeout 2 --max-time 15 "$@"; }
cin() { ph_in $IN curl -sS --connect-timeout 2 --max-time 15 "$@"; }

ph_section "server behind 1:1 NAT ($PUB4 -> $IN4, $PUB6 -> $IN6), client $OUT4"
for pol in nonat nat; do
	if [ $pol = nat ]; then use_policy "$NAT_POLICY"; else use_policy "$PH_TMP/nonat.policy"; fi
	want=ok
	[ $pol = nonat ] && want=fail
	nat_case srv-pasv-v4-curl $pol $want cout --disable-epsv -o "$PH_TMP/srv-pasv-v4-curl.out" "ftp://$PUB4/hello.txt"
	[ $pol = nat ] && nat_case srv-pasv-v4-lftp $pol $want ph_in $OUT timeout 20 lftp -c "set net:timeout 4; set net:max-retries 1; set ftp:prefer-epsv no; set ftp:passive-mode on; get ftp://$PUB4/hello.txt -o $PH_TMP/srv-pasv-v4-lftp.out"
done
nat_case srv-epsv-v4 nat ok cout -o "$PH_TMP/srv-epsv-v4.out" "ftp://$PUB4/hello.txt"
nat_case srv-epsv-v6 nat ok cout -o "$PH_TMP/srv-epsv-v6.out" "ftp://[$PUB6]/hello.txt"
nat_case srv-port-v4 nat ok cout -P - -o "$PH_TMP/srv-port-v4.out" "ftp://$PUB4/hello.txt"
nat_case srv-eprt-v6 nat ok cout -P - -o "$PH_TMP/srv-eprt-v6.out" "ftp://[$PUB6]/hello.txt"
nat_case srv-ftps-pasv-v4 nat ok cout --ssl-reqd -k --disable-epsv -o "$PH_TMP/srv-ftps-pasv-v4.out" "ftp://$PUB4/hello.txt"
nat_case srv-ftps-epsv-v6 nat ok cout --ssl-reqd -k -o "$PH_TMP/srv-ftps-epsv-v6.out" "ftp://[$PUB6]/hello.txt"

ph_section "a 227 naming a third address ($THIRD4) opens nothing"
wd=$PH_TMP/third
r0=$(ftp_pinhole_sessions_sum third_party)
d0=$(($(ph_stat drop_policy in) + $(ph_stat drop_ftps_no_session in)))
ftp_raw $OUT $THIRD_SRV4 "$wd" "cmd:USER anonymous" "cmd:PASS x" pasv connect:2 >"$wd.out" 2>&1
r1=$(ftp_pinhole_sessions_sum third_party)
d1=$(($(ph_stat drop_policy in) + $(ph_stat drop_ftps_no_session in)))
res=$(head -n1 "$wd/connect" 2>/dev/null)
sed 's/^/      | /' "$wd/transcript"
row third-address-227 nat "${res%% *}" "-" "refused third_party +$((r1 - r0)), its SYN dropped +$((d1 - d0))"
ph_check "third-address 227: connecting to the announced port fails ($res)" \
	[ "$(case $res in fail*) echo 1 ;; *) echo 0 ;; esac)" = 1 ]
ph_check "third-address 227: refused as third_party (+$((r1 - r0)))" [ $((r1 - r0)) -ge 1 ]

ph_section "client behind 1:1 NAT announcing $PUB4 / $PUB6, server $OUT4"
router_nat
for pol in nonat nat; do
	if [ $pol = nat ]; then use_policy "$NAT_POLICY"; else use_policy "$PH_TMP/nonat.policy"; fi
	want=ok
	[ $pol = nonat ] && want=fail
	nat_case cli-port-v4-curl-public $pol $want cin -P $PUB4 -o "$PH_TMP/cli-port-v4-curl-public.out" "ftp://$OUT4/hello.txt"
done
# curl 7.88 cannot do active IPv6 FTP (curl issue #10666, docs/ftps.md):
# the scripted client announces the public IPv6 address in EPRT.
raw_eprt() {
	local wd=$PH_TMP/raw-eprt6
	ftp_raw $IN $OUT6 "$wd" "cmd:USER anonymous" "cmd:PASS x" listen \
		"eprtas:$PUB6" "cmd:NLST" accept:3 >"$wd.out" 2>&1
	sed 's/^/      | /' "$wd/transcript"
	grep -qx ok "$wd/connect" && echo pinhole-ftp-ok >"$PH_TMP/cli-eprt-v6-raw-public.out"
}
nat_case cli-eprt-v6-raw-public nat ok raw_eprt
nat_case cli-port-v4-lftp-public nat ok ph_in $IN timeout 20 lftp -c "set net:timeout 4; set net:max-retries 1; set ftp:passive-mode off; set ftp:port-ipv4 $PUB4; get ftp://$OUT4/hello.txt -o $PH_TMP/cli-port-v4-lftp-public.out"
nat_case cli-pasv-v4 nat ok cin --disable-epsv -o "$PH_TMP/cli-pasv-v4.out" "ftp://$OUT4/hello.txt"
ph_section "client behind NAT with the router's FTP helper (announces its private address)"
router_nat helper
nat_case cli-port-v4-helper nat ok cin -P - -o "$PH_TMP/cli-port-v4-helper.out" "ftp://$OUT4/hello.txt"
nat_case srv-pasv-v4-helper nat ok cout --disable-epsv -o "$PH_TMP/srv-pasv-v4-helper.out" "ftp://$PUB4/hello.txt"
router_nat

# ---- bounce through the shipped preset -------------------------------------
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
comma() { echo "${1//./,}"; }

# bounce_case NAME KIND STEP...: a session with the fake server on .11
# (it obeys every PORT, embedded or not, and connects from port 20);
# outcome: did either trap get a connection?
bounce_case() {
	local name=$1 kind=$2 n0 n1 m0 m1 g0 g1 wd=$PH_TMP/b-$1-$2 got
	shift 2
	n0=$(lines "$PH_TMP/trap-evil.log") m0=$(lines "$PH_TMP/trap-25.log")
	g0=$(ph_stat drop_ftp_active out)
	ftp_raw $OUT $FAKE4 "$wd" "cmd:USER anonymous" "cmd:PASS x" "$@" "cmd:LIST" >"$wd.out" 2>&1
	sleep 0.3
	n1=$(lines "$PH_TMP/trap-evil.log") m1=$(lines "$PH_TMP/trap-25.log")
	g1=$(ph_stat drop_ftp_active out)
	got=$((n1 - n0 + m1 - m0))
	local res=blocked
	[ $got -gt 0 ] && res=LEFT
	row "$name" "$kind" "$res" "-" "trap +$got, drop_ftp_active +$((g1 - g0))"
	if [ "$kind" = preset ]; then
		ph_check "$name (shipped preset): nothing left port 20 (traps +$got, drop_ftp_active +$((g1 - g0)))" \
			[ $got = 0 -a $((g1 - g0)) -ge 1 ]
	else
		ph_check "$name (explicit opt-out): the connection left, as before ($got)" [ $got -ge 1 ]
	fi
}

ph_section "bounce through policies/ftp-server-tracked.policy (fake server on $FAKE4)"
P_EVIL="PORT $(comma $EVIL4),$((TRAP >> 8)),$((TRAP & 255))"
P_25="PORT $(comma $OUT4),0,25"
PAD=$(printf 'x%.0s' $(seq 60))
for kind in optout preset; do
	if [ $kind = preset ]; then use_policy "$PRESET"; else use_policy "$PH_TMP/optout.policy"; fi
	bounce_case bounce $kind "cmd:$P_EVIL"
	bounce_case port-25 $kind "cmd:$P_25"
	bounce_case slipstream $kind "sendraw:SITE $PAD|$P_EVIL\\r\\n"
	bounce_case embedded $kind "sendraw:NOOP\\r$P_EVIL\\r\\n"
done
# The legitimate active transfer still works through the preset.
wd=$PH_TMP/b-legit
e0=$(ph_stat pass_expect out)
ftp_raw $OUT $FAKE4 "$wd" "cmd:USER anonymous" "cmd:PASS x" listen "portas:$OUT4" "cmd:LIST" accept:3 >"$wd.out" 2>&1
res=$(head -n1 "$wd/connect" 2>/dev/null)
row legit-port-v4 preset "$res" "exp+$(($(ph_stat pass_expect out) - e0))" ""
ph_check "legit PORT through the preset: data connection from port 20 admitted ($res)" [ "$res" = ok ]
wd=$PH_TMP/b-legit6
ftp_raw $OUT $FAKE6 "$wd" "cmd:USER anonymous" "cmd:PASS x" listen "eprtas:$OUT6" "cmd:LIST" accept:3 >"$wd.out" 2>&1
res=$(head -n1 "$wd/connect" 2>/dev/null)
row legit-eprt-v6 preset "$res" "-" ""
ph_check "legit EPRT (v6) through the preset: admitted ($res)" [ "$res" = ok ]

ph_section "matrix ($SECONDS s)"
printf '%-26s %-8s %-9s %-8s %s\n' CASE POLICY RESULT EXPECT EVIDENCE
printf '%s\n' "${ROWS[@]}"
ph_finish
