"""kube-state-metrics' ``/metrics`` for Kubernetes objects. Pure: objects in, text out.

The families a diagnosis joins vLLM series with, named, labelled and valued as
kube-state-metrics v2 exposes them (its STABLE metrics for pods, ReplicaSets, Deployments
and nodes): which ReplicaSet owns a pod (``kube_pod_owner``), which Deployment owns a
ReplicaSet (``kube_replicaset_owner``), when each was created (``kube_*_created``, unix
seconds), and the replica counts and generations a rollout moves. An object without an
owner reports ``owner_kind="<none>"`` as kube-state-metrics does.

Each ``*_samples`` function reads one object and keeps nothing of it, so it can run on
the stored objects themselves (``KubernetesStandIn.project``); :func:`exposition` writes
the samples family by family.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from bot.simulator.catalog import Family
from bot.simulator.exposition import ExpositionWriter

Obj = dict[str, Any]
Labels = dict[str, str]
Sample = tuple[Family, Labels, float]

NONE = "<none>"  # kube-state-metrics' value for an owner label of an object with no owner
POD_PHASES = ("Pending", "Succeeded", "Failed", "Unknown", "Running")


def _gauge(name: str, help_text: str) -> Family:
    return Family(name, "gauge", f"[STABLE] {help_text}")


POD_INFO = _gauge("kube_pod_info", "Information about pod.")
POD_OWNER = _gauge("kube_pod_owner", "Information about the Pod's owner.")
POD_CREATED = _gauge("kube_pod_created", "Unix creation timestamp")
POD_START_TIME = _gauge("kube_pod_start_time", "Start time in unix timestamp for a pod.")
POD_PHASE = _gauge("kube_pod_status_phase", "The pods current phase.")
POD_READY = _gauge("kube_pod_status_ready", "Describes whether the pod is ready to serve requests.")
RS_CREATED = _gauge("kube_replicaset_created", "Unix creation timestamp")
RS_OWNER = _gauge("kube_replicaset_owner", "Information about the ReplicaSet's owner.")
RS_SPEC_REPLICAS = _gauge(
    "kube_replicaset_spec_replicas", "Number of desired pods for a ReplicaSet."
)
RS_STATUS_REPLICAS = _gauge(
    "kube_replicaset_status_replicas", "The number of replicas per ReplicaSet."
)
RS_READY_REPLICAS = _gauge(
    "kube_replicaset_status_ready_replicas", "The number of ready replicas per ReplicaSet."
)
RS_GENERATION = _gauge(
    "kube_replicaset_metadata_generation",
    "Sequence number representing a specific generation of the desired state.",
)
RS_OBSERVED_GENERATION = _gauge(
    "kube_replicaset_status_observed_generation",
    "The generation observed by the ReplicaSet controller.",
)
DEPLOYMENT_CREATED = _gauge("kube_deployment_created", "Unix creation timestamp")
DEPLOYMENT_SPEC_REPLICAS = _gauge(
    "kube_deployment_spec_replicas", "Number of desired pods for a deployment."
)
DEPLOYMENT_GENERATION = _gauge(
    "kube_deployment_metadata_generation",
    "Sequence number representing a specific generation of the desired state.",
)
DEPLOYMENT_OBSERVED_GENERATION = _gauge(
    "kube_deployment_status_observed_generation",
    "The generation observed by the deployment controller.",
)
DEPLOYMENT_REPLICAS = _gauge(
    "kube_deployment_status_replicas", "The number of replicas per deployment."
)
DEPLOYMENT_READY = _gauge(
    "kube_deployment_status_replicas_ready", "The number of ready replicas per deployment."
)
DEPLOYMENT_AVAILABLE = _gauge(
    "kube_deployment_status_replicas_available",
    "The number of available replicas per deployment.",
)
DEPLOYMENT_UNAVAILABLE = _gauge(
    "kube_deployment_status_replicas_unavailable",
    "The number of unavailable replicas per deployment.",
)
DEPLOYMENT_UPDATED = _gauge(
    "kube_deployment_status_replicas_updated", "The number of updated replicas per deployment."
)
NODE_CREATED = _gauge("kube_node_created", "Unix creation timestamp")
NODE_UNSCHEDULABLE = _gauge("kube_node_spec_unschedulable", "Whether a node can schedule new pods.")


def unix(timestamp: str) -> float | None:
    """Seconds since the epoch of an API timestamp (``2025-01-31T12:00:00Z``)."""
    if not timestamp:
        return None
    parsed = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _count(section: Obj | None, key: str) -> float:
    return float((section or {}).get(key) or 0)


def _owners(meta: Obj) -> list[Labels]:
    refs = meta.get("ownerReferences") or []
    if not refs:
        return [{"owner_kind": NONE, "owner_name": NONE, "owner_is_controller": NONE}]
    return [
        {
            "owner_kind": str(ref.get("kind", "")),
            "owner_name": str(ref.get("name", "")),
            "owner_is_controller": "true" if ref.get("controller") else "false",
        }
        for ref in refs
    ]


def _controller(meta: Obj) -> tuple[str, str]:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind", "")), str(ref.get("name", ""))
    return NONE, NONE


def pod_samples(pod: Obj) -> list[Sample]:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    base = {"namespace": meta.get("namespace", ""), "pod": meta["name"], "uid": meta.get("uid", "")}
    kind, name = _controller(meta)
    out: list[Sample] = [
        (
            POD_INFO,
            {
                **base,
                "host_ip": str(status.get("hostIP", "")),
                "pod_ip": str(status.get("podIP", "")),
                "node": str(spec.get("nodeName", "")),
                "created_by_kind": kind,
                "created_by_name": name,
                "priority_class": str(spec.get("priorityClassName", "")),
                "host_network": "true" if spec.get("hostNetwork") else "false",
            },
            1.0,
        ),
        *((POD_OWNER, {**base, **owner}, 1.0) for owner in _owners(meta)),
    ]
    created = unix(meta.get("creationTimestamp", ""))
    if created is not None:
        out.append((POD_CREATED, base, created))
    started = unix(status.get("startTime", ""))
    if started is not None:
        out.append((POD_START_TIME, base, started))
    phase = status.get("phase")
    if phase:
        out += [(POD_PHASE, {**base, "phase": p}, float(p == phase)) for p in POD_PHASES]
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None:
        state = str(ready.get("status", "Unknown")).lower()
        out += [
            (POD_READY, {**base, "condition": c}, float(c == state))
            for c in ("true", "false", "unknown")
        ]
    return out


def replicaset_samples(rs: Obj) -> list[Sample]:
    meta, spec, status = rs["metadata"], rs.get("spec") or {}, rs.get("status") or {}
    base = {"namespace": meta.get("namespace", ""), "replicaset": meta["name"]}
    out: list[Sample] = [(RS_OWNER, {**base, **owner}, 1.0) for owner in _owners(meta)]
    created = unix(meta.get("creationTimestamp", ""))
    if created is not None:
        out.append((RS_CREATED, base, created))
    out += [
        (RS_SPEC_REPLICAS, base, float(spec.get("replicas", 1))),
        (RS_STATUS_REPLICAS, base, _count(status, "replicas")),
        (RS_READY_REPLICAS, base, _count(status, "readyReplicas")),
        (RS_GENERATION, base, float(meta.get("generation", 0))),
        (RS_OBSERVED_GENERATION, base, _count(status, "observedGeneration")),
    ]
    return out


def deployment_samples(deployment: Obj) -> list[Sample]:
    meta = deployment["metadata"]
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    base = {"namespace": meta.get("namespace", ""), "deployment": meta["name"]}
    out: list[Sample] = []
    created = unix(meta.get("creationTimestamp", ""))
    if created is not None:
        out.append((DEPLOYMENT_CREATED, base, created))
    out += [
        (DEPLOYMENT_SPEC_REPLICAS, base, float(spec.get("replicas", 1))),
        (DEPLOYMENT_GENERATION, base, float(meta.get("generation", 0))),
        (DEPLOYMENT_OBSERVED_GENERATION, base, _count(status, "observedGeneration")),
        (DEPLOYMENT_REPLICAS, base, _count(status, "replicas")),
        (DEPLOYMENT_READY, base, _count(status, "readyReplicas")),
        (DEPLOYMENT_AVAILABLE, base, _count(status, "availableReplicas")),
        (DEPLOYMENT_UNAVAILABLE, base, _count(status, "unavailableReplicas")),
        (DEPLOYMENT_UPDATED, base, _count(status, "updatedReplicas")),
    ]
    return out


def node_samples(node: Obj) -> list[Sample]:
    meta = node["metadata"]
    base = {"node": meta["name"]}
    out: list[Sample] = []
    created = unix(meta.get("creationTimestamp", ""))
    if created is not None:
        out.append((NODE_CREATED, base, created))
    unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
    out.append((NODE_UNSCHEDULABLE, base, float(unschedulable)))
    return out


def exposition(samples: Iterable[Sample]) -> str:
    """The text a scrape of kube-state-metrics returns, one block per family."""
    writer = ExpositionWriter()
    for family, labels, value in samples:
        writer.sample(family, labels, value)
    return writer.render()
