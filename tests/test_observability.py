"""The bot's own observability: readiness says what is wrong, logs can be JSON, action
outcomes are counted, and the exported alerts cover the outbox and leadership."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakes.slack import FakeSlack

from bot.app import build
from bot.config import Settings
from bot.logs import JsonFormatter
from bot.remediation.events import BOT, Finished, Refused, Verified
from bot.simulator.prometheus_runner import free_port
from bot.slack.block_kit import Message
from bot.slack.own_alerts import own_alert_group
from bot.slack.reporter import SlackReporter
from bot.store import ActionRequest


def settings(tmp_path: Path, slack_url: str) -> Settings:
    return Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret="secret",
        slack_api_url=slack_url,
        alerts_token="token",
        default_channel="C1",
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
    )


async def test_readiness_reports_the_database_and_slack(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api/"  # Slack unreachable
    bot = build(settings(tmp_path, nowhere))
    async with TestClient(TestServer(bot.web)) as client:
        first = await (await client.get("/readyz")).json()
        assert first == {"ready": True, "database": "ok", "slack": "not used yet"}
        await bot.services.outbox.post("C1", _message())  # Slack down: kept, retried later
        response = await client.get("/readyz")
        body = await response.json()
    # still ready: alerts are recorded and writes kept while Slack is away
    assert response.status == 200 and body["database"] == "ok"
    assert body["slack"].startswith("failing for") and "unreachable" in body["slack"]


async def test_readiness_fails_without_the_database(tmp_path: Path) -> None:
    bot = build(settings(tmp_path, "http://127.0.0.1:9/api/"))
    bot.services.store.engine.dispose()
    (tmp_path / "bot.db").unlink()
    (tmp_path / "bot.db").mkdir()  # a directory where the database file was: unreadable
    async with TestClient(TestServer(bot.web)) as client:
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["database"] == "unreachable"


def test_json_logs_are_one_object_a_line_with_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("bot.x", logging.ERROR, __file__, 1, "failed %s", ("it",), None)
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert (entry["level"], entry["logger"], entry["message"]) == ("error", "bot.x", "failed it")
    assert "ValueError: boom" in entry["exception"]


def test_log_format_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CHATOPS_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("VLLM_CHATOPS_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


async def test_action_outcomes_are_counted_by_kind(tmp_path: Path) -> None:
    slack = FakeSlack().start()
    try:
        bot = build(settings(tmp_path, slack.api_url))
        reporter = bot.services.remediation.reporter
        assert isinstance(reporter, SlackReporter)
        req = ActionRequest(id="r1", kind="scale", target="deployment/ns/x", channel=None)
        await reporter.report(Refused(req, BOT, reason="denied"))
        await reporter.report(Finished(req, BOT, ok=True, summary="done"))
        await reporter.report(Verified(req, BOT, recovered=False, headline="still bad"))
        async with TestClient(TestServer(bot.web)) as client:
            text = await (await client.get("/metrics")).text()
    finally:
        slack.stop()
    for outcome in ("refused", "succeeded", "not_recovered"):
        assert f'vllm_chatops_actions_total{{kind="scale",outcome="{outcome}"}} 1.0' in text


def test_the_bot_alerts_on_its_outbox_and_on_no_leader() -> None:
    rules = {r["alert"]: r for r in own_alert_group()["rules"]}
    assert "vllm_chatops_outbox_oldest_seconds" in rules["VLLMChatOpsOutboxBacklog"]["expr"]
    assert "vllm_chatops_scheduler_leader" in rules["VLLMChatOpsNoLeader"]["expr"]


def _message() -> Message:
    return Message(text="hello", blocks=[])


def test_routine_library_lines_do_not_flood_the_log() -> None:
    """The scheduler's every run and the HTTP client's every request stay out of the log;
    their warnings and the bot's own lines stay in."""
    from bot.logs import NOISY_LIBRARIES, configure

    configure("text")
    try:
        for name in ("apscheduler.executors.default", "httpx", "httpcore.connection"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
            assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
        assert logging.getLogger("bot").isEnabledFor(logging.INFO)
    finally:
        for name in NOISY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.NOTSET)
