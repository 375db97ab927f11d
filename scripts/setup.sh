#!/usr/bin/env bash
# Install what nslab needs on a Debian machine, quietly, doing nothing that is already done:
# the programs labs run (iproute2, ping, iperf3), util-linux (setpriv, lsns) for the tests,
# and Rust's wasm32-wasip2 target for the scenarios. Needs root (apt-get).
set -euo pipefail

need=()
for pair in ip:iproute2 ping:iputils-ping iperf3:iperf3 setpriv:util-linux lsns:util-linux; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: need root to install: ${need[*]} (run with sudo)" >&2
        exit 1
    fi
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is not on PATH: install Rust (rustup) first" >&2
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2 >/dev/null 2>&1
fi
