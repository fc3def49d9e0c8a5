#!/usr/bin/env bash
# First command of the README: install everything, then run the main job.
# The main job is the whole product on this machine (`vllm-chatops demo`): open the address it
# prints and play an incident in the browser.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/vllm-chatops demo "$@"
