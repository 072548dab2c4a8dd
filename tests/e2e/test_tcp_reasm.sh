#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The tracker sees the bytes the endpoint's TCP stack accepted (issue 13):
#   px-cli (10.187.0.2) --veth--> px-srv (10.187.0.1, vsftpd, pinhole run
#   with policies/firewall-faq-server.policy: default in/out drop, FTP
#   control with ftp-track). The client's control connection is made of raw
#   TCP segments (tests/lib/rawftp.py, scapy); its data ports are ordinary
#   listeners. For every case the server's own stack decides what it took;
#   the check is "the pinhole pinhole opened == the data port the server
#   used, and the transfer worked":
#     a  tail of PORT ...B out of order first, then all of PORT ...A in order
#     b  two out-of-order copies at one sequence number, the later longer
#     c  PORT B with a bad TCP checksum, then PORT A at the same sequence
#        number (drop_ctrl_csum counts it)
#     d  PORT in IP fragments (opens nothing), then 4 PORT commands that
#        must each work
#     e  fixed data port: 100 active STORs from port 20 to one client port
#        (the same 4-tuple again while the last one is in TIME_WAIT):
#        100 pass_expect, 100 pinholes used
# shellcheck disable=SC2317 # helpers run through ph_check
set -u
# shellcheck source=tests/lib/netns.sh
. "$(dirname "$0")/../lib/netns.sh"
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"

ph_require_root
ph_require_bins ip nsenter nft vsftpd ss
ph_require_pinhole
# scapy lives in Debian's python3 (python3-scapy); a python3 earlier in
# PATH (pyenv, venv) may not have it.
PY=python3
"$PY" -c 'import scapy' 2>/dev/null || PY=/usr/bin/python3
"$PY" -c 'import scapy' 2>/dev/null || ph_skip "python3-scapy missing (run 'sudo make deps')"

PH_NS_PREFIX=px PH_NET4=10.187.0 PH_NET6=fd00:187:
PH_PIN=/sys/fs/bpf/ph-px-reasm
PH_VSFTPD_OPTS=$'connect_timeout=2\nwrite_enable=YES\nanon_upload_enable=YES\nanon_umask=022'
ph_init px-reasm
ph_netns_setup || ph_fatal "namespaces and veth"
# The raw control connections have no socket in the client's kernel: keep
# it from resetting them.
ph_cli nft -f - <<'EOF' || ph_fatal "nft: drop the client kernel's RSTs on raw control ports"
table inet pxraw {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp sport 40020-40040 tcp flags & rst == rst drop
	}
}
EOF

ph_section "vsftpd and pinhole in $PH_NS_SRV"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
mkdir -p "$PH_SRV_DIR/ftp/up"
chown ftp "$PH_SRV_DIR/ftp/up" 2>/dev/null || chmod 777 "$PH_SRV_DIR/ftp/up"
ph_start_vsftpd || ph_fatal "start vsftpd"
ph_pinhole_run --policy "$PH_ROOT/policies/firewall-faq-server.policy" "$PH_IF_SRV" ||
	ph_fatal "pinhole run"
ph_on_exit ph_pinhole_detach
RUNLOG=$PH_TMP/run.log
VSLOG=$PH_SRV_DIR/log/vsftpd4.log

# Pinholes opened for client port P since line N of the run log.
opened_ports() {
	tail -n "+$(($1 + 1))" "$RUNLOG" |
		sed -n "s/.*ftp: open tcp $PH_SRV4:\* -> $PH_CLI4:\([0-9]*\) .*/\1/p" | sort -n | tr '\n' ' '
}
# The PORTs vsftpd took (its protocol log) since line N.
server_ports() {
	tail -n "+$(($1 + 1))" "$VSLOG" 2>/dev/null |
		sed -n 's/.*FTP command: Client "[^"]*", "PORT [0-9]*,[0-9]*,[0-9]*,[0-9]*,\([0-9]*\),\([0-9]*\)"$/\1 \2/p' |
		while read -r h l; do echo $((h * 256 + l)); done | sort -n | tr '\n' ' '
}
# Data ports a server connection reached (the client's listeners).
accepted_ports() {
	sort -n "$1/accepted" 2>/dev/null | tr '\n' ' '
}
# The transfers of a case: "PORT:ok" / "PORT:fail".
transfers() {
	"$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join("%d:%s" % (t["port"], "ok" if t["ok"] else "fail") for t in r["transfers"]))
' "$1/result.json" 2>/dev/null
}

# raw_case CASE SPORT: one scripted session; prints what happened.
CASE_OUT=
raw_case() {
	local c=$1 sport=$2 n v csum0
	CASE_OUT=$PH_TMP/case-$c
	n=$(wc -l <"$RUNLOG")
	v=0
	[ -f "$VSLOG" ] && v=$(wc -l <"$VSLOG")
	csum0=$(ph_stat drop_ctrl_csum in)
	ph_cli timeout 60 "$PY" "$PH_ROOT/tests/lib/rawftp.py" "$c" "$PH_CLI4" \
		"$PH_SRV4" "$PH_IF_CLI" "$sport" "$CASE_OUT" >"$CASE_OUT.err" 2>&1 ||
		{ ph_say "rawftp.py $c failed:"; sed 's/^/      | /' "$CASE_OUT.err"; }
	sleep 0.6 # the tracker logs within a sweep
	C_SERVER=$(server_ports "$v")
	C_OPENED=$(opened_ports "$n")
	C_ACCEPTED=$(accepted_ports "$CASE_OUT")
	C_XFERS=$(transfers "$CASE_OUT")
	# one space between words, none at the ends: comparable
	C_SERVER=$(echo $C_SERVER) C_OPENED=$(echo $C_OPENED) C_ACCEPTED=$(echo $C_ACCEPTED)
	C_CSUM=$(($(ph_stat drop_ctrl_csum in) - csum0))
	printf '    case %s: server took PORT %s | pinhole opened %s | connections reached %s | transfers %s | drop_ctrl_csum +%s\n' \
		"$c" "${C_SERVER:-none}" "${C_OPENED:-none}" "${C_ACCEPTED:-none}" \
		"${C_XFERS:-none}" "$C_CSUM"
	if [ "$PH_VERBOSE" = 1 ]; then
		"$PY" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["log"]))' \
			"$CASE_OUT/result.json" 2>/dev/null | sed 's/^/      | /'
		tail -n "+$((n + 1))" "$RUNLOG" | sed 's/^/      run| /'
	fi
}

all_ok() {
	case " $C_XFERS " in *:fail*) return 1 ;; esac
	[ -n "$C_XFERS" ]
}

# ---------------------------------------------------------------------------
ph_section "a: tail of PORT B out of order, then PORT A in order"
raw_case a 40021
ph_check "pinhole opened what the server took ($C_SERVER)" [ "$C_OPENED" = "$C_SERVER" ]
ph_check "the server's data connection went through (NLST)" all_ok

ph_section "b: two out-of-order copies at one sequence number, the later longer"
raw_case b 40022
ph_check "pinhole opened what the server took ($C_SERVER)" [ "$C_OPENED" = "$C_SERVER" ]
ph_check "the server's data connection went through (NLST)" all_ok

ph_section "c: PORT B with a bad TCP checksum, then PORT A at the same sequence number"
raw_case c 40023
ph_check "pinhole opened what the server took ($C_SERVER)" [ "$C_OPENED" = "$C_SERVER" ]
ph_check "the server's data connection went through (NLST)" all_ok
ph_check "drop_ctrl_csum counted the bad segment (+$C_CSUM)" [ "$C_CSUM" = 1 ]

ph_section "d: PORT in IP fragments, then 4 PORT commands"
raw_case d 40024
FRAG=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["A"])' "$CASE_OUT/result.json" 2>/dev/null)
NEXT=$(echo "$C_SERVER" | tr ' ' '\n' | grep -v "^${FRAG:-x}\$" | tr '\n' ' ')
NEXT=$(echo $NEXT)
ph_check "no pinhole for the fragmented PORT ($FRAG)" sh -c "! echo ' $C_OPENED ' | grep -q ' $FRAG '"
ph_check "pinholes for the 4 later PORTs ($NEXT)" [ "$C_OPENED" = "$NEXT" ]
ph_check "the 4 later transfers went through" sh -c "[ \"\$(echo '$C_XFERS' | tr ' ' '\n' | grep -c ':ok$')\" = 4 ]"

# ---------------------------------------------------------------------------
ph_section "e: fixed data port, 100 active transfers on one 4-tuple"
E_PY='
import ftplib, socket, sys
srv, cli, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((cli, port)); ls.listen(4); ls.settimeout(10)
f = ftplib.FTP(srv, timeout=10); f.login()
ok = 0
for i in range(n):
    try:
        f.voidcmd("PORT %s,%d,%d" % (cli.replace(".", ","), port >> 8, port & 255))
        f.sendcmd("STOR up/f%03d" % i)
        c, _ = ls.accept(); c.sendall(b"x" * 512); c.close()  # we close first: TIME_WAIT here
        f.voidresp(); ok += 1
    except (OSError, ftplib.Error) as e:
        print("transfer %d: %s" % (i, e), file=sys.stderr)
f.quit()
print(ok)
'
pe0=$(ph_stat pass_expect out)
ho0=$(ph_stat pass_half_open out)
n=$(wc -l <"$RUNLOG")
E_OK=$(ph_cli timeout 80 "$PY" -c "$E_PY" "$PH_SRV4" "$PH_CLI4" 40100 100 2>"$PH_TMP/e.err")
sleep 0.6
E_PE=$(($(ph_stat pass_expect out) - pe0))
E_HO=$(($(ph_stat pass_half_open out) - ho0))
E_USED=$(tail -n "+$((n + 1))" "$RUNLOG" | grep -c "ftp: used tcp $PH_SRV4:\* -> $PH_CLI4:40100")
E_REV=$(tail -n "+$((n + 1))" "$RUNLOG" | grep -c "ftp: revoked .* -> $PH_CLI4:40100")
printf '    case e: transfers ok %s/100 | pass_expect +%s | egress pass_half_open +%s (the control SYN-ACK: 1) | pinholes used %s, revoked %s\n' \
	"${E_OK:-0}" "$E_PE" "$E_HO" "$E_USED" "$E_REV"
[ -s "$PH_TMP/e.err" ] && head -n 5 "$PH_TMP/e.err" | sed 's/^/      | /'
ph_check "100 transfers" [ "${E_OK:-0}" = 100 ]
ph_check "100 data SYNs counted pass_expect ($E_PE)" [ "$E_PE" = 100 ]
ph_check "100 pinholes used, none revoked unused ($E_USED used, $E_REV revoked)" \
	[ "$E_USED" = 100 ] && [ "$E_REV" = 0 ]

ph_check "log: no datapath disagreement" sh -c "! grep -q 'DATAPATH BUG' '$RUNLOG'"
ph_finish
