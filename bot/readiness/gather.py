"""Reading the evidence: Prometheus, the Kubernetes API, the audit log, the canary
watches. One function a source; each returns plain evidence or ``Missing`` with the
reason, never raises for an unreachable source (the item is then unknown)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.canary.watches import Watch
from bot.diagnosis.metric_names import CACHE_CONFIG, GPU_UTIL, REQUEST_SUCCESS, RUNNING, WAITING
from bot.diagnosis.promql import cluster_matchers, dcgm, quote, vllm, window_seconds
from bot.models import Scope
from bot.readiness.evidence import (
    CacheConfigs,
    Canaries,
    CanaryWatch,
    Capacity,
    Cluster,
    Missing,
    RollbackRun,
    Rules,
    ServingPod,
    Targets,
)
from bot.remediation.audit import AuditError, AuditLog
from bot.sources.kubernetes import KubernetesError, Obj
from bot.sources.prometheus import MetricsError, Sample

GMU, PREFIX = "gpu_memory_utilization", "enable_prefix_caching"
ROLLBACK_KIND = "rollback"
NOT_ABORT = 'finished_reason!="abort"'  # served: what aborts took is not capacity
MAX_STEPS = 2000  # points of the demand subquery over the lookback
WATCHES_READ = 500  # the newest canary watches read (the active ones always are)


class PrometheusAPI(Protocol):
    async def query(self, promql: str) -> list[Sample]: ...

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any: ...


class KubeAPI(Protocol):
    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        labels: Any = None,
        fields: Any = None,
    ) -> list[Obj]: ...


class WatchesAPI(Protocol):
    """The bot's canary watches (``bot.canary.watches.Watches``)."""

    def active(self) -> list[Watch]: ...

    def recent(self, limit: int = 50) -> list[Watch]: ...


def _one(rows: list[Sample]) -> float | None:
    return rows[0].value if rows else None


def demand_query(scope: Scope, window: str) -> str:
    """Demand now: requests finished (served or abandoned) plus the queue's growth."""
    finished = f"sum(rate({vllm(REQUEST_SUCCESS, scope)}[{window}]))"
    growth = f"(sum(deriv({vllm(WAITING, scope)}[{window}])) > 0 or vector(0))"
    return f"({finished} + {growth})"


def peak_query(scope: Scope, window: str, lookback: str) -> str:
    """The highest demand over ``lookback``, sampled often enough to catch a peak."""
    step = max(1, round(window_seconds(lookback) / MAX_STEPS))
    return f"max_over_time({demand_query(scope, window)}[{lookback}:{step}s])"


async def capacity(
    prom: PrometheusAPI, scope: Scope, window: str, lookback: str
) -> Capacity | Missing:
    served = f"sum(rate({vllm(REQUEST_SUCCESS, scope, NOT_ABORT)}[{window}]))"
    replicas = f"count(max by (namespace, pod, instance) ({vllm(RUNNING, scope)}))"
    busy = f"avg({dcgm(GPU_UTIL, scope, assigned=True)}) / 100"
    try:
        peak, demand, now, count, util = await asyncio.gather(
            prom.query(peak_query(scope, window, lookback)),
            prom.query(demand_query(scope, window)),
            prom.query(served),
            prom.query(replicas),
            prom.query(busy),
        )
    except MetricsError as exc:
        return Missing(str(exc))
    # a young Prometheus's subquery may miss the last minutes: never below demand now
    highest = [v for v in (_one(peak), _one(demand)) if v is not None]
    return Capacity(
        peak_rps=max(highest) if highest else None,
        served_rps=_one(now) or 0.0,
        busy=_one(util),
        replicas=int(_one(count) or 0),
    )


async def cache_configs(prom: PrometheusAPI, scope: Scope) -> CacheConfigs | Missing:
    try:
        rows = await prom.query(f"count by ({GMU}, {PREFIX}) ({vllm(CACHE_CONFIG, scope)})")
    except MetricsError as exc:
        return Missing(str(exc))
    return CacheConfigs(
        tuple((r.labels.get(GMU, ""), r.labels.get(PREFIX, ""), int(r.value)) for r in rows)
    )


async def targets(
    prom: PrometheusAPI, scope: Scope, replica_job: str, node_job: str
) -> Targets | Missing:
    where = cluster_matchers(scope)
    namespace = scope.labels.get("namespace")
    replica_sel = [f"job={quote(replica_job)}", *where]
    node_sel = [f"job={quote(node_job)}", *where]
    if namespace:
        replica_sel.append(f"namespace={quote(namespace)}")
    try:
        replicas, nodes = await asyncio.gather(
            prom.query(f"max by (pod, instance) (up{{{','.join(replica_sel)}}})"),
            prom.query(f"max by (instance) (up{{{','.join(node_sel)}}})"),
        )
    except MetricsError as exc:
        return Missing(str(exc))
    return Targets(
        replicas={
            r.labels.get("pod") or r.labels.get("instance", ""): r.value == 1 for r in replicas
        },
        nodes={r.labels.get("instance", ""): r.value == 1 for r in nodes},
    )


async def rules(prom: PrometheusAPI) -> Rules | Missing:
    try:
        data = await prom.get("/api/v1/rules")
    except MetricsError as exc:
        return Missing(str(exc))
    alerting: list[tuple[str, str]] = []
    recording: dict[str, str] = {}
    for group in (data or {}).get("groups", []):
        for rule in group.get("rules", []):
            query = str(rule.get("query", ""))
            if rule.get("type") == "alerting":
                alerting.append((str(rule.get("name", "")), query))
            elif rule.get("type") == "recording":
                recording[str(rule.get("name", ""))] = query
    return Rules(tuple(alerting), recording)


def _container(pod: Obj, image: str) -> Obj | None:
    for container in pod.get("spec", {}).get("containers", []):
        if image in str(container.get("image", "")):
            return dict(container)
    return None


def _workload(pod: Obj) -> str:
    """The Deployment (or Rollout) a pod belongs to: its ReplicaSet's name minus the hash."""
    meta = pod.get("metadata", {})
    for owner in meta.get("ownerReferences", []):
        if owner.get("kind") == "ReplicaSet":
            return str(owner.get("name", "")).rsplit("-", 1)[0]
        return str(owner.get("name", ""))
    return str(meta.get("name", ""))


def _ready(pod: Obj) -> bool:
    status = pod.get("status", {})
    conditions = status.get("conditions", [])
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


def serving_pods(pods: Sequence[Obj], image: str) -> list[ServingPod]:
    found = []
    for pod in pods:
        container = _container(pod, image)
        if container is None:
            continue
        meta = pod.get("metadata", {})
        args = [*container.get("command", []), *container.get("args", [])]
        found.append(
            ServingPod(
                namespace=str(meta.get("namespace", "")),
                name=str(meta.get("name", "")),
                workload=_workload(pod),
                node=str(pod.get("spec", {}).get("nodeName", "")),
                ready=_ready(pod),
                args=tuple(str(a) for a in args),
            )
        )
    return found


def _gpus(node: Obj) -> int:
    value = node.get("status", {}).get("allocatable", {}).get("nvidia.com/gpu", "0")
    return int(value) if str(value).isdigit() else 0


async def cluster(
    kube: KubeAPI, namespace: str | None, image: str, zone_label: str
) -> Cluster | Missing:
    try:
        pods, nodes = await asyncio.gather(kube.list("Pod", namespace), kube.list("Node"))
    except KubernetesError as exc:
        return Missing(f"Kubernetes: {exc}")
    zones: dict[str, str | None] = {}
    gpu_nodes = []
    for node in nodes:
        name = str(node.get("metadata", {}).get("name", ""))
        zones[name] = node.get("metadata", {}).get("labels", {}).get(zone_label)
        if _gpus(node) and not node.get("spec", {}).get("unschedulable"):
            gpu_nodes.append(name)
    return Cluster(tuple(serving_pods(pods, image)), zones, tuple(sorted(gpu_nodes)))


async def canaries(kube: KubeAPI, namespace: str | None) -> Canaries | Missing:
    try:
        rollouts = await kube.list("Rollout", namespace)
    except KubernetesError as exc:
        if exc.status == 404:  # the Argo Rollouts CRD is not installed: there are none
            return Canaries(())
        return Missing(f"Kubernetes: {exc}")
    found = []
    for ro in rollouts:
        strategy = ro.get("spec", {}).get("strategy", {})
        kinds = [k for k in ("canary", "blueGreen") if k in strategy]
        if kinds:
            meta = ro.get("metadata", {})
            found.append((f"{meta.get('namespace', '')}/{meta.get('name', '')}", kinds[0]))
    return Canaries(tuple(sorted(found)))


def rollbacks(audit: AuditLog, since: datetime, scope: Scope) -> tuple[RollbackRun, ...] | Missing:
    """Rollbacks executed since ``since`` in the scope's cluster and namespace (when it
    names them): when each started executing and its outcome."""
    try:
        events = audit.of_kind(ROLLBACK_KIND, since)
    except (AuditError, OSError) as exc:
        return Missing(f"audit log: {exc}")
    namespace = scope.labels.get("namespace")
    by_request: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        if (namespace and event.namespace != namespace) or (
            scope.cluster and event.cluster != scope.cluster
        ):
            continue
        by_request[event.request_id].append(event)
    runs = []
    for records in by_request.values():
        started = next((e for e in records if e.event == "executing"), None)
        if started is None:
            continue
        end = next((e for e in records if e.event in ("executed", "failed")), None)
        runs.append(
            RollbackRun(
                target=started.target,
                started=started.at,
                finished=end.at if end else None,
                ok=end is not None and end.event == "executed",
                actor=started.actor_name or started.actor_id,
            )
        )
    return tuple(sorted(runs, key=lambda r: r.started))


def canary_watches(
    watches: WatchesAPI, scope: Scope, default_cluster: str | None = None
) -> tuple[CanaryWatch, ...] | Missing:
    """The canary watches in the scope's cluster and namespace (when it names them),
    active ones first, then the newest. A watch started without a cluster runs in
    ``default_cluster`` (the first configured one) and is counted there."""
    try:
        read = {w.id: w for w in [*watches.recent(WATCHES_READ), *watches.active()]}
    except (SQLAlchemyError, OSError) as exc:
        first = str(exc).splitlines()[:1] or [type(exc).__name__]
        return Missing(f"canary watches not readable: {first[0]}")
    namespace = scope.labels.get("namespace")
    found = [
        CanaryWatch(
            id=w.id,
            target=w.target,
            cluster=w.cluster,
            state=w.state,
            active=w.active,
            started=w.created_at,
            finished=None if w.active else (w.updated_at or w.created_at),
        )
        for w in read.values()
        if not (namespace and w.namespace != namespace)
        and not (scope.cluster and (w.cluster or default_cluster) != scope.cluster)
    ]
    return tuple(sorted(found, key=lambda w: (not w.active, -w.id)))
