"""Figures, the terminal table and ``BENCHMARKS.md`` (pure but for reading versions)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bot.bench.stats import Timing


@dataclass(frozen=True)
class Figure:
    """One measured figure and what it is compared with, from the same run.

    ``ratio`` is figure ÷ comparison where that is the goal's unit (diagnosis ÷ slowest
    query); ``goal`` says what good is, and ``met`` whether this run met it.
    """

    name: str
    timing: Timing | None = None
    value: str = ""  # a figure that is not a timing ("1,840 alerts/s", "+2.1 %")
    versus: str = ""  # the comparison, in words with its numbers
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class Section:
    title: str
    figures: Sequence[Figure]
    how: str = ""  # what was measured and how, one paragraph
    notes: Sequence[str] = field(default_factory=tuple)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def measured(figure: Figure) -> str:
    if figure.timing is None:
        return figure.value
    t = figure.timing
    return f"{ms(t.median)} / {ms(t.p99)} (n={t.n})"


def verdict(figure: Figure) -> str:
    return {True: "met", False: "missed", None: ""}[figure.met]


def rows(section: Section) -> list[tuple[str, str, str, str, str]]:
    """(figure, median / p99, versus, ratio, goal + verdict) per figure."""
    out = []
    for f in section.figures:
        ratio = f"{f.ratio:.2f} ×" if f.ratio is not None else ""
        goal = f"{f.goal} — {verdict(f)}" if f.goal and f.met is not None else f.goal
        out.append((f.name, measured(f), f.versus, ratio, goal))
    return out


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine() -> dict[str, str]:
    """Where the figures were taken: CPUs, memory, OS and the versions measured."""
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB"
    except (ValueError, OSError):
        pass
    cpu = platform.processor() or platform.machine()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        cpuinfo = []
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), cpu)
    return {
        "CPU": f"{os.cpu_count()} × {cpu}",
        "memory": memory,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "vllm-chatops": metadata.version("vllm-chatops"),
        "Prometheus": _version(["prometheus", "--version"]),
        "Alertmanager": _version(["prometheus-alertmanager", "--version"]),
        "PostgreSQL": _version(["psql", "--version"]),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(
    sections: Sequence[Section],
    about: dict[str, str],
    command: str,
    findings: Sequence[str] = (),
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `vllm-chatops bench`; every ratio compares two figures taken in the same "
        "run. Medians and p99s are over the repetitions shown (n).",
        "",
        f"Command: `{command}`",
        "",
        *(f"- **{k}**: {v}" for k, v in about.items()),
    ]
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        if section.how:
            lines += [section.how, ""]
        lines += [
            "| figure | median / p99 | versus (same run) | ratio | goal |",
            "|---|---|---|---|---|",
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows(section)),
        ]
        if section.notes:
            lines += ["", *(f"- {note}" for note in section.notes)]
    if findings:
        lines += ["", "## What the profiles showed", "", *(f"- {f}" for f in findings)]
    return "\n".join(lines) + "\n"
