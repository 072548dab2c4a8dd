# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# shellcheck shell=bash
#
# Shared library for tests/e2e/*.sh and tests/demo.sh: two network
# namespaces joined by a veth pair, a cleanup stack run exactly once on
# EXIT/INT/TERM, check helpers (✔/✘), and a wrapper that runs the pinhole
# CLI in the server namespace without hiding the root bpffs.
#
# Usage (see tests/e2e/test_services.sh):
#   . "$(dirname "$0")/../lib/netns.sh"
#   ph_require_root; ph_require_bins curl nc
#   ph_init e2e-services            # names, pin dir, traps, stale cleanup
#   ph_netns_setup                  # phe-srv <-> phe-cli, IPv4 + IPv6
#   ph_pinhole attach --policy P "$PH_IF_SRV"
#   ph_expect_ok "http over IPv4" ph_cli curl -s http://$PH_SRV4/
#   ph_finish                       # exit 0, or 1 if a check failed
#
# Environment overrides (all optional):
#   PINHOLE        path of the pinhole binary (default: ./pinhole of the repo)
#   PH_NS_PREFIX   namespace/link prefix ("phe" for tests, "phd" for the demo)
#   PH_NET4        first three octets of the IPv4 /24 (10.199.0)
#   PH_NET6        IPv6 /64 prefix without the host part (fd00:199:)
#   PH_EXTRA_HOSTS further hosts on the same segment, e.g. "evil" (set before
#                  ph_init): namespace $PH_NS_PREFIX-evil, addresses .3 / ::3
#                  (then .4, ...), reached through a bridge in the namespace
#                  $PH_NS_PREFIX-sw instead of a direct veth pair (see
#                  ph_netns_setup); PH_HOST_NS[evil], PH_HOST_IF[evil],
#                  PH_HOST4[evil], PH_HOST6[evil] name them
#   PH_PH_NS       namespace the pinhole CLI runs in (default $PH_NS_SRV); a
#                  test may point PH_PH_NS/PH_PIN at another host's instance
#   PH_RUN_LOG     output file of ph_pinhole_run (default $PH_TMP/run.log)
#   PH_KEEP=1      on exit, leave namespaces, servers and pins in place
#                  (for debugging a failing test by hand; clean up later by
#                  running the test again or `ph_cleanup_stale`)
#   PH_VERBOSE=1   print the output of every check, not only failing ones

# Debian's tools first (what tests/deps.sh installs), as under sudo's
# secure_path: a per-user python3 earlier in PATH (a pyenv shim, ~0.1-0.4 s
# per start against ~0.01 s, and the tests start python3 hundreds of
# times) would also lack python3-scapy and python3-prometheus-client.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
PH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PH_BIN=${PINHOLE:-$PH_ROOT/pinhole}
PH_FAILS=0
PH_CHECKS=0
PH_CLEANUP=()
PH_CLEANED=0
PH_KEEP=${PH_KEEP:-0}
PH_VERBOSE=${PH_VERBOSE:-0}
PH_EXTRA_HOSTS=${PH_EXTRA_HOSTS:-}
PH_NS_EXTRA=()
declare -gA PH_HOST_NS=() PH_HOST_IF=() PH_HOST4=() PH_HOST6=()

if [ -t 1 ]; then
	PH_C_OK=$'\e[32m' PH_C_KO=$'\e[31m' PH_C_HD=$'\e[1;36m' PH_C_DIM=$'\e[2m' PH_C_0=$'\e[0m'
else
	PH_C_OK='' PH_C_KO='' PH_C_HD='' PH_C_DIM='' PH_C_0=''
fi

# ---------------------------------------------------------------------------
# Prerequisites: skip (exit 77) with a message saying what is missing.
# ---------------------------------------------------------------------------
ph_skip() {
	echo "SKIP: $*"
	exit 77
}

ph_require_root() {
	[ "$(id -u)" -eq 0 ] || ph_skip "needs root"
}

ph_require_bins() {
	local b missing=()
	for b in "$@"; do
		command -v "$b" >/dev/null 2>&1 || missing+=("$b")
	done
	[ ${#missing[@]} -eq 0 ] ||
		ph_skip "missing binaries: ${missing[*]} (run 'sudo make deps')"
}

ph_require_pinhole() {
	[ -x "$PH_BIN" ] || ph_skip "pinhole binary not built: $PH_BIN (run 'make')"
}

# ---------------------------------------------------------------------------
# Cleanup stack: ph_on_exit CMD... pushes a command; they run in reverse
# order, once, on EXIT, INT or TERM. Each runs with errors ignored.
# ---------------------------------------------------------------------------
ph_on_exit() {
	PH_CLEANUP+=("$*")
}

ph_run_cleanup() {
	[ "$PH_CLEANED" = 1 ] && return 0
	PH_CLEANED=1
	# A second Ctrl-C must not cut the cleanup short.
	trap '' INT TERM
	if [ "$PH_KEEP" = 1 ]; then
		echo "PH_KEEP=1: leaving namespaces $PH_NS_SRV $PH_NS_CLI ${PH_NS_EXTRA[*]}, pins $PH_PIN, temp ${PH_TMP:-}" >&2
		return 0
	fi
	local i
	for ((i = ${#PH_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${PH_CLEANUP[$i]}" >/dev/null 2>&1 || true
	done
}

ph_trap_signal() {
	local sig=$1
	trap - INT TERM
	echo >&2
	echo "interrupted ($sig): cleaning up" >&2
	ph_run_cleanup
	trap - EXIT
	[ "$sig" = INT ] && exit 130
	exit 143
}

# ---------------------------------------------------------------------------
# ph_init NAME: set names from the prefix, install traps, remove leftovers
# of an earlier run (killed with SIGKILL, or PH_KEEP=1).
#   PH_NS_SRV / PH_NS_CLI   namespaces            phe-srv / phe-cli
#   PH_IF_SRV / PH_IF_CLI   veth ends             phe-s0 / phe-c0
#   PH_SRV4 / PH_CLI4       10.199.0.1 / 10.199.0.2
#   PH_SRV6 / PH_CLI6       fd00:199::1 / fd00:199::2
#   PH_PIN                  /sys/fs/bpf/ph-e2e-NAME (demo: /sys/fs/bpf/ph-demo)
#   PH_TMP                  a fresh mktemp -d, removed on exit
# ---------------------------------------------------------------------------
ph_init() {
	local name=$1
	PH_NAME=$name
	PH_NS_PREFIX=${PH_NS_PREFIX:-phe}
	PH_NET4=${PH_NET4:-10.199.0}
	PH_NET6=${PH_NET6:-fd00:199:}
	PH_NS_SRV=$PH_NS_PREFIX-srv
	PH_NS_CLI=$PH_NS_PREFIX-cli
	PH_IF_SRV=$PH_NS_PREFIX-s0
	PH_IF_CLI=$PH_NS_PREFIX-c0
	PH_SRV4=$PH_NET4.1
	PH_CLI4=$PH_NET4.2
	PH_SRV6=$PH_NET6:1
	PH_CLI6=$PH_NET6:2
	# Further hosts (PH_EXTRA_HOSTS) and the switch joining them: named
	# here, before the stale cleanup, so leftovers of a killed run go too.
	local h n=3
	PH_NS_EXTRA=()
	if [ -n "$PH_EXTRA_HOSTS" ]; then
		PH_NS_SW=$PH_NS_PREFIX-sw
		PH_NS_EXTRA+=("$PH_NS_SW")
		for h in $PH_EXTRA_HOSTS; do
			PH_HOST_NS[$h]=$PH_NS_PREFIX-$h
			PH_HOST_IF[$h]=$PH_NS_PREFIX-h${n}
			PH_HOST4[$h]=$PH_NET4.$n
			PH_HOST6[$h]=$PH_NET6:$n
			PH_NS_EXTRA+=("$PH_NS_PREFIX-$h")
			n=$((n + 1))
		done
	fi
	if [ -z "${PH_PIN:-}" ]; then
		PH_PIN=/sys/fs/bpf/ph-e2e-$name
	fi
	trap 'ph_run_cleanup' EXIT
	trap 'ph_trap_signal INT' INT
	trap 'ph_trap_signal TERM' TERM
	ph_cleanup_stale
	PH_TMP=$(mktemp -d "/tmp/ph-$name.XXXXXX")
	chmod 755 "$PH_TMP"
	ph_on_exit "rm -rf '$PH_TMP'"
	# Registered first, so it runs last: namespaces go after the servers
	# and pinhole have been stopped.
	ph_on_exit "ph_netns_delete"
	ph_on_exit "ph_pin_remove"
}

# Leftovers from a previous run of the same test: processes still in the
# namespaces (only ours: they live in our namespace), namespaces, pins.
ph_cleanup_stale() {
	ph_netns_delete
	ph_pin_remove
}

ph_pin_remove() {
	case "$PH_PIN" in
	/sys/fs/bpf/ph-*) rm -rf "$PH_PIN" 2>/dev/null || true ;;
	esac
}

# Kill the processes whose network namespace is one of ours (a stale
# server of an earlier killed run), by pid, then delete the namespaces.
ph_netns_delete() {
	local ns pid
	for ns in "$PH_NS_SRV" "$PH_NS_CLI" "${PH_NS_EXTRA[@]}"; do
		[ -e "/run/netns/$ns" ] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$pid" 2>/dev/null || true
		done
	done
	for ns in "$PH_NS_SRV" "$PH_NS_CLI" "${PH_NS_EXTRA[@]}"; do
		[ -e "/run/netns/$ns" ] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -9 "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
}

# ---------------------------------------------------------------------------
# Topology:   [phe-cli] phe-c0 <--veth--> phe-s0 [phe-srv]
# IPv6 addresses use nodad, so they are usable at once.
# ---------------------------------------------------------------------------
# With PH_EXTRA_HOSTS (e.g. "evil"), every host gets one veth to a bridge in
# $PH_NS_PREFIX-sw instead (host ends keep the names above; switch ends
# are $PH_NS_PREFIX-s1, -c1, -pN):
#   [phe-srv] phe-s0 -- phe-s1 \
#   [phe-cli] phe-c0 -- phe-c1 -- phe-br [phe-sw]
#   [phe-evil] phe-h3 -- phe-p3 /
ph_netns_setup() {
	ip netns add "$PH_NS_SRV" || return 1
	ip netns add "$PH_NS_CLI" || return 1
	if [ -n "$PH_EXTRA_HOSTS" ]; then
		ph__netns_switch || return 1
	else
		ip link add "$PH_IF_SRV" netns "$PH_NS_SRV" type veth \
			peer name "$PH_IF_CLI" netns "$PH_NS_CLI" || return 1
	fi
	ip -n "$PH_NS_SRV" link set lo up
	ip -n "$PH_NS_CLI" link set lo up
	ip -n "$PH_NS_SRV" addr add "$PH_SRV4/24" dev "$PH_IF_SRV"
	ip -n "$PH_NS_CLI" addr add "$PH_CLI4/24" dev "$PH_IF_CLI"
	ip -n "$PH_NS_SRV" addr add "$PH_SRV6/64" dev "$PH_IF_SRV" nodad
	ip -n "$PH_NS_CLI" addr add "$PH_CLI6/64" dev "$PH_IF_CLI" nodad
	ip -n "$PH_NS_SRV" link set "$PH_IF_SRV" up
	ip -n "$PH_NS_CLI" link set "$PH_IF_CLI" up
	# Wait for the link (carrier) and a working path both ways.
	local i h ok
	for i in $(seq 50); do
		ok=1
		ph_cli ping -c1 -W1 "$PH_SRV4" >/dev/null 2>&1 &&
			ph_cli ping -6 -c1 -W1 "$PH_SRV6" >/dev/null 2>&1 || ok=0
		for h in $PH_EXTRA_HOSTS; do
			[ $ok = 1 ] || break
			ph_in "${PH_HOST_NS[$h]}" ping -c1 -W1 "$PH_SRV4" >/dev/null 2>&1 &&
				ph_in "${PH_HOST_NS[$h]}" ping -6 -c1 -W1 "$PH_SRV6" >/dev/null 2>&1 || ok=0
		done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	echo "netns setup: no connectivity between $PH_NS_CLI${PH_EXTRA_HOSTS:+ ($PH_EXTRA_HOSTS)} and $PH_NS_SRV" >&2
	return 1
}

# The switch of PH_EXTRA_HOSTS: a bridge in $PH_NS_SW, one veth per host.
# Extra hosts get their addresses here; srv and cli in ph_netns_setup.
ph__netns_switch() {
	local sw=$PH_NS_SW br=$PH_NS_PREFIX-br h ns ifc n
	ip netns add "$sw" || return 1
	ip -n "$sw" link set lo up
	ip -n "$sw" link add "$br" type bridge || return 1
	# No IGMP/MLD querier here: flood multicast (neighbour discovery).
	ip -n "$sw" link set "$br" type bridge mcast_snooping 0 2>/dev/null || true
	ip -n "$sw" link set "$br" up
	ip link add "$PH_IF_SRV" netns "$PH_NS_SRV" type veth \
		peer name "$PH_NS_PREFIX-s1" netns "$sw" || return 1
	ip link add "$PH_IF_CLI" netns "$PH_NS_CLI" type veth \
		peer name "$PH_NS_PREFIX-c1" netns "$sw" || return 1
	for h in $PH_EXTRA_HOSTS; do
		ns=${PH_HOST_NS[$h]} ifc=${PH_HOST_IF[$h]} n=${ifc##*-h}
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up
		ip link add "$ifc" netns "$ns" type veth \
			peer name "$PH_NS_PREFIX-p$n" netns "$sw" || return 1
		ip -n "$ns" addr add "${PH_HOST4[$h]}/24" dev "$ifc"
		ip -n "$ns" addr add "${PH_HOST6[$h]}/64" dev "$ifc" nodad
		ip -n "$ns" link set "$ifc" up
		ip -n "$sw" link set "$PH_NS_PREFIX-p$n" master "$br" up
	done
	ip -n "$sw" link set "$PH_NS_PREFIX-s1" master "$br" up
	ip -n "$sw" link set "$PH_NS_PREFIX-c1" master "$br" up
}

# Run a command in a namespace. nsenter --net changes only the network
# namespace, so bpffs pins under /sys/fs/bpf stay visible (ip netns exec
# would remount /sys in a private mount namespace).
ph_in() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}
ph_srv() { ph_in "$PH_NS_SRV" "$@"; }
ph_cli() { ph_in "$PH_NS_CLI" "$@"; }

# The pinhole CLI for the server namespace, with the test's pin dir.
# PH_PH_NS (default $PH_NS_SRV) selects another host's instance.
ph_pinhole() {
	nsenter --net="/run/netns/${PH_PH_NS:-$PH_NS_SRV}" "$PH_BIN" --pin-dir "$PH_PIN" "$@"
}

# Detach everything pinhole attached in the server namespace; used by the
# cleanup stack (ph_on_exit ph_pinhole_detach) and by the tests themselves.
ph_pinhole_detach() {
	ph_pinhole detach --all >/dev/null 2>&1 ||
		ph_pinhole detach "$PH_IF_SRV" >/dev/null 2>&1 || true
}

# ph_sessions_get PATH: one value of `pinhole sessions -j`, a dotted path
# into its JSON ("totals.used", "sessions.0.state"); a list gives its
# length; -1 if the command or the path fails.
ph_sessions_get() {
	ph_pinhole sessions -j 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(len(v) if isinstance(v, list) else v)' "$1" 2>/dev/null || echo -1
}

# Start `pinhole run` in the background (tracker + enforcement) and wait for
# its "ready" line. Sets PH_RUN_PID; output goes to $PH_TMP/run.log (or
# $PH_RUN_LOG); runs in ${PH_PH_NS:-$PH_NS_SRV}.
ph_pinhole_run() {
	local log=${PH_RUN_LOG:-$PH_TMP/run.log} i
	: >"$log"
	nsenter --net="/run/netns/${PH_PH_NS:-$PH_NS_SRV}" "$PH_BIN" --pin-dir "$PH_PIN" \
		run "$@" >"$log" 2>&1 &
	PH_RUN_PID=$!
	ph_on_exit "ph_pinhole_run_stop"
	for i in $(seq 100); do
		grep -q ready "$log" && return 0
		kill -0 "$PH_RUN_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "pinhole run did not print 'ready':" >&2
	sed 's/^/    | /' "$log" >&2
	return 1
}

ph_pinhole_run_stop() {
	[ -n "${PH_RUN_PID:-}" ] || return 0
	kill -TERM "$PH_RUN_PID" 2>/dev/null || true
	local i
	for i in $(seq 50); do
		kill -0 "$PH_RUN_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$PH_RUN_PID" 2>/dev/null || true
	wait "$PH_RUN_PID" 2>/dev/null || true
	PH_RUN_PID=
}

# ---------------------------------------------------------------------------
# Checks. Every check prints one ✔ or ✘ line; a failed check prints the
# command's output and counts towards the exit status of ph_finish.
# ---------------------------------------------------------------------------
ph_section() {
	printf '\n%s== %s ==%s\n' "$PH_C_HD" "$*" "$PH_C_0"
}

ph_say() {
	printf '%s%s%s\n' "$PH_C_DIM" "$*" "$PH_C_0"
}

ph_pass() {
	PH_CHECKS=$((PH_CHECKS + 1))
	printf '  %s✔%s %s\n' "$PH_C_OK" "$PH_C_0" "$*"
}

ph_fail() {
	PH_CHECKS=$((PH_CHECKS + 1))
	PH_FAILS=$((PH_FAILS + 1))
	printf '  %s✘ %s%s\n' "$PH_C_KO" "$*" "$PH_C_0"
}

# Run CMD with a timeout: external commands under timeout(1); shell
# functions (which cannot run under timeout(1)) as they are: every helper
# function here bounds its own commands (curl --max-time, nc -w, ...).
ph__run() {
	case "$(type -t "$1")" in
	function | builtin | keyword) "$@" ;;
	*) timeout "${PH_TIMEOUT:-30}" "$@" ;;
	esac
}

# ph_expect_ok DESC CMD...: CMD must exit 0.
ph_expect_ok() {
	local desc=$1 out rc
	shift
	out=$(ph__run "$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		ph_pass "$desc"
		[ "$PH_VERBOSE" = 1 ] && [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/      | /'
		return 0
	fi
	ph_fail "$desc (exit $rc: $*)"
	[ -n "$out" ] && printf '%s\n' "$out" | tail -n 15 | sed 's/^/      | /'
	return 1
}

# ph_expect_fail DESC CMD...: CMD must exit non-zero.
ph_expect_fail() {
	local desc=$1 out rc
	shift
	out=$(ph__run "$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		ph_pass "$desc"
		[ "$PH_VERBOSE" = 1 ] && [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/      | /'
		return 0
	fi
	ph_fail "$desc (unexpectedly succeeded: $*)"
	[ -n "$out" ] && printf '%s\n' "$out" | tail -n 15 | sed 's/^/      | /'
	return 1
}

# ph_check DESC CONDITION-CMD...: like ph_expect_ok, for local conditions
# (no timeout, no output capture).
ph_check() {
	local desc=$1
	shift
	if "$@"; then
		ph_pass "$desc"
		return 0
	fi
	ph_fail "$desc"
	return 1
}

# ph_fatal MSG: a setup step failed; nothing after it can be meaningful.
ph_fatal() {
	ph_fail "$*"
	echo "FAIL: setup failed: $*" >&2
	exit 1
}

ph_finish() {
	echo
	if [ "$PH_FAILS" -eq 0 ]; then
		echo "PASS: $PH_NAME: $PH_CHECKS checks passed"
		exit 0
	fi
	echo "FAIL: $PH_NAME: $PH_FAILS of $PH_CHECKS checks failed"
	exit 1
}

# ---------------------------------------------------------------------------
# Network helpers.
# ---------------------------------------------------------------------------

# ph_wait_listen NS PORT [tcp|udp] [TIMEOUT_S]: wait until a socket listens.
ph_wait_listen() {
	local ns=$1 port=$2 proto=${3:-tcp} t=${4:-10} i flag=-Hltn
	[ "$proto" = udp ] && flag=-Hlun
	for i in $(seq $((t * 10))); do
		if ph_in "$ns" ss $flag "sport = :$port" 2>/dev/null | grep -q .; then
			return 0
		fi
		sleep 0.1
	done
	echo "nothing listens on $proto port $port in $ns" >&2
	return 1
}

# ph_tcp_connect NS HOST PORT: one TCP connect attempt with a 1 s timeout.
ph_tcp_connect() {
	ph_in "$1" nc -z -w1 "$2" "$3"
}

# URL host part for an address (IPv6 in brackets).
ph_urlhost() {
	case "$1" in
	*:*) printf '[%s]' "$1" ;;
	*) printf '%s' "$1" ;;
	esac
}

# ---------------------------------------------------------------------------
# pinhole stats/flows JSON.
# ph_stat REASON [in|out]  prints the packet count of one reason (summed over
# CPUs and, without a direction, over both hooks); 0 if absent. The exact
# JSON layout of `stats -j` is discovered rather than assumed: any object
# keyed by the reason name, or any object with "reason"/"name" equal to it,
# is counted; a direction is recognised from a key or field on the path
# ("in", "ingress", "xdp" / "out", "egress", "tc").
# ---------------------------------------------------------------------------
PH_STATS_PY='
import json, sys
reason, want = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
IN = {"in", "ingress", "xdp", "rx"}
OUT = {"out", "egress", "tc", "tx"}
def dir_of(words):
    d = ""
    for w in words:
        w = str(w).lower()
        if w in IN: d = "in"
        elif w in OUT: d = "out"
    return d
def pkts(v):
    if isinstance(v, bool): return 0
    if isinstance(v, (int, float)): return int(v)
    if isinstance(v, dict):
        for k in ("packets", "pkts", "count"):
            if k in v and isinstance(v[k], (int, float)): return int(v[k])
    return 0
total = 0
def count(v, path):
    # v: the counters of one reason; split by hook if it has in/out parts
    if isinstance(v, dict):
        parts = {k: x for k, x in v.items() if dir_of([k])}
        if parts:
            return sum(pkts(x) for k, x in parts.items()
                       if not want or dir_of([k]) == want)
    if not want or dir_of(path) == want:
        return pkts(v)
    return 0
def walk(o, path):
    global total
    if isinstance(o, dict):
        tag = [str(o[k]) for k in ("dir", "direction", "hook") if k in o and isinstance(o[k], str)]
        for k in ("reason", "name"):
            if o.get(k) == reason:
                total += count(o, path + tag)
                return
        for k, v in o.items():
            if k == reason:
                total += count(v, path + tag)
            else:
                walk(v, path + tag + [k])
    elif isinstance(o, list):
        for v in o: walk(v, path)
data = sys.stdin.read()
try:
    walk(json.loads(data), [])
except ValueError:
    sys.stderr.write("stats -j: not JSON: %r\n" % data[:200]); sys.exit(1)
print(total)
'

ph_stat() {
	ph_pinhole stats -j 2>/dev/null | python3 -c "$PH_STATS_PY" "$@"
}
