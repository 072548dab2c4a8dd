#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The FTP session tracker end to end (docs/tracker.md):
#   pht-cli (10.196.0.2, fd00:196::2) --veth--> pht-srv (10.196.0.1, fd00:196::1)
#   vsftpd in pht-srv, passive ports chosen freely by vsftpd (>= 1024).
# Policy: default in drop, only FTP control (21) with ftp-track, NO passive
# range. Then:
#   - `pinhole run`: passive downloads (PASV/IPv4, EPSV/IPv6) with matching
#     checksums; `sessions -j` valid JSON with opened/used >= 2 and no
#     pinhole left; the log has open and used lines; a second tracker on
#     the same pin dir is refused; SIGTERM exits 0 and detaches.
#   - `attach` + `pinhole daemon`: the same download works; `daemon` exits
#     0 on SIGTERM, and 1 when there is no instance.
# Skips (77) while the datapath reports no FTP control events.
# shellcheck disable=SC2317 # helpers run through ph_expect_ok and ph_check
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
# No static passive range anywhere: vsftpd picks any port >= 1024.
PH_FTP_PASV_MIN=0 PH_FTP_PASV_MAX=0
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"

ph_require_root
ph_require_bins ip nsenter curl python3 vsftpd sha256sum ss
ph_require_pinhole
PH_NS_PREFIX=pht PH_NET4=10.196.0 PH_NET6=fd00:196:
PH_PIN=/sys/fs/bpf/ph-trk-e2e
ph_init tracker
ph_netns_setup || ph_fatal "namespaces and veth"

ph_section "vsftpd in $PH_NS_SRV"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
head -c 2097152 /dev/urandom >"$PH_SRV_DIR/ftp/file"
chmod 644 "$PH_SRV_DIR/ftp/file"
WANT=$(sha256sum <"$PH_SRV_DIR/ftp/file" | cut -d' ' -f1)
ph_start_vsftpd || ph_fatal "start vsftpd"
ph_pass "vsftpd on 21 (IPv4 and IPv6), any passive port"

POLICY=$PH_TMP/tracker.policy
cat >"$POLICY" <<'EOF'
# test_tracker.sh: FTP control only; data connections need a pinhole.
default in drop
default out allow
service ftp in tcp 21 from any ftp-track
EOF


# wait_for PATH MIN: until ph_sessions_get PATH >= MIN (3 s: the tracker
# publishes every 500 ms).
wait_for() {
	local i
	for i in $(seq 30); do
		[ "$(ph_sessions_get "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# ftp_dl HOST [CURL-OPTS]: download /file into $PH_TMP/dl, check sha256.
ftp_dl() {
	local host=$1
	shift
	rm -f "$PH_TMP/dl"
	ph_cli curl -sS --max-time 10 "$@" -o "$PH_TMP/dl" \
		"ftp://$(ph_urlhost "$host")/file" || return 1
	[ "$(sha256sum <"$PH_TMP/dl" | cut -d' ' -f1)" = "$WANT" ]
}

json_valid() {
	ph_pinhole sessions -j | python3 -c 'import json, sys; json.load(sys.stdin)'
}

# exit1_saying TEXT ARGS...: pinhole ARGS exits 1 and says TEXT.
exit1_saying() {
	local want=$1 out rc
	shift
	out=$(ph_pinhole "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	[ "$rc" = 1 ] && grep -q "$want" <<<"$out"
}

pinholes_gone() {
	local i
	for i in $(seq 30); do
		[ "$(ph_sessions_get pinholes)" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------------------
ph_section "pinhole run (enforcement + tracker)"
ph_pinhole_run --policy "$POLICY" "$PH_IF_SRV" || ph_fatal "pinhole run"
ph_on_exit ph_pinhole_detach
RUNLOG=$PH_TMP/run.log
[ -e "$PH_PIN/events" ] || ph_skip "the datapath has no events ring buffer yet"
# A control connection alone: does the datapath report it?
ph_ftp_control "$PH_NS_CLI" "$PH_SRV4" >/dev/null 2>&1
wait_for totals.sessions 1 ||
	ph_skip "the datapath reports no FTP control connection (no PH_EV_CTRL_OPEN within 3 s)"
ph_pass "the datapath reports control connections (sessions -j counts them)"
ph_check "run printed 'ready'" grep -q ready "$RUNLOG"
ph_expect_ok "a second tracker on $PH_PIN is refused (exit 1, 'already runs')" \
	exit1_saying 'already runs' daemon

ph_expect_ok "PASV download over IPv4 (sha256 matches)" \
	ftp_dl "$PH_SRV4" --disable-epsv
ph_expect_ok "EPSV download over IPv6 (sha256 matches)" \
	ftp_dl "$PH_SRV6"
ph_check "sessions -j: totals.opened >= 2" wait_for totals.opened 2
ph_check "sessions -j: totals.used >= 2" wait_for totals.used 2
ph_check "sessions -j: datapath.sessions >= 2 (in-kernel parser counters)" \
	wait_for datapath.sessions 2
ph_check "sessions -j: datapath.pinholes >= 2 (installed before the 227/229 left)" \
	wait_for datapath.pinholes 2
ph_check "sessions -j: datapath.events_lost = 0" [ "$(ph_sessions_get datapath.events_lost)" = 0 ]
ph_expect_ok "sessions -j is valid JSON" json_valid
ph_check "no pinhole left after the transfers" pinholes_gone
ph_expect_ok "sessions (text) says the tracker runs" \
	sh -c "nsenter --net=/run/netns/$PH_NS_SRV '$PH_BIN' --pin-dir '$PH_PIN' sessions | grep -q 'tracker .*running'"
ph_check "log: an open line (tcp $PH_SRV4:port <- $PH_CLI4:*, via PASV/227)" \
	grep -Eq "ftp: open tcp $PH_SRV4:[0-9]+ <- $PH_CLI4:\* session [0-9a-f]{8} via PASV/227 ttl [0-9]+s" "$RUNLOG"
ph_check "log: an open line for IPv6 (via EPSV/229)" \
	grep -Eq "ftp: open tcp \[$PH_SRV6\]:[0-9]+ <- \[$PH_CLI6\]:\* session [0-9a-f]{8} via EPSV/229" "$RUNLOG"
ph_check "log: used lines" grep -Eq "ftp: used tcp $PH_SRV4:[0-9]+ <- $PH_CLI4:\*" "$RUNLOG"
ph_check "log: no datapath disagreement" sh -c "! grep -q 'DATAPATH BUG' '$RUNLOG'"
ph_expect_fail "a data port without negotiation stays closed" \
	ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 21000

kill -TERM "$PH_RUN_PID"
wait "$PH_RUN_PID"
rc=$?
PH_RUN_PID=
ph_check "run exits 0 on SIGTERM (exit $rc)" [ "$rc" = 0 ]
ph_check "run detached: pins removed" [ ! -e "$PH_PIN/events" ]

# ---------------------------------------------------------------------------
ph_section "attach + pinhole daemon"
ph_expect_ok "daemon without an instance: exit 1, 'run attach first'" \
	exit1_saying 'run attach first' daemon
ph_expect_ok "attach" ph_pinhole attach --policy "$POLICY" "$PH_IF_SRV" ||
	ph_fatal "attach"
DLOG=$PH_TMP/daemon.log
nsenter --net="/run/netns/$PH_NS_SRV" "$PH_BIN" --pin-dir "$PH_PIN" daemon \
	>"$DLOG" 2>&1 &
DPID=$!
ph_on_exit "kill -TERM $DPID"
for _ in $(seq 50); do
	grep -q ready "$DLOG" && break
	sleep 0.1
done
ph_check "daemon prints 'ready'" grep -q ready "$DLOG"
ph_expect_ok "status still works while the daemon runs" ph_pinhole status
ph_expect_ok "PASV download over IPv4 with the daemon (sha256 matches)" \
	ftp_dl "$PH_SRV4" --disable-epsv
ph_check "daemon log: open and used" sh -c \
	"grep -q 'ftp: open tcp' '$DLOG' && grep -q 'ftp: used tcp' '$DLOG'"
kill -TERM "$DPID"
wait "$DPID"
rc=$?
ph_check "daemon exits 0 on SIGTERM (exit $rc)" [ "$rc" = 0 ]
ph_expect_ok "detach --all" ph_pinhole detach --all

ph_finish
