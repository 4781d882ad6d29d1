#!/usr/bin/env bash
# Runs the whole test suite (every tier: unit, interop, natlab). Exit 5 (no tests collected) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then echo "run-tests: pytest collected no tests; failing" >&2; exit 1; fi
exit "$rc"
