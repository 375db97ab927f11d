#!/usr/bin/env bash
# Build every scenario in guests/ as a WebAssembly component: the Rust ones (target
# wasm32-wasip2) into guests/target/wasm32-wasip2/release/NAME.wasm, the Python ones
# (scripts/build-python.sh) into guests/target/python/NAME.wasm, where the tests look for them.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd guests && cargo build --quiet --release --target wasm32-wasip2)
scripts/build-python.sh
