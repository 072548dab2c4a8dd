#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# make test's share of the kernel matrix (docs/kernels.md): on Debian's stock
# 6.1 kernel in qemu, both programs through the verifier (instruction counts
# printed) and the BPF tests. Fails if a program is rejected; skips (77)
# only if qemu cannot run here. The full matrix: make vmtest KERNEL=6.1|6.12.
exec bash "$(dirname "$0")/vmtest.sh" 6.1 quick
