# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# shellcheck shell=bash
#
# FTPS end-to-end tests (tests/e2e/test_ftps.sh, test_ftps_negative.sh):
# vsftpd with TLS (explicit AUTH TLS on 21, implicit on 990 with active data
# from 989), clients (curl, lftp, a scripted python3 client), a parallel SYN
# probe and the policies. Source tests/lib/netns.sh, tests/lib/servers.sh
# and tests/lib/ftp.sh first; call ph_init, ph_netns_setup and
# ph_servers_init before these. docs/ftps.md describes the tests.
#
#   ftps_start_servers            certificate, vsftpd on 21 (plain FTP and
#                                 explicit FTPS) and 990 (implicit), v4+v6
#   ftps_curl NS HOST MODE PATH OUT [CURL-OPTS]   MODE explicit|implicit|plain
#   ftps_lftp NS HOST MODE PATH OUT pasv|port [EPSV yes|no] [PORT-RANGE]
#   ftps_raw NS HOST MODE WORKDIR STEP...         scripted control session
#   ftps_probe NS HOST LO HI [TIMEOUT] [SPORT]    SYN to every port LO..HI
#   ftps_syn NS HOST PORT [TIMEOUT] [SPORT]       one SYN: open|refused|dropped
#   ftps_probe_field LINE NAME                    a field of a probe's line
#   ftps_listening NS LO HI ADDR                  ports listening on ADDR
#   ftps_fw_up srv|cli POLICY / ftps_fw_down / ftps_fw_alive   `pinhole run`
#   ftps_stats_snapshot / ftps_delta BEFORE AFTER REASON      counter growth
#   ftps_mark / ftps_observe      vsftpd logs + counters + SYN retransmits
#   ftps_flows_new ORIGIN SEEN    new flows of an origin (`flows -j`)
#   ftps_encrypted_sessions / ftps_wait_encrypted N   `sessions -j` FTPS sessions
#   ftps_peer_connections [ADDR]  `sessions -j` ftps_peers counts
#   ftps_server_policy / ftps_client_policy FILE      the policies used
#   ftps_true 'COND && COND'      a compound condition for ph_check
#
# Passive range: vsftpd uses $FTPS_PASV_MIN-$FTPS_PASV_MAX (28000-28049),
# inside the ftps-range 28000-30000 of policies/eft-server.policy. Active
# data on a firewalled client goes to $FTPS_ACT_MIN-$FTPS_ACT_MAX
# (28100-28149), the client's ftps-range.

# shellcheck disable=SC2034 # used by the tests
PH_FTPS_BINS=(vsftpd curl lftp openssl python3 sha256sum ss nc nft)
FTPS_PASV_MIN=${FTPS_PASV_MIN:-28000}
FTPS_PASV_MAX=${FTPS_PASV_MAX:-28049}
FTPS_ACT_MIN=${FTPS_ACT_MIN:-28100}
FTPS_ACT_MAX=${FTPS_ACT_MAX:-28149}
FTPS_RANGE_LO=28000
FTPS_RANGE_HI=30000

# ---------------------------------------------------------------------------
# Servers.
# ---------------------------------------------------------------------------

# ftps_make_cert: a self-signed RSA certificate for the server's two
# addresses (subjectAltName IP entries, so clients can verify it):
# $FTPS_CERT, $FTPS_KEY.
ftps_make_cert() {
	local d=$PH_SRV_DIR/ftps
	mkdir -p "$d"
	FTPS_CERT=$d/cert.pem FTPS_KEY=$d/key.pem
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pinhole-ftps-test \
		-addext "subjectAltName=IP:$PH_SRV_ADDR4,IP:$PH_SRV_ADDR6" \
		-keyout "$FTPS_KEY" -out "$FTPS_CERT" >/dev/null 2>&1 || return 1
	chmod 600 "$FTPS_KEY"
	chmod 644 "$FTPS_CERT"
}

# vsftpd.conf lines for TLS. Anonymous users may use TLS but need not, so
# plain FTP and explicit FTPS share port 21. require_ssl_reuse stays at its
# default (YES): every client here resumes the control connection's TLS
# session on the data connection.
ftps__vsftpd_ssl_opts() {
	cat <<-EOF
		ssl_enable=YES
		allow_anon_ssl=YES
		force_anon_logins_ssl=NO
		force_anon_data_ssl=NO
		ssl_request_cert=NO
		rsa_cert_file=$FTPS_CERT
		rsa_private_key_file=$FTPS_KEY
		connect_timeout=5
		data_connection_timeout=30
		accept_timeout=20
	EOF
}

# ftps__start_vsftpd_990 4|6: an implicit-FTPS instance on port 990 whose
# active data comes from port 989. Log: $PH_SRV_DIR/log/vsftpd990-{4,6}.log.
ftps__start_vsftpd_990() {
	local fam=$1 d=$PH_SRV_DIR conf _ pid
	conf=$d/vsftpd990-$fam.conf
	{
		ph__vsftpd_conf
		echo "listen_port=990"
		echo "implicit_ssl=YES"
		echo "ftp_data_port=989"
		if [ "$fam" = 4 ]; then
			echo "listen=YES"
			echo "listen_ipv6=NO"
			echo "listen_address=$PH_SRV_ADDR4"
		else
			echo "listen=NO"
			echo "listen_ipv6=YES"
			echo "listen_address6=$PH_SRV_ADDR6"
		fi
		echo "vsftpd_log_file=$d/log/vsftpd990-$fam.log"
	} >"$conf"
	chmod 600 "$conf"
	ph_in "$PH_SRV_NS" vsftpd "$conf" </dev/null >"$d/log/vsftpd990-$fam.out" 2>&1 ||
		{ cat "$d/log/vsftpd990-$fam.out" >&2; return 1; }
	local want=$PH_SRV_ADDR4:990
	[ "$fam" = 6 ] && want="[$PH_SRV_ADDR6]:990"
	for _ in $(seq 50); do
		pid=$(ph_in "$PH_SRV_NS" ss -Hltnp "sport = :990" | grep -F "$want" |
			sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1)
		[ -n "$pid" ] && { PH_SERVER_PIDS+=("$pid"); return 0; }
		sleep 0.1
	done
	echo "vsftpd (implicit FTPS, IPv$fam) did not start" >&2
	return 1
}

# ftps_start_servers: certificate, then vsftpd on 21 (v4 + v6: plain FTP and
# explicit FTPS) and on 990 (v4 + v6: implicit FTPS), passive range
# $FTPS_PASV_MIN-$FTPS_PASV_MAX, active data from 20 (21) and 989 (990).
ftps_start_servers() {
	ftps_make_cert || { echo "openssl: cannot make a certificate" >&2; return 1; }
	PH_FTP_PASV_MIN=$FTPS_PASV_MIN PH_FTP_PASV_MAX=$FTPS_PASV_MAX
	PH_VSFTPD_OPTS="$(ftps__vsftpd_ssl_opts)${PH_VSFTPD_OPTS:+
$PH_VSFTPD_OPTS}"
	ph_start_vsftpd || return 1
	ftps__start_vsftpd_990 4 && ftps__start_vsftpd_990 6
}

# The vsftpd logs (for FTP_PY vslog: verbs, announced ports, transfers).
ftps_vslog_files() {
	local f
	for f in vsftpd4 vsftpd6 vsftpd990-4 vsftpd990-6; do
		echo "$PH_SRV_DIR/log/$f.log"
	done
}

# ---------------------------------------------------------------------------
# Clients. Each is bounded in time; OUT is a local path.
# ---------------------------------------------------------------------------

# ftps_url HOST MODE PATH: ftp:// for explicit and plain, ftps:// (port
# 990) for implicit.
ftps_url() {
	local scheme=ftp
	[ "$2" = implicit ] && scheme=ftps
	printf '%s://%s/%s' "$scheme" "$(ph_urlhost "$1")" "$3"
}

# ftps_curl NS HOST MODE PATH OUT [CURL-OPTS...]: MODE explicit (AUTH TLS,
# --ssl-reqd), implicit (ftps://, port 990) or plain. The certificate is
# verified (--cacert; its subjectAltName holds the server's addresses).
ftps_curl() {
	local ns=$1 host=$2 mode=$3 path=$4 out=$5 tls=()
	shift 5
	case $mode in
	explicit) tls=(--ssl-reqd --cacert "$FTPS_CERT") ;;
	implicit) tls=(--cacert "$FTPS_CERT") ;;
	esac
	ph_in "$ns" curl -sS --connect-timeout 4 --max-time 60 "${tls[@]}" "$@" \
		-o "$out" "$(ftps_url "$host" "$mode" "$path")"
}

# ftps_lftp NS HOST MODE PATH OUT pasv|port [EPSV yes|no] [PORT-RANGE]:
# lftp with ftp:ssl-force (explicit) or an ftps:// URL (implicit); data
# protected (PROT P) in both. PORT-RANGE (active mode) is ftp:port-range.
ftps_lftp() {
	local ns=$1 host=$2 mode=$3 path=$4 out=$5 dmode=$6 epsv=${7:-no} prange=${8:-full}
	local pm=on ssl="set ftp:ssl-force yes"
	[ "$dmode" = port ] && pm=off
	[ "$mode" = plain ] && ssl="set ftp:ssl-allow no"
	ph_in "$ns" timeout 60 lftp -c "
set cmd:fail-exit yes
$ssl
set ftp:ssl-protect-data yes
set ftp:ssl-protect-list yes
set ssl:ca-file $FTPS_CERT
set ssl:check-hostname no
set ftp:passive-mode $pm
set ftp:prefer-epsv $epsv
set ftp:port-range $prange
set net:max-retries 1
set net:timeout 8
set net:reconnect-interval-base 1
set xfer:clobber on
open -u anonymous,pinhole $(ftps_url "$host" "$mode" "")
get $path -o $out
"
}

# ftps_raw NS HOST MODE WORKDIR STEP...: a scripted FTP(S) client (python3).
# MODE: implicit (TLS from the first byte, port 990), explicit (port 21;
# the step "auth" sends AUTH TLS) or plain (port 21, no TLS). Steps:
#   auth          AUTH TLS; 234 expected; the control channel turns TLS
#   login         USER anonymous (and PASS if asked)
#   prot          PBSZ 0, PROT P (data connections use TLS)
#   pasv / epsv   PASV or EPSV; the announced port goes to WORKDIR/port
#   connect[:S]   TCP connect to the announced port (timeout S, default 2);
#                 appends "ok" or "fail ERROR" to WORKDIR/connect
#   connectto:P[:S]  the same to port P of HOST
#   listen[:P]    active mode: listen on port P (default: any) of the
#                 control connection's local address (WORKDIR/lport)
#   port / eprt   PORT or EPRT naming that listener
#   retr:FILE     RETR FILE over the connected data socket, or (after
#                 listen) over the connection the server opens to the
#                 listener; TLS after PROT P (we are the TLS client either
#                 way, RFC 4217); appends "retr BYTES SHA256" to
#                 WORKDIR/connect
#   signal:NAME   create WORKDIR/NAME
#   wait:NAME     wait for WORKDIR/NAME (at most 60 s)
#   sleep:S       sleep S seconds
#   close         close the control connection without QUIT
# At the end (unless closed) QUIT. WORKDIR/transcript has the dialogue
# ("> " sent, "< " received); the file WORKDIR/done appears when it ends.
FTPS_PY_RAW='
import hashlib, os, re, socket, ssl, sys, time
host, mode, wd, ca = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
steps = sys.argv[5:]
os.makedirs(wd, exist_ok=True)
tr = open(os.path.join(wd, "transcript"), "a", buffering=1)
def note(name, text):
    with open(os.path.join(wd, name), "a") as f:
        f.write(text + "\n")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
port0 = 990 if mode == "implicit" else 21
c = socket.create_connection((host, port0), timeout=10)
if mode == "implicit":
    c = ctx.wrap_socket(c, server_hostname=host)
    tr.write("* TLS from the first byte (%s)\n" % c.version())
rf = c.makefile("rb")
def reply():
    lines = []
    while True:
        l = rf.readline().decode("latin1")
        if not l:
            raise OSError("control connection closed by the server")
        lines.append(l.rstrip("\r\n"))
        tr.write("< " + lines[-1] + "\n")
        first = lines[0]
        if len(first) >= 4 and first[3] == "-":
            if len(lines) > 1 and lines[-1][:3] == first[:3] and lines[-1][3:4] in (" ", ""):
                break
        else:
            break
    return lines
def send(t):
    tr.write("> " + (t if not t.startswith("PASS") else "PASS ****") + "\n")
    c.sendall(t.encode("latin1") + b"\r\n")
def cmd(t, want=None):
    send(t); r = reply()
    if want and not r[-1].startswith(want):
        raise OSError("%s answered %r" % (t.split()[0], r[-1]))
    return r
port, data, prot, closed, lst = None, None, False, False, None
def run(st):
    global c, rf, port, data, prot, closed, lst
    op, _, arg = st.partition(":")
    if op == "auth":
        cmd("AUTH TLS", "234")
        c = ctx.wrap_socket(c, server_hostname=host)
        rf = c.makefile("rb")
        tr.write("* TLS after AUTH (%s)\n" % c.version())
    elif op == "login":
        r = cmd("USER anonymous")
        if r[-1].startswith("331"):
            r = cmd("PASS pinhole")
        if not r[-1].startswith("230"):
            raise OSError("login failed: %r" % r[-1])
    elif op == "prot":
        cmd("PBSZ 0", "200"); cmd("PROT P", "200"); prot = True
    elif op in ("pasv", "epsv"):
        r = cmd(op.upper())
        last = r[-1]
        m = (re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", last) if op == "pasv"
             else re.search(r"\(\|\|\|(\d+)\|\)", last))
        if m:
            port = int(m.group(5)) * 256 + int(m.group(6)) if op == "pasv" else int(m.group(1))
        note("port", str(port))
    elif op in ("connect", "connectto"):
        p = port
        if op == "connectto":
            p, _, arg = arg.partition(":")
            p = int(p)
        t0 = time.time()
        try:
            data = socket.create_connection((host, p), timeout=float(arg or 2))
            note("connect", "ok")
        except OSError as e:
            data = None
            note("connect", "fail " + (e.strerror or str(e) or type(e).__name__))
        note("connect_ms", "%d" % ((time.time() - t0) * 1000))
    elif op == "listen":
        lst = socket.socket(c.family, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((c.getsockname()[0], int(arg or 0))); lst.listen(4)
        note("lport", str(lst.getsockname()[1]))
    elif op in ("port", "eprt"):
        a, p = lst.getsockname()[0], lst.getsockname()[1]
        if op == "port":
            cmd("PORT %s,%d,%d" % (a.replace(".", ","), p >> 8, p & 255), "200")
        else:
            cmd("EPRT |%d|%s|%d|" % (2 if ":" in a else 1, a, p), "200")
    elif op == "retr":
        r = cmd("RETR " + arg)
        n, h = 0, hashlib.sha256()
        if data is None and lst is not None and r[-1][:1] == "1":
            lst.settimeout(10)
            try:
                data, peer = lst.accept()
                note("accepted", "%s %d" % (peer[0], peer[1]))
            except OSError as e:
                note("connect", "fail accept: %s" % (e.strerror or e))
        if data is not None and r[-1][:1] == "1":
            d = data
            if prot:
                # Resume the TLS session of the control connection: vsftpd
                # requires it (require_ssl_reuse, default YES).
                d = ctx.wrap_socket(data, server_hostname=host, session=c.session)
            d.settimeout(20)
            while True:
                b = d.recv(1 << 16)
                if not b: break
                n += len(b); h.update(b)
            d.close(); data = None
            reply()
        elif r[-1][:1] == "1":
            reply()
        note("connect", "retr %d %s" % (n, h.hexdigest()))
    elif op == "signal":
        open(os.path.join(wd, arg), "w").close()
    elif op == "wait":
        t = time.time() + 60
        while not os.path.exists(os.path.join(wd, arg)) and time.time() < t:
            time.sleep(0.05)
    elif op == "sleep":
        time.sleep(float(arg))
    elif op == "close":
        c.close(); closed = True
rc = 0
try:
    reply()
    for st in steps:
        run(st)
    if not closed:
        cmd("QUIT"); c.close()
except (OSError, ssl.SSLError) as e:
    tr.write("! %s (at step %r)\n" % (e, st if steps else "-"))
    note("connect", "fail control: %s" % e)
    rc = 1
open(os.path.join(wd, "done"), "w").close()
sys.exit(rc)
'

ftps_raw() {
	local ns=$1 host=$2 mode=$3 wd=$4
	shift 4
	mkdir -p "$wd"
	ph_in "$ns" timeout 90 python3 -c "$FTPS_PY_RAW" "$host" "$mode" "$wd" "$FTPS_CERT" "$@"
}

# ---------------------------------------------------------------------------
# The probe: one SYN (a non-blocking connect) to every port LO..HI of HOST
# at once, from NS; each gets TIMEOUT seconds (default 0.8, below the
# kernel's 1 s SYN retransmission, so every port sees exactly one SYN). A
# port "admits" the probe when the firewall let the SYN through: the
# connection is accepted (something listens) or refused (RST: nothing
# listens, but the SYN reached the stack). A dropped SYN times out.
# Any other error (no route, ...) counts as "errors": such a probe proves
# nothing. Prints one line: "probes N admitted A open O refused R dropped D
# errors E ports P1,P2,..." (the admitted ports, at most 60 listed).
# SPORT binds that source port (for one port: e.g. 20 or 989, like an FTP
# server's active data connection).
# ---------------------------------------------------------------------------
FTPS_PY_PROBE='
import asyncio, resource, socket, sys
host, lo, hi, tmo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sport = int(sys.argv[5]) if len(sys.argv) > 5 else 0
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = hi - lo + 200
if soft < need:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(need, soft), hard), hard))
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
async def one(p):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        if sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
        await asyncio.wait_for(loop.sock_connect(s, (host, p)), tmo)
        return p, "open"
    except ConnectionRefusedError:
        return p, "refused"
    except asyncio.TimeoutError:
        return p, "dropped"
    except OSError:
        return p, "error"
    finally:
        s.close()
async def main():
    return await asyncio.gather(*(one(p) for p in range(lo, hi + 1)))
res = asyncio.run(main())
cnt = {"open": 0, "refused": 0, "dropped": 0, "error": 0}
adm = []
for p, r in res:
    cnt[r] += 1
    if r in ("open", "refused"):
        adm.append(p)
ports = ",".join(map(str, adm[:60])) + (",..." if len(adm) > 60 else "")
print("probes %d admitted %d open %d refused %d dropped %d errors %d ports %s" % (
    len(res), len(adm), cnt["open"], cnt["refused"], cnt["dropped"], cnt["error"], ports or "-"))
'

ftps_probe() {
	ph_in "$1" python3 -c "$FTPS_PY_PROBE" "$2" "$3" "$4" "${5:-0.8}" ${6:+"$6"}
}

# ftps_syn NS HOST PORT [TIMEOUT] [SPORT]: one probe; prints its outcome:
# open, refused (both: the SYN got through), dropped or error.
ftps_syn() {
	local l w
	l=$(ftps_probe "$1" "$2" "$3" "$3" "${4:-0.8}" "${5:-}")
	for w in open refused dropped errors; do
		[ "$(ftps_probe_field "$l" $w)" = 1 ] && { echo "${w%s}"; return 0; }
	done
	echo "error"
}

# ftps_probe_field LINE NAME: one number (or the port list) of a probe line.
ftps_probe_field() {
	awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' <<<"$1"
}

# ftps_listening NS LO HI ADDR: the TCP ports LO..HI listening in NS on
# ADDR or on a wildcard address, comma separated, sorted ("-" if none).
ftps_listening() {
	local ns=$1 lo=$2 hi=$3 addr=$4
	ph_in "$ns" ss -Hltn | awk -v lo="$lo" -v hi="$hi" -v a="$addr" '
		{
			l = $4; p = l; sub(/.*:/, "", p); h = substr(l, 1, length(l) - length(p) - 1)
			gsub(/[][]/, "", h); sub(/%.*/, "", h)
			if (p + 0 < lo || p + 0 > hi) next
			if (h == a || h == "*" || h == "0.0.0.0" || h == "::") print p
		}' | sort -n -u | paste -sd, - | sed 's/^$/-/'
}

# ---------------------------------------------------------------------------
# Observation per scenario: vsftpd's verbs and announced ports (FTP_PY
# vslog of tests/lib/ftp.sh, over all four logs) and pinhole's counters.
# ---------------------------------------------------------------------------

# ftps_stats_snapshot: the counters of the current instance (PH_PH_NS,
# PH_PIN) as "reason=packets" words, both hooks summed, for the reasons
# that matter here.
FTPS_REASONS="pass_ftps_range pass_expect pass_policy pass_default drop_ftps_no_session drop_ftps_no_listener drop_policy drop_expect_spent"
FTPS_PY_SNAP='
import json, sys
want = sys.argv[1].split()
got = dict.fromkeys(want, 0)
try:
    d = json.load(sys.stdin)
except ValueError:
    d = {}
for r in d.get("reasons", []):
    if r.get("name") in got:
        got[r["name"]] = sum(int((r.get(k) or {}).get("packets", 0)) for k in ("in", "out"))
print(" ".join("%s=%d" % (k, got[k]) for k in want))
'
ftps_stats_snapshot() {
	ph_pinhole stats -j 2>/dev/null | python3 -c "$FTPS_PY_SNAP" "$FTPS_REASONS"
}

# ftps_delta BEFORE AFTER REASON: growth of one reason between snapshots.
ftps_delta() {
	local b a
	b=$(tr ' ' '\n' <<<"$1" | sed -n "s/^$3=//p")
	a=$(tr ' ' '\n' <<<"$2" | sed -n "s/^$3=//p")
	echo $((${a:-0} - ${b:-0}))
}

ftps_mark() {
	local f
	FTPS_M_LOGS=()
	while read -r f; do
		FTPS_M_LOGS+=("$f=$( [ -f "$f" ] && wc -l <"$f" || echo 0)")
	done < <(ftps_vslog_files)
	FTPS_M_STATS=$(ftps_stats_snapshot)
	FTPS_M_SYN=$(($(ftp_synrtx "$PH_NS_CLI") + $(ftp_synrtx "$PH_NS_SRV")))
	FTPS_M_T0=$(date +%s%N)
}

# ftps_observe: FTPS_O_VERBS, FTPS_O_ANN (announced ports), FTPS_O_XFERS
# (150 replies), FTPS_O_SYN (SYN retransmits), FTPS_O_MS, FTPS_O_STATS
# (the snapshot after; compare with ftps_delta "$FTPS_M_STATS").
ftps_observe() {
	FTPS_O_MS=$((($(date +%s%N) - FTPS_M_T0) / 1000000))
	sleep 0.2 # vsftpd logs the last reply after sending it
	ftp_vslog "${FTPS_M_LOGS[@]}"
	# shellcheck disable=SC2153 # FTP_V_* are set by ftp_vslog (tests/lib/ftp.sh)
	FTPS_O_VERBS=$FTP_V_VERBS FTPS_O_ANN=$FTP_V_ANN FTPS_O_XFERS=$FTP_V_XFERS
	FTPS_O_SYN=$(($(ftp_synrtx "$PH_NS_CLI") + $(ftp_synrtx "$PH_NS_SRV") - FTPS_M_SYN))
	FTPS_O_STATS=$(ftps_stats_snapshot)
}

# ftps_encrypted_sessions: how many sessions `pinhole sessions -j` lists in
# state "encrypted" (FTPS: nothing parsed).
ftps_encrypted_sessions() {
	ph_pinhole sessions -j 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    print(-1); sys.exit(0)
print(sum(1 for s in d.get("sessions", []) if s.get("state") == "encrypted"))
'
}

# ---------------------------------------------------------------------------
# Policies.
# ---------------------------------------------------------------------------

# ftps_server_policy: the shipped preset policies/eft-server.policy as is
# (21 ftp-track, 990 ftps-implicit, 28000-30000 ftps-range, default in
# drop, default out allow), or $FTPS_SERVER_POLICY (e.g. a copy without
# the ftps-range flag, to see the tests fail as they must).
ftps_server_policy() {
	printf '%s' "${FTPS_SERVER_POLICY:-$PH_ROOT/policies/eft-server.policy}"
}

# ftps_client_policy FILE: a client host (the eft-client preset's shape):
# control connections out to 21 (tracked) and 990 (implicit FTPS), active
# data in on the client's own ftps-range $FTPS_ACT_MIN-$FTPS_ACT_MAX,
# everything else inbound dropped.
ftps_client_policy() {
	cat >"$1" <<-EOF
		# generated by tests/lib/ftps.sh: an FTPS client host using active mode
		default in drop
		default out allow
		service ftp            out tcp 21  to any  ftp-track
		service ftps-implicit  out tcp 990 to any  ftps-implicit
		# Active-mode data the server opens back to us (from 20 or 989): only
		# to a port we listen on, only from a server we hold an FTPS session with.
		service ftps-data      in  tcp $FTPS_ACT_MIN-$FTPS_ACT_MAX  from any  ftps-range
	EOF
}

# ---------------------------------------------------------------------------
# Firewall: `pinhole run` on one host.
# ---------------------------------------------------------------------------

# ftps_fw_up srv|cli POLICY: start pinhole on that host's veth; pins under
# /sys/fs/bpf/ph-phz-<test>-<side>. Sets FTPS_FW_SIDE, FTPS_FW_NS,
# FTPS_FW_POLICY and points PH_PH_NS, PH_PIN, PH_RUN_LOG (so ph_pinhole and
# ph_stat talk to this instance).
FTPS_RUNS=0
ftps_fw_up() {
	local side=$1 ifc
	FTPS_FW_SIDE=$side FTPS_FW_POLICY=$2
	case $side in
	srv) FTPS_FW_NS=$PH_NS_SRV ifc=$PH_IF_SRV ;;
	cli) FTPS_FW_NS=$PH_NS_CLI ifc=$PH_IF_CLI ;;
	*) echo "ftps_fw_up: side srv|cli, not $side" >&2; return 1 ;;
	esac
	PH_PH_NS=$FTPS_FW_NS
	PH_PIN=/sys/fs/bpf/ph-phz-${PH_NAME#ftps-}-$side
	FTPS_RUNS=$((FTPS_RUNS + 1))
	mkdir -p "$PH_TMP/logs"
	PH_RUN_LOG=$PH_TMP/logs/pinhole-run-$FTPS_RUNS-$side.log
	rm -rf "$PH_PIN"
	ph_on_exit "rm -rf '$PH_PIN'"
	ph_pinhole_run --policy "$FTPS_FW_POLICY" "$ifc"
}

ftps_fw_down() {
	ph_pinhole_run_stop
	rm -rf "$PH_PIN"
	return 0
}

# 0 if `pinhole run` is alive; if it died, say so with the end of its log,
# start it again and return 1.
ftps_fw_alive() {
	[ -n "${PH_RUN_PID:-}" ] && kill -0 "$PH_RUN_PID" 2>/dev/null && return 0
	local rc
	wait "${PH_RUN_PID:-0}" 2>/dev/null
	rc=$?
	ph_fail "pinhole run ($FTPS_FW_SIDE) died (exit $rc); log $PH_RUN_LOG:"
	tail -n 15 "$PH_RUN_LOG" 2>/dev/null | sed 's/^/      | /'
	PH_RUN_PID=
	ftps_fw_up "$FTPS_FW_SIDE" "$FTPS_FW_POLICY" || ph_fail "pinhole run ($FTPS_FW_SIDE) restart failed"
	return 1
}

# ftps_flows_new ORIGIN SEENFILE: flows -j entries of ORIGIN ("ftps-range",
# "ftp-data") not listed in SEENFILE before, as "lport<rport" words (the
# local port first: for a passive server it is the announced port);
# SEENFILE is updated.
ftps_flows_new() {
	ph_pinhole flows -j 2>/dev/null | python3 -c '
import json, sys
origin, seen_path = sys.argv[1], sys.argv[2]
try:
    seen = set(open(seen_path).read().split())
except OSError:
    seen = set()
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
new = []
for f in d.get("flows", []):
    if f.get("origin") != origin:
        continue
    k = "%s:%s-%s:%s" % (f.get("local_addr"), f.get("local_port"),
                         f.get("remote_addr"), f.get("remote_port"))
    if k in seen:
        continue
    seen.add(k)
    new.append("%s<%s" % (f.get("local_port"), f.get("remote_port")))
open(seen_path, "w").write("\n".join(sorted(seen)))
print(" ".join(sorted(set(new))))
' "$1" "$2"
}

# ftps_true 'COND && COND ...': a compound condition for ph_check, which
# runs one command (ph_check DESC ftps_true '[ "$a" = 1 ] && [ "$b" = 2 ]').
ftps_true() {
	eval "$1"
}

# ftps_peer_connections [REMOTE]: live FTPS control connections pinhole
# counts for REMOTE (all peers without it), from the "ftps_peers" list of
# `sessions -j`; -1 if there is no such list.
ftps_peer_connections() {
	ph_pinhole sessions -j 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    print(-1); sys.exit(0)
if not isinstance(d.get("ftps_peers"), list):
    print(-1); sys.exit(0)
want = sys.argv[1] if len(sys.argv) > 1 else ""
print(sum(int(p.get("connections", 0)) for p in d["ftps_peers"]
          if not want or p.get("remote_addr") == want))
' ${1:+"$1"}
}

# ftps_wait_encrypted N: wait (at most 3 s) until `sessions -j` lists at
# least N sessions in state "encrypted" (the tracker publishes its view a
# moment after the bytes); prints the count seen last.
ftps_wait_encrypted() {
	local i n=0
	for i in $(seq 30); do
		n=$(ftps_encrypted_sessions)
		[ "$n" -ge "$1" ] && break
		sleep 0.1
	done
	echo "$n"
}
