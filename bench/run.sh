#!/usr/bin/env bash
# The benchmark harness (docs/architecture.md, "Measured"): the runner against its lower bound
# (bench/lowerbound: the same chain built with raw netlink as fast as the kernel allows) and
# against `ip -batch`, an `ip` script and pyroute2, run alternately, several times, side by side
# in one go. Prints medians, ratios to the lower bound, and peak RSS; then the runner's own
# teardown time, the fixed cost of a small scenario, and the runner's overhead on the seed.
#   bench/run.sh [-r RUNS] [N...]      (default: -r 5, N = 100 1000)
# Whole processes are timed (wall clock, fork to exit), with the compiled scenario cached.
# Needs root; the ip variants use namespaces named nslab-bench-* and remove them.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
while getopts "r:" opt; do
    case $opt in
        r) runs=$OPTARG ;;
        *) echo "usage: bench/run.sh [-r RUNS] [N...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(100 1000)

scripts/setup.sh >/dev/null
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
(cd guests && cargo build --quiet --release --target wasm32-wasip2 -p chain -p seed)
cargo build --quiet --release -p runner -p nslab-lowerbound
runner=target/release/runner
lowerbound=target/release/lowerbound
chain=guests/target/wasm32-wasip2/release/chain.wasm
seed=guests/target/wasm32-wasip2/release/seed.wasm
# pyroute2, where it can be installed (a virtual environment of its own, quietly).
venv=target/bench-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c "import pyroute2" 2>/dev/null; then
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q pyroute2; } >/dev/null 2>&1 || true
fi
have_pyroute2=false
"$venv/bin/python" -c "import pyroute2" 2>/dev/null && have_pyroute2=true

source bench/baselines.sh
trap remove_bench_namespaces EXIT
tmp=$(mktemp -d)
trap 'remove_bench_namespaces; rm -rf "$tmp"' EXIT

# One timed run: LABEL N CMD...; appends "LABEL N ms rss_kib" to $tmp/all.
measure() {
    local label=$1 n=$2; shift 2
    local start end
    start=$(date +%s%N)
    /usr/bin/time -f "%M" -o "$tmp/rss" "$@" >"$tmp/out" 2>"$tmp/err" || {
        echo "bench: $label at N=$n failed:" >&2; cat "$tmp/err" >&2; exit 1; }
    end=$(date +%s%N)
    echo "$label $n $(((end - start) / 1000)) $(tail -1 "$tmp/rss")" >>"$tmp/all"
}

runner_chain() {  # N [extra flags]
    local n=$1; shift
    "$runner" run -q "$@" --max-namespaces $((n + 10)) --max-links $((2 * n + 10)) "$chain" -- --n "$n"
}
export -f runner_chain
export runner chain

# Warm the compile cache: every timed run loads compiled code, as a second run would.
"$runner" run -q "$chain" -- --n 2 >/dev/null
"$runner" run -q "$seed" >/dev/null

for n in "${sizes[@]}"; do
    for ((r = 0; r < runs; r++)); do
        measure runner "$n" bash -c "runner_chain $n"
        measure lowerbound "$n" "$lowerbound" "$n"
        measure ip-batch "$n" bash -c "ip_batch $n"
        if ((n <= 100)); then
            measure ip "$n" bash -c "ip_script $n"
            $have_pyroute2 && measure pyroute2 "$n" "$venv/bin/python" bench/pyroute2_chain.py "$n"
        fi
        # The runner's own account of its teardown: from the lab's last state to its removal.
        runner_chain "$n" --json >"$tmp/events"
        python3 - "$tmp/events" "$n" >>"$tmp/teardown" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
t = {e["event"]: e["t"] for e in ev}
print(sys.argv[2], round((t["teardown"] - t["topology"]) * 1000, 1))
PY
    done
done
for ((r = 0; r < runs; r++)); do
    measure runner-fixed 2 bash -c "runner_chain 2"
    measure lowerbound-fixed 2 "$lowerbound" 2
    # The seed: the whole run, less what ping itself spent (its three seconds of waiting).
    start=$(date +%s%N)
    "$runner" run -q --json "$seed" >"$tmp/events"
    end=$(date +%s%N)
    python3 - "$tmp/events" $(((end - start) / 1000)) >>"$tmp/seed" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
programs = sum(e["seconds"] for e in ev if e["event"] == "program-end")
print(round(int(sys.argv[2]) / 1000 - programs * 1000, 1))
PY
done

# The largest lab the chain scenario makes, once: it must complete.
measure runner-4000 4000 bash -c "runner_chain 4000"
measure lowerbound-4000 4000 "$lowerbound" 4000

python3 - "$tmp/all" "$tmp/teardown" "$tmp/seed" "$runs" <<'PY'
import statistics, sys
from collections import defaultdict
times, rss = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    label, n, us, kib = line.split()
    times[(label, int(n))].append(int(us) / 1e6)
    rss[(label, int(n))].append(int(kib))
med = lambda xs: statistics.median(xs)
print(f"medians of {sys.argv[4]} runs, each a whole process; ratios to the lower bound of the same N\n")
print(f"| chain of | tool | time | ratio | peak RSS | RSS ratio |")
print(f"|---:|---|---:|---:|---:|---:|")
for (label, n) in sorted(times, key=lambda k: (k[1], k[0] != "runner", k[0] != "lowerbound", k[0])):
    if label.endswith("-fixed") or label.endswith("-4000"):
        continue
    t, m = med(times[(label, n)]), med(rss[(label, n)])
    lt, lm = med(times[("lowerbound", n)]), med(rss[("lowerbound", n)])
    print(f"| {n} | {label} | {t:.3f} s | {t / lt:.2f}x | {m / 1024:.1f} MiB | {m / lm:.2f}x |")
td = defaultdict(list)
for line in open(sys.argv[2]):
    n, ms = line.split()
    td[int(n)].append(float(ms))
print()
for n in sorted(td):
    print(f"runner teardown of {n} (returns): {med(td[n]):.1f} ms")
fixed = med(times[("runner-fixed", 2)]) * 1000
print(f"runner fixed cost (chain of 2, compiled code cached, whole process): {fixed:.1f} ms"
      f" (lower bound: {med(times[('lowerbound-fixed', 2)]) * 1000:.1f} ms)")
big, big_lb = med(times[("runner-4000", 4000)]), med(times[("lowerbound-4000", 4000)])
print(f"runner chain of 4000 (once): completed in {big:.2f} s, {big / big_lb:.2f}x its lower bound,"
      f" peak RSS {med(rss[('runner-4000', 4000)]) / 1024:.1f} MiB")
seed = [float(l) for l in open(sys.argv[3])]
print(f"runner overhead on the seed (whole run less ping's own time): {med(seed):.1f} ms")
PY
