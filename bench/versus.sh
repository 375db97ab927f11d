#!/usr/bin/env bash
# Two builds of the runner against each other on the chain (guests/chain): BEFORE, a runner
# built from an older commit, and this tree's, run alternately, several times, in one go.
# Prints each one's median whole-process time and peak RSS per size, and the ratio of this
# tree's to BEFORE's (below 1.00: faster now).
#   bench/versus.sh BEFORE [-r RUNS] [N...]   (default: -r 5, N = 100 1000)
# A runner of another commit builds with, for instance:
#   git worktree add /tmp/before COMMIT && (cd /tmp/before && cargo build --release)
# Needs root and a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:?usage: bench/versus.sh BEFORE-RUNNER [-r RUNS] [N...]}
shift
runs=5
while getopts "r:" opt; do
    case $opt in
        r) runs=$OPTARG ;;
        *) echo "usage: bench/versus.sh BEFORE-RUNNER [-r RUNS] [N...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(100 1000)
[[ -x $before ]] || { echo "bench/versus.sh: $before is not a runner" >&2; exit 2; }
scripts/setup.sh >/dev/null
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
(cd guests && cargo build --quiet --release --target wasm32-wasip2 -p chain)
cargo build --quiet --release -p runner
now=target/release/runner
chain=guests/target/wasm32-wasip2/release/chain.wasm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for n in "${sizes[@]}"; do
    : >"$tmp/before"; : >"$tmp/now"
    for _ in $(seq 1 "$runs"); do
        for which in before now; do
            runner=$before; [[ $which == now ]] && runner=$now
            start=$(date +%s%N)
            /usr/bin/time -f "%M" -o "$tmp/rss" "$runner" run -q --max-namespaces $((n + 10)) \
                --max-links $((2 * n + 10)) "$chain" -- --n "$n" >/dev/null 2>"$tmp/err" || {
                echo "bench/versus.sh: $which at N=$n failed:" >&2; cat "$tmp/err" >&2; exit 1; }
            end=$(date +%s%N)
            echo "$(((end - start) / 1000000)) $(tail -1 "$tmp/rss")" >>"$tmp/$which"
        done
    done
    b_ms=$(cut -d' ' -f1 "$tmp/before" | median); n_ms=$(cut -d' ' -f1 "$tmp/now" | median)
    b_kb=$(cut -d' ' -f2 "$tmp/before" | median); n_kb=$(cut -d' ' -f2 "$tmp/now" | median)
    awk -v n="$n" -v bm="$b_ms" -v bk="$b_kb" -v nm="$n_ms" -v nk="$n_kb" 'BEGIN {
        printf "chain-%s: before %s ms, %s KiB; now %s ms, %s KiB; time %.2fx, rss %.2fx\n",
            n, bm, bk, nm, nk, nm / bm, nk / bk }'
done
