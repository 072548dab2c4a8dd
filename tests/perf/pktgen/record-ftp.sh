#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Records ftp-session.pcap (shipped next to this script): one FTP control
# session per mode between two network namespaces, vsftpd serving and curl
# downloading a small file, tcpdump on the client side.
#   1. passive, PASV   (curl --disable-epsv)
#   2. passive, EPSV
#   3. active, PORT    (curl -P - --disable-eprt)
#   4. active, EPRT    (curl -P -)
# Client 10.197.0.1, server 10.197.0.2, data ports 50000-50010 (passive),
# active data from port 20. Needs root, vsftpd, curl, tcpdump.
#   sudo tests/perf/pktgen/record-ftp.sh [OUTPUT.pcap]
set -euo pipefail
OUT=$(realpath -m "${1:-$(dirname "$0")/ftp-session.pcap}")
CLI=phb-ftpc SRV=phb-ftps
[ "$(id -u)" = 0 ] || { echo "record-ftp.sh: needs root" >&2; exit 77; }
for t in vsftpd curl tcpdump; do
	command -v "$t" >/dev/null || { echo "record-ftp.sh: $t missing" >&2; exit 77; }
done

work=$(mktemp -d /tmp/phb-ftp.XXXXXX)
cleanup() {
	[ -f "$work/tcpdump.pid" ] && kill "$(cat "$work/tcpdump.pid")" 2>/dev/null || true
	[ -f "$work/vsftpd.pid" ] && kill "$(cat "$work/vsftpd.pid")" 2>/dev/null || true
	ip netns del $CLI 2>/dev/null || true
	ip netns del $SRV 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ip netns add $CLI
ip netns add $SRV
ip link add phb-fc0 netns $CLI type veth peer name phb-fs0 netns $SRV
ip -n $CLI addr add 10.197.0.1/24 dev phb-fc0
ip -n $SRV addr add 10.197.0.2/24 dev phb-fs0
for ns in $CLI $SRV; do ip -n $ns link set lo up; done
ip -n $CLI link set phb-fc0 up
ip -n $SRV link set phb-fs0 up
# Real-NIC-sized segments (veth defaults to 64 KiB TSO frames in a capture)
ip -n $CLI link set dev phb-fc0 gso_max_segs 1 2>/dev/null || true
ip -n $SRV link set dev phb-fs0 gso_max_segs 1 2>/dev/null || true

mkdir -p "$work/pub" "$work/empty"
head -c 3000 /dev/urandom | base64 >"$work/pub/readme.txt" # ~4 KB
chmod 755 "$work" "$work/pub"
chmod 644 "$work/pub/readme.txt"
cat >"$work/vsftpd.conf" <<CONF
listen=YES
listen_ipv6=NO
listen_address=10.197.0.2
background=NO
seccomp_sandbox=NO
anonymous_enable=YES
no_anon_password=YES
anon_root=$work/pub
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port=50000
pasv_max_port=50010
port_enable=YES
connect_from_port_20=YES
secure_chroot_dir=$work/empty
xferlog_enable=NO
ftpd_banner=pinhole benchmark FTP server
CONF
ip netns exec $SRV vsftpd "$work/vsftpd.conf" &
echo $! >"$work/vsftpd.pid"
ip netns exec $CLI tcpdump -Z root --immediate-mode -i phb-fc0 -s 0 -U -w "$OUT" tcp 2>"$work/tcpdump.log" &
echo $! >"$work/tcpdump.pid"
sleep 1

get() { ip netns exec $CLI curl -sS --max-time 10 -o /dev/null -w "%{http_code} %{size_download}\n" "$@" ftp://10.197.0.2/readme.txt; }
get --disable-epsv
get
get -P - --disable-eprt
get -P -
sleep 0.5
kill "$(cat "$work/tcpdump.pid")"
wait "$(cat "$work/tcpdump.pid")" 2>/dev/null || true
rm -f "$work/tcpdump.pid"
echo "record-ftp.sh: wrote $OUT ($(stat -c %s "$OUT") bytes)"
