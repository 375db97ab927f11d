#!/usr/bin/env bash
# Set up and run every check and test: formatting, lints, unit tests, and the integration tests
# that run the real runner on real scenarios as root. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-guests.sh
cargo fmt --all -- --check
(cd guests && cargo fmt --all -- --check)
cargo clippy --quiet --release --all-targets -- -D warnings
(cd guests && cargo clippy --quiet --release --target wasm32-wasip2 -- -D warnings)
# The CI examples of docs/ci.md, against the CI systems' own schemas.
scripts/check-ci-docs.sh
# The rootless tests (tests/rootless.rs) run the runner as two ordinary users: nslab-test, with
# subordinate ids (useradd gives a regular user a range in /etc/subuid and /etc/subgid), and
# nslab-alone, a system user without any.
id nslab-test >/dev/null 2>&1 || useradd --create-home --shell /usr/sbin/nologin nslab-test
id nslab-alone >/dev/null 2>&1 || useradd --system --create-home --shell /usr/sbin/nologin nslab-alone
# Both belong to a supplementary group, which programs must not keep where the kernel lets
# the run drop it.
getent group nslab-extra >/dev/null || groupadd --system nslab-extra
for user in nslab-test nslab-alone; do
    id -nG "$user" | grep -qw nslab-extra || usermod -aG nslab-extra "$user"
done
rm -f target/tmp/skipped.txt
# The rootless tests' copy of the runner, readable by the test users (tests/rootless.rs).
trap 'rm -rf "${TMPDIR:-/tmp}/nslab-test-rootless-shared"' EXIT
# Each library crate on its own, with its own features (the lab with its fake kernel for users'
# tests, nslab-host without the command line's), then the runner, whose integration tests run
# the real binary.
cargo test --release -p nslab-lab --features test-util
for crate in nslab-report nslab-host; do
    cargo test --release -p "$crate"
done
cargo test --release -p runner
# The kernel leg: the kernel-dependent tests again on Debian's stock kernel (cgroup v2, netem
# as modules, an older Landlock) under qemu; it says so where it cannot run.
scripts/test-vm.sh
if [[ -s target/tmp/skipped.txt ]]; then
    echo "Skipped (this machine lacks what they need):"
    sed 's/^/  SKIPPED: /' target/tmp/skipped.txt
fi
