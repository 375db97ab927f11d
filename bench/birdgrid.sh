#!/usr/bin/env bash
# Labs of routing daemons (issue 23): an S x S grid of BIRD OSPF routers built by the runner
# (guests/fabric) and typed by hand (../shared/bench/birdgrid/byhand.sh: ip -batch and
# `ip netns exec ... bird &`), run alternately, several times, in one go. Prints each phase's
# median for both and the runner's ratio to by hand:
#   build (namespaces, links, addresses), files (the bird.conf of each), start (every daemon),
#   converge (the kernel's routing tables of two corners know every router; the kernel's own
#   speed, reported, not compared), and teardown: for the runner, from the scenario's last line
#   to the runner's exit (every daemon gone, every namespace closed); by hand, kill -9 of every
#   daemon until they are all gone, then ip netns del.
#   bench/birdgrid.sh [-r RUNS] [-w CONVERGE_S] [SIDE...]   (default: -r 3, -w 60, SIDE = 10 20)
# RUNNER=PATH measures another build of the runner (an older commit's, to compare).
# Needs root and a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
wait_s=60
while getopts "r:w:" opt; do
    case $opt in
        r) runs=$OPTARG ;;
        w) wait_s=$OPTARG ;;
        *) echo "usage: bench/birdgrid.sh [-r RUNS] [-w CONVERGE_S] [SIDE...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
sides=("$@"); [[ ${#sides[@]} -gt 0 ]] || sides=(10 20)

byhand=../shared/bench/birdgrid/byhand.sh
[[ -r $byhand ]] || { echo "bench/birdgrid.sh: $byhand is missing" >&2; exit 2; }
scripts/setup.sh >/dev/null
(cd guests && cargo build --quiet --release --target wasm32-wasip2 -p fabric)
[[ -n ${RUNNER:-} ]] || cargo build --quiet --release -p runner
runner=${RUNNER:-target/release/runner}
fabric=guests/target/wasm32-wasip2/release/fabric.wasm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

now() { date +%s.%N; }
# The value of KEY=VALUEs in a SCALE line, without its unit and any '>'.
field() { sed -n "s/.* $1=>\{0,1\}\([0-9.]*\)s.*/\1/p" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for side in "${sides[@]}"; do
    n=$((side * side))
    : >"$tmp/runner" ; : >"$tmp/byhand"
    for r in $(seq 1 "$runs"); do
        # The runner: the scenario prints its SCALE line last; what follows is teardown.
        : >"$tmp/line"
        "$runner" run -q --allow-exec bird,sleep --max-namespaces $((n + 10)) --max-links $((4 * n)) \
            --max-processes $((2 * n + 10)) --max-files $((n + 10)) --program-memory $((4 * n))MiB \
            --timeout 30m "$fabric" \
            -- --side "$side" --converge-s "$wait_s" 2>&1 | while IFS= read -r line; do
                echo "$line" >>"$tmp/out"
                case $line in *SCALE-RUNNER*) echo "$(now) ${line#*] }" >"$tmp/line" ;; esac
            done || true  # a failed run is reported below, with what it printed
        end=$(now)
        if ! read -r at line <"$tmp/line"; then
            echo "bench/birdgrid.sh: the runner printed no SCALE-RUNNER line:" >&2
            cat "$tmp/out" >&2
            exit 1
        fi
        teardown=$(echo "$end - $at" | bc)
        echo "$line teardown=${teardown}s" >>"$tmp/runner"
        bash "$byhand" "$side" "$wait_s" 2>/dev/null | grep SCALE-BYHAND >>"$tmp/byhand"
        sleep 2
    done
    echo "== $n routers ($side x $side), medians of $runs, runner against by hand"
    printf '%-10s %10s %10s %8s\n' phase runner "by hand" ratio
    for phase in build files start converge teardown; do
        rv=$(while read -r l; do field "$phase" "$l"; done <"$tmp/runner" | median)
        if [[ $phase == teardown ]]; then
            bv=$(while read -r l; do
                echo "$(field kill "$l") + $(field delete "$l")" | bc
            done <"$tmp/byhand" | median)
        else
            bv=$(while read -r l; do field "$phase" "$l"; done <"$tmp/byhand" | median)
        fi
        ratio=$(echo "scale=2; $rv / $bv" | bc 2>/dev/null || echo "-")
        printf '%-10s %9.2fs %9.2fs %7sx\n' "$phase" "$rv" "$bv" "$ratio"
    done
    sed 's/^/   runner: /' "$tmp/runner"
    sed 's/^/   byhand: /' "$tmp/byhand"
done
