#!/usr/bin/env bash
# A lab rebuilt over and over (issue 35): ROUNDS times, make a namespace, a veth pair from it to
# a namespace kept throughout, give the new end an address, and delete the namespace. The
# runner (guests/churn) against the same loop typed by hand with `ip`, four process starts a
# round (ip netns add; ip link add ... peer wN netns keep; ip addr add; ip netns del), run
# alternately, several times, in one go. Prints the median time of a round for each and the
# runner's ratio to by hand.
#   bench/churn.sh [-r RUNS] [ROUNDS]   (default: -r 3, 3000 rounds for the runner, a tenth of
#   them by hand, whose round costs a hundred times more)
# Needs root and a quiet machine; the hand loop's namespaces are nslab-bench-churn-*.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
while getopts "r:" opt; do
    case $opt in
        r) runs=$OPTARG ;;
        *) echo "usage: bench/churn.sh [-r RUNS] [ROUNDS]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
rounds=${1:-3000}
by_hand_rounds=$(((rounds + 9) / 10))

scripts/setup.sh >/dev/null
(cd guests && cargo build --quiet --release --target wasm32-wasip2 -p churn)
cargo build --quiet --release -p runner
runner=target/release/runner
churn=guests/target/wasm32-wasip2/release/churn.wasm

keep=nslab-bench-churn-keep
c=nslab-bench-churn-c
tmp=$(mktemp -d)
cleanup() {
    ip netns del "$c" 2>/dev/null || true
    ip netns del "$keep" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# Milliseconds a round: elapsed seconds over rounds.
per_round() { awk -v s="$1" -v n="$2" 'BEGIN {printf "%.3f\n", s * 1000 / n}'; }

by_hand() {
    ip netns add "$keep"
    local start end
    start=$(now)
    for i in $(seq "$by_hand_rounds"); do
        ip netns add "$c"
        # A peer name a round of its own: `ip netns del` returns before the kernel has freed
        # the namespace, and the last round's peer may still be in keep.
        ip -n "$c" link add v type veth peer "w$i" netns "$keep"
        ip -n "$c" addr add 10.1.0.1/24 dev v
        ip netns del "$c"
    done
    end=$(now)
    ip netns del "$keep"
    per_round "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$by_hand_rounds"
}

the_runner() {
    # Compiled once before the timed runs (the cache), as a user's second run would be.
    local start end
    start=$(now)
    "$runner" run -q "$churn" -- --rounds "$rounds" >/dev/null
    end=$(now)
    per_round "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$rounds"
}

"$runner" run -q "$churn" -- --rounds 10 >/dev/null
for _ in $(seq "$runs"); do
    the_runner >>"$tmp/runner"
    by_hand >>"$tmp/hand"
done
r=$(median <"$tmp/runner")
h=$(median <"$tmp/hand")
printf 'churn: %d rounds (runner, whole process), %d by hand; medians of %d\n' "$rounds" "$by_hand_rounds" "$runs"
printf '  runner   %8s ms a round\n' "$r"
printf '  by hand  %8s ms a round (four ip process starts)\n' "$h"
awk -v r="$r" -v h="$h" 'BEGIN {printf "  ratio    %8.2fx by hand\n", r / h}'
