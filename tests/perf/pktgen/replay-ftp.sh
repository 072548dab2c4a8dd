#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# tcpreplay recipe: replay the client side of the recorded FTP sessions
# (ftp-session.pcap, see record-ftp.sh) from a SENDER machine towards a host
# running pinhole, addresses and MACs rewritten to your lab's. Not run by
# tests.
#
# What the pinhole host sees: the client's SYNs to port 21, its ACKs, its
# FTP commands (USER, PASV/EPSV, PORT/EPRT, RETR...) and its SYNs to passive
# data ports. No server answers a replay, so it is a realistic packet mix
# for load and for the parser's bytes, not a working FTP session: control
# SYNs pass by policy, passive data SYNs are dropped (no 227/229 was sent
# from that host, so no pinhole exists), stray ACKs pass statelessly on
# open ports. For a stateful session use a real FTP client against the
# pinhole host.
#
# Usage: replay-ftp.sh -i IFACE -s SERVER_IP -m SERVER_MAC [options]
#   -i IFACE      sending interface (a real NIC)
#   -s SERVER_IP  the pinhole host (replaces 10.197.0.2)
#   -m SERVER_MAC its MAC (or the next hop's)
#   -c CLIENT_IP  source address to use (replaces 10.197.0.1; default: IFACE's)
#   -r RATE       packets per second, or "topspeed"       (default 10000)
#   -l LOOPS      times to replay the file, 0 = forever   (default 100)
#   -f PCAP       capture to replay                       (default ftp-session.pcap)
# Example:
#   sudo ./replay-ftp.sh -i eth1 -s 192.0.2.10 -m 0c:42:a1:00:00:01 -r topspeed -l 0
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^#   sudo/p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-1}"; }
HERE=$(cd "$(dirname "$0")" && pwd)
IFACE= SERVER= SMAC= CLIENT= RATE=10000 LOOPS=100 PCAP=$HERE/ftp-session.pcap
while getopts "i:s:m:c:r:l:f:h" o; do
	case $o in
	i) IFACE=$OPTARG ;; s) SERVER=$OPTARG ;; m) SMAC=$OPTARG ;;
	c) CLIENT=$OPTARG ;; r) RATE=$OPTARG ;; l) LOOPS=$OPTARG ;;
	f) PCAP=$OPTARG ;; h) usage 0 ;; *) usage ;;
	esac
done
[ -n "$IFACE" ] && [ -n "$SERVER" ] && [ -n "$SMAC" ] || usage
for t in tcpreplay tcprewrite tcpdump; do
	command -v $t >/dev/null || { echo "replay-ftp.sh: $t missing (apt install tcpreplay tcpdump)" >&2; exit 2; }
done
# ip, not /sys/class/net: under `nsenter --net` /sys still shows the
# namespace it was mounted in, not this one's interfaces
ip link show dev "$IFACE" >/dev/null 2>&1 || { echo "replay-ftp.sh: no interface $IFACE" >&2; exit 1; }
if [ -z "$CLIENT" ]; then
	CLIENT=$(ip -4 -o addr show dev "$IFACE" | awk '{print $4}' | cut -d/ -f1 | head -1)
	[ -n "$CLIENT" ] || { echo "replay-ftp.sh: $IFACE has no IPv4 address; give -c" >&2; exit 1; }
fi
CMAC=$(ip -o link show dev "$IFACE" | sed -n 's|.* link/ether \([0-9a-f:]*\) .*|\1|p')
[ -n "$CMAC" ] || { echo "replay-ftp.sh: $IFACE has no Ethernet address" >&2; exit 1; }

work=$(mktemp -d /tmp/phb-replay.XXXXXX)
trap 'rm -rf "$work"' EXIT
# only what the pinhole host would receive: the client's packets
tcpdump -r "$PCAP" -w "$work/client.pcap" 'src host 10.197.0.1' 2>/dev/null
tcprewrite -i "$work/client.pcap" -o "$work/replay.pcap" \
	--pnat="10.197.0.1/32:$CLIENT/32,10.197.0.2/32:$SERVER/32" \
	--enet-smac="$CMAC" --enet-dmac="$SMAC" --fixcsum
echo "replay-ftp.sh: $(tcpdump -r "$work/replay.pcap" 2>/dev/null | wc -l) packets," \
	"$CLIENT -> $SERVER ($SMAC) on $IFACE, rate $RATE, loops $LOOPS"
if [ "$RATE" = topspeed ]; then
	tcpreplay -i "$IFACE" --topspeed --loop="$LOOPS" --preload-pcap "$work/replay.pcap"
else
	tcpreplay -i "$IFACE" --pps="$RATE" --loop="$LOOPS" --preload-pcap "$work/replay.pcap"
fi
