"""The evidence sources a scorecard reads, from the settings: the scope's Prometheus,
its cluster's Kubernetes API, the audit log and the canary watches (both in the bot's
database), the loaded runbooks. A source that cannot be opened becomes ``Missing`` with
the reason, so its items read unknown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.canary.watches import Watches
from bot.config import ConfigError, Settings
from bot.diagnosis.promql import with_conventions
from bot.diagnosis.runbooks import DEFAULT_RUNBOOK_DIR, RunbookError, load_runbooks
from bot.models import Scope
from bot.readiness.evidence import Missing
from bot.readiness.scorecard import Sources
from bot.remediation.audit import AuditLog
from bot.remediation.placement import kube_for
from bot.sources.kubernetes import KubeClient, KubernetesError
from bot.sources.prometheus import PrometheusSource
from bot.store import Store


def runbook_ids(settings: Settings) -> frozenset[str] | Missing:
    try:
        return frozenset(load_runbooks(settings.runbooks_dir or DEFAULT_RUNBOOK_DIR))
    except RunbookError as exc:
        return Missing(f"the runbooks do not load: {str(exc).splitlines()[0]}")


def audit_log(settings: Settings) -> AuditLog | Missing:
    try:
        return AuditLog(settings.database_url)
    except Exception as exc:  # a database that cannot be opened: its items read unknown
        return Missing(f"audit log not readable: {type(exc).__name__}: {exc}")


def canary_watches(settings: Settings) -> Watches | Missing:
    try:
        return Watches(Store(settings.database_url))
    except Exception as exc:  # a database that cannot be opened: what Kubernetes says decides
        first = str(exc).splitlines()[:1] or [""]
        return Missing(f"canary watches not readable: {type(exc).__name__}: {first[0]}")


@asynccontextmanager
async def open_sources(
    settings: Settings,
    scope: Scope,
    prometheus_url: str | None = None,
    timeout_s: float | None = None,
    audit: AuditLog | Missing | None = None,
    watches: Watches | Missing | None = None,
) -> AsyncIterator[Sources]:
    """Sources for ``scope``; connections closed on the way out (and the database's, when
    the canary watches are read through a store opened here)."""
    url = prometheus_url or settings.prometheus_url_for(scope.cluster)
    prometheus = PrometheusSource(url, timeout_s=timeout_s or settings.query_timeout_s)
    kube: KubeClient | Missing
    try:
        kube = kube_for(settings, scope.cluster)
    except (KubernetesError, ConfigError) as exc:
        kube = Missing(f"Kubernetes not configured: {exc}")
    opened = watches is None  # the store is opened here, so closed here
    if watches is None:
        watches = await asyncio.to_thread(canary_watches, settings)  # opening migrates
    try:
        yield Sources(
            scope=with_conventions(scope, settings.conventions(scope.cluster)),
            prometheus=prometheus,
            kube=kube,
            audit=audit_log(settings) if audit is None else audit,
            runbooks=runbook_ids(settings),
            watches=watches,
            default_cluster=settings.effective_clusters()[0].name,
        )
    finally:
        await prometheus.aclose()
        if isinstance(kube, KubeClient):
            await kube.close()
        if opened and isinstance(watches, Watches):
            watches.store.engine.dispose()
