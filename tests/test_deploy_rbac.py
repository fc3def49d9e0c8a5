"""The ClusterRoles in deploy/kubernetes grant exactly the Kubernetes API calls the bot makes.

Every action's plan() and execute() runs against the Kubernetes API stand-in down each path the
code can take (plain scale, scale through an HPA or a KEDA ScaledObject, Deployment and
StatefulSet, rollback of a Deployment and of an Argo Rollout, drain across namespaces,
uncordon), plus the remediation core's own reads (which cluster holds a target, whether a
drain held). Each recorded request becomes what RBAC authorizes — (API group,
resource[/subresource], verb) — and that set must equal the rules of the manifests: a call
not granted fails with 403 in a real cluster, and a grant no call uses is privilege the
bot does not need. Then everything runs again as a service account holding only those rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from deploy_helpers import BASE, Doc, find, load
from pydantic import HttpUrl, SecretStr

from bot.config import ClusterConfig, Settings
from bot.readiness import gather as readiness
from bot.readiness.evidence import Missing
from bot.readiness.items import ZONE_LABEL
from bot.remediation.actions import ACTIONS, ActionError
from bot.remediation.actions.base import TARGET_KINDS
from bot.remediation.placement import drain_held, may_hold
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn, RecordedRequest
from bot.simulator.twin_canary import start_canary
from bot.sources.kubernetes import KubeClient, KubernetesError

RBAC = BASE / "rbac.yaml"
BOT_TOKEN = "bot-service-account-token"

# Every path through the actions: (kind, target, params).
SCENARIOS: list[tuple[str, str, dict[str, Any]]] = [
    ("scale", "deployment/ml/llama", {"replicas": 3}),
    ("scale", "statefulset/ml/qwen", {"replicas": 2}),
    ("scale", "deployment/ml/hpa-owned", {"replicas": 5}),
    ("scale", "deployment/ml/keda-owned", {"replicas": 4}),
    ("rollback", "deployment/ml/llama", {}),
    ("rollback", "rollout/ml/mistral", {}),
    ("promote", "deployment/ml/gemma", {"traffic_percent": 50}),
    ("promote", "deployment/ml/gemma", {"traffic_percent": 100}),
    ("restart", "deployment/ml/llama", {}),
    ("restart", "statefulset/ml/qwen", {}),
    ("restart", "pod/ml/phi-a1b2c", {"wait_s": 0}),
    ("drain", "node/gpu-1", {"timeout_s": 10, "retry_interval_s": 0.05}),
    ("uncordon", "node/gpu-1", {}),
]

# /api/v1/... (core group) or /apis/GROUP/VERSION/..., then namespace, resource, name, sub.
_URL = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True, order=True)
class Grant:
    group: str
    resource: str  # "pods", "deployments/scale", "pods/eviction"
    verb: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")


def authorized_as(request: RecordedRequest) -> tuple[Grant, bool]:
    """What RBAC checks for this request, and whether it is cluster-wide (no namespace)."""
    m = _URL.match(request.path)
    assert m is not None, f"not a Kubernetes API path: {request.path}"
    name, sub = m.group("name"), m.group("sub")
    if request.method == "GET":
        verb = "get" if name else ("watch" if request.query.get("watch") else "list")
    elif request.method == "DELETE" and not name:
        verb = "deletecollection"
    else:
        verb = _VERBS[request.method]
    resource = f"{m.group('resource')}/{sub}" if sub else m.group("resource")
    return Grant(m.group("group") or "", resource, verb), m.group("ns") is None


def expand(rules: list[Doc]) -> set[Grant]:
    grants: set[Grant] = set()
    for rule in rules:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    grants.add(Grant(group, resource, verb))
    return grants


@dataclass(frozen=True)
class Granted:
    everything: set[Grant]
    cluster_wide: set[Grant]  # through a ClusterRoleBinding


def granted() -> Granted:
    """What the manifests let the Deployment's service account do."""
    docs = load(RBAC)
    pod = find(load(BASE / "deployment.yaml"), "Deployment")["spec"]["template"]["spec"]
    account = (pod["serviceAccountName"], "vllm-chatops")  # (name, namespace)
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    assert not [d for d in docs if d["kind"] == "Role"], "namespaced Roles: extend this test"
    everything: set[Grant] = set()
    cluster_wide: set[Grant] = set()
    for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        subjects = {(s["name"], s.get("namespace")) for s in binding["subjects"]}
        if account not in subjects:
            continue
        assert binding["roleRef"]["kind"] == "ClusterRole"
        rules = expand(roles[binding["roleRef"]["name"]]["rules"])
        everything |= rules
        if binding["kind"] == "ClusterRoleBinding":
            cluster_wide |= rules
    unbound = set(roles) - {
        d["roleRef"]["name"] for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")
    }
    assert not unbound, f"ClusterRoles bound to nobody: {unbound}"
    return Granted(everything, cluster_wide)


def seed(fake: KubernetesStandIn) -> None:
    fake.add_deployment("ml", "llama", "vllm:0.6.3", replicas=2, revisions=["vllm:0.6.1"])
    fake.add_statefulset("ml", "qwen", "vllm:0.6.3", replicas=1)
    fake.add_deployment("ml", "hpa-owned", "vllm:0.6.3", replicas=2)
    fake.add_hpa("ml", "hpa-owned", "hpa-owned", min=2, max=4)
    fake.add_deployment("ml", "keda-owned", "vllm:0.6.3", replicas=1)
    fake.add_scaled_object("ml", "keda-owned", "keda-owned", min=1, max=8)
    fake.add_rollout("ml", "mistral", "vllm:0.6.3", replicas=2, revisions=["vllm:0.6.1"])
    fake.add_deployment("ml", "gemma", "vllm:0.6.3", replicas=4)  # a canary under way
    assert start_canary(fake, "ml", "gemma", "vllm:0.7.0", replicas=1) is not None
    fake.add_node("gpu-1")
    fake.add_node("gpu-2")
    # the node's pods in two namespaces, and the kinds a drain leaves alone
    fake.add_pod("ml", "llama-a", "gpu-1", {"app": "llama"}, owner=("ReplicaSet", "llama-x"))
    fake.add_pod("ml", "llama-b", "gpu-2", {"app": "llama"}, owner=("ReplicaSet", "llama-x"))
    fake.add_pod("embed", "embed-0", "gpu-1", {"app": "embed"}, owner=("StatefulSet", "embed"))
    fake.add_pod("kube-system", "dcgm-1", "gpu-1", {}, owner=("DaemonSet", "dcgm"))
    fake.add_pod("kube-system", "kube-proxy-gpu-1", "gpu-1", {}, mirror=True)
    fake.add_pdb("ml", "llama", {"app": "llama"}, min_available=1)
    # a pod of a Deployment's ReplicaSet, restarted on its own
    fake.add_deployment("ml", "phi", "vllm:0.6.3", replicas=1)
    (rs,) = [r for r in fake.list("replicasets", "ml") if r["metadata"]["name"].startswith("phi-")]
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "controller": True,
        **{k: rs["metadata"][k] for k in ("name", "uid")},
    }
    labels = rs["spec"]["selector"]["matchLabels"]
    fake.put_object(
        "pods",
        {
            "metadata": {
                "name": "phi-a1b2c",
                "namespace": "ml",
                "labels": labels,
                "ownerReferences": [owner],
            },
            "spec": {"nodeName": "gpu-2", "containers": [{"name": "vllm", "image": "vllm:0.6.3"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        },
    )


async def run_everything(fake: KubernetesStandIn, token: str) -> list[str]:
    """Plan and execute every scenario, then the core's reads; the outcomes' failures."""
    failures: list[str] = []
    async with KubeClient.for_server(fake.url, token, namespace="ml") as kube:
        for kind, target, params in SCENARIOS:
            plan = await ACTIONS[kind].plan(kube, target, params)
            if not plan.dry_run_ok:
                failures.append(f"plan {kind} {target}: {plan.warnings}")
            outcome = await ACTIONS[kind].execute(kube, target, params)
            if not outcome.ok:
                failures.append(f"execute {kind} {target}: {outcome.summary}")
    cluster = ClusterConfig(
        name="local", kube_api_url=HttpUrl(fake.url), kube_token=SecretStr(token)
    )
    settings = Settings(clusters=[cluster])
    # Their answers do not matter here (a refusal shows as a 403 in the recorded requests).
    for _, target, _ in SCENARIOS:
        await may_hold(settings, "local", target)
    await drain_held(settings, "local", "node/gpu-1")
    async with KubeClient.for_server(fake.url, token) as kube:  # the readiness scorecard
        for read in (
            readiness.cluster(kube, None, "vllm", ZONE_LABEL),
            readiness.canaries(kube, None),
        ):
            result = await read
            if isinstance(result, Missing):
                failures.append(f"readiness read: {result.reason}")
    return failures


def derived(requests: list[RecordedRequest]) -> tuple[set[Grant], set[Grant]]:
    calls = [authorized_as(r) for r in requests]
    return {g for g, _ in calls}, {g for g, wide in calls if wide}


async def test_every_action_and_target_type_has_a_scenario() -> None:
    """A new action, or a new target type for one, must be added to SCENARIOS."""
    covered = {(kind, target.split("/")[0]) for kind, target, _ in SCENARIOS}
    with KubernetesStandIn() as fake:
        async with KubeClient.for_server(fake.url, ADMIN_TOKEN) as kube:
            for kind, action in ACTIONS.items():
                for type_ in TARGET_KINDS:
                    target = "node/absent" if type_ == "node" else f"{type_}/ml/absent"
                    try:
                        await action.plan(kube, target, {"replicas": 1})
                    except ActionError as exc:
                        assert "works on" in str(exc), exc
                        continue
                    except KubernetesError as exc:
                        assert exc.status == 404
                    assert (kind, type_) in covered, f"{kind} accepts {type_}: add a scenario"
    assert {kind for kind, _ in covered} == set(ACTIONS)


async def test_the_cluster_roles_grant_exactly_the_calls_the_actions_make() -> None:
    with KubernetesStandIn() as fake:
        seed(fake)
        assert await run_everything(fake, ADMIN_TOKEN) == []
        requests = fake.requests
    assert all(r.status < 400 or r.status in (404, 409, 429) for r in requests)
    calls, cluster_wide = derived(requests)
    rbac = granted()
    not_granted = sorted(map(str, calls - rbac.everything))
    unused = sorted(map(str, rbac.everything - calls))
    assert not not_granted and not unused, (
        f"calls the ClusterRoles do not grant (403 in a cluster): {not_granted}; "
        f"grants no call uses (remove them from {RBAC.name}): {unused}"
    )
    wide = sorted(map(str, cluster_wide - rbac.cluster_wide))
    assert not wide, f"cluster-wide calls granted only per namespace: {wide}"


async def test_the_actions_succeed_as_a_service_account_holding_only_those_rules() -> None:
    with KubernetesStandIn() as fake:
        seed(fake)
        # the fake's RBAC knows (verb, resource); the API group is checked above
        fake.allow(BOT_TOKEN, {(g.verb, g.resource) for g in granted().everything})
        assert await run_everything(fake, BOT_TOKEN) == []
        forbidden = [f"{r.method} {r.path}" for r in fake.requests if r.status == 403]
    assert not forbidden, forbidden


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/nodes/gpu-1", {}, ("", "nodes", "get", True)),
        ("GET", "/api/v1/pods", {"fieldSelector": "spec.nodeName=x"}, ("", "pods", "list", True)),
        ("GET", "/api/v1/namespaces/ml/pods", {"watch": "true"}, ("", "pods", "watch", False)),
        (
            "POST",
            "/api/v1/namespaces/ml/pods/a/eviction",
            {},
            ("", "pods/eviction", "create", False),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ml/deployments/x/scale",
            {"dryRun": "All"},
            ("apps", "deployments/scale", "patch", False),
        ),
        ("DELETE", "/api/v1/namespaces/ml/pods", {}, ("", "pods", "deletecollection", False)),
        ("GET", "/api/v1/namespaces/ml", {}, ("", "namespaces", "get", True)),
    ],
)
def test_requests_map_to_what_rbac_authorizes(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str, str, bool]
) -> None:
    grant, wide = authorized_as(RecordedRequest(method, path, query, "", None))
    assert (grant.group, grant.resource, grant.verb, wide) == expected
