"""`vllm-chatops act`: the remediation core's second front end. Same plan → policy →
approval → audit path as Slack, against the Kubernetes API stand-in over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.remediation.audit import AuditLog
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.store import ActionRequest, Store

DEPLOYMENT = "deployment/ml/llama"


@pytest.fixture
def kube() -> Iterator[KubernetesStandIn]:
    with KubernetesStandIn() as fake:
        fake.add_deployment("ml", "llama", "vllm:0.11.0", replicas=2)
        fake.add_node("gpu-node-1")
        yield fake


def config(tmp_path: Path, kube: KubernetesStandIn, approvals: list[dict[str, object]]) -> str:
    settings = {
        "database_url": f"sqlite:///{tmp_path / 'state.db'}",
        "clusters": [{"name": "prod-a", "kube_api_url": kube.url, "kube_token": ADMIN_TOKEN}],
        "policy": {
            "grants": [{"users": ["alice", "bob"], "kinds": ["scale", "drain", "restart"]}],
            "approvals": approvals,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def replicas(kube: KubernetesStandIn) -> int:
    deployment = kube.get("deployments", "ml", "llama")
    assert deployment is not None
    return int(deployment["spec"]["replicas"])


def events(path: str) -> list[tuple[str, str]]:
    db = yaml.safe_load(Path(path).read_text())["database_url"]
    return [(e.event, e.actor_id) for e in reversed(AuditLog(db).recent(50))]


def only_request(path: str) -> ActionRequest:
    store = Store(yaml.safe_load(Path(path).read_text())["database_url"])
    with store.session() as s:
        (request,) = s.query(ActionRequest).all()
        return request


def test_act_scale_plans_executes_and_audits(
    tmp_path: Path, kube: KubernetesStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, kube, approvals=[])
    code = main(["--config", path, "act", "scale", "ml/llama", "5", "--as", "alice", "--yes"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "from 2 to 5 replicas" in out and "done:" in out
    assert replicas(kube) == 5
    assert events(path) == [("requested", "alice"), ("executing", "alice"), ("executed", "alice")]
    request = only_request(path)
    assert request.state == "done" and request.cluster in (None, "prod-a")


def test_act_without_a_grant_is_refused_and_audited(
    tmp_path: Path, kube: KubernetesStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, kube, approvals=[])
    code = main(["--config", path, "act", "scale", "ml/llama", "9", "--as", "mallory", "--yes"])
    out = capsys.readouterr().out
    assert code == 1
    assert "may not scale" in out and "ask an admin" in out
    assert replicas(kube) == 2
    assert events(path) == [("denied", "mallory")]


def test_act_two_person_rule_then_approve_from_the_terminal(
    tmp_path: Path, kube: KubernetesStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, kube, approvals=[{"kinds": ["drain"]}])
    code = main(["--config", path, "act", "drain", "gpu-node-1", "--as", "alice", "--yes"])
    out = capsys.readouterr().out
    assert code == 0 and "awaiting approval" in out
    node = kube.get("nodes", None, "gpu-node-1")
    assert node is not None and not node["spec"].get("unschedulable")
    request = only_request(path)
    assert request.state == "awaiting_approval"

    # the requester cannot approve their own request
    assert main(["--config", path, "act", "approve", request.id, "--as", "alice"]) == 1
    assert "two-person" in capsys.readouterr().out
    assert main(["--config", path, "act", "approve", request.id, "--as", "bob"]) == 0
    node = kube.get("nodes", None, "gpu-node-1")
    assert node is not None and node["spec"].get("unschedulable") is True
    assert [e for e, _ in events(path)] == [
        "approval_requested",
        "denied",
        "approved",
        "executing",
        "executed",
    ]


def test_act_bad_arguments_are_usage_errors(
    tmp_path: Path, kube: KubernetesStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, kube, approvals=[])
    assert main(["--config", path, "act", "scale", "ml/llama", "many", "--yes"]) == 2
    assert "usage: scale NAMESPACE/DEPLOYMENT REPLICAS" in capsys.readouterr().err
    assert main(["--config", path, "act", "scale", "ml/llama", "3", "--cluster", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert replicas(kube) == 2


def test_act_failed_plan_changes_nothing(
    tmp_path: Path, kube: KubernetesStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, kube, approvals=[])
    code = main(["--config", path, "act", "scale", "ml/missing", "3", "--as", "alice", "--yes"])
    out = capsys.readouterr().out
    assert code == 1 and "cannot run" in out
    assert not [
        r for r in kube.requests if r.method in ("PATCH", "PUT") and "dryRun" not in r.query
    ]
    assert events(path) == []
