#!/usr/bin/env bash
# First command of the README: install everything, then run the main job.
# Today the main job is the demo stack: the fleet simulator plus a real Prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/vllm-chatops demo "$@"
