"""Readiness items as data: ``runbooks/readiness/*.yaml``, validated strictly.

Each file holds ``items:``, a list of items; each item has an ``id``, a ``category``, a
``title``, ``critical`` and exactly one of ``measure`` (a measurement kind and its
parameters, decided by the bot) or ``attest`` (a person vouches for it; the attestation
expires after ``expires_days``). Errors name the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.diagnosis.promql import WINDOW
from bot.diagnosis.yaml_source import RunbookError, parse_yaml_model

DEFAULT_ITEMS_DIR = Path(__file__).resolve().parents[2] / "runbooks" / "readiness"
ID = r"^[a-z][a-z0-9_]*$"
ZONE_LABEL = "topology.kubernetes.io/zone"
Duration = Annotated[str, Field(pattern=WINDOW.pattern, description="a PromQL duration: 5m, 7d")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacityHeadroom(_Strict):
    """Peak demand over ``lookback`` x (1 + headroom) <= replicas x per-replica capacity."""

    kind: Literal["capacity_headroom"]
    headroom: float = Field(0.3, ge=0, le=5)
    lookback: Duration = "7d"
    window: Duration = "5m"  # the rate window of demand and of what is served now
    min_busy: float = Field(0.05, gt=0, lt=1)  # below it, utilisation says nothing of capacity


class ZoneSpread(_Strict):
    """Every vLLM workload's running pods sit on nodes in at least ``min_zones`` zones."""

    kind: Literal["zone_spread"]
    min_zones: int = Field(2, ge=1)
    zone_label: str = ZONE_LABEL
    image: str = "vllm"  # a serving pod runs a container whose image contains this


class CacheConfig(_Strict):
    """Every replica's ``vllm:cache_config_info`` within bounds."""

    kind: Literal["cache_config"]
    max_gpu_memory_utilization: float | None = Field(0.9, gt=0, le=1)
    prefix_caching: bool | None = None  # True: must be on everywhere


class PodArg(_Strict):
    """Every serving pod sets ``flag`` explicitly in its container's command or args."""

    kind: Literal["pod_arg"]
    flag: str = Field(pattern=r"^--[a-z0-9][a-z0-9-]*$")
    image: str = "vllm"


class ScrapeCoverage(_Strict):
    """Prometheus scrapes every serving pod and every GPU node (``up == 1``)."""

    kind: Literal["scrape_coverage"]
    replica_job: str = "vllm"
    node_job: str = "dcgm-exporter"
    image: str = "vllm"


class AlertRules(_Strict):
    """An alerting rule loaded in Prometheus for each concern: its expression (or a
    recording rule it uses) reads one of the concern's metrics (regexes)."""

    kind: Literal["alert_rules"]
    concerns: dict[str, list[str]] = Field(min_length=1)


class Runbooks(_Strict):
    """These runbooks are loaded (the top failure modes)."""

    kind: Literal["runbooks"]
    require: list[str] = Field(min_length=1)


class Rollback(_Strict):
    """A successful rollback in the audit log within ``lookback_days``; with
    ``max_seconds``, the newest one executed within that long."""

    kind: Literal["rollback"]
    lookback_days: int = Field(30, ge=1)
    max_seconds: float | None = Field(None, gt=0)


class CanaryPipeline(_Strict):
    """A canary pipeline exists: an Argo Rollout with a canary or blue-green strategy, or
    one of the bot's canary watches, active or finished within ``lookback_days``."""

    kind: Literal["canary"]
    lookback_days: int = Field(30, ge=1)  # a finished canary watch counts this long


Measure = Annotated[
    CapacityHeadroom
    | ZoneSpread
    | CacheConfig
    | PodArg
    | ScrapeCoverage
    | AlertRules
    | Runbooks
    | Rollback
    | CanaryPipeline,
    Field(discriminator="kind"),
]
MEASURE_KINDS = (
    "capacity_headroom",
    "zone_spread",
    "cache_config",
    "pod_arg",
    "scrape_coverage",
    "alert_rules",
    "runbooks",
    "rollback",
    "canary",
)


class Attest(_Strict):
    """Only a person can know: an attestation (who, when, link) valid this many days."""

    expires_days: int = Field(ge=1, le=3660)


class Item(_Strict):
    id: str = Field(pattern=ID)
    category: str = Field(min_length=1)
    title: str = Field(min_length=1, max_length=150)
    critical: bool
    measure: Measure | None = None
    attest: Attest | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Item:
        if (self.measure is None) == (self.attest is None):
            raise ValueError(
                "give exactly one of measure: {kind: …} (the bot decides) or "
                "attest: {expires_days: N} (a person vouches)"
            )
        return self


class ItemsFile(_Strict):
    items: list[Item] = Field(min_length=1)


def parse_items(text: str, source: str) -> list[Item]:
    shape = "a readiness file is a mapping with `items:`, a list of items"
    return parse_yaml_model(text, source, ItemsFile, shape).items


def load_items(paths: Iterable[Path] = (DEFAULT_ITEMS_DIR,)) -> list[Item]:
    """Every item of the ``*.yaml`` files in ``paths`` (directories or files), in file
    order; RunbookError listing every problem (``file:line: field: fix``)."""
    items: list[Item] = []
    problems: list[str] = []
    where: dict[str, str] = {}
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            try:
                loaded = parse_items(file.read_text(), str(file))
            except RunbookError as exc:
                problems.append(str(exc))
                continue
            except OSError as exc:
                problems.append(f"{file}:1: cannot read: {exc.strerror}")
                continue
            for item in loaded:
                if item.id in where:
                    problems.append(f"{file}: id: {item.id!r} is also defined in {where[item.id]}")
                    continue
                where[item.id] = str(file)
                items.append(item)
    if problems:
        raise RunbookError("\n".join(problems))
    if not items:
        raise RunbookError(f"no readiness items in {', '.join(str(p) for p in paths)}")
    return items


def configured_items(runbooks_dir: Path | None) -> list[Item]:
    """A team's items (``readiness/`` beside its configured runbooks) or the shipped ones."""
    custom = runbooks_dir / "readiness" if runbooks_dir else None
    return load_items([custom if custom and custom.is_dir() else DEFAULT_ITEMS_DIR])
