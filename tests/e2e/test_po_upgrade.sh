#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Upgrade in place (issue 9, part 3). Three builds of this tree:
#   A  the tree's own ./pinhole (runs first)
#   B  the same sources built with VERSION=po-up-b in a copy of the tree
#      (another build id; same pin layout: maps shared, programs replaced)
#   C  a copy whose pin layout differs (PH_LAYOUT_VERSION + 1 and a field
#      appended to struct ph_flow): its programs differ, and upgrading to it
#      migrates the flows into new maps
# Throughout A -> B -> C: a probe to a denied port (UDP 1 ms apart, TCP
# connects) must never be answered, an established stream keeps flowing,
# an idle established connection works afterwards (its flow was kept), an
# FTP transfer started before finishes; the `run` of the old build exits 3
# without detaching and a `run` of the new build adopts the interface.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/ftp.sh"

ph_require_root
ph_require_pinhole
ph_require_bins "${PH_FTP_BINS[@]}" make clang bpftool

export PH_NS_PREFIX=${PH_NS_PREFIX:-po} PH_NET4=${PH_NET4:-10.183.0} PH_NET6=${PH_NET6:-fd00:183:}
PH_PIN=/sys/fs/bpf/ph-po-upgrade
ph_init po-upgrade
ph_netns_setup || ph_fatal "network namespaces"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ph_start_vsftpd || ph_fatal "vsftpd"
ftp_make_files 1 || ph_fatal "files"
ph_on_exit ph_pinhole_detach

# ------------------------------------------------------------- the builds
ph_section "builds B (another version) and C (another pin layout)"
# build_copy DIR VERSION [PATCH]: the sources (and the build's stack check)
# copied with their times, and, without PATCH, this tree's objects too: make
# then rebuilds only what VERSION changes (version.h: loader.o, main.o).
# PATCH (python3 on pinhole.h) makes everything rebuild, as it must.
build_copy() {
	local dir=$1 version=$2 o
	mkdir -p "$dir/tests/bpf" "$dir/.output/user"
	cp -a "$PH_ROOT/Makefile" "$PH_ROOT/bpf" "$PH_ROOT/include" "$PH_ROOT/user" "$dir/"
	cp -a "$PH_ROOT/tests/bpf/stack_depth.py" "$dir/tests/bpf/"
	if [ -z "${3:-}" ]; then
		for o in "$PH_ROOT"/.output/*.bpf.o "$PH_ROOT"/.output/*.skel.h \
			"$PH_ROOT"/.output/version.h "$PH_ROOT"/.output/user/*.o; do
			[ -e "$o" ] || continue
			cp -a "$o" "$dir/.output/${o#"$PH_ROOT"/.output/}"
		done
	fi
	if [ -n "${3:-}" ]; then
		python3 -c "$3" "$dir/include/pinhole/pinhole.h" || return 1
	fi
	make -s -C "$dir" -j2 VERSION="$version" pinhole >"$dir/build.log" 2>&1 ||
		{ tail -n 20 "$dir/build.log"; return 1; }
}
LAYOUT_PATCH='
import re, sys
p = sys.argv[1]; s = open(p).read()
s, n = re.subn(r"#define PH_LAYOUT_VERSION (\d+)", lambda m: "#define PH_LAYOUT_VERSION %d" % (int(m.group(1)) + 1), s)
assert n == 1, "PH_LAYOUT_VERSION not found"
a = s.index("struct ph_flow {")
b = s.index("\n};", a)
s = s[:b] + "\n\t__u64 test_appended; /* test_po_upgrade: a layout change */" + s[b:]
open(p, "w").write(s)'
ph_expect_ok "build B" build_copy "$PH_TMP/b" po-up-b
ph_expect_ok "build C (layout + 1, struct ph_flow grown)" build_copy "$PH_TMP/c" po-up-c "$LAYOUT_PATCH"
A=$PH_BIN B=$PH_TMP/b/pinhole C=$PH_TMP/c/pinhole
[ -x "$B" ] && [ -x "$C" ] || ph_fatal "builds"
layout() { "$1" --version | awk '/^pin layout/ { print $3 }'; }
build() { "$1" --version | awk '/^build/ { $1 = ""; sub(/^ /, ""); print }'; }
ph_check "B has another build id than A" test "$(build "$A")" != "$(build "$B")"
ph_check "C has another pin layout ($(layout "$A") -> $(layout "$C"))" \
	test "$(layout "$C")" = $(($(layout "$A") + 1))

# ----------------------------------------------------------- the traffic
POL=$PH_TMP/up.policy
{
	ftp_policy srv 30s
	echo "service stream in tcp 5001 from any"
} >"$POL"

PY_SRV='
import socket, sys, threading, time
def stream(c):
    # Sends until the peer closes; a 4 KiB chunk every ms or so.
    buf = b"x" * 4096
    try:
        while True:
            c.sendall(buf); time.sleep(0.001)
    except OSError:
        pass
def echo(c):
    try:
        while True:
            d = c.recv(4096)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
def serve(port, fn):
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("::", port)); s.listen(16)
    while True:
        c, _ = s.accept(); threading.Thread(target=fn, args=(c,), daemon=True).start()
def udp(port):
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", port))
    while True:
        d, a = u.recvfrom(2048); u.sendto(d, a)
threading.Thread(target=serve, args=(5001, lambda c: stream(c) if c.recv(1) == b"s" else echo(c)), daemon=True).start()
threading.Thread(target=serve, args=(5002, echo), daemon=True).start()
threading.Thread(target=udp, args=(5003,), daemon=True).start()
time.sleep(3600)'

# Client: a stream from 5001 (gaps and bytes recorded), an idle echo
# connection on 5001, UDP probes to the denied 5003 and TCP connects to
# the denied 5002, until $1/stop exists. Results in $1/result.
PY_CLI='
import os, socket, sys, threading, time
host, wd = sys.argv[1], sys.argv[2]
res = {"bytes": 0, "maxgap": 0.0, "udp_sent": 0, "udp_answered": 0, "tcp_tries": 0, "tcp_ok": 0, "err": ""}
stop = lambda: os.path.exists(os.path.join(wd, "stop"))
def stream():
    try:
        s = socket.create_connection((host, 5001), timeout=5); s.sendall(b"s")
        s.settimeout(10); last = time.time()
        while not stop():
            d = s.recv(65536)
            if not d: res["err"] = "stream closed"; break
            now = time.time(); res["maxgap"] = max(res["maxgap"], now - last); last = now
            res["bytes"] += len(d)
        s.close()
    except OSError as e:
        res["err"] = "stream: %s" % e
def probe_udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.setblocking(False)
    while not stop():
        u.sendto(b"probe", (host, 5003)); res["udp_sent"] += 1
        try:
            while True:
                u.recv(64); res["udp_answered"] += 1
        except BlockingIOError:
            pass
        time.sleep(0.001)
def probe_tcp():
    while not stop():
        res["tcp_tries"] += 1
        try:
            socket.create_connection((host, 5002), timeout=0.2).close(); res["tcp_ok"] += 1
        except OSError:
            pass
idle = socket.create_connection((host, 5001), timeout=5); idle.sendall(b"e")
ts = [threading.Thread(target=f) for f in (stream, probe_udp, probe_tcp)]
for t in ts: t.start()
open(os.path.join(wd, "started"), "w").close()
for t in ts: t.join()
try:
    idle.settimeout(3); idle.sendall(b"still-there"); got = b""
    while len(got) < 11: got += idle.recv(64)
    res["idle"] = got.decode()
except OSError as e:
    res["idle"] = "error: %s" % e
open(os.path.join(wd, "result"), "w").write(repr(res))'

nsenter --net="/run/netns/$PH_NS_SRV" python3 -c "$PY_SRV" >"$PH_TMP/srv.log" 2>&1 &
PH_SERVER_PIDS+=($!)
ph_wait_listen "$PH_NS_SRV" 5001 || ph_fatal "servers"

# start_run BIN LOG: `run` of one build (PH_BIN), ready.
start_run() {
	local bin=$1
	PH_RUN_LOG=$2 PH_BIN=$bin ph_pinhole_run --policy "$POL" "$PH_IF_SRV"
}
# run_exit PID: wait (5 s at most) for a run to end; RUN_RC its exit code.
run_exit() {
	local pid=$1 i
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	wait "$pid" 2>/dev/null
	RUN_RC=$?
}
# attach_kind [BIN]: how XDP is attached (status -j): dispatcher or direct.
attach_kind() {
	PH_BIN=${1:-$PH_BIN} ph_pinhole status -j |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["interfaces"][0]["xdp_attach"])'
}
xdp_id() {
	ph_srv ip -j -d link show dev "$PH_IF_SRV" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[0].get("xdp", {}).get("prog", {}).get("id", 0))'
}

ph_section "A: run, traffic"
start_run "$A" "$PH_TMP/run-a.log" || ph_fatal "run (A)"
RUN_A=$PH_RUN_PID
ftp_curl "$PH_NS_CLI" "$PH_SRV4" big.bin "$PH_TMP/big.bin" --limit-rate 12M &
FTP=$!
W=$PH_TMP/cli
mkdir -p "$W"
nsenter --net="/run/netns/$PH_NS_CLI" python3 -c "$PY_CLI" "$PH_SRV4" "$W" >"$PH_TMP/cli.log" 2>&1 &
CLI=$!
for _ in $(seq 50); do [ -e "$W/started" ] && break; sleep 0.1; done
sleep 1
flows_a=$(ph_pinhole flows -j | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["flows"]))')
ph_check "A: the stream, the idle connection and FTP are in flows ($flows_a)" test "$flows_a" -ge 4
KIND=$(attach_kind)
ph_say "  - XDP attached: $KIND (libxdp's dispatcher where the kernel has extension programs)"
# tests/vm/guest.sh sets PH_NEED_DISPATCHER where the kernel has them: the
# upgrades below must then run inside the dispatcher.
[ "${PH_NEED_DISPATCHER:-0}" = 1 ] &&
	ph_check "A: attached in libxdp's dispatcher (PH_NEED_DISPATCHER=1)" test "$KIND" = dispatcher

# upgrade_to BIN TAG WORDS OLD_RUN: `pinhole upgrade` with BIN, which says
# WORDS; the XDP program changes; the old build's run exits 3 without
# detaching.
upgrade_to() {
	local bin=$1 tag=$2 words=$3 old=$4 before after
	before=$(xdp_id)
	PH_BIN=$bin ph_pinhole upgrade >"$PH_TMP/up-$tag.out" 2>&1
	ph_check "pinhole upgrade ($tag) exits 0" test $? = 0
	sed 's/^/      | /' "$PH_TMP/up-$tag.out"
	ph_check "upgrade says $words" grep -q "$words" "$PH_TMP/up-$tag.out"
	after=$(xdp_id)
	ph_check "XDP program replaced ($before -> $after)" test "$after" != "$before" -a "$after" != 0
	run_exit "$old"
	ph_check "the old build's run exits 3 without detaching (exit $RUN_RC)" test "$RUN_RC" = 3
	ph_check "the interface still carries pinhole after it exited" test "$(xdp_id)" = "$after"
	ph_check "still attached the same way ($KIND)" test "$(attach_kind "$bin")" = "$KIND"
	PH_RUN_PID=
}

ph_section "A -> B: same layout, programs replaced, maps kept"
upgrade_to "$B" B 'flows kept' "$RUN_A"
ph_check "run (A) says why" grep -q 'upgraded in place to po-up-b' "$PH_TMP/run-a.log"
start_run "$B" "$PH_TMP/run-b.log"
ph_check "run (B) starts and adopts the interface" grep -q "adopted $PH_IF_SRV" "$PH_TMP/run-b.log"
RUN_B=$PH_RUN_PID
ph_check "status shows build B" bash -c "nsenter --net=/run/netns/$PH_NS_SRV '$B' --pin-dir '$PH_PIN' status | grep -q 'build *po-up-b'"
sleep 1

ph_section "B -> C: another layout, flows migrated"
upgrade_to "$C" C 'flows migrated' "$RUN_B"
PH_RUN_PID=
start_run "$C" "$PH_TMP/run-c.log"
ph_check "run (C) adopts the interface" grep -q "adopted $PH_IF_SRV" "$PH_TMP/run-c.log"
flows_c=$(PH_BIN=$C ph_pinhole flows -j | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["flows"]))')
ph_check "C: the flows are in the new table ($flows_a before, $flows_c now)" test "$flows_c" -ge "$flows_a"
ph_check "no staging pins left ($PH_PIN/upgrading)" test ! -e "$PH_PIN/upgrading"
ph_check "C: status shows layout $(layout "$C")" bash -c \
	"nsenter --net=/run/netns/$PH_NS_SRV '$C' --pin-dir '$PH_PIN' status | grep -q 'layout v$(layout "$C")'"
sleep 1

ph_section "the traffic across both upgrades"
touch "$W/stop"
wait "$CLI"
wait "$FTP"
ph_check "FTP transfer started under A finished intact" \
	test "$(sha256sum <"$PH_TMP/big.bin" | cut -d' ' -f1)" = "$(ftp_sum big.bin)"
R=$(cat "$W/result" 2>/dev/null)
echo "      | client: $R"
res() { python3 -c "import ast,sys; print(ast.literal_eval(sys.argv[1])['$1'])" "$R"; }
ph_check "the stream never broke ($(res err))" test -z "$(res err)"
ph_check "the stream kept flowing (longest gap $(res maxgap) s < 2 s)" \
	python3 -c "import sys; sys.exit(not float('$(res maxgap)') < 2)"
ph_check "the idle connection works after the upgrades (its flow was kept)" test "$(res idle)" = still-there
ph_check "UDP probes to the denied port: $(res udp_sent) sent, none answered" \
	test "$(res udp_answered)" = 0 -a "$(res udp_sent)" -gt 1000
ph_check "TCP connects to the denied port: $(res tcp_tries) tried, none accepted" \
	test "$(res tcp_ok)" = 0 -a "$(res tcp_tries)" -gt 5
ph_expect_ok "a new FTP transfer under C works" \
	ftp_curl "$PH_NS_CLI" "$PH_SRV6" mid.bin "$PH_TMP/mid.bin" -P -
PH_BIN=$C ph_pinhole_run_stop
ph_check "run (C) detached on SIGTERM" bash -c "! ip -n $PH_NS_SRV -d link show dev $PH_IF_SRV | grep -q prog/xdp"
ph_check "pins removed" test ! -e "$PH_PIN"

ph_finish
