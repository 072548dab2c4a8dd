#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Crash, restart, reload (issue 9, part 3) with real FTP (vsftpd + curl):
#   - kill -9 of `pinhole run` during passive and active transfers: the
#     interface stays enforced, the transfers finish intact, a new `run`
#     adopts the interface (no "already attached") and new transfers work;
#   - the same with `attach` + `pinhole daemon`, daemon killed and started
#     again;
#   - 100 reloads (50 SIGHUP of run, 50 `pinhole reload`) during transfers:
#     every transfer intact, no drop counted, generation +100.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/ftp.sh"

ph_require_root
ph_require_pinhole
ph_require_bins "${PH_FTP_BINS[@]}"

export PH_NS_PREFIX=${PH_NS_PREFIX:-po} PH_NET4=${PH_NET4:-10.183.0} PH_NET6=${PH_NET6:-fd00:183:}
PH_PIN=/sys/fs/bpf/ph-po-crash
ph_init po-crash
ph_netns_setup || ph_fatal "network namespaces"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
ph_start_vsftpd || ph_fatal "vsftpd"
ftp_make_files 10 || ph_fatal "files"
ph_on_exit ph_pinhole_detach
POL=$PH_TMP/ftp.policy
ftp_policy srv 30s >"$POL"
OUT=$PH_TMP/dl
mkdir -p "$OUT"

# start_xfers TAG: a passive (v4) and an active (v6) download of big.bin,
# rate-limited so that they run for a few seconds. Sets XFER_PIDS.
start_xfers() {
	local tag=$1
	XFER_PIDS=()
	ftp_curl "$PH_NS_CLI" "$PH_SRV4" big.bin "$OUT/$tag-pasv.bin" --limit-rate 16M &
	XFER_PIDS+=($!)
	ftp_curl "$PH_NS_CLI" "$PH_SRV6" big.bin "$OUT/$tag-port.bin" --limit-rate 16M -P - &
	XFER_PIDS+=($!)
}

# check_xfers TAG: both finished and their content is intact.
check_xfers() {
	local tag=$1 pid rc=0 want
	for pid in "${XFER_PIDS[@]}"; do
		wait "$pid" || rc=1
	done
	want=$(ftp_sum big.bin)
	ph_check "$tag: running transfers finished (curl exit 0)" test $rc = 0
	ph_check "$tag: passive transfer intact (64 MiB, sha256)" \
		test "$(sha256sum <"$OUT/$tag-pasv.bin" | cut -d' ' -f1)" = "$want"
	ph_check "$tag: active transfer intact (64 MiB, sha256)" \
		test "$(sha256sum <"$OUT/$tag-port.bin" | cut -d' ' -f1)" = "$want"
}

new_xfers_work() {
	local tag=$1
	ph_expect_ok "$tag: a new passive transfer works" \
		ftp_curl "$PH_NS_CLI" "$PH_SRV4" mid.bin "$OUT/$tag-new1.bin"
	ph_expect_ok "$tag: a new active transfer works" \
		ftp_curl "$PH_NS_CLI" "$PH_SRV6" mid.bin "$OUT/$tag-new2.bin" -P -
	ph_check "$tag: new transfers intact" test \
		"$(cat "$OUT/$tag-new1.bin" "$OUT/$tag-new2.bin" | sha256sum | cut -d' ' -f1)" = \
		"$(cat "$PH_SRV_DIR/ftp/mid.bin" "$PH_SRV_DIR/ftp/mid.bin" | sha256sum | cut -d' ' -f1)"
}

xdp_attached() {
	ph_srv ip -d link show dev "$PH_IF_SRV" | grep -q 'prog/xdp'
}

# ---------------------------------------------------------------- run -9
ph_section "kill -9 of pinhole run during FTP transfers"
PH_RUN_LOG=$PH_TMP/run1.log
ph_pinhole_run --policy "$POL" "$PH_IF_SRV" || ph_fatal "pinhole run"
start_xfers run
sleep 1.5
kill -9 "$PH_RUN_PID"
wait "$PH_RUN_PID" 2>/dev/null
PH_RUN_PID=
ph_check "after kill -9: XDP still attached (enforcement stays)" xdp_attached
ph_expect_fail "after kill -9: port 8081 still dropped" \
	ph_in "$PH_NS_CLI" nc -z -w1 "$PH_SRV4" 8081
PH_RUN_LOG=$PH_TMP/run2.log
# Not inside ph_expect_ok: that runs in a subshell, and PH_RUN_PID is needed.
ph_pinhole_run --policy "$POL" "$PH_IF_SRV"
ph_check "run again with the same pins and policy starts (ready)" test $? = 0
ph_check "it adopted the interface (log: adopted $PH_IF_SRV)" \
	grep -q "adopted $PH_IF_SRV" "$PH_RUN_LOG"
ph_check "no 'already attached'" bash -c "! grep -q 'already attached' '$PH_RUN_LOG'"
check_xfers run
new_xfers_work "run restarted"

# ------------------------------------------------------------- daemon -9
ph_section "kill -9 of pinhole daemon during FTP transfers"
ph_pinhole_run_stop
ph_expect_ok "attach (enforcement without run)" ph_pinhole attach --policy "$POL" "$PH_IF_SRV"
start_daemon() {
	local log=$1 i
	nsenter --net="/run/netns/$PH_NS_SRV" "$PH_BIN" --pin-dir "$PH_PIN" daemon >"$log" 2>&1 &
	DAEMON_PID=$!
	for i in $(seq 50); do
		grep -q ready "$log" && return 0
		sleep 0.1
	done
	return 1
}
ph_on_exit 'kill "${DAEMON_PID:-0}" 2>/dev/null'
start_daemon "$PH_TMP/daemon1.log"
ph_check "daemon starts" test $? = 0
start_xfers daemon
sleep 1.5
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
start_daemon "$PH_TMP/daemon2.log"
ph_check "daemon starts again after kill -9" test $? = 0
check_xfers daemon
new_xfers_work "daemon restarted"
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
ph_expect_ok "detach --all" ph_pinhole detach --all

# ------------------------------------------------------------ 100 reloads
ph_section "100 reloads (SIGHUP and pinhole reload) during transfers"
PH_RUN_LOG=$PH_TMP/run3.log
ph_pinhole_run --policy "$POL" "$PH_IF_SRV" || ph_fatal "pinhole run"
gen0=$(ph_pinhole status -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
drops0=$(ph_stat drop_policy)
start_xfers reload
# Small transfers alongside, each a new control + data connection.
(
	for i in $(seq -f '%03g' 1 10); do
		ftp_curl "$PH_NS_CLI" "$PH_SRV4" "s/$i.bin" "$OUT/r-$i.bin" || echo "fail $i"
	done
) >"$PH_TMP/small.log" 2>&1 &
SMALL=$!
hups=0
for i in $(seq 50); do
	kill -HUP "$PH_RUN_PID"
	# Signals do not queue: wait for this one to be handled.
	for _ in $(seq 100); do
		[ "$(grep -c 'SIGHUP: reloaded' "$PH_RUN_LOG")" -ge "$i" ] && break
		sleep 0.02
	done
	ph_pinhole reload --policy "$POL" >/dev/null 2>&1 && hups=$((hups + 1))
done
wait "$SMALL"
small_ok() {
	local i
	grep -q fail "$PH_TMP/small.log" && { cat "$PH_TMP/small.log"; return 1; }
	for i in $(seq -f '%03g' 1 10); do
		cmp -s "$OUT/r-$i.bin" "$PH_SRV_DIR/ftp/s/$i.bin" || { echo "r-$i differs"; return 1; }
	done
}
check_xfers reload
ph_check "50 SIGHUP reloads logged" test "$(grep -c 'SIGHUP: reloaded' "$PH_RUN_LOG")" = 50
ph_check "50 pinhole reload succeeded" test "$hups" = 50
gen1=$(ph_pinhole status -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
ph_check "generation went up by 100 ($gen0 -> $gen1)" test $((gen1 - gen0)) = 100
ph_check "10 small transfers during the reloads all succeeded" \
	small_ok
ph_check "no drop_policy during the reloads" test "$(ph_stat drop_policy)" = "$drops0"
ph_check "run still running" kill -0 "$PH_RUN_PID"
ph_pinhole_run_stop

ph_finish
