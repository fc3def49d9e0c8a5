"""Shortcuts that put typical objects into the Kubernetes API stand-in (tests, the twin)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence

from bot.simulator.kube_objects import MIRROR_ANNOTATION, Obj


class Seeding:
    """Mixed into the stand-in: each shortcut stores through :meth:`put_object`."""

    def put_object(self, plural: str, obj: Obj) -> Obj:
        raise NotImplementedError

    def add_deployment(
        self,
        namespace: str,
        name: str,
        image: str,
        replicas: int = 1,
        revisions: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
    ) -> Obj:
        """A deployment whose rollout history is ``revisions`` (oldest first) then ``image``."""
        return self._add_rolled_out(
            "deployments", namespace, name, image, replicas, revisions, labels
        )

    def add_rollout(
        self,
        namespace: str,
        name: str,
        image: str,
        replicas: int = 1,
        revisions: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
    ) -> Obj:
        """An Argo Rollout (canary) whose history is ``revisions`` (oldest first) then ``image``."""
        canary = {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}
        return self._add_rolled_out(
            "rollouts", namespace, name, image, replicas, revisions, labels, strategy=canary
        )

    def _add_rolled_out(
        self,
        plural: str,
        namespace: str,
        name: str,
        image: str,
        replicas: int,
        revisions: Sequence[str],
        labels: Mapping[str, str] | None,
        strategy: Obj | None = None,
    ) -> Obj:
        """Each image in turn as the pod template, so the controller records the history."""
        labels = dict(labels or {"app": name})
        obj: Obj = {}
        for img in [*revisions, image]:
            spec: Obj = {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "vllm", "image": img}]},
                },
            }
            if strategy is not None:
                spec["strategy"] = strategy
            metadata = {"name": name, "namespace": namespace, "labels": labels}
            obj = self.put_object(plural, {"metadata": metadata, "spec": spec})
        return obj

    def add_statefulset(self, namespace: str, name: str, image: str, replicas: int = 1) -> Obj:
        labels = {"app": name}
        return self.put_object(
            "statefulsets",
            {
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {
                    "replicas": replicas,
                    "serviceName": name,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "vllm", "image": image}]},
                    },
                },
            },
        )

    def add_hpa(
        self,
        namespace: str,
        name: str,
        target_deployment: str,
        min: int,
        max: int,
        kind: str = "Deployment",
        owner: Obj | None = None,
    ) -> Obj:
        meta: Obj = {"name": name, "namespace": namespace}
        if owner:
            meta["ownerReferences"] = [owner]
        return self.put_object(
            "horizontalpodautoscalers",
            {
                "metadata": meta,
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": kind,
                        "name": target_deployment,
                    },
                    "minReplicas": min,
                    "maxReplicas": max,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 80},
                            },
                        }
                    ],
                },
            },
        )

    def add_scaled_object(
        self, namespace: str, name: str, target_deployment: str, min: int, max: int
    ) -> Obj:
        """A KEDA ScaledObject and the HPA (``keda-hpa-NAME``) KEDA creates for it."""
        return self.put_object(
            "scaledobjects",
            {
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "scaleTargetRef": {"name": target_deployment},
                    "minReplicaCount": min,
                    "maxReplicaCount": max,
                    "triggers": [{"type": "prometheus", "metadata": {"threshold": "10"}}],
                },
            },
        )

    def add_node(self, name: str, unschedulable: bool = False) -> Obj:
        return self.put_object(
            "nodes",
            {
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "spec": {"unschedulable": True} if unschedulable else {},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            },
        )

    def add_pod(
        self,
        namespace: str,
        name: str,
        node: str,
        labels: Mapping[str, str] | None = None,
        owner: tuple[str, str] | None = None,
        ready: bool = True,
        mirror: bool = False,
    ) -> Obj:
        """A running pod on ``node``; ``owner`` is ``(kind, name)``, e.g. ``("DaemonSet", "x")``."""
        meta: Obj = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
        if owner:
            kind, owner_name = owner
            api = "v1" if kind == "Node" else "apps/v1"
            meta["ownerReferences"] = [
                {
                    "apiVersion": api,
                    "kind": kind,
                    "name": owner_name,
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{kind}/{owner_name}")),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        if mirror:
            meta["annotations"] = {MIRROR_ANNOTATION: hashlib.md5(name.encode()).hexdigest()}
        return self.put_object(
            "pods",
            {
                "metadata": meta,
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "x"}]},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                },
            },
        )

    def add_pdb(
        self,
        namespace: str,
        name: str,
        selector: Mapping[str, str],
        min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
    ) -> Obj:
        spec: Obj = {"selector": {"matchLabels": dict(selector)}}
        if min_available is not None:
            spec["minAvailable"] = min_available
        if max_unavailable is not None:
            spec["maxUnavailable"] = max_unavailable
        return self.put_object(
            "poddisruptionbudgets",
            {"metadata": {"name": name, "namespace": namespace}, "spec": spec},
        )
