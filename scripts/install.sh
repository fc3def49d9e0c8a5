#!/usr/bin/env bash
# Install everything vllm-chatops needs on a Debian machine; safe to run again.
#   - Debian packages: prometheus, prometheus-alertmanager (real binaries for demo and tests)
#   - a virtualenv in .venv with the package and its dev tools
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
  || need_apt+=(prometheus-alertmanager)
if ((${#need_apt[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${need_apt[*]}" >&2
  $sudo apt-get update -qq
  # policy-rc.d-less containers would otherwise try to start the packaged services
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Python 3.11 or newer is required (found $("$python" --version 2>&1))" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v -E '^(WARNING: Location|\s*$)' >&2 || true
.venv/bin/python -c 'import bot' # the install must have worked
