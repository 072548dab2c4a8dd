#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Install the Debian packages pinhole builds and tests with. Idempotent:
# packages already installed are skipped, and apt is not touched at all
# when nothing is missing.
set -euo pipefail

PKGS=(
	make gcc clang llvm pkg-config libbpf-dev libxdp-dev libelf-dev zlib1g-dev bpftool
	iproute2 iputils-ping procps util-linux xdp-tools nftables conntrack
	vsftpd openssh-server openssh-client nginx lftp curl openssl
	tcpdump tcpreplay python3 python3-scapy libfuzzer-14-dev
	netcat-openbsd python3-prometheus-client
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PKGS[@]} packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run 'sudo make deps' (installing needs root)" >&2
	exit 2
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Servers are started by the tests inside namespaces; keep apt from
# starting their system instances on the host.
policy_rc=/usr/sbin/policy-rc.d
created_policy_rc=0
if [ ! -e "$policy_rc" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
	chmod +x "$policy_rc"
	created_policy_rc=1
fi
trap '[ $created_policy_rc = 1 ] && rm -f "$policy_rc"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps: done"
