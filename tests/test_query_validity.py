"""Every query every check sends, for every kind of scope, is accepted by a real Prometheus.

The fleet mixes old and new vLLM names and both DCGM host-label spellings, so each query
meets both. A query Prometheus rejects (400: a range after an ``or``, a bad matcher) would
leave a check blind exactly when a diagnosis is narrowed to where the trouble is.
"""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest
from fleet_stack import FleetStack

from bot.diagnosis.checks import REGISTRY
from bot.diagnosis.engine import DiagnosisOptions, resolve_scope, run_check
from bot.models import Scope
from bot.sources.prometheus import PrometheusSource

pytestmark = [pytest.mark.prometheus]


def scopes(stack: FleetStack) -> list[Scope]:
    fleet = stack.simulator.fleet
    replica = fleet.replicas[0]
    node = fleet.nodes[-1].name
    single = {
        "namespace": replica.namespace,
        "pod": replica.pod,
        "node": node,
        "deployment": replica.deployment,
        "model_name": replica.model,
        "cluster": "default",
    }
    out = [Scope()]
    for size in (1, 2):
        for keys in itertools.combinations(sorted(single), size):
            labels = {k: single[k] for k in keys if k != "cluster"}
            cluster = single["cluster"] if "cluster" in keys else None
            out.append(Scope(cluster=cluster, labels=labels))
    return out


def rejected(prometheus_url: str, queries: list[str]) -> list[str]:
    problems = []
    with httpx.Client(base_url=prometheus_url, timeout=10) as http:
        for query in queries:
            answer = http.get("/api/v1/query", params={"query": query})
            if answer.status_code != 200:
                problems.append(f"{answer.status_code} {answer.json().get('error')}: {query}")
    return problems


@pytest.mark.parametrize("recorded", [False, True], ids=["raw", "recorded"])
def test_every_query_of_every_check_is_valid_for_every_scope(
    mixed_fleet: FleetStack, recorded: bool
) -> None:
    source = PrometheusSource(mixed_fleet.prometheus.url, timeout_s=10)
    options = DiagnosisOptions(window="1m", recorded_window="1m" if recorded else None)

    async def queries_for(scope: Scope) -> list[str]:
        resolved = await resolve_scope(scope, source)
        results = await asyncio.gather(
            *(
                run_check(check_id, check.defaults, resolved, source, options)
                for check_id, check in REGISTRY.items()
            )
        )
        refused = [r.summary for r in results if "refused" in r.summary]
        assert not refused, refused
        return [q for r in results for q in r.queries]

    try:
        every = [q for scope in scopes(mixed_fleet) for q in asyncio.run(queries_for(scope))]
    finally:
        source.close()
    assert len(every) > 10 * len(REGISTRY)  # every check ran for every scope
    assert rejected(mixed_fleet.prometheus.url, sorted(set(every))) == []
