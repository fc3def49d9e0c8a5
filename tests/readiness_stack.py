"""Test helpers for the readiness scorecard: a prepared fleet (twin + a real Prometheus
with the exported rules loaded + an Argo Rollout with a canary strategy), its evidence
present or absent on demand, and its scorecard read through the bot's own sources."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from fleet_stack import FleetStack
from twin_stack import serving_twin

from bot.diagnosis.alert_rules import render_rules_yaml
from bot.diagnosis.runbooks import load_runbooks
from bot.models import Scope
from bot.readiness.decide import Decision
from bot.readiness.evidence import Attestation, Missing
from bot.readiness.items import load_items
from bot.readiness.scorecard import Scorecard, Sources, evaluate
from bot.remediation.audit import AuditLog
from bot.simulator.fleet import build_fleet
from bot.simulator.prometheus_runner import PrometheusRunner
from bot.simulator.readiness_evidence import ReadinessEvidence
from bot.simulator.server import Simulator
from bot.simulator.twin import FleetTwin
from bot.sources.kubernetes import KubeClient
from bot.sources.prometheus import PrometheusSource

ITEMS = load_items()
WINDOW, LOOKBACK = "10s", "20s"  # short: a flipped fleet reads right again within seconds


def prepared_fleet() -> Simulator:
    """Two models, each on two nodes of different zones (one replica a node), a spare."""
    fleet = build_fleet(
        replicas=4,
        gpus_per_replica=4,
        gpus_per_node=4,
        models=("llama-3.1-8b", "qwen2.5-7b"),
        spare_nodes=1,
        seed=3,
        now=time.time(),
    )
    return Simulator(fleet, "healthy", 3)


@dataclass
class ReadinessStack:
    fleet: FleetStack
    twin: FleetTwin
    rules: Path
    evidence: ReadinessEvidence

    def write_rules(self, text: str) -> None:
        """Replace the rule file and make Prometheus load it (``--web.enable-lifecycle``)."""
        self.rules.write_text(text)
        httpx.post(f"{self.fleet.prometheus.url}/-/reload", timeout=30).raise_for_status()

    def scorecard(
        self,
        audit: AuditLog | Missing,
        runbooks: frozenset[str] | Missing | None = None,
        attestations: Mapping[str, Attestation] | None = None,
        now: datetime | None = None,
        scope: Scope | None = None,
    ) -> Scorecard:
        async def go() -> Scorecard:
            prometheus = PrometheusSource(self.fleet.prometheus.url, timeout_s=10)
            kube = KubeClient.for_server(self.twin.kubernetes.url, self.twin.token)
            try:
                sources = Sources(
                    scope=scope or Scope(),
                    prometheus=prometheus,
                    kube=kube,
                    audit=audit,
                    runbooks=frozenset(load_runbooks()) if runbooks is None else runbooks,
                    window=WINDOW,
                    lookback=LOOKBACK,
                )
                return await evaluate(ITEMS, sources, attestations or {}, now or datetime.now(UTC))
            finally:
                await prometheus.aclose()
                await kube.close()

        return asyncio.run(go())

    def decisions(
        self,
        audit: AuditLog | Missing,
        runbooks: frozenset[str] | Missing | None = None,
        scope: Scope | None = None,
    ) -> dict[str, Decision]:
        card = self.scorecard(audit, runbooks, scope=scope)
        return {row.item.id: row.decision for row in card.rows}


@contextmanager
def readiness_stack(binary: str, directory: Path) -> Iterator[ReadinessStack]:
    sim = prepared_fleet()
    rules = directory / "rules.yml"
    rules.write_text(render_rules_yaml(load_runbooks()))
    with serving_twin(sim, startup_delay_s=2.0, resync_s=0.5) as (server, twin):
        evidence = ReadinessEvidence(sim, twin)
        evidence.set("canary", True)  # the one piece a seeded twin lacks
        prometheus = PrometheusRunner(
            server.url, scrape_interval_s=1.0, binary=binary, rule_files=[rules]
        )
        try:
            prometheus.start()
            prometheus.wait_for_targets(len(sim.fleet.replicas) + len(sim.fleet.nodes) + 1)
            stack = FleetStack(sim, server, prometheus)
            stack.wait_for_history(12)
            yield ReadinessStack(stack, twin, rules, evidence)
        finally:
            prometheus.stop()


def record_rollback(
    audit: AuditLog, at: datetime, seconds: float, ok: bool = True, target: str = "x"
) -> None:
    """A rollback as the remediation flow audits it: `executing`, then its outcome."""
    request = f"req-{at.timestamp():.0f}-{seconds:g}"
    end = at + timedelta(seconds=seconds)
    for event, when in (("executing", at), ("executed" if ok else "failed", end)):
        audit.append(
            event,  # type: ignore[arg-type]  # one of the flow's event names
            request_id=request,
            actor_id="U0ONCALL",
            actor_name="Ada",
            kind="rollback",
            target=target,
            at=when,
        )


def without_gpu_alerts(text: str) -> str:
    """The exported rules minus every group whose rules read DCGM series."""
    doc = yaml.safe_load(text)
    doc["groups"] = [g for g in doc["groups"] if "DCGM_" not in yaml.safe_dump(g)]
    return yaml.safe_dump(doc)
