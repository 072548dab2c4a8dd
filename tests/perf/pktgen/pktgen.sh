#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Kernel pktgen load for testers with real NICs: run it on a SENDER machine
# cabled (or switched) to the host running pinhole. Not used by `make bench`
# (the pktgen module is not available on the CI VMs) and never run by tests.
#
# pktgen only builds UDP datagrams. Against pinhole that exercises:
#   - a denied port (default `in drop`):   the drop path   (e.g. -p 9)
#   - an allowed UDP service (http3 443):  the policy path (e.g. -p 443)
# For TCP SYN floods use syn-flood.trafgen (netsniff-ng's trafgen).
#
# Usage: pktgen.sh -i IFACE -d DST_IP -m DST_MAC [options]
#   -i IFACE    sending interface (a real NIC)
#   -d DST_IP   destination IPv4 address (the pinhole host)
#   -m DST_MAC  destination MAC (the pinhole host's NIC, or the next hop)
#   -p PORTS    destination UDP port or range MIN-MAX        (default 9)
#   -P PORTS    source UDP port range MIN-MAX, random        (default 1024-65535)
#   -S SRCS     source IPv4 range MIN-MAX, random per packet (default: IFACE's address)
#   -s SIZE     frame size in bytes without FCS, >= 60       (default 60)
#   -t THREADS  pktgen threads = CPUs = TX queues            (default 1)
#   -r PPS      rate limit per thread in packets/s, 0 = line rate (default 0)
#   -n COUNT    packets per thread, 0 = until Ctrl-C         (default 10000000)
#   -b BURST    packets per xmit call (needs NIC xmit_more)  (default 32)
#   -c CLONE    reuse each skb this many times               (default 0)
# Example: 4 threads, random sources in 198.51.100.0/24, denied port 9:
#   sudo ./pktgen.sh -i eth1 -d 192.0.2.10 -m 0c:42:a1:00:00:01 \
#        -S 198.51.100.1-198.51.100.254 -t 4 -n 0
# Read the receiver's verdicts with `pinhole stats` and `ip -s link`; the
# per-thread results are printed from /proc/net/pktgen/ at the end.
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^# per-thread/p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-1}"; }

IFACE= DST= DMAC= PORTS=9 SPORTS=1024-65535 SRCS= SIZE=60 THREADS=1 RATE=0
COUNT=10000000 BURST=32 CLONE=0
while getopts "i:d:m:p:P:S:s:t:r:n:b:c:h" o; do
	case $o in
	i) IFACE=$OPTARG ;; d) DST=$OPTARG ;; m) DMAC=$OPTARG ;;
	p) PORTS=$OPTARG ;; P) SPORTS=$OPTARG ;; S) SRCS=$OPTARG ;;
	s) SIZE=$OPTARG ;; t) THREADS=$OPTARG ;; r) RATE=$OPTARG ;;
	n) COUNT=$OPTARG ;; b) BURST=$OPTARG ;; c) CLONE=$OPTARG ;;
	h) usage 0 ;; *) usage ;;
	esac
done
[ -n "$IFACE" ] && [ -n "$DST" ] && [ -n "$DMAC" ] || usage
[ "$(id -u)" = 0 ] || { echo "pktgen.sh: needs root" >&2; exit 2; }
# ip, not /sys/class/net: under `nsenter --net` /sys still shows the
# namespace it was mounted in
ip link show dev "$IFACE" >/dev/null 2>&1 || { echo "pktgen.sh: no interface $IFACE" >&2; exit 1; }
modprobe pktgen 2>/dev/null || true
[ -e /proc/net/pktgen/pgctrl ] || { echo "pktgen.sh: the pktgen module is not available" >&2; exit 2; }

range() { # "A-B" or "A" -> "A B"
	case $1 in *-*) echo "${1%-*} ${1#*-}" ;; *) echo "$1 $1" ;; esac
}
pg() { # pg FILE COMMAND: write one pktgen command, fail loudly
	# the kernel may refuse the write itself (e.g. ENOTSUPP, 524)
	if ! (echo "$2" >"$1") 2>/dev/null; then
		echo "pktgen.sh: '$2' refused by $1: $(grep '^Result:' "$1" 2>/dev/null)" >&2
		exit 1
	fi
	if ! grep -q "^Result: OK" "$1" 2>/dev/null && [ "$(basename "$1")" != pgctrl ]; then
		echo "pktgen.sh: '$2' -> $(grep '^Result:' "$1")" >&2
		exit 1
	fi
}

read -r PMIN PMAX <<<"$(range "$PORTS")"
read -r SPMIN SPMAX <<<"$(range "$SPORTS")"
pg /proc/net/pktgen/pgctrl reset
for ((t = 0; t < THREADS; t++)); do
	dev="$IFACE@$t"
	pg "/proc/net/pktgen/kpktgend_$t" rem_device_all
	pg "/proc/net/pktgen/kpktgend_$t" "add_device $dev"
	f="/proc/net/pktgen/$dev"
	pg "$f" "count $COUNT"
	pg "$f" "clone_skb $CLONE"
	# pkt_size is the frame without FCS, as SIZE: the NIC adds the FCS
	pg "$f" "pkt_size $SIZE"
	# burst > 1 needs a driver with xmit_more (real NICs); veth and some
	# virtual devices refuse it (ENOTSUPP): send one by one there
	if [ "$BURST" != 1 ] && ! (echo "burst $BURST" >"$f") 2>/dev/null; then
		echo "pktgen.sh: $IFACE refuses burst $BURST; using burst 1" >&2
		BURST=1
	fi
	pg "$f" "burst $BURST"
	pg "$f" "queue_map_min $t"
	pg "$f" "queue_map_max $t"
	[ "$RATE" != 0 ] && pg "$f" "ratep $RATE"
	[ "$RATE" = 0 ] && pg "$f" "delay 0"
	pg "$f" "dst $DST"
	pg "$f" "dst_mac $DMAC"
	if [ -n "$SRCS" ]; then
		read -r SMIN SMAX <<<"$(range "$SRCS")"
		pg "$f" "src_min $SMIN"
		pg "$f" "src_max $SMAX"
		pg "$f" "flag IPSRC_RND"
	fi
	pg "$f" "udp_dst_min $PMIN"
	pg "$f" "udp_dst_max $PMAX"
	pg "$f" "udp_src_min $SPMIN"
	pg "$f" "udp_src_max $SPMAX"
	pg "$f" "flag UDPSRC_RND"
	[ "$PMIN" != "$PMAX" ] && pg "$f" "flag UDPDST_RND"
	pg "$f" "flag NO_TIMESTAMP"
done

trap 'echo stop >/proc/net/pktgen/pgctrl' INT TERM
echo "pktgen.sh: $THREADS thread(s) on $IFACE -> $DST ($DMAC) udp/$PORTS; Ctrl-C stops"
echo start >/proc/net/pktgen/pgctrl || true
for ((t = 0; t < THREADS; t++)); do
	echo "== $IFACE@$t"
	grep -E "^Result|pps" "/proc/net/pktgen/$IFACE@$t" || true
done
