#!/usr/bin/env bash
# Build every scenario in guests/ as a WebAssembly component (target wasm32-wasip2), into
# guests/target/wasm32-wasip2/release/NAME.wasm, where the runner's tests look for them.
set -euo pipefail
cd "$(dirname "$0")/../guests"
cargo build --quiet --release --target wasm32-wasip2
