#!/usr/bin/env bash
# Time building and removing a chain of N namespaces joined by veth pairs (addresses on both
# ends, links up): the runner with guests/chain against the same lab as an `ip` shell script
# and with `ip -batch`. Reports wall time and peak memory for each. Needs root; uses
# namespaces named nslab-bench-* for the ip variants and removes them.
#   bench/chain.sh [N...]        (default: 10 100 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
scripts/build-guests.sh
cargo build --quiet --release -p nslab-host
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(10 100 1000)
runner=target/release/runner
chain=guests/target/wasm32-wasip2/release/chain.wasm

ip_script() {  # N: the chain as plain `ip` commands, then its removal
    local n=$1 i
    for ((i = 0; i < n; i++)); do ip netns add "nslab-bench-$i"; done
    for ((i = 1; i < n; i++)); do
        local a="nslab-bench-$((i - 1))" b="nslab-bench-$i" hi=$(((i >> 6) & 255)) lo=$(((i & 63) << 2))
        ip link add right netns "$a" type veth peer left netns "$b"
        ip -n "$a" address add "10.$hi.$lo.1/30" dev right
        ip -n "$b" address add "10.$hi.$lo.2/30" dev left
        ip -n "$a" link set right up
        ip -n "$b" link set left up
    done
    for ((i = 0; i < n; i++)); do ip netns delete "nslab-bench-$i"; done
}

ip_batch() {  # N: the same with `ip -batch`: one batch for namespaces and veth pairs, then one
    # per namespace for its addresses and links (a batch cannot change namespace between lines)
    local n=$1 i
    {
        for ((i = 0; i < n; i++)); do echo "netns add nslab-bench-$i"; done
        for ((i = 1; i < n; i++)); do
            echo "link add right netns nslab-bench-$((i - 1)) type veth peer left netns nslab-bench-$i"
        done
    } | ip -batch -
    for ((i = 0; i < n; i++)); do
        local hi=$(((i >> 6) & 255)) lo=$(((i & 63) << 2)) nhi=$((((i + 1) >> 6) & 255)) nlo=$((((i + 1) & 63) << 2))
        {
            if ((i > 0)); then echo "address add 10.$hi.$lo.2/30 dev left"; echo "link set left up"; fi
            if ((i < n - 1)); then echo "address add 10.$nhi.$nlo.1/30 dev right"; echo "link set right up"; fi
        } | ip -n "nslab-bench-$i" -batch -
    done
    for ((i = 0; i < n; i++)); do echo "netns delete nslab-bench-$i"; done | ip -batch -
}

measure() {  # LABEL CMD...: wall seconds and peak RSS of one run
    local label=$1; shift
    local out
    out=$(mktemp)
    /usr/bin/time -f "%e %M" -o "$out" "$@" >/dev/null 2>&1
    printf "%-28s %8s s %10s KiB\n" "$label" $(tail -1 "$out")
    rm -f "$out"
}

trap 'for ns in $(ip netns list | awk "/^nslab-bench-/{print \$1}"); do ip netns delete "$ns"; done' EXIT
export -f ip_script ip_batch
printf "%-28s %10s %14s\n" "lab (build + remove)" "wall" "peak RSS"
for n in "${sizes[@]}"; do
    measure "runner, chain of $n" "$runner" run -q --max-namespaces $((n + 1)) --max-links $((2 * n)) "$chain" -- --n "$n"
    measure "ip script, chain of $n" bash -c "ip_script $n"
    measure "ip -batch, chain of $n" bash -c "ip_batch $n"
done
