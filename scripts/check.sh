#!/usr/bin/env bash
# Everything CI checks, in one command: installs what is missing (scripts/bootstrap.sh), then
# ruff (lint + format), mypy --strict, and the whole test suite (unit, interop, natlab tiers).
# Extra arguments go to pytest, e.g. `bash scripts/check.sh -m "not natlab"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "check: ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "check: mypy --strict"
.venv/bin/mypy
echo "check: pytest"
bash scripts/run-tests.sh "$@"
