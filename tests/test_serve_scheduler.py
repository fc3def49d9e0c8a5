"""The scheduler's poll jobs: a run that outlasts its interval makes the next one wait,
quietly (no warning a second in the log), and is counted in the bot's metrics."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.app import build
from bot.commands import serve
from bot.config import Settings
from bot.slack import intake
from bot.slack.services import Services


def settings(tmp_path: Path) -> Settings:
    return Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret="secret",
        alerts_token="token",
        default_channel="C1",
        database_url=f"sqlite:///{tmp_path / 'bot'}.db",
    )


async def test_a_poll_slower_than_its_interval_is_skipped_quietly_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runs = 0

    async def refresh(svc: Services) -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.5)  # five of its 0.1 s intervals
        return 0

    monkeypatch.setattr(intake, "refresh", refresh)
    monkeypatch.setattr(serve, "REFRESH_POLL_S", 0.1)
    svc = build(settings(tmp_path)).services
    leadership = serve.Leadership(svc)
    leadership.leading = True
    caplog.set_level(logging.DEBUG, logger="apscheduler")
    scheduler = serve.start_scheduler(svc, leadership)
    try:
        await asyncio.sleep(1.6)
        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("apscheduler") and r.levelno >= logging.WARNING
        ]
    finally:  # a run still going is cancelled by the scheduler's shutdown
        scheduler.shutdown(wait=False)
        svc.close()
    assert runs >= 2  # it kept running, one run at a time
    assert warnings == []
    overran = svc.metrics.scheduler_overruns.labels("refresh")._value.get()
    assert overran >= 3


async def test_a_run_cut_short_by_the_shutdown_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()

    async def refresh(svc: Services) -> int:
        started.set()
        await asyncio.sleep(30)  # still running when the bot stops
        return 0

    monkeypatch.setattr(intake, "refresh", refresh)
    monkeypatch.setattr(serve, "REFRESH_POLL_S", 0.1)
    caplog.set_level(logging.INFO)
    svc = build(settings(tmp_path)).services
    leadership = serve.Leadership(svc)
    leadership.leading = True
    scheduler = serve.start_scheduler(svc, leadership)
    try:
        await asyncio.wait_for(started.wait(), timeout=5)
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.2)  # the cancelled run finishes
        svc.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert any("stopped mid-run by the shutdown" in r.getMessage() for r in caplog.records)
