"""Prometheus access through prometheus-api-client, made async, bounded and failure-safe.

Every query has a deadline; a slow or unreachable Prometheus raises ``MetricsError`` with
a reason a person can act on. Nothing here retries forever or blocks the event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class MetricsError(Exception):
    """A query that could not be answered: unreachable, refused, too slow or invalid."""


@dataclass(frozen=True)
class RangeSeries:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value), NaN dropped


class MetricsSource(Protocol):
    async def query(self, promql: str) -> list[Sample]: ...


def parse_vector(result: Any) -> list[Sample]:
    """Instant-vector JSON → samples; NaN values (no data in a quantile) are dropped."""
    if not isinstance(result, list):
        raise MetricsError(f"expected an instant vector, got {type(result).__name__}")
    samples: list[Sample] = []
    for item in result:
        value = float(item["value"][1])
        if not math.isnan(value):
            samples.append(Sample(labels=dict(item.get("metric", {})), value=value))
    return samples


class PrometheusSource:
    """Instant queries against one Prometheus, run on a private thread pool."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, max_concurrency: int = 16) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # One quick retry for a blip; the per-query deadline bounds the total either way.
        retry = Retry(total=1, backoff_factor=0.1, status_forcelist=(502, 503, 504))
        session = requests.Session()
        self._client = PrometheusConnect(
            url=self.url, session=session, timeout=max(1, math.ceil(timeout_s))
        )
        # The client mounts its own adapter for the URL: replace it with one whose pool
        # holds a connection per concurrent query.
        session.mount(self.url, HTTPAdapter(max_retries=retry, pool_maxsize=max_concurrency))
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="prometheus")

    def _query(self, promql: str) -> Any:
        params = {"timeout": f"{self.timeout_s:g}s"}
        return self._client.custom_query(promql, params=params)

    async def _run(self, call: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, call)
        try:
            return await asyncio.wait_for(future, timeout=self.timeout_s + 1.0)
        except TimeoutError as exc:
            raise MetricsError(
                f"Prometheus at {self.url} did not answer within {self.timeout_s:g}s"
            ) from exc
        except PrometheusApiClientException as exc:
            raise MetricsError(f"Prometheus at {self.url} refused the query: {exc}") from exc
        except requests.RequestException as exc:
            reason = type(exc).__name__.replace("Error", " error").strip()
            raise MetricsError(f"cannot reach Prometheus at {self.url} ({reason})") from exc

    async def query(self, promql: str) -> list[Sample]:
        return parse_vector(await self._run(lambda: self._query(promql)))

    async def query_range(
        self, promql: str, seconds: float = 3600, step_s: float | None = None
    ) -> list[RangeSeries]:
        """The last ``seconds`` of ``promql`` (charts); same deadline and errors as query."""
        end = time.time()
        step = step_s or max(5.0, seconds / 240)
        params = {"timeout": f"{self.timeout_s:g}s"}

        def run() -> Any:
            return self._client.custom_query_range(
                promql,
                start_time=datetime.fromtimestamp(end - seconds, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{step:g}",
                params=params,
            )

        raw = await self._run(run)
        out: list[RangeSeries] = []
        for item in raw if isinstance(raw, list) else []:
            points = [(float(t), float(v)) for t, v in item.get("values", [])]
            points = [(t, v) for t, v in points if math.isfinite(v)]
            out.append(RangeSeries(labels=dict(item.get("metric", {})), points=points))
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
