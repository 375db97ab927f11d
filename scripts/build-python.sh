#!/usr/bin/env bash
# Build the Python scenarios of guests/python/ (each a folder with app.py, using
# guests/python/nslab.py) as components, with the pinned componentize-py from a virtual
# environment under target/, into guests/target/python/NAME.wasm. A scenario whose sources and
# contract are older than its .wasm is not built again.
set -euo pipefail
cd "$(dirname "$0")/.."
pinned=0.25.1
venv=target/python-venv
if [[ ! -x $venv/bin/componentize-py ]] || [[ $($venv/bin/componentize-py --version) != "componentize-py $pinned" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "componentize-py==$pinned"
fi
mkdir -p guests/target/python
for dir in guests/python/*/; do
    dir=${dir%/}
    [[ -f $dir/app.py ]] || continue
    name=$(basename "$dir")
    out=guests/target/python/$name.wasm
    if [[ -f $out ]] && [[ -z $(find "$dir" guests/python/nslab.py wit -newer "$out" -print -quit) ]]; then
        continue
    fi
    "$venv/bin/componentize-py" -d wit -w scenario componentize -p guests/python -p "$dir" app -o "$out" >/dev/null
done
