"""Prometheus access over its HTTP API with httpx: async, bounded, cancellable, failure-safe.

Every query has one deadline for the whole exchange (connect, send, wait, read); a slow or
unreachable Prometheus raises ``MetricsError`` with a reason a person can act on. A query
that is abandoned (its check timed out, the diagnosis was cancelled) closes its connection
at once: nothing is retried after its deadline, nothing keeps running in a thread, nothing
holds the process open at exit.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import httpx


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


def parse_matrix(result: Any) -> list[RangeSeries]:
    """Range-query JSON → series with their finite points."""
    out: list[RangeSeries] = []
    for item in result if isinstance(result, list) else []:
        points = [(float(t), float(v)) for t, v in item.get("values", [])]
        points = [(t, v) for t, v in points if math.isfinite(v)]
        out.append(RangeSeries(labels=dict(item.get("metric", {})), points=points))
    return out


RETRY_STATUS = (502, 503, 504)  # a proxy or a restarting Prometheus: one quick retry


def _answer(url: str, response: httpx.Response) -> Any:
    """The ``data`` of a Prometheus API answer, or MetricsError saying what went wrong."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status") == "success":
        return body.get("data")
    detail = body.get("error") if isinstance(body, dict) else None
    if response.status_code in (400, 422) and detail:
        raise MetricsError(f"Prometheus at {url} refused the query: {detail}")
    if response.status_code == 503 and detail and "timeout" in str(detail).lower():
        raise MetricsError(f"Prometheus at {url} gave up on the query: {detail}")
    reason = detail or response.reason_phrase or "no reason given"
    raise MetricsError(f"Prometheus at {url} answered HTTP {response.status_code}: {reason}")


class PrometheusSource:
    """Queries against one Prometheus (or a Prometheus-compatible query endpoint)."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, max_concurrency: int = 16) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._limits = httpx.Limits(
            max_connections=max_concurrency, max_keepalive_connections=max_concurrency
        )
        # An httpx client belongs to the event loop that uses it: one per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                base_url=self.url,
                limits=self._limits,
                timeout=self.timeout_s,
                trust_env=False,
                # loading the CA bundle costs a fifth of a second: only for https
                verify=self.url.startswith("https://"),
            )
            self._clients[loop] = client
        return client

    async def _post(self, path: str, form: dict[str, str]) -> Any:
        """POST a query form (no URL length limit); one deadline for every attempt."""
        form = form | {"timeout": f"{self.timeout_s:g}s"}
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._client().post(path, data=form)
                if response.status_code in RETRY_STATUS:
                    await asyncio.sleep(0.1)
                    response = await self._client().post(path, data=form)
        except TimeoutError as exc:
            raise MetricsError(
                f"Prometheus at {self.url} did not answer within {self.timeout_s:g}s"
            ) from exc
        except httpx.TimeoutException as exc:
            raise MetricsError(
                f"Prometheus at {self.url} did not answer within {self.timeout_s:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            reason = type(exc).__name__.replace("Error", " error").strip()
            raise MetricsError(f"cannot reach Prometheus at {self.url} ({reason})") from exc
        return _answer(self.url, response)

    async def query(self, promql: str) -> list[Sample]:
        data = await self._post("/api/v1/query", {"query": promql})
        return parse_vector(data.get("result") if isinstance(data, dict) else None)

    async def query_range(
        self, promql: str, seconds: float = 3600, step_s: float | None = None
    ) -> list[RangeSeries]:
        """The last ``seconds`` of ``promql`` (charts); same deadline and errors as query."""
        end = time.time()
        step = step_s or max(5.0, seconds / 240)
        form = {"query": promql, "start": f"{end - seconds:.3f}", "end": f"{end:.3f}"}
        data = await self._post("/api/v1/query_range", form | {"step": f"{step:g}"})
        return parse_matrix(data.get("result") if isinstance(data, dict) else None)

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """Any other read of the HTTP API (targets, rules, labels): its ``data``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._client().get(path, params=params)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise MetricsError(
                f"Prometheus at {self.url} did not answer within {self.timeout_s:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            reason = type(exc).__name__.replace("Error", " error").strip()
            raise MetricsError(f"cannot reach Prometheus at {self.url} ({reason})") from exc
        return _answer(self.url, response)

    async def aclose(self) -> None:
        """Close this loop's connections (call before the loop ends)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """Forget every client, closing those of idle loops (a running loop's close with it)."""
        for loop, client in list(self._clients.items()):
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(client.aclose())
        self._clients.clear()
