"""What the stand-in's workload controllers decide, as pure functions.

A rolling update's next step from the pods' readiness, the pods a ReplicaSet creates and
the order it removes them in, and where an HPA holds its target's replica count. The
stand-in applies these decisions to its store; nothing here keeps state.
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.simulator.kube_objects import Obj, pod_ready

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Counts:
    """A ReplicaSet as a rolling update sees it: pods it should have, pods ready."""

    replicas: int
    ready: int


def _amount(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def rolling_bounds(strategy: Obj | None, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate strategy; 25 % each by default,
    surge rounded up and unavailability down, as the deployment controller does."""
    rolling = (strategy or {}).get("rollingUpdate") or {}
    surge = _amount(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = _amount(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # the API server refuses both at zero; never stall
    return surge, unavailable


def rollout_step(
    desired: int, new: Counts, olds: Sequence[Counts], surge: int, unavailable: int
) -> tuple[int, list[int]]:
    """The replica counts a rolling update moves to next: (new ReplicaSet, each old one).

    The new ReplicaSet grows while the total stays within ``desired + surge``; old ones
    shrink while the ready pods stay at ``desired - unavailable`` or more (their unready
    pods go first: they serve nothing). Called again whenever a pod's readiness changes,
    this walks a Deployment from one template to the next.
    """
    old_total = sum(o.replicas for o in olds)
    if old_total == 0 or new.replicas > desired:
        new_target = desired
    else:
        room = desired + surge - new.replicas - old_total
        new_target = min(desired, new.replicas + max(0, room))
    budget = max(0, new.ready + sum(o.ready for o in olds) - (desired - unavailable))
    old_targets: list[int] = []
    for old in olds:
        keep = min(old.replicas, old.ready)
        cut = min(keep, budget)
        budget -= cut
        old_targets.append(keep - cut)
    return new_target, old_targets


def pod_for(replicaset: Obj, taken: set[str]) -> Obj:
    """A new pod of ``replicaset``: its template, unscheduled (a scheduler binds it)."""
    meta = replicaset["metadata"]
    template = copy.deepcopy((replicaset.get("spec") or {}).get("template") or {})
    while True:
        suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
        name = f"{meta['name']}-{suffix}"
        if name not in taken:
            break
    pod_meta: Obj = {
        "name": name,
        "generateName": f"{meta['name']}-",
        "namespace": meta["namespace"],
        "labels": dict((template.get("metadata") or {}).get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    annotations = (template.get("metadata") or {}).get("annotations")
    if annotations:
        pod_meta["annotations"] = dict(annotations)
    return {
        "metadata": pod_meta,
        "spec": template.get("spec") or {},
        "status": {"phase": "Pending"},
    }


def removal_order(pods: Sequence[Obj]) -> list[Obj]:
    """Which pods a ReplicaSet scaling down removes first: unscheduled, then not ready,
    then the newest."""

    newest_first = sorted(
        pods,
        key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]),
        reverse=True,
    )
    return sorted(  # stable: the newest first within each group
        newest_first,
        key=lambda p: (bool((p.get("spec") or {}).get("nodeName")), pod_ready(p)),
    )


def owner_uid(obj: Obj, kind: str) -> str | None:
    """The uid of the controller of ``obj`` when it is of ``kind``."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller", False):
            return str(ref.get("uid"))
    return None


def held_replicas(hpa: Obj, replicas: int) -> int:
    """Where an HPA holds its target's replica count: within [minReplicas, maxReplicas]."""
    spec = hpa.get("spec") or {}
    low = int(spec.get("minReplicas", 1))
    high = int(spec.get("maxReplicas", max(low, replicas)))
    return max(low, min(high, replicas))


def ready_count(pods: Sequence[Obj]) -> int:
    return sum(1 for p in pods if pod_ready(p))
