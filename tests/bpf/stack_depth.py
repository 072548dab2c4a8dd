#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Combined BPF stack of each program's deepest call chain, from the object.

    stack_depth.py [--budget N] [-v] OBJ.bpf.o...

The verifier refuses a program whose call chain (the program and the
subprograms it calls, each frame rounded up to 32 bytes) needs more than
512 bytes of stack ("combined stack size of N calls is M. Too large").
Which chain it walks depends on what it explores, so a kernel may refuse
what another accepts (Debian 6.1 refused 544 bytes that this machine's
kernel let through, issue 9). The compiler's frame of a function (the
deepest r10 offset it touches) bounds what the verifier counts for it, so
the deepest chain in the object bounds what any kernel counts. Over
--budget (default 480: one 32-byte frame of margin under 512) the build
fails, naming the chain. Exit 0 within budget, 1 over, 2 bad input.
"""
import re
import subprocess
import sys

LIMIT = 512


def frames(obj):
    """Returns ({function: frame bytes}, {function: set of callees},
    [program names]) read from llvm-objdump's disassembly of @obj."""
    syms = {}  # .text offset -> subprogram name
    progs = []
    tab = subprocess.run(["llvm-objdump", "-t", obj], capture_output=True,
                         text=True, check=True).stdout
    for line in tab.splitlines():
        f = line.split()
        if len(f) >= 6 and f[2] == "F":
            if f[3] == ".text":
                syms[int(f[0], 16)] = f[-1]
            elif "g" in f[1]:
                progs.append(f[-1])  # a global function in a SEC(): a program
    dis = subprocess.run(["llvm-objdump", "-dr", "--no-show-raw-insn", obj],
                         capture_output=True, text=True, check=True).stdout
    stack, calls, cur, pend = {}, {}, None, None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:", line)
        if m:
            if not m.group(1).startswith("LBB"):  # not a basic block label
                cur = m.group(1)
                stack.setdefault(cur, 0)
                calls.setdefault(cur, set())
            continue
        if cur is None:
            continue
        for off in re.findall(r"\(r10 - (\d+)\)", line):
            stack[cur] = max(stack[cur], int(off))
        m = re.match(r"^\s*\d+:\s+call (-?\d+)\s*$", line)
        if m:
            pend = int(m.group(1))
            continue
        m = re.search(r"R_BPF_64_32\s+(\S+)", line)
        if m and pend is not None:
            # A call to a subprogram (helpers carry no relocation). Against
            # .text itself, a static function: imm + 1 is its insn index.
            t = m.group(1)
            if t == ".text":
                t = syms.get((pend + 1) * 8, "?text+%d" % ((pend + 1) * 8))
            calls[cur].add(t)
        pend = None
    return stack, calls, progs


def rounded(n):
    return (n + 31) // 32 * 32


def deepest(f, stack, calls, seen=()):
    """(bytes, chain) of the deepest call chain from @f."""
    best = (rounded(stack.get(f, 0)), [f])
    for c in sorted(calls.get(f, ())):
        if c in seen or c == f:
            continue  # the verifier refuses recursion anyway
        d, chain = deepest(c, stack, calls, seen + (f,))
        d += rounded(stack.get(f, 0))
        if d > best[0]:
            best = (d, [f] + chain)
    return best


def main(argv):
    budget, verbose, objs = 480, False, []
    it = iter(argv)
    for a in it:
        if a == "--budget":
            budget = int(next(it))
        elif a == "-v":
            verbose = True
        else:
            objs.append(a)
    if not objs:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    rc = 0
    for obj in objs:
        try:
            stack, calls, progs = frames(obj)
        except (OSError, subprocess.CalledProcessError) as e:
            print("stack_depth: %s: %s" % (obj, e), file=sys.stderr)
            return 2
        if not progs:
            print("stack_depth: %s: no BPF program in it" % obj, file=sys.stderr)
            return 2
        for p in progs:
            d, chain = deepest(p, stack, calls)
            desc = " > ".join("%s(%d)" % (f, stack.get(f, 0)) for f in chain)
            over = d > budget
            if over or verbose:
                print("%s: %s: deepest call chain %d bytes of %d (budget %d): %s"
                      % ("FAIL" if over else "ok", p, d, LIMIT, budget, desc))
            if over:
                print("  the verifier adds each frame rounded up to 32 bytes and "
                      "refuses more than %d; inline a callee or move locals to "
                      "the per-CPU scratch (docs/kernels.md, \"Stack\")" % LIMIT)
                rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
