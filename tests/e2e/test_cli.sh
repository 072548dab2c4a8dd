#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The CLI contract (docs/cli.md): exit codes and one-line messages, attach
# in native/generic/auto mode, status/stats/flows (human and JSON), reload
# (a bad policy keeps the old generation), detach (XDP, TC filter and pins
# gone), run (prints "ready", cleans up on SIGTERM), load-time options, and
# the versioned pin layout (a pinned map with another definition is
# recreated when nothing is attached, refused while something is).
#
# Two namespaces phc-a <-> phc-b joined by phc0/phc1; the CLI runs in phc-b
# through nsenter (ip netns exec would hide the root bpffs). Own pin dirs
# /sys/fs/bpf/ph-cli-test and ph-cli-test2. Exit: 0 pass, 77 skip, 1 fail.

# Helpers below are called through check/expect: not unreachable.
# shellcheck disable=SC2317
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${PINHOLE:-$ROOT/pinhole}
PIN=/sys/fs/bpf/ph-cli-test
PIN2=/sys/fs/bpf/ph-cli-test2
NSA=phc-a NSB=phc-b IFA=phc0 IFB=phc1
A4=10.198.0.1 B4=10.198.0.2
FAILS=0 CHECKS=0
PIDS=()

skip() {
	echo "SKIP: $*"
	exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root (namespaces, XDP, bpffs)"
for b in ip tc bpftool nsenter setpriv python3 timeout flock; do
	command -v "$b" >/dev/null || skip "needs $b"
done
[ -x "$BIN" ] || {
	echo "FAIL: $BIN is not built (run make)"
	exit 1
}

TMP=$(mktemp -d /tmp/phc-test.XXXXXX)

# ---------------------------------------------------------------- helpers

ph() { timeout 60 nsenter --net="/run/netns/$NSB" "$BIN" --pin-dir "$PIN" "$@"; }
ph2() { timeout 60 nsenter --net="/run/netns/$NSB" "$BIN" --pin-dir "$PIN2" "$@"; }
in_a() { ip netns exec "$NSA" "$@"; }
in_b() { ip netns exec "$NSB" "$@"; }

ok() {
	CHECKS=$((CHECKS + 1))
	echo "  ok    $*"
}
ko() {
	CHECKS=$((CHECKS + 1))
	FAILS=$((FAILS + 1))
	echo "  FAIL  $*"
}
show() { sed 's/^/        | /' "$TMP/out" "$TMP/err" | head -n 20; }

# expect RC DESC CMD...: run CMD (stdout in $TMP/out, stderr in $TMP/err)
# and check its exit code.
expect() {
	local want=$1 desc=$2 rc
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$desc"
		return 0
	fi
	ko "$desc (exit $rc, want $want)"
	show
	return 1
}

# expect_in out|err REGEX DESC: the last command's output matches.
expect_in() {
	if grep -Eq -- "$2" "$TMP/$1"; then
		ok "$3"
	else
		ko "$3 (no /$2/ in std$1)"
		show
	fi
}

# check DESC CMD...: CMD succeeds.
check() {
	local desc=$1
	shift
	if "$@" >"$TMP/chk" 2>&1; then
		ok "$desc"
	else
		ko "$desc"
		sed 's/^/        | /' "$TMP/chk" | head -n 20
	fi
}

# json FILE EXPR: print a Python expression over the document d.
json() {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
valid_json() { python3 -m json.tool "$1" >/dev/null; }

xdp_on() { ip -n "$NSB" link show dev "$1" | grep -Eq 'xdp|prog/xdp'; }
no_xdp() { ! xdp_on "$1"; }
xdp_native() { ip -n "$NSB" -d link show dev "$1" | grep -q ' xdp '; }
xdp_generic() { ip -n "$NSB" link show dev "$1" | grep -q 'xdpgeneric'; }
tc_ours() { tc -n "$NSB" filter show dev "$1" egress | grep -q pinhole_tc; }
tc_empty() { [ -z "$(tc -n "$NSB" filter show dev "$1" egress 2>/dev/null)" ]; }
no_pins() { [ ! -e "$1" ]; }
gen_of() { ph status -j >"$TMP/st.json" 2>/dev/null && json "$TMP/st.json" 'd["generation"]'; }

# A TCP connect from phc-a: 0 if the handshake completes within 1.5 s (the
# SYN and its retransmission after 1 s); the connection is then held open
# for ${2:-0} seconds.
connect() { in_a timeout $((3 + ${2:-0})) python3 -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
s.sendall(b"hello\n")
time.sleep(float(sys.argv[3]))
s.close()' "$B4" "$1" "${2:-0}" 2>/dev/null; }

cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for d in "$PIN" "$PIN2"; do
		if [ -e "$d" ] && [ -e "/run/netns/$NSB" ]; then
			timeout 30 nsenter --net="/run/netns/$NSB" "$BIN" \
				--pin-dir "$d" detach --all >/dev/null 2>&1
		fi
		# Pins whatever their state (bpffs allows unlink, not rm -r of
		# a non-empty dir when something else holds it).
		if [ -d "$d" ]; then
			rm -f "$d"/* 2>/dev/null
			rmdir "$d" 2>/dev/null
		fi
	done
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	rm -rf "$TMP"
}
cleanup_stale() {
	local keep=$TMP
	TMP=/nonexistent-phc
	cleanup
	TMP=$keep
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ------------------------------------------------------------------ setup

# One run at a time: a second one would share namespaces and pin dirs.
exec 9>/run/lock/pinhole-test-cli.lock 2>/dev/null || exec 9>/tmp/pinhole-test-cli.lock
flock -w 600 9 || skip "another test_cli.sh run holds the lock for 10 minutes"
cleanup_stale
mount | grep -q ' /sys/fs/bpf type bpf' || mount -t bpf bpf /sys/fs/bpf
ip netns add "$NSA" && ip netns add "$NSB" &&
	ip link add "$IFA" netns "$NSA" type veth peer name "$IFB" netns "$NSB" &&
	ip -n "$NSA" addr add "$A4/24" dev "$IFA" &&
	ip -n "$NSB" addr add "$B4/24" dev "$IFB" &&
	ip -n "$NSA" link set "$IFA" up && ip -n "$NSB" link set "$IFB" up &&
	ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up
# shellcheck disable=SC2181 # the chain above is one step
if [ $? != 0 ]; then
	echo "FAIL: cannot create namespaces $NSA/$NSB"
	exit 1
fi

chmod 755 "$TMP"
POL=$TMP/web.policy
cat >"$POL" <<'EOF'
# test_cli.sh: one TCP service.
default in drop
service web in tcp 8080 from any
EOF
POL2=$TMP/web2.policy
cat >"$POL2" <<'EOF'
# test_cli.sh: two TCP services.
default in drop
service web in tcp 8080 from any
service alt in tcp 8081 from any
EOF
BAD=$TMP/bad.policy
cat >"$BAD" <<'EOF'
default in drop
service web in tcp 99999 from any
EOF
chmod 644 "$POL" "$POL2" "$BAD"
# The non-root checks need a binary that user 65534 may execute.
cp "$BIN" "$TMP/pinhole" && chmod 755 "$TMP/pinhole"

# Listeners on 8080 and 8081 in phc-b: read until the client closes.
# nsenter execs python3 itself, so $! is the listener; it also ends by
# itself after 10 minutes.
nsenter --net="/run/netns/$NSB" python3 -c '
import socket, threading, time
def drain(c):
    while c.recv(4096):
        pass
    c.close()
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()
for p in (8080, 8081):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
time.sleep(600)' </dev/null >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5

# ---------------------------------------------------------- no kernel yet

echo "check, usage and exit codes"
expect 0 "check accepts a good policy" "$BIN" check "$POL"
expect_in out 'web' "check prints the compiled summary"
expect 1 "check rejects a bad policy" "$BIN" check "$BAD"
expect_in err "^$BAD:2:[0-9]+: error: " "error is file:line:col: error: ..."
expect 0 "check works without root" \
	setpriv --reuid=65534 --regid=65534 --clear-groups "$TMP/pinhole" check "$POL"
for cmd in "status" "stats -j" "flows" "detach --all" "reload --policy $POL" \
	"attach --policy $POL $IFB" "daemon"; do
	# shellcheck disable=SC2086 # word splitting wanted
	expect 2 "non-root: $cmd -> 2" setpriv --reuid=65534 --regid=65534 \
		--clear-groups "$TMP/pinhole" --pin-dir "$PIN" $cmd
done
expect_in err 'needs CAP_BPF.*missing: CAP_BPF.*try sudo' "non-root message names the missing capabilities"
expect 1 "unknown command -> 1" ph frobnicate
expect 1 "bad --mode -> 1" ph attach --policy "$POL" --mode turbo "$IFB"
expect 1 "attach without --policy -> 1" ph attach "$IFB"
expect 1 "option that does not apply -> 1" ph status --mode native
expect 1 "detach without interfaces or --all -> 1" ph detach
expect 1 "daemon without an instance -> 1" ph daemon
expect_in err 'no pinhole instance' "daemon says there is no instance"
expect 1 "status with no instance -> 1" ph status
expect_in err 'no pinhole instance' "status says there is no instance"
expect 1 "unknown interface -> 1" ph attach --policy "$POL" eth9
expect_in err '^pinhole: eth9: no such interface' "message names the interface"
check "unknown interface touched nothing (no pins)" no_pins "$PIN"
expect 1 "attach with a bad policy -> 1" ph attach --policy "$BAD" "$IFB"
expect_in err "$BAD:2:[0-9]+: error: " "attach prints file:line:col"
expect 1 "detach with nothing attached -> 1" ph detach "$IFB"

# ------------------------------------------------------------ native attach

echo "attach (native), status, stats, flows"
expect 0 "attach --mode native" ph attach --policy "$POL" --mode native "$IFB"
check "XDP attached in native mode" xdp_native "$IFB"
check "TC egress filter attached" tc_ours "$IFB"
check "maps and programs pinned" test -e "$PIN/state" -a -e "$PIN/prog_xdp" -a -e "$PIN/prog_tc"
expect 1 "double attach -> 1" ph attach --policy "$POL" "$IFB"
expect_in err "$IFB: already attached \(pin dir $PIN\); use reload or detach" "double attach message"
expect 1 "--flows differing from the running instance -> 1" \
	ph attach --policy "$POL" --flows 1024 lo

check "allowed port 8080 connects" connect 8080
if connect 8081; then ko "port 8081 (not in the policy) is dropped"; else ok "port 8081 (not in the policy) is dropped"; fi
in_a ping -c 1 -W 1 "$B4" >/dev/null 2>&1

expect 0 "status" ph status
expect_in out "$IFB .*native" "status lists the interface in native mode"
expect_in out "generation +1" "status shows generation 1"
expect 0 "status -j" ph status -j
cp "$TMP/out" "$TMP/status.json"
check "status -j is valid JSON" valid_json "$TMP/status.json"
check "status -j: layout, policy, interface" test \
	"$(json "$TMP/status.json" '(d["layout_version"] > 0, d["policy"], d["interfaces"][0]["name"], d["interfaces"][0]["xdp_mode"], d["interfaces"][0]["state"])')" \
	= "(True, '$POL', '$IFB', 'native', 'attached')"
expect 0 "stats" ph stats
expect_in out 'pass_policy' "stats shows pass_policy"
expect_in out 'drop_policy' "stats shows drop_policy"
expect 0 "stats -j" ph stats -j
cp "$TMP/out" "$TMP/stats.json"
check "stats -j is valid JSON" valid_json "$TMP/stats.json"
check "stats -j lists every reason with in/out counters" test \
	"$(json "$TMP/stats.json" 'all("in" in r and "out" in r for r in d["reasons"]) and len(d["reasons"]) > 20')" = True
check "stats -j counted the drop" test \
	"$(json "$TMP/stats.json" '[r["in"]["packets"] for r in d["reasons"] if r["name"] == "drop_policy"][0] > 0')" = True
connect 8080 4 &
HOLD=$!
sleep 0.5
expect 0 "flows" ph flows
expect_in out "$B4:8080 +$A4:[0-9]+ .* web" "flows shows the 8080 connection and its service"
expect 0 "flows -j" ph flows -j
cp "$TMP/out" "$TMP/flows.json"
check "flows -j is valid JSON" valid_json "$TMP/flows.json"
check "flows -j has the 8080 flow (IPv4 printed for v4-mapped)" test \
	"$(json "$TMP/flows.json" 'any(f["local_port"] == 8080 and f["local_addr"] == "'"$B4"'" and f["service"] == "web" for f in d["flows"])')" = True
wait "$HOLD"

# ------------------------------------------------------------------- reload

echo "reload"
expect 1 "reload with a bad policy -> 1" ph reload --policy "$BAD"
expect_in err "$BAD:2:[0-9]+: error: " "reload prints file:line:col"
check "bad reload keeps generation 1" test "$(gen_of)" = 1
if connect 8081; then ko "8081 still dropped after a bad reload"; else ok "8081 still dropped after a bad reload"; fi
expect 0 "reload with a good policy" ph reload --policy "$POL2"
check "good reload bumps the generation to 2" test "$(gen_of)" = 2
check "status -j shows the new policy" test "$(json "$TMP/st.json" 'd["policy"]')" = "$POL2"
check "8081 connects after reload" connect 8081
check "XDP still attached after reload (same program)" test \
	"$(json "$TMP/st.json" 'd["interfaces"][0]["xdp_prog_id"]')" = \
	"$(json "$TMP/status.json" 'd["interfaces"][0]["xdp_prog_id"]')"

# ------------------------------------------------------------------- detach

echo "detach"
# Remember frags' definition for the layout test below.
bpftool -j map show pinned "$PIN/frags" >"$TMP/frags.json"
expect 1 "detach of an interface not attached -> 1" ph detach lo
expect_in err 'lo: not attached' "message says not attached"
expect 0 "detach $IFB" ph detach "$IFB"
check "XDP removed (ip link show has no xdp)" no_xdp "$IFB"
check "TC filter removed (tc filter show egress is empty)" tc_empty "$IFB"
check "pins and pin dir removed" no_pins "$PIN"
expect 1 "detach again -> 1" ph detach "$IFB"

# -------------------------------------------------------- generic and auto

echo "modes: generic, auto, native on a device without native XDP"
expect 0 "attach --mode generic" ph attach --policy "$POL" --mode generic "$IFB"
check "XDP attached in generic mode" xdp_generic "$IFB"
expect 0 "status -j" ph status -j
check "status -j says generic" test "$(json "$TMP/out" 'd["interfaces"][0]["xdp_mode"]')" = generic
expect 0 "detach --all" ph detach --all
check "nothing left" no_xdp "$IFB"
check "pins removed" no_pins "$PIN"

expect 0 "attach --mode auto on veth and lo" ph attach --policy "$POL" --mode auto "$IFB" lo
check "veth got native XDP" xdp_native "$IFB"
check "lo fell back to generic" xdp_generic lo
expect_in err 'lo: native XDP unavailable .*generic' "fallback notice on stderr"
expect 0 "detach --all" ph detach --all
check "veth clean" no_xdp "$IFB"
check "lo clean" no_xdp lo
check "TC filters gone" tc_empty "$IFB"

expect 2 "--mode native on lo -> 2" ph attach --policy "$POL" --mode native "$IFB" lo
expect_in err 'lo: native XDP not supported by this driver; use --mode generic' "message says use --mode generic"
check "rollback: $IFB not left attached" no_xdp "$IFB"
check "rollback: TC filter removed" tc_empty "$IFB"
check "rollback: pins removed" no_pins "$PIN"

# --------------------------------------------------------- another program

echo "another XDP program on the interface"
expect 0 "attach through a second pin dir" ph2 attach --policy "$POL" "$IFB"
expect 1 "attach where another XDP program sits -> 1" ph attach --policy "$POL" "$IFB"
expect_in err "$IFB: already carries a pinhole XDP program" "message names the other program"
check "the refused attach left no pins" no_pins "$PIN"
check "the first instance is untouched" xdp_on "$IFB"
expect 0 "detach the second instance" ph2 detach --all
check "second pin dir removed" no_pins "$PIN2"

# ------------------------------------------------------ load-time options

echo "load-time options"
expect 0 "attach --flows 1024 --half-open 512 --failsafe-port 22 --fail-open" \
	ph attach --policy "$POL" --flows 1024 --half-open 512 --failsafe-port 22 --fail-open "$IFB"
expect 0 "status -j" ph status -j
check "status -j shows sizes and options" test \
	"$(json "$TMP/out" '(d["maps"]["flows"]["max_entries"], d["maps"]["half_open"]["max_entries"], d["failsafe_port"], d["fail_open"])')" \
	= "(1024, 512, 22, True)"
expect 1 "a contradicting option on the running instance -> 1" \
	ph attach --policy "$POL" --fail-closed lo
expect 0 "detach --all" ph detach --all

# ------------------------------------------------------------ pin layout

echo "versioned pin layout"
KEY=$(json "$TMP/frags.json" 'd["bytes_key"]')
VAL=$(json "$TMP/frags.json" 'd["bytes_value"]')
ENT=$(json "$TMP/frags.json" 'd["max_entries"]')
# A map made by hand where pinhole would pin one: never removed, reused
# or replaced.
mkdir -p "$PIN"
bpftool map create "$PIN/frags" type lru_hash key "$KEY" value "$VAL" \
	entries $((ENT + 7)) name frags || ko "bpftool map create"
expect 2 "attach over a pinned map pinhole did not make -> 2" ph attach --policy "$POL" "$IFB"
expect_in err 'frags was not made by pinhole' "message says it is not pinhole's"
check "the foreign map survives" test \
	"$(bpftool -j map show pinned "$PIN/frags" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_entries"])')" = $((ENT + 7))
check "nothing attached" no_xdp "$IFB"
rm -rf "$PIN"
# An instance of another layout (state.layout_version rewritten): stale
# (nothing attached) -> recreated; attached -> migrated, not refused.
set_layout() {
	bpftool -j map lookup pinned "$PIN/state" key 0 0 0 0 | python3 -c '
import json, sys
v = json.load(sys.stdin)["value"]
v[8:12] = ["0x%02x" % b for b in int(sys.argv[1]).to_bytes(4, "little")]
print(" ".join(v))' "$1" >"$TMP/state.hex"
	# shellcheck disable=SC2046 # one word per byte
	bpftool map update pinned "$PIN/state" key 0 0 0 0 value $(cat "$TMP/state.hex")
}
expect 0 "attach" ph attach --policy "$POL" "$IFB"
set_layout 1
ip -n "$NSB" link set dev "$IFB" xdp off
tc -n "$NSB" filter del dev "$IFB" egress
expect 2 "status of an instance of another layout -> 2" ph status
expect 2 "reload into an instance of another layout -> 2" ph reload --policy "$POL"
expect 0 "attach over a stale instance of another layout" ph attach --policy "$POL" "$IFB"
expect_in err 'layout version 1.*removing the old pins' "notice says the pins are recreated"
set_layout 1
expect 0 "attach while an instance of another layout is attached: migrated" ph attach --policy "$POL" lo
expect_in err 'upgraded from .*layout 1.*flows and pinholes migrated' "notice says it was upgraded in place"
check "$IFB still attached" xdp_on "$IFB"
check "lo attached" xdp_on lo
expect 0 "status after the migration" ph status -j
check "status: this layout again" test "$(json "$TMP/out" 'd["layout_version"]')" -gt 1
expect 0 "detach --all" ph detach --all
check "XDP removed" no_xdp "$IFB"
check "TC filter removed" tc_empty "$IFB"
check "pins removed" no_pins "$PIN"

# ---------------------------------------------------------------------- run

echo "run"
# No timeout wrapper here: $! must be pinhole itself (nsenter execs it).
nsenter --net="/run/netns/$NSB" "$BIN" --pin-dir "$PIN" run --policy "$POL" "$IFB" \
	>"$TMP/run.out" 2>"$TMP/run.err" &
RUN=$!
PIDS+=("$RUN")
for _ in $(seq 100); do
	grep -q ready "$TMP/run.out" && break
	kill -0 "$RUN" 2>/dev/null || break
	sleep 0.1
done
if grep -q 'ready' "$TMP/run.out"; then ok "run prints ready"; else
	ko "run prints ready"
	sed 's/^/        | /' "$TMP/run.out" "$TMP/run.err"
fi
check "run: XDP attached" xdp_on "$IFB"
check "run: enforcing (8080 connects)" connect 8080
expect 0 "reload while run is in the foreground" ph reload --policy "$POL2"
kill -TERM "$RUN"
wait "$RUN"
rc=$?
if [ "$rc" = 0 ]; then ok "run exits 0 on SIGTERM"; else ko "run exits 0 on SIGTERM (exit $rc)"; fi
check "run: XDP removed" no_xdp "$IFB"
check "run: TC filter removed" tc_empty "$IFB"
check "run: pins removed" no_pins "$PIN"

echo
if [ "$FAILS" = 0 ]; then
	echo "PASS: $CHECKS checks"
	exit 0
fi
echo "FAIL: $FAILS of $CHECKS checks failed"
exit 1
