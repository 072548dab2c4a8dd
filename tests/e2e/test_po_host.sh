#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Instance identity, privileges, install and boot (issue 9, parts 4-5):
#   - pin-dir misuse: a file, a folder not on bpffs, another spelling of one
#     pin dir (x/../x, a symlink: one lock, one tracker), pins made by
#     bpftool in the pin dir survive attach and detach;
#   - a process with CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON but uid nobody
#     attaches, reads status and detaches (private bpffs and /run/pinhole
#     in a mount namespace, owned by nobody); without them: exit 2;
#   - --version, help CMD, CMD --help;
#   - make install DESTDIR=..., then the unit's ExecStart run as systemd
#     would (Environment=, EnvironmentFile=, specifiers), NOTIFY_SOCKET on a
#     datagram socket read here: READY=1, ExecReload -> RELOADING=1 then
#     READY=1 (also for a bad policy, which stays refused), journald "<N>"
#     priorities, kill -9 + start again (Restart=on-failure) -> READY=1
#     with the interface adopted, SIGTERM -> STOPPING=1, exit 0, detached.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/servers.sh"

ph_require_root
ph_require_pinhole
ph_require_bins bpftool setpriv unshare python3 make groff

export PH_NS_PREFIX=${PH_NS_PREFIX:-po} PH_NET4=${PH_NET4:-10.183.0} PH_NET6=${PH_NET6:-fd00:183:}
PH_PIN=/sys/fs/bpf/ph-po-host
ph_init po-host
ph_netns_setup || ph_fatal "network namespaces"
ph_servers_init "$PH_NS_SRV" "$PH_SRV4" "$PH_SRV6"
PIN2=/sys/fs/bpf/ph-po-host2
UNITPIN=/sys/fs/bpf/ph-po-unit
ph_on_exit "rm -rf '$PIN2' '$UNITPIN'"
ph_on_exit ph_pinhole_detach
ph_on_exit "nsenter --net=/run/netns/$PH_NS_SRV '$PH_BIN' --pin-dir '$UNITPIN' detach --all"
POL=$PH_TMP/p.policy
printf 'default in drop\ndefault out allow\nservice ssh in tcp 22 from any\n' >"$POL"
rc_of() { "$@" >"$PH_TMP/out" 2>&1; echo $?; }
lines() { wc -l <"$PH_TMP/out"; }

# ------------------------------------------------------------ pin dirs
ph_section "pin-dir misuse"
touch "$PH_TMP/file"
ph_check "a file as pin dir: exit 1" test "$(rc_of ph_pinhole --pin-dir "$PH_TMP/file" attach --policy "$POL" "$PH_IF_SRV")" = 1
ph_check "  one line: 'is not a directory'" test "$(lines)" = 1 -a -n "$(grep 'is not a directory' "$PH_TMP/out")"
mkdir "$PH_TMP/dir"
ph_check "a folder not on bpffs: exit 2" test "$(rc_of ph_pinhole --pin-dir "$PH_TMP/dir/sub" attach --policy "$POL" "$PH_IF_SRV")" = 2
ph_check "  one line: 'not on a BPF filesystem'" test "$(lines)" = 1 -a -n "$(grep 'not on a BPF filesystem' "$PH_TMP/out")"
ph_check "  nothing left behind" test -z "$(ls -A "$PH_TMP/dir")"
ph_check "status on a file: exit 1" test "$(rc_of ph_pinhole --pin-dir "$PH_TMP/file" status)" = 1
ph_check "XDP untouched by all that" bash -c "! ip -n $PH_NS_SRV -d link show dev $PH_IF_SRV | grep -q prog/xdp"

ph_expect_ok "attach at $PH_PIN" ph_pinhole attach --policy "$POL" "$PH_IF_SRV"
nsenter --net="/run/netns/$PH_NS_SRV" "$PH_BIN" --pin-dir "$PH_PIN" daemon >"$PH_TMP/daemon.log" 2>&1 &
DAEMON=$!
ph_on_exit "kill $DAEMON"
for _ in $(seq 50); do grep -q ready "$PH_TMP/daemon.log" && break; sleep 0.1; done
ph_check "daemon tracks $PH_PIN" grep -q ready "$PH_TMP/daemon.log"
ln -s "$PH_PIN" "$PH_TMP/link"
for spell in "$PH_PIN/../ph-po-host" "//sys/fs/bpf/./ph-po-host/" "$PH_TMP/link"; do
	ph_check "a second tracker on '$spell' is refused (exit 1)" \
		test "$(rc_of ph_pinhole --pin-dir "$spell" daemon)" = 1
	ph_check "  by the same lock ('already runs for $PH_PIN')" grep -q "already runs for $PH_PIN;" "$PH_TMP/out"
done
ph_check "status through x/../x names the real pin dir" bash -c \
	"nsenter --net=/run/netns/$PH_NS_SRV '$PH_BIN' --pin-dir '$PH_PIN/../ph-po-host' status | grep -q '^instance    $PH_PIN '"
kill "$DAEMON"
wait "$DAEMON" 2>/dev/null

bpftool map create "$PH_PIN/mymap" type array key 4 value 4 entries 1 name mymap ||
	ph_fail "bpftool map create"
ph_expect_ok "detach --all with a foreign pin in the pin dir" ph_pinhole detach --all
ph_check "  the foreign pin survives" test -e "$PH_PIN/mymap"
ph_check "  pinhole's own pins are gone" test ! -e "$PH_PIN/state" -a ! -e "$PH_PIN/prog_xdp"
rm -rf "$PH_PIN"

mkdir -p "$PIN2"
bpftool map create "$PIN2/counters" type array key 4 value 4 entries 1 name counters ||
	ph_fail "bpftool map create"
id0=$(bpftool -j map show pinned "$PIN2/counters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
ph_check "attach over a bpftool-made 'counters': refused (exit 2)" \
	test "$(rc_of ph_pinhole --pin-dir "$PIN2" attach --policy "$POL" "$PH_IF_SRV")" = 2
ph_check "  says it was not made by pinhole" grep -q "counters was not made by pinhole" "$PH_TMP/out"
ph_check "detach --all there: exit 0, nothing to do (no instance)" test "$(rc_of ph_pinhole --pin-dir "$PIN2" detach --all)" = 0
ph_check "  the bpftool map survives both (same id $id0)" test \
	"$(bpftool -j map show pinned "$PIN2/counters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" = "$id0"
ph_check "  and nothing was attached" bash -c "! ip -n $PH_NS_SRV -d link show dev $PH_IF_SRV | grep -q prog/xdp"
rm -rf "$PIN2"

# --------------------------------------------------------- capabilities
ph_section "capabilities instead of uid 0"
CAPS=+bpf,+net_admin,+perfmon
nsenter --net="/run/netns/$PH_NS_SRV" unshare -m --propagation private bash -c '
	set -e
	mount -t bpf bpf /sys/fs/bpf -o mode=0755
	mkdir -p /run/pinhole
	mount -t tmpfs tmpfs /run/pinhole -o mode=0755,uid=65534
	mkdir /sys/fs/bpf/ph-po-caps
	chown 65534:65534 /sys/fs/bpf/ph-po-caps
	as() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	P="'"$PH_BIN"' --pin-dir /sys/fs/bpf/ph-po-caps"
	c='"$CAPS"'
	set +e
	as $P status; echo "nocaps-status=$?"
	as --inh-caps=$c --ambient-caps=$c $P attach --policy '"$POL"' '"$PH_IF_SRV"'; echo "attach=$?"
	as --inh-caps=$c --ambient-caps=$c $P status; echo "status=$?"
	as --inh-caps=$c --ambient-caps=$c $P detach --all; echo "detach=$?"
	as --inh-caps=+bpf,+perfmon --ambient-caps=+bpf,+perfmon $P attach --policy '"$POL"' '"$PH_IF_SRV"'; echo "nonet-attach=$?"
' >"$PH_TMP/caps.log" 2>&1
sed 's/^/      | /' "$PH_TMP/caps.log"
ph_check "uid nobody without capabilities: status exit 2" grep -q '^nocaps-status=2' "$PH_TMP/caps.log"
ph_check "  names what is missing" grep -q 'status needs CAP_BPF (missing: CAP_BPF' "$PH_TMP/caps.log"
ph_check "uid nobody with CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON: attach exit 0" grep -q '^attach=0' "$PH_TMP/caps.log"
ph_check "  status exit 0 (shows the interface)" bash -c "grep -q '^status=0' '$PH_TMP/caps.log' && grep -q '$PH_IF_SRV .*attached' '$PH_TMP/caps.log'"
ph_check "  detach exit 0" grep -q '^detach=0' "$PH_TMP/caps.log"
ph_check "without CAP_NET_ADMIN: attach exit 2, naming it" bash -c \
	"grep -q '^nonet-attach=2' '$PH_TMP/caps.log' && grep -q 'missing: CAP_NET_ADMIN' '$PH_TMP/caps.log'"
ph_check "XDP removed" bash -c "! ip -n $PH_NS_SRV -d link show dev $PH_IF_SRV | grep -q prog/xdp"

# ------------------------------------------------------------ CLI help
ph_section "--version, help"
ph_check "--version: version, build, pin layout" bash -c \
	"'$PH_BIN' --version | grep -q '^pinhole ' && '$PH_BIN' --version | grep -q '^build .* bpf:[0-9a-f]\{16\}' && '$PH_BIN' --version | grep -q '^pin layout [0-9]'"
ph_check "attach --help prints attach's usage, exit 0" bash -c \
	"'$PH_BIN' attach --help | head -1 | grep -q 'usage: .*attach --policy' && '$PH_BIN' attach --help | grep -q -- '--mode' && ! '$PH_BIN' attach --help | grep -q 'pinhole sessions'"
ph_check "help run = run --help" bash -c "cmp -s <('$PH_BIN' help run) <('$PH_BIN' run --help)"
ph_check "help upgrade explains the upgrade" bash -c "'$PH_BIN' help upgrade | grep -q XDP_FLAGS_REPLACE"
ph_check "help frobnicate: exit 1" test "$(rc_of "$PH_BIN" help frobnicate)" = 1

# ------------------------------------------------------ install and unit
ph_section "make install DESTDIR, and the unit as systemd would run it"
ROOT=$PH_TMP/root
ph_expect_ok "make install DESTDIR=$ROOT PREFIX=/usr" \
	make -s -C "$PH_ROOT" install DESTDIR="$ROOT" PREFIX=/usr
for f in usr/sbin/pinhole usr/share/man/man8/pinhole.8 usr/share/man/man5/pinhole.policy.5 \
	etc/pinhole/pinhole.policy usr/lib/systemd/system/pinhole@.service; do
	ph_check "installed /$f" test -s "$ROOT/$f"
done
for m in usr/share/man/man8/pinhole.8 usr/share/man/man5/pinhole.policy.5; do
	ph_check "$(basename "$m") renders without groff warnings" bash -c \
		"groff -man -Tutf8 -ww -z '$ROOT/$m' 2>&1 | { ! grep -q .; }"
done
ph_expect_ok "the default policy checks" "$ROOT/usr/sbin/pinhole" check "$ROOT/etc/pinhole/pinhole.policy"
ph_check "  it admits SSH" grep -q '^service ssh *in *tcp *22' "$ROOT/etc/pinhole/pinhole.policy"
UNIT=$ROOT/usr/lib/systemd/system/pinhole@.service
ph_check "unit: Type=notify, ExecReload, Restart=on-failure" bash -c \
	"grep -q '^Type=notify' '$UNIT' && grep -q '^ExecReload=' '$UNIT' && grep -q '^Restart=on-failure' '$UNIT'"
printf 'PIN_DIR=%s\nOPTIONS=--failsafe-port 22 --mode native\n' "$UNITPIN" >"$ROOT/etc/pinhole/$PH_IF_SRV.conf"
ph_start_tcp_listener 22 || ph_fail "listener 22"
ph_start_tcp_listener 8080 || ph_fail "listener 8080"

# The unit's [Service] as systemd reads it (the parts pinhole@ uses):
# Environment=, EnvironmentFile=, ExecStart=, ExecReload=, %i, ${X}, $X.
# Absolute paths are looked up under DESTDIR; the process runs in the
# server namespace. Steps are driven by the shell through a FIFO.
PY_UNIT='
import os, re, shlex, signal, socket, struct, subprocess, sys, time
unit, root, inst, ns, sock_path, logf, fifo = sys.argv[1:8]
env, svc = {}, {}
sec = None
for line in open(unit):
    line = line.strip()
    if not line or line[0] in "#;": continue
    if line.startswith("["): sec = line; continue
    if sec != "[Service]": continue
    k, _, v = line.partition("=")
    v = v.replace("%i", inst).replace("%I", inst)
    if k == "Environment":
        for a in shlex.split(v):
            n, _, x = a.partition("="); env[n] = x
    elif k == "EnvironmentFile":
        opt = v.startswith("-"); p = root + v.lstrip("-")
        if os.path.exists(p):
            for l in open(p):
                l = l.strip()
                if l and not l.startswith("#"):
                    n, _, x = l.partition("="); env[n] = x.strip("\"")
        elif not opt: sys.exit("missing EnvironmentFile " + p)
    else:
        svc[k] = v
def expand(cmd):
    out = []
    for w in shlex.split(cmd):
        m = re.fullmatch(r"\$([A-Za-z_]+)", w)
        if m:
            out += env.get(m.group(1), "").split(); continue
        w = re.sub(r"\$\{([A-Za-z_]+)\}", lambda m: env.get(m.group(1), ""), w)
        if w.startswith(("/usr/", "/etc/")): w = root + w
        out.append(w)
    return out
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sock_path)
s.settimeout(20)
def say(*a): print(*a, flush=True)
proc = None
def start():
    global proc
    argv = expand(svc["ExecStart"])
    say("ExecStart:", " ".join(argv))
    # stderr as journald would take it (JOURNAL_STREAM names it); stdout
    # (tables, "ready") apart: journald logs it at the default priority.
    err = open(logf, "ab")
    out = open(logf + ".stdout", "ab")
    st = os.fstat(err.fileno())
    e = dict(os.environ, NOTIFY_SOCKET=sock_path,
             JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    proc = subprocess.Popen(["nsenter", "--net=/run/netns/" + ns] + argv,
                            env=e, stdout=out, stderr=err)
def expect(*want):
    got = []
    for w in want:
        while True:
            try:
                data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                say("TIMEOUT waiting for", w, "got", got); return False
            pid = None
            for lvl, typ, d in anc:
                if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", d[:12])[0]
            msg = data.decode()
            got.append(msg.replace("\n", " | "))
            if pid != proc.pid:
                say("message from pid", pid, "not the main pid", proc.pid, "(NotifyAccess=main)")
                return False
            if w in msg.split("\n"):
                say("got", w, "from the main pid:", msg.replace("\n", " | "))
                break
    return True
for step in open(fifo):
    step = step.strip()
    ok = True
    if step == "start":
        start(); ok = expect("READY=1")
    elif step == "reload":
        cmd = svc["ExecReload"].replace("$MAINPID", str(proc.pid))
        say("ExecReload:", cmd)
        subprocess.run(shlex.split(cmd)); ok = expect("RELOADING=1", "READY=1")
    elif step == "kill9":
        proc.kill(); proc.wait(); say("killed -9, exit", proc.returncode)
    elif step == "stop":
        proc.send_signal(signal.SIGTERM); ok = expect("STOPPING=1")
        rc = proc.wait(timeout=10); say("exit", rc); ok = ok and rc == 0
    elif step == "quit":
        break
    say("STEP", step, "OK" if ok else "FAILED")
'
mkfifo "$PH_TMP/steps"
python3 -c "$PY_UNIT" "$UNIT" "$ROOT" "$PH_IF_SRV" "$PH_NS_SRV" "$PH_TMP/notify.sock" \
	"$PH_TMP/unit.log" "$PH_TMP/steps" >"$PH_TMP/unit.out" 2>&1 &
UNITPY=$!
ph_on_exit "kill $UNITPY"
exec 7>"$PH_TMP/steps"
step() {
	local want=$1 n
	n=$(grep -c '^STEP ' "$PH_TMP/unit.out")
	echo "$want" >&7
	for _ in $(seq 250); do
		[ "$(grep -c '^STEP ' "$PH_TMP/unit.out")" -gt "$n" ] && break
		kill -0 "$UNITPY" 2>/dev/null || break
		sleep 0.1
	done
	grep -q "^STEP $want OK" "$PH_TMP/unit.out"
}
ph_check "ExecStart: READY=1 from the main pid" step start
ph_check "  the failsafe/SSH port is admitted" ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 22
ph_check "  port 8080 is dropped" bash -c "! nsenter --net=/run/netns/$PH_NS_CLI nc -z -w1 $PH_SRV4 8080"
ph_check "ExecReload: RELOADING=1 then READY=1" step reload
cp "$ROOT/etc/pinhole/pinhole.policy" "$PH_TMP/good.policy"
echo "service broken in tcp 99999 from any" >>"$ROOT/etc/pinhole/pinhole.policy"
ph_check "ExecReload of a bad policy: RELOADING=1 then READY=1 (still running)" step reload
ph_check "  the error names file:line:col, as an error for journald (<3>)" \
	grep -q "^<3>.*pinhole.policy:[0-9]*:[0-9]*: error" "$PH_TMP/unit.log"
ph_check "  the old policy stays (SSH still admitted)" ph_tcp_connect "$PH_NS_CLI" "$PH_SRV4" 22
cp "$PH_TMP/good.policy" "$ROOT/etc/pinhole/pinhole.policy"
ph_check "journald priorities on every stderr line (<N>...)" bash -c \
	"grep -q . '$PH_TMP/unit.log' && ! grep -v '^<[0-7]>' '$PH_TMP/unit.log' | grep -q ."
ph_check "  notices as info (<6>pinhole: SIGHUP: reloaded ...)" grep -q '^<6>pinhole: SIGHUP: reloaded' "$PH_TMP/unit.log"
ph_check "after kill -9 (Restart=on-failure): ExecStart again -> READY=1" bash -c "true" &&
	{ echo kill9 >&7; sleep 0.3; ph_check "  READY=1" step start; }
ph_check "  it adopted the interface" grep -q "adopted $PH_IF_SRV" "$PH_TMP/unit.log.stdout"
ph_check "stop (SIGTERM): STOPPING=1, exit 0" step stop
ph_check "  detached" bash -c "! ip -n $PH_NS_SRV -d link show dev $PH_IF_SRV | grep -q prog/xdp"
echo quit >&7
exec 7>&-
wait "$UNITPY" 2>/dev/null
sed 's/^/      | /' "$PH_TMP/unit.out"
[ "$PH_FAILS" = 0 ] || sed 's/^/      log | /' "$PH_TMP/unit.log" "$PH_TMP/unit.log.stdout"

ph_finish
