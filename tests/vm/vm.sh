#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Boot a stock Debian kernel package in a qemu guest whose root filesystem is
# this machine's root, shared read-only (9p) under a tmpfs overlay; run one
# command as root in it; power off; exit with the command's status.
#
#   tests/vm/vm.sh [options] KERNEL 'command'
#   tests/vm/vm.sh 6.1 'uname -r'
#
# KERNEL: a Debian kernel ABI name (6.1.0-57-amd64, 6.12.118+deb12-amd64)
# or an alias: 6.1 = what linux-image-amd64 depends on, 6.12 = what
# linux-image-6.12-amd64 depends on (bookworm-security / -backports).
# The package is fetched with `apt-get download` and unpacked under
# $PH_VM_CACHE (dpkg-deb -x): nothing is installed, /boot is not touched.
#
# Options:
#   -m MEM    guest memory (default 4G)
#   -c N      vCPUs (default 2)
#   -t SECS   wall-clock limit of the whole VM (default 1800); exit 124 past it
#   -C DIR    working directory of the command in the guest (default $PWD)
#   -q        console to RUN/console.log, print only the command's output
#   -p        prepare the kernel and initramfs only, do not boot
# Environment:
#   PH_VM_CACHE  kernels, debs, kmod (default /var/tmp/pinhole-vm)
#   PH_VM_RUNS   one directory per run: cmd.sh, output.log, console.log, rc,
#                boot_s, files the command wrote under /vmk (default
#                .output/vm/runs of the tree)
#   PH_VM_ACCEL  auto|kvm|tcg (auto: KVM unless /dev/kvm is PVM, see below)
#   PH_VM_CPU    qemu -cpu model
#   PH_VM_APPEND extra kernel command line
# Exit: the command's status; 77 qemu cannot run here (not root, no qemu,
# qemu does not start); 124 timeout; 125 harness error; 126 the guest
# stopped before the command finished (panic, oops).
set -euo pipefail

HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${PH_VM_CACHE:-/var/tmp/pinhole-vm}
RUNS=${PH_VM_RUNS:-$ROOT/.output/vm/runs}
MEM=4G CPUS=2 LIMIT=1800 CWD=$PWD QUIET=0 PREP=0

die() { echo "vm.sh: $*" >&2; exit 125; }
skip() { echo "SKIP: $*" >&2; exit 77; }
usage() { sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-125}"; }

while getopts "m:c:t:C:qph" o; do
	case $o in
	m) MEM=$OPTARG ;; c) CPUS=$OPTARG ;; t) LIMIT=$OPTARG ;;
	C) CWD=$OPTARG ;; q) QUIET=1 ;; p) PREP=1 ;;
	h) usage 0 ;; *) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
KVER=$1
CMD=${2:-}
[ "$PREP" = 1 ] || [ -n "$CMD" ] || usage

# --- can qemu run at all? (the only reasons to skip) -------------------------
[ "$(id -u)" = 0 ] || skip "needs root (the guest's root is this machine's /, exported by qemu's 9p)"
command -v qemu-system-x86_64 >/dev/null ||
	skip "qemu-system-x86_64 missing (run 'sudo make deps')"
command -v busybox >/dev/null || skip "busybox missing (run 'sudo make deps': busybox-static)"
for t in dpkg-deb apt-get xz gzip; do
	command -v $t >/dev/null || die "$t missing"
done

# --- accelerator ---------------------------------------------------------------
# /dev/kvm here may be served by kvm_pvm: the host is itself a PVM guest, and
# PVM runs only PVM-enabled guest kernels. A stock kernel under it crawls
# through emulation (its decompressor alone takes a quarter of an hour), so
# TCG it is; real KVM is used where it exists.
ACCEL=${PH_VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
	ACCEL=tcg
	[ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] && ACCEL=kvm
fi
case $ACCEL in
kvm) ACCEL_ARGS=(-accel kvm) CPU=${PH_VM_CPU:-host} ;;
tcg) ACCEL_ARGS=(-accel tcg,thread=multi,tb-size=512) CPU=${PH_VM_CPU:-max} ;;
*) die "PH_VM_ACCEL must be auto, kvm or tcg" ;;
esac
# A machine with no devices that quits at once: qemu itself starts.
if ! out=$(echo quit | timeout 30 qemu-system-x86_64 "${ACCEL_ARGS[@]}" -M none \
	-nodefaults -no-user-config -display none -monitor stdio 2>&1); then
	skip "qemu-system-x86_64 ($ACCEL) does not start here: $(echo "$out" | grep -v '^QEMU\|^(qemu)' | head -n 2 | tr '\n' ' ')"
fi

# --- kernel alias -> ABI name ----------------------------------------------------
dep_of() { # the linux-image-ABI package a metapackage depends on
	apt-cache depends "$1" 2>/dev/null |
		sed -n "s/^ *Depends: linux-image-\\($2\\)\$/\\1/p" | head -n 1
}
case $KVER in
6.1) KVER=$(dep_of linux-image-amd64 '6\.1\.0-[0-9]*-amd64') ;;
6.12) KVER=$(dep_of linux-image-6.12-amd64 '6\.12\.[0-9]*+deb[0-9]*-amd64') ;;
esac
[ -n "$KVER" ] || die "cannot resolve the kernel alias $1 (apt-get update?)"
KDIR=$CACHE/kernels/$KVER
KROOT=$KDIR/root
KMOD=$CACHE/kmod

fetch() { # fetch PACKAGE: the newest downloaded .deb of PACKAGE, fetched if none
	local f
	mkdir -p "$CACHE/debs"
	f=$(ls -t "$CACHE/debs/${1}"_*.deb 2>/dev/null | head -n 1 || true)
	if [ -z "$f" ]; then
		(cd "$CACHE/debs" && apt-get download "$1" >/dev/null 2>"$CACHE/debs/apt.err") ||
			die "apt-get download $1 failed: $(tail -n 1 "$CACHE/debs/apt.err") (apt-get update? apt-cache search linux-image)"
		f=$(ls -t "$CACHE/debs/${1}"_*.deb | head -n 1)
	fi
	echo "$f"
}

# kmod's modprobe/depmod, unpacked (this host has no kmod installed): depmod
# for the package's modules, modprobe for the guest's request_module().
# kmod picks its tool by the name it is called as.
prepare_kmod() {
	[ -x "$KMOD/bin/kmod" ] && [ -L "$KMOD/tools/depmod" ] && return
	rm -rf "$KMOD" && mkdir -p "$KMOD/tools"
	dpkg-deb -x "$(fetch kmod)" "$KMOD"
	for t in modprobe depmod; do
		ln -s ../bin/kmod "$KMOD/tools/$t"
	done
}

# The guest's first userland: busybox, and the modules needed to reach the
# host root (virtio PCI, 9p, overlayfs) where the kernel has them as modules;
# modprobe --show-depends lists them in load order (builtins print nothing).
build_initramfs() {
	local ir=$KDIR/initramfs.d m path name
	rm -rf "$ir" && mkdir -p "$ir"/{bin,dev,proc,sys,mods,lower,rw,newroot}
	cp "$(command -v busybox)" "$ir/bin/busybox"
	for a in sh mount umount mkdir insmod switch_root sleep poweroff; do
		ln -s busybox "$ir/bin/$a"
	done
	: >"$ir/modules.load"
	for m in virtio_pci 9pnet_virtio 9p overlay virtio_rng; do
		"$KMOD/tools/modprobe" -d "$KROOT" -S "$KVER" --show-depends "$m" |
			sed -n 's/^insmod \([^ ]*\).*/\1/p' | while read -r path; do
			name=$(basename "$path")
			name=${name%.xz} name=${name%.zst}
			[ -e "$ir/mods/$name" ] && continue
			case $path in
			*.xz) xz -dc "$path" >"$ir/mods/$name" ;;
			*.zst) zstd -qdc "$path" >"$ir/mods/$name" ;;
			*) cp "$path" "$ir/mods/$name" ;;
			esac
			echo "$name" >>"$ir/modules.load"
		done
	done
	install -m 0755 "$HERE/init-stage1" "$ir/init"
	(cd "$ir" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$KDIR/initramfs.gz"
}

prepare_kernel() {
	[ -f "$KDIR/.ready" ] && [ "$KDIR/.ready" -nt "$HERE/init-stage1" ] && return
	echo "vm.sh: preparing $KVER under $KDIR" >&2
	local deb
	deb=$(fetch "linux-image-$KVER")
	rm -rf "$KDIR" && mkdir -p "$KROOT"
	dpkg-deb -x "$deb" "$KROOT"
	echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >"$KDIR/package"
	"$KMOD/tools/depmod" -b "$KROOT" "$KVER"
	build_initramfs
	touch "$KDIR/.ready"
}

prepare_kmod
prepare_kernel
VMLINUZ=$KROOT/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "no $VMLINUZ in the package"
if [ "$PREP" = 1 ]; then
	echo "vm.sh: ready: $(cat "$KDIR/package") in $KDIR"
	exit 0
fi

# --- the run directory: /vmk in the guest, read-write -----------------------------
mkdir -p "$RUNS"
RUN=$(mktemp -d "$RUNS/$(date +%Y%m%d-%H%M%S)-$KVER.XXXX")
printf '%s\n' "$CMD" >"$RUN/cmd.sh"
install -m 0755 "$HERE/init-stage2" "$RUN/stage2"
{
	printf 'VM_KVER=%q\n' "$KVER"
	printf 'VM_PKG=%q\n' "$(cat "$KDIR/package")"
	printf 'VM_CWD=%q\n' "$CWD"
	printf 'VM_MODULES=%q\n' "$KROOT/lib/modules/$KVER"
	printf 'VM_KMOD=%q\n' "$KMOD/bin/kmod"
	printf 'VM_ACCEL=%q\n' "$ACCEL"
} >"$RUN/env"

QEMU=(qemu-system-x86_64 "${ACCEL_ARGS[@]}" -cpu "$CPU" -m "$MEM" -smp "$CPUS"
	-nodefaults -no-user-config -display none -monitor none -no-reboot
	-serial stdio
	-kernel "$VMLINUZ" -initrd "$KDIR/initramfs.gz"
	-append "console=ttyS0 quiet loglevel=3 panic=-1 8250.nr_uarts=1 ${PH_VM_APPEND:-}"
	-fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
	-device "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot"
	-fsdev "local,id=vmk,path=$RUN,security_model=none"
	-device "virtio-9p-pci,fsdev=vmk,mount_tag=vmk"
	-device virtio-rng-pci)

start=$(date +%s)
set +e
# In the background, so that an interrupted run takes its VM down with it.
: >"$RUN/console.log"
timeout -k 10 "$LIMIT" "${QEMU[@]}" </dev/null >"$RUN/console.log" 2>&1 &
qpid=$!
trap 'kill $qpid 2>/dev/null' INT TERM HUP
trap 'kill $qpid 2>/dev/null; wait $qpid 2>/dev/null' EXIT
[ "$QUIET" = 1 ] || tail -n +1 --pid=$qpid -f "$RUN/console.log" &
wait $qpid
qrc=$?
trap - EXIT
wait
[ "$QUIET" = 1 ] && cat "$RUN/output.log" 2>/dev/null
set -e
secs=$(($(date +%s) - start))
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "vm.sh: $KVER: timed out after ${LIMIT}s; see $RUN/console.log" >&2
	exit 124
fi
if [ ! -f "$RUN/rc" ]; then
	echo "vm.sh: $KVER: the guest stopped before the command finished (qemu exit $qrc); last console lines:" >&2
	tail -n 30 "$RUN/console.log" | sed 's/^/    | /' >&2
	exit 126
fi
rc=$(cat "$RUN/rc")
echo "vm.sh: $KVER ($(cat "$KDIR/package"), $ACCEL): exit $rc, boot $(cat "$RUN/boot_s" 2>/dev/null)s, VM ${secs}s; run dir $RUN" >&2
exit "$rc"
