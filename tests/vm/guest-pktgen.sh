#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Runs INSIDE a tests/vm/vm.sh guest (`make vmtest VMTEST=pktgen`): the
# shipped load recipes of tests/perf/pktgen/ as a tester would run them,
# from a sender namespace (the scripts under `nsenter --net`) into a
# receiver namespace with pinhole attached (web-server.policy: udp/443 and
# tcp/80 allowed, the rest dropped), and what the receiver counted. Rates
# under TCG mean nothing; frame sizes and verdicts do.
# Env: N packets per pktgen thread (default 20000).
set -uo pipefail
cd "$(dirname "$0")/../.."

P=$PWD/pinhole
D=tests/perf/pktgen
N=${N:-20000}
S=pkgs R=pkgr NET=10.251.0
PIN=/sys/fs/bpf/ph-vm-pktgen
rc=0

tx() { nsenter --net=/run/netns/$S "$@"; }
rx() { nsenter --net=/run/netns/$R "$@"; }
res() {
	[ "$1" = ok ] || rc=1
	printf 'RESULT %-4s %s: %s\n' "$1" "$2" "$3"
}
rxcount() { # packets bytes received by the receiver's veth end
	rx ip -s -j link show pkgr0 |
		python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]["rx"]; print(s["packets"], s["bytes"])'
}
reason() { # reason NAME [bytes]: inbound packets (or bytes) under that reason
	rx "$P" --pin-dir $PIN stats -j |
		python3 -c 'import json,sys; d={r["name"]: r for r in json.load(sys.stdin)["reasons"]}; print(d[sys.argv[1]]["in"][sys.argv[2]])' "$1" "${2:-packets}"
}
verdicts() { # packets and bytes pinhole judged (drop_policy + pass_policy)
	echo $(($(reason drop_policy) + $(reason pass_policy))) \
		$(($(reason drop_policy bytes) + $(reason pass_policy bytes)))
}
# run NAME CMD...: one recipe from the sender namespace; prints its output,
# what the receiver got and pinhole's verdicts. Frame sizes come from
# pinhole's byte counts (XDP sees the whole frame; the veth's own RX bytes
# leave out the Ethernet header).
run() {
	local name=$1 p0 b0 p1 b1 d0 d1 a0 a1 t0 r v0 vb0 v1 vb1
	shift
	echo
	echo "=== $name"
	echo "\$ nsenter --net=/run/netns/$S $*"
	read -r p0 b0 <<<"$(rxcount)"
	read -r v0 vb0 <<<"$(verdicts)"
	d0=$(reason drop_policy) a0=$(reason pass_policy)
	t0=$(date +%s)
	tx timeout 600 "$@" >/tmp/recipe.out 2>&1
	r=$?
	sed 's/^/    | /' /tmp/recipe.out | tail -n 15
	read -r p1 b1 <<<"$(rxcount)"
	read -r v1 vb1 <<<"$(verdicts)"
	d1=$(reason drop_policy) a1=$(reason pass_policy)
	GOT=$((p1 - p0)) DROP=$((d1 - d0)) PASS=$((a1 - a0))
	SIZE=$([ $v1 -gt $v0 ] && echo $(((vb1 - vb0) / (v1 - v0))) || echo 0)
	echo "    exit $r in $(($(date +%s) - t0)) s; receiver: $GOT frames ($((b1 - b0)) bytes after the Ethernet header); pinhole: drop_policy +$DROP, pass_policy +$PASS, $SIZE bytes per frame"
	return $r
}

echo "=== kernel $(uname -r)"
modprobe pktgen && res ok "modprobe pktgen" "$(ls /proc/net/pktgen | tr '\n' ' ')" ||
	res FAIL "modprobe pktgen" "not available"
for ns in $S $R; do ip netns del $ns 2>/dev/null; ip netns add $ns; done
ip link add pkgs0 netns $S type veth peer name pkgr0 netns $R
tx ip addr add $NET.1/24 dev pkgs0
rx ip addr add $NET.2/24 dev pkgr0
tx ip link set pkgs0 up
rx ip link set pkgr0 up
MAC=$(rx ip -j link show pkgr0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
SMAC=$(tx ip -j link show pkgs0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
rx "$P" --pin-dir $PIN attach --policy policies/web-server.policy pkgr0 &&
	res ok attach "pinhole on pkgr0 (netns $R)" || res FAIL attach "pinhole attach failed"

# 1. as documented: 60-byte frames (without FCS), denied port 9
run "pktgen.sh as documented: -s 60 -p 9" \
	bash $D/pktgen.sh -i pkgs0 -d $NET.2 -m "$MAC" -p 9 -s 60 -n "$N"
r=$?
[ $r = 0 ] && [ $SIZE = 60 ] && [ $DROP = "$N" ] &&
	res ok "pktgen.sh -s 60 -p 9" "$DROP frames of 60 bytes, all drop_policy" ||
	res FAIL "pktgen.sh -s 60 -p 9" "exit $r, $GOT frames of $SIZE bytes (want 60), drop_policy +$DROP"
# 2. an allowed UDP service, random sources, 2 threads, burst 1
run "pktgen.sh -s 128 -p 443 -S 198.51.100.1-198.51.100.254 -t 2 -b 1" \
	bash $D/pktgen.sh -i pkgs0 -d $NET.2 -m "$MAC" -p 443 -s 128 \
	-S 198.51.100.1-198.51.100.254 -t 2 -b 1 -n "$N"
r=$?
[ $r = 0 ] && [ $GOT -gt 0 ] && [ $SIZE = 128 ] && [ $PASS -gt 0 ] &&
	res ok "pktgen.sh -p 443 -t 2" "$GOT frames of 128 bytes, pass_policy +$PASS" ||
	res FAIL "pktgen.sh -p 443 -t 2" "exit $r, $GOT frames of $SIZE bytes (want 128), pass_policy +$PASS"
# 3. the recorded FTP client packets (tcpreplay), interface only in the netns
run "replay-ftp.sh -r topspeed -l 20" \
	bash $D/replay-ftp.sh -i pkgs0 -s $NET.2 -m "$MAC" -r topspeed -l 20
r=$?
[ $r = 0 ] && [ $GOT -gt 0 ] && res ok "replay-ftp.sh" "$GOT frames, drop_policy +$DROP, pass_policy +$PASS" ||
	res FAIL "replay-ftp.sh" "exit $r, $GOT frames"
# 4. trafgen SYN flood: addresses edited into a copy, as its header says
hx() { echo "$1" | awk -F: '{printf "0x%s, 0x%s, 0x%s, 0x%s, 0x%s, 0x%s,", $1, $2, $3, $4, $5, $6}'; }
sed -e "s/^  0x0c, 0x42, 0xa1, 0x00, 0x00, 0x01,/  $(hx "$MAC")/" \
	-e "s/^  0x0c, 0x42, 0xa1, 0x00, 0x00, 0x02,/  $(hx "$SMAC")/" \
	-e "s/192, 0, 2, 10,  /10, 251, 0, 2,/" $D/syn-flood.trafgen >/tmp/syn.trafgen
if command -v trafgen >/dev/null; then
	run "trafgen syn-flood.trafgen --cpp (dport 23)" \
		trafgen --dev pkgs0 --conf /tmp/syn.trafgen --cpp --cpus 1 --num "$N"
	r=$?
	[ $r = 0 ] && [ $SIZE = 54 ] && [ $DROP = "$N" ] &&
		res ok "trafgen --cpp" "$DROP SYNs of 54 bytes, all drop_policy" ||
		res FAIL "trafgen --cpp" "exit $r, $GOT frames of $SIZE bytes (want 54), drop_policy +$DROP"
	# and what the header used to say, without --cpp
	run "trafgen syn-flood.trafgen without --cpp" \
		trafgen --dev pkgs0 --conf /tmp/syn.trafgen --cpus 1 --num 10
	echo "    (without --cpp: exit $?, shown for the record)"
else
	res FAIL trafgen "trafgen missing (netsniff-ng; run 'sudo make deps')"
fi
rx "$P" --pin-dir $PIN stats | sed 's/^/    /'
rx "$P" --pin-dir $PIN detach pkgr0 && res ok detach "" || res FAIL detach ""
ip netns del $S
ip netns del $R
exit $rc
