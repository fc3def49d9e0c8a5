"""What the bot read about the fleet, as plain data: the input of the pure decisions.

``Missing`` stands for evidence that could not be read (a source unreachable or not
configured): the item is then unknown, never passed or failed on a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Missing:
    reason: str


@dataclass(frozen=True)
class Capacity:
    """Fleet demand and what it serves, from Prometheus."""

    peak_rps: float | None  # the highest demand over the lookback (served + abandoned + queued)
    served_rps: float  # served now, over the rate window
    busy: float | None  # mean busy fraction of the replicas' GPUs (0..1)
    replicas: int


@dataclass(frozen=True)
class ServingPod:
    namespace: str
    name: str
    workload: str  # the Deployment (or Rollout) it belongs to, else the pod name
    node: str
    ready: bool
    args: tuple[str, ...]  # command + args of its vLLM container


@dataclass(frozen=True)
class Cluster:
    """Serving pods and the nodes, from the Kubernetes API."""

    pods: tuple[ServingPod, ...]
    zones: dict[str, str | None]  # node → zone label value (None: unlabelled)
    gpu_nodes: tuple[str, ...]  # nodes with allocatable nvidia.com/gpu, schedulable


@dataclass(frozen=True)
class CacheConfigs:
    """``count by (gpu_memory_utilization, enable_prefix_caching) (vllm:cache_config_info)``."""

    groups: tuple[tuple[str, str, int], ...]  # (gpu_memory_utilization, prefix caching, replicas)


@dataclass(frozen=True)
class Targets:
    """``up`` of the replica and node scrape jobs."""

    replicas: dict[str, bool]  # pod → up
    nodes: dict[str, bool]  # instance → up


@dataclass(frozen=True)
class Rules:
    """Rules loaded in Prometheus (``/api/v1/rules``)."""

    alerting: tuple[tuple[str, str], ...]  # (alert name, expression)
    recording: dict[str, str] = field(default_factory=dict)  # record → expression


@dataclass(frozen=True)
class RollbackRun:
    target: str
    started: datetime
    finished: datetime | None  # None: no outcome recorded
    ok: bool
    actor: str


@dataclass(frozen=True)
class Canaries:
    """Argo Rollouts with a canary or blue-green strategy, from the Kubernetes API."""

    rollouts: tuple[tuple[str, str], ...]  # (namespace/name, strategy)


@dataclass(frozen=True)
class CanaryWatch:
    """One of the bot's canary watches, from its database."""

    id: int
    target: str  # NS/DEPLOYMENT
    cluster: str | None
    state: str  # watching, promotable, rollback; done, rolled_back, stopped
    active: bool
    started: datetime | None
    finished: datetime | None  # when it ended; None while active


@dataclass(frozen=True)
class Attestation:
    """A person vouching for an item (read back from the audit log)."""

    item: str
    by: str  # who: a Slack user id or an OS user
    by_name: str
    at: datetime
    expires: datetime
    link: str = ""
