"""How many replicas: the checklist's rule, size for peak demand plus headroom. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ScalePlan:
    current: int
    replicas: int
    why: str

    @property
    def added(self) -> int:
        return self.replicas - self.current


def for_throughput(
    current: int, arrival_rps: float, per_replica_rps: float, headroom: float = 0.3
) -> ScalePlan | None:
    """Replicas to serve ``arrival_rps`` with ``headroom`` spare, at the measured rate.

    ``arrival_rps`` is the whole demand: requests served, abandoned by clients that gave
    up waiting, and still queued (the throughput check's ``arrival_rps``); sized on what is
    served alone, a fleet shedding load would get too few. ``per_replica_rps`` must be a
    saturated replica's throughput (its capacity, aborts excluded); None when it is
    unknown (nothing measured).
    """
    if current < 1 or per_replica_rps <= 0 or arrival_rps <= 0:
        return None
    needed = max(current, math.ceil(arrival_rps * (1 + headroom) / per_replica_rps))
    why = (
        f"demand {arrival_rps:.1f} req/s x {1 + headroom:.2f} headroom / "
        f"{per_replica_rps:.2f} req/s per saturated replica = {needed} replicas"
    )
    return ScalePlan(current, needed, why)


def for_kv(current: int, peak_kv: float, target_kv: float = 0.75) -> ScalePlan | None:
    """Replicas that bring the hottest replica's KV usage down to ``target_kv``."""
    if current < 1 or peak_kv <= 0 or not 0 < target_kv < 1:
        return None
    needed = max(current + 1, math.ceil(current * peak_kv / target_kv))
    why = (
        f"peak KV usage {peak_kv * 100:.0f} % x {current} replicas / "
        f"{target_kv * 100:.0f} % target = {needed} replicas"
    )
    return ScalePlan(current, needed, why)
