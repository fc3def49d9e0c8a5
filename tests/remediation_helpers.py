"""Test helpers: the chat-neutral remediation core driven directly, with a front end that
lists what it is told, no groups and no diagnosis."""

from __future__ import annotations

from typing import Any

from bot.config import Settings
from bot.diagnosis.engine import DiagnosisOptions
from bot.remediation.audit import AuditLog
from bot.remediation.events import Event, Started
from bot.remediation.flow import Remediation
from bot.simulator.kubernetes_api import ADMIN_TOKEN, KubernetesStandIn
from bot.sources.prometheus import MetricsSource
from bot.store import Store


class Recorder:
    """A front end that keeps what it is told (the Slack one renders it, this one lists it)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def report(self, event: Event) -> str | None:
        self.events.append(event)
        return f"ref-{len(self.events)}" if isinstance(event, Started) else event.ref


class NoGroups:
    async def members(self, group: str) -> frozenset[str]:
        return frozenset()


def no_metrics(cluster: str | None) -> MetricsSource:
    raise AssertionError("this test runs no diagnosis")


def cluster(name: str, kube: KubernetesStandIn, **extra: str) -> dict[str, str]:
    """A cluster entry of the settings: ``kube`` as its API server, reached as the admin."""
    return {"name": name, "kube_api_url": kube.url, "kube_token": ADMIN_TOKEN, **extra}


def granted(*kinds: str) -> dict[str, Any]:
    """A policy letting U1 (alice) run ``kinds`` anywhere, with no approvals."""
    return {"grants": [{"users": ["U1"], "kinds": list(kinds)}], "approvals": []}


def remediation_on(
    database_url: str,
    clusters: list[dict[str, str]],
    policy: dict[str, Any],
    reporter: Recorder,
    **settings: Any,
) -> Remediation:
    """The remediation core on ``database_url`` with no runbooks, reporting to ``reporter``."""
    return Remediation(
        settings=Settings(database_url=database_url, clusters=clusters, policy=policy, **settings),
        store=Store(database_url),
        audit=AuditLog(database_url),
        runbooks={},
        reporter=reporter,
        directory=NoGroups(),
        metrics_for=no_metrics,
        options=DiagnosisOptions(),
    )
