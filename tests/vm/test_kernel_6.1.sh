#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# make test's share of the kernel matrix (docs/kernels.md): on Debian's stock
# 6.1 kernel in qemu, both programs through the verifier (instruction counts
# printed), attach/detach in every XDP mode. Fails if a program is rejected;
# skips (77) only if qemu cannot run here. The BPF tests on 6.1 run from
# .ci/run after make test (too slow under TCG for make test's budget); the
# full matrix: make vmtest KERNEL=6.1|6.12.
exec bash "$(dirname "$0")/vmtest.sh" 6.1 quick
