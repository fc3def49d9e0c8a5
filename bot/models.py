"""Pure data models shared by the diagnosis engine, the CLI and (later) Slack rendering."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Status = Literal["ok", "warn", "crit", "unknown"]
ActionKind = Literal[
    "scale",
    "rollback",
    "promote",
    "drain",
    "uncordon",
    "restart",
    "silence",
    "unsilence",
    "config",
]

# Worst-first ordering for summarising: a critical result outranks an unknown one, which
# outranks a warning (we could not look, so we cannot call it fine).
_STATUS_RANK: dict[str, int] = {"ok": 0, "warn": 1, "unknown": 2, "crit": 3}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """The most severe of ``statuses``; ``ok`` for none."""
    if not statuses:
        return "ok"
    return max(statuses, key=lambda s: _STATUS_RANK[s])


def status_rank(status: Status) -> int:
    return _STATUS_RANK[status]


class Scope(BaseModel):
    """Where to look: label matchers (namespace, model_name, pod, node, …) plus the cluster."""

    model_config = ConfigDict(frozen=True)

    cluster: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    pods: tuple[str, ...] | None = Field(
        default=None, description="Pods on the scope's node, resolved before querying vLLM."
    )

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.labels.items())]
        if self.cluster:
            parts.insert(0, f"cluster={self.cluster}")
        return " ".join(parts) or "whole fleet"


class Offender(BaseModel):
    """One target that crossed a threshold (or the worst few when none did)."""

    target: dict[str, str]
    value: float
    status: Status

    def name(self) -> str:
        t = self.target
        if "gpu" in t and "node" in t:
            return f"{t['node']} GPU {t['gpu']}"
        for key in ("pod", "node", "instance"):
            if key in t:
                return t[key]
        return ",".join(f"{k}={v}" for k, v in t.items()) or "fleet"


class CheckResult(BaseModel):
    id: str
    title: str
    status: Status
    value: float | None = None
    unit: str = ""
    summary: str
    offenders: list[Offender] = Field(default_factory=list)
    queries: list[str] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    duration_s: float = 0.0


class Finding(BaseModel):
    id: str
    severity: Status
    summary: str
    targets: list[str] = Field(default_factory=list)
    workload: str | None = Field(
        default=None, description="kind/NS/NAME when decided for one workload of the scope"
    )


class RecommendedAction(BaseModel):
    kind: ActionKind
    target: str
    params: dict[str, Any] = Field(default_factory=dict)
    reason: str
    cluster: str | None = Field(
        default=None, description="the cluster whose data justified it (where it may act)"
    )

    def where(self) -> str:
        """``node/x`` or ``node/x in cluster west``."""
        return f"{self.target} in cluster {self.cluster}" if self.cluster else self.target


class Diagnosis(BaseModel):
    runbook: str
    title: str
    scope: Scope
    status: Status
    checks: list[CheckResult]
    findings: list[Finding]
    actions: list[RecommendedAction]
    remediation: str
    links: dict[str, str] = Field(default_factory=dict, description="title → URL")
    workloads: list[str] = Field(
        default_factory=list,
        description="workloads of the scope decided on their own (their own checks' data)",
    )
    duration_s: float


# --- Alertmanager webhook (version 4) ---------------------------------------------------------


class Alert(BaseModel):
    """One alert of an Alertmanager webhook notification."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # Alertmanager's field names, kept as sent
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "unnamed alert")


class AlertGroup(BaseModel):
    """The webhook body: a group of alerts Alertmanager notifies together."""

    model_config = ConfigDict(extra="ignore")

    version: str = "4"
    receiver: str = ""
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(min_length=1)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    groupKey: str = ""
    truncatedAlerts: int = 0


def _matchers_compile(matchers: dict[str, str]) -> dict[str, str]:
    for key, value in matchers.items():
        if value.startswith("~"):
            try:
                re.compile(value[1:])
            except re.error as exc:
                raise ValueError(f"label {key}: invalid regex {value[1:]!r}: {exc}") from exc
    return matchers


# Label matchers as configured: label → exact value, or ``~regex`` for the whole value.
LabelMatchers = Annotated[dict[str, str], AfterValidator(_matchers_compile)]


def labels_match(matchers: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Every matcher holds: an exact value, or ``~regex`` matching the whole value."""
    for key, want in matchers.items():
        have = labels.get(key, "")
        if want.startswith("~"):
            if not re.fullmatch(want[1:], have):
                return False
        elif have != want:
            return False
    return True
