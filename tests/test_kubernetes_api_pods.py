"""The stand-in's pod-managing controllers (``manage_pods=True``), over its socket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.simulator.kube_objects import HASH_LABEL, REVISION_ANNOTATION, pod_ready
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn

NS = "ml"
DEP = f"/apis/apps/v1/namespaces/{NS}/deployments"
Obj = dict[str, Any]


@pytest.fixture
def kube() -> Iterator[KubernetesStandIn]:
    with KubernetesStandIn(manage_pods=True) as k:
        k.add_deployment(NS, "llama", "vllm:0.6.3", replicas=4, revisions=["vllm:0.6.1"])
        yield k


@pytest.fixture
def http(kube: KubernetesStandIn) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=kube.url, headers=headers) as client:
        yield client


def pods(kube: KubernetesStandIn) -> list[Obj]:
    return kube.list("pods", NS)


def image(obj: Obj) -> str:
    return str(obj["spec"]["containers"][0]["image"])


def start_all(kube: KubernetesStandIn) -> None:
    """What a kubelet does: bind each pending pod and report it ready."""

    def run(pod: Obj) -> None:
        pod["spec"].setdefault("nodeName", "n1")
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}

    for pod in pods(kube):
        if not pod_ready(pod):
            kube.update("pods", NS, pod["metadata"]["name"], run)


def merge(http: httpx.Client, path: str, body: Obj) -> httpx.Response:
    headers = {"Content-Type": "application/merge-patch+json"}
    return http.patch(path, json=body, headers=headers)


def test_replicasets_create_unscheduled_pods_and_remove_those_first(
    kube: KubernetesStandIn, http: httpx.Client
) -> None:
    created = pods(kube)
    assert len(created) == 4
    (rs,) = [r for r in kube.list("replicasets", NS) if r["spec"]["replicas"]]
    for pod in created:
        assert pod["metadata"]["name"].startswith(rs["metadata"]["name"] + "-")
        assert pod["metadata"]["labels"][HASH_LABEL] == rs["metadata"]["labels"][HASH_LABEL]
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert "nodeName" not in pod["spec"] and pod["status"]["phase"] == "Pending"
    start_all(kube)
    assert kube.get("deployments", NS, "llama")["status"]["readyReplicas"] == 4  # type: ignore[index]
    r = merge(http, f"{DEP}/llama/scale", {"spec": {"replicas": 6}})
    assert r.status_code == 200
    pending = {p["metadata"]["name"] for p in pods(kube) if not pod_ready(p)}
    assert len(pending) == 2
    assert merge(http, f"{DEP}/llama/scale", {"spec": {"replicas": 4}}).status_code == 200
    left = pods(kube)
    assert len(left) == 4 and all(pod_ready(p) for p in left)
    assert not pending & {p["metadata"]["name"] for p in left}


def test_a_new_template_rolls_out_within_surge_and_unavailability(
    kube: KubernetesStandIn, http: httpx.Client
) -> None:
    start_all(kube)
    body = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "v0.7"}]}}}}
    assert merge(http, f"{DEP}/llama", body).status_code == 200
    for _ in range(10):
        now = pods(kube)
        assert len(now) <= 5, "maxSurge 25 % of 4"
        assert sum(pod_ready(p) for p in now) >= 3, "maxUnavailable 25 % of 4"
        if all(image(p) == "v0.7" and pod_ready(p) for p in now) and len(now) == 4:
            break
        start_all(kube)
    else:
        pytest.fail(f"the rollout did not finish: {[image(p) for p in pods(kube)]}")
    dep = kube.get("deployments", NS, "llama")
    assert dep is not None and dep["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert dep["status"]["updatedReplicas"] == dep["status"]["readyReplicas"] == 4
    replicas = {
        r["metadata"]["annotations"][REVISION_ANNOTATION]: r["spec"]["replicas"]
        for r in kube.list("replicasets", NS)
    }
    assert replicas == {"1": 0, "2": 0, "3": 4}


def test_eviction_and_deletion_bring_a_replacement(
    kube: KubernetesStandIn, http: httpx.Client
) -> None:
    start_all(kube)
    kube.add_pdb(NS, "llama", {"app": "llama"}, max_unavailable=1)
    first, second = sorted(p["metadata"]["name"] for p in pods(kube))[:2]
    evict = "/api/v1/namespaces/ml/pods/{}/eviction"
    assert http.post(evict.format(first), json={"metadata": {"name": first}}).status_code == 201
    names = {p["metadata"]["name"] for p in pods(kube)}
    assert first not in names and len(names) == 4  # a new, unready pod took its place
    # the replacement is not ready yet: the budget allows no second disruption
    assert http.post(evict.format(second), json={"metadata": {"name": second}}).status_code == 429
    start_all(kube)
    assert http.post(evict.format(second), json={"metadata": {"name": second}}).status_code == 201
    assert http.delete(f"/api/v1/namespaces/ml/pods/{next(iter(names - {second}))}").is_success
    assert len(pods(kube)) == 4


def test_an_hpa_holds_its_target_within_bounds(kube: KubernetesStandIn, http: httpx.Client) -> None:
    kube.add_hpa(NS, "llama", "llama", min=2, max=5)
    assert kube.get("deployments", NS, "llama")["spec"]["replicas"] == 4  # type: ignore[index]
    hpa = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/llama"
    assert merge(http, hpa, {"spec": {"minReplicas": 6, "maxReplicas": 8}}).status_code == 200
    assert kube.get("deployments", NS, "llama")["spec"]["replicas"] == 6  # type: ignore[index]
    assert len(pods(kube)) == 6
    assert kube.get("horizontalpodautoscalers", NS, "llama")["status"] == {  # type: ignore[index]
        "currentReplicas": 6,
        "desiredReplicas": 6,
    }


def test_observers_hear_of_changes_and_update_never_resurrects(kube: KubernetesStandIn) -> None:
    heard: list[int] = []
    kube.subscribe(lambda: heard.append(1))
    name = pods(kube)[0]["metadata"]["name"]
    kube.update("pods", NS, name, lambda p: p["spec"].update(nodeName="n1"))
    assert heard
    kube.delete_object("pods", NS, name)
    assert kube.update("pods", NS, name, lambda p: None) is None
    assert kube.get("pods", NS, name) is None


def test_loaded_objects_keep_their_names_and_a_replicaset_is_found_by_template() -> None:
    with KubernetesStandIn(manage_pods=True) as kube:
        template = {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "vllm", "image": "v1"}]},
        }
        dep_uid = "00000000-0000-0000-0000-000000000001"
        owner = {"kind": "Deployment", "name": "x", "uid": dep_uid, "controller": True}
        rs_template = {
            "metadata": {"labels": {"app": "x", HASH_LABEL: "myhash"}},
            "spec": template["spec"],
        }
        kube.load(
            [
                (
                    "deployments",
                    {
                        "metadata": {
                            "name": "x",
                            "namespace": NS,
                            "uid": dep_uid,
                            "annotations": {REVISION_ANNOTATION: "1"},
                        },
                        "spec": {
                            "replicas": 1,
                            "selector": {"matchLabels": {"app": "x"}},
                            "template": template,
                        },
                    },
                ),
                (
                    "replicasets",
                    {
                        "metadata": {
                            "name": "x-myhash",
                            "namespace": NS,
                            "labels": {"app": "x", HASH_LABEL: "myhash"},
                            "annotations": {REVISION_ANNOTATION: "1"},
                            "ownerReferences": [owner],
                        },
                        "spec": {"replicas": 1, "template": rs_template},
                    },
                ),
            ]
        )
        (pod,) = kube.list("pods", NS)
        assert pod["metadata"]["name"].startswith("x-myhash-")
        dep = kube.get("deployments", NS, "x")
        assert dep is not None
        dep["spec"]["replicas"] = 2
        kube.put_object("deployments", dep)  # same template: the loaded ReplicaSet is kept
        assert [r["metadata"]["name"] for r in kube.list("replicasets", NS)] == ["x-myhash"]
        assert len(kube.list("pods", NS)) == 2
