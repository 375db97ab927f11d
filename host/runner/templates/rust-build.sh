#!/usr/bin/env bash
# Build this scenario as a WebAssembly component: writes {NAME}.wasm here. Needs Rust (rustup);
# adds the wasm32-wasip2 target if it is missing.
set -euo pipefail
cd "$(dirname "$0")"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2 >/dev/null
fi
cargo build --quiet --release --target wasm32-wasip2
cp "target/wasm32-wasip2/release/{CRATE}.wasm" "{NAME}.wasm"
echo "built {NAME}.wasm: run it with  runner run {NAME}.wasm"
