"""The running bot's shared pieces, built once by ``bot.app`` and handed to listeners."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.diagnosis.engine import DiagnosisOptions, options_from_settings
from bot.diagnosis.runbooks import Runbook
from bot.remediation.audit import AuditLog
from bot.remediation.flow import Remediation
from bot.slack.ack_path import AckPath, AcksFirst
from bot.slack.metrics import BotMetrics
from bot.slack.outbox import Outbox
from bot.slack.reporter import SlackReporter
from bot.sources.prometheus import PrometheusSource
from bot.store import Store

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    runbooks: dict[str, Runbook]
    store: Store
    outbox: Outbox
    audit: AuditLog
    metrics: BotMetrics
    remediation: Remediation = field(init=False)
    ack_path: AckPath = field(init=False)  # database work before Slack's ack
    acks_first: AcksFirst = field(default_factory=AcksFirst)
    _sources: dict[str, PrometheusSource] = field(default_factory=dict)
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.ack_path = AckPath(self.store)
        self.remediation = Remediation(
            settings=self.settings,
            store=self.store,
            audit=self.audit,
            runbooks=self.runbooks,
            reporter=SlackReporter(
                self.outbox, self.settings.default_channel, self.metrics.actions
            ),
            directory=self,
            metrics_for=self.metrics_for,
            options=self.options,
        )

    @property
    def options(self) -> DiagnosisOptions:
        return options_from_settings(self.settings)

    def metrics_for(self, cluster: str | None) -> PrometheusSource:
        """The Prometheus of ``cluster``; the default one for a cluster not configured
        (its series picked by the cluster label)."""
        url = self.settings.prometheus_url_for(cluster)
        if url not in self._sources:
            self._sources[url] = PrometheusSource(url, timeout_s=self.settings.query_timeout_s)
        return self._sources[url]

    async def members(self, group: str, ttl_s: float = 300.0) -> frozenset[str]:
        """Members of a Slack user group (cached; empty when Slack cannot say)."""
        cached = self._groups.get(group)
        if cached and time.monotonic() - cached[0] < ttl_s:
            return cached[1]
        found = await self.outbox.group_members(group)
        if found is None:  # Slack could not say: deny this time, ask again next time
            return frozenset()
        members = frozenset(found)
        self._groups[group] = (time.monotonic(), members)
        return members

    def spawn(
        self, coro: Coroutine[Any, Any, Any], what: str, *, after_acks: bool = False
    ) -> asyncio.Task[Any]:
        """Run in the background, keep a reference, log (never lose) a failure.

        ``after_acks``: a listener's work, started once the Slack requests in flight are
        answered (see :class:`AcksFirst`)."""
        if after_acks:
            coro = self._after_acks(coro)
        task = asyncio.create_task(coro, name=what)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed", what, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def _after_acks(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            await self.acks_first.turn()
        except BaseException:
            coro.close()
            raise
        return await coro

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
        self.ack_path.close()
        for source in self._sources.values():
            source.close()
