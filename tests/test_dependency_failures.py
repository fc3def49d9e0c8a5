"""Dependencies failing: each ends in a clear message and a correct audit record, and the
bot recovers by itself when the dependency returns (no restart).

Kubernetes answering 5xx in the middle of a drain, PostgreSQL dropping every connection
(as a restart does), Slack answering 503 for a while, Prometheus unreachable during a
`/vllm diagnose`: all against real local servers (fakes speaking the real protocols,
the real PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from bot_runner import BotRunner
from fakes.slack import FakeSlack, send_signed, slash_command_body
from fleet_stack import eventually, require_binary
from remediation_helpers import Recorder, cluster, granted, remediation_on
from sqlalchemy import create_engine, text

from bot.diagnosis.runbooks import load_runbooks
from bot.remediation.audit import AuditLog
from bot.remediation.events import Actor, Finished
from bot.remediation.flow import Remediation
from bot.remediation.requests import Asked
from bot.simulator.alertmanager_runner import AlertmanagerRunner, find_alertmanager
from bot.simulator.kubernetes_api import KubernetesStandIn
from bot.simulator.prometheus_runner import free_port
from bot.sources.prometheus import PrometheusSource
from bot.store import Store

ALICE = Actor("U1", "alice")


def remediation_for(
    database_url: str,
    kube: KubernetesStandIn,
    recorder: Recorder,
    alertmanager_url: str = "http://127.0.0.1:9093",
) -> Remediation:
    clusters = [cluster("a", kube, alertmanager_url=alertmanager_url)]
    return remediation_on(database_url, clusters, granted("drain", "silence"), recorder)


def drain(remediation: Remediation) -> str:
    request_id = asyncio.run(
        remediation.offer(Asked("drain", "node/gpu-1", {}), reason="Xid 79", runbook="")
    )
    asyncio.run(remediation.confirm(request_id, ALICE, {}))
    return request_id


@pytest.fixture
def kube() -> Iterator[KubernetesStandIn]:
    with KubernetesStandIn() as fake:
        fake.add_node("gpu-1")
        for i in range(2):
            fake.add_pod("ml", f"llama-7d9f8b6c5d-p{i}", "gpu-1", owner=("ReplicaSet", "llama"))
        yield fake


def test_kubernetes_failing_mid_drain_is_a_clear_failure_and_the_retry_works(
    tmp_path: Path, kube: KubernetesStandIn
) -> None:
    recorder = Recorder()
    remediation = remediation_for(f"sqlite:///{tmp_path / 's.db'}", kube, recorder)
    # the cordon goes through, then every eviction gets 503 from an overloaded API server
    kube.outage(503, path_prefix="/api/v1/namespaces/ml/pods/", writes_only=True)
    first = drain(remediation)
    finished = recorder.events[-1]
    assert isinstance(finished, Finished) and not finished.ok
    assert "Traceback" not in finished.summary, finished.summary
    assert "503" in finished.summary or "unavailable" in finished.summary.lower(), finished
    trail = [e.event for e in remediation.audit.for_request(first)]
    assert trail[-1] == "failed", trail
    assert remediation.store.lock_holder("node/gpu-1") is None  # the target is free again

    kube.recover()  # the API server is back: the same action simply works
    recorder.events.clear()
    second = drain(remediation)
    done = recorder.events[-1]
    assert isinstance(done, Finished), done
    assert done.ok, done.summary
    assert [e.event for e in remediation.audit.for_request(second)][-1] == "executed"
    assert not [p for p in kube.list("pods", "ml") if p["spec"].get("nodeName") == "gpu-1"]
    assert remediation.audit.verify().ok


def test_postgres_dropping_every_connection_is_survived(postgres_url: str) -> None:
    """What a PostgreSQL restart does to the bot's pooled connections: all killed at
    once. The next write reconnects; alerts, requests and the audit chain carry on."""
    name = f"vllm-chatops-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}&application_name={name}"
    store, audit = Store(url), AuditLog(url)
    assert store.open_post("g1", "C1", "rb", [("a", "A", "t")], {}) is not None
    audit.append("requested", request_id="r1", actor_id="U1", kind="drain", target="node/n")

    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": name},
        ).scalar()
    admin.dispose()
    assert killed and killed >= 1  # the pooled connections were there, and are gone

    assert store.open_post("g1", "C1", "rb", [("b", "A", "t")], {}) is not None
    audit.append("failed", request_id="r1", actor_id="U1", kind="drain", target="node/n")
    assert [e.event for e in audit.for_request("r1")] == ["requested", "failed"]
    assert audit.verify().ok


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[tuple[BotRunner, FakeSlack]]:
    slack = FakeSlack().start()
    runner = BotRunner(
        slack_bot_token=slack.token,
        slack_signing_secret="secret",
        slack_api_url=slack.api_url,
        prometheus_url=f"http://127.0.0.1:{free_port()}",  # Prometheus is down
        alerts_token="token",
        default_channel="C123",
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
    ).start()
    yield runner, slack
    runner.stop()
    slack.stop()


def test_slack_answering_503_delays_the_alert_post_but_never_loses_or_doubles_it(
    bot: tuple[BotRunner, FakeSlack],
) -> None:
    runner, slack = bot
    slack.outage("chat.postMessage", status=503)
    body = {
        "version": "4", "receiver": "bot", "status": "firing", "groupKey": "g-outage",
        "groupLabels": {}, "commonLabels": {"alertname": "VLLMQueueBacklog",
        "runbook": "queue_backlog", "namespace": "ml"}, "commonAnnotations": {},
        "externalURL": "", "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": {"alertname": "VLLMQueueBacklog",
                    "runbook": "queue_backlog", "namespace": "ml"}, "annotations": {},
                    "startsAt": "2026-11-28T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "fp-outage"}],
    }  # fmt: skip
    answer = httpx.post(
        f"{runner.url}/alerts", json=body, headers={"Authorization": "Bearer token"}
    )
    assert answer.status_code == 200  # recorded: Slack being down is not Alertmanager's problem
    eventually(lambda: [c for c in slack.calls_to("chat.postMessage") if c.status == 503] or None)
    assert not [m for m in slack.messages("C123") if m.thread_ts is None]

    def said_degraded() -> None:  # (once Slack's own retries of the call are spent)
        ready = httpx.get(f"{runner.url}/readyz").json()
        assert ready["ready"] and ready["slack"].startswith("failing for"), ready

    eventually(said_degraded, timeout_s=20)

    slack.clear_faults()  # Slack is back: the post goes out, once, with its diagnosis

    def posted_once() -> None:
        roots = [m for m in slack.messages("C123") if m.thread_ts is None]
        assert len(roots) == 1 and "VLLMQueueBacklog" in roots[0].text, [m.text for m in roots]
        replies = [m for m in slack.messages("C123") if m.thread_ts == roots[0].ts]
        assert replies, "the diagnosis follows in the thread"

    eventually(posted_once, timeout_s=30, interval_s=0.5)
    assert httpx.get(f"{runner.url}/readyz").json()["slack"] == "ok"


def test_prometheus_down_gets_a_clear_answer_to_a_diagnose_command(
    bot: tuple[BotRunner, FakeSlack],
) -> None:
    runner, slack = bot
    body = slash_command_body(
        "diagnose high_latency ns=ml", channel_id="C123", response_url=slack.response_url
    )
    assert send_signed(f"{runner.url}/slack/events", body, "secret").status == 200

    def reported() -> str:
        final = [m for m in slack.messages("C123") if "High latency" in m.text]
        assert final
        shown = json.dumps(final[-1].blocks)
        assert "cannot reach Prometheus" in shown, shown[:500]
        return shown

    shown = eventually(reported, timeout_s=30, interval_s=0.5)
    assert "Traceback" not in shown and "healthy" not in shown.lower()


def test_alertmanager_unreachable_fails_a_silence_clearly_and_the_retry_works(
    tmp_path: Path, kube: KubernetesStandIn
) -> None:
    binary = require_binary("prometheus-alertmanager", find_alertmanager())
    alertmanager = AlertmanagerRunner(binary, "http://127.0.0.1:9/alerts", "token")
    recorder = Recorder()
    remediation = remediation_for(
        f"sqlite:///{tmp_path / 's.db'}", kube, recorder, alertmanager.url
    )

    def silence() -> tuple[str, Finished]:
        asked = Asked("silence", "VLLMQueueBacklog{namespace=ml}", {"duration": "1h"})
        request_id = asyncio.run(remediation.offer(asked, reason="noisy", runbook=""))
        asyncio.run(remediation.confirm(request_id, ALICE, {}))
        finished = recorder.events[-1]
        assert isinstance(finished, Finished), recorder.events
        return request_id, finished

    first, failed = silence()  # not started yet: nothing listens on its port
    assert not failed.ok and "Alertmanager" in failed.summary, failed.summary
    assert "Traceback" not in failed.summary
    assert [e.event for e in remediation.audit.for_request(first)][-1] == "failed"
    alertmanager.start()
    try:
        second, done = silence()
        assert done.ok, done.summary
        assert [e.event for e in remediation.audit.for_request(second)][-1] == "executed"
    finally:
        alertmanager.stop()


def test_prometheus_down_at_verification_is_no_verdict_never_recovered(
    tmp_path: Path, kube: KubernetesStandIn
) -> None:
    recorder = Recorder()
    database = f"sqlite:///{tmp_path / 's.db'}"
    remediation = remediation_for(database, kube, recorder)
    remediation.runbooks = load_runbooks()
    remediation.metrics_for = lambda cluster: PrometheusSource("http://127.0.0.1:9", timeout_s=1)
    request_id = remediation.store.create_action_request(
        kind="scale", target="deployment/ml/llama", params={"replicas": 3}, reason="queue",
        runbook="queue_backlog", channel=None, ttl=timedelta(minutes=5), cluster="a",
        scope={"namespace": "ml"},
    )  # fmt: skip
    verified = asyncio.run(remediation.verify(request_id, None))
    assert verified is not None and not verified.recovered
    assert verified.headline.startswith("could not verify scale deployment/ml/llama")
    assert "cannot reach Prometheus" in verified.headline
    trail = remediation.audit.for_request(request_id)
    assert trail[-1].event == "verified" and "could not verify" in (trail[-1].outcome or "")


def test_kubernetes_too_slow_to_answer_is_a_clear_failure_and_the_retry_works(
    tmp_path: Path, kube: KubernetesStandIn
) -> None:
    recorder = Recorder()
    remediation = remediation_for(f"sqlite:///{tmp_path / 's.db'}", kube, recorder)
    kube.hang(12, writes_only=True)  # the plan reads fine; then writes outlast 10 s
    first = drain(remediation)
    failed = recorder.events[-1]
    assert isinstance(failed, Finished) and not failed.ok
    assert "Traceback" not in failed.summary
    assert "did not answer in time" in failed.summary, failed.summary
    assert [e.event for e in remediation.audit.for_request(first)][-1] == "failed"
    assert remediation.store.lock_holder("node/gpu-1") is None
    kube.recover()
    recorder.events.clear()
    drain(remediation)
    done = recorder.events[-1]
    assert isinstance(done, Finished), done
    assert done.ok, done.summary
