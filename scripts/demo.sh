#!/usr/bin/env bash
# Set up, build, and run the seed scenario: the ip-netns tutorial as a WebAssembly lab.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
(cd guests && cargo build --quiet --release --target wasm32-wasip2 -p seed)
cargo build --quiet --release -p runner
exec target/release/runner run guests/target/wasm32-wasip2/release/seed.wasm "$@"
