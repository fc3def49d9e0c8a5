"""The Kubernetes API stand-in behaves like the real one for what the actions rely on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.simulator.kube_objects import (
    REVISION_ANNOTATION,
    ROLLOUT_HASH_LABEL,
    ROLLOUT_REVISION_ANNOTATION,
)
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn

DEP = "/apis/apps/v1/namespaces/ml/deployments"
ROLLOUTS = "/apis/argoproj.io/v1alpha1/namespaces/ml/rollouts"


@pytest.fixture
def http(fake: KubernetesStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fake.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as client:
        yield client


def _merge(client: httpx.Client, path: str, body: Any, **params: str) -> httpx.Response:
    return client.patch(
        path,
        json=body,
        params=params,
        headers={"Content-Type": "application/merge-patch+json"},
    )


def test_objects_carry_server_fields(http: httpx.Client) -> None:
    dep = http.get(f"{DEP}/llama").json()
    assert dep["kind"] == "Deployment" and dep["apiVersion"] == "apps/v1"
    meta = dep["metadata"]
    assert isinstance(meta["resourceVersion"], str) and int(meta["resourceVersion"]) > 0
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 2  # created, then the template changed once
    assert meta["annotations"][REVISION_ANNOTATION] == "2"


def test_replicasets_have_revisions_owners_and_hash(http: httpx.Client) -> None:
    body = http.get("/apis/apps/v1/namespaces/ml/replicasets").json()
    assert body["kind"] == "ReplicaSetList"
    rss = sorted(
        body["items"], key=lambda r: int(r["metadata"]["annotations"][REVISION_ANNOTATION])
    )
    assert [r["spec"]["template"]["spec"]["containers"][0]["image"] for r in rss] == [
        "vllm:0.6.1",
        "vllm:0.6.3",
    ]
    assert [r["spec"]["replicas"] for r in rss] == [0, 2]
    dep_uid = http.get(f"{DEP}/llama").json()["metadata"]["uid"]
    for rs in rss:
        owner = rs["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("Deployment", "llama", dep_uid)
        tmpl_hash = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"llama-{tmpl_hash}"
        assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == tmpl_hash


def test_template_change_and_revert_renumber_revisions(
    fake: KubernetesStandIn, http: httpx.Client
) -> None:
    old = http.get(f"{DEP}/llama").json()["spec"]["template"]
    new = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "vllm:0.7"}]}}}}
    r = _merge(http, f"{DEP}/llama", new)
    assert r.status_code == 200
    assert r.json()["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert len(fake.list("replicasets", "ml")) == 3
    r = _merge(http, f"{DEP}/llama", {"spec": {"template": old}})
    assert r.json()["metadata"]["annotations"][REVISION_ANNOTATION] == "4"
    revs = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][
            REVISION_ANNOTATION
        ]
        for rs in fake.list("replicasets", "ml")
    }
    assert revs == {"vllm:0.6.1": "1", "vllm:0.7": "3", "vllm:0.6.3": "4"}


def test_rollouts_own_revisioned_replicasets(fake: KubernetesStandIn, http: httpx.Client) -> None:
    fake.add_rollout("ml", "mistral", "vllm:0.6.3", replicas=2, revisions=["vllm:0.6.1"])
    ro = http.get(f"{ROLLOUTS}/mistral").json()
    assert (ro["kind"], ro["apiVersion"]) == ("Rollout", "argoproj.io/v1alpha1")
    assert ro["metadata"]["annotations"][ROLLOUT_REVISION_ANNOTATION] == "2"
    assert REVISION_ANNOTATION not in ro["metadata"]["annotations"]
    listed = http.get(ROLLOUTS).json()
    assert listed["kind"] == "RolloutList" and len(listed["items"]) == 1
    rss = sorted(
        (
            rs
            for rs in fake.list("replicasets", "ml")
            if rs["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
        ),
        key=lambda r: int(r["metadata"]["annotations"][ROLLOUT_REVISION_ANNOTATION]),
    )
    assert [r["spec"]["template"]["spec"]["containers"][0]["image"] for r in rss] == [
        "vllm:0.6.1",
        "vllm:0.6.3",
    ]
    assert [r["spec"]["replicas"] for r in rss] == [0, 2]
    for rs in rss:
        owner = rs["metadata"]["ownerReferences"][0]
        assert (owner["apiVersion"], owner["name"], owner["uid"]) == (
            "argoproj.io/v1alpha1",
            "mistral",
            ro["metadata"]["uid"],
        )
        tmpl_hash = rs["metadata"]["labels"][ROLLOUT_HASH_LABEL]
        assert "pod-template-hash" not in rs["metadata"]["labels"]
        assert rs["spec"]["selector"]["matchLabels"][ROLLOUT_HASH_LABEL] == tmpl_hash
        assert rs["spec"]["template"]["metadata"]["labels"][ROLLOUT_HASH_LABEL] == tmpl_hash
    assert ro["status"]["currentPodHash"] == rss[-1]["metadata"]["labels"][ROLLOUT_HASH_LABEL]
    # a new template → a new ReplicaSet at max + 1
    new = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "vllm:0.7"}]}}}}
    r = _merge(http, f"{ROLLOUTS}/mistral", new)
    assert r.status_code == 200
    assert r.json()["metadata"]["annotations"][ROLLOUT_REVISION_ANNOTATION] == "3"
    assert len(fake.list("replicasets", "ml")) == 5  # 2 for the deployment, 3 for the rollout
    # scale subresource
    scale = http.get(f"{ROLLOUTS}/mistral/scale").json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert _merge(http, f"{ROLLOUTS}/mistral/scale", {"spec": {"replicas": 4}}).status_code == 200
    assert fake.get("rollouts", "ml", "mistral")["spec"]["replicas"] == 4  # type: ignore[index]


def test_rollouts_rbac(fake: KubernetesStandIn) -> None:
    fake.add_rollout("ml", "mistral", "vllm:0.6.3")
    fake.allow("viewer", [("get", "rollouts"), ("patch", "deployments")])
    with httpx.Client(base_url=fake.url, headers={"Authorization": "Bearer viewer"}) as viewer:
        assert viewer.get(f"{ROLLOUTS}/mistral").status_code == 200
        r = _merge(viewer, f"{ROLLOUTS}/mistral", {"spec": {"replicas": 3}})
    assert r.status_code == 403
    assert r.json()["message"] == (
        'rollouts.argoproj.io "mistral" is forbidden: User '
        '"system:serviceaccount:vllm-ops:chatops-bot" cannot patch resource "rollouts" '
        'in API group "argoproj.io" in the namespace "ml"'
    )


def test_put_with_stale_resource_version_is_a_409(http: httpx.Client) -> None:
    dep = http.get(f"{DEP}/llama").json()
    stale = dict(dep, metadata=dict(dep["metadata"]))
    dep["spec"]["replicas"] = 3
    ok = http.put(f"{DEP}/llama", json=dep)
    assert ok.status_code == 200
    assert int(ok.json()["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    conflict = http.put(f"{DEP}/llama", json=stale)
    assert conflict.status_code == 409
    body = conflict.json()
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "Conflict" and body["code"] == 409
    assert body["message"].startswith('Operation cannot be fulfilled on deployments.apps "llama"')
    assert http.get(f"{DEP}/llama").json()["spec"]["replicas"] == 3


def test_patch_with_stale_resource_version_is_a_409(http: httpx.Client) -> None:
    r = _merge(
        http, f"{DEP}/llama", {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}}
    )
    assert r.status_code == 409
    assert http.get(f"{DEP}/llama").json()["spec"]["replicas"] == 2


def test_conflict_next_injects_one_409(fake: KubernetesStandIn, http: httpx.Client) -> None:
    fake.conflict_next(f"{DEP}/llama/scale")
    first = _merge(http, f"{DEP}/llama/scale", {"spec": {"replicas": 4}})
    second = _merge(http, f"{DEP}/llama/scale", {"spec": {"replicas": 4}})
    assert (first.status_code, second.status_code) == (409, 200)


def test_forbidden_is_a_kubernetes_status(fake: KubernetesStandIn) -> None:
    fake.allow("viewer", [("get", "deployments"), ("list", "*")])
    with httpx.Client(base_url=fake.url, headers={"Authorization": "Bearer viewer"}) as client:
        assert client.get(f"{DEP}/llama").status_code == 200
        assert client.get("/api/v1/nodes").status_code == 200
        r = _merge(client, f"{DEP}/llama", {"spec": {"replicas": 1}})
        evict = client.post(
            "/api/v1/namespaces/ml/pods/x/eviction", json={"metadata": {"name": "x"}}
        )
    assert r.status_code == 403
    body = r.json()
    assert {k: body[k] for k in ("kind", "apiVersion", "status", "reason", "code")} == {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
    }
    assert body["message"] == (
        'deployments.apps "llama" is forbidden: User "system:serviceaccount:vllm-ops:chatops-bot" '
        'cannot patch resource "deployments" in API group "apps" in the namespace "ml"'
    )
    assert evict.status_code == 403
    assert 'cannot create resource "pods/eviction" in API group ""' in evict.json()["message"]


def test_unknown_token_is_401(fake: KubernetesStandIn) -> None:
    r = httpx.get(f"{fake.url}{DEP}/llama", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"


def test_not_found_status(http: httpx.Client) -> None:
    r = http.get(f"{DEP}/mistral")
    assert r.status_code == 404
    body = r.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
    assert body["message"] == 'deployments.apps "mistral" not found'
    assert http.get("/apis/apps/v1/namespaces/ml/widgets").status_code == 404


def test_dry_run_validates_without_storing(fake: KubernetesStandIn, http: httpx.Client) -> None:
    before = fake.get("deployments", "ml", "llama")
    assert before is not None
    r = _merge(http, f"{DEP}/llama/scale", {"spec": {"replicas": 9}}, dryRun="All")
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 9
    after = fake.get("deployments", "ml", "llama")
    assert after is not None
    assert after["spec"]["replicas"] == 2
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    invalid = _merge(http, f"{DEP}/llama/scale", {"spec": {"replicas": -1}}, dryRun="All")
    assert invalid.status_code == 422 and invalid.json()["reason"] == "Invalid"
    created = http.post(
        "/api/v1/nodes", json={"metadata": {"name": "gpu-9"}, "spec": {}}, params={"dryRun": "All"}
    )
    assert created.status_code == 201 and created.json()["metadata"]["name"] == "gpu-9"
    assert fake.get("nodes", None, "gpu-9") is None
    assert http.get("/api/v1/nodes/gpu-9").status_code == 404


def test_hpa_validation(fake: KubernetesStandIn, http: httpx.Client) -> None:
    fake.add_hpa("ml", "llama", "llama", 2, 4)
    path = "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/llama"
    bad = _merge(http, path, {"spec": {"minReplicas": 6}})
    assert bad.status_code == 422
    good = _merge(http, path, {"spec": {"minReplicas": 6, "maxReplicas": 6}})
    assert good.status_code == 200 and good.json()["spec"]["minReplicas"] == 6


def test_selectors(fake: KubernetesStandIn, http: httpx.Client) -> None:
    fake.add_pod("ml", "a", "n1", {"app": "llama", "tier": "serve"})
    fake.add_pod("ml", "b", "n2", {"app": "llama"})
    fake.add_pod("ops", "c", "n1", {"app": "agent"})

    def names(path: str, **params: str) -> list[str]:
        return [p["metadata"]["name"] for p in http.get(path, params=params).json()["items"]]

    assert names("/api/v1/pods", fieldSelector="spec.nodeName=n1") == ["a", "c"]
    assert names("/api/v1/namespaces/ml/pods", fieldSelector="spec.nodeName=n1") == ["a"]
    assert names("/api/v1/pods", labelSelector="app=llama,tier!=serve") == ["b"]
    assert names("/api/v1/pods", labelSelector="app in (agent,other)") == ["c"]
    assert names("/api/v1/pods", labelSelector="tier") == ["a"]


def test_merge_and_json_patch(http: httpx.Client, fake: KubernetesStandIn) -> None:
    fake.add_node("n1")
    _merge(http, "/api/v1/nodes/n1", {"spec": {"unschedulable": True}})
    assert http.get("/api/v1/nodes/n1").json()["spec"]["unschedulable"] is True
    _merge(http, "/api/v1/nodes/n1", {"spec": {"unschedulable": None}})
    assert "unschedulable" not in http.get("/api/v1/nodes/n1").json()["spec"]
    r = http.patch(
        f"{DEP}/llama",
        json=[{"op": "replace", "path": "/spec/replicas", "value": 7}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 7


def test_eviction_respects_pdb(fake: KubernetesStandIn, http: httpx.Client) -> None:
    fake.add_pod("ml", "llama-1", "n1", {"app": "llama"})
    fake.add_pod("ml", "llama-2", "n2", {"app": "llama"})
    fake.add_pod("ml", "llama-3", "n3", {"app": "llama"}, ready=False)
    fake.add_pdb("ml", "llama", {"app": "llama"}, min_available=2)
    path = "/api/v1/namespaces/ml/pods/llama-1/eviction"
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "llama-1"}}
    r = http.post(path, json=body)
    assert r.status_code == 429
    status = r.json()
    assert status["reason"] == "TooManyRequests" and status["code"] == 429
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert status["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert fake.get("pods", "ml", "llama-1") is not None
    dry = http.post(path, json=body, params={"dryRun": "All"})
    assert dry.status_code == 429
    fake.set_pod_ready("ml", "llama-3")
    assert http.post(path, json=body, params={"dryRun": "All"}).status_code == 201
    assert fake.get("pods", "ml", "llama-1") is not None
    ok = http.post(path, json=body)
    assert ok.status_code == 201 and ok.json()["status"] == "Success"
    assert fake.get("pods", "ml", "llama-1") is None
    assert http.post(path, json=body).status_code == 404


def test_eviction_max_unavailable(fake: KubernetesStandIn, http: httpx.Client) -> None:
    for i in range(3):
        fake.add_pod("ml", f"p{i}", "n1", {"app": "x"})
    fake.add_pdb("ml", "x", {"app": "x"}, max_unavailable=1)
    url = "/api/v1/namespaces/ml/pods/{}/eviction"
    assert http.post(url.format("p0"), json={"metadata": {"name": "p0"}}).status_code == 201
    # p0 is gone: 2 of the expected pods left, both healthy; maxUnavailable=1 of 2 expected
    fake.add_pod("ml", "p0", "n1", {"app": "x"}, ready=False)
    assert http.post(url.format("p1"), json={"metadata": {"name": "p1"}}).status_code == 429


def test_requests_are_recorded(fake: KubernetesStandIn, http: httpx.Client) -> None:
    fake.clear_requests()
    http.get(f"{DEP}/llama", params={"x": "1"})
    (req,) = fake.requests
    assert (req.method, req.path, req.query, req.status) == ("GET", f"{DEP}/llama", {"x": "1"}, 200)
