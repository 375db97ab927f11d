#!/usr/bin/env bash
# Install what nslab needs on a Debian machine, quietly, doing nothing that is already done:
# the programs labs run (iproute2, ping, iperf3, and for the gallery's real labs BIRD 2, FRR,
# tcpdump), util-linux (setpriv, lsns, script) for the tests, a C compiler for the program under
# test that the tests build, uidmap (newuidmap: an ordinary user's runs map their subordinate
# ids), keyutils (keyctl: the tests' keyring attacks), Node.js and npm (the JavaScript
# scenarios' build), and Rust's wasm32-wasip2 target for the scenarios. Needs root (apt-get).
set -euo pipefail

need=()
for pair in ip:iproute2 ping:iputils-ping iperf3:iperf3 setpriv:util-linux lsns:util-linux \
    script:bsdutils bird:bird2 /usr/lib/frr/zebra:frr tcpdump:tcpdump cc:gcc newuidmap:uidmap \
    keyctl:keyutils node:nodejs npm:npm; do
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
    # The labs start their own daemons, in their namespaces: none on the host.
    started_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        started_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    [[ -n $started_policy ]] && rm -f /usr/sbin/policy-rc.d
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is not on PATH: install Rust (rustup) first" >&2
    exit 1
fi

# The Rust the project is tested with is pinned in rust-toolchain.toml. Where the machine's
# stable toolchain is that very version, it serves under the pinned name (nothing to download);
# otherwise rustup installs the pinned one.
cd "$(dirname "$0")/.."
pinned=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
if ! RUSTUP_TOOLCHAIN=stable rustup toolchain list | grep -q "^$pinned-"; then
    host=$(RUSTUP_TOOLCHAIN=stable rustc -vV | sed -n 's/^host: //p')
    if [[ $(RUSTUP_TOOLCHAIN=stable rustc --version | awk '{print $2}') == "$pinned" ]]; then
        ln -s "$(RUSTUP_TOOLCHAIN=stable rustc --print sysroot)" \
            "$(rustup show home)/toolchains/$pinned-$host"
    else
        echo "setup: installing Rust $pinned (rust-toolchain.toml)"
        RUSTUP_TOOLCHAIN=stable rustup toolchain install "$pinned" --profile minimal \
            -c rustfmt,clippy >/dev/null 2>&1
    fi
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2 >/dev/null 2>&1
fi
