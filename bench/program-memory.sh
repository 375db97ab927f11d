#!/usr/bin/env bash
# What a program costs the machine's memory, the runner against by hand (issue 23): the drop of
# MemAvailable (and of its parts: kernel stacks, page tables, slab, anonymous pages) per program
# while N idle programs (`sleep`) run, one per namespace.
#   runner:  the `fabric` scenario with `--daemon sleep`, once with one and once with two
#            programs a router; the difference, per program, leaves the runner's fixed cost out.
#   by hand: N namespaces made with `ip -batch`, then `ip netns exec NS sleep 3600 &` in each.
#   bench/program-memory.sh [SIDE]   (default 20: 400 namespaces)
# Needs root and a quiet machine; prints KiB per program.
set -euo pipefail
cd "$(dirname "$0")/.."
side=${1:-20}
n=$((side * side))
(cd guests && cargo build --quiet --release --target wasm32-wasip2 -p fabric)
cargo build --quiet --release -p runner
runner=target/release/runner
fabric=guests/target/wasm32-wasip2/release/fabric.wasm
fields='KernelStack|PageTables|Slab|AnonPages|MemAvailable'
snap() { awk -v f="^($fields):" '$0 ~ f {print $1, $2}' /proc/meminfo; }
# Per program between two snapshots (MemAvailable as a drop, the rest as a rise).
per() { paste "$1" "$2" | awk -v n="$3" '{d = ($1 == "MemAvailable:") ? $2 - $4 : $4 - $2; printf "  %-14s %7.1f KiB\n", $1, d / n}'; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The runner, holding the lab 6 s after the programs started; sampled at 4.5 s.
for copies in 1 2; do
    "$runner" run -q --allow-exec bird,sleep --max-namespaces $((n + 10)) --max-links $((4 * n)) \
        --max-processes $((2 * copies * n + 10)) --max-files $((n + 10)) "$fabric" \
        -- --side "$side" --daemon sleep --copies "$copies" --hold-s 6 >"$tmp/out$copies" 2>&1 &
    sleep 4.5
    snap >"$tmp/runner$copies"
    wait
    grep -q "^PASS fabric" "$tmp/out$copies" || { cat "$tmp/out$copies" >&2; exit 1; }
    sleep 2
done
echo "runner, per program (the second $n, their inits included):"
per "$tmp/runner1" "$tmp/runner2" "$n"

# By hand.
names=$(for i in $(seq 0 $((n - 1))); do echo "nslab-pm$$-$i"; done)
cleanup() {
    pkill -9 -f "^sleep 36$$\$" 2>/dev/null || true
    for ns in $names; do echo "netns del $ns"; done | ip -force -batch - 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
for ns in $names; do echo "netns add $ns"; done | ip -batch -
snap >"$tmp/hand0"
for ns in $names; do ip netns exec "$ns" sleep "36$$" >/dev/null 2>&1 & done
sleep 3
snap >"$tmp/hand1"
echo "by hand (ip netns exec), per program:"
per "$tmp/hand0" "$tmp/hand1" "$n"
