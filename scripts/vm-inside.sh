#!/bin/bash
# The first process of the kernel leg's VM (scripts/test-vm.sh): the host's root, read-only over
# 9p, is this machine's root. Mount what a distribution mounts (cgroup2 alone at
# /sys/fs/cgroup, tmpfs at /run and /tmp), let the kernel load modules from the unpacked
# kernel package, run the kernel-dependent tests with the host's own test binary and runner,
# write their counts to the writable share, and power off. Never run it on a host.
set -u
[[ $$ -eq 1 ]] || { echo "vm-inside.sh runs only as a VM's first process" >&2; exit 2; }
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
top=$(sed -n 's/.*nslab.top=\([^ ]*\).*/\1/p' /proc/cmdline)
mount -t sysfs sys /sys
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
# The compile cache of root's runs, empty and writable here.
[[ -d /var/cache/nslab ]] && mount -t tmpfs -o mode=0755 cache /var/cache/nslab
# The tests' scratch directory (CARGO_TARGET_TMPDIR) is the writable share: their list of
# skipped parts, and this leg's log and counts, reach the host there.
out=$top/target/tmp
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out "$out"
hostname nslab-vm
# A cgroup delegated to the rootless tests' user, as systemd's user@ service gives one: theirs,
# with memory, pids and cpu handed down to it; the tests start each of their runs in a cgroup
# of its own below it (tests/rootless.rs), as systemd-run --user --scope -p Delegate=yes does.
echo "+memory +pids +cpu" >/sys/fs/cgroup/cgroup.subtree_control
delegated=/sys/fs/cgroup/user-nslab-test
mkdir -p "$delegated/init"
chown nslab-test "$delegated" "$delegated"/cgroup.{procs,subtree_control,threads} \
    "$delegated/init" "$delegated"/init/cgroup.{procs,subtree_control,threads}
echo "+memory +pids +cpu" >"$delegated/cgroup.subtree_control"
export NSLAB_TEST_DELEGATED_CGROUP=$delegated
ip link set lo up
# Modules load on demand as on a distribution: the kernel asks modprobe, pointed at the
# unpacked package (its lib/modules/VERSION).
kroot=$(sed -n 's/.*nslab.kroot=\([^ ]*\).*/\1/p' /proc/cmdline)
printf '#!/bin/sh\nexec /usr/sbin/modprobe -d %s "$@"\n' "$kroot" >/run/modprobe
chmod 755 /run/modprobe

passed=0
failed=0
report=$out/report
: >"$report"
# One check of this script's own: name, then a command whose success is the pass.
own() {
    local name=$1
    shift
    if "$@" >>"$out/own.log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name" >>"$report"
    else
        failed=$((failed + 1))
        echo "FAIL $name" >>"$report"
    fi
}
runner=$top/target/release/runner
# First, a kernel that cannot load sch_tbf (as one without /lib/modules for it): the run says
# so in a sentence. veth and bridge are loaded by hand first, so the lab itself can be built.
/run/modprobe veth && /run/modprobe bridge
echo /bin/false >/proc/sys/kernel/modprobe
shaped=$("$runner" run -q "$top/guests/target/wasm32-wasip2/release/shaped.wasm" 2>&1)
echo "$shaped" >"$out/no-tbf.txt"
own "a kernel without tbf is named in a sentence" grep -q "this kernel has no tbf" <<<"$shaped"
echo /run/modprobe >/proc/sys/kernel/modprobe
policy=$("$runner" policy 2>&1)
echo "$policy" >"$out/policy.txt"
own "runner policy says the cgroup is v2" grep -q "cgroup v2" <<<"$policy"
own "runner policy names this kernel's Landlock ABI" grep -qE "Landlock \(ABI [1-6]\)" <<<"$policy"

# A look by hand (NSLAB_VM_SHELL=FILE scripts/test-vm.sh): that script instead of the tests.
if [[ -s $out/by-hand.sh ]]; then
    bash "$out/by-hand.sh" >"$out/by-hand.log" 2>&1
    echo "0 0" >"$out/summary"
    sync
    echo o >/proc/sysrq-trigger
    sleep 10
fi
harness=$top/$(cat "$out/harness")
mapfile -t filters <"$out/filters"
if [[ ${#filters[@]} -eq 0 || -z ${filters[0]} ]]; then
    # The tests whose outcome depends on the kernel: cgroup v2 (the run as a principal, its
    # limits, its end however it ends, the cpu weight), netem, Landlock's ABI, rootless runs,
    # and stepping into a run (the operator's programs in the run's cgroups, a copy of the box).
    filters=(
        principal::
        lifecycle::sigkill_at_any_moment
        lifecycle::sigint_during_a_program
        lifecycle::a_program_in_a_new_session
        lifecycle::ls_names_what_still_holds
        gallery::shaped
        seed::
        confinement::
        boxing::the_kernel_holds
        rootless::
        policy::a_lab_rebuilt
        stepping_in::exec_runs_where
        stepping_in::capture_writes
        stepping_in::what_the_operator_started
        stepping_in::exec_into_a_kept_run
        stepping_in::the_operators_executable
    )
fi
cd "$top/host" || exit 1
RUST_BACKTRACE=1 timeout 1200 "$harness" --test-threads=1 "${filters[@]}" >"$out/tests.log" 2>&1
line=$(grep -E "^test result:" "$out/tests.log" | tail -1)
p=$(sed -n 's/.* \([0-9]*\) passed.*/\1/p' <<<"$line")
f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line")
grep -E "^test .* (ok|FAILED|ignored)$" "$out/tests.log" >>"$report"
if [[ -z $p ]]; then
    echo "FAIL the test harness ended without its result line" >>"$report"
    failed=$((failed + 1))
else
    passed=$((passed + p))
    failed=$((failed + f))
fi
echo "$passed $failed" >"$out/summary"
sync
echo o >/proc/sysrq-trigger
sleep 10
