#!/usr/bin/env bash
# The kernel leg (issue 36): the tests whose outcome depends on the kernel, run on Debian's own
# stock kernel, where most users are: cgroup v2 (the run's cgroups, limits, kill, cpu weight),
# netem and tbf loaded as modules on demand, and an older Landlock ABI. This machine runs cgroup
# v1 and has no modules, so they would never run anywhere else.
#
# How: Debian's kernel package is downloaded and unpacked under target/vm (never installed as
# the host's kernel) and booted under qemu with software emulation (TCG), with the host's root
# file system shared read-only over 9p and a busybox initramfs that loads the modules 9p needs.
# Inside, scripts/vm-inside.sh mounts what a distribution would (cgroup2 at /sys/fs/cgroup, tmpfs
# at /run and /tmp), points the kernel's module loader at the unpacked modules, and runs the
# host's own test binary and runner, built here, on the chosen tests. A second, writable share
# brings back their log and counts. Ends with one line `N passed, N failed`; exits non-zero on
# any failure. Where qemu or the kernel package cannot be had, it says it skipped the leg.
#   scripts/test-vm.sh [TEST-FILTER...]   (default: the kernel-dependent tests, vm-inside.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
vm=$top/target/vm
mkdir -p "$vm" target/tmp

skip() {
    echo "SKIPPED: the kernel leg (scripts/test-vm.sh): $*"
    echo "the kernel leg (scripts/test-vm.sh): $*" >>target/tmp/skipped.txt
    exit 0
}

# What the leg needs on the host: qemu, a static busybox, kmod's depmod.
need=()
for pair in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static depmod:kmod; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ((${#need[@]})); then
    [[ $(id -u) -eq 0 ]] || skip "needs ${need[*]}, and root to install them"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
            apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; } ||
        skip "cannot install ${need[*]}"
fi
[[ $(uname -m) == x86_64 ]] || skip "the leg boots an amd64 kernel; this machine is $(uname -m)"

# Debian's stock kernel: the package the linux-image-amd64 metapackage names.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(kernel_package)
if [[ -z $pkg ]]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(kernel_package)
fi
[[ -n $pkg ]] || skip "no Debian kernel package (linux-image-amd64) is known to apt here"
root=$vm/$pkg
if [[ ! -f $root/.unpacked ]]; then
    # One kernel at a time: an older package's unpacked tree goes.
    rm -rf "$vm"/linux-image-* "$vm"/initrd-* "$vm/dl"
    mkdir -p "$vm/dl"
    (cd "$vm/dl" && apt-get download -q "$pkg" >/dev/null 2>&1) || skip "cannot download $pkg"
    dpkg-deb -x "$vm"/dl/"$pkg"_*.deb "$root"
    rm -rf "$vm/dl"
    version=$(ls "$root/lib/modules")
    depmod -b "$root" "$version"
    touch "$root/.unpacked"
fi
version=$(ls "$root/lib/modules")
kernel=$root/boot/vmlinuz-$version

# The initramfs: busybox, the modules that mount the host's root over 9p (in the order
# modprobe would load them), and an init that mounts it and hands over to vm-inside.sh.
initrd=$vm/initrd-$version.cpio
if [[ ! -s $initrd || scripts/test-vm.sh -nt $initrd ]]; then
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage"/{bin,dev,proc,sys,newroot,modules}
    cp "$(command -v busybox)" "$stage/bin/busybox"
    for m in virtio_pci 9pnet_virtio 9p; do
        modprobe -d "$root" -S "$version" --show-depends "$m"
    done | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++' >"$stage/modules/order"
    while read -r ko; do cp "$ko" "$stage/modules/"; done <"$stage/modules/order"
    sed -i 's|.*/||' "$stage/modules/order"
    cat >"$stage/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do insmod "/modules/$m" || echo "vm: insmod $m failed"; done </modules/order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose host /newroot ||
    { echo "vm: cannot mount the host's root"; poweroff -f; }
top=$(sed -n 's/.*nslab.top=\([^ ]*\).*/\1/p' /proc/cmdline)
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot "$top/scripts/vm-inside.sh"
EOF
    chmod +x "$stage/init"
    (cd "$stage" && find . | busybox cpio -o -H newc 2>/dev/null) >"$initrd"
    rm -rf "$stage"
    trap - EXIT
fi

# The host's binaries, built here: the runner and the integration tests' harness.
cargo build --quiet --release -p runner --bin runner --test integration
harness=$(cargo test --quiet --release -p runner --test integration --no-run \
    --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*integration-[0-9a-f]*\)".*/\1/p' | tail -1)
[[ -x $harness ]] || { echo "scripts/test-vm.sh: cannot find the integration harness" >&2; exit 1; }

out=$vm/out
rm -rf "$out"
mkdir -p "$out"
printf '%s\n' "${harness#"$top"/}" >"$out/harness"
printf '%s\n' "$@" >"$out/filters"
if [[ -n ${NSLAB_VM_SHELL:-} ]]; then
    cp "$NSLAB_VM_SHELL" "$out/by-hand.sh"
fi
started=$(date +%s)
# Bounded: a VM that hangs is killed, and its run counts as failed.
timeout --kill-after=10 "${NSLAB_VM_TIMEOUT:-1500}" qemu-system-x86_64 \
    -accel tcg -cpu max -smp 2 -m 3G -nographic -no-reboot \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 nslab.top=$top nslab.kroot=$root" \
    -virtfs "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$out,mount_tag=out,security_model=none" \
    -nic none </dev/null >"$out/console.log" 2>&1 || true
took=$(($(date +%s) - started))

if [[ ! -f $out/summary ]]; then
    echo "scripts/test-vm.sh: the VM did not finish its tests (after ${took}s); its console:" >&2
    tail -40 "$out/console.log" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
cat "$out/report" 2>/dev/null || true
if [[ -f $out/by-hand.log ]]; then
    cat "$out/by-hand.log"
fi
if [[ -s $out/skipped.txt ]]; then
    sed 's/^/SKIPPED (in the VM): /' "$out/skipped.txt"
fi
read -r passed failed <"$out/summary"
echo "kernel leg: Debian $version under qemu (TCG), cgroup v2, in ${took}s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
