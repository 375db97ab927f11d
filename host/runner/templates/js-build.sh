#!/usr/bin/env bash
# Build this scenario as a WebAssembly component: writes {NAME}.wasm here. Needs Node.js and
# npm; installs the pinned tools of package.json into node_modules on first use.
set -euo pipefail
cd "$(dirname "$0")"
[[ -x node_modules/.bin/componentize-js ]] || npm install --silent --no-audit --no-fund
source=app.js
if [[ -f app.ts ]]; then
    # TypeScript: esbuild strips the types; the stack of an error names build/app.js.
    mkdir -p build
    cp nslab.js build/nslab.js
    node_modules/.bin/esbuild app.ts --format=esm --log-level=warning --outfile=build/app.js
    source=build/app.js
fi
# No wasi:http: a scenario reaches the network only through the lab.
node_modules/.bin/componentize-js --wit wit -n scenario -d http fetch-event -o "{NAME}.wasm" "$source" >/dev/null
echo "built {NAME}.wasm: run it with  runner run {NAME}.wasm"
