"""Every action's plan and execute, through lightkube over HTTP against the API stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.remediation.actions import ACTIONS, ActionError, get_action, parse_target
from bot.remediation.actions.restart import RESTARTED_AT
from bot.simulator.kube_objects import (
    REVISION_ANNOTATION,
    ROLLOUT_HASH_LABEL,
    ROLLOUT_REVISION_ANNOTATION,
)
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.sources.kubernetes import KubeClient, KubernetesError, KubeTarget, build_config

DEP = "/apis/apps/v1/namespaces/ml/deployments"
HPA = "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers"
ROLLOUTS = "/apis/argoproj.io/v1alpha1/namespaces/ml/rollouts"


def client(fake: KubernetesStandIn, token: str = ADMIN_TOKEN) -> KubeClient:
    return KubeClient.for_server(fake.url, token, namespace="ml")


def writes(fake: KubernetesStandIn) -> list[tuple[str, str, str]]:
    return [
        (r.method, r.path, r.query.get("dryRun", ""))
        for r in fake.requests
        if r.method in ("PUT", "PATCH", "POST", "DELETE")
    ]


class Progress:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, message: str) -> None:
        self.messages.append(message)


# --- registry and targets ------------------------------------------------------------


def test_registry_and_targets() -> None:
    assert set(ACTIONS) == {"scale", "rollback", "promote", "drain", "uncordon", "restart"}
    assert get_action("drain").kind == "drain"
    with pytest.raises(ActionError, match="no action 'reboot'"):
        get_action("reboot")
    t = parse_target("deployment/ml/llama")
    assert (t.kind, t.namespace, t.name, str(t)) == ("Deployment", "ml", "llama", t.__str__())
    assert parse_target("node/gpu-1").namespace is None
    with pytest.raises(ActionError, match="expected deployment/NAMESPACE/NAME"):
        parse_target("deployment/llama")
    with pytest.raises(ActionError, match="unknown type 'daemonset'"):
        parse_target("daemonset/ml/x")
    with pytest.raises(ActionError, match="works on node targets, not deployment"):
        parse_target("deployment/ml/x", ("node",))


def test_unknown_kube_context_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [{"name": "prod", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "prod",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(KubernetesError, match="no context 'staging'"):
        KubeClient.connect(KubeTarget(kube_context="staging"))
    assert isinstance(KubeClient.connect(KubeTarget(kube_context="prod")), KubeClient)


def test_build_config_from_url_and_token() -> None:
    conf = build_config(KubeTarget(base_url="http://127.0.0.1:1", token="t0k", namespace="ml"))
    single = conf.get()
    assert single is not None
    assert single.cluster.server == "http://127.0.0.1:1"
    assert single.user is not None and single.user.token == "t0k"
    assert single.namespace == "ml"


# --- scale ---------------------------------------------------------------------------


async def test_scale_without_autoscaler(fake: KubernetesStandIn) -> None:
    action = ACTIONS["scale"]
    async with client(fake) as kube:
        fake.clear_requests()
        plan = await action.plan(kube, "deployment/ml/llama", {"replicas": 4})
        assert plan.changes == ["Deployment ml/llama: replicas 2 → 4"]
        assert plan.dry_run_ok and plan.details["mode"] == "scale"
        assert writes(fake) == [("PATCH", f"{DEP}/llama/scale", "All")]
        assert fake.get("deployments", "ml", "llama")["spec"]["replicas"] == 2  # type: ignore[index]
        progress = Progress()
        outcome = await action.execute(kube, "deployment/ml/llama", {"replicas": 4}, progress)
    assert outcome.ok and outcome.summary == "scaled Deployment ml/llama from 2 to 4 replicas"
    assert progress.messages == ["scaled Deployment ml/llama: 2 → 4 replicas"]
    dep = fake.get("deployments", "ml", "llama")
    assert dep is not None and dep["spec"]["replicas"] == 4 and dep["status"]["replicas"] == 4


async def test_scale_statefulset(fake: KubernetesStandIn) -> None:
    fake.add_statefulset("ml", "qwen", "vllm:0.6.3", replicas=1)
    async with client(fake) as kube:
        outcome = await ACTIONS["scale"].execute(kube, "statefulset/ml/qwen", {"replicas": 3})
    sts = fake.get("statefulsets", "ml", "qwen")
    assert outcome.ok and sts is not None and sts["spec"]["replicas"] == 3


async def test_scale_with_hpa_changes_its_bounds(fake: KubernetesStandIn) -> None:
    fake.add_hpa("ml", "llama-hpa", "llama", min=2, max=4)
    action = ACTIONS["scale"]
    async with client(fake) as kube:
        fake.clear_requests()
        plan = await action.plan(kube, "deployment/ml/llama", {"replicas": 6})
        assert plan.changes == [
            "HPA ml/llama-hpa owns the replica count: raising minReplicas 2 → 6",
            "raising maxReplicas 4 → 6 so the floor fits",
        ]
        assert plan.dry_run_ok and plan.details["mode"] == "hpa"
        assert any("will not fight" in w for w in plan.warnings)
        assert writes(fake) == [("PATCH", f"{HPA}/llama-hpa", "All")]
        outcome = await action.execute(kube, "deployment/ml/llama", {"replicas": 6})
    assert outcome.ok
    assert "minReplicas 2 → 6, maxReplicas 4 → 6" in outcome.summary
    hpa = fake.get("horizontalpodautoscalers", "ml", "llama-hpa")
    assert hpa is not None and (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (6, 6)
    # the replica count itself was left to the HPA
    assert fake.get("deployments", "ml", "llama")["spec"]["replicas"] == 2  # type: ignore[index]
    assert not any(p.endswith("/scale") for m, p, _ in writes(fake) if m == "PATCH")


async def test_scale_with_hpa_refuses_zero(fake: KubernetesStandIn) -> None:
    fake.add_hpa("ml", "llama-hpa", "llama", min=2, max=4)
    async with client(fake) as kube:
        with pytest.raises(ActionError, match="cannot go below 1"):
            await ACTIONS["scale"].plan(kube, "deployment/ml/llama", {"replicas": 0})


async def test_scale_with_keda_changes_the_scaled_object(fake: KubernetesStandIn) -> None:
    fake.add_scaled_object("ml", "llama-so", "llama", min=1, max=8)
    action = ACTIONS["scale"]
    async with client(fake) as kube:
        plan = await action.plan(kube, "deployment/ml/llama", {"replicas": 3})
        assert plan.changes == [
            "KEDA ScaledObject ml/llama-so (via HPA keda-hpa-llama-so) owns the replica count: "
            "raising minReplicaCount 1 → 3"
        ]
        assert plan.dry_run_ok
        outcome = await action.execute(kube, "deployment/ml/llama", {"replicas": 3})
    assert outcome.ok and outcome.details["mode"] == "keda"
    so = fake.get("scaledobjects", "ml", "llama-so")
    hpa = fake.get("horizontalpodautoscalers", "ml", "keda-hpa-llama-so")
    assert so is not None and so["spec"]["minReplicaCount"] == 3
    assert hpa is not None and hpa["spec"]["minReplicas"] == 3  # KEDA propagated it


async def test_scale_retries_one_conflict(fake: KubernetesStandIn) -> None:
    fake.conflict_next(f"{DEP}/llama/scale")
    async with client(fake) as kube:
        fake.clear_requests()
        outcome = await ACTIONS["scale"].execute(kube, "deployment/ml/llama", {"replicas": 5})
    assert outcome.ok
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.status for r in patches] == [409, 200]
    gets = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/scale")]
    assert len(gets) == 2  # re-read before re-applying
    assert fake.get("deployments", "ml", "llama")["spec"]["replicas"] == 5  # type: ignore[index]


async def test_scale_gives_up_after_two_conflicts(fake: KubernetesStandIn) -> None:
    fake.conflict_next(f"{DEP}/llama/scale", times=2)
    async with client(fake) as kube:
        with pytest.raises(KubernetesError) as err:
            await ACTIONS["scale"].execute(kube, "deployment/ml/llama", {"replicas": 5})
    assert err.value.status == 409
    assert "changed while the bot was updating it" in err.value.message


async def test_forbidden_surfaces_as_clear_error(fake: KubernetesStandIn) -> None:
    fake.allow("bot", [("get", "*"), ("list", "*")])
    async with client(fake, "bot") as kube:
        plan = await ACTIONS["scale"].plan(kube, "deployment/ml/llama", {"replicas": 3})
        assert not plan.dry_run_ok
        assert "may not patch deployments/scale in namespace ml" in plan.warnings[0]
        with pytest.raises(KubernetesError) as err:
            await ACTIONS["scale"].execute(kube, "deployment/ml/llama", {"replicas": 3})
    assert err.value.status == 403 and err.value.reason == "Forbidden"
    assert err.value.message.startswith(
        "the bot's service account may not patch deployments/scale in namespace ml"
    )
    assert 'User "system:serviceaccount:vllm-ops:chatops-bot"' in err.value.message


async def test_scale_bad_params(fake: KubernetesStandIn) -> None:
    async with client(fake) as kube:
        with pytest.raises(ActionError, match="missing parameter 'replicas'"):
            await ACTIONS["scale"].plan(kube, "deployment/ml/llama", {})
        with pytest.raises(ActionError, match="at least 0"):
            await ACTIONS["scale"].plan(kube, "deployment/ml/llama", {"replicas": -2})
        with pytest.raises(KubernetesError, match="Deployment ml/nope was not found"):
            await ACTIONS["scale"].plan(kube, "deployment/ml/nope", {"replicas": 1})


# --- rollback ------------------------------------------------------------------------


async def test_rollback_plan_and_execute(fake: KubernetesStandIn) -> None:
    action = ACTIONS["rollback"]
    async with client(fake) as kube:
        fake.clear_requests()
        plan = await action.plan(kube, "deployment/ml/llama", {})
        assert plan.summary == (
            "roll back Deployment ml/llama: revision 2 (vllm:0.6.3) → revision 1 (vllm:0.6.1)"
        )
        assert plan.dry_run_ok
        assert writes(fake) == [("PATCH", f"{DEP}/llama", "All")]
        assert (
            fake.get("deployments", "ml", "llama")["metadata"]["annotations"][  # type: ignore[index]
                REVISION_ANNOTATION
            ]
            == "2"
        )
        outcome = await action.execute(kube, "deployment/ml/llama", {})
    assert outcome.ok
    assert outcome.details == {
        "from_revision": 2,
        "to_revision": 1,
        "new_revision": 3,
        "image": "vllm:0.6.1",
    }
    dep = fake.get("deployments", "ml", "llama")
    assert dep is not None
    template = dep["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "vllm:0.6.1"
    assert "pod-template-hash" not in template["metadata"]["labels"]
    revisions = sorted(
        (rs["metadata"]["annotations"][REVISION_ANNOTATION], rs["spec"]["replicas"])
        for rs in fake.list("replicasets", "ml")
    )
    assert revisions == [("2", 0), ("3", 2)]  # the old ReplicaSet came back as revision 3


async def test_rollback_needs_a_previous_revision(fake: KubernetesStandIn) -> None:
    fake.add_deployment("ml", "fresh", "vllm:0.7")
    async with client(fake) as kube:
        with pytest.raises(ActionError, match="no previous revision"):
            await ACTIONS["rollback"].plan(kube, "deployment/ml/fresh", {})
        with pytest.raises(ActionError, match="works on deployment or rollout targets"):
            await ACTIONS["rollback"].plan(kube, "statefulset/ml/fresh", {})


async def test_rollback_to_a_named_revision(fake: KubernetesStandIn) -> None:
    fake.add_deployment("ml", "qwen", "v3", revisions=["v1", "v2"])
    async with client(fake) as kube:
        plan = await ACTIONS["rollback"].plan(kube, "deployment/ml/qwen", {"to_revision": 1})
        assert plan.details["to_image"] == "v1" and plan.details["from_image"] == "v3"
        with pytest.raises(ActionError, match="has no revision 9"):
            await ACTIONS["rollback"].plan(kube, "deployment/ml/qwen", {"to_revision": 9})


async def test_rollback_of_an_argo_rollout(fake: KubernetesStandIn) -> None:
    fake.add_rollout("ml", "mistral", "vllm:0.6.3", replicas=3, revisions=["vllm:0.6.1"])
    action = ACTIONS["rollback"]
    async with client(fake) as kube:
        fake.clear_requests()
        plan = await action.plan(kube, "rollout/ml/mistral", {})
        assert plan.summary == (
            "roll back Rollout ml/mistral: revision 2 (vllm:0.6.3) → revision 1 (vllm:0.6.1)"
        )
        assert plan.target == "rollout/ml/mistral"
        assert plan.dry_run_ok and plan.warnings == []
        assert plan.details["from_image"] == "vllm:0.6.3"
        assert plan.details["to_image"] == "vllm:0.6.1"
        assert "Argo Rollouts controller" in plan.changes[1]
        assert writes(fake) == [("PATCH", f"{ROLLOUTS}/mistral", "All")]
        reads = {r.path for r in fake.requests if r.method == "GET"}
        assert f"{ROLLOUTS}/mistral" in reads
        ro = fake.get("rollouts", "ml", "mistral")
        assert ro is not None and ro["metadata"]["annotations"][ROLLOUT_REVISION_ANNOTATION] == "2"
        assert ro["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm:0.6.3"
        progress = Progress()
        outcome = await action.execute(kube, "rollout/ml/mistral", {}, progress)
    assert outcome.ok, outcome.summary
    assert outcome.details == {
        "from_revision": 2,
        "to_revision": 1,
        "new_revision": 3,
        "image": "vllm:0.6.1",
    }
    assert progress.messages == ["rolled back Rollout ml/mistral to vllm:0.6.1"]
    ro = fake.get("rollouts", "ml", "mistral")
    assert ro is not None
    template = ro["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "vllm:0.6.1"
    assert ROLLOUT_HASH_LABEL not in template["metadata"]["labels"]
    assert template["metadata"]["labels"] == {"app": "mistral"}
    assert ro["spec"]["strategy"]["canary"]  # the rest of the spec is untouched
    assert ro["metadata"]["annotations"][ROLLOUT_REVISION_ANNOTATION] == "3"
    owned = [
        rs
        for rs in fake.list("replicasets", "ml")
        if rs["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
    ]
    revisions = sorted(
        (
            rs["metadata"]["annotations"][ROLLOUT_REVISION_ANNOTATION],
            rs["spec"]["template"]["spec"]["containers"][0]["image"],
            rs["spec"]["replicas"],
        )
        for rs in owned
    )
    # the revision-1 ReplicaSet came back as revision 3
    assert revisions == [("2", "vllm:0.6.3", 0), ("3", "vllm:0.6.1", 3)]
    assert ro["status"]["currentPodHash"] == next(
        rs["metadata"]["labels"][ROLLOUT_HASH_LABEL]
        for rs in owned
        if rs["metadata"]["annotations"][ROLLOUT_REVISION_ANNOTATION] == "3"
    )
    # the Deployment in the same namespace was left alone
    dep = fake.get("deployments", "ml", "llama")
    assert dep is not None and dep["metadata"]["annotations"][REVISION_ANNOTATION] == "2"


async def test_rollback_of_a_rollout_to_a_named_revision(fake: KubernetesStandIn) -> None:
    fake.add_rollout("ml", "qwen", "v3", revisions=["v1", "v2"])
    async with client(fake) as kube:
        plan = await ACTIONS["rollback"].plan(kube, "rollout/ml/qwen", {"to_revision": 1})
        assert (plan.details["from_image"], plan.details["to_image"]) == ("v3", "v1")
        outcome = await ACTIONS["rollback"].execute(kube, "rollout/ml/qwen", {"to_revision": 1})
    assert outcome.ok and outcome.details["new_revision"] == 4


async def test_rollout_rollback_needs_a_previous_revision(fake: KubernetesStandIn) -> None:
    fake.add_rollout("ml", "fresh", "vllm:0.7")
    async with client(fake) as kube:
        with pytest.raises(ActionError, match="Rollout ml/fresh has no previous revision"):
            await ACTIONS["rollback"].plan(kube, "rollout/ml/fresh", {})
        with pytest.raises(ActionError, match="Rollout ml/fresh has no previous revision"):
            await ACTIONS["rollback"].execute(kube, "rollout/ml/fresh", {})
        with pytest.raises(ActionError, match="expected rollout/NAMESPACE/NAME"):
            await ACTIONS["rollback"].plan(kube, "rollout/fresh", {})
        with pytest.raises(KubernetesError, match="Rollout ml/nope was not found"):
            await ACTIONS["rollback"].plan(kube, "rollout/ml/nope", {})
    assert not [r for r in fake.requests if r.method == "PATCH"]


async def test_rollout_targets_for_other_actions_are_refused_clearly(
    fake: KubernetesStandIn,
) -> None:
    fake.add_rollout("ml", "mistral", "vllm:0.6.3")
    t = parse_target("rollout/ml/mistral")
    assert (t.kind, t.namespace, t.name) == ("Rollout", "ml", "mistral")
    async with client(fake) as kube:
        for kind, params in (("scale", {"replicas": 2}), ("restart", {})):
            with pytest.raises(ActionError, match="not rollout"):
                await ACTIONS[kind].plan(kube, "rollout/ml/mistral", params)


async def test_rollout_rollback_forbidden_without_patch_rollouts(fake: KubernetesStandIn) -> None:
    fake.add_rollout("ml", "mistral", "vllm:0.6.3", revisions=["vllm:0.6.1"])
    fake.allow("bot", [("get", "*"), ("list", "*"), ("patch", "deployments")])
    async with client(fake, "bot") as kube:
        plan = await ACTIONS["rollback"].plan(kube, "rollout/ml/mistral", {})
        assert not plan.dry_run_ok
        assert "may not patch rollouts in namespace ml" in plan.warnings[0]
        with pytest.raises(KubernetesError) as err:
            await ACTIONS["rollback"].execute(kube, "rollout/ml/mistral", {})
    assert err.value.status == 403 and err.value.reason == "Forbidden"
    assert err.value.message.startswith(
        "the bot's service account may not patch rollouts in namespace ml"
    )
    assert 'cannot patch resource "rollouts" in API group "argoproj.io"' in err.value.message
    ro = fake.get("rollouts", "ml", "mistral")
    assert ro is not None
    assert ro["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm:0.6.3"


# --- drain / uncordon ----------------------------------------------------------------


def _seed_node(fake: KubernetesStandIn) -> None:
    fake.add_node("gpu-1")
    fake.add_node("gpu-2")
    fake.add_pod("ml", "llama-a", "gpu-1", {"app": "llama"}, owner=("ReplicaSet", "llama-x"))
    fake.add_pod("ml", "llama-b", "gpu-2", {"app": "llama"}, owner=("ReplicaSet", "llama-x"))
    fake.add_pod("ml", "embed-0", "gpu-1", {"app": "embed"}, owner=("StatefulSet", "embed"))
    fake.add_pod("kube-system", "dcgm-exporter-1", "gpu-1", {}, owner=("DaemonSet", "dcgm"))
    fake.add_pod("kube-system", "kube-proxy-gpu-1", "gpu-1", {}, mirror=True)


async def test_drain_plan_lists_pods_and_pdb_warnings(fake: KubernetesStandIn) -> None:
    _seed_node(fake)
    fake.add_pdb("ml", "llama", {"app": "llama"}, min_available=2)
    async with client(fake) as kube:
        fake.clear_requests()
        plan = await ACTIONS["drain"].plan(kube, "node/gpu-1", {"timeout_s": 60})
    assert plan.changes == [
        "cordon node gpu-1 (spec.unschedulable → true)",
        "evict pod ml/embed-0",
        "evict pod ml/llama-a",
    ]
    assert plan.details["skip"] == {
        "kube-system/dcgm-exporter-1": "managed by DaemonSet dcgm",
        "kube-system/kube-proxy-gpu-1": "mirror (static) pod",
    }
    assert plan.dry_run_ok
    assert len(plan.warnings) == 1
    assert "ml/llama-a would violate its PodDisruptionBudget" in plan.warnings[0]
    assert "The disruption budget llama needs 2 healthy pods and has 2" in plan.warnings[0]
    assert all(q == "All" for _, _, q in writes(fake))
    node = fake.get("nodes", None, "gpu-1")
    assert node is not None and not node["spec"].get("unschedulable")
    assert fake.get("pods", "ml", "llama-a") is not None


async def test_drain_waits_for_pdb_then_succeeds(fake: KubernetesStandIn) -> None:
    _seed_node(fake)
    fake.add_pdb("ml", "llama", {"app": "llama"}, min_available=2)
    fake.add_pod("ml", "llama-c", "gpu-2", {"app": "llama"}, ready=False)
    progress = Progress()

    async def on_progress(message: str) -> None:
        await progress(message)
        if message.startswith("waiting on"):
            fake.set_pod_ready("ml", "llama-c")  # another replica becomes ready

    async with client(fake) as kube:
        outcome = await ACTIONS["drain"].execute(
            kube, "node/gpu-1", {"timeout_s": 10, "retry_interval_s": 0.05}, on_progress
        )
    assert outcome.ok, outcome.summary
    assert outcome.summary == "drained node gpu-1: cordoned and evicted 2/2 pods"
    assert progress.messages[0] == "cordoned node gpu-1"
    assert "evicted 1/2: ml/embed-0" in progress.messages
    assert progress.messages[-1] == "evicted 2/2: ml/llama-a"
    assert any(
        m == "waiting on 1 pod(s) blocked by disruption budgets: ml/llama-a"
        for m in progress.messages
    )
    evictions = [r for r in fake.requests if r.path.endswith("/llama-a/eviction")]
    assert [r.status for r in evictions] == [429, 201]
    node = fake.get("nodes", None, "gpu-1")
    assert node is not None and node["spec"]["unschedulable"] is True
    assert fake.get("pods", "ml", "llama-a") is None
    assert fake.get("pods", "kube-system", "dcgm-exporter-1") is not None


async def test_drain_times_out_reporting_the_stuck_pod(fake: KubernetesStandIn) -> None:
    _seed_node(fake)
    fake.add_pdb("ml", "llama", {"app": "llama"}, max_unavailable=0)
    async with client(fake) as kube:
        outcome = await ACTIONS["drain"].execute(
            kube, "node/gpu-1", {"timeout_s": 0.3, "retry_interval_s": 0.05}
        )
    assert not outcome.ok
    assert outcome.details["evicted"] == ["ml/embed-0"]
    assert outcome.details["not_evicted"] == ["ml/llama-a"]
    assert "timed out after 0.3s: evicted 1/2; not evicted: ml/llama-a" in outcome.summary
    assert "PodDisruptionBudget" in outcome.details["blocked"]["ml/llama-a"]
    assert fake.get("pods", "ml", "llama-a") is not None
    retries = [r for r in fake.requests if r.path.endswith("/llama-a/eviction")]
    assert len(retries) >= 2 and all(r.status == 429 for r in retries)


async def test_uncordon(fake: KubernetesStandIn) -> None:
    fake.add_node("gpu-1", unschedulable=True)
    async with client(fake) as kube:
        plan = await ACTIONS["uncordon"].plan(kube, "node/gpu-1", {})
        assert plan.changes == ["node gpu-1: spec.unschedulable → false"]
        assert plan.warnings == [] and plan.dry_run_ok
        outcome = await ACTIONS["uncordon"].execute(kube, "node/gpu-1", {})
        assert outcome.ok
        again = await ACTIONS["uncordon"].plan(kube, "node/gpu-1", {})
    assert again.warnings == ["node gpu-1 is not cordoned; nothing to undo"]
    node = fake.get("nodes", None, "gpu-1")
    assert node is not None and node["spec"]["unschedulable"] is False


async def test_drain_forbidden_eviction(fake: KubernetesStandIn) -> None:
    _seed_node(fake)
    fake.allow("bot", [("get", "*"), ("list", "*"), ("patch", "nodes")])
    async with client(fake, "bot") as kube:
        with pytest.raises(KubernetesError) as err:
            await ACTIONS["drain"].execute(kube, "node/gpu-1", {"timeout_s": 1})
    assert err.value.status == 403
    assert "may not create pods/eviction in namespace ml" in err.value.message


# --- restart -------------------------------------------------------------------------


async def test_restart_sets_the_annotation(fake: KubernetesStandIn) -> None:
    action = ACTIONS["restart"]
    async with client(fake) as kube:
        fake.clear_requests()
        plan = await action.plan(kube, "deployment/ml/llama", {})
        assert plan.dry_run_ok and plan.summary == "rolling restart of Deployment ml/llama (2 pods)"
        assert writes(fake) == [("PATCH", f"{DEP}/llama", "All")]
        outcome = await action.execute(kube, "deployment/ml/llama", {})
    assert outcome.ok
    dep = fake.get("deployments", "ml", "llama")
    assert dep is not None
    stamp = dep["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert stamp == outcome.details["restartedAt"]
    assert len(stamp) == 20 and stamp.endswith("Z") and stamp[10] == "T"
    assert dep["metadata"]["annotations"][REVISION_ANNOTATION] == "3"  # a new ReplicaSet
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm:0.6.3"


async def test_restart_forbidden(fake: KubernetesStandIn) -> None:
    fake.allow("bot", [("get", "*")])
    async with client(fake, "bot") as kube:
        with pytest.raises(KubernetesError) as err:
            await ACTIONS["restart"].execute(kube, "deployment/ml/llama", {})
    assert err.value.status == 403
    assert "may not patch deployments in namespace ml" in err.value.message


async def test_restart_and_rollback_retry_a_conflict(fake: KubernetesStandIn) -> None:
    fake.conflict_next(f"{DEP}/llama")
    async with client(fake) as kube:
        fake.clear_requests()
        restarted = await ACTIONS["restart"].execute(kube, "deployment/ml/llama", {})
        fake.conflict_next(f"{DEP}/llama")
        rolled = await ACTIONS["rollback"].execute(kube, "deployment/ml/llama", {})
    assert restarted.ok and rolled.ok
    assert [r.status for r in fake.requests if r.method == "PATCH"] == [409, 200, 409, 200]
    assert rolled.details["to_revision"] == 2 and rolled.details["image"] == "vllm:0.6.3"


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("drain", "node/gpu-node-missing"),
        ("uncordon", "node/gpu-node-missing"),
        ("restart", "deployment/ml/missing"),
    ],
)
async def test_actions_read_before_they_write(
    fake: KubernetesStandIn, kind: str, target: str
) -> None:
    with pytest.raises(KubernetesError) as raised:
        await get_action(kind).execute(client(fake), target, {"timeout_s": 1})
    assert raised.value.status == 404
    assert writes(fake) == [], "nothing is written to a target that does not exist"


@pytest.mark.parametrize("target", ["node/node;rm -rf", "node/UPPER", "deployment/ml/a b"])
def test_targets_with_invalid_names_never_reach_a_url(target: str) -> None:
    with pytest.raises(ActionError, match="DNS"):
        parse_target(target)
