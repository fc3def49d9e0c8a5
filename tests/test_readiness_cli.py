"""`vllm-chatops readiness` and `readiness attest` end to end: a config naming the
stack's Prometheus and Kubernetes API, the audit log in its database; the exit code is 0
only when every critical item passes or is attested."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleet_stack import eventually
from readiness_stack import ReadinessStack, readiness_stack, record_rollback
from sqlalchemy import update

from bot.canary.watches import Watches
from bot.cli import main
from bot.remediation.audit import AuditLog
from bot.store import CanaryWatchRow, Store

pytestmark = [pytest.mark.prometheus]


@pytest.fixture(scope="module")
def stack(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReadinessStack]:
    with readiness_stack(prometheus_binary, tmp_path_factory.mktemp("readiness-cli")) as s:
        yield s


@pytest.fixture
def config(stack: ReadinessStack, tmp_path: Path) -> str:
    database = f"sqlite:///{tmp_path / 'state.db'}"
    record_rollback(AuditLog(database), datetime.now(UTC) - timedelta(days=1), 12.0)
    twin = stack.twin
    settings = {
        "prometheus_url": stack.fleet.prometheus.url,
        "database_url": database,
        "clusters": [
            {"name": "prod", "kube_api_url": twin.kubernetes.url, "kube_token": twin.token}
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def scorecard(
    config: str, capsys: pytest.CaptureFixture[str], *scope: str
) -> tuple[int, dict[str, Any]]:
    code = main(
        [
            "--config",
            config,
            "readiness",
            "--format",
            "json",
            "--window",
            "10s",
            "--lookback",
            "20s",
            *scope,
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def test_not_ready_until_a_person_attests_what_only_a_person_knows(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def measured_pass() -> dict[str, Any]:
        code, doc = scorecard(config, capsys)
        measured = [i for i in doc["items"] if i["how"].startswith("measured")]
        assert [i["id"] for i in measured if i["status"] != "pass"] == [], measured
        assert code == 1
        return doc

    doc = eventually(measured_pass, timeout_s=40)
    assert doc["verdict"] == "10/17 critical pass: not ready"
    assert [i["critical"] for i in doc["items"]] == [True] * 17 + [False] * 3
    to_attest = [i["id"] for i in doc["items"] if i["critical"] and i["status"] == "unknown"]
    assert len(to_attest) == 7
    for item in to_attest:
        assert (
            main(
                [
                    "--config",
                    config,
                    "readiness",
                    "attest",
                    item,
                    "--by",
                    "ada",
                    "--link",
                    "https://wiki/x",
                ]
            )
            == 0
        )
    assert capsys.readouterr().out.count("attested by ada until") == 7
    code, doc = scorecard(config, capsys)
    assert (code, doc["verdict"]) == (0, "17/17 critical pass (7 attested): ready")
    on_call = next(i for i in doc["items"] if i["id"] == "on_call_rotation")
    assert on_call["status"] == "attested"
    assert (
        on_call["evidence"][0].startswith("by ada on ")
        and on_call["evidence"][1] == "https://wiki/x"
    )
    # the attestation is in the audit log like any action
    records = AuditLog(yaml.safe_load(Path(config).read_text())["database_url"]).of_kind(
        "readiness"
    )
    assert [r.event for r in records] == ["attested"] * 7


def test_a_measured_item_cannot_be_attested(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", config, "readiness", "attest", "multi_zone", "--by", "ada"]) == 2
    assert "measured by the bot" in capsys.readouterr().err
    assert (
        main(["--config", config, "readiness", "attest", "on_call_rotation", "--days", "31"]) == 2
    )
    assert main(["--config", config, "readiness", "attest", "nope"]) == 2


def test_the_table_names_the_verdict(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--config", config, "readiness", "--window", "10s", "--lookback", "20s"])
    out = capsys.readouterr().out
    assert code == 1
    assert "critical pass" in out and "not ready" in out and "on_call_rotation" in out


def test_a_canary_watch_in_the_database_passes_the_canary_item(
    stack: ReadinessStack, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def canary(*scope: str) -> dict[str, Any]:
        _, doc = scorecard(config, capsys, *scope)
        item: dict[str, Any] = next(i for i in doc["items"] if i["id"] == "canary_pipeline")
        return item

    def fails() -> dict[str, Any]:
        item = canary()
        assert item["status"] == "fail", item
        return item

    database = yaml.safe_load(Path(config).read_text())["database_url"]
    book = Watches(Store(database))
    stack.evidence.set("canary", False)  # no Argo Rollout: only a watch can pass it
    try:
        item = eventually(fails, timeout_s=30)
        assert item["evidence"][1] == "no Argo Rollout with a canary or blue-green strategy"
        assert item["evidence"][0].startswith("no canary watch active or finished since ")
        watch, _ = book.start("inference/llama", None, "C1", "U1")
        assert watch.created_at is not None
        item = canary()
        assert item["status"] == "pass" and item["how"].endswith("; found a canary watch"), item
        assert item["evidence"] == [
            f"canary watch #{watch.id} of inference/llama, watching since "
            f"{watch.created_at:%Y-%m-%d}",
            "no Argo Rollout with a canary or blue-green strategy",
        ]
        assert canary("--scope", "namespace=elsewhere")["status"] == "fail"
        stopped = book.stop(watch.id, "ada")
        assert stopped is not None and stopped.updated_at is not None
        item = canary()
        assert item["status"] == "pass", item
        assert item["evidence"][0] == (
            f"canary watch #{watch.id} of inference/llama, stopped {stopped.updated_at:%Y-%m-%d}"
        )
        with book.store.session() as s, s.begin():  # it ended before the 30 days' lookback
            s.execute(
                update(CanaryWatchRow).values(updated_at=datetime.now(UTC) - timedelta(days=31))
            )
        fails()
    finally:
        stack.evidence.set("canary", True)
        book.store.engine.dispose()

    def passes_on_the_rollout() -> None:  # the next test finds the fleet whole
        item = canary()
        assert item["status"] == "pass" and item["evidence"][0].startswith("Rollouts: "), item

    eventually(passes_on_the_rollout, timeout_s=30)


def test_without_the_database_the_canary_item_is_decided_on_kubernetes(
    stack: ReadinessStack, config: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings = yaml.safe_load(Path(config).read_text())
    settings["database_url"] = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    Path(config).write_text(yaml.safe_dump(settings))

    def passes() -> dict[str, Any]:
        _, doc = scorecard(config, capsys)
        item: dict[str, Any] = next(i for i in doc["items"] if i["id"] == "canary_pipeline")
        assert item["status"] == "pass", item
        return item

    item = eventually(passes, timeout_s=30)  # the Rollout is back from the test before
    assert item["how"].startswith("measured (Kubernetes):")
    assert item["evidence"][0].startswith("Rollouts: ")
    assert item["evidence"][1].startswith("canary watches not readable: OperationalError")
