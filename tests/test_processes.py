"""Waiting for a started bot's ``/healthz`` (the benchmark's and the demo's bot alike)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.simulator.processes import spawn, terminate, wait_healthy
from bot.simulator.prometheus_runner import free_port


class StartFailed(Exception):
    pass


def test_a_bot_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    log_path = tmp_path / "bot.log"
    with log_path.open("ab") as log:
        process = spawn([sys.executable, "-c", "print('no token'); raise SystemExit(3)"], log)
    with pytest.raises(StartFailed, match=r"exited with 3:\nno token"):
        wait_healthy("http://127.0.0.1:9", process, log_path, error=StartFailed)


def test_a_bot_that_stays_silent_is_reported_after_the_timeout(tmp_path: Path) -> None:
    log_path = tmp_path / "bot.log"
    with log_path.open("ab") as log:
        process = spawn([sys.executable, "-c", "import time; time.sleep(30)"], log)
    try:
        with pytest.raises(RuntimeError, match="did not answer within 1 s"):
            wait_healthy(f"http://127.0.0.1:{free_port()}", process, log_path, timeout_s=1)
    finally:
        terminate(process)


def test_a_bot_that_answers_is_waited_for(tmp_path: Path) -> None:
    port = free_port()
    server = f"""
import time
from aiohttp import web
app = web.Application()
async def ok(_): return web.Response(text="ok")
app.router.add_get("/healthz", ok)
time.sleep(0.5)
web.run_app(app, host="127.0.0.1", port={port}, print=None)
"""
    log_path = tmp_path / "bot.log"
    with log_path.open("ab") as log:
        process = spawn([sys.executable, "-c", server], log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log_path, timeout_s=30)
        assert process.poll() is None
    finally:
        terminate(process)
