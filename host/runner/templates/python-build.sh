#!/usr/bin/env bash
# Build this scenario as a WebAssembly component: writes {NAME}.wasm here. Needs python3 with
# venv; installs componentize-py {COMPONENTIZE_PY} into .venv on first use.
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x .venv/bin/componentize-py ]] \
    || [[ $(.venv/bin/componentize-py --version) != "componentize-py {COMPONENTIZE_PY}" ]]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet "componentize-py=={COMPONENTIZE_PY}"
fi
.venv/bin/componentize-py -d wit -w scenario componentize -p . app -o "{NAME}.wasm" >/dev/null
echo "built {NAME}.wasm: run it with  runner run {NAME}.wasm"
