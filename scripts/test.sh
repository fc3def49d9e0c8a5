#!/usr/bin/env bash
# Second command of the README: install, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# the store's tests run against a real PostgreSQL (127.0.0.1:5432, database test)
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi
echo "== ruff" && .venv/bin/ruff check bot tests benchmarks && .venv/bin/ruff format --check bot tests benchmarks
echo "== mypy" && .venv/bin/mypy
echo "== pytest" && exec .venv/bin/pytest -p no:cacheprovider "$@"
