#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Run test executables and report each as PASS / FAIL / SKIP.
# Exit code convention of every test: 0 pass, 77 skip (prerequisite
# missing, e.g. not root), anything else fail.
#   run-tests.sh unit|bpf|fuzz|e2e|vm FILE... run the given tests
#   run-tests.sh all                         every suite, in order
set -uo pipefail
cd "$(dirname "$0")/.."
# Debian's tools first, as under sudo (secure_path), also for the perf
# smoke's python3: see tests/lib/netns.sh.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SKIP=77
suite=${1:?usage: run-tests.sh unit|bpf|fuzz|e2e|vm|all [FILE...]}
shift
export FUZZ_SECONDS=${FUZZ_SECONDS:-10}

if [ "$suite" = all ]; then
	rc=0
	shopt -s nullglob
	bash "$0" unit .output/tests/unit/test_* || rc=1
	bash "$0" bpf .output/tests/bpf/test_* || rc=1
	bash "$0" fuzz .output/tests/fuzz/fuzz_* || rc=1
	bash "$0" e2e tests/e2e/test_*.sh || rc=1
	# Debian's stock 6.1 in qemu: both programs verified, attach/detach in
	# every XDP mode (~2 min; docs/kernels.md). PH_VMTEST=0 leaves it out.
	if [ "${PH_VMTEST:-1}" = 1 ]; then
		bash "$0" vm tests/vm/test_*.sh || rc=1
	else
		echo "vm: skipped (PH_VMTEST=0)"
	fi
	if [ -f tests/perf/Makefile ]; then
		make --no-print-directory -C tests/perf smoke || rc=1
	fi
	[ $rc = 0 ] && echo "ALL TESTS PASSED" || echo "SOME TESTS FAILED"
	exit $rc
fi

pass=0 fail=0 skip=0 failed=()
for t in "$@"; do
	[ -e "$t" ] || continue
	name=$(basename "$t")
	log=$(mktemp /tmp/pinhole-test.XXXXXX)
	start=$(date +%s)
	case "$suite" in
	e2e | vm) bash "$t" >"$log" 2>&1 ;;
	fuzz)
		corpus="tests/fuzz/corpus/${name#fuzz_}"
		mkdir -p "$corpus"
		work=$(mktemp -d /tmp/pinhole-fuzz.XXXXXX)
		# Crash inputs are kept for reproduction: .output/fuzz-artifacts/
		mkdir -p .output/fuzz-artifacts
		"$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
			-artifact_prefix=.output/fuzz-artifacts/"$name"- \
			"$work" "$corpus" >"$log" 2>&1
		r=$?
		rm -rf "$work"
		(exit $r)
		;;
	*) "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	secs=$(($(date +%s) - start))
	if [ $rc = 0 ]; then
		pass=$((pass + 1))
		printf '  PASS  %-40s %3ss\n' "$name" "$secs"
		# the kernel matrix: what each kernel's verifier said
		[ "$suite" = vm ] && grep -E '^  (VERIFY|kernel:)' "$log" | sed 's/^/      /'
	elif [ $rc = $SKIP ]; then
		skip=$((skip + 1))
		printf '  SKIP  %-40s %s\n' "$name" "$(grep -m1 -i 'skip' "$log")"
	else
		fail=$((fail + 1))
		failed+=("$name")
		printf '  FAIL  %-40s %3ss (exit %d)\n' "$name" "$secs" "$rc"
		sed 's/^/        | /' "$log" | tail -n 60
	fi
	rm -f "$log"
done
printf '%s: %d passed, %d failed, %d skipped\n' "$suite" $pass $fail $skip
[ $fail = 0 ]
