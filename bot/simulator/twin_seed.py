"""The Kubernetes objects a simulated fleet corresponds to. Pure: a fleet in, objects out.

Per Deployment (one per model): the Deployment, two ReplicaSets (the revision before,
running the previous vLLM image, scaled to 0; and the current one, whose pod-template-hash
is the one in the fleet's pod names), its pods on the fleet's nodes, Ready, and a
PodDisruptionBudget (maxUnavailable 1). The current revision rolled out before its oldest
replica started and at least ``ROLLED_OUT_S`` ago, the one before ``HISTORY_S`` earlier:
a seeded fleet has no recent rollout. The first Deployment has an HPA. Nodes carry the
labels and GPU capacity of GPU nodes; each runs a dcgm-exporter DaemonSet pod.
"""

from __future__ import annotations

import datetime as dt
import uuid

from bot.simulator.engine import EngineProfile
from bot.simulator.fleet import (
    CURRENT_VERSION,
    PREVIOUS_VERSION,
    REPLICA_PORT,
    VLLM_IMAGE,
    Fleet,
    Node,
    Replica,
)
from bot.simulator.kube_objects import HASH_LABEL, REVISION_ANNOTATION, Obj, template_hash
from bot.simulator.server import EXPORTER_NAMESPACE, exporter_pod

Seed = list[tuple[str, Obj]]  # (plural, object) pairs for KubernetesStandIn.load
ZONES = ("zone-a", "zone-b", "zone-c")
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
EXPORTER_DAEMONSET = "nvidia-dcgm-exporter"
ROLLED_OUT_S = 3 * 3600.0  # the current revision is at least this old
HISTORY_S = 14 * 86400.0  # between the revision before and the current one


def uid(*parts: str) -> str:
    """A stable uid for a named object (the same fleet seeds the same objects)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_hash_of(replica: Replica) -> str:
    """The pod-template-hash in a Deployment pod's name (``<deployment>-<hash>-<suffix>``)."""
    return replica.pod[len(replica.deployment) + 1 :].rsplit("-", 1)[0]


def pod_template(fleet: Fleet, deployment: str, image: str) -> Obj:
    """The vLLM container as a Deployment would run it; flags are the engine's defaults."""
    defaults = EngineProfile()
    gpus = str(fleet.gpus_per_replica)
    args = [
        "--model", fleet.models[deployment],
        "--tensor-parallel-size", gpus,
        "--max-model-len", str(defaults.max_model_len),
        "--gpu-memory-utilization", defaults.gpu_memory_utilization,
        "--max-num-seqs", str(defaults.max_num_seqs),
    ]  # fmt: skip
    return {
        "metadata": {"labels": {"app": deployment}},
        "spec": {
            "containers": [
                {
                    "name": "vllm",
                    "image": image,
                    "args": args,
                    "ports": [{"name": "http", "containerPort": REPLICA_PORT}],
                    "resources": {"limits": {"nvidia.com/gpu": gpus}},
                }
            ]
        },
    }


def _owner(kind: str, name: str, owner_uid: str, api: str = "apps/v1") -> Obj:
    return {
        "apiVersion": api,
        "kind": kind,
        "name": name,
        "uid": owner_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _running(started: float) -> Obj:
    return {
        "phase": "Running",
        "startTime": iso(started),
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
    }


def node_object(node: Node, index: int, gpus: int) -> Obj:
    return {
        "metadata": {
            "name": node.name,
            "uid": uid("node", node.name),
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "topology.kubernetes.io/zone": ZONES[index % len(ZONES)],
                "nvidia.com/gpu.product": GPU_PRODUCT,
                "nvidia.com/gpu.count": str(gpus),
            },
        },
        "spec": {"unschedulable": True} if not node.schedulable else {},
        "status": {
            "capacity": {"nvidia.com/gpu": str(gpus)},
            "allocatable": {"nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _exporter_pod(node: Node, started: float) -> Obj:
    name = exporter_pod(node.name)
    return {
        "metadata": {
            "name": name,
            "namespace": EXPORTER_NAMESPACE,
            "uid": uid("pod", EXPORTER_NAMESPACE, name),
            "labels": {"app": EXPORTER_DAEMONSET},
            "ownerReferences": [
                _owner("DaemonSet", EXPORTER_DAEMONSET, uid("daemonset", EXPORTER_DAEMONSET))
            ],
        },
        "spec": {
            "nodeName": node.name,
            "containers": [
                {"name": "nvidia-dcgm-exporter", "image": "nvcr.io/nvidia/k8s/dcgm-exporter"}
            ],
        },
        "status": _running(started),
    }


def deployment_objects(fleet: Fleet, deployment: str, now: float) -> Seed:
    """The Deployment, its two revisions' ReplicaSets, its pods and its PDB."""
    ns = fleet.namespace
    replicas = [r for r in fleet.replicas if r.deployment == deployment]
    rolled_out = min([now - ROLLED_OUT_S, *(r.started_at for r in replicas)]) - 60.0
    created = {1: rolled_out - HISTORY_S, 2: rolled_out}
    dep_uid = uid("deployment", ns, deployment)
    labels = {"app": deployment}
    image = replicas[0].image
    before = f"{VLLM_IMAGE}:{PREVIOUS_VERSION}"
    current = pod_template(fleet, deployment, image)
    previous = pod_template(
        fleet, deployment, before if image != before else f"{VLLM_IMAGE}:{CURRENT_VERSION}"
    )
    hashes = {template_hash_of(r) for r in replicas}
    if len(hashes) != 1:
        raise ValueError(f"{deployment}: pods of several templates {sorted(hashes)}")
    (current_hash,) = hashes
    objects: Seed = [
        (
            "deployments",
            {
                "metadata": {
                    "name": deployment,
                    "namespace": ns,
                    "uid": dep_uid,
                    "labels": labels,
                    "annotations": {REVISION_ANNOTATION: "2"},
                    "generation": 2,
                    "creationTimestamp": iso(created[1]),
                },
                "spec": {
                    "replicas": len(replicas),
                    "selector": {"matchLabels": labels},
                    "template": current,
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    },
                },
                "status": {"observedGeneration": 2},
            },
        )
    ]
    rs_uids = {}
    for revision, template, tmpl_hash, count in (
        (1, previous, template_hash(previous), 0),
        (2, current, current_hash, len(replicas)),
    ):
        name = f"{deployment}-{tmpl_hash}"
        rs_uids[tmpl_hash] = uid("replicaset", ns, name)
        rs_labels = {**labels, HASH_LABEL: tmpl_hash}
        objects.append(
            (
                "replicasets",
                {
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "uid": rs_uids[tmpl_hash],
                        "labels": rs_labels,
                        "annotations": {REVISION_ANNOTATION: str(revision)},
                        "ownerReferences": [_owner("Deployment", deployment, dep_uid)],
                        "creationTimestamp": iso(created[revision]),
                    },
                    "spec": {
                        "replicas": count,
                        "selector": {"matchLabels": rs_labels},
                        "template": {**template, "metadata": {"labels": rs_labels}},
                    },
                },
            )
        )
    rs_name = f"{deployment}-{current_hash}"
    for replica in replicas:
        pod_labels = {**labels, HASH_LABEL: current_hash}
        objects.append(
            (
                "pods",
                {
                    "metadata": {
                        "name": replica.pod,
                        "generateName": f"{rs_name}-",
                        "namespace": ns,
                        "uid": uid("pod", ns, replica.pod),
                        "creationTimestamp": iso(rolled_out),
                        "labels": pod_labels,
                        "ownerReferences": [_owner("ReplicaSet", rs_name, rs_uids[current_hash])],
                    },
                    "spec": {**current["spec"], "nodeName": replica.node},
                    "status": _running(replica.started_at),
                },
            )
        )
    objects.append(
        (
            "poddisruptionbudgets",
            {
                "metadata": {"name": deployment, "namespace": ns},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
            },
        )
    )
    return objects


def hpa_object(fleet: Fleet, deployment: str) -> Obj:
    """An HPA that owns ``deployment``'s count, scaling on the queue per replica."""
    count = sum(r.deployment == deployment for r in fleet.replicas)
    return {
        "metadata": {"name": deployment, "namespace": fleet.namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": max(1, count),
            "maxReplicas": max(1, 2 * count),
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "vllm:num_requests_waiting"},
                        "target": {"type": "AverageValue", "averageValue": "50"},
                    },
                }
            ],
        },
    }


def seed_objects(fleet: Fleet, now: float) -> Seed:
    """Everything, in an order a restore can store as is."""
    started = now - 3600.0  # pods older than any scrape
    objects: Seed = [
        (
            "namespaces",
            {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}},
        )
        for name in (fleet.namespace, EXPORTER_NAMESPACE)
    ]
    for i, node in enumerate(fleet.nodes):
        objects.append(("nodes", node_object(node, i, len(node.gpus))))
        objects.append(("pods", _exporter_pod(node, started)))
    for deployment in fleet.deployments:
        objects += deployment_objects(fleet, deployment, now)
    if fleet.deployments:
        objects.append(("horizontalpodautoscalers", hpa_object(fleet, fleet.deployments[0])))
    return objects
