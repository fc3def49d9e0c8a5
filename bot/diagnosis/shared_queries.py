"""One diagnosis' view of Prometheus: each distinct PromQL sent once, its answer shared.

A runbook's checks often read the same thing (how much history the scope has, the same
gauges). Within one diagnosis they share one request; a new diagnosis builds a new view,
so every diagnosis still reads fresh data.
"""

from __future__ import annotations

import asyncio

from bot.sources.prometheus import MetricsSource, Sample


class SharedQueries:
    """A :class:`MetricsSource` that sends each distinct query once; :meth:`aclose` ends it."""

    def __init__(self, metrics: MetricsSource) -> None:
        self._metrics = metrics
        self._answers: dict[str, asyncio.Future[list[Sample]]] = {}

    @property
    def sent(self) -> list[str]:
        """The distinct queries sent, in order."""
        return list(self._answers)

    async def query(self, promql: str) -> list[Sample]:
        answer = self._answers.get(promql)
        if answer is None:
            answer = asyncio.ensure_future(self._metrics.query(promql))
            self._answers[promql] = answer
        # a check that gives up (its deadline) must not cancel the answer others await
        return list(await asyncio.shield(answer))

    async def aclose(self) -> None:
        """Stop what nobody waits for any more, and consume every outcome."""
        for answer in self._answers.values():
            answer.cancel()
        await asyncio.gather(*self._answers.values(), return_exceptions=True)
