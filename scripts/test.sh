#!/usr/bin/env bash
# Second command of the README: install, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "== ruff" && .venv/bin/ruff check bot tests benchmarks && .venv/bin/ruff format --check bot tests benchmarks
echo "== mypy" && .venv/bin/mypy
echo "== pytest" && exec .venv/bin/pytest -p no:cacheprovider "$@"
