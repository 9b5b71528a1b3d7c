#!/usr/bin/env bash
# Install from apt (as root, Debian 12) what building and testing pynfct needs: the C libraries and their
# -dev packages, a compiler, Python's headers and venv, conntrack-tools (the tests compare with it) and
# the network tools the tests use. scripts/setup.sh and .ci/run call it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    conntrack nftables iproute2 iputils-ping kmod util-linux strace \
    libnetfilter-conntrack-dev libmnl-dev pkg-config gcc libc6-dev python3-dev python3-venv >/dev/null
