#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Runs INSIDE a tests/vm/vm.sh guest (its own kernel, the host's userland),
# from a built pinhole tree: the kernel-matrix checks of `make vmtest`.
#   bash tests/vm/guest.sh STEP...
# Steps:
#   info     kernel, package, BTF, the BPF features pinhole uses (bpftool probe)
#   verify   each program through the verifier alone: verified instructions
#   attach   a veth pair: attach/detach in every XDP mode (native, generic,
#            auto), live programs' verified_insns, allowed and dropped traffic;
#            reloads between policies with and without peer prefixes
#   unit     make unit
#   bpftest  make bpftest
#   e2e      a short e2e subset ($PH_VM_E2E: the test scripts to run)
#   pktgen   the shipped tests/perf/pktgen recipes against pinhole on a veth
# Each check prints "RESULT ok|FAIL|skip NAME: detail"; the last line sums
# them up. Exit 1 if any check failed. Files: $OUT (default /vmk).
set -uo pipefail
cd "$(dirname "$0")/../.."

P=$PWD/pinhole
PHV=$PWD/.output/tests/vm/phverify
OUT=${OUT:-/vmk}
# Short: under TCG test_services and test_egress take 1-1.5 min each;
# test_ftp takes more than 6 (PH_VM_E2E="tests/e2e/test_ftp.sh" runs it).
E2E=${PH_VM_E2E:-tests/e2e/test_services.sh tests/e2e/test_egress.sh}
# Names are free in the guest (its own kernel); on the host set PH_VM_NS,
# PH_VM_NET4 and PH_VM_PIN to a range of your own.
NS=${PH_VM_NS:-pkv} NET=${PH_VM_NET4:-10.250.0}
IF0=${NS}0 IF1=${NS}1
PIN=${PH_VM_PIN:-/sys/fs/bpf/ph-vm}
NOK=0 NFAIL=0 NSKIP=0 FAILED=()

res() { # res ok|FAIL|skip NAME DETAIL...
	local r=$1 n=$2
	shift 2
	case $r in
	ok) NOK=$((NOK + 1)) ;;
	skip) NSKIP=$((NSKIP + 1)) ;;
	*) NFAIL=$((NFAIL + 1)) FAILED+=("$n") ;;
	esac
	printf 'RESULT %-4s %s: %s\n' "$r" "$n" "$*"
}
check() { # check NAME CMD...: ok if CMD succeeds, else FAIL with its output
	local n=$1 o
	shift
	if o=$("$@" 2>&1); then
		res ok "$n" "$(echo "$o" | tail -n 1 | cut -c1-120)"
	else
		res FAIL "$n" "exit $? from $*"
		echo "$o" | tail -n 20 | sed 's/^/    | /'
	fi
}
hdr() { echo; echo "=== $*"; }
nsx() { nsenter --net=/run/netns/$NS "$@"; }
since() { echo $(($(date +%s) - $1)); }

step_info() {
	hdr "kernel $(uname -r): $(sed 's/.*(\(Debian [^)]*\)).*/\1/' /proc/version)"
	if [ -s /sys/kernel/btf/vmlinux ]; then
		res ok btf "/sys/kernel/btf/vmlinux, $(stat -c %s /sys/kernel/btf/vmlinux) bytes"
	else
		res FAIL btf "no /sys/kernel/btf/vmlinux"
	fi
	# The map types pinhole defines, as the kernel's own probe sees them
	# (a missing one would otherwise show as a load failure only).
	bpftool feature probe kernel >"$OUT/feature-probe.txt" 2>&1
	local m miss= have=
	for m in $(grep -ho 'BPF_MAP_TYPE_[A-Z_]*' bpf/lib/*.h bpf/*.bpf.c | sort -u |
		sed 's/BPF_MAP_TYPE_//' | tr 'A-Z' 'a-z'); do
		grep -q "eBPF map_type $m is available" "$OUT/feature-probe.txt" &&
			have+=" $m" || miss+=" $m"
	done
	[ -z "$miss" ] && res ok "map types" "$have" || res FAIL "map types" "not available:$miss"
}

# The helpers a loaded program calls, as the kernel names them.
helpers_of() {
	bpftool prog dump xlated id "$1" 2>/dev/null | grep -o 'call bpf_[a-z_0-9]*' |
		sed 's/call //' | sort -u | tr '\n' ' '
}

step_verify() {
	hdr "verifier: each program on its own (phverify)"
	local t0=$(date +%s) o r
	o=$("$PHV" verify "$OUT")
	r=$?
	echo "$o"
	echo "$o" | grep '^VERIFY' >"$OUT/verify.txt"
	while read -r _ name st rest; do
		[ "$st" = OK ] && res ok "verify $name" "$rest" || res FAIL "verify $name" "$rest"
	done <"$OUT/verify.txt"
	[ -s "$OUT/verify.txt" ] || res FAIL verify "phverify printed nothing (exit $r)"
	echo "    ($(since "$t0") s)"
}

netns_up() {
	ip netns del $NS 2>/dev/null
	ip link del $IF0 2>/dev/null
	ip netns add $NS
	ip link add $IF0 type veth peer name $IF1
	ip link set $IF1 netns $NS
	ip addr add $NET.1/24 dev $IF0
	ip link set $IF0 up
	nsx ip addr add $NET.2/24 dev $IF1
	nsx ip link set $IF1 up
	nsx ip link set lo up
}
netns_down() {
	[ -n "${SRV_PIDS:-}" ] && kill $SRV_PIDS 2>/dev/null
	SRV_PIDS=
	ip netns del $NS 2>/dev/null
	ip link del $IF0 2>/dev/null
	true
}

# TCP connect from the root namespace: 0 connected, 1 refused/reset, 124 timeout
tcp_try() { timeout 3 bash -c "exec 3<>/dev/tcp/$NET.2/$1" 2>/dev/null; }

step_attach() {
	local pol=policies/web-server.policy mode r want o t0
	hdr "attach/detach on a veth in every XDP mode ($pol)"
	netns_up
	SRV_PIDS=
	for port in 80 23; do
		nsx python3 -m http.server -b $NET.2 $port >/dev/null 2>&1 &
		SRV_PIDS+=" $!"
	done
	# python starts slowly from 9p under TCG: wait for both listeners
	for _ in $(seq 60); do
		[ "$(nsx ss -Hltn 'sport = :80 or sport = :23' | wc -l)" = 2 ] && break
		sleep 1
	done
	tcp_try 23
	[ $? = 0 ] && res ok "no pinhole: tcp/23 answers" "" ||
		res FAIL "no pinhole: tcp/23 answers" "the listener is not reachable: checks below would mean nothing"
	for mode in native generic auto; do
		t0=$(date +%s)
		o=$(nsx "$P" --pin-dir $PIN attach --policy $pol --mode $mode $IF1 2>&1)
		r=$?
		echo "$o" >"$OUT/attach-$mode.txt"
		if [ $r != 0 ]; then
			res FAIL "attach --mode $mode" "exit $r: $(echo "$o" | grep -v '^libbpf' | tail -n 1)"
			echo "$o" | tail -n 30 | sed 's/^/    | /'
			continue
		fi
		res ok "attach --mode $mode" "$(since "$t0") s: $(echo "$o" | tail -n 1 | cut -c1-100)"
		# native and auto on veth: driver mode; generic: skb mode
		want=xdp
		[ $mode = generic ] && want=xdpgeneric
		o=$(nsx ip -d link show $IF1)
		echo "$o" | grep -qE "^ +prog/$want |[ >]$want[ /]" &&
			res ok "$mode: XDP on $IF1" "$(echo "$o" | grep -oE "prog/$want id [0-9]+" | head -n 1)" ||
			res FAIL "$mode: XDP on $IF1" "expected $want in: $(echo "$o" | head -n 2 | tr '\n' ' ')"
		o=$(nsx tc filter show dev $IF1 egress)
		echo "$o" | grep -q pinhole_tc && res ok "$mode: TC egress filter" "$(echo "$o" | grep -oE 'pinhole_tc.* id [0-9]+' | head -n 1)" ||
			res FAIL "$mode: TC egress filter" "none: $o"
		"$PHV" progs $(sed -n 's|.*prog ids \([0-9]*\)/\([0-9]*\).*|\1 \2|p' "$OUT/attach-$mode.txt") |
			sed 's/^/    /' | tee "$OUT/progs-$mode.txt"
		if [ $mode = native ]; then
			for id in $(sed -n 's/.* id=\([0-9]*\) .*/\1/p' "$OUT/progs-$mode.txt"); do
				echo "    helpers of prog $id: $(helpers_of "$id")"
			done
		fi
		check "$mode: ping (icmp-echo in allow)" ping -c 2 -W 3 $NET.2
		tcp_try 80 && res ok "$mode: tcp/80 (allowed) connects" "" ||
			res FAIL "$mode: tcp/80 (allowed) connects" "exit $?"
		tcp_try 23
		r=$?
		[ $r = 124 ] && res ok "$mode: tcp/23 (default in drop) dropped" "connect timed out" ||
			res FAIL "$mode: tcp/23 (default in drop) dropped" "connect exit $r (0: connected, 1: refused)"
		o=$(nsx "$P" --pin-dir $PIN stats -j 2>&1)
		echo "$o" >"$OUT/stats-$mode.json"
		python3 -c 'import json,sys; d=json.load(sys.stdin); r={x["name"]: x for x in d["reasons"]}; sys.exit(0 if r["drop_policy"]["in"]["packets"] > 0 and r["pass_flow"]["in"]["packets"] + r["pass_flow"]["out"]["packets"] > 0 else 1)' <<<"$o" &&
			res ok "$mode: stats count drop_policy and pass_flow" "" ||
			res FAIL "$mode: stats count drop_policy and pass_flow" "$(echo "$o" | head -c 300)"
		check "$mode: detach" nsx "$P" --pin-dir $PIN detach $IF1
		nsx ip link show $IF1 | grep -q 'prog/xdp\|xdp' && res FAIL "$mode: XDP gone after detach" "still attached"
		nsx tc filter show dev $IF1 egress | grep -q pinhole && res FAIL "$mode: TC gone after detach" "still attached"
		[ -e $PIN ] && res FAIL "$mode: pin dir gone after detach" "$PIN remains"
		tcp_try 23 && res ok "$mode: after detach tcp/23 answers" "" ||
			res FAIL "$mode: after detach tcp/23 answers" "exit $?"
	done
	step_peers
	netns_down
}

# Peer sets through attach and reload: a service open to this peer only, then
# to another address (the old trie must not answer), then back.
step_peers() {
	local d=$OUT/peers r
	mkdir -p "$d"
	printf 'default in drop\nservice web in tcp 80 from %s/32\n' $NET.1 >"$d/me.policy"
	printf 'default in drop\nservice web in tcp 80 from %s/32\n' $NET.99 >"$d/other.policy"
	printf 'default in drop\nservice web in tcp 80 from any\n' >"$d/any.policy"
	check "peers: attach (tcp/80 from $NET.1 only)" \
		nsx "$P" --pin-dir $PIN attach --policy "$d/me.policy" $IF1
	tcp_try 80 && res ok "peers: from $NET.1 connects" "" || res FAIL "peers: from $NET.1 connects" "exit $?"
	for pol in other any other me; do
		check "peers: reload $pol.policy" nsx "$P" --pin-dir $PIN reload --policy "$d/$pol.policy"
		tcp_try 80
		r=$?
		if [ $pol = other ]; then
			[ $r = 124 ] && res ok "peers: $pol: dropped" "" || res FAIL "peers: $pol: dropped" "connect exit $r"
		else
			[ $r = 0 ] && res ok "peers: $pol: connects" "" || res FAIL "peers: $pol: connects" "connect exit $r"
		fi
	done
	check "peers: detach" nsx "$P" --pin-dir $PIN detach $IF1
}

step_make() { # step_make TARGET
	local t0=$(date +%s) o r
	hdr "make $1"
	o=$(make --no-print-directory "$1" 2>&1)
	r=$?
	echo "$o" | grep -E '^  (PASS|FAIL|SKIP)|passed,|^        \|' | head -n 200
	echo "$o" >"$OUT/make-$1.txt"
	[ $r = 0 ] && res ok "make $1" "$(echo "$o" | grep 'passed,' | tail -n 1), $(since "$t0") s" ||
		res FAIL "make $1" "exit $r: $(echo "$o" | grep 'passed,' | tail -n 1)"
}

step_e2e() {
	local t name o r t0
	hdr "e2e subset: $E2E"
	# Where the kernel has extension programs, libxdp's dispatcher must
	# work: the tests that share the XDP hook (test_cli_tools) or upgrade
	# through it (test_po_upgrade) then fail instead of falling back.
	# (Not `bpftool ... | grep -q`: under pipefail, grep's early exit
	# fails bpftool with SIGPIPE.)
	local probe
	probe=$(bpftool feature probe kernel 2>/dev/null)
	if grep -q "program_type ext is available" <<<"$probe"; then
		export PH_NEED_DISPATCHER=1
		echo "extension programs available: PH_NEED_DISPATCHER=1"
	fi
	for t in $E2E; do
		name=$(basename "$t" .sh)
		t0=$(date +%s)
		o=$(bash "$t" 2>&1)
		r=$?
		echo "$o" >"$OUT/$name.txt"
		case $r in
		0) res ok "e2e $name" "$(echo "$o" | grep -cE '✔|ok') checks passed, $(since "$t0") s" ;;
		77) res skip "e2e $name" "$(echo "$o" | grep -m1 SKIP)" ;;
		*)
			res FAIL "e2e $name" "exit $r, $(since "$t0") s"
			echo "$o" | grep -E '✘|FAIL|fatal' | head -n 20 | sed 's/^/    | /'
			;;
		esac
	done
}

step_pktgen() {
	bash tests/vm/guest-pktgen.sh
	local r=$?
	[ $r = 0 ] && res ok pktgen "all recipes ran" || res FAIL pktgen "exit $r (see above)"
}

START=$(date +%s)
[ $# -gt 0 ] || set -- info verify attach unit bpftest e2e
for s in "$@"; do
	case $s in
	info) step_info ;;
	verify) step_verify ;;
	attach) step_attach ;;
	unit | bpftest) step_make "$s" ;;
	e2e) step_e2e ;;
	pktgen) step_pktgen ;;
	*) res FAIL "step $s" "unknown step" ;;
	esac
done
echo
echo "=== $(uname -r): $NOK ok, $NFAIL failed, $NSKIP skipped in $(since "$START") s${FAILED:+; failed: ${FAILED[*]}}"
[ $NFAIL = 0 ]
