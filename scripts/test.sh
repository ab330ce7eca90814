#!/usr/bin/env bash
# `npm test`: install what is missing, build, lint, run every test (unit, integration, netns).
# Extra arguments narrow the run: `npm test -- test/unit` or a single file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The linter (eslint.config.js) before any test: an error fails the run. The cache keeps
# a re-run to the files that changed.
echo "rhumb test: eslint"
npx eslint --cache --cache-location node_modules/.cache/eslint/ .
if [ $# -gt 0 ]; then roots=("$@"); else roots=(test/unit test/integration test/netns); fi
mapfile -t files < <(find "${roots[@]}" -name '*.test.ts' 2>/dev/null | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no test files under ${roots[*]}" >&2; exit 1; fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
node --import tsx --test --test-reporter=spec --test-concurrency=1 "${files[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
count() { grep -E "^ℹ $1 [0-9]+" "$log" | tail -1 | awk '{print $3}'; }
# A plain closing line any CI log reader understands.
echo "tests: $(count pass) passed, $(count fail) failed, $(count skipped) skipped"
exit "$status"
