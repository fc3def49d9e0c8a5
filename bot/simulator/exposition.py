"""Prometheus text exposition format (version 0.0.4), written by hand.

prometheus_client's own families always append ``_total`` to counters, but dcgm-exporter
writes counters without it; writing the text ourselves keeps every name exactly real.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from bot.simulator.catalog import Family

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(labels: Mapping[str, str]) -> str:
    """`{a="1",b="2"}` (empty string for no labels), values escaped."""
    if not labels:
        return ""
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def format_le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class ExpositionWriter:
    """Collects families in order; each family's HELP/TYPE header is written once."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}
        self._headers: dict[str, str] = {}

    def _family_lines(self, family: Family) -> list[str]:
        if family.name not in self._lines:
            help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
            self._headers[family.name] = (
                f"# HELP {family.name} {help_text}\n# TYPE {family.name} {family.type}"
            )
            self._lines[family.name] = []
        return self._lines[family.name]

    def sample(self, family: Family, labels: Mapping[str, str], value: float) -> None:
        self._family_lines(family).append(
            f"{family.name}{format_labels(labels)} {format_value(value)}"
        )

    def histogram(
        self,
        family: Family,
        labels: Mapping[str, str],
        bounds: Sequence[float],
        cumulative_counts: Iterable[float],
        total_sum: float,
    ) -> None:
        """`bounds` excludes +Inf; `cumulative_counts` has one more entry (the +Inf bucket)."""
        lines = self._family_lines(family)
        base = format_labels(labels)[1:-1] if labels else ""
        sep = "," if base else ""
        counts = list(cumulative_counts)
        for bound, count in zip([*bounds, math.inf], counts, strict=True):
            lines.append(
                f'{family.name}_bucket{{{base}{sep}le="{format_le(bound)}"}} {format_value(count)}'
            )
        suffix = format_labels(labels)
        lines.append(f"{family.name}_sum{suffix} {format_value(total_sum)}")
        lines.append(f"{family.name}_count{suffix} {format_value(counts[-1])}")

    def render(self) -> str:
        parts: list[str] = []
        for name, lines in self._lines.items():
            parts.append(self._headers[name])
            parts.extend(lines)
        return "\n".join(parts) + "\n"
