"""Restarting one pod: evicted through the Eviction API, replaced by its controller.

The diagnosis recommends ``restart pod/NS/POD`` for a faulty replica (an application Xid,
an engine that is down, a replica returning errors); the action must accept every such
target, name the controller that brings the pod back, refuse when nothing would, and
respect PodDisruptionBudgets. Run against the Kubernetes API stand-in over its socket.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_stack import eventually
from remediation_helpers import Recorder, cluster, granted, remediation_on
from simulator.promtext import value
from twin_stack import serving_twin, two_model_fleet

from bot.diagnosis.decisions import evaluate
from bot.diagnosis.rules import Rule, load_rule_catalogue
from bot.diagnosis.runbooks import load_runbooks
from bot.models import CheckResult, Offender, RecommendedAction, Scope, Status
from bot.remediation.actions import ACTIONS, ActionError
from bot.remediation.actions.restart import RESTARTED_AT
from bot.remediation.events import Actor, Finished
from bot.remediation.flow import recheck_scope
from bot.remediation.requests import RequestSyntaxError, parse_action
from bot.simulator.kube_objects import REVISION_ANNOTATION, pod_ready
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.simulator.server import Simulator
from bot.slack.slash import parse as parse_slash
from bot.sources.kubernetes import KubeClient, KubernetesError
from bot.store import Store

NS = "ml"
RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"
Obj = dict[str, Any]


def client(fake: KubernetesStandIn) -> KubeClient:
    return KubeClient.for_server(fake.url, ADMIN_TOKEN, namespace=NS)


def replicaset_of(fake: KubernetesStandIn, namespace: str, deployment: str) -> Obj:
    """The deployment's current ReplicaSet (the one with replicas)."""
    (rs,) = [
        r
        for r in fake.list("replicasets", namespace)
        if r["metadata"]["ownerReferences"][0]["name"] == deployment and r["spec"]["replicas"]
    ]
    return rs


def add_replica(
    fake: KubernetesStandIn,
    namespace: str,
    deployment: str,
    name: str,
    *,
    ready: bool = True,
    node: str = "gpu-1",
) -> Obj:
    """A pod of ``deployment``'s current ReplicaSet, as its controller would have made it."""
    rs = replicaset_of(fake, namespace, deployment)
    meta = rs["metadata"]
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return fake.put_object(
        "pods",
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(rs["spec"]["selector"]["matchLabels"]),
                "ownerReferences": [owner],
            },
            "spec": {"nodeName": node, "containers": [{"name": "vllm", "image": "vllm:0.11.0"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        },
    )


def writes(fake: KubernetesStandIn) -> list[tuple[str, str, str]]:
    return [
        (r.method, r.path, r.query.get("dryRun", ""))
        for r in fake.requests
        if r.method in ("PUT", "PATCH", "POST", "DELETE")
    ]


@pytest.fixture
def fake() -> Iterator[KubernetesStandIn]:
    with KubernetesStandIn() as fk:
        fk.add_deployment(NS, "llama", "vllm:0.11.0", replicas=2, revisions=["vllm:0.10.2"])
        rs = replicaset_of(fk, NS, "llama")["metadata"]["name"]
        add_replica(fk, NS, "llama", f"{rs}-aaaaa")
        add_replica(fk, NS, "llama", f"{rs}-bbbbb", node="gpu-2")
        yield fk


@pytest.fixture
def managed() -> Iterator[KubernetesStandIn]:
    """The stand-in running the ReplicaSet controller: 3 ready pods of Deployment llama."""
    with KubernetesStandIn(manage_pods=True) as fk:
        fk.add_deployment(NS, "llama", "vllm:0.11.0", replicas=3, revisions=["vllm:0.10.2"])
        start_all(fk)
        yield fk


def start_all(fake: KubernetesStandIn) -> None:
    """What a scheduler and a kubelet do: bind each pending pod and report it ready."""

    def run(pod: Obj) -> None:
        pod["spec"].setdefault("nodeName", "gpu-1")
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}

    for pod in fake.list("pods", NS):
        if not pod_ready(pod):
            fake.update("pods", NS, pod["metadata"]["name"], run)


# --- what the diagnosis recommends ------------------------------------------------------------

POD = "llama-7d9f8b6c5d-abcde"


def evidence_for(rule: Rule) -> dict[str, CheckResult]:
    """Check results satisfying every condition of ``rule``, naming one faulty pod the way
    the checks do (offenders by pod; ``restart_targets`` as ``pod/NS/POD``)."""
    statuses: dict[str, Status] = {}
    for cond in rule.when:
        if cond.status:
            statuses[cond.check] = cond.status[0]
    out: dict[str, CheckResult] = {}
    for check in sorted(rule.checks):
        status = statuses.get(check, "warn")
        offender_status: Status = "warn" if status in ("ok", "unknown") else status
        out[check] = CheckResult(
            id=check,
            title=check,
            status=status,
            value=1.0,
            summary=f"{check} evidence",
            offenders=[
                Offender(
                    target={"namespace": NS, "pod": POD, "node": "gpu-1", "gpu": "0"},
                    value=1.0,
                    status=offender_status,
                )
            ],
            facts={"restart_targets": [f"pod/{NS}/{POD}"], "drain_targets": ["node/gpu-1"]},
        )
    return out


def recommended_restarts() -> dict[str, set[str]]:
    """Every restart target a shipped runbook recommends on each restart rule's evidence."""
    rules = [r for r in load_rule_catalogue(RUNBOOKS) if r.action and r.action.kind == "restart"]
    runbooks = load_runbooks(RUNBOOKS).values()
    targets: dict[str, set[str]] = defaultdict(set)
    for rule in rules:
        evidence = evidence_for(rule)
        for runbook in runbooks:
            if not rule.applies_to(ref.id for ref in runbook.checks):
                continue
            _, actions = evaluate(runbook, evidence, Scope(labels={"namespace": NS}))
            targets[rule.id] |= {a.target for a in actions if a.kind == "restart"}
    return targets


async def test_every_restart_target_the_catalogue_can_recommend_can_be_planned() -> None:
    targets = recommended_restarts()
    assert {"application_xid", "engine_down", "replica_errors"} <= set(targets)
    assert all(targets.values()), f"a restart rule recommended nothing: {targets}"
    everything = set().union(*targets.values())
    assert f"pod/{NS}/{POD}" in everything
    with KubernetesStandIn() as fake:
        fake.add_deployment(NS, "llama", "vllm:0.11.0", replicas=2)
        add_replica(fake, NS, "llama", POD)
        add_replica(fake, NS, "llama", "llama-7d9f8b6c5d-fghij")
        async with client(fake) as kube:
            for target in sorted(everything):
                plan = await ACTIONS["restart"].plan(kube, target, {})
                assert plan.dry_run_ok, (target, plan.warnings)
    assert fake.get("pods", NS, POD) is not None, "a plan changes nothing"


# --- plan -------------------------------------------------------------------------------------


async def test_the_plan_names_the_replicaset_and_deployment_that_recreate_the_pod(
    fake: KubernetesStandIn,
) -> None:
    rs = replicaset_of(fake, NS, "llama")["metadata"]["name"]
    pod = f"{rs}-aaaaa"
    async with client(fake) as kube:
        fake.clear_requests()
        plan = await ACTIONS["restart"].plan(kube, f"pod/{NS}/{pod}", {})
    assert plan.target == f"pod/{NS}/{pod}"
    assert plan.summary == (
        f"restart pod {NS}/{pod}: evict it, and ReplicaSet {rs} of Deployment llama replaces it"
    )
    assert plan.changes == [
        f"evict pod {NS}/{pod} on node gpu-1 through the Eviction API "
        "(PodDisruptionBudgets apply): it stops within its 30s grace period",
        f"ReplicaSet {rs} of Deployment llama creates a replacement pod; only this replica "
        "restarts, Deployment llama is not rolled",
    ]
    assert plan.warnings == [] and plan.dry_run_ok
    assert plan.details["controller"] == [f"ReplicaSet {rs}", "Deployment llama"]
    # the only write is the eviction's server-side dry run, for that pod's uid only
    assert writes(fake) == [("POST", f"/api/v1/namespaces/{NS}/pods/{pod}/eviction", "All")]
    (eviction,) = [r for r in fake.requests if r.method == "POST"]
    uid = fake.get("pods", NS, pod)["metadata"]["uid"]  # type: ignore[index]
    assert eviction.body["deleteOptions"] == {"preconditions": {"uid": uid}}


async def test_the_plan_warns_when_no_other_replica_is_serving(fake: KubernetesStandIn) -> None:
    rs = replicaset_of(fake, NS, "llama")["metadata"]["name"]
    fake.set_pod_ready(NS, f"{rs}-bbbbb", False)
    async with client(fake) as kube:
        plan = await ACTIONS["restart"].plan(kube, f"pod/{NS}/{rs}-aaaaa", {})
    assert plan.warnings == [
        f"no other replica of ReplicaSet {rs} of Deployment llama is ready: nothing it runs "
        "is served until the replacement is ready (loading a model can take minutes)"
    ]


async def test_a_statefulset_pod_comes_back_under_its_own_name(fake: KubernetesStandIn) -> None:
    fake.add_statefulset(NS, "qwen", "vllm:0.11.0", replicas=1)
    fake.add_pod(NS, "qwen-0", "gpu-2", {"app": "qwen"}, owner=("StatefulSet", "qwen"))
    async with client(fake) as kube:
        plan = await ACTIONS["restart"].plan(kube, f"pod/{NS}/qwen-0", {})
    assert plan.changes[1] == (
        "StatefulSet qwen recreates pod qwen-0 under the same name once it has stopped; only "
        "this replica restarts, StatefulSet qwen is not rolled"
    )


# --- execute ----------------------------------------------------------------------------------


async def test_only_the_faulty_replica_restarts_and_its_replicaset_replaces_it(
    managed: KubernetesStandIn,
) -> None:
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in managed.list("pods", NS)}
    assert len(before) == 3
    faulty, *healthy = sorted(before)
    rs = replicaset_of(managed, NS, "llama")["metadata"]["name"]
    deployment = managed.get("deployments", NS, "llama")
    assert deployment is not None
    messages: list[str] = []

    async def progress(message: str) -> None:
        messages.append(message)

    async with client(managed) as kube:
        plan = await ACTIONS["restart"].plan(kube, f"pod/{NS}/{faulty}", {})
        assert plan.dry_run_ok and managed.get("pods", NS, faulty) is not None
        managed.clear_requests()
        outcome = await ACTIONS["restart"].execute(kube, f"pod/{NS}/{faulty}", {}, progress)
    assert outcome.ok, outcome.summary
    after = {p["metadata"]["name"]: p for p in managed.list("pods", NS)}
    assert faulty not in after and len(after) == 3
    (new,) = set(after) - set(before)
    assert after[new]["metadata"]["ownerReferences"][0]["name"] == rs
    assert outcome.details["replacement"] == f"{NS}/{new}"
    assert outcome.summary == (
        f"restarted pod {NS}/{faulty}: evicted pod {NS}/{faulty}; ReplicaSet {rs} of "
        f"Deployment llama replaced it with {new} (Pending)"
    )
    assert messages == [
        f"evicted pod {NS}/{faulty}; waiting for ReplicaSet {rs} of Deployment llama to replace it",
        f"replacement: pod {NS}/{new} (Pending)",
    ]
    # the other replicas keep running, untouched; the Deployment was not rolled
    assert {n: after[n]["metadata"]["uid"] for n in healthy} == {n: before[n] for n in healthy}
    now = managed.get("deployments", NS, "llama")
    assert now is not None
    assert now["spec"] == deployment["spec"]
    assert RESTARTED_AT not in (now["spec"]["template"]["metadata"].get("annotations") or {})
    assert now["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    # an eviction of that pod (by uid), never a DELETE
    assert [(m, p) for m, p, _ in writes(managed)] == [
        ("POST", f"/api/v1/namespaces/{NS}/pods/{faulty}/eviction")
    ]
    (eviction,) = [r for r in managed.requests if r.method == "POST"]
    assert eviction.body["deleteOptions"] == {"preconditions": {"uid": before[faulty]}}


async def test_a_second_execution_finds_the_pod_gone_and_evicts_nothing(
    managed: KubernetesStandIn,
) -> None:
    faulty = sorted(p["metadata"]["name"] for p in managed.list("pods", NS))[0]
    async with client(managed) as kube:
        first = await ACTIONS["restart"].execute(kube, f"pod/{NS}/{faulty}", {})
        assert first.ok
        pods = {p["metadata"]["uid"] for p in managed.list("pods", NS)}
        managed.clear_requests()
        with pytest.raises(KubernetesError, match="it may have been restarted or replaced"):
            await ACTIONS["restart"].execute(kube, f"pod/{NS}/{faulty}", {})
    assert writes(managed) == []
    assert {p["metadata"]["uid"] for p in managed.list("pods", NS)} == pods


async def test_a_pod_replaced_under_the_same_name_before_the_eviction_is_left_alone(
    fake: KubernetesStandIn,
) -> None:
    rs = replicaset_of(fake, NS, "llama")["metadata"]["name"]
    pod = f"{rs}-aaaaa"
    # the API server refuses an eviction whose uid precondition no longer holds (409)
    fake.conflict_next(f"/api/v1/namespaces/{NS}/pods/{pod}/eviction")
    async with client(fake) as kube:
        outcome = await ACTIONS["restart"].execute(kube, f"pod/{NS}/{pod}", {"wait_s": 0})
    assert not outcome.ok
    assert "before the eviction reached it; nothing was done" in outcome.summary
    assert fake.get("pods", NS, pod) is not None


# --- refusals ---------------------------------------------------------------------------------


async def test_a_pod_without_a_controller_is_refused(fake: KubernetesStandIn) -> None:
    fake.add_pod(NS, "debug-shell", "gpu-1", {"app": "debug"})
    async with client(fake) as kube:
        fake.clear_requests()
        for step in ("plan", "execute"):
            with pytest.raises(ActionError, match="has no controller") as refused:
                await getattr(ACTIONS["restart"], step)(kube, f"pod/{NS}/debug-shell", {})
            assert "nothing would recreate it" in str(refused.value)
    assert writes(fake) == []
    assert fake.get("pods", NS, "debug-shell") is not None


async def test_a_missing_pod_is_refused_clearly(fake: KubernetesStandIn) -> None:
    async with client(fake) as kube:
        for step in ("plan", "execute"):
            with pytest.raises(KubernetesError) as missing:
                await getattr(ACTIONS["restart"], step)(kube, f"pod/{NS}/llama-gone-zzzzz", {})
            assert missing.value.status == 404
            assert str(missing.value) == (
                f"pod {NS}/llama-gone-zzzzz was not found: it may have been restarted or "
                "replaced already (a Deployment's new pod gets a new name). Nothing was "
                "done; diagnose again to see the current pods"
            )
    assert writes(fake) == []


async def test_a_terminating_pod_is_refused(fake: KubernetesStandIn) -> None:
    rs = replicaset_of(fake, NS, "llama")["metadata"]["name"]
    pod = f"{rs}-aaaaa"
    fake.update(
        "pods", NS, pod, lambda p: p["metadata"].update(deletionTimestamp="2026-12-01T10:00:00Z")
    )
    async with client(fake) as kube:
        fake.clear_requests()
        for step in ("plan", "execute"):
            with pytest.raises(ActionError, match="already terminating") as refused:
                await getattr(ACTIONS["restart"], step)(kube, f"pod/{NS}/{pod}", {})
            assert "2026-12-01T10:00:00Z" in str(refused.value)
    assert writes(fake) == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("static", "is a static pod, run by the kubelet on gpu-1"),
        ("orphan", "its ReplicaSet llama-x no longer exists"),
        ("retired", "is scaled to 0 (an old revision being retired)"),
    ],
)
async def test_pods_nothing_would_bring_back_are_refused(
    fake: KubernetesStandIn, setup: str, message: str
) -> None:
    if setup == "static":
        fake.add_pod(NS, "kube-proxy-gpu-1", "gpu-1", owner=("Node", "gpu-1"), mirror=True)
        pod = "kube-proxy-gpu-1"
    elif setup == "orphan":
        fake.add_pod(
            NS, "llama-x-aaaaa", "gpu-1", {"app": "llama"}, owner=("ReplicaSet", "llama-x")
        )
        pod = "llama-x-aaaaa"
    else:
        old = next(r for r in fake.list("replicasets", NS) if not r["spec"]["replicas"])
        pod = f"{old['metadata']['name']}-ccccc"
        fake.put_object(
            "pods",
            {
                "metadata": {
                    "name": pod,
                    "namespace": NS,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": old["metadata"]["name"],
                            "uid": old["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {"nodeName": "gpu-1", "containers": [{"name": "vllm", "image": "x"}]},
            },
        )
    async with client(fake) as kube:
        fake.clear_requests()
        with pytest.raises(ActionError, match=re.escape(message)):
            await ACTIONS["restart"].plan(kube, f"pod/{NS}/{pod}", {})
    assert writes(fake) == []


async def test_a_disruption_budget_that_forbids_it_is_respected(fake: KubernetesStandIn) -> None:
    rs = replicaset_of(fake, NS, "llama")["metadata"]["name"]
    pod = f"{rs}-aaaaa"
    fake.add_pdb(NS, "llama", {"app": "llama"}, min_available=2)
    async with client(fake) as kube:
        with pytest.raises(ActionError) as refused:
            await ACTIONS["restart"].plan(kube, f"pod/{NS}/{pod}", {})
        text = str(refused.value)
        assert f"evicting pod {NS}/{pod} would violate its PodDisruptionBudget" in text
        assert "The disruption budget llama needs 2 healthy pods and has 2 currently" in text
        assert "Nothing was done" in text and f"kubectl delete pod -n {NS} {pod}" in text
        # the budget closes between the plan and the confirmation: refused, nothing evicted
        outcome = await ACTIONS["restart"].execute(kube, f"pod/{NS}/{pod}", {"wait_s": 0})
    assert not outcome.ok and "PodDisruptionBudget" in outcome.summary
    assert fake.get("pods", NS, pod) is not None
    evictions = [r.status for r in fake.requests if r.path.endswith(f"/{pod}/eviction")]
    assert evictions == [429, 429]


async def test_a_broken_replica_is_evictable_while_the_healthy_ones_meet_the_budget(
    fake: KubernetesStandIn,
) -> None:
    rs = replicaset_of(fake, NS, "llama")["metadata"]["name"]
    add_replica(fake, NS, "llama", f"{rs}-ccccc")
    fake.set_pod_ready(NS, f"{rs}-aaaaa", False)  # the faulty one: not ready
    fake.add_pdb(NS, "llama", {"app": "llama"}, min_available=2)
    async with client(fake) as kube:
        plan = await ACTIONS["restart"].plan(kube, f"pod/{NS}/{rs}-aaaaa", {})
        assert plan.dry_run_ok
        outcome = await ACTIONS["restart"].execute(kube, f"pod/{NS}/{rs}-aaaaa", {"wait_s": 0})
    assert outcome.ok and fake.get("pods", NS, f"{rs}-aaaaa") is None
    assert "no replacement from ReplicaSet" in outcome.summary  # no controller runs here


# --- asking for it ----------------------------------------------------------------------------


def test_restart_takes_a_pod_target_from_slack_and_the_terminal() -> None:
    assert parse_action("restart", [f"pod/{NS}/{POD}"]).target == f"pod/{NS}/{POD}"
    assert parse_action("restart", [f"{NS}/llama"]).target == f"deployment/{NS}/llama"
    slash = parse_slash(f"restart pod/{NS}/{POD} cluster=west", ["high_error_rate"])
    assert (slash.verb, slash.kind, slash.target) == ("action", "restart", f"pod/{NS}/{POD}")
    assert slash.scope.cluster == "west"
    with pytest.raises(RequestSyntaxError, match="is not NAMESPACE/NAME"):
        parse_action("scale", [f"pod/{NS}/{POD}", "2"])  # one pod has no replica count
    with pytest.raises(RequestSyntaxError, match="not a valid pod name"):
        parse_action("restart", [f"pod/{NS}/Bad_Name"])
    with pytest.raises(RequestSyntaxError, match="restart pod/NAMESPACE/POD"):
        parse_action("restart", [])


def test_the_recommended_pod_restart_runs_from_the_button(
    tmp_path: Path, managed: KubernetesStandIn
) -> None:
    database_url = f"sqlite:///{tmp_path / 's.db'}"
    recorder = Recorder()
    remediation = remediation_on(
        database_url, [cluster("a", managed)], granted("restart"), recorder, verification_delay_s=30
    )
    faulty = sorted(p["metadata"]["name"] for p in managed.list("pods", NS))[0]
    recommended = RecommendedAction(
        kind="restart", target=f"pod/{NS}/{faulty}", reason="errors on one replica"
    )
    scope = Scope(cluster="a", labels={"namespace": NS, "pod": faulty})
    request_id = asyncio.run(
        remediation.offer_recommended(recommended, runbook="high_error_rate", scope=scope)
    )
    alice = Actor("U1", "alice")
    preview = asyncio.run(remediation.preview(request_id, alice))
    assert preview.executable and preview.plan is not None, preview.error
    assert preview.plan.summary.startswith(f"restart pod {NS}/{faulty}: evict it, and ReplicaSet")
    asyncio.run(remediation.confirm(request_id, alice, {}))
    finished = recorder.events[-1]
    assert isinstance(finished, Finished) and finished.ok, finished
    assert finished.verify_in_s == 30
    assert managed.get("pods", NS, faulty) is None and len(managed.list("pods", NS)) == 3
    # the re-check follows the replica to its Deployment: the old pod's name is gone
    req = remediation.store.action_request(request_id)
    assert req is not None
    assert recheck_scope(req) == Scope(cluster="a", labels={"namespace": NS, "deployment": "llama"})


def test_the_recheck_keeps_a_statefulset_pod_and_other_scopes_as_they_were(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")

    def request(kind: str, target: str, scope: dict[str, str]) -> Scope:
        request_id = store.create_action_request(
            kind=kind,
            target=target,
            params={},
            reason="r",
            runbook="rb",
            channel=None,
            ttl=timedelta(minutes=5),
            cluster="a",
            scope=scope,
        )
        req = store.action_request(request_id)
        assert req is not None
        return recheck_scope(req)

    sts = {"namespace": NS, "pod": "qwen-0"}
    assert request("restart", f"pod/{NS}/qwen-0", sts).labels == sts
    other = {"namespace": NS, "pod": "llama-7d9f8b6c5d-fghij"}
    assert request("restart", f"pod/{NS}/{POD}", other).labels == other
    # a rollout of the pod's Deployment replaces it too, and a drain moves it
    followed = {"namespace": NS, "deployment": "llama"}
    for kind, target in (
        ("restart", f"deployment/{NS}/llama"),
        ("rollback", f"deployment/{NS}/llama"),
        ("scale", f"deployment/{NS}/llama"),
        ("drain", "node/gpu-node-7"),
    ):
        assert request(kind, target, {"namespace": NS, "pod": POD}).labels == followed, kind
    assert request("rollback", f"deployment/{NS}/llama", {"pod": POD}).labels == followed
    # another Deployment's rollback leaves this pod's scope alone
    assert request("rollback", f"deployment/{NS}/qwen", other).labels == other


# --- in the fleet twin ------------------------------------------------------------------------


def test_restarting_the_pod_hit_by_an_application_xid_clears_it_and_spares_the_rest() -> None:
    sim = Simulator(two_model_fleet(), "healthy", 3)
    with serving_twin(sim, startup_delay_s=0.3, resync_s=0.1) as (server, twin):
        truth = sim.switch("xid_13", seed=3)
        (fault,) = truth.faults
        assert truth.action == "restart" and truth.action_target == (
            f"pod/{fault.namespace}/{fault.pod}"
        )
        ns = str(fault.namespace)
        others = {
            p["metadata"]["name"]: p["metadata"]["uid"]
            for p in twin.kubernetes.list("pods", ns)
            if p["metadata"]["name"] != fault.pod
        }

        async def act() -> tuple[bool, str]:
            async with KubeClient.for_server(twin.kubernetes.url, twin.token, ns) as kube:
                await ACTIONS["restart"].plan(kube, str(truth.action_target), {})
                outcome = await ACTIONS["restart"].execute(kube, str(truth.action_target), {})
            return outcome.ok, outcome.summary

        ok, summary = asyncio.run(act())
        assert ok, summary

        def cleared() -> None:
            text = httpx.get(f"{server.url}/nodes/{fault.node}/metrics", timeout=5).text
            assert value(text, "DCGM_FI_DEV_XID_ERRORS", gpu=str(fault.gpu)) == 0
            pods = {p["metadata"]["name"] for p in twin.kubernetes.list("pods", ns)}
            assert fault.pod not in pods and len(pods) == len(others) + 1

        eventually(cleared, timeout_s=10, interval_s=0.1)
        still = {
            p["metadata"]["name"]: p["metadata"]["uid"] for p in twin.kubernetes.list("pods", ns)
        }
        assert {n: still.get(n) for n in others} == others, "the other replicas kept running"
