"""A gate's verdict from two numbers: pure, so every rule is tested without Prometheus.

A gate reads the newest revision's number and the previous revision's over the same
window. It *waits* — "not enough data yet" — while the newest revision's pods have not
filled the window (a rate or a trend over a window longer than the data reads low or
flat), or while either number is missing; it never passes on too little data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.config import CanaryGate, CanaryRollback

GateStatus = Literal["pass", "fail", "wait"]
# a window is filled when the data covers this share of it (one scrape short is fine)
FILL = 0.9

UNITS = {
    "error_rate": "ratio",
    "ttft_p99": "s",
    "tpot_p99": "s",
    "throughput": "tokens/s",
    "kv_usage": "ratio",
    "gpu_memory_leak": "MiB/h",
}
QUANTILES = ("ttft_p99", "tpot_p99")  # judged only on enough requests
TITLES = {
    "error_rate": "Error rate",
    "ttft_p99": "p99 TTFT",
    "tpot_p99": "p99 TPOT",
    "throughput": "Throughput per replica",
    "kv_usage": "KV cache usage",
    "gpu_memory_leak": "GPU memory trend",
}


@dataclass(frozen=True)
class Reading:
    """A metric of both revisions over one window, and how much of it the newest fills."""

    new: float | None
    old: float | None
    covered_s: float
    window_s: float
    new_requests: float | None = None  # requests each revision served in the window
    old_requests: float | None = None


@dataclass(frozen=True)
class GateVerdict:
    metric: str
    status: GateStatus
    new: float | None
    old: float | None
    limit: str  # the rule, e.g. "< 0.1 %" or "<= 1.1x previous"
    reason: str

    @property
    def title(self) -> str:
        return TITLES.get(self.metric, self.metric)

    @property
    def unit(self) -> str:
        return UNITS.get(self.metric, "")


def show(value: float | None, unit: str) -> str:
    """A number as people read it: '0.12 %', '1.23 s', '850 tokens/s per replica'."""
    if value is None:
        return "no data"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MiB/h":
        return f"{value:+.0f} MiB/h"
    return f"{value:.1f} {unit}"


def rule(gate: CanaryGate) -> str:
    unit = UNITS[gate.metric]
    parts = []
    if gate.max is not None:
        parts.append(f"<= {show(gate.max, unit)}")
    if gate.max_ratio is not None:
        parts.append(f"<= {gate.max_ratio:g}x previous")
    if gate.min_ratio is not None:
        parts.append(f">= {gate.min_ratio:g}x previous")
    if gate.max_increase is not None:
        increase = show(gate.max_increase, unit).lstrip("+")
        parts.append(f"at most {increase} above previous")
    return " and ".join(parts)


def _fill(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def judge(gate: CanaryGate, reading: Reading, min_requests: int = 0) -> GateVerdict:
    """Pass, fail or wait, with both numbers and, on a failure, which bound; a p99 waits
    until each revision has served ``min_requests`` in the window."""
    new, old, unit = reading.new, reading.old, UNITS[gate.metric]

    def verdict(status: GateStatus, reason: str) -> GateVerdict:
        return GateVerdict(gate.metric, status, new, old, rule(gate), reason)

    if reading.covered_s < FILL * reading.window_s:
        return verdict(
            "wait",
            f"not enough data yet ({_fill(reading.covered_s)} of {_fill(reading.window_s)} "
            "on the new revision)",
        )
    if new is None:
        return verdict("wait", "not enough data yet (no samples from the new revision)")
    if gate.metric in QUANTILES and min_requests:
        for which, served in (("new", reading.new_requests), ("previous", reading.old_requests)):
            if (served or 0.0) < min_requests:
                return verdict(
                    "wait",
                    f"not enough data yet ({served or 0:.0f} of {min_requests} requests on "
                    f"the {which} revision for a p99)",
                )
    relative = (gate.max_ratio, gate.min_ratio, gate.max_increase) != (None, None, None)
    if relative and old is None:
        return verdict("wait", "not enough data yet (no samples from the previous revision)")
    failed = []
    if gate.max is not None and new > gate.max:
        failed.append(f"{show(new, unit)} above {show(gate.max, unit)}")
    if old is not None and gate.max_ratio is not None and new > gate.max_ratio * old:
        failed.append(f"{_times(new, old)} the previous revision (limit {gate.max_ratio:g}x)")
    if old is not None and gate.min_ratio is not None and new < gate.min_ratio * old:
        failed.append(f"{_times(new, old)} the previous revision (floor {gate.min_ratio:g}x)")
    if old is not None and gate.max_increase is not None and new - old > gate.max_increase:
        failed.append(f"{show(new - old, unit).lstrip('+')} above the previous revision")
    if failed:
        return verdict("fail", "; ".join(failed))
    return verdict("pass", "within the gate")


def _times(new: float, old: float) -> str:
    return f"x{new / old:.2f}" if old > 0 else "above zero on"


@dataclass(frozen=True)
class Trigger:
    """A rollback trigger: tripped or not, with the new revision's number and the limit."""

    metric: str
    tripped: bool
    value: float | None
    limit: float
    reason: str


def triggers(
    config: CanaryRollback,
    errors: float | None,
    ttft_s: float | None,
    tpot_s: float | None,
    covered_s: float,
    window_s: float,
) -> list[Trigger]:
    """The checklist's rollback triggers on the newest revision over the short window:
    errors above ``error_rate`` or a latency above ``slo_factor`` times its SLO."""
    limits = (
        ("error_rate", errors, config.error_rate),
        ("ttft_p99", ttft_s, config.slo_factor * config.ttft_slo_s),
        ("tpot_p99", tpot_s, config.slo_factor * config.tpot_slo_s),
    )
    filled = covered_s >= FILL * window_s
    out = []
    for metric, value, limit in limits:
        unit = UNITS[metric]
        tripped = filled and value is not None and value > limit
        if not filled or value is None:
            reason = "not enough data yet"
        else:
            relation = "above" if tripped else "within"
            reason = f"{show(value, unit)} {relation} {show(limit, unit)}"
        out.append(Trigger(metric, tripped, value, limit, reason))
    return out


def overall(verdicts: list[GateVerdict]) -> GateStatus:
    """fail when any gate fails, wait while any waits, else pass."""
    statuses = {v.status for v in verdicts}
    return "fail" if "fail" in statuses else "wait" if "wait" in statuses else "pass"
