"""Silences against a real Alertmanager (Debian package prometheus-alertmanager)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fleet_stack import require_binary

from bot.remediation.actions.silence import (
    SilenceError,
    describe,
    execute,
    format_duration,
    parse_duration,
    parse_selector,
    plan,
    silence_matchers,
    unsilence,
)
from bot.simulator.alertmanager_runner import AlertmanagerRunner, find_alertmanager
from bot.simulator.prometheus_runner import free_port
from bot.sources.alertmanager import AlertmanagerClient, AlertmanagerError, Matcher


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[AlertmanagerRunner]:
    binary = require_binary("prometheus-alertmanager", find_alertmanager())
    runner = AlertmanagerRunner(binary, "http://127.0.0.1:9/alerts", "test-token").start()
    yield runner
    runner.stop()


@pytest.fixture
def client(alertmanager: AlertmanagerRunner) -> AlertmanagerClient:
    return AlertmanagerClient(alertmanager.url, timeout_s=5)


def unique_alert() -> str:
    return f"VLLMTest{uuid.uuid4().hex[:8]}"


# --- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        (" 7D ", timedelta(days=7)),
        ("1w", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2x", "not understood"),
        ("", "not understood"),
        ("h", "not understood"),
        ("-1h", "not understood"),
        ("0m", "zero"),
        ("8d", "7-day maximum"),
        ("7d1m", "7-day maximum"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(SilenceError, match=message):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(timedelta(hours=2)) == "2h"
    assert format_duration(timedelta(days=1, minutes=30)) == "1d30m"


def test_plan_reads_like_a_sentence() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    matchers = silence_matchers("VLLMKVCachePressure", {"namespace": "prod"})
    assert plan(matchers, "2h", now) == (
        "silence VLLMKVCachePressure{namespace=prod} for 2h, until 14:00 UTC"
    )
    assert plan(matchers, "1d", now).endswith("until 2026-03-02 12:00 UTC")
    assert plan(silence_matchers(labels={"pod": "~vllm-.*"}), "30m", now) == (
        "silence {pod=~vllm-.*} for 30m, until 12:30 UTC"
    )
    assert plan(silence_matchers("VLLMDown"), "30m", now).startswith("silence VLLMDown for")


def test_selectors_and_matcher_errors() -> None:
    assert parse_selector("VLLMKVCachePressure{namespace=prod, pod=~vllm-.*}") == [
        Matcher(name="alertname", value="VLLMKVCachePressure"),
        Matcher(name="namespace", value="prod"),
        Matcher(name="pod", value="vllm-.*", isRegex=True),
    ]
    words = parse_selector('alertname=VLLMDown namespace="prod"')
    assert describe(words) == "VLLMDown{namespace=prod}"
    assert describe(parse_selector("VLLMDown")) == "VLLMDown"
    with pytest.raises(SilenceError, match="nothing to silence"):
        silence_matchers()
    with pytest.raises(SilenceError, match="invalid regex"):
        silence_matchers(labels={"pod": "~("})
    with pytest.raises(SilenceError, match="empty value"):
        silence_matchers(labels={"pod": "~.*"})
    with pytest.raises(SilenceError, match="not a label matcher"):
        parse_selector("namespace prod")


# --- against the real Alertmanager --------------------------------------------------------


async def test_create_list_and_expire(client: AlertmanagerClient) -> None:
    name = unique_alert()
    now = datetime.now(UTC)
    silence_id = await client.create_silence(
        [Matcher(name="alertname", value=name), {"name": "namespace", "value": "prod"}],
        now,
        now + timedelta(hours=2),
        created_by="alice (U1)",
        comment="KV cache pressure while we scale out",
    )
    assert silence_id
    mine = [s for s in await client.get_silences() if s.id == silence_id]
    assert len(mine) == 1
    silence = mine[0]
    assert silence.state == "active"
    assert silence.createdBy == "alice (U1)"
    assert {m.describe() for m in silence.matchers} == {f"alertname={name}", "namespace=prod"}
    assert abs((silence.endsAt - now - timedelta(hours=2)).total_seconds()) < 2
    await client.expire_silence(silence_id)
    assert (await client.get_silence(silence_id)).state == "expired"


async def test_silence_action_execute_and_unsilence(client: AlertmanagerClient) -> None:
    matchers = parse_selector(f"{unique_alert()}{{namespace=prod,pod=~vllm-.*}}")
    silence_id = await execute(client, matchers, "30m", "bob (U2)", "drill")
    silence = await client.get_silence(silence_id)
    assert silence.state == "active" and silence.comment == "drill"
    assert Matcher(name="pod", value="vllm-.*", isRegex=True) in silence.matchers
    assert timedelta(minutes=29) < silence.endsAt - silence.startsAt <= timedelta(minutes=31)
    await unsilence(client, silence_id)
    assert (await client.get_silence(silence_id)).state == "expired"
    await unsilence(client, silence_id)  # expiring twice is harmless
    with pytest.raises(SilenceError, match="7-day maximum"):
        await execute(client, matchers, "30d", "bob (U2)", "too long")


async def test_bad_matcher_is_refused_plainly(client: AlertmanagerClient) -> None:
    now = datetime.now(UTC)
    with pytest.raises(AlertmanagerError, match="refused to create the silence") as bad:
        await client.create_silence(
            [Matcher(name="pod", value="(", isRegex=True)],
            now,
            now + timedelta(hours=1),
            "alice",
            "bad regex",
        )
    assert bad.value.status_code == 400
    assert "check the label matchers" in str(bad.value)
    with pytest.raises(AlertmanagerError) as empty:
        await client.create_silence([], now, now + timedelta(hours=1), "alice", "no matchers")
    assert empty.value.status_code in (400, 422) and "at least 1" in str(empty.value)
    with pytest.raises(AlertmanagerError) as backwards:
        await client.create_silence(
            [Matcher(name="alertname", value="X")], now, now - timedelta(hours=1), "a", "c"
        )
    assert backwards.value.status_code == 400
    with pytest.raises(AlertmanagerError, match="invalid matcher"):
        await client.create_silence([{"name": "", "value": "x"}], now, now, "a", "c")


async def test_unknown_silence_is_not_found(client: AlertmanagerClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(AlertmanagerError, match="not found") as err:
        await client.get_silence(missing)
    assert err.value.status_code == 404
    with pytest.raises(AlertmanagerError) as expire:
        await client.expire_silence(missing)
    assert expire.value.status_code == 404 and "not found" in str(expire.value)
    with pytest.raises(AlertmanagerError, match="not a silence id"):
        await client.expire_silence("../../-/quit")


async def test_unreachable_alertmanager() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = AlertmanagerClient(url, timeout_s=2)
    with pytest.raises(AlertmanagerError, match="unreachable") as err:
        await client.get_silences()
    assert url in str(err.value) and err.value.status_code is None
    now = datetime.now(UTC)
    with pytest.raises(AlertmanagerError, match="could not create the silence"):
        await client.create_silence(
            [Matcher(name="alertname", value="X")], now, now + timedelta(hours=1), "a", "c"
        )
