"""`vllm-chatops demo` as a process: it starts every part, serves the console, and
SIGTERM, Ctrl-C or its own death leave no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.simulator.prometheus_runner import free_port

OPEN_LINE = re.compile(r"Open (http://127\.0\.0\.1:\d+/?)")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set[int](), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return {p for p in pids if alive(p)}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "demo",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "state"),
            "--scrape-interval",
            "1",
            "--replicas",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 120
    url = None
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        output.append(line)
        if match := OPEN_LINE.search(line):
            url = match.group(1)
    if url is None:
        process.kill()
        pytest.fail("the demo never printed its URL:\n" + "".join(output))
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _started_parts(pid: int) -> set[int]:
    parts = descendants(pid)
    commands = {Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0] for p in parts}
    names = {Path(c.decode()).name for c in commands}
    assert "prometheus" in names, names
    assert {"prometheus-alertmanager", "alertmanager"} & names, names
    assert any(n.startswith("python") for n in names), names  # the bot
    return parts


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_process_the_demo_started(
    demo: tuple[subprocess.Popen[str], str], signum: signal.Signals
) -> None:
    process, url = demo
    assert httpx.get(url, timeout=5).status_code == 200
    parts = _started_parts(process.pid)
    process.send_signal(signum)
    assert process.wait(timeout=60) == 0
    assert wait_gone(parts, 10) == set()


def test_the_demo_killed_outright_leaves_no_orphan(demo: tuple[subprocess.Popen[str], str]) -> None:
    process, _ = demo
    parts = _started_parts(process.pid)
    process.kill()
    process.wait()
    assert wait_gone(parts, 30) == set()
