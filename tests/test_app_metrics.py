"""Each bot owns its metrics: two bots in one process count apart (nothing module-level)."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.app import build
from bot.config import Settings


def settings(tmp_path: Path, name: str) -> Settings:
    return Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret="secret",
        alerts_token="token",
        default_channel="C1",
        database_url=f"sqlite:///{tmp_path / name}.db",
    )


async def test_two_bots_in_one_process_keep_their_own_metrics(tmp_path: Path) -> None:
    first, second = build(settings(tmp_path, "a")), build(settings(tmp_path, "b"))
    assert first.services.remediation is not second.services.remediation
    async with TestClient(TestServer(first.web)) as a, TestClient(TestServer(second.web)) as b:
        for _ in range(3):
            assert (await a.post("/alerts", data=b"{}")).status == 401
        first_metrics = await (await a.get("/metrics")).text()
        second_metrics = await (await b.get("/metrics")).text()
    unauthorized = 'vllm_chatops_alerts_received_total{outcome="unauthorized",status="unknown"}'
    assert f"{unauthorized} 3.0" in first_metrics
    assert unauthorized not in second_metrics
    assert "vllm_chatops_slack_calls" in second_metrics  # declared, if not yet counted
