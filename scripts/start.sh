#!/usr/bin/env bash
# `npm start`: install what is missing, build, and run the controller on ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
RHUMB_SETUP_PROFILE=runtime bash scripts/setup.sh
exec node dist/src/cli/main.js controller --data ./data "$@"
