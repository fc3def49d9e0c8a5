#!/usr/bin/env bash
# Install everything vllm-chatops needs on a Debian machine; safe to run again.
#   - Debian packages: prometheus, prometheus-alertmanager (real binaries for demo and tests),
#     chromium (the console's browser tests drive it through Playwright; no browser download),
#     fonts-noto-color-emoji (the console draws Slack's emoji)
#   - a virtualenv in .venv with the package and its dev tools, and checkov in .venv/checkov
# (The deploy tests also render kustomize overlays with `kustomize` or `kubectl kustomize`,
# which this machine image ships as kubectl; nothing here installs it.)
# Quiet when all goes well; on a failure it prints the failing step's whole output.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT
quietly() { # run a step, show its output only if it fails
  if ! "$@" >"$log" 2>&1; then
    echo "error: install step failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
  || need_apt+=(prometheus-alertmanager)
command -v chromium >/dev/null || need_apt+=(chromium)
# Slack draws :emoji: shortcodes in colour; without an emoji font the console shows boxes
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need_apt+=(fonts-noto-color-emoji)
if ((${#need_apt[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${need_apt[*]}" >&2
  quietly $sudo apt-get update -qq
  # policy-rc.d-less containers would otherwise try to start the packaged services
  quietly $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${need_apt[@]}"
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Python 3.11 or newer is required (found $("$python" --version 2>&1))" >&2
  exit 2
fi
[ -x .venv/bin/python ] || quietly "$python" -m venv .venv
quietly .venv/bin/python -m pip install --upgrade pip
quietly .venv/bin/python -m pip install -e '.[dev]'
# checkov (tests/test_deploy_manifests.py) lives in its own virtualenv: it pins packaging<24,
# an old python-dateutil and aiohttp<3.15, which would hold back pytest and the bot's own
# dependencies in .venv. Pinned, so a release with new checks cannot fail CI unannounced.
[ -x .venv/checkov/bin/python ] || quietly "$python" -m venv .venv/checkov
quietly .venv/checkov/bin/python -m pip install 'checkov==3.3.30'
quietly .venv/bin/python -c 'import bot' # the install must have worked
