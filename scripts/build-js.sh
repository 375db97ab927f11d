#!/usr/bin/env bash
# Build the JavaScript and TypeScript scenarios of guests/js/ (each a folder with app.js or
# app.ts, importing ../nslab.js) as components, with the pinned tools of
# guests/js/tools/package.json installed once under target/, into guests/target/js/NAME.wasm.
# componentize-js takes JavaScript modules as they are (an error's stack names their files and
# lines); TypeScript first goes through esbuild, which strips its types. A scenario whose
# sources and contract are older than its .wasm is not built again.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/js-tools
if [[ ! -f $tools/package.json ]] || ! cmp -s guests/js/tools/package.json "$tools/package.json" \
    || [[ ! -x $tools/node_modules/.bin/componentize-js ]]; then
    mkdir -p "$tools"
    cp guests/js/tools/package.json "$tools/package.json"
    npm install --silent --no-audit --no-fund --prefix "$tools" >/dev/null
fi
mkdir -p guests/target/js
for dir in guests/js/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    out=guests/target/js/$name.wasm
    if [[ -f $dir/app.js ]]; then
        source=$dir/app.js
    elif [[ -f $dir/app.ts ]]; then
        source=target/js-build/$name/app.js
    else
        continue
    fi
    if [[ -f $out ]] && [[ -z $(find "$dir" guests/js/nslab.js wit -newer "$out" -print -quit) ]]; then
        continue
    fi
    if [[ -f $dir/app.ts ]]; then
        mkdir -p "target/js-build/$name"
        cp guests/js/nslab.js target/js-build/nslab.js
        "$tools/node_modules/.bin/esbuild" "$dir/app.ts" --format=esm --log-level=warning \
            --outfile="$source"
    fi
    "$tools/node_modules/.bin/componentize-js" --wit wit -n scenario -d http fetch-event \
        -o "$out" "$source" >/dev/null
done
