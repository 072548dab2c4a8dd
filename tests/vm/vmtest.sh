#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The kernel matrix: pinhole's checks on a stock Debian kernel in qemu
# (tests/vm/vm.sh boots it, tests/vm/guest.sh runs in it), against the
# tree as built now. `make vmtest KERNEL=6.1|6.12 [VMTEST=...]` runs this.
#   tests/vm/vmtest.sh KERNEL [SUITE]
# Suites:
#   full    (default) kernel info, each program verified alone, attach/detach
#           on a veth in every XDP mode, make unit bpftest, an e2e subset
#   quick   kernel info, each program verified alone, attach/detach in
#           every XDP mode (what `make test` runs on 6.1:
#           tests/vm/test_kernel_6.1.sh, ~2 min)
#   ci      kernel info, each program verified alone, make bpftest (what
#           .ci/run runs on 6.1 after `make test`: the BPF tests read
#           thousands of per-CPU counters per check, ~13 min under TCG)
#   pktgen  the tests/perf/pktgen recipes (kernel pktgen, tcpreplay,
#           trafgen) against pinhole on a veth
#   share   libxdp's dispatcher, which this machine's kernel lacks (no
#           extension programs): xdp-filter and pinhole on one interface
#           (tests/e2e/test_cli_tools.sh) and an upgrade in place inside the
#           dispatcher (tests/e2e/test_po_upgrade.sh); both must take the
#           dispatcher path there (PH_NEED_DISPATCHER=1)
#   STEP,STEP...  any steps of tests/vm/guest.sh, e.g. verify,attach
# Env: PH_VM_E2E (e2e scripts of the e2e step), N (packets per pktgen
# thread), PH_VM_LIMIT (seconds), and those of tests/vm/vm.sh.
# Exit: 0 all passed, 1 a check failed, 77 qemu cannot run here (see
# vm.sh), 124 timeout, 125 harness error, 126 the guest died.
set -uo pipefail
cd "$(dirname "$0")/../.."

KERNEL=${1:?usage: vmtest.sh KERNEL [full|quick|pktgen|STEP,...]}
SUITE=${2:-full}
case $SUITE in
full) STEPS="info verify attach unit bpftest e2e" LIMIT=2400 ;;
quick) STEPS="info verify attach" LIMIT=600 ;;
ci) STEPS="info verify bpftest" LIMIT=2400 ;;
pktgen) STEPS="info pktgen" LIMIT=1200 ;;
share) STEPS="info e2e" LIMIT=2400
	PH_VM_E2E=${PH_VM_E2E:-tests/e2e/test_cli_tools.sh tests/e2e/test_po_upgrade.sh} ;;
*) STEPS=${SUITE//,/ } LIMIT=2400 ;;
esac
LIMIT=${PH_VM_LIMIT:-$LIMIT}

for f in pinhole .output/tests/vm/phverify; do
	[ -x "$f" ] || { echo "vmtest: $f not built (run 'make vmtest', which builds it)" >&2; exit 125; }
done

echo "vmtest: $KERNEL, suite $SUITE ($STEPS), limit ${LIMIT}s"
start=$(date +%s)
log=$(mktemp /tmp/ph-vmtest.XXXXXX)
trap 'rm -f "$log"' EXIT
# The guest starts with a clean environment: pass on what the steps read.
cmd="bash tests/vm/guest.sh $STEPS"
for v in PH_VM_E2E N; do
	[ -n "${!v:-}" ] && cmd="$v=$(printf %q "${!v}") $cmd"
done
bash tests/vm/vm.sh -t "$LIMIT" "$KERNEL" "$cmd" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

echo
echo "===== vmtest summary: $KERNEL, suite $SUITE, $(($(date +%s) - start)) s, exit $rc"
grep -m1 '^=== vm: ' "$log" | sed 's/^=== vm: /  kernel: /'
grep -E '^VERIFY ' "$log" | sed 's/^/  /'
grep -E '^    PROG ' "$log" | sort -u -k3,3 | sed 's/^    /  live after attach: /'
grep -E '^RESULT (FAIL|skip)' "$log" | sed 's/^/  /'
grep -E '^=== [0-9].*: [0-9]+ ok, [0-9]+ failed' "$log" | sed 's/^=== /  /'
grep -E '^vm.sh: ' "$log" | sed 's/^/  /'
exit "$rc"
