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

from bot.cli import main
from bot.remediation.audit import AuditLog

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


def scorecard(config: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
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
