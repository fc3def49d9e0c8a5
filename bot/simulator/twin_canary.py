"""A canary in the fleet twin's cluster, made the way an operator makes one with a plain
Deployment: change the image and pause the rollout, then move ``replicas`` pods from the
serving ReplicaSet to the new one. Both revisions then serve side by side, each a
ReplicaSet with replicas, as kube-state-metrics shows a canary under way. Ending it sets
the template back and resumes: the Deployment rolls back to the revision before.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from bot.simulator.kube_objects import HASH_LABEL, Obj, same_template
from bot.simulator.kubernetes_api import KubernetesStandIn


def _owned(kube: KubernetesStandIn, namespace: str, deployment: Obj) -> list[Obj]:
    uid = deployment["metadata"]["uid"]
    return [
        rs
        for rs in kube.list("replicasets", namespace)
        if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])
    ]


def _with_image(template: Obj, image: str) -> Obj:
    changed = copy.deepcopy(template)
    for container in changed["spec"]["containers"]:
        container["image"] = image
    return changed


def start_canary(
    kube: KubernetesStandIn, namespace: str, name: str, image: str, replicas: int
) -> str | None:
    """Run ``image`` on ``replicas`` of Deployment ``namespace/name``'s pods; returns the
    serving ReplicaSet's name before the canary (None: no such Deployment)."""
    deployment = kube.get("deployments", namespace, name)
    if deployment is None:
        return None
    template = deployment["spec"]["template"]
    stable = next(
        (
            rs
            for rs in _owned(kube, namespace, deployment)
            if same_template(rs["spec"]["template"], template, HASH_LABEL)
        ),
        None,
    )
    if stable is None:
        return None
    total = int(stable["spec"].get("replicas", 0))
    moved = max(1, min(replicas, total - 1))

    def canary(dep: Obj) -> None:
        dep["spec"]["template"] = _with_image(template, image)
        dep["spec"]["paused"] = True

    kube.update("deployments", namespace, name, canary)  # the new ReplicaSet, at 0
    deployment = kube.get("deployments", namespace, name)
    assert deployment is not None
    new_template = deployment["spec"]["template"]
    for rs in _owned(kube, namespace, deployment):
        if same_template(rs["spec"]["template"], new_template, HASH_LABEL):
            kube.update("replicasets", namespace, rs["metadata"]["name"], _replicas(moved))
    kube.update("replicasets", namespace, stable["metadata"]["name"], _replicas(total - moved))
    return str(stable["metadata"]["name"])


def end_canary(kube: KubernetesStandIn, namespace: str, name: str, stable: str) -> None:
    """Back to the ``stable`` ReplicaSet's template, the rollout resumed."""
    replicaset = kube.get("replicasets", namespace, stable)
    if replicaset is None:
        return
    template = copy.deepcopy(replicaset["spec"]["template"])
    template.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)

    def back(dep: Obj) -> None:
        dep["spec"]["template"] = template
        dep["spec"].pop("paused", None)

    kube.update("deployments", namespace, name, back)


def _replicas(count: int) -> Callable[[Obj], None]:
    def change(rs: Obj) -> None:
        rs["spec"]["replicas"] = count

    return change
