"""The running bot's shared pieces, built once by ``bot.app`` and handed to listeners."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import Counter, Histogram

from bot.config import Settings
from bot.diagnosis.decisions import SizingPolicy
from bot.diagnosis.engine import DiagnosisOptions
from bot.diagnosis.runbooks import Runbook
from bot.remediation.audit import AuditLog
from bot.slack.outbox import Outbox
from bot.sources.prometheus import PrometheusSource
from bot.store import Store

log = logging.getLogger(__name__)

ALERTS_RECEIVED = Counter(
    "vllm_chatops_alerts_received", "Alertmanager notifications received", ["status", "outcome"]
)
SLASH_COMMANDS = Counter("vllm_chatops_slash_commands", "/vllm commands by verb", ["verb"])
DIAGNOSIS_SECONDS = Histogram(
    "vllm_chatops_diagnosis_seconds",
    "Diagnosis duration",
    ["runbook"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40),
)
ALERT_TO_POST_SECONDS = Histogram(
    "vllm_chatops_alert_to_post_seconds",
    "Webhook received → first Slack post",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)


@dataclass
class Services:
    settings: Settings
    runbooks: dict[str, Runbook]
    store: Store
    outbox: Outbox
    audit: AuditLog
    scheduler: AsyncIOScheduler | None = None
    _sources: dict[str, PrometheusSource] = field(default_factory=dict)
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def options(self) -> DiagnosisOptions:
        s = self.settings
        return DiagnosisOptions(
            window=s.diagnosis_window,
            check_timeout_s=2 * s.query_timeout_s,
            recorded_window=s.diagnosis_window if s.recording_rules else None,
            sizing=SizingPolicy(headroom=s.scale_headroom),
            overrides=s.thresholds,
        )

    def metrics_for(self, cluster: str | None) -> PrometheusSource:
        """The Prometheus of ``cluster`` (ConfigError naming the known ones if unknown)."""
        config = self.settings.cluster(cluster)
        if config.name not in self._sources:
            self._sources[config.name] = PrometheusSource(
                str(config.prometheus_url), timeout_s=self.settings.query_timeout_s
            )
        return self._sources[config.name]

    async def group_members(self, group_id: str, ttl_s: float = 300.0) -> frozenset[str]:
        """Members of a Slack user group (cached; empty when Slack cannot say)."""
        cached = self._groups.get(group_id)
        if cached and time.monotonic() - cached[0] < ttl_s:
            return cached[1]
        found = await self.outbox.group_members(group_id)
        if found is None:  # Slack could not say: deny this time, ask again next time
            return frozenset()
        members = frozenset(found)
        self._groups[group_id] = (time.monotonic(), members)
        return members

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run in the background, keep a reference, log (never lose) a failure."""
        task = asyncio.create_task(coro, name=what)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed", what, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait for background work (shutdown, tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def shutdown(self, grace_s: float = 10.0) -> None:
        """Let background work finish for ``grace_s``, then cancel what is left."""
        await self.drain(grace_s)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
