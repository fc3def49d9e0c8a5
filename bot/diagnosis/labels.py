"""Which label conventions the data follows: detected from Prometheus at diagnosis time.

One query tells whether DCGM series name their workload in ``exported_*`` labels (the
kube-prometheus-stack form, ``honorLabels: false``) or in plain ``pod``/``namespace``, and
whether series carry the cluster label at all. Configured conventions win over detection.
"""

from __future__ import annotations

import asyncio
import logging

from bot.diagnosis.metric_names import GPU_UTIL
from bot.diagnosis.promql import (
    LabelledScope,
    ScopeError,
    conventions_of,
    quote,
    with_conventions,
)
from bot.models import Scope
from bot.sources.prometheus import MetricsError, MetricsSource, Sample

log = logging.getLogger(__name__)
DETECT_S = 1.0  # counts only; a diagnosis must not wait on them


def detection_query(cluster_label: str) -> str:
    """Counts tagged by ``stat``: exported GPU workload labels, GPUs, clustered series."""
    parts = {
        "exported": f'count({GPU_UTIL}{{exported_pod!=""}} '
        f'or {GPU_UTIL}{{exported_namespace!=""}})',
        "gpus": f"count({GPU_UTIL})",
        "clustered": f'count(up{{{cluster_label}!=""}})',
        "series": "count(up)",
    }
    return " or ".join(
        f'label_replace({expr}, "stat", "{name}", "", "")' for name, expr in parts.items()
    )


def conclude(scope: Scope, rows: list[Sample]) -> LabelledScope:
    """The scope with what the counts say (pure)."""
    found = {r.labels.get("stat", ""): r.value for r in rows}
    conventions = conventions_of(scope)
    update: dict[str, object] = {}
    if conventions.gpu_workload_labels == "auto" and found.get("gpus"):
        update["gpu_workload_labels"] = "exported" if found.get("exported") else "plain"
        update["detected"] = True
    if found.get("series"):
        update["cluster_in_data"] = bool(found.get("clustered"))
    return with_conventions(scope, conventions.model_copy(update=update))


async def detect(scope: Scope, metrics: MetricsSource) -> LabelledScope:
    """The scope with its conventions resolved from the data (as configured if it fails)."""
    try:
        rows = await asyncio.wait_for(
            metrics.query(detection_query(conventions_of(scope).cluster_label)), DETECT_S
        )
    except TimeoutError:
        log.warning("label conventions not detected within %gs: using the configured", DETECT_S)
        rows = []
    except MetricsError as exc:
        log.warning("cannot detect label conventions: %s", exc)
        rows = []
    return conclude(scope, rows)


class UnknownCluster(ScopeError):
    """A scope's cluster that is neither configured nor a value of the cluster label."""


def cluster_values_query(cluster_label: str) -> str:
    """The clusters the data holds: one series a value of the cluster label."""
    return f'count by ({cluster_label}) (up{{{cluster_label}!=""}})'


def unknown_cluster(cluster: str, cluster_label: str, rows: list[Sample]) -> str | None:
    """Why ``cluster`` cannot be diagnosed from these rows, or None when it can (pure)."""
    found = sorted({r.labels[cluster_label] for r in rows if r.labels.get(cluster_label)})
    if cluster in found:
        return None
    if not found:
        return (
            f"cluster {quote(cluster)} is not configured, and the data has no "
            f"`{cluster_label}` label to pick it by: configure it under `clusters:` with its "
            f"prometheus_url, or set `labels: cluster_label:` to the label naming clusters"
        )
    return (
        f"cluster {quote(cluster)} is not configured, and no series has "
        f"{cluster_label}={quote(cluster)}; the data holds {cluster_label}: {', '.join(found)}"
    )


async def known_cluster(cluster: str, metrics: MetricsSource, cluster_label: str) -> None:
    """UnknownCluster unless the data holds series of ``cluster`` (checked before a
    diagnosis picks series by a cluster no configuration names). An unreachable
    Prometheus gives no verdict: the diagnosis itself will say it read nothing."""
    try:
        rows = await metrics.query(cluster_values_query(cluster_label))
    except MetricsError as exc:
        log.warning("cannot list the clusters in the data: %s", exc)
        return
    reason = unknown_cluster(cluster, cluster_label, rows)
    if reason:
        raise UnknownCluster(reason)
