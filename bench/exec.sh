#!/usr/bin/env bash
# Stepping into a lab (issue 34): `runner exec RUN NS -- true` against `nsenter` into the same
# namespaces by hand, alternately, COUNT times each, in one go; prints the median of each and
# the runner's ratio. Two cases:
#   held  a run that holds (`runner run --hold`): runner exec asks the run's control socket,
#         whose helper starts `true` in the namespace's box; by hand, nsenter joins every
#         namespace a command of `runner exec` is in (-t PID -a: user, mount, UTS, IPC, network,
#         PID, cgroup), of a program running there.
#   held-unm  the same, nsenter joining only the user, network and mount namespaces
#         (-t PID -U -n -m): less than runner exec gives the command (its own PID and IPC
#         namespaces, the host name), the stricter comparison.
#   kept  a kept run (`--keep`): runner exec enters the pins itself (the user namespace, the
#         network namespace, a copy of the box, a host name); by hand, nsenter
#         --net=/run/netns/PIN (the box's own mounts are noexec but for the run's programs, so
#         nsenter into them cannot execute `true` at all).
#   bench/exec.sh [COUNT]   (default 20). Needs root and a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-20}

scripts/setup.sh >/dev/null
(cd guests && cargo build --quiet --release --target wasm32-wasip2 -p seed)
cargo build --quiet --release -p runner
runner=$PWD/target/release/runner
seed=$PWD/guests/target/wasm32-wasip2/release/seed.wasm
tmp=$(mktemp -d)
held_pid=
kept_id=
cleanup() {
    [ -n "$held_pid" ] && kill -TERM "$held_pid" 2>/dev/null && wait "$held_pid" 2>/dev/null || true
    [ -n "$kept_id" ] && "$runner" cleanup "$kept_id" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# Milliseconds one command takes, start to end (bash's own clock: no process of its own).
ms() {
    local start end
    start=$EPOCHREALTIME
    "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }
    end=$EPOCHREALTIME
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f\n", (b - a) * 1000}'
}
# compare NAME BY_HAND RUNNER: two functions, each one command.
compare() {
    local name=$1 by_hand=$2 runner_cmd=$3
    : >"$tmp/hand"; : >"$tmp/runner"
    for _ in $(seq "$count"); do
        ms "$by_hand" >>"$tmp/hand"
        ms "$runner_cmd" >>"$tmp/runner"
    done
    local h r
    h=$(median <"$tmp/hand"); r=$(median <"$tmp/runner")
    printf '%-8s nsenter %6.2f ms   runner exec %6.2f ms   ratio %.2fx\n' "$name" "$h" "$r" \
        "$(awk -v a="$r" -v b="$h" 'BEGIN {print a / b}')"
}

# A held run, and a program of its in ns01 whose namespaces nsenter joins.
"$runner" run -q --hold "$seed" >"$tmp/held.out" 2>&1 &
held_pid=$!
for _ in $(seq 100); do grep -q "held: run" "$tmp/held.out" && break; sleep 0.1; done
id=$(grep -o 'held: run [0-9a-f]*' "$tmp/held.out" | cut -d' ' -f3)
"$runner" exec "$id" ns01 -- sleep 600 &
sleeper=$!
for _ in $(seq 100); do pid=$(pgrep -x -n sleep || true); [ -n "$pid" ] && break; sleep 0.05; done
hand_held() { nsenter -t "$pid" -a --preserve-credentials true; }
hand_held_unm() { nsenter -t "$pid" -U -n -m --preserve-credentials true; }
runner_held() { "$runner" exec "$id" ns01 -- true; }
compare held hand_held runner_held
compare held-unm hand_held_unm runner_held
kill -TERM "$held_pid"; wait "$held_pid" || true; held_pid=
wait "$sleeper" 2>/dev/null || true   # ended with the run

# A kept run, entered through its pins.
kept_id=$("$runner" run -q --keep "$seed" | grep -o 'kept: run [0-9a-f]*' | cut -d' ' -f3)
pin=nslab-$kept_id-ns01
hand_kept() { nsenter --net=/run/netns/"$pin" true; }
runner_kept() { "$runner" exec "$kept_id" ns01 -- true; }
compare kept hand_kept runner_kept
