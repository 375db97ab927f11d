#!/usr/bin/env bash
# Build every scenario in guests/ as a WebAssembly component: the Rust ones (target
# wasm32-wasip2) into guests/target/wasm32-wasip2/release/NAME.wasm, the Python ones
# (scripts/build-python.sh) into guests/target/python/NAME.wasm, and the JavaScript and
# TypeScript ones (scripts/build-js.sh) into guests/target/js/NAME.wasm, where the tests look.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd guests && cargo build --quiet --release --target wasm32-wasip2)
scripts/build-python.sh
scripts/build-js.sh
