#!/usr/bin/env bash
# `npm test`: install what is missing, build, run every test (unit, integration, netns).
# Extra arguments narrow the run: `npm test -- test/unit` or a single file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -gt 0 ]; then roots=("$@"); else roots=(test/unit test/integration test/netns); fi
mapfile -t files < <(find "${roots[@]}" -name '*.test.ts' 2>/dev/null | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no test files under ${roots[*]}" >&2; exit 1; fi
exec node --import tsx --test --test-reporter=spec --test-concurrency=1 "${files[@]}"
