"""The readiness scorecard's evidence, present or absent on demand, in a running twin.

A seeded twin is a well-run fleet: its nodes span zones, every replica runs with
``gpu_memory_utilization`` 0.9 and prefix caching on, every pod passes ``--max-model-len``,
every replica is scraped and demand leaves headroom. It has no canary pipeline until one
is provided. ``set(name, present)`` takes one piece away (or puts it back, exactly as it
was), so a drill or a test can watch the matching item flip::

    evidence = ReadinessEvidence(sim, twin)
    evidence.set("zones", False)      # every node in one zone: multi_zone fails
    evidence.set("canary", True)      # an Argo Rollout with a canary strategy
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from bot.simulator.fleet import CURRENT_VERSION, VLLM_IMAGE
from bot.simulator.kube_objects import Obj
from bot.simulator.server import Simulator
from bot.simulator.twin import FleetTwin

Evidence = Literal[
    "headroom", "zones", "memory_utilization", "prefix_caching", "max_model_len", "scrape", "canary"
]
EVIDENCE: tuple[Evidence, ...] = (
    "headroom",
    "zones",
    "memory_utilization",
    "prefix_caching",
    "max_model_len",
    "scrape",
    "canary",
)
ZONE_LABEL = "topology.kubernetes.io/zone"
CANARY_NAME = "vllm-canary"
FLAG = "--max-model-len"


class ReadinessEvidence:
    """Takes evidence away from (and gives it back to) one twin; remembers what it took."""

    def __init__(self, sim: Simulator, twin: FleetTwin) -> None:
        self.sim, self.twin = sim, twin
        self._saved_zones: dict[str, str | None] = {}
        self._args: tuple[str, str, list[str]] | None = None  # (namespace, pod, args)

    @property
    def canary(self) -> tuple[str, str]:
        return self.sim.fleet.namespace, CANARY_NAME

    def set(self, name: Evidence, present: bool) -> None:
        getattr(self, f"_{name}")(present)

    def _headroom(self, present: bool) -> None:
        # the underprovisioned scenario: one Deployment's demand 1.6 x what it serves
        if present != (self.sim.truth.scenario == "healthy"):
            self.sim.switch("healthy" if present else "underprovisioned")

    def _zones(self, present: bool) -> None:
        kube = self.twin.kubernetes
        if not present and not self._saved_zones:
            for node in kube.list("nodes"):
                labels = node["metadata"].get("labels", {})
                self._saved_zones[node["metadata"]["name"]] = labels.get(ZONE_LABEL)
            first = next((z for z in self._saved_zones.values() if z), "zone-a")
            for name in self._saved_zones:
                kube.update("nodes", None, name, _zone(first))
        elif present and self._saved_zones:
            for name, zone in self._saved_zones.items():
                kube.update("nodes", None, name, _zone(zone))
            self._saved_zones = {}

    def _replica_profile(self, index: int, field: str, value: str) -> None:
        with self.sim.lock:
            setattr(self.sim.fleet.replicas[index].profile, field, value)

    def _memory_utilization(self, present: bool) -> None:
        self._replica_profile(0, "gpu_memory_utilization", "0.9" if present else "0.95")

    def _prefix_caching(self, present: bool) -> None:
        self._replica_profile(
            min(1, len(self.sim.fleet.replicas) - 1), "enable_prefix_caching", str(present)
        )

    def _max_model_len(self, present: bool) -> None:
        kube = self.twin.kubernetes
        if not present and self._args is None:
            replica = self.sim.fleet.replicas[-1]
            pod = kube.get("pods", replica.namespace, replica.pod)
            if pod is None:
                return
            args = list(pod["spec"]["containers"][0].get("args", []))
            self._args = (replica.namespace, replica.pod, args)
            kube.update("pods", replica.namespace, replica.pod, _args(_without_flag(args)))
        elif present and self._args is not None:
            namespace, name, args = self._args
            kube.update("pods", namespace, name, _args(args))
            self._args = None

    def _scrape(self, present: bool) -> None:
        with self.sim.lock:
            self.sim.fleet.replicas[-1].permanently_down = not present

    def _canary(self, present: bool) -> None:
        kube = self.twin.kubernetes
        if present and kube.get("rollouts", *self.canary) is None:
            kube.add_rollout(*self.canary, f"{VLLM_IMAGE}:{CURRENT_VERSION}", replicas=0)
        elif not present:
            kube.delete_object("rollouts", *self.canary)


def _without_flag(args: list[str]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == FLAG:
            skip = True
        elif not arg.startswith(f"{FLAG}="):
            out.append(arg)
    return out


def _zone(zone: str | None) -> Callable[[Obj], None]:
    def change(node: Obj) -> None:
        labels = node["metadata"].setdefault("labels", {})
        if zone is None:
            labels.pop(ZONE_LABEL, None)
        else:
            labels[ZONE_LABEL] = zone

    return change


def _args(args: list[str]) -> Callable[[Obj], None]:
    def change(pod: Obj) -> None:
        pod["spec"]["containers"][0]["args"] = list(args)

    return change
