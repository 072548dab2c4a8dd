#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# `pinhole reload` is atomic and does not disturb established connections:
# two rate-limited HTTP downloads of a 64 MiB file (IPv4 and IPv6, ~6 s
# each) run while the policy is reloaded twice:
#   1. policy B (still allows 80, adds 443): reload succeeds, 443 opens;
#   2. a broken policy: reload fails with file:line:col and B stays.
# Both downloads complete and their sha256 match.
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"

ph_require_root
ph_require_bins ip nsenter curl nginx openssl nc sha256sum ss python3
ph_require_pinhole
ph_init reload
ph_netns_setup || ph_fatal "namespaces and veth"

SIZE_MIB=${PH_RELOAD_MIB:-64}
RATE=$((SIZE_MIB * 1024 * 1024 / 6)) # bytes/s: ~6 s per download

ph_section "servers in $PH_NS_SRV"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$PH_SRV_DIR/www/big.bin"
chmod 644 "$PH_SRV_DIR/www/big.bin"
WANT=$(sha256sum <"$PH_SRV_DIR/www/big.bin" | cut -d' ' -f1)
ph_start_nginx || ph_fatal "start nginx"

POL_A=$PH_TMP/reload-a.policy
cat >"$POL_A" <<'EOF'
# test_reload.sh, generation A: HTTP only.
default in drop
default out allow
service http in tcp 80 from any
EOF
POL_B=$PH_TMP/reload-b.policy
cat >"$POL_B" <<'EOF'
# test_reload.sh, generation B: HTTP and HTTPS.
default in drop
default out allow
service http in tcp 80 from any
service https in tcp 443 from any
EOF
POL_BAD=$PH_TMP/reload-bad.policy
cat >"$POL_BAD" <<'EOF'
# test_reload.sh: broken on line 4 (port out of range).
default in drop
default out allow
service http in tcp 80,99999 from any
EOF

# A dropped SYN fails after 2 s (the SYN and its retransmission after 1 s).
https_ok() {
	ph_cli curl -sSk --connect-timeout 2 --max-time 10 -o /dev/null \
		"https://$(ph_urlhost "$1")/index.html"
}

ph_section "generation A: HTTP only"
ph_on_exit ph_pinhole_detach
ph_expect_ok "pinhole attach --policy reload-a.policy $PH_IF_SRV" \
	ph_pinhole attach --policy "$POL_A" "$PH_IF_SRV" || ph_fatal "attach"
for a in "$PH_SRV4" "$PH_SRV6"; do
	ph_expect_fail "HTTPS on $a dropped" https_ok "$a"
done

ph_section "downloads of ${SIZE_MIB} MiB at $((RATE / 1024)) KiB/s"
declare -A dl
for a in "$PH_SRV4" "$PH_SRV6"; do
	out=$PH_TMP/big-${a//:/_}.bin
	ph_cli curl -sS --max-time 60 --limit-rate "$RATE" -o "$out" \
		"http://$(ph_urlhost "$a")/big.bin" 2>"$out.err" &
	dl[$a]=$!
done
started=$(date +%s)
running() {
	local a
	for a in "${!dl[@]}"; do
		kill -0 "${dl[$a]}" 2>/dev/null || return 1
	done
}
sleep 1.5

ph_section "reload 1: generation B (80 and 443), mid-transfer"
ph_check "both downloads still running" running
ph_expect_ok "pinhole reload --policy reload-b.policy" ph_pinhole reload --policy "$POL_B"
for a in "$PH_SRV4" "$PH_SRV6"; do
	ph_expect_ok "HTTPS on $a now allowed (new policy in force)" https_ok "$a"
done
ph_expect_ok "status names reload-b.policy" \
	sh -c "nsenter --net=/run/netns/$PH_NS_SRV '$PH_BIN' --pin-dir '$PH_PIN' status | grep -q reload-b.policy"
sleep 1

ph_section "reload 2: a broken policy, mid-transfer"
ph_check "both downloads still running" running
out=$(ph_pinhole reload --policy "$POL_BAD" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/      | /'
ph_check "reload of a broken policy fails (exit $rc)" [ $rc -ne 0 ]
ph_check "the error says file:line:col" \
	grep -Eq "reload-bad\.policy:4:[0-9]+" <<<"$out"
for a in "$PH_SRV4" "$PH_SRV6"; do
	ph_expect_ok "HTTPS on $a still allowed (generation B kept)" https_ok "$a"
done
ph_expect_ok "status still names reload-b.policy" \
	sh -c "nsenter --net=/run/netns/$PH_NS_SRV '$PH_BIN' --pin-dir '$PH_PIN' status | grep -q reload-b.policy"

ph_section "downloads complete"
for a in "$PH_SRV4" "$PH_SRV6"; do
	wait "${dl[$a]}"
	rc=$?
	out=$PH_TMP/big-${a//:/_}.bin
	ph_check "download from $a finished (exit $rc)" [ $rc -eq 0 ] ||
		sed 's/^/      | /' "$out.err"
	ph_check "download from $a: sha256 matches" \
		[ "$(sha256sum <"$out" | cut -d' ' -f1)" = "$WANT" ]
done
secs=$(($(date +%s) - started))
ph_check "the downloads spanned both reloads (${secs}s >= 4s)" [ $secs -ge 4 ]

ph_finish
