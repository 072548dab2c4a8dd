#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# FTP with the tracker down, and counts under a SYN flood (issue 12,
# docs/tracker.md "Restarts and failures", docs/datapath.md "What reaches
# the ring"):
#   pr-cli (10.186.0.2, fd00:186::2), pr-evil (.3, ::3, the third host) and
#   pr-srv (.1, ::1) on a bridge in pr-sw; vsftpd in pr-srv, any passive
#   port; policies/ftp-server-tracked.policy (no passive range, active data
#   only through a pinhole).
#   1. attach + daemon; the daemon is killed with SIGKILL.
#   2. An IPv4 session sends 100,000 NOOPs, an IPv6 one 20,000; then
#      PASV, EPSV, PORT, EPRT (IPv4) and EPSV, EPRT (IPv6) downloads, each
#      checked by sha256, each pinhole tried first by the third host
#      (passive: it connects to the port; active: the server connects from
#      port 20 to the third host at that port): refused every time.
#   3. Another session fills the events ring buffer (long PORT lines) and
#      quits; the same transfers again, the ring full.
#   4. The daemon restarted: `sessions -j` lists exactly the two live
#      sessions (not the one that quit while its CLOSE could not be
#      reported); the transfers once more; no DATAPATH BUG in its log.
#   5. 1,000,000+ SYNs (tests/perf phperf gen, live frames from pr-sw) while
#      `status -j` runs: every run under 1 s, every count within its table.
# Own prefix (pr), subnet and pins: runs without the e2e lock. ~60 s.
# shellcheck disable=SC2317 # helpers run through ph_expect_ok and ph_check
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
PH_FTP_PASV_MIN=0 PH_FTP_PASV_MAX=0
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"

ph_require_root
ph_require_bins ip nsenter python3 vsftpd sha256sum ss
ph_require_pinhole
PH_NS_PREFIX=pr PH_NET4=10.186.0 PH_NET6=fd00:186:
PH_PIN=/sys/fs/bpf/ph-pr-ring
PH_EXTRA_HOSTS=evil
NOOPS4=${RING_NOOPS:-100000}
NOOPS6=${RING_NOOPS6:-20000}
ph_init ring
ph_netns_setup || ph_fatal "namespaces and the bridge"
EVIL_NS=${PH_HOST_NS[evil]} EVIL4=${PH_HOST4[evil]} EVIL6=${PH_HOST6[evil]}
RINGFTP=$PH_ROOT/tests/lib/ringftp.py

ph_section "vsftpd in $PH_NS_SRV"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
head -c 262144 /dev/urandom >"$PH_SRV_DIR/ftp/file"
chmod 644 "$PH_SRV_DIR/ftp/file"
WANT=$(sha256sum <"$PH_SRV_DIR/ftp/file" | cut -d' ' -f1)
ph_start_vsftpd || ph_fatal "start vsftpd"
ph_pass "vsftpd on 21 (IPv4 and IPv6), any passive port, active from port 20"

POLICY=$PH_ROOT/policies/ftp-server-tracked.policy


counters() {
	local k line="$1:"
	for k in events events_lost desyncs pinholes quiet syncs unreported; do
		line+=" $k $(ph_sessions_get "datapath.$k")"
	done
	line+="; ring $(ph_pinhole status -j 2>/dev/null | python3 -c '
import json, sys
e = json.load(sys.stdin)["maps"].get("events", {})
print("%s of %s bytes" % (e.get("bytes_used", "?"), e.get("bytes", "?")))' 2>/dev/null)"
	ph_say "$line"
}

start_daemon() {
	DLOG=$PH_TMP/daemon.$1.log
	nsenter --net="/run/netns/$PH_NS_SRV" "$PH_BIN" --pin-dir "$PH_PIN" daemon \
		>"$DLOG" 2>&1 &
	DPID=$!
	ph_on_exit "kill -9 $DPID 2>/dev/null"
	for _ in $(seq 50); do
		grep -q ready "$DLOG" && return 0
		sleep 0.1
	done
	return 1
}

# client NAME HOST NOOPS MODES: a session in the background, its files in
# $PH_TMP/NAME (see tests/lib/ringftp.py).
client() {
	local name=$1 host=$2 noops=$3 modes=$4 third=$EVIL4
	case $host in *:*) third=$EVIL6 ;; esac
	mkdir -p "$PH_TMP/$name"
	ph_cli python3 "$RINGFTP" session --host "$host" --noops "$noops" \
		--modes "$modes" --rounds 3 --sha "$WANT" --dir "$PH_TMP/$name" \
		--third-ns "$EVIL_NS" --third-addr "$third" --srv-ns "$PH_NS_SRV" \
		>"$PH_TMP/$name/out" 2>&1 &
	eval "PID_$name=\$!"
	ph_on_exit "touch '$PH_TMP/$name/quit'"
}

# round_ok NAME N: round N of NAME finished and every transfer worked.
round_ok() {
	local f=$PH_TMP/$1/done.$2 i
	for i in $(seq 1200); do
		[ -e "$f" ] && break
		kill -0 "$(eval echo "\$PID_$1")" 2>/dev/null || break
		sleep 0.1
	done
	grep -E "^(round $2 |noops|error)" "$PH_TMP/$1/out"
	[ "$(cat "$f" 2>/dev/null)" = ok ]
}

# ---------------------------------------------------------------------------
ph_section "attach + daemon, then the daemon is killed (SIGKILL)"
ph_expect_ok "attach ftp-server-tracked" \
	ph_pinhole attach --policy "$POLICY" "$PH_IF_SRV" || ph_fatal "attach"
ph_on_exit ph_pinhole_detach
start_daemon 1 || ph_fatal "daemon did not print 'ready'"
kill -9 "$DPID"
wait "$DPID" 2>/dev/null
ph_check "no tracker runs" sh -c "nsenter --net=/run/netns/$PH_NS_SRV '$PH_BIN' --pin-dir '$PH_PIN' sessions | grep -q 'tracker .*not running'"
counters "before"

ph_section "without a tracker: $NOOPS4 NOOPs (IPv4), $NOOPS6 (IPv6), then every transfer"
T0=$SECONDS
client v4 "$PH_SRV4" "$NOOPS4" pasv,epsv,port,eprt
client v6 "$PH_SRV6" "$NOOPS6" epsv,eprt
ph_expect_ok "IPv4: PASV, EPSV, PORT, EPRT after $NOOPS4 NOOPs, the third host refused" round_ok v4 1
ph_expect_ok "IPv6: EPSV, EPRT after $NOOPS6 NOOPs, the third host refused" round_ok v6 1
ph_say "NOOPs and transfers took $((SECONDS - T0)) s"
counters "after the NOOPs"
ph_check "no session desynced" [ "$(ph_sessions_get datapath.desyncs)" = 0 ]

ph_section "the ring buffer full (no tracker reads it)"
mkdir -p "$PH_TMP/fill"
ph_expect_ok "a session fills the ring with long PORT lines, then quits" \
	ph_cli python3 "$RINGFTP" fill --host "$PH_SRV4" --lines 3000 --len 2000
counters "ring full"
ph_check "records were lost (datapath.events_lost > 0)" \
	[ "$(ph_sessions_get datapath.events_lost)" -gt 0 ]
LOST=$(ph_sessions_get datapath.events_lost) PINS=$(ph_sessions_get datapath.pinholes)
touch "$PH_TMP/v4/go.2" "$PH_TMP/v6/go.2"
ph_expect_ok "IPv4: every transfer again, the ring full" round_ok v4 2
ph_expect_ok "IPv6: every transfer again, the ring full" round_ok v6 2
counters "transfers with the ring full"
ph_check "the full ring refused more reports ($LOST -> $(ph_sessions_get datapath.events_lost))" \
	[ "$(ph_sessions_get datapath.events_lost)" -gt "$LOST" ]
ph_check "... and the datapath still installed all 6 pinholes ($PINS -> $(ph_sessions_get datapath.pinholes))" \
	[ "$(ph_sessions_get datapath.pinholes)" -ge $((PINS + 6)) ]
ph_check "no session desynced" [ "$(ph_sessions_get datapath.desyncs)" = 0 ]

ph_section "the daemon restarted"
start_daemon 2 || ph_fatal "daemon did not print 'ready'"
CTRL4=$(cat "$PH_TMP/v4/ctrl") CTRL6=$(cat "$PH_TMP/v6/ctrl")
# live_sessions: exactly the two clients' control connections, plain.
live_sessions() {
	ph_pinhole sessions -j | python3 -c '
import json, sys
v = json.load(sys.stdin)
got = sorted((s["client_port"], s["state"]) for s in v["sessions"] if s["state"] != "closed")
want = sorted([(int(sys.argv[1]), "plain"), (int(sys.argv[2]), "plain")])
print("sessions:", got, "want:", want, "adopted:", v["totals"]["adopted"])
sys.exit(0 if got == want else 1)' "$CTRL4" "$CTRL6"
}
wait_live() {
	local i
	for i in $(seq 60); do
		live_sessions >/dev/null 2>&1 && break
		sleep 0.5
	done
	live_sessions
}
ph_expect_ok "sessions -j lists the two live sessions (ports $CTRL4, $CTRL6), not the one that quit" wait_live
ph_check "log: the sessions were taken over from the datapath" \
	grep -q "2 live control connections taken over" "$DLOG"
touch "$PH_TMP/v4/go.3" "$PH_TMP/v6/go.3"
ph_expect_ok "IPv4: every transfer with the tracker back" round_ok v4 3
ph_expect_ok "IPv6: every transfer with the tracker back" round_ok v6 3
ph_check "the tracker logged the datapath's pinholes (open ... installed by the datapath first)" \
	grep -q "installed by the datapath first" "$DLOG"
no_bug() { ! grep 'DATAPATH BUG' "$DLOG"; }
ph_check "log: no datapath disagreement" no_bug
counters "tracker back"
ph_say "tracker: $(ph_pinhole sessions -j | python3 -c '
import json, sys
t = json.load(sys.stdin)["totals"]
print(" ".join("%s %s" % (k, t[k]) for k in ("events", "events_lost", "syncs", "quiet_bytes", "adopted", "kept", "opened", "opened_bpf", "used")))')"
touch "$PH_TMP/v4/quit" "$PH_TMP/v6/quit"
wait "$PID_v4" "$PID_v6" 2>/dev/null

# ---------------------------------------------------------------------------
ph_section "status under a SYN flood"
PHPERF=$PH_ROOT/tests/perf/.output/phperf
if [ ! -x "$PHPERF" ]; then
	make -s -C "$PH_ROOT/tests/perf" .output/phperf >"$PH_TMP/phperf.build" 2>&1 ||
		{ cat "$PH_TMP/phperf.build"; ph_fatal "cannot build tests/perf phperf (the SYN generator)"; }
fi
SW_IF=${PH_NS_PREFIX}-s1 # the switch's end of the server's veth
SRV_MAC=$(ip -n "$PH_NS_SRV" -br link show dev "$PH_IF_SRV" | awk '{ print $3 }')
SW_MAC=$(ip -n "$PH_NS_SW" -br link show dev "$SW_IF" | awk '{ print $3 }')
ph_in "$PH_NS_SW" "$PHPERF" gen --dev "$SW_IF" --src-mac "$SW_MAC" \
	--dst-mac "$SRV_MAC" --dst-ip "$PH_SRV4" --dport 21 --seconds 6 \
	>"$PH_TMP/gen.json" 2>&1 &
GEN=$!
ph_on_exit "kill $GEN 2>/dev/null"
sleep 1
# status_under_flood: 5 runs of `status -j` while the flood lasts; each
# under 1 s, every map's count within its table.
status_under_flood() {
	local i t0 ms rc=0
	for i in 1 2 3 4 5; do
		t0=$(date +%s%N)
		ph_pinhole status -j >"$PH_TMP/status.$i.json" 2>&1 || rc=1
		ms=$((($(date +%s%N) - t0) / 1000000))
		python3 - "$PH_TMP/status.$i.json" "$ms" "$PH_TMP/status.times" <<-'EOF' || rc=1
			import json, sys
			m = json.load(open(sys.argv[1]))["maps"]
			ms = int(sys.argv[2])
			parts = ["%s %d / %d%s" % (k, v["entries"], v["max_entries"],
			         " (partial)" if v.get("partial") else "")
			         for k, v in m.items() if "max_entries" in v]
			bad = [k for k, v in m.items()
			       if "max_entries" in v and v["entries"] > v["max_entries"]]
			print("status -j in %d ms: %s" % (ms, ", ".join(parts)))
			open(sys.argv[3], "a").write("status -j in %d ms: %s\n" % (ms, ", ".join(parts)))
			sys.exit(1 if bad or ms >= 1000 else 0)
		EOF
		sleep 0.3
	done
	return $rc
}
ph_expect_ok "status -j during the flood: every run < 1 s, counts within the tables" status_under_flood
while read -r l; do ph_say "$l"; done <"$PH_TMP/status.times"
wait "$GEN"
FRAMES=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["frames"])' "$PH_TMP/gen.json" 2>/dev/null || echo 0)
ph_say "generator: $(cat "$PH_TMP/gen.json")"
ph_check "the flood had at least 1,000,000 SYNs ($FRAMES)" [ "$FRAMES" -ge 1000000 ]
ph_check "the flood reached half_open (SYNs admitted to port 21)" python3 -c '
import json, sys
sys.exit(0 if json.load(open(sys.argv[1]))["maps"]["half_open"]["entries"] > 0 else 1)' "$PH_TMP/status.3.json"
# within_tables: `status` (text) prints "  half_open  N / M": N <= M.
within_tables() {
	ph_pinhole status | awk '
		$3 == "/" { print; if ($2 + 0 > $4 + 0) bad = 1; n++ }
		END { exit (bad || !n) }'
}
ph_expect_ok "status (text) right after: counts within the tables" within_tables

ph_finish
