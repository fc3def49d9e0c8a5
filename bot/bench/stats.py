"""Summaries of repeated timings (pure)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank method: a value that was measured."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Timing:
    """Median and p99 of ``n`` samples, in seconds."""

    median: float
    p99: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Timing:
        return cls(statistics.median(samples), percentile(samples, 0.99), len(samples))
